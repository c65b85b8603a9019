//! The OpenAPI v3 documents served at `/openapi/v3` (the index) and
//! `/openapi/v3/{api/v1 | apis/GROUP/VERSION}`, shaped as kubectl consumes them:
//! every operation names its `x-kubernetes-group-version-kind` and
//! `x-kubernetes-action`; every PATCH lists the `fieldValidation` query parameter and
//! the four patch content types (kubectl's field-validation check and its choice of
//! strategic merge depend on both); `components.schemas` holds the closure of the
//! schemas the paths reference, taken from [`super::schema::schemas`].
//!
//! Invariants: all documents are built once per process and never change, so the
//! `hash` in the index (SHA-256 of the compact JSON encoding) identifies a document.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::resources::{RESOURCES, ResourceInfo};
use super::schema::{DELETE_OPTIONS, PATCH, REF_PREFIX, SCALE, STATUS, WATCH_EVENT, schemas};

/// One group-version document.
struct Document {
    /// "api/v1" or "apis/apps/v1".
    path: String,
    value: Value,
    hash: String,
}

fn documents() -> &'static [Document] {
    static DOCS: OnceLock<Vec<Document>> = OnceLock::new();
    DOCS.get_or_init(build_all)
}

fn find(path: &str) -> Option<&'static Document> {
    let path = path.trim_matches('/');
    documents().iter().find(|d| d.path == path)
}

/// Body of `GET /openapi/v3`.
pub(crate) fn index() -> Value {
    let paths: Map<String, Value> = documents()
        .iter()
        .map(|d| {
            let url = format!("/openapi/v3/{}?hash={}", d.path, d.hash);
            (d.path.clone(), json!({ "serverRelativeURL": url }))
        })
        .collect();
    json!({ "paths": paths })
}

/// The document for `GET /openapi/v3/{path}`, `path` like "api/v1" or "apis/apps/v1"
/// (without the `?hash=` query, which only busts caches).
pub(crate) fn document(path: &str) -> Option<&'static Value> {
    find(path).map(|d| &d.value)
}

/// Every group-version document (for the merged v2 document).
pub(crate) fn all_documents() -> impl Iterator<Item = &'static Value> {
    documents().iter().map(|d| &d.value)
}

fn build_all() -> Vec<Document> {
    let mut group_versions: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !group_versions.contains(&(r.group, r.version)) {
            group_versions.push((r.group, r.version));
        }
    }
    group_versions
        .into_iter()
        .map(|(group, version)| {
            let value = build_document(group, version);
            let bytes = serde_json::to_vec(&value).unwrap_or_default();
            let mut hash = String::with_capacity(64);
            for b in Sha256::digest(&bytes) {
                let _ = write!(hash, "{b:02X}");
            }
            Document { path: api_path(group, version), value, hash }
        })
        .collect()
}

fn api_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// "" -> "Core", "rbac.authorization.k8s.io" -> "RbacAuthorization" (operation ids, tags).
fn group_ident(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    group.trim_end_matches(".k8s.io").split('.').map(capitalize).collect()
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("{REF_PREFIX}{name}") })
}

fn query(name: &str, description: &str, ty: &str) -> Value {
    json!({ "name": name, "in": "query", "description": description, "schema": { "type": ty, "uniqueItems": true } })
}

fn path_param(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string", "uniqueItems": true } })
}

fn dry_run() -> Value {
    query("dryRun", "When present, the request is validated and processed but not persisted. The only valid value is All.", "string")
}

fn field_manager() -> Value {
    query("fieldManager", "Name of the actor making the change, recorded in managedFields. Required for apply patches.", "string")
}

fn field_validation() -> Value {
    query(
        "fieldValidation",
        "How to treat unknown or duplicate fields in the request object: Ignore drops them silently, Warn drops them and returns a Warning header for each, Strict rejects the request with a BadRequest error.",
        "string",
    )
}

fn list_params() -> Vec<Value> {
    vec![
        query("allowWatchBookmarks", "Request BOOKMARK events on a watch.", "boolean"),
        query("continue", "Continue token from a previous paginated list.", "string"),
        query("fieldSelector", "Restrict the list by object fields.", "string"),
        query("labelSelector", "Restrict the list by object labels.", "string"),
        query("limit", "Maximum number of items to return.", "integer"),
        query("resourceVersion", "Resource version to list or watch from.", "string"),
        query("resourceVersionMatch", "How resourceVersion applies to a list.", "string"),
        query("sendInitialEvents", "Start a watch with synthetic events for existing objects.", "boolean"),
        query("timeoutSeconds", "Timeout for the list or watch call.", "integer"),
        query("watch", "Watch for changes instead of listing.", "boolean"),
    ]
}

