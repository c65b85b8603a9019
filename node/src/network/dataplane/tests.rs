//! The data plane with the real runtime: two nodes (two `Routing`s, each with its
//! listener on 127.0.0.1) running pods of the test guests (target/guests), a routing table
//! naming both, and requests made by the http-client guest: pod IPs and Services across
//! nodes, refusals (no such pod or port there, a node without listener or without
//! published data plane, a wrong or unknown certificate, a node that left the cluster),
//! pooled connections, and a node that shuts down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use super::*;
use crate::logs::ContainerLogs;
use crate::network::Egress;
use crate::pod_table::{ContainerEntry, PodEntry, PodTable};
use crate::runtime::InstanceSpec;

use crate::network::testing::{compiled, obj, runtime};

fn identity() -> Arc<Identity> {
    let (_, cert, key) = crate::server::self_signed_with_key(&["127.0.0.1".parse().expect("ip")]).expect("certificate");
    Arc::new(Identity { cert, key })
}

/// A Node object for the table: pod CIDR, and where its data plane is.
fn node(name: &str, cidr: &str, port: Option<u16>, pin: Option<[u8; 32]>) -> Arc<Node> {
    let mut annotations = serde_json::Map::new();
    if let Some(port) = port {
        annotations.insert(flotilla_api::DATA_PLANE_PORT_ANNOTATION.into(), port.to_string().into());
    }
    if let Some(pin) = pin {
        annotations.insert(flotilla_api::SERVING_CERT_ANNOTATION.into(), hex(&pin).into());
    }
    obj(json!({"metadata": {"name": name, "annotations": annotations}, "spec": {"podCIDR": cidr},
        "status": {"addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": "127.0.0.1"}]}}))
}

/// One node: its routing, pods and data plane.
struct TestNode {
    routing: Arc<Routing>,
    pods: Arc<PodTable>,
    peers: Arc<Peers>,
    identity: Arc<Identity>,
    listener: Option<TcpListener>,
    port: u16,
    shutdown: watch::Sender<bool>,
}

