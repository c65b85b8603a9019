//! The wasmtime embedding: the only module of the node that names wasmtime.
//!
//! One [`Runtime`] per node owns one `Engine` (pooling allocator, fuel, epoch interruption
//! driven by a ticker thread). [`Runtime::prepare`] compiles an image once per digest (in
//! memory while any container uses it; on disk through wasmtime's content-addressed
//! compilation cache under `cache_dir/wasmtime/`; concurrent starts of one digest share a
//! single compilation through [`Runtime::prepare_shared`]) and pre-links it, so starting an instance
//! only builds a fresh `Store`. Command containers run with [`Runtime::run`]; HTTP containers
//! get an [`HttpService`] from [`Runtime::serve`] that makes a fresh instance per request.
//!
//! Invariants: a guest only sees what its [`InstanceSpec`] grants (argv, env, preopened
//! mounts; TCP and name lookup over its [`Network`] only, no host sockets, no UDP;
//! outgoing wasi:http requests only where its [`Network`] routes them, none without one); every store carries the memory limiter and the
//! fuel/epoch meter, so a guest that traps, loops, overflows its stack or hogs memory ends
//! only itself; wasm yields to tokio at least every fuel slice (~2 ms of CPU) or epoch
//! tick, so a busy guest never starves a worker thread and can be killed (its future
//! dropped) promptly; CPU limits are enforced on the thread CPU time measured around
//! every poll of the guest (see `limits.rs`), not on fuel.
//!
//! Files: `engine.rs` (Engine/pool config, ticker, fuel calibration), `limits.rs` (memory
//! limiter, CPU token bucket, per-store meter), `host.rs` (store state, WASI context),
//! `stdio.rs` (stdout/stderr into an [`OutputSink`], stdin from a channel), `command.rs`
//! (command containers), `http.rs` (HTTP containers), `outgoing.rs` (outgoing wasi:http
//! requests: executes the [`Network`]'s [`Dispatch`]), `sockets.rs` (wasi:sockets TCP and
//! ip-name-lookup over the [`Network`]), `ownership.rs` (wasi:filesystem giving what a
//! guest creates its [`Owner`]).

mod command;
mod engine;
mod host;
mod http;
mod limits;
mod outgoing;
mod ownership;
mod sockets;
mod stdio;
mod usage;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use wasmtime::component::{Component, types::ComponentItem};
use wasmtime::{Engine, Module};

pub use self::http::HttpService;
pub use self::usage::{HttpSnapshot, LATENCY_BUCKETS, Usage, UsageSnapshot};
use self::host::{Host, P1Host};

/// Response/request body type used by HTTP containers and the node server.
pub type BoxBody = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, std::io::Error>;

/// Version of the embedded wasmtime (reported in Node.status.nodeInfo).
pub const WASMTIME_VERSION: &str = "48.0.8";

/// Exit code reported for a container that ended in a wasm trap (as `wasmtime run` and a
/// native `abort()` report it).
pub const EXIT_CODE_TRAP: i32 = 134;
/// Exit code reported for OOMKilled and Killed (128 + SIGKILL, as Kubernetes reports it).
pub const EXIT_CODE_KILLED: i32 = 137;

/// An underlying error (wasmtime's, the OS's), kept as the cause.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why the runtime could not do what was asked. The Display text is what a container
/// status shows (CreateContainerError), so it carries the cause's message too; `source()`
/// gives the cause itself.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The image is not something this node runs (not wasm, not a command or HTTP
    /// component, or rejected by wasmtime).
    #[error("invalid wasm: {message}")]
    Invalid {
        message: String,
        #[source]
        source: Option<Cause>,
    },
    /// wasmtime failed at `context` (engine, compile cache, linking WASI, calibration);
    /// `message` is the cause chain on one line.
    #[error("{context}: {message}")]
    Wasmtime {
        context: &'static str,
        message: String,
        #[source]
        source: Cause,
    },
    /// A file or directory the runtime needs (`what`) is unusable.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Something asked of the runtime that cannot be, with no underlying error.
    #[error("{0}")]
    Other(String),
}

