//! Observability end to end, on one cluster: `kubectl top pod|node` (metrics.k8s.io, fed
//! by the node's summary) show a guest spinning under a CPU limit using about its limit
//! and idle pods near zero; `kubectl describe pod` shows the per-container usage
//! annotation, refreshed; the node's `/metrics` (through nodes/NODE/proxy, and directly on
//! its kubelet port, 401 without a token) and the API server's `/metrics` (requests,
//! watchers, raft, store, scheduler; 401 without the admin token) parsed by the python
//! prometheus_client parser.

use std::process::Command;
use std::time::Duration;

use crate::harness::{Cluster, KubectlStream, guest, node_name, wait_for};

/// The busy pod's CPU limit in millicores.
const BUSY_MILLIS: u64 = 300;

fn pods_yaml() -> String {
    let node = node_name();
    let busy = guest("infinite-loop");
    let web = guest("hello-http");
    let sleeper = guest("hello-cmd");
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: metrics-other}}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: busy, labels: {{app: busy}}}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {busy}\n    resources: {{limits: {{cpu: {BUSY_MILLIS}m, memory: 64Mi}}}}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: web, labels: {{app: web}}}}\nspec:\n  containers:\n  - name: main\n    image: {web}\n    ports: [{{containerPort: 8080}}]\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: sleeper, namespace: metrics-other, labels: {{app: sleeper}}}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: a\n    image: {sleeper}\n    args: [\"--sleep-ms\", \"3600000\"]\n  - name: b\n    image: {sleeper}\n    args: [\"--sleep-ms\", \"3600000\"]\n"
    )
}

/// Millicores of a `kubectl top` CPU cell (`298m`, `1`).
fn millicores(cell: &str) -> u64 {
    match cell.strip_suffix('m') {
        Some(m) => m.parse().unwrap_or_else(|_| panic!("cpu cell {cell:?}")),
        None => cell.parse::<u64>().unwrap_or_else(|_| panic!("cpu cell {cell:?}")) * 1000,
    }
}

/// `kubectl top ARGS --no-headers` rows, split on whitespace.
fn top(c: &Cluster, args: &[&str]) -> Vec<Vec<String>> {
    let mut all = vec!["top"];
    all.extend_from_slice(args);
    all.push("--no-headers");
    let out = c.kubectl(&all).ok().to_string();
    out.lines().map(|l| l.split_whitespace().map(String::from).collect()).collect()
}

/// One parsed sample: (name, labels, value).
type Sample = (String, serde_json::Map<String, serde_json::Value>, f64);

