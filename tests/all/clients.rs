//! Clients other than kubectl and kube-rs, installed by scripts/client-deps.sh into
//! target/clients: the official Python client at an old and the newest version runs
//! tests/clients/python_client.py, the JavaScript client tests/clients/js_client.mjs
//! (create/list/watch or informer/patch/delete, logs, exec).

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

#[test]
fn javascript_client() {
    let c = Cluster::start();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let modules = root.join("target/clients/js/node_modules");
    assert!(modules.join("@kubernetes/client-node").is_dir(), "{} is missing: run scripts/client-deps.sh", modules.display());
    let out = Command::new("node")
        .arg(root.join("tests/clients/js_client.mjs"))
        .args(["js", &guest("hello-cmd")])
        .env("KUBECONFIG", &c.kubeconfig)
        .env("HOME", c.path())
        .env("CLIENT_NODE_MODULES", &modules)
        .output()
        .expect("run node");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "javascript client failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("javascript client OK"), "{stdout}");
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
