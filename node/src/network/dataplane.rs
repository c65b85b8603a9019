//! The pod network between nodes. Every node runs a data-plane listener ([`serve`]) and
//! keeps a pool of client connections to the others ([`Peers`]). A request whose route
//! lands on a pod address of another node (after Service resolution, `resolve.rs`) goes to
//! that node's listener as a [`Hop`] (the runtime's [`Forward`]); the listener delivers it
//! in-process to the target pod's container by port, as a request made on that node would
//! be (`Routing::serve_addr`).
//!
//! Where: the listener takes a free port on the node's bind address and the node
//! publishes it in its Node's annotation [`flotilla_api::DATA_PLANE_PORT_ANNOTATION`];
//! peers dial the Node's InternalIP on that port (`table.rs`, [`super::table::Peer`]).
//!
//! Wire protocol: HTTP/2 over TLS (ALPN `h2`), so one connection multiplexes every
//! request between two nodes.
//! - A wasi:http request is an HTTP/2 request with the guest's method, path and query,
//!   headers (its Host among them) and body; `:authority` is the target pod address
//!   `IP:PORT`; [`SOURCE_HEADER`] carries the calling pod's IP (for NetworkPolicy ingress
//!   on the target's node). The target pod sees the request without either.
//! - A TCP connection (wasi:sockets, [`Peers::tcp`]) is `CONNECT` with `:authority` =
//!   `IP:PORT` (RFC 9113 §8.5) and the calling pod in [`SOURCE_HEADER`]; the listener
//!   queues it on the target pod's listener at once (`Routing::tcp_inbound`) or, when no
//!   listener takes it, hands it to the HTTP container on that port (served as HTTP by
//!   `external::serve_opened`: clients from outside the pod network come this way) and
//!   answers 200, the stream's DATA frames then carrying the connection's bytes both ways
//!   (an end of stream is the sender's shutdown), or refuses it as below.
//! - When nobody takes a request (no such pod on the node, no container on that port, a
//!   peer no longer trusted) the listener answers 503 with [`REFUSED_HEADER`] (the reason);
//!   the client turns that into connection-refused. The header is removed from pods' own
//!   responses, so a pod's 503 stays a response.
//!
//! Trust (`dataplane/tls.rs`): nodes have no CA-signed certificates (the cluster CA's key
//! stays with the control plane), so the data plane uses what the API server already
//! trusts: each node presents the self-signed certificate of its node server, whose
//! SHA-256 its Node publishes in [`flotilla_api::SERVING_CERT_ANNOTATION`]. A client
//! accepts only the pin on the target's Node; the listener accepts only a client
//! certificate whose pin is on a Node of its routing table, at the handshake and again at
//! every request (a node removed from the cluster loses access at its next request).
//! Whoever may write Node objects may thus join the data plane, as with the API server's
//! pinning.
//!
//! Invariants: one pooled HTTP/2 connection per peer (address, pin), reused by every
//! request; a dead connection is replaced at the next request, and a request it had not
//! yet sent is retried once on a fresh one; connecting (TCP, TLS and HTTP/2 handshakes)
//! gives up after [`CONNECT_TIMEOUT`] (or the guest's connect timeout) with
//! connection-refused; an unknown node, a Node without published address or pin, a refused
//! connection or a failed handshake is connection-refused within that time, never a hang;
//! HTTP/2 keep-alive pings close a connection to a silent peer; at shutdown the listener
//! stops accepting and its connections finish their requests (GOAWAY).

mod tls;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::client::conn::http2::{self as client_h2, SendRequest};
use hyper::server::conn::http2 as server_h2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::external::{Opened, serve_opened};
use super::router::Routing;
use super::table::Table;
use super::tcp::{ByteStream, Conn, Dial, TcpError};
use crate::runtime::{BoxBody, Dispatch, Forward, ForwardError};
use crate::server::{accept, shutdown_signal};

pub(crate) use self::tls::sha256;

