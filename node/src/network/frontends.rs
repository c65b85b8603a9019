//! The node's listeners for clients outside the cluster, kube-proxy's and k3s ServiceLB's
//! part: every node port, every health-check node port and every port of a Service the
//! built-in load balancer serves is a TCP listener on the node's bind address
//! ([`super::table::Table::frontends`] says which). A connection goes to one ready backend
//! of the Service port, picked per connection (round robin, or ClientIP affinity), and is
//! carried to it as bytes (`external.rs`): HTTP and TCP containers alike, on this node or
//! another.
//!
//! Invariants:
//! - the listeners follow the routing table: a port is opened when a published table
//!   wants it and closed (no new connections; open ones live on) when one no longer does;
//!   a port that cannot be bound (another process holds it) is logged and retried at the
//!   next table change;
//! - the Service a connection goes to is read from the current table at accept time, so
//!   a changed Service or new endpoints count from the next connection;
//! - externalTrafficPolicy Local picks only this node's endpoints; with none (or no ready
//!   endpoint at all, or NetworkPolicy denying the client) the connection is reset at
//!   once, as kube-proxy rejects it;
//! - a health-check node port answers any GET with kube-proxy's JSON: 200 while this node
//!   has a ready endpoint of the Service, 503 otherwise.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::external::serve_opened;
use super::router::Routing;
use super::table::{Frontend, FrontendKind};
use crate::server::{accept, shutdown_signal};

type Frontends = Arc<RwLock<BTreeMap<u16, Frontend>>>;

/// Keeps the listeners in line with the routing table until `shutdown` turns true.
pub(crate) async fn run(routing: Arc<Routing>, bind: IpAddr, mut shutdown: watch::Receiver<bool>) {
    let current: Frontends = Arc::default();
    let mut listeners: HashMap<u16, JoinHandle<()>> = HashMap::new();
    let mut failed: HashSet<u16> = HashSet::new();
    let mut published = routing.published();
    loop {
        let wanted = routing.table().frontends();
        *current.write().unwrap_or_else(|p| p.into_inner()) = wanted.clone();
        listeners.retain(|port, task| {
            let keep = wanted.contains_key(port) && !task.is_finished();
            if !keep {
                task.abort();
                tracing::info!(port, "stopped listening for outside clients");
            }
            keep
        });
        failed.retain(|p| wanted.contains_key(p));
        for (&port, frontend) in &wanted {
            if listeners.contains_key(&port) {
                continue;
            }
            match TcpListener::bind((bind, port)).await {
                Ok(listener) => {
                    failed.remove(&port);
                    tracing::info!(port, service = %frontend.service, kind = ?frontend.kind, "listening for outside clients");
                    listeners.insert(port, tokio::spawn(serve(listener, port, routing.clone(), current.clone(), shutdown.clone())));
                }
                Err(error) => {
                    if failed.insert(port) {
                        tracing::warn!(%error, port, service = %frontend.service, "cannot listen for outside clients; retrying at the next change");
                    }
                }
            }
        }
        tokio::select! {
            r = published.changed() => if r.is_err() { break },
            _ = shutdown.changed() => break,
        }
    }
    for (_, task) in listeners {
        task.abort();
    }
}

async fn serve(listener: TcpListener, port: u16, routing: Arc<Routing>, current: Frontends, shutdown: watch::Receiver<bool>) {
    let stop = shutdown_signal(shutdown);
    tokio::pin!(stop);
    while let Some((stream, client)) = accept(&listener, &mut stop, "outside-client listener").await {
        let frontend = current.read().unwrap_or_else(|p| p.into_inner()).get(&port).cloned();
        let Some(frontend) = frontend else { continue };
        tokio::spawn(connection(routing.clone(), frontend, stream, client));
    }
}

async fn connection(routing: Arc<Routing>, frontend: Frontend, stream: TcpStream, client: SocketAddr) {
    let table = routing.table();
    let Some((ns, name)) = frontend.service.split_once('/') else { return };
    let Some(service) = table.service(ns, name) else { return reset(stream) };
    let port = match frontend.kind {
        FrontendKind::HealthCheck => {
            let local = service.endpoints.iter().filter(|e| routing.is_local(&table, e.ip)).count();
            return health_check(stream, ns.to_string(), name.to_string(), local).await;
        }
        FrontendKind::NodePort { port } | FrontendKind::LoadBalancer { port } => port,
    };
    let Some(p) = service.ports.iter().find(|p| p.port == port) else { return reset(stream) };
    let Some(backend) = routing.pick_outside(&table, &p.backends, client.ip(), service.outside.local_only) else {
        tracing::debug!(%client, service = %frontend.service, port, "outside connection reset: no ready endpoint");
        return reset(stream);
    };
    match routing.open_outside(&table, client, backend) {
        Ok(opened) => serve_opened(opened, stream).await,
        Err(error) => {
            tracing::debug!(%client, service = %frontend.service, %backend, %error, "outside connection reset");
            reset(stream);
        }
    }
}

/// Closes `stream` with a reset, as a rejected connection.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// kube-proxy's health-check answer for one Service.
fn health_body(namespace: &str, name: &str, local: usize) -> (StatusCode, String) {
    let body = serde_json::json!({"service": {"namespace": namespace, "name": name}, "localEndpoints": local, "serviceProxyHealthy": true});
    (if local > 0 { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body.to_string())
}

async fn health_check(stream: TcpStream, namespace: String, name: String, local: usize) {
    let svc = service_fn(move |_req| {
        let (status, body) = health_body(&namespace, &name, local);
        async move {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            *r.status_mut() = status;
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r.headers_mut().insert("x-content-type-options", HeaderValue::from_static("nosniff"));
            Ok::<_, std::convert::Infallible>(r)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_check_answers_as_kube_proxy() {
        let (status, body) = health_body("default", "web", 2);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&body).expect("json"), serde_json::json!({"service": {"namespace": "default", "name": "web"}, "localEndpoints": 2, "serviceProxyHealthy": true}));
        assert_eq!(health_body("default", "web", 0).0, StatusCode::SERVICE_UNAVAILABLE);
    }
}
