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
//! - Preemption: [`preemption`] (lower-priority victims, see there for what is modelled).
//! - Not modelled: volumes, image
//!   locality, system-default topology spreading, `namespaceSelector` other than `{}`
//!   (pod affinity terms; no namespace labels here), pod-level `spec.resources`.
//!
//! Where each part lives: [`filters`] (the filter plugins, taints, ports and the FitError
//! message), [`scores`] (the score plugins and their weights), [`affinity`] (inter-pod
//! affinity), [`spread`] (topology spread), [`resources`] (requests and allocatable), and
//! [`executor`], the loop that binds pending pods through the API.

mod affinity;
mod executor;
mod filters;
mod preemption;
mod resources;
mod scores;
mod spread;
#[cfg(test)]
mod testing;

use std::collections::HashMap;

use serde_json::{Map, Value};

use affinity::{InterPodState, PodAffinity};
pub(crate) use executor::run;
use filters::{HostPort, Rejection, Taint, Toleration, filter, fit_error, host_ports, node_selector_term_matches};
pub(crate) use filters::node_fit;
use resources::{Resources, pod_requests, quantity_value};
use scores::score;
use spread::{HardSpread, Spread};

const HOSTNAME: &str = "kubernetes.io/hostname";

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

// ---- the pod being scheduled ----

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

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn namespace_of(pod: &Value) -> &str {
    match str_of(&pod["metadata"]["namespace"]) {
        "" => "default",
        ns => ns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use super::testing::*;
    use serde_json::json;

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
