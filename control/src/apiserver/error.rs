//! API errors as Kubernetes `Status` objects. Every failure the API server returns goes
//! through [`ApiError`]'s `IntoResponse`, so kubectl prints `Error from server (Reason): …`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::resources::ResourceInfo;
use crate::store::StoreError;

/// One entry of `details.causes`.
#[derive(Debug, Clone)]
pub(crate) struct Cause {
    pub reason: String,
    pub message: String,
    pub field: String,
}

/// A Kubernetes Status failure.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub name: Option<String>,
    pub group: Option<String>,
    pub kind: Option<String>,
    pub causes: Vec<Cause>,
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError { code, reason, message: message.into(), name: None, group: None, kind: None, causes: vec![], retry_after: None }
    }

    fn about(mut self, info: &ResourceInfo, name: &str) -> Self {
        self.name = Some(name.to_string());
        if !info.group.is_empty() {
            self.group = Some(info.group.to_string());
        }
        self.kind = Some(info.plural.to_string());
        self
    }

    pub(crate) fn not_found(info: &ResourceInfo, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{} \"{}\" not found", info.qualified_plural(), name)).about(info, name)
    }

    pub(crate) fn already_exists(info: &ResourceInfo, name: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{} \"{}\" already exists", info.qualified_plural(), name)).about(info, name)
    }

    pub(crate) fn conflict(info: &ResourceInfo, name: &str, why: &str) -> Self {
        Self::new(409, "Conflict", format!("Operation cannot be fulfilled on {} \"{}\": {}", info.qualified_plural(), name, why))
            .about(info, name)
    }

    pub(crate) fn invalid(info: &ResourceInfo, name: &str, message: String, causes: Vec<Cause>) -> Self {
        let mut e = Self::new(422, "Invalid", message).about(info, name);
        e.kind = Some(info.kind.to_string());
        e.causes = causes;
        e
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    pub(crate) fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub(crate) fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type})"))
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", format!("Internal error occurred: {}", message.into()))
    }

    pub(crate) fn page_not_found() -> Self {
        Self::new(404, "NotFound", "the server could not find the requested resource")
    }

    pub(crate) fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// The object changed or went away since it was read (404, 409): a controller's next
    /// pass plans from what is stored then, so the error needs no handling of its own.
    pub(crate) fn is_transient(&self) -> bool {
        self.code == 404 || self.code == 409
    }

    /// Maps a store failure for the object `name` of `info`.
    pub(crate) fn from_store(e: StoreError, info: &ResourceInfo, name: &str) -> Self {
        match e {
            StoreError::NotFound => Self::not_found(info, name),
            StoreError::AlreadyExists => Self::already_exists(info, name),
            StoreError::Conflict => Self::conflict(info, name, &e.to_string()),
            StoreError::UidMismatch { .. } => Self::conflict(info, name, &e.to_string()),
            StoreError::NotLeader { .. } => {
                let mut e = Self::new(503, "ServiceUnavailable", e.to_string());
                e.retry_after = Some(1);
                e
            }
            StoreError::Io(_) | StoreError::Unavailable(_) | StoreError::Rejected(_) | StoreError::Encryption(_) => {
                tracing::error!(error = %e, "store failure");
                let mut e = Self::new(503, "ServiceUnavailable", "the store is unavailable; try again");
                e.retry_after = Some(1);
                e
            }
        }
    }

    /// The Status object.
    pub(crate) fn status(&self) -> Value {
        let mut details = serde_json::Map::new();
        if let Some(n) = &self.name {
            details.insert("name".into(), json!(n));
        }
        if let Some(g) = &self.group {
            details.insert("group".into(), json!(g));
        }
        if let Some(k) = &self.kind {
            details.insert("kind".into(), json!(k));
        }
        if !self.causes.is_empty() {
            details.insert(
                "causes".into(),
                Value::Array(
                    self.causes
                        .iter()
                        .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                        .collect(),
                ),
            );
        }
        if let Some(r) = self.retry_after {
            details.insert("retryAfterSeconds".into(), json!(r));
        }
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if !details.is_empty() {
            s["details"] = Value::Object(details);
        }
        s
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (code, [(header::CONTENT_TYPE, "application/json")], self.status().to_string()).into_response();
        if let Some(r) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(r));
        }
        resp
    }
}
