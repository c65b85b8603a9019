//! Printers of rbac.authorization.k8s.io/v1 RoleBinding and ClusterRoleBinding (Role and
//! ClusterRole have no printer in Kubernetes and get the default columns).
//!
//! Invariant: `role_binding_cells` returns one cell per column of either `*_COLUMNS`, in order.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{AGE, Column, NAME, age, col, list, name, text, wide};

// ---------------------------------------------------------------------------------------
// Columns

#[rustfmt::skip]
pub(super) const ROLE_BINDING_COLUMNS: &[Column] = &[
    NAME,
    col("Role", "string", "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace."),
    AGE,
    wide("Users", "string", "Users in the roleBinding"),
    wide("Groups", "string", "Groups in the roleBinding"),
    wide("ServiceAccounts", "string", "ServiceAccounts in the roleBinding"),
];

#[rustfmt::skip]
pub(super) const CLUSTER_ROLE_BINDING_COLUMNS: &[Column] = &[
    NAME,
    col("Role", "string", "RoleRef can only reference a ClusterRole in the global namespace."),
    AGE,
    wide("Users", "string", "Users in the clusterRoleBinding"),
    wide("Groups", "string", "Groups in the clusterRoleBinding"),
    wide("ServiceAccounts", "string", "ServiceAccounts in the clusterRoleBinding"),
];

// ---------------------------------------------------------------------------------------
// Printers

pub(super) fn role_binding_cells(rb: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let role = format!("{}/{}", text(rb, &["roleRef", "kind"]), text(rb, &["roleRef", "name"]));
    let (mut users, mut groups, mut service_accounts) = (Vec::new(), Vec::new(), Vec::new());
    for subject in list(rb, &["subjects"]) {
        let name = text(subject, &["name"]);
        match text(subject, &["kind"]) {
            "User" => users.push(name.to_string()),
            "Group" => groups.push(name.to_string()),
            "ServiceAccount" => service_accounts.push(format!("{}/{name}", text(subject, &["namespace"]))),
            _ => {}
        }
    }
    vec![
        name(rb).into(),
        role.into(),
        age(rb, now),
        users.join(", ").into(),
        groups.join(", ").into(),
        service_accounts.join(", ").into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::cells;
    use serde_json::json;

    #[test]
    fn role_binding_subjects() {
        let c = cells(
            "rbac.authorization.k8s.io",
            "RoleBinding",
            json!({"roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
                         {"kind": "ServiceAccount", "namespace": "ns", "name": "bot"}, {"kind": "User", "name": "bob"}]}),
        );
        assert_eq!(&c[3..], &[json!("alice, bob"), json!("devs"), json!("ns/bot")]);
        assert_eq!(c[1], "ClusterRole/view");
    }
}
