//! Jobs and CronJobs on a multi-node cluster, driven by the real kubectl: a Job whose
//! first pod fails and whose retry completes, a Job failing at its backoffLimit, an
//! Indexed Job whose pods see JOB_COMPLETION_INDEX, and a CronJob (on a faster control
//! plane clock) creating jobs on schedule and pruning its history, plus
//! `kubectl create job --from=cronjob/…`.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Cluster, guest, wait_for};
use crate::node_pods::cells;
use crate::workloads::{node_names, pods};

fn job_status(c: &Cluster, job: &str) -> Value {
    let r = c.kubectl(&["get", "job", job, "-o=jsonpath={.status}"]);
    serde_json::from_str(r.ok()).unwrap_or(Value::Null)
}

/// (STATUS, COMPLETIONS) of `kubectl get job NAME`.
#[track_caller]
fn job_row(c: &Cluster, job: &str) -> (String, String) {
    let out = c.kubectl(&["get", "job", job]).ok().to_string();
    let mut lines = out.lines();
    assert_eq!(lines.next().map(cells), Some(["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"].map(String::from).to_vec()), "{out}");
    let row = lines.next().map(cells).unwrap_or_default();
    assert_eq!(row.first().map(String::as_str), Some(job), "{out}");
    (row[1].clone(), row[2].clone())
}

/// (pod name, STATUS column) of every pod of a Job, oldest first.
fn job_pod_statuses(c: &Cluster, job: &str) -> Vec<(String, String)> {
    let out = c.kubectl(&["get", "pods", "-l", &format!("job-name={job}"), "--sort-by=.metadata.creationTimestamp"]).ok().to_string();
    out.lines().skip(1).map(cells).map(|r| (r[0].clone(), r[2].clone())).collect()
}

