//! `flotilla server`: the control plane alone (store, API server, controllers).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use flotilla_api::cidr::Ipv4Cidr;
use flotilla_control::apiserver::node_port::NodePortRange;
use flotilla_control::{AuditConfig, ControlPlaneConfig, ControlPlaneHandle, NetworkConfig, store::StoreConfig};

use super::kubeconfig;

/// Flags shared by `up` and `server`.
#[derive(Args, Debug, Clone)]
pub(crate) struct ControlPlaneFlags {
    /// Directory for the store, the cluster CA and the admin token
    /// [default: $XDG_DATA_HOME/flotilla or ~/.local/share/flotilla]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address and port the HTTPS API listens on (port 0 picks a free port)
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Kubeconfig file to write or merge the `flotilla` cluster, user and context into
    /// (made current) [default: first path of $KUBECONFIG, else ~/.kube/config]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Run the control plane's clock this many times faster than the wall clock (for
    /// trying CronJob schedules and deadlines quickly; timestamps drift accordingly)
    #[arg(long, value_name = "RATE", default_value_t = 1.0)]
    pub clock_rate: f64,
    /// IPv4 range Service ClusterIPs are allocated from (mask 12 to 30); its first address
    /// is the `kubernetes` Service's
    #[arg(long, value_name = "CIDR", default_value = "10.43.0.0/16")]
    pub service_cidr: Ipv4Cidr,
    /// IPv4 range pod IPs come from: each node gets a /24 of it (spec.podCIDR), so the mask
    /// must be 24 or less
    #[arg(long, value_name = "CIDR", default_value = "10.42.0.0/16")]
    pub cluster_cidr: Ipv4Cidr,
    /// Prefix length of the pod range each node gets from --cluster-cidr (16 to 30): a node
    /// holds at most 2^(32-SIZE) - 3 pods (24: 253)
    #[arg(long, value_name = "SIZE", default_value_t = 24)]
    pub node_cidr_mask_size: u8,
    /// Ports Services of type NodePort and LoadBalancer get their node ports from
    /// (FIRST-LAST or FIRST+SIZE)
    #[arg(long, value_name = "RANGE", default_value = "30000-32767")]
    pub service_node_port_range: NodePortRange,
    /// Turn off the built-in service load balancer: Services of type LoadBalancer then get
    /// no address (they stay pending, as in Kubernetes without a load balancer) and nodes
    /// do not listen on their ports; node ports still work
    #[arg(long)]
    pub disable_service_lb: bool,
    /// File holding the key Secrets are encrypted with at rest: 32 random bytes in base64
    /// (e.g. `head -c 32 /dev/urandom | base64`). A store refuses to start with any key but
    /// the one its Secrets are sealed with [default: DIR/store/encryption.key, generated
    /// at first start]
    #[arg(long, value_name = "FILE")]
    pub encryption_key_file: Option<PathBuf>,
    /// Write an audit log to FILE: one JSON line per event in Kubernetes' audit.k8s.io/v1
    /// Event shape (appended to; created with mode 0600)
    #[arg(long, value_name = "FILE")]
    pub audit_log_path: Option<PathBuf>,
    /// Kubernetes audit.k8s.io/v1 Policy (YAML or JSON) saying what the audit log keeps of
    /// each request (levels None, Metadata, Request, RequestResponse); a malformed policy
    /// stops the start [default: every request at Metadata]
    #[arg(long, value_name = "FILE")]
    pub audit_policy_file: Option<PathBuf>,
}

impl ControlPlaneFlags {
    /// The address plan, checked (ranges usable, not overlapping).
    pub(crate) fn network(&self) -> anyhow::Result<NetworkConfig> {
        let network = NetworkConfig {
            service_cidr: self.service_cidr,
            cluster_cidr: self.cluster_cidr,
            node_port_range: self.service_node_port_range,
            node_cidr_mask_size: self.node_cidr_mask_size,
        };
        network.validate()?;
        Ok(network)
    }

    /// The flags a further member of this control plane is started with (as `server`).
    pub(crate) fn member_args(&self) -> Vec<String> {
        let mut args = vec![
            "--clock-rate".to_string(),
            self.clock_rate.to_string(),
            "--service-cidr".into(),
            self.service_cidr.to_string(),
            "--cluster-cidr".into(),
            self.cluster_cidr.to_string(),
            "--node-cidr-mask-size".into(),
            self.node_cidr_mask_size.to_string(),
            "--service-node-port-range".into(),
            self.service_node_port_range.to_string(),
        ];
        if self.disable_service_lb {
            args.push("--disable-service-lb".into());
        }
        args
    }

