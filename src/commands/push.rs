//! `flotilla push FILE.wasm REF`: uploads a wasm component (or wasip1 module) as an OCI
//! artifact in the wasm OCI layout — config `application/vnd.wasm.config.v0+json`, one
//! `application/wasm` layer — to the cluster's own registry or any OCI registry.
//!
//! For the cluster's registry (REF's host is the kubeconfig cluster's host, or REF names no
//! registry at all) the kubeconfig's CA is trusted and its token is the credential.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use clap::Args;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_yaml::Value;
use sha2::Digest as _;

const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
const LAYER_MEDIA_TYPE: &str = "application/wasm";

/// Push a wasm component to a registry (the cluster's own by default) as an OCI artifact.
///
/// REF is REGISTRY/REPOSITORY[:TAG], e.g. 127.0.0.1:6443/hello:v1; without a registry part
/// (hello:v1) it goes to the cluster's registry from the kubeconfig. The manifest digest is
/// printed on success.
#[derive(Args, Debug)]
pub(crate) struct PushCommand {
    /// The wasm component or wasip1 module to push
    #[arg(value_name = "FILE.wasm")]
    pub file: PathBuf,
    /// Where to push it: [REGISTRY/]REPOSITORY[:TAG] (tag defaults to latest)
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Kubeconfig whose current context names the cluster (its CA and token are used for
    /// the cluster's registry) [default: first path of $KUBECONFIG, else ~/.kube/config]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Do not verify the registry's TLS certificate
    #[arg(long)]
    pub insecure: bool,
    /// Talk plain HTTP to the registry (e.g. a local test registry without TLS)
    #[arg(long)]
    pub plain_http: bool,
    /// Basic-auth credentials USER:PASSWORD for a registry other than the cluster's
    #[arg(long, value_name = "USER:PASSWORD")]
    pub user: Option<String>,
}

/// What the kubeconfig's current context says about the cluster.
struct ClusterAccess {
    /// host[:port] of the API server (which is also the registry).
    host: String,
    ca_pem: Option<Vec<u8>>,
    token: Option<String>,
}

fn kubeconfig_path(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(k) = flag {
        return Ok(k.to_path_buf());
    }
    if let Some(first) = std::env::var("KUBECONFIG").ok().and_then(|k| k.split(':').find(|p| !p.is_empty()).map(PathBuf::from)) {
        return Ok(first);
    }
    let home = std::env::var_os("HOME").ok_or_else(|| anyhow::anyhow!("HOME is not set; pass --kubeconfig"))?;
    Ok(PathBuf::from(home).join(".kube/config"))
}

fn named<'a>(doc: &'a Value, list: &str, key: &str, name: &str) -> Option<&'a Value> {
    doc.get(list)?.as_sequence()?.iter().find(|e| e.get("name").and_then(Value::as_str) == Some(name))?.get(key)
}

/// Reads a relative path in a kubeconfig relative to the kubeconfig's directory.
fn read_relative(base: &Path, p: &str) -> anyhow::Result<Vec<u8>> {
    let path = base.parent().unwrap_or(Path::new(".")).join(p);
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

fn cluster_access(path: &Path) -> anyhow::Result<ClusterAccess> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let doc: Value = serde_yaml::from_str(&text).with_context(|| format!("parsing kubeconfig {}", path.display()))?;
    let current = doc.get("current-context").and_then(Value::as_str).filter(|s| !s.is_empty());
    let current = current.ok_or_else(|| anyhow::anyhow!("kubeconfig {} has no current-context", path.display()))?;
    let ctx = named(&doc, "contexts", "context", current).ok_or_else(|| anyhow::anyhow!("context {current:?} not found in {}", path.display()))?;
    let cluster_name = ctx.get("cluster").and_then(Value::as_str).unwrap_or("");
    let user_name = ctx.get("user").and_then(Value::as_str).unwrap_or("");
    let cluster = named(&doc, "clusters", "cluster", cluster_name).ok_or_else(|| anyhow::anyhow!("cluster {cluster_name:?} not found in {}", path.display()))?;
    let server = cluster.get("server").and_then(Value::as_str).unwrap_or("");
    let host = server.split_once("://").map_or(server, |(_, rest)| rest).split('/').next().unwrap_or("").to_string();
    if host.is_empty() {
        bail!("cluster {cluster_name:?} in {} has no server", path.display());
    }
    let ca_pem = if let Some(data) = cluster.get("certificate-authority-data").and_then(Value::as_str) {
        Some(base64::engine::general_purpose::STANDARD.decode(data.trim()).context("decoding certificate-authority-data")?)
    } else if let Some(file) = cluster.get("certificate-authority").and_then(Value::as_str) {
        Some(read_relative(path, file)?)
    } else {
        None
    };
    let user = named(&doc, "users", "user", user_name);
    let token = match user {
        Some(u) => match (u.get("token").and_then(Value::as_str), u.get("tokenFile").and_then(Value::as_str)) {
            (Some(t), _) => Some(t.trim().to_string()),
            (None, Some(f)) => Some(String::from_utf8(read_relative(path, f)?).context("token file is not UTF-8")?.trim().to_string()),
            _ => None,
        },
        None => None,
    };
    Ok(ClusterAccess { host, ca_pem, token })
}

/// True when REF's first component names a registry (has a dot or port, or is localhost).
fn names_registry(reference: &str) -> bool {
    match reference.split_once('/') {
        Some((first, _)) => first.contains('.') || first.contains(':') || first == "localhost",
        None => false,
    }
}

