//! What the Endpoints, EndpointSlice and EndpointSlice-mirroring controllers share
//! (Kubernetes' `k8s.io/endpointslice/util` and `pkg/api/v1/endpoints`): which Services
//! select pods, which pods are published, a pod's IPs, the container port a service port
//! resolves to in one pod, the hostname rule, the repacking of Endpoints subsets, the
//! identity and comparison of slice endpoints, and the
//! `endpoints.kubernetes.io/last-change-trigger-time` the controllers write.
//!
//! - A Service selects pods only with a non-empty `spec.selector` (a map, matched by
//!   equality) and when it is not of type ExternalName; others get nothing from these
//!   controllers and their Endpoints and EndpointSlices are the user's.
//! - Terminal pods (Succeeded, Failed) and pods without an IP are never published;
//!   terminating pods only where the caller includes them.
//! - Repacked subsets are canonical: equal inputs give equal output, whatever their order.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::objects::{deleting, labels, parse_time};
use super::pods::pod_terminal;

pub(crate) const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// Set (empty) on the Endpoints and EndpointSlices of a Service without a cluster IP.
pub(crate) const HEADLESS: &str = "service.kubernetes.io/headless";
/// The field manager every controller writes with; its managedFields entry dates the
/// controller's last write.
const CONTROLLER_MANAGER: &str = "kube-controller-manager";

/// The Service's selector when the Endpoints and EndpointSlice controllers manage it:
/// a non-empty selector and a type other than ExternalName.
pub(crate) fn managed_selector(svc: &Value) -> Option<&Map<String, Value>> {
    if svc["spec"]["type"] == "ExternalName" {
        return None;
    }
    svc["spec"]["selector"].as_object().filter(|s| !s.is_empty())
}

/// Every selector pair is among the pod's labels.
pub(crate) fn selects(selector: &Map<String, Value>, pod: &Value) -> bool {
    let l = labels(pod);
    selector.iter().all(|(k, v)| l.and_then(|l| l.get(k)) == Some(v))
}

/// Kubernetes' ShouldPodBeInEndpoints: not terminal, has an IP, and not terminating
/// unless `include_terminating`.
pub(crate) fn published(pod: &Value, include_terminating: bool) -> bool {
    if pod_terminal(pod) || pod_ips(pod).is_empty() {
        return false;
    }
    include_terminating || !deleting(pod)
}

/// The pod's IPs, normalized (`status.podIPs`, or `status.podIP` when that is missing);
/// unparsable ones are dropped.
pub(crate) fn pod_ips(pod: &Value) -> Vec<IpAddr> {
    let listed: Vec<&str> = pod["status"]["podIPs"].as_array().map(|a| a.iter().filter_map(|p| p["ip"].as_str()).collect()).unwrap_or_default();
    let raw = if listed.is_empty() { pod["status"]["podIP"].as_str().into_iter().collect() } else { listed };
    raw.into_iter().filter_map(|s| s.parse().ok()).collect()
}

/// A cluster IP other than "None" is set (Kubernetes' IsServiceIPSet).
pub(crate) fn service_ip_set(svc: &Value) -> bool {
    svc["spec"]["clusterIP"].as_str().is_some_and(|ip| !ip.is_empty() && ip != "None")
}

/// Headless: `spec.clusterIP` is "None".
pub(crate) fn headless(svc: &Value) -> bool {
    svc["spec"]["clusterIP"] == "None"
}

/// The container port `svc_port` reaches in `pod`: a numeric targetPort as is (the port
/// when unset); a named one is the containerPort of that name and the same protocol in
/// the pod's containers, then its restartable init containers (sidecars). None when the
/// pod has no such port.
pub(crate) fn find_port(pod: &Value, svc_port: &Value) -> Option<i64> {
    let target = match &svc_port["targetPort"] {
        Value::Null => return svc_port["port"].as_i64(),
        t => t,
    };
    if let Some(n) = target.as_i64() {
        return Some(n);
    }
    let name = target.as_str()?;
    let wanted = protocol(svc_port);
    let sidecars = pod["spec"]["initContainers"].as_array().into_iter().flatten().filter(|c| c["restartPolicy"] == "Always");
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(sidecars)
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .find(|p| p["name"].as_str() == Some(name) && protocol(p) == wanted)
        .and_then(|p| p["containerPort"].as_i64())
}

/// A port's protocol, TCP when unset (the API default).
pub(crate) fn protocol(port: &Value) -> &str {
    port["protocol"].as_str().unwrap_or("TCP")
}

