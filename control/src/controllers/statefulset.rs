//! StatefulSet controller: pods `NAME-<ordinal>` with stable identity and storage.
//!
//! Invariants and behaviour (as Kubernetes' statefulset controller):
//! - Pod ordinal `i` is named `NAME-i` (`spec.ordinals.start` shifts the range), has
//!   hostname = its name, subdomain = `spec.serviceName`, and the labels
//!   `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index` and
//!   `controller-revision-hash` (the name of the ControllerRevision it was made from).
//! - Each volumeClaimTemplate gives ordinal `i` a PVC `TEMPLATE-NAME-i`, created before the
//!   pod and never deleted with it (unless `persistentVolumeClaimRetentionPolicy.whenDeleted`
//!   is Delete, which makes the set its owner), so a replacement pod gets the same claim.
//! - OrderedReady: a pass acts on at most one pod, and only once every lower ordinal is
//!   Running and Ready (and available after minReadySeconds); scale-down removes the
//!   highest ordinal first and waits for it to terminate. Parallel creates and deletes
//!   every pod at once without waiting. Failed or succeeded pods are deleted and recreated.
//! - RollingUpdate deletes, from the highest ordinal down to `partition`, one pod per pass
//!   whose revision is not the update revision, waiting for each to be healthy again;
//!   pods below the partition are (re)created from the current revision. OnDelete only
//!   uses the update revision for pods it has to create.
//! - Revisions are ControllerRevisions `NAME-<hash>` holding the template; returning to an
//!   old template renumbers its revision. Unused revisions beyond revisionHistoryLimit
//!   are deleted. `status.currentRevision` becomes the update revision once every pod is
//!   updated and ready.
//! - Status is computed from the pods observed in this pass, as Kubernetes does.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::objects::{by_namespace, controller_write_options, deleting, generation, ignore_transient, info, name, selector, uid};
use super::owner::{Change, adopt, claim, controller_ref, release};
use super::pods::{pod_available, pod_ready, pod_terminal, template_metadata};
use super::revisions::{REVISION_LABEL, RevisionStep, execute_revision_step, resolve_history, revision_template, truncate_history};
use super::status::{self, set_count, write_status};
use crate::apiserver::Api;
use crate::apiserver::error::ApiError;
use crate::apiserver::service::DeleteOptions;

const COMPONENT: &str = "statefulset-controller";
pub(crate) const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub(crate) const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// On StatefulSet revisions: the template hash.
const HASH_LABEL: &str = "controller.kubernetes.io/hash";

// ---- plan ----

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    Revision(RevisionStep),
    AdoptPod { pod: String, uid: String },
    ReleasePod { pod: String, uid: String },
    /// Create the claim for `pod`.
    CreateClaim { claim: Value, pod: String },
    CreatePod { pod: Value },
    DeletePod { pod: String, uid: String },
    Status { status: Value },
}

/// The ordinal in a pod name `SET-<ordinal>`.
fn ordinal_of(set: &str, pod: &str) -> Option<i64> {
    let rest = pod.strip_prefix(set)?.strip_prefix('-')?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) || (rest.len() > 1 && rest.starts_with('0')) {
        return None;
    }
    rest.parse().ok()
}

fn running_and_ready(p: &Value) -> bool {
    p["status"]["phase"] == "Running" && pod_ready(p)
}

/// Running, Ready for minReadySeconds, and not terminating.
fn healthy(p: &Value, min_ready: i64, now: DateTime<Utc>) -> bool {
    running_and_ready(p) && pod_available(p, min_ready, now) && !deleting(p)
}

fn pod_revision(p: &Value) -> &str {
    p["metadata"]["labels"][REVISION_LABEL].as_str().unwrap_or("")
}

/// The claim name of template `tpl` for pod `pod`.
pub(crate) fn claim_name(tpl: &Value, pod: &str) -> String {
    format!("{}-{pod}", name(tpl))
}

