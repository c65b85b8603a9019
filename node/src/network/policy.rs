//! NetworkPolicy (networking.k8s.io/v1) as the pod network enforces it: a [`PolicyView`]
//! built from the cluster's NetworkPolicies, Namespaces and Pods ([`PolicyView::build`],
//! pure), and one question asked of it for every connection or request the node routes,
//! [`allowed`]: may `from` reach `to` on this port and protocol?
//!
//! Kubernetes' semantics:
//! - a pod is isolated for ingress (egress) when some policy of its namespace selects it
//!   and lists Ingress (Egress) in its `policyTypes` (unset: Ingress, plus Egress when it has
//!   egress rules, as the API server defaults it); a pod no policy isolates allows
//!   everything in that direction;
//! - an isolated pod allows what some rule of some policy selecting it allows (the union);
//!   a rule allows a peer matching one of its `from` (`to`) entries — all peers when it
//!   lists none — on one of its ports — all ports when it lists none;
//! - a peer entry: `podSelector` alone → pods of the policy's namespace; `namespaceSelector`
//!   alone → every pod of the matching namespaces; both → the matching pods of the
//!   matching namespaces; `ipBlock` → addresses in `cidr` and in no `except`;
//! - a port entry: protocol (TCP when unset), a number (with `endPort`, a range), a name
//!   (the destination pod's containerPort of that name and protocol, for ingress and
//!   egress alike), or none (every port of the protocol);
//! - a connection needs both: the egress of the source pod and the ingress of the
//!   destination pod.
//!
//! Flotilla's choices, where Kubernetes leaves them to the implementation:
//! - `ipBlock` matches pods too, by their pod IP (as Calico does): `0.0.0.0/0` admits every
//!   pod, and the usual `except: [<cluster CIDR>]` leaves them out;
//! - an external destination known only by name (wasi:http egress to a host name, which
//!   the host resolves later) matches an `ipBlock` only when it covers every address
//!   (`0.0.0.0/0` or `::/0` without `except`): with egress isolation, names are refused
//!   unless such a rule (or one without `to`) allows them;
//! - the node itself ([`Peer::Node`]: pods/proxy through the API server, probes, the node
//!   server's proxy) is never filtered, nor is a pod reaching itself (localhost, its own
//!   IP), as Kubernetes says pods cannot block those; cluster DNS names resolve with no
//!   policy check, only the connection that follows is checked;
//! - a denied connection fails at once with connection-refused (the router answers
//!   `Dispatch::Refused`), like a REJECT rule, never with a timeout;
//! - a pod the view does not know yet (the watch lags its creation) counts as a pod of its
//!   namespace without labels: only policies selecting every pod apply to it;
//! - both directions are decided where the connection starts: every node knows every pod
//!   and policy.
//!
//! Invariants: [`PolicyView::build`] and [`allowed`] do no I/O and read no clock; which
//! policies select a pod is computed once per build, so a request only evaluates the rules
//! of the policies that isolate its two ends.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

#[cfg(test)]
mod tests;

/// The label the API server puts on every Namespace: its name.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

type Labels = BTreeMap<String, String>;

/// A transport protocol, as NetworkPolicy ports name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// A policy's or container port's protocol: TCP when unset, None when unknown.
    fn parse(p: Option<&str>) -> Option<Protocol> {
        match p {
            None | Some("TCP") => Some(Protocol::Tcp),
            Some("UDP") => Some(Protocol::Udp),
            Some("SCTP") => Some(Protocol::Sctp),
            Some(_) => None,
        }
    }
}

/// One end of a connection.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Peer<'a> {
    /// A pod, by namespace and name; its labels, ports and the policies selecting it come
    /// from the view. `ip` is matched by `ipBlock` peers (the view's when None).
    Pod { namespace: &'a str, name: &'a str, ip: Option<IpAddr> },
    /// An address no pod holds.
    Ip(IpAddr),
    /// An external host known only by name (resolved outside the pod network).
    Name,
    /// The node itself: never filtered.
    #[cfg_attr(not(test), expect(dead_code, reason = "callers outside the pod network (TCP, probes) are to come"))]
    Node,
}

