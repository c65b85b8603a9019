//! Server-side `meta.k8s.io/v1` Tables: what `kubectl get` prints.
//!
//! kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints the cells the
//! server computes, hiding columns with priority > 0 unless `-o wide`. The columns and cell
//! rules per kind follow Kubernetes' internal printers (`pkg/printers/internalversion`), run
//! as the API server runs them: always "wide", so every row carries every column. Kinds
//! Kubernetes has no printer for (Role, ClusterRole, LimitRange, …) get the generic
//! convertor's `Name` + `Created At`.
//!
//! This module builds the Table, picks the printer per kind ([`printer_for`]) and holds the
//! column shapes, formatting helpers and JSON accessors the printers share. Each printer
//! (its columns and its cells, side by side) lives with its API group: `core` (core/v1 and
//! Lease), `storage` (PersistentVolume, PersistentVolumeClaim, StorageClass), `apps`,
//! `batch`, `networking` (networking.k8s.io and EndpointSlice) and `rbac`.
//!
//! Invariants:
//! - every row has exactly one cell per column definition, in order;
//! - the printers are pure: the clock comes in as `now`, and missing or malformed fields are
//!   read as their API defaults (the values Kubernetes' defaulting would have stored), never
//!   as errors.

mod apps;
mod batch;
mod certificates;
mod core;
mod networking;
mod policy;
mod rbac;
mod storage;

use std::collections::BTreeSet;
use std::str::FromStr;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::resources::ResourceInfo;

/// What each row's `object` carries, from the `includeObject` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum IncludeObject {
    /// No `object` in rows.
    None,
    /// A `PartialObjectMetadata` with the object's metadata (kubectl's default).
    #[default]
    Metadata,
    /// The whole object (kubectl sends this for `--sort-by`).
    Object,
}

/// An `includeObject` value other than None, Metadata, Object or empty; a 400 Bad Request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("includeObject: Invalid value: \"{0}\": must be 'Metadata', 'Object', 'None', or empty")]
pub(crate) struct InvalidIncludeObject(pub(crate) String);

impl IncludeObject {
    /// Reads the `includeObject` query parameter; absent or empty means `Metadata`.
    pub(crate) fn from_query(value: Option<&str>) -> Result<Self, InvalidIncludeObject> {
        value.map_or(Ok(Self::default()), str::parse)
    }
}

impl FromStr for IncludeObject {
    type Err = InvalidIncludeObject;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" | "Metadata" => Ok(Self::Metadata),
            "None" => Ok(Self::None),
            "Object" => Ok(Self::Object),
            other => Err(InvalidIncludeObject(other.to_string())),
        }
    }
}

/// Builds the Table for `objects` (one row each, in the given order) of resource `info`.
/// `continue_token` is omitted from the list metadata when `None` or empty, as is an empty
/// `resource_version`.
pub(crate) fn table(
    info: &ResourceInfo,
    objects: &[&Value],
    include: IncludeObject,
    now: DateTime<Utc>,
    resource_version: &str,
    continue_token: Option<&str>,
) -> Value {
    let printer = printer_for(info);
    let columns: Vec<Value> = printer.columns.iter().copied().map(Column::to_json).collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array((printer.cells)(obj, now)));
            if let Some(conditions) = printer.conditions.and_then(|f| f(obj)) {
                row.insert("conditions".into(), conditions);
            }
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    row.insert("object".into(), partial_object_metadata(obj));
                }
                IncludeObject::Object => {
                    row.insert("object".into(), whole_object(info, obj));
                }
            }
            Value::Object(row)
        })
        .collect();

    let mut metadata = Map::new();
    if !resource_version.is_empty() {
        metadata.insert("resourceVersion".into(), resource_version.into());
    }
    if let Some(token) = continue_token.filter(|t| !t.is_empty()) {
        metadata.insert("continue".into(), token.into());
    }
    let mut out = Map::new();
    out.insert("kind".into(), "Table".into());
    out.insert("apiVersion".into(), "meta.k8s.io/v1".into());
    out.insert("metadata".into(), Value::Object(metadata));
    out.insert("columnDefinitions".into(), Value::Array(columns));
    out.insert("rows".into(), Value::Array(rows));
    Value::Object(out)
}

