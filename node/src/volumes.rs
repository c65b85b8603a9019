//! A pod's volumes on the node: emptyDir, configMap and secret volumes are directories
//! under the pod's directory (`pods/UID/volumes/NAME`); a persistentVolumeClaim is a
//! directory under `claims/NAMESPACE/CLAIM` that outlives the pod, so the replacement
//! pod on this node (a StatefulSet's) gets the same data. Also the containers' mounts.
//!
//! Invariants: every name that becomes a path component is one component (no `/`, `..`);
//! a subPath stays inside its volume even through symlinks a guest planted; configMap and
//! secret volumes are read-only to the guest.

use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use serde_json::{Value, json};

use crate::runtime::Mount;

/// One volume's host directory.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Volume {
    pub name: String,
    pub host_path: PathBuf,
    /// Mounted read-only whatever the volumeMount says.
    pub read_only: bool,
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

/// True for a name usable as one path component under a pod's directory.
pub(crate) fn safe_component(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// Creates the host directories of the pod's volumes (`pod_dir/volumes/NAME`; claims under
/// `claims_dir/NAMESPACE/CLAIM`) and fills configMap and secret volumes. The error is the
/// message the kubelet shows (FailedMount).
pub(crate) async fn prepare(client: &kube::Client, pod: &Value, pod_dir: &Path, claims_dir: &Path) -> Result<Vec<Volume>, String> {
    let ns = s(&pod["metadata"]["namespace"]);
    let mut out = Vec::new();
    let Some(vols) = pod["spec"]["volumes"].as_array() else { return Ok(out) };
    for v in vols {
        let name = s(&v["name"]);
        if !safe_component(&name) {
            return Err(format!("volume name {name:?} is not a valid path component"));
        }
        let io = |e: std::io::Error| format!("volume {name}: {e}");
        let dir = pod_dir.join("volumes").join(&name);
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        if v.get("emptyDir").is_some() {
            out.push(Volume { name, host_path: dir, read_only: false });
        } else if let Some(projected) = Projected::of(v) {
            match projected.source.entries(client, &ns, &projected.object, true).await {
                Ok(Some(entries)) => {
                    for (k, val) in entries {
                        if safe_component(&k) {
                            tokio::fs::write(dir.join(&k), val).await.map_err(io)?;
                        }
                    }
                }
                Ok(None) if projected.optional => {}
                Ok(None) => return Err(format!("MountVolume.SetUp failed for volume \"{name}\" : {} \"{}\" not found", projected.kind(), projected.object)),
                Err(e) => return Err(format!("volume {name}: {e}")),
            }
            out.push(Volume { name, host_path: dir, read_only: true });
        } else if let Some(pvc) = v.get("persistentVolumeClaim") {
            let claim = s(&pvc["claimName"]);
            if !safe_component(&claim) {
                return Err(format!("volume \"{name}\": invalid claimName {claim:?}"));
            }
            let claim_dir = claims_dir.join(&ns).join(&claim);
            tokio::fs::create_dir_all(&claim_dir).await.map_err(io)?;
            out.push(Volume { name, host_path: claim_dir, read_only: pvc["readOnly"] == json!(true) });
        } else {
            return Err(format!("volume \"{name}\": only emptyDir, configMap, secret and persistentVolumeClaim volumes are supported"));
        }
    }
    Ok(out)
}

/// A ConfigMap or Secret a pod reads, for volumes and env.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    ConfigMap,
    Secret,
}

impl Source {
    /// The object's entries: a ConfigMap's data (then its binaryData when `binary`), a
    /// Secret's data; None when the object does not exist.
    pub(crate) async fn entries(self, client: &kube::Client, ns: &str, name: &str, binary: bool) -> Result<Option<Vec<(String, Vec<u8>)>>, kube::Error> {
        Ok(match self {
            Source::ConfigMap => Api::<ConfigMap>::namespaced(client.clone(), ns).get_opt(name).await?.map(|obj| {
                let text = obj.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes()));
                let bytes = obj.binary_data.filter(|_| binary).unwrap_or_default().into_iter().map(|(k, v)| (k, v.0));
                text.chain(bytes).collect()
            }),
            Source::Secret => Api::<Secret>::namespaced(client.clone(), ns)
                .get_opt(name)
                .await?
                .map(|obj| obj.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect()),
        })
    }
}

