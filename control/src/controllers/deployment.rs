//! Deployment controller: rolls a Deployment's pod template out through ReplicaSets.
//!
//! Invariants and behaviour (as Kubernetes' deployment controller):
//! - The "new" ReplicaSet is the owned one whose template equals the Deployment's, ignoring
//!   the `pod-template-hash` label; a fresh one is named `DEPLOY-<hash>` where the hash
//!   covers the template (and `status.collisionCount`), and the label goes on its selector,
//!   template and therefore pods. Rolling back (kubectl patching the old template in) makes
//!   the old ReplicaSet new again, and it takes the next revision number.
//! - Revisions: `deployment.kubernetes.io/revision` on every ReplicaSet and on the
//!   Deployment (the new ReplicaSet's); ReplicaSets also carry `desired-replicas` and
//!   `max-replicas` and the Deployment's own annotations.
//! - RollingUpdate never exceeds `replicas + maxSurge` pods (surge rounds up) nor lets
//!   available pods fall below `replicas - maxUnavailable` (unavailable rounds down; both
//!   zero means one unavailable). Availability is the ReplicaSets' `availableReplicas`
//!   (readiness and minReadySeconds), capped by each ReplicaSet's `spec.replicas` so a
//!   ReplicaSet whose scale-down is not yet reflected in its status never counts twice.
//! - Recreate scales old ReplicaSets to zero, waits until none of their pods run, then
//!   scales the new one up.
//! - A paused Deployment or a change of `spec.replicas` only scales (proportionally
//!   across active ReplicaSets); paused Deployments create no new ReplicaSet.
//! - Old ReplicaSets scaled to zero beyond `revisionHistoryLimit` are deleted once the
//!   rollout is complete.
//! - Each pass does at most one phase (scale up, or scale down, …) and then writes status,
//!   so `kubectl rollout status` sees the same progression as on Kubernetes.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::objects::{
    by_namespace, controller_write_options, deleting, generation, ignore_transient, info, name, parse_time, scaled, selector, timestamp,
    uid,
};
use super::owner::{Change, adopt, claim, controller_ref, controller_uid, release};
use super::revisions::{POD_TEMPLATE_HASH_LABEL as HASH_LABEL, template_hash, without_hash};
use super::status::{self, set_condition, write_status};
use crate::apiserver::Api;
use crate::apiserver::error::ApiError;
use crate::apiserver::service::{DeleteOptions, Part, PatchType};

pub(crate) const REVISION: &str = "deployment.kubernetes.io/revision";
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
const COMPONENT: &str = "deployment-controller";
/// Annotations of the Deployment that are not copied to its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];
/// progressDeadlineSeconds of MaxInt32 means "no deadline".
const NO_DEADLINE: i64 = i32::MAX as i64;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// Add a controller ownerReference to the orphan ReplicaSet.
    AdoptReplicaSet { name: String, uid: String },
    /// Remove the Deployment's ownerReference from a ReplicaSet that no longer matches.
    ReleaseReplicaSet { name: String, uid: String },
    /// Create the new ReplicaSet; `event` is the ScalingReplicaSet message, if any.
    CreateReplicaSet { rs: Value, event: Option<String> },
    /// Merge-patch a ReplicaSet (the patch carries its resourceVersion as a precondition).
    UpdateReplicaSet { name: String, patch: Value, event: Option<String> },
    /// Delete an old ReplicaSet beyond revisionHistoryLimit.
    DeleteReplicaSet { name: String, uid: String },
    /// Set the Deployment's revision annotation.
    SetRevision { revision: String },
    /// Replace the Deployment's status.
    Status { status: Value },
}

// ---- the working model ----

/// A ReplicaSet as the plan sees and changes it.
#[derive(Debug, Clone)]
struct Rs<'a> {
    v: &'a Value,
    name: String,
    /// Not yet stored: created by this plan.
    fresh: Option<Value>,
    orig_replicas: i64,
    replicas: i64,
    orig_annotations: Map<String, Value>,
    annotations: Map<String, Value>,
    min_ready: i64,
}

impl<'a> Rs<'a> {
    fn new(v: &'a Value) -> Self {
        let replicas = v["spec"]["replicas"].as_i64().unwrap_or(1);
        let annotations = v["metadata"]["annotations"].as_object().cloned().unwrap_or_default();
        Rs {
            v,
            name: name(v).to_string(),
            fresh: None,
            orig_replicas: replicas,
            replicas,
            orig_annotations: annotations.clone(),
            annotations,
            min_ready: v["spec"]["minReadySeconds"].as_i64().unwrap_or(0),
        }
    }
    fn status(&self, k: &str) -> i64 {
        if self.fresh.is_some() { 0 } else { self.v["status"][k].as_i64().unwrap_or(0) }
    }
    fn available(&self) -> i64 {
        self.status("availableReplicas").min(self.replicas.max(0))
    }
    fn revision(&self) -> i64 {
        self.annotations.get(REVISION).and_then(Value::as_str).and_then(|s| s.parse().ok()).unwrap_or(0)
    }
    fn created(&self) -> Option<DateTime<Utc>> {
        parse_time(&self.v["metadata"]["creationTimestamp"])
    }
    fn template(&self) -> &Value {
        match &self.fresh {
            Some(f) => &f["spec"]["template"],
            None => &self.v["spec"]["template"],
        }
    }
    fn desired_annotation(&self) -> Option<i64> {
        self.annotations.get(DESIRED_REPLICAS).and_then(Value::as_str).and_then(|s| s.parse().ok())
    }
    fn max_annotation(&self) -> Option<i64> {
        self.annotations.get(MAX_REPLICAS).and_then(Value::as_str).and_then(|s| s.parse().ok())
    }
}

struct Ctx<'a> {
    d: &'a Value,
    now: DateTime<Utc>,
    replicas: i64,
    rolling: bool,
    /// Owned ReplicaSets (and the one being created, last).
    rss: Vec<Rs<'a>>,
    /// Index of the new ReplicaSet in `rss`.
    new: Option<usize>,
    /// Every ReplicaSet in the namespace (to spot name collisions).
    all_names: HashSet<&'a str>,
    /// Working copy of the status (conditions change as the plan goes).
    status: Value,
    revision: Option<String>,
    delete: Vec<(String, String)>,
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, now: DateTime<Utc>) -> Value {
    let t = timestamp(now);
    json!({"type": type_, "status": status, "lastUpdateTime": t, "lastTransitionTime": t, "reason": reason, "message": message})
}

impl<'a> Ctx<'a> {
    fn conditions(&mut self) -> &mut Vec<Value> {
        if !self.status.is_object() {
            self.status = json!({});
        }
        if !self.status["conditions"].is_array() {
            self.status["conditions"] = json!([]);
        }
        match self.status["conditions"].as_array_mut() {
            Some(c) => c,
            None => unreachable!("conditions was just made an array"),
        }
    }

