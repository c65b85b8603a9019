//! Node lifecycle controller: watches node heartbeats (the Lease in kube-node-lease and the
//! Ready condition's lastHeartbeatTime), taints unreachable nodes, and evicts pods from
//! nodes with NoExecute taints they do not tolerate (Kubernetes' node lifecycle controller
//! plus its taint-eviction controller).
//!
//! - A node is monitored only when it has a Lease (a node agent exists); nodes without one
//!   (simulated nodes, Node objects created by hand) keep the conditions their creator set.
//! - A monitored node is stale when its last heartbeat (latest of the Lease renewTime, the
//!   Ready lastHeartbeatTime and the node's creation) is older than the grace period
//!   (node-monitor-grace-period, 40 s; `FLOTILLA_NODE_MONITOR_GRACE_SECONDS`).
//! - Stale: Ready, MemoryPressure, DiskPressure and PIDPressure become Unknown
//!   (NodeStatusUnknown, "Kubelet stopped posting node status."), keeping their
//!   lastHeartbeatTime, and the node gets `node.kubernetes.io/unreachable` NoSchedule and
//!   NoExecute (with timeAdded). Only a stale node is ever set Unknown; the node agent
//!   re-posts Ready=True itself when it is back.
//! - Fresh: the unreachable taints are removed; a Ready=False node carries
//!   `node.kubernetes.io/not-ready` NoSchedule and NoExecute instead.
//! - Every NoExecute taint gets a timeAdded (stamped when missing); tolerationSeconds count
//!   from it. A pod that does not tolerate every NoExecute taint of its node is deleted
//!   (gracefully); one that tolerates them is deleted once the smallest tolerationSeconds
//!   among the tolerations used has passed. Tolerations without tolerationSeconds tolerate
//!   forever. The API server's defaulting gives every pod 300 s for not-ready and
//!   unreachable (`FLOTILLA_DEFAULT_TOLERATION_SECONDS`).
//! - On a stale node nobody can finish a graceful deletion, so a terminating pod whose
//!   deletionTimestamp has passed is removed from the store (as the pod GC does) and its
//!   controller recreates it elsewhere. Kubernetes leaves such pods Terminating; this is a
//!   deliberate difference (unsafe for at-most-one workloads if the node is only partitioned).
//! - Finished pods (Succeeded/Failed) are never evicted: Jobs count them.
//! - While a monitored node's Ready condition is not True, the Ready condition of its
//!   running pods is set False with a NodeNotReady warning (Kubernetes' MarkPodsNotReady),
//!   so readiness consumers stop counting them before they are evicted. A node agent that
//!   comes back writes the readiness it observes again (node/src/pod.rs).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::objects::{deleting, ignore_transient, info, name, parse_time, timestamp, uid};
use super::pods::pod_ready;
use crate::apiserver::Api;
use crate::apiserver::error::ApiError;
use crate::apiserver::service::DeleteOptions;

/// Environment variable overriding the node monitor grace period, in seconds.
pub(crate) const GRACE_ENV: &str = "FLOTILLA_NODE_MONITOR_GRACE_SECONDS";
/// Kubernetes' node-monitor-grace-period default.
pub(crate) const DEFAULT_GRACE_SECONDS: i64 = 40;

pub(crate) const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub(crate) const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
const LEASE_PREFIX: &str = "coordination.k8s.io/leases/kube-node-lease/";
const NODE_COMPONENT: &str = "node-controller";
const EVICTION_COMPONENT: &str = "taint-eviction-controller";
/// Node conditions the kubelet posts and this controller sets Unknown.
const CONDITION_TYPES: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// Settings of the node lifecycle controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NodeLifecycleConfig {
    /// How long a node may go without a heartbeat before it is Unknown (default 40 s).
    pub grace: Duration,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        NodeLifecycleConfig { grace: Duration::seconds(DEFAULT_GRACE_SECONDS) }
    }
}

