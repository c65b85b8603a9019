//! EndpointSlice controller (discovery.k8s.io/v1, Kubernetes' endpointslice-controller):
//! the EndpointSlices of every Service that selects pods.
//!
//! - Only Services with a selector and a type other than ExternalName are managed, and only
//!   slices labelled `kubernetes.io/service-name: <service>` and
//!   `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`; slices
//!   being deleted are ignored.
//! - One set of slices per address type of the Service (`spec.ipFamilies`, else its cluster
//!   IP's family, else both); slices of another type, or owned by an earlier Service of the
//!   same name, are deleted.
//! - Every non-terminal pod with an IP is an endpoint, terminating ones included:
//!   addresses (the pod's IPs of the slice's type), conditions `serving` (pod Ready),
//!   `terminating` (deletionTimestamp set) and `ready` (serving and not terminating, or
//!   always with `publishNotReadyAddresses`), nodeName, zone (the node's
//!   `topology.kubernetes.io/zone`), targetRef, and hostname when the pod's subdomain
//!   names the Service. A pod whose node does not exist is left out unless the Service
//!   publishes not-ready addresses.
//! - Endpoints are grouped by their resolved port set (named target ports resolve per
//!   pod); each group fills slices of at most 100 endpoints. Existing slices are updated in
//!   place: endpoints keep their slice, changed ones are rewritten where they are, new ones
//!   fill slices already being written (fullest first), then the unchanged slice that fits
//!   them best, then new slices (`generateName: <service>-`). A slice left empty is deleted,
//!   and a create is turned into an update of a slice about to be deleted. A Service with
//!   no endpoints keeps one empty placeholder slice.
//! - Labels are the Service's (reserved ones excepted) plus `kubernetes.io/service-name`,
//!   `endpointslice.kubernetes.io/managed-by` and, without a cluster IP,
//!   `service.kubernetes.io/headless`; the Service is the controller owner. Every created or
//!   updated slice gets `endpoints.kubernetes.io/last-change-trigger-time`.
//! - Nothing is written when endpoints (targetRef resourceVersions ignored) and labels
//!   match; updates carry the resourceVersion the plan saw. Slices of a deleted Service go
//!   with it through the garbage collector (ownerReference).

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use super::objects::{by_namespace, controller_write_options, deleting, ignore_transient, info, name, timestamp, uid};
use super::owner::controller_ref;
use super::pods::pod_ready;
use super::service_endpoints::{self, EndpointKey, HEADLESS, PortsKey, TRIGGER_TIME, endpoint_key, list, list_value, ports_key, same_beyond_key};
use crate::apiserver::Api;
use crate::apiserver::error::ApiError;
use crate::apiserver::service::{DeleteOptions, Part};

const SERVICE_NAME: &str = "kubernetes.io/service-name";
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// Most endpoints in one slice (kube-controller-manager's --max-endpoints-per-slice default).
const MAX_ENDPOINTS_PER_SLICE: usize = 100;
const ZONE: &str = "topology.kubernetes.io/zone";

// ---- plan ----

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// Create this slice (named by `generateName`).
    Create { slice: Value },
    /// Replace the stored slice of this name with this one (with the resourceVersion seen).
    Update { slice: Value },
    /// Delete this slice.
    Delete { name: String, uid: String },
}

