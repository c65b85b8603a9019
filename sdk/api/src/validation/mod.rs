//! Object validation as the Kubernetes API server performs it (k8s.io/apimachinery
//! `pkg/api/validation`, `pkg/util/validation`, and kubernetes `pkg/apis/{core,apps,batch}/validation`),
//! producing the causes of a 422 `Invalid` Status.
//!
//! This module holds the entry points ([`validate_create`], [`validate_update`]), the
//! per-kind dispatch, the [`Cause`] constructors and the JSON and Go-rendering helpers the
//! checks share. The checks themselves live by API group: `format` (string formats of
//! `pkg/util/validation`), `meta` (object metadata and label selectors), `pod` (pods and
//! pod templates), `core` (Service, ConfigMap, Secret, Namespace, Node), `apps` (workloads) and
//! `batch` (Job, CronJob).
//!
//! Invariants:
//! - Each [`Cause`] carries Kubernetes' `field` path, `reason` (the StatusCause type) and
//!   `message` (`field.Error.ErrorBody()`), so `Display` of a cause is `field.Error.Error()`.
//! - Bad values render as the API server of the kubectl-1.32 era renders them: strings quoted
//!   (Go `%q`), integers bare, maps/slices/selectors in Go `%#v` syntax; whole pod templates,
//!   which Go prints as huge struct dumps, render as compact JSON (what Kubernetes >= 1.34 prints).
//! - Validation runs on an object the server has already defaulted: fields Kubernetes
//!   defaults (restartPolicy, protocol, imagePullPolicy, ...) are only checked when present.
//! - Causes come in Kubernetes' order for one object; map keys are visited in JSON order.

mod apps;
mod batch;
mod core;
mod format;
mod meta;
mod pod;

pub use batch::time_zone;
pub use format::{
    is_config_map_key, is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_qualified_name,
    is_valid_label_value, is_valid_path_segment_name, is_valid_port_name,
};

use serde_json::{Map, Value};

use crate::selector::{aggregate, go_quote, go_string_slice};

/// One cause of an Invalid Status (`metav1.StatusCause`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Field path, e.g. `spec.template.spec.containers[0].image`.
    pub field: String,
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`, `FieldValueForbidden`,
    /// `FieldValueDuplicate`, `FieldValueTooLong`, `FieldValueNotFound` or `FieldValueTypeInvalid`.
    pub reason: &'static str,
    /// Full Kubernetes text without the field, e.g. `Required value`.
    pub message: String,
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// `schema.GroupKind.String()`: `Deployment.apps`, or `ConfigMap` for the core group.
pub fn qualified_kind(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

/// The Status message of `errors.NewInvalid`: `<kind> "<name>" is invalid: <causes>`, one cause
/// as `field: message`, several as `[c1, c2]` (duplicates dropped). Pass the qualified kind
/// (see [`qualified_kind`]) as `kind` to match Kubernetes for non-core groups.
pub fn invalid_message(kind: &str, name: &str, causes: &[Cause]) -> String {
    let errs: Vec<String> = causes.iter().map(ToString::to_string).collect();
    let agg = if errs.is_empty() {
        "<nil>".to_string()
    } else {
        aggregate(&errs)
    };
    format!("{kind} {} is invalid: {agg}", go_quote(name))
}

// ---------------------------------------------------------------------------
// Cause constructors (field.Required, field.Invalid, ...)
// ---------------------------------------------------------------------------

/// A rejected value, rendered as Go's field.Error renders `BadValue`.
enum Bad {
    Str(String),
    Int(i64),
    Bool(bool),
    /// Already rendered (Go `%#v` syntax, or JSON for pod templates).
    Raw(String),
}

impl Bad {
    fn render(&self) -> String {
        match self {
            Bad::Str(s) => go_quote(s),
            Bad::Int(i) => i.to_string(),
            Bad::Bool(b) => b.to_string(),
            Bad::Raw(s) => s.clone(),
        }
    }
}

fn s(v: &str) -> Bad {
    Bad::Str(v.to_string())
}

fn with_detail(head: String, detail: &str) -> String {
    if detail.is_empty() {
        head
    } else {
        format!("{head}: {detail}")
    }
}

fn required(field: &str, detail: &str) -> Cause {
    Cause {
        field: field.to_string(),
        reason: "FieldValueRequired",
        message: with_detail("Required value".into(), detail),
    }
}

fn forbidden(field: &str, detail: &str) -> Cause {
    Cause {
        field: field.to_string(),
        reason: "FieldValueForbidden",
        message: with_detail("Forbidden".into(), detail),
    }
}

fn invalid(field: &str, bad: Bad, detail: &str) -> Cause {
    Cause {
        field: field.to_string(),
        reason: "FieldValueInvalid",
        message: with_detail(format!("Invalid value: {}", bad.render()), detail),
    }
}

