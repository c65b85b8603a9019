//! The scheduler's executor: its own loop, apart from the other controllers' passes, that
//! binds pending pods through the API as [`super::schedule_all`] decides.
//!
//! - It reads only nodes and pods, and re-plans on every change.
//! - Bindings go out concurrently, a chunk at a time, while the next chunk is planned; a
//!   pass ends only once every binding it started is written.
//! - A pod that fits nowhere gets PodScheduled=False and a FailedScheduling event; these
//!   writes back off per pod (see [`SchedulerState`]), scheduling itself does not.

use std::time::Duration;

use serde_json::{Value, json};

use super::{schedule_all, snapshot};
use crate::apiserver::error::ApiError;
use crate::apiserver::{Api, Shutdown};
use crate::controllers::objects::{info, timestamp};

/// The scheduler's own loop: it reads only nodes and pods, so it re-plans on every change
/// without waiting behind the other controllers' full scans.
pub(crate) async fn run(api: Api, shutdown: Shutdown) {
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

/// kube-scheduler's PodEligibleToPreemptOthers: a pod already nominated to a node where
/// lower-priority pods are still terminating waits for them rather than preempting again.
fn eligible_to_preempt(pod: &Value, pods: &[&Value]) -> bool {
    let nominated = pod["status"]["nominatedNodeName"].as_str().unwrap_or("");
    if nominated.is_empty() {
        return true;
    }
    let prio = super::preemption::priority(pod);
    !pods.iter().any(|p| {
        p["spec"]["nodeName"] == nominated && !p["metadata"]["deletionTimestamp"].is_null() && super::preemption::priority(p) < prio
    })
}

/// Nominates the node for the preemptor and deletes the victims gracefully, each with a
/// Preempted event (kube-scheduler's words).
async fn execute_preemption(api: &Api, pod: &Value, p: &super::preemption::Preemption<'_>) {
    let info = info("", "pods");
    let node = p.node.clone();
    let ns = pod["metadata"]["namespace"].as_str();
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let nominated = api
        .modify(info, ns, name, &|cur| {
            if !cur["spec"]["nodeName"].as_str().unwrap_or("").is_empty() || cur["status"]["nominatedNodeName"] == node.as_str() {
                return None;
            }
            let mut new = cur.clone();
            new["status"]["nominatedNodeName"] = json!(node);
            Some(new)
        })
        .await;
    if let Err(e) = nominated {
        tracing::warn!(error = %e, pod = name, "could not nominate a node for preemption");
        return;
    }
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
    for v in &p.victims {
        let (vns, vname) = (v["metadata"]["namespace"].as_str(), v["metadata"]["name"].as_str().unwrap_or(""));
        let opts = crate::apiserver::service::DeleteOptions { uid: v["metadata"]["uid"].as_str().map(str::to_string), ..Default::default() };
        match api.delete(info, vns, vname, &opts).await {
            Ok(_) => {
                let msg = format!("Preempted by pod {uid} on node {}", p.node);
                api.record_event(v, "Normal", "Preempted", &msg, "default-scheduler").await;
            }
            Err(e) if e.is_transient() => {}
            Err(e) => tracing::warn!(error = %e, victim = vname, "could not preempt"),
        }
    }
}

/// Keeps the first error of a binding task.
fn note_error(first: &mut Option<ApiError>, joined: Result<Result<(), ApiError>, tokio::task::JoinError>) {
    let e = match joined {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e,
        Err(e) => ApiError::internal(e.to_string()),
    };
    first.get_or_insert(e);
}

const FAILURE_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
const FAILURE_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Binds pending pods (no nodeName, default scheduler, no scheduling gates) to nodes;
/// marks the others PodScheduled=False with the scheduler's reasons (retried on every
/// change; the writes back off per pod, see [`SchedulerState`]). Decisions are made in one
/// pure sweep over the snapshot; the writes then go out concurrently so the store commits
/// them in a few batches.
async fn schedule_pending(api: &Api, keyed: &[crate::store::Keyed], state: &mut SchedulerState) -> Result<Duration, ApiError> {
    let started = std::time::Instant::now();
    let nodes: Vec<&Value> = keyed.iter().filter(|(k, _)| k.starts_with("core/nodes/")).map(|(_, s)| &s.value).collect();
    let pods: Vec<&Value> = keyed.iter().filter(|(k, _)| k.starts_with("core/pods/")).map(|(_, s)| &s.value).collect();
    let mut pending: Vec<&Value> = pods
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
    // Higher priority first, as kube-scheduler's active queue orders them.
    pending.sort_by_key(|p| std::cmp::Reverse(super::preemption::priority(p)));
    state.retry_at = None;
    if pending.is_empty() {
        state.failures.clear();
        return Ok(started.elapsed());
    }
    let uid = |p: &Value| p["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let pending_uids: std::collections::HashSet<String> = pending.iter().map(|p| uid(p)).collect();
    state.failures.retain(|u, _| pending_uids.contains(u));
    let info = info("", "pods");
    let mut infos = snapshot(&nodes, &pods);
    let mut planning = started.elapsed();
    let mut unschedulable: Vec<(&Value, String)> = Vec::new();
    let mut preempting: Option<(&Value, super::preemption::Preemption<'_>)> = None;
    let now_instant = std::time::Instant::now();
    // Plan a chunk, send its bindings off, plan the next while they are written.
    const IN_FLIGHT: usize = 1024;
    let mut writing: std::collections::VecDeque<tokio::task::JoinHandle<Result<(), ApiError>>> = Default::default();
    let mut failed: Option<ApiError> = None;
    for chunk in pending.chunks(IN_FLIGHT) {
        let planned = std::time::Instant::now();
        let results = schedule_all(chunk, &mut infos, &mut state.next_start);
        let chunk_planning = planned.elapsed();
        planning += chunk_planning;
        // Each attempt's share of the chunk's planning time (the pure pass does not time).
        let per_attempt = chunk_planning / u32::try_from(chunk.len()).unwrap_or(u32::MAX).max(1);
        let unschedulable_now = results.iter().filter(|r| r.is_err()).count();
        for _ in 0..unschedulable_now {
            crate::metrics::global().scheduling_attempt(crate::metrics::Attempt::Unschedulable, per_attempt);
        }
        let mut binds: Vec<(Option<String>, String, String)> = Vec::new();
        for (pod, result) in chunk.iter().copied().zip(results) {
            match result {
                Ok(node) => {
                    let ns = pod["metadata"]["namespace"].as_str().map(str::to_string);
                    binds.push((ns, pod["metadata"]["name"].as_str().unwrap_or("").to_string(), node));
                }
                Err(u) => {
                    if preempting.is_none() && eligible_to_preempt(pod, &pods)
                        && let Some(p) = super::preemption::preempt(pod, &infos)
                    {
                        preempting = Some((pod, p));
                    }
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
            let metrics = crate::metrics::global();
            for r in &results {
                let result = if r.is_ok() { crate::metrics::Attempt::Scheduled } else { crate::metrics::Attempt::Error };
                metrics.scheduling_attempt(result, per_attempt);
            }
            for r in results {
                match r {
                    Ok(_) => {}
                    Err(e) if e.is_transient() => {}
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
    if let Some((pod, p)) = preempting {
        execute_preemption(api, pod, &p).await;
    }
    let now = timestamp(api.clock.now());
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
