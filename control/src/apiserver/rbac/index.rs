//! The in-memory view of RBAC objects the authorizer reads: every binding with its role's
//! rules resolved, found by subject.
//!
//! Invariants: an [`Index`] is immutable once built and is built from one read of the four
//! RBAC collections; its [`Fingerprint`] is taken *before* that read, so an index is never
//! newer-looking than what it holds (a change racing a rebuild makes the next check
//! rebuild again, never miss it). Bindings keep the order of the store (by name), which is
//! the order rules are reported in.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::rule::{PolicyRule, Request};

pub(crate) const GROUP: &str = "rbac.authorization.k8s.io";

/// Per collection (roles, rolebindings, clusterroles, clusterrolebindings): a count (0 when
/// built from the store, which does not need it) and the revision of the collection's last
/// write (`Store::changed_at`; a delete is a write). Revisions only grow, so equal
/// fingerprints mean equal contents.
pub(crate) type Fingerprint = [(usize, u64); 4];

/// A role reference that does not resolve, reported as Kubernetes' authorizer reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Unresolved {
    Role(String),
    ClusterRole(String),
    Kind(String),
}

impl Unresolved {
    /// As the authorizer's listers word it (`clusterrole.rbac.authorization.k8s.io "x" not
    /// found`); `registry`: as the API's registry words it (`clusterroles…`).
    pub(crate) fn message(&self, registry: bool) -> String {
        let s = if registry { "s" } else { "" };
        match self {
            Unresolved::Role(n) => format!("role{s}.{GROUP} \"{n}\" not found"),
            Unresolved::ClusterRole(n) => format!("clusterrole{s}.{GROUP} \"{n}\" not found"),
            Unresolved::Kind(k) => format!("unsupported role reference kind: \"{k}\""),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Subject {
    pub kind: String,
    pub name: String,
    /// For ServiceAccounts: theirs, defaulted to a RoleBinding's own.
    pub namespace: String,
}

pub(crate) struct Binding {
    /// "RoleBinding" or "ClusterRoleBinding".
    pub kind: &'static str,
    pub name: String,
    pub namespace: String,
    pub role_kind: String,
    pub role_name: String,
    pub subjects: Vec<Subject>,
    pub rules: Result<Arc<[PolicyRule]>, Unresolved>,
}

/// The name a ServiceAccount authenticates as.
pub(crate) fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

impl Subject {
    /// Kubernetes' `appliesToUser`.
    pub(crate) fn applies_to(&self, user: &str, groups: &[String]) -> bool {
        match self.kind.as_str() {
            "User" => self.name == user,
            "Group" => groups.contains(&self.name),
            "ServiceAccount" => {
                !self.namespace.is_empty()
                    && user.strip_prefix("system:serviceaccount:").and_then(|r| r.split_once(':')) == Some((self.namespace.as_str(), self.name.as_str()))
            }
            _ => false,
        }
    }

    /// Kubernetes' `describeSubject`.
    pub(crate) fn describe(&self) -> String {
        match self.kind.as_str() {
            "ServiceAccount" => format!("{} \"{}/{}\"", self.kind, self.name, self.namespace),
            _ => format!("{} \"{}\"", self.kind, self.name),
        }
    }
}

/// Bindings of one scope (cluster-wide, or one namespace) and where each subject's are.
#[derive(Default)]
pub(crate) struct Bindings {
    pub list: Vec<Binding>,
    /// User names (ServiceAccounts as `system:serviceaccount:NS:NAME`) to bindings.
    by_user: HashMap<String, Vec<usize>>,
    by_group: HashMap<String, Vec<usize>>,
}

impl Bindings {
    fn push(&mut self, b: Binding) {
        let i = self.list.len();
        for s in &b.subjects {
            let (map, key) = match s.kind.as_str() {
                "User" => (&mut self.by_user, s.name.clone()),
                "Group" => (&mut self.by_group, s.name.clone()),
                "ServiceAccount" if !s.namespace.is_empty() => (&mut self.by_user, service_account_user(&s.namespace, &s.name)),
                _ => continue,
            };
            let v = map.entry(key).or_default();
            if v.last() != Some(&i) {
                v.push(i);
            }
        }
        self.list.push(b);
    }

    /// Indices of bindings that may apply to the user, possibly repeated, unordered.
    pub(crate) fn candidates<'a>(&'a self, user: &'a str, groups: &'a [String]) -> impl Iterator<Item = usize> + 'a {
        let by_user = self.by_user.get(user).into_iter().flatten();
        let by_group = groups.iter().filter_map(|g| self.by_group.get(g)).flatten();
        by_user.chain(by_group).copied()
    }

    /// The bindings that apply to the user, each once, in store order.
    pub(crate) fn applying(&self, user: &str, groups: &[String]) -> Vec<&Binding> {
        let mut idx: Vec<usize> = self.candidates(user, groups).collect();
        idx.sort_unstable();
        idx.dedup();
        idx.into_iter().map(|i| &self.list[i]).collect()
    }
}

pub(crate) struct Index {
    pub fingerprint: Fingerprint,
    pub cluster: Bindings,
    pub namespaced: HashMap<String, Bindings>,
    /// Roles' rules by (namespace, name).
    pub roles: HashMap<(String, String), Arc<[PolicyRule]>>,
    pub cluster_roles: HashMap<String, Arc<[PolicyRule]>>,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter().fold(v, |v, k| &v[*k]).as_str().unwrap_or("")
}

type Roles = HashMap<(String, String), Arc<[PolicyRule]>>;

fn binding(kind: &'static str, b: &Value, roles: &Roles, cluster_roles: &HashMap<String, Arc<[PolicyRule]>>) -> Binding {
    let namespace = str_at(b, &["metadata", "namespace"]).to_string();
    let role_kind = str_at(b, &["roleRef", "kind"]).to_string();
    let role_name = str_at(b, &["roleRef", "name"]).to_string();
    let rules = match role_kind.as_str() {
        "Role" => roles.get(&(namespace.clone(), role_name.clone())).cloned().ok_or_else(|| Unresolved::Role(role_name.clone())),
        "ClusterRole" => cluster_roles.get(&role_name).cloned().ok_or_else(|| Unresolved::ClusterRole(role_name.clone())),
        other => Err(Unresolved::Kind(other.to_string())),
    };
    let subjects = b["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let kind = s["kind"].as_str().unwrap_or("").to_string();
            let mut ns = s["namespace"].as_str().unwrap_or("").to_string();
            if ns.is_empty() && kind == "ServiceAccount" {
                ns = namespace.clone();
            }
            Subject { kind, name: s["name"].as_str().unwrap_or("").to_string(), namespace: ns }
        })
        .collect();
    Binding { kind, name: str_at(b, &["metadata", "name"]).to_string(), namespace, role_kind, role_name, subjects, rules }
}

