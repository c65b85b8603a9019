//! The API objects a controller pass reads and writes, as JSON: metadata accessors, the
//! pass's snapshot grouped by namespace, resource lookup, the write options every
//! controller writes with, and the one rule for write errors a later pass resolves.
//!
//! Accessors never fail: a missing field reads as its zero value ("" for strings, 0 for
//! numbers), as Kubernetes' Go structs do.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use flotilla_api::selector::LabelSelector;
use serde_json::{Map, Value};

use crate::apiserver::error::ApiError;
use crate::apiserver::resources::{self, ResourceInfo};
/// RFC 3339 with seconds, as Kubernetes serializes metav1.Time.
pub(crate) use crate::apiserver::service::timestamp;
use crate::apiserver::service::WriteOptions;

pub(crate) fn name(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or("")
}

pub(crate) fn uid(v: &Value) -> &str {
    v["metadata"]["uid"].as_str().unwrap_or("")
}

/// Has a deletionTimestamp (terminating, or held by finalizers).
pub(crate) fn deleting(v: &Value) -> bool {
    !v["metadata"]["deletionTimestamp"].is_null()
}

pub(crate) fn generation(v: &Value) -> i64 {
    v["metadata"]["generation"].as_i64().unwrap_or(0)
}

pub(crate) fn labels(v: &Value) -> Option<&Map<String, Value>> {
    v["metadata"]["labels"].as_object()
}

/// The object's label selector; None when missing or unparsable (such objects are skipped).
pub(crate) fn selector(v: &Value) -> Option<LabelSelector> {
    let s = LabelSelector::from_label_selector_json(&v["spec"]["selector"]).ok()?;
    (!s.is_nothing()).then_some(s)
}

pub(crate) fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.with_timezone(&Utc))
}


/// An IntOrString such as maxSurge against `total`: a number as is, a percentage of
/// `total` rounded up or down, anything else 0.
pub(crate) fn scaled(v: &Value, total: i64, round_up: bool) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => {
            let Some(p) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
                return s.parse().unwrap_or(0);
            };
            let x = p * total;
            if round_up { (x + 99).div_euclid(100) } else { x.div_euclid(100) }
        }
        _ => 0,
    }
}

/// Every value under `store_prefix` in `objects` ("apps/replicasets", "core/pods"…),
/// grouped by namespace.
pub(crate) fn by_namespace<'a>(objects: &'a [crate::store::Keyed], store_prefix: &str) -> HashMap<&'a str, Vec<&'a Value>> {
    let prefix = format!("{store_prefix}/");
    let mut out: HashMap<&str, Vec<&Value>> = HashMap::new();
    for (k, s) in objects {
        if let Some(rest) = k.strip_prefix(&prefix)
            && let Some((ns, _)) = rest.split_once('/')
        {
            out.entry(ns).or_default().push(&s.value);
        }
    }
    out
}

/// Resource and (namespace, name) of a storage key like "apps/deployments/ns/name".
pub(crate) fn parse_key(key: &str) -> Option<(&'static ResourceInfo, Option<&str>, &str)> {
    let mut it = key.splitn(4, '/');
    let group = it.next()?;
    let plural = it.next()?;
    let group = if group == "core" { "" } else { group };
    let info = resources::RESOURCES.iter().find(|r| r.group == group && r.plural == plural)?;
    let a = it.next()?;
    match it.next() {
        Some(name) if info.namespaced => Some((info, Some(a), name)),
        None if !info.namespaced => Some((info, None, a)),
        _ => None,
    }
}

/// [`info`] for a resource served at another version than v1.
pub(crate) fn info_in(group: &str, version: &str, plural: &str) -> &'static ResourceInfo {
    resources::find(group, version, plural).expect("resource served")
}

pub(crate) fn info(group: &str, plural: &str) -> &'static ResourceInfo {
    // Both are in the static registry; a missing one is a programming error caught by tests.
    resources::find(group, "v1", plural).expect("resource served")
}

pub(crate) fn controller_write_options() -> WriteOptions {
    WriteOptions { field_manager: "kube-controller-manager".into(), ..Default::default() }
}

/// `r` with a transient error ([`ApiError::is_transient`]: the object changed or went
/// away) taken as success: the next pass re-plans from what is stored then.
#[allow(clippy::result_large_err, reason = "returns the ApiError every controller write returns")]
pub(crate) fn ignore_transient<T>(r: Result<T, ApiError>) -> Result<(), ApiError> {
    match r {
        Err(e) if !e.is_transient() => Err(e),
        _ => Ok(()),
    }
}

/// The controllers' tests' clock: `s` seconds after 2026-01-01T00:00:00Z.
#[cfg(test)]
pub(crate) fn t(s: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").map(|t| t.with_timezone(&Utc)).expect("time") + chrono::Duration::seconds(s)
}
