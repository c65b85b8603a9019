//! The node's HTTPS server (the kubelet's :10250): container logs, exec over WebSocket
//! (`v5.channel.k8s.io` / `v4.channel.k8s.io`), attach (`attach.rs`, the same framing),
//! port-forward (`portforward/`), the HTTP proxy to pods, and the node's usage figures:
//! `/metrics` (Prometheus) and `/stats/summary` (JSON, read by the API server's
//! metrics.k8s.io), both rendered by `usage.rs`.
//!
//! Invariants: every request needs `Authorization: Bearer <token>` (an empty configured
//! token rejects everything); HTTP/1.1 only (upgrades need it); the proxied request never
//! carries the node's token or hop-by-hop headers; an exec instance is killed when its
//! client goes away or the server shuts down, and the client always gets a channel-3 status
//! before the close frame unless the socket is already gone.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut as _, Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::{SinkExt as _, StreamExt as _};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, frame::coding::CloseCode};

use crate::logs::LogOptions;
use crate::network::Routing;
use crate::portforward::Forward;
use crate::pod_table::{ContainerEntry, PodTable};
use crate::runtime::{BoxBody, ExitReason, ExitStatus, OutputSink, Runtime, Stream};

/// Exec subprotocols we speak, by preference when the client offers several.
pub(crate) const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `shutdown` turns true (a dropped sender means "never"). Then stops
/// accepting, lets open connections finish gracefully and kills running exec sessions.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    token: String,
    pods: Arc<PodTable>,
    runtime: Arc<Runtime>,
    routing: Arc<Routing>,
    shutdown: watch::Receiver<bool>,
) {
    serve_with(listener, tls, token, pods, Arc::new(RuntimeRunner(runtime)), routing, shutdown).await;
}

/// A self-signed serving certificate for `hosts` (plus `localhost`), ALPN http/1.1, and
/// the certificate (DER) clients pin.
pub fn self_signed(hosts: &[IpAddr]) -> anyhow::Result<(Arc<rustls::ServerConfig>, rustls::pki_types::CertificateDer<'static>)> {
    let (config, cert, _) = self_signed_with_key(hosts)?;
    Ok((config, cert))
}

/// [`self_signed`], and the certificate's private key (the node's data plane presents the
/// same certificate, `network/dataplane.rs`).
pub(crate) fn self_signed_with_key(
    hosts: &[IpAddr],
) -> anyhow::Result<(Arc<rustls::ServerConfig>, rustls::pki_types::CertificateDer<'static>, rustls::pki_types::PrivateKeyDer<'static>)> {
    let mut names: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
    names.push("localhost".to_string());
    let key = rcgen::generate_simple_self_signed(names)?;
    let cert = key.cert.der().clone();
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], private.clone_key())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), cert, private))
}

/// Runs exec instances; the server's only link to the runtime (tests inject a fake).
pub(crate) trait ExecRunner: Send + Sync + 'static {
    /// Whether `container` has something to run (a compiled image).
    fn can_exec(&self, container: &ContainerEntry) -> bool;
    /// Runs a fresh instance of `container` with `argv` until it exits or `kill` fires.
    fn exec(
        &self,
        container: &ContainerEntry,
        argv: Vec<String>,
        stdin: Option<mpsc::Receiver<Bytes>>,
        out: Arc<dyn OutputSink>,
        kill: watch::Receiver<bool>,
    ) -> BoxFuture<'static, ExitStatus>;
    /// Images compiled (or loaded from the disk cache) since the node started.
    fn compilations(&self) -> u64 {
        0
    }
}

struct RuntimeRunner(Arc<Runtime>);

impl ExecRunner for RuntimeRunner {
    fn can_exec(&self, container: &ContainerEntry) -> bool {
        container.compiled.is_some()
    }

    fn compilations(&self) -> u64 {
        self.0.compilations()
    }

    fn exec(
        &self,
        container: &ContainerEntry,
        argv: Vec<String>,
        stdin: Option<mpsc::Receiver<Bytes>>,
        out: Arc<dyn OutputSink>,
        kill: watch::Receiver<bool>,
    ) -> BoxFuture<'static, ExitStatus> {
        let runtime = self.0.clone();
        let compiled = container.compiled.clone();
        let mut spec = container.spec.clone();
        spec.argv = argv;
        Box::pin(async move {
            match compiled {
                Some(compiled) => runtime.run(&compiled, &spec, stdin, out, kill).await,
                None => ExitStatus { code: 1, reason: ExitReason::Error, message: "container has no image to run".into(), fuel: 0 },
            }
        })
    }
}

struct Ctx {
    token: String,
    pods: Arc<PodTable>,
    runner: Arc<dyn ExecRunner>,
    /// Opens pod ports for port-forward.
    forward: Arc<dyn Forward>,
    shutdown: watch::Receiver<bool>,
}

/// Resolves when `rx` turns true; never if its sender is dropped first.
pub(crate) async fn shutdown_signal(mut rx: watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The next connection of `listener` (TCP_NODELAY set: small TLS records must not wait
/// for the peer's delayed ACK), or None once `stop` resolves. An accept error (out of
/// descriptors and the like) is logged as `what`'s and retried after a pause instead of
/// spinning.
pub(crate) async fn accept(listener: &TcpListener, stop: &mut std::pin::Pin<&mut impl Future<Output = ()>>, what: &str) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)> {
    loop {
        tokio::select! {
            () = stop.as_mut() => return None,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    return Some((stream, peer));
                }
                Err(error) => {
                    tracing::warn!(%error, "{what} accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

pub(crate) async fn serve_with(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    token: String,
    pods: Arc<PodTable>,
    runner: Arc<dyn ExecRunner>,
    forward: Arc<dyn Forward>,
    shutdown: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let ctx = Arc::new(Ctx { token, pods, runner, forward, shutdown: shutdown.clone() });
    let stop = shutdown_signal(shutdown.clone());
    tokio::pin!(stop);
    while let Some((stream, peer)) = accept(&listener, &mut stop, "node server").await {
        let acceptor = acceptor.clone();
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => return tracing::debug!(%error, %peer, "node server TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "node server TLS handshake timed out"),
            };
            let svc = service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(route(ctx, req).await) }
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(tls), svc).with_upgrades();
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = shutdown_signal(shutdown) => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%error, %peer, "node server connection ended");
            }
        });
    }
}

