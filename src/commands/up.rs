//! `flotilla up`: a local cluster in one process — the control plane and embedded nodes
//! that reach it through the same URL and token a remote node would use.

use clap::Args;

use super::server::{ControlPlaneFlags, wait_for_signal};

/// Start a local Flotilla cluster and point kubectl at it.
#[derive(Args, Debug)]
pub(crate) struct UpCommand {
    #[command(flatten)]
    pub flags: ControlPlaneFlags,
    /// Number of embedded nodes. One node is named after the host; several are named
    /// HOST-1 … HOST-N
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=64))]
    pub nodes: u32,
    /// Let pods reach addresses outside the cluster over the host's network (HTTP and TCP),
    /// where NetworkPolicy allows; without it pods reach only the pod network
    #[arg(long)]
    pub allow_pod_egress: bool,
    // One Ingress listener per process: the first embedded node runs it for all.
    #[command(flatten)]
    pub ingress: super::ingress::IngressFlags,
    /// First delay before restarting a crashed container, in milliseconds; it doubles up to
    /// 5 minutes (Kubernetes: 10000)
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub restart_backoff_ms: u64,
    /// Most pods a node runs (its allocatable pods; fewer if its pod range holds fewer
    /// addresses, see --node-cidr-mask-size)
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_pods: u32,
    /// Applies to each embedded node.
    #[command(flatten)]
    pub allocatable: super::node::AllocatableFlags,
}

/// Names of `count` embedded nodes on host `host`.
fn node_names(host: &str, count: u32) -> Vec<String> {
    match count {
        1 => vec![host.to_string()],
        n => (1..=n).map(|i| format!("{host}-{i}")).collect(),
    }
}

impl UpCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let handle = self.flags.start_quiet().await?;
        let mut nodes = Vec::new();
        for (i, name) in node_names(&super::node::host_name(), self.nodes).into_iter().enumerate() {
            let dir = self.flags.data_dir()?.join(if self.nodes == 1 { "node".to_string() } else { format!("node-{name}") });
            let mut config = flotilla_node::NodeConfig::new(handle.url(), handle.admin_token.clone(), name, dir);
            config.ca_pem = Some(handle.ca_pem.clone());
            config.allow_file_images = true;
            config.allow_egress = self.allow_pod_egress;
            config.backoff.base = std::time::Duration::from_millis(self.restart_backoff_ms);
            config.max_pods = self.max_pods;
            self.allocatable.apply(&mut config);
            // The embedded nodes share this process's memory mappings: they split one pool budget.
            config.max_instances = flotilla_node::INSTANCE_BUDGET / self.nodes.max(1);
            config.bind_address = std::net::IpAddr::from([127, 0, 0, 1]);
            // The embedded nodes share 127.0.0.1: the first one listens for node ports and
            // load balancers, and reaches the others' pods through the data plane.
            config.outside_listeners = i == 0;
            if nodes.is_empty() {
                config.ingress = self.ingress.listen();
            }
            nodes.push(flotilla_node::start(config).await?);
        }
        print_ingress(nodes.first());
        self.flags.print_ready("cluster", &handle)?;
        wait_for_signal().await;
        for node in nodes {
            node.shutdown().await;
        }
        handle.shutdown().await;
        Ok(())
    }
}

/// Says where the Ingress controller listens (before the ready line).
fn print_ingress(node: Option<&flotilla_node::NodeHandle>) {
    if let Some(node) = node {
        super::ingress::print_listening(node);
    }
}

#[cfg(test)]
mod tests {
    use super::node_names;

    #[test]
    fn one_node_takes_the_host_name_several_are_numbered() {
        assert_eq!(node_names("vm", 1), vec!["vm"]);
        assert_eq!(node_names("vm", 3), vec!["vm-1", "vm-2", "vm-3"]);
        assert!(node_names("vm", 0).is_empty());
    }
}
