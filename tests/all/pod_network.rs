//! The pod network, driven by the real kubectl against `flotilla up`: guests
//! (http-client) make outgoing wasi:http requests, reached through pods/proxy. A pod's
//! front container calls its sidecar on localhost; a 3-replica Deployment behind a
//! ClusterIP Service is called by short and full DNS name and by ClusterIP, with the
//! requests spread over the replicas and none to a pod that is not Ready; a selector-less
//! Service with hand-written Endpoints; a StatefulSet's pods by their stable names and its
//! headless Service; ExternalName; a Service with no ready endpoint is refused at once, an
//! unknown name is a DNS error and external egress is denied; a pod on another embedded
//! node is reached by IP and Service through the data plane (more in pod_network_xnode.rs).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::harness::{Cluster, guest, wait_for};

/// `s` percent-encoded for a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// What http-client in `pod` (port 8080) answers to `/fetch?url=URL&n=N`: one line per
/// fetch, `STATUS BODY` or `error CODE`.
pub(crate) fn fetch(c: &Cluster, pod: &str, url: &str, n: u32) -> String {
    fetch_in(c, "default", pod, url, n)
}

/// [`fetch`] from a pod of namespace `ns`.
pub(crate) fn fetch_in(c: &Cluster, ns: &str, pod: &str, url: &str, n: u32) -> String {
    let path = format!("/api/v1/namespaces/{ns}/pods/{pod}:8080/proxy/fetch?url={}&n={n}", encode(url));
    c.kubectl(&["get", "--raw", &path]).ok().to_string()
}

/// How many times each line occurs.
pub(crate) fn tally(out: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in out.lines() {
        *m.entry(l.to_string()).or_insert(0) += 1;
    }
    m
}

/// `yaml` with every line indented by `by`.
fn indent(yaml: &str, by: &str) -> String {
    yaml.lines().map(|l| format!("{by}{l}\n")).collect()
}

pub(crate) const REFUSED: &str = "error ErrorCode::ConnectionRefused\n";
pub(crate) const NXDOMAIN: &str = "error ErrorCode::DnsError(DnsErrorPayload { rcode: Some(\"NXDOMAIN\"), info-code: None })\n";

/// An http-client container named `name` that says its pod's name at /whoami: a YAML
/// list item for a pod spec's `containers:` at two spaces.
fn client_container(name: &str, img: &str) -> String {
    format!(
        r#"  - name: {name}
    image: {img}
    ports: [{{name: http, containerPort: 8080}}]
    env:
    - name: POD_NAME
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
"#
    )
}

#[test]
fn pod_network_localhost_sidecar_and_failures() {
    let c = Cluster::start();
    let (client, hello) = (guest("http-client"), guest("hello-http"));
    c.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: duo}}\nspec:\n  containers:\n{}  - name: side\n    image: {hello}\n    ports: [{{containerPort: 9090}}]\n",
        client_container("front", &client)
    ));
    c.wait_ready("duo");

    // The front container calls its sidecar in-process, by localhost and by the pod's IP.
    assert_eq!(fetch(&c, "duo", "http://localhost:9090/", 1), "200 Hello from Flotilla\n");
    assert_eq!(fetch(&c, "duo", "http://127.0.0.1:9090/env", 1), "200 \n", "the sidecar's env is its own (none)");
    let ip = c.pod_jsonpath("duo", "{.status.podIP}");
    assert_eq!(fetch(&c, "duo", &format!("http://{ip}:9090/"), 1), "200 Hello from Flotilla\n");
    assert_eq!(fetch(&c, "duo", "http://localhost:8080/whoami", 1), "200 duo\n");

    // Failures come back as a network's errors, at once.
    c.kubectl(&["create", "service", "clusterip", "nobody", "--tcp=80:8080"]).ok();
    let t = Instant::now();
    assert_eq!(fetch(&c, "duo", "http://localhost:9999/", 1), REFUSED, "a localhost port nobody serves");
    assert_eq!(fetch(&c, "duo", &format!("http://{ip}:9999/"), 1), REFUSED, "a pod port nobody serves");
    assert_eq!(fetch(&c, "duo", "http://nosuch/", 1), NXDOMAIN);
    assert_eq!(fetch(&c, "duo", "http://nosuch.default.svc.cluster.local/", 1), NXDOMAIN);
    assert_eq!(fetch(&c, "duo", "http://example.com/", 1), "error ErrorCode::HttpRequestDenied\n", "external egress is off");
    assert!(t.elapsed() < Duration::from_secs(10), "five kubectl round trips took {:?}", t.elapsed());
    // A Service without ready endpoints: refused once the node knows the Service (its
    // name is NXDOMAIN until then).
    wait_for(Duration::from_secs(10), "the node to learn Service nobody", || (fetch(&c, "duo", "http://nobody/", 1) == REFUSED).then_some(()));
    let t = Instant::now();
    let out = fetch(&c, "duo", "http://nobody.default.svc.cluster.local/", 20);
    assert_eq!(out, REFUSED.repeat(20));
    let ip_out = fetch(&c, "duo", &format!("http://{}/", c.jsonpath(&["svc", "nobody"], "{.spec.clusterIP}")), 1);
    assert_eq!(ip_out, REFUSED);
    assert!(t.elapsed() < Duration::from_secs(3), "refusals took {:?}", t.elapsed());
}

