//! NetworkPolicy, driven by the real kubectl against `flotilla up`: http-client pods
//! (reached through pods/proxy, which NetworkPolicy never filters) call a Service.
//! Default-deny ingress blocks the calls; an allow rule by pod selector re-opens them for
//! the labelled client only, one by namespace selector for another namespace's pod.
//! Default-deny egress blocks a client (its DNS lookups still answer), an egress allow
//! rule re-opens it. A denied call is connection-refused, at once.

use std::time::{Duration, Instant};

use crate::harness::{Cluster, guest};
use crate::pod_network::{NXDOMAIN, REFUSED, fetch_in};

/// What http-client in `ns/pod` answers to `/fetch?url=URL&n=1` (through pods/proxy).
fn fetch(c: &Cluster, ns: &str, pod: &str, url: &str) -> String {
    fetch_in(c, ns, pod, url, 1)
}

/// An http-client pod `ns/name` with `labels` (flow-style YAML map body) that says its
/// name at /whoami, serving port `http` (8080).
fn client_pod(ns: &str, name: &str, labels: &str, img: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {ns}, labels: {{{labels}}}}}
spec:
  containers:
  - name: c
    image: {img}
    ports: [{{name: http, containerPort: 8080}}]
    env:
    - name: POD_NAME
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
---
"#
    )
}

/// A Service `ns/name` on port 80 to the pods labelled `app: name`, targetPort `http`.
fn service(ns: &str, name: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{port: 80, targetPort: http}}]\n---\n")
}

fn wait_ready(c: &Cluster, ns: &str, pods: &[&str]) {
    for pod in pods {
        let target = format!("pod/{pod}");
        c.kubectl(&["wait", "-n", ns, "--for=condition=Ready", &target, "--timeout=60s"]).ok();
    }
}

/// Waits until `ns/pod` fetching `url` gets `want`.
#[track_caller]
fn wait_fetch(c: &Cluster, ns: &str, pod: &str, url: &str, want: &str) {
    let start = Instant::now();
    loop {
        let last = fetch(c, ns, pod, url);
        if last == want {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for {ns}/{pod} -> {url} to give {want:?}; last {last:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn netpol_ingress_default_deny_and_allow_by_pod_and_namespace_selector() {
    let c = Cluster::start();
    let img = guest("http-client");
    c.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: guests, labels: {team: guests}}\n");
    c.apply(&format!(
        "{}{}{}{}{}",
        client_pod("shop", "web", "app: web", &img),
        service("shop", "web"),
        client_pod("shop", "caller", "role: caller", &img),
        client_pod("shop", "other", "role: other", &img),
        client_pod("guests", "visitor", "role: visitor", &img),
    ));
    wait_ready(&c, "shop", &["web", "caller", "other"]);
    wait_ready(&c, "guests", &["visitor"]);
    let url = "http://web.shop/whoami";
    for (ns, pod) in [("shop", "caller"), ("shop", "other"), ("guests", "visitor")] {
        wait_fetch(&c, ns, pod, url, "200 web\n");
    }

    // Default-deny ingress in shop: every pod there is isolated. The client pods are too,
    // yet pods/proxy through the API server still reaches them (node traffic is exempt).
    c.apply("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: default-deny, namespace: shop}\nspec:\n  podSelector: {}\n");
    assert_eq!(c.jsonpath(&["netpol", "-n", "shop", "default-deny"], "{.spec.policyTypes}"), r#"["Ingress"]"#, "policyTypes defaulted");
    wait_fetch(&c, "shop", "caller", url, REFUSED);
    let t = Instant::now();
    assert_eq!(fetch(&c, "guests", "visitor", url), REFUSED);
    assert_eq!(fetch(&c, "shop", "other", "http://web.shop.svc.cluster.local/whoami"), REFUSED);
    assert!(t.elapsed() < Duration::from_secs(5), "denials took {:?}", t.elapsed());
    let direct = c.kubectl(&["get", "--raw", "/api/v1/namespaces/shop/pods/web:8080/proxy/whoami"]).ok().to_string();
    assert_eq!(direct, "web\n", "pods/proxy is never filtered");
    // The guests namespace is not isolated: its pods reach out (to a pod there).
    assert_eq!(fetch(&c, "guests", "visitor", "http://localhost:8080/whoami"), "200 visitor\n");

    // An allow rule by pod selector, on the named port: the caller only.
    c.apply(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web-from-caller, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {role: caller}}}]\n    ports: [{port: http}]\n",
    );
    wait_fetch(&c, "shop", "caller", url, "200 web\n");
    assert_eq!(fetch(&c, "shop", "other", url), REFUSED);
    assert_eq!(fetch(&c, "guests", "visitor", url), REFUSED, "a podSelector alone means the policy's namespace");

    // By namespace selector: every pod of the guests namespace, and still the caller.
    c.apply(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web-from-guests, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {team: guests}}}]\n",
    );
    wait_fetch(&c, "guests", "visitor", url, "200 web\n");
    assert_eq!(fetch(&c, "shop", "caller", url), "200 web\n");
    assert_eq!(fetch(&c, "shop", "other", url), REFUSED);

    // Policies removed: everything is open again.
    c.kubectl(&["delete", "netpol", "-n", "shop", "--all"]).ok();
    wait_fetch(&c, "shop", "other", url, "200 web\n");
}

