//! RBAC: Kubernetes' role-based access control over Role, ClusterRole, RoleBinding and
//! ClusterRoleBinding objects, as an [`Authorizer`], plus what the API needs around it:
//! the rules a user holds (SelfSubjectRulesReview), escalation prevention on writes of
//! RBAC objects ([`Rbac::check_escalation`]) and the bootstrap policy ([`bootstrap`]).
//!
//! Decisions are Kubernetes' (plugin/pkg/auth/authorizer/rbac):
//! - members of `system:masters` are allowed everything without looking at any rule
//!   (kube-apiserver's privileged-group authorizer, ahead of RBAC);
//! - otherwise a request is allowed when a rule of a role bound to the user allows it:
//!   ClusterRoleBindings anywhere, RoleBindings (of a Role, or of a ClusterRole, whose
//!   rules then apply in the binding's namespace only) in the request's namespace;
//! - a denial's reason is empty, as Kubernetes' (its Forbidden message then has no
//!   suffix), unless a binding that applies to the user refers to a role that does not
//!   exist: then `RBAC: clusterrole.rbac.authorization.k8s.io "x" not found` (several:
//!   `RBAC: [a, b]`), which Kubernetes appends to the Forbidden message.
//!
//! Freshness: decisions reflect every RBAC write applied before the request. The index
//! ([`index::Index`]) is rebuilt synchronously on the first request that sees the four
//! RBAC collections changed: a request that finds the store revision unchanged since the
//! last check pays one atomic load; one that finds it moved pays a scan of the RBAC
//! objects' revisions (no copies, no allocation) and a rebuild only if they changed.

mod bootstrap;
mod escalation;
mod index;
mod rule;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::{Value, json};

#[cfg(test)]
pub(crate) use bootstrap::bootstrap_objects;
pub(crate) use bootstrap::ensure_bootstrap;
pub(crate) use escalation::privileged;
use index::{Fingerprint, Index, aggregate};
pub(crate) use rule::PolicyRule;
use rule::{Request, go_quote};

use super::auth::{Attributes, Authorizer, Decision, User};
use crate::store::Store;

/// The four collections the index is built from, in [`Fingerprint`] order.
const PREFIXES: [&str; 4] = [
    "rbac.authorization.k8s.io/roles/",
    "rbac.authorization.k8s.io/rolebindings/",
    "rbac.authorization.k8s.io/clusterroles/",
    "rbac.authorization.k8s.io/clusterrolebindings/",
];

/// The RBAC authorizer. Cheap to share (`Arc<Rbac>`); every method is synchronous.
pub(crate) struct Rbac {
    /// None: a fixed index (tests).
    store: Option<Store>,
    index: RwLock<Arc<Index>>,
    /// A store revision at which the index was found current.
    checked: AtomicU64,
    rebuilding: Mutex<()>,
}

/// Whether the request is for a resource (the API's URLs) rather than a path like
/// /healthz: Kubernetes' `IsResourceRequest`. Resource requests always name a resource.
fn request(attrs: &Attributes) -> Request<'_> {
    Request {
        resource_request: !attrs.resource.is_empty(),
        verb: &attrs.verb,
        group: &attrs.group,
        resource: &attrs.resource,
        subresource: &attrs.subresource,
        name: &attrs.name,
        path: &attrs.path,
    }
}

/// When each RBAC collection last changed (the store keeps it per resource: O(1), however
/// many objects there are and however busy the store is).
fn fingerprint(store: &Store) -> Fingerprint {
    PREFIXES.map(|p| (0, store.changed_at(p)))
}

fn build(store: &Store) -> Index {
    let fp = fingerprint(store);
    let lists = PREFIXES.map(|p| store.list(p, None, None, &|_| true).0);
    let values = lists.each_ref().map(|l| l.iter().map(|s| &s.value).collect::<Vec<&Value>>());
    Index::build(fp, &values[0], &values[1], &values[2], &values[3])
}

impl Rbac {
    /// The authorizer over the RBAC objects in `store`.
    pub(crate) fn new(store: Store) -> Rbac {
        // The revision first: the index holds at least what was stored at it.
        let rev = store.revision();
        let index = build(&store);
        Rbac { checked: AtomicU64::new(rev), store: Some(store), index: RwLock::new(Arc::new(index)), rebuilding: Mutex::new(()) }
    }

    /// The authorizer over fixed objects (of any kind; non-RBAC ones are ignored).
    #[cfg(test)]
    pub(crate) fn from_objects(objects: &[Value]) -> Rbac {
        Rbac { store: None, index: RwLock::new(Arc::new(Index::from_objects(objects))), checked: AtomicU64::new(0), rebuilding: Mutex::new(()) }
    }

