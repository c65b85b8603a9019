//! `flotilla up`: a local cluster in one process — the control plane and one embedded node
//! that reaches it through the same URL and token a remote node would use.

use clap::Args;

use super::server::{ControlPlaneFlags, wait_for_signal};

/// Start a local Flotilla cluster and point kubectl at it.
#[derive(Args, Debug)]
pub(crate) struct UpCommand {
    #[command(flatten)]
    pub flags: ControlPlaneFlags,
    /// First delay before restarting a crashed container, in milliseconds; it doubles up to
    /// 5 minutes (Kubernetes: 10000)
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub restart_backoff_ms: u64,
}

impl UpCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let handle = self.flags.start_quiet().await?;
        let mut config = flotilla_node::NodeConfig::new(handle.url(), handle.admin_token.clone(), super::node::host_name(), self.flags.data_dir()?.join("node"));
        config.ca_pem = Some(handle.ca_pem.clone());
        config.allow_file_images = true;
        config.backoff.base = std::time::Duration::from_millis(self.restart_backoff_ms);
        config.bind_address = std::net::IpAddr::from([127, 0, 0, 1]);
        let node = flotilla_node::start(config).await?;
        self.flags.print_ready("cluster", &handle)?;
        wait_for_signal().await;
        node.shutdown().await;
        handle.shutdown().await;
        Ok(())
    }
}
