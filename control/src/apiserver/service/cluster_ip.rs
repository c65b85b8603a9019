//! Service ClusterIPs, the writes: where the Api's create, update and delete of a Service
//! allocate and release addresses, with Kubernetes 1.33's model — one cluster-scoped
//! networking.k8s.io/v1 IPAddress object per allocated address, named after it, its
//! `spec.parentRef` naming the Service. The rules themselves are in `service_ip.rs`.
//!
//! Invariants:
//! - The IPAddress is created before the Service write that uses its address; creating it
//!   is the allocation, so concurrent creates (here or on another API server sharing the
//!   store) cannot both get one address: the loser sees AlreadyExists and, for a dynamic
//!   allocation, tries the next candidate.
//! - A failed Service write deletes the IPAddress it allocated; a Service really removed
//!   (not merely marked for deletion) or changed to ExternalName releases its addresses
//!   after its write. A crash between the two writes leaves an IPAddress without its
//!   Service, which `controllers/ipaddress_repair.rs` deletes after a grace period.
//! - An IPAddress is only ever deleted here if it still names the Service releasing it.
//! - Dry runs write nothing: a requested address is checked, a dynamic one left empty.

use std::net::Ipv4Addr;
use std::sync::Arc;

use flotilla_api::validation::Cause;
use serde_json::Value;

use super::super::error::ApiError;
use super::super::resources::{self, ResourceInfo};
use super::super::node_port;
use super::super::service_ip::{self, AllocError, Request};
use super::{Api, key};
use crate::store::{Op, Precondition, Stored};

/// Field manager of the IPAddress objects the API server writes.
const MANAGER: &str = "kube-apiserver";

fn is_service(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.kind == "Service"
}

fn ip_addresses() -> &'static ResourceInfo {
    resources::find("networking.k8s.io", "v1", "ipaddresses").expect("ipaddresses served")
}

/// Why an IPAddress could not be created.
pub(crate) enum Taken {
    /// Someone holds the address.
    Allocated,
    Failed(ApiError),
}

impl Api {
    /// Validation of a new object; a Service's IP fields are normalized, defaulted and
    /// checked first (what kube-apiserver does before allocating).
    pub(super) fn validate_created(&self, info: &ResourceInfo, body: &mut Value) -> Vec<Cause> {
        let mut ip_causes = Vec::new();
        if is_service(info)
            && let Some(spec) = body.get_mut("spec").filter(|s| s.is_object())
        {
            service_ip::normalize_create(spec);
            ip_causes = service_ip::init_ip_fields(spec, None);
            ip_causes.extend(node_port::check(spec, &self.node_port_range));
        }
        let mut causes = flotilla_api::validation::validate_create(info.group, info.kind, info.namespaced, body);
        service_ip::merge_causes(&mut causes, ip_causes);
        causes
    }

    /// Validation of an update computed from `old` (see [`prepare_update`] for the
    /// normalization that ran before).
    pub(super) fn validate_updated(&self, info: &ResourceInfo, old: &Value, new: &mut Value) -> Vec<Cause> {
        let mut ip_causes = Vec::new();
        if is_service(info)
            && let Some(spec) = new.get_mut("spec").filter(|s| s.is_object())
        {
            ip_causes = service_ip::init_ip_fields(spec, old.get("spec"));
            ip_causes.extend(node_port::check(spec, &self.node_port_range));
        }
        let mut causes = flotilla_api::validation::validate_update(info.group, info.kind, old, new);
        service_ip::merge_causes(&mut causes, ip_causes);
        causes
    }

    /// Dry run of a create: the requested address must be in range and free.
    pub(super) fn check_requested_ip(&self, info: &ResourceInfo, ns: Option<&str>, body: &Value) -> Result<(), ApiError> {
        if !is_service(info) {
            return Ok(());
        }
        let spec = &body["spec"];
        let name = super::name_of(body);
        self.check_node_ports(ns.unwrap_or("default"), name, body, None)?;
        let Request::Static(ip) = service_ip::request(spec) else { return Ok(()) };
        let v4 = self.service_range.check(ip).map_err(|e| self.static_failure(info, name, spec, &ip, &e))?;
        if let Some(held) = self.store.get(&key(ip_addresses(), None, &v4.to_string()))
            && service_ip::parent_service(&held.value) != Some((ns.unwrap_or("default"), name))
        {
            return Err(self.static_failure(info, name, spec, &ip, &AllocError::Allocated));
        }
        Ok(())
    }

