//! Where a pod's request goes, as cluster DNS and kube-proxy would decide it, as pure
//! functions of the routing [`Table`]: [`resolve`] maps a request's host and port to a
//! [`Route`]; [`pick`] chooses one backend of a Service (round robin, sessionAffinity
//! ClientIP), its state in a [`Balancer`] and the time passed in.
//!
//! Names follow a pod's resolv.conf (`search NS.svc.cluster.local svc.cluster.local
//! cluster.local`, `ndots:5`) and CoreDNS's kubernetes plugin:
//! - `SVC.NS.svc.cluster.local` → the Service: a ClusterIP Service by its ports, a
//!   headless one to its ready endpoints' addresses (the request's port), an
//!   ExternalName one to its target, resolved again as an absolute name;
//! - `HOST.SVC.NS.svc.cluster.local` → the ready endpoint of headless Service SVC with
//!   that hostname (StatefulSet pods, pods with `hostname` and `subdomain`);
//! - `A-B-C-D.NS.pod.cluster.local` → that pod address;
//! - `localhost`, loopback and unspecified addresses, and the pod's own IP → the pod.
//!
//! Invariants: no I/O, no clock, no randomness; a cluster name that does not exist is
//! [`Route::NoSuchName`], never external (a single label, or a name ending in
//! `cluster.local`, `svc`, `pod`, a namespace that has Services or — relative names — a
//! Service of the client's namespace, counts as a cluster name); a Service that exists but cannot take the request (no such port, no ready
//! endpoint) is [`Route::Refused`], as kube-proxy's REJECT; ExternalName chains end
//! after [`MAX_CNAME_DEPTH`] hops.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use super::table::{Backends, Kind, Service, Table};

#[cfg(test)]
mod tests;

/// A name with at least this many dots is tried as absolute first (resolv.conf `ndots`).
const NDOTS: usize = 5;
/// Most ExternalName (CNAME) hops followed.
pub(crate) const MAX_CNAME_DEPTH: usize = 8;
/// Labels of the cluster's DNS domain (the kubelet's `clusterDomain`), `cluster.local`.
const ZONE: [&str; 2] = ["cluster", "local"];
/// Sticky entries kept before expired ones are swept.
const STICKY_SWEEP_AT: usize = 4096;

/// The pod a request comes from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Client<'a> {
    pub namespace: &'a str,
    pub ip: Option<IpAddr>,
}

