//! The agent: registers the Node (publishing its serving certificate's pin and its pod
//! network's data-plane port), waits for the control plane to give it a pod range
//! (spec.podCIDR, set by node IPAM), heartbeats its Lease, watches the pods bound to it and
//! runs one worker per pod (`pod_worker.rs`). It reaches the control plane only through the API
//! (kube-rs), exactly as a remote node would.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt as _, StreamExt as _};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};

use crate::identity;
use crate::images::ImageStore;
use crate::lifecycle::Backoff;
use crate::network::{self, Egress, IpPool, Routing};
use crate::pod_table::PodTable;
use crate::runtime::{Runtime, RuntimeConfig, WASMTIME_VERSION};

/// How to run a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// API server URL.
    pub server: String,
    /// The bootstrap credential: a bearer token for the API server, with which the node
    /// requests its own client certificate (`identity.rs`); also what this node's own
    /// server requires of the API server, the password for the cluster's registry, and
    /// the built-in Ingress controller's credential.
    pub token: String,
    /// How long the node waits for its certificate signing request to be approved and
    /// issued (default 5 minutes).
    pub bootstrap_timeout: Duration,
    /// CA certificate (PEM) that signs the API server's certificate; None trusts any (insecure).
    pub ca_pem: Option<String>,
    /// Node name.
    pub name: String,
    /// Where images, compiled components, logs and volumes live.
    pub data_dir: PathBuf,
    /// Allow `file://` images.
    pub allow_file_images: bool,
    /// Host directories hostPath volumes may name (prefixes); empty: no hostPath volumes.
    pub allow_host_paths: Vec<PathBuf>,
    /// Address the node server binds to and reports as InternalIP.
    pub bind_address: IpAddr,
    /// Container restart back-off.
    pub backoff: Backoff,
    /// Cap of one container attempt's log file.
    pub max_log_bytes: u64,
    /// How many pods the node accepts (allocatable pods).
    pub max_pods: u32,
    /// Allocatable cpu and memory (Kubernetes quantities); None: the host's.
    pub allocatable_cpu: Option<String>,
    pub allocatable_memory: Option<String>,
    /// Slots of the node's instance pool: instances live at once (running command
    /// containers, in-flight HTTP requests; an idle HTTP pod holds none). Each slot maps
    /// about two regions of virtual memory, and a process may hold vm.max_map_count
    /// (65,530 by default) mappings, so nodes sharing one process (`up --nodes N`) split
    /// one budget ([`INSTANCE_BUDGET`]).
    pub max_instances: u32,
    /// Let pods' outgoing requests and connections leave the cluster over the host's
    /// network, where NetworkPolicy allows (a pod no egress policy selects reaches any
    /// external address, as in Kubernetes). Off by default: a guest gets no network beyond
    /// the cluster unless the node's operator grants it (`--allow-pod-egress`).
    pub allow_egress: bool,
    /// Listen on the bind address for clients outside the cluster: node ports,
    /// health-check node ports and the built-in load balancer's Service ports
    /// (`network/frontends.rs`). `up` turns it on for one embedded node only, since its
    /// nodes share one address.
    pub outside_listeners: bool,
    /// Where the built-in Ingress controller listens (`--ingress-listen`,
    /// `--ingress-tls-listen`); None (the default here; the commands default to
    /// 127.0.0.1:8080 and :8443): this node serves no Ingress.
    pub ingress: Option<crate::IngressListen>,
}

/// Instance-pool slots one process holds in all (see [`NodeConfig::max_instances`]).
pub const INSTANCE_BUDGET: u32 = 10_000;

impl NodeConfig {
    pub fn new(server: String, token: String, name: String, data_dir: PathBuf) -> Self {
        NodeConfig {
            server,
            token,
            bootstrap_timeout: Duration::from_secs(300),
            ca_pem: None,
            name,
            data_dir,
            allow_file_images: false,
            allow_host_paths: Vec::new(),
            bind_address: IpAddr::from([127, 0, 0, 1]),
            backoff: Backoff::default(),
            max_log_bytes: 10 * 1024 * 1024,
            max_pods: 10_000,
            allocatable_cpu: None,
            allocatable_memory: None,
            max_instances: INSTANCE_BUDGET,
            allow_egress: false,
            outside_listeners: true,
            ingress: None,
        }
    }
}