/// The pod's `spec.hostname` when it is published under this Service: set, with
/// `spec.subdomain` naming the Service in the same namespace.
pub(crate) fn hostname<'a>(pod: &'a Value, svc: &Value) -> Option<&'a str> {
    let h = pod["spec"]["hostname"].as_str().filter(|h| !h.is_empty())?;
    let same_ns = pod["metadata"]["namespace"] == svc["metadata"]["namespace"];
    (same_ns && pod["spec"]["subdomain"] == svc["metadata"]["name"]).then_some(h)
}

/// When the controller last wrote any of `objects`: the latest time of a
/// `kube-controller-manager` entry in their managedFields.
pub(crate) fn last_controller_write<'a>(objects: impl IntoIterator<Item = &'a Value>) -> Option<DateTime<Utc>> {
    objects
        .into_iter()
        .flat_map(|o| o["metadata"]["managedFields"].as_array().into_iter().flatten())
        .filter(|e| e["manager"] == CONTROLLER_MANAGER)
        .filter_map(|e| parse_time(&e["time"]))
        .max()
}

/// The readiness each pod (by uid) is published with in `objects`: Endpoints (ready and
/// not-ready addresses) or EndpointSlices (each endpoint's `conditions.ready`).
pub(crate) fn published_readiness<'a>(objects: impl IntoIterator<Item = &'a Value>) -> HashMap<&'a str, bool> {
    let mut out = HashMap::new();
    let uid = |a: &'a Value| a["targetRef"]["uid"].as_str();
    for o in objects {
        for s in o["subsets"].as_array().into_iter().flatten() {
            for (key, ready) in [("addresses", true), ("notReadyAddresses", false)] {
                out.extend(s[key].as_array().into_iter().flatten().filter_map(uid).map(|u| (u, ready)));
            }
        }
        for e in o["endpoints"].as_array().into_iter().flatten() {
            out.extend(uid(e).map(|u| (u, e["conditions"]["ready"] != false)));
        }
    }
    out
}

/// The last-change trigger time to write now (None: drop the annotation). With no
/// earlier write, the Service's creation; otherwise the earliest Ready transition of the
/// selected pods that changed: those whose transition came at or after `last_write`,
/// and those not yet published with the readiness they have now (`published`, by uid;
/// a pod's status can reach the API after a write that happened later than the
/// transition it reports). Kubernetes keeps the previous pass's times in memory; the
/// stored objects stand in for them, so a leader change loses nothing.
pub(crate) fn trigger_time(svc: &Value, pods: &[&Value], last_write: Option<DateTime<Utc>>, published: &HashMap<&str, bool>) -> Option<DateTime<Utc>> {
    let created = parse_time(&svc["metadata"]["creationTimestamp"]);
    let Some(since) = last_write else { return created };
    let changed = pods.iter().filter_map(|p| {
        let c = p["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")?;
        let at = parse_time(&c["lastTransitionTime"])?;
        let uid = p["metadata"]["uid"].as_str().unwrap_or("");
        let unpublished = published.get(uid) != Some(&(c["status"] == "True"));
        (at >= since || unpublished).then_some(at)
    });
    changed.chain(created.filter(|t| *t >= since)).min()
}

/// One address offering one port of an Endpoints subset (`port` None: a subset without
/// ports).
pub(crate) struct Offer {
    pub addr: Value,
    pub ready: bool,
    pub port: Option<Value>,
}

/// (name, port, protocol, appProtocol) of an EndpointPort.
type PortKey = (String, i64, String, String);

fn port_key(p: &Value) -> PortKey {
    let s = |k: &str| p[k].as_str().unwrap_or("").to_string();
    (s("name"), p["port"].as_i64().unwrap_or(0), protocol(p).to_string(), s("appProtocol"))
}

/// An address's identity: (ip, targetRef uid).
type AddrKey = (String, String);

/// Which addresses offer one port, each ready or not.
type Offering = (Option<Value>, BTreeMap<AddrKey, bool>);

