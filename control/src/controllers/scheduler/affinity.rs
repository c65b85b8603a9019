//! Inter-pod affinity (kube-scheduler's InterPodAffinity): the filter for required
//! (anti-)affinity, the incoming pod's and the existing pods' (existing pods' required
//! anti-affinity is symmetric), and the score for preferred terms and existing pods' terms.
//!
//! Terms select pods in their own namespace unless they name namespaces; a
//! `namespaceSelector: {}` selects every namespace (no other selector is modelled).

use std::collections::HashMap;

use flotilla_api::selector::LabelSelector;
use serde_json::{Map, Value};

use super::filters::Rejection;
use super::scores::MAX_SCORE;
use super::{Incoming, NodeInfo, namespace_of, str_of};

/// Weight of an existing pod's required affinity term in scoring (hardPodAffinityWeight).
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

const ERR_AFFINITY: &str = "node(s) didn't match pod affinity rules";
const ERR_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
const ERR_EXISTING_ANTI: &str = "node(s) didn't satisfy existing pods anti-affinity rules";

/// One pod's parsed affinity and anti-affinity terms.
#[derive(Debug, Clone)]
pub(super) struct PodAffinity<'a> {
    req_aff: Vec<AffinityTerm<'a>>,
    req_anti: Vec<AffinityTerm<'a>>,
    pref_aff: Vec<AffinityTerm<'a>>,
    pref_anti: Vec<AffinityTerm<'a>>,
}

impl<'a> PodAffinity<'a> {
    pub(super) fn parse(pod: &'a Value) -> PodAffinity<'a> {
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

    pub(super) fn is_empty(&self) -> bool {
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
pub(super) struct InterPodState<'x> {
    affinity: HashMap<(&'x str, &'x str), i64>,
    anti: HashMap<(&'x str, &'x str), i64>,
    existing_anti: HashMap<(&'x str, &'x str), i64>,
}

impl<'x> InterPodState<'x> {
    pub(super) fn new(p: &Incoming<'x>, nodes: &'x [NodeInfo<'x>]) -> InterPodState<'x> {
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

    pub(super) fn filter<'r>(&self, p: &Incoming<'_>, n: &NodeInfo<'_>) -> Result<(), Rejection<'r>> {
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

/// Preferred pod (anti-)affinity of the pod, and existing pods' terms that match it.
/// `None` when nothing applies.
pub(super) fn inter_pod_scores<'x>(p: &Incoming<'x>, all: &'x [NodeInfo<'x>], feasible: &[&NodeInfo<'x>]) -> Option<Vec<i64>> {
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

#[cfg(test)]
mod tests {
    use crate::controllers::scheduler::testing::*;
    use serde_json::{Value, json};

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
}
