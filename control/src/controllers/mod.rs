//! Controllers that run on the control plane's leader. Each is a pure `plan` over the
//! objects it observes plus this thin executor, which re-plans whenever the store changes.

pub(crate) mod daemonset;
pub(crate) mod cronjob;
pub(crate) mod deployment;
pub(crate) mod garbage_collector;
pub(crate) mod ipaddress_repair;
pub(crate) mod job;
pub(crate) mod namespace;
pub(crate) mod node_lifecycle;
pub(crate) mod replicaset;
pub(crate) mod scheduler;
pub(crate) mod statefulset;

use std::time::Duration;

use crate::apiserver::Api;
use crate::apiserver::Shutdown;
use crate::apiserver::resources::{self, ResourceInfo};
use crate::apiserver::service::DeleteOptions;
use crate::store::Op;
use crate::store::Precondition;

/// Resource and (namespace, name) of a storage key like "apps/deployments/ns/name".
pub(crate) fn parse_key(key: &str) -> Option<(&'static ResourceInfo, Option<&str>, &str)> {
    let mut it = key.splitn(4, '/');
    let group = it.next()?;
    let plural = it.next()?;
    let group = if group == "core" { "" } else { group };
    let info = resources::RESOURCES.iter().find(|r| r.group == group && r.plural == plural)?;
    let a = it.next()?;
    match it.next() {
        Some(name) if info.namespaced => Some((info, Some(a), name)),
        None if !info.namespaced => Some((info, None, a)),
        _ => None,
    }
}

/// Longest time between two controller passes.
const RESYNC: Duration = Duration::from_secs(1);

/// Events live this long after their last occurrence, as with Kubernetes' default --event-ttl.
const EVENT_TTL_SECONDS: i64 = 3600;

/// Keys of core/v1 and events.k8s.io events last seen before `cutoff`.
fn expired_events(objects: &[crate::store::Keyed], cutoff: chrono::DateTime<chrono::Utc>) -> Vec<String> {
    objects
        .iter()
        .filter(|(k, _)| k.starts_with("core/events/") || k.starts_with("events.k8s.io/events/"))
        .filter(|(_, s)| {
            let v = &s.value;
            let t = v["lastTimestamp"].as_str().or(v["eventTime"].as_str()).or(v["metadata"]["creationTimestamp"].as_str());
            t.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).is_some_and(|t| t < cutoff)
        })
        .map(|(k, _)| k.to_string())
        .collect()
}

