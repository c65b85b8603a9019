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
