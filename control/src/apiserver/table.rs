//! Server-side `meta.k8s.io/v1` Tables: what `kubectl get` prints.
//!
//! kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints the cells the
//! server computes, hiding columns with priority > 0 unless `-o wide`. The columns and cell
//! rules per kind follow Kubernetes' internal printers (`pkg/printers/internalversion`), run
//! as the API server runs them: always "wide", so every row carries every column. Kinds
//! Kubernetes has no printer for (Role, ClusterRole, LimitRange, …) get the generic
//! convertor's `Name` + `Created At`.
//!
//! Invariants:
//! - every row has exactly one cell per column definition, in order;
//! - the printers are pure: the clock comes in as `now`, and missing or malformed fields are
//!   read as their API defaults (the values Kubernetes' defaulting would have stored), never
//!   as errors.

use std::collections::BTreeSet;
use std::str::FromStr;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::resources::ResourceInfo;

/// What each row's `object` carries, from the `includeObject` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum IncludeObject {
    /// No `object` in rows.
    None,
    /// A `PartialObjectMetadata` with the object's metadata (kubectl's default).
    #[default]
    Metadata,
    /// The whole object (kubectl sends this for `--sort-by`).
    Object,
}

/// An `includeObject` value other than None, Metadata, Object or empty; a 400 Bad Request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("includeObject: Invalid value: \"{0}\": must be 'Metadata', 'Object', 'None', or empty")]
pub(crate) struct InvalidIncludeObject(pub(crate) String);

impl IncludeObject {
    /// Reads the `includeObject` query parameter; absent or empty means `Metadata`.
    pub(crate) fn from_query(value: Option<&str>) -> Result<Self, InvalidIncludeObject> {
        value.map_or(Ok(Self::default()), str::parse)
    }
}

impl FromStr for IncludeObject {
    type Err = InvalidIncludeObject;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" | "Metadata" => Ok(Self::Metadata),
            "None" => Ok(Self::None),
            "Object" => Ok(Self::Object),
            other => Err(InvalidIncludeObject(other.to_string())),
        }
    }
}

/// Builds the Table for `objects` (one row each, in the given order) of resource `info`.
/// `continue_token` is omitted from the list metadata when `None` or empty, as is an empty
/// `resource_version`.
pub(crate) fn table(
    info: &ResourceInfo,
    objects: &[&Value],
    include: IncludeObject,
    now: DateTime<Utc>,
    resource_version: &str,
    continue_token: Option<&str>,
) -> Value {
    let printer = printer_for(info);
    let columns: Vec<Value> = printer.columns.iter().copied().map(Column::to_json).collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array((printer.cells)(obj, now)));
            if let Some(conditions) = printer.conditions.and_then(|f| f(obj)) {
                row.insert("conditions".into(), conditions);
            }
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    row.insert("object".into(), partial_object_metadata(obj));
                }
                IncludeObject::Object => {
                    row.insert("object".into(), whole_object(info, obj));
                }
            }
            Value::Object(row)
        })
        .collect();

    let mut metadata = Map::new();
    if !resource_version.is_empty() {
        metadata.insert("resourceVersion".into(), resource_version.into());
    }
    if let Some(token) = continue_token.filter(|t| !t.is_empty()) {
        metadata.insert("continue".into(), token.into());
    }
    let mut out = Map::new();
    out.insert("kind".into(), "Table".into());
    out.insert("apiVersion".into(), "meta.k8s.io/v1".into());
    out.insert("metadata".into(), Value::Object(metadata));
    out.insert("columnDefinitions".into(), Value::Array(columns));
    out.insert("rows".into(), Value::Array(rows));
    Value::Object(out)
}

/// `k8s.io/apimachinery/pkg/util/duration.HumanDuration`: ~2-3 significant figures.
pub(crate) fn human_duration(d: Duration) -> String {
    // Whole seconds truncated toward zero, like Go's int(d.Seconds()).
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{days}d") } else { format!("{days}d{h}h") };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        let dy = days % 365;
        return if dy == 0 { format!("{years}y") } else { format!("{years}y{dy}d") };
    }
    format!("{years}y")
}

// ---------------------------------------------------------------------------------------
// Rows' objects

fn partial_object_metadata(obj: &Value) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), "PartialObjectMetadata".into());
    out.insert("apiVersion".into(), "meta.k8s.io/v1".into());
    let metadata = obj.get("metadata").filter(|m| m.is_object()).cloned();
    out.insert("metadata".into(), metadata.unwrap_or_else(|| Value::Object(Map::new())));
    Value::Object(out)
}

