//! Scheduler: a pure function from a pending Pod and a snapshot of the nodes (each with
//! the pods bound to it) to the name of the node to bind it to, or an [`Unschedulable`]
//! whose message is kube-scheduler's `FitError` text. No I/O, no clock, no randomness.
//!
//! Semantics (kube-scheduler's default profile, v1.33):
//! - Filters run in the default plugin order: NodeUnschedulable, TaintToleration,
//!   NodeAffinity, NodePorts, NodeResourcesFit, PodTopologySpread, InterPodAffinity. A node
//!   reports the reasons of the first filter that rejects it (NodeResourcesFit may report
//!   several, e.g. `Insufficient cpu` and `Insufficient memory`).
//! - A node whose Ready condition is not `True` carries an implicit NoSchedule taint, as the
//!   node lifecycle controller adds it: `node.kubernetes.io/not-ready` (False or missing) or
//!   `node.kubernetes.io/unreachable` (Unknown), unless the node already has that key.
//! - Requests: max(sum of containers + sidecars, max of init containers) + overhead; a
//!   resource without a request uses its limit (API defaulting). Scoring uses the
//!   "non-zero" requests (100m CPU / 200Mi memory for containers that request nothing).
//! - Scores, weighted as the default profile: TaintToleration x3 (PreferNoSchedule),
//!   NodeAffinity x2 (preferred terms), PodTopologySpread x2 (ScheduleAnyway),
//!   InterPodAffinity x2 (preferred terms, and existing pods' terms), NodeResourcesFit x1
//!   (LeastAllocated over cpu and memory), NodeResourcesBalancedAllocation x1.
//! - Ties: kube-scheduler picks at random among the best nodes; here the node with the
//!   lexicographically smallest name wins, so results are reproducible.
//! - Topology keys: any node label; `kubernetes.io/hostname` falls back to the node name
//!   when the label is missing.
//! - Not modelled: preemption (the message says no victims were found), volumes, image
//!   locality, system-default topology spreading, `namespaceSelector` other than `{}`
//!   (pod affinity terms; no namespace labels here), pod-level `spec.resources`.

use std::collections::{BTreeMap, HashMap};

use flotilla_api::quantity;
use flotilla_api::selector::LabelSelector;
use serde_json::{Map, Value, json};
use smallvec::SmallVec;

const HOSTNAME: &str = "kubernetes.io/hostname";
const MAX_SCORE: i64 = 100;
/// Requests kube-scheduler assumes, for scoring only, for a container that sets none.
const DEFAULT_MILLI_CPU: u64 = 100;
const DEFAULT_MEMORY: u64 = 200 * 1024 * 1024;
/// Weight of an existing pod's required affinity term in scoring (hardPodAffinityWeight).
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

const ERR_UNSCHEDULABLE: &str = "node(s) were unschedulable";
const ERR_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
const ERR_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
const ERR_SPREAD: &str = "node(s) didn't match pod topology spread constraints";
const ERR_SPREAD_LABEL: &str = "node(s) didn't match pod topology spread constraints (missing required label)";
const ERR_AFFINITY: &str = "node(s) didn't match pod affinity rules";
const ERR_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
const ERR_EXISTING_ANTI: &str = "node(s) didn't satisfy existing pods anti-affinity rules";

/// Why a pod fits no node, in kube-scheduler's words (the FailedScheduling event message
/// and the PodScheduled=False condition message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct Unschedulable {
    pub message: String,
}

/// One node and the pods bound to it that are not terminated, with the aggregates the
/// filters need computed once (build with [`NodeInfo::new`] or [`snapshot`], and keep it
/// current with [`NodeInfo::add_pod`] after each binding).
#[derive(Debug, Clone)]
pub(crate) struct NodeInfo<'a> {
    #[allow(dead_code, reason = "kept for callers inspecting the node")]
    pub node: &'a Value,
    pub pods: Vec<&'a Value>,
    name: &'a str,
    labels: Option<&'a Map<String, Value>>,
    unschedulable: bool,
    taints: Vec<Taint<'a>>,
    allocatable: Resources,
    allowed_pods: u64,
    requested: Resources,
    non_zero_cpu: u64,
    non_zero_memory: u64,
    ports: Vec<HostPort<'a>>,
    affinity_pods: Vec<PodAffinity<'a>>,
}

impl<'a> NodeInfo<'a> {
    pub(crate) fn new(node: &'a Value, pods: Vec<&'a Value>) -> NodeInfo<'a> {
        let spec = &node["spec"];
        let status = &node["status"];
        let mut taints: Vec<Taint<'a>> = spec["taints"]
            .as_array()
            .map(|a| a.iter().map(Taint::from_json).collect())
            .unwrap_or_default();
        let ready = status["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .map(|c| str_of(&c["status"]))
            .unwrap_or("");
        let implicit = match ready {
            "True" => None,
            "Unknown" => Some("node.kubernetes.io/unreachable"),
            _ => Some("node.kubernetes.io/not-ready"),
        };
        if let Some(key) = implicit
            && !taints.iter().any(|t| t.key == key)
        {
            taints.push(Taint { key, value: "", effect: "NoSchedule" });
        }
        // The API server defaults allocatable to capacity.
        let alloc = match &status["allocatable"] {
            Value::Object(_) => &status["allocatable"],
            _ => &status["capacity"],
        };
        let allowed_pods = alloc.get("pods").and_then(quantity_value).map(|v| v.max(0.0) as u64).unwrap_or(0);
        let mut info = NodeInfo {
            node,
            pods: Vec::new(),
            name: str_of(&node["metadata"]["name"]),
            labels: node["metadata"]["labels"].as_object(),
            unschedulable: spec["unschedulable"].as_bool().unwrap_or(false),
            taints,
            allocatable: Resources::from_list(alloc),
            allowed_pods,
            requested: Resources::default(),
            non_zero_cpu: 0,
            non_zero_memory: 0,
            ports: Vec::new(),
            affinity_pods: Vec::new(),
        };
        for p in pods {
            info.add_pod(p);
        }
        info
    }

    /// Account for a pod bound to this node (e.g. the one just scheduled here).
    pub(crate) fn add_pod(&mut self, pod: &'a Value) {
        let spec = &pod["spec"];
        self.requested.add(&pod_requests(spec, false));
        let nz = pod_requests(spec, true);
        self.non_zero_cpu += nz.milli_cpu;
        self.non_zero_memory += nz.memory;
        self.ports.extend(host_ports(spec));
        let aff = PodAffinity::parse(pod);
        if !aff.is_empty() {
            self.affinity_pods.push(aff);
        }
        self.pods.push(pod);
    }

    fn label(&self, key: &str) -> Option<&'a str> {
        self.labels.and_then(|l| l.get(key)).and_then(Value::as_str)
    }

    /// The node's value of a topology key (`kubernetes.io/hostname` defaults to the name).
    fn topology(&self, key: &str) -> Option<&'a str> {
        match self.label(key) {
            Some(v) => Some(v),
            None if key == HOSTNAME => Some(self.name),
            None => None,
        }
    }
}