fn full(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<BoxBody> {
    let body = http_body_util::Full::new(body.into()).map_err(|never| match never {}).boxed_unsync();
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub(crate) fn text(status: StatusCode, msg: impl Into<String>) -> Response<BoxBody> {
    full(status, "text/plain; charset=utf-8", msg.into())
}

/// Compares in time independent of where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorized(token: &str, headers: &HeaderMap) -> bool {
    if token.is_empty() {
        return false;
    }
    let Some(value) = headers.get(header::AUTHORIZATION) else { return false };
    // The scheme is case-insensitive (RFC 9110 §11.1), as the API server reads it.
    let bytes = value.as_bytes();
    if bytes.len() < 7 || !bytes[..7].eq_ignore_ascii_case(b"bearer ") {
        return false;
    }
    constant_time_eq(&bytes[7..], token.as_bytes())
}

/// The node's metrics in Prometheus' text format (`kubectl get --raw
/// /api/v1/nodes/NAME/proxy/metrics`).
fn metrics(ctx: &Ctx) -> String {
    use flotilla_api::prometheus::{Encoder, Kind};
    let mut e = Encoder::new();
    e.family(
        "flotilla_node_compilations_total",
        Kind::Counter,
        "Images compiled (or loaded from the compilation cache) since the node started; one per digest however many pods start it.",
    );
    e.sample("flotilla_node_compilations_total", &[], ctx.runner.compilations() as f64);
    e.family("flotilla_node_pods", Kind::Gauge, "Pods the node holds.");
    e.sample("flotilla_node_pods", &[], ctx.pods.len() as f64);
    crate::usage::metrics(&ctx.pods, &mut e);
    e.finish()
}

async fn route(ctx: Arc<Ctx>, req: Request<Incoming>) -> Response<BoxBody> {
    if !authorized(&ctx.token, req.headers()) {
        return text(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // No segment may climb: `.`/`..`, encoded or not, or an encoded separator.
    if segments.iter().any(|seg| {
        let lower = seg.to_ascii_lowercase();
        let decoded = lower.replace("%2e", ".");
        decoded == "." || decoded == ".." || lower.contains("%2f") || lower.contains("%5c")
    }) {
        return text(StatusCode::BAD_REQUEST, "path segments '.' and '..' are not allowed");
    }
    match segments.as_slice() {
        ["containerLogs", ns, pod, container] if req.method() == Method::GET => container_logs(&ctx, ns, pod, container, req.uri().query()).await,
        ["exec", ns, pod, container] => exec(&ctx, ns, pod, container, req),
        ["attach", ns, pod, container] => crate::attach::serve(&ctx.pods, ns, pod, container, req, ctx.shutdown.clone()),
        ["portForward", ns, pod] => crate::portforward::serve(&ctx.pods, ctx.forward.clone(), ns, pod, req, ctx.shutdown.clone()),
        ["metrics"] if req.method() == Method::GET => full(StatusCode::OK, flotilla_api::prometheus::CONTENT_TYPE, metrics(&ctx)),
        ["stats", "summary"] if req.method() == Method::GET => full(StatusCode::OK, "application/json", crate::usage::summary(&ctx.pods).to_string()),
        ["healthz"] if req.method() == Method::GET => text(StatusCode::OK, "ok"),
        ["proxy", ns, pod, port, ..] => {
            let (ns, pod, port) = (ns.to_string(), pod.to_string(), port.to_string());
            proxy(&ctx, &ns, &pod, &port, req).await
        }
        _ => text(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

/// Decodes `application/x-www-form-urlencoded` (Go's url.ParseQuery: `+` is a space).
pub(crate) fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                    match hex {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    query
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(kv), String::new()),
        })
        .collect()
}

/// Go's strconv.ParseBool, which is how Kubernetes reads boolean query parameters.
pub(crate) use flotilla_api::query::parse_bool;

/// PodLogOptions from the query, validated as the API does; Err is a 400/422 message.
fn log_options(query: Option<&str>) -> Result<LogOptions, (StatusCode, String)> {
    let bad = |name: &str, v: &str| (StatusCode::BAD_REQUEST, format!("invalid value {v:?} for query parameter {name}"));
    let mut opts = LogOptions::default();
    let mut tail: Option<i64> = None;
    let mut since_seconds: Option<i64> = None;
    let mut limit: Option<i64> = None;
    for (k, v) in parse_query(query) {
        match k.as_str() {
            "follow" => opts.follow = parse_bool(&v).ok_or_else(|| bad(&k, &v))?,
            "previous" => opts.previous = parse_bool(&v).ok_or_else(|| bad(&k, &v))?,
            "timestamps" => opts.timestamps = parse_bool(&v).ok_or_else(|| bad(&k, &v))?,
            // "tail" is the kubelet's older spelling; "all" means no limit.
            "tailLines" | "tail" if v == "all" => tail = None,
            "tailLines" | "tail" => tail = Some(v.parse().map_err(|_| bad(&k, &v))?),
            "sinceSeconds" => since_seconds = Some(v.parse().map_err(|_| bad(&k, &v))?),
            "sinceTime" => {
                chrono::DateTime::parse_from_rfc3339(&v).map_err(|_| bad(&k, &v))?;
                opts.since_time = Some(v);
            }
            "limitBytes" => limit = Some(v.parse().map_err(|_| bad(&k, &v))?),
            _ => {}
        }
    }
    let invalid = |m: &str| (StatusCode::UNPROCESSABLE_ENTITY, m.to_string());
    if since_seconds.is_some() && opts.since_time.is_some() {
        return Err(invalid("at most one of `sinceTime` or `sinceSeconds` may be specified"));
    }
    if let Some(t) = tail {
        opts.tail_lines = Some(u64::try_from(t).map_err(|_| invalid("tailLines: Invalid value: must be greater than or equal to 0"))?);
    }
    if let Some(s) = since_seconds {
        opts.since_seconds = Some(u64::try_from(s).ok().filter(|s| *s >= 1).ok_or_else(|| invalid("sinceSeconds: Invalid value: must be greater than 0"))?);
    }
    if let Some(l) = limit {
        opts.limit_bytes = Some(u64::try_from(l).ok().filter(|l| *l >= 1).ok_or_else(|| invalid("limitBytes: Invalid value: must be greater than 0"))?);
    }
    Ok(opts)
}

async fn container_logs(ctx: &Ctx, ns: &str, pod_name: &str, container: &str, query: Option<&str>) -> Response<BoxBody> {
    let opts = match log_options(query) {
        Ok(o) => o,
        Err((status, msg)) => return text(status, msg),
    };
    let Some(pod) = ctx.pods.get(ns, pod_name) else {
        return text(StatusCode::NOT_FOUND, format!("pod {pod_name:?} does not exist"));
    };
    let Some(entry) = pod.container(container) else {
        return text(StatusCode::NOT_FOUND, format!("container {container:?} not found in pod {pod_name:?}"));
    };
    if !entry.logs.has_attempt(opts.previous) {
        let msg = if opts.previous {
            format!("previous terminated container {container:?} in pod {pod_name:?} not found")
        } else {
            format!("container {container:?} in pod {pod_name:?} is waiting to start: ContainerCreating")
        };
        return text(StatusCode::BAD_REQUEST, msg);
    }
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    let logs = entry.logs.clone();
    tokio::spawn(async move {
        if let Err(error) = logs.read(opts, tx).await {
            tracing::debug!(%error, "log read ended with an error");
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|b| b.map(|b| Ok::<_, std::io::Error>(Frame::data(b)))));
    let mut r = Response::new(http_body_util::StreamBody::new(stream).boxed_unsync());
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// Flags of an exec (or attach) request.
#[derive(Clone, Debug, Default)]
pub(crate) struct ExecRequest {
    pub(crate) command: Vec<String>,
    pub(crate) stdin: bool,
    pub(crate) stdout: bool,
    pub(crate) stderr: bool,
    pub(crate) tty: bool,
}

fn exec_request(query: Option<&str>) -> Result<ExecRequest, String> {
    let mut r = ExecRequest::default();
    for (k, v) in parse_query(query) {
        let flag = || parse_bool(&v).ok_or_else(|| format!("invalid value {v:?} for query parameter {k}"));
        match k.as_str() {
            "command" => r.command.push(v.clone()),
            "stdin" => r.stdin = flag()?,
            "stdout" => r.stdout = flag()?,
            "stderr" => r.stderr = flag()?,
            "tty" => r.tty = flag()?,
            _ => {}
        }
    }
    if r.command.is_empty() {
        return Err("you must specify at least one command for the container".into());
    }
    if !(r.stdin || r.stdout || r.stderr) {
        return Err("you must specify at least 1 of stdin, stdout, stderr".into());
    }
    Ok(r)
}

pub(crate) fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Checks the WebSocket upgrade; Ok((Sec-WebSocket-Accept, chosen subprotocol)).
pub(crate) fn websocket_handshake(req: &Request<Incoming>) -> Result<(String, &'static str), Box<Response<BoxBody>>> {
    let h = req.headers();
    if req.method() != Method::GET || !header_has_token(h, header::CONNECTION, "upgrade") || !header_has_token(h, header::UPGRADE, "websocket") {
        return Err(Box::new(text(StatusCode::BAD_REQUEST, "exec and attach need a WebSocket upgrade (subprotocol v5.channel.k8s.io or v4.channel.k8s.io)")));
    }
    if h.get(header::SEC_WEBSOCKET_VERSION).is_none_or(|v| v.as_bytes() != b"13") {
        let mut r = text(StatusCode::UPGRADE_REQUIRED, "unsupported WebSocket version; use 13");
        r.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return Err(Box::new(r));
    }
    let Some(key) = h.get(header::SEC_WEBSOCKET_KEY) else {
        return Err(Box::new(text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key")));
    };
    let offered: Vec<String> = h
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .collect();
    let Some(chosen) = offered.iter().find_map(|p| PROTOCOLS.iter().find(|s| **s == p.as_str())) else {
        return Err(Box::new(text(
            StatusCode::BAD_REQUEST,
            format!("none of the offered subprotocols {offered:?} is supported; supported: {}", PROTOCOLS.join(", ")),
        )));
    };
    Ok((derive_accept_key(key.as_bytes()), chosen))
}

fn exec(ctx: &Arc<Ctx>, ns: &str, pod_name: &str, container: &str, req: Request<Incoming>) -> Response<BoxBody> {
    let params = match exec_request(req.uri().query()) {
        Ok(p) => p,
        Err(msg) => return text(StatusCode::BAD_REQUEST, msg),
    };
    let Some(pod) = ctx.pods.get(ns, pod_name) else {
        return text(StatusCode::NOT_FOUND, format!("pod {pod_name:?} does not exist"));
    };
    let Some(entry) = pod.container(container) else {
        return text(StatusCode::NOT_FOUND, format!("container {container:?} not found in pod {pod_name:?}"));
    };
    if !ctx.runner.can_exec(&entry) {
        return text(StatusCode::BAD_REQUEST, format!("container {container:?} in pod {pod_name:?} is not running"));
    }
    if header_has_token(req.headers(), header::UPGRADE, "SPDY/3.1") {
        return exec_spdy(ctx, entry, params, req);
    }
    let (accept, protocol) = match websocket_handshake(&req) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(error) => return tracing::debug!(%error, "exec upgrade failed"),
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let runner = ctx.runner.clone();
        let command = params.command.clone();
        let run = move |stdin, out, kill| runner.exec(&entry, command, stdin, out, kill);
        exec_session(ws, protocol == PROTOCOLS[0], params, run, ctx.shutdown.clone()).await;
    });
    switching_protocols(protocol, &accept)
}

/// Exec over SPDY/3.1 (`exec_spdy.rs`), for kubectl before 1.30: negotiates
/// `v4.channel.k8s.io` through X-Stream-Protocol-Version, as the kubelet does.
fn exec_spdy(ctx: &Arc<Ctx>, entry: Arc<ContainerEntry>, params: ExecRequest, req: Request<Incoming>) -> Response<BoxBody> {
    let offered: Vec<String> = req
        .headers()
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .collect();
    if !offered.iter().any(|p| p == crate::exec_spdy::PROTOCOL) {
        let mut r = text(
            StatusCode::FORBIDDEN,
            format!("unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts [{}]", crate::exec_spdy::PROTOCOL),
        );
        r.headers_mut().insert("x-accepted-stream-protocol-versions", HeaderValue::from_static(crate::exec_spdy::PROTOCOL));
        return r;
    }
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(error) => return tracing::debug!(%error, "exec upgrade failed"),
        };
        let (incoming, outgoing) = crate::portforward::byte_halves(upgraded);
        let runner = ctx.runner.clone();
        let command = params.command.clone();
        let run = move |stdin, out, kill| runner.exec(&entry, command, stdin, out, kill);
        crate::exec_spdy::run(incoming, outgoing, params, run, ctx.shutdown.clone()).await;
    });
    let mut r = Response::new(http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert("x-stream-protocol-version", HeaderValue::from_static(crate::exec_spdy::PROTOCOL));
    r
}

/// The 101 answer to a WebSocket upgrade with subprotocol `protocol` and the client key's
/// `accept` (exec and attach).
pub(crate) fn switching_protocols(protocol: &'static str, accept: &str) -> Response<BoxBody> {
    let mut r = Response::new(http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
    if let Ok(v) = HeaderValue::from_str(accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

/// What the exec session writes to the socket, in order.
enum Outgoing {
    Data(u8, Bytes),
    Done(ExitStatus),
}

/// Forwards guest output as channel frames (stderr joins stdout on a tty).
struct ExecSink {
    tx: mpsc::UnboundedSender<Outgoing>,
    stdout: Option<u8>,
    stderr: Option<u8>,
}

impl OutputSink for ExecSink {
    fn write(&self, stream: Stream, bytes: &[u8]) {
        let channel = match stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        };
        if let Some(ch) = channel
            && !bytes.is_empty()
        {
            let _ = self.tx.send(Outgoing::Data(ch, Bytes::copy_from_slice(bytes)));
        }
    }
}

/// The channel-3 status kubectl turns into its exit code.
pub(crate) fn exec_status(command: &[String], status: &ExitStatus) -> String {
    let v = if status.code == 0 {
        serde_json::json!({"metadata": {}, "status": "Success"})
    } else {
        let code = status.code;
        serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {code}", command.join(" ")),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        })
    };
    v.to_string()
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut b = BytesMut::with_capacity(data.len() + 1);
    b.put_u8(channel);
    b.put_slice(data);
    Message::Binary(b.freeze())
}

/// Drives one exec over an established WebSocket: stdin frames in, output frames out,
/// the status on channel 3, then a close frame.
pub(crate) async fn exec_session<S, F>(ws: WebSocketStream<S>, v5: bool, req: ExecRequest, run: F, shutdown: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: FnOnce(Option<mpsc::Receiver<Bytes>>, Arc<dyn OutputSink>, watch::Receiver<bool>) -> BoxFuture<'static, ExitStatus>,
{
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (kill_tx, kill_rx) = watch::channel(false);
    let kill_tx = Arc::new(kill_tx);
    let (stdin_tx, stdin_rx) = if req.stdin {
        let (t, r) = mpsc::channel::<Bytes>(16);
        (Some(t), Some(r))
    } else {
        (None, None)
    };
    let reader = {
        let kill_tx = kill_tx.clone();
        tokio::spawn(async move {
            let mut stdin_tx = stdin_tx;
            while let Some(msg) = ws_rx.next().await {
                match msg {
                    Ok(Message::Binary(b)) => match b.first() {
                        Some(0) => {
                            if let Some(tx) = &stdin_tx
                                && tx.send(b.slice(1..)).await.is_err()
                            {
                                stdin_tx = None;
                            }
                        }
                        // v5: [255, channel] closes that channel; only stdin is ours to close.
                        Some(255) if v5 && b.get(1) == Some(&0) => stdin_tx = None,
                        _ => {}
                    },
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            // The client is gone (or closed): nobody will read the result.
            let _ = kill_tx.send(true);
        })
    };
    let (out_tx, mut out_rx) = mpsc::unbounded_channel();
    let stdout = req.stdout.then_some(1u8);
    let stderr = if req.tty { stdout } else { req.stderr.then_some(2u8) };
    let sink: Arc<dyn OutputSink> = Arc::new(ExecSink { tx: out_tx.clone(), stdout, stderr });
    let instance = run(stdin_rx, sink, kill_rx);
    let runner = tokio::spawn(async move {
        let status = instance.await;
        let _ = out_tx.send(Outgoing::Done(status));
    });
    let stop = shutdown_signal(shutdown);
    tokio::pin!(stop);
    let mut connected = true;
    let mut stopping = false;
    loop {
        let next = tokio::select! {
            next = out_rx.recv() => next,
            () = &mut stop, if !stopping => {
                stopping = true;
                let _ = kill_tx.send(true);
                continue;
            }
        };
        match next {
            Some(Outgoing::Data(ch, data)) => {
                if connected && ws_tx.send(frame(ch, &data)).await.is_err() {
                    connected = false;
                    let _ = kill_tx.send(true);
                }
            }
            Some(Outgoing::Done(status)) => {
                if connected {
                    // A trap or runtime failure says why on stderr, as `wasmtime run` does.
                    if status.code != 0 && !status.message.is_empty() && status.reason != ExitReason::Killed
                        && let Some(ch) = stderr
                    {
                        let _ = ws_tx.send(frame(ch, format!("{}\n", status.message).as_bytes())).await;
                    }
                    let json = exec_status(&req.command, &status);
                    let _ = ws_tx.send(frame(3, json.as_bytes())).await;
                    let close = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                    let _ = ws_tx.send(Message::Close(Some(close))).await;
                }
                break;
            }
            None => {
                // The instance task panicked before reporting.
                if connected {
                    let status = serde_json::json!({"metadata": {}, "status": "Failure", "message": "exec failed: internal error", "reason": "InternalError", "code": 500});
                    let _ = ws_tx.send(frame(3, status.to_string().as_bytes())).await;
                    let _ = ws_tx.send(Message::Close(None)).await;
                }
                break;
            }
        }
    }
    let _ = runner.await;
    // Give the client a moment to answer our close frame.
    let abort = reader.abort_handle();
    if tokio::time::timeout(Duration::from_secs(2), reader).await.is_err() {
        abort.abort();
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) a proxy must not forward.
const HOP_BY_HOP: [&str; 8] =
    ["connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding"];

/// The pod-side URI of `/proxy/{ns}/{pod}/{port}{rest}?{query}`: `{rest}` (at least `/`)
/// with the query kept as sent.
fn proxy_target(path: &str, query: Option<&str>) -> String {
    let rest = path.trim_start_matches('/').splitn(5, '/').nth(4).unwrap_or("");
    let mut uri = format!("/{rest}");
    if let Some(q) = query {
        uri.push('?');
        uri.push_str(q);
    }
    uri
}

async fn proxy(ctx: &Ctx, ns: &str, pod_name: &str, port: &str, req: Request<Incoming>) -> Response<BoxBody> {
    let Ok(port) = port.parse::<u16>() else {
        return text(StatusCode::BAD_REQUEST, format!("invalid port {port:?}"));
    };
    let Some(pod) = ctx.pods.get(ns, pod_name) else {
        return text(StatusCode::NOT_FOUND, format!("pod {pod_name:?} does not exist"));
    };
    let Some(service) = pod.http_for_port(port) else {
        return text(StatusCode::SERVICE_UNAVAILABLE, format!("no running HTTP container in pod {pod_name:?} serves port {port}"));
    };
    let (mut parts, body) = req.into_parts();
    let target = proxy_target(parts.uri.path(), parts.uri.query());
    parts.uri = match target.parse() {
        Ok(u) => u,
        Err(_) => return text(StatusCode::BAD_REQUEST, "invalid proxy path"),
    };
    // Headers named in Connection are hop-by-hop too.
    let named: Vec<String> = parts
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    for name in HOP_BY_HOP.iter().copied().chain(named.iter().map(String::as_str)).chain(["authorization", "upgrade"]) {
        parts.headers.remove(name);
    }
    let body = body.map_err(std::io::Error::other).boxed_unsync();
    let mut response = service.handle(Request::from_parts(parts, body)).await;
    for name in HOP_BY_HOP {
        response.headers_mut().remove(name);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::RwLock;
    use std::sync::atomic::{AtomicBool, Ordering};

    use http_body_util::Empty;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

    use super::*;
    use crate::logs::ContainerLogs;
    use crate::pod_table::PodEntry;
    use crate::runtime::InstanceSpec;

    const TOKEN: &str = "s3cret";
    const WAIT: Duration = Duration::from_secs(10);

    /// Echoes its argv and stdin; `exit=N` as the last argument sets the exit code;
    /// `hang` waits for the kill signal (and records that it came).
    struct FakeRunner {
        killed: Arc<AtomicBool>,
    }

    impl ExecRunner for FakeRunner {
        fn can_exec(&self, container: &ContainerEntry) -> bool {
            container.name != "not-runnable"
        }

        fn exec(
            &self,
            _container: &ContainerEntry,
            argv: Vec<String>,
            stdin: Option<mpsc::Receiver<Bytes>>,
            out: Arc<dyn OutputSink>,
            mut kill: watch::Receiver<bool>,
        ) -> BoxFuture<'static, ExitStatus> {
            let killed = self.killed.clone();
            Box::pin(async move {
                out.write(Stream::Stdout, format!("argv: {}\n", argv.join(" ")).as_bytes());
                out.write(Stream::Stderr, b"to stderr\n");
                if argv.first().is_some_and(|a| a == "hang") {
                    let _ = kill.wait_for(|k| *k).await;
                    killed.store(true, Ordering::SeqCst);
                    return ExitStatus { code: 137, reason: ExitReason::Killed, message: String::new(), fuel: 0 };
                }
                if let Some(mut stdin) = stdin {
                    while let Some(chunk) = stdin.recv().await {
                        out.write(Stream::Stdout, &[b"in: ".as_slice(), &chunk, b"\n"].concat());
                    }
                    out.write(Stream::Stdout, b"stdin closed\n");
                }
                let code = argv.last().and_then(|a| a.strip_prefix("exit=")).and_then(|n| n.parse().ok()).unwrap_or(0);
                let (reason, message) = if code == 0 { (ExitReason::Completed, String::new()) } else { (ExitReason::Error, "exited".into()) };
                ExitStatus { code, reason, message, fuel: 0 }
            })
        }
    }

    struct Harness {
        addr: SocketAddr,
        cert: rustls::pki_types::CertificateDer<'static>,
        pods: Arc<PodTable>,
        killed: Arc<AtomicBool>,
        stop: watch::Sender<bool>,
        _dir: tempfile::TempDir,
    }

    fn container(name: &str, logs: Arc<ContainerLogs>) -> Arc<ContainerEntry> {
        Arc::new(ContainerEntry { name: name.into(), compiled: None, spec: InstanceSpec::default(), http: None, ports: vec![8080], logs, stdin: None })
    }

    /// A server on 127.0.0.1:0 with pod default/p holding containers `c` (logs written
    /// in one finished attempt and a running one) and `not-runnable`.
    async fn start() -> Harness {
        let killed = Arc::new(AtomicBool::new(false));
        start_with(Arc::new(FakeRunner { killed: killed.clone() }), killed, None).await
    }

    async fn start_with(runner: Arc<dyn ExecRunner>, killed: Arc<AtomicBool>, extra: Option<PodEntry>) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = ContainerLogs::open(dir.path().join("c"), 1 << 20).expect("logs");
        logs.start_attempt();
        logs.sink().write(Stream::Stdout, b"first run\n");
        logs.finish_attempt();
        logs.start_attempt();
        logs.sink().write(Stream::Stdout, b"one\ntwo\nthree\n");
        let other = ContainerLogs::open(dir.path().join("n"), 1 << 20).expect("logs");
        let pod = PodEntry {
            uid: "uid-1".into(),
            namespace: "default".into(),
            name: "p".into(),
            containers: RwLock::new(vec![container("c", logs), container("not-runnable", other)]),
        };
        let pods = Arc::new(PodTable::default());
        pods.insert(Arc::new(pod));
        if let Some(extra) = extra {
            pods.insert(Arc::new(extra));
        }
        let (tls, cert) = self_signed(&["127.0.0.1".parse().expect("ip")]).expect("tls");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, shutdown) = watch::channel(false);
        let routing = Routing::new("node-1".into(), pods.clone(), crate::network::Egress::Deny);
        tokio::spawn(serve_with(listener, tls, TOKEN.into(), pods.clone(), runner, routing, shutdown));
        Harness { addr, cert, pods, killed, stop, _dir: dir }
    }

    impl Harness {
        fn logs(&self) -> Arc<ContainerLogs> {
            self.pods.get("default", "p").and_then(|p| p.container("c")).expect("container c").logs.clone()
        }

        /// TLS to the server, verifying its certificate against the one it generated.
        async fn tls(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.cert.clone()).expect("root");
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            let tcp = tokio::net::TcpStream::connect(self.addr).await.expect("connect");
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
            tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.expect("tls handshake")
        }

        async fn send(&self, req: Request<BoxBody>) -> Response<Incoming> {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(self.tls().await)).await.expect("http handshake");
            tokio::spawn(conn);
            tokio::time::timeout(WAIT, sender.send_request(req)).await.expect("timely").expect("response")
        }

        async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, HeaderMap, String) {
            let mut req = Request::get(path);
            if let Some(t) = token {
                req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
            }
            let req = req.body(Empty::new().map_err(|never| match never {}).boxed_unsync()).expect("request");
            let resp = self.send(req).await;
            let (parts, body) = resp.into_parts();
            let body = tokio::time::timeout(WAIT, body.collect()).await.expect("timely").expect("body").to_bytes();
            (parts.status, parts.headers, String::from_utf8_lossy(&body).into_owned())
        }

        async fn ws(&self, path: &str, protocols: &str) -> Result<(WebSocketStream<impl AsyncRead + AsyncWrite + Unpin>, http::Response<Option<Vec<u8>>>), tokio_tungstenite::tungstenite::Error> {
            self.ws_with(path, protocols, Some(TOKEN)).await
        }

        async fn ws_with(
            &self,
            path: &str,
            protocols: &str,
            token: Option<&str>,
        ) -> Result<(WebSocketStream<impl AsyncRead + AsyncWrite + Unpin>, http::Response<Option<Vec<u8>>>), tokio_tungstenite::tungstenite::Error> {
            let mut req = format!("wss://{}{path}", self.addr).into_client_request().expect("ws request");
            if let Some(t) = token {
                req.headers_mut().insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {t}")).expect("header"));
            }
            req.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_str(protocols).expect("header"));
            tokio_tungstenite::client_async(req, self.tls().await).await
        }
    }

    /// Reads frames until the server closes: (channel, payload) in order.
    async fn frames<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Vec<(u8, String)> {
        let mut got = Vec::new();
        tokio::time::timeout(WAIT, async {
            while let Some(msg) = ws.next().await {
                match msg.expect("ws message") {
                    Message::Binary(b) if !b.is_empty() => got.push((b[0], String::from_utf8_lossy(&b[1..]).into_owned())),
                    Message::Close(_) => break,
                    _ => {}
                }
            }
        })
        .await
        .expect("session ends");
        got
    }

    #[tokio::test]
    async fn metrics_and_summary_show_every_container() {
        let h = start().await;
        let pod = h.pods.get("default", "p").expect("pod");
        pod.container("c").expect("c").spec.usage.set_restarts(3);
        for path in ["/metrics", "/stats/summary"] {
            assert_eq!(h.get(path, None).await.0, StatusCode::UNAUTHORIZED);
        }
        let (status, headers, body) = h.get("/metrics", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "text/plain; version=0.0.4; charset=utf-8");
        assert!(body.contains("# TYPE container_cpu_usage_seconds_total counter\n"), "{body}");
        assert!(body.contains("flotilla_container_restarts_total{namespace=\"default\",pod=\"p\",container=\"c\"} 3\n"), "{body}");
        assert!(body.contains("container_memory_working_set_bytes{namespace=\"default\",pod=\"p\",container=\"not-runnable\"} 0\n"), "{body}");
        let (status, _, body) = h.get("/stats/summary", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["pods"][0]["podRef"], serde_json::json!({"namespace": "default", "name": "p", "uid": "uid-1"}));
        let names: Vec<&str> = v["pods"][0]["containers"].as_array().expect("containers").iter().filter_map(|c| c["name"].as_str()).collect();
        assert_eq!(names, ["c", "not-runnable"]);
        assert_eq!(v["node"]["cpu"]["usageNanoCores"], 0);
    }

    #[tokio::test]
    async fn requires_the_bearer_token() {
        let h = start().await;
        for token in [None, Some("wrong"), Some("s3cre"), Some("s3cret2"), Some("")] {
            let (status, _, body) = h.get("/containerLogs/default/p/c", token).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "token {token:?}");
            assert_eq!(body, "Unauthorized");
        }
        let (status, _, _) = h.get("/proxy/default/p/8080/", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        match h.ws_with("/exec/default/p/c?command=x&stdout=true", "v5.channel.k8s.io", Some("wrong")).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), StatusCode::UNAUTHORIZED),
            other => panic!("expected a 401, got {:?}", other.map(|r| r.1.status())),
        }
        assert!(!h.killed.load(Ordering::SeqCst));
        let (status, _, _) = h.get("/containerLogs/default/p/c", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[test]
    fn empty_token_rejects_everything() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert!(!authorized("", &headers));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        assert!(authorized("t", &headers));
        assert!(!authorized("T", &headers));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer t"));
        assert!(authorized("t", &headers), "the scheme is case-insensitive");
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic t"));
        assert!(!authorized("t", &headers));
    }

    #[test]
    fn certificate_names_the_hosts() {
        let (config, _) = self_signed(&["10.1.2.3".parse().expect("ip"), "::1".parse().expect("ip")]).expect("tls");
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(self_signed(&[]).is_ok());
    }

    #[tokio::test]
    async fn container_logs_with_options() {
        let h = start().await;
        let (status, headers, body) = h.get("/containerLogs/default/p/c", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()), Some(&b"text/plain"[..]));
        assert_eq!(body, "one\ntwo\nthree\n");
        let (_, _, body) = h.get("/containerLogs/default/p/c?tailLines=2", Some(TOKEN)).await;
        assert_eq!(body, "two\nthree\n");
        let (_, _, body) = h.get("/containerLogs/default/p/c?limitBytes=6", Some(TOKEN)).await;
        assert_eq!(body, "one\ntw");
        let (_, _, body) = h.get("/containerLogs/default/p/c?previous=true", Some(TOKEN)).await;
        assert_eq!(body, "first run\n");
        let (_, _, body) = h.get("/containerLogs/default/p/c?timestamps=true&tailLines=1", Some(TOKEN)).await;
        let (ts, line) = body.split_once(' ').expect("timestamp prefix");
        assert_eq!(line, "three\n");
        assert_eq!(ts.len(), "2026-01-01T00:00:00.000000000Z".len(), "{ts}");
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
        let (_, _, body) = h.get("/containerLogs/default/p/c?sinceTime=2999-01-01T00:00:00Z", Some(TOKEN)).await;
        assert_eq!(body, "");
        let (_, _, body) = h.get("/containerLogs/default/p/c?sinceSeconds=3600", Some(TOKEN)).await;
        assert_eq!(body, "one\ntwo\nthree\n");
    }

    #[tokio::test]
    async fn container_logs_errors() {
        let h = start().await;
        let cases = [
            ("/containerLogs/default/nope/c", StatusCode::NOT_FOUND, "pod \"nope\" does not exist"),
            ("/containerLogs/default/p/x", StatusCode::NOT_FOUND, "container \"x\" not found in pod \"p\""),
            ("/containerLogs/other/p/c", StatusCode::NOT_FOUND, "pod \"p\" does not exist"),
            (
                "/containerLogs/default/p/not-runnable?previous=true",
                StatusCode::BAD_REQUEST,
                "previous terminated container \"not-runnable\" in pod \"p\" not found",
            ),
            (
                "/containerLogs/default/p/not-runnable",
                StatusCode::BAD_REQUEST,
                "container \"not-runnable\" in pod \"p\" is waiting to start: ContainerCreating",
            ),
            ("/containerLogs/default/p/c?tailLines=x", StatusCode::BAD_REQUEST, "invalid value \"x\" for query parameter tailLines"),
            ("/containerLogs/default/p/c?tailLines=-1", StatusCode::UNPROCESSABLE_ENTITY, "tailLines: Invalid value: must be greater than or equal to 0"),
            (
                "/containerLogs/default/p/c?sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z",
                StatusCode::UNPROCESSABLE_ENTITY,
                "at most one of `sinceTime` or `sinceSeconds` may be specified",
            ),
            ("/containerLogs/default/p/c?limitBytes=0", StatusCode::UNPROCESSABLE_ENTITY, "limitBytes: Invalid value: must be greater than 0"),
            ("/nothing/here", StatusCode::NOT_FOUND, "404 page not found"),
        ];
        for (path, want_status, want_body) in cases {
            let (status, _, body) = h.get(path, Some(TOKEN)).await;
            assert_eq!((status, body.as_str()), (want_status, want_body), "{path}");
        }
    }

    #[tokio::test]
    async fn follow_streams_chunked_until_the_attempt_ends() {
        let h = start().await;
        let req = Request::get("/containerLogs/default/p/c?follow=true&tailLines=1")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Empty::new().map_err(|never| match never {}).boxed_unsync())
            .expect("request");
        let resp = h.send(req).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers().get(header::TRANSFER_ENCODING).map(|v| v.as_bytes()), Some(&b"chunked"[..]));
        let mut body = resp.into_body();
        let mut next = async || -> Option<String> {
            let frame = tokio::time::timeout(WAIT, body.frame()).await.expect("timely")?.expect("frame");
            Some(String::from_utf8_lossy(&frame.into_data().expect("data")).into_owned())
        };
        assert_eq!(next().await.as_deref(), Some("three\n"));
        let logs = h.logs();
        logs.sink().write(Stream::Stderr, b"four\n");
        assert_eq!(next().await.as_deref(), Some("four\n"));
        logs.finish_attempt();
        assert_eq!(next().await, None, "body ends with the attempt");
    }

    #[tokio::test]
    async fn exec_success_streams_output_then_status() {
        let h = start().await;
        let (mut ws, resp) = h.ws("/exec/default/p/c?command=echo&command=a+b%2Fc&stdout=true&stderr=true", "v5.channel.k8s.io").await.expect("upgrade");
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(resp.headers().get(header::SEC_WEBSOCKET_PROTOCOL).map(|v| v.as_bytes()), Some(&b"v5.channel.k8s.io"[..]));
        let got = frames(&mut ws).await;
        assert_eq!(
            got,
            vec![
                (1, "argv: echo a b/c\n".to_string()),
                (2, "to stderr\n".to_string()),
                (3, r#"{"metadata":{},"status":"Success"}"#.to_string()),
            ]
        );
    }

    #[tokio::test]
    async fn exec_nonzero_exit_is_reported_as_kubectl_expects() {
        let h = start().await;
        let (mut ws, _) = h.ws("/exec/default/p/c?command=sh&command=-c&command=exit=3&stdout=true", "v5.channel.k8s.io").await.expect("upgrade");
        let got = frames(&mut ws).await;
        assert_eq!(got[0], (1, "argv: sh -c exit=3\n".to_string()));
        // stderr=false: nothing on channel 2.
        assert!(got.iter().all(|(ch, _)| *ch != 2), "{got:?}");
        let status = &got.last().expect("status").1;
        assert_eq!(got.last().map(|f| f.0), Some(3));
        assert_eq!(
            status,
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit=3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
    }

    #[tokio::test]
    async fn exec_stdin_and_v5_close() {
        let h = start().await;
        let (mut ws, _) = h.ws("/exec/default/p/c?command=cat&stdin=true&stdout=true&stderr=true", "v5.channel.k8s.io").await.expect("upgrade");
        ws.send(Message::Binary(Bytes::from_static(b"\x00hello"))).await.expect("send");
        ws.send(Message::Binary(Bytes::from_static(b"\x00world"))).await.expect("send");
        ws.send(Message::Binary(Bytes::from_static(&[255, 0]))).await.expect("close stdin");
        let got = frames(&mut ws).await;
        let stdout: String = got.iter().filter(|(ch, _)| *ch == 1).map(|(_, s)| s.as_str()).collect();
        assert_eq!(stdout, "argv: cat\nin: hello\nin: world\nstdin closed\n");
        assert_eq!(got.last(), Some(&(3, r#"{"metadata":{},"status":"Success"}"#.to_string())));
    }

    #[tokio::test]
    async fn exec_tty_joins_stderr_to_stdout() {
        let h = start().await;
        let (mut ws, _) = h.ws("/exec/default/p/c?command=x&stdout=true&tty=true", "v5.channel.k8s.io").await.expect("upgrade");
        let got = frames(&mut ws).await;
        assert_eq!(got[..2], [(1, "argv: x\n".to_string()), (1, "to stderr\n".to_string())]);
    }

    #[tokio::test]
    async fn exec_negotiates_v4_and_rejects_others() {
        let h = start().await;
        let (mut ws, resp) = h.ws("/exec/default/p/c?command=x&stdout=true", "v4.channel.k8s.io").await.expect("upgrade");
        assert_eq!(resp.headers().get(header::SEC_WEBSOCKET_PROTOCOL).map(|v| v.as_bytes()), Some(&b"v4.channel.k8s.io"[..]));
        assert_eq!(frames(&mut ws).await.last().map(|f| f.0), Some(3));
        // kubectl lists its preference first; we take the first we speak.
        let (_, resp) = h.ws("/exec/default/p/c?command=x&stdout=true", "v5.channel.k8s.io, v4.channel.k8s.io").await.expect("upgrade");
        assert_eq!(resp.headers().get(header::SEC_WEBSOCKET_PROTOCOL).map(|v| v.as_bytes()), Some(&b"v5.channel.k8s.io"[..]));
        match h.ws("/exec/default/p/c?command=x&stdout=true", "channel.k8s.io").await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), StatusCode::BAD_REQUEST),
            other => panic!("expected a 400, got {:?}", other.map(|r| r.1.status())),
        }
        // No upgrade at all (e.g. SPDY's POST): 400 with a message.
        let (status, _, body) = h.get("/exec/default/p/c?command=x&stdout=true", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("WebSocket"), "{body}");
    }

    #[tokio::test]
    async fn exec_request_errors() {
        let h = start().await;
        let cases = [
            ("/exec/default/p/c?stdout=true", StatusCode::BAD_REQUEST),
            ("/exec/default/p/c?command=x", StatusCode::BAD_REQUEST),
            ("/exec/default/nope/c?command=x&stdout=true", StatusCode::NOT_FOUND),
            ("/exec/default/p/zz?command=x&stdout=true", StatusCode::NOT_FOUND),
            ("/exec/default/p/not-runnable?command=x&stdout=true", StatusCode::BAD_REQUEST),
        ];
        for (path, want) in cases {
            match h.ws(path, "v5.channel.k8s.io").await {
                Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), want, "{path}"),
                other => panic!("{path}: expected {want}, got {:?}", other.map(|r| r.1.status())),
            }
        }
    }

    #[tokio::test]
    async fn attach_streams_live_output_until_the_container_ends() {
        let h = start().await;
        let (mut ws, resp) = h.ws("/attach/default/p/c?stdout=true&stderr=true", "v5.channel.k8s.io").await.expect("upgrade");
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        let logs = h.logs();
        // Output written before attaching ("one two three") is not replayed.
        logs.sink().write(Stream::Stdout, b"live ");
        logs.sink().write(Stream::Stderr, b"oops\n");
        logs.sink().write(Stream::Stdout, b"line\n");
        logs.finish_attempt();
        let got = frames(&mut ws).await;
        assert_eq!(
            got,
            vec![
                (1, "live ".to_string()),
                (2, "oops\n".to_string()),
                (1, "line\n".to_string()),
                (3, r#"{"metadata":{},"status":"Success"}"#.to_string()),
            ]
        );
        // The attempt is over: nothing runs to attach to.
        match h.ws("/attach/default/p/c?stdout=true", "v5.channel.k8s.io").await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), StatusCode::BAD_REQUEST),
            other => panic!("expected a 400, got {:?}", other.map(|r| r.1.status())),
        }
    }

    #[tokio::test]
    async fn attach_tty_joins_stderr_and_bad_requests_are_refused() {
        let h = start().await;
        let (mut ws, _) = h.ws("/attach/default/p/c?stdout=true&tty=true&stdin=true", "v5.channel.k8s.io").await.expect("upgrade");
        ws.send(Message::Binary(Bytes::from_static(b"\x00ignored"))).await.expect("stdin");
        h.logs().sink().write(Stream::Stderr, b"to stderr\n");
        h.logs().finish_attempt();
        assert_eq!(frames(&mut ws).await[0], (1, "to stderr\n".to_string()));
        let cases = [
            ("/attach/default/p/c", StatusCode::BAD_REQUEST),
            ("/attach/default/p/c?stdout=maybe", StatusCode::BAD_REQUEST),
            ("/attach/default/nope/c?stdout=true", StatusCode::NOT_FOUND),
            ("/attach/default/p/zz?stdout=true", StatusCode::NOT_FOUND),
            ("/attach/default/p/not-runnable?stdout=true", StatusCode::BAD_REQUEST),
        ];
        for (path, want) in cases {
            match h.ws(path, "v5.channel.k8s.io").await {
                Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), want, "{path}"),
                other => panic!("{path}: expected {want}, got {:?}", other.map(|r| r.1.status())),
            }
        }
    }

    /// A pod default/s whose container `in` runs with a stdin pipe (`once`: stdinOnce),
    /// and the reading end its running attempt got.
    async fn start_with_stdin(once: bool) -> (Harness, mpsc::Receiver<Bytes>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = ContainerLogs::open(dir.path().join("in"), 1 << 20).expect("logs");
        logs.start_attempt();
        let pipe = Arc::new(crate::pod_table::StdinPipe::new(once));
        let guest_stdin = pipe.open();
        let entry = ContainerEntry { name: "in".into(), compiled: None, spec: InstanceSpec::default(), http: None, ports: vec![], logs, stdin: Some(pipe) };
        let pod = PodEntry { uid: "uid-3".into(), namespace: "default".into(), name: "s".into(), containers: RwLock::new(vec![Arc::new(entry)]) };
        let killed = Arc::new(AtomicBool::new(false));
        let h = start_with(Arc::new(FakeRunner { killed: killed.clone() }), killed, Some(pod)).await;
        (h, guest_stdin, dir)
    }

    #[tokio::test]
    async fn attach_stdin_reaches_the_container_and_stays_open_without_stdin_once() {
        let (h, mut guest, _dir) = start_with_stdin(false).await;
        let (mut ws, _) = h.ws("/attach/default/s/in?stdin=true&stdout=true", "v5.channel.k8s.io").await.expect("upgrade");
        ws.send(Message::Binary(Bytes::from_static(b"\x00hello\n"))).await.expect("stdin");
        let got = tokio::time::timeout(WAIT, guest.recv()).await.expect("timely");
        assert_eq!(got.as_deref(), Some(&b"hello\n"[..]));
        ws.send(Message::Binary(Bytes::from_static(&[255, 0]))).await.expect("close stdin");
        drop(ws);
        // Without stdinOnce the container's stdin outlives the client's.
        assert!(tokio::time::timeout(Duration::from_millis(300), guest.recv()).await.is_err(), "stdin must stay open");
        // A second attach writes to the same attempt's stdin.
        let (mut ws, _) = h.ws("/attach/default/s/in?stdin=true&stdout=true", "v5.channel.k8s.io").await.expect("upgrade");
        ws.send(Message::Binary(Bytes::from_static(b"\x00again"))).await.expect("stdin");
        let got = tokio::time::timeout(WAIT, guest.recv()).await.expect("timely");
        assert_eq!(got.as_deref(), Some(&b"again"[..]));
    }

    #[tokio::test]
    async fn attach_stdin_once_closes_the_containers_stdin() {
        let (h, mut guest, _dir) = start_with_stdin(true).await;
        // stdin=false: the client's bytes are not the container's.
        let (mut ws, _) = h.ws("/attach/default/s/in?stdout=true", "v5.channel.k8s.io").await.expect("upgrade");
        ws.send(Message::Binary(Bytes::from_static(b"\x00dropped"))).await.expect("send");
        drop(ws);
        assert!(tokio::time::timeout(Duration::from_millis(300), guest.recv()).await.is_err(), "nothing written, stdin open");
        let (mut ws, _) = h.ws("/attach/default/s/in?stdin=true&stdout=true", "v5.channel.k8s.io").await.expect("upgrade");
        ws.send(Message::Binary(Bytes::from_static(b"\x00last"))).await.expect("stdin");
        ws.send(Message::Binary(Bytes::from_static(&[255, 0]))).await.expect("close stdin");
        let got = tokio::time::timeout(WAIT, guest.recv()).await.expect("timely");
        assert_eq!(got.as_deref(), Some(&b"last"[..]));
        assert_eq!(tokio::time::timeout(WAIT, guest.recv()).await.expect("timely"), None, "EOF after the first stdin attach");
    }

    /// Polls `cond` every 10 ms until it holds; panics naming `what` after WAIT.
    async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, mut cond: impl FnMut() -> F) {
        tokio::time::timeout(WAIT, async {
            while !cond().await {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{what}"));
    }

    #[tokio::test]
    async fn exec_is_killed_when_the_client_goes_away() {
        let h = start().await;
        let (mut ws, _) = h.ws("/exec/default/p/c?command=hang&stdout=true", "v5.channel.k8s.io").await.expect("upgrade");
        let first = tokio::time::timeout(WAIT, ws.next()).await.expect("timely");
        assert!(matches!(first, Some(Ok(Message::Binary(_)))), "{first:?}");
        drop(ws);
        wait_until("instance killed", || async { h.killed.load(Ordering::SeqCst) }).await;
    }

    #[tokio::test]
    async fn shutdown_kills_exec_and_stops_accepting() {
        let h = start().await;
        let (mut ws, _) = h.ws("/exec/default/p/c?command=hang&stdout=true", "v5.channel.k8s.io").await.expect("upgrade");
        let _ = tokio::time::timeout(WAIT, ws.next()).await.expect("timely");
        h.stop.send(true).expect("stop");
        let got = frames(&mut ws).await;
        assert!(h.killed.load(Ordering::SeqCst));
        assert!(got.last().is_some_and(|(ch, s)| *ch == 3 && s.contains("exit code 137")), "{got:?}");
        wait_until("listener closed", || async { tokio::net::TcpStream::connect(h.addr).await.is_err() }).await;
    }

    #[tokio::test]
    async fn proxy_without_http_container_is_503() {
        let h = start().await;
        let (status, _, body) = h.get("/proxy/default/p/8080/hello?x=1", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "no running HTTP container in pod \"p\" serves port 8080");
        let (status, _, _) = h.get("/proxy/default/nope/8080/", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = h.get("/proxy/default/p/http/", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    /// A real runtime with pod default/real: `cmd` (hello-cmd) and `web` (hello-http on
    /// port 8080). None while the runtime is still the placeholder.
    async fn start_real() -> Option<(Harness, tempfile::TempDir)> {
        use sha2::Digest as _;
        let cache = tempfile::tempdir().expect("tempdir");
        let runtime = Arc::new(
            Runtime::new(crate::runtime::RuntimeConfig { cache_dir: cache.path().to_path_buf(), max_instances: 16 }).expect("runtime"),
        );
        let load = |name: &str| {
            let path = format!("{}/../target/guests/{name}.wasm", env!("CARGO_MANIFEST_DIR"));
            let wasm = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}; run scripts/build-guests.sh"));
            let digest = format!("sha256:{:x}", sha2::Sha256::digest(&wasm));
            runtime.prepare(&digest, &wasm)
        };
        let cmd = match load("hello-cmd") {
            Ok(c) => c,
            Err(e) if e.to_string().contains("not implemented") => {
                eprintln!("runtime is still the placeholder; skipping");
                return None;
            }
            Err(e) => panic!("prepare hello-cmd: {e}"),
        };
        let web = load("hello-http").expect("prepare hello-http");
        let logs_dir = cache.path().join("logs");
        let logs = |name: &str| ContainerLogs::open(logs_dir.join(name), 1 << 20).expect("logs");
        let web_logs = logs("web");
        web_logs.start_attempt();
        let spec = InstanceSpec { env: vec![("GREETING".into(), "hi".into())], ..InstanceSpec::default() };
        let http = runtime.serve(&web, spec.clone(), web_logs.sink()).expect("serve");
        let pod = PodEntry {
            uid: "uid-2".into(),
            namespace: "default".into(),
            name: "real".into(),
            containers: RwLock::new(vec![
                Arc::new(ContainerEntry { name: "cmd".into(), compiled: Some(cmd), spec: spec.clone(), http: None, ports: vec![], logs: logs("cmd"), stdin: None }),
                Arc::new(ContainerEntry { name: "web".into(), compiled: Some(web), spec, http: Some(Arc::new(http)), ports: vec![8080], logs: web_logs, stdin: None }),
            ]),
        };
        let h = start_with(Arc::new(RuntimeRunner(runtime)), Arc::new(AtomicBool::new(false)), Some(pod)).await;
        Some((h, cache))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn real_exec_runs_the_component_with_argv_and_env() {
        let Some((h, _cache)) = start_real().await else { return };
        let path = "/exec/default/real/cmd?command=hello-cmd&command=--exit&command=3&stdout=true&stderr=true";
        let (mut ws, _) = h.ws(path, "v5.channel.k8s.io").await.expect("upgrade");
        let got = frames(&mut ws).await;
        let stdout: String = got.iter().filter(|(ch, _)| *ch == 1).map(|(_, s)| s.as_str()).collect();
        let stderr: String = got.iter().filter(|(ch, _)| *ch == 2).map(|(_, s)| s.as_str()).collect();
        assert!(stdout.contains("hello from hello-cmd"), "{stdout}");
        assert!(stdout.contains("arg: --exit"), "{stdout}");
        assert!(stdout.contains("env: GREETING=hi"), "{stdout}");
        assert!(stderr.contains("hello-cmd: this line goes to stderr"), "{stderr}");
        let (ch, status) = got.last().expect("status");
        assert_eq!(*ch, 3);
        assert!(status.contains(r#""reason":"NonZeroExitCode""#) && status.contains(r#"{"reason":"ExitCode","message":"3"}"#), "{status}");
        let (mut ws, _) = h.ws("/exec/default/real/cmd?command=hello-cmd&stdout=true", "v5.channel.k8s.io").await.expect("upgrade");
        assert_eq!(frames(&mut ws).await.last(), Some(&(3, r#"{"metadata":{},"status":"Success"}"#.to_string())));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn real_proxy_forwards_method_path_query_and_body() {
        let Some((h, _cache)) = start_real().await else { return };
        let req = Request::post("/proxy/default/real/8080/echo?x=1")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header("x-test", "yes")
            .body(http_body_util::Full::new(Bytes::from_static(b"ping")).map_err(|never| match never {}).boxed_unsync())
            .expect("request");
        let resp = h.send(req).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&body[..], b"ping");
        let (status, _, body) = h.get("/proxy/default/real/8080/", Some(TOKEN)).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "Hello from Flotilla\n"));
        // The node's token never reaches the guest.
        let (status, _, body) = h.get("/proxy/default/real/8080/headers", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!body.to_ascii_lowercase().contains("authorization"), "{body}");
        let (status, _, _) = h.get("/proxy/default/real/9999/", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn port_forward_handshake_errors() {
        use tokio_tungstenite::tungstenite::Error::Http;
        let h = start().await;
        let (status, _, body) = h.get("/portForward/default/p", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("port-forward needs an upgrade"), "{body}");
        for (path, protocol, want) in [
            ("/portForward/default/p", "v5.channel.k8s.io", StatusCode::BAD_REQUEST),
            ("/portForward/default/nope", crate::portforward::TUNNEL_PROTOCOL, StatusCode::NOT_FOUND),
        ] {
            match h.ws(path, protocol).await {
                Err(Http(resp)) => assert_eq!(resp.status(), want, "{path} {protocol}"),
                other => panic!("{path}: expected {want}, got {:?}", other.map(|r| r.1.status())),
            }
        }
        let spdy = |version: Option<&str>| {
            let mut req = Request::post("/portForward/default/p")
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .header(header::CONNECTION, "Upgrade")
                .header(header::UPGRADE, "SPDY/3.1");
            if let Some(v) = version {
                req = req.header("X-Stream-Protocol-Version", v);
            }
            req.body(Empty::new().map_err(|never| match never {}).boxed_unsync()).expect("request")
        };
        assert_eq!(h.send(spdy(None)).await.status(), StatusCode::BAD_REQUEST);
        let resp = h.send(spdy(Some("v9.example"))).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(resp.headers().get("x-accepted-stream-protocol-versions").map(|v| v.as_bytes()), Some(&b"portforward.k8s.io"[..]));
    }

    /// A port-forward client over any byte stream: SPDY frames out and in.
    struct SpdyClient<S> {
        io: S,
        enc: crate::portforward::spdy::Encoder,
        dec: crate::portforward::spdy::Decoder,
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> SpdyClient<S> {
        async fn send(&mut self, frame: crate::portforward::spdy::Frame) {
            use tokio::io::AsyncWriteExt as _;
            let bytes = self.enc.encode(&frame).expect("encode");
            self.io.write_all(&bytes).await.expect("write");
        }

        /// Opens request `id`'s error and data streams to `port`.
        async fn open(&mut self, id: u32, port: u16) -> (u32, u32) {
            let (error, data) = (4 * id + 1, 4 * id + 3);
            for (stream, kind) in [(error, "error"), (data, "data")] {
                let headers = vec![("streamtype".into(), kind.into()), ("port".into(), port.to_string()), ("requestid".into(), id.to_string())];
                self.send(crate::portforward::spdy::Frame::SynStream { stream, associated: 0, priority: 0, flags: 0, headers }).await;
            }
            (error, data)
        }

        /// What the server sends on `stream` until its FIN.
        async fn read_stream(&mut self, stream: u32) -> String {
            use crate::portforward::spdy::{FLAG_FIN, Frame};
            use tokio::io::AsyncReadExt as _;
            let mut text = String::new();
            loop {
                while let Some(frame) = self.dec.next_frame().expect("decode") {
                    if let Frame::Data { stream: s, flags, data } = frame
                        && s == stream
                    {
                        text.push_str(&String::from_utf8_lossy(&data));
                        if flags & FLAG_FIN != 0 {
                            return text;
                        }
                    }
                }
                let mut buf = [0u8; 4096];
                let n = tokio::time::timeout(WAIT, self.io.read(&mut buf)).await.expect("timely").expect("read");
                assert!(n > 0, "connection closed before stream {stream} finished: {text:?}");
                self.dec.push(&buf[..n]);
            }
        }
    }

    /// Exercises one port-forward connection: GET / from hello-http on 8080, and a port
    /// nobody serves.
    async fn forward_http<S: AsyncRead + AsyncWrite + Unpin>(io: S) {
        use crate::portforward::spdy::{FLAG_FIN, Frame};
        let mut c = SpdyClient { io, enc: Default::default(), dec: Default::default() };
        let (_, data) = c.open(0, 8080).await;
        let get = Bytes::from_static(b"GET / HTTP/1.1\r\nhost: pod\r\nconnection: close\r\n\r\n");
        c.send(Frame::Data { stream: data, flags: FLAG_FIN, data: get }).await;
        let response = c.read_stream(data).await;
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n") && response.contains("\r\nHello from Flotilla\n"), "{response}");
        let (error, _) = c.open(1, 9999).await;
        let msg = c.read_stream(error).await;
        assert_eq!(msg, "error forwarding port 9999 to pod real_default, uid uid-2: failed to connect to localhost:9999 inside the pod: connection refused");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn real_port_forward_over_a_websocket_tunnel_and_plain_spdy() {
        let Some((h, _cache)) = start_real().await else { return };
        // The WebSocket tunnel: binary messages carry the SPDY bytes.
        let (ws, resp) = h.ws("/portForward/default/real", crate::portforward::TUNNEL_PROTOCOL).await.expect("upgrade");
        assert_eq!(resp.headers().get(header::SEC_WEBSOCKET_PROTOCOL).map(|v| v.as_bytes()), Some(crate::portforward::TUNNEL_PROTOCOL.as_bytes()));
        let (tx, rx) = ws.split();
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (server_rd, server_wr) = tokio::io::split(server);
        // Adapts the WebSocket to a byte stream for the test client.
        let down = async move {
            let down = rx.filter_map(|m| async move { if let Ok(Message::Binary(b)) = m { Some(Ok::<_, std::io::Error>(b)) } else { None } });
            let mut reader = tokio_util_like::StreamReader(Box::pin(down), Bytes::new());
            let mut wr = server_wr;
            let _ = tokio::io::copy(&mut reader, &mut wr).await;
        };
        let up = async move {
            use tokio::io::AsyncReadExt as _;
            let (mut rd, mut tx) = (server_rd, tx);
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = rd.read(&mut buf).await {
                if n == 0 || tx.send(Message::Binary(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                    break;
                }
            }
        };
        tokio::select! {
            _ = futures::future::join(down, up) => panic!("the tunnel ended first"),
            () = forward_http(client) => {}
        }

        // The plain SPDY upgrade.
        let req = Request::post("/portForward/default/real")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "SPDY/3.1")
            .header("X-Stream-Protocol-Version", "portforward.k8s.io")
            .body(Empty::<Bytes>::new())
            .expect("request");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(h.tls().await)).await.expect("http handshake");
        tokio::spawn(conn.with_upgrades());
        let resp = tokio::time::timeout(WAIT, sender.send_request(req)).await.expect("timely").expect("response");
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(resp.headers().get("x-stream-protocol-version").map(|v| v.as_bytes()), Some(&b"portforward.k8s.io"[..]));
        let io = TokioIo::new(hyper::upgrade::on(resp).await.expect("upgraded"));
        forward_http(io).await;
    }

    /// Reads a stream of byte chunks as AsyncRead (what tokio-util's StreamReader does).
    mod tokio_util_like {
        use std::pin::Pin;
        use std::task::{Context, Poll};

        use bytes::{Buf as _, Bytes};
        use futures::Stream;
        use tokio::io::{AsyncRead, ReadBuf};

        pub(super) struct StreamReader<S>(pub(super) Pin<Box<S>>, pub(super) Bytes);

        impl<S: Stream<Item = std::io::Result<Bytes>>> AsyncRead for StreamReader<S> {
            fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
                while self.1.is_empty() {
                    match self.0.as_mut().poll_next(cx) {
                        Poll::Ready(Some(Ok(b))) => self.1 = b,
                        Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                        Poll::Ready(None) => return Poll::Ready(Ok(())),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                let n = self.1.len().min(buf.remaining());
                buf.put_slice(&self.1[..n]);
                self.1.advance(n);
                Poll::Ready(Ok(()))
            }
        }
    }

    #[test]
    fn proxy_target_strips_the_prefix_and_keeps_the_query() {
        assert_eq!(proxy_target("/proxy/ns/p/80", None), "/");
        assert_eq!(proxy_target("/proxy/ns/p/80/", None), "/");
        assert_eq!(proxy_target("/proxy/ns/p/80/a/b%20c/", Some("x=1&y=%2F")), "/a/b%20c/?x=1&y=%2F");
        assert_eq!(proxy_target("/proxy/ns/p/80", Some("q")), "/?q");
    }

    #[test]
    fn query_decoding() {
        let q = parse_query(Some("command=sh&command=-c&command=echo+hi%21%zz&stdin=true&flag"));
        let want = [("command", "sh"), ("command", "-c"), ("command", "echo hi!%zz"), ("stdin", "true"), ("flag", "")];
        assert_eq!(q, want.map(|(k, v)| (k.to_string(), v.to_string())));
        assert_eq!(parse_query(Some("a=%4")), vec![("a".to_string(), "%4".to_string())]);
    }
}
