//! Printers of core/v1 kinds (Pod, Service, Endpoints, ConfigMap, Secret, Event — both
//! core/v1 and events.k8s.io/v1 —, ServiceAccount, Namespace, Node, ResourceQuota) and of
//! the node heartbeat Lease (coordination.k8s.io): `printPod`, `printService`, … of
//! Kubernetes' `pkg/printers/internalversion`.
//!
//! Invariant: each `*_cells` returns one cell per column of its `*_COLUMNS`, in order.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{
    AGE, Column, NAME, NAME_DOC, age, col, default_str, entries, flag, format_labels, get, human_duration, int, list,
    load_balancer_addresses, name, quantity, strings, text, time, wide,
};

// ---------------------------------------------------------------------------------------
// Columns

#[rustfmt::skip]
pub(super) const POD_COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "string", "The aggregate status of the containers in this pod."),
    col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    AGE,
    wide("IP", "string", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
    wide("Node", "string", "NodeName indicates in which node this pod is scheduled."),
    wide("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods."),
    wide("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness."),
];

#[rustfmt::skip]
pub(super) const SERVICE_COLUMNS: &[Column] = &[
    NAME,
    col("Type", "string", "type determines how the Service is exposed."),
    col("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly."),
    col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
    col("Port(s)", "string", "The list of ports that are exposed by this service."),
    AGE,
    wide("Selector", "string", "Route service traffic to pods with label keys and values matching this selector."),
];

#[rustfmt::skip]
pub(super) const ENDPOINTS_COLUMNS: &[Column] = &[
    NAME,
    col("Endpoints", "string", "The set of all endpoints is the union of all subsets."),
    AGE,
];

#[rustfmt::skip]
pub(super) const CONFIG_MAP_COLUMNS: &[Column] = &[
    NAME,
    col("Data", "string", "Data contains the configuration data."),
    AGE,
];

#[rustfmt::skip]
pub(super) const SECRET_COLUMNS: &[Column] = &[
    NAME,
    col("Type", "string", "Used to facilitate programmatic handling of secret data."),
    col("Data", "string", "Data contains the secret data."),
    AGE,
];

#[rustfmt::skip]
pub(super) const EVENT_COLUMNS: &[Column] = &[
    col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
    col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
    col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    col("Object", "string", "The object that this event is about."),
    wide("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement."),
    wide("Source", "string", "The component reporting this event."),
    col("Message", "string", "A human-readable description of the status of this operation."),
    wide("First Seen", "string", "The time at which the event was first recorded."),
    wide("Count", "string", "The number of times this event has occurred."),
    Column { name: "Name", ty: "string", format: "name", priority: 1, description: NAME_DOC, },
];

#[rustfmt::skip]
pub(super) const SERVICE_ACCOUNT_COLUMNS: &[Column] = &[
    NAME,
    col("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
    AGE,
];

#[rustfmt::skip]
pub(super) const NAMESPACE_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the namespace"),
    AGE,
];

