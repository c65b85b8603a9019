//! Table-driven tests of matching, the default roles, subjects, rules review, escalation
//! and freshness against a store.

use std::sync::Arc;

use serde_json::{Value, json};

use super::rule::{PolicyRule, Request, compact_string, covers};
use super::*;
use crate::apiserver::auth::{Attributes, Authorizer, Decision, User};

/// The one place tests build a User, so fields added to it change one line.
fn user(name: &str, groups: &[&str]) -> User {
    User { name: name.into(), groups: groups.iter().map(|g| g.to_string()).collect(), ..User::default() }
}

fn service_account(ns: &str, name: &str) -> User {
    let sa = format!("system:serviceaccount:{ns}:{name}");
    let ns_group = format!("system:serviceaccounts:{ns}");
    user(&sa, &["system:serviceaccounts", &ns_group, "system:authenticated"])
}

/// "verb group/resource/subresource ns name", "-" for empty parts; or "verb /path".
fn attrs(s: &str) -> Attributes {
    let mut it = s.split(' ');
    let verb = it.next().unwrap_or("").to_string();
    let what = it.next().unwrap_or("");
    if what.starts_with('/') {
        return Attributes { verb, path: what.into(), ..Default::default() };
    }
    let part = |s: &str| if s == "-" { String::new() } else { s.to_string() };
    let mut gr = what.split('/');
    let group = part(gr.next().unwrap_or(""));
    let resource = part(gr.next().unwrap_or(""));
    let subresource = part(gr.next().unwrap_or("-"));
    let namespace = part(it.next().unwrap_or("-"));
    let name = part(it.next().unwrap_or("-"));
    Attributes { verb, group, resource, subresource, namespace, name, ..Default::default() }
}

fn allowed(rbac: &Rbac, u: &User, a: &str) -> bool {
    matches!(rbac.authorize(u, &attrs(a)), Decision::Allow)
}

fn rule(v: Value) -> PolicyRule {
    PolicyRule::from_json(&v)
}

fn role_binding(ns: &str, name: &str, role_kind: &str, role: &str, subjects: Value) -> Value {
    json!({"kind": "RoleBinding", "metadata": {"namespace": ns, "name": name},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role}, "subjects": subjects})
}

fn cluster_role_binding(name: &str, role: &str, subjects: Value) -> Value {
    json!({"kind": "ClusterRoleBinding", "metadata": {"name": name},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}, "subjects": subjects})
}

fn cluster_role(name: &str, rules: Value) -> Value {
    json!({"kind": "ClusterRole", "metadata": {"name": name}, "rules": rules})
}

fn role(ns: &str, name: &str, rules: Value) -> Value {
    json!({"kind": "Role", "metadata": {"namespace": ns, "name": name}, "rules": rules})
}

fn request<'a>(a: &'a Attributes) -> Request<'a> {
    super::request(a)
}

