//! Endpoints and EndpointSlices kept from a Service's selector, driven by the real kubectl:
//! a 3-replica Deployment of the HTTP guest behind a Service with a named targetPort, the
//! `get endpoints` / `get endpointslices` tables and `describe svc`, scaling to one, a
//! Running pod that is not Ready (one of its two containers exited under restartPolicy
//! Never) in notReadyAddresses and ready=false, the Service's deletion taking both away, and
//! a selector-less Service's hand-written Endpoints left as they were and mirrored into a
//! slice.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Cluster, guest, wait_for};
use crate::node_pods::cells;
use crate::workloads::{pods, ready};

const TIMEOUT: Duration = Duration::from_secs(60);

fn manifests(http: &str, replicas: u32) -> String {
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
        image: {http}
        ports: [{{name: http, containerPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web, labels: {{tier: front}}}}
spec:
  selector: {{app: web}}
  ports: [{{name: web, port: 80, targetPort: http}}]
"#
    )
}

/// A pod the Service selects whose second container exits at once: with restartPolicy
/// Never it stays Running, and not Ready.
fn half_ready_pod(http: &str, cmd: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: half, labels: {{app: web}}}}
spec:
  restartPolicy: Never
  containers:
  - name: web
    image: {http}
    ports: [{{name: http, containerPort: 8080}}]
  - name: quit
    image: {cmd}
"#
    )
}

/// A Service without a selector and the Endpoints its user keeps for it.
const MANUAL: &str = r#"apiVersion: v1
kind: Service
metadata: {name: manual}
spec:
  ports: [{port: 80}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: manual}
subsets:
- addresses: [{ip: 192.0.2.10}]
  ports: [{port: 80}]
"#;

/// The IPs of the Ready pods labelled app=web (terminating ones excluded).
fn ready_ips(c: &Cluster) -> BTreeSet<String> {
    pods(c, "app=web").iter().filter(|p| ready(p)).filter_map(|p| p["status"]["podIP"].as_str().map(str::to_string)).collect()
}

/// `kubectl get endpoints web`: (ready IPs, not-ready IPs, ports), None if it is missing.
fn endpoints(c: &Cluster) -> Option<(BTreeSet<String>, BTreeSet<String>, String)> {
    let r = c.kubectl(&["get", "endpoints", "web", "-o", "json"]);
    if r.code != 0 {
        return None;
    }
    let ep: Value = serde_json::from_str(&r.stdout).expect("endpoints json");
    let subsets = ep["subsets"].as_array().cloned().unwrap_or_default();
    let ips = |field: &str| -> BTreeSet<String> {
        subsets.iter().flat_map(|s| s[field].as_array().cloned().unwrap_or_default()).filter_map(|a| a["ip"].as_str().map(str::to_string)).collect()
    };
    let ports: Vec<String> = subsets.iter().flat_map(|s| s["ports"].as_array().cloned().unwrap_or_default()).map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or(""))).collect();
    Some((ips("addresses"), ips("notReadyAddresses"), ports.join(",")))
}

/// Waits until the Endpoints list exactly `ready` and `not_ready` on port 8080/TCP.
#[track_caller]
fn wait_endpoints(c: &Cluster, ready: &BTreeSet<String>, not_ready: &BTreeSet<String>) {
    let want = (ready.clone(), not_ready.clone(), "8080/TCP".to_string());
    let mut last = None;
    let what = format!("Endpoints web to be {want:?}");
    wait_for(TIMEOUT, &what, || {
        last = endpoints(c);
        (last.as_ref() == Some(&want)).then_some(())
    });
}

/// The Service's IPv4 slices, from `kubectl get endpointslices -l ... -o json`.
fn ipv4_slices(c: &Cluster) -> Vec<Value> {
    let r = c.kubectl(&["get", "endpointslices", "-l", "kubernetes.io/service-name=web", "-o", "json"]);
    let list: Value = serde_json::from_str(r.ok()).expect("slice list json");
    list["items"].as_array().cloned().unwrap_or_default().into_iter().filter(|s| s["addressType"] == "IPv4").collect()
}

