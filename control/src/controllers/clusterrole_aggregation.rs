//! ClusterRole aggregation (kube-controller-manager's clusterrole-aggregation controller):
//! a ClusterRole with an `aggregationRule` has as rules the union of the rules of every
//! other ClusterRole matching any of its `clusterRoleSelectors`.
//!
//! Invariants: `plan` is pure and its order stable, Kubernetes' (selectors in order, the
//! matching roles by name, their rules in order, each distinct rule once), so a role
//! already right is never rewritten. Roles aggregating roles that aggregate (admin ← edit
//! ← view) are planned to their fixed point in one pass, using the rules planned for the
//! others rather than the stored ones. A selector that does not parse makes its role keep
//! its rules, as Kubernetes skips such a role.

use std::collections::HashMap;

use flotilla_api::selector::LabelSelector;
use serde_json::Value;

use super::objects::{self, ignore_transient, name};
use crate::apiserver::Api;
use crate::apiserver::error::ApiError;
use crate::apiserver::rbac::PolicyRule;
use crate::apiserver::service::{Part, WriteOptions};

/// Write the ClusterRole `name`'s rules as `rules`.
#[derive(Debug, PartialEq)]
pub(crate) struct Step {
    pub name: String,
    pub rules: Vec<Value>,
}

fn rules_of(role: &Value) -> Vec<PolicyRule> {
    PolicyRule::list_from_json(role)
}

/// The selectors of an aggregating role; None if it does not aggregate or one selector
/// does not parse.
fn selectors(role: &Value) -> Option<Vec<LabelSelector>> {
    let s = role["aggregationRule"]["clusterRoleSelectors"].as_array()?;
    if s.is_empty() {
        return None;
    }
    s.iter().map(|s| LabelSelector::from_label_selector_json(s).ok()).collect()
}

