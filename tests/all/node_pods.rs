//! Pods on the embedded node, driven by the real kubectl: an HTTP pod reached through
//! pods/proxy (GET, POST, env), logs (-f, --tail, --timestamps, -c, --previous,
//! --all-containers, --limit-bytes), exec exit codes, graceful delete with a request in
//! flight, command pods ending Succeeded/Failed, restart policies with CrashLoopBackOff,
//! init containers in order, and emptyDir volumes (shared, readOnly).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::{Cluster, guest, node_name, wait_for};

/// The cells of a kubectl table row (columns are separated by 2+ spaces; a cell such as
/// `3 (1s ago)` keeps its single spaces).
pub(crate) fn cells(line: &str) -> Vec<String> {
    line.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(str::to_string).collect()
}

/// The `kubectl get pods` row of `pod`, as cells (None if it is not listed).
pub(crate) fn pod_row(c: &Cluster, pod: &str) -> Option<Vec<String>> {
    let out = c.kubectl(&["get", "pods", pod]);
    if out.code != 0 {
        return None;
    }
    let mut lines = out.stdout.lines();
    let header = lines.next().map(cells);
    assert_eq!(header, Some(vec!["NAME".to_string(), "READY".into(), "STATUS".into(), "RESTARTS".into(), "AGE".into()]), "{}", out.stdout);
    lines.next().map(cells)
}

/// READY, STATUS, RESTARTS of a pod in `kubectl get pods`.
pub(crate) fn ready_status_restarts(c: &Cluster, pod: &str) -> Option<(String, String, String)> {
    let row = pod_row(c, pod)?;
    assert_eq!(row.len(), 5, "row {row:?}");
    assert_eq!(row[0], pod);
    Some((row[1].clone(), row[2].clone(), row[3].clone()))
}

fn raw_get(c: &Cluster, path: &str) -> String {
    c.kubectl(&["get", "--raw", path]).ok().to_string()
}

#[test]
fn node_http_pod_serves_through_proxy() {
    let c = Cluster::start();
    let node = node_name();
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
  nodeName: {node}
  containers:
  - name: web
    image: {img}
    ports: [{{containerPort: 8080}}]
    env:
    - {{name: GREETING, value: hi there}}
    - name: MY_NAME
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
    - name: MY_NAMESPACE
      valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}
    - name: MY_IP
      valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
    - name: MY_NODE
      valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}