#[test]
fn rule_matching() {
    let cases: &[(Value, &str, bool)] = &[
        (json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}), "get -/pods ns p", true),
        (json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}), "list -/pods ns", false),
        (json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}), "get apps/pods ns p", false),
        (json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}), "deletecollection apps/deployments ns", true),
        (json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}), "get -/pods/log ns p", false),
        (json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}), "get -/pods/log ns p", true),
        (json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}), "get -/pods ns p", false),
        (json!({"verbs": ["get"], "apiGroups": ["*"], "resources": ["*/status"]}), "get apps/deployments/status ns d", true),
        (json!({"verbs": ["get"], "apiGroups": ["*"], "resources": ["*/status"]}), "get apps/deployments ns d", false),
        (json!({"verbs": ["get"], "apiGroups": ["*"], "resources": ["*/status"]}), "get -/pods/xstatus ns d", false),
        (json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/*"]}), "get -/pods/log ns p", false),
        // resourceNames: only requests naming one of them.
        (json!({"verbs": ["get", "list", "create", "update"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}), "get -/configmaps ns a", true),
        (json!({"verbs": ["get", "list", "create", "update"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}), "update -/configmaps ns a", true),
        (json!({"verbs": ["get", "list", "create", "update"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}), "get -/configmaps ns b", false),
        (json!({"verbs": ["get", "list", "create", "update"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}), "list -/configmaps ns", false),
        (json!({"verbs": ["get", "list", "create", "update"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}), "create -/configmaps ns", false),
        // nonResourceURLs.
        (json!({"verbs": ["get"], "nonResourceURLs": ["/healthz"]}), "get /healthz", true),
        (json!({"verbs": ["get"], "nonResourceURLs": ["/healthz"]}), "get /healthz/etcd", false),
        (json!({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}), "get /apis/apps/v1", true),
        (json!({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}), "get /apis", false),
        (json!({"verbs": ["get"], "nonResourceURLs": ["/api*"]}), "get /apis", true),
        (json!({"verbs": ["*"], "nonResourceURLs": ["*"]}), "post /anything", true),
        (json!({"verbs": ["get"], "nonResourceURLs": ["/healthz"]}), "post /healthz", false),
        // A resource rule never matches a path, nor a URL rule a resource.
        (json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}), "get /healthz", false),
        (json!({"verbs": ["*"], "nonResourceURLs": ["*"]}), "get -/pods ns p", false),
    ];
    for (r, a, want) in cases {
        let at = attrs(a);
        assert_eq!(rule(r.clone()).allows(&request(&at)), *want, "{r} / {a}");
    }
}

/// A ServiceAccount `n/sa` bound to `role` by a RoleBinding in `n`, over the bootstrap policy.
fn bound_in(ns: &str, role: &str) -> (Rbac, User) {
    let mut objects = bootstrap_objects();
    objects.push(role_binding(ns, "b", "ClusterRole", role, json!([{"kind": "ServiceAccount", "name": "sa"}])));
    (Rbac::from_objects(&objects), service_account(ns, "sa"))
}

#[test]
fn default_roles_as_kubernetes_documents_them() {
    // (role, request, allowed): the user-facing roles of Kubernetes' RBAC docs.
    let cases: &[(&str, &str, bool)] = &[
        ("view", "get -/pods n p", true),
        ("view", "list -/pods n", true),
        ("view", "watch apps/deployments n", true),
        ("view", "get -/pods/log n p", true),
        ("view", "get -/secrets n s", false),
        ("view", "list -/secrets n", false),
        ("view", "create -/pods n", false),
        ("view", "get -/namespaces n n", true),
        ("view", "get rbac.authorization.k8s.io/roles n r", false),
        ("view", "get metrics.k8s.io/pods n p", true),
        ("edit", "create apps/deployments n", true),
        ("edit", "patch apps/deployments/scale n d", true),
        ("edit", "create -/secrets n", true),
        ("edit", "get -/secrets n s", true),
        ("edit", "create -/pods/exec n p", true),
        ("edit", "create -/serviceaccounts/token n sa", true),
        ("edit", "impersonate -/serviceaccounts n sa", true),
        ("edit", "create rbac.authorization.k8s.io/roles n", false),
        ("edit", "create rbac.authorization.k8s.io/rolebindings n", false),
        ("edit", "update -/resourcequotas n q", false),
        ("edit", "update -/pods/status n p", false),
        ("admin", "create rbac.authorization.k8s.io/roles n", true),
        ("admin", "create rbac.authorization.k8s.io/rolebindings n", true),
        ("admin", "create authorization.k8s.io/localsubjectaccessreviews n", true),
        ("admin", "delete apps/deployments n d", true),
        ("admin", "update -/resourcequotas n q", false),
        ("admin", "delete -/namespaces n n", false),
    ];
    for (role, a, want) in cases {
        let (rbac, sa) = bound_in("n", role);
        assert_eq!(allowed(&rbac, &sa, a), *want, "{role}: {a}");
    }
    // None reaches another namespace, cluster-scoped objects, or RBAC cluster objects.
    for role in ["view", "edit", "admin"] {
        let (rbac, sa) = bound_in("n", role);
        for a in [
            "get -/pods m p",
            "list -/pods -",
            "create apps/deployments m",
            "get -/nodes - n1",
            "list -/nodes -",
            "get -/namespaces - m",
            "create rbac.authorization.k8s.io/clusterrolebindings -",
            "list -/persistentvolumes -",
        ] {
            assert!(!allowed(&rbac, &sa, a), "{role}: {a}");
        }
        // Every authenticated user may review itself and read discovery.
        assert!(allowed(&rbac, &sa, "create authorization.k8s.io/selfsubjectaccessreviews -"), "{role}");
        assert!(allowed(&rbac, &sa, "create authorization.k8s.io/selfsubjectrulesreviews -"), "{role}");
        assert!(allowed(&rbac, &sa, "get /apis/apps/v1"), "{role}");
        assert!(allowed(&rbac, &sa, "get /version"), "{role}");
        assert!(!allowed(&rbac, &sa, "get /metrics"), "{role}");
    }
}

#[test]
fn subjects_and_scopes() {
    let read_pods = cluster_role("read-pods", json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]));
    let local = role("n", "local", json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]));
    type Case = (&'static str, Value, User, &'static [(&'static str, bool)]);
    let cases: Vec<Case> = vec![
        (
            "RoleBinding ServiceAccount subject: namespace defaults to the binding's",
            role_binding("n", "b", "ClusterRole", "read-pods", json!([{"kind": "ServiceAccount", "name": "sa"}])),
            service_account("n", "sa"),
            &[("get -/pods n p", true), ("get -/pods m p", false), ("get -/pods - p", false)],
        ),
        (
            "RoleBinding ServiceAccount subject of another namespace",
            role_binding("n", "b", "ClusterRole", "read-pods", json!([{"kind": "ServiceAccount", "name": "sa", "namespace": "m"}])),
            service_account("m", "sa"),
            &[("get -/pods n p", true), ("get -/pods m p", false)],
        ),
        (
            "the same ServiceAccount name in another namespace is someone else",
            role_binding("n", "b", "ClusterRole", "read-pods", json!([{"kind": "ServiceAccount", "name": "sa"}])),
            service_account("m", "sa"),
            &[("get -/pods n p", false)],
        ),
        (
            "ClusterRoleBinding ServiceAccount subject without namespace matches nobody",
            cluster_role_binding("b", "read-pods", json!([{"kind": "ServiceAccount", "name": "sa"}])),
            service_account("n", "sa"),
            &[("get -/pods n p", false)],
        ),
        (
            "ClusterRoleBinding grants everywhere",
            cluster_role_binding("b", "read-pods", json!([{"kind": "User", "name": "alice"}])),
            user("alice", &["system:authenticated"]),
            &[("get -/pods n p", true), ("get -/pods m p", true), ("list -/pods -", false), ("get -/pods - p", true)],
        ),
        (
            "Group subject",
            cluster_role_binding("b", "read-pods", json!([{"kind": "Group", "name": "devs"}])),
            user("bob", &["devs"]),
            &[("get -/pods n p", true)],
        ),
        (
            "ServiceAccount groups",
            role_binding("n", "b", "ClusterRole", "read-pods", json!([{"kind": "Group", "name": "system:serviceaccounts:n"}])),
            service_account("n", "other"),
            &[("get -/pods n p", true), ("get -/pods m p", false)],
        ),
        (
            "a User subject named like a ServiceAccount is that ServiceAccount",
            role_binding("n", "b", "ClusterRole", "read-pods", json!([{"kind": "User", "name": "system:serviceaccount:n:sa"}])),
            service_account("n", "sa"),
            &[("get -/pods n p", true)],
        ),
        (
            "RoleBinding of a Role",
            role_binding("n", "b", "Role", "local", json!([{"kind": "User", "name": "alice"}])),
            user("alice", &[]),
            &[("get -/secrets n s", true), ("get -/pods n p", false), ("get -/secrets m s", false)],
        ),
        (
            "a Role is looked up in the binding's namespace",
            role_binding("m", "b", "Role", "local", json!([{"kind": "User", "name": "alice"}])),
            user("alice", &[]),
            &[("get -/secrets m s", false), ("get -/secrets n s", false)],
        ),
        (
            "system:masters needs no binding",
            json!({}),
            user("root", &["system:masters"]),
            &[("delete -/nodes - n1", true), ("get /anything", true)],
        ),
    ];
    for (what, binding, u, checks) in cases {
        let rbac = Rbac::from_objects(&[read_pods.clone(), local.clone(), binding]);
        for (a, want) in checks {
            assert_eq!(allowed(&rbac, &u, a), *want, "{what}: {a}");
        }
    }
}

#[test]
fn denial_reasons_are_kubernetes() {
    let objects = [
        cluster_role("read-pods", json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}])),
        cluster_role_binding("b1", "read-pods", json!([{"kind": "User", "name": "alice"}])),
    ];
    let rbac = Rbac::from_objects(&objects);
    let alice = user("alice", &[]);
    assert!(matches!(rbac.authorize(&alice, &attrs("get -/secrets n s")), Decision::Deny(r) if r.is_empty()));
    let (ok, reason) = rbac.review(&alice, &attrs("get -/pods n p"));
    assert!(ok);
    assert_eq!(reason, r#"RBAC: allowed by ClusterRoleBinding "b1" of ClusterRole "read-pods" to User "alice""#);

    let mut objects = objects.to_vec();
    objects.push(cluster_role_binding("b2", "missing", json!([{"kind": "User", "name": "alice"}])));
    objects.push(role_binding("n", "b3", "Role", "gone", json!([{"kind": "User", "name": "alice"}])));
    let rbac = Rbac::from_objects(&objects);
    let Decision::Deny(reason) = rbac.authorize(&alice, &attrs("get -/secrets n s")) else { panic!("allowed") };
    assert_eq!(reason, r#"RBAC: [clusterrole.rbac.authorization.k8s.io "missing" not found, role.rbac.authorization.k8s.io "gone" not found]"#);
    let Decision::Deny(reason) = rbac.authorize(&alice, &attrs("get -/secrets m s")) else { panic!("allowed") };
    assert_eq!(reason, r#"RBAC: clusterrole.rbac.authorization.k8s.io "missing" not found"#);
    assert!(matches!(rbac.authorize(&alice, &attrs("get -/pods n p")), Decision::Allow), "a broken binding takes nothing away");
}

#[test]
fn rules_review() {
    let (rbac, sa) = bound_in("n", "view");
    let (resource, non_resource, incomplete) = rbac.rules_for(&sa, "n");
    assert!(!incomplete);
    let has = |rules: &[Value], want: Value| rules.contains(&want);
    assert!(has(&resource, json!({"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]})));
    assert!(has(&resource, json!({"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["namespaces"]})));
    assert!(has(&non_resource, json!({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"]})));
    assert!(resource.iter().all(|r| r["resourceNames"].is_null()), "empty lists are omitted");
    // In another namespace only the cluster-wide rules remain.
    let (elsewhere, _, _) = rbac.rules_for(&sa, "m");
    assert!(elsewhere.len() < resource.len());
    assert!(!has(&elsewhere, json!({"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["namespaces"]})));

    let rbac = Rbac::from_objects(&[
        cluster_role("cm", json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}])),
        role_binding("n", "b", "ClusterRole", "cm", json!([{"kind": "User", "name": "u"}])),
        role_binding("n", "b2", "ClusterRole", "cm", json!([{"kind": "User", "name": "u"}, {"kind": "Group", "name": "g"}])),
        role_binding("n", "b3", "Role", "none", json!([{"kind": "Group", "name": "g"}])),
    ]);
    let u = user("u", &["g"]);
    let status = rbac.rules_review_status(&u, "n");
    assert_eq!(
        status,
        json!({
            "resourceRules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]},
                              {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}],
            "nonResourceRules": [], "incomplete": false,
            "evaluationError": "role.rbac.authorization.k8s.io \"none\" not found",
        }),
        "a binding matching by two subjects counts once"
    );
}

#[test]
fn coverage_is_kubernetes() {
    let r = |v: Value| vec![rule(v)];
    let cases: &[(Value, Value, bool)] = &[
        (json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}), json!({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments/scale"]}), true),
        (json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}), json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}), true),
        (json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}), json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}), false),
        (json!({"verbs": ["get"], "apiGroups": [""], "resources": ["*/status"]}), json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/status"]}), true),
        (json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}), json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/status"]}), false),
        // Names: no names covers any; names cover only their own; a named rule never covers an unnamed one.
        (json!({"verbs": ["get"], "apiGroups": [""], "resources": ["cm"]}), json!({"verbs": ["get"], "apiGroups": [""], "resources": ["cm"], "resourceNames": ["a"]}), true),
        (json!({"verbs": ["get"], "apiGroups": [""], "resources": ["cm"], "resourceNames": ["a", "b"]}), json!({"verbs": ["get"], "apiGroups": [""], "resources": ["cm"], "resourceNames": ["a"]}), true),
        (json!({"verbs": ["get"], "apiGroups": [""], "resources": ["cm"], "resourceNames": ["a"]}), json!({"verbs": ["get"], "apiGroups": [""], "resources": ["cm"]}), false),
        (json!({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}), json!({"verbs": ["get"], "nonResourceURLs": ["/apis/apps"]}), true),
        (json!({"verbs": ["get"], "nonResourceURLs": ["/apis/apps"]}), json!({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}), false),
        (json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}), json!({"verbs": ["get"], "nonResourceURLs": ["/healthz"]}), false),
    ];
    for (owner, servant, want) in cases {
        assert_eq!(covers(&r(owner.clone()), &r(servant.clone())).0, *want, "{owner} covers {servant}");
    }
    assert_eq!(
        compact_string(&rule(json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]}))),
        r#"{APIGroups:[""], Resources:["pods"], ResourceNames:["a"], Verbs:["get" "list"]}"#
    );
}

