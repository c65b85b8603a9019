//! The node's table of running pods, shared by the pod workers (each fills in its pod's
//! containers as they are set up and started) and the node server (logs, exec, proxy).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::logs::ContainerLogs;
use crate::runtime::{Compiled, HttpService, InstanceSpec};

/// One container of a running pod.
pub struct ContainerEntry {
    pub name: String,
    /// The compiled image (exec runs a fresh instance of it).
    pub compiled: Option<Arc<Compiled>>,
    /// What instances of this container are granted (exec uses the same).
    pub spec: InstanceSpec,
    /// The HTTP service, for HTTP containers that are running.
    pub http: Option<Arc<HttpService>>,
    /// containerPorts it declares.
    pub ports: Vec<u16>,
    pub logs: Arc<ContainerLogs>,
}

/// A pod the node runs.
pub struct PodEntry {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// Containers in spec order (init containers first).
    pub containers: RwLock<Vec<Arc<ContainerEntry>>>,
}

impl PodEntry {
    pub fn container(&self, name: &str) -> Option<Arc<ContainerEntry>> {
        self.containers.read().expect("pod lock").iter().find(|c| c.name == name).cloned()
    }

    /// The running HTTP service of the container declaring `port`.
    pub fn http_for_port(&self, port: u16) -> Option<Arc<HttpService>> {
        self.containers.read().expect("pod lock").iter().find(|c| c.ports.contains(&port)).and_then(|c| c.http.clone())
    }

    /// Replaces (or adds) a container entry.
    pub fn set_container(&self, entry: Arc<ContainerEntry>) {
        let mut cs = self.containers.write().expect("pod lock");
        match cs.iter_mut().find(|c| c.name == entry.name) {
            Some(slot) => *slot = entry,
            None => cs.push(entry),
        }
    }
}

/// All pods on this node, by namespace and name.
#[derive(Default)]
pub struct PodTable {
    pods: RwLock<HashMap<(String, String), Arc<PodEntry>>>,
}

impl PodTable {
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<PodEntry>> {
        self.pods.read().expect("registry lock").get(&(namespace.to_string(), name.to_string())).cloned()
    }

    pub fn insert(&self, entry: Arc<PodEntry>) {
        self.pods.write().expect("registry lock").insert((entry.namespace.clone(), entry.name.clone()), entry);
    }

    pub fn remove(&self, namespace: &str, name: &str) -> Option<Arc<PodEntry>> {
        self.pods.write().expect("registry lock").remove(&(namespace.to_string(), name.to_string()))
    }

    pub fn len(&self) -> usize {
        self.pods.read().expect("registry lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
