//! Everyday kubectl commands against a fresh cluster, asserting what kubectl prints.

use crate::harness::Cluster;

#[test]
fn version_namespaces_and_api_resources() {
    let c = Cluster::start();
    let v = c.kubectl(&["version"]);
    assert!(v.ok().contains("Server Version: v1.32"), "{}", v.stdout);
    let ns = c.kubectl(&["get", "namespaces"]);
    let out = ns.ok();
    for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(out.lines().any(|l| l.starts_with(n) && l.contains("Active")), "{out}");
    }
    let ar = c.kubectl(&["api-resources"]);
    let out = ar.ok();
    assert!(out.lines().any(|l| l.starts_with("deployments") && l.contains("deploy") && l.contains("apps/v1")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("pods") && l.contains("po")), "{out}");
}

#[test]
fn not_found_and_already_exists_errors() {
    let c = Cluster::start();
    assert_eq!(c.kubectl(&["get", "pod", "nope"]).err().trim(), "Error from server (NotFound): pods \"nope\" not found");
    c.kubectl(&["create", "configmap", "c1", "--from-literal=a=b"]).ok();
    let e = c.kubectl(&["create", "configmap", "c1", "--from-literal=a=b"]);
    assert_eq!(e.err().trim(), "error: failed to create configmap: configmaps \"c1\" already exists");
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c1\ndata:\n  a: b\n";
    let e = c.kubectl_stdin(&["create", "-f", "-"], manifest);
    assert_eq!(e.err().trim(), "Error from server (AlreadyExists): error when creating \"STDIN\": configmaps \"c1\" already exists");
}

#[test]
fn unauthenticated_requests_are_refused() {
    let c = Cluster::start();
    let r = c.kubectl(&["get", "pods", "--token", "wrong"]);
    assert!(r.err().contains("You must be logged in to the server"), "{}", r.stderr);
}
