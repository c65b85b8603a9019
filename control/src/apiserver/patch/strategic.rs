//! Kubernetes strategic merge patch (`application/strategic-merge-patch+json`) over
//! `serde_json::Value`, following k8s.io/apimachinery `strategicpatch` as the server applies it.
//!
//! Invariants:
//! - `null` in the patch deletes the field; maps merge recursively.
//! - Lists merge per [`ListMerge`]: `Atomic` is replaced, `Map` merges items by the first key
//!   (the patch merge key), `Set` unions scalars. Without a schema a list is replaced.
//! - Directives (`$patch`, `$retainKeys`, `$setElementOrder/<f>`, `$deleteFromPrimitiveList/<f>`)
//!   never survive into the result.
//! - Order of a merged list is Kubernetes': `$setElementOrder` first, then the patch's order,
//!   with server-only items kept at their relative place; a new item without a
//!   `$setElementOrder` goes before the server-only items that follow it.

use serde_json::{Map, Value};

use super::{ListMerge, PatchSchema};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Why a strategic merge patch could not be applied. Messages follow
/// k8s.io/apimachinery/pkg/util/mergepatch so clients see familiar text.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PatchError {
    #[error("invalid JSON document")]
    BadJsonDoc,
    #[error("invalid patch format of retainKeys")]
    BadRetainKeys,
    #[error("invalid patch format of setElementOrder list")]
    BadSetElementOrder,
    #[error("invalid patch format of primitive list")]
    BadPrimitiveList,
    #[error("unknown patch type: {directive} in map: {map}")]
    BadPatchType { directive: String, map: String },
    #[error("map: {map} does not contain declared merge key: {key}")]
    NoMergeKey { map: String, key: String },
    #[error("cannot merge lists without merge key for type map")]
    NoMergeKeyDeclared,
    #[error("lists of lists are not supported")]
    ListOfLists,
    #[error("list element types are not identical: {0}")]
    MixedElementTypes(String),
    #[error("expected a {expected}, but received a {actual}")]
    BadArgType { expected: &'static str, actual: &'static str },
    #[error("The order in patch list:\n{patch}\n doesn't match $setElementOrder list:\n{order}\n")]
    OrderMismatch { patch: String, order: String },
}

/// Applies `patch` to `original` as the API server applies a strategic merge patch.
/// `schema` describes `original`'s kind; `None` means maps merge and lists are replaced.
pub(crate) fn strategic_merge<S: PatchSchema>(
    original: &Value,
    patch: &Value,
    schema: Option<&S>,
) -> Result<Value, PatchError> {
    let patch = patch.as_object().ok_or(PatchError::BadJsonDoc)?;
    let original = match original {
        Value::Object(m) => Some(m),
        Value::Null => None,
        _ => return Err(PatchError::BadJsonDoc),
    };
    merge_map(original, patch, schema).map(Value::Object)
}

/// Schema of the value stored under `key` of an object: a declared property, else the
/// map's value schema.
fn child_schema<S: PatchSchema>(schema: Option<&S>, key: &str) -> Option<S> {
    schema.and_then(|s| s.field(key).or_else(|| s.elements()))
}

