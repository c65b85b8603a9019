//! Table tests of [`allowed`]: a small cluster (three namespaces, a few pods) and, per
//! case, the policies in force and the connections with the answer Kubernetes gives.

use serde_json::{Value, json};

use super::*;

fn obj<T: serde::de::DeserializeOwned>(v: Value) -> Arc<T> {
    Arc::new(serde_json::from_value(v).expect("a valid object"))
}

/// prod (team=a), dev (team=b), other (no labels but its name); pods with IPs in
/// 10.42.0.0/24. prod/web serves `http` on 8080 (TCP) and `dns` on 53 (UDP).
fn view(policies: &[Value]) -> PolicyView {
    let ns = |name: &str, labels: Value| {
        let mut l = labels.as_object().cloned().unwrap_or_default();
        l.insert(NAMESPACE_NAME_LABEL.into(), json!(name));
        obj::<Namespace>(json!({"metadata": {"name": name, "labels": l}}))
    };
    let namespaces = [ns("prod", json!({"team": "a"})), ns("dev", json!({"team": "b"})), ns("other", json!({}))];
    let pod = |ns: &str, name: &str, labels: Value, ip: &str| {
        obj::<Pod>(json!({"metadata": {"namespace": ns, "name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}, {"name": "dns", "containerPort": 53, "protocol": "UDP"}]}]},
            "status": {"phase": "Running", "podIP": ip}}))
    };
    let pods = [
        pod("prod", "web", json!({"app": "web"}), "10.42.0.10"),
        pod("prod", "client", json!({"app": "client"}), "10.42.0.11"),
        pod("prod", "stranger", json!({"app": "x"}), "10.42.0.12"),
        pod("dev", "client", json!({"app": "client"}), "10.42.0.20"),
        pod("dev", "x", json!({"app": "x"}), "10.42.0.21"),
        pod("other", "tool", json!({}), "10.42.0.30"),
    ];
    let policies: Vec<Arc<NetworkPolicy>> = policies
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let (ns, spec) = (spec["ns"].as_str().unwrap_or("prod"), spec["spec"].clone());
            obj(json!({"metadata": {"namespace": ns, "name": format!("p{i}")}, "spec": spec}))
        })
        .collect();
    PolicyView::build(&policies, &namespaces, &pods)
}

fn pod(id: &str) -> Peer<'_> {
    let (namespace, name) = id.split_once('/').expect("ns/name");
    Peer::Pod { namespace, name, ip: None }
}

fn ip(s: &str) -> Peer<'static> {
    Peer::Ip(s.parse().expect("ip"))
}

const TCP: Protocol = Protocol::Tcp;

/// (from, to, port, protocol, allowed?)
type Case<'a> = (Peer<'a>, Peer<'a>, u16, Protocol, bool);

