//! Printers of apps/v1 kinds: Deployment, ReplicaSet, StatefulSet, DaemonSet and
//! ControllerRevision.
//!
//! Invariant: each `*_cells` returns one cell per column of its `*_COLUMNS`, in order.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    AGE, CONTAINERS, Column, IMAGES, NAME, SELECTOR, age, col, container_cells, format_label_selector, format_labels,
    flag, get, int, list, name, opt_int, selector_string, text, wide,
};

// ---------------------------------------------------------------------------------------
// Columns

#[rustfmt::skip]
pub(super) const DEPLOYMENT_COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    col("Up-to-date", "string", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
    col("Available", "string", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
];

#[rustfmt::skip]
pub(super) const REPLICA_SET_COLUMNS: &[Column] = &[
    NAME,
    col("Desired", "integer", "Replicas is the number of desired replicas."),
    col("Current", "integer", "Replicas is the most recently observed number of replicas."),
    col("Ready", "integer", "The number of ready replicas for this replica set."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

#[rustfmt::skip]
pub(super) const STATEFUL_SET_COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    AGE,
    CONTAINERS,
    IMAGES,
];

#[rustfmt::skip]
pub(super) const DAEMON_SET_COLUMNS: &[Column] = &[
    NAME,
    col("Desired", "integer", "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."),
    col("Current", "integer", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
    col("Ready", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."),
    col("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod"),
    col("Available", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
    col("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a node."),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", "A label query over pods that are managed by the daemon set."),
];

#[rustfmt::skip]
pub(super) const CONTROLLER_REVISION_COLUMNS: &[Column] = &[
    NAME,
    col("Controller", "string", "Controller of the object"),
    col("Revision", "string", "Revision indicates the revision of the state represented by Data."),
    AGE,
];

// ---------------------------------------------------------------------------------------
// Printers

pub(super) fn deployment_cells(d: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = container_cells(d, &["spec", "template", "spec", "containers"]);
    let selector = selector_string(get(d, &["spec", "selector"])).unwrap_or_else(|_| "<invalid>".into());
    vec![
        name(d).into(),
        format!("{}/{}", int(d, &["status", "readyReplicas"]), replicas(d)).into(),
        int(d, &["status", "updatedReplicas"]).into(),
        int(d, &["status", "availableReplicas"]).into(),
        age(d, now),
        containers.into(),
        images.into(),
        selector.into(),
    ]
}

pub(super) fn replica_set_cells(rs: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = container_cells(rs, &["spec", "template", "spec", "containers"]);
    vec![
        name(rs).into(),
        replicas(rs).into(),
        int(rs, &["status", "replicas"]).into(),
        int(rs, &["status", "readyReplicas"]).into(),
        age(rs, now),
        containers.into(),
        images.into(),
        format_label_selector(get(rs, &["spec", "selector"])).into(),
    ]
}

pub(super) fn stateful_set_cells(sts: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = container_cells(sts, &["spec", "template", "spec", "containers"]);
    vec![
        name(sts).into(),
        format!("{}/{}", int(sts, &["status", "readyReplicas"]), replicas(sts)).into(),
        age(sts, now),
        containers.into(),
        images.into(),
    ]
}

pub(super) fn daemon_set_cells(ds: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = container_cells(ds, &["spec", "template", "spec", "containers"]);
    vec![
        name(ds).into(),
        int(ds, &["status", "desiredNumberScheduled"]).into(),
        int(ds, &["status", "currentNumberScheduled"]).into(),
        int(ds, &["status", "numberReady"]).into(),
        int(ds, &["status", "updatedNumberScheduled"]).into(),
        int(ds, &["status", "numberAvailable"]).into(),
        format_labels(get(ds, &["spec", "template", "spec", "nodeSelector"])).into(),
        age(ds, now),
        containers.into(),
        images.into(),
        format_label_selector(get(ds, &["spec", "selector"])).into(),
    ]
}

pub(super) fn controller_revision_cells(cr: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let controller = list(cr, &["metadata", "ownerReferences"]).iter().find(|r| flag(r, &["controller"])).map_or_else(
        || "<none>".to_string(),
        |r| {
            // "apps/v1" -> group "apps"; "v1" -> core.
            let group = text(r, &["apiVersion"]).rsplit_once('/').map_or("", |(g, _)| g);
            let kind = text(r, &["kind"]);
            let group_kind = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
            if group_kind.is_empty() {
                text(r, &["name"]).to_string()
            } else {
                format!("{}/{}", group_kind.to_lowercase(), text(r, &["name"]))
            }
        },
    );
    vec![name(cr).into(), controller.into(), int(cr, &["revision"]).into(), age(cr, now)]
}

fn replicas(obj: &Value) -> i64 {
    // spec.replicas defaults to 1.
    opt_int(obj, &["spec", "replicas"]).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{ago, cells, row};
    use serde_json::{Value, json};

    #[test]
    fn deployment_columns() {
        let (names, c) = row(
            "apps",
            "Deployment",
            json!({
                "metadata": {"name": "web", "creationTimestamp": ago(3 * 86400 + 3600)},
                "spec": {"replicas": 3,
                    "selector": {"matchLabels": {"app": "web"},
                                 "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]}]},
                    "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"},
                                                         {"name": "log", "image": "busybox"}]}}},
                "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
            }),
        );
        assert_eq!(names, ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"]);
        assert_eq!(
            Value::Array(c),
            json!(["web", "2/3", 3, 2, "3d1h", "nginx,log", "nginx:1.27,busybox", "app=web,tier in (be,fe)"])
        );
        // replicas defaults to 1; a missing status reads as zeros.
        let c = cells("apps", "Deployment", json!({"metadata": {"name": "d"}}));
        assert_eq!(c[1], "0/1");
        assert_eq!(c[7], "");
    }

    #[test]
    fn workload_kinds() {
        let c = cells(
            "apps",
            "ReplicaSet",
            json!({"spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}}},
            "status": {"replicas": 2, "readyReplicas": 1}}),
        );
        assert_eq!(&c[1..4], &[json!(2), json!(2), json!(1)]);
        assert_eq!(c[7], "a=b");
        let c = cells("apps", "StatefulSet", json!({"spec": {"replicas": 3}, "status": {"readyReplicas": 3}}));
        assert_eq!(c[1], "3/3");
        let c = cells(
            "apps",
            "DaemonSet",
            json!({"spec": {"template": {"spec": {"nodeSelector": {"os": "linux"}}}},
            "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                       "updatedNumberScheduled": 2, "numberAvailable": 1}}),
        );
        assert_eq!(&c[1..7], &[json!(2), json!(2), json!(1), json!(2), json!(1), json!("os=linux")]);
        assert_eq!(c[10], "<none>");
        let c = cells(
            "apps",
            "ControllerRevision",
            json!({"metadata": {"name": "r", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "controller": true}]}, "revision": 4}),
        );
        assert_eq!(&c[1..3], &[json!("daemonset.apps/agent"), json!(4)]);
    }
}
