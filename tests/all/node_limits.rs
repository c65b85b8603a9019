//! Containment and resource limits on the embedded node: misbehaving guests (trap, panic,
//! stack overflow, memory hog, infinite loop, bad HTTP requests) end with the right
//! reason and exit code while an HTTP pod keeps answering and the node stays Ready; CPU
//! and memory limits measured to hold.

use std::time::Duration;

use crate::harness::{Cluster, guest, node_name, wait_for};
use crate::node_pods::ready_status_restarts;

/// A restartPolicy Never pod running `image` with the given limits.
fn limited_pod(name: &str, image: &str, memory: &str, cpu: &str) -> String {
    let node = node_name();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 2\n  containers:\n  - name: main\n    image: {image}\n    resources: {{limits: {{memory: {memory}, cpu: {cpu}}}}}\n"
    )
}

fn http_pod(name: &str, image: &str, memory: &str) -> String {
    let node = node_name();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  containers:\n  - name: main\n    image: {image}\n    ports: [{{containerPort: 8080}}]\n    resources: {{limits: {{memory: {memory}, cpu: 500m}}}}\n"
    )
}

#[track_caller]
fn assert_serving(c: &Cluster) {
    let r = c.kubectl(&["get", "--raw", "/api/v1/namespaces/default/pods/web:8080/proxy/"]);
    assert_eq!(r.ok(), "Hello from Flotilla\n");
}

