//! Printers of networking.k8s.io/v1 kinds (Ingress, IngressClass, NetworkPolicy) and of
//! discovery.k8s.io/v1 EndpointSlice.
//!
//! Invariant: each `*_cells` returns one cell per column of its `*_COLUMNS`, in order.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    AGE, Column, NAME, age, col, default_str, format_label_selector, get, list, load_balancer_addresses, name, opt_int,
    strings, text,
};

// ---------------------------------------------------------------------------------------
// Columns

#[rustfmt::skip]
pub(super) const INGRESS_COLUMNS: &[Column] = &[
    NAME,
    col("Class", "string", "The name of the IngressClass resource that should be used for additional configuration"),
    col("Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule"),
    col("Address", "string", "Address is a list containing ingress points for the load-balancer"),
    col("Ports", "string", "Ports of TLS configurations that open"),
    AGE,
];

#[rustfmt::skip]
pub(super) const INGRESS_CLASS_COLUMNS: &[Column] = &[
    NAME,
    col("Controller", "string", "Controller that is responsible for handling this class"),
    col("Parameters", "string", "A reference to a resource with additional parameters"),
    AGE,
];

#[rustfmt::skip]
pub(super) const NETWORK_POLICY_COLUMNS: &[Column] = &[
    NAME,
    col("Pod-Selector", "string", "Selects the pods to which this NetworkPolicy object applies."),
    AGE,
];

#[rustfmt::skip]
pub(super) const ENDPOINT_SLICE_COLUMNS: &[Column] = &[
    NAME,
    col("AddressType", "string", "addressType specifies the type of address carried by this EndpointSlice."),
    col("Ports", "string", "ports specifies the list of network ports exposed by each endpoint in this slice."),
    col("Endpoints", "string", "endpoints is a list of unique endpoints in this slice."),
    AGE,
];

// ---------------------------------------------------------------------------------------
// Printers

pub(super) fn ingress_cells(ing: &Value, now: DateTime<Utc>) -> Vec<Value> {
    const MAX: usize = 3;
    let rules = list(ing, &["spec", "rules"]);
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX {
            more = true;
        }
        let host = text(rule, &["host"]);
        if !more && !host.is_empty() {
            hosts.push(host);
        }
    }
    let hosts = if hosts.is_empty() {
        "*".to_string()
    } else if more {
        format!("{} + {} more...", hosts.join(","), rules.len() - MAX)
    } else {
        hosts.join(",")
    };
    let ports = if list(ing, &["spec", "tls"]).is_empty() { "80" } else { "80, 443" };
    vec![
        name(ing).into(),
        default_str(text(ing, &["spec", "ingressClassName"]), "<none>").into(),
        hosts.into(),
        load_balancer_addresses(list(ing, &["status", "loadBalancer", "ingress"])).join(",").into(),
        ports.into(),
        age(ing, now),
    ]
}

pub(super) fn ingress_class_cells(ic: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let parameters = match get(ic, &["spec", "parameters"]) {
        Some(p) => {
            let mut out = text(p, &["kind"]).to_string();
            if let Some(group) = get(p, &["apiGroup"]).and_then(Value::as_str) {
                out = format!("{out}.{group}");
            }
            format!("{out}/{}", text(p, &["name"]))
        }
        None => "<none>".to_string(),
    };
    vec![name(ic).into(), text(ic, &["spec", "controller"]).into(), parameters.into(), age(ic, now)]
}

pub(super) fn network_policy_cells(np: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name(np).into(), format_label_selector(get(np, &["spec", "podSelector"])).into(), age(np, now)]
}

pub(super) fn endpoint_slice_cells(es: &Value, now: DateTime<Utc>) -> Vec<Value> {
    const MAX: usize = 3;
    let port_list = list(es, &["ports"]);
    let ports: Vec<String> = port_list
        .iter()
        .take(MAX)
        .map(|p| match (opt_int(p, &["port"]), get(p, &["name"]).and_then(Value::as_str)) {
            (Some(port), _) => port.to_string(),
            (None, Some(name)) => name.to_string(),
            (None, None) => "*".to_string(),
        })
        .collect();
    let addresses: Vec<&str> = list(es, &["endpoints"]).iter().flat_map(|e| strings(list(e, &["addresses"]))).collect();
    let shown: Vec<String> = addresses.iter().take(MAX).map(|a| a.to_string()).collect();
    vec![
        name(es).into(),
        text(es, &["addressType"]).into(),
        list_with_more(&ports, port_list.len(), MAX).into(),
        list_with_more(&shown, addresses.len(), MAX).into(),
        age(es, now),
    ]
}

fn list_with_more(shown: &[String], count: usize, max: usize) -> String {
    let joined = shown.join(",");
    if count > max {
        format!("{joined} + {} more...", count - max)
    } else if joined.is_empty() {
        "<unset>".into()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::cells;
    use serde_json::json;

    #[test]
    fn networking_kinds() {
        let c = cells(
            "networking.k8s.io",
            "Ingress",
            json!({"spec": {"ingressClassName": "nginx",
            "rules": [{"host": "a.example"}, {}, {"host": "b.example"}, {"host": "c.example"}, {"host": "d.example"}],
            "tls": [{"hosts": ["a.example"]}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}),
        );
        assert_eq!(
            &c[1..5],
            &[json!("nginx"), json!("a.example,b.example,c.example + 2 more..."), json!("1.2.3.4"), json!("80, 443")]
        );
        let c = cells("networking.k8s.io", "Ingress", json!({"spec": {"rules": [{}]}}));
        assert_eq!(&c[1..5], &[json!("<none>"), json!("*"), json!(""), json!("80")]);
        let c = cells(
            "networking.k8s.io",
            "IngressClass",
            json!({"spec": {"controller": "k8s.io/ingress-nginx",
            "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"}}}),
        );
        assert_eq!(&c[1..3], &[json!("k8s.io/ingress-nginx"), json!("IngressParameters.k8s.example.com/p")]);
        assert_eq!(cells("networking.k8s.io", "NetworkPolicy", json!({"spec": {"podSelector": {}}}))[1], "<none>");
        let c = cells(
            "discovery.k8s.io",
            "EndpointSlice",
            json!({"addressType": "IPv4",
            "ports": [{"port": 80}, {"name": "metrics"}, {}, {"port": 9}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]}),
        );
        assert_eq!(&c[1..4], &[json!("IPv4"), json!("80,metrics,* + 1 more..."), json!("10.0.0.1,10.0.0.2")]);
        assert_eq!(cells("discovery.k8s.io", "EndpointSlice", json!({}))[2], "<unset>");
    }
}
