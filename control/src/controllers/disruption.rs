//! PodDisruptionBudget status (kube-controller-manager's disruption controller): how many
//! of the pods a budget selects are healthy, how many must be, and so how many voluntary
//! disruptions (evictions) are allowed right now.
//!
//! Semantics (policy/v1):
//! - A budget selects the pods of its namespace that match `spec.selector` (an empty
//!   selector selects every pod, a missing one none). Terminal pods are not counted.
//! - `minAvailable` as a number: expected = the selected pods, desired = the number.
//!   `minAvailable` as a percentage or `maxUnavailable`: expected = the replicas of the
//!   pods' controllers (ReplicaSet, StatefulSet, ReplicationController), desired =
//!   ceil(percentage × expected), or expected − maxUnavailable (a percentage of it rounded
//!   up). With neither, every selected pod is desired (no disruption is allowed).
//! - healthy = selected pods that are Ready and not being deleted; a pod an eviction just
//!   disrupted (`status.disruptedPods`, for up to 2 minutes or until it is gone or being
//!   deleted) counts as unhealthy already;
//!   disruptionsAllowed = max(0, healthy − desired).
//! - Condition DisruptionAllowed: True/SufficientPods when disruptions are allowed, else
//!   False/InsufficientPods.
//!
//! Invariants: `plan` is pure (the clock comes in); the executor writes the status only
//! when it changed (transitions keep their lastTransitionTime).

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::objects::{self, by_namespace, generation, name, parse_time, scaled, timestamp};
use super::pods::pod_ready;
use crate::apiserver::Api;
use crate::apiserver::error::ApiError;
use crate::apiserver::eviction::selects;

/// How long an eviction's entry in `disruptedPods` holds a pod as disrupted.
const DISRUPTION_TIMEOUT_SECONDS: i64 = 120;


