//! Endpoints controller (core/v1 Endpoints, Kubernetes' endpoint-controller): one Endpoints
//! per Service that selects pods, with the same name and namespace.
//!
//! - Only Services with a selector and a type other than ExternalName are managed; the
//!   Endpoints of the others are the user's and are never written here.
//! - Published pods (see [`service_endpoints::published`]; terminating ones only with
//!   `publishNotReadyAddresses`) give one address each: ip (of the Service's first IP
//!   family), nodeName, targetRef and, when the pod's subdomain names the Service, hostname.
//!   Ready pods go to `addresses`, the others to `notReadyAddresses`; with
//!   `publishNotReadyAddresses` every pod is in `addresses`.
//! - Each service port resolves per pod ([`service_endpoints::find_port`]); a pod without a
//!   named port has no address for that port. A headless Service without ports lists
//!   addresses with no ports.
//! - Subsets are repacked as Kubernetes does ([`service_endpoints::repack`]).
//! - More than 1,000 addresses are truncated (ready ones first, each subset keeping its
//!   share) and marked `endpoints.kubernetes.io/over-capacity: truncated`.
//! - Labels are the Service's (plus `service.kubernetes.io/headless` without a cluster IP);
//!   other annotations are kept; `endpoints.kubernetes.io/last-change-trigger-time` is set
//!   on each write ([`service_endpoints::trigger_time`]).
//! - A write happens only when subsets, labels or the capacity mark differ from what is
//!   stored (targetRef resourceVersions ignored), so a steady cluster sees no writes. Updates
//!   carry the resourceVersion the plan saw: a concurrent change is left to the next pass.
//! - Endpoints whose Service is gone are deleted if this controller wrote them (their
//!   managedFields name `kube-controller-manager`) and they are not a leader-election
//!   record; Endpoints a user wrote for a Service that does not exist stay.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};

use super::objects::{by_namespace, controller_write_options, deleting, ignore_transient, info, name, timestamp, uid};
use super::pods::pod_ready;
use super::service_endpoints::{self, HEADLESS, Offer, TRIGGER_TIME, repack};
use crate::apiserver::Api;
use crate::apiserver::error::ApiError;
use crate::apiserver::service::{DeleteOptions, Part};

const COMPONENT: &str = "endpoint-controller";
/// Most addresses one Endpoints holds (Kubernetes' maxCapacity).
const MAX_CAPACITY: usize = 1000;
const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// Endpoints used as leader-election locks carry this; they never have a Service.
const LEADER_RECORD: &str = "control-plane.alpha.kubernetes.io/leader";

// ---- plan ----

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// Create this Endpoints object.
    Create { endpoints: Value },
    /// Replace the stored Endpoints with this one (it carries the resourceVersion seen).
    Update { endpoints: Value },
    /// Delete the Endpoints of a Service that is gone.
    Delete { name: String, uid: String },
}

/// Pure: the writes that bring one namespace's Endpoints in line with its Services and
/// pods.
pub(crate) fn plan(services: &[&Value], pods: &[&Value], endpoints: &[&Value]) -> Vec<Step> {
    let current: HashMap<&str, &Value> = endpoints.iter().map(|e| (name(e), *e)).collect();
    let mut steps: Vec<Step> = services.iter().filter_map(|s| plan_service(s, pods, current.get(name(s)).copied())).collect();
    let services: HashSet<&str> = services.iter().map(|s| name(s)).collect();
    for ep in endpoints {
        let written_here = service_endpoints::last_controller_write([*ep]).is_some();
        let lock = ep["metadata"]["annotations"].get(LEADER_RECORD).is_some();
        if !services.contains(name(ep)) && written_here && !lock && !deleting(ep) {
            steps.push(Step::Delete { name: name(ep).to_string(), uid: uid(ep).to_string() });
        }
    }
    steps
}

