//! Keeps the node's routing [`Table`] and NetworkPolicy [`PolicyView`] current: reflectors
//! of Services, EndpointSlices, Endpoints and Nodes (the table), NetworkPolicies,
//! Namespaces and Pods (the view), all namespaces, through the API as any client would
//! (kube-rs watchers with back-off, as the pod watch in `agent.rs`), and a rebuild of
//! what changed after every batch of visible changes.
//!
//! Invariants: the table (the view) is rebuilt from its stores as a whole, so it never
//! mixes a Service with endpoints from before it was replaced; changes that arrive
//! together (a relist), or within `REBUILD_EVERY` of each other, cause one rebuild; a pod
//! change rebuilds only the view, and not even that while no NetworkPolicy exists; a
//! failing watch keeps the last table and view.

use std::sync::Arc;

use futures::{FutureExt as _, StreamExt as _};
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde::de::DeserializeOwned;

use super::policy::PolicyView;
use super::router::Routing;
use super::table::Table;

/// Shortest time between two rebuilds of the table or the view.
pub(super) const REBUILD_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// Watches until `shutdown` turns true, publishing each new table into `routing`.
pub(crate) async fn run(client: kube::Client, routing: Arc<Routing>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let (services, s1) = reflect::<Service>(&client);
    let (slices, s2) = reflect::<EndpointSlice>(&client);
    let (endpoints, s3) = reflect::<Endpoints>(&client);
    let (nodes, s4) = reflect::<Node>(&client);
    let (policies, p1) = reflect::<NetworkPolicy>(&client);
    let (namespaces, p2) = reflect::<Namespace>(&client);
    let (pods, p3) = reflect_slim::<Pod>(&client, slim_pod);
    // (table changed, view changed)
    let table_side = futures::stream::select_all([s1, s2, s3, s4]).map(|d| (d, false));
    let view_side = futures::stream::select_all([p1, p2, p3]).map(|d| (false, d));
    let mut changes = futures::stream::select(table_side, view_side);
    // The published view holds no policy: while none exists, pod changes cannot change a
    // decision (every connection is allowed), so the view is not rebuilt for them.
    let mut view_has_policies = false;
    loop {
        let first = tokio::select! {
            c = changes.next() => c,
            _ = shutdown.changed() => return,
        };
        let Some((mut table_dirty, mut view_dirty)) = first else { return };
        while let Some(Some((t, v))) = changes.next().now_or_never() {
            table_dirty |= t;
            view_dirty |= v;
        }
        if table_dirty {
            let table = Table::build(&services.state(), &slices.state(), &endpoints.state(), &nodes.state());
            tracing::debug!(services = table.len(), "pod network table rebuilt");
            routing.publish(table);
        }
        if view_dirty && (view_has_policies || !policies.is_empty()) {
            let view = PolicyView::build(&policies.state(), &namespaces.state(), &pods.state());
            tracing::debug!(policies = view.len(), "network policy view rebuilt");
            view_has_policies = view.len() > 0;
            routing.publish_policy(view);
        }
        // Rebuild at most every REBUILD_EVERY: a burst of pod updates (a thousand pods
        // starting) costs a few rebuilds, not one per event.
        tokio::select! {
            _ = tokio::time::sleep(REBUILD_EVERY) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// A reflector of every `K`, and a stream saying after each event whether the store's
/// visible content may have changed. Objects are kept without managedFields.
pub(super) fn reflect<K>(client: &kube::Client) -> (Store<K>, futures::stream::BoxStream<'static, bool>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    reflect_slim(client, |_| {})
}

/// [`reflect`], with `slim` dropping what the node does not read before an object is kept.
pub(super) fn reflect_slim<K>(client: &kube::Client, slim: fn(&mut K)) -> (Store<K>, futures::stream::BoxStream<'static, bool>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let events = watcher(Api::<K>::all(client.clone()), watcher::Config::default()).default_backoff().modify(move |o| {
        o.meta_mut().managed_fields = None;
        slim(o);
    });
    let stream = reflector::reflector(writer, events)
        .map(|ev| match ev {
            // A relist becomes visible at InitDone.
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => false,
            Ok(watcher::Event::InitDone | watcher::Event::Apply(_) | watcher::Event::Delete(_)) => true,
            Err(e) => {
                tracing::warn!(error = %e, kind = %K::kind(&()), "pod network watch failed; retrying");
                false
            }
        })
        .boxed();
    (store, stream)
}

/// What the NetworkPolicy view reads of a pod (`policy::pod_info`, `finished`): name,
/// namespace, labels, containers' ports, podIP and phase. Every node keeps every pod of the
/// cluster, so the rest (annotations, env, volumes, conditions...) is dropped.
fn slim_pod(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    pod.metadata.annotations = None;
    pod.metadata.owner_references = None;
    if let Some(spec) = pod.spec.as_mut() {
        let keep = |c: &mut k8s_openapi::api::core::v1::Container| k8s_openapi::api::core::v1::Container { name: std::mem::take(&mut c.name), ports: c.ports.take(), ..Default::default() };
        let containers = spec.containers.iter_mut().map(keep).collect();
        let init = spec.init_containers.as_mut().map(|cs| cs.iter_mut().map(keep).collect());
        *spec = k8s_openapi::api::core::v1::PodSpec { containers, init_containers: init, node_name: spec.node_name.take(), ..Default::default() };
    }
    if let Some(status) = pod.status.as_mut() {
        *status = k8s_openapi::api::core::v1::PodStatus { phase: status.phase.take(), pod_ip: status.pod_ip.take(), pod_ips: status.pod_ips.take(), ..Default::default() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slimmed pod decides NetworkPolicy as the whole pod does.
    #[test]
    fn slim_pod_keeps_what_the_policy_view_reads() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "n", "labels": {"app": "web"}, "annotations": {"a": "b"},
                "managedFields": [{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "x.wasm", "env": [{"name": "E", "value": "v"}], "ports": [{"name": "http", "containerPort": 8080}]}],
                "initContainers": [{"name": "i", "image": "y.wasm", "ports": [{"name": "metrics", "containerPort": 9090}]}]},
            "status": {"phase": "Running", "podIP": "10.42.0.5", "podIPs": [{"ip": "10.42.0.5"}], "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .expect("pod");
        let mut slim = pod.clone();
        slim_pod(&mut slim);
        let spec = slim.spec.as_ref().expect("spec");
        // What policy::pod_info and finished read.
        assert_eq!(slim.metadata.labels, pod.metadata.labels);
        assert_eq!((&slim.metadata.name, &slim.metadata.namespace), (&pod.metadata.name, &pod.metadata.namespace));
        let ports = |p: &Pod| p.spec.iter().flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten())).map(|c| (c.name.clone(), c.ports.clone())).collect::<Vec<_>>();
        assert_eq!(ports(&slim), ports(&pod));
        assert_eq!(slim.status.as_ref().and_then(|s| s.pod_ip.clone()), Some("10.42.0.5".to_string()));
        assert_eq!(slim.metadata.managed_fields, None);
        assert_eq!(spec.containers[0].image, None);
        assert_eq!(spec.containers[0].env, None);
        assert_eq!(slim.metadata.annotations, None);
        assert_eq!(slim.status.as_ref().and_then(|s| s.conditions.as_ref()), None);
        assert_eq!(slim.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Running"));
    }
}