#[track_caller]
fn assert_node_ready(c: &Cluster) {
    let node = node_name();
    let out = c.kubectl(&["get", "node", &node, "-o=jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]).ok().to_string();
    assert_eq!(out, "True");
    let out = c.kubectl(&["get", "nodes", "--no-headers"]).ok().to_string();
    assert!(out.starts_with(&format!("{node} ")) && out.contains(" Ready "), "{out}");
}

/// Highest N in `allocated N MiB` lines of a memory-hog log.
fn max_allocated(log: &str) -> u32 {
    log.lines().filter_map(|l| l.strip_prefix("allocated ")?.strip_suffix(" MiB")?.parse().ok()).max().unwrap_or(0)
}

#[test]
fn node_misbehaving_guests_are_contained() {
    let c = Cluster::start();
    c.apply(&http_pod("web", &guest("hello-http"), "64Mi"));
    c.wait_ready("web");
    assert_serving(&c);

    let mut yaml = String::new();
    for (name, memory, cpu) in [("trap", "64Mi", "1"), ("panic", "64Mi", "1"), ("stack-overflow", "64Mi", "1"), ("memory-hog", "32Mi", "1"), ("infinite-loop", "64Mi", "100m")] {
        yaml.push_str(&limited_pod(name, &guest(name), memory, cpu));
        yaml.push_str("---\n");
    }
    yaml.push_str(&http_pod("misbehave", &guest("http-misbehave"), "32Mi"));
    c.apply(&yaml);

    let terminated = "{.status.phase} {.status.containerStatuses[0].state.terminated.reason} {.status.containerStatuses[0].state.terminated.exitCode}";
    for (pod, want, message) in [
        ("trap", "Failed Error 134", "unreachable"),
        ("panic", "Failed Error 134", "unreachable"),
        ("stack-overflow", "Failed Error 134", "call stack exhausted"),
        ("memory-hog", "Failed OOMKilled 137", "memory"),
    ] {
        c.wait_pod(pod, terminated, want, Duration::from_secs(60));
        let msg = c.pod_jsonpath(pod, "{.status.containerStatuses[0].state.terminated.message}");
        assert!(msg.contains(message), "{pod}: termination message {msg:?} lacks {message:?}");
        assert_serving(&c);
    }
    // Output up to the failure is kept.
    assert_eq!(c.kubectl(&["logs", "trap"]).ok(), "trap: about to execute unreachable\n");
    let log = c.kubectl(&["logs", "panic"]).ok().to_string();
    assert!(log.starts_with("panic: about to panic\n") && log.contains("flotilla test guest panicked on purpose"), "{log}");
    assert!(c.kubectl(&["logs", "stack-overflow"]).ok().starts_with("stack-overflow: recursing\n"));
    assert_eq!(ready_status_restarts(&c, "memory-hog"), Some(("0/1".into(), "OOMKilled".into(), "0".into())));
    assert_eq!(ready_status_restarts(&c, "trap"), Some(("0/1".into(), "Error".into(), "0".into())));

    // The infinite loop keeps running (throttled), and the rest keeps serving.
    c.wait_pod("infinite-loop", "{.status.phase}", "Running", Duration::from_secs(30));
    assert_serving(&c);

    // Bad requests to an HTTP guest become 500s; the pod keeps serving.
    c.wait_ready("misbehave");
    let base = "/api/v1/namespaces/default/pods/misbehave:8080/proxy";
    assert_eq!(c.kubectl(&["get", "--raw", &format!("{base}/")]).ok(), "ok\n");
    for bad in ["trap", "panic", "oom"] {
        let r = c.kubectl(&["get", "--raw", &format!("{base}/{bad}")]);
        assert!(r.err().contains("InternalError") || r.stderr.contains("500"), "/{bad}: {}", r.stderr);
        assert_eq!(c.kubectl(&["get", "--raw", &format!("{base}/")]).ok(), "ok\n", "after /{bad}");
    }
    assert_eq!(c.pod_jsonpath("misbehave", "{.status.phase} {.status.containerStatuses[0].restartCount}"), "Running 0");

    assert_node_ready(&c);
    assert_serving(&c);

    // A guest that never yields is still killed on delete.
    let r = c.kubectl(&["delete", "pod", "infinite-loop", "--timeout=30s"]);
    assert_eq!(r.ok(), "pod \"infinite-loop\" deleted\n");
    assert_node_ready(&c);
    assert_serving(&c);
}

/// CPU seconds the node process uses in 3 s of wall time.
fn cpu_over_3s(c: &Cluster) -> f64 {
    // Fixed sleep on purpose: this measures CPU time over wall time.
    let before = c.cpu_seconds();
    std::thread::sleep(Duration::from_secs(3));
    c.cpu_seconds() - before
}

#[test]
fn node_cpu_limit_holds() {
    let c = Cluster::start();
    c.apply(&limited_pod("spin", &guest("infinite-loop"), "64Mi", "100m"));
    c.wait_pod("spin", "{.status.phase}", "Running", Duration::from_secs(60));
    wait_for(Duration::from_secs(20), "the loop's first line", || (!c.kubectl(&["logs", "spin"]).stdout.is_empty()).then_some(()));

    // 100m is 0.3 CPU s in 3 s; the idle node adds about 0.03.
    let used = cpu_over_3s(&c);
    eprintln!("infinite loop at 100m: the node used {used:.2} CPU s in 3 s");
    assert!(used < 0.5, "an infinite loop limited to 100m made the node use {used:.2} CPU s in 3 s");
    assert!(used > 0.1, "the loop seems not to run at all ({used:.2} CPU s in 3 s)");
    assert_eq!(c.pod_jsonpath("spin", "{.status.phase}"), "Running");

    // 500m is 1.5 CPU s in 3 s (a loaded machine may grant less, never more).
    c.kubectl(&["delete", "pod", "spin", "--timeout=30s"]).ok();
    c.apply(&limited_pod("spin500", &guest("infinite-loop"), "64Mi", "500m"));
    c.wait_pod("spin500", "{.status.phase}", "Running", Duration::from_secs(60));
    wait_for(Duration::from_secs(20), "the loop's first line", || (!c.kubectl(&["logs", "spin500"]).stdout.is_empty()).then_some(()));
    let used = cpu_over_3s(&c);
    eprintln!("infinite loop at 500m: the node used {used:.2} CPU s in 3 s");
    assert!(used < 1.9, "an infinite loop limited to 500m made the node use {used:.2} CPU s in 3 s");
    assert!(used > 0.45, "the 500m loop got only {used:.2} CPU s in 3 s");
    assert_node_ready(&c);
}

#[test]
fn node_memory_limit_holds() {
    let c = Cluster::start();
    let img = guest("memory-hog");
    c.apply(&format!("{}---\n{}", limited_pod("hog32", &img, "32Mi", "1"), limited_pod("hog256", &img, "256Mi", "1")));
    let terminated = "{.status.phase} {.status.containerStatuses[0].state.terminated.reason} {.status.containerStatuses[0].state.terminated.exitCode}";
    c.wait_pod("hog32", terminated, "Failed OOMKilled 137", Duration::from_secs(60));
    c.wait_pod("hog256", terminated, "Failed OOMKilled 137", Duration::from_secs(120));
    let small = max_allocated(&c.kubectl(&["logs", "hog32"]).ok().to_string());
    let big = max_allocated(&c.kubectl(&["logs", "hog256"]).ok().to_string());
    assert!((16..32).contains(&small), "32Mi hog reported {small} MiB");
    assert!((128..256).contains(&big), "256Mi hog reported {big} MiB");
    assert_node_ready(&c);
}

/// `up --allocatable-cpu/--allocatable-memory`: the Node offers what the operator says
/// (capacity stays the host's), and the scheduler fits requests into it: a pod asking for
/// more CPU than is left stays Pending with Kubernetes' FailedScheduling message.
#[test]
fn node_allocatable_cpu_and_memory_are_settable() {
    let c = Cluster::start_with(&["--allocatable-cpu", "500m", "--allocatable-memory", "300Mi"]);
    let node = node_name();
    assert_eq!(c.jsonpath(&["node", &node], "{.status.allocatable.cpu} {.status.allocatable.memory}"), "500m 300Mi");
    let host_cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(c.jsonpath(&["node", &node], "{.status.capacity.cpu}"), host_cores.to_string());
    let pod = |name: &str, cpu: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - name: main\n    image: {}\n    ports: [{{containerPort: 8080}}]\n    resources: {{requests: {{cpu: {cpu}, memory: 100Mi}}}}\n",
            guest("hello-http")
        )
    };
    c.apply(&pod("fits", "400m"));
    c.apply(&pod("too-big", "200m"));
    wait_for(Duration::from_secs(60), "fits Running", || (c.jsonpath(&["pod", "fits"], "{.status.phase}") == "Running").then_some(()));
    let msg = wait_for(Duration::from_secs(30), "too-big unschedulable", || {
        let m = c.jsonpath(&["pod", "too-big"], "{.status.conditions[?(@.type==\"PodScheduled\")].message}");
        (!m.is_empty()).then_some(m)
    });
    assert!(msg.contains("1 Insufficient cpu"), "{msg}");
    assert_eq!(c.jsonpath(&["pod", "too-big"], "{.status.phase}"), "Pending");
    // A bad quantity is refused at start.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flotilla")).args(["up", "--allocatable-memory", "lots"]).output().expect("run flotilla");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a positive memory quantity"), "{}", String::from_utf8_lossy(&out.stderr));
}
