//! Density benchmark (`cargo bench --bench density`, issue 12): an in-process control plane
//! and in-process nodes (as `flotilla up`), pods created concurrently on one shared HTTP/2
//! client, Ready observed on one open pod watch. In one run, for hello-http (HTTP) and
//! hello-cmd `--sleep-ms 3600000` (command, stays running):
//! 1. reference: one pod of each component alone on a fresh node (compiles), then one more
//!    (cached); the difference is the compile time the cold-burst goal allows for;
//! 2. cold burst: 1,000 pods of the component new to a fresh node, created at once → time
//!    to all Ready, pods/s, and the node's `flotilla_node_compilations_total` (nodes/proxy);
//! 3. warm ramp on the same node in batches of 1,000 to 10,000 HTTP pods, pods/s per batch,
//!    RSS of this process (/proc/self/statm) per batch, per idle pod and in total. Command
//!    pods ramp to 5,000 by default: each running instance maps ~4 regions, and with the
//!    HTTP node's pool beside the command node's, 10,000 would pass vm.max_map_count;
//! 4. req/s through the node server's /proxy to one of the 10,000 pods against a pod alone
//!    on its node (same process, same load generator, rounds interleaved, medians);
//! 5. node restart with 5,000 pods (HTTP, then command): `NodeHandle::shutdown`, a new node
//!    with the same name and data dir, time until every pod is Ready in its new life, and
//!    the new node's compilations (loads from the disk cache count too).
//!
//! At most two nodes run at once: each node's instance pool maps ~20,000 regions, and the
//! default vm.max_map_count is 65,530. Batch lines show this process's mappings and open
//! files (both ends of every loopback connection to the API server count).
//!
//! Sizes: DENSITY_PODS (10000), DENSITY_BURST (1000), DENSITY_BATCH (1000),
//! DENSITY_CMD_PODS (5000), DENSITY_RESTART_PODS (5000), DENSITY_LOAD_SECONDS (3),
//! DENSITY_SETTLE_SECONDS (80: the idle wait before the settled RSS reading),
//! DENSITY_READY_TIMEOUT seconds per batch (180).

/// The allocator the `flotilla` binary uses (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "common/load.rs"]
mod load;
#[path = "common/watch.rs"]
mod watch;
use load::{Load, load};

const GUESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/guests");
const MIB: f64 = 1024.0 * 1024.0;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Sizes {
    pods: usize,
    burst: usize,
    batch: usize,
    cmd_pods: usize,
    restart_pods: usize,
    load_seconds: u64,
    ready_timeout: Duration,
}

impl Sizes {
    fn from_env() -> Sizes {
        let pods = env_usize("DENSITY_PODS", 10_000);
        let burst = env_usize("DENSITY_BURST", 1_000).min(pods).max(1);
        Sizes {
            pods,
            burst,
            batch: env_usize("DENSITY_BATCH", 1_000).max(1),
            cmd_pods: env_usize("DENSITY_CMD_PODS", 5_000).max(burst),
            restart_pods: env_usize("DENSITY_RESTART_PODS", 5_000),
            load_seconds: env_usize("DENSITY_LOAD_SECONDS", 3) as u64,
            ready_timeout: Duration::from_secs(env_usize("DENSITY_READY_TIMEOUT", 180) as u64),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Http,
    Cmd,
}

impl Kind {
    fn image(self) -> String {
        match self {
            Kind::Http => format!("file://{GUESTS}/hello-http.wasm"),
            Kind::Cmd => format!("file://{GUESTS}/hello-cmd.wasm"),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Http => "HTTP (hello-http)",
            Kind::Cmd => "command (hello-cmd --sleep-ms 3600000)",
        }
    }
}

fn pod(name: &str, node: &str, kind: Kind) -> Vec<u8> {
    let container = match kind {
        Kind::Http => json!({"name": "web", "image": kind.image(), "ports": [{"containerPort": 8080}]}),
        Kind::Cmd => json!({"name": "main", "image": kind.image(), "args": ["--sleep-ms", "3600000"]}),
    };
    serde_json::to_vec(&json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "density"}},
        "spec": {"nodeName": node, "containers": [container]},
    }))
    .expect("json")
}

struct Cluster {
    url: String,
    token: String,
    client: reqwest::Client,
}