impl RuntimeError {
    fn invalid(message: impl Into<String>) -> RuntimeError {
        RuntimeError::Invalid { message: message.into(), source: None }
    }

    /// wasmtime rejected the image.
    fn rejected(e: wasmtime::Error) -> RuntimeError {
        RuntimeError::Invalid { message: error_message(&e), source: Some(e.into()) }
    }

    /// A wasmtime failure at `context`.
    fn wasmtime(context: &'static str) -> impl Fn(wasmtime::Error) -> RuntimeError {
        move |e| RuntimeError::Wasmtime { context, message: error_message(&e), source: e.into() }
    }
}

/// Engine-wide settings.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Where compiled components are cached by digest.
    pub cache_dir: PathBuf,
    /// Pooling allocator: most concurrently live instances (running commands plus
    /// in-flight HTTP requests; idle HTTP pods hold none).
    pub max_instances: u32,
}

/// What a compiled image can run as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerKind {
    /// Exports wasi:http/incoming-handler.
    Http,
    /// Exports wasi:cli/run, or a wasip1 core module with _start.
    Command,
}

/// Resource limits of one container.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    /// CPU in millicores (1000 = one core-second per second).
    pub cpu_millis: Option<u64>,
    /// Deadline of one HTTP request (default [`DEFAULT_REQUEST_TIMEOUT`]).
    pub request_timeout: Option<Duration>,
}

/// Deadline of an HTTP request when [`Limits::request_timeout`] is unset.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A directory preopened for the guest.
#[derive(Clone, Debug)]
pub struct Mount {
    pub host_path: PathBuf,
    pub guest_path: String,
    pub read_only: bool,
}

/// The owner given to files and directories a guest creates (securityContext runAsUser
/// and runAsGroup); None leaves that id as the node's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Everything an instance is granted.
#[derive(Clone, Debug, Default)]
pub struct InstanceSpec {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
    pub limits: Limits,
    /// Where its outgoing wasi:http requests go; None refuses them all (HTTP-request-denied).
    pub network: Option<Arc<dyn Network>>,
    /// Who owns the files and directories the guest creates (None: the node's user).
    pub owner: Option<Owner>,
    /// The container's consumption, shared by all its instances (clones share it).
    pub usage: Arc<Usage>,
}

/// The network an instance's outgoing wasi:http requests see: the node's pod network
/// implements it, the runtime carries out the [`Dispatch`] it returns.
pub trait Network: Send + Sync + std::fmt::Debug {
    /// Where a request to `host:port` goes (`host` as the guest wrote it: a name or an IP
    /// literal, IPv6 without brackets; the port defaulted from the scheme). Called inside
    /// the guest's `outgoing-handler.handle`: it must answer at once, never wait.
    fn route(&self, host: &str, port: u16) -> Dispatch;

    /// The pod's TCP port space (wasi:sockets `tcp`); None: TCP is off (access-denied).
    fn sockets(&self) -> Option<Arc<crate::network::tcp::PodSockets>> {
        None
    }

    /// Where a TCP connection to `addr` goes. Must answer at once, never wait.
    fn tcp_target(&self, _addr: std::net::SocketAddr) -> crate::network::tcp::Target {
        crate::network::tcp::Target::Denied
    }

    /// What `name` resolves to (wasi:sockets `ip-name-lookup`). Must answer at once.
    fn lookup(&self, _name: &str) -> crate::network::tcp::NameLookup {
        crate::network::tcp::NameLookup::NoSuchName
    }
}

/// What to do with an outgoing request.
pub enum Dispatch {
    /// Call an HTTP container of this node in-process (no socket, no TLS): it sees an
    /// origin-form request with the guest's Host header.
    Local(Arc<HttpService>),
    /// Real egress over the host's network, to `host:port` (the request keeps its Host
    /// header, as after a CNAME).
    External { host: String, port: u16 },
    /// Nobody serves that address: the guest gets connection-refused.
    Refused,
    /// The name does not resolve: the guest gets dns-error (rcode NXDOMAIN).
    NoSuchName,
    /// Not allowed: the guest gets HTTP-request-denied.
    Denied,
    /// A pod of another node: the [`Forward`] carries the request there.
    Remote(Box<dyn Forward>),
}

