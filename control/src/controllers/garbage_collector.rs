//! Garbage collector: ownerReferences cascades for all three propagation policies, and
//! pod GC for terminating pods whose node does not exist.
//!
//! - Background: an object all of whose owners are gone is deleted.
//! - Foreground: an owner being deleted with the `foregroundDeletion` finalizer has its
//!   dependents deleted (foreground too); the finalizer goes once none remain.
//! - Orphan: an owner being deleted with the `orphan` finalizer has its ownerReference
//!   removed from every dependent; then the finalizer goes.
//! - Dependents are deleted with no grace period, only the incarnation the plan saw
//!   (uid precondition); a pod is removed at once (see [`Api::remove`]).
//! - Events go an hour after they last occurred (Kubernetes' default --event-ttl).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::objects::{ignore_transient, parse_key};
use super::owner::without_owner;
use crate::apiserver::Api;
use crate::apiserver::error::ApiError;
use crate::apiserver::service::DeleteOptions;

/// Events live this long after their last occurrence, as with Kubernetes' default --event-ttl.
const EVENT_TTL_SECONDS: i64 = 3600;

/// An object as the collector sees it.
pub(crate) struct Obj<'a> {
    pub key: &'a str,
    pub value: &'a Value,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Delete the object at `key` with this propagation policy.
    Delete { key: String, uid: String, propagation: &'static str },
    /// Remove the owner reference with `owner_uid` from the object at `key`.
    RemoveOwnerRef { key: String, owner_uid: String },
    /// Remove `finalizer` from the object at `key`.
    RemoveFinalizer { key: String, finalizer: &'static str },
}

fn uid(v: &Value) -> &str {
    v["metadata"]["uid"].as_str().unwrap_or("")
}

fn deleting(v: &Value) -> bool {
    !v["metadata"]["deletionTimestamp"].is_null()
}

fn has_finalizer(v: &Value, f: &str) -> bool {
    v["metadata"]["finalizers"].as_array().is_some_and(|a| a.iter().any(|x| x == f))
}

fn owner_uids(v: &Value) -> Vec<&str> {
    v["metadata"]["ownerReferences"].as_array().map(|a| a.iter().filter_map(|o| o["uid"].as_str()).collect()).unwrap_or_default()
}

/// Pure: what to do next, given every object.
pub(crate) fn plan(objects: &[Obj<'_>]) -> Vec<Step> {
    let live: HashSet<&str> = objects.iter().map(|o| uid(o.value)).collect();
    let mut dependents: HashMap<&str, Vec<&Obj<'_>>> = HashMap::new();
    for o in objects {
        for owner in owner_uids(o.value) {
            dependents.entry(owner).or_default().push(o);
        }
    }
    let mut steps = Vec::new();
    for o in objects {
        let v = o.value;
        let deps = dependents.get(uid(v)).map(Vec::as_slice).unwrap_or(&[]);
        if deleting(v) && has_finalizer(v, "orphan") {
            for d in deps {
                steps.push(Step::RemoveOwnerRef { key: d.key.to_string(), owner_uid: uid(v).to_string() });
            }
            if deps.is_empty() {
                steps.push(Step::RemoveFinalizer { key: o.key.to_string(), finalizer: "orphan" });
            }
            continue;
        }
        if deleting(v) && has_finalizer(v, "foregroundDeletion") {
            for d in deps.iter().filter(|d| !deleting(d.value)) {
                steps.push(Step::Delete { key: d.key.to_string(), uid: uid(d.value).to_string(), propagation: "Foreground" });
            }
            if deps.is_empty() {
                steps.push(Step::RemoveFinalizer { key: o.key.to_string(), finalizer: "foregroundDeletion" });
            }
        }
        let owners = owner_uids(v);
        if !owners.is_empty() && !deleting(v) {
            let alive: Vec<&&str> = owners.iter().filter(|u| live.contains(**u)).collect();
            if alive.is_empty() {
                steps.push(Step::Delete { key: o.key.to_string(), uid: uid(v).to_string(), propagation: "Background" });
            } else if alive.len() < owners.len() {
                for u in owners.iter().filter(|u| !live.contains(**u)) {
                    steps.push(Step::RemoveOwnerRef { key: o.key.to_string(), owner_uid: u.to_string() });
                }
            }
        }
    }
    // Pod GC: terminating pods bound to a node that does not exist are removed.
    let nodes: HashSet<&str> = objects
        .iter()
        .filter(|o| o.key.starts_with("core/nodes/"))
        .filter_map(|o| o.value["metadata"]["name"].as_str())
        .collect();
    for o in objects.iter().filter(|o| o.key.starts_with("core/pods/")) {
        let node = o.value["spec"]["nodeName"].as_str().unwrap_or("");
        let no_finalizers = o.value["metadata"]["finalizers"].as_array().is_none_or(|f| f.is_empty());
        if deleting(o.value) && !node.is_empty() && !nodes.contains(node) && no_finalizers {
            steps.push(Step::Delete { key: o.key.to_string(), uid: uid(o.value).to_string(), propagation: "Background" });
        }
    }
    steps
}

/// Keys of core/v1 and events.k8s.io events last seen before `cutoff`.
fn expired_events(objects: &[crate::store::Keyed], cutoff: DateTime<Utc>) -> Vec<String> {
    objects
        .iter()
        .filter(|(k, _)| k.starts_with("core/events/") || k.starts_with("events.k8s.io/events/"))
        .filter(|(_, s)| {
            let v = &s.value;
            let t = v["lastTimestamp"].as_str().or(v["eventTime"].as_str()).or(v["metadata"]["creationTimestamp"].as_str());
            t.and_then(|t| DateTime::parse_from_rfc3339(t).ok()).is_some_and(|t| t < cutoff)
        })
        .map(|(k, _)| k.to_string())
        .collect()
}

// ---- executor ----

/// Plans over every object in `objects` and carries out the steps, then removes expired
/// events. A failed write other than a transient one stops the pass.
pub(crate) async fn reconcile_all(api: &Api, objects: &[crate::store::Keyed]) -> Result<(), ApiError> {
    let objs: Vec<Obj<'_>> = objects.iter().map(|(k, s)| Obj { key: k, value: &s.value }).collect();
    for step in plan(&objs) {
        match step {
            Step::Delete { key, uid, propagation } => {
                let Some((info, ns, name)) = parse_key(&key) else { continue };
                if info.kind == "Pod" {
                    // Pod GC: a forced removal.
                    let _ = api.remove(info, ns, name, Some(&uid)).await;
                    continue;
                }
                let opts = DeleteOptions { propagation: Some(propagation.into()), uid: Some(uid), grace_period_seconds: Some(0), ..Default::default() };
                ignore_transient(api.delete(info, ns, name, &opts).await)?;
            }
            Step::RemoveOwnerRef { key, owner_uid } => {
                let Some((info, ns, name)) = parse_key(&key) else { continue };
                let updated = api.modify(info, ns, name, &|cur| without_owner(cur, &owner_uid)).await?;
                if let Some(obj) = updated {
                    let msg = format!("ownerReference to {owner_uid} removed: the owner was deleted with propagationPolicy Orphan or no longer exists");
                    api.record_event(&obj, "Normal", "OwnerRefRemoved", &msg, "garbage-collector").await;
                }
            }
            Step::RemoveFinalizer { key, finalizer } => {
                let Some((info, ns, name)) = parse_key(&key) else { continue };
                api.remove_finalizer(info, ns, name, finalizer).await?;
            }
        }
    }
    let cutoff = api.clock.now() - chrono::Duration::seconds(EVENT_TTL_SECONDS);
    for key in expired_events(objects, cutoff) {
        if let Some((info, ns, name)) = parse_key(&key) {
            let _ = api.remove(info, ns, name, None).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn o(uid: &str, owners: &[&str], deleting: bool, finalizers: &[&str]) -> Value {
        let mut v = json!({"metadata": {"name": uid, "uid": uid}});
        if !owners.is_empty() {
            v["metadata"]["ownerReferences"] = json!(owners.iter().map(|u| json!({"uid": u, "name": u, "kind": "X", "apiVersion": "v1"})).collect::<Vec<_>>());
        }
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        if !finalizers.is_empty() {
            v["metadata"]["finalizers"] = json!(finalizers);
        }
        v
    }

    fn run(objs: &[(&str, Value)]) -> Vec<Step> {
        let v: Vec<Obj<'_>> = objs.iter().map(|(k, v)| Obj { key: k, value: v }).collect();
        plan(&v)
    }

    #[test]
    fn background_deletes_dependents_of_missing_owner() {
        let steps = run(&[("a/rs", o("rs", &["gone"], false, &[])), ("a/x", o("x", &[], false, &[]))]);
        assert_eq!(steps, vec![Step::Delete { key: "a/rs".into(), uid: "rs".into(), propagation: "Background" }]);
    }

    #[test]
    fn dependent_with_a_live_owner_loses_only_the_dangling_ref() {
        let steps = run(&[("a/d", o("d", &["gone", "x"], false, &[])), ("a/x", o("x", &[], false, &[]))]);
        assert_eq!(steps, vec![Step::RemoveOwnerRef { key: "a/d".into(), owner_uid: "gone".into() }]);
    }

    #[test]
    fn orphan_removes_refs_then_finalizer() {
        let steps = run(&[("a/dep", o("dep", &["own"], false, &[])), ("a/own", o("own", &[], true, &["orphan"]))]);
        assert_eq!(steps, vec![Step::RemoveOwnerRef { key: "a/dep".into(), owner_uid: "own".into() }]);
        let steps = run(&[("a/own", o("own", &[], true, &["orphan"]))]);
        assert_eq!(steps, vec![Step::RemoveFinalizer { key: "a/own".into(), finalizer: "orphan" }]);
    }

    #[test]
    fn foreground_deletes_dependents_first_then_releases_owner() {
        let steps = run(&[("a/dep", o("dep", &["own"], false, &[])), ("a/own", o("own", &[], true, &["foregroundDeletion"]))]);
        assert_eq!(steps, vec![Step::Delete { key: "a/dep".into(), uid: "dep".into(), propagation: "Foreground" }]);
        // A dependent still being deleted holds the owner.
        let steps = run(&[("a/dep", o("dep", &["own"], true, &["x"])), ("a/own", o("own", &[], true, &["foregroundDeletion"]))]);
        assert!(steps.is_empty());
        let steps = run(&[("a/own", o("own", &[], true, &["foregroundDeletion"]))]);
        assert_eq!(steps, vec![Step::RemoveFinalizer { key: "a/own".into(), finalizer: "foregroundDeletion" }]);
    }

    #[test]
    fn terminating_pod_on_missing_node_is_removed() {
        let mut p = o("p", &[], true, &[]);
        p["spec"] = json!({"nodeName": "gone"});
        let steps = run(&[("core/pods/default/p", p)]);
        assert_eq!(steps, vec![Step::Delete { key: "core/pods/default/p".into(), uid: "p".into(), propagation: "Background" }]);
    }
}