"#,
        img = guest("hello-http")
    ));
    c.wait_ready("web");

    // Someone else marks the pod not Ready (as the node lifecycle controller does while
    // a node is unreachable): the node puts back what it observes.
    let ready_status = r#"-o=jsonpath={.status.conditions[?(@.type=="Ready")].status}"#;
    let cond_index = c.kubectl(&["get", "pod", "web", "-o=jsonpath={range .status.conditions[*]}{.type}{\" \"}{end}"]).ok().split_whitespace().position(|t| t == "Ready").expect("a Ready condition");
    let patch = format!(r#"[{{"op": "replace", "path": "/status/conditions/{cond_index}/status", "value": "False"}}]"#);
    c.kubectl(&["patch", "pod", "web", "--subresource=status", "--type=json", "-p", &patch]).ok();
    wait_for(Duration::from_secs(10), "the node to restore Ready=True", || (c.kubectl(&["get", "pod", "web", ready_status]).ok() == "True").then_some(()));

    let out = c.kubectl(&["get", "pods"]).ok().to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0], "NAME   READY   STATUS    RESTARTS   AGE");
    assert!(lines[1].starts_with("web    1/1     Running   0          "), "{out}");

    // Conditions as a kubelet reports them for a running pod.
    let conds = c.pod_jsonpath("web", r#"{range .status.conditions[*]}{.type}={.status} {end}"#);
    for want in ["PodScheduled=True", "Initialized=True", "ContainersReady=True", "Ready=True"] {
        assert!(conds.contains(want), "{want} missing from {conds}");
    }
    assert_eq!(c.pod_jsonpath("web", "{.status.phase} {.status.containerStatuses[0].ready} {.status.containerStatuses[0].restartCount}"), "Running true 0");
    let pod_ip = c.pod_jsonpath("web", "{.status.podIP}");
    assert!(pod_ip.parse::<std::net::Ipv4Addr>().is_ok(), "podIP {pod_ip:?}");
    assert_eq!(c.pod_jsonpath("web", "{.status.hostIP}"), "127.0.0.1");

    assert_eq!(raw_get(&c, "/api/v1/namespaces/default/pods/web:8080/proxy/"), "Hello from Flotilla\n");

    // POST through the proxy: `kubectl create --raw` sends the file as the body.
    let body = c.path().join("body.txt");
    std::fs::write(&body, "ping 123 \u{e9}\n").expect("write body");
    let r = c.kubectl(&["create", "--raw", "/api/v1/namespaces/default/pods/web:8080/proxy/echo", "-f", body.to_str().expect("utf-8 path")]);
    assert_eq!(r.ok(), "ping 123 \u{e9}\n");

    // Env from values and fieldRefs, as the guest sees it.
    let env = raw_get(&c, "/api/v1/namespaces/default/pods/web:8080/proxy/env");
    let lines: Vec<&str> = env.lines().collect();
    for want in ["GREETING=hi there".to_string(), "MY_NAME=web".into(), "MY_NAMESPACE=default".into(), format!("MY_IP={pod_ip}"), format!("MY_NODE={node}")] {
        assert!(lines.contains(&want.as_str()), "{want} missing from /env:\n{env}");
    }

    // Query strings pass through; an unknown path is the guest's own 404.
    assert_eq!(raw_get(&c, "/api/v1/namespaces/default/pods/web:8080/proxy/slow?ms=10"), "slept 10 ms\n");
    let r = c.kubectl(&["get", "--raw", "/api/v1/namespaces/default/pods/web:8080/proxy/nope"]);
    assert!(r.err().contains("NotFound") || r.stderr.contains("404"), "{}", r.stderr);

    // Delete with grace: a slow request already in flight still completes.
    let kubeconfig = c.kubeconfig.clone();
    let home = c.path().to_path_buf();
    let slow = std::thread::spawn(move || {
        let out = std::process::Command::new("kubectl")
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", home)
            .args(["get", "--raw", "/api/v1/namespaces/default/pods/web:8080/proxy/slow?ms=2500"])
            .output()
            .expect("kubectl");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    });
    // Nothing outside shows when the request has reached the guest; give kubectl time to
    // start and send it (the request itself takes 2.5 s).
    std::thread::sleep(Duration::from_millis(700));
    let t = Instant::now();
    assert_eq!(c.kubectl(&["delete", "pod", "web"]).ok(), "pod \"web\" deleted\n");
    let took = t.elapsed();
    let (code, out, err) = slow.join().expect("slow thread");
    assert_eq!((code, out.as_str()), (Some(0), "slept 2500 ms\n"), "in-flight request during delete: {err}");
    assert!(took < Duration::from_secs(15), "delete took {took:?} (grace 30 s, but nothing was left to wait for)");
    let r = c.kubectl(&["get", "pod", "web"]);
    assert_eq!(r.err(), "Error from server (NotFound): pods \"web\" not found\n");
}

/// A two-container pod: an HTTP container and a long-running command sharing a volume.
fn tools_pod(node: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: tools}}
spec:
  nodeName: {node}
  volumes: [{{name: data, emptyDir: {{}}}}]
  containers:
  - name: web
    image: {http}
    ports: [{{containerPort: 8080}}]
  - name: cmd
    image: {cmd}
    args: ["--write", "/data/hello.txt", "from-main", "--sleep-ms", "600000"]
    env: [{{name: GREETING, value: hi}}]
    volumeMounts: [{{name: data, mountPath: /data}}]
"#,
        http = guest("hello-http"),
        cmd = guest("hello-cmd")
    )
}

