//! The registry of resource types the API server serves: names, scope, verbs,
//! subresources, short names and categories, as Kubernetes' discovery reports them.

/// One served resource type.
#[derive(Debug)]
pub(crate) struct ResourceInfo {
    /// API group; "" for the core (legacy) group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// URL path segment, e.g. "deployments".
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Subresources, e.g. "status", "scale", "log", "exec", "binding", "proxy".
    pub subresources: &'static [&'static str],
    /// Verbs clients may use on the collection and its items.
    pub verbs: &'static [&'static str],
}

impl ResourceInfo {
    /// "v1" or "apps/v1".
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// "pods" or "deployments.apps": the name Kubernetes uses for the resource in messages.
    pub(crate) fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Storage key prefix: "core/pods", "apps/deployments".
    pub(crate) fn store_prefix(&self) -> String {
        let group = if self.group.is_empty() { "core" } else { self.group };
        format!("{group}/{}", self.plural)
    }
}

const ALL: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
const NO_DELETECOLLECTION: &[&str] = &["create", "delete", "get", "list", "patch", "update", "watch"];

macro_rules! res {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, $ns:expr,
     short: [$($short:expr),*], cat: [$($cat:expr),*], sub: [$($sub:expr),*], verbs: $verbs:expr) => {
        ResourceInfo {
            group: $group, version: $version, kind: $kind, plural: $plural, singular: $singular,
            namespaced: $ns, short_names: &[$($short),*], categories: &[$($cat),*],
            subresources: &[$($sub),*], verbs: $verbs,
        }
    };
}