fn delete_params() -> Vec<Value> {
    vec![
        dry_run(),
        query("gracePeriodSeconds", "Seconds before the object should be deleted.", "integer"),
        query("orphanDependents", "Deprecated: use propagationPolicy.", "boolean"),
        query("propagationPolicy", "Garbage collection policy: Orphan, Background or Foreground.", "string"),
    ]
}

fn json_content(name: &str) -> Value {
    json!({ "application/json": { "schema": schema_ref(name) } })
}

fn responses(codes: &[(&str, &str)], name: &str) -> Value {
    let mut out = Map::new();
    for (code, description) in codes {
        out.insert((*code).into(), json!({ "description": description, "content": json_content(name) }));
    }
    out.insert("401".into(), json!({ "description": "Unauthorized" }));
    Value::Object(out)
}

/// What an operation acts on: the GVK and schema of its body/response.
struct Target<'a> {
    group: &'a str,
    version: &'a str,
    kind: &'a str,
    schema: &'a str,
}

struct OpSpec<'a> {
    verb: &'a str,
    action: &'a str,
    id: String,
    description: String,
    params: Vec<Value>,
    request: Option<Value>,
    responses: Value,
}

fn operation(spec: OpSpec<'_>, target: &Target<'_>, tag: &str) -> (String, Value) {
    let mut op = Map::new();
    op.insert("description".into(), json!(spec.description));
    op.insert("operationId".into(), json!(spec.id));
    if !spec.params.is_empty() {
        op.insert("parameters".into(), Value::Array(spec.params));
    }
    if let Some(body) = spec.request {
        op.insert("requestBody".into(), json!({ "content": body, "required": true }));
    }
    op.insert("responses".into(), spec.responses);
    op.insert("tags".into(), json!([tag]));
    op.insert("x-kubernetes-action".into(), json!(spec.action));
    op.insert(
        "x-kubernetes-group-version-kind".into(),
        json!({ "group": target.group, "kind": target.kind, "version": target.version }),
    );
    (spec.verb.to_string(), Value::Object(op))
}

fn patch_body() -> Value {
    let mut content = Map::new();
    for ty in [
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    ] {
        content.insert(ty.into(), json!({ "schema": schema_ref(PATCH) }));
    }
    Value::Object(content)
}

/// get/put/patch on an object or subresource path.
fn read_write_ops(
    r: &ResourceInfo,
    target: &Target<'_>,
    id_stem: &str,
    what: &str,
    tag: &str,
    with_delete: bool,
) -> Vec<(String, Value)> {
    let mut ops = Vec::new();
    let has = |verb: &str| r.verbs.contains(&verb);
    if has("get") {
        ops.push(operation(
            OpSpec {
                verb: "get",
                action: "get",
                id: format!("read{id_stem}"),
                description: format!("read {what}"),
                params: Vec::new(),
                request: None,
                responses: responses(&[("200", "OK")], target.schema),
            },
            target,
            tag,
        ));
    }
    if has("update") {
        ops.push(operation(
            OpSpec {
                verb: "put",
                action: "put",
                id: format!("replace{id_stem}"),
                description: format!("replace {what}"),
                params: vec![dry_run(), field_manager(), field_validation()],
                request: Some(json!({ "*/*": { "schema": schema_ref(target.schema) } })),
                responses: responses(&[("200", "OK"), ("201", "Created")], target.schema),
            },
            target,
            tag,
        ));
    }
    if has("patch") {
        ops.push(operation(
            OpSpec {
                verb: "patch",
                action: "patch",
                id: format!("patch{id_stem}"),
                description: format!("partially update {what}"),
                params: vec![
                    dry_run(),
                    field_manager(),
                    field_validation(),
                    query("force", "Force an apply patch to take ownership of conflicting fields.", "boolean"),
                ],
                request: Some(patch_body()),
                responses: responses(&[("200", "OK"), ("201", "Created")], target.schema),
            },
            target,
            tag,
        ));
    }
    if with_delete && has("delete") {
        let mut params = delete_params();
        params.push(query("ignoreStoreReadErrorWithClusterBreakingPotential", "Delete objects that cannot be decoded.", "boolean"));
        ops.push(operation(
            OpSpec {
                verb: "delete",
                action: "delete",
                id: format!("delete{id_stem}"),
                description: format!("delete {what}"),
                params,
                request: Some(json_content(DELETE_OPTIONS)),
                responses: {
                    let mut out = responses(&[("200", "OK"), ("202", "Accepted")], target.schema);
                    if let Some(map) = out.as_object_mut() {
                        map.insert("200".into(), json!({ "description": "OK", "content": json_content(STATUS) }));
                    }
                    out
                },
            },
            target,
            tag,
        ));
    }
    ops
}

