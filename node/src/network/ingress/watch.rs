//! Keeps the Ingress controller's [`State`] current: reflectors of Ingresses,
//! IngressClasses and Secrets (all namespaces, through the API as any client would), a
//! rebuild of the [`Rules`] and [`Certs`] after every batch of visible changes, the
//! served Ingresses' `status.loadBalancer.ingress`, and a Warning Event on an Ingress
//! whose TLS Secret cannot be used.
//!
//! Invariants: the rules are rebuilt from the stores as a whole; changes that arrive
//! together, or within `REBUILD_EVERY` of each other, cause one rebuild; a failing watch
//! keeps the last rules; a served Ingress's status lists this listener's address (other
//! entries, another node's, are kept), written only when it is missing, and the address
//! is taken out again when this controller stops serving the Ingress (its class
//! changed); a Secret problem
//! is reported once while it lasts (again if it comes back after a fix), and only once
//! every store has listed, so a Secret not yet listed is never reported missing.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use futures::{FutureExt as _, StreamExt as _};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use serde_json::json;

use super::State;
use super::certs::{Certs, SecretProblem};
use super::rules::Rules;
use crate::network::watch::{REBUILD_EVERY, reflect};

/// Watches until `shutdown` turns true, publishing each new snapshot into `state`;
/// `address` is what the served Ingresses' status shows.
pub(crate) async fn run(client: kube::Client, state: Arc<State>, node: String, address: IpAddr, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let (ingresses, s1) = reflect::<Ingress>(&client);
    let (classes, s2) = reflect::<IngressClass>(&client);
    let (secrets, s3) = reflect::<Secret>(&client);
    let mut changes = futures::stream::select_all([s1, s2, s3]);
    let mut reported: HashSet<SecretProblem> = HashSet::new();
    let mut served_before: HashSet<(String, String)> = HashSet::new();
    loop {
        let first = tokio::select! {
            c = changes.next() => c,
            _ = shutdown.changed() => return,
        };
        let Some(mut dirty) = first else { return };
        while let Some(Some(d)) = changes.next().now_or_never() {
            dirty |= d;
        }
        if dirty {
            let all = ingresses.state();
            let rules = Rules::build(&all, &classes.state());
            let (certs, problems) = Certs::build(&rules.tls, &secrets.state());
            tracing::debug!(served = rules.served.len(), tls_problems = problems.len(), "ingress rules rebuilt");
            let served = rules.served.clone();
            state.publish(rules, certs);
            if listed(&ingresses) && listed(&classes) && listed(&secrets) {
                let now: HashSet<SecretProblem> = problems.into_iter().collect();
                for p in now.difference(&reported) {
                    tracing::warn!(ingress.namespace = %p.ingress.namespace, ingress.name = %p.ingress.name, "{}", p.message());
                    warn(&client, &node, p).await;
                }
                reported = now;
            }
            let served_now: HashSet<(String, String)> = served.iter().map(|i| (i.namespace.clone(), i.name.clone())).collect();
            for key in &served_now {
                sync_status(&client, &all, key, address, true).await;
            }
            for key in served_before.difference(&served_now) {
                sync_status(&client, &all, key, address, false).await;
            }
            served_before = served_now;
        }
        tokio::select! {
            _ = tokio::time::sleep(REBUILD_EVERY) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Makes the status of the Ingress `namespace/name` list `address` (`want`) or not,
/// keeping the other entries; writes only a change.
async fn sync_status(client: &kube::Client, all: &[Arc<Ingress>], (namespace, name): &(String, String), address: IpAddr, want: bool) {
    let Some(ing) = all.iter().find(|i| i.metadata.namespace.as_deref() == Some(namespace) && i.metadata.name.as_deref() == Some(name)) else { return };
    let ip = address.to_string();
    let mut entries: Vec<serde_json::Value> = ing
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|list| list.iter().filter_map(|e| serde_json::to_value(e).ok()).collect())
        .unwrap_or_default();
    let listed = entries.iter().any(|e| e["ip"] == ip.as_str());
    if listed == want {
        return;
    }
    if want {
        entries.push(json!({"ip": ip}));
    } else {
        entries.retain(|e| e["ip"] != ip.as_str());
    }
    let api: Api<Ingress> = Api::namespaced(client.clone(), namespace);
    let patch = json!({"status": {"loadBalancer": {"ingress": entries}}});
    if let Err(error) = api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        tracing::warn!(%error, ingress.namespace = %namespace, ingress.name = %name, "ingress status not written");
    }
}

/// Whether the store has had its first list.
fn listed<K: kube::Resource<DynamicType = ()> + Clone + 'static>(store: &Store<K>) -> bool {
    store.wait_until_ready().now_or_never().is_some()
}

/// Records a Warning Event on the Ingress of `problem`, naming the Secret.
async fn warn(client: &kube::Client, node: &str, problem: &SecretProblem) {
    let ing = &problem.ingress;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..16];
    let ev = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{}.{suffix}", ing.name), "namespace": ing.namespace},
        "involvedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": ing.name, "namespace": ing.namespace, "uid": ing.uid},
        "reason": "InvalidTLSSecret", "message": problem.message(), "type": "Warning",
        "source": {"component": "flotilla-ingress", "host": node},
        "reportingComponent": "flotilla.dev/ingress", "reportingInstance": node,
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    });
    let Ok(ev) = serde_json::from_value::<Event>(ev) else { return };
    let api: Api<Event> = Api::namespaced(client.clone(), &ing.namespace);
    if let Err(error) = api.create(&PostParams::default(), &ev).await {
        tracing::debug!(%error, "ingress event not recorded");
    }
}