/// (address, ready, serving, terminating) of every endpoint in the Service's IPv4 slices.
fn slice_endpoints(c: &Cluster) -> BTreeSet<(String, bool, bool, bool)> {
    ipv4_slices(c)
        .iter()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            let cond = |k: &str| e["conditions"][k].as_bool().unwrap_or(false);
            (e["addresses"][0].as_str().unwrap_or("").to_string(), cond("ready"), cond("serving"), cond("terminating"))
        })
        .collect()
}

/// The value of the `Endpoints:` line of `kubectl describe svc web`.
fn described_endpoints(c: &Cluster) -> String {
    let out = c.kubectl(&["describe", "svc", "web"]).ok().to_string();
    let line = out.lines().find(|l| l.starts_with("Endpoints:")).unwrap_or_else(|| panic!("no Endpoints line in\n{out}"));
    line.trim_start_matches("Endpoints:").trim().to_string()
}

fn with_port(ips: &BTreeSet<String>) -> String {
    ips.iter().map(|ip| format!("{ip}:8080")).collect::<Vec<_>>().join(",")
}

#[test]
fn endpoints_follow_pods_behind_a_service() {
    let c = Cluster::start();
    let http = guest("hello-http");
    c.apply(MANUAL);
    let manual_rv = c.jsonpath(&["endpoints", "manual"], "{.metadata.resourceVersion}");
    c.apply(&manifests(&http, 3));

    // Three Ready replicas: three addresses on the container port the name resolves to.
    let three = wait_for(TIMEOUT, "3 Ready web pods", || Some(ready_ips(&c)).filter(|ips| ips.len() == 3));
    wait_endpoints(&c, &three, &BTreeSet::new());
    let ep = c.kubectl(&["get", "endpoints", "web", "-o", "json"]).ok().to_string();
    let ep: Value = serde_json::from_str(&ep).expect("endpoints json");
    assert_eq!(ep["metadata"]["labels"]["tier"], "front", "{ep}");
    assert_eq!(ep["subsets"][0]["ports"], serde_json::json!([{"name": "web", "port": 8080, "protocol": "TCP"}]));
    let node = c.jsonpath(&["pods", "-l", "app=web"], "{.items[0].spec.nodeName}");
    for a in ep["subsets"][0]["addresses"].as_array().expect("addresses") {
        assert_eq!((a["nodeName"].as_str(), a["targetRef"]["kind"].as_str()), (Some(node.as_str()), Some("Pod")), "{a}");
        assert!(a["targetRef"]["name"].as_str().is_some_and(|n| n.starts_with("web-")), "{a}");
    }
    if !ep["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"].is_string() {
        let managed = c.kubectl(&["get", "endpoints", "web", "-o", "json", "--show-managed-fields"]).stdout;
        let conditions = c.jsonpath(&["pods"], r#"{range .items[*]}{.metadata.name} {.metadata.uid} {.status.podIP} {.status.conditions}{"\n"}{end}"#);
        panic!("no last-change-trigger-time: {managed}\npods:\n{conditions}");
    }

    // `kubectl get endpoints`: NAME ENDPOINTS AGE, addresses sorted, every one listed.
    let out = c.kubectl(&["get", "endpoints", "web"]).ok().to_string();
    let lines: Vec<Vec<String>> = out.lines().map(cells).collect();
    assert_eq!(lines[0], ["NAME", "ENDPOINTS", "AGE"], "{out}");
    assert_eq!(lines[1][..2], ["web".to_string(), with_port(&three)], "{out}");

    // `kubectl get endpointslices -l kubernetes.io/service-name=web`: one IPv4 slice.
    let out = c.kubectl(&["get", "endpointslices", "-l", "kubernetes.io/service-name=web"]).ok().to_string();
    let lines: Vec<Vec<String>> = out.lines().map(cells).collect();
    assert_eq!(lines[0], ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], "{out}");
    let v4: Vec<&Vec<String>> = lines[1..].iter().filter(|r| r[1] == "IPv4").collect();
    assert_eq!(v4.len(), 1, "{out}");
    assert!(v4[0][0].starts_with("web-"), "{out}");
    assert_eq!(v4[0][2], "8080", "{out}");
    assert_eq!(v4[0][3].split(',').map(str::to_string).collect::<BTreeSet<_>>(), three, "{out}");
    // A Service without IP families also gets an (empty) IPv6 slice, as in Kubernetes.
    assert!(lines[1..].iter().all(|r| r[1] == "IPv4" || r[2..4] == ["<unset>", "<unset>"]), "{out}");
    let slice = &ipv4_slices(&c)[0];
    assert_eq!(slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"], "endpointslice-controller.k8s.io");
    assert_eq!(slice["metadata"]["labels"]["tier"], "front");
    assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");
    assert_eq!(slice["ports"], serde_json::json!([{"name": "web", "port": 8080, "protocol": "TCP"}]));
    assert_eq!(slice_endpoints(&c), three.iter().map(|ip| (ip.clone(), true, true, false)).collect());

    // `kubectl describe svc` (kubectl 1.32 reads the slices): the ready endpoints.
    assert_eq!(described_endpoints(&c).split(',').map(str::to_string).collect::<BTreeSet<_>>(), three.iter().map(|ip| format!("{ip}:8080")).collect());

    // Scale to one: the terminating pods leave the Endpoints at once.
    c.kubectl(&["scale", "deployment", "web", "--replicas=1"]).ok();
    let one = wait_for(TIMEOUT, "1 Ready web pod", || Some(ready_ips(&c)).filter(|ips| ips.len() == 1));
    wait_endpoints(&c, &one, &BTreeSet::new());

    // A Running pod that is not Ready: in notReadyAddresses and ready=false in the slice.
    c.apply(&half_ready_pod(&http, &guest("hello-cmd")));
    let status = r#"{.status.phase} {.status.containerStatuses[?(@.name=="quit")].state.terminated.reason} {.status.conditions[?(@.type=="Ready")].status}"#;
    c.wait_pod("half", status, "Running Completed False", TIMEOUT);
    let half_ip = c.pod_jsonpath("half", "{.status.podIP}");
    let half = BTreeSet::from([half_ip.clone()]);
    wait_endpoints(&c, &one, &half);
    wait_for(TIMEOUT, "the slice to list half as not ready", || {
        let eps = slice_endpoints(&c);
        (eps.contains(&(half_ip.clone(), false, false, false)) && eps.iter().filter(|e| e.1).count() == 1).then_some(())
    });
    let out = c.kubectl(&["get", "endpoints", "web"]).ok().to_string();
    assert_eq!(out.lines().nth(1).map(cells).map(|r| r[1].clone()), Some(with_port(&one)), "{out}");
    assert_eq!(described_endpoints(&c), with_port(&one));

    // Deleting the Service takes its Endpoints and slices with it.
    c.kubectl(&["delete", "svc", "web"]).ok();
    wait_for(TIMEOUT, "Endpoints web to go", || endpoints(&c).is_none().then_some(()));
    wait_for(TIMEOUT, "the slices of web to go", || {
        let r = c.kubectl(&["get", "endpointslices", "-l", "kubernetes.io/service-name=web"]);
        (r.code == 0 && r.stdout.is_empty() && r.stderr == "No resources found in default namespace.\n").then_some(())
    });

    // All along, the selector-less Service's Endpoints were left as their user wrote them,
    // and mirrored into a slice.
    assert_eq!(c.jsonpath(&["endpoints", "manual"], "{.metadata.resourceVersion} {.subsets[0].addresses[0].ip}"), format!("{manual_rv} 192.0.2.10"));
    let mirrored = "kubernetes.io/service-name=manual,endpointslice.kubernetes.io/managed-by=endpointslicemirroring-controller.k8s.io";
    let rows = wait_for(TIMEOUT, "the mirrored slice of manual", || {
        let out = c.kubectl(&["get", "endpointslices", "-l", mirrored]).ok().to_string();
        Some(out.lines().skip(1).map(cells).collect::<Vec<_>>()).filter(|rows| !rows.is_empty())
    });
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][1..4], ["IPv4", "80", "192.0.2.10"], "{rows:?}");
}