/// The object as stored, with `apiVersion` and `kind` first (filled in from `info` if absent).
fn whole_object(info: &ResourceInfo, obj: &Value) -> Value {
    let Some(fields) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = Map::new();
    let api_version = fields.get("apiVersion").cloned().unwrap_or_else(|| info.api_version().into());
    let kind = fields.get("kind").cloned().unwrap_or_else(|| info.kind.into());
    out.insert("apiVersion".into(), api_version);
    out.insert("kind".into(), kind);
    for (k, v) in fields {
        if k != "apiVersion" && k != "kind" {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------------------
// Columns

#[derive(Debug, Clone, Copy)]
struct Column {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    priority: u8,
    description: &'static str,
}

impl Column {
    fn to_json(self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), self.name.into());
        m.insert("type".into(), self.ty.into());
        m.insert("format".into(), self.format.into());
        m.insert("description".into(), self.description.into());
        m.insert("priority".into(), self.priority.into());
        Value::Object(m)
    }
}

const fn col(name: &'static str, ty: &'static str, description: &'static str) -> Column {
    Column { name, ty, format: "", priority: 0, description }
}

/// A column shown only with `-o wide`.
const fn wide(name: &'static str, ty: &'static str, description: &'static str) -> Column {
    Column { name, ty, format: "", priority: 1, description }
}

/// The column tables, one per printer, in the order of Kubernetes' `AddHandlers`.
#[rustfmt::skip]
mod columns {
    use super::{Column, col, wide};

    pub(super) const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
    pub(super) const CREATED_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
    pub(super) const CONTAINERS_DOC: &str = "Names of each container in the template.";
    pub(super) const IMAGES_DOC: &str = "Images referenced by each container in the template.";
    pub(super) const SELECTOR_DOC: &str = "A label query over pods that should match the replica count.";

    pub(super) const NAME: Column = Column { name: "Name", ty: "string", format: "name", priority: 0, description: NAME_DOC, };
    pub(super) const AGE: Column = col("Age", "string", CREATED_DOC);
    pub(super) const CONTAINERS: Column = wide("Containers", "string", CONTAINERS_DOC);
    pub(super) const IMAGES: Column = wide("Images", "string", IMAGES_DOC);
    pub(super) const SELECTOR: Column = wide("Selector", "string", SELECTOR_DOC);

    pub(super) const POD_COLUMNS: &[Column] = &[
        NAME,
        col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
        col("Status", "string", "The aggregate status of the containers in this pod."),
        col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
        AGE,
        wide("IP", "string", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
        wide("Node", "string", "NodeName indicates in which node this pod is scheduled."),
        wide("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods."),
        wide("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness."),
    ];

    pub(super) const SERVICE_COLUMNS: &[Column] = &[
        NAME,
        col("Type", "string", "type determines how the Service is exposed."),
        col("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly."),
        col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
        col("Port(s)", "string", "The list of ports that are exposed by this service."),
        AGE,
        wide("Selector", "string", "Route service traffic to pods with label keys and values matching this selector."),
    ];

    pub(super) const ENDPOINTS_COLUMNS: &[Column] = &[
        NAME,
        col("Endpoints", "string", "The set of all endpoints is the union of all subsets."),
        AGE,
    ];

    pub(super) const CONFIG_MAP_COLUMNS: &[Column] = &[
        NAME,
        col("Data", "string", "Data contains the configuration data."),
        AGE,
    ];

    pub(super) const SECRET_COLUMNS: &[Column] = &[
        NAME,
        col("Type", "string", "Used to facilitate programmatic handling of secret data."),
        col("Data", "string", "Data contains the secret data."),
        AGE,
    ];

    pub(super) const EVENT_COLUMNS: &[Column] = &[
        col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
        col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
        col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
        col("Object", "string", "The object that this event is about."),
        wide("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement."),
        wide("Source", "string", "The component reporting this event."),
        col("Message", "string", "A human-readable description of the status of this operation."),
        wide("First Seen", "string", "The time at which the event was first recorded."),
        wide("Count", "string", "The number of times this event has occurred."),
        Column { name: "Name", ty: "string", format: "name", priority: 1, description: NAME_DOC, },
    ];

    pub(super) const SERVICE_ACCOUNT_COLUMNS: &[Column] = &[
        NAME,
        col("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
        AGE,
    ];

    pub(super) const NAMESPACE_COLUMNS: &[Column] = &[
        NAME,
        col("Status", "string", "The status of the namespace"),
        AGE,
    ];

    pub(super) const NODE_COLUMNS: &[Column] = &[
        NAME,
        col("Status", "string", "The status of the node"),
        col("Roles", "string", "The roles of the node"),
        AGE,
        col("Version", "string", "Kubelet Version reported by the node."),
        wide("Internal-IP", "string", "List of addresses reachable to the node."),
        wide("External-IP", "string", "List of addresses reachable to the node."),
        wide("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
        wide("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
        wide("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
    ];

    pub(super) const PERSISTENT_VOLUME_COLUMNS: &[Column] = &[
        NAME,
        col("Capacity", "string", "capacity is the description of the persistent volume's resources and capacity."),
        col("Access Modes", "string", "accessModes contains all ways the volume can be mounted."),
        col("Reclaim Policy", "string", "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim."),
        col("Status", "string", "phase indicates if a volume is available, bound to a claim, or released by a claim."),
        col("Claim", "string", "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim."),
        col("StorageClass", "string", "StorageClass of the pv"),
        col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
        col("Reason", "string", "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI."),
        AGE,
        wide("VolumeMode", "string", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state."),
    ];

    pub(super) const PERSISTENT_VOLUME_CLAIM_COLUMNS: &[Column] = &[
        NAME,
        col("Status", "string", "phase represents the current phase of PersistentVolumeClaim."),
        col("Volume", "string", "volumeName is the binding reference to the PersistentVolume backing this claim."),
        col("Capacity", "string", "capacity represents the actual resources of the underlying volume."),
        col("Access Modes", "string", "accessModes contains the actual access modes the volume backing the PVC has."),
        col("StorageClass", "string", "StorageClass of the pvc"),
        col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
        AGE,
        wide("VolumeMode", "string", "volumeMode defines what type of volume is required by the claim."),
    ];

    pub(super) const RESOURCE_QUOTA_COLUMNS: &[Column] = &[
        NAME,
        col("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume."),
        col("Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
        AGE,
    ];

    pub(super) const DEPLOYMENT_COLUMNS: &[Column] = &[
        NAME,
        col("Ready", "string", "Number of the pod with ready state"),
        col("Up-to-date", "string", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
        col("Available", "string", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", "string", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
    ];

    pub(super) const REPLICA_SET_COLUMNS: &[Column] = &[
        NAME,
        col("Desired", "integer", "Replicas is the number of desired replicas."),
        col("Current", "integer", "Replicas is the most recently observed number of replicas."),
        col("Ready", "integer", "The number of ready replicas for this replica set."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ];

    pub(super) const STATEFUL_SET_COLUMNS: &[Column] = &[
        NAME,
        col("Ready", "string", "Number of the pod with ready state"),
        AGE,
        CONTAINERS,
        IMAGES,
    ];

    pub(super) const DAEMON_SET_COLUMNS: &[Column] = &[
        NAME,
        col("Desired", "integer", "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."),
        col("Current", "integer", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
        col("Ready", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."),
        col("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod"),
        col("Available", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
        col("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a node."),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", "string", "A label query over pods that are managed by the daemon set."),
    ];

    pub(super) const CONTROLLER_REVISION_COLUMNS: &[Column] = &[
        NAME,
        col("Controller", "string", "Controller of the object"),
        col("Revision", "string", "Revision indicates the revision of the state represented by Data."),
        AGE,
    ];

    pub(super) const JOB_COLUMNS: &[Column] = &[
        NAME,
        col("Status", "string", "Status of the job."),
        col("Completions", "string", "The number of pods which reached phase Succeeded."),
        col("Duration", "string", "Time required to complete the job."),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", "string", "A label query over pods that should match the pod count."),
    ];

    pub(super) const CRON_JOB_COLUMNS: &[Column] = &[
        NAME,
        col("Schedule", "string", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
        col("Timezone", "string", "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
        col("Suspend", "boolean", "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions."),
        col("Active", "integer", "A list of pointers to currently running jobs."),
        col("Last Schedule", "string", "Information when was the last time the job was successfully scheduled."),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", "string", "A label query over pods that should match the pod count."),
    ];

    pub(super) const INGRESS_COLUMNS: &[Column] = &[
        NAME,
        col("Class", "string", "The name of the IngressClass resource that should be used for additional configuration"),
        col("Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule"),
        col("Address", "string", "Address is a list containing ingress points for the load-balancer"),
        col("Ports", "string", "Ports of TLS configurations that open"),
        AGE,
    ];

    pub(super) const INGRESS_CLASS_COLUMNS: &[Column] = &[
        NAME,
        col("Controller", "string", "Controller that is responsible for handling this class"),
        col("Parameters", "string", "A reference to a resource with additional parameters"),
        AGE,
    ];

    pub(super) const NETWORK_POLICY_COLUMNS: &[Column] = &[
        NAME,
        col("Pod-Selector", "string", "Selects the pods to which this NetworkPolicy object applies."),
        AGE,
    ];

    pub(super) const ENDPOINT_SLICE_COLUMNS: &[Column] = &[
        NAME,
        col("AddressType", "string", "addressType specifies the type of address carried by this EndpointSlice."),
        col("Ports", "string", "ports specifies the list of network ports exposed by each endpoint in this slice."),
        col("Endpoints", "string", "endpoints is a list of unique endpoints in this slice."),
        AGE,
    ];

    pub(super) const LEASE_COLUMNS: &[Column] = &[
        NAME,
        col("Holder", "string", "holderIdentity contains the identity of the holder of a current lease."),
        AGE,
    ];

    pub(super) const ROLE_BINDING_COLUMNS: &[Column] = &[
        NAME,
        col("Role", "string", "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace."),
        AGE,
        wide("Users", "string", "Users in the roleBinding"),
        wide("Groups", "string", "Groups in the roleBinding"),
        wide("ServiceAccounts", "string", "ServiceAccounts in the roleBinding"),
    ];

    pub(super) const CLUSTER_ROLE_BINDING_COLUMNS: &[Column] = &[
        NAME,
        col("Role", "string", "RoleRef can only reference a ClusterRole in the global namespace."),
        AGE,
        wide("Users", "string", "Users in the clusterRoleBinding"),
        wide("Groups", "string", "Groups in the clusterRoleBinding"),
        wide("ServiceAccounts", "string", "ServiceAccounts in the clusterRoleBinding"),
    ];

    pub(super) const STORAGE_CLASS_COLUMNS: &[Column] = &[
        NAME,
        col("Provisioner", "string", "provisioner indicates the type of the provisioner."),
        col("ReclaimPolicy", "string", "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class."),
        col("VolumeBindingMode", "string", "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound."),
        col("AllowVolumeExpansion", "string", "allowVolumeExpansion shows whether the storage class allow volume expand."),
        AGE,
    ];

    /// The generic convertor (`k8s.io/apiserver/pkg/registry/rest.defaultTableConvertor`).
    pub(super) const DEFAULT_COLUMNS: &[Column] = &[NAME, col("Created At", "date", CREATED_DOC)];
}

use columns::*;

// ---------------------------------------------------------------------------------------
// Printers

type Cells = fn(&Value, DateTime<Utc>) -> Vec<Value>;

struct Printer {
    columns: &'static [Column],
    cells: Cells,
    conditions: Option<fn(&Value) -> Option<Value>>,
}

fn printer_for(info: &ResourceInfo) -> Printer {
    let (columns, cells): (&'static [Column], Cells) = match (info.group, info.kind) {
        ("", "Pod") => {
            return Printer { columns: POD_COLUMNS, cells: pod_cells, conditions: Some(pod_conditions) };
        }
        ("", "Service") => (SERVICE_COLUMNS, service_cells),
        ("", "Endpoints") => (ENDPOINTS_COLUMNS, endpoints_cells),
        ("", "ConfigMap") => (CONFIG_MAP_COLUMNS, config_map_cells),
        ("", "Secret") => (SECRET_COLUMNS, secret_cells),
        ("", "Event") => (EVENT_COLUMNS, core_event_cells),
        ("events.k8s.io", "Event") => (EVENT_COLUMNS, events_api_event_cells),
        ("", "ServiceAccount") => (SERVICE_ACCOUNT_COLUMNS, service_account_cells),
        ("", "Namespace") => (NAMESPACE_COLUMNS, namespace_cells),
        ("", "Node") => (NODE_COLUMNS, node_cells),
        ("", "PersistentVolume") => (PERSISTENT_VOLUME_COLUMNS, persistent_volume_cells),
        ("", "PersistentVolumeClaim") => (PERSISTENT_VOLUME_CLAIM_COLUMNS, persistent_volume_claim_cells),
        ("", "ResourceQuota") => (RESOURCE_QUOTA_COLUMNS, resource_quota_cells),
        ("apps", "Deployment") => (DEPLOYMENT_COLUMNS, deployment_cells),
        ("apps", "ReplicaSet") => (REPLICA_SET_COLUMNS, replica_set_cells),
        ("apps", "StatefulSet") => (STATEFUL_SET_COLUMNS, stateful_set_cells),
        ("apps", "DaemonSet") => (DAEMON_SET_COLUMNS, daemon_set_cells),
        ("apps", "ControllerRevision") => (CONTROLLER_REVISION_COLUMNS, controller_revision_cells),
        ("batch", "Job") => (JOB_COLUMNS, job_cells),
        ("batch", "CronJob") => (CRON_JOB_COLUMNS, cron_job_cells),
        ("networking.k8s.io", "Ingress") => (INGRESS_COLUMNS, ingress_cells),
        ("networking.k8s.io", "IngressClass") => (INGRESS_CLASS_COLUMNS, ingress_class_cells),
        ("networking.k8s.io", "NetworkPolicy") => (NETWORK_POLICY_COLUMNS, network_policy_cells),
        ("discovery.k8s.io", "EndpointSlice") => (ENDPOINT_SLICE_COLUMNS, endpoint_slice_cells),
        ("coordination.k8s.io", "Lease") => (LEASE_COLUMNS, lease_cells),
        ("rbac.authorization.k8s.io", "RoleBinding") => (ROLE_BINDING_COLUMNS, role_binding_cells),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => (CLUSTER_ROLE_BINDING_COLUMNS, role_binding_cells),
        ("storage.k8s.io", "StorageClass") => (STORAGE_CLASS_COLUMNS, storage_class_cells),
        // Role, ClusterRole, LimitRange and anything else: Kubernetes has no printer.
        _ => (DEFAULT_COLUMNS, default_cells),
    };
    Printer { columns, cells, conditions: None }
}

fn default_cells(obj: &Value, _now: DateTime<Utc>) -> Vec<Value> {
    // Go formats the zero time too.
    let created = time(obj, &["metadata", "creationTimestamp"])
        .map_or_else(|| "0001-01-01T00:00:00Z".to_string(), |t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
    vec![name(obj).into(), created.into()]
}

// --- core/v1 --------------------------------------------------------------------------

/// The pod READY, STATUS and RESTARTS logic of `printPod`, sidecars included.
fn pod_cells(pod: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let init_specs = list(pod, &["spec", "initContainers"]);
    let is_sidecar =
        |name: &str| init_specs.iter().any(|c| text(c, &["name"]) == name && text(c, &["restartPolicy"]) == "Always");
    let total = list(pod, &["spec", "containers"]).len()
        + init_specs.iter().filter(|c| text(c, &["restartPolicy"]) == "Always").count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut last_sidecar_restart: Option<DateTime<Utc>> = None;

    let phase = text(pod, &["status", "phase"]);
    let mut reason = match text(pod, &["status", "reason"]) {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    let conditions = list(pod, &["status", "conditions"]);
    if conditions.iter().any(|c| text(c, &["type"]) == "PodScheduled" && text(c, &["reason"]) == "SchedulingGated") {
        reason = "SchedulingGated".into();
    }

    let mut initializing = false;
    for (i, cs) in list(pod, &["status", "initContainerStatuses"]).iter().enumerate() {
        let count = int(cs, &["restartCount"]);
        let finished = time(cs, &["lastState", "terminated", "finishedAt"]);
        restarts += count;
        last_restart = later(last_restart, finished);
        let sidecar = is_sidecar(text(cs, &["name"]));
        if sidecar {
            sidecar_restarts += count;
            last_sidecar_restart = later(last_sidecar_restart, finished);
        }
        let terminated = get(cs, &["state", "terminated"]);
        let waiting_reason = text(cs, &["state", "waiting", "reason"]);
        if terminated.is_some_and(|t| int(t, &["exitCode"]) == 0) {
            continue;
        }
        if sidecar && flag(cs, &["started"]) {
            if flag(cs, &["ready"]) {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            match text(t, &["reason"]) {
                "" if int(t, &["signal"]) != 0 => format!("Init:Signal:{}", int(t, &["signal"])),
                "" => format!("Init:ExitCode:{}", int(t, &["exitCode"])),
                r => format!("Init:{r}"),
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{}/{}", i, init_specs.len())
        };
        initializing = true;
        break;
    }

    let initialized =
        conditions.iter().find(|c| text(c, &["type"]) == "Initialized").is_some_and(|c| text(c, &["status"]) == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for cs in list(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts += int(cs, &["restartCount"]);
            last_restart = later(last_restart, time(cs, &["lastState", "terminated", "finishedAt"]));
            let waiting_reason = text(cs, &["state", "waiting", "reason"]);
            let terminated = get(cs, &["state", "terminated"]);
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                reason = match text(t, &["reason"]) {
                    "" if int(t, &["signal"]) != 0 => format!("Signal:{}", int(t, &["signal"])),
                    "" => format!("ExitCode:{}", int(t, &["exitCode"])),
                    r => r.to_string(),
                };
            } else if flag(cs, &["ready"]) && get(cs, &["state", "running"]).is_some() {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose last container completed while another still runs is not "Completed".
        if reason == "Completed" && has_running {
            let pod_ready = conditions.iter().any(|c| text(c, &["type"]) == "Ready" && text(c, &["status"]) == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.into();
        }
    }

    if get(pod, &["metadata", "deletionTimestamp"]).is_some() {
        if text(pod, &["status", "reason"]) == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }

    let restarts_cell = match last_restart {
        Some(at) if restarts != 0 => format!("{restarts} ({} ago)", human_duration(now - at)),
        _ => restarts.to_string(),
    };

    // status.podIP wins over podIPs[0], as in the v1 -> internal conversion.
    let ip = match text(pod, &["status", "podIP"]) {
        "" => list(pod, &["status", "podIPs"]).first().map_or("", |p| text(p, &["ip"])),
        ip => ip,
    };
    let gates = list(pod, &["spec", "readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let satisfied = gates
            .iter()
            .filter(|g| {
                let wanted = text(g, &["conditionType"]);
                conditions.iter().find(|c| text(c, &["type"]) == wanted).is_some_and(|c| text(c, &["status"]) == "True")
            })
            .count();
        format!("{satisfied}/{}", gates.len())
    };

    vec![
        name(pod).into(),
        format!("{ready}/{total}").into(),
        reason.into(),
        restarts_cell.into(),
        age(pod, now),
        or_none(ip).into(),
        or_none(text(pod, &["spec", "nodeName"])).into(),
        or_none(text(pod, &["status", "nominatedNodeName"])).into(),
        readiness_gates.into(),
    ]
}

fn pod_conditions(pod: &Value) -> Option<Value> {
    let (reason, message) = match text(pod, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    let mut c = Map::new();
    c.insert("type".into(), "Completed".into());
    c.insert("status".into(), "True".into());
    c.insert("reason".into(), reason.into());
    c.insert("message".into(), message.into());
    Some(Value::Array(vec![Value::Object(c)]))
}

fn service_cells(svc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let ty = default_str(text(svc, &["spec", "type"]), "ClusterIP");
    // spec.clusterIP wins over clusterIPs[0], as in the v1 -> internal conversion.
    let cluster_ip = match text(svc, &["spec", "clusterIP"]) {
        "" => list(svc, &["spec", "clusterIPs"]).first().and_then(Value::as_str).unwrap_or(""),
        ip => ip,
    };
    let external_ips = strings(list(svc, &["spec", "externalIPs"]));
    let external = match ty {
        "ClusterIP" | "NodePort" if external_ips.is_empty() => "<none>".to_string(),
        "ClusterIP" | "NodePort" => external_ips.join(","),
        "LoadBalancer" => {
            let lb = load_balancer_addresses(list(svc, &["status", "loadBalancer", "ingress"]));
            if !external_ips.is_empty() {
                lb.iter().map(String::as_str).chain(external_ips.iter().copied()).collect::<Vec<_>>().join(",")
            } else if !lb.is_empty() {
                lb.join(",")
            } else {
                "<pending>".to_string()
            }
        }
        "ExternalName" => text(svc, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports = list(svc, &["spec", "ports"])
        .iter()
        .map(|p| {
            let port = int(p, &["port"]);
            let protocol = default_str(text(p, &["protocol"]), "TCP");
            match int(p, &["nodePort"]) {
                n if n > 0 => format!("{port}:{n}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    vec![
        name(svc).into(),
        ty.into(),
        or_none(cluster_ip).into(),
        external.into(),
        or_none(&ports).into(),
        age(svc, now),
        format_labels(get(svc, &["spec", "selector"])).into(),
    ]
}

fn endpoints_cells(ep: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name(ep).into(), format_endpoints(list(ep, &["subsets"])).into(), age(ep, now)]
}

/// Up to three "ip:port" pairs, then " + N more...".
fn format_endpoints(subsets: &[Value]) -> String {
    if subsets.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 3;
    let mut shown: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for subset in subsets {
        let addresses = list(subset, &["addresses"]);
        let ports = list(subset, &["ports"]);
        // Headless services may have no ports: list bare IPs.
        let port_numbers: Vec<Option<i64>> =
            if ports.is_empty() { vec![None] } else { ports.iter().map(|p| Some(int(p, &["port"]))).collect() };
        for port in port_numbers {
            count += addresses.len();
            for address in addresses {
                if shown.len() == MAX {
                    more = true;
                    break;
                }
                let ip = text(address, &["ip"]);
                shown.push(match port {
                    Some(port) => join_host_port(ip, port),
                    None => ip.to_string(),
                });
            }
        }
    }
    let joined = shown.join(",");
    if more { format!("{joined} + {} more...", count - MAX) } else { joined }
}

fn config_map_cells(cm: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let data = entries(cm, &["data"]) + entries(cm, &["binaryData"]);
    vec![name(cm).into(), data.into(), age(cm, now)]
}

fn secret_cells(secret: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // stringData is write-only and merged into data; count the union in case it was not.
    let mut keys: BTreeSet<&str> = BTreeSet::new();
    for field in ["data", "stringData"] {
        if let Some(map) = get(secret, &[field]).and_then(Value::as_object) {
            keys.extend(map.keys().map(String::as_str));
        }
    }
    vec![
        name(secret).into(),
        default_str(text(secret, &["type"]), "Opaque").into(),
        keys.len().into(),
        age(secret, now),
    ]
}

/// The fields `printEvent` reads, from either core/v1 or events.k8s.io/v1 JSON.
struct EventView<'a> {
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    event_time: Option<DateTime<Utc>>,
    count: i64,
    series: Option<&'a Value>,
    regarding: Option<&'a Value>,
    source: Option<&'a Value>,
    reporting_controller: &'a str,
    message: &'a str,
}

fn core_event_cells(ev: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let view = EventView {
        first: time(ev, &["firstTimestamp"]),
        last: time(ev, &["lastTimestamp"]),
        event_time: time(ev, &["eventTime"]),
        count: int(ev, &["count"]),
        series: get(ev, &["series"]),
        regarding: get(ev, &["involvedObject"]),
        source: get(ev, &["source"]),
        reporting_controller: text(ev, &["reportingComponent"]),
        message: text(ev, &["message"]),
    };
    event_cells(ev, &view, now)
}

fn events_api_event_cells(ev: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let view = EventView {
        first: time(ev, &["deprecatedFirstTimestamp"]),
        last: time(ev, &["deprecatedLastTimestamp"]),
        event_time: time(ev, &["eventTime"]),
        count: int(ev, &["deprecatedCount"]),
        series: get(ev, &["series"]),
        regarding: get(ev, &["regarding"]),
        source: get(ev, &["deprecatedSource"]),
        reporting_controller: text(ev, &["reportingController"]),
        message: text(ev, &["note"]),
    };
    event_cells(ev, &view, now)
}

fn event_cells(ev: &Value, view: &EventView<'_>, now: DateTime<Utc>) -> Vec<Value> {
    let since = |t: Option<DateTime<Utc>>| t.map_or_else(|| "<unknown>".to_string(), |t| human_duration(now - t));
    let first_seen = since(view.first.or(view.event_time));
    let mut last_seen = if view.last.is_some() { since(view.last) } else { first_seen.clone() };
    let mut count = view.count;
    if let Some(series) = view.series {
        last_seen = since(time(series, &["lastObservedTime"]));
        count = int(series, &["count"]);
    } else if count == 0 {
        // Singleton events of the new API carry no count.
        count = 1;
    }
    let empty = Value::Null;
    let regarding = view.regarding.unwrap_or(&empty);
    let kind = text(regarding, &["kind"]).to_lowercase();
    let target = match text(regarding, &["name"]) {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let source = view.source.unwrap_or(&empty);
    let component = default_str(text(source, &["component"]), view.reporting_controller);
    let host = default_str(text(source, &["host"]), text(ev, &["reportingInstance"]));
    let source_cell = if host.is_empty() { component.to_string() } else { format!("{component}, {host}") };
    vec![
        last_seen.into(),
        text(ev, &["type"]).into(),
        text(ev, &["reason"]).into(),
        target.into(),
        text(regarding, &["fieldPath"]).into(),
        source_cell.into(),
        view.message.trim().into(),
        first_seen.into(),
        count.into(),
        name(ev).into(),
    ]
}

fn service_account_cells(sa: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name(sa).into(), list(sa, &["secrets"]).len().into(), age(sa, now)]
}

fn namespace_cells(ns: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name(ns).into(), default_str(text(ns, &["status", "phase"]), "Active").into(), age(ns, now)]
}

fn node_cells(node: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut status: Vec<&str> = Vec::new();
    // The last Ready condition wins, as with Go's map keyed by type.
    if let Some(ready) = list(node, &["status", "conditions"]).iter().rev().find(|c| text(c, &["type"]) == "Ready") {
        status.push(if text(ready, &["status"]) == "True" { "Ready" } else { "NotReady" });
    } else {
        status.push("Unknown");
    }
    if flag(node, &["spec", "unschedulable"]) {
        status.push("SchedulingDisabled");
    }
    let mut roles: BTreeSet<&str> = BTreeSet::new();
    if let Some(labels) = get(node, &["metadata", "labels"]).and_then(Value::as_object) {
        for (key, value) in labels {
            if let Some(role) = key.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role);
                }
            } else if key == "kubernetes.io/role"
                && let Some(role) = value.as_str().filter(|r| !r.is_empty())
            {
                roles.insert(role);
            }
        }
    }
    let roles = roles.into_iter().collect::<Vec<_>>().join(",");
    let address = |ty: &str| {
        list(node, &["status", "addresses"])
            .iter()
            .find(|a| text(a, &["type"]) == ty)
            .map_or("<none>", |a| text(a, &["address"]))
    };
    let info = |field: &str| match text(node, &["status", "nodeInfo", field]) {
        "" => "<unknown>",
        v => v,
    };
    vec![
        name(node).into(),
        status.join(",").into(),
        or_none(&roles).into(),
        age(node, now),
        text(node, &["status", "nodeInfo", "kubeletVersion"]).into(),
        address("InternalIP").into(),
        address("ExternalIP").into(),
        info("osImage").into(),
        info("kernelVersion").into(),
        info("containerRuntimeVersion").into(),
    ]
}

fn persistent_volume_cells(pv: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let claim = match get(pv, &["spec", "claimRef"]) {
        Some(r) => format!("{}/{}", text(r, &["namespace"]), text(r, &["name"])),
        None => String::new(),
    };
    let phase = if get(pv, &["metadata", "deletionTimestamp"]).is_some() {
        "Terminating"
    } else {
        default_str(text(pv, &["status", "phase"]), "Pending")
    };
    let class = match get(pv, &["metadata", "annotations", "volume.beta.kubernetes.io/storage-class"]) {
        Some(v) => v.as_str().unwrap_or(""),
        None => text(pv, &["spec", "storageClassName"]),
    };
    vec![
        name(pv).into(),
        quantity(get(pv, &["spec", "capacity", "storage"])).into(),
        access_modes(list(pv, &["spec", "accessModes"])).into(),
        default_str(text(pv, &["spec", "persistentVolumeReclaimPolicy"]), "Retain").into(),
        phase.into(),
        claim.into(),
        class.into(),
        default_str(text(pv, &["spec", "volumeAttributesClassName"]), "<unset>").into(),
        text(pv, &["status", "reason"]).into(),
        age(pv, now),
        default_str(text(pv, &["spec", "volumeMode"]), "Filesystem").into(),
    ]
}

fn persistent_volume_claim_cells(pvc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let phase = if get(pvc, &["metadata", "deletionTimestamp"]).is_some() {
        "Terminating"
    } else {
        default_str(text(pvc, &["status", "phase"]), "Pending")
    };
    let volume = text(pvc, &["spec", "volumeName"]);
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (quantity(get(pvc, &["status", "capacity", "storage"])), access_modes(list(pvc, &["status", "accessModes"])))
    };
    let class = match get(pvc, &["metadata", "annotations", "volume.beta.kubernetes.io/storage-class"]) {
        Some(v) => v.as_str().unwrap_or(""),
        None => text(pvc, &["spec", "storageClassName"]),
    };
    vec![
        name(pvc).into(),
        phase.into(),
        volume.into(),
        capacity.into(),
        modes.into(),
        class.into(),
        default_str(text(pvc, &["spec", "volumeAttributesClassName"]), "<unset>").into(),
        age(pvc, now),
        default_str(text(pvc, &["spec", "volumeMode"]), "Filesystem").into(),
    ]
}

fn resource_quota_cells(quota: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut requests: Vec<String> = Vec::new();
    let mut limits: Vec<String> = Vec::new();
    if let Some(hard) = get(quota, &["status", "hard"]).and_then(Value::as_object) {
        let mut names: Vec<&String> = hard.keys().collect();
        names.sort();
        for resource in names {
            let used = quantity(get(quota, &["status", "used", resource]));
            let entry = format!("{resource}: {used}/{}", quantity(hard.get(resource)));
            if resource.split('.').next() == Some("limits") && resource.contains('.') {
                limits.push(entry);
            } else {
                requests.push(entry);
            }
        }
    }
    vec![name(quota).into(), requests.join(", ").into(), limits.join(", ").into(), age(quota, now)]
}

// --- apps/v1 ----------------------------------------------------------------------------

fn deployment_cells(d: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = container_cells(d, &["spec", "template", "spec", "containers"]);
    let selector = selector_string(get(d, &["spec", "selector"])).unwrap_or_else(|_| "<invalid>".into());
    vec![
        name(d).into(),
        format!("{}/{}", int(d, &["status", "readyReplicas"]), replicas(d)).into(),
        int(d, &["status", "updatedReplicas"]).into(),
        int(d, &["status", "availableReplicas"]).into(),
        age(d, now),
        containers.into(),
        images.into(),
        selector.into(),
    ]
}

fn replica_set_cells(rs: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = container_cells(rs, &["spec", "template", "spec", "containers"]);
    vec![
        name(rs).into(),
        replicas(rs).into(),
        int(rs, &["status", "replicas"]).into(),
        int(rs, &["status", "readyReplicas"]).into(),
        age(rs, now),
        containers.into(),
        images.into(),
        format_label_selector(get(rs, &["spec", "selector"])).into(),
    ]
}

fn stateful_set_cells(sts: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = container_cells(sts, &["spec", "template", "spec", "containers"]);
    vec![
        name(sts).into(),
        format!("{}/{}", int(sts, &["status", "readyReplicas"]), replicas(sts)).into(),
        age(sts, now),
        containers.into(),
        images.into(),
    ]
}

fn daemon_set_cells(ds: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = container_cells(ds, &["spec", "template", "spec", "containers"]);
    vec![
        name(ds).into(),
        int(ds, &["status", "desiredNumberScheduled"]).into(),
        int(ds, &["status", "currentNumberScheduled"]).into(),
        int(ds, &["status", "numberReady"]).into(),
        int(ds, &["status", "updatedNumberScheduled"]).into(),
        int(ds, &["status", "numberAvailable"]).into(),
        format_labels(get(ds, &["spec", "template", "spec", "nodeSelector"])).into(),
        age(ds, now),
        containers.into(),
        images.into(),
        format_label_selector(get(ds, &["spec", "selector"])).into(),
    ]
}

fn controller_revision_cells(cr: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let controller = list(cr, &["metadata", "ownerReferences"]).iter().find(|r| flag(r, &["controller"])).map_or_else(
        || "<none>".to_string(),
        |r| {
            // "apps/v1" -> group "apps"; "v1" -> core.
            let group = text(r, &["apiVersion"]).rsplit_once('/').map_or("", |(g, _)| g);
            let kind = text(r, &["kind"]);
            let group_kind = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
            if group_kind.is_empty() {
                text(r, &["name"]).to_string()
            } else {
                format!("{}/{}", group_kind.to_lowercase(), text(r, &["name"]))
            }
        },
    );
    vec![name(cr).into(), controller.into(), int(cr, &["revision"]).into(), age(cr, now)]
}

// --- batch/v1 ---------------------------------------------------------------------------

fn job_cells(job: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let succeeded = int(job, &["status", "succeeded"]);
    let completions = opt_int(job, &["spec", "completions"]);
    let parallelism = opt_int(job, &["spec", "parallelism"]);
    let completions = match (completions, parallelism) {
        (Some(c), _) => format!("{succeeded}/{c}"),
        // Defaulting sets completions = 1 when neither is given.
        (None, None) => format!("{succeeded}/1"),
        (None, Some(p)) if p > 1 => format!("{succeeded}/1 of {p}"),
        (None, Some(_)) => format!("{succeeded}/1"),
    };
    let duration = match (time(job, &["status", "startTime"]), time(job, &["status", "completionTime"])) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now - start),
        (Some(start), Some(end)) => human_duration(end - start),
    };
    let conditions = list(job, &["status", "conditions"]);
    let has =
        |ty: &str| conditions.iter().find(|c| text(c, &["type"]) == ty).is_some_and(|c| text(c, &["status"]) == "True");
    let status = if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if get(job, &["metadata", "deletionTimestamp"]).is_some() {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (containers, images) = container_cells(job, &["spec", "template", "spec", "containers"]);
    vec![
        name(job).into(),
        status.into(),
        completions.into(),
        duration.into(),
        age(job, now),
        containers.into(),
        images.into(),
        format_label_selector(get(job, &["spec", "selector"])).into(),
    ]
}

fn cron_job_cells(cj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let last_schedule = match time(cj, &["status", "lastScheduleTime"]) {
        Some(t) => human_duration(now - t),
        None => "<none>".to_string(),
    };
    let suspend = if flag(cj, &["spec", "suspend"]) { "True" } else { "False" };
    let (containers, images) = container_cells(cj, &["spec", "jobTemplate", "spec", "template", "spec", "containers"]);
    vec![
        name(cj).into(),
        text(cj, &["spec", "schedule"]).into(),
        default_str(text(cj, &["spec", "timeZone"]), "<none>").into(),
        suspend.into(),
        list(cj, &["status", "active"]).len().into(),
        last_schedule.into(),
        age(cj, now),
        containers.into(),
        images.into(),
        format_label_selector(get(cj, &["spec", "jobTemplate", "spec", "selector"])).into(),
    ]
}

// --- networking, discovery, coordination, rbac, storage ---------------------------------

fn ingress_cells(ing: &Value, now: DateTime<Utc>) -> Vec<Value> {
    const MAX: usize = 3;
    let rules = list(ing, &["spec", "rules"]);
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX {
            more = true;
        }
        let host = text(rule, &["host"]);
        if !more && !host.is_empty() {
            hosts.push(host);
        }
    }
    let hosts = if hosts.is_empty() {
        "*".to_string()
    } else if more {
        format!("{} + {} more...", hosts.join(","), rules.len() - MAX)
    } else {
        hosts.join(",")
    };
    let ports = if list(ing, &["spec", "tls"]).is_empty() { "80" } else { "80, 443" };
    vec![
        name(ing).into(),
        default_str(text(ing, &["spec", "ingressClassName"]), "<none>").into(),
        hosts.into(),
        load_balancer_addresses(list(ing, &["status", "loadBalancer", "ingress"])).join(",").into(),
        ports.into(),
        age(ing, now),
    ]
}

fn ingress_class_cells(ic: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let parameters = match get(ic, &["spec", "parameters"]) {
        Some(p) => {
            let mut out = text(p, &["kind"]).to_string();
            if let Some(group) = get(p, &["apiGroup"]).and_then(Value::as_str) {
                out = format!("{out}.{group}");
            }
            format!("{out}/{}", text(p, &["name"]))
        }
        None => "<none>".to_string(),
    };
    vec![name(ic).into(), text(ic, &["spec", "controller"]).into(), parameters.into(), age(ic, now)]
}

fn network_policy_cells(np: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name(np).into(), format_label_selector(get(np, &["spec", "podSelector"])).into(), age(np, now)]
}

fn endpoint_slice_cells(es: &Value, now: DateTime<Utc>) -> Vec<Value> {
    const MAX: usize = 3;
    let port_list = list(es, &["ports"]);
    let ports: Vec<String> = port_list
        .iter()
        .take(MAX)
        .map(|p| match (opt_int(p, &["port"]), get(p, &["name"]).and_then(Value::as_str)) {
            (Some(port), _) => port.to_string(),
            (None, Some(name)) => name.to_string(),
            (None, None) => "*".to_string(),
        })
        .collect();
    let addresses: Vec<&str> = list(es, &["endpoints"]).iter().flat_map(|e| strings(list(e, &["addresses"]))).collect();
    let shown: Vec<String> = addresses.iter().take(MAX).map(|a| a.to_string()).collect();
    vec![
        name(es).into(),
        text(es, &["addressType"]).into(),
        list_with_more(&ports, port_list.len(), MAX).into(),
        list_with_more(&shown, addresses.len(), MAX).into(),
        age(es, now),
    ]
}

fn list_with_more(shown: &[String], count: usize, max: usize) -> String {
    let joined = shown.join(",");
    if count > max {
        format!("{joined} + {} more...", count - max)
    } else if joined.is_empty() {
        "<unset>".into()
    } else {
        joined
    }
}

fn lease_cells(lease: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name(lease).into(), text(lease, &["spec", "holderIdentity"]).into(), age(lease, now)]
}

fn role_binding_cells(rb: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let role = format!("{}/{}", text(rb, &["roleRef", "kind"]), text(rb, &["roleRef", "name"]));
    let (mut users, mut groups, mut service_accounts) = (Vec::new(), Vec::new(), Vec::new());
    for subject in list(rb, &["subjects"]) {
        let name = text(subject, &["name"]);
        match text(subject, &["kind"]) {
            "User" => users.push(name.to_string()),
            "Group" => groups.push(name.to_string()),
            "ServiceAccount" => service_accounts.push(format!("{}/{name}", text(subject, &["namespace"]))),
            _ => {}
        }
    }
    vec![
        name(rb).into(),
        role.into(),
        age(rb, now),
        users.join(", ").into(),
        groups.join(", ").into(),
        service_accounts.join(", ").into(),
    ]
}

fn storage_class_cells(sc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let is_default =
        ["storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"]
            .iter()
            .any(|a| text(sc, &["metadata", "annotations", a]) == "true");
    let mut display = name(sc).to_string();
    if is_default {
        display.push_str(" (default)");
    }
    vec![
        display.into(),
        text(sc, &["provisioner"]).into(),
        default_str(text(sc, &["reclaimPolicy"]), "Delete").into(),
        default_str(text(sc, &["volumeBindingMode"]), "Immediate").into(),
        flag(sc, &["allowVolumeExpansion"]).into(),
        age(sc, now),
    ]
}

// ---------------------------------------------------------------------------------------
// Formatting helpers shared by the printers

/// `labels.FormatLabels`: "k=v,…" sorted by key, or "<none>".
fn format_labels(map: Option<&Value>) -> String {
    let Some(map) = map.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        return "<none>".into();
    };
    let mut pairs: Vec<String> = map.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect();
    pairs.sort();
    pairs.join(",")
}

/// `metav1.FormatLabelSelector`: the selector string, "<none>" when it selects everything
/// or nothing, "<error>" when malformed.
fn format_label_selector(selector: Option<&Value>) -> String {
    match selector_string(selector) {
        Ok(s) if s.is_empty() => "<none>".into(),
        Ok(s) => s,
        Err(()) => "<error>".into(),
    }
}

/// `LabelSelectorAsSelector(...).String()`: requirements sorted by key, "" for nil or empty.
fn selector_string(selector: Option<&Value>) -> Result<String, ()> {
    let Some(selector) = selector else {
        return Ok(String::new());
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(labels) = get(selector, &["matchLabels"]).and_then(Value::as_object) {
        for (key, value) in labels {
            requirements.push((key.clone(), format!("{key}={}", value.as_str().unwrap_or(""))));
        }
    }
    for expr in list(selector, &["matchExpressions"]) {
        let key = text(expr, &["key"]);
        let mut values = strings(list(expr, &["values"]));
        values.sort_unstable();
        let rendered = match text(expr, &["operator"]) {
            "In" | "NotIn" if values.is_empty() => return Err(()),
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" | "DoesNotExist" if !values.is_empty() => return Err(()),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return Err(()),
        };
        requirements.push((key.to_string(), rendered));
    }
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(requirements.into_iter().map(|(_, r)| r).collect::<Vec<_>>().join(","))
}

/// Container names and images of a pod template, comma-joined.
fn container_cells(obj: &Value, path: &[&str]) -> (String, String) {
    let containers = list(obj, path);
    let names: Vec<&str> = containers.iter().map(|c| text(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

/// Sorted, de-duplicated IPs (or hostnames) of load-balancer ingress points.
fn load_balancer_addresses(ingress: &[Value]) -> Vec<String> {
    let set: BTreeSet<&str> = ingress
        .iter()
        .filter_map(|i| match (text(i, &["ip"]), text(i, &["hostname"])) {
            ("", "") => None,
            ("", host) => Some(host),
            (ip, _) => Some(ip),
        })
        .collect();
    set.into_iter().map(str::to_string).collect()
}

/// `GetAccessModesAsString`: RWO, ROX, RWX, RWOP in that order, de-duplicated.
fn access_modes(modes: &[Value]) -> String {
    let present = |mode: &str| modes.iter().any(|m| m.as_str() == Some(mode));
    [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP")]
        .iter()
        .filter(|(mode, _)| present(mode))
        .map(|(_, short)| *short)
        .collect::<Vec<_>>()
        .join(",")
}

/// A quantity as stored; a missing one is the zero quantity, "0".
fn quantity(q: Option<&Value>) -> String {
    match q {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".into(),
    }
}

/// `net.JoinHostPort`: brackets IPv6 hosts.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

fn replicas(obj: &Value) -> i64 {
    // spec.replicas defaults to 1.
    opt_int(obj, &["spec", "replicas"]).unwrap_or(1)
}

fn or_none(s: &str) -> &str {
    default_str(s, "<none>")
}

fn default_str<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() { default } else { s }
}

fn later(current: Option<DateTime<Utc>>, candidate: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (current, candidate) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

// ---------------------------------------------------------------------------------------
// JSON access: absent, null and mistyped fields read as empty / zero.

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, key| cur.get(key)).filter(|v| !v.is_null())
}

fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    get(v, path).and_then(Value::as_str).unwrap_or("")
}

fn opt_int(v: &Value, path: &[&str]) -> Option<i64> {
    get(v, path).and_then(Value::as_i64)
}

fn int(v: &Value, path: &[&str]) -> i64 {
    opt_int(v, path).unwrap_or(0)
}

fn flag(v: &Value, path: &[&str]) -> bool {
    get(v, path).and_then(Value::as_bool).unwrap_or(false)
}

fn list<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn strings(values: &[Value]) -> Vec<&str> {
    values.iter().filter_map(Value::as_str).collect()
}

fn entries(v: &Value, path: &[&str]) -> usize {
    get(v, path).and_then(Value::as_object).map_or(0, Map::len)
}

fn time(v: &Value, path: &[&str]) -> Option<DateTime<Utc>> {
    let s = get(v, path)?.as_str()?;
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

fn name(obj: &Value) -> &str {
    text(obj, &["metadata", "name"])
}

/// The AGE cell: "<unknown>" without a creationTimestamp.
fn age(obj: &Value, now: DateTime<Utc>) -> Value {
    match time(obj, &["metadata", "creationTimestamp"]) {
        Some(t) => human_duration(now - t).into(),
        None => "<unknown>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::resources::{RESOURCES, find, find_kind};
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-06-01T12:00:00Z").map(|t| t.with_timezone(&Utc)).expect("valid time")
    }

    /// RFC3339 of `now` minus `secs` seconds.
    fn ago(secs: i64) -> String {
        (now() - Duration::seconds(secs)).to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    fn info(group: &str, kind: &str) -> &'static ResourceInfo {
        find_kind(group, kind).expect("served kind")
    }

    /// Builds a table of one object and returns (column names, cells of row 0).
    fn row(group: &str, kind: &str, obj: Value) -> (Vec<String>, Vec<Value>) {
        let t = table(info(group, kind), &[&obj], IncludeObject::None, now(), "1", None);
        let names = t["columnDefinitions"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| c["name"].as_str().expect("name").to_string())
            .collect();
        let cells = t["rows"][0]["cells"].as_array().expect("cells").clone();
        (names, cells)
    }

    fn cells(group: &str, kind: &str, obj: Value) -> Vec<Value> {
        row(group, kind, obj).1
    }

    fn pod(status: Value) -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(300)},
            "spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "redis"}]},
            "status": status,
        })
    }

    #[test]
    fn human_duration_matches_apimachinery() {
        let cases: &[(i64, &str)] = &[
            (-3, "<invalid>"),
            (-2, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (123, "2m3s"),
            (599, "9m59s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 4 * 60 + 59, "3h4m"),
            (8 * 3600 - 1, "7h59m"),
            (8 * 3600, "8h"),
            (48 * 3600 - 1, "47h"),
            (48 * 3600, "2d"),
            (2 * 86400 + 5 * 3600, "2d5h"),
            (8 * 86400 - 1, "7d23h"),
            (8 * 86400, "8d"),
            (730 * 86400 - 1, "729d"),
            (730 * 86400, "2y"),
            ((3 * 365 + 45) * 86400, "3y45d"),
            (8 * 365 * 86400, "8y"),
            (20 * 365 * 86400, "20y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(Duration::seconds(*secs)), *want, "{secs}s");
        }
        // Go truncates toward zero: -1.5s is "0s".
        assert_eq!(human_duration(Duration::milliseconds(-1500)), "0s");
        assert_eq!(human_duration(Duration::milliseconds(119_999)), "119s");
    }

    #[test]
    fn include_object_parses_query_values() {
        assert_eq!(IncludeObject::from_query(None), Ok(IncludeObject::Metadata));
        assert_eq!(IncludeObject::from_query(Some("")), Ok(IncludeObject::Metadata));
        assert_eq!(IncludeObject::from_query(Some("None")), Ok(IncludeObject::None));
        assert_eq!(IncludeObject::from_query(Some("Object")), Ok(IncludeObject::Object));
        let err = IncludeObject::from_query(Some("object")).expect_err("case-sensitive");
        assert_eq!(
            err.to_string(),
            "includeObject: Invalid value: \"object\": must be 'Metadata', 'Object', 'None', or empty"
        );
    }

    #[test]
    fn table_envelope_and_row_objects() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "ns", "creationTimestamp": ago(10), "labels": {"a": "b"}},
            "data": {"x": "1"}});
        let info = find("", "v1", "configmaps").expect("configmaps");
        let t = table(info, &[&cm], IncludeObject::Metadata, now(), "42", Some("tok"));
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"], json!({"resourceVersion": "42", "continue": "tok"}));
        assert_eq!(
            t["columnDefinitions"][0],
            json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DOC, "priority": 0})
        );
        assert_eq!(
            t["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": cm["metadata"]})
        );
        assert_eq!(t["rows"][0]["cells"], json!(["c", 1, "10s"]));

        let t = table(info, &[&cm], IncludeObject::None, now(), "42", None);
        assert_eq!(t["metadata"], json!({"resourceVersion": "42"}));
        assert!(t["rows"][0].get("object").is_none());

        // Whole objects get apiVersion/kind even if the stored JSON lacks them.
        let bare = json!({"metadata": {"name": "c"}});
        let t = table(info, &[&bare], IncludeObject::Object, now(), "", Some(""));
        assert_eq!(t["metadata"], json!({}));
        assert_eq!(t["rows"][0]["object"], json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}));
    }

    #[test]
    fn every_kind_has_one_cell_per_column() {
        let empty = json!({});
        let minimal = json!({"metadata": {"name": "x", "creationTimestamp": ago(61)}});
        for info in RESOURCES {
            for obj in [&empty, &minimal] {
                let t = table(info, &[obj], IncludeObject::Metadata, now(), "1", None);
                let columns = t["columnDefinitions"].as_array().expect("columns").len();
                let cells = t["rows"][0]["cells"].as_array().expect("cells").len();
                assert_eq!(columns, cells, "{} {}", info.group, info.kind);
            }
        }
    }

    #[test]
    fn pod_columns_and_running_pod() {
        let (names, c) = row(
            "",
            "Pod",
            json!({
                "metadata": {"name": "web", "creationTimestamp": ago(300)},
                "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}],
                         "readinessGates": [{"conditionType": "x/ok"}, {"conditionType": "x/other"}]},
                "status": {"phase": "Running", "podIP": "10.0.0.5",
                    "conditions": [{"type": "Ready", "status": "False"}, {"type": "x/ok", "status": "True"}],
                    "containerStatuses": [
                        {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                        {"name": "b", "ready": false, "restartCount": 0, "state": {"running": {}}}]}
            }),
        );
        assert_eq!(
            names,
            ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"]
        );
        assert_eq!(Value::Array(c), json!(["web", "1/2", "Running", "0", "5m", "10.0.0.5", "n1", "<none>", "1/2"]));
    }

    #[test]
    fn pod_status_reasons() {
        let status = |s: Value| cells("", "Pod", pod(s))[2].clone();
        assert_eq!(status(json!({"phase": "Pending"})), "Pending");
        assert_eq!(
            status(json!({"phase": "Pending", "containerStatuses": [
                {"name": "a", "state": {"waiting": {"reason": "ContainerCreating"}}},
                {"name": "b", "state": {"waiting": {"reason": "ContainerCreating"}}}]})),
            "ContainerCreating"
        );
        // Containers are walked last to first, so the first container's reason wins.
        assert_eq!(
            status(json!({"phase": "Running", "containerStatuses": [
                {"name": "a", "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
                {"name": "b", "ready": true, "state": {"running": {}}}]})),
            "CrashLoopBackOff"
        );
        assert_eq!(
            status(json!({"phase": "Succeeded", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "b", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]})),
            "Completed"
        );
        assert_eq!(
            status(json!({"phase": "Failed", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 3}}}]})),
            "ExitCode:3"
        );
        assert_eq!(
            status(json!({"phase": "Failed", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]})),
            "Signal:9"
        );
        // One container completed, the other still running: Running or NotReady by the Ready condition.
        let mixed = |ready: &str| {
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": ready}], "containerStatuses": [
                {"name": "a", "ready": true, "state": {"running": {}}},
                {"name": "b", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]})
        };
        assert_eq!(status(mixed("True")), "Running");
        assert_eq!(status(mixed("False")), "NotReady");
        assert_eq!(status(json!({"phase": "Evicted", "reason": "Evicted"})), "Evicted");
        assert_eq!(
            status(json!({"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]})),
            "SchedulingGated"
        );
    }

    #[test]
    fn pod_terminating_and_node_lost() {
        let mut p = pod(json!({"phase": "Running"}));
        p["metadata"]["deletionTimestamp"] = json!(ago(1));
        assert_eq!(cells("", "Pod", p.clone())[2], "Terminating");
        p["status"]["phase"] = json!("Succeeded");
        assert_eq!(cells("", "Pod", p.clone())[2], "Succeeded", "terminal pods are not Terminating");
        p["status"] = json!({"phase": "Running", "reason": "NodeLost"});
        assert_eq!(cells("", "Pod", p)[2], "Unknown");
    }

    #[test]
    fn pod_init_containers() {
        let with_init = |status: Value| {
            let mut p = pod(status);
            p["spec"]["initContainers"] = json!([{"name": "i1"}, {"name": "i2"}]);
            cells("", "Pod", p)
        };
        let c = with_init(json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "state": {"running": {}}}, {"name": "i2", "state": {"waiting": {"reason": "PodInitializing"}}}]}));
        assert_eq!(c[2], "Init:0/2");
        let c = with_init(json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "state": {"terminated": {"exitCode": 0}}}, {"name": "i2", "state": {"running": {}}}]}));
        assert_eq!(c[2], "Init:1/2");
        let c = with_init(json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(90)}}}]}));
        assert_eq!(c[2], "Init:CrashLoopBackOff");
        assert_eq!(c[3], "4 (90s ago)", "init restarts count while initializing");
        let c = with_init(json!({"phase": "Failed", "initContainerStatuses": [
            {"name": "i1", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}]}));
        assert_eq!(c[2], "Init:Error");
        let c = with_init(json!({"phase": "Failed", "initContainerStatuses": [
            {"name": "i1", "state": {"terminated": {"exitCode": 2}}}]}));
        assert_eq!(c[2], "Init:ExitCode:2");
    }

    #[test]
    fn pod_sidecar_counts_toward_ready_and_restarts() {
        let mut p = pod(json!({"phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
            "initContainerStatuses": [
                {"name": "init", "restartCount": 7, "state": {"terminated": {"exitCode": 0}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(30)}}},
                {"name": "proxy", "started": true, "ready": true, "restartCount": 2, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(400)}}}],
            "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 1, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(200)}}},
                {"name": "b", "ready": true, "restartCount": 0, "state": {"running": {}}}]}));
        p["spec"]["initContainers"] = json!([{"name": "init"}, {"name": "proxy", "restartPolicy": "Always"}]);
        let c = cells("", "Pod", p);
        assert_eq!(c[1], "3/3");
        assert_eq!(c[2], "Running");
        // Plain init container restarts are dropped once initialized; sidecar ones are kept.
        assert_eq!(c[3], "3 (3m20s ago)");
    }

    #[test]
    fn pod_restarts_without_last_state_and_completed_condition() {
        let p = pod(json!({"phase": "Succeeded", "containerStatuses": [
            {"name": "a", "restartCount": 2, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}));
        let t = table(info("", "Pod"), &[&p], IncludeObject::None, now(), "", None);
        assert_eq!(t["rows"][0]["cells"][3], "2");
        assert_eq!(
            t["rows"][0]["conditions"],
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                    "message": "The pod has completed successfully."}])
        );
        assert_eq!(cells("", "Pod", json!({}))[4], "<unknown>");
    }

    #[test]
    fn deployment_columns() {
        let (names, c) = row(
            "apps",
            "Deployment",
            json!({
                "metadata": {"name": "web", "creationTimestamp": ago(3 * 86400 + 3600)},
                "spec": {"replicas": 3,
                    "selector": {"matchLabels": {"app": "web"},
                                 "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]}]},
                    "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"},
                                                         {"name": "log", "image": "busybox"}]}}},
                "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
            }),
        );
        assert_eq!(names, ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"]);
        assert_eq!(
            Value::Array(c),
            json!(["web", "2/3", 3, 2, "3d1h", "nginx,log", "nginx:1.27,busybox", "app=web,tier in (be,fe)"])
        );
        // replicas defaults to 1; a missing status reads as zeros.
        let c = cells("apps", "Deployment", json!({"metadata": {"name": "d"}}));
        assert_eq!(c[1], "0/1");
        assert_eq!(c[7], "");
    }

    #[test]
    fn service_ports_and_external_ips() {
        let (names, c) = row(
            "",
            "Service",
            json!({
                "metadata": {"name": "web", "creationTimestamp": ago(45)},
                "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                         "selector": {"app": "web", "tier": "fe"},
                         "ports": [{"port": 80, "protocol": "TCP"},
                                   {"port": 443, "nodePort": 30443, "protocol": "TCP"}]}
            }),
        );
        assert_eq!(names, ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"]);
        assert_eq!(
            Value::Array(c),
            json!(["web", "NodePort", "10.96.0.10", "<none>", "80/TCP,443:30443/TCP", "45s", "app=web,tier=fe"])
        );

        let lb = |status: Value, external: Value| {
            cells(
                "",
                "Service",
                json!({"spec": {"type": "LoadBalancer", "externalIPs": external,
                "ports": [{"port": 53, "protocol": "UDP"}]}, "status": status}),
            )
        };
        assert_eq!(lb(json!({}), json!([]))[3], "<pending>");
        let c = lb(
            json!({"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example.com"}]}}),
            json!(["1.2.3.4"]),
        );
        assert_eq!(c[3], "5.6.7.8,lb.example.com,1.2.3.4");
        assert_eq!(c[4], "53/UDP");
        let c = cells("", "Service", json!({"spec": {"type": "ExternalName", "externalName": "db.example.com"}}));
        assert_eq!(&c[1..5], &[json!("ExternalName"), json!("<none>"), json!("db.example.com"), json!("<none>")]);
        // Defaults: type ClusterIP, protocol TCP; headless shows "None".
        let c = cells("", "Service", json!({"spec": {"clusterIP": "None", "ports": [{"port": 8080}]}}));
        assert_eq!(&c[1..5], &[json!("ClusterIP"), json!("None"), json!("<none>"), json!("8080/TCP")]);
        assert_eq!(c[6], "<none>");
    }

    #[test]
    fn job_completions_status_and_duration() {
        let job = |spec: Value, status: Value| cells("batch", "Job", json!({"spec": spec, "status": status}));
        let (names, _) = row("batch", "Job", json!({}));
        assert_eq!(names, ["Name", "Status", "Completions", "Duration", "Age", "Containers", "Images", "Selector"]);
        assert_eq!(job(json!({"completions": 5}), json!({"succeeded": 2}))[2], "2/5");
        assert_eq!(job(json!({}), json!({}))[2], "0/1");
        assert_eq!(job(json!({"parallelism": 1}), json!({"succeeded": 1}))[2], "1/1");
        assert_eq!(job(json!({"parallelism": 4}), json!({"succeeded": 3}))[2], "3/1 of 4");

        let running = job(json!({}), json!({"startTime": ago(150)}));
        assert_eq!(running[1], "Running");
        assert_eq!(running[3], "2m30s");
        let done = job(
            json!({"completions": 1, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}}),
            json!({"succeeded": 1, "startTime": ago(100), "completionTime": ago(40),
                   "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}),
        );
        assert_eq!(done[1], "Complete");
        assert_eq!(done[3], "60s");
        assert_eq!(done[7], "batch.kubernetes.io/controller-uid=u1");
        let failed = job(json!({}), json!({"conditions": [{"type": "Failed", "status": "True"}]}));
        assert_eq!(failed[1], "Failed");
        assert_eq!(failed[3], "");
        assert_eq!(job(json!({}), json!({"conditions": [{"type": "Suspended", "status": "True"}]}))[1], "Suspended");
    }

    #[test]
    fn cron_job_columns() {
        let (names, c) = row(
            "batch",
            "CronJob",
            json!({"metadata": {"name": "tick"}, "spec": {"schedule": "*/5 * * * *", "suspend": true},
                   "status": {"active": [{"name": "tick-1"}], "lastScheduleTime": ago(60)}}),
        );
        assert_eq!(
            names,
            [
                "Name",
                "Schedule",
                "Timezone",
                "Suspend",
                "Active",
                "Last Schedule",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert_eq!(
            &c[..6],
            &[json!("tick"), json!("*/5 * * * *"), json!("<none>"), json!("True"), json!(1), json!("60s")]
        );
    }

    #[test]
    fn workload_kinds() {
        let c = cells(
            "apps",
            "ReplicaSet",
            json!({"spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}}},
            "status": {"replicas": 2, "readyReplicas": 1}}),
        );
        assert_eq!(&c[1..4], &[json!(2), json!(2), json!(1)]);
        assert_eq!(c[7], "a=b");
        let c = cells("apps", "StatefulSet", json!({"spec": {"replicas": 3}, "status": {"readyReplicas": 3}}));
        assert_eq!(c[1], "3/3");
        let c = cells(
            "apps",
            "DaemonSet",
            json!({"spec": {"template": {"spec": {"nodeSelector": {"os": "linux"}}}},
            "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                       "updatedNumberScheduled": 2, "numberAvailable": 1}}),
        );
        assert_eq!(&c[1..7], &[json!(2), json!(2), json!(1), json!(2), json!(1), json!("os=linux")]);
        assert_eq!(c[10], "<none>");
        let c = cells(
            "apps",
            "ControllerRevision",
            json!({"metadata": {"name": "r", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "controller": true}]}, "revision": 4}),
        );
        assert_eq!(&c[1..3], &[json!("daemonset.apps/agent"), json!(4)]);
    }

    #[test]
    fn core_kinds() {
        let c = cells("", "Secret", json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}));
        assert_eq!(&c[1..3], &[json!("kubernetes.io/tls"), json!(2)]);
        assert_eq!(cells("", "Secret", json!({}))[1], "Opaque");
        assert_eq!(cells("", "ConfigMap", json!({"data": {"a": "1"}, "binaryData": {"b": ""}}))[1], 2);
        assert_eq!(cells("", "Namespace", json!({"status": {"phase": "Terminating"}}))[1], "Terminating");
        assert_eq!(cells("", "ServiceAccount", json!({"secrets": [{"name": "t"}]}))[1], 1);

        let (names, c) = row(
            "",
            "Node",
            json!({
            "metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.1"}],
                "nodeInfo": {"kubeletVersion": "v1.32.0-flotilla", "osImage": "Flotilla"}}}),
        );
        assert_eq!(
            names,
            [
                "Name",
                "Status",
                "Roles",
                "Age",
                "Version",
                "Internal-IP",
                "External-IP",
                "OS-Image",
                "Kernel-Version",
                "Container-Runtime"
            ]
        );
        assert_eq!(
            Value::Array(c),
            json!([
                "n1",
                "Ready,SchedulingDisabled",
                "control-plane,worker",
                "<unknown>",
                "v1.32.0-flotilla",
                "10.0.0.1",
                "<none>",
                "Flotilla",
                "<unknown>",
                "<unknown>"
            ])
        );
        assert_eq!(cells("", "Node", json!({}))[1], "Unknown");

        let c = cells(
            "",
            "Endpoints",
            json!({"subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]},
            {"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]}),
        );
        assert_eq!(c[1], "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more...");
        assert_eq!(cells("", "Endpoints", json!({}))[1], "<none>");
        let c =
            cells("", "Endpoints", json!({"subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 53}]}]}));
        assert_eq!(c[1], "[fd00::1]:53");
    }

    #[test]
    fn storage_kinds() {
        let c = cells(
            "",
            "PersistentVolume",
            json!({"metadata": {"name": "pv1"},
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                     "claimRef": {"namespace": "ns", "name": "data"}, "storageClassName": "fast"},
            "status": {"phase": "Bound"}}),
        );
        assert_eq!(
            Value::Array(c),
            json!([
                "pv1",
                "10Gi",
                "RWO,RWX",
                "Retain",
                "Bound",
                "ns/data",
                "fast",
                "<unset>",
                "",
                "<unknown>",
                "Filesystem"
            ])
        );
        let c = cells(
            "",
            "PersistentVolumeClaim",
            json!({"metadata": {"name": "data"},
            "spec": {"volumeName": "pv1", "storageClassName": "fast"},
            "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"]}}),
        );
        assert_eq!(
            &c[..7],
            &[
                json!("data"),
                json!("Bound"),
                json!("pv1"),
                json!("10Gi"),
                json!("RWO"),
                json!("fast"),
                json!("<unset>")
            ]
        );
        let c = cells("", "PersistentVolumeClaim", json!({"spec": {"resources": {"requests": {"storage": "1Gi"}}}}));
        assert_eq!(&c[1..5], &[json!("Pending"), json!(""), json!(""), json!("")]);
        let c = cells(
            "storage.k8s.io",
            "StorageClass",
            json!({"metadata": {"name": "local",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "flotilla.io/local"}),
        );
        assert_eq!(
            &c[..5],
            &[json!("local (default)"), json!("flotilla.io/local"), json!("Delete"), json!("Immediate"), json!(false)]
        );
        let c = cells(
            "",
            "ResourceQuota",
            json!({"status": {
            "hard": {"requests.cpu": "2", "limits.memory": "2Gi", "pods": "10", "limits.cpu": "4"},
            "used": {"requests.cpu": "500m", "pods": "3"}}}),
        );
        assert_eq!(
            &c[1..3],
            &[json!("pods: 3/10, requests.cpu: 500m/2"), json!("limits.cpu: 0/4, limits.memory: 0/2Gi")]
        );
    }

    #[test]
    fn networking_and_rbac_kinds() {
        let c = cells(
            "networking.k8s.io",
            "Ingress",
            json!({"spec": {"ingressClassName": "nginx",
            "rules": [{"host": "a.example"}, {}, {"host": "b.example"}, {"host": "c.example"}, {"host": "d.example"}],
            "tls": [{"hosts": ["a.example"]}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}),
        );
        assert_eq!(
            &c[1..5],
            &[json!("nginx"), json!("a.example,b.example,c.example + 2 more..."), json!("1.2.3.4"), json!("80, 443")]
        );
        let c = cells("networking.k8s.io", "Ingress", json!({"spec": {"rules": [{}]}}));
        assert_eq!(&c[1..5], &[json!("<none>"), json!("*"), json!(""), json!("80")]);
        let c = cells(
            "networking.k8s.io",
            "IngressClass",
            json!({"spec": {"controller": "k8s.io/ingress-nginx",
            "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"}}}),
        );
        assert_eq!(&c[1..3], &[json!("k8s.io/ingress-nginx"), json!("IngressParameters.k8s.example.com/p")]);
        assert_eq!(cells("networking.k8s.io", "NetworkPolicy", json!({"spec": {"podSelector": {}}}))[1], "<none>");
        let c = cells(
            "discovery.k8s.io",
            "EndpointSlice",
            json!({"addressType": "IPv4",
            "ports": [{"port": 80}, {"name": "metrics"}, {}, {"port": 9}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]}),
        );
        assert_eq!(&c[1..4], &[json!("IPv4"), json!("80,metrics,* + 1 more..."), json!("10.0.0.1,10.0.0.2")]);
        assert_eq!(cells("discovery.k8s.io", "EndpointSlice", json!({}))[2], "<unset>");
        assert_eq!(cells("coordination.k8s.io", "Lease", json!({"spec": {"holderIdentity": "n1"}}))[1], "n1");
        let c = cells(
            "rbac.authorization.k8s.io",
            "RoleBinding",
            json!({"roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
                         {"kind": "ServiceAccount", "namespace": "ns", "name": "bot"}, {"kind": "User", "name": "bob"}]}),
        );
        assert_eq!(&c[3..], &[json!("alice, bob"), json!("devs"), json!("ns/bot")]);
        assert_eq!(c[1], "ClusterRole/view");
    }

    #[test]
    fn events_core_and_events_api() {
        let (names, c) = row(
            "",
            "Event",
            json!({
            "metadata": {"name": "web.17a"}, "type": "Warning", "reason": "BackOff",
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{a}"},
            "source": {"component": "kubelet", "host": "n1"}, "message": "Back-off restarting\n",
            "firstTimestamp": ago(600), "lastTimestamp": ago(5), "count": 7}),
        );
        assert_eq!(
            names,
            ["Last Seen", "Type", "Reason", "Object", "Subobject", "Source", "Message", "First Seen", "Count", "Name"]
        );
        assert_eq!(
            Value::Array(c),
            json!([
                "5s",
                "Warning",
                "BackOff",
                "pod/web",
                "spec.containers{a}",
                "kubelet, n1",
                "Back-off restarting",
                "10m",
                7,
                "web.17a"
            ])
        );
        let c = cells(
            "events.k8s.io",
            "Event",
            json!({"metadata": {"name": "e"}, "type": "Normal", "reason": "Scheduled",
            "regarding": {"kind": "Pod", "name": "web"}, "note": "assigned", "reportingController": "scheduler",
            "eventTime": ago(70)}),
        );
        assert_eq!(
            Value::Array(c),
            json!(["70s", "Normal", "Scheduled", "pod/web", "", "scheduler", "assigned", "70s", 1, "e"])
        );
        let c = cells("", "Event", json!({"eventTime": ago(900), "series": {"count": 3, "lastObservedTime": ago(20)}}));
        assert_eq!((&c[0], &c[7], &c[8]), (&json!("20s"), &json!("15m"), &json!(3)));
    }

    #[test]
    fn kinds_without_printers_use_the_default_convertor() {
        for (group, kind) in
            [("rbac.authorization.k8s.io", "Role"), ("rbac.authorization.k8s.io", "ClusterRole"), ("", "LimitRange")]
        {
            let t = table(
                info(group, kind),
                &[&json!({"metadata": {"name": "r", "creationTimestamp": "2024-03-04T05:06:07Z"}})],
                IncludeObject::None,
                now(),
                "",
                None,
            );
            assert_eq!(t["columnDefinitions"][1]["name"], "Created At");
            assert_eq!(t["columnDefinitions"][1]["type"], "date");
            assert_eq!(t["rows"][0]["cells"], json!(["r", "2024-03-04T05:06:07Z"]));
        }
    }

    #[test]
    fn label_selectors() {
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(
            format_label_selector(Some(&json!({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}))),
            "<error>"
        );
        let sel = json!({"matchLabels": {"z": "1"}, "matchExpressions": [
            {"key": "a", "operator": "Exists"}, {"key": "m", "operator": "DoesNotExist"},
            {"key": "b", "operator": "NotIn", "values": ["y", "x"]}]});
        assert_eq!(format_label_selector(Some(&sel)), "a,b notin (x,y),!m,z=1");
        assert_eq!(
            selector_string(Some(&json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}))),
            Err(())
        );
    }
}
