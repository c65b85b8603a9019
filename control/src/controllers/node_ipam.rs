//! Node IPAM: gives every Node a pod range of `--cluster-cidr` in spec.podCIDR(s), as
//! kube-controller-manager does with `--allocate-node-cidrs` and its range allocator
//! (`pkg/controller/nodeipam/ipam/range_allocator.go`, `cidrset`). Node agents hand out
//! their pods' addresses from that range (node/src/network.rs).
//!
//! Invariants:
//! - The cluster CIDR is cut into /`node_cidr_mask_size` ranges (`--node-cidr-mask-size`). A Node without a
//!   podCIDR (and not being deleted) gets a free one, written to spec.podCIDR and
//!   spec.podCIDRs together; two Nodes never get overlapping ranges from this controller.
//! - Occupancy is recomputed from the stored Nodes on every pass: nothing but the Nodes is
//!   persisted, so a restart rebuilds it, and a deleted Node's range is free once the Node
//!   is gone. Any podCIDR overlapping the cluster CIDR, whatever its size or however it got
//!   there, occupies every range it touches.
//! - The search for a free range starts after the last one handed out and wraps (cidrset's
//!   nextCandidate), so a freed range is reused only after the others; Nodes waiting in
//!   one pass are served oldest first.
//! - A podCIDR is never changed once set (validation refuses it: `spec.podCIDRs:
//!   Forbidden: node updates may not change podCIDR except from "" to valid`). A Node whose
//!   podCIDRs hold no IPv4 range inside the cluster CIDR is left alone, logged once.
//! - Cluster CIDR full: the Node gets nothing and the event Kubernetes records
//!   (Normal, CIDRNotAvailable, "Node NAME status is now: CIDRNotAvailable", from
//!   cidrAllocator), repeated at most every [`NOT_AVAILABLE_EVENT_INTERVAL`]; it is retried
//!   every pass and gets a range as soon as one is freed.
//! - `plan` is pure; the executor writes a range only if, at write time, the Node (same
//!   uid) still has none and no other Node holds an overlapping one.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use flotilla_api::cidr::Ipv4Cidr;
use serde_json::{Value, json};

use super::objects::{deleting, info, name, parse_time, uid};
use crate::apiserver::{Api, Shutdown};
#[cfg(test)]
use crate::network::NODE_CIDR_MASK_SIZE;

/// The event source Kubernetes' range allocator records with.
const COMPONENT: &str = "cidrAllocator";
/// Pause between looks at the store revision (a Node waits at most about this long).
const PASS_INTERVAL: Duration = Duration::from_millis(200);
/// A pass runs at least this often even when nothing changed.
const RESYNC: Duration = Duration::from_secs(5);
/// How often a Node the cluster CIDR has no room for gets CIDRNotAvailable again.
pub(crate) const NOT_AVAILABLE_EVENT_INTERVAL: Duration = Duration::from_secs(60);

/// The node ranges of a cluster CIDR: range `i` is the `i`-th /`mask` block of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NodeRanges {
    cluster: Ipv4Cidr,
    mask: u8,
}

impl NodeRanges {
    /// None when the cluster CIDR is smaller than one range (or `mask` > 32).
    pub(crate) fn new(cluster: Ipv4Cidr, mask: u8) -> Option<NodeRanges> {
        (cluster.prefix() <= mask && mask <= 32).then_some(NodeRanges { cluster, mask })
    }

    fn count(&self) -> u64 {
        1u64 << (self.mask - self.cluster.prefix())
    }

    fn range(&self, i: u64) -> Ipv4Cidr {
        let start = u64::from(u32::from(self.cluster.network())) + (i << (32 - self.mask));
        Ipv4Cidr::new(Ipv4Addr::from(start as u32), self.mask)
    }

    /// The first and last index of the ranges `c` overlaps; None when `c` lies outside
    /// the cluster CIDR.
    fn overlapped(&self, c: &Ipv4Cidr) -> Option<(u64, u64)> {
        if !self.cluster.overlaps(c) {
            return None;
        }
        let base = u32::from(self.cluster.network());
        let lo = u32::from(c.network()).max(base) - base;
        let hi = u32::from(c.broadcast()).min(u32::from(self.cluster.broadcast())) - base;
        let shift = 32 - u32::from(self.mask);
        Some((u64::from(lo) >> shift, u64::from(hi) >> shift))
    }
}

