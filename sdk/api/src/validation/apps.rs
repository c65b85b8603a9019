//! `apps/v1` workload validation: Deployment, ReplicaSet, DaemonSet and StatefulSet specs
//! (selectors, templates, counts, strategies) and what a StatefulSet update may change.
//!
//! Invariant: pods of these workloads always restart (`restartPolicy: Always`, no
//! `activeDeadlineSeconds`); the selector must select the template's labels.

use serde_json::{Map, Value};

use super::meta::{
    selector_is_empty, template_labels, template_mismatch, validate_annotations, validate_label_selector,
    validate_labels,
};
use super::pod::validate_pod_template;
use super::{
    Bad, Cause, at, forbidden, go_label_selector, int_at, invalid, nonneg, not_supported, required,
    semantic_eq, str_at, text,
};
use crate::selector::LabelSelector;

/// `spec.selector` of a workload: required, valid, not empty (`empty selector is invalid
/// for {kind_word}`) and selecting the template's labels. Returns the template and whether
/// the selector could be parsed (`unparsable` is the detail when not).
fn required_selector_of_template<'a>(c: &mut Vec<Cause>, obj: &'a Value, kind_word: &str, unparsable: &str) -> (Option<&'a Value>, bool) {
    let sel = at(obj, &["spec", "selector"]);
    match sel {
        None => c.push(required("spec.selector", "")),
        Some(sv) => {
            validate_label_selector(c, sv, "spec.selector");
            if selector_is_empty(sv) {
                c.push(invalid(
                    "spec.selector",
                    Bad::Raw(go_label_selector(sel)),
                    &format!("empty selector is invalid for {kind_word}"),
                ));
            }
        }
    }
    let tmpl = at(obj, &["spec", "template"]);
    match LabelSelector::from_label_selector_json(sel.unwrap_or(&Value::Null)) {
        Err(_) => {
            c.push(invalid("spec.selector", Bad::Raw(go_label_selector(sel)), unparsable));
            (tmpl, false)
        }
        Ok(selector) => {
            if !selector.is_empty() && !selector.matches(template_labels(tmpl)) {
                c.push(template_mismatch(tmpl, "spec.template"));
            }
            (tmpl, true)
        }
    }
}

