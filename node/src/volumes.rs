//! A pod's volumes on the node: emptyDir, configMap and secret volumes are directories
//! under the pod's directory (`pods/UID/volumes/NAME`); a persistentVolumeClaim is a
//! directory under `claims/NAMESPACE/CLAIM` that outlives the pod, so the replacement
//! pod on this node (a StatefulSet's) gets the same data. Also the containers' mounts.
//!
//! Invariants: every name that becomes a path component is one component (no `/`, `..`);
//! a subPath stays inside its volume even through symlinks a guest planted; configMap and
//! secret volumes are read-only to the guest; with the pod's fsGroup, every volume but
//! hostPath belongs to that group, directories setgid (`set_volume_ownership`).

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
pub(crate) async fn prepare(client: &kube::Client, pod: &Value, pod_dir: &Path, claims_dir: &Path, allowed_host_paths: &[PathBuf]) -> Result<Vec<Volume>, String> {
    let ns = s(&pod["metadata"]["namespace"]);
    let mut out = Vec::new();
    let Some(vols) = pod["spec"]["volumes"].as_array() else { return Ok(out) };
    for v in vols {
        let name = s(&v["name"]);
        if !safe_component(&name) {
            return Err(format!("volume name {name:?} is not a valid path component"));
        }
        let io = |e: std::io::Error| format!("volume {name}: {e}");
        if let Some(hp) = v.get("hostPath") {
            out.push(Volume { host_path: host_path(&name, hp, allowed_host_paths)?, name, read_only: false });
            continue;
        }
        let dir = pod_dir.join("volumes").join(&name);
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        if v.get("emptyDir").is_some() {
            out.push(Volume { name, host_path: dir, read_only: false });
        } else if let Some(sources) = file_sources(v) {
            let default_mode = mode_of(&sources.1, DEFAULT_MODE);
            let mut files = Vec::new();
            for source in &sources.0 {
                let fetched = match Projected::of(source) {
                    Some(p) => Some(p.source.entries(client, &ns, &p.object, true).await.map_err(|e| format!("volume {name}: {e}"))?),
                    None => match source.get("serviceAccountToken") {
                        Some(sat) => Some(Some(vec![(String::new(), request_token(client, pod, sat).await.map_err(|e| format!("MountVolume.SetUp failed for volume \"{name}\" : failed to fetch token: {e}"))?)])),
                        None => None,
                    },
                };
                files.extend(project(source, fetched, pod, default_mode, &name)?);
            }
            for f in files {
                let path = dir.join(&f.path);
                if let Some(parent) = path.parent() {
                    tokio::fs::create_dir_all(parent).await.map_err(io)?;
                }
                tokio::fs::write(&path, &f.data).await.map_err(io)?;
                use std::os::unix::fs::PermissionsExt as _;
                tokio::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode)).await.map_err(io)?;
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
            return Err(format!(
                "volume \"{name}\": only emptyDir, configMap, secret, downwardAPI, projected and persistentVolumeClaim volumes are supported"
            ));
        }
    }
    if let Some(group) = crate::security_context::fs_group(pod) {
        // hostPath volumes keep their owners, as in Kubernetes.
        let owned: Vec<(PathBuf, bool)> = out.iter().filter(|v| !is_host_path(vols, &v.name)).map(|v| (v.host_path.clone(), v.read_only)).collect();
        tokio::task::spawn_blocking(move || owned.iter().for_each(|(dir, read_only)| set_volume_ownership(dir, group, *read_only)))
            .await
            .map_err(|e| format!("fsGroup: {e}"))?;
    }
    Ok(out)
}

/// Fetches the projected ServiceAccount tokens of the pod's volumes again and replaces
/// their files whole (a new file renamed over the old: a guest never reads half a token).
pub(crate) async fn refresh_tokens(client: &kube::Client, pod: &Value, pod_dir: &Path) -> Result<(), String> {
    for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        let name = s(&v["name"]);
        let Some(sources) = v["projected"]["sources"].as_array() else { continue };
        if !safe_component(&name) {
            continue;
        }
        let mode = mode_of(&v["projected"], DEFAULT_MODE);
        for sat in sources.iter().filter_map(|src| src.get("serviceAccountToken")) {
            let path = s(&sat["path"]);
            if !relative_path(&path) {
                continue;
            }
            let token = request_token(client, pod, sat).await?;
            let target = pod_dir.join("volumes").join(&name).join(&path);
            let tmp = target.with_extension("refresh");
            let io = |e: std::io::Error| format!("volume {name}: {e}");
            tokio::fs::write(&tmp, &token).await.map_err(io)?;
            use std::os::unix::fs::PermissionsExt as _;
            tokio::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).await.map_err(io)?;
            if let Some(group) = crate::security_context::fs_group(pod) {
                set_volume_ownership(&tmp, group, true);
            }
            tokio::fs::rename(&tmp, &target).await.map_err(io)?;
        }
    }
    Ok(())
}

