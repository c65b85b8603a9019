//! Authentication and the authorization hook.
//!
//! Who is asking, in the order kube-apiserver's authenticators try:
//! - an x509 client certificate signed by the cluster CA (verified by the TLS acceptor:
//!   CN is the user, each O a group), see [`ClientCert`];
//! - a bearer token: the admin token (group system:masters), or a ServiceAccount token
//!   (`tokens.rs`), accepted while its ServiceAccount (and the pod or Secret it is bound
//!   to) exists with the uid it names. A token that is presented but not valid is a 401
//!   even when a certificate is also presented, as in Kubernetes.
//! - then impersonation (`Impersonate-User`, `-Group`, `-Uid`, `-Extra-*` headers), for a
//!   user the authorizer lets `impersonate` each of them.
//!
//! [`authenticate`] runs first on every request and leaves the [`User`] in the request's
//! extensions; handlers that need one answer 401 without it. Every request is then
//! checked with its [`Attributes`] by the [`Authorizer`] (RBAC) before a handler runs.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use super::error::ApiError;
use super::tokens::{self, Signer};
use super::{App, resources, service};
use crate::store::Store;

/// Who is asking.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The superuser group: allowed everything, as in Kubernetes.
pub(crate) const MASTERS: &str = "system:masters";
pub(crate) const AUTHENTICATED: &str = "system:authenticated";

impl User {
    /// The holder of the admin token.
    pub(crate) fn admin() -> User {
        User { name: "flotilla-admin".into(), groups: vec![MASTERS.into(), AUTHENTICATED.into()], ..User::default() }
    }

    pub(crate) fn in_group(&self, g: &str) -> bool {
        self.groups.iter().any(|x| x == g)
    }

    /// The user of a ServiceAccount.
    pub(crate) fn service_account(ns: &str, name: &str, uid: &str) -> User {
        User {
            name: format!("system:serviceaccount:{ns}:{name}"),
            uid: uid.to_string(),
            groups: vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{ns}"), AUTHENTICATED.into()],
            extra: BTreeMap::new(),
        }
    }

    /// The user of a client certificate: CN and O.
    pub(crate) fn from_certificate(cn: &str, orgs: &[String]) -> User {
        let mut groups = orgs.to_vec();
        groups.push(AUTHENTICATED.into());
        User { name: cn.to_string(), groups, ..User::default() }
    }
}

/// The user of the verified client certificate a connection presented, set on each of its
/// requests by the TLS acceptor.
#[derive(Clone, Debug)]
pub(crate) struct ClientCert(pub User);

/// Reads the user of a DER client certificate (already verified against the CA).
pub(crate) fn certificate_user(der: &[u8]) -> Option<User> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let cn = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    if cn.is_empty() {
        return None;
    }
    let orgs: Vec<String> = subject.iter_organization().filter_map(|o| o.as_str().ok().map(str::to_string)).collect();
    Some(User::from_certificate(&cn, &orgs))
}

/// What a request wants to do, as Kubernetes' authorizers see it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Attributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// For non-resource requests (/version, /healthz…).
    pub path: String,
    /// A request for a resource (otherwise for `path`).
    pub resource_request: bool,
}

impl Attributes {
    pub(crate) fn resource(verb: &str, group: &str, resource: &str, subresource: &str, namespace: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
            path: String::new(),
            resource_request: true,
        }
    }

    pub(crate) fn non_resource(verb: &str, path: &str) -> Attributes {
        Attributes { verb: verb.into(), path: path.into(), ..Attributes::default() }
    }
}

#[derive(Debug, PartialEq)]
pub(crate) enum Decision {
    Allow,
    /// Denied, with the authorizer's reason (often empty, as RBAC's).
    Deny(String),
}

/// The authorization hook.
pub(crate) trait Authorizer: Send + Sync {
    fn authorize(&self, user: &User, attrs: &Attributes) -> Decision;
}

