//! The worker's side of probes: one run of a probe (`Effect::RunProbe`) as an I/O task
//! whose [`ProbeOutcome`] comes back as `Event::ProbeResult`. What the result means is the
//! lifecycle's (`lifecycle/probes.rs`).
//!
//! The node reaches the container in-process, as the pod network's own clients do, never
//! through a host socket: httpGet and tcpSocket open the pod's port as the kubelet does
//! its IP (`Routing::open_probe`: a wasi:sockets listener, else the HTTP container serving
//! that port, called through its `HttpService`; no NetworkPolicy); an httpGet `host` that
//! names something else goes where the pod's own request would (`Network::route`); grpc
//! sends grpc.health.v1.Health/Check over HTTP/2 the same way. exec
//! runs a fresh instance of the container's image with the probe's command as argv and
//! the container's env, mounts and limits.
//!
//! Invariants: a run holds no instance beyond itself (an HTTP request's instance, an exec
//! instance, a connection: all dropped when the run ends); every run ends within the
//! probe's timeoutSeconds; failure texts are the kubelet's (Go's net/http and net
//! wording), since they end up in `Unhealthy` events.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, HOST, HeaderName, HeaderValue, USER_AGENT};
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

use super::{Outcome, Worker};
use crate::lifecycle::{Handler, ProbeKind, ProbeOutcome, ProbeSpec};
use crate::network::Routing;
use crate::network::external::Opened;
use crate::pod_table::{PodEntry, PodTable};
use crate::runtime::{BoxBody, Compiled, ContainerKind, Dispatch, ForwardError, InstanceSpec, Network, OutputSink, Runtime, Stream};

/// The User-Agent of the kubelet's HTTP probes (its minor version is kubectl's).
const USER_AGENT_VALUE: &str = "kube-probe/1.32";
/// Output of an exec probe kept for its event (the kubelet's maxReadLength).
const MAX_OUTPUT: usize = 10 * 1024;

/// What a probe run reaches, captured when it starts.
struct Target {
    routing: Arc<Routing>,
    pods: Arc<PodTable>,
    pod: Arc<PodEntry>,
    pod_ip: String,
    /// The node's address: where a probe connection comes from.
    from: SocketAddr,
    network: Arc<dyn Network>,
    runtime: Arc<Runtime>,
    compiled: Option<Arc<Compiled>>,
    instance: Option<InstanceSpec>,
}

impl Worker {
    /// Starts one run of probe `kind` of `container`; its outcome comes back as
    /// `Outcome::Probed`.
    pub(super) fn probe(&mut self, container: usize, kind: ProbeKind, attempt: u32) {
        let Some(spec) = self.state.spec().containers[container].probes.get(kind).cloned() else { return };
        let Some(held) = &self.held else { return };
        let slot = &self.slots[container];
        let target = Target {
            routing: self.ctx.routing.clone(),
            pods: self.ctx.pods.clone(),
            pod: held.entry.clone(),
            pod_ip: held.pod_ip.clone(),
            from: SocketAddr::new(self.ctx.host_ip.parse().unwrap_or(IpAddr::from([127, 0, 0, 1])), 0),
            network: held.network.clone(),
            runtime: self.ctx.runtime.clone(),
            compiled: slot.compiled.clone(),
            instance: slot.prepared.as_ref().map(|p| p.spec.clone()),
        };
        let tx = self.outcomes_tx.clone();
        self.tasks.spawn(async move {
            let outcome = run(&target, &spec).await;
            let _ = tx.send(Box::new(Outcome::Probed { container, probe: kind, attempt, outcome }));
        });
    }
}

async fn run(t: &Target, spec: &ProbeSpec) -> ProbeOutcome {
    match &spec.handler {
        Handler::HttpGet { scheme, host, port, path, headers } => http_get(t, scheme, host, *port, path, headers, spec.timeout).await,
        Handler::TcpSocket { host, port } => tcp_socket(t, host, *port),
        Handler::Exec { command } => exec(t, command, spec.timeout).await,
        Handler::Grpc { port, service } => grpc(t, *port, service, spec.timeout).await,
        Handler::Unsupported(message) => ProbeOutcome::Error(message.clone()),
    }
}

/// `host:port` as Go writes it (IPv6 in brackets).
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// The pod of this node a probe of `host` reaches directly: the probed pod for an empty
/// host or its own IP, another pod of this node by its IP; None: not a pod of this node.
fn pod_at(t: &Target, host: &str) -> Option<Arc<PodEntry>> {
    if host.is_empty() || host == t.pod_ip {
        return Some(t.pod.clone());
    }
    t.pods.by_ip(host.parse().ok()?)
}

