//! HTTP routing and handlers: Kubernetes REST paths onto [`Api`] operations, content
//! negotiation (JSON/YAML/protobuf bodies, Tables, aggregated discovery), watch streams.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flotilla_api::selector::{FieldSelector, LabelSelector};
use serde_json::{Value, json};

use super::auth::{self, Attributes, User};
use super::error::ApiError;
use super::resources::{self, ResourceInfo};
use super::service::{DeleteOptions, FieldValidation, Part, PatchType, WriteOptions};
use super::table::{self, IncludeObject};
use super::{App, discovery, openapi, openapi_v2, protobuf, service};
use crate::store::{EventType, WatchError};

/// Largest request body accepted (Kubernetes' limit is 3 MiB).
pub(crate) const MAX_BODY: usize = 3 * 1024 * 1024;
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

type Query = Vec<(String, String)>;

fn q<'a>(query: &'a Query, k: &str) -> Option<&'a str> {
    query.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
}

/// A boolean query parameter, spelled any way Go's strconv.ParseBool accepts (the Python
/// client up to 32.x sends `watch=True`); absent is false, anything else a 400.
fn flag(query: &Query, k: &str) -> Result<bool, ApiError> {
    match q(query, k) {
        None => Ok(false),
        Some(v) => flotilla_api::query::parse_bool(v)
            .ok_or_else(|| ApiError::bad_request(format!("invalid value {v:?} for query parameter {k}: strconv.ParseBool: parsing {v:?}: invalid syntax"))),
    }
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

fn with_warnings(mut r: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(h) = HeaderValue::from_str(&text) {
            r.headers_mut().append(header::WARNING, h);
        }
    }
    r
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().any(|v| v.to_str().is_ok_and(|s| s.contains("as=Table")))
}

/// Entry point for every request the router does not serve itself.
pub(crate) async fn dispatch(State(app): State<Arc<App>>, req: Request) -> Response {
    match route(app, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// A parsed resource path.
struct Target {
    info: &'static ResourceInfo,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
    /// Path after the subresource (pods/x/proxy/PATH).
    rest: String,
}

enum Path<'a> {
    Discovery(Discovery<'a>),
    Resource(Target),
}

/// A discovery document a path names.
enum Discovery<'a> {
    Api,
    Apis,
    CoreV1,
    Group(&'a str),
    GroupVersion(&'a str, &'a str),
}

fn not_found() -> ApiError {
    ApiError::page_not_found()
}

/// The discovery document `d`, aggregated when the client asks for it.
fn discovery_response(d: Discovery<'_>, headers: &HeaderMap, server_address: &str) -> Result<Response, ApiError> {
    let accept: String = headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(",");
    let aggregated = |core: bool| -> Option<Response> {
        let v2 = accept.find("v=v2;as=APIGroupDiscoveryList").or_else(|| accept.find("v=v2;g=apidiscovery"));
        let v2b = accept.find("v=v2beta1;as=APIGroupDiscoveryList");
        let (ct, av) = match (v2, v2b) {
            (Some(a), Some(b)) if b < a => (discovery::AGGREGATED_V2BETA1, "apidiscovery.k8s.io/v2beta1"),
            (Some(_), _) => (discovery::AGGREGATED_V2, "apidiscovery.k8s.io/v2"),
            (None, Some(_)) => (discovery::AGGREGATED_V2BETA1, "apidiscovery.k8s.io/v2beta1"),
            (None, None) => return None,
        };
        let body = discovery::aggregated(core, av).to_string();
        let mut r = (StatusCode::OK, body).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        r.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept"));
        Some(r)
    };
    Ok(match d {
        Discovery::Api => aggregated(true).unwrap_or_else(|| json_response(StatusCode::OK, &discovery::api_versions(server_address))),
        Discovery::Apis => aggregated(false).unwrap_or_else(|| json_response(StatusCode::OK, &discovery::api_group_list())),
        Discovery::CoreV1 => json_response(StatusCode::OK, &discovery::api_resource_list("", "v1").ok_or_else(not_found)?),
        Discovery::Group(g) => json_response(StatusCode::OK, &discovery::api_group(g).ok_or_else(not_found)?),
        Discovery::GroupVersion(g, v) => json_response(StatusCode::OK, &discovery::api_resource_list(g, v).ok_or_else(not_found)?),
    })
}

/// Parses a path: a discovery document or a served resource (pure).
fn parse_path(path: &str) -> Result<Path<'_>, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["api"] => return Ok(Path::Discovery(Discovery::Api)),
        ["apis"] => return Ok(Path::Discovery(Discovery::Apis)),
        ["api", "v1"] => return Ok(Path::Discovery(Discovery::CoreV1)),
        ["apis", g] => return Ok(Path::Discovery(Discovery::Group(g))),
        ["apis", g, v] => return Ok(Path::Discovery(Discovery::GroupVersion(g, v))),
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(not_found()),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, r, more @ ..] if !(*r == "status" || *r == "finalize") || !more.is_empty() => (Some(ns.to_string()), {
            let mut v = vec![*r];
            v.extend_from_slice(more);
            v
        }),
        other => (None, other.to_vec()),
    };
    let plural = rest.first().ok_or_else(not_found)?;
    let info = resources::find(group, version, plural).ok_or_else(not_found)?;
    if namespace.is_some() && !info.namespaced {
        return Err(not_found());
    }
    let name = rest.get(1).map(|s| s.to_string());
    let subresource = rest.get(2).map(|s| s.to_string());
    if let Some(sub) = &subresource
        && !info.subresources.contains(&sub.as_str())
    {
        return Err(not_found());
    }
    let tail = if rest.len() > 3 { rest[3..].join("/") } else { String::new() };
    Ok(Path::Resource(Target { info, namespace, name, subresource, rest: tail }))
}