/// Kubernetes' RepackSubsets: the subsets for `offers`, one per group of ports offered by
/// the same addresses with the same readiness (not ready wins for an address offered both
/// ways; an address keeps the first form it was offered in). Addresses sort by IP then
/// targetRef uid, as in Kubernetes. Kubernetes orders ports and subsets by an MD5 of a Go
/// value dump; here ports sort by (name, port, protocol, appProtocol) and subsets by their
/// addresses, which is as canonical.
pub(crate) fn repack(offers: impl IntoIterator<Item = Offer>) -> Vec<Value> {
    let mut addresses: HashMap<AddrKey, Value> = HashMap::new();
    let mut by_port: BTreeMap<Option<PortKey>, Offering> = BTreeMap::new();
    for Offer { addr, ready, port } in offers {
        let key = (addr["ip"].as_str().unwrap_or("").to_string(), addr["targetRef"]["uid"].as_str().unwrap_or("").to_string());
        let entry = by_port.entry(port.as_ref().map(port_key)).or_insert_with(|| (port, BTreeMap::new()));
        let r = entry.1.entry(key.clone()).or_insert(ready);
        *r = *r && ready;
        addresses.entry(key).or_insert(addr);
    }
    let mut groups: BTreeMap<Vec<(AddrKey, bool)>, Vec<Value>> = BTreeMap::new();
    for (_, (port, addrs)) in by_port {
        groups.entry(addrs.into_iter().collect()).or_default().extend(port);
    }
    groups
        .into_iter()
        .map(|(addrs, ports)| {
            let pick = |want: bool| -> Vec<Value> { addrs.iter().filter(|(_, r)| *r == want).filter_map(|(k, _)| addresses.get(k).cloned()).collect() };
            let mut s = Map::new();
            let (ready, not_ready) = (pick(true), pick(false));
            if !ready.is_empty() {
                s.insert("addresses".into(), Value::Array(ready));
            }
            if !not_ready.is_empty() {
                s.insert("notReadyAddresses".into(), Value::Array(not_ready));
            }
            if !ports.is_empty() {
                s.insert("ports".into(), Value::Array(ports));
            }
            Value::Object(s)
        })
        .collect()
}

/// A slice endpoint's identity within a port group: sorted addresses, hostname, pod namespace
/// and name (Kubernetes' endpoint hash). Conditions, node and zone may change in place.
pub(crate) type EndpointKey = (Vec<String>, String, String, String);

pub(crate) fn endpoint_key(ep: &Value) -> EndpointKey {
    let mut addrs: Vec<String> = ep["addresses"].as_array().into_iter().flatten().filter_map(|a| a.as_str().map(str::to_string)).collect();
    addrs.sort();
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    (addrs, s(&ep["hostname"]), s(&ep["targetRef"]["namespace"]), s(&ep["targetRef"]["name"]))
}

/// A port set, order-free: sorted (name, port, protocol, appProtocol).
pub(crate) type PortsKey = Vec<(String, i64, String, String)>;

pub(crate) fn ports_key(ports: &Value) -> PortsKey {
    let mut k: PortsKey = ports
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let s = |f: &str| p[f].as_str().unwrap_or("").to_string();
            (s("name"), p["port"].as_i64().unwrap_or(0), protocol(p).to_string(), s("appProtocol"))
        })
        .collect();
    k.sort();
    k
}

/// A list field, `[]` for missing or null.
pub(crate) fn list<'a>(v: &'a Value, field: &str) -> &'a [Value] {
    v[field].as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// Kubernetes stores an empty list as null; so do the slices written here.
pub(crate) fn list_value(items: Vec<Value>) -> Value {
    if items.is_empty() { Value::Null } else { Value::Array(items) }
}

