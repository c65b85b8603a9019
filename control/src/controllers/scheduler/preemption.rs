//! Preemption (kube-scheduler's DefaultPreemption, simplified): when a pod fits no node,
//! find a node where removing pods of lower priority makes it fit, and the fewest, least
//! important such pods.
//!
//! Semantics:
//! - Only pods with `preemptionPolicy` other than Never preempt; only pods of strictly
//!   lower priority that are not already being deleted are candidates.
//! - Per node (that rejected the pod for a reason preemption can resolve): remove every
//!   candidate; if the pod then fits, add candidates back from the most important down
//!   (kube-scheduler's reprieve) while it still fits; the rest are the victims.
//! - Among nodes with victims, the winner has the lowest highest-victim priority, then the
//!   smallest sum of victim priorities, then the fewest victims, then the smallest name.
//! - Not modelled: PodDisruptionBudgets when picking victims, and reserving the freed room
//!   for the nominated pod against pods of lower priority scheduled meanwhile.

use serde_json::Value;

use super::affinity::InterPodState;
use super::filters::filter;
use super::spread::HardSpread;
use super::{Incoming, NodeInfo};

/// A pod's priority (`spec.priority`, 0 when unset).
pub(crate) fn priority(pod: &Value) -> i64 {
    pod["spec"]["priority"].as_i64().unwrap_or(0)
}

/// Where `pod` can go by evicting whom, if anywhere.
#[derive(Debug)]
pub(crate) struct Preemption<'a> {
    pub node: String,
    pub victims: Vec<&'a Value>,
}

/// Pure: the best preemption for `pod` (which fits no node as `nodes` stand), or None.
pub(crate) fn preempt<'a>(pod: &'a Value, nodes: &[NodeInfo<'a>]) -> Option<Preemption<'a>> {
    let p = Incoming::new(pod);
    if p.preempt_never || nodes.is_empty() {
        return None;
    }
    let prio = priority(pod);
    let inter = InterPodState::new(&p, nodes);
    let spread = HardSpread::new(&p, nodes);
    let mut best: Option<((i64, i64, usize, String), Preemption<'a>)> = None;
    for n in nodes {
        let (mut lower, keep): (Vec<&'a Value>, Vec<&'a Value>) =
            n.pods.iter().copied().partition(|v| priority(v) < prio && v["metadata"]["deletionTimestamp"].is_null());
        if lower.is_empty() {
            continue;
        }
        let fits = |pods: Vec<&'a Value>| filter(&p, &NodeInfo::new(n.node, pods), &inter, &spread).is_ok();
        if !fits(keep.clone()) {
            continue;
        }
        // Reprieve the most important candidates first.
        lower.sort_by_key(|v| std::cmp::Reverse(priority(v)));
        let mut kept = keep;
        let mut victims = Vec::new();
        for v in lower {
            let mut trial = kept.clone();
            trial.push(v);
            if fits(trial.clone()) {
                kept = trial;
            } else {
                victims.push(v);
            }
        }
        if victims.is_empty() {
            continue;
        }
        let key = (
            victims.iter().map(|v| priority(v)).max().unwrap_or(0),
            victims.iter().map(|v| priority(v)).sum::<i64>(),
            victims.len(),
            n.name.to_string(),
        );
        if best.as_ref().is_none_or(|(k, _)| key < *k) {
            best = Some((key, Preemption { node: n.name.to_string(), victims }));
        }
    }
    best.map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(name: &str, cpu: &str) -> Value {
        json!({"metadata": {"name": name}, "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"}, "conditions": [{"type": "Ready", "status": "True"}]}})
    }

    fn pod(name: &str, cpu: &str, prio: i64) -> Value {
        json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"priority": prio, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}})
    }

    #[test]
    fn evicts_the_fewest_least_important_pods() {
        let (a, b) = (node("a", "2"), node("b", "2"));
        let (low1, low2, mid) = (pod("low1", "1", 1), pod("low2", "1", 1), pod("mid", "1", 50));
        let (other_low, other_mid) = (pod("olow", "1", 1), pod("omid", "1", 60));
        let nodes = vec![NodeInfo::new(&a, vec![&low1, &mid]), NodeInfo::new(&b, vec![&other_low, &other_mid])];
        let high = pod("high", "1", 100);
        let got = preempt(&high, &nodes).expect("a preemption");
        // One victim of priority 1 on either node: node a's highest victim (1) ties b's, and so
        // does the sum; the name breaks the tie.
        assert_eq!(got.node, "a");
        assert_eq!(got.victims.iter().map(|v| v["metadata"]["name"].as_str().unwrap()).collect::<Vec<_>>(), ["low1"]);
        let _ = low2;
        // A pod of equal or lower priority preempts nobody, nor one with preemptionPolicy Never.
        assert!(preempt(&pod("same", "1", 1), &nodes).is_none());
        let mut never = pod("never", "1", 100);
        never["spec"]["preemptionPolicy"] = json!("Never");
        assert!(preempt(&never, &nodes).is_none());
    }

    #[test]
    fn no_preemption_when_even_an_empty_node_is_too_small() {
        let a = node("a", "1");
        let low = pod("low", "1", 1);
        let nodes = vec![NodeInfo::new(&a, vec![&low])];
        assert!(preempt(&pod("huge", "2", 100), &nodes).is_none());
        assert!(preempt(&pod("fits", "1", 100), &nodes).is_some());
    }
}