/// One request's hop to a pod of another node (the node's data plane implements it).
pub trait Forward: Send + Sync {
    /// Sends `request` (the guest's URI, method, headers and body) and answers the pod's
    /// response. Connecting gives up after `connect_timeout` (a default when None) with
    /// [`ForwardError::Refused`], so a route that fails never hangs.
    fn forward(
        self: Box<Self>,
        request: ::http::Request<BoxBody>,
        connect_timeout: Option<Duration>,
    ) -> futures::future::BoxFuture<'static, Result<::http::Response<BoxBody>, ForwardError>>;
}

/// Why a [`Forward`] gave no response.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Nobody takes the request there (no such node, pod or port; unreachable node): the
    /// guest gets connection-refused.
    #[error("connection refused")]
    Refused,
    /// The connection failed after the request was sent: connection-terminated.
    #[error("connection terminated")]
    Terminated(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Where guest output goes. Called from inside guest execution as output is produced:
/// implementations must not block for long.
pub trait OutputSink: Send + Sync {
    fn write(&self, stream: Stream, bytes: &[u8]);
}

/// Why an instance ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// Exit code 0.
    Completed,
    /// Non-zero exit or trap.
    Error,
    /// Exceeded its memory limit.
    OOMKilled,
    /// Stopped through the kill signal.
    Killed,
}

#[derive(Clone, Debug)]
pub struct ExitStatus {
    pub code: i32,
    pub reason: ExitReason,
    /// Human-readable cause (trap message), empty on success.
    pub message: String,
    /// Fuel the instance consumed.
    pub fuel: u64,
}

/// A compiled component or module, shared by every container using the same digest.
pub struct Compiled {
    pub kind: ContainerKind,
    pub digest: String,
    pre: Pre,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled").field("kind", &self.kind).field("digest", &self.digest).finish()
    }
}

/// The pre-linked form of an image: instantiating it only allocates from the pool.
enum Pre {
    Http(wasmtime_wasi_http::p2::bindings::ProxyPre<Host>),
    Command(wasmtime_wasi::p2::bindings::CommandPre<Host>),
    Module(wasmtime::InstancePre<P1Host>),
}

/// One compilation in progress: its outcome once known (the error as text).
type Flight = tokio::sync::OnceCell<Result<Arc<Compiled>, String>>;

/// One node's engine.
pub struct Runtime {
    config: RuntimeConfig,
    engine: Engine,
    linker: wasmtime::component::Linker<Host>,
    p1_linker: wasmtime::Linker<P1Host>,
    compiled: Mutex<HashMap<String, Weak<Compiled>>>,
    /// Compilations in progress by digest ([`Runtime::prepare_shared`]'s single flight).
    flights: Mutex<HashMap<String, Arc<Flight>>>,
    /// Images compiled (or loaded from the disk cache) so far.
    compilations: std::sync::atomic::AtomicU64,
    fuel_per_core_second: u64,
    max_memory_bytes: u64,
    _ticker: engine::Ticker,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.config)
            .field("fuel_per_core_second", &self.fuel_per_core_second)
            .field("max_memory_bytes", &self.max_memory_bytes)
            .finish()
    }
}

impl Runtime {
    /// Builds the engine and linkers, starts the epoch ticker and calibrates fuel against
    /// CPU time (a ~0.1 s tight loop). Blocking; call once at node start.
    pub fn new(config: RuntimeConfig) -> Result<Runtime, RuntimeError> {
        let built = engine::build(&config)?;
        let fuel_per_core_second = engine::calibrate(&built.engine)?;
        let ticker = engine::Ticker::start(built.engine.clone());
        let linker = host::component_linker(&built.engine)?;
        let p1_linker = host::module_linker(&built.engine)?;
        Ok(Runtime {
            config,
            engine: built.engine,
            linker,
            p1_linker,
            compiled: Mutex::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
            compilations: std::sync::atomic::AtomicU64::new(0),
            fuel_per_core_second,
            max_memory_bytes: built.max_memory_bytes,
            _ticker: ticker,
        })
    }

