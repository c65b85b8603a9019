//! Workload controllers on multi-node clusters, driven by the real kubectl: a Deployment
//! rollout with maxUnavailable=0 sampled for ready pods, history, undo and scaling; a
//! StatefulSet's ordering seen through `kubectl get pods -w`; a DaemonSet on every node
//! and on a node that joins later; cordon and drain; a SIGKILLed node's pods recreated on
//! the survivor; and an unschedulable pod's FailedScheduling event.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Cluster, KubectlStream, NodeProcess, guest, node_name, wait_for};
use crate::node_pods::cells;

/// Names of the nodes `flotilla up --nodes N` starts: HOST-1..HOST-N.
pub(crate) fn node_names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{}-{i}", node_name())).collect()
}

/// `kubectl get pods -l SELECTOR -o json` items (empty if the command fails).
pub(crate) fn pods(c: &Cluster, selector: &str) -> Vec<Value> {
    let r = c.kubectl(&["get", "pods", "-l", selector, "-o", "json"]);
    if r.code != 0 {
        return Vec::new();
    }
    serde_json::from_str::<Value>(&r.stdout).ok().and_then(|v| v["items"].as_array().cloned()).unwrap_or_default()
}

/// Not being deleted and not finished.
pub(crate) fn live(p: &Value) -> bool {
    p["metadata"]["deletionTimestamp"].is_null() && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

/// Live and with condition Ready=True.
pub(crate) fn ready(p: &Value) -> bool {
    live(p) && p["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn name(p: &Value) -> String {
    p["metadata"]["name"].as_str().unwrap_or_default().to_string()
}

fn node_of(p: &Value) -> String {
    p["spec"]["nodeName"].as_str().unwrap_or_default().to_string()
}

/// Waits until exactly `n` pods matching `selector` are live, all Ready, and none other
/// is listed (terminating ones gone); returns them.
#[track_caller]
fn wait_exactly_ready(c: &Cluster, selector: &str, n: usize, timeout: Duration) -> Vec<Value> {
    let what = format!("exactly {n} Ready pods for {selector}");
    wait_for(timeout, &what, || {
        let ps = pods(c, selector);
        (ps.len() == n && ps.iter().all(ready)).then_some(ps)
    })
}

/// The data row of a one-object `kubectl get KIND NAME` table, with the header checked.
#[track_caller]
fn table_row(c: &Cluster, args: &[&str], header: &[&str]) -> Vec<String> {
    let r = c.kubectl(args);
    let out = r.ok();
    let mut lines = out.lines();
    assert_eq!(lines.next().map(cells), Some(header.iter().map(|s| s.to_string()).collect()), "{out}");
    lines.next().map(cells).unwrap_or_else(|| panic!("no row in {out}"))
}

const DEPLOY_HEADER: &[&str] = &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"];

fn deployment(replicas: u32, image: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  minReadySeconds: 1
  revisionHistoryLimit: 5
  selector: {{matchLabels: {{app: web}}}}
  strategy: {{type: RollingUpdate, rollingUpdate: {{maxUnavailable: 0, maxSurge: 1}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: {image}
        ports: [{{containerPort: 8080}}]
"#
    )
}

/// The REVISION column of `kubectl rollout history deploy/web`.
#[track_caller]
fn revisions(c: &Cluster) -> Vec<String> {
    let r = c.kubectl(&["rollout", "history", "deploy/web"]);
    let out = r.ok();
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("deployment.apps/web "), "{out}");
    assert_eq!(lines.next().map(cells), Some(vec!["REVISION".to_string(), "CHANGE-CAUSE".into()]), "{out}");
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let row = cells(l);
            assert_eq!(row.get(1).map(String::as_str), Some("<none>"), "{out}");
            row[0].clone()
        })
        .collect()
}

#[test]
fn workloads_deployment_rollout_undo_and_scale() {
    let c = Cluster::start_with(&["--nodes", "3"]);
    let v1 = guest("hello-http");
    let v2 = guest("http-misbehave");
    c.apply(&deployment(4, &v1));
    let r = c.kubectl(&["rollout", "status", "deploy/web", "--timeout=90s"]);
    assert!(r.ok().ends_with("deployment \"web\" successfully rolled out\n"), "{}", r.stdout);
    let ps = wait_exactly_ready(&c, "app=web", 4, Duration::from_secs(60));
    // Least-allocated scoring spreads 4 pods over all 3 nodes.
    let used: BTreeSet<String> = ps.iter().map(node_of).collect();
    assert_eq!(used, node_names(3).into_iter().collect(), "pods not spread: {:?}", ps.iter().map(|p| (name(p), node_of(p))).collect::<Vec<_>>());

    // Roll out a new image while sampling the Deployment's pods every ~100 ms.
    let stop = AtomicBool::new(false);
    let taken = AtomicUsize::new(0);
    let (samples, status) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut samples = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let ps = pods(&c, "app=web");
                if !ps.is_empty() {
                    let ready_n = ps.iter().filter(|p| ready(p)).count();
                    let live_n = ps.iter().filter(|p| live(p)).count();
                    let new_ready = ps.iter().filter(|p| ready(p) && p["spec"]["containers"][0]["image"] == v2.as_str()).count();
                    samples.push((ready_n, live_n, new_ready));
                    taken.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        });
        // Let the sampler see the settled state first.
        wait_for(Duration::from_secs(10), "first samples", || (taken.load(Ordering::SeqCst) >= 2).then_some(()));
        let r = c.kubectl(&["set", "image", "deploy/web", &format!("web={v2}")]);
        assert_eq!(r.ok(), "deployment.apps/web image updated\n");
        let status = c.kubectl(&["rollout", "status", "deploy/web", "--timeout=120s"]);
        stop.store(true, Ordering::SeqCst);
        (sampler.join().expect("sampler"), status)
    });
    assert!(status.ok().ends_with("deployment \"web\" successfully rolled out\n"), "{}", status.stdout);
    assert!(status.stdout.contains("new replicas have been updated") || status.stdout.contains("old replicas are pending termination"), "{}", status.stdout);
    assert!(samples.len() >= 10, "too few samples: {samples:?}");
    let min_ready = samples.iter().map(|s| s.0).min().unwrap_or(0);
    assert!(min_ready >= 4, "ready pods dropped to {min_ready} during a maxUnavailable=0 rollout; samples (ready, live, new ready): {samples:?}");
    let max_live = samples.iter().map(|s| s.1).max().unwrap_or(0);
    assert!(max_live <= 5, "more than replicas+maxSurge live pods ({max_live}); samples: {samples:?}");
    assert_eq!(samples[0].2, 0, "sampling started after the rollout: {samples:?}");
    assert!(samples.iter().any(|s| s.2 > 0 && s.2 < 4), "no sample caught the rollout midway: {samples:?}");
    let ps = wait_exactly_ready(&c, "app=web", 4, Duration::from_secs(60));
    assert!(ps.iter().all(|p| p["spec"]["containers"][0]["image"] == v2.as_str()));
    let template_image = |c: &Cluster| c.kubectl(&["get", "deploy", "web", "-o=jsonpath={.spec.template.spec.containers[0].image}"]).ok().to_string();
    assert_eq!(template_image(&c), v2);

    // Two ReplicaSets: the old one scaled to 0, the new one at 4.
    let rs = c.kubectl(&["get", "rs", "-l", "app=web"]).ok().to_string();
    let rows: Vec<Vec<String>> = rs.lines().skip(1).map(cells).collect();
    assert_eq!(rs.lines().next().map(cells), Some(vec!["NAME".to_string(), "DESIRED".into(), "CURRENT".into(), "READY".into(), "AGE".into()]), "{rs}");
    let mut counts: Vec<(String, String, String)> = rows.iter().map(|r| (r[1].clone(), r[2].clone(), r[3].clone())).collect();
    counts.sort();
    assert_eq!(counts, vec![("0".into(), "0".into(), "0".into()), ("4".into(), "4".into(), "4".into())], "{rs}");
    assert!(rows.iter().all(|r| r[0].starts_with("web-")), "{rs}");

    assert_eq!(revisions(&c), ["1", "2"]);
    let r = c.kubectl(&["rollout", "history", "deploy/web", "--revision=2"]);
    assert!(r.ok().starts_with("deployment.apps/web with revision #2\n"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("Image:\t{v2}")) || r.stdout.contains(&v2), "{}", r.stdout);

    // Undo returns the first template as revision 3.
    let r = c.kubectl(&["rollout", "undo", "deploy/web"]);
    assert_eq!(r.ok(), "deployment.apps/web rolled back\n");
    let r = c.kubectl(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    assert!(r.ok().ends_with("deployment \"web\" successfully rolled out\n"), "{}", r.stdout);
    assert_eq!(template_image(&c), v1);
    assert_eq!(revisions(&c), ["2", "3"]);
    assert_eq!(c.kubectl(&["get", "deploy", "web", r#"-o=jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision}"#]).ok(), "3");
    let ps = wait_exactly_ready(&c, "app=web", 4, Duration::from_secs(60));
    assert!(ps.iter().all(|p| p["spec"]["containers"][0]["image"] == v1.as_str()));

    // Scale up and down.
    assert_eq!(c.kubectl(&["scale", "deploy/web", "--replicas=6"]).ok(), "deployment.apps/web scaled\n");
    wait_exactly_ready(&c, "app=web", 6, Duration::from_secs(60));
    wait_for(Duration::from_secs(30), "deploy web 6/6", || {
        let row = table_row(&c, &["get", "deploy", "web"], DEPLOY_HEADER);
        (row[1..4] == ["6/6", "6", "6"]).then_some(())
    });
    assert_eq!(c.kubectl(&["scale", "deploy/web", "--replicas=2"]).ok(), "deployment.apps/web scaled\n");
    wait_exactly_ready(&c, "app=web", 2, Duration::from_secs(60));
    wait_for(Duration::from_secs(30), "deploy web 2/2", || {
        let row = table_row(&c, &["get", "deploy", "web"], DEPLOY_HEADER);
        (row[1..4] == ["2/2", "2", "2"]).then_some(())
    });
    assert_eq!(c.kubectl(&["get", "deploy", "web", "-o=jsonpath={.status.replicas} {.status.updatedReplicas} {.status.readyReplicas} {.status.availableReplicas}"]).ok(), "2 2 2 2");
}

/// One `kubectl get pods -w --output-watch-events` line as (EVENT, NAME, READY, STATUS).
fn watch_row(line: &str) -> Option<(String, String, String, String)> {
    let c = cells(line);
    (c.len() >= 4 && c[0] != "EVENT").then(|| (c[0].clone(), c[1].clone(), c[2].clone(), c[3].clone()))
}

#[test]
fn workloads_statefulset_ordering_through_a_watch() {
    let c = Cluster::start_with(&["--nodes", "2"]);
    let watch = KubectlStream::start(&c, &["get", "pods", "-w", "--output-watch-events", "-l", "app=st"]);
    // The watch has started once kubectl printed its (empty) list; give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    c.apply(&format!(
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: web}}
spec:
  replicas: 3
  serviceName: web
  selector: {{matchLabels: {{app: st}}}}
  template:
    metadata: {{labels: {{app: st}}}}
    spec:
      containers:
      - name: web
        image: {img}
        ports: [{{containerPort: 8080}}]
"#,
        img = guest("hello-http")
    ));
    let r = c.kubectl(&["rollout", "status", "sts/web", "--timeout=90s"]);
    assert!(r.ok().ends_with("partitioned roll out complete: 3 new pods have been updated...\n"), "{}", r.stdout);
    let rows = wait_for(Duration::from_secs(30), "watch shows web-2 Ready", || {
        let rows: Vec<_> = watch.lines().iter().filter_map(|l| watch_row(l)).collect();
        rows.iter().any(|r| r.1 == "web-2" && r.2 == "1/1").then_some(rows)
    });
    let first = |pred: &dyn Fn(&(String, String, String, String)) -> bool| rows.iter().position(|r| pred(r));
    for (prev, next) in [("web-0", "web-1"), ("web-1", "web-2")] {
        let prev_ready = first(&|r| r.1 == prev && r.2 == "1/1" && r.3 == "Running").unwrap_or_else(|| panic!("{prev} never Ready in {rows:?}"));
        let next_added = first(&|r| r.1 == next && r.0 == "ADDED").unwrap_or_else(|| panic!("{next} never ADDED in {rows:?}"));
        assert!(prev_ready < next_added, "{next} created before {prev} was Ready: {rows:#?}");
    }
    // Stable identities.
    assert_eq!(c.pod_jsonpath("web-1", "{.spec.hostname} {.spec.subdomain}"), "web-1 web");

    // Scale down: web-2 goes completely before web-1 starts terminating.
    assert_eq!(c.kubectl(&["scale", "sts/web", "--replicas=1"]).ok(), "statefulset.apps/web scaled\n");
    let rows = wait_for(Duration::from_secs(60), "watch shows web-1 DELETED", || {
        let rows: Vec<_> = watch.lines().iter().filter_map(|l| watch_row(l)).collect();
        rows.iter().any(|r| r.1 == "web-1" && r.0 == "DELETED").then_some(rows)
    });
    let web2_deleted = rows.iter().position(|r| r.1 == "web-2" && r.0 == "DELETED").unwrap_or_else(|| panic!("web-2 never DELETED: {rows:#?}"));
    let web1_going = rows.iter().position(|r| r.1 == "web-1" && (r.0 == "DELETED" || r.3 == "Terminating")).expect("web-1 going");
    assert!(web2_deleted < web1_going, "web-1 began terminating before web-2 was gone: {rows:#?}");
    assert!(!rows.iter().any(|r| r.1 == "web-0" && (r.0 == "DELETED" || r.3 == "Terminating")), "web-0 was removed: {rows:#?}");
    let ps = wait_exactly_ready(&c, "app=st", 1, Duration::from_secs(30));
    assert_eq!(name(&ps[0]), "web-0");
}