/// Pure: the writes that bring the slices of `svc` in line with its pods. `slices` are the
/// namespace's EndpointSlices, `nodes` the cluster's Nodes by name.
pub(crate) fn plan(svc: &Value, pods: &[&Value], slices: &[&Value], nodes: &HashMap<&str, &Value>) -> Vec<Step> {
    let Some(selector) = service_endpoints::managed_selector(svc) else { return vec![] };
    let selected: Vec<&Value> = pods.iter().copied().filter(|p| service_endpoints::selects(selector, p)).collect();
    let ours: Vec<&Value> = slices
        .iter()
        .copied()
        .filter(|s| s["metadata"]["labels"][SERVICE_NAME] == svc["metadata"]["name"] && s["metadata"]["labels"][MANAGED_BY] == CONTROLLER_NAME && !deleting(s))
        .collect();
    let trigger = service_endpoints::trigger_time(
        svc,
        &selected,
        service_endpoints::last_controller_write(ours.iter().copied()),
        &service_endpoints::published_readiness(ours.iter().copied()),
    );
    let types = address_types(svc);
    let mut steps = Vec::new();
    for t in &types {
        let of_type: Vec<&Value> = ours.iter().copied().filter(|s| s["addressType"] == *t).collect();
        steps.extend(plan_address_type(svc, &selected, &of_type, t, nodes, trigger.map(timestamp)));
    }
    for s in ours.iter().filter(|s| !types.iter().any(|t| s["addressType"] == *t)) {
        steps.push(Step::Delete { name: name(s).to_string(), uid: uid(s).to_string() });
    }
    steps
}

/// The address types the Service's slices carry.
fn address_types(svc: &Value) -> Vec<&'static str> {
    let family = |f: &str| match f {
        "IPv4" => Some("IPv4"),
        "IPv6" => Some("IPv6"),
        _ => None,
    };
    let mut types: Vec<&'static str> = svc["spec"]["ipFamilies"].as_array().into_iter().flatten().filter_map(|f| f.as_str().and_then(family)).collect();
    types.dedup();
    if !types.is_empty() {
        return types;
    }
    if service_endpoints::service_ip_set(svc) {
        let v6 = svc["spec"]["clusterIP"].as_str().is_some_and(|ip| ip.contains(':'));
        return vec![if v6 { "IPv6" } else { "IPv4" }];
    }
    // Headless without families (an API server that predates them): both, as Kubernetes does.
    vec!["IPv4", "IPv6"]
}

fn owned_by(slice: &Value, svc: &Value) -> bool {
    slice["metadata"]["ownerReferences"].as_array().into_iter().flatten().any(|o| o["uid"] == svc["metadata"]["uid"] && o["kind"] == "Service" && o["apiVersion"] == "v1")
}

/// The slice labels for `svc`, and whether `slice`'s own (non-reserved) labels differ
/// from the Service's.
fn slice_labels(slice: Option<&Value>, svc: &Value) -> (Map<String, Value>, bool) {
    let reserved = |k: &str| k == SERVICE_NAME || k == MANAGED_BY || k == HEADLESS;
    let unreserved = |v: Option<&Value>| -> Map<String, Value> {
        v.and_then(|v| v["metadata"]["labels"].as_object()).into_iter().flatten().filter(|(k, _)| !reserved(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    let mut labels = unreserved(Some(svc));
    let changed = unreserved(slice) != labels;
    if !service_endpoints::service_ip_set(svc) {
        labels.insert(HEADLESS.into(), json!(""));
    }
    labels.insert(SERVICE_NAME.into(), svc["metadata"]["name"].clone());
    labels.insert(MANAGED_BY.into(), json!(CONTROLLER_NAME));
    (labels, changed)
}

fn new_slice(svc: &Value, ports: Value, address_type: &str) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "generateName": format!("{}-", name(svc)),
            "namespace": svc["metadata"]["namespace"].clone(),
            "labels": slice_labels(None, svc).0,
            "ownerReferences": [controller_ref(svc, "v1", "Service")],
        },
        "addressType": address_type,
        "endpoints": null,
        "ports": ports,
    })
}

/// The ports `pod` offers for the Service's ports, in the Service's order; empty for a
/// headless Service without ports.
fn endpoint_ports(svc: &Value, pod: &Value) -> Vec<Value> {
    let ports = list(&svc["spec"], "ports");
    ports
        .iter()
        .filter_map(|sp| {
            let port = service_endpoints::find_port(pod, sp)?;
            let mut p = json!({"name": sp["name"].as_str().unwrap_or(""), "port": port, "protocol": service_endpoints::protocol(sp)});
            if let Some(a) = sp["appProtocol"].as_str() {
                p["appProtocol"] = json!(a);
            }
            Some(p)
        })
        .collect()
}