    /// Fuel one core burns in one second of a tight loop (calibrated at start); divide
    /// [`ExitStatus::fuel`] by it for a rough estimate of core-seconds (fuel per CPU
    /// second varies between guests; CPU limits do not rely on it).
    pub fn fuel_per_core_second(&self) -> u64 {
        self.fuel_per_core_second
    }

    /// Largest linear memory one guest memory can have on this node (pool slot size);
    /// memory limits above it are capped to it.
    pub fn max_memory_bytes(&self) -> u64 {
        self.max_memory_bytes
    }

    /// Compiles (or loads the cached compilation of) `wasm` with content digest `digest`.
    /// CPU-heavy on a cache miss (compiles the whole image): call from `spawn_blocking`.
    pub fn prepare(&self, digest: &str, wasm: &[u8]) -> Result<Arc<Compiled>, RuntimeError> {
        if let Some(found) = self.cached(digest) {
            return Ok(found);
        }
        let pre = self.compile(wasm)?;
        let kind = match pre {
            Pre::Http(_) => ContainerKind::Http,
            Pre::Command(_) | Pre::Module(_) => ContainerKind::Command,
        };
        let compiled = Arc::new(Compiled { kind, digest: digest.to_string(), pre });
        let mut map = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        // Another caller may have compiled the same digest meanwhile: share theirs.
        if let Some(existing) = map.get(digest).and_then(Weak::upgrade) {
            return Ok(existing);
        }
        map.retain(|_, w| w.strong_count() > 0);
        map.insert(digest.to_string(), Arc::downgrade(&compiled));
        Ok(compiled)
    }