/// Where a request goes.
#[derive(Clone, Debug)]
pub(crate) enum Route {
    /// The calling pod itself, by container port.
    Local { port: u16 },
    /// A pod address (this node's or another's), by container port.
    Pod { addr: SocketAddr },
    /// One of these backends, chosen by [`pick`]; `port` replaces the backend's port
    /// (headless names: the request's port).
    Balanced { backends: Arc<Backends>, port: Option<u16> },
    /// Outside the cluster.
    External { host: String, port: u16 },
    /// Nothing takes the request: connection refused, for this reason.
    Refused(&'static str),
    /// The name does not resolve (NXDOMAIN).
    NoSuchName,
}

/// Where a request from `client` to `host:port` goes. `host` is a name (any case, an
/// optional trailing dot makes it absolute) or an IP literal without brackets.
pub(crate) fn resolve(table: &Table, client: &Client<'_>, host: &str, port: u16) -> Route {
    let lower: Cow<'_, str> = if host.bytes().any(|b| b.is_ascii_uppercase()) { Cow::Owned(host.to_ascii_lowercase()) } else { Cow::Borrowed(host) };
    let (name, absolute) = match lower.strip_suffix('.') {
        Some(name) => (name, true),
        None => (&*lower, false),
    };
    resolve_host(table, client, name, absolute, port, 0)
}

fn resolve_host(table: &Table, client: &Client<'_>, name: &str, absolute: bool, port: u16, depth: usize) -> Route {
    if name == "localhost" || name.ends_with(".localhost") {
        return Route::Local { port };
    }
    if let Ok(ip) = name.parse::<IpAddr>() {
        return resolve_ip(table, client, ip, port);
    }
    resolve_name(table, client, name, absolute, port, depth)
}

fn resolve_ip(table: &Table, client: &Client<'_>, ip: IpAddr, port: u16) -> Route {
    if ip.is_loopback() || ip.is_unspecified() || client.ip == Some(ip) {
        return Route::Local { port };
    }
    if let Some(svc) = table.by_cluster_ip(ip) {
        return service_port(svc, port);
    }
    if table.node_of(ip).is_some() {
        return Route::Pod { addr: SocketAddr::new(ip, port) };
    }
    Route::External { host: ip.to_string(), port }
}

fn resolve_name(table: &Table, client: &Client<'_>, name: &str, absolute: bool, port: u16, depth: usize) -> Route {
    let labels: Vec<&str> = name.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return Route::NoSuchName;
    }
    let as_is = || match labels.strip_suffix(&ZONE[..]) {
        Some(rest) => lookup(table, client, rest, &[], port, depth),
        None => None,
    };
    let rooted_first = absolute || labels.len() > NDOTS;
    if rooted_first && let Some(route) = as_is() {
        return route;
    }
    if !absolute {
        for suffix in [&[client.namespace, "svc"][..], &["svc"][..], &[][..]] {
            if let Some(route) = lookup(table, client, &labels, suffix, port, depth) {
                return route;
            }
        }
        if !rooted_first && let Some(route) = as_is() {
            return route;
        }
    }
    let last = labels[labels.len() - 1];
    let in_cluster = labels.len() == 1
        || labels.ends_with(&ZONE[..])
        || matches!(last, "svc" | "pod")
        || table.has_namespace(last)
        || (!absolute && table.service(client.namespace, last).is_some());
    if in_cluster { Route::NoSuchName } else { Route::External { host: name.to_string(), port } }
}

/// The answer for the in-zone name `labels ++ suffix` (without the zone), or None when no
/// such name exists.
fn lookup(table: &Table, client: &Client<'_>, labels: &[&str], suffix: &[&str], port: u16, depth: usize) -> Option<Route> {
    let n = labels.len() + suffix.len();
    let at = |i: usize| if i < labels.len() { labels[i] } else { suffix[i - labels.len()] };
    match n {
        3 if at(2) == "svc" => table.service(at(1), at(0)).map(|svc| service_name(table, client, svc, port, depth)),
        4 if at(3) == "svc" => {
            let svc = table.service(at(2), at(1)).filter(|s| s.kind == Kind::Headless)?;
            let host = at(0);
            let ep = svc.endpoints.iter().find(|e| e.hostname.as_deref() == Some(host))?;
            Some(Route::Pod { addr: SocketAddr::new(ep.ip, port) })
        }
        3 if at(2) == "pod" => pod_ip(at(0)).map(|ip| resolve_ip(table, client, ip, port)),
        _ => None,
    }
}

/// `10-42-0-7` → 10.42.0.7.
fn pod_ip(label: &str) -> Option<IpAddr> {
    let mut it = label.split('-').map(|p| p.parse::<u8>());
    let ip = Ipv4Addr::new(it.next()?.ok()?, it.next()?.ok()?, it.next()?.ok()?, it.next()?.ok()?);
    it.next().is_none().then_some(IpAddr::V4(ip))
}

/// A request to the Service's name.
fn service_name(table: &Table, client: &Client<'_>, svc: &Service, port: u16, depth: usize) -> Route {
    match &svc.kind {
        Kind::ClusterIp if port == LOOKUP_PORT => Route::Balanced {
            backends: Arc::new(Backends { key: svc.name.as_str().into(), addrs: svc.cluster_ips.iter().map(|&ip| SocketAddr::new(ip, 0)).collect(), affinity: None }),
            port: Some(LOOKUP_PORT),
        },
        Kind::ClusterIp => service_port(svc, port),
        Kind::Headless if svc.headless.addrs.is_empty() => Route::NoSuchName,
        Kind::Headless => Route::Balanced { backends: svc.headless.clone(), port: Some(port) },
        Kind::ExternalName(_) if depth >= MAX_CNAME_DEPTH => Route::NoSuchName,
        Kind::ExternalName(target) => resolve_host(table, client, target, true, port, depth + 1),
        Kind::Unallocated => Route::NoSuchName,
    }
}