fn pod_endpoint(pod: &Value, node: Option<&Value>, svc: &Value, address_type: &str) -> Value {
    let serving = pod_ready(pod);
    let terminating = deleting(pod);
    let ready = svc["spec"]["publishNotReadyAddresses"] == json!(true) || (serving && !terminating);
    let v6 = address_type == "IPv6";
    let addresses: Vec<String> = service_endpoints::pod_ips(pod).into_iter().filter(|ip| ip.is_ipv6() == v6).map(|ip| ip.to_string()).collect();
    let mut ep = json!({
        "addresses": addresses,
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
        "targetRef": {"kind": "Pod", "namespace": pod["metadata"]["namespace"].clone(), "name": name(pod), "uid": uid(pod)},
    });
    if let Some(n) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        ep["nodeName"] = json!(n);
    }
    if let Some(z) = node.and_then(|n| n["metadata"]["labels"][ZONE].as_str()).filter(|z| !z.is_empty()) {
        ep["zone"] = json!(z);
    }
    if let Some(h) = service_endpoints::hostname(pod, svc) {
        ep["hostname"] = json!(h);
    }
    ep
}

/// Slices to create, update and delete for one address type; created slices have no name.
#[derive(Default)]
struct Changes {
    create: Vec<Value>,
    update: Vec<Value>,
    delete: Vec<Value>,
}

fn plan_address_type(svc: &Value, pods: &[&Value], existing: &[&Value], address_type: &str, nodes: &HashMap<&str, &Value>, trigger: Option<String>) -> Vec<Step> {
    let mut ch = Changes::default();
    let mut by_ports: BTreeMap<PortsKey, Vec<&Value>> = BTreeMap::new();
    for s in existing {
        if owned_by(s, svc) {
            by_ports.entry(ports_key(&s["ports"])).or_default().push(s);
        } else {
            ch.delete.push((*s).clone());
        }
    }
    for group in by_ports.values_mut() {
        group.sort_by_key(|s| name(s));
    }

    let publish_not_ready = svc["spec"]["publishNotReadyAddresses"] == json!(true);
    let mut desired: BTreeMap<PortsKey, (Value, BTreeMap<EndpointKey, Value>)> = BTreeMap::new();
    for pod in pods {
        if !service_endpoints::published(pod, true) {
            continue;
        }
        let ports = Value::Array(endpoint_ports(svc, pod));
        let group = desired.entry(ports_key(&ports)).or_insert_with(|| (ports, BTreeMap::new()));
        let node = nodes.get(pod["spec"]["nodeName"].as_str().unwrap_or("")).copied();
        if node.is_none() && !publish_not_ready {
            // The pod GC will remove it; until then it is not published.
            continue;
        }
        let ep = pod_endpoint(pod, node, svc, address_type);
        if !list(&ep, "addresses").is_empty() {
            group.1.insert(endpoint_key(&ep), ep);
        }
    }

    let undesired: Vec<Value> = by_ports.iter().filter(|(k, _)| !desired.contains_key(*k)).flat_map(|(_, slices)| slices.iter().map(|s| (*s).clone())).collect();
    for (key, (ports, mut want)) in desired {
        let slices = by_ports.get(&key).map(Vec::as_slice).unwrap_or(&[]);
        plan_port_group(svc, slices, &mut want, &ports, address_type, &mut ch);
    }
    ch.delete.extend(undesired);

    // A Service with no endpoints keeps one empty slice.
    if existing.len() == ch.delete.len() && ch.create.is_empty() {
        let placeholder = new_slice(svc, Value::Null, address_type);
        if ch.delete.len() == 1 && same_placeholder(&ch.delete[0], &placeholder) {
            ch.delete.clear();
        } else {
            ch.create.push(placeholder);
        }
    }
    finalize(svc, ch, trigger)
}