/// Group bound, non-terminal pods (phase not Succeeded/Failed) by `spec.nodeName` onto the
/// given nodes, in the order of `nodes`. Pods naming an unknown node are ignored.
pub(crate) fn snapshot<'a>(nodes: &[&'a Value], pods: &[&'a Value]) -> Vec<NodeInfo<'a>> {
    let index: HashMap<&str, usize> =
        nodes.iter().enumerate().map(|(i, n)| (str_of(&n["metadata"]["name"]), i)).collect();
    let mut grouped: Vec<Vec<&'a Value>> = vec![Vec::new(); nodes.len()];
    for p in pods {
        let node_name = str_of(&p["spec"]["nodeName"]);
        if node_name.is_empty() || matches!(str_of(&p["status"]["phase"]), "Succeeded" | "Failed") {
            continue;
        }
        if let Some(&i) = index.get(node_name) {
            grouped[i].push(p);
        }
    }
    nodes.iter().zip(grouped).map(|(n, ps)| NodeInfo::new(n, ps)).collect()
}

/// Pick the node for `pod`: filter, then score; the highest total wins, ties go to the
/// smallest node name. Filtering starts at the first node (see [`schedule_from`]).
#[cfg(test)]
pub(crate) fn schedule(pod: &Value, nodes: &[NodeInfo<'_>]) -> Result<String, Unschedulable> {
    schedule_from(pod, nodes, 0).result
}

/// The outcome of [`schedule_from`].
#[derive(Debug)]
pub(crate) struct Attempt {
    pub result: Result<String, Unschedulable>,
    /// Nodes filtered: the caller's next `start` is `(start + processed) % nodes.len()`.
    pub processed: usize,
}

/// kube-scheduler's numFeasibleNodesToFind with the default (adaptive)
/// percentageOfNodesToScore: every node below 100 nodes, else 50% minus 1% per 125 nodes
/// (at least 5%) and never fewer than 100.
pub(crate) fn feasible_nodes_to_find(all: usize) -> usize {
    const MIN_NODES: usize = 100;
    if all < MIN_NODES {
        return all;
    }
    let percentage = 50usize.saturating_sub(all / 125).max(5);
    (all * percentage / 100).max(MIN_NODES)
}

/// [`schedule`] as kube-scheduler runs it on a large cluster: filter nodes in order from
/// `start` (wrapping), stop once [`feasible_nodes_to_find`] nodes fit, and score only those.
/// Rotating `start` between pods spreads the search over every node.
pub(crate) fn schedule_from(pod: &Value, nodes: &[NodeInfo<'_>], start: usize) -> Attempt {
    schedule_inner(pod, nodes, start)
}

/// Schedules `pending` in order, as one scheduling pass: each pod is placed with
/// [`schedule_from`] (the search start rotating through `start`) and accounted on its node
/// so later pods see it. Returns one result per pod.
///
/// A pod that fits nowhere is not filtered again for an equivalent pod later in the same
/// pass (same namespace, labels and spec): binding only consumes node resources, ports and
/// anti-affinity room, so the equivalent pod cannot fit either. Pods with required pod
/// affinity or hard topology spread are always filtered, since a binding in the pass can
/// make them fit.
pub(crate) fn schedule_all<'a>(pending: &[&'a Value], nodes: &mut [NodeInfo<'a>], start: &mut usize) -> Vec<Result<String, Unschedulable>> {
    let index: HashMap<String, usize> = nodes.iter().enumerate().map(|(i, n)| (n.name.to_string(), i)).collect();
    let mut failed: HashMap<String, Unschedulable> = HashMap::new();
    let mut out = Vec::with_capacity(pending.len());
    for pod in pending {
        let key = if failed.is_empty() { None } else { equivalence_key(pod) };
        if let Some(u) = key.as_ref().and_then(|k| failed.get(k)) {
            out.push(Err(u.clone()));
            continue;
        }
        let attempt = schedule_from(pod, nodes, *start);
        if !nodes.is_empty() {
            *start = (*start + attempt.processed) % nodes.len();
        }
        match &attempt.result {
            Ok(node) => {
                if let Some(&i) = index.get(node) {
                    nodes[i].add_pod(pod);
                }
            }
            Err(u) => {
                if let Some(k) = key.or_else(|| equivalence_key(pod)) {
                    failed.insert(k, u.clone());
                }
            }
        }
        out.push(attempt.result);
    }
    out
}

/// What makes two pods schedule alike, or None when a binding could make a failed pod fit
/// (required pod affinity, DoNotSchedule topology spread).
fn equivalence_key(pod: &Value) -> Option<String> {
    let spec = &pod["spec"];
    let required_affinity = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"].as_array().is_some_and(|a| !a.is_empty());
    let hard_spread = spec["topologySpreadConstraints"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| str_of(&c["whenUnsatisfiable"]) != "ScheduleAnyway"));
    if required_affinity || hard_spread {
        return None;
    }
    serde_json::to_string(&(namespace_of(pod), &pod["metadata"]["labels"], spec)).ok()
}

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

fn schedule_inner<'x>(pod: &'x Value, nodes: &'x [NodeInfo<'x>], start: usize) -> Attempt {
    if nodes.is_empty() {
        return Attempt { result: Err(Unschedulable { message: "no nodes available to schedule pods".to_string() }), processed: 0 };
    }
    let p = Incoming::new(pod);
    let inter = InterPodState::new(&p, nodes);
    let spread = HardSpread::new(&p, nodes);

    let wanted = feasible_nodes_to_find(nodes.len());
    let mut feasible: Vec<&NodeInfo<'x>> = Vec::new();
    let mut rejections: Vec<Rejection<'_>> = Vec::new();
    let mut processed = 0;
    for i in 0..nodes.len() {
        let n = &nodes[(start + i) % nodes.len()];
        processed += 1;
        match filter(&p, n, &inter, &spread) {
            Ok(()) => feasible.push(n),
            Err(r) => rejections.push(r),
        }
        if feasible.len() >= wanted {
            break;
        }
    }
    let result = pick(&p, nodes, feasible, &rejections);
    Attempt { result, processed }
}

fn pick<'x>(p: &Incoming<'x>, nodes: &'x [NodeInfo<'x>], feasible: Vec<&NodeInfo<'x>>, rejections: &[Rejection<'_>]) -> Result<String, Unschedulable> {
    match feasible.len() {
        0 => return Err(fit_error(p, nodes.len(), rejections)),
        1 => return Ok(feasible[0].name.to_string()),
        _ => {}
    }
    let totals = score(p, nodes, &feasible);
    let mut best: Option<(i64, &str)> = None;
    for (n, total) in feasible.iter().zip(totals) {
        let better = match best {
            None => true,
            Some((bt, bn)) => total > bt || (total == bt && n.name < bn),
        };
        if better {
            best = Some((total, n.name));
        }
    }
    Ok(best.map(|(_, n)| n.to_string()).unwrap_or_default())
}

// ---------------------------------------------------------------------------
// The pod being scheduled
// ---------------------------------------------------------------------------

struct Incoming<'x> {
    ns: &'x str,
    labels: Option<&'x Map<String, Value>>,
    requests: Resources,
    non_zero: Resources,
    tolerations: Vec<Toleration<'x>>,
    node_selector: Option<&'x Map<String, Value>>,
    /// `Some` when required node affinity is set: its nodeSelectorTerms (ORed).
    required_terms: Option<&'x [Value]>,
    preferred_terms: Vec<(i64, &'x Value)>,
    affinity: PodAffinity<'x>,
    hard_spread: Vec<Spread<'x>>,
    soft_spread: Vec<Spread<'x>>,
    ports: Vec<HostPort<'x>>,
    preempt_never: bool,
}

impl<'x> Incoming<'x> {
    fn new(pod: &'x Value) -> Incoming<'x> {
        let spec = &pod["spec"];
        let node_aff = &spec["affinity"]["nodeAffinity"];
        let required_terms = match &node_aff["requiredDuringSchedulingIgnoredDuringExecution"] {
            Value::Object(r) => Some(r.get("nodeSelectorTerms").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])),
            _ => None,
        };
        let preferred_terms = node_aff["preferredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .map(|a| a.iter().map(|t| (t["weight"].as_i64().unwrap_or(0), &t["preference"])).collect())
            .unwrap_or_default();
        let labels = pod["metadata"]["labels"].as_object();
        let ns = namespace_of(pod);
        let (mut hard_spread, mut soft_spread) = (Vec::new(), Vec::new());
        for c in spec["topologySpreadConstraints"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            let s = Spread::parse(c, labels);
            if str_of(&c["whenUnsatisfiable"]) == "ScheduleAnyway" {
                soft_spread.push(s);
            } else {
                hard_spread.push(s);
            }
        }
        Incoming {
            ns,
            labels,
            requests: pod_requests(spec, false),
            non_zero: pod_requests(spec, true),
            tolerations: spec["tolerations"]
                .as_array()
                .map(|a| a.iter().map(Toleration::from_json).collect())
                .unwrap_or_default(),
            node_selector: spec["nodeSelector"].as_object(),
            required_terms,
            preferred_terms,
            affinity: PodAffinity::parse(pod),
            hard_spread,
            soft_spread,
            ports: host_ports(spec),
            preempt_never: str_of(&spec["preemptionPolicy"]) == "Never",
        }
    }

