//! The review kinds, computed on create and never stored: access reviews
//! (authorization.k8s.io: SelfSubjectAccessReview for `kubectl auth can-i`,
//! SelfSubjectRulesReview for `can-i --list`, SubjectAccessReview and
//! LocalSubjectAccessReview for whoever may create them) and authentication reviews
//! (authentication.k8s.io: SelfSubjectReview for `kubectl auth whoami`, TokenReview).

use serde_json::{Value, json};

use super::App;
use super::auth::{Attributes, Decision, User};
use super::error::ApiError;

/// The attributes a review's spec asks about.
fn attributes(spec: &Value) -> Attributes {
    let ra = &spec["resourceAttributes"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    if ra.is_object() {
        Attributes::resource(&s(&ra["verb"]), &s(&ra["group"]), &s(&ra["resource"]), &s(&ra["subresource"]), &s(&ra["namespace"]), &s(&ra["name"]))
    } else {
        let nra = &spec["nonResourceAttributes"];
        Attributes::non_resource(&s(&nra["verb"]), &s(&nra["path"]))
    }
}

fn decide(app: &App, user: &User, spec: &Value) -> Value {
    match app.authz.authorize(user, &attributes(spec)) {
        Decision::Allow => json!({"allowed": true}),
        Decision::Deny(why) if why.is_empty() => json!({"allowed": false}),
        Decision::Deny(why) => json!({"allowed": false, "reason": why}),
    }
}

/// A SubjectAccessReview's decision with RBAC's reason ("RBAC: allowed by ..."), or the
/// Node authorizer's allowance.
fn decide_with_reason(app: &App, user: &User, spec: &Value) -> Value {
    let attrs = attributes(spec);
    let (mut allowed, mut reason) = app.rbac.review(user, &attrs);
    if !allowed && matches!(app.authz.authorize(user, &attrs), Decision::Allow) {
        // The Node authorizer allows it (Kubernetes' reason is empty then).
        (allowed, reason) = (true, String::new());
    }
    if reason.is_empty() { json!({"allowed": allowed}) } else { json!({"allowed": allowed, "reason": reason}) }
}

fn answer(mut review: Value, api_version: &str, kind: &str, status: Value) -> Value {
    review["apiVersion"] = json!(api_version);
    review["kind"] = json!(kind);
    if !review["metadata"].is_object() {
        review["metadata"] = json!({});
    }
    review["metadata"]["creationTimestamp"] = Value::Null;
    review["status"] = status;
    review
}

fn invalid(kind: &str, message: &str) -> ApiError {
    ApiError::new(422, "Invalid", format!("{kind}.authorization.k8s.io \"\" is invalid: {message}"))
}

/// Answers a review of `kind` created by `user` (in `namespace` for the local kinds).
pub(crate) fn create(app: &App, user: &User, kind: &str, namespace: Option<&str>, review: Value) -> Result<Value, ApiError> {
    let spec = review["spec"].clone();
    match kind {
        "SelfSubjectAccessReview" => {
            if !spec["resourceAttributes"].is_object() && !spec["nonResourceAttributes"].is_object() {
                return Err(invalid("selfsubjectaccessreviews", "spec.resourceAttributes: Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified"));
            }
            Ok(answer(review, "authorization.k8s.io/v1", kind, decide(app, user, &spec)))
        }
        "SubjectAccessReview" | "LocalSubjectAccessReview" => {
            if kind == "LocalSubjectAccessReview" && spec["resourceAttributes"]["namespace"].as_str() != namespace {
                return Err(invalid("localsubjectaccessreviews", "spec.resourceAttributes.namespace: Invalid value: must match metadata.namespace"));
            }
            let subject = User {
                name: spec["user"].as_str().unwrap_or("").to_string(),
                uid: spec["uid"].as_str().unwrap_or("").to_string(),
                groups: spec["groups"].as_array().map(|a| a.iter().filter_map(|g| g.as_str().map(str::to_string)).collect()).unwrap_or_default(),
                extra: serde_json::from_value(spec["extra"].clone()).unwrap_or_default(),
            };
            if subject.name.is_empty() && subject.groups.is_empty() {
                return Err(invalid("subjectaccessreviews", "spec.user: Invalid value: \"\": at least one of user or group must be specified"));
            }
            Ok(answer(review, "authorization.k8s.io/v1", kind, decide_with_reason(app, &subject, &spec)))
        }
        "SelfSubjectRulesReview" => {
            let ns = spec["namespace"].as_str().unwrap_or("");
            Ok(answer(review, "authorization.k8s.io/v1", kind, app.rbac.rules_review_status(user, ns)))
        }
        "SelfSubjectReview" => Ok(answer(review, "authentication.k8s.io/v1", kind, json!({"userInfo": user_info(user)}))),
        "TokenReview" => {
            let token = spec["token"].as_str().unwrap_or("");
            let audiences: Vec<String> = spec["audiences"].as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default();
            // Only the API's own audience is accepted (a token for another audience is not
            // this server's to vouch for).
            let asked_other = !audiences.is_empty() && !audiences.iter().any(|a| a == super::tokens::ISSUER);
            let now = app.api.clock.now().timestamp();
            let status = match app.authn.token_user(token, now) {
                Some(u) if !asked_other => json!({"authenticated": true, "user": user_info(&u), "audiences": [super::tokens::ISSUER]}),
                Some(_) => json!({"authenticated": false, "error": "token audiences do not match the requested audiences"}),
                None => json!({"authenticated": false, "error": "invalid bearer token"}),
            };
            Ok(answer(review, "authentication.k8s.io/v1", kind, status))
        }
        _ => Err(ApiError::method_not_allowed(format!("create is not supported for {kind}"))),
    }
}

/// Kubernetes' UserInfo of a user.
fn user_info(u: &User) -> Value {
    let mut v = json!({"username": u.name, "groups": u.groups});
    if !u.uid.is_empty() {
        v["uid"] = json!(u.uid);
    }
    if !u.extra.is_empty() {
        v["extra"] = json!(u.extra);
    }
    v
}

/// Whether `kind` is a review computed on create.
pub(crate) fn is_review(kind: &str) -> bool {
    matches!(kind, "SelfSubjectAccessReview" | "SubjectAccessReview" | "LocalSubjectAccessReview" | "SelfSubjectRulesReview" | "SelfSubjectReview" | "TokenReview")
}
