//! Node identity, driven by the real kubectl: the nodes of `up --nodes 2` register with
//! their own client certificates (CSRs for `system:node:NAME` from the bootstrap identity,
//! auto-approved and issued), and the Node authorizer confines each credential to its own
//! pods' Secrets and its own Node, while pods, logs and the node proxy work as before.

use std::process::Command;

use serde_json::Value;

use crate::harness::{Cluster, Run, guest};
use crate::workloads::node_names;

/// A pod bound to `node` reading Secret `secret` through `how` (a volume or env).
fn pod(name: &str, node: &str, secret: &str, through_volume: bool) -> String {
    let (env, volumes) = if through_volume {
        (String::new(), format!("  volumes:\n  - name: s\n    secret: {{secretName: {secret}}}\n"))
    } else {
        (format!("    - name: SECRET\n      valueFrom: {{secretKeyRef: {{name: {secret}, key: k}}}}\n"), String::new())
    };
    let mounts = if through_volume { "    volumeMounts: [{name: s, mountPath: /s}]\n" } else { "" };
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {node}
  containers:
  - name: c
    image: {img}
    ports: [{{name: http, containerPort: 8080}}]
{mounts}    env:
    - name: POD_NAME
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
{env}{volumes}"#,
        img = guest("http-client")
    )
}

/// kubectl as the node: its certificate and key from its data dir, nothing else.
fn as_node(c: &Cluster, node: &str, args: &[&str]) -> Run {
    let pki = c.path().join(format!("data/node-{node}/pki"));
    let out = Command::new("kubectl")
        .env("KUBECONFIG", c.path().join("no-kubeconfig"))
        .env("HOME", c.path())
        .arg(format!("--server=https://{}", c.host()))
        .arg(format!("--certificate-authority={}", c.path().join("data/pki/ca.crt").display()))
        .arg(format!("--client-certificate={}", pki.join("node.crt").display()))
        .arg(format!("--client-key={}", pki.join("node.key").display()))
        .args(args)
        .output()
        .expect("run kubectl");
    Run { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&out.stdout).into_owned(), stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

#[test]
fn node_identity_confines_each_node_to_its_own_pods() {
    let c = Cluster::start_with(&["--nodes", "2"]);
    let nodes = node_names(2);
    let (n1, n2) = (&nodes[0], &nodes[1]);

    // Each node asked for its certificate with the bootstrap identity; the approver
    // approved it and the CA issued it.
    let csrs: Value = serde_json::from_str(c.kubectl(&["get", "csr", "-o", "json"]).ok()).expect("csr json");
    let node_csrs: Vec<&Value> = csrs["items"].as_array().expect("items").iter().filter(|r| r["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet").collect();
    assert_eq!(node_csrs.len(), 2, "one CSR per node: {csrs}");
    for r in &node_csrs {
        assert_eq!(r["spec"]["username"], "flotilla-admin", "requested by the bootstrap identity");
        let approved = r["status"]["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "Approved").expect("approved");
        assert_eq!(approved["reason"], "AutoApproved");
        assert!(r["status"]["certificate"].as_str().is_some_and(|s| !s.is_empty()), "issued");
    }
    let table = c.kubectl(&["get", "csr"]).ok().to_string();
    assert_eq!(table.matches("Approved,Issued").count(), 2, "{table}");
    assert!(table.contains("kubernetes.io/kube-apiserver-client-kubelet"), "{table}");
    let who = as_node(&c, n1, &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}"]);
    assert!(who.ok().starts_with(&format!("system:node:{n1} ")), "{}", who.stdout);
    assert!(who.stdout.contains("system:nodes"), "{}", who.stdout);

    // Pods read their Secrets through their node's own credential.
    c.kubectl(&["create", "secret", "generic", "mine", "--from-literal=k=one"]).ok();
    c.kubectl(&["create", "secret", "generic", "theirs", "--from-literal=k=two"]).ok();
    c.apply(&pod("here", n1, "mine", true));
    c.apply(&pod("there", n2, "theirs", false));
    c.wait_ready("here");
    c.wait_ready("there");

    // Node 1 reads the Secret its own pod uses, not the one only node 2's pod uses.
    assert!(as_node(&c, n1, &["get", "secret", "mine", "-o", "name"]).ok().contains("secret/mine"));
    let refused = as_node(&c, n1, &["get", "secret", "theirs"]);
    let e = refused.err();
    assert!(e.contains(&format!("secrets \"theirs\" is forbidden: User \"system:node:{n1}\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\"")), "{e}");
    assert!(e.contains(&format!("no relationship found between node '{n1}' and this object")), "{e}");
    assert!(as_node(&c, n2, &["get", "secret", "theirs", "-o", "name"]).ok().contains("secret/theirs"));
    assert!(as_node(&c, n1, &["get", "secrets"]).err().contains("forbidden"), "no lists of Secrets");
    assert_eq!(as_node(&c, n1, &["auth", "can-i", "get", "secret/mine"]).stdout.trim(), "yes");
    assert_eq!(as_node(&c, n1, &["auth", "can-i", "get", "secret/theirs"]).stdout.trim(), format!("no - no relationship found between node '{n1}' and this object"));

    // It writes its own Node, not another.
    as_node(&c, n1, &["label", "node", n1, "identity-test=mine"]).ok();
    let e = as_node(&c, n1, &["label", "node", n2, "identity-test=theirs"]).err().to_string();
    assert!(e.contains(&format!("nodes \"{n2}\" is forbidden: User \"system:node:{n1}\" cannot patch resource \"nodes\"")), "{e}");
    let e = as_node(&c, n1, &["annotate", "pod", "there", "x=y"]).err().to_string();
    assert!(e.contains("forbidden"), "{e}");
    as_node(&c, n1, &["annotate", "pod", "here", "x=y"]).ok();

    // What goes through the node proxy still works.
    assert_eq!(c.kubectl(&["get", "--raw", "/api/v1/namespaces/default/pods/there:8080/proxy/whoami"]).ok(), "there\n");
    c.kubectl(&["logs", "here"]).ok();
    c.kubectl(&["get", "--raw", &format!("/api/v1/nodes/{n2}/proxy/metrics")]).ok();
}
