//! The Ingress listeners: HTTP/1.1 and HTTP/2 (cleartext, and over TLS with ALPN), each
//! request routed by the current [`Rules`] to a ready backend of the Service port and
//! proxied there.
//!
//! Invariants:
//! - plain HTTP for a host whose Ingress asks for it (`rules.rs`) is redirected (308) to
//!   the same URL over HTTPS on the TLS listener's port, when there is one;
//! - a request no rule (and no default backend) takes gets 404; a matched backend whose
//!   Service, port or ready endpoint is missing, or whose pod refuses the connection
//!   (NetworkPolicy: the client is an `ipBlock` peer), gets 503; a pod that fails once
//!   connected gets 502;
//! - the backend sees the client's request with `X-Forwarded-For` (the client address
//!   appended), `X-Forwarded-Proto` (`http`/`https`) and `X-Forwarded-Host` set, and
//!   without hop-by-hop headers (RFC 9110 §7.6.1: `Connection` and those it names,
//!   `Keep-Alive`, `Proxy-Connection`, `TE` other than `trailers`, `Transfer-Encoding`,
//!   `Upgrade`); the client gets the response without them either (upgrades are not
//!   proxied);
//! - an HTTP container of this node is called in-process (no socket); a TCP container or
//!   a pod of another node gets one HTTP/1.1 connection per request over the byte stream
//!   `Routing::open_outside` opens.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HOST, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use super::State;
use super::rules::{Backend, Route, ServicePort, Target};
use crate::network::Routing;
use crate::network::external::Opened;
use crate::network::table::{Backends, Table};
use crate::network::tcp::{ByteStream, Dial, bridge};
use crate::runtime::BoxBody;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Buffer of the in-memory stream to a TCP container.
const PIPE_BYTES: usize = 64 * 1024;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// What every connection of the listeners shares.
pub(crate) struct Proxy {
    pub routing: Arc<Routing>,
    pub state: Arc<State>,
    /// The HTTPS listener's port, where redirects to HTTPS go.
    pub https_port: Option<u16>,
}

/// Accepts connections on `listener` until `shutdown` turns true; with `tls`, each is a
/// TLS connection first.
pub(crate) async fn serve(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>, proxy: Arc<Proxy>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    tracing::warn!(%error, "ingress listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(proxy, stream, client, "http").await,
                Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => serve_connection(proxy, stream, client, "https").await,
                    Ok(Err(error)) => tracing::debug!(%client, %error, "ingress: TLS handshake failed"),
                    Err(_) => tracing::debug!(%client, "ingress: TLS handshake timed out"),
                },
            }
        });
    }
}

async fn serve_connection<S: ByteStream>(proxy: Arc<Proxy>, stream: S, client: SocketAddr, scheme: &'static str) {
    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
        let proxy = proxy.clone();
        async move {
            let req = req.map(|b| b.map_err(std::io::Error::other).boxed_unsync());
            Ok::<_, std::convert::Infallible>(proxy.handle(req, client, scheme).await)
        }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if let Err(error) = builder.serve_connection(TokioIo::new(stream), svc).await {
        tracing::debug!(%client, %error, "ingress connection ended");
    }
}