    /// The current index, rebuilt first if the RBAC objects changed.
    fn index(&self) -> Arc<Index> {
        let current = self.index.read().expect("rbac index lock").clone();
        let Some(store) = &self.store else { return current };
        let rev = store.revision();
        if self.checked.load(Ordering::Acquire) == rev {
            return current;
        }
        let fp = fingerprint(store);
        if fp == current.fingerprint {
            self.checked.store(rev, Ordering::Release);
            return current;
        }
        let _one_rebuild = self.rebuilding.lock().expect("rbac rebuild lock");
        let latest = self.index.read().expect("rbac index lock").clone();
        if latest.fingerprint == fp {
            return latest;
        }
        let fresh = Arc::new(build(store));
        *self.index.write().expect("rbac index lock") = fresh.clone();
        // `rev` was read before the fingerprint the index holds (or an older one): a write
        // after it moves the revision on and is checked again.
        self.checked.store(rev, Ordering::Release);
        fresh
    }

    /// The decision with Kubernetes' reason: `RBAC: allowed by ClusterRoleBinding "b" of
    /// ClusterRole "r" to Group "g"` when allowed, as for Deny in [`Authorizer::authorize`]
    /// otherwise (SubjectAccessReview status.reason).
    pub(crate) fn review(&self, user: &User, attrs: &Attributes) -> (bool, String) {
        if privileged(user) {
            return (true, String::new());
        }
        let index = self.index();
        let req = request(attrs);
        if let Some(b) = index.allowing(&user.name, &user.groups, &attrs.namespace, &req) {
            let subject = b.subjects.iter().find(|s| s.applies_to(&user.name, &user.groups)).map(|s| s.describe()).unwrap_or_default();
            let name = if b.kind == "RoleBinding" { format!("{}/{}", b.name, b.namespace) } else { b.name.clone() };
            return (true, format!("RBAC: allowed by {} {} of {} {} to {}", b.kind, go_quote(&name), b.role_kind, go_quote(&b.role_name), subject));
        }
        (false, deny_reason(&index, user, &attrs.namespace))
    }

    /// The rules the user holds in `namespace` ("" for cluster-wide only), as
    /// SelfSubjectRulesReview's `resourceRules` and `nonResourceRules`, and whether the
    /// list is incomplete (never, for RBAC: Kubernetes' RBAC reports unresolvable role
    /// references as an evaluation error instead, see [`Rbac::rules_review_status`]).
    pub(crate) fn rules_for(&self, user: &User, namespace: &str) -> (Vec<Value>, Vec<Value>, bool) {
        let (rules, _) = self.index().rules_for(&user.name, &user.groups, namespace);
        let resource = rules
            .iter()
            .filter(|r| !r.resources.is_empty())
            .map(|r| json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources, "resourceNames": r.resource_names}))
            .map(drop_empty)
            .collect();
        let non_resource = rules
            .iter()
            .filter(|r| !r.non_resource_urls.is_empty())
            .map(|r| json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}))
            .collect();
        (resource, non_resource, false)
    }

    /// A SelfSubjectRulesReview's whole `status` for the user in `namespace`:
    /// `resourceRules`, `nonResourceRules`, `incomplete`, and `evaluationError` when a
    /// binding of the user's refers to a role that does not exist.
    pub(crate) fn rules_review_status(&self, user: &User, namespace: &str) -> Value {
        let (resource, non_resource, incomplete) = self.rules_for(user, namespace);
        let mut status = json!({"resourceRules": resource, "nonResourceRules": non_resource, "incomplete": incomplete});
        let (_, errors) = self.index().rules_for(&user.name, &user.groups, namespace);
        if !errors.is_empty() {
            status["evaluationError"] = json!(aggregate(errors.iter().map(|e| e.message(false))));
        }
        status
    }
}

/// ResourceRule's `apiGroups`, `resources` and `resourceNames` are omitted when empty.
fn drop_empty(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.retain(|k, v| k == "verbs" || v.as_array().is_none_or(|a| !a.is_empty()));
    }
    v
}

fn deny_reason(index: &Index, user: &User, namespace: &str) -> String {
    let (_, errors) = index.rules_for(&user.name, &user.groups, namespace);
    if errors.is_empty() { String::new() } else { format!("RBAC: {}", aggregate(errors.iter().map(|e| e.message(false)))) }
}

impl Authorizer for Rbac {
    /// Deny's reason is Kubernetes' RBAC reason: usually empty (see the module docs).
    fn authorize(&self, user: &User, attrs: &Attributes) -> Decision {
        if privileged(user) {
            return Decision::Allow;
        }
        let index = self.index();
        if index.allowing(&user.name, &user.groups, &attrs.namespace, &request(attrs)).is_some() {
            Decision::Allow
        } else {
            Decision::Deny(deny_reason(&index, user, &attrs.namespace))
        }
    }
}
