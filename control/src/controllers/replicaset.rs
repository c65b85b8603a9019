//! ReplicaSet controller: keeps `spec.replicas` active pods per ReplicaSet.
//!
//! - Pods are claimed by selector: an orphan pod that matches is adopted (controller
//!   ownerReference with blockOwnerDeletion); an owned pod that stops matching is released.
//!   A ReplicaSet being deleted neither adopts, releases, creates nor deletes.
//! - Terminating (deletionTimestamp set) and finished (Succeeded/Failed) pods do not count.
//! - Scale-down removes pods in Kubernetes' order: unscheduled, Pending before Unknown
//!   before Running, not ready, lower pod-deletion-cost, more siblings on the same node,
//!   ready for less time, more restarts, newest.
//! - Status (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas honouring
//!   minReadySeconds, observedGeneration) is computed from the pods observed in this pass,
//!   as Kubernetes does; the next pass sees the effect of this pass's writes.

use std::cmp::Ordering;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::objects::{by_namespace, deleting, generation, ignore_transient, info, labels, name, parse_time, selector, timestamp, uid};
use super::owner::{Change, adopt, claim, controller_ref, release};
use super::pods::{create_pod, delete_pod, pod_active, pod_available, pod_ready, ready_since, template_metadata};
use super::status::{self, set_count, write_status};
use crate::apiserver::Api;
use crate::apiserver::error::ApiError;

/// At most this many pods are created or deleted per ReplicaSet per pass (Kubernetes' burstReplicas).
const BURST_REPLICAS: usize = 500;
const COMPONENT: &str = "replicaset-controller";
const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

// ---- plan ----

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// Add a controller ownerReference to the orphan pod.
    Adopt { pod: String, uid: String },
    /// Remove this ReplicaSet's ownerReference from the pod.
    Release { pod: String, uid: String },
    /// Create this pod (named by `generateName`).
    Create { pod: Value },
    /// Delete the pod (gracefully).
    Delete { pod: String, uid: String },
    /// Replace the ReplicaSet's status.
    Status { status: Value },
}

/// The pod a ReplicaSet creates from its template.
pub(crate) fn pod_from_template(rs: &Value, owner_kind: &str) -> Value {
    let t = &rs["spec"]["template"];
    let meta = json!({
        "generateName": format!("{}-", name(rs)),
        "namespace": rs["metadata"]["namespace"].as_str().unwrap_or("default"),
    });
    let meta = template_metadata(meta, t, controller_ref(rs, "apps/v1", owner_kind));
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": t["spec"].clone()})
}

