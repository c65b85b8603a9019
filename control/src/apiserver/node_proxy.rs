//! pods/log, pods/exec, pods/attach, pods/proxy and pods/portforward (`node_proxy/portforward.rs`): the API server finds the pod's node (spec.nodeName →
//! Node object → InternalIP + kubelet endpoint port) and forwards the request to the node's
//! HTTPS server with the admin token, as kube-apiserver does with the kubelet.
//!
//! Invariants: the node's self-signed certificate is not verified (like kube-apiserver
//! without --kubelet-certificate-authority) but the token is always sent; exec and attach
//! are a WebSocket passthrough — both sides are upgraded and bytes are copied unchanged, so the
//! node's `Sec-WebSocket-Accept` (computed from the client's key) is valid for the client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt as _;
use hyper_util::rt::TokioIo;
use serde_json::Value;

mod portforward;

use super::App;
use super::error::ApiError;
use super::resources::{self, ResourceInfo};

/// Log query parameters passed through to the node.
const LOG_PARAMS: &[&str] = &["follow", "previous", "timestamps", "tailLines", "sinceSeconds", "sinceTime", "limitBytes"];
/// How long a failed WebSocket exec is remembered for kubectl's SPDY fallback attempt.
const FAILURE_TTL: Duration = Duration::from_secs(30);

/// A pods/{log,exec,attach,proxy,portforward} request, as the router parsed it.
pub(crate) struct SubRequest<'a> {
    pub sub: &'a str,
    pub namespace: &'a str,
    /// The name segment as sent (for proxy it may be `NAME:PORT` or `SCHEME:NAME:PORT`).
    pub name: &'a str,
    pub method: Method,
    pub uri: &'a Uri,
    pub headers: HeaderMap,
    pub query: &'a [(String, String)],
    pub body: Body,
    pub on_upgrade: Option<hyper::upgrade::OnUpgrade>,
}

/// The HTTP clients used to reach nodes (shared; connections are pooled).
struct Clients {
    /// HTTP/2 or HTTP/1.1, for logs and proxy.
    http: reqwest::Client,
    /// HTTP/1.1 only, for upgrades.
    upgrade: reqwest::Client,
}

use flotilla_api::SERVING_CERT_ANNOTATION;

/// Accepts exactly the certificate whose SHA-256 is pinned, and checks handshake signatures.
#[derive(Debug)]
struct PinnedCert {
    provider: Arc<rustls::crypto::CryptoProvider>,
    sha256: [u8; 32],
}

impl rustls::client::danger::ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use sha2::Digest as _;
        if sha2::Sha256::digest(end_entity.as_ref()).as_slice() == self.sha256 {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config(alpn: &[&[u8]], sha256: [u8; 32]) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCert { provider, sha256 }))
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(cfg)
}

fn build_clients(sha256: [u8; 32]) -> Result<Clients, String> {
    let base = || reqwest::Client::builder().no_proxy().connect_timeout(Duration::from_secs(10)).tcp_nodelay(true);
    let http = base()
        .tls_backend_preconfigured(tls_config(&[b"h2", b"http/1.1"], sha256).map_err(|e| e.to_string())?)
        .build()
        .map_err(|e| e.to_string())?;
    let upgrade = base()
        .http1_only()
        .tls_backend_preconfigured(tls_config(&[b"http/1.1"], sha256).map_err(|e| e.to_string())?)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(Clients { http, upgrade })
}

/// The clients for a node's pinned certificate (kept per certificate: connections pool).
fn clients(sha256: [u8; 32]) -> Result<Arc<Clients>, ApiError> {
    static CLIENTS: OnceLock<Mutex<HashMap<[u8; 32], Arc<Clients>>>> = OnceLock::new();
    let mut map = CLIENTS.get_or_init(Default::default).lock().expect("node clients");
    if let Some(c) = map.get(&sha256) {
        return Ok(c.clone());
    }
    if map.len() >= 1024 {
        // Certificates of nodes long gone: start over rather than grow without bound.
        map.clear();
    }
    let c = Arc::new(build_clients(sha256).map_err(|e| ApiError::internal(format!("building the node client: {e}")))?);
    map.insert(sha256, c.clone());
    Ok(c)
}

/// Where a pod's node serves, and the certificate it registered.
struct NodeTarget {
    base: String,
    sha256: [u8; 32],
}