fn list_merge_of<S: PatchSchema>(schema: Option<&S>) -> ListMerge {
    schema.map_or(ListMerge::Atomic, PatchSchema::list_merge)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Equality as Go's `==` on decoded JSON: numbers compare as float64.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn merge_map<S: PatchSchema>(
    original: Option<&Map<String, Value>>,
    patch: &Map<String, Value>,
    schema: Option<&S>,
) -> Result<Map<String, Value>, PatchError> {
    let mut patch = patch.clone();
    if let Some(directive) = patch.get(DIRECTIVE) {
        match directive.as_str() {
            Some("replace") => {
                patch.shift_remove(DIRECTIVE);
                // Replace: the patch is the new value (its own directives still apply).
                return merge_map(None, &patch, schema);
            }
            Some("delete") => return Ok(Map::new()),
            // `merge` is the default behaviour for maps.
            Some("merge") => {
                patch.shift_remove(DIRECTIVE);
            }
            _ => {
                return Err(PatchError::BadPatchType {
                    directive: directive.to_string(),
                    map: Value::Object(patch.clone()).to_string(),
                });
            }
        }
    }
    let mut out = original.cloned().unwrap_or_default();

    apply_retain_keys(&mut out, &mut patch)?;
    apply_set_element_order(&mut out, &mut patch, schema)?;

    for (key, patch_value) in patch {
        if let Some(rest) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let target = rest.strip_prefix('/').ok_or(PatchError::BadPrimitiveList)?;
            let to_delete = patch_value.as_array().ok_or(PatchError::BadPrimitiveList)?;
            if let Some(current) = out.get_mut(target) {
                let actual = type_name(current);
                let list =
                    current.as_array_mut().ok_or(PatchError::BadArgType { expected: "[]interface {}", actual })?;
                list.retain(|v| !to_delete.iter().any(|d| same(d, v)));
            }
            continue;
        }
        if patch_value.is_null() {
            out.shift_remove(&key);
            continue;
        }
        let child = child_schema(schema, &key);
        let merged = match (out.get(&key), &patch_value) {
            (Some(Value::Object(o)), Value::Object(p)) => Value::Object(merge_map(Some(o), p, child.as_ref())?),
            (Some(Value::Array(o)), Value::Array(p)) => Value::Array(merge_list(o, p, child.as_ref())?),
            // Absent or of another type: the patch value (cleaned of directives) wins.
            _ => clean(&patch_value, child.as_ref())?,
        };
        out.insert(key, merged);
    }
    Ok(out)
}

/// A patch value taken as a whole: directives are resolved against an empty original.
fn clean<S: PatchSchema>(value: &Value, schema: Option<&S>) -> Result<Value, PatchError> {
    match value {
        Value::Object(p) => merge_map(None, p, schema).map(Value::Object),
        Value::Array(p) => merge_list(&[], p, schema).map(Value::Array),
        other => Ok(other.clone()),
    }
}

/// `$retainKeys`: clears original fields not listed; every field the patch sets must be listed.
fn apply_retain_keys(out: &mut Map<String, Value>, patch: &mut Map<String, Value>) -> Result<(), PatchError> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let retain = retain.as_array().ok_or(PatchError::BadRetainKeys)?;
    let listed = |k: &str| retain.iter().any(|v| v.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null() || k.starts_with(DELETE_FROM_PRIMITIVE_LIST) || k.starts_with(SET_ELEMENT_ORDER) {
            continue;
        }
        if !listed(k) {
            return Err(PatchError::BadRetainKeys);
        }
    }
    out.retain(|k, _| listed(k));
    Ok(())
}

/// How list items are identified: by merge key value for lists of maps, else by value.
#[derive(Clone, Copy)]
enum Ident<'a> {
    Key(&'a str),
    Value,
}

impl Ident<'_> {
    fn of<'v>(&self, item: &'v Value) -> Option<&'v Value> {
        match self {
            Ident::Key(k) => item.as_object().and_then(|m| m.get(*k)),
            Ident::Value => Some(item),
        }
    }

    fn index_in(&self, list: &[Value], item: &Value) -> Option<usize> {
        let wanted = self.of(item)?;
        list.iter().position(|v| self.of(v).is_some_and(|x| same(x, wanted)))
    }

    fn require(&self, lists: &[&[Value]]) -> Result<(), PatchError> {
        if let Ident::Key(key) = self {
            for item in lists.iter().flat_map(|l| l.iter()) {
                let m = item
                    .as_object()
                    .ok_or(PatchError::BadArgType { expected: "map[string]interface {}", actual: type_name(item) })?;
                if !m.contains_key(*key) {
                    return Err(PatchError::NoMergeKey { map: item.to_string(), key: (*key).to_string() });
                }
            }
        }
        Ok(())
    }
}

fn is_delete_item(item: &Value) -> bool {
    item.get(DIRECTIVE).and_then(Value::as_str) == Some("delete")
}

