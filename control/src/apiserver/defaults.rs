//! Defaulting: the values Kubernetes fills in when a client leaves them out, so objects
//! read back look as they do on a real cluster (`kubectl get -o yaml`, `describe`).
//! Idempotent: applying defaults twice changes nothing.

use serde_json::{Value, json};

use super::resources::ResourceInfo;

fn set_default(obj: &mut Value, field: &str, v: Value) {
    if obj.is_object() && obj.get(field).is_none_or(Value::is_null) {
        obj[field] = v;
    }
}

fn container(c: &mut Value) {
    let image = c["image"].as_str().unwrap_or("");
    let latest = !image.contains('@') && (image.rsplit('/').next().is_some_and(|last| !last.contains(':')) || image.ends_with(":latest"));
    set_default(c, "imagePullPolicy", json!(if latest { "Always" } else { "IfNotPresent" }));
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    set_default(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            set_default(p, "protocol", json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).filter(|p| p.is_object()) {
            for (field, v) in [("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1), ("failureThreshold", 3)] {
                set_default(p, field, json!(v));
            }
            if let Some(h) = p.get_mut("httpGet") {
                set_default(h, "path", json!("/"));
                set_default(h, "scheme", json!("HTTP"));
            }
        }
    }
}

/// Defaults of a PodSpec.
pub(crate) fn pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                container(c);
            }
        }
    }
}

/// Kubernetes' pod defaulting (not templates'): a resource a container limits but does
/// not request is requested at its limit. Applied when a pod is created only: a pod stored
/// before this default existed keeps its spec, which updates may not change.
pub(crate) fn requests_from_limits(spec: &mut Value) {
    for list in ["containers", "initContainers"] {
        for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            let Some(limits) = c["resources"]["limits"].as_object().filter(|l| !l.is_empty()).cloned() else { continue };
            let resources = &mut c["resources"];
            if !resources["requests"].is_object() {
                resources["requests"] = json!({});
            }
            let requests = resources["requests"].as_object_mut().expect("object");
            for (k, v) in limits {
                requests.entry(k).or_insert(v);
            }
        }
    }
}

/// Environment variable overriding [`DEFAULT_TOLERATION_SECONDS`].
pub(crate) const DEFAULT_TOLERATION_ENV: &str = "FLOTILLA_DEFAULT_TOLERATION_SECONDS";
/// Kubernetes' DefaultTolerationSeconds admission default (--default-not-ready-toleration-seconds
/// and --default-unreachable-toleration-seconds).
pub(crate) const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// The tolerationSeconds pods get for not-ready and unreachable nodes: 300, or
/// `FLOTILLA_DEFAULT_TOLERATION_SECONDS` when it holds a non-negative integer.
pub(crate) fn default_toleration_seconds() -> i64 {
    std::env::var(DEFAULT_TOLERATION_ENV).ok().and_then(|v| v.trim().parse::<i64>().ok()).filter(|s| *s >= 0).unwrap_or(DEFAULT_TOLERATION_SECONDS)
}

/// DefaultTolerationSeconds admission, on Pods only (not templates): a pod without a
/// NoExecute toleration for `node.kubernetes.io/not-ready` (or `unreachable`) gets one
/// with `seconds`. A toleration with an empty key or empty effect counts as one.
pub(crate) fn default_tolerations(spec: &mut Value, seconds: i64) {
    if !spec.is_object() {
        return;
    }
    let mut tolerations: Vec<Value> = spec["tolerations"].as_array().cloned().unwrap_or_default();
    let before = tolerations.len();
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
        let covered = tolerations.iter().any(|t| {
            let k = t["key"].as_str().unwrap_or("");
            let e = t["effect"].as_str().unwrap_or("");
            (k == key || k.is_empty()) && (e == "NoExecute" || e.is_empty())
        });
        if !covered {
            tolerations.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}));
        }
    }
    if tolerations.len() != before {
        spec["tolerations"] = Value::Array(tolerations);
    }
}

fn template(spec: &mut Value) {
    if let Some(ps) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
        pod_spec(ps);
    }
}

