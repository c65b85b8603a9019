//! The audit log (`--audit-log-path`, `--audit-policy-file`): one JSON line per event, in
//! Kubernetes' audit.k8s.io/v1 `Event` shape, at the level the policy (`policy.rs`) gives
//! each request (no policy: every request at Metadata).
//!
//! [`audit`] runs right after authentication, so it knows the user (and, when impersonated,
//! who impersonates: [`super::auth::Impersonator`]). It gives each request an audit ID
//! (the client's `Audit-ID` header, else a new UUID) returned as the `Audit-Id` response
//! header, and writes the stages the policy keeps: RequestReceived before the request goes
//! on; ResponseComplete once the response is ready, or for a long-running request
//! (watch, log, exec, attach, port-forward, proxy) ResponseStarted then, and
//! ResponseComplete when its stream ends.
//!
//! What is learned further in reaches the request's event through a task-local
//! [`Context`]: the authorizer's first decision ([`Recorded`]), the body read by
//! `body_limit.rs`, and annotations (Pod Security's `pod-security.kubernetes.io/*`).
//! Outside an audited request these calls do nothing.
//!
//! Invariants: a request never waits on the disk. Events go through a bounded channel to
//! one writer thread that appends them to the file (mode 0600) and flushes whenever it has
//! caught up; when the channel is full an event is dropped and counted
//! (`apiserver_audit_error_total` on /metrics).

pub(crate) mod policy;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;

use super::auth::{Attributes, Authorizer, Decision, Impersonator, User};
pub(crate) use policy::{Level, Policy, Stage};

/// Where the audit log goes and which policy says what it keeps.
#[derive(Clone, Debug, Default)]
pub struct AuditConfig {
    /// An audit.k8s.io/v1 Policy (YAML or JSON). None: every request at Metadata.
    pub policy_file: Option<PathBuf>,
    /// The log file (appended to; created with mode 0600). None: no audit log.
    pub log_path: Option<PathBuf>,
}

/// Why the audit log could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("reading the audit policy file {path}: {source}")]
    ReadPolicy { path: PathBuf, source: std::io::Error },
    #[error("the audit policy file {path} is not a valid audit.k8s.io/v1 Policy: {source}")]
    Policy { path: PathBuf, source: policy::PolicyError },
    #[error("opening the audit log {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
}

/// Events a writer may be behind by before new ones are dropped.
const QUEUE: usize = 16 * 1024;

/// A response body larger than this is not copied into a RequestResponse event.
const MAX_LOGGED_RESPONSE: u64 = 16 * 1024 * 1024;

/// The running audit log.
pub(crate) struct Auditor {
    policy: Policy,
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor").field("dropped", &self.dropped).finish_non_exhaustive()
    }
}

/// Reads and checks the policy file of `config` (whether or not there is a log).
pub(crate) fn load_policy(config: &AuditConfig) -> Result<Policy, AuditError> {
    match &config.policy_file {
        None => Ok(Policy::metadata_for_everything()),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| AuditError::ReadPolicy { path: path.clone(), source })?;
            Policy::parse(&text).map_err(|source| AuditError::Policy { path: path.clone(), source })
        }
    }
}

impl Auditor {
    /// Checks the policy and opens the log: None without a log path.
    pub(crate) fn open(config: &AuditConfig) -> Result<Option<Arc<Auditor>>, AuditError> {
        let policy = load_policy(config)?;
        let Some(path) = &config.log_path else { return Ok(None) };
        use std::os::unix::fs::OpenOptionsExt as _;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| AuditError::Open { path: path.clone(), source })?;
        let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
        let path = path.clone();
        std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || write_events(file, rx, &path))
            .map_err(|source| AuditError::Open { path: config.log_path.clone().unwrap_or_default(), source })?;
        Ok(Some(Arc::new(Auditor { policy, tx, dropped: AtomicU64::new(0) })))
    }

    /// An auditor writing into a channel (tests).
    #[cfg(test)]
    pub(crate) fn to_channel(policy: Policy) -> (Arc<Auditor>, tokio::sync::mpsc::Receiver<Vec<u8>>) {
        let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
        (Arc::new(Auditor { policy, tx, dropped: AtomicU64::new(0) }), rx)
    }

    fn send(&self, line: Vec<u8>) {
        let dropped = self.tx.try_send(line).is_err();
        crate::metrics::global().audit_event(dropped);
        if dropped {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "audit log writer is behind: events dropped (apiserver_audit_error_total)");
            }
        }
    }
}