    fn progressing(&self) -> Option<&Value> {
        self.status["conditions"].as_array()?.iter().find(|c| c["type"] == "Progressing")
    }

    fn deadline(&self) -> Option<i64> {
        self.d["spec"]["progressDeadlineSeconds"].as_i64().filter(|s| *s != NO_DEADLINE)
    }

    fn paused(&self) -> bool {
        self.d["spec"]["paused"] == json!(true)
    }

    fn fenceposts(&self) -> (i64, i64) {
        let ru = &self.d["spec"]["strategy"]["rollingUpdate"];
        let surge = scaled(&ru["maxSurge"], self.replicas, true);
        let unavailable = scaled(&ru["maxUnavailable"], self.replicas, false);
        if surge == 0 && unavailable == 0 { (0, 1) } else { (surge, unavailable) }
    }

    fn max_surge(&self) -> i64 {
        if self.rolling { self.fenceposts().0 } else { 0 }
    }

    fn max_unavailable(&self) -> i64 {
        if !self.rolling || self.replicas == 0 {
            return 0;
        }
        self.fenceposts().1.min(self.replicas)
    }

    fn old(&self) -> Vec<usize> {
        (0..self.rss.len()).filter(|i| Some(*i) != self.new).collect()
    }

    fn all(&self) -> Vec<usize> {
        (0..self.rss.len()).collect()
    }

    fn spec_sum(&self, set: &[usize]) -> i64 {
        set.iter().map(|i| self.rss[*i].replicas).sum()
    }

    fn available_sum(&self, set: &[usize]) -> i64 {
        set.iter().map(|i| self.rss[*i].available()).sum()
    }

    /// Oldest first.
    fn by_creation(&self, mut set: Vec<usize>) -> Vec<usize> {
        set.sort_by(|a, b| self.rss[*a].created().cmp(&self.rss[*b].created()).then(self.rss[*a].name.cmp(&self.rss[*b].name)));
        set
    }

    /// Sets spec.replicas and the replica annotations (scaleReplicaSet).
    fn scale(&mut self, i: usize, to: i64) {
        let desired = self.replicas.to_string();
        let max = (self.replicas + self.max_surge()).to_string();
        let rs = &mut self.rss[i];
        rs.replicas = to.max(0);
        rs.annotations.insert(DESIRED_REPLICAS.into(), json!(desired));
        rs.annotations.insert(MAX_REPLICAS.into(), json!(max));
    }

    /// Scales only if the size differs (scaleReplicaSetAndRecordEvent). True if it did.
    fn scale_if_needed(&mut self, i: usize, to: i64) -> bool {
        if self.rss[i].replicas == to {
            return false;
        }
        self.scale(i, to);
        true
    }

    /// Copies the Deployment's annotations onto a ReplicaSet.
    fn copy_annotations(&mut self, i: usize) {
        let from = self.d["metadata"]["annotations"].as_object().cloned().unwrap_or_default();
        for (k, v) in from {
            if !NOT_COPIED.contains(&k.as_str()) {
                self.rss[i].annotations.insert(k, v);
            }
        }
    }