/// Kubernetes' wording of a refusal (apiserver's forbiddenMessage and NewForbidden):
/// `pods "p" is forbidden: User "u" cannot get resource "pods" in API group "" in the
/// namespace "ns"`, `... at the cluster scope`, `forbidden: User "u" cannot get path "/x"`.
pub(crate) fn forbidden(user: &User, a: &Attributes, reason: &str) -> ApiError {
    let suffix = if reason.is_empty() { String::new() } else { format!(": {reason}") };
    if !a.resource_request {
        return ApiError::forbidden(format!("forbidden: User \"{}\" cannot {} path \"{}\"{suffix}", user.name, a.verb, a.path));
    }
    let resource = if a.subresource.is_empty() { a.resource.clone() } else { format!("{}/{}", a.resource, a.subresource) };
    let scope = if a.namespace.is_empty() { "at the cluster scope".to_string() } else { format!("in the namespace \"{}\"", a.namespace) };
    let why = format!("User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}{suffix}", user.name, a.verb, a.group);
    let qualified = if a.group.is_empty() { a.resource.clone() } else { format!("{}.{}", a.resource, a.group) };
    let message = if a.name.is_empty() { format!("{qualified} is forbidden: {why}") } else { format!("{qualified} \"{}\" is forbidden: {why}", a.name) };
    let mut e = ApiError::forbidden(message);
    e.name = Some(a.name.clone());
    e.group = Some(a.group.clone());
    e.kind = Some(a.resource.clone());
    e
}

/// Authorizes `a` for `user` or returns Kubernetes' Forbidden error.
pub(crate) fn check(authz: &dyn Authorizer, user: &User, a: &Attributes) -> Result<(), ApiError> {
    match authz.authorize(user, a) {
        Decision::Allow => Ok(()),
        Decision::Deny(reason) => Err(forbidden(user, a, &reason)),
    }
}

/// Bearer-token and client-certificate authentication.
pub(crate) struct Authenticator {
    admin_token: String,
    signer: Arc<Signer>,
    store: Store,
    /// Claims of tokens whose signature was verified, by token (an ECDSA verification
    /// costs more than the rest of a small request's authorization). Time and the objects
    /// a token names are still checked on every request.
    verified: std::sync::RwLock<std::collections::HashMap<String, serde_json::Value>>,
}

/// Most tokens whose verified claims are kept (the cache is emptied when full).
const VERIFIED_CACHE: usize = 4096;

/// Compares a presented secret with the expected one in time independent of where they
/// differ; an empty expected secret matches nothing.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (x, y) in a.iter().zip(b.iter().cycle()) {
        diff |= x ^ y;
    }
    diff == 0 && !b.is_empty()
}

/// The token of an `Authorization` header: `Bearer T`, or `Basic` with T as the password
/// (what registry clients send).
pub(crate) fn presented_token(headers: &HeaderMap) -> Option<String> {
    use base64::Engine as _;
    let h = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = h.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD.decode(rest).ok()?;
        let s = String::from_utf8(raw).ok()?;
        return s.split_once(':').map(|(_, p)| p.to_string());
    }
    None
}

impl Authenticator {
    pub(crate) fn new(admin_token: String, signer: Arc<Signer>, store: Store) -> Self {
        Authenticator { admin_token, signer, store, verified: std::sync::RwLock::default() }
    }

    /// The admin token (the API server presents it to nodes).
    pub(crate) fn admin_token(&self) -> &str {
        &self.admin_token
    }

    pub(crate) fn signer(&self) -> &Signer {
        &self.signer
    }

    /// The user a request's credentials identify: `Ok(None)` when it presents none,
    /// `Err` when it presents a token that is not valid.
    pub(crate) fn authenticate(&self, headers: &HeaderMap, cert: Option<&ClientCert>, now: i64) -> Result<Option<User>, ()> {
        if let Some(token) = presented_token(headers) {
            return self.token_user(&token, now).map(Some).ok_or(());
        }
        Ok(cert.map(|c| c.0.clone()))
    }