impl Index {
    /// Builds the index from the four collections' objects.
    pub(crate) fn build(fingerprint: Fingerprint, roles: &[&Value], role_bindings: &[&Value], cluster_roles: &[&Value], cluster_role_bindings: &[&Value]) -> Index {
        let rules = |v: &Value| -> Arc<[PolicyRule]> { PolicyRule::list_from_json(v).into() };
        let name = |r: &Value| str_at(r, &["metadata", "name"]).to_string();
        let roles: Roles = roles.iter().map(|r| ((str_at(r, &["metadata", "namespace"]).to_string(), name(r)), rules(r))).collect();
        let cluster_roles: HashMap<String, Arc<[PolicyRule]>> = cluster_roles.iter().map(|r| (name(r), rules(r))).collect();
        let mut cluster = Bindings::default();
        for b in cluster_role_bindings {
            cluster.push(binding("ClusterRoleBinding", b, &roles, &cluster_roles));
        }
        let mut namespaced: HashMap<String, Bindings> = HashMap::new();
        for b in role_bindings {
            let b = binding("RoleBinding", b, &roles, &cluster_roles);
            namespaced.entry(b.namespace.clone()).or_default().push(b);
        }
        Index { fingerprint, cluster, namespaced, roles, cluster_roles }
    }

    /// The rules of the role a binding in `namespace` refers to.
    pub(crate) fn role_rules(&self, kind: &str, name: &str, namespace: &str) -> Result<Arc<[PolicyRule]>, Unresolved> {
        match kind {
            "Role" => self.roles.get(&(namespace.to_string(), name.to_string())).cloned().ok_or_else(|| Unresolved::Role(name.to_string())),
            "ClusterRole" => self.cluster_roles.get(name).cloned().ok_or_else(|| Unresolved::ClusterRole(name.to_string())),
            other => Err(Unresolved::Kind(other.to_string())),
        }
    }

    /// Builds the index from objects of any kind (others are ignored).
    #[cfg(test)]
    pub(crate) fn from_objects(objects: &[Value]) -> Index {
        let of = |kind: &str| objects.iter().filter(|o| o["kind"] == kind).collect::<Vec<_>>();
        Index::build([(0, 0); 4], &of("Role"), &of("RoleBinding"), &of("ClusterRole"), &of("ClusterRoleBinding"))
    }

    /// The scopes whose bindings apply in `namespace`: cluster-wide, then the namespace's.
    pub(crate) fn scopes<'a>(&'a self, namespace: &str) -> impl Iterator<Item = &'a Bindings> + 'a {
        let ns = if namespace.is_empty() { None } else { self.namespaced.get(namespace) };
        std::iter::once(&self.cluster).chain(ns)
    }

    /// The first binding (cluster-wide first) whose rules allow the request, if any.
    pub(crate) fn allowing(&self, user: &str, groups: &[String], namespace: &str, req: &Request<'_>) -> Option<&Binding> {
        for scope in self.scopes(namespace) {
            for i in scope.candidates(user, groups) {
                let b = &scope.list[i];
                if let Ok(rules) = &b.rules
                    && rules.iter().any(|r| r.allows(req))
                {
                    return Some(b);
                }
            }
        }
        None
    }

    /// Every rule that applies to the user in `namespace` (cluster-wide ones first), and
    /// the role references that did not resolve.
    pub(crate) fn rules_for(&self, user: &str, groups: &[String], namespace: &str) -> (Vec<PolicyRule>, Vec<Unresolved>) {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        for scope in self.scopes(namespace) {
            for b in scope.applying(user, groups) {
                match &b.rules {
                    Ok(r) => rules.extend(r.iter().cloned()),
                    Err(e) => errors.push(e.clone()),
                }
            }
        }
        (rules, errors)
    }
}

/// Kubernetes' aggregate error text: one message as is, several as `[a, b]`, repeats once.
pub(crate) fn aggregate(messages: impl IntoIterator<Item = String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for m in messages {
        if !seen.contains(&m) {
            seen.push(m);
        }
    }
    if seen.len() == 1 { seen.remove(0) } else { format!("[{}]", seen.join(", ")) }
}
