//! EndpointSlice mirroring (Kubernetes' endpointslicemirroring-controller): the Endpoints a
//! user keeps for a Service without a selector, mirrored into EndpointSlices so that
//! consumers of slices see them too.
//!
//! - Mirrored: an Endpoints whose Service exists and has no selector, without the label
//!   `endpointslice.kubernetes.io/skip-mirror: "true"` (the API server's own `kubernetes`
//!   Endpoints has it) and without a leader-election annotation. The slices of anything
//!   else that was mirrored are deleted.
//! - Its slices carry `kubernetes.io/service-name: <name>` and
//!   `endpointslice.kubernetes.io/managed-by: endpointslicemirroring-controller.k8s.io`, the
//!   Endpoints' labels and annotations (not `last-change-trigger-time` nor
//!   `kubectl.kubernetes.io/last-applied-configuration`), and the Endpoints as controller
//!   owner.
//! - The subsets are repacked first; then each (address type, port set) gets one slice:
//!   every valid address of the type with `ready` from the list it is in, its targetRef,
//!   nodeName and hostname. At most 1,000 addresses of each subset are mirrored; invalid
//!   IPs are skipped. (Kubernetes also records events for skipped addresses; here they only
//!   go to the debug log, since a pass runs on every store change.)
//! - A slice is rewritten only when its endpoints, labels or annotations differ; extra
//!   slices of a group are deleted, and a create is turned into an update of a slice about
//!   to be deleted. Updates carry the resourceVersion the plan saw.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use serde_json::{Map, Value, json};

use super::objects::{by_namespace, controller_write_options, deleting, ignore_transient, info, name, uid};
use super::owner::controller_ref;
use super::service_endpoints::{EndpointKey, Offer, PortsKey, TRIGGER_TIME, endpoint_key, list, list_value, ports_key, repack, same_beyond_key};
use crate::apiserver::Api;
use crate::apiserver::error::ApiError;
use crate::apiserver::service::{DeleteOptions, Part};

const CONTROLLER_NAME: &str = "endpointslicemirroring-controller.k8s.io";
const SERVICE_NAME: &str = "kubernetes.io/service-name";
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
const SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const LEADER_RECORD: &str = "control-plane.alpha.kubernetes.io/leader";
/// Most addresses mirrored per Endpoints subset (--mirroring-max-endpoints-per-subset).
const MAX_ENDPOINTS_PER_SUBSET: usize = 1000;

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

/// Pure: the writes that bring one namespace's mirrored slices in line with its Endpoints
/// and Services.
pub(crate) fn plan(services: &[&Value], endpoints: &[&Value], slices: &[&Value]) -> Vec<Step> {
    let services: HashMap<&str, &Value> = services.iter().map(|s| (name(s), *s)).collect();
    let endpoints: HashMap<&str, &Value> = endpoints.iter().map(|e| (name(e), *e)).collect();
    let mut mirrored: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for s in slices {
        if s["metadata"]["labels"][MANAGED_BY] == CONTROLLER_NAME && !deleting(s) {
            mirrored.entry(s["metadata"]["labels"][SERVICE_NAME].as_str().unwrap_or("")).or_default().push(s);
        }
    }
    let names: BTreeSet<&str> = endpoints.keys().chain(mirrored.keys()).copied().collect();
    let mut steps = Vec::new();
    for n in names {
        let mut existing = mirrored.remove(n).unwrap_or_default();
        existing.sort_by_key(|s| name(s));
        let has_selector = |s: &Value| s["spec"]["selector"].as_object().is_some_and(|m| !m.is_empty());
        let mirror = endpoints.get(n).copied().filter(|e| should_mirror(e)).filter(|_| services.get(n).is_some_and(|s| !has_selector(s)));
        match mirror {
            Some(ep) => steps.extend(plan_endpoints(ep, &existing)),
            None => steps.extend(existing.iter().map(|s| delete(s))),
        }
    }
    steps
}

