//! ResourceQuota: what objects use of a quota's resources (kube-apiserver's quota
//! evaluators), the admission check on creates, and quantity formatting. The
//! resourcequota controller keeps `status.used` current with the same [`usage`].
//!
//! Resources counted: object counts (`pods`, `services`, `configmaps`, `secrets`,
//! `persistentvolumeclaims`, `replicationcontrollers`, `resourcequotas`,
//! `services.nodeports`, `services.loadbalancers`, and `count/PLURAL[.GROUP]` for any
//! served kind) and compute (`cpu`/`requests.cpu`, `memory`/`requests.memory`,
//! `limits.cpu`, `limits.memory`, `requests.`/`limits.ephemeral-storage`, and
//! `requests.storage` of claims). Pods in a terminal phase use nothing. Scopes
//! (`Terminating`, `NotTerminating`, `BestEffort`, `NotBestEffort`, and `scopeSelector`
//! expressions over those and `PriorityClass`) restrict a quota to the pods they match; a
//! scoped quota counts only pod resources.
//!
//! Invariants: pure; quantities are compared as numbers and printed in Kubernetes'
//! canonical form (`500m`, `1`, `128Mi`); messages are Kubernetes' words.

use std::collections::BTreeMap;

use flotilla_api::quantity;
use serde_json::Value;

use super::resources::ResourceInfo;

/// Resources a pod must state a value for when a quota limits them (Kubernetes'
/// backward-compatibility rule for cpu and memory).
const MUST_SPECIFY: [(&str, &str, &str); 6] = [
    ("cpu", "requests", "cpu"),
    ("requests.cpu", "requests", "cpu"),
    ("memory", "requests", "memory"),
    ("requests.memory", "requests", "memory"),
    ("limits.cpu", "limits", "cpu"),
    ("limits.memory", "limits", "memory"),
];

fn value(q: &Value) -> f64 {
    quantity::from_json(q).unwrap_or(0.0)
}

