//! The bootstrap policy: the ClusterRoles and ClusterRoleBindings every cluster starts
//! with, Kubernetes' (plugin/pkg/auth/authorizer/rbac/bootstrappolicy, as its testdata
//! renders them for 1.32) where Flotilla serves what they are about, with Flotilla's
//! additions marked where they are.
//!
//! Deviations from Kubernetes, on purpose:
//! - `system:node` is bound to the group `system:nodes`: Kubernetes keeps that binding
//!   without subjects and its Node authorizer evaluates the role's rules itself; Flotilla
//!   lets RBAC grant what is not subdivided and leaves out of the role what the Node
//!   authorizer (`apiserver/node_authorizer.rs`) grants per node: reads of Secrets,
//!   ConfigMaps, PersistentVolumeClaims and PersistentVolumes, ServiceAccount tokens,
//!   writes of Nodes, Leases, pods and their status. Its rules add what Flotilla's node
//!   agent reads and writes for the pod network and the built-in Ingress controller
//!   (Services, Endpoints, EndpointSlices, Namespaces, NetworkPolicies, Ingresses and
//!   their status, IngressClasses). A data dir from before keeps its broader role
//!   (reconciling adds, never removes).
//! - The CSR approver's roles are bound: `...:nodeclient` to `system:bootstrappers` (a
//!   node's first certificate) and `...:selfnodeclient` to `system:nodes` (its renewals),
//!   as kubeadm binds them.
//! - `system:aggregated-metrics-reader` (what metrics-server installs) aggregates read
//!   access to metrics.k8s.io into view, edit and admin: Flotilla serves that API itself.
//! - admin, edit and view are written with their aggregated rules already filled in (the
//!   aggregation controller's result over this set), so a binding to them works from the
//!   first request instead of after the controller's first pass.
//!
//! Invariants: every object is labelled `kubernetes.io/bootstrapping: rbac-defaults` and
//! annotated `rbac.authorization.kubernetes.io/autoupdate: "true"`; [`ensure_bootstrap`]
//! creates missing ones and, unless an object's autoupdate annotation is "false",
//! reconciles it as Kubernetes does at start: rules, subjects, labels and annotations it
//! lacks are added, nothing is removed.

use serde_json::{Map, Value, json};

use super::index::GROUP;
use super::rule::{PolicyRule, covers};
use crate::apiserver::Api;
use crate::apiserver::error::ApiError;
use crate::apiserver::resources;
use crate::apiserver::service::{Part, WriteOptions};

const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
const BOOTSTRAPPING: &str = "kubernetes.io/bootstrapping";
const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
const EVENTS_WRITE: &[&str] = &["create", "patch", "update"];

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources})
}

fn named(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources, "resourceNames": names})
}

fn urls(verbs: &[&str], urls: &[&str]) -> Value {
    json!({"verbs": verbs, "nonResourceURLs": urls})
}

fn metadata(name: &str, labels: &[&str]) -> Value {
    let mut l = Map::new();
    l.insert(BOOTSTRAPPING.into(), json!("rbac-defaults"));
    for k in labels {
        l.insert((*k).into(), json!("true"));
    }
    json!({"name": name, "labels": l, "annotations": {AUTOUPDATE: "true"}})
}