fn verb_for(method: &Method, t: &Target, query: &Query) -> &'static str {
    if matches!(t.subresource.as_deref(), Some("exec" | "attach" | "portforward")) {
        // Streams are authorized as create whatever the method (a websocket upgrade is a
        // GET), as Kubernetes does since 1.31.
        return "create";
    }
    let watching = flag(query, "watch").unwrap_or(false);
    match (method, t.name.is_some()) {
        (&Method::GET, _) if watching => "watch",
        (&Method::GET, true) => "get",
        (&Method::GET, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "unknown",
    }
}

/// The verb of a request for a path that is not a resource: the method, lower-cased.
fn non_resource_verb(method: &Method) -> String {
    method.as_str().to_ascii_lowercase()
}

async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::new(413, "RequestEntityTooLarge", format!("Request entity too large: limit is {MAX_BODY}"))
    })
}

/// Decodes a request body by its content type.
fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let base = ct.split(';').next().unwrap_or("").trim();
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    match base {
        protobuf::CONTENT_TYPE => protobuf::decode(body).map_err(|e| match e {
            protobuf::ProtoError::UnsupportedKind { .. }
            | protobuf::ProtoError::UnsupportedEncoding { .. }
            | protobuf::ProtoError::UnsupportedField { .. } => {
                ApiError::new(415, "UnsupportedMediaType", format!("{e}; send this kind as JSON"))
            }
            other => ApiError::bad_request(format!("unable to decode protobuf body: {other}")),
        }),
        "application/yaml" | "application/apply-patch+yaml" => serde_yaml::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
            .and_then(check_decodable),
        "application/json" | "application/json-patch+json" | "application/merge-patch+json" | "application/strategic-merge-patch+json"
        | "application/apply-patch+json" | "" | "*/*" => serde_json::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON body: {e}")))
            .and_then(check_decodable),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// The name Go's encoding/json gives a JSON value's type in its errors.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn unmarshal_error(v: &Value, field: &str, go: &str) -> ApiError {
    ApiError::bad_request(format!("json: cannot unmarshal {} into Go struct field {field} of type {go}", go_type(v)))
}

/// What Go's decoder refuses in any Kubernetes body: a document that is not an object
/// (null decodes to nothing), and TypeMeta and the ObjectMeta fields every kind shares
/// of the wrong types. (Found by `write_fuzz.rs`: `"kind": 5` was stored as if absent, and
/// an array PUT to a scale subresource scaled to 0.)
fn check_decodable(v: Value) -> Result<Value, ApiError> {
    let o = match &v {
        Value::Null => return Ok(v),
        Value::Object(o) => o,
        other => {
            return Err(ApiError::bad_request(format!(
                "couldn't get version/kind; json parse error: json: cannot unmarshal {} into Go value of type struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }}",
                go_type(other)
            )));
        }
    };
    let string_or_null = |x: &Value| x.is_null() || x.is_string();
    for k in ["apiVersion", "kind"] {
        if let Some(x) = o.get(k).filter(|x| !string_or_null(x)) {
            return Err(ApiError::bad_request(format!("couldn't get version/kind; json parse error: json: cannot unmarshal {} into Go struct field .{k} of type string", go_type(x))));
        }
    }
    match o.get("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for k in ["name", "generateName", "namespace", "uid", "resourceVersion"] {
                if let Some(x) = m.get(k).filter(|x| !string_or_null(x)) {
                    return Err(unmarshal_error(x, &format!("ObjectMeta.metadata.{k}"), "string"));
                }
            }
            for k in ["labels", "annotations"] {
                match m.get(k) {
                    None | Some(Value::Null) => {}
                    Some(Value::Object(map)) => {
                        if let Some(x) = map.values().find(|x| !string_or_null(x)) {
                            return Err(unmarshal_error(x, &format!("ObjectMeta.metadata.{k}"), "string"));
                        }
                    }
                    Some(x) => return Err(unmarshal_error(x, &format!("ObjectMeta.metadata.{k}"), "map[string]string")),
                }
            }
        }
        Some(x) => return Err(unmarshal_error(x, ".metadata", "v1.ObjectMeta")),
    }
    Ok(v)
}

/// DeleteOptions in a body, checked as Kubernetes decodes and validates them before any
/// of it is used: a DELETE whose options cannot be read must not delete (its dryRun or
/// preconditions may be the ones it could not read). Found by `write_fuzz.rs`.
fn check_delete_options(v: &Value) -> Result<(), ApiError> {
    let Some(o) = v.as_object() else { return Ok(()) };
    let field = |k: &str| o.get(k).filter(|x| !x.is_null());
    if let Some(x) = field("gracePeriodSeconds").filter(|x| !x.is_i64()) {
        return Err(unmarshal_error(x, "DeleteOptions.gracePeriodSeconds", "int64"));
    }
    if let Some(x) = field("orphanDependents").filter(|x| !x.is_boolean()) {
        return Err(unmarshal_error(x, "DeleteOptions.orphanDependents", "bool"));
    }
    match field("preconditions") {
        None => {}
        Some(Value::Object(p)) => {
            for k in ["uid", "resourceVersion"] {
                if let Some(x) = p.get(k).filter(|x| !x.is_null() && !x.is_string()) {
                    return Err(unmarshal_error(x, &format!("DeleteOptions.preconditions.{k}"), "string"));
                }
            }
        }
        Some(x) => return Err(unmarshal_error(x, "DeleteOptions.preconditions", "v1.Preconditions")),
    }
    match field("propagationPolicy") {
        None => {}
        Some(Value::String(p)) if ["Orphan", "Background", "Foreground"].contains(&p.as_str()) => {}
        Some(Value::String(p)) => {
            return Err(ApiError::new(422, "Invalid", format!("DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\"")));
        }
        Some(x) => return Err(unmarshal_error(x, "DeleteOptions.propagationPolicy", "v1.DeletionPropagation")),
    }
    match field("dryRun") {
        None => {}
        Some(Value::Array(a)) => {
            for x in a {
                match x.as_str() {
                    Some("All") => {}
                    Some(other) => return Err(ApiError::bad_request(format!("Invalid dry run value: {other}"))),
                    None => return Err(unmarshal_error(x, "DeleteOptions.dryRun", "string")),
                }
            }
        }
        Some(x) => return Err(unmarshal_error(x, "DeleteOptions.dryRun", "[]string")),
    }
    Ok(())
}