fn path_item(params: Vec<Value>, ops: Vec<(String, Value)>) -> Value {
    let mut item = Map::new();
    for (verb, op) in ops {
        item.insert(verb, op);
    }
    let mut params = params;
    params.push(query("pretty", "Pretty-print the output.", "string"));
    item.insert("parameters".into(), Value::Array(params));
    Value::Object(item)
}

fn resource_paths(r: &ResourceInfo, schema_name: &str, paths: &mut Map<String, Value>) {
    let prefix = format!("/{}", api_path(r.group, r.version));
    let gid = format!("{}{}", group_ident(r.group), capitalize(r.version));
    let tag = format!("{}_{}", group_ident(r.group).to_lowercase(), r.version);
    let scope = if r.namespaced { "Namespaced" } else { "" };
    let stem = format!("{gid}{scope}{}", r.kind);
    let list_name = format!("{schema_name}List");
    let target = Target { group: r.group, version: r.version, kind: r.kind, schema: schema_name };
    let has = |verb: &str| r.verbs.contains(&verb);

    let ns_param = || path_param("namespace", "object name and auth scope, such as for teams and projects");
    let name_param = || path_param("name", &format!("name of the {}", r.kind));
    let collection = if r.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{prefix}/{}", r.plural)
    };
    let scope_params = || if r.namespaced { vec![ns_param()] } else { Vec::new() };

    // Collection: list, create, deletecollection.
    let mut ops = Vec::new();
    if has("list") {
        ops.push(operation(
            OpSpec {
                verb: "get",
                action: "list",
                id: format!("list{stem}"),
                description: format!("list or watch objects of kind {}", r.kind),
                params: list_params(),
                request: None,
                responses: {
                    let mut out = responses(&[("200", "OK")], &list_name);
                    if let Some(content) = out.pointer_mut("/200/content").and_then(Value::as_object_mut) {
                        content.insert("application/json;stream=watch".into(), json!({ "schema": schema_ref(WATCH_EVENT) }));
                    }
                    out
                },
            },
            &target,
            &tag,
        ));
    }
    if has("create") {
        ops.push(operation(
            OpSpec {
                verb: "post",
                action: "post",
                id: format!("create{stem}"),
                description: format!("create {}", article(r.kind)),
                params: vec![dry_run(), field_manager(), field_validation()],
                request: Some(json!({ "*/*": { "schema": schema_ref(schema_name) } })),
                responses: responses(&[("200", "OK"), ("201", "Created"), ("202", "Accepted")], schema_name),
            },
            &target,
            &tag,
        ));
    }
    if has("deletecollection") {
        let mut params = delete_params();
        params.extend(list_params().into_iter().filter(|p| p["name"] != "watch" && p["name"] != "allowWatchBookmarks"));
        ops.push(operation(
            OpSpec {
                verb: "delete",
                action: "deletecollection",
                id: format!("deletecollection{stem}"),
                description: format!("delete collection of {}", r.kind),
                params,
                request: Some(json_content(DELETE_OPTIONS)),
                responses: responses(&[("200", "OK")], STATUS),
            },
            &target,
            &tag,
        ));
    }
    if !ops.is_empty() {
        paths.insert(collection.clone(), path_item(scope_params(), ops));
    }

    // All-namespaces list.
    if r.namespaced && has("list") {
        let op = operation(
            OpSpec {
                verb: "get",
                action: "list",
                id: format!("list{gid}{}ForAllNamespaces", r.kind),
                description: format!("list or watch objects of kind {}", r.kind),
                params: Vec::new(),
                request: None,
                responses: responses(&[("200", "OK")], &list_name),
            },
            &target,
            &tag,
        );
        paths.insert(format!("{prefix}/{}", r.plural), path_item(list_params(), vec![op]));
    }

    // Item.
    let item = format!("{collection}/{{name}}");
    let item_params = || {
        let mut p = vec![name_param()];
        p.extend(scope_params());
        p
    };
    let ops = read_write_ops(r, &target, &stem, &format!("the specified {}", r.kind), &tag, true);
    if !ops.is_empty() {
        paths.insert(item.clone(), path_item(item_params(), ops));
    }

    // Subresources.
    for sub in r.subresources {
        let (sub_target, what) = match *sub {
            "status" | "ephemeralcontainers" => (
                Target { group: r.group, version: r.version, kind: r.kind, schema: schema_name },
                format!("{sub} of the specified {}", r.kind),
            ),
            "scale" => (
                Target { group: "autoscaling", version: "v1", kind: "Scale", schema: SCALE },
                format!("scale of the specified {}", r.kind),
            ),
            _ => continue,
        };
        let sub_stem = format!("{stem}{}", capitalize_sub(sub));
        let ops = read_write_ops(r, &sub_target, &sub_stem, &what, &tag, false);
        if !ops.is_empty() {
            paths.insert(format!("{item}/{sub}"), path_item(item_params(), ops));
        }
    }
}

