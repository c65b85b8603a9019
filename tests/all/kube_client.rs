//! kube-rs (the real Rust client) against an in-process control plane: typed CRUD on
//! ConfigMaps and Deployments, and a `kube::runtime::watcher` stream. Also holds the
//! helpers the other in-process tests share (`in_process`, `kube_client`, `raw_client`).

use std::time::Duration;

use flotilla_control::store::StoreConfig;
use flotilla_control::{ControlPlaneConfig, ControlPlaneHandle};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, Config};
use serde_json::json;

/// A control plane running inside the test process, with a kube client for it.
pub struct InProcess {
    pub handle: ControlPlaneHandle,
    pub client: Client,
    /// Kept so the data dir lives as long as the cluster.
    pub _dir: tempfile::TempDir,
}

/// Starts a control plane in a fresh temp dir with `store` settings.
pub async fn in_process(store: StoreConfig) -> InProcess {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ControlPlaneConfig { data_dir: dir.path().join("data"), listen: "127.0.0.1:0".parse().expect("addr"), store, scheduler: true, network: Default::default(), service_lb: true, audit: Default::default(), flow_control: Default::default() };
    let handle = flotilla_control::start(config).await.expect("start control plane");
    let client = kube_client(&handle.url(), &handle.ca_pem, &handle.admin_token);
    InProcess { handle, client, _dir: dir }
}

/// A kube client for `url`, trusting the CA in `ca_pem`, authenticating with `token`.
pub fn kube_client(url: &str, ca_pem: &str, token: &str) -> Client {
    use base64::Engine as _;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let b64: String = ca_pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64.trim()).expect("CA PEM is base64");
    let mut config = Config::new(url.parse().expect("cluster url"));
    config.root_cert = Some(vec![der]);
    config.auth_info.token = Some(token.to_string().into());
    Client::try_from(config).expect("kube client")
}

/// A plain HTTPS client trusting the cluster CA (for requests kube-rs will not send as-is).
pub fn raw_client(ca_pem: &str) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA cert");
    reqwest::Client::builder().tls_certs_only([cert]).build().expect("reqwest client")
}

fn cm(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"suite": "kube-client"}},
        "data": data.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
    }))
    .expect("configmap")
}

fn data_of(c: &ConfigMap) -> Vec<(String, String)> {
    c.data.clone().unwrap_or_default().into_iter().collect()
}

fn rv_of<K: kube::Resource>(k: &K) -> u64 {
    k.meta().resource_version.as_deref().expect("resourceVersion set").parse().expect("numeric resourceVersion")
}