/// Decodes a DELETE's DeleteOptions body (if any) into `opts`.
fn merge_delete_body(opts: &mut DeleteOptions, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    if !body.is_empty() {
        let v = decode_body(headers, body)?;
        check_delete_options(&v)?;
        opts.merge_body(&v);
    }
    Ok(())
}

fn write_options(query: &Query, headers: &HeaderMap) -> Result<WriteOptions, ApiError> {
    let field_validation = match q(query, "fieldValidation") {
        None | Some("") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Warn") => FieldValidation::Warn,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation {other} is invalid, valid values are: Ignore, Warn, Strict"
            )));
        }
    };
    let dry_run = match q(query, "dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => return Err(ApiError::bad_request(format!("Invalid dry run value: {other}"))),
    };
    let field_manager = match q(query, "fieldManager") {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_string(),
    };
    Ok(WriteOptions { dry_run, field_manager, field_validation })
}

const METRICS_PREFIX: &str = "/apis/metrics.k8s.io/v1beta1/";

/// The attributes of a metrics.k8s.io request (`rest` after [`METRICS_PREFIX`]).
fn metrics_attributes(rest: &str) -> Option<Attributes> {
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let (namespace, resource, name) = match segs.as_slice() {
        ["namespaces", ns, r, more @ ..] => (*ns, *r, more.first().copied()),
        [r, more @ ..] => ("", *r, more.first().copied()),
        [] => return None,
    };
    let verb = if name.is_some() { "get" } else { "list" };
    Some(Attributes::resource(verb, "metrics.k8s.io", resource, "", namespace, name.unwrap_or_default()))
}

/// The attributes of a request for a served resource.
fn resource_attributes(method: &Method, target: &Target, query: &Query) -> Attributes {
    let verb = verb_for(method, target, query);
    let mut name = target.name.clone().unwrap_or_default();
    if name.is_empty() && matches!(verb, "list" | "watch") {
        // A list or watch of one object by name is authorized as that name (RequestInfo).
        if let Some(n) = q(query, "fieldSelector").and_then(|f| f.strip_prefix("metadata.name=")).filter(|n| !n.contains(',')) {
            name = n.to_string();
        }
    }
    Attributes::resource(verb, target.info.group, target.info.plural, target.subresource.as_deref().unwrap_or_default(), target.namespace.as_deref().unwrap_or_default(), &name)
}

/// What a request is, as the authorizer and the audit log see it (Kubernetes'
/// RequestInfo): the attributes [`route`] authorizes it with.
pub(crate) struct RequestInfo {
    pub attributes: Attributes,
    /// The API version of a resource request (empty otherwise).
    pub api_version: &'static str,
    /// A watch, a log, exec, attach, portforward or proxy: its response outlives its
    /// handler (Kubernetes' long-running request check).
    pub long_running: bool,
}

/// The [`RequestInfo`] of a request (pure: no store, no authorizer).
pub(crate) fn request_info(method: &Method, path: &str, query: Option<&str>) -> RequestInfo {
    let non_resource = || RequestInfo { attributes: Attributes::non_resource(&non_resource_verb(method), path), api_version: "", long_running: false };
    if let Some(rest) = path.strip_prefix(METRICS_PREFIX) {
        return metrics_attributes(rest).map_or_else(non_resource, |attributes| RequestInfo { attributes, api_version: "v1beta1", long_running: false });
    }
    if path.starts_with("/openapi/") {
        return non_resource();
    }
    match parse_path(path) {
        Ok(Path::Resource(t)) => {
            let query: Query = query.map(|s| form_urlencoded::parse(s.as_bytes()).into_owned().collect()).unwrap_or_default();
            let attributes = resource_attributes(method, &t, &query);
            let long_running = attributes.verb == "watch" || matches!(attributes.subresource.as_str(), "log" | "exec" | "attach" | "portforward" | "proxy");
            RequestInfo { attributes, api_version: t.info.version, long_running }
        }
        _ => non_resource(),
    }
}

