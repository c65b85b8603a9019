//! `flotilla node`: a node agent that joins a control plane over its HTTPS API.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;

/// Run a Flotilla node (the kubelet of wasm pods) against a control plane.
#[derive(Args, Debug)]
pub(crate) struct NodeCommand {
    /// URL of the control plane's API server, e.g. https://127.0.0.1:6443; several members'
    /// URLs, comma-separated, to fail over between them
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// Bearer token to authenticate to the API server (the admin token in DATA_DIR/pki/admin.token)
    #[arg(long, value_name = "TOKEN", env = "FLOTILLA_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Node name [default: this host's name]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Directory for images, compiled components, logs and volumes
    /// [default: $XDG_DATA_HOME/flotilla/node or ~/.local/share/flotilla/node]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// CA certificate (PEM) of the API server; without it the server's certificate is not verified
    #[arg(long, value_name = "FILE")]
    pub certificate_authority: Option<PathBuf>,
    /// Allow `file:///abs/path.wasm` images
    #[arg(long)]
    pub allow_file_images: bool,
    /// Let pods reach addresses outside the cluster over the host's network (HTTP and TCP),
    /// where NetworkPolicy allows; without it pods reach only the pod network
    #[arg(long)]
    pub allow_pod_egress: bool,
    #[command(flatten)]
    pub ingress: super::ingress::IngressFlags,
    /// Address the node server binds to and reports as its InternalIP
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub bind_address: IpAddr,
    /// First delay before restarting a crashed container, in milliseconds; it doubles up to
    /// 5 minutes (Kubernetes: 10000)
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub restart_backoff_ms: u64,
    /// Most pods a node runs (its allocatable pods; fewer if its pod range holds fewer
    /// addresses, see --node-cidr-mask-size)
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_pods: u32,
    #[command(flatten)]
    pub allocatable: AllocatableFlags,
    #[command(flatten)]
    pub host_paths: HostPathFlags,
}

/// What a node offers pods (`node` and `up`): the Node's status.allocatable, which the
/// scheduler fits pods' requests into.
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct AllocatableFlags {
    /// CPU the node offers pods, a Kubernetes quantity (e.g. 1500m, 2) [default: the host's cores]
    #[arg(long, value_name = "QUANTITY", value_parser = cpu_quantity)]
    pub allocatable_cpu: Option<String>,
    /// Memory the node offers pods, a Kubernetes quantity (e.g. 512Mi, 4Gi) [default: the host's memory]
    #[arg(long, value_name = "QUANTITY", value_parser = memory_quantity)]
    pub allocatable_memory: Option<String>,
}

/// Which host directories hostPath volumes may use (`node` and `up`).
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct HostPathFlags {
    /// Allow hostPath volumes under this directory (repeatable); without it a pod with a
    /// hostPath volume fails to mount it (a FailedMount event names hostPath and the path)
    #[arg(long = "allow-host-path", value_name = "PREFIX")]
    pub allow_host_path: Vec<PathBuf>,
}

impl HostPathFlags {
    pub(crate) fn apply(&self, config: &mut flotilla_node::NodeConfig) -> anyhow::Result<()> {
        config.allow_host_paths = self.allow_host_path.iter().map(std::path::absolute).collect::<Result<_, _>>()?;
        Ok(())
    }
}

impl AllocatableFlags {
    pub(crate) fn apply(&self, config: &mut flotilla_node::NodeConfig) {
        config.allocatable_cpu = self.allocatable_cpu.clone();
        config.allocatable_memory = self.allocatable_memory.clone();
    }
}

fn cpu_quantity(s: &str) -> Result<String, String> {
    match flotilla_api::quantity::millicores(s) {
        Ok(m) if m > 0 => Ok(s.to_string()),
        _ => Err(format!("{s:?} is not a positive CPU quantity (e.g. 500m, 2)")),
    }
}

fn memory_quantity(s: &str) -> Result<String, String> {
    match flotilla_api::quantity::bytes(s) {
        Ok(b) if b > 0 => Ok(s.to_string()),
        _ => Err(format!("{s:?} is not a positive memory quantity (e.g. 512Mi, 4Gi)")),
    }
}

/// This host's name, lower-cased, as a node name.
pub(crate) fn host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "localhost".into());
    let name: String = raw.trim().to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' }).collect();
    if name.is_empty() { "localhost".into() } else { name }
}

pub(crate) fn default_data_dir(leaf: &str) -> anyhow::Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(x).join("flotilla").join(leaf));
    }
    let home = std::env::var_os("HOME").ok_or_else(|| anyhow::anyhow!("HOME is not set; pass --data-dir"))?;
    Ok(PathBuf::from(home).join(".local/share/flotilla").join(leaf))
}

impl NodeCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let name = self.name.clone().unwrap_or_else(host_name);
        let data_dir = match self.data_dir.clone() {
            Some(d) => std::path::absolute(d)?,
            None => default_data_dir("node")?,
        };
        let mut config = flotilla_node::NodeConfig::new(self.server.clone(), self.token.clone(), name, data_dir);
        config.allow_file_images = self.allow_file_images;
        config.allow_egress = self.allow_pod_egress;
        config.ingress = self.ingress.listen();
        config.bind_address = self.bind_address;
        config.backoff.base = std::time::Duration::from_millis(self.restart_backoff_ms);
        config.max_pods = self.max_pods;
        self.allocatable.apply(&mut config);
        self.host_paths.apply(&mut config)?;
        if let Some(ca) = &self.certificate_authority {
            config.ca_pem = Some(std::fs::read_to_string(ca)?);
        } else {
            tracing::warn!("no --certificate-authority: the API server's certificate is not verified");
        }
        let node = flotilla_node::start(config).await?;
        super::ingress::print_listening(&node);
        println!("flotilla node {} ready: serving on {}", node.name, node.server_addr);
        super::server::wait_for_signal().await;
        node.shutdown().await;
        Ok(())
    }
}