impl NodeLifecycleConfig {
    /// The defaults, with the grace period taken from `FLOTILLA_NODE_MONITOR_GRACE_SECONDS`
    /// when it holds a non-negative integer.
    pub(crate) fn from_env() -> Self {
        let mut c = Self::default();
        if let Some(s) = std::env::var(GRACE_ENV).ok().and_then(|v| v.trim().parse::<i64>().ok()).filter(|s| *s >= 0) {
            c.grace = Duration::seconds(s);
        }
        c
    }
}

/// What to do for one node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// Set the node's kubelet conditions Unknown (recomputed on the current node).
    MarkUnknown,
    /// Replace spec.taints, provided they are still `from` (null when absent).
    SetTaints { from: Value, to: Vec<Value> },
    /// Delete the pod gracefully because of a NoExecute taint.
    Evict { namespace: String, pod: String, uid: String },
    /// Remove the terminating pod from the store: its node cannot finish the deletion.
    ForceRemove { namespace: String, pod: String, uid: String },
    /// Set the pod's Ready condition False: its node is not ready.
    MarkPodNotReady { namespace: String, pod: String, uid: String },
}

/// A node with what the plan reads about it.
pub(crate) struct Observed<'a> {
    pub node: &'a Value,
    /// The node's Lease in kube-node-lease, if any.
    pub lease: Option<&'a Value>,
    /// Pods bound to the node.
    pub pods: Vec<&'a Value>,
}

fn condition<'v>(node: &'v Value, type_: &str) -> Option<&'v Value> {
    node["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_)
}

/// The node's last sign of life: Lease renewal, Ready heartbeat or creation.
fn last_heartbeat(node: &Value, lease: &Value) -> Option<DateTime<Utc>> {
    let candidates = [
        parse_time(&lease["spec"]["renewTime"]),
        condition(node, "Ready").and_then(|c| parse_time(&c["lastHeartbeatTime"])),
        parse_time(&node["metadata"]["creationTimestamp"]),
    ];
    candidates.into_iter().flatten().max()
}

/// A node with a Lease whose last heartbeat is older than the grace period.
pub(crate) fn stale(node: &Value, lease: Option<&Value>, config: &NodeLifecycleConfig, now: DateTime<Utc>) -> bool {
    let Some(lease) = lease else { return false };
    last_heartbeat(node, lease).is_none_or(|t| t + config.grace < now)
}