/// How long connecting to a peer (TCP, TLS, HTTP/2) may take before the request is
/// refused; with the rest of a request's work, a failed route shows within 3 s.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a peer may take over the listener's TLS handshake.
const ACCEPT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 pings on idle and busy connections, and how long a ping may go unanswered.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long open connections may finish their requests after shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Pooled connection slots kept before closed ones are swept.
const POOL_SWEEP_AT: usize = 64;

/// Response header of a refusal by the listener: the reason.
pub(crate) const REFUSED_HEADER: &str = "flotilla-refused";
/// Request header: the IP of the calling pod.
pub(crate) const SOURCE_HEADER: &str = "flotilla-source";

/// This node's certificate and its key, presented on both ends of the data plane.
pub(crate) struct Identity {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("sha256", &hex(&sha256(&self.cert))).finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A peer's data plane as dialled: its address and the pin its certificate must match.
type PeerKey = (SocketAddr, [u8; 32]);
/// One pooled connection (None until connected, or after it died).
type Slot = Arc<tokio::sync::Mutex<Option<SendRequest<BoxBody>>>>;

/// The client side: pooled HTTP/2 connections to the other nodes' listeners.
pub(crate) struct Peers {
    identity: Arc<Identity>,
    conns: Mutex<HashMap<PeerKey, Slot>>,
    /// Connections made so far.
    connected: AtomicU64,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers").field("identity", &self.identity).finish_non_exhaustive()
    }
}

impl Peers {
    pub fn new(identity: Arc<Identity>) -> Arc<Peers> {
        Arc::new(Peers { identity, conns: Mutex::default(), connected: AtomicU64::new(0) })
    }

    /// The dispatch of a request from the pod at `source` to `target`, a pod address of
    /// `node` (another node), or why it is refused.
    pub fn hop(self: &Arc<Self>, table: &Table, node: &str, target: SocketAddr, source: Option<IpAddr>) -> Result<Dispatch, &'static str> {
        let peer = table.peer(node).ok_or("the target pod's node is unknown")?;
        let addr = peer.addr.ok_or("the target pod's node publishes no data-plane address")?;
        let pin = peer.pin.ok_or("the target pod's node publishes no certificate pin")?;
        Ok(Dispatch::Remote(Box::new(Hop { peers: self.clone(), key: (addr, pin), target, source })))
    }

    /// A TCP connection from the pod at `source` to `target`, a pod address of `node`
    /// (another node): an HTTP/2 CONNECT tunnel on the pooled connection, or why it is
    /// refused. The tunnel is refused when the target's node refuses it (nobody listens
    /// there) or cannot be reached within [`CONNECT_TIMEOUT`].
    pub fn tcp(self: &Arc<Self>, table: &Table, node: &str, target: SocketAddr, source: Option<IpAddr>) -> Result<Dial, &'static str> {
        let peer = table.peer(node).ok_or("the target pod's node is unknown")?;
        let addr = peer.addr.ok_or("the target pod's node publishes no data-plane address")?;
        let pin = peer.pin.ok_or("the target pod's node publishes no certificate pin")?;
        let peers = self.clone();
        Ok(Dial(Box::pin(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, peers.tunnel((addr, pin), target, source)).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::debug!(peer = %addr, "data plane: opening a TCP tunnel timed out; connection refused");
                    Err(TcpError::Refused)
                }
            }
        })))
    }

    async fn tunnel(&self, key: PeerKey, target: SocketAddr, source: Option<IpAddr>) -> Result<Box<dyn ByteStream>, TcpError> {
        let mut fresh = false;
        loop {
            let mut sender = self.sender(key, fresh).await.map_err(|_| TcpError::Refused)?;
            let mut request = Request::builder().method(Method::CONNECT).uri(target.to_string());
            if let Some(ip) = source {
                request = request.header(SOURCE_HEADER, ip.to_string());
            }
            let body = http_body_util::Empty::<Bytes>::new().map_err(|never| match never {}).boxed_unsync();
            let request = request.body(body).map_err(|_| TcpError::Refused)?;
            let response = match sender.try_send_request(request).await {
                Ok(r) => r,
                // Not sent: the pooled connection had died. Once more, on a new one.
                Err(e) if !fresh && e.message().is_some() => {
                    fresh = true;
                    continue;
                }
                Err(e) => {
                    tracing::debug!(peer = %key.0, error = %e.into_error(), "data plane: TCP tunnel failed");
                    return Err(TcpError::Refused);
                }
            };
            if response.status() != StatusCode::OK {
                tracing::debug!(peer = %key.0, status = %response.status(), reason = ?response.headers().get(REFUSED_HEADER), "data plane: the target's node refused the TCP connection");
                return Err(TcpError::Refused);
            }
            let upgraded = hyper::upgrade::on(response).await.map_err(|e| {
                tracing::debug!(peer = %key.0, error = %e, "data plane: TCP tunnel upgrade failed");
                TcpError::Refused
            })?;
            return Ok(Box::new(TokioIo::new(upgraded)));
        }
    }

    /// A connection to `key`: the pooled one while it lives (unless `fresh`), else a new
    /// one, which the pool keeps. Concurrent callers for one peer wait for one connect.
    async fn sender(&self, key: PeerKey, fresh: bool) -> Result<SendRequest<BoxBody>, ForwardError> {
        let slot = {
            let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
            if conns.len() >= POOL_SWEEP_AT {
                conns.retain(|_, s| s.try_lock().map_or(true, |c| c.as_ref().is_some_and(|c| !c.is_closed())));
            }
            conns.entry(key).or_default().clone()
        };
        let mut slot = slot.lock().await;
        if !fresh && let Some(s) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        *slot = None;
        let sender = connect(&self.identity, key).await?;
        self.connected.fetch_add(1, Ordering::Relaxed);
        *slot = Some(sender.clone());
        Ok(sender)
    }
}

