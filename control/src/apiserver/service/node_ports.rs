//! Service node ports, the writes: where the Api's create, update and delete of a Service
//! allocate and release node ports (the rules are in `node_port.rs`).
//!
//! Kubernetes keeps one bitmap of the range in etcd; here each allocated port is one
//! store entry, `flotilla.dev/servicenodeports/PORT`, naming its Service — not an API
//! object (Kubernetes has none for node ports either), written as the cluster's IPAddress
//! objects are:
//! - the entry is created before the Service write that uses the port; creating it is the
//!   allocation, so two concurrent writers cannot both get a port;
//! - a failed Service write deletes the entries it created; ports a Service no longer
//!   holds after a write (or after it was removed) are released once the write succeeded;
//!   an entry is only ever deleted here while it still names the Service releasing it;
//! - a crash between the two writes leaves an entry without its Service: [`Api::repair_node_ports`]
//!   (run by the API server at start and then every minute, as kube-apiserver's repair
//!   loop) deletes entries older than [`ORPHAN_GRACE`] whose Service does not hold them;
//! - dry runs write nothing: requested ports are checked, dynamic ones left empty.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use super::super::error::ApiError;
use super::super::node_port::{self, NodePortRange, Want};
use super::super::resources::{self, ResourceInfo};
use super::{Api, key, timestamp};
use crate::store::{Op, Precondition};

const PREFIX: &str = "flotilla.dev/servicenodeports/";
/// How old an entry without its Service must be before the repair loop deletes it (a
/// create in flight holds its entry that long at most).
pub(crate) const ORPHAN_GRACE: Duration = Duration::from_secs(60);

fn entry_key(port: u16) -> String {
    format!("{PREFIX}{port}")
}

fn services() -> &'static ResourceInfo {
    resources::find("", "v1", "services").expect("services served")
}

/// The Service (namespace, name) an entry was allocated to.
fn owner(entry: &Value) -> (&str, &str) {
    (entry["namespace"].as_str().unwrap_or(""), entry["name"].as_str().unwrap_or(""))
}

impl Api {
    /// Takes the node ports `body` (a Service being created, or updated from `old`) needs
    /// and does not hold yet, writing the dynamic ones into its spec. On failure nothing
    /// stays taken. Returns the ports taken.
    pub(super) async fn allocate_node_ports(&self, namespace: &str, name: &str, body: &mut Value, old: Option<&Value>) -> Result<Vec<u16>, ApiError> {
        let wants = node_port::wanted(&body["spec"], old.map(|o| &o["spec"]));
        let mut taken: Vec<u16> = Vec::new();
        let result = self.take_all(namespace, name, body, &wants, &mut taken).await;
        if let Err(e) = result {
            self.release_node_ports(taken, namespace, name).await;
            return Err(e);
        }
        Ok(taken)
    }

    async fn take_all(&self, namespace: &str, name: &str, body: &mut Value, wants: &[Want], taken: &mut Vec<u16>) -> Result<(), ApiError> {
        let range = self.node_port_range;
        // Ports this Service holds or asks for: never handed out to its other ports.
        let mut mine: BTreeSet<u16> = node_port::held(&body["spec"]);
        for w in wants {
            if w.requested != 0 {
                let port = u16::try_from(w.requested).ok().filter(|p| range.contains(i64::from(*p)));
                let Some(port) = port else { return Err(self.node_port_invalid(body, node_port::not_in_range(w, &range))) };
                if !self.take(port, namespace, name).await? {
                    return Err(self.node_port_invalid(body, node_port::allocated(w)));
                }
                taken.push(port);
                continue;
            }
            let seed = uuid::Uuid::new_v4().as_u64_pair().0;
            let mut got = None;
            for port in range.candidates(seed) {
                if mine.contains(&port) || self.store.get(&entry_key(port)).is_some() {
                    continue;
                }
                if self.take(port, namespace, name).await? {
                    got = Some(port);
                    break;
                }
            }
            let Some(port) = got else { return Err(ApiError::internal(node_port::FULL.to_string())) };
            taken.push(port);
            mine.insert(port);
            node_port::set(&mut body["spec"], w, port);
        }
        Ok(())
    }

