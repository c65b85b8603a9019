//! Fixtures for the scheduler's tests: nodes, pods, and running the scheduler on them.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{schedule, snapshot};

pub(super) fn node(name: &str, cpu: &str, memory: &str, pods: u32) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": pods.to_string(), "ephemeral-storage": "10Gi"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    })
}

pub(super) fn pod(name: &str, cpu: &str, memory: &str) -> Value {
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

pub(super) fn bound(mut p: Value, node: &str) -> Value {
    p["spec"]["nodeName"] = json!(node);
    p["status"] = json!({"phase": "Running"});
    p
}

pub(super) fn with(mut v: Value, path: &[&str], value: Value) -> Value {
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

pub(super) fn run(nodes: &[Value], pods: &[Value], p: &Value) -> Result<String, String> {
    let nodes: Vec<&Value> = nodes.iter().collect();
    let pods: Vec<&Value> = pods.iter().collect();
    schedule(p, &snapshot(&nodes, &pods)).map_err(|e| e.message)
}

pub(super) fn msg(total: usize, filter: &str, preemption: &str) -> String {
    format!("0/{total} nodes are available: {filter}. preemption: 0/{total} nodes are available: {preemption}.")
}

/// Schedule pods one after another, binding each, and count pods per node.
pub(super) fn place_all(nodes: &[Value], existing: &[Value], incoming: &[Value]) -> BTreeMap<String, usize> {
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

pub(super) fn pod_affinity(kind: &str, required: bool, labels: Value) -> Value {
    let term = json!({"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"});
    let rules = if required {
        json!({"requiredDuringSchedulingIgnoredDuringExecution": [term]})
    } else {
        json!({"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}]})
    };
    with(pod("p", "100m", "100Mi"), &["spec", "affinity", kind], rules)
}
