//! Density: a Deployment of 200 replicas of a component new to the node, created in one
//! burst, compiles it once (the node's `flotilla_node_compilations_total`, read through the
//! API server's nodes/NAME/proxy/metrics as `kubectl get --raw` does) and every pod gets
//! Ready; a second component adds one compilation, not one per pod.

use std::time::Duration;

use crate::harness::{Cluster, guest, node_name, wait_for};

fn compilations(c: &Cluster) -> u64 {
    let path = format!("/api/v1/nodes/{}/proxy/metrics", node_name());
    let out = c.kubectl(&["get", "--raw", &path]).ok().to_string();
    assert!(out.contains("# TYPE flotilla_node_compilations_total counter"), "{out}");
    out.lines()
        .find_map(|l| l.strip_prefix("flotilla_node_compilations_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no compilations metric in\n{out}"))
}

fn deployment(name: &str, img: &str, replicas: u32, command: bool) -> String {
    let body = if command { "        args: [\"--sleep-ms\", \"3600000\"]\n" } else { "" };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers:\n      - name: main\n        image: {img}\n{body}"
    )
}

fn wait_ready(c: &Cluster, name: &str, n: u32) {
    wait_for(Duration::from_secs(180), &format!("{n} ready replicas of {name}"), || {
        (c.jsonpath(&["deployment", name], "{.status.readyReplicas}") == n.to_string()).then_some(())
    });
}

#[test]
fn density_a_burst_of_pods_of_a_new_component_compiles_it_once() {
    let c = Cluster::start();
    assert_eq!(compilations(&c), 0, "nothing compiled before the first pod");
    c.apply(&deployment("burst", &guest("hello-http"), 200, false));
    wait_ready(&c, "burst", 200);
    assert_eq!(compilations(&c), 1, "200 pods of one new component: one compilation");
    let health = c.kubectl(&["get", "--raw", &format!("/api/v1/nodes/{}/proxy/healthz", node_name())]).ok().to_string();
    assert_eq!(health, "ok");

    // A command component: one more, however many pods.
    c.apply(&deployment("sleepers", &guest("hello-cmd"), 20, true));
    wait_ready(&c, "sleepers", 20);
    assert_eq!(compilations(&c), 2);
    let out = c.kubectl(&["get", "--raw", "/api/v1/nodes/nope/proxy/metrics"]);
    assert!(out.err().contains("NotFound"), "{}", out.stderr);
}
