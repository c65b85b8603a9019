//! `metav1` validation: object metadata on create and update (names per kind, labels,
//! annotations, finalizers, owner references, immutable identity) and label selectors
//! in specs, including whether a workload's selector matches its template.
//!
//! Invariant: names are checked by the kind's rule ([`name_fn`]); finalizers of
//! Kubernetes' own groups must also be standard or domain-qualified.

use serde_json::{Map, Value};
use std::collections::BTreeSet;

use super::format::{
    is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_qualified_name,
    is_valid_label_value, is_valid_path_segment_name, is_valid_path_segment_prefix,
};
use super::{
    Bad, Cause, arr_at, at, child, forbidden, go_label_selector, go_map, go_string_slice, index, int_at,
    invalid, obj_at, required, s, semantic_eq, str_at, text, too_long,
};

type NameFn = fn(&str) -> Vec<String>;

/// The kind's name check, and whether names are path segments (RBAC) rather than DNS names.
fn name_fn(group: &str, kind: &str) -> (NameFn, bool) {
    match (group, kind) {
        ("", "Namespace") | ("apps", "StatefulSet") => (is_dns1123_label, false),
        ("", "Service") => (is_dns1035_label, false),
        (
            "rbac.authorization.k8s.io",
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding",
        ) => (is_valid_path_segment_name, true),
        _ => (is_dns1123_subdomain, false),
    }
}

/// Prefix names may end in '-' (Kubernetes' `maskTrailingDash`, which replaces the last two bytes).
fn validate_name_prefix(f: NameFn, prefix: &str, path_segment: bool) -> Vec<String> {
    if path_segment {
        return is_valid_path_segment_prefix(prefix);
    }
    if prefix.ends_with('-') {
        let cut = prefix.len().saturating_sub(2);
        let masked = format!("{}a", prefix.get(..cut).unwrap_or(""));
        f(&masked)
    } else {
        f(prefix)
    }
}

/// Kubernetes' own API groups (their finalizers must be standard or domain-qualified).
fn is_builtin_group(group: &str) -> bool {
    !group.contains('.') || group.ends_with(".k8s.io")
}

pub(super) fn validate_labels(c: &mut Vec<Cause>, labels: Option<&Value>, path: &str) {
    let Some(labels) = labels.and_then(Value::as_object) else {
        return;
    };
    for (k, v) in labels {
        for m in is_qualified_name(k) {
            c.push(invalid(path, s(k), &m));
        }
        let v = text(v);
        for m in is_valid_label_value(&v) {
            c.push(invalid(path, Bad::Str(v.clone()), &m));
        }
    }
}

const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

