//! Container probes, driven by the real kubectl: a failing httpGet liveness probe (a path
//! that answers 500) and a tcpSocket one (a port nobody listens on) restart their
//! containers with back-off, with the kubelet's Unhealthy, Killing and BackOff events in
//! `kubectl get events` and `describe` (which shows the probe with the API server's
//! defaults; a liveness successThreshold other than 1 is a 422); a failing readiness probe
//! keeps a Running pod not Ready and in the Service's notReadyAddresses while passing ones
//! (httpGet, tcpSocket, exec, grpc) make their pods Ready; a failing exec probe reports the
//! command's output, a slow one times out, a NOT_SERVING gRPC service fails; an httpGet
//! `host` is honoured; the startup probe holds liveness back (no restart while it fails),
//! kills the container when it fails for good, and lets the pod become Ready once it
//! passes.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Cluster, guest, wait_for};

const TIMEOUT: Duration = Duration::from_secs(60);

/// `(type, reason, message, count)` of the Events about pod `pod`.
fn events(c: &Cluster, pod: &str) -> Vec<(String, String, String, u64)> {
    let selector = format!("involvedObject.name={pod}");
    let out = c.kubectl(&["get", "events", "--field-selector", &selector, "-o", "json"]).ok().to_string();
    let list: Value = serde_json::from_str(&out).expect("events json");
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    list["items"].as_array().into_iter().flatten().map(|e| (s(&e["type"]), s(&e["reason"]), s(&e["message"]), e["count"].as_u64().unwrap_or(1))).collect()
}

/// The count of the event of `pod` with `reason` and `message` (0 when there is none).
fn count(c: &Cluster, pod: &str, reason: &str, message: &str) -> u64 {
    events(c, pod).iter().filter(|e| e.1 == reason && e.2 == message).map(|e| e.3).sum()
}

fn restarts(c: &Cluster, pod: &str) -> u64 {
    c.pod_jsonpath(pod, "{.status.containerStatuses[0].restartCount}").parse().unwrap_or(0)
}

fn pod(name: &str, labels: &str, container: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{{labels}}}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n{container}")
}

#[test]
fn failing_liveness_probes_restart_the_container_with_back_off_and_events() {
    let c = Cluster::start_with(&["--restart-backoff-ms", "1000"]);
    let http = guest("http-misbehave");
    c.apply(&pod(
        "live",
        "app: live",
        &format!(
            "  - name: web\n    image: {http}\n    ports: [{{name: http, containerPort: 8080}}]\n    livenessProbe:\n      httpGet: {{path: /trap, port: http}}\n      periodSeconds: 1\n      failureThreshold: 2\n"
        ),
    ));
    c.apply(&pod(
        "dead-port",
        "app: dead",
        &format!("  - name: web\n    image: {http}\n    livenessProbe:\n      tcpSocket: {{port: 9999}}\n      periodSeconds: 1\n      failureThreshold: 1\n"),
    ));

    // Restarted at least twice (the back-off between: 1 s, then 2 s).
    wait_for(TIMEOUT, "two restarts of live", || (restarts(&c, "live") >= 2).then_some(()));
    let unhealthy = "Liveness probe failed: HTTP probe failed with statuscode: 500";
    let killing = "Container web failed liveness probe, will be restarted";
    let backoff = wait_for(TIMEOUT, "the probe's events", || {
        let evs = events(&c, "live");
        let has = |reason: &str, message: &str, min: u64| evs.iter().any(|e| e.1 == reason && e.2 == message && e.3 >= min);
        (has("Unhealthy", unhealthy, 4) && has("Killing", killing, 2)).then_some(())?;
        evs.into_iter().find(|e| e.1 == "BackOff")
    });
    assert_eq!(backoff.0, "Warning");
    assert!(backoff.2.starts_with("Back-off restarting failed container web in pod live_default("), "{backoff:?}");
    // Repeats aggregate into one Event each, as the kubelet's recorder does.
    let evs = events(&c, "live");
    assert_eq!(evs.iter().filter(|e| e.2 == unhealthy).count(), 1, "{evs:?}");
    assert!(evs.iter().any(|e| e.0 == "Warning" && e.1 == "Unhealthy" && e.2 == unhealthy), "{evs:?}");
    assert!(evs.iter().any(|e| e.0 == "Normal" && e.1 == "Killing" && e.2 == killing), "{evs:?}");
    assert!(!c.pod_jsonpath("live", "{.status.containerStatuses[0].lastState.terminated.finishedAt}").is_empty());

    let described = c.kubectl(&["describe", "pod", "live"]).ok().to_string();
    // The probe as the API server defaulted it.
    let line = described.lines().find(|l| l.trim_start().starts_with("Liveness:")).expect("Liveness line");
    assert_eq!(line.split_whitespace().collect::<Vec<_>>(), ["Liveness:", "http-get", "http://:http/trap", "delay=0s", "timeout=1s", "period=1s", "#success=1", "#failure=2"]);
    for want in ["Unhealthy", unhealthy, "Killing", killing, "BackOff"] {
        assert!(described.contains(want), "{want:?} missing in:\n{described}");
    }

    // A liveness probe needs no more than one success: 422.
    let bad = pod("bad", "app: bad", &format!("  - name: web\n    image: {http}\n    livenessProbe:\n      tcpSocket: {{port: 8080}}\n      successThreshold: 2\n"));
    let err = c.kubectl_stdin(&["apply", "-f", "-"], &bad).err().to_string();
    assert!(err.contains("spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"), "{err}");

    // tcpSocket to a port nobody listens on: connection refused, and restarts.
    wait_for(TIMEOUT, "a restart of dead-port", || (restarts(&c, "dead-port") >= 1).then_some(()));
    let ip = c.pod_jsonpath("dead-port", "{.status.podIP}");
    let refused = format!("Liveness probe failed: dial tcp {ip}:9999: connect: connection refused");
    assert!(count(&c, "dead-port", "Unhealthy", &refused) >= 1, "{:?}", events(&c, "dead-port"));
    assert!(count(&c, "dead-port", "Killing", "Container web failed liveness probe, will be restarted") >= 1);
}