async fn route(app: Arc<App>, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let query: Query = parts.uri.query().map(|s| form_urlencoded::parse(s.as_bytes()).into_owned().collect()).unwrap_or_default();
    let user = auth::user_of(&parts.extensions)?;
    let path = parts.uri.path().to_string();
    let non_resource = |user: &User| auth::check(app.authz.as_ref(), user, &Attributes::non_resource(&non_resource_verb(&parts.method), &path));
    if let Some(rest) = path.strip_prefix("/openapi/v3") {
        non_resource(&user)?;
        return openapi_route(rest, &query);
    }
    if path == "/openapi/v2" {
        non_resource(&user)?;
        return Ok(openapi_v2_route(&parts.headers));
    }
    if let Some(rest) = path.strip_prefix(METRICS_PREFIX) {
        let attrs = metrics_attributes(rest).ok_or_else(not_found)?;
        auth::check(app.authz.as_ref(), &user, &attrs)?;
        let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        return super::metrics_api::serve(&app, &parts.method, &segs, &query).await;
    }
    let target = match parse_path(&path)? {
        Path::Discovery(d) => {
            non_resource(&user)?;
            return discovery_response(d, &parts.headers, &app.server_address);
        }
        Path::Resource(t) => t,
    };
    auth::check(app.authz.as_ref(), &user, &resource_attributes(&parts.method, &target, &query))?;
    let headers = parts.headers;
    let method = parts.method;
    let ns = target.namespace.as_deref();
    let info = target.info;
    match (target.subresource.as_deref(), target.name.as_deref()) {
        (None, None) => match method {
            Method::GET => list_or_watch(&app, info, ns, &query, &headers).await,
            Method::POST => {
                let body = read_body(body).await?;
                let obj = decode_body(&headers, &body)?;
                if super::reviews::is_review(info.kind) {
                    let review = super::reviews::create(&app, &user, info.kind, ns, obj)?;
                    return Ok(json_response(StatusCode::CREATED, &review));
                }
                let mut obj = obj;
                if info.kind == "CertificateSigningRequest" {
                    super::certificates::prepare_create(&user, &mut obj)?;
                }
                check_rbac_write(&app, &user, info, ns, "create", &obj, None)?;
                let opts = write_options(&query, &headers)?;
                let w = app.api.create(info, ns, obj, &opts).await?;
                Ok(with_warnings(json_response(StatusCode::CREATED, &w.object), &w.warnings))
            }
            Method::DELETE => delete_collection(&app, info, ns, &query, &headers, body).await,
            _ => Err(ApiError::method_not_allowed(format!("the server does not allow this method on the requested resource ({method})"))),
        },
        (None, Some(name)) => match method {
            Method::GET => {
                let o = app.api.get(info, ns, name)?;
                object_response(info, &o.value, &headers, &query)
            }
            Method::PUT => {
                let body = read_body(body).await?;
                let obj = decode_body(&headers, &body)?;
                if is_rbac(info, &user) {
                    let old = app.api.get(info, ns, name).ok();
                    check_rbac_write(&app, &user, info, ns, "update", &obj, old.as_ref().map(|o| &o.value))?;
                }
                let opts = write_options(&query, &headers)?;
                let w = app.api.update(info, ns, name, obj, Part::Main, &opts).await?;
                Ok(with_warnings(json_response(StatusCode::OK, &w.object), &w.warnings))
            }
            Method::PATCH => patch(&app, &user, info, ns, name, Part::Main, &query, &headers, body).await,
            Method::DELETE => {
                let mut opts = delete_options(&query)?;
                // DeleteOptions that cannot be read must not be ignored: they may carry
                // dryRun or preconditions.
                merge_delete_body(&mut opts, &headers, &read_body(body).await?)?;
                let obj = app.api.delete(info, ns, name, &opts).await?;
                let code = if obj["metadata"]["deletionTimestamp"].is_null() || app.api.store.get(&service::key(info, ns, name)).is_none() {
                    StatusCode::OK
                } else {
                    StatusCode::ACCEPTED
                };
                Ok(json_response(code, &obj))
            }
            _ => Err(ApiError::method_not_allowed(format!("the server does not allow this method on the requested resource ({method})"))),
        },
        (Some("status"), Some(name)) | (Some("finalize"), Some(name)) => match method {
            Method::GET => Ok(json_response(StatusCode::OK, &app.api.get(info, ns, name)?.value)),
            Method::PUT => {
                let body = read_body(body).await?;
                let obj = decode_body(&headers, &body)?;
                let opts = write_options(&query, &headers)?;
                let part = if target.subresource.as_deref() == Some("status") { Part::Status } else { Part::Main };
                let w = app.api.update(info, ns, name, obj, part, &opts).await?;
                Ok(with_warnings(json_response(StatusCode::OK, &w.object), &w.warnings))
            }
            Method::PATCH => patch(&app, &user, info, ns, name, Part::Status, &query, &headers, body).await,
            _ => Err(ApiError::method_not_allowed("the server does not allow this method on the requested resource")),
        },
        (Some("scale"), Some(name)) => scale(&app, info, ns, name, method, &query, &headers, body).await,
        (Some("approval"), Some(name)) if method == Method::PUT => {
            let body = read_body(body).await?;
            let obj = decode_body(&headers, &body)?;
            Ok(json_response(StatusCode::OK, &super::certificates::approve(&app, &user, name, obj).await?))
        }
        (Some("token"), Some(name)) if method == Method::POST => {
            let body = read_body(body).await?;
            let request = decode_body(&headers, &body)?;
            let answer = super::service_accounts::token_request(&app.api, app.authn.signer(), ns.unwrap_or("default"), name, request)?;
            Ok(json_response(StatusCode::CREATED, &answer))
        }
        (Some("binding"), Some(name)) if method == Method::POST => {
            let body = read_body(body).await?;
            let obj = decode_body(&headers, &body)?;
            bind(&app, info, ns, name, obj).await
        }
        (Some("eviction"), Some(name)) if method == Method::POST => {
            let body = read_body(body).await?;
            let eviction = decode_eviction(&headers, &body)?;
            evict(&app, info, ns, name, &eviction, &query).await
        }
        (Some(sub @ ("log" | "exec" | "attach" | "proxy" | "portforward")), Some(name)) => {
            // The raw URI (parts.uri) carries the proxy path, trailing slash included.
            let _ = &target.rest;
            let mut extensions = parts.extensions;
            let sub_request = super::node_proxy::SubRequest {
                sub,
                namespace: ns.unwrap_or("default"),
                name,
                method,
                uri: &parts.uri,
                headers,
                query: &query,
                body,
                on_upgrade: extensions.remove::<hyper::upgrade::OnUpgrade>(),
            };
            super::node_proxy::serve(&app, info, sub_request).await
        }
        _ => Err(not_found()),
    }
}

