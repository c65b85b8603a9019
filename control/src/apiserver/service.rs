//! Object operations with Kubernetes semantics, shared by the HTTP handlers and the
//! in-process controllers: create, update, patch, delete, get, list.
//!
//! Invariants: every write goes through the store with a resourceVersion precondition
//! taken from the object it was computed from, so a concurrent write makes it fail with
//! Conflict (and internal read-modify-write loops retry) — nothing is half-written.
//! Server-owned metadata (uid, creationTimestamp, generation, deletionTimestamp,
//! resourceVersion) is never taken from clients.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::error::{ApiError, Cause};
use super::patch::{apply as ssa, strategic};
use super::resources::{self, ResourceInfo};
use super::service_ip::ServiceRange;
use super::{defaults, schema, typed};
use crate::store::{Op, Precondition, Store, StoreError, Stored};

mod cluster_ip;
mod node_ports;

/// Time source, injected so tests of time-based behaviour need no waiting.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that runs `rate` times as fast as the wall clock from the moment it is made,
/// so end-to-end tests of schedules (CronJobs, back-offs, deadlines) need not wait real
/// minutes. Rate 1 is the wall clock.
pub struct ScaledClock {
    start_real: std::time::Instant,
    start: DateTime<Utc>,
    rate: f64,
}

impl ScaledClock {
    pub fn new(rate: f64) -> Self {
        ScaledClock { start_real: std::time::Instant::now(), start: Utc::now(), rate: if rate.is_finite() && rate > 0.0 { rate } else { 1.0 } }
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = self.start_real.elapsed().as_secs_f64() * self.rate;
        self.start + chrono::Duration::microseconds((elapsed * 1e6) as i64)
    }
}

pub(crate) fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// How unknown fields in a request body are treated (`fieldValidation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

/// Options every write takes.
#[derive(Clone, Debug)]
pub(crate) struct WriteOptions {
    pub dry_run: bool,
    pub field_manager: String,
    pub field_validation: FieldValidation,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { dry_run: false, field_manager: "flotilla".into(), field_validation: FieldValidation::Ignore }
    }
}

/// A write's result: the object and any warnings for the `Warning` header.
#[derive(Debug)]
pub(crate) struct Written {
    pub object: Value,
    pub warnings: Vec<String>,
    /// True when the write created the object (201 rather than 200).
    pub created: bool,
}

/// Patch formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub(crate) fn from_content_type(ct: &str) -> Option<PatchType> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(PatchType::Apply),
            _ => None,
        }
    }
}

/// Which part of an object a write addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    Main,
    Status,
}

/// DeleteOptions that matter here.
#[derive(Clone, Debug, Default)]
pub(crate) struct DeleteOptions {
    pub propagation: Option<String>,
    pub grace_period_seconds: Option<i64>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Reads a DeleteOptions body (JSON) over what the query gave.
    pub(crate) fn merge_body(&mut self, body: &Value) {
        if let Some(p) = body["propagationPolicy"].as_str() {
            self.propagation = Some(p.to_string());
        } else if body["orphanDependents"] == json!(true) {
            self.propagation = Some("Orphan".into());
        } else if body["orphanDependents"] == json!(false) {
            self.propagation = Some("Background".into());
        }
        if let Some(g) = body["gracePeriodSeconds"].as_i64() {
            self.grace_period_seconds = Some(g);
        }
        if let Some(u) = body.pointer("/preconditions/uid").and_then(Value::as_str) {
            self.uid = Some(u.to_string());
        }
        if let Some(r) = body.pointer("/preconditions/resourceVersion").and_then(Value::as_str) {
            self.resource_version = Some(r.to_string());
        }
        if body["dryRun"].as_array().is_some_and(|a| a.iter().any(|v| v == "All")) {
            self.dry_run = true;
        }
    }
}

const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];
pub(crate) const CONFLICT_RETRIES: usize = 16;
/// Kubernetes' limit on JSON patch operations.
const MAX_JSON_PATCH_OPS: usize = 10_000;
/// Largest object stored (patches can grow one past the request-body limit).
const MAX_OBJECT_BYTES: usize = 3 * 1024 * 1024;

/// Rejects objects too large to store, whatever write produced them.
fn check_size(v: &Value) -> Result<(), ApiError> {
    let mut counter = ByteCounter(0);
    if serde_json::to_writer(&mut counter, v).is_err() || counter.0 > MAX_OBJECT_BYTES {
        return Err(ApiError::new(413, "RequestEntityTooLarge", format!("Request entity too large: the object exceeds {MAX_OBJECT_BYTES} bytes")));
    }
    Ok(())
}

/// Counts bytes written and stops early once over the limit.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        if self.0 > MAX_OBJECT_BYTES {
            return Err(std::io::Error::other("object too large"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The object operations.
#[derive(Clone)]
pub struct Api {
    pub(crate) store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    /// Where Service ClusterIPs come from (`--service-cidr`).
    pub(crate) service_range: ServiceRange,
    /// Where Service node ports come from (`--service-node-port-range`).
    pub(crate) node_port_range: super::node_port::NodePortRange,
}

/// Storage key of an object.
/// Five characters of Kubernetes' suffix alphabet (no vowels, so no words; no look-alikes),
/// as generateName and generated volume names use.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4().as_bytes().iter().take(5).map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect()
}

pub(crate) fn key(info: &ResourceInfo, ns: Option<&str>, name: &str) -> String {
    match (info.namespaced, ns) {
        (true, Some(ns)) => format!("{}/{}/{}", info.store_prefix(), ns, name),
        _ => format!("{}/{}", info.store_prefix(), name),
    }
}

/// Key prefix of a collection (all namespaces when `ns` is None).
pub(crate) fn prefix(info: &ResourceInfo, ns: Option<&str>) -> String {
    match (info.namespaced, ns) {
        (true, Some(ns)) => format!("{}/{}/", info.store_prefix(), ns),
        _ => format!("{}/", info.store_prefix()),
    }
}

fn meta(v: &Value) -> &Value {
    &v["metadata"]
}

fn meta_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v["metadata"].is_object() {
        v["metadata"] = json!({});
    }
    v["metadata"].as_object_mut().expect("metadata is an object")
}

pub(crate) fn name_of(v: &Value) -> &str {
    meta(v)["name"].as_str().unwrap_or("")
}