/// Pods of long-running workloads: restartPolicy Always only, no activeDeadlineSeconds
/// (`activeDeadlineSeconds in {kind} is not Supported`).
fn always_restarting_template(c: &mut Vec<Cause>, tmpl: Option<&Value>, kind: &str) {
    if let Some(rp) = tmpl
        .and_then(|t| at(t, &["spec", "restartPolicy"]))
        .map(text)
        .filter(|r| r != "Always")
    {
        c.push(not_supported(
            "spec.template.spec.restartPolicy",
            Bad::Str(rp),
            &["Always"],
        ));
    }
    if tmpl
        .and_then(|t| at(t, &["spec", "activeDeadlineSeconds"]))
        .is_some()
    {
        c.push(forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            &format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
}

/// Selector plus template checks for Deployment and ReplicaSet.
pub(super) fn validate_replica_set_like(c: &mut Vec<Cause>, obj: &Value, what: &str) {
    nonneg(c, obj, &["spec", "replicas"]);
    if what != "Deployment" {
        nonneg(c, obj, &["spec", "minReadySeconds"]);
    }
    let (tmpl, parsed) = required_selector_of_template(c, obj, "deployment", "invalid label selector");
    if parsed {
        let empty = Value::Object(Map::new());
        validate_pod_template(c, tmpl.unwrap_or(&empty), "spec.template");
        // Kubernetes says ReplicaSet here for Deployments too.
        always_restarting_template(c, Some(tmpl.unwrap_or(&empty)), "ReplicaSet");
    }
    if what == "Deployment" {
        if str_at(obj, &["spec", "strategy", "type"]) == "Recreate"
            && at(obj, &["spec", "strategy", "rollingUpdate"]).is_some()
        {
            c.push(forbidden(
                "spec.strategy.rollingUpdate",
                "may not be specified when strategy `type` is 'Recreate'",
            ));
        }
        nonneg(c, obj, &["spec", "minReadySeconds"]);
        nonneg(c, obj, &["spec", "revisionHistoryLimit"]);
        if let Some(pds) = int_at(obj, &["spec", "progressDeadlineSeconds"]) {
            nonneg(c, obj, &["spec", "progressDeadlineSeconds"]);
            if pds <= int_at(obj, &["spec", "minReadySeconds"]).unwrap_or(0) {
                c.push(invalid(
                    "spec.progressDeadlineSeconds",
                    Bad::Int(pds),
                    "must be greater than minReadySeconds",
                ));
            }
        }
    }
}

pub(super) fn validate_daemon_set(c: &mut Vec<Cause>, obj: &Value) {
    let sel = at(obj, &["spec", "selector"]);
    if let Some(sv) = sel {
        validate_label_selector(c, sv, "spec.selector");
    }
    let tmpl = at(obj, &["spec", "template"]);
    if let Ok(selector) = LabelSelector::from_label_selector_json(sel.unwrap_or(&Value::Null))
        && !selector.matches(template_labels(tmpl))
    {
        c.push(template_mismatch(tmpl, "spec.template"));
    }
    if let Some(sv) = sel.filter(|sv| selector_is_empty(sv)) {
        c.push(invalid(
            "spec.selector",
            Bad::Raw(go_label_selector(Some(sv))),
            "empty selector is invalid for daemonset",
        ));
    }
    let empty = Value::Object(Map::new());
    let t = tmpl.unwrap_or(&empty);
    validate_pod_template(c, t, "spec.template");
    always_restarting_template(c, Some(t), "DaemonSet");
    nonneg(c, obj, &["spec", "minReadySeconds"]);
    nonneg(c, obj, &["spec", "revisionHistoryLimit"]);
}

pub(super) fn validate_stateful_set(c: &mut Vec<Cause>, obj: &Value) {
    if let Some(pmp) = at(obj, &["spec", "podManagementPolicy"]).map(text) {
        match pmp.as_str() {
            "OrderedReady" | "Parallel" => {}
            "" => c.push(required("spec.podManagementPolicy", "")),
            _ => c.push(invalid(
                "spec.podManagementPolicy",
                Bad::Str(pmp),
                "must be 'OrderedReady' or 'Parallel'",
            )),
        }
    }
    nonneg(c, obj, &["spec", "replicas"]);
    nonneg(c, obj, &["spec", "minReadySeconds"]);
    let (tmpl, parsed) = required_selector_of_template(c, obj, "statefulset", "");
    if parsed {
        // Kubernetes checks only the template's labels and annotations for StatefulSets.
        validate_labels(
            c,
            tmpl.and_then(|t| at(t, &["metadata", "labels"])),
            "spec.template.labels",
        );
        validate_annotations(
            c,
            tmpl.and_then(|t| at(t, &["metadata", "annotations"])),
            "spec.template.annotations",
        );
    }
    always_restarting_template(c, tmpl, "StatefulSet");
}
/// What a StatefulSet update may change besides what [`validate_stateful_set`] checks:
/// only replicas, ordinals, template, updateStrategy, the PVC retention policy and minReadySeconds.
pub(super) fn validate_stateful_set_update(c: &mut Vec<Cause>, old: &Value, new: &Value) {
    let strip = |v: &Value| {
        let mut spec = at(v, &["spec"]).cloned().unwrap_or(Value::Null);
        if let Some(o) = spec.as_object_mut() {
            for f in [
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ] {
                o.remove(f);
            }
        }
        spec
    };
    if !semantic_eq(Some(&strip(new)), Some(&strip(old))) {
        c.push(forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{deployment, msgs};
    use super::super::{invalid_message, qualified_kind, validate_create, validate_update};
    use serde_json::json;

    #[test]
    fn deployment_selector_rules() {
        let ok = deployment(
            json!({"matchLabels": {"app": "web"}}),
            json!({"app": "web"}),
        );
        assert!(validate_create("apps", "Deployment", true, &ok).is_empty());
        let c = validate_create(
            "apps",
            "Deployment",
            true,
            &deployment(
                json!({"matchLabels": {"app": "web"}}),
                json!({"app": "api", "tier": "x"}),
            ),
        );
        assert_eq!(
            msgs(&c),
            vec![
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"api\", \"tier\":\"x\"}: `selector` does not match template `labels`"
            ]
        );
        let mut missing = deployment(json!(null), json!({"app": "nginx"}));
        missing["spec"].as_object_mut().unwrap().remove("selector");
        missing["spec"]["replicas"] = json!(-1);
        let c = validate_create("apps", "Deployment", true, &missing);
        assert_eq!(
            msgs(&c),
            vec![
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.selector: Required value",
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"nginx\"}: `selector` does not match template `labels`",
            ]
        );
        assert_eq!(
            invalid_message(&qualified_kind("apps", "Deployment"), "web", &c[1..]),
            "Deployment.apps \"web\" is invalid: [spec.selector: Required value, spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"nginx\"}: `selector` does not match template `labels`]"
        );
        let c = validate_create(
            "apps",
            "Deployment",
            true,
            &deployment(json!({}), json!({"app": "x"})),
        );
        assert_eq!(
            msgs(&c),
            vec![
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"
            ]
        );
        let c = validate_create(
            "apps",
            "ReplicaSet",
            true,
            &deployment(
                json!({"matchExpressions": [{"key": "app", "operator": "Has"}]}),
                json!({"app": "x"}),
            ),
        );
        assert_eq!(
            msgs(&c),
            vec![
                "spec.selector.matchExpressions[0].operator: Invalid value: \"Has\": not a valid selector operator",
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:\"app\", Operator:\"Has\", Values:[]string(nil)}}}: invalid label selector",
            ]
        );
    }

    #[test]
    fn deployment_template_is_a_pod() {
        let mut d = deployment(
            json!({"matchLabels": {"app": "web"}}),
            json!({"app": "web"}),
        );
        d["spec"]["template"]["spec"] =
            json!({"restartPolicy": "Never", "containers": [{"name": "c"}]});
        let c = validate_create("apps", "Deployment", true, &d);
        assert_eq!(
            msgs(&c),
            vec![
                "spec.template.spec.containers[0].image: Required value",
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            ]
        );
    }

    #[test]
    fn workload_selector_is_immutable() {
        let old = deployment(json!({"matchLabels": {"app": "a"}}), json!({"app": "a"}));
        let new = deployment(json!({"matchLabels": {"app": "b"}}), json!({"app": "b"}));
        let c = validate_update("apps", "Deployment", &old, &new);
        assert_eq!(
            msgs(&c),
            vec![
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"b\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
            ]
        );
        let mut scaled = old.clone();
        scaled["spec"]["replicas"] = json!(5);
        assert!(validate_update("apps", "Deployment", &old, &scaled).is_empty());
        let mut ds_old = old.clone();
        ds_old["kind"] = json!("DaemonSet");
        let mut ds_new = new.clone();
        ds_new["kind"] = json!("DaemonSet");
        assert_eq!(
            validate_update("apps", "DaemonSet", &ds_old, &ds_new).len(),
            1
        );
    }

    #[test]
    fn statefulset_rules() {
        let mut sts = deployment(json!({"matchLabels": {"app": "db"}}), json!({"app": "db"}));
        sts["kind"] = json!("StatefulSet");
        sts["metadata"]["name"] = json!("db.v1");
        sts["spec"]["podManagementPolicy"] = json!("Random");
        let c = validate_create("apps", "StatefulSet", true, &sts);
        assert_eq!(
            msgs(&c),
            vec![
                "metadata.name: Invalid value: \"db.v1\": must not contain dots",
                "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'",
            ]
        );
        let old = deployment(json!({"matchLabels": {"app": "db"}}), json!({"app": "db"}));
        let mut new = old.clone();
        new["spec"]["serviceName"] = json!("other");
        new["spec"]["replicas"] = json!(3);
        assert_eq!(
            msgs(&validate_update("apps", "StatefulSet", &old, &new)),
            vec![
                "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
            ]
        );
    }

}
