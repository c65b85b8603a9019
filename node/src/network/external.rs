//! Traffic from outside the pod network (NodePorts, the built-in service load balancer,
//! Ingress, `kubectl port-forward`): picking a Service's backend for an outside client,
//! and opening a byte stream to a pod's port, whatever kind of container serves it.
//!
//! A pod port is served either by a wasi:sockets listener (a TCP container: the stream is
//! bridged to the in-memory connection) or by an HTTP container (wasi:http: the stream is
//! served as HTTP/1.1 or HTTP/2 by hyper, each request calling the container in-process),
//! so a client outside sees a plain TCP port in both cases. A pod of another node is
//! reached through the data plane's TCP tunnel, whose far end does the same
//! (`dataplane.rs`).
//!
//! Invariants: an outside client is a NetworkPolicy `ipBlock` peer (its address), checked
//! where the destination pod is final, on this node; externalTrafficPolicy Local only
//! ever picks endpoints of this node; opening decides without waiting (a remote pod's
//! tunnel is dialled by the caller).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use http_body_util::BodyExt as _;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::policy::{self, Peer, Protocol};
use super::resolve::pick;
use super::router::{Routing, serve};
use super::table::{Backends, Table};
use super::tcp::{ByteStream, Conn, Dial, TcpError, bridge};
use crate::pod_table::PodEntry;
use crate::runtime::HttpService;

/// Where a connection from outside goes, once opened.
pub(crate) enum Opened {
    /// A wasi:sockets listener of a pod of this node took it.
    Tcp(Conn),
    /// An HTTP container of a pod of this node serves the port.
    Http(Arc<HttpService>),
    /// A pod of another node: the data plane's tunnel, still to dial.
    Remote(Dial),
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Opened::Tcp(_) => "Opened::Tcp",
            Opened::Http(_) => "Opened::Http",
            Opened::Remote(_) => "Opened::Remote",
        })
    }
}

impl Routing {
    /// Whether NetworkPolicy lets the outside `client` reach the pod at `to`.
    fn permits_outside(&self, client: IpAddr, to: SocketAddr) -> bool {
        let view = self.policy();
        let ok = policy::allowed(&view, Peer::Ip(client), view.peer_at(to.ip()), to.port(), Protocol::Tcp);
        if !ok {
            tracing::debug!(%client, target = %to, "connection from outside refused: denied by NetworkPolicy");
        }
        ok
    }

    /// Whether the pod at `ip` runs on this node.
    pub(crate) fn is_local(&self, table: &Table, ip: IpAddr) -> bool {
        self.pods.by_ip(ip).is_some() || table.node_of(ip) == Some(self.node.as_str())
    }

    /// A ready backend of one Service port for the outside `client` (round robin or
    /// ClientIP affinity, as for pods); `local_only`: only this node's endpoints
    /// (externalTrafficPolicy Local). None when there is none.
    pub(crate) fn pick_outside(&self, table: &Table, backends: &Backends, client: IpAddr, local_only: bool) -> Option<SocketAddr> {
        let mut balancer = self.balancer.lock().unwrap_or_else(|p| p.into_inner());
        if !local_only {
            return pick(backends, Some(client), Instant::now(), &mut balancer);
        }
        let local = Backends {
            key: format!("{}#local", backends.key).into(),
            addrs: backends.addrs.iter().copied().filter(|a| self.is_local(table, a.ip())).collect(),
            affinity: backends.affinity,
        };
        pick(&local, Some(client), Instant::now(), &mut balancer)
    }

    /// Opens a connection from the outside `client` to the pod at `to` (its address and
    /// container port). Refused when no pod holds `to`, nothing listens on that port, the
    /// pod's node cannot be reached, or NetworkPolicy denies it.
    pub(crate) fn open_outside(&self, table: &Table, client: SocketAddr, to: SocketAddr) -> Result<Opened, TcpError> {
        if !self.permits_outside(client.ip(), to) {
            return Err(TcpError::Refused);
        }
        if let Some(pod) = self.pods.by_ip(to.ip()) {
            return match self.tcp_inbound(client, to) {
                Ok(conn) => Ok(Opened::Tcp(conn)),
                Err(e) => serve(&pod, to.port()).map(Opened::Http).ok_or(e),
            };
        }
        let Some(node) = table.node_of(to.ip()).filter(|n| *n != self.node) else { return Err(TcpError::Refused) };
        let peers = self.data_plane.get().ok_or(TcpError::Refused)?;
        peers.tcp(table, node, to, Some(client.ip())).map(Opened::Remote).map_err(|why| {
            tracing::debug!(%client, target = %to, target.node = %node, "connection from outside refused: {why}");
            TcpError::Refused
        })
    }

    /// A `kubectl port-forward` connection to `port` of `pod` (a pod of this node), as to
    /// localhost inside the pod: a listener bound to loopback takes it too. NetworkPolicy
    /// does not apply, as in Kubernetes, where the kubelet connects inside the pod's
    /// network namespace.
    pub(crate) fn open_forwarded(&self, pod: &PodEntry, port: u16) -> Result<Opened, TcpError> {
        let tcp = self.sockets_of(pod).ok_or(TcpError::Refused).and_then(|s| s.accept_from(None, SocketAddr::from(([127, 0, 0, 1], 0)), port, true));
        match tcp {
            Ok(conn) => Ok(Opened::Tcp(conn)),
            Err(e) => serve(pod, port).map(Opened::Http).ok_or(e),
        }
    }

    /// A probe's connection (tcpSocket, httpGet) from the node at `from` to `port` of
    /// `pod` (a pod of this node), as the kubelet's to the pod's IP: a listener bound to
    /// loopback does not take it. NetworkPolicy does not apply to the node.
    pub(crate) fn open_probe(&self, pod: &PodEntry, from: SocketAddr, port: u16) -> Result<Opened, TcpError> {
        let tcp = self.sockets_of(pod).ok_or(TcpError::Refused).and_then(|s| s.accept_from(None, from, port, false));
        match tcp {
            Ok(conn) => Ok(Opened::Tcp(conn)),
            Err(e) => serve(pod, port).map(Opened::Http).ok_or(e),
        }
    }
}

/// Carries `stream` (a client's connection) to what it was `opened` to, until both
/// directions end: bridged to a pod's TCP connection or a remote tunnel, or served as
/// HTTP/1.1 and HTTP/2 (with upgrades) to an HTTP container.
pub(crate) async fn serve_opened<S: ByteStream>(opened: Opened, stream: S) {
    match opened {
        Opened::Tcp(conn) => bridge(conn, stream),
        Opened::Http(service) => serve_http(service, stream).await,
        Opened::Remote(Dial(dial)) => match dial.await {
            Ok(mut tunnel) => {
                let mut stream = stream;
                let _ = tokio::io::copy_bidirectional(&mut stream, &mut tunnel).await;
            }
            Err(error) => tracing::debug!(%error, "connection from outside: the data plane tunnel failed"),
        },
    }
}

/// Serves `stream` as HTTP to `service`: every request calls the container in-process.
pub(crate) async fn serve_http<S: ByteStream>(service: Arc<HttpService>, stream: S) {
    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let service = service.clone();
        async move {
            let req = req.map(|b| b.map_err(std::io::Error::other).boxed_unsync());
            Ok::<_, std::convert::Infallible>(service.handle(req).await)
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // A client may shut its write side once the request is sent (port-forward passes a
    // client's FIN on): the response must still come.
    builder.http1().half_close(true);
    if let Err(error) = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc).await {
        tracing::debug!(%error, "connection from outside ended");
    }
}