/// Entry point from the router.
pub(crate) async fn serve(app: &Arc<App>, info: &'static ResourceInfo, r: SubRequest<'_>) -> Result<Response, ApiError> {
    if info.plural == "nodes" && r.sub == "proxy" {
        return node_proxy(app, r).await;
    }
    if info.plural != "pods" {
        return Err(ApiError::bad_request(format!("{}/{} is not supported", info.plural, r.sub)));
    }
    match r.sub {
        "log" => logs(app, info, r).await,
        "exec" => exec(app, info, r).await,
        "proxy" => proxy(app, info, r).await,
        "attach" => exec(app, info, r).await,
        "portforward" => portforward::port_forward(app, info, r).await,
        _ => Err(ApiError::page_not_found()),
    }
}

fn q<'a>(query: &'a [(String, String)], k: &str) -> Option<&'a str> {
    query.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
}

/// Every container name of the pod: init containers, containers, ephemeral containers.
fn all_container_names(pod: &Value) -> Vec<&str> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| pod["spec"][*k].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str())
        .collect()
}

/// The container a request names, or the pod's only container (Kubernetes' rules and messages).
fn pick_container(pod: &Value, name: &str, requested: Option<&str>) -> Result<String, ApiError> {
    match requested.filter(|c| !c.is_empty()) {
        Some(c) => {
            if all_container_names(pod).contains(&c) {
                Ok(c.to_string())
            } else {
                Err(ApiError::bad_request(format!("container {c} is not valid for pod {name}")))
            }
        }
        None => {
            let containers = pod["spec"]["containers"].as_array().map(Vec::as_slice).unwrap_or_default();
            match containers {
                [only] => Ok(only["name"].as_str().unwrap_or("").to_string()),
                [] => Err(ApiError::bad_request(format!("a container name must be specified for pod {name}"))),
                _ => Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    all_container_names(pod).join(" ")
                ))),
            }
        }
    }
}

/// `https://ADDR:PORT` of the node running `pod`.
fn node_base(app: &App, pod: &Value, name: &str) -> Result<NodeTarget, ApiError> {
    let node = pod["spec"]["nodeName"].as_str().unwrap_or("");
    if node.is_empty() {
        return Err(ApiError::bad_request(format!("pod {name} does not have a host assigned")));
    }
    node_target(app, node)
}

