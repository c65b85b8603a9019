//! DaemonSet controller: one pod per eligible node.
//!
//! Invariants and behaviour (as Kubernetes' daemon controller):
//! - A node is eligible ("should run") when the template's nodeSelector and required node
//!   affinity match it and it has no NoSchedule/NoExecute taint the pod does not tolerate
//!   (the pod carries the standard DaemonSet tolerations); a pod may stay ("should
//!   continue running") unless affinity stops matching or a NoExecute taint is untolerated.
//!   This uses the scheduler's own filters ([`super::scheduler::node_fit`]).
//! - Pods are created unbound with required node affinity `matchFields metadata.name In
//!   [NODE]`, so the scheduler places them; an unbound pod counts for the node its
//!   affinity names. Pods on nodes where they may not stay are deleted, as are failed or
//!   succeeded pods, extra pods on a node (the oldest stays), and unbound pods aimed at
//!   nodes that no longer exist.
//! - Revisions are ControllerRevisions `NAME-<hash>` labelled `controller-revision-hash`;
//!   pods carry the same label. RollingUpdate (maxSurge 0) deletes old pods while the
//!   number of unavailable desired nodes stays within maxUnavailable (scaled on
//!   desiredNumberScheduled, rounded up, at least 1 when both are zero); old pods that are
//!   not available are replaced at once. OnDelete replaces nothing by itself.
//! - Status (desired/current/ready/available/updated/misscheduled, observedGeneration) is
//!   computed from the pods observed in this pass.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::objects::{by_namespace, deleting, generation, ignore_transient, info, name, parse_time, scaled, selector, uid};
use super::owner::{Change, adopt, claim, controller_ref, release};
use super::pods::{create_pod, delete_pod, pod_available, pod_ready, pod_terminal, template_metadata};
use super::revisions::{REVISION_LABEL, RevisionStep, execute_revision_step, resolve_history, truncate_history};
use super::scheduler::node_fit;
use super::status::{self, set_count, write_status};
use crate::apiserver::Api;
use crate::apiserver::error::ApiError;

const COMPONENT: &str = "daemonset-controller";
const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    Revision(RevisionStep),
    AdoptPod { pod: String, uid: String },
    ReleasePod { pod: String, uid: String },
    /// Create the daemon pod for `node`.
    CreatePod { pod: Value, node: String },
    DeletePod { pod: String, uid: String },
    Status { status: Value },
}

/// The tolerations every daemon pod gets (key, effect), all with operator Exists.
const DAEMON_TOLERATIONS: &[(&str, &str)] = &[
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
];

/// The template's pod spec with the daemon tolerations added (those not already present).
fn spec_with_tolerations(template: &Value) -> Value {
    let mut spec = match &template["spec"] {
        Value::Object(o) => Value::Object(o.clone()),
        _ => json!({}),
    };
    let mut tols = spec["tolerations"].as_array().cloned().unwrap_or_default();
    let mut wanted: Vec<(&str, &str)> = DAEMON_TOLERATIONS.to_vec();
    if spec["hostNetwork"] == json!(true) {
        wanted.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    for (key, effect) in wanted {
        let present = tols.iter().any(|t| t["key"] == key && t["effect"] == effect && t["operator"] == "Exists" && t["value"].as_str().unwrap_or("").is_empty());
        if !present {
            tols.push(json!({"key": key, "operator": "Exists", "effect": effect}));
        }
    }
    spec["tolerations"] = Value::Array(tols);
    spec
}

/// The pod `ds` runs on `node`: unbound, pinned by required node affinity.
pub(crate) fn new_pod(ds: &Value, hash: &str, node: &str) -> Value {
    let t = &ds["spec"]["template"];
    let mut l = t["metadata"]["labels"].as_object().cloned().unwrap_or_default();
    l.insert(REVISION_LABEL.into(), json!(hash));
    if let Some(g) = ds["metadata"]["annotations"][TEMPLATE_GENERATION_ANNOTATION].as_str() {
        l.insert(TEMPLATE_GENERATION_LABEL.into(), json!(g));
    }
    let meta = json!({"generateName": format!("{}-", name(ds)), "namespace": ds["metadata"]["namespace"].as_str().unwrap_or("default"), "labels": l});
    let meta = template_metadata(meta, t, controller_ref(ds, "apps/v1", "DaemonSet"));
    let mut spec = spec_with_tolerations(t);
    // As Kubernetes: the required terms are replaced by the node-name term.
    if !spec["affinity"].is_object() {
        spec["affinity"] = json!({});
    }
    if !spec["affinity"]["nodeAffinity"].is_object() {
        spec["affinity"]["nodeAffinity"] = json!({});
    }
    spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] =
        json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]});
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
}