/// Taken range indices as sorted, disjoint, non-adjacent closed intervals (a podCIDR
/// covering the whole cluster CIDR is one entry, not 2^n).
#[derive(Default, Debug)]
struct Occupied(Vec<(u64, u64)>);

impl Occupied {
    fn insert(&mut self, lo: u64, hi: u64) {
        self.0.push((lo, hi));
        self.0.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.0.len());
        for &(l, h) in &self.0 {
            match merged.last_mut() {
                Some(last) if l <= last.1.saturating_add(1) => last.1 = last.1.max(h),
                _ => merged.push((l, h)),
            }
        }
        self.0 = merged;
    }

    /// The first free index in `from..end`.
    fn first_free(&self, from: u64, end: u64) -> Option<u64> {
        let mut c = from;
        for &(lo, hi) in &self.0 {
            if hi < c {
                continue;
            }
            if lo > c {
                break;
            }
            c = hi + 1;
        }
        (c < end).then_some(c)
    }

    /// The first free index at or after `start`, wrapping around below `count`.
    fn next_free(&self, start: u64, count: u64) -> Option<u64> {
        self.first_free(start, count).or_else(|| self.first_free(0, start.min(count)))
    }
}

/// The node's pod ranges as written: spec.podCIDRs, else spec.podCIDR (Kubernetes'
/// v1 → internal conversion).
pub(crate) fn pod_cidrs(node: &Value) -> Vec<&str> {
    let list: Vec<&str> = node["spec"]["podCIDRs"].as_array().map(|a| a.iter().filter_map(Value::as_str).filter(|s| !s.is_empty()).collect()).unwrap_or_default();
    if !list.is_empty() {
        return list;
    }
    node["spec"]["podCIDR"].as_str().filter(|s| !s.is_empty()).into_iter().collect()
}

/// The IPv4 ranges among the node's podCIDRs (IPv6 and unparsable entries skipped).
fn ipv4_pod_cidrs(node: &Value) -> impl Iterator<Item = Ipv4Cidr> + '_ {
    pod_cidrs(node).into_iter().filter_map(|c| c.parse::<Ipv4Cidr>().ok())
}

/// What a pass sees.
pub(crate) struct Observed<'a> {
    pub nodes: &'a [&'a Value],
    pub ranges: NodeRanges,
    /// Index to look at first (cidrset's nextCandidate); 0 after a restart.
    pub next: u64,
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Set spec.podCIDR and spec.podCIDRs of the Node (uid), which has none.
    Assign { node: String, uid: String, cidr: Ipv4Cidr },
    /// No free range for the Node: record CIDRNotAvailable.
    NotAvailable { node: String, uid: String },
    /// The Node's podCIDRs hold no IPv4 range inside the cluster CIDR: left alone.
    Foreign { node: String, uid: String, pod_cidrs: Vec<String> },
}

/// The steps of a pass and where the next pass starts looking.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub steps: Vec<Step>,
    pub next: u64,
}

/// Pure: the ranges to hand out.
pub(crate) fn plan(o: &Observed<'_>) -> Plan {
    let mut occupied = Occupied::default();
    let mut steps = Vec::new();
    let mut waiting: Vec<&Value> = Vec::new();
    for &node in o.nodes {
        let written = pod_cidrs(node);
        if written.is_empty() {
            if !deleting(node) {
                waiting.push(node);
            }
            continue;
        }
        let mut inside = false;
        for c in ipv4_pod_cidrs(node) {
            if let Some((lo, hi)) = o.ranges.overlapped(&c) {
                occupied.insert(lo, hi);
                inside = true;
            }
        }
        if !inside {
            let pod_cidrs = written.into_iter().map(str::to_string).collect();
            steps.push(Step::Foreign { node: name(node).to_string(), uid: uid(node).to_string(), pod_cidrs });
        }
    }
    waiting.sort_by(|a, b| parse_time(&a["metadata"]["creationTimestamp"]).cmp(&parse_time(&b["metadata"]["creationTimestamp"])).then_with(|| name(a).cmp(name(b))));
    let count = o.ranges.count();
    let mut next = o.next % count;
    for node in waiting {
        let (node_name, node_uid) = (name(node).to_string(), uid(node).to_string());
        match occupied.next_free(next, count) {
            Some(i) => {
                occupied.insert(i, i);
                next = (i + 1) % count;
                steps.push(Step::Assign { node: node_name, uid: node_uid, cidr: o.ranges.range(i) });
            }
            None => steps.push(Step::NotAvailable { node: node_name, uid: node_uid }),
        }
    }
    Plan { steps, next }
}