    /// Creates the entry of `port` for the Service; false if someone holds it.
    async fn take(&self, port: u16, namespace: &str, name: &str) -> Result<bool, ApiError> {
        let entry = json!({"namespace": namespace, "name": name, "created": timestamp(self.clock.now())});
        match self.store.write(Op::Create { key: entry_key(port), object: entry }).await {
            Ok(_) => Ok(true),
            Err(crate::store::StoreError::AlreadyExists) => {
                // A port this Service already holds (a request naming its own port).
                Ok(self.store.get(&entry_key(port)).is_some_and(|e| owner(&e.value) == (namespace, name)))
            }
            Err(e) => Err(ApiError::from_store(e, services(), name)),
        }
    }

    fn node_port_invalid(&self, body: &Value, cause: flotilla_api::validation::Cause) -> ApiError {
        Self::invalid(services(), super::name_of(body), vec![cause])
    }

    /// Dry run: the requested node ports must be in range and free (or this Service's).
    pub(super) fn check_node_ports(&self, namespace: &str, name: &str, body: &Value, old: Option<&Value>) -> Result<(), ApiError> {
        for w in node_port::wanted(&body["spec"], old.map(|o| &o["spec"])).iter().filter(|w| w.requested != 0) {
            let port = u16::try_from(w.requested).ok().filter(|p| self.node_port_range.contains(i64::from(*p)));
            let Some(port) = port else { return Err(self.node_port_invalid(body, node_port::not_in_range(w, &self.node_port_range))) };
            if self.store.get(&entry_key(port)).is_some_and(|e| owner(&e.value) != (namespace, name)) {
                return Err(self.node_port_invalid(body, node_port::allocated(w)));
            }
        }
        Ok(())
    }

    /// Deletes the entries of `ports` that still name the Service. Best effort: a failure
    /// is logged and left to the repair loop.
    pub(super) async fn release_node_ports(&self, ports: impl IntoIterator<Item = u16>, namespace: &str, name: &str) {
        for port in ports {
            let k = entry_key(port);
            let Some(cur) = self.store.get(&k) else { continue };
            if owner(&cur.value) != (namespace, name) {
                continue;
            }
            let op = Op::Delete { key: k, precondition: Precondition { resource_version: Some(cur.rv), uid: None } };
            if let Err(e) = self.store.write(op).await {
                tracing::debug!(error = %e, port, service.namespace = namespace, service.name = name, "node port not released; the repair loop will");
            }
        }
    }

