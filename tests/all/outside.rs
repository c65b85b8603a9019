//! Traffic from outside the cluster, driven by the real kubectl and curl against
//! `flotilla up --nodes 2`: a Deployment exposed with `kubectl expose --type NodePort` and
//! `--type LoadBalancer` answers curl on 127.0.0.1 from pods of both nodes;
//! externalTrafficPolicy Local keeps traffic on the listening node and its health-check
//! node port reports the local endpoints; a requested node port that is taken or out of
//! range is refused with Kubernetes' message; NetworkPolicy sees the outside client as
//! ipBlock traffic; a TCP container behind a NodePort echoes; a
//! deleted Service's port closes. A second cluster runs with `--disable-service-lb`.
//!
//! Each cluster gets its own `--service-node-port-range`: test clusters run side by side on
//! one host and share its addresses.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use crate::harness::{Cluster, guest, wait_for};

const TIMEOUT: Duration = Duration::from_secs(90);

/// A Deployment of hello-http whose pods tell their name at /env.
fn web(img: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: {img}
        ports: [{{containerPort: 8080}}]
        env:
        - name: POD_NAME
          valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
"#
    )
}

/// `curl http://127.0.0.1:PORT/env` (a new connection each time): the answering pod's
/// name, or curl's failure.
fn pod_at(port: u16) -> Result<String, String> {
    let out = Command::new("curl").args(["-sS", "--max-time", "5", &format!("http://127.0.0.1:{port}/env")]).output().expect("run curl");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    body.lines().find_map(|l| l.strip_prefix("POD_NAME=")).map(str::to_string).ok_or(body)
}

/// How many of `n` connections each pod answered.
fn tally(port: u16, n: usize) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for _ in 0..n {
        let pod = pod_at(port).unwrap_or_else(|e| panic!("curl 127.0.0.1:{port}: {e}"));
        *out.entry(pod).or_default() += 1;
    }
    out
}

