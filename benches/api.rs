//! API benchmark (`cargo bench --bench api`): starts an in-process control plane in a temp
//! dir and measures, over HTTPS with real clients: ConfigMap creates/s (1 client; 64
//! concurrent workers on one shared HTTP/2 client and on one client each), list latency
//! with 10,000 objects in a namespace (JSON and Table), and watch latency from write-ack
//! to the event arriving on an open watch. Prints medians and p99s. Then the same creates
//! against a raft cluster of 3 in-process members (1 vs 3 members in the same run) and
//! the failover time: the leader stopped -> the first create accepted again.


/// The allocator the `flotilla` binary uses (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

struct Target {
    url: String,
    token: String,
    ca_pem: String,
}

impl Target {
    fn client(&self) -> reqwest::Client {
        let cert = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA cert");
        reqwest::Client::builder().tls_certs_only([cert]).build().expect("reqwest client")
    }

    fn collection(&self, ns: &str) -> String {
        format!("{}/api/v1/namespaces/{ns}/configmaps", self.url)
    }
}

fn configmap(name: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"bench": "api"}},
        "data": {"key": "value", "payload": "x".repeat(64)},
    }))
    .expect("json")
}

async fn create(t: &Target, c: &reqwest::Client, ns: &str, name: &str) -> reqwest::Response {
    let r = c
        .post(t.collection(ns))
        .bearer_auth(&t.token)
        .header("content-type", "application/json")
        .body(configmap(name))
        .send()
        .await
        .expect("send create");
    assert_eq!(r.status(), 201, "create {ns}/{name}");
    r
}

async fn create_namespace(t: &Target, c: &reqwest::Client, ns: &str) {
    let body = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})).expect("json");
    let r = c.post(format!("{}/api/v1/namespaces", t.url)).bearer_auth(&t.token).header("content-type", "application/json").body(body).send().await.expect("send");
    assert_eq!(r.status(), 201, "create namespace {ns}");
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Per-request latencies of `total` creates spread over `workers` tasks; returns (elapsed, latencies).
async fn creates(t: &Arc<Target>, ns: &str, total: usize, workers: usize, shared: bool) -> (Duration, Vec<Duration>) {
    let shared_client = t.client();
    let next = Arc::new(AtomicUsize::new(0));
    // Warm the connections so TLS handshakes are not in the figures.
    let clients: Vec<reqwest::Client> = (0..workers).map(|_| if shared { shared_client.clone() } else { t.client() }).collect();
    for c in clients.iter().take(if shared { 1 } else { workers }) {
        let _ = c.get(format!("{}/version", t.url)).bearer_auth(&t.token).send().await.expect("warm-up");
    }
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|c| {
            let (t, next, ns) = (t.clone(), next.clone(), ns.to_string());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return lat;
                    }
                    let s = Instant::now();
                    create(&t, &c, &ns, &format!("cm-{i:06}")).await.bytes().await.expect("body");
                    lat.push(s.elapsed());
                }
            })
        })
        .collect();
    let mut all = Vec::with_capacity(total);
    for task in tasks {
        all.extend(task.await.expect("worker"));
    }
    let elapsed = start.elapsed();
    all.sort();
    (elapsed, all)
}

fn report_creates(label: &str, total: usize, (elapsed, lat): &(Duration, Vec<Duration>)) {
    println!(
        "{label:<44} {total:>6} creates in {:>7.2} s = {:>8.0} creates/s   latency median {}  p99 {}",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        ms(pct(lat, 0.5)),
        ms(pct(lat, 0.99))
    );
}

async fn list_latency(t: &Target, c: &reqwest::Client, ns: &str, accept: Option<&str>, n: usize, expect_items: usize) -> (Vec<Duration>, usize) {
    let mut lat = Vec::with_capacity(n);
    let mut bytes = 0;
    for _ in 0..n {
        let s = Instant::now();
        let mut req = c.get(t.collection(ns)).bearer_auth(&t.token);
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let r = req.send().await.expect("list");
        assert_eq!(r.status(), 200);
        let body = r.bytes().await.expect("list body");
        lat.push(s.elapsed());
        bytes = body.len();
        let v: Value = serde_json::from_slice(&body).expect("list json");
        let count = v.get("items").or_else(|| v.get("rows")).and_then(Value::as_array).map_or(0, Vec::len);
        assert_eq!(count, expect_items, "list returned every object");
    }
    lat.sort();
    (lat, bytes)
}