/// `$setElementOrder/<field>`: merges that list now and orders it by the directive.
fn apply_set_element_order<S: PatchSchema>(
    out: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: Option<&S>,
) -> Result<(), PatchError> {
    let directives: Vec<String> = patch.keys().filter(|k| k.starts_with(SET_ELEMENT_ORDER)).cloned().collect();
    for directive in directives {
        let Some(order) = patch.shift_remove(&directive) else { continue };
        let order = match order {
            Value::Array(a) => a,
            other => {
                return Err(PatchError::BadArgType { expected: "[]interface {}", actual: type_name(&other) });
            }
        };
        let field =
            directive[SET_ELEMENT_ORDER.len()..].strip_prefix('/').ok_or(PatchError::BadSetElementOrder)?.to_string();
        let as_list = |v: &Value| -> Result<Vec<Value>, PatchError> {
            v.as_array().cloned().ok_or(PatchError::BadArgType { expected: "[]interface {}", actual: type_name(v) })
        };
        let original_list = out.get(&field).map(as_list).transpose()?;
        let patch_list = patch.get(&field).map(as_list).transpose()?;
        let child = child_schema(schema, &field);
        let ident = match list_merge_of(child.as_ref()) {
            ListMerge::Map { keys } if !keys.is_empty() => Some(keys[0].clone()),
            _ => None,
        };
        let ident = match &ident {
            Some(k) => Ident::Key(k),
            None => Ident::Value,
        };
        if let Some(p) = &patch_list {
            validate_with_order(p, &order, ident)?;
        }
        let merged = match (&original_list, &patch_list) {
            (Some(o), None) => o.clone(),
            (None, Some(p)) => merge_list(&[], p, child.as_ref())?,
            (Some(o), Some(p)) => merge_list(o, p, child.as_ref())?,
            (None, None) => continue,
        };
        ident.require(&[&merged, &order])?;
        let (in_order, server_only): (Vec<Value>, Vec<Value>) =
            merged.into_iter().partition(|v| ident.index_in(&order, v).is_some());
        let original_list = original_list.unwrap_or_default();
        let ordered = normalize_element_order(in_order, server_only, &order, &original_list, ident);
        out.insert(field.clone(), Value::Array(ordered));
        patch.shift_remove(&field);
    }
    Ok(())
}

/// The patch list's items (deletions aside) must appear in `$setElementOrder` in the same order.
fn validate_with_order(patch: &[Value], order: &[Value], ident: Ident<'_>) -> Result<(), PatchError> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let items: Vec<&Value> = match ident {
        Ident::Key(_) => patch.iter().filter(|v| !is_delete_item(v)).collect(),
        Ident::Value => patch.iter().collect(),
    };
    let (mut p, mut o) = (0, 0);
    while p < items.len() && o < order.len() {
        if items[p].get(DIRECTIVE).is_some() {
            p += 1;
            continue;
        }
        let equal = match ident {
            Ident::Key(key) => {
                let l = items[p].get(key);
                let r = order[o].get(key);
                match (l, r) {
                    (Some(l), Some(r)) => same(l, r),
                    (None, _) => {
                        return Err(PatchError::NoMergeKey { map: items[p].to_string(), key: key.to_string() });
                    }
                    (_, None) => {
                        return Err(PatchError::NoMergeKey { map: order[o].to_string(), key: key.to_string() });
                    }
                }
            }
            Ident::Value => same(items[p], &order[o]),
        };
        if equal {
            p += 1;
        }
        o += 1;
    }
    if p < items.len() {
        return Err(PatchError::OrderMismatch {
            patch: Value::Array(patch.to_vec()).to_string(),
            order: Value::Array(order.to_vec()).to_string(),
        });
    }
    Ok(())
}