#[track_caller]
fn check(what: &str, policies: &[Value], cases: &[Case<'_>]) {
    let v = view(policies);
    for (i, &(from, to, port, proto, want)) in cases.iter().enumerate() {
        assert_eq!(allowed(&v, from, to, port, proto), want, "{what}, case {i}: {from:?} -> {to:?}:{port} {proto:?}");
    }
}

/// A policy of `prod` with this spec.
fn prod(spec: Value) -> Value {
    json!({"ns": "prod", "spec": spec})
}

fn deny_ingress() -> Value {
    prod(json!({"podSelector": {}, "policyTypes": ["Ingress"]}))
}

#[test]
fn pods_no_policy_selects_allow_everything() {
    check("no policies", &[], &[
        (pod("prod/stranger"), pod("prod/web"), 8080, TCP, true),
        (pod("dev/x"), pod("prod/web"), 9999, Protocol::Udp, true),
        (pod("prod/web"), ip("203.0.113.9"), 443, TCP, true),
        (pod("prod/web"), Peer::Name, 443, TCP, true),
    ]);
    // A policy of another namespace, or one selecting other pods, isolates nobody here.
    check("elsewhere", &[json!({"ns": "dev", "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}), prod(json!({"podSelector": {"matchLabels": {"app": "db"}}}))], &[
        (pod("prod/client"), pod("prod/web"), 8080, TCP, true),
        (pod("prod/web"), pod("other/tool"), 8080, TCP, true),
    ]);
}

#[test]
fn default_deny_ingress() {
    check("deny ingress", &[deny_ingress()], &[
        (pod("prod/client"), pod("prod/web"), 8080, TCP, false),
        (pod("dev/client"), pod("prod/web"), 8080, TCP, false),
        (ip("203.0.113.9"), pod("prod/web"), 8080, TCP, false),
        // Egress of the isolated pods is untouched.
        (pod("prod/web"), pod("dev/client"), 8080, TCP, true),
        (pod("prod/web"), ip("203.0.113.9"), 80, TCP, true),
    ]);
    // An empty rule list and `ingress: []` are the same; `policyTypes` unset means Ingress.
    check("deny ingress, defaulted", &[prod(json!({"podSelector": {}, "ingress": []}))], &[(pod("dev/client"), pod("prod/web"), 8080, TCP, false)]);
    // One rule without `from` or `ports`: everyone, every port.
    check("allow all", &[prod(json!({"podSelector": {}, "ingress": [{}]}))], &[(pod("dev/client"), pod("prod/web"), 1, TCP, true), (ip("203.0.113.9"), pod("prod/web"), 8080, Protocol::Sctp, true)]);
}

#[test]
fn default_deny_egress() {
    check("deny egress", &[prod(json!({"podSelector": {}, "policyTypes": ["Egress"]}))], &[
        (pod("prod/client"), pod("dev/client"), 8080, TCP, false),
        (pod("prod/client"), pod("prod/web"), 8080, TCP, false),
        (pod("prod/client"), ip("203.0.113.9"), 443, TCP, false),
        (pod("prod/client"), Peer::Name, 443, TCP, false),
        // Ingress is untouched.
        (pod("dev/client"), pod("prod/web"), 8080, TCP, true),
    ]);
    // `policyTypes` unset with egress rules: Ingress and Egress.
    let both = prod(json!({"podSelector": {"matchLabels": {"app": "client"}}, "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}));
    check("defaulted to both", &[both], &[
        (pod("prod/client"), pod("prod/web"), 8080, TCP, true),
        (pod("prod/client"), pod("prod/stranger"), 8080, TCP, false),
        (pod("prod/web"), pod("prod/client"), 8080, TCP, false),
    ]);
}

#[test]
fn peers_by_pod_selector_namespace_selector_and_both() {
    let web = json!({"matchLabels": {"app": "web"}});
    let from = |from: Value| prod(json!({"podSelector": web, "ingress": [{"from": from}]}));
    check("podSelector: same namespace only", &[deny_ingress(), from(json!([{"podSelector": {"matchLabels": {"app": "client"}}}]))], &[
        (pod("prod/client"), pod("prod/web"), 8080, TCP, true),
        (pod("prod/stranger"), pod("prod/web"), 8080, TCP, false),
        (pod("dev/client"), pod("prod/web"), 8080, TCP, false),
        (pod("prod/client"), pod("prod/stranger"), 8080, TCP, false),
    ]);
    check("namespaceSelector: every pod there", &[deny_ingress(), from(json!([{"namespaceSelector": {"matchLabels": {"team": "b"}}}]))], &[
        (pod("dev/client"), pod("prod/web"), 8080, TCP, true),
        (pod("dev/x"), pod("prod/web"), 8080, TCP, true),
        (pod("prod/client"), pod("prod/web"), 8080, TCP, false),
        (pod("other/tool"), pod("prod/web"), 8080, TCP, false),
    ]);
    check("namespace by its name label", &[deny_ingress(), from(json!([{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: "other"}}}]))], &[
        (pod("other/tool"), pod("prod/web"), 8080, TCP, true),
        (pod("dev/x"), pod("prod/web"), 8080, TCP, false),
    ]);
    check("both in one entry: AND", &[deny_ingress(), from(json!([{"namespaceSelector": {"matchLabels": {"team": "b"}}, "podSelector": {"matchLabels": {"app": "client"}}}]))], &[
        (pod("dev/client"), pod("prod/web"), 8080, TCP, true),
        (pod("dev/x"), pod("prod/web"), 8080, TCP, false),
        (pod("prod/client"), pod("prod/web"), 8080, TCP, false),
    ]);
    check("two entries: OR", &[deny_ingress(), from(json!([{"namespaceSelector": {"matchLabels": {"team": "b"}}}, {"podSelector": {"matchLabels": {"app": "client"}}}]))], &[
        (pod("dev/x"), pod("prod/web"), 8080, TCP, true),
        (pod("prod/client"), pod("prod/web"), 8080, TCP, true),
        (pod("prod/stranger"), pod("prod/web"), 8080, TCP, false),
    ]);
    check("matchExpressions", &[deny_ingress(), from(json!([{"namespaceSelector": {}, "podSelector": {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["x"]}]}}]))], &[
        (pod("dev/client"), pod("prod/web"), 8080, TCP, true),
        (pod("other/tool"), pod("prod/web"), 8080, TCP, true),
        (pod("dev/x"), pod("prod/web"), 8080, TCP, false),
    ]);
}

#[test]
fn ports_by_number_range_name_and_protocol() {
    let ports = |ports: Value| prod(json!({"podSelector": {}, "ingress": [{"ports": ports}]}));
    let c = pod("prod/client");
    let w = pod("prod/web");
    check("number, TCP by default", &[ports(json!([{"port": 8080}]))], &[(c, w, 8080, TCP, true), (c, w, 8081, TCP, false), (c, w, 8080, Protocol::Udp, false)]);
    check("endPort", &[ports(json!([{"port": 8000, "endPort": 8100}]))], &[(c, w, 8000, TCP, true), (c, w, 8080, TCP, true), (c, w, 8100, TCP, true), (c, w, 8101, TCP, false), (c, w, 7999, TCP, false)]);
    check("named, the destination's", &[ports(json!([{"port": "http"}]))], &[(c, w, 8080, TCP, true), (c, w, 9090, TCP, false), (c, w, 53, TCP, false)]);
    check("named UDP", &[ports(json!([{"port": "dns", "protocol": "UDP"}]))], &[(c, w, 53, Protocol::Udp, true), (c, w, 53, TCP, false)]);
    check("protocol only", &[ports(json!([{"protocol": "UDP"}]))], &[(c, w, 1, Protocol::Udp, true), (c, w, 8080, TCP, false)]);
    // Egress: a named port is the destination pod's; an external address has none.
    let egress = prod(json!({"podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": "http"}]}]}));
    check("named egress port", &[egress], &[(c, w, 8080, TCP, true), (c, w, 8081, TCP, false), (c, ip("203.0.113.9"), 8080, TCP, false)]);
}