fn with_namespace(mut v: Value, kind: &str) -> Value {
    v["kind"] = json!(kind);
    v
}

#[test]
fn escalation_prevention() {
    let base = vec![
        cluster_role("read-pods", json!([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}])),
        cluster_role("secrets", json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}])),
        cluster_role("escalate-roles", json!([{"verbs": ["escalate"], "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"]}])),
        cluster_role("bind-secrets", json!([{"verbs": ["bind"], "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "resourceNames": ["secrets"]}])),
        role_binding("n", "u-pods", "ClusterRole", "read-pods", json!([{"kind": "User", "name": "u"}])),
        role_binding("n", "esc", "ClusterRole", "escalate-roles", json!([{"kind": "User", "name": "escalator"}])),
        role_binding("n", "bind", "ClusterRole", "bind-secrets", json!([{"kind": "User", "name": "binder"}])),
    ];
    let rbac = Rbac::from_objects(&base);
    let new_role = |rules: Value| with_namespace(json!({"metadata": {"namespace": "n", "name": "x"}, "rules": rules}), "Role");
    let pods_get = json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]);
    let secrets_get = json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]);
    let u = user("u", &["g"]);

    // Granting what one holds is fine; more is refused with Kubernetes' words.
    assert!(rbac.check_escalation(&u, "create", &new_role(pods_get.clone()), None).is_ok());
    let e = rbac.check_escalation(&u, "create", &new_role(secrets_get.clone()), None).unwrap_err();
    assert_eq!(e.code, 403);
    assert_eq!(
        e.message,
        "roles.rbac.authorization.k8s.io \"x\" is forbidden: user \"u\" (groups=[\"g\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}"
    );
    let many = json!([{"verbs": ["get", "list", "delete"], "apiGroups": [""], "resources": ["pods", "secrets"]}]);
    let e = rbac.check_escalation(&u, "create", &new_role(many), None).unwrap_err();
    assert!(
        e.message.ends_with("not currently held:\n{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\"]}\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"list\" \"delete\"]}"),
        "{}",
        e.message
    );
    // In another namespace the user holds nothing.
    let mut elsewhere = new_role(pods_get.clone());
    elsewhere["metadata"]["namespace"] = json!("m");
    assert!(rbac.check_escalation(&u, "create", &elsewhere, None).is_err());
    // A ClusterRole needs the rules cluster-wide.
    let cr = with_namespace(json!({"metadata": {"name": "x"}, "rules": pods_get}), "ClusterRole");
    let e = rbac.check_escalation(&u, "create", &cr, None).unwrap_err();
    assert!(e.message.starts_with("clusterroles.rbac.authorization.k8s.io \"x\" is forbidden: user \"u\""), "{}", e.message);

    // escalate on roles in n: anything goes there.
    let escalator = user("escalator", &[]);
    assert!(rbac.check_escalation(&escalator, "create", &new_role(secrets_get.clone()), None).is_ok());
    assert!(rbac.check_escalation(&escalator, "create", &cr, None).is_err(), "escalate on roles is not on clusterroles");
    // system:masters may do anything; other verbs and kinds are not checked.
    assert!(rbac.check_escalation(&user("root", &["system:masters"]), "create", &cr, None).is_ok());
    assert!(rbac.check_escalation(&u, "delete", &new_role(secrets_get.clone()), None).is_ok());
    assert!(rbac.check_escalation(&u, "create", &json!({"kind": "ConfigMap"}), None).is_ok());

    // Bindings: the referenced role's rules must be held, or `bind` allowed on it by name.
    let rb = |role_kind: &str, role: &str| {
        let mut b = role_binding("n", "rb", role_kind, role, json!([{"kind": "User", "name": "someone"}]));
        b["kind"] = json!("RoleBinding");
        b
    };
    assert!(rbac.check_escalation(&u, "create", &rb("ClusterRole", "read-pods"), None).is_ok());
    let e = rbac.check_escalation(&u, "create", &rb("ClusterRole", "secrets"), None).unwrap_err();
    assert!(e.message.starts_with("rolebindings.rbac.authorization.k8s.io \"rb\" is forbidden: user \"u\" (groups=[\"g\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}"), "{}", e.message);
    let binder = user("binder", &[]);
    assert!(rbac.check_escalation(&binder, "create", &rb("ClusterRole", "secrets"), None).is_ok(), "bind by resourceName");
    assert!(rbac.check_escalation(&binder, "create", &rb("ClusterRole", "read-pods"), None).is_err(), "bind names only `secrets`");
    let crb = cluster_role_binding("crb", "secrets", json!([]));
    assert!(rbac.check_escalation(&binder, "create", &crb, None).is_err(), "bind was granted in n only");
    let e = rbac.check_escalation(&u, "create", &rb("ClusterRole", "nope"), None).unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (404, "clusterroles.rbac.authorization.k8s.io \"nope\" not found"));

    // Updates that only touch what the garbage collector writes pass.
    let old = rb("ClusterRole", "secrets");
    let mut gc = old.clone();
    gc["metadata"]["finalizers"] = json!([]);
    gc["metadata"]["ownerReferences"] = json!([{"name": "o"}]);
    assert!(rbac.check_escalation(&u, "update", &gc, Some(&old)).is_ok());
    let mut changed = gc.clone();
    changed["subjects"] = json!([{"kind": "User", "name": "other"}]);
    assert!(rbac.check_escalation(&u, "update", &changed, Some(&old)).is_err());

    // An aggregationRule takes full authority, even with no rules.
    let everything = Rbac::from_objects(&[
        // Every verb but escalate (which `*` would include) on every resource.
        cluster_role("all-resources", json!([{"verbs": ["get", "list", "watch", "create", "update", "patch", "delete"], "apiGroups": ["*"], "resources": ["*"]}])),
        cluster_role_binding("b", "all-resources", json!([{"kind": "User", "name": "almost"}])),
    ]);
    let agg = with_namespace(json!({"metadata": {"name": "a"}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}}), "ClusterRole");
    let e = everything.check_escalation(&user("almost", &[]), "create", &agg, None).unwrap_err();
    assert_eq!(e.message, "clusterroles.rbac.authorization.k8s.io \"a\" is forbidden: must have cluster-admin privileges to use the aggregationRule");
    let admin = Rbac::from_objects(&[
        cluster_role("cluster-admin", json!([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, {"verbs": ["*"], "nonResourceURLs": ["*"]}])),
        cluster_role_binding("b", "cluster-admin", json!([{"kind": "User", "name": "admin"}])),
    ]);
    assert!(admin.check_escalation(&user("admin", &[]), "create", &agg, None).is_ok());
}

