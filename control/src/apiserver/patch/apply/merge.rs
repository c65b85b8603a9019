//! Schema-guided walks over JSON values, after structured-merge-diff: the fields a value
//! sets ([`value_set`]), comparing two values ([`compare_objects`]), merging an apply
//! config into the live object ([`merge`]), removing owned paths ([`remove_paths`]), and
//! filling defaulted list keys from the live object ([`complete_keys`]).
//!
//! Invariant: a list is associative (items addressed by key or value) only where the schema
//! says so and every item has its key; otherwise it is atomic and handled as one leaf.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::super::{ListMerge, PatchSchema};
use super::fieldset::{FieldSet, Pe, path_string};
use super::quote;

/// `set` plus, as members, every schema-named field that has children in it
/// (structured-merge-diff's `EnsureNamedFieldsAreMembers`); map keys are not added.
pub(super) fn with_named_fields<S: PatchSchema>(set: &FieldSet, schema: Option<&S>) -> FieldSet {
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
pub(super) fn value_set<S: PatchSchema>(
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
pub(super) struct Comparison {
    pub(super) added: FieldSet,
    pub(super) modified: FieldSet,
    pub(super) removed: FieldSet,
}

pub(super) fn compare_objects<S: PatchSchema>(lhs: &Value, rhs: &Value, schema: Option<&S>) -> Comparison {
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
pub(super) fn merge<S: PatchSchema>(lhs: &Value, rhs: &Value, schema: Option<&S>) -> Value {
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
pub(super) fn remove_paths<S: PatchSchema>(v: &mut Value, set: &FieldSet, schema: Option<&S>) {
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
pub(super) fn complete_keys<S: PatchSchema>(cfg: &mut Value, live: Option<&Value>, schema: Option<&S>) {
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

/// Deep equality with numbers compared by value.
pub(super) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{T1, T2, apply, deployment, entry};
    use super::super::{server_side_apply, track_update};
    use super::super::super::strategic::tests::{MockSchema, schema};
    use super::*;
    use serde_json::json;

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
}
