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
//!
//! This module holds the two operations ([`server_side_apply`], [`track_update`]), their
//! errors, and the kubectl-specific steps around them (last-applied annotation, server-owned
//! metadata). The parts they are built from: `fieldset` (paths and sets of paths, the
//! `fieldsV1` encoding), `managed_fields` (the `metadata.managedFields` entries per manager)
//! and `merge` (schema-guided walks: the fields a value sets, compare, merge, prune).

mod fieldset;
mod managed_fields;
mod merge;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::PatchSchema;
use fieldset::{FieldSet, Pe, path_string};
use managed_fields::{
    Entry, cap_update_managers, decode_managed_fields, encode_managed_fields, identity, is_reset, remove_managed_fields,
};
use merge::{compare_objects, complete_keys, json_eq, merge, remove_paths, value_set, with_named_fields};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
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

/// Fixtures the part tests share: a Deployment, apply through the mock schema, entry lookup.
#[cfg(test)]
mod fixtures {
    use serde_json::{Value, json};

    use super::super::strategic::tests::schema;
    use super::{ApplyError, server_side_apply};

    pub(super) const T1: &str = "2024-01-01T00:00:01Z";
    pub(super) const T2: &str = "2024-01-01T00:00:02Z";
    pub(super) const T3: &str = "2024-01-01T00:00:03Z";

    pub(super) fn deployment(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": replicas,
                "template": {"spec": {"containers": [{"name": "nginx", "image": image}]}}
            }
        })
    }

    pub(super) fn apply(live: Option<&Value>, cfg: &Value, mgr: &str, force: bool, now: &str) -> Result<Value, ApplyError> {
        let s = schema();
        server_side_apply(live, cfg, mgr, force, Some(&s), "apps/v1", now)
    }

    pub(super) fn entry<'a>(obj: &'a Value, manager: &str, operation: &str) -> Option<&'a Value> {
        obj.pointer("/metadata/managedFields")?
            .as_array()?
            .iter()
            .find(|e| e["manager"] == manager && e["operation"] == operation)
    }
}

#[cfg(test)]
mod tests {
    use super::super::strategic::tests::schema;
    use super::fixtures::{T1, T2, T3, apply, deployment, entry};
    use super::*;
    use serde_json::json;

    /// The Deployment as Flotilla returned it after kubectl's managedFields JSON patch.
    const MIGRATED_LIVE: &str = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"labels\":{\"app\":\"web\"},\"name\":\"web\",\"namespace\":\"default\"},\"spec\":{\"replicas\":2,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},\"spec\":{\"containers\":[{\"image\":\"hello.wasm\",\"name\":\"web\",\"ports\":[{\"containerPort\":8080}]}]}}}}\n"},"labels":{"app":"web"},"name":"web","namespace":"default","uid":"3a2efdad-8e22-4f99-9fc8-abc7705eb97b","creationTimestamp":"2026-11-26T01:23:54Z","generation":1,"resourceVersion":"8","managedFields":[{"manager":"kubectl","operation":"Apply","apiVersion":"apps/v1","time":"2026-11-26T01:23:54Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}},"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:progressDeadlineSeconds":{},"f:replicas":{},"f:revisionHistoryLimit":{},"f:selector":{".":{},"f:matchLabels":{".":{},"f:app":{}}},"f:strategy":{".":{},"f:rollingUpdate":{".":{},"f:maxSurge":{},"f:maxUnavailable":{}},"f:type":{}},"f:template":{".":{},"f:metadata":{".":{},"f:labels":{".":{},"f:app":{}}},"f:spec":{".":{},"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:ports":{"k:{\"containerPort\":8080}":{".":{},"f:containerPort":{},"f:protocol":{}}},"f:resources":{},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},"f:dnsPolicy":{},"f:initContainers":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}}}},{"manager":"kubectl-last-applied","operation":"Apply","apiVersion":"apps/v1","time":"2026-11-26T01:23:54Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:annotations":{"f:kubectl.kubernetes.io/last-applied-configuration":{}}}}}]},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"image":"hello.wasm","name":"web","ports":[{"containerPort":8080,"protocol":"TCP"}],"imagePullPolicy":"Always","terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","resources":{}}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","securityContext":{},"schedulerName":"default-scheduler","initContainers":null}},"revisionHistoryLimit":10,"progressDeadlineSeconds":600,"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":"25%"}}}}"#;

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
}