    pub(crate) fn data_dir(&self) -> anyhow::Result<PathBuf> {
        data_dir(self.data_dir.as_deref())
    }

    /// The audit log's paths (made absolute), its policy checked.
    pub(crate) fn audit_config(&self) -> anyhow::Result<AuditConfig> {
        let audit = AuditConfig {
            policy_file: self.audit_policy_file.as_deref().map(std::path::absolute).transpose()?,
            log_path: self.audit_log_path.as_deref().map(std::path::absolute).transpose()?,
        };
        if audit.policy_file.is_some() && audit.log_path.is_none() {
            anyhow::bail!("--audit-policy-file needs --audit-log-path (where the events go)");
        }
        flotilla_control::check_audit_policy(&audit)?;
        Ok(audit)
    }

    fn store_config(&self) -> anyhow::Result<StoreConfig> {
        let encryption_key_file = self.encryption_key_file.as_deref().map(std::path::absolute).transpose()?;
        Ok(StoreConfig { encryption_key_file, ..StoreConfig::default() })
    }

    /// Re-encrypts every Secret in the (stopped) data dir with a new key.
    async fn rotate_encryption_key(&self) -> anyhow::Result<()> {
        let dir = flotilla_control::store_dir(&self.data_dir()?);
        let config = self.store_config()?;
        let what = format!("re-encrypting the Secrets of the store in {}", dir.display());
        let rotated = tokio::task::spawn_blocking(move || flotilla_control::store::Store::rotate_encryption_key(&dir, &config))
            .await?
            .context(what)?;
        println!(
            "flotilla: Secrets re-encrypted with key id {} (was {}): {} objects, {} log entries; {} holds the new key",
            rotated.new_key_id,
            rotated.old_key_id,
            rotated.objects,
            rotated.log_entries,
            rotated.key_file.display()
        );
        Ok(())
    }

    pub(crate) fn kubeconfig_path(&self) -> anyhow::Result<PathBuf> {
        if let Some(k) = &self.kubeconfig {
            return Ok(k.clone());
        }
        if let Some(first) = std::env::var("KUBECONFIG").ok().and_then(|k| k.split(':').find(|p| !p.is_empty()).map(PathBuf::from)) {
            return Ok(first);
        }
        let home = std::env::var_os("HOME").ok_or_else(|| anyhow::anyhow!("HOME is not set; pass --kubeconfig"))?;
        Ok(PathBuf::from(home).join(".kube/config"))
    }

    /// Starts the control plane and writes the kubeconfig.
    pub(crate) async fn start_quiet(&self) -> anyhow::Result<ControlPlaneHandle> {
        self.start_member(flotilla_control::cluster::ClusterConfig::default()).await
    }

    /// Starts the control plane as a member of a raft cluster and writes the kubeconfig.
    pub(crate) async fn start_member(&self, cluster: flotilla_control::cluster::ClusterConfig) -> anyhow::Result<ControlPlaneHandle> {
        let network = self.network()?;
        let data_dir = self.data_dir()?;
        let kubeconfig_path = self.kubeconfig_path()?;
        // Refuse a kubeconfig that cannot be merged into before starting anything.
        kubeconfig::check(&kubeconfig_path)?;
        let store = self.store_config()?;
        let audit = self.audit_config()?;
        let config = ControlPlaneConfig { data_dir: data_dir.clone(), listen: self.listen, store, scheduler: true, network, service_lb: !self.disable_service_lb, audit, flow_control: Default::default() };
        let clock: std::sync::Arc<dyn flotilla_control::apiserver::service::Clock> = if self.clock_rate == 1.0 {
            std::sync::Arc::new(flotilla_control::apiserver::service::SystemClock)
        } else {
            anyhow::ensure!(self.clock_rate.is_finite() && self.clock_rate > 0.0, "--clock-rate must be a positive number");
            std::sync::Arc::new(flotilla_control::apiserver::service::ScaledClock::new(self.clock_rate))
        };
        let handle = flotilla_control::start_member(config, clock, cluster).await?;
        kubeconfig::merge(&kubeconfig_path, &data_dir, &handle.url(), &handle.ca_pem, &handle.admin_token)?;
        Ok(handle)
    }

    /// Once stopped: puts back the kubeconfig's current-context from before the start.
    pub(crate) fn restore_kubeconfig(&self) {
        if let Err(e) = self.data_dir().and_then(|d| kubeconfig::restore(&d)) {
            eprintln!("flotilla: could not restore the kubeconfig's previous context: {e:#}");
        }
    }