impl TestNode {
    async fn new(name: &str) -> TestNode {
        let pods = Arc::new(PodTable::default());
        let routing = Routing::new(name.into(), pods.clone(), Egress::Deny);
        let identity = identity();
        let peers = Peers::new(identity.clone());
        routing.set_data_plane(peers.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        TestNode { routing, pods, peers, identity, listener: Some(listener), port, shutdown: watch::channel(false).0 }
    }

    fn pin(&self) -> [u8; 32] {
        sha256(&self.identity.cert)
    }

    fn start(&mut self) {
        let listener = self.listener.take().expect("not started");
        tokio::spawn(serve(listener, self.identity.clone(), self.routing.clone(), self.shutdown.subscribe()));
    }

    /// Starts pod default/NAME at IP: an http-client container on 8080 saying NAME at /whoami.
    fn pod(&self, name: &str, ip: &str, logs: &std::path::Path) -> Arc<PodEntry> {
        let entry = Arc::new(PodEntry { uid: format!("uid-{name}"), namespace: "default".into(), name: name.into(), containers: Default::default() });
        let ip: IpAddr = ip.parse().expect("ip");
        self.pods.insert_with_ip(entry.clone(), Some(ip));
        let network = self.routing.for_pod(&entry, Some(ip));
        let logs = ContainerLogs::open(logs.join(name), 1 << 20).expect("logs");
        let spec = InstanceSpec { env: vec![("POD_NAME".into(), name.into())], network: Some(network), ..Default::default() };
        let compiled = compiled("http-client");
        let http = runtime().serve(&compiled, spec.clone(), logs.sink()).expect("serve");
        entry.set_container(Arc::new(ContainerEntry { name: "client".into(), compiled: Some(compiled), spec, http: Some(Arc::new(http)), ports: vec![8080], logs, stdin: None }));
        entry
    }
}

/// n1 and n2 with their listeners; n3 publishes a port nobody listens on, n4 publishes
/// nothing. Service `spread` has one ready endpoint on n1 and one on n2.
struct Cluster {
    n1: TestNode,
    n2: TestNode,
    front: Arc<PodEntry>,
    web2: Arc<PodEntry>,
    _logs: tempfile::TempDir,
}

async fn cluster() -> Cluster {
    let (mut n1, mut n2) = (TestNode::new("n1").await, TestNode::new("n2").await);
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr").port();
    let services = [obj::<Service>(json!({"metadata": {"namespace": "default", "name": "spread"}, "spec": {"clusterIP": "10.43.0.20", "ports": [{"port": 80, "targetPort": 8080}]}}))];
    let slices = [obj::<EndpointSlice>(json!({"metadata": {"namespace": "default", "name": "spread-x", "labels": {"kubernetes.io/service-name": "spread"}},
        "addressType": "IPv4", "ports": [{"port": 8080}],
        "endpoints": [{"addresses": ["10.42.1.11"], "nodeName": "n1"}, {"addresses": ["10.42.2.5"], "nodeName": "n2"}]}))];
    let nodes = [
        node("n1", "10.42.1.0/24", Some(n1.port), Some(n1.pin())),
        node("n2", "10.42.2.0/24", Some(n2.port), Some(n2.pin())),
        node("n3", "10.42.3.0/24", Some(closed), Some(n2.pin())),
        node("n4", "10.42.4.0/24", None, None),
    ];
    for n in [&n1, &n2] {
        n.routing.publish(Table::build(&services, &slices, &[], &nodes));
    }
    n1.start();
    n2.start();
    let logs = tempfile::tempdir().expect("tempdir");
    let front = n1.pod("front", "10.42.1.10", logs.path());
    n1.pod("web-1", "10.42.1.11", logs.path());
    let web2 = n2.pod("web-2", "10.42.2.5", logs.path());
    Cluster { n1, n2, front, web2, _logs: logs }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn empty() -> BoxBody {
    http_body_util::Empty::<Bytes>::new().map_err(|never| match never {}).boxed_unsync()
}

/// What http-client in `pod` answers to `/fetch?url=URL&n=N`.
async fn fetch(pod: &PodEntry, url: &str, n: u32) -> String {
    let service = pod.container("client").and_then(|c| c.http.clone()).expect("a running client container");
    let req = Request::builder().uri(format!("/fetch?url={}&n={n}", encode(url))).header("host", "client").body(empty()).expect("request");
    let resp = service.handle(req).await;
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

const REFUSED: &str = "error ErrorCode::ConnectionRefused\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_another_nodes_pods_cross_the_data_plane_on_one_connection() {
    let c = cluster().await;
    assert_eq!(fetch(&c.front, "http://10.42.2.5:8080/whoami", 1).await, "200 web-2\n");
    assert_eq!(fetch(&c.front, "http://10-42-2-5.default.pod:8080/whoami", 1).await, "200 web-2\n");
    // The Service's two endpoints, one per node, take turns.
    let out = fetch(&c.front, "http://spread/whoami", 4).await;
    assert_eq!(out.lines().filter(|l| *l == "200 web-1").count(), 2, "{out}");
    assert_eq!(out.lines().filter(|l| *l == "200 web-2").count(), 2, "{out}");
    // And back the other way.
    assert_eq!(fetch(&c.web2, "http://10.42.1.11:8080/whoami", 1).await, "200 web-1\n");
    // One pooled connection each way carries everything.
    assert_eq!(fetch(&c.front, "http://10.42.2.5:8080/whoami", 20).await, "200 web-2\n".repeat(20));
    assert_eq!(c.n1.peers.connected.load(Ordering::Relaxed), 1);
    assert_eq!(c.n2.peers.connected.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_come_at_once() {
    let c = cluster().await;
    let t = Instant::now();
    assert_eq!(fetch(&c.front, "http://10.42.2.99:8080/", 1).await, REFUSED, "no such pod on n2");
    assert_eq!(fetch(&c.front, "http://10.42.2.5:9999/", 1).await, REFUSED, "no container of the pod on that port");
    assert_eq!(fetch(&c.front, "http://10.42.3.5:8080/", 1).await, REFUSED, "n3 publishes a port nobody listens on");
    assert_eq!(fetch(&c.front, "http://10.42.4.5:8080/", 1).await, REFUSED, "n4 publishes no data plane");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // A pod's own error status is a response, not a refusal.
    assert!(fetch(&c.front, "http://10.42.2.5:8080/nosuch", 1).await.starts_with("404 "));
}

/// A request through `peers` to n2's listener at `port` that must match `pin`.
async fn send_with(peers: &Arc<Peers>, port: u16, pin: [u8; 32]) -> Result<Response<BoxBody>, ForwardError> {
    let hop = Box::new(Hop { peers: peers.clone(), key: (SocketAddr::from(([127, 0, 0, 1], port)), pin), target: "10.42.2.5:8080".parse().expect("addr"), source: None });
    let req = Request::builder().uri("http://10.42.2.5:8080/whoami").body(empty()).expect("request");
    hop.forward(req, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ends_check_certificate_pins() {
    let c = cluster().await;
    let ok = send_with(&c.n1.peers, c.n2.port, c.n2.pin()).await.expect("n1 reaches n2");
    assert_eq!(ok.into_body().collect().await.expect("body").to_bytes(), "web-2\n");
    // The server's certificate is not the pinned one.
    assert!(matches!(send_with(&c.n1.peers, c.n2.port, c.n1.pin()).await, Err(ForwardError::Refused)));
    // A client whose certificate no Node publishes.
    let stranger = Peers::new(identity());
    let t = Instant::now();
    let got = send_with(&stranger, c.n2.port, c.n2.pin()).await;
    assert!(matches!(got, Err(ForwardError::Refused)), "{:?}", got.map(|r| r.status()));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // n1 leaves the cluster (its Node is gone from n2's table): its open connection is
    // refused at the next request.
    assert_eq!(fetch(&c.front, "http://10.42.2.5:8080/whoami", 1).await, "200 web-2\n");
    let before = c.n1.peers.connected.load(Ordering::Relaxed);
    c.n2.routing.publish(Table::build(&[], &[], &[], &[node("n2", "10.42.2.0/24", Some(c.n2.port), Some(c.n2.pin()))]));
    assert_eq!(fetch(&c.front, "http://10.42.2.5:8080/whoami", 1).await, REFUSED);
    assert_eq!(c.n1.peers.connected.load(Ordering::Relaxed), before, "refused on the pooled connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_shuts_down_is_refused_quickly() {
    let c = cluster().await;
    assert_eq!(fetch(&c.front, "http://10.42.2.5:8080/whoami", 1).await, "200 web-2\n");
    c.n2.shutdown.send(true).expect("shutdown");
    // The listener closes; the pooled connection is told to go away.
    let t = Instant::now();
    loop {
        let out = fetch(&c.front, "http://10.42.2.5:8080/whoami", 1).await;
        if out == REFUSED {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(3), "still answered after {:?}: {out}", t.elapsed());
    }
    let t = Instant::now();
    assert_eq!(fetch(&c.front, "http://10.42.2.5:8080/whoami", 3).await, REFUSED.repeat(3));
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

#[test]
fn outbound_requests_name_the_pod_and_keep_the_guests_host() {
    let req = Request::builder().uri("http://web.default:80/a?b=c").header("host", "web.default").header(SOURCE_HEADER, "forged").body(empty()).expect("request");
    let out = outbound(req, "10.42.2.5:8080".parse().expect("addr"), Some("10.42.1.10".parse().expect("ip")));
    assert_eq!(out.uri(), "http://10.42.2.5:8080/a?b=c");
    assert_eq!(out.headers()[header::HOST], "web.default");
    assert_eq!(out.headers()[SOURCE_HEADER], "10.42.1.10");
    let req = Request::builder().uri("http://10.42.2.5:8080").header(SOURCE_HEADER, "forged").body(empty()).expect("request");
    let out = outbound(req, "10.42.2.5:8080".parse().expect("addr"), None);
    assert_eq!(out.uri(), "http://10.42.2.5:8080/");
    assert_eq!(out.headers()[header::HOST], "10.42.2.5:8080", "the authority becomes the Host");
    assert!(!out.headers().contains_key(SOURCE_HEADER));
}

#[test]
fn the_table_reads_peers_from_nodes() {
    let pin = [7u8; 32];
    let nodes = [node("a", "10.42.1.0/24", Some(4000), Some(pin)), node("b", "10.42.2.0/24", None, None)];
    let table = Table::build(&[], &[], &[], &nodes);
    let a = table.peer("a").expect("a");
    assert_eq!(a.addr, Some("127.0.0.1:4000".parse().expect("addr")));
    assert_eq!(a.pin, Some(pin));
    assert_eq!(table.peer("b"), Some(&crate::network::table::Peer::default()));
    assert_eq!(table.node_with_pin(&pin), Some("a"));
    assert_eq!(table.node_with_pin(&[8u8; 32]), None);
    assert_eq!(crate::network::table::parse_sha256(&hex(&pin).to_uppercase()), Some(pin));
    assert_eq!(crate::network::table::parse_sha256("07"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_cross_the_data_plane_as_connect_tunnels() {
    use crate::network::tcp::{Target, TcpError, connect};
    let c = cluster().await;
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
    let front = c.n1.routing.for_pod(&c.front, Some(ip("10.42.1.10")));
    let web2 = c.n2.routing.for_pod(&c.web2, Some(ip("10.42.2.5"))).sockets().expect("sockets");
    let listener = web2.bind("0.0.0.0:7000".parse().expect("addr")).expect("bind").listen(8);
    let from = front.sockets().expect("sockets");
    let open = |target: Target| connect(from.clone(), from.socket().expect("slot"), target);

    let target = front.tcp_target("10.42.2.5:7000".parse().expect("addr"));
    assert!(matches!(target, Target::Remote { dial: Some(_), .. }), "{target:?}");
    let mut conn = open(target).await.expect("tunnelled");
    assert_eq!(conn.peer, "10.42.2.5:7000".parse().expect("addr"));
    let mut server = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(s) = listener.try_accept() {
                return s;
            }
            listener.pending().await;
        }
    })
    .await
    .expect("accepted on n2");
    assert_eq!(server.peer.ip(), ip("10.42.1.10"), "the server sees the calling pod");
    // Both ways, then the client's shutdown ends the server's read.
    conn.tx.try_write(b"ping").expect("open");
    conn.tx.close();
    let mut got = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut server.rx, &mut got).await.expect("read");
    assert_eq!(got, b"ping");
    server.tx.try_write(b"pong").expect("open");
    drop(server);
    let mut back = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut conn.rx, &mut back).await.expect("read");
    assert_eq!(back, b"pong");

    // Nobody listening on the other node: refused at once; a node without a listener too.
    let t = Instant::now();
    assert_eq!(open(front.tcp_target("10.42.2.5:7001".parse().expect("addr"))).await.err(), Some(TcpError::Refused));
    assert_eq!(open(front.tcp_target("10.42.3.9:7000".parse().expect("addr"))).await.err(), Some(TcpError::Refused));
    assert!(matches!(front.tcp_target("10.42.4.9:7000".parse().expect("addr")), Target::Refused), "no published data plane");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // One pooled connection carried the tunnels.
    assert_eq!(c.n1.peers.connected.load(Ordering::Relaxed), 1);
}