/// The lock creates in `namespace` take while their quota admission and write run.
pub(crate) fn namespace_lock(namespace: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
    static LOCKS: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>> = std::sync::OnceLock::new();
    let mut locks = LOCKS.get_or_init(Default::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Namespaces come and go: drop locks nobody holds once there are many.
    if locks.len() > 1024 {
        locks.retain(|_, l| std::sync::Arc::strong_count(l) > 1);
    }
    locks.entry(namespace.to_string()).or_default().clone()
}

/// `v` of resource `name` in Kubernetes' canonical form: CPU-like in cores or
/// millicores, sizes with a binary suffix when exact, counts as integers.
pub(crate) fn format(name: &str, v: f64) -> String {
    let base = name.rsplit('.').next().unwrap_or(name);
    if base == "cpu" {
        let milli = (v * 1000.0).round() as i64;
        return if milli % 1000 == 0 { format!("{}", milli / 1000) } else { format!("{milli}m") };
    }
    let n = v.round() as i64;
    if matches!(base, "memory" | "storage" | "ephemeral-storage") && n != 0 {
        for (suffix, unit) in [("Ei", 1i64 << 60), ("Pi", 1 << 50), ("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
            if n % unit == 0 {
                return format!("{}{suffix}", n / unit);
            }
        }
    }
    n.to_string()
}

fn terminal(pod: &Value) -> bool {
    matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

/// The pod's effective list for `field` ("requests"/"limits"): max(sum of containers, max
/// of init containers) plus overhead; requests fall back to limits.
fn pod_amounts(pod: &Value, field: &str) -> BTreeMap<String, f64> {
    let of = |c: &Value| -> BTreeMap<String, f64> {
        let mut m: BTreeMap<String, f64> = c["resources"][field].as_object().into_iter().flatten().map(|(k, q)| (k.clone(), value(q))).collect();
        if field == "requests" {
            for (k, q) in c["resources"]["limits"].as_object().into_iter().flatten() {
                m.entry(k.clone()).or_insert_with(|| value(q));
            }
        }
        m
    };
    let mut sum: BTreeMap<String, f64> = BTreeMap::new();
    for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
        for (k, v) in of(c) {
            *sum.entry(k).or_default() += v;
        }
    }
    for c in pod["spec"]["initContainers"].as_array().into_iter().flatten() {
        for (k, v) in of(c) {
            let e = sum.entry(k).or_default();
            *e = e.max(v);
        }
    }
    for (k, q) in pod["spec"]["overhead"].as_object().into_iter().flatten() {
        *sum.entry(k.clone()).or_default() += value(q);
    }
    sum
}

fn best_effort(pod: &Value) -> bool {
    flotilla_api::pod::qos_class(&pod["spec"]) == "BestEffort"
}

/// Whether `pod` is in every scope of `quota`.
fn pod_in_scopes(quota: &Value, pod: &Value) -> bool {
    let terminating = pod["spec"]["activeDeadlineSeconds"].as_i64().is_some();
    let scope = |name: &str| match name {
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        "BestEffort" => best_effort(pod),
        "NotBestEffort" => !best_effort(pod),
        _ => true,
    };
    let plain = quota["spec"]["scopes"].as_array().into_iter().flatten().filter_map(Value::as_str).all(scope);
    let selected = quota["spec"]["scopeSelector"]["matchExpressions"].as_array().into_iter().flatten().all(|e| {
        let name = e["scopeName"].as_str().unwrap_or("");
        let values: Vec<&str> = e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        if name == "PriorityClass" {
            let class = pod["spec"]["priorityClassName"].as_str().unwrap_or("");
            return match e["operator"].as_str() {
                Some("In") => values.contains(&class),
                Some("NotIn") => !values.contains(&class),
                Some("Exists") => !class.is_empty(),
                Some("DoesNotExist") => class.is_empty(),
                _ => false,
            };
        }
        match e["operator"].as_str() {
            Some("Exists") => scope(name),
            Some("DoesNotExist") => !scope(name),
            _ => false,
        }
    });
    plain && selected
}

fn scoped(quota: &Value) -> bool {
    quota["spec"]["scopes"].as_array().is_some_and(|s| !s.is_empty()) || quota["spec"]["scopeSelector"].is_object()
}

/// What `obj` of resource `info` uses of the resources `quota` limits (only those).
pub(crate) fn usage_of(quota: &Value, info: &ResourceInfo, obj: &Value) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let hard = quota["spec"]["hard"].as_object();
    let is_pod = info.group.is_empty() && info.kind == "Pod";
    if scoped(quota) && !(is_pod && pod_in_scopes(quota, obj)) {
        return out;
    }
    let count_name = if info.group.is_empty() { format!("count/{}", info.plural) } else { format!("count/{}.{}", info.plural, info.group) };
    let counts = !(is_pod && terminal(obj));
    for name in hard.into_iter().flat_map(|h| h.keys()) {
        let v = match name.as_str() {
            n if n == count_name => counts as u8 as f64,
            "pods" | "services" | "configmaps" | "secrets" | "persistentvolumeclaims" | "replicationcontrollers" | "resourcequotas"
                if info.group.is_empty() && info.plural == name =>
            {
                counts as u8 as f64
            }
            "services.nodeports" if info.group.is_empty() && info.kind == "Service" => {
                if matches!(obj["spec"]["type"].as_str(), Some("NodePort" | "LoadBalancer")) {
                    obj["spec"]["ports"].as_array().map_or(0.0, |p| p.len() as f64)
                } else {
                    0.0
                }
            }
            "services.loadbalancers" if info.group.is_empty() && info.kind == "Service" => (obj["spec"]["type"] == "LoadBalancer") as u8 as f64,
            "requests.storage" if info.group.is_empty() && info.kind == "PersistentVolumeClaim" => value(&obj["spec"]["resources"]["requests"]["storage"]),
            n if is_pod && counts => {
                let (field, resource) = match n.split_once('.') {
                    Some(("requests", r)) => ("requests", r),
                    Some(("limits", r)) => ("limits", r),
                    _ if matches!(n, "cpu" | "memory" | "ephemeral-storage") => ("requests", n),
                    _ => continue,
                };
                pod_amounts(obj, field).get(resource).copied().unwrap_or(0.0)
            }
            _ => continue,
        };
        out.insert(name.clone(), v);
    }
    out
}

/// The resources `quota` limits, summed over `objects` (each with its resource).
pub(crate) fn usage<'a>(quota: &Value, objects: impl IntoIterator<Item = (&'a ResourceInfo, &'a Value)>) -> BTreeMap<String, f64> {
    let mut used: BTreeMap<String, f64> = quota["spec"]["hard"].as_object().into_iter().flatten().map(|(k, _)| (k.clone(), 0.0)).collect();
    for (info, obj) in objects {
        for (k, v) in usage_of(quota, info, obj) {
            *used.entry(k).or_default() += v;
        }
    }
    used
}

/// `used` as a ResourceList in canonical quantities.
pub(crate) fn to_list(used: &BTreeMap<String, f64>) -> Value {
    Value::Object(used.iter().map(|(k, v)| (k.clone(), Value::String(format(k, *v)))).collect())
}

fn pretty(list: &[(String, f64)]) -> String {
    list.iter().map(|(k, v)| format!("{k}={}", format(k, *v))).collect::<Vec<_>>().join(",")
}