fn should_mirror(ep: &Value) -> bool {
    ep["metadata"]["labels"][SKIP_MIRROR] != "true" && ep["metadata"]["annotations"].get(LEADER_RECORD).is_none()
}

fn delete(slice: &Value) -> Step {
    Step::Delete { name: name(slice).to_string(), uid: uid(slice).to_string() }
}

/// The slice endpoint for one address of an Endpoints, and its address type; None for an
/// invalid IP. An IPv4-mapped IPv6 address counts as IPv4, as in Go.
fn address_endpoint(addr: &Value, ready: bool) -> Option<(Value, &'static str)> {
    let ip: IpAddr = addr["ip"].as_str()?.parse().ok()?;
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let mut ep = json!({"addresses": [ip.to_string()], "conditions": {"ready": ready}});
    for field in ["targetRef", "nodeName"] {
        if !addr[field].is_null() {
            ep[field] = addr[field].clone();
        }
    }
    if let Some(h) = addr["hostname"].as_str().filter(|h| !h.is_empty()) {
        ep["hostname"] = json!(h);
    }
    Some((ep, if ip.is_ipv4() { "IPv4" } else { "IPv6" }))
}

/// An Endpoints port as a slice port: name and protocol always set.
fn slice_port(p: &Value) -> Value {
    let mut port = json!({"name": p["name"].as_str().unwrap_or(""), "port": p["port"].clone(), "protocol": p["protocol"].as_str().unwrap_or("TCP")});
    if let Some(a) = p["appProtocol"].as_str() {
        port["appProtocol"] = json!(a);
    }
    port
}

/// The Endpoints' labels or annotations without `drop` (none counts as empty).
fn map_without(v: &Value, drop: &[&str]) -> Map<String, Value> {
    v.as_object().into_iter().flatten().filter(|(k, _)| !drop.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn new_slice(ep: &Value, ports: &[Value], address_type: &str) -> Value {
    let mut labels = map_without(&ep["metadata"]["labels"], &[]);
    labels.insert(SERVICE_NAME.into(), json!(name(ep)));
    labels.insert(MANAGED_BY.into(), json!(CONTROLLER_NAME));
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "generateName": format!("{}-", name(ep)),
            "namespace": ep["metadata"]["namespace"].clone(),
            "labels": labels,
            "annotations": map_without(&ep["metadata"]["annotations"], &[TRIGGER_TIME, LAST_APPLIED]),
            "ownerReferences": [controller_ref(ep, "v1", "Endpoints")],
        },
        "addressType": address_type,
        "endpoints": null,
        "ports": list_value(ports.to_vec()),
    })
}

/// A mirrored slice holds exactly `want`, and the Endpoints' labels and annotations.
fn up_to_date(slice: &Value, want: &BTreeMap<EndpointKey, Value>, ep: &Value) -> bool {
    let have = list(slice, "endpoints");
    let same_endpoints = have.len() == want.len() && have.iter().all(|e| want.get(&endpoint_key(e)).is_some_and(|w| same_beyond_key(w, e)));
    let labels = map_without(&slice["metadata"]["labels"], &[MANAGED_BY, SERVICE_NAME]);
    same_endpoints
        && labels == map_without(&ep["metadata"]["labels"], &[])
        && map_without(&slice["metadata"]["annotations"], &[]) == map_without(&ep["metadata"]["annotations"], &[TRIGGER_TIME, LAST_APPLIED])
}

