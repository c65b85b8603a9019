//! `GET /openapi/v2`: the whole API as one Swagger 2.0 document, derived from the OpenAPI
//! v3 group-version documents (openapi.rs), served as JSON or, as kubectl before 1.29 asks
//! for it (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`), as the protobuf
//! encoding of gnostic's `openapi.v2.Document`. Those kubectl versions read it for apply
//! (patch strategies, whether the server validates fields) and explain; without it their
//! `apply` fails with NotFound.
//!
//! The protobuf is written field by field (wire format, field numbers from gnostic's
//! OpenAPIv2.proto) rather than through generated types: only the parts Kubernetes
//! documents use are needed, and the JSON is the single source.

use std::sync::OnceLock;

use prost::encoding::{WireType, encode_key, encode_varint};
use serde_json::{Map, Value, json};

use super::schema::REF_PREFIX;

/// The media type kubectl asks for (the `@` form; newer clients use a `.`).
pub(crate) const PROTOBUF_ACCEPT: [&str; 2] =
    ["application/com.github.proto-openapi.spec.v2@v1.0+protobuf", "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"];
/// The media type the protobuf is served as: Go's mime parser (and so kubectl) rejects
/// the `@`, so the API server answers with the `.` form.
pub(crate) const PROTOBUF_CONTENT_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

const V2_REF_PREFIX: &str = "#/definitions/";

/// The Swagger 2.0 document as JSON.
pub(crate) fn json() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

/// The same document as gnostic protobuf.
pub(crate) fn protobuf() -> &'static [u8] {
    static DOC: OnceLock<Vec<u8>> = OnceLock::new();
    DOC.get_or_init(|| document(json()).0)
}

fn build() -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    for v3 in super::openapi::all_documents() {
        if let Some(schemas) = v3["components"]["schemas"].as_object() {
            for (name, schema) in schemas {
                definitions.entry(name.clone()).or_insert_with(|| refs_to_v2(schema));
            }
        }
        if let Some(items) = v3["paths"].as_object() {
            for (path, item) in items {
                paths.entry(path.clone()).or_insert_with(|| path_item(item));
            }
        }
    }
    json!({
        "swagger": "2.0",
        "info": { "title": "Kubernetes", "version": "v1.33.0" },
        "paths": paths,
        "definitions": definitions,
    })
}

/// A copy of `v` with `#/components/schemas/X` references made `#/definitions/X`, and
/// v3's `allOf: [{$ref}]` (how v3 gives a reference a description or default) made a
/// plain `$ref` as Swagger 2.0 documents write it: kubectl's v2 model parser does not
/// follow a reference inside allOf, and its strategic-merge diff crashes on the gap.
fn refs_to_v2(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => (k.clone(), json!(r.replace(REF_PREFIX, V2_REF_PREFIX))),
                    ("allOf", Value::Array(one)) if one.len() == 1 && one[0].get("$ref").is_some() => {
                        ("$ref".to_string(), json!(one[0]["$ref"].as_str().unwrap_or("").replace(REF_PREFIX, V2_REF_PREFIX)))
                    }
                    _ => (k.clone(), refs_to_v2(v)),
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(refs_to_v2).collect()),
        other => other.clone(),
    }
}