    /// Deletes node-port entries whose Service does not hold their port, once older than
    /// [`ORPHAN_GRACE`]. Returns how many went.
    pub(crate) async fn repair_node_ports(&self) -> usize {
        let now = self.clock.now();
        let mut removed = 0;
        for (k, entry) in self.store.list_keys(PREFIX) {
            let Some(port) = k.strip_prefix(PREFIX).and_then(|p| p.parse::<u16>().ok()) else { continue };
            let (ns, name) = owner(&entry.value);
            let held = self.store.get(&key(services(), Some(ns), name)).is_some_and(|s| node_port::held(&s.value["spec"]).contains(&port));
            let created = entry.value["created"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            let old = created.is_none_or(|t| now.signed_duration_since(t).to_std().unwrap_or_default() >= ORPHAN_GRACE);
            if held || !old {
                continue;
            }
            let op = Op::Delete { key: k.to_string(), precondition: Precondition { resource_version: Some(entry.rv), uid: None } };
            if self.store.write(op).await.is_ok() {
                tracing::info!(port, service.namespace = ns, service.name = name, "released a node port its Service does not hold");
                removed += 1;
            }
        }
        removed
    }

    /// Allocates node ports from `range` rather than 30000-32767.
    pub(crate) fn with_node_port_range(mut self, range: NodePortRange) -> Self {
        self.node_port_range = range;
        self
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::super::{SystemClock, WriteOptions};
    use super::*;

    async fn api() -> (tempfile::TempDir, Api) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(dir.path(), crate::store::StoreConfig::default()).expect("store");
        let range = NodePortRange { first: 30000, last: 30009 };
        let api = Api::new(store, Arc::new(SystemClock)).with_node_port_range(range);
        let ns = resources::find("", "v1", "namespaces").expect("namespaces");
        api.create(ns, None, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}), &opts()).await.expect("namespace");
        (dir, api)
    }

    fn opts() -> WriteOptions {
        WriteOptions { field_manager: "test".into(), ..Default::default() }
    }

    fn svc(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"}, "spec": spec})
    }

    #[tokio::test]
    async fn node_ports_are_allocated_requested_refused_and_released() {
        let (_dir, api) = api().await;
        let info = services();
        let a = api.create(info, Some("default"), svc("a", json!({"type": "NodePort", "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]})), &opts()).await.expect("a");
        let ports = node_port::held(&a.object["spec"]);
        assert_eq!(ports.len(), 2, "{}", a.object);
        assert!(ports.iter().all(|p| (30000..=30009).contains(p)));
        assert_eq!(a.object["spec"]["externalTrafficPolicy"], "Cluster");

        // A requested port someone holds: 422 with Kubernetes' message.
        let taken = *ports.iter().next().expect("port");
        let e = api.create(info, Some("default"), svc("b", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": taken}]})), &opts()).await.expect_err("clash");
        assert_eq!(e.code, 422);
        assert!(e.message.contains(&format!("spec.ports[0].nodePort: Invalid value: {taken}: provided port is already allocated")), "{}", e.message);
        let e = api.create(info, Some("default"), svc("b", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]})), &opts()).await.expect_err("range");
        assert!(e.message.contains("provided port is not in the valid range. The range of valid ports is 30000-30009"), "{}", e.message);
        assert!(api.get(info, Some("default"), "b").is_err(), "nothing half-written");

        // Fill the range: the next dynamic request is a 500 "range is full".
        let rest = api.create(info, Some("default"), svc("c", json!({"type": "NodePort", "ports": (1..=8).map(|i| json!({"name": format!("p{i}"), "port": i})).collect::<Vec<_>>()})), &opts()).await.expect("c");
        assert_eq!(node_port::held(&rest.object["spec"]).len(), 8);
        let e = api.create(info, Some("default"), svc("d", json!({"type": "NodePort", "ports": [{"port": 80}]})), &opts()).await.expect_err("full");
        assert_eq!((e.code, e.message), (500, format!("Internal error occurred: {}", node_port::FULL)));
        assert_eq!(api.store.list_keys(PREFIX).len(), 10, "the failed create released what it took");

        // Back to ClusterIP releases a's ports; d then gets one.
        let mut a2 = a.object.clone();
        a2["spec"]["type"] = json!("ClusterIP");
        let updated = api.update(info, Some("default"), "a", a2, super::super::Part::Main, &opts()).await.expect("to ClusterIP");
        assert!(node_port::held(&updated.object["spec"]).is_empty(), "{}", updated.object);
        assert!(updated.object["spec"].get("externalTrafficPolicy").is_none());
        api.create(info, Some("default"), svc("d", json!({"type": "NodePort", "ports": [{"port": 80}]})), &opts()).await.expect("d after release");

        // Deleting c frees its eight.
        api.delete(info, Some("default"), "c", &Default::default()).await.expect("delete c");
        assert_eq!(api.store.list_keys(PREFIX).len(), 1);
    }

    #[tokio::test]
    async fn lb_health_check_port_and_repair() {
        let (_dir, api) = api().await;
        let info = services();
        // An orphaned entry (a crash between the allocation and the Service write) goes
        // once old enough; a fresh one (a create in flight) and held ones stay.
        let orphan = json!({"namespace": "default", "name": "gone", "created": "2020-01-01T00:00:00Z"});
        api.store.write(Op::Create { key: entry_key(30009), object: orphan }).await.expect("orphan");
        let fresh = json!({"namespace": "default", "name": "in-flight", "created": timestamp(api.clock.now())});
        api.store.write(Op::Create { key: entry_key(30008), object: fresh }).await.expect("fresh");
        let lb = api
            .create(info, Some("default"), svc("lb", json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]})), &opts())
            .await
            .expect("lb");
        let spec = &lb.object["spec"];
        assert_eq!(spec["allocateLoadBalancerNodePorts"], true);
        assert!(spec["healthCheckNodePort"].as_u64().is_some_and(|p| (30000..=30007).contains(&p)), "{spec}");
        assert_eq!(node_port::held(spec).len(), 2);
        assert_eq!(api.repair_node_ports().await, 1);
        assert!(api.store.get(&entry_key(30009)).is_none());
        assert!(api.store.get(&entry_key(30008)).is_some());
        assert_eq!(api.store.list_keys(PREFIX).len(), 3);
    }
}