fn not_supported(field: &str, bad: Bad, valid: &[&str]) -> Cause {
    let quoted: Vec<String> = valid.iter().map(|v| go_quote(v)).collect();
    let detail = if valid.is_empty() {
        String::new()
    } else {
        format!("supported values: {}", quoted.join(", "))
    };
    Cause {
        field: field.to_string(),
        reason: "FieldValueNotSupported",
        message: with_detail(format!("Unsupported value: {}", bad.render()), &detail),
    }
}

fn duplicate(field: &str, bad: Bad) -> Cause {
    Cause {
        field: field.to_string(),
        reason: "FieldValueDuplicate",
        message: format!("Duplicate value: {}", bad.render()),
    }
}

fn not_found(field: &str, bad: Bad) -> Cause {
    Cause {
        field: field.to_string(),
        reason: "FieldValueNotFound",
        message: format!("Not found: {}", bad.render()),
    }
}

fn too_long(field: &str, max: usize) -> Cause {
    Cause {
        field: field.to_string(),
        reason: "FieldValueTooLong",
        message: format!("Too long: may not be more than {max} bytes"),
    }
}

fn child(p: &str, c: &str) -> String {
    if p.is_empty() {
        c.to_string()
    } else {
        format!("{p}.{c}")
    }
}

fn index(p: &str, i: usize) -> String {
    format!("{p}[{i}]")
}

fn key(p: &str, k: &str) -> String {
    format!("{p}[{k}]")
}

/// Invalid cause for a negative integer at `path` (`must be greater than or equal to 0`).
fn nonneg(c: &mut Vec<Cause>, obj: &Value, path: &[&str]) {
    if let Some(v) = int_at(obj, path).filter(|v| *v < 0) {
        c.push(invalid(
            &path.join("."),
            Bad::Int(v),
            "must be greater than or equal to 0",
        ));
    }
}

// ---------------------------------------------------------------------------
// JSON access and Go rendering helpers
// ---------------------------------------------------------------------------

/// The value at `path`, treating `null` as absent.
fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    if cur.is_null() { None } else { Some(cur) }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

fn int_at(v: &Value, path: &[&str]) -> Option<i64> {
    at(v, path).and_then(|x| x.as_i64().or_else(|| x.as_f64().map(|f| f as i64)))
}

fn arr_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn obj_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Map<String, Value>> {
    at(v, path).and_then(Value::as_object)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Go `%#v` of a `map[string]string` (keys sorted; absent = nil map).
fn go_map(m: Option<&Value>) -> String {
    match m.and_then(Value::as_object) {
        None => "map[string]string(nil)".to_string(),
        Some(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", go_quote(k), go_quote(&text(&o[k.as_str()]))))
                .collect();
            format!("map[string]string{{{}}}", items.join(", "))
        }
    }
}

/// Go `%#v` of a (dereferenced) `metav1.LabelSelector`; absent renders as Kubernetes' nil: `"null"`.
fn go_label_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return go_quote("null");
    };
    let exprs = match at(sel, &["matchExpressions"]).and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => {
            let items: Vec<String> = list
                .iter()
                .map(|e| {
                    let values = match at(e, &["values"]).and_then(Value::as_array) {
                        None => "[]string(nil)".to_string(),
                        Some(vs) => go_string_slice(&vs.iter().map(text).collect::<Vec<_>>()),
                    };
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{values}}}",
                        go_quote(str_at(e, &["key"])),
                        go_quote(str_at(e, &["operator"]))
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{exprs}}}",
        go_map(at(sel, &["matchLabels"]))
    )
}

