//! The pod network's routing table: Services with their ready backends, and where pod
//! addresses live (the nodes' pod CIDRs, the endpoints' node names). One immutable
//! snapshot, built from API objects by [`Table::build`] (pure: no I/O, no clock);
//! `watch.rs` rebuilds it on every change, `resolve.rs` answers questions against it.
//!
//! Invariants:
//! - only ready endpoints are backends: an EndpointSlice endpoint whose `conditions.ready`
//!   is unset or true, an Endpoints address in `addresses` (never `notReadyAddresses`);
//! - a Service's EndpointSlices (label `kubernetes.io/service-name`) win; its Endpoints
//!   object counts only when it has no slice (a selector-less Service without the
//!   mirroring controller);
//! - a Service port's backends carry the port resolved per endpoint group (the slice's or
//!   subset's port with the Service port's name, as Kubernetes resolves a named
//!   targetPort per pod), sorted and without duplicates, so round robin is deterministic;
//! - only TCP Service ports route (HTTP runs over TCP); FQDN slices are ignored;
//! - names are kept lowercase and without a trailing dot;
//! - a node's data plane ([`Peer`]) comes from its Node alone: InternalIP, the port
//!   annotation and the certificate pin; a part that is missing or malformed is None.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use flotilla_api::cidr::Ipv4Cidr;
use k8s_openapi::api::core::v1::{Endpoints, Node, Service as ServiceObject};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// `sessionAffinityConfig.clientIP.timeoutSeconds` when unset (Kubernetes' 3 hours).
pub(crate) const DEFAULT_AFFINITY_TIMEOUT: Duration = Duration::from_secs(10_800);
/// The label naming an EndpointSlice's Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One snapshot of what the pod network routes to.
#[derive(Debug, Default)]
pub(crate) struct Table {
    /// Services by namespace, then name.
    services: HashMap<String, HashMap<String, Arc<Service>>>,
    by_cluster_ip: HashMap<IpAddr, Arc<Service>>,
    /// Pod CIDRs of the nodes (IPv4, as the node IPAM hands them out), with the node's name.
    node_cidrs: Vec<(Ipv4Cidr, String)>,
    /// Node of every endpoint address that names one.
    endpoint_nodes: HashMap<IpAddr, String>,
    /// The nodes' data planes, by node name (`dataplane.rs`).
    peers: HashMap<String, Peer>,
    /// Node names by published certificate pin.
    pins: HashMap<[u8; 32], String>,
}

/// A node as the data plane reaches and authenticates it, from its Node object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Peer {
    /// Its InternalIP with the port of [`flotilla_api::DATA_PLANE_PORT_ANNOTATION`].
    pub addr: Option<SocketAddr>,
    /// The SHA-256 of its certificate ([`flotilla_api::SERVING_CERT_ANNOTATION`]).
    pub pin: Option<[u8; 32]>,
}

/// A Service as the network routes it.
#[derive(Debug)]
pub(crate) struct Service {
    pub name: String,
    pub kind: Kind,
    /// Its ClusterIPs (what its name resolves to), sorted; empty unless [`Kind::ClusterIp`].
    pub cluster_ips: Vec<IpAddr>,
    /// Its TCP ports, each with its ready backends.
    pub ports: Vec<Port>,
    /// Its ready endpoint addresses (what a headless name resolves to), sorted by IP.
    pub endpoints: Vec<Endpoint>,
    /// The ready addresses as backends with port 0, for headless names (the port comes
    /// from the request).
    pub headless: Arc<Backends>,
    /// How clients outside the cluster reach it.
    pub outside: Outside,
}

/// How a Service's name resolves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// To its ClusterIP(s).
    ClusterIp,
    /// `clusterIP: None`: to its ready endpoints' addresses.
    Headless,
    /// A CNAME to this name.
    ExternalName(String),
    /// No address (yet): the name does not resolve.
    Unallocated,
}

/// One TCP port of a Service.
#[derive(Debug)]
pub(crate) struct Port {
    pub port: u16,
    /// Its node port (type NodePort, or LoadBalancer with node ports allocated).
    pub node_port: Option<u16>,
    /// Its name ("" when unnamed), by which an Ingress backend may name it.
    pub name: String,
    pub backends: Arc<Backends>,
}

/// How clients outside the cluster reach a Service (types NodePort and LoadBalancer).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Outside {
    /// externalTrafficPolicy Local: only this node's endpoints serve outside clients.
    pub local_only: bool,
    /// The built-in load balancer serves it on its ports: type LoadBalancer without a
    /// loadBalancerClass, with an address published in status.loadBalancer.ingress.
    pub load_balanced: bool,
    /// Its healthCheckNodePort (LoadBalancer with the Local policy).
    pub health_check_node_port: Option<u16>,
}