/// Every resource type served, in discovery order.
pub(crate) static RESOURCES: &[ResourceInfo] = &[
    res!("", "v1", "Namespace", "namespaces", "namespace", false, short: ["ns"], cat: [], sub: ["status", "finalize"], verbs: NO_DELETECOLLECTION),
    res!("", "v1", "Pod", "pods", "pod", true, short: ["po"], cat: ["all"], sub: ["status", "binding", "log", "exec", "attach", "portforward", "proxy", "eviction", "ephemeralcontainers"], verbs: ALL),
    res!("", "v1", "Service", "services", "service", true, short: ["svc"], cat: ["all"], sub: ["status", "proxy"], verbs: ALL),
    res!("", "v1", "Endpoints", "endpoints", "endpoints", true, short: ["ep"], cat: [], sub: [], verbs: ALL),
    res!("", "v1", "ConfigMap", "configmaps", "configmap", true, short: ["cm"], cat: [], sub: [], verbs: ALL),
    res!("", "v1", "Secret", "secrets", "secret", true, short: [], cat: [], sub: [], verbs: ALL),
    res!("", "v1", "Event", "events", "event", true, short: ["ev"], cat: [], sub: [], verbs: ALL),
    res!("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", true, short: ["sa"], cat: [], sub: ["token"], verbs: ALL),
    res!("", "v1", "Node", "nodes", "node", false, short: ["no"], cat: [], sub: ["status", "proxy"], verbs: ALL),
    res!("", "v1", "PersistentVolume", "persistentvolumes", "persistentvolume", false, short: ["pv"], cat: [], sub: ["status"], verbs: ALL),
    res!("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim", true, short: ["pvc"], cat: [], sub: ["status"], verbs: ALL),
    res!("", "v1", "LimitRange", "limitranges", "limitrange", true, short: ["limits"], cat: [], sub: [], verbs: ALL),
    res!("", "v1", "ResourceQuota", "resourcequotas", "resourcequota", true, short: ["quota"], cat: [], sub: ["status"], verbs: ALL),
    res!("apps", "v1", "Deployment", "deployments", "deployment", true, short: ["deploy"], cat: ["all"], sub: ["status", "scale"], verbs: ALL),
    res!("apps", "v1", "ReplicaSet", "replicasets", "replicaset", true, short: ["rs"], cat: ["all"], sub: ["status", "scale"], verbs: ALL),
    res!("apps", "v1", "StatefulSet", "statefulsets", "statefulset", true, short: ["sts"], cat: ["all"], sub: ["status", "scale"], verbs: ALL),
    res!("apps", "v1", "DaemonSet", "daemonsets", "daemonset", true, short: ["ds"], cat: ["all"], sub: ["status"], verbs: ALL),
    res!("apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision", true, short: [], cat: [], sub: [], verbs: ALL),
    res!("batch", "v1", "Job", "jobs", "job", true, short: [], cat: ["all"], sub: ["status"], verbs: ALL),
    res!("batch", "v1", "CronJob", "cronjobs", "cronjob", true, short: ["cj"], cat: ["all"], sub: ["status"], verbs: ALL),
    res!("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress", true, short: ["ing"], cat: [], sub: ["status"], verbs: ALL),
    res!("networking.k8s.io", "v1", "IngressClass", "ingressclasses", "ingressclass", false, short: [], cat: [], sub: [], verbs: ALL),
    res!("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", "networkpolicy", true, short: ["netpol"], cat: [], sub: [], verbs: ALL),
    res!("networking.k8s.io", "v1", "IPAddress", "ipaddresses", "ipaddress", false, short: ["ip"], cat: [], sub: [], verbs: ALL),
    res!("networking.k8s.io", "v1", "ServiceCIDR", "servicecidrs", "servicecidr", false, short: [], cat: [], sub: ["status"], verbs: ALL),
    res!("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", true, short: [], cat: [], sub: [], verbs: ALL),
    res!("coordination.k8s.io", "v1", "Lease", "leases", "lease", true, short: [], cat: [], sub: [], verbs: ALL),
    res!("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", true, short: [], cat: [], sub: [], verbs: ALL),
    res!("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", true, short: [], cat: [], sub: [], verbs: ALL),
    res!("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", false, short: [], cat: [], sub: [], verbs: ALL),
    res!("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", false, short: [], cat: [], sub: [], verbs: ALL),
    res!("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler", true, short: ["hpa"], cat: ["all"], sub: ["status"], verbs: ALL),
    res!("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", true, short: ["pdb"], cat: [], sub: ["status"], verbs: ALL),
    res!("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", "priorityclass", false, short: ["pc"], cat: [], sub: [], verbs: ALL),
    res!("storage.k8s.io", "v1", "StorageClass", "storageclasses", "storageclass", false, short: ["sc"], cat: [], sub: [], verbs: ALL),
    res!("events.k8s.io", "v1", "Event", "events", "event", true, short: ["ev"], cat: [], sub: [], verbs: ALL),
    res!("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", "selfsubjectaccessreview", false, short: [], cat: [], sub: [], verbs: &["create"]),
    res!("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", "selfsubjectrulesreview", false, short: [], cat: [], sub: [], verbs: &["create"]),
    res!("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", "subjectaccessreview", false, short: [], cat: [], sub: [], verbs: &["create"]),
    res!("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", "localsubjectaccessreview", true, short: [], cat: [], sub: [], verbs: &["create"]),
    res!("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", "selfsubjectreview", false, short: [], cat: [], sub: [], verbs: &["create"]),
    res!("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", "tokenreview", false, short: [], cat: [], sub: [], verbs: &["create"]),
    res!("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests", "certificatesigningrequest", false, short: ["csr"], cat: [], sub: ["status", "approval"], verbs: ALL),
];

/// Served from the nodes' figures, never stored (`metrics_api.rs`): in discovery only, so
/// nothing that walks [`RESOURCES`] (storage, OpenAPI, Tables, controllers) sees them.
pub(crate) static METRICS_RESOURCES: &[ResourceInfo] = &[
    res!("metrics.k8s.io", "v1beta1", "NodeMetrics", "nodes", "", false, short: [], cat: [], sub: [], verbs: &["get", "list"]),
    res!("metrics.k8s.io", "v1beta1", "PodMetrics", "pods", "", true, short: [], cat: [], sub: [], verbs: &["get", "list"]),
];

/// Every resource type discovery lists: [`RESOURCES`] and [`METRICS_RESOURCES`].
pub(crate) fn discoverable() -> impl Iterator<Item = &'static ResourceInfo> {
    RESOURCES.iter().chain(METRICS_RESOURCES)
}

/// Looks a resource up by group, version and plural.
pub(crate) fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Looks a resource up by group and kind (any served version).
#[cfg(test)]
pub(crate) fn find_kind(group: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES.iter().find(|r| r.group == group && r.kind == kind)
}

/// The API groups served (metrics.k8s.io included), in discovery order (core excluded).
pub(crate) fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in discoverable() {
        if !r.group.is_empty() && !out.contains(&r.group) {
            out.push(r.group);
        }
    }
    out
}
