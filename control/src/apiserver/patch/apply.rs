//! Server-side apply and field ownership (`metadata.managedFields`), following
//! sigs.k8s.io/structured-merge-diff as the Kubernetes API server uses it.
//!
//! Invariants:
//! - Ownership is a set of field paths per manager, stored as `fieldsV1`
//!   (`f:<field>`, `k:{<keys>}`, `v:<value>`, `.` for "this node too").
//! - An applier owns exactly the fields of its last config; fields it owned before and no
//!   longer sends are removed unless some manager still owns them (a named struct field
//!   counts as owned while any manager owns something below it).
//! - Apply changing a field another manager owns is a conflict unless forced; forcing, and
//!   any non-apply write ([`track_update`]), takes the changed fields from other managers.
//! - Server-owned metadata (name, uid, resourceVersion, …) is never owned; `managedFields`
//!   is never tracked. Entries are sorted: operation, time, manager, apiVersion, subresource.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::{ListMerge, PatchSchema};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Update entries kept before the oldest are merged into `ancient-changes`.
const MAX_UPDATE_MANAGERS: usize = 10;
const ANCIENT_CHANGES: &str = "ancient-changes";
/// Metadata fields a client's apply config may carry but the server owns.
const SERVER_METADATA: [&str; 6] =
    ["resourceVersion", "uid", "creationTimestamp", "generation", "managedFields", "selfLink"];

/// One field another manager owns that an apply would change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Conflict {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The owning entry's apiVersion (printed for `Update` owners).
    pub api_version: String,
    /// The owning entry's subresource, `""` for the main resource.
    pub subresource: String,
    /// Path as structured-merge-diff prints it: `.spec.containers[name="a"].image`.
    pub field: String,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApplyError {
    /// 409 Conflict with `details.causes` from [`conflict_causes`].
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// 422/400: the config or the stored managedFields are malformed.
    #[error("{0}")]
    Invalid(String),
}

/// The Status message Kubernetes returns for apply conflicts.
pub(crate) fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [c] = conflicts {
        return format!("Apply failed with 1 conflict: conflict with {}: {}", print_manager(c), c.field);
    }
    let mut by_manager: BTreeMap<String, (String, Vec<&str>)> = BTreeMap::new();
    for c in conflicts {
        let id = identity(&c.manager, &c.operation, &c.api_version, &c.subresource);
        by_manager.entry(id).or_insert_with(|| (print_manager(c), Vec::new())).1.push(&c.field);
    }
    let mut lines = Vec::new();
    for (printed, fields) in by_manager.values() {
        lines.push(format!("conflicts with {printed}:"));
        lines.extend(fields.iter().map(|f| format!("- {f}")));
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

/// `details.causes` of the conflict Status: (reason, message, field).
pub(crate) fn conflict_causes(conflicts: &[Conflict]) -> Vec<(String, String, String)> {
    conflicts
        .iter()
        .map(|c| ("FieldManagerConflict".to_string(), format!("conflict with {}", print_manager(c)), c.field.clone()))
        .collect()
}

fn print_manager(c: &Conflict) -> String {
    let mut s = quote(&c.manager);
    if !c.subresource.is_empty() {
        s = format!("{s} with subresource {}", quote(&c.subresource));
    }
    if c.operation == "Update" {
        s = format!("{s} using {}", c.api_version);
    }
    s
}

fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// Server-side apply of `config` by `manager` onto `live` (`None`: the object is created).
/// Returns the new object with `metadata.managedFields` updated.
pub(crate) fn server_side_apply<S: PatchSchema>(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    schema: Option<&S>,
    api_version: &str,
    now: &str,
) -> Result<Value, ApplyError> {
    server_side_apply_subresource(live, config, manager, force, schema, api_version, now, None)
}

/// [`server_side_apply`] through a subresource (`Some("status")`); the entry records it.
/// The caller drops what the subresource may not change (as Kubernetes' reset fields).
#[allow(clippy::too_many_arguments, reason = "mirrors server_side_apply plus the subresource")]
pub(crate) fn server_side_apply_subresource<S: PatchSchema>(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    schema: Option<&S>,
    api_version: &str,
    now: &str,
    subresource: Option<&str>,
) -> Result<Value, ApplyError> {
    if !config.is_object() {
        return Err(ApplyError::Invalid("apply configuration must be a JSON object".to_string()));
    }
    let subresource = subresource.unwrap_or("");
    let mut live_obj = live.cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let mut managers = decode_managed_fields(live_obj.pointer("/metadata/managedFields"))
        .map_err(|e| ApplyError::Invalid(format!("failed to decode managed fields: {e}")))?;
    remove_managed_fields(&mut live_obj);

    let mut cfg = config.clone();
    strip_server_metadata(&mut cfg);
    strip_nulls(&mut cfg);
    complete_keys(&mut cfg, Some(&live_obj), schema);
    let mut config_set = FieldSet::default();
    value_set(&cfg, schema, &mut Vec::new(), &mut config_set, true).map_err(ApplyError::Invalid)?;
    let config_set = config_set.difference(&strip_set());

    let applier = identity(manager, "Apply", api_version, subresource);
    let previous = managers.remove(&applier);
    let last_set = previous.as_ref().map(|e| e.set.clone()).unwrap_or_default();

    let mut merged = merge(&live_obj, &cfg, schema);

    // Prune what this applier set last time, sends no more, and nobody else owns. A named
    // field counts as owned when anything below it is (a set read from fieldsV1 may mark
    // `spec.template` itself, as kubectl's client-side-apply migration writes it, while
    // the config's set only names the leaves below it).
    if !last_set.is_empty() {
        let owned = managers.values().fold(config_set.clone(), |acc, e| acc.union(&e.set));
        let owned = with_named_fields(&owned, schema).union(&strip_set());
        remove_paths(&mut merged, &last_set.difference(&owned), schema);
    }

    let cmp = compare_objects(&live_obj, &merged, schema);
    let changed = cmp.added.union(&cmp.modified);
    let mut conflicts: Vec<(String, FieldSet)> = Vec::new();
    for (id, entry) in &managers {
        let overlap = entry.set.intersection(&changed);
        if !overlap.is_empty() {
            conflicts.push((id.clone(), overlap));
        }
    }
    let forced = force || (manager == "kubectl" && allowed_by_last_applied(&live_obj, &conflicts, schema));
    if !conflicts.is_empty() && !forced {
        let mut out = Vec::new();
        for (id, set) in &conflicts {
            let Some(owner) = managers.get(id) else { continue };
            for path in set.paths() {
                out.push(Conflict {
                    manager: owner.manager.clone(),
                    operation: owner.operation.clone(),
                    api_version: owner.api_version.clone(),
                    subresource: owner.subresource.clone(),
                    field: path_string(&path),
                });
            }
        }
        return Err(ApplyError::Conflicts(out));
    }
    for (id, set) in &conflicts {
        if let Some(e) = managers.get_mut(id) {
            e.set = e.set.difference(set);
        }
    }
    for e in managers.values_mut() {
        e.set = e.set.difference(&cmp.removed);
    }
    managers.retain(|_, e| !e.set.is_empty());

    if !config_set.is_empty() {
        let unchanged = json_eq(&merged, &live_obj) && live.is_some();
        let time = match previous.and_then(|p| p.time) {
            Some(t) if unchanged => Some(t),
            _ => Some(now.to_string()),
        };
        managers.insert(
            applier,
            Entry {
                manager: manager.to_string(),
                operation: "Apply".to_string(),
                api_version: api_version.to_string(),
                subresource: subresource.to_string(),
                time,
                set: config_set,
            },
        );
    }

    if manager == "kubectl" {
        sync_last_applied(&mut merged, config);
    }
    cap_update_managers(&mut managers);
    encode_managed_fields(&mut merged, managers);
    Ok(merged)
}

/// Records a non-apply write (create, update, patch) by `manager` in `new`'s managedFields:
/// its `Update` entry gains every field the write set or changed (on create: all fields),
/// and other managers lose those fields. `old` is `None` on create.
pub(crate) fn track_update<S: PatchSchema>(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    schema: Option<&S>,
    api_version: &str,
    now: &str,
) {
    track_update_subresource(old, new, manager, schema, api_version, now, None);
}

/// [`track_update`] through a subresource (`Some("status")`): the entry records it and the
/// managedFields sent in `new` are ignored in favour of `old`'s.
pub(crate) fn track_update_subresource<S: PatchSchema>(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    schema: Option<&S>,
    api_version: &str,
    now: &str,
    subresource: Option<&str>,
) {
    let subresource = subresource.unwrap_or("");
    let old_managed = old.and_then(|o| o.pointer("/metadata/managedFields"));
    let new_managed = new.pointer("/metadata/managedFields");
    let mut managers = if !subresource.is_empty() {
        decode_managed_fields(old_managed).unwrap_or_default()
    } else if is_reset(new_managed) {
        BTreeMap::new()
    } else {
        match decode_managed_fields(new_managed) {
            Ok(m) if !m.is_empty() => m,
            _ => decode_managed_fields(old_managed).unwrap_or_default(),
        }
    };
    remove_managed_fields(new);
    let old_obj = match old {
        Some(o) => {
            let mut o = o.clone();
            remove_managed_fields(&mut o);
            o
        }
        None => skeleton(new),
    };

    let cmp = compare_objects(&old_obj, new, schema);
    let changed = cmp.added.union(&cmp.modified);
    for e in managers.values_mut() {
        e.set = e.set.difference(&changed).difference(&cmp.removed);
    }
    managers.retain(|_, e| !e.set.is_empty());

    let current = changed.difference(&strip_set());
    if !current.is_empty() {
        let id = identity(manager, "Update", api_version, subresource);
        let set = match managers.remove(&id) {
            Some(prev) => prev.set.union(&current),
            None => current,
        };
        managers.insert(
            id,
            Entry {
                manager: manager.to_string(),
                operation: "Update".to_string(),
                api_version: api_version.to_string(),
                subresource: subresource.to_string(),
                time: Some(now.to_string()),
                set,
            },
        );
    }
    cap_update_managers(&mut managers);
    encode_managed_fields(new, managers);
}

// ---------------------------------------------------------------------------------------------
// Managed fields entries

#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    subresource: String,
    time: Option<String>,
    set: FieldSet,
}