/// Pure: the rules each aggregating ClusterRole among `roles` should have, where they differ.
pub(crate) fn plan(roles: &[&Value]) -> Vec<Step> {
    let mut by_name: Vec<&Value> = roles.to_vec();
    by_name.sort_by(|a, b| name(a).cmp(name(b)));
    let aggregating: Vec<(&str, Vec<LabelSelector>)> = by_name.iter().filter_map(|r| Some((name(r), selectors(r)?))).collect();
    let mut rules: HashMap<&str, Vec<PolicyRule>> = by_name.iter().map(|r| (name(r), rules_of(r))).collect();
    // Each round settles at least one more level of nesting; cycles stop at the bound.
    for _ in 0..=aggregating.len() {
        let mut changed = false;
        for (target, sels) in &aggregating {
            let mut union: Vec<PolicyRule> = Vec::new();
            for sel in sels {
                for r in by_name.iter().filter(|r| name(r) != *target && sel.matches(objects::labels(r))) {
                    for rule in &rules[name(r)] {
                        if !union.contains(rule) {
                            union.push(rule.clone());
                        }
                    }
                }
            }
            if rules[target] != union {
                rules.insert(target, union);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    by_name
        .iter()
        .filter(|r| selectors(r).is_some() && rules[name(r)] != rules_of(r))
        .map(|r| Step { name: name(r).to_string(), rules: rules[name(r)].iter().map(PolicyRule::to_json).collect() })
        .collect()
}

// ---- executor ----

pub(crate) async fn reconcile_all(api: &Api, keyed: &[crate::store::Keyed]) -> Result<(), ApiError> {
    let info = objects::info("rbac.authorization.k8s.io", "clusterroles");
    let prefix = format!("{}/", info.store_prefix());
    let roles: Vec<&Value> = keyed.iter().filter(|(k, _)| k.starts_with(&prefix)).map(|(_, s)| &s.value).collect();
    let opts = WriteOptions { field_manager: "clusterrole-aggregation-controller".into(), ..Default::default() };
    for step in plan(&roles) {
        let Some(current) = roles.iter().find(|r| name(r) == step.name) else { continue };
        let mut updated = (*current).clone();
        updated["rules"] = Value::Array(step.rules);
        tracing::debug!(clusterrole = %step.name, "aggregating rules");
        ignore_transient(api.update(info, None, &step.name, updated, Part::Main, &opts).await)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn role(name: &str, labels: Value, aggregates: Option<Value>, rules: Value) -> Value {
        let mut r = json!({"kind": "ClusterRole", "metadata": {"name": name, "labels": labels}, "rules": rules});
        if let Some(sel) = aggregates {
            r["aggregationRule"] = json!({"clusterRoleSelectors": sel});
        }
        r
    }

    fn r(verb: &str, resource: &str) -> Value {
        json!({"verbs": [verb], "apiGroups": [""], "resources": [resource]})
    }

    #[test]
    fn plan_cases() {
        let agg = |label: &str| Some(json!([{"matchLabels": {label: "true"}}]));
        let cases: Vec<(&str, Vec<Value>, Vec<Step>)> = vec![
            ("no aggregating role: nothing to do", vec![role("a", json!({"x": "true"}), None, json!([r("get", "pods")]))], vec![]),
            (
                "union of the matching roles, by name, each rule once, itself excluded",
                vec![
                    role("agg", json!({"x": "true"}), agg("x"), json!(null)),
                    role("b", json!({"x": "true"}), None, json!([r("list", "pods"), r("get", "pods")])),
                    role("a", json!({"x": "true"}), None, json!([r("get", "pods")])),
                    role("c", json!({"y": "true"}), None, json!([r("get", "secrets")])),
                ],
                vec![Step { name: "agg".into(), rules: vec![r("get", "pods"), r("list", "pods")] }],
            ),
            (
                "already aggregated: nothing written",
                vec![role("agg", json!({}), agg("x"), json!([r("get", "pods")])), role("a", json!({"x": "true"}), None, json!([r("get", "pods")]))],
                vec![],
            ),
            (
                "a matching role gone: its rules go",
                vec![role("agg", json!({}), agg("x"), json!([r("get", "pods")]))],
                vec![Step { name: "agg".into(), rules: vec![] }],
            ),
            (
                "nested aggregation settles in one plan (admin <- edit <- view)",
                vec![
                    role("admin", json!({}), agg("to-admin"), json!(null)),
                    role("edit", json!({"to-admin": "true"}), agg("to-edit"), json!(null)),
                    role("view", json!({"to-edit": "true"}), agg("to-view"), json!(null)),
                    role("v", json!({"to-view": "true"}), None, json!([r("get", "pods")])),
                    role("e", json!({"to-edit": "true"}), None, json!([r("create", "pods")])),
                ],
                vec![
                    Step { name: "admin".into(), rules: vec![r("create", "pods"), r("get", "pods")] },
                    Step { name: "edit".into(), rules: vec![r("create", "pods"), r("get", "pods")] },
                    Step { name: "view".into(), rules: vec![r("get", "pods")] },
                ],
            ),
            (
                "selectors in order, then roles by name",
                vec![
                    role("agg", json!({}), Some(json!([{"matchLabels": {"y": "true"}}, {"matchLabels": {"x": "true"}}])), json!(null)),
                    role("a", json!({"x": "true"}), None, json!([r("get", "a")])),
                    role("b", json!({"y": "true"}), None, json!([r("get", "b")])),
                ],
                vec![Step { name: "agg".into(), rules: vec![r("get", "b"), r("get", "a")] }],
            ),
        ];
        for (what, roles, want) in cases {
            let refs: Vec<&Value> = roles.iter().collect();
            assert_eq!(plan(&refs), want, "{what}");
        }
    }

    #[test]
    fn bootstrap_roles_are_already_aggregated() {
        let objects = crate::apiserver::rbac::bootstrap_objects();
        let roles: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "ClusterRole").collect();
        assert_eq!(plan(&roles), vec![], "the controller has nothing to change in the bootstrap set");
    }
}