fn terminal(pod: &Value) -> bool {
    matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

/// The replicas of the controllers of `pods` (each controller once), or None when a pod has
/// a controller that is not found or not scalable.
fn expected_from_controllers(pods: &[&Value], controllers: &[&Value]) -> Option<i64> {
    let mut seen = HashSet::new();
    let mut total = 0;
    for p in pods {
        let Some(owner) = p["metadata"]["ownerReferences"].as_array().and_then(|o| o.iter().find(|r| r["controller"] == true)) else {
            continue;
        };
        let uid = owner["uid"].as_str().unwrap_or("");
        if !seen.insert(uid) {
            continue;
        }
        let c = controllers.iter().find(|c| objects::uid(c) == uid)?;
        total += c["spec"]["replicas"].as_i64().unwrap_or(1);
    }
    Some(total)
}

/// Pure: the status `pdb` should have, given the pods of its namespace and the scalable
/// controllers (ReplicaSets, StatefulSets) there.
pub(crate) fn plan(pdb: &Value, pods: &[&Value], controllers: &[&Value], now: DateTime<Utc>) -> Value {
    let selected: Vec<&Value> = pods.iter().copied().filter(|p| !terminal(p) && selects(pdb, p)).collect();
    let live: HashSet<&str> = selected.iter().filter(|p| !objects::deleting(p)).map(|p| name(p)).collect();
    // Evictions not yet reflected: the pod is still there, not yet deleting, and recent.
    let mut disrupted = BTreeMap::new();
    for (pod, at) in pdb["status"]["disruptedPods"].as_object().into_iter().flatten() {
        let recent = parse_time(at).is_some_and(|t| (now - t).num_seconds() < DISRUPTION_TIMEOUT_SECONDS);
        if recent && live.contains(pod.as_str()) {
            disrupted.insert(pod.clone(), at.clone());
        }
    }
    let healthy = selected
        .iter()
        .filter(|p| !objects::deleting(p) && pod_ready(p) && !disrupted.contains_key(name(p)))
        .count() as i64;
    let spec = &pdb["spec"];
    let (expected, desired) = match (&spec["minAvailable"], &spec["maxUnavailable"]) {
        (Value::Number(n), _) => (selected.len() as i64, n.as_i64().unwrap_or(0)),
        (min @ Value::String(_), _) => match expected_from_controllers(&selected, controllers) {
            Some(e) => (e, scaled(min, e, true)),
            None => (0, 0),
        },
        (_, max @ (Value::Number(_) | Value::String(_))) => match expected_from_controllers(&selected, controllers) {
            Some(e) => (e, (e - scaled(max, e, true)).max(0)),
            None => (0, 0),
        },
        _ => (selected.len() as i64, selected.len() as i64),
    };
    let allowed = (healthy - desired).max(0);
    let (status, reason) = if allowed > 0 { ("True", "SufficientPods") } else { ("False", "InsufficientPods") };
    let old = pdb["status"]["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "DisruptionAllowed"));
    let since = match old {
        Some(o) if o["status"] == status => o["lastTransitionTime"].clone(),
        _ => json!(timestamp(now)),
    };
    let mut out = json!({
        "observedGeneration": generation(pdb),
        "disruptionsAllowed": allowed,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "conditions": [{
            "type": "DisruptionAllowed", "status": status, "reason": reason, "message": "",
            "observedGeneration": generation(pdb), "lastTransitionTime": since,
        }],
    });
    if !disrupted.is_empty() {
        out["disruptedPods"] = Value::Object(disrupted.into_iter().collect());
    }
    out
}

pub(crate) async fn reconcile_all(api: &Api, keyed: &[crate::store::Keyed], now: DateTime<Utc>) -> Result<(), ApiError> {
    let info = objects::info("policy", "poddisruptionbudgets");
    let pods = by_namespace(keyed, "core/pods");
    let rs = by_namespace(keyed, "apps/replicasets");
    let sts = by_namespace(keyed, "apps/statefulsets");
    let none = Vec::new();
    for (ns, budgets) in by_namespace(keyed, &info.store_prefix()) {
        let pods = pods.get(ns).unwrap_or(&none);
        let controllers: Vec<&Value> = rs.get(ns).unwrap_or(&none).iter().chain(sts.get(ns).unwrap_or(&none)).copied().collect();
        for pdb in budgets {
            let status = plan(pdb, pods, &controllers, now);
            if pdb["status"] != status {
                // Only over the budget this plan read: an eviction may have used a
                // disruption since (the next pass recounts).
                let mut new = pdb.clone();
                new["status"] = status;
                let rv = pdb["metadata"]["resourceVersion"].as_str().and_then(|r| r.parse().ok());
                let key = crate::apiserver::service::key(info, Some(ns), name(pdb));
                let pre = crate::store::Precondition { resource_version: rv, uid: None };
                match api.store.write(crate::store::Op::Update { key, object: new, precondition: pre }).await {
                    Ok(_) | Err(crate::store::StoreError::Conflict | crate::store::StoreError::NotFound) => {}
                    Err(e) => return Err(ApiError::from_store(e, info, name(pdb))),
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

    fn pod(name: &str, ready: bool, owner: Option<&str>) -> Value {
        let mut p = json!({
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        });
        if let Some(o) = owner {
            p["metadata"]["ownerReferences"] = json!([{"uid": o, "controller": true, "kind": "ReplicaSet", "name": o, "apiVersion": "apps/v1"}]);
        }
        p
    }

    fn pdb(spec: Value) -> Value {
        let mut s = spec;
        s["selector"] = json!({"matchLabels": {"app": "web"}});
        json!({"metadata": {"name": "b", "namespace": "default", "generation": 1}, "spec": s})
    }

    #[test]
    fn min_available_counts_ready_pods() {
        let pods = [pod("a", true, None), pod("b", true, None), pod("c", false, None)];
        let refs: Vec<&Value> = pods.iter().collect();
        let s = plan(&pdb(json!({"minAvailable": 1})), &refs, &[], t(0));
        assert_eq!((s["currentHealthy"].as_i64(), s["desiredHealthy"].as_i64(), s["expectedPods"].as_i64(), s["disruptionsAllowed"].as_i64()), (Some(2), Some(1), Some(3), Some(1)));
        assert_eq!(s["conditions"][0]["reason"], "SufficientPods");
        let s = plan(&pdb(json!({"minAvailable": 2})), &refs, &[], t(0));
        assert_eq!(s["disruptionsAllowed"], 0);
        assert_eq!(s["conditions"][0]["status"], "False");
    }

    #[test]
    fn max_unavailable_uses_the_controllers_scale_and_disrupted_pods_count_as_down() {
        let rs = json!({"metadata": {"uid": "rs1"}, "spec": {"replicas": 3}});
        let pods = [pod("a", true, Some("rs1")), pod("b", true, Some("rs1")), pod("c", true, Some("rs1"))];
        let refs: Vec<&Value> = pods.iter().collect();
        let mut budget = pdb(json!({"maxUnavailable": "34%"}));
        let s = plan(&budget, &refs, &[&rs], t(0));
        // 34% of 3 rounds up to 2 unavailable: desired 1.
        assert_eq!((s["expectedPods"].as_i64(), s["desiredHealthy"].as_i64(), s["disruptionsAllowed"].as_i64()), (Some(3), Some(1), Some(2)));
        budget["status"] = json!({"disruptedPods": {"a": timestamp(t(0)), "gone": timestamp(t(0))}});
        let s = plan(&budget, &refs, &[&rs], t(10));
        assert_eq!(s["disruptionsAllowed"], 1);
        assert_eq!(s["disruptedPods"], json!({"a": timestamp(t(0))}), "entries for pods that are gone are dropped");
        let s = plan(&budget, &refs, &[&rs], t(200));
        assert_eq!(s["disruptionsAllowed"], 2, "an old entry expires");
    }
}