/// The desired endpoints of `ep` by (address type, port set), with the ports.
type Desired = BTreeMap<(&'static str, PortsKey), (Vec<Value>, BTreeMap<EndpointKey, Value>)>;

fn desired(ep: &Value) -> Desired {
    let mut offers = Vec::new();
    for subset in list(ep, "subsets") {
        let ports = list(subset, "ports");
        for (field, ready) in [("addresses", true), ("notReadyAddresses", false)] {
            for addr in list(subset, field) {
                if ports.is_empty() {
                    offers.push(Offer { addr: addr.clone(), ready, port: None });
                }
                offers.extend(ports.iter().map(|p| Offer { addr: addr.clone(), ready, port: Some(p.clone()) }));
            }
        }
    }
    let mut d = Desired::new();
    for subset in repack(offers) {
        let ports: Vec<Value> = list(&subset, "ports").iter().map(slice_port).collect();
        let key = ports_key(&Value::Array(ports.clone()));
        for t in ["IPv4", "IPv6"] {
            d.entry((t, key.clone())).or_default().0 = ports.clone();
        }
        let mut added = 0;
        let addrs = list(&subset, "addresses").iter().map(|a| (a, true)).chain(list(&subset, "notReadyAddresses").iter().map(|a| (a, false)));
        for (addr, ready) in addrs {
            if added >= MAX_ENDPOINTS_PER_SUBSET {
                tracing::debug!(endpoints = name(ep), "addresses beyond {MAX_ENDPOINTS_PER_SUBSET} in a subset are not mirrored");
                break;
            }
            match address_endpoint(addr, ready) {
                Some((e, t)) => {
                    d.entry((t, key.clone())).or_default().1.insert(endpoint_key(&e), e);
                    added += 1;
                }
                None => tracing::debug!(endpoints = name(ep), ip = %addr["ip"], "an invalid IP is not mirrored"),
            }
        }
    }
    d
}

fn plan_endpoints(ep: &Value, existing: &[&Value]) -> Vec<Step> {
    let mut by_key: BTreeMap<(String, PortsKey), Vec<&Value>> = BTreeMap::new();
    for s in existing {
        by_key.entry((s["addressType"].as_str().unwrap_or("").to_string(), ports_key(&s["ports"]))).or_default().push(s);
    }
    let (mut create, mut update, mut remove): (Vec<Value>, Vec<Value>, Vec<&Value>) = (Vec::new(), Vec::new(), Vec::new());
    let want = desired(ep);
    for ((t, key), (ports, endpoints)) in &want {
        let slices = by_key.remove(&(t.to_string(), key.clone())).unwrap_or_default();
        if endpoints.is_empty() {
            remove.extend(slices);
            continue;
        }
        if let Some((first, rest)) = slices.split_first() {
            remove.extend(rest);
            if up_to_date(first, endpoints, ep) {
                continue;
            }
        }
        let mut s = new_slice(ep, ports, t);
        s["endpoints"] = Value::Array(endpoints.values().take(MAX_ENDPOINTS_PER_SUBSET).cloned().collect());
        match slices.first() {
            Some(first) => update.push(renamed(s, first)),
            None => create.push(s),
        }
    }
    remove.extend(by_key.into_values().flatten());

    // Creates become updates of slices of the same address type about to be deleted.
    let mut i = 0;
    while i < create.len() {
        match remove.iter().position(|r| r["addressType"] == create[i]["addressType"]) {
            Some(j) => {
                let old = remove.remove(j);
                update.push(renamed(create.remove(i), old));
            }
            None => i += 1,
        }
    }
    let mut steps = Vec::new();
    if !deleting(ep) {
        steps.extend(create.into_iter().map(|slice| Step::Create { slice }));
    }
    steps.extend(update.into_iter().map(|slice| Step::Update { slice }));
    steps.extend(remove.into_iter().map(delete));
    steps
}

/// `slice` taking the place of the stored `old` (its name, uid and resourceVersion).
fn renamed(mut slice: Value, old: &Value) -> Value {
    if let Some(m) = slice["metadata"].as_object_mut() {
        m.remove("generateName");
        for k in ["name", "uid", "resourceVersion"] {
            m.insert(k.into(), old["metadata"][k].clone());
        }
    }
    slice
}

// ---- executor ----

/// Plans every namespace's mirrored slices and carries out the steps.
pub(crate) async fn reconcile_all(api: &Api, objects: &[crate::store::Keyed]) -> Result<(), ApiError> {
    let services = by_namespace(objects, "core/services");
    let endpoints = by_namespace(objects, "core/endpoints");
    let slices = by_namespace(objects, "discovery.k8s.io/endpointslices");
    let none = Vec::new();
    let namespaces: BTreeSet<&str> = endpoints.keys().chain(slices.keys()).copied().collect();
    let info = info("discovery.k8s.io", "endpointslices");
    let opts = controller_write_options();
    for ns in namespaces {
        let steps = plan(services.get(ns).unwrap_or(&none), endpoints.get(ns).unwrap_or(&none), slices.get(ns).unwrap_or(&none));
        for step in steps {
            let r = match step {
                Step::Create { slice } => match api.create(info, Some(ns), slice, &opts).await {
                    // A terminating namespace takes no new objects.
                    Err(e) if e.code == 403 => Ok(()),
                    r => ignore_transient(r),
                },
                Step::Update { slice } => ignore_transient(api.update(info, Some(ns), name(&slice), slice.clone(), Part::Main, &opts).await),
                Step::Delete { name, uid } => ignore_transient(api.delete(info, Some(ns), &name, &DeleteOptions { uid: Some(uid), ..Default::default() }).await),
            };
            if let Err(e) = r {
                tracing::warn!(error = %e, namespace = ns, "endpointslice mirroring failed");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc() -> Value {
        json!({"metadata": {"name": "db", "namespace": "default", "uid": "svc-uid"}, "spec": {"ports": [{"port": 5432}]}})
    }

    fn endpoints(subsets: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "db", "namespace": "default", "uid": "ep-uid", "labels": {"team": "data"},
                "annotations": {"note": "x", TRIGGER_TIME: "2026-01-01T00:00:00Z", LAST_APPLIED: "{}"}},
            "subsets": subsets,
        })
    }

    fn basic() -> Value {
        endpoints(json!([{
            "addresses": [{"ip": "192.0.2.2", "nodeName": "n1"}, {"ip": "192.0.2.1", "hostname": "one"}],
            "notReadyAddresses": [{"ip": "192.0.2.3", "targetRef": {"kind": "Pod", "name": "p3", "namespace": "default", "uid": "u3"}}],
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
        }]))
    }

    /// The stored form of the slices `steps` write (created ones named db-N).
    fn apply(steps: &[Step], mut stored: Vec<Value>) -> Vec<Value> {
        for (i, step) in steps.iter().enumerate() {
            match step {
                Step::Create { slice } => {
                    let mut s = slice.clone();
                    s["metadata"]["name"] = json!(format!("db-{i}"));
                    s["metadata"]["uid"] = json!(format!("s{i}"));
                    stored.push(s);
                }
                Step::Update { slice } => {
                    let i = stored.iter().position(|s| name(s) == name(slice)).expect("slice exists");
                    stored[i] = slice.clone();
                }
                Step::Delete { name: n, .. } => stored.retain(|s| name(s) != n),
            }
        }
        stored
    }

    fn run(svc: &Value, ep: &Value, stored: &[Value]) -> Vec<Step> {
        let stored: Vec<&Value> = stored.iter().collect();
        plan(&[svc], &[ep], &stored)
    }

    #[test]
    fn a_selectorless_services_endpoints_are_mirrored() {
        let steps = run(&svc(), &basic(), &[]);
        let [Step::Create { slice }] = steps.as_slice() else { panic!("{steps:?}") };
        assert_eq!(
            slice["metadata"],
            json!({
                "generateName": "db-", "namespace": "default",
                "labels": {"team": "data", SERVICE_NAME: "db", MANAGED_BY: CONTROLLER_NAME},
                "annotations": {"note": "x"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Endpoints", "name": "db", "uid": "ep-uid", "controller": true, "blockOwnerDeletion": true}],
            })
        );
        assert_eq!(slice["addressType"], "IPv4");
        assert_eq!(slice["ports"], json!([{"name": "pg", "port": 5432, "protocol": "TCP"}]));
        assert_eq!(
            slice["endpoints"],
            json!([
                {"addresses": ["192.0.2.1"], "conditions": {"ready": true}, "hostname": "one"},
                {"addresses": ["192.0.2.2"], "conditions": {"ready": true}, "nodeName": "n1"},
                {"addresses": ["192.0.2.3"], "conditions": {"ready": false}, "targetRef": {"kind": "Pod", "name": "p3", "namespace": "default", "uid": "u3"}},
            ])
        );
        let stored = apply(&steps, vec![]);
        assert!(run(&svc(), &basic(), &stored).is_empty());
        // A label of the Endpoints changes: the slice follows, in place.
        let mut relabeled = basic();
        relabeled["metadata"]["labels"]["team"] = json!("ops");
        let steps = run(&svc(), &relabeled, &stored);
        let [Step::Update { slice }] = steps.as_slice() else { panic!("{steps:?}") };
        assert_eq!((name(slice), &slice["metadata"]["labels"]["team"]), ("db-0", &json!("ops")));
    }

    #[test]
    fn what_is_not_mirrored_loses_its_slices() {
        let stored = apply(&run(&svc(), &basic(), &[]), vec![]);
        let gone = vec![Step::Delete { name: "db-0".into(), uid: "s0".into() }];
        let mut skip = basic();
        skip["metadata"]["labels"][SKIP_MIRROR] = json!("true");
        assert_eq!(run(&svc(), &skip, &stored), gone);
        let mut selecting = svc();
        selecting["spec"]["selector"] = json!({"app": "db"});
        assert_eq!(run(&selecting, &basic(), &stored), gone);
        let refs: Vec<&Value> = stored.iter().collect();
        assert_eq!(plan(&[&svc()], &[], &refs), gone, "Endpoints deleted");
        assert_eq!(plan(&[], &[&basic()], &refs), gone, "Service deleted");
        let mut lock = basic();
        lock["metadata"]["annotations"][LEADER_RECORD] = json!("{}");
        assert!(run(&svc(), &lock, &[]).is_empty());
    }

    #[test]
    fn address_types_ports_and_limits() {
        let mut addrs: Vec<Value> = (0..1001).map(|i| json!({"ip": format!("10.0.{}.{}", i / 250, i % 250)})).collect();
        addrs.push(json!({"ip": "not-an-ip"}));
        let ep = endpoints(json!([
            {"addresses": addrs, "ports": [{"port": 80}]},
            {"addresses": [{"ip": "2001:db8::1"}, {"ip": "::ffff:192.0.2.9"}], "ports": [{"name": "b", "port": 81, "protocol": "UDP"}]},
        ]));
        let steps = run(&svc(), &ep, &[]);
        let mut got: Vec<(String, Value, usize)> = steps
            .iter()
            .map(|s| {
                let Step::Create { slice } = s else { panic!("{s:?}") };
                (slice["addressType"].as_str().unwrap_or("").to_string(), slice["ports"].clone(), list(slice, "endpoints").len())
            })
            .collect();
        got.sort_by_key(|g| (g.1.to_string(), g.0.clone()));
        // 1,000 of the first subset's addresses; the v4-mapped address is IPv4.
        assert_eq!(
            got,
            vec![
                ("IPv4".to_string(), json!([{"name": "", "port": 80, "protocol": "TCP"}]), 1000),
                ("IPv4".to_string(), json!([{"name": "b", "port": 81, "protocol": "UDP"}]), 1),
                ("IPv6".to_string(), json!([{"name": "b", "port": 81, "protocol": "UDP"}]), 1),
            ]
        );
    }

    #[test]
    fn a_new_port_set_reuses_the_old_slice() {
        let stored = apply(&run(&svc(), &basic(), &[]), vec![]);
        let mut moved = basic();
        moved["subsets"][0]["ports"][0]["port"] = json!(6432);
        let steps = run(&svc(), &moved, &stored);
        let [Step::Update { slice }] = steps.as_slice() else { panic!("{steps:?}") };
        assert_eq!((name(slice), &slice["ports"][0]["port"]), ("db-0", &json!(6432)));
    }
}
