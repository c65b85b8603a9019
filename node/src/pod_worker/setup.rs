//! The I/O of setting a container up, for the worker: the credentials its image is pulled
//! with, the imageID it reports, and what its instances are granted (env, mounts, argv,
//! limits, log files). The decisions on failures are the lifecycle's.
//!
//! Invariants: a guest's env holds only what its spec names (values, fieldRefs, ConfigMap
//! and Secret keys); every HTTP request it serves has the runtime's request deadline;
//! its outgoing requests go through its pod's network, unless its securityContext drops
//! that (`security_context.rs`), as readOnlyRootFilesystem makes every mount read-only.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::{Value, json};

use crate::agent::Ctx;
use crate::images::{Image, RegistryAuth, auths_from_dockerconfigjson};
use crate::logs::ContainerLogs;
use crate::pod_table::StdinPipe;
use crate::runtime::{InstanceSpec, Limits, Network};
use crate::volumes::{self, Source, Volume, safe_component};

fn s(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

/// What a set-up container's instances are granted, and where its output goes.
pub(super) struct Prepared {
    pub spec: InstanceSpec,
    pub ports: Vec<u16>,
    pub logs: Arc<ContainerLogs>,
    /// The container's stdin pipe (spec `stdin: true`), kept across its restarts.
    pub stdin: Option<Arc<StdinPipe>>,
}

/// Why a container could not be configured.
pub(super) enum ConfigError {
    /// Env could not be resolved (a missing ConfigMap or Secret): worth another try.
    Env(String),
    /// The spec asks for something that cannot be (a subPath outside its volume).
    Spec(String),
    /// Not the pod's fault (logged here).
    Internal,
}

/// Registry credentials for the pod's images: the node's token for the cluster's own
/// registry (the API server), then the pod's imagePullSecrets.
pub(super) async fn pull_auths(ctx: &Ctx, pod: &Value) -> Vec<RegistryAuth> {
    let mut out = Vec::new();
    if let Some(host) = ctx.config.server.split("://").nth(1).map(|h| h.trim_end_matches('/').to_string()) {
        out.push(RegistryAuth { registry: host, username: crate::images::FLOTILLA_REGISTRY_USER.to_string(), password: ctx.config.token.clone() });
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &s(&pod["metadata"]["namespace"]));
    for r in pod["spec"]["imagePullSecrets"].as_array().into_iter().flatten() {
        if let Ok(Some(sec)) = api.get_opt(&s(&r["name"])).await
            && let Some(data) = sec.data.as_ref().and_then(|d| d.get(".dockerconfigjson"))
        {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&data.0);
            match auths_from_dockerconfigjson(&b64) {
                Ok(a) => out.extend(a),
                Err(e) => tracing::warn!(error = %e, "bad imagePullSecret"),
            }
        }
    }
    out
}

/// The imageID a container status reports for `image`: repository@digest.
pub(super) fn image_id(image: &str, img: &Image) -> String {
    format!("{}@{}", repository(image), img.manifest_digest.as_deref().unwrap_or(&img.digest))
}

/// The repository part of an image reference (no tag, no digest), as imageIDs name it.
fn repository(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    match no_digest.rfind(':') {
        Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
        _ => no_digest,
    }
}

/// Where a pod's container runs: what `configure` reads besides the container's spec.
pub(super) struct PodContext<'a> {
    pub ctx: &'a Ctx,
    pub pod: &'a Value,
    pub pod_ip: &'a str,
    pub pod_dir: &'a Path,
    pub volumes: &'a [Volume],
    /// The pod's network, granted to every container whose securityContext keeps it.
    pub network: Option<Arc<dyn Network>>,
}

/// Resolves what the container's instances are granted and opens its log files.
pub(super) async fn configure(p: PodContext<'_>, c: &Value) -> Result<Prepared, ConfigError> {
    let name = s(&c["name"]);
    let env = resolve_env(&p, c).await.map_err(ConfigError::Env)?;
    let grants = crate::security_context::grants(p.pod, c);
    let mut mounts = volumes::mounts(c, p.volumes).map_err(ConfigError::Spec)?;
    if grants.read_only {
        mounts.iter_mut().for_each(|m| m.read_only = true);
    }
    let network = if grants.network { p.network.clone() } else { None };
    let words = |field: &str| -> Vec<String> {
        c[field].as_array().map(|a| a.iter().map(|w| flotilla_api::pod::expand(&s(w), &env)).collect()).unwrap_or_default()
    };
    let mut argv = words("command");
    if argv.is_empty() {
        argv.push(name.clone());
    }
    argv.extend(words("args"));
    let limits = &c["resources"]["limits"];
    let limits = Limits {
        memory_bytes: limits["memory"].as_str().and_then(|q| flotilla_api::quantity::bytes(q).ok()),
        cpu_millis: limits["cpu"].as_str().and_then(|q| flotilla_api::quantity::millicores(q).ok()),
        // The runtime's default deadline.
        request_timeout: None,
    };
    let ports = c["ports"].as_array().map(|a| a.iter().filter_map(|p| p["containerPort"].as_u64()).map(|p| p as u16).collect()).unwrap_or_default();
    if !safe_component(&name) {
        tracing::error!(container = %name, "container name is not a valid path component");
        return Err(ConfigError::Internal);
    }
    let logs = ContainerLogs::open(p.pod_dir.join("logs").join(&name), p.ctx.config.max_log_bytes).map_err(|e| {
        tracing::error!(error = %e, "log dir");
        ConfigError::Internal
    })?;
    let stdin = (c["stdin"].as_bool() == Some(true)).then(|| Arc::new(StdinPipe::new(c["stdinOnce"].as_bool() == Some(true))));
    Ok(Prepared { spec: InstanceSpec { argv, env, mounts, limits, network, owner: grants.owner, usage: Arc::default() }, ports, logs, stdin })
}