fn has_status_subresource(info: &ResourceInfo) -> bool {
    info.subresources.contains(&"status")
}

/// Everything but metadata and status: what bumps generation when it changes.
fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("metadata");
            o.remove("status");
            o.remove("apiVersion");
            o.remove("kind");
        }
        v
    };
    strip(old) != strip(new)
}

/// Equal apart from resourceVersion and managedFields timestamps: a write that changes
/// nothing is not stored (Kubernetes does the same, keeping resourceVersion).
fn same_object(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            if let Some(Value::Array(mf)) = m.get_mut("managedFields") {
                for e in mf {
                    if let Some(o) = e.as_object_mut() {
                        o.remove("time");
                    }
                }
            }
        }
        v
    };
    strip(old) == strip(new)
}

/// An apply configuration must fit the kind's schema: structured-merge-diff cannot build
/// a typed patch from unknown fields, whatever `fieldValidation` says.
fn check_apply_config(info: &ResourceInfo, ns: Option<&str>, name: &str, config: &Value) -> Result<(), ApiError> {
    let Some(root) = schema::schemas().root(info) else { return Ok(()) };
    let unknown = schema::unknown_fields(root, config);
    if unknown.is_empty() {
        return Ok(());
    }
    let fields: Vec<String> = unknown.iter().map(|f| format!(".{f}: field not declared in schema")).collect();
    let object = match ns {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    };
    Err(ApiError::bad_request(format!(
        "failed to create typed patch object ({object}; {}, Kind={}): {}",
        info.api_version(),
        info.kind,
        fields.join("\n")
    )))
}

/// Kubernetes never stores empty labels, annotations or finalizers.
fn drop_empty_maps(v: &mut Value) {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["labels", "annotations", "finalizers", "ownerReferences"] {
            let empty = match m.get(k) {
                Some(Value::Object(o)) => o.is_empty(),
                Some(Value::Array(a)) => a.is_empty(),
                Some(Value::Null) => true,
                _ => false,
            };
            if empty {
                m.remove(k);
            }
        }
    }
}