fn deletion_cost(p: &Value) -> i64 {
    p["metadata"]["annotations"][DELETION_COST].as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn restarts(p: &Value) -> i64 {
    p["status"]["containerStatuses"].as_array().map(|a| a.iter().filter_map(|c| c["restartCount"].as_i64()).max().unwrap_or(0)).unwrap_or(0)
}

fn phase_rank(p: &Value) -> u8 {
    match p["status"]["phase"].as_str() {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 3,
    }
}

/// Ordering of pods to delete first (Less = delete earlier). `rank` is the number of
/// sibling pods on the same node.
fn delete_first(a: &Value, b: &Value, rank: &HashMap<&str, usize>) -> Ordering {
    let node = |p: &Value| p["spec"]["nodeName"].as_str().unwrap_or("").to_string();
    let assigned = |p: &Value| !node(p).is_empty();
    let r = |p: &Value| rank.get(node(p).as_str()).copied().unwrap_or(0);
    assigned(a)
        .cmp(&assigned(b))
        .then(phase_rank(a).cmp(&phase_rank(b)))
        .then(pod_ready(a).cmp(&pod_ready(b)))
        .then(deletion_cost(a).cmp(&deletion_cost(b)))
        .then(r(b).cmp(&r(a)))
        .then_with(|| match (ready_since(a).flatten(), ready_since(b).flatten()) {
            // Ready more recently first.
            (Some(x), Some(y)) => y.cmp(&x),
            _ => Ordering::Equal,
        })
        .then(restarts(b).cmp(&restarts(a)))
        .then_with(|| {
            let ct = |p: &Value| parse_time(&p["metadata"]["creationTimestamp"]);
            ct(b).cmp(&ct(a))
        })
        .then_with(|| name(a).cmp(name(b)))
}

/// Pure: what to do for `rs`, given every pod in its namespace, at `now`.
pub(crate) fn plan(rs: &Value, pods: &[&Value], now: DateTime<Utc>) -> Vec<Step> {
    let Some(sel) = selector(rs) else { return vec![] };
    let rs_deleting = deleting(rs);
    // Claim pods: owned and matching, plus adoptable orphans.
    let claimed = claim(rs, &sel, pods, &|_| true);
    let mut steps: Vec<Step> = claimed
        .changes
        .iter()
        .map(|(c, p)| {
            let (pod, uid) = (name(p).to_string(), uid(p).to_string());
            match c {
                Change::Adopt => Step::Adopt { pod, uid },
                Change::Release => Step::Release { pod, uid },
            }
        })
        .collect();
    let active: Vec<&Value> = claimed.owned.iter().copied().filter(|p| pod_active(p)).collect();
    let want = rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
    if !rs_deleting {
        if active.len() < want {
            let pod = pod_from_template(rs, "ReplicaSet");
            for _ in 0..(want - active.len()).min(BURST_REPLICAS) {
                steps.push(Step::Create { pod: pod.clone() });
            }
        } else if active.len() > want {
            let mut rank: HashMap<&str, usize> = HashMap::new();
            for p in &active {
                if let Some(n) = p["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                    *rank.entry(n).or_default() += 1;
                }
            }
            let mut victims = active.clone();
            victims.sort_by(|a, b| delete_first(a, b, &rank));
            for p in victims.into_iter().take((active.len() - want).min(BURST_REPLICAS)) {
                steps.push(Step::Delete { pod: name(p).to_string(), uid: uid(p).to_string() });
            }
        }
    }
    let status = calculate_status(rs, &active, now);
    if status != rs["status"] {
        steps.push(Step::Status { status });
    }
    steps
}

fn calculate_status(rs: &Value, active: &[&Value], now: DateTime<Utc>) -> Value {
    let min_ready = rs["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    let template_labels = rs["spec"]["template"]["metadata"]["labels"].as_object();
    let fully_labeled = active
        .iter()
        .filter(|p| template_labels.is_none_or(|tl| tl.iter().all(|(k, v)| labels(p).and_then(|l| l.get(k)) == Some(v))))
        .count();
    let ready = active.iter().filter(|p| pod_ready(p)).count();
    let available = active.iter().filter(|p| pod_available(p, min_ready, now)).count();
    let mut status = status::current(rs);
    // `replicas` is always present; zero counts of the others are omitted.
    set_count(&mut status, "replicas", active.len(), true);
    set_count(&mut status, "fullyLabeledReplicas", fully_labeled, false);
    set_count(&mut status, "readyReplicas", ready, false);
    set_count(&mut status, "availableReplicas", available, false);
    if generation(rs) > 0 {
        status["observedGeneration"] = json!(generation(rs));
    }
    // A create failure's condition is managed by the executor.
    if let Some(c) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        c.retain(|c| c["type"] != "ReplicaFailure");
    }
    if status["conditions"].as_array().is_some_and(|c| c.is_empty())
        && let Some(o) = status.as_object_mut()
    {
        o.remove("conditions");
    }
    status
}

// ---- executor ----

/// Plans every ReplicaSet in `objects` and carries out the steps.
pub(crate) async fn reconcile_all(api: &Api, objects: &[crate::store::Keyed], now: DateTime<Utc>) -> Result<(), ApiError> {
    let pods = by_namespace(objects, "core/pods");
    let none = Vec::new();
    for (ns, sets) in by_namespace(objects, "apps/replicasets") {
        let pods = pods.get(ns).unwrap_or(&none);
        for rs in sets {
            let steps = plan(rs, pods, now);
            if let Err(e) = execute(api, rs, steps).await {
                tracing::warn!(error = %e, replicaset = name(rs), namespace = ns, "replicaset sync failed");
            }
        }
    }
    Ok(())
}

async fn execute(api: &Api, rs: &Value, steps: Vec<Step>) -> Result<(), ApiError> {
    let pods = info("", "pods");
    let sets = info("apps", "replicasets");
    let ns = rs["metadata"]["namespace"].as_str().unwrap_or("default");
    let owner = controller_ref(rs, "apps/v1", "ReplicaSet");
    let rs_uid = uid(rs).to_string();
    let mut create_error: Option<String> = None;
    let mut status_step = None;
    for step in steps {
        match step {
            Step::Adopt { pod, uid } => ignore_transient(adopt(api, pods, ns, &pod, &uid, &owner).await)?,
            Step::Release { pod, uid } => ignore_transient(release(api, pods, ns, &pod, &uid, &rs_uid).await)?,
            Step::Create { pod } => {
                if create_error.is_some() {
                    continue;
                }
                if let Err(e) = create_pod(api, rs, ns, pod, COMPONENT).await {
                    create_error = Some(e.message);
                }
            }
            Step::Delete { pod, uid } => delete_pod(api, rs, ns, &pod, uid, COMPONENT).await,
            Step::Status { status } => status_step = Some(status),
        }
    }
    let had_failure = rs["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "ReplicaFailure"));
    if status_step.is_none() && (create_error.is_some() || had_failure) {
        status_step = Some(rs["status"].clone());
    }
    let Some(mut status) = status_step else { return Ok(()) };
    if let Some(c) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        c.retain(|c| c["type"] != "ReplicaFailure");
    }
    let now = timestamp(api.clock.now());
    if let Some(msg) = &create_error {
        // Keep the condition as it was when the same failure repeats: no write, no event storm.
        let previous = rs["status"]["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "ReplicaFailure")).cloned();
        let cond = match previous {
            Some(p) if p["message"] == json!(msg) => p,
            _ => {
                api.record_event(rs, "Warning", "FailedCreate", &format!("Error creating: {msg}"), COMPONENT).await;
                json!({"type": "ReplicaFailure", "status": "True", "lastTransitionTime": now, "reason": "FailedCreate", "message": msg})
            }
        };
        if !status.is_object() {
            status = json!({});
        }
        match status["conditions"].as_array_mut() {
            Some(c) => c.push(cond),
            None => status["conditions"] = json!([cond]),
        }
    } else if status["conditions"].as_array().is_some_and(|c| c.is_empty())
        && let Some(o) = status.as_object_mut()
    {
        o.remove("conditions");
    }
    write_status(api, sets, rs, status).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::objects::t;

    fn rs(replicas: i64) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web", "namespace": "default", "uid": "rs-uid", "generation": 2},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", "tier": "fe"}, "annotations": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
            },
        })
    }

    /// A pod owned by `rs-uid` (or by `owner`), with optional node, phase and ready-since.
    fn pod(name: &str, owner: Option<&str>, node: &str, phase: &str, ready: Option<i64>, created: i64) -> Value {
        let mut p = json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid"), "labels": {"app": "web", "tier": "fe"}, "creationTimestamp": timestamp(t(created))},
            "spec": {"nodeName": node},
            "status": {"phase": phase},
        });
        if let Some(o) = owner {
            p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x", "uid": o, "controller": true}]);
        }
        if let Some(r) = ready {
            p["status"]["conditions"] = json!([{"type": "Ready", "status": "True", "lastTransitionTime": timestamp(t(r))}]);
        }
        p
    }

    fn creates(steps: &[Step]) -> usize {
        steps.iter().filter(|s| matches!(s, Step::Create { .. })).count()
    }

    fn deletes(steps: &[Step]) -> Vec<&str> {
        steps.iter().filter_map(|s| if let Step::Delete { pod, .. } = s { Some(pod.as_str()) } else { None }).collect()
    }

    fn status(steps: &[Step]) -> Option<&Value> {
        steps.iter().find_map(|s| if let Step::Status { status } = s { Some(status) } else { None })
    }

    #[test]
    fn creates_missing_pods_from_the_template() {
        let steps = plan(&rs(3), &[], t(0));
        assert_eq!(creates(&steps), 3);
        let Some(Step::Create { pod }) = steps.first() else { panic!("expected a create") };
        assert_eq!(pod["metadata"]["generateName"], "web-");
        assert_eq!(pod["metadata"]["namespace"], "default");
        assert_eq!(pod["metadata"]["labels"], json!({"app": "web", "tier": "fe"}));
        assert_eq!(pod["metadata"]["annotations"], json!({"a": "b"}));
        assert_eq!(
            pod["metadata"]["ownerReferences"],
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs-uid", "controller": true, "blockOwnerDeletion": true}])
        );
        assert_eq!(pod["spec"]["containers"][0]["image"], "i");
        assert_eq!(status(&steps), Some(&json!({"replicas": 0, "observedGeneration": 2})));
    }

    #[test]
    fn terminating_and_finished_pods_do_not_count() {
        let mut gone = pod("a", Some("rs-uid"), "n1", "Running", Some(0), 0);
        gone["metadata"]["deletionTimestamp"] = json!(timestamp(t(5)));
        let done = pod("b", Some("rs-uid"), "n1", "Succeeded", None, 0);
        let live = pod("c", Some("rs-uid"), "n1", "Running", Some(0), 0);
        let steps = plan(&rs(2), &[&gone, &done, &live], t(10));
        assert_eq!(creates(&steps), 1);
        assert!(deletes(&steps).is_empty());
        assert_eq!(status(&steps).map(|s| s["replicas"].clone()), Some(json!(1)));
    }

    #[test]
    fn scale_down_order_follows_kubernetes() {
        let unscheduled = pod("unscheduled", Some("rs-uid"), "", "Pending", None, 0);
        let pending = pod("pending", Some("rs-uid"), "n1", "Pending", None, 0);
        let not_ready = pod("notready", Some("rs-uid"), "n1", "Running", None, 0);
        let old_ready = pod("old", Some("rs-uid"), "n1", "Running", Some(1), 0);
        let new_ready = pod("new", Some("rs-uid"), "n1", "Running", Some(50), 40);
        let all = [&old_ready, &new_ready, &not_ready, &pending, &unscheduled];
        let steps = plan(&rs(1), &all, t(100));
        assert_eq!(deletes(&steps), vec!["unscheduled", "pending", "notready", "new"]);
        let steps = plan(&rs(3), &all, t(100));
        assert_eq!(deletes(&steps), vec!["unscheduled", "pending"]);
    }

    #[test]
    fn crowded_nodes_and_low_deletion_cost_go_first() {
        let a = pod("a", Some("rs-uid"), "n1", "Running", Some(1), 0);
        let b = pod("b", Some("rs-uid"), "n1", "Running", Some(1), 0);
        let c = pod("c", Some("rs-uid"), "n2", "Running", Some(1), 0);
        let steps = plan(&rs(2), &[&a, &b, &c], t(100));
        assert_eq!(deletes(&steps), vec!["a"]);
        let mut cheap = c.clone();
        cheap["metadata"]["annotations"] = json!({DELETION_COST: "-5"});
        let steps = plan(&rs(2), &[&a, &b, &cheap], t(100));
        assert_eq!(deletes(&steps), vec!["c"]);
    }

    #[test]
    fn adopts_orphans_releases_mismatches_ignores_foreign_pods() {
        let orphan = pod("orphan", None, "n1", "Running", Some(0), 0);
        let mut stray = pod("stray", Some("rs-uid"), "n1", "Running", Some(0), 0);
        stray["metadata"]["labels"] = json!({"app": "other"});
        let foreign = pod("foreign", Some("other-uid"), "n1", "Running", Some(0), 0);
        let steps = plan(&rs(1), &[&orphan, &stray, &foreign], t(10));
        assert_eq!(
            steps[..2],
            [Step::Adopt { pod: "orphan".into(), uid: "orphan-uid".into() }, Step::Release { pod: "stray".into(), uid: "stray-uid".into() }]
        );
        // The adopted pod satisfies replicas=1.
        assert_eq!(creates(&steps), 0);
        assert!(deletes(&steps).is_empty());
    }

    #[test]
    fn deleting_replicaset_does_not_manage_pods() {
        let mut r = rs(5);
        r["metadata"]["deletionTimestamp"] = json!(timestamp(t(0)));
        let orphan = pod("orphan", None, "n1", "Running", Some(0), 0);
        let steps = plan(&r, &[&orphan], t(10));
        assert!(steps.iter().all(|s| matches!(s, Step::Status { .. })), "{steps:?}");
    }

    #[test]
    fn status_counts_ready_available_and_fully_labeled() {
        let mut r = rs(3);
        r["spec"]["minReadySeconds"] = json!(30);
        let long_ready = pod("a", Some("rs-uid"), "n1", "Running", Some(0), 0);
        let just_ready = pod("b", Some("rs-uid"), "n1", "Running", Some(90), 0);
        let mut partly_labeled = pod("c", Some("rs-uid"), "n1", "Running", None, 0);
        partly_labeled["metadata"]["labels"] = json!({"app": "web"});
        let steps = plan(&r, &[&long_ready, &just_ready, &partly_labeled], t(100));
        assert_eq!(
            status(&steps),
            Some(&json!({"replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 2, "availableReplicas": 1, "observedGeneration": 2}))
        );
        // Once minReadySeconds have passed the second pod counts as available.
        let steps = plan(&r, &[&long_ready, &just_ready, &partly_labeled], t(120));
        assert_eq!(status(&steps).map(|s| s["availableReplicas"].clone()), Some(json!(2)));
    }

    #[test]
    fn steady_state_plans_nothing() {
        let mut r = rs(1);
        r["status"] = json!({"replicas": 1, "fullyLabeledReplicas": 1, "readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 2});
        let p = pod("a", Some("rs-uid"), "n1", "Running", Some(0), 0);
        assert!(plan(&r, &[&p], t(100)).is_empty());
    }

    #[test]
    fn burst_is_capped() {
        assert_eq!(creates(&plan(&rs(2000), &[], t(0))), BURST_REPLICAS);
    }

    #[test]
    fn no_selector_no_action() {
        let mut r = rs(2);
        r["spec"]["selector"] = Value::Null;
        assert!(plan(&r, &[], t(0)).is_empty());
    }
}
