//! Job controller: runs a Job's pods to completion, as Kubernetes 1.32's job controller.
//!
//! - Selector: unless `manualSelector` is true, the Job gets Kubernetes' generated selector
//!   (`batch.kubernetes.io/controller-uid`) and template labels (`controller-uid`,
//!   `job-name` and their `batch.kubernetes.io/` forms) before any pod is created; that
//!   write is a pass of its own.
//! - Pods are the ones whose controller ownerReference is the Job. Finished pods are kept.
//!   Counts never go down: `succeeded`/`failed` are the larger of the status and the pods
//!   observed (a deleted finished pod does not un-count), and `completedIndexes` is the
//!   union of the status and the observed succeeded indexes.
//! - NonIndexed: `min(parallelism, completions - succeeded)` active pods; without
//!   completions (work queue) the first success stops creation and the Job completes once
//!   nothing is active. Indexed: one active pod per pending index (lowest first), named
//!   `NAME-INDEX-xxxxx`, with the completion-index annotation and label, hostname
//!   `NAME-INDEX` and env `JOB_COMPLETION_INDEX` (from the annotation).
//! - Failures: a failed pod counts unless a podFailurePolicy rule says Ignore; FailJob
//!   fails the Job (reason PodFailurePolicy). `failed > backoffLimit` fails it
//!   (BackoffLimitExceeded), as does running longer than activeDeadlineSeconds
//!   (DeadlineExceeded). New pods wait 10 s · 2^(failures since the last success − 1),
//!   at most 6 min, after the last failure: computed from pod timestamps and `now`.
//! - Terminal conditions are delayed as in 1.32: FailureTarget / SuccessCriteriaMet first
//!   (active pods are deleted), then Failed / Complete (+ completionTime) once no pod is
//!   active or terminating. A finished Job is left alone except for ttlSecondsAfterFinished.
//! - Suspend deletes active pods and sets Suspended=True; resuming sets it False and
//!   resets startTime.

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::objects::{by_namespace, deleting, ignore_transient, info, name, parse_time, timestamp, uid};
use super::owner::{controller_ref, controller_uid};
use super::pods::{create_pod, delete_pod, pod_ready, template_metadata};
use super::status::{job_finished, true_condition, write_status};
use crate::apiserver::Api;
use crate::apiserver::error::ApiError;
use crate::apiserver::service::DeleteOptions;

const COMPONENT: &str = "job-controller";
pub(crate) const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
pub(crate) const JOB_NAME: &str = "batch.kubernetes.io/job-name";
const LEGACY_CONTROLLER_UID: &str = "controller-uid";
const LEGACY_JOB_NAME: &str = "job-name";
pub(crate) const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// At most this many pods are created per Job per pass.
const BURST: usize = 500;
const BACKOFF_BASE_SECONDS: i64 = 10;
const BACKOFF_MAX_SECONDS: i64 = 360;

const MSG_BACKOFF: &str = "Job has reached the specified backoff limit";
const MSG_DEADLINE: &str = "Job was active longer than specified deadline";
const MSG_COMPLETIONS: &str = "Reached expected number of succeeded pods";

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// Write the generated `spec.selector` and `spec.template.metadata.labels`.
    SetSelector { selector: Value, labels: Value },
    /// Create this pod (named by `generateName`).
    Create { pod: Value },
    /// Delete the pod (gracefully), recording SuccessfulDelete.
    Delete { pod: String, uid: String },
    /// Replace the Job's status.
    Status { status: Value },
    /// Record an event on the Job.
    Event { type_: &'static str, reason: &'static str, message: String },
    /// Delete the finished Job (ttlSecondsAfterFinished).
    DeleteJob,
}

// ---- helpers ----

fn int(v: &Value) -> Option<i64> {
    v.as_i64()
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, now: DateTime<Utc>) -> Value {
    let t = timestamp(now);
    json!({"type": type_, "status": status, "lastProbeTime": t, "lastTransitionTime": t, "reason": reason, "message": message})
}

/// Kubernetes' ensureJobConditionStatus: an existing condition of the type is replaced in
/// place when status, reason or message differ; a missing one is added only when True.
fn ensure_condition(conds: &mut Vec<Value>, type_: &str, status: &str, reason: &str, message: &str, now: DateTime<Utc>) -> bool {
    if let Some(c) = conds.iter_mut().find(|c| c["type"] == type_) {
        if c["status"] != status || c["reason"] != reason || c["message"] != message {
            *c = condition(type_, status, reason, message, now);
            return true;
        }
        return false;
    }
    if status == "True" {
        conds.push(condition(type_, status, reason, message, now));
        return true;
    }
    false
}

fn phase(p: &Value) -> &str {
    p["status"]["phase"].as_str().unwrap_or("")
}

fn terminating(p: &Value) -> bool {
    deleting(p) && !matches!(phase(p), "Succeeded" | "Failed")
}