fn openapi_route(rest: &str, query: &Query) -> Result<Response, ApiError> {
    let _ = query;
    let rest = rest.trim_matches('/');
    if rest.is_empty() {
        return Ok(json_response(StatusCode::OK, &openapi::index()));
    }
    let doc = openapi::document(rest).ok_or_else(not_found)?;
    let mut r = json_response(StatusCode::OK, doc);
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, immutable"));
    Ok(r)
}

/// The Swagger 2.0 document: protobuf when the client asks for it (kubectl < 1.29), else JSON.
fn openapi_v2_route(headers: &HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if openapi_v2::PROTOBUF_ACCEPT.iter().any(|t| accept.contains(t)) {
        return (StatusCode::OK, [(header::CONTENT_TYPE, openapi_v2::PROTOBUF_CONTENT_TYPE)], openapi_v2::protobuf()).into_response();
    }
    json_response(StatusCode::OK, openapi_v2::json())
}

fn object_response(info: &ResourceInfo, obj: &Value, headers: &HeaderMap, query: &Query) -> Result<Response, ApiError> {
    if wants_table(headers) {
        let include = include_object(query)?;
        let rv = obj["metadata"]["resourceVersion"].as_str().unwrap_or("").to_string();
        let t = table::table(info, &[obj], include, chrono::Utc::now(), &rv, None);
        return Ok(json_response(StatusCode::OK, &t));
    }
    Ok(json_response(StatusCode::OK, obj))
}