/// A port this node listens on for clients outside the cluster, and what it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Frontend {
    /// The Service, as `namespace/name`.
    pub service: Arc<str>,
    pub kind: FrontendKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FrontendKind {
    /// A node port of the Service's port `port`.
    NodePort { port: u16 },
    /// The built-in load balancer on the Service's port `port`.
    LoadBalancer { port: u16 },
    /// The Service's health check (kube-proxy's healthCheckNodePort answer).
    HealthCheck,
}

/// The ready backends of one Service port: what round robin and affinity choose from.
#[derive(Debug, Default)]
pub(crate) struct Backends {
    /// Names the balancing state of this Service port: `namespace/name:port`.
    pub key: Arc<str>,
    /// Sorted, no duplicates.
    pub addrs: Vec<SocketAddr>,
    /// sessionAffinity ClientIP with its timeout.
    pub affinity: Option<Duration>,
}

/// A ready endpoint address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub ip: IpAddr,
    /// Its `hostname` (a StatefulSet pod's name, a pod's `hostname` under `subdomain`).
    pub hostname: Option<String>,
}

/// A name as the table keeps it: lowercase, no trailing dot.
pub(crate) fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Addresses and ports of one EndpointSlice or Endpoints subset.
struct Group<'a> {
    /// (name, port, TCP?)
    ports: Vec<(&'a str, Option<u16>, bool)>,
    /// Ready addresses with hostname and node.
    ready: Vec<(IpAddr, Option<&'a str>, Option<&'a str>)>,
}

fn tcp(protocol: Option<&String>) -> bool {
    protocol.is_none_or(|p| p == "TCP")
}

fn port16(p: i32) -> Option<u16> {
    u16::try_from(p).ok().filter(|&p| p != 0)
}

/// The Node's data plane: InternalIP (else the first address that is an IP) and
/// annotated port, and its certificate pin.
fn peer(node: &Node) -> Peer {
    let annotations = node.metadata.annotations.as_ref();
    let port = annotations.and_then(|a| a.get(flotilla_api::DATA_PLANE_PORT_ANNOTATION)).and_then(|p| p.parse::<u16>().ok()).filter(|&p| p != 0);
    let pin = annotations.and_then(|a| a.get(flotilla_api::SERVING_CERT_ANNOTATION)).and_then(|h| parse_sha256(h));
    let addresses = node.status.as_ref().and_then(|s| s.addresses.as_deref()).unwrap_or_default();
    let ip = addresses
        .iter()
        .find(|a| a.type_ == "InternalIP")
        .and_then(|a| a.address.parse::<IpAddr>().ok())
        .or_else(|| addresses.iter().find_map(|a| a.address.parse::<IpAddr>().ok()));
    Peer { addr: ip.zip(port).map(|(ip, port)| SocketAddr::new(ip, port)), pin }
}

/// 64 hex digits (either case) → 32 bytes.
pub(crate) fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn slice_group(slice: &EndpointSlice) -> Option<Group<'_>> {
    if slice.address_type != "IPv4" && slice.address_type != "IPv6" {
        return None;
    }
    let ports = slice.ports.iter().flatten().map(|p| (p.name.as_deref().unwrap_or(""), p.port.and_then(port16), tcp(p.protocol.as_ref()))).collect();
    let ready = slice
        .endpoints
        .iter()
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
        .flat_map(|e| e.addresses.iter().filter_map(move |a| Some((a.parse().ok()?, e.hostname.as_deref(), e.node_name.as_deref()))))
        .collect();
    Some(Group { ports, ready })
}

fn endpoints_groups(ep: &Endpoints) -> impl Iterator<Item = Group<'_>> {
    ep.subsets.iter().flatten().map(|s| Group {
        ports: s.ports.iter().flatten().map(|p| (p.name.as_deref().unwrap_or(""), port16(p.port), tcp(p.protocol.as_ref()))).collect(),
        ready: s.addresses.iter().flatten().filter_map(|a| Some((a.ip.parse().ok()?, a.hostname.as_deref(), a.node_name.as_deref()))).collect(),
    })
}

