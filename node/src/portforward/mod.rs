//! `kubectl port-forward` on the node (the kubelet's `/portForward/{namespace}/{pod}`):
//! the upgrade handshake, then one SPDY/3.1 session ([`session`], framing in [`spdy`]).
//!
//! kubectl 1.32 first asks for a WebSocket with subprotocol
//! `SPDY/3.1+portforward.k8s.io` and sends the SPDY bytes inside binary messages (any
//! split: the messages are a byte stream); when that upgrade fails it asks for a plain
//! `Upgrade: SPDY/3.1` with `X-Stream-Protocol-Version: portforward.k8s.io`. Both end in
//! the same session. The API server passes either upgrade through unchanged
//! (control/src/apiserver/node_proxy.rs).
//!
//! Invariants: a pod port is opened as from localhost inside the pod
//! (`Routing::open_forwarded`: a wasi:sockets listener, else the HTTP container serving
//! that port), so NetworkPolicy does not apply, as in Kubernetes; sessions end when the
//! node server shuts down.

pub(crate) mod session;
pub(crate) mod spdy;

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{SinkExt as _, StreamExt as _};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

pub(crate) use session::Forward;
use session::{STREAM_CREATION_TIMEOUT, Target};

use crate::network::Routing;
use crate::network::external::serve_opened;
use crate::pod_table::{PodEntry, PodTable};
use crate::runtime::BoxBody;
use crate::server::{header_has_token, text};

/// The only port-forward protocol there is.
pub(crate) const PROTOCOL: &str = "portforward.k8s.io";
/// The WebSocket subprotocol that tunnels it.
pub(crate) const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
const STREAM_PROTOCOL_HEADER: &str = "x-stream-protocol-version";

impl Forward for Routing {
    fn connect(&self, pod: &PodEntry, port: u16, stream: DuplexStream) -> Result<BoxFuture<'static, ()>, String> {
        let opened = self.open_forwarded(pod, port).map_err(|e| format!("failed to connect to localhost:{port} inside the pod: {e}"))?;
        Ok(Box::pin(serve_opened(opened, stream)))
    }
}

/// Comma-separated values of every `name` header, trimmed.
fn header_values(req: &Request<Incoming>, name: impl header::AsHeaderName) -> Vec<String> {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn switching() -> Response<BoxBody> {
    let mut r = Response::new(http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    r
}

/// `/portForward/{namespace}/{pod}`: answers the upgrade and serves the session.
pub(crate) fn serve(
    pods: &PodTable,
    forward: Arc<dyn Forward>,
    namespace: &str,
    name: &str,
    req: Request<Incoming>,
    shutdown: watch::Receiver<bool>,
) -> Response<BoxBody> {
    let Some(pod) = pods.get(namespace, name) else {
        return text(StatusCode::NOT_FOUND, format!("pod {name:?} does not exist"));
    };
    let target = Target { pod, forward, stream_timeout: STREAM_CREATION_TIMEOUT };
    let h = req.headers();
    if header_has_token(h, header::CONNECTION, "upgrade") && header_has_token(h, header::UPGRADE, "websocket") {
        return websocket(target, req, shutdown);
    }
    if header_has_token(h, header::CONNECTION, "upgrade") && header_has_token(h, header::UPGRADE, "spdy/3.1") {
        return spdy_upgrade(target, req, shutdown);
    }
    text(StatusCode::BAD_REQUEST, format!("port-forward needs an upgrade: WebSocket with subprotocol {TUNNEL_PROTOCOL}, or SPDY/3.1"))
}

fn websocket(target: Target, req: Request<Incoming>, shutdown: watch::Receiver<bool>) -> Response<BoxBody> {
    if req.method() != Method::GET {
        return text(StatusCode::BAD_REQUEST, "a WebSocket upgrade must be a GET");
    }
    if req.headers().get(header::SEC_WEBSOCKET_VERSION).is_none_or(|v| v.as_bytes() != b"13") {
        let mut r = text(StatusCode::UPGRADE_REQUIRED, "unsupported WebSocket version; use 13");
        r.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return r;
    }
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
    };
    let offered = header_values(&req, header::SEC_WEBSOCKET_PROTOCOL);
    if !offered.iter().any(|p| p == TUNNEL_PROTOCOL) {
        return text(StatusCode::BAD_REQUEST, format!("none of the offered subprotocols {offered:?} is supported; supported: {TUNNEL_PROTOCOL}"));
    }
    let accept = derive_accept_key(key.as_bytes());
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(error) => return tracing::debug!(%error, "port-forward upgrade failed"),
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let (tx, rx) = ws.split();
        // Binary messages are the byte stream; a close (or an error) ends it.
        let incoming = rx
            .take_while(|m| futures::future::ready(!matches!(m, Ok(Message::Close(_)) | Err(_))))
            .filter_map(|m| futures::future::ready(if let Ok(Message::Binary(b)) = m { Some(Ok::<_, io::Error>(b)) } else { None }));
        let outgoing =
            tx.with(|b: Bytes| futures::future::ready(Ok::<_, tokio_tungstenite::tungstenite::Error>(Message::Binary(b)))).sink_map_err(io::Error::other);
        session::run(Box::pin(incoming), outgoing, target, shutdown).await;
    });
    let mut r = switching();
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(TUNNEL_PROTOCOL));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

/// An upgraded connection as a stream of the bytes read and a sink of bytes to write (each
/// written and flushed in turn): how the SPDY sessions (port-forward, exec) see it.
pub(crate) fn byte_halves(
    upgraded: hyper::upgrade::Upgraded,
) -> (
    std::pin::Pin<Box<dyn futures::Stream<Item = io::Result<Bytes>> + Send>>,
    std::pin::Pin<Box<dyn futures::Sink<Bytes, Error = io::Error> + Send>>,
) {
    let (rd, wr) = tokio::io::split(TokioIo::new(upgraded));
    let incoming = futures::stream::unfold(rd, |mut rd| async move {
        let mut buf = vec![0u8; 32 * 1024];
        match rd.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), rd))
            }
            Err(e) => Some((Err(e), rd)),
        }
    });
    let outgoing = futures::sink::unfold(wr, |mut wr, b: Bytes| async move {
        wr.write_all(&b).await?;
        wr.flush().await?;
        Ok::<_, io::Error>(wr)
    });
    (Box::pin(incoming), Box::pin(outgoing))
}

fn spdy_upgrade(target: Target, req: Request<Incoming>, shutdown: watch::Receiver<bool>) -> Response<BoxBody> {
    // httpstream.Handshake: the client names its protocols; we speak one.
    let offered = header_values(&req, STREAM_PROTOCOL_HEADER);
    if offered.is_empty() {
        return text(StatusCode::BAD_REQUEST, "unable to upgrade: X-Stream-Protocol-Version is required");
    }
    if !offered.iter().any(|p| p == PROTOCOL) {
        let mut r =
            text(StatusCode::FORBIDDEN, format!("unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts [{PROTOCOL}]"));
        r.headers_mut().insert("x-accepted-stream-protocol-versions", HeaderValue::from_static(PROTOCOL));
        return r;
    }
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(error) => return tracing::debug!(%error, "port-forward upgrade failed"),
        };
        let (incoming, outgoing) = byte_halves(upgraded);
        session::run(incoming, outgoing, target, shutdown).await;
    });
    let mut r = switching();
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert(STREAM_PROTOCOL_HEADER, HeaderValue::from_static(PROTOCOL));
    r
}