/// A token for the pod's ServiceAccount from the TokenRequest API, bound to the pod (what
/// a projected serviceAccountToken source holds).
async fn request_token(client: &kube::Client, pod: &Value, source: &Value) -> Result<Vec<u8>, String> {
    let ns = s(&pod["metadata"]["namespace"]);
    let account = pod["spec"]["serviceAccountName"].as_str().filter(|a| !a.is_empty()).unwrap_or("default");
    let mut spec = json!({
        "expirationSeconds": source["expirationSeconds"].as_i64().unwrap_or(3600),
        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]},
    });
    if let Some(aud) = source["audience"].as_str().filter(|a| !a.is_empty()) {
        spec["audiences"] = json!([aud]);
    }
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec});
    let req = http::Request::builder()
        .method(http::Method::POST)
        .uri(format!("/api/v1/namespaces/{ns}/serviceaccounts/{account}/token"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let answer: Value = client.request(req).await.map_err(|e| e.to_string())?;
    answer["status"]["token"].as_str().map(|t| t.as_bytes().to_vec()).ok_or_else(|| "the TokenRequest answer has no token".to_string())
}

fn is_host_path(vols: &[Value], name: &str) -> bool {
    vols.iter().any(|v| s(&v["name"]) == name && v.get("hostPath").is_some())
}

/// fsGroup as Kubernetes applies it (`SetVolumeOwnership`): everything under `dir`
/// (symlinks excepted) gets group `group` and group read (and write, unless the volume is
/// read-only) permission, directories also group search and the setgid bit, so what is
/// created in them later inherits the group. A failure (the node is not root) is logged
/// at debug level and skipped.
pub(crate) fn set_volume_ownership(dir: &Path, group: u32, read_only: bool) {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(md) = std::fs::symlink_metadata(dir) else { return };
    if md.file_type().is_symlink() {
        return;
    }
    if let Err(e) = std::os::unix::fs::lchown(dir, None, Some(group)) {
        tracing::debug!(error = %e, path = %dir.display(), group, "fsGroup: cannot change the group");
        return;
    }
    let mut mask = if read_only { 0o440 } else { 0o660 };
    if md.is_dir() {
        mask |= 0o2000 | 0o110;
    }
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode((md.permissions().mode() & 0o7777) | mask));
    if md.is_dir() {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            set_volume_ownership(&entry.path(), group, read_only);
        }
    }
}

/// A hostPath volume's directory or file: only under a prefix the node allows
/// (`--allow-host-path`), resolved through symlinks (so a link cannot lead out of it), and
/// checked against `type` as the kubelet checks it.
fn host_path(volume: &str, spec: &Value, allowed: &[PathBuf]) -> Result<PathBuf, String> {
    let path = s(&spec["path"]);
    let refuse = |why: &str| format!("MountVolume.SetUp failed for volume \"{volume}\" : hostPath {path:?} {why}");
    if allowed.is_empty() {
        return Err(refuse("is not allowed on this node (it allows no hostPath volumes; see --allow-host-path)"));
    }
    let p = Path::new(&path);
    if !p.is_absolute() || !p.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_))) {
        return Err(refuse("is not an absolute path without `..`"));
    }
    let prefixes: Vec<PathBuf> = allowed.iter().filter_map(|a| std::fs::canonicalize(a).ok()).collect();
    let inside = |real: &Path| prefixes.iter().any(|a| real.starts_with(a));
    let not_inside = || {
        let list: Vec<String> = allowed.iter().map(|a| a.display().to_string()).collect();
        refuse(&format!("is not under a prefix this node allows ({})", list.join(", ")))
    };
    // The deepest part that exists decides where the path leads (symlinks resolved);
    // only then may DirectoryOrCreate create the rest.
    let mut existing = p.to_path_buf();
    while !existing.exists() {
        existing = existing.parent().map(Path::to_path_buf).ok_or_else(not_inside)?;
    }
    let base = std::fs::canonicalize(&existing).map_err(|e| refuse(&e.to_string()))?;
    if !inside(&base) {
        return Err(not_inside());
    }
    let kind = spec["type"].as_str().unwrap_or("");
    if existing != p {
        if kind != "DirectoryOrCreate" {
            return Err(refuse("does not exist"));
        }
        std::fs::create_dir_all(base.join(p.strip_prefix(&existing).map_err(|_| not_inside())?)).map_err(|e| refuse(&e.to_string()))?;
    }
    let real = std::fs::canonicalize(p).map_err(|e| refuse(&e.to_string()))?;
    if !inside(&real) {
        return Err(not_inside());
    }
    let ok = match kind {
        "" | "DirectoryOrCreate" => true,
        "Directory" => real.is_dir(),
        // A guest sees directories only (WASI preopens): File, Socket and devices are refused.
        _ => false,
    };
    if !ok {
        return Err(refuse(&format!("is not a {kind} (or that type is not supported)")));
    }
    Ok(real)
}

