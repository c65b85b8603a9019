//! OpenAPI v3 component schemas of every served kind, and navigation over them.
//!
//! [`schemas()`] builds, once per process, the `components.schemas` map that the
//! OpenAPI documents publish and the patch code walks: k8s-openapi's schemars output
//! (refs as `#/components/schemas/NAME`, `$ref` siblings moved under `allOf`), plus
//! what k8s-openapi leaves out — `x-kubernetes-group-version-kind` on each root kind
//! and its `…List`, and the list-merge extensions from the generated `merge_keys.rs`.
//!
//! Invariants: every `$ref` in the map names an entry of the map; each definition is
//! generated once; extensions sit on the property schema (next to `items`/`allOf`),
//! where Kubernetes' own documents put them and kubectl reads them.

use std::sync::OnceLock;

use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use super::merge_keys::{self, Merge};
use super::patch::{ListMerge, PatchSchema};
use super::resources::{RESOURCES, ResourceInfo};

/// Prefix of every `$ref` in the component schemas.
pub(crate) const REF_PREFIX: &str = "#/components/schemas/";
pub(crate) const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub(crate) const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub(crate) const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
pub(crate) const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
pub(crate) const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const RAW_EXTENSION: &str = "io.k8s.apimachinery.pkg.runtime.RawExtension";

const EXT_GVK: &str = "x-kubernetes-group-version-kind";
const EXT_MERGE_KEY: &str = "x-kubernetes-patch-merge-key";
const EXT_STRATEGY: &str = "x-kubernetes-patch-strategy";
const EXT_LIST_TYPE: &str = "x-kubernetes-list-type";
const EXT_MAP_KEYS: &str = "x-kubernetes-list-map-keys";
const EXT_PRESERVE: &str = "x-kubernetes-preserve-unknown-fields";

/// Strict decoding reports at most this many errors (as Kubernetes' decoder does).
const MAX_UNKNOWN_FIELDS: usize = 100;

/// The component schemas, keyed by OpenAPI name ("io.k8s.api.core.v1.Pod").
#[derive(Debug)]
pub(crate) struct Schemas {
    defs: Map<String, Value>,
    /// (group, kind, schema name) of every served kind.
    roots: Vec<(&'static str, &'static str, String)>,
}

/// The process-wide schemas, built on first use.
pub(crate) fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(Schemas::build)
}

