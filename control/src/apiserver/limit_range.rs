//! LimitRange admission (kube-apiserver's LimitRanger plugin), on Pod creates: the
//! namespace's LimitRanges give containers their default limits and requests, then check
//! min, max and maxLimitRequestRatio per Container and per Pod.
//!
//! Invariants: pure (the namespace's LimitRanges come in); a default only fills a resource
//! the container leaves unset; defaults are recorded in the pod's
//! `kubernetes.io/limit-ranger` annotation as Kubernetes words it; every violation is
//! reported, in Kubernetes' wording, as one 403 (the API server wraps them as
//! `pods "NAME" is forbidden: …`).

use std::collections::BTreeSet;

use flotilla_api::quantity;
use serde_json::{Map, Value, json};

/// The annotation recording what LimitRanger set.
pub(crate) const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// Kubernetes' defaulting of a LimitRange item of type Container: a max without a default
/// becomes the default limit, a default limit without a default request becomes the
/// default request, and a min without a default request becomes the default request.
pub(crate) fn default_item(item: &mut Value) {
    if item["type"] != "Container" {
        return;
    }
    let get = |item: &Value, k: &str| item[k].as_object().cloned().unwrap_or_default();
    let (max, min) = (get(item, "max"), get(item, "min"));
    let mut default = get(item, "default");
    for (k, v) in &max {
        default.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let mut default_request = get(item, "defaultRequest");
    for (k, v) in default.iter().chain(min.iter()) {
        default_request.entry(k.clone()).or_insert_with(|| v.clone());
    }
    if !default.is_empty() {
        item["default"] = Value::Object(default);
    }
    if !default_request.is_empty() {
        item["defaultRequest"] = Value::Object(default_request);
    }
}

use quantity::from_json as value;

fn text(q: &Value) -> String {
    match q {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Fills `pod`'s containers' unset limits and requests from the LimitRanges' defaults and
/// records what it set in the annotation. Returns whether anything changed.
pub(crate) fn apply_defaults(ranges: &[&Value], pod: &mut Value) -> bool {
    let mut default_limits = Map::new();
    let mut default_requests = Map::new();
    for r in ranges {
        for item in r["spec"]["limits"].as_array().into_iter().flatten() {
            if item["type"] != "Container" {
                continue;
            }
            let mut item = item.clone();
            default_item(&mut item);
            for (k, v) in item["default"].as_object().into_iter().flatten() {
                default_limits.entry(k.clone()).or_insert_with(|| v.clone());
            }
            for (k, v) in item["defaultRequest"].as_object().into_iter().flatten() {
                default_requests.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    if default_limits.is_empty() && default_requests.is_empty() {
        return false;
    }
    let mut notes = Vec::new();
    for list in ["containers", "initContainers"] {
        for c in pod["spec"][list].as_array_mut().into_iter().flatten() {
            let name = c["name"].as_str().unwrap_or("").to_string();
            if !c["resources"].is_object() {
                c["resources"] = json!({});
            }
            let mut set = |field: &str, defaults: &Map<String, Value>, what: &str| {
                let mut added = BTreeSet::new();
                let res = &mut c["resources"];
                if !res[field].is_object() {
                    res[field] = json!({});
                }
                let present = res[field].as_object_mut().expect("object");
                for (k, v) in defaults {
                    if !present.contains_key(k) {
                        present.insert(k.clone(), v.clone());
                        added.insert(k.clone());
                    }
                }
                if present.is_empty() {
                    res.as_object_mut().expect("object").remove(field);
                }
                if !added.is_empty() {
                    notes.push(format!("{} {what} for {} {name}", added.into_iter().collect::<Vec<_>>().join(", "), if list == "containers" { "container" } else { "init container" }));
                }
            };
            set("requests", &default_requests, "request");
            set("limits", &default_limits, "limit");
        }
    }
    if notes.is_empty() {
        return false;
    }
    let meta = &mut pod["metadata"];
    if !meta["annotations"].is_object() {
        meta["annotations"] = json!({});
    }
    meta["annotations"][ANNOTATION] = json!(format!("LimitRanger plugin set: {}", notes.join("; ")));
    true
}

/// One kind's view of the pod: per-container request/limit lists, or the pod's sums.
fn check_item(kind: &str, item: &Value, units: &[(&Map<String, Value>, &Map<String, Value>)], errors: &mut Vec<String>) {
    let empty = Map::new();
    for (k, min) in item["min"].as_object().unwrap_or(&empty) {
        let Some(min_v) = value(min) else { continue };
        for (requests, limits) in units {
            // One error per constraint, the first that fails (as Kubernetes reports them).
            match (requests.get(k).and_then(value), limits.get(k).and_then(value)) {
                (None, _) => errors.push(format!("minimum {k} usage per {kind} is {}.  No request is specified", text(min))),
                (Some(r), _) if r < min_v => errors.push(format!("minimum {k} usage per {kind} is {}, but request is {}", text(min), text(&requests[k]))),
                (_, Some(l)) if l < min_v => errors.push(format!("minimum {k} usage per {kind} is {}, but limit is {}", text(min), text(&limits[k]))),
                _ => {}
            }
        }
    }
    for (k, max) in item["max"].as_object().unwrap_or(&empty) {
        let Some(max_v) = value(max) else { continue };
        for (requests, limits) in units {
            match (limits.get(k).and_then(value), requests.get(k).and_then(value)) {
                (None, _) => errors.push(format!("maximum {k} usage per {kind} is {}.  No limit is specified", text(max))),
                (Some(l), _) if l > max_v => errors.push(format!("maximum {k} usage per {kind} is {}, but limit is {}", text(max), text(&limits[k]))),
                (_, Some(r)) if r > max_v => errors.push(format!("maximum {k} usage per {kind} is {}, but request is {}", text(max), text(&requests[k]))),
                _ => {}
            }
        }
    }
    for (k, ratio) in item["maxLimitRequestRatio"].as_object().unwrap_or(&empty) {
        let Some(ratio_v) = value(ratio) else { continue };
        for (requests, limits) in units {
            let (r, l) = (requests.get(k).and_then(value).unwrap_or(0.0), limits.get(k).and_then(value).unwrap_or(0.0));
            if l <= 0.0 {
                continue;
            }
            if r <= 0.0 {
                errors.push(format!("{k} max limit to request ratio per {kind} is {}, but no request is specified or request is 0", text(ratio)));
            } else if l / r > ratio_v {
                errors.push(format!("{k} max limit to request ratio per {kind} is {}, but provided ratio is {:.6}", text(ratio), l / r));
            }
        }
    }
}

/// Sums of the containers' lists (app containers only, as LimitRanger's Pod type does,
/// plus init containers where they ask for more).
fn pod_sums(pod: &Value, field: &str) -> Map<String, Value> {
    let mut sums: std::collections::BTreeMap<String, f64> = Default::default();
    for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
        for (k, q) in c["resources"][field].as_object().into_iter().flatten() {
            *sums.entry(k.clone()).or_default() += value(q).unwrap_or(0.0);
        }
    }
    for c in pod["spec"]["initContainers"].as_array().into_iter().flatten() {
        for (k, q) in c["resources"][field].as_object().into_iter().flatten() {
            let v = value(q).unwrap_or(0.0);
            let e = sums.entry(k.clone()).or_default();
            *e = e.max(v);
        }
    }
    sums.into_iter().map(|(k, v)| (k.clone(), json!(crate::apiserver::quota::format(&k, v)))).collect()
}

/// Violations of the LimitRanges by `pod` (after defaults), in Kubernetes' wording.
pub(crate) fn violations(ranges: &[&Value], pod: &Value) -> Vec<String> {
    let empty = Map::new();
    let mut errors = Vec::new();
    let containers: Vec<(&Map<String, Value>, &Map<String, Value>)> = ["containers", "initContainers"]
        .iter()
        .flat_map(|l| pod["spec"][*l].as_array().into_iter().flatten())
        .map(|c| (c["resources"]["requests"].as_object().unwrap_or(&empty), c["resources"]["limits"].as_object().unwrap_or(&empty)))
        .collect();
    let (requests, limits) = (pod_sums(pod, "requests"), pod_sums(pod, "limits"));
    for r in ranges {
        for item in r["spec"]["limits"].as_array().into_iter().flatten() {
            match item["type"].as_str() {
                Some("Container") => {
                    let mut item = item.clone();
                    default_item(&mut item);
                    check_item("Container", &item, &containers, &mut errors);
                }
                Some("Pod") => check_item("Pod", item, &[(&requests, &limits)], &mut errors),
                _ => {}
            }
        }
    }
    errors
}

/// Kubernetes' aggregate of errors: one as is, several as `[a, b]`.
pub(crate) fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(limits: Value) -> Value {
        json!({"spec": {"limits": limits}})
    }

    fn pod(resources: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "main", "resources": resources}]}})
    }

    #[test]
    fn defaults_fill_only_what_is_unset_and_are_annotated() {
        let r = range(json!([{"type": "Container", "default": {"cpu": "500m", "memory": "128Mi"}, "defaultRequest": {"cpu": "100m"}}]));
        let mut p = pod(json!({"limits": {"memory": "64Mi"}, "requests": {"memory": "64Mi"}}));
        assert!(apply_defaults(&[&r], &mut p));
        let res = &p["spec"]["containers"][0]["resources"];
        assert_eq!(res["limits"], json!({"memory": "64Mi", "cpu": "500m"}));
        // The default limit is also the default request unless one is given (cpu: 100m).
        assert_eq!(res["requests"], json!({"memory": "64Mi", "cpu": "100m"}));
        assert_eq!(p["metadata"]["annotations"][ANNOTATION], "LimitRanger plugin set: cpu request for container main; cpu limit for container main");
    }

    #[test]
    fn max_becomes_the_default_limit_and_min_the_default_request() {
        let mut item = json!({"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "10Mi"}});
        default_item(&mut item);
        assert_eq!(item["default"], json!({"cpu": "1"}));
        assert_eq!(item["defaultRequest"], json!({"cpu": "1", "memory": "10Mi"}));
    }

    #[test]
    fn min_max_and_ratio_are_reported_in_kubernetes_words() {
        let r = range(json!([{"type": "Container", "min": {"memory": "10Mi"}, "max": {"cpu": "1"}, "maxLimitRequestRatio": {"cpu": "2"}}]));
        let p = pod(json!({"limits": {"cpu": "2"}, "requests": {"cpu": "500m", "memory": "5Mi"}}));
        assert_eq!(
            violations(&[&r], &p),
            [
                "minimum memory usage per Container is 10Mi, but request is 5Mi",
                "maximum cpu usage per Container is 1, but limit is 2",
                "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000",
            ]
        );
        let ok = pod(json!({"limits": {"cpu": "1"}, "requests": {"cpu": "1", "memory": "10Mi"}}));
        assert!(violations(&[&r], &ok).is_empty());
        let none = pod(json!({}));
        assert_eq!(
            violations(&[&r], &none),
            ["minimum memory usage per Container is 10Mi.  No request is specified", "maximum cpu usage per Container is 1.  No limit is specified"]
        );
    }

    #[test]
    fn pod_limits_sum_the_containers() {
        let r = range(json!([{"type": "Pod", "max": {"memory": "100Mi"}}]));
        let mut p = pod(json!({"limits": {"memory": "60Mi"}}));
        p["spec"]["containers"].as_array_mut().unwrap().push(json!({"name": "b", "resources": {"limits": {"memory": "60Mi"}}}));
        assert_eq!(violations(&[&r], &p), ["maximum memory usage per Pod is 100Mi, but limit is 120Mi"]);
        assert_eq!(aggregate(&["a".into(), "b".into()]), "[a, b]");
    }
}