/// What the pod network knows of NetworkPolicy: one immutable snapshot.
#[derive(Debug, Default)]
pub(crate) struct PolicyView {
    /// Namespace labels by name.
    namespaces: HashMap<String, Labels>,
    /// Pods by namespace, then name.
    pods: HashMap<String, HashMap<String, PodInfo>>,
    /// Pod names by IP (running pods win over finished ones holding the same address).
    by_ip: HashMap<IpAddr, (String, String)>,
    policies: Vec<Policy>,
    /// Namespaces that have at least one policy (pods elsewhere are never isolated).
    with_policies: HashMap<String, Vec<usize>>,
}

#[derive(Debug, Default)]
struct PodInfo {
    ip: Option<IpAddr>,
    labels: Labels,
    /// Named containerPorts: (name, port, protocol).
    ports: Vec<(String, u16, Protocol)>,
    /// Policies isolating it for ingress, by index.
    ingress: Vec<usize>,
    /// Policies isolating it for egress, by index.
    egress: Vec<usize>,
}

#[derive(Debug)]
struct Policy {
    namespace: String,
    selector: Selector,
    /// Its ingress rules when it isolates for ingress.
    ingress: Option<Vec<Rule>>,
    /// Its egress rules when it isolates for egress.
    egress: Option<Vec<Rule>>,
}

#[derive(Debug)]
struct Rule {
    /// None: every peer.
    peers: Option<Vec<PeerSelector>>,
    /// None: every port.
    ports: Option<Vec<PortSelector>>,
}

#[derive(Debug)]
enum PeerSelector {
    Pods { namespaces: NamespaceSelector, pods: Selector },
    Block { cidr: Cidr, except: Vec<Cidr> },
    /// A peer entry that can match nothing (an unparsable CIDR, no field set).
    Nothing,
}

#[derive(Debug)]
enum NamespaceSelector {
    /// The policy's own namespace.
    Own(String),
    Matching(Selector),
}

#[derive(Debug)]
struct PortSelector {
    protocol: Protocol,
    port: PortMatch,
}

#[derive(Debug)]
enum PortMatch {
    Any,
    Range(u16, u16),
    Named(String),
}

/// A label selector: matchLabels and matchExpressions, all required.
#[derive(Debug)]
struct Selector {
    reqs: Vec<(String, Op)>,
}

#[derive(Debug)]
enum Op {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    /// An unknown operator: matches nothing.
    Never,
}

impl Selector {
    /// `None` (unset) selects everything, as an empty selector does.
    fn new(s: Option<&LabelSelector>) -> Selector {
        let mut reqs = Vec::new();
        let Some(s) = s else { return Selector { reqs } };
        for (k, v) in s.match_labels.iter().flatten() {
            reqs.push((k.clone(), Op::In(vec![v.clone()])));
        }
        for e in s.match_expressions.iter().flatten() {
            let values = e.values.clone().unwrap_or_default();
            let op = match e.operator.as_str() {
                "In" => Op::In(values),
                "NotIn" => Op::NotIn(values),
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                _ => Op::Never,
            };
            reqs.push((e.key.clone(), op));
        }
        Selector { reqs }
    }

    fn matches(&self, labels: &Labels) -> bool {
        self.reqs.iter().all(|(k, op)| {
            let v = labels.get(k);
            match op {
                Op::In(vs) => v.is_some_and(|v| vs.contains(v)),
                Op::NotIn(vs) => v.is_none_or(|v| !vs.contains(v)),
                Op::Exists => v.is_some(),
                Op::DoesNotExist => v.is_none(),
                Op::Never => false,
            }
        })
    }
}

/// An IPv4 or IPv6 block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = s.split_once('/')?;
        let addr: IpAddr = a.parse().ok()?;
        let prefix: u8 = p.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
                u32::from(n) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - self.prefix) };
                u128::from(n) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn port16(p: i32) -> Option<u16> {
    u16::try_from(p).ok().filter(|&p| p != 0)
}