fn plan_service(svc: &Value, pods: &[&Value], current: Option<&Value>) -> Option<Step> {
    let selector = service_endpoints::managed_selector(svc)?;
    let selected: Vec<&Value> = pods.iter().copied().filter(|p| service_endpoints::selects(selector, p)).collect();
    let mut subsets = desired_subsets(svc, &selected);
    let truncated = truncate(&mut subsets);
    let labels = desired_labels(svc);

    if let Some(cur) = current {
        let stored_labels = cur["metadata"]["labels"].as_object().map(|l| {
            let mut l = l.clone();
            l.remove(HEADLESS);
            l
        });
        let marked = cur["metadata"]["annotations"].get(OVER_CAPACITY).is_some();
        if same_subsets(&cur["subsets"], &subsets) && stored_labels.unwrap_or_default() == service_labels(svc) && marked == truncated {
            return None;
        }
    }

    let trigger = service_endpoints::trigger_time(svc, &selected, current.and_then(|c| service_endpoints::last_controller_write([c])), &service_endpoints::published_readiness(current));
    let mut ep = match current {
        Some(c) => c.clone(),
        None => json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": name(svc), "namespace": svc["metadata"]["namespace"].clone()},
        }),
    };
    let meta = ep["metadata"].as_object_mut()?;
    meta.insert("labels".into(), Value::Object(labels));
    let mut annotations = meta.get("annotations").and_then(Value::as_object).cloned().unwrap_or_default();
    match trigger {
        Some(t) => annotations.insert(TRIGGER_TIME.into(), json!(timestamp(t))),
        None => annotations.remove(TRIGGER_TIME),
    };
    if truncated {
        annotations.insert(OVER_CAPACITY.into(), json!("truncated"));
    } else {
        annotations.remove(OVER_CAPACITY);
    }
    meta.insert("annotations".into(), Value::Object(annotations));
    let obj = ep.as_object_mut()?;
    if subsets.is_empty() {
        obj.remove("subsets");
    } else {
        obj.insert("subsets".into(), Value::Array(subsets));
    }
    Some(if current.is_some() { Step::Update { endpoints: ep } } else { Step::Create { endpoints: ep } })
}

/// The Service's labels (none counts as empty).
fn service_labels(svc: &Value) -> Map<String, Value> {
    svc["metadata"]["labels"].as_object().cloned().unwrap_or_default()
}

fn desired_labels(svc: &Value) -> Map<String, Value> {
    let mut labels = service_labels(svc);
    if service_endpoints::service_ip_set(svc) {
        labels.remove(HEADLESS);
    } else {
        labels.insert(HEADLESS.into(), json!(""));
    }
    labels
}

/// The address of `pod` for the Service: its first IP of the Service's first IP family
/// (from `spec.ipFamilies`, else the cluster IP's family, else the pod IP's).
fn address(svc: &Value, pod: &Value) -> Option<Value> {
    let ips = service_endpoints::pod_ips(pod);
    let want_v6 = match svc["spec"]["ipFamilies"][0].as_str() {
        Some(f) => f == "IPv6",
        None if service_endpoints::service_ip_set(svc) => svc["spec"]["clusterIP"].as_str().is_some_and(|ip| ip.contains(':')),
        None => ips.first()?.is_ipv6(),
    };
    let ip = ips.iter().find(|ip| ip.is_ipv6() == want_v6)?;
    let mut a = json!({"ip": ip.to_string()});
    if let Some(h) = service_endpoints::hostname(pod, svc) {
        a["hostname"] = json!(h);
    }
    if let Some(n) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        a["nodeName"] = json!(n);
    }
    a["targetRef"] = json!({"kind": "Pod", "namespace": pod["metadata"]["namespace"].clone(), "name": name(pod), "uid": uid(pod)});
    Some(a)
}

/// The EndpointPort for `svc_port` reaching container port `port`.
fn endpoint_port(svc_port: &Value, port: i64) -> Value {
    let mut p = Map::new();
    if let Some(n) = svc_port["name"].as_str().filter(|n| !n.is_empty()) {
        p.insert("name".into(), json!(n));
    }
    p.insert("port".into(), json!(port));
    p.insert("protocol".into(), json!(service_endpoints::protocol(svc_port)));
    if let Some(a) = svc_port["appProtocol"].as_str() {
        p.insert("appProtocol".into(), json!(a));
    }
    Value::Object(p)
}

