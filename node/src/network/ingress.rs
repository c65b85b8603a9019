//! The built-in Ingress controller (IngressClass `flotilla`, controller
//! `flotilla.dev/ingress`): which backend a request goes to (`rules.rs`, pure), the TLS
//! certificates by SNI (`certs.rs`), the listeners that proxy requests there
//! (`listener.rs`), and the watch that keeps rules and certificates current and writes
//! the served Ingresses' status (`watch.rs`).
//!
//! Invariants: requests are routed against one immutable [`rules::Rules`] snapshot,
//! replaced whole; the Service port's ready backends are looked up in the pod network's
//! current table at request time, so Service and endpoint changes apply as they do for
//! pods. One node per process runs the controller (`flotilla up`'s first node), and it
//! reaches the pods of the other nodes through the data plane.

pub(crate) mod certs;
pub(crate) mod listener;
pub(crate) mod rules;
pub(crate) mod watch;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use self::certs::Certs;
use self::rules::Rules;
use super::Routing;

/// What the listeners route by, published by the watch.
#[derive(Debug, Default)]
pub(crate) struct State {
    rules: RwLock<Arc<Rules>>,
    certs: RwLock<Arc<Certs>>,
}

impl State {
    pub(crate) fn rules(&self) -> Arc<Rules> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn certs(&self) -> Arc<Certs> {
        self.certs.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn publish(&self, rules: Rules, certs: Certs) {
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rules);
        *self.certs.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(certs);
    }
}

/// Where the controller listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IngressListen {
    /// Plain HTTP.
    pub http: SocketAddr,
    /// HTTPS; None: no TLS listener.
    pub https: Option<SocketAddr>,
}

/// The bound listeners.
pub(crate) struct Bound {
    pub http: tokio::net::TcpListener,
    pub https: Option<tokio::net::TcpListener>,
}

impl Bound {
    /// Binds both addresses (before anything else of the node starts, so a port in use
    /// fails the start).
    pub(crate) async fn bind(listen: IngressListen) -> anyhow::Result<Bound> {
        use anyhow::Context as _;
        let http = tokio::net::TcpListener::bind(listen.http).await.with_context(|| format!("ingress: cannot listen on {} (--ingress-listen)", listen.http))?;
        let https = match listen.https {
            Some(a) => Some(tokio::net::TcpListener::bind(a).await.with_context(|| format!("ingress: cannot listen on {a} (--ingress-tls-listen)"))?),
            None => None,
        };
        Ok(Bound { http, https })
    }
}

/// Starts the controller on `bound`: its watch and listeners, as tasks. `node_ip` is the
/// Ingress status address when the listener binds every address.
pub(crate) fn start(bound: Bound, client: kube::Client, routing: Arc<Routing>, node: String, node_ip: IpAddr, shutdown: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let state = Arc::new(State::default());
    let http_addr = bound.http.local_addr()?;
    let address = if http_addr.ip().is_unspecified() { node_ip } else { http_addr.ip() };
    let https_port = bound.https.as_ref().map(|l| l.local_addr()).transpose()?.map(|a| a.port());
    let proxy = Arc::new(listener::Proxy { routing, state: state.clone(), https_port });
    let mut tasks = vec![
        tokio::spawn(watch::run(client, state.clone(), node, address, shutdown.clone())),
        tokio::spawn(listener::serve(bound.http, None, proxy.clone(), shutdown.clone())),
    ];
    if let Some(https) = bound.https {
        let resolver = certs::SniResolver { state, fallback: certs::fallback()? };
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(certs::server_config(resolver)?));
        tasks.push(tokio::spawn(listener::serve(https, Some(acceptor), proxy, shutdown)));
    }
    Ok(tasks)
}