/// When the pod finished: its latest container finishedAt, else its Ready condition's
/// transition, else its creation.
fn finish_time(p: &Value) -> Option<DateTime<Utc>> {
    let statuses = ["initContainerStatuses", "containerStatuses"];
    let latest = statuses
        .iter()
        .filter_map(|k| p["status"][*k].as_array())
        .flatten()
        .filter_map(|c| parse_time(&c["state"]["terminated"]["finishedAt"]))
        .max();
    latest
        .or_else(|| {
            p["status"]["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "Ready")).and_then(|c| parse_time(&c["lastTransitionTime"]))
        })
        .or_else(|| parse_time(&p["metadata"]["creationTimestamp"]))
}

fn pod_index(p: &Value) -> Option<i64> {
    p["metadata"]["annotations"][COMPLETION_INDEX].as_str().and_then(|s| s.parse().ok()).filter(|i| *i >= 0)
}

/// "1,3-5,7" from a sorted set.
pub(crate) fn format_indexes(set: &BTreeSet<i64>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = set.iter().copied().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while it.peek() == Some(&(end + 1)) {
            end += 1;
            it.next();
        }
        out.push(if end == start { start.to_string() } else { format!("{start}-{end}") });
    }
    out.join(",")
}

pub(crate) fn parse_indexes(s: &str) -> BTreeSet<i64> {
    let mut set = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i64>(), b.parse::<i64>()) {
                    set.extend(a..=b.min(a + 1_000_000));
                }
            }
            None => {
                if let Ok(i) = part.parse() {
                    set.insert(i);
                }
            }
        }
    }
    set
}

/// What a podFailurePolicy makes of a failed pod.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Count,
    Ignore,
    FailJob(String),
}