/// spec.podCIDR and spec.podCIDRs kept in agreement, as the round trip through Kubernetes'
/// internal type (which has only podCIDRs) leaves them: podCIDRs wins, podCIDR is its
/// first entry; podCIDR alone becomes the one entry of podCIDRs.
fn node_pod_cidrs(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let first = spec.get("podCIDRs").and_then(Value::as_array).and_then(|a| a.first()).cloned();
    match first {
        Some(first) => {
            spec.insert("podCIDR".into(), first);
        }
        None => {
            if let Some(one) = spec.get("podCIDR").filter(|v| v.as_str().is_some_and(|s| !s.is_empty())).cloned() {
                spec.insert("podCIDRs".into(), json!([one]));
            }
        }
    }
}

/// A NetworkPolicy's defaults (Kubernetes' `SetDefaults_NetworkPolicy`): `policyTypes`
/// Ingress, plus Egress when it has egress rules; every port's protocol TCP.
fn network_policy(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else { return };
    if spec["policyTypes"].as_array().is_none_or(Vec::is_empty) {
        let egress = spec["egress"].as_array().is_some_and(|e| !e.is_empty());
        spec["policyTypes"] = if egress { json!(["Ingress", "Egress"]) } else { json!(["Ingress"]) };
    }
    for rules in ["ingress", "egress"] {
        for rule in spec.get_mut(rules).and_then(Value::as_array_mut).into_iter().flatten() {
            for p in rule.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
                set_default(p, "protocol", json!("TCP"));
            }
        }
    }
}

/// A Secret's `stringData` merged into `data` (base64; stringData wins on a clash) and
/// dropped, as Kubernetes' conversion does: stringData is write-only, never stored or
/// returned. Every write (create, update, each patch type, apply) passes here.
fn secret_string_data(obj: &mut Value) {
    use base64::Engine as _;
    let Some(string_data) = obj.as_object_mut().and_then(|o| o.remove("stringData")) else { return };
    let Value::Object(string_data) = string_data else { return };
    if string_data.is_empty() {
        return;
    }
    if !obj["data"].is_object() {
        obj["data"] = json!({});
    }
    let data = obj["data"].as_object_mut().expect("data is an object");
    for (k, v) in string_data {
        // A null value decodes as "" in Kubernetes' map[string]string.
        let text = v.as_str().unwrap_or_default();
        data.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(text)));
    }
}