#[test]
fn readiness_probes_decide_ready_and_endpoints() {
    let c = Cluster::start();
    let (http, cmd, echo) = (guest("http-misbehave"), guest("hello-cmd"), guest("tcp-echo"));
    let web = |path: &str| {
        format!(
            "  - name: web\n    image: {http}\n    ports: [{{name: http, containerPort: 8080}}]\n    readinessProbe:\n      httpGet: {{path: {path}, port: 8080, httpHeaders: [{{name: X-Probe, value: '1'}}]}}\n      periodSeconds: 1\n"
        )
    };
    c.apply(&pod("good", "app: web", &web("/")));
    c.apply(&pod("bad", "app: web", &web("/trap")));
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: http}]\n");
    // Exec probes run the container's own component; tcpSocket reaches its listener.
    let exec = |code: u32| {
        format!(
            "  - name: cmd\n    image: {cmd}\n    args: [--sleep-ms, '600000']\n    readinessProbe:\n      exec: {{command: [hello-cmd, --exit, '{code}']}}\n      periodSeconds: 1\n      timeoutSeconds: 10\n    livenessProbe:\n      exec: {{command: [hello-cmd]}}\n      periodSeconds: 1\n      timeoutSeconds: 10\n"
        )
    };
    c.apply(&pod("exec-ok", "app: cmd", &exec(0)));
    c.apply(&pod("exec-bad", "app: cmd", &exec(3)));
    c.apply(&pod(
        "exec-slow",
        "app: cmd",
        &format!("  - name: cmd\n    image: {cmd}\n    args: [--sleep-ms, '600000']\n    readinessProbe:\n      exec: {{command: [hello-cmd, --sleep-ms, '5000']}}\n      periodSeconds: 1\n"),
    ));
    c.apply(&pod(
        "echo",
        "app: echo",
        &format!("  - name: echo\n    image: {echo}\n    readinessProbe:\n      tcpSocket: {{port: 7000}}\n      periodSeconds: 1\n"),
    ));

    for ready in ["good", "exec-ok", "echo"] {
        c.wait_ready(ready);
    }
    // A failing readiness probe: Running, not Ready, never restarted.
    let unhealthy = "Readiness probe failed: HTTP probe failed with statuscode: 500";
    wait_for(TIMEOUT, "bad's failures", || (count(&c, "bad", "Unhealthy", unhealthy) >= 3).then_some(()));
    assert_eq!(c.pod_jsonpath("bad", "{.status.phase}"), "Running");
    assert_eq!(c.pod_jsonpath("bad", r#"{.status.conditions[?(@.type=="Ready")].status}"#), "False");
    assert_eq!(c.pod_jsonpath("bad", "{.status.containerStatuses[0].ready} {.status.containerStatuses[0].started}"), "false true");
    assert_eq!(restarts(&c, "bad"), 0);
    let row = c.kubectl(&["get", "pod", "bad", "--no-headers"]).ok().to_string();
    assert!(row.split_whitespace().take(3).eq(["bad", "0/1", "Running"]), "{row}");

    // The Service's endpoints: good ready, bad not ready.
    let (good_ip, bad_ip) = (c.pod_jsonpath("good", "{.status.podIP}"), c.pod_jsonpath("bad", "{.status.podIP}"));
    wait_for(TIMEOUT, "the endpoints to follow readiness", || {
        let ready = c.jsonpath(&["endpoints", "web"], "{.subsets[*].addresses[*].ip}");
        let not_ready = c.jsonpath(&["endpoints", "web"], "{.subsets[*].notReadyAddresses[*].ip}");
        (ready == good_ip && not_ready == bad_ip).then_some(())
    });

    // grpc: the health service's answer decides.
    let grpc = |service: &str| format!("  - name: web\n    image: {http}\n    readinessProbe:\n      grpc: {{port: 8080, service: '{service}'}}\n      periodSeconds: 1\n");
    c.apply(&pod("grpc-ok", "app: grpc", &grpc("")));
    c.apply(&pod("grpc-down", "app: grpc", &grpc("down")));
    c.wait_ready("grpc-ok");
    let down = "Readiness probe failed: service unhealthy (responded with \"NOT_SERVING\")";
    wait_for(TIMEOUT, "grpc-down's failure", || (count(&c, "grpc-down", "Unhealthy", down) >= 1).then_some(()));
    assert_eq!(c.pod_jsonpath("grpc-down", "{.status.containerStatuses[0].ready}"), "false");

    // httpGet honours `host`: a command pod that serves nothing is Ready by good's answer.
    c.apply(&pod(
        "by-host",
        "app: host",
        &format!("  - name: cmd\n    image: {cmd}\n    args: [--sleep-ms, '600000']\n    readinessProbe:\n      httpGet: {{host: '{good_ip}', port: 8080}}\n      periodSeconds: 1\n"),
    ));
    c.wait_ready("by-host");

    // A failing exec probe: its output is the message.
    let failed = wait_for(TIMEOUT, "exec-bad's failure", || events(&c, "exec-bad").into_iter().find(|e| e.1 == "Unhealthy"));
    assert!(failed.2.starts_with("Readiness probe failed: hello from hello-cmd\nargv0: hello-cmd\narg: --exit\narg: 3\n"), "{failed:?}");
    assert_eq!(c.pod_jsonpath("exec-bad", "{.status.containerStatuses[0].ready}"), "false");
    // An exec probe that outlives its timeoutSeconds (1 s) fails as the kubelet words it.
    let timed_out = "Readiness probe failed: command \"hello-cmd --sleep-ms 5000\" timed out";
    wait_for(TIMEOUT, "exec-slow's timeout", || (count(&c, "exec-slow", "Unhealthy", timed_out) >= 1).then_some(()));
    assert_eq!(c.pod_jsonpath("exec-slow", "{.status.containerStatuses[0].ready}"), "false");
    // Passing probes change nothing (echo's first probe may come before it listens).
    for ok in ["good", "exec-ok", "echo"] {
        assert_eq!(restarts(&c, ok), 0, "{ok}");
    }
    for ok in ["good", "exec-ok"] {
        assert!(events(&c, ok).iter().all(|e| e.1 != "Unhealthy"), "{ok}: {:?}", events(&c, ok));
    }
}

#[test]
fn the_startup_probe_gates_liveness_and_readiness() {
    let c = Cluster::start_with(&["--restart-backoff-ms", "1000"]);
    let http = guest("http-misbehave");
    // Startup never passes; the liveness probe would fail at once if it ran.
    c.apply(&pod(
        "starting",
        "app: starting",
        &format!(
            "  - name: web\n    image: {http}\n    startupProbe:\n      tcpSocket: {{port: 9999}}\n      periodSeconds: 1\n      failureThreshold: 1000\n    livenessProbe:\n      httpGet: {{path: /trap, port: 8080}}\n      periodSeconds: 1\n      failureThreshold: 1\n"
        ),
    ));
    // Startup passes after its initial delay: then the pod is Ready.
    c.apply(&pod(
        "gated",
        "app: gated",
        &format!(
            "  - name: web\n    image: {http}\n    startupProbe:\n      httpGet: {{path: /, port: 8080}}\n      initialDelaySeconds: 10\n      periodSeconds: 1\n    readinessProbe:\n      httpGet: {{path: /, port: 8080}}\n      periodSeconds: 1\n"
        ),
    ));
    // Startup fails for good: killed and restarted.
    c.apply(&pod(
        "never",
        "app: never",
        &format!("  - name: web\n    image: {http}\n    startupProbe:\n      tcpSocket: {{port: 9999}}\n      periodSeconds: 1\n      failureThreshold: 2\n"),
    ));

    c.wait_pod("gated", "{.status.phase}", "Running", TIMEOUT);
    // Started, but not started-by-probe yet: not Ready for the first 10 s (a margin for
    // a loaded machine between Running and this check).
    assert_eq!(c.pod_jsonpath("gated", "{.status.containerStatuses[0].started}"), "false");
    c.wait_ready("gated");
    assert_eq!(c.pod_jsonpath("gated", "{.status.containerStatuses[0].started}"), "true");

    let ip = c.pod_jsonpath("starting", "{.status.podIP}");
    let refused = format!("Startup probe failed: dial tcp {ip}:9999: connect: connection refused");
    wait_for(TIMEOUT, "startup failures", || (count(&c, "starting", "Unhealthy", &refused) >= 4).then_some(()));
    assert_eq!(c.pod_jsonpath("starting", "{.status.containerStatuses[0].started} {.status.containerStatuses[0].ready}"), "false false");
    assert_eq!(restarts(&c, "starting"), 0);
    assert!(events(&c, "starting").iter().all(|e| !e.2.starts_with("Liveness")), "{:?}", events(&c, "starting"));

    wait_for(TIMEOUT, "a restart of never", || (restarts(&c, "never") >= 1).then_some(()));
    assert!(count(&c, "never", "Killing", "Container web failed startup probe, will be restarted") >= 1, "{:?}", events(&c, "never"));
}