    /// [`prepare`](Self::prepare) with a single flight per digest: however many
    /// containers start an image at once, one compiles it (on the blocking pool) and the
    /// others wait for it and share the result. A failure is every waiter's error, and is
    /// not remembered: the next start compiles again. If the compiling caller is dropped
    /// (its pod deleted), a waiter takes over.
    pub async fn prepare_shared(self: &Arc<Self>, digest: &str, wasm: Arc<Vec<u8>>) -> Result<Arc<Compiled>, RuntimeError> {
        if let Some(found) = self.cached(digest) {
            return Ok(found);
        }
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
            flights.entry(digest.to_string()).or_default().clone()
        };
        let result = flight
            .get_or_init(|| {
                let (runtime, digest) = (self.clone(), digest.to_string());
                async move {
                    match tokio::task::spawn_blocking(move || runtime.prepare(&digest, &wasm)).await {
                        Ok(r) => r.map_err(|e| e.to_string()),
                        Err(e) => Err(format!("compile task failed: {e}")),
                    }
                }
            })
            .await
            .clone();
        // The flight is over: later starts find the compilation in `compiled`, or retry.
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if flights.get(digest).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            flights.remove(digest);
        }
        result.map_err(RuntimeError::Other)
    }

    /// Images compiled (or loaded from the disk cache) since the node started: one per
    /// digest in use, however many pods share it.
    pub fn compilations(&self) -> u64 {
        self.compilations.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether a compilation of `digest` is held in memory now.
    pub fn is_compiled(&self, digest: &str) -> bool {
        self.cached(digest).is_some()
    }

    fn cached(&self, digest: &str) -> Option<Arc<Compiled>> {
        let map = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        map.get(digest).and_then(Weak::upgrade)
    }

    fn compile(&self, wasm: &[u8]) -> Result<Pre, RuntimeError> {
        self.compilations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if wasm.len() < 8 || &wasm[0..4] != b"\0asm" {
            return Err(RuntimeError::invalid("not a WebAssembly binary (missing \\0asm header)"));
        }
        // Bytes 6..8 are the layer: 0 for core modules, 1 for components.
        if wasm[6..8] == [1, 0] {
            let component = Component::new(&self.engine, wasm).map_err(RuntimeError::rejected)?;
            let ty = component.component_type();
            let mut http = false;
            let mut run = false;
            for (name, item) in ty.exports(&self.engine) {
                if !matches!(item.ty, ComponentItem::ComponentInstance(_)) {
                    continue;
                }
                let base = name.split('@').next().unwrap_or(name);
                http |= base == "wasi:http/incoming-handler";
                run |= base == "wasi:cli/run";
            }
            let pre = self.linker.instantiate_pre(&component).map_err(RuntimeError::rejected)?;
            if http {
                let pre = wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre).map_err(RuntimeError::rejected)?;
                Ok(Pre::Http(pre))
            } else if run {
                let pre = wasmtime_wasi::p2::bindings::CommandPre::new(pre).map_err(RuntimeError::rejected)?;
                Ok(Pre::Command(pre))
            } else {
                Err(RuntimeError::invalid("component exports neither wasi:http/incoming-handler nor wasi:cli/run"))
            }
        } else {
            let module = Module::new(&self.engine, wasm).map_err(RuntimeError::rejected)?;
            let has_start = module.exports().any(|e| e.name() == "_start" && e.ty().func().is_some());
            if !has_start {
                return Err(RuntimeError::invalid("core module does not export a _start function"));
            }
            let pre = self.p1_linker.instantiate_pre(&module).map_err(RuntimeError::rejected)?;
            Ok(Pre::Module(pre))
        }
    }

    /// Runs a command instance to completion (or until `kill` turns true). `stdin` feeds
    /// the guest's stdin when given (exec -i), else stdin is empty.
    pub async fn run(
        &self,
        compiled: &Compiled,
        spec: &InstanceSpec,
        stdin: Option<tokio::sync::mpsc::Receiver<bytes::Bytes>>,
        out: Arc<dyn OutputSink>,
        kill: tokio::sync::watch::Receiver<bool>,
    ) -> ExitStatus {
        command::run(self, compiled, spec, stdin, out, kill).await
    }

    /// Prepares an HTTP container: requests get a fresh instance each.
    pub fn serve(&self, compiled: &Arc<Compiled>, spec: InstanceSpec, out: Arc<dyn OutputSink>) -> Result<HttpService, RuntimeError> {
        let Pre::Http(pre) = &compiled.pre else {
            return Err(RuntimeError::Other(format!("image {} is not an HTTP component", compiled.digest)));
        };
        // Fail now, not per request, when a volume cannot be opened.
        host::check_mounts(&spec.mounts)?;
        Ok(http::HttpService::new(self, pre.clone(), spec, out))
    }

    fn meter_for(&self, spec: &InstanceSpec) -> limits::Meter {
        limits::Meter::new(
            spec.limits.cpu_millis.map(|m| Arc::new(limits::CpuBucket::new(m))),
            self.fuel_slice(),
            usage::accounted(&spec.usage),
        )
    }

    /// Fuel between async yields of a running guest: about 2 ms of one core.
    fn fuel_slice(&self) -> u64 {
        (self.fuel_per_core_second / 500).max(10_000)
    }

    fn memory_limit(&self, limits: &Limits) -> u64 {
        limits.memory_bytes.map_or(self.max_memory_bytes, |m| m.min(self.max_memory_bytes))
    }
}

/// One line describing an error: the trap if there is one, else the cause chain.
fn error_message(e: &wasmtime::Error) -> String {
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        return trap.to_string();
    }
    let parts: Vec<String> = e
        .chain()
        .map(|c| c.to_string().lines().next().unwrap_or_default().trim().trim_end_matches(':').to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let mut msg = parts.join(": ");
    if msg.len() > 4096 {
        let mut cut = 4096;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
    }
    msg
}