/// The writer thread: appends each line, flushing whenever the queue is empty.
fn write_events(file: std::fs::File, mut rx: tokio::sync::mpsc::Receiver<Vec<u8>>, path: &std::path::Path) {
    let mut w = std::io::BufWriter::with_capacity(256 * 1024, file);
    let mut failing = false;
    while let Some(line) = rx.blocking_recv() {
        let mut r = w.write_all(&line);
        while r.is_ok()
            && let Ok(line) = rx.try_recv()
        {
            r = w.write_all(&line);
        }
        let r = r.and_then(|()| w.flush());
        match r {
            Err(e) if !failing => {
                tracing::error!(error = %e, path = %path.display(), "writing the audit log failed");
                failing = true;
            }
            Err(_) => {}
            Ok(()) => failing = false,
        }
    }
    let _ = w.flush();
}

tokio::task_local! {
    static CURRENT: Arc<Context>;
}

/// What the layers and handlers inside an audited request learn about it.
#[derive(Debug, Default)]
struct Context {
    /// Keep the request body (level Request or more).
    wants_body: bool,
    data: Mutex<Learned>,
}

#[derive(Debug, Default)]
struct Learned {
    decision: Option<(bool, String)>,
    request_body: Option<Bytes>,
    annotations: BTreeMap<String, String>,
}

impl Context {
    fn learned(&self) -> std::sync::MutexGuard<'_, Learned> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Adds an annotation to the audit event of the current request (if it is audited).
pub(crate) fn annotate(key: impl Into<String>, value: impl Into<String>) {
    let _ = CURRENT.try_with(|c| {
        c.learned().annotations.insert(key.into(), value.into());
    });
}

/// Keeps the body of the current request for its event (if its level wants it).
pub(crate) fn record_request_body(body: &Bytes) {
    let _ = CURRENT.try_with(|c| {
        if c.wants_body {
            c.learned().request_body = Some(body.clone());
        }
    });
}

/// The authorizer, recording its first decision in the current request's event
/// (`authorization.k8s.io/decision` and `/reason`).
pub(crate) struct Recorded(pub Arc<dyn Authorizer>);

impl Authorizer for Recorded {
    fn authorize(&self, user: &User, attrs: &Attributes) -> Decision {
        let d = self.0.authorize(user, attrs);
        let _ = CURRENT.try_with(|c| {
            let mut l = c.learned();
            if l.decision.is_none() {
                l.decision = Some(match &d {
                    Decision::Allow => (true, String::new()),
                    Decision::Deny(reason) => (false, reason.clone()),
                });
            }
        });
        d
    }
}

/// The user as an event shows it.
#[derive(Clone, Debug, Serialize)]
struct UserInfo {
    username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    groups: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extra: BTreeMap<String, Vec<String>>,
}

impl From<&User> for UserInfo {
    fn from(u: &User) -> Self {
        UserInfo { username: u.name.clone(), uid: u.uid.clone(), groups: u.groups.clone(), extra: u.extra.clone() }
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ObjectRef {
    resource: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    api_group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    subresource: String,
}

/// What every event of one request says.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Request0 {
    #[serde(rename = "auditID")]
    audit_id: String,
    #[serde(rename = "requestURI")]
    request_uri: String,
    verb: String,
    user: UserInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    impersonated_user: Option<UserInfo>,
    #[serde(rename = "sourceIPs", skip_serializing_if = "Vec::is_empty")]
    source_ips: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    user_agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    object_ref: Option<ObjectRef>,
}

/// One event (a line of the log).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    kind: &'static str,
    api_version: &'static str,
    level: Level,
    stage: Stage,
    #[serde(flatten)]
    request: &'a Request0,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_status: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_object: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_object: Option<&'a Value>,
    request_received_timestamp: &'a str,
    stage_timestamp: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}

fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Kubernetes' source IPs: X-Forwarded-For, X-Real-Ip, then the connection's peer.
fn source_ips(headers: &HeaderMap, peer: Option<std::net::IpAddr>) -> Vec<String> {
    let mut ips: Vec<String> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| s.parse::<std::net::IpAddr>().is_ok())
        .map(str::to_string)
        .collect();
    for ip in headers.get("x-real-ip").and_then(|v| v.to_str().ok()).map(str::trim).into_iter().chain(peer.map(|p| p.to_string()).as_deref()) {
        if ip.parse::<std::net::IpAddr>().is_ok() && !ips.iter().any(|x| x == ip) {
            ips.push(ip.to_string());
        }
    }
    ips
}