/// The slices of one port group: `slices` are the existing ones, `want` the desired
/// endpoints (taken as they are placed).
fn plan_port_group(svc: &Value, slices: &[&Value], want: &mut BTreeMap<EndpointKey, Value>, ports: &Value, address_type: &str, ch: &mut Changes) {
    let mut unchanged: Vec<Value> = Vec::new();
    let mut updated: Vec<Value> = Vec::new();
    for s in slices {
        let mut kept = Vec::new();
        let mut changed = false;
        for ep in list(s, "endpoints") {
            if let Some(d) = want.remove(&endpoint_key(ep)) {
                changed |= !same_beyond_key(&d, ep);
                kept.push(d);
            }
        }
        let (labels, labels_changed) = slice_labels(Some(s), svc);
        let removed = kept.len() != list(s, "endpoints").len();
        if (changed || removed) && kept.is_empty() {
            ch.delete.push((*s).clone());
        } else if changed || removed || labels_changed {
            let mut n = (*s).clone();
            n["endpoints"] = Value::Array(kept);
            n["metadata"]["labels"] = Value::Object(labels);
            updated.push(n);
        } else {
            unchanged.push((*s).clone());
        }
    }

    // Fill the slices being written anyway, fullest first.
    if !want.is_empty() {
        updated.sort_by_key(|s| std::cmp::Reverse(list(s, "endpoints").len()));
        for s in &mut updated {
            fill(s, want);
        }
    }
    // Then the unchanged slice that the rest fits best, or new slices.
    while !want.is_empty() {
        let fit = if want.len() < MAX_ENDPOINTS_PER_SLICE { best_fit(&unchanged, want.len()) } else { None };
        match fit {
            Some(i) => {
                let mut s = unchanged.remove(i);
                fill(&mut s, want);
                updated.push(s);
            }
            None => {
                let mut s = new_slice(svc, ports.clone(), address_type);
                fill(&mut s, want);
                ch.create.push(s);
            }
        }
    }
    ch.update.extend(updated);
}

/// Moves endpoints from `want` into `slice` until it holds [`MAX_ENDPOINTS_PER_SLICE`].
fn fill(slice: &mut Value, want: &mut BTreeMap<EndpointKey, Value>) {
    let mut eps = list(slice, "endpoints").to_vec();
    while eps.len() < MAX_ENDPOINTS_PER_SLICE {
        let Some((_, ep)) = want.pop_first() else { break };
        eps.push(ep);
    }
    slice["endpoints"] = list_value(eps);
}

/// The slice among `slices` that `n` more endpoints leave closest to full, if any fits.
fn best_fit(slices: &[Value], n: usize) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (i, s) in slices.iter().enumerate() {
        let Some(room) = MAX_ENDPOINTS_PER_SLICE.checked_sub(n + list(s, "endpoints").len()) else { continue };
        if best.is_none_or(|(_, r)| room < r) {
            best = Some((i, room));
            if room == 0 {
                break;
            }
        }
    }
    best.map(|(i, _)| i)
}

/// Kubernetes' placeholder comparison: namespace, labels, owner references, address type,
/// and no endpoints or ports.
fn same_placeholder(stored: &Value, placeholder: &Value) -> bool {
    let labels = |v: &Value| v["metadata"]["labels"].as_object().cloned().unwrap_or_default();
    stored["metadata"]["namespace"] == placeholder["metadata"]["namespace"]
        && labels(stored) == labels(placeholder)
        && stored["metadata"]["ownerReferences"] == placeholder["metadata"]["ownerReferences"]
        && stored["addressType"] == placeholder["addressType"]
        && list(stored, "endpoints").is_empty()
        && list(stored, "ports").is_empty()
}