    /// getAllReplicaSetsAndSyncRevision: finds the new ReplicaSet (creating it if asked),
    /// brings its revision and annotations up to date.
    fn sync_revision(&mut self, create: bool) {
        if self.new.is_none() {
            let want = without_hash(&self.d["spec"]["template"]);
            let mut candidates: Vec<usize> = (0..self.rss.len()).filter(|i| without_hash(self.rss[*i].template()) == want).collect();
            candidates = self.by_creation(candidates);
            self.new = candidates.first().copied();
        }
        let max_old = self.old().iter().map(|i| self.rss[*i].revision()).max().unwrap_or(0);
        let new_revision = max_old + 1;
        if let Some(n) = self.new {
            self.copy_annotations(n);
            let rs = &mut self.rss[n];
            let old = rs.annotations.get(REVISION).and_then(Value::as_str).map(str::to_string);
            let old_num = old.as_deref().and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
            if old_num < new_revision {
                rs.annotations.insert(REVISION.into(), json!(new_revision.to_string()));
                if let Some(old) = old.filter(|o| !o.is_empty()) {
                    // Rolled back to: remember the revisions it had.
                    let hist = match rs.annotations.get(REVISION_HISTORY).and_then(Value::as_str).filter(|h| !h.is_empty()) {
                        Some(h) => format!("{h},{old}"),
                        None => old,
                    };
                    rs.annotations.insert(REVISION_HISTORY.into(), json!(hist));
                }
            }
            rs.min_ready = self.d["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
            let rev = self.rss[n].annotations.get(REVISION).and_then(Value::as_str).unwrap_or("").to_string();
            self.set_revision(&rev);
            if self.deadline().is_some() && self.progressing().is_none() {
                let msg = format!("Found new replica set \"{}\"", self.rss[n].name);
                let c = condition("Progressing", "True", "FoundNewReplicaSet", &msg, self.now);
                set_condition(self.conditions(), c);
            }
            return;
        }
        if !create {
            return;
        }
        // Create the new ReplicaSet.
        let collision = self.status["collisionCount"].as_i64();
        let template = &self.d["spec"]["template"];
        let hash = template_hash(template, collision);
        let rs_name = format!("{}-{}", name(self.d), hash);
        if self.all_names.contains(rs_name.as_str()) {
            // Same name, different template (or not ours): a hash collision.
            self.status["collisionCount"] = json!(collision.unwrap_or(0) + 1);
            return;
        }
        let mut template = template.clone();
        template["metadata"]["labels"][HASH_LABEL] = json!(hash);
        let mut sel = self.d["spec"]["selector"].clone();
        sel["matchLabels"][HASH_LABEL] = json!(hash);
        let rs = json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name,
                "namespace": self.d["metadata"]["namespace"].as_str().unwrap_or("default"),
                "labels": template["metadata"]["labels"].clone(),
                "ownerReferences": [controller_ref(self.d, "apps/v1", "Deployment")],
            },
            "spec": {"replicas": 0, "minReadySeconds": self.d["spec"]["minReadySeconds"].as_i64().unwrap_or(0), "selector": sel, "template": template},
        });
        let mut entry = Rs::new(self.d);
        entry.name = rs_name.clone();
        entry.fresh = Some(rs);
        entry.orig_replicas = 0;
        entry.replicas = 0;
        entry.orig_annotations = Map::new();
        entry.annotations = Map::new();
        entry.min_ready = self.d["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
        self.rss.push(entry);
        let n = self.rss.len() - 1;
        self.new = Some(n);
        let replicas = self.new_rs_replicas(n);
        self.copy_annotations(n);
        self.rss[n].annotations.insert(REVISION.into(), json!(new_revision.to_string()));
        self.scale(n, replicas);
        self.set_revision(&new_revision.to_string());
        if self.deadline().is_some() {
            let msg = format!("Created new replica set \"{rs_name}\"");
            let c = condition("Progressing", "True", "NewReplicaSetCreated", &msg, self.now);
            set_condition(self.conditions(), c);
        }
    }

    fn set_revision(&mut self, rev: &str) {
        let cur = self.d["metadata"]["annotations"][REVISION].as_str();
        if !rev.is_empty() && cur != Some(rev) {
            self.revision = Some(rev.to_string());
        }
    }

    /// NewRSNewReplicas: how big the new ReplicaSet should be now.
    fn new_rs_replicas(&self, n: usize) -> i64 {
        if !self.rolling {
            return self.replicas;
        }
        let surge = scaled(&self.d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], self.replicas, true);
        let current = self.spec_sum(&self.all());
        let max_total = self.replicas + surge;
        let cur_new = self.rss[n].replicas;
        if current >= max_total {
            return cur_new;
        }
        cur_new + (max_total - current).min(self.replicas - cur_new)
    }

    fn is_scaling_event(&self) -> bool {
        self.rss.iter().filter(|r| r.replicas > 0).any(|r| r.desired_annotation().is_some_and(|d| d != self.replicas))
    }

    /// Proportional scaling (`scale` in Kubernetes).
    fn scale_all(&mut self) {
        let active: Vec<usize> = self.all().into_iter().filter(|i| self.rss[*i].replicas > 0).collect();
        let target = match active.as_slice() {
            [one] => Some(*one),
            [] => self.new.or_else(|| self.by_creation(self.old()).last().copied()),
            _ => None,
        };
        if let Some(t) = target {
            self.scale_if_needed(t, self.replicas);
            return;
        }
        if let Some(n) = self.new {
            let r = &self.rss[n];
            if r.replicas == self.replicas && r.desired_annotation() == Some(self.replicas) && r.available() == self.replicas {
                for o in self.old() {
                    if self.rss[o].replicas > 0 {
                        self.scale_if_needed(o, 0);
                    }
                }
                return;
            }
        }
        if !self.rolling {
            return;
        }
        let allowed = if self.replicas > 0 { self.replicas + self.max_surge() } else { 0 };
        let to_add = allowed - self.spec_sum(&active);
        let mut order = active;
        order.sort_by(|a, b| {
            let (x, y) = (&self.rss[*a], &self.rss[*b]);
            let size = y.replicas.cmp(&x.replicas);
            if to_add > 0 { size.then(y.created().cmp(&x.created())) } else { size.then(x.created().cmp(&y.created())) }
        });
        let mut added = 0;
        let mut sizes = Vec::new();
        for &i in &order {
            let rs = &self.rss[i];
            let p = if to_add != 0 { self.proportion(rs, to_add, added) } else { 0 };
            added += p;
            sizes.push(rs.replicas + p);
        }
        for (k, &i) in order.iter().enumerate() {
            let mut size = sizes[k];
            if k == 0 && to_add != 0 {
                size = (size + to_add - added).max(0);
            }
            self.scale(i, size);
        }
    }

    fn proportion(&self, rs: &Rs<'_>, to_add: i64, added: i64) -> i64 {
        if rs.replicas == 0 || to_add == 0 || to_add == added {
            return 0;
        }
        let fraction = if self.replicas == 0 {
            -rs.replicas
        } else {
            let total = self.replicas + self.max_surge();
            let annotated = rs.max_annotation().unwrap_or_else(|| self.d["status"]["replicas"].as_i64().unwrap_or(0));
            if annotated == 0 {
                0
            } else {
                ((rs.replicas * total) as f64 / annotated as f64).round() as i64 - rs.replicas
            }
        };
        let allowed = to_add - added;
        if to_add > 0 { fraction.min(allowed) } else { fraction.max(allowed) }
    }

    /// reconcileNewReplicaSet. True if it scaled.
    fn reconcile_new(&mut self) -> bool {
        let Some(n) = self.new else { return false };
        if self.rss[n].replicas == self.replicas {
            return false;
        }
        if self.rss[n].replicas > self.replicas {
            return self.scale_if_needed(n, self.replicas);
        }
        let want = self.new_rs_replicas(n);
        self.scale_if_needed(n, want)
    }

    /// reconcileOldReplicaSets. True if it scaled anything down.
    fn reconcile_old(&mut self) -> bool {
        let old = self.old();
        if self.spec_sum(&old) == 0 {
            return false;
        }
        let all_pods = self.spec_sum(&self.all());
        let min_available = self.replicas - self.max_unavailable();
        let new_unavailable = self.new.map(|n| self.rss[n].replicas - self.rss[n].available()).unwrap_or(0);
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let mut scaled = 0;
        // Unhealthy replicas of old ReplicaSets go first.
        for i in self.by_creation(old.clone()) {
            if scaled >= max_scaled_down {
                break;
            }
            let rs = &self.rss[i];
            if rs.replicas == 0 || rs.replicas == rs.available() {
                continue;
            }
            let down = (max_scaled_down - scaled).min(rs.replicas - rs.available());
            let to = rs.replicas - down;
            self.scale(i, to);
            scaled += down;
        }
        // Then healthy ones, as far as availability allows.
        let available = self.available_sum(&self.all());
        if available > min_available {
            let total = available - min_available;
            let mut done = 0;
            for i in self.by_creation(old) {
                if done >= total {
                    break;
                }
                let r = self.rss[i].replicas;
                if r == 0 {
                    continue;
                }
                let down = r.min(total - done);
                self.scale(i, r - down);
                done += down;
            }
            scaled += done;
        }
        scaled > 0
    }

    /// Deletes old, empty ReplicaSets beyond revisionHistoryLimit.
    fn cleanup(&mut self) {
        let Some(limit) = self.d["spec"]["revisionHistoryLimit"].as_i64() else { return };
        let mut cleanable: Vec<usize> = self.old().into_iter().filter(|i| self.rss[*i].fresh.is_none() && !deleting(self.rss[*i].v)).collect();
        let diff = cleanable.len() as i64 - limit;
        if diff <= 0 {
            return;
        }
        cleanable.sort_by(|a, b| {
            let (x, y) = (&self.rss[*a], &self.rss[*b]);
            x.revision().cmp(&y.revision()).then(x.created().cmp(&y.created())).then(x.name.cmp(&y.name))
        });
        for &i in cleanable.iter().take(diff as usize) {
            let rs = &self.rss[i];
            let stale = generation(rs.v) > rs.v["status"]["observedGeneration"].as_i64().unwrap_or(0);
            if rs.status("replicas") != 0 || rs.replicas != 0 || rs.orig_replicas != 0 || stale {
                continue;
            }
            self.delete.push((rs.name.clone(), uid(rs.v).to_string()));
        }
    }

    /// DeploymentComplete over a status.
    fn complete(&self, st: &Value) -> bool {
        let n = |k: &str| st[k].as_i64().unwrap_or(0);
        n("updatedReplicas") == self.replicas
            && n("replicas") == self.replicas
            && n("availableReplicas") == self.replicas
            && n("observedGeneration") >= generation(self.d)
    }

    /// calculateStatus: counts from the ReplicaSets, the Available condition.
    fn calculate_status(&mut self) -> Value {
        let all = self.all();
        let total: i64 = self.spec_sum(&all);
        let sum = |k: &str| -> i64 { all.iter().map(|i| self.rss[*i].status(k)).sum() };
        // As reported by the ReplicaSets (decisions use the capped `available_sum`).
        let available = sum("availableReplicas");
        let mut st = Map::new();
        let mut put = |k: &str, n: i64| {
            if n != 0 {
                st.insert(k.into(), json!(n));
            }
        };
        put("observedGeneration", generation(self.d));
        put("replicas", sum("replicas"));
        put("updatedReplicas", self.new.map(|n| self.rss[n].status("replicas")).unwrap_or(0));
        put("readyReplicas", sum("readyReplicas"));
        put("availableReplicas", available);
        put("unavailableReplicas", (total - available).max(0));
        let mut st = Value::Object(st);
        let cond = if available >= self.replicas - self.max_unavailable() {
            condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", self.now)
        } else {
            condition("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.", self.now)
        };
        set_condition(self.conditions(), cond);
        st["conditions"] = self.status["conditions"].clone();
        if let Some(c) = self.status.get("collisionCount").filter(|c| !c.is_null()) {
            st["collisionCount"] = c.clone();
        }
        st
    }

    /// syncRolloutStatus: status plus the Progressing condition.
    fn rollout_status(&mut self) -> Value {
        let mut st = self.calculate_status();
        let mut conds: Vec<Value> = st["conditions"].as_array().cloned().unwrap_or_default();
        if self.deadline().is_none() {
            conds.retain(|c| c["type"] != "Progressing");
        }
        let current = conds.iter().find(|c| c["type"] == "Progressing").cloned();
        let counts_equal = st["replicas"] == st["updatedReplicas"] || (st["replicas"].is_null() && st["updatedReplicas"].is_null());
        let is_complete = counts_equal && current.as_ref().is_some_and(|c| c["reason"] == "NewReplicaSetAvailable");
        if let Some(deadline) = self.deadline().filter(|_| !is_complete) {
            let subject = match self.new {
                Some(n) => format!("ReplicaSet \"{}\"", self.rss[n].name),
                None => format!("Deployment \"{}\"", name(self.d)),
            };
            let old = &self.d["status"];
            let n = |v: &Value, k: &str| v[k].as_i64().unwrap_or(0);
            let progressed = n(&st, "updatedReplicas") > n(old, "updatedReplicas")
                || n(&st, "replicas") - n(&st, "updatedReplicas") < n(old, "replicas") - n(old, "updatedReplicas")
                || n(&st, "readyReplicas") > n(old, "readyReplicas")
                || n(&st, "availableReplicas") > n(old, "availableReplicas");
            if self.complete(&st) {
                let msg = format!("{subject} has successfully progressed.");
                set_condition(&mut conds, condition("Progressing", "True", "NewReplicaSetAvailable", &msg, self.now));
            } else if progressed {
                let mut c = condition("Progressing", "True", "ReplicaSetUpdated", &format!("{subject} is progressing."), self.now);
                if let Some(cur) = &current {
                    if cur["status"] == "True" {
                        c["lastTransitionTime"] = cur["lastTransitionTime"].clone();
                    }
                    conds.retain(|c| c["type"] != "Progressing");
                }
                conds.push(c);
            } else if let Some(cur) = &current {
                let timed_out = match cur["reason"].as_str() {
                    Some("NewReplicaSetAvailable") => false,
                    Some("ProgressDeadlineExceeded") => true,
                    _ => parse_time(&cur["lastUpdateTime"]).is_some_and(|t| t + chrono::Duration::seconds(deadline) < self.now),
                };
                if timed_out {
                    let msg = format!("{subject} has timed out progressing.");
                    set_condition(&mut conds, condition("Progressing", "False", "ProgressDeadlineExceeded", &msg, self.now));
                }
            }
        }
        st["conditions"] = Value::Array(conds);
        st
    }

    /// Pods of old ReplicaSets still running (Recreate waits for them).
    fn old_pods_running(&self, pods: &[&Value]) -> bool {
        let old = self.old();
        if old.iter().map(|i| self.rss[*i].status("replicas")).sum::<i64>() > 0 {
            return true;
        }
        let uids: HashSet<&str> = old.iter().map(|i| uid(self.rss[*i].v)).collect();
        pods.iter().any(|p| {
            controller_uid(p).is_some_and(|u| uids.contains(u)) && !matches!(p["status"]["phase"].as_str(), Some("Succeeded") | Some("Failed"))
        })
    }

    /// Recreate strategy. Returns the status to write.
    fn recreate(&mut self, pods: &[&Value]) -> Value {
        self.sync_revision(false);
        let mut scaled = false;
        for o in self.old() {
            if self.rss[o].replicas > 0 {
                scaled |= self.scale_if_needed(o, 0);
            }
        }
        if scaled || self.old_pods_running(pods) {
            return self.rollout_status();
        }
        if self.new.is_none() {
            self.sync_revision(true);
        }
        if let Some(n) = self.new {
            self.scale_if_needed(n, self.replicas);
        }
        if self.complete(&self.d["status"]) {
            self.cleanup();
        }
        self.rollout_status()
    }

    /// RollingUpdate strategy. Returns the status to write.
    fn rolling_update(&mut self) -> Value {
        self.sync_revision(true);
        if self.new.is_some() && (self.reconcile_new() || self.reconcile_old()) {
            return self.rollout_status();
        }
        if self.complete(&self.d["status"]) {
            self.cleanup();
        }
        self.rollout_status()
    }

    /// Paused or scaling: no rollout, only scale. Returns the status to write.
    fn sync(&mut self) -> Value {
        self.sync_revision(false);
        self.scale_all();
        if self.paused() {
            self.cleanup();
        }
        self.calculate_status()
    }

    fn paused_conditions(&mut self) {
        if self.deadline().is_none() {
            return;
        }
        let reason = self.progressing().and_then(|c| c["reason"].as_str()).unwrap_or("").to_string();
        if reason == "ProgressDeadlineExceeded" {
            return;
        }
        let is_paused = reason == "DeploymentPaused";
        if self.paused() && !is_paused {
            let c = condition("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", self.now);
            set_condition(self.conditions(), c);
        } else if !self.paused() && is_paused {
            let c = condition("Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed", self.now);
            set_condition(self.conditions(), c);
        }
    }

    /// The steps the working model amounts to.
    fn into_steps(self, mut steps: Vec<Step>, status: Value) -> Vec<Step> {
        for rs in &self.rss {
            let event = |from: i64, to: i64| {
                (from != to).then(|| format!("Scaled {} replica set {} from {} to {}", if to > from { "up" } else { "down" }, rs.name, from, to))
            };
            if let Some(fresh) = &rs.fresh {
                let mut body = fresh.clone();
                body["spec"]["replicas"] = json!(rs.replicas);
                body["metadata"]["annotations"] = Value::Object(rs.annotations.clone());
                steps.push(Step::CreateReplicaSet { rs: body, event: event(0, rs.replicas) });
                continue;
            }
            let mut patch = Map::new();
            let mut spec = Map::new();
            if rs.replicas != rs.orig_replicas {
                spec.insert("replicas".into(), json!(rs.replicas));
            }
            if rs.min_ready != rs.v["spec"]["minReadySeconds"].as_i64().unwrap_or(0) {
                spec.insert("minReadySeconds".into(), json!(rs.min_ready));
            }
            let changed: Map<String, Value> = rs.annotations.iter().filter(|(k, v)| rs.orig_annotations.get(*k) != Some(*v)).map(|(k, v)| (k.clone(), v.clone())).collect();
            if spec.is_empty() && changed.is_empty() {
                continue;
            }
            let mut meta = json!({"resourceVersion": rs.v["metadata"]["resourceVersion"].clone()});
            if !changed.is_empty() {
                meta["annotations"] = Value::Object(changed);
            }
            patch.insert("metadata".into(), meta);
            if !spec.is_empty() {
                patch.insert("spec".into(), Value::Object(spec));
            }
            steps.push(Step::UpdateReplicaSet { name: rs.name.clone(), patch: Value::Object(patch), event: event(rs.orig_replicas, rs.replicas) });
        }
        for (name, uid) in self.delete {
            steps.push(Step::DeleteReplicaSet { name, uid });
        }
        if let Some(revision) = self.revision {
            steps.push(Step::SetRevision { revision });
        }
        let mut status = status;
        if status["conditions"].as_array().is_some_and(|c| c.is_empty())
            && let Some(o) = status.as_object_mut()
        {
            o.remove("conditions");
        }
        if status != self.d["status"] {
            steps.push(Step::Status { status });
        }
        steps
    }
}