fn register<T: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    generator.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// Registers the Rust type of a served kind; returns its schema name.
fn register_kind(group: &str, kind: &str, g: &mut SchemaGenerator) -> Option<String> {
    use k8s_openapi::api::{
        apps::v1 as apps, authorization::v1 as authz, batch::v1 as batch, coordination::v1 as coordination,
        core::v1 as core, discovery::v1 as discovery, events::v1 as events, networking::v1 as networking,
        policy::v1 as policy, rbac::v1 as rbac, scheduling::v1 as scheduling, storage::v1 as storage,
    };
    let name = match (group, kind) {
        ("", "Namespace") => register::<core::Namespace>(g),
        ("", "Pod") => register::<core::Pod>(g),
        ("", "Service") => register::<core::Service>(g),
        ("", "Endpoints") => register::<core::Endpoints>(g),
        ("", "ConfigMap") => register::<core::ConfigMap>(g),
        ("", "Secret") => register::<core::Secret>(g),
        ("", "Event") => register::<core::Event>(g),
        ("", "ServiceAccount") => register::<core::ServiceAccount>(g),
        ("", "Node") => register::<core::Node>(g),
        ("", "PersistentVolume") => register::<core::PersistentVolume>(g),
        ("", "PersistentVolumeClaim") => register::<core::PersistentVolumeClaim>(g),
        ("", "LimitRange") => register::<core::LimitRange>(g),
        ("", "ResourceQuota") => register::<core::ResourceQuota>(g),
        ("apps", "Deployment") => register::<apps::Deployment>(g),
        ("apps", "ReplicaSet") => register::<apps::ReplicaSet>(g),
        ("apps", "StatefulSet") => register::<apps::StatefulSet>(g),
        ("apps", "DaemonSet") => register::<apps::DaemonSet>(g),
        ("apps", "ControllerRevision") => register::<apps::ControllerRevision>(g),
        ("batch", "Job") => register::<batch::Job>(g),
        ("batch", "CronJob") => register::<batch::CronJob>(g),
        ("networking.k8s.io", "Ingress") => register::<networking::Ingress>(g),
        ("networking.k8s.io", "IngressClass") => register::<networking::IngressClass>(g),
        ("networking.k8s.io", "NetworkPolicy") => register::<networking::NetworkPolicy>(g),
        ("networking.k8s.io", "IPAddress") => register::<networking::IPAddress>(g),
        ("networking.k8s.io", "ServiceCIDR") => register::<networking::ServiceCIDR>(g),
        ("discovery.k8s.io", "EndpointSlice") => register::<discovery::EndpointSlice>(g),
        ("coordination.k8s.io", "Lease") => register::<coordination::Lease>(g),
        ("rbac.authorization.k8s.io", "Role") => register::<rbac::Role>(g),
        ("rbac.authorization.k8s.io", "RoleBinding") => register::<rbac::RoleBinding>(g),
        ("rbac.authorization.k8s.io", "ClusterRole") => register::<rbac::ClusterRole>(g),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => register::<rbac::ClusterRoleBinding>(g),
        ("storage.k8s.io", "StorageClass") => register::<storage::StorageClass>(g),
        ("policy", "PodDisruptionBudget") => register::<policy::PodDisruptionBudget>(g),
        ("autoscaling", "HorizontalPodAutoscaler") => register::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>(g),
        ("scheduling.k8s.io", "PriorityClass") => register::<scheduling::PriorityClass>(g),
        ("events.k8s.io", "Event") => register::<events::Event>(g),
        ("authorization.k8s.io", "SelfSubjectAccessReview") => register::<authz::SelfSubjectAccessReview>(g),
        ("authorization.k8s.io", "SelfSubjectRulesReview") => register::<authz::SelfSubjectRulesReview>(g),
        ("authorization.k8s.io", "SubjectAccessReview") => register::<authz::SubjectAccessReview>(g),
        ("authorization.k8s.io", "LocalSubjectAccessReview") => register::<authz::LocalSubjectAccessReview>(g),
        ("authentication.k8s.io", "SelfSubjectReview") => register::<k8s_openapi::api::authentication::v1::SelfSubjectReview>(g),
        ("authentication.k8s.io", "TokenReview") => register::<k8s_openapi::api::authentication::v1::TokenReview>(g),
        ("certificates.k8s.io", "CertificateSigningRequest") => register::<k8s_openapi::api::certificates::v1::CertificateSigningRequest>(g),
        _ => return None,
    };
    Some(name)
}

impl Schemas {
    fn build() -> Schemas {
        use k8s_openapi::api::autoscaling::v1::Scale;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ListMeta, Status};
        use k8s_openapi::apimachinery::pkg::runtime::RawExtension;

        let mut generator = SchemaSettings::openapi3().into_generator();
        let mut roots = Vec::new();
        for info in RESOURCES {
            if let Some(name) = register_kind(info.group, info.kind, &mut generator) {
                roots.push((info.group, info.kind, name));
            }
        }
        register::<Scale>(&mut generator);
        register::<Status>(&mut generator);
        register::<DeleteOptions>(&mut generator);
        register::<ListMeta>(&mut generator);
        register::<RawExtension>(&mut generator);
        let mut defs = generator.take_definitions(true);

        for (name, def) in defs.iter_mut() {
            let Some(props) = def.get_mut("properties").and_then(Value::as_object_mut) else { continue };
            for (field, prop) in props.iter_mut() {
                if let Some(row) = merge_keys::lookup(name, field) {
                    add_merge_extensions(prop, row.merge, row.retain_keys);
                }
            }
        }

