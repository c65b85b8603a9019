//! Pod ranges per node (node IPAM) and pod IPs from them, driven by the real kubectl: each
//! Node of `flotilla up --nodes 2` (and a `flotilla node` that joins) gets its own /24 of
//! the cluster CIDR and its pods' IPs lie in it; `--cluster-cidr` moves the ranges, and a
//! pod keeps its IP across a restart; a full cluster CIDR leaves a Node without a range
//! and with a CIDRNotAvailable event until a range is freed; a podCIDR never changes.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use flotilla_api::cidr::Ipv4Cidr;

use crate::harness::{Cluster, NodeProcess, flotilla_bin, guest, node_name, wait_for};
use crate::node_pods::cells;
use crate::workloads::node_names;

/// `kubectl get nodes` as (name, spec.podCIDR, spec.podCIDRs).
fn node_ranges(c: &Cluster) -> Vec<(String, String, String)> {
    let out = c.jsonpath(&["nodes"], r#"{range .items[*]}{.metadata.name} {.spec.podCIDR} {.spec.podCIDRs}{"\n"}{end}"#);
    out.lines()
        .map(|l| {
            let mut it = l.splitn(3, ' ');
            let mut next = || it.next().unwrap_or("").to_string();
            (next(), next(), next())
        })
        .collect()
}

/// The node's podCIDR, once the control plane has set it.
fn pod_cidr_of(c: &Cluster, node: &str) -> Ipv4Cidr {
    wait_for(Duration::from_secs(10), &format!("a podCIDR on node {node}"), || {
        let r = c.kubectl(&["get", "node", node, "-o=jsonpath={.spec.podCIDR}"]);
        r.stdout.parse().ok().filter(|_| r.code == 0)
    })
}

/// A pod serving HTTP, bound to `node`.
fn pod_on(name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  containers:\n  - name: web\n    image: {img}\n    ports: [{{containerPort: 8080}}]\n",
        img = guest("hello-http")
    )
}

/// IP and NODE of the pod's `kubectl get pod -o wide` row.
fn wide_ip_and_node(c: &Cluster, pod: &str) -> (Ipv4Addr, String) {
    let out = c.kubectl(&["get", "pod", pod, "-o", "wide"]).ok().to_string();
    let mut lines = out.lines();
    let header = cells(lines.next().expect("header"));
    let row = cells(lines.next().expect("row"));
    let col = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no {name} column in {out}"));
    let ip = row[col("IP")].parse().unwrap_or_else(|_| panic!("no pod IP in {out}"));
    (ip, row[col("NODE")].clone())
}

