//! Printers of policy/v1 PodDisruptionBudget and scheduling.k8s.io/v1 PriorityClass, with
//! the columns `kubectl get` shows from Kubernetes.
//!
//! Invariant: each `*_cells` returns one cell per column of its `*_COLUMNS`, in order.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{AGE, Column, NAME, age, col, flag, get, int, name, text};

#[rustfmt::skip]
pub(super) const POD_DISRUPTION_BUDGET_COLUMNS: &[Column] = &[
    NAME,
    col("Min Available", "string", "The minimum number of pods that must be available simultaneously.  This can be either an integer or a string specifying a percentage, e.g. \"28%\"."),
    col("Max Unavailable", "string", "The maximum number of pods that may be unavailable simultaneously.  This can be either an integer or a string specifying a percentage, e.g. \"28%\"."),
    col("Allowed Disruptions", "integer", "Number of pod disruptions that are currently allowed."),
    AGE,
];

#[rustfmt::skip]
pub(super) const PRIORITY_CLASS_COLUMNS: &[Column] = &[
    NAME,
    col("Value", "integer", "The value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec."),
    col("Global-Default", "boolean", "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class."),
    AGE,
    col("PreemptionPolicy", "string", "PreemptionPolicy is the Policy for preempting pods with lower priority."),
];

#[rustfmt::skip]
pub(super) const HPA_COLUMNS: &[Column] = &[
    NAME,
    col("Reference", "string", "Reference to the target object."),
    col("Targets", "string", "The metrics targets and their current values."),
    col("MinPods", "string", "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down."),
    col("MaxPods", "integer", "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up."),
    col("Replicas", "integer", "currentReplicas is current number of replicas of pods managed by this autoscaler."),
    AGE,
];

/// `cpu: 45%/50%` per metric, as kubectl prints autoscaling/v2 targets.
pub(super) fn hpa_cells(hpa: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let r = get(hpa, &["spec", "scaleTargetRef"]).cloned().unwrap_or(Value::Null);
    let reference = format!("{}/{}", r["kind"].as_str().unwrap_or(""), r["name"].as_str().unwrap_or(""));
    let current = get(hpa, &["status", "currentMetrics"]).and_then(Value::as_array).cloned().unwrap_or_default();
    let targets: Vec<String> = get(hpa, &["spec", "metrics"]).and_then(Value::as_array).into_iter().flatten().filter(|m| m["type"] == "Resource").map(|m| {
        let res = m["resource"]["name"].as_str().unwrap_or("");
        let cur = current.iter().find(|c| c["type"] == "Resource" && c["resource"]["name"] == res).map(|c| &c["resource"]["current"]);
        let t = &m["resource"]["target"];
        if t["type"] == "AverageValue" {
            let have = cur.and_then(|c| c["averageValue"].as_str()).unwrap_or("<unknown>");
            format!("{res}: {have}/{}", t["averageValue"].as_str().unwrap_or(""))
        } else {
            let have = cur.and_then(|c| c["averageUtilization"].as_i64()).map_or("<unknown>".to_string(), |u| format!("{u}%"));
            format!("{res}: {have}/{}%", t["averageUtilization"].as_i64().unwrap_or(0))
        }
    }).collect();
    let min = get(hpa, &["spec", "minReplicas"]).and_then(Value::as_i64).map_or("<unset>".to_string(), |m| m.to_string());
    vec![
        name(hpa).into(),
        reference.into(),
        if targets.is_empty() { "<none>".to_string() } else { targets.join(", ") }.into(),
        min.into(),
        int(hpa, &["spec", "maxReplicas"]).into(),
        int(hpa, &["status", "currentReplicas"]).into(),
        age(hpa, now),
    ]
}

fn int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "N/A".to_string(),
    }
}

pub(super) fn pod_disruption_budget_cells(pdb: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(pdb).into(),
        int_or_string(get(pdb, &["spec", "minAvailable"])).into(),
        int_or_string(get(pdb, &["spec", "maxUnavailable"])).into(),
        int(pdb, &["status", "disruptionsAllowed"]).into(),
        age(pdb, now),
    ]
}

pub(super) fn priority_class_cells(pc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(pc).into(),
        int(pc, &["value"]).into(),
        flag(pc, &["globalDefault"]).into(),
        age(pc, now),
        text(pc, &["preemptionPolicy"]).into(),
    ]
}