        for info in RESOURCES {
            let Some((_, _, name)) = roots.iter().find(|(g, k, _)| *g == info.group && *k == info.kind) else {
                continue;
            };
            let gvk = json!([{ "group": info.group, "kind": info.kind, "version": info.version }]);
            if let Some(def) = defs.get_mut(name).and_then(Value::as_object_mut) {
                def.insert(EXT_GVK.into(), gvk);
            }
            let list_kind = format!("{}List", info.kind);
            defs.insert(format!("{name}List"), list_schema(name, info, &list_kind));
        }
        if let Some(def) = defs.get_mut(SCALE).and_then(Value::as_object_mut) {
            def.insert(EXT_GVK.into(), json!([{ "group": "autoscaling", "kind": "Scale", "version": "v1" }]));
        }
        defs.insert(PATCH.into(), json!({
            "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.",
            "type": "object",
        }));
        defs.insert(WATCH_EVENT.into(), json!({
            "description": "Event represents a single event to a watched resource.",
            "type": "object",
            "properties": {
                "object": {
                    "allOf": [{ "$ref": format!("{REF_PREFIX}{RAW_EXTENSION}") }],
                    "description": "Object is:\n * If Type is Added or Modified: the new state of the object.\n * If Type is Deleted: the state of the object immediately before deletion.\n * If Type is Error: *Status is recommended; other types may make sense depending on context.",
                },
                "type": { "type": "string", "default": "" },
            },
            "required": ["type", "object"],
        }));
        defs.sort_keys();
        Schemas { defs, roots }
    }

    /// All component schemas.
    pub(crate) fn definitions(&self) -> &Map<String, Value> {
        &self.defs
    }

    /// The schema name of a served kind ("io.k8s.api.apps.v1.Deployment").
    pub(crate) fn root_name(&self, info: &ResourceInfo) -> Option<&str> {
        self.roots
            .iter()
            .find(|(g, k, _)| *g == info.group && *k == info.kind)
            .map(|(_, _, name)| name.as_str())
    }

    /// The schema of a served kind's objects.
    pub(crate) fn root(&self, info: &ResourceInfo) -> Option<SchemaRef<'_>> {
        self.named(self.root_name(info)?)
    }

    /// A component schema by name, e.g. [`SCALE`].
    pub(crate) fn named(&self, name: &str) -> Option<SchemaRef<'_>> {
        self.defs.get(name).map(|node| SchemaRef { schemas: self, node })
    }
}

fn list_schema(item: &str, info: &ResourceInfo, list_kind: &str) -> Value {
    json!({
        "description": format!("{list_kind} is a list of {}.", info.kind),
        "type": "object",
        "properties": {
            "apiVersion": {
                "description": "APIVersion defines the versioned schema of this representation of an object.",
                "type": "string",
            },
            "items": {
                "description": format!("List of {}.", info.plural),
                "type": "array",
                "items": { "$ref": format!("{REF_PREFIX}{item}") },
            },
            "kind": {
                "description": "Kind is a string value representing the REST resource this object represents.",
                "type": "string",
            },
            "metadata": {
                "allOf": [{ "$ref": format!("{REF_PREFIX}{LIST_META}") }],
                "description": "Standard list metadata.",
            },
        },
        "required": ["items"],
        EXT_GVK: [{ "group": info.group, "kind": list_kind, "version": info.version }],
    })
}

/// Puts the Kubernetes list-merge extensions on a property schema.
fn add_merge_extensions(prop: &mut Value, merge: Merge, retain_keys: bool) {
    let Some(obj) = prop.as_object_mut() else { return };
    // OpenAPI 3.0 ignores `$ref` siblings: keep the reference under `allOf`.
    if let Some(reference) = obj.remove("$ref") {
        obj.insert("allOf".into(), json!([{ "$ref": reference }]));
    }
    let strategy = |base: &str| match (base, retain_keys) {
        ("", true) => "retainKeys".to_string(),
        (base, true) => format!("{base},retainKeys"),
        (base, false) => base.to_string(),
    };
    match merge {
        Merge::Map(keys) => {
            obj.insert(EXT_LIST_TYPE.into(), json!("map"));
            obj.insert(EXT_MAP_KEYS.into(), json!(keys));
            if let Some(first) = keys.first() {
                obj.insert(EXT_MERGE_KEY.into(), json!(first));
            }
            obj.insert(EXT_STRATEGY.into(), json!(strategy("merge")));
        }
        Merge::Set => {
            obj.insert(EXT_LIST_TYPE.into(), json!("set"));
            obj.insert(EXT_STRATEGY.into(), json!(strategy("merge")));
        }
        Merge::Atomic => {
            obj.insert(EXT_LIST_TYPE.into(), json!("atomic"));
            if retain_keys {
                obj.insert(EXT_STRATEGY.into(), json!(strategy("")));
            }
        }
        Merge::Object => {
            if retain_keys {
                obj.insert(EXT_STRATEGY.into(), json!(strategy("")));
            }
        }
    }
}

/// A position in a kind's schema: the schema as written at that position (which
/// carries the field's extensions), resolved through `$ref`/`allOf` on demand.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SchemaRef<'a> {
    schemas: &'a Schemas,
    node: &'a Value,
}