#[test]
fn bootstrap_policy_shape() {
    let objects = bootstrap_objects();
    for o in &objects {
        assert_eq!(o["metadata"]["labels"]["kubernetes.io/bootstrapping"], "rbac-defaults", "{}", o["metadata"]["name"]);
        assert_eq!(o["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"], "true");
    }
    let names: Vec<&str> = objects.iter().filter(|o| o["kind"] == "ClusterRole").filter_map(|o| o["metadata"]["name"].as_str()).collect();
    for n in ["cluster-admin", "admin", "edit", "view", "system:aggregate-to-admin", "system:aggregate-to-edit", "system:aggregate-to-view", "system:basic-user", "system:discovery", "system:public-info-viewer", "system:node"] {
        assert!(names.contains(&n), "{n}");
    }
    // Every binding's role is in the set; system:node works for a node.
    let rbac = Rbac::from_objects(&objects);
    let node = user("system:node:n1", &["system:nodes", "system:authenticated"]);
    for a in ["create -/nodes -", "watch -/pods -", "create -/events n", "create certificates.k8s.io/certificatesigningrequests -", "create certificates.k8s.io/certificatesigningrequests/selfnodeclient -", "watch discovery.k8s.io/endpointslices -", "patch networking.k8s.io/ingresses/status n i"] {
        assert!(allowed(&rbac, &node, a), "{a}");
    }
    // What the Node authorizer grants per node, RBAC does not grant every node.
    for a in ["create -/secrets n", "get -/secrets n s", "get -/configmaps n c", "create -/serviceaccounts/token n sa", "patch -/nodes/status - n1", "update coordination.k8s.io/leases kube-node-lease n1", "patch -/pods/status n p", "patch -/pods n p"] {
        assert!(!allowed(&rbac, &node, a), "{a}");
    }
    let bootstrapper = user("system:bootstrap:abcdef", &["system:bootstrappers", "system:authenticated"]);
    assert!(allowed(&rbac, &bootstrapper, "create certificates.k8s.io/certificatesigningrequests/nodeclient -"));
    let anonymous = user("system:anonymous", &["system:unauthenticated"]);
    assert!(allowed(&rbac, &anonymous, "get /healthz"));
    assert!(!allowed(&rbac, &anonymous, "get /apis"));
    // Resources the roles name exist: at least the ones Flotilla serves in admin/edit/view.
    let (rbac_view, sa) = bound_in("n", "view");
    for r in crate::apiserver::resources::RESOURCES.iter().filter(|r| r.namespaced && !["secrets", "roles", "rolebindings"].contains(&r.plural) && r.verbs.contains(&"list")) {
        if r.group == "events.k8s.io" || r.plural == "leases" {
            continue; // Kubernetes' view reads core events only, and leases are edit's
        }
        let a = format!("list {}/{} n", if r.group.is_empty() { "-" } else { r.group }, r.plural);
        assert!(allowed(&rbac_view, &sa, &a), "view reads {a}");
    }
}