/// A new HTTP/2 connection to the listener at `key`, its driver spawned.
async fn connect(identity: &Identity, (addr, pin): PeerKey) -> Result<SendRequest<BoxBody>, ForwardError> {
    let refused = |what: &str, e: &dyn std::fmt::Display| {
        tracing::debug!(peer = %addr, error = %e, "data plane: {what} failed; connection refused");
        ForwardError::Refused
    };
    let config = tls::client_config(identity, pin).map_err(|e| refused("client TLS setup", &e))?;
    let tcp = TcpStream::connect(addr).await.map_err(|e| refused("connecting", &e))?;
    let _ = tcp.set_nodelay(true);
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .map_err(|e| refused("the TLS handshake", &e))?;
    // The listener's first bytes (its HTTP/2 SETTINGS) confirm it took our certificate:
    // with TLS 1.3 a rejection arrives only now, as an alert.
    let mut tls = tls;
    let mut first = vec![0u8; 256];
    let n = tls.read(&mut first).await.map_err(|e| refused("the listener's greeting", &e))?;
    if n == 0 {
        return Err(refused("the listener's greeting", &"connection closed"));
    }
    first.truncate(n);
    let stream = Prefixed { prefix: Bytes::from(first), inner: tls };
    let (sender, conn) = client_h2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| refused("the HTTP/2 handshake", &e))?;
    tokio::spawn(async move {
        if let Err(error) = conn.await {
            tracing::debug!(peer = %addr, %error, "data plane connection ended");
        }
    });
    Ok(sender)
}

/// A stream whose first bytes were read ahead: they are read again first.
struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One request's way to a pod of another node.
struct Hop {
    peers: Arc<Peers>,
    key: PeerKey,
    target: SocketAddr,
    source: Option<IpAddr>,
}

impl Forward for Hop {
    fn forward(self: Box<Self>, request: Request<BoxBody>, connect_timeout: Option<Duration>) -> BoxFuture<'static, Result<Response<BoxBody>, ForwardError>> {
        Box::pin(self.send(request, connect_timeout.unwrap_or(CONNECT_TIMEOUT)))
    }
}