/// The container's env: envFrom, then env (later entries replace earlier ones).
async fn resolve_env(p: &PodContext<'_>, c: &Value) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: String, v: String| {
        env.retain(|(n, _)| *n != k);
        env.push((k, v));
    };
    let pod = p.pod;
    let ns = s(&pod["metadata"]["namespace"]);
    let entries = |source: Source, name: String| {
        let ns = ns.clone();
        async move {
            let found = source.entries(&p.ctx.client, &ns, &name, false).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(found.map(|e| e.into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned())).collect::<Vec<_>>()))
        }
    };
    for f in list(c, "envFrom") {
        let prefix = s(&f["prefix"]);
        for (field, source, kind) in [("configMapRef", Source::ConfigMap, "configmap"), ("secretRef", Source::Secret, "secret")] {
            let Some(r) = f.get(field) else { continue };
            match entries(source, s(&r["name"])).await? {
                Some(found) => found.into_iter().for_each(|(k, v)| set(format!("{prefix}{k}"), v)),
                None if r["optional"] == json!(true) => {}
                None => return Err(format!("{kind} \"{}\" not found", s(&r["name"]))),
            }
        }
    }
    for e in list(c, "env") {
        let name = s(&e["name"]);
        if let Some(v) = e.get("value") {
            set(name, v.as_str().unwrap_or("").to_string());
            continue;
        }
        let Some(from) = e.get("valueFrom") else {
            set(name, String::new());
            continue;
        };
        if let Some(f) = from.get("fieldRef") {
            set(name, field_ref(p, &s(&f["fieldPath"]))?);
            continue;
        }
        if let Some(r) = from.get("resourceFieldRef") {
            set(name, crate::volumes::resource_field(p.pod, c["name"].as_str(), r)?);
            continue;
        }
        for (field, source, kind) in [("configMapKeyRef", Source::ConfigMap, "ConfigMap"), ("secretKeyRef", Source::Secret, "Secret")] {
            let Some(r) = from.get(field) else { continue };
            let key = s(&r["key"]);
            let found = entries(source, s(&r["name"])).await?.and_then(|found| found.into_iter().find(|(k, _)| *k == key));
            match found {
                Some((_, v)) => set(name, v),
                None if r["optional"] == json!(true) => {}
                None => return Err(format!("couldn't find key {key} in {kind} {ns}/{}", s(&r["name"]))),
            }
            break;
        }
    }
    Ok(env)
}

fn list<'v>(c: &'v Value, field: &str) -> impl Iterator<Item = &'v Value> {
    c[field].as_array().into_iter().flatten()
}

/// The value of an env fieldRef.
fn field_ref(p: &PodContext<'_>, path: &str) -> Result<String, String> {
    let pod = p.pod;
    Ok(match path {
        "metadata.name" => s(&pod["metadata"]["name"]),
        "metadata.namespace" => s(&pod["metadata"]["namespace"]),
        "metadata.uid" => s(&pod["metadata"]["uid"]),
        "spec.nodeName" => p.ctx.config.name.clone(),
        "spec.serviceAccountName" => s(&pod["spec"]["serviceAccountName"]),
        "status.podIP" => p.pod_ip.to_string(),
        "status.hostIP" => p.ctx.host_ip.clone(),
        other => {
            let label = other.strip_prefix("metadata.labels['").and_then(|r| r.strip_suffix("']"));
            let ann = other.strip_prefix("metadata.annotations['").and_then(|r| r.strip_suffix("']"));
            match (label, ann) {
                (Some(l), _) => s(&pod["metadata"]["labels"][l]),
                (_, Some(a)) => s(&pod["metadata"]["annotations"][a]),
                _ => return Err(format!("unsupported fieldRef {other}")),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::repository;

    #[test]
    fn repository_drops_tag_and_digest_but_not_port() {
        assert_eq!(repository("127.0.0.1:5000/hello:v1"), "127.0.0.1:5000/hello");
        assert_eq!(repository("127.0.0.1:5000/team/hello@sha256:abc"), "127.0.0.1:5000/team/hello");
        assert_eq!(repository("127.0.0.1:5000/hello"), "127.0.0.1:5000/hello");
        assert_eq!(repository("file:///opt/x.wasm"), "file:///opt/x.wasm");
    }
}