    /// Stores a new object. A Service first gets its ClusterIP (an IPAddress object),
    /// which is released again if the Service write fails.
    pub(super) async fn write_created(&self, info: &ResourceInfo, ns: Option<&str>, name: &str, body: Value) -> Result<Arc<Stored>, ApiError> {
        let Some(namespace) = ns.filter(|_| info.namespaced && self.has_quotas(ns)) else {
            return self.write_created_unchecked(info, ns, name, body).await;
        };
        // Creates in a namespace with quotas are counted against them one at a time, so
        // two cannot both fit in the room left for one.
        let lock = super::super::quota::namespace_lock(namespace);
        let _held = lock.lock().await;
        self.admit_quotas(info, namespace, &body)?;
        self.write_created_unchecked(info, ns, name, body).await
    }

    async fn write_created_unchecked(&self, info: &ResourceInfo, ns: Option<&str>, name: &str, mut body: Value) -> Result<Arc<Stored>, ApiError> {
        let k = key(info, ns, name);
        if !is_service(info) {
            return self.store.write(Op::Create { key: k, object: body }).await.map_err(|e| ApiError::from_store(e, info, name));
        }
        // Don't take an address for a create that is bound to fail.
        if self.store.get(&k).is_some() {
            return Err(ApiError::already_exists(info, name));
        }
        let namespace = ns.unwrap_or("default");
        let allocated = self.allocate(info, namespace, name, &mut body).await?;
        let ports = match self.allocate_node_ports(namespace, name, &mut body, None).await {
            Ok(ports) => ports,
            Err(e) => {
                if let Some(ip) = allocated {
                    self.release_ip(&ip.to_string(), namespace, name).await;
                }
                return Err(e);
            }
        };
        match self.store.write(Op::Create { key: k, object: body }).await {
            Ok(s) => Ok(s),
            Err(e) => {
                if let Some(ip) = allocated {
                    self.release_ip(&ip.to_string(), namespace, name).await;
                }
                self.release_node_ports(ports, namespace, name).await;
                Err(ApiError::from_store(e, info, name))
            }
        }
    }

    /// Stores an update computed from `old`. A Service whose spec changes and that needs an
    /// address it does not have (it was ExternalName, or was stored before ClusterIPs were
    /// allocated) gets one; the addresses it no longer holds are released once the write
    /// succeeded.
    pub(super) async fn write_updated(&self, info: &ResourceInfo, ns: Option<&str>, name: &str, old: &Stored, mut new: Value) -> Result<Arc<Stored>, ApiError> {
        let write = |object| Op::Update { key: key(info, ns, name), object, precondition: Precondition { resource_version: Some(old.rv), uid: None } };
        if !is_service(info) {
            return self.store.write(write(new)).await.map_err(|e| ApiError::from_store(e, info, name));
        }
        let namespace = ns.unwrap_or("default");
        let held = service_ip::allocated_ips(&old.value["spec"]);
        // A write that leaves the spec alone (status, metadata) allocates nothing.
        let allocated = if held.is_empty() && old.value["spec"] != new["spec"] { self.allocate(info, namespace, name, &mut new).await? } else { None };
        let held_ports = node_port::held(&old.value["spec"]);
        let ports = if old.value["spec"] != new["spec"] {
            match self.allocate_node_ports(namespace, name, &mut new, Some(&old.value)).await {
                Ok(ports) => ports,
                Err(e) => {
                    if let Some(ip) = allocated {
                        self.release_ip(&ip.to_string(), namespace, name).await;
                    }
                    return Err(e);
                }
            }
        } else {
            Vec::new()
        };
        match self.store.write(write(new)).await {
            Ok(s) => {
                let now = service_ip::allocated_ips(&s.value["spec"]);
                for ip in held.iter().filter(|ip| !now.contains(ip)) {
                    self.release_ip(ip, namespace, name).await;
                }
                let now_ports = node_port::held(&s.value["spec"]);
                self.release_node_ports(held_ports.difference(&now_ports).copied(), namespace, name).await;
                Ok(s)
            }
            Err(e) => {
                if let Some(ip) = allocated {
                    self.release_ip(&ip.to_string(), namespace, name).await;
                }
                self.release_node_ports(ports, namespace, name).await;
                Err(ApiError::from_store(e, info, name))
            }
        }
    }