impl Table {
    /// The table for these objects. `services` of every namespace; slices and Endpoints
    /// are matched to them by namespace and name.
    pub fn build(services: &[Arc<ServiceObject>], slices: &[Arc<EndpointSlice>], endpoints: &[Arc<Endpoints>], nodes: &[Arc<Node>]) -> Table {
        let mut slices_of: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
        for s in slices {
            let ns = s.metadata.namespace.as_deref().unwrap_or("default");
            if let Some(svc) = s.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)) {
                slices_of.entry((ns, svc.as_str())).or_default().push(s);
            }
        }
        let endpoints_of: HashMap<(&str, &str), &Endpoints> = endpoints
            .iter()
            .filter_map(|e| Some(((e.metadata.namespace.as_deref().unwrap_or("default"), e.metadata.name.as_deref()?), &**e)))
            .collect();

        let mut table = Table::default();
        for obj in services {
            let (Some(name), Some(spec)) = (obj.metadata.name.as_deref(), obj.spec.as_ref()) else { continue };
            let ns = obj.metadata.namespace.as_deref().unwrap_or("default");
            let groups: Vec<Group<'_>> = match slices_of.get(&(ns, name)) {
                Some(ss) => ss.iter().filter_map(|s| slice_group(s)).collect(),
                None => endpoints_of.get(&(ns, name)).map(|e| endpoints_groups(e).collect()).unwrap_or_default(),
            };
            let mut cluster_ips: Vec<IpAddr> = Vec::new();
            let kind = if spec.type_.as_deref() == Some("ExternalName") {
                match spec.external_name.as_deref().map(normalize).filter(|n| !n.is_empty()) {
                    Some(target) => Kind::ExternalName(target),
                    None => Kind::Unallocated,
                }
            } else if spec.cluster_ip.as_deref() == Some("None") {
                Kind::Headless
            } else {
                let listed = spec.cluster_ips.iter().flatten().chain(spec.cluster_ip.iter());
                cluster_ips = listed.filter_map(|ip| ip.parse().ok()).collect();
                cluster_ips.sort();
                cluster_ips.dedup();
                if cluster_ips.is_empty() { Kind::Unallocated } else { Kind::ClusterIp }
            };
            let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
                let secs = spec.session_affinity_config.as_ref().and_then(|c| c.client_ip.as_ref()).and_then(|c| c.timeout_seconds);
                secs.and_then(|s| u64::try_from(s).ok()).filter(|&s| s > 0).map_or(DEFAULT_AFFINITY_TIMEOUT, Duration::from_secs)
            });

            let mut ready: Vec<Endpoint> = Vec::new();
            for g in &groups {
                for &(ip, hostname, node) in &g.ready {
                    ready.push(Endpoint { ip, hostname: hostname.map(str::to_ascii_lowercase) });
                    if let Some(node) = node {
                        table.endpoint_nodes.insert(ip, node.to_string());
                    }
                }
            }
            // One entry per address, keeping a hostname if any group names one.
            ready.sort_by(|a, b| a.ip.cmp(&b.ip).then_with(|| a.hostname.is_none().cmp(&b.hostname.is_none())));
            ready.dedup_by(|a, b| a.ip == b.ip);

            let mut ports = Vec::new();
            for sp in spec.ports.iter().flatten().filter(|p| tcp(p.protocol.as_ref())) {
                let Some(port) = port16(sp.port) else { continue };
                let port_name = sp.name.as_deref().unwrap_or("");
                // A group port without a number is taken as the numeric targetPort.
                let fallback = match &sp.target_port {
                    Some(IntOrString::Int(p)) => port16(*p),
                    Some(IntOrString::String(_)) => None,
                    None => Some(port),
                };
                let mut addrs = Vec::new();
                for g in &groups {
                    let Some(&(_, gp, _)) = g.ports.iter().find(|(n, _, is_tcp)| *n == port_name && *is_tcp) else { continue };
                    let Some(target) = gp.or(fallback) else { continue };
                    addrs.extend(g.ready.iter().map(|&(ip, _, _)| SocketAddr::new(ip, target)));
                }
                addrs.sort();
                addrs.dedup();
                let key: Arc<str> = format!("{ns}/{name}:{port}").into();
                let node_port = sp.node_port.and_then(port16).filter(|_| matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer")));
                ports.push(Port { port, name: port_name.to_string(), node_port, backends: Arc::new(Backends { key, addrs, affinity }) });
            }
            let headless = Backends {
                key: format!("{ns}/{name}").into(),
                addrs: ready.iter().map(|e| SocketAddr::new(e.ip, 0)).collect(),
                affinity: None,
            };
            let load_balancer = spec.type_.as_deref() == Some("LoadBalancer");
            let published = obj.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref()).is_some_and(|i| !i.is_empty());
            let outside = Outside {
                local_only: spec.external_traffic_policy.as_deref() == Some("Local"),
                load_balanced: load_balancer && spec.load_balancer_class.as_deref().is_none_or(str::is_empty) && published,
                health_check_node_port: spec.health_check_node_port.and_then(port16).filter(|_| load_balancer),
            };
            let service = Arc::new(Service {
                outside,
                name: normalize(name),
                kind,
                cluster_ips: cluster_ips.clone(),
                ports,
                endpoints: ready,
                headless: Arc::new(headless),
            });
            for ip in cluster_ips {
                table.by_cluster_ip.insert(ip, service.clone());
            }
            table.services.entry(ns.to_string()).or_default().insert(service.name.clone(), service);
        }
        for n in nodes {
            let Some(name) = n.metadata.name.as_deref() else { continue };
            let spec = n.spec.as_ref();
            let cidrs = spec.and_then(|s| s.pod_cidrs.clone()).filter(|c| !c.is_empty()).or_else(|| spec.and_then(|s| s.pod_cidr.clone()).map(|c| vec![c]));
            for c in cidrs.iter().flatten().filter_map(|c| c.parse::<Ipv4Cidr>().ok()) {
                table.node_cidrs.push((c, name.to_string()));
            }
            let peer = peer(n);
            if let Some(pin) = peer.pin {
                table.pins.insert(pin, name.to_string());
            }
            table.peers.insert(name.to_string(), peer);
        }
        table
    }

    /// The Service `namespace/name`.
    pub fn service(&self, namespace: &str, name: &str) -> Option<&Arc<Service>> {
        self.services.get(namespace)?.get(name)
    }

    /// The Service holding ClusterIP `ip`.
    pub fn by_cluster_ip(&self, ip: IpAddr) -> Option<&Arc<Service>> {
        self.by_cluster_ip.get(&ip)
    }

    /// Some Service lives in `namespace` (so a name ending in it is a cluster name).
    pub fn has_namespace(&self, namespace: &str) -> bool {
        self.services.contains_key(namespace)
    }

    /// The node `ip` belongs to, if it is a pod address the table knows of: an endpoint
    /// naming its node, else the node whose pod CIDR holds it.
    pub fn node_of(&self, ip: IpAddr) -> Option<&str> {
        if let Some(n) = self.endpoint_nodes.get(&ip) {
            return Some(n);
        }
        let IpAddr::V4(ip) = ip else { return None };
        self.node_cidrs.iter().find(|(c, _)| c.contains(ip)).map(|(_, n)| n.as_str())
    }

    /// The data plane of node `name`.
    pub fn peer(&self, name: &str) -> Option<&Peer> {
        self.peers.get(name)
    }

    /// The node that published certificate pin `pin`.
    pub fn node_with_pin(&self, pin: &[u8; 32]) -> Option<&str> {
        self.pins.get(pin).map(String::as_str)
    }

    /// The ports this node listens on for clients outside the cluster: every node port,
    /// health-check node port and built-in load balancer port. A port two Services claim
    /// (two load balancers on one port; node ports are unique) goes to the first by
    /// namespace and name, as the second's svclb pod would stay pending in k3s.
    pub fn frontends(&self) -> std::collections::BTreeMap<u16, Frontend> {
        let mut out = std::collections::BTreeMap::new();
        let mut all: Vec<(&String, &Arc<Service>)> = self.services.iter().flat_map(|(ns, m)| m.values().map(move |s| (ns, s))).collect();
        all.sort_by(|a, b| (a.0, &a.1.name).cmp(&(b.0, &b.1.name)));
        // Node ports first: the API server keeps them unique, a load balancer port must
        // not take one.
        for load_balancers in [false, true] {
            for (ns, svc) in &all {
                let id: Arc<str> = format!("{ns}/{}", svc.name).into();
                let mut claim = |port: u16, kind: FrontendKind| {
                    out.entry(port).or_insert_with(|| Frontend { service: id.clone(), kind });
                };
                if load_balancers {
                    if svc.outside.load_balanced {
                        svc.ports.iter().for_each(|p| claim(p.port, FrontendKind::LoadBalancer { port: p.port }));
                    }
                    continue;
                }
                for p in &svc.ports {
                    if let Some(np) = p.node_port {
                        claim(np, FrontendKind::NodePort { port: p.port });
                    }
                }
                if let Some(hc) = svc.outside.health_check_node_port {
                    claim(hc, FrontendKind::HealthCheck);
                }
            }
        }
        out
    }

    /// Number of Services (for logs).
    pub fn len(&self) -> usize {
        self.services.values().map(HashMap::len).sum()
    }
}
