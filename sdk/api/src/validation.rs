//! Object validation as the Kubernetes API server performs it (k8s.io/apimachinery
//! `pkg/api/validation`, `pkg/util/validation`, and kubernetes `pkg/apis/{core,apps,batch}/validation`),
//! producing the causes of a 422 `Invalid` Status.
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

use serde_json::{Map, Value};
use std::collections::BTreeSet;

use crate::selector::{LabelSelector, aggregate, go_quote, go_string_slice};

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

// ---------------------------------------------------------------------------
// Format checks (k8s.io/apimachinery/pkg/util/validation); each returns messages
// ---------------------------------------------------------------------------

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_FMT: &str =
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const CONFIG_KEY_FMT: &str = "[-._a-zA-Z0-9]+";

/// `validation.RegexError`.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut out = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{e}', "));
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn is_alnum_lower(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn matches_dns1123_label(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && is_alnum_lower(b[0])
        && is_alnum_lower(b[b.len() - 1])
        && b.iter().all(|&c| is_alnum_lower(c) || c == b'-')
}

fn matches_dns1123_subdomain(v: &str) -> bool {
    v.split('.').all(matches_dns1123_label)
}

fn matches_qualified_name_part(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `IsDNS1123Label`: lowercase RFC 1123 label, at most 63 characters.
pub fn is_dns1123_label(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !matches_dns1123_label(v) {
        if matches_dns1123_subdomain(v) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// `IsDNS1123Subdomain`: lowercase RFC 1123 subdomain, at most 253 characters.
pub fn is_dns1123_subdomain(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 253 {
        errs.push(max_len_error(253));
    }
    if !matches_dns1123_subdomain(v) {
        errs.push(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// `IsDNS1035Label`: starts with a letter, at most 63 characters (Service names).
pub fn is_dns1035_label(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push(max_len_error(63));
    }
    let b = v.as_bytes();
    let ok = !b.is_empty()
        && b[0].is_ascii_lowercase()
        && is_alnum_lower(b[b.len() - 1])
        && b.iter().all(|&c| is_alnum_lower(c) || c == b'-');
    if !ok {
        errs.push(regex_error(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// `IsQualifiedName`: label keys, annotation keys, finalizers (`[prefix/]name`).
pub fn is_qualified_name(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = v.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !matches_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// `IsValidLabelValue`: empty, or a qualified-name part of at most 63 characters.
pub fn is_valid_label_value(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !v.is_empty() && !matches_qualified_name_part(v) {
        errs.push(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// `IsConfigMapKey`: keys of ConfigMap and Secret data.
pub fn is_config_map_key(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 253 {
        errs.push(max_len_error(253));
    }
    let ok = !v.is_empty()
        && v.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'));
    if !ok {
        errs.push(regex_error(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            CONFIG_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    if v == "." {
        errs.push("must not be '.'".to_string());
    } else if v == ".." {
        errs.push("must not be '..'".to_string());
    } else if v.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

/// `IsValidPortName` (IANA service name).
pub fn is_valid_port_name(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 15 {
        errs.push(max_len_error(15));
    }
    if v.is_empty() || !v.bytes().all(|c| is_alnum_lower(c) || c == b'-') {
        errs.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string(),
        );
    }
    if !v.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if v.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if v.starts_with('-') || v.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

/// `IsValidPortNum`: 1..=65535.
fn is_valid_port_num(p: i64) -> Vec<String> {
    if (1..=65535).contains(&p) {
        Vec::new()
    } else {
        vec!["must be between 1 and 65535, inclusive".to_string()]
    }
}

/// `path.IsValidPathSegmentName`: names of RBAC objects.
pub fn is_valid_path_segment_name(v: &str) -> Vec<String> {
    for bad in [".", ".."] {
        if v == bad {
            return vec![format!("may not be '{bad}'")];
        }
    }
    ["/", "%"]
        .iter()
        .filter(|c| v.contains(**c))
        .map(|c| format!("may not contain '{c}'"))
        .collect()
}

/// `IsRelaxedEnvVarName` (printable ASCII except '=').
fn is_env_var_name(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.is_empty() {
        errs.push("environment variable name must be non-empty".to_string());
    }
    if v.chars().any(|c| !(' '..='~').contains(&c) || c == '=') {
        errs.push("a valid environment variable name must consist only of printable ASCII characters other than '='".into());
    }
    errs
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
// Object metadata
// ---------------------------------------------------------------------------

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
        return ["/", "%"]
            .iter()
            .filter(|c| prefix.contains(**c))
            .map(|c| format!("may not contain '{c}'"))
            .collect();
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

fn validate_labels(c: &mut Vec<Cause>, labels: Option<&Value>, path: &str) {
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

fn validate_annotations(c: &mut Vec<Cause>, ann: Option<&Value>, path: &str) {
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

fn validate_kube_finalizers(c: &mut Vec<Cause>, list: &[Value], path: &str, indexed: bool) {
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

fn validate_object_meta(
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

fn validate_object_meta_update(c: &mut Vec<Cause>, group: &str, old: &Value, new: &Value) {
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
// Label selectors in specs (metav1 validation)
// ---------------------------------------------------------------------------

fn validate_label_selector(c: &mut Vec<Cause>, sel: &Value, path: &str) {
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

fn selector_is_empty(sel: &Value) -> bool {
    obj_at(sel, &["matchLabels"]).is_none_or(Map::is_empty)
        && arr_at(sel, &["matchExpressions"]).is_empty()
}

// ---------------------------------------------------------------------------
// Pods and pod templates (core validation)
// ---------------------------------------------------------------------------

/// `VolumeSource` members in Go struct order (the order Kubernetes reports extra types in).
const VOLUME_TYPES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "quobyte",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

fn validate_volumes(c: &mut Vec<Cause>, vols: &[Value], path: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, vol) in vols.iter().enumerate() {
        let p = index(path, i);
        let mut el = Vec::new();
        let mut count = 0;
        for t in VOLUME_TYPES {
            let Some(src) = at(vol, &[t]) else { continue };
            if count > 0 {
                el.push(forbidden(
                    &child(&p, t),
                    "may not specify more than 1 volume type",
                ));
                continue;
            }
            count += 1;
            let (field, name) = match *t {
                "configMap" => ("name", str_at(src, &["name"])),
                "secret" => ("secretName", str_at(src, &["secretName"])),
                "persistentVolumeClaim" => ("claimName", str_at(src, &["claimName"])),
                "hostPath" => ("path", str_at(src, &["path"])),
                _ => continue,
            };
            if name.is_empty() {
                el.push(required(&child(&child(&p, t), field), ""));
            }
        }
        if count == 0 {
            el.push(required(&p, "must specify a volume type"));
        }
        let name = str_at(vol, &["name"]);
        let name_path = child(&p, "name");
        if name.is_empty() {
            el.push(required(&name_path, ""));
        } else {
            for m in is_dns1123_label(name) {
                el.push(invalid(&name_path, s(name), &m));
            }
        }
        if names.contains(name) {
            el.push(duplicate(&name_path, s(name)));
        }
        if el.is_empty() {
            names.insert(name.to_string());
        } else {
            c.extend(el);
        }
    }
    names
}

fn validate_container_ports(c: &mut Vec<Cause>, ports: &[Value], path: &str) {
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index(path, i);
        let name = str_at(port, &["name"]);
        if !name.is_empty() {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                for m in msgs {
                    c.push(invalid(&child(&p, "name"), s(name), &m));
                }
            } else if !names.insert(name.to_string()) {
                c.push(duplicate(&child(&p, "name"), s(name)));
            }
        }
        match int_at(port, &["containerPort"]).unwrap_or(0) {
            0 => c.push(required(&child(&p, "containerPort"), "")),
            n => {
                for m in is_valid_port_num(n) {
                    c.push(invalid(&child(&p, "containerPort"), Bad::Int(n), &m));
                }
            }
        }
        if let Some(hp) = int_at(port, &["hostPort"]).filter(|h| *h != 0) {
            for m in is_valid_port_num(hp) {
                c.push(invalid(&child(&p, "hostPort"), Bad::Int(hp), &m));
            }
        }
        validate_protocol(c, port, &child(&p, "protocol"));
    }
}

/// Protocol is defaulted to TCP, so only a present value is checked.
fn validate_protocol(c: &mut Vec<Cause>, port: &Value, path: &str) {
    if let Some(proto) = at(port, &["protocol"]).map(text) {
        if proto.is_empty() {
            c.push(required(path, ""));
        } else if !matches!(proto.as_str(), "TCP" | "UDP" | "SCTP") {
            c.push(not_supported(
                path,
                Bad::Str(proto),
                &["SCTP", "TCP", "UDP"],
            ));
        }
    }
}

fn validate_container(
    c: &mut Vec<Cause>,
    ctr: &Value,
    path: &str,
    vols: &BTreeSet<String>,
    in_pod: bool,
) {
    let name = str_at(ctr, &["name"]);
    let name_path = child(path, "name");
    if name.is_empty() {
        c.push(required(&name_path, ""));
    } else {
        for m in is_dns1123_label(name) {
            c.push(invalid(&name_path, s(name), &m));
        }
    }
    let image = str_at(ctr, &["image"]);
    if image.is_empty() {
        c.push(required(&child(path, "image"), ""));
    }
    if let Some(tmp) = at(ctr, &["terminationMessagePolicy"]).map(text)
        && !matches!(tmp.as_str(), "File" | "FallbackToLogsOnError")
    {
        let p = child(path, "terminationMessagePolicy");
        c.push(if tmp.is_empty() {
            required(&p, "")
        } else {
            not_supported(&p, Bad::Str(tmp), &["File", "FallbackToLogsOnError"])
        });
    }
    validate_container_ports(c, arr_at(ctr, &["ports"]), &child(path, "ports"));
    for (i, env) in arr_at(ctr, &["env"]).iter().enumerate() {
        let p = child(&index(&child(path, "env"), i), "name");
        let n = str_at(env, &["name"]);
        if n.is_empty() {
            c.push(required(&p, ""));
        } else {
            for m in is_env_var_name(n) {
                c.push(invalid(&p, s(n), &m));
            }
        }
    }
    let mut mount_points = BTreeSet::new();
    for (i, mnt) in arr_at(ctr, &["volumeMounts"]).iter().enumerate() {
        let p = index(&child(path, "volumeMounts"), i);
        let n = str_at(mnt, &["name"]);
        if n.is_empty() {
            c.push(required(&child(&p, "name"), ""));
        }
        if !vols.contains(n) {
            c.push(not_found(&child(&p, "name"), s(n)));
        }
        let mp = str_at(mnt, &["mountPath"]);
        if mp.is_empty() {
            c.push(required(&child(&p, "mountPath"), ""));
        }
        if !mount_points.insert(mp.to_string()) {
            c.push(invalid(&child(&p, "mountPath"), s(mp), "must be unique"));
        }
        // Kubernetes' validateLocalDescendingPath: relative, and no '..' element.
        let sub = str_at(mnt, &["subPath"]);
        if sub.starts_with('/') {
            c.push(invalid(&child(&p, "subPath"), s(sub), "must be a relative path"));
        }
        if sub.split(['/', '\\']).any(|e| e == "..") {
            c.push(invalid(&child(&p, "subPath"), s(sub), "must not contain '..'"));
        }
    }
    if let Some(pp) = at(ctr, &["imagePullPolicy"]).map(text)
        && !matches!(pp.as_str(), "Always" | "IfNotPresent" | "Never")
    {
        let p = child(path, "imagePullPolicy");
        c.push(if pp.is_empty() {
            required(&p, "")
        } else {
            not_supported(&p, Bad::Str(pp), &["Always", "IfNotPresent", "Never"])
        });
    }
    if in_pod && image.len() != image.trim().len() {
        c.push(invalid(
            &child(path, "image"),
            s(image),
            "must not have leading or trailing whitespace",
        ));
    }
}

/// `ValidatePodSpec` (subset); `in_pod` adds the checks only created Pods get.
fn validate_pod_spec(c: &mut Vec<Cause>, spec: &Value, path: &str, in_pod: bool) {
    let vols = validate_volumes(c, arr_at(spec, &["volumes"]), &child(path, "volumes"));
    let containers = arr_at(spec, &["containers"]);
    let cpath = child(path, "containers");
    let mut names = BTreeSet::new();
    if containers.is_empty() {
        c.push(required(&cpath, ""));
    }
    for (i, ctr) in containers.iter().enumerate() {
        let p = index(&cpath, i);
        validate_container(c, ctr, &p, &vols, in_pod);
        let n = str_at(ctr, &["name"]);
        if !names.insert(n.to_string()) {
            c.push(duplicate(&child(&p, "name"), s(n)));
        }
    }
    for (i, ctr) in arr_at(spec, &["initContainers"]).iter().enumerate() {
        let p = index(&child(path, "initContainers"), i);
        validate_container(c, ctr, &p, &vols, in_pod);
        let n = str_at(ctr, &["name"]);
        if !names.insert(n.to_string()) {
            c.push(duplicate(&child(&p, "name"), s(n)));
        }
    }
    if let Some(rp) = at(spec, &["restartPolicy"]).map(text) {
        let p = child(path, "restartPolicy");
        match rp.as_str() {
            "Always" | "OnFailure" | "Never" => {}
            "" => c.push(required(&p, "")),
            _ => c.push(not_supported(
                &p,
                Bad::Str(rp),
                &["Always", "OnFailure", "Never"],
            )),
        }
    }
    validate_labels(c, at(spec, &["nodeSelector"]), &child(path, "nodeSelector"));
    for f in ["serviceAccountName", "nodeName"] {
        let v = str_at(spec, &[f]);
        if !v.is_empty() {
            for m in is_dns1123_subdomain(v) {
                c.push(invalid(&child(path, f), s(v), &m));
            }
        }
    }
    if let Some(ads) = int_at(spec, &["activeDeadlineSeconds"])
        && !(1..=i64::from(i32::MAX)).contains(&ads)
    {
        c.push(invalid(
            &child(path, "activeDeadlineSeconds"),
            Bad::Int(ads),
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    for f in ["hostname", "subdomain"] {
        let v = str_at(spec, &[f]);
        if !v.is_empty() {
            for m in is_dns1123_label(v) {
                c.push(invalid(&child(path, f), s(v), &m));
            }
        }
    }
}

/// `ValidatePodTemplateSpec`: template labels/annotations (at `<path>.labels`) and the pod spec.
fn validate_pod_template(c: &mut Vec<Cause>, tmpl: &Value, path: &str) {
    validate_labels(c, at(tmpl, &["metadata", "labels"]), &child(path, "labels"));
    validate_annotations(
        c,
        at(tmpl, &["metadata", "annotations"]),
        &child(path, "annotations"),
    );
    let empty = Value::Object(Map::new());
    validate_pod_spec(
        c,
        at(tmpl, &["spec"]).unwrap_or(&empty),
        &child(path, "spec"),
        false,
    );
    if !arr_at(tmpl, &["spec", "ephemeralContainers"]).is_empty() {
        c.push(forbidden(
            &child(path, "spec.ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
}

/// `on_create` adds the checks Kubernetes runs only when a Pod is created.
fn validate_pod(c: &mut Vec<Cause>, obj: &Value, on_create: bool) {
    let empty = Value::Object(Map::new());
    validate_pod_spec(c, at(obj, &["spec"]).unwrap_or(&empty), "spec", on_create);
}

const POD_UPDATABLE_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

fn validate_container_updates(
    c: &mut Vec<Cause>,
    new: &[Value],
    old: &[Value],
    path: &str,
) -> bool {
    if new.len() != old.len() {
        c.push(forbidden(
            path,
            "pod updates may not add or remove containers",
        ));
        return true;
    }
    for (i, ctr) in new.iter().enumerate() {
        let image = str_at(ctr, &["image"]);
        if image.is_empty() {
            c.push(required(&child(&index(path, i), "image"), ""));
        }
        if image.trim().len() != image.len() {
            c.push(invalid(
                &child(&index(path, i), "image"),
                s(image),
                "must not have leading or trailing whitespace",
            ));
        }
    }
    false
}

fn validate_pod_update(c: &mut Vec<Cause>, old: &Value, new: &Value) {
    validate_pod(c, new, false);
    let empty = Value::Object(Map::new());
    let os = at(old, &["spec"]).unwrap_or(&empty);
    let ns = at(new, &["spec"]).unwrap_or(&empty);
    for f in ["containers", "initContainers"] {
        if validate_container_updates(c, arr_at(ns, &[f]), arr_at(os, &[f]), &format!("spec.{f}")) {
            return;
        }
    }
    let ads_path = "spec.activeDeadlineSeconds";
    match (
        int_at(ns, &["activeDeadlineSeconds"]),
        int_at(os, &["activeDeadlineSeconds"]),
    ) {
        (Some(n), old_ads) => {
            if !(0..=i64::from(i32::MAX)).contains(&n) {
                c.push(invalid(
                    ads_path,
                    Bad::Int(n),
                    "must be between 0 and 2147483647, inclusive",
                ));
                return;
            }
            if old_ads.is_some_and(|o| o < n) {
                c.push(invalid(
                    ads_path,
                    Bad::Int(n),
                    "must be less than or equal to previous value",
                ));
                return;
            }
        }
        (None, Some(_)) => {
            c.push(invalid(
                ads_path,
                s("null"),
                "must not update from a positive integer to nil value",
            ));
        }
        (None, None) => {}
    }
    let new_tol = arr_at(ns, &["tolerations"]);
    for ot in arr_at(os, &["tolerations"]) {
        let strip = |t: &Value| {
            let mut t = normalized(t);
            if let Some(o) = t.as_object_mut() {
                o.remove("tolerationSeconds");
            }
            t
        };
        if !new_tol.iter().any(|nt| strip(nt) == strip(ot)) {
            c.push(forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            break;
        }
    }
    if semantic_eq(Some(ns), Some(os)) {
        return;
    }
    let mut munged = ns.clone();
    if let Some(m) = munged.as_object_mut() {
        for f in ["containers", "initContainers"] {
            let olds = arr_at(os, &[f]);
            if let Some(list) = m.get_mut(f).and_then(Value::as_array_mut) {
                for (ctr, old_ctr) in list.iter_mut().zip(olds) {
                    if let Some(o) = ctr.as_object_mut() {
                        o.insert(
                            "image".into(),
                            at(old_ctr, &["image"]).cloned().unwrap_or(Value::Null),
                        );
                    }
                }
            }
        }
        for f in ["activeDeadlineSeconds", "tolerations", "schedulingGates"] {
            match os.get(f) {
                Some(v) => m.insert(f.into(), v.clone()),
                None => m.remove(f),
            };
        }
        let old_grace = int_at(os, &["terminationGracePeriodSeconds"]);
        if old_grace.is_some_and(|g| g < 0)
            && int_at(ns, &["terminationGracePeriodSeconds"]) == Some(1)
        {
            m.insert(
                "terminationGracePeriodSeconds".into(),
                os["terminationGracePeriodSeconds"].clone(),
            );
        }
    }
    if !semantic_eq(Some(&munged), Some(os)) {
        c.push(forbidden(
            "spec",
            &format!("pod updates may not change fields other than {POD_UPDATABLE_FIELDS}"),
        ));
    }
}

// ---------------------------------------------------------------------------
// apps/v1 workloads
// ---------------------------------------------------------------------------

fn nonneg(c: &mut Vec<Cause>, obj: &Value, path: &[&str]) {
    if let Some(v) = int_at(obj, path).filter(|v| *v < 0) {
        c.push(invalid(
            &path.join("."),
            Bad::Int(v),
            "must be greater than or equal to 0",
        ));
    }
}

/// Invalid cause for template labels the selector does not match.
fn template_mismatch(tmpl: Option<&Value>, path: &str) -> Cause {
    invalid(
        &child(path, "metadata.labels"),
        Bad::Raw(go_map(tmpl.and_then(|t| at(t, &["metadata", "labels"])))),
        "`selector` does not match template `labels`",
    )
}

fn template_labels(tmpl: Option<&Value>) -> Option<&Map<String, Value>> {
    tmpl.and_then(|t| obj_at(t, &["metadata", "labels"]))
}

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
fn validate_replica_set_like(c: &mut Vec<Cause>, obj: &Value, what: &str) {
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

fn validate_daemon_set(c: &mut Vec<Cause>, obj: &Value) {
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

fn validate_stateful_set(c: &mut Vec<Cause>, obj: &Value) {
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

fn selector_immutable(c: &mut Vec<Cause>, old: &Value, new: &Value) {
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

// ---------------------------------------------------------------------------
// batch/v1
// ---------------------------------------------------------------------------

/// `validateJobSpec`: counts, completion mode, the pod template and its restart policy.
fn validate_job_spec(c: &mut Vec<Cause>, spec: &Value, path: &str) {
    for f in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        if let Some(v) = int_at(spec, &[f]).filter(|v| *v < 0) {
            c.push(invalid(
                &child(path, f),
                Bad::Int(v),
                "must be greater than or equal to 0",
            ));
        }
    }
    if let Some(mode) = at(spec, &["completionMode"]).map(text) {
        match mode.as_str() {
            "NonIndexed" => {}
            "Indexed" => {
                if at(spec, &["completions"]).is_none() {
                    c.push(required(
                        &child(path, "completions"),
                        "when completion mode is Indexed",
                    ));
                }
            }
            _ => c.push(not_supported(
                &child(path, "completionMode"),
                Bad::Str(mode),
                &["NonIndexed", "Indexed"],
            )),
        }
    }
    let empty = Value::Object(Map::new());
    let tmpl = at(spec, &["template"]).unwrap_or(&empty);
    let tpath = child(path, "template");
    validate_pod_template(c, tmpl, &tpath);
    let rp_path = child(&tpath, "spec.restartPolicy");
    let rp = str_at(tmpl, &["spec", "restartPolicy"]);
    match rp {
        "" | "Always" => c.push(required(&rp_path, "valid values: \"OnFailure\", \"Never\"")),
        "OnFailure" | "Never" => {}
        other => c.push(not_supported(&rp_path, s(other), &["OnFailure", "Never"])),
    }
}

fn validate_job(c: &mut Vec<Cause>, obj: &Value) {
    let empty = Value::Object(Map::new());
    let spec = at(obj, &["spec"]).unwrap_or(&empty);
    validate_job_spec(c, spec, "spec");
    // A missing selector is generated by the server before validation, so only a given one is checked.
    if let Some(sel) = at(spec, &["selector"]) {
        validate_label_selector(c, sel, "spec.selector");
        let tmpl = at(spec, &["template"]);
        if let Ok(selector) = LabelSelector::from_label_selector_json(sel)
            && !selector.matches(template_labels(tmpl))
        {
            c.push(template_mismatch(tmpl, "spec.template"));
        }
    }
}

fn validate_job_update(c: &mut Vec<Cause>, old: &Value, new: &Value) {
    validate_job(c, new);
    let indexed = str_at(new, &["spec", "completionMode"]) == "Indexed";
    let (oc, nc) = (
        at(old, &["spec", "completions"]),
        at(new, &["spec", "completions"]),
    );
    if !indexed && !semantic_eq(oc, nc) {
        let bad = int_at(new, &["spec", "completions"])
            .map(Bad::Int)
            .unwrap_or_else(|| s("null"));
        c.push(invalid("spec.completions", bad, "field is immutable"));
    }
    selector_immutable(c, old, new);
    let (mut ot, nt) = (
        at(old, &["spec", "template"])
            .cloned()
            .unwrap_or(Value::Null),
        at(new, &["spec", "template"])
            .cloned()
            .unwrap_or(Value::Null),
    );
    let suspended_unstarted = at(old, &["spec", "suspend"]).and_then(Value::as_bool) == Some(true)
        && at(old, &["status", "startTime"]).is_none();
    if suspended_unstarted {
        // Scheduling directives and template metadata may change while a never-started Job is suspended.
        for (outer, f) in [
            ("spec", "nodeSelector"),
            ("spec", "affinity"),
            ("spec", "tolerations"),
            ("spec", "schedulingGates"),
            ("metadata", "labels"),
            ("metadata", "annotations"),
        ] {
            let v = at(&nt, &[outer, f]).cloned();
            if let Some(o) = ot.get_mut(outer).and_then(Value::as_object_mut) {
                match v {
                    Some(v) => o.insert(f.into(), v),
                    None => o.remove(f),
                };
            }
        }
    }
    if !semantic_eq(Some(&ot), Some(&nt)) {
        c.push(invalid(
            "spec.template",
            Bad::Raw(nt.to_string()),
            "field is immutable",
        ));
    }
}

/// A CronJob `spec.timeZone` name as Kubernetes resolves it: a zone of the IANA database
/// (the copy compiled into chrono-tz), named case-sensitively, with every `/`-separated
/// part 1-14 characters of `A-Za-z0-9._+-`, not `.`/`..` and not starting with `-`.
pub fn time_zone(name: &str) -> Option<chrono_tz::Tz> {
    let part_ok = |p: &str| {
        p != "." && p != ".." && !p.starts_with('-') && (1..=14).contains(&p.len()) && p.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_' | '+'))
    };
    if !name.split('/').all(part_ok) {
        return None;
    }
    name.parse().ok()
}

fn validate_cron_job(c: &mut Vec<Cause>, obj: &Value, old: Option<&Value>) {
    let schedule = str_at(obj, &["spec", "schedule"]);
    if schedule.is_empty() {
        c.push(required("spec.schedule", ""));
    } else {
        if let Err(e) = parse_cron_standard(schedule) {
            c.push(invalid("spec.schedule", s(schedule), &e));
        }
        let tz_allowed = old.is_some_and(|o| str_at(o, &["spec", "schedule"]).contains("TZ"));
        let has_tz_field = at(obj, &["spec", "timeZone"]).is_some();
        if tz_allowed && schedule.contains("TZ") && has_tz_field {
            c.push(invalid(
                "spec.schedule",
                s(schedule),
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        } else if !tz_allowed && schedule.contains("TZ") {
            c.push(invalid(
                "spec.schedule",
                s(schedule),
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    // An update that keeps the zone is not re-checked (an object stored before a zone
    // became unknown stays editable and deletable).
    let tz_kept = old.is_some_and(|o| at(o, &["spec", "timeZone"]) == at(obj, &["spec", "timeZone"]));
    if let Some(tz) = at(obj, &["spec", "timeZone"]).filter(|v| !v.is_null() && !tz_kept).map(text) {
        if tz.is_empty() {
            c.push(invalid("spec.timeZone", s(""), "timeZone must be nil or non-empty string"));
        } else {
            if tz.eq_ignore_ascii_case("Local") {
                c.push(invalid("spec.timeZone", s(&tz), "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"));
            }
            // Go's time.LoadLocation knows "Local" itself.
            if tz != "Local" && time_zone(&tz).is_none() {
                c.push(invalid("spec.timeZone", s(&tz), &format!("unknown time zone {tz}")));
            }
        }
    }
    nonneg(c, obj, &["spec", "startingDeadlineSeconds"]);
    if let Some(cp) = at(obj, &["spec", "concurrencyPolicy"]).map(text) {
        match cp.as_str() {
            "Allow" | "Forbid" | "Replace" => {}
            "" => c.push(required("spec.concurrencyPolicy", "")),
            _ => c.push(not_supported(
                "spec.concurrencyPolicy",
                Bad::Str(cp),
                &["Allow", "Forbid", "Replace"],
            )),
        }
    }
    let empty = Value::Object(Map::new());
    let jspec = at(obj, &["spec", "jobTemplate", "spec"]).unwrap_or(&empty);
    validate_job_spec(c, jspec, "spec.jobTemplate.spec");
    if let Some(sel) = at(jspec, &["selector"]) {
        c.push(invalid(
            "spec.jobTemplate.spec.selector",
            Bad::Raw(go_label_selector(Some(sel))),
            "`selector` will be auto-generated",
        ));
    }
    if at(jspec, &["manualSelector"]).and_then(Value::as_bool) == Some(true) {
        c.push(not_supported(
            "spec.jobTemplate.spec.manualSelector",
            Bad::Bool(true),
            &["nil", "false"],
        ));
    }
    nonneg(c, obj, &["spec", "successfulJobsHistoryLimit"]);
    nonneg(c, obj, &["spec", "failedJobsHistoryLimit"]);
    let name = str_at(obj, &["metadata", "name"]);
    if old.is_none() && name.len() > 52 {
        c.push(invalid(
            "metadata.name",
            s(name),
            "must be no more than 52 characters",
        ));
    }
}

/// robfig/cron v3 `ParseStandard` (5 fields or a descriptor); `Err` carries its message.
fn parse_cron_standard(spec: &str) -> Result<(), String> {
    let mut spec = spec;
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    if (spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=")) && spec.contains(' ') {
        let i = spec.find(' ').unwrap_or(spec.len());
        spec = spec[i..].trim();
    }
    if spec.starts_with('@') {
        return match spec {
            "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight"
            | "@hourly" => Ok(()),
            _ => match spec.strip_prefix("@every ") {
                Some(d) if go_duration_ok(d) => Ok(()),
                Some(d) => Err(format!(
                    "failed to parse duration {spec}: time: invalid duration {}",
                    go_quote(d)
                )),
                None => Err(format!("unrecognized descriptor: {spec}")),
            },
        };
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    const MONTHS: &[&str] = &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let bounds: [(u64, u64, &[&str], u64); 5] = [
        (0, 59, &[], 0),
        (0, 23, &[], 0),
        (1, 31, &[], 0),
        (1, 12, MONTHS, 1),
        (0, 6, DAYS, 0),
    ];
    for (field, (min, max, names, base)) in fields.iter().zip(bounds) {
        for expr in field.split(',').filter(|e| !e.is_empty()) {
            cron_range(expr, min, max, names, base)?;
        }
    }
    Ok(())
}

fn cron_int(expr: &str) -> Result<u64, String> {
    let n: i64 = expr.parse().map_err(|_| {
        format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {}: invalid syntax",
            go_quote(expr)
        )
    })?;
    u64::try_from(n).map_err(|_| format!("negative number ({n}) not allowed: {expr}"))
}

fn cron_range(expr: &str, min: u64, max: u64, names: &[&str], base: u64) -> Result<(), String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = range_and_step[0].split('-').collect();
    let int_or_name = |e: &str| match names.iter().position(|n| n.eq_ignore_ascii_case(e)) {
        Some(i) => Ok(i as u64 + base),
        None => cron_int(e),
    };
    let (start, mut end) = if low_high[0] == "*" || low_high[0] == "?" {
        (min, max)
    } else {
        let start = int_or_name(low_high[0])?;
        match low_high.len() {
            1 => (start, start),
            2 => (start, int_or_name(low_high[1])?),
            _ => return Err(format!("too many hyphens: {expr}")),
        }
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = cron_int(range_and_step[1])?;
            if low_high.len() == 1 {
                end = max;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({min}): {expr}"
        ));
    }
    if end > max {
        return Err(format!(
            "end of range ({end}) above maximum ({max}): {expr}"
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(())
}

/// Go `time.ParseDuration` syntax: `[-+]?(\d*\.?\d+(ns|us|µs|ms|s|m|h))+`, or `0`.
fn go_duration_ok(d: &str) -> bool {
    let d = d.strip_prefix(['-', '+']).unwrap_or(d);
    if d == "0" {
        return true;
    }
    let mut rest = d;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." {
            return false;
        }
        rest = &rest[num_len..];
        let unit = ["ns", "us", "µs", "μs", "ms", "s", "m", "h"]
            .iter()
            .find(|u| rest.starts_with(**u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

// ---------------------------------------------------------------------------
// core/v1: Service, ConfigMap, Secret, Namespace
// ---------------------------------------------------------------------------

fn validate_service(c: &mut Vec<Cause>, obj: &Value) {
    let empty = Value::Object(Map::new());
    let spec = at(obj, &["spec"]).unwrap_or(&empty);
    let ty = at(spec, &["type"])
        .map(text)
        .unwrap_or_else(|| "ClusterIP".to_string());
    let cluster_ip = str_at(spec, &["clusterIP"]);
    let headless = cluster_ip == "None";
    let ports = arr_at(spec, &["ports"]);
    if ports.is_empty() && !headless && ty != "ExternalName" {
        c.push(required("spec.ports", ""));
    }
    if ty == "ExternalName" {
        let cname = str_at(spec, &["externalName"]);
        let cname = cname.strip_suffix('.').unwrap_or(cname);
        if cname.is_empty() {
            c.push(required("spec.externalName", ""));
        } else {
            for m in is_dns1123_subdomain(cname) {
                c.push(invalid("spec.externalName", s(cname), &m));
            }
        }
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index("spec.ports", i);
        let name = str_at(port, &["name"]);
        if ports.len() > 1 && name.is_empty() {
            c.push(required(&child(&p, "name"), ""));
        } else if !name.is_empty() {
            for m in is_dns1123_label(name) {
                c.push(invalid(&child(&p, "name"), s(name), &m));
            }
            if !names.insert(name.to_string()) {
                c.push(duplicate(&child(&p, "name"), s(name)));
            }
        }
        let num = int_at(port, &["port"]).unwrap_or(0);
        for m in is_valid_port_num(num) {
            c.push(invalid(&child(&p, "port"), Bad::Int(num), &m));
        }
        validate_protocol(c, port, &child(&p, "protocol"));
        match at(port, &["targetPort"]) {
            Some(Value::String(tp)) => {
                for m in is_valid_port_name(tp) {
                    c.push(invalid(&child(&p, "targetPort"), s(tp), &m));
                }
            }
            Some(tp) => {
                let n = tp.as_i64().unwrap_or(0);
                if n != 0 {
                    for m in is_valid_port_num(n) {
                        c.push(invalid(&child(&p, "targetPort"), Bad::Int(n), &m));
                    }
                }
            }
            None => {}
        }
    }
    validate_labels(c, at(spec, &["selector"]), "spec.selector");
    if let Some(sa) = at(spec, &["sessionAffinity"]).map(text)
        && !matches!(sa.as_str(), "ClientIP" | "None")
    {
        c.push(if sa.is_empty() {
            required("spec.sessionAffinity", "")
        } else {
            not_supported("spec.sessionAffinity", Bad::Str(sa), &["ClientIP", "None"])
        });
    }
    if !cluster_ip.is_empty() && !headless && cluster_ip.parse::<std::net::IpAddr>().is_err() {
        c.push(invalid(
            "spec.clusterIPs[0]",
            s(cluster_ip),
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ));
    }
    if !matches!(
        ty.as_str(),
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
    ) {
        let cause = if ty.is_empty() {
            required("spec.type", "")
        } else {
            not_supported(
                "spec.type",
                s(&ty),
                &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
            )
        };
        c.push(cause);
    }
    if ty == "ClusterIP" {
        for (i, port) in ports.iter().enumerate() {
            if int_at(port, &["nodePort"]).unwrap_or(0) != 0 {
                c.push(forbidden(
                    &child(&index("spec.ports", i), "nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    let proto = |p: &Value| {
        at(p, &["protocol"])
            .map(text)
            .unwrap_or_else(|| "TCP".to_string())
    };
    let mut node_ports = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let np = int_at(port, &["nodePort"]).unwrap_or(0);
        if np != 0 && !node_ports.insert((proto(port), np)) {
            c.push(duplicate(
                &child(&index("spec.ports", i), "nodePort"),
                Bad::Int(np),
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let (pr, num) = (proto(port), int_at(port, &["port"]).unwrap_or(0));
        if !seen.insert((pr.clone(), num)) {
            let key = format!(
                "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{num}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
                go_quote(&pr)
            );
            c.push(duplicate(&index("spec.ports", i), Bad::Raw(key)));
        }
    }
}

fn validate_service_update(c: &mut Vec<Cause>, old: &Value, new: &Value) {
    let (ot, nt) = (
        str_at(old, &["spec", "type"]),
        str_at(new, &["spec", "type"]),
    );
    let (oip, nip) = (
        str_at(old, &["spec", "clusterIP"]),
        str_at(new, &["spec", "clusterIP"]),
    );
    let both_headless = oip == "None" && nip == "None";
    if ot != "ExternalName"
        && nt != "ExternalName"
        && !both_headless
        && !oip.is_empty()
        && !nip.is_empty()
        && oip != nip
    {
        let ips: Vec<String> = match arr_at(new, &["spec", "clusterIPs"]) {
            [] => vec![nip.to_string()],
            list => list.iter().map(text).collect(),
        };
        c.push(invalid(
            "spec.clusterIPs[0]",
            Bad::Raw(go_string_slice(&ips)),
            "may not change once set",
        ));
    }
    validate_service(c, new);
}

const MAX_SECRET_SIZE: usize = 1024 * 1024;

fn validate_config_map(c: &mut Vec<Cause>, obj: &Value) {
    let binary = obj_at(obj, &["binaryData"]);
    let mut total = 0usize;
    if let Some(data) = obj_at(obj, &["data"]) {
        for (k, v) in data {
            for m in is_config_map_key(k) {
                c.push(invalid(&key("data", k), s(k), &m));
            }
            if binary.is_some_and(|b| b.contains_key(k)) {
                c.push(invalid(
                    &key("data", k),
                    s(k),
                    "duplicate of key present in binaryData",
                ));
            }
            total += text(v).len();
        }
    }
    if let Some(b) = binary {
        for (k, v) in b {
            for m in is_config_map_key(k) {
                c.push(invalid(&key("binaryData", k), s(k), &m));
            }
            total += text(v).len() / 4 * 3;
        }
    }
    if total > MAX_SECRET_SIZE {
        // Kubernetes reports this on `field.NewPath("")`, which prints as `[]`.
        c.push(too_long("[]", MAX_SECRET_SIZE));
    }
}

fn validate_secret(c: &mut Vec<Cause>, obj: &Value) {
    let mut keys: Vec<String> = Vec::new();
    let mut total = 0usize;
    for (field, decode) in [("data", true), ("stringData", false)] {
        if let Some(data) = obj_at(obj, &[field]) {
            for (k, v) in data {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
                let len = text(v).len();
                total += if decode { len / 4 * 3 } else { len };
            }
        }
    }
    for k in &keys {
        for m in is_config_map_key(k) {
            c.push(invalid(&key("data", k), s(k), &m));
        }
    }
    if total > MAX_SECRET_SIZE {
        c.push(too_long("data", MAX_SECRET_SIZE));
    }
    let has = |k: &str| keys.iter().any(|x| x == k);
    match str_at(obj, &["type"]) {
        "kubernetes.io/service-account-token"
            if str_at(
                obj,
                &[
                    "metadata",
                    "annotations",
                    "kubernetes.io/service-account.name",
                ],
            )
            .is_empty() =>
        {
            c.push(required(
                "metadata.annotations[kubernetes.io/service-account.name]",
                "",
            ));
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => c.push(required("data[.dockercfg]", "")),
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => {
            c.push(required("data[.dockerconfigjson]", ""))
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            c.push(required("data[%s][username]", ""));
            c.push(required("data[%s][password]", ""));
        }
        "kubernetes.io/ssh-auth" if !has("ssh-privatekey") => {
            c.push(required("data[%s][ssh-privatekey]", ""))
        }
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !has(k) {
                    c.push(required(&key("data", k), ""));
                }
            }
        }
        _ => {}
    }
}

fn immutable_data(c: &mut Vec<Cause>, old: &Value, new: &Value, fields: &[&str]) {
    if at(old, &["immutable"]).and_then(Value::as_bool) != Some(true) {
        return;
    }
    if at(new, &["immutable"]).and_then(Value::as_bool) != Some(true) {
        c.push(forbidden(
            "immutable",
            "field is immutable when `immutable` is set",
        ));
    }
    for f in fields {
        if at(old, &[f]) != at(new, &[f]) {
            c.push(forbidden(f, "field is immutable when `immutable` is set"));
        }
    }
}

fn validate_namespace(c: &mut Vec<Cause>, obj: &Value) {
    let list = arr_at(obj, &["spec", "finalizers"]);
    for f in list.iter().map(text) {
        for m in is_qualified_name(&f) {
            c.push(invalid("spec.finalizers", s(&f), &m));
        }
    }
    validate_kube_finalizers(c, list, "spec.finalizers", false);
}

// ---------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------

/// Validate an object being created (after defaulting and name generation) as Kubernetes does.
/// `namespaced` says whether the kind is namespaced (then `metadata.namespace` is required).
pub fn validate_create(group: &str, kind: &str, namespaced: bool, obj: &Value) -> Vec<Cause> {
    let mut c = Vec::new();
    validate_object_meta(&mut c, group, kind, namespaced, obj);
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
    validate_object_meta_update(&mut c, group, old, new);
    match (group, kind) {
        ("", "Pod") => validate_pod_update(&mut c, old, new),
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") => {
            validate_spec(&mut c, group, kind, new, Some(old));
            selector_immutable(&mut c, old, new);
        }
        ("apps", "StatefulSet") => {
            validate_spec(&mut c, group, kind, new, Some(old));
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
        ("batch", "Job") => validate_job_update(&mut c, old, new),
        ("", "Service") => validate_service_update(&mut c, old, new),
        ("", "ConfigMap") => {
            immutable_data(&mut c, old, new, &["data", "binaryData"]);
            validate_config_map(&mut c, new);
        }
        ("", "Secret") => {
            let (ot, nt) = (str_at(old, &["type"]), str_at(new, &["type"]));
            if !nt.is_empty() && ot != nt {
                c.push(invalid("type", s(nt), "field is immutable"));
            }
            immutable_data(&mut c, old, new, &["data"]);
            validate_secret(&mut c, new);
        }
        _ => validate_spec(&mut c, group, kind, new, Some(old)),
    }
    c
}

fn validate_spec(c: &mut Vec<Cause>, group: &str, kind: &str, obj: &Value, old: Option<&Value>) {
    match (group, kind) {
        ("", "Pod") => validate_pod(c, obj, old.is_none()),
        ("", "Service") => validate_service(c, obj),
        ("", "ConfigMap") => validate_config_map(c, obj),
        ("", "Secret") => validate_secret(c, obj),
        ("", "Namespace") => validate_namespace(c, obj),
        ("apps", "Deployment" | "ReplicaSet") => validate_replica_set_like(c, obj, kind),
        ("apps", "DaemonSet") => validate_daemon_set(c, obj),
        ("apps", "StatefulSet") => validate_stateful_set(c, obj),
        ("batch", "Job") => validate_job(c, obj),
        ("batch", "CronJob") => validate_cron_job(c, obj, old),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

    fn msgs(c: &[Cause]) -> Vec<String> {
        c.iter().map(ToString::to_string).collect()
    }

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": spec})
    }

    fn deployment(selector: Value, labels: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "default"},
               "spec": {"replicas": 1, "selector": selector,
                        "template": {"metadata": {"labels": labels},
                                     "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
    }

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
    fn pod_containers_required_and_checked() {
        let c = validate_create("", "Pod", true, &pod(json!({})));
        assert_eq!(msgs(&c), vec!["spec.containers: Required value"]);
        let c = validate_create(
            "",
            "Pod",
            true,
            &pod(json!({"restartPolicy": "Sometimes", "containers": [
            {"name": "Web", "image": ""},
            {"name": "dup", "image": "x", "ports": [{"containerPort": 70000, "protocol": "ICMP"}, {"name": "http"}]},
            {"name": "dup", "image": " x"}]})),
        );
        assert_eq!(msgs(&c), vec![
            format!("spec.containers[0].name: Invalid value: \"Web\": {LABEL_MSG}"),
            "spec.containers[0].image: Required value".to_string(),
            "spec.containers[1].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive".to_string(),
            "spec.containers[1].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"".to_string(),
            "spec.containers[1].ports[1].containerPort: Required value".to_string(),
            "spec.containers[2].image: Invalid value: \" x\": must not have leading or trailing whitespace".to_string(),
            "spec.containers[2].name: Duplicate value: \"dup\"".to_string(),
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"".to_string(),
        ]);
        assert_eq!(c[6].reason, "FieldValueDuplicate");
        assert_eq!(c[7].reason, "FieldValueNotSupported");
    }

    #[test]
    fn pod_volumes_and_mounts() {
        let c = validate_create(
            "",
            "Pod",
            true,
            &pod(json!({
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "data", "emptyDir": {}},
                        {"name": "cfg", "configMap": {}, "secret": {"secretName": "s"}}, {"name": "none"},
                        {"name": "cm", "configMap": {}}],
            "containers": [{"name": "c", "image": "i", "volumeMounts": [
                {"name": "data", "mountPath": "/d"}, {"name": "cfg", "mountPath": "/d"}]}]})),
        );
        assert_eq!(
            msgs(&c),
            vec![
                "spec.volumes[1].name: Duplicate value: \"data\"",
                "spec.volumes[2].configMap: Forbidden: may not specify more than 1 volume type",
                "spec.volumes[3]: Required value: must specify a volume type",
                "spec.volumes[4].configMap.name: Required value",
                "spec.containers[0].volumeMounts[1].name: Not found: \"cfg\"",
                "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/d\": must be unique",
            ]
        );
    }

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

    #[test]
    fn job_and_cronjob() {
        let job = json!({"metadata": {"name": "j", "namespace": "d"}, "spec": {"backoffLimit": -2,
            "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        assert_eq!(
            msgs(&validate_create("batch", "Job", true, &job)),
            vec![
                "spec.backoffLimit: Invalid value: -2: must be greater than or equal to 0",
                "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
            ]
        );
        let mut ok = job.clone();
        ok["spec"]["backoffLimit"] = json!(1);
        ok["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        ok["spec"]["selector"] = json!({"matchLabels": {"uid": "1"}});
        ok["spec"]["template"]["metadata"] = json!({"labels": {"uid": "1"}});
        assert!(validate_create("batch", "Job", true, &ok).is_empty());
        let mut changed = ok.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("j");
        let c = validate_update("batch", "Job", &ok, &changed);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "spec.template");
        assert!(c[0].message.ends_with(": field is immutable"));
        let mut resel = ok.clone();
        resel["spec"]["selector"] = json!({"matchLabels": {"uid": "1"}, "matchExpressions": []});
        assert!(validate_update("batch", "Job", &ok, &resel).is_empty());

        let cj = |schedule: &str| {
            json!({"metadata": {"name": "c", "namespace": "d"}, "spec": {"schedule": schedule,
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                "containers": [{"name": "c", "image": "i"}]}}}}}})
        };
        assert!(validate_create("batch", "CronJob", true, &cj("*/5 * * * *")).is_empty());
        assert!(validate_create("batch", "CronJob", true, &cj("@hourly")).is_empty());
        assert!(validate_create("batch", "CronJob", true, &cj("0 9 * jan-mar mon-fri")).is_empty());
        assert_eq!(
            msgs(&validate_create("batch", "CronJob", true, &cj(""))),
            vec!["spec.schedule: Required value"]
        );
        assert_eq!(
            msgs(&validate_create("batch", "CronJob", true, &cj("* * *"))),
            vec![
                "spec.schedule: Invalid value: \"* * *\": expected exactly 5 fields, found 3: [* * *]"
            ]
        );
        assert_eq!(
            msgs(&validate_create(
                "batch",
                "CronJob",
                true,
                &cj("61 * * * *")
            )),
            vec![
                "spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61"
            ]
        );
        assert_eq!(
            msgs(&validate_create("batch", "CronJob", true, &cj("x * * * *"))),
            vec![
                "spec.schedule: Invalid value: \"x * * * *\": failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"
            ]
        );
        assert_eq!(
            msgs(&validate_create("batch", "CronJob", true, &cj("@often"))),
            vec!["spec.schedule: Invalid value: \"@often\": unrecognized descriptor: @often"]
        );
        let zoned = |tz: Value| {
            let mut c = cj("0 9 * * *");
            c["spec"]["timeZone"] = tz;
            msgs(&validate_create("batch", "CronJob", true, &c))
        };
        for ok in ["America/New_York", "UTC", "Etc/GMT+5", "Asia/Kolkata"] {
            assert!(zoned(json!(ok)).is_empty(), "{ok}");
        }
        assert!(zoned(Value::Null).is_empty());
        assert_eq!(zoned(json!("")), vec!["spec.timeZone: Invalid value: \"\": timeZone must be nil or non-empty string"]);
        assert_eq!(zoned(json!("Mars/Olympus")), vec!["spec.timeZone: Invalid value: \"Mars/Olympus\": unknown time zone Mars/Olympus"]);
        assert_eq!(zoned(json!("america/new_york")), vec!["spec.timeZone: Invalid value: \"america/new_york\": unknown time zone america/new_york"]);
        assert_eq!(zoned(json!("../zoneinfo")), vec!["spec.timeZone: Invalid value: \"../zoneinfo\": unknown time zone ../zoneinfo"]);
        let mut stored = cj("0 9 * * *");
        stored["spec"]["timeZone"] = json!("+05:30");
        let mut relabelled = stored.clone();
        relabelled["metadata"]["labels"] = json!({"a": "b"});
        assert!(validate_update("batch", "CronJob", &stored, &relabelled).is_empty());
        let mut rezoned = stored.clone();
        rezoned["spec"]["timeZone"] = json!("+05:00");
        assert_eq!(msgs(&validate_update("batch", "CronJob", &stored, &rezoned)), vec!["spec.timeZone: Invalid value: \"+05:00\": unknown time zone +05:00"]);
        assert_eq!(
            zoned(json!("Local")),
            vec!["spec.timeZone: Invalid value: \"Local\": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"]
        );
        let mut long = cj("@daily");
        long["metadata"]["name"] = json!("a".repeat(53));
        assert_eq!(
            validate_create("batch", "CronJob", true, &long)[0].message,
            format!(
                "Invalid value: \"{}\": must be no more than 52 characters",
                "a".repeat(53)
            )
        );
    }

    #[test]
    fn service_rules() {
        let svc =
            |spec: Value| json!({"metadata": {"name": "web", "namespace": "d"}, "spec": spec});
        assert_eq!(
            msgs(&validate_create("", "Service", true, &svc(json!({})))),
            vec!["spec.ports: Required value"]
        );
        assert!(
            validate_create("", "Service", true, &svc(json!({"clusterIP": "None"}))).is_empty()
        );
        assert_eq!(
            msgs(&validate_create(
                "",
                "Service",
                true,
                &svc(json!({"type": "ExternalName"}))
            )),
            vec!["spec.externalName: Required value"]
        );
        let c = validate_create(
            "",
            "Service",
            true,
            &svc(json!({"type": "Magic", "ports": [
            {"port": 0, "protocol": "HTTP"}, {"name": "b", "port": 80, "nodePort": 30001}]})),
        );
        assert_eq!(
            msgs(&c),
            vec![
                "spec.ports[0].name: Required value",
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            ]
        );
        let c = validate_create(
            "",
            "Service",
            true,
            &svc(json!({"ports": [
            {"name": "a", "port": 80, "nodePort": 30001}, {"name": "b", "port": 80}]})),
        );
        assert_eq!(
            msgs(&c),
            vec![
                "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
                "spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}",
            ]
        );
        let old = svc(json!({"clusterIP": "10.0.0.5", "ports": [{"port": 80}]}));
        let new = svc(json!({"clusterIP": "10.0.0.6", "ports": [{"port": 80}]}));
        assert_eq!(
            msgs(&validate_update("", "Service", &old, &new)),
            vec![
                "spec.clusterIPs[0]: Invalid value: []string{\"10.0.0.6\"}: may not change once set"
            ]
        );
        assert!(validate_update("", "Service", &old, &old).is_empty());
    }

    #[test]
    fn config_map_and_secret() {
        let cm = json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"ok.key": "v", "bad key": "v"}, "binaryData": {"ok.key": ""}});
        assert_eq!(
            msgs(&validate_create("", "ConfigMap", true, &cm)),
            vec![
                "data[ok.key]: Invalid value: \"ok.key\": duplicate of key present in binaryData",
                "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            ]
        );
        let tls = json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}});
        assert_eq!(
            msgs(&validate_create("", "Secret", true, &tls)),
            vec!["data[tls.key]: Required value"]
        );
        let old = json!({"metadata": {"name": "s", "namespace": "d"}, "immutable": true, "type": "Opaque", "data": {"a": "eA=="}});
        let new = json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA==", "tls.key": "eA=="}});
        assert_eq!(
            msgs(&validate_update("", "Secret", &old, &new)),
            vec![
                "type: Invalid value: \"kubernetes.io/tls\": field is immutable",
                "immutable: Forbidden: field is immutable when `immutable` is set",
                "data: Forbidden: field is immutable when `immutable` is set",
            ]
        );
        let cm_old = json!({"metadata": {"name": "c", "namespace": "d"}, "immutable": true, "data": {"a": "1"}});
        let mut cm_new = cm_old.clone();
        cm_new["data"]["a"] = json!("2");
        assert_eq!(
            msgs(&validate_update("", "ConfigMap", &cm_old, &cm_new)),
            vec!["data: Forbidden: field is immutable when `immutable` is set"]
        );
        assert!(validate_update("", "ConfigMap", &cm_old, &cm_old).is_empty());
        let huge = json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"k": "x".repeat(MAX_SECRET_SIZE + 1)}});
        assert_eq!(
            msgs(&validate_create("", "ConfigMap", true, &huge)),
            vec!["[]: Too long: may not be more than 1048576 bytes"]
        );
    }

    #[test]
    fn namespace_finalizers() {
        let ns =
            json!({"metadata": {"name": "team"}, "spec": {"finalizers": ["kubernetes", "custom"]}});
        assert_eq!(
            msgs(&validate_create("", "Namespace", false, &ns)),
            vec![
                "spec.finalizers: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified"
            ]
        );
    }

    #[test]
    fn pod_update_rules() {
        let old = pod(
            json!({"nodeName": "n1", "containers": [{"name": "c", "image": "a", "ports": [{"containerPort": 80}]}],
            "tolerations": [{"key": "k", "operator": "Exists"}]}),
        );
        let mut image = old.clone();
        image["spec"]["containers"][0]["image"] = json!("b");
        image["spec"]["activeDeadlineSeconds"] = json!(30);
        image["spec"]["tolerations"] =
            json!([{"key": "k", "operator": "Exists"}, {"key": "z", "operator": "Exists"}]);
        assert!(validate_update("", "Pod", &old, &image).is_empty());
        let mut spaced = old.clone();
        spaced["spec"]["containers"][0]["image"] = json!("b ");
        assert_eq!(
            msgs(&validate_update("", "Pod", &old, &spaced)),
            vec![
                "spec.containers[0].image: Invalid value: \"b \": must not have leading or trailing whitespace"
            ]
        );

        let mut port = old.clone();
        port["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(81);
        assert_eq!(
            msgs(&validate_update("", "Pod", &old, &port)),
            vec![format!(
                "spec: Forbidden: pod updates may not change fields other than {POD_UPDATABLE_FIELDS}"
            )]
        );
        let mut more = old.clone();
        more["spec"]["containers"] =
            json!([{"name": "c", "image": "a"}, {"name": "d", "image": "a"}]);
        assert_eq!(
            msgs(&validate_update("", "Pod", &old, &more)),
            vec!["spec.containers: Forbidden: pod updates may not add or remove containers"]
        );
        let mut tol = old.clone();
        tol["spec"]["tolerations"] = json!([]);
        assert_eq!(
            msgs(&validate_update("", "Pod", &old, &tol)),
            vec![
                "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"
            ]
        );
        let mut with_ads = old.clone();
        with_ads["spec"]["activeDeadlineSeconds"] = json!(10);
        let mut raised = old.clone();
        raised["spec"]["activeDeadlineSeconds"] = json!(20);
        assert_eq!(
            msgs(&validate_update("", "Pod", &with_ads, &raised)),
            vec![
                "spec.activeDeadlineSeconds: Invalid value: 20: must be less than or equal to previous value"
            ]
        );
        assert_eq!(
            msgs(&validate_update("", "Pod", &with_ads, &old)),
            vec![
                "spec.activeDeadlineSeconds: Invalid value: \"null\": must not update from a positive integer to nil value"
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

    #[test]
    fn format_checks() {
        assert!(is_dns1123_subdomain("a.b-c.d").is_empty());
        assert!(!is_dns1123_subdomain("a..b").is_empty());
        assert!(is_qualified_name("example.com/My_Name.1").is_empty());
        assert_eq!(
            is_qualified_name("/x"),
            vec!["prefix part must be non-empty"]
        );
        assert!(is_valid_label_value("").is_empty());
        assert_eq!(
            is_valid_port_name("http--x"),
            vec!["must not contain consecutive hyphens"]
        );
        assert_eq!(is_config_map_key(".."), vec!["must not be '..'"]);
        assert!(go_duration_ok("1h30m") && go_duration_ok("1.5s") && !go_duration_ok("5 minutes"));
    }
}
