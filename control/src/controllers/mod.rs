//! Controllers that run on the control plane's leader. Each is a pure `plan` over the
//! objects it observes plus a thin executor that writes through the [`Api`], as any client
//! would; this module only runs them: one loop re-plans every controller whenever the
//! store changes, and the scheduler, the IPAddress repair and node IPAM run their own loops
//! ([`scheduler::run`], [`ipaddress_repair::run`], [`node_ipam::run`]).
//!
//! Controllers never import each other. What several share lives in its own file:
//! [`objects`] (metadata accessors, the pass's snapshot, write options, transient errors),
//! [`owner`] (ownerReferences, claiming, adoption and release), [`pods`] (pod state, pods
//! made from templates), [`status`] (status counts, conditions, writing status),
//! [`revisions`] (template hashes, ControllerRevisions) and [`service_endpoints`] (the
//! pods behind a Service, subsets and slice endpoints, for the Endpoints, EndpointSlice and
//! EndpointSlice mirroring controllers).

pub(crate) mod clusterrole_aggregation;
pub(crate) mod cronjob;
pub(crate) mod csr_approving;
pub(crate) mod daemonset;
pub(crate) mod deployment;
pub(crate) mod disruption;
pub(crate) mod endpoints;
pub(crate) mod endpointslice;
pub(crate) mod endpointslice_mirroring;
pub(crate) mod garbage_collector;
pub(crate) mod hpa;
pub(crate) mod ipaddress_repair;
pub(crate) mod job;
pub(crate) mod namespace;
pub(crate) mod node_ipam;
pub(crate) mod node_lifecycle;
pub(crate) mod objects;
pub(crate) mod owner;
pub(crate) mod pods;
pub(crate) mod replicaset;
pub(crate) mod resourcequota;
pub(crate) mod revisions;
pub(crate) mod scheduler;
pub(crate) mod service_endpoints;
pub(crate) mod service_lb;
pub(crate) mod serviceaccounts;
pub(crate) mod statefulset;
pub(crate) mod status;

use std::time::Duration;


use crate::apiserver::error::ApiError;
use crate::apiserver::{Api, Shutdown};

/// Longest time between two controller passes.
const RESYNC: Duration = Duration::from_secs(1);

/// Runs the controllers (and the scheduler, if `scheduler`) until shutdown; node IPAM hands
/// out ranges of the cluster CIDR; the built-in service load balancer runs if `service_lb`.
pub(crate) async fn run(api: Api, shutdown: Shutdown, scheduler: bool, network: crate::NetworkConfig, service_lb: bool) {
    if scheduler {
        tokio::spawn(scheduler::run(api.clone(), shutdown.clone()));
    }
    tokio::spawn(ipaddress_repair::run(api.clone(), shutdown.clone()));
    tokio::spawn(node_ipam::run(api.clone(), network.cluster_cidr, network.node_cidr_mask_size, shutdown.clone()));
    let mut last_seen = u64::MAX;
    let mut last_pass = std::time::Instant::now();
    loop {
        let rev = api.store.revision();
        let mut pause = Duration::from_millis(100);
        // Re-plan on every change, and every few seconds anyway: time-based conditions
        // (minReadySeconds, progress deadlines) change without a write.
        if rev != last_seen || last_pass.elapsed() >= RESYNC {
            last_seen = rev;
            last_pass = std::time::Instant::now();
            let started = std::time::Instant::now();
            if let Err(e) = pass(&api, service_lb).await {
                tracing::warn!(error = %e, "controller pass failed");
            }
            // A pass scans every object: under a stream of writes, keep its share of CPU
            // bounded by waiting several times as long as it took — but never longer than
            // RESYNC, or a pass slowed by a busy machine (its time counts write waits too)
            // would leave finished Jobs unpruned and Endpoints stale for seconds
            // (workloads_batch_cronjob_schedules_and_prunes saw a fourth finished Job).
            pause = pause.max(started.elapsed() * 5).min(RESYNC);
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// One pass of every controller over one snapshot of the store, in a fixed order; a
/// failure of the garbage collector or the namespace controller ends the pass.
async fn pass(api: &Api, service_lb: bool) -> Result<(), ApiError> {
    let keyed = api.store.list_keys("");
    garbage_collector::reconcile_all(api, &keyed).await?;
    namespace::reconcile_all(api, &keyed).await?;
    deployment::reconcile_all(api, &keyed, api.clock.now()).await?;
    replicaset::reconcile_all(api, &keyed, api.clock.now()).await?;
    // Agents write heartbeats in wall-clock time, whatever clock the control plane runs.
    node_lifecycle::reconcile_all(api, &keyed, chrono::Utc::now()).await?;
    statefulset::reconcile_all(api, &keyed, api.clock.now()).await?;
    daemonset::reconcile_all(api, &keyed, api.clock.now()).await?;
    job::reconcile_all(api, &keyed, api.clock.now()).await?;
    cronjob::reconcile_all(api, &keyed, api.clock.now()).await?;
    endpoints::reconcile_all(api, &keyed).await?;
    endpointslice::reconcile_all(api, &keyed).await?;
    endpointslice_mirroring::reconcile_all(api, &keyed).await?;
    resourcequota::reconcile_all(api, &keyed).await?;
    clusterrole_aggregation::reconcile_all(api, &keyed).await?;
    disruption::reconcile_all(api, &keyed, api.clock.now()).await?;
    if service_lb {
        service_lb::reconcile_all(api, &keyed).await?;
    }
    Ok(())
}
