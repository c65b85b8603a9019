//! The run state a `flotilla up` process leaves in its data dir while it serves
//! (`DIR/up.json`): what `flotilla status` prints and what `flotilla down` stops.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

const FILE: &str = "up.json";

/// Written once the cluster serves, removed when the process stops gracefully.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct RunState {
    pub pid: u32,
    pub version: String,
    pub api: String,
    pub nodes: Vec<String>,
    /// Seconds since the Unix epoch.
    pub started: u64,
    pub kubeconfig: PathBuf,
    /// Where a detached process writes its output (None in the foreground).
    pub log: Option<PathBuf>,
}

impl RunState {
    pub(crate) fn new(api: String, nodes: Vec<String>, kubeconfig: PathBuf, log: Option<PathBuf>) -> RunState {
        let started = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        RunState { pid: std::process::id(), version: env!("CARGO_PKG_VERSION").to_string(), api, nodes, started, kubeconfig, log }
    }

    pub(crate) fn uptime(&self) -> Duration {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        Duration::from_secs(now.saturating_sub(self.started))
    }
}

pub(crate) fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// Records the state (atomically: a reader never sees half a file).
pub(crate) fn write(data_dir: &Path, state: &RunState) -> anyhow::Result<()> {
    let tmp = data_dir.join(format!("{FILE}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(state)?)?;
    std::fs::rename(&tmp, path(data_dir))?;
    Ok(())
}

/// The recorded state, if any (a file that does not parse counts as none).
pub(crate) fn read(data_dir: &Path) -> Option<RunState> {
    let bytes = std::fs::read(path(data_dir)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Removes the state file if it is this process's (a newer process may have replaced it).
pub(crate) fn remove_own(data_dir: &Path) {
    if read(data_dir).is_some_and(|s| s.pid == std::process::id()) {
        let _ = std::fs::remove_file(path(data_dir));
    }
}

/// The recorded process, if it is still a live flotilla process (not a zombie, and not
/// another program that reused its pid).
pub(crate) fn running(data_dir: &Path) -> Option<RunState> {
    read(data_dir).filter(|s| alive(s.pid))
}

/// Whether `pid` is a live flotilla process.
pub(crate) fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The state follows the parenthesised command name, which may itself hold spaces.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, None | Some("Z") | Some("X")) {
        return false;
    }
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| c.split(|b| *b == 0).next().is_some_and(|argv0| String::from_utf8_lossy(argv0).contains("flotilla")))
        .unwrap_or(false)
}

/// "1h2m3s" style, as kubectl prints ages but exact.
pub(crate) fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_only_its_own_process_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).is_none());
        let mut s = RunState::new("https://127.0.0.1:1".into(), vec!["a".into()], "/k".into(), None);
        write(dir.path(), &s).unwrap();
        assert_eq!(read(dir.path()), Some(s.clone()));
        // (The unit-test binary is named flotilla-HASH: it counts as a flotilla process.)
        assert_eq!(running(dir.path()), Some(s.clone()));
        // pid 1 is init, not flotilla: a recorded pid reused by another program is not running.
        s.pid = 1;
        write(dir.path(), &s).unwrap();
        assert!(running(dir.path()).is_none());
        remove_own(dir.path());
        assert!(read(dir.path()).is_some(), "another process's state stays");
        s.pid = std::process::id();
        write(dir.path(), &s).unwrap();
        remove_own(dir.path());
        assert!(read(dir.path()).is_none());
    }

    #[test]
    fn a_missing_pid_is_not_alive() {
        assert!(!alive(u32::MAX - 1));
    }

    #[test]
    fn durations_print_compactly() {
        assert_eq!(human(Duration::from_secs(5)), "5s");
        assert_eq!(human(Duration::from_secs(65)), "1m5s");
        assert_eq!(human(Duration::from_secs(3725)), "1h2m5s");
    }
}