#[test]
fn pod_network_services_spread_and_names() {
    let c = Cluster::start();
    let img = guest("http-client");
    c.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: caller, labels: {{app: caller}}}}\nspec:\n  containers:\n{}",
        client_container("client", &img)
    ));
    c.apply(&format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: web, tier: deploy}}}}
  template:
    metadata: {{labels: {{app: web, tier: deploy}}}}
    spec:
      containers:
{}---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{name: web, port: 80, targetPort: http}}]
---
apiVersion: v1
kind: Service
metadata: {{name: db}}
spec:
  clusterIP: None
  selector: {{app: db}}
  ports: [{{port: 8080}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db}}
spec:
  serviceName: db
  replicas: 2
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec:
      containers:
{}---
apiVersion: v1
kind: Service
metadata: {{name: alias}}
spec: {{type: ExternalName, externalName: web.default.svc.cluster.local}}
---
apiVersion: v1
kind: Service
metadata: {{name: outside}}
spec: {{type: ExternalName, externalName: example.com}}
"#,
        indent(&client_container("web", &img), "    "),
        indent(&client_container("db", &img), "    "),
    ));
    c.wait_ready("caller");
    let r = c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = c.kubectl(&["rollout", "status", "statefulset/db", "--timeout=60s"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let replicas: Vec<String> = c.jsonpath(&["pods", "-l", "app=web"], "{.items[*].metadata.name}").split_whitespace().map(str::to_string).collect();
    assert_eq!(replicas.len(), 3, "{replicas:?}");

    // Once the three endpoints are ready and the node knows them, requests go round robin.
    let spread = wait_for(Duration::from_secs(20), "the Service to reach all three replicas", || {
        let t = tally(&fetch(&c, "caller", "http://web/whoami", 12));
        (t.len() == 3).then_some(t)
    });
    for r in &replicas {
        assert_eq!(spread.get(&format!("200 {r}")), Some(&4), "{spread:?}");
    }
    let cluster_ip = c.jsonpath(&["svc", "web"], "{.spec.clusterIP}");
    for url in ["http://web.default/whoami", "http://web.default.svc/whoami", "http://web.default.svc.cluster.local/whoami", &format!("http://{cluster_ip}/whoami"), "http://alias/whoami"] {
        let t = tally(&fetch(&c, "caller", url, 6));
        assert_eq!(t.values().collect::<Vec<_>>(), [&2, &2, &2], "{url}: {t:?}");
        assert!(t.keys().all(|l| replicas.iter().any(|r| *l == format!("200 {r}"))), "{url}: {t:?}");
    }
    assert_eq!(fetch(&c, "caller", "http://web:8080/whoami", 1), REFUSED, "the Service has no port 8080");

    // A pod the Service selects that serves but is not Ready (a container failed) gets
    // none of the Service's traffic, though its own address answers.
    c.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: web-sick, labels: {{app: web}}}}\nspec:\n  restartPolicy: Never\n  containers:\n{}  - name: crash\n    image: {}\n    args: [--exit, \"1\"]\n",
        client_container("web", &img),
        guest("hello-cmd")
    ));
    wait_for(Duration::from_secs(30), "web-sick to serve and be listed not ready", || {
        let ip = c.pod_jsonpath("web-sick", "{.status.podIP}");
        let listed = c.jsonpath(&["endpointslices", "-l", "kubernetes.io/service-name=web"], "{range .items[*].endpoints[*]}{.addresses[0]}={.conditions.ready} {end}");
        let not_ready = !ip.is_empty() && listed.split_whitespace().any(|e| e == format!("{ip}=false"));
        (not_ready && fetch(&c, "caller", &format!("http://{ip}:8080/whoami"), 1) == "200 web-sick\n").then_some(())
    });
    assert_eq!(c.pod_jsonpath("web-sick", "{.status.phase} {.status.conditions[?(@.type==\"Ready\")].status}"), "Running False");
    // The caller's node learns web-sick's readiness through its own watch, a moment after
    // the API shows it (it was briefly Ready while both containers ran): once it has, the
    // three ready replicas share the requests and web-sick gets none.
    let mut last = BTreeMap::new();
    let settled = wait_for(Duration::from_secs(10), "requests spread over the 3 ready replicas only", || {
        last = tally(&fetch(&c, "caller", "http://web/whoami", 12));
        (last.values().collect::<Vec<_>>() == [&4, &4, &4]).then(|| last.clone())
    });
    assert!(!settled.contains_key("200 web-sick"), "{settled:?} (last seen {last:?})");
    assert_eq!(fetch(&c, "caller", "http://outside/", 1), "error ErrorCode::HttpRequestDenied\n", "ExternalName to the outside: egress is off");

    // StatefulSet pods by their stable names; the headless name reaches both.
    wait_for(Duration::from_secs(20), "the stable names of db-0 and db-1", || {
        let a = fetch(&c, "caller", "http://db-0.db:8080/whoami", 1);
        let b = fetch(&c, "caller", "http://db-1.db.default.svc.cluster.local:8080/whoami", 1);
        (a == "200 db-0\n" && b == "200 db-1\n").then_some(())
    });
    let t = tally(&fetch(&c, "caller", "http://db:8080/whoami", 4));
    assert_eq!(t, BTreeMap::from([("200 db-0".to_string(), 2), ("200 db-1".to_string(), 2)]));

    // A selector-less Service with hand-written Endpoints (port 80 → 8080 of db-1).
    let db1 = c.pod_jsonpath("db-1", "{.status.podIP}");
    c.apply(&format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: manual}}
