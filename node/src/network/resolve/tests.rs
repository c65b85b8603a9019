//! Table tests of the pod network: a fixture cluster built from API objects, then every
//! kind of authority a guest can name, and the backend choice of [`pick`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Endpoints, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

use super::*;

fn obj<T: serde::de::DeserializeOwned>(v: Value) -> Arc<T> {
    Arc::new(serde_json::from_value(v).expect("a valid object"))
}

fn svc(ns: &str, name: &str, spec: Value) -> Arc<Service> {
    obj(json!({"metadata": {"namespace": ns, "name": name}, "spec": spec}))
}

fn slice(ns: &str, service: &str, name: &str, ports: Value, endpoints: Value) -> Arc<EndpointSlice> {
    obj(json!({
        "metadata": {"namespace": ns, "name": name, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "ports": ports, "endpoints": endpoints,
    }))
}

fn ep(ip: &str, ready: bool, node: &str) -> Value {
    json!({"addresses": [ip], "conditions": {"ready": ready}, "nodeName": node})
}

fn node(name: &str, cidr: &str) -> Arc<Node> {
    obj(json!({"metadata": {"name": name}, "spec": {"podCIDR": cidr, "podCIDRs": [cidr]}}))
}

/// Nodes n1 (10.42.1.0/24) and n2 (10.42.2.0/24); Services in default and other.
fn fixture() -> Table {
    let services = vec![
        svc("default", "web", json!({"clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"], "ports": [
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "metrics", "port": 9090, "targetPort": 9100},
            {"name": "dns", "port": 53, "protocol": "UDP"},
        ]})),
        svc("default", "empty", json!({"clusterIP": "10.43.0.11", "ports": [{"port": 80}]})),
        svc("default", "sticky", json!({"clusterIP": "10.43.0.12", "ports": [{"port": 80, "targetPort": 8080}],
            "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}})),
        svc("default", "db", json!({"clusterIP": "None", "ports": [{"port": 5432}]})),
        svc("default", "legacy", json!({"clusterIP": "10.43.0.13", "ports": [{"port": 80, "targetPort": 8080}]})),
        svc("default", "ext", json!({"type": "ExternalName", "externalName": "Example.COM."})),
        svc("default", "alias", json!({"type": "ExternalName", "externalName": "web.default.svc.cluster.local"})),
        svc("default", "loop-a", json!({"type": "ExternalName", "externalName": "loop-b.default.svc.cluster.local"})),
        svc("default", "loop-b", json!({"type": "ExternalName", "externalName": "loop-a.default.svc.cluster.local"})),
        svc("default", "pending", json!({"ports": [{"port": 80}]})),
        svc("other", "api", json!({"clusterIP": "10.43.0.20", "ports": [{"port": 80, "targetPort": 8080}]})),
    ];
    let slices = vec![
        // Two groups of pods: the named targetPort resolves to 8080 in one, 8081 in the other.
        slice("default", "web", "web-a", json!([{"name": "http", "port": 8080}, {"name": "metrics", "port": 9100}]), json!([
            ep("10.42.1.6", true, "n1"), ep("10.42.1.5", true, "n1"), ep("10.42.1.7", false, "n1"),
            {"addresses": ["10.42.1.8"]},
        ])),
        slice("default", "web", "web-b", json!([{"name": "http", "port": 8081}]), json!([ep("10.42.2.9", true, "n2")])),
        slice("default", "sticky", "sticky-a", json!([{"name": "", "port": 8080}]), json!([ep("10.42.1.5", true, "n1"), ep("10.42.1.6", true, "n1")])),
        slice("default", "db", "db-a", json!([{"port": 5432}]), json!([
            {"addresses": ["10.42.1.21"], "conditions": {"ready": true}, "hostname": "db-1", "nodeName": "n1"},
            {"addresses": ["10.42.1.20"], "conditions": {"ready": true}, "hostname": "db-0", "nodeName": "n1"},
            {"addresses": ["10.42.1.22"], "conditions": {"ready": false}, "hostname": "db-2", "nodeName": "n1"},
        ])),
        slice("other", "api", "api-a", json!([{"port": 8080}]), json!([ep("10.42.1.40", true, "n1")])),
        // An FQDN slice is not routed.
        obj(json!({"metadata": {"namespace": "other", "name": "api-f", "labels": {"kubernetes.io/service-name": "api"}},
            "addressType": "FQDN", "ports": [{"port": 8080}], "endpoints": [{"addresses": ["api.example.com"]}]})),
    ];
    let endpoints: Vec<Arc<Endpoints>> = vec![
        // Ignored: web has slices.
        obj(json!({"metadata": {"namespace": "default", "name": "web"}, "subsets": [{"addresses": [{"ip": "10.42.1.99"}], "ports": [{"name": "http", "port": 8080}]}]})),
        obj(json!({"metadata": {"namespace": "default", "name": "legacy"}, "subsets": [{
            "addresses": [{"ip": "10.42.1.30", "nodeName": "n1"}], "notReadyAddresses": [{"ip": "10.42.1.31"}], "ports": [{"port": 8080}],
        }]})),
    ];
    let nodes = vec![node("n1", "10.42.1.0/24"), node("n2", "10.42.2.0/24")];
    Table::build(&services, &slices, &endpoints, &nodes)
}

const ME: &str = "10.42.1.50";

fn from(ns: &str) -> Client<'_> {
    Client { namespace: ns, ip: Some(ME.parse().unwrap()) }
}

/// The route as text: `local:P`, `pod:IP:P`, `lb[ADDR ADDR]`, `lb:P[IP IP]`,
/// `external:H:P`, `refused: WHY`, `nxdomain`.
fn show(r: &Route) -> String {
    match r {
        Route::Local { port } => format!("local:{port}"),
        Route::Pod { addr } => format!("pod:{addr}"),
        Route::Balanced { backends, port: None } => format!("lb[{}]", backends.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" ")),
        Route::Balanced { backends, port: Some(p) } => format!("lb:{p}[{}]", backends.addrs.iter().map(|a| a.ip().to_string()).collect::<Vec<_>>().join(" ")),
        Route::External { host, port } => format!("external:{host}:{port}"),
        Route::Refused(why) => format!("refused: {why}"),
        Route::NoSuchName => "nxdomain".to_string(),
    }
}

