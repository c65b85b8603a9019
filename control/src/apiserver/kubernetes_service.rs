//! The objects every Kubernetes cluster has for its own API server, kept by the control
//! plane (kube-apiserver's default-servicecidr and kubernetes-service controllers):
//! - the cluster-scoped ServiceCIDR `kubernetes`, reflecting `--service-cidr`, Ready;
//! - the Service `default/kubernetes`: ClusterIP the first address of the service CIDR,
//!   port 443 (`https`) to the API server's port, no selector;
//! - its Endpoints and EndpointSlice listing the API server's address, when the API server
//!   listens on a specific address (one bound to 0.0.0.0 or :: has no single address to
//!   publish, so then they are not written).
//!
//! Invariants: [`ensure`] is idempotent and writes only what differs; it runs before the API
//! server serves and then every [`RECONCILE_INTERVAL`], so a deleted object comes back. A
//! ServiceCIDR or Service that disagrees with the flags (the data dir was started with
//! another `--service-cidr`) is reported, not rewritten: its range and ClusterIP are
//! immutable in Kubernetes.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::{Value, json};

use super::error::ApiError;
use super::resources::{self, ResourceInfo};
use super::service::{Part, PatchType, WriteOptions};
use super::service_ip::{self, DEFAULT_SERVICE_CIDR_NAME};
use super::{Api, Shutdown};

/// How often the objects are checked again (kube-apiserver's endpoint reconciler interval).
pub(crate) const RECONCILE_INTERVAL: Duration = Duration::from_secs(10);
const NAME: &str = "kubernetes";
const NAMESPACE: &str = "default";
const PORT_NAME: &str = "https";

fn info(group: &str, plural: &str) -> &'static ResourceInfo {
    resources::find(group, "v1", plural).expect("served resource")
}

fn options() -> WriteOptions {
    WriteOptions { field_manager: "kube-apiserver".into(), ..Default::default() }
}

/// Keeps the objects up to date until shutdown (the first pass is [`ensure`] at start).
pub(crate) async fn run(api: Api, api_addr: SocketAddr, shutdown: Shutdown) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RECONCILE_INTERVAL) => {}
            _ = shutdown.cancelled() => return,
        }
        ensure(&api, api_addr, false).await;
    }
}

/// Creates or corrects the objects. Failures are logged (`report` also logs
/// disagreements with the flags); the API server runs without them.
pub(crate) async fn ensure(api: &Api, api_addr: SocketAddr, report: bool) {
    if let Err(e) = api.ensure_priority_classes().await {
        tracing::warn!(error = %e, "built-in PriorityClasses not written");
    }
    if let Err(e) = ensure_service_cidr(api, report).await {
        tracing::warn!(error = %e, "ServiceCIDR kubernetes not written");
    }
    if let Err(e) = ensure_service(api, api_addr.port(), report).await {
        tracing::warn!(error = %e, "Service default/kubernetes not written");
    }
    if api_addr.ip().is_unspecified() {
        return;
    }
    if let Err(e) = ensure_endpoints(api, api_addr.ip(), api_addr.port()).await {
        tracing::warn!(error = %e, "Endpoints of default/kubernetes not written");
    }
}

async fn ensure_service_cidr(api: &Api, report: bool) -> Result<(), ApiError> {
    let info = info("networking.k8s.io", "servicecidrs");
    let current = match api.get(info, None, DEFAULT_SERVICE_CIDR_NAME) {
        Ok(c) => c.value.clone(),
        Err(e) if e.code == 404 => api.create(info, None, service_ip::service_cidr(&api.service_range), &options()).await?.object,
        Err(e) => return Err(e),
    };
    let want = json!([api.service_range.cidr().to_string()]);
    if current["spec"]["cidrs"] != want {
        if report {
            tracing::warn!(stored = %current["spec"]["cidrs"], flag = %want, "the default ServiceCIDR does not match --service-cidr; ClusterIPs are allocated from --service-cidr");
        }
        return Ok(());
    }
    let ready = current["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Ready"));
    if !ready {
        let mut with_status = current.clone();
        with_status["status"] = json!({"conditions": [{
            "type": "Ready", "status": "True", "reason": "", "message": "Kubernetes Service CIDR is ready",
            "lastTransitionTime": super::service::timestamp(api.clock.now()),
        }]});
        api.update(info, None, DEFAULT_SERVICE_CIDR_NAME, with_status, Part::Status, &options()).await?;
    }
    Ok(())
}

fn service_ports(port: u16) -> Value {
    json!([{"name": PORT_NAME, "port": 443, "protocol": "TCP", "targetPort": port}])
}

async fn ensure_service(api: &Api, port: u16, report: bool) -> Result<(), ApiError> {
    let info = info("", "services");
    let first = api.service_range.first_address().to_string();
    let current = match api.get(info, Some(NAMESPACE), NAME) {
        Ok(c) => c.value.clone(),
        Err(e) if e.code == 404 => {
            let svc = json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"type": "ClusterIP", "clusterIP": first, "ports": service_ports(port), "sessionAffinity": "None"},
            });
            api.create(info, Some(NAMESPACE), svc, &options()).await?;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    if report && current["spec"]["clusterIP"].as_str() != Some(first.as_str()) {
        tracing::warn!(cluster_ip = %current["spec"]["clusterIP"], expected = %first, "Service default/kubernetes does not have the first address of --service-cidr; delete it to have it re-created");
    }
    if current["spec"]["ports"] != service_ports(port) {
        let patch = json!({"spec": {"ports": service_ports(port)}});
        api.patch(info, Some(NAMESPACE), NAME, PatchType::Merge, &patch, Part::Main, false, &options()).await?;
    }
    Ok(())
}