/// Turns creates into updates of slices about to be deleted (same address type, owned by
/// the Service), stamps the trigger time, and orders the writes: creates (none while the
/// Service is being deleted), updates, deletes.
fn finalize(svc: &Value, mut ch: Changes, trigger: Option<String>) -> Vec<Step> {
    let mut i = 0;
    while i < ch.delete.len() && !ch.create.is_empty() {
        let old = &ch.delete[i];
        let last = ch.create.len() - 1;
        if old["addressType"] == ch.create[last]["addressType"] && owned_by(old, svc) {
            let old = ch.delete.remove(i);
            let mut s = ch.create.remove(last);
            if let Some(m) = s["metadata"].as_object_mut() {
                m.remove("generateName");
                m.insert("name".into(), old["metadata"]["name"].clone());
                m.insert("resourceVersion".into(), old["metadata"]["resourceVersion"].clone());
                m.insert("uid".into(), old["metadata"]["uid"].clone());
            }
            ch.update.push(s);
        } else {
            i += 1;
        }
    }
    let stamp = |mut s: Value| {
        let mut annotations = s["metadata"]["annotations"].as_object().cloned().unwrap_or_default();
        match &trigger {
            Some(t) => annotations.insert(TRIGGER_TIME.into(), json!(t)),
            None => annotations.remove(TRIGGER_TIME),
        };
        s["metadata"]["annotations"] = Value::Object(annotations);
        s
    };
    let mut steps = Vec::new();
    if !deleting(svc) {
        steps.extend(ch.create.into_iter().map(|s| Step::Create { slice: stamp(s) }));
    }
    steps.extend(ch.update.into_iter().map(|s| Step::Update { slice: stamp(s) }));
    steps.extend(ch.delete.iter().map(|s| Step::Delete { name: name(s).to_string(), uid: uid(s).to_string() }));
    steps
}

// ---- executor ----

/// Plans every Service's slices and carries out the steps.
pub(crate) async fn reconcile_all(api: &Api, objects: &[crate::store::Keyed]) -> Result<(), ApiError> {
    let pods = by_namespace(objects, "core/pods");
    let slices = by_namespace(objects, "discovery.k8s.io/endpointslices");
    let nodes: HashMap<&str, &Value> = objects.iter().filter(|(k, _)| k.starts_with("core/nodes/")).map(|(_, s)| (name(&s.value), &s.value)).collect();
    let none = Vec::new();
    for (ns, services) in by_namespace(objects, "core/services") {
        let (pods, slices) = (pods.get(ns).unwrap_or(&none), slices.get(ns).unwrap_or(&none));
        for svc in services {
            let steps = plan(svc, pods, slices, &nodes);
            if let Err(e) = execute(api, ns, steps).await {
                let msg = format!("Error updating Endpoint Slices for Service {ns}/{}: {}", name(svc), e.message);
                api.record_event(svc, "Warning", "FailedToUpdateEndpointSlices", &msg, "endpoint-slice-controller").await;
                tracing::warn!(error = %e, service = name(svc), namespace = ns, "endpointslice sync failed");
            }
        }
    }
    Ok(())
}