/// What every pod worker shares.
pub(crate) struct Ctx {
    pub client: kube::Client,
    pub config: NodeConfig,
    pub runtime: Arc<Runtime>,
    pub images: ImageStore,
    pub pods: Arc<PodTable>,
    pub ips: Mutex<IpPool>,
    /// The pod network (routes of outgoing wasi:http requests).
    pub routing: Arc<Routing>,
    pub host_ip: String,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// The node server's port (reported in daemonEndpoints).
    pub port: std::sync::atomic::AtomicU16,
    /// Events already recorded: key → (event name, count), for aggregation.
    pub events: Mutex<HashMap<String, (String, u32)>>,
    /// Writes the pods' statuses, a bounded number at a time.
    pub status: crate::pod_worker::StatusWriter,
    /// Bounds the Event writes in flight (a burst of pod starts records thousands).
    pub event_permits: Arc<tokio::sync::Semaphore>,
    /// Live pod workers (see [`NodeHandle::shutdown`]).
    workers: Arc<tokio::sync::watch::Sender<usize>>,
}

impl Ctx {
    /// The node is shutting down.
    pub(crate) fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Records an Event about `pod` (best effort). A repeat of the same event (object,
    /// type, reason, message) bumps the count of the existing one, as Kubernetes'
    /// recorder does, instead of creating another.
    ///
    /// Nothing is recorded once the node is shutting down: its pods stop with it but their
    /// objects stay, as when a kubelet stops (5,000 "Stopping container" events would
    /// only load the API server a restarted node needs).
    pub(crate) fn event(self: &Arc<Self>, pod: &Value, type_: &str, reason: &str, message: &str) {
        if self.stopping() {
            return;
        }
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default").to_string();
        let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
        let now = crate::lifecycle::ts(chrono::Utc::now());
        let key = format!("{}\0{type_}\0{reason}\0{message}", pod["metadata"]["uid"].as_str().unwrap_or(""));
        let mut fresh_name = String::new();
        let repeat = {
            let mut seen = self.events.lock().expect("events lock");
            if seen.len() > 4096 {
                seen.clear();
            }
            match seen.get_mut(&key) {
                Some((ev_name, count)) => {
                    *count += 1;
                    Some((ev_name.clone(), *count))
                }
                None => {
                    fresh_name = format!("{}.{}", name, &uuid::Uuid::new_v4().simple().to_string()[..16]);
                    seen.insert(key, (fresh_name.clone(), 1));
                    None
                }
            }
        };
        if let Some((ev_name, count)) = repeat {
            let ctx = self.clone();
            tokio::spawn(async move {
                let Ok(_permit) = ctx.event_permits.acquire().await else { return };
                if ctx.stopping() {
                    return;
                }
                let api: Api<Event> = Api::namespaced(ctx.client.clone(), &ns);
                let patch = json!({"count": count, "lastTimestamp": now});
                if let Err(e) = api.patch(&ev_name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                    tracing::debug!(error = %e, "event not updated");
                }
            });
            return;
        }
        let ev_name = fresh_name;
        let ev = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": ev_name, "namespace": ns},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": name, "namespace": ns, "uid": pod["metadata"]["uid"], "fieldPath": ""},
            "reason": reason, "message": message, "type": type_,
            "source": {"component": "kubelet", "host": self.config.name},
            "reportingComponent": "kubelet", "reportingInstance": self.config.name,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        });
        let ctx = self.clone();
        tokio::spawn(async move {
            let Ok(ev) = serde_json::from_value::<Event>(ev) else { return };
            let Ok(_permit) = ctx.event_permits.acquire().await else { return };
            if ctx.stopping() {
                return;
            }
            let api: Api<Event> = Api::namespaced(ctx.client.clone(), &ns);
            if let Err(e) = api.create(&PostParams::default(), &ev).await {
                tracing::debug!(error = %e, "event not recorded");
            }
        });
    }
}

/// A running node.
pub struct NodeHandle {
    pub name: String,
    /// Where the node server listens.
    pub server_addr: std::net::SocketAddr,
    /// Where its Ingress controller listens for HTTP, if it runs one.
    pub ingress_addr: Option<std::net::SocketAddr>,
    /// Where it listens for HTTPS, if it does.
    pub ingress_tls_addr: Option<std::net::SocketAddr>,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// How many pod workers are alive.
    workers: tokio::sync::watch::Receiver<usize>,
}