#[test]
fn ip_blocks_with_except() {
    let egress = |to: Value| prod(json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": to}]}));
    let c = pod("prod/client");
    check("external", &[egress(json!([{"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.128/25"]}}]))], &[
        (c, ip("203.0.113.5"), 443, TCP, true),
        (c, ip("203.0.113.200"), 443, TCP, false),
        (c, ip("198.51.100.1"), 443, TCP, false),
        (c, ip("2001:db8::1"), 443, TCP, false),
        // A name is not known to be inside the block.
        (c, Peer::Name, 443, TCP, false),
    ]);
    check("everything but the cluster", &[egress(json!([{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.42.0.0/16"]}}]))], &[
        (c, ip("198.51.100.1"), 443, TCP, true),
        (c, pod("dev/client"), 8080, TCP, false),
        (c, Peer::Name, 443, TCP, false),
    ]);
    check("everything", &[egress(json!([{"ipBlock": {"cidr": "0.0.0.0/0"}}]))], &[(c, Peer::Name, 443, TCP, true), (c, pod("dev/client"), 8080, TCP, true)]);
    check("IPv6", &[egress(json!([{"ipBlock": {"cidr": "2001:db8::/32"}}]))], &[(c, ip("2001:db8::1"), 443, TCP, true), (c, ip("203.0.113.5"), 443, TCP, false)]);
    // Pods are matched by their IP: a source pod in the block.
    let ingress = prod(json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.42.0.0/24", "except": ["10.42.0.20/32"]}}]}]}));
    check("pod IPs", &[ingress], &[
        (pod("dev/x"), pod("prod/web"), 8080, TCP, true),
        (pod("dev/client"), pod("prod/web"), 8080, TCP, false),
        (ip("10.42.0.99"), pod("prod/web"), 8080, TCP, true),
        (ip("10.42.1.99"), pod("prod/web"), 8080, TCP, false),
    ]);
}

#[test]
fn policies_add_up_and_both_ends_must_allow() {
    let from_clients = prod(json!({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}]}));
    let from_dev = prod(json!({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}], "ports": [{"port": 8080}]}]}));
    check("union", &[from_clients.clone(), from_dev], &[
        (pod("prod/client"), pod("prod/web"), 9000, TCP, true),
        (pod("dev/x"), pod("prod/web"), 8080, TCP, true),
        (pod("dev/x"), pod("prod/web"), 9000, TCP, false),
        (pod("prod/stranger"), pod("prod/web"), 8080, TCP, false),
    ]);
    // The client may send to web, but web's ingress takes only dev; and the reverse.
    let client_to_web = json!({"ns": "dev", "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "web"}}}]}]}});
    let web_from_prod = prod(json!({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": [{"podSelector": {}}]}]}));
    check("both ends", &[client_to_web, web_from_prod], &[
        (pod("dev/client"), pod("prod/web"), 8080, TCP, false),
        (pod("dev/client"), pod("prod/client"), 8080, TCP, false),
        (pod("prod/client"), pod("prod/web"), 8080, TCP, true),
    ]);
}

#[test]
fn the_node_and_the_pod_itself_are_never_filtered() {
    let all = [prod(json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}))];
    check("deny all", &all, &[
        (Peer::Node, pod("prod/web"), 8080, TCP, true),
        (pod("prod/web"), Peer::Node, 10250, TCP, true),
        (pod("prod/web"), pod("prod/web"), 8080, TCP, true),
        (pod("prod/client"), pod("prod/web"), 8080, TCP, false),
    ]);
}

#[test]
fn pods_are_found_by_ip_and_unknown_pods_have_no_labels() {
    let v = view(&[deny_ingress(), prod(json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}]}))]);
    let at = v.peer_at("10.42.0.11".parse().expect("ip"));
    assert!(matches!(at, Peer::Pod { namespace: "prod", name: "client", .. }), "{at:?}");
    assert!(allowed(&v, at, pod("prod/web"), 8080, TCP));
    assert!(matches!(v.peer_at("10.42.0.99".parse().expect("ip")), Peer::Ip(_)));
    // A pod the watch has not brought yet: isolated by `podSelector: {}`, matching no labels.
    assert!(!allowed(&v, pod("prod/new"), pod("prod/web"), 8080, TCP));
    assert!(!allowed(&v, pod("prod/stranger"), pod("prod/new"), 8080, TCP));
    assert!(allowed(&v, pod("prod/client"), pod("prod/new"), 8080, TCP));
    assert!(allowed(&v, pod("prod/new"), pod("dev/x"), 8080, TCP));
}

#[test]
fn a_finished_pod_does_not_keep_its_address() {
    let pod = |name: &str, phase: &str| obj::<Pod>(json!({"metadata": {"namespace": "prod", "name": name}, "status": {"phase": phase, "podIP": "10.42.0.50"}}));
    for order in [[pod("old", "Succeeded"), pod("new", "Running")], [pod("new", "Running"), pod("old", "Succeeded")]] {
        let v = PolicyView::build(&[], &[], &order);
        assert!(matches!(v.peer_at("10.42.0.50".parse().expect("ip")), Peer::Pod { name: "new", .. }));
    }
}