spec:
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Endpoints
metadata: {{name: manual}}
subsets:
- addresses: [{{ip: "{db1}"}}]
  ports: [{{port: 8080}}]
"#
    ));
    wait_for(Duration::from_secs(10), "the selector-less Service to route", || (fetch(&c, "caller", "http://manual/whoami", 1) == "200 db-1\n").then_some(()));

    // Scaled to one replica: the others get no more traffic.
    c.kubectl(&["scale", "deployment/web", "--replicas=1"]).ok();
    let left = wait_for(Duration::from_secs(30), "one replica to answer alone", || {
        let t = tally(&fetch(&c, "caller", "http://web/whoami", 6));
        (t.len() == 1 && t.values().all(|&n| n == 6)).then_some(t)
    });
    assert!(left.keys().all(|l| l.starts_with("200 web-")), "{left:?}");
}

#[test]
fn pod_network_cross_node_reaches_the_other_embedded_node() {
    let c = Cluster::start_with(&["--nodes", "2"]);
    let nodes = crate::workloads::node_names(2);
    let img = guest("http-client");
    for (pod, node) in [("here", &nodes[0]), ("there", &nodes[1])] {
        c.apply(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, labels: {{app: {pod}}}}}\nspec:\n  nodeName: {node}\n  containers:\n{}",
            client_container("client", &img)
        ));
    }
    c.wait_ready("here");
    c.wait_ready("there");
    c.kubectl(&["expose", "pod", "there", "--port=80", "--target-port=8080"]).ok();
    // A pod or endpoint on the other node is reached through that node's data plane
    // (this test once guarded the refusal from before cross-node routing was built).
    let ip = c.pod_jsonpath("there", "{.status.podIP}");
    assert_eq!(fetch(&c, "here", &format!("http://{ip}:8080/whoami"), 1), "200 there\n");
    wait_for(Duration::from_secs(10), "the Service to route to the other node", || (fetch(&c, "here", "http://there/whoami", 1) == "200 there\n").then_some(()));
    // A port nobody serves there is refused by that node, at once.
    let t = Instant::now();
    assert_eq!(fetch(&c, "here", &format!("http://{ip}:9999/"), 1), REFUSED);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // The same request made on the target's node is served the same.
    assert_eq!(fetch(&c, "there", "http://there/whoami", 1), "200 there\n");
}

/// `--allow-pod-egress` lets pods out of the cluster where NetworkPolicy allows: a name
/// outside the cluster is then looked up on the host (this machine resolves no such name:
/// a DNS error, not HTTP-request-denied), and a default-deny egress policy refuses it.
#[test]
fn pod_network_egress_flag_lets_pods_out_where_policy_allows() {
    let c = Cluster::start_with(&["--allow-pod-egress"]);
    c.apply(&format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: out}}\nspec:\n  containers:\n{}", client_container("c", &guest("http-client"))));
    c.wait_ready("out");
    let url = "http://flotilla-egress-test.invalid/";
    let got = fetch(&c, "out", url, 1);
    assert!(got.starts_with("error ErrorCode::DnsError"), "egress allowed: the host's resolver answers: {got}");
    c.apply("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: no-egress}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n");
    wait_for(Duration::from_secs(10), "the default-deny egress policy to apply", || (fetch(&c, "out", url, 1) == REFUSED).then_some(()));
    assert_eq!(fetch(&c, "out", "http://localhost:8080/whoami", 1), "200 out\n", "a pod reaching itself is never filtered");
}