/// Merges two lists per the field's strategy.
fn merge_list<S: PatchSchema>(
    original: &[Value],
    patch: &[Value],
    schema: Option<&S>,
) -> Result<Vec<Value>, PatchError> {
    let key = match list_merge_of(schema) {
        ListMerge::Atomic => return Ok(patch.to_vec()),
        ListMerge::Map { keys } => keys.first().cloned(),
        ListMerge::Set => None,
    };
    if original.is_empty() && patch.is_empty() {
        return Ok(Vec::new());
    }
    let items_are_maps = element_kind_is_map(original, patch)?;
    if !items_are_maps {
        // Union of scalars, deduplicated; order is normalized below.
        let mut merged: Vec<Value> = Vec::new();
        for v in original.iter().chain(patch) {
            if !merged.iter().any(|m| same(m, v)) {
                merged.push(v.clone());
            }
        }
        let ident = Ident::Value;
        let (in_patch, server_only): (Vec<Value>, Vec<Value>) =
            merged.into_iter().partition(|v| ident.index_in(patch, v).is_some());
        return Ok(normalize_element_order(in_patch, server_only, patch, original, ident));
    }
    let Some(key) = key else {
        return Err(PatchError::NoMergeKeyDeclared);
    };
    let ident = Ident::Key(&key);
    let element_schema = schema.and_then(PatchSchema::elements);

    // Special elements: `$patch: delete` removes by key, `$patch: replace` replaces the list.
    let mut base: Vec<Value> = original.to_vec();
    let mut plain: Vec<Value> = Vec::new();
    let mut replace = false;
    for item in patch {
        let Some(m) = item.as_object() else {
            return Err(PatchError::BadArgType { expected: "map[string]interface {}", actual: type_name(item) });
        };
        match m.get(DIRECTIVE) {
            None => plain.push(item.clone()),
            Some(d) => match d.as_str() {
                Some("delete") => {
                    let value = m
                        .get(&key)
                        .ok_or_else(|| PatchError::NoMergeKey { map: item.to_string(), key: key.clone() })?;
                    base.retain(|o| !o.get(&key).is_some_and(|v| same(v, value)));
                }
                Some("replace") => replace = true,
                // An explicit merge is the default for list items.
                Some("merge") => {
                    let mut m = m.clone();
                    m.shift_remove(DIRECTIVE);
                    if !m.is_empty() {
                        plain.push(Value::Object(m));
                    }
                }
                _ => {
                    return Err(PatchError::BadPatchType { directive: d.to_string(), map: item.to_string() });
                }
            },
        }
    }
    if replace {
        return plain.iter().map(|v| clean(v, element_schema.as_ref())).collect();
    }

    let mut merged = base.clone();
    for item in &plain {
        let value = item.get(&key).ok_or_else(|| PatchError::NoMergeKey { map: item.to_string(), key: key.clone() })?;
        let found = merged.iter().position(|o| o.get(&key).is_some_and(|v| same(v, value)));
        let item_map = item.as_object().cloned().unwrap_or_default();
        match found {
            Some(i) => {
                let o = merged[i].as_object().cloned();
                merged[i] = Value::Object(merge_map(o.as_ref(), &item_map, element_schema.as_ref())?);
            }
            None => merged.push(Value::Object(merge_map(None, &item_map, element_schema.as_ref())?)),
        }
    }
    ident.require(&[&merged, &plain])?;
    let (in_patch, server_only): (Vec<Value>, Vec<Value>) =
        merged.into_iter().partition(|v| ident.index_in(&plain, v).is_some());
    Ok(normalize_element_order(in_patch, server_only, &plain, &base, ident))
}

/// Whether the items of the lists are maps; they must all be of one kind and not lists.
fn element_kind_is_map(original: &[Value], patch: &[Value]) -> Result<bool, PatchError> {
    let mut kind: Option<&'static str> = None;
    for v in original.iter().chain(patch) {
        if v.is_array() {
            return Err(PatchError::ListOfLists);
        }
        let t = type_name(v);
        match kind {
            None => kind = Some(t),
            Some(k) if k != t => {
                return Err(PatchError::MixedElementTypes(format!(
                    "{} {}",
                    Value::Array(original.to_vec()),
                    Value::Array(patch.to_vec())
                )));
            }
            Some(_) => {}
        }
    }
    Ok(kind == Some("map[string]interface {}"))
}