/// A request or response body as the event shows it: the decoded object, if it decodes.
fn decode(content_type: &str, body: &[u8], omit_managed_fields: bool) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    let base = content_type.split(';').next().unwrap_or("").trim();
    let mut v = match base {
        super::protobuf::CONTENT_TYPE => super::protobuf::decode(body).ok()?,
        "application/yaml" | "application/apply-patch+yaml" => serde_yaml::from_slice(body).ok()?,
        _ => serde_json::from_slice(body).ok()?,
    };
    if omit_managed_fields {
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("managedFields");
        }
        if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
            for i in items {
                if let Some(m) = i.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("managedFields");
                }
            }
        }
    }
    Some(v)
}

/// `responseStatus`: the code, and for a failure the Status' status, reason and message.
fn response_status(code: StatusCode, body: Option<&[u8]>) -> Value {
    let mut s = serde_json::json!({"metadata": {}, "code": code.as_u16()});
    if code.as_u16() >= 400
        && let Some(status) = body.and_then(|b| serde_json::from_slice::<Value>(b).ok()).filter(|v| v["kind"] == "Status")
    {
        for k in ["status", "reason", "message"] {
            if let Some(v) = status.get(k).filter(|v| !v.is_null()) {
                s[k] = v.clone();
            }
        }
    }
    s
}

/// The writer of one request's events.
struct Emitter {
    auditor: Arc<Auditor>,
    request: Request0,
    level: Level,
    received: String,
}

impl Emitter {
    fn emit(&self, stage: Stage, status: Option<&Value>, request_object: Option<&Value>, response_object: Option<&Value>, annotations: &BTreeMap<String, String>) {
        let e = Event {
            kind: "Event",
            api_version: "audit.k8s.io/v1",
            level: self.level,
            stage,
            request: &self.request,
            response_status: status,
            request_object,
            response_object,
            request_received_timestamp: &self.received,
            stage_timestamp: timestamp(chrono::Utc::now()),
            annotations,
        };
        let mut line = Vec::with_capacity(1024);
        match serde_json::to_writer(&mut line, &e) {
            Ok(()) => {
                line.push(b'\n');
                self.auditor.send(line);
            }
            Err(e) => tracing::warn!(error = %e, "an audit event could not be written"),
        }
    }
}