/// The repacked subsets for the `selected` pods of `svc`.
fn desired_subsets(svc: &Value, selected: &[&Value]) -> Vec<Value> {
    let publish_not_ready = svc["spec"]["publishNotReadyAddresses"] == json!(true);
    let ports: &[Value] = svc["spec"]["ports"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let mut offers = Vec::new();
    for pod in selected {
        if !service_endpoints::published(pod, publish_not_ready) {
            continue;
        }
        let Some(addr) = address(svc, pod) else { continue };
        let ready = publish_not_ready || pod_ready(pod);
        if ports.is_empty() {
            if service_endpoints::headless(svc) {
                offers.push(Offer { addr, ready, port: None });
            }
            continue;
        }
        for sp in ports {
            if let Some(n) = service_endpoints::find_port(pod, sp) {
                offers.push(Offer { addr: addr.clone(), ready, port: Some(endpoint_port(sp, n)) });
            }
        }
    }
    repack(offers)
}

fn count(subset: &Value, field: &str) -> usize {
    subset[field].as_array().map_or(0, Vec::len)
}

/// Cuts `subsets` to [`MAX_CAPACITY`] addresses as Kubernetes does: not-ready addresses
/// go first; if the ready ones alone are too many, every not-ready one goes and each
/// subset keeps its share (rounded up) of the ready ones. True if anything was cut.
fn truncate(subsets: &mut [Value]) -> bool {
    let total_ready: usize = subsets.iter().map(|s| count(s, "addresses")).sum();
    let total_not_ready: usize = subsets.iter().map(|s| count(s, "notReadyAddresses")).sum();
    if total_ready + total_not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = total_ready > MAX_CAPACITY;
    let (field, room, total) = if truncate_ready {
        ("addresses", MAX_CAPACITY, total_ready)
    } else {
        ("notReadyAddresses", MAX_CAPACITY - total_ready, total_not_ready)
    };
    let mut left = room;
    for s in subsets.iter_mut() {
        let n = count(s, field);
        let share = (n * room).div_ceil(total).min(left);
        if let Some(a) = s.get_mut(field).and_then(Value::as_array_mut) {
            a.truncate(share);
            left -= a.len();
        }
        if let Some(o) = s.as_object_mut() {
            if truncate_ready {
                o.remove("notReadyAddresses");
            }
            if o.get(field).and_then(Value::as_array).is_some_and(Vec::is_empty) {
                o.remove(field);
            }
        }
    }
    true
}

/// The stored subsets equal `want`, ignoring targetRef resourceVersions (a missing or null
/// list is empty).
fn same_subsets(stored: &Value, want: &[Value]) -> bool {
    let mut stored = match stored {
        Value::Array(a) => a.clone(),
        _ => Vec::new(),
    };
    for s in &mut stored {
        for field in ["addresses", "notReadyAddresses"] {
            // get_mut, not s[field]: indexing a missing key would insert a null and make
            // every stored object look changed (an update each pass, the trigger time lost).
            for a in s.get_mut(field).and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(r) = a.get_mut("targetRef").and_then(Value::as_object_mut) {
                    r.remove("resourceVersion");
                }
            }
        }
    }
    stored == want
}

// ---- executor ----

/// Plans every namespace's Endpoints and carries out the steps.
pub(crate) async fn reconcile_all(api: &Api, objects: &[crate::store::Keyed]) -> Result<(), ApiError> {
    let services = by_namespace(objects, "core/services");
    let pods = by_namespace(objects, "core/pods");
    let endpoints = by_namespace(objects, "core/endpoints");
    let none = Vec::new();
    let namespaces: HashSet<&str> = services.keys().chain(endpoints.keys()).copied().collect();
    for ns in namespaces {
        let steps = plan(services.get(ns).unwrap_or(&none), pods.get(ns).unwrap_or(&none), endpoints.get(ns).unwrap_or(&none));
        for step in steps {
            if let Err(e) = execute(api, ns, step).await {
                tracing::warn!(error = %e, namespace = ns, "endpoints sync failed");
            }
        }
    }
    Ok(())
}