impl Cluster {
    async fn create_namespace(&self, ns: &str) {
        let body = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})).expect("json");
        let r = self.client.post(format!("{}/api/v1/namespaces", self.url)).bearer_auth(&self.token).header("content-type", "application/json").body(body).send().await.expect("send");
        assert_eq!(r.status(), 201, "create namespace {ns}");
    }

    async fn get(&self, path: &str) -> Result<String, String> {
        let r = self.client.get(format!("{}{path}", self.url)).bearer_auth(&self.token).send().await.map_err(|e| e.to_string())?;
        let status = r.status();
        let text = r.text().await.map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("{status}: {}", text.trim()));
        }
        Ok(text)
    }

    /// The node's `flotilla_node_compilations_total`, through nodes/NODE/proxy/metrics.
    async fn compilations(&self, node: &str) -> Result<u64, String> {
        let text = self.get(&format!("/api/v1/nodes/{node}/proxy/metrics")).await?;
        text.lines()
            .find_map(|l| l.strip_prefix("flotilla_node_compilations_total ").and_then(|v| v.trim().parse::<f64>().ok()))
            .map(|v| v as u64)
            .ok_or_else(|| "no flotilla_node_compilations_total in /metrics".into())
    }

    async fn delete_pod(&self, ns: &str, name: &str) {
        let _ = self.client.delete(format!("{}/api/v1/namespaces/{ns}/pods/{name}?gracePeriodSeconds=0", self.url)).bearer_auth(&self.token).send().await;
    }

    /// Prints the status and events of a pod that did not become Ready.
    async fn explain(&self, key: &str) {
        let (ns, name) = key.split_once('/').expect("ns/name");
        match self.get(&format!("/api/v1/namespaces/{ns}/pods/{name}")).await {
            Ok(text) => {
                let v: Value = serde_json::from_str(&text).unwrap_or_default();
                println!("    pod {key}: status {}", v["status"]);
            }
            Err(e) => println!("    pod {key}: GET failed: {e}"),
        }
        match self.get(&format!("/api/v1/namespaces/{ns}/events?fieldSelector=involvedObject.name={name}")).await {
            Ok(text) => {
                let v: Value = serde_json::from_str(&text).unwrap_or_default();
                for e in v["items"].as_array().into_iter().flatten() {
                    println!("    event {key}: {} {} x{}: {}", e["type"].as_str().unwrap_or(""), e["reason"].as_str().unwrap_or(""), e["count"], e["message"].as_str().unwrap_or(""));
                }
            }
            Err(e) => println!("    events of {key}: GET failed: {e}"),
        }
    }
}

/// Per `ns/name`, the instants it was seen Ready=True on the watch, one per life: a new
/// entry when Ready=True comes with a container start time different from the last one.
#[derive(Default)]
struct ReadyLog {
    lives: Mutex<HashMap<String, Vec<(Instant, String)>>>,
}

impl ReadyLog {
    fn lives(&self, key: &str) -> usize {
        self.lives.lock().expect("ready lock").get(key).map_or(0, Vec::len)
    }

    /// When `key` became Ready in its `life`-th life (1-based).
    fn ready_at(&self, key: &str, life: usize) -> Option<Instant> {
        self.lives.lock().expect("ready lock").get(key).and_then(|v| v.get(life - 1)).map(|(at, _)| *at)
    }
}

/// Watches all pods from now on, recording Ready lives.
async fn start_ready_watch(cl: &Cluster, log: Arc<ReadyLog>) -> tokio::task::JoinHandle<()> {
    watch::watch_ready_pods(&cl.client, &cl.url, &cl.token, 7200, move |now, key, pod| {
        let started = pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"].as_str().unwrap_or("").to_string();
        let mut lives = log.lives.lock().expect("ready lock");
        let v = lives.entry(key).or_default();
        if v.last().is_none_or(|(_, s)| *s != started) {
            v.push((now, started));
        }
    })
    .await
}