/// Kubernetes' default file mode of configMap, secret, downwardAPI and projected volumes.
const DEFAULT_MODE: u32 = 0o644;

/// A file a configMap, secret, downwardAPI or projected volume holds.
#[derive(Debug, PartialEq)]
struct File {
    path: String,
    data: Vec<u8>,
    mode: u32,
}

fn mode_of(v: &Value, default: u32) -> u32 {
    v["defaultMode"].as_u64().or_else(|| v["mode"].as_u64()).map(|m| (m & 0o777) as u32).unwrap_or(default)
}

/// The sources a file-holding volume projects, and the spec holding its defaultMode: a
/// configMap, secret or downwardAPI volume is one source, a projected volume several.
fn file_sources(v: &Value) -> Option<(Vec<Value>, Value)> {
    for kind in ["configMap", "secret", "downwardAPI"] {
        if let Some(spec) = v.get(kind) {
            return Some((vec![json!({ kind: spec })], spec.clone()));
        }
    }
    let projected = v.get("projected")?;
    Some((projected["sources"].as_array().cloned().unwrap_or_default(), projected.clone()))
}

/// A relative path of normal components (what items' `path` must be).
fn relative_path(path: &str) -> bool {
    !path.is_empty() && Path::new(path).components().all(|c| matches!(c, Component::Normal(_)))
}

/// Pure: the files one source puts in volume `volume`: a configMap or secret (`fetched`:
/// the object's entries, None when it does not exist; all keys, or its `items` at their
/// paths) or downwardAPI items (from `pod`). Errors are the kubelet's FailedMount words.
fn project(source: &Value, fetched: Option<Option<Vec<(String, Vec<u8>)>>>, pod: &Value, default_mode: u32, volume: &str) -> Result<Vec<File>, String> {
    let mut files = Vec::new();
    if let Some(items) = source.get("downwardAPI").map(|d| d["items"].as_array().cloned().unwrap_or_default()) {
        for item in items {
            let path = s(&item["path"]);
            if !relative_path(&path) {
                return Err(format!("volume \"{volume}\": downwardAPI path {path:?} must be a relative path"));
            }
            let data = if let Some(f) = item.get("fieldRef") {
                downward_field(pod, &s(&f["fieldPath"]))?
            } else if let Some(r) = item.get("resourceFieldRef") {
                resource_field(pod, None, r)?
            } else {
                return Err(format!("volume \"{volume}\": downwardAPI item {path:?} needs a fieldRef or a resourceFieldRef"));
            };
            files.push(File { path, data: data.into_bytes(), mode: mode_of(&item, default_mode) });
        }
        return Ok(files);
    }
    if let Some(sat) = source.get("serviceAccountToken") {
        let path = s(&sat["path"]);
        if !relative_path(&path) {
            return Err(format!("volume \"{volume}\": serviceAccountToken path {path:?} must be a relative path"));
        }
        let token = fetched.flatten().and_then(|e| e.into_iter().next()).map(|(_, t)| t).ok_or_else(|| format!("volume \"{volume}\": no token"))?;
        files.push(File { path, data: token, mode: default_mode });
        return Ok(files);
    }
    if source.get("clusterTrustBundle").is_some() {
        return Err(format!("volume \"{volume}\": clusterTrustBundle projections are not supported"));
    }
    let Some(p) = Projected::of(source) else { return Ok(files) };
    let spec = source.get("configMap").or_else(|| source.get("secret")).cloned().unwrap_or(Value::Null);
    let entries = match fetched.flatten() {
        Some(e) => e,
        None if p.optional => return Ok(files),
        None => return Err(format!("MountVolume.SetUp failed for volume \"{volume}\" : {} \"{}\" not found", p.kind(), p.object)),
    };
    match spec["items"].as_array().filter(|i| !i.is_empty()) {
        None => {
            for (k, data) in entries {
                if safe_component(&k) {
                    files.push(File { path: k, data, mode: default_mode });
                }
            }
        }
        Some(items) => {
            for item in items {
                let (key, path) = (s(&item["key"]), s(&item["path"]));
                if !relative_path(&path) {
                    return Err(format!("volume \"{volume}\": item path {path:?} must be a relative path"));
                }
                match entries.iter().find(|(k, _)| *k == key) {
                    Some((_, data)) => files.push(File { path, data: data.clone(), mode: mode_of(item, default_mode) }),
                    None if p.optional => {}
                    None => {
                        return Err(format!("MountVolume.SetUp failed for volume \"{volume}\" : {} references non-existent {} key: {key}", p.kind(), if p.source == Source::ConfigMap { "config" } else { "secret" }));
                    }
                }
            }
        }
    }
    Ok(files)
}