/// The manager identifier Kubernetes keys entries by: apiVersion only for `Update`.
fn identity(manager: &str, operation: &str, api_version: &str, subresource: &str) -> String {
    let mut m = Map::new();
    if !manager.is_empty() {
        m.insert("manager".into(), manager.into());
    }
    if !operation.is_empty() {
        m.insert("operation".into(), operation.into());
    }
    if operation != "Apply" && !api_version.is_empty() {
        m.insert("apiVersion".into(), api_version.into());
    }
    if !subresource.is_empty() {
        m.insert("subresource".into(), subresource.into());
    }
    Value::Object(m).to_string()
}

/// `[{}]` asks to reset managedFields.
fn is_reset(managed: Option<&Value>) -> bool {
    matches!(managed, Some(Value::Array(a)) if a.len() == 1 && a[0].as_object().is_some_and(Map::is_empty))
}

fn decode_managed_fields(managed: Option<&Value>) -> Result<BTreeMap<String, Entry>, String> {
    let mut out: BTreeMap<String, Entry> = BTreeMap::new();
    let entries = match managed {
        None | Some(Value::Null) => return Ok(out),
        Some(Value::Array(a)) => a,
        Some(_) => return Err("managedFields must be a list".to_string()),
    };
    for raw in entries {
        let m = raw.as_object().ok_or("managedFields entry must be an object")?;
        let text = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let fields_type = text("fieldsType");
        if fields_type != "FieldsV1" {
            return Err(format!("invalid fieldsType {:?}", fields_type));
        }
        let set = match m.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::default(),
            Some(v) => FieldSet::from_json(v)?,
        };
        let entry = Entry {
            manager: text("manager"),
            operation: text("operation"),
            api_version: text("apiVersion"),
            subresource: text("subresource"),
            time: m.get("time").and_then(Value::as_str).map(str::to_string),
            set,
        };
        let id = identity(&entry.manager, &entry.operation, &entry.api_version, &entry.subresource);
        match out.get_mut(&id) {
            Some(prev) => {
                prev.set = prev.set.union(&entry.set);
                if entry.time > prev.time {
                    prev.time = entry.time;
                }
            }
            None => {
                out.insert(id, entry);
            }
        }
    }
    Ok(out)
}

fn encode_managed_fields(obj: &mut Value, managers: BTreeMap<String, Entry>) {
    let mut entries: Vec<Entry> = managers.into_values().collect();
    entries.sort_by(|p, q| {
        p.operation
            .cmp(&q.operation)
            .then_with(|| p.time.as_deref().unwrap_or("").cmp(q.time.as_deref().unwrap_or("")))
            .then_with(|| p.manager.cmp(&q.manager))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| p.subresource.cmp(&q.subresource))
    });
    let list: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("manager".into(), e.manager.into());
            m.insert("operation".into(), e.operation.into());
            m.insert("apiVersion".into(), e.api_version.into());
            if let Some(t) = e.time {
                m.insert("time".into(), t.into());
            }
            m.insert("fieldsType".into(), "FieldsV1".into());
            m.insert("fieldsV1".into(), e.set.to_json(false));
            if !e.subresource.is_empty() {
                m.insert("subresource".into(), e.subresource.into());
            }
            Value::Object(m)
        })
        .collect();
    let Some(root) = obj.as_object_mut() else { return };
    if list.is_empty() {
        if let Some(Value::Object(meta)) = root.get_mut("metadata") {
            meta.shift_remove("managedFields");
        }
        return;
    }
    let meta = root.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

/// Merges the oldest `Update` entries into `ancient-changes` (one per apiVersion) so at
/// most [`MAX_UPDATE_MANAGERS`] remain.
fn cap_update_managers(managers: &mut BTreeMap<String, Entry>) {
    let mut updaters: Vec<(String, String)> = managers
        .iter()
        .filter(|(_, e)| e.operation != "Apply")
        .map(|(id, e)| (id.clone(), e.time.clone().unwrap_or_default()))
        .collect();
    let mut length = updaters.len();
    if length <= MAX_UPDATE_MANAGERS {
        return;
    }
    updaters.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    let mut first_of_version: BTreeMap<String, String> = BTreeMap::new();
    for (id, _) in updaters {
        if length <= MAX_UPDATE_MANAGERS {
            break;
        }
        let Some(entry) = managers.get(&id).cloned() else { continue };
        let bucket = identity(ANCIENT_CHANGES, "Update", &entry.api_version, "");
        match first_of_version.get(&entry.api_version) {
            Some(first) => {
                if !managers.contains_key(&bucket)
                    && let Some(mut f) = managers.remove(first)
                {
                    f.manager = ANCIENT_CHANGES.to_string();
                    f.subresource = String::new();
                    managers.insert(bucket.clone(), f);
                }
                if id == bucket {
                    continue;
                }
                managers.remove(&id);
                if let Some(b) = managers.get_mut(&bucket) {
                    b.set = b.set.union(&entry.set);
                    b.time = entry.time.clone();
                }
                length -= 1;
            }
            None => {
                first_of_version.insert(entry.api_version.clone(), id);
            }
        }
    }
}