/// Waits until every key has reached its `life`-th Ready (or the timeout). Returns how many
/// did and the last of their Ready instants.
async fn wait_ready(log: &ReadyLog, keys: &[String], life: usize, timeout: Duration) -> (usize, Option<Instant>) {
    let deadline = Instant::now() + timeout;
    loop {
        let (n, last) = {
            let lives = log.lives.lock().expect("ready lock");
            let mut n = 0;
            let mut last: Option<Instant> = None;
            for k in keys {
                if let Some((at, _)) = lives.get(k).and_then(|v| v.get(life - 1)) {
                    n += 1;
                    last = Some(last.map_or(*at, |l| l.max(*at)));
                }
            }
            (n, last)
        };
        if n == keys.len() || Instant::now() >= deadline {
            return (n, last);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pods not Ready in `life`: up to three explained (status and events).
async fn explain_stuck(cl: &Cluster, log: &ReadyLog, keys: &[String], life: usize) {
    let stuck: Vec<&String> = keys.iter().filter(|k| log.lives(k) < life).collect();
    println!("  !! {} pods not Ready; the first ones:", stuck.len());
    for k in stuck.iter().take(3) {
        cl.explain(k).await;
    }
}

struct Batch {
    created: usize,
    errors: Vec<String>,
    ready: usize,
    /// First create sent → last Ready seen.
    wall: Duration,
    started: Instant,
    last_ready: Option<Instant>,
}

impl Batch {
    fn rate(&self) -> f64 {
        self.ready as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Creates `names` in `ns` on `node` at once on the shared client and waits for them to be Ready.
async fn create_batch(cl: &Arc<Cluster>, log: &ReadyLog, ns: &str, node: &str, kind: Kind, names: &[String], timeout: Duration) -> Batch {
    let started = Instant::now();
    let tasks: Vec<_> = names
        .iter()
        .map(|name| {
            let (cl, ns, name, node) = (cl.clone(), ns.to_string(), name.clone(), node.to_string());
            tokio::spawn(async move {
                let body = pod(&name, &node, kind);
                let r = cl
                    .client
                    .post(format!("{}/api/v1/namespaces/{ns}/pods", cl.url))
                    .bearer_auth(&cl.token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 201 => {
                        let _ = r.bytes().await;
                        Ok(format!("{ns}/{name}"))
                    }
                    Ok(r) => {
                        let status = r.status();
                        Err(format!("create {ns}/{name}: {status} {}", r.text().await.unwrap_or_default().trim()))
                    }
                    Err(e) => Err(format!("create {ns}/{name}: {e}")),
                }
            })
        })
        .collect();
    let mut keys = Vec::with_capacity(names.len());
    let mut errors = Vec::new();
    for task in tasks {
        match task.await.expect("create task") {
            Ok(k) => keys.push(k),
            Err(e) => errors.push(e),
        }
    }
    let (ready, last_ready) = wait_ready(log, &keys, 1, timeout).await;
    let wall = last_ready.map_or(started.elapsed(), |l| l.saturating_duration_since(started));
    if ready < keys.len() {
        explain_stuck(cl, log, &keys, 1).await;
    }
    for e in errors.iter().take(3) {
        println!("  !! {e}");
    }
    Batch { created: keys.len(), errors, ready, wall, started, last_ready }
}

/// Resident set of this process, in bytes (/proc/self/statm, pages).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

/// Memory mappings of this process (/proc/self/maps lines): the kernel caps them at
/// vm.max_map_count, and every node's instance pool and running instance takes some.
fn maps() -> usize {
    std::fs::read_to_string("/proc/self/maps").map_or(0, |m| m.lines().count())
}

/// Open file descriptors of this process, and its soft limit (RLIMIT_NOFILE).
fn open_files() -> String {
    let n = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits.lines().find(|l| l.starts_with("Max open files")).and_then(|l| l.split_whitespace().nth(3)).unwrap_or("?").to_string();
    format!("{n}/{soft}")
}

fn max_map_count() -> usize {
    std::fs::read_to_string("/proc/sys/vm/max_map_count").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(65_530)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / MIB)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "MET" } else { "NOT MET" }
}

fn host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "localhost".into());
    let name: String = raw.trim().to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' }).collect();
    if name.is_empty() { "localhost".into() } else { name }
}

struct Env {
    cl: Arc<Cluster>,
    log: Arc<ReadyLog>,
    ca_pem: String,
    sizes: Sizes,
    base: PathBuf,
}

impl Env {
    async fn start_node(&self, name: &str, dir: &str, max_pods: usize) -> flotilla_node::NodeHandle {
        let mut cfg = flotilla_node::NodeConfig::new(self.cl.url.clone(), self.cl.token.clone(), name.to_string(), self.base.join(dir));
        cfg.ca_pem = Some(self.ca_pem.clone());
        cfg.allow_file_images = true;
        cfg.outside_listeners = false;
        cfg.max_pods = u32::try_from(max_pods.max(110)).expect("max pods");
        let node = flotilla_node::start(cfg).await.expect("start node");
        self.wait_node_ready(name).await;
        node
    }

    async fn wait_node_ready(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(text) = self.cl.get(&format!("/api/v1/nodes/{name}")).await
                && let Ok(v) = serde_json::from_str::<Value>(&text)
                && v["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
                && v["spec"]["podCIDR"].is_string()
            {
                return;
            }
            assert!(Instant::now() < deadline, "node {name} not Ready within 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn compilations(&self, node: &str) -> String {
        match self.cl.compilations(node).await {
            Ok(n) => n.to_string(),
            Err(e) => format!("unavailable ({e})"),
        }
    }

    /// One pod created alone; create → Ready.
    async fn single(&self, ns: &str, node: &str, kind: Kind, name: &str) -> Option<Duration> {
        let b = create_batch(&self.cl, &self.log, ns, node, kind, &[name.to_string()], self.sizes.ready_timeout).await;
        (b.ready == 1).then_some(b.wall)
    }
}

fn names(prefix: &str, from: usize, to: usize) -> Vec<String> {
    (from..to).map(|i| format!("{prefix}-{i:05}")).collect()
}

/// Cold burst and warm ramp of `kind` on a fresh node. Returns (keys, cold burst, figures).
struct Ramp {
    keys: Vec<String>,
    burst: Batch,
    burst_compilations: String,
    rss_before: u64,
    rss_after_burst: u64,
    rss_idle: u64,
    /// After the watch history window.
    rss_settled: u64,
    /// First create of the burst → last Ready of the ramp.
    total: Duration,
    ready: usize,
}

async fn ramp(env: &Env, node: &str, ns: &str, kind: Kind, target: usize) -> Ramp {
    let s = &env.sizes;
    let rss_before = rss();
    println!("{}: cold burst of {} pods on fresh node {node} (no compile cache), created at once", kind.label(), s.burst);
    let burst_names = names("p", 0, s.burst);
    let burst = create_batch(&env.cl, &env.log, ns, node, kind, &burst_names, s.ready_timeout).await;
    let burst_compilations = env.compilations(node).await;
    let rss_after_burst = rss();
    println!(
        "  cold burst   {:>5} created {:>3} errors  {:>5}/{:<5} Ready in {:>9}  {:>7.0} pods/s  compilations {burst_compilations}  RSS {}  maps {}  open files {}",
        burst.created,
        burst.errors.len(),
        burst.ready,
        s.burst,
        secs(burst.wall),
        burst.rate(),
        mib(rss_after_burst),
        maps(),
        open_files()
    );
    let mut keys: Vec<String> = burst_names.iter().map(|n| format!("{ns}/{n}")).collect();
    let mut ready = burst.ready;
    let mut last = burst.last_ready;
    let mut have = s.burst;
    let mut prev_rss = rss_after_burst;
    while have < target && ready == keys.len() {
        let upto = (have + s.batch).min(target);
        let batch_names = names("p", have, upto);
        let b = create_batch(&env.cl, &env.log, ns, node, kind, &batch_names, s.ready_timeout).await;
        let now_rss = rss();
        println!(
            "  warm {:>5}..{:<5} {:>5} created {:>3} errors  {:>5}/{:<5} Ready in {:>9}  {:>7.0} pods/s  RSS {} ({:+.1} KiB/pod)  maps {}  open files {}",
            have,
            upto,
            b.created,
            b.errors.len(),
            b.ready,
            upto - have,
            secs(b.wall),
            b.rate(),
            mib(now_rss),
            (now_rss as f64 - prev_rss as f64) / 1024.0 / (upto - have) as f64,
            maps(),
            open_files()
        );
        prev_rss = now_rss;
        keys.extend(batch_names.iter().map(|n| format!("{ns}/{n}")));
        ready += b.ready;
        last = b.last_ready.or(last);
        have = upto;
        if b.ready < b.created || !b.errors.is_empty() {
            println!("  ramp stopped at {have} pods: not every pod of the batch was created and Ready");
            break;
        }
    }
    if ready < target {
        println!("  !! only {ready} of {target} pods Ready");
    }
    let total = last.map_or(Duration::ZERO, |l| l.saturating_duration_since(burst.started));
    // Let start-up garbage settle (status writes, allocator caches) before the idle reading.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_idle = rss();
    // Settled: past the API server's watch history window (75 s), which holds the ramp's
    // superseded object versions for watchers that fell behind.
    let settle = Duration::from_secs(env_usize("DENSITY_SETTLE_SECONDS", 80) as u64);
    tokio::time::sleep(settle).await;
    let rss_settled = rss();
    println!("  RSS idle {} (3 s after the last Ready), settled {} ({} s later)", mib(rss_idle), mib(rss_settled), settle.as_secs());
    Ramp { keys, burst, burst_compilations, rss_before, rss_after_burst, rss_idle, rss_settled, total, ready }
}

/// Shuts `node` down and waits (up to a minute) for its instance pool's ~20,000 memory
/// mappings to go: they go when its last pod worker ends, and running containers are
/// killed after `shutdown` returns. Returns this process's mappings before and after.
async fn stop_node(node: flotilla_node::NodeHandle) -> (usize, usize) {
    let name = node.name.clone();
    let down = Instant::now();
    let maps_up = maps();
    node.shutdown().await;
    let stopped = down.elapsed();
    let wait = Instant::now();
    let mut maps_down = maps();
    while maps_down + 19_000 > maps_up && wait.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        maps_down = maps();
    }
    println!(
        "  {name}: shutdown returned after {}; this process's memory mappings {maps_up} -> {maps_down} after {} more (vm.max_map_count {})",
        secs(stopped),
        secs(wait.elapsed()),
        max_map_count()
    );
    (maps_up, maps_down)
}

/// Restarts `node` (same name, same data dir) and times every key's next Ready.
async fn restart(env: &Env, node: flotilla_node::NodeHandle, dir: &str, max_pods: usize, keys: &[String]) -> (Option<flotilla_node::NodeHandle>, Option<Duration>, usize, String) {
    let name = node.name.clone();
    let lives: Vec<usize> = keys.iter().map(|k| env.log.lives(k)).collect();
    // A container started in the same second as its restart would keep its startedAt.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (maps_up, maps_down) = stop_node(node).await;
    // A node's pool alone maps ~20,000 regions; the new node needs at least what the old one freed.
    let needed = maps_up.saturating_sub(maps_down).max(20_100);
    if maps_down + needed > max_map_count() {
        println!("  !! not restarting: the new node would need ~{needed} more mappings than the {maps_down} this process has, over vm.max_map_count");
        return (None, None, 0, "-".into());
    }
    let started = Instant::now();
    let node = env.start_node(&name, dir, max_pods).await;
    let registered = started.elapsed();
    let deadline = Instant::now() + env.sizes.ready_timeout;
    let mut last: Option<Instant> = None;
    let mut ready = 0;
    // Each key needs the life after the one it had.
    let mut pending: Vec<(usize, &String)> = lives.iter().copied().zip(keys).collect();
    loop {
        pending.retain(|(l, k)| match env.log.ready_at(k, l + 1) {
            Some(at) => {
                ready += 1;
                last = Some(last.map_or(at, |x| x.max(at)));
                false
            }
            None => true,
        });
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("  new node registered and Ready after {}; open files now {}", secs(registered), open_files());
    if !pending.is_empty() {
        println!("  open files {} (this process; the node's API client is HTTP/1.1: a connection per request in flight, both ends in this process)", open_files());
        println!("  !! {} pods not Ready again after the restart; the first ones:", pending.len());
        for (_, k) in pending.iter().take(3) {
            env.cl.explain(k).await;
        }
    }
    let compilations = env.compilations(&name).await;
    let took = (ready == keys.len()).then(|| last.map_or(Duration::ZERO, |l| l.saturating_duration_since(started)));
    (Some(node), took, ready, compilations)
}

/// Rounds of each req/s case.
const ROUNDS: usize = 5;

/// The round with the median req/s.
fn median(mut rounds: Vec<Load>) -> Load {
    rounds.sort_by(|a, b| a.rps().total_cmp(&b.rps()));
    let i = rounds.len() / 2;
    rounds.swap_remove(i)
}

fn report_load(label: &str, conns: usize, l: &Load, base: Option<&Load>) {
    let ratio = base.map_or(String::new(), |b| format!("  = {:.1}% of the single pod (goal >= 90%: {})", 100.0 * l.rps() / b.rps().max(1e-9), verdict(l.rps() >= 0.9 * b.rps())));
    println!(
        "  {label:<46} c={conns:<2} {:>7.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  ({} ok, {} errors){ratio}",
        l.rps(),
        l.pct(0.5).as_secs_f64() * 1e3,
        l.pct(0.99).as_secs_f64() * 1e3,
        l.requests,
        l.errors
    );
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    // The load generator has its own runtime, so it does not queue behind the nodes' tasks.
    let load_rt = tokio::runtime::Builder::new_multi_thread().thread_name("load").enable_all().build().expect("load runtime");
    rt.block_on(run(load_rt.handle().clone()));
    load_rt.shutdown_background();
}

async fn run(load_rt: tokio::runtime::Handle) {
    for g in ["hello-http", "hello-cmd"] {
        let p = format!("{GUESTS}/{g}.wasm");
        assert!(Path::new(&p).is_file(), "{p} is missing: run scripts/build-guests.sh");
    }
    let sizes = Sizes::from_env();
    let dir = tempfile::tempdir().expect("tempdir");
    let rss_start = rss();
    let handle = flotilla_control::start(flotilla_control::ControlPlaneConfig {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".parse().expect("addr"),
        store: flotilla_control::store::StoreConfig::default(),
        scheduler: true,
        // A /18 per node holds 16,381 pods; the /16 cluster range has room for four nodes.
        network: flotilla_control::NetworkConfig { node_cidr_mask_size: 18, ..Default::default() },
        service_lb: true,
        audit: Default::default(),
        flow_control: Default::default(),
    })
    .await
    .expect("start control plane");
    let cert = reqwest::Certificate::from_pem(handle.ca_pem.as_bytes()).expect("CA cert");
    let client = reqwest::Client::builder().tls_certs_only([cert]).build().expect("client");
    let cl = Arc::new(Cluster { url: handle.url(), token: handle.admin_token.clone(), client });
    let _ = cl.get("/version").await;
    let log = Arc::new(ReadyLog::default());
    let env = Env { cl: cl.clone(), log: log.clone(), ca_pem: handle.ca_pem.clone(), sizes, base: dir.path().to_path_buf() };
    let s = &env.sizes;
    println!(
        "flotilla density benchmark: in-process control plane {} and nodes ({} CPUs); sizes: {} HTTP pods (cold burst {}, batches of {}), {} command pods, restart with {} pods",
        cl.url,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        s.pods,
        s.burst,
        s.batch,
        s.cmd_pods,
        s.restart_pods
    );
    for ns in ["ref", "http", "cmd", "restart"] {
        cl.create_namespace(ns).await;
    }
    let _watch = start_ready_watch(&cl, log.clone()).await;
    let rss_cp = rss();

    // 1. Reference: a first pod alone on a fresh node (compiles), then a second (cached).
    let host = host_name();
    let ref_name = format!("{host}-ref");
    let ref_node = env.start_node(&ref_name, "node-ref", s.restart_pods + 16).await;
    println!();
    println!("reference on fresh node {ref_name}: one pod alone, create -> Ready");
    let mut compile = HashMap::new();
    for kind in [Kind::Http, Kind::Cmd] {
        let tag = if kind == Kind::Http { "http" } else { "cmd" };
        let cold = env.single("ref", &ref_name, kind, &format!("{tag}-cold")).await;
        let warm = env.single("ref", &ref_name, kind, &format!("{tag}-warm")).await;
        match (cold, warm) {
            (Some(c), Some(w)) => {
                let est = c.saturating_sub(w);
                compile.insert(tag, est);
                println!("  {:<40} first pod (compiles) {:>9}  second pod (cached) {:>9}  => compile time ~ {}", kind.label(), secs(c), secs(w), secs(est));
            }
            _ => println!("  {:<40} !! a reference pod did not become Ready", kind.label()),
        }
    }
    println!("  compilations on {ref_name}: {}", env.compilations(&ref_name).await);
    // Leave one HTTP pod alone on this node: the single-pod case of the req/s comparison.
    for p in ["http-warm", "cmd-cold", "cmd-warm"] {
        cl.delete_pod("ref", p).await;
    }

    // 2./3. HTTP: cold burst and warm ramp on a fresh node.
    let main_name = host.clone();
    let main_node = env.start_node(&main_name, "node-main", s.pods + 16).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!();
    let http = ramp(&env, &main_name, "http", Kind::Http, s.pods).await;

    // 4. req/s to one of the many pods against the pod alone on the reference node.
    println!();
    println!(
        "HTTP GET / of hello-http through the node server's /proxy (HTTPS, keep-alive HTTP/1.1, load generator in this process on its own runtime; \
         {ROUNDS} rounds of {} s per case, the cases interleaved; medians)",
        s.load_seconds
    );
    let single_url = format!("https://{}/proxy/ref/http-cold/8080/", ref_node.server_addr);
    let many_url = format!("https://{}/proxy/http/p-{:05}/8080/", main_node.server_addr, http.ready / 2);
    let mut ratios = Vec::new();
    for conns in [1usize, 8] {
        let (mut single, mut many) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            single.push(load(&load_rt, single_url.clone(), Some(cl.token.clone()), None, conns, s.load_seconds).await);
            many.push(load(&load_rt, many_url.clone(), Some(cl.token.clone()), None, conns, s.load_seconds).await);
        }
        let (single, many) = (median(single), median(many));
        report_load("the pod alone on its node", conns, &single, None);
        report_load(&format!("one of {} pods on its node", http.ready), conns, &many, Some(&single));
        ratios.push((conns, 100.0 * many.rps() / single.rps().max(1e-9), many.errors + single.errors));
    }
    // 5a. Restart with HTTP pods: the reference node (its single pod plus new ones).
    println!();
    let n_restart = s.restart_pods.saturating_sub(1);
    println!("node restart: {ref_name} with {} HTTP pods ({n_restart} created now, in batches of {}, plus the single pod)", n_restart + 1, s.batch);
    let mut restart_keys = vec!["ref/http-cold".to_string()];
    let mut have = 0;
    while have < n_restart {
        let upto = (have + s.batch).min(n_restart);
        let b = create_batch(&cl, &log, "restart", &ref_name, Kind::Http, &names("r", have, upto), s.ready_timeout).await;
        println!("  created {}..{}: {} Ready in {} ({:.0} pods/s)  open files {}", have, upto, b.ready, secs(b.wall), b.rate(), open_files());
        restart_keys.extend(names("r", have, upto).iter().map(|n| format!("restart/{n}")));
        have = upto;
    }
    let (ref_node, http_restart, http_restart_ready, http_restart_comp) = restart(&env, ref_node, "node-ref", s.restart_pods + 16, &restart_keys).await;
    println!(
        "  {}/{} Ready again in {} after the new node started; compilations on the new node: {http_restart_comp}",
        http_restart_ready,
        restart_keys.len(),
        http_restart.map_or("-".into(), secs)
    );
    // Every node's instance pool maps ~20,000 regions: three nodes at once overrun the
    // default vm.max_map_count (65,530), so the reference node stops before command pods run.
    println!("reference node {ref_name} stopped (three nodes' pools at once overrun vm.max_map_count):");
    if let Some(n) = ref_node {
        stop_node(n).await;
    }

    // 2./3. command pods: cold burst and ramp on their own fresh node.
    let cmd_name = format!("{host}-cmd");
    let cmd_node = env.start_node(&cmd_name, "node-cmd", s.cmd_pods + 16).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!();
    let cmd = ramp(&env, &cmd_name, "cmd", Kind::Cmd, s.cmd_pods).await;

    // 5b. Restart with command pods.
    println!();
    println!("node restart: {cmd_name} with {} command pods", cmd.ready);
    let (cmd_node, cmd_restart, cmd_restart_ready, cmd_restart_comp) = restart(&env, cmd_node, "node-cmd", s.cmd_pods + 16, &cmd.keys).await;
    println!(
        "  {}/{} Ready again in {} after the new node started; compilations on the new node: {cmd_restart_comp}",
        cmd_restart_ready,
        cmd.keys.len(),
        cmd_restart.map_or("-".into(), secs)
    );

    // Summary against the issue's goals.
    println!();
    println!("summary (RSS is this whole process: control plane, nodes, the bench's clients and watch; {} at start, {} with the control plane up)", mib(rss_start), mib(rss_cp));
    for (kind, r, tag) in [(Kind::Http, &http, "http"), (Kind::Cmd, &cmd, "cmd")] {
        let n = r.ready;
        println!("{}:", kind.label());
        let c = compile.get(tag).copied();
        let goal = c.map(|c| c + Duration::from_secs(5));
        println!(
            "  cold burst of {}: all Ready in {} ({:.0} pods/s), compilations {}; goal <= compile time ({}) + 5 s = {}: {}",
            s.burst,
            secs(r.burst.wall),
            r.burst.rate(),
            r.burst_compilations,
            c.map_or("?".into(), secs),
            goal.map_or("?".into(), secs),
            goal.map_or("?", |g| verdict(r.burst.ready == s.burst && r.burst.wall <= g))
        );
        let target = if kind == Kind::Http { s.pods } else { s.cmd_pods };
        println!("  {n}/{target} pods Ready {} after the burst's first create ({:.0} pods/s overall){}", secs(r.total), n as f64 / r.total.as_secs_f64().max(1e-9), if kind == Kind::Http {
            format!("; goal 10,000 within 30 s: {}", verdict(n >= 10_000 && r.total <= Duration::from_secs(30)))
        } else {
            String::new()
        });
        let average = (r.rss_idle as f64 - r.rss_before as f64) / n.max(1) as f64;
        let marginal = if n > s.burst { Some((r.rss_idle as f64 - r.rss_after_burst as f64) / (n - s.burst) as f64) } else { None };
        let per_goal = match (kind, marginal) {
            (Kind::Http, Some(m)) => format!("; goal <= 100 KB (97.7 KiB) per idle HTTP pod: {}", verdict(m <= 100_000.0)),
            _ => String::new(),
        };
        println!(
            "  RSS {} before the burst, {} after it, {} idle at {n} pods: {} KiB per idle pod beyond the burst, {:.1} KiB per pod including the burst (and its compile){per_goal}",
            mib(r.rss_before),
            mib(r.rss_after_burst),
            mib(r.rss_idle),
            marginal.map_or("-".into(), |m| format!("{:.1}", m / 1024.0)),
            average / 1024.0
        );
        let settled_marginal = if n > s.burst { Some((r.rss_settled as f64 - r.rss_after_burst as f64) / (n - s.burst) as f64) } else { None };
        println!(
            "  settled (past the 75 s watch history window): {}, {} KiB per idle pod beyond the burst{}",
            mib(r.rss_settled),
            settled_marginal.map_or("-".into(), |m| format!("{:.1}", m / 1024.0)),
            match (kind, settled_marginal) {
                (Kind::Http, Some(m)) => format!("; goal <= 100 KB: {}", verdict(m <= 100_000.0)),
                _ => String::new(),
            }
        );
        if kind == Kind::Http {
            println!(
                "  process RSS at {n} idle HTTP pods: {} 3 s after the last Ready, {} settled; goal <= 1 GiB for the whole `flotilla up`: {} / {}",
                mib(r.rss_idle),
                mib(r.rss_settled),
                verdict(n >= 10_000 && r.rss_idle <= 1 << 30),
                verdict(n >= 10_000 && r.rss_settled <= 1 << 30)
            );
        }
    }
    for (conns, pct, errors) in &ratios {
        println!("req/s to one of {} pods vs the pod alone, c={conns}: {pct:.1}% ({errors} errors); goal >= 90%: {}", http.ready, verdict(*pct >= 90.0));
    }
    let ten = Duration::from_secs(10);
    println!(
        "restart with {} command pods: {}; goal <= 10 s: {}; compilations on the new node {cmd_restart_comp} (goal 1 per digest)",
        cmd.keys.len(),
        cmd_restart.map_or(format!("{cmd_restart_ready} Ready"), secs),
        verdict(cmd_restart.is_some_and(|d| d <= ten) && cmd.keys.len() >= 5000)
    );
    println!(
        "restart with {} HTTP pods: {}; goal <= 10 s: {}; compilations on the new node {http_restart_comp} (goal 1 per digest)",
        restart_keys.len(),
        http_restart.map_or(format!("{http_restart_ready} Ready"), secs),
        verdict(http_restart.is_some_and(|d| d <= ten) && restart_keys.len() >= 5000)
    );

    if let Some(n) = cmd_node {
        n.shutdown().await;
    }
    main_node.shutdown().await;
    handle.shutdown().await;
}