    /// Prints the line scripts and tests wait for.
    pub(crate) fn print_ready(&self, what: &str, handle: &ControlPlaneHandle) -> anyhow::Result<()> {
        if let Some(token) = &handle.new_join_token {
            println!("flotilla join token (also in {}): {token}", self.data_dir()?.join("join-token").display());
        }
        let member = match (&handle.member_name, handle.peer_addr) {
            (Some(name), Some(peer)) => format!("member {name}, peer {}, ", flotilla_control::cluster::url_of(peer)),
            _ => String::new(),
        };
        println!(
            "flotilla {what} ready: {} ({member}data dir {}, kubeconfig {}, context flotilla)",
            handle.url(),
            self.data_dir()?.display(),
            self.kubeconfig_path()?.display()
        );
        Ok(())
    }
}

/// The data dir `--data-dir` names (made absolute, so every part of the process agrees on
/// it: wasmtime's cache insists), else $XDG_DATA_HOME/flotilla, else
/// ~/.local/share/flotilla.
pub(crate) fn data_dir(flag: Option<&std::path::Path>) -> anyhow::Result<PathBuf> {
    if let Some(d) = flag {
        return Ok(std::path::absolute(d)?);
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(x).join("flotilla"));
    }
    let home = std::env::var_os("HOME").ok_or_else(|| anyhow::anyhow!("HOME is not set; pass --data-dir"))?;
    Ok(PathBuf::from(home).join(".local/share/flotilla"))
}

/// Run the Flotilla control plane alone (no embedded node).
#[derive(Args, Debug)]
pub(crate) struct ServerCommand {
    #[command(flatten)]
    pub flags: ControlPlaneFlags,
    /// Instead of serving: re-encrypt every Secret in the data dir (of `server` or `up`,
    /// stopped) with a new key, which replaces the old one in the key file, and exit
    #[arg(long)]
    pub rotate_encryption_key: bool,
    /// Address and port raft peers connect to (mutual TLS from the cluster CA)
    /// [default: the --listen address, port + 1 (0 when --listen's port is 0)]
    #[arg(long, value_name = "ADDR:PORT")]
    pub peer_listen: Option<SocketAddr>,
    /// At first start, join the cluster whose API server is at URL (needs --token);
    /// ignored once this data dir belongs to a cluster
    #[arg(long, value_name = "URL", requires = "token")]
    pub join: Option<String>,
    /// The join token of the cluster to join (a member's DATA_DIR/join-token)
    #[arg(long, value_name = "TOKEN", requires = "join")]
    pub token: Option<String>,
    /// Exit when the parent process is gone (members `up --servers N` starts)
    #[arg(long, hide = true)]
    pub exit_with_parent: bool,
}

impl ServerCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        if self.rotate_encryption_key {
            return self.flags.rotate_encryption_key().await;
        }
        let peer_listen = match self.peer_listen {
            Some(p) => p,
            None if self.flags.listen.port() == 0 => SocketAddr::new(self.flags.listen.ip(), 0),
            None => {
                let port = self.flags.listen.port().checked_add(1).ok_or_else(|| anyhow::anyhow!("--listen port 65535 leaves no default --peer-listen port; pass --peer-listen"))?;
                SocketAddr::new(self.flags.listen.ip(), port)
            }
        };
        if let Some(url) = &self.join {
            anyhow::ensure!(url.starts_with("https://"), "--join takes the https:// URL of a member's API server, not {url}");
        }
        let cluster = flotilla_control::cluster::ClusterConfig { peer_listen: Some(peer_listen), join: self.join.clone().zip(self.token.clone()) };
        let parent = std::os::unix::process::parent_id();
        let handle = self.flags.start_member(cluster).await?;
        self.flags.print_ready("server", &handle)?;
        if self.exit_with_parent {
            tokio::select! {
                _ = wait_for_signal() => {}
                _ = async { while std::os::unix::process::parent_id() == parent { tokio::time::sleep(std::time::Duration::from_millis(500)).await } } => {
                    tracing::info!("the parent process is gone; stopping");
                }
            }
            handle.shutdown().await;
            return Ok(());
        }
        wait_for_signal().await;
        handle.shutdown().await;
        self.flags.restore_kubeconfig();
        Ok(())
    }
}

/// Waits for Ctrl-C or SIGTERM.
pub(crate) async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}