fn route(t: &Table, ns: &str, host: &str, port: u16) -> String {
    show(&resolve(t, &from(ns), host, port))
}

const WEB: &str = "lb[10.42.1.5:8080 10.42.1.6:8080 10.42.1.8:8080 10.42.2.9:8081]";

#[test]
fn localhost_and_the_pods_own_addresses_are_the_pod() {
    let t = fixture();
    for host in ["localhost", "LocalHost", "localhost.", "api.localhost", "127.0.0.1", "127.3.4.5", "::1", "0.0.0.0", ME] {
        assert_eq!(route(&t, "default", host, 9090), "local:9090", "{host}");
    }
}

#[test]
fn service_names_in_every_form_reach_its_ready_endpoints() {
    let t = fixture();
    for host in ["web", "WEB", "web.default", "web.default.svc", "web.default.svc.cluster.local", "web.default.svc.cluster.local."] {
        assert_eq!(route(&t, "default", host, 80), WEB, "{host}");
    }
    // The search path starts with the client's namespace.
    assert_eq!(route(&t, "other", "web", 80), "nxdomain");
    assert_eq!(route(&t, "other", "web.default", 80), WEB);
    assert_eq!(route(&t, "default", "api.other", 80), "lb[10.42.1.40:8080]");
    // An absolute name gets no search path.
    assert_eq!(route(&t, "default", "web.", 80), "nxdomain");
    assert_eq!(route(&t, "default", "web.default.", 80), "nxdomain");
}

