//! TCP and name lookups over the pod network (wasi:sockets): where a pod's connect goes,
//! decided by the same [`resolve`] and [`pick`] as HTTP, and each pod's port space
//! ([`PodSockets`]), found by pod UID.
//!
//! NetworkPolicy is checked as for HTTP (`Routing::permits`) where the destination is
//! final: a pod of this node (after Service resolution, on its container port) or an
//! external address; a denial is connection-refused. A pod reaching itself is never
//! checked. A pod of another node is reached through the data plane's TCP tunnel
//! (`Peers::tcp`), policy decided here as for HTTP (both directions on the node where the
//! connection starts); the target's node delivers it with [`Routing::tcp_inbound`].
//!
//! Invariants: a pod's port space is the one its [`PodRouter`] holds, so it lives while
//! any container of the pod does; the registry keeps only weak references (dead ones are
//! swept when a pod joins); a target is decided without waiting.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Weak};
use std::time::Instant;

use super::super::policy::Peer;
use super::super::resolve::{Client, Route, lookup_name, pick, resolve};
use super::super::table::Table;
use super::super::tcp::{Conn, NameLookup, PodSockets, Target, TcpError};
use super::{Egress, PodRouter, Routing};
use crate::pod_table::PodEntry;

impl Routing {
    /// The port space of `entry` (created on its first router).
    pub(super) fn pod_sockets(&self, entry: &PodEntry, ip: Option<IpAddr>) -> Arc<PodSockets> {
        let mut all = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = all.get(&entry.uid).and_then(Weak::upgrade) {
            return s;
        }
        all.retain(|_, s| s.strong_count() > 0);
        let s = PodSockets::new(ip);
        all.insert(entry.uid.clone(), Arc::downgrade(&s));
        s
    }

    /// The port space of `pod`.
    pub(crate) fn sockets_of(&self, pod: &PodEntry) -> Option<Arc<PodSockets>> {
        self.sockets.lock().unwrap_or_else(|p| p.into_inner()).get(&pod.uid).and_then(Weak::upgrade)
    }

    /// The port space of the pod of this node at `ip`.
    fn sockets_at(&self, ip: IpAddr) -> Option<Arc<PodSockets>> {
        let pod = self.pods.by_ip(ip)?;
        self.sockets_of(&pod)
    }

    /// Opens a connection from outside this node (the cross-node data plane's entry point
    /// for inbound TCP) to the pod of this node at `to`; `from` is the remote client's
    /// address as the pod sees it. Refused when no pod of this node holds `to` or nobody
    /// there takes it. Bridge the returned [`Conn`] to the transport with `tcp::bridge`.
    pub(crate) fn tcp_inbound(&self, from: SocketAddr, to: SocketAddr) -> Result<Conn, TcpError> {
        let sockets = self.sockets_at(to.ip()).ok_or(TcpError::Refused)?;
        sockets.accept_from(None, from, to.port(), false)
    }

    /// Where a TCP connection from `from` to the pod address `addr` goes.
    fn tcp_to_pod(&self, from: &PodRouter, table: &Table, addr: SocketAddr) -> Target {
        if let Some(pod) = self.pods.by_ip(addr.ip()) {
            let to = Peer::Pod { namespace: &pod.namespace, name: &pod.name, ip: Some(addr.ip()) };
            if !self.permits(&self.policy(), from, to, addr.port()) {
                return Target::Refused;
            }
            return match self.sockets_of(&pod) {
                Some(sockets) => Target::Pod { sockets, port: addr.port(), loopback: false },
                None => Target::Refused,
            };
        }
        match table.node_of(addr.ip()).filter(|n| *n != self.node) {
            Some(node) => {
                let view = self.policy();
                if !self.permits(&view, from, view.peer_at(addr.ip()), addr.port()) {
                    return Target::Refused;
                }
                let dial = match self.data_plane.get() {
                    Some(peers) => peers.tcp(table, node, addr, from.ip),
                    None => Err("this node has no data plane"),
                };
                match dial {
                    Ok(dial) => Target::Remote { node: node.to_string(), addr, dial: Some(dial) },
                    Err(why) => {
                        tracing::debug!(pod.namespace = %from.namespace, pod.name = %from.name, target = %addr, target.node = %node, "connection refused: {why}");
                        Target::Refused
                    }
                }
            }
            None => {
                tracing::debug!(pod.namespace = %from.namespace, pod.name = %from.name, target = %addr, "connection refused: no pod holds that address");
                Target::Refused
            }
        }
    }

    /// Where a TCP connection from `from` to `addr` goes.
    pub(super) fn tcp_target(&self, from: &PodRouter, addr: SocketAddr) -> Target {
        let table = self.table();
        let client = Client { namespace: &from.namespace, ip: from.ip };
        match resolve(&table, &client, &addr.ip().to_string(), addr.port()) {
            Route::Local { port } => {
                let loopback = addr.ip().is_loopback() || addr.ip().is_unspecified();
                Target::Pod { sockets: from.sockets.clone(), port, loopback }
            }
            Route::Pod { addr } => self.tcp_to_pod(from, &table, addr),
            Route::Balanced { backends, port } => {
                let picked = pick(&backends, from.ip, Instant::now(), &mut self.balancer.lock().unwrap_or_else(|p| p.into_inner()));
                match picked {
                    Some(b) => self.tcp_to_pod(from, &table, SocketAddr::new(b.ip(), port.unwrap_or(b.port()))),
                    None => Target::Refused,
                }
            }
            Route::External { .. } => {
                if self.pods.by_ip(addr.ip()).is_some() {
                    return self.tcp_to_pod(from, &table, addr);
                }
                match self.egress {
                    Egress::Allow => {
                        let view = self.policy();
                        if self.permits(&view, from, view.peer_at(addr.ip()), addr.port()) { Target::External(addr) } else { Target::Refused }
                    }
                    Egress::Deny => {
                        tracing::debug!(pod.namespace = %from.namespace, pod.name = %from.name, target = %addr, "external egress is off");
                        Target::Denied
                    }
                }
            }
            Route::Refused(why) => {
                tracing::debug!(pod.namespace = %from.namespace, pod.name = %from.name, target = %addr, "connection refused: {why}");
                Target::Refused
            }
            Route::NoSuchName => Target::Refused,
        }
    }

    /// What `name` resolves to for `from` (cluster DNS; external names only with egress).
    pub(super) fn lookup(&self, from: &PodRouter, name: &str) -> NameLookup {
        let table = self.table();
        match lookup_name(&table, &Client { namespace: &from.namespace, ip: from.ip }, name) {
            NameLookup::External(host) if self.egress == Egress::Deny => {
                tracing::debug!(pod.namespace = %from.namespace, pod.name = %from.name, host = %host, "external egress is off: name not resolved");
                NameLookup::NoSuchName
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests;
