//! The built-in service load balancer (k3s's ServiceLB): a Service of type LoadBalancer
//! without a `loadBalancerClass` is served by every node on the Service's port at the
//! node's bind address (the node agents open the listeners, `node/src/network/`), and this
//! controller publishes where: `status.loadBalancer.ingress` lists the Ready nodes'
//! addresses (ExternalIP, else InternalIP), as k3s lists the nodes running its svclb pods.
//!
//! Invariants:
//! - Services with a `loadBalancerClass` belong to another implementation and are never
//!   touched; with `--disable-service-lb` this controller does not run and LoadBalancer
//!   Services stay pending (no ingress), as in Kubernetes without a load balancer.
//! - A Service that is no longer of type LoadBalancer loses its `status.loadBalancer`.
//! - With no Ready node the ingress list is empty (the Service shows `<pending>`).
//! - `plan` is pure; the status is written only when it differs.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::objects::{by_namespace, controller_write_options, ignore_transient, info, name};
use crate::apiserver::error::ApiError;
use crate::apiserver::service::Part;
use crate::apiserver::Api;

/// The status one Service should have: (namespace, name, its whole new status).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Step {
    pub namespace: String,
    pub name: String,
    pub status: Value,
}

/// The addresses the load balancer is reached at: each Ready node's ExternalIP, else its
/// InternalIP, sorted, each once.
pub(crate) fn ingress(nodes: &[&Value]) -> Vec<Value> {
    let ready = |n: &&&Value| n["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True");
    let address = |n: &Value, kind: &str| -> Option<String> {
        n["status"]["addresses"].as_array()?.iter().find(|a| a["type"] == kind)?["address"].as_str().map(str::to_string)
    };
    let ips: BTreeSet<String> = nodes.iter().filter(ready).filter_map(|n| address(n, "ExternalIP").or_else(|| address(n, "InternalIP"))).collect();
    ips.into_iter().map(|ip| json!({"ip": ip, "ipMode": "VIP"})).collect()
}

/// Pure: the status writes that bring the namespace's Services in line.
pub(crate) fn plan(namespace: &str, services: &[&Value], nodes: &[&Value]) -> Vec<Step> {
    let ingress = ingress(nodes);
    let mut steps = Vec::new();
    for svc in services {
        let spec = &svc["spec"];
        let ours = spec["type"] == "LoadBalancer" && spec["loadBalancerClass"].as_str().is_none_or(str::is_empty);
        let want = if ours {
            if ingress.is_empty() { json!({}) } else { json!({"ingress": ingress}) }
        } else if spec["type"] != "LoadBalancer" {
            json!({})
        } else {
            continue;
        };
        let have = svc["status"].get("loadBalancer").cloned().unwrap_or_else(|| json!({}));
        if have != want {
            let mut status = svc["status"].as_object().cloned().unwrap_or_default();
            status.insert("loadBalancer".into(), want);
            steps.push(Step { namespace: namespace.to_string(), name: name(svc).to_string(), status: Value::Object(status) });
        }
    }
    steps
}

pub(crate) async fn reconcile_all(api: &Api, objects: &[crate::store::Keyed]) -> Result<(), ApiError> {
    let services = by_namespace(objects, "core/services");
    let nodes: Vec<&Value> = objects.iter().filter(|(k, _)| k.starts_with("core/nodes/")).map(|(_, s)| &s.value).collect();
    let info = info("", "services");
    for (ns, svcs) in &services {
        for step in plan(ns, svcs, &nodes) {
            let Ok(cur) = api.get(info, Some(&step.namespace), &step.name) else { continue };
            let mut obj = cur.value.clone();
            obj["status"] = step.status;
            ignore_transient(api.update(info, Some(&step.namespace), &step.name, obj, Part::Status, &controller_write_options()).await)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ready: &str, addrs: Value) -> Value {
        json!({"status": {"conditions": [{"type": "Ready", "status": ready}], "addresses": addrs}})
    }

    fn svc(name: &str, spec: Value, status: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec, "status": status})
    }

    #[test]
    fn ready_nodes_are_the_ingress() {
        let a = node("True", json!([{"type": "InternalIP", "address": "10.0.0.2"}, {"type": "Hostname", "address": "a"}]));
        let b = node("True", json!([{"type": "InternalIP", "address": "10.0.0.3"}, {"type": "ExternalIP", "address": "192.0.2.9"}]));
        let c = node("False", json!([{"type": "InternalIP", "address": "10.0.0.4"}]));
        let d = node("True", json!([{"type": "InternalIP", "address": "10.0.0.2"}]));
        assert_eq!(ingress(&[&b, &a, &c, &d]), vec![json!({"ip": "10.0.0.2", "ipMode": "VIP"}), json!({"ip": "192.0.2.9", "ipMode": "VIP"})]);
    }

    #[test]
    fn load_balancers_get_the_nodes_others_lose_it_classes_are_left_alone() {
        let n = node("True", json!([{"type": "InternalIP", "address": "127.0.0.1"}]));
        let want = json!({"ingress": [{"ip": "127.0.0.1", "ipMode": "VIP"}]});
        let lb = svc("lb", json!({"type": "LoadBalancer"}), json!({}));
        let done = svc("done", json!({"type": "LoadBalancer"}), json!({"loadBalancer": want}));
        let classed = svc("classed", json!({"type": "LoadBalancer", "loadBalancerClass": "example.com/lb"}), json!({"loadBalancer": {}}));
        let was_lb = svc("was", json!({"type": "ClusterIP"}), json!({"loadBalancer": want}));
        let plain = svc("plain", json!({"type": "ClusterIP"}), json!({}));
        let steps = plan("default", &[&lb, &done, &classed, &was_lb, &plain], &[&n]);
        assert_eq!(steps, vec![
            Step { namespace: "default".into(), name: "lb".into(), status: json!({"loadBalancer": want}) },
            Step { namespace: "default".into(), name: "was".into(), status: json!({"loadBalancer": {}}) },
        ]);
        // No Ready node: pending.
        let steps = plan("default", &[&done], &[]);
        assert_eq!(steps[0].status, json!({"loadBalancer": {}}));
    }
}