/// A configMap or secret volume: the object's keys become files.
struct Projected {
    source: Source,
    object: String,
    optional: bool,
}

impl Projected {
    fn of(v: &Value) -> Option<Projected> {
        let (source, spec, object) = if let Some(cm) = v.get("configMap") {
            (Source::ConfigMap, cm, s(&cm["name"]))
        } else if let Some(sec) = v.get("secret") {
            (Source::Secret, sec, s(&sec["secretName"]))
        } else {
            return None;
        };
        Some(Projected { source, object, optional: spec["optional"] == json!(true) })
    }

    /// The object's kind as the kubelet's mount messages name it.
    fn kind(&self) -> &'static str {
        match self.source {
            Source::ConfigMap => "configmap",
            Source::Secret => "secret",
        }
    }
}

/// The container's volumeMounts as mounts of the pod's `volumes` (mounts of volumes the
/// pod does not have are left out). The error is the CreateContainerConfigError message.
pub(crate) fn mounts(container: &Value, volumes: &[Volume]) -> Result<Vec<Mount>, String> {
    let mut mounts = Vec::new();
    for m in container["volumeMounts"].as_array().into_iter().flatten() {
        let Some(v) = volumes.iter().find(|v| v.name == s(&m["name"])) else { continue };
        let host_path = match m["subPath"].as_str().filter(|sub| !sub.is_empty()) {
            None => v.host_path.clone(),
            Some(sub) => contained(&v.host_path, sub)
                .ok_or_else(|| format!("volumeMount {}: subPath {sub:?} must be a relative path inside the volume", s(&m["name"])))?,
        };
        mounts.push(Mount { host_path, guest_path: s(&m["mountPath"]), read_only: v.read_only || m["readOnly"] == json!(true) });
    }
    Ok(mounts)
}

/// `dir/sub` when `sub` is a relative path that stays inside `dir` once symlinks are
/// resolved (a guest may have planted one in a writable volume); created if missing.
fn contained(dir: &Path, sub: &str) -> Option<PathBuf> {
    let rel = Path::new(sub);
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    let base = std::fs::canonicalize(dir).ok()?;
    let joined = base.join(rel);
    let _ = std::fs::create_dir_all(&joined);
    let real = std::fs::canonicalize(&joined).ok()?;
    real.starts_with(&base).then_some(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_paths_stay_inside_the_volume() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = std::fs::canonicalize(dir.path()).expect("canonical");
        assert_eq!(contained(dir.path(), "a/b"), Some(base.join("a/b")));
        for bad in ["/", "/etc", "../x", "a/../../x", "./a"] {
            assert_eq!(contained(dir.path(), bad), None, "{bad}");
        }
        std::os::unix::fs::symlink("../../..", dir.path().join("esc")).expect("symlink");
        assert_eq!(contained(dir.path(), "esc"), None);
        assert!(!safe_component("..") && !safe_component("a/b") && safe_component("data"));
    }

    #[test]
    fn mounts_follow_volume_mounts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = std::fs::canonicalize(dir.path()).expect("canonical");
        let volumes = vec![
            Volume { name: "data".into(), host_path: dir.path().to_path_buf(), read_only: false },
            Volume { name: "cfg".into(), host_path: dir.path().to_path_buf(), read_only: true },
        ];
        let c = json!({"volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "data", "mountPath": "/sub", "subPath": "x/y", "readOnly": true},
            {"name": "cfg", "mountPath": "/cfg"},
            {"name": "absent", "mountPath": "/absent"},
        ]});
        let got: Vec<(PathBuf, String, bool)> = mounts(&c, &volumes).expect("mounts").into_iter().map(|m| (m.host_path, m.guest_path, m.read_only)).collect();
        assert_eq!(
            got,
            [(dir.path().to_path_buf(), "/data".into(), false), (base.join("x/y"), "/sub".into(), true), (dir.path().to_path_buf(), "/cfg".into(), true)]
        );
        let bad = json!({"volumeMounts": [{"name": "data", "mountPath": "/d", "subPath": "../up"}]});
        assert_eq!(mounts(&bad, &volumes).map(|_| ()), Err("volumeMount data: subPath \"../up\" must be a relative path inside the volume".to_string()));
    }
}