/// `https://ADDR:PORT` of the node server of Node `node`.
fn node_target(app: &App, node: &str) -> Result<NodeTarget, ApiError> {
    let nodes = resources::find("", "v1", "nodes").ok_or_else(|| ApiError::internal("nodes are not served"))?;
    let obj = app.api.get(nodes, None, node)?;
    let addresses = obj.value["status"]["addresses"].as_array().cloned().unwrap_or_default();
    let address = ["InternalIP", "ExternalIP", "Hostname"]
        .iter()
        .find_map(|t| addresses.iter().find(|a| a["type"] == *t).and_then(|a| a["address"].as_str()).filter(|a| !a.is_empty()))
        .ok_or_else(|| ApiError::new(503, "ServiceUnavailable", format!("node {node} reports no address")))?;
    let port = obj.value["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64().filter(|p| *p > 0 && *p < 65536);
    let port = port.ok_or_else(|| ApiError::new(503, "ServiceUnavailable", format!("node {node} reports no kubelet endpoint port")))?;
    let sha256 = obj.value["metadata"]["annotations"][SERVING_CERT_ANNOTATION]
        .as_str()
        .and_then(parse_sha256)
        .ok_or_else(|| ApiError::new(503, "ServiceUnavailable", format!("node {node} has not registered its serving certificate ({SERVING_CERT_ANNOTATION})")))?;
    let host = if address.contains(':') { format!("[{address}]") } else { address.to_string() };
    Ok(NodeTarget { base: format!("https://{host}:{port}"), sha256 })
}

fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn encode_query(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

fn path_segment(s: &str) -> String {
    // Names are DNS labels; encode anything else defensively.
    form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

/// An error and its causes, `a: b: c`.
fn chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

fn unreachable_node(e: &reqwest::Error) -> ApiError {
    ApiError::new(503, "ServiceUnavailable", format!("error dialing backend: {}", chain(e)))
}

fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        c if c < 500 => "BadRequest",
        _ => "InternalError",
    }
}

/// A node's failure answer, passed on: Status bodies verbatim, anything else wrapped.
fn node_failure(status: StatusCode, body: &[u8]) -> Response {
    if let Ok(v) = serde_json::from_slice::<Value>(body)
        && v["kind"] == "Status"
    {
        return (status, [(header::CONTENT_TYPE, "application/json")], body.to_vec()).into_response();
    }
    let text = String::from_utf8_lossy(body).trim().to_string();
    let message = if text.is_empty() { format!("the node answered {status}") } else { text };
    ApiError::new(status.as_u16(), reason_for(status.as_u16()), message).into_response()
}

async fn read_limited(resp: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Ok(Some(chunk)) = stream.try_next().await {
        out.extend_from_slice(&chunk);
        if out.len() >= limit {
            out.truncate(limit);
            break;
        }
    }
    out
}

async fn logs(app: &Arc<App>, info: &'static ResourceInfo, r: SubRequest<'_>) -> Result<Response, ApiError> {
    if r.method != Method::GET {
        return Err(ApiError::method_not_allowed(format!("the server does not allow this method on the requested resource ({})", r.method)));
    }
    let pod = app.api.get(info, Some(r.namespace), r.name)?;
    let container = pick_container(&pod.value, r.name, q(r.query, "container"))?;
    for k in ["tailLines", "sinceSeconds", "limitBytes"] {
        if let Some(v) = q(r.query, k)
            && v.parse::<i64>().is_err()
        {
            return Err(ApiError::bad_request(format!("invalid value for {k}: {v:?} is not an integer")));
        }
    }
    if q(r.query, "sinceSeconds").is_some() && q(r.query, "sinceTime").is_some() {
        return Err(ApiError::new(422, "Invalid", "at most one of `sinceTime` or `sinceSeconds` may be specified"));
    }
    let target = node_base(app, &pod.value, r.name)?;
    let base = &target.base;
    let params: Vec<(&str, &str)> = LOG_PARAMS.iter().filter_map(|k| q(r.query, k).map(|v| (*k, v))).collect();
    let mut url = format!("{base}/containerLogs/{}/{}/{}", path_segment(r.namespace), path_segment(r.name), path_segment(&container));
    if !params.is_empty() {
        url.push('?');
        url.push_str(&encode_query(&params));
    }
    let resp = clients(target.sha256)?.http.get(&url).bearer_auth(app.authn.admin_token()).send().await.map_err(|e| unreachable_node(&e))?;
    let status = resp.status();
    if !status.is_success() {
        let body = read_limited(resp, 64 * 1024).await;
        return Ok(node_failure(status, &body));
    }
    let body = Body::from_stream(resp.bytes_stream());
    let mut out = (StatusCode::OK, body).into_response();
    out.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(out)
}

fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token) || t.trim().to_ascii_lowercase().starts_with(&format!("{}/", token.to_ascii_lowercase())))
}

/// Remembered WebSocket exec failures, so kubectl's SPDY retry reports the real error.
fn failures() -> &'static Mutex<HashMap<String, (Instant, u16, Vec<u8>)>> {
    static F: OnceLock<Mutex<HashMap<String, (Instant, u16, Vec<u8>)>>> = OnceLock::new();
    F.get_or_init(|| Mutex::new(HashMap::new()))
}

fn failure_key(r: &SubRequest<'_>, container: &str) -> String {
    let mut params: Vec<String> = r.query.iter().filter(|(k, _)| k != "container").map(|(k, v)| format!("{k}={v}")).collect();
    params.sort();
    format!("{} {}/{}/{container}?{}", r.sub, r.namespace, r.name, params.join("&"))
}

fn remember_failure(key: String, status: StatusCode, body: &[u8]) {
    let mut f = failures().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    f.retain(|_, (at, _, _)| at.elapsed() < FAILURE_TTL);
    f.insert(key, (Instant::now(), status.as_u16(), body.to_vec()));
}

fn take_failure(key: &str) -> Option<(StatusCode, Vec<u8>)> {
    let mut f = failures().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (at, code, body) = f.remove(key)?;
    (at.elapsed() < FAILURE_TTL).then(|| (StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY), body))
}

