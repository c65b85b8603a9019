//! The pod network as a pod's guests see it. [`Routing`] (one per node) holds the current
//! routing [`Table`], the [`Balancer`] and the node's [`PodTable`]; [`PodRouter`] (one
//! per pod, in every container's `InstanceSpec`) implements the runtime's [`Network`]:
//! it resolves a request (`resolve.rs`) and turns the [`Route`] into a [`Dispatch`] — the
//! `HttpService` of a container on this node, called in-process, or a refusal.
//!
//! Invariants:
//! - a pod port is served by the running HTTP container that declares it as a
//!   containerPort; an HTTP container that declares no port listens on
//!   [`UNDECLARED_PORT`] (`wasmtime serve`'s default) when it is the pod's only such
//!   container; anything else is connection-refused;
//! - a pod address in another node's podCIDR (or an endpoint naming another node) goes
//!   through the data plane (`dataplane.rs`) once the node has one; one no pod of this node
//!   holds, or of a node the data plane cannot reach, is refused at once;
//! - external egress is denied unless the node's [`Egress`] allows it: the guest gets
//!   HTTP-request-denied, as before the pod network;
//! - NetworkPolicy (`policy.rs`) is checked in [`Routing::to_pod`] and for external
//!   egress, where the final destination (pod and container port after Service
//!   resolution, or the external address) is known, for pods on other nodes too (the view
//!   holds every pod); a denial is connection-refused. A pod reaching itself (localhost, its own IP) is never checked;
//! - a route is decided without waiting: a read lock for the table's `Arc`, a mutex only
//!   to pick a Service backend, the pod's container list under its read lock.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Instant;

use super::dataplane::Peers;
use super::policy::{self, Peer, PolicyView, Protocol};
use super::resolve::{Balancer, Client, Route, pick, resolve};
use super::table::Table;
use super::tcp::{NameLookup, PodSockets, Target};
use crate::pod_table::{PodEntry, PodTable};
use crate::runtime::{Dispatch, HttpService, Network};

mod tcp_route;
#[cfg(test)]
mod tests;

/// The port an HTTP container that declares no containerPort listens on.
pub(crate) const UNDECLARED_PORT: u16 = 8080;

/// Whether pods may reach addresses outside the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Egress {
    /// Refused with HTTP-request-denied (the default until NetworkPolicy is enforced).
    Deny,
    /// Sent over the host's network.
    Allow,
}

/// The node's pod network.
pub(crate) struct Routing {
    pub(super) node: String,
    pub(super) pods: Arc<PodTable>,
    table: RwLock<Arc<Table>>,
    pub(super) balancer: Mutex<Balancer>,
    egress: Egress,
    /// NetworkPolicy, published apart from the table (pods change more often than routes).
    policy: RwLock<Arc<PolicyView>>,
    /// Connections to the other nodes' data planes; unset, their pods are refused.
    pub(super) data_plane: OnceLock<Arc<Peers>>,
    /// Each pod's TCP port space, by pod UID (`tcp_route.rs`).
    sockets: Mutex<HashMap<String, Weak<PodSockets>>>,
    /// Counts published tables (what the listeners for outside clients follow).
    published: tokio::sync::watch::Sender<u64>,
}