/// Drop what Go's semantic equality ignores: nulls, empty strings/lists/maps, `false` and `0` members.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut out = Map::new();
            for (k, x) in o {
                let n = normalized(x);
                let zero = match &n {
                    Value::Null => true,
                    Value::Bool(b) => !b,
                    Value::String(s) => s.is_empty(),
                    Value::Number(num) => num.as_f64() == Some(0.0),
                    Value::Array(a) => a.is_empty(),
                    Value::Object(m) => m.is_empty(),
                };
                if !zero {
                    out.insert(k.clone(), n);
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

fn semantic_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    let n = |v: Option<&Value>| {
        normalized(&serde_json::json!({ "v": v.cloned().unwrap_or(Value::Null) }))
    };
    n(a) == n(b)
}

// ---------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------

/// Validate an object being created (after defaulting and name generation) as Kubernetes does.
/// `namespaced` says whether the kind is namespaced (then `metadata.namespace` is required).
pub fn validate_create(group: &str, kind: &str, namespaced: bool, obj: &Value) -> Vec<Cause> {
    let mut c = Vec::new();
    meta::validate_object_meta(&mut c, group, kind, namespaced, obj);
    validate_spec(&mut c, group, kind, obj, None);
    if (group, kind) == ("", "Pod") && !arr_at(obj, &["spec", "ephemeralContainers"]).is_empty() {
        c.push(forbidden(
            "spec.ephemeralContainers",
            "cannot be set on create",
        ));
    }
    c
}

/// Validate an update of `old` to `new` (both full objects, `new` already merged and defaulted).
pub fn validate_update(group: &str, kind: &str, old: &Value, new: &Value) -> Vec<Cause> {
    let mut c = Vec::new();
    meta::validate_object_meta_update(&mut c, group, old, new);
    match (group, kind) {
        ("", "Pod") => pod::validate_pod_update(&mut c, old, new),
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") => {
            validate_spec(&mut c, group, kind, new, Some(old));
            meta::selector_immutable(&mut c, old, new);
        }
        ("apps", "StatefulSet") => {
            validate_spec(&mut c, group, kind, new, Some(old));
            apps::validate_stateful_set_update(&mut c, old, new);
        }
        ("batch", "Job") => batch::validate_job_update(&mut c, old, new),
        ("", "Service") => core::validate_service_update(&mut c, old, new),
        ("", "ConfigMap") => core::validate_config_map_update(&mut c, old, new),
        ("", "Secret") => core::validate_secret_update(&mut c, old, new),
        ("", "Node") => {
            validate_spec(&mut c, group, kind, new, Some(old));
            core::validate_node_update(&mut c, old, new);
        }
        _ => validate_spec(&mut c, group, kind, new, Some(old)),
    }
    c
}

fn validate_spec(c: &mut Vec<Cause>, group: &str, kind: &str, obj: &Value, old: Option<&Value>) {
    match (group, kind) {
        ("", "Pod") => pod::validate_pod(c, obj, old.is_none()),
        ("", "Service") => core::validate_service(c, obj),
        ("", "ConfigMap") => core::validate_config_map(c, obj),
        ("", "Secret") => core::validate_secret(c, obj),
        ("", "Namespace") => core::validate_namespace(c, obj),
        ("", "Node") => core::validate_node(c, obj),
        ("apps", "Deployment" | "ReplicaSet") => apps::validate_replica_set_like(c, obj, kind),
        ("apps", "DaemonSet") => apps::validate_daemon_set(c, obj),
        ("apps", "StatefulSet") => apps::validate_stateful_set(c, obj),
        ("batch", "Job") => batch::validate_job(c, obj),
        ("batch", "CronJob") => batch::validate_cron_job(c, obj, old),
        _ => {}
    }
}

/// Fixtures the per-group tests share.
#[cfg(test)]
mod fixtures {
    use super::Cause;
    use serde_json::{Value, json};

    pub(super) const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    pub(super) const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

    pub(super) fn msgs(c: &[Cause]) -> Vec<String> {
        c.iter().map(ToString::to_string).collect()
    }

    pub(super) fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": spec})
    }

    pub(super) fn deployment(selector: Value, labels: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "default"},
               "spec": {"replicas": 1, "selector": selector,
                        "template": {"metadata": {"labels": labels},
                                     "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{SUBDOMAIN_MSG, msgs};
    use super::*;
    use serde_json::json;

    #[test]
    fn bad_name_message_matches_kubernetes() {
        let cm = json!({"metadata": {"name": "Bad_Name", "namespace": "default"}});
        let c = validate_create("", "ConfigMap", true, &cm);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "metadata.name");
        assert_eq!(c[0].reason, "FieldValueInvalid");
        assert_eq!(
            c[0].message,
            format!("Invalid value: \"Bad_Name\": {SUBDOMAIN_MSG}")
        );
        assert_eq!(
            invalid_message("ConfigMap", "Bad_Name", &c),
            format!(
                "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": {SUBDOMAIN_MSG}"
            )
        );
    }

    #[test]
    fn name_required_and_multiple_causes_are_bracketed() {
        let c = validate_create("", "ConfigMap", true, &json!({"metadata": {}}));
        assert_eq!(
            msgs(&c),
            vec![
                "metadata.name: Required value: name or generateName is required",
                "metadata.namespace: Required value"
            ]
        );
        assert_eq!(
            invalid_message("ConfigMap", "", &c),
            "ConfigMap \"\" is invalid: [metadata.name: Required value: name or generateName is required, metadata.namespace: Required value]"
        );
        assert_eq!(qualified_kind("apps", "Deployment"), "Deployment.apps");
        assert!(
            validate_create(
                "",
                "ConfigMap",
                true,
                &json!({"metadata": {"generateName": "web-", "namespace": "d"}})
            )
            .is_empty()
        );
        let c = validate_create(
            "",
            "ConfigMap",
            true,
            &json!({"metadata": {"generateName": "Web-", "namespace": "d"}}),
        );
        assert_eq!(c[0].field, "metadata.generateName");
    }

}