/// pods/exec and pods/attach (`r.sub`): the same WebSocket passthrough to the node's
/// `/exec/…` or `/attach/…`.
async fn exec(app: &Arc<App>, info: &'static ResourceInfo, r: SubRequest<'_>) -> Result<Response, ApiError> {
    let pod = app.api.get(info, Some(r.namespace), r.name)?;
    let attach = r.sub == "attach";
    if let Some(phase @ ("Succeeded" | "Failed")) = pod.value["status"]["phase"].as_str() {
        let what = if attach { "attach a container" } else { "exec into a container" };
        return Err(ApiError::bad_request(format!("cannot {what} in a completed pod; current phase is {phase}")));
    }
    let container = pick_container(&pod.value, r.name, q(r.query, "container"))?;
    let websocket = has_token(&r.headers, header::CONNECTION, "upgrade") && has_token(&r.headers, header::UPGRADE, "websocket");
    if !websocket {
        if !has_token(&r.headers, header::UPGRADE, "spdy/3.1") {
            return Err(ApiError::bad_request("Upgrade request required"));
        }
        // kubectl 1.30+ retries with SPDY when the WebSocket handshake failed: report why
        // that failed rather than run the command a second way.
        node_base(app, &pod.value, r.name)?;
        if let Some((status, body)) = take_failure(&failure_key(&r, &container)) {
            return Ok(node_failure(status, &body));
        }
        if attach {
            return Err(ApiError::bad_request(
                "attach over SPDY is not supported; use a client that speaks the WebSocket protocol v5.channel.k8s.io (kubectl 1.30 or newer)",
            ));
        }
    }
    if !attach && !r.query.iter().any(|(k, _)| k == "command") {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    let key = failure_key(&r, &container);
    let Some(on_upgrade) = r.on_upgrade else {
        return Err(ApiError::bad_request("Upgrade request required (WebSocket needs HTTP/1.1)"));
    };
    let target = node_base(app, &pod.value, r.name)?;
    let base = &target.base;
    let params: Vec<(&str, &str)> = r.query.iter().filter(|(k, _)| k != "container").map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let url = format!(
        "{base}/{}/{}/{}/{}?{}",
        if attach { "attach" } else { "exec" },
        path_segment(r.namespace),
        path_segment(r.name),
        path_segment(&container),
        encode_query(&params)
    );
    let mut req = clients(target.sha256)?
        .upgrade
        .get(&url)
        .bearer_auth(app.authn.admin_token())
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, if websocket { "websocket" } else { "SPDY/3.1" });
    let stream_protocol = HeaderName::from_static("x-stream-protocol-version");
    for h in [header::SEC_WEBSOCKET_KEY, header::SEC_WEBSOCKET_VERSION, header::SEC_WEBSOCKET_PROTOCOL, stream_protocol.clone()] {
        for v in r.headers.get_all(&h) {
            req = req.header(h.clone(), v.clone());
        }
    }
    let resp = match req.send().await {
        Ok(resp) => resp,
        Err(e) => {
            let e = unreachable_node(&e);
            remember_failure(key, StatusCode::SERVICE_UNAVAILABLE, e.status().to_string().as_bytes());
            return Err(e);
        }
    };
    let status = resp.status();
    if status != StatusCode::SWITCHING_PROTOCOLS {
        let body = read_limited(resp, 64 * 1024).await;
        remember_failure(key, status, &body);
        return Ok(node_failure(status, &body));
    }
    if !websocket {
        // SPDY (kubectl before 1.30): the node negotiated the stream protocol.
        return Ok(splice_upgrade(app, resp, on_upgrade, &[stream_protocol], None, "exec", (r.namespace, r.name)));
    }
    let copy = [header::SEC_WEBSOCKET_ACCEPT, header::SEC_WEBSOCKET_PROTOCOL];
    Ok(splice_upgrade(app, resp, on_upgrade, &copy, Some("websocket"), "exec", (r.namespace, r.name)))
}

/// Answers the client's upgrade with the node's (101, the node's `copy` headers, `upgrade`
/// or else the node's Upgrade header), then copies bytes between the two upgraded
/// connections, unchanged, until either side ends or the API server shuts down (exec,
/// attach and port-forward are passthroughs; `what` names the stream in logs).
fn splice_upgrade(
    app: &Arc<App>,
    resp: reqwest::Response,
    on_upgrade: hyper::upgrade::OnUpgrade,
    copy: &[HeaderName],
    upgrade: Option<&'static str>,
    what: &'static str,
    (namespace, pod): (&str, &str),
) -> Response {
    let mut out = StatusCode::SWITCHING_PROTOCOLS.into_response();
    {
        let h = out.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        match upgrade {
            Some(u) => {
                h.insert(header::UPGRADE, HeaderValue::from_static(u));
            }
            None => {
                if let Some(v) = resp.headers().get(header::UPGRADE) {
                    h.insert(header::UPGRADE, v.clone());
                }
            }
        }
        for name in copy {
            if let Some(v) = resp.headers().get(name) {
                h.insert(name.clone(), v.clone());
            }
        }
    }
    let shutdown = app.shutdown.clone();
    let (ns, pod_name) = (namespace.to_string(), pod.to_string());
    tokio::spawn(async move {
        let mut node_io = match resp.upgrade().await {
            Ok(u) => u,
            Err(e) => return tracing::warn!(error = %e, namespace = %ns, pod = %pod_name, "{what}: node upgrade failed"),
        };
        let mut client_io = match on_upgrade.await {
            Ok(u) => TokioIo::new(u),
            Err(e) => return tracing::warn!(error = %e, namespace = %ns, pod = %pod_name, "{what}: client upgrade failed"),
        };
        tokio::select! {
            r = tokio::io::copy_bidirectional(&mut client_io, &mut node_io) => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, namespace = %ns, pod = %pod_name, "{what} stream ended");
                }
            }
            _ = shutdown.cancelled() => {}
        }
    });
    out
}

