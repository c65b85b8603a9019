//! Flotilla control plane: the raft-replicated store on redb, the kubectl-compatible API
//! server, and the controllers that run on the leader.

pub mod apiserver;
pub mod cluster;
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
pub use apiserver::audit::{AuditConfig, AuditError};
pub use apiserver::flow_control::FlowControlConfig;
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
    /// The audit log (`--audit-log-path`, `--audit-policy-file`; default: none).
    pub audit: AuditConfig,
    /// Per-user request limits (default: 100 requests/s and 32 in flight per user,
    /// system:masters exempt).
    pub flow_control: FlowControlConfig,
}

/// A running control plane.
pub struct ControlPlaneHandle {
    /// Where the API server listens.
    pub local_addr: SocketAddr,
    /// The cluster CA certificate (PEM) clients must trust.
    pub ca_pem: String,
    /// The admin bearer token.
    pub admin_token: String,
    /// Where raft peers connect (a member of a cluster; None for a single member).
    pub peer_addr: Option<SocketAddr>,
    /// This member's name (a member of a cluster).
    pub member_name: Option<String>,
    /// The join token, when this start made it (the founder's first start).
    pub new_join_token: Option<String>,
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

/// Checks the audit policy file of `config`, if any, as a start would.
pub fn check_audit_policy(config: &AuditConfig) -> Result<(), AuditError> {
    apiserver::audit::load_policy(config).map(|_| ())
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
    start_member(config, clock, cluster::ClusterConfig::default()).await
}

/// How long a restarted or joining member waits to reach the leader and catch up.
const CATCH_UP: std::time::Duration = std::time::Duration::from_secs(60);

/// [`start_with_clock`] as a member of a raft cluster: with `cluster.peer_listen`, the
/// member listens for peers, founds a cluster at first start (or joins one with
/// `cluster.join`), catches up before serving, and runs controllers only while it leads.
pub async fn start_member(config: ControlPlaneConfig, clock: Arc<dyn apiserver::service::Clock>, cluster: cluster::ClusterConfig) -> anyhow::Result<ControlPlaneHandle> {
    use anyhow::Context as _;
    let service_range = config.network.validate()?;
    // A malformed policy or an unwritable log stops the start before anything binds.
    let auditor = apiserver::audit::Auditor::open(&config.audit)?;
    let store_dir = store_dir(&config.data_dir);
    let store_cfg = config.store.clone();
    let pki = config.data_dir.join("pki");
    let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("listening on {}", config.listen))?;
    let local_addr = listener.local_addr()?;
    let (trigger, shutdown) = Shutdown::new();
    let mut tasks = Vec::new();
    let mut peer = None;
    let member = match cluster.peer_listen {
        None => store::MemberConfig::single(),
        Some(peer_listen) => {
            let peer_listener = tokio::net::TcpListener::bind(peer_listen).await.with_context(|| format!("listening for peers on {peer_listen}"))?;
            let peer_addr = peer_listener.local_addr()?;
            let key_file = Store::key_file(&store_dir, &store_cfg);
            let prepared = cluster::prepare(&config.data_dir, &key_file, &cluster::url_of(local_addr), &cluster::url_of(peer_addr), cluster.join.as_ref()).await?;
            let (peer_tls, client_tls) = apiserver::tls::member_tls(&pki, prepared.identity.id, &[local_addr.ip(), peer_addr.ip()])?;
            let resolver = Arc::new(cluster::Resolver { store: std::sync::OnceLock::new(), seeds: prepared.seeds.clone() });
            let transport = Arc::new(cluster::HttpTransport::new(client_tls, resolver.clone())?);
            let member = store::MemberConfig {
                id: prepared.identity.id,
                bootstrap: prepared.bootstrap.clone(),
                transport,
                tick: std::time::Duration::from_millis(100),
                timeout: Some(std::time::Duration::from_secs(25)),
            };
            peer = Some((peer_listener, peer_addr, peer_tls, resolver, prepared));
            member
        }
    };
    let store = tokio::task::spawn_blocking(move || Store::open_member(&store_dir, store_cfg, member)).await??;
    let mut new_join_token = None;
    let mut member_name = None;
    let mut peer_addr = None;
    let mut clustered = None;
    if let Some((peer_listener, addr, peer_tls, resolver, prepared)) = peer {
        let _ = resolver.store.set(store.clone());
        tasks.push(tokio::spawn(apiserver::serve_tls(peer_listener, peer_tls, cluster::peer_router(store.clone()), shutdown.clone())));
        let st = store.raft_status();
        // A founder that is the only voter leads once its store is open.
        if prepared.identity.founder && st.role == store::Role::Leader {
            cluster::seed_founder(&store, &prepared.identity, &cluster::url_of(local_addr), &cluster::url_of(addr), &config.data_dir).await?;
        } else {
            // Reach the leader and apply what it has committed before serving.
            let deadline = tokio::time::Instant::now() + CATCH_UP;
            loop {
                match store.read_barrier().await {
                    Ok(()) => break,
                    Err(e) if tokio::time::Instant::now() >= deadline => {
                        anyhow::bail!("member {} could not reach a quorum of its cluster within {} s: {e}", prepared.identity.name, CATCH_UP.as_secs())
                    }
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                }
            }
        }
        new_join_token = prepared.new_token;
        member_name = Some(prepared.identity.name.clone());
        peer_addr = Some(addr);
        clustered = Some(prepared.identity);
    }
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
    let creds = apiserver::tls::ensure(&pki, &[local_addr.ip()])?;
    if store.raft_status().role == store::Role::Leader {
        // A follower's are the leader's to write (it runs `kubernetes_service::run`).
        apiserver::kubernetes_service::ensure(&api, local_addr, true).await;
        apiserver::ingress_class::ensure(&api).await;
        apiserver::rbac::ensure_bootstrap(&api).await;
    }
    let signer = Arc::new(apiserver::tokens::Signer::load_or_create(&pki)?);
    let accounts = Accounts { signer: signer.clone(), ca_pem: creds.ca_pem.clone() };
    if store.raft_status().role == store::Role::Leader {
        // The default namespaces' accounts and CA exist before the API serves, so a pod
        // created right after start mounts its token at once.
        if let Err(e) = controllers::serviceaccounts::pass(&api, &accounts.signer, &accounts.ca_pem).await {
            tracing::warn!(error = %e, "creating the default ServiceAccounts");
        }
    }
    let app = apiserver::app(api.clone(), creds.admin_token.clone(), signer, apiserver::tls::ca_issuer(&pki)?, local_addr.to_string(), shutdown.clone());
    let registry = Arc::new(registry::Registry::new(config.data_dir.join("registry"), creds.admin_token.clone()).with_access(apiserver::registry_access(app.clone())));
    let mut router = apiserver::router(app.clone()).merge(registry::router(registry));
    if clustered.is_some() {
        let ctx = Arc::new(cluster::Ctx {
            store: store.clone(),
            admin_token: creds.admin_token.clone(),
            pki: pki.clone(),
            key_file: Store::key_file(&self::store_dir(&config.data_dir), &config.store),
            data_dir: config.data_dir.clone(),
        });
        router = router.merge(cluster::api_router(ctx));
        let fwd = Arc::new(cluster::Forwarder::new(store.clone(), &creds.ca_pem, creds.admin_token.clone())?);
        router = router.layer(axum::middleware::from_fn_with_state(fwd, cluster::forward_writes));
        tasks.push(tokio::spawn(cluster::promote_learners(store.clone(), shutdown.clone())));
    }
    // Outermost: who is asking (forwarded writes carry the same credentials), the audit
    // log, the body limit and per-user limits.
    router = apiserver::with_request_layers(router, app.clone(), auditor, &config.flow_control);
    tasks.push(tokio::spawn(apiserver::serve_tls(listener, creds.server_config.clone(), router, shutdown.clone())));
    if clustered.is_some() {
        let name = clustered.as_ref().map(|i| i.name.clone()).unwrap_or_default();
        tasks.push(tokio::spawn(lead(api, app, accounts, name, local_addr, shutdown, config.scheduler, config.network, config.service_lb)));
    } else {
        tasks.push(tokio::spawn(apiserver::kubernetes_service::run(api.clone(), local_addr, shutdown.clone())));
        let cpu: Arc<dyn controllers::hpa::CpuSource> = Arc::new(apiserver::AppCpu(app.clone()));
        tasks.push(tokio::spawn(controllers::hpa::run(api.clone(), cpu, shutdown.clone())));
        tasks.push(tokio::spawn(controllers::serviceaccounts::run(api.clone(), accounts.signer, accounts.ca_pem, shutdown.clone())));
        tasks.push(tokio::spawn(controllers::csr_approving::run(app, shutdown.clone())));
        tasks.push(tokio::spawn(controllers::run(api, shutdown, config.scheduler, config.network, config.service_lb)));
    }
    Ok(ControlPlaneHandle { local_addr, ca_pem: creds.ca_pem, admin_token: creds.admin_token, peer_addr, member_name, new_join_token, trigger, tasks, store })
}

