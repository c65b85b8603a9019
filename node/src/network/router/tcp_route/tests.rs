//! Where TCP connects and name lookups go, decided by the router from a routing table
//! built from API objects (no runtime: the guests' side is in runtime/tests/tcp.rs).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

use super::super::super::table::Table;
use super::super::super::tcp::{NameLookup, Target, TcpError};
use super::super::{Egress, Routing};
use crate::pod_table::{PodEntry, PodTable};
use crate::runtime::Network;

fn obj<T: serde::de::DeserializeOwned>(v: Value) -> Arc<T> {
    Arc::new(serde_json::from_value(v).expect("a valid object"))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

fn ips(v: &[&str]) -> NameLookup {
    NameLookup::Addresses(v.iter().map(|s| s.parse::<IpAddr>().expect("ip")).collect())
}

struct Net {
    routing: Arc<Routing>,
    pods: Arc<PodTable>,
}

impl Net {
    fn new(egress: Egress) -> Net {
        let pods = Arc::new(PodTable::default());
        let routing = Routing::new("n1".into(), pods.clone(), egress);
        let services = [
            obj::<Service>(json!({"metadata": {"namespace": "default", "name": "echo"}, "spec": {"clusterIP": "10.43.0.20", "ports": [{"name": "redis", "port": 6000, "targetPort": "tcp"}]}})),
            obj(json!({"metadata": {"namespace": "default", "name": "empty"}, "spec": {"clusterIP": "10.43.0.21", "ports": [{"port": 80}]}})),
            obj(json!({"metadata": {"namespace": "default", "name": "remote"}, "spec": {"clusterIP": "10.43.0.22", "ports": [{"port": 80, "targetPort": 8080}]}})),
            obj(json!({"metadata": {"namespace": "default", "name": "db"}, "spec": {"clusterIP": "None"}})),
        ];
        let slice = |svc: &str, port: Value, endpoints: Value| {
            obj::<EndpointSlice>(json!({"metadata": {"namespace": "default", "name": format!("{svc}-x"), "labels": {"kubernetes.io/service-name": svc}},
                "addressType": "IPv4", "ports": [port], "endpoints": endpoints}))
        };
        let slices = [
            slice("echo", json!({"name": "redis", "port": 7000}), json!([{"addresses": ["10.42.1.11"], "nodeName": "n1"}])),
            slice("remote", json!({"port": 8080}), json!([{"addresses": ["10.42.2.5"], "nodeName": "n2"}])),
            slice("db", json!({"port": 5432}), json!([{"addresses": ["10.42.1.11"], "hostname": "db-0"}, {"addresses": ["10.42.1.12"]}])),
        ];
        let nodes = [
            obj::<Node>(json!({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.42.1.0/24"}})),
            obj(json!({"metadata": {"name": "n2"}, "spec": {"podCIDR": "10.42.2.0/24"}})),
        ];
        routing.publish(Table::build(&services, &slices, &[], &nodes));
        Net { routing, pods }
    }

    fn pod(&self, name: &str, ip: &str) -> (Arc<PodEntry>, Arc<dyn Network>) {
        let entry = Arc::new(PodEntry { uid: format!("uid-{name}"), namespace: "default".into(), name: name.into(), containers: Default::default() });
        let ip: IpAddr = ip.parse().expect("ip");
        self.pods.insert_with_ip(entry.clone(), Some(ip));
        let net = self.routing.for_pod(&entry, Some(ip));
        (entry, net)
    }
}

fn to_pod(t: &Target, net: &Arc<dyn Network>) -> Option<(u16, bool)> {
    match t {
        Target::Pod { sockets, port, loopback } if Arc::ptr_eq(sockets, &net.sockets().expect("sockets")) => Some((*port, *loopback)),
        _ => None,
    }
}

#[test]
fn connects_go_where_http_requests_go() {
    let net = Net::new(Egress::Deny);
    let (_s, server) = net.pod("server", "10.42.1.11");
    let (_c, client) = net.pod("client", "10.42.1.12");
    // A ClusterIP port: a ready endpoint, on the targetPort resolved by name.
    assert_eq!(to_pod(&client.tcp_target(addr("10.43.0.20:6000")), &server), Some((7000, false)));
    assert!(matches!(client.tcp_target(addr("10.43.0.20:7000")), Target::Refused), "the targetPort is not a Service port");
    assert!(matches!(client.tcp_target(addr("10.43.0.21:80")), Target::Refused), "no ready endpoint");
    // Pod addresses, loopback, the pod's own address.
    assert_eq!(to_pod(&client.tcp_target(addr("10.42.1.11:5432")), &server), Some((5432, false)));
    assert_eq!(to_pod(&client.tcp_target(addr("127.0.0.1:1")), &client), Some((1, true)));
    assert_eq!(to_pod(&client.tcp_target(addr("10.42.1.12:1")), &client), Some((1, false)));
    assert!(matches!(client.tcp_target(addr("10.42.1.99:1")), Target::Refused), "nobody holds that pod address");
    // Another node's pods: refused while this node has no data plane.
    assert!(matches!(client.tcp_target(addr("10.43.0.22:80")), Target::Refused));
    // Outside the cluster: denied unless the node allows egress.
    assert!(matches!(client.tcp_target(addr("192.0.2.1:80")), Target::Denied));
    let open = Net::new(Egress::Allow);
    let (_o, other) = open.pod("client", "10.42.1.12");
    assert!(matches!(other.tcp_target(addr("192.0.2.1:80")), Target::External(a) if a == addr("192.0.2.1:80")));
}

#[test]
fn names_resolve_as_cluster_dns_answers_them() {
    let net = Net::new(Egress::Deny);
    let (_c, client) = net.pod("client", "10.42.1.12");
    for name in ["echo", "echo.default", "echo.default.svc", "echo.default.svc.cluster.local", "ECHO.default.svc.cluster.local."] {
        assert_eq!(client.lookup(name), ips(&["10.43.0.20"]), "{name}");
    }
    assert_eq!(client.lookup("empty"), ips(&["10.43.0.21"]), "a Service without endpoints still has its ClusterIP");
    assert_eq!(client.lookup("db"), ips(&["10.42.1.11", "10.42.1.12"]), "headless: the ready pod addresses");
    assert_eq!(client.lookup("db-0.db"), ips(&["10.42.1.11"]));
    assert_eq!(client.lookup("10-42-1-11.default.pod.cluster.local"), ips(&["10.42.1.11"]));
    assert_eq!(client.lookup("localhost"), ips(&["127.0.0.1"]));
    for name in ["nosuch", "nosuch.default.svc.cluster.local", "example.com"] {
        assert_eq!(client.lookup(name), NameLookup::NoSuchName, "{name}");
    }
    let open = Net::new(Egress::Allow);
    let (_o, other) = open.pod("client", "10.42.1.12");
    assert_eq!(other.lookup("example.com"), NameLookup::External("example.com".into()));
    assert_eq!(other.lookup("nosuch"), NameLookup::NoSuchName);
}

#[test]
fn a_pod_keeps_one_port_space_while_it_lives() {
    let net = Net::new(Egress::Deny);
    let (entry, first) = net.pod("p", "10.42.1.11");
    let again = net.routing.for_pod(&entry, Some("10.42.1.11".parse().expect("ip")));
    assert!(Arc::ptr_eq(&first.sockets().expect("sockets"), &again.sockets().expect("sockets")), "containers of one pod share its ports");
    let old = Arc::downgrade(&first.sockets().expect("sockets"));
    drop((first, again));
    assert!(old.upgrade().is_none(), "the port space goes with the pod's last router");
    let fresh = net.routing.for_pod(&entry, None);
    assert!(fresh.sockets().expect("sockets").listening().is_empty());
}

#[test]
fn inbound_connections_from_other_nodes_reach_a_listening_pod() {
    let net = Net::new(Egress::Deny);
    let (_s, server) = net.pod("server", "10.42.1.11");
    let sockets = server.sockets().expect("sockets");
    let from = addr("10.42.2.5:50000");
    assert_eq!(net.routing.tcp_inbound(from, addr("10.42.1.11:7000")).err(), Some(TcpError::Refused), "nobody listens");
    let listener = sockets.bind(addr("0.0.0.0:7000")).expect("bind").listen(4);
    let conn = net.routing.tcp_inbound(from, addr("10.42.1.11:7000")).expect("accepted");
    assert_eq!((conn.local, conn.peer), (from, addr("10.42.1.11:7000")));
    let accepted = listener.try_accept().expect("waiting");
    assert_eq!(accepted.peer, from);
    assert_eq!(net.routing.tcp_inbound(from, addr("10.42.1.99:7000")).err(), Some(TcpError::Refused), "not a pod of this node");
}

#[test]
fn network_policy_refuses_tcp_at_the_final_destination() {
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::api::networking::v1::NetworkPolicy;

    use super::super::super::policy::PolicyView;
    let net = Net::new(Egress::Allow);
    let (_s, server) = net.pod("server", "10.42.1.11");
    let (_c, client) = net.pod("client", "10.42.1.12");
    let pod = |name: &str, app: &str, ip: &str| obj::<Pod>(json!({"metadata": {"namespace": "default", "name": name, "labels": {"app": app}}, "status": {"podIP": ip}}));
    let pods = [pod("server", "echo", "10.42.1.11"), pod("client", "client", "10.42.1.12")];
    let ingress = |port: u16| {
        [obj::<NetworkPolicy>(json!({"metadata": {"namespace": "default", "name": "echo"}, "spec": {"podSelector": {"matchLabels": {"app": "echo"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}], "ports": [{"port": port}]}]}}))]
    };
    // The Service's 6000 is the pod's 7000 after resolution: a rule for 6000 does not match.
    net.routing.publish_policy(PolicyView::build(&ingress(6000), &[], &pods));
    assert!(matches!(client.tcp_target(addr("10.43.0.20:6000")), Target::Refused));
    assert!(matches!(client.tcp_target(addr("10.42.1.11:7000")), Target::Refused));
    assert_eq!(to_pod(&client.tcp_target(addr("127.0.0.1:1")), &client), Some((1, true)), "a pod reaches itself");
    net.routing.publish_policy(PolicyView::build(&ingress(7000), &[], &pods));
    assert_eq!(to_pod(&client.tcp_target(addr("10.43.0.20:6000")), &server), Some((7000, false)));
    // Egress: no rule allows external addresses.
    let egress = [obj::<NetworkPolicy>(json!({"metadata": {"namespace": "default", "name": "client"}, "spec": {"podSelector": {"matchLabels": {"app": "client"}},
        "policyTypes": ["Egress"], "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "echo"}}}]}]}}))];
    net.routing.publish_policy(PolicyView::build(&egress, &[], &pods));
    assert!(matches!(client.tcp_target(addr("192.0.2.1:80")), Target::Refused));
    assert_eq!(to_pod(&client.tcp_target(addr("10.42.1.11:7000")), &server), Some((7000, false)));
}