fn plain(status: StatusCode, text: String) -> Response<BoxBody> {
    let body = http_body_util::Full::new(bytes::Bytes::from(text)).map_err(|never| match never {}).boxed_unsync();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// The ready backends of the Service port `backend` names.
fn backends_of(table: &Table, backend: &Backend) -> Option<Arc<Backends>> {
    let service = table.service(&backend.namespace, &backend.service)?;
    let port = service.ports.iter().find(|p| match &backend.port {
        ServicePort::Number(n) => p.port == *n,
        ServicePort::Name(name) => p.name == *name,
    })?;
    Some(port.backends.clone())
}

fn describe(backend: &Backend) -> String {
    let port = match &backend.port {
        ServicePort::Number(n) => n.to_string(),
        ServicePort::Name(n) => n.clone(),
    };
    format!("{}/{}:{port}", backend.namespace, backend.service)
}

/// The request's host: `:authority` (HTTP/2, absolute-form), else the Host header.
fn host_of<B>(req: &Request<B>) -> String {
    if let Some(a) = req.uri().authority() {
        return a.as_str().to_string();
    }
    req.headers().get(HOST).and_then(|h| h.to_str().ok()).unwrap_or_default().to_string()
}

/// Removes the hop-by-hop headers of one connection.
fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [http::header::CONNECTION, http::header::TRANSFER_ENCODING, http::header::UPGRADE, http::header::PROXY_AUTHENTICATE] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
    let te_trailers = headers.get(http::header::TE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("trailers")));
    headers.remove(http::header::TE);
    if te_trailers {
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Adds the X-Forwarded headers.
fn forwarded<B>(req: &mut Request<B>, client: SocketAddr, scheme: &'static str, host: &str) {
    let headers = req.headers_mut();
    let ip = client.ip().to_string();
    let chain = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(earlier) if !earlier.trim().is_empty() => format!("{earlier}, {ip}"),
        _ => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&chain) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(scheme));
    if let Ok(v) = HeaderValue::from_str(host) {
        headers.insert(X_FORWARDED_HOST.clone(), v);
    }
}

impl Proxy {
    async fn handle(&self, mut req: Request<BoxBody>, client: SocketAddr, scheme: &'static str) -> Response<BoxBody> {
        let host = host_of(&req);
        let backend = {
            let rules = self.state.rules();
            if scheme == "http"
                && let Some(port) = self.https_port
                && rules.https_only(&host)
            {
                return redirect_to_https(&host, port, &req);
            }
            match rules.route(&host, req.uri().path()) {
                Route::NotFound => return plain(StatusCode::NOT_FOUND, format!("404 Not Found: no Ingress rule for host {host:?} path {:?}\n", req.uri().path())),
                Route::Matched(Target::None) => return plain(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable: the Ingress backend is not a Service port\n".into()),
                Route::Matched(Target::Service(b)) => b.clone(),
            }
        };
        let unavailable = || plain(StatusCode::SERVICE_UNAVAILABLE, format!("503 Service Unavailable: no ready endpoint of Service {}\n", describe(&backend)));
        let table = self.routing.table();
        let Some(backends) = backends_of(&table, &backend) else { return unavailable() };
        let Some(addr) = self.routing.pick_outside(&table, &backends, client.ip(), false) else { return unavailable() };
        strip_hop_by_hop(req.headers_mut());
        forwarded(&mut req, client, scheme, &host);
        let opened = match self.routing.open_outside(&table, client, addr) {
            Ok(o) => o,
            Err(_) => return unavailable(),
        };
        let result = match opened {
            Opened::Http(service) => Ok(service.handle(req).await),
            Opened::Tcp(conn) => {
                let (ours, theirs) = tokio::io::duplex(PIPE_BYTES);
                bridge(conn, theirs);
                http1(ours, req).await
            }
            Opened::Remote(Dial(dial)) => match dial.await {
                Ok(stream) => http1(stream, req).await,
                Err(_) => return unavailable(),
            },
        };
        let mut resp = result.unwrap_or_else(|error| {
            tracing::debug!(%client, backend = %describe(&backend), %addr, %error, "ingress: the backend failed");
            plain(StatusCode::BAD_GATEWAY, format!("502 Bad Gateway: Service {} did not answer\n", describe(&backend)))
        });
        strip_hop_by_hop(resp.headers_mut());
        resp
    }
}

/// 308 to the request's URL over HTTPS on `port`.
fn redirect_to_https<B>(host: &str, port: u16, req: &Request<B>) -> Response<BoxBody> {
    let name = match host.strip_prefix('[') {
        Some(v6) => format!("[{}]", v6.split(']').next().unwrap_or(v6)),
        None => host.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(h, _)| h).to_string(),
    };
    let authority = if port == 443 { name } else { format!("{name}:{port}") };
    let location = format!("https://{authority}{}", req.uri().path_and_query().map_or("/", |p| p.as_str()));
    let mut resp = plain(StatusCode::PERMANENT_REDIRECT, format!("308 Permanent Redirect: {location}\n"));
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(http::header::LOCATION, v);
    }
    resp
}