#[test]
fn the_cluster_ip_routes_like_the_name() {
    let t = fixture();
    assert_eq!(route(&t, "default", "10.43.0.10", 80), WEB);
    assert_eq!(route(&t, "other", "10.43.0.10", 80), WEB);
    assert_eq!(route(&t, "default", "10.43.0.20", 80), "lb[10.42.1.40:8080]");
}

#[test]
fn target_ports_resolve_per_endpoint_by_number_or_name() {
    let t = fixture();
    // Named targetPort `http`: 8080 in one slice, 8081 in the other (see WEB).
    // Numeric targetPort 9100, only the slice that has the port name.
    assert_eq!(route(&t, "default", "web", 9090), "lb[10.42.1.5:9100 10.42.1.6:9100 10.42.1.8:9100]");
    // Selector-less Service: its Endpoints object, ready addresses only.
    assert_eq!(route(&t, "default", "legacy", 80), "lb[10.42.1.30:8080]");
    assert_eq!(route(&t, "default", "10.43.0.13", 80), "lb[10.42.1.30:8080]");
}

#[test]
fn not_ready_endpoints_ports_and_empty_services_are_refused() {
    let t = fixture();
    assert!(!WEB.contains("10.42.1.7"), "a not-ready endpoint gets no traffic");
    assert!(!WEB.contains("10.42.1.99"), "Endpoints are ignored when the Service has slices");
    assert_eq!(route(&t, "default", "web", 81), "refused: the Service has no such port");
    assert_eq!(route(&t, "default", "10.43.0.10", 81), "refused: the Service has no such port");
    // UDP ports do not route HTTP.
    assert_eq!(route(&t, "default", "web", 53), "refused: the Service has no such port");
    assert_eq!(route(&t, "default", "empty", 80), "refused: the Service has no ready endpoints");
    assert_eq!(route(&t, "default", "10.43.0.11", 80), "refused: the Service has no ready endpoints");
}

#[test]
fn headless_names_resolve_to_ready_pods_and_their_hostnames() {
    let t = fixture();
    assert_eq!(route(&t, "default", "db", 5432), "lb:5432[10.42.1.20 10.42.1.21]");
    assert_eq!(route(&t, "default", "db.default.svc.cluster.local", 7000), "lb:7000[10.42.1.20 10.42.1.21]");
    for host in ["db-0.db", "db-0.db.default", "db-0.db.default.svc", "db-0.db.default.svc.cluster.local", "DB-0.db.default.svc.cluster.local."] {
        assert_eq!(route(&t, "default", host, 5432), "pod:10.42.1.20:5432", "{host}");
    }
    assert_eq!(route(&t, "other", "db-1.db.default", 1), "pod:10.42.1.21:1");
    // Not ready, or no such hostname: no record.
    assert_eq!(route(&t, "default", "db-2.db", 5432), "nxdomain");
    assert_eq!(route(&t, "default", "db-9.db", 5432), "nxdomain");
    // Hostname records exist only under headless Services.
    assert_eq!(route(&t, "default", "x.web", 80), "nxdomain");
}

#[test]
fn external_names_are_cnames() {
    let t = fixture();
    assert_eq!(route(&t, "default", "ext", 443), "external:example.com:443");
    assert_eq!(route(&t, "other", "ext.default.svc.cluster.local", 80), "external:example.com:80");
    assert_eq!(route(&t, "default", "alias", 80), WEB);
    assert_eq!(route(&t, "default", "loop-a", 80), "nxdomain");
}

#[test]
fn pod_addresses_and_pod_names() {
    let t = fixture();
    assert_eq!(route(&t, "default", "10.42.1.77", 8080), "pod:10.42.1.77:8080");
    assert_eq!(route(&t, "default", "10.42.2.9", 8081), "pod:10.42.2.9:8081");
    assert_eq!(route(&t, "default", "10-42-1-5.default.pod.cluster.local", 8080), "pod:10.42.1.5:8080");
    assert_eq!(route(&t, "default", "10-42-1-5.default.pod", 8080), "pod:10.42.1.5:8080");
    assert_eq!(route(&t, "default", "10-42-1-500.default.pod", 8080), "nxdomain");
    assert_eq!(t.node_of("10.42.2.200".parse().unwrap()), Some("n2"));
    assert_eq!(t.node_of("10.42.1.30".parse().unwrap()), Some("n1"));
    assert_eq!(t.node_of("10.42.3.1".parse().unwrap()), None);
}

