//! The Node authorizer (Kubernetes' plugin/pkg/auth/authorizer/node, with the core of
//! NodeRestriction's own-object rule): a node, the user `system:node:NAME` in group
//! `system:nodes`, reads only the Secrets, ConfigMaps, PersistentVolumeClaims (and the
//! PersistentVolumes bound to them) its own pods use, requests tokens only for its pods'
//! ServiceAccounts, and writes only its own Node (and its status), its own Lease in
//! `kube-node-lease` and the pods bound to it (and their status). Everything else it asks
//! is left to RBAC, where the `system:node` ClusterRole (bound to `system:nodes`) grants what
//! every node needs and deliberately omits all of the above.
//!
//! Decisions: Allow, or no opinion with Kubernetes' reason (`no relationship found between
//! node 'n1' and this object`), which the [`Chain`] passes on to RBAC; a request from
//! anyone who is not a node gets no opinion at once (one scan of the user's groups).
//!
//! "Its own pods" are the pods whose `spec.nodeName` is NAME, read from the store. A pod
//! write looks its pod up directly; the read rules use an index of what each node's pods
//! reference ([`Graph`]): their volumes (secret, configMap, projected sources,
//! persistentVolumeClaim, ephemeral claims, other volume types' secret references), env and
//! envFrom of every container, imagePullSecrets and serviceAccountName, plus the
//! PersistentVolume each referenced claim is bound to (`spec.volumeName`).
//!
//! Freshness, as RBAC's ([`super::rbac`]): a decision reflects every pod and claim write
//! applied before the request. A request that finds the store revision unchanged since the
//! last check pays one atomic load; one that finds it moved scans the pods' and claims'
//! revisions (no copies) and rebuilds the index only if they changed. Only the read rules
//! consult the index, so most node requests (watches, events, status writes) never do.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::Value;

use super::auth::{Attributes, Authorizer, Decision, User};
use super::{resources, service};
use crate::store::Store;

/// The group every node's user is in.
pub(crate) const NODES_GROUP: &str = "system:nodes";
/// The prefix of a node's user name.
pub(crate) const NODE_USER_PREFIX: &str = "system:node:";
/// Where nodes' heartbeat Leases live.
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// The node a user is, as Kubernetes' NodeIdentifier reads it: `Some("")` for a member of
/// system:nodes whose name does not say which node; None for anyone else.
pub(crate) fn node_identity(user: &User) -> Option<&str> {
    if !user.in_group(NODES_GROUP) {
        return None;
    }
    Some(user.name.strip_prefix(NODE_USER_PREFIX).unwrap_or(""))
}

/// What the node authorizer says.
#[derive(Debug, PartialEq)]
enum Verdict {
    Allow,
    /// No opinion (RBAC decides), with Kubernetes' reason; empty for requests it does not
    /// subdivide.
    Pass(String),
}

fn pass(why: impl Into<String>) -> Verdict {
    Verdict::Pass(why.into())
}

/// What one node's pods reference: `ns/name` keys (PersistentVolumes: name).
#[derive(Debug, Default)]
struct Refs {
    secrets: HashSet<String>,
    configmaps: HashSet<String>,
    claims: HashSet<String>,
    volumes: HashSet<String>,
    accounts: HashSet<String>,
}

/// Collections the index is built from (pods, claims): (object count, highest revision).
type Fingerprint = [(usize, u64); 2];

/// What each node's pods reference, by node name.
#[derive(Debug, Default)]
struct Graph {
    fingerprint: Option<Fingerprint>,
    nodes: HashMap<String, Refs>,
    /// When it was built (None: a fixed graph of tests).
    built: Option<std::time::Instant>,
}

