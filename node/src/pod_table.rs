//! The node's table of running pods, shared by the pod workers (each fills in its pod's
//! containers as they are set up and started), the node server (logs, exec, proxy) and
//! the pod network (a pod by its IP).
//!
//! Invariant: a pod's IP maps to it exactly while the pod is in the table.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use tokio::sync::mpsc;

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
    /// Its stdin, when the spec sets `stdin: true` (kubectl attach -i writes to it).
    pub stdin: Option<Arc<StdinPipe>>,
}

/// The stdin of a command container whose spec sets `stdin: true`. Each attempt reads a
/// fresh pipe ([`StdinPipe::open`]); attached clients write to the running attempt's
/// ([`StdinPipe::writer`]). It stays open without a client (the guest's read waits), as
/// in Kubernetes; with `stdinOnce` it closes (EOF) once the first attach that wrote to it
/// ends.
pub struct StdinPipe {
    once: bool,
    tx: Mutex<Option<mpsc::Sender<Bytes>>>,
}

impl StdinPipe {
    /// Chunks an attempt's stdin holds before writers wait.
    const BACKLOG: usize = 16;

    pub fn new(once: bool) -> StdinPipe {
        StdinPipe { once, tx: Mutex::new(None) }
    }

    /// A fresh pipe for an attempt starting now: its reading end (the previous attempt's
    /// pipe is dropped).
    pub fn open(&self) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(Self::BACKLOG);
        *self.tx.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        rx
    }

    /// Where an attached client writes, while the running attempt's stdin is open.
    pub fn writer(&self) -> Option<mpsc::Sender<Bytes>> {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// An attach that wrote to stdin is over: with `stdinOnce` the attempt's stdin gets
    /// EOF once that client's writer is gone too.
    pub fn detached(&self) {
        if self.once {
            *self.tx.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }
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

type Key = (String, String);

/// All pods on this node, by namespace and name, and by IP.
#[derive(Default)]
pub struct PodTable {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    pods: HashMap<Key, Arc<PodEntry>>,
    ips: HashMap<Key, IpAddr>,
    by_ip: HashMap<IpAddr, Arc<PodEntry>>,
}

impl Inner {
    fn remove(&mut self, key: &Key) -> Option<Arc<PodEntry>> {
        let entry = self.pods.remove(key);
        if let (Some(ip), Some(entry)) = (self.ips.remove(key), &entry)
            && self.by_ip.get(&ip).is_some_and(|e| Arc::ptr_eq(e, entry))
        {
            self.by_ip.remove(&ip);
        }
        entry
    }
}

impl PodTable {
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<PodEntry>> {
        self.inner.read().expect("registry lock").pods.get(&(namespace.to_string(), name.to_string())).cloned()
    }

    /// The pod holding `ip`.
    pub fn by_ip(&self, ip: IpAddr) -> Option<Arc<PodEntry>> {
        self.inner.read().expect("registry lock").by_ip.get(&ip).cloned()
    }

    pub fn insert(&self, entry: Arc<PodEntry>) {
        self.insert_with_ip(entry, None);
    }

    /// Adds (or replaces) a pod, reachable at `ip` when it has one.
    pub fn insert_with_ip(&self, entry: Arc<PodEntry>, ip: Option<IpAddr>) {
        let key = (entry.namespace.clone(), entry.name.clone());
        let mut inner = self.inner.write().expect("registry lock");
        inner.remove(&key);
        if let Some(ip) = ip {
            inner.ips.insert(key.clone(), ip);
            inner.by_ip.insert(ip, entry.clone());
        }
        inner.pods.insert(key, entry);
    }

    pub fn remove(&self, namespace: &str, name: &str) -> Option<Arc<PodEntry>> {
        self.inner.write().expect("registry lock").remove(&(namespace.to_string(), name.to_string()))
    }

    /// Every pod, in no order.
    pub fn pods(&self) -> Vec<Arc<PodEntry>> {
        self.inner.read().expect("registry lock").pods.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.inner.read().expect("registry lock").pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