#[test]
fn each_node_gets_its_own_range_and_pods_take_their_ips_from_it() {
    let c = Cluster::start_with(&["--nodes", "2"]);
    let default: Ipv4Cidr = "10.42.0.0/16".parse().expect("cidr");
    let names = node_names(2);
    // `up` registers its nodes one after the other, so they get the first two /24s.
    let ranges: Vec<Ipv4Cidr> = names.iter().map(|n| pod_cidr_of(&c, n)).collect();
    assert_eq!(ranges.iter().map(ToString::to_string).collect::<Vec<_>>(), ["10.42.0.0/24", "10.42.1.0/24"]);
    let listed = c.jsonpath(&["nodes"], "{.items[*].spec.podCIDR}");
    let listed: Vec<Ipv4Cidr> = listed.split_whitespace().map(|s| s.parse().expect("a CIDR")).collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_ne!(listed[0], listed[1]);
    assert!(listed.iter().all(|r| r.prefix() == 24 && default.contains(r.network())), "{listed:?}");
    for (name, one, list) in node_ranges(&c) {
        assert_eq!(list, format!(r#"["{one}"]"#), "spec.podCIDRs of {name} holds spec.podCIDR");
    }

    // A separate `flotilla node` process gets the next free range the same way.
    let joined = NodeProcess::start(&c, "joined");
    assert_eq!(pod_cidr_of(&c, "joined").to_string(), "10.42.2.0/24");

    for (i, node) in names.iter().chain([&joined.name]).enumerate() {
        let pod = format!("web-{i}");
        c.apply(&pod_on(&pod, node));
        c.wait_ready(&pod);
        let (ip, on) = wide_ip_and_node(&c, &pod);
        assert_eq!(&on, node);
        let range = pod_cidr_of(&c, node);
        assert!(range.contains(ip), "pod {pod} on {node} has {ip}, outside {range}");
        // The first pod address: the network address and .1 (the node's) are never used.
        assert_eq!(ip, range.nth(2).expect("in range"), "pod {pod}");
        assert_eq!(c.pod_jsonpath(&pod, "{.status.podIPs[0].ip}"), ip.to_string());
    }
}

#[test]
fn cluster_cidr_flag_moves_the_ranges_and_pods_keep_their_ips_across_a_restart() {
    let flags = ["--cluster-cidr", "10.99.0.0/16"];
    let c = Cluster::start_with(&flags);
    let node = node_name();
    assert_eq!(pod_cidr_of(&c, &node).to_string(), "10.99.0.0/24");
    c.apply(&pod_on("web", &node));
    c.wait_ready("web");
    assert_eq!(wide_ip_and_node(&c, "web"), (Ipv4Addr::new(10, 99, 0, 2), node.clone()));

    // SIGKILL and start again on the same data: the Node keeps its range, the pod its IP,
    // and a new pod does not get that IP.
    let c = Cluster::start_in_with(c.stop(), &flags);
    c.wait_ready("web");
    assert_eq!(pod_cidr_of(&c, &node).to_string(), "10.99.0.0/24");
    assert_eq!(wide_ip_and_node(&c, "web").0, Ipv4Addr::new(10, 99, 0, 2));
    c.apply(&pod_on("second", &node));
    c.wait_ready("second");
    assert_eq!(wide_ip_and_node(&c, "second").0, Ipv4Addr::new(10, 99, 0, 3));

    // A cluster CIDR smaller than one node range is refused before anything starts.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(flotilla_bin())
        .args(["server", "--listen", "127.0.0.1:0", "--cluster-cidr", "10.99.0.0/25", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--kubeconfig")
        .arg(dir.path().join("kubeconfig"))
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run flotilla");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("invalid --cluster-cidr 10.99.0.0/25: mask size of cluster CIDR must be less than or equal to the node CIDR mask size (24)"),
        "{stderr}"
    );
    assert!(!dir.path().join("data").exists());
}

#[test]
fn a_full_cluster_cidr_leaves_a_node_without_a_range_until_one_is_freed() {
    // Room for two nodes; the control plane alone, with Nodes created by hand.
    let c = Cluster::start_sub("server", &["--cluster-cidr", "10.99.0.0/23"], &[]);
    for n in ["n1", "n2", "n3"] {
        c.kubectl_stdin(&["create", "-f", "-"], &format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {n}}}\n")).ok();
        if n != "n3" {
            pod_cidr_of(&c, n);
        }
    }
    let events = || c.jsonpath(&["events", "-n", "default"], r#"{range .items[*]}{.involvedObject.kind}/{.involvedObject.name} {.type} {.reason}: {.message}{"\n"}{end}"#);
    wait_for(Duration::from_secs(10), "CIDRNotAvailable on n3", || {
        events().lines().any(|l| l == "Node/n3 Normal CIDRNotAvailable: Node n3 status is now: CIDRNotAvailable").then_some(())
    });
    let described = c.kubectl(&["describe", "node", "n3"]).ok().to_string();
    assert!(described.contains("CIDRNotAvailable"), "{described}");
    assert_eq!(c.jsonpath(&["node", "n3"], "{.spec.podCIDR}"), "");
    let mut held: Vec<String> = ["n1", "n2"].iter().map(|n| pod_cidr_of(&c, n).to_string()).collect();
    held.sort();
    assert_eq!(held, ["10.99.0.0/24", "10.99.1.0/24"]);

    // A set podCIDR never changes.
    let n2_range = pod_cidr_of(&c, "n2").to_string();
    let other = if n2_range == "10.99.0.0/24" { "10.99.1.0/24" } else { "10.99.0.0/24" };
    let patch = format!(r#"{{"spec": {{"podCIDR": "{other}", "podCIDRs": ["{other}"]}}}}"#);
    let r = c.kubectl(&["patch", "node", "n2", "--type=merge", "-p", &patch]);
    assert_eq!(
        r.err().trim(),
        r#"The Node "n2" is invalid: spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid"#
    );

    // Deleting n1 frees its range, and n3 gets it.
    let n1_range = pod_cidr_of(&c, "n1");
    c.kubectl(&["delete", "node", "n1"]).ok();
    assert_eq!(pod_cidr_of(&c, "n3"), n1_range);
}

/// `--node-cidr-mask-size` sizes each node's range; allocatable pods are the fewer of
/// `--max-pods` and the addresses the range holds.
#[test]
fn node_ranges_size_and_allocatable_pods_follow_the_flags() {
    let c = Cluster::start_with(&["--node-cidr-mask-size", "26"]);
    let node = node_name();
    let got = wait_for(Duration::from_secs(60), "the node's range and allocatable pods", || {
        let out = c.jsonpath(&["node", &node], "{.spec.podCIDR} {.status.allocatable.pods}");
        (out.split_whitespace().count() == 2).then_some(out)
    });
    assert_eq!(got, "10.42.0.0/26 61", "a /26 holds 61 pod addresses");
    let c = Cluster::start_with(&["--max-pods", "20"]);
    let got = wait_for(Duration::from_secs(60), "allocatable pods", || {
        let out = c.jsonpath(&["node", &node], "{.spec.podCIDR} {.status.allocatable.pods}");
        (out.split_whitespace().count() == 2).then_some(out)
    });
    assert_eq!(got, "10.42.0.0/24 20");
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = Command::new(flotilla_bin())
        .args(["server", "--listen", "127.0.0.1:0", "--node-cidr-mask-size", "12", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--kubeconfig")
        .arg(dir.path().join("kubeconfig"))
        .output()
        .expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid --node-cidr-mask-size 12: must be 16 to 30"), "{}", String::from_utf8_lossy(&bad.stderr));
}