#[test]
fn workloads_batch_jobs_retry_fail_and_index() {
    let c = Cluster::start_with(&["--nodes", "2"]);
    let cmd = guest("hello-cmd");
    let node = &node_names(2)[1];
    // `flaky`: a node-local claim directory survives from one pod to the next. Container
    // `check` fails (exit 2) while the marker is missing; `mark` writes it a moment later.
    // So the first pod fails and its replacement, on the same node, succeeds.
    c.apply(&format!(
        r#"apiVersion: batch/v1
kind: Job
metadata: {{name: flaky}}
spec:
  backoffLimit: 3
  template:
    spec:
      restartPolicy: Never
      nodeSelector: {{kubernetes.io/hostname: {node}}}
      volumes: [{{name: state, persistentVolumeClaim: {{claimName: flaky-state}}}}]
      containers:
      - name: check
        image: {cmd}
        args: ["--read", "/state/marker"]
        volumeMounts: [{{name: state, mountPath: /state}}]
      - name: mark
        image: {cmd}
        args: ["--sleep-ms", "300", "--write", "/state/marker", "seen"]
        volumeMounts: [{{name: state, mountPath: /state}}]
---
apiVersion: batch/v1
kind: Job
metadata: {{name: doomed}}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: {cmd}
        args: ["--exit", "3"]
---
apiVersion: batch/v1
kind: Job
metadata: {{name: idx}}
spec:
  completions: 3
  parallelism: 3
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: {cmd}
        args: ["--env", "JOB_COMPLETION_INDEX", "--all-env"]
"#
    ));

    // Indexed: three pods NAME-INDEX-xxxxx, each seeing its own index.
    let r = c.kubectl(&["wait", "--for=condition=complete", "job/idx", "--timeout=60s"]);
    assert_eq!(r.ok(), "job.batch/idx condition met\n");
    assert_eq!(job_row(&c, "idx"), ("Complete".into(), "3/3".into()));
    let ps = pods(&c, "job-name=idx");
    assert_eq!(ps.len(), 3, "{ps:?}");
    let mut seen = BTreeSet::new();
    for p in &ps {
        let name = p["metadata"]["name"].as_str().expect("name");
        let index = p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"].as_str().expect("index annotation").to_string();
        assert!(name.starts_with(&format!("idx-{index}-")), "{name} for index {index}");
        assert_eq!(p["spec"]["hostname"].as_str(), Some(format!("idx-{index}").as_str()));
        assert_eq!(p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"].as_str(), Some(index.as_str()));
        let logs = c.kubectl(&["logs", name]).ok().to_string();
        let line = format!("env: JOB_COMPLETION_INDEX={index}");
        assert!(logs.lines().any(|l| l == line), "{line} missing from logs of {name}:\n{logs}");
        seen.insert(index);
    }
    assert_eq!(seen, ["0", "1", "2"].map(String::from).into_iter().collect());
    assert_eq!(c.kubectl(&["get", "job", "idx", "-o=jsonpath={.status.completedIndexes} {.status.succeeded}"]).ok(), "0-2 3");

    // doomed: the first pod fails, one retry fails too, the Job fails at backoffLimit 1.
    let r = c.kubectl(&["wait", "--for=condition=failed", "job/doomed", "--timeout=120s"]);
    assert_eq!(r.ok(), "job.batch/doomed condition met\n");
    assert_eq!(job_row(&c, "doomed"), ("Failed".into(), "0/1".into()));
    let st = job_status(&c, "doomed");
    assert_eq!(st["failed"], 2, "{st}");
    let failed = st["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == "Failed")).cloned().unwrap_or_default();
    assert_eq!((failed["status"].as_str(), failed["reason"].as_str()), (Some("True"), Some("BackoffLimitExceeded")), "{st}");
    let statuses = job_pod_statuses(&c, "doomed");
    assert_eq!(statuses.iter().map(|s| s.1.as_str()).collect::<Vec<_>>(), ["Error", "Error"], "{statuses:?}");
    let describe = c.kubectl(&["describe", "job", "doomed"]).ok().to_string();
    assert!(describe.contains("BackoffLimitExceeded") && describe.contains("Job has reached the specified backoff limit"), "{describe}");
    // A failed job never reports Complete.
    let r = c.kubectl(&["wait", "--for=condition=complete", "job/doomed", "--timeout=1s"]);
    assert_ne!(r.code, 0);

    // flaky: one failure, then the retry completes.
    let r = c.kubectl(&["wait", "--for=condition=complete", "job/flaky", "--timeout=120s"]);
    assert_eq!(r.ok(), "job.batch/flaky condition met\n");
    assert_eq!(job_row(&c, "flaky"), ("Complete".into(), "1/1".into()));
    let st = job_status(&c, "flaky");
    assert_eq!((st["failed"].as_i64(), st["succeeded"].as_i64()), (Some(1), Some(1)), "{st}");
    let statuses = job_pod_statuses(&c, "flaky");
    assert_eq!(statuses.iter().map(|s| s.1.as_str()).collect::<Vec<_>>(), ["Error", "Completed"], "{statuses:?}");
    let first = &statuses[0].0;
    assert_eq!(c.pod_jsonpath(first, r#"{.status.containerStatuses[?(@.name=="check")].state.terminated.exitCode}"#), "2");
}

/// Jobs labelled cron=NAME: (name, finished).
fn cron_jobs(c: &Cluster, cron: &str) -> Vec<(String, bool)> {
    let r = c.kubectl(&["get", "jobs", "-l", &format!("cron={cron}"), "-o", "json"]);
    let v: Value = if r.code == 0 { serde_json::from_str(&r.stdout).unwrap_or(Value::Null) } else { Value::Null };
    v["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|j| {
                    let finished = j["status"]["conditions"]
                        .as_array()
                        .is_some_and(|cs| cs.iter().any(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True"));
                    (j["metadata"]["name"].as_str().unwrap_or_default().to_string(), finished)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn cronjob(name: &str, suspend: bool) -> String {
    cronjob_in(name, suspend, "null")
}

fn cronjob_in(name: &str, suspend: bool, time_zone: &str) -> String {
    format!(
        r#"apiVersion: batch/v1
kind: CronJob
metadata: {{name: {name}}}
spec:
  schedule: "*/1 * * * *"
  timeZone: {time_zone}
  suspend: {suspend}
  successfulJobsHistoryLimit: 2
  failedJobsHistoryLimit: 1
  jobTemplate:
    metadata: {{labels: {{cron: {name}}}}}
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: c
            image: {img}
            args: ["--exit", "0"]
"#,
        img = guest("hello-cmd")
    )
}

#[test]
fn workloads_batch_cronjob_schedules_and_prunes() {
    // 30x clock: `*/1` is due every 2 real seconds.
    let c = Cluster::start_with(&["--nodes", "2", "--clock-rate", "30"]);
    c.apply(&cronjob("tick", false));
    c.apply(&cronjob("once", true));
    c.apply(&cronjob_in("zoned", false, "Asia/Kolkata"));
    // Zone names are checked against the tz database, with Kubernetes' message.
    let bad = c.kubectl_stdin(&["apply", "-f", "-"], &cronjob_in("bad", false, "Mars/Olympus"));
    assert!(
        bad.err().contains(r#"The CronJob "bad" is invalid: spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus"#),
        "{}",
        bad.stderr
    );
    let mut created = BTreeSet::new();
    let mut max_finished = 0;
    let mut over_limit = Vec::new();
    wait_for(Duration::from_secs(120), "5 scheduled jobs of which 3 pruned", || {
        let jobs = cron_jobs(&c, "tick");
        let finished = jobs.iter().filter(|j| j.1).count();
        max_finished = max_finished.max(finished);
        if finished > 2 {
            over_limit.push(jobs.clone());
        }
        for (n, _) in &jobs {
            created.insert(n.clone());
        }
        let present: BTreeSet<&String> = jobs.iter().map(|j| &j.0).collect();
        let pruned = created.iter().filter(|n| !present.contains(n)).count();
        (created.len() >= 5 && pruned >= 3).then_some(())
    });
    // Between a job finishing and the next CronJob pass a third finished job may be seen
    // briefly; never more.
    assert!(max_finished <= 3, "finished jobs kept: {over_limit:?}");
    // Names are tick-<scheduled minute>, and the newest are the ones kept.
    let minutes: Vec<i64> = created.iter().map(|n| n.strip_prefix("tick-").and_then(|m| m.parse().ok()).unwrap_or_else(|| panic!("job name {n}"))).collect();
    let kept = wait_for(Duration::from_secs(30), "at most 2 finished tick jobs", || {
        let jobs = cron_jobs(&c, "tick");
        (jobs.iter().filter(|j| j.1).count() <= 2).then_some(jobs)
    });
    let oldest_kept: i64 = kept.iter().filter_map(|j| j.0.strip_prefix("tick-")?.parse().ok()).min().unwrap_or(i64::MAX);
    let mut sorted = minutes.clone();
    sorted.sort();
    assert!(sorted[..3].iter().all(|m| *m < oldest_kept), "pruned jobs were not the oldest: created {sorted:?}, kept {kept:?}");

    let describe = c.kubectl(&["describe", "cronjob", "tick"]).ok().to_string();
    assert!(describe.contains("SuccessfulCreate") && describe.contains("Created job tick-"), "{describe}");
    assert!(describe.contains("SuccessfulDelete") && describe.contains("Deleted job tick-"), "{describe}");
    let st = c.kubectl(&["get", "cronjob", "tick", "-o=jsonpath={.status.lastScheduleTime} {.status.lastSuccessfulTime}"]).ok().to_string();
    assert_eq!(st.split(' ').filter(|s| s.ends_with('Z')).count(), 2, "{st}");
    let out = c.kubectl(&["get", "cronjob", "tick"]).ok().to_string();
    assert_eq!(out.lines().next().map(cells), Some(["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"].map(String::from).to_vec()), "{out}");
    assert_eq!(out.lines().nth(1).map(cells).map(|r| r[..4].to_vec()), Some(["tick", "*/1 * * * *", "<none>", "False"].map(String::from).to_vec()), "{out}");

    // A zoned CronJob runs on its zone's clock: the scheduled time carries its offset.
    let zoned = c.kubectl(&["get", "cronjob", "zoned"]).ok().to_string();
    assert_eq!(zoned.lines().nth(1).map(cells).map(|r| r[..3].to_vec()), Some(["zoned", "*/1 * * * *", "Asia/Kolkata"].map(String::from).to_vec()), "{zoned}");
    let stamp = wait_for(Duration::from_secs(60), "a job of the zoned CronJob", || {
        let out = c.kubectl(&["get", "jobs", "-l", "cron=zoned", r#"-o=jsonpath={.items[0].metadata.annotations.batch\.kubernetes\.io/cronjob-scheduled-timestamp}"#]);
        (out.code == 0 && !out.stdout.is_empty()).then(|| out.stdout.clone())
    });
    assert!(stamp.ends_with(":00+05:30"), "{stamp}");

    // The suspended CronJob made nothing; a job created from it runs to completion.
    assert!(cron_jobs(&c, "once").is_empty());
    assert_eq!(c.kubectl(&["create", "job", "--from=cronjob/once", "manual"]).ok(), "job.batch/manual created\n");
    let r = c.kubectl(&["wait", "--for=condition=complete", "job/manual", "--timeout=60s"]);
    assert_eq!(r.ok(), "job.batch/manual condition met\n");
    assert_eq!(
        c.kubectl(&["get", "job", "manual", r#"-o=jsonpath={.metadata.annotations.cronjob\.kubernetes\.io/instantiate} {.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name} {.metadata.labels.cron}"#]).ok(),
        "manual CronJob/once once"
    );
    assert_eq!(cron_jobs(&c, "once"), [("manual".to_string(), true)]);
}

/// Kubernetes expands `$(VAR)` in args from the container's env; the Indexed Job pattern
/// `args: ["--shard=$(JOB_COMPLETION_INDEX)"]` relies on it.
#[test]
fn workloads_batch_indexed_job_args_expand_the_index() {
    let c = Cluster::start_with(&["--nodes", "2"]);
    c.apply(&format!(
        r#"apiVersion: batch/v1
kind: Job
metadata: {{name: shard}}
spec:
  completions: 2
  parallelism: 2
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: {img}
        args: ["shard-$(JOB_COMPLETION_INDEX)", "$$(KEPT)"]
"#,
        img = guest("hello-cmd")
    ));
    let r = c.kubectl(&["wait", "--for=condition=complete", "job/shard", "--timeout=60s"]);
    assert_eq!(r.ok(), "job.batch/shard condition met\n");
    for p in pods(&c, "job-name=shard") {
        let name = p["metadata"]["name"].as_str().expect("name");
        let index = p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"].as_str().expect("index");
        let logs = c.kubectl(&["logs", name]).ok().to_string();
        assert!(logs.lines().any(|l| l == format!("arg: shard-{index}")), "{logs}");
        assert!(logs.lines().any(|l| l == "arg: $(KEPT)"), "{logs}");
    }
}