    /// The user a bearer token identifies, if it is valid at `now`.
    pub(crate) fn token_user(&self, token: &str, now: i64) -> Option<User> {
        if constant_time_eq(token.as_bytes(), self.admin_token.as_bytes()) {
            return Some(User::admin());
        }
        if !tokens::looks_like_jwt(token) {
            return None;
        }
        let cached = self.verified.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(token).cloned();
        let claims = match cached {
            Some(c) => c,
            None => {
                let c = self.signer.verify(token)?;
                let mut cache = self.verified.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                if cache.len() >= VERIFIED_CACHE {
                    cache.clear();
                }
                cache.insert(token.to_string(), c.clone());
                c
            }
        };
        let c = match tokens::check_claims(&claims, now) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "ServiceAccount token refused");
                return None;
            }
        };
        let get = |plural: &str, name: &str| {
            let info = resources::find("", "v1", plural).expect("core resource served");
            self.store.get(&service::key(info, Some(&c.namespace), name))
        };
        let live_with_uid = |plural: &str, name: &str, uid: &str| {
            get(plural, name).filter(|o| o.value["metadata"]["uid"] == uid && o.value["metadata"]["deletionTimestamp"].is_null())
        };
        live_with_uid("serviceaccounts", &c.service_account, &c.service_account_uid)?;
        let mut user = User::service_account(&c.namespace, &c.service_account, &c.service_account_uid);
        if let Some(secret) = &c.secret {
            // A legacy token is valid while its Secret holds it.
            let s = get("secrets", secret)?;
            use base64::Engine as _;
            let held = s.value["data"]["token"].as_str().and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
            if held.as_deref() != Some(token.as_bytes()) {
                return None;
            }
        }
        if let Some(b) = &c.bound {
            let plural = if b.kind == "Pod" { "pods" } else { "secrets" };
            // A pod being deleted keeps its token (its preStop hooks may need it).
            get(plural, &b.name).filter(|o| o.value["metadata"]["uid"] == b.uid.as_str())?;
            if b.kind == "Pod" {
                user.extra.insert("authentication.kubernetes.io/pod-name".into(), vec![b.name.clone()]);
                user.extra.insert("authentication.kubernetes.io/pod-uid".into(), vec![b.uid.clone()]);
            }
            if let Some((node, node_uid)) = &b.node {
                user.extra.insert("authentication.kubernetes.io/node-name".into(), vec![node.clone()]);
                user.extra.insert("authentication.kubernetes.io/node-uid".into(), vec![node_uid.clone()]);
            }
        }
        if let Some(jti) = &c.jti {
            user.extra.insert("authentication.kubernetes.io/credential-id".into(), vec![format!("JTI={jti}")]);
        }
        Some(user)
    }
}

const IMPERSONATE_USER: &str = "impersonate-user";
const IMPERSONATE_GROUP: &str = "impersonate-group";
const IMPERSONATE_UID: &str = "impersonate-uid";
const IMPERSONATE_EXTRA: &str = "impersonate-extra-";

