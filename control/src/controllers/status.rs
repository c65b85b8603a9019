//! Status: building an object's `status` as Kubernetes serializes it (zero counts
//! omitted, conditions set as its helpers set them) and writing it back.
//!
//! A status is always computed from the objects observed in the pass and written whole;
//! the write is skipped when the stored object already has it or was replaced.

use serde_json::{Value, json};

use super::objects::{ignore_transient, name, uid};
use crate::apiserver::Api;
use crate::apiserver::error::ApiError;
use crate::apiserver::resources::ResourceInfo;

/// The stored status as an object to edit (`{}` when missing).
pub(crate) fn current(v: &Value) -> Value {
    match &v["status"] {
        Value::Object(o) => Value::Object(o.clone()),
        _ => json!({}),
    }
}

/// Sets `status[k] = n`, or removes it when zero (Kubernetes' omitempty) unless `keep_zero`.
pub(crate) fn set_count(status: &mut Value, k: &str, n: usize, keep_zero: bool) {
    if n == 0 && !keep_zero {
        if let Some(o) = status.as_object_mut() {
            o.remove(k);
        }
    } else {
        status[k] = json!(n);
    }
}

/// Sets condition `cond` (by type) in `conds` as Kubernetes does: unchanged status and
/// reason keep the old condition (returns false); otherwise the old one is replaced by
/// `cond` appended at the end, keeping lastTransitionTime when the status is the same.
pub(crate) fn set_condition(conds: &mut Vec<Value>, mut cond: Value) -> bool {
    if let Some(i) = conds.iter().position(|c| c["type"] == cond["type"]) {
        let old = conds.remove(i);
        if old["status"] == cond["status"] && old["reason"] == cond["reason"] {
            conds.insert(i, old);
            return false;
        }
        if old["status"] == cond["status"] {
            cond["lastTransitionTime"] = old["lastTransitionTime"].clone();
        }
    }
    conds.push(cond);
    true
}

/// A True condition of `type_` on the object, if any.
pub(crate) fn true_condition<'a>(v: &'a Value, type_: &str) -> Option<&'a Value> {
    v["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_ && c["status"] == "True")
}

/// "Complete" or "Failed" once the Job has finished (Kubernetes' IsJobFinished).
pub(crate) fn job_finished(job: &Value) -> Option<&'static str> {
    if true_condition(job, "Complete").is_some() {
        Some("Complete")
    } else if true_condition(job, "Failed").is_some() {
        Some("Failed")
    } else {
        None
    }
}

/// Writes `status` into the object unless it already has it (or was replaced).
pub(crate) async fn write_status(api: &Api, info: &ResourceInfo, owner: &Value, status: Value) -> Result<(), ApiError> {
    let ns = owner["metadata"]["namespace"].as_str().unwrap_or("default");
    let owner_uid = uid(owner).to_string();
    let r = api
        .modify(info, Some(ns), name(owner), &|cur| {
            if uid(cur) != owner_uid || cur["status"] == status {
                return None;
            }
            let mut new = cur.clone();
            new["status"] = status.clone();
            Some(new)
        })
        .await;
    ignore_transient(r)
}