fn refused(addr: &str) -> String {
    format!("dial tcp {addr}: connect: connection refused")
}

fn tcp_socket(t: &Target, host: &str, port: u16) -> ProbeOutcome {
    let addr = host_port(if host.is_empty() { &t.pod_ip } else { host }, port);
    match pod_at(t, host).map(|pod| t.routing.open_probe(&pod, t.from, port)) {
        // The connection is closed at once, as the kubelet's.
        Some(Ok(Opened::Tcp(_) | Opened::Http(_))) => ProbeOutcome::Success,
        _ => ProbeOutcome::Failure(refused(&addr)),
    }
}

/// Why an HTTP probe got no response (the text after `Get "URL": `).
type NoResponse = String;

async fn http_get(t: &Target, scheme: &str, host: &str, port: u16, path: &str, headers: &[(String, String)], timeout: Duration) -> ProbeOutcome {
    let host = if host.is_empty() { t.pod_ip.as_str() } else { host };
    let authority = host_port(host, port);
    let url = format!("{}://{authority}{path}", scheme.to_ascii_lowercase());
    let request = match request(&authority, path, headers) {
        Ok(r) => r,
        Err(e) => return ProbeOutcome::Error(format!("invalid httpGet probe: {e}")),
    };
    let call = async {
        let Some(pod) = pod_at(t, host) else { return by_route(t, host, port, &authority, request, timeout).await };
        match t.routing.open_probe(&pod, t.from, port) {
            Ok(Opened::Http(service)) => Ok(service.handle(request).await.status()),
            Ok(Opened::Tcp(conn)) => over_tcp(conn, request).await,
            _ => Err(refused(&authority)),
        }
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_) => ProbeOutcome::Failure(format!("Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)")),
        Ok(Err(why)) => ProbeOutcome::Failure(format!("Get \"{url}\": {why}")),
        Ok(Ok(status)) if (200..400).contains(&status.as_u16()) => ProbeOutcome::Success,
        Ok(Ok(status)) => ProbeOutcome::Failure(format!("HTTP probe failed with statuscode: {}", status.as_u16())),
    }
}

/// The probe's GET: the kubelet's default headers unless the probe sets its own.
fn request(authority: &str, path: &str, headers: &[(String, String)]) -> Result<http::Request<BoxBody>, http::Error> {
    let mut req = http::Request::get(path).body(http_body_util::Empty::<Bytes>::new().map_err(|never| match never {}).boxed_unsync())?;
    let h = req.headers_mut();
    for (name, value) in headers {
        h.append(HeaderName::from_bytes(name.as_bytes())?, HeaderValue::from_str(value)?);
    }
    for (name, default) in [(HOST, authority), (USER_AGENT, USER_AGENT_VALUE), (ACCEPT, "*/*")] {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_str(default)?);
        }
    }
    Ok(req)
}

/// HTTP/1.1 over a connection to a wasi:sockets listener.
async fn over_tcp(conn: crate::network::tcp::Conn, request: http::Request<BoxBody>) -> Result<http::StatusCode, NoResponse> {
    let io = TokioIo::new(tokio::io::join(conn.rx, conn.tx));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
    // The connection is driven until it ends; the response (or the reason there is none)
    // is known by then.
    let drive = async {
        let _ = connection.await;
        std::future::pending::<()>().await
    };
    let failed = |e: hyper::Error| if e.is_incomplete_message() || e.is_closed() || e.is_canceled() { "EOF".to_string() } else { e.to_string() };
    tokio::select! {
        biased;
        response = sender.send_request(request) => response.map(|r| r.status()).map_err(failed),
        () = drive => unreachable!("drive never ends"),
    }
}

/// An httpGet whose `host` is not a pod of this node: routed as the pod's own request to
/// it would be (Service names, pods of other nodes).
async fn by_route(t: &Target, host: &str, port: u16, authority: &str, request: http::Request<BoxBody>, timeout: Duration) -> Result<http::StatusCode, NoResponse> {
    match t.network.route(host, port) {
        Dispatch::Local(service) => Ok(service.handle(request).await.status()),
        Dispatch::Remote(hop) => match hop.forward(request, Some(timeout)).await {
            Ok(response) => Ok(response.status()),
            Err(ForwardError::Refused) => Err(refused(authority)),
            Err(ForwardError::Terminated(_)) => Err("EOF".to_string()),
        },
        Dispatch::NoSuchName => Err(format!("dial tcp: lookup {host}: no such host")),
        Dispatch::Refused | Dispatch::Denied | Dispatch::External { .. } => Err(refused(authority)),
    }
}

