//! Pod priority (scheduling.k8s.io/v1 PriorityClass and kube-apiserver's Priority
//! admission plugin): the built-in classes, checks on new classes, and each new pod's
//! `spec.priority` and `spec.preemptionPolicy` from its `priorityClassName` (or the
//! globalDefault class, or 0).
//!
//! Invariants: the built-in classes exist (re-created if deleted, by the API server's
//! periodic ensure); at most one class is the global default; a pod naming an unknown
//! class, or giving a priority its class does not, is refused (403) as Kubernetes words it.

use serde_json::{Value, json};

use super::error::ApiError;
use super::resources::{self, ResourceInfo};
use super::service::{Api, WriteOptions, prefix};

/// The highest priority a user-defined class may have.
pub(crate) const HIGHEST_USER_DEFINABLE_PRIORITY: i64 = 1_000_000_000;
/// The classes Kubernetes defines itself.
pub(crate) const BUILT_IN: [(&str, i64, &str); 2] = [
    ("system-node-critical", 2_000_001_000, "Used for system critical pods that must not be moved from their current node."),
    ("system-cluster-critical", 2_000_000_000, "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."),
];

fn classes_info() -> Option<&'static ResourceInfo> {
    resources::find("scheduling.k8s.io", "v1", "priorityclasses")
}

impl Api {
    /// Creates the built-in classes that are missing.
    pub(crate) async fn ensure_priority_classes(&self) -> Result<(), ApiError> {
        let Some(info) = classes_info() else { return Ok(()) };
        for (name, value, description) in BUILT_IN {
            if self.store.get(&super::service::key(info, None, name)).is_some() {
                continue;
            }
            let class = json!({
                "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": name}, "value": value, "description": description, "preemptionPolicy": "PreemptLowerPriority",
            });
            let opts = WriteOptions { field_manager: "kube-apiserver".into(), ..Default::default() };
            match self.create(info, None, class, &opts).await {
                Ok(_) => {}
                Err(e) if e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Priority admission of a new object: PriorityClasses are checked, Pods get their
    /// priority.
    pub(crate) fn admit_priority(&self, info: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
        let Some(classes) = classes_info() else { return Ok(()) };
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        if std::ptr::eq(info, classes) {
            let built_in = BUILT_IN.iter().find(|(n, ..)| *n == name);
            if name.starts_with("system-") && built_in.is_none() {
                return Err(ApiError::forbidden(format!(
                    "priorityclasses.scheduling.k8s.io \"{name}\" is forbidden: priority class names with 'system-' prefix are reserved for system use only"
                )));
            }
            let value = obj["value"].as_i64().unwrap_or(0);
            if built_in.is_none() && value > HIGHEST_USER_DEFINABLE_PRIORITY {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    format!("PriorityClass.scheduling.k8s.io \"{name}\" is invalid: value: Forbidden: maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"),
                ));
            }
            if obj["preemptionPolicy"].is_null() {
                obj["preemptionPolicy"] = json!("PreemptLowerPriority");
            }
            if obj["globalDefault"] == true
                && let Some((_, other)) = self.store.list_keys(&prefix(classes, None)).into_iter().find(|(_, c)| c.value["globalDefault"] == true)
            {
                let other = other.value["metadata"]["name"].as_str().unwrap_or("").to_string();
                return Err(ApiError::forbidden(format!(
                    "priorityclasses.scheduling.k8s.io \"{name}\" is forbidden: PriorityClass {other} is already marked as default. Only one default can exist"
                )));
            }
            return Ok(());
        }
        if !(info.group.is_empty() && info.kind == "Pod") {
            return Ok(());
        }
        let class_name = obj["spec"]["priorityClassName"].as_str().unwrap_or("").to_string();
        let class = if class_name.is_empty() {
            self.store.list_keys(&prefix(classes, None)).into_iter().map(|(_, c)| c).find(|c| c.value["globalDefault"] == true)
        } else {
            match self.store.get(&super::service::key(classes, None, &class_name)) {
                Some(c) => Some(c),
                None => {
                    return Err(ApiError::forbidden(format!("pods \"{name}\" is forbidden: no PriorityClass with name {class_name} was found")));
                }
            }
        };
        let (priority, policy) = match &class {
            Some(c) => (c.value["value"].as_i64().unwrap_or(0), c.value["preemptionPolicy"].as_str().unwrap_or("PreemptLowerPriority").to_string()),
            None => (0, "PreemptLowerPriority".to_string()),
        };
        if let Some(given) = obj["spec"]["priority"].as_i64()
            && given != priority
        {
            return Err(ApiError::forbidden(format!(
                "pods \"{name}\" is forbidden: the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
            )));
        }
        if let Some(c) = &class
            && class_name.is_empty()
        {
            obj["spec"]["priorityClassName"] = c.value["metadata"]["name"].clone();
        }
        obj["spec"]["priority"] = json!(priority);
        if obj["spec"]["preemptionPolicy"].is_null() {
            obj["spec"]["preemptionPolicy"] = json!(policy);
        }
        Ok(())
    }
}