fn capitalize_sub(sub: &str) -> String {
    match sub {
        "ephemeralcontainers" => "EphemeralContainers".into(),
        other => capitalize(other),
    }
}

fn article(kind: &str) -> String {
    let vowel = kind.chars().next().is_some_and(|c| "AEIOU".contains(c));
    format!("{} {kind}", if vowel { "an" } else { "a" })
}

fn collect_refs<'v>(value: &'v Value, out: &mut Vec<&'v str>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("$ref", Value::String(target)) => {
                        if let Some(name) = target.strip_prefix(REF_PREFIX) {
                            out.push(name);
                        }
                    }
                    _ => collect_refs(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|c| collect_refs(c, out)),
        _ => {}
    }
}

fn build_document(group: &str, version: &str) -> Value {
    let all = schemas();
    let mut paths = Map::new();
    for r in RESOURCES.iter().filter(|r| r.group == group && r.version == version) {
        if let Some(name) = all.root_name(r) {
            resource_paths(r, name, &mut paths);
        }
    }

    // Components: every schema reachable from the paths.
    let defs = all.definitions();
    let mut pending = Vec::new();
    let paths = Value::Object(paths);
    collect_refs(&paths, &mut pending);
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    while let Some(name) = pending.pop() {
        if !seen.insert(name) {
            continue;
        }
        if let Some(def) = defs.get(name) {
            collect_refs(def, &mut pending);
        }
    }
    let components: Map<String, Value> =
        seen.into_iter().filter_map(|name| Some((name.to_string(), defs.get(name)?.clone()))).collect();

    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": "unversioned" },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "BearerToken": { "type": "apiKey", "name": "authorization", "in": "header", "description": "Bearer Token authentication" },
            },
        },
        "security": [{ "BearerToken": [] }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op<'a>(doc: &'a Value, path: &str, verb: &str) -> &'a Value {
        doc["paths"].get(path).and_then(|p| p.get(verb)).unwrap_or_else(|| panic!("no {verb} {path}"))
    }

    fn param_names(op: &Value) -> Vec<&str> {
        op["parameters"].as_array().map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect()).unwrap_or_default()
    }

    #[test]
    fn index_lists_every_group_version_with_hash() {
        let index = index();
        let paths = index["paths"].as_object().expect("paths");
        for key in ["api/v1", "apis/apps/v1", "apis/batch/v1", "apis/rbac.authorization.k8s.io/v1"] {
            let url = paths[key]["serverRelativeURL"].as_str().expect("url");
            let doc = find(key).expect("document");
            assert_eq!(url, format!("/openapi/v3/{key}?hash={}", doc.hash));
            assert_eq!(doc.hash.len(), 64);
            let bytes = serde_json::to_vec(&doc.value).expect("encode");
            let expected: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02X}")).collect();
            assert_eq!(doc.hash, expected);
        }
        assert!(document("/apis/apps/v1/").is_some());
        assert!(document("apis/nope/v1").is_none());
    }

    #[test]
    fn deployments_patch_supports_field_validation_and_strategic_merge() {
        let doc = document("apis/apps/v1").expect("apps/v1");
        let patch = op(doc, "/apis/apps/v1/namespaces/{namespace}/deployments/{name}", "patch");
        let names = param_names(patch);
        for p in ["dryRun", "fieldManager", "fieldValidation", "force"] {
            assert!(names.contains(&p), "missing {p}");
        }
        let content = patch["requestBody"]["content"].as_object().expect("content");
        for ty in [
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
            "application/apply-patch+yaml",
        ] {
            assert!(content.contains_key(ty), "missing {ty}");
        }
        assert_eq!(patch["x-kubernetes-action"], "patch");
        assert_eq!(patch["x-kubernetes-group-version-kind"], json!({ "group": "apps", "kind": "Deployment", "version": "v1" }));

        // kubectl's verifier stops at the first PATCH with a matching GVK, in any order:
        // every PATCH must carry fieldValidation and strategic merge.
        for (path, item) in doc["paths"].as_object().expect("paths") {
            if let Some(patch) = item.get("patch") {
                assert!(param_names(patch).contains(&"fieldValidation"), "{path}");
                assert!(patch["requestBody"]["content"].get("application/strategic-merge-patch+json").is_some(), "{path}");
            }
        }
        let scale = op(doc, "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale", "patch");
        assert_eq!(scale["x-kubernetes-group-version-kind"]["kind"], "Scale");
        op(doc, "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status", "put");
        op(doc, "/apis/apps/v1/deployments", "get");
    }

    #[test]
    fn core_document_paths_and_components() {
        let doc = document("api/v1").expect("v1");
        let list = op(doc, "/api/v1/namespaces/{namespace}/pods", "get");
        assert_eq!(list["x-kubernetes-action"], "list");
        assert_eq!(list["operationId"], "listCoreV1NamespacedPod");
        op(doc, "/api/v1/namespaces/{namespace}/pods", "post");
        op(doc, "/api/v1/namespaces/{namespace}/pods", "delete");
        op(doc, "/api/v1/pods", "get");
        op(doc, "/api/v1/namespaces/{name}", "get");
        op(doc, "/api/v1/nodes/{name}/status", "patch");
        assert!(doc["paths"].get("/api/v1/namespaces/{namespace}/namespaces").is_none());
        assert!(doc["paths"].get("/api/v1/namespaces/{namespace}/pods/{name}/log").is_none());

        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let pod = &schemas["io.k8s.api.core.v1.Pod"];
        assert_eq!(pod["x-kubernetes-group-version-kind"], json!([{ "group": "", "kind": "Pod", "version": "v1" }]));
        for name in ["io.k8s.api.core.v1.PodSpec", "io.k8s.api.core.v1.Container", STATUS, DELETE_OPTIONS, PATCH, WATCH_EVENT] {
            assert!(schemas.contains_key(name), "missing {name}");
        }
        // apps schemas are not in the core document.
        assert!(!schemas.contains_key("io.k8s.api.apps.v1.Deployment"));
        // Every ref inside the document resolves inside the document.
        let mut refs = Vec::new();
        collect_refs(doc, &mut refs);
        for r in refs {
            assert!(schemas.contains_key(r), "dangling {r}");
        }
    }

    #[test]
    fn operation_ids_name_groups() {
        assert_eq!(group_ident("rbac.authorization.k8s.io"), "RbacAuthorization");
        assert_eq!(group_ident("apps"), "Apps");
        let doc = document("apis/rbac.authorization.k8s.io/v1").expect("rbac");
        let create = op(doc, "/apis/rbac.authorization.k8s.io/v1/clusterroles", "post");
        assert_eq!(create["operationId"], "createRbacAuthorizationV1ClusterRole");
        let doc = document("apis/authorization.k8s.io/v1").expect("authz");
        let paths = doc["paths"].as_object().expect("paths");
        assert!(paths.values().all(|p| p.as_object().is_some_and(|o| o.keys().all(|k| k == "post" || k == "parameters"))), "only create is served: {paths:?}");
        op(doc, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "post");
        op(doc, "/apis/authorization.k8s.io/v1/namespaces/{namespace}/localsubjectaccessreviews", "post");
    }
}
