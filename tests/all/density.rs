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

/// `NodeHandle::shutdown` (what `flotilla up` and `flotilla node` do on Ctrl-C) returns
/// once its pods have stopped: their instances gone and each pod's node directory released.
/// Before, it returned at once and thousands of instances were torn down afterwards, under
/// a restarted node's feet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn density_node_shutdown_waits_for_its_pods() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, PostParams};

    let cp = crate::kube_client::in_process(flotilla_control::store::StoreConfig::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let name = "shutdown-node";
    let mut cfg = flotilla_node::NodeConfig::new(cp.handle.url(), cp.handle.admin_token.clone(), name.into(), dir.path().join("node"));
    cfg.ca_pem = Some(cp.handle.ca_pem.clone());
    cfg.allow_file_images = true;
    cfg.outside_listeners = false;
    cfg.max_instances = 16;
    let node = flotilla_node::start(cfg).await.expect("start node");
    let pods: Api<Pod> = Api::namespaced(cp.client.clone(), "default");
    let mut uids = Vec::new();
    for i in 0..3 {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("sleeper-{i}")},
            "spec": {"nodeName": name, "containers": [{"name": "main", "image": guest("hello-cmd"), "args": ["--sleep-ms", "3600000"]}]},
        }))
        .expect("pod");
        uids.push(pods.create(&PostParams::default(), &pod).await.expect("create pod").metadata.uid.expect("uid"));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let list = pods.list(&Default::default()).await.expect("list");
        let running = list.items.iter().filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")).count();
        if running == 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "3 pods not Running within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pod_dirs: Vec<_> = uids.iter().map(|u| dir.path().join("node/pods").join(u)).collect();
    assert!(pod_dirs.iter().all(|d| d.is_dir()), "each running pod has its directory on the node");
    node.shutdown().await;
    for d in &pod_dirs {
        assert!(!d.exists(), "{} still there when shutdown returned", d.display());
    }
    // The pods stopped with the node, but their objects stay and no events are written for
    // them, as when a kubelet stops.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(cp.client.clone(), "default");
    let killing: Vec<String> = events.list(&Default::default()).await.expect("events").items.into_iter().filter(|e| e.reason.as_deref() == Some("Killing")).filter_map(|e| e.message).collect();
    assert!(killing.is_empty(), "{killing:?}");
    assert_eq!(pods.list(&Default::default()).await.expect("list").items.len(), 3);
}