#[test]
fn netpol_egress_default_deny_and_allow() {
    let c = Cluster::start();
    let img = guest("http-client");
    c.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: out}\n");
    c.apply(&format!(
        "{}{}{}{}",
        client_pod("out", "server", "app: server", &img),
        service("out", "server"),
        client_pod("out", "client", "role: client", &img),
        client_pod("out", "free", "role: free", &img),
    ));
    wait_ready(&c, "out", &["server", "client", "free"]);
    wait_fetch(&c, "out", "client", "http://server/whoami", "200 server\n");

    // Default-deny egress for the client: its calls are refused at once, while cluster DNS
    // still answers (an unknown name is NXDOMAIN, not refused) and other pods go on.
    c.apply(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: client-egress, namespace: out}\nspec:\n  podSelector: {matchLabels: {role: client}}\n  policyTypes: [Egress]\n",
    );
    wait_fetch(&c, "out", "client", "http://server/whoami", REFUSED);
    let t = Instant::now();
    let ip = c.kubectl(&["get", "pod", "-n", "out", "server", "-o=jsonpath={.status.podIP}"]).ok().to_string();
    assert_eq!(fetch(&c, "out", "client", &format!("http://{ip}:8080/whoami")), REFUSED);
    assert_eq!(fetch(&c, "out", "client", "http://nosuch/"), NXDOMAIN, "DNS lookups are not subject to egress policy");
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    assert_eq!(fetch(&c, "out", "client", "http://localhost:8080/whoami"), "200 client\n", "a pod reaches itself");
    assert_eq!(fetch(&c, "out", "free", "http://server/whoami"), "200 server\n");

    // An egress allow rule to the server pods on their container port (the Service's
    // targetPort: policy sees the destination after Service resolution).
    c.apply(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: client-to-server, namespace: out}\nspec:\n  podSelector: {matchLabels: {role: client}}\n  egress:\n  - to: [{podSelector: {matchLabels: {app: server}}}]\n    ports: [{port: 8080}]\n",
    );
    assert_eq!(c.jsonpath(&["netpol", "-n", "out", "client-to-server"], "{.spec.policyTypes}"), r#"["Ingress","Egress"]"#, "policyTypes defaulted");
    wait_fetch(&c, "out", "client", "http://server/whoami", "200 server\n");
    let free_ip = c.kubectl(&["get", "pod", "-n", "out", "free", "-o=jsonpath={.status.podIP}"]).ok().to_string();
    assert_eq!(fetch(&c, "out", "client", &format!("http://{free_ip}:8080/whoami")), REFUSED, "only the server pods are allowed");
}
