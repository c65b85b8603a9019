//! Controllers that run on the control plane's leader. Each is a pure `plan` over the
//! objects it observes plus this thin executor, which re-plans whenever the store changes.

pub(crate) mod daemonset;
pub(crate) mod cronjob;
pub(crate) mod deployment;
pub(crate) mod garbage_collector;
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
fn expired_events(objects: &[(String, std::sync::Arc<crate::store::Stored>)], cutoff: chrono::DateTime<chrono::Utc>) -> Vec<String> {
    objects
        .iter()
        .filter(|(k, _)| k.starts_with("core/events/") || k.starts_with("events.k8s.io/events/"))
        .filter(|(_, s)| {
            let v = &s.value;
            let t = v["lastTimestamp"].as_str().or(v["eventTime"].as_str()).or(v["metadata"]["creationTimestamp"].as_str());
            t.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).is_some_and(|t| t < cutoff)
        })
        .map(|(k, _)| k.clone())
        .collect()
}

/// Runs the garbage collector and namespace controller until shutdown.
pub(crate) async fn run(api: Api, shutdown: Shutdown) {
    tokio::spawn(run_scheduler(api.clone(), shutdown.clone()));
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
    loop {
        let rev = api.store.revision();
        let mut pause = Duration::from_millis(20);
        if rev != last_seen {
            last_seen = rev;
            let started = std::time::Instant::now();
            let mut keyed = api.store.list_keys("core/nodes/");
            keyed.extend(api.store.list_keys("core/pods/"));
            if let Err(e) = schedule_pending(&api, &keyed).await {
                tracing::warn!(error = %e, "scheduling pass failed");
            }
            // Many unschedulable pods make every pass long: keep re-planning from eating the CPU.
            pause = pause.max(started.elapsed() * 2);
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

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
                let updated = api.modify(info, ns, name, &|cur| {
                    let mut new = cur.clone();
                    let refs = new["metadata"]["ownerReferences"].as_array_mut()?;
                    refs.retain(|r| r["uid"].as_str() != Some(owner_uid.as_str()));
                    if refs.is_empty() {
                        new["metadata"].as_object_mut()?.remove("ownerReferences");
                    }
                    Some(new)
                })
                .await?;
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
        .map(|(k, s)| (k.as_str(), &s.value))
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
/// change). Decisions are made in one pure sweep over the snapshot; the writes then go
/// out concurrently so the store commits them in a few batches.
async fn schedule_pending(api: &Api, keyed: &[(String, std::sync::Arc<crate::store::Stored>)]) -> Result<(), crate::apiserver::error::ApiError> {
    use serde_json::{Value, json};
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
    if pending.is_empty() {
        return Ok(());
    }
    let info = resources::find("", "v1", "pods").expect("pods served");
    let mut infos = scheduler::snapshot(&nodes, &pods);
    let index: std::collections::HashMap<String, usize> = infos.iter().enumerate().map(|(i, n)| (n.name().to_string(), i)).collect();
    let mut binds: Vec<(&Value, String)> = Vec::new();
    let mut unschedulable: Vec<(&Value, String)> = Vec::new();
    for pod in pending {
        match scheduler::schedule(pod, &infos) {
            Ok(node) => {
                if let Some(&i) = index.get(&node) {
                    infos[i].add_pod(pod);
                }
                binds.push((pod, node));
            }
            Err(u) => {
                let current = pod["status"]["conditions"]
                    .as_array()
                    .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled"))
                    .and_then(|c| c["message"].as_str())
                    .unwrap_or("");
                if current != u.message {
                    unschedulable.push((pod, u.message));
                }
            }
        }
    }
    const IN_FLIGHT: usize = 1024;
    for chunk in binds.chunks(IN_FLIGHT) {
        let results = futures::future::join_all(chunk.iter().map(|(pod, node)| {
            api.bind(info, pod["metadata"]["namespace"].as_str(), pod["metadata"]["name"].as_str().unwrap_or(""), node)
        }))
        .await;
        for r in results {
            match r {
                Ok(_) => {}
                Err(e) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
    }
    let now = crate::apiserver::service::timestamp(api.clock.now());
    for chunk in unschedulable.chunks(IN_FLIGHT) {
        futures::future::join_all(chunk.iter().map(|(pod, message)| {
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
                if let Ok(Some(p)) = updated {
                    api.record_event(&p, "Warning", "FailedScheduling", message, "default-scheduler").await;
                }
            }
        }))
        .await;
    }
    Ok(())
}