/// A v3 parameter as v2: the schema's type moves onto the parameter.
fn parameter(p: &Value) -> Value {
    let mut out = Map::new();
    for key in ["name", "in", "description", "required"] {
        if let Some(v) = p.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    for key in ["type", "format", "uniqueItems"] {
        if let Some(v) = p["schema"].get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    Value::Object(out)
}

fn path_item(item: &Value) -> Value {
    let mut out = Map::new();
    for (key, v) in item.as_object().into_iter().flatten() {
        match key.as_str() {
            "parameters" => {
                out.insert(key.clone(), Value::Array(v.as_array().into_iter().flatten().map(parameter).collect()));
            }
            "get" | "put" | "post" | "delete" | "patch" | "head" | "options" => {
                out.insert(key.clone(), operation(v));
            }
            _ => {}
        }
    }
    Value::Object(out)
}

fn operation(op: &Value) -> Value {
    let mut out = Map::new();
    let mut params: Vec<Value> = op["parameters"].as_array().into_iter().flatten().map(parameter).collect();
    if let Some(content) = op["requestBody"]["content"].as_object() {
        out.insert("consumes".into(), content.keys().cloned().collect());
        if let Some(schema) = content.values().next().map(|c| refs_to_v2(&c["schema"])) {
            params.push(json!({ "name": "body", "in": "body", "required": true, "schema": schema }));
        }
    }
    let mut responses = Map::new();
    for (code, r) in op["responses"].as_object().into_iter().flatten() {
        let mut resp = json!({ "description": r["description"] });
        if let Some(schema) = r["content"].as_object().and_then(|c| c.values().next()).map(|c| refs_to_v2(&c["schema"])) {
            resp["schema"] = schema;
        }
        responses.insert(code.clone(), resp);
    }
    for (key, v) in op.as_object().into_iter().flatten() {
        if matches!(key.as_str(), "description" | "operationId" | "tags") || key.starts_with("x-") {
            out.insert(key.clone(), v.clone());
        }
    }
    out.insert("produces".into(), json!(["application/json", "application/yaml"]));
    out.insert("schemes".into(), json!(["https"]));
    out.insert("parameters".into(), Value::Array(params));
    out.insert("responses".into(), Value::Object(responses));
    Value::Object(out)
}

// ---- protobuf: gnostic openapi.v2 messages, written from the JSON ----

/// A message being written.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn string(&mut self, field: u32, s: &str) -> &mut Self {
        if !s.is_empty() {
            encode_key(field, WireType::LengthDelimited, &mut self.0);
            encode_varint(s.len() as u64, &mut self.0);
            self.0.extend_from_slice(s.as_bytes());
        }
        self
    }

    fn opt_string(&mut self, field: u32, v: &Value) -> &mut Self {
        self.string(field, v.as_str().unwrap_or(""))
    }

    fn strings(&mut self, field: u32, v: &Value) -> &mut Self {
        for s in v.as_array().into_iter().flatten().filter_map(Value::as_str) {
            encode_key(field, WireType::LengthDelimited, &mut self.0);
            encode_varint(s.len() as u64, &mut self.0);
            self.0.extend_from_slice(s.as_bytes());
        }
        self
    }

    fn boolean(&mut self, field: u32, v: &Value) -> &mut Self {
        if v.as_bool() == Some(true) {
            encode_key(field, WireType::Varint, &mut self.0);
            encode_varint(1, &mut self.0);
        }
        self
    }

    fn int(&mut self, field: u32, v: &Value) -> &mut Self {
        if let Some(n) = v.as_i64().filter(|n| *n != 0) {
            encode_key(field, WireType::Varint, &mut self.0);
            encode_varint(n as u64, &mut self.0);
        }
        self
    }

    fn double(&mut self, field: u32, v: &Value) -> &mut Self {
        if let Some(n) = v.as_f64().filter(|n| *n != 0.0) {
            encode_key(field, WireType::SixtyFourBit, &mut self.0);
            self.0.extend_from_slice(&n.to_le_bytes());
        }
        self
    }

    /// A nested message (written even when empty: presence matters for oneofs).
    fn msg(&mut self, field: u32, m: Msg) -> &mut Self {
        encode_key(field, WireType::LengthDelimited, &mut self.0);
        encode_varint(m.0.len() as u64, &mut self.0);
        self.0.extend_from_slice(&m.0);
        self
    }

    fn msg_if(&mut self, field: u32, present: bool, m: impl FnOnce() -> Msg) -> &mut Self {
        if present {
            self.msg(field, m());
        }
        self
    }

    /// `x-...` keys of `obj` as repeated NamedAny at `field`.
    fn vendor_extensions(&mut self, field: u32, obj: &Value) -> &mut Self {
        for (k, v) in obj.as_object().into_iter().flatten().filter(|(k, _)| k.starts_with("x-")) {
            let mut named = Msg::default();
            named.string(1, k).msg(2, any(v));
            self.msg(field, named);
        }
        self
    }

    fn take(&mut self) -> Msg {
        Msg(std::mem::take(&mut self.0))
    }
}

/// gnostic's Any: the value as YAML text (what kube-openapi writes and kubectl reads).
fn any(v: &Value) -> Msg {
    let yaml = serde_yaml::to_string(v).unwrap_or_default();
    let mut m = Msg::default();
    m.string(2, &yaml);
    m
}