fn remove_managed_fields(obj: &mut Value) {
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        meta.shift_remove("managedFields");
    }
}

/// The "empty object" a create is compared against: top-level structs already exist, so
/// only fields below them are new (as with Kubernetes' zero-valued typed objects).
fn skeleton(new: &Value) -> Value {
    let mut m = Map::new();
    for key in ["metadata", "spec", "status"] {
        if new.get(key).is_some_and(Value::is_object) {
            m.insert(key.to_string(), Value::Object(Map::new()));
        }
    }
    Value::Object(m)
}

fn strip_server_metadata(cfg: &mut Value) {
    if let Some(Value::Object(meta)) = cfg.get_mut("metadata") {
        for k in SERVER_METADATA {
            meta.shift_remove(k);
        }
    }
}

/// Nulls in a config mean "absent", as after decoding into typed objects.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Paths nobody owns: identity and server-set metadata.
fn strip_set() -> FieldSet {
    let mut s = FieldSet::default();
    let f = |n: &str| Pe::Field(n.to_string());
    s.insert(&[f("apiVersion")]);
    s.insert(&[f("kind")]);
    s.insert(&[f("metadata")]);
    for k in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        s.insert(&[f("metadata"), f(k)]);
    }
    s
}

/// kubectl's upgrade path from client-side apply: conflicts only on fields whose live value
/// still matches the last-applied annotation are allowed (and forced).
fn allowed_by_last_applied<S: PatchSchema>(live: &Value, conflicts: &[(String, FieldSet)], schema: Option<&S>) -> bool {
    let Some(text) = live.pointer("/metadata/annotations").and_then(|a| a.get(LAST_APPLIED)).and_then(Value::as_str)
    else {
        return false;
    };
    let Ok(last) = serde_json::from_str::<Value>(text) else { return false };
    let (mut last_set, mut live_set) = (FieldSet::default(), FieldSet::default());
    if value_set(&last, schema, &mut Vec::new(), &mut last_set, false).is_err()
        || value_set(live, schema, &mut Vec::new(), &mut live_set, false).is_err()
    {
        return false;
    }
    let cmp = compare_objects(&last, live, schema);
    let allowed = last_set.intersection(&live_set).difference(&cmp.modified);
    conflicts.iter().all(|(_, set)| set.difference(&allowed).is_empty())
}

/// kubectl server-side apply keeps an existing last-applied annotation in step with its config.
fn sync_last_applied(obj: &mut Value, config: &Value) {
    let has = obj.pointer("/metadata/annotations").and_then(|a| a.get(LAST_APPLIED)).is_some();
    if !has {
        return;
    }
    let mut applied = config.clone();
    if let Some(Value::Object(ann)) = applied.pointer_mut("/metadata/annotations") {
        ann.shift_remove(LAST_APPLIED);
    }
    let text = format!("{}\n", sorted(&applied));
    if let Some(Value::Object(ann)) = obj.pointer_mut("/metadata/annotations") {
        ann.insert(LAST_APPLIED.to_string(), Value::String(text));
    }
}

/// A copy with object keys sorted, as Go's encoding/json writes maps.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&m[k]))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Paths and field sets

/// One step of a field path.
#[derive(Clone, Debug)]
enum Pe {
    Field(String),
    /// Key fields of an associative-list item, sorted by name.
    Key(Vec<(String, Value)>),
    Value(Value),
    Index(usize),
}

impl Pe {
    fn rank(&self) -> u8 {
        match self {
            Pe::Field(_) => 0,
            Pe::Key(_) => 1,
            Pe::Value(_) => 2,
            Pe::Index(_) => 3,
        }
    }