impl Api {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Api { store, clock, service_range: ServiceRange::default(), node_port_range: Default::default() }
    }

    /// Allocates Service ClusterIPs from `range` rather than the default 10.43.0.0/16.
    pub(crate) fn with_service_range(mut self, range: ServiceRange) -> Self {
        self.service_range = range;
        self
    }

    fn now(&self) -> String {
        timestamp(self.clock.now())
    }

    pub(crate) fn get(&self, info: &ResourceInfo, ns: Option<&str>, name: &str) -> Result<Arc<Stored>, ApiError> {
        self.store.get(&key(info, ns, name)).ok_or_else(|| ApiError::not_found(info, name))
    }

    /// Checks apiVersion/kind of a body against the endpoint and fills them in if absent.
    fn check_type(&self, info: &ResourceInfo, body: &mut Value) -> Result<(), ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request("the body of the request is not a JSON object"));
        }
        let want_av = info.api_version();
        match body["apiVersion"].as_str() {
            None | Some("") => body["apiVersion"] = json!(want_av),
            Some(av) if av == want_av => {}
            Some(av) => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({want_av})"
                )));
            }
        }
        match body["kind"].as_str() {
            None | Some("") => body["kind"] = json!(info.kind),
            Some(k) if k == info.kind => {}
            Some(k) => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    info.kind
                )));
            }
        }
        Ok(())
    }

    /// Unknown fields and type errors, per `fieldValidation`.
    /// Type errors and unknown fields, per `fieldValidation`; unknown fields are dropped
    /// (as Kubernetes' decoder does) unless Strict rejects them.
    fn check_fields(&self, info: &ResourceInfo, body: &mut Value, fv: FieldValidation) -> Result<Vec<String>, ApiError> {
        typed::check(info, body).map_err(|e| {
            ApiError::bad_request(format!("{} in version \"{}\" cannot be handled as a {}: {}", info.kind, info.version, info.kind, e))
        })?;
        let Some(root) = schema::schemas().root(info) else { return Ok(vec![]) };
        let unknown = schema::unknown_fields(root, body);
        if unknown.is_empty() {
            return Ok(vec![]);
        }
        schema::prune_unknown(root, body);
        let list: Vec<String> = unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect();
        match fv {
            FieldValidation::Strict => Err(ApiError::bad_request(format!("strict decoding error: {}", list.join(", ")))),
            FieldValidation::Warn => Ok(list),
            FieldValidation::Ignore => Ok(vec![]),
        }
    }

    fn invalid(info: &ResourceInfo, name: &str, causes: Vec<flotilla_api::validation::Cause>) -> ApiError {
        let kind = flotilla_api::validation::qualified_kind(info.group, info.kind);
        let message = flotilla_api::validation::invalid_message(&kind, name, &causes);
        let causes = causes
            .into_iter()
            .map(|c| Cause { reason: c.reason.to_string(), message: c.message, field: c.field })
            .collect();
        ApiError::invalid(info, name, message, causes)
    }

    fn check_namespace_open(&self, info: &ResourceInfo, ns: Option<&str>, name: &str) -> Result<(), ApiError> {
        if !info.namespaced {
            return Ok(());
        }
        let Some(ns) = ns else {
            return Err(ApiError::bad_request("the namespace of the object must be set"));
        };
        let nsinfo = resources::find("", "v1", "namespaces").expect("namespaces served");
        let Some(n) = self.store.get(&key(nsinfo, None, ns)) else {
            return Err(ApiError::not_found(nsinfo, ns));
        };
        if !n.value["metadata"]["deletionTimestamp"].is_null() {
            return Err(ApiError::forbidden(format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                info.qualified_plural(),
                name,
                ns
            )));
        }
        Ok(())
    }

    /// POST to a collection.
    pub(crate) async fn create(&self, info: &ResourceInfo, ns: Option<&str>, mut body: Value, opts: &WriteOptions) -> Result<Written, ApiError> {
        self.check_type(info, &mut body)?;
        let mut warnings = self.check_fields(info, &mut body, opts.field_validation)?;
        // Namespace: from the URL; a different one in the body is an error.
        if info.namespaced {
            let url_ns = ns.unwrap_or("default");
            match meta(&body)["namespace"].as_str() {
                Some(b) if !b.is_empty() && b != url_ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta_mut(&mut body).insert("namespace".into(), json!(url_ns));
                }
            }
        } else {
            meta_mut(&mut body).remove("namespace");
        }
        let ns = if info.namespaced { Some(ns.unwrap_or("default").to_string()) } else { None };
        if name_of(&body).is_empty()
            && let Some(g) = meta(&body)["generateName"].as_str().filter(|g| !g.is_empty())
        {
            let name = format!("{g}{}", random_suffix());
            meta_mut(&mut body).insert("name".into(), json!(name));
        }
        self.prepare_create(info, &mut body, &opts.field_manager);
        self.admit_priority(info, &mut body)?;
        self.admit_service_account(info, &mut body)?;
        if let Some(ns) = ns.as_deref() {
            self.admit_limit_ranges(info, ns, &mut body)?;
        }
        warnings.extend(self.admit_pod_security(info, ns.as_deref(), None, &body)?);
        drop_empty_maps(&mut body);
        check_size(&body)?;
        let name = name_of(&body).to_string();
        let causes = self.validate_created(info, &mut body);
        if !causes.is_empty() {
            return Err(Self::invalid(info, &name, causes));
        }
        self.check_namespace_open(info, ns.as_deref(), &name)?;
        if opts.dry_run {
            if self.store.get(&key(info, ns.as_deref(), &name)).is_some() {
                return Err(ApiError::already_exists(info, &name));
            }
            self.check_requested_ip(info, ns.as_deref(), &body)?;
            return Ok(Written { object: body, warnings, created: true });
        }
        let stored = self.write_created(info, ns.as_deref(), &name, body).await?;
        Ok(Written { object: stored.value.clone(), warnings, created: true })
    }

    /// ServiceAccount admission of a new Pod (`service_accounts::admit_pod`): 403 when it
    /// names an account that does not exist.
    fn admit_service_account(&self, info: &ResourceInfo, pod: &mut Value) -> Result<(), ApiError> {
        if !(info.group.is_empty() && info.kind == "Pod") {
            return Ok(());
        }
        let sa_info = super::resources::find("", "v1", "serviceaccounts").expect("served");
        let ns = meta(pod)["namespace"].as_str().unwrap_or("default").to_string();
        let account = self.store.get(&key(sa_info, Some(&ns), super::service_accounts::account_name(&pod["spec"])));
        super::service_accounts::admit_pod(pod, account.as_ref().map(|a| &a.value), &random_suffix())
            .map_err(|why| ApiError::forbidden(format!("pods \"{}\" is forbidden: {why}", name_of(pod))))
    }

    /// LimitRanger: a new Pod gets the namespace's default limits and requests, and is
    /// refused (403) when it breaks a min, max or ratio.
    fn admit_limit_ranges(&self, info: &ResourceInfo, ns: &str, pod: &mut Value) -> Result<(), ApiError> {
        if !(info.group.is_empty() && info.kind == "Pod") {
            return Ok(());
        }
        let Some(ranges_info) = super::resources::find("", "v1", "limitranges") else { return Ok(()) };
        let ranges = self.store.list_keys(&prefix(ranges_info, Some(ns)));
        if ranges.is_empty() {
            return Ok(());
        }
        let ranges: Vec<&Value> = ranges.iter().map(|(_, s)| &s.value).collect();
        if super::limit_range::apply_defaults(&ranges, pod) {
            // The defaults may change the pod's QoS class.
            let qos = flotilla_api::pod::qos_class(&pod["spec"]);
            pod["status"]["qosClass"] = json!(qos);
        }
        let errors = super::limit_range::violations(&ranges, pod);
        if errors.is_empty() {
            return Ok(());
        }
        Err(ApiError::forbidden(format!("{} \"{}\" is forbidden: {}", info.qualified_plural(), name_of(pod), super::limit_range::aggregate(&errors))))
    }

    /// ResourceQuota admission for a create in `ns`: Err (403) when it would exceed a quota
    /// of the namespace. Usage is counted from the store, so the caller holds the
    /// namespace's quota lock until its write is done.
    pub(super) fn admit_quotas(&self, info: &ResourceInfo, ns: &str, obj: &Value) -> Result<(), ApiError> {
        let Some(quotas_info) = super::resources::find("", "v1", "resourcequotas") else { return Ok(()) };
        let quotas = self.store.list_keys(&prefix(quotas_info, Some(ns)));
        for (_, q) in &quotas {
            let q = &q.value;
            if super::quota::usage_of(q, info, obj).values().all(|v| *v <= 0.0) && !(info.group.is_empty() && info.kind == "Pod") {
                continue;
            }
            let used = super::quota::usage(q, self.namespace_objects(q, ns).iter().map(|(i, s)| (*i, &s.value)));
            if let Err(why) = super::quota::check(q, &used, info, obj) {
                return Err(ApiError::forbidden(format!("{} \"{}\" is forbidden: {why}", info.qualified_plural(), name_of(obj))));
            }
        }
        Ok(())
    }

    /// Whether namespace `ns` has a ResourceQuota (creates elsewhere skip quota admission
    /// and its lock).
    pub(super) fn has_quotas(&self, ns: Option<&str>) -> bool {
        let Some(quotas) = super::resources::find("", "v1", "resourcequotas") else { return false };
        ns.is_some_and(|ns| !self.store.list_keys(&prefix(quotas, Some(ns))).is_empty())
    }

    /// The objects of `ns` that the resources `quota` limits are counted over.
    pub(crate) fn namespace_objects(&self, quota: &Value, ns: &str) -> Vec<(&'static ResourceInfo, Arc<Stored>)> {
        let mut kinds: Vec<&'static ResourceInfo> = Vec::new();
        let mut add = |i: Option<&'static ResourceInfo>| {
            if let Some(i) = i
                && i.namespaced
                && !kinds.iter().any(|k| std::ptr::eq(*k, i))
            {
                kinds.push(i);
            }
        };
        for name in quota["spec"]["hard"].as_object().into_iter().flat_map(|h| h.keys()) {
            let plural = match name.as_str() {
                "services.nodeports" | "services.loadbalancers" => "services".to_string(),
                "requests.storage" => "persistentvolumeclaims".to_string(),
                n => match n.strip_prefix("count/") {
                    Some(rest) => rest.to_string(),
                    None if n.contains('.') || matches!(n, "cpu" | "memory" | "ephemeral-storage") => "pods".to_string(),
                    None => n.to_string(),
                },
            };
            let (plural, group) = plural.split_once('.').map_or((plural.as_str(), ""), |(p, g)| (p, g));
            add(super::resources::RESOURCES.iter().find(|r| r.group == group && r.plural == plural));
        }
        kinds.into_iter().flat_map(|i| self.store.list_keys(&prefix(i, Some(ns))).into_iter().map(move |(_, s)| (i, s))).collect()
    }

    /// Server-set fields of a new object.
    fn prepare_create(&self, info: &ResourceInfo, body: &mut Value, manager: &str) {
        let now = self.now();
        let m = meta_mut(body);
        for k in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
            m.remove(k);
        }
        uuid_and_time(body, &now);
        if body.get("spec").is_some() {
            meta_mut(body).insert("generation".into(), json!(1));
        } else {
            meta_mut(body).remove("generation");
        }
        if has_status_subresource(info)
            && let Some(o) = body.as_object_mut()
        {
            o.remove("status");
        }
        if info.group == "networking.k8s.io" && info.kind == "Ingress" {
            super::ingress_class::admit(self, body);
        }
        defaults::apply(info, body);
        if info.group.is_empty() && info.kind == "Pod"
            && let Some(spec) = body.get_mut("spec")
        {
            defaults::requests_from_limits(spec);
            // The QoS class follows the requests it now has.
            body["status"]["qosClass"] = json!(flotilla_api::pod::qos_class(&body["spec"]));
        }
        let schema = schema::schemas().root(info);
        ssa::track_update(None, body, manager, schema.as_ref(), &info.api_version(), &now);
    }

    /// Carries server-owned state from `old` into `new` for an update of `part`.
    fn prepare_update(&self, info: &ResourceInfo, old: &Value, mut new: Value, part: Part, manager: &str) -> Value {
        if part == Part::Status {
            // A status write changes status only (and may carry metadata like conditions' owners).
            let mut merged = old.clone();
            match new.get_mut("status").map(Value::take) {
                Some(st) => merged["status"] = st,
                None => {
                    if let Some(o) = merged.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            new = merged;
        } else if has_status_subresource(info) {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
        {
            let old_meta = meta(old);
            let m = meta_mut(&mut new);
            for k in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "namespace", "name"] {
                match old_meta.get(k) {
                    Some(v) if !v.is_null() => {
                        m.insert(k.into(), v.clone());
                    }
                    _ => {
                        m.remove(k);
                    }
                }
            }
            // A deleting object can lose finalizers but not gain them.
        }
        defaults::apply(info, &mut new);
        cluster_ip::prepare_update(info, old, &mut new);
        let old_gen = meta(old)["generation"].as_i64();
        match old_gen {
            Some(g) => {
                let g = if spec_changed(old, &new) { g + 1 } else { g };
                meta_mut(&mut new).insert("generation".into(), json!(g));
            }
            None => {
                meta_mut(&mut new).remove("generation");
            }
        }
        let schema = schema::schemas().root(info);
        ssa::track_update(Some(old), &mut new, manager, schema.as_ref(), &info.api_version(), &self.now());
        new
    }

    /// Validates and stores `new` computed from `old` (resourceVersion precondition).
    async fn commit_update(&self, info: &ResourceInfo, ns: Option<&str>, name: &str, old: &Stored, mut new: Value, dry_run: bool) -> Result<(Value, Vec<String>), ApiError> {
        drop_empty_maps(&mut new);
        check_size(&new)?;
        let causes = self.validate_updated(info, &old.value, &mut new);
        if !causes.is_empty() {
            return Err(Self::invalid(info, name, causes));
        }
        if same_object(&old.value, &new) {
            return Ok((old.value.clone(), Vec::new()));
        }
        let warnings = self.admit_pod_security(info, ns, Some(&old.value), &new)?;
        if dry_run {
            if info.group.is_empty() && info.kind == "Service" {
                self.check_node_ports(ns.unwrap_or("default"), name, &new, Some(&old.value))?;
            }
            return Ok((new, warnings));
        }
        let stored = self.write_updated(info, ns, name, old, new).await?;
        Ok((stored.value.clone(), warnings))
    }

    /// PUT an object (or its status).
    pub(crate) async fn update(&self, info: &ResourceInfo, ns: Option<&str>, name: &str, mut body: Value, part: Part, opts: &WriteOptions) -> Result<Written, ApiError> {
        self.check_type(info, &mut body)?;
        let warnings = self.check_fields(info, &mut body, opts.field_validation)?;
        let body_name = name_of(&body).to_string();
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(b) = meta(&body)["namespace"].as_str()
            && info.namespaced
            && Some(b) != ns
            && !b.is_empty()
        {
            return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request"));
        }
        let wanted_rv = meta(&body)["resourceVersion"].as_str().map(str::to_string).filter(|s| !s.is_empty());
        for _ in 0..CONFLICT_RETRIES {
            let old = self.get(info, ns, name)?;
            if let Some(rv) = &wanted_rv
                && rv != &old.rv.to_string()
            {
                return Err(ApiError::conflict(info, name, &StoreError::Conflict.to_string()));
            }
            let new = self.prepare_update(info, &old.value, body.clone(), part, &opts.field_manager);
            match self.commit_update(info, ns, name, &old, new, opts.dry_run).await {
                Err(e) if e.code == 409 && e.reason == "Conflict" && wanted_rv.is_none() => continue,
                Err(e) => return Err(e),
                Ok((object, more)) => return Ok(Written { object, warnings: [warnings, more].concat(), created: false }),
            }
        }
        Err(ApiError::conflict(info, name, "too many concurrent writers; try again"))
    }

    /// PATCH an object (or its status); server-side apply creates a missing object.
    #[allow(clippy::too_many_arguments, reason = "mirrors the PATCH request's parameters")]
    pub(crate) async fn patch(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        kind: PatchType,
        patch: &Value,
        part: Part,
        force: bool,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        if kind == PatchType::Apply && opts.field_manager.is_empty() {
            return Err(ApiError::bad_request("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"));
        }
        let wanted_rv = patch.pointer("/metadata/resourceVersion").and_then(Value::as_str).map(str::to_string);
        for _ in 0..CONFLICT_RETRIES {
            let old = match self.store.get(&key(info, ns, name)) {
                Some(o) => o,
                None if kind == PatchType::Apply && part == Part::Main => {
                    return self.apply_create(info, ns, name, patch, opts).await;
                }
                None => return Err(ApiError::not_found(info, name)),
            };
            if let Some(rv) = &wanted_rv
                && rv != &old.rv.to_string()
            {
                return Err(ApiError::conflict(info, name, &StoreError::Conflict.to_string()));
            }
            let schema = schema::schemas().root(info);
            let mut warnings = Vec::new();
            let patched = match kind {
                PatchType::Json => {
                    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                    if ops.0.len() > MAX_JSON_PATCH_OPS {
                        return Err(ApiError::new(422, "Invalid", format!("the allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPS}, got {}", ops.0.len())));
                    }
                    let mut doc = old.value.clone();
                    // Copies can double the document op after op: bound the bytes they copy
                    // in all (Kubernetes' JSONPatchMaxCopyBytes) before anything is copied.
                    let mut copied = 0usize;
                    for op in &ops.0 {
                        if let json_patch::PatchOperation::Copy(c) = op
                            && let Some(v) = doc.pointer(c.from.as_str())
                        {
                            let mut counter = ByteCounter(copied);
                            let fits = serde_json::to_writer(&mut counter, v).is_ok();
                            copied = counter.0;
                            if !fits {
                                return Err(ApiError::new(413, "RequestEntityTooLarge", format!("Request entity too large: the patch copies more than {MAX_OBJECT_BYTES} bytes")));
                            }
                        }
                        json_patch::patch(&mut doc, std::slice::from_ref(op)).map_err(|e| {
                            ApiError::new(422, "Invalid", format!("the server rejected our request due to an error in our request: {e}"))
                        })?;
                    }
                    doc
                }
                PatchType::Merge => {
                    if !patch.is_object() {
                        return Err(ApiError::bad_request("merge patch must be a JSON object"));
                    }
                    let mut doc = old.value.clone();
                    json_patch::merge(&mut doc, patch);
                    doc
                }
                PatchType::Strategic => strategic::strategic_merge(&old.value, patch, schema.as_ref())
                    .map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?,
                PatchType::Apply => {
                    let mut config = patch.clone();
                    self.check_type(info, &mut config)?;
                    check_apply_config(info, ns, name, &config)?;
                    warnings = self.check_fields(info, &mut config, opts.field_validation)?;
                    if part == Part::Main && has_status_subresource(info)
                        && let Some(o) = config.as_object_mut()
                    {
                        o.remove("status");
                    }
                    match ssa::server_side_apply(Some(&old.value), &config, &opts.field_manager, force, schema.as_ref(), &info.api_version(), &self.now()) {
                        Ok(v) => v,
                        Err(ssa::ApplyError::Conflicts(c)) => {
                            let mut e = ApiError::new(409, "Conflict", ssa::conflict_message(&c));
                            e.causes = ssa::conflict_causes(&c)
                                .into_iter()
                                .map(|(reason, message, field)| Cause { reason, message, field })
                                .collect();
                            return Err(e);
                        }
                        Err(e) => return Err(ApiError::new(422, "Invalid", e.to_string())),
                    }
                }
            };
            if kind != PatchType::Apply {
                typed::check(info, &patched).map_err(|e| ApiError::new(422, "Invalid", e))?;
            }
            let new = if kind == PatchType::Apply {
                // Managed fields were computed by the apply itself.
                let mf = patched["metadata"]["managedFields"].clone();
                let mut n = self.prepare_update(info, &old.value, patched, part, &opts.field_manager);
                meta_mut(&mut n).insert("managedFields".into(), mf);
                n
            } else {
                self.prepare_update(info, &old.value, patched, part, &opts.field_manager)
            };
            match self.commit_update(info, ns, name, &old, new, opts.dry_run).await {
                Err(e) if e.code == 409 && e.reason == "Conflict" && wanted_rv.is_none() && e.causes.is_empty() => continue,
                Err(e) => return Err(e),
                Ok((object, more)) => return Ok(Written { object, warnings: [warnings, more].concat(), created: false }),
            }
        }
        Err(ApiError::conflict(info, name, "too many concurrent writers; try again"))
    }

    async fn apply_create(&self, info: &ResourceInfo, ns: Option<&str>, name: &str, patch: &Value, opts: &WriteOptions) -> Result<Written, ApiError> {
        let mut config = patch.clone();
        self.check_type(info, &mut config)?;
        check_apply_config(info, ns, name, &config)?;
        let schema = schema::schemas().root(info);
        let mut obj = ssa::server_side_apply(None, &config, &opts.field_manager, false, schema.as_ref(), &info.api_version(), &self.now())
            .map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?;
        meta_mut(&mut obj).insert("name".into(), json!(name));
        let mf = obj["metadata"]["managedFields"].clone();
        let mut w = self.create(info, ns, obj, &WriteOptions { dry_run: true, ..opts.clone() }).await?;
        // Keep the apply's managed fields rather than an Update entry.
        meta_mut(&mut w.object).insert("managedFields".into(), mf);
        if opts.dry_run {
            return Ok(w);
        }
        let stored = self.write_created(info, ns, name, w.object).await?;
        Ok(Written { object: stored.value.clone(), warnings: w.warnings, created: true })
    }

    /// DELETE an object. Returns the object as it is after the call (with a
    /// deletionTimestamp if finalizers or a graceful pod keep it for now).
    pub(crate) async fn delete(&self, info: &ResourceInfo, ns: Option<&str>, name: &str, opts: &DeleteOptions) -> Result<Value, ApiError> {
        for _ in 0..CONFLICT_RETRIES {
            let cur = self.get(info, ns, name)?;
            if let Some(uid) = &opts.uid
                && cur.value["metadata"]["uid"].as_str() != Some(uid.as_str())
            {
                return Err(ApiError::conflict(
                    info,
                    name,
                    &format!("Precondition failed: UID in precondition: {}, UID in object meta: {}", uid, cur.value["metadata"]["uid"].as_str().unwrap_or("")),
                ));
            }
            if let Some(rv) = &opts.resource_version
                && rv != &cur.rv.to_string()
            {
                return Err(ApiError::conflict(
                    info,
                    name,
                    &format!("Precondition failed: ResourceVersion in precondition: {}, ResourceVersion in object meta: {}", rv, cur.rv),
                ));
            }
            if info.kind == "Namespace" && info.group.is_empty() && PROTECTED_NAMESPACES.contains(&name) {
                return Err(ApiError::forbidden(format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted")));
            }
            let mut new = cur.value.clone();
            let mut finalizers: Vec<Value> = new["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
            let policy_finalizer = match opts.propagation.as_deref() {
                Some("Orphan") => Some("orphan"),
                Some("Foreground") => Some("foregroundDeletion"),
                _ => None,
            };
            if let Some(f) = policy_finalizer
                && !finalizers.iter().any(|x| x == f)
            {
                finalizers.push(json!(f));
            }
            let graceful_pod = info.kind == "Pod"
                && info.group.is_empty()
                && !cur.value["spec"]["nodeName"].as_str().unwrap_or("").is_empty()
                && !matches!(cur.value["status"]["phase"].as_str(), Some("Succeeded") | Some("Failed"))
                && opts.grace_period_seconds.unwrap_or_else(|| cur.value["spec"]["terminationGracePeriodSeconds"].as_i64().unwrap_or(30)) > 0;
            let is_namespace = info.kind == "Namespace" && info.group.is_empty();
            if is_namespace {
                new["status"]["phase"] = json!("Terminating");
            }
            let keep = !finalizers.is_empty() || graceful_pod || is_namespace;
            if !keep {
                if opts.dry_run {
                    return Ok(cur.value.clone());
                }
                match self
                    .store
                    .write(Op::Delete { key: key(info, ns, name), precondition: Precondition { resource_version: Some(cur.rv), uid: None } })
                    .await
                {
                    Ok(s) => {
                        self.released_deleted(info, &cur.value).await;
                        return Ok(s.value.clone());
                    }
                    Err(StoreError::Conflict) => continue,
                    Err(e) => return Err(ApiError::from_store(e, info, name)),
                }
            }
            let m = meta_mut(&mut new);
            if m.get("deletionTimestamp").is_none_or(Value::is_null) {
                let now = self.clock.now();
                let grace = if graceful_pod {
                    opts.grace_period_seconds.unwrap_or_else(|| cur.value["spec"]["terminationGracePeriodSeconds"].as_i64().unwrap_or(30))
                } else {
                    0
                };
                m.insert("deletionTimestamp".into(), json!(timestamp(now + chrono::Duration::seconds(grace))));
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            }
            if !finalizers.is_empty() {
                m.insert("finalizers".into(), Value::Array(finalizers));
            }
            if same_object(&cur.value, &new) || opts.dry_run {
                return Ok(new);
            }
            match self
                .store
                .write(Op::Update { key: key(info, ns, name), object: new, precondition: Precondition { resource_version: Some(cur.rv), uid: None } })
                .await
            {
                Ok(s) => return Ok(s.value.clone()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(ApiError::from_store(e, info, name)),
            }
        }
        Err(ApiError::conflict(info, name, "too many concurrent writers; try again"))
    }

    /// Removes `finalizer` from an object (controllers use this to release deletions).
    pub(crate) async fn remove_finalizer(&self, info: &ResourceInfo, ns: Option<&str>, name: &str, finalizer: &str) -> Result<(), ApiError> {
        for _ in 0..CONFLICT_RETRIES {
            let Some(cur) = self.store.get(&key(info, ns, name)) else { return Ok(()) };
            let mut new = cur.value.clone();
            let Some(f) = new["metadata"]["finalizers"].as_array_mut() else { return Ok(()) };
            let before = f.len();
            f.retain(|x| x != finalizer);
            if f.len() == before {
                return Ok(());
            }
            match self
                .store
                .write(Op::Update { key: key(info, ns, name), object: new, precondition: Precondition { resource_version: Some(cur.rv), uid: None } })
                .await
            {
                Ok(_) | Err(StoreError::NotFound) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(ApiError::from_store(e, info, name)),
            }
        }
        Err(ApiError::conflict(info, name, "too many concurrent writers; try again"))
    }

    /// Removes an object at once, whatever its finalizers, grace period or namespace
    /// phase: the controllers' forced removals (pod GC, pods of unreachable nodes, an
    /// emptied namespace, expired events). With `uid`, only that incarnation goes (409).
    pub(crate) async fn remove(&self, info: &ResourceInfo, ns: Option<&str>, name: &str, uid: Option<&str>) -> Result<Value, ApiError> {
        let precondition = Precondition { resource_version: None, uid: uid.map(str::to_string) };
        match self.store.write(Op::Delete { key: key(info, ns, name), precondition }).await {
            Ok(s) => Ok(s.value.clone()),
            Err(e) => Err(ApiError::from_store(e, info, name)),
        }
    }

    /// Read-modify-write with conflict retries; `f` returns None to skip the write.
    pub(crate) async fn modify(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        f: &(dyn Fn(&Value) -> Option<Value> + Send + Sync),
    ) -> Result<Option<Value>, ApiError> {
        for _ in 0..CONFLICT_RETRIES {
            let Some(cur) = self.store.get(&key(info, ns, name)) else { return Ok(None) };
            let Some(new) = f(&cur.value) else { return Ok(Some(cur.value.clone())) };
            match self
                .store
                .write(Op::Update { key: key(info, ns, name), object: new, precondition: Precondition { resource_version: Some(cur.rv), uid: None } })
                .await
            {
                Ok(s) => return Ok(Some(s.value.clone())),
                Err(StoreError::NotFound) => return Ok(None),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(ApiError::from_store(e, info, name)),
            }
        }
        Err(ApiError::conflict(info, name, "too many concurrent writers; try again"))
    }

    /// Binds a pending pod to `node` (pods/binding): sets spec.nodeName and PodScheduled,
    /// and records the Scheduled event. 409 if the pod is already bound elsewhere.
    pub(crate) async fn bind(&self, info: &ResourceInfo, ns: Option<&str>, name: &str, node: &str) -> Result<Value, ApiError> {
        if node.is_empty() {
            return Err(ApiError::new(422, "Invalid", format!("Binding.core \"{name}\" is invalid: target.name: Required value")));
        }
        let now = self.now();
        let result = self
            .modify(info, ns, name, &|cur| {
                let assigned = cur["spec"]["nodeName"].as_str().unwrap_or("");
                if !assigned.is_empty() || !cur["metadata"]["deletionTimestamp"].is_null() {
                    return None;
                }
                let mut new = cur.clone();
                new["spec"]["nodeName"] = json!(node);
                let conds = new["status"]["conditions"].as_array().cloned().unwrap_or_default();
                let mut conds: Vec<Value> = conds.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
                conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}));
                new["status"]["conditions"] = Value::Array(conds);
                Some(new)
            })
            .await?;
        let Some(pod) = result else { return Err(ApiError::not_found(info, name)) };
        if pod["spec"]["nodeName"].as_str() != Some(node) {
            return Err(ApiError::conflict(info, name, &format!("pod {name} is already assigned to node \"{}\"", pod["spec"]["nodeName"].as_str().unwrap_or(""))));
        }
        let message = format!("Successfully assigned {}/{} to {}", ns.unwrap_or("default"), name, node);
        // The event is not part of the binding: don't make the binder wait for it.
        let api = self.clone();
        let event_pod = pod.clone();
        tokio::spawn(async move { api.record_event(&event_pod, "Normal", "Scheduled", &message, "default-scheduler").await });
        Ok(pod)
    }

    /// Creates an Event about `involved` (best effort: failures are logged, not returned).
    ///
    /// Events are the busiest internal writes (one per binding), so they skip what the
    /// HTTP path does for untrusted bodies (type and field checks, validation, size) and
    /// reuse the managedFields field set computed once per event shape; debug builds still
    /// validate every event.
    pub(crate) async fn record_event(&self, involved: &Value, type_: &str, reason: &str, message: &str, component: &str) {
        let Some(info) = resources::find("", "v1", "events") else { return };
        let ns = involved["metadata"]["namespace"].as_str().unwrap_or("default").to_string();
        let iname = name_of(involved).to_string();
        let now = self.now();
        let mut reference = serde_json::Map::new();
        for (k, v) in [
            ("kind", &involved["kind"]),
            ("namespace", &involved["metadata"]["namespace"]),
            ("name", &json!(iname)),
            ("uid", &involved["metadata"]["uid"]),
            ("apiVersion", &involved["apiVersion"]),
            ("resourceVersion", &involved["metadata"]["resourceVersion"]),
        ] {
            if v.as_str().is_some_and(|s| !s.is_empty()) {
                reference.insert(k.into(), v.clone());
            }
        }
        let mut ev = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{}.{}", iname, uuid::Uuid::new_v4().simple().to_string().get(..16).unwrap_or("0")), "namespace": ns},
            "involvedObject": reference,
            "reason": reason, "message": message, "type": type_,
            "source": {"component": component}, "reportingComponent": component,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        });
        if let Err(e) = self.create_event(info, &ns, &mut ev, component).await {
            tracing::debug!(error = %e, "event not recorded");
        }
    }

    async fn create_event(&self, info: &ResourceInfo, ns: &str, ev: &mut Value, manager: &str) -> Result<(), ApiError> {
        // The event's fields depend only on which involvedObject fields are present.
        let shape: String = ev["involvedObject"].as_object().map(|m| m.keys().map(String::as_str).collect::<Vec<_>>().join(",")).unwrap_or_default();
        let cached = event_field_sets().lock().expect("field set cache").get(&(shape.clone(), manager.to_string())).cloned();
        match cached {
            Some(fields) => {
                let now = self.now();
                uuid_and_time(ev, &now);
                meta_mut(ev).insert(
                    "managedFields".into(),
                    json!([{"manager": manager, "operation": "Update", "apiVersion": "v1", "time": now, "fieldsType": "FieldsV1", "fieldsV1": fields}]),
                );
            }
            None => {
                self.prepare_create(info, ev, manager);
                if let Some(fields) = ev.pointer("/metadata/managedFields/0/fieldsV1") {
                    event_field_sets().lock().expect("field set cache").insert((shape, manager.to_string()), fields.clone());
                }
            }
        }
        let name = name_of(ev).to_string();
        // The name is the involved object's plus a suffix, which a long name pushes over
        // the limit (Kubernetes' recorder drops such events too).
        if name.len() > 253 {
            return Err(ApiError::new(422, "Invalid", format!("event name {name} is longer than 253 characters")));
        }
        if cfg!(debug_assertions) {
            let causes = flotilla_api::validation::validate_create(info.group, info.kind, info.namespaced, ev);
            if !causes.is_empty() {
                tracing::error!(event = %ev, ?causes, "the control plane built an invalid event");
                return Err(Self::invalid(info, &name, causes));
            }
        }
        self.check_namespace_open(info, Some(ns), &name)?;
        self.store
            .write(Op::Create { key: key(info, Some(ns), &name), object: ev.take() })
            .await
            .map_err(|e| ApiError::from_store(e, info, &name))?;
        Ok(())
    }
}

