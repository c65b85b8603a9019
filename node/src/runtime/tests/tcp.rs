//! wasi:sockets TCP and name lookup with the tcp-echo and tcp-client guests, over a
//! stand-in pod network (the routing itself is tested in network/).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use super::*;
use crate::network::tcp::{NameLookup, PodSockets, Target};

/// Pods by IP, names to addresses; the pod using it is `me`.
#[derive(Debug)]
struct Pods {
    me: Arc<PodSockets>,
    pods: HashMap<IpAddr, Arc<PodSockets>>,
    names: HashMap<String, Vec<IpAddr>>,
    /// Where 203.0.113.7 goes: real egress.
    egress: Option<SocketAddr>,
}

impl Network for Pods {
    fn route(&self, _: &str, _: u16) -> Dispatch {
        Dispatch::Refused
    }
    fn sockets(&self) -> Option<Arc<PodSockets>> {
        Some(self.me.clone())
    }
    fn tcp_target(&self, addr: SocketAddr) -> Target {
        if addr.ip().is_loopback() {
            return Target::Pod { sockets: self.me.clone(), port: addr.port(), loopback: true };
        }
        match self.pods.get(&addr.ip()) {
            Some(s) => Target::Pod { sockets: s.clone(), port: addr.port(), loopback: false },
            None if addr.ip() == IpAddr::from([203, 0, 113, 7]) => self.egress.map_or(Target::Denied, Target::External),
            None => Target::Denied,
        }
    }
    fn lookup(&self, name: &str) -> NameLookup {
        self.names.get(name).map_or(NameLookup::NoSuchName, |ips| NameLookup::Addresses(ips.clone()))
    }
}

struct Net {
    pods: HashMap<IpAddr, Arc<PodSockets>>,
    egress: Option<SocketAddr>,
}

impl Net {
    fn new(ips: &[&str]) -> Net {
        Net { pods: ips.iter().map(|ip| (ip.parse().unwrap(), PodSockets::new(Some(ip.parse().unwrap())))).collect(), egress: None }
    }

    fn spec(&self, me: &str, argv: &[&str], names: &[(&str, &str)]) -> InstanceSpec {
        let names = names.iter().map(|(n, ip)| (n.to_string(), vec![ip.parse().unwrap()])).collect();
        let net = Pods { me: self.pods[&me.parse().unwrap()].clone(), pods: self.pods.clone(), names, egress: self.egress };
        InstanceSpec { network: Some(Arc::new(net)), ..spec(argv) }
    }

    fn sockets(&self, ip: &str) -> &Arc<PodSockets> {
        &self.pods[&ip.parse().unwrap()]
    }
}

/// A running tcp-echo; killed when dropped.
struct Server {
    kill: watch::Sender<bool>,
    task: tokio::task::JoinHandle<ExitStatus>,
    out: Arc<Collect>,
}

