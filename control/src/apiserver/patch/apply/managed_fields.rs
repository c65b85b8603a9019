//! `metadata.managedFields`: one entry per manager identity (manager, operation, and for
//! `Update` the apiVersion, plus the subresource), decoded from and encoded to the object.
//!
//! Invariants: entries with the same identity are merged on decode; encoded entries are
//! sorted by operation, time, manager, apiVersion, subresource; at most
//! [`MAX_UPDATE_MANAGERS`] `Update` entries remain, older ones merged into `ancient-changes`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::fieldset::FieldSet;

/// Update entries kept before the oldest are merged into `ancient-changes`.
const MAX_UPDATE_MANAGERS: usize = 10;
pub(super) const ANCIENT_CHANGES: &str = "ancient-changes";

#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub(super) manager: String,
    pub(super) operation: String,
    pub(super) api_version: String,
    pub(super) subresource: String,
    pub(super) time: Option<String>,
    pub(super) set: FieldSet,
}

/// The manager identifier Kubernetes keys entries by: apiVersion only for `Update`.
pub(super) fn identity(manager: &str, operation: &str, api_version: &str, subresource: &str) -> String {
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
pub(super) fn is_reset(managed: Option<&Value>) -> bool {
    matches!(managed, Some(Value::Array(a)) if a.len() == 1 && a[0].as_object().is_some_and(Map::is_empty))
}

pub(super) fn decode_managed_fields(managed: Option<&Value>) -> Result<BTreeMap<String, Entry>, String> {
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

pub(super) fn encode_managed_fields(obj: &mut Value, managers: BTreeMap<String, Entry>) {
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
pub(super) fn cap_update_managers(managers: &mut BTreeMap<String, Entry>) {
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

pub(super) fn remove_managed_fields(obj: &mut Value) {
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        meta.shift_remove("managedFields");
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{T1, entry};
    use super::super::{ApplyError, server_side_apply, track_update};
    use super::super::super::strategic::tests::schema;
    use super::*;
    use serde_json::json;

    #[test]
    fn bad_fields_type_is_invalid() {
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