fn include_object(query: &Query) -> Result<IncludeObject, ApiError> {
    IncludeObject::from_query(q(query, "includeObject")).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn delete_options(query: &Query) -> Result<DeleteOptions, ApiError> {
    let mut o = DeleteOptions {
        propagation: q(query, "propagationPolicy").map(str::to_string),
        grace_period_seconds: match q(query, "gracePeriodSeconds") {
            Some(g) => Some(g.parse().map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds: {g}")))?),
            None => None,
        },
        dry_run: q(query, "dryRun") == Some("All"),
        ..Default::default()
    };
    if o.propagation.is_none() {
        match q(query, "orphanDependents").map(flotilla_api::query::parse_bool) {
            Some(Some(true)) => o.propagation = Some("Orphan".into()),
            Some(Some(false)) => o.propagation = Some("Background".into()),
            _ => {}
        }
    }
    if let Some(p) = &o.propagation
        && !["Orphan", "Background", "Foreground"].contains(&p.as_str())
    {
        return Err(ApiError::new(422, "Invalid", format!("DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\"")));
    }
    Ok(o)
}

/// Selectors and paging of a list or watch.
struct Filter {
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
}

impl Filter {
    fn parse(info: &ResourceInfo, query: &Query) -> Result<Filter, ApiError> {
        let labels = match q(query, "labelSelector").filter(|s| !s.trim().is_empty()) {
            Some(s) => Some(LabelSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?),
            None => None,
        };
        let fields = match q(query, "fieldSelector").filter(|s| !s.trim().is_empty()) {
            Some(s) => {
                let f = FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?;
                f.check_supported(info.kind).map_err(|e| ApiError::bad_request(e.to_string()))?;
                Some(f)
            }
            None => None,
        };
        Ok(Filter { labels, fields })
    }

    fn matches(&self, obj: &Value) -> bool {
        if let Some(l) = &self.labels
            && !l.matches(obj["metadata"]["labels"].as_object())
        {
            return false;
        }
        if let Some(f) = &self.fields
            && !f.matches(obj)
        {
            return false;
        }
        true
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    start: String,
}

async fn list_or_watch(app: &Arc<App>, info: &'static ResourceInfo, ns: Option<&str>, query: &Query, headers: &HeaderMap) -> Result<Response, ApiError> {
    let filter = Filter::parse(info, query)?;
    if flag(query, "watch")? {
        return watch(app, info, ns, query, headers, filter);
    }
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let limit = match q(query, "limit") {
        Some(l) => match l.parse::<i64>() {
            Ok(n) if n > 0 => Some(n as usize),
            Ok(_) => None,
            Err(_) => return Err(ApiError::bad_request(format!("invalid limit: {l}"))),
        },
        None => None,
    };
    let after = match q(query, "continue").filter(|c| !c.is_empty()) {
        Some(c) => {
            let t: ContinueToken = b64
                .decode(c)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| ApiError::bad_request("continue key is not valid: the continue token is malformed"))?;
            if t.rv < app.api.store.watch_compacted() {
                return Err(ApiError::expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."));
            }
            Some(t.start)
        }
        None => None,
    };
    let prefix = service::prefix(info, ns);
    let (items, rv, more) = app.api.store.list(&prefix, after.as_deref(), limit, &|s| filter.matches(&s.value));
    let cont = more.map(|start| b64.encode(serde_json::to_vec(&ContinueToken { rv, start }).unwrap_or_default()));
    if wants_table(headers) {
        let include = include_object(query)?;
        let objs: Vec<&Value> = items.iter().map(|s| &s.value).collect();
        let t = table::table(info, &objs, include, chrono::Utc::now(), &rv.to_string(), cont.as_deref());
        return Ok(json_response(StatusCode::OK, &t));
    }
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        metadata["continue"] = json!(c);
    }
    // Serialized item by item: no intermediate copy of every object.
    let mut body = format!("{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[", info.kind, info.api_version(), metadata).into_bytes();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut body, &item.value).map_err(|e| ApiError::internal(e.to_string()))?;
    }
    body.extend_from_slice(b"]}");
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

fn watch(app: &Arc<App>, info: &'static ResourceInfo, ns: Option<&str>, query: &Query, headers: &HeaderMap, filter: Filter) -> Result<Response, ApiError> {
    let from = match q(query, "resourceVersion") {
        None | Some("") | Some("0") => None,
        Some(rv) => Some(rv.parse::<u64>().map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?),
    };
    let mut stream = app.api.store.watch(&service::prefix(info, ns), from).map_err(|e| match e {
        WatchError::Expired { .. } => ApiError::expired(e.to_string()),
    })?;
    let timeout = q(query, "timeoutSeconds").and_then(|t| t.parse::<u64>().ok()).unwrap_or(1800);
    let bookmarks = flag(query, "allowWatchBookmarks")?;
    let as_table = wants_table(headers);
    let include = include_object(query)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let shutdown = app.shutdown.clone();
    let watcher = crate::metrics::global().watcher(&info.qualified_plural());
    tokio::spawn(async move {
        let _watcher = watcher;
        let encode = |kind: &str, obj: &Value| -> Bytes {
            let table;
            let object = if as_table {
                let rv = obj["metadata"]["resourceVersion"].as_str().unwrap_or("").to_string();
                table = table::table(info, &[obj], include, chrono::Utc::now(), &rv, None);
                &table
            } else {
                obj
            };
            // {"type":KIND,"object":OBJECT}\n, written straight from the stored object.
            let mut line = Vec::with_capacity(1024);
            line.extend_from_slice(b"{\"type\":\"");
            line.extend_from_slice(kind.as_bytes());
            line.extend_from_slice(b"\",\"object\":");
            if serde_json::to_writer(&mut line, object).is_err() {
                line.extend_from_slice(b"null");
            }
            line.extend_from_slice(b"}\n");
            Bytes::from(line)
        };
        let mut next_bookmark = tokio::time::Instant::now() + BOOKMARK_EVERY;
        loop {
            let msg = tokio::select! {
                ev = stream.next() => match ev {
                    None => break,
                    Some(Err(e)) => {
                        let status = ApiError::expired(e.to_string()).status();
                        Some(Bytes::from(format!("{}\n", json!({"type": "ERROR", "object": status}))))
                    }
                    Some(Ok(ev)) => {
                        let now_match = filter.matches(&ev.object.value);
                        let was_match = ev.prev.as_ref().is_some_and(|p| filter.matches(&p.value));
                        let kind = match (ev.kind, was_match, now_match) {
                            (EventType::Added, _, true) => Some("ADDED"),
                            (EventType::Modified, true, true) => Some("MODIFIED"),
                            (EventType::Modified, false, true) => Some("ADDED"),
                            (EventType::Modified, true, false) => Some("DELETED"),
                            (EventType::Deleted, p, n) if p || n => Some("DELETED"),
                            _ => None,
                        };
                        kind.map(|k| encode(k, &ev.object.value))
                    }
                },
                _ = tokio::time::sleep_until(next_bookmark), if bookmarks => {
                    next_bookmark = tokio::time::Instant::now() + BOOKMARK_EVERY;
                    let obj = json!({"kind": info.kind, "apiVersion": info.api_version(), "metadata": {"resourceVersion": stream.cursor().to_string()}});
                    Some(Bytes::from(format!("{}\n", json!({"type": "BOOKMARK", "object": obj}))))
                }
                _ = tokio::time::sleep_until(deadline) => break,
                _ = shutdown.cancelled() => break,
            };
            if let Some(bytes) = msg {
                let is_error = bytes.starts_with(b"{\"type\":\"ERROR\"");
                if tx.send(Ok(bytes)).await.is_err() || is_error {
                    break;
                }
            }
        }
    });
    let body = Body::from_stream(tokio_stream_from(rx));
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    Ok(r)
}

fn tokio_stream_from(mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn delete_collection(app: &Arc<App>, info: &'static ResourceInfo, ns: Option<&str>, query: &Query, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    let filter = Filter::parse(info, query)?;
    let mut opts = delete_options(query)?;
    merge_delete_body(&mut opts, headers, &read_body(body).await?)?;
    let (items, _, _) = app.api.store.list(&service::prefix(info, ns), None, None, &|s| filter.matches(&s.value));
    let mut deleted = Vec::new();
    for item in items {
        let name = service::name_of(&item.value).to_string();
        let item_ns = item.value["metadata"]["namespace"].as_str().map(str::to_string);
        match app.api.delete(info, item_ns.as_deref(), &name, &opts).await {
            Ok(v) => deleted.push(v),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let body = json!({
        "kind": format!("{}List", info.kind),
        "apiVersion": info.api_version(),
        "metadata": {"resourceVersion": app.api.store.revision().to_string()},
        "items": deleted,
    });
    Ok(json_response(StatusCode::OK, &body))
}

#[allow(clippy::too_many_arguments, reason = "request parts")]
/// Whether a write of `info` by `user` needs RBAC's escalation check (system:masters
/// holds every permission).
fn is_rbac(info: &ResourceInfo, user: &User) -> bool {
    info.group == "rbac.authorization.k8s.io" && !super::rbac::privileged(user)
}

/// Escalation prevention: a Role or binding may grant only what the writer holds (or may
/// `escalate`/`bind`), as Kubernetes checks it.
fn check_rbac_write(app: &App, user: &User, info: &ResourceInfo, ns: Option<&str>, verb: &str, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    if !is_rbac(info, user) {
        return Ok(());
    }
    let mut o = obj.clone();
    o["kind"] = json!(info.kind);
    if let Some(ns) = ns {
        o["metadata"]["namespace"] = json!(ns);
    }
    app.rbac.check_escalation(user, verb, &o, old)
}

#[allow(clippy::too_many_arguments, reason = "a patch request's parts")]
async fn patch(app: &Arc<App>, user: &User, info: &'static ResourceInfo, ns: Option<&str>, name: &str, part: Part, query: &Query, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let kind = PatchType::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))?;
    let body = read_body(body).await?;
    let patch: Value = if kind == PatchType::Apply {
        serde_yaml::from_slice(&body).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?
    };
    let mut opts = write_options(query, headers)?;
    if kind == PatchType::Apply && q(query, "fieldManager").is_none_or(str::is_empty) {
        opts.field_manager = String::new();
    }
    let force = flag(query, "force")?;
    if is_rbac(info, user) {
        // The object the patch makes is checked before it is written (a dry run first).
        let old = app.api.get(info, ns, name).ok();
        let dry = WriteOptions { dry_run: true, ..opts.clone() };
        let result = app.api.patch(info, ns, name, kind, &patch, part, force, &dry).await?;
        let verb = if old.is_some() { "patch" } else { "create" };
        check_rbac_write(app, user, info, ns, verb, &result.object, old.as_ref().map(|o| &o.value))?;
    }
    let w = app.api.patch(info, ns, name, kind, &patch, part, force, &opts).await?;
    let code = if w.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(with_warnings(json_response(code, &w.object), &w.warnings))
}

fn selector_string(sel: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(m) = sel["matchLabels"].as_object() {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str().unwrap_or("")));
        }
    }
    if let Some(exprs) = sel["matchExpressions"].as_array() {
        for e in exprs {
            let key = e["key"].as_str().unwrap_or("");
            let values: Vec<&str> = e["values"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            match e["operator"].as_str().unwrap_or("") {
                "In" => parts.push(format!("{key} in ({})", values.join(","))),
                "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
                "Exists" => parts.push(key.to_string()),
                "DoesNotExist" => parts.push(format!("!{key}")),
                _ => {}
            }
        }
    }
    parts.join(",")
}

fn scale_of(obj: &Value) -> Value {
    let m = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector_string(&obj["spec"]["selector"])},
    })
}