fn peer_selector(namespace: &str, p: &NetworkPolicyPeer) -> PeerSelector {
    if let Some(block) = &p.ip_block {
        return match Cidr::parse(&block.cidr) {
            Some(cidr) => PeerSelector::Block { cidr, except: block.except.iter().flatten().filter_map(|e| Cidr::parse(e)).collect() },
            None => PeerSelector::Nothing,
        };
    }
    match (&p.namespace_selector, &p.pod_selector) {
        (None, None) => PeerSelector::Nothing,
        (ns, pods) => PeerSelector::Pods {
            namespaces: match ns {
                Some(s) => NamespaceSelector::Matching(Selector::new(Some(s))),
                None => NamespaceSelector::Own(namespace.to_string()),
            },
            pods: Selector::new(pods.as_ref()),
        },
    }
}

fn port_selector(p: &NetworkPolicyPort) -> Option<PortSelector> {
    // An unknown protocol matches no traffic.
    let protocol = Protocol::parse(p.protocol.as_deref())?;
    let port = match &p.port {
        None => PortMatch::Any,
        Some(IntOrString::Int(n)) => {
            let from = port16(*n)?;
            let to = p.end_port.and_then(port16).unwrap_or(from);
            PortMatch::Range(from, to)
        }
        Some(IntOrString::String(name)) => PortMatch::Named(name.clone()),
    };
    Some(PortSelector { protocol, port })
}

fn rule(namespace: &str, peers: Option<&Vec<NetworkPolicyPeer>>, ports: Option<&Vec<NetworkPolicyPort>>) -> Rule {
    Rule {
        peers: peers.filter(|p| !p.is_empty()).map(|ps| ps.iter().map(|p| peer_selector(namespace, p)).collect()),
        ports: ports.filter(|p| !p.is_empty()).map(|ps| ps.iter().filter_map(port_selector).collect()),
    }
}

fn policy(np: &NetworkPolicy) -> Option<Policy> {
    let spec = np.spec.as_ref()?;
    let namespace = np.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let egress_rules = spec.egress.as_ref().filter(|e| !e.is_empty());
    // policyTypes as the API server defaults it, for objects written without defaulting.
    let (isolates_in, isolates_out) = match spec.policy_types.as_ref().filter(|t| !t.is_empty()) {
        Some(types) => (types.iter().any(|t| t == "Ingress"), types.iter().any(|t| t == "Egress")),
        None => (true, egress_rules.is_some()),
    };
    let ingress = isolates_in.then(|| spec.ingress.iter().flatten().map(|r| rule(&namespace, r.from.as_ref(), r.ports.as_ref())).collect());
    let egress = isolates_out.then(|| spec.egress.iter().flatten().map(|r| rule(&namespace, r.to.as_ref(), r.ports.as_ref())).collect());
    Some(Policy { selector: Selector::new(spec.pod_selector.as_ref()), namespace, ingress, egress })
}

fn pod_info(pod: &Pod) -> PodInfo {
    let status = pod.status.as_ref();
    let ip = status.and_then(|s| s.pod_ip.as_deref()).and_then(|ip| ip.parse().ok());
    let mut ports = Vec::new();
    let containers = pod.spec.iter().flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()));
    for c in containers {
        for p in c.ports.iter().flatten() {
            if let (Some(name), Some(port), Some(proto)) = (&p.name, port16(p.container_port), Protocol::parse(p.protocol.as_deref())) {
                ports.push((name.clone(), port, proto));
            }
        }
    }
    PodInfo { ip, labels: pod.metadata.labels.clone().unwrap_or_default(), ports, ingress: Vec::new(), egress: Vec::new() }
}