fn claim_templates(sts: &Value) -> &[Value] {
    sts["spec"]["volumeClaimTemplates"].as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// The claims pod `pod` of `sts` needs.
fn new_claims(sts: &Value, pod: &str) -> Vec<Value> {
    let ns = sts["metadata"]["namespace"].as_str().unwrap_or("default");
    let owned = sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete";
    claim_templates(sts)
        .iter()
        .map(|tpl| {
            let mut meta = Map::new();
            meta.insert("name".into(), json!(claim_name(tpl, pod)));
            meta.insert("namespace".into(), json!(ns));
            let mut l = tpl["metadata"]["labels"].as_object().cloned().unwrap_or_default();
            if let Some(ml) = sts["spec"]["selector"]["matchLabels"].as_object() {
                l.extend(ml.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            if !l.is_empty() {
                meta.insert("labels".into(), Value::Object(l));
            }
            if let Some(a) = tpl["metadata"]["annotations"].as_object().filter(|a| !a.is_empty()) {
                meta.insert("annotations".into(), Value::Object(a.clone()));
            }
            if owned {
                let mut r = controller_ref(sts, "apps/v1", "StatefulSet");
                r["controller"] = json!(false);
                meta.insert("ownerReferences".into(), json!([r]));
            }
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": tpl["spec"].clone()})
        })
        .collect()
}

/// Pod `ordinal` of `sts` from `template` at revision `revision`.
pub(crate) fn new_pod(sts: &Value, template: &Value, revision: &str, ordinal: i64) -> Value {
    let set = name(sts);
    let pod_name = format!("{set}-{ordinal}");
    let mut l = template["metadata"]["labels"].as_object().cloned().unwrap_or_default();
    l.insert(POD_NAME_LABEL.into(), json!(pod_name));
    l.insert(POD_INDEX_LABEL.into(), json!(ordinal.to_string()));
    l.insert(REVISION_LABEL.into(), json!(revision));
    let meta = json!({"name": pod_name, "namespace": sts["metadata"]["namespace"].as_str().unwrap_or("default"), "labels": l});
    let meta = template_metadata(meta, template, controller_ref(sts, "apps/v1", "StatefulSet"));
    let mut spec = match &template["spec"] {
        Value::Object(o) => Value::Object(o.clone()),
        _ => json!({}),
    };
    spec["hostname"] = json!(pod_name);
    if let Some(svc) = sts["spec"]["serviceName"].as_str().filter(|s| !s.is_empty()) {
        spec["subdomain"] = json!(svc);
    }
    let templates = claim_templates(sts);
    if !templates.is_empty() {
        let claim_names: HashSet<&str> = templates.iter().map(name).collect();
        let mut volumes: Vec<Value> =
            templates.iter().map(|t| json!({"name": name(t), "persistentVolumeClaim": {"claimName": claim_name(t, &pod_name)}})).collect();
        if let Some(vs) = spec["volumes"].as_array() {
            volumes.extend(vs.iter().filter(|v| !claim_names.contains(name_field(v))).cloned());
        }
        spec["volumes"] = Value::Array(volumes);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
}

fn name_field(v: &Value) -> &str {
    v["name"].as_str().unwrap_or("")
}

/// Pure: what to do for `sts`, given every pod, PVC and ControllerRevision in its namespace.
pub(crate) fn plan(sts: &Value, pods: &[&Value], claims: &[&Value], revisions: &[&Value], now: DateTime<Utc>) -> Vec<Step> {
    let Some(sel) = selector(sts) else { return vec![] };
    if deleting(sts) {
        return vec![];
    }
    let set = name(sts);
    let Ok(history) = resolve_history(sts, "StatefulSet", HASH_LABEL, revisions) else {
        let mut status = status::current(sts);
        status["collisionCount"] = json!(sts["status"]["collisionCount"].as_i64().unwrap_or(0) + 1);
        return vec![Step::Status { status }];
    };
    let mut steps: Vec<Step> = history.steps.iter().cloned().map(Step::Revision).collect();
    let update_rev = history.update_name.clone();
    let current_rev = sts["status"]["currentRevision"]
        .as_str()
        .filter(|c| history.owned.iter().any(|r| name(r) == *c))
        .map(str::to_string)
        .unwrap_or_else(|| update_rev.clone());
    let current_template = history
        .owned
        .iter()
        .find(|r| name(r) == current_rev)
        .map(|r| revision_template(r))
        .unwrap_or_else(|| sts["spec"]["template"].clone());

    let claimed = claim(sts, &sel, pods, &|p| ordinal_of(set, name(p)).is_some());
    steps.extend(claimed.with(Change::Adopt).map(|p| Step::AdoptPod { pod: name(p).to_string(), uid: uid(p).to_string() }));
    steps.extend(claimed.with(Change::Release).map(|p| Step::ReleasePod { pod: name(p).to_string(), uid: uid(p).to_string() }));

    let replicas = sts["spec"]["replicas"].as_i64().unwrap_or(1).max(0);
    let start = sts["spec"]["ordinals"]["start"].as_i64().unwrap_or(0).max(0);
    let min_ready = sts["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    let monotonic = sts["spec"]["podManagementPolicy"] != "Parallel";
    let rolling = sts["spec"]["updateStrategy"]["type"].as_str().unwrap_or("RollingUpdate") == "RollingUpdate";
    let partition = if rolling { sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"].as_i64().unwrap_or(0).max(0) } else { 0 };

    let mut by_ordinal: HashMap<i64, &Value> = HashMap::new();
    for &p in &claimed.owned {
        if let Some(o) = ordinal_of(set, name(p)) {
            by_ordinal.insert(o, p);
        }
    }
    let mut condemned: Vec<(i64, &Value)> = by_ordinal.iter().filter(|(o, _)| **o < start || **o >= start + replicas).map(|(o, p)| (*o, *p)).collect();
    condemned.sort_by_key(|c| std::cmp::Reverse(c.0));
    let claim_by_name: HashMap<&str, &Value> = claims.iter().map(|c| (name(c), *c)).collect();

    let status = compute_status(sts, &claimed.owned, &current_rev, &update_rev, rolling, now);
    let in_use: HashSet<&str> = claimed.owned.iter().map(|p| pod_revision(p)).collect();
    steps.extend(
        truncate_history(sts, &history, &[current_rev.as_str(), update_rev.as_str()], &|r| in_use.contains(name(r))).into_iter().map(Step::Revision),
    );
    let finish = |mut steps: Vec<Step>| {
        if status != sts["status"] {
            steps.push(Step::Status { status: status.clone() });
        }
        steps
    };

    // Replicas, lowest ordinal first.
    for i in 0..replicas {
        let ordinal = start + i;
        let pod_name = format!("{set}-{ordinal}");
        let Some(p) = by_ordinal.get(&ordinal) else {
            let (template, revision) =
                if rolling && i < partition { (&current_template, current_rev.as_str()) } else { (&sts["spec"]["template"], update_rev.as_str()) };
            let mut blocked = false;
            for claim in new_claims(sts, &pod_name) {
                match claim_by_name.get(name(&claim)) {
                    None => steps.push(Step::CreateClaim { claim, pod: pod_name.clone() }),
                    Some(c) if deleting(c) => blocked = true,
                    Some(_) => {}
                }
            }
            if !blocked {
                steps.push(Step::CreatePod { pod: new_pod(sts, template, revision, ordinal) });
            }
            if monotonic {
                return finish(steps);
            }
            continue;
        };
        if pod_terminal(p) && !deleting(p) {
            steps.push(Step::DeletePod { pod: pod_name, uid: uid(p).to_string() });
            if monotonic {
                return finish(steps);
            }
            continue;
        }
        if !healthy(p, min_ready, now) {
            if monotonic {
                return finish(steps);
            }
            continue;
        }
        // A claim deleted under a running pod is recreated.
        for claim in new_claims(sts, &pod_name) {
            if !claim_by_name.contains_key(name(&claim)) {
                steps.push(Step::CreateClaim { claim, pod: pod_name.clone() });
            }
        }
    }

    // Condemned pods, highest ordinal first.
    for (_, p) in &condemned {
        if deleting(p) {
            if monotonic {
                return finish(steps);
            }
            continue;
        }
        steps.push(Step::DeletePod { pod: name(p).to_string(), uid: uid(p).to_string() });
        if monotonic {
            return finish(steps);
        }
    }

    // Rolling update, highest ordinal down to the partition, one pod at a time.
    if rolling {
        for i in (partition..replicas).rev() {
            let Some(p) = by_ordinal.get(&(start + i)) else { break };
            if pod_revision(p) != update_rev && !deleting(p) {
                steps.push(Step::DeletePod { pod: name(p).to_string(), uid: uid(p).to_string() });
                break;
            }
            if !healthy(p, min_ready, now) {
                break;
            }
        }
    }
    finish(steps)
}

fn compute_status(sts: &Value, owned: &[&Value], current_rev: &str, update_rev: &str, rolling: bool, now: DateTime<Utc>) -> Value {
    let min_ready = sts["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    let replicas = owned.len();
    let ready = owned.iter().filter(|p| running_and_ready(p)).count();
    let available = owned.iter().filter(|p| running_and_ready(p) && pod_available(p, min_ready, now)).count();
    let live: Vec<&&Value> = owned.iter().filter(|p| !deleting(p)).collect();
    let mut current = live.iter().filter(|p| pod_revision(p) == current_rev).count();
    let updated = live.iter().filter(|p| pod_revision(p) == update_rev).count();
    let mut current_rev = current_rev;
    if rolling && updated == replicas && ready == replicas {
        current_rev = update_rev;
        current = updated;
    }
    let mut status = status::current(sts);
    if generation(sts) > 0 {
        status["observedGeneration"] = json!(generation(sts));
    }
    set_count(&mut status, "replicas", replicas, true);
    set_count(&mut status, "readyReplicas", ready, false);
    set_count(&mut status, "currentReplicas", current, false);
    set_count(&mut status, "updatedReplicas", updated, false);
    status["currentRevision"] = json!(current_rev);
    status["updateRevision"] = json!(update_rev);
    if status["collisionCount"].is_null() {
        status["collisionCount"] = json!(0);
    }
    set_count(&mut status, "availableReplicas", available, true);
    status
}

// ---- executor ----

/// Plans every StatefulSet in `objects` and carries out the steps.
pub(crate) async fn reconcile_all(api: &Api, objects: &[crate::store::Keyed], now: DateTime<Utc>) -> Result<(), ApiError> {
    let pods = by_namespace(objects, "core/pods");
    let claims = by_namespace(objects, "core/persistentvolumeclaims");
    let revisions = by_namespace(objects, "apps/controllerrevisions");
    let none = Vec::new();
    for (ns, sets) in by_namespace(objects, "apps/statefulsets") {
        let pods = pods.get(ns).unwrap_or(&none);
        let claims = claims.get(ns).unwrap_or(&none);
        let revisions = revisions.get(ns).unwrap_or(&none);
        for sts in sets {
            let steps = plan(sts, pods, claims, revisions, now);
            if let Err(e) = execute(api, sts, steps).await {
                tracing::warn!(error = %e, statefulset = name(sts), namespace = ns, "statefulset sync failed");
            }
        }
    }
    Ok(())
}

/// Carries out the steps in order; after a failed write the remaining object writes are
/// skipped (the next pass re-plans), but status is still written.
async fn execute(api: &Api, sts: &Value, steps: Vec<Step>) -> Result<(), ApiError> {
    let pods = info("", "pods");
    let claims = info("", "persistentvolumeclaims");
    let ns = sts["metadata"]["namespace"].as_str().unwrap_or("default");
    let set = name(sts);
    let owner = controller_ref(sts, "apps/v1", "StatefulSet");
    let mut failed = false;
    for step in steps {
        if failed && !matches!(step, Step::Status { .. }) {
            continue;
        }
        match step {
            Step::Revision(r) => {
                if let Err(e) = execute_revision_step(api, ns, r).await {
                    tracing::warn!(error = %e, statefulset = set, "controller revision write failed");
                    failed = true;
                }
            }
            Step::AdoptPod { pod, uid } => ignore_transient(adopt(api, pods, ns, &pod, &uid, &owner).await)?,
            Step::ReleasePod { pod, uid: pod_uid } => ignore_transient(release(api, pods, ns, &pod, &pod_uid, uid(sts)).await)?,
            Step::CreateClaim { claim, pod } => {
                let claim_name = name(&claim).to_string();
                match api.create(claims, Some(ns), claim, &controller_write_options()).await {
                    Ok(_) => {
                        let msg = format!("create Claim {claim_name} Pod {pod} in StatefulSet {set} success");
                        api.record_event(sts, "Normal", "SuccessfulCreate", &msg, COMPONENT).await;
                    }
                    Err(e) if e.code == 409 => {}
                    Err(e) => {
                        let msg = format!("create Claim {claim_name} for Pod {pod} in StatefulSet {set} failed error: {}", e.message);
                        api.record_event(sts, "Warning", "FailedCreate", &msg, COMPONENT).await;
                        failed = true;
                    }
                }
            }
            Step::CreatePod { pod } => {
                let pod_name = name(&pod).to_string();
                match api.create(pods, Some(ns), pod, &controller_write_options()).await {
                    Ok(_) => {
                        let msg = format!("create Pod {pod_name} in StatefulSet {set} successful");
                        api.record_event(sts, "Normal", "SuccessfulCreate", &msg, COMPONENT).await;
                    }
                    Err(e) if e.code == 409 => failed = true,
                    Err(e) => {
                        let msg = format!("create Pod {pod_name} in StatefulSet {set} failed error: {}", e.message);
                        api.record_event(sts, "Warning", "FailedCreate", &msg, COMPONENT).await;
                        failed = true;
                    }
                }
            }
            Step::DeletePod { pod, uid } => {
                let opts = DeleteOptions { uid: Some(uid), ..Default::default() };
                match api.delete(pods, Some(ns), &pod, &opts).await {
                    Ok(_) => {
                        let msg = format!("delete Pod {pod} in StatefulSet {set} successful");
                        api.record_event(sts, "Normal", "SuccessfulDelete", &msg, COMPONENT).await;
                    }
                    Err(e) if e.is_transient() => failed = true,
                    Err(e) => {
                        let msg = format!("delete Pod {pod} in StatefulSet {set} failed error: {}", e.message);
                        api.record_event(sts, "Warning", "FailedDelete", &msg, COMPONENT).await;
                        failed = true;
                    }
                }
            }
            Step::Status { status } => write_status(api, info("apps", "statefulsets"), sts, status).await?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::objects::t;

    fn template(image: &str) -> Value {
        json!({"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": image}]}})
    }

    fn sts(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "default", "uid": "sts-uid", "generation": 1},
            "spec": {
                "replicas": replicas, "serviceName": "db-svc",
                "selector": {"matchLabels": {"app": "db"}},
                "template": template(image),
                "podManagementPolicy": "OrderedReady",
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                "revisionHistoryLimit": 10,
            },
        })
    }

    /// The stored revision of `image` for `db`, numbered `n`.
    fn revision(image: &str, n: i64) -> Value {
        let s = sts(1, image);
        let Ok(h) = resolve_history(&s, "StatefulSet", HASH_LABEL, &[]) else { panic!("no collision") };
        let Some(RevisionStep::Create { mut revision }) = h.steps.into_iter().next() else { panic!("a create") };
        revision["metadata"]["uid"] = json!(format!("rev-{image}"));
        revision["revision"] = json!(n);
        revision
    }

    fn rev_name(image: &str) -> String {
        name(&revision(image, 1)).to_string()
    }

    /// Pod `ordinal` at revision of `image`, Running and Ready unless `ready` is false.
    fn pod(ordinal: i64, image: &str, ready: bool) -> Value {
        let mut p = new_pod(&sts(1, image), &template(image), &rev_name(image), ordinal);
        p["metadata"]["uid"] = json!(format!("uid-{ordinal}"));
        p["status"] = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
        p
    }

    fn created_pods(steps: &[Step]) -> Vec<String> {
        steps.iter().filter_map(|s| if let Step::CreatePod { pod } = s { Some(name(pod).to_string()) } else { None }).collect()
    }

    fn deleted_pods(steps: &[Step]) -> Vec<String> {
        steps.iter().filter_map(|s| if let Step::DeletePod { pod, .. } = s { Some(pod.clone()) } else { None }).collect()
    }

    fn status(steps: &[Step]) -> Option<&Value> {
        steps.iter().find_map(|s| if let Step::Status { status } = s { Some(status) } else { None })
    }

    fn run(s: &Value, pods: &[Value], claims: &[Value], revs: &[Value]) -> Vec<Step> {
        let pods: Vec<&Value> = pods.iter().collect();
        let claims: Vec<&Value> = claims.iter().collect();
        let revs: Vec<&Value> = revs.iter().collect();
        plan(s, &pods, &claims, &revs, t(100))
    }

    #[test]
    fn pod_identity() {
        let p = new_pod(&sts(3, "v1"), &template("v1"), "db-abc", 2);
        assert_eq!(p["metadata"]["name"], "db-2");
        assert_eq!(p["spec"]["hostname"], "db-2");
        assert_eq!(p["spec"]["subdomain"], "db-svc");
        assert_eq!(p["metadata"]["labels"], json!({"app": "db", POD_NAME_LABEL: "db-2", POD_INDEX_LABEL: "2", REVISION_LABEL: "db-abc"}));
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
        assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
    }

    #[test]
    fn first_pass_creates_revision_and_only_pod_zero() {
        let steps = run(&sts(3, "v1"), &[], &[], &[]);
        let Some(Step::Revision(RevisionStep::Create { revision })) = steps.first() else { panic!("{steps:?}") };
        assert_eq!(revision["revision"], 1);
        assert_eq!(revision["metadata"]["labels"]["app"], "db");
        assert_eq!(revision["data"]["spec"]["template"]["$patch"], "replace");
        assert_eq!(created_pods(&steps), vec!["db-0"]);
        let st = status(&steps).expect("status");
        assert_eq!(st["replicas"], 0);
        assert_eq!(st["updateRevision"], json!(name(revision)));
        assert_eq!(st["currentRevision"], json!(name(revision)));
        assert_eq!(st["observedGeneration"], 1);
    }

    #[test]
    fn ordered_ready_waits_for_previous_pod() {
        let rev = revision("v1", 1);
        type Case<'a> = (&'a [(i64, bool)], &'a [&'a str]);
        let cases: &[Case<'_>] = &[
            (&[(0, false)], &[]),
            (&[(0, true)], &["db-1"]),
            (&[(0, true), (1, false)], &[]),
            (&[(0, true), (1, true)], &["db-2"]),
            (&[(0, true), (2, true)], &["db-1"]),
            (&[(0, true), (1, true), (2, true)], &[]),
        ];
        for (have, want) in cases {
            let pods: Vec<Value> = have.iter().map(|(o, r)| pod(*o, "v1", *r)).collect();
            let steps = run(&sts(3, "v1"), &pods, &[], std::slice::from_ref(&rev));
            assert_eq!(created_pods(&steps), *want, "pods {have:?}");
            assert!(deleted_pods(&steps).is_empty());
        }
    }

    #[test]
    fn terminating_pod_blocks_ordered_creation() {
        let mut p0 = pod(0, "v1", true);
        p0["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let steps = run(&sts(2, "v1"), &[p0], &[], &[revision("v1", 1)]);
        assert!(created_pods(&steps).is_empty());
    }

    #[test]
    fn parallel_creates_all_at_once() {
        let mut s = sts(3, "v1");
        s["spec"]["podManagementPolicy"] = json!("Parallel");
        let steps = run(&s, &[pod(1, "v1", false)], &[], &[revision("v1", 1)]);
        assert_eq!(created_pods(&steps), vec!["db-0", "db-2"]);
        let steps = run(&s, &[], &[], &[revision("v1", 1)]);
        assert_eq!(created_pods(&steps), vec!["db-0", "db-1", "db-2"]);
    }

    #[test]
    fn scale_down_from_highest_one_at_a_time() {
        let rev = revision("v1", 1);
        let all: Vec<Value> = (0..4).map(|o| pod(o, "v1", true)).collect();
        let steps = run(&sts(1, "v1"), &all, &[], std::slice::from_ref(&rev));
        assert_eq!(deleted_pods(&steps), vec!["db-3"]);
        // While db-3 terminates nothing else is deleted.
        let mut terminating = all.clone();
        terminating[3]["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(deleted_pods(&run(&sts(1, "v1"), &terminating, &[], std::slice::from_ref(&rev))).is_empty());
        // Parallel deletes every condemned pod at once.
        let mut s = sts(1, "v1");
        s["spec"]["podManagementPolicy"] = json!("Parallel");
        assert_eq!(deleted_pods(&run(&s, &all, &[], std::slice::from_ref(&rev))), vec!["db-3", "db-2", "db-1"]);
        // An unready replica blocks an ordered scale-down.
        let mut unready = all.clone();
        unready[0] = pod(0, "v1", false);
        assert!(deleted_pods(&run(&sts(1, "v1"), &unready, &[], &[rev])).is_empty());
    }

    #[test]
    fn rolling_update_highest_first_respecting_partition() {
        let old = revision("v1", 1);
        let cases: &[(i64, &[&str], &[&str])] = &[
            // partition, images of db-0..2, expected deletion
            (0, &["v1", "v1", "v1"], &["db-2"]),
            (0, &["v1", "v1", "v2"], &["db-1"]),
            (0, &["v1", "v2", "v2"], &["db-0"]),
            (0, &["v2", "v2", "v2"], &[]),
            (2, &["v1", "v1", "v2"], &[]),
            (1, &["v1", "v1", "v2"], &["db-1"]),
        ];
        for (partition, images, want) in cases {
            let mut s = sts(3, "v2");
            s["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = json!(partition);
            s["status"] = json!({"currentRevision": rev_name("v1")});
            let pods: Vec<Value> = images.iter().enumerate().map(|(o, i)| pod(o as i64, i, true)).collect();
            let revs = [old.clone(), revision("v2", 2)];
            let steps = run(&s, &pods, &[], &revs);
            assert_eq!(deleted_pods(&steps), *want, "partition {partition} images {images:?}");
            assert!(created_pods(&steps).is_empty());
        }
    }

    #[test]
    fn rolling_update_waits_for_unhealthy_updated_pod() {
        let mut s = sts(3, "v2");
        s["status"] = json!({"currentRevision": rev_name("v1")});
        let pods = [pod(0, "v1", true), pod(1, "v1", true), pod(2, "v2", false)];
        let steps = run(&s, &pods, &[], &[revision("v1", 1), revision("v2", 2)]);
        assert!(deleted_pods(&steps).is_empty());
    }

    #[test]
    fn recreated_pods_use_the_revision_their_side_of_the_partition() {
        let mut s = sts(3, "v2");
        s["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = json!(2);
        s["status"] = json!({"currentRevision": rev_name("v1")});
        // db-0 was deleted: it comes back at the current revision (below the partition).
        let pods = [pod(1, "v1", true), pod(2, "v2", true)];
        let steps = run(&s, &pods, &[], &[revision("v1", 1), revision("v2", 2)]);
        let Some(Step::CreatePod { pod: p }) = steps.iter().find(|s| matches!(s, Step::CreatePod { .. })) else { panic!("{steps:?}") };
        assert_eq!(p["metadata"]["name"], "db-0");
        assert_eq!(p["metadata"]["labels"][REVISION_LABEL], json!(rev_name("v1")));
        assert_eq!(p["spec"]["containers"][0]["image"], "v1");
    }

    #[test]
    fn on_delete_never_deletes_for_update() {
        let mut s = sts(2, "v2");
        s["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        s["status"] = json!({"currentRevision": rev_name("v1")});
        let steps = run(&s, &[pod(0, "v1", true), pod(1, "v1", true)], &[], &[revision("v1", 1), revision("v2", 2)]);
        assert!(deleted_pods(&steps).is_empty());
        // A deleted pod comes back at the update revision.
        let steps = run(&s, &[pod(0, "v1", true)], &[], &[revision("v1", 1), revision("v2", 2)]);
        let Some(Step::CreatePod { pod: p }) = steps.iter().find(|s| matches!(s, Step::CreatePod { .. })) else { panic!("{steps:?}") };
        assert_eq!(p["spec"]["containers"][0]["image"], "v2");
    }

    #[test]
    fn claims_named_template_set_ordinal_created_before_pod_and_kept() {
        let mut s = sts(2, "v1");
        s["spec"]["volumeClaimTemplates"] =
            json!([{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]);
        let steps = run(&s, &[pod(0, "v1", true)], &[], &[revision("v1", 1)]);
        let kinds: Vec<&str> = steps
            .iter()
            .filter_map(|s| match s {
                Step::CreateClaim { .. } => Some("claim"),
                Step::CreatePod { .. } => Some("pod"),
                _ => None,
            })
            .collect();
        // db-0's missing claim is recreated, then db-1's claim precedes db-1.
        assert_eq!(kinds, vec!["claim", "claim", "pod"]);
        let claims: Vec<&Value> = steps.iter().filter_map(|s| if let Step::CreateClaim { claim, .. } = s { Some(claim) } else { None }).collect();
        assert_eq!(claims[0]["metadata"]["name"], "data-db-0");
        assert_eq!(claims[1]["metadata"]["name"], "data-db-1");
        assert_eq!(claims[1]["metadata"]["labels"], json!({"app": "db"}));
        assert!(claims[1]["metadata"]["ownerReferences"].is_null());
        assert_eq!(claims[1]["spec"]["resources"]["requests"]["storage"], "1Gi");
        let Some(Step::CreatePod { pod: p }) = steps.iter().find(|s| matches!(s, Step::CreatePod { .. })) else { panic!() };
        assert_eq!(p["spec"]["volumes"], json!([{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-1"}}]));
        // An existing claim is reused, not recreated; a terminating one blocks the pod.
        let existing = json!({"metadata": {"name": "data-db-0", "uid": "c0"}});
        let steps = run(&s, &[], std::slice::from_ref(&existing), &[revision("v1", 1)]);
        assert!(!steps.iter().any(|s| matches!(s, Step::CreateClaim { .. })));
        assert_eq!(created_pods(&steps), vec!["db-0"]);
        let mut gone = existing;
        gone["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(created_pods(&run(&s, &[], &[gone], &[revision("v1", 1)])).is_empty());
    }

    #[test]
    fn failed_pod_is_deleted_for_recreation() {
        let mut p = pod(0, "v1", false);
        p["status"]["phase"] = json!("Failed");
        let steps = run(&sts(2, "v1"), &[p], &[], &[revision("v1", 1)]);
        assert_eq!(deleted_pods(&steps), vec!["db-0"]);
        assert!(created_pods(&steps).is_empty());
    }

    #[test]
    fn status_counts_and_revision_completion() {
        let mut s = sts(2, "v2");
        s["status"] = json!({"currentRevision": rev_name("v1")});
        let revs = [revision("v1", 1), revision("v2", 2)];
        let steps = run(&s, &[pod(0, "v1", true), pod(1, "v2", false)], &[], &revs);
        let st = status(&steps).expect("status");
        assert_eq!(
            (st["replicas"].clone(), st["readyReplicas"].clone(), st["currentReplicas"].clone(), st["updatedReplicas"].clone()),
            (json!(2), json!(1), json!(1), json!(1))
        );
        assert_eq!(st["currentRevision"], json!(rev_name("v1")));
        assert_eq!(st["updateRevision"], json!(rev_name("v2")));
        // All updated and ready: the current revision moves.
        let steps = run(&s, &[pod(0, "v2", true), pod(1, "v2", true)], &[], &revs);
        let st = status(&steps).expect("status");
        assert_eq!(st["currentRevision"], json!(rev_name("v2")));
        assert_eq!(st["currentReplicas"], 2);
        assert_eq!(st["availableReplicas"], 2);
    }

    #[test]
    fn rollback_renumbers_old_revision_and_history_is_truncated() {
        let s = sts(0, "v1");
        let revs = [revision("v1", 1), revision("v2", 2)];
        let steps = run(&s, &[], &[], &revs);
        assert!(steps.contains(&Step::Revision(RevisionStep::Renumber { name: rev_name("v1"), uid: "rev-v1".into(), revision: 3 })));
        let mut s = sts(0, "v3");
        s["spec"]["revisionHistoryLimit"] = json!(1);
        let steps = run(&s, &[], &[], &[revision("v1", 1), revision("v2", 2)]);
        let deleted: Vec<&str> =
            steps.iter().filter_map(|s| if let Step::Revision(RevisionStep::Delete { name, .. }) = s { Some(name.as_str()) } else { None }).collect();
        assert_eq!(deleted, vec![rev_name("v1")]);
    }

    #[test]
    fn orphans_with_ordinal_names_are_adopted() {
        let mut orphan = pod(0, "v1", true);
        orphan["metadata"].as_object_mut().map(|m| m.remove("ownerReferences"));
        let mut other = orphan.clone();
        other["metadata"]["name"] = json!("web-7");
        let steps = run(&sts(1, "v1"), &[orphan, other], &[], &[revision("v1", 1)]);
        assert_eq!(steps.iter().filter(|s| matches!(s, Step::AdoptPod { .. })).count(), 1);
        assert!(created_pods(&steps).is_empty());
    }

    #[test]
    fn ordinal_parsing() {
        assert_eq!(ordinal_of("db", "db-0"), Some(0));
        assert_eq!(ordinal_of("db", "db-12"), Some(12));
        assert_eq!(ordinal_of("db", "db-01"), None);
        assert_eq!(ordinal_of("db", "db-x"), None);
        assert_eq!(ordinal_of("db", "dbx-1"), None);
    }
}