/// What the ServiceAccount controllers sign legacy tokens with and publish as the CA.
struct Accounts {
    signer: Arc<apiserver::tokens::Signer>,
    ca_pem: String,
}

/// A member of a cluster runs the controllers (and the `kubernetes` Service's endpoints)
/// only while it leads, holding Lease kube-system/flotilla-control-plane: started when it
/// becomes leader, stopped when it no longer is.
#[allow(clippy::too_many_arguments, reason = "what the leader's controllers are started with")]
async fn lead(api: Api, app: Arc<apiserver::App>, accounts: Accounts, name: String, local_addr: SocketAddr, shutdown: Shutdown, scheduler: bool, network: NetworkConfig, service_lb: bool) {
    let cpu: Arc<dyn controllers::hpa::CpuSource> = Arc::new(apiserver::AppCpu(app.clone()));
    let store = api.store.clone();
    loop {
        // Wait to lead.
        loop {
            if store.raft_status().role == store::Role::Leader {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
        tracing::info!("this member leads: starting the controllers");
        let (term_trigger, term) = Shutdown::new();
        let t1 = tokio::spawn(apiserver::kubernetes_service::run(api.clone(), local_addr, term.clone()));
        let t2 = tokio::spawn(controllers::run(api.clone(), term.clone(), scheduler, network, service_lb));
        let t3 = tokio::spawn(cluster::hold_lease(api.clone(), name.clone(), term.clone()));
        let t4 = tokio::spawn(controllers::hpa::run(api.clone(), cpu.clone(), term.clone()));
        let t5 = tokio::spawn(controllers::serviceaccounts::run(api.clone(), accounts.signer.clone(), accounts.ca_pem.clone(), term.clone()));
        let t6 = tokio::spawn(controllers::csr_approving::run(app.clone(), term));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
                _ = shutdown.cancelled() => {}
            }
            let stopping = shutdown.is_cancelled();
            if stopping || store.raft_status().role != store::Role::Leader {
                term_trigger.trigger();
                let _ = t1.await;
                let _ = t2.await;
                let _ = t3.await;
                let _ = t4.await;
                let _ = t5.await;
                let _ = t6.await;
                if stopping {
                    return;
                }
                tracing::info!("this member no longer leads: controllers stopped");
                break;
            }
        }
    }
}
