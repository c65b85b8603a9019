//! Flotilla control plane: the raft-replicated store on redb, the kubectl-compatible API
//! server, and the controllers that run on the leader.

pub mod apiserver;
mod controllers;
mod metrics;
pub mod network;
pub mod registry;
pub mod store;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;

use apiserver::service::{SystemClock, WriteOptions};
use apiserver::{Api, Shutdown, ShutdownTrigger};
pub use network::NetworkConfig;
use store::{Store, StoreConfig};

/// How to run the control plane.
#[derive(Clone, Debug)]
pub struct ControlPlaneConfig {
    /// Where the store, CA and token live.
    pub data_dir: PathBuf,
    /// Address the HTTPS API listens on (port 0 picks a free port).
    pub listen: SocketAddr,
    pub store: StoreConfig,
    /// Run the default scheduler (off: pods stay pending until something else binds them,
    /// as with a control plane whose kube-scheduler is not running).
    pub scheduler: bool,
    /// Service and cluster CIDRs and the node port range (`--service-cidr`,
    /// `--cluster-cidr`, `--service-node-port-range`).
    pub network: NetworkConfig,
    /// Run the built-in service load balancer (off: `--disable-service-lb`).
    pub service_lb: bool,
}

/// A running control plane.
pub struct ControlPlaneHandle {
    /// Where the API server listens.
    pub local_addr: SocketAddr,
    /// The cluster CA certificate (PEM) clients must trust.
    pub ca_pem: String,
    /// The admin bearer token.
    pub admin_token: String,
    trigger: ShutdownTrigger,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    store: Store,
}

impl ControlPlaneHandle {
    /// The API server's URL.
    pub fn url(&self) -> String {
        format!("https://{}", self.local_addr)
    }

    /// Stops serving, waits for the tasks to end and closes the store, so the data
    /// directory can be opened again as soon as this returns.
    pub async fn shutdown(self) {
        self.trigger.trigger();
        for t in self.tasks {
            let _ = t.await;
        }
        let store = self.store;
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
    }
}

/// The store's directory inside a control plane's data dir.
pub fn store_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("store")
}

const DEFAULT_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Opens the store, seeds the default namespaces, starts the controllers and serves the API.
pub async fn start(config: ControlPlaneConfig) -> anyhow::Result<ControlPlaneHandle> {
    start_with_clock(config, Arc::new(SystemClock)).await
}

/// [`start`] with the clock timestamps and controllers use (tests run schedules faster
/// with a [`apiserver::service::ScaledClock`]).
pub async fn start_with_clock(config: ControlPlaneConfig, clock: Arc<dyn apiserver::service::Clock>) -> anyhow::Result<ControlPlaneHandle> {
    let service_range = config.network.validate()?;
    let store_dir = store_dir(&config.data_dir);
    let store_cfg = config.store.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&store_dir, store_cfg)).await??;
    let api = Api::new(store.clone(), clock).with_service_range(service_range).with_node_port_range(config.network.node_port_range);
    let ns_info = apiserver::resources::find("", "v1", "namespaces").expect("namespaces served");
    for ns in DEFAULT_NAMESPACES {
        if api.get(ns_info, None, ns).is_err() {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            api.create(ns_info, None, obj, &WriteOptions::default())
                .await
                .map_err(|e| anyhow::anyhow!("creating namespace {ns}: {e}"))?;
        }
    }
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let local_addr = listener.local_addr()?;
    let creds = apiserver::tls::ensure(&config.data_dir.join("pki"), &[local_addr.ip()])?;
    let (trigger, shutdown) = Shutdown::new();
    apiserver::kubernetes_service::ensure(&api, local_addr, true).await;
    apiserver::ingress_class::ensure(&api).await;
    let app = apiserver::app(api.clone(), creds.admin_token.clone(), local_addr.to_string(), shutdown.clone());
    let registry = Arc::new(registry::Registry::new(config.data_dir.join("registry"), creds.admin_token.clone()));
    let router = apiserver::router(app).merge(registry::router(registry));
    let tasks = vec![
        tokio::spawn(apiserver::serve_tls(listener, creds.server_config.clone(), router, shutdown.clone())),
        tokio::spawn(apiserver::kubernetes_service::run(api.clone(), local_addr, shutdown.clone())),
        tokio::spawn(controllers::run(api, shutdown, config.scheduler, config.network, config.service_lb)),
    ];
    Ok(ControlPlaneHandle { local_addr, ca_pem: creds.ca_pem, admin_token: creds.admin_token, trigger, tasks, store })
}
