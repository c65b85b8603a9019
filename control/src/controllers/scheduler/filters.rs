//! Filters: kube-scheduler's default filter plugins in their order (NodeUnschedulable,
//! TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit, then PodTopologySpread and
//! InterPodAffinity from their own files), the taint, toleration and host-port types they
//! compare, and the FitError message of a pod no node passes.
//!
//! A node reports the reasons of the first filter that rejects it; reasons are rendered
//! only when the pod fits nowhere.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use smallvec::SmallVec;

use super::affinity::InterPodState;
use super::spread::HardSpread;
use super::{Incoming, NodeInfo, Unschedulable, str_of};

const ERR_UNSCHEDULABLE: &str = "node(s) were unschedulable";
const ERR_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
const ERR_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";

/// How a node suits a pod before any binding (the DaemonSet controller's question):
/// nodeSelector plus required node affinity, and the effects of the node's taints the pod
/// does not tolerate. A cordon counts as the `node.kubernetes.io/unschedulable` NoSchedule
/// taint; a node that is not Ready carries the implicit taint described above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NodeFit {
    pub matches_affinity: bool,
    pub untolerated_no_schedule: bool,
    pub untolerated_no_execute: bool,
}

pub(crate) fn node_fit(pod: &Value, node: &Value) -> NodeFit {
    let p = Incoming::new(pod);
    let n = NodeInfo::new(node, Vec::new());
    let cordon = Taint { key: "node.kubernetes.io/unschedulable", value: "", effect: "NoSchedule" };
    let mut fit = NodeFit { matches_affinity: p.matches_node_affinity(&n), untolerated_no_schedule: false, untolerated_no_execute: false };
    for t in n.taints.iter().chain(n.unschedulable.then_some(&cordon)) {
        if p.tolerations.iter().any(|tol| tol.tolerates(t)) {
            continue;
        }
        match t.effect {
            "NoSchedule" => fit.untolerated_no_schedule = true,
            "NoExecute" => fit.untolerated_no_execute = true,
            _ => {}
        }
    }
    fit
}

pub(super) struct Rejection<'a> {
    reasons: SmallVec<[Reason<'a>; 2]>,
    /// kube-scheduler's UnschedulableAndUnresolvable: preemption cannot help.
    unresolvable: bool,
}

impl<'a> Rejection<'a> {
    pub(super) fn one(reason: impl Into<Reason<'a>>, unresolvable: bool) -> Rejection<'a> {
        Rejection { reasons: smallvec::smallvec![reason.into()], unresolvable }
    }
}

/// Why a node was rejected, rendered only when a pod fits nowhere (a pass over many
/// unschedulable pods and nodes must not format a string per node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Reason<'a> {
    Text(&'static str),
    Taint { key: &'a str, value: &'a str },
    Insufficient(&'a str),
}

impl From<&'static str> for Reason<'_> {
    fn from(s: &'static str) -> Self {
        Reason::Text(s)
    }
}

impl std::fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Text(s) => f.write_str(s),
            Reason::Taint { key, value } => write!(f, "node(s) had untolerated taint {{{key}: {value}}}"),
            Reason::Insufficient(name) => write!(f, "Insufficient {name}"),
        }
    }
}

pub(super) fn filter<'n>(p: &'n Incoming<'_>, n: &'n NodeInfo<'_>, inter: &InterPodState<'_>, spread: &HardSpread<'_>) -> Result<(), Rejection<'n>> {
    // NodeUnschedulable
    if n.unschedulable {
        let cordon = Taint { key: "node.kubernetes.io/unschedulable", value: "", effect: "NoSchedule" };
        if !p.tolerations.iter().any(|t| t.tolerates(&cordon)) {
            return Err(Rejection::one(ERR_UNSCHEDULABLE, true));
        }
    }
    // TaintToleration
    if let Some(t) = p.untolerated_taint(n) {
        return Err(Rejection::one(Reason::Taint { key: t.key, value: t.value }, true));
    }
    // NodeAffinity
    if !p.matches_node_affinity(n) {
        return Err(Rejection::one(ERR_NODE_AFFINITY, true));
    }
    // NodePorts
    if p.ports.iter().any(|want| n.ports.iter().any(|used| want.conflicts(used))) {
        return Err(Rejection::one(ERR_PORTS, false));
    }
    // NodeResourcesFit
    let reasons = insufficient(p, n);
    if !reasons.is_empty() {
        return Err(Rejection { reasons, unresolvable: false });
    }
    // PodTopologySpread
    spread.filter(p, n)?;
    // InterPodAffinity
    inter.filter(p, n)
}