/// How long `NodeHandle::shutdown` waits for the pods' containers to stop (the default
/// grace period, 30 s, and some).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(40);

impl NodeHandle {
    /// Stops the node (pods stop with it; their objects stay, as when a kubelet stops).
    /// Returns once every pod worker has ended (its instances gone), or after
    /// [`SHUTDOWN_WAIT`].
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
        if tokio::time::timeout(SHUTDOWN_WAIT, self.workers.wait_for(|n| *n == 0)).await.is_err() {
            tracing::warn!(node = %self.name, workers = *self.workers.borrow(), "pods still stopping after the shutdown wait");
        }
    }
}

/// Counts a live pod worker until dropped.
struct WorkerAlive(Arc<tokio::sync::watch::Sender<usize>>);

impl WorkerAlive {
    fn new(count: &Arc<tokio::sync::watch::Sender<usize>>) -> WorkerAlive {
        count.send_modify(|n| *n += 1);
        WorkerAlive(count.clone())
    }
}

impl Drop for WorkerAlive {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// The API client: one server, or several (`URL1,URL2,…`, members of one control plane)
/// with failover; with the node's own certificate, or (None) the bootstrap token.
fn client(config: &NodeConfig, own: Option<&identity::Credential>) -> anyhow::Result<kube::Client> {
    let urls: Vec<&str> = config.server.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
    anyhow::ensure!(!urls.is_empty(), "no API server URL");
    if urls.len() == 1 {
        return one_client(config, urls[0], own);
    }
    let clients = urls.iter().map(|u| one_client(config, u, own)).collect::<anyhow::Result<Vec<_>>>()?;
    Ok(kube::Client::new(Failover { clients: Arc::new(clients), current: Arc::new(std::sync::atomic::AtomicUsize::new(0)) }, "default"))
}

/// Sends every request to the current server; a failed connection or a 503 moves later
/// requests to the next one (the agent's loops retry, so the failed request is not).
#[derive(Clone)]
struct Failover {
    clients: Arc<Vec<kube::Client>>,
    current: Arc<std::sync::atomic::AtomicUsize>,
}

impl Failover {
    fn next(&self, from: usize) {
        let next = (from + 1) % self.clients.len();
        if self.current.compare_exchange(from, next, std::sync::atomic::Ordering::SeqCst, std::sync::atomic::Ordering::SeqCst).is_ok() {
            tracing::warn!(server = next, "API server failing; switching to the next one");
        }
    }
}

impl tower::Service<http::Request<kube::client::Body>> for Failover {
    type Response = http::Response<kube::client::Body>;
    type Error = kube::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, kube::Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), kube::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<kube::client::Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let i = this.current.load(std::sync::atomic::Ordering::SeqCst) % this.clients.len();
            match this.clients[i].send(req).await {
                Ok(resp) if resp.status() == http::StatusCode::SERVICE_UNAVAILABLE => {
                    this.next(i);
                    Ok(resp)
                }
                Ok(resp) => Ok(resp),
                Err(e) => {
                    this.next(i);
                    Err(e)
                }
            }
        })
    }
}

fn one_client(config: &NodeConfig, url: &str, own: Option<&identity::Credential>) -> anyhow::Result<kube::Client> {
    let mut kc = kube::Config::new(url.parse()?);
    match &config.ca_pem {
        Some(pem) => {
            let ders = pem_to_der(pem);
            anyhow::ensure!(!ders.is_empty(), "no certificate in the CA PEM");
            kc.root_cert = Some(ders);
        }
        None => kc.accept_invalid_certs = true,
    }
    match own {
        Some(c) => c.apply(&mut kc.auth_info),
        None => kc.auth_info.token = Some(secrecy::SecretString::from(config.token.clone())),
    }
    kc.read_timeout = None;
    Ok(kube::Client::try_from(kc)?)
}

fn pem_to_der(pem: &str) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut inside = false;
    for line in pem.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN CERTIFICATE") {
            inside = true;
            cur.clear();
        } else if line.starts_with("-----END CERTIFICATE") {
            inside = false;
            if let Ok(d) = base64::engine::general_purpose::STANDARD.decode(&cur) {
                out.push(d);
            }
        } else if inside {
            cur.push_str(line);
        }
    }
    out
}