/// A request to the Service's virtual address on `port`.
fn service_port(svc: &Service, port: u16) -> Route {
    match svc.ports.iter().find(|p| p.port == port) {
        None => Route::Refused("the Service has no such port"),
        Some(p) if p.backends.addrs.is_empty() => Route::Refused("the Service has no ready endpoints"),
        Some(p) => Route::Balanced { backends: p.backends.clone(), port: None },
    }
}

/// The addresses `host` resolves to for the pod `client` (wasi:sockets ip-name-lookup),
/// by the same names as [`resolve`]: a ClusterIP Service to its ClusterIPs, a headless
/// one to its ready endpoints' addresses, a pod name or pod DNS name to the pod address,
/// `localhost` to 127.0.0.1. `host` is a name, never an IP literal.
pub(crate) fn lookup_name(table: &Table, client: &Client<'_>, host: &str) -> crate::network::tcp::NameLookup {
    use crate::network::tcp::NameLookup;
    // Port 0 is never a Service port (the table drops it): it marks a lookup, for which a
    // ClusterIP Service answers with its ClusterIPs.
    match resolve(table, client, host, LOOKUP_PORT) {
        Route::Local { .. } => NameLookup::Addresses(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]),
        Route::Pod { addr } => NameLookup::Addresses(vec![addr.ip()]),
        Route::Balanced { backends, .. } => NameLookup::Addresses(backends.addrs.iter().map(SocketAddr::ip).collect()),
        Route::External { host, .. } => NameLookup::External(host),
        Route::Refused(_) | Route::NoSuchName => NameLookup::NoSuchName,
    }
}

/// The port [`lookup_name`] resolves for.
const LOOKUP_PORT: u16 = 0;

/// Balancing state: the next round-robin index per Service port, and the sticky
/// backends of sessionAffinity ClientIP.
#[derive(Debug, Default)]
pub(crate) struct Balancer {
    next: HashMap<Arc<str>, usize>,
    sticky: HashMap<(Arc<str>, IpAddr), Sticky>,
}

#[derive(Clone, Copy, Debug)]
struct Sticky {
    addr: SocketAddr,
    expires: Instant,
}

/// One of `backends` for a request from `client` at `now`: with ClientIP affinity the
/// client's backend while it stays among them and was used within the timeout, else the
/// next in round robin. None when there is none.
pub(crate) fn pick(backends: &Backends, client: Option<IpAddr>, now: Instant, balancer: &mut Balancer) -> Option<SocketAddr> {
    if backends.addrs.is_empty() {
        return None;
    }
    let sticky = backends.affinity.zip(client);
    if let Some((timeout, client)) = sticky
        && let Some(s) = balancer.sticky.get_mut(&(backends.key.clone(), client))
        && s.expires > now
        && backends.addrs.binary_search(&s.addr).is_ok()
    {
        s.expires = now + timeout;
        return Some(s.addr);
    }
    let next = match balancer.next.get_mut(&*backends.key) {
        Some(n) => n,
        None => balancer.next.entry(backends.key.clone()).or_insert(0),
    };
    let addr = backends.addrs[*next % backends.addrs.len()];
    *next = next.wrapping_add(1);
    if let Some((timeout, client)) = sticky {
        if balancer.sticky.len() >= STICKY_SWEEP_AT {
            balancer.sticky.retain(|_, s| s.expires > now);
        }
        balancer.sticky.insert((backends.key.clone(), client), Sticky { addr, expires: now + timeout });
    }
    Some(addr)
}