async fn watch_latency(t: &Arc<Target>, ns: &str, n: usize) -> (Vec<Duration>, Vec<Duration>, usize) {
    let c = t.client();
    let r = c.get(format!("{}?watch=true&resourceVersion=0&timeoutSeconds=600", t.collection(ns))).bearer_auth(&t.token).send().await.expect("watch");
    assert_eq!(r.status(), 200);
    let arrivals: Arc<std::sync::Mutex<HashMap<String, Instant>>> = Arc::default();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let reader = {
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            let mut stream = r.bytes_stream();
            let mut buf: Vec<u8> = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.expect("watch chunk");
                let now = Instant::now();
                buf.extend_from_slice(&chunk);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    let ev: Value = serde_json::from_slice(&line).expect("watch event json");
                    if ev["type"] == "ADDED" {
                        let name = ev["object"]["metadata"]["name"].as_str().unwrap_or("").to_string();
                        arrivals.lock().expect("lock").insert(name.clone(), now);
                        let _ = seen_tx.send(name);
                    }
                }
            }
        })
    };
    let mut from_ack = Vec::with_capacity(n);
    let mut from_send = Vec::with_capacity(n);
    let mut early = 0;
    for i in 0..n {
        let name = format!("w-{i:05}");
        let sent = Instant::now();
        create(t, &c, ns, &name).await.bytes().await.expect("body");
        let ack = Instant::now();
        // Wait until the watch delivered this object before the next write.
        loop {
            let got = tokio::time::timeout(Duration::from_secs(10), seen_rx.recv()).await.expect("watch event within 10s").expect("watch open");
            if got == name {
                break;
            }
        }
        let arrived = arrivals.lock().expect("lock")[&name];
        if arrived < ack {
            early += 1;
        }
        from_ack.push(arrived.saturating_duration_since(ack));
        from_send.push(arrived.duration_since(sent));
    }
    reader.abort();
    from_ack.sort();
    from_send.sort();
    (from_ack, from_send, early)
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let handle = flotilla_control::start(flotilla_control::ControlPlaneConfig {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".parse().expect("addr"),
        store: flotilla_control::store::StoreConfig::default(),
        scheduler: true,
        network: Default::default(),
        service_lb: true,
        audit: Default::default(),
        // Measures one ServiceAccount's creates/s (rbac_cost): not capped at 100/s.
        flow_control: flotilla_control::FlowControlConfig::unlimited(),
    })
    .await
    .expect("start control plane");
    let t = Arc::new(Target { url: handle.url(), token: handle.admin_token.clone(), ca_pem: handle.ca_pem.clone() });
    let c = t.client();
    println!("flotilla API benchmark against {} ({} CPUs)", t.url, std::thread::available_parallelism().map_or(0, |n| n.get()));
    for ns in ["c1", "c64shared", "c64each", "list10k", "watch"] {
        create_namespace(&t, &c, ns).await;
    }

    let r = creates(&t, "c1", 2_000, 1, true).await;
    report_creates("creates, 1 client", 2_000, &r);
    let r = creates(&t, "c64shared", 20_000, 64, true).await;
    report_creates("creates, 64 workers, shared HTTP/2 client", 20_000, &r);
    let r = creates(&t, "c64each", 20_000, 64, false).await;
    report_creates("creates, 64 workers, one client each", 20_000, &r);

    let r = creates(&t, "list10k", 10_000, 64, false).await;
    report_creates("seed list10k (64 workers, client each)", 10_000, &r);
    // 10,000 ConfigMaps and the namespace's kube-root-ca.crt.
    let (lat, bytes) = list_latency(&t, &c, "list10k", None, 50, 10_001).await;
    println!("list 10,000 ConfigMaps, JSON   ({:>5.1} MB): median {}  p99 {}", bytes as f64 / 1e6, ms(pct(&lat, 0.5)), ms(pct(&lat, 0.99)));
    let (lat, bytes) = list_latency(&t, &c, "list10k", Some(TABLE_ACCEPT), 50, 10_001).await;
    println!("list 10,000 ConfigMaps, Table  ({:>5.1} MB): median {}  p99 {}", bytes as f64 / 1e6, ms(pct(&lat, 0.5)), ms(pct(&lat, 0.99)));

    let (from_ack, from_send, early) = watch_latency(&t, "watch", 500).await;
    println!(
        "watch latency, write-ack -> event (500 writes): median {}  p99 {}  ({early} events arrived before the ack)",
        ms(pct(&from_ack, 0.5)),
        ms(pct(&from_ack, 0.99))
    );
    println!("watch latency, write-send -> event:           median {}  p99 {}", ms(pct(&from_send, 0.5)), ms(pct(&from_send, 0.99)));
    rbac_cost(&t, &c).await;
    create_namespace(&t, &c, "raft1").await;
    let one = creates(&t, "raft1", RAFT_CREATES, 64, true).await;
    handle.shutdown().await;
    raft_members(one).await;
}

const RBAC_CREATES: usize = 5_000;