/// The gRPC health check's path.
const GRPC_HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
/// Most of a gRPC health response read.
const MAX_GRPC_RESPONSE: usize = 64 * 1024;

/// What a gRPC health check got back: the HTTP status, the response's headers and
/// trailers (grpc-status may be in either), and its body.
struct GrpcReply {
    status: http::StatusCode,
    fields: http::HeaderMap,
    body: Bytes,
}

/// grpc.health.v1 `HealthCheckRequest { service }` in a gRPC message frame.
fn grpc_request_body(service: &str) -> Bytes {
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a); // field 1, length-delimited
        put_varint(&mut msg, service.len() as u64);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    Bytes::from(frame)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// The `status` of a `HealthCheckResponse` frame (0 when absent, as proto3 has it).
fn grpc_serving_status(body: &[u8]) -> Option<u64> {
    let (&[0, a, b, c, d], rest) = body.split_first_chunk::<5>()? else { return None };
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    let mut msg = rest.get(..len)?;
    let mut status = 0;
    while !msg.is_empty() {
        let (key, n) = varint(msg)?;
        msg = &msg[n..];
        match key & 7 {
            0 => {
                let (v, n) = varint(msg)?;
                msg = &msg[n..];
                if key >> 3 == 1 {
                    status = v;
                }
            }
            2 => {
                let (l, n) = varint(msg)?;
                msg = msg.get(n + l as usize..)?;
            }
            5 => msg = msg.get(4..)?,
            1 => msg = msg.get(8..)?,
            _ => return None,
        }
    }
    Some(status)
}

/// gRPC status code names, as grpc-go prints them.
fn grpc_code(code: u32) -> &'static str {
    [
        "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists", "PermissionDenied", "ResourceExhausted",
        "FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated",
    ]
    .get(code as usize)
    .copied()
    .unwrap_or("Unknown")
}

/// What a reply means, worded as the kubelet's gRPC prober words it.
fn grpc_outcome(reply: GrpcReply) -> ProbeOutcome {
    let field = |name: &str| reply.fields.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    if reply.status != http::StatusCode::OK {
        let code = if reply.status == http::StatusCode::NOT_FOUND { "Unimplemented" } else { "Unknown" };
        let desc = format!("unexpected HTTP status code received from server: {} ({})", reply.status.as_u16(), reply.status.canonical_reason().unwrap_or(""));
        if code == "Unimplemented" {
            return ProbeOutcome::Failure(format!("server does not implement the grpc health protocol (grpc.health.v1.Health): {desc}"));
        }
        return ProbeOutcome::Failure(format!("error: health rpc probe failed: rpc error: code = {code} desc = {desc}"));
    }
    let code: u32 = field("grpc-status").and_then(|c| c.parse().ok()).unwrap_or(2);
    let message = field("grpc-message").unwrap_or_default();
    match code {
        0 => {}
        12 => return ProbeOutcome::Failure(format!("server does not implement the grpc health protocol (grpc.health.v1.Health): {message}")),
        _ => return ProbeOutcome::Failure(format!("error: health rpc probe failed: rpc error: code = {} desc = {message}", grpc_code(code))),
    }
    match grpc_serving_status(&reply.body) {
        Some(1) => ProbeOutcome::Success,
        Some(s) => {
            let name = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"].get(s as usize).copied().unwrap_or("UNKNOWN");
            ProbeOutcome::Failure(format!("service unhealthy (responded with {name:?})"))
        }
        None => ProbeOutcome::Failure("error: health rpc probe failed: rpc error: code = Internal desc = malformed health response".into()),
    }
}

/// Reads a response's body (at most [`MAX_GRPC_RESPONSE`]) and trailers.
async fn grpc_reply<B>(response: http::Response<B>) -> Result<GrpcReply, NoResponse>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = response.into_parts();
    let collected = http_body_util::Limited::new(body, MAX_GRPC_RESPONSE).collect().await.map_err(|e| e.to_string())?;
    let mut fields = parts.headers;
    if let Some(trailers) = collected.trailers() {
        fields.extend(trailers.clone());
    }
    Ok(GrpcReply { status: parts.status, fields, body: collected.to_bytes() })
}

