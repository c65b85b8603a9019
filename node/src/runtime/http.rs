//! HTTP containers, served like `wasmtime serve`: every request gets a fresh instance
//! from the prebuilt `ProxyPre`, with the container's env, mounts and limits, in its own
//! tokio task. The response streams back while the guest keeps writing the body.
//!
//! A request whose guest traps, breaches its memory limit or is killed before answering
//! gets 500; one that misses its deadline gets 504; after `shutdown` starts, 503. None of
//! these affect other requests. Fuel of all requests adds up in `fuel_consumed`; the CPU
//! limit is one token bucket shared by all requests of the container.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::BodyExt as _;
use tokio::sync::{oneshot, watch};
use wasmtime::{Engine, Store};
use wasmtime_wasi_http::WasiHttpView as _;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

use super::command::killed;
use super::host::{self, Host};
use super::limits::{CpuBucket, MemLimiter, Meter};
use super::{BoxBody, DEFAULT_REQUEST_TIMEOUT, InstanceSpec, OutputSink, Runtime, Stream};

/// A running HTTP container.
pub struct HttpService {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    pre: ProxyPre<Host>,
    spec: InstanceSpec,
    out: Arc<dyn OutputSink>,
    bucket: Option<Arc<CpuBucket>>,
    memory_limit: u64,
    fuel_slice: u64,
    timeout: Duration,
    fuel: AtomicU64,
    closing: AtomicBool,
    /// Number of requests whose guest is still running.
    in_flight: watch::Sender<usize>,
    kill: watch::Sender<bool>,
}

/// Why a request's guest ended without (or after) answering.
enum Outcome {
    Done,
    Failed(String),
    TimedOut,
    Killed,
}

/// Counts a request in flight until dropped.
struct InFlight(Arc<Inner>);

