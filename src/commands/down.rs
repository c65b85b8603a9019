//! `flotilla down`: stops the cluster `flotilla up` started, gracefully, and puts the
//! kubeconfig's previous current-context back.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use super::{kubeconfig, state};

/// How long the cluster gets to stop: the node waits up to 40 s for its pods' grace
/// periods, then the control plane stops.
const STOP_TIMEOUT: Duration = Duration::from_secs(90);

/// Stop the local cluster
///
/// Stops the cluster `flotilla up` started (SIGTERM: pods get their grace period, then the
/// control plane stops; SIGKILL after 90 s), keeps its data unless --purge, and makes the
/// kubeconfig's context from before `flotilla up` current again.
#[derive(Args, Debug)]
pub(crate) struct DownCommand {
    /// The data dir `flotilla up` was given
    /// [default: $XDG_DATA_HOME/flotilla or ~/.local/share/flotilla]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Also delete the data dir (every object, the cluster CA, the pods' data) and the
    /// `flotilla` cluster, user and context from the kubeconfig
    #[arg(long)]
    pub purge: bool,
}

impl DownCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let data_dir = super::server::data_dir(self.data_dir.as_deref())?;
        let recorded = state::read(&data_dir);
        let merged_into = kubeconfig::merged_into(&data_dir);
        match recorded.as_ref().filter(|s| state::alive(s.pid)) {
            Some(s) => stop(s.pid).await?,
            None => println!("flotilla is not running"),
        }
        // The process restores it as it stops; this covers one that was killed.
        if let Err(e) = kubeconfig::restore(&data_dir) {
            eprintln!("flotilla: could not restore the kubeconfig's previous context: {e:#}");
        }
        if let Some(path) = merged_into {
            match kubeconfig::current(&path) {
                Ok(c) if c.is_empty() => println!("kubeconfig {}: no current context, as before flotilla up", path.display()),
                Ok(c) if c == kubeconfig::NAME => {}
                Ok(c) => println!("kubeconfig {}: current context is {c} again", path.display()),
                Err(e) => eprintln!("flotilla: {e:#}"),
            }
        }
        if recorded.is_some() {
            let _ = std::fs::remove_file(state::path(&data_dir));
        }
        if !self.purge {
            if data_dir.exists() {
                println!("data kept in {} (delete it with `flotilla down --purge`)", data_dir.display());
            }
            return Ok(());
        }
        if let Some(s) = &recorded
            && kubeconfig::remove(&s.kubeconfig)?
        {
            println!("kubeconfig: removed the flotilla cluster, user and context from {}", s.kubeconfig.display());
        }
        match std::fs::remove_dir_all(&data_dir) {
            Ok(()) => println!("deleted {}", data_dir.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow::anyhow!("deleting {}: {e}", data_dir.display())),
        }
        Ok(())
    }
}

/// SIGTERM, then waits for the process to exit (SIGKILL after STOP_TIMEOUT).
async fn stop(pid: u32) -> anyhow::Result<()> {
    let target = rustix::process::Pid::from_raw(pid as i32).ok_or_else(|| anyhow::anyhow!("bad pid {pid}"))?;
    println!("stopping flotilla (pid {pid}); pods get their grace period");
    rustix::process::kill_process(target, rustix::process::Signal::TERM)?;
    let started = Instant::now();
    while state::alive(pid) {
        if started.elapsed() > STOP_TIMEOUT {
            eprintln!("flotilla: pid {pid} did not stop within {} s; killing it", STOP_TIMEOUT.as_secs());
            let _ = rustix::process::kill_process(target, rustix::process::Signal::KILL);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("flotilla stopped after {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