#[test]
fn unknown_cluster_names_do_not_resolve_and_others_are_external() {
    let t = fixture();
    for host in ["nosuch", "nosuch.default", "nosuch.other.svc", "nosuch.svc", "nosuch.default.svc.cluster.local", "pending", "a..b", "x.pod"] {
        assert_eq!(route(&t, "default", host, 80), "nxdomain", "{host}");
    }
    assert_eq!(route(&t, "default", "example.com", 80), "external:example.com:80");
    assert_eq!(route(&t, "default", "Web.Example.com.", 80), "external:web.example.com:80");
    assert_eq!(route(&t, "default", "a.b.c.d.e.f", 80), "external:a.b.c.d.e.f:80");
    assert_eq!(route(&t, "default", "8.8.8.8", 53), "external:8.8.8.8:53");
    assert_eq!(route(&t, "default", "10.42.3.1", 80), "external:10.42.3.1:80");
    assert_eq!(route(&t, "default", "2001:db8::1", 80), "external:2001:db8::1:80");
}

fn backends_of(t: &Table, ns: &str, host: &str, port: u16) -> Arc<Backends> {
    match resolve(t, &from(ns), host, port) {
        Route::Balanced { backends, .. } => backends,
        other => panic!("{host}: {}", show(&other)),
    }
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

#[test]
fn round_robin_spreads_over_the_backends() {
    let t = fixture();
    let b = backends_of(&t, "default", "web", 80);
    let mut bal = Balancer::default();
    let now = Instant::now();
    let picks: Vec<String> = (0..8).map(|i| pick(&b, ip(&format!("10.42.1.{}", 100 + i)), now, &mut bal).unwrap().to_string()).collect();
    assert_eq!(picks[..4], ["10.42.1.5:8080", "10.42.1.6:8080", "10.42.1.8:8080", "10.42.2.9:8081"]);
    assert_eq!(picks[4..], picks[..4]);
    // Each Service port keeps its own turn; a rebuilt table keeps the turn.
    let m = backends_of(&t, "default", "web", 9090);
    assert_eq!(pick(&m, None, now, &mut bal), Some("10.42.1.5:9100".parse().unwrap()));
    let again = backends_of(&fixture(), "default", "web", 80);
    assert_eq!(pick(&again, None, now, &mut bal), Some("10.42.1.5:8080".parse().unwrap()));
    assert_eq!(pick(&Backends::default(), None, now, &mut bal), None);
}

#[test]
fn client_ip_affinity_sticks_until_timeout_or_the_endpoint_goes() {
    let t = fixture();
    let b = backends_of(&t, "default", "sticky", 80);
    assert_eq!(b.affinity, Some(Duration::from_secs(60)));
    let mut bal = Balancer::default();
    let t0 = Instant::now();
    let a = pick(&b, ip("10.42.1.100"), t0, &mut bal).unwrap();
    let other = pick(&b, ip("10.42.1.101"), t0, &mut bal).unwrap();
    assert_ne!(a, other, "the next client gets the next backend");
    // Used within the timeout, each time: the same backend.
    for s in [10, 50, 100, 150] {
        assert_eq!(pick(&b, ip("10.42.1.100"), t0 + Duration::from_secs(s), &mut bal), Some(a));
    }
    // Idle longer than the timeout: round robin again.
    let later = t0 + Duration::from_secs(150 + 61);
    let fresh = pick(&b, ip("10.42.1.100"), later, &mut bal).unwrap();
    assert_eq!(pick(&b, ip("10.42.1.100"), later, &mut bal), Some(fresh));
    // Its endpoint no longer ready: another one, kept from then on.
    let survivor = if fresh == a { other } else { a };
    let shrunk = Backends { key: b.key.clone(), addrs: vec![survivor], affinity: b.affinity };
    assert_eq!(pick(&shrunk, ip("10.42.1.100"), later, &mut bal), Some(survivor));
    assert_eq!(pick(&b, ip("10.42.1.100"), later, &mut bal), Some(survivor));
    // Without a client address there is nothing to stick to.
    let x = pick(&b, None, later, &mut bal).unwrap();
    let y = pick(&b, None, later, &mut bal).unwrap();
    assert_ne!(x, y);
    // The default timeout is Kubernetes' three hours.
    let d = Table::build(
        &[svc("default", "s", json!({"clusterIP": "10.43.0.99", "ports": [{"port": 80}], "sessionAffinity": "ClientIP"}))],
        &[slice("default", "s", "s-a", json!([{"port": 80}]), json!([ep("10.42.1.5", true, "n1")]))],
        &[],
        &[],
    );
    assert_eq!(backends_of(&d, "default", "s", 80).affinity, Some(Duration::from_secs(10_800)));
}

#[test]
fn frontends_are_node_ports_health_checks_and_published_load_balancers() {
    use crate::network::table::{Frontend, FrontendKind};
    let with_status = |ns: &str, name: &str, spec: Value, status: Value| -> Arc<Service> {
        obj(json!({"metadata": {"namespace": ns, "name": name}, "spec": spec, "status": status}))
    };
    let published = json!({"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}});
    let services = vec![
        svc("default", "np", json!({"type": "NodePort", "clusterIP": "10.43.0.30", "ports": [
            {"name": "http", "port": 80, "nodePort": 30080}, {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}]})),
        with_status("default", "lb", json!({"type": "LoadBalancer", "clusterIP": "10.43.0.31", "externalTrafficPolicy": "Local",
            "healthCheckNodePort": 31000, "ports": [{"port": 8443, "nodePort": 30443}]}), published.clone()),
        // Another Service's load balancer on the same port: the first by namespace/name keeps it.
        with_status("other", "lb2", json!({"type": "LoadBalancer", "clusterIP": "10.43.0.32", "ports": [{"port": 8443, "nodePort": 30444}]}), published.clone()),
        // Not published yet (the built-in load balancer is off), or another class's: no LB port.
        svc("default", "pending", json!({"type": "LoadBalancer", "clusterIP": "10.43.0.33", "ports": [{"port": 9000, "nodePort": 30900}]})),
        with_status("default", "classed", json!({"type": "LoadBalancer", "loadBalancerClass": "example.com/lb", "clusterIP": "10.43.0.34",
            "ports": [{"port": 9001, "nodePort": 30901}]}), published),
        // A ClusterIP Service with a stale nodePort field: nothing.
        svc("default", "cip", json!({"clusterIP": "10.43.0.35", "ports": [{"port": 80, "nodePort": 30999}]})),
    ];
    let table = Table::build(&services, &[], &[], &[]);
    let f = |svc: &str, kind: FrontendKind| Frontend { service: svc.into(), kind };
    let got: Vec<(u16, Frontend)> = table.frontends().into_iter().collect();
    assert_eq!(got, vec![
        (8443, f("default/lb", FrontendKind::LoadBalancer { port: 8443 })),
        (30080, f("default/np", FrontendKind::NodePort { port: 80 })),
        (30443, f("default/lb", FrontendKind::NodePort { port: 8443 })),
        (30444, f("other/lb2", FrontendKind::NodePort { port: 8443 })),
        (30900, f("default/pending", FrontendKind::NodePort { port: 9000 })),
        (30901, f("default/classed", FrontendKind::NodePort { port: 9001 })),
        (31000, f("default/lb", FrontendKind::HealthCheck)),
    ]);
    assert!(table.service("default", "lb").expect("lb").outside.local_only);
}