/// `[SCHEME:]NAME[:PORT]` of a pods/proxy name segment.
fn split_proxy_name(raw: &str) -> Result<(&str, &str, &str), ApiError> {
    let parts: Vec<&str> = raw.split(':').collect();
    match parts.as_slice() {
        [name] => Ok(("", name, "")),
        [name, port] => Ok(("", name, port)),
        [scheme, name, port] => Ok((scheme, name, port)),
        _ => Err(ApiError::bad_request(format!("invalid pod proxy name {raw:?}"))),
    }
}

/// The port number a proxy request targets: a number, a named container port, or the
/// first declared container port when none is given.
fn proxy_port(pod: &Value, name: &str, port: &str) -> Result<u16, ApiError> {
    let ports = || pod["spec"]["containers"].as_array().into_iter().flatten().flat_map(|c| c["ports"].as_array().into_iter().flatten());
    if port.is_empty() {
        return Ok(ports().find_map(|p| p["containerPort"].as_u64()).and_then(|p| u16::try_from(p).ok()).unwrap_or(80));
    }
    if let Ok(n) = port.parse::<u16>() {
        if n == 0 {
            return Err(ApiError::bad_request(format!("invalid port {port} for pod {name}")));
        }
        return Ok(n);
    }
    ports()
        .find(|p| p["name"] == port)
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| ApiError::bad_request(format!("pod {name} has no container port named {port:?}")))
}

/// The path after `…/pods/NAME/proxy`, as sent (empty if none).
fn proxy_rest(path: &str) -> String {
    proxy_rest_of(path, "pods")
}

/// The path after `…/RESOURCE/NAME/proxy`, as sent (empty if none).
fn proxy_rest_of(path: &str, resource: &str) -> String {
    let segs: Vec<&str> = path.split('/').collect();
    match segs.iter().enumerate().position(|(i, s)| *s == resource && segs.get(i + 2) == Some(&"proxy")) {
        Some(i) if segs.len() > i + 3 => segs[i + 3..].join("/"),
        _ => String::new(),
    }
}

/// True for a path segment that is, or decodes to, `.` or `..`, or hides a separator:
/// forwarded to the node it could climb out of this pod's proxy path.
fn unsafe_segment(seg: &str) -> bool {
    let lower = seg.to_ascii_lowercase();
    let decoded = lower.replace("%2e", ".");
    decoded == "." || decoded == ".." || lower.contains("%2f") || lower.contains("%5c") || seg.contains('\\')
}