/// The node a daemon pod is bound to or aimed at.
fn target_node(p: &Value) -> Option<&str> {
    if let Some(n) = p["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    let terms = p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"].as_array()?;
    terms.iter().flat_map(|t| t["matchFields"].as_array().into_iter().flatten()).find_map(|f| {
        let values = f["values"].as_array()?;
        (f["key"] == "metadata.name" && f["operator"] == "In" && values.len() == 1).then(|| values[0].as_str()).flatten()
    })
}

/// (should run, should continue running) for the template on `node`.
fn eligibility(ds: &Value, probe: &Value, node: &Value) -> (bool, bool) {
    if let Some(n) = ds["spec"]["template"]["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())
        && n != name(node)
    {
        return (false, false);
    }
    let fit = node_fit(probe, node);
    let cont = fit.matches_affinity && !fit.untolerated_no_execute;
    (cont && !fit.untolerated_no_schedule, cont)
}

fn pod_hash(p: &Value) -> &str {
    p["metadata"]["labels"][REVISION_LABEL].as_str().unwrap_or("")
}

/// Oldest first (creation time, then name).
fn oldest_first(pods: &mut [&Value]) {
    pods.sort_by(|a, b| parse_time(&a["metadata"]["creationTimestamp"]).cmp(&parse_time(&b["metadata"]["creationTimestamp"])).then_with(|| name(a).cmp(name(b))));
}

/// Pure: what to do for `ds`, given every node, and every pod and ControllerRevision in its namespace.
pub(crate) fn plan(ds: &Value, nodes: &[&Value], pods: &[&Value], revisions: &[&Value], now: DateTime<Utc>) -> Vec<Step> {
    let Some(sel) = selector(ds) else { return vec![] };
    if deleting(ds) {
        return vec![];
    }
    let Ok(history) = resolve_history(ds, "DaemonSet", REVISION_LABEL, revisions) else {
        let mut status = status::current(ds);
        status["collisionCount"] = json!(ds["status"]["collisionCount"].as_i64().unwrap_or(0) + 1);
        return vec![Step::Status { status }];
    };
    let hash = history.update_hash.clone();
    let mut steps: Vec<Step> = history.steps.iter().cloned().map(Step::Revision).collect();
    let claimed = claim(ds, &sel, pods, &|_| true);
    steps.extend(claimed.with(Change::Adopt).map(|p| Step::AdoptPod { pod: name(p).to_string(), uid: uid(p).to_string() }));
    steps.extend(claimed.with(Change::Release).map(|p| Step::ReleasePod { pod: name(p).to_string(), uid: uid(p).to_string() }));
    let in_use: HashSet<&str> = claimed.owned.iter().map(|p| pod_hash(p)).collect();
    steps.extend(
        truncate_history(ds, &history, &[history.update_name.as_str()], &|r| {
            r["metadata"]["labels"][REVISION_LABEL].as_str().is_some_and(|h| in_use.contains(h))
        })
        .into_iter()
        .map(Step::Revision),
    );

    // Pods by node, leaving out those both terminating and finished.
    let node_names: HashSet<&str> = nodes.iter().map(|n| name(n)).collect();
    let mut by_node: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for &p in &claimed.owned {
        if deleting(p) && pod_terminal(p) {
            continue;
        }
        match target_node(p) {
            Some(n) if node_names.contains(n) => by_node.entry(n).or_default().push(p),
            // Aimed at a node that is gone: it can never be scheduled.
            _ if p["spec"]["nodeName"].as_str().unwrap_or("").is_empty() && !deleting(p) => {
                steps.push(Step::DeletePod { pod: name(p).to_string(), uid: uid(p).to_string() });
            }
            _ => {}
        }
    }
    for v in by_node.values_mut() {
        oldest_first(v);
    }

    let probe = json!({"metadata": ds["spec"]["template"]["metadata"].clone(), "spec": spec_with_tolerations(&ds["spec"]["template"])});
    let min_ready = ds["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    let mut sorted_nodes: Vec<&Value> = nodes.to_vec();
    sorted_nodes.sort_by(|a, b| name(a).cmp(name(b)));

    let (mut desired, mut current, mut ready, mut available, mut updated, mut misscheduled) = (0, 0, 0, 0, 0, 0);
    // Desired nodes for the rolling update: (node, live pods).
    let mut desired_nodes: Vec<(&str, Vec<&Value>)> = Vec::new();
    let mut managed = false;
    for node in &sorted_nodes {
        let node_name = name(node);
        let (should_run, should_continue) = eligibility(ds, &probe, node);
        let on_node = by_node.get(node_name).cloned().unwrap_or_default();
        let live: Vec<&Value> = on_node.iter().copied().filter(|p| !deleting(p)).collect();

        // Status, on the oldest live pod (else the oldest).
        if should_run {
            desired += 1;
            if let Some(p) = live.first().or(on_node.first()) {
                current += 1;
                if pod_ready(p) {
                    ready += 1;
                    if pod_available(p, min_ready, now) {
                        available += 1;
                    }
                }
                if pod_hash(p) == hash {
                    updated += 1;
                }
            }
        } else if !on_node.is_empty() {
            misscheduled += 1;
        }

        // Manage.
        if should_continue {
            let mut running = Vec::new();
            for p in &live {
                if pod_terminal(p) {
                    steps.push(Step::DeletePod { pod: name(p).to_string(), uid: uid(p).to_string() });
                    managed = true;
                } else {
                    running.push(*p);
                }
            }
            if running.is_empty() && should_run {
                steps.push(Step::CreatePod { pod: new_pod(ds, &hash, node_name), node: node_name.to_string() });
                managed = true;
            } else if running.len() > 1 {
                for p in &running[1..] {
                    steps.push(Step::DeletePod { pod: name(p).to_string(), uid: uid(p).to_string() });
                }
                managed = true;
            }
            if should_run {
                desired_nodes.push((node_name, running));
            }
        } else {
            for p in &live {
                steps.push(Step::DeletePod { pod: name(p).to_string(), uid: uid(p).to_string() });
                managed = true;
            }
        }
    }

    // Rolling update (maxSurge 0), only once placement is settled.
    let rolling = ds["spec"]["updateStrategy"]["type"].as_str().unwrap_or("RollingUpdate") == "RollingUpdate";
    if rolling && !managed {
        let ru = &ds["spec"]["updateStrategy"]["rollingUpdate"];
        let surge = scaled(&ru["maxSurge"], desired as i64, true);
        let mut max_unavailable = scaled(ru.get("maxUnavailable").unwrap_or(&json!(1)), desired as i64, true);
        if max_unavailable == 0 && surge == 0 {
            max_unavailable = 1;
        }
        let mut unavailable = 0i64;
        let mut replace_now = Vec::new();
        let mut candidates = Vec::new();
        for (_, running) in &desired_nodes {
            let [p] = running.as_slice() else {
                unavailable += 1;
                continue;
            };
            let is_available = pod_available(p, min_ready, now);
            if pod_hash(p) == hash {
                if !is_available {
                    unavailable += 1;
                }
            } else if !is_available {
                replace_now.push(*p);
            } else {
                candidates.push(*p);
            }
        }
        let room = (max_unavailable - unavailable).max(0) as usize;
        for p in replace_now.into_iter().chain(candidates.into_iter().take(room)) {
            steps.push(Step::DeletePod { pod: name(p).to_string(), uid: uid(p).to_string() });
        }
    }

    let mut status = status::current(ds);
    if generation(ds) > 0 {
        status["observedGeneration"] = json!(generation(ds));
    }
    set_count(&mut status, "currentNumberScheduled", current, true);
    set_count(&mut status, "numberMisscheduled", misscheduled, true);
    set_count(&mut status, "desiredNumberScheduled", desired, true);
    set_count(&mut status, "numberReady", ready, true);
    set_count(&mut status, "updatedNumberScheduled", updated, false);
    set_count(&mut status, "numberAvailable", available, false);
    set_count(&mut status, "numberUnavailable", desired.saturating_sub(available), false);
    if status != ds["status"] {
        steps.push(Step::Status { status });
    }
    steps
}

// ---- executor ----

/// Plans every DaemonSet in `objects` and carries out the steps.
pub(crate) async fn reconcile_all(api: &Api, objects: &[crate::store::Keyed], now: DateTime<Utc>) -> Result<(), ApiError> {
    let pods = by_namespace(objects, "core/pods");
    let revisions = by_namespace(objects, "apps/controllerrevisions");
    let nodes: Vec<&Value> = objects.iter().filter(|(k, _)| k.starts_with("core/nodes/")).map(|(_, s)| &s.value).collect();
    let none = Vec::new();
    for (ns, sets) in by_namespace(objects, "apps/daemonsets") {
        let pods = pods.get(ns).unwrap_or(&none);
        let revisions = revisions.get(ns).unwrap_or(&none);
        for ds in sets {
            let steps = plan(ds, &nodes, pods, revisions, now);
            if let Err(e) = execute(api, ds, steps).await {
                tracing::warn!(error = %e, daemonset = name(ds), namespace = ns, "daemonset sync failed");
            }
        }
    }
    Ok(())
}

async fn execute(api: &Api, ds: &Value, steps: Vec<Step>) -> Result<(), ApiError> {
    let pods = info("", "pods");
    let ns = ds["metadata"]["namespace"].as_str().unwrap_or("default");
    let owner = controller_ref(ds, "apps/v1", "DaemonSet");
    let mut revision_failed = false;
    for step in steps {
        match step {
            Step::Revision(r) => {
                if let Err(e) = execute_revision_step(api, ns, r).await {
                    tracing::warn!(error = %e, daemonset = name(ds), "controller revision write failed");
                    revision_failed = true;
                }
            }
            Step::AdoptPod { pod, uid } => ignore_transient(adopt(api, pods, ns, &pod, &uid, &owner).await)?,
            Step::ReleasePod { pod, uid: pod_uid } => ignore_transient(release(api, pods, ns, &pod, &pod_uid, uid(ds)).await)?,
            // Pods must not carry a hash whose revision could not be written.
            Step::CreatePod { .. } if revision_failed => {}
            Step::CreatePod { pod, node } => {
                if let Err(e) = create_pod(api, ds, ns, pod, COMPONENT).await {
                    tracing::debug!(error = %e, node = %node, "daemon pod create failed");
                    api.record_event(ds, "Warning", "FailedCreate", &format!("Error creating: {}", e.message), COMPONENT).await;
                }
            }
            Step::DeletePod { pod, uid } => delete_pod(api, ds, ns, &pod, uid, COMPONENT).await,
            Step::Status { status } => write_status(api, info("apps", "daemonsets"), ds, status).await?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::objects::t;

    fn ds(image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "default", "uid": "ds-uid", "generation": 1},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "c", "image": image}]}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                "revisionHistoryLimit": 10,
            },
        })
    }

    fn node(name: &str) -> Value {
        json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
        })
    }

    fn hash_of(image: &str) -> String {
        let Ok(h) = resolve_history(&ds(image), "DaemonSet", REVISION_LABEL, &[]) else { panic!("no collision") };
        h.update_hash
    }

    fn revision(image: &str, n: i64) -> Value {
        let Ok(h) = resolve_history(&ds(image), "DaemonSet", REVISION_LABEL, &[]) else { panic!("no collision") };
        let Some(RevisionStep::Create { mut revision }) = h.steps.into_iter().next() else { panic!("a create") };
        revision["metadata"]["uid"] = json!(format!("rev-{image}"));
        revision["revision"] = json!(n);
        revision
    }

    /// A bound, ready pod of image on node.
    fn pod(pname: &str, image: &str, node: &str, ready: bool) -> Value {
        let mut p = new_pod(&ds(image), &hash_of(image), node);
        p["metadata"]["name"] = json!(pname);
        p["metadata"]["uid"] = json!(format!("uid-{pname}"));
        p["spec"]["nodeName"] = json!(node);
        p["status"] = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]});
        p
    }

    fn run(d: &Value, nodes: &[Value], pods: &[Value], revs: &[Value]) -> Vec<Step> {
        let nodes: Vec<&Value> = nodes.iter().collect();
        let pods: Vec<&Value> = pods.iter().collect();
        let revs: Vec<&Value> = revs.iter().collect();
        plan(d, &nodes, &pods, &revs, t(100))
    }

    fn created_on(steps: &[Step]) -> Vec<&str> {
        steps.iter().filter_map(|s| if let Step::CreatePod { node, .. } = s { Some(node.as_str()) } else { None }).collect()
    }

    fn deleted(steps: &[Step]) -> Vec<&str> {
        steps.iter().filter_map(|s| if let Step::DeletePod { pod, .. } = s { Some(pod.as_str()) } else { None }).collect()
    }

    fn status(steps: &[Step]) -> Option<&Value> {
        steps.iter().find_map(|s| if let Step::Status { status } = s { Some(status) } else { None })
    }

    #[test]
    fn pod_is_pinned_by_affinity_and_tolerates_daemon_taints() {
        let p = new_pod(&ds("v1"), "h1", "n1");
        assert_eq!(p["metadata"]["generateName"], "agent-");
        assert_eq!(p["metadata"]["labels"], json!({"app": "agent", REVISION_LABEL: "h1"}));
        assert!(p["spec"]["nodeName"].is_null());
        assert_eq!(
            p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"],
            json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]})
        );
        let tols = p["spec"]["tolerations"].as_array().expect("tolerations");
        assert_eq!(tols.len(), DAEMON_TOLERATIONS.len());
        assert!(tols.contains(&json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"})));
        assert_eq!(target_node(&p), Some("n1"));
    }

    #[test]
    fn eligibility_table() {
        let tainted = |effect: &str| {
            let mut n = node("n");
            n["spec"]["taints"] = json!([{"key": "dedicated", "value": "x", "effect": effect}]);
            n
        };
        let mut labelled = node("n");
        labelled["metadata"]["labels"]["disk"] = json!("ssd");
        let mut cordoned = node("n");
        cordoned["spec"]["unschedulable"] = json!(true);
        let mut not_ready = node("n");
        not_ready["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}]);
        let mut with_selector = ds("v1");
        with_selector["spec"]["template"]["spec"]["nodeSelector"] = json!({"disk": "ssd"});
        let mut tolerant = ds("v1");
        tolerant["spec"]["template"]["spec"]["tolerations"] = json!([{"key": "dedicated", "operator": "Exists"}]);
        let mut with_affinity = ds("v1");
        with_affinity["spec"]["template"]["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}});
        let plain = ds("v1");
        let cases: Vec<(&str, &Value, Value, (bool, bool))> = vec![
            ("plain", &plain, node("n"), (true, true)),
            ("selector miss", &with_selector, node("n"), (false, false)),
            ("selector hit", &with_selector, labelled.clone(), (true, true)),
            ("affinity miss", &with_affinity, node("n"), (false, false)),
            ("affinity hit", &with_affinity, labelled, (true, true)),
            ("NoSchedule", &plain, tainted("NoSchedule"), (false, true)),
            ("NoExecute", &plain, tainted("NoExecute"), (false, false)),
            ("PreferNoSchedule", &plain, tainted("PreferNoSchedule"), (true, true)),
            ("tolerated", &tolerant, tainted("NoExecute"), (true, true)),
            ("cordoned", &plain, cordoned, (true, true)),
            ("not ready", &plain, not_ready, (false, true)),
        ];
        for (label, d, n, want) in cases {
            let probe = json!({"metadata": d["spec"]["template"]["metadata"].clone(), "spec": spec_with_tolerations(&d["spec"]["template"])});
            assert_eq!(eligibility(d, &probe, &n), want, "{label}");
        }
    }

    #[test]
    fn one_pod_per_eligible_node_and_new_nodes_get_one() {
        let mut d = ds("v1");
        d["spec"]["template"]["spec"]["nodeSelector"] = json!({"role": "edge"});
        let edge = |n: &str| {
            let mut v = node(n);
            v["metadata"]["labels"]["role"] = json!("edge");
            v
        };
        let nodes = vec![edge("a"), edge("b"), node("c")];
        let steps = run(&d, &nodes, &[], &[revision("v1", 1)]);
        assert_eq!(created_on(&steps), vec!["a", "b"]);
        // a already has a pod; d joined later.
        let nodes = vec![edge("a"), edge("b"), node("c"), edge("d")];
        let steps = run(&d, &nodes, &[pod("p-a", "v1", "a", true)], &[revision("v1", 1)]);
        assert_eq!(created_on(&steps), vec!["b", "d"]);
        // An unbound pod aimed at b counts for b.
        let mut aimed = pod("p-b", "v1", "b", false);
        aimed["spec"].as_object_mut().map(|s| s.remove("nodeName"));
        let steps = run(&d, &nodes, &[pod("p-a", "v1", "a", true), aimed], &[revision("v1", 1)]);
        assert_eq!(created_on(&steps), vec!["d"]);
    }

    #[test]
    fn ineligible_extra_failed_and_stranded_pods_are_deleted() {
        let mut d = ds("v1");
        d["spec"]["template"]["spec"]["nodeSelector"] = json!({"role": "edge"});
        let mut a = node("a");
        a["metadata"]["labels"]["role"] = json!("edge");
        let mut old = pod("old", "v1", "a", true);
        old["metadata"]["creationTimestamp"] = json!("2025-01-01T00:00:00Z");
        let mut newer = pod("newer", "v1", "a", true);
        newer["metadata"]["creationTimestamp"] = json!("2025-06-01T00:00:00Z");
        let on_c = pod("on-c", "v1", "c", true);
        let mut stranded = pod("stranded", "v1", "gone", false);
        stranded["spec"].as_object_mut().map(|s| s.remove("nodeName"));
        let steps = run(&d, &[a.clone(), node("c")], &[old.clone(), newer, on_c, stranded], &[revision("v1", 1)]);
        let mut del = deleted(&steps);
        del.sort();
        assert_eq!(del, vec!["newer", "on-c", "stranded"]);
        let st = status(&steps).expect("status");
        assert_eq!((st["desiredNumberScheduled"].clone(), st["numberMisscheduled"].clone()), (json!(1), json!(1)));
        // A failed pod is deleted and replaced.
        let mut failed = old;
        failed["status"]["phase"] = json!("Failed");
        let steps = run(&d, &[a], &[failed], &[revision("v1", 1)]);
        assert_eq!(deleted(&steps), vec!["old"]);
        assert_eq!(created_on(&steps), vec!["a"]);
    }

    #[test]
    fn rolling_update_respects_max_unavailable() {
        let nodes: Vec<Value> = ["a", "b", "c", "d"].iter().map(|n| node(n)).collect();
        let revs = [revision("v1", 1), revision("v2", 2)];
        type Case<'a> = (Value, &'a [(&'a str, bool)], Vec<&'a str>);
        let cases: &[Case<'_>] = &[
            // maxUnavailable, (image, ready) per node a..d, pods deleted
            (json!(1), &[("v1", true), ("v1", true), ("v1", true), ("v1", true)], vec!["p-a"]),
            (json!(2), &[("v1", true), ("v1", true), ("v1", true), ("v1", true)], vec!["p-a", "p-b"]),
            (json!("50%"), &[("v1", true), ("v1", true), ("v1", true), ("v1", true)], vec!["p-a", "p-b"]),
            (json!(1), &[("v2", false), ("v1", true), ("v1", true), ("v1", true)], vec![]),
            (json!(1), &[("v2", true), ("v1", true), ("v1", true), ("v1", true)], vec!["p-b"]),
            // An old pod that is not available is replaced regardless.
            (json!(1), &[("v2", false), ("v1", false), ("v1", true), ("v1", true)], vec!["p-b"]),
            (json!(1), &[("v2", true), ("v2", true), ("v2", true), ("v2", true)], vec![]),
        ];
        for (mu, pods, want) in cases {
            let mut d = ds("v2");
            d["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = mu.clone();
            let pods: Vec<Value> = pods.iter().zip(["a", "b", "c", "d"]).map(|((img, r), n)| pod(&format!("p-{n}"), img, n, *r)).collect();
            let steps = run(&d, &nodes, &pods, &revs);
            assert_eq!(deleted(&steps), *want, "maxUnavailable {mu} pods {pods:?}");
            assert!(created_on(&steps).is_empty());
        }
        // A node whose old pod is terminating counts as unavailable.
        let mut gone = pod("p-a", "v1", "a", true);
        gone["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let pods = vec![gone, pod("p-b", "v1", "b", true), pod("p-c", "v1", "c", true), pod("p-d", "v1", "d", true)];
        let steps = run(&ds("v2"), &nodes, &pods, &revs);
        assert_eq!(created_on(&steps), vec!["a"]);
        assert!(deleted(&steps).is_empty());
        // OnDelete never replaces.
        let mut d = ds("v2");
        d["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        let pods: Vec<Value> = ["a", "b"].iter().map(|n| pod(&format!("p-{n}"), "v1", n, true)).collect();
        assert!(deleted(&run(&d, &nodes[..2], &pods, &revs)).is_empty());
    }

    #[test]
    fn status_counts() {
        let nodes = vec![node("a"), node("b"), node("c")];
        let pods = vec![pod("p-a", "v2", "a", true), pod("p-b", "v1", "b", true), pod("p-c", "v2", "c", false)];
        let steps = run(&ds("v2"), &nodes, &pods, &[revision("v1", 1), revision("v2", 2)]);
        let st = status(&steps).expect("status");
        assert_eq!(
            st,
            &json!({"observedGeneration": 1, "currentNumberScheduled": 3, "numberMisscheduled": 0, "desiredNumberScheduled": 3, "numberReady": 2,
                    "updatedNumberScheduled": 2, "numberAvailable": 2, "numberUnavailable": 1})
        );
    }

    #[test]
    fn template_change_creates_a_revision() {
        let steps = run(&ds("v2"), &[], &[], &[revision("v1", 1)]);
        let Some(Step::Revision(RevisionStep::Create { revision })) = steps.first() else { panic!("{steps:?}") };
        assert_eq!(revision["revision"], 2);
        assert_eq!(revision["metadata"]["name"], json!(format!("agent-{}", hash_of("v2"))));
        assert_eq!(revision["metadata"]["labels"][REVISION_LABEL], json!(hash_of("v2")));
    }
}