impl Server {
    async fn start(spec: InstanceSpec) -> Server {
        let (kill, rx) = watch::channel(false);
        let out = Arc::new(Collect::default());
        let compiled = prepare("tcp-echo");
        let o = out.clone();
        let task = tokio::spawn(async move { rt().run(&compiled, &spec, None, o, rx).await });
        let deadline = Instant::now() + Duration::from_secs(20);
        while !out.stdout().contains("listening on") && !out.stdout().contains("bind ") {
            assert!(Instant::now() < deadline && !task.is_finished(), "tcp-echo did not listen: {} {}", out.stdout(), out.stderr());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Server { kill, task, out }
    }

    async fn stop(self) -> ExitStatus {
        let _ = self.kill.send(true);
        self.task.await.unwrap()
    }
}

async fn client(spec: &InstanceSpec) -> (bool, String) {
    let started = Instant::now();
    let (st, out) = run("tcp-client", spec).await;
    assert!(started.elapsed() < Duration::from_secs(10), "the client took {:?}", started.elapsed());
    (st.reason == ExitReason::Completed, out.stdout())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_over_localhost_pod_ip_and_names() {
    let net = Net::new(&["10.42.0.2", "10.42.0.3"]);
    let server = Server::start(net.spec("10.42.0.2", &["tcp-echo", "6379"], &[])).await;
    assert!(server.out.stdout().contains("listening on 0.0.0.0:6379"), "{}", server.out.stdout());
    assert_eq!(net.sockets("10.42.0.2").listening(), [6379]);

    // Another container of the same pod, over localhost.
    let (ok, out) = client(&net.spec("10.42.0.2", &["tcp-client", "127.0.0.1:6379", "same pod"], &[])).await;
    assert!(ok, "{out}");
    assert!(out.contains("connected 127.0.0.1:") && out.contains("-> 127.0.0.1:6379"), "{out}");
    assert!(out.contains("reply: echo: same pod"), "{out}");
    // Another pod, by IP and by name.
    let (ok, out) = client(&net.spec("10.42.0.3", &["tcp-client", "10.42.0.2:6379", "by ip"], &[])).await;
    assert!(ok && out.contains("reply: echo: by ip"), "{out}");
    assert!(out.contains("connected 10.42.0.3:"), "{out}");
    let (ok, out) = client(&net.spec("10.42.0.3", &["tcp-client", "redis:6379", "by name"], &[("redis", "10.42.0.2")])).await;
    assert!(ok && out.contains("reply: echo: by name"), "{out}");
    assert!(server.out.stdout().contains("10.42.0.3:"), "the server saw the client's pod address: {}", server.out.stdout());

    // Nobody listens, an unknown name, a denied address: errors, at once.
    for (target, want) in [("10.42.0.2:1", "error: connection-refused"), ("nope:6379", "error: name-unresolvable"), ("192.0.2.1:80", "error: access-denied")] {
        let (ok, out) = client(&net.spec("10.42.0.3", &["tcp-client", target], &[])).await;
        assert!(!ok && out.contains(want), "{target}: {out}");
    }

    // The container stops: its listener goes, and the port refuses again.
    assert_eq!(server.stop().await.reason, ExitReason::Killed);
    assert!(net.sockets("10.42.0.2").listening().is_empty());
    let (ok, out) = client(&net.spec("10.42.0.3", &["tcp-client", "10.42.0.2:6379"], &[])).await;
    assert!(!ok && out.contains("error: connection-refused"), "{out}");
    assert_eq!(net.sockets("10.42.0.2").open_sockets(), 0, "no socket outlives its store");
    assert_eq!(net.sockets("10.42.0.3").open_sockets(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pods_listen_on_the_same_port() {
    let net = Net::new(&["10.42.0.2", "10.42.0.3", "10.42.0.4"]);
    let a = Server::start(InstanceSpec { env: vec![("NAME".into(), "a".into())], ..net.spec("10.42.0.2", &["tcp-echo", "7000"], &[]) }).await;
    let b = Server::start(InstanceSpec { env: vec![("NAME".into(), "b".into())], ..net.spec("10.42.0.3", &["tcp-echo", "7000"], &[]) }).await;
    // A second listener on a taken port of the same pod fails; a loopback-only one
    // takes no connection from another pod.
    let dup = Server::start(net.spec("10.42.0.2", &["tcp-echo", "7000"], &[])).await;
    assert!(dup.out.stdout().contains("bind 0.0.0.0:7000: address-in-use") || dup.task.is_finished(), "{}", dup.out.stdout());
    let lo = Server::start(net.spec("10.42.0.4", &["tcp-echo", "7001", "127.0.0.1"], &[])).await;
    for (target, want) in [("10.42.0.2:7000", "reply: a: hello"), ("10.42.0.3:7000", "reply: b: hello"), ("10.42.0.4:7001", "error: connection-refused")] {
        let (_, out) = client(&net.spec("10.42.0.4", &["tcp-client", target], &[])).await;
        assert!(out.contains(want), "{target}: {out}");
    }
    let (ok, out) = client(&net.spec("10.42.0.4", &["tcp-client", "localhost:7001"], &[("localhost", "127.0.0.1")])).await;
    assert!(ok, "{out}");
    for s in [a, b, lo] {
        s.stop().await;
    }
    let _ = dup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_network_tcp_is_not_supported() {
    let (st, out) = run("tcp-client", &spec(&["tcp-client", "127.0.0.1:80"])).await;
    assert_eq!(st.reason, ExitReason::Error);
    assert!(out.stdout().contains("error: not-supported"), "{}", out.stdout());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_egress_is_bridged_to_the_guest() {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = server.local_addr().unwrap();
    tokio::spawn(async move {
        let (conn, _) = server.accept().await.unwrap();
        let (rd, mut wr) = conn.into_split();
        let mut line = String::new();
        tokio::io::BufReader::new(rd).read_line(&mut line).await.unwrap();
        wr.write_all(format!("host: {line}").as_bytes()).await.unwrap();
    });
    let net = Net { egress: Some(at), ..Net::new(&["10.42.0.2"]) };
    let (ok, out) = client(&net.spec("10.42.0.2", &["tcp-client", "203.0.113.7:80", "out"], &[])).await;
    assert!(ok && out.contains("reply: host: out"), "{out}");
    // A real address nobody listens on: refused, within the egress connect timeout.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let net = Net { egress: Some(closed), ..Net::new(&["10.42.0.2"]) };
    let (ok, out) = client(&net.spec("10.42.0.2", &["tcp-client", "203.0.113.7:80"], &[])).await;
    assert!(!ok && out.contains("error: connection-refused"), "{out}");
    assert_eq!(net.sockets("10.42.0.2").open_sockets(), 0);
}

/// A line from `conn`, waiting for it.
async fn line(conn: &mut crate::network::tcp::Conn) -> String {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !got.ends_with(b"\n") {
        assert!(Instant::now() < deadline, "no line: {:?}", String::from_utf8_lossy(&got));
        match conn.rx.try_read(1024) {
            Ok(b) if b.is_empty() => {
                let _ = tokio::time::timeout(Duration::from_millis(100), conn.rx.readable()).await;
            }
            Ok(b) => got.extend_from_slice(&b),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_serves_many_connections_at_once() {
    use crate::network::tcp::connect;
    let net = Net::new(&["10.42.0.2", "10.42.0.3"]);
    let server = Server::start(net.spec("10.42.0.2", &["tcp-echo", "7000"], &[])).await;
    let client = net.sockets("10.42.0.3").clone();
    let target = || Target::Pod { sockets: net.sockets("10.42.0.2").clone(), port: 7000, loopback: false };
    let mut conns = Vec::new();
    for _ in 0..20 {
        conns.push(connect(client.clone(), client.socket().unwrap(), target()).await.expect("connected"));
    }
    // Answered in any order while all stay open: the last first.
    for (i, c) in conns.iter_mut().enumerate().rev() {
        c.tx.try_write(format!("n{i}\n").as_bytes()).unwrap();
        assert_eq!(line(c).await, format!("echo: n{i}\n"));
    }
    drop(conns);
    assert_eq!(server.stop().await.reason, ExitReason::Killed);
    assert_eq!(net.sockets("10.42.0.2").open_sockets(), 0);
    assert_eq!(net.sockets("10.42.0.3").open_sockets(), 0);
}