    /// After an object was removed from the store: a Service's addresses are released.
    pub(super) async fn released_deleted(&self, info: &ResourceInfo, deleted: &Value) {
        if !is_service(info) {
            return;
        }
        let namespace = deleted["metadata"]["namespace"].as_str().unwrap_or("default");
        let name = super::name_of(deleted);
        for ip in service_ip::allocated_ips(&deleted["spec"]) {
            self.release_ip(&ip, namespace, name).await;
        }
        self.release_node_ports(node_port::held(&deleted["spec"]), namespace, name).await;
    }

    /// Allocates what the Service's spec asks for and records it there; returns the
    /// address taken, if any.
    async fn allocate(&self, info: &ResourceInfo, namespace: &str, name: &str, body: &mut Value) -> Result<Option<Ipv4Addr>, ApiError> {
        let spec = &mut body["spec"];
        match service_ip::request(spec) {
            Request::Nothing => Ok(None),
            Request::Static(ip) => {
                let v4 = self.service_range.check(ip).map_err(|e| self.static_failure(info, name, spec, &ip, &e))?;
                match self.create_ip_address(v4, namespace, name).await {
                    Ok(()) => Ok(Some(v4)),
                    Err(Taken::Allocated) => Err(self.static_failure(info, name, spec, &ip, &AllocError::Allocated)),
                    Err(Taken::Failed(e)) => Err(e),
                }
            }
            Request::Dynamic => {
                let seed = uuid::Uuid::new_v4().as_u64_pair().0;
                let addresses = ip_addresses();
                for ip in self.service_range.candidates(seed) {
                    if self.store.get(&key(addresses, None, &ip.to_string())).is_some() {
                        continue;
                    }
                    match self.create_ip_address(ip, namespace, name).await {
                        Ok(()) => {
                            service_ip::set_allocated(spec, ip);
                            return Ok(Some(ip));
                        }
                        // Another writer took it between the read and the create.
                        Err(Taken::Allocated) => continue,
                        Err(Taken::Failed(e)) => return Err(e),
                    }
                }
                Err(ApiError::internal(service_ip::dynamic_failure(&AllocError::Full)))
            }
        }
    }

    fn static_failure(&self, info: &ResourceInfo, name: &str, spec: &Value, ip: &std::net::IpAddr, e: &AllocError) -> ApiError {
        Self::invalid(info, name, vec![service_ip::static_failure(spec, ip, e)])
    }

    /// Creates the IPAddress that allocates `ip` to the Service `namespace/name`.
    pub(crate) async fn create_ip_address(&self, ip: Ipv4Addr, namespace: &str, name: &str) -> Result<(), Taken> {
        let info = ip_addresses();
        let mut obj = service_ip::ip_address(ip, namespace, name);
        self.prepare_create(info, &mut obj, MANAGER);
        let ip = ip.to_string();
        match self.store.write(Op::Create { key: key(info, None, &ip), object: obj }).await {
            Ok(_) => Ok(()),
            Err(e) => match ApiError::from_store(e, info, &ip) {
                e if e.reason == "AlreadyExists" => Err(Taken::Allocated),
                e => Err(Taken::Failed(e)),
            },
        }
    }

