//! rbac.authorization.k8s.io/v1 messages: Role, ClusterRole (aggregation rule), and the
//! subjects and roleRef of RoleBinding and ClusterRoleBinding.

use k8s_pb::api::rbac::v1 as rbac;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use serde_json::{Map, Value};

use super::meta_v1::{label_selector, object_meta};
use super::{Json, Result};

fn policy_rule(r: &rbac::PolicyRule) -> Result<Value> {
    let mut j = Json::default();
    j.strs_req("verbs", &r.verbs);
    j.strs("apiGroups", &r.api_groups);
    j.strs("resources", &r.resources);
    j.strs("resourceNames", &r.resource_names);
    j.strs("nonResourceURLs", &r.non_resource_ur_ls);
    j.done()
}

pub(super) fn role(r: &rbac::Role) -> Result<Map<String, Value>> {
    let mut j = Json::default();
    j.object("metadata", &r.metadata, object_meta)?;
    j.list_req("rules", &r.rules, policy_rule)?;
    Ok(j.0)
}

pub(super) fn cluster_role(r: &rbac::ClusterRole) -> Result<Map<String, Value>> {
    let mut j = Json::default();
    j.object("metadata", &r.metadata, object_meta)?;
    j.list_req("rules", &r.rules, policy_rule)?;
    j.ptr("aggregationRule", &r.aggregation_rule, |a| {
        let mut j = Json::default();
        j.list(
            "clusterRoleSelectors",
            &a.cluster_role_selectors,
            label_selector,
        )?;
        j.done()
    })?;
    Ok(j.0)
}

