//! Test harness: starts the real `flotilla up` binary on a free port with a temp data dir
//! and kubeconfig, and runs the real kubectl against it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `flotilla up` process, killed on drop.
pub struct Cluster {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub url: String,
    pub kubeconfig: PathBuf,
}

/// What a kubectl run printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "command failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        &self.stdout
    }

    /// Asserts failure and returns stderr.
    #[track_caller]
    pub fn err(&self) -> &str {
        assert_ne!(self.code, 0, "command unexpectedly succeeded:\nstdout: {}", self.stdout);
        &self.stderr
    }
}

pub fn flotilla_bin() -> &'static str {
    env!("CARGO_BIN_EXE_flotilla")
}

impl Cluster {
    /// Starts `flotilla up` in a fresh temp dir.
    pub fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir)
    }

    /// Starts `flotilla up` with the data dir inside `dir` (reused across restarts).
    pub fn start_in(dir: tempfile::TempDir) -> Cluster {
        let kubeconfig = dir.path().join("kubeconfig");
        let mut child = Command::new(flotilla_bin())
            .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn flotilla up");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if line.contains("ready") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("flotilla up printed no ready line");
        let url = line.split_whitespace().find(|w| w.starts_with("https://")).expect("url in ready line").to_string();
        Cluster { child: Some(child), dir, url, kubeconfig }
    }

    /// Stops the process (SIGKILL) and hands back its directory.
    pub fn stop(mut self) -> tempfile::TempDir {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
        dir
    }

    pub fn kubectl_cmd(&self) -> Command {
        let mut c = Command::new("kubectl");
        c.env("KUBECONFIG", &self.kubeconfig).env("HOME", self.dir.path()).env_remove("KUBECTL_EXTERNAL_DIFF");
        c
    }

    /// Runs kubectl with `args`.
    pub fn kubectl(&self, args: &[&str]) -> Run {
        Run::from(self.kubectl_cmd().args(args).output().expect("run kubectl"))
    }

    /// Runs kubectl with `args`, feeding `stdin`.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Run {
        use std::io::Write as _;
        let mut child = self.kubectl_cmd().args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run kubectl");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
        Run::from(child.wait_with_output().expect("kubectl output"))
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("data/pki/admin.token")).expect("token").trim().to_string()
    }

    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("data/pki/ca.crt")).expect("ca")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `f` until it returns Some or `timeout` passes.
#[track_caller]
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
