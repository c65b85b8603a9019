//! `flotilla up`: a local cluster in one process — the control plane (and, once the node
//! agent lands, one embedded node).

use clap::Args;

use super::server::{ControlPlaneFlags, wait_for_signal};

/// Start a local Flotilla cluster and point kubectl at it.
#[derive(Args, Debug)]
pub(crate) struct UpCommand {
    #[command(flatten)]
    pub flags: ControlPlaneFlags,
}

impl UpCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let handle = self.flags.start("cluster").await?;
        wait_for_signal().await;
        handle.shutdown().await;
        Ok(())
    }
}
