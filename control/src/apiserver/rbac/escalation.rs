//! Escalation prevention, as Kubernetes' RBAC registry enforces it on writes of Roles,
//! ClusterRoles, RoleBindings and ClusterRoleBindings.
//!
//! A user may write:
//! - a Role or ClusterRole if they are in `system:masters`, may `escalate` that resource
//!   (by name on update; a create has no name to authorize), or already hold every rule it
//!   grants: in its namespace for a Role, cluster-wide for a ClusterRole. Setting (or
//!   changing away) a ClusterRole's aggregationRule takes every permission (`*` on `*.*`
//!   and on every URL), as its rules are whatever it gathers;
//! - a RoleBinding or ClusterRoleBinding if they are in `system:masters`, may `bind` the
//!   role it references (by the role's name, in the binding's namespace or cluster-wide),
//!   or already hold every rule of that role (in the binding's namespace, or cluster-wide);
//! - any of them, on update, when only fields the garbage collector uses changed
//!   (ownerReferences, finalizers), so cleanup is never blocked.

use serde_json::Value;

use super::Rbac;
use super::index::{GROUP, Unresolved, aggregate};
use super::rule::{PolicyRule, Request, compact, compact_string, covers, go_quote, go_quote_list};
use crate::apiserver::auth::User;
use crate::apiserver::error::ApiError;

/// The group whose members may do anything (Kubernetes' `system:masters`).
pub(crate) const PRIVILEGED_GROUP: &str = "system:masters";

pub(crate) fn privileged(user: &User) -> bool {
    user.groups.iter().any(|g| g == PRIVILEGED_GROUP)
}

fn full_authority() -> Vec<PolicyRule> {
    let all = || vec!["*".to_string()];
    vec![
        PolicyRule { verbs: all(), api_groups: all(), resources: all(), ..Default::default() },
        PolicyRule { verbs: all(), non_resource_urls: all(), ..Default::default() },
    ]
}

fn plural(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Role" => "roles",
        "ClusterRole" => "clusterroles",
        "RoleBinding" => "rolebindings",
        "ClusterRoleBinding" => "clusterrolebindings",
        _ => return None,
    })
}

fn forbidden(resource: &str, name: &str, why: String) -> ApiError {
    let mut e = ApiError::forbidden(format!("{resource}.{GROUP} {} is forbidden: {why}", go_quote(name)));
    e.name = Some(name.to_string());
    e.group = Some(GROUP.to_string());
    e.kind = Some(resource.to_string());
    e
}

/// Whether `old` and `new` differ only in what the garbage collector writes (and in
/// what the server sets on every write).
fn only_gc_fields_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v["metadata"].as_object_mut() {
            for k in ["ownerReferences", "finalizers", "selfLink", "managedFields", "resourceVersion"] {
                m.remove(k);
            }
        }
        v
    };
    strip(old) == strip(new)
}

impl Rbac {
    /// Checks a write of an RBAC object against escalation, as Kubernetes' RBAC registry
    /// does; other objects and verbs other than create, update and patch pass.
    ///
    /// `obj` is the object as it will be stored, its `metadata.namespace` the request's
    /// namespace (for a patch: the patched object); `old` the stored object on update and
    /// patch. Errors: 403 Forbidden worded as Kubernetes words it; 404 NotFound when a
    /// binding references a role that does not exist (and the user may not `bind` it).
    #[allow(clippy::result_large_err, reason = "the ApiError every API operation returns")]
    pub(crate) fn check_escalation(&self, user: &User, verb: &str, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
        let kind = obj["kind"].as_str().unwrap_or("");
        let Some(resource) = plural(kind) else { return Ok(()) };
        if !matches!(verb, "create" | "update" | "patch") || privileged(user) {
            return Ok(());
        }
        if let Some(old) = old
            && only_gc_fields_changed(old, obj)
        {
            return Ok(());
        }
        let name = obj["metadata"]["name"].as_str().unwrap_or("");
        let namespace = if matches!(kind, "Role" | "RoleBinding") { obj["metadata"]["namespace"].as_str().unwrap_or("") } else { "" };
        let index = self.index();
        let allowed = |verb: &str, group: &str, resource: &str, name: &str| {
            let req = Request { resource_request: true, verb, group, resource, name, ..Default::default() };
            index.allowing(&user.name, &user.groups, namespace, &req).is_some()
        };
        match kind {
            "Role" | "ClusterRole" => {
                // RoleEscalationAuthorized: the request's own name, none on create.
                if allowed("escalate", GROUP, resource, if verb == "create" { "" } else { name }) {
                    return Ok(());
                }
                self.confirm_no_escalation(user, namespace, &PolicyRule::list_from_json(obj)).map_err(|why| forbidden(resource, name, why))?;
                let aggregates = |v: &Value| v["aggregationRule"]["clusterRoleSelectors"].as_array().is_some_and(|s| !s.is_empty());
                if kind == "ClusterRole" && (aggregates(obj) || old.is_some_and(aggregates)) && self.confirm_no_escalation(user, "", &full_authority()).is_err() {
                    return Err(forbidden(resource, name, "must have cluster-admin privileges to use the aggregationRule".into()));
                }
                Ok(())
            }
            _ => {
                let role_kind = obj["roleRef"]["kind"].as_str().unwrap_or("");
                let role_name = obj["roleRef"]["name"].as_str().unwrap_or("");
                let role_resource = match role_kind {
                    "ClusterRole" => Some("clusterroles"),
                    "Role" => Some("roles"),
                    _ => None,
                };
                // BindingAuthorized: `bind` on the role, in the group the reference names.
                if let Some(r) = role_resource
                    && allowed("bind", obj["roleRef"]["apiGroup"].as_str().unwrap_or(""), r, role_name)
                {
                    return Ok(());
                }
                let rules = index.role_rules(role_kind, role_name, namespace).map_err(|e| match e {
                    Unresolved::Kind(_) => ApiError::bad_request(e.message(true)),
                    _ => {
                        let mut nf = ApiError::new(404, "NotFound", e.message(true));
                        nf.name = Some(role_name.to_string());
                        nf.group = Some(GROUP.to_string());
                        nf.kind = role_resource.map(str::to_string);
                        nf
                    }
                })?;
                self.confirm_no_escalation(user, namespace, &rules).map_err(|why| forbidden(resource, name, why))
            }
        }
    }

    /// Kubernetes' `ConfirmNoEscalation`: Err(the reason) unless the user's rules in
    /// `namespace` cover `rules`.
    pub(crate) fn confirm_no_escalation(&self, user: &User, namespace: &str, rules: &[PolicyRule]) -> Result<(), String> {
        let (owned, errors) = self.index().rules_for(&user.name, &user.groups, namespace);
        let (ok, missing) = covers(&owned, rules);
        if ok {
            return Ok(());
        }
        let mut lines: Vec<String> = compact(missing).iter().map(compact_string).collect();
        lines.sort();
        lines.dedup();
        let mut msg = format!(
            "user {} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
            go_quote(&user.name),
            go_quote_list(&user.groups),
            lines.join("\n")
        );
        if !errors.is_empty() {
            msg.push_str(&format!("; resolution errors: [{}]", aggregate(errors.iter().map(|e| e.message(true)))));
        }
        Err(msg)
    }
}