async fn grpc(t: &Target, port: u16, service: &str, timeout: Duration) -> ProbeOutcome {
    let authority = host_port(&t.pod_ip, port);
    let build = || -> Result<http::Request<BoxBody>, http::Error> {
        let body = http_body_util::Full::new(grpc_request_body(service)).map_err(|never| match never {}).boxed_unsync();
        http::Request::post(format!("http://{authority}{GRPC_HEALTH_CHECK}"))
            .version(http::Version::HTTP_2)
            .header(HOST, authority.as_str())
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(http::header::TE, "trailers")
            .header(USER_AGENT, USER_AGENT_VALUE)
            .body(body)
    };
    let request = match build() {
        Ok(r) => r,
        Err(e) => return ProbeOutcome::Error(format!("invalid grpc probe: {e}")),
    };
    let call = async {
        match t.routing.open_probe(&t.pod, t.from, port) {
            Ok(Opened::Http(service)) => {
                // In-process: the container sees an origin-form path, as over the network.
                let (mut parts, body) = request.into_parts();
                parts.uri = http::Uri::from_static(GRPC_HEALTH_CHECK);
                grpc_reply(service.handle(http::Request::from_parts(parts, body)).await).await
            }
            Ok(Opened::Tcp(conn)) => grpc_over_tcp(conn, request).await,
            _ => Err(format!("timeout: failed to connect service {authority:?} within {}s: context deadline exceeded", timeout.as_secs())),
        }
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_) => ProbeOutcome::Failure(format!("timeout: health rpc did not complete within {}s", timeout.as_secs())),
        Ok(Err(why)) if why.starts_with("timeout: ") => ProbeOutcome::Failure(why),
        Ok(Err(why)) => ProbeOutcome::Failure(format!("error: health rpc probe failed: rpc error: code = Unavailable desc = {why}")),
        Ok(Ok(reply)) => grpc_outcome(reply),
    }
}

/// HTTP/2 (prior knowledge, as gRPC speaks it) over a connection to a wasi:sockets
/// listener.
async fn grpc_over_tcp(conn: crate::network::tcp::Conn, request: http::Request<BoxBody>) -> Result<GrpcReply, NoResponse> {
    let io = TokioIo::new(tokio::io::join(conn.rx, conn.tx));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await.map_err(|e| e.to_string())?;
    let drive = async {
        let _ = connection.await;
        std::future::pending::<()>().await
    };
    let call = async {
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        grpc_reply(response).await
    };
    tokio::select! {
        biased;
        reply = call => reply,
        () = drive => unreachable!("drive never ends"),
    }
}

/// Keeps an exec probe's output (stdout, then stderr, as the kubelet joins them).
#[derive(Default)]
struct Capture(Mutex<(Vec<u8>, Vec<u8>)>);