/// How old a graph may be and still allow without a look at the store: a pod status write
/// moves the store's revision, and rebuilding the graph (every pod) on each node read that
/// follows one would cost O(pods) per read during a burst of pod starts. A relationship
/// gone within this window may still allow a read, as Kubernetes' graph (fed by informers)
/// lags too; a denial is always decided on a current graph.
const TRUSTED_FOR: std::time::Duration = std::time::Duration::from_secs(1);

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// Pure: records what `pod` references into `refs` (claims as `ns/name`).
fn pod_references(pod: &Value, refs: &mut Refs) {
    let ns = s(&pod["metadata"]["namespace"]);
    let key = |name: &str| format!("{ns}/{name}");
    let spec = &pod["spec"];
    let account = s(&spec["serviceAccountName"]);
    refs.accounts.insert(key(if account.is_empty() { "default" } else { account }));
    for r in spec["imagePullSecrets"].as_array().into_iter().flatten() {
        refs.secrets.insert(key(s(&r["name"])));
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in spec[list].as_array().into_iter().flatten() {
            for e in c["env"].as_array().into_iter().flatten() {
                let from = &e["valueFrom"];
                if let Some(n) = from["secretKeyRef"]["name"].as_str() {
                    refs.secrets.insert(key(n));
                }
                if let Some(n) = from["configMapKeyRef"]["name"].as_str() {
                    refs.configmaps.insert(key(n));
                }
            }
            for e in c["envFrom"].as_array().into_iter().flatten() {
                if let Some(n) = e["secretRef"]["name"].as_str() {
                    refs.secrets.insert(key(n));
                }
                if let Some(n) = e["configMapRef"]["name"].as_str() {
                    refs.configmaps.insert(key(n));
                }
            }
        }
    }
    let pod_name = s(&pod["metadata"]["name"]);
    for v in spec["volumes"].as_array().into_iter().flatten() {
        if let Some(n) = v["secret"]["secretName"].as_str() {
            refs.secrets.insert(key(n));
        }
        if let Some(n) = v["configMap"]["name"].as_str() {
            refs.configmaps.insert(key(n));
        }
        for src in v["projected"]["sources"].as_array().into_iter().flatten() {
            if let Some(n) = src["secret"]["name"].as_str() {
                refs.secrets.insert(key(n));
            }
            if let Some(n) = src["configMap"]["name"].as_str() {
                refs.configmaps.insert(key(n));
            }
        }
        if let Some(n) = v["persistentVolumeClaim"]["claimName"].as_str() {
            refs.claims.insert(key(n));
        }
        if v["ephemeral"].is_object() {
            // The claim an ephemeral volume gets is named POD-VOLUME.
            refs.claims.insert(key(&format!("{pod_name}-{}", s(&v["name"]))));
        }
        // Other volume types name their Secrets as secretRef (cephfs, rbd, iscsi,
        // flexVolume, scaleIO, storageos), nodePublishSecretRef (csi) or secretName
        // (azureFile), in the pod's namespace.
        for (kind, source) in v.as_object().into_iter().flatten() {
            if matches!(kind.as_str(), "name" | "secret" | "projected") {
                continue;
            }
            for field in ["secretRef", "nodePublishSecretRef"] {
                if let Some(n) = source[field]["name"].as_str() {
                    refs.secrets.insert(key(n));
                }
            }
            if kind == "azureFile"
                && let Some(n) = source["secretName"].as_str()
            {
                refs.secrets.insert(key(n));
            }
        }
    }
    refs.secrets.remove(&key(""));
    refs.configmaps.remove(&key(""));
}

impl Graph {
    /// Pure: the index over `pods` and `claims` (PersistentVolumeClaims).
    fn build(fingerprint: Option<Fingerprint>, pods: &[&Value], claims: &[&Value]) -> Graph {
        let mut nodes: HashMap<String, Refs> = HashMap::new();
        for pod in pods {
            let node = s(&pod["spec"]["nodeName"]);
            if node.is_empty() {
                continue;
            }
            pod_references(pod, nodes.entry(node.to_string()).or_default());
        }
        let bound: HashMap<String, &str> = claims
            .iter()
            .filter_map(|c| {
                let pv = s(&c["spec"]["volumeName"]);
                (!pv.is_empty()).then(|| (format!("{}/{}", s(&c["metadata"]["namespace"]), s(&c["metadata"]["name"])), pv))
            })
            .collect();
        for refs in nodes.values_mut() {
            refs.volumes = refs.claims.iter().filter_map(|c| bound.get(c)).map(|pv| pv.to_string()).collect();
        }
        Graph { fingerprint, nodes, built: fingerprint.map(|_| std::time::Instant::now()) }
    }

