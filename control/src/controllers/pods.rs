//! Pods as workload controllers see them: their state (active, finished, ready,
//! available), the metadata of a pod made from an owner's template, and creating and
//! deleting an owner's pods with the events Kubernetes records for them.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::objects::{controller_write_options, deleting, info, name, parse_time};
use crate::apiserver::Api;
use crate::apiserver::error::ApiError;
use crate::apiserver::service::DeleteOptions;

/// Succeeded or Failed.
pub(crate) fn pod_terminal(p: &Value) -> bool {
    matches!(p["status"]["phase"].as_str(), Some("Succeeded") | Some("Failed"))
}

/// Neither terminating nor finished.
pub(crate) fn pod_active(p: &Value) -> bool {
    !deleting(p) && !pod_terminal(p)
}

/// The pod's Ready condition, if True: its lastTransitionTime (None if missing).
pub(crate) fn ready_since(p: &Value) -> Option<Option<DateTime<Utc>>> {
    let c = p["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")?;
    (c["status"] == "True").then(|| parse_time(&c["lastTransitionTime"]))
}

pub(crate) fn pod_ready(p: &Value) -> bool {
    ready_since(p).is_some()
}

/// Ready for at least `min_ready_seconds` at `now`.
pub(crate) fn pod_available(p: &Value, min_ready_seconds: i64, now: DateTime<Utc>) -> bool {
    match ready_since(p) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(t)) => t + chrono::Duration::seconds(min_ready_seconds) <= now,
    }
}

/// The metadata of a pod made from `template`: `meta` (the name or generateName and
/// namespace the caller chose, and labels if it sets them) plus the template's labels,
/// annotations and finalizers that `meta` does not set, and `owner_ref` as the only
/// ownerReference. Keys keep this order.
pub(crate) fn template_metadata(mut meta: Value, template: &Value, owner_ref: Value) -> Value {
    for k in ["labels", "annotations", "finalizers"] {
        if meta.get(k).is_some() {
            continue;
        }
        if let Some(v) = template["metadata"].get(k).filter(|v| !v.is_null()) {
            meta[k] = v.clone();
        }
    }
    meta["ownerReferences"] = json!([owner_ref]);
    meta
}

/// Creates `pod` for `owner`, recording SuccessfulCreate on the owner; a failure is the
/// caller's to report.
pub(crate) async fn create_pod(api: &Api, owner: &Value, ns: &str, pod: Value, component: &str) -> Result<(), ApiError> {
    let w = api.create(info("", "pods"), Some(ns), pod, &controller_write_options()).await?;
    api.record_event(owner, "Normal", "SuccessfulCreate", &format!("Created pod: {}", name(&w.object)), component).await;
    Ok(())
}

/// Deletes `owner`'s pod `pod` gracefully if it is still the one with `pod_uid`, recording
/// SuccessfulDelete, or FailedDelete unless the pod changed or went away.
pub(crate) async fn delete_pod(api: &Api, owner: &Value, ns: &str, pod: &str, pod_uid: String, component: &str) {
    let opts = DeleteOptions { uid: Some(pod_uid), ..Default::default() };
    match api.delete(info("", "pods"), Some(ns), pod, &opts).await {
        Ok(_) => api.record_event(owner, "Normal", "SuccessfulDelete", &format!("Deleted pod: {pod}"), component).await,
        Err(e) if e.is_transient() => {}
        Err(e) => api.record_event(owner, "Warning", "FailedDelete", &format!("Error deleting: {}", e.message), component).await,
    }
}