fn pair(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_crud() {
    let c = in_process(StoreConfig::default()).await;
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");

    let created = api.create(&PostParams::default(), &cm("crud", &[("a", "1")])).await.expect("create");
    assert!(created.metadata.uid.is_some(), "uid assigned");
    assert!(created.metadata.creation_timestamp.is_some(), "creationTimestamp assigned");
    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
    let rv1 = rv_of(&created);

    let err = api.create(&PostParams::default(), &cm("crud", &[("a", "1")])).await.expect_err("duplicate create");
    match err {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"), "{s:?}"),
        e => panic!("unexpected error {e:?}"),
    }

    let got = api.get("crud").await.expect("get");
    assert_eq!(got.metadata.uid, created.metadata.uid);
    assert_eq!(data_of(&got), vec![pair("a", "1")]);

    api.create(&PostParams::default(), &cm("other", &[])).await.expect("create other");
    let list = api.list(&ListParams::default().labels("suite=kube-client")).await.expect("list");
    let mut names: Vec<String> = list.items.iter().filter_map(|i| i.metadata.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["crud", "other"]);
    assert!(list.metadata.resource_version.is_some(), "list carries a resourceVersion");

    // Replace with the read resourceVersion succeeds; replaying it conflicts.
    let mut next = got.clone();
    next.data = Some([pair("a", "2")].into_iter().collect());
    let replaced = api.replace("crud", &PostParams::default(), &next).await.expect("replace");
    assert_eq!(data_of(&replaced), vec![pair("a", "2")]);
    let rv2 = rv_of(&replaced);
    assert!(rv2 > rv1, "replace bumps resourceVersion: {rv1} -> {rv2}");
    match api.replace("crud", &PostParams::default(), &next).await.expect_err("stale replace") {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"), "{s:?}"),
        e => panic!("unexpected error {e:?}"),
    }

    // JSON merge patch: adds b, removes a (null), keeps labels.
    let merged = api.patch("crud", &PatchParams::default(), &Patch::Merge(json!({"data": {"a": null, "b": "3"}}))).await.expect("merge patch");
    assert_eq!(data_of(&merged), vec![pair("b", "3")]);
    assert_eq!(merged.metadata.labels.as_ref().and_then(|l| l.get("suite")).map(String::as_str), Some("kube-client"));
    assert!(rv_of(&merged) > rv2);

    // Server-side apply: creates a new object, then updates the fields it owns.
    let pp = PatchParams::apply("flotilla-tests");
    let applied = api
        .patch("applied", &pp, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"x": "1"}})))
        .await
        .expect("apply create");
    assert_eq!(data_of(&applied), vec![pair("x", "1")]);
    let managers: Vec<String> = applied.metadata.managed_fields.iter().flatten().filter_map(|m| m.manager.clone()).collect();
    assert!(managers.iter().any(|m| m == "flotilla-tests"), "managedFields records the applier: {managers:?}");
    let applied = api
        .patch("applied", &pp, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"y": "2"}})))
        .await
        .expect("apply update");
    // The applier no longer owns x, so x is removed.
    assert_eq!(data_of(&applied), vec![pair("y", "2")]);

    api.delete("crud", &DeleteParams::default()).await.expect("delete");
    match api.get("crud").await.expect_err("get after delete") {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"), "{s:?}"),
        e => panic!("unexpected error {e:?}"),
    }
    assert!(api.get_opt("crud").await.expect("get_opt").is_none());
    match api.delete("crud", &DeleteParams::default()).await.expect_err("second delete") {
        kube::Error::Api(s) => assert_eq!(s.code, 404, "{s:?}"),
        e => panic!("unexpected error {e:?}"),
    }
    c.handle.shutdown().await;
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]},
            },
        },
    }))
    .expect("deployment")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_crud() {
    let c = in_process(StoreConfig::default()).await;
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), "default");

    let created = api.create(&PostParams::default(), &deployment("web", 2)).await.expect("create");
    assert_eq!(created.metadata.generation, Some(1));
    let spec = created.spec.as_ref().expect("spec");
    assert_eq!(spec.replicas, Some(2));
    assert_eq!(spec.strategy.as_ref().and_then(|s| s.type_.as_deref()), Some("RollingUpdate"), "strategy defaulted");
    assert_eq!(spec.revision_history_limit, Some(10));
    let container = &spec.template.spec.as_ref().expect("pod spec").containers[0];
    assert_eq!(container.image_pull_policy.as_deref(), Some("IfNotPresent"), "imagePullPolicy defaulted");

    let got = api.get("web").await.expect("get");
    assert_eq!(got.metadata.uid, created.metadata.uid);
    let list = api.list(&ListParams::default()).await.expect("list");
    assert_eq!(list.items.iter().filter_map(|d| d.metadata.name.as_deref()).collect::<Vec<_>>(), ["web"]);

    // Replace the spec: generation bumps.
    let mut next = got.clone();
    next.spec.as_mut().expect("spec").replicas = Some(3);
    let replaced = api.replace("web", &PostParams::default(), &next).await.expect("replace");
    assert_eq!(replaced.spec.as_ref().and_then(|s| s.replicas), Some(3));
    assert_eq!(replaced.metadata.generation, Some(2));

    // A metadata-only merge patch does not bump generation.
    let patched = api.patch("web", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"tier": "front"}}}))).await.expect("merge patch");
    assert_eq!(patched.metadata.labels.as_ref().and_then(|l| l.get("tier")).map(String::as_str), Some("front"));
    assert_eq!(patched.metadata.generation, Some(2));

    // Server-side apply of a changed image.
    let pp = PatchParams::apply("flotilla-tests").force();
    let mut desired = serde_json::to_value(deployment("web", 3)).expect("json");
    desired["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    let applied = api.patch("web", &pp, &Patch::Apply(desired)).await.expect("apply");
    let spec = applied.spec.as_ref().expect("spec");
    assert_eq!(spec.template.spec.as_ref().expect("pod spec").containers[0].image.as_deref(), Some("nginx:1.28"));
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(applied.metadata.generation, Some(3));
    assert_eq!(applied.metadata.labels.as_ref().and_then(|l| l.get("tier")).map(String::as_str), Some("front"), "label from merge patch kept");

    api.delete("web", &DeleteParams::default()).await.expect("delete");
    let gone = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if api.get_opt("web").await.expect("get_opt").is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "deployment not deleted within 10s");
    c.handle.shutdown().await;
}

type Events = futures::stream::BoxStream<'static, Result<watcher::Event<ConfigMap>, watcher::Error>>;

async fn next(events: &mut Events) -> watcher::Event<ConfigMap> {
    tokio::time::timeout(Duration::from_secs(15), events.try_next()).await.expect("watcher event within 15s").expect("watcher ok").expect("stream open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_watcher_sees_added_modified_deleted() {
    let c = in_process(StoreConfig::default()).await;
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    api.create(&PostParams::default(), &cm("pre", &[("k", "v")])).await.expect("create pre");

    // Every namespace also holds kube-root-ca.crt (the cluster CA, as in Kubernetes).
    let mut events = watcher(api.clone(), watcher::Config::default().fields("metadata.name!=kube-root-ca.crt")).boxed();
    let name = |c: &ConfigMap| c.metadata.name.clone().unwrap_or_default();

    // Initial list: Init, InitApply(pre), InitDone.
    assert!(matches!(next(&mut events).await, watcher::Event::Init));
    match next(&mut events).await {
        watcher::Event::InitApply(o) => assert_eq!(name(&o), "pre"),
        e => panic!("expected InitApply(pre), got {e:?}"),
    }
    assert!(matches!(next(&mut events).await, watcher::Event::InitDone));

    let created = api.create(&PostParams::default(), &cm("live", &[("k", "1")])).await.expect("create live");
    match next(&mut events).await {
        watcher::Event::Apply(o) => {
            assert_eq!(name(&o), "live");
            assert_eq!(o.metadata.resource_version, created.metadata.resource_version);
        }
        e => panic!("expected Apply(live) for ADDED, got {e:?}"),
    }
    let modified = api.patch("live", &PatchParams::default(), &Patch::Merge(json!({"data": {"k": "2"}}))).await.expect("patch live");
    match next(&mut events).await {
        watcher::Event::Apply(o) => {
            assert_eq!(name(&o), "live");
            assert_eq!(data_of(&o), vec![pair("k", "2")]);
            assert_eq!(o.metadata.resource_version, modified.metadata.resource_version);
        }
        e => panic!("expected Apply(live) for MODIFIED, got {e:?}"),
    }
    api.delete("live", &DeleteParams::default()).await.expect("delete live");
    match next(&mut events).await {
        watcher::Event::Delete(o) => assert_eq!(name(&o), "live"),
        e => panic!("expected Delete(live), got {e:?}"),
    }
    drop(events);
    c.handle.shutdown().await;
}