// ---- executor ----

/// What the executor keeps between passes: where to look next, and what it already
/// reported (so logs and events do not repeat every pass). Everything else is rebuilt.
#[derive(Default)]
struct Memory {
    next: u64,
    foreign_logged: HashSet<String>,
    not_available_at: HashMap<String, Instant>,
}

/// Hands out node ranges of `cluster_cidr` until shutdown.
pub(crate) async fn run(api: Api, cluster_cidr: Ipv4Cidr, node_mask: u8, shutdown: Shutdown) {
    let Some(ranges) = NodeRanges::new(cluster_cidr, node_mask) else {
        tracing::error!(%cluster_cidr, "cluster CIDR smaller than a node range: no pod CIDRs are allocated");
        return;
    };
    let mut memory = Memory::default();
    let mut last_rev = u64::MAX;
    let mut last_pass = Instant::now();
    loop {
        let rev = api.store.revision();
        if rev != last_rev || last_pass.elapsed() >= RESYNC {
            last_rev = rev;
            last_pass = Instant::now();
            pass(&api, ranges, &mut memory).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(PASS_INTERVAL) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Whether a Node other than `node` holds a range overlapping `cidr` right now.
fn taken_by_other(api: &Api, node: &str, cidr: &Ipv4Cidr) -> bool {
    let (nodes, _, _) = api.store.list("core/nodes/", None, None, &|_| true);
    nodes.iter().any(|n| name(&n.value) != node && ipv4_pod_cidrs(&n.value).any(|c| c.overlaps(cidr)))
}

async fn pass(api: &Api, ranges: NodeRanges, memory: &mut Memory) {
    let (stored, _, _) = api.store.list("core/nodes/", None, None, &|_| true);
    let nodes: Vec<&Value> = stored.iter().map(|s| &s.value).collect();
    let by_uid: HashMap<&str, &Value> = nodes.iter().map(|n| (uid(n), *n)).collect();
    memory.foreign_logged.retain(|u| by_uid.contains_key(u.as_str()));
    memory.not_available_at.retain(|u, _| by_uid.get(u.as_str()).is_some_and(|n| pod_cidrs(n).is_empty()));
    let planned = plan(&Observed { nodes: &nodes, ranges, next: memory.next });
    memory.next = planned.next;
    let node_info = info("", "nodes");
    for step in planned.steps {
        match step {
            Step::Assign { node, uid: node_uid, cidr } => {
                let r = api
                    .modify(node_info, None, &node, &|cur| {
                        let spec_ok = cur["spec"].is_object() || cur["spec"].is_null();
                        if uid(cur) != node_uid || deleting(cur) || !pod_cidrs(cur).is_empty() || !spec_ok || taken_by_other(api, &node, &cidr) {
                            return None;
                        }
                        let mut new = cur.clone();
                        new["spec"]["podCIDR"] = json!(cidr.to_string());
                        new["spec"]["podCIDRs"] = json!([cidr.to_string()]);
                        Some(new)
                    })
                    .await;
                match r {
                    Ok(Some(n)) if pod_cidrs(&n) == [cidr.to_string().as_str()] && uid(&n) == node_uid => {
                        tracing::info!(node.name = %node, pod_cidr = %cidr, "set node podCIDR");
                    }
                    Ok(_) => tracing::debug!(node.name = %node, pod_cidr = %cidr, "node changed under the pod CIDR allocation; re-planned next pass"),
                    Err(e) if e.is_transient() => {}
                    Err(e) => tracing::warn!(error = %e, node.name = %node, "setting the node's podCIDR failed"),
                }
            }
            Step::NotAvailable { node, uid: node_uid } => {
                let due = memory.not_available_at.get(&node_uid).is_none_or(|t| t.elapsed() >= NOT_AVAILABLE_EVENT_INTERVAL);
                let Some(obj) = by_uid.get(node_uid.as_str()).filter(|_| due) else { continue };
                memory.not_available_at.insert(node_uid, Instant::now());
                tracing::warn!(node.name = %node, cluster_cidr = %ranges.cluster, "no pod CIDR left in the cluster CIDR for the node");
                let message = format!("Node {node} status is now: CIDRNotAvailable");
                api.record_event(obj, "Normal", "CIDRNotAvailable", &message, COMPONENT).await;
            }
            Step::Foreign { node, uid: node_uid, pod_cidrs } => {
                if memory.foreign_logged.insert(node_uid) {
                    tracing::warn!(node.name = %node, pod_cidrs = ?pod_cidrs, cluster_cidr = %ranges.cluster, "node podCIDR is outside the cluster CIDR; left alone");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::objects::{t, timestamp};

    fn ranges(cluster: &str) -> NodeRanges {
        NodeRanges::new(cluster.parse().expect("cidr"), NODE_CIDR_MASK_SIZE).expect("ranges")
    }

    /// A Node created at t(`created`) with `pod_cidrs` (none when empty).
    fn node(name: &str, created: i64, pod_cidrs: &[&str]) -> Value {
        let mut n = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": format!("{name}-uid"), "creationTimestamp": timestamp(t(created))},
            "spec": {},
        });
        if let Some(first) = pod_cidrs.first() {
            n["spec"] = json!({"podCIDR": first, "podCIDRs": pod_cidrs});
        }
        n
    }

    fn assign(name: &str, cidr: &str) -> Step {
        Step::Assign { node: name.into(), uid: format!("{name}-uid"), cidr: cidr.parse().expect("cidr") }
    }

    fn not_available(name: &str) -> Step {
        Step::NotAvailable { node: name.into(), uid: format!("{name}-uid") }
    }

    fn foreign(name: &str, cidrs: &[&str]) -> Step {
        Step::Foreign { node: name.into(), uid: format!("{name}-uid"), pod_cidrs: cidrs.iter().map(|c| c.to_string()).collect() }
    }

    fn run_plan(cluster: &str, next: u64, nodes: &[Value]) -> Plan {
        let refs: Vec<&Value> = nodes.iter().collect();
        plan(&Observed { nodes: &refs, ranges: ranges(cluster), next })
    }

    /// (case, cluster CIDR, next, nodes, steps, next after)
    type Case = (&'static str, &'static str, u64, Vec<Value>, Vec<Step>, u64);

    #[test]
    fn the_allocator_plan() {
        let cases: Vec<Case> = vec![
            (
                "fresh cluster: /24s in order of creation",
                "10.42.0.0/16",
                0,
                vec![node("b", 2, &[]), node("a", 1, &[])],
                vec![assign("a", "10.42.0.0/24"), assign("b", "10.42.1.0/24")],
                2,
            ),
            ("nodes with a range are left as they are", "10.42.0.0/16", 1, vec![node("a", 1, &["10.42.0.0/24"])], vec![], 1),
            (
                "rebuilt after a restart: ranges of existing Nodes are taken",
                "10.42.0.0/16",
                0,
                vec![node("a", 1, &["10.42.0.0/24"]), node("c", 2, &["10.42.2.0/24"]), node("d", 3, &[])],
                vec![assign("d", "10.42.1.0/24")],
                2,
            ),
            (
                "a freed range is reused only after the cursor wraps",
                "10.42.0.0/16",
                2,
                vec![node("b", 1, &["10.42.1.0/24"]), node("c", 2, &[])],
                vec![assign("c", "10.42.2.0/24")],
                3,
            ),
            (
                "wraps around the end of the cluster CIDR",
                "10.42.0.0/22",
                3,
                vec![node("a", 1, &["10.42.0.0/24"]), node("d", 2, &["10.42.3.0/24"]), node("e", 3, &[])],
                vec![assign("e", "10.42.1.0/24")],
                2,
            ),
            (
                "full: CIDRNotAvailable and nothing handed out twice",
                "10.42.0.0/23",
                0,
                vec![node("a", 1, &["10.42.0.0/24"]), node("b", 2, &[]), node("c", 3, &[])],
                vec![assign("b", "10.42.1.0/24"), not_available("c")],
                0,
            ),
            (
                "a podCIDR outside the cluster CIDR is left alone and occupies nothing",
                "10.42.0.0/16",
                0,
                vec![node("old", 1, &["10.142.0.0/16"]), node("new", 2, &[])],
                vec![foreign("old", &["10.142.0.0/16"]), assign("new", "10.42.0.0/24")],
                1,
            ),
            (
                "hand-set ranges of other sizes occupy every /24 they touch",
                "10.42.0.0/16",
                0,
                vec![node("big", 1, &["10.42.0.0/23"]), node("small", 2, &["10.42.2.128/25"]), node("x", 3, &[])],
                vec![assign("x", "10.42.3.0/24")],
                4,
            ),
            (
                "a range covering the whole cluster CIDR fills it",
                "10.42.0.0/16",
                0,
                vec![node("all", 1, &["10.0.0.0/8"]), node("x", 2, &[])],
                vec![not_available("x")],
                0,
            ),
            (
                "podCIDR alone counts; IPv6 ranges are not ours; dual-stack IPv4 occupies",
                "10.42.0.0/16",
                0,
                vec![
                    json!({"metadata": {"name": "legacy", "uid": "legacy-uid"}, "spec": {"podCIDR": "10.42.0.0/24"}}),
                    node("v6", 1, &["fd00::/64"]),
                    node("dual", 2, &["fd00:1::/64", "10.42.1.0/24"]),
                    node("x", 3, &[]),
                ],
                vec![foreign("v6", &["fd00::/64"]), assign("x", "10.42.2.0/24")],
                3,
            ),
        ];
        for (case, cluster, next, nodes, steps, next_after) in cases {
            assert_eq!(run_plan(cluster, next, &nodes), Plan { steps, next: next_after }, "{case}");
        }
    }

    #[test]
    fn deleting_nodes_get_nothing_but_keep_their_range() {
        let mut going = node("going", 1, &[]);
        going["metadata"]["deletionTimestamp"] = json!(timestamp(t(5)));
        let mut held = node("held", 2, &["10.42.0.0/24"]);
        held["metadata"]["deletionTimestamp"] = json!(timestamp(t(5)));
        let p = run_plan("10.42.0.0/16", 0, &[going, held, node("x", 3, &[])]);
        assert_eq!(p.steps, vec![assign("x", "10.42.1.0/24")]);
    }

    #[test]
    fn deleted_nodes_free_their_range() {
        // One /24 in the cluster: the second Node waits until the first one is gone.
        let a = node("a", 1, &["10.42.0.0/24"]);
        assert_eq!(run_plan("10.42.0.0/24", 0, &[a, node("b", 2, &[])]).steps, vec![not_available("b")]);
        assert_eq!(run_plan("10.42.0.0/24", 0, &[node("b", 2, &[])]).steps, vec![assign("b", "10.42.0.0/24")]);
    }

    #[test]
    fn a_large_cluster_cidr_is_searched_without_enumerating_it() {
        // 2^24 ranges; one Node covers all but the last.
        let nodes = [node("most", 1, &["0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/3"]), node("x", 2, &[])];
        let refs: Vec<&Value> = nodes.iter().collect();
        let p = plan(&Observed { nodes: &refs, ranges: NodeRanges::new("0.0.0.0/0".parse().expect("cidr"), 24).expect("ranges"), next: 5 });
        assert_eq!(p.steps, vec![assign("x", "224.0.0.0/24")]);
    }

    #[test]
    fn node_ranges_and_occupancy() {
        let r = ranges("10.42.0.0/16");
        assert_eq!(r.count(), 256);
        assert_eq!(r.range(255).to_string(), "10.42.255.0/24");
        assert_eq!(r.overlapped(&"10.42.7.9/32".parse().expect("cidr")), Some((7, 7)));
        assert_eq!(r.overlapped(&"10.40.0.0/14".parse().expect("cidr")), Some((0, 255)));
        assert_eq!(r.overlapped(&"10.43.0.0/16".parse().expect("cidr")), None);
        assert_eq!(NodeRanges::new("10.42.0.0/25".parse().expect("cidr"), 24), None);
        let mut o = Occupied::default();
        o.insert(3, 4);
        o.insert(0, 1);
        o.insert(2, 2);
        assert_eq!(o.0, vec![(0, 4)]);
        assert_eq!(o.next_free(2, 8), Some(5));
        o.insert(5, 7);
        assert_eq!(o.next_free(6, 8), None);
    }

    async fn api() -> (tempfile::TempDir, Api) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(dir.path(), crate::store::StoreConfig::default()).expect("store");
        let api = Api::new(store, std::sync::Arc::new(crate::apiserver::service::SystemClock));
        // Node events go to the default namespace.
        api.create(info("", "namespaces"), None, json!({"metadata": {"name": "default"}}), &Default::default()).await.expect("namespace");
        (dir, api)
    }

    async fn create_node(api: &Api, name: &str, spec: Value) {
        let n = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec});
        api.create(info("", "nodes"), None, n, &Default::default()).await.expect("node created");
    }

    fn spec_of(api: &Api, name: &str) -> Value {
        api.get(info("", "nodes"), None, name).expect("node").value["spec"].clone()
    }

    fn events(api: &Api) -> Vec<(String, String, String)> {
        let (evs, _, _) = api.store.list("core/events/", None, None, &|_| true);
        evs.iter().map(|e| (e.value["involvedObject"]["name"].as_str().unwrap_or("").into(), e.value["reason"].as_str().unwrap_or("").into(), e.value["message"].as_str().unwrap_or("").into())).collect()
    }

    #[tokio::test]
    async fn the_executor_assigns_reports_and_podcidrs_stay_put() {
        let (_dir, api) = api().await;
        let r = NodeRanges::new("10.42.0.0/23".parse().expect("cidr"), NODE_CIDR_MASK_SIZE).expect("ranges");
        let mut memory = Memory::default();
        create_node(&api, "a", json!({})).await;
        create_node(&api, "old", json!({"podCIDR": "10.1.0.0/16"})).await;
        pass(&api, r, &mut memory).await;
        assert_eq!(spec_of(&api, "a"), json!({"podCIDR": "10.42.0.0/24", "podCIDRs": ["10.42.0.0/24"]}));
        assert_eq!(spec_of(&api, "old")["podCIDRs"], json!(["10.1.0.0/16"]), "left alone");

        create_node(&api, "b", json!({})).await;
        create_node(&api, "c", json!({})).await;
        pass(&api, r, &mut memory).await;
        pass(&api, r, &mut memory).await;
        assert_eq!(spec_of(&api, "b")["podCIDR"], "10.42.1.0/24");
        assert_eq!(spec_of(&api, "c"), json!({}));
        // Reported once, however many passes find it waiting.
        assert_eq!(events(&api), vec![("c".to_string(), "CIDRNotAvailable".to_string(), "Node c status is now: CIDRNotAvailable".to_string())]);

        // a's range is freed with a; c gets it.
        api.remove(info("", "nodes"), None, "a", None).await.expect("removed");
        pass(&api, r, &mut memory).await;
        assert_eq!(spec_of(&api, "c")["podCIDRs"], json!(["10.42.0.0/24"]));

        // Once set, a podCIDR never changes through the API.
        let mut changed = api.get(info("", "nodes"), None, "c").expect("node").value.clone();
        changed["spec"] = json!({"podCIDR": "10.42.5.0/24", "podCIDRs": ["10.42.5.0/24"]});
        let e = api.update(info("", "nodes"), None, "c", changed, crate::apiserver::service::Part::Main, &Default::default()).await.expect_err("immutable");
        assert_eq!((e.code, e.message.as_str()), (422, "Node \"c\" is invalid: spec.podCIDRs: Forbidden: node updates may not change podCIDR except from \"\" to valid"));
    }
}
