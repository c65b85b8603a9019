//! Priority, preemption and PodDisruptionBudgets with real kubectl: priority classes
//! admitted onto pods, a high-priority pod preempting a low-priority one on a full node,
//! and `kubectl drain` held by a budget until a replacement is Ready.

use std::process::Stdio;
use std::time::Duration;

use crate::harness::{Cluster, guest, node_name, wait_for};

fn pod(name: &str, class: &str, cpu: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  priorityClassName: {class}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: \"{}\"\n    resources: {{requests: {{cpu: {cpu}}}}}\n",
        guest("hello-http")
    )
}

#[test]
fn priority_classes_and_preemption_on_a_full_node() {
    let c = Cluster::start_with(&["--allocatable-cpu", "1"]);
    // The built-in classes are served.
    let classes = c.kubectl(&["get", "priorityclasses", "-o", "name"]);
    assert!(classes.ok().contains("priorityclass.scheduling.k8s.io/system-cluster-critical"), "{}", classes.stdout);
    c.apply("apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: low}\nvalue: 10\n---\napiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: high}\nvalue: 1000\n");
    let r = c.kubectl_stdin(&["apply", "-f", "-"], &pod("nope", "missing", "100m"));
    assert!(r.err().contains("pods \"nope\" is forbidden: no PriorityClass with name missing was found"), "{}", r.stderr);

    c.apply(&pod("low", "low", "800m"));
    c.wait_ready("low");
    assert_eq!(c.pod_jsonpath("low", "{.spec.priority} {.spec.preemptionPolicy}"), "10 PreemptLowerPriority");
    // No room for it: the scheduler evicts the low-priority pod and binds this one.
    c.apply(&pod("high", "high", "500m"));
    wait_for(Duration::from_secs(60), "the high-priority pod to run", || {
        (c.pod_jsonpath("high", "{.status.phase}") == "Running").then_some(())
    });
    let low = c.kubectl(&["get", "pod", "low"]);
    assert!(low.code != 0 || low.stdout.contains("Terminating"), "the low-priority pod was not preempted: {low:?}");
    let events = c.kubectl(&["get", "events", "--field-selector", "reason=Preempted", "-o", "jsonpath={.items[*].message}"]);
    assert!(events.ok().contains(&format!("on node {}", node_name())), "{}", events.stdout);
}

#[test]
fn drain_waits_for_a_disruption_budget() {
    let c = Cluster::start_with(&["--nodes", "2"]);
    let (a, b) = (format!("{}-1", node_name()), format!("{}-2", node_name()));
    wait_for(Duration::from_secs(30), "both nodes", || (c.kubectl(&["get", "nodes", "-o", "name"]).stdout.lines().count() == 2).then_some(()));
    c.kubectl(&["cordon", &b]).ok();
    let deploy = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: main\n        image: \"{}\"\n        ports: [{{containerPort: 8080}}]\n        readinessProbe: {{httpGet: {{path: /, port: 8080}}, periodSeconds: 1}}\n",
        guest("hello-http")
    );
    c.apply(&deploy);
    c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]).ok();
    c.apply("apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: web}\nspec:\n  minAvailable: 1\n  selector: {matchLabels: {app: web}}\n");
    wait_for(Duration::from_secs(20), "the budget's status", || {
        (c.jsonpath(&["pdb", "web"], "{.status.currentHealthy} {.status.disruptionsAllowed}") == "2 1").then_some(())
    });
    let table = c.kubectl(&["get", "pdb", "web"]);
    assert!(table.ok().contains("MIN AVAILABLE") && table.stdout.contains("ALLOWED DISRUPTIONS"), "{}", table.stdout);
    c.kubectl(&["uncordon", &b]).ok();

    // Drain node a: the first pod goes, the second waits (429, retried every 5 s) until
    // its replacement on node b is Ready.
    let out = c.kubectl_cmd()
        .args(["drain", &a, "--ignore-daemonsets", "--timeout=120s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("kubectl drain");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "drain failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("node/{a} drained")), "{stdout}");
    assert!(stderr.contains("Cannot evict pod as it would violate the pod's disruption budget."), "the budget never held the drain:\n{stderr}");
    let nodes = c.jsonpath(&["pods", "-l", "app=web"], "{.items[*].spec.nodeName}");
    assert!(nodes.split_whitespace().all(|n| n == b), "{nodes}");
    wait_for(Duration::from_secs(30), "both replacements Ready", || {
        (c.jsonpath(&["pdb", "web"], "{.status.currentHealthy}") == "2").then_some(())
    });
}
