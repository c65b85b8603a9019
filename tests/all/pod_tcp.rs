//! TCP through wasi:sockets over the pod network, driven by the real kubectl against
//! `flotilla up`: tcp-echo servers and tcp-client clients (command containers) whose
//! output `kubectl logs` shows. A pod's client container talks to its server container
//! on localhost; two pods both listen on 6379; a port nobody listens on is refused at
//! once; an echo Deployment behind a Service whose port differs from its targetPort is
//! reached by the Service's short and full DNS names; an echo pod on a separate
//! `flotilla node` process is reached across the data plane by Service name and pod IP.

use std::time::Duration;

use crate::harness::{Cluster, NodeProcess, guest, node_name, wait_for};

/// Waits until `kubectl logs POD -c CONTAINER` contains `want`; returns the logs.
fn logs_with(c: &Cluster, pod: &str, container: &str, want: &str) -> String {
    wait_for(Duration::from_secs(60), &format!("{pod}/{container} to log {want:?}"), || {
        let out = c.kubectl(&["logs", pod, "-c", container]).stdout;
        out.contains(want).then_some(out)
    })
}

/// A Pod running tcp-client once against `target`.
fn client_pod(name: &str, img: &str, target: &str, message: &str, retries: u32) -> String {
    client_pod_on(name, img, target, message, retries, &node_name())
}

/// A Pod on `node` running tcp-client once against `target`.
fn client_pod_on(name: &str, img: &str, target: &str, message: &str, retries: u32, node: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {node}
  restartPolicy: Never
  containers:
  - name: client
    image: {img}
    args: ["{target}", "{message}"]
    env: [{{name: TCP_RETRIES, value: "{retries}"}}]
"#
    )
}

/// A Pod running tcp-echo on `port`, answering as `name`.
pub(crate) fn echo_pod(name: &str, img: &str, port: u16) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  containers:
  - name: echo
    image: {img}
    args: ["{port}"]
    ports: [{{containerPort: {port}}}]
    env: [{{name: NAME, value: "{name}"}}]
"#
    )
}

#[test]
fn pod_tcp_localhost_same_port_and_refused() {
    let c = Cluster::start();
    let (echo, client) = (guest("tcp-echo"), guest("tcp-client"));
    // One pod: the client container talks to the server container on localhost.
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: duo}}
spec:
  restartPolicy: Never
  containers:
  - name: server
    image: {echo}
    args: ["6379"]
  - name: client
    image: {client}
    args: ["127.0.0.1:6379", "over localhost"]
    env: [{{name: TCP_RETRIES, value: "100"}}]
"#
    ));
    let out = logs_with(&c, "duo", "client", "reply:");
    assert!(out.contains("reply: echo: over localhost"), "{out}");
    assert!(out.contains("-> 127.0.0.1:6379"), "{out}");
    let server = logs_with(&c, "duo", "server", "over localhost");
    assert!(server.contains("listening on 0.0.0.0:6379"), "{server}");

    // Two pods both listen on 6379; each is reached at its own address.
    c.apply(&echo_pod("a", &echo, 6379));
    c.apply(&echo_pod("b", &echo, 6379));
    c.wait_ready("a");
    c.wait_ready("b");
    let (ip_a, ip_b) = (c.pod_jsonpath("a", "{.status.podIP}"), c.pod_jsonpath("b", "{.status.podIP}"));
    assert_ne!(ip_a, ip_b);
    c.apply(&client_pod("to-a", &client, &format!("{ip_a}:6379"), "for a", 100));
    c.apply(&client_pod("to-b", &client, &format!("{ip_b}:6379"), "for b", 100));
    assert!(logs_with(&c, "to-a", "client", "reply:").contains("reply: a: for a"));
    assert!(logs_with(&c, "to-b", "client", "reply:").contains("reply: b: for b"));
    c.wait_pod("to-a", "{.status.phase}", "Succeeded", Duration::from_secs(30));

    // A port nobody listens on: connection refused at once, the client fails.
    c.apply(&client_pod("nobody", &client, &format!("{ip_a}:9999"), "x", 0));
    let out = logs_with(&c, "nobody", "client", "error:");
    assert!(out.contains("error: connection-refused"), "{out}");
    c.wait_pod("nobody", "{.status.phase}", "Failed", Duration::from_secs(30));
}