impl OutputSink for Capture {
    fn write(&self, stream: Stream, bytes: &[u8]) {
        let mut out = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (stdout, stderr) = &mut *out;
        let room = MAX_OUTPUT.saturating_sub(stdout.len() + stderr.len());
        let buf = if stream == Stream::Stdout { stdout } else { stderr };
        buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

impl Capture {
    fn text(&self) -> String {
        let out = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut all = out.0.clone();
        all.extend_from_slice(&out.1);
        String::from_utf8_lossy(&all).into_owned()
    }
}

async fn exec(t: &Target, command: &[String], timeout: Duration) -> ProbeOutcome {
    let (Some(compiled), Some(instance)) = (&t.compiled, &t.instance) else {
        return ProbeOutcome::Error("container has no image to run".into());
    };
    if compiled.kind != ContainerKind::Command {
        return ProbeOutcome::Error("exec probes need a command component: the container's image serves HTTP".into());
    }
    let mut spec = instance.clone();
    spec.argv = command.iter().map(|w| flotilla_api::pod::expand(w, &spec.env)).collect();
    let out = Arc::new(Capture::default());
    // Never killed through this: the timeout drops the run (and its store) instead.
    let (_keep, kill) = watch::channel(false);
    match tokio::time::timeout(timeout, t.runtime.run(compiled, &spec, None, out.clone(), kill)).await {
        Err(_) => ProbeOutcome::Failure(format!("command {:?} timed out", command.join(" "))),
        Ok(status) if status.code == 0 => ProbeOutcome::Success,
        Ok(_) => ProbeOutcome::Failure(out.text()),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;
    use crate::network::tcp::Conn;

    #[test]
    fn requests_carry_the_kubelet_headers_unless_the_probe_sets_them() {
        let req = request("10.1.0.2:8080", "/healthz?x=1", &[("X-Probe".into(), "1".into()), ("Host".into(), "example.test".into())]).expect("request");
        assert_eq!(req.uri(), "/healthz?x=1");
        let h = req.headers();
        assert_eq!((h["host"].to_str().ok(), h["user-agent"].to_str().ok(), h["accept"].to_str().ok()), (Some("example.test"), Some("kube-probe/1.32"), Some("*/*")));
        assert_eq!(h["x-probe"], "1");
        let req = request("[fd00::2]:80", "/", &[]).expect("request");
        assert_eq!(req.headers()["host"], "[fd00::2]:80");
        assert_eq!(host_port("fd00::2", 80), "[fd00::2]:80");
        assert!(request("a:1", "/", &[("bad name".into(), "v".into())]).is_err());
    }

    #[tokio::test]
    async fn http_over_a_pod_tcp_connection_reads_the_status() {
        let (client, server) = Conn::pair(SocketAddr::from(([127, 0, 0, 1], 1)), SocketAddr::from(([10, 1, 0, 2], 8080)));
        let guest = tokio::spawn(async move {
            let Conn { mut rx, mut tx, .. } = server;
            let mut seen = Vec::new();
            let mut buf = [0u8; 1024];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = rx.read(&mut buf).await.expect("read");
                assert!(n > 0, "request ended early");
                seen.extend_from_slice(&buf[..n]);
            }
            tx.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").await.expect("write");
            String::from_utf8_lossy(&seen).into_owned()
        });
        let status = over_tcp(client, request("10.1.0.2:8080", "/ready", &[]).expect("request")).await.expect("a response");
        assert_eq!(status, http::StatusCode::SERVICE_UNAVAILABLE);
        let seen = guest.await.expect("guest");
        assert!(seen.starts_with("GET /ready HTTP/1.1\r\n"), "{seen}");
        assert!(seen.to_ascii_lowercase().contains("user-agent: kube-probe/1.32"), "{seen}");
    }

    #[tokio::test]
    async fn a_listener_that_closes_without_answering_is_eof() {
        let (client, server) = Conn::pair(SocketAddr::from(([127, 0, 0, 1], 1)), SocketAddr::from(([10, 1, 0, 2], 7000)));
        drop(server);
        assert_eq!(over_tcp(client, request("10.1.0.2:7000", "/", &[]).expect("request")).await, Err("EOF".to_string()));
    }

    fn reply(status: u16, fields: &[(&'static str, &'static str)], body: &[u8]) -> GrpcReply {
        let mut map = http::HeaderMap::new();
        for (k, v) in fields {
            map.insert(*k, HeaderValue::from_static(v));
        }
        GrpcReply { status: http::StatusCode::from_u16(status).expect("status"), fields: map, body: Bytes::copy_from_slice(body) }
    }

    #[test]
    fn grpc_health_checks_are_encoded_and_answered_as_the_kubelet_words_them() {
        assert_eq!(&grpc_request_body("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(&grpc_request_body("db")[..], &[0, 0, 0, 0, 4, 0x0a, 2, b'd', b'b']);
        let serving = [0, 0, 0, 0, 2, 0x08, 1];
        let not_serving = [0, 0, 0, 0, 2, 0x08, 2];
        assert_eq!(grpc_outcome(reply(200, &[("grpc-status", "0")], &serving)), ProbeOutcome::Success);
        assert_eq!(grpc_outcome(reply(200, &[("grpc-status", "0")], &not_serving)), failed("service unhealthy (responded with \"NOT_SERVING\")"));
        // An empty message is status UNKNOWN (0).
        assert_eq!(grpc_outcome(reply(200, &[("grpc-status", "0")], &[0, 0, 0, 0, 0])), failed("service unhealthy (responded with \"UNKNOWN\")"));
        assert_eq!(
            grpc_outcome(reply(200, &[("grpc-status", "12"), ("grpc-message", "unknown service")], b"")),
            failed("server does not implement the grpc health protocol (grpc.health.v1.Health): unknown service")
        );
        assert_eq!(
            grpc_outcome(reply(200, &[("grpc-status", "5"), ("grpc-message", "no db")], b"")),
            failed("error: health rpc probe failed: rpc error: code = NotFound desc = no db")
        );
        assert_eq!(
            grpc_outcome(reply(404, &[], b"")),
            failed("server does not implement the grpc health protocol (grpc.health.v1.Health): unexpected HTTP status code received from server: 404 (Not Found)")
        );
    }

    fn failed(s: &str) -> ProbeOutcome {
        ProbeOutcome::Failure(s.into())
    }

    #[test]
    fn exec_output_is_stdout_then_stderr_capped() {
        let out = Capture::default();
        out.write(Stream::Stderr, b"err\n");
        out.write(Stream::Stdout, b"out\n");
        assert_eq!(out.text(), "out\nerr\n");
        out.write(Stream::Stdout, &vec![b'x'; 2 * MAX_OUTPUT]);
        assert_eq!(out.text().len(), MAX_OUTPUT);
    }
}