#[allow(clippy::too_many_arguments, reason = "request parts")]
async fn scale(app: &Arc<App>, info: &'static ResourceInfo, ns: Option<&str>, name: &str, method: Method, query: &Query, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    let cur = app.api.get(info, ns, name)?;
    let current_scale = scale_of(&cur.value);
    let new_scale = match method {
        Method::GET => return Ok(json_response(StatusCode::OK, &current_scale)),
        Method::PUT => decode_body(headers, &read_body(body).await?)?,
        Method::PATCH => {
            let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let kind = PatchType::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))?;
            let patch: Value = serde_json::from_slice(&read_body(body).await?).map_err(|e| ApiError::bad_request(e.to_string()))?;
            let mut doc = current_scale.clone();
            match kind {
                PatchType::Json => {
                    let ops: json_patch::Patch = serde_json::from_value(patch).map_err(|e| ApiError::bad_request(e.to_string()))?;
                    json_patch::patch(&mut doc, &ops).map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?;
                }
                _ => json_patch::merge(&mut doc, &patch),
            }
            doc
        }
        _ => return Err(ApiError::method_not_allowed("the server does not allow this method on the requested resource")),
    };
    if !new_scale.is_object() {
        // A patch that replaced the whole Scale (found by `write_fuzz.rs`: it scaled to 0).
        return Err(ApiError::bad_request(format!("Scale in version \"v1\" cannot be handled as a Scale: json: cannot unmarshal {} into Go value of type autoscaling.Scale", go_type(&new_scale))));
    }
    // The patched Scale decodes as a body would.
    let new_scale = check_decodable(new_scale)?;
    // Go clients omit `replicas: 0`: a missing value is zero.
    let replicas = match &new_scale["spec"]["replicas"] {
        Value::Null => 0,
        v => v.as_i64().ok_or_else(|| ApiError::bad_request(format!("Scale in version \"v1\" cannot be handled as a Scale: spec.replicas: expected an integer, got {v}")))?,
    };
    if replicas < 0 {
        return Err(ApiError::new(422, "Invalid", format!("Scale.autoscaling \"{name}\" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0")));
    }
    let wanted_rv = new_scale["metadata"]["resourceVersion"].as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let opts = write_options(query, headers)?;
    let mut patch = json!({"spec": {"replicas": replicas}});
    if method == Method::PUT && let Some(rv) = wanted_rv {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    let w = app.api.patch(info, ns, name, PatchType::Merge, &patch, Part::Main, false, &opts).await?;
    Ok(json_response(StatusCode::OK, &scale_of(&w.object)))
}

async fn bind(app: &Arc<App>, info: &'static ResourceInfo, ns: Option<&str>, name: &str, binding: Value) -> Result<Response, ApiError> {
    let node = binding["target"]["name"].as_str().unwrap_or("").to_string();
    app.api.bind(info, ns, name, &node).await?;
    Ok(json_response(StatusCode::CREATED, &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})))
}

/// POST pods/NAME/eviction (policy/v1 Eviction): a graceful delete honouring the body's
/// deleteOptions and the pod's PodDisruptionBudget (`eviction.rs`).
async fn evict(app: &Arc<App>, info: &'static ResourceInfo, ns: Option<&str>, name: &str, eviction: &Value, query: &Query) -> Result<Response, ApiError> {
    if let Some(n) = eviction["metadata"]["name"].as_str().filter(|n| !n.is_empty())
        && n != name
    {
        return Err(ApiError::bad_request("name in URL does not match name in Eviction object"));
    }
    let mut opts = delete_options(query)?;
    if eviction["deleteOptions"].is_object() {
        opts.merge_body(&eviction["deleteOptions"]);
    }
    app.api.evict(info, ns.unwrap_or("default"), name, &opts).await?;
    Ok(json_response(StatusCode::CREATED, &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})))
}

