//! Clients other than kubectl and kube-rs: the official Python client, at an old and the
//! newest version (installed by scripts/client-deps.sh into target/clients), runs
//! tests/clients/python_client.py (create/list/watch/patch/delete, logs, exec).

use std::path::Path;
use std::process::Command;

use crate::harness::{Cluster, guest};

fn python_client(c: &Cluster, version: &str, namespace: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(format!("target/clients/python-kubernetes-{version}/bin/python"));
    assert!(python.is_file(), "{} is missing: run scripts/client-deps.sh", python.display());
    let out = Command::new(python)
        .arg(root.join("tests/clients/python_client.py"))
        .args([namespace, &guest("hello-cmd")])
        .env("KUBECONFIG", &c.kubeconfig)
        .env("HOME", c.path())
        .output()
        .expect("run python");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "python client {version} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("OK"), "{stdout}");
}

/// kubernetes 32.0.1 sends `watch=True` (Python's spelling of the bool): until the API
/// server parsed booleans as Go does, its watches got a list back and no events.
#[test]
fn python_client_old_and_new() {
    let c = Cluster::start();
    std::thread::scope(|s| {
        s.spawn(|| python_client(&c, "32.0.1", "py-old"));
        python_client(&c, "37.0.2", "py-new");
    });
}