/// The node's conditions with the kubelet's ones set Unknown as Kubernetes does; None
/// when they already are.
pub(crate) fn unknown_conditions(node: &Value, now: DateTime<Utc>) -> Option<Vec<Value>> {
    let mut conds: Vec<Value> = node["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let now_s = timestamp(now);
    let mut changed = false;
    for t in CONDITION_TYPES {
        match conds.iter_mut().find(|c| c["type"] == t) {
            Some(c) if c["status"] == "Unknown" => {}
            Some(c) => {
                c["status"] = json!("Unknown");
                c["reason"] = json!("NodeStatusUnknown");
                c["message"] = json!("Kubelet stopped posting node status.");
                c["lastTransitionTime"] = json!(now_s);
                changed = true;
            }
            None => {
                conds.push(json!({
                    "type": t, "status": "Unknown",
                    "lastHeartbeatTime": node["metadata"]["creationTimestamp"], "lastTransitionTime": now_s,
                    "reason": "NodeStatusNeverUpdated", "message": "Kubelet never posted node status.",
                }));
                changed = true;
            }
        }
    }
    changed.then_some(conds)
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn is_managed(t: &Value) -> bool {
    matches!(str_of(&t["key"]), TAINT_UNREACHABLE | TAINT_NOT_READY) && matches!(str_of(&t["effect"]), "NoSchedule" | "NoExecute")
}

/// The node's taints after this pass: managed taints as `stale` and the Ready condition
/// call for, others kept, every NoExecute taint with a timeAdded.
fn desired_taints(node: &Value, stale: bool, now: DateTime<Utc>) -> Vec<Value> {
    let current: Vec<Value> = node["spec"]["taints"].as_array().cloned().unwrap_or_default();
    let want_key = if stale {
        Some(TAINT_UNREACHABLE)
    } else if condition(node, "Ready").is_some_and(|c| c["status"] == "False") {
        Some(TAINT_NOT_READY)
    } else {
        None
    };
    let mut out: Vec<Value> = current.into_iter().filter(|t| !is_managed(t) || Some(str_of(&t["key"])) == want_key).collect();
    if let Some(key) = want_key {
        for effect in ["NoSchedule", "NoExecute"] {
            if !out.iter().any(|t| t["key"] == key && t["effect"] == effect) {
                out.push(json!({"key": key, "effect": effect}));
            }
        }
    }
    stamp_no_execute(&mut out, now);
    out
}

/// Gives every NoExecute taint without a timeAdded the time `now`.
fn stamp_no_execute(taints: &mut [Value], now: DateTime<Utc>) {
    for t in taints {
        if t["effect"] == "NoExecute" && parse_time(&t["timeAdded"]).is_none() && t.is_object() {
            t["timeAdded"] = json!(timestamp(now));
        }
    }
}

/// Whether `tol` tolerates `taint` (an empty effect matches all effects; an empty key
/// with Exists matches all keys).
fn tolerates(tol: &Value, taint: &Value) -> bool {
    let effect = str_of(&tol["effect"]);
    if !effect.is_empty() && effect != str_of(&taint["effect"]) {
        return false;
    }
    let key = str_of(&tol["key"]);
    if !key.is_empty() && key != str_of(&taint["key"]) {
        return false;
    }
    match str_of(&tol["operator"]) {
        "Exists" => true,
        "" | "Equal" => str_of(&tol["value"]) == str_of(&taint["value"]),
        _ => false,
    }
}

/// When the NoExecute `taints` evict `pod`: Some(None) now (a taint is not tolerated),
/// Some(Some(t)) at t, None never.
fn eviction_time(pod: &Value, taints: &[&Value]) -> Option<Option<DateTime<Utc>>> {
    let tolerations: Vec<&Value> = pod["spec"]["tolerations"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
    let mut at: Option<DateTime<Utc>> = None;
    for taint in taints {
        // As Kubernetes: the first toleration that matches is the one used.
        let Some(tol) = tolerations.iter().find(|t| tolerates(t, taint)) else { return Some(None) };
        let Some(secs) = tol["tolerationSeconds"].as_i64() else { continue };
        // A taint not yet stamped starts counting once it is (next pass).
        let Some(added) = parse_time(&taint["timeAdded"]) else { continue };
        let t = added + Duration::seconds(secs.max(0));
        at = Some(at.map_or(t, |a| a.min(t)));
    }
    at.map(Some)
}

/// Pure: what to do for one node at `now`.
pub(crate) fn plan(o: &Observed<'_>, config: &NodeLifecycleConfig, now: DateTime<Utc>) -> Vec<Step> {
    let mut steps = Vec::new();
    let monitored = o.lease.is_some();
    let is_stale = stale(o.node, o.lease, config, now);
    if is_stale && unknown_conditions(o.node, now).is_some() {
        steps.push(Step::MarkUnknown);
    }
    let from = o.node["spec"]["taints"].clone();
    let current: Vec<Value> = from.as_array().cloned().unwrap_or_default();
    let to = if monitored {
        desired_taints(o.node, is_stale, now)
    } else {
        // Unmonitored: only stamp NoExecute taints, as evictions count from timeAdded.
        let mut out = current.clone();
        stamp_no_execute(&mut out, now);
        out
    };
    if to != current {
        steps.push(Step::SetTaints { from: from.clone(), to });
    }
    // Evictions follow the taints as stored; new taints take effect on the next pass.
    let no_execute: Vec<&Value> = from.as_array().map(|a| a.iter().filter(|t| t["effect"] == "NoExecute").collect()).unwrap_or_default();
    for &pod in &o.pods {
        if matches!(pod["status"]["phase"].as_str(), Some("Succeeded") | Some("Failed")) {
            continue;
        }
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default").to_string();
        if deleting(pod) {
            let due = parse_time(&pod["metadata"]["deletionTimestamp"]).is_none_or(|t| t <= now);
            if is_stale && due {
                steps.push(Step::ForceRemove { namespace: ns, pod: name(pod).to_string(), uid: uid(pod).to_string() });
            }
            continue;
        }
        let node_ready = condition(o.node, "Ready").is_some_and(|c| c["status"] == "True");
        if monitored && !node_ready && pod_ready(pod) {
            steps.push(Step::MarkPodNotReady { namespace: ns.clone(), pod: name(pod).to_string(), uid: uid(pod).to_string() });
        }
        if no_execute.is_empty() {
            continue;
        }
        match eviction_time(pod, &no_execute) {
            Some(at) if at.is_none_or(|t| t <= now) => {
                steps.push(Step::Evict { namespace: ns, pod: name(pod).to_string(), uid: uid(pod).to_string() });
            }
            _ => {}
        }
    }
    steps
}

// ---- executor ----

/// Plans every node in `objects` (settings from the environment) and carries out the steps.
pub(crate) async fn reconcile_all(api: &Api, objects: &[crate::store::Keyed], now: DateTime<Utc>) -> Result<(), ApiError> {
    reconcile_with(api, objects, &NodeLifecycleConfig::from_env(), now).await
}

pub(crate) async fn reconcile_with(api: &Api, objects: &[crate::store::Keyed], config: &NodeLifecycleConfig, now: DateTime<Utc>) -> Result<(), ApiError> {
    let mut leases: HashMap<&str, &Value> = HashMap::new();
    let mut pods: HashMap<&str, Vec<&Value>> = HashMap::new();
    let mut nodes: Vec<&Value> = Vec::new();
    for (k, s) in objects {
        if k.starts_with("core/nodes/") {
            nodes.push(&s.value);
        } else if let Some(n) = k.strip_prefix(LEASE_PREFIX) {
            leases.insert(n, &s.value);
        } else if k.starts_with("core/pods/")
            && let Some(n) = s.value["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())
        {
            pods.entry(n).or_default().push(&s.value);
        }
    }
    for node in nodes {
        let node_name = name(node);
        let lease = leases.get(node_name).copied();
        let o = Observed { node, lease, pods: pods.remove(node_name).unwrap_or_default() };
        let steps = plan(&o, config, now);
        if let Err(e) = execute(api, node, lease, config, steps, now).await {
            tracing::warn!(error = %e, node = node_name, "node lifecycle sync failed");
        }
    }
    Ok(())
}

async fn execute(api: &Api, node: &Value, lease: Option<&Value>, config: &NodeLifecycleConfig, steps: Vec<Step>, now: DateTime<Utc>) -> Result<(), ApiError> {
    let nodes = info("", "nodes");
    let pods = info("", "pods");
    let node_name = name(node);
    let node_uid = uid(node).to_string();
    for step in steps {
        match step {
            Step::MarkUnknown => {
                let was_ready = condition(node, "Ready").is_some_and(|c| c["status"] != "Unknown");
                let r = api
                    .modify(nodes, None, node_name, &|cur| {
                        // Re-checked on the current node: its agent may just have posted.
                        if uid(cur) != node_uid || !stale(cur, lease, config, now) {
                            return None;
                        }
                        let conds = unknown_conditions(cur, now)?;
                        let mut new = cur.clone();
                        new["status"]["conditions"] = Value::Array(conds);
                        Some(new)
                    })
                    .await;
                match r {
                    Ok(Some(n)) if was_ready && condition(&n, "Ready").is_some_and(|c| c["status"] == "Unknown") => {
                        let msg = format!("Node {node_name} status is now: NodeNotReady");
                        api.record_event(&n, "Normal", "NodeNotReady", &msg, NODE_COMPONENT).await;
                    }
                    Ok(_) => {}
                    Err(e) if e.is_transient() => {}
                    Err(e) => return Err(e),
                }
            }
            Step::SetTaints { from, to } => {
                let r = api
                    .modify(nodes, None, node_name, &|cur| {
                        if uid(cur) != node_uid || cur["spec"]["taints"] != from {
                            return None;
                        }
                        let mut new = cur.clone();
                        if to.is_empty() {
                            new["spec"].as_object_mut()?.remove("taints");
                        } else {
                            new["spec"]["taints"] = Value::Array(to.clone());
                        }
                        Some(new)
                    })
                    .await;
                ignore_transient(r)?;
            }
            Step::MarkPodNotReady { namespace, pod, uid: pod_uid } => {
                let now_s = timestamp(now);
                let wrote = std::sync::atomic::AtomicBool::new(false);
                let r = api
                    .modify(pods, Some(&namespace), &pod, &|cur| {
                        wrote.store(false, std::sync::atomic::Ordering::Relaxed);
                        if uid(cur) != pod_uid || cur["spec"]["nodeName"].as_str() != Some(node_name) {
                            return None;
                        }
                        // Re-checked on the current node: it may just have become Ready.
                        let current = api.get(nodes, None, node_name).ok()?;
                        if uid(&current.value) != node_uid || condition(&current.value, "Ready").is_some_and(|c| c["status"] == "True") {
                            return None;
                        }
                        let mut new = cur.clone();
                        let cond = new["status"]["conditions"].as_array_mut()?.iter_mut().find(|c| c["type"] == "Ready" && c["status"] == "True")?;
                        cond["status"] = json!("False");
                        cond["lastTransitionTime"] = json!(now_s);
                        wrote.store(true, std::sync::atomic::Ordering::Relaxed);
                        Some(new)
                    })
                    .await;
                match r {
                    Ok(Some(p)) if wrote.load(std::sync::atomic::Ordering::Relaxed) => {
                        api.record_event(&p, "Warning", "NodeNotReady", "Node is not ready", NODE_COMPONENT).await;
                    }
                    Ok(_) => {}
                    Err(e) if e.is_transient() => {}
                    Err(e) => return Err(e),
                }
            }
            Step::Evict { namespace, pod, uid: pod_uid } => {
                let now_s = timestamp(now);
                let _ = api
                    .modify(pods, Some(&namespace), &pod, &|cur| {
                        if uid(cur) != pod_uid || deleting(cur) {
                            return None;
                        }
                        let mut new = cur.clone();
                        let mut conds: Vec<Value> = cur["status"]["conditions"].as_array().cloned().unwrap_or_default();
                        conds.retain(|c| c["type"] != "DisruptionTarget");
                        conds.push(json!({
                            "type": "DisruptionTarget", "status": "True", "lastProbeTime": null, "lastTransitionTime": now_s,
                            "reason": "DeletionByTaintManager", "message": "Taint manager: deleting due to NoExecute taint",
                        }));
                        new["status"]["conditions"] = Value::Array(conds);
                        Some(new)
                    })
                    .await;
                let opts = DeleteOptions { uid: Some(pod_uid), ..Default::default() };
                match api.delete(pods, Some(&namespace), &pod, &opts).await {
                    Ok(obj) => {
                        let msg = format!("Marking for deletion Pod {namespace}/{pod}");
                        api.record_event(&obj, "Normal", "TaintManagerEviction", &msg, EVICTION_COMPONENT).await;
                    }
                    Err(e) if e.is_transient() => {}
                    Err(e) => return Err(e),
                }
            }
            Step::ForceRemove { namespace, pod, uid: pod_uid } => {
                match api.remove(pods, Some(&namespace), &pod, Some(&pod_uid)).await {
                    Ok(_) => tracing::info!(pod = %pod, namespace = %namespace, node = node_name, "force-removed a terminating pod on an unreachable node"),
                    Err(e) => tracing::debug!(error = %e, pod = %pod, "force removal skipped"),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::objects::t;

    fn cfg() -> NodeLifecycleConfig {
        NodeLifecycleConfig::default()
    }

    /// A node created at t(0) whose Ready condition (`ready`) last beat at `heartbeat`.
    fn node(ready: &str, heartbeat: i64, taints: Value) -> Value {
        let mut n = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "n1", "uid": "n1-uid", "creationTimestamp": timestamp(t(0))},
            "spec": {},
            "status": {"conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "lastHeartbeatTime": timestamp(t(heartbeat)), "lastTransitionTime": timestamp(t(0))},
                {"type": "Ready", "status": ready, "reason": "KubeletReady", "lastHeartbeatTime": timestamp(t(heartbeat)), "lastTransitionTime": timestamp(t(0))},
            ]},
        });
        if !taints.is_null() {
            n["spec"]["taints"] = taints;
        }
        n
    }

    fn lease(renew: i64) -> Value {
        json!({"metadata": {"name": "n1", "namespace": "kube-node-lease"}, "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40, "renewTime": t(renew).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)}})
    }

    fn pod(name: &str, tolerations: Value) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid")},
            "spec": {"nodeName": "n1", "tolerations": tolerations},
            "status": {"phase": "Running"},
        })
    }

    fn default_tolerations(secs: i64) -> Value {
        json!([
            {"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": secs},
            {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": secs},
        ])
    }

    fn unreachable_taints(added: i64) -> Value {
        json!([
            {"key": TAINT_UNREACHABLE, "effect": "NoSchedule"},
            {"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": timestamp(t(added))},
        ])
    }

    fn set_taints(steps: &[Step]) -> Option<&Vec<Value>> {
        steps.iter().find_map(|s| if let Step::SetTaints { to, .. } = s { Some(to) } else { None })
    }

    fn evicted(steps: &[Step]) -> Vec<&str> {
        steps.iter().filter_map(|s| if let Step::Evict { pod, .. } = s { Some(pod.as_str()) } else { None }).collect()
    }

    fn removed(steps: &[Step]) -> Vec<&str> {
        steps.iter().filter_map(|s| if let Step::ForceRemove { pod, .. } = s { Some(pod.as_str()) } else { None }).collect()
    }

    #[test]
    fn staleness_follows_the_grace_period() {
        // (lease renew, ready heartbeat, now, stale?)
        let cases = [(100, 0, 140, false), (100, 0, 141, true), (100, 130, 170, false), (100, 130, 171, true), (0, 0, 39, false), (10, 0, 60, true)];
        for (renew, hb, now, want) in cases {
            let n = node("True", hb, Value::Null);
            assert_eq!(stale(&n, Some(&lease(renew)), &cfg(), t(now)), want, "renew {renew} heartbeat {hb} now {now}");
        }
        // No lease: never monitored.
        assert!(!stale(&node("True", 0, Value::Null), None, &cfg(), t(10_000)));
        // A shorter grace period from the config.
        let short = NodeLifecycleConfig { grace: Duration::seconds(5) };
        assert!(stale(&node("True", 0, Value::Null), Some(&lease(10)), &short, t(16)));
    }

    #[test]
    fn a_stale_node_is_marked_unknown_and_tainted_unreachable() {
        let n = node("True", 0, json!([{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]));
        let l = lease(10);
        let steps = plan(&Observed { node: &n, lease: Some(&l), pods: vec![] }, &cfg(), t(100));
        assert!(steps.contains(&Step::MarkUnknown));
        let taints = set_taints(&steps).expect("taints change");
        assert_eq!(
            taints,
            &vec![
                json!({"key": "dedicated", "value": "x", "effect": "NoSchedule"}),
                json!({"key": TAINT_UNREACHABLE, "effect": "NoSchedule"}),
                json!({"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": timestamp(t(100))}),
            ]
        );
    }

    #[test]
    fn pods_on_a_node_that_is_not_ready_are_marked_not_ready() {
        let ready = |name: &str, status: &str| {
            let mut p = pod(name, default_tolerations(300));
            p["status"]["conditions"] = json!([{"type": "Ready", "status": status}]);
            p
        };
        let (a, b, plain) = (ready("a", "True"), ready("b", "False"), pod("c", default_tolerations(300)));
        let mut done = ready("d", "True");
        done["status"]["phase"] = json!("Succeeded");
        let marked = |n: &Value, l: Option<&Value>, now: i64| -> Vec<String> {
            plan(&Observed { node: n, lease: l, pods: vec![&a, &b, &plain, &done] }, &cfg(), t(now))
                .into_iter()
                .filter_map(|s| match s {
                    Step::MarkPodNotReady { pod, .. } => Some(pod),
                    _ => None,
                })
                .collect()
        };
        let l = lease(100);
        // (node Ready status, pods marked): only a Ready pod that is still running.
        for (status, want) in [("True", vec![]), ("Unknown", vec!["a".to_string()]), ("False", vec!["a".to_string()])] {
            assert_eq!(marked(&node(status, 100, Value::Null), Some(&l), 110), want, "node {status}");
        }
        // A node without a Lease is not monitored: its creator owns its pods' status.
        assert!(marked(&node("Unknown", 100, Value::Null), None, 110).is_empty());
    }

    #[test]
    fn unknown_conditions_keep_heartbeats_and_fill_missing_types() {
        let n = node("True", 7, Value::Null);
        let conds = unknown_conditions(&n, t(100)).expect("changed");
        let ready = conds.iter().find(|c| c["type"] == "Ready").expect("ready");
        assert_eq!(ready["status"], "Unknown");
        assert_eq!(ready["reason"], "NodeStatusUnknown");
        assert_eq!(ready["message"], "Kubelet stopped posting node status.");
        assert_eq!(ready["lastHeartbeatTime"], json!(timestamp(t(7))));
        assert_eq!(ready["lastTransitionTime"], json!(timestamp(t(100))));
        let disk = conds.iter().find(|c| c["type"] == "DiskPressure").expect("added");
        assert_eq!(disk["reason"], "NodeStatusNeverUpdated");
        assert_eq!(conds.len(), 4);
        // Already Unknown everywhere: nothing to do, so no step either.
        let mut n2 = n.clone();
        n2["status"]["conditions"] = Value::Array(conds);
        assert_eq!(unknown_conditions(&n2, t(200)), None);
        n2["spec"]["taints"] = unreachable_taints(100);
        let l = lease(0);
        assert_eq!(plan(&Observed { node: &n2, lease: Some(&l), pods: vec![] }, &cfg(), t(200)), vec![]);
    }

    #[test]
    fn a_fresh_lease_removes_unreachable_taints_without_touching_conditions() {
        // The agent is back (lease renewed) but has not re-posted Ready yet.
        let mut n = node("Unknown", 0, unreachable_taints(50));
        n["spec"]["taints"].as_array_mut().expect("taints").push(json!({"key": "other", "effect": "NoSchedule"}));
        let l = lease(195);
        let steps = plan(&Observed { node: &n, lease: Some(&l), pods: vec![] }, &cfg(), t(200));
        assert_eq!(steps, vec![Step::SetTaints { from: n["spec"]["taints"].clone(), to: vec![json!({"key": "other", "effect": "NoSchedule"})] }]);
    }

    #[test]
    fn a_not_ready_node_gets_not_ready_taints() {
        let n = node("False", 95, Value::Null);
        let l = lease(95);
        let steps = plan(&Observed { node: &n, lease: Some(&l), pods: vec![] }, &cfg(), t(100));
        let taints = set_taints(&steps).expect("taints");
        assert_eq!(taints.iter().map(|t| (str_of(&t["key"]), str_of(&t["effect"]))).collect::<Vec<_>>(), vec![(TAINT_NOT_READY, "NoSchedule"), (TAINT_NOT_READY, "NoExecute")]);
        assert!(!steps.contains(&Step::MarkUnknown));
    }

    #[test]
    fn nodes_without_a_lease_are_left_alone() {
        let n = node("True", 0, Value::Null);
        assert_eq!(plan(&Observed { node: &n, lease: None, pods: vec![] }, &cfg(), t(10_000)), vec![]);
    }

    #[test]
    fn no_execute_eviction_honours_toleration_seconds() {
        // Node stale since t(50); taints added at t(100); now varies.
        let n = node("Unknown", 0, unreachable_taints(100));
        let l = lease(10);
        let none = pod("none", Value::Null);
        let default = pod("default", default_tolerations(300));
        let short = pod("short", json!([{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]));
        let forever = pod("forever", json!([{"operator": "Exists"}]));
        let zero = pod("zero", json!([{"key": TAINT_UNREACHABLE, "operator": "Exists", "tolerationSeconds": 0}]));
        let only_no_schedule = pod("nosched", json!([{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoSchedule"}]));
        let mut done = pod("done", Value::Null);
        done["status"]["phase"] = json!("Succeeded");
        let pods = vec![&none, &default, &short, &forever, &zero, &only_no_schedule, &done];
        // (now, evicted)
        let cases: [(i64, &[&str]); 4] = [
            (100, &["none", "zero", "nosched"]),
            (105, &["none", "short", "zero", "nosched"]),
            (399, &["none", "short", "zero", "nosched"]),
            (400, &["none", "default", "short", "zero", "nosched"]),
        ];
        for (now, want) in cases {
            let steps = plan(&Observed { node: &n, lease: Some(&l), pods: pods.clone() }, &cfg(), t(now));
            assert_eq!(evicted(&steps), want.to_vec(), "now {now}");
        }
    }

    #[test]
    fn the_smallest_toleration_among_several_taints_wins_and_unstamped_taints_wait() {
        let l = lease(1000);
        let n = node(
            "True",
            1000,
            json!([
                {"key": "a", "effect": "NoExecute", "timeAdded": timestamp(t(0))},
                {"key": "b", "effect": "NoExecute", "timeAdded": timestamp(t(50))},
            ]),
        );
        let p = pod("p", json!([{"key": "a", "operator": "Exists", "tolerationSeconds": 100}, {"key": "b", "operator": "Exists", "tolerationSeconds": 20}]));
        let at = |now| evicted(&plan(&Observed { node: &n, lease: Some(&l), pods: vec![&p] }, &cfg(), t(now))).len();
        assert_eq!((at(69), at(70)), (0, 1));
        // A user NoExecute taint without timeAdded is stamped; the tolerating pod waits.
        let n2 = node("True", 1000, json!([{"key": "c", "value": "v", "effect": "NoExecute"}]));
        let p2 = pod("p2", json!([{"key": "c", "operator": "Equal", "value": "v", "tolerationSeconds": 0}]));
        let steps = plan(&Observed { node: &n2, lease: Some(&l), pods: vec![&p2] }, &cfg(), t(1001));
        assert_eq!(evicted(&steps), Vec::<&str>::new());
        assert_eq!(set_taints(&steps).expect("stamped")[0]["timeAdded"], json!(timestamp(t(1001))));
        // A wrong value does not tolerate: evicted at once.
        let p3 = pod("p3", json!([{"key": "c", "operator": "Equal", "value": "w"}]));
        assert_eq!(evicted(&plan(&Observed { node: &n2, lease: Some(&l), pods: vec![&p3] }, &cfg(), t(1001))), vec!["p3"]);
    }

    #[test]
    fn terminating_pods_on_a_stale_node_are_force_removed_after_their_grace() {
        let n = node("Unknown", 0, unreachable_taints(100));
        let mut p = pod("p", Value::Null);
        p["metadata"]["deletionTimestamp"] = json!(timestamp(t(130)));
        let stale_lease = lease(10);
        let at = |l: &Value, now| removed(&plan(&Observed { node: &n, lease: Some(l), pods: vec![&p] }, &cfg(), t(now))).len();
        assert_eq!(at(&stale_lease, 129), 0);
        assert_eq!(at(&stale_lease, 130), 1);
        // A live node finishes the deletion itself.
        assert_eq!(at(&lease(125), 130), 0);
        // Terminating pods are never evicted again.
        assert!(evicted(&plan(&Observed { node: &n, lease: Some(&stale_lease), pods: vec![&p] }, &cfg(), t(130))).is_empty());
    }
}