/// Runs the garbage collector and namespace controller until shutdown.
pub(crate) async fn run(api: Api, shutdown: Shutdown, scheduler: bool) {
    if scheduler {
        tokio::spawn(run_scheduler(api.clone(), shutdown.clone()));
    }
    tokio::spawn(ipaddress_repair::run(api.clone(), shutdown.clone()));
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
            if let Err(e) = pass(&api).await {
                tracing::warn!(error = %e, "controller pass failed");
            }
            // A pass scans every object: under a stream of writes, keep its share of CPU
            // bounded by waiting several times as long as it took.
            pause = pause.max(started.elapsed() * 5);
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// The scheduler's own loop: it reads only nodes and pods, so it re-plans on every change
/// without waiting behind the other controllers' full scans.
async fn run_scheduler(api: Api, shutdown: Shutdown) {
    let mut last_seen = u64::MAX;
    let mut state = SchedulerState::default();
    loop {
        let rev = api.store.revision();
        let mut pause = Duration::from_millis(20);
        let retry_due = state.retry_at.is_some_and(|t| t <= std::time::Instant::now());
        if rev != last_seen || retry_due {
            last_seen = rev;
            let mut keyed = api.store.list_keys("core/nodes/");
            keyed.extend(api.store.list_keys("core/pods/"));
            match schedule_pending(&api, &keyed, &mut state).await {
                // Many pending pods make planning long: keep re-planning from eating the CPU
                // (waiting for the writes is not counted: it leaves the CPU to others).
                Ok(planning) => pause = pause.max(planning * 2),
                Err(e) => {
                    tracing::warn!(error = %e, "scheduling pass failed");
                    state.retry_at = Some(std::time::Instant::now() + FAILURE_BACKOFF_INITIAL);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// What the scheduler remembers between passes.
#[derive(Default)]
struct SchedulerState {
    /// Where the next pod's node search starts (kube-scheduler's nextStartNodeIndex).
    next_start: usize,
    /// Per pending pod (by uid): failed attempts written so far and when the next
    /// PodScheduled=False update and FailedScheduling event may be written. Scheduling is
    /// retried on every change; only these writes back off (1 s doubling to 10 s, as
    /// kube-scheduler's podInitialBackoffSeconds/podMaxBackoffSeconds), so a stream of node
    /// or pod changes can't rewrite every unschedulable pod on every pass.
    failures: std::collections::HashMap<String, (u32, std::time::Instant)>,
    /// The earliest moment a deferred failure write becomes due.
    retry_at: Option<std::time::Instant>,
}

/// Keeps the first error of a binding task.
fn note_error(
    first: &mut Option<crate::apiserver::error::ApiError>,
    joined: Result<Result<(), crate::apiserver::error::ApiError>, tokio::task::JoinError>,
) {
    let e = match joined {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e,
        Err(e) => crate::apiserver::error::ApiError::internal(e.to_string()),
    };
    first.get_or_insert(e);
}

const FAILURE_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
const FAILURE_BACKOFF_MAX: Duration = Duration::from_secs(10);

async fn pass(api: &Api) -> Result<(), crate::apiserver::error::ApiError> {
    let keyed = api.store.list_keys("");
    let objs: Vec<garbage_collector::Obj<'_>> = keyed.iter().map(|(k, s)| garbage_collector::Obj { key: k, value: &s.value }).collect();
    for step in garbage_collector::plan(&objs) {
        match step {
            garbage_collector::Step::Delete { key, uid, propagation } => {
                let Some((info, ns, name)) = parse_key(&key) else { continue };
                let opts = DeleteOptions { propagation: Some(propagation.into()), uid: Some(uid), grace_period_seconds: Some(0), ..Default::default() };
                if info.kind == "Pod" {
                    // Pod GC: a forced removal.
                    let _ = api.store.write(Op::Delete { key: key.clone(), precondition: Precondition { resource_version: None, uid: opts.uid.clone() } }).await;
                    continue;
                }
                match api.delete(info, ns, name, &opts).await {
                    Ok(_) => {}
                    Err(e) if e.code == 404 || e.code == 409 => {}
                    Err(e) => return Err(e),
                }
            }
            garbage_collector::Step::RemoveOwnerRef { key, owner_uid } => {
                let Some((info, ns, name)) = parse_key(&key) else { continue };
                let updated = api.modify(info, ns, name, &|cur| replicaset::without_owner(cur, &owner_uid)).await?;
                if let Some(obj) = updated {
                    let msg = format!("ownerReference to {owner_uid} removed: the owner was deleted with propagationPolicy Orphan or no longer exists");
                    api.record_event(&obj, "Normal", "OwnerRefRemoved", &msg, "garbage-collector").await;
                }
            }
            garbage_collector::Step::RemoveFinalizer { key, finalizer } => {
                let Some((info, ns, name)) = parse_key(&key) else { continue };
                api.remove_finalizer(info, ns, name, finalizer).await?;
            }
        }
    }
    let cutoff = api.clock.now() - chrono::Duration::seconds(EVENT_TTL_SECONDS);
    for key in expired_events(&keyed, cutoff) {
        let _ = api.store.write(Op::Delete { key, precondition: Precondition::default() }).await;
    }
    let namespaces: Vec<&serde_json::Value> = keyed.iter().filter(|(k, _)| k.starts_with("core/namespaces/")).map(|(_, s)| &s.value).collect();
    let contents: Vec<(&str, &serde_json::Value)> = keyed
        .iter()
        .filter(|(k, _)| parse_key(k).is_some_and(|(info, ns, _)| info.namespaced && ns.is_some()))
        .map(|(k, s)| (&**k, &s.value))
        .collect();
    for step in namespace::plan(&namespaces, &contents) {
        match step {
            namespace::Step::DeleteContent { key } => {
                let Some((info, ns, name)) = parse_key(&key) else { continue };
                let opts = DeleteOptions { propagation: Some("Background".into()), grace_period_seconds: Some(0), ..Default::default() };
                if info.kind == "Pod" {
                    let _ = api.store.write(Op::Delete { key: key.clone(), precondition: Precondition::default() }).await;
                    continue;
                }
                match api.delete(info, ns, name, &opts).await {
                    Ok(_) => {}
                    Err(e) if e.code == 404 || e.code == 409 => {}
                    Err(e) => return Err(e),
                }
            }
            namespace::Step::Finalize { name } => {
                let info = resources::find("", "v1", "namespaces").expect("namespaces served");
                let _ = api.store.write(Op::Delete { key: crate::apiserver::service::key(info, None, &name), precondition: Precondition::default() }).await;
            }
        }
    }
    deployment::reconcile_all(api, &keyed, api.clock.now()).await?;
    replicaset::reconcile_all(api, &keyed, api.clock.now()).await?;
    // Agents write heartbeats in wall-clock time, whatever clock the control plane runs.
    node_lifecycle::reconcile_all(api, &keyed, chrono::Utc::now()).await?;
    statefulset::reconcile_all(api, &keyed, api.clock.now()).await?;
    daemonset::reconcile_all(api, &keyed, api.clock.now()).await?;
    job::reconcile_all(api, &keyed, api.clock.now()).await?;
    cronjob::reconcile_all(api, &keyed, api.clock.now()).await?;
    Ok(())
}

/// Binds pending pods (no nodeName, default scheduler, no scheduling gates) to nodes;
/// marks the others PodScheduled=False with the scheduler's reasons (retried on every
/// change; the writes back off per pod, see [`SchedulerState`]). Decisions are made in one
/// pure sweep over the snapshot; the writes then go out concurrently so the store commits
/// them in a few batches.
async fn schedule_pending(
    api: &Api,
    keyed: &[crate::store::Keyed],
    state: &mut SchedulerState,
) -> Result<Duration, crate::apiserver::error::ApiError> {
    use serde_json::{Value, json};
    let started = std::time::Instant::now();
    let nodes: Vec<&Value> = keyed.iter().filter(|(k, _)| k.starts_with("core/nodes/")).map(|(_, s)| &s.value).collect();
    let pods: Vec<&Value> = keyed.iter().filter(|(k, _)| k.starts_with("core/pods/")).map(|(_, s)| &s.value).collect();
    let pending: Vec<&Value> = pods
        .iter()
        .copied()
        .filter(|p| {
            p["spec"]["nodeName"].as_str().unwrap_or("").is_empty()
                && p["metadata"]["deletionTimestamp"].is_null()
                && matches!(p["spec"]["schedulerName"].as_str(), None | Some("") | Some("default-scheduler"))
                && p["spec"]["schedulingGates"].as_array().is_none_or(|g| g.is_empty())
                && !matches!(p["status"]["phase"].as_str(), Some("Succeeded") | Some("Failed"))
        })
        .collect();
    state.retry_at = None;
    if pending.is_empty() {
        state.failures.clear();
        return Ok(started.elapsed());
    }
    let uid = |p: &Value| p["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let pending_uids: std::collections::HashSet<String> = pending.iter().map(|p| uid(p)).collect();
    state.failures.retain(|u, _| pending_uids.contains(u));
    let info = resources::find("", "v1", "pods").expect("pods served");
    let mut infos = scheduler::snapshot(&nodes, &pods);
    let mut planning = started.elapsed();
    let mut unschedulable: Vec<(&Value, String)> = Vec::new();
    let now_instant = std::time::Instant::now();
    // Plan a chunk, send its bindings off, plan the next while they are written.
    const IN_FLIGHT: usize = 1024;
    let mut writing: std::collections::VecDeque<tokio::task::JoinHandle<Result<(), crate::apiserver::error::ApiError>>> = Default::default();
    let mut failed: Option<crate::apiserver::error::ApiError> = None;
    for chunk in pending.chunks(IN_FLIGHT) {
        let planned = std::time::Instant::now();
        let results = scheduler::schedule_all(chunk, &mut infos, &mut state.next_start);
        planning += planned.elapsed();
        let mut binds: Vec<(Option<String>, String, String)> = Vec::new();
        for (pod, result) in chunk.iter().copied().zip(results) {
            match result {
                Ok(node) => {
                    let ns = pod["metadata"]["namespace"].as_str().map(str::to_string);
                    binds.push((ns, pod["metadata"]["name"].as_str().unwrap_or("").to_string(), node));
                }
                Err(u) => {
                    let current = pod["status"]["conditions"]
                        .as_array()
                        .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled"))
                        .and_then(|c| c["message"].as_str())
                        .unwrap_or("");
                    if current == u.message {
                        continue;
                    }
                    let entry = state.failures.entry(uid(pod)).or_insert((0, now_instant));
                    if entry.1 > now_instant {
                        state.retry_at = Some(state.retry_at.map_or(entry.1, |t| t.min(entry.1)));
                        continue;
                    }
                    let backoff = FAILURE_BACKOFF_INITIAL.saturating_mul(1 << entry.0.min(4)).min(FAILURE_BACKOFF_MAX);
                    *entry = (entry.0 + 1, now_instant + backoff);
                    unschedulable.push((pod, u.message));
                }
            }
        }
        if binds.is_empty() {
            continue;
        }
        let api = api.clone();
        writing.push_back(tokio::spawn(async move {
            let results = futures::future::join_all(binds.iter().map(|(ns, name, node)| api.bind(info, ns.as_deref(), name, node))).await;
            for r in results {
                match r {
                    Ok(_) => {}
                    Err(e) if e.code == 404 || e.code == 409 => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }));
        while writing.len() > 2 {
            if let Some(w) = writing.pop_front() {
                note_error(&mut failed, w.await);
            }
        }
    }
    // Every binding task is awaited, even after an error: the next pass must not plan
    // while bindings of this one are still being written.
    for w in writing {
        note_error(&mut failed, w.await);
    }
    let now = crate::apiserver::service::timestamp(api.clock.now());
    let mut write_failed = false;
    for chunk in unschedulable.chunks(IN_FLIGHT) {
        let written = futures::future::join_all(chunk.iter().map(|(pod, message)| {
            let now = now.clone();
            async move {
                let ns = pod["metadata"]["namespace"].as_str();
                let name = pod["metadata"]["name"].as_str().unwrap_or("");
                let updated = api
                    .modify(info, ns, name, &|cur| {
                        if !cur["spec"]["nodeName"].as_str().unwrap_or("").is_empty() {
                            return None;
                        }
                        let mut new = cur.clone();
                        let conds = new["status"]["conditions"].as_array().cloned().unwrap_or_default();
                        let mut conds: Vec<Value> = conds.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
                        conds.push(json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message, "lastProbeTime": null, "lastTransitionTime": now}));
                        new["status"]["conditions"] = Value::Array(conds);
                        Some(new)
                    })
                    .await;
                match updated {
                    Ok(Some(p)) => {
                        api.record_event(&p, "Warning", "FailedScheduling", message, "default-scheduler").await;
                        true
                    }
                    Ok(None) => true,
                    Err(_) => false,
                }
            }
        }))
        .await;
        write_failed |= written.contains(&false);
    }
    if write_failed {
        // Try again soon even if nothing else changes.
        let soon = std::time::Instant::now() + FAILURE_BACKOFF_INITIAL;
        state.retry_at = Some(state.retry_at.map_or(soon, |t| t.min(soon)));
    }
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(planning)
}