/// Parses an exposition with the python prometheus_client parser: family name → (type,
/// samples).
fn parse_prometheus(text: &str) -> std::collections::HashMap<String, (String, Vec<Sample>)> {
    let script = "import sys, json\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        out = {}\n\
        for f in text_string_to_metric_families(sys.stdin.read()):\n\
        \x20   out[f.name] = [f.type, [[s.name, s.labels, s.value] for s in f.samples]]\n\
        print(json.dumps(out))\n";
    // The venv scripts/client-deps.sh installs prometheus_client into.
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/clients/python-prometheus/bin/python");
    assert!(python.is_file(), "{} is missing: run scripts/client-deps.sh", python.display());
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    {
        use std::io::Write as _;
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    }
    let out = child.wait_with_output().expect("python3 output");
    assert!(out.status.success(), "prometheus_client could not parse:\n{}\n{text}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v.as_object()
        .expect("families")
        .iter()
        .map(|(name, f)| {
            let samples = f[1]
                .as_array()
                .expect("samples")
                .iter()
                .map(|s| (s[0].as_str().expect("name").to_string(), s[1].as_object().expect("labels").clone(), s[2].as_f64().expect("value")))
                .collect();
            (name.clone(), (f[0].as_str().expect("type").to_string(), samples))
        })
        .collect()
}

/// The value of `name` for the container `ns/pod/container`.
fn container_value(families: &std::collections::HashMap<String, (String, Vec<Sample>)>, family: &str, name: &str, ns: &str, pod: &str, container: &str) -> f64 {
    let (_, samples) = families.get(family).unwrap_or_else(|| panic!("no family {family}"));
    samples
        .iter()
        .find(|(n, l, _)| n == name && l["namespace"] == ns && l["pod"] == pod && l["container"] == container)
        .map(|s| s.2)
        .unwrap_or_else(|| panic!("no {name} for {ns}/{pod}/{container} in {samples:?}"))
}

/// The one sample of `name` whose labels include `want`.
fn value_with(families: &std::collections::HashMap<String, (String, Vec<Sample>)>, family: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    let (_, samples) = families.get(family).unwrap_or_else(|| panic!("no family {family}"));
    samples
        .iter()
        .find(|(n, l, _)| n == name && want.iter().all(|(k, v)| l.get(*k).and_then(|x| x.as_str()) == Some(*v)))
        .map(|s| s.2)
        .unwrap_or_else(|| panic!("no {name} with {want:?} in {samples:?}"))
}

/// `curl -sk URL`: (status code, content type).
fn curl_status(url: &str, token: Option<&str>) -> (String, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sk", "-o", "/dev/null", "-w", "%{http_code} %{content_type}", url]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd.output().expect("curl");
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    let (code, ct) = s.split_once(' ').unwrap_or((&s, ""));
    (code.to_string(), ct.to_string())
}

#[test]
fn metrics_top_describe_and_prometheus() {
    let c = Cluster::start();
    c.apply(&pods_yaml());
    for pod in ["busy", "web"] {
        c.wait_ready(pod);
    }
    let r = c.kubectl(&["wait", "--for=condition=Ready", "pod/sleeper", "-n", "metrics-other", "--timeout=60s"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    const REQUESTS: usize = 3;
    for _ in 0..REQUESTS {
        assert_eq!(c.kubectl(&["get", "--raw", "/api/v1/namespaces/default/pods/web:8080/proxy/"]).ok(), "Hello from Flotilla\n");
    }

    // kubectl top pod: the busy pod near its limit, the idle one near zero. The node's
    // rate covers a full sampling window once the pod has run through one.
    let limit = BUSY_MILLIS as f64;
    let rows = wait_for(Duration::from_secs(60), "kubectl top pod to show the busy pod near its limit", || {
        let rows = top(&c, &["pod"]);
        let busy = rows.iter().find(|r| r[0] == "busy")?;
        let m = millicores(&busy[1]) as f64;
        (m >= limit * 0.8).then_some(rows)
    });
    let cell = |rows: &[Vec<String>], pod: &str, i: usize| rows.iter().find(|r| r[0] == pod).unwrap_or_else(|| panic!("no {pod} in {rows:?}"))[i].clone();
    let busy = millicores(&cell(&rows, "busy", 1)) as f64;
    println!("kubectl top pod: {rows:?}");
    assert!((limit * 0.8..=limit * 1.15).contains(&busy), "busy at {busy}m with a {limit}m limit: {rows:?}");
    assert!(millicores(&cell(&rows, "web", 1)) as f64 <= limit * 0.05, "idle web pod: {rows:?}");
    assert!(cell(&rows, "busy", 2).ends_with("Mi"), "{rows:?}");
    assert!(!rows.iter().any(|r| r[0] == "sleeper"), "another namespace's pod: {rows:?}");

    // --containers, -l, -A.
    let rows = top(&c, &["pod", "--containers", "-n", "metrics-other"]);
    let names: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(names, ["a", "b"], "{rows:?}");
    assert!(rows.iter().all(|r| r[0] == "sleeper" && millicores(&r[2]) as f64 <= limit * 0.05), "{rows:?}");
    let rows = top(&c, &["pod", "-l", "app=busy"]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0], "busy");
    let rows = top(&c, &["pod", "-A"]);
    assert!(rows.iter().any(|r| r[0] == "metrics-other" && r[1] == "sleeper"), "{rows:?}");
    assert!(rows.iter().any(|r| r[0] == "default" && r[1] == "busy"), "{rows:?}");
    let rows = top(&c, &["pod", "busy"]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let err = c.kubectl(&["top", "pod", "nope"]);
    assert!(err.err().contains("not found"), "{}", err.stderr);

    // kubectl top node: the node's CPU is its containers', so at least the busy pod's.
    let node = node_name();
    let rows = top(&c, &["node"]);
    let row = rows.iter().find(|r| r[0] == node).unwrap_or_else(|| panic!("no node row in {rows:?}"));
    let node_cpu = millicores(&row[1]) as f64;
    println!("kubectl top node: {row:?}");
    assert!((limit * 0.8..=limit * 1.3).contains(&node_cpu), "node at {node_cpu}m: {rows:?}");
    assert!(row[2].ends_with('%'), "{rows:?}");

    // describe: the usage annotation, refreshed while the pod spins.
    let key = "usage.flotilla.dev/main";
    let cpu_of = |v: &str| -> f64 {
        v.split_whitespace().find_map(|w| w.strip_prefix("cpu=")?.strip_suffix('s')?.parse().ok()).unwrap_or_else(|| panic!("no cpu in {v:?}"))
    };
    let path = format!("{{.metadata.annotations.usage\\.flotilla\\.dev/main}}");
    let first = wait_for(Duration::from_secs(30), "the usage annotation", || Some(c.pod_jsonpath("busy", &path)).filter(|v| !v.is_empty()));
    assert!(first.contains(" fuel="), "{first}");
    let later = wait_for(Duration::from_secs(25), "the usage annotation to be refreshed", || {
        Some(c.pod_jsonpath("busy", &path)).filter(|v| cpu_of(v) > cpu_of(&first))
    });
    let fuel_of = |v: &str| -> u64 { v.split_whitespace().find_map(|w| w.strip_prefix("fuel=")?.parse().ok()).expect("fuel") };
    assert!(fuel_of(&later) > fuel_of(&first), "{first} → {later}");
    let described = c.kubectl(&["describe", "pod", "busy"]).ok().to_string();
    assert!(described.contains(&format!("{key}: cpu=")), "{described}");

    // The node's /metrics through the API server, parsed by prometheus_client.
    let text = c.kubectl(&["get", "--raw", &format!("/api/v1/nodes/{node}/proxy/metrics")]).ok().to_string();
    let families = parse_prometheus(&text);
    for (name, (kind, _)) in &families {
        assert_ne!(kind, "unknown", "family {name} has no TYPE");
    }
    let cpu = |pod: &str, ns: &str, container: &str| container_value(&families, "container_cpu_usage_seconds", "container_cpu_usage_seconds_total", ns, pod, container);
    let busy_cpu = cpu("busy", "default", "main");
    assert!(busy_cpu > 1.0, "busy used {busy_cpu} s of CPU");
    assert!(cpu("web", "default", "main") < busy_cpu / 10.0);
    assert_eq!(families["container_cpu_usage_seconds"].0, "counter");
    let requests = container_value(&families, "flotilla_container_http_requests", "flotilla_container_http_requests_total", "default", "web", "main");
    assert_eq!(requests, REQUESTS as f64);
    let latency = container_value(&families, "flotilla_container_http_request_duration_seconds", "flotilla_container_http_request_duration_seconds_count", "default", "web", "main");
    assert_eq!(latency, REQUESTS as f64);
    assert!(container_value(&families, "flotilla_container_fuel_consumed", "flotilla_container_fuel_consumed_total", "default", "busy", "main") > 0.0);
    assert!(container_value(&families, "container_memory_working_set_bytes", "container_memory_working_set_bytes", "default", "busy", "main") > 0.0);
    assert_eq!(container_value(&families, "flotilla_container_instances", "flotilla_container_instances", "default", "busy", "main"), 1.0);
    assert_eq!(container_value(&families, "flotilla_container_instances", "flotilla_container_instances", "default", "web", "main"), 0.0);
    assert_eq!(container_value(&families, "flotilla_container_restarts", "flotilla_container_restarts_total", "metrics-other", "sleeper", "b"), 0.0);

    // Directly on the kubelet port: 401 without the token.
    let address = c.jsonpath(&["node", &node], "{.status.addresses[?(@.type==\"InternalIP\")].address}");
    let port = c.jsonpath(&["node", &node], "{.status.daemonEndpoints.kubeletEndpoint.Port}");
    let url = format!("https://{address}:{port}/metrics");
    assert_eq!(curl_status(&url, None).0, "401");
    assert_eq!(curl_status(&url, Some("wrong")).0, "401");
    assert_eq!(curl_status(&url, Some(&c.admin_token())), ("200".to_string(), "text/plain; version=0.0.4; charset=utf-8".to_string()));

    // The API server's /metrics, with a watch open.
    let watch = KubectlStream::start(&c, &["get", "configmaps", "-w"]);
    let text = wait_for(Duration::from_secs(20), "the configmaps watch to be registered", || {
        let text = c.kubectl(&["get", "--raw", "/metrics"]).ok().to_string();
        text.lines().any(|l| l.starts_with("apiserver_registered_watchers{resource=\"configmaps\"} 1")).then_some(text)
    });
    let families = parse_prometheus(&text);
    for (name, kind) in [
        ("apiserver_request", "counter"),
        ("apiserver_request_duration_seconds", "histogram"),
        ("apiserver_registered_watchers", "gauge"),
        ("flotilla_raft_proposals", "counter"),
        ("flotilla_raft_commit_duration_seconds", "histogram"),
        ("flotilla_store_size_bytes", "gauge"),
        ("scheduler_schedule_attempts", "counter"),
        ("scheduler_scheduling_attempt_duration_seconds", "histogram"),
    ] {
        assert_eq!(families.get(name).map(|f| f.0.as_str()), Some(kind), "{name} in\n{text}");
    }
    for (name, (kind, _)) in &families {
        assert_ne!(kind, "unknown", "family {name} has no TYPE");
    }
    let creates = value_with(&families, "apiserver_request", "apiserver_request_total", &[("verb", "POST"), ("resource", "pods"), ("code", "201")]);
    assert!(creates >= 3.0, "{creates} pod creates");
    let timed = value_with(&families, "apiserver_request_duration_seconds", "apiserver_request_duration_seconds_count", &[("verb", "POST"), ("resource", "pods")]);
    assert_eq!(timed, creates);
    assert!(value_with(&families, "apiserver_request", "apiserver_request_total", &[("verb", "CONNECT"), ("resource", "pods"), ("subresource", "proxy"), ("code", "200")]) >= REQUESTS as f64);
    assert!(value_with(&families, "apiserver_request", "apiserver_request_total", &[("verb", "LIST"), ("resource", "pods")]) >= 1.0);
    let proposals = value_with(&families, "flotilla_raft_proposals", "flotilla_raft_proposals_total", &[]);
    assert!(proposals >= creates, "{proposals} proposals");
    let commits = value_with(&families, "flotilla_raft_commit_duration_seconds", "flotilla_raft_commit_duration_seconds_count", &[]);
    // Both move while the node writes (leases, statuses), so only roughly equal.
    assert!((commits - proposals).abs() <= 20.0, "{commits} commits timed, {proposals} proposals");
    assert!(value_with(&families, "flotilla_store_size_bytes", "flotilla_store_size_bytes", &[]) > 0.0);
    let scheduled = value_with(&families, "scheduler_schedule_attempts", "scheduler_schedule_attempts_total", &[("result", "scheduled")]);
    assert!(scheduled >= 1.0, "the web pod went through the scheduler: {scheduled}");
    let timed = value_with(&families, "scheduler_scheduling_attempt_duration_seconds", "scheduler_scheduling_attempt_duration_seconds_count", &[("result", "scheduled")]);
    assert_eq!(timed, scheduled);
    drop(watch);

    // 401 without the admin token.
    let url = format!("{}/metrics", c.url.trim_end_matches('/'));
    assert_eq!(curl_status(&url, None).0, "401");
    assert_eq!(curl_status(&url, Some("wrong")).0, "401");
    assert_eq!(curl_status(&url, Some(&c.admin_token())), ("200".to_string(), "text/plain; version=0.0.4; charset=utf-8".to_string()));
}
