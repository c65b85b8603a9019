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
    let (pods, p3) = reflect::<Pod>(&client);
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
/// visible content may have changed.
pub(super) fn reflect<K>(client: &kube::Client) -> (Store<K>, futures::stream::BoxStream<'static, bool>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let events = watcher(Api::<K>::all(client.clone()), watcher::Config::default()).default_backoff();
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