fn total_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .map(|kib| kib * 1024)
        .unwrap_or(1 << 30)
}

fn disk_bytes(path: &std::path::Path) -> u64 {
    rustix::fs::statvfs(path).map(|s| s.f_blocks * s.f_frsize).unwrap_or(0)
}

/// Starts the node: registers it, serves, heartbeats and runs pods.
pub async fn start(mut config: NodeConfig) -> anyhow::Result<NodeHandle> {
    config.data_dir = std::path::absolute(&config.data_dir)?;
    std::fs::create_dir_all(&config.data_dir)?;
    let bootstrap = client(&config, None)?;
    let own = own_credential(&config, &bootstrap).await?;
    tracing::info!(node.name = %config.name, user = %identity::user_name(&config.name), "the node talks to the API server with its own certificate");
    let switchable = identity::Switchable::new(client(&config, Some(&own))?);
    let client = switchable.client();
    let runtime = Arc::new(Runtime::new(RuntimeConfig { cache_dir: config.data_dir.join("compiled"), max_instances: config.max_instances.max(1) })?);
    let mut images = ImageStore::new(config.data_dir.join("images"), config.allow_file_images);
    if let Some(pem) = &config.ca_pem {
        images = images.with_root_certs(pem.as_bytes());
    }
    let pods = Arc::new(PodTable::default());
    let host_ip = config.bind_address.to_string();

    let listener = tokio::net::TcpListener::bind((config.bind_address, 0)).await?;
    let server_addr = listener.local_addr()?;
    let ingress = match config.ingress {
        Some(listen) => Some(network::ingress::Bound::bind(listen).await?),
        None => None,
    };
    let ingress_addr = ingress.as_ref().map(|b| b.http.local_addr()).transpose()?;
    let ingress_tls_addr = ingress.as_ref().and_then(|b| b.https.as_ref()).map(|l| l.local_addr()).transpose()?;
    let (tls, cert, key) = crate::server::self_signed_with_key(&[config.bind_address])?;
    let cert_sha256: String = network::dataplane::sha256(&cert).iter().map(|b| format!("{b:02x}")).collect();
    // The pod network's data plane: its own free port, the node server's certificate.
    let data_plane = tokio::net::TcpListener::bind((config.bind_address, 0)).await?;
    let published = Published { cert_sha256, data_plane_port: data_plane.local_addr()?.port() };
    let identity = Arc::new(network::dataplane::Identity { cert, key });
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    let egress = if config.allow_egress { Egress::Allow } else { Egress::Deny };
    let routing = Routing::new(config.name.clone(), pods.clone(), egress);
    tasks.push(tokio::spawn(crate::server::serve(listener, tls, config.token.clone(), pods.clone(), runtime.clone(), routing.clone(), shutdown_rx.clone())));

    let ips = register(&client, &config, &host_ip, server_addr.port(), &published).await?;
    routing.set_data_plane(network::dataplane::Peers::new(identity.clone()));
    tasks.push(tokio::spawn(network::dataplane::serve(data_plane, identity, routing.clone(), shutdown_rx.clone())));
    tasks.push(tokio::spawn(network::watch::run(client.clone(), routing.clone(), shutdown_rx.clone())));
    if config.outside_listeners {
        tasks.push(tokio::spawn(network::frontends::run(routing.clone(), config.bind_address, shutdown_rx.clone())));
    }
    if let Some(bound) = ingress {
        // The Ingress controller reads any Ingress's TLS Secret: the node's identity may not.
        tasks.extend(network::ingress::start(bound, bootstrap.clone(), routing.clone(), config.name.clone(), config.bind_address, shutdown_rx.clone())?);
    }
    let ctx = Arc::new(Ctx { client: client.clone(), config: config.clone(), runtime, images, pods, ips: Mutex::new(ips), routing, host_ip, shutdown: shutdown_rx.clone(), port: std::sync::atomic::AtomicU16::new(server_addr.port()), events: Mutex::new(HashMap::new()), status: crate::pod_worker::StatusWriter::start(client.clone()), event_permits: Arc::new(tokio::sync::Semaphore::new(EVENTS_IN_FLIGHT)), workers: Arc::new(tokio::sync::watch::Sender::new(0)) });
    let workers = ctx.workers.subscribe();
    let for_renewal = config.clone();
    let build = move |c: &identity::Credential| self::client(&for_renewal, Some(c));
    tasks.push(tokio::spawn(identity::renew(own, client.clone(), bootstrap, switchable, build, config.name.clone(), config.data_dir.clone(), config.bootstrap_timeout, shutdown_rx.clone())));
    tasks.push(tokio::spawn(heartbeat(ctx.clone(), published)));
    tasks.push(tokio::spawn(watch_pods(ctx.clone())));
    tasks.push(tokio::spawn(crate::usage::run(client.clone(), ctx.pods.clone(), shutdown_rx.clone())));
    Ok(NodeHandle { name: config.name.clone(), server_addr, ingress_addr, ingress_tls_addr, shutdown: shutdown_tx, tasks, workers })
}