pub(super) fn validate_annotations(c: &mut Vec<Cause>, ann: Option<&Value>, path: &str) {
    let Some(ann) = ann.and_then(Value::as_object) else {
        return;
    };
    let mut total = 0usize;
    for (k, v) in ann {
        for m in is_qualified_name(&k.to_lowercase()) {
            c.push(invalid(path, s(k), &m));
        }
        total += k.len() + text(v).len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        c.push(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
}

fn is_standard_finalizer(f: &str) -> bool {
    matches!(f, "kubernetes" | "orphan" | "foregroundDeletion")
}

fn validate_finalizers(c: &mut Vec<Cause>, list: &[Value], path: &str) {
    let names: Vec<String> = list.iter().map(text).collect();
    for f in &names {
        for m in is_qualified_name(f) {
            c.push(invalid(path, s(f), &m));
        }
    }
    if names.iter().any(|f| f == "orphan") && names.iter().any(|f| f == "foregroundDeletion") {
        c.push(invalid(
            path,
            Bad::Raw(go_string_slice(&names)),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
}

pub(super) fn validate_kube_finalizers(c: &mut Vec<Cause>, list: &[Value], path: &str, indexed: bool) {
    for (i, f) in list.iter().map(text).enumerate() {
        if !f.contains('/') && !is_standard_finalizer(&f) {
            let p = if indexed {
                index(path, i)
            } else {
                path.to_string()
            };
            c.push(invalid(
                &p,
                s(&f),
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
}

fn validate_owner_references(c: &mut Vec<Cause>, refs: &[Value], path: &str) {
    for r in refs {
        let api_version = str_at(r, &["apiVersion"]);
        let version = api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            c.push(invalid(
                &child(path, "apiVersion"),
                s(api_version),
                "version must not be empty",
            ));
        }
        for f in ["kind", "name", "uid"] {
            if str_at(r, &[f]).is_empty() {
                c.push(invalid(&child(path, f), s(""), "must not be empty"));
            }
        }
    }
}

/// Metadata checks shared by create and update (labels, annotations, owners, finalizers).
fn validate_meta_common(c: &mut Vec<Cause>, meta: &Value) {
    if let Some(g) = int_at(meta, &["generation"]).filter(|g| *g < 0) {
        c.push(invalid(
            "metadata.generation",
            Bad::Int(g),
            "must be greater than or equal to 0",
        ));
    }
    validate_labels(c, at(meta, &["labels"]), "metadata.labels");
    validate_annotations(c, at(meta, &["annotations"]), "metadata.annotations");
    validate_owner_references(
        c,
        arr_at(meta, &["ownerReferences"]),
        "metadata.ownerReferences",
    );
    validate_finalizers(c, arr_at(meta, &["finalizers"]), "metadata.finalizers");
}

pub(super) fn validate_object_meta(
    c: &mut Vec<Cause>,
    group: &str,
    kind: &str,
    namespaced: bool,
    obj: &Value,
) {
    let empty = Value::Object(Map::new());
    let meta = at(obj, &["metadata"]).unwrap_or(&empty);
    let (f, path_segment) = name_fn(group, kind);
    let name = str_at(meta, &["name"]);
    let generate = str_at(meta, &["generateName"]);
    if !generate.is_empty() {
        for m in validate_name_prefix(f, generate, path_segment) {
            c.push(invalid("metadata.generateName", s(generate), &m));
        }
    }
    if name.is_empty() {
        if generate.is_empty() {
            c.push(required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else {
        for m in f(name) {
            c.push(invalid("metadata.name", s(name), &m));
        }
    }
    if namespaced {
        let ns = str_at(meta, &["namespace"]);
        if ns.is_empty() {
            c.push(required("metadata.namespace", ""));
        } else {
            for m in is_dns1123_label(ns) {
                c.push(invalid("metadata.namespace", s(ns), &m));
            }
        }
    }
    validate_meta_common(c, meta);
    if is_builtin_group(group) {
        validate_kube_finalizers(
            c,
            arr_at(meta, &["finalizers"]),
            "metadata.finalizers",
            true,
        );
    }
}

pub(super) fn validate_object_meta_update(c: &mut Vec<Cause>, group: &str, old: &Value, new: &Value) {
    let empty = Value::Object(Map::new());
    let om = at(old, &["metadata"]).unwrap_or(&empty);
    let nm = at(new, &["metadata"]).unwrap_or(&empty);
    if at(om, &["deletionTimestamp"]).is_some() {
        let old_f: BTreeSet<String> = arr_at(om, &["finalizers"]).iter().map(text).collect();
        let extra: BTreeSet<String> = arr_at(nm, &["finalizers"])
            .iter()
            .map(text)
            .filter(|f| !old_f.contains(f))
            .collect();
        if !extra.is_empty() {
            let list: Vec<String> = extra.into_iter().collect();
            c.push(forbidden(
                "metadata.finalizers",
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers {}",
                    go_string_slice(&list)
                ),
            ));
        }
    }
    if let (Some(o), Some(n)) = (int_at(om, &["generation"]), int_at(nm, &["generation"]))
        && n < o
    {
        c.push(invalid(
            "metadata.generation",
            Bad::Int(n),
            "must not be decremented",
        ));
    }
    for f in ["name", "namespace", "uid"] {
        let (o, n) = (str_at(om, &[f]), str_at(nm, &[f]));
        if o != n {
            c.push(invalid(
                &format!("metadata.{f}"),
                s(n),
                "field is immutable",
            ));
        }
    }
    validate_meta_common(c, nm);
    if is_builtin_group(group) {
        validate_kube_finalizers(c, arr_at(nm, &["finalizers"]), "metadata.finalizers", true);
    }
}

// ---------------------------------------------------------------------------
// Label selectors in specs (metav1 validation), and workloads' selectors of their templates
// ---------------------------------------------------------------------------

pub(super) fn validate_label_selector(c: &mut Vec<Cause>, sel: &Value, path: &str) {
    validate_labels(c, at(sel, &["matchLabels"]), &child(path, "matchLabels"));
    for (i, e) in arr_at(sel, &["matchExpressions"]).iter().enumerate() {
        let p = index(&child(path, "matchExpressions"), i);
        let values = arr_at(e, &["values"]);
        let op = str_at(e, &["operator"]);
        match op {
            "In" | "NotIn" => {
                if values.is_empty() {
                    c.push(required(
                        &child(&p, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    c.push(forbidden(
                        &child(&p, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            _ => c.push(invalid(
                &child(&p, "operator"),
                s(op),
                "not a valid selector operator",
            )),
        }
        let k = str_at(e, &["key"]);
        for m in is_qualified_name(k) {
            c.push(invalid(&child(&p, "key"), s(k), &m));
        }
        for (j, v) in values.iter().map(text).enumerate() {
            for m in is_valid_label_value(&v) {
                c.push(invalid(
                    &index(&child(&p, "values"), j),
                    Bad::Str(v.clone()),
                    &m,
                ));
            }
        }
    }
}

pub(super) fn selector_is_empty(sel: &Value) -> bool {
    obj_at(sel, &["matchLabels"]).is_none_or(Map::is_empty)
        && arr_at(sel, &["matchExpressions"]).is_empty()
}

/// Invalid cause for template labels the selector does not match.
pub(super) fn template_mismatch(tmpl: Option<&Value>, path: &str) -> Cause {
    invalid(
        &child(path, "metadata.labels"),
        Bad::Raw(go_map(tmpl.and_then(|t| at(t, &["metadata", "labels"])))),
        "`selector` does not match template `labels`",
    )
}

pub(super) fn template_labels(tmpl: Option<&Value>) -> Option<&Map<String, Value>> {
    tmpl.and_then(|t| obj_at(t, &["metadata", "labels"]))
}

/// Invalid cause when an update changes `spec.selector` (workloads and Jobs).
pub(super) fn selector_immutable(c: &mut Vec<Cause>, old: &Value, new: &Value) {
    let (o, n) = (
        at(old, &["spec", "selector"]),
        at(new, &["spec", "selector"]),
    );
    if !semantic_eq(o, n) {
        c.push(invalid(
            "spec.selector",
            Bad::Raw(go_label_selector(n)),
            "field is immutable",
        ));
    }
}
#[cfg(test)]
mod tests {
    use super::super::fixtures::{LABEL_MSG, deployment, msgs};
    use super::super::{validate_create, validate_update};
    use super::*;
    use serde_json::json;

    #[test]
    fn name_rules_per_kind() {
        let ns = validate_create(
            "",
            "Namespace",
            false,
            &json!({"metadata": {"name": "a.b"}}),
        );
        assert_eq!(
            msgs(&ns),
            vec!["metadata.name: Invalid value: \"a.b\": must not contain dots"]
        );
        let ns = validate_create("", "Namespace", false, &json!({"metadata": {"name": "A"}}));
        assert_eq!(
            msgs(&ns),
            vec![format!("metadata.name: Invalid value: \"A\": {LABEL_MSG}")]
        );
        let svc = validate_create(
            "",
            "Service",
            true,
            &json!({"metadata": {"name": "1web", "namespace": "d"},
            "spec": {"ports": [{"port": 80}]}}),
        );
        assert_eq!(
            msgs(&svc),
            vec![
                "metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
            ]
        );
        let role = validate_create(
            "rbac.authorization.k8s.io",
            "ClusterRole",
            false,
            &json!({"metadata": {"name": "system:a/b%"}}),
        );
        assert_eq!(
            msgs(&role),
            vec![
                "metadata.name: Invalid value: \"system:a/b%\": may not contain '/'",
                "metadata.name: Invalid value: \"system:a/b%\": may not contain '%'"
            ]
        );
        assert!(
            validate_create(
                "rbac.authorization.k8s.io",
                "ClusterRole",
                false,
                &json!({"metadata": {"name": "system:x"}})
            )
            .is_empty()
        );
        let long = "a".repeat(254);
        let c = validate_create(
            "",
            "ConfigMap",
            true,
            &json!({"metadata": {"name": long, "namespace": "d"}}),
        );
        assert_eq!(
            c[0].message,
            format!("Invalid value: \"{long}\": must be no more than 253 characters")
        );
    }

    #[test]
    fn labels_annotations_finalizers() {
        let cm = json!({"metadata": {"name": "x", "namespace": "d",
            "labels": {"bad key": "ok", "app": "bad value!"},
            "annotations": {"a/b/c": "x"},
            "finalizers": ["example.com/f", "plain"]}});
        let c = validate_create("", "ConfigMap", true, &cm);
        assert_eq!(msgs(&c), vec![
            "metadata.labels: Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_string(),
            "metadata.labels: Invalid value: \"bad value!\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string(),
            "metadata.annotations: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".to_string(),
            "metadata.finalizers[1]: Invalid value: \"plain\": name is neither a standard finalizer name nor is it fully qualified".to_string(),
        ]);
        // Custom resources may use any qualified finalizer name.
        assert!(
            validate_create(
                "example.com",
                "Widget",
                true,
                &json!({"metadata": {"name": "w", "namespace": "d", "finalizers": ["plain"]}})
            )
            .is_empty()
        );
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
        let c = validate_create(
            "",
            "ConfigMap",
            true,
            &json!({"metadata": {"name": "x", "namespace": "d", "annotations": {"k": big}}}),
        );
        assert_eq!(
            msgs(&c),
            vec!["metadata.annotations: Too long: may not be more than 262144 bytes"]
        );
        assert_eq!(c[0].reason, "FieldValueTooLong");
        let c = validate_create(
            "",
            "ConfigMap",
            true,
            &json!({"metadata": {"name": "x", "namespace": "d", "finalizers": ["orphan", "foregroundDeletion"]}}),
        );
        assert_eq!(
            msgs(&c),
            vec![
                "metadata.finalizers: Invalid value: []string{\"orphan\", \"foregroundDeletion\"}: finalizer orphan and foregroundDeletion cannot be both set"
            ]
        );
    }

    #[test]
    fn metadata_identity_is_immutable() {
        let old = json!({"metadata": {"name": "a", "namespace": "d", "uid": "1"}});
        let new = json!({"metadata": {"name": "b", "namespace": "d", "uid": "2"}});
        let c = validate_update("", "ConfigMap", &old, &new);
        assert_eq!(
            msgs(&c),
            vec![
                "metadata.name: Invalid value: \"b\": field is immutable",
                "metadata.uid: Invalid value: \"2\": field is immutable",
            ]
        );
        let deleting = json!({"metadata": {"name": "a", "namespace": "d", "deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["a.io/x"]}});
        let more = json!({"metadata": {"name": "a", "namespace": "d", "deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["a.io/x", "b.io/y"]}});
        assert_eq!(
            msgs(&validate_update("", "ConfigMap", &deleting, &more)),
            vec![
                "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"b.io/y\"}"
            ]
        );
    }

    #[test]
    fn label_selector_expressions_validated() {
        let d = deployment(
            json!({"matchExpressions": [{"key": "app", "operator": "In"},
                                                       {"key": "x", "operator": "Exists", "values": ["a"]}]}),
            json!({"app": "a"}),
        );
        let c = validate_create("apps", "Deployment", true, &d);
        assert_eq!(msgs(&c)[..2], [
            "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'".to_string(),
            "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'".to_string(),
        ]);
    }

}