impl Hop {
    async fn send(self: Box<Self>, request: Request<BoxBody>, connect_timeout: Duration) -> Result<Response<BoxBody>, ForwardError> {
        let mut request = outbound(request, self.target, self.source);
        let mut fresh = false;
        loop {
            let sender = tokio::time::timeout(connect_timeout, self.peers.sender(self.key, fresh)).await;
            let mut sender = sender.map_err(|_| {
                tracing::debug!(peer = %self.key.0, "data plane: connecting timed out; connection refused");
                ForwardError::Refused
            })??;
            match sender.try_send_request(request).await {
                Ok(response) => return inbound(response),
                Err(mut e) => match e.take_message() {
                    // Not sent: the pooled connection had died. Once more, on a new one.
                    Some(unsent) if !fresh => {
                        request = unsent;
                        fresh = true;
                    }
                    _ => return Err(ForwardError::Terminated(e.into_error().into())),
                },
            }
        }
    }
}

/// The guest's request as the wire carries it: `:authority` the target pod, the Host
/// header the guest's, the source pod in [`SOURCE_HEADER`].
fn outbound(request: Request<BoxBody>, target: SocketAddr, source: Option<IpAddr>) -> Request<BoxBody> {
    let (mut parts, body) = request.into_parts();
    if !parts.headers.contains_key(header::HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        parts.headers.insert(header::HOST, host);
    }
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    parts.uri = format!("http://{target}{path}").parse().unwrap_or_else(|_| http::Uri::from_static("/"));
    parts.version = http::Version::HTTP_2;
    match source.and_then(|ip| HeaderValue::from_str(&ip.to_string()).ok()) {
        Some(ip) => parts.headers.insert(SOURCE_HEADER, ip),
        None => parts.headers.remove(SOURCE_HEADER),
    };
    Request::from_parts(parts, body)
}

/// The listener's answer: a refusal, or the pod's response.
fn inbound(response: Response<Incoming>) -> Result<Response<BoxBody>, ForwardError> {
    if let Some(why) = response.headers().get(REFUSED_HEADER) {
        tracing::debug!(reason = ?why, "data plane: the target's node refused the request");
        return Err(ForwardError::Refused);
    }
    Ok(response.map(|body| body.map_err(std::io::Error::other).boxed_unsync()))
}

/// What the listener checks and where it delivers: this node's pods, and the pins of
/// the nodes it trusts.
pub(crate) trait Delivery: Send + Sync + 'static {
    /// Whether a node of the cluster published certificate pin `pin`.
    fn trusted(&self, pin: &[u8; 32]) -> bool;
    /// The HTTP service of this node's pod serving `addr`.
    fn service(&self, addr: SocketAddr) -> Option<Arc<crate::runtime::HttpService>>;
    /// A TCP connection from `from` (another node's pod) to this node's pod at `to`.
    fn tcp(&self, _from: SocketAddr, _to: SocketAddr) -> Result<Conn, TcpError> {
        Err(TcpError::Refused)
    }
}

impl Delivery for Routing {
    fn trusted(&self, pin: &[u8; 32]) -> bool {
        self.table().node_with_pin(pin).is_some()
    }

    fn service(&self, addr: SocketAddr) -> Option<Arc<crate::runtime::HttpService>> {
        self.serve_addr(addr)
    }

    fn tcp(&self, from: SocketAddr, to: SocketAddr) -> Result<Conn, TcpError> {
        self.tcp_inbound(from, to)
    }
}


/// Serves the data plane on `listener` until `shutdown` turns true: stops accepting, and
/// open connections get [`DRAIN_TIMEOUT`] to finish their requests.
pub(crate) async fn serve(listener: TcpListener, identity: Arc<Identity>, delivery: Arc<dyn Delivery>, shutdown: watch::Receiver<bool>) {
    let trust = delivery.clone();
    let config = match tls::server_config(&identity, Arc::new(move |pin: &[u8; 32]| trust.trusted(pin))) {
        Ok(c) => Arc::new(c),
        Err(error) => return tracing::error!(%error, "data plane: TLS setup failed; other nodes cannot reach this node's pods"),
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let stop = shutdown_signal(shutdown.clone());
    tokio::pin!(stop);
    while let Some((stream, peer)) = accept(&listener, &mut stop, "data plane").await {
        let (acceptor, delivery, shutdown) = (acceptor.clone(), delivery.clone(), shutdown.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(ACCEPT_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => return tracing::debug!(%error, %peer, "data plane TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "data plane TLS handshake timed out"),
            };
            let Some(pin) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| sha256(c)) else {
                return tracing::debug!(%peer, "data plane peer presented no certificate");
            };
            let svc = service_fn(move |req| {
                let delivery = delivery.clone();
                async move { Ok::<_, std::convert::Infallible>(deliver(&*delivery, &pin, req).await) }
            });
            let conn = server_h2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(KEEPALIVE_INTERVAL)
                .keep_alive_timeout(KEEPALIVE_TIMEOUT)
                .serve_connection(TokioIo::new(tls), svc);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = shutdown_signal(shutdown) => {
                    conn.as_mut().graceful_shutdown();
                    match tokio::time::timeout(DRAIN_TIMEOUT, conn).await {
                        Ok(r) => r,
                        Err(_) => Ok(()),
                    }
                }
            };
            if let Err(error) = result {
                tracing::debug!(%error, %peer, "data plane connection ended");
            }
        });
    }
}