pub(super) fn binding(
    metadata: &Option<meta::ObjectMeta>,
    subjects: &[rbac::Subject],
    role_ref: &Option<rbac::RoleRef>,
) -> Result<Map<String, Value>> {
    let mut j = Json::default();
    j.object("metadata", metadata, object_meta)?;
    j.list("subjects", subjects, |s| {
        let mut j = Json::default();
        j.str_req("kind", &s.kind);
        j.str("apiGroup", &s.api_group);
        j.str_req("name", &s.name);
        j.str("namespace", &s.namespace);
        j.done()
    })?;
    j.object("roleRef", role_ref, |r: &rbac::RoleRef| {
        let mut j = Json::default();
        j.str_req("apiGroup", &r.api_group);
        j.str_req("kind", &r.kind);
        j.str_req("name", &r.name);
        j.done()
    })?;
    Ok(j.0)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{decoded, fixture, map, meta_named};
    use super::*;
    use serde_json::json;

    #[test]
    fn cluster_role_without_rules_writes_null_like_go() {
        let role = rbac::ClusterRole {
            metadata: meta_named("agg"),
            rules: vec![],
            aggregation_rule: Some(rbac::AggregationRule {
                cluster_role_selectors: vec![meta::LabelSelector {
                    match_labels: map(&[("rbac.example.com/aggregate", "true".to_string())]),
                    match_expressions: vec![],
                }],
            }),
        };
        assert_eq!(
            decoded("rbac.authorization.k8s.io/v1", "ClusterRole", &role),
            json!({
                "kind": "ClusterRole", "apiVersion": "rbac.authorization.k8s.io/v1",
                "metadata": {"name": "agg", "creationTimestamp": null},
                "rules": null,
                "aggregationRule": {"clusterRoleSelectors": [
                    {"matchLabels": {"rbac.example.com/aggregate": "true"}}
                ]}
            })
        );
    }

    #[test]
    fn kubectl_create_rbac() {
        // kubectl create role r --verb=get,list --resource=pods,deployments.apps --resource-name=a
        assert_eq!(
            fixture(include_bytes!("testdata/role.bin")),
            json!({
                "kind": "Role", "apiVersion": "rbac.authorization.k8s.io/v1",
                "metadata": {"name": "r", "creationTimestamp": null},
                "rules": [
                    {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]},
                    {"verbs": ["get", "list"], "apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["a"]}
                ]
            })
        );
        // kubectl create clusterrole cr --verb=get --non-resource-url=/logs/*
        assert_eq!(
            fixture(include_bytes!("testdata/clusterrole.bin")),
            json!({
                "kind": "ClusterRole", "apiVersion": "rbac.authorization.k8s.io/v1",
                "metadata": {"name": "cr", "creationTimestamp": null},
                "rules": [{"verbs": ["get"], "nonResourceURLs": ["/logs/*"]}]
            })
        );
        // kubectl create rolebinding rb --role=r --user=alice --serviceaccount=default:sa --group=g
        assert_eq!(
            fixture(include_bytes!("testdata/rolebinding.bin")),
            json!({
                "kind": "RoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
                "metadata": {"name": "rb", "creationTimestamp": null},
                "subjects": [
                    {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
                    {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "g"},
                    {"kind": "ServiceAccount", "name": "sa", "namespace": "default"}
                ],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}
            })
        );
        // kubectl create clusterrolebinding crb --clusterrole=cr --user=bob
        assert_eq!(
            fixture(include_bytes!("testdata/clusterrolebinding.bin")),
            json!({
                "kind": "ClusterRoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
                "metadata": {"name": "crb", "creationTimestamp": null},
                "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "bob"}],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cr"}
            })
        );
    }

    #[test]
    fn kubectl_create_rbac_every_flag() {
        // kubectl create clusterrole agg
        //   --aggregation-rule=rbac.example.com/aggregate-to-monitoring=true,tier=x
        assert_eq!(
            fixture(include_bytes!("testdata/clusterrole_aggregation.bin")),
            json!({
                "kind": "ClusterRole", "apiVersion": "rbac.authorization.k8s.io/v1",
                "metadata": {"name": "agg", "creationTimestamp": null},
                "rules": null,
                "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {
                    "rbac.example.com/aggregate-to-monitoring": "true", "tier": "x"
                }}]}
            })
        );
        // kubectl create clusterrole cr2 --verb=get,list,watch
        //   --resource=pods,pods/log,deployments.apps,ingresses.networking.k8s.io
        //   --resource-name=a --resource-name=b
        assert_eq!(
            fixture(include_bytes!("testdata/clusterrole_resources.bin"))["rules"],
            json!([
                {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods", "pods/log"], "resourceNames": ["a", "b"]},
                {"verbs": ["get", "list", "watch"], "apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["a", "b"]},
                {"verbs": ["get", "list", "watch"], "apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "resourceNames": ["a", "b"]}
            ])
        );
        // kubectl create clusterrole cr3 --verb=get,post --non-resource-url=/logs/*,/healthz
        assert_eq!(
            fixture(include_bytes!("testdata/clusterrole_nonresource.bin"))["rules"],
            json!([{"verbs": ["get", "post"], "nonResourceURLs": ["/logs/*", "/healthz"]}])
        );
        // kubectl create clusterrole cr4 --verb=get --resource=secrets --non-resource-url=/metrics
        assert_eq!(
            fixture(include_bytes!("testdata/clusterrole_mixed.bin"))["rules"],
            json!([
                {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]},
                {"verbs": ["get"], "nonResourceURLs": ["/metrics"]}
            ])
        );
        // kubectl create role r2 --verb='*' --resource='pods/*' -n ns1
        assert_eq!(
            fixture(include_bytes!("testdata/role_wildcard.bin")),
            json!({
                "kind": "Role", "apiVersion": "rbac.authorization.k8s.io/v1",
                "metadata": {"name": "r2", "namespace": "ns1", "creationTimestamp": null},
                "rules": [{"verbs": ["*"], "apiGroups": [""], "resources": ["pods/*"]}]
            })
        );
        // kubectl create rolebinding rb2 --clusterrole=view --group=g1 --group=g2
        //   --serviceaccount=ns2:sa2 --user=u -n ns1
        assert_eq!(
            fixture(include_bytes!("testdata/rolebinding_clusterrole.bin")),
            json!({
                "kind": "RoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
                "metadata": {"name": "rb2", "namespace": "ns1", "creationTimestamp": null},
                "subjects": [
                    {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "u"},
                    {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "g1"},
                    {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "g2"},
                    {"kind": "ServiceAccount", "name": "sa2", "namespace": "ns2"}
                ],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}
            })
        );
        // kubectl create clusterrolebinding crb2 --clusterrole=cr --group=g
        //   --serviceaccount=default:sa --user=u1 --user=u2
        assert_eq!(
            fixture(include_bytes!("testdata/clusterrolebinding_subjects.bin")),
            json!({
                "kind": "ClusterRoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
                "metadata": {"name": "crb2", "creationTimestamp": null},
                "subjects": [
                    {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "u1"},
                    {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "u2"},
                    {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "g"},
                    {"kind": "ServiceAccount", "name": "sa", "namespace": "default"}
                ],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cr"}
            })
        );
    }
}