async fn execute(api: &Api, ns: &str, step: Step) -> Result<(), ApiError> {
    let info = info("", "endpoints");
    match step {
        Step::Create { endpoints } => match api.create(info, Some(ns), endpoints.clone(), &controller_write_options()).await {
            Ok(_) => Ok(()),
            // A terminating namespace takes no new objects; a 409 means someone was faster.
            Err(e) if e.code == 403 || e.is_transient() => Ok(()),
            Err(e) => {
                let msg = format!("Failed to create endpoint for service {ns}/{}: {}", name(&endpoints), e.message);
                api.record_event(&endpoints, "Warning", "FailedToCreateEndpoint", &msg, COMPONENT).await;
                Err(e)
            }
        },
        Step::Update { endpoints } => {
            let r = api.update(info, Some(ns), name(&endpoints), endpoints.clone(), Part::Main, &controller_write_options()).await;
            match r {
                Err(e) if !e.is_transient() => {
                    let msg = format!("Failed to update endpoint {ns}/{}: {}", name(&endpoints), e.message);
                    api.record_event(&endpoints, "Warning", "FailedToUpdateEndpoint", &msg, COMPONENT).await;
                    Err(e)
                }
                _ => Ok(()),
            }
        }
        Step::Delete { name, uid } => {
            let opts = DeleteOptions { uid: Some(uid), ..Default::default() };
            ignore_transient(api.delete(info, Some(ns), &name, &opts).await)
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::controllers::objects::t;

    /// `ep` as stored after the controller wrote it at `at`.
    fn written_at(mut ep: Value, at: DateTime<Utc>) -> Value {
        ep["metadata"]["managedFields"] = json!([{"manager": "kube-controller-manager", "operation": "Update", "time": timestamp(at)}]);
        ep
    }

    fn svc(ports: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"tier": "fe"}, "creationTimestamp": timestamp(t(0))},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.43.0.10", "ipFamilies": ["IPv4"], "ports": ports},
        })
    }

    fn http_svc() -> Value {
        svc(json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]))
    }

    /// A Running pod labelled app=web on node n1 with IP 10.42.0.N, Ready if `ready`.
    fn pod(n: u8, ready: bool) -> Value {
        json!({
            "metadata": {"name": format!("web-{n}"), "namespace": "default", "uid": format!("uid-{n}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": format!("10.42.0.{n}"), "podIPs": [{"ip": format!("10.42.0.{n}")}],
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": timestamp(t(i64::from(n)))}]},
        })
    }

    fn addr(n: u8) -> Value {
        json!({"ip": format!("10.42.0.{n}"), "nodeName": "n1", "targetRef": {"kind": "Pod", "namespace": "default", "name": format!("web-{n}"), "uid": format!("uid-{n}")}})
    }

    const HTTP: &str = r#"{"name": "http", "port": 8080, "protocol": "TCP"}"#;

    fn http_port() -> Value {
        serde_json::from_str(HTTP).expect("port")
    }

    fn only(steps: Vec<Step>) -> Value {
        match <[Step; 1]>::try_from(steps) {
            Ok([Step::Create { endpoints } | Step::Update { endpoints }]) => endpoints,
            Ok(other) => panic!("expected a create or update, got {other:?}"),
            Err(steps) => panic!("expected one step, got {steps:?}"),
        }
    }

    #[test]
    fn ready_and_not_ready_pods() {
        let (a, b, c) = (pod(1, true), pod(2, false), pod(3, true));
        let ep = only(plan(&[&http_svc()], &[&c, &b, &a], &[]));
        assert_eq!(ep["metadata"]["name"], "web");
        assert_eq!(ep["metadata"]["labels"], json!({"tier": "fe"}));
        assert_eq!(ep["metadata"]["annotations"], json!({TRIGGER_TIME: timestamp(t(0))}));
        assert_eq!(ep["subsets"], json!([{"addresses": [addr(1), addr(3)], "notReadyAddresses": [addr(2)], "ports": [http_port()]}]));
    }

    /// Written once, an Endpoints whose subsets lack `notReadyAddresses` (or
    /// `addresses`) is left alone by later passes, however late they come: the trigger
    /// time it carries stays (a pass used to see every such object as changed, and
    /// rewrote it without the annotation once its pods' transitions were older than the
    /// write).
    #[test]
    fn a_written_endpoints_is_left_alone_and_keeps_its_trigger_time() {
        let (a, b) = (pod(1, true), pod(2, true));
        let ep = written_at(only(plan(&[&http_svc()], &[&a, &b], &[])), t(5));
        assert!(ep["subsets"][0].get("notReadyAddresses").is_none(), "{ep}");
        assert_eq!(plan(&[&http_svc()], &[&a, &b], &[&ep]), vec![], "no write for an unchanged Endpoints");
        let (c, d) = (pod(3, false), pod(4, false));
        let ep = written_at(only(plan(&[&http_svc()], &[&c, &d], &[])), t(5));
        assert!(ep["subsets"][0].get("addresses").is_none(), "{ep}");
        assert_eq!(plan(&[&http_svc()], &[&c, &d], &[&ep]), vec![]);
    }

    #[test]
    fn terminating_and_terminal_pods() {
        let mut terminating = pod(1, true);
        terminating["metadata"]["deletionTimestamp"] = json!(timestamp(t(9)));
        let mut done = pod(2, false);
        done["status"]["phase"] = json!("Failed");
        let mut no_ip = pod(3, false);
        no_ip["status"] = json!({"phase": "Pending"});
        let other = {
            let mut p = pod(4, true);
            p["metadata"]["labels"] = json!({"app": "db"});
            p
        };
        let ep = only(plan(&[&http_svc()], &[&terminating, &done, &no_ip, &other], &[]));
        assert!(ep.get("subsets").is_none(), "{ep}");
        // With publishNotReadyAddresses a terminating or unready pod is published, as ready.
        let mut s = http_svc();
        s["spec"]["publishNotReadyAddresses"] = json!(true);
        let unready = pod(5, false);
        let ep = only(plan(&[&s], &[&terminating, &done, &unready], &[]));
        assert_eq!(ep["subsets"], json!([{"addresses": [addr(1), addr(5)], "ports": [http_port()]}]));
    }

    #[test]
    fn named_target_port_resolves_per_pod() {
        let s = svc(json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}, {"name": "metrics", "port": 9090, "protocol": "TCP", "targetPort": 9090}]));
        let a = pod(1, true);
        let mut b = pod(2, true);
        b["spec"]["containers"][0]["ports"] = json!([{"name": "http", "containerPort": 9000}]);
        let mut c = pod(3, true);
        c["spec"]["containers"][0]["ports"] = json!([]);
        let ep = only(plan(&[&s], &[&a, &b, &c], &[]));
        let metrics = json!({"name": "metrics", "port": 9090, "protocol": "TCP"});
        // Pods 1 and 3 agree on every port they offer except that 3 has no "http".
        assert_eq!(
            ep["subsets"],
            json!([
                {"addresses": [addr(1)], "ports": [http_port()]},
                {"addresses": [addr(1), addr(2), addr(3)], "ports": [metrics]},
                {"addresses": [addr(2)], "ports": [{"name": "http", "port": 9000, "protocol": "TCP"}]},
            ])
        );
    }

    #[test]
    fn nothing_changed_nothing_written() {
        let (a, b) = (pod(1, true), pod(2, false));
        let s = http_svc();
        let ep = written_at(only(plan(&[&s], &[&a, &b], &[])), t(10));
        assert!(plan(&[&s], &[&a, &b], &[&ep]).is_empty());
        // A pod's resourceVersion in a targetRef does not count.
        let mut stale_rv = ep.clone();
        stale_rv["subsets"][0]["addresses"][0]["targetRef"]["resourceVersion"] = json!("7");
        assert!(plan(&[&s], &[&a, &b], &[&stale_rv]).is_empty());
        // A readiness change is an update of the stored object, stamped with its time.
        let b_ready = {
            let mut p = pod(2, true);
            p["status"]["conditions"][0]["lastTransitionTime"] = json!(timestamp(t(12)));
            p
        };
        let mut with_rv = ep.clone();
        with_rv["metadata"]["resourceVersion"] = json!("42");
        let Some(Step::Update { endpoints }) = plan(&[&s], &[&a, &b_ready], &[&with_rv]).pop() else { panic!("expected an update") };
        assert_eq!(endpoints["metadata"]["resourceVersion"], "42");
        assert_eq!(endpoints["metadata"]["annotations"][TRIGGER_TIME], timestamp(t(12)));
        assert_eq!(endpoints["subsets"], json!([{"addresses": [addr(1), addr(2)], "ports": [http_port()]}]));
        // So is a change of the Service's labels.
        let mut relabeled = s.clone();
        relabeled["metadata"]["labels"] = json!({"tier": "be"});
        let ep2 = only(plan(&[&relabeled], &[&a, &b], &[&ep]));
        assert_eq!(ep2["metadata"]["labels"], json!({"tier": "be"}));
        assert!(ep2["metadata"]["annotations"].get(TRIGGER_TIME).is_none(), "no pod or Service change since the last write");
    }

    #[test]
    fn selector_change_moves_endpoints() {
        let a = pod(1, true);
        let mut db = pod(2, true);
        db["metadata"]["labels"] = json!({"app": "db"});
        let ep = written_at(only(plan(&[&http_svc()], &[&a, &db], &[])), t(10));
        assert_eq!(ep["subsets"][0]["addresses"], json!([addr(1)]));
        let mut s = http_svc();
        s["spec"]["selector"] = json!({"app": "db"});
        let ep = only(plan(&[&s], &[&a, &db], &[&ep]));
        assert_eq!(ep["subsets"][0]["addresses"], json!([addr(2)]));
    }

    #[test]
    fn service_deletion_removes_only_what_the_controller_wrote() {
        let ours = written_at(json!({"metadata": {"name": "gone", "uid": "ep-uid"}}), t(1));
        let users = json!({"metadata": {"name": "manual", "uid": "u", "managedFields": [{"manager": "kubectl-client-side-apply", "time": timestamp(t(1))}]}});
        let mut lock = written_at(json!({"metadata": {"name": "lock", "uid": "l"}}), t(1));
        lock["metadata"]["annotations"] = json!({LEADER_RECORD: "{}"});
        assert_eq!(plan(&[], &[], &[&ours, &users, &lock]), vec![Step::Delete { name: "gone".into(), uid: "ep-uid".into() }]);
    }

    #[test]
    fn selectorless_and_external_name_services_are_left_alone() {
        let user_ep = json!({"metadata": {"name": "web", "uid": "u"}, "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 80}]}]});
        let mut s = http_svc();
        s["spec"].as_object_mut().expect("spec").remove("selector");
        let a = pod(1, true);
        assert!(plan(&[&s], &[&a], &[&user_ep]).is_empty());
        assert!(plan(&[&s], &[&a], &[]).is_empty());
        let mut ext = http_svc();
        ext["spec"]["type"] = json!("ExternalName");
        assert!(plan(&[&ext], &[&a], &[]).is_empty());
    }

    #[test]
    fn headless_services() {
        let mut s = svc(json!([]));
        s["spec"]["clusterIP"] = json!("None");
        let mut a = pod(1, true);
        a["spec"]["hostname"] = json!("web-1");
        a["spec"]["subdomain"] = json!("web");
        let b = pod(2, false);
        let ep = only(plan(&[&s], &[&a, &b], &[]));
        assert_eq!(ep["metadata"]["labels"], json!({"tier": "fe", HEADLESS: ""}));
        let mut with_host = addr(1);
        with_host["hostname"] = json!("web-1");
        assert_eq!(ep["subsets"], json!([{"addresses": [with_host], "notReadyAddresses": [addr(2)]}]));
        // A service with no ports that is not headless publishes no addresses.
        let ep = only(plan(&[&svc(json!([]))], &[&a], &[]));
        assert!(ep.get("subsets").is_none());
    }

    #[test]
    fn over_capacity_is_truncated_and_marked() {
        let pods: Vec<Value> = (0..1100u32)
            .map(|i| {
                let mut p = pod(1, i % 2 == 0);
                p["metadata"]["name"] = json!(format!("p{i}"));
                p["metadata"]["uid"] = json!(format!("u{i}"));
                p["status"]["podIP"] = json!(format!("10.42.{}.{}", i / 250, i % 250));
                p["status"]["podIPs"] = json!([{"ip": p["status"]["podIP"].clone()}]);
                p
            })
            .collect();
        let refs: Vec<&Value> = pods.iter().collect();
        let ep = only(plan(&[&http_svc()], &refs, &[]));
        assert_eq!(ep["metadata"]["annotations"][OVER_CAPACITY], "truncated");
        let s = &ep["subsets"][0];
        assert_eq!((count(s, "addresses"), count(s, "notReadyAddresses")), (550, 450));
        // Stored as truncated, it is not rewritten.
        let ep = written_at(ep, t(20));
        assert!(plan(&[&http_svc()], &refs, &[&ep]).is_empty());
    }
}