async fn execute(api: &Api, ns: &str, steps: Vec<Step>) -> Result<(), ApiError> {
    let info = info("discovery.k8s.io", "endpointslices");
    let opts = controller_write_options();
    for step in steps {
        match step {
            Step::Create { slice } => match api.create(info, Some(ns), slice, &opts).await {
                // A terminating namespace takes no new objects.
                Err(e) if e.code != 403 && !e.is_transient() => return Err(e),
                _ => {}
            },
            Step::Update { slice } => ignore_transient(api.update(info, Some(ns), name(&slice), slice.clone(), Part::Main, &opts).await)?,
            Step::Delete { name, uid } => {
                let d = DeleteOptions { uid: Some(uid), ..Default::default() };
                ignore_transient(api.delete(info, Some(ns), &name, &d).await)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::objects::t;

    fn svc() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"tier": "fe"}, "creationTimestamp": timestamp(t(0))},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.43.0.10", "ipFamilies": ["IPv4"],
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]},
        })
    }

    /// A Running pod labelled app=web on node n1 with IP 10.42.N/256.N%256, port http=8080.
    fn pod(n: u32, ready: bool) -> Value {
        let ip = format!("10.42.{}.{}", n / 256, n % 256);
        json!({
            "metadata": {"name": format!("web-{n}"), "namespace": "default", "uid": format!("uid-{n}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": timestamp(t(1))}]},
        })
    }

    fn node() -> Value {
        json!({"metadata": {"name": "n1", "labels": {ZONE: "z1"}}})
    }

    fn endpoint(n: u32, ready: bool, serving: bool, terminating: bool) -> Value {
        json!({
            "addresses": [format!("10.42.{}.{}", n / 256, n % 256)],
            "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
            "targetRef": {"kind": "Pod", "namespace": "default", "name": format!("web-{n}"), "uid": format!("uid-{n}")},
            "nodeName": "n1", "zone": "z1",
        })
    }

    /// Runs the plan against `stored` with node n1.
    fn run(s: &Value, pods: &[Value], stored: &[Value]) -> Vec<Step> {
        let n = node();
        let nodes: HashMap<&str, &Value> = [("n1", &n)].into_iter().collect();
        let pods: Vec<&Value> = pods.iter().collect();
        let stored: Vec<&Value> = stored.iter().collect();
        plan(s, &pods, &stored, &nodes)
    }

    /// What the API server stores for the created or updated slices of `steps`, the
    /// `i`th created one named web-i, written at t(10) (updates replace the stored one).
    fn apply(steps: &[Step], mut stored: Vec<Value>) -> Vec<Value> {
        for (i, step) in steps.iter().enumerate() {
            match step {
                Step::Create { slice } => {
                    let mut s = slice.clone();
                    let m = s["metadata"].as_object_mut().expect("metadata");
                    m.remove("generateName");
                    m.insert("name".into(), json!(format!("web-s{i}")));
                    m.insert("uid".into(), json!(format!("slice-{i}")));
                    m.insert("resourceVersion".into(), json!("1"));
                    m.insert("managedFields".into(), json!([{"manager": "kube-controller-manager", "time": timestamp(t(10))}]));
                    stored.push(s);
                }
                Step::Update { slice } => {
                    let i = stored.iter().position(|s| name(s) == name(slice)).expect("updated slice exists");
                    stored[i] = slice.clone();
                }
                Step::Delete { name: n, .. } => stored.retain(|s| name(s) != n),
            }
        }
        stored
    }

    fn creates(steps: &[Step]) -> Vec<&Value> {
        steps.iter().filter_map(|s| if let Step::Create { slice } = s { Some(slice) } else { None }).collect()
    }

    fn sizes(stored: &[Value]) -> Vec<usize> {
        let mut v: Vec<usize> = stored.iter().map(|s| list(s, "endpoints").len()).collect();
        v.sort();
        v
    }

    #[test]
    fn conditions_labels_owner_and_ports() {
        let mut terminating = pod(3, true);
        terminating["metadata"]["deletionTimestamp"] = json!(timestamp(t(5)));
        let mut done = pod(4, true);
        done["status"]["phase"] = json!("Succeeded");
        let steps = run(&svc(), &[pod(1, true), pod(2, false), terminating, done], &[]);
        let [Step::Create { slice }] = steps.as_slice() else { panic!("{steps:?}") };
        assert_eq!(
            slice["metadata"],
            json!({
                "generateName": "web-", "namespace": "default",
                "labels": {"tier": "fe", SERVICE_NAME: "web", MANAGED_BY: CONTROLLER_NAME},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "svc-uid", "controller": true, "blockOwnerDeletion": true}],
                "annotations": {TRIGGER_TIME: timestamp(t(0))},
            })
        );
        assert_eq!(slice["addressType"], "IPv4");
        assert_eq!(slice["ports"], json!([{"name": "http", "port": 8080, "protocol": "TCP"}]));
        assert_eq!(slice["endpoints"], json!([endpoint(1, true, true, false), endpoint(2, false, false, false), endpoint(3, false, true, true)]));
    }

    #[test]
    fn publish_not_ready_addresses_marks_every_endpoint_ready() {
        let mut s = svc();
        s["spec"]["publishNotReadyAddresses"] = json!(true);
        let steps = run(&s, &[pod(1, false)], &[]);
        assert_eq!(creates(&steps)[0]["endpoints"], json!([endpoint(1, true, false, false)]));
    }

    #[test]
    fn steady_state_writes_nothing_and_changes_update_in_place() {
        let s = svc();
        let stored = apply(&run(&s, &[pod(1, true), pod(2, true)], &[]), vec![]);
        assert!(run(&s, &[pod(1, true), pod(2, true)], &stored).is_empty());
        let mut rv = stored.clone();
        rv[0]["endpoints"][0]["targetRef"]["resourceVersion"] = json!("9");
        assert!(run(&s, &[pod(1, true), pod(2, true)], &rv).is_empty(), "targetRef resourceVersions are ignored");

        let mut unready = pod(2, false);
        unready["status"]["conditions"][0]["lastTransitionTime"] = json!(timestamp(t(11)));
        let steps = run(&s, &[pod(1, true), unready], &stored);
        let [Step::Update { slice }] = steps.as_slice() else { panic!("{steps:?}") };
        assert_eq!((name(slice), slice["metadata"]["resourceVersion"].as_str()), ("web-s0", Some("1")));
        assert_eq!(slice["endpoints"], json!([endpoint(1, true, true, false), endpoint(2, false, false, false)]));
        assert_eq!(slice["metadata"]["annotations"][TRIGGER_TIME], timestamp(t(11)));

        let mut relabeled = s.clone();
        relabeled["metadata"]["labels"] = json!({"tier": "be"});
        let steps = run(&relabeled, &[pod(1, true), pod(2, true)], &stored);
        let [Step::Update { slice }] = steps.as_slice() else { panic!("{steps:?}") };
        assert_eq!(slice["metadata"]["labels"]["tier"], "be");
    }

    #[test]
    fn a_hundred_endpoints_per_slice() {
        let s = svc();
        let mut pods: Vec<Value> = (0..250).map(|n| pod(n, true)).collect();
        let steps = run(&s, &pods, &[]);
        assert_eq!(creates(&steps).len(), 3);
        let stored = apply(&steps, vec![]);
        assert_eq!(sizes(&stored), vec![50, 100, 100]);
        // One more pod goes where it fits best: the slice with 50, updated in place.
        pods.push(pod(250, true));
        let steps = run(&s, &pods, &stored);
        let [Step::Update { slice }] = steps.as_slice() else { panic!("{steps:?}") };
        assert_eq!(list(slice, "endpoints").len(), 51);
        let stored = apply(&steps, stored);
        // Endpoints never move between slices: removing every pod of two slices deletes
        // them and leaves the third alone.
        let in_first_two: Vec<&str> = stored[..2].iter().flat_map(|s| list(s, "endpoints")).filter_map(|e| e["targetRef"]["name"].as_str()).collect();
        pods.retain(|p| !in_first_two.contains(&name(p)));
        let steps = run(&s, &pods, &stored);
        let deleted: Vec<&str> = steps.iter().filter_map(|s| if let Step::Delete { name, .. } = s { Some(name.as_str()) } else { None }).collect();
        assert_eq!((deleted, steps.len()), (vec!["web-s0", "web-s1"], 2));
        let stored = apply(&steps, stored);
        assert_eq!(sizes(&stored), vec![pods.len()]);
        assert!(run(&s, &pods, &stored).is_empty());
    }

    #[test]
    fn named_ports_group_pods_by_resolved_port() {
        let mut other = pod(2, true);
        other["spec"]["containers"][0]["ports"] = json!([{"name": "http", "containerPort": 9000}]);
        let mut none = pod(3, true);
        none["spec"]["containers"][0]["ports"] = json!([]);
        let steps = run(&svc(), &[pod(1, true), other, none], &[]);
        let mut got: Vec<(Value, usize)> = creates(&steps).iter().map(|s| (s["ports"].clone(), list(s, "endpoints").len())).collect();
        got.sort_by_key(|(p, _)| p.to_string());
        let port = |n: u32| json!([{"name": "http", "port": n, "protocol": "TCP"}]);
        // A pod without the named port is an endpoint with no ports.
        assert_eq!(got, vec![(Value::Array(vec![]), 1), (port(8080), 1), (port(9000), 1)]);
    }

    #[test]
    fn no_endpoints_keeps_one_placeholder() {
        let s = svc();
        let steps = run(&s, &[], &[]);
        let [Step::Create { slice }] = steps.as_slice() else { panic!("{steps:?}") };
        assert_eq!((&slice["endpoints"], &slice["ports"]), (&Value::Null, &Value::Null));
        let stored = apply(&steps, vec![]);
        assert!(run(&s, &[], &stored).is_empty());
        // The first pod fills the placeholder, ports and all, instead of a new slice.
        let steps = run(&s, &[pod(1, true)], &stored);
        let [Step::Update { slice }] = steps.as_slice() else { panic!("{steps:?}") };
        assert_eq!((name(slice), list(slice, "endpoints").len()), ("web-s0", 1));
        assert_eq!(slice["ports"], json!([{"name": "http", "port": 8080, "protocol": "TCP"}]));
        // And the last one leaving turns it back into the placeholder.
        let stored = apply(&steps, stored);
        let steps = run(&s, &[], &stored);
        let [Step::Update { slice }] = steps.as_slice() else { panic!("{steps:?}") };
        assert_eq!((name(slice), &slice["endpoints"], &slice["ports"]), ("web-s0", &Value::Null, &Value::Null));
    }

    #[test]
    fn foreign_stale_and_other_type_slices() {
        let s = svc();
        let stored = apply(&run(&s, &[pod(1, true)], &[]), vec![]);
        // A slice of a Service's earlier incarnation is replaced by a new one (never
        // rewritten: the garbage collector may be deleting it); a slice of an address type
        // the Service does not have goes; other managers' slices are not ours.
        let mut old = stored[0].clone();
        old["metadata"]["ownerReferences"][0]["uid"] = json!("old-uid");
        let mut v6 = stored[0].clone();
        v6["metadata"]["name"] = json!("web-v6");
        v6["addressType"] = json!("IPv6");
        let mut mirrored = stored[0].clone();
        mirrored["metadata"]["name"] = json!("web-m");
        mirrored["metadata"]["labels"][MANAGED_BY] = json!("someone-else");
        let steps = run(&s, &[pod(1, true)], &[old, v6, mirrored]);
        assert_eq!(
            steps.iter().map(|s| match s { Step::Create { .. } => "create".to_string(), Step::Update { slice } => format!("update {}", name(slice)), Step::Delete { name, .. } => format!("delete {name}") }).collect::<Vec<_>>(),
            vec!["create".to_string(), "delete web-s0".into(), "delete web-v6".into()],
        );
    }

    #[test]
    fn selectorless_deleting_and_nodeless() {
        let mut s = svc();
        s["spec"].as_object_mut().expect("spec").remove("selector");
        assert!(run(&s, &[pod(1, true)], &[]).is_empty());
        let mut s = svc();
        s["metadata"]["deletionTimestamp"] = json!(timestamp(t(3)));
        assert!(run(&s, &[pod(1, true)], &[]).is_empty(), "no creates for a Service being deleted");
        let mut lost = pod(1, true);
        lost["spec"]["nodeName"] = json!("gone");
        let steps = run(&svc(), &[lost.clone()], &[]);
        assert_eq!(creates(&steps)[0]["endpoints"], Value::Null, "a pod on a missing node is left out");
        let mut s = svc();
        s["spec"]["publishNotReadyAddresses"] = json!(true);
        let steps = run(&s, &[lost], &[]);
        assert_eq!(list(creates(&steps)[0], "endpoints").len(), 1);
    }

    #[test]
    fn headless_without_families_gets_both_types() {
        let mut s = svc();
        s["spec"]["clusterIP"] = json!("None");
        s["spec"].as_object_mut().expect("spec").remove("ipFamilies");
        let steps = run(&s, &[pod(1, true)], &[]);
        let types: Vec<&Value> = creates(&steps).iter().map(|s| &s["addressType"]).collect();
        assert_eq!(types, vec!["IPv4", "IPv6"]);
        assert_eq!(creates(&steps)[0]["metadata"]["labels"][HEADLESS], "");
        assert_eq!(creates(&steps)[1]["endpoints"], Value::Null);
    }
}
