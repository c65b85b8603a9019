//! The router with the real runtime: pods of this node made of the test guests
//! (target/guests), a routing table built from API objects, and requests made by the
//! http-client guest, so every route runs end to end inside the node.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

use super::*;
use crate::network::policy::PolicyView;
use crate::logs::ContainerLogs;
use crate::pod_table::ContainerEntry;
use crate::runtime::{BoxBody, InstanceSpec};

use crate::network::testing::{compiled, obj, runtime};

/// (name, guest, containerPorts, env) of a container.
type Container<'a> = (&'a str, &'a str, &'a [u16], &'a [(&'a str, &'a str)]);

struct Cluster {
    routing: Arc<Routing>,
    pods: Arc<PodTable>,
    logs: tempfile::TempDir,
}

impl Cluster {
    fn new(egress: Egress) -> Cluster {
        let pods = Arc::new(PodTable::default());
        let routing = Routing::new("n1".into(), pods.clone(), egress);
        let services = [
            obj::<Service>(json!({"metadata": {"namespace": "default", "name": "web"}, "spec": {"clusterIP": "10.43.0.10", "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})),
            obj(json!({"metadata": {"namespace": "default", "name": "sticky"}, "spec": {"clusterIP": "10.43.0.12", "ports": [{"port": 80, "targetPort": 8080}], "sessionAffinity": "ClientIP"}})),
            obj(json!({"metadata": {"namespace": "default", "name": "empty"}, "spec": {"clusterIP": "10.43.0.11", "ports": [{"port": 80}]}})),
            obj(json!({"metadata": {"namespace": "default", "name": "remote"}, "spec": {"clusterIP": "10.43.0.13", "ports": [{"port": 80, "targetPort": 8080}]}})),
            obj(json!({"metadata": {"namespace": "default", "name": "db"}, "spec": {"clusterIP": "None"}})),
        ];
        let slice = |svc: &str, port: Value, endpoints: Value| {
            obj::<EndpointSlice>(json!({"metadata": {"namespace": "default", "name": format!("{svc}-x"), "labels": {"kubernetes.io/service-name": svc}},
                "addressType": "IPv4", "ports": [port], "endpoints": endpoints}))
        };
        let ready = |ip: &str| json!({"addresses": [ip], "conditions": {"ready": true}, "nodeName": "n1"});
        let slices = [
            slice("web", json!({"name": "http", "port": 8080}), json!([ready("10.42.1.11"), ready("10.42.1.12"), {"addresses": ["10.42.1.14"], "conditions": {"ready": false}}])),
            slice("sticky", json!({"port": 8080}), json!([ready("10.42.1.11"), ready("10.42.1.12")])),
            slice("remote", json!({"port": 8080}), json!([{"addresses": ["10.42.2.5"], "nodeName": "n2"}])),
            slice("db", json!({"port": 8080}), json!([{"addresses": ["10.42.1.11"], "hostname": "db-0"}])),
        ];
        let nodes = [
            obj::<Node>(json!({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.42.1.0/24"}})),
            obj(json!({"metadata": {"name": "n2"}, "spec": {"podCIDR": "10.42.2.0/24"}})),
        ];
        routing.publish(Table::build(&services, &slices, &[], &nodes));
        Cluster { routing, pods, logs: tempfile::tempdir().expect("tempdir") }
    }

    /// Starts pod default/NAME at IP with these containers.
    fn pod(&self, name: &str, ip: &str, containers: &[Container<'_>]) -> Arc<PodEntry> {
        let entry = Arc::new(PodEntry { uid: format!("uid-{name}"), namespace: "default".into(), name: name.into(), containers: Default::default() });
        let ip: IpAddr = ip.parse().expect("ip");
        self.pods.insert_with_ip(entry.clone(), Some(ip));
        let network = self.routing.for_pod(&entry, Some(ip));
        for &(c, guest, ports, env) in containers {
            let logs = ContainerLogs::open(self.logs.path().join(name).join(c), 1 << 20).expect("logs");
            let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let spec = InstanceSpec { env, network: Some(network.clone()), ..Default::default() };
            let compiled = compiled(guest);
            let http = runtime().serve(&compiled, spec.clone(), logs.sink()).expect("serve");
            entry.set_container(Arc::new(ContainerEntry { name: c.into(), compiled: Some(compiled), spec, http: Some(Arc::new(http)), ports: ports.to_vec(), logs, stdin: None }));
        }
        entry
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// What http-client in `pod`'s container `c` answers to `/fetch?url=URL&n=N`.
async fn fetch(pod: &PodEntry, url: &str, n: u32) -> String {
    let service = pod.container("client").and_then(|c| c.http.clone()).expect("a running client container");
    let body = http_body_util::Empty::<Bytes>::new().map_err(|never| match never {}).boxed_unsync();
    let req: http::Request<BoxBody> = http::Request::builder().uri(format!("/fetch?url={}&n={n}", encode(url))).header("host", "client").body(body).unwrap();
    let resp = service.handle(req).await;
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

const REFUSED: &str = "error ErrorCode::ConnectionRefused\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn localhost_reaches_the_pods_own_containers() {
    let c = Cluster::new(Egress::Deny);
    let front = c.pod("front", "10.42.1.10", &[("client", "http-client", &[8080], &[]), ("side", "hello-http", &[9090], &[])]);
    for url in ["http://localhost:9090/", "http://127.0.0.1:9090/", "http://10.42.1.10:9090/", "http://[::1]:9090/"] {
        assert_eq!(fetch(&front, url, 1).await, "200 Hello from Flotilla\n", "{url}");
    }
    assert_eq!(fetch(&front, "http://localhost:8080/", 1).await, "200 http-client\n", "a container reaches itself");
    let t = Instant::now();
    assert_eq!(fetch(&front, "http://localhost:9091/", 1).await, REFUSED);
    assert_eq!(fetch(&front, "http://localhost/", 1).await, REFUSED, "port 80: nobody");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_and_services_of_this_node_are_reached_in_process() {
    let c = Cluster::new(Egress::Deny);
    let front = c.pod("front", "10.42.1.10", &[("client", "http-client", &[8080], &[])]);
    c.pod("web-1", "10.42.1.11", &[("client", "http-client", &[8080], &[("POD_NAME", "web-1")])]);
    c.pod("web-2", "10.42.1.12", &[("client", "http-client", &[8080], &[("POD_NAME", "web-2")])]);
    c.pod("bare", "10.42.1.13", &[("client", "http-client", &[], &[("POD_NAME", "bare")])]);

    assert_eq!(fetch(&front, "http://10.42.1.11:8080/whoami", 1).await, "200 web-1\n");
    assert_eq!(fetch(&front, "http://10-42-1-12.default.pod:8080/whoami", 1).await, "200 web-2\n");
    // A container that declares no port listens on 8080.
    assert_eq!(fetch(&front, "http://10.42.1.13:8080/whoami", 1).await, "200 bare\n");
    assert_eq!(fetch(&front, "http://10.42.1.13:8081/whoami", 1).await, REFUSED);
    // Round robin over the ready endpoints (not 10.42.1.14), by every name and the ClusterIP.
    assert_eq!(fetch(&front, "http://web/whoami", 4).await, "200 web-1\n200 web-2\n200 web-1\n200 web-2\n");
    for url in ["http://web.default/whoami", "http://web.default.svc.cluster.local/whoami", "http://10.43.0.10/whoami"] {
        let out = fetch(&front, url, 2).await;
        assert!(out.contains("200 web-1\n") && out.contains("200 web-2\n"), "{url}: {out}");
    }
    // ClientIP affinity: one client, one backend.
    let sticky = fetch(&front, "http://sticky/whoami", 4).await;
    assert_eq!(sticky.lines().collect::<std::collections::HashSet<_>>().len(), 1, "{sticky}");
    // A headless Service's hostname.
    assert_eq!(fetch(&front, "http://db-0.db:8080/whoami", 1).await, "200 web-1\n");

    let t = Instant::now();
    assert_eq!(fetch(&front, "http://empty/", 1).await, REFUSED, "no ready endpoint");
    assert_eq!(fetch(&front, "http://web:81/", 1).await, REFUSED, "no such Service port");
    assert_eq!(fetch(&front, "http://10.42.1.99:8080/", 1).await, REFUSED, "no such pod");
    assert_eq!(fetch(&front, "http://10.42.2.5:8080/", 1).await, REFUSED, "another node's pod, and this node has no data plane");
    assert_eq!(fetch(&front, "http://remote/", 1).await, REFUSED, "another node's pod, and this node has no data plane");
    assert_eq!(fetch(&front, "http://nosuch/", 1).await, "error ErrorCode::DnsError(DnsErrorPayload { rcode: Some(\"NXDOMAIN\"), info-code: None })\n");
    assert_eq!(fetch(&front, "http://nosuch.default.svc.cluster.local/", 1).await, "error ErrorCode::DnsError(DnsErrorPayload { rcode: Some(\"NXDOMAIN\"), info-code: None })\n");
    assert_eq!(fetch(&front, "http://example.com/", 1).await, "error ErrorCode::HttpRequestDenied\n", "egress is off");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // A pod that is gone is refused at once, though its endpoint is still listed.
    c.pods.remove("default", "web-2");
    assert_eq!(fetch(&front, "http://10.42.1.12:8080/", 1).await, REFUSED);
}

#[test]
fn egress_is_denied_unless_allowed() {
    let pods = Arc::new(PodTable::default());
    let entry = Arc::new(PodEntry { uid: "u".into(), namespace: "default".into(), name: "p".into(), containers: Default::default() });
    pods.insert_with_ip(entry.clone(), "10.42.1.10".parse().ok());
    let other = Arc::new(PodEntry { uid: "v".into(), namespace: "default".into(), name: "q".into(), containers: Default::default() });
    pods.insert_with_ip(other, "10.42.1.11".parse().ok());
    for (egress, want) in [(Egress::Deny, "denied"), (Egress::Allow, "external example.com:443")] {
        let routing = Routing::new("n1".into(), pods.clone(), egress);
        let net = routing.for_pod(&entry, "10.42.1.10".parse().ok());
        let got = match net.route("Example.com", 443) {
            Dispatch::External { host, port } => format!("external {host}:{port}"),
            Dispatch::Denied => "denied".into(),
            _ => "other".into(),
        };
        assert_eq!(got, want);
        // An empty table (before the first watch answer) still knows this node's pods.
        assert!(matches!(net.route("10.42.1.11", 8080), Dispatch::Refused), "a pod of this node without a listener");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_policy_refuses_at_the_final_destination() {
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    let c = Cluster::new(Egress::Allow);
    let front = c.pod("front", "10.42.1.10", &[("client", "http-client", &[8080], &[]), ("side", "hello-http", &[9090], &[])]);
    c.pod("web-1", "10.42.1.11", &[("client", "http-client", &[8080], &[("POD_NAME", "web-1")])]);
    let pod = |name: &str, app: &str, ip: &str| obj::<Pod>(json!({"metadata": {"namespace": "default", "name": name, "labels": {"app": app}}, "status": {"podIP": ip}}));
    let pods = [pod("front", "front", "10.42.1.10"), pod("web-1", "web", "10.42.1.11")];
    // Ingress of web: only from app=front, on 8080; egress of front: nowhere but web.
    let policies = [
        obj::<NetworkPolicy>(json!({"metadata": {"namespace": "default", "name": "web"}, "spec": {"podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "front"}}}], "ports": [{"port": 8081}]}]}})),
        obj(json!({"metadata": {"namespace": "default", "name": "front"}, "spec": {"podSelector": {"matchLabels": {"app": "front"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}})),
    ];
    c.routing.publish_policy(PolicyView::build(&policies, &[], &pods));
    let t = Instant::now();
    // The Service's port 80 is the pod's 8080 after resolution: the rule's 8081 does not match.
    assert_eq!(fetch(&front, "http://web/whoami", 1).await, REFUSED);
    assert_eq!(fetch(&front, "http://10.42.1.11:8080/whoami", 1).await, REFUSED);
    assert_eq!(fetch(&front, "http://example.com/", 1).await, REFUSED, "egress: no rule allows external addresses");
    assert_eq!(fetch(&front, "http://nosuch/", 1).await, "error ErrorCode::DnsError(DnsErrorPayload { rcode: Some(\"NXDOMAIN\"), info-code: None })\n", "DNS is not filtered");
    assert_eq!(fetch(&front, "http://localhost:9090/", 1).await, "200 Hello from Flotilla\n", "a pod reaches itself");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    let policies = [obj::<NetworkPolicy>(json!({"metadata": {"namespace": "default", "name": "web"}, "spec": {"podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "front"}}}], "ports": [{"port": 8080}]}]}}))];
    c.routing.publish_policy(PolicyView::build(&policies, &[], &pods));
    assert_eq!(fetch(&front, "http://10.42.1.11:8080/whoami", 1).await, "200 web-1\n");
}