const HOP_BY_HOP: &[&str] =
    &["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "host"];

async fn proxy(app: &Arc<App>, info: &'static ResourceInfo, r: SubRequest<'_>) -> Result<Response, ApiError> {
    let raw = r.name.replace("%3A", ":").replace("%3a", ":");
    let (scheme, name, port) = split_proxy_name(&raw)?;
    if !(scheme.is_empty() || scheme == "http") {
        return Err(ApiError::bad_request(format!("scheme {scheme} is not supported for pod proxy; use http")));
    }
    let pod = app.api.get(info, Some(r.namespace), name)?;
    let port = proxy_port(&pod.value, name, port)?;
    let target = node_base(app, &pod.value, name)?;
    let base = &target.base;
    let rest = proxy_rest(r.uri.path());
    if rest.split('/').any(unsafe_segment) {
        return Err(ApiError::bad_request("the proxied path may not contain '.' or '..' segments or encoded separators"));
    }
    let url = format!("{base}/proxy/{}/{}/{port}/{}", path_segment(r.namespace), path_segment(name), rest);
    forward(app, &target, url, r).await
}

/// nodes/NAME/proxy/PATH: PATH of the node's own server (its `/metrics`, `/healthz`), as
/// kube-apiserver proxies to the kubelet. `NAME:PORT` names the node server's port anyway.
async fn node_proxy(app: &Arc<App>, r: SubRequest<'_>) -> Result<Response, ApiError> {
    let raw = r.name.replace("%3A", ":").replace("%3a", ":");
    let node = raw.split(':').next().unwrap_or("");
    let target = node_target(app, node)?;
    let rest = proxy_rest_of(r.uri.path(), "nodes");
    if rest.split('/').any(unsafe_segment) {
        return Err(ApiError::bad_request("the proxied path may not contain '.' or '..' segments or encoded separators"));
    }
    let url = format!("{}/{rest}", target.base);
    forward(app, &target, url, r).await
}

/// GET `path` (JSON) of Node `node`'s server with the admin token, within `timeout`
/// (metrics.k8s.io reads the nodes' `/stats/summary` this way).
pub(crate) async fn node_json(app: &App, node: &str, path: &str, timeout: Duration) -> Result<Value, ApiError> {
    let target = node_target(app, node)?;
    let resp = clients(target.sha256)?
        .http
        .get(format!("{}{path}", target.base))
        .bearer_auth(app.authn.admin_token())
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| unreachable_node(&e))?;
    if !resp.status().is_success() {
        return Err(ApiError::new(503, "ServiceUnavailable", format!("node {node} answered {} for {path}", resp.status())));
    }
    resp.json().await.map_err(|e| ApiError::new(503, "ServiceUnavailable", format!("node {node}: {}", chain(&e))))
}