/// "1.2 MiB" style.
fn human_bytes(n: f64) -> String {
    let mut v = n;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if v < 1024.0 || unit == "GiB" {
            return if unit == "B" { format!("{v:.0} {unit}") } else { format!("{v:.1} {unit}") };
        }
        v /= 1024.0;
    }
    unreachable!()
}

/// `wasip2` for a component, `wasip1` for a core module.
fn wasm_os(bytes: &[u8]) -> anyhow::Result<&'static str> {
    if bytes.get(..4) != Some(b"\0asm") {
        bail!("not a WebAssembly binary (missing the \\0asm magic)");
    }
    match bytes.get(4..8) {
        Some([1, 0, 0, 0]) => Ok("wasip1"),
        Some([0x0d, 0, 1, 0]) => Ok("wasip2"),
        _ => bail!("unsupported WebAssembly binary version"),
    }
}

impl PushCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let wasm = std::fs::read(&self.file).with_context(|| format!("reading {}", self.file.display()))?;
        let os = wasm_os(&wasm).with_context(|| format!("{} is not a wasm component", self.file.display()))?;
        // The kubeconfig is only required when pushing to the cluster's registry.
        let access = kubeconfig_path(self.kubeconfig.as_deref()).and_then(|p| cluster_access(&p));
        let reference_text = if names_registry(&self.reference) {
            self.reference.clone()
        } else {
            let access = access.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
            format!("{}/{}", access.host, self.reference)
        };
        let reference: Reference = reference_text.parse().with_context(|| format!("invalid reference {reference_text:?}"))?;
        let to_cluster = access.as_ref().is_ok_and(|a| a.host == reference.registry());

        let mut config = ClientConfig {
            protocol: if self.plain_http { ClientProtocol::Http } else { ClientProtocol::Https },
            accept_invalid_certificates: self.insecure,
            ..ClientConfig::default()
        };
        let auth = match (&access, to_cluster, &self.user) {
            (_, _, Some(user)) => {
                let (u, p) = user.split_once(':').ok_or_else(|| anyhow::anyhow!("--user must be USER:PASSWORD"))?;
                RegistryAuth::Basic(u.to_string(), p.to_string())
            }
            (Ok(a), true, None) => {
                if let Some(ca) = &a.ca_pem {
                    config.extra_root_certificates.push(Certificate { encoding: CertificateEncoding::Pem, data: ca.clone() });
                }
                match &a.token {
                    Some(t) => RegistryAuth::Bearer(t.clone()),
                    None => RegistryAuth::Anonymous,
                }
            }
            _ => RegistryAuth::Anonymous,
        };
        let client = Client::new(config);

        let layer_digest = format!("sha256:{:x}", sha2::Sha256::digest(&wasm));
        let config_json = serde_json::json!({
            "created": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "architecture": "wasm",
            "os": os,
            "layerDigests": [layer_digest],
        });
        let config_blob = Config::new(serde_json::to_vec(&config_json)?, CONFIG_MEDIA_TYPE.to_string(), None);
        let layers = vec![ImageLayer::new(wasm, LAYER_MEDIA_TYPE.to_string(), None)];
        let manifest = OciImageManifest::build(&layers, &config_blob, None);
        let size = layers[0].data.len();
        eprintln!("flotilla: pushing {} ({}) to {reference}", self.file.display(), human_bytes(size as f64));
        let started = std::time::Instant::now();
        client
            .push(&reference, &layers, config_blob, &auth, Some(manifest))
            .await
            .with_context(|| format!("pushing {} to {reference}", self.file.display()))?;
        let took = started.elapsed().as_secs_f64().max(1e-3);
        eprintln!("flotilla: sent {} in {took:.2} s ({}/s)", human_bytes(size as f64), human_bytes(size as f64 / took));
        let digest = client.fetch_manifest_digest(&reference, &auth).await.context("reading back the manifest digest")?;
        println!("{reference}@{digest}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_detection_and_wasm_kinds() {
        assert!(names_registry("127.0.0.1:6443/hello:v1"));
        assert!(names_registry("localhost/hello"));
        assert!(names_registry("ghcr.io/a/b:1"));
        assert!(!names_registry("hello:v1"));
        assert!(!names_registry("team/hello:v1"));
        assert_eq!(wasm_os(b"\0asm\x01\0\0\0rest").expect("module"), "wasip1");
        assert_eq!(wasm_os(b"\0asm\x0d\0\x01\0rest").expect("component"), "wasip2");
        assert!(wasm_os(b"#!/bin/sh").is_err());
    }

    #[test]
    fn kubeconfig_current_context_gives_host_ca_and_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config");
        let ca = base64::engine::general_purpose::STANDARD.encode("PEM");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: f\ncontexts:\n- name: f\n  context: {{cluster: c, user: u}}\nclusters:\n- name: c\n  cluster: {{server: 'https://127.0.0.1:6443', certificate-authority-data: {ca}}}\nusers:\n- name: u\n  user: {{token: tok}}\n"
            ),
        )
        .expect("write");
        let a = cluster_access(&path).expect("access");
        assert_eq!(a.host, "127.0.0.1:6443");
        assert_eq!(a.ca_pem.as_deref(), Some(&b"PEM"[..]));
        assert_eq!(a.token.as_deref(), Some("tok"));
    }
}