/// What authorization costs: creates by a ServiceAccount bound to `edit` (RBAC decides each
/// request) against creates by the admin (system:masters, no rule looked at), alternated
/// in rounds so drift over the run hits both alike.
async fn rbac_cost(admin: &Arc<Target>, c: &reqwest::Client) {
    for ns in ["rbac-admin", "rbac-sa"] {
        create_namespace(admin, c, ns).await;
    }
    let post = |path: String, body: Value| {
        c.post(format!("{}{path}", admin.url)).bearer_auth(&admin.token).header("content-type", "application/json").body(body.to_string()).send()
    };
    let r = post("/api/v1/namespaces/rbac-sa/serviceaccounts".into(), json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "bench"}})).await.expect("sa");
    assert_eq!(r.status(), 201, "create the ServiceAccount");
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "bench-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "ServiceAccount", "name": "bench", "namespace": "rbac-sa"}],
    });
    let r = post("/apis/rbac.authorization.k8s.io/v1/namespaces/rbac-sa/rolebindings".into(), binding).await.expect("binding");
    assert_eq!(r.status(), 201, "bind edit");
    let r = post("/api/v1/namespaces/rbac-sa/serviceaccounts/bench/token".into(), json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}})).await.expect("token");
    let answer: Value = r.json().await.expect("token json");
    let token = answer["status"]["token"].as_str().expect("token").to_string();
    let sa = Arc::new(Target { url: admin.url.clone(), token, ca_pem: admin.ca_pem.clone() });
    let (mut admin_rates, mut sa_rates) = (Vec::new(), Vec::new());
    for round in 0..3 {
        let a = creates(admin, "rbac-admin", RBAC_CREATES, 64, true).await;
        admin_rates.push(RBAC_CREATES as f64 / a.0.as_secs_f64());
        let s = creates(&sa, "rbac-sa", RBAC_CREATES, 64, true).await;
        sa_rates.push(RBAC_CREATES as f64 / s.0.as_secs_f64());
        // The next round's names must be new.
        let _ = round;
        for (t, ns) in [(admin, "rbac-admin"), (&sa, "rbac-sa")] {
            let r = c.delete(t.collection(ns)).bearer_auth(&admin.token).send().await.expect("deletecollection");
            assert!(r.status().is_success(), "clear {ns}");
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, s) = (median(&mut admin_rates), median(&mut sa_rates));
    println!("creates/s, 64 workers: admin (system:masters) median {a:.0}, ServiceAccount via RBAC (edit) median {s:.0}: RBAC at {:.1}% of admin-only", s / a * 100.0);
}

const RAFT_CREATES: usize = 5_000;

/// Starts a cluster member in `dir` (joining `join` if given).
async fn member(dir: &std::path::Path, join: Option<(String, String)>) -> flotilla_control::ControlPlaneHandle {
    let config = flotilla_control::ControlPlaneConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        store: flotilla_control::store::StoreConfig::default(),
        scheduler: true,
        network: Default::default(),
        service_lb: true,
        audit: Default::default(),
        flow_control: Default::default(),
    };
    let cluster = flotilla_control::cluster::ClusterConfig { peer_listen: Some("127.0.0.1:0".parse().expect("addr")), join };
    flotilla_control::start_member(config, Arc::new(flotilla_control::apiserver::service::SystemClock), cluster).await.expect("start member")
}

/// Creates on 1 member (measured before) vs 3, and the failover time.
async fn raft_members(one: (Duration, Vec<Duration>)) {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = member(&dir.path().join("a"), None).await;
    let token = std::fs::read_to_string(dir.path().join("a/join-token")).expect("join token").trim().to_string();
    let b = member(&dir.path().join("b"), Some((a.url(), token.clone()))).await;
    let c3 = member(&dir.path().join("c"), Some((a.url(), token))).await;
    let t = Arc::new(Target { url: a.url(), token: a.admin_token.clone(), ca_pem: a.ca_pem.clone() });
    let c = t.client();
    // Wait until both joiners are voters.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list: Value = c.get(format!("{}/flotilla/v1/members", t.url)).bearer_auth(&t.token).send().await.expect("members").json().await.expect("json");
        if list.as_array().is_some_and(|l| l.iter().filter(|m| m["role"] == "follower").count() == 2) {
            break;
        }
        assert!(Instant::now() < deadline, "members not promoted: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    create_namespace(&t, &c, "raft3").await;
    let three = creates(&t, "raft3", RAFT_CREATES, 64, true).await;
    report_creates("creates, 1 member (64 workers, shared client)", RAFT_CREATES, &one);
    report_creates("creates, 3 members (leader, same load)", RAFT_CREATES, &three);
    let rate = |r: &(Duration, Vec<Duration>)| RAFT_CREATES as f64 / r.0.as_secs_f64();
    println!("3 members / 1 member throughput: {:.0}% (goal >= 60%)", 100.0 * rate(&three) / rate(&one));

    // Failover: the leader (a) stops; creates through b (forwarded to the new leader).
    let tb = Arc::new(Target { url: b.url(), token: b.admin_token.clone(), ca_pem: b.ca_pem.clone() });
    let cb = tb.client();
    let stopped = Instant::now();
    a.shutdown().await;
    let mut n = 0;
    loop {
        n += 1;
        let sent = cb.post(tb.collection("raft3")).bearer_auth(&tb.token).header("content-type", "application/json").body(configmap(&format!("after-{n}"))).send().await;
        let status = sent.map(|r| r.status().as_u16()).unwrap_or(0);
        if status == 201 {
            break;
        }
        assert!(stopped.elapsed() < Duration::from_secs(30), "no write accepted 30 s after the leader stopped: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("failover: leader stopped -> first create accepted through a follower: {} (goal <= 2 s)", ms(stopped.elapsed()));
    b.shutdown().await;
    c3.shutdown().await;
}