/// `k="v"` lines, sorted by key (the kubelet's format for labels and annotations).
fn format_map(m: &Value) -> String {
    let mut lines: Vec<String> = m.as_object().into_iter().flatten().map(|(k, v)| format!("{k}={}", serde_json::to_string(v.as_str().unwrap_or("")).unwrap_or_default())).collect();
    lines.sort();
    lines.join("\n")
}

/// A downwardAPI volume's fieldRef (what the kubelet allows there).
fn downward_field(pod: &Value, path: &str) -> Result<String, String> {
    let m = &pod["metadata"];
    Ok(match path {
        "metadata.name" => s(&m["name"]),
        "metadata.namespace" => s(&m["namespace"]),
        "metadata.uid" => s(&m["uid"]),
        "metadata.labels" => format_map(&m["labels"]),
        "metadata.annotations" => format_map(&m["annotations"]),
        other => {
            let label = other.strip_prefix("metadata.labels['").and_then(|r| r.strip_suffix("']"));
            let ann = other.strip_prefix("metadata.annotations['").and_then(|r| r.strip_suffix("']"));
            match (label, ann) {
                (Some(l), _) => s(&m["labels"][l]),
                (_, Some(a)) => s(&m["annotations"][a]),
                _ => return Err(format!("unsupported downwardAPI fieldRef {other}")),
            }
        }
    })
}

