//! Scheduler benchmark (`cargo bench --bench scheduler`): an in-process control plane with
//! 1,000 simulated nodes (Node objects with no agent) and 10,000 pending pods.
//!
//! 1. Throughput (the goal's figure): nodes and pods are created with the scheduler off,
//!    the control plane is restarted on the same data with the scheduler on, and the time
//!    from the restart until a watch has seen every pod bound gives pods bound per second
//!    (median of three rounds, each on fresh data). Every write a binding costs is
//!    included (the binding and its Scheduled event), and so is the watch that observes it.
//! 2. Nodes joining: 10,000 pods are pending (marked unschedulable) before any node
//!    exists; then 1,000 nodes are created and made Ready. Time from the first node create
//!    until every pod is bound, node creation included.


/// The allocator the `flotilla` binary uses (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

const NODES: usize = 1_000;
const PODS: usize = 10_000;
const WORKERS: usize = 64;

struct Target {
    url: String,
    token: String,
    client: reqwest::Client,
}

impl Target {
    async fn connect(handle: &flotilla_control::ControlPlaneHandle) -> Arc<Target> {
        let cert = reqwest::Certificate::from_pem(handle.ca_pem.as_bytes()).expect("CA");
        let client = reqwest::Client::builder().tls_certs_only([cert]).build().expect("client");
        Arc::new(Target { url: handle.url(), token: handle.admin_token.clone(), client })
    }

    async fn send(&self, method: reqwest::Method, path: &str, ct: &str, body: serde_json::Value) -> reqwest::StatusCode {
        let r = self
            .client
            .request(method, format!("{}{}", self.url, path))
            .bearer_auth(&self.token)
            .header("content-type", ct)
            .body(serde_json::to_vec(&body).expect("json"))
            .send()
            .await
            .expect("send");
        r.status()
    }

    async fn get(&self, path: &str) -> serde_json::Value {
        let r = self.client.get(format!("{}{}", self.url, path)).bearer_auth(&self.token).send().await.expect("get");
        r.json().await.expect("json")
    }

    async fn unbound(&self) -> usize {
        let v = self.get("/api/v1/namespaces/sched/pods?fieldSelector=spec.nodeName%3D&limit=1").await;
        v["items"].as_array().map(Vec::len).unwrap_or(0) + usize::from(v["metadata"]["continue"].as_str().is_some_and(|c| !c.is_empty()))
    }

    async fn unschedulable_marked(&self) -> usize {
        let v = self.get("/api/v1/namespaces/sched/pods").await;
        v["items"]
            .as_array()
            .map(|items| items.iter().filter(|p| p["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "PodScheduled"))).count())
            .unwrap_or(0)
    }

    async fn create_namespace(&self) {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sched"}});
        assert!(self.send(reqwest::Method::POST, "/api/v1/namespaces", "application/json", ns).await.is_success());
    }

    async fn create_pods(self: &Arc<Self>) {
        let t = self.clone();
        parallel(PODS, move |i| {
            let t = t.clone();
            async move {
                let pod = json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("p-{i}"), "labels": {"app": format!("a{}", i % 50)}},
                    "spec": {"containers": [{"name": "c", "image": "file:///bench.wasm",
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
                });
                let s = t.send(reqwest::Method::POST, "/api/v1/namespaces/sched/pods", "application/json", pod).await;
                assert_eq!(s, 201, "create pod {i}");
            }
        })
        .await;
    }

    async fn create_nodes(self: &Arc<Self>) {
        let t = self.clone();
        parallel(NODES, move |i| {
            let t = t.clone();
            async move {
                let name = format!("sim-{i:04}");
                let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}});
                assert_eq!(t.send(reqwest::Method::POST, "/api/v1/nodes", "application/json", node).await, 201);
                let status = json!({"status": {
                    "capacity": {"cpu": "64", "memory": "256Gi", "pods": "110"},
                    "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "110"},
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "simulated"}],
                }});
                let s = t.send(reqwest::Method::PATCH, &format!("/api/v1/nodes/{name}/status"), "application/merge-patch+json", status).await;
                assert!(s.is_success(), "node status {s}");
            }
        })
        .await;
    }

    /// Watches the pods (from `rv`, or from the current state when None) until every pod
    /// has been seen bound; returns when the first and the last were seen.
    fn watch_bound(self: &Arc<Self>, rv: Option<String>) -> tokio::task::JoinHandle<(Option<Instant>, Option<Instant>)> {
        let t = self.clone();
        tokio::spawn(async move {
            use futures::StreamExt as _;
            let from = rv.map(|rv| format!("&resourceVersion={rv}")).unwrap_or_default();
            let watch = t
                .client
                .get(format!("{}/api/v1/namespaces/sched/pods?watch=true{from}", t.url))
                .bearer_auth(&t.token)
                .send()
                .await
                .expect("watch");
            let mut stream = watch.bytes_stream();
            let mut buf: Vec<u8> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            let (mut first, mut last) = (None, None);
            while let Some(Ok(chunk)) = stream.next().await {
                buf.extend_from_slice(&chunk);
                while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=i).collect();
                    let Ok(ev) = serde_json::from_slice::<serde_json::Value>(&line) else { continue };
                    let pod = &ev["object"];
                    if !pod["spec"]["nodeName"].as_str().unwrap_or("").is_empty() && seen.insert(pod["metadata"]["name"].as_str().unwrap_or("").to_string()) {
                        let now = Instant::now();
                        first.get_or_insert(now);
                        last = Some(now);
                        if seen.len() == PODS {
                            return (first, last);
                        }
                    }
                }
            }
            (first, last)
        })
    }
}