/// Orders `patch_items` by `patch_order` and `server_only` by `server_order`, then interleaves:
/// a server-only item goes first only when it preceded the patch item in the live list.
fn normalize_element_order(
    mut patch_items: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    ident: Ident<'_>,
) -> Vec<Value> {
    let rank = |order: &[Value], v: &Value| ident.index_in(order, v).unwrap_or(usize::MAX);
    patch_items.sort_by_key(|v| rank(patch_order, v));
    server_only.sort_by_key(|v| rank(server_order, v));

    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (ident.index_in(server_order, l), ident.index_in(server_order, r)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A schema tree for tests: `fields` by name, `elements` for list items / map values.
    #[derive(Clone, Debug, Default)]
    pub(crate) struct MockSchema {
        pub(crate) fields: Vec<(String, MockSchema)>,
        pub(crate) elements: Option<Box<MockSchema>>,
        pub(crate) list: Option<ListMerge>,
    }

    impl PatchSchema for MockSchema {
        fn field(&self, name: &str) -> Option<Self> {
            self.fields.iter().find(|(n, _)| n == name).map(|(_, s)| s.clone())
        }
        fn elements(&self) -> Option<Self> {
            self.elements.as_deref().cloned()
        }
        fn list_merge(&self) -> ListMerge {
            self.list.clone().unwrap_or(ListMerge::Atomic)
        }
        fn retain_keys(&self) -> bool {
            false
        }
    }

    pub(crate) fn obj(fields: Vec<(&str, MockSchema)>) -> MockSchema {
        MockSchema { fields: fields.into_iter().map(|(n, s)| (n.to_string(), s)).collect(), ..Default::default() }
    }
    pub(crate) fn leaf() -> MockSchema {
        MockSchema::default()
    }
    pub(crate) fn map_of(values: MockSchema) -> MockSchema {
        MockSchema { elements: Some(Box::new(values)), ..Default::default() }
    }
    pub(crate) fn list_map(keys: &[&str], item: MockSchema) -> MockSchema {
        MockSchema {
            elements: Some(Box::new(item)),
            list: Some(ListMerge::Map { keys: keys.iter().map(|k| k.to_string()).collect() }),
            ..Default::default()
        }
    }
    pub(crate) fn set() -> MockSchema {
        MockSchema { elements: Some(Box::new(leaf())), list: Some(ListMerge::Set), ..Default::default() }
    }
    pub(crate) fn atomic() -> MockSchema {
        MockSchema { elements: Some(Box::new(leaf())), list: Some(ListMerge::Atomic), ..Default::default() }
    }

    fn metadata() -> MockSchema {
        obj(vec![("name", leaf()), ("labels", map_of(leaf())), ("annotations", map_of(leaf())), ("finalizers", set())])
    }

    fn container() -> MockSchema {
        obj(vec![
            ("name", leaf()),
            ("image", leaf()),
            ("args", atomic()),
            ("env", list_map(&["name"], obj(vec![("name", leaf()), ("value", leaf())]))),
            (
                "ports",
                list_map(
                    &["containerPort", "protocol"],
                    obj(vec![("containerPort", leaf()), ("protocol", leaf()), ("name", leaf())]),
                ),
            ),
        ])
    }

    pub(crate) fn pod_spec() -> MockSchema {
        obj(vec![
            ("containers", list_map(&["name"], container())),
            ("tolerations", atomic()),
            ("volumes", list_map(&["name"], obj(vec![("name", leaf())]))),
        ])
    }

    /// Pod and Deployment shapes in one tree.
    pub(crate) fn schema() -> MockSchema {
        let strategy = obj(vec![("type", leaf()), ("rollingUpdate", obj(vec![("maxSurge", leaf())]))]);
        obj(vec![
            ("apiVersion", leaf()),
            ("kind", leaf()),
            ("metadata", metadata()),
            (
                "spec",
                obj(vec![
                    ("replicas", leaf()),
                    ("selector", obj(vec![("matchLabels", map_of(leaf()))])),
                    ("strategy", strategy),
                    ("template", obj(vec![("metadata", metadata()), ("spec", pod_spec())])),
                    ("containers", list_map(&["name"], container())),
                    ("tolerations", atomic()),
                ]),
            ),
            ("status", obj(vec![("replicas", leaf())])),
        ])
    }

    fn smp(original: Value, patch: Value) -> Value {
        let s = schema();
        match strategic_merge(&original, &patch, Some(&s)) {
            Ok(v) => v,
            Err(e) => panic!("patch failed: {e}"),
        }
    }

    #[test]
    fn null_deletes_and_maps_merge() {
        let got = smp(
            json!({"metadata": {"name": "a", "labels": {"x": "1", "y": "2"}}, "spec": {"replicas": 1}}),
            json!({"metadata": {"labels": {"x": null, "z": "3"}}, "spec": {"replicas": null}}),
        );
        assert_eq!(got, json!({"metadata": {"name": "a", "labels": {"y": "2", "z": "3"}}, "spec": {}}));
    }

    #[test]
    fn unknown_fields_merge_maps_and_replace_lists() {
        let got = strategic_merge::<MockSchema>(
            &json!({"a": {"b": 1, "c": [1, 2]}}),
            &json!({"a": {"d": 2, "c": [3]}}),
            None,
        )
        .unwrap();
        assert_eq!(got, json!({"a": {"b": 1, "c": [3], "d": 2}}));
    }

    #[test]
    fn containers_merge_by_name_new_item_first() {
        // As in "Update API Objects in Place Using kubectl patch": the patched-in
        // container comes before the existing one.
        let got = smp(
            json!({"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}),
            json!({"spec": {"containers": [{"name": "redis", "image": "redis"}]}}),
        );
        assert_eq!(
            got,
            json!({"spec": {"containers": [{"name": "redis", "image": "redis"}, {"name": "nginx", "image": "nginx"}]}})
        );
        let got = smp(
            json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}}),
            json!({"spec": {"containers": [{"name": "b", "image": "2"}]}}),
        );
        assert_eq!(got, json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]}}));
    }

    #[test]
    fn patch_delete_on_list_item() {
        let got = smp(
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}}),
            json!({"spec": {"containers": [{"name": "b", "$patch": "delete"}]}}),
        );
        assert_eq!(got, json!({"spec": {"containers": [{"name": "a"}, {"name": "c"}]}}));
    }

    #[test]
    fn patch_replace_on_list_and_map() {
        let got = smp(
            json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}}),
            json!({"spec": {"containers": [{"name": "c", "image": "y"}, {"$patch": "replace"}]}}),
        );
        assert_eq!(got, json!({"spec": {"containers": [{"name": "c", "image": "y"}]}}));
        let got = smp(
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
        );
        assert_eq!(got, json!({"metadata": {"labels": {"c": "3"}}}));
        let got =
            smp(json!({"metadata": {"labels": {"a": "1"}}}), json!({"metadata": {"labels": {"$patch": "delete"}}}));
        assert_eq!(got, json!({"metadata": {"labels": {}}}));
        let got = smp(
            json!({"metadata": {"labels": {"a": "1"}}}),
            json!({"metadata": {"labels": {"$patch": "merge", "b": "2"}}}),
        );
        assert_eq!(got, json!({"metadata": {"labels": {"a": "1", "b": "2"}}}));
    }

    #[test]
    fn bad_directive_is_an_error() {
        let s = schema();
        let err = strategic_merge(&json!({}), &json!({"metadata": {"$patch": "bogus"}}), Some(&s)).unwrap_err();
        assert!(err.to_string().starts_with("unknown patch type: \"bogus\""), "{err}");
        let err = strategic_merge(
            &json!({"spec": {"containers": [{"name": "a"}]}}),
            &json!({"spec": {"containers": [{"image": "x"}]}}),
            Some(&s),
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::NoMergeKey { .. }), "{err}");
    }

    #[test]
    fn set_element_order_reorders() {
        // What kubectl client-side apply sends when the order of containers changes.
        let got = smp(
            json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}, {"name": "c", "image": "1"}]}}),
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}],
                "containers": [{"name": "a", "image": "2"}]
            }}),
        );
        assert_eq!(
            got,
            json!({"spec": {"containers": [
                {"name": "c", "image": "1"}, {"name": "a", "image": "2"}, {"name": "b", "image": "1"}
            ]}})
        );
    }

    #[test]
    fn set_element_order_keeps_server_only_items_in_place() {
        let got = smp(
            json!({"spec": {"containers": [{"name": "a"}, {"name": "server"}, {"name": "b"}]}}),
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "new"}, {"name": "b"}],
                "containers": [{"name": "new", "image": "n"}]
            }}),
        );
        assert_eq!(
            got,
            // A new item is placed before the server-only items after it (Kubernetes' mergeSortedSlice).
            json!({"spec": {"containers": [{"name": "a"}, {"name": "new", "image": "n"}, {"name": "server"}, {"name": "b"}]}})
        );
    }

    #[test]
    fn set_element_order_with_deletion_and_scalars() {
        let got = smp(
            json!({"metadata": {"finalizers": ["a", "b", "c"]}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            json!({
                "metadata": {"$setElementOrder/finalizers": ["c", "a"], "$deleteFromPrimitiveList/finalizers": ["b"]},
                "spec": {"$setElementOrder/containers": [{"name": "b"}], "containers": [{"$patch": "delete", "name": "a"}]}
            }),
        );
        assert_eq!(got, json!({"metadata": {"finalizers": ["c", "a"]}, "spec": {"containers": [{"name": "b"}]}}));
    }

    #[test]
    fn set_element_order_mismatch_is_an_error() {
        let s = schema();
        let err = strategic_merge(
            &json!({"spec": {"containers": [{"name": "a"}]}}),
            &json!({"spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": [{"name": "z"}]}}),
            Some(&s),
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::OrderMismatch { .. }), "{err}");
    }

    #[test]
    fn retain_keys_clears_unlisted_fields() {
        let got = smp(
            json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        );
        assert_eq!(got, json!({"spec": {"strategy": {"type": "Recreate"}}}));
        let s = schema();
        let err = strategic_merge(
            &json!({}),
            &json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
            Some(&s),
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::BadRetainKeys));
    }

    #[test]
    fn delete_from_primitive_list() {
        let got = smp(
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zz"]}}),
        );
        assert_eq!(got, json!({"metadata": {"finalizers": ["a", "c"]}}));
        // No list to delete from: nothing appears.
        assert_eq!(
            smp(json!({"metadata": {}}), json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}})),
            json!({"metadata": {}})
        );
    }

    #[test]
    fn set_merge_of_finalizers() {
        let got = smp(json!({"metadata": {"finalizers": ["a", "b"]}}), json!({"metadata": {"finalizers": ["b", "c"]}}));
        // Union without duplicates; `a` preceded `b` in the live list so it stays first.
        assert_eq!(got, json!({"metadata": {"finalizers": ["a", "b", "c"]}}));
        let got = smp(json!({"metadata": {"finalizers": ["a"]}}), json!({"metadata": {"finalizers": ["z"]}}));
        assert_eq!(got, json!({"metadata": {"finalizers": ["z", "a"]}}));
    }

    #[test]
    fn atomic_lists_are_replaced() {
        let got = smp(
            json!({"spec": {"tolerations": [{"key": "a"}], "containers": [{"name": "c", "args": ["1", "2"]}]}}),
            json!({"spec": {"tolerations": [{"key": "b"}], "containers": [{"name": "c", "args": ["3"]}]}}),
        );
        assert_eq!(got, json!({"spec": {"tolerations": [{"key": "b"}], "containers": [{"name": "c", "args": ["3"]}]}}));
    }

    #[test]
    fn nested_list_merge_and_new_field_cleaned() {
        let got = smp(
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "env": [{"name": "A", "value": "1"}]}]}}}}),
            json!({"spec": {"template": {
                "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}},
                "spec": {"containers": [{"name": "c", "env": [{"name": "B", "value": "2"}, {"name": "A", "$patch": "delete"}]}]}
            }}}),
        );
        assert_eq!(
            got,
            json!({"spec": {"template": {
                "spec": {"containers": [{"name": "c", "env": [{"name": "B", "value": "2"}]}]},
                "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}}
            }}})
        );
        // A list absent from the original is taken from the patch without directives.
        let got = smp(
            json!({"spec": {}}),
            json!({"spec": {"containers": [{"name": "x"}, {"name": "y", "$patch": "delete"}]}}),
        );
        assert_eq!(got, json!({"spec": {"containers": [{"name": "x"}]}}));
    }

    #[test]
    fn type_change_replaces_and_non_object_patch_fails() {
        let got = smp(json!({"spec": {"replicas": {"a": 1}}}), json!({"spec": {"replicas": 3}}));
        assert_eq!(got, json!({"spec": {"replicas": 3}}));
        let s = schema();
        assert!(matches!(strategic_merge(&json!({}), &json!([1]), Some(&s)), Err(PatchError::BadJsonDoc)));
    }

    #[test]
    fn mixed_element_types_fail() {
        let s = schema();
        let err = strategic_merge(
            &json!({"metadata": {"finalizers": ["a"]}}),
            &json!({"metadata": {"finalizers": [1]}}),
            Some(&s),
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::MixedElementTypes(_)));
    }
}