#[tokio::test]
async fn decisions_follow_the_store_at_once() {
    use crate::apiserver::Api;
    use crate::apiserver::service::WriteOptions;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = crate::store::Store::open(dir.path(), crate::store::StoreConfig::default()).expect("store");
    let api = Api::new(store.clone(), Arc::new(crate::apiserver::service::SystemClock));
    ensure_bootstrap(&api).await;
    let ns_info = crate::apiserver::resources::find("", "v1", "namespaces").expect("served");
    api.create(ns_info, None, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}), &WriteOptions::default()).await.expect("namespace");
    let rbac = Rbac::new(store);
    let sa = service_account("default", "sa");
    assert!(!allowed(&rbac, &sa, "list -/pods default"));
    let rb_info = crate::apiserver::resources::find("rbac.authorization.k8s.io", "v1", "rolebindings").expect("served");
    let mut rb = role_binding("default", "b", "ClusterRole", "view", json!([{"kind": "ServiceAccount", "name": "sa"}]));
    rb["apiVersion"] = json!("rbac.authorization.k8s.io/v1");
    api.create(rb_info, Some("default"), rb, &WriteOptions::default()).await.expect("create binding");
    assert!(allowed(&rbac, &sa, "list -/pods default"), "the next request sees the binding");
    api.delete(rb_info, Some("default"), "b", &Default::default()).await.expect("delete binding");
    assert!(!allowed(&rbac, &sa, "list -/pods default"), "and its deletion");

    // A second start changes nothing; a role missing a bootstrap rule gets it back.
    let cr_info = crate::apiserver::resources::find("rbac.authorization.k8s.io", "v1", "clusterroles").expect("served");
    let rev = api.store.revision();
    ensure_bootstrap(&api).await;
    assert_eq!(api.store.revision(), rev, "idempotent");
    let mut basic = api.get(cr_info, None, "system:basic-user").expect("role").value.clone();
    basic["rules"] = json!([]);
    api.update(cr_info, None, "system:basic-user", basic, crate::apiserver::service::Part::Main, &WriteOptions::default()).await.expect("update");
    assert!(!allowed(&rbac, &sa, "create authorization.k8s.io/selfsubjectaccessreviews -"));
    ensure_bootstrap(&api).await;
    assert!(allowed(&rbac, &sa, "create authorization.k8s.io/selfsubjectaccessreviews -"));
}