    /// nodeSelector and required node affinity.
    fn matches_node_affinity(&self, n: &NodeInfo<'_>) -> bool {
        if let Some(sel) = self.node_selector
            && !sel.iter().all(|(k, v)| n.label(k).is_some_and(|l| Some(l) == v.as_str()))
        {
            return false;
        }
        match self.required_terms {
            None => true,
            Some(terms) => terms.iter().any(|t| node_selector_term_matches(t, n)),
        }
    }

    /// The first NoSchedule/NoExecute taint of the node the pod does not tolerate.
    fn untolerated_taint<'n>(&self, n: &'n NodeInfo<'_>) -> Option<&'n Taint<'n>> {
        n.taints.iter().find(|t| {
            matches!(t.effect, "NoSchedule" | "NoExecute") && !self.tolerations.iter().any(|tol| tol.tolerates(t))
        })
    }
}

// ---------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------

struct Rejection<'a> {
    reasons: SmallVec<[Reason<'a>; 2]>,
    /// kube-scheduler's UnschedulableAndUnresolvable: preemption cannot help.
    unresolvable: bool,
}

impl<'a> Rejection<'a> {
    fn one(reason: impl Into<Reason<'a>>, unresolvable: bool) -> Rejection<'a> {
        Rejection { reasons: smallvec::smallvec![reason.into()], unresolvable }
    }
}

/// Why a node was rejected, rendered only when a pod fits nowhere (a pass over many
/// unschedulable pods and nodes must not format a string per node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Reason<'a> {
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

fn filter<'n>(p: &'n Incoming<'_>, n: &'n NodeInfo<'_>, inter: &InterPodState<'_>, spread: &HardSpread<'_>) -> Result<(), Rejection<'n>> {
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

fn node_selector_term_matches(term: &Value, n: &NodeInfo<'_>) -> bool {
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

fn fit_error(p: &Incoming<'_>, total: usize, rejections: &[Rejection<'_>]) -> Unschedulable {
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

// ---------------------------------------------------------------------------
// Scores
// ---------------------------------------------------------------------------

/// Weighted totals for the feasible nodes, in their order.
fn score<'x>(p: &Incoming<'x>, all: &'x [NodeInfo<'x>], feasible: &[&NodeInfo<'x>]) -> Vec<i64> {
    let mut totals = vec![0i64; feasible.len()];
    let mut add = |scores: Vec<i64>, weight: i64| {
        for (t, s) in totals.iter_mut().zip(scores) {
            *t += s * weight;
        }
    };

    // NodeResourcesFit (LeastAllocated, cpu and memory weight 1 each), weight 1.
    add(feasible.iter().map(|n| least_allocated(p, n)).collect(), 1);

    // NodeResourcesBalancedAllocation, weight 1; skipped for pods requesting no cpu/memory.
    if p.requests.milli_cpu > 0 || p.requests.memory > 0 {
        add(feasible.iter().map(|n| balanced_allocation(p, n)).collect(), 1);
    }

    // TaintToleration: untolerated PreferNoSchedule taints, fewer is better; weight 3.
    let prefer_tols: Vec<&Toleration<'_>> =
        p.tolerations.iter().filter(|t| t.effect.is_empty() || t.effect == "PreferNoSchedule").collect();
    let taint_counts = feasible
        .iter()
        .map(|n| {
            n.taints
                .iter()
                .filter(|t| t.effect == "PreferNoSchedule" && !prefer_tols.iter().any(|tol| tol.tolerates(t)))
                .count() as i64
        })
        .collect();
    add(normalize(taint_counts, true), 3);

    // NodeAffinity preferred terms, weight 2.
    if !p.preferred_terms.is_empty() {
        let sums = feasible
            .iter()
            .map(|n| {
                p.preferred_terms.iter().filter(|(_, t)| node_selector_term_matches(t, n)).map(|(w, _)| *w).sum()
            })
            .collect();
        add(normalize(sums, false), 2);
    }

    // PodTopologySpread (ScheduleAnyway), weight 2.
    if !p.soft_spread.is_empty() {
        add(soft_spread_scores(p, all, feasible), 2);
    }

    // InterPodAffinity, weight 2.
    if let Some(scores) = inter_pod_scores(p, all, feasible) {
        add(scores, 2);
    }
    totals
}

/// kube-scheduler's DefaultNormalizeScore: scale to 0..100 by the maximum, optionally reversed.
fn normalize(mut scores: Vec<i64>, reverse: bool) -> Vec<i64> {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_SCORE);
        }
        return scores;
    }
    for s in &mut scores {
        let v = MAX_SCORE * *s / max;
        *s = if reverse { MAX_SCORE - v } else { v };
    }
    scores
}

fn least_allocated(p: &Incoming<'_>, n: &NodeInfo<'_>) -> i64 {
    fn one(requested: u64, capacity: u64) -> i64 {
        if capacity == 0 || requested > capacity {
            return 0;
        }
        ((capacity - requested) as u128 * MAX_SCORE as u128 / capacity as u128) as i64
    }
    let resources = [
        (n.non_zero_cpu + p.non_zero.milli_cpu, n.allocatable.milli_cpu),
        (n.non_zero_memory + p.non_zero.memory, n.allocatable.memory),
    ];
    let (mut sum, mut weights) = (0i64, 0i64);
    for (req, cap) in resources {
        if cap == 0 {
            continue;
        }
        sum += one(req, cap);
        weights += 1;
    }
    if weights == 0 { 0 } else { sum / weights }
}

fn balanced_allocation(p: &Incoming<'_>, n: &NodeInfo<'_>) -> i64 {
    let resources = [
        (n.requested.milli_cpu + p.requests.milli_cpu, n.allocatable.milli_cpu),
        (n.requested.memory + p.requests.memory, n.allocatable.memory),
    ];
    let fractions: Vec<f64> = resources
        .iter()
        .filter(|(_, cap)| *cap > 0)
        .map(|(req, cap)| (*req as f64 / *cap as f64).min(1.0))
        .collect();
    let std = if let [a, b] = fractions.as_slice() { ((a - b) / 2.0).abs() } else { 0.0 };
    ((1.0 - std) * MAX_SCORE as f64) as i64
}

fn soft_spread_scores<'x>(p: &Incoming<'x>, all: &'x [NodeInfo<'x>], feasible: &[&NodeInfo<'x>]) -> Vec<i64> {
    let cs = &p.soft_spread;
    let has_all = |n: &NodeInfo<'_>| cs.iter().all(|c| n.topology(c.key).is_some());
    let ignored: Vec<bool> = feasible.iter().map(|n| !has_all(n)).collect();
    let considered = ignored.iter().filter(|i| !**i).count();
    // Pod counts per domain, over the domains present among the feasible nodes.
    let mut counts: Vec<HashMap<&str, i64>> = vec![HashMap::new(); cs.len()];
    let mut weights = vec![0f64; cs.len()];
    for (i, c) in cs.iter().enumerate() {
        for (n, ign) in feasible.iter().zip(&ignored) {
            if let (false, Some(v)) = (*ign, n.topology(c.key)) {
                counts[i].entry(v).or_insert(0);
            }
        }
        let size = if c.key == HOSTNAME { considered } else { counts[i].len() };
        weights[i] = ((size + 2) as f64).ln();
        if c.key == HOSTNAME {
            continue; // counted on the node itself below
        }
        for n in all {
            if !has_all(n) || !c.includes_node(p, n) {
                continue;
            }
            if let Some(v) = n.topology(c.key)
                && let Some(slot) = counts[i].get_mut(v)
            {
                *slot += c.count_on(p, n);
            }
        }
    }
    let raw: Vec<Option<i64>> = feasible
        .iter()
        .zip(&ignored)
        .map(|(n, ign)| {
            if *ign {
                return None;
            }
            let mut s = 0f64;
            for (i, c) in cs.iter().enumerate() {
                let Some(v) = n.topology(c.key) else { continue };
                let cnt = if c.key == HOSTNAME { c.count_on(p, n) } else { counts[i].get(v).copied().unwrap_or(0) };
                s += cnt as f64 * weights[i] + (c.max_skew - 1) as f64;
            }
            Some(s.round() as i64)
        })
        .collect();
    let (mut min, mut max) = (i64::MAX, 0i64);
    for s in raw.iter().flatten() {
        min = min.min(*s);
        max = max.max(*s);
    }
    raw.iter()
        .map(|s| match s {
            None => 0,
            Some(_) if max == 0 => MAX_SCORE,
            Some(s) => MAX_SCORE * (max + min - s) / max,
        })
        .collect()
}

