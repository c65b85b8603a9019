//! `flotilla status`: whether the cluster `flotilla up` started (with `-d` or not) runs.

use std::path::PathBuf;

use clap::Args;

use super::state;

/// Show whether the local cluster runs
///
/// Prints `running`, then its version, pid, API URL, node names, uptime and data dir (and
/// log file when it runs in the background); or `not running`, with exit status 3 as
/// `systemctl status` uses.
#[derive(Args, Debug)]
pub(crate) struct StatusCommand {
    /// The data dir `flotilla up` was given
    /// [default: $XDG_DATA_HOME/flotilla or ~/.local/share/flotilla]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl StatusCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        let data_dir = super::server::data_dir(self.data_dir.as_deref())?;
        let Some(s) = state::running(&data_dir) else {
            println!("not running");
            std::process::exit(3);
        };
        println!("running");
        println!("version {}", s.version);
        println!("pid {}", s.pid);
        println!("api {}", s.api);
        println!("nodes {}", s.nodes.join(" "));
        println!("uptime {}", state::human(s.uptime()));
        println!("data dir {}", data_dir.display());
        if let Some(log) = &s.log {
            println!("log {}", log.display());
        }
        Ok(())
    }
}