#[tokio::test]
#[ignore = "timing, run by hand"]
async fn timing() {
    use crate::apiserver::Api;
    use crate::apiserver::service::WriteOptions;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = crate::store::Store::open(dir.path(), crate::store::StoreConfig::default()).expect("store");
    let api = Api::new(store.clone(), Arc::new(crate::apiserver::service::SystemClock));
    ensure_bootstrap(&api).await;
    let ns_info = crate::apiserver::resources::find("", "v1", "namespaces").expect("served");
    api.create(ns_info, None, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}), &WriteOptions::default()).await.expect("namespace");
    let rb_info = crate::apiserver::resources::find("rbac.authorization.k8s.io", "v1", "rolebindings").expect("served");
    let mut rb = role_binding("default", "b", "ClusterRole", "edit", json!([{"kind": "ServiceAccount", "name": "sa"}]));
    rb["apiVersion"] = json!("rbac.authorization.k8s.io/v1");
    api.create(rb_info, Some("default"), rb, &WriteOptions::default()).await.expect("create binding");
    let rbac = Rbac::new(store.clone());
    let sa = service_account("default", "sa");
    let a = attrs("create -/configmaps default");
    let n = 100_000;
    let t = std::time::Instant::now();
    for _ in 0..n {
        assert!(matches!(rbac.authorize(&sa, &a), Decision::Allow));
    }
    eprintln!("authorize, revision unchanged: {:?}", t.elapsed() / n);
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(super::fingerprint(&store));
    }
    eprintln!("fingerprint: {:?}", t.elapsed() / n);
    let t = std::time::Instant::now();
    for _ in 0..1000 {
        std::hint::black_box(super::build(&store));
    }
    eprintln!("rebuild: {:?}", t.elapsed() / 1000);
}