fn finished(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

impl PolicyView {
    /// The view of these objects (all namespaces).
    pub(crate) fn build(policies: &[Arc<NetworkPolicy>], namespaces: &[Arc<Namespace>], pods: &[Arc<Pod>]) -> PolicyView {
        let mut view = PolicyView::default();
        for ns in namespaces {
            if let Some(name) = &ns.metadata.name {
                view.namespaces.insert(name.clone(), ns.metadata.labels.clone().unwrap_or_default());
            }
        }
        view.policies = policies.iter().filter_map(|p| policy(p)).collect();
        for (i, p) in view.policies.iter().enumerate() {
            view.with_policies.entry(p.namespace.clone()).or_default().push(i);
        }
        let mut by_ip: HashMap<IpAddr, ((String, String), bool)> = HashMap::new();
        for pod in pods {
            let (Some(name), ns) = (&pod.metadata.name, pod.metadata.namespace.clone().unwrap_or_else(|| "default".into())) else { continue };
            let mut info = pod_info(pod);
            (info.ingress, info.egress) = view.selecting(&ns, &info.labels);
            let key = (ns, name.clone());
            if let Some(ip) = info.ip {
                let done = finished(pod);
                if by_ip.get(&ip).is_none_or(|(_, was_done)| *was_done && !done) {
                    by_ip.insert(ip, (key.clone(), done));
                }
            }
            let (ns, name) = key;
            view.pods.entry(ns).or_default().insert(name, info);
        }
        view.by_ip = by_ip.into_iter().map(|(ip, (key, _))| (ip, key)).collect();
        view
    }

    /// The policies of `namespace` that isolate a pod with `labels`: (ingress, egress).
    fn selecting(&self, namespace: &str, labels: &Labels) -> (Vec<usize>, Vec<usize>) {
        let (mut ingress, mut egress) = (Vec::new(), Vec::new());
        for &i in self.with_policies.get(namespace).into_iter().flatten() {
            let p = &self.policies[i];
            if p.selector.matches(labels) {
                if p.ingress.is_some() {
                    ingress.push(i);
                }
                if p.egress.is_some() {
                    egress.push(i);
                }
            }
        }
        (ingress, egress)
    }

    /// The peer at `ip`: the pod holding it when the view knows one, else an address.
    pub(crate) fn peer_at(&self, ip: IpAddr) -> Peer<'_> {
        match self.by_ip.get(&ip) {
            Some((ns, name)) => Peer::Pod { namespace: ns, name, ip: Some(ip) },
            None => Peer::Ip(ip),
        }
    }

    /// Number of policies (for logs).
    pub(crate) fn len(&self) -> usize {
        self.policies.len()
    }

}

/// A pod end of a connection as the view sees it.
struct End<'x> {
    namespace: &'x str,
    ip: Option<IpAddr>,
    info: Option<&'x PodInfo>,
    /// For a pod the view does not know: the policies selecting a pod without labels.
    unknown: (Vec<usize>, Vec<usize>),
}

/// Labels of a pod the view does not know.
static NO_LABELS: Labels = Labels::new();

impl<'x> End<'x> {
    fn of(view: &'x PolicyView, peer: Peer<'x>) -> Option<End<'x>> {
        let Peer::Pod { namespace, name, ip } = peer else { return None };
        let info = view.pods.get(namespace).and_then(|pods| pods.get(name));
        let unknown = if info.is_none() { view.selecting(namespace, &NO_LABELS) } else { Default::default() };
        Some(End { namespace, ip: ip.or(info.and_then(|i| i.ip)), info, unknown })
    }

    fn isolating(&self, ingress: bool) -> &[usize] {
        match (self.info, ingress) {
            (Some(i), true) => &i.ingress,
            (Some(i), false) => &i.egress,
            (None, true) => &self.unknown.0,
            (None, false) => &self.unknown.1,
        }
    }

    fn labels(&self) -> &Labels {
        self.info.map_or(&NO_LABELS, |i| &i.labels)
    }

    fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.info?.ports.iter().find(|(n, _, p)| n == name && *p == protocol).map(|&(_, port, _)| port)
    }
}

/// The far end of a connection, as rule peers match it.
#[derive(Clone, Copy)]
enum Other<'e, 'x> {
    Pod(&'e End<'x>),
    Ip(IpAddr),
    Name,
}