fn insufficient<'p>(p: &'p Incoming<'_>, n: &NodeInfo<'_>) -> SmallVec<[Reason<'p>; 2]> {
    let mut reasons: SmallVec<[Reason<'p>; 2]> = SmallVec::new();
    if n.pods.len() as u64 + 1 > n.allowed_pods {
        reasons.push("Too many pods".into());
    }
    let r = &p.requests;
    if r.milli_cpu == 0 && r.memory == 0 && r.ephemeral == 0 && r.scalar.iter().all(|(_, v)| *v == 0) {
        return reasons;
    }
    let (a, u) = (&n.allocatable, &n.requested);
    if r.milli_cpu > 0 && r.milli_cpu > a.milli_cpu.saturating_sub(u.milli_cpu) {
        reasons.push(Reason::Insufficient("cpu"));
    }
    if r.memory > 0 && r.memory > a.memory.saturating_sub(u.memory) {
        reasons.push(Reason::Insufficient("memory"));
    }
    if r.ephemeral > 0 && r.ephemeral > a.ephemeral.saturating_sub(u.ephemeral) {
        reasons.push(Reason::Insufficient("ephemeral-storage"));
    }
    for (name, want) in &r.scalar {
        if *want > 0 && *want > a.scalar(name).saturating_sub(u.scalar(name)) {
            reasons.push(Reason::Insufficient(name));
        }
    }
    reasons
}

pub(super) fn node_selector_term_matches(term: &Value, n: &NodeInfo<'_>) -> bool {
    let exprs = term["matchExpressions"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let fields = term["matchFields"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false; // an empty term matches no objects
    }
    exprs.iter().all(|e| node_requirement_matches(e, n.label(str_of(&e["key"]))))
        && fields.iter().all(|f| str_of(&f["key"]) == "metadata.name" && node_requirement_matches(f, Some(n.name)))
}

/// One NodeSelectorRequirement against the value of its key (`None`: label absent).
fn node_requirement_matches(req: &Value, value: Option<&str>) -> bool {
    let values: Vec<&str> = req["values"].as_array().map(|a| a.iter().map(str_of).collect()).unwrap_or_default();
    let int_cmp = |ord: std::cmp::Ordering| -> bool {
        match (value.and_then(|v| v.parse::<i64>().ok()), values.as_slice()) {
            (Some(have), [want]) => want.parse::<i64>().is_ok_and(|w| have.cmp(&w) == ord),
            _ => false,
        }
    };
    match str_of(&req["operator"]) {
        "In" => value.is_some_and(|v| values.contains(&v)),
        "NotIn" => value.is_none_or(|v| !values.contains(&v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => int_cmp(std::cmp::Ordering::Greater),
        "Lt" => int_cmp(std::cmp::Ordering::Less),
        _ => false,
    }
}

pub(super) fn fit_error(p: &Incoming<'_>, total: usize, rejections: &[Rejection<'_>]) -> Unschedulable {
    let mut distinct: HashMap<Reason<'_>, usize> = HashMap::new();
    let mut preemption: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rejections {
        for reason in &r.reasons {
            *distinct.entry(*reason).or_default() += 1;
        }
        let why = if r.unresolvable {
            "Preemption is not helpful for scheduling"
        } else {
            "No preemption victims found for incoming pod"
        };
        *preemption.entry(why).or_default() += 1;
    }
    let rendered: Vec<(String, usize)> = distinct.into_iter().map(|(r, c)| (r.to_string(), c)).collect();
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for (r, c) in &rendered {
        *reasons.entry(r.as_str()).or_default() += c;
    }
    let mut message = format!("0/{total} nodes are available: {}.", histogram(&reasons));
    if p.preempt_never {
        message.push_str(" preemption: not eligible due to preemptionPolicy=Never.");
    } else {
        message.push_str(&format!(" preemption: 0/{total} nodes are available: {}.", histogram(&preemption)));
    }
    Unschedulable { message }
}

/// "COUNT REASON" entries sorted as strings (as kube-scheduler's sortReasonsHistogram).
fn histogram(counts: &BTreeMap<&str, usize>) -> String {
    let mut parts: Vec<String> = counts.iter().map(|(r, c)| format!("{c} {r}")).collect();
    parts.sort();
    parts.join(", ")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Taint<'a> {
    pub(super) key: &'a str,
    pub(super) value: &'a str,
    pub(super) effect: &'a str,
}

impl<'a> Taint<'a> {
    pub(super) fn from_json(t: &'a Value) -> Taint<'a> {
        Taint { key: str_of(&t["key"]), value: str_of(&t["value"]), effect: str_of(&t["effect"]) }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Toleration<'a> {
    key: &'a str,
    operator: &'a str,
    value: &'a str,
    pub(super) effect: &'a str,
}

impl<'a> Toleration<'a> {
    pub(super) fn from_json(t: &'a Value) -> Toleration<'a> {
        Toleration {
            key: str_of(&t["key"]),
            operator: str_of(&t["operator"]),
            value: str_of(&t["value"]),
            effect: str_of(&t["effect"]),
        }
    }

    /// An empty effect matches all effects; an empty key with Exists matches all keys.
    pub(super) fn tolerates(&self, t: &Taint<'_>) -> bool {
        if !self.effect.is_empty() && self.effect != t.effect {
            return false;
        }
        if !self.key.is_empty() && self.key != t.key {
            return false;
        }
        match self.operator {
            "Exists" => true,
            "" | "Equal" => self.value == t.value,
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct HostPort<'a> {
    ip: &'a str,
    protocol: &'a str,
    port: i64,
}

impl HostPort<'_> {
    fn conflicts(&self, o: &HostPort<'_>) -> bool {
        self.port == o.port
            && self.protocol == o.protocol
            && (self.ip == o.ip || self.ip == "0.0.0.0" || o.ip == "0.0.0.0")
    }
}

pub(super) fn host_ports(spec: &Value) -> Vec<HostPort<'_>> {
    let mut out = Vec::new();
    for c in spec["containers"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        for port in c["ports"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            let host_port = port["hostPort"].as_i64().unwrap_or(0);
            if host_port <= 0 {
                continue;
            }
            let ip = str_of(&port["hostIP"]);
            let protocol = str_of(&port["protocol"]);
            out.push(HostPort {
                ip: if ip.is_empty() { "0.0.0.0" } else { ip },
                protocol: if protocol.is_empty() { "TCP" } else { protocol },
                port: host_port,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::scheduler::testing::*;
    use serde_json::json;

    #[test]
    fn filters() {
        let plain = || pod("p", "100m", "100Mi");
        let tainted = |key: &str, value: &str, effect: &str| {
            with(node("n1", "4", "8Gi", 110), &["spec", "taints"], json!([{"key": key, "value": value, "effect": effect}]))
        };
        let tolerating = |tols: Value| with(plain(), &["spec", "tolerations"], tols);
        let not_helpful = "1 Preemption is not helpful for scheduling";
        let no_victims = "1 No preemption victims found for incoming pod";
        // (case, nodes, bound pods, pod, Ok(node) or Err((filter reasons, preemption reasons)))
        type Case = (&'static str, Vec<Value>, Vec<Value>, Value, Result<&'static str, (String, &'static str)>);
        let cases: Vec<Case> = vec![
            ("fits", vec![node("n1", "1", "1Gi", 110)], vec![], plain(), Ok("n1")),
            (
                "cordoned",
                vec![with(node("n1", "4", "8Gi", 110), &["spec", "unschedulable"], json!(true))],
                vec![],
                plain(),
                Err(("1 node(s) were unschedulable".into(), not_helpful)),
            ),
            (
                "cordon tolerated (DaemonSet pods)",
                vec![with(node("n1", "4", "8Gi", 110), &["spec", "unschedulable"], json!(true))],
                vec![],
                tolerating(json!([{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}])),
                Ok("n1"),
            ),
            (
                "not ready",
                vec![with(node("n1", "4", "8Gi", 110), &["status", "conditions"], json!([{"type": "Ready", "status": "False"}]))],
                vec![],
                plain(),
                Err(("1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }".into(), not_helpful)),
            ),
            (
                "no Ready condition",
                vec![with(node("n1", "4", "8Gi", 110), &["status", "conditions"], json!([]))],
                vec![],
                plain(),
                Err(("1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }".into(), not_helpful)),
            ),
            (
                "ready unknown",
                vec![with(node("n1", "4", "8Gi", 110), &["status", "conditions"], json!([{"type": "Ready", "status": "Unknown"}]))],
                vec![],
                plain(),
                Err(("1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }".into(), not_helpful)),
            ),
            (
                "insufficient cpu and memory on one node",
                vec![node("n1", "50m", "10Mi", 110)],
                vec![],
                plain(),
                Err(("1 Insufficient cpu, 1 Insufficient memory".into(), no_victims)),
            ),
            (
                "requested by bound pods",
                vec![node("n1", "1", "1Gi", 110)],
                vec![bound(pod("a", "950m", "10Mi"), "n1")],
                plain(),
                Err(("1 Insufficient cpu".into(), no_victims)),
            ),
            (
                "finished pods free their requests",
                vec![node("n1", "1", "1Gi", 110)],
                vec![with(bound(pod("a", "950m", "10Mi"), "n1"), &["status", "phase"], json!("Succeeded"))],
                plain(),
                Ok("n1"),
            ),
            (
                "ephemeral storage",
                vec![node("n1", "1", "1Gi", 110)],
                vec![],
                with(plain(), &["spec", "containers", "0", "resources", "requests", "ephemeral-storage"], json!("11Gi")),
                Err(("1 Insufficient ephemeral-storage".into(), no_victims)),
            ),
            (
                "extended resource",
                vec![node("n1", "1", "1Gi", 110)],
                vec![],
                with(plain(), &["spec", "containers", "0", "resources", "limits"], json!({"example.com/gpu": "1"})),
                Err(("1 Insufficient example.com/gpu".into(), no_victims)),
            ),
            (
                "too many pods",
                vec![node("n1", "4", "8Gi", 1)],
                vec![bound(pod("a", "", ""), "n1")],
                pod("p", "", ""),
                Err(("1 Too many pods".into(), no_victims)),
            ),
            (
                "nodeSelector",
                vec![node("n1", "4", "8Gi", 110), with(node("n2", "4", "8Gi", 110), &["metadata", "labels", "disk"], json!("ssd"))],
                vec![],
                with(plain(), &["spec", "nodeSelector"], json!({"disk": "ssd"})),
                Ok("n2"),
            ),
            (
                "nodeSelector unmatched",
                vec![node("n1", "4", "8Gi", 110)],
                vec![],
                with(plain(), &["spec", "nodeSelector"], json!({"disk": "ssd"})),
                Err(("1 node(s) didn't match Pod's node affinity/selector".into(), not_helpful)),
            ),
            (
                "hostPort taken",
                vec![node("n1", "4", "8Gi", 110)],
                vec![bound(with(pod("a", "", ""), &["spec", "containers", "0", "ports"], json!([{"containerPort": 80, "hostPort": 8080}])), "n1")],
                with(plain(), &["spec", "containers", "0", "ports"], json!([{"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.1"}])),
                Err(("1 node(s) didn't have free ports for the requested pod ports".into(), no_victims)),
            ),
            (
                "hostPort other protocol",
                vec![node("n1", "4", "8Gi", 110)],
                vec![bound(with(pod("a", "", ""), &["spec", "containers", "0", "ports"], json!([{"containerPort": 80, "hostPort": 8080}])), "n1")],
                with(plain(), &["spec", "containers", "0", "ports"], json!([{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}])),
                Ok("n1"),
            ),
            // Taints and tolerations.
            ("NoSchedule", vec![tainted("dedicated", "gpu", "NoSchedule")], vec![], plain(),
                Err(("1 node(s) had untolerated taint {dedicated: gpu}".into(), not_helpful))),
            ("NoExecute", vec![tainted("dedicated", "", "NoExecute")], vec![], plain(),
                Err(("1 node(s) had untolerated taint {dedicated: }".into(), not_helpful))),
            ("PreferNoSchedule only scores", vec![tainted("dedicated", "gpu", "PreferNoSchedule")], vec![], plain(), Ok("n1")),
            ("Equal", vec![tainted("dedicated", "gpu", "NoSchedule")], vec![],
                tolerating(json!([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}])), Ok("n1")),
            ("Equal wrong value", vec![tainted("dedicated", "gpu", "NoSchedule")], vec![],
                tolerating(json!([{"key": "dedicated", "value": "cpu"}])),
                Err(("1 node(s) had untolerated taint {dedicated: gpu}".into(), not_helpful))),
            ("Exists any effect", vec![tainted("dedicated", "gpu", "NoExecute")], vec![],
                tolerating(json!([{"key": "dedicated", "operator": "Exists"}])), Ok("n1")),
            ("wrong effect", vec![tainted("dedicated", "gpu", "NoSchedule")], vec![],
                tolerating(json!([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}])),
                Err(("1 node(s) had untolerated taint {dedicated: gpu}".into(), not_helpful))),
            ("empty key Exists tolerates all", vec![tainted("dedicated", "gpu", "NoSchedule")], vec![],
                tolerating(json!([{"operator": "Exists"}])), Ok("n1")),
        ];
        for (name, nodes, pods, p, want) in cases {
            let got = run(&nodes, &pods, &p);
            let want = want.map(str::to_string).map_err(|(f, pre)| msg(nodes.len(), &f, pre));
            assert_eq!(got, want, "case {name}");
        }
    }

    #[test]
    fn node_affinity_operators() {
        let n = with(
            node("n1", "4", "8Gi", 110),
            &["metadata", "labels"],
            json!({"zone": "a", "gen": "5", "kubernetes.io/hostname": "n1"}),
        );
        let expr = |key: &str, op: &str, values: Value| json!({"key": key, "operator": op, "values": values});
        // (term, matches)
        let cases = [
            (json!({"matchExpressions": [expr("zone", "In", json!(["a", "b"]))]}), true),
            (json!({"matchExpressions": [expr("zone", "In", json!(["b"]))]}), false),
            (json!({"matchExpressions": [expr("zone", "NotIn", json!(["b"]))]}), true),
            (json!({"matchExpressions": [expr("missing", "NotIn", json!(["b"]))]}), true),
            (json!({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}), true),
            (json!({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}), false),
            (json!({"matchExpressions": [expr("gen", "Gt", json!(["4"]))]}), true),
            (json!({"matchExpressions": [expr("gen", "Gt", json!(["5"]))]}), false),
            (json!({"matchExpressions": [expr("gen", "Lt", json!(["6"]))]}), true),
            (json!({"matchExpressions": [expr("zone", "Lt", json!(["6"]))]}), false),
            (json!({"matchFields": [expr("metadata.name", "In", json!(["n1"]))]}), true),
            (json!({"matchFields": [expr("metadata.name", "NotIn", json!(["n1"]))]}), false),
            (json!({"matchExpressions": [expr("zone", "In", json!(["a"]))], "matchFields": [expr("metadata.name", "In", json!(["n2"]))]}), false),
            (json!({}), false),
        ];
        for (term, want) in cases {
            let p = with(
                pod("p", "", ""),
                &["spec", "affinity"],
                json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}),
            );
            assert_eq!(run(std::slice::from_ref(&n), &[], &p).is_ok(), want, "{term}");
        }
        // Terms are ORed.
        let p = with(
            pod("p", "", ""),
            &["spec", "affinity"],
            json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [expr("zone", "In", json!(["b"]))]},
                {"matchExpressions": [expr("zone", "In", json!(["a"]))]}
            ]}}}),
        );
        assert_eq!(run(&[n], &[], &p), Ok("n1".to_string()));
    }

    #[test]
    fn mixed_failure_message() {
        let nodes = [
            with(node("a", "4", "8Gi", 110), &["metadata", "labels", "disk"], json!("hdd")),
            with(node("b", "4", "1Gi", 110), &["metadata", "labels", "disk"], json!("ssd")),
            with(node("c", "4", "1Gi", 110), &["metadata", "labels", "disk"], json!("ssd")),
            with(node("d", "4", "8Gi", 110), &["spec", "taints"], json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])),
        ];
        let p = with(pod("p", "1", "2Gi"), &["spec", "affinity"], json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}}));
        assert_eq!(
            run(&nodes, &[], &p),
            Err("0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, \
                 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient memory. \
                 preemption: 0/4 nodes are available: 2 No preemption victims found for incoming pod, \
                 2 Preemption is not helpful for scheduling."
                .to_string())
        );
        let never = with(p, &["spec", "preemptionPolicy"], json!("Never"));
        assert_eq!(
            run(&nodes[1..2], &[], &never),
            Err("0/1 nodes are available: 1 Insufficient memory. preemption: not eligible due to preemptionPolicy=Never.".to_string())
        );
        assert_eq!(run(&[], &[], &never), Err("no nodes available to schedule pods".to_string()));
    }
}