fn document(doc: &Value) -> Msg {
    let mut m = Msg::default();
    m.opt_string(1, &doc["swagger"]);
    m.msg(2, Msg::default().opt_string(1, &doc["info"]["title"]).opt_string(2, &doc["info"]["version"]).take());
    let mut paths = Msg::default();
    for (name, item) in doc["paths"].as_object().into_iter().flatten() {
        paths.msg(2, Msg::default().string(1, name).msg(2, path_item_pb(item)).take());
    }
    m.msg(8, paths);
    let mut defs = Msg::default();
    for (name, schema) in doc["definitions"].as_object().into_iter().flatten() {
        defs.msg(1, Msg::default().string(1, name).msg(2, schema_pb(schema)).take());
    }
    m.msg(9, defs);
    m
}

fn path_item_pb(item: &Value) -> Msg {
    let mut m = Msg::default();
    for (field, verb) in [(2, "get"), (3, "put"), (4, "post"), (5, "delete"), (6, "options"), (7, "head"), (8, "patch")] {
        if let Some(op) = item.get(verb) {
            m.msg(field, operation_pb(op));
        }
    }
    for p in item["parameters"].as_array().into_iter().flatten() {
        m.msg(9, parameters_item(p));
    }
    m
}

fn operation_pb(op: &Value) -> Msg {
    let mut m = Msg::default();
    m.strings(1, &op["tags"]).opt_string(3, &op["description"]).opt_string(5, &op["operationId"]);
    m.strings(6, &op["produces"]).strings(7, &op["consumes"]);
    for p in op["parameters"].as_array().into_iter().flatten() {
        m.msg(8, parameters_item(p));
    }
    let mut responses = Msg::default();
    for (code, r) in op["responses"].as_object().into_iter().flatten() {
        let mut response = Msg::default();
        response.opt_string(1, &r["description"]);
        response.msg_if(2, r.get("schema").is_some(), || Msg::default().msg(1, schema_pb(&r["schema"])).take());
        responses.msg(1, Msg::default().string(1, code).msg(2, Msg::default().msg(1, response).take()).take());
    }
    m.msg(9, responses);
    m.strings(10, &op["schemes"]);
    m.vendor_extensions(13, op);
    m
}

/// ParametersItem { Parameter { BodyParameter | NonBodyParameter { query | path | header } } }.
fn parameters_item(p: &Value) -> Msg {
    let parameter = if p["in"] == "body" {
        let mut body = Msg::default();
        body.opt_string(1, &p["description"]).opt_string(2, &p["name"]).opt_string(3, &p["in"]).boolean(4, &p["required"]);
        body.msg(5, schema_pb(&p["schema"]));
        Msg::default().msg(1, body).take()
    } else {
        // Query and header sub-schemas have allow_empty_value at 5, shifting what follows;
        // path parameters do not.
        let (oneof, shift) = match p["in"].as_str() {
            Some("path") => (4, 0),
            Some("header") => (1, 0),
            _ => (3, 1),
        };
        let mut sub = Msg::default();
        sub.boolean(1, &p["required"]).opt_string(2, &p["in"]).opt_string(3, &p["description"]).opt_string(4, &p["name"]);
        sub.opt_string(5 + shift, &p["type"]).opt_string(6 + shift, &p["format"]);
        sub.boolean(19 + shift, &p["uniqueItems"]);
        Msg::default().msg(2, Msg::default().msg(oneof, sub).take()).take()
    };
    Msg::default().msg(1, parameter).take()
}