impl<'e, 'x> Other<'e, 'x> {
    fn new(peer: Peer<'_>, end: Option<&'e End<'x>>) -> Other<'e, 'x> {
        match (peer, end) {
            (_, Some(e)) => Other::Pod(e),
            (Peer::Ip(ip), None) => Other::Ip(ip),
            (Peer::Pod { ip: Some(ip), .. }, None) => Other::Ip(ip),
            _ => Other::Name,
        }
    }
}

/// Whether `from` may reach `to` on `port`/`protocol`: the egress of `from` and the
/// ingress of `to`, when they are pods. `port` is the destination's final port (a pod's
/// container port after Service resolution).
pub(crate) fn allowed(view: &PolicyView, from: Peer<'_>, to: Peer<'_>, port: u16, protocol: Protocol) -> bool {
    match (from, to) {
        (Peer::Node, _) | (_, Peer::Node) => return true,
        (Peer::Pod { namespace: a, name: b, .. }, Peer::Pod { namespace: c, name: d, .. }) if a == c && b == d => return true,
        _ => {}
    }
    let (src, dst) = (End::of(view, from), End::of(view, to));
    let egress = src.as_ref().is_none_or(|s| direction_allows(view, s, false, Other::new(to, dst.as_ref()), dst.as_ref(), port, protocol));
    egress && dst.as_ref().is_none_or(|d| direction_allows(view, d, true, Other::new(from, src.as_ref()), Some(d), port, protocol))
}

/// Whether the policies isolating `this` in one direction let `other` through.
fn direction_allows(view: &PolicyView, this: &End<'_>, ingress: bool, other: Other<'_, '_>, dst: Option<&End<'_>>, port: u16, protocol: Protocol) -> bool {
    let isolating = this.isolating(ingress);
    isolating.is_empty()
        || isolating.iter().any(|&i| {
            let p = &view.policies[i];
            let rules = if ingress { p.ingress.as_deref() } else { p.egress.as_deref() };
            rules.unwrap_or_default().iter().any(|r| {
                r.peers.as_ref().is_none_or(|ps| ps.iter().any(|s| peer_matches(view, s, other)))
                    && r.ports.as_ref().is_none_or(|ps| ps.iter().any(|s| port_matches(s, dst, port, protocol)))
            })
        })
}

fn peer_matches(view: &PolicyView, selector: &PeerSelector, other: Other<'_, '_>) -> bool {
    match (selector, other) {
        (PeerSelector::Pods { namespaces, pods }, Other::Pod(e)) => {
            let ns = match namespaces {
                NamespaceSelector::Own(n) => n == e.namespace,
                NamespaceSelector::Matching(s) => match view.namespaces.get(e.namespace) {
                    Some(labels) => s.matches(labels),
                    // A namespace not seen yet still carries its name label.
                    None => s.matches(&Labels::from([(NAMESPACE_NAME_LABEL.to_string(), e.namespace.to_string())])),
                },
            };
            ns && pods.matches(e.labels())
        }
        (PeerSelector::Block { cidr, except }, Other::Pod(End { ip: Some(ip), .. })) => block_contains(cidr, except, *ip),
        (PeerSelector::Block { cidr, except }, Other::Ip(ip)) => block_contains(cidr, except, ip),
        (PeerSelector::Block { cidr, except }, Other::Name) => cidr.prefix == 0 && except.is_empty(),
        _ => false,
    }
}

fn block_contains(cidr: &Cidr, except: &[Cidr], ip: IpAddr) -> bool {
    cidr.contains(ip) && !except.iter().any(|e| e.contains(ip))
}

fn port_matches(selector: &PortSelector, dst: Option<&End<'_>>, port: u16, protocol: Protocol) -> bool {
    selector.protocol == protocol
        && match &selector.port {
            PortMatch::Any => true,
            PortMatch::Range(from, to) => (*from..=*to).contains(&port),
            PortMatch::Named(name) => dst.and_then(|d| d.named_port(name, protocol)) == Some(port),
        }
}