/// The node's own credential: the stored certificate while the API server accepts it,
/// else a new one requested with the bootstrap credential (`identity.rs`).
async fn own_credential(config: &NodeConfig, bootstrap: &kube::Client) -> anyhow::Result<identity::Credential> {
    if let Some(c) = identity::load(&config.data_dir, &config.name, chrono::Utc::now().timestamp()) {
        match Api::<Node>::all(client(config, Some(&c))?).get_opt(&config.name).await {
            Ok(_) => return Ok(c),
            Err(e) => tracing::warn!(error = %e, "the API server did not accept the stored node certificate; requesting a new one"),
        }
    }
    let c = identity::request(bootstrap, &config.name, config.bootstrap_timeout).await?;
    identity::save(&config.data_dir, &c)?;
    Ok(c)
}

/// The Node's status; `addresses`: how many pod addresses its podCIDR holds (allocatable
/// pods are the fewer of that and `max_pods`: a pod without an address cannot run).
fn node_status(config: &NodeConfig, host_ip: &str, port: u16, addresses: usize) -> Value {
    let now = crate::lifecycle::ts(chrono::Utc::now());
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mem = total_memory();
    let disk = disk_bytes(&config.data_dir);
    let pods = (config.max_pods as usize).min(addresses).to_string();
    let storage = format!("{}Ki", disk / 1024);
    let (host_cpu, host_mem) = (cpus.to_string(), format!("{}Ki", mem / 1024));
    // What the operator offers pods (`--allocatable-cpu`, `--allocatable-memory`); capacity
    // stays the host's unless the offer exceeds it.
    let offered = |given: &Option<String>, host: &String, amount: fn(&str) -> Option<u64>| match given {
        Some(q) => (if amount(q) > amount(host) { q.clone() } else { host.clone() }, q.clone()),
        None => (host.clone(), host.clone()),
    };
    let (cpu_capacity, cpu_allocatable) = offered(&config.allocatable_cpu, &host_cpu, |q| flotilla_api::quantity::millicores(q).ok());
    let (mem_capacity, mem_allocatable) = offered(&config.allocatable_memory, &host_mem, |q| flotilla_api::quantity::bytes(q).ok());
    let capacity = json!({"cpu": cpu_capacity, "memory": mem_capacity, "pods": pods, "ephemeral-storage": storage});
    let allocatable = json!({"cpu": cpu_allocatable, "memory": mem_allocatable, "pods": pods, "ephemeral-storage": storage});
    let cond = |t: &str, status: &str, reason: &str, message: &str| {
        json!({"type": t, "status": status, "reason": reason, "message": message, "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!({
        "capacity": capacity,
        "allocatable": allocatable,
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [{"type": "InternalIP", "address": host_ip}, {"type": "Hostname", "address": config.name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
            "osImage": "Flotilla", "operatingSystem": "linux",
            "architecture": if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH },
            "containerRuntimeVersion": format!("wasmtime://{WASMTIME_VERSION}"),
            "kubeletVersion": "v1.32.0-flotilla", "kubeProxyVersion": "",
        },
    })
}

/// What a node publishes in its Node's annotations for this run.
struct Published {
    /// SHA-256 (hex) of the serving certificate, presented by the node server and the data plane.
    cert_sha256: String,
    /// Port of the pod network's data-plane listener.
    data_plane_port: u16,
}

impl Published {
    fn annotations(&self) -> Value {
        json!({
            flotilla_api::SERVING_CERT_ANNOTATION: self.cert_sha256,
            flotilla_api::DATA_PLANE_PORT_ANNOTATION: self.data_plane_port.to_string(),
        })
    }

    /// Whether `node` shows them all.
    fn shown_on(&self, node: &Node) -> bool {
        let a = node.metadata.annotations.as_ref();
        let get = |k: &str| a.and_then(|a| a.get(k)).map(String::as_str);
        get(flotilla_api::SERVING_CERT_ANNOTATION) == Some(&self.cert_sha256)
            && get(flotilla_api::DATA_PLANE_PORT_ANNOTATION) == Some(&self.data_plane_port.to_string())
    }
}

/// Creates (or takes over) the Node object, publishes this run's serving certificate and
/// data-plane port,
/// waits for the Node's pod range, which the returned pool hands out, and reports status.
/// A Node that exists keeps its pod range (it never changes), so pods that outlive a
/// restart of this node keep their addresses.
async fn register(client: &kube::Client, config: &NodeConfig, host_ip: &str, port: u16, published: &Published) -> anyhow::Result<IpPool> {
    let api: Api<Node> = Api::all(client.clone());
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": config.name, "annotations": published.annotations(), "labels": {
            "kubernetes.io/hostname": config.name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH },
            "node.kubernetes.io/instance-type": "flotilla",
        }},
    });
    let node: Node = serde_json::from_value(node)?;
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {
            // A restart serves a new certificate and data-plane port: publish them.
            let annotate = json!({"metadata": {"annotations": published.annotations()}});
            api.patch(&config.name, &PatchParams::default(), &Patch::Merge(annotate)).await?;
        }
        Err(e) => return Err(e.into()),
    }
    // Ready only once pods can get addresses (a new Node has no conditions until then,
    // so nothing is scheduled to it).
    let cidr = wait_for_pod_cidr(&api, &config.name).await?;
    tracing::info!(node.name = %config.name, pod_cidr = %cidr, "pod addresses come from the node's podCIDR");
    let mut pool = IpPool::new(cidr)?;
    let status = node_status(config, host_ip, port, pool.capacity());
    api.patch_status(&config.name, &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await?;
    reserve_earlier_addresses(client, &config.name, &mut pool).await;
    Ok(pool)
}

