//! Keeps the Ingress controller's [`State`] current: reflectors of Ingresses,
//! IngressClasses and Secrets (all namespaces, through the API as any client would), a
//! rebuild of the [`Rules`] and [`Certs`] after every batch of visible changes, and the
//! served Ingresses' `status.loadBalancer.ingress`.
//!
//! Invariants: the rules are rebuilt from the stores as a whole; changes that arrive
//! together, or within `REBUILD_EVERY` of each other, cause one rebuild; a failing watch
//! keeps the last rules; a served Ingress's status lists this listener's address (other
//! entries, another node's, are kept), written only when it is missing.

use std::net::IpAddr;
use std::sync::Arc;

use futures::{FutureExt as _, StreamExt as _};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::State;
use super::certs::Certs;
use super::rules::{IngressRef, Rules};
use crate::network::watch::{REBUILD_EVERY, reflect};

/// Watches until `shutdown` turns true, publishing each new snapshot into `state`;
/// `address` is what the served Ingresses' status shows.
pub(crate) async fn run(client: kube::Client, state: Arc<State>, address: IpAddr, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let (ingresses, s1) = reflect::<Ingress>(&client);
    let (classes, s2) = reflect::<IngressClass>(&client);
    let (secrets, s3) = reflect::<Secret>(&client);
    let mut changes = futures::stream::select_all([s1, s2, s3]);
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
            for p in &problems {
                tracing::debug!(ingress.namespace = %p.ingress.namespace, ingress.name = %p.ingress.name, "{}", p.message());
            }
            let served = rules.served.clone();
            state.publish(rules, certs);
            for ing in &served {
                ensure_status(&client, &all, ing, address).await;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(REBUILD_EVERY) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Adds `address` to the status of the served Ingress `served` unless it is there.
async fn ensure_status(client: &kube::Client, all: &[Arc<Ingress>], served: &IngressRef, address: IpAddr) {
    let Some(ing) = all.iter().find(|i| i.metadata.namespace.as_deref() == Some(&served.namespace) && i.metadata.name.as_deref() == Some(&served.name)) else { return };
    let ip = address.to_string();
    let mut entries: Vec<serde_json::Value> = ing
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|list| list.iter().filter_map(|e| serde_json::to_value(e).ok()).collect())
        .unwrap_or_default();
    if entries.iter().any(|e| e["ip"] == ip.as_str()) {
        return;
    }
    entries.push(json!({"ip": ip}));
    let api: Api<Ingress> = Api::namespaced(client.clone(), &served.namespace);
    let patch = json!({"status": {"loadBalancer": {"ingress": entries}}});
    if let Err(error) = api.patch_status(&served.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        tracing::warn!(%error, ingress.namespace = %served.namespace, ingress.name = %served.name, "ingress status not written");
    }
}