/// Fills in defaults for an object of `info`'s kind.
pub(crate) fn apply(info: &ResourceInfo, obj: &mut Value) {
    match (info.group, info.kind) {
        ("", "Pod") => {
            if let Some(spec) = obj.get_mut("spec") {
                pod_spec(spec);
                default_tolerations(spec, default_toleration_seconds());
            }
            if !obj["status"].is_object() {
                let qos = flotilla_api::pod::qos_class(&obj["spec"]);
                obj["status"] = json!({"phase": "Pending", "qosClass": qos});
            }
        }
        ("", "Namespace") => {
            if obj["metadata"]["deletionTimestamp"].is_null() {
                obj["status"] = json!({"phase": "Active"});
            }
            if !obj["spec"]["finalizers"].is_array() {
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
            }
            let name = obj["metadata"]["name"].clone();
            if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                let labels = meta.entry("labels").or_insert_with(|| json!({}));
                if labels.is_object() {
                    labels["kubernetes.io/metadata.name"] = name;
                }
            }
        }
        ("", "Secret") => {
            set_default(obj, "type", json!("Opaque"));
            secret_string_data(obj);
        }
        ("", "Node") => node_pod_cidrs(obj),
        ("autoscaling", "HorizontalPodAutoscaler") => {
            if let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) {
                set_default(spec, "minReplicas", json!(1));
                if spec["metrics"].as_array().is_none_or(|m| m.is_empty()) {
                    spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]);
                }
            }
        }
        ("", "LimitRange") => {
            for item in obj["spec"]["limits"].as_array_mut().into_iter().flatten() {
                super::limit_range::default_item(item);
            }
        }
        ("", "Service") => {
            if let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) {
                set_default(spec, "type", json!("ClusterIP"));
                set_default(spec, "sessionAffinity", json!("None"));
                if matches!(spec["type"].as_str(), Some("ClusterIP" | "NodePort" | "LoadBalancer")) {
                    set_default(spec, "internalTrafficPolicy", json!("Cluster"));
                }
                if matches!(spec["type"].as_str(), Some("NodePort" | "LoadBalancer")) {
                    set_default(spec, "externalTrafficPolicy", json!("Cluster"));
                }
                if spec["type"] == "LoadBalancer" {
                    set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
                }
                if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports {
                        set_default(p, "protocol", json!("TCP"));
                        let port = p["port"].clone();
                        set_default(p, "targetPort", port);
                    }
                }
            }
        }
        ("apps", "Deployment") => {
            if let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) {
                set_default(spec, "replicas", json!(1));
                set_default(spec, "revisionHistoryLimit", json!(10));
                set_default(spec, "progressDeadlineSeconds", json!(600));
                set_default(spec, "strategy", json!({}));
                if let Some(st) = spec.get_mut("strategy").filter(|s| s.is_object()) {
                    set_default(st, "type", json!("RollingUpdate"));
                    if st["type"] == "RollingUpdate" {
                        set_default(st, "rollingUpdate", json!({}));
                        if let Some(ru) = st.get_mut("rollingUpdate").filter(|r| r.is_object()) {
                            set_default(ru, "maxUnavailable", json!("25%"));
                            set_default(ru, "maxSurge", json!("25%"));
                        }
                    }
                }
                template(spec);
            }
        }
        ("apps", "ReplicaSet") | ("apps", "StatefulSet") => {
            if let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) {
                set_default(spec, "replicas", json!(1));
                if info.kind == "StatefulSet" {
                    set_default(spec, "podManagementPolicy", json!("OrderedReady"));
                    set_default(spec, "revisionHistoryLimit", json!(10));
                    set_default(spec, "updateStrategy", json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
                }
                template(spec);
            }
        }
        ("apps", "DaemonSet") => {
            if let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) {
                set_default(spec, "revisionHistoryLimit", json!(10));
                set_default(spec, "updateStrategy", json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}));
                template(spec);
            }
        }
        ("batch", "Job") => {
            if let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) {
                set_default(spec, "backoffLimit", json!(6));
                set_default(spec, "completionMode", json!("NonIndexed"));
                // Neither set: one pod to completion (Kubernetes defaults both to 1).
                if spec.get("completions").is_none_or(Value::is_null) && spec.get("parallelism").is_none_or(Value::is_null) {
                    spec["completions"] = json!(1);
                }
                set_default(spec, "suspend", json!(false));
                set_default(spec, "parallelism", json!(1));
                if let Some(ps) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
                    pod_spec(ps);
                }
            }
        }
        ("networking.k8s.io", "NetworkPolicy") => network_policy(obj),
        ("batch", "CronJob") => {
            if let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) {
                set_default(spec, "concurrencyPolicy", json!("Allow"));
                set_default(spec, "suspend", json!(false));
                set_default(spec, "successfulJobsHistoryLimit", json!(3));
                set_default(spec, "failedJobsHistoryLimit", json!(1));
                if let Some(js) = spec.get_mut("jobTemplate").and_then(|j| j.get_mut("spec")) {
                    set_default(js, "backoffLimit", json!(6));
                    if let Some(ps) = js.get_mut("template").and_then(|t| t.get_mut("spec")) {
                        pod_spec(ps);
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_get_kubernetes_defaults() {
        let mut c = json!({"name": "a", "image": "x:1", "livenessProbe": {"httpGet": {"port": 80}}, "startupProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 2}});
        container(&mut c);
        assert_eq!(c["livenessProbe"], json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}));
        assert_eq!(c["startupProbe"], json!({"tcpSocket": {"port": 80}, "timeoutSeconds": 1, "periodSeconds": 2, "successThreshold": 1, "failureThreshold": 3}));
        assert!(c.get("readinessProbe").is_none());
    }

    #[test]
    fn pods_get_default_not_ready_and_unreachable_tolerations_once() {
        let mut spec = json!({"containers": [], "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]});
        default_tolerations(&mut spec, 300);
        default_tolerations(&mut spec, 300);
        assert_eq!(
            spec["tolerations"],
            json!([
                {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ])
        );
        // The pod's own tolerations win: an empty key covers both, an empty effect too.
        let mut all = json!({"tolerations": [{"operator": "Exists"}]});
        default_tolerations(&mut all, 300);
        assert_eq!(all["tolerations"].as_array().map(Vec::len), Some(1));
        let mut own = json!({"tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 5}]});
        default_tolerations(&mut own, 300);
        assert_eq!(own["tolerations"][1]["key"], "node.kubernetes.io/not-ready");
        assert_eq!(own["tolerations"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn network_policies_get_policy_types_and_port_protocols() {
        let info = crate::apiserver::resources::find("networking.k8s.io", "v1", "networkpolicies").expect("netpol served");
        // (spec before, policyTypes after)
        let cases = [
            (json!({"podSelector": {}}), json!(["Ingress"])),
            (json!({"podSelector": {}, "egress": []}), json!(["Ingress"])),
            (json!({"podSelector": {}, "egress": [{}]}), json!(["Ingress", "Egress"])),
            (json!({"podSelector": {}, "policyTypes": ["Egress"]}), json!(["Egress"])),
        ];
        for (before, types) in cases {
            let mut np = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "n"}, "spec": before.clone()});
            apply(info, &mut np);
            assert_eq!(np["spec"]["policyTypes"], types, "{before}");
        }
        let mut np = json!({"spec": {"ingress": [{"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}], "egress": [{"ports": [{"port": "http"}]}]}});
        apply(info, &mut np);
        apply(info, &mut np);
        assert_eq!(np["spec"]["ingress"][0]["ports"], json!([{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]));
        assert_eq!(np["spec"]["egress"][0]["ports"], json!([{"port": "http", "protocol": "TCP"}]));
    }

    #[test]
    fn secret_string_data_is_merged_into_data_and_dropped() {
        let info = crate::apiserver::resources::find("", "v1", "secrets").expect("secrets served");
        // (secret before, data after)
        let cases = [
            (json!({"stringData": {"a": "x"}}), json!({"a": "eA=="})),
            // stringData wins on a clash; other data keys stay.
            (json!({"data": {"a": "b2xk", "keep": "aw=="}, "stringData": {"a": "new"}}), json!({"a": "bmV3", "keep": "aw=="})),
            (json!({"data": null, "stringData": {"a": "", "n": null}}), json!({"a": "", "n": ""})),
            (json!({"data": {"a": "eA=="}, "stringData": {}}), json!({"a": "eA=="})),
            (json!({"stringData": {"u": "é ✓"}}), json!({"u": "w6kg4pyT"})),
        ];
        for (before, data) in cases {
            let mut s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}});
            s.as_object_mut().expect("object").extend(before.as_object().expect("object").clone());
            apply(info, &mut s);
            apply(info, &mut s);
            assert_eq!(s["data"], data, "{before}");
            assert!(s.get("stringData").is_none(), "{before}: {s}");
            assert_eq!(s["type"], "Opaque");
        }
    }

    #[test]
    fn node_pod_cidr_and_pod_cidrs_agree() {
        // (spec before, spec after)
        let cases = [
            (json!({"podCIDR": "10.42.0.0/24"}), json!({"podCIDR": "10.42.0.0/24", "podCIDRs": ["10.42.0.0/24"]})),
            (json!({"podCIDRs": ["10.42.1.0/24", "fd00::/64"]}), json!({"podCIDR": "10.42.1.0/24", "podCIDRs": ["10.42.1.0/24", "fd00::/64"]})),
            (json!({"podCIDR": "10.9.0.0/24", "podCIDRs": ["10.42.1.0/24"]}), json!({"podCIDR": "10.42.1.0/24", "podCIDRs": ["10.42.1.0/24"]})),
            (json!({"podCIDR": ""}), json!({"podCIDR": ""})),
            (json!({}), json!({})),
        ];
        let info = crate::apiserver::resources::find("", "v1", "nodes").expect("nodes served");
        for (before, after) in cases {
            let mut node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}, "spec": before.clone()});
            apply(info, &mut node);
            apply(info, &mut node);
            assert_eq!(node["spec"], after, "{before}");
        }
    }
}