/// `k8s.io/apimachinery/pkg/util/duration.HumanDuration`: ~2-3 significant figures.
pub(crate) fn human_duration(d: Duration) -> String {
    // Whole seconds truncated toward zero, like Go's int(d.Seconds()).
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{days}d") } else { format!("{days}d{h}h") };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        let dy = days % 365;
        return if dy == 0 { format!("{years}y") } else { format!("{years}y{dy}d") };
    }
    format!("{years}y")
}

// ---------------------------------------------------------------------------------------
// Rows' objects

fn partial_object_metadata(obj: &Value) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), "PartialObjectMetadata".into());
    out.insert("apiVersion".into(), "meta.k8s.io/v1".into());
    let metadata = obj.get("metadata").filter(|m| m.is_object()).cloned();
    out.insert("metadata".into(), metadata.unwrap_or_else(|| Value::Object(Map::new())));
    Value::Object(out)
}

/// The object as stored, with `apiVersion` and `kind` first (filled in from `info` if absent).
fn whole_object(info: &ResourceInfo, obj: &Value) -> Value {
    let Some(fields) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = Map::new();
    let api_version = fields.get("apiVersion").cloned().unwrap_or_else(|| info.api_version().into());
    let kind = fields.get("kind").cloned().unwrap_or_else(|| info.kind.into());
    out.insert("apiVersion".into(), api_version);
    out.insert("kind".into(), kind);
    for (k, v) in fields {
        if k != "apiVersion" && k != "kind" {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------------------
// Columns

#[derive(Debug, Clone, Copy)]
struct Column {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    priority: u8,
    description: &'static str,
}

impl Column {
    fn to_json(self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), self.name.into());
        m.insert("type".into(), self.ty.into());
        m.insert("format".into(), self.format.into());
        m.insert("description".into(), self.description.into());
        m.insert("priority".into(), self.priority.into());
        Value::Object(m)
    }
}

const fn col(name: &'static str, ty: &'static str, description: &'static str) -> Column {
    Column { name, ty, format: "", priority: 0, description }
}

/// A column shown only with `-o wide`.
const fn wide(name: &'static str, ty: &'static str, description: &'static str) -> Column {
    Column { name, ty, format: "", priority: 1, description }
}

/// Columns and descriptions several printers share; each printer's own column table sits
/// beside its cells in the group's module.
#[rustfmt::skip]
mod columns {
    use super::{Column, col, wide};

    pub(super) const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
    pub(super) const CREATED_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
    pub(super) const CONTAINERS_DOC: &str = "Names of each container in the template.";
    pub(super) const IMAGES_DOC: &str = "Images referenced by each container in the template.";
    pub(super) const SELECTOR_DOC: &str = "A label query over pods that should match the replica count.";

    pub(super) const NAME: Column = Column { name: "Name", ty: "string", format: "name", priority: 0, description: NAME_DOC, };
    pub(super) const AGE: Column = col("Age", "string", CREATED_DOC);
    pub(super) const CONTAINERS: Column = wide("Containers", "string", CONTAINERS_DOC);
    pub(super) const IMAGES: Column = wide("Images", "string", IMAGES_DOC);
    pub(super) const SELECTOR: Column = wide("Selector", "string", SELECTOR_DOC);

    /// The generic convertor (`k8s.io/apiserver/pkg/registry/rest.defaultTableConvertor`).
    pub(super) const DEFAULT_COLUMNS: &[Column] = &[NAME, col("Created At", "date", CREATED_DOC)];
}

use columns::*;

// ---------------------------------------------------------------------------------------
// Printers

type Cells = fn(&Value, DateTime<Utc>) -> Vec<Value>;

struct Printer {
    columns: &'static [Column],
    cells: Cells,
    conditions: Option<fn(&Value) -> Option<Value>>,
}

fn printer_for(info: &ResourceInfo) -> Printer {
    let (columns, cells): (&'static [Column], Cells) = match (info.group, info.kind) {
        ("", "Pod") => {
            return Printer { columns: core::POD_COLUMNS, cells: core::pod_cells, conditions: Some(core::pod_conditions) };
        }
        ("", "Service") => (core::SERVICE_COLUMNS, core::service_cells),
        ("", "Endpoints") => (core::ENDPOINTS_COLUMNS, core::endpoints_cells),
        ("", "ConfigMap") => (core::CONFIG_MAP_COLUMNS, core::config_map_cells),
        ("", "Secret") => (core::SECRET_COLUMNS, core::secret_cells),
        ("", "Event") => (core::EVENT_COLUMNS, core::core_event_cells),
        ("events.k8s.io", "Event") => (core::EVENT_COLUMNS, core::events_api_event_cells),
        ("", "ServiceAccount") => (core::SERVICE_ACCOUNT_COLUMNS, core::service_account_cells),
        ("", "Namespace") => (core::NAMESPACE_COLUMNS, core::namespace_cells),
        ("", "Node") => (core::NODE_COLUMNS, core::node_cells),
        ("", "PersistentVolume") => (storage::PERSISTENT_VOLUME_COLUMNS, storage::persistent_volume_cells),
        ("", "PersistentVolumeClaim") => (storage::PERSISTENT_VOLUME_CLAIM_COLUMNS, storage::persistent_volume_claim_cells),
        ("", "ResourceQuota") => (core::RESOURCE_QUOTA_COLUMNS, core::resource_quota_cells),
        ("apps", "Deployment") => (apps::DEPLOYMENT_COLUMNS, apps::deployment_cells),
        ("apps", "ReplicaSet") => (apps::REPLICA_SET_COLUMNS, apps::replica_set_cells),
        ("apps", "StatefulSet") => (apps::STATEFUL_SET_COLUMNS, apps::stateful_set_cells),
        ("apps", "DaemonSet") => (apps::DAEMON_SET_COLUMNS, apps::daemon_set_cells),
        ("apps", "ControllerRevision") => (apps::CONTROLLER_REVISION_COLUMNS, apps::controller_revision_cells),
        ("batch", "Job") => (batch::JOB_COLUMNS, batch::job_cells),
        ("batch", "CronJob") => (batch::CRON_JOB_COLUMNS, batch::cron_job_cells),
        ("networking.k8s.io", "Ingress") => (networking::INGRESS_COLUMNS, networking::ingress_cells),
        ("networking.k8s.io", "IngressClass") => (networking::INGRESS_CLASS_COLUMNS, networking::ingress_class_cells),
        ("networking.k8s.io", "NetworkPolicy") => (networking::NETWORK_POLICY_COLUMNS, networking::network_policy_cells),
        ("discovery.k8s.io", "EndpointSlice") => (networking::ENDPOINT_SLICE_COLUMNS, networking::endpoint_slice_cells),
        ("coordination.k8s.io", "Lease") => (core::LEASE_COLUMNS, core::lease_cells),
        ("rbac.authorization.k8s.io", "RoleBinding") => (rbac::ROLE_BINDING_COLUMNS, rbac::role_binding_cells),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => (rbac::CLUSTER_ROLE_BINDING_COLUMNS, rbac::role_binding_cells),
        ("storage.k8s.io", "StorageClass") => (storage::STORAGE_CLASS_COLUMNS, storage::storage_class_cells),
        ("autoscaling", "HorizontalPodAutoscaler") => (policy::HPA_COLUMNS, policy::hpa_cells),
        ("policy", "PodDisruptionBudget") => (policy::POD_DISRUPTION_BUDGET_COLUMNS, policy::pod_disruption_budget_cells),
        ("scheduling.k8s.io", "PriorityClass") => (policy::PRIORITY_CLASS_COLUMNS, policy::priority_class_cells),
        ("certificates.k8s.io", "CertificateSigningRequest") => (certificates::CSR_COLUMNS, certificates::csr_cells),
        // Role, ClusterRole, LimitRange and anything else: Kubernetes has no printer.
        _ => (DEFAULT_COLUMNS, default_cells),
    };
    Printer { columns, cells, conditions: None }
}

fn default_cells(obj: &Value, _now: DateTime<Utc>) -> Vec<Value> {
    // Go formats the zero time too.
    let created = time(obj, &["metadata", "creationTimestamp"])
        .map_or_else(|| "0001-01-01T00:00:00Z".to_string(), |t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
    vec![name(obj).into(), created.into()]
}

// ---------------------------------------------------------------------------------------
// Formatting helpers shared by the printers

/// `labels.FormatLabels`: "k=v,…" sorted by key, or "<none>".
fn format_labels(map: Option<&Value>) -> String {
    let Some(map) = map.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        return "<none>".into();
    };
    let mut pairs: Vec<String> = map.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect();
    pairs.sort();
    pairs.join(",")
}

/// `metav1.FormatLabelSelector`: the selector string, "<none>" when it selects everything
/// or nothing, "<error>" when malformed.
fn format_label_selector(selector: Option<&Value>) -> String {
    match selector_string(selector) {
        Ok(s) if s.is_empty() => "<none>".into(),
        Ok(s) => s,
        Err(()) => "<error>".into(),
    }
}

/// `LabelSelectorAsSelector(...).String()`: requirements sorted by key, "" for nil or empty.
fn selector_string(selector: Option<&Value>) -> Result<String, ()> {
    let Some(selector) = selector else {
        return Ok(String::new());
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(labels) = get(selector, &["matchLabels"]).and_then(Value::as_object) {
        for (key, value) in labels {
            requirements.push((key.clone(), format!("{key}={}", value.as_str().unwrap_or(""))));
        }
    }
    for expr in list(selector, &["matchExpressions"]) {
        let key = text(expr, &["key"]);
        let mut values = strings(list(expr, &["values"]));
        values.sort_unstable();
        let rendered = match text(expr, &["operator"]) {
            "In" | "NotIn" if values.is_empty() => return Err(()),
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" | "DoesNotExist" if !values.is_empty() => return Err(()),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return Err(()),
        };
        requirements.push((key.to_string(), rendered));
    }
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(requirements.into_iter().map(|(_, r)| r).collect::<Vec<_>>().join(","))
}

/// Container names and images of a pod template, comma-joined.
fn container_cells(obj: &Value, path: &[&str]) -> (String, String) {
    let containers = list(obj, path);
    let names: Vec<&str> = containers.iter().map(|c| text(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

/// Sorted, de-duplicated IPs (or hostnames) of load-balancer ingress points.
fn load_balancer_addresses(ingress: &[Value]) -> Vec<String> {
    let set: BTreeSet<&str> = ingress
        .iter()
        .filter_map(|i| match (text(i, &["ip"]), text(i, &["hostname"])) {
            ("", "") => None,
            ("", host) => Some(host),
            (ip, _) => Some(ip),
        })
        .collect();
    set.into_iter().map(str::to_string).collect()
}

/// A quantity as stored; a missing one is the zero quantity, "0".
fn quantity(q: Option<&Value>) -> String {
    match q {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".into(),
    }
}

fn default_str<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() { default } else { s }
}

// ---------------------------------------------------------------------------------------
// JSON access: absent, null and mistyped fields read as empty / zero.

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, key| cur.get(key)).filter(|v| !v.is_null())
}

fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    get(v, path).and_then(Value::as_str).unwrap_or("")
}

fn opt_int(v: &Value, path: &[&str]) -> Option<i64> {
    get(v, path).and_then(Value::as_i64)
}

fn int(v: &Value, path: &[&str]) -> i64 {
    opt_int(v, path).unwrap_or(0)
}

fn flag(v: &Value, path: &[&str]) -> bool {
    get(v, path).and_then(Value::as_bool).unwrap_or(false)
}

fn list<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn strings(values: &[Value]) -> Vec<&str> {
    values.iter().filter_map(Value::as_str).collect()
}

fn entries(v: &Value, path: &[&str]) -> usize {
    get(v, path).and_then(Value::as_object).map_or(0, Map::len)
}

fn time(v: &Value, path: &[&str]) -> Option<DateTime<Utc>> {
    let s = get(v, path)?.as_str()?;
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

fn name(obj: &Value) -> &str {
    text(obj, &["metadata", "name"])
}

/// The AGE cell: "<unknown>" without a creationTimestamp.
fn age(obj: &Value, now: DateTime<Utc>) -> Value {
    match time(obj, &["metadata", "creationTimestamp"]) {
        Some(t) => human_duration(now - t).into(),
        None => "<unknown>".into(),
    }
}

/// Fixtures the per-group tests share.
#[cfg(test)]
mod fixtures {
    use chrono::{DateTime, Duration, SecondsFormat, Utc};
    use serde_json::Value;

    use super::super::resources::{ResourceInfo, find_kind};
    use super::{IncludeObject, table};

    pub(super) fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-06-01T12:00:00Z").map(|t| t.with_timezone(&Utc)).expect("valid time")
    }

    /// RFC3339 of `now` minus `secs` seconds.
    pub(super) fn ago(secs: i64) -> String {
        (now() - Duration::seconds(secs)).to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    pub(super) fn info(group: &str, kind: &str) -> &'static ResourceInfo {
        find_kind(group, kind).expect("served kind")
    }

    /// Builds a table of one object and returns (column names, cells of row 0).
    pub(super) fn row(group: &str, kind: &str, obj: Value) -> (Vec<String>, Vec<Value>) {
        let t = table(info(group, kind), &[&obj], IncludeObject::None, now(), "1", None);
        let names = t["columnDefinitions"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| c["name"].as_str().expect("name").to_string())
            .collect();
        let cells = t["rows"][0]["cells"].as_array().expect("cells").clone();
        (names, cells)
    }

    pub(super) fn cells(group: &str, kind: &str, obj: Value) -> Vec<Value> {
        row(group, kind, obj).1
    }
}

#[cfg(test)]
mod tests {
    use super::super::resources::{RESOURCES, find};
    use super::fixtures::{ago, info, now};
    use super::*;
    use serde_json::json;

    #[test]
    fn human_duration_matches_apimachinery() {
        let cases: &[(i64, &str)] = &[
            (-3, "<invalid>"),
            (-2, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (123, "2m3s"),
            (599, "9m59s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 4 * 60 + 59, "3h4m"),
            (8 * 3600 - 1, "7h59m"),
            (8 * 3600, "8h"),
            (48 * 3600 - 1, "47h"),
            (48 * 3600, "2d"),
            (2 * 86400 + 5 * 3600, "2d5h"),
            (8 * 86400 - 1, "7d23h"),
            (8 * 86400, "8d"),
            (730 * 86400 - 1, "729d"),
            (730 * 86400, "2y"),
            ((3 * 365 + 45) * 86400, "3y45d"),
            (8 * 365 * 86400, "8y"),
            (20 * 365 * 86400, "20y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(Duration::seconds(*secs)), *want, "{secs}s");
        }
        // Go truncates toward zero: -1.5s is "0s".
        assert_eq!(human_duration(Duration::milliseconds(-1500)), "0s");
        assert_eq!(human_duration(Duration::milliseconds(119_999)), "119s");
    }

    #[test]
    fn include_object_parses_query_values() {
        assert_eq!(IncludeObject::from_query(None), Ok(IncludeObject::Metadata));
        assert_eq!(IncludeObject::from_query(Some("")), Ok(IncludeObject::Metadata));
        assert_eq!(IncludeObject::from_query(Some("None")), Ok(IncludeObject::None));
        assert_eq!(IncludeObject::from_query(Some("Object")), Ok(IncludeObject::Object));
        let err = IncludeObject::from_query(Some("object")).expect_err("case-sensitive");
        assert_eq!(
            err.to_string(),
            "includeObject: Invalid value: \"object\": must be 'Metadata', 'Object', 'None', or empty"
        );
    }

    #[test]
    fn table_envelope_and_row_objects() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "ns", "creationTimestamp": ago(10), "labels": {"a": "b"}},
            "data": {"x": "1"}});
        let info = find("", "v1", "configmaps").expect("configmaps");
        let t = table(info, &[&cm], IncludeObject::Metadata, now(), "42", Some("tok"));
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"], json!({"resourceVersion": "42", "continue": "tok"}));
        assert_eq!(
            t["columnDefinitions"][0],
            json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DOC, "priority": 0})
        );
        assert_eq!(
            t["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": cm["metadata"]})
        );
        assert_eq!(t["rows"][0]["cells"], json!(["c", 1, "10s"]));

        let t = table(info, &[&cm], IncludeObject::None, now(), "42", None);
        assert_eq!(t["metadata"], json!({"resourceVersion": "42"}));
        assert!(t["rows"][0].get("object").is_none());

        // Whole objects get apiVersion/kind even if the stored JSON lacks them.
        let bare = json!({"metadata": {"name": "c"}});
        let t = table(info, &[&bare], IncludeObject::Object, now(), "", Some(""));
        assert_eq!(t["metadata"], json!({}));
        assert_eq!(t["rows"][0]["object"], json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}));
    }

    #[test]
    fn every_kind_has_one_cell_per_column() {
        let empty = json!({});
        let minimal = json!({"metadata": {"name": "x", "creationTimestamp": ago(61)}});
        for info in RESOURCES {
            for obj in [&empty, &minimal] {
                let t = table(info, &[obj], IncludeObject::Metadata, now(), "1", None);
                let columns = t["columnDefinitions"].as_array().expect("columns").len();
                let cells = t["rows"][0]["cells"].as_array().expect("cells").len();
                assert_eq!(columns, cells, "{} {}", info.group, info.kind);
            }
        }
    }

    #[test]
    fn kinds_without_printers_use_the_default_convertor() {
        for (group, kind) in
            [("rbac.authorization.k8s.io", "Role"), ("rbac.authorization.k8s.io", "ClusterRole"), ("", "LimitRange")]
        {
            let t = table(
                info(group, kind),
                &[&json!({"metadata": {"name": "r", "creationTimestamp": "2024-03-04T05:06:07Z"}})],
                IncludeObject::None,
                now(),
                "",
                None,
            );
            assert_eq!(t["columnDefinitions"][1]["name"], "Created At");
            assert_eq!(t["columnDefinitions"][1]["type"], "date");
            assert_eq!(t["rows"][0]["cells"], json!(["r", "2024-03-04T05:06:07Z"]));
        }
    }

    #[test]
    fn label_selectors() {
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(
            format_label_selector(Some(&json!({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}))),
            "<error>"
        );
        let sel = json!({"matchLabels": {"z": "1"}, "matchExpressions": [
            {"key": "a", "operator": "Exists"}, {"key": "m", "operator": "DoesNotExist"},
            {"key": "b", "operator": "NotIn", "values": ["y", "x"]}]});
        assert_eq!(format_label_selector(Some(&sel)), "a,b notin (x,y),!m,z=1");
        assert_eq!(
            selector_string(Some(&json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}))),
            Err(())
        );
    }
}