/// Answers one request of a peer whose certificate has pin `pin`.
async fn deliver(delivery: &dyn Delivery, pin: &[u8; 32], request: Request<Incoming>) -> Response<BoxBody> {
    if !delivery.trusted(pin) {
        return refusal("the peer is not a node of the cluster");
    }
    if request.method() == Method::CONNECT {
        return tunnel(delivery, request);
    }
    let Some(target) = request.uri().authority().and_then(|a| a.as_str().parse::<SocketAddr>().ok()) else {
        return refusal("the request names no pod address");
    };
    let Some(service) = delivery.service(target) else {
        return refusal("no container of a pod of this node listens there");
    };
    let (mut parts, body) = request.into_parts();
    parts.uri = match parts.uri.path_and_query() {
        Some(pq) => http::Uri::from(pq.clone()),
        None => http::Uri::from_static("/"),
    };
    parts.headers.remove(SOURCE_HEADER);
    let body = body.map_err(std::io::Error::other).boxed_unsync();
    let mut response = service.handle(Request::from_parts(parts, body)).await;
    response.headers_mut().remove(REFUSED_HEADER);
    response
}

/// A TCP connection from another node's pod (CONNECT): accepted by the target pod's
/// listener at once, then bridged to the stream once hyper hands it over.
fn tunnel(delivery: &dyn Delivery, request: Request<Incoming>) -> Response<BoxBody> {
    let Some(target) = request.uri().authority().and_then(|a| a.as_str().parse::<SocketAddr>().ok()) else {
        return refusal("the request names no pod address");
    };
    let source = request.headers().get(SOURCE_HEADER).and_then(|v| v.to_str().ok()?.parse::<IpAddr>().ok());
    let from = SocketAddr::new(source.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)), 0);
    // A wasi:sockets listener takes the connection; else an HTTP container on that port
    // serves it (a client outside the pod network came through another node).
    let opened = match delivery.tcp(from, target) {
        Ok(conn) => Opened::Tcp(conn),
        Err(_) => match delivery.service(target) {
            Some(service) => Opened::Http(service),
            None => return refusal("nobody listens on that port of a pod of this node"),
        },
    };
    tokio::spawn(async move {
        match hyper::upgrade::on(request).await {
            Ok(upgraded) => serve_opened(opened, TokioIo::new(upgraded)).await,
            Err(error) => tracing::debug!(%error, %target, "data plane: TCP tunnel upgrade failed"),
        }
    });
    let body = http_body_util::Empty::<Bytes>::new().map_err(|never| match never {}).boxed_unsync();
    Response::new(body)
}

fn plain(status: StatusCode, text: &'static str) -> Response<BoxBody> {
    let body = http_body_util::Full::new(Bytes::from_static(text.as_bytes())).map_err(|never| match never {}).boxed_unsync();
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// The listener's "nobody takes this": 503 with [`REFUSED_HEADER`].
fn refusal(why: &'static str) -> Response<BoxBody> {
    tracing::debug!("data plane: refused: {why}");
    let mut r = plain(StatusCode::SERVICE_UNAVAILABLE, "refused\n");
    r.headers_mut().insert(REFUSED_HEADER, HeaderValue::from_static(why));
    r
}
