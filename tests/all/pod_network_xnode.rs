//! The pod network across nodes, driven by the real kubectl: a client pod on the embedded
//! node calls a pod on a separate `flotilla node` process by pod IP and by Service name
//! (through that node's data-plane listener, published on its Node); a Deployment spread
//! over two embedded nodes behind a Service gets requests on both nodes, from either node;
//! a pod whose node process is gone is refused within 3 s, never a hang.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::harness::{Cluster, NodeProcess, guest, node_name, wait_for};
use crate::pod_network::{REFUSED, fetch, tally};
use crate::workloads::node_names;


/// An http-client pod bound to `node` that says its name at /whoami, labelled app=NAME.
fn client_pod(name: &str, node: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  nodeName: {node}
  containers:
  - name: client
    image: {img}
    ports: [{{name: http, containerPort: 8080}}]
    env:
    - name: POD_NAME
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
"#,
        img = guest("http-client")
    )
}

#[test]
fn pod_network_xnode_reaches_a_separate_node_process() {
    let c = Cluster::start();
    let joined = NodeProcess::start(&c, "joined");
    // The node publishes its data plane on its Node.
    let port = wait_for(Duration::from_secs(10), "the joined node's data-plane port", || {
        let p = c.jsonpath(&["node", "joined"], r#"{.metadata.annotations.node\.flotilla\.dev/data-plane-port}"#);
        p.parse::<u16>().ok().filter(|p| *p > 0)
    });
    let kubelet = c.jsonpath(&["node", "joined"], "{.status.daemonEndpoints.kubeletEndpoint.Port}");
    assert_ne!(port.to_string(), kubelet, "the data plane has a port of its own");

    c.apply(&client_pod("here", &node_name()));
    c.apply(&client_pod("there", &joined.name));
    c.wait_ready("here");
    c.wait_ready("there");
    c.kubectl(&["expose", "pod", "there", "--port=80", "--target-port=http"]).ok();
    let ip = c.pod_jsonpath("there", "{.status.podIP}");

    let t = Instant::now();
    assert_eq!(fetch(&c, "here", &format!("http://{ip}:8080/whoami"), 3), "200 there\n".repeat(3), "by pod IP");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    wait_for(Duration::from_secs(10), "the Service to route to the other node", || (fetch(&c, "here", "http://there/whoami", 1) == "200 there\n").then_some(()));
    assert_eq!(fetch(&c, "here", "http://there.default.svc.cluster.local/whoami", 5), "200 there\n".repeat(5));
    // And back: the joined node's pod calls the embedded node's pod.
    let here_ip = c.pod_jsonpath("here", "{.status.podIP}");
    assert_eq!(fetch(&c, "there", &format!("http://{here_ip}:8080/whoami"), 1), "200 here\n");
    // Nobody on that port there: refused by the remote node, at once.
    let t = Instant::now();
    assert_eq!(fetch(&c, "here", &format!("http://{ip}:9999/"), 1), REFUSED);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[test]
fn pod_network_xnode_deployment_spread_over_two_nodes() {
    let c = Cluster::start_with(&["--nodes", "2"]);
    let nodes = node_names(2);
    c.apply(&format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      topologySpreadConstraints:
      - {{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {{matchLabels: {{app: web}}}}}}
      containers:
      - name: web
        image: {img}
        ports: [{{name: http, containerPort: 8080}}]
        env:
        - name: POD_NAME
          valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: http}}]
"#,
        img = guest("http-client")
    ));
    c.apply(&client_pod("caller-1", &nodes[0]));
    c.apply(&client_pod("caller-2", &nodes[1]));
    let r = c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    c.wait_ready("caller-1");
    c.wait_ready("caller-2");
    let placed = c.jsonpath(&["pods", "-l", "app=web"], r#"{range .items[*]}{.metadata.name}={.spec.nodeName}{"\n"}{end}"#);
    let on: BTreeMap<&str, &str> = placed.lines().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(on.values().collect::<std::collections::BTreeSet<_>>().len(), 2, "one replica per node: {placed}");

    // From either node, the Service's requests go round robin to both replicas, one of
    // them on the other node.
    for caller in ["caller-1", "caller-2"] {
        let spread = wait_for(Duration::from_secs(20), "the Service to reach both replicas", || {
            let t = tally(&fetch(&c, caller, "http://web/whoami", 8));
            (t.len() == 2).then_some(t)
        });
        for name in on.keys() {
            assert_eq!(spread.get(&format!("200 {name}")), Some(&4), "{caller}: {spread:?}");
        }
    }
}

#[test]
fn pod_network_xnode_a_gone_node_is_refused_quickly() {
    let c = Cluster::start();
    let mut joined = NodeProcess::start(&c, "doomed");
    c.apply(&client_pod("here", &node_name()));
    c.apply(&client_pod("there", &joined.name));
    c.wait_ready("here");
    c.wait_ready("there");
    c.kubectl(&["expose", "pod", "there", "--port=80", "--target-port=http"]).ok();
    let ip = c.pod_jsonpath("there", "{.status.podIP}");
    wait_for(Duration::from_secs(10), "the Service to route to the other node", || (fetch(&c, "here", "http://there/whoami", 1) == "200 there\n").then_some(()));

    // SIGKILL: the Node, the pod and its endpoint stay listed, nothing listens any more.
    joined.kill();
    let t = Instant::now();
    assert_eq!(fetch(&c, "here", &format!("http://{ip}:8080/whoami"), 1), REFUSED);
    assert_eq!(fetch(&c, "here", "http://there/whoami", 3), REFUSED.repeat(3));
    assert!(t.elapsed() < Duration::from_secs(3), "refusals took {:?}", t.elapsed());
}
