//! A newcomer's path with the guest SDK: `flotilla new http` scaffolds a project,
//! `flotilla build` turns it into a component, `flotilla push` and `kubectl apply` run it,
//! and its pods answer through the Service (greeting from the ConfigMap it mounts).

use std::path::Path;
use std::process::Command;

use crate::harness::{Cluster, flotilla_bin};

#[test]
fn scaffold_build_push_and_run_an_http_guest() {
    let c = Cluster::start();
    let work = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let out = Command::new(flotilla_bin())
            .args(args)
            .current_dir(work.path())
            .env("KUBECONFIG", &c.kubeconfig)
            .env("HOME", c.path())
            // Share the std the test guests were built with (a fresh one takes minutes).
            .env("FLOTILLA_GUEST_BUILD_DIR", Path::new(env!("CARGO_MANIFEST_DIR")).join("target/guest-build"))
            .output()
            .expect("run flotilla");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
        assert!(out.status.success(), "flotilla {args:?} failed:\n{stdout}\n{stderr}");
        stdout
    };
    let created = run(&["new", "http", "demo"]);
    // The manifest's image names the cluster's own registry, from the kubeconfig.
    assert!(created.contains(&format!("image {}/demo:v1", c.host())), "{created}");
    let built = run(&["build", "demo"]);
    assert!(built.contains("demo/target/wasm/demo.wasm"), "{built}");
    run(&["push", "demo/target/wasm/demo.wasm", "demo:v1"]);
    let manifest = work.path().join("demo/manifest.yaml");
    c.kubectl(&["apply", "-f", manifest.to_str().unwrap()]).ok();
    c.kubectl(&["rollout", "status", "deployment/demo", "--timeout=90s"]).ok();
    let pods = c.jsonpath(&["pods", "-l", "app=demo"], "{.items[*].metadata.name}");
    let first = pods.split_whitespace().next().expect("a pod").to_string();
    let hello = c.kubectl(&["get", "--raw", &format!("/api/v1/namespaces/default/pods/{first}:8080/proxy/hello/you?times=2")]);
    assert_eq!(hello.ok(), "hello, you!\nhello, you!\n");
    let greeting = c.kubectl(&["get", "--raw", &format!("/api/v1/namespaces/default/pods/{first}:8080/proxy/")]);
    assert_eq!(greeting.ok(), format!("Hi from {first}\n"), "the greeting comes from the mounted ConfigMap");
    // The SDK's structured log line shows in kubectl logs.
    let logs = c.kubectl(&["logs", &first]);
    assert!(logs.ok().contains("greeting") && logs.stdout.contains("name=you"), "{}", logs.stdout);
}