/// Sends `r` to `url` on the node of `target` with the admin token, and streams back the
/// answer (hop-by-hop headers dropped both ways).
async fn forward(app: &Arc<App>, target: &NodeTarget, mut url: String, r: SubRequest<'_>) -> Result<Response, ApiError> {
    if let Some(query) = r.uri.query() {
        url.push('?');
        url.push_str(query);
    }
    let mut headers = HeaderMap::new();
    for (k, v) in &r.headers {
        if HOP_BY_HOP.contains(&k.as_str()) || k == header::AUTHORIZATION {
            continue;
        }
        headers.append(k.clone(), v.clone());
    }
    let has_body = r.headers.contains_key(header::CONTENT_LENGTH) || r.headers.contains_key(header::TRANSFER_ENCODING);
    let mut req = clients(target.sha256)?.http.request(r.method.clone(), &url).headers(headers).bearer_auth(app.authn.admin_token());
    if has_body || !matches!(r.method, Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS) {
        req = req.body(reqwest::Body::wrap_stream(r.body.into_data_stream()));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| ApiError::new(503, "ServiceUnavailable", format!("error trying to reach service: {}", chain(&e))))?;
    let mut out = Response::builder().status(resp.status());
    if let Some(h) = out.headers_mut() {
        for (k, v) in resp.headers() {
            if !HOP_BY_HOP.contains(&k.as_str()) {
                h.append(k.clone(), v.clone());
            }
        }
    }
    out.body(Body::from_stream(resp.bytes_stream())).map_err(|e| ApiError::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(containers: &[&str], init: &[&str]) -> Value {
        let c: Vec<Value> = containers.iter().map(|n| json!({"name": n, "image": "x"})).collect();
        let i: Vec<Value> = init.iter().map(|n| json!({"name": n, "image": "x"})).collect();
        json!({"metadata": {"name": "p"}, "spec": {"containers": c, "initContainers": i}})
    }

    #[test]
    fn container_selection_follows_kubernetes() {
        assert_eq!(pick_container(&pod(&["a"], &[]), "p", None).expect("only one"), "a");
        assert_eq!(pick_container(&pod(&["a", "b"], &["i"]), "p", Some("i")).expect("init ok"), "i");
        let e = pick_container(&pod(&["a", "b"], &[]), "p", None).expect_err("ambiguous");
        assert_eq!(e.code, 400);
        assert_eq!(e.message, "a container name must be specified for pod p, choose one of: [a b]");
        let e = pick_container(&pod(&["a", "b"], &["i"]), "p", None).expect_err("ambiguous");
        assert_eq!(e.message, "a container name must be specified for pod p, choose one of: [i a b]");
        let e = pick_container(&pod(&["a"], &[]), "p", Some("z")).expect_err("unknown");
        assert_eq!(e.message, "container z is not valid for pod p");
    }

    #[test]
    fn proxy_names_ports_and_paths() {
        assert_eq!(split_proxy_name("web").expect("name"), ("", "web", ""));
        assert_eq!(split_proxy_name("web:8080").expect("name:port"), ("", "web", "8080"));
        assert_eq!(split_proxy_name("http:web:8080").expect("scheme"), ("http", "web", "8080"));
        assert!(split_proxy_name("a:b:c:d").is_err());
        let p = json!({"spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]}});
        assert_eq!(proxy_port(&p, "web", "").expect("default"), 8080);
        assert_eq!(proxy_port(&p, "web", "http").expect("named"), 8080);
        assert_eq!(proxy_port(&p, "web", "9000").expect("number"), 9000);
        assert!(proxy_port(&p, "web", "nope").is_err());
        assert_eq!(proxy_rest("/api/v1/namespaces/default/pods/web:8080/proxy/a/b/"), "a/b/");
        assert_eq!(proxy_rest("/api/v1/namespaces/default/pods/web:8080/proxy"), "");
        assert_eq!(proxy_rest("/api/v1/namespaces/default/pods/web/proxy/"), "");
        for bad in ["..", ".", "%2e%2e", "%2E.", ".%2e", "a%2fb", "a%5Cb"] {
            assert!(unsafe_segment(bad), "{bad}");
        }
        for fine in ["a", "...", "a.b", "%2e%2e%2e"] {
            assert!(!unsafe_segment(fine), "{fine}");
        }
    }

    #[test]
    fn upgrade_headers_are_recognised() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(has_token(&h, header::CONNECTION, "upgrade"));
        assert!(has_token(&h, header::UPGRADE, "websocket"));
        h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        assert!(has_token(&h, header::UPGRADE, "spdy"));
        assert!(!has_token(&h, header::UPGRADE, "websocket"));
    }

    #[test]
    fn node_failures_keep_status_bodies() {
        let status = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"container c is waiting","code":400}"#;
        let r = node_failure(StatusCode::BAD_REQUEST, status);
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = node_failure(StatusCode::NOT_FOUND, b"no such pod");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }

    /// A fake node (HTTPS, self-signed) behind the real router: logs and proxy reach it
    /// with the admin token, and errors keep Kubernetes' shape.
    #[tokio::test]
    async fn logs_and_proxy_reach_the_node() {
        use axum::routing::{any, get};
        use tower::ServiceExt as _;
        const TOKEN: &str = "node-test-token";
        fn authorized(h: &HeaderMap) -> bool {
            h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
        }
        let node_router = axum::Router::new()
            .route(
                "/containerLogs/{ns}/{pod}/{c}",
                get(|axum::extract::Path((ns, pod, c)): axum::extract::Path<(String, String, String)>, uri: Uri, h: HeaderMap| async move {
                    if !authorized(&h) {
                        return (StatusCode::UNAUTHORIZED, String::new());
                    }
                    (StatusCode::OK, format!("{ns}/{pod}/{c} {}\n", uri.query().unwrap_or("")))
                }),
            )
            .route(
                "/proxy/{*rest}",
                any(|m: Method, uri: Uri, h: HeaderMap, body: axum::body::Bytes| async move {
                    if !authorized(&h) {
                        return (StatusCode::UNAUTHORIZED, String::new());
                    }
                    (StatusCode::CREATED, format!("{m} {uri} {}", String::from_utf8_lossy(&body)))
                }),
            );
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["node".to_string()]).expect("params").self_signed(&key).expect("cert");
        let chain = vec![rustls::pki_types::CertificateDer::from(cert.der().to_vec())];
        let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()));
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, key_der)
            .expect("server config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (trigger, shutdown) = super::super::Shutdown::new();
        tokio::spawn(super::super::serve_tls(listener, Arc::new(tls), node_router, shutdown.clone()));

        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(dir.path(), crate::store::StoreConfig::default()).expect("store");
        let api = super::super::Api::new(store, Arc::new(super::super::service::SystemClock));
        let opts = super::super::service::WriteOptions::default();
        let nodes = resources::find("", "v1", "nodes").expect("nodes");
        let pods = resources::find("", "v1", "pods").expect("pods");
        let ns_info = resources::find("", "v1", "namespaces").expect("namespaces");
        api.create(ns_info, None, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}), &opts).await.expect("ns");
        let pin = |der: &[u8]| {
            use sha2::Digest as _;
            sha2::Sha256::digest(der).iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "annotations": {SERVING_CERT_ANNOTATION: pin(cert.der())}}});
        let mut node = api.create(nodes, None, node, &opts).await.expect("node").object;
        node["status"] = json!({"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}], "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}});
        api.update(nodes, None, "n1", node, super::super::service::Part::Status, &opts).await.expect("node status");
        for (name, node_name, containers) in [("one", "n1", vec!["c"]), ("two", "n1", vec!["a", "b"]), ("pending", "", vec!["c"])] {
            let cs: Vec<Value> = containers.iter().map(|c| json!({"name": c, "image": "file:///x.wasm", "ports": [{"containerPort": 8080}]})).collect();
            let mut spec = json!({"containers": cs});
            if !node_name.is_empty() {
                spec["nodeName"] = json!(node_name);
            }
            let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": spec});
            api.create(pods, Some("default"), pod, &opts).await.expect("pod");
        }
        let app = super::super::test_app(api.clone(), TOKEN.to_string(), "127.0.0.1:6443".to_string(), shutdown);
        let router = super::super::test_router(app);
        let call = |method: Method, uri: &str, body: &'static str| {
            let req = axum::http::Request::builder()
                .method(method)
                .uri(uri)
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .header(header::CONTENT_LENGTH, body.len())
                .body(Body::from(body))
                .expect("request");
            let router = router.clone();
            async move {
                let resp = router.oneshot(req).await.expect("infallible");
                let status = resp.status();
                let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
                (status, String::from_utf8_lossy(&body).to_string())
            }
        };
        let (status, body) = call(Method::GET, "/api/v1/namespaces/default/pods/one/log?tailLines=5&follow=true", "").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, "default/one/c follow=true&tailLines=5\n");
        let (status, body) = call(Method::GET, "/api/v1/namespaces/default/pods/two/log", "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("a container name must be specified for pod two, choose one of: [a b]"), "{body}");
        let (status, body) = call(Method::GET, "/api/v1/namespaces/default/pods/two/log?container=b", "").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "default/two/b \n"));
        let (status, body) = call(Method::GET, "/api/v1/namespaces/default/pods/pending/log", "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("pod pending does not have a host assigned"), "{body}");
        let (status, body) = call(Method::GET, "/api/v1/namespaces/default/pods/nope/log", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains(r#"pods \"nope\" not found"#), "{body}");
        let (status, body) = call(Method::POST, "/api/v1/namespaces/default/pods/one:9090/proxy/echo/it/?x=1", "hello").await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(body, "POST /proxy/default/one/9090/echo/it/?x=1 hello");
        let (status, body) = call(Method::GET, "/api/v1/namespaces/default/pods/one/proxy/", "").await;
        assert_eq!((status, body.as_str()), (StatusCode::CREATED, "GET /proxy/default/one/8080/ "));
        let (status, body) = call(Method::GET, "/api/v1/namespaces/default/pods/one/exec?command=ls", "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("Upgrade request required"), "{body}");
        for sub in ["attach?stdout=true", "portforward?ports=8080"] {
            let (status, body) = call(Method::GET, &format!("/api/v1/namespaces/default/pods/one/{sub}"), "").await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{sub}");
            assert!(body.contains("Upgrade request required"), "{sub}: {body}");
        }
        let (status, _) = call(Method::GET, "/api/v1/namespaces/default/pods/nope/portforward", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // The credential only goes to the certificate the node registered.
        let repin = |value: Value| {
            let api = api.clone();
            async move {
                let mut node = api.get(nodes, None, "n1").expect("node").value.clone();
                node["metadata"]["annotations"] = value;
                api.update(nodes, None, "n1", node, super::super::service::Part::Main, &super::super::service::WriteOptions::default()).await.expect("annotate");
            }
        };
        let other = rcgen::CertificateParams::new(vec!["node".to_string()]).expect("params").self_signed(&rcgen::KeyPair::generate().expect("key")).expect("cert");
        repin(json!({SERVING_CERT_ANNOTATION: pin(other.der())})).await;
        let (status, body) = call(Method::GET, "/api/v1/namespaces/default/pods/one/log", "").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(body.contains("error dialing backend") && body.contains("certificate"), "{body}");
        let (status, _) = call(Method::GET, "/api/v1/namespaces/default/pods/one/proxy/", "").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        repin(json!({})).await;
        let (status, body) = call(Method::GET, "/api/v1/namespaces/default/pods/one/log", "").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(body.contains("node n1 has not registered its serving certificate"), "{body}");
        trigger.trigger();
    }
}