/// A resourceFieldRef (`limits.cpu`, `requests.memory`, …) of the named container (or
/// `container`), divided by its divisor and rounded up, as the kubelet computes it.
pub(crate) fn resource_field(pod: &Value, container: Option<&str>, r: &Value) -> Result<String, String> {
    let name = r["containerName"].as_str().filter(|n| !n.is_empty()).or(container).unwrap_or("");
    let c = ["containers", "initContainers"]
        .iter()
        .flat_map(|l| pod["spec"][*l].as_array().into_iter().flatten())
        .find(|c| c["name"] == name)
        .ok_or_else(|| format!("resourceFieldRef: no container {name:?}"))?;
    let resource = s(&r["resource"]);
    let (field, what) = resource.split_once('.').ok_or_else(|| format!("unsupported resourceFieldRef resource {resource}"))?;
    if !matches!(field, "limits" | "requests") || !matches!(what, "cpu" | "memory" | "ephemeral-storage") {
        return Err(format!("unsupported resourceFieldRef resource {resource}"));
    }
    let q = flotilla_api::quantity::from_json;
    let value = q(&c["resources"][field][what]).or_else(|| (field == "requests").then(|| q(&c["resources"]["limits"][what])).flatten()).unwrap_or(0.0);
    let divisor = q(&r["divisor"]).filter(|d| *d > 0.0).unwrap_or(1.0);
    Ok(format!("{}", (value / divisor - 1e-9).ceil().max(0.0) as u64))
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
            // A secret volume names it secretName, a projected volume's secret source name.
            let name = sec["secretName"].as_str().or_else(|| sec["name"].as_str()).unwrap_or("").to_string();
            (Source::Secret, sec, name)
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
    fn fs_group_owns_volume_directories_setgid() {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/f"), "x").unwrap();
        std::fs::set_permissions(dir.path().join("sub/f"), std::fs::Permissions::from_mode(0o600)).unwrap();
        if std::fs::metadata(dir.path()).unwrap().uid() != 0 {
            eprintln!("skipped: chown needs root");
            return;
        }
        set_volume_ownership(dir.path(), 2000, false);
        let md = |p: &str| std::fs::metadata(dir.path().join(p)).unwrap();
        assert_eq!(md("sub").gid(), 2000);
        assert_eq!(md("sub").mode() & 0o2070, 0o2070, "{:o}", md("sub").mode());
        assert_eq!((md("sub/f").gid(), md("sub/f").mode() & 0o7777), (2000, 0o660));
        set_volume_ownership(dir.path(), 3000, true);
        assert_eq!(md("sub/f").gid(), 3000);
    }

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

    fn pod() -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"b": "2", "a": "x y"}},
               "spec": {"containers": [{"name": "main", "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}}]}})
    }

    #[test]
    fn host_paths_only_under_allowed_prefixes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let allowed = dir.path().join("shared");
        std::fs::create_dir_all(allowed.join("data")).unwrap();
        std::os::unix::fs::symlink("/etc", allowed.join("etc")).unwrap();
        let spec = |p: &Path, t: &str| json!({"path": p.to_str().unwrap(), "type": t});
        let ok = host_path("v", &spec(&allowed.join("data"), "Directory"), std::slice::from_ref(&allowed)).unwrap();
        assert!(ok.ends_with("shared/data"));
        let none = host_path("v", &spec(&dir.path().join("made"), "DirectoryOrCreate"), &[]).unwrap_err();
        assert!(none.contains("hostPath") && none.contains("allows no hostPath volumes"), "{none}");
        assert!(!dir.path().join("made").exists(), "nothing is created outside the allowed prefixes");
        let outside = host_path("v", &spec(&dir.path().join("made"), "DirectoryOrCreate"), std::slice::from_ref(&allowed)).unwrap_err();
        assert!(outside.contains("is not under a prefix") && !dir.path().join("made").exists(), "{outside}");
        let out = host_path("v", &json!({"path": "/etc"}), std::slice::from_ref(&allowed)).unwrap_err();
        assert!(out.contains("\"/etc\" is not under a prefix this node allows"), "{out}");
        let link = host_path("v", &spec(&allowed.join("etc"), ""), std::slice::from_ref(&allowed)).unwrap_err();
        assert!(link.contains("is not under a prefix"), "a symlink out is refused: {link}");
        let created = host_path("v", &spec(&allowed.join("new/dir"), "DirectoryOrCreate"), std::slice::from_ref(&allowed)).unwrap();
        assert!(created.is_dir());
        assert!(host_path("v", &spec(&allowed.join("data"), "File"), std::slice::from_ref(&allowed)).is_err());
    }

    #[test]
    fn items_pick_keys_paths_and_modes() {
        let entries = Some(Some(vec![("a".to_string(), b"1".to_vec()), ("b".to_string(), b"2".to_vec())]));
        let all = project(&json!({"configMap": {"name": "cm"}}), entries.clone(), &pod(), 0o644, "v").unwrap();
        assert_eq!(all.iter().map(|f| (f.path.as_str(), f.mode)).collect::<Vec<_>>(), [("a", 0o644), ("b", 0o644)]);
        let some = project(&json!({"configMap": {"name": "cm", "items": [{"key": "b", "path": "dir/b.txt", "mode": 0o400}]}}), entries.clone(), &pod(), 0o644, "v").unwrap();
        assert_eq!(some, [File { path: "dir/b.txt".into(), data: b"2".to_vec(), mode: 0o400 }]);
        let missing = project(&json!({"configMap": {"name": "cm", "items": [{"key": "zz", "path": "z"}]}}), entries.clone(), &pod(), 0o644, "v");
        assert_eq!(missing.unwrap_err(), "MountVolume.SetUp failed for volume \"v\" : configmap references non-existent config key: zz");
        let escape = project(&json!({"secret": {"secretName": "s", "items": [{"key": "a", "path": "../a"}]}}), entries, &pod(), 0o644, "v");
        assert!(escape.is_err());
        assert!(project(&json!({"secret": {"secretName": "s", "optional": true}}), Some(None), &pod(), 0o644, "v").unwrap().is_empty());
        assert!(project(&json!({"secret": {"secretName": "s"}}), Some(None), &pod(), 0o644, "v").unwrap_err().contains("secret \"s\" not found"));
    }

    #[test]
    fn downward_api_files() {
        let items = json!({"downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "cpu", "resourceFieldRef": {"containerName": "main", "resource": "limits.cpu", "divisor": "1m"}},
            {"path": "mem", "resourceFieldRef": {"containerName": "main", "resource": "requests.memory", "divisor": "1Mi"}},
        ]}});
        let files = project(&items, None, &pod(), 0o644, "v").unwrap();
        let text: Vec<(&str, String)> = files.iter().map(|f| (f.path.as_str(), String::from_utf8_lossy(&f.data).into_owned())).collect();
        assert_eq!(text, [("labels", "a=\"x y\"\nb=\"2\"".to_string()), ("name", "p".into()), ("cpu", "500".into()), ("mem", "64".into())]);
        assert_eq!(resource_field(&pod(), Some("main"), &json!({"resource": "limits.cpu"})).unwrap(), "1", "rounded up to whole cores");
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
