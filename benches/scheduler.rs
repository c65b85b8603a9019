//! Scheduler benchmark (`cargo bench --bench scheduler`): an in-process control plane with
//! 1,000 simulated nodes (Node objects with no agent) and 10,000 pending pods. Prints the
//! pods bound per second, from the moment the first node is created until every pod is
//! bound (node creation included, so the figure is conservative).

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

    async fn unbound(&self) -> usize {
        let r = self
            .client
            .get(format!("{}/api/v1/namespaces/sched/pods?fieldSelector=spec.nodeName%3D&limit=1", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("list");
        let v: serde_json::Value = r.json().await.expect("list json");
        v["items"].as_array().map(Vec::len).unwrap_or(0) + usize::from(v["metadata"]["continue"].as_str().is_some_and(|c| !c.is_empty()))
    }

    async fn unschedulable_marked(&self) -> usize {
        let r = self.client.get(format!("{}/api/v1/namespaces/sched/pods", self.url)).bearer_auth(&self.token).send().await.expect("list");
        let v: serde_json::Value = r.json().await.expect("list json");
        v["items"]
            .as_array()
            .map(|items| items.iter().filter(|p| p["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "PodScheduled"))).count())
            .unwrap_or(0)
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

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime").block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let handle = flotilla_control::start(flotilla_control::ControlPlaneConfig {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".parse().expect("addr"),
        store: flotilla_control::store::StoreConfig::default(),
    })
    .await
    .expect("control plane");
    let cert = reqwest::Certificate::from_pem(handle.ca_pem.as_bytes()).expect("CA");
    let client = reqwest::Client::builder().tls_certs_only([cert]).build().expect("client");
    let t = Arc::new(Target { url: handle.url(), token: handle.admin_token.clone(), client });
    println!("flotilla scheduler benchmark: {NODES} simulated nodes, {PODS} pending pods ({} CPUs)", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    assert!(t.send(reqwest::Method::POST, "/api/v1/namespaces", "application/json", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sched"}})).await.is_success());

    let started = Instant::now();
    let tt = t.clone();
    parallel(PODS, move |i| {
        let t = tt.clone();
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
    println!("created {PODS} pods in {:.2} s (no nodes yet: each is marked unschedulable)", started.elapsed().as_secs_f64());
    let wait = Instant::now();
    while t.unschedulable_marked().await < PODS && wait.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("all pods marked PodScheduled=False after {:.2} s more", wait.elapsed().as_secs_f64());

    // Watch the pods: the first and last moments a pod is seen bound give the binding rate.
    let rv = {
        let r = t.client.get(format!("{}/api/v1/namespaces/sched/pods?limit=1", t.url)).bearer_auth(&t.token).send().await.expect("list");
        let v: serde_json::Value = r.json().await.expect("json");
        v["metadata"]["resourceVersion"].as_str().unwrap_or("0").to_string()
    };
    let watch = t
        .client
        .get(format!("{}/api/v1/namespaces/sched/pods?watch=true&resourceVersion={rv}", t.url))
        .bearer_auth(&t.token)
        .send()
        .await
        .expect("watch");
    let bound_times = tokio::spawn(async move {
        use futures::StreamExt as _;
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
    });

    let started = Instant::now();
    let tt = t.clone();
    parallel(NODES, move |i| {
        let t = tt.clone();
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
    let nodes_done = started.elapsed();
    while t.unbound().await > 0 {
        assert!(started.elapsed() < Duration::from_secs(600), "pods not bound within 10 minutes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    println!("created {NODES} Ready nodes in {:.2} s", nodes_done.as_secs_f64());
    println!(
        "bound {PODS} pods in {:.2} s from the first node create: {:.0} pods/s end to end",
        elapsed.as_secs_f64(),
        PODS as f64 / elapsed.as_secs_f64()
    );
    if let Ok(Ok((Some(first), Some(last)))) = tokio::time::timeout(Duration::from_secs(30), bound_times).await {
        let window = last.duration_since(first).as_secs_f64().max(1e-3);
        println!(
            "binding window (first to last pod seen bound on a watch): {:.2} s, first bind {:.2} s after the first node create: {:.0} pods/s (goal >= 5,000 pods/s)",
            window,
            first.duration_since(started).as_secs_f64(),
            PODS as f64 / window
        );
    }
    handle.shutdown().await;
}