/// Sends `req` as HTTP/1.1 over `stream` (one request per connection).
async fn http1<S: ByteStream>(stream: S, mut req: Request<BoxBody>) -> Result<Response<BoxBody>, hyper::Error> {
    if !req.headers().contains_key(HOST)
        && let Some(v) = req.uri().authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        req.headers_mut().insert(HOST, v);
    }
    let origin = req.uri().path_and_query().map_or("/", |p| p.as_str());
    if let Ok(uri) = origin.parse() {
        *req.uri_mut() = uri;
    }
    *req.version_mut() = http::Version::HTTP_11;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(error) = conn.await {
            tracing::debug!(%error, "ingress: backend connection ended");
        }
    });
    let resp = sender.send_request(req).await?;
    Ok(resp.map(|b| b.map_err(std::io::Error::other).boxed_unsync()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_headers_append_the_client_and_name_scheme_and_host() {
        let client: SocketAddr = "192.0.2.7:5000".parse().expect("addr");
        let mut req = Request::builder().uri("/x").header("x-forwarded-for", "10.0.0.1").body(()).expect("req");
        forwarded(&mut req, client, "https", "a.test:8443");
        assert_eq!(req.headers()["x-forwarded-for"], "10.0.0.1, 192.0.2.7");
        assert_eq!(req.headers()["x-forwarded-proto"], "https");
        assert_eq!(req.headers()["x-forwarded-host"], "a.test:8443");
        let mut req = Request::builder().uri("/x").header("x-forwarded-proto", "https").body(()).expect("req");
        forwarded(&mut req, client, "http", "a.test");
        assert_eq!(req.headers()["x-forwarded-for"], "192.0.2.7");
        assert_eq!(req.headers()["x-forwarded-proto"], "http", "a client's claim is replaced");
    }

    #[test]
    fn hop_by_hop_headers_are_dropped_te_trailers_kept() {
        let mut req = Request::builder()
            .uri("/")
            .header("connection", "keep-alive, X-Secret")
            .header("x-secret", "1")
            .header("keep-alive", "timeout=5")
            .header("upgrade", "websocket")
            .header("te", "gzip, trailers")
            .header("transfer-encoding", "chunked")
            .header("accept", "*/*")
            .body(())
            .expect("req");
        strip_hop_by_hop(req.headers_mut());
        let left: Vec<String> = req.headers().iter().map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or(""))).collect();
        assert_eq!(left, ["accept: */*", "te: trailers"]);
    }

    #[test]
    fn redirects_keep_host_path_and_query_on_the_tls_port() {
        let req = Request::builder().uri("/p/q?x=1").body(()).expect("req");
        let location = |host, port| redirect_to_https(host, port, &req).headers()[http::header::LOCATION].to_str().expect("ascii").to_string();
        assert_eq!(location("a.test:8080", 8443), "https://a.test:8443/p/q?x=1");
        assert_eq!(location("a.test", 443), "https://a.test/p/q?x=1");
        assert_eq!(location("[::1]:80", 8443), "https://[::1]:8443/p/q?x=1");
    }

    #[test]
    fn host_from_authority_else_the_host_header() {
        let req = Request::builder().uri("https://h2.test/p").header("host", "other").body(()).expect("req");
        assert_eq!(host_of(&req), "h2.test");
        let req = Request::builder().uri("/p").header("host", "h1.test:8080").body(()).expect("req");
        assert_eq!(host_of(&req), "h1.test:8080");
    }
}