/// A ClusterRole labelled with `labels` (each "true"), aggregating those labelled `aggregates`.
fn cluster_role(name: &str, labels: &[&str], aggregates: Option<&str>, rules: Vec<Value>) -> Value {
    let mut role = json!({"apiVersion": format!("{GROUP}/v1"), "kind": "ClusterRole", "metadata": metadata(name, labels), "rules": rules});
    if let Some(label) = aggregates {
        role["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {label: "true"}}]});
    }
    role
}

/// A ClusterRoleBinding of the ClusterRole `name` to (kind, name) subjects.
fn binding(name: &str, subjects: &[(&str, &str)]) -> Value {
    let subjects: Vec<Value> = subjects.iter().map(|(kind, n)| json!({"apiGroup": GROUP, "kind": kind, "name": n})).collect();
    json!({
        "apiVersion": format!("{GROUP}/v1"), "kind": "ClusterRoleBinding", "metadata": metadata(name, &[]),
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": name}, "subjects": subjects,
    })
}

fn cluster_roles() -> Vec<Value> {
    let events = rule(EVENTS_WRITE, &["", "events.k8s.io"], &["events"]);
    vec![
        cluster_role("cluster-admin", &[], None, vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])]),
        cluster_role("admin", &[], Some(AGGREGATE_TO_ADMIN), vec![]),
        cluster_role("edit", &[AGGREGATE_TO_ADMIN], Some(AGGREGATE_TO_EDIT), vec![]),
        cluster_role("view", &[AGGREGATE_TO_EDIT], Some(AGGREGATE_TO_VIEW), vec![]),
        cluster_role("system:aggregate-to-admin", &[AGGREGATE_TO_ADMIN], None, vec![
            rule(&["create"], &["authorization.k8s.io"], &["localsubjectaccessreviews"]),
            rule(READ_WRITE, &[GROUP], &["rolebindings", "roles"]),
        ]),
        cluster_role("system:aggregate-to-edit", &[AGGREGATE_TO_EDIT], None, vec![
            rule(READ, &[""], &["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"]),
            rule(&["impersonate"], &[""], &["serviceaccounts"]),
            rule(WRITE, &[""], &["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"]),
            rule(&["create"], &[""], &["pods/eviction"]),
            rule(WRITE, &[""], &["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers", "replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy"]),
            rule(&["create"], &[""], &["serviceaccounts/token"]),
            rule(WRITE, &["apps"], &["daemonsets", "deployments", "deployments/rollback", "deployments/scale", "replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale"]),
            rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
            rule(WRITE, &["batch"], &["cronjobs", "jobs"]),
            rule(WRITE, &["extensions"], &["daemonsets", "deployments", "deployments/rollback", "deployments/scale", "ingresses", "networkpolicies", "replicasets", "replicasets/scale", "replicationcontrollers/scale"]),
            rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
            rule(WRITE, &["networking.k8s.io"], &["ingresses", "networkpolicies"]),
            rule(READ_WRITE, &["coordination.k8s.io"], &["leases"]),
            // Flotilla: pushing to the cluster's registry (apiserver::registry_access).
            rule(&["create", "delete"], &["registry.flotilla.dev"], &["images"]),
        ]),
        cluster_role("system:aggregate-to-view", &[AGGREGATE_TO_VIEW], None, vec![
            rule(READ, &[""], &["configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services", "services/status"]),
            rule(READ, &[""], &["bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status", "replicationcontrollers/status", "resourcequotas", "resourcequotas/status"]),
            rule(READ, &[""], &["namespaces"]),
            rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
            rule(READ, &["apps"], &["controllerrevisions", "daemonsets", "daemonsets/status", "deployments", "deployments/scale", "deployments/status", "replicasets", "replicasets/scale", "replicasets/status", "statefulsets", "statefulsets/scale", "statefulsets/status"]),
            rule(READ, &["autoscaling"], &["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
            rule(READ, &["batch"], &["cronjobs", "cronjobs/status", "jobs", "jobs/status"]),
            rule(READ, &["extensions"], &["daemonsets", "daemonsets/status", "deployments", "deployments/scale", "deployments/status", "ingresses", "ingresses/status", "networkpolicies", "replicasets", "replicasets/scale", "replicasets/status", "replicationcontrollers/scale"]),
            rule(READ, &["policy"], &["poddisruptionbudgets", "poddisruptionbudgets/status"]),
            rule(READ, &["networking.k8s.io"], &["ingresses", "ingresses/status", "networkpolicies"]),
            // Flotilla: pulling from the cluster's registry.
            rule(&["get"], &["registry.flotilla.dev"], &["images"]),
        ]),
        // Flotilla: metrics-server's role, for the metrics.k8s.io API Flotilla serves.
        cluster_role("system:aggregated-metrics-reader", &[AGGREGATE_TO_VIEW, AGGREGATE_TO_EDIT, AGGREGATE_TO_ADMIN], None, vec![
            rule(READ, &["metrics.k8s.io"], &["pods", "nodes"]),
        ]),
        cluster_role("system:auth-delegator", &[], None, vec![
            rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
            rule(&["create"], &["authorization.k8s.io"], &["subjectaccessreviews"]),
        ]),
        cluster_role("system:basic-user", &[], None, vec![
            rule(&["create"], &["authorization.k8s.io"], &["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
            rule(&["create"], &["authentication.k8s.io"], &["selfsubjectreviews"]),
        ]),
        cluster_role("system:certificates.k8s.io:certificatesigningrequests:nodeclient", &[], None, vec![
            rule(&["create"], &["certificates.k8s.io"], &["certificatesigningrequests/nodeclient"]),
        ]),
        cluster_role("system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", &[], None, vec![
            rule(&["create"], &["certificates.k8s.io"], &["certificatesigningrequests/selfnodeclient"]),
        ]),
        cluster_role("system:certificates.k8s.io:kube-apiserver-client-approver", &[], None, vec![
            named(&["approve"], &["certificates.k8s.io"], &["signers"], &["kubernetes.io/kube-apiserver-client"]),
        ]),
        cluster_role("system:certificates.k8s.io:kube-apiserver-client-kubelet-approver", &[], None, vec![
            named(&["approve"], &["certificates.k8s.io"], &["signers"], &["kubernetes.io/kube-apiserver-client-kubelet"]),
        ]),
        cluster_role("system:discovery", &[], None, vec![
            urls(&["get"], &["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"]),
        ]),
        cluster_role("system:kube-controller-manager", &[], None, vec![
            events.clone(),
            rule(&["create"], &["coordination.k8s.io"], &["leases"]),
            named(&["get", "update"], &["coordination.k8s.io"], &["leases"], &["kube-controller-manager"]),
            rule(&["create"], &[""], &["secrets", "serviceaccounts"]),
            rule(&["delete"], &[""], &["secrets"]),
            rule(&["get"], &[""], &["configmaps", "namespaces", "secrets", "serviceaccounts"]),
            rule(&["update"], &[""], &["secrets", "serviceaccounts"]),
            rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
            rule(&["create"], &["authorization.k8s.io"], &["subjectaccessreviews"]),
            rule(&["list", "watch"], &["*"], &["*"]),
            rule(&["create"], &[""], &["serviceaccounts/token"]),
        ]),
        cluster_role("system:kube-scheduler", &[], None, vec![
            events,
            rule(&["create"], &["coordination.k8s.io"], &["leases"]),
            named(&["get", "update"], &["coordination.k8s.io"], &["leases"], &["kube-scheduler"]),
            rule(READ, &[""], &["nodes"]),
            rule(&["delete", "get", "list", "watch"], &[""], &["pods"]),
            rule(&["create"], &[""], &["bindings", "pods/binding"]),
            rule(&["patch", "update"], &[""], &["pods/status"]),
            rule(READ, &[""], &["replicationcontrollers", "services"]),
            rule(READ, &["apps", "extensions"], &["replicasets"]),
            rule(READ, &["apps"], &["statefulsets"]),
            rule(READ, &["policy"], &["poddisruptionbudgets"]),
            rule(READ, &[""], &["persistentvolumeclaims", "persistentvolumes"]),
            rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
            rule(&["create"], &["authorization.k8s.io"], &["subjectaccessreviews"]),
            rule(READ, &["storage.k8s.io"], &["csinodes"]),
            rule(READ, &[""], &["namespaces"]),
            rule(READ, &["storage.k8s.io"], &["csidrivers"]),
            rule(READ, &["storage.k8s.io"], &["csistoragecapacities"]),
        ]),
        cluster_role("system:monitoring", &[], None, vec![
            urls(&["get"], &["/healthz", "/healthz/*", "/livez", "/livez/*", "/metrics", "/metrics/slis", "/readyz", "/readyz/*"]),
        ]),
        cluster_role("system:node", &[], None, vec![
            rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
            rule(&["create"], &["authorization.k8s.io"], &["localsubjectaccessreviews", "subjectaccessreviews"]),
            rule(READ, &[""], &["services"]),
            rule(&["create", "get", "list", "watch"], &[""], &["nodes"]),
            // Flotilla: patch and update of nodes and nodes/status, the node's own only, are
            // the Node authorizer's.
            rule(&["create", "patch", "update"], &[""], &["events"]),
            rule(READ, &[""], &["pods"]),
            // Flotilla: delete, and patch and update of pods/status, for pods bound to the
            // node only, are the Node authorizer's.
            rule(&["create"], &[""], &["pods"]),
            rule(&["create"], &[""], &["pods/eviction"]),
            // Flotilla: reads of ConfigMaps, Secrets, PersistentVolumeClaims and
            // PersistentVolumes, tokens, and the node's own Lease are the Node authorizer's.
            rule(&["get"], &[""], &["endpoints"]),
            rule(&["create", "get", "list", "watch"], &["certificates.k8s.io"], &["certificatesigningrequests"]),
            rule(&["get"], &["storage.k8s.io"], &["volumeattachments"]),
            rule(&["get"], &[""], &["persistentvolumeclaims/status"]),
            rule(READ, &["storage.k8s.io"], &["csidrivers"]),
            rule(&["create", "delete", "get", "patch", "update"], &["storage.k8s.io"], &["csinodes"]),
            rule(READ, &["node.k8s.io"], &["runtimeclasses"]),
            // Flotilla: the node agent's pod network, Ingress controller and usage annotations.
            rule(READ, &[""], &["endpoints", "namespaces"]),
            rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
            rule(READ, &["networking.k8s.io"], &["ingressclasses", "ingresses", "networkpolicies"]),
            rule(&["patch", "update"], &["networking.k8s.io"], &["ingresses/status"]),
        ]),
        cluster_role("system:node-bootstrapper", &[], None, vec![
            rule(&["create", "get", "list", "watch"], &["certificates.k8s.io"], &["certificatesigningrequests"]),
        ]),
        cluster_role("system:public-info-viewer", &[], None, vec![
            urls(&["get"], &["/healthz", "/livez", "/readyz", "/version", "/version/"]),
        ]),
        cluster_role("system:service-account-issuer-discovery", &[], None, vec![
            urls(&["get"], &["/.well-known/openid-configuration", "/openid/v1/jwks"]),
        ]),
    ]
}

fn cluster_role_bindings() -> Vec<Value> {
    vec![
        binding("cluster-admin", &[("Group", "system:masters")]),
        binding("system:basic-user", &[("Group", "system:authenticated")]),
        binding("system:discovery", &[("Group", "system:authenticated")]),
        binding("system:kube-controller-manager", &[("User", "system:kube-controller-manager")]),
        binding("system:kube-scheduler", &[("User", "system:kube-scheduler")]),
        binding("system:monitoring", &[("Group", "system:monitoring")]),
        // Flotilla: kubeadm's bindings for the CSR approver (see the module docs).
        binding("system:certificates.k8s.io:certificatesigningrequests:nodeclient", &[("Group", "system:bootstrappers")]),
        binding("system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", &[("Group", "system:nodes")]),
        // Flotilla: Kubernetes keeps this binding without subjects (see the module docs).
        binding("system:node", &[("Group", "system:nodes")]),
        binding("system:public-info-viewer", &[("Group", "system:authenticated"), ("Group", "system:unauthenticated")]),
        binding("system:service-account-issuer-discovery", &[("Group", "system:serviceaccounts")]),
    ]
}

/// The bootstrap ClusterRoles (aggregated ones filled in), then the ClusterRoleBindings.
pub(crate) fn bootstrap_objects() -> Vec<Value> {
    let mut roles = cluster_roles();
    let planned = {
        let refs: Vec<&Value> = roles.iter().collect();
        crate::controllers::clusterrole_aggregation::plan(&refs)
    };
    for step in planned {
        if let Some(role) = roles.iter_mut().find(|r| r["metadata"]["name"] == step.name.as_str()) {
            role["rules"] = Value::Array(step.rules);
        }
    }
    roles.extend(cluster_role_bindings());
    roles
}

fn options() -> WriteOptions {
    WriteOptions { field_manager: "kube-apiserver".into(), ..Default::default() }
}

/// Creates the bootstrap objects that are missing and reconciles the others (module
/// docs). Failures are logged; the API server runs without them.
pub(crate) async fn ensure_bootstrap(api: &Api) {
    for obj in bootstrap_objects() {
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        if let Err(e) = ensure_one(api, obj).await {
            tracing::warn!(error = %e, name, "bootstrap RBAC object not written");
        }
    }
}

#[allow(clippy::result_large_err, reason = "the ApiError every API operation returns")]
async fn ensure_one(api: &Api, want: Value) -> Result<(), ApiError> {
    let plural = if want["kind"] == "ClusterRole" { "clusterroles" } else { "clusterrolebindings" };
    let info = resources::find(GROUP, "v1", plural).expect("served resource");
    let name = want["metadata"]["name"].as_str().unwrap_or("").to_string();
    let current = match api.get(info, None, &name) {
        Ok(c) => c.value.clone(),
        Err(e) if e.code == 404 => {
            return match api.create(info, None, want, &options()).await {
                Err(e) if e.code != 409 => Err(e),
                _ => Ok(()),
            };
        }
        Err(e) => return Err(e),
    };
    if let Some(updated) = reconcile(&current, &want) {
        match api.update(info, None, &name, updated, Part::Main, &options()).await {
            Err(e) if !e.is_transient() => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// `current` with what `want` has and it lacks, or None when it lacks nothing or opts
/// out (autoupdate "false"). Aggregated roles' rules are the controller's, not reconciled.
pub(crate) fn reconcile(current: &Value, want: &Value) -> Option<Value> {
    if current["metadata"]["annotations"][AUTOUPDATE] == "false" {
        return None;
    }
    let mut out = current.clone();
    for field in ["labels", "annotations"] {
        if let Some(w) = want["metadata"][field].as_object() {
            if !out["metadata"][field].is_object() {
                out["metadata"][field] = json!({});
            }
            for (k, v) in w {
                if out["metadata"][field].get(k).is_none() {
                    out["metadata"][field][k] = v.clone();
                }
            }
        }
    }
    if want["kind"] == "ClusterRole" && want["aggregationRule"].is_null() {
        let held = PolicyRule::list_from_json(current);
        // The wanted rules themselves, not their atomic breakdown: the role stays readable.
        let missing: Vec<&Value> = want["rules"].as_array().into_iter().flatten().filter(|r| !covers(&held, &[PolicyRule::from_json(r)]).0).collect();
        if !missing.is_empty() {
            let mut rules = out["rules"].as_array().cloned().unwrap_or_default();
            rules.extend(missing.into_iter().cloned());
            out["rules"] = Value::Array(rules);
        }
    }
    if want["kind"] == "ClusterRoleBinding" {
        let mut subjects = out["subjects"].as_array().cloned().unwrap_or_default();
        for s in want["subjects"].as_array().into_iter().flatten() {
            if !subjects.iter().any(|c| c["kind"] == s["kind"] && c["name"] == s["name"]) {
                subjects.push(s.clone());
            }
        }
        out["subjects"] = Value::Array(subjects);
    }
    (out != *current).then_some(out)
}