/// Middleware, right after authentication: writes the request's audit events.
pub(crate) async fn audit(State(auditor): State<Arc<Auditor>>, req: Request, next: Next) -> Response {
    let received = chrono::Utc::now();
    let info = super::http::request_info(req.method(), req.uri().path(), req.uri().query());
    let who = req.extensions().get::<User>();
    let (user, impersonated) = match (req.extensions().get::<Impersonator>(), who) {
        (Some(i), Some(u)) => (Some(&i.0), Some(u)),
        (_, u) => (u, None),
    };
    let verdict = auditor.policy.evaluate(user, &info.attributes);
    if verdict.level == Level::None {
        return next.run(req).await;
    }
    let audit_id = req
        .headers()
        .get("audit-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64)
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
    let a = &info.attributes;
    let object_ref = a.resource_request.then(|| ObjectRef {
        resource: a.resource.clone(),
        namespace: a.namespace.clone(),
        name: a.name.clone(),
        api_group: a.group.clone(),
        api_version: info.api_version.to_string(),
        subresource: a.subresource.clone(),
    });
    let request = Request0 {
        audit_id,
        request_uri: req.uri().path_and_query().map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string()),
        verb: a.verb.clone(),
        user: user.map_or(UserInfo { username: String::new(), uid: String::new(), groups: vec![], extra: BTreeMap::new() }, UserInfo::from),
        impersonated_user: impersonated.map(UserInfo::from),
        source_ips: source_ips(req.headers(), req.extensions().get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip())),
        user_agent: req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string(),
        object_ref,
    };
    let request_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let em = Emitter { auditor, request, level: verdict.level, received: timestamp(received) };
    if verdict.logs(Stage::RequestReceived) {
        em.emit(Stage::RequestReceived, None, None, None, &BTreeMap::new());
    }
    let ctx = Arc::new(Context { wants_body: verdict.level >= Level::Request, data: Mutex::default() });
    let resp = CURRENT.scope(ctx.clone(), next.run(req)).await;
    let learned = std::mem::take(&mut *ctx.learned());
    let mut annotations = learned.annotations;
    if let Some((allowed, reason)) = learned.decision {
        annotations.insert("authorization.k8s.io/decision".into(), if allowed { "allow" } else { "forbid" }.into());
        if !reason.is_empty() {
            annotations.insert("authorization.k8s.io/reason".into(), reason);
        }
    }
    let request_object = learned.request_body.and_then(|b| decode(&request_type, &b, verdict.omit_managed_fields));
    let (mut parts, body) = resp.into_parts();
    if let Ok(v) = HeaderValue::from_str(&em.request.audit_id) {
        parts.headers.insert("audit-id", v);
    }
    let code = parts.status;
    if info.long_running {
        let status = response_status(code, None);
        if verdict.logs(Stage::ResponseStarted) {
            em.emit(Stage::ResponseStarted, Some(&status), request_object.as_ref(), None, &annotations);
        }
        if !verdict.logs(Stage::ResponseComplete) {
            return Response::from_parts(parts, body);
        }
        if code == StatusCode::SWITCHING_PROTOCOLS {
            em.emit(Stage::ResponseComplete, Some(&status), request_object.as_ref(), None, &annotations);
            return Response::from_parts(parts, body);
        }
        let complete = move || em.emit(Stage::ResponseComplete, Some(&status), request_object.as_ref(), None, &annotations);
        let body = Body::from_stream(OnEnd { inner: body.into_data_stream(), on_end: Some(Box::new(complete)) });
        return Response::from_parts(parts, body);
    }
    if !verdict.logs(Stage::ResponseComplete) {
        return Response::from_parts(parts, body);
    }
    let is_json = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("application/json"));
    let wants_response = code.as_u16() >= 400 || verdict.level == Level::RequestResponse;
    let size = axum::body::HttpBody::size_hint(&body).exact();
    let (body, bytes) = if is_json && wants_response && size.is_some_and(|n| n <= MAX_LOGGED_RESPONSE) {
        match axum::body::to_bytes(body, usize::MAX).await {
            Ok(b) => (Body::from(b.clone()), Some(b)),
            Err(_) => (Body::empty(), None),
        }
    } else {
        (body, None)
    };
    let status = response_status(code, bytes.as_deref());
    let response_object = (verdict.level == Level::RequestResponse).then(|| bytes.as_deref().and_then(|b| decode("application/json", b, verdict.omit_managed_fields))).flatten();
    em.emit(Stage::ResponseComplete, Some(&status), request_object.as_ref(), response_object.as_ref(), &annotations);
    Response::from_parts(parts, body)
}

/// A response stream that runs `on_end` once it ends or is dropped.
struct OnEnd<S> {
    inner: S,
    on_end: Option<Box<dyn FnOnce() + Send>>,
}

impl<S: futures::Stream + Unpin> futures::Stream for OnEnd<S> {
    type Item = S::Item;
    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<S::Item>> {
        std::pin::Pin::new(&mut self.inner).poll_next(cx)
    }
}

impl<S> Drop for OnEnd<S> {
    fn drop(&mut self) {
        if let Some(f) = self.on_end.take() {
            f();
        }
    }
}

#[cfg(test)]
mod tests;