/// fieldsV1 of events recorded by the control plane, by (involvedObject fields, manager).
fn event_field_sets() -> &'static std::sync::Mutex<std::collections::HashMap<(String, String), Value>> {
    static CACHE: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<(String, String), Value>>> = std::sync::OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The uid and creationTimestamp a create assigns.
fn uuid_and_time(v: &mut Value, now: &str) {
    let m = meta_mut(v);
    m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("creationTimestamp".into(), json!(now));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An API on a fresh store with namespace `default`, and write options of manager "test".
    async fn api_with_default_namespace() -> (tempfile::TempDir, Api, WriteOptions) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(dir.path(), crate::store::StoreConfig::default()).expect("store");
        let api = Api::new(store, std::sync::Arc::new(SystemClock));
        let opts = WriteOptions { field_manager: "test".into(), ..Default::default() };
        let ns_info = resources::find("", "v1", "namespaces").expect("namespaces");
        api.create(ns_info, None, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}), &opts).await.expect("ns");
        (dir, api, opts)
    }

    /// New pods request their limits; a pod stored without requests (before that default
    /// existed) keeps its spec and still takes status updates.
    #[tokio::test]
    async fn pods_request_their_limits_when_created_only() {
        let (_dir, api, opts) = api_with_default_namespace().await;
        let pods = resources::find("", "v1", "pods").expect("pods");
        let pod = |name: &str| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "i", "resources": {"limits": {"cpu": "1"}}}]}});
        let created = api.create(pods, Some("default"), pod("new"), &opts).await.expect("create").object;
        assert_eq!(created["spec"]["containers"][0]["resources"]["requests"]["cpu"], "1");
        // As an older version stored it: every other default, but no requests.
        let mut old = api.create(pods, Some("default"), pod("old"), &opts).await.expect("create").object;
        old["spec"]["containers"][0]["resources"].as_object_mut().expect("resources").remove("requests");
        let rv = api.get(pods, Some("default"), "old").expect("get").rv;
        let pre = Precondition { resource_version: Some(rv), uid: None };
        api.store.write(Op::Update { key: key(pods, Some("default"), "old"), object: old, precondition: pre }).await.expect("stored");
        let mut status = api.get(pods, Some("default"), "old").expect("get").value.clone();
        status["status"] = json!({"phase": "Running"});
        let w = api.update(pods, Some("default"), "old", status, Part::Status, &opts).await.expect("status update");
        assert_eq!(w.object["status"]["phase"], "Running");
        assert!(w.object["spec"]["containers"][0]["resources"]["requests"].is_null(), "the stored spec is kept");
    }

    #[tokio::test]
    async fn recorded_events_carry_the_same_fields_as_created_ones() {
        let (_dir, api, opts) = api_with_default_namespace().await;
        let cm_info = resources::find("", "v1", "configmaps").expect("configmaps");
        let cm = api.create(cm_info, Some("default"), json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}), &opts).await.expect("cm").object;
        // The first event of a shape goes through the full create preparation, later ones
        // reuse its field set: both must look like what the API's own create stores.
        for reason in ["First", "Second"] {
            api.record_event(&cm, "Normal", reason, "m", "unit-test").await;
        }
        let ev_info = resources::find("", "v1", "events").expect("events");
        let (events, _, _) = api.store.list("core/events/default/", None, None, &|_| true);
        assert_eq!(events.len(), 2);
        for e in &events {
            let mut expected = e.value.clone();
            let m = expected["metadata"].as_object_mut().expect("meta");
            for k in ["uid", "creationTimestamp", "managedFields", "resourceVersion"] {
                m.remove(k);
            }
            m.insert("name".into(), json!("another"));
            let mut created = api.create(ev_info, Some("default"), expected.clone(), &WriteOptions { field_manager: "unit-test".into(), dry_run: true, ..Default::default() }).await.expect("valid event").object;
            assert_eq!(created["metadata"]["managedFields"][0]["fieldsV1"], e.value["metadata"]["managedFields"][0]["fieldsV1"], "{}", e.value);
            assert_eq!(e.value["metadata"]["managedFields"][0]["manager"], "unit-test");
            assert!(e.value["metadata"]["uid"].as_str().is_some_and(|u| !u.is_empty()));
            assert_eq!(e.value["involvedObject"]["uid"], cm["metadata"]["uid"]);
            // Same keys in the same order apart from server-set values.
            for k in ["uid", "creationTimestamp", "managedFields", "resourceVersion"] {
                created["metadata"].as_object_mut().expect("meta").remove(k);
            }
            let mut stored = e.value.clone();
            for k in ["uid", "creationTimestamp", "managedFields", "resourceVersion"] {
                stored["metadata"].as_object_mut().expect("meta").remove(k);
            }
            stored["metadata"]["name"] = json!("another");
            assert_eq!(serde_json::to_string(&created).expect("json"), serde_json::to_string(&stored).expect("json"));
        }
    }

    /// Regression test for stringData stored verbatim with data left empty (found with the
    /// Python client's `string_data` and `kubectl apply`): every write path merges it.
    #[tokio::test]
    async fn secret_string_data_is_merged_into_data_on_every_write_path() {
        let (_dir, api, opts) = api_with_default_namespace().await;
        let info = resources::find("", "v1", "secrets").expect("secrets");
        let ns = Some("default");
        // The object returned and the object stored both have data only.
        let check = |written: &Value, want: Value| {
            let stored = api.get(info, ns, "s").expect("stored");
            for (what, v) in [("returned", written), ("stored", &stored.value)] {
                assert!(v.get("stringData").is_none(), "{what}: {v}");
                assert_eq!(v["data"], want, "{what}: {v}");
            }
        };
        let created = api
            .create(info, ns, json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "b2xk", "b": "Yg=="}, "stringData": {"a": "one"}}), &opts)
            .await
            .expect("create");
        check(&created.object, json!({"a": "b25l", "b": "Yg=="}));
        let mut body = created.object.clone();
        body["stringData"] = json!({"c": "two"});
        let updated = api.update(info, ns, "s", body, Part::Main, &opts).await.expect("update");
        check(&updated.object, json!({"a": "b25l", "b": "Yg==", "c": "dHdv"}));
        let patches = [
            (PatchType::Merge, json!({"stringData": {"a": "merge"}}), "bWVyZ2U="),
            (PatchType::Strategic, json!({"stringData": {"a": "strategic"}}), "c3RyYXRlZ2lj"),
            (PatchType::Json, json!([{"op": "add", "path": "/stringData", "value": {"a": "json"}}]), "anNvbg=="),
            (
                PatchType::Apply,
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"a": "apply"}}),
                "YXBwbHk=",
            ),
        ];
        for (kind, patch, a) in patches {
            let patched = api.patch(info, ns, "s", kind, &patch, Part::Main, true, &opts).await.unwrap_or_else(|e| panic!("{kind:?}: {e:?}"));
            check(&patched.object, json!({"a": a, "b": "Yg==", "c": "dHdv"}));
        }
        // Server-side apply creating the object, and a dry run, merge it too.
        api.delete(info, ns, "s", &DeleteOptions::default()).await.expect("delete");
        let apply = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}});
        let dry = api.patch(info, ns, "s", PatchType::Apply, &apply, Part::Main, false, &WriteOptions { dry_run: true, ..opts.clone() }).await.expect("dry run");
        assert_eq!((dry.object.get("stringData"), &dry.object["data"]), (None, &json!({"k": "dg=="})));
        let applied = api.patch(info, ns, "s", PatchType::Apply, &apply, Part::Main, false, &opts).await.expect("apply create");
        check(&applied.object, json!({"k": "dg=="}));
        // Bad stringData is a Status error: a value that is no string, a key that is no
        // valid config key (reported on data, where Kubernetes validates it too).
        let bad = |sd: Value| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad"}, "stringData": sd});
        let e = api.create(info, ns, bad(json!({"a": 1})), &opts).await.expect_err("number");
        assert_eq!((e.code, e.reason), (400, "BadRequest"), "{e:?}");
        let e = api.create(info, ns, bad(json!({"bad key!": "v"})), &opts).await.expect_err("key");
        assert_eq!(e.code, 422, "{e:?}");
        assert!(e.message.contains("data[bad key!]"), "{}", e.message);
    }
}