impl InFlight {
    fn new(inner: &Arc<Inner>) -> InFlight {
        inner.in_flight.send_modify(|n| *n += 1);
        InFlight(inner.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl HttpService {
    pub(super) fn new(rt: &Runtime, pre: ProxyPre<Host>, spec: InstanceSpec, out: Arc<dyn OutputSink>) -> HttpService {
        let bucket = spec.limits.cpu_millis.map(|m| Arc::new(CpuBucket::new(m)));
        let memory_limit = rt.memory_limit(&spec.limits);
        let timeout = spec.limits.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        let inner = Inner {
            engine: rt.engine.clone(),
            pre,
            spec,
            out,
            bucket,
            memory_limit,
            fuel_slice: rt.fuel_slice(),
            timeout,
            fuel: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            in_flight: watch::Sender::new(0),
            kill: watch::Sender::new(false),
        };
        HttpService { inner: Arc::new(inner) }
    }

    /// Handles one request in a fresh instance. Traps become 500s; the service lives on.
    pub async fn handle(&self, req: http::Request<BoxBody>) -> http::Response<BoxBody> {
        let inner = &self.inner;
        if inner.closing.load(Ordering::SeqCst) {
            return plain(http::StatusCode::SERVICE_UNAVAILABLE, "container is shutting down\n");
        }
        let began = std::time::Instant::now();
        let guard = InFlight::new(inner);
        let builder = match host::wasi_builder(&inner.spec, None, &inner.out) {
            Ok(b) => b,
            Err(msg) => return plain(http::StatusCode::INTERNAL_SERVER_ERROR, &format!("{msg}\n")),
        };
        let mut builder = builder;
        let mut store = Store::new(&inner.engine, Host::new(builder.build(), MemLimiter::new(inner.memory_limit, super::usage::accounted(&inner.spec.usage)), &inner.spec));
        store.limiter(|h| &mut h.limiter);
        let meter = Meter::new(inner.bucket.clone(), inner.fuel_slice, super::usage::accounted(&inner.spec.usage));
        if let Err(e) = meter.install(&mut store) {
            return plain(http::StatusCode::INTERNAL_SERVER_ERROR, &format!("{}\n", super::error_message(&e)));
        }

        let req = with_authority(req).map(|body| body.map_err(|_| wasmtime_wasi_http::Error::ConnectionTerminated));
        let (tx, rx) = oneshot::channel();
        let prepared = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)
            .and_then(|req| Ok((req, store.data_mut().http().new_response_outparam(tx)?)));
        let (req, outparam) = match prepared {
            Ok(p) => p,
            Err(e) => return plain(http::StatusCode::BAD_REQUEST, &format!("{}\n", super::error_message(&e))),
        };

        let pre = inner.pre.clone();
        let kill = inner.kill.subscribe();
        let timeout = inner.timeout;
        let task = tokio::spawn(async move {
            let guard = guard;
            let call = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy.wasi_http_incoming_handler().call_handle(&mut store, req, outparam).await
            };
            let raw = tokio::select! {
                biased;
                () = killed(kill) => None,
                r = tokio::time::timeout(timeout, meter.metered(call)) => Some(r),
            };
            let outcome = match raw {
                None => Outcome::Killed,
                Some(Ok(Ok(()))) => Outcome::Done,
                Some(Ok(Err(e))) => {
                    let msg = super::error_message(&e);
                    Outcome::Failed(if store.data().limiter.oom { format!("OOMKilled: {msg}") } else { msg })
                }
                Some(Err(_)) => Outcome::TimedOut,
            };
            let fuel = meter.finish(&store);
            // Ends the guest's body stream (if any) before the request stops counting.
            drop(store);
            guard.0.fuel.fetch_add(fuel, Ordering::Relaxed);
            if super::usage::accounting() {
                guard.0.spec.usage.request_served(began.elapsed());
            }
            match &outcome {
                Outcome::Failed(msg) => log(&guard.0, &format!("request failed: {msg}")),
                Outcome::TimedOut => log(&guard.0, &format!("request timed out after {timeout:?}")),
                Outcome::Killed => log(&guard.0, "request killed"),
                Outcome::Done => {}
            }
            outcome
        });

        match rx.await {
            Ok(Ok(resp)) => resp.map(|body| body.map_err(std::io::Error::other).boxed_unsync()),
            Ok(Err(code)) => plain(http::StatusCode::INTERNAL_SERVER_ERROR, &format!("guest error: {code:?}\n")),
            Err(_) => match task.await {
                Ok(Outcome::TimedOut) => plain(http::StatusCode::GATEWAY_TIMEOUT, "guest timed out\n"),
                Ok(Outcome::Failed(msg)) => plain(http::StatusCode::INTERNAL_SERVER_ERROR, &format!("{msg}\n")),
                Ok(Outcome::Killed) => plain(http::StatusCode::SERVICE_UNAVAILABLE, "container is shutting down\n"),
                Ok(Outcome::Done) => {
                    plain(http::StatusCode::INTERNAL_SERVER_ERROR, "guest never set a response\n")
                }
                Err(e) => plain(http::StatusCode::INTERNAL_SERVER_ERROR, &format!("request task failed: {e}\n")),
            },
        }
    }

    /// Fuel consumed by all requests so far.
    pub fn fuel_consumed(&self) -> u64 {
        self.inner.fuel.load(Ordering::Relaxed)
    }

    /// The container's usage (shared with its spec).
    pub fn usage(&self) -> Arc<super::Usage> {
        self.inner.spec.usage.clone()
    }

    /// Requests whose guest is still running.
    pub fn in_flight(&self) -> usize {
        *self.inner.in_flight.borrow()
    }

    /// Stops taking requests and waits (up to `grace`) for in-flight ones to finish;
    /// then kills what is left (those requests end 503 or with a cut body).
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.closing.store(true, Ordering::SeqCst);
        let mut rx = self.inner.in_flight.subscribe();
        if tokio::time::timeout(grace, rx.wait_for(|n| *n == 0)).await.is_ok() {
            return;
        }
        self.inner.kill.send_replace(true);
        // Killed guests stop at their next epoch tick.
        let _ = tokio::time::timeout(Duration::from_secs(2), rx.wait_for(|n| *n == 0)).await;
    }
}

impl Drop for HttpService {
    fn drop(&mut self) {
        self.inner.closing.store(true, Ordering::SeqCst);
        self.inner.kill.send_replace(true);
    }
}

fn log(inner: &Inner, line: &str) {
    inner.out.write(Stream::Stderr, format!("flotilla: {line}\n").as_bytes());
}

/// wasi:http needs an authority: take it from Host, else use localhost.
fn with_authority(mut req: http::Request<BoxBody>) -> http::Request<BoxBody> {
    if req.uri().authority().is_none() && !req.headers().contains_key(http::header::HOST) {
        req.headers_mut().insert(http::header::HOST, http::HeaderValue::from_static("localhost"));
    }
    req
}

fn plain(status: http::StatusCode, text: &str) -> http::Response<BoxBody> {
    let body = http_body_util::Full::new(bytes::Bytes::from(text.to_string()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut r = http::Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}