async fn parallel<F, Fut>(n: usize, f: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let (f, next) = (f.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                f(i).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
}

async fn control_plane(dir: &std::path::Path, scheduler: bool) -> flotilla_control::ControlPlaneHandle {
    flotilla_control::start(flotilla_control::ControlPlaneConfig {
        data_dir: dir.join("data"),
        listen: "127.0.0.1:0".parse().expect("addr"),
        store: flotilla_control::store::StoreConfig::default(),
        scheduler,
        // Room for a /24 per simulated node (the default /16 holds 256), as a cluster of
        // this size would be configured; otherwise most nodes would get CIDRNotAvailable.
        network: flotilla_control::NetworkConfig { cluster_cidr: "10.64.0.0/12".parse().expect("cidr"), ..Default::default() },
        service_lb: true,
        audit: Default::default(),
        flow_control: Default::default(),
    })
    .await
    .expect("control plane")
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime").block_on(async {
        println!("flotilla scheduler benchmark: {NODES} simulated nodes, {PODS} pending pods ({} CPUs)", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
        throughput().await;
        nodes_joining().await;
    });
}

/// Rounds of the throughput scenario; the median is the figure.
const ROUNDS: usize = 3;

async fn throughput() {
    let mut rates = Vec::new();
    for round in 1..=ROUNDS {
        let (total, first) = throughput_round().await;
        let rate = PODS as f64 / total;
        println!("1. throughput round {round}: all {PODS} pods bound {total:.2} s after the restart (first seen bound at {first:.3} s): {rate:.0} pods/s");
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "1. throughput: {PODS} pending pods and {NODES} Ready nodes when the scheduler starts: median {:.0} pods/s over {ROUNDS} rounds (min {:.0}, max {:.0}; goal >= 5,000 pods/s)",
        rates[ROUNDS / 2],
        rates[0],
        rates[ROUNDS - 1]
    );
}

/// Seconds from the restart until every pod was seen bound, and until the first was.
async fn throughput_round() -> (f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let handle = control_plane(dir.path(), false).await;
    let t = Target::connect(&handle).await;
    t.create_namespace().await;
    t.create_nodes().await;
    t.create_pods().await;
    assert_eq!(t.unbound().await, 2, "pods stay pending with the scheduler off (one listed, more to continue)");
    handle.shutdown().await;

    let handle = control_plane(dir.path(), true).await;
    let started = Instant::now();
    let t = Target::connect(&handle).await;
    let bound = t.watch_bound(None);
    let (first, last) = tokio::time::timeout(Duration::from_secs(600), bound).await.expect("all pods bound within 10 minutes").expect("watch");
    let (first, last) = (first.expect("a pod was bound"), last.expect("a pod was bound"));
    handle.shutdown().await;
    (last.duration_since(started).as_secs_f64(), first.duration_since(started).as_secs_f64())
}

async fn nodes_joining() {
    let dir = tempfile::tempdir().expect("tempdir");
    let handle = control_plane(dir.path(), true).await;
    let t = Target::connect(&handle).await;
    t.create_namespace().await;
    let started = Instant::now();
    t.create_pods().await;
    println!("2. nodes joining: created {PODS} pods in {:.2} s (no nodes yet: each is marked unschedulable)", started.elapsed().as_secs_f64());
    let wait = Instant::now();
    while t.unschedulable_marked().await < PODS && wait.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rv = t.get("/api/v1/namespaces/sched/pods?limit=1").await["metadata"]["resourceVersion"].as_str().unwrap_or("0").to_string();
    let bound = t.watch_bound(Some(rv));
    let started = Instant::now();
    t.create_nodes().await;
    let nodes_done = started.elapsed();
    while t.unbound().await > 0 {
        assert!(started.elapsed() < Duration::from_secs(600), "pods not bound within 10 minutes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let first = match tokio::time::timeout(Duration::from_secs(30), bound).await {
        Ok(Ok((Some(first), _))) => format!("{:.2} s", first.duration_since(started).as_secs_f64()),
        _ => "?".into(),
    };
    println!(
        "2. nodes joining: {NODES} Ready nodes created in {:.2} s; first pod bound {first} and all {PODS} {:.2} s after the first node create: {:.0} pods/s end to end",
        nodes_done.as_secs_f64(),
        elapsed.as_secs_f64(),
        PODS as f64 / elapsed.as_secs_f64()
    );
    handle.shutdown().await;
}