/// An Eviction body as JSON; kubectl's typed client sends it as protobuf.
fn decode_eviction(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    use k8s_pb::api::policy::v1::Eviction;
    use k8s_pb::apimachinery::pkg::runtime::Unknown;
    use prost::Message;
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct.split(';').next().unwrap_or("").trim() != protobuf::CONTENT_TYPE {
        return decode_body(headers, body);
    }
    let bad = |what: &str| ApiError::bad_request(format!("unable to decode protobuf Eviction: {what}"));
    let envelope = body.strip_prefix(b"k8s\0".as_slice()).ok_or_else(|| bad("missing magic prefix"))?;
    let unknown = Unknown::decode(envelope).map_err(|_| bad("malformed envelope"))?;
    if unknown.type_meta.as_ref().and_then(|t| t.kind.as_deref()) != Some("Eviction") {
        return Err(ApiError::new(415, "UnsupportedMediaType", "only an Eviction may be posted to pods/eviction; send JSON"));
    }
    let e = Eviction::decode(unknown.raw.unwrap_or_default().as_slice()).map_err(|_| bad("malformed message"))?;
    let meta = e.metadata.unwrap_or_default();
    let mut out = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": meta.name, "namespace": meta.namespace}});
    if let Some(d) = e.delete_options {
        let mut o = json!({});
        if let Some(g) = d.grace_period_seconds {
            o["gracePeriodSeconds"] = json!(g);
        }
        if let Some(p) = d.preconditions {
            o["preconditions"] = json!({"uid": p.uid, "resourceVersion": p.resource_version});
        }
        if let Some(b) = d.orphan_dependents {
            o["orphanDependents"] = json!(b);
        }
        if let Some(p) = d.propagation_policy {
            o["propagationPolicy"] = json!(p);
        }
        if !d.dry_run.is_empty() {
            o["dryRun"] = json!(d.dry_run);
        }
        out["deleteOptions"] = o;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_bodies_decode_from_json_and_protobuf() {
        use k8s_pb::api::policy::v1::Eviction;
        use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
        use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
        use prost::Message;
        let e = Eviction {
            metadata: Some(meta::ObjectMeta { name: Some("p".into()), namespace: Some("ns".into()), ..Default::default() }),
            delete_options: Some(meta::DeleteOptions { grace_period_seconds: Some(7), ..Default::default() }),
        };
        let envelope = Unknown {
            type_meta: Some(TypeMeta { api_version: Some("policy/v1".into()), kind: Some("Eviction".into()) }),
            raw: Some(e.encode_to_vec()),
            ..Default::default()
        };
        let mut body = b"k8s\0".to_vec();
        body.extend(envelope.encode_to_vec());
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/vnd.kubernetes.protobuf"));
        let v = decode_eviction(&headers, &body).expect("decodes");
        assert_eq!(v["metadata"]["name"], "p");
        assert_eq!(v["deleteOptions"]["gracePeriodSeconds"], 7);
        let mut json_headers = HeaderMap::new();
        json_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let v = decode_eviction(&json_headers, br#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"q"},"deleteOptions":{}}"#).expect("json");
        assert_eq!(v["metadata"]["name"], "q");
    }

    /// kubectl sends `create secret` and typed clients send Secrets as protobuf: their
    /// stringData is merged into data like a JSON body's.
    #[tokio::test]
    async fn a_protobuf_secret_with_string_data_is_stored_with_data() {
        use k8s_pb::api::core::v1::Secret;
        use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
        use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
        use prost::Message;
        use tower::ServiceExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(dir.path(), crate::store::StoreConfig::default()).expect("store");
        let api = service::Api::new(store, Arc::new(service::SystemClock));
        let ns_info = super::super::resources::find("", "v1", "namespaces").expect("namespaces");
        api.create(ns_info, None, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}), &WriteOptions::default()).await.expect("ns");
        let secret = Secret {
            metadata: Some(meta::ObjectMeta { name: Some("s".into()), ..Default::default() }),
            data: [("a".to_string(), b"old".to_vec()), ("b".to_string(), b"kept".to_vec())].into(),
            string_data: [("a".to_string(), "new".to_string())].into(),
            ..Default::default()
        };
        let envelope = Unknown {
            type_meta: Some(TypeMeta { api_version: Some("v1".into()), kind: Some("Secret".into()) }),
            raw: Some(secret.encode_to_vec()),
            ..Default::default()
        };
        let mut body = b"k8s\0".to_vec();
        body.extend(envelope.encode_to_vec());
        let (_trigger, shutdown) = super::super::Shutdown::new();
        let router = super::super::test_router(super::super::test_app(api.clone(), "t".into(), "127.0.0.1:6443".into(), shutdown));
        let req = axum::http::Request::builder()
            .method(Method::POST)
            .uri("/api/v1/namespaces/default/secrets")
            .header(header::AUTHORIZATION, "Bearer t")
            .header(header::CONTENT_TYPE, "application/vnd.kubernetes.protobuf")
            .body(Body::from(body))
            .expect("request");
        let resp = router.oneshot(req).await.expect("infallible");
        let status = resp.status();
        let out = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
        assert_eq!(status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&out));
        let info = super::super::resources::find("", "v1", "secrets").expect("secrets");
        let stored = api.get(info, Some("default"), "s").expect("stored");
        assert_eq!(stored.value["data"], json!({"a": "bmV3", "b": "a2VwdA=="}));
        assert!(stored.value.get("stringData").is_none(), "{}", stored.value);
    }
}