/// Pure: what to do for Deployment `d`, given every ReplicaSet and pod in its namespace.
pub(crate) fn plan(d: &Value, replica_sets: &[&Value], pods: &[&Value], now: DateTime<Utc>) -> Vec<Step> {
    let Some(sel) = selector(d) else { return vec![] };
    if sel.is_empty() {
        // Kubernetes refuses to act on a Deployment that selects everything.
        return vec![];
    }
    let d_deleting = deleting(d);
    let claimed = claim(d, &sel, replica_sets, &|_| true);
    let steps = claimed
        .changes
        .iter()
        .map(|(c, rs)| {
            let (name, uid) = (name(rs).to_string(), uid(rs).to_string());
            match c {
                Change::Adopt => Step::AdoptReplicaSet { name, uid },
                Change::Release => Step::ReleaseReplicaSet { name, uid },
            }
        })
        .collect();
    let owned = claimed.owned.into_iter().map(Rs::new).collect();
    let mut ctx = Ctx {
        d,
        now,
        replicas: d["spec"]["replicas"].as_i64().unwrap_or(1).max(0),
        rolling: d["spec"]["strategy"]["type"].as_str() != Some("Recreate"),
        rss: owned,
        new: None,
        all_names: replica_sets.iter().map(|r| name(r)).collect(),
        status: status::current(d),
        revision: None,
        delete: Vec::new(),
    };
    let status = if d_deleting {
        ctx.sync_revision(false);
        ctx.calculate_status()
    } else {
        ctx.paused_conditions();
        if ctx.paused() {
            ctx.sync()
        } else {
            ctx.sync_revision(false);
            if ctx.is_scaling_event() {
                ctx.sync()
            } else if ctx.rolling {
                ctx.rolling_update()
            } else {
                ctx.recreate(pods)
            }
        }
    };
    ctx.into_steps(steps, status)
}