fn daemonset() -> String {
    format!(
        r#"apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agent}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec:
      containers:
      - name: agent
        image: {img}
        ports: [{{containerPort: 8080}}]
"#,
        img = guest("hello-http")
    )
}

const DS_HEADER: &[&str] = &["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"];

#[test]
fn workloads_daemonset_on_every_node_and_a_late_node() {
    let c = Cluster::start_with(&["--nodes", "3"]);
    c.apply(&daemonset());
    let r = c.kubectl(&["rollout", "status", "ds/agent", "--timeout=90s"]);
    assert!(r.ok().ends_with("daemon set \"agent\" successfully rolled out\n"), "{}", r.stdout);
    let ps = wait_exactly_ready(&c, "app=agent", 3, Duration::from_secs(60));
    let on: Vec<String> = {
        let mut v: Vec<String> = ps.iter().map(node_of).collect();
        v.sort();
        v
    };
    assert_eq!(on, node_names(3));
    assert_eq!(table_row(&c, &["get", "ds", "agent"], DS_HEADER)[1..7], ["3", "3", "3", "3", "3", "<none>"]);

    // A node process that joins later gets its own pod.
    let mut late = NodeProcess::start(&c, "late-node");
    let ps = wait_exactly_ready(&c, "app=agent", 4, Duration::from_secs(60));
    let mut on: Vec<String> = ps.iter().map(node_of).collect();
    on.sort();
    let mut want = node_names(3);
    want.push("late-node".into());
    want.sort();
    assert_eq!(on, want);
    wait_for(Duration::from_secs(30), "ds agent 4/4", || {
        let row = table_row(&c, &["get", "ds", "agent"], DS_HEADER);
        (row[1..6] == ["4", "4", "4", "4", "4"]).then_some(())
    });
    let late_pod = ps.iter().find(|p| node_of(p) == "late-node").map(name).expect("pod on late-node");
    let out = c.kubectl(&["get", "pod", &late_pod, "-o", "wide"]).ok().to_string();
    assert!(out.lines().nth(1).is_some_and(|l| cells(l).get(6).map(String::as_str) == Some("late-node")), "{out}");
    late.kill();
}