    fn refs(&self, node: &str) -> Option<&Refs> {
        self.nodes.get(node)
    }
}

/// The kinds of object a node reaches through its pods.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Secret,
    ConfigMap,
    Claim,
    Volume,
    Account,
}

/// The Node authorizer. Cheap to share; every method is synchronous.
pub(crate) struct NodeAuthorizer {
    /// None: a fixed index and fixed pods (tests).
    store: Option<Store>,
    graph: RwLock<Arc<Graph>>,
    /// A store revision at which the index was found current (u64::MAX: never).
    checked: AtomicU64,
    rebuilding: Mutex<()>,
    /// Tests: the pods, for the write rules.
    #[cfg(test)]
    fixed_pods: Vec<Value>,
}

fn info(plural: &str) -> &'static resources::ResourceInfo {
    resources::find("", "v1", plural).expect("core resource served")
}

fn prefixes() -> [String; 2] {
    [service::prefix(info("pods"), None), service::prefix(info("persistentvolumeclaims"), None)]
}

fn fingerprint(store: &Store) -> Fingerprint {
    prefixes().map(|p| {
        let count = std::cell::Cell::new(0usize);
        let max = std::cell::Cell::new(0u64);
        store.list(&p, None, None, &|o| {
            count.set(count.get() + 1);
            max.set(max.get().max(o.rv));
            false
        });
        (count.get(), max.get())
    })
}

fn build(store: &Store) -> Graph {
    let fp = fingerprint(store);
    let [pods, claims] = prefixes().map(|p| store.list(&p, None, None, &|_| true).0);
    let pods: Vec<&Value> = pods.iter().map(|o| &o.value).collect();
    let claims: Vec<&Value> = claims.iter().map(|o| &o.value).collect();
    Graph::build(Some(fp), &pods, &claims)
}

impl NodeAuthorizer {
    pub(crate) fn new(store: Store) -> NodeAuthorizer {
        NodeAuthorizer {
            store: Some(store),
            graph: RwLock::new(Arc::new(Graph::default())),
            checked: AtomicU64::new(u64::MAX),
            rebuilding: Mutex::new(()),
            #[cfg(test)]
            fixed_pods: Vec::new(),
        }
    }

    /// The authorizer over fixed pods and claims (tests).
    #[cfg(test)]
    fn from_objects(pods: Vec<Value>, claims: Vec<Value>) -> NodeAuthorizer {
        let graph = Graph::build(None, &pods.iter().collect::<Vec<_>>(), &claims.iter().collect::<Vec<_>>());
        NodeAuthorizer { store: None, graph: RwLock::new(Arc::new(graph)), checked: AtomicU64::new(0), rebuilding: Mutex::new(()), fixed_pods: pods }
    }

    /// The current index, rebuilt first if pods or claims changed.
    fn graph(&self) -> Arc<Graph> {
        let current = self.graph.read().expect("node graph lock").clone();
        let Some(store) = &self.store else { return current };
        let rev = store.revision();
        if self.checked.load(Ordering::Acquire) == rev {
            return current;
        }
        let fp = fingerprint(store);
        if current.fingerprint == Some(fp) {
            self.checked.store(rev, Ordering::Release);
            return current;
        }
        let _one_rebuild = self.rebuilding.lock().expect("node graph rebuild lock");
        let latest = self.graph.read().expect("node graph lock").clone();
        if latest.fingerprint == Some(fp) {
            return latest;
        }
        let fresh = Arc::new(build(store));
        *self.graph.write().expect("node graph lock") = fresh.clone();
        // `rev` was read before the fingerprint the index holds: a later write moves the
        // revision on and is checked again.
        self.checked.store(rev, Ordering::Release);
        fresh
    }

    /// The node a pod is bound to ("" when unbound or missing).
    fn pod_node(&self, ns: &str, name: &str) -> String {
        #[cfg(test)]
        if self.store.is_none() {
            return self
                .fixed_pods
                .iter()
                .find(|p| p["metadata"]["namespace"] == ns && p["metadata"]["name"] == name)
                .map(|p| s(&p["spec"]["nodeName"]).to_string())
                .unwrap_or_default();
        }
        let Some(store) = &self.store else { return String::new() };
        store.get(&service::key(info("pods"), Some(ns), name)).map(|p| s(&p.value["spec"]["nodeName"]).to_string()).unwrap_or_default()
    }