// ---- executor ----

/// Plans every Deployment in `objects` and carries out the steps.
pub(crate) async fn reconcile_all(api: &Api, objects: &[crate::store::Keyed], now: DateTime<Utc>) -> Result<(), ApiError> {
    let sets = by_namespace(objects, "apps/replicasets");
    let pods = by_namespace(objects, "core/pods");
    let none = Vec::new();
    for (ns, deployments) in by_namespace(objects, "apps/deployments") {
        let sets = sets.get(ns).unwrap_or(&none);
        let pods = pods.get(ns).unwrap_or(&none);
        for d in deployments {
            let steps = plan(d, sets, pods, now);
            if let Err(e) = execute(api, d, steps).await
                && !e.is_transient()
            {
                tracing::warn!(error = %e, deployment = name(d), namespace = ns, "deployment sync failed");
            }
        }
    }
    Ok(())
}

/// Carries out the steps in order; the first failure stops the rest (the next pass re-plans).
async fn execute(api: &Api, d: &Value, steps: Vec<Step>) -> Result<(), ApiError> {
    let sets = info("apps", "replicasets");
    let deployments = info("apps", "deployments");
    let ns = d["metadata"]["namespace"].as_str().unwrap_or("default");
    let d_uid = uid(d).to_string();
    let owner = controller_ref(d, "apps/v1", "Deployment");
    for step in steps {
        match step {
            Step::AdoptReplicaSet { name: rs, uid: rs_uid } => adopt(api, sets, ns, &rs, &rs_uid, &owner).await?,
            Step::ReleaseReplicaSet { name: rs, uid: rs_uid } => release(api, sets, ns, &rs, &rs_uid, &d_uid).await?,
            Step::CreateReplicaSet { rs, event } => {
                api.create(sets, Some(ns), rs, &controller_write_options()).await?;
                if let Some(msg) = event {
                    api.record_event(d, "Normal", "ScalingReplicaSet", &msg, COMPONENT).await;
                }
            }
            Step::UpdateReplicaSet { name: rs, patch, event } => {
                api.patch(sets, Some(ns), &rs, PatchType::Merge, &patch, Part::Main, false, &controller_write_options()).await?;
                if let Some(msg) = event {
                    api.record_event(d, "Normal", "ScalingReplicaSet", &msg, COMPONENT).await;
                }
            }
            Step::DeleteReplicaSet { name: rs, uid: rs_uid } => {
                let opts = DeleteOptions { uid: Some(rs_uid), propagation: Some("Background".into()), ..Default::default() };
                ignore_transient(api.delete(sets, Some(ns), &rs, &opts).await)?;
            }
            Step::SetRevision { revision } => {
                api.modify(deployments, Some(ns), name(d), &|cur| {
                    if uid(cur) != d_uid || cur["metadata"]["annotations"][REVISION] == json!(revision) {
                        return None;
                    }
                    let mut new = cur.clone();
                    if !new["metadata"]["annotations"].is_object() {
                        new["metadata"]["annotations"] = json!({});
                    }
                    new["metadata"]["annotations"][REVISION] = json!(revision);
                    Some(new)
                })
                .await?;
            }
            Step::Status { status } => write_status(api, deployments, d, status).await?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::objects::t;

    fn template(image: &str) -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}})
    }

    fn deploy(replicas: i64, image: &str, surge: Value, unavailable: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 1, "annotations": {"kubernetes.io/change-cause": "v1"}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": template(image),
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
            },
        })
    }

    /// A ReplicaSet of `d`'s for `image`, at `replicas` with `available` available pods.
    fn rs(image: &str, revision: i64, replicas: i64, available: i64, created: i64) -> Value {
        let hash = template_hash(&template(image), None);
        let mut tpl = template(image);
        tpl["metadata"]["labels"][HASH_LABEL] = json!(hash);
        json!({
            "metadata": {
                "name": format!("web-{hash}"), "namespace": "default", "uid": format!("uid-{image}"), "resourceVersion": "7",
                "generation": 1, "creationTimestamp": timestamp(t(created)),
                "labels": {"app": "web", HASH_LABEL: hash},
                "annotations": {REVISION: revision.to_string(), DESIRED_REPLICAS: "3", MAX_REPLICAS: "4", "kubernetes.io/change-cause": "v1"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-uid", "controller": true}],
            },
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web", HASH_LABEL: hash}}, "template": tpl},
            "status": {"replicas": replicas, "readyReplicas": available, "availableReplicas": available, "observedGeneration": 1},
        })
    }

    fn desired(mut v: Value, desired: i64, max: i64) -> Value {
        v["metadata"]["annotations"][DESIRED_REPLICAS] = json!(desired.to_string());
        v["metadata"]["annotations"][MAX_REPLICAS] = json!(max.to_string());
        v
    }

    fn created(steps: &[Step]) -> Option<&Value> {
        steps.iter().find_map(|s| if let Step::CreateReplicaSet { rs, .. } = s { Some(rs) } else { None })
    }

    /// (name, new replicas) of every scale in the steps.
    fn scales(steps: &[Step]) -> Vec<(String, i64)> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::UpdateReplicaSet { name, patch, .. } => patch["spec"]["replicas"].as_i64().map(|r| (name.clone(), r)),
                _ => None,
            })
            .collect()
    }

    fn status(steps: &[Step]) -> Option<&Value> {
        steps.iter().find_map(|s| if let Step::Status { status } = s { Some(status) } else { None })
    }

    fn cond<'a>(st: &'a Value, t: &str) -> &'a Value {
        st["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == t)).unwrap_or(&Value::Null)
    }

    fn name_of(image: &str) -> String {
        format!("web-{}", template_hash(&template(image), None))
    }

    #[test]
    fn hash_is_stable_alphabet_and_ignores_field_order_and_hash_label() {
        let a = template_hash(&template("x"), None);
        let reordered = json!({"spec": {"containers": [{"image": "x", "name": "c", "env": []}]}, "metadata": {"creationTimestamp": null, "labels": {"app": "web", HASH_LABEL: "zzz"}}});
        assert_eq!(a, template_hash(&reordered, None));
        assert_ne!(a, template_hash(&template("y"), None));
        assert_ne!(a, template_hash(&template("x"), Some(1)));
        assert!(a.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)) && !a.is_empty(), "{a}");
    }

    #[test]
    fn fenceposts_round_like_kubernetes() {
        assert_eq!(scaled(&json!("25%"), 3, true), 1);
        assert_eq!(scaled(&json!("25%"), 3, false), 0);
        assert_eq!(scaled(&json!("50%"), 5, false), 2);
        assert_eq!(scaled(&json!(2), 5, false), 2);
        let d = deploy(3, "a", json!(0), json!(0));
        let ctx = Ctx { d: &d, now: t(0), replicas: 3, rolling: true, rss: vec![], new: None, all_names: HashSet::new(), status: json!({}), revision: None, delete: vec![] };
        assert_eq!(ctx.fenceposts(), (0, 1));
    }

    #[test]
    fn first_sync_creates_the_replica_set_with_hash_revision_and_annotations() {
        let d = deploy(3, "a", json!("25%"), json!("25%"));
        let steps = plan(&d, &[], &[], t(0));
        let rs = created(&steps).expect("creates a replica set");
        let hash = template_hash(&template("a"), None);
        assert_eq!(rs["metadata"]["name"], format!("web-{hash}"));
        assert_eq!(rs["metadata"]["labels"], json!({"app": "web", HASH_LABEL: hash}));
        assert_eq!(rs["spec"]["selector"]["matchLabels"][HASH_LABEL], json!(hash));
        assert_eq!(rs["spec"]["template"]["metadata"]["labels"][HASH_LABEL], json!(hash));
        assert_eq!(rs["spec"]["replicas"], 3);
        assert_eq!(rs["metadata"]["annotations"][REVISION], "1");
        assert_eq!(rs["metadata"]["annotations"][DESIRED_REPLICAS], "3");
        assert_eq!(rs["metadata"]["annotations"][MAX_REPLICAS], "4");
        assert_eq!(rs["metadata"]["annotations"]["kubernetes.io/change-cause"], "v1");
        assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
        assert_eq!(rs["metadata"]["ownerReferences"][0]["blockOwnerDeletion"], true);
        assert!(steps.contains(&Step::CreateReplicaSet { rs: rs.clone(), event: Some(format!("Scaled up replica set web-{hash} from 0 to 3")) }));
        assert!(steps.contains(&Step::SetRevision { revision: "1".into() }));
        let st = status(&steps).expect("status");
        assert_eq!(cond(st, "Progressing")["reason"], "NewReplicaSetCreated");
        assert_eq!(cond(st, "Available")["reason"], "MinimumReplicasUnavailable");
        assert_eq!(st["observedGeneration"], 1);
        assert_eq!(st["unavailableReplicas"], 3);
    }

    #[test]
    fn rolling_update_surges_then_scales_old_down_by_availability() {
        // 3 replicas, maxSurge 1, maxUnavailable 0.
        let mut d = deploy(3, "b", json!(1), json!(0));
        d["metadata"]["annotations"][REVISION] = json!("1");
        let old = rs("a", 1, 3, 3, 0);
        let steps = plan(&d, &[&old], &[], t(100));
        let new = created(&steps).expect("new rs");
        assert_eq!(new["spec"]["replicas"], 1, "surge allows one extra pod");
        assert_eq!(new["metadata"]["annotations"][REVISION], "2");
        assert!(scales(&steps).is_empty(), "no old pods go before new ones are available");
        // New RS at 1 but not available yet: nothing moves.
        let mut new_rs = rs("b", 2, 1, 0, 50);
        let steps = plan(&d, &[&old, &new_rs], &[], t(100));
        assert!(scales(&steps).is_empty(), "{steps:?}");
        // Once the new pod is available, one old pod may go.
        new_rs["status"]["availableReplicas"] = json!(1);
        let steps = plan(&d, &[&old, &new_rs], &[], t(100));
        assert_eq!(scales(&steps), vec![(name_of("a"), 2)]);
        assert!(steps.iter().any(|s| matches!(s, Step::UpdateReplicaSet { event: Some(e), .. } if e == &format!("Scaled down replica set {} from 3 to 2", name_of("a")))));
        // The old RS's status still says 3 available: capped by its spec, no second scale-down.
        let mut old2 = old.clone();
        old2["spec"]["replicas"] = json!(2);
        old2["metadata"]["generation"] = json!(2);
        let steps = plan(&d, &[&old2, &new_rs], &[], t(100));
        assert_eq!(scales(&steps), vec![(name_of("b"), 2)], "scale up comes first");
    }

    #[test]
    fn max_unavailable_lets_old_pods_go_first() {
        // maxSurge 0, maxUnavailable 1: the new RS starts at 0 and one old pod goes.
        let d = deploy(3, "b", json!(0), json!(1));
        let old = rs("a", 1, 3, 3, 0);
        let steps = plan(&d, &[&old], &[], t(100));
        assert_eq!(created(&steps).map(|r| r["spec"]["replicas"].clone()), Some(json!(0)));
        assert_eq!(scales(&steps), vec![(name_of("a"), 2)]);
    }

    #[test]
    fn unhealthy_old_replicas_are_cleaned_up_first() {
        let d = deploy(3, "b", json!(1), json!(0));
        let old = rs("a", 1, 3, 1, 0); // two of three unavailable
        let new_rs = rs("b", 2, 1, 1, 50);
        let steps = plan(&d, &[&old, &new_rs], &[], t(100));
        // allPods 4 - minAvailable 3 - newUnavailable 0 = 1 may go: an unhealthy one.
        assert_eq!(scales(&steps), vec![(name_of("a"), 2)]);
    }

    #[test]
    fn complete_rollout_reports_and_prunes_history() {
        let mut d = deploy(3, "c", json!(1), json!(0));
        d["spec"]["revisionHistoryLimit"] = json!(1);
        d["metadata"]["annotations"][REVISION] = json!("3");
        d["status"] = json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3});
        let a = rs("a", 1, 0, 0, 0);
        let b = rs("b", 2, 0, 0, 10);
        let c = rs("c", 3, 3, 3, 20);
        let steps = plan(&d, &[&a, &b, &c], &[], t(100));
        assert!(steps.contains(&Step::DeleteReplicaSet { name: name_of("a"), uid: "uid-a".into() }), "{steps:?}");
        assert!(!steps.iter().any(|s| matches!(s, Step::DeleteReplicaSet { name, .. } if name == &name_of("b"))));
        let st = status(&steps).expect("status");
        assert_eq!(cond(st, "Progressing")["reason"], "NewReplicaSetAvailable");
        assert_eq!(cond(st, "Progressing")["message"], format!("ReplicaSet \"{}\" has successfully progressed.", name_of("c")));
        assert_eq!(cond(st, "Available")["reason"], "MinimumReplicasAvailable");
        assert_eq!(st["updatedReplicas"], 3);
        assert!(st.get("unavailableReplicas").is_none());
        // Writing that status and planning again changes nothing further (apart from the pruning).
        let mut d2 = d.clone();
        d2["status"] = st.clone();
        let again = plan(&d2, &[&b, &c], &[], t(200));
        assert!(again.is_empty(), "{again:?}");
    }

    #[test]
    fn rollback_reuses_the_old_replica_set_with_a_new_revision() {
        // Template is back at "a" (as kubectl sends it, with a null creationTimestamp);
        // "b" is current at revision 2.
        let mut d = deploy(3, "a", json!(1), json!(0));
        d["spec"]["template"]["metadata"]["creationTimestamp"] = Value::Null;
        let a = rs("a", 1, 0, 0, 0);
        let b = rs("b", 2, 3, 3, 10);
        let steps = plan(&d, &[&a, &b], &[], t(100));
        assert!(created(&steps).is_none());
        let upd = steps.iter().find_map(|s| match s {
            Step::UpdateReplicaSet { name, patch, event } if name == &name_of("a") => Some((patch, event)),
            _ => None,
        });
        let (patch, event) = upd.expect("old rs updated");
        assert_eq!(patch["metadata"]["annotations"][REVISION], "3");
        assert_eq!(patch["metadata"]["annotations"][REVISION_HISTORY], "1");
        assert_eq!(patch["metadata"]["resourceVersion"], "7");
        assert_eq!(patch["spec"]["replicas"], 1);
        assert_eq!(event.as_deref(), Some(format!("Scaled up replica set {} from 0 to 1", name_of("a")).as_str()));
        assert!(steps.contains(&Step::SetRevision { revision: "3".into() }));
    }

    #[test]
    fn recreate_scales_old_to_zero_waits_for_pods_then_creates() {
        let mut d = deploy(2, "b", Value::Null, Value::Null);
        d["spec"]["strategy"] = json!({"type": "Recreate"});
        let old = desired(rs("a", 1, 2, 2, 0), 2, 2);
        let steps = plan(&d, &[&old], &[], t(100));
        assert_eq!(scales(&steps), vec![(name_of("a"), 0)]);
        assert!(created(&steps).is_none());
        // Scaled to zero but a pod still terminating: wait.
        let mut old0 = rs("a", 1, 0, 0, 0);
        old0["status"] = json!({"replicas": 0, "observedGeneration": 1});
        let pod = json!({"metadata": {"name": "p", "ownerReferences": [{"uid": "uid-a", "controller": true}], "deletionTimestamp": timestamp(t(90))}, "status": {"phase": "Running"}});
        let steps = plan(&d, &[&old0], &[&pod], t(100));
        assert!(created(&steps).is_none(), "{steps:?}");
        let steps = plan(&d, &[&old0], &[], t(100));
        assert_eq!(created(&steps).map(|r| r["spec"]["replicas"].clone()), Some(json!(2)));
    }

    #[test]
    fn paused_deployment_does_not_roll_out() {
        let mut d = deploy(3, "b", json!(1), json!(0));
        d["spec"]["paused"] = json!(true);
        let old = rs("a", 1, 3, 3, 0);
        let steps = plan(&d, &[&old], &[], t(100));
        assert!(created(&steps).is_none());
        assert!(scales(&steps).is_empty());
        let st = status(&steps).expect("status");
        assert_eq!(cond(st, "Progressing")["reason"], "DeploymentPaused");
        assert_eq!(cond(st, "Progressing")["status"], "Unknown");
        assert!(st.get("updatedReplicas").is_none());
    }

    #[test]
    fn scaling_a_stable_deployment_scales_its_replica_set() {
        let mut d = deploy(5, "a", json!("25%"), json!("25%"));
        d["metadata"]["annotations"][REVISION] = json!("1");
        let a = rs("a", 1, 3, 3, 0);
        let steps = plan(&d, &[&a], &[], t(100));
        assert_eq!(scales(&steps), vec![(name_of("a"), 5)]);
        let Some(Step::UpdateReplicaSet { patch, .. }) = steps.iter().find(|s| matches!(s, Step::UpdateReplicaSet { .. })) else { panic!() };
        assert_eq!(patch["metadata"]["annotations"][DESIRED_REPLICAS], "5");
        assert_eq!(patch["metadata"]["annotations"][MAX_REPLICAS], "7");
    }

    #[test]
    fn proportional_scaling_mid_rollout() {
        // 10 → 20 while two RSes are active: the extra pods are shared by size.
        let mut d = deploy(20, "b", json!(3), json!(2));
        d["status"] = json!({"replicas": 13});
        let mut a = rs("a", 1, 8, 8, 0);
        let mut b = rs("b", 2, 5, 0, 10);
        for r in [&mut a, &mut b] {
            r["metadata"]["annotations"][DESIRED_REPLICAS] = json!("10");
            r["metadata"]["annotations"][MAX_REPLICAS] = json!("13");
        }
        let steps = plan(&d, &[&a, &b], &[], t(100));
        let s = scales(&steps);
        let total: i64 = s.iter().map(|(_, r)| r).sum();
        assert_eq!(total, 23, "{s:?}");
        assert!(s.contains(&(name_of("a"), 14)) && s.contains(&(name_of("b"), 9)), "{s:?}");
    }

    #[test]
    fn progress_deadline_exceeded() {
        let mut d = deploy(1, "b", json!(1), json!(0));
        d["metadata"]["annotations"][REVISION] = json!("2");
        let old_cond = condition("Progressing", "True", "ReplicaSetUpdated", "x", t(0));
        d["status"] = json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1, "unavailableReplicas": 1, "conditions": [old_cond]});
        let a = desired(rs("a", 1, 1, 1, 0), 1, 2);
        let b = desired(rs("b", 2, 1, 0, 10), 1, 2);
        let steps = plan(&d, &[&a, &b], &[], t(601));
        let st = status(&steps).expect("status");
        assert_eq!(cond(st, "Progressing")["reason"], "ProgressDeadlineExceeded");
        assert_eq!(cond(st, "Progressing")["status"], "False");
        assert_eq!(cond(st, "Progressing")["message"], format!("ReplicaSet \"{}\" has timed out progressing.", name_of("b")));
        // Before the deadline nothing changes.
        assert!(status(&plan(&d, &[&a, &b], &[], t(500))).is_none_or(|s| cond(s, "Progressing")["reason"] == "ReplicaSetUpdated"));
    }

    #[test]
    fn adopts_orphans_and_releases_mismatches() {
        let d = deploy(3, "a", json!(1), json!(0));
        let mut orphan = rs("a", 1, 3, 3, 0);
        orphan["metadata"].as_object_mut().map(|m| m.remove("ownerReferences"));
        let mut stray = rs("z", 1, 0, 0, 0);
        stray["metadata"]["labels"] = json!({"app": "other"});
        let steps = plan(&d, &[&orphan, &stray], &[], t(0));
        assert_eq!(steps[0], Step::AdoptReplicaSet { name: name_of("a"), uid: "uid-a".into() });
        assert_eq!(steps[1], Step::ReleaseReplicaSet { name: name_of("z"), uid: "uid-z".into() });
        assert!(created(&steps).is_none(), "the adopted RS is the new one");
    }

    #[test]
    fn hash_collision_bumps_collision_count() {
        let d = deploy(1, "a", json!(1), json!(0));
        let mut squatter = rs("zzz", 1, 0, 0, 0);
        squatter["metadata"]["name"] = json!(name_of("a"));
        squatter["metadata"]["labels"] = json!({"other": "x"});
        let steps = plan(&d, &[&squatter], &[], t(0));
        assert!(created(&steps).is_none());
        assert_eq!(status(&steps).map(|s| s["collisionCount"].clone()), Some(json!(1)));
        let mut d2 = d.clone();
        d2["status"] = json!({"collisionCount": 1});
        let steps = plan(&d2, &[&squatter], &[], t(0));
        let new = created(&steps).expect("created with a new hash");
        assert_eq!(new["metadata"]["name"], format!("web-{}", template_hash(&template("a"), Some(1))));
    }

    #[test]
    fn rollout_status_fields_for_kubectl() {
        // Mid-rollout: updated < replicas, Progressing True ReplicaSetUpdated on progress.
        let mut d = deploy(2, "b", json!(1), json!(0));
        d["metadata"]["annotations"][REVISION] = json!("2");
        d["status"] = json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2});
        let a = desired(rs("a", 1, 2, 2, 0), 2, 3);
        let b = desired(rs("b", 2, 1, 1, 10), 2, 3);
        let steps = plan(&d, &[&a, &b], &[], t(100));
        let st = status(&steps).expect("status");
        assert_eq!(st["replicas"], 3);
        assert_eq!(st["updatedReplicas"], 1);
        assert_eq!(st["availableReplicas"], 3);
        assert_eq!(cond(st, "Progressing")["reason"], "ReplicaSetUpdated");
    }
}