impl Routing {
    pub fn new(node: String, pods: Arc<PodTable>, egress: Egress) -> Arc<Routing> {
        Arc::new(Routing {
            node,
            pods,
            table: RwLock::default(),
            balancer: Mutex::default(),
            egress,
            policy: RwLock::default(),
            data_plane: OnceLock::new(),
            sockets: Mutex::default(),
            published: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Makes `table` the one every later request sees.
    pub fn publish(&self, table: Table) {
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
        self.published.send_modify(|n| *n += 1);
    }

    /// Changes at every [`publish`](Self::publish).
    pub fn published(&self) -> tokio::sync::watch::Receiver<u64> {
        self.published.subscribe()
    }

    pub fn table(&self) -> Arc<Table> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Makes `view` the NetworkPolicy every later connection is checked against.
    pub fn publish_policy(&self, view: PolicyView) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(view);
    }

    pub fn policy(&self) -> Arc<PolicyView> {
        self.policy.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether NetworkPolicy lets `from` reach `to` on TCP `port`; logs a denial.
    pub(super) fn permits(&self, view: &PolicyView, from: &PodRouter, to: Peer<'_>, port: u16) -> bool {
        let ok = policy::allowed(view, from.peer(), to, port, Protocol::Tcp);
        if !ok {
            tracing::debug!(pod.namespace = %from.namespace, pod.name = %from.name, target = ?to, port, "connection refused: denied by NetworkPolicy");
        }
        ok
    }

    /// Sends requests for other nodes' pods through `peers` (set once).
    pub fn set_data_plane(&self, peers: Arc<Peers>) {
        let _ = self.data_plane.set(peers);
    }

    /// The running HTTP service of this node's pod at `addr` (where the data plane
    /// delivers requests from other nodes).
    pub fn serve_addr(&self, addr: SocketAddr) -> Option<Arc<HttpService>> {
        serve(&*self.pods.by_ip(addr.ip())?, addr.port())
    }

    /// The network of the pod `entry` at `ip`.
    pub fn for_pod(self: &Arc<Self>, entry: &Arc<PodEntry>, ip: Option<IpAddr>) -> Arc<dyn Network> {
        Arc::new(PodRouter {
            routing: self.clone(),
            pod: Arc::downgrade(entry),
            namespace: entry.namespace.clone(),
            name: entry.name.clone(),
            ip,
            sockets: self.pod_sockets(entry, ip),
        })
    }

    /// What to do with a request `route`d for `from`.
    fn dispatch(&self, from: &PodRouter, table: &Table, route: Route) -> Dispatch {
        match route {
            Route::Local { port } => match from.pod.upgrade() {
                Some(pod) => serve(&pod, port).map_or_else(|| refused(from, "no container of the pod listens on that port", port), Dispatch::Local),
                None => Dispatch::Refused,
            },
            Route::Pod { addr } => self.to_pod(from, table, addr),
            Route::Balanced { backends, port } => {
                let picked = pick(&backends, from.ip, Instant::now(), &mut self.balancer.lock().unwrap_or_else(|p| p.into_inner()));
                match picked {
                    Some(addr) => self.to_pod(from, table, SocketAddr::new(addr.ip(), port.unwrap_or(addr.port()))),
                    None => Dispatch::Refused,
                }
            }
            Route::External { host, port } => {
                // This node's own pods are pod addresses even before its podCIDR is known.
                if let Ok(ip) = host.parse::<IpAddr>()
                    && self.pods.by_ip(ip).is_some()
                {
                    return self.to_pod(from, table, SocketAddr::new(ip, port));
                }
                match self.egress {
                    Egress::Allow => {
                        let view = self.policy();
                        let to = host.parse::<IpAddr>().map_or(Peer::Name, |ip| view.peer_at(ip));
                        if self.permits(&view, from, to, port) { Dispatch::External { host, port } } else { Dispatch::Refused }
                    }
                    Egress::Deny => {
                        tracing::debug!(pod.namespace = %from.namespace, pod.name = %from.name, host = %host, port, "external egress is off");
                        Dispatch::Denied
                    }
                }
            }
            Route::Refused(why) => {
                tracing::debug!(pod.namespace = %from.namespace, pod.name = %from.name, "connection refused: {why}");
                Dispatch::Refused
            }
            Route::NoSuchName => Dispatch::NoSuchName,
        }
    }

    /// A request to the pod at `addr`: the one place a pod destination is final.
    fn to_pod(&self, from: &PodRouter, table: &Table, addr: SocketAddr) -> Dispatch {
        match self.pods.by_ip(addr.ip()) {
            Some(pod) if !self.permits(&self.policy(), from, Peer::Pod { namespace: &pod.namespace, name: &pod.name, ip: Some(addr.ip()) }, addr.port()) => Dispatch::Refused,
            Some(pod) => serve(&pod, addr.port()).map_or_else(|| refused(from, "no container of the target pod listens on that port", addr.port()), Dispatch::Local),
            None => {
                let Some(node) = table.node_of(addr.ip()).filter(|n| *n != self.node) else {
                    tracing::debug!(pod.namespace = %from.namespace, pod.name = %from.name, target = %addr, "connection refused: no pod holds that address");
                    return Dispatch::Refused;
                };
                let view = self.policy();
                if !self.permits(&view, from, view.peer_at(addr.ip()), addr.port()) {
                    return Dispatch::Refused;
                }
                let hop = match self.data_plane.get() {
                    Some(peers) => peers.hop(table, node, addr, from.ip),
                    None => Err("this node has no data plane"),
                };
                hop.unwrap_or_else(|why| {
                    tracing::debug!(pod.namespace = %from.namespace, pod.name = %from.name, target = %addr, target.node = %node, "connection refused: {why}");
                    Dispatch::Refused
                })
            }
        }
    }
}

fn refused(from: &PodRouter, why: &str, port: u16) -> Dispatch {
    tracing::debug!(pod.namespace = %from.namespace, pod.name = %from.name, port, "connection refused: {why}");
    Dispatch::Refused
}

/// The running HTTP service of `pod` that listens on `port`.
pub(super) fn serve(pod: &PodEntry, port: u16) -> Option<Arc<HttpService>> {
    let containers = pod.containers.read().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = containers.iter().find(|c| c.ports.contains(&port)) {
        return c.http.clone();
    }
    if port != UNDECLARED_PORT {
        return None;
    }
    let mut undeclared = containers.iter().filter(|c| c.ports.is_empty() && c.http.is_some());
    match (undeclared.next(), undeclared.next()) {
        (Some(c), None) => c.http.clone(),
        _ => None,
    }
}

/// One pod's view of the network.
pub(crate) struct PodRouter {
    routing: Arc<Routing>,
    /// Weak: the pod's containers hold this router.
    pod: Weak<PodEntry>,
    namespace: String,
    name: String,
    ip: Option<IpAddr>,
    sockets: Arc<PodSockets>,
}

impl std::fmt::Debug for PodRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodRouter").field("namespace", &self.namespace).field("name", &self.name).field("ip", &self.ip).finish()
    }
}

impl PodRouter {
    /// This pod as a NetworkPolicy peer.
    pub(super) fn peer(&self) -> Peer<'_> {
        Peer::Pod { namespace: &self.namespace, name: &self.name, ip: self.ip }
    }
}

impl Network for PodRouter {
    fn route(&self, host: &str, port: u16) -> Dispatch {
        let table = self.routing.table();
        let route = resolve(&table, &Client { namespace: &self.namespace, ip: self.ip }, host, port);
        self.routing.dispatch(self, &table, route)
    }

    fn sockets(&self) -> Option<Arc<PodSockets>> {
        Some(self.sockets.clone())
    }

    fn tcp_target(&self, addr: SocketAddr) -> Target {
        self.routing.tcp_target(self, addr)
    }

    fn lookup(&self, name: &str) -> NameLookup {
        self.routing.lookup(self, name)
    }
}