#[test]
fn pod_tcp_service_with_a_different_target_port() {
    let c = Cluster::start();
    let (echo, client) = (guest("tcp-echo"), guest("tcp-client"));
    c.apply(&format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: echo}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: echo}}}}
  template:
    metadata: {{labels: {{app: echo}}}}
    spec:
      containers:
      - name: echo
        image: {echo}
        args: ["7000"]
        ports: [{{name: tcp, containerPort: 7000}}]
        env: [{{name: NAME, value: "svc"}}]
---
apiVersion: v1
kind: Service
metadata: {{name: echo}}
spec:
  selector: {{app: echo}}
  ports: [{{name: redis, port: 6000, targetPort: tcp}}]
"#
    ));
    wait_for(Duration::from_secs(60), "two ready echo endpoints", || {
        // Not `jsonpath`: the Endpoints object may not exist yet.
        let ips = c.kubectl(&["get", "endpoints", "echo", "-o", "jsonpath={.subsets[*].addresses[*].ip}"]).stdout;
        (ips.split_whitespace().count() == 2).then_some(())
    });
    // The client retries while its node learns the Service (the name is unknown until then).
    c.apply(&client_pod("short", &client, "echo:6000", "by short name", 100));
    c.apply(&client_pod("full", &client, "echo.default.svc.cluster.local:6000", "by full name", 100));
    let out = logs_with(&c, "short", "client", "reply:");
    assert!(out.contains("reply: svc: by short name"), "{out}");
    let cluster_ip = c.jsonpath(&["svc", "echo"], "{.spec.clusterIP}");
    assert!(out.contains(&format!("-> {cluster_ip}:6000")), "the client sees the ClusterIP it connected to: {out}");
    assert!(logs_with(&c, "full", "client", "reply:").contains("reply: svc: by full name"));
    c.wait_pod("short", "{.status.phase}", "Succeeded", Duration::from_secs(30));

    // The Service's port is 6000: its targetPort is not a Service port.
    c.apply(&client_pod("wrong-port", &client, "echo:7000", "x", 0));
    let out = logs_with(&c, "wrong-port", "client", "error:");
    assert!(out.contains("error: connection-refused"), "{out}");
    // An unknown cluster name does not resolve.
    c.apply(&client_pod("no-name", &client, "nosuch:6000", "x", 0));
    let out = logs_with(&c, "no-name", "client", "error:");
    assert!(out.contains("error: name-unresolvable"), "{out}");
}

#[test]
fn pod_tcp_cross_node_through_the_data_plane() {
    let c = Cluster::start();
    let joined = NodeProcess::start(&c, "joined");
    let (echo, client) = (guest("tcp-echo"), guest("tcp-client"));
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: far, labels: {{app: far}}}}
spec:
  nodeName: {node}
  containers:
  - name: echo
    image: {echo}
    args: ["7000"]
    ports: [{{name: tcp, containerPort: 7000}}]
    env: [{{name: NAME, value: "far"}}]
---
apiVersion: v1
kind: Service
metadata: {{name: far}}
spec:
  selector: {{app: far}}
  ports: [{{port: 6000, targetPort: tcp}}]
"#,
        node = joined.name
    ));
    c.wait_ready("far");
    let ip = c.pod_jsonpath("far", "{.status.podIP}");
    let here = node_name();
    c.apply(&client_pod_on("by-ip", &client, &format!("{ip}:7000"), "over the data plane", 100, &here));
    c.apply(&client_pod_on("by-name", &client, "far:6000", "by service", 100, &here));
    let out = logs_with(&c, "by-ip", "client", "reply:");
    assert!(out.contains("reply: far: over the data plane"), "{out}");
    assert!(logs_with(&c, "by-name", "client", "reply:").contains("reply: far: by service"));
    // The server on the other node saw the client pod's address.
    let client_ip = c.pod_jsonpath("by-ip", "{.status.podIP}");
    let server = logs_with(&c, "far", "echo", "over the data plane");
    assert!(server.contains(&format!("{client_ip}:")), "{server}");
    // Nobody listening on that port over there: refused by the remote node.
    c.apply(&client_pod_on("far-closed", &client, &format!("{ip}:7999"), "x", 0, &here));
    let out = logs_with(&c, "far-closed", "client", "error:");
    assert!(out.contains("error: connection-refused"), "{out}");
    drop(joined);
}