/// Reserves the addresses of the pods bound here that have not ended, so each gets its
/// own back even when a newer pod's worker starts first.
async fn reserve_earlier_addresses(client: &kube::Client, node: &str, pool: &mut IpPool) {
    let api: Api<Pod> = Api::all(client.clone());
    let lp = kube::api::ListParams::default().fields(&format!("spec.nodeName={node}"));
    match api.list(&lp).await {
        Ok(list) => {
            for pod in list {
                let status = pod.status.unwrap_or_default();
                if !matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"))
                    && let Some(ip) = status.pod_ip
                {
                    pool.reserve(&ip);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "listing this node's pods failed; earlier pod addresses are not reserved"),
    }
}

/// Event writes in flight at once (the status writer has its own bound).
const EVENTS_IN_FLIGHT: usize = 8;

/// How long registration waits for the control plane to set the Node's spec.podCIDR.
const POD_CIDR_WAIT: Duration = Duration::from_secs(60);

/// Polls the Node until it has a pod range (the control plane's node IPAM sets it within
/// moments of the Node's creation), logging while it waits; fails after [`POD_CIDR_WAIT`].
async fn wait_for_pod_cidr(api: &Api<Node>, name: &str) -> anyhow::Result<flotilla_api::cidr::Ipv4Cidr> {
    let start = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(50);
    let mut next_log = start + Duration::from_secs(1);
    loop {
        match api.get(name).await {
            Ok(node) => {
                let spec = node.spec.unwrap_or_default();
                if let Some(cidr) = network::pod_cidr(spec.pod_cidr.as_deref(), spec.pod_cidrs.as_deref().unwrap_or_default())? {
                    return Ok(cidr);
                }
            }
            Err(e) => tracing::warn!(error = %e, node.name = %name, "reading the Node for its podCIDR failed"),
        }
        let now = tokio::time::Instant::now();
        anyhow::ensure!(
            now - start < POD_CIDR_WAIT,
            "node {name} got no spec.podCIDR from the control plane within {}s; its cluster CIDR may be full (look for CIDRNotAvailable in `kubectl describe node {name}`)",
            POD_CIDR_WAIT.as_secs()
        );
        if now >= next_log {
            tracing::info!(node.name = %name, waited_s = (now - start).as_secs(), "waiting for the control plane to assign this node a pod CIDR (spec.podCIDR)");
            next_log = now + Duration::from_secs(10);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

async fn heartbeat(ctx: Arc<Ctx>, published: Published) {
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), "kube-node-lease");
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let mut tick = 0u64;
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": ctx.config.name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": ctx.config.name, "leaseDurationSeconds": 40, "renewTime": now},
        });
        let pp = PatchParams::apply("flotilla-node").force();
        if let Err(e) = leases.patch(&ctx.config.name, &pp, &Patch::Apply(&lease)).await {
            tracing::warn!(error = %e, "lease renewal failed");
            // Once more at once: with several servers the client has moved to the next.
            if ctx.config.server.contains(',')
                && let Err(e) = leases.patch(&ctx.config.name, &pp, &Patch::Apply(&lease)).await
            {
                tracing::warn!(error = %e, "lease renewal failed again");
            }
        }
        // Node status heartbeat every 6th lease renewal (~1 min), as the kubelet does, and
        // at once when the control plane no longer sees this node Ready (after an outage).
        let seen = nodes.get_status(&ctx.config.name).await;
        let seen_ready = match &seen {
            Ok(n) => n.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
            Err(_) => true,
        };
        // Keep the certificate pin and data-plane port published (the Node may have been
        // edited or recreated).
        if let Ok(n) = &seen
            && !published.shown_on(n)
        {
            let annotate = json!({"metadata": {"annotations": published.annotations()}});
            if let Err(e) = nodes.patch(&ctx.config.name, &PatchParams::default(), &Patch::Merge(annotate)).await {
                tracing::warn!(error = %e, "publishing the serving certificate and data-plane port failed");
            }
        }
        if tick % 6 == 5 || !seen_ready {
            let slots = ctx.ips.lock().unwrap_or_else(|p| p.into_inner()).capacity();
            let status = node_status(&ctx.config, &ctx.host_ip, ctx.port.load(std::sync::atomic::Ordering::Relaxed), slots);
            if let Err(e) = nodes.patch_status(&ctx.config.name, &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await {
                tracing::warn!(error = %e, "node status update failed");
            }
        }
        tick += 1;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn watch_pods(ctx: Arc<Ctx>) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let wc = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.config.name));
    let mut stream = watcher(api, wc).boxed();
    let mut workers: HashMap<String, tokio::sync::watch::Sender<Option<Arc<Value>>>> = HashMap::new();
    // Pods listed since the (re)list began; None outside a list.
    let mut listing: Option<std::collections::HashSet<String>> = None;
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let ev = tokio::select! {
            ev = stream.next() => match ev { Some(ev) => ev, None => return },
            _ = shutdown.changed() => return,
        };
        workers.retain(|_, tx| !tx.is_closed());
        match ev {
            Ok(watcher::Event::Init) => listing = Some(Default::default()),
            Ok(watcher::Event::InitApply(mut pod)) | Ok(watcher::Event::Apply(mut pod)) => {
                // The node has no use for managedFields; a dense node holds thousands of pods.
                pod.metadata.managed_fields = None;
                let Ok(v) = serde_json::to_value(&pod) else { continue };
                let v = Arc::new(v);
                let uid = v["metadata"]["uid"].as_str().unwrap_or("").to_string();
                if let Some(listed) = listing.as_mut() {
                    listed.insert(uid.clone());
                }
                match workers.get(&uid) {
                    Some(tx) => {
                        let _ = tx.send(Some(v));
                    }
                    None => {
                        let (tx, rx) = tokio::sync::watch::channel(Some(v.clone()));
                        workers.insert(uid, tx);
                        let alive = WorkerAlive::new(&ctx.workers);
                        tokio::spawn(crate::pod_worker::run(ctx.clone(), v, rx).map(move |()| drop(alive)));
                    }
                }
            }
            Ok(watcher::Event::InitDone) => {
                let listed = listing.take().unwrap_or_default();
                for (uid, tx) in &workers {
                    if !listed.contains(uid) {
                        let _ = tx.send(None);
                    }
                }
                workers.shrink_to_fit();
            }
            Ok(watcher::Event::Delete(pod)) => {
                if let Some(uid) = pod.metadata.uid.as_deref()
                    && let Some(tx) = workers.get(uid)
                {
                    let _ = tx.send(None);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "pod watch failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