/// Creates `desired` or, if it exists, merge-patches the fields of `desired` named in
/// `fields` where they differ.
async fn ensure_object(api: &Api, info: &ResourceInfo, desired: Value, fields: &[&str]) -> Result<(), ApiError> {
    match api.get(info, Some(NAMESPACE), NAME) {
        Ok(current) => {
            let mut patch = serde_json::Map::new();
            for f in fields {
                if current.value[*f] != desired[*f] {
                    patch.insert((*f).to_string(), desired[*f].clone());
                }
            }
            if !patch.is_empty() {
                api.patch(info, Some(NAMESPACE), NAME, PatchType::Merge, &Value::Object(patch), Part::Main, false, &options()).await?;
            }
            Ok(())
        }
        Err(e) if e.code == 404 => api.create(info, Some(NAMESPACE), desired, &options()).await.map(|_| ()),
        Err(e) => Err(e),
    }
}

async fn ensure_endpoints(api: &Api, ip: IpAddr, port: u16) -> Result<(), ApiError> {
    let ports = json!([{"name": PORT_NAME, "port": port, "protocol": "TCP"}]);
    // The API server writes the slice itself, so the mirroring controller must skip these.
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": ip.to_string()}], "ports": ports}],
    });
    ensure_object(api, info("", "endpoints"), endpoints, &["subsets"]).await?;
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"kubernetes.io/service-name": NAME}},
        "addressType": if ip.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{"addresses": [ip.to_string()], "conditions": {"ready": true}}],
        "ports": ports,
    });
    ensure_object(api, info("discovery.k8s.io", "endpointslices"), slice, &["addressType", "endpoints", "ports"]).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::apiserver::service::SystemClock;

    async fn api() -> (tempfile::TempDir, Api) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(dir.path(), crate::store::StoreConfig::default()).expect("store");
        let range = service_ip::ServiceRange::new("10.96.0.0/24".parse().expect("cidr")).expect("range");
        let api = Api::new(store, Arc::new(SystemClock)).with_service_range(range);
        let ns = info("", "namespaces");
        api.create(ns, None, json!({"metadata": {"name": "default"}}), &WriteOptions::default()).await.expect("ns");
        (dir, api)
    }

    #[tokio::test]
    async fn the_api_servers_objects_are_created_and_kept() {
        let (_dir, api) = api().await;
        let addr: SocketAddr = "127.0.0.1:6443".parse().expect("addr");
        ensure(&api, addr, true).await;
        let cidr = api.get(info("networking.k8s.io", "servicecidrs"), None, "kubernetes").expect("servicecidr").value.clone();
        assert_eq!(cidr["spec"]["cidrs"], json!(["10.96.0.0/24"]));
        assert_eq!(cidr["status"]["conditions"][0]["type"], "Ready");
        assert_eq!(cidr["status"]["conditions"][0]["message"], "Kubernetes Service CIDR is ready");
        let svc = api.get(info("", "services"), Some("default"), "kubernetes").expect("service").value.clone();
        assert_eq!(svc["spec"]["clusterIP"], "10.96.0.1");
        assert_eq!(svc["spec"]["clusterIPs"], json!(["10.96.0.1"]));
        assert_eq!(svc["spec"]["ports"], json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]));
        assert!(svc["spec"].get("selector").is_none());
        assert!(api.get(info("networking.k8s.io", "ipaddresses"), None, "10.96.0.1").is_ok(), "the address is allocated");
        let ep = api.get(info("", "endpoints"), Some("default"), "kubernetes").expect("endpoints").value.clone();
        assert_eq!(ep["subsets"], json!([{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]));
        let slice = api.get(info("discovery.k8s.io", "endpointslices"), Some("default"), "kubernetes").expect("slice").value.clone();
        assert_eq!(slice["endpoints"][0]["addresses"], json!(["127.0.0.1"]));

        // Idempotent: nothing is written when nothing changed.
        let rev = api.store.revision();
        ensure(&api, addr, false).await;
        assert_eq!(api.store.revision(), rev);

        // A restart on another port moves the target port and the endpoints.
        ensure(&api, "127.0.0.1:7000".parse().expect("addr"), false).await;
        let svc = api.get(info("", "services"), Some("default"), "kubernetes").expect("service").value.clone();
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 7000);
        assert_eq!(svc["spec"]["clusterIP"], "10.96.0.1");
        let ep = api.get(info("", "endpoints"), Some("default"), "kubernetes").expect("endpoints").value.clone();
        assert_eq!(ep["subsets"][0]["ports"][0]["port"], 7000);
    }

    #[tokio::test]
    async fn an_unspecified_listen_address_publishes_no_endpoints() {
        let (_dir, api) = api().await;
        ensure(&api, "0.0.0.0:6443".parse().expect("addr"), true).await;
        assert!(api.get(info("", "services"), Some("default"), "kubernetes").is_ok());
        assert!(api.get(info("", "endpoints"), Some("default"), "kubernetes").is_err());
    }
}