#[test]
fn workloads_cordon_and_drain_move_pods() {
    let c = Cluster::start_with(&["--nodes", "3"]);
    c.apply(&daemonset());
    c.apply(&deployment(3, &guest("hello-http")));
    wait_exactly_ready(&c, "app=agent", 3, Duration::from_secs(60));
    let ps = wait_exactly_ready(&c, "app=web", 3, Duration::from_secs(60));
    let target = node_names(3)[0].clone();
    let on_target: BTreeSet<String> = ps.iter().filter(|p| node_of(p) == target).map(name).collect();
    assert!(!on_target.is_empty(), "no web pod on {target}: {:?}", ps.iter().map(|p| (name(p), node_of(p))).collect::<Vec<_>>());

    assert_eq!(c.kubectl(&["cordon", &target]).ok(), format!("node/{target} cordoned\n"));
    let row = table_row(&c, &["get", "node", &target], &["NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
    assert_eq!(row[1], "Ready,SchedulingDisabled");
    // New pods avoid the cordoned node.
    c.kubectl(&["scale", "deploy/web", "--replicas=6"]).ok();
    let ps = wait_exactly_ready(&c, "app=web", 6, Duration::from_secs(60));
    let now_on_target: BTreeSet<String> = ps.iter().filter(|p| node_of(p) == target).map(name).collect();
    assert_eq!(now_on_target, on_target, "new pods were placed on cordoned {target}");

    let r = c.kubectl(&["drain", &target, "--ignore-daemonsets", "--delete-emptydir-data", "--force", "--timeout=60s"]);
    let out = r.ok().to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first().copied(), Some(format!("node/{target} already cordoned").as_str()), "{out}");
    assert_eq!(lines.last().copied(), Some(format!("node/{target} drained").as_str()), "{out}");
    for p in &on_target {
        assert!(lines.contains(&format!("evicting pod default/{p}").as_str()), "{out}");
        assert!(lines.contains(&format!("pod/{p} evicted").as_str()), "{out}");
    }
    assert!(r.stderr.contains("Warning: ignoring DaemonSet-managed Pods: default/agent-"), "{}", r.stderr);

    // The Deployment is whole again, on the other nodes; the DaemonSet pod stays.
    let ps = wait_exactly_ready(&c, "app=web", 6, Duration::from_secs(60));
    assert!(ps.iter().all(|p| node_of(p) != target), "{:?}", ps.iter().map(|p| (name(p), node_of(p))).collect::<Vec<_>>());
    let ds = pods(&c, "app=agent");
    assert!(ds.iter().any(|p| node_of(p) == target && ready(p)), "DaemonSet pod left {target}");
    assert_eq!(c.kubectl(&["uncordon", &target]).ok(), format!("node/{target} uncordoned\n"));
    let row = table_row(&c, &["get", "node", &target], &["NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
    assert_eq!(row[1], "Ready");
}

#[test]
fn workloads_killed_node_pods_recreated_elsewhere() {
    let c = Cluster::start_sub("server", &[], &[("FLOTILLA_NODE_MONITOR_GRACE_SECONDS", "15"), ("FLOTILLA_DEFAULT_TOLERATION_SECONDS", "5")]);
    let _a = NodeProcess::start(&c, "node-a");
    let mut b = NodeProcess::start(&c, "node-b");
    c.apply(&deployment(4, &guest("hello-http")));
    let ps = wait_exactly_ready(&c, "app=web", 4, Duration::from_secs(60));
    assert_eq!(b.name, "node-b");
    let on_b: Vec<String> = ps.iter().filter(|p| node_of(p) == "node-b").map(name).collect();
    assert!(!on_b.is_empty() && on_b.len() < 4, "pods not spread over both nodes: {:?}", ps.iter().map(|p| (name(p), node_of(p))).collect::<Vec<_>>());
    // The default tolerations carry the shortened tolerationSeconds.
    let tol = c.pod_jsonpath(&on_b[0], r#"{.spec.tolerations[?(@.key=="node.kubernetes.io/unreachable")].tolerationSeconds}"#);
    assert_eq!(tol, "5");

    let killed = Instant::now();
    b.kill();
    wait_for(Duration::from_secs(60), "node-b NotReady", || {
        let row = table_row(&c, &["get", "node", "node-b"], &["NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
        (row[1] == "NotReady").then_some(())
    });
    let noticed = killed.elapsed();
    assert!(noticed >= Duration::from_secs(5), "node-b marked NotReady only {noticed:?} after the kill (grace 15 s)");
    assert_eq!(
        c.kubectl(&["get", "node", "node-b", r#"-o=jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].reason}"#]).ok(),
        "Unknown NodeStatusUnknown"
    );
    let taints = c.kubectl(&["get", "node", "node-b", "-o=jsonpath={range .spec.taints[*]}{.key}:{.effect} {end}"]).ok().to_string();
    assert!(taints.contains("node.kubernetes.io/unreachable:NoExecute"), "{taints}");
    assert!(taints.contains("node.kubernetes.io/unreachable:NoSchedule"), "{taints}");
    assert_eq!(table_row(&c, &["get", "node", "node-a"], &["NAME", "STATUS", "ROLES", "AGE", "VERSION"])[1], "Ready");

    // After tolerationSeconds the pods are evicted and recreated on node-a.
    let ps = wait_for(Duration::from_secs(90), "4 Ready web pods on node-a", || {
        let ps: Vec<Value> = pods(&c, "app=web").into_iter().filter(live).collect();
        (ps.len() == 4 && ps.iter().all(|p| ready(p) && node_of(p) == "node-a")).then_some(ps)
    });
    for p in &on_b {
        assert!(!ps.iter().any(|q| &name(q) == p), "{p} still counted live");
    }
    // Before their eviction the pods on node-b were marked not Ready.
    let events = c.kubectl(&["get", "events", r#"-o=jsonpath={range .items[?(@.reason=="NodeNotReady")]}{.involvedObject.kind}/{.involvedObject.name}: {.message}{"\n"}{end}"#]).ok().to_string();
    for p in &on_b {
        assert!(events.contains(&format!("Pod/{p}: Node is not ready")), "{p}: {events}");
    }
    // READY/UP-TO-DATE/AVAILABLE catch up (availability waits minReadySeconds).
    let start = Instant::now();
    loop {
        let row = table_row(&c, &["get", "deploy", "web"], DEPLOY_HEADER);
        if row[1..4] == ["4/4", "4", "4"] {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let rs = c.kubectl(&["get", "rs", "-l", "app=web", "-o=jsonpath={range .items[*]}{.metadata.name} {.spec.replicas} {.status}{\"\\n\"}{end}"]).stdout;
            let all = c.kubectl(&["get", "pods", "-o", "wide"]).stdout;
            panic!("deploy web row {row:?} with 4 Ready pods on node-a\nreplicasets:\n{rs}\npods:\n{all}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn workloads_unschedulable_pod_reports_failed_scheduling() {
    let c = Cluster::start_with(&["--nodes", "2"]);
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: hog}}
spec:
  containers:
  - name: c
    image: {img}
    resources: {{requests: {{memory: 10Ti}}}}
"#,
        img = guest("hello-http")
    ));
    let want = "0/2 nodes are available: 2 Insufficient memory.";
    let out = wait_for(Duration::from_secs(30), "FailedScheduling event", || {
        let out = c.kubectl(&["describe", "pod", "hog"]).ok().to_string();
        out.contains(want).then_some(out)
    });
    let event = out.lines().find(|l| l.contains(want)).expect("event line");
    let ev = cells(event);
    assert_eq!(ev[..2], ["Warning", "FailedScheduling"], "{event}");
    assert_eq!(ev[3], "default-scheduler", "{event}");
    assert!(out.lines().any(|l| cells(l) == ["PodScheduled", "False"]), "{out}");
    assert_eq!(c.pod_jsonpath("hog", r#"{.status.phase} {.status.conditions[?(@.type=="PodScheduled")].status} {.status.conditions[?(@.type=="PodScheduled")].reason}"#), "Pending False Unschedulable");
    assert_eq!(c.pod_jsonpath("hog", "{.spec.nodeName}"), "");
    let row = crate::node_pods::pod_row(&c, "hog").expect("hog listed");
    assert_eq!(row[1..3], ["0/1", "Pending"]);

    // Retried when nodes change: a cordoned node now fails for another reason.
    let first = &node_names(2)[0];
    c.kubectl(&["cordon", first]).ok();
    let want = "0/2 nodes are available: 1 Insufficient memory, 1 node(s) were unschedulable.";
    wait_for(Duration::from_secs(30), "FailedScheduling after cordon", || {
        let out = c.kubectl(&["describe", "pod", "hog"]).ok().to_string();
        out.contains(want).then_some(())
    });
    assert_eq!(c.pod_jsonpath("hog", "{.spec.nodeName}"), "");
}