/// Admission: Err(message) when creating `obj` would take `quota` (whose current usage is
/// `used`) over a hard limit, or when a pod leaves unset a value the quota needs.
pub(crate) fn check(quota: &Value, used: &BTreeMap<String, f64>, info: &ResourceInfo, obj: &Value) -> Result<(), String> {
    let name = quota["metadata"]["name"].as_str().unwrap_or("");
    let hard = quota["spec"]["hard"].as_object();
    let is_pod = info.group.is_empty() && info.kind == "Pod";
    if is_pod && !terminal(obj) && (!scoped(quota) || pod_in_scopes(quota, obj)) {
        let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (quota_name, field, resource) in MUST_SPECIFY {
            if !hard.is_some_and(|h| h.contains_key(quota_name)) {
                continue;
            }
            for list in ["containers", "initContainers"] {
                for c in obj["spec"][list].as_array().into_iter().flatten() {
                    let r = &c["resources"];
                    let set = !r[field][resource].is_null() || (field == "requests" && !r["limits"][resource].is_null());
                    if !set {
                        let names = missing.entry(quota_name.to_string()).or_default();
                        let c = c["name"].as_str().unwrap_or("").to_string();
                        if !names.contains(&c) {
                            names.push(c);
                        }
                    }
                }
            }
        }
        if !missing.is_empty() {
            let parts: Vec<String> = missing.into_iter().map(|(r, mut cs)| {
                cs.sort();
                format!("{r} for: {}", cs.join(","))
            }).collect();
            return Err(format!("failed quota: {name}: must specify {}", parts.join("; ")));
        }
    }
    let delta = usage_of(quota, info, obj);
    let (mut requested, mut was, mut limited) = (Vec::new(), Vec::new(), Vec::new());
    for (k, d) in &delta {
        if *d <= 0.0 {
            continue;
        }
        let Some(h) = hard.and_then(|h| h.get(k)).map(value) else { continue };
        let u = used.get(k).copied().unwrap_or(0.0);
        // A little slack for float sums of decimal quantities.
        if u + d > h + h.abs() * 1e-9 + 1e-9 {
            requested.push((k.clone(), *d));
            was.push((k.clone(), u));
            limited.push((k.clone(), h));
        }
    }
    if requested.is_empty() {
        return Ok(());
    }
    Err(format!("exceeded quota: {name}, requested: {}, used: {}, limited: {}", pretty(&requested), pretty(&was), pretty(&limited)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::apiserver::resources;

    fn pods() -> &'static ResourceInfo {
        resources::find("", "v1", "pods").unwrap()
    }

    fn pod(cpu_req: Option<&str>, cpu_lim: Option<&str>) -> Value {
        let mut res = json!({});
        if let Some(r) = cpu_req {
            res["requests"] = json!({"cpu": r, "memory": "64Mi"});
        }
        if let Some(l) = cpu_lim {
            res["limits"] = json!({"cpu": l});
        }
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "main", "resources": res}]}, "status": {"phase": "Running"}})
    }

    #[test]
    fn quantities_print_canonically() {
        assert_eq!(format("requests.cpu", 0.5), "500m");
        assert_eq!(format("cpu", 2.0), "2");
        assert_eq!(format("limits.memory", 128.0 * 1024.0 * 1024.0), "128Mi");
        assert_eq!(format("memory", 1e9), "1000000000");
        assert_eq!(format("pods", 3.0), "3");
    }

    #[test]
    fn pods_use_requests_counts_and_terminal_pods_nothing() {
        let q = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "2", "requests.cpu": "1", "limits.cpu": "2", "requests.memory": "1Gi"}}});
        let a = pod(Some("500m"), Some("1"));
        let mut done = pod(Some("500m"), None);
        done["status"]["phase"] = json!("Succeeded");
        let used = usage(&q, [(pods(), &a), (pods(), &done)]);
        assert_eq!(to_list(&used), json!({"limits.cpu": "1", "pods": "1", "requests.cpu": "500m", "requests.memory": "64Mi"}));
        assert!(check(&q, &used, pods(), &pod(Some("500m"), Some("1"))).is_ok());
        assert_eq!(
            check(&q, &used, pods(), &pod(Some("600m"), Some("1"))).unwrap_err(),
            "exceeded quota: q, requested: requests.cpu=600m, used: requests.cpu=500m, limited: requests.cpu=1"
        );
        assert_eq!(check(&q, &used, pods(), &pod(Some("100m"), None)).unwrap_err(), "failed quota: q: must specify limits.cpu for: main");
    }

    #[test]
    fn object_counts_and_scopes() {
        let cms = resources::find("", "v1", "configmaps").unwrap();
        let q = json!({"metadata": {"name": "objects"}, "spec": {"hard": {"count/configmaps": "1", "configmaps": "1"}}});
        let cm = json!({"metadata": {"name": "a"}});
        let used = usage(&q, [(cms, &cm)]);
        let err = check(&q, &used, cms, &cm).unwrap_err();
        assert_eq!(err, "exceeded quota: objects, requested: configmaps=1,count/configmaps=1, used: configmaps=1,count/configmaps=1, limited: configmaps=1,count/configmaps=1");
        let best_effort = json!({"metadata": {"name": "be"}, "spec": {"hard": {"pods": "1"}, "scopes": ["BestEffort"]}});
        let bare = json!({"spec": {"containers": [{"name": "c"}]}});
        assert_eq!(usage_of(&best_effort, pods(), &bare)["pods"], 1.0);
        assert!(usage_of(&best_effort, pods(), &pod(Some("1"), None)).is_empty());
        assert!(usage_of(&best_effort, cms, &cm).is_empty(), "a scoped quota counts pods only");
    }
}