    fn related(&self, node: &str, kind: Kind, a: &Attributes) -> Verdict {
        if a.name.is_empty() {
            return pass("No Object name found");
        }
        let key = if matches!(kind, Kind::Volume) { a.name.clone() } else { format!("{}/{}", a.namespace, a.name) };
        let lookup = |graph: &Graph| {
            graph.refs(node).is_some_and(|r| {
                let set = match kind {
                    Kind::Secret => &r.secrets,
                    Kind::ConfigMap => &r.configmaps,
                    Kind::Claim => &r.claims,
                    Kind::Volume => &r.volumes,
                    Kind::Account => &r.accounts,
                };
                set.contains(&key)
            })
        };
        let recent = self.graph.read().expect("node graph lock").clone();
        let found = (recent.built.is_some_and(|b| b.elapsed() < TRUSTED_FOR) && lookup(&recent)) || lookup(&self.graph());
        if found { Verdict::Allow } else { pass(format!("no relationship found between node '{node}' and this object")) }
    }

    /// Secrets and ConfigMaps: get (and a list or watch of one object by name).
    fn read_namespaced(&self, node: &str, kind: Kind, a: &Attributes) -> Verdict {
        if !matches!(a.verb.as_str(), "get" | "list" | "watch") {
            return pass("can only read resources of this type");
        }
        if !a.subresource.is_empty() {
            return pass("cannot read subresource");
        }
        if a.namespace.is_empty() {
            return pass("can only read namespaced object of this type");
        }
        self.related(node, kind, a)
    }

    /// PersistentVolumeClaims and PersistentVolumes: get only.
    fn get(&self, node: &str, kind: Kind, a: &Attributes) -> Verdict {
        if a.verb != "get" {
            return pass("can only get individual resources of this type");
        }
        if !a.subresource.is_empty() {
            return pass("cannot get subresource");
        }
        self.related(node, kind, a)
    }

    fn decide(&self, node: &str, a: &Attributes) -> Verdict {
        if node.is_empty() {
            return pass("unknown node for user");
        }
        if !a.resource_request {
            return pass("");
        }
        match (a.group.as_str(), a.resource.as_str()) {
            ("", "secrets") => self.read_namespaced(node, Kind::Secret, a),
            ("", "configmaps") => self.read_namespaced(node, Kind::ConfigMap, a),
            ("", "persistentvolumeclaims") if a.subresource == "status" => {
                if !matches!(a.verb.as_str(), "update" | "patch") {
                    return pass("can only get or update node-bound status");
                }
                self.related(node, Kind::Claim, a)
            }
            ("", "persistentvolumeclaims") => self.get(node, Kind::Claim, a),
            ("", "persistentvolumes") => self.get(node, Kind::Volume, a),
            ("", "serviceaccounts") => {
                if a.verb != "create" || a.subresource != "token" || a.name.is_empty() {
                    return pass("can only create tokens for individual service accounts");
                }
                self.related(node, Kind::Account, a)
            }
            ("coordination.k8s.io", "leases") => {
                if !matches!(a.verb.as_str(), "get" | "create" | "update" | "patch" | "delete") {
                    return pass("can only get, create, update, patch, or delete a node lease");
                }
                if a.namespace != NODE_LEASE_NAMESPACE {
                    return pass(format!("can only access leases in the {NODE_LEASE_NAMESPACE} namespace"));
                }
                // A create names its Lease in the body only.
                if a.verb != "create" && a.name != node {
                    return pass("can only access node lease with the same name as the requesting node");
                }
                Verdict::Allow
            }
            ("", "nodes") if matches!(a.verb.as_str(), "update" | "patch") && matches!(a.subresource.as_str(), "" | "status") => {
                if a.name == node { Verdict::Allow } else { pass(format!("node '{node}' can only modify its own Node object")) }
            }
            ("", "pods") if matches!(a.verb.as_str(), "update" | "patch" | "delete") && matches!(a.subresource.as_str(), "" | "status") => {
                if !a.name.is_empty() && self.pod_node(&a.namespace, &a.name) == node {
                    Verdict::Allow
                } else {
                    pass(format!("node '{node}' can only modify pods bound to it"))
                }
            }
            _ => pass(""),
        }
    }
}

