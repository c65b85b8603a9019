//! Authentication (bearer tokens) and the authorization hook.
//!
//! Authorization plugs in through [`Authorizer`]: every request is checked with its
//! attributes before it reaches a handler. The default allows the authenticated admin
//! everything; RBAC (a later issue) implements the trait.

/// Who is asking.
#[derive(Clone, Debug)]
#[allow(dead_code, reason = "read by authorizers; the allow-all one reads nothing")]
pub(crate) struct User {
    pub name: String,
    pub groups: Vec<String>,
}

/// What a request wants to do, as Kubernetes' authorizers see it.
#[derive(Clone, Debug, Default)]
#[allow(dead_code, reason = "read by authorizers; the allow-all one reads nothing")]
pub(crate) struct Attributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// For non-resource requests (/version, /healthz…).
    pub path: String,
}

#[allow(dead_code, reason = "Deny comes with RBAC")]
pub(crate) enum Decision {
    Allow,
    Deny(String),
}

/// The authorization hook.
pub(crate) trait Authorizer: Send + Sync {
    fn authorize(&self, user: &User, attrs: &Attributes) -> Decision;
}

/// Allows every authenticated user everything (single admin today).
pub(crate) struct AllowAuthenticated;

impl Authorizer for AllowAuthenticated {
    fn authorize(&self, _user: &User, _attrs: &Attributes) -> Decision {
        Decision::Allow
    }
}

/// Bearer-token authentication.
pub(crate) struct Authenticator {
    admin_token: String,
}

impl Authenticator {
    pub(crate) fn new(admin_token: String) -> Self {
        Authenticator { admin_token }
    }

    /// The admin token (the API server presents it to nodes).
    pub(crate) fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The user a request's `Authorization` header identifies, if any.
    pub(crate) fn authenticate(&self, header: Option<&str>) -> Option<User> {
        let h = header?;
        let (scheme, token) = h.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let token = token.trim();
        // Constant-time comparison: the token is a secret.
        let a = token.as_bytes();
        let b = self.admin_token.as_bytes();
        let mut diff = u8::from(a.len() != b.len());
        for (x, y) in a.iter().zip(b.iter().cycle()) {
            diff |= x ^ y;
        }
        if diff != 0 || b.is_empty() {
            return None;
        }
        Some(User { name: "flotilla-admin".into(), groups: vec!["system:masters".into(), "system:authenticated".into()] })
    }
}
