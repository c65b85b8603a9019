//! Scores: the default profile's score plugins over the feasible nodes, each normalized
//! to 0..100 and weighted: TaintToleration x3, NodeAffinity x2, PodTopologySpread x2 (in
//! [`super::spread`]), InterPodAffinity x2 (in [`super::affinity`]), NodeResourcesFit
//! (LeastAllocated) x1 and NodeResourcesBalancedAllocation x1.

use super::affinity::inter_pod_scores;
use super::filters::{Toleration, node_selector_term_matches};
use super::spread::soft_spread_scores;
use super::{Incoming, NodeInfo};

pub(super) const MAX_SCORE: i64 = 100;

/// Weighted totals for the feasible nodes, in their order.
pub(super) fn score<'x>(p: &Incoming<'x>, all: &'x [NodeInfo<'x>], feasible: &[&NodeInfo<'x>]) -> Vec<i64> {
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

#[cfg(test)]
mod tests {
    use crate::controllers::scheduler::testing::*;
    use serde_json::{Value, json};

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
}