    /// Deletes the IPAddress of `ip` if it still names the Service `namespace/name`.
    /// Best effort: a failure is logged and left to the repair loop.
    pub(crate) async fn release_ip(&self, ip: &str, namespace: &str, name: &str) {
        let k = key(ip_addresses(), None, ip);
        let Some(cur) = self.store.get(&k) else { return };
        if service_ip::parent_service(&cur.value) != Some((namespace, name)) {
            return;
        }
        let op = Op::Delete { key: k, precondition: Precondition { resource_version: Some(cur.rv), uid: None } };
        if let Err(e) = self.store.write(op).await {
            tracing::debug!(error = %e, ip, service.namespace = namespace, service.name = name, "ClusterIP not released; the repair loop will");
        }
    }
}

/// Update, before generation and managed fields are computed: a Service's IP fields as
/// kube-apiserver normalizes them (see `service_ip::prepare_update`).
pub(super) fn prepare_update(info: &ResourceInfo, old: &Value, new: &mut Value) {
    if is_service(info) {
        service_ip::prepare_update(old, new);
        node_port::prepare_update(old, new);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::super::{DeleteOptions, Part, PatchType, SystemClock, WriteOptions};
    use super::*;
    use crate::apiserver::service_ip::ServiceRange;

    async fn api(cidr: &str) -> (tempfile::TempDir, Api) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(dir.path(), crate::store::StoreConfig::default()).expect("store");
        let range = ServiceRange::new(cidr.parse().expect("cidr")).expect("range");
        let api = Api::new(store, Arc::new(SystemClock)).with_service_range(range);
        let ns = resources::find("", "v1", "namespaces").expect("namespaces");
        api.create(ns, None, json!({"metadata": {"name": "default"}}), &WriteOptions::default()).await.expect("ns");
        (dir, api)
    }

    fn services() -> &'static ResourceInfo {
        resources::find("", "v1", "services").expect("services")
    }

    fn svc(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
    }

    async fn create(api: &Api, name: &str, spec: Value) -> Result<Value, ApiError> {
        api.create(services(), Some("default"), svc(name, spec), &WriteOptions::default()).await.map(|w| w.object)
    }

    /// (address, parent name) of every IPAddress.
    fn allocations(api: &Api) -> Vec<(String, String)> {
        let (items, _, _) = api.store.list("networking.k8s.io/ipaddresses/", None, None, &|_| true);
        items.iter().map(|a| (super::super::name_of(&a.value).to_string(), a.value["spec"]["parentRef"]["name"].as_str().unwrap_or("").to_string())).collect()
    }

    const PORTS: fn() -> Value = || json!([{"port": 80}]);

    #[tokio::test]
    async fn a_cluster_ip_is_allocated_from_the_upper_band() {
        let (_d, api) = api("10.43.0.0/16").await;
        let s = create(&api, "web", json!({"selector": {"app": "web"}, "ports": PORTS()})).await.expect("created");
        let ip: Ipv4Addr = s["spec"]["clusterIP"].as_str().expect("clusterIP").parse().expect("ip");
        assert!(api.service_range.cidr().contains(ip));
        assert!(u32::from(ip) > u32::from(Ipv4Addr::new(10, 43, 1, 0)), "{ip} is in the static band");
        assert_eq!(s["spec"]["clusterIPs"], json!([ip.to_string()]));
        assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4"]));
        assert_eq!(s["spec"]["ipFamilyPolicy"], "SingleStack");
        assert_eq!(allocations(&api), vec![(ip.to_string(), "web".to_string())]);
        let a = api.get(ip_addresses(), None, &ip.to_string()).expect("ipaddress").value.clone();
        assert_eq!(a["spec"]["parentRef"], json!({"resource": "services", "namespace": "default", "name": "web"}));
        assert_eq!(a["metadata"]["labels"]["ipaddress.kubernetes.io/managed-by"], "ipallocator.k8s.io");
        assert_eq!(a["metadata"]["managedFields"][0]["manager"], "kube-apiserver");
    }

    #[tokio::test]
    async fn requested_addresses_are_checked_for_range_and_clashes() {
        let (_d, api) = api("10.43.0.0/16").await;
        let s = create(&api, "a", json!({"clusterIP": "10.43.0.10", "ports": PORTS()})).await.expect("created");
        assert_eq!(s["spec"]["clusterIPs"], json!(["10.43.0.10"]));
        let e = create(&api, "b", json!({"clusterIP": "10.43.0.10", "ports": PORTS()})).await.expect_err("taken");
        assert_eq!((e.code, e.reason), (422, "Invalid"));
        assert_eq!(e.message, "Service \"b\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.43.0.10\"}: failed to allocate IP 10.43.0.10: provided IP is already allocated");
        assert_eq!(e.causes[0].field, "spec.clusterIPs");
        let e = create(&api, "c", json!({"clusterIP": "10.44.0.10", "ports": PORTS()})).await.expect_err("elsewhere");
        assert_eq!(e.message, "Service \"c\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.44.0.10\"}: failed to allocate IP 10.44.0.10: the provided network does not match the current range");
        let e = create(&api, "d", json!({"clusterIP": "10.43.255.255", "ports": PORTS()})).await.expect_err("broadcast");
        assert_eq!(e.message, "Service \"d\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.43.255.255\"}: failed to allocate IP 10.43.255.255: the provided IP (10.43.255.255) is not in the valid range. The range of valid IPs is 10.43.0.0/16");
        // Dry runs check the same without writing.
        let dry = WriteOptions { dry_run: true, ..Default::default() };
        let e = api.create(services(), Some("default"), svc("e", json!({"clusterIP": "10.43.0.10", "ports": PORTS()})), &dry).await.expect_err("taken");
        assert_eq!(e.code, 422);
        let w = api.create(services(), Some("default"), svc("e", json!({"ports": PORTS()})), &dry).await.expect("dry run");
        assert!(w.object["spec"].get("clusterIP").is_none(), "a dry run allocates nothing");
        assert_eq!(allocations(&api), vec![("10.43.0.10".to_string(), "a".to_string())]);
    }

    #[tokio::test]
    async fn headless_and_external_name_services_take_no_address() {
        let (_d, api) = api("10.43.0.0/16").await;
        let h = create(&api, "h", json!({"clusterIP": "None", "selector": {"app": "h"}, "ports": PORTS()})).await.expect("headless");
        assert_eq!(h["spec"]["clusterIPs"], json!(["None"]));
        assert_eq!(h["spec"]["ipFamilies"], json!(["IPv4"]));
        let e = create(&api, "x", json!({"type": "ExternalName", "externalName": "db.example.com"})).await.expect("external");
        assert!(e["spec"].get("clusterIP").is_none() && e["spec"].get("ipFamilies").is_none(), "{e}");
        assert!(allocations(&api).is_empty());
    }

    #[tokio::test]
    async fn delete_releases_the_address() {
        let (_d, api) = api("10.43.0.0/16").await;
        create(&api, "a", json!({"clusterIP": "10.43.0.10", "ports": PORTS()})).await.expect("created");
        api.delete(services(), Some("default"), "a", &DeleteOptions::default()).await.expect("deleted");
        assert!(allocations(&api).is_empty());
        create(&api, "b", json!({"clusterIP": "10.43.0.10", "ports": PORTS()})).await.expect("the address is free again");
        // A finalizer keeps the Service and its address until it is really removed.
        let mut held = svc("f", json!({"clusterIP": "10.43.0.11", "ports": PORTS()}));
        held["metadata"]["finalizers"] = json!(["example.com/hold"]);
        api.create(services(), Some("default"), held, &WriteOptions::default()).await.expect("created");
        api.delete(services(), Some("default"), "f", &DeleteOptions::default()).await.expect("marked");
        assert!(allocations(&api).iter().any(|(ip, _)| ip == "10.43.0.11"));
    }

    #[tokio::test]
    async fn updates_keep_the_address_and_follow_type_changes() {
        let (_d, api) = api("10.43.0.0/16").await;
        let s = create(&api, "a", json!({"clusterIP": "10.43.0.10", "ports": PORTS()})).await.expect("created");
        let opts = WriteOptions::default();
        // A PUT that leaves the allocated fields out keeps them.
        let put = svc("a", json!({"ports": [{"port": 81}]}));
        let w = api.update(services(), Some("default"), "a", put, Part::Main, &opts).await.expect("put");
        assert_eq!(w.object["spec"]["clusterIP"], "10.43.0.10");
        assert_eq!(w.object["spec"]["ipFamilies"], json!(["IPv4"]));
        // The address may not change.
        let mut moved = s.clone();
        moved["spec"]["clusterIP"] = json!("10.43.0.12");
        moved["metadata"].as_object_mut().expect("meta").remove("resourceVersion");
        let e = api.update(services(), Some("default"), "a", moved, Part::Main, &opts).await.expect_err("immutable");
        assert_eq!(e.message, "Service \"a\" is invalid: spec.clusterIPs[0]: Invalid value: []string{\"10.43.0.12\"}: may not change once set");
        // To ExternalName: the address is released and the IP fields cleared.
        let patch = json!({"spec": {"type": "ExternalName", "externalName": "db.example.com"}});
        let w = api.patch(services(), Some("default"), "a", PatchType::Merge, &patch, Part::Main, false, &opts).await.expect("to ExternalName");
        for k in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            assert!(w.object["spec"].get(k).is_none(), "{k}: {}", w.object);
        }
        assert!(allocations(&api).is_empty());
        // Back to ClusterIP: a new address.
        let patch = json!({"spec": {"type": "ClusterIP", "externalName": null}});
        let w = api.patch(services(), Some("default"), "a", PatchType::Merge, &patch, Part::Main, false, &opts).await.expect("to ClusterIP");
        let ip = w.object["spec"]["clusterIP"].as_str().expect("allocated").to_string();
        assert_eq!(allocations(&api), vec![(ip, "a".to_string())]);
    }

    #[tokio::test]
    async fn server_side_apply_creates_with_an_address() {
        let (_d, api) = api("10.43.0.0/16").await;
        let opts = WriteOptions { field_manager: "kubectl".into(), ..Default::default() };
        let w = api.patch(services(), Some("default"), "ssa", PatchType::Apply, &svc("ssa", json!({"ports": PORTS()})), Part::Main, false, &opts).await.expect("applied");
        let ip = w.object["spec"]["clusterIP"].as_str().expect("allocated").to_string();
        assert_eq!(allocations(&api), vec![(ip, "ssa".to_string())]);
    }

    #[tokio::test]
    async fn concurrent_creates_get_distinct_addresses_until_the_range_is_full() {
        // A /28 has 14 addresses and no static band.
        let (_d, api) = api("10.96.0.0/28").await;
        let results = futures::future::join_all((0..20).map(|i| {
            let api = api.clone();
            async move { create(&api, &format!("s{i}"), json!({"ports": PORTS()})).await }
        }))
        .await;
        let mut ips: Vec<String> = results.iter().filter_map(|r| r.as_ref().ok()).map(|s| s["spec"]["clusterIP"].as_str().unwrap_or("").to_string()).collect();
        assert_eq!(ips.len(), 14);
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), 14, "no address was handed out twice");
        for e in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!((e.code, e.reason, e.message.as_str()), (500, "InternalError", "Internal error occurred: failed to allocate a serviceIP: range is full"));
        }
        assert_eq!(allocations(&api).len(), 14);
    }

    /// Regression: a Service write that fails after the allocation must not leak the address.
    #[tokio::test]
    async fn a_failed_service_write_releases_its_address() {
        let (_d, api) = api("10.43.0.0/16").await;
        // Same name, concurrently: all pass the existence check, one write wins.
        let results = futures::future::join_all((0..8).map(|_| {
            let api = api.clone();
            async move { create(&api, "same", json!({"ports": PORTS()})).await }
        }))
        .await;
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
        for e in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(e.reason, "AlreadyExists");
        }
        let winner = results.iter().find_map(|r| r.as_ref().ok()).expect("one created");
        assert_eq!(allocations(&api), vec![(winner["spec"]["clusterIP"].as_str().unwrap_or("").to_string(), "same".to_string())]);
    }
}