/// The first matching rule of the Job's podFailurePolicy for failed pod `p` (Count if none).
fn pod_failure_verdict(job: &Value, p: &Value) -> Verdict {
    let Some(rules) = job["spec"]["podFailurePolicy"]["rules"].as_array() else { return Verdict::Count };
    let ns = p["metadata"]["namespace"].as_str().unwrap_or("default");
    for (i, rule) in rules.iter().enumerate() {
        let action = rule["action"].as_str().unwrap_or("");
        let mut message = None;
        if let Some(req) = rule.get("onExitCodes").filter(|r| r.is_object()) {
            let values: Vec<i64> = req["values"].as_array().map(|a| a.iter().filter_map(Value::as_i64).collect()).unwrap_or_default();
            let only = req["containerName"].as_str().filter(|s| !s.is_empty());
            let matches = |code: i64| match req["operator"].as_str() {
                Some("In") => values.contains(&code),
                Some("NotIn") => !values.contains(&code),
                _ => false,
            };
            for list in ["containerStatuses", "initContainerStatuses"] {
                for c in p["status"][list].as_array().into_iter().flatten() {
                    let cname = c["name"].as_str().unwrap_or("");
                    if only.is_some_and(|o| o != cname) {
                        continue;
                    }
                    if let Some(code) = c["state"]["terminated"]["exitCode"].as_i64()
                        && code != 0
                        && matches(code)
                        && message.is_none()
                    {
                        message = Some(format!("Container {cname} for pod {ns}/{} failed with exit code {code} matching {action} rule at index {i}", name(p)));
                    }
                }
            }
        } else if let Some(reqs) = rule["onPodConditions"].as_array() {
            for req in reqs {
                let want = req["status"].as_str().unwrap_or("True");
                let has = p["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == req["type"] && c["status"] == want));
                if has && message.is_none() {
                    message = Some(format!("Pod {ns}/{} has condition {} matching {action} rule at index {i}", name(p), req["type"].as_str().unwrap_or("")));
                }
            }
        }
        if let Some(m) = message {
            return match action {
                "FailJob" => Verdict::FailJob(m),
                "Ignore" => Verdict::Ignore,
                _ => Verdict::Count,
            };
        }
    }
    Verdict::Count
}

/// Seconds a new pod must wait after the last failure: 10 s doubling per failure since the
/// last success, capped at 6 minutes (0 when there is no such failure).
pub(crate) fn backoff_seconds(failures_since_success: usize) -> i64 {
    if failures_since_success == 0 {
        return 0;
    }
    let mut d = BACKOFF_BASE_SECONDS;
    for _ in 1..failures_since_success {
        d *= 2;
        if d >= BACKOFF_MAX_SECONDS {
            return BACKOFF_MAX_SECONDS;
        }
    }
    d
}

/// The generated selector and template labels, or None when the Job already has them
/// (or selects manually).
fn generated_selector(job: &Value) -> Option<(Value, Value)> {
    if job["spec"]["manualSelector"] == json!(true) {
        return None;
    }
    let u = uid(job);
    let n = name(job);
    let mut labels: Map<String, Value> = job["spec"]["template"]["metadata"]["labels"].as_object().cloned().unwrap_or_default();
    let mut changed = false;
    for (k, v) in [(JOB_NAME, n), (CONTROLLER_UID, u), (LEGACY_JOB_NAME, n), (LEGACY_CONTROLLER_UID, u)] {
        if !labels.contains_key(k) {
            labels.insert(k.into(), json!(v));
            changed = true;
        }
    }
    let mut selector = match &job["spec"]["selector"] {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    if selector.get("matchLabels").and_then(|m| m.get(CONTROLLER_UID)).is_none() {
        let mut ml = selector.get("matchLabels").and_then(Value::as_object).cloned().unwrap_or_default();
        ml.insert(CONTROLLER_UID.into(), json!(u));
        selector.insert("matchLabels".into(), Value::Object(ml));
        changed = true;
    }
    if !changed {
        return None;
    }
    let mut sorted: Vec<(String, Value)> = labels.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    Some((Value::Object(selector), Value::Object(sorted.into_iter().collect())))
}

/// The pod the Job creates, for completion index `index` when Indexed.
pub(crate) fn pod_from_template(job: &Value, index: Option<i64>) -> Value {
    let t = &job["spec"]["template"];
    let job_name = name(job);
    let generate = match index {
        Some(i) => format!("{job_name}-{i}-"),
        None => format!("{job_name}-"),
    };
    let meta = json!({"generateName": generate, "namespace": job["metadata"]["namespace"].as_str().unwrap_or("default")});
    let mut meta = template_metadata(meta, t, controller_ref(job, "batch/v1", "Job"));
    let mut spec = t["spec"].clone();
    if let Some(i) = index {
        let s = i.to_string();
        for k in ["annotations", "labels"] {
            if !meta[k].is_object() {
                meta[k] = json!({});
            }
            meta[k][COMPLETION_INDEX] = json!(s);
        }
        if spec.is_object() && spec["hostname"].as_str().unwrap_or("").is_empty() {
            spec["hostname"] = json!(format!("{job_name}-{i}"));
        }
        let env = json!({"name": INDEX_ENV, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": format!("metadata.annotations['{COMPLETION_INDEX}']")}}});
        for list in ["initContainers", "containers"] {
            for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
                if !c.is_object() {
                    continue;
                }
                if !c["env"].is_array() {
                    c["env"] = json!([]);
                }
                if let Some(e) = c["env"].as_array_mut()
                    && !e.iter().any(|x| x["name"] == INDEX_ENV)
                {
                    e.push(env.clone());
                }
            }
        }
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
}

/// Pods to delete first: unscheduled, not ready, newest.
fn removal_order(a: &&Value, b: &&Value) -> std::cmp::Ordering {
    let assigned = |p: &Value| !p["spec"]["nodeName"].as_str().unwrap_or("").is_empty();
    let created = |p: &Value| parse_time(&p["metadata"]["creationTimestamp"]);
    assigned(a).cmp(&assigned(b)).then(pod_ready(a).cmp(&pod_ready(b))).then_with(|| created(b).cmp(&created(a))).then_with(|| name(a).cmp(name(b)))
}

// ---- plan ----

/// Pure: what to do for `job` given every pod in its namespace, at `now`.
pub(crate) fn plan(job: &Value, pods: &[&Value], now: DateTime<Utc>) -> Vec<Step> {
    if deleting(job) || !job["spec"].is_object() {
        return vec![];
    }
    if let Some((selector, labels)) = generated_selector(job) {
        return vec![Step::SetSelector { selector, labels }];
    }
    let mut steps = Vec::new();
    if let Some(done) = job_finished(job) {
        if let Some(ttl) = int(&job["spec"]["ttlSecondsAfterFinished"]) {
            let at = parse_time(&job["status"]["completionTime"]).or_else(|| true_condition(job, done).and_then(|c| parse_time(&c["lastTransitionTime"])));
            if at.is_some_and(|t| t + chrono::Duration::seconds(ttl) <= now) {
                steps.push(Step::DeleteJob);
            }
        }
        return steps;
    }
    let job_uid = uid(job);
    let owned: Vec<&Value> = pods.iter().copied().filter(|p| controller_uid(p) == Some(job_uid)).collect();
    let indexed = job["spec"]["completionMode"] == "Indexed";
    let completions = int(&job["spec"]["completions"]).map(|c| c.max(0));
    let parallelism = int(&job["spec"]["parallelism"]).unwrap_or(1).max(0);
    let backoff_limit = int(&job["spec"]["backoffLimit"]).unwrap_or(6).max(0);
    let suspended = job["spec"]["suspend"] == json!(true);
    let has_pfp = job["spec"]["podFailurePolicy"].is_object();
    let replace_when = job["spec"]["podReplacementPolicy"].as_str().unwrap_or(if has_pfp { "Failed" } else { "TerminatingOrFailed" });

    let active: Vec<&Value> = owned.iter().copied().filter(|p| !deleting(p) && !matches!(phase(p), "Succeeded" | "Failed")).collect();
    let n_terminating = owned.iter().filter(|p| terminating(p)).count() as i64;
    let succeeded_pods: Vec<&Value> = owned.iter().copied().filter(|p| phase(p) == "Succeeded").collect();
    let mut failed_counted: Vec<&Value> = Vec::new();
    let mut fail_job: Option<String> = None;
    for p in owned.iter().copied().filter(|p| phase(p) == "Failed") {
        match pod_failure_verdict(job, p) {
            Verdict::Count => failed_counted.push(p),
            Verdict::Ignore => {}
            Verdict::FailJob(m) => {
                failed_counted.push(p);
                fail_job.get_or_insert(m);
            }
        }
    }
    let old = &job["status"];
    let mut completed: BTreeSet<i64> = parse_indexes(old["completedIndexes"].as_str().unwrap_or(""));
    if indexed {
        completed.extend(succeeded_pods.iter().filter_map(|p| pod_index(p)).filter(|i| completions.is_none_or(|c| *i < c)));
    }
    let succeeded = if indexed { completed.len() as i64 } else { (succeeded_pods.len() as i64).max(int(&old["succeeded"]).unwrap_or(0)) };
    let failed = (failed_counted.len() as i64).max(int(&old["failed"]).unwrap_or(0));

    let mut conds: Vec<Value> = old["conditions"].as_array().cloned().unwrap_or_default();
    let mut start_time = old["startTime"].clone();
    // Suspension.
    let mut events = Vec::new();
    let mut interim = conds.iter().find(|c| (c["type"] == "FailureTarget" || c["type"] == "SuccessCriteriaMet") && c["status"] == "True").cloned();
    if interim.is_none() {
        if suspended {
            if ensure_condition(&mut conds, "Suspended", "True", "JobSuspended", "Job suspended", now) {
                events.push(Step::Event { type_: "Normal", reason: "Suspended", message: "Job suspended".into() });
            }
        } else if ensure_condition(&mut conds, "Suspended", "False", "JobResumed", "Job resumed", now) {
            events.push(Step::Event { type_: "Normal", reason: "Resumed", message: "Job resumed".into() });
            start_time = json!(timestamp(now));
        }
    }
    if start_time.is_null() && !suspended {
        start_time = json!(timestamp(now));
    }
    // Failure and success criteria.
    let restarts: i64 = if job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure" {
        active
            .iter()
            .flat_map(|p| ["initContainerStatuses", "containerStatuses"].into_iter().filter_map(move |k| p["status"][k].as_array()).flatten())
            .filter_map(|c| c["restartCount"].as_i64())
            .sum()
    } else {
        0
    };
    let past_backoff_on_failure = restarts > 0 && (backoff_limit == 0 || restarts >= backoff_limit);
    let past_deadline = !suspended
        && int(&job["spec"]["activeDeadlineSeconds"])
            .zip(parse_time(&start_time))
            .is_some_and(|(ads, st)| now - st >= chrono::Duration::seconds(ads));
    if interim.is_none() {
        let failure = if let Some(m) = fail_job {
            Some(("PodFailurePolicy", m))
        } else if failed > backoff_limit || past_backoff_on_failure {
            Some(("BackoffLimitExceeded", MSG_BACKOFF.to_string()))
        } else if past_deadline {
            Some(("DeadlineExceeded", MSG_DEADLINE.to_string()))
        } else {
            None
        };
        let complete = match completions {
            _ if failure.is_some() => false,
            Some(c) => succeeded >= c,
            None => succeeded > 0 && active.is_empty(),
        };
        if let Some((reason, message)) = failure {
            let c = condition("FailureTarget", "True", reason, &message, now);
            conds.push(c.clone());
            interim = Some(c);
        } else if complete {
            let c = condition("SuccessCriteriaMet", "True", "CompletionsReached", MSG_COMPLETIONS, now);
            conds.push(c.clone());
            interim = Some(c);
        }
    }

    let mut completion_time = old["completionTime"].clone();
    if let Some(target) = &interim {
        // Finishing: no pod may keep running; the terminal condition waits for them to stop.
        for p in &active {
            steps.push(Step::Delete { pod: name(p).to_string(), uid: uid(p).to_string() });
        }
        if active.is_empty() && n_terminating == 0 {
            let reason = target["reason"].as_str().unwrap_or("");
            let message = target["message"].as_str().unwrap_or("");
            if target["type"] == "FailureTarget" {
                conds.push(condition("Failed", "True", reason, message, now));
                events.push(Step::Event { type_: "Warning", reason: static_reason(reason), message: message.to_string() });
            } else {
                conds.push(condition("Complete", "True", reason, message, now));
                completion_time = json!(timestamp(now));
                events.push(Step::Event { type_: "Normal", reason: "Completed", message: "Job completed".into() });
            }
        }
    } else if suspended {
        for p in &active {
            steps.push(Step::Delete { pod: name(p).to_string(), uid: uid(p).to_string() });
        }
    } else {
        // Pods that still occupy a slot.
        let occupying = active.len() as i64 + if replace_when == "Failed" { n_terminating } else { 0 };
        let last_success = succeeded_pods.iter().filter_map(|p| finish_time(p)).max();
        let failures: Vec<DateTime<Utc>> = failed_counted.iter().filter_map(|p| finish_time(p)).filter(|t| last_success.is_none_or(|s| *t > s)).collect();
        let wait = backoff_seconds(failures.len());
        let backing_off = failures.iter().max().is_some_and(|last| now < *last + chrono::Duration::seconds(wait));
        let mut to_delete: Vec<&Value> = Vec::new();
        let mut to_create: Vec<Option<i64>> = Vec::new();
        if indexed {
            let c = completions.unwrap_or(0);
            let mut seen: HashSet<i64> = HashSet::new();
            let mut sorted = active.clone();
            sorted.sort_by(|a, b| removal_order(b, a));
            for p in sorted {
                match pod_index(p) {
                    Some(i) if i < c && !completed.contains(&i) && seen.insert(i) => {}
                    _ => to_delete.push(p),
                }
            }
            let valid = occupying - to_delete.len() as i64;
            let want = parallelism.min(c - completed.len() as i64).max(0);
            let pending = (0..c).filter(|i| !completed.contains(i) && !seen.contains(i));
            let extra = (want - valid).max(0) as usize;
            to_create.extend(pending.take(extra.min(BURST)).map(Some));
        } else {
            let want = match completions {
                Some(c) => parallelism.min(c - succeeded).max(0),
                None if succeeded > 0 => occupying,
                None => parallelism,
            };
            if occupying > want {
                let mut sorted = active.clone();
                sorted.sort_by(removal_order);
                to_delete.extend(sorted.into_iter().take((occupying - want) as usize));
            } else {
                to_create.extend(std::iter::repeat_n(None, ((want - occupying) as usize).min(BURST)));
            }
        }
        for p in to_delete {
            steps.push(Step::Delete { pod: name(p).to_string(), uid: uid(p).to_string() });
        }
        if !backing_off {
            for idx in to_create {
                steps.push(Step::Create { pod: pod_from_template(job, idx) });
            }
        }
    }

    // Status, in Kubernetes' field order.
    let ready = active.iter().filter(|p| pod_ready(p)).count() as i64;
    let mut st = Map::new();
    if !conds.is_empty() {
        st.insert("conditions".into(), Value::Array(conds));
    }
    if !start_time.is_null() {
        st.insert("startTime".into(), start_time);
    }
    if !completion_time.is_null() {
        st.insert("completionTime".into(), completion_time);
    }
    // `active` reports the pods observed, as Kubernetes counts them before its own writes land.
    for (k, n) in [("active", active.len() as i64), ("succeeded", succeeded), ("failed", failed)] {
        if n > 0 {
            st.insert(k.into(), json!(n));
        }
    }
    st.insert("terminating".into(), json!(n_terminating));
    if indexed && !completed.is_empty() {
        st.insert("completedIndexes".into(), json!(format_indexes(&completed)));
    }
    st.insert("uncountedTerminatedPods".into(), json!({}));
    st.insert("ready".into(), json!(ready));
    let status = Value::Object(st);
    if status != *old {
        steps.push(Step::Status { status });
    }
    steps.extend(events);
    steps
}

fn static_reason(reason: &str) -> &'static str {
    match reason {
        "BackoffLimitExceeded" => "BackoffLimitExceeded",
        "DeadlineExceeded" => "DeadlineExceeded",
        "PodFailurePolicy" => "PodFailurePolicy",
        _ => "Failed",
    }
}

// ---- executor ----

/// Plans every Job in `objects` and carries out the steps.
pub(crate) async fn reconcile_all(api: &Api, objects: &[crate::store::Keyed], now: DateTime<Utc>) -> Result<(), ApiError> {
    let pods = by_namespace(objects, "core/pods");
    let none = Vec::new();
    for (ns, jobs) in by_namespace(objects, "batch/jobs") {
        let pods = pods.get(ns).unwrap_or(&none);
        for job in jobs {
            let steps = plan(job, pods, now);
            if steps.is_empty() {
                continue;
            }
            if let Err(e) = execute(api, job, steps).await {
                tracing::warn!(error = %e, job = name(job), namespace = ns, "job sync failed");
            }
        }
    }
    Ok(())
}

async fn execute(api: &Api, job: &Value, steps: Vec<Step>) -> Result<(), ApiError> {
    let jobs = info("batch", "jobs");
    let ns = job["metadata"]["namespace"].as_str().unwrap_or("default");
    let job_uid = uid(job).to_string();
    for step in steps {
        match step {
            Step::SetSelector { selector, labels } => {
                let r = api
                    .modify(jobs, Some(ns), name(job), &|cur| {
                        if cur["metadata"]["uid"].as_str() != Some(job_uid.as_str()) {
                            return None;
                        }
                        let mut new = cur.clone();
                        new["spec"]["selector"] = selector.clone();
                        if !new["spec"]["template"]["metadata"].is_object() {
                            new["spec"]["template"]["metadata"] = json!({});
                        }
                        new["spec"]["template"]["metadata"]["labels"] = labels.clone();
                        Some(new)
                    })
                    .await;
                ignore_transient(r)?;
            }
            Step::Create { pod } => {
                if let Err(e) = create_pod(api, job, ns, pod, COMPONENT).await {
                    api.record_event(job, "Warning", "FailedCreate", &format!("Error creating: {}", e.message), COMPONENT).await;
                    break;
                }
            }
            Step::Delete { pod, uid } => delete_pod(api, job, ns, &pod, uid, COMPONENT).await,
            Step::Status { status } => write_status(api, jobs, job, status).await?,
            // Events come from transitions of the Job's status, so a plan repeats none.
            Step::Event { type_, reason, message } => api.record_event(job, type_, reason, &message, COMPONENT).await,
            Step::DeleteJob => {
                let opts = DeleteOptions { uid: Some(job_uid.clone()), propagation: Some("Foreground".into()), ..Default::default() };
                ignore_transient(api.delete(jobs, Some(ns), name(job), &opts).await)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::objects::t;

    /// A Job with its selector already generated.
    fn job(spec: Value) -> Value {
        let mut j = json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default", "uid": "job-uid", "creationTimestamp": timestamp(t(0))},
            "spec": {
                "parallelism": 1, "backoffLimit": 6, "completionMode": "NonIndexed", "suspend": false,
                "selector": {"matchLabels": {CONTROLLER_UID: "job-uid"}},
                "template": {
                    "metadata": {"labels": {CONTROLLER_UID: "job-uid", JOB_NAME: "pi", LEGACY_CONTROLLER_UID: "job-uid", LEGACY_JOB_NAME: "pi"}},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "hello.wasm"}]},
                },
            },
            "status": {"startTime": timestamp(t(0))},
        });
        if let (Some(dst), Some(src)) = (j["spec"].as_object_mut(), spec.as_object()) {
            for (k, v) in src {
                dst.insert(k.clone(), v.clone());
            }
        }
        j
    }

    /// A pod of the Job: phase, finish time (seconds) and exit code for finished pods.
    fn pod(name: &str, phase: &str, finished: i64, exit: i64) -> Value {
        let mut p = json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid"), "creationTimestamp": timestamp(t(0)),
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "pi", "uid": "job-uid", "controller": true}]},
            "spec": {"nodeName": "n1"},
            "status": {"phase": phase},
        });
        if matches!(phase, "Succeeded" | "Failed") {
            p["status"]["containerStatuses"] = json!([{"name": "main", "state": {"terminated": {"exitCode": exit, "finishedAt": timestamp(t(finished))}}}]);
        }
        p
    }

    fn indexed_pod(i: i64, phase: &str) -> Value {
        let mut p = pod(&format!("pi-{i}-abcde"), phase, 0, 0);
        p["metadata"]["annotations"] = json!({COMPLETION_INDEX: i.to_string()});
        p
    }

    fn creates(steps: &[Step]) -> Vec<&Value> {
        steps.iter().filter_map(|s| if let Step::Create { pod } = s { Some(pod) } else { None }).collect()
    }

    fn deletes(steps: &[Step]) -> Vec<&str> {
        steps.iter().filter_map(|s| if let Step::Delete { pod, .. } = s { Some(pod.as_str()) } else { None }).collect()
    }

    fn status(steps: &[Step]) -> Value {
        steps.iter().find_map(|s| if let Step::Status { status } = s { Some(status.clone()) } else { None }).unwrap_or(Value::Null)
    }

    fn events(steps: &[Step]) -> Vec<(&str, &str)> {
        steps.iter().filter_map(|s| if let Step::Event { reason, message, .. } = s { Some((*reason, message.as_str())) } else { None }).collect()
    }

    /// (type, reason) of the status's True conditions.
    fn conds(st: &Value) -> Vec<(String, String)> {
        st["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["status"] == "True")
            .map(|c| (c["type"].as_str().unwrap_or("").to_string(), c["reason"].as_str().unwrap_or("").to_string()))
            .collect()
    }

    fn refs(ps: &[Value]) -> Vec<&Value> {
        ps.iter().collect()
    }

    #[test]
    fn generates_selector_and_labels_as_kubernetes() {
        let mut j = job(json!({}));
        j["spec"].as_object_mut().map(|s| s.remove("selector"));
        j["spec"]["template"]["metadata"]["labels"] = json!({"app": "x"});
        let steps = plan(&j, &[], t(0));
        assert_eq!(
            steps,
            vec![Step::SetSelector {
                selector: json!({"matchLabels": {CONTROLLER_UID: "job-uid"}}),
                labels: json!({"app": "x", CONTROLLER_UID: "job-uid", JOB_NAME: "pi", LEGACY_CONTROLLER_UID: "job-uid", LEGACY_JOB_NAME: "pi"}),
            }]
        );
        // manualSelector: the user's selector and labels are used as they are.
        j["spec"]["manualSelector"] = json!(true);
        j["spec"]["selector"] = json!({"matchLabels": {"app": "x"}});
        assert!(!plan(&j, &[], t(0)).iter().any(|s| matches!(s, Step::SetSelector { .. })));
    }

    #[test]
    fn completions_and_parallelism() {
        // (completions, parallelism, succeeded pods, running pods) -> pods to create
        let cases: &[(Option<i64>, i64, usize, usize, usize)] = &[
            (Some(5), 2, 0, 0, 2),
            (Some(5), 2, 0, 1, 1),
            (Some(5), 2, 4, 0, 1),
            (Some(5), 10, 2, 0, 3),
            (Some(3), 2, 2, 1, 0),
            (None, 3, 0, 0, 3),
            (None, 3, 1, 1, 0),
        ];
        for &(completions, parallelism, ok, running, want) in cases {
            let mut pods: Vec<Value> = (0..ok).map(|i| pod(&format!("ok{i}"), "Succeeded", 1, 0)).collect();
            pods.extend((0..running).map(|i| pod(&format!("run{i}"), "Running", 0, 0)));
            let j = job(json!({"completions": completions, "parallelism": parallelism}));
            let steps = plan(&j, &refs(&pods), t(5));
            assert_eq!(creates(&steps).len(), want, "{completions:?} {parallelism} {ok} {running}");
            assert_eq!(status(&steps)["succeeded"].as_u64().unwrap_or(0), ok as u64);
        }
        // Lowering parallelism deletes the excess, not-ready pods first.
        let mut ready = pod("ready", "Running", 0, 0);
        ready["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
        let pods = [ready, pod("slow", "Running", 0, 0)];
        let steps = plan(&job(json!({"completions": 5, "parallelism": 1})), &refs(&pods), t(5));
        assert_eq!(deletes(&steps), vec!["slow"]);
        assert_eq!(status(&steps)["ready"], 1);
    }

    #[test]
    fn created_pod_is_owned_and_labeled() {
        let steps = plan(&job(json!({"completions": 1})), &[], t(0));
        let p = creates(&steps)[0];
        assert_eq!(p["metadata"]["generateName"], "pi-");
        assert_eq!(p["metadata"]["labels"][JOB_NAME], "pi");
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Job");
        assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(p["spec"]["restartPolicy"], "Never");
    }

    #[test]
    fn completes_with_both_conditions_and_completion_time() {
        let pods = [pod("a", "Succeeded", 3, 0), pod("b", "Succeeded", 4, 0)];
        let steps = plan(&job(json!({"completions": 2, "parallelism": 2})), &refs(&pods), t(9));
        let st = status(&steps);
        assert_eq!(conds(&st), vec![("SuccessCriteriaMet".into(), "CompletionsReached".into()), ("Complete".into(), "CompletionsReached".into())]);
        assert_eq!(st["conditions"][1]["message"], MSG_COMPLETIONS);
        assert_eq!(st["completionTime"], timestamp(t(9)));
        assert_eq!(st["succeeded"], 2);
        assert_eq!(st["uncountedTerminatedPods"], json!({}));
        assert_eq!(events(&steps), vec![("Completed", "Job completed")]);
        // Once finished, nothing more happens (the pods are kept).
        let mut done = job(json!({"completions": 2, "parallelism": 2}));
        done["status"] = st;
        assert!(plan(&done, &refs(&pods), t(100)).is_empty());
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_to_six_minutes() {
        let table = [(0, 0), (1, 10), (2, 20), (3, 40), (4, 80), (5, 160), (6, 320), (7, 360), (30, 360)];
        for (failures, secs) in table {
            assert_eq!(backoff_seconds(failures), secs, "{failures}");
        }
        let j = job(json!({"completions": 1}));
        let one = [pod("f1", "Failed", 100, 1)];
        assert!(creates(&plan(&j, &refs(&one), t(109))).is_empty());
        assert_eq!(creates(&plan(&j, &refs(&one), t(110))).len(), 1);
        let two = [pod("f1", "Failed", 100, 1), pod("f2", "Failed", 130, 1)];
        assert!(creates(&plan(&j, &refs(&two), t(149))).is_empty());
        assert_eq!(creates(&plan(&j, &refs(&two), t(150))).len(), 1);
        // A success resets the count: only failures after it back off.
        let mut reset = two.to_vec();
        reset.push(pod("ok", "Succeeded", 140, 0));
        let j5 = job(json!({"completions": 5}));
        assert_eq!(creates(&plan(&j5, &refs(&reset), t(141))).len(), 1);
    }

    #[test]
    fn backoff_limit_fails_the_job_after_pods_stop() {
        let j = job(json!({"completions": 1, "backoffLimit": 1}));
        let pods = [pod("f1", "Failed", 1, 3), pod("f2", "Failed", 20, 3)];
        let steps = plan(&j, &refs(&pods), t(30));
        let st = status(&steps);
        assert_eq!(conds(&st), vec![("FailureTarget".into(), "BackoffLimitExceeded".into()), ("Failed".into(), "BackoffLimitExceeded".into())]);
        assert_eq!(st["failed"], 2);
        assert!(st["completionTime"].is_null());
        assert_eq!(events(&steps), vec![("BackoffLimitExceeded", MSG_BACKOFF)]);
        assert!(creates(&steps).is_empty());
        // With a pod still running: FailureTarget now, the pod deleted, Failed later.
        let pods = [pod("f1", "Failed", 1, 3), pod("f2", "Failed", 20, 3), pod("run", "Running", 0, 0)];
        let steps = plan(&j, &refs(&pods), t(30));
        assert_eq!(conds(&status(&steps)), vec![("FailureTarget".into(), "BackoffLimitExceeded".into())]);
        assert_eq!(deletes(&steps), vec!["run"]);
        // Within the limit the Job goes on.
        let steps = plan(&j, &refs(&pods[..1]), t(30));
        assert!(conds(&status(&steps)).is_empty());
    }

    #[test]
    fn indexed_creates_pending_indexes_with_env() {
        let j = job(json!({"completions": 3, "parallelism": 2, "completionMode": "Indexed"}));
        let pods = [indexed_pod(0, "Succeeded")];
        let steps = plan(&j, &refs(&pods), t(5));
        let made = creates(&steps);
        assert_eq!(made.len(), 2);
        for (p, i) in made.iter().zip([1, 2]) {
            assert_eq!(p["metadata"]["generateName"], format!("pi-{i}-"));
            assert_eq!(p["metadata"]["annotations"][COMPLETION_INDEX], i.to_string());
            assert_eq!(p["metadata"]["labels"][COMPLETION_INDEX], i.to_string());
            assert_eq!(p["spec"]["hostname"], format!("pi-{i}"));
            assert_eq!(
                p["spec"]["containers"][0]["env"],
                json!([{"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}])
            );
        }
        assert_eq!(status(&steps)["completedIndexes"], "0");
        // A duplicate of a running index is deleted; a finished index is not rerun.
        let pods = [indexed_pod(0, "Succeeded"), indexed_pod(1, "Running"), indexed_pod(1, "Running"), indexed_pod(2, "Succeeded")];
        let steps = plan(&j, &refs(&pods), t(5));
        assert_eq!(deletes(&steps).len(), 1);
        assert!(creates(&steps).is_empty());
        assert_eq!(status(&steps)["completedIndexes"], "0,2");
        // All indexes done: complete.
        let pods = [indexed_pod(0, "Succeeded"), indexed_pod(1, "Succeeded"), indexed_pod(2, "Succeeded")];
        let st = status(&plan(&j, &refs(&pods), t(5)));
        assert_eq!(st["completedIndexes"], "0-2");
        assert!(conds(&st).contains(&("Complete".into(), "CompletionsReached".into())));
    }

    #[test]
    fn index_sets_format_and_parse() {
        let set: BTreeSet<i64> = [0, 1, 2, 4, 6, 7].into_iter().collect();
        assert_eq!(format_indexes(&set), "0-2,4,6-7");
        assert_eq!(parse_indexes("0-2,4,6-7"), set);
        assert!(parse_indexes("").is_empty());
    }

    #[test]
    fn pod_failure_policy_fail_job_ignore_count() {
        let policy = json!({"rules": [
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}},
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [0]}},
        ]});
        let j = job(json!({"completions": 1, "backoffLimit": 3, "podFailurePolicy": policy}));
        let steps = plan(&j, &refs(&[pod("f", "Failed", 1, 42)]), t(5));
        let st = status(&steps);
        assert_eq!(conds(&st), vec![("FailureTarget".into(), "PodFailurePolicy".into()), ("Failed".into(), "PodFailurePolicy".into())]);
        assert_eq!(st["conditions"][1]["message"], "Container main for pod default/f failed with exit code 42 matching FailJob rule at index 0");
        // Ignored failures neither count nor back off.
        let steps = plan(&j, &refs(&[pod("f", "Failed", 1, 3)]), t(2));
        assert!(status(&steps).get("failed").is_none());
        assert_eq!(creates(&steps).len(), 1);
        // Counted failures do.
        let steps = plan(&j, &refs(&[pod("f", "Failed", 1, 7)]), t(2));
        assert_eq!(status(&steps)["failed"], 1);
        assert!(creates(&steps).is_empty());
    }

    #[test]
    fn active_deadline_fails_with_deadline_exceeded() {
        let j = job(json!({"completions": 1, "activeDeadlineSeconds": 30}));
        let pods = [pod("run", "Running", 0, 0)];
        assert!(conds(&status(&plan(&j, &refs(&pods), t(29)))).is_empty());
        let steps = plan(&j, &refs(&pods), t(30));
        assert_eq!(conds(&status(&steps)), vec![("FailureTarget".into(), "DeadlineExceeded".into())]);
        assert_eq!(deletes(&steps), vec!["run"]);
        let mut deleted = pods[0].clone();
        deleted["metadata"]["deletionTimestamp"] = json!(timestamp(t(30)));
        let mut j2 = j.clone();
        j2["status"] = status(&steps);
        // Still terminating: wait.
        assert!(plan(&j2, &refs(&[deleted]), t(31)).iter().all(|s| matches!(s, Step::Status { .. })));
        let steps = plan(&j2, &[], t(32));
        assert!(conds(&status(&steps)).contains(&("Failed".into(), "DeadlineExceeded".into())));
        assert_eq!(events(&steps), vec![("DeadlineExceeded", MSG_DEADLINE)]);
    }

    #[test]
    fn suspend_and_resume() {
        let mut j = job(json!({"completions": 2, "suspend": true}));
        let pods = [pod("run", "Running", 0, 0)];
        let steps = plan(&j, &refs(&pods), t(10));
        assert_eq!(deletes(&steps), vec!["run"]);
        assert!(creates(&steps).is_empty());
        let st = status(&steps);
        assert_eq!(conds(&st), vec![("Suspended".into(), "JobSuspended".into())]);
        assert_eq!(events(&steps), vec![("Suspended", "Job suspended")]);
        j["status"] = st;
        j["spec"]["suspend"] = json!(false);
        let steps = plan(&j, &[], t(50));
        let st = status(&steps);
        assert_eq!(st["conditions"][0]["status"], "False");
        assert_eq!(st["conditions"][0]["reason"], "JobResumed");
        assert_eq!(st["startTime"], timestamp(t(50)));
        assert_eq!(creates(&steps).len(), 1);
        // A Job created suspended has no startTime.
        let mut fresh = job(json!({"suspend": true}));
        fresh["status"] = Value::Null;
        assert!(status(&plan(&fresh, &[], t(1))).get("startTime").is_none());
    }

    #[test]
    fn ttl_after_finished_deletes_the_job() {
        let mut j = job(json!({"completions": 1, "ttlSecondsAfterFinished": 10}));
        j["status"] = json!({"completionTime": timestamp(t(100)), "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": timestamp(t(100))}]});
        assert!(plan(&j, &[], t(109)).is_empty());
        assert_eq!(plan(&j, &[], t(110)), vec![Step::DeleteJob]);
    }

    #[test]
    fn steady_state_plans_nothing() {
        let j = job(json!({"completions": 2}));
        let pods = [pod("run", "Running", 0, 0)];
        let mut j2 = j.clone();
        j2["status"] = status(&plan(&j, &refs(&pods), t(1)));
        let steps = plan(&j2, &refs(&pods), t(2));
        assert!(steps.is_empty(), "{steps:?}");
    }
}