impl Authorizer for NodeAuthorizer {
    /// Deny means no opinion here: the [`Chain`] asks the next authorizer.
    fn authorize(&self, user: &User, attrs: &Attributes) -> Decision {
        match node_identity(user).map(|node| self.decide(node, attrs)) {
            Some(Verdict::Allow) => Decision::Allow,
            Some(Verdict::Pass(why)) => Decision::Deny(why),
            None => Decision::Deny(String::new()),
        }
    }
}

/// Authorizers asked in order (kube-apiserver's union authorizer): the first Allow wins;
/// a Deny from any but the last is no opinion; when none allows, the reasons given
/// (non-empty ones, in order, one per line) are the refusal's reason.
pub(crate) struct Chain(pub Vec<Arc<dyn Authorizer>>);

impl Authorizer for Chain {
    fn authorize(&self, user: &User, attrs: &Attributes) -> Decision {
        let mut reasons = Vec::new();
        for a in &self.0 {
            match a.authorize(user, attrs) {
                Decision::Allow => return Decision::Allow,
                Decision::Deny(why) if !why.is_empty() => reasons.push(why),
                Decision::Deny(_) => {}
            }
        }
        Decision::Deny(reasons.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(name: &str) -> User {
        User { name: format!("system:node:{name}"), groups: vec![NODES_GROUP.into(), super::super::auth::AUTHENTICATED.into()], ..User::default() }
    }

    fn pods() -> Vec<Value> {
        vec![
            json!({"metadata": {"namespace": "team", "name": "web"}, "spec": {
                "nodeName": "n1", "serviceAccountName": "robot",
                "imagePullSecrets": [{"name": "pull"}],
                "initContainers": [{"name": "i", "envFrom": [{"configMapRef": {"name": "init-env"}}]}],
                "containers": [{"name": "c", "env": [
                    {"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}},
                    {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}}],
                    "envFrom": [{"secretRef": {"name": "envfrom-secret"}}]}],
                "volumes": [
                    {"name": "s", "secret": {"secretName": "vol-secret"}},
                    {"name": "c", "configMap": {"name": "vol-cm"}},
                    {"name": "p", "projected": {"sources": [{"secret": {"name": "proj-secret"}}, {"configMap": {"name": "kube-root-ca.crt"}}, {"serviceAccountToken": {"path": "token"}}]}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                    {"name": "csi", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi-secret"}}}]}}),
            json!({"metadata": {"namespace": "team", "name": "api"}, "spec": {"nodeName": "n2", "volumes": [{"name": "s", "secret": {"secretName": "other-secret"}}]}}),
            json!({"metadata": {"namespace": "team", "name": "pending"}, "spec": {"volumes": [{"name": "s", "secret": {"secretName": "pending-secret"}}]}}),
        ]
    }

    fn claims() -> Vec<Value> {
        vec![json!({"metadata": {"namespace": "team", "name": "data"}, "spec": {"volumeName": "pv-data"}})]
    }

    fn res(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
        Attributes::resource(verb, group, resource, sub, ns, name)
    }

    #[test]
    fn a_node_reaches_only_what_its_own_pods_use() {
        let authz = NodeAuthorizer::from_objects(pods(), claims());
        let n1 = node("n1");
        let allowed = |a: Attributes| authz.authorize(&n1, &a) == Decision::Allow;
        let no_relationship = Decision::Deny("no relationship found between node 'n1' and this object".into());
        let cases: &[(Attributes, bool)] = &[
            (res("get", "", "secrets", "", "team", "vol-secret"), true),
            (res("get", "", "secrets", "", "team", "proj-secret"), true),
            (res("get", "", "secrets", "", "team", "env-secret"), true),
            (res("get", "", "secrets", "", "team", "envfrom-secret"), true),
            (res("get", "", "secrets", "", "team", "pull"), true),
            (res("get", "", "secrets", "", "team", "csi-secret"), true),
            (res("watch", "", "secrets", "", "team", "vol-secret"), true),
            (res("get", "", "configmaps", "", "team", "vol-cm"), true),
            (res("get", "", "configmaps", "", "team", "env-cm"), true),
            (res("get", "", "configmaps", "", "team", "init-env"), true),
            (res("get", "", "configmaps", "", "team", "kube-root-ca.crt"), true),
            (res("get", "", "persistentvolumeclaims", "", "team", "data"), true),
            (res("get", "", "persistentvolumeclaims", "", "team", "web-scratch"), true),
            (res("get", "", "persistentvolumes", "", "", "pv-data"), true),
            (res("update", "", "persistentvolumeclaims", "status", "team", "data"), true),
            (res("create", "", "serviceaccounts", "token", "team", "robot"), true),
            // Another node's pod, an unscheduled pod, another namespace.
            (res("get", "", "secrets", "", "team", "other-secret"), false),
            (res("get", "", "secrets", "", "team", "pending-secret"), false),
            (res("get", "", "secrets", "", "other", "vol-secret"), false),
            // Only reads, only single objects.
            (res("list", "", "secrets", "", "team", ""), false),
            (res("update", "", "secrets", "", "team", "vol-secret"), false),
            (res("delete", "", "configmaps", "", "team", "vol-cm"), false),
            (res("update", "", "persistentvolumeclaims", "", "team", "data"), false),
            (res("get", "", "persistentvolumes", "", "", "pv-other"), false),
            (res("create", "", "serviceaccounts", "token", "team", "default"), false),
            (res("get", "", "serviceaccounts", "", "team", "robot"), false),
        ];
        for (a, want) in cases {
            assert_eq!(allowed(a.clone()), *want, "{} {}/{} {}/{}", a.verb, a.resource, a.subresource, a.namespace, a.name);
        }
        assert_eq!(authz.authorize(&n1, &res("get", "", "secrets", "", "team", "other-secret")), no_relationship);
        // n2 gets its own pod's Secret, not n1's.
        assert_eq!(authz.authorize(&node("n2"), &res("get", "", "secrets", "", "team", "other-secret")), Decision::Allow);
        assert_ne!(authz.authorize(&node("n2"), &res("get", "", "secrets", "", "team", "vol-secret")), Decision::Allow);
    }

    #[test]
    fn a_node_writes_only_its_own_node_lease_and_pods() {
        let authz = NodeAuthorizer::from_objects(pods(), claims());
        let n1 = node("n1");
        let allowed = |a: Attributes| authz.authorize(&n1, &a) == Decision::Allow;
        let cases: &[(Attributes, bool)] = &[
            (res("patch", "", "nodes", "", "", "n1"), true),
            (res("update", "", "nodes", "status", "", "n1"), true),
            (res("patch", "", "nodes", "", "", "n2"), false),
            (res("patch", "", "nodes", "status", "", "n2"), false),
            (res("get", "coordination.k8s.io", "leases", "", "kube-node-lease", "n1"), true),
            (res("update", "coordination.k8s.io", "leases", "", "kube-node-lease", "n1"), true),
            (res("create", "coordination.k8s.io", "leases", "", "kube-node-lease", ""), true),
            (res("update", "coordination.k8s.io", "leases", "", "kube-node-lease", "n2"), false),
            (res("update", "coordination.k8s.io", "leases", "", "kube-system", "n1"), false),
            (res("list", "coordination.k8s.io", "leases", "", "kube-node-lease", ""), false),
            (res("patch", "", "pods", "status", "team", "web"), true),
            (res("update", "", "pods", "status", "team", "web"), true),
            (res("patch", "", "pods", "", "team", "web"), true),
            (res("delete", "", "pods", "", "team", "web"), true),
            (res("patch", "", "pods", "status", "team", "api"), false),
            (res("delete", "", "pods", "", "team", "api"), false),
            (res("patch", "", "pods", "status", "team", "missing"), false),
        ];
        for (a, want) in cases {
            assert_eq!(allowed(a.clone()), *want, "{} {}/{} {}/{}", a.verb, a.resource, a.subresource, a.namespace, a.name);
        }
        // Requests it does not subdivide are RBAC's, with no reason of its own.
        assert_eq!(authz.authorize(&n1, &res("watch", "", "pods", "", "", "")), Decision::Deny(String::new()));
        assert_eq!(authz.authorize(&n1, &Attributes::non_resource("get", "/healthz")), Decision::Deny(String::new()));
    }

    #[test]
    fn only_nodes_are_subdivided() {
        let authz = NodeAuthorizer::from_objects(pods(), claims());
        let get = res("get", "", "secrets", "", "team", "vol-secret");
        let alice = User { name: "system:node:n1".into(), groups: vec!["devs".into()], ..User::default() };
        assert_eq!(authz.authorize(&alice, &get), Decision::Deny(String::new()), "the name alone does not make a node");
        let nameless = User { name: "bob".into(), groups: vec![NODES_GROUP.into()], ..User::default() };
        assert_eq!(authz.authorize(&nameless, &get), Decision::Deny("unknown node for user".into()));
        assert_eq!(authz.authorize(&User::admin(), &get), Decision::Deny(String::new()));
    }

    struct Fixed(Decision);
    impl Authorizer for Fixed {
        fn authorize(&self, _: &User, _: &Attributes) -> Decision {
            match &self.0 {
                Decision::Allow => Decision::Allow,
                Decision::Deny(w) => Decision::Deny(w.clone()),
            }
        }
    }

    #[test]
    fn a_chain_allows_on_the_first_allow_and_joins_the_reasons_of_a_refusal() {
        let arc = |d: Decision| -> Arc<dyn Authorizer> { Arc::new(Fixed(d)) };
        let a = res("get", "", "secrets", "", "ns", "s");
        let u = User::default();
        assert_eq!(Chain(vec![arc(Decision::Deny("no".into())), arc(Decision::Allow)]).authorize(&u, &a), Decision::Allow);
        assert_eq!(Chain(vec![arc(Decision::Allow), arc(Decision::Deny("x".into()))]).authorize(&u, &a), Decision::Allow);
        assert_eq!(Chain(vec![arc(Decision::Deny("first".into())), arc(Decision::Deny(String::new()))]).authorize(&u, &a), Decision::Deny("first".into()));
        assert_eq!(Chain(vec![arc(Decision::Deny("a".into())), arc(Decision::Deny("b".into()))]).authorize(&u, &a), Decision::Deny("a\nb".into()));
    }

    #[tokio::test]
    async fn decisions_follow_the_store() {
        use crate::apiserver::Api;
        use crate::apiserver::service::WriteOptions;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), crate::store::StoreConfig::default()).expect("store");
        let api = Api::new(store.clone(), Arc::new(crate::apiserver::service::SystemClock));
        let ns = resources::find("", "v1", "namespaces").expect("served");
        api.create(ns, None, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}), &WriteOptions::default()).await.expect("namespace");
        let authz = NodeAuthorizer::new(store);
        let (n1, n2) = (node("n1"), node("n2"));
        let get = res("get", "", "secrets", "", "team", "s");
        assert_ne!(authz.authorize(&n1, &get), Decision::Allow);
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "team"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}], "volumes": [{"name": "s", "secret": {"secretName": "s"}}]}});
        api.create(info("pods"), Some("team"), pod, &WriteOptions::default()).await.expect("pod");
        assert_eq!(authz.authorize(&n1, &get), Decision::Allow, "the next request sees the pod");
        assert_ne!(authz.authorize(&n2, &get), Decision::Allow);
        assert_eq!(authz.authorize(&n1, &res("patch", "", "pods", "status", "team", "p")), Decision::Allow);
        api.delete(info("pods"), Some("team"), "p", &crate::apiserver::service::DeleteOptions { grace_period_seconds: Some(0), ..Default::default() }).await.expect("delete");
        // A graph younger than TRUSTED_FOR may still allow; after it, the deletion counts.
        tokio::time::sleep(TRUSTED_FOR + std::time::Duration::from_millis(50)).await;
        assert_ne!(authz.authorize(&n1, &get), Decision::Allow, "and its deletion");
        assert_ne!(authz.authorize(&n1, &res("patch", "", "pods", "status", "team", "p")), Decision::Allow);
    }
}