fn schema_pb(s: &Value) -> Msg {
    let mut m = Msg::default();
    m.opt_string(1, &s["$ref"]).opt_string(2, &s["format"]).opt_string(3, &s["title"]).opt_string(4, &s["description"]);
    m.msg_if(5, s.get("default").is_some(), || any(&s["default"]));
    m.double(6, &s["multipleOf"]).double(7, &s["maximum"]).boolean(8, &s["exclusiveMaximum"]);
    m.double(9, &s["minimum"]).boolean(10, &s["exclusiveMinimum"]);
    m.int(11, &s["maxLength"]).int(12, &s["minLength"]).opt_string(13, &s["pattern"]);
    m.int(14, &s["maxItems"]).int(15, &s["minItems"]).boolean(16, &s["uniqueItems"]);
    m.int(17, &s["maxProperties"]).int(18, &s["minProperties"]).strings(19, &s["required"]);
    for e in s["enum"].as_array().into_iter().flatten() {
        m.msg(20, any(e));
    }
    match s.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            m.msg(21, Msg::default().boolean(2, &json!(b)).take());
        }
        Some(ap @ Value::Object(_)) => {
            m.msg(21, Msg::default().msg(1, schema_pb(ap)).take());
        }
        _ => {}
    }
    match &s["type"] {
        Value::String(t) => {
            m.msg(22, Msg::default().string(1, t).take());
        }
        t @ Value::Array(_) => {
            m.msg(22, Msg::default().strings(1, t).take());
        }
        _ => {}
    }
    if let Some(items) = s.get("items") {
        let mut item = Msg::default();
        match items {
            Value::Array(all) => all.iter().for_each(|i| {
                item.msg(1, schema_pb(i));
            }),
            one => {
                item.msg(1, schema_pb(one));
            }
        }
        m.msg(23, item);
    }
    for a in s["allOf"].as_array().into_iter().flatten() {
        m.msg(24, schema_pb(a));
    }
    if let Some(props) = s["properties"].as_object() {
        let mut p = Msg::default();
        for (name, schema) in props {
            p.msg(1, Msg::default().string(1, name).msg(2, schema_pb(schema)).take());
        }
        m.msg(25, p);
    }
    m.boolean(27, &s["readOnly"]);
    m.vendor_extensions(31, s);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v2_document_has_every_kind_with_its_gvk_and_v2_references() {
        let doc = json();
        let defs = doc["definitions"].as_object().unwrap();
        let cm = &defs["io.k8s.api.core.v1.ConfigMap"];
        assert_eq!(cm["x-kubernetes-group-version-kind"][0]["kind"], "ConfigMap");
        let text = doc.to_string();
        assert!(!text.contains(REF_PREFIX), "v3 references left");
        assert!(text.contains("\"$ref\":\"#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta\""));
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-action"], "patch");
        let params: Vec<&str> = patch["parameters"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
        assert!(params.contains(&"fieldValidation") && params.contains(&"body"), "{params:?}");
        assert_eq!(patch["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "force").unwrap()["type"], "boolean");
        let template = &defs["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["template"];
        assert_eq!(template["$ref"], "#/definitions/io.k8s.api.core.v1.PodTemplateSpec", "{template}");
        assert!(!text.contains("\"allOf\""), "single-reference allOf flattened");
    }

    /// Reads back a few fields of the protobuf with a minimal wire-format walker.
    #[test]
    fn the_protobuf_encodes_the_same_document() {
        fn fields(mut b: &[u8]) -> Vec<(u32, &[u8])> {
            let mut out = Vec::new();
            while !b.is_empty() {
                let key = prost::encoding::decode_varint(&mut b).unwrap();
                let (field, wire) = ((key >> 3) as u32, key & 7);
                match wire {
                    0 => {
                        prost::encoding::decode_varint(&mut b).unwrap();
                        out.push((field, &[][..]));
                    }
                    1 => {
                        out.push((field, &b[..8]));
                        b = &b[8..];
                    }
                    2 => {
                        let len = prost::encoding::decode_varint(&mut b).unwrap() as usize;
                        out.push((field, &b[..len]));
                        b = &b[len..];
                    }
                    w => panic!("wire type {w}"),
                }
            }
            out
        }
        let top = fields(protobuf());
        assert_eq!(top[0], (1, &b"2.0"[..]));
        let defs = top.iter().find(|(f, _)| *f == 9).unwrap().1;
        let names: Vec<&[u8]> = fields(defs).iter().map(|(_, named)| fields(named)[0].1).collect();
        assert_eq!(names.len(), json()["definitions"].as_object().unwrap().len());
        assert!(names.contains(&&b"io.k8s.api.core.v1.Pod"[..]));
        let paths = top.iter().find(|(f, _)| *f == 8).unwrap().1;
        assert_eq!(fields(paths).len(), json()["paths"].as_object().unwrap().len());
    }
}
