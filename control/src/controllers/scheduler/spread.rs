//! Topology spread (kube-scheduler's PodTopologySpread): DoNotSchedule constraints filter
//! on the skew against the global minimum over eligible domains (minDomains, node
//! inclusion policies, matchLabelKeys); ScheduleAnyway constraints score.

use std::collections::HashMap;

use flotilla_api::selector::LabelSelector;
use serde_json::{Map, Value, json};

use super::filters::Rejection;
use super::scores::MAX_SCORE;
use super::{HOSTNAME, Incoming, NodeInfo, namespace_of, str_of};

const ERR_SPREAD: &str = "node(s) didn't match pod topology spread constraints";
const ERR_SPREAD_LABEL: &str = "node(s) didn't match pod topology spread constraints (missing required label)";

pub(super) struct Spread<'x> {
    max_skew: i64,
    key: &'x str,
    selector: LabelSelector,
    min_domains: Option<i64>,
    honor_affinity: bool,
    honor_taints: bool,
    self_match: bool,
}

impl<'x> Spread<'x> {
    pub(super) fn parse(c: &'x Value, pod_labels: Option<&Map<String, Value>>) -> Spread<'x> {
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
pub(super) struct HardSpread<'x> {
    counts: Vec<HashMap<&'x str, i64>>,
    mins: Vec<i64>,
}

impl<'x> HardSpread<'x> {
    pub(super) fn new(p: &Incoming<'x>, nodes: &'x [NodeInfo<'x>]) -> HardSpread<'x> {
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

    pub(super) fn filter<'r>(&self, p: &Incoming<'_>, n: &NodeInfo<'_>) -> Result<(), Rejection<'r>> {
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

pub(super) fn soft_spread_scores<'x>(p: &Incoming<'x>, all: &'x [NodeInfo<'x>], feasible: &[&NodeInfo<'x>]) -> Vec<i64> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::scheduler::testing::*;

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
}