impl<'a> SchemaRef<'a> {
    fn at(&self, node: &'a Value) -> SchemaRef<'a> {
        SchemaRef { schemas: self.schemas, node }
    }

    /// The schema with references (`$ref`, single-element `allOf`) followed.
    fn resolved(&self) -> &'a Value {
        let mut node = self.node;
        // Bounded: component schemas never reference themselves directly.
        for _ in 0..8 {
            if let Some(target) = node.get("$ref").and_then(Value::as_str) {
                match target.strip_prefix(REF_PREFIX).and_then(|name| self.schemas.defs.get(name)) {
                    Some(next) => node = next,
                    None => break,
                }
            } else if let Some([only]) = node.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
                node = only;
            } else {
                break;
            }
        }
        node
    }

    /// An extension on the field, or else on the type it refers to.
    fn extension(&self, key: &str) -> Option<&'a Value> {
        self.node.get(key).or_else(|| self.resolved().get(key))
    }

    fn properties(&self) -> Option<&'a Map<String, Value>> {
        self.resolved().get("properties").and_then(Value::as_object).filter(|p| !p.is_empty())
    }

    fn additional_properties(&self) -> Option<SchemaRef<'a>> {
        self.resolved().get("additionalProperties").filter(|v| v.is_object()).map(|v| self.at(v))
    }

    fn preserves_unknown_fields(&self) -> bool {
        self.extension(EXT_PRESERVE).and_then(Value::as_bool).unwrap_or(false)
    }

    fn strategy(&self) -> Option<&'a str> {
        self.extension(EXT_STRATEGY).and_then(Value::as_str)
    }
}

impl PatchSchema for SchemaRef<'_> {
    fn field(&self, name: &str) -> Option<Self> {
        self.properties()?.get(name).map(|node| self.at(node))
    }

    fn elements(&self) -> Option<Self> {
        match self.resolved().get("items") {
            Some(items) => Some(self.at(items)),
            None => self.additional_properties(),
        }
    }

    fn list_merge(&self) -> ListMerge {
        let merges = self.strategy().is_some_and(|s| s.split(',').any(|p| p == "merge"));
        let merge_key = self.extension(EXT_MERGE_KEY).and_then(Value::as_str);
        let map_keys: Vec<&str> = self
            .extension(EXT_MAP_KEYS)
            .and_then(Value::as_array)
            .map(|keys| keys.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let list_type = self.extension(EXT_LIST_TYPE).and_then(Value::as_str);
        let keyed = |first: Option<&str>| {
            let mut keys: Vec<String> = first.map(str::to_string).into_iter().collect();
            keys.extend(map_keys.iter().filter(|k| Some(**k) != first).map(|k| k.to_string()));
            ListMerge::Map { keys }
        };
        match (list_type, merge_key) {
            (_, Some(key)) if merges => keyed(Some(key)),
            (Some("map"), _) if !map_keys.is_empty() => keyed(None),
            (Some("set"), _) => ListMerge::Set,
            (None, None) if merges => ListMerge::Set,
            _ => ListMerge::Atomic,
        }
    }

    fn retain_keys(&self) -> bool {
        self.strategy().is_some_and(|s| s.split(',').any(|p| p == "retainKeys"))
    }
}

/// The fields of `value` its schema does not declare, as Kubernetes' strict decoding
/// names them: dotted from the root, list items indexed ("spec.containers[0].imagee"),
/// in document order, at most 100. Maps (`additionalProperties`), schemaless objects
/// and `x-kubernetes-preserve-unknown-fields` accept any key; `apiVersion`, `kind` and
/// `metadata` are always known at the root.
pub(crate) fn unknown_fields(root: SchemaRef<'_>, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Value::Object(map) = value else { return out };
    for (key, child) in map {
        match root.field(key) {
            Some(schema) => walk(schema, child, key.clone(), &mut out),
            None if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") => {}
            None => push(&mut out, key.clone()),
        }
    }
    out
}

fn push(out: &mut Vec<String>, path: String) {
    if out.len() < MAX_UNKNOWN_FIELDS && !out.contains(&path) {
        out.push(path);
    }
}