    /// The `fieldsV1` key.
    fn encode(&self) -> String {
        match self {
            Pe::Field(n) => format!("f:{n}"),
            Pe::Key(fields) => {
                let m: Map<String, Value> = fields.iter().cloned().collect();
                format!("k:{}", Value::Object(m))
            }
            Pe::Value(v) => format!("v:{v}"),
            Pe::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(s: &str) -> Result<Pe, String> {
        let bad = || format!("unknown path element {s:?}");
        let (prefix, rest) = s.split_once(':').ok_or_else(bad)?;
        match prefix {
            "f" => Ok(Pe::Field(rest.to_string())),
            "k" => match serde_json::from_str::<Value>(rest) {
                Ok(Value::Object(m)) => {
                    let mut fields: Vec<(String, Value)> = m.into_iter().collect();
                    fields.sort_by(|a, b| a.0.cmp(&b.0));
                    Ok(Pe::Key(fields))
                }
                _ => Err(bad()),
            },
            "v" => serde_json::from_str::<Value>(rest).map(Pe::Value).map_err(|_| bad()),
            "i" => rest.parse().map(Pe::Index).map_err(|_| bad()),
            _ => Err(bad()),
        }
    }

    /// As structured-merge-diff prints a path element.
    fn display(&self) -> String {
        match self {
            Pe::Field(n) => format!(".{n}"),
            Pe::Key(fields) => {
                let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("[{}]", parts.join(","))
            }
            Pe::Value(v) => format!("[={v}]"),
            Pe::Index(i) => format!("[{i}]"),
        }
    }
}

impl Ord for Pe {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Pe::Field(a), Pe::Field(b)) => a.cmp(b),
            (Pe::Key(a), Pe::Key(b)) => {
                for ((ka, va), (kb, vb)) in a.iter().zip(b) {
                    let c = ka.cmp(kb).then_with(|| cmp_value(va, vb));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                a.len().cmp(&b.len())
            }
            (Pe::Value(a), Pe::Value(b)) => cmp_value(a, b),
            (Pe::Index(a), Pe::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}
impl PartialOrd for Pe {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Pe {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Pe {}

/// structured-merge-diff's total order on values: numbers, strings, bools, lists, maps, null.
fn cmp_value(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x.as_f64().unwrap_or(0.0).partial_cmp(&y.as_f64().unwrap_or(0.0)).unwrap_or(Ordering::Equal)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let c = cmp_value(p, q);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut xs: Vec<_> = x.iter().collect();
            let mut ys: Vec<_> = y.iter().collect();
            xs.sort_by(|p, q| p.0.cmp(q.0));
            ys.sort_by(|p, q| p.0.cmp(q.0));
            for (p, q) in xs.iter().zip(&ys) {
                let c = p.0.cmp(q.0).then_with(|| cmp_value(p.1, q.1));
                if c != Ordering::Equal {
                    return c;
                }
            }
            xs.len().cmp(&ys.len())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Deep equality with numbers compared by value.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn path_string(path: &[Pe]) -> String {
    path.iter().map(Pe::display).collect()
}

/// A set of field paths: `members` end here, `children` continue (never empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct FieldSet {
    members: BTreeSet<Pe>,
    children: BTreeMap<Pe, FieldSet>,
}

impl FieldSet {
    fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    fn insert(&mut self, path: &[Pe]) {
        match path {
            [] => {}
            [pe] => {
                self.members.insert(pe.clone());
            }
            [pe, rest @ ..] => self.children.entry(pe.clone()).or_default().insert(rest),
        }
    }

    fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, child) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    fn difference(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.difference(&other.members).cloned().collect();
        let mut children = BTreeMap::new();
        for (pe, child) in &self.children {
            let rest = match other.children.get(pe) {
                Some(theirs) => child.difference(theirs),
                None => child.clone(),
            };
            if !rest.is_empty() {
                children.insert(pe.clone(), rest);
            }
        }
        FieldSet { members, children }
    }

    fn intersection(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.intersection(&other.members).cloned().collect();
        let mut children = BTreeMap::new();
        for (pe, child) in &self.children {
            if let Some(theirs) = other.children.get(pe) {
                let both = child.intersection(theirs);
                if !both.is_empty() {
                    children.insert(pe.clone(), both);
                }
            }
        }
        FieldSet { members, children }
    }

    /// Every member path: this level's members first, then each child's, in order.
    fn paths(&self) -> Vec<Vec<Pe>> {
        let mut out: Vec<Vec<Pe>> = self.members.iter().map(|pe| vec![pe.clone()]).collect();
        for (pe, child) in &self.children {
            for mut p in child.paths() {
                p.insert(0, pe.clone());
                out.push(p);
            }
        }
        out
    }

    /// The `fieldsV1` object; `include_self` writes `.` (the node itself is a member).
    fn to_json(&self, include_self: bool) -> Value {
        let mut m = Map::new();
        if include_self && !self.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        let keys: BTreeSet<&Pe> = self.members.iter().chain(self.children.keys()).collect();
        for pe in keys {
            let value = match self.children.get(pe) {
                Some(child) => child.to_json(self.members.contains(pe)),
                None => Value::Object(Map::new()),
            };
            m.insert(pe.encode(), value);
        }
        Value::Object(m)
    }

    fn from_json(v: &Value) -> Result<FieldSet, String> {
        Self::parse(v).map(|(set, _)| set)
    }

    /// Returns the set below `v` and whether `v` marks its own node with `.`.
    fn parse(v: &Value) -> Result<(FieldSet, bool), String> {
        let m = v.as_object().ok_or("fieldsV1 nodes must be objects")?;
        let mut set = FieldSet::default();
        let mut has_self = false;
        for (k, child) in m {
            if k == "." {
                has_self = true;
                continue;
            }
            let pe = Pe::decode(k)?;
            let (sub, child_self) = Self::parse(child)?;
            if sub.is_empty() || child_self {
                set.members.insert(pe.clone());
            }
            if !sub.is_empty() {
                set.children.insert(pe, sub);
            }
        }
        Ok((set, has_self))
    }
}

// ---------------------------------------------------------------------------------------------
// Schema-guided walks

/// `set` plus, as members, every schema-named field that has children in it
/// (structured-merge-diff's `EnsureNamedFieldsAreMembers`); map keys are not added.
fn with_named_fields<S: PatchSchema>(set: &FieldSet, schema: Option<&S>) -> FieldSet {
    let mut out = FieldSet { members: set.members.clone(), children: BTreeMap::new() };
    for (pe, child) in &set.children {
        let cs = match pe {
            Pe::Field(name) => {
                let named = schema.and_then(|s| s.field(name));
                if named.is_some() {
                    out.members.insert(pe.clone());
                }
                named.or_else(|| schema.and_then(PatchSchema::elements))
            }
            _ => schema.and_then(PatchSchema::elements),
        };
        out.children.insert(pe.clone(), with_named_fields(child, cs.as_ref()));
    }
    out
}

fn child_schema<S: PatchSchema>(schema: Option<&S>, key: &str) -> Option<S> {
    schema.and_then(|s| s.field(key).or_else(|| s.elements()))
}

/// How a list's items are addressed, or `None` when it is atomic.
fn list_kind<S: PatchSchema>(schema: Option<&S>) -> Option<ListMerge> {
    match schema.map(PatchSchema::list_merge) {
        Some(ListMerge::Map { keys }) if !keys.is_empty() => Some(ListMerge::Map { keys }),
        Some(ListMerge::Set) => Some(ListMerge::Set),
        _ => None,
    }
}

fn item_pe(item: &Value, kind: &ListMerge) -> Option<Pe> {
    match kind {
        ListMerge::Map { keys } => {
            let m = item.as_object()?;
            let mut fields: Vec<(String, Value)> =
                keys.iter().filter_map(|k| m.get(k).map(|v| (k.clone(), v.clone()))).collect();
            if fields.is_empty() {
                return None;
            }
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Some(Pe::Key(fields))
        }
        ListMerge::Set => Some(Pe::Value(item.clone())),
        ListMerge::Atomic => None,
    }
}

/// Path elements of all items, or `None` if the list must be treated as atomic.
fn list_pes<S: PatchSchema>(items: &[Value], schema: Option<&S>) -> Option<Vec<Pe>> {
    let kind = list_kind(schema)?;
    items.iter().map(|i| item_pe(i, &kind)).collect()
}

/// The fields a value sets (structured-merge-diff's `ToFieldSet`). `strict` rejects
/// duplicate or keyless associative-list items, as for an apply config.
fn value_set<S: PatchSchema>(
    v: &Value,
    schema: Option<&S>,
    path: &mut Vec<Pe>,
    set: &mut FieldSet,
    strict: bool,
) -> Result<(), String> {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let named = schema.and_then(|s| s.field(k)).is_some();
                let cs = child_schema(schema, k);
                path.push(Pe::Field(k.clone()));
                value_set(child, cs.as_ref(), path, set, strict)?;
                if child.is_null() || child.as_object().is_some_and(Map::is_empty) || !named {
                    set.insert(path);
                }
                path.pop();
            }
        }
        Value::Array(items) => {
            let Some(kind) = list_kind(schema) else {
                set.insert(path);
                return Ok(());
            };
            let es = schema.and_then(PatchSchema::elements);
            let mut seen = BTreeSet::new();
            for item in items {
                let Some(pe) = item_pe(item, &kind) else {
                    if strict {
                        let key = match &kind {
                            ListMerge::Map { keys } => keys.first().cloned().unwrap_or_default(),
                            _ => String::new(),
                        };
                        return Err(format!(
                            "{}: associative list with keys has an element that omits key field {} (and doesn't have default value)",
                            path_string(path),
                            quote(&key)
                        ));
                    }
                    set.insert(path);
                    return Ok(());
                };
                if !seen.insert(pe.clone()) && strict {
                    return Err(format!("{}: duplicate entries for key {}", path_string(path), pe.display()));
                }
                path.push(pe);
                value_set(item, es.as_ref(), path, set, strict)?;
                set.insert(path);
                path.pop();
            }
        }
        _ => set.insert(path),
    }
    Ok(())
}

#[derive(Default, Debug)]
struct Comparison {
    added: FieldSet,
    modified: FieldSet,
    removed: FieldSet,
}

fn compare_objects<S: PatchSchema>(lhs: &Value, rhs: &Value, schema: Option<&S>) -> Comparison {
    let mut out = Comparison::default();
    compare(Some(lhs), Some(rhs), schema, &mut Vec::new(), &mut out);
    out
}

/// structured-merge-diff's `Compare`: leaves are added/modified/removed; a map that appears
/// or disappears is itself added/removed; list items are compared by key.
fn compare<S: PatchSchema>(
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    schema: Option<&S>,
    path: &mut Vec<Pe>,
    out: &mut Comparison,
) {
    let leaf = |out: &mut Comparison, path: &[Pe]| match (lhs, rhs) {
        (None, Some(_)) => out.added.insert(path),
        (Some(_), None) => out.removed.insert(path),
        (Some(a), Some(b)) if !json_eq(a, b) => out.modified.insert(path),
        _ => {}
    };
    let is_map = |v: Option<&Value>| v.is_none_or(Value::is_object);
    let is_list = |v: Option<&Value>| v.is_none_or(Value::is_array);
    if is_map(lhs) && is_map(rhs) && (lhs.is_some() || rhs.is_some()) {
        let empty = |v: Option<&Value>| v.and_then(Value::as_object).is_none_or(Map::is_empty);
        if empty(lhs) && empty(rhs) {
            return leaf(out, path);
        }
        if lhs.is_none() {
            out.added.insert(path);
        } else if rhs.is_none() {
            out.removed.insert(path);
        }
        let (l, r) = (lhs.and_then(Value::as_object), rhs.and_then(Value::as_object));
        let mut keys: Vec<&String> = l.map(|m| m.keys().collect()).unwrap_or_default();
        if let Some(r) = r {
            keys.extend(r.keys().filter(|k| !l.is_some_and(|l| l.contains_key(*k))));
        }
        for k in keys {
            let cs = child_schema(schema, k);
            path.push(Pe::Field(k.clone()));
            compare(l.and_then(|m| m.get(k)), r.and_then(|m| m.get(k)), cs.as_ref(), path, out);
            path.pop();
        }
        return;
    }
    if is_list(lhs) && is_list(rhs) && (lhs.is_some() || rhs.is_some()) {
        let l: &[Value] = lhs.and_then(Value::as_array).map_or(&[], Vec::as_slice);
        let r: &[Value] = rhs.and_then(Value::as_array).map_or(&[], Vec::as_slice);
        let (Some(lp), Some(rp)) = (list_pes(l, schema), list_pes(r, schema)) else {
            return leaf(out, path);
        };
        if l.is_empty() && r.is_empty() {
            return leaf(out, path);
        }
        let es = schema.and_then(PatchSchema::elements);
        let mut pes: Vec<&Pe> = Vec::new();
        for pe in lp.iter().chain(&rp) {
            if !pes.contains(&pe) {
                pes.push(pe);
            }
        }
        for pe in pes {
            let li = lp.iter().position(|p| p == pe).map(|i| &l[i]);
            let ri = rp.iter().position(|p| p == pe).map(|i| &r[i]);
            path.push(pe.clone());
            compare(li, ri, es.as_ref(), path, out);
            path.pop();
        }
        return;
    }
    leaf(out, path)
}

/// structured-merge-diff's `Merge`: `rhs` wins on leaves, maps merge, associative lists merge
/// item by item keeping `rhs`'s order with `lhs`-only items where they were.
fn merge<S: PatchSchema>(lhs: &Value, rhs: &Value, schema: Option<&S>) -> Value {
    match (lhs, rhs) {
        (Value::Object(l), Value::Object(r)) => {
            let mut out = l.clone();
            for (k, rv) in r {
                let cs = child_schema(schema, k);
                let merged = match out.get(k) {
                    Some(lv) => merge(lv, rv, cs.as_ref()),
                    None => rv.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(r)) => match (list_pes(l, schema), list_pes(r, schema)) {
            (Some(lp), Some(rp)) => {
                let es = schema.and_then(PatchSchema::elements);
                Value::Array(merge_items(l, r, &lp, &rp, es.as_ref()))
            }
            _ => rhs.clone(),
        },
        _ => rhs.clone(),
    }
}

fn merge_items<S: PatchSchema>(l: &[Value], r: &[Value], lp: &[Pe], rp: &[Pe], es: Option<&S>) -> Vec<Value> {
    let l_at = |pe: &Pe| lp.iter().position(|p| p == pe);
    let in_r = |pe: &Pe| rp.contains(pe);
    let mut shared = rp.iter().filter(|pe| l_at(pe).is_some());
    let mut next_shared = shared.next();
    let mut done: Vec<&Pe> = Vec::new();
    let mut out = Vec::with_capacity(l.len().max(r.len()));
    let (mut li, mut ri) = (0, 0);
    while li < l.len() || ri < r.len() {
        if li < l.len() && ri < r.len() {
            if lp[li] == rp[ri] {
                out.push(merge(&l[li], &r[ri], es));
                done.push(&rp[ri]);
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if in_r(&lp[li]) && next_shared.is_some_and(|n| *n != lp[li]) {
                // Shared, but placed later by rhs.
                li += 1;
                continue;
            }
        }
        if li < l.len() {
            if !in_r(&lp[li]) {
                out.push(l[li].clone());
                li += 1;
                continue;
            }
            if done.contains(&&lp[li]) {
                li += 1;
                continue;
            }
        }
        if ri < r.len() {
            let pe = &rp[ri];
            done.push(pe);
            out.push(match l_at(pe) {
                Some(i) => merge(&l[i], &r[ri], es),
                None => r[ri].clone(),
            });
            ri += 1;
            if next_shared == Some(pe) {
                next_shared = shared.next();
            }
            continue;
        }
        li += 1;
    }
    out
}

/// Removes the member paths of `set` from `v`; containers emptied by it are removed too.
fn remove_paths<S: PatchSchema>(v: &mut Value, set: &FieldSet, schema: Option<&S>) {
    let nonempty = |v: &Value| match v {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    };
    let emptied = |before: bool, v: &Value| before && !nonempty(v) && (v.is_object() || v.is_array());
    match v {
        Value::Object(m) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let pe = Pe::Field(k.clone());
                if set.members.contains(&pe) {
                    m.shift_remove(&k);
                } else if let Some(sub) = set.children.get(&pe) {
                    let cs = child_schema(schema, &k);
                    if let Some(child) = m.get_mut(&k) {
                        let before = nonempty(child);
                        remove_paths(child, sub, cs.as_ref());
                        if emptied(before, child) {
                            m.shift_remove(&k);
                        }
                    }
                }
            }
        }
        Value::Array(items) => {
            let Some(pes) = list_pes(items, schema) else { return };
            let es = schema.and_then(PatchSchema::elements);
            let mut kept = Vec::with_capacity(items.len());
            for (mut item, pe) in std::mem::take(items).into_iter().zip(pes) {
                if set.members.contains(&pe) {
                    continue;
                }
                if let Some(sub) = set.children.get(&pe) {
                    let before = nonempty(&item);
                    remove_paths(&mut item, sub, es.as_ref());
                    if emptied(before, &item) {
                        continue;
                    }
                }
                kept.push(item);
            }
            *items = kept;
        }
        _ => {}
    }
}

/// Fills key fields a config item omits from the one live item it matches on the keys it
/// has (e.g. a port's defaulted `protocol`), so items keep their live identity.
fn complete_keys<S: PatchSchema>(cfg: &mut Value, live: Option<&Value>, schema: Option<&S>) {
    match (cfg, live) {
        (Value::Object(c), Some(Value::Object(l))) => {
            for (k, cv) in c.iter_mut() {
                let cs = child_schema(schema, k);
                complete_keys(cv, l.get(k), cs.as_ref());
            }
        }
        (Value::Array(c), Some(Value::Array(l))) => {
            let Some(ListMerge::Map { keys }) = list_kind(schema) else { return };
            let es = schema.and_then(PatchSchema::elements);
            for item in c.iter_mut() {
                let Some(im) = item.as_object_mut() else { continue };
                let present: Vec<&String> = keys.iter().filter(|k| im.contains_key(*k)).collect();
                if !present.is_empty() && present.len() < keys.len() {
                    let candidates: Vec<&Map<String, Value>> = l
                        .iter()
                        .filter_map(Value::as_object)
                        .filter(|lm| present.iter().all(|k| lm.get(*k).is_some_and(|v| json_eq(v, &im[*k]))))
                        .collect();
                    if let [only] = candidates.as_slice() {
                        for k in &keys {
                            if !im.contains_key(k)
                                && let Some(v) = only.get(k)
                            {
                                im.insert(k.clone(), v.clone());
                            }
                        }
                    }
                }
                let kind = ListMerge::Map { keys: keys.clone() };
                let Some(pe) = item_pe(item, &kind) else { continue };
                let matched = l.iter().find(|li| item_pe(li, &kind).as_ref() == Some(&pe));
                complete_keys(item, matched, es.as_ref());
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::strategic::tests::{MockSchema, schema};
    use super::*;
    use serde_json::json;

    const T1: &str = "2024-01-01T00:00:01Z";
    const T2: &str = "2024-01-01T00:00:02Z";
    const T3: &str = "2024-01-01T00:00:03Z";

    /// The Deployment as Flotilla returned it after kubectl's managedFields JSON patch.
    const MIGRATED_LIVE: &str = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"labels\":{\"app\":\"web\"},\"name\":\"web\",\"namespace\":\"default\"},\"spec\":{\"replicas\":2,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},\"spec\":{\"containers\":[{\"image\":\"hello.wasm\",\"name\":\"web\",\"ports\":[{\"containerPort\":8080}]}]}}}}\n"},"labels":{"app":"web"},"name":"web","namespace":"default","uid":"3a2efdad-8e22-4f99-9fc8-abc7705eb97b","creationTimestamp":"2026-11-26T01:23:54Z","generation":1,"resourceVersion":"8","managedFields":[{"manager":"kubectl","operation":"Apply","apiVersion":"apps/v1","time":"2026-11-26T01:23:54Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}},"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:progressDeadlineSeconds":{},"f:replicas":{},"f:revisionHistoryLimit":{},"f:selector":{".":{},"f:matchLabels":{".":{},"f:app":{}}},"f:strategy":{".":{},"f:rollingUpdate":{".":{},"f:maxSurge":{},"f:maxUnavailable":{}},"f:type":{}},"f:template":{".":{},"f:metadata":{".":{},"f:labels":{".":{},"f:app":{}}},"f:spec":{".":{},"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:ports":{"k:{\"containerPort\":8080}":{".":{},"f:containerPort":{},"f:protocol":{}}},"f:resources":{},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},"f:dnsPolicy":{},"f:initContainers":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}}}},{"manager":"kubectl-last-applied","operation":"Apply","apiVersion":"apps/v1","time":"2026-11-26T01:23:54Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:annotations":{"f:kubectl.kubernetes.io/last-applied-configuration":{}}}}}]},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"image":"hello.wasm","name":"web","ports":[{"containerPort":8080,"protocol":"TCP"}],"imagePullPolicy":"Always","terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","resources":{}}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","securityContext":{},"schedulerName":"default-scheduler","initContainers":null}},"revisionHistoryLimit":10,"progressDeadlineSeconds":600,"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":"25%"}}}}"#;

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": replicas,
                "template": {"spec": {"containers": [{"name": "nginx", "image": image}]}}
            }
        })
    }

    fn apply(live: Option<&Value>, cfg: &Value, mgr: &str, force: bool, now: &str) -> Result<Value, ApplyError> {
        let s = schema();
        server_side_apply(live, cfg, mgr, force, Some(&s), "apps/v1", now)
    }

    fn entry<'a>(obj: &'a Value, manager: &str, operation: &str) -> Option<&'a Value> {
        obj.pointer("/metadata/managedFields")?
            .as_array()?
            .iter()
            .find(|e| e["manager"] == manager && e["operation"] == operation)
    }

    #[test]
    fn apply_create_records_fields_v1() {
        let out = apply(None, &deployment(3, "nginx:1"), "kubectl", false, T1).unwrap();
        assert_eq!(out["spec"]["replicas"], 3);
        let mf = out["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(mf.len(), 1);
        assert_eq!(
            mf[0],
            json!({
                "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": T1,
                "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {
                        "f:replicas": {},
                        "f:template": {"f:spec": {"f:containers": {
                            "k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}
                        }}}
                    }
                }
            })
        );
    }

    #[test]
    fn server_metadata_in_config_is_ignored() {
        let mut cfg = deployment(1, "a");
        cfg["metadata"]["resourceVersion"] = json!("5");
        cfg["metadata"]["uid"] = json!("u");
        cfg["metadata"]["managedFields"] = json!([{"manager": "x"}]);
        let out = apply(None, &cfg, "kubectl", false, T1).unwrap();
        assert!(out["metadata"].get("resourceVersion").is_none());
        let fields = &entry(&out, "kubectl", "Apply").unwrap()["fieldsV1"]["f:metadata"];
        assert_eq!(fields, &json!({"f:labels": {"f:app": {}}}));
    }

    #[test]
    fn reapply_without_field_removes_it() {
        let mut cfg = deployment(3, "nginx:1");
        cfg["metadata"]["labels"]["tier"] = json!("front");
        let live = apply(None, &cfg, "kubectl", false, T1).unwrap();
        let out = apply(Some(&live), &deployment(3, "nginx:1"), "kubectl", false, T2).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
        let fields = &entry(&out, "kubectl", "Apply").unwrap()["fieldsV1"];
        assert!(fields["f:metadata"]["f:labels"].get("f:tier").is_none());
        // Dropping a whole container removes it.
        let mut two = deployment(3, "nginx:1");
        two["spec"]["template"]["spec"]["containers"] =
            json!([{"name": "nginx", "image": "nginx:1"}, {"name": "side", "image": "s"}]);
        let live = apply(Some(&out), &two, "kubectl", false, T2).unwrap();
        assert_eq!(live["spec"]["template"]["spec"]["containers"].as_array().unwrap().len(), 2);
        let out = apply(Some(&live), &deployment(3, "nginx:1"), "kubectl", false, T3).unwrap();
        assert_eq!(out["spec"]["template"]["spec"]["containers"], json!([{"name": "nginx", "image": "nginx:1"}]));
    }

    #[test]
    fn field_still_owned_by_another_manager_is_not_removed() {
        let mut cfg = deployment(3, "nginx:1");
        cfg["metadata"]["labels"]["tier"] = json!("front");
        let live = apply(None, &cfg, "a", false, T1).unwrap();
        let live = apply(Some(&live), &cfg, "b", false, T2).unwrap();
        let out = apply(Some(&live), &deployment(3, "nginx:1"), "a", false, T3).unwrap();
        assert_eq!(out["metadata"]["labels"]["tier"], "front");
        assert!(entry(&out, "a", "Apply").unwrap()["fieldsV1"]["f:metadata"]["f:labels"].get("f:tier").is_none());
        assert!(entry(&out, "b", "Apply").unwrap()["fieldsV1"]["f:metadata"]["f:labels"].get("f:tier").is_some());
    }

    #[test]
    fn two_appliers_conflict_and_force_transfers() {
        let live = apply(None, &deployment(3, "nginx:1"), "alice", false, T1).unwrap();
        let err = apply(Some(&live), &json!({"spec": {"replicas": 5}}), "bob", false, T2).unwrap_err();
        let ApplyError::Conflicts(conflicts) = &err else { panic!("{err}") };
        assert_eq!(
            conflicts,
            &vec![Conflict {
                manager: "alice".into(),
                operation: "Apply".into(),
                api_version: "apps/v1".into(),
                subresource: String::new(),
                field: ".spec.replicas".into(),
            }]
        );
        assert_eq!(err.to_string(), "Apply failed with 1 conflict: conflict with \"alice\": .spec.replicas");

        let out = apply(Some(&live), &json!({"spec": {"replicas": 5}}), "bob", true, T2).unwrap();
        assert_eq!(out["spec"]["replicas"], 5);
        assert!(entry(&out, "alice", "Apply").unwrap()["fieldsV1"]["f:spec"].get("f:replicas").is_none());
        assert_eq!(entry(&out, "bob", "Apply").unwrap()["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
        // Same value from another applier: shared ownership, no conflict.
        let shared = apply(Some(&live), &json!({"spec": {"replicas": 3}}), "carol", false, T2).unwrap();
        assert!(entry(&shared, "alice", "Apply").unwrap()["fieldsV1"]["f:spec"].get("f:replicas").is_some());
        assert!(entry(&shared, "carol", "Apply").is_some());
    }

    #[test]
    fn conflict_with_updater_message_and_causes() {
        let s = schema();
        let mut obj = deployment(3, "nginx:1");
        track_update(None, &mut obj, "kubectl-client-side-apply", Some(&s), "apps/v1", T1);
        let cfg = json!({"spec": {"replicas": 4, "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:2"}]}}}});
        let err = apply(Some(&obj), &cfg, "mine", false, T2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers[name=\"nginx\"].image"
        );
        let ApplyError::Conflicts(c) = err else { panic!() };
        assert_eq!(
            conflict_causes(&c)[0],
            (
                "FieldManagerConflict".to_string(),
                "conflict with \"kubectl-client-side-apply\" using apps/v1".to_string(),
                ".spec.replicas".to_string()
            )
        );
    }

    #[test]
    fn apply_after_update_with_same_value_has_no_conflict() {
        let s = schema();
        let mut obj = deployment(3, "nginx:1");
        track_update(None, &mut obj, "kubectl-create", Some(&s), "apps/v1", T1);
        let out = apply(Some(&obj), &json!({"spec": {"replicas": 3}}), "mine", false, T2).unwrap();
        // Both own it now.
        assert!(entry(&out, "kubectl-create", "Update").unwrap()["fieldsV1"]["f:spec"].get("f:replicas").is_some());
        assert_eq!(entry(&out, "mine", "Apply").unwrap()["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
        // Apply entries sort before Update entries.
        assert_eq!(out["metadata"]["managedFields"][0]["operation"], "Apply");
    }

    #[test]
    fn kubectl_upgrade_from_client_side_apply_is_allowed() {
        let s = schema();
        let mut obj = deployment(3, "nginx:1");
        let last = serde_json::to_string(&deployment(3, "nginx:1")).unwrap();
        obj["metadata"]["annotations"] = json!({LAST_APPLIED: last});
        track_update(None, &mut obj, "kubectl-client-side-apply", Some(&s), "apps/v1", T1);
        let out = apply(Some(&obj), &deployment(5, "nginx:1"), "kubectl", false, T2).unwrap();
        assert_eq!(out["spec"]["replicas"], 5);
        let annotation = out["metadata"]["annotations"][LAST_APPLIED].as_str().unwrap();
        let synced: Value = serde_json::from_str(annotation).unwrap();
        assert_eq!(synced["spec"]["replicas"], 5);
        // Another manager name gets the conflict.
        assert!(matches!(
            apply(Some(&obj), &deployment(5, "nginx:1"), "other", false, T2),
            Err(ApplyError::Conflicts(_))
        ));
    }

    /// kubectl 1.32 `apply --server-side` over a client-side-applied Deployment: after its
    /// JSON patch merges the `kubectl-client-side-apply` entry into the `kubectl` Apply entry
    /// (marking `spec.template`, `spec.selector`, … themselves with `.`), the re-apply must
    /// not prune those nodes while the config still sets fields below them.
    #[test]
    fn reapply_after_client_side_apply_migration_keeps_spec() {
        let live: Value = serde_json::from_str(MIGRATED_LIVE).unwrap();
        let cfg = json!({"apiVersion":"apps/v1","kind":"Deployment",
            "metadata":{"labels":{"app":"web"},"name":"web","namespace":"default"},
            "spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},
                "template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[
                    {"image":"hello.wasm","name":"web","ports":[{"containerPort":8080}]}]}}}});
        let out = apply(Some(&live), &cfg, "kubectl", true, T2).unwrap();
        assert_eq!(out["spec"]["replicas"], 2);
        assert_eq!(out["spec"]["selector"], json!({"matchLabels": {"app": "web"}}));
        assert_eq!(out["spec"]["template"]["metadata"], json!({"labels": {"app": "web"}}));
        let c = &out["spec"]["template"]["spec"]["containers"][0];
        assert_eq!((&c["name"], &c["image"]), (&json!("web"), &json!("hello.wasm")));
        assert_eq!(c["ports"], json!([{"containerPort": 8080, "protocol": "TCP"}]));
        // Leaves only the migrated entry owned (server defaults) are pruned, to be re-defaulted.
        assert!(c.get("imagePullPolicy").is_none());
        assert!(out["spec"].get("strategy").is_none());
        assert_eq!(out["metadata"]["name"], "web");
        assert_eq!(out["metadata"]["uid"], "3a2efdad-8e22-4f99-9fc8-abc7705eb97b");
        assert!(out["metadata"]["annotations"][LAST_APPLIED].is_string());
        assert_eq!(
            entry(&out, "kubectl", "Apply").unwrap()["fieldsV1"],
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {"f:matchLabels": {"f:app": {}}},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                            ".": {}, "f:image": {}, "f:name": {},
                            "f:ports": {"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}": {
                                ".": {}, "f:containerPort": {}, "f:protocol": {}
                            }}
                        }}}
                    }
                }
            })
        );
        assert_eq!(
            entry(&out, "kubectl-last-applied", "Apply").unwrap()["fieldsV1"],
            json!({"f:metadata": {"f:annotations": {"f:kubectl.kubernetes.io/last-applied-configuration": {}}}})
        );
    }

    #[test]
    fn named_fields_become_members_but_map_keys_do_not() {
        let s = schema();
        let mut set = FieldSet::default();
        let f = |n: &str| Pe::Field(n.to_string());
        set.insert(&[f("spec"), f("template"), f("metadata"), f("labels"), f("app")]);
        set.insert(&[f("spec"), f("x"), f("y")]);
        let named = with_named_fields(&set, Some(&s));
        let json = named.to_json(false);
        assert_eq!(
            json,
            json!({"f:spec": {
                ".": {},
                "f:template": {".": {}, "f:metadata": {".": {}, "f:labels": {".": {}, "f:app": {}}}},
                "f:x": {"f:y": {}}
            }})
        );
        assert!(named.members.contains(&f("spec")));
        assert!(!with_named_fields::<MockSchema>(&set, None).members.contains(&f("spec")));
    }

    #[test]
    fn pruning_a_whole_previously_owned_subtree() {
        // The applier marked `spec.strategy` itself last time and no longer sends anything
        // below it: it goes, while metadata nobody owns stays.
        let mut cfg = deployment(3, "nginx:1");
        cfg["spec"]["strategy"] = json!({"type": "Recreate"});
        let mut live = apply(None, &cfg, "kubectl", false, T1).unwrap();
        live["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:strategy"]["."] = json!({});
        live["metadata"]["managedFields"][0]["fieldsV1"]["f:metadata"] = json!({"f:labels": {".": {}, "f:app": {}}});
        let out = apply(Some(&live), &json!({"spec": {"replicas": 3}}), "kubectl", false, T2).unwrap();
        assert!(out["spec"].get("strategy").is_none());
        assert!(out["spec"].get("template").is_none());
        assert!(out["metadata"].get("labels").is_none());
        assert_eq!(out["metadata"]["name"], "web");
    }

    #[test]
    fn track_update_on_create_and_change() {
        let s = schema();
        let mut obj = deployment(3, "nginx:1");
        obj["metadata"]["resourceVersion"] = json!("1");
        track_update(None, &mut obj, "creator", Some(&s), "apps/v1", T1);
        let e = entry(&obj, "creator", "Update").unwrap();
        assert_eq!(
            e["fieldsV1"],
            json!({
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:template": {".": {}, "f:spec": {".": {}, "f:containers": {
                        "k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}
                    }}}
                }
            })
        );
        assert_eq!(e["time"], T1);

        // Another writer changes the image: it takes that field from the creator.
        let old = obj.clone();
        let mut new = obj.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        track_update(Some(&old), &mut new, "editor", Some(&s), "apps/v1", T2);
        let creator = entry(&new, "creator", "Update").unwrap();
        assert!(
            creator["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"]
                .get("f:image")
                .is_none()
        );
        assert_eq!(creator["time"], T1);
        assert_eq!(
            entry(&new, "editor", "Update").unwrap()["fieldsV1"],
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {"f:image": {}}}}}}})
        );

        // A write that changes nothing tracked leaves the entries alone.
        let old = new.clone();
        let mut same = new.clone();
        same["metadata"]["resourceVersion"] = json!("2");
        track_update(Some(&old), &mut same, "noop", Some(&s), "apps/v1", T3);
        assert!(entry(&same, "noop", "Update").is_none());
        assert_eq!(same["metadata"]["managedFields"], old["metadata"]["managedFields"]);
    }

    #[test]
    fn track_update_status_subresource_and_merge_same_manager() {
        let s = schema();
        let mut obj = deployment(1, "a");
        track_update(None, &mut obj, "c", Some(&s), "apps/v1", T1);
        let old = obj.clone();
        let mut new = obj.clone();
        new["status"] = json!({"replicas": 1});
        track_update_subresource(Some(&old), &mut new, "ctrl", Some(&s), "apps/v1", T2, Some("status"));
        let e = entry(&new, "ctrl", "Update").unwrap();
        assert_eq!(e["subresource"], "status");
        assert_eq!(e["fieldsV1"], json!({"f:status": {".": {}, "f:replicas": {}}}));

        // The same manager's later update extends its entry.
        let old = new.clone();
        new["metadata"]["labels"]["x"] = json!("y");
        track_update(Some(&old), &mut new, "c", Some(&s), "apps/v1", T3);
        let mf = new["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(mf.iter().filter(|e| e["manager"] == "c").count(), 1);
        let c = entry(&new, "c", "Update").unwrap();
        assert_eq!(c["time"], T3);
        assert!(c["fieldsV1"]["f:metadata"]["f:labels"].get("f:x").is_some());
        assert!(c["fieldsV1"]["f:spec"].get("f:replicas").is_some());
        // Sorted by time within Update: ctrl (T2) before c (T3).
        assert_eq!(mf[0]["manager"], "ctrl");
    }

    #[test]
    fn associative_list_merge_keeps_other_items_and_order() {
        let s = schema();
        let mut live = deployment(1, "a");
        live["spec"]["template"]["spec"]["containers"] =
            json!([{"name": "x", "image": "1"}, {"name": "y", "image": "1"}, {"name": "z", "image": "1"}]);
        track_update(None, &mut live, "other", Some(&s), "apps/v1", T1);
        let cfg = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "z", "image": "1"}, {"name": "new", "image": "2"}
        ]}}}});
        let out = apply(Some(&live), &cfg, "me", false, T2).unwrap();
        let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["x", "y", "z", "new"]);
    }

    #[test]
    fn ports_missing_defaulted_key_match_live_item() {
        let s = schema();
        let mut live = deployment(1, "a");
        live["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80, "protocol": "TCP"}]);
        let cfg = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "nginx", "image": "a", "ports": [{"containerPort": 80, "name": "http"}]}
        ]}}}});
        let out = server_side_apply(Some(&live), &cfg, "me", false, Some(&s), "apps/v1", T1).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 80, "protocol": "TCP", "name": "http"}])
        );
        let ports = &entry(&out, "me", "Apply").unwrap()["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
            ["k:{\"name\":\"nginx\"}"]["f:ports"];
        assert!(ports.get("k:{\"containerPort\":80,\"protocol\":\"TCP\"}").is_some(), "{ports}");
    }

    #[test]
    fn duplicate_keys_in_config_are_invalid() {
        let cfg = json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}});
        let err = apply(None, &cfg, "me", false, T1).unwrap_err();
        assert_eq!(err.to_string(), ".spec.template.spec.containers: duplicate entries for key [name=\"a\"]");
    }

    #[test]
    fn set_lists_and_no_schema() {
        let s = schema();
        let live = server_side_apply(
            None,
            &json!({"metadata": {"name": "x", "finalizers": ["a"]}}),
            "m1",
            false,
            Some(&s),
            "v1",
            T1,
        )
        .unwrap();
        let out = server_side_apply(
            Some(&live),
            &json!({"metadata": {"finalizers": ["b"]}}),
            "m2",
            false,
            Some(&s),
            "v1",
            T2,
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(
            entry(&out, "m2", "Apply").unwrap()["fieldsV1"],
            json!({"f:metadata": {"f:finalizers": {"v:\"b\"": {}}}})
        );
        // Without a schema: map keys own their node, lists are atomic.
        let out = server_side_apply::<MockSchema>(
            None,
            &json!({"spec": {"a": {"b": 1}, "l": [1]}}),
            "m",
            false,
            None,
            "x/v1",
            T1,
        )
        .unwrap();
        assert_eq!(
            entry(&out, "m", "Apply").unwrap()["fieldsV1"],
            json!({"f:spec": {".": {}, "f:a": {".": {}, "f:b": {}}, "f:l": {}}})
        );
    }

    #[test]
    fn fields_v1_round_trip_and_bad_entries() {
        let v = json!({"f:a": {".": {}, "f:b": {}}, "f:l": {"k:{\"name\":\"x\"}": {".": {}, "f:name": {}}, "v:3": {}}});
        let set = FieldSet::from_json(&v).unwrap();
        assert_eq!(set.to_json(false), v);
        let paths: Vec<String> = set.paths().iter().map(|p| path_string(p)).collect();
        assert_eq!(paths, [".a", ".a.b", ".l[name=\"x\"]", ".l[=3]", ".l[name=\"x\"].name"]);
        let bad = json!({"metadata": {"managedFields": [{"manager": "m", "fieldsType": "FieldsV2"}]}});
        let s = schema();
        assert!(matches!(
            server_side_apply(Some(&bad), &json!({}), "m", false, Some(&s), "v1", T1),
            Err(ApplyError::Invalid(_))
        ));
    }

    #[test]
    fn update_managers_are_capped() {
        let s = schema();
        let mut obj = json!({"metadata": {"name": "x"}, "data": {}});
        for i in 0..12 {
            let old = obj.clone();
            obj["data"][format!("k{i}")] = json!(i);
            let now = format!("2024-01-01T00:00:{i:02}Z");
            track_update(Some(&old), &mut obj, &format!("m{i:02}"), Some(&s), "v1", &now);
        }
        let mf = obj["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(mf.len(), 10);
        let ancient = entry(&obj, ANCIENT_CHANGES, "Update").unwrap();
        assert_eq!(ancient["fieldsV1"]["f:data"].as_object().unwrap().len(), 3);
    }
}