#[rustfmt::skip]
pub(super) const NODE_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", "Kubelet Version reported by the node."),
    wide("Internal-IP", "string", "List of addresses reachable to the node."),
    wide("External-IP", "string", "List of addresses reachable to the node."),
    wide("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
    wide("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
    wide("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
];

#[rustfmt::skip]
pub(super) const RESOURCE_QUOTA_COLUMNS: &[Column] = &[
    NAME,
    col("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume."),
    col("Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
    AGE,
];

#[rustfmt::skip]
pub(super) const LEASE_COLUMNS: &[Column] = &[
    NAME,
    col("Holder", "string", "holderIdentity contains the identity of the holder of a current lease."),
    AGE,
];

// ---------------------------------------------------------------------------------------
// Printers

/// The pod READY, STATUS and RESTARTS logic of `printPod`, sidecars included.
pub(super) fn pod_cells(pod: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let init_specs = list(pod, &["spec", "initContainers"]);
    let is_sidecar =
        |name: &str| init_specs.iter().any(|c| text(c, &["name"]) == name && text(c, &["restartPolicy"]) == "Always");
    let total = list(pod, &["spec", "containers"]).len()
        + init_specs.iter().filter(|c| text(c, &["restartPolicy"]) == "Always").count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut last_sidecar_restart: Option<DateTime<Utc>> = None;

    let phase = text(pod, &["status", "phase"]);
    let mut reason = match text(pod, &["status", "reason"]) {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    let conditions = list(pod, &["status", "conditions"]);
    if conditions.iter().any(|c| text(c, &["type"]) == "PodScheduled" && text(c, &["reason"]) == "SchedulingGated") {
        reason = "SchedulingGated".into();
    }

    let mut initializing = false;
    for (i, cs) in list(pod, &["status", "initContainerStatuses"]).iter().enumerate() {
        let count = int(cs, &["restartCount"]);
        let finished = time(cs, &["lastState", "terminated", "finishedAt"]);
        restarts += count;
        last_restart = later(last_restart, finished);
        let sidecar = is_sidecar(text(cs, &["name"]));
        if sidecar {
            sidecar_restarts += count;
            last_sidecar_restart = later(last_sidecar_restart, finished);
        }
        let terminated = get(cs, &["state", "terminated"]);
        let waiting_reason = text(cs, &["state", "waiting", "reason"]);
        if terminated.is_some_and(|t| int(t, &["exitCode"]) == 0) {
            continue;
        }
        if sidecar && flag(cs, &["started"]) {
            if flag(cs, &["ready"]) {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            match text(t, &["reason"]) {
                "" if int(t, &["signal"]) != 0 => format!("Init:Signal:{}", int(t, &["signal"])),
                "" => format!("Init:ExitCode:{}", int(t, &["exitCode"])),
                r => format!("Init:{r}"),
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{}/{}", i, init_specs.len())
        };
        initializing = true;
        break;
    }

    let initialized =
        conditions.iter().find(|c| text(c, &["type"]) == "Initialized").is_some_and(|c| text(c, &["status"]) == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for cs in list(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts += int(cs, &["restartCount"]);
            last_restart = later(last_restart, time(cs, &["lastState", "terminated", "finishedAt"]));
            let waiting_reason = text(cs, &["state", "waiting", "reason"]);
            let terminated = get(cs, &["state", "terminated"]);
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                reason = match text(t, &["reason"]) {
                    "" if int(t, &["signal"]) != 0 => format!("Signal:{}", int(t, &["signal"])),
                    "" => format!("ExitCode:{}", int(t, &["exitCode"])),
                    r => r.to_string(),
                };
            } else if flag(cs, &["ready"]) && get(cs, &["state", "running"]).is_some() {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose last container completed while another still runs is not "Completed".
        if reason == "Completed" && has_running {
            let pod_ready = conditions.iter().any(|c| text(c, &["type"]) == "Ready" && text(c, &["status"]) == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.into();
        }
    }

    if get(pod, &["metadata", "deletionTimestamp"]).is_some() {
        if text(pod, &["status", "reason"]) == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }

    let restarts_cell = match last_restart {
        Some(at) if restarts != 0 => format!("{restarts} ({} ago)", human_duration(now - at)),
        _ => restarts.to_string(),
    };

    // status.podIP wins over podIPs[0], as in the v1 -> internal conversion.
    let ip = match text(pod, &["status", "podIP"]) {
        "" => list(pod, &["status", "podIPs"]).first().map_or("", |p| text(p, &["ip"])),
        ip => ip,
    };
    let gates = list(pod, &["spec", "readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let satisfied = gates
            .iter()
            .filter(|g| {
                let wanted = text(g, &["conditionType"]);
                conditions.iter().find(|c| text(c, &["type"]) == wanted).is_some_and(|c| text(c, &["status"]) == "True")
            })
            .count();
        format!("{satisfied}/{}", gates.len())
    };

    vec![
        name(pod).into(),
        format!("{ready}/{total}").into(),
        reason.into(),
        restarts_cell.into(),
        age(pod, now),
        or_none(ip).into(),
        or_none(text(pod, &["spec", "nodeName"])).into(),
        or_none(text(pod, &["status", "nominatedNodeName"])).into(),
        readiness_gates.into(),
    ]
}

pub(super) fn pod_conditions(pod: &Value) -> Option<Value> {
    let (reason, message) = match text(pod, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    let mut c = Map::new();
    c.insert("type".into(), "Completed".into());
    c.insert("status".into(), "True".into());
    c.insert("reason".into(), reason.into());
    c.insert("message".into(), message.into());
    Some(Value::Array(vec![Value::Object(c)]))
}

pub(super) fn service_cells(svc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let ty = default_str(text(svc, &["spec", "type"]), "ClusterIP");
    // spec.clusterIP wins over clusterIPs[0], as in the v1 -> internal conversion.
    let cluster_ip = match text(svc, &["spec", "clusterIP"]) {
        "" => list(svc, &["spec", "clusterIPs"]).first().and_then(Value::as_str).unwrap_or(""),
        ip => ip,
    };
    let external_ips = strings(list(svc, &["spec", "externalIPs"]));
    let external = match ty {
        "ClusterIP" | "NodePort" if external_ips.is_empty() => "<none>".to_string(),
        "ClusterIP" | "NodePort" => external_ips.join(","),
        "LoadBalancer" => {
            let lb = load_balancer_addresses(list(svc, &["status", "loadBalancer", "ingress"]));
            if !external_ips.is_empty() {
                lb.iter().map(String::as_str).chain(external_ips.iter().copied()).collect::<Vec<_>>().join(",")
            } else if !lb.is_empty() {
                lb.join(",")
            } else {
                "<pending>".to_string()
            }
        }
        "ExternalName" => text(svc, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports = list(svc, &["spec", "ports"])
        .iter()
        .map(|p| {
            let port = int(p, &["port"]);
            let protocol = default_str(text(p, &["protocol"]), "TCP");
            match int(p, &["nodePort"]) {
                n if n > 0 => format!("{port}:{n}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    vec![
        name(svc).into(),
        ty.into(),
        or_none(cluster_ip).into(),
        external.into(),
        or_none(&ports).into(),
        age(svc, now),
        format_labels(get(svc, &["spec", "selector"])).into(),
    ]
}

pub(super) fn endpoints_cells(ep: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name(ep).into(), format_endpoints(list(ep, &["subsets"])).into(), age(ep, now)]
}

/// Up to three "ip:port" pairs, then " + N more...".
fn format_endpoints(subsets: &[Value]) -> String {
    if subsets.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 3;
    let mut shown: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for subset in subsets {
        let addresses = list(subset, &["addresses"]);
        let ports = list(subset, &["ports"]);
        // Headless services may have no ports: list bare IPs.
        let port_numbers: Vec<Option<i64>> =
            if ports.is_empty() { vec![None] } else { ports.iter().map(|p| Some(int(p, &["port"]))).collect() };
        for port in port_numbers {
            count += addresses.len();
            for address in addresses {
                if shown.len() == MAX {
                    more = true;
                    break;
                }
                let ip = text(address, &["ip"]);
                shown.push(match port {
                    Some(port) => join_host_port(ip, port),
                    None => ip.to_string(),
                });
            }
        }
    }
    let joined = shown.join(",");
    if more { format!("{joined} + {} more...", count - MAX) } else { joined }
}

pub(super) fn config_map_cells(cm: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let data = entries(cm, &["data"]) + entries(cm, &["binaryData"]);
    vec![name(cm).into(), data.into(), age(cm, now)]
}

pub(super) fn secret_cells(secret: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // stringData is write-only and merged into data; count the union in case it was not.
    let mut keys: BTreeSet<&str> = BTreeSet::new();
    for field in ["data", "stringData"] {
        if let Some(map) = get(secret, &[field]).and_then(Value::as_object) {
            keys.extend(map.keys().map(String::as_str));
        }
    }
    vec![
        name(secret).into(),
        default_str(text(secret, &["type"]), "Opaque").into(),
        keys.len().into(),
        age(secret, now),
    ]
}

/// The fields `printEvent` reads, from either core/v1 or events.k8s.io/v1 JSON.
struct EventView<'a> {
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    event_time: Option<DateTime<Utc>>,
    count: i64,
    series: Option<&'a Value>,
    regarding: Option<&'a Value>,
    source: Option<&'a Value>,
    reporting_controller: &'a str,
    message: &'a str,
}

pub(super) fn core_event_cells(ev: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let view = EventView {
        first: time(ev, &["firstTimestamp"]),
        last: time(ev, &["lastTimestamp"]),
        event_time: time(ev, &["eventTime"]),
        count: int(ev, &["count"]),
        series: get(ev, &["series"]),
        regarding: get(ev, &["involvedObject"]),
        source: get(ev, &["source"]),
        reporting_controller: text(ev, &["reportingComponent"]),
        message: text(ev, &["message"]),
    };
    event_cells(ev, &view, now)
}

pub(super) fn events_api_event_cells(ev: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let view = EventView {
        first: time(ev, &["deprecatedFirstTimestamp"]),
        last: time(ev, &["deprecatedLastTimestamp"]),
        event_time: time(ev, &["eventTime"]),
        count: int(ev, &["deprecatedCount"]),
        series: get(ev, &["series"]),
        regarding: get(ev, &["regarding"]),
        source: get(ev, &["deprecatedSource"]),
        reporting_controller: text(ev, &["reportingController"]),
        message: text(ev, &["note"]),
    };
    event_cells(ev, &view, now)
}

fn event_cells(ev: &Value, view: &EventView<'_>, now: DateTime<Utc>) -> Vec<Value> {
    let since = |t: Option<DateTime<Utc>>| t.map_or_else(|| "<unknown>".to_string(), |t| human_duration(now - t));
    let first_seen = since(view.first.or(view.event_time));
    let mut last_seen = if view.last.is_some() { since(view.last) } else { first_seen.clone() };
    let mut count = view.count;
    if let Some(series) = view.series {
        last_seen = since(time(series, &["lastObservedTime"]));
        count = int(series, &["count"]);
    } else if count == 0 {
        // Singleton events of the new API carry no count.
        count = 1;
    }
    let empty = Value::Null;
    let regarding = view.regarding.unwrap_or(&empty);
    let kind = text(regarding, &["kind"]).to_lowercase();
    let target = match text(regarding, &["name"]) {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let source = view.source.unwrap_or(&empty);
    let component = default_str(text(source, &["component"]), view.reporting_controller);
    let host = default_str(text(source, &["host"]), text(ev, &["reportingInstance"]));
    let source_cell = if host.is_empty() { component.to_string() } else { format!("{component}, {host}") };
    vec![
        last_seen.into(),
        text(ev, &["type"]).into(),
        text(ev, &["reason"]).into(),
        target.into(),
        text(regarding, &["fieldPath"]).into(),
        source_cell.into(),
        view.message.trim().into(),
        first_seen.into(),
        count.into(),
        name(ev).into(),
    ]
}

pub(super) fn service_account_cells(sa: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name(sa).into(), list(sa, &["secrets"]).len().into(), age(sa, now)]
}

pub(super) fn namespace_cells(ns: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name(ns).into(), default_str(text(ns, &["status", "phase"]), "Active").into(), age(ns, now)]
}

pub(super) fn node_cells(node: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut status: Vec<&str> = Vec::new();
    // The last Ready condition wins, as with Go's map keyed by type.
    if let Some(ready) = list(node, &["status", "conditions"]).iter().rev().find(|c| text(c, &["type"]) == "Ready") {
        status.push(if text(ready, &["status"]) == "True" { "Ready" } else { "NotReady" });
    } else {
        status.push("Unknown");
    }
    if flag(node, &["spec", "unschedulable"]) {
        status.push("SchedulingDisabled");
    }
    let mut roles: BTreeSet<&str> = BTreeSet::new();
    if let Some(labels) = get(node, &["metadata", "labels"]).and_then(Value::as_object) {
        for (key, value) in labels {
            if let Some(role) = key.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role);
                }
            } else if key == "kubernetes.io/role"
                && let Some(role) = value.as_str().filter(|r| !r.is_empty())
            {
                roles.insert(role);
            }
        }
    }
    let roles = roles.into_iter().collect::<Vec<_>>().join(",");
    let address = |ty: &str| {
        list(node, &["status", "addresses"])
            .iter()
            .find(|a| text(a, &["type"]) == ty)
            .map_or("<none>", |a| text(a, &["address"]))
    };
    let info = |field: &str| match text(node, &["status", "nodeInfo", field]) {
        "" => "<unknown>",
        v => v,
    };
    vec![
        name(node).into(),
        status.join(",").into(),
        or_none(&roles).into(),
        age(node, now),
        text(node, &["status", "nodeInfo", "kubeletVersion"]).into(),
        address("InternalIP").into(),
        address("ExternalIP").into(),
        info("osImage").into(),
        info("kernelVersion").into(),
        info("containerRuntimeVersion").into(),
    ]
}

pub(super) fn resource_quota_cells(quota: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut requests: Vec<String> = Vec::new();
    let mut limits: Vec<String> = Vec::new();
    if let Some(hard) = get(quota, &["status", "hard"]).and_then(Value::as_object) {
        let mut names: Vec<&String> = hard.keys().collect();
        names.sort();
        for resource in names {
            let used = quantity(get(quota, &["status", "used", resource]));
            let entry = format!("{resource}: {used}/{}", quantity(hard.get(resource)));
            if resource.split('.').next() == Some("limits") && resource.contains('.') {
                limits.push(entry);
            } else {
                requests.push(entry);
            }
        }
    }
    vec![name(quota).into(), requests.join(", ").into(), limits.join(", ").into(), age(quota, now)]
}

/// `coordination.k8s.io/v1` Lease: the heartbeat nodes renew, printed next to Node.
pub(super) fn lease_cells(lease: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name(lease).into(), text(lease, &["spec", "holderIdentity"]).into(), age(lease, now)]
}

/// `net.JoinHostPort`: brackets IPv6 hosts.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

fn or_none(s: &str) -> &str {
    default_str(s, "<none>")
}

fn later(current: Option<DateTime<Utc>>, candidate: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (current, candidate) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{ago, cells, info, now, row};
    use super::super::{IncludeObject, table};
    use serde_json::{Value, json};

    fn pod(status: Value) -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(300)},
            "spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "redis"}]},
            "status": status,
        })
    }

    #[test]
    fn pod_columns_and_running_pod() {
        let (names, c) = row(
            "",
            "Pod",
            json!({
                "metadata": {"name": "web", "creationTimestamp": ago(300)},
                "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}],
                         "readinessGates": [{"conditionType": "x/ok"}, {"conditionType": "x/other"}]},
                "status": {"phase": "Running", "podIP": "10.0.0.5",
                    "conditions": [{"type": "Ready", "status": "False"}, {"type": "x/ok", "status": "True"}],
                    "containerStatuses": [
                        {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                        {"name": "b", "ready": false, "restartCount": 0, "state": {"running": {}}}]}
            }),
        );
        assert_eq!(
            names,
            ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"]
        );
        assert_eq!(Value::Array(c), json!(["web", "1/2", "Running", "0", "5m", "10.0.0.5", "n1", "<none>", "1/2"]));
    }

    #[test]
    fn pod_status_reasons() {
        let status = |s: Value| cells("", "Pod", pod(s))[2].clone();
        assert_eq!(status(json!({"phase": "Pending"})), "Pending");
        assert_eq!(
            status(json!({"phase": "Pending", "containerStatuses": [
                {"name": "a", "state": {"waiting": {"reason": "ContainerCreating"}}},
                {"name": "b", "state": {"waiting": {"reason": "ContainerCreating"}}}]})),
            "ContainerCreating"
        );
        // Containers are walked last to first, so the first container's reason wins.
        assert_eq!(
            status(json!({"phase": "Running", "containerStatuses": [
                {"name": "a", "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
                {"name": "b", "ready": true, "state": {"running": {}}}]})),
            "CrashLoopBackOff"
        );
        assert_eq!(
            status(json!({"phase": "Succeeded", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "b", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]})),
            "Completed"
        );
        assert_eq!(
            status(json!({"phase": "Failed", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 3}}}]})),
            "ExitCode:3"
        );
        assert_eq!(
            status(json!({"phase": "Failed", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]})),
            "Signal:9"
        );
        // One container completed, the other still running: Running or NotReady by the Ready condition.
        let mixed = |ready: &str| {
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": ready}], "containerStatuses": [
                {"name": "a", "ready": true, "state": {"running": {}}},
                {"name": "b", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]})
        };
        assert_eq!(status(mixed("True")), "Running");
        assert_eq!(status(mixed("False")), "NotReady");
        assert_eq!(status(json!({"phase": "Evicted", "reason": "Evicted"})), "Evicted");
        assert_eq!(
            status(json!({"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]})),
            "SchedulingGated"
        );
    }

    #[test]
    fn pod_terminating_and_node_lost() {
        let mut p = pod(json!({"phase": "Running"}));
        p["metadata"]["deletionTimestamp"] = json!(ago(1));
        assert_eq!(cells("", "Pod", p.clone())[2], "Terminating");
        p["status"]["phase"] = json!("Succeeded");
        assert_eq!(cells("", "Pod", p.clone())[2], "Succeeded", "terminal pods are not Terminating");
        p["status"] = json!({"phase": "Running", "reason": "NodeLost"});
        assert_eq!(cells("", "Pod", p)[2], "Unknown");
    }

    #[test]
    fn pod_init_containers() {
        let with_init = |status: Value| {
            let mut p = pod(status);
            p["spec"]["initContainers"] = json!([{"name": "i1"}, {"name": "i2"}]);
            cells("", "Pod", p)
        };
        let c = with_init(json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "state": {"running": {}}}, {"name": "i2", "state": {"waiting": {"reason": "PodInitializing"}}}]}));
        assert_eq!(c[2], "Init:0/2");
        let c = with_init(json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "state": {"terminated": {"exitCode": 0}}}, {"name": "i2", "state": {"running": {}}}]}));
        assert_eq!(c[2], "Init:1/2");
        let c = with_init(json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(90)}}}]}));
        assert_eq!(c[2], "Init:CrashLoopBackOff");
        assert_eq!(c[3], "4 (90s ago)", "init restarts count while initializing");
        let c = with_init(json!({"phase": "Failed", "initContainerStatuses": [
            {"name": "i1", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}]}));
        assert_eq!(c[2], "Init:Error");
        let c = with_init(json!({"phase": "Failed", "initContainerStatuses": [
            {"name": "i1", "state": {"terminated": {"exitCode": 2}}}]}));
        assert_eq!(c[2], "Init:ExitCode:2");
    }

    #[test]
    fn pod_sidecar_counts_toward_ready_and_restarts() {
        let mut p = pod(json!({"phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
            "initContainerStatuses": [
                {"name": "init", "restartCount": 7, "state": {"terminated": {"exitCode": 0}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(30)}}},
                {"name": "proxy", "started": true, "ready": true, "restartCount": 2, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(400)}}}],
            "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 1, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(200)}}},
                {"name": "b", "ready": true, "restartCount": 0, "state": {"running": {}}}]}));
        p["spec"]["initContainers"] = json!([{"name": "init"}, {"name": "proxy", "restartPolicy": "Always"}]);
        let c = cells("", "Pod", p);
        assert_eq!(c[1], "3/3");
        assert_eq!(c[2], "Running");
        // Plain init container restarts are dropped once initialized; sidecar ones are kept.
        assert_eq!(c[3], "3 (3m20s ago)");
    }

    #[test]
    fn pod_restarts_without_last_state_and_completed_condition() {
        let p = pod(json!({"phase": "Succeeded", "containerStatuses": [
            {"name": "a", "restartCount": 2, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}));
        let t = table(info("", "Pod"), &[&p], IncludeObject::None, now(), "", None);
        assert_eq!(t["rows"][0]["cells"][3], "2");
        assert_eq!(
            t["rows"][0]["conditions"],
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                    "message": "The pod has completed successfully."}])
        );
        assert_eq!(cells("", "Pod", json!({}))[4], "<unknown>");
    }

    #[test]
    fn service_ports_and_external_ips() {
        let (names, c) = row(
            "",
            "Service",
            json!({
                "metadata": {"name": "web", "creationTimestamp": ago(45)},
                "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                         "selector": {"app": "web", "tier": "fe"},
                         "ports": [{"port": 80, "protocol": "TCP"},
                                   {"port": 443, "nodePort": 30443, "protocol": "TCP"}]}
            }),
        );
        assert_eq!(names, ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"]);
        assert_eq!(
            Value::Array(c),
            json!(["web", "NodePort", "10.96.0.10", "<none>", "80/TCP,443:30443/TCP", "45s", "app=web,tier=fe"])
        );

        let lb = |status: Value, external: Value| {
            cells(
                "",
                "Service",
                json!({"spec": {"type": "LoadBalancer", "externalIPs": external,
                "ports": [{"port": 53, "protocol": "UDP"}]}, "status": status}),
            )
        };
        assert_eq!(lb(json!({}), json!([]))[3], "<pending>");
        let c = lb(
            json!({"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example.com"}]}}),
            json!(["1.2.3.4"]),
        );
        assert_eq!(c[3], "5.6.7.8,lb.example.com,1.2.3.4");
        assert_eq!(c[4], "53/UDP");
        let c = cells("", "Service", json!({"spec": {"type": "ExternalName", "externalName": "db.example.com"}}));
        assert_eq!(&c[1..5], &[json!("ExternalName"), json!("<none>"), json!("db.example.com"), json!("<none>")]);
        // Defaults: type ClusterIP, protocol TCP; headless shows "None".
        let c = cells("", "Service", json!({"spec": {"clusterIP": "None", "ports": [{"port": 8080}]}}));
        assert_eq!(&c[1..5], &[json!("ClusterIP"), json!("None"), json!("<none>"), json!("8080/TCP")]);
        assert_eq!(c[6], "<none>");
    }

    #[test]
    fn core_kinds() {
        let c = cells("", "Secret", json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}));
        assert_eq!(&c[1..3], &[json!("kubernetes.io/tls"), json!(2)]);
        assert_eq!(cells("", "Secret", json!({}))[1], "Opaque");
        assert_eq!(cells("", "ConfigMap", json!({"data": {"a": "1"}, "binaryData": {"b": ""}}))[1], 2);
        assert_eq!(cells("", "Namespace", json!({"status": {"phase": "Terminating"}}))[1], "Terminating");
        assert_eq!(cells("", "ServiceAccount", json!({"secrets": [{"name": "t"}]}))[1], 1);

        let (names, c) = row(
            "",
            "Node",
            json!({
            "metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.1"}],
                "nodeInfo": {"kubeletVersion": "v1.32.0-flotilla", "osImage": "Flotilla"}}}),
        );
        assert_eq!(
            names,
            [
                "Name",
                "Status",
                "Roles",
                "Age",
                "Version",
                "Internal-IP",
                "External-IP",
                "OS-Image",
                "Kernel-Version",
                "Container-Runtime"
            ]
        );
        assert_eq!(
            Value::Array(c),
            json!([
                "n1",
                "Ready,SchedulingDisabled",
                "control-plane,worker",
                "<unknown>",
                "v1.32.0-flotilla",
                "10.0.0.1",
                "<none>",
                "Flotilla",
                "<unknown>",
                "<unknown>"
            ])
        );
        assert_eq!(cells("", "Node", json!({}))[1], "Unknown");

        let c = cells(
            "",
            "Endpoints",
            json!({"subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]},
            {"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]}),
        );
        assert_eq!(c[1], "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more...");
        assert_eq!(cells("", "Endpoints", json!({}))[1], "<none>");
        let c =
            cells("", "Endpoints", json!({"subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 53}]}]}));
        assert_eq!(c[1], "[fd00::1]:53");
    }

    #[test]
    fn events_core_and_events_api() {
        let (names, c) = row(
            "",
            "Event",
            json!({
            "metadata": {"name": "web.17a"}, "type": "Warning", "reason": "BackOff",
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{a}"},
            "source": {"component": "kubelet", "host": "n1"}, "message": "Back-off restarting\n",
            "firstTimestamp": ago(600), "lastTimestamp": ago(5), "count": 7}),
        );
        assert_eq!(
            names,
            ["Last Seen", "Type", "Reason", "Object", "Subobject", "Source", "Message", "First Seen", "Count", "Name"]
        );
        assert_eq!(
            Value::Array(c),
            json!([
                "5s",
                "Warning",
                "BackOff",
                "pod/web",
                "spec.containers{a}",
                "kubelet, n1",
                "Back-off restarting",
                "10m",
                7,
                "web.17a"
            ])
        );
        let c = cells(
            "events.k8s.io",
            "Event",
            json!({"metadata": {"name": "e"}, "type": "Normal", "reason": "Scheduled",
            "regarding": {"kind": "Pod", "name": "web"}, "note": "assigned", "reportingController": "scheduler",
            "eventTime": ago(70)}),
        );
        assert_eq!(
            Value::Array(c),
            json!(["70s", "Normal", "Scheduled", "pod/web", "", "scheduler", "assigned", "70s", 1, "e"])
        );
        let c = cells("", "Event", json!({"eventTime": ago(900), "series": {"count": 3, "lastObservedTime": ago(20)}}));
        assert_eq!((&c[0], &c[7], &c[8]), (&json!("20s"), &json!("15m"), &json!(3)));
    }

    #[test]
    fn resource_quota_requests_and_limits() {
        let c = cells(
            "",
            "ResourceQuota",
            json!({"status": {
            "hard": {"requests.cpu": "2", "limits.memory": "2Gi", "pods": "10", "limits.cpu": "4"},
            "used": {"requests.cpu": "500m", "pods": "3"}}}),
        );
        assert_eq!(
            &c[1..3],
            &[json!("pods: 3/10, requests.cpu: 500m/2"), json!("limits.cpu: 0/4, limits.memory: 0/2Gi")]
        );
    }

    #[test]
    fn lease_holder() {
        assert_eq!(cells("coordination.k8s.io", "Lease", json!({"spec": {"holderIdentity": "n1"}}))[1], "n1");
    }
}