fn walk(schema: SchemaRef<'_>, value: &Value, path: String, out: &mut Vec<String>) {
    if out.len() >= MAX_UNKNOWN_FIELDS || schema.preserves_unknown_fields() {
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.properties() {
                for (key, child) in map {
                    let child_path = format!("{path}.{key}");
                    match props.get(key) {
                        Some(node) => walk(schema.at(node), child, child_path, out),
                        None => push(out, child_path),
                    }
                }
            } else if let Some(values) = schema.additional_properties() {
                for (key, child) in map {
                    walk(values, child, format!("{path}.{key}"), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.resolved().get("items").map(|node| schema.at(node)) {
                for (i, item) in items.iter().enumerate() {
                    walk(item_schema, item, format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// Removes the fields [`unknown_fields`] reports, as Kubernetes' decoder drops them when
/// field validation is Warn or Ignore.
pub(crate) fn prune_unknown(root: SchemaRef<'_>, value: &mut Value) {
    let Value::Object(map) = value else { return };
    map.retain(|key, _| root.field(key).is_some() || matches!(key.as_str(), "apiVersion" | "kind" | "metadata"));
    for (key, child) in map.iter_mut() {
        if let Some(schema) = root.field(key) {
            prune(schema, child);
        }
    }
}

fn prune(schema: SchemaRef<'_>, value: &mut Value) {
    if schema.preserves_unknown_fields() {
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.properties() {
                map.retain(|key, _| props.contains_key(key));
                for (key, child) in map.iter_mut() {
                    if let Some(node) = props.get(key) {
                        prune(schema.at(node), child);
                    }
                }
            } else if let Some(values) = schema.additional_properties() {
                for child in map.values_mut() {
                    prune(values, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.resolved().get("items").map(|node| schema.at(node)) {
                for item in items {
                    prune(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::find_kind;

    fn pod() -> SchemaRef<'static> {
        let info = find_kind("", "Pod").expect("pods served");
        schemas().root(info).expect("pod schema")
    }

    fn path<'a>(root: SchemaRef<'a>, fields: &[&str]) -> SchemaRef<'a> {
        let mut at = root;
        for f in fields {
            at = match *f {
                "[]" => at.elements().expect("elements"),
                name => at.field(name).unwrap_or_else(|| panic!("field {name}")),
            };
        }
        at
    }

    #[test]
    fn every_served_kind_has_a_schema_with_gvk() {
        for info in RESOURCES {
            let name = schemas().root_name(info).unwrap_or_else(|| panic!("{} has no schema", info.kind));
            let def = &schemas().definitions()[name];
            assert_eq!(
                def[EXT_GVK],
                json!([{ "group": info.group, "kind": info.kind, "version": info.version }]),
                "{name}"
            );
            assert!(schemas().definitions().contains_key(&format!("{name}List")));
        }
    }

    #[test]
    fn every_ref_resolves() {
        fn refs<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
            match v {
                Value::Object(m) => {
                    for (k, c) in m {
                        match (k.as_str(), c) {
                            ("$ref", Value::String(s)) => out.push(s),
                            _ => refs(c, out),
                        }
                    }
                }
                Value::Array(a) => a.iter().for_each(|c| refs(c, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        for def in schemas().definitions().values() {
            refs(def, &mut all);
        }
        assert!(!all.is_empty());
        for r in all {
            let name = r.strip_prefix(REF_PREFIX).unwrap_or_else(|| panic!("bad ref {r}"));
            assert!(schemas().definitions().contains_key(name), "dangling {r}");
        }
    }

    #[test]
    fn containers_merge_by_name() {
        let containers = path(pod(), &["spec", "containers"]);
        assert_eq!(containers.list_merge(), ListMerge::Map { keys: vec!["name".into()] });
        assert!(!containers.retain_keys());
        let raw = &schemas().definitions()["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(raw[EXT_MERGE_KEY], "name");
        assert_eq!(raw[EXT_STRATEGY], "merge");
        assert_eq!(raw[EXT_LIST_TYPE], "map");
    }

    #[test]
    fn container_ports_merge_by_container_port() {
        let ports = path(pod(), &["spec", "containers", "[]", "ports"]);
        assert_eq!(ports.list_merge(), ListMerge::Map { keys: vec!["containerPort".into()] });
        let env = path(pod(), &["spec", "containers", "[]", "env"]);
        assert_eq!(env.list_merge(), ListMerge::Map { keys: vec!["name".into()] });
        let args = path(pod(), &["spec", "containers", "[]", "args"]);
        assert_eq!(args.list_merge(), ListMerge::Atomic);
    }

    #[test]
    fn metadata_lists() {
        let finalizers = path(pod(), &["metadata", "finalizers"]);
        assert_eq!(finalizers.list_merge(), ListMerge::Set);
        let owners = path(pod(), &["metadata", "ownerReferences"]);
        assert_eq!(owners.list_merge(), ListMerge::Map { keys: vec!["uid".into()] });
        // labels is a map: its values are strings, reachable through elements().
        let labels = path(pod(), &["metadata", "labels"]);
        assert!(labels.elements().is_some());
        assert_eq!(labels.list_merge(), ListMerge::Atomic);
    }

    #[test]
    fn volumes_retain_keys() {
        let volumes = path(pod(), &["spec", "volumes"]);
        assert!(volumes.retain_keys());
        assert_eq!(volumes.list_merge(), ListMerge::Map { keys: vec!["name".into()] });
        let raw = &schemas().definitions()["io.k8s.api.core.v1.PodSpec"]["properties"]["volumes"];
        assert_eq!(raw[EXT_STRATEGY], "merge,retainKeys");
        let info = find_kind("apps", "Deployment").expect("deployments served");
        let strategy = path(schemas().root(info).expect("schema"), &["spec", "strategy"]);
        assert!(strategy.retain_keys());
        assert!(strategy.field("rollingUpdate").is_some());
        let tolerations = path(pod(), &["spec", "tolerations"]);
        assert!(!tolerations.retain_keys());
        assert_eq!(tolerations.list_merge(), ListMerge::Atomic);
    }

    #[test]
    fn unknown_fields_are_reported_with_paths() {
        let pod_json = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": { "name": "p", "labels": { "anything": "goes" }, "annotations": { "a/b": "c" }, "bogus": 1 },
            "spec": {
                "containers": [
                    { "name": "a", "image": "x", "ports": [{ "containerPort": 80, "nope": true }] },
                    { "name": "b", "imagee": "typo", "resources": { "limits": { "cpu": "1" } } },
                ],
                "extra": {},
            },
            "status": {},
        });
        assert_eq!(
            unknown_fields(pod(), &pod_json),
            vec![
                "metadata.bogus",
                "spec.containers[0].ports[0].nope",
                "spec.containers[1].imagee",
                "spec.extra",
            ]
        );
    }

    #[test]
    fn prune_unknown_removes_exactly_the_unknown_fields() {
        let mut value = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "p", "labels": { "keep": "me" }, "bogus": 1 },
            "spec": { "containers": [{ "name": "c", "imagee": "x", "image": "y" }], "extra": {} },
        });
        prune_unknown(pod(), &mut value);
        assert_eq!(value, json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "p", "labels": { "keep": "me" } },
            "spec": { "containers": [{ "name": "c", "image": "y" }] },
        }));
    }

    #[test]
    fn unknown_fields_first_container_typo() {
        let value = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": { "name": "p", "labels": { "app": "x", "tier": "web" } },
            "spec": { "containers": [{ "name": "c", "imagee": "nginx" }] },
        });
        assert_eq!(unknown_fields(pod(), &value), vec!["spec.containers[0].imagee"]);
    }

    #[test]
    fn unknown_fields_accepts_maps_and_raw_objects() {
        let cm = find_kind("", "ConfigMap").expect("served");
        let value = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "c" }, "data": { "k": "v" } });
        assert!(unknown_fields(schemas().root(cm).expect("schema"), &value).is_empty());
        let cr = find_kind("apps", "ControllerRevision").expect("served");
        let value = json!({ "metadata": { "name": "r" }, "revision": 1, "data": { "free": { "form": 1 } } });
        assert!(unknown_fields(schemas().root(cr).expect("schema"), &value).is_empty());
        // Root-level apiVersion/kind/metadata are always known; other root keys are not.
        let value = json!({ "apiVersion": "v1", "kind": "ConfigMap", "dataa": {} });
        assert_eq!(unknown_fields(schemas().root(cm).expect("schema"), &value), vec!["dataa"]);
    }

    #[test]
    fn scale_schema_is_reachable() {
        let scale = schemas().named(SCALE).expect("scale");
        assert_eq!(path(scale, &["spec", "replicas"]).list_merge(), ListMerge::Atomic);
        assert!(path(scale, &["status", "selector"]).field("x").is_none());
    }
}