/// Preferred pod (anti-)affinity of the pod, and existing pods' terms that match it.
/// `None` when nothing applies.
fn inter_pod_scores<'x>(p: &Incoming<'x>, all: &'x [NodeInfo<'x>], feasible: &[&NodeInfo<'x>]) -> Option<Vec<i64>> {
    let own = &p.affinity;
    let has_preferred = !own.pref_aff.is_empty() || !own.pref_anti.is_empty();
    if !has_preferred && all.iter().all(|n| n.affinity_pods.is_empty()) {
        return None;
    }
    let mut topo: HashMap<(&str, &str), i64> = HashMap::new();
    let mut bump = |key: &'x str, n: &NodeInfo<'x>, w: i64| {
        if let Some(v) = n.topology(key) {
            *topo.entry((key, v)).or_insert(0) += w;
        }
    };
    for n in all {
        if has_preferred {
            for e in &n.pods {
                let (ens, elabels) = (namespace_of(e), e["metadata"]["labels"].as_object());
                for t in &own.pref_aff {
                    if t.matches(ens, elabels) {
                        bump(t.key, n, t.weight);
                    }
                }
                for t in &own.pref_anti {
                    if t.matches(ens, elabels) {
                        bump(t.key, n, -t.weight);
                    }
                }
            }
        }
        for e in &n.affinity_pods {
            for t in &e.req_aff {
                if t.matches(p.ns, p.labels) {
                    bump(t.key, n, HARD_POD_AFFINITY_WEIGHT);
                }
            }
            for t in &e.pref_aff {
                if t.matches(p.ns, p.labels) {
                    bump(t.key, n, t.weight);
                }
            }
            for t in &e.pref_anti {
                if t.matches(p.ns, p.labels) {
                    bump(t.key, n, -t.weight);
                }
            }
        }
    }
    if topo.is_empty() {
        return None;
    }
    let raw: Vec<i64> = feasible
        .iter()
        .map(|n| topo.iter().filter(|((k, v), _)| n.topology(k) == Some(*v)).map(|(_, s)| *s).sum())
        .collect();
    let min = raw.iter().copied().min().unwrap_or(0);
    let max = raw.iter().copied().max().unwrap_or(0);
    let diff = max - min;
    Some(
        raw.iter()
            .map(|s| if diff > 0 { (MAX_SCORE as f64 * ((s - min) as f64 / diff as f64)) as i64 } else { 0 })
            .collect(),
    )
}

// ---------------------------------------------------------------------------
// Inter-pod affinity
// ---------------------------------------------------------------------------

/// One pod's parsed affinity and anti-affinity terms.
#[derive(Debug, Clone)]
struct PodAffinity<'a> {
    req_aff: Vec<AffinityTerm<'a>>,
    req_anti: Vec<AffinityTerm<'a>>,
    pref_aff: Vec<AffinityTerm<'a>>,
    pref_anti: Vec<AffinityTerm<'a>>,
}

impl<'a> PodAffinity<'a> {
    fn parse(pod: &'a Value) -> PodAffinity<'a> {
        let ns = namespace_of(pod);
        let aff = &pod["spec"]["affinity"];
        let terms = |kind: &str, field: &str, weighted: bool| -> Vec<AffinityTerm<'a>> {
            let Some(list) = aff.get(kind).and_then(|k| k.get(field)).and_then(Value::as_array) else {
                return Vec::new();
            };
            list.iter()
                .map(|item| {
                    if weighted {
                        AffinityTerm::parse(&item["podAffinityTerm"], ns, item["weight"].as_i64().unwrap_or(0))
                    } else {
                        AffinityTerm::parse(item, ns, 0)
                    }
                })
                .collect()
        };
        const REQ: &str = "requiredDuringSchedulingIgnoredDuringExecution";
        const PREF: &str = "preferredDuringSchedulingIgnoredDuringExecution";
        PodAffinity {
            req_aff: terms("podAffinity", REQ, false),
            req_anti: terms("podAntiAffinity", REQ, false),
            pref_aff: terms("podAffinity", PREF, true),
            pref_anti: terms("podAntiAffinity", PREF, true),
        }
    }

    fn is_empty(&self) -> bool {
        self.req_aff.is_empty() && self.req_anti.is_empty() && self.pref_aff.is_empty() && self.pref_anti.is_empty()
    }
}

#[derive(Debug, Clone)]
struct AffinityTerm<'a> {
    namespaces: Vec<&'a str>,
    /// `namespaceSelector: {}` selects every namespace.
    all_namespaces: bool,
    selector: LabelSelector,
    key: &'a str,
    weight: i64,
}

impl<'a> AffinityTerm<'a> {
    fn parse(term: &'a Value, owner_ns: &'a str, weight: i64) -> AffinityTerm<'a> {
        let mut namespaces: Vec<&'a str> =
            term["namespaces"].as_array().map(|a| a.iter().map(str_of).collect()).unwrap_or_default();
        let ns_selector = &term["namespaceSelector"];
        if namespaces.is_empty() && ns_selector.is_null() {
            namespaces.push(owner_ns);
        }
        let all_namespaces = ns_selector.as_object().is_some_and(|o| {
            o.get("matchLabels").and_then(Value::as_object).is_none_or(Map::is_empty)
                && o.get("matchExpressions").and_then(Value::as_array).is_none_or(Vec::is_empty)
        });
        AffinityTerm {
            namespaces,
            all_namespaces,
            selector: LabelSelector::from_label_selector_json(&term["labelSelector"]).unwrap_or_else(|_| LabelSelector::nothing()),
            key: str_of(&term["topologyKey"]),
            weight,
        }
    }

    fn matches(&self, ns: &str, labels: Option<&Map<String, Value>>) -> bool {
        (self.all_namespaces || self.namespaces.contains(&ns)) && self.selector.matches(labels)
    }
}

/// Counts per (topology key, value) computed once per scheduling attempt.
struct InterPodState<'x> {
    affinity: HashMap<(&'x str, &'x str), i64>,
    anti: HashMap<(&'x str, &'x str), i64>,
    existing_anti: HashMap<(&'x str, &'x str), i64>,
}