/// The same apart from what [`endpoint_key`] covers (Kubernetes' EndpointsEqualBeyondHash):
/// nodeName, zone, conditions and targetRef (resourceVersion ignored).
pub(crate) fn same_beyond_key(a: &Value, b: &Value) -> bool {
    let opt = |v: &Value| if v.is_null() { None } else { Some(v.clone()) };
    let target = |v: &Value| {
        let mut t = v["targetRef"].clone();
        if let Some(o) = t.as_object_mut() {
            o.remove("resourceVersion");
        }
        opt(&t)
    };
    ["nodeName", "zone"].iter().all(|f| opt(&a[*f]) == opt(&b[*f]))
        && ["ready", "serving", "terminating"].iter().all(|c| opt(&a["conditions"][*c]) == opt(&b["conditions"][*c]))
        && target(a) == target(b)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::controllers::objects::{t, timestamp};

    fn pod_with_ports(ports: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": [{"name": "c", "ports": ports}]}})
    }

    #[test]
    fn ports_resolve_by_number_or_name_and_protocol() {
        let pod = pod_with_ports(json!([{"name": "http", "containerPort": 8080}, {"name": "dns", "containerPort": 53, "protocol": "UDP"}]));
        assert_eq!(find_port(&pod, &json!({"port": 80, "targetPort": 9000})), Some(9000));
        assert_eq!(find_port(&pod, &json!({"port": 80})), Some(80));
        assert_eq!(find_port(&pod, &json!({"port": 80, "targetPort": "http"})), Some(8080));
        assert_eq!(find_port(&pod, &json!({"port": 53, "targetPort": "dns", "protocol": "UDP"})), Some(53));
        // The protocol must match too.
        assert_eq!(find_port(&pod, &json!({"port": 53, "targetPort": "dns"})), None);
        assert_eq!(find_port(&pod, &json!({"port": 80, "targetPort": "nope"})), None);
        let mut sidecar = pod_with_ports(json!([]));
        sidecar["spec"]["initContainers"] = json!([
            {"name": "once", "ports": [{"name": "m", "containerPort": 1}]},
            {"name": "side", "restartPolicy": "Always", "ports": [{"name": "m", "containerPort": 2}]}]);
        assert_eq!(find_port(&sidecar, &json!({"port": 80, "targetPort": "m"})), Some(2));
    }

    #[test]
    fn published_pods() {
        let mut p = json!({"metadata": {"name": "p"}, "status": {"phase": "Running", "podIP": "10.42.0.5"}});
        assert!(published(&p, false));
        assert_eq!(pod_ips(&p), vec!["10.42.0.5".parse::<IpAddr>().expect("ip")]);
        p["metadata"]["deletionTimestamp"] = json!(timestamp(t(0)));
        assert!(!published(&p, false) && published(&p, true));
        p["status"]["phase"] = json!("Succeeded");
        assert!(!published(&p, true));
        assert!(!published(&json!({"status": {"phase": "Running"}}), true));
    }

    #[test]
    fn selectors_and_hostnames() {
        let svc = json!({"metadata": {"name": "db", "namespace": "default"}, "spec": {"selector": {"app": "db"}}});
        let sel = managed_selector(&svc).expect("selector");
        let mut pod = json!({"metadata": {"namespace": "default", "labels": {"app": "db", "x": "y"}}, "spec": {"hostname": "db-0", "subdomain": "db"}});
        assert!(selects(sel, &pod));
        assert_eq!(hostname(&pod, &svc), Some("db-0"));
        pod["spec"]["subdomain"] = json!("other");
        assert_eq!(hostname(&pod, &svc), None);
        assert!(!selects(sel, &json!({"metadata": {"labels": {"app": "web"}}})));
        assert!(managed_selector(&json!({"spec": {"selector": {}}})).is_none());
        assert!(managed_selector(&json!({"spec": {"type": "ExternalName", "selector": {"a": "b"}}})).is_none());
    }

    #[test]
    fn trigger_time_is_the_earliest_change_since_the_last_write() {
        let svc = json!({"metadata": {"creationTimestamp": timestamp(t(0))}});
        let ready_at = |uid: &str, s: i64| json!({"metadata": {"uid": uid}, "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": timestamp(t(s))}]}});
        let (a, b, c) = (ready_at("a", 5), ready_at("b", 20), ready_at("c", 30));
        let none = HashMap::new();
        assert_eq!(trigger_time(&svc, &[&a], None, &none), Some(t(0)));
        let a_ready = HashMap::from([("a", true)]);
        assert_eq!(trigger_time(&svc, &[&a, &b, &c], Some(t(10)), &a_ready), Some(t(20)));
        assert_eq!(trigger_time(&svc, &[&a], Some(t(10)), &a_ready), None);
        // A pod whose Ready transition predates the last write but which is not yet
        // published as ready (its status reached the API late) still counts.
        assert_eq!(trigger_time(&svc, &[&a], Some(t(10)), &none), Some(t(5)));
        assert_eq!(trigger_time(&svc, &[&a], Some(t(10)), &HashMap::from([("a", false)])), Some(t(5)));
        let written = json!({"metadata": {"managedFields": [
            {"manager": "kubectl", "time": timestamp(t(50))},
            {"manager": "kube-controller-manager", "time": timestamp(t(10))}]}});
        assert_eq!(last_controller_write([&written]), Some(t(10)));
    }

    #[test]
    fn readiness_as_published() {
        let ep = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1", "targetRef": {"uid": "a"}}], "notReadyAddresses": [{"ip": "10.0.0.2", "targetRef": {"uid": "b"}}]}]});
        let slice = json!({"endpoints": [{"targetRef": {"uid": "c"}, "conditions": {"ready": false}}, {"targetRef": {"uid": "d"}, "conditions": {"ready": true}}]});
        assert_eq!(published_readiness([&ep, &slice]), HashMap::from([("a", true), ("b", false), ("c", false), ("d", true)]));
    }
}