/// Applies impersonation headers: the user `who` becomes, once the authorizer lets `who`
/// impersonate each part (Kubernetes' impersonation filter). Without headers, `who`.
pub(crate) fn impersonate(authz: &dyn Authorizer, who: User, headers: &HeaderMap) -> Result<User, ApiError> {
    let values = |name: &str| -> Vec<String> { headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect() };
    let user = values(IMPERSONATE_USER).into_iter().next();
    let groups = values(IMPERSONATE_GROUP);
    let uid = values(IMPERSONATE_UID).into_iter().next();
    let extras: Vec<(String, Vec<String>)> = headers
        .keys()
        .filter_map(|k| k.as_str().strip_prefix(IMPERSONATE_EXTRA).map(|key| (k.as_str().to_string(), key)))
        .map(|(header, key)| {
            let key = form_urlencoded::parse(format!("k={key}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default();
            (key, values(&header))
        })
        .collect();
    let Some(name) = user else {
        if groups.is_empty() && uid.is_none() && extras.is_empty() {
            return Ok(who);
        }
        return Err(ApiError::new(
            500,
            "InternalError",
            "Internal error occurred: requested [Impersonate-Group/Uid/Extra] without impersonating a user",
        ));
    };
    let allowed = |a: Attributes| check(authz, &who, &a);
    if let Some(sa) = name.strip_prefix("system:serviceaccount:") {
        let (ns, sa) = sa.split_once(':').unwrap_or(("", sa));
        allowed(Attributes::resource("impersonate", "", "serviceaccounts", "", ns, sa))?;
    } else {
        allowed(Attributes::resource("impersonate", "", "users", "", "", &name))?;
    }
    for g in &groups {
        allowed(Attributes::resource("impersonate", "", "groups", "", "", g))?;
    }
    if let Some(u) = &uid {
        allowed(Attributes::resource("impersonate", "authentication.k8s.io", "uids", "", "", u))?;
    }
    for (key, vals) in &extras {
        for v in vals {
            allowed(Attributes::resource("impersonate", "authentication.k8s.io", "userextras", key, "", v))?;
        }
    }
    let mut out = User { name: name.clone(), uid: uid.unwrap_or_default(), groups, extra: extras.into_iter().collect() };
    if let Some(sa) = name.strip_prefix("system:serviceaccount:")
        && let Some((ns, _)) = sa.split_once(':')
        && out.groups.is_empty()
    {
        out.groups = vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{ns}")];
    }
    if name != "system:anonymous" && !out.in_group(AUTHENTICATED) {
        out.groups.push(AUTHENTICATED.into());
    }
    Ok(out)
}

/// Paths whose own handlers check credentials that are not API users (the join secret),
/// or that anyone may read.
fn skips_authentication(path: &str) -> bool {
    matches!(path, "/flotilla/v1/join" | "/flotilla/v1/cacerts")
}

/// Middleware, outermost on the API port: authenticates the request (and applies
/// impersonation), leaving the [`User`] in its extensions; a token that is not valid is
/// a 401 here.
pub(crate) async fn authenticate(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    if skips_authentication(req.uri().path()) {
        return next.run(req).await;
    }
    let cert = req.extensions().get::<ClientCert>().cloned();
    let now = app.api.clock.now().timestamp();
    let user = match app.authn.authenticate(req.headers(), cert.as_ref(), now) {
        Ok(Some(u)) => u,
        Ok(None) => return next.run(req).await,
        Err(()) => return ApiError::new(401, "Unauthorized", "Unauthorized").into_response(),
    };
    let original = req.headers().contains_key(IMPERSONATE_USER).then(|| user.clone());
    match impersonate(app.authz.as_ref(), user, req.headers()) {
        Ok(u) => {
            if let Some(o) = original {
                req.extensions_mut().insert(Impersonator(o));
            }
            req.extensions_mut().insert(u);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// Who authenticated a request that impersonates another user (its [`User`] is the one
/// impersonated), for the audit log.
#[derive(Clone, Debug)]
pub(crate) struct Impersonator(pub User);

/// The authenticated user of a request, or 401.
pub(crate) fn user_of(extensions: &axum::http::Extensions) -> Result<User, ApiError> {
    extensions.get::<User>().cloned().ok_or_else(|| ApiError::new(401, "Unauthorized", "Unauthorized"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> User {
        User { name: name.into(), groups: groups.iter().map(|s| s.to_string()).collect(), ..User::default() }
    }

    #[test]
    fn forbidden_messages_are_worded_as_kubernetes_words_them() {
        let u = user("jane", &[]);
        let m = |a: Attributes| forbidden(&u, &a, "").message;
        assert_eq!(
            m(Attributes::resource("list", "", "pods", "", "ns", "")),
            "pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"ns\""
        );
        assert_eq!(
            m(Attributes::resource("get", "apps", "deployments", "", "ns", "web")),
            "deployments.apps \"web\" is forbidden: User \"jane\" cannot get resource \"deployments\" in API group \"apps\" in the namespace \"ns\""
        );
        assert_eq!(
            m(Attributes::resource("create", "", "pods", "exec", "ns", "p")),
            "pods \"p\" is forbidden: User \"jane\" cannot create resource \"pods/exec\" in API group \"\" in the namespace \"ns\""
        );
        assert_eq!(m(Attributes::resource("list", "", "nodes", "", "", "")), "nodes is forbidden: User \"jane\" cannot list resource \"nodes\" in API group \"\" at the cluster scope");
        assert_eq!(m(Attributes::non_resource("get", "/metrics")), "forbidden: User \"jane\" cannot get path \"/metrics\"");
        assert_eq!(forbidden(&u, &Attributes::non_resource("get", "/x"), "no RBAC policy matched").message, "forbidden: User \"jane\" cannot get path \"/x\": no RBAC policy matched");
    }

    /// Allows what a fixed list says.
    struct Allow(Vec<(&'static str, &'static str, &'static str)>);
    impl Authorizer for Allow {
        fn authorize(&self, _u: &User, a: &Attributes) -> Decision {
            if self.0.iter().any(|(v, r, n)| *v == a.verb && *r == a.resource && *n == a.name) { Decision::Allow } else { Decision::Deny(String::new()) }
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"), v.parse().expect("value"));
        }
        h
    }

    #[test]
    fn impersonation_needs_the_impersonate_verb_on_each_part() {
        let me = user("ops", &[AUTHENTICATED]);
        let authz = Allow(vec![("impersonate", "users", "jane"), ("impersonate", "groups", "devs"), ("impersonate", "serviceaccounts", "robot")]);
        assert_eq!(impersonate(&authz, me.clone(), &HeaderMap::new()).expect("no headers"), me);
        let got = impersonate(&authz, me.clone(), &headers(&[("Impersonate-User", "jane"), ("Impersonate-Group", "devs")])).expect("allowed");
        assert_eq!(got.name, "jane");
        assert_eq!(got.groups, vec!["devs".to_string(), AUTHENTICATED.to_string()]);
        let e = impersonate(&authz, me.clone(), &headers(&[("Impersonate-User", "jane"), ("Impersonate-Group", "system:masters")])).expect_err("group not allowed");
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "groups \"system:masters\" is forbidden: User \"ops\" cannot impersonate resource \"groups\" in API group \"\" at the cluster scope"
        );
        let e = impersonate(&authz, me.clone(), &headers(&[("Impersonate-User", "bob")])).expect_err("user not allowed");
        assert_eq!(e.code, 403);
        let sa = impersonate(&authz, me.clone(), &headers(&[("Impersonate-User", "system:serviceaccount:team:robot")])).expect("sa allowed");
        assert_eq!(sa.groups, vec!["system:serviceaccounts".to_string(), "system:serviceaccounts:team".to_string(), AUTHENTICATED.to_string()]);
        assert_eq!(impersonate(&authz, me, &headers(&[("Impersonate-Group", "devs")])).expect_err("group alone").code, 500);
    }

    #[test]
    fn tokens_are_read_from_bearer_and_basic_headers() {
        assert_eq!(presented_token(&headers(&[("Authorization", "Bearer abc")])).as_deref(), Some("abc"));
        // "u:tok"
        assert_eq!(presented_token(&headers(&[("Authorization", "Basic dTp0b2s=")])).as_deref(), Some("tok"));
        assert_eq!(presented_token(&HeaderMap::new()), None);
    }

    #[test]
    fn a_certificate_names_the_user_and_its_organizations_the_groups() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name.push(rcgen::DnType::CommonName, "alice");
        p.distinguished_name.push(rcgen::DnType::OrganizationName, "devs");
        let cert = p.self_signed(&key).expect("cert");
        let u = certificate_user(cert.der()).expect("user");
        assert_eq!(u.name, "alice");
        assert_eq!(u.groups, vec!["devs".to_string(), AUTHENTICATED.to_string()]);
    }
}