impl<'x> InterPodState<'x> {
    fn new(p: &Incoming<'x>, nodes: &'x [NodeInfo<'x>]) -> InterPodState<'x> {
        let mut s = InterPodState { affinity: HashMap::new(), anti: HashMap::new(), existing_anti: HashMap::new() };
        let own = &p.affinity;
        for n in nodes {
            if !own.req_aff.is_empty() || !own.req_anti.is_empty() {
                for e in &n.pods {
                    let (ens, elabels) = (namespace_of(e), e["metadata"]["labels"].as_object());
                    if !own.req_aff.is_empty() && own.req_aff.iter().all(|t| t.matches(ens, elabels)) {
                        for t in &own.req_aff {
                            if let Some(v) = n.topology(t.key) {
                                *s.affinity.entry((t.key, v)).or_insert(0) += 1;
                            }
                        }
                    }
                    for t in &own.req_anti {
                        if t.matches(ens, elabels)
                            && let Some(v) = n.topology(t.key)
                        {
                            *s.anti.entry((t.key, v)).or_insert(0) += 1;
                        }
                    }
                }
            }
            for e in &n.affinity_pods {
                for t in &e.req_anti {
                    if t.matches(p.ns, p.labels)
                        && let Some(v) = n.topology(t.key)
                    {
                        *s.existing_anti.entry((t.key, v)).or_insert(0) += 1;
                    }
                }
            }
        }
        s
    }

    fn filter<'r>(&self, p: &Incoming<'_>, n: &NodeInfo<'_>) -> Result<(), Rejection<'r>> {
        let own = &p.affinity;
        if !own.req_aff.is_empty() {
            let mut pods_exist = true;
            for t in &own.req_aff {
                let Some(v) = n.topology(t.key) else {
                    return Err(Rejection::one(ERR_AFFINITY, true));
                };
                if self.affinity.get(&(t.key, v)).copied().unwrap_or(0) <= 0 {
                    pods_exist = false;
                }
            }
            // The first pod of a group that has affinity to itself may go anywhere.
            let first_of_group = self.affinity.is_empty() && own.req_aff.iter().all(|t| t.matches(p.ns, p.labels));
            if !pods_exist && !first_of_group {
                return Err(Rejection::one(ERR_AFFINITY, true));
            }
        }
        for t in &own.req_anti {
            if let Some(v) = n.topology(t.key)
                && self.anti.get(&(t.key, v)).copied().unwrap_or(0) > 0
            {
                return Err(Rejection::one(ERR_ANTI_AFFINITY, false));
            }
        }
        for ((key, value), count) in &self.existing_anti {
            if *count > 0 && n.topology(key) == Some(*value) {
                return Err(Rejection::one(ERR_EXISTING_ANTI, false));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Topology spread
// ---------------------------------------------------------------------------

struct Spread<'x> {
    max_skew: i64,
    key: &'x str,
    selector: LabelSelector,
    min_domains: Option<i64>,
    honor_affinity: bool,
    honor_taints: bool,
    self_match: bool,
}

impl<'x> Spread<'x> {
    fn parse(c: &'x Value, pod_labels: Option<&Map<String, Value>>) -> Spread<'x> {
        // matchLabelKeys become `key in (pod's value)` requirements.
        let mut sel_json = c["labelSelector"].clone();
        if let (Some(keys), Value::Object(sel)) = (c["matchLabelKeys"].as_array(), &mut sel_json) {
            let extra: Vec<Value> = keys
                .iter()
                .filter_map(|k| {
                    let v = pod_labels?.get(k.as_str()?)?.as_str()?;
                    Some(json!({"key": k, "operator": "In", "values": [v]}))
                })
                .collect();
            if !extra.is_empty() {
                let exprs = sel.entry("matchExpressions").or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(a) = exprs {
                    a.extend(extra);
                }
            }
        }
        let selector = LabelSelector::from_label_selector_json(&sel_json).unwrap_or_else(|_| LabelSelector::nothing());
        Spread {
            max_skew: c["maxSkew"].as_i64().unwrap_or(1),
            key: str_of(&c["topologyKey"]),
            self_match: selector.matches(pod_labels),
            selector,
            min_domains: c["minDomains"].as_i64(),
            honor_affinity: str_of(&c["nodeAffinityPolicy"]) != "Ignore",
            honor_taints: str_of(&c["nodeTaintsPolicy"]) == "Honor",
        }
    }

    /// Whether the node's pods count toward this constraint (node inclusion policies).
    fn includes_node(&self, p: &Incoming<'_>, n: &NodeInfo<'_>) -> bool {
        (!self.honor_affinity || p.matches_node_affinity(n)) && (!self.honor_taints || p.untolerated_taint(n).is_none())
    }

    /// Pods on the node in the pod's namespace, not terminating, matching the selector.
    fn count_on(&self, p: &Incoming<'_>, n: &NodeInfo<'_>) -> i64 {
        n.pods
            .iter()
            .filter(|e| {
                e["metadata"]["deletionTimestamp"].is_null()
                    && namespace_of(e) == p.ns
                    && self.selector.matches(e["metadata"]["labels"].as_object())
            })
            .count() as i64
    }
}

/// DoNotSchedule constraints: matching pods per domain and the global minimum.
struct HardSpread<'x> {
    counts: Vec<HashMap<&'x str, i64>>,
    mins: Vec<i64>,
}

impl<'x> HardSpread<'x> {
    fn new(p: &Incoming<'x>, nodes: &'x [NodeInfo<'x>]) -> HardSpread<'x> {
        let cs = &p.hard_spread;
        let mut counts: Vec<HashMap<&'x str, i64>> = vec![HashMap::new(); cs.len()];
        if !cs.is_empty() {
            for n in nodes {
                if !cs.iter().all(|c| n.topology(c.key).is_some()) {
                    continue;
                }
                for (i, c) in cs.iter().enumerate() {
                    if let Some(v) = n.topology(c.key)
                        && c.includes_node(p, n)
                    {
                        *counts[i].entry(v).or_insert(0) += c.count_on(p, n);
                    }
                }
            }
        }
        let mins = cs
            .iter()
            .zip(&counts)
            .map(|(c, m)| {
                if c.min_domains.is_some_and(|md| (m.len() as i64) < md) {
                    0
                } else {
                    m.values().copied().min().unwrap_or(i64::from(i32::MAX))
                }
            })
            .collect();
        HardSpread { counts, mins }
    }

    fn filter<'r>(&self, p: &Incoming<'_>, n: &NodeInfo<'_>) -> Result<(), Rejection<'r>> {
        for (i, c) in p.hard_spread.iter().enumerate() {
            let Some(v) = n.topology(c.key) else {
                return Err(Rejection::one(ERR_SPREAD_LABEL, true));
            };
            let matching = self.counts[i].get(v).copied().unwrap_or(0);
            let skew = matching + i64::from(c.self_match) - self.mins[i];
            if skew > c.max_skew {
                return Err(Rejection::one(ERR_SPREAD, false));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Resources, taints, ports
// ---------------------------------------------------------------------------

/// Requested or allocatable amounts: millicores, bytes, and extended/hugepages resources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Resources {
    milli_cpu: u64,
    memory: u64,
    ephemeral: u64,
    scalar: Vec<(String, u64)>,
}

impl Resources {
    /// From a ResourceList object; unparseable quantities count as zero.
    fn from_list(list: &Value) -> Resources {
        let mut r = Resources::default();
        if let Some(m) = list.as_object() {
            for (name, q) in m {
                r.set(name, q);
            }
        }
        r
    }

    fn set(&mut self, name: &str, q: &Value) {
        let text = match q {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return,
        };
        match name {
            "cpu" => self.milli_cpu = quantity::millicores(&text).unwrap_or(0),
            "memory" => self.memory = quantity::bytes(&text).unwrap_or(0),
            "ephemeral-storage" => self.ephemeral = quantity::bytes(&text).unwrap_or(0),
            _ if is_scalar_resource(name) => {
                let v = quantity::parse(&text).map(|v| v.max(0.0).ceil() as u64).unwrap_or(0);
                match self.scalar.iter_mut().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v,
                    None => self.scalar.push((name.to_string(), v)),
                }
            }
            _ => {}
        }
    }

    fn scalar(&self, name: &str) -> u64 {
        self.scalar.iter().find(|(n, _)| n == name).map(|(_, v)| *v).unwrap_or(0)
    }

    fn add(&mut self, o: &Resources) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral += o.ephemeral;
        for (n, v) in &o.scalar {
            match self.scalar.iter_mut().find(|(m, _)| m == n) {
                Some(slot) => slot.1 += v,
                None => self.scalar.push((n.clone(), *v)),
            }
        }
    }

    fn max_with(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral = self.ephemeral.max(o.ephemeral);
        for (n, v) in &o.scalar {
            match self.scalar.iter_mut().find(|(m, _)| m == n) {
                Some(slot) => slot.1 = slot.1.max(*v),
                None => self.scalar.push((n.clone(), *v)),
            }
        }
    }
}

/// Extended resources (`example.com/foo`, not `kubernetes.io/`), hugepages, attachable volumes.
fn is_scalar_resource(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/') && !name.starts_with("kubernetes.io/") && !name.contains(".kubernetes.io/"))
}

/// A container's requests (limits stand in for missing requests); with `non_zero`, a missing
/// cpu or memory request counts as the scheduler's default.
fn container_requests(c: &Value, non_zero: bool) -> Resources {
    let res = &c["resources"];
    let mut r = Resources::from_list(&res["limits"]);
    if let Some(m) = res["requests"].as_object() {
        for (name, q) in m {
            r.set(name, q);
        }
    }
    if non_zero {
        let has = |k: &str| res["requests"].get(k).is_some() || res["limits"].get(k).is_some();
        if !has("cpu") {
            r.milli_cpu = DEFAULT_MILLI_CPU;
        }
        if !has("memory") {
            r.memory = DEFAULT_MEMORY;
        }
    }
    r
}

/// The pod's effective request: regular containers and sidecars run together, init
/// containers one at a time (alongside the sidecars started before them), plus overhead.
fn pod_requests(spec: &Value, non_zero: bool) -> Resources {
    let mut sum = Resources::default();
    for c in spec["containers"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        sum.add(&container_requests(c, non_zero));
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in spec["initContainers"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let r = container_requests(c, non_zero);
        if str_of(&c["restartPolicy"]) == "Always" {
            sidecars.add(&r);
            init_max.max_with(&sidecars);
        } else {
            let mut during = r;
            during.add(&sidecars);
            init_max.max_with(&during);
        }
    }
    sum.add(&sidecars);
    sum.max_with(&init_max);
    sum.add(&Resources::from_list(&spec["overhead"]));
    sum
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Taint<'a> {
    key: &'a str,
    value: &'a str,
    effect: &'a str,
}

impl<'a> Taint<'a> {
    fn from_json(t: &'a Value) -> Taint<'a> {
        Taint { key: str_of(&t["key"]), value: str_of(&t["value"]), effect: str_of(&t["effect"]) }
    }
}

#[derive(Debug, Clone)]
struct Toleration<'a> {
    key: &'a str,
    operator: &'a str,
    value: &'a str,
    effect: &'a str,
}

impl<'a> Toleration<'a> {
    fn from_json(t: &'a Value) -> Toleration<'a> {
        Toleration {
            key: str_of(&t["key"]),
            operator: str_of(&t["operator"]),
            value: str_of(&t["value"]),
            effect: str_of(&t["effect"]),
        }
    }

    /// An empty effect matches all effects; an empty key with Exists matches all keys.
    fn tolerates(&self, t: &Taint<'_>) -> bool {
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
struct HostPort<'a> {
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

fn host_ports(spec: &Value) -> Vec<HostPort<'_>> {
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

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn namespace_of(pod: &Value) -> &str {
    match str_of(&pod["metadata"]["namespace"]) {
        "" => "default",
        ns => ns,
    }
}

fn quantity_value(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => quantity::parse(s).ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cpu: &str, memory: &str, pods: u32) -> Value {
        json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {
                "allocatable": {"cpu": cpu, "memory": memory, "pods": pods.to_string(), "ephemeral-storage": "10Gi"},
                "conditions": [{"type": "Ready", "status": "True"}]
            }
        })
    }

    fn pod(name: &str, cpu: &str, memory: &str) -> Value {
        let mut requests = Map::new();
        if !cpu.is_empty() {
            requests.insert("cpu".into(), json!(cpu));
        }
        if !memory.is_empty() {
            requests.insert("memory".into(), json!(memory));
        }
        json!({
            "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": "i", "resources": {"requests": requests}}]}
        })
    }

    fn bound(mut p: Value, node: &str) -> Value {
        p["spec"]["nodeName"] = json!(node);
        p["status"] = json!({"phase": "Running"});
        p
    }

    fn with(mut v: Value, path: &[&str], value: Value) -> Value {
        let mut cur = &mut v;
        for k in path {
            cur = match k.parse::<usize>() {
                Ok(i) => &mut cur[i],
                Err(_) => &mut cur[*k],
            };
        }
        *cur = value;
        v
    }

    fn run(nodes: &[Value], pods: &[Value], p: &Value) -> Result<String, String> {
        let nodes: Vec<&Value> = nodes.iter().collect();
        let pods: Vec<&Value> = pods.iter().collect();
        schedule(p, &snapshot(&nodes, &pods)).map_err(|e| e.message)
    }

    fn msg(total: usize, filter: &str, preemption: &str) -> String {
        format!("0/{total} nodes are available: {filter}. preemption: 0/{total} nodes are available: {preemption}.")
    }

    #[test]
    fn feasible_nodes_to_find_follows_the_adaptive_percentage() {
        // (nodes in the cluster, nodes to find): every node under 100, 50% - 1% per 125
        // nodes, at least 5%, never fewer than 100.
        for (all, want) in [(0, 0), (3, 3), (99, 99), (100, 100), (199, 100), (250, 120), (1_000, 420), (5_000, 500), (6_000, 300), (20_000, 1_000)] {
            assert_eq!(feasible_nodes_to_find(all), want, "{all} nodes");
        }
    }

    #[test]
    fn large_clusters_filter_from_a_rotating_start_and_stop_early() {
        // 200 nodes: 100 feasible nodes are enough. Every node but n060 already runs a pod,
        // so n060 scores best whenever the search reaches it.
        let names: Vec<String> = (0..200).map(|i| format!("n{i:03}")).collect();
        let nodes: Vec<Value> = names.iter().map(|n| node(n, "4", "8Gi", 110)).collect();
        let pods: Vec<Value> = names.iter().filter(|n| *n != "n060").map(|n| bound(pod(&format!("on-{n}"), "1", "1Gi"), n)).collect();
        let (nodes, pods): (Vec<&Value>, Vec<&Value>) = (nodes.iter().collect(), pods.iter().collect());
        let infos = snapshot(&nodes, &pods);
        let p = pod("new", "100m", "100Mi");
        let from0 = schedule_from(&p, &infos, 0);
        assert_eq!((from0.result, from0.processed), (Ok("n060".to_string()), 100));
        // From 150 the search covers n150..n199 and n000..n049: n060 is never looked at.
        let from150 = schedule_from(&p, &infos, 150);
        assert_eq!(from150.processed, 100);
        let chosen = from150.result.expect("feasible");
        let idx: usize = chosen[1..].parse().expect("index");
        assert!(!(50..150).contains(&idx), "{chosen} is outside the searched window");
        // A pod that fits nowhere is checked against every node, and the message counts all.
        let huge = pod("huge", "64", "");
        let a = schedule_from(&huge, &infos, 150);
        assert_eq!(a.processed, 200);
        assert_eq!(a.result.map_err(|e| e.message), Err(msg(200, "200 Insufficient cpu", "200 No preemption victims found for incoming pod")));
    }

    #[test]
    fn quantity_forms() {
        // (pod cpu, pod memory, node cpu, node memory, fits)
        let cases = [
            ("100m", "", "0.1", "1Gi", true),
            ("101m", "", "0.1", "1Gi", false),
            ("0.5", "", "500m", "1Gi", true),
            ("0.5", "", "499m", "1Gi", false),
            ("", "1G", "1", "1Gi", true),  // 10^9 <= 2^30
            ("", "1Gi", "1", "1G", false), // 2^30 > 10^9
            ("", "1e3", "1", "1k", true),
            ("", "1001", "1", "1k", false),
            ("", "512Mi", "1", "0.5Gi", true),
            ("2", "128974848", "2000m", "123Mi", true), // 128974848 = 123Mi exactly
        ];
        for (cpu, mem, ncpu, nmem, fits) in cases {
            let got = run(&[node("n1", ncpu, nmem, 110)], &[], &pod("p", cpu, mem));
            assert_eq!(got.is_ok(), fits, "{cpu}/{mem} on {ncpu}/{nmem}: {got:?}");
        }
    }

    #[test]
    fn pod_request_is_max_of_containers_and_init_containers() {
        let c = |cpu: &str| json!({"name": "c", "resources": {"requests": {"cpu": cpu}}});
        // (containers, init containers, overhead, expected millicores)
        let cases = [
            (vec![c("1"), c("500m")], vec![], None, 1500),
            (vec![c("1")], vec![c("2"), c("300m")], None, 2000),
            (vec![c("1"), c("1")], vec![c("1500m")], None, 2000),
            (vec![c("1")], vec![], Some(json!({"cpu": "250m"})), 1250),
            // a sidecar (restartPolicy Always) runs alongside everything after it
            (vec![c("1")], vec![with(c("500m"), &["restartPolicy"], json!("Always")), c("2")], None, 2500),
        ];
        for (containers, inits, overhead, want) in cases {
            let mut spec = json!({"containers": containers, "initContainers": inits});
            if let Some(o) = overhead {
                spec["overhead"] = o;
            }
            assert_eq!(pod_requests(&spec, false).milli_cpu, want, "{spec}");
        }
        // limits stand in for missing requests; non-zero defaults only when neither is set
        let spec = json!({"containers": [{"name": "c", "resources": {"limits": {"memory": "1Gi"}}}]});
        assert_eq!(pod_requests(&spec, false), Resources { memory: 1 << 30, ..Default::default() });
        let nz = pod_requests(&spec, true);
        assert_eq!((nz.milli_cpu, nz.memory), (DEFAULT_MILLI_CPU, 1 << 30));
    }

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

    /// Schedule pods one after another, binding each, and count pods per node.
    fn place_all(nodes: &[Value], existing: &[Value], incoming: &[Value]) -> BTreeMap<String, usize> {
        let nrefs: Vec<&Value> = nodes.iter().collect();
        let prefs: Vec<&Value> = existing.iter().collect();
        let mut snap = snapshot(&nrefs, &prefs);
        let mut placed = BTreeMap::new();
        for p in incoming {
            let name = schedule(p, &snap).unwrap_or_else(|e| panic!("{}", e.message));
            *placed.entry(name.clone()).or_insert(0) += 1;
            if let Some(n) = snap.iter_mut().find(|n| n.name == name) {
                n.add_pod(p);
            }
        }
        placed
    }

    #[test]
    fn least_allocated_spreads_over_equal_nodes() {
        let nodes = [node("n1", "4", "8Gi", 110), node("n2", "4", "8Gi", 110), node("n3", "4", "8Gi", 110)];
        // Pods without requests spread too (scoring counts the non-zero defaults).
        for (cpu, mem) in [("500m", "512Mi"), ("", "")] {
            let pods: Vec<Value> = (0..9).map(|i| pod(&format!("p{i}"), cpu, mem)).collect();
            let placed = place_all(&nodes, &[], &pods);
            assert_eq!(placed.values().copied().collect::<Vec<_>>(), vec![3, 3, 3], "{cpu}/{mem}");
        }
        // The emptier node wins; equal nodes tie-break to the smallest name.
        let existing = [bound(pod("a", "2", "1Gi"), "n1")];
        assert_eq!(run(&nodes, &existing, &pod("p", "100m", "100Mi")), Ok("n2".to_string()));
        assert_eq!(run(&nodes[..2], &[], &pod("p", "100m", "100Mi")), Ok("n1".to_string()));
        // A bigger node is emptier in proportion.
        let nodes = [node("n1", "2", "4Gi", 110), node("n2", "8", "16Gi", 110)];
        assert_eq!(run(&nodes, &[], &pod("p", "100m", "100Mi")), Ok("n2".to_string()));
    }

    #[test]
    fn scores_preferences() {
        let nodes = [node("n1", "4", "8Gi", 110), with(node("n2", "4", "8Gi", 110), &["metadata", "labels", "disk"], json!("ssd"))];
        let prefer_ssd = with(
            pod("p", "100m", "100Mi"),
            &["spec", "affinity"],
            json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}
            ]}}),
        );
        assert_eq!(run(&nodes, &[], &prefer_ssd), Ok("n2".to_string()));
        // Preferred affinity outweighs a somewhat fuller node.
        let existing = [bound(pod("a", "1", "1Gi"), "n2")];
        assert_eq!(run(&nodes, &existing, &prefer_ssd), Ok("n2".to_string()));

        // PreferNoSchedule steers away unless tolerated.
        let nodes = [
            with(node("n1", "4", "8Gi", 110), &["spec", "taints"], json!([{"key": "spot", "value": "true", "effect": "PreferNoSchedule"}])),
            node("n2", "4", "8Gi", 110),
        ];
        assert_eq!(run(&nodes, &[], &pod("p", "", "")), Ok("n2".to_string()));
        let tolerant = with(pod("p", "", ""), &["spec", "tolerations"], json!([{"key": "spot", "operator": "Exists"}]));
        assert_eq!(run(&nodes, &[], &tolerant), Ok("n1".to_string()));
    }

    fn pod_affinity(kind: &str, required: bool, labels: Value) -> Value {
        let term = json!({"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"});
        let rules = if required {
            json!({"requiredDuringSchedulingIgnoredDuringExecution": [term]})
        } else {
            json!({"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}]})
        };
        with(pod("p", "100m", "100Mi"), &["spec", "affinity", kind], rules)
    }

    #[test]
    fn a_pass_matches_pod_by_pod_scheduling() {
        let nodes = [node("n1", "1", "8Gi", 110), node("n2", "1", "8Gi", 110)];
        let big = |name: &str| with(pod(name, "900m", "100Mi"), &["metadata", "labels"], json!({"app": "big"}));
        // Followers need a pod labelled app=lead on their node: none exists until the lead is bound.
        let follower = |name: &str| with(pod_affinity("podAffinity", true, json!({"app": "lead"})), &["metadata", "name"], json!(name));
        let lead = with(pod("lead", "", ""), &["metadata", "labels"], json!({"app": "lead"}));
        let pending = [big("b1"), follower("f1"), big("b2"), big("b3"), lead, follower("f2"), big("b4")];
        let refs: Vec<&Value> = pending.iter().collect();
        let node_refs: Vec<&Value> = nodes.iter().collect();

        let mut infos = snapshot(&node_refs, &[]);
        let mut start = 0;
        let pass = schedule_all(&refs, &mut infos, &mut start);

        // The same pods one at a time, each against a fresh snapshot holding the earlier ones.
        let mut placed: Vec<Value> = Vec::new();
        let mut expected = Vec::new();
        for p in &pending {
            let placed_refs: Vec<&Value> = placed.iter().collect();
            let r = schedule(p, &snapshot(&node_refs, &placed_refs));
            if let Ok(n) = &r {
                placed.push(bound(p.clone(), n));
            }
            expected.push(r);
        }
        assert_eq!(pass, expected);
        let names: Vec<Result<&str, bool>> = pass.iter().map(|r| r.as_deref().map_err(|_| false)).collect();
        // b1, b2 take both nodes; b3 and b4 fit nowhere; f1 waits for the lead, f2 follows it.
        assert_eq!(names, vec![Ok("n1"), Err(false), Ok("n2"), Err(false), Ok("n1"), Ok("n1"), Err(false)]);
        assert_eq!(infos[0].pods.len(), 3);
    }

    #[test]
    fn pod_affinity_on_hostname() {
        let nodes = [node("n1", "4", "8Gi", 110), node("n2", "4", "8Gi", 110), node("n3", "4", "8Gi", 110)];
        let db = with(bound(pod("db", "1", "1Gi"), "n2"), &["metadata", "labels"], json!({"app": "db"}));
        let other_ns = with(db.clone(), &["metadata", "namespace"], json!("prod"));
        let db_n1 = with(bound(pod("db", "1", "1Gi"), "n1"), &["metadata", "labels"], json!({"app": "db"}));
        let load = |n: &str| bound(pod(&format!("load-{n}"), "2", "2Gi"), n);
        // (case, existing pods, pod, result)
        type Case = (&'static str, Vec<Value>, Value, Result<&'static str, String>);
        let cases: Vec<Case> = vec![
            ("affinity follows the db", vec![db.clone()], pod_affinity("podAffinity", true, json!({"app": "db"})), Ok("n2")),
            (
                "affinity only in the pod's namespace",
                vec![other_ns.clone()],
                pod_affinity("podAffinity", true, json!({"app": "db"})),
                Err(msg(3, "3 node(s) didn't match pod affinity rules", "3 Preemption is not helpful for scheduling")),
            ),
            (
                "first pod of a self-affine group goes anywhere",
                vec![],
                with(pod_affinity("podAffinity", true, json!({"app": "web"})), &["metadata", "labels"], json!({"app": "web"})),
                Ok("n1"),
            ),
            // Without the rule, n1 (least loaded) would win.
            ("no rule", vec![db_n1.clone(), load("n2"), load("n3")], pod("p", "100m", "100Mi"), Ok("n1")),
            ("anti-affinity avoids the db", vec![db_n1.clone(), load("n2"), load("n3")], pod_affinity("podAntiAffinity", true, json!({"app": "db"})), Ok("n2")),
            (
                "anti-affinity everywhere",
                vec![
                    with(bound(pod("a", "", ""), "n1"), &["metadata", "labels"], json!({"app": "db"})),
                    db.clone(),
                    with(bound(pod("c", "", ""), "n3"), &["metadata", "labels"], json!({"app": "db"})),
                ],
                pod_affinity("podAntiAffinity", true, json!({"app": "db"})),
                Err(msg(3, "3 node(s) didn't match pod anti-affinity rules", "3 No preemption victims found for incoming pod")),
            ),
            (
                "existing pods' anti-affinity is symmetric",
                vec![with(bound(pod_affinity("podAntiAffinity", true, json!({"app": "p"})), "n1"), &["metadata", "labels"], json!({"app": "x"})), load("n2"), load("n3")],
                pod("p", "100m", "100Mi"),
                Ok("n2"),
            ),
            ("preferred affinity", vec![db.clone()], pod_affinity("podAffinity", false, json!({"app": "db"})), Ok("n2")),
            ("preferred anti-affinity", vec![db_n1.clone(), load("n2"), load("n3")], pod_affinity("podAntiAffinity", false, json!({"app": "db"})), Ok("n2")),
        ];
        for (name, existing, p, want) in cases {
            assert_eq!(run(&nodes, &existing, &p), want.map(str::to_string), "case {name}");
        }
        // Replicas with anti-affinity to each other land one per node, then fail.
        let replica = |i: usize| with(pod_affinity("podAntiAffinity", true, json!({"app": "web"})), &["metadata"], json!({"name": format!("w{i}"), "namespace": "default", "labels": {"app": "web"}}));
        let placed = place_all(&nodes, &[], &(0..3).map(replica).collect::<Vec<_>>());
        assert_eq!(placed.len(), 3);
        let bound_replicas: Vec<Value> = ["n1", "n2", "n3"].iter().enumerate().map(|(i, n)| bound(replica(i), n)).collect();
        assert_eq!(
            run(&nodes, &bound_replicas, &replica(9)),
            Err(msg(3, "3 node(s) didn't match pod anti-affinity rules", "3 No preemption victims found for incoming pod"))
        );
    }

    #[test]
    fn topology_spread_on_hostname() {
        let nodes = [node("n1", "4", "8Gi", 110), node("n2", "4", "8Gi", 110)];
        let spread = |when: &str, skew: i64| {
            with(
                with(pod("p", "", ""), &["metadata", "labels"], json!({"app": "web"})),
                &["spec", "topologySpreadConstraints"],
                json!([{"maxSkew": skew, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": when,
                        "labelSelector": {"matchLabels": {"app": "web"}}}]),
            )
        };
        let web = |name: &str, n: &str| with(bound(pod(name, "", ""), n), &["metadata", "labels"], json!({"app": "web"}));
        // n1 has 2 web pods, n2 none; n2 is much fuller in resources.
        let existing = [web("a", "n1"), web("b", "n1"), bound(pod("big", "3500m", "7Gi"), "n2")];
        assert_eq!(run(&nodes, &existing, &spread("DoNotSchedule", 1)), Ok("n2".to_string()));
        // Only n1 can take it when n2 is excluded by a selector: skew 3 - 0 > 1.
        let only_n1 = with(spread("DoNotSchedule", 1), &["spec", "nodeSelector"], json!({"kubernetes.io/hostname": "n1"}));
        // n2 is not eligible, so the minimum is over n1 alone: skew 2 + 1 - 2 = 1.
        assert_eq!(run(&nodes, &existing, &only_n1), Ok("n1".to_string()));
        // Without the selector, n2 is full: n1 would make skew 3.
        let full = [web("a", "n1"), web("b", "n1"), bound(pod("big", "4", "8Gi"), "n2")];
        let p = with(spread("DoNotSchedule", 1), &["spec", "containers", "0", "resources", "requests"], json!({"cpu": "100m"}));
        assert_eq!(
            run(&nodes, &full, &p),
            Err(msg(
                2,
                "1 Insufficient cpu, 1 node(s) didn't match pod topology spread constraints",
                "2 No preemption victims found for incoming pod"
            ))
        );
        // A missing topology label.
        let zonal = with(spread("DoNotSchedule", 1), &["spec", "topologySpreadConstraints", "0", "topologyKey"], json!("zone"));
        assert_eq!(
            run(&nodes, &[], &zonal),
            Err(msg(
                2,
                "2 node(s) didn't match pod topology spread constraints (missing required label)",
                "2 Preemption is not helpful for scheduling"
            ))
        );
        // ScheduleAnyway prefers the node with fewer matching pods even when it is fuller.
        let existing = [web("a", "n1"), web("b", "n1"), bound(pod("big", "2", "4Gi"), "n2")];
        assert_eq!(run(&nodes, &existing, &spread("ScheduleAnyway", 1)), Ok("n2".to_string()));
        // Sequential DoNotSchedule placement stays balanced.
        let pods: Vec<Value> = (0..6).map(|_| spread("DoNotSchedule", 1)).collect();
        let placed = place_all(&[node("n1", "4", "8Gi", 110), node("n2", "2", "4Gi", 110)], &[], &pods);
        assert_eq!(placed.values().copied().collect::<Vec<_>>(), vec![3, 3]);
    }

    #[test]
    fn snapshot_groups_bound_live_pods() {
        let nodes = [node("n1", "4", "8Gi", 110), node("n2", "4", "8Gi", 110)];
        let pods = [
            bound(pod("a", "1", ""), "n1"),
            bound(pod("b", "1", ""), "n2"),
            with(bound(pod("c", "1", ""), "n2"), &["status", "phase"], json!("Failed")),
            pod("pending", "1", ""),
            bound(pod("gone", "1", ""), "n9"),
        ];
        let nrefs: Vec<&Value> = nodes.iter().collect();
        let prefs: Vec<&Value> = pods.iter().collect();
        let snap = snapshot(&nrefs, &prefs);
        let names: Vec<(&str, Vec<&str>)> = snap
            .iter()
            .map(|n| (n.name, n.pods.iter().map(|p| str_of(&p["metadata"]["name"])).collect()))
            .collect();
        assert_eq!(names, vec![("n1", vec!["a"]), ("n2", vec!["b"])]);
        assert_eq!(snap[1].requested.milli_cpu, 1000);
    }
}