#[test]
fn node_exec_exit_codes() {
    let c = Cluster::start();
    c.apply(&tools_pod(&node_name()));
    c.wait_ready("tools");
    assert_eq!(ready_status_restarts(&c, "tools"), Some(("2/2".into(), "Running".into(), "0".into())));
    wait_for(Duration::from_secs(20), "cmd container wrote its file", || {
        c.kubectl(&["logs", "tools", "-c", "cmd"]).stdout.contains("wrote /data/hello.txt").then_some(())
    });

    // A failing command: kubectl reports the code on stderr and exits with it.
    let r = c.kubectl(&["exec", "tools", "-c", "cmd", "--", "hello-cmd", "--exit", "3"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(r.stdout, "hello from hello-cmd\nargv0: hello-cmd\narg: --exit\narg: 3\nenv: GREETING=hi\n");
    assert_eq!(r.stderr, "hello-cmd: this line goes to stderr\ncommand terminated with exit code 3\n");

    // A successful one, with the pod's env and volumes.
    let r = c.kubectl(&["exec", "tools", "-c", "cmd", "--", "hello-cmd", "--read", "/data/hello.txt"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "hello from hello-cmd\nargv0: hello-cmd\narg: --read\narg: /data/hello.txt\nenv: GREETING=hi\nfrom-main");
    assert_eq!(r.stderr, "hello-cmd: this line goes to stderr\n");

    // Exit code 2 from the guest's own error path (no such file).
    let r = c.kubectl(&["exec", "tools", "-c", "cmd", "--", "hello-cmd", "--read", "/data/absent"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.ends_with("command terminated with exit code 2\n"), "{}", r.stderr);

    // The HTTP container is not a command; exec fails rather than hanging.
    let r = c.kubectl(&["exec", "tools", "-c", "web", "--", "anything"]);
    assert_ne!(r.code, 0, "{r:?}");

    // The pod itself is unaffected.
    assert_eq!(raw_get(&c, "/api/v1/namespaces/default/pods/tools:8080/proxy/"), "Hello from Flotilla\n");
    assert_eq!(ready_status_restarts(&c, "tools"), Some(("2/2".into(), "Running".into(), "0".into())));
}

#[test]
fn node_logs_options() {
    let c = Cluster::start();
    let node = node_name();
    let cmd = guest("hello-cmd");
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: chat}}
spec:
  nodeName: {node}
  containers:
  - name: a
    image: {cmd}
    args: ["--loop-print", "3", "--sleep-ms", "600000"]
  - name: b
    image: {cmd}
    args: ["--env", "GREETING", "--sleep-ms", "600000"]
    env: [{{name: GREETING, value: from-b}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: follow}}
spec:
  nodeName: {node}
  restartPolicy: Never
  containers:
  - name: main
    image: {cmd}
    args: ["--loop-print", "2", "--sleep-ms", "2000", "--env", "LATE"]
    env: [{{name: LATE, value: late-line}}]
"#
    ));

    // -f: lines arrive as they are written, and kubectl exits when the container ends.
    c.wait_pod("follow", "{.status.phase}", "Running", Duration::from_secs(30));
    let mut child = c.kubectl_cmd().args(["logs", "-f", "follow"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("kubectl logs -f");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    let mut got: Vec<(Instant, String)> = Vec::new();
    while let Ok(item) = rx.recv_timeout(Duration::from_secs(20)) {
        got.push(item);
    }
    let status = wait_for(Duration::from_secs(20), "kubectl logs -f to exit", || child.try_wait().expect("try_wait"));
    assert!(status.success(), "kubectl logs -f exited with {status:?}");
    let text: Vec<&str> = got.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(text.last(), Some(&"env: LATE=late-line"), "{text:?}");
    assert!(text.contains(&"line 2"), "{text:?}");
    let first = got.iter().find(|(_, l)| l == "line 1").expect("line 1").0;
    let late = got.last().expect("late").0;
    assert!(late.duration_since(first) >= Duration::from_millis(1000), "the late line came {:?} after line 1: not streamed", late.duration_since(first));
    c.wait_pod("follow", "{.status.phase}", "Succeeded", Duration::from_secs(20));

    c.wait_ready("chat");
    let expect_a = "hello from hello-cmd\nargv0: a\narg: --loop-print\narg: 3\narg: --sleep-ms\narg: 600000\nhello-cmd: this line goes to stderr\nline 1\nline 2\nline 3\n";
    let expect_b = "hello from hello-cmd\nargv0: b\narg: --env\narg: GREETING\narg: --sleep-ms\narg: 600000\nenv: GREETING=from-b\nhello-cmd: this line goes to stderr\nenv: GREETING=from-b\n";
    wait_for(Duration::from_secs(20), "logs of both containers", || {
        (c.kubectl(&["logs", "chat", "-c", "a"]).stdout == expect_a && c.kubectl(&["logs", "chat", "-c", "b"]).stdout == expect_b).then_some(())
    });

    // Without -c: the first container, with kubectl's notice on stderr.
    let r = c.kubectl(&["logs", "chat"]);
    assert_eq!(r.ok(), expect_a);
    assert_eq!(r.stderr, "Defaulted container \"a\" out of: a, b\n");

    assert_eq!(c.kubectl(&["logs", "chat", "-c", "a", "--tail", "2"]).ok(), "line 2\nline 3\n");
    assert_eq!(c.kubectl(&["logs", "chat", "-c", "a", "--tail=0"]).ok(), "");
    assert_eq!(c.kubectl(&["logs", "chat", "-c", "a", "--limit-bytes", "10"]).ok(), "hello from");
    assert_eq!(c.kubectl(&["logs", "chat", "-c", "a", "--since", "1h"]).ok(), expect_a);

    let ts = c.kubectl(&["logs", "chat", "-c", "a", "--timestamps"]).ok().to_string();
    let plain: Vec<&str> = expect_a.lines().collect();
    let stamped: Vec<&str> = ts.lines().collect();
    assert_eq!(stamped.len(), plain.len(), "{ts}");
    for (line, want) in stamped.iter().zip(&plain) {
        let (stamp, rest) = line.split_once(' ').unwrap_or_else(|| panic!("no timestamp in {line:?}"));
        assert_eq!(rest, *want);
        // The kubelet's fixed-width RFC 3339: 2006-01-02T15:04:05.000000000Z.
        assert_eq!(stamp.len(), 30, "{stamp}");
        assert!(stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T' && stamp.as_bytes()[19] == b'.', "{stamp}");
    }

    // kubectl 1.32 keeps the per-container requests in a Go map, so either order is right.
    let all = c.kubectl(&["logs", "chat", "--all-containers"]).ok().to_string();
    assert!(all == format!("{expect_a}{expect_b}") || all == format!("{expect_b}{expect_a}"), "{all}");

    // Errors as the API server reports them.
    let r = c.kubectl(&["logs", "chat", "-c", "nope"]);
    assert!(r.err().contains("container nope is not valid for pod chat"), "{}", r.stderr);
    let r = c.kubectl(&["logs", "chat", "-c", "a", "--previous"]);
    assert_eq!(r.err(), "Error from server (BadRequest): previous terminated container \"a\" in pod \"chat\" not found\n");
}

#[test]
fn node_command_pods_end_succeeded_or_failed() {
    let c = Cluster::start();
    let node = node_name();
    let cmd = guest("hello-cmd");
    let p1 = guest("hello-p1");
    let mut yaml = String::new();
    for (name, img, code) in [("ok", &cmd, 0), ("bad", &cmd, 4), ("p1-bad", &p1, 9)] {
        yaml.push_str(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  restartPolicy: Never\n  containers:\n  - name: main\n    image: {img}\n    args: [\"--exit\", \"{code}\"]\n---\n"
        ));
    }
    c.apply(&yaml);

    let state = "{.status.phase} {.status.containerStatuses[0].state.terminated.reason} {.status.containerStatuses[0].state.terminated.exitCode}";
    c.wait_pod("ok", state, "Succeeded Completed 0", Duration::from_secs(30));
    c.wait_pod("bad", state, "Failed Error 4", Duration::from_secs(30));
    c.wait_pod("p1-bad", state, "Failed Error 9", Duration::from_secs(30));
    assert_eq!(ready_status_restarts(&c, "ok"), Some(("0/1".into(), "Completed".into(), "0".into())));
    assert_eq!(ready_status_restarts(&c, "bad"), Some(("0/1".into(), "Error".into(), "0".into())));
    assert!(c.kubectl(&["logs", "p1-bad"]).ok().starts_with("hello from hello-p1\nargv0: main\narg: --exit\narg: 9\n"));
    let conds = c.pod_jsonpath("ok", r#"{range .status.conditions[*]}{.type}={.status} {end}"#);
    assert!(conds.contains("Ready=False"), "{conds}");
    assert!(conds.contains("PodScheduled=True") && conds.contains("Initialized=True"), "{conds}");
    assert_eq!(c.pod_jsonpath("bad", "{.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].started}"), "0 false");
}

#[test]
fn node_restart_policies_crash_loop() {
    let c = Cluster::start_with(&["--restart-backoff-ms", "200"]);
    let node = node_name();
    let cmd = guest("hello-cmd");
    let mut yaml = String::new();
    for (name, policy, code) in [("onf", "OnFailure", 5), ("alw", "Always", 0), ("onf-ok", "OnFailure", 0)] {
        yaml.push_str(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  restartPolicy: {policy}\n  containers:\n  - name: main\n    image: {cmd}\n    args: [\"--exit\", \"{code}\"]\n---\n"
        ));
    }
    c.apply(&yaml);

    // The restart count goes up with growing gaps (exponential back-off).
    let restarts = |pod: &str| c.pod_jsonpath(pod, "{.status.containerStatuses[0].restartCount}").parse::<u32>().unwrap_or(0);
    let mut seen_at: Vec<Instant> = Vec::new();
    wait_for(Duration::from_secs(40), "onf to restart 4 times", || {
        let n = restarts("onf") as usize;
        while seen_at.len() < n {
            seen_at.push(Instant::now());
        }
        (n >= 4).then_some(())
    });
    let early = seen_at[1] - seen_at[0];
    let late = seen_at[3] - seen_at[2];
    assert!(late > early, "back-off did not grow: restart 1→2 {early:?}, 3→4 {late:?}");

    for pod in ["onf", "alw"] {
        let (ready, status, restarts_col) = wait_for(Duration::from_secs(30), "CrashLoopBackOff in kubectl get pods", || {
            ready_status_restarts(&c, pod).filter(|(_, s, r)| s == "CrashLoopBackOff" && r.split(' ').next().and_then(|n| n.parse::<u32>().ok()).is_some_and(|n| n >= 2))
        });
        assert_eq!((ready.as_str(), status.as_str()), ("0/1", "CrashLoopBackOff"));
        // e.g. "3 (1s ago)"
        let (n, ago) = restarts_col.split_once(' ').unwrap_or_else(|| panic!("RESTARTS {restarts_col:?}"));
        assert!(n.parse::<u32>().is_ok() && ago.starts_with('(') && ago.ends_with(" ago)"), "RESTARTS {restarts_col:?}");
    }
    assert_eq!(c.pod_jsonpath("onf", "{.status.phase}"), "Running");
    let waiting = c.pod_jsonpath("onf", "{.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].state.waiting.message}");
    let (reason, message) = waiting.split_once('|').expect("waiting");
    if reason == "CrashLoopBackOff" {
        assert!(message.starts_with("back-off ") && message.contains("restarting failed container=main pod=onf_default("), "{message}");
    }
    wait_for(Duration::from_secs(20), "lastState of onf", || {
        (c.pod_jsonpath("onf", "{.status.containerStatuses[0].lastState.terminated.reason} {.status.containerStatuses[0].lastState.terminated.exitCode}") == "Error 5").then_some(())
    });
    assert_eq!(c.pod_jsonpath("alw", "{.status.containerStatuses[0].lastState.terminated.reason} {.status.containerStatuses[0].lastState.terminated.exitCode}"), "Completed 0");

    // --previous shows the last terminated run.
    let prev = c.kubectl(&["logs", "onf", "--previous"]).ok().to_string();
    assert_eq!(prev, "hello from hello-cmd\nargv0: main\narg: --exit\narg: 5\nhello-cmd: this line goes to stderr\n");

    // OnFailure with a clean exit is not restarted.
    c.wait_pod("onf-ok", "{.status.phase} {.status.containerStatuses[0].restartCount}", "Succeeded 0", Duration::from_secs(30));
    assert_eq!(ready_status_restarts(&c, "onf-ok"), Some(("0/1".into(), "Completed".into(), "0".into())));
    let more = restarts("onf");
    wait_for(Duration::from_secs(30), "onf to keep restarting", || (restarts("onf") > more).then_some(()));
    assert_eq!(restarts("onf-ok"), 0);
}

#[test]
fn node_init_containers_and_volumes() {
    let c = Cluster::start();
    let node = node_name();
    let cmd = guest("hello-cmd");
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: init}}
spec:
  nodeName: {node}
  restartPolicy: Never
  volumes: [{{name: work, emptyDir: {{}}}}]
  initContainers:
  - name: first
    image: {cmd}
    args: ["--sleep-ms", "1500", "--write", "/work/a.txt", "from-first"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  - name: second
    image: {cmd}
    args: ["--read", "/work/a.txt", "--write", "/work/b.txt", "from-second"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  containers:
  - name: main
    image: {cmd}
    args: ["--read", "/work/a.txt", "--read", "/work/b.txt"]
    volumeMounts: [{{name: work, mountPath: /work}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: init-fail}}
spec:
  nodeName: {node}
  restartPolicy: Never
  initContainers:
  - name: boom
    image: {cmd}
    args: ["--exit", "7"]
  containers:
  - name: main
    image: {cmd}
---
apiVersion: v1
kind: Pod
metadata: {{name: shared}}
spec:
  nodeName: {node}
  volumes: [{{name: vol, emptyDir: {{}}}}]
  containers:
  - name: writer
    image: {cmd}
    args: ["--write", "/shared/x.txt", "shared-text", "--sleep-ms", "600000"]
    volumeMounts: [{{name: vol, mountPath: /shared}}]
  - name: reader
    image: {cmd}
    args: ["--sleep-ms", "600000"]
    volumeMounts: [{{name: vol, mountPath: /mnt/ro, readOnly: true}}]
"#
    ));

    // While the first init container runs, kubectl shows Init:0/2.
    wait_for(Duration::from_secs(30), "Init:0/2", || ready_status_restarts(&c, "init").filter(|(_, s, _)| s == "Init:0/2"));
    assert_eq!(c.pod_jsonpath("init", "{.status.phase}"), "Pending");

    c.wait_pod("init", "{.status.phase}", "Succeeded", Duration::from_secs(30));
    assert_eq!(c.pod_jsonpath("init", "{.status.initContainerStatuses[*].state.terminated.reason}"), "Completed Completed");
    assert_eq!(c.pod_jsonpath("init", "{.status.containerStatuses[0].state.terminated.exitCode}"), "0");
    // main read what both init containers wrote, so they ran, in order, before it.
    assert!(c.kubectl(&["logs", "init", "-c", "second"]).ok().ends_with("from-firstwrote /work/b.txt\n"));
    assert!(c.kubectl(&["logs", "init", "-c", "main"]).ok().ends_with("hello-cmd: this line goes to stderr\nfrom-firstfrom-second"));
    let conds = c.pod_jsonpath("init", r#"{range .status.conditions[*]}{.type}={.status} {end}"#);
    assert!(conds.contains("Initialized=True"), "{conds}");

    // A failing init container fails the pod (restartPolicy Never); main never runs.
    c.wait_pod("init-fail", "{.status.phase}", "Failed", Duration::from_secs(30));
    assert_eq!(c.pod_jsonpath("init-fail", "{.status.initContainerStatuses[0].state.terminated.exitCode}"), "7");
    assert_eq!(ready_status_restarts(&c, "init-fail"), Some(("0/1".into(), "Init:Error".into(), "0".into())));
    assert_eq!(c.pod_jsonpath("init-fail", "{.status.containerStatuses[0].state.terminated}"), "");

    // Two containers share an emptyDir; the read-only mount refuses writes.
    c.wait_ready("shared");
    wait_for(Duration::from_secs(20), "writer wrote", || c.kubectl(&["logs", "shared", "-c", "writer"]).stdout.contains("wrote /shared/x.txt").then_some(()));
    let r = c.kubectl(&["exec", "shared", "-c", "reader", "--", "hello-cmd", "--read", "/mnt/ro/x.txt"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.ends_with("arg: /mnt/ro/x.txt\nshared-text"), "{}", r.stdout);
    let r = c.kubectl(&["exec", "shared", "-c", "reader", "--", "hello-cmd", "--write", "/mnt/ro/y.txt", "nope"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("hello-cmd: error: writing /mnt/ro/y.txt"), "{}", r.stderr);
    // The refused file does not exist, seen from the writable side.
    let r = c.kubectl(&["exec", "shared", "-c", "writer", "--", "hello-cmd", "--read", "/shared/y.txt"]);
    assert_eq!(r.code, 2, "{r:?}");
    // The writer can write where the reader reads.
    let r = c.kubectl(&["exec", "shared", "-c", "writer", "--", "hello-cmd", "--write", "/shared/z.txt", "zzz"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = c.kubectl(&["exec", "shared", "-c", "reader", "--", "hello-cmd", "--read", "/mnt/ro/z.txt"]);
    assert!(r.ok().ends_with("zzz"), "{}", r.stdout);
    // A container sees only its own mounts.
    let r = c.kubectl(&["exec", "shared", "-c", "reader", "--", "hello-cmd", "--read", "/shared/x.txt"]);
    assert_eq!(r.code, 2, "{r:?}");
}