/// The web pods by node: name → node.
fn web_pods(c: &Cluster) -> BTreeMap<String, String> {
    let out = c.jsonpath(&["pods", "-l", "app=web"], r#"{range .items[*]}{.metadata.name}={.spec.nodeName}{"\n"}{end}"#);
    out.lines().filter_map(|l| l.split_once('=')).map(|(p, n)| (p.to_string(), n.to_string())).collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn node_port(c: &Cluster, svc: &str) -> u16 {
    c.jsonpath(&["svc", svc], "{.spec.ports[0].nodePort}").parse().unwrap_or_else(|e| panic!("nodePort of {svc}: {e}"))
}

#[test]
fn outside_node_port_load_balancer_and_local_policy() {
    let c = Cluster::start_with(&["--nodes", "2", "--service-node-port-range", "31200-31299"]);
    let (http, echo) = (guest("hello-http"), guest("tcp-echo"));
    c.apply(&web(&http, 4));
    let pods = wait_for(TIMEOUT, "4 Ready web pods on both nodes", || {
        let ready = c.jsonpath(&["pods", "-l", "app=web"], r#"{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#);
        let pods = web_pods(&c);
        (ready.lines().filter(|l| *l == "True").count() == 4 && pods.values().any(|n| n.ends_with("-1")) && pods.values().any(|n| n.ends_with("-2"))).then_some(pods)
    });
    let listening_node = pods.values().find(|n| n.ends_with("-1")).expect("a node -1").clone();

    // NodePort: allocated from the range, shown by kubectl, answered by every pod.
    c.kubectl(&["expose", "deployment", "web", "--type", "NodePort", "--port", "80", "--target-port", "8080", "--name", "web-np"]).ok();
    let np = node_port(&c, "web-np");
    assert!((31200..=31299).contains(&np), "{np}");
    let out = c.kubectl(&["get", "svc", "web-np"]).ok().to_string();
    assert!(out.contains(&format!("80:{np}/TCP")), "{out}");
    assert!(out.contains("NodePort"), "{out}");
    let seen = wait_for(TIMEOUT, "the node port to answer", || pod_at(np).ok());
    assert!(pods.contains_key(&seen), "{seen} not in {pods:?}");
    let counts = tally(np, 24);
    assert_eq!(counts.keys().cloned().collect::<Vec<_>>(), pods.keys().cloned().collect::<Vec<_>>(), "every pod of both nodes answers: {counts:?}");

    // Requested node ports: taken, or outside the range.
    let clash = c.kubectl(&["create", "service", "nodeport", "clash", "--tcp=80:8080", &format!("--node-port={np}")]);
    assert!(clash.err().contains(&format!("spec.ports[0].nodePort: Invalid value: {np}: provided port is already allocated")), "{}", clash.stderr);
    let outside = c.kubectl(&["create", "service", "nodeport", "clash", "--tcp=80:8080", "--node-port=30000"]);
    assert!(outside.err().contains("provided port is not in the valid range. The range of valid ports is 31200-31299"), "{}", outside.stderr);
    assert!(c.kubectl(&["get", "svc", "clash"]).err().contains("NotFound"));

    // externalTrafficPolicy Local: only the listening node's pods answer.
    c.kubectl(&["patch", "svc", "web-np", "-p", r#"{"spec":{"externalTrafficPolicy":"Local"}}"#]).ok();
    let local: Vec<&String> = pods.iter().filter(|(_, n)| **n == listening_node).map(|(p, _)| p).collect();
    wait_for(TIMEOUT, "Local policy to take effect", || tally(np, 8).keys().all(|p| local.contains(&p)).then_some(()));
    let counts = tally(np, 16);
    assert!(counts.keys().all(|p| local.contains(&p)), "{counts:?} vs local {local:?}");

    // LoadBalancer: the built-in load balancer publishes the node address and listens on
    // the Service port; the node port works too.
    let lb_port = free_port();
    c.kubectl(&["expose", "deployment", "web", "--type", "LoadBalancer", "--port", &lb_port.to_string(), "--target-port", "8080", "--name", "web-lb"]).ok();
    let row = wait_for(TIMEOUT, "web-lb's EXTERNAL-IP", || {
        let out = c.kubectl(&["get", "svc", "web-lb", "--no-headers"]).ok().to_string();
        out.split_whitespace().nth(3).filter(|ip| *ip == "127.0.0.1").map(|_| out.clone())
    });
    assert!(row.contains("LoadBalancer"), "{row}");
    let seen = wait_for(TIMEOUT, "the load balancer port to answer", || pod_at(lb_port).ok());
    assert!(pods.contains_key(&seen), "{seen}");
    assert_eq!(tally(lb_port, 24).len(), 4, "every pod answers through the load balancer");
    assert!(pods.contains_key(&pod_at(node_port(&c, "web-lb")).expect("the LB's node port")));

    // Local on a LoadBalancer: a health-check node port reporting this node's endpoints.
    c.kubectl(&["patch", "svc", "web-lb", "-p", r#"{"spec":{"externalTrafficPolicy":"Local"}}"#]).ok();
    let hc: u16 = c.jsonpath(&["svc", "web-lb"], "{.spec.healthCheckNodePort}").parse().expect("healthCheckNodePort");
    assert!((31200..=31299).contains(&hc), "{hc}");
    let body = wait_for(TIMEOUT, "the health check to answer", || {
        let out = Command::new("curl").args(["-sS", "--max-time", "5", &format!("http://127.0.0.1:{hc}/healthz")]).output().expect("curl");
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned()).filter(|b| !b.is_empty())
    });
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["service"], serde_json::json!({"namespace": "default", "name": "web-lb"}), "{body}");
    assert_eq!(v["localEndpoints"], local.len(), "{body}");

    // NetworkPolicy: an outside client is ipBlock traffic.
    let policy = |cidr: &str| format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: web-from}}\nspec:\n  podSelector: {{matchLabels: {{app: web}}}}\n  policyTypes: [Ingress]\n  ingress:\n  - from: [{{ipBlock: {{cidr: {cidr}}}}}]\n"
    );
    c.apply(&policy("192.168.0.0/16"));
    wait_for(TIMEOUT, "the policy to refuse 127.0.0.1", || pod_at(lb_port).is_err().then_some(()));
    c.apply(&policy("127.0.0.0/8"));
    wait_for(TIMEOUT, "the policy to admit 127.0.0.1", || pod_at(lb_port).ok());
    c.kubectl(&["delete", "networkpolicy", "web-from"]).ok();

    // A TCP container behind a NodePort: bytes both ways.
    c.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: echo, labels: {{app: echo}}}}\nspec:\n  containers:\n  - name: echo\n    image: {echo}\n    args: [\"7000\"]\n    ports: [{{containerPort: 7000}}]\n"
    ));
    c.wait_ready("echo");
    c.kubectl(&["expose", "pod", "echo", "--type", "NodePort", "--port", "7000"]).ok();
    let tcp_port = node_port(&c, "echo");
    let reply = wait_for(TIMEOUT, "the TCP node port to echo", || {
        let mut s = TcpStream::connect(("127.0.0.1", tcp_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"from outside\n").ok()?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).ok()?;
        (!line.is_empty()).then_some(line)
    });
    assert_eq!(reply, "echo: from outside\n");

    // A deleted Service's node port closes.
    c.kubectl(&["delete", "svc", "web-np"]).ok();
    wait_for(TIMEOUT, "the deleted Service's node port to close", || TcpStream::connect(("127.0.0.1", np)).is_err().then_some(()));
}

#[test]
fn outside_service_lb_can_be_disabled() {
    let c = Cluster::start_with(&["--disable-service-lb", "--service-node-port-range", "31300-31309"]);
    c.apply(&web(&guest("hello-http"), 1));
    let lb_port = free_port();
    c.kubectl(&["expose", "deployment", "web", "--type", "LoadBalancer", "--port", &lb_port.to_string(), "--target-port", "8080", "--name", "web-lb"]).ok();
    // The node port works (the node has seen the Service and its endpoint)…
    let np = node_port(&c, "web-lb");
    assert!((31300..=31309).contains(&np), "{np}");
    wait_for(TIMEOUT, "the node port to answer", || pod_at(np).ok());
    // …but no load balancer: the Service stays pending and its port is not served.
    std::thread::sleep(Duration::from_secs(2));
    let row = c.kubectl(&["get", "svc", "web-lb", "--no-headers"]).ok().to_string();
    assert_eq!(row.split_whitespace().nth(3), Some("<pending>"), "{row}");
    assert!(TcpStream::connect(("127.0.0.1", lb_port)).is_err(), "nothing listens on the Service port");
}
