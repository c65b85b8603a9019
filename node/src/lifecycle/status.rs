//! What the node knows about a pod's containers (their records) and the PodStatus that
//! adds up to, worded as the kubelet words it. Pure: times are passed in.
//!
//! Invariants: a condition's lastTransitionTime changes only when its status flips; the
//! phase follows the kubelet's rules (`phase`).

use super::backoff::should_restart_init;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

/// A container's state as the API reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum ContainerState {
    Waiting { reason: String, message: String },
    Running { started_at: DateTime<Utc> },
    Terminated { exit_code: i32, reason: String, message: String, started_at: DateTime<Utc>, finished_at: DateTime<Utc> },
}

/// What the node knows about one container.
#[derive(Clone, Debug)]
pub struct ContainerRecord {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub state: ContainerState,
    pub last_terminated: Option<ContainerState>,
    pub restart_count: u32,
    pub ready: bool,
    /// Running, but its startup probe has not succeeded yet (`started: false`).
    pub starting: bool,
    pub container_id: String,
}

impl ContainerRecord {
    pub fn new(name: &str, image: &str, initial_reason: &str) -> Self {
        ContainerRecord {
            name: name.to_string(),
            image: image.to_string(),
            image_id: String::new(),
            state: ContainerState::Waiting { reason: initial_reason.to_string(), message: String::new() },
            last_terminated: None,
            restart_count: 0,
            ready: false,
            starting: false,
            container_id: String::new(),
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self.state, ContainerState::Running { .. })
    }
}

/// The pod-level facts the status is computed from.
#[derive(Clone, Debug, Default)]
pub struct PodRecord {
    pub init: Vec<ContainerRecord>,
    pub main: Vec<ContainerRecord>,
    pub initialized: bool,
    /// Set when the pod ended for a pod-level reason (DeadlineExceeded).
    pub failed: Option<(String, String)>,
    pub pod_ip: String,
    pub host_ip: String,
    pub start_time: Option<DateTime<Utc>>,
    /// Pod conditions' transition times, kept stable across reports.
    pub transitions: Vec<(String, bool, DateTime<Utc>)>,
}

impl PodRecord {
    /// Every container runs and is ready: the ContainersReady and Ready conditions.
    pub fn containers_ready(&self) -> bool {
        !self.main.is_empty() && self.main.iter().all(|c| c.is_running() && c.ready)
    }
}

pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn state_json(s: &ContainerState) -> Value {
    match s {
        ContainerState::Waiting { reason, message } => {
            let mut w = json!({"reason": reason});
            if !message.is_empty() {
                w["message"] = json!(message);
            }
            json!({"waiting": w})
        }
        ContainerState::Running { started_at } => json!({"running": {"startedAt": ts(*started_at)}}),
        ContainerState::Terminated { exit_code, reason, message, started_at, finished_at } => {
            let mut t = json!({"exitCode": exit_code, "reason": reason, "startedAt": ts(*started_at), "finishedAt": ts(*finished_at)});
            if !message.is_empty() {
                t["message"] = json!(message);
            }
            json!({"terminated": t})
        }
    }
}

fn container_json(c: &ContainerRecord) -> Value {
    let mut v = json!({
        "name": c.name,
        "image": c.image,
        "imageID": c.image_id,
        "ready": c.ready,
        "restartCount": c.restart_count,
        "started": c.is_running() && !c.starting,
        "state": state_json(&c.state),
        "lastState": c.last_terminated.as_ref().map(state_json).unwrap_or_else(|| json!({})),
    });
    if !c.container_id.is_empty() {
        v["containerID"] = json!(c.container_id);
    }
    v
}

/// The pod phase, as the kubelet derives it from container states.
pub fn phase(rec: &PodRecord, restart_policy: &str) -> &'static str {
    if rec.failed.is_some() {
        return "Failed";
    }
    if !rec.initialized {
        let failed_for_good = rec.init.iter().any(|c| {
            matches!(c.state, ContainerState::Terminated { exit_code, .. } if exit_code != 0 && !should_restart_init(restart_policy, exit_code))
        });
        return if failed_for_good { "Failed" } else { "Pending" };
    }
    let fresh = rec.main.iter().any(|c| matches!(c.state, ContainerState::Waiting { .. }) && c.restart_count == 0 && c.last_terminated.is_none());
    if fresh {
        return "Pending";
    }
    if rec.main.iter().any(|c| c.is_running() || matches!(c.state, ContainerState::Waiting { .. })) {
        return "Running";
    }
    if rec.main.iter().all(|c| matches!(c.state, ContainerState::Terminated { exit_code: 0, .. })) {
        "Succeeded"
    } else {
        "Failed"
    }
}

/// The PodStatus JSON.
pub fn pod_status(rec: &mut PodRecord, restart_policy: &str, now: DateTime<Utc>) -> Value {
    let phase = phase(rec, restart_policy);
    let containers_ready = rec.containers_ready();
    let conds = [
        ("PodScheduled", true),
        ("Initialized", rec.initialized),
        ("ContainersReady", containers_ready),
        ("Ready", containers_ready),
    ];
    let mut conditions = Vec::new();
    for (t, status) in conds {
        let at = match rec.transitions.iter_mut().find(|(n, _, _)| n == t) {
            Some(entry) if entry.1 == status => entry.2,
            Some(entry) => {
                entry.1 = status;
                entry.2 = now;
                now
            }
            None => {
                rec.transitions.push((t.to_string(), status, now));
                now
            }
        };
        let mut c = json!({"type": t, "status": if status { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": ts(at)});
        if !status && (t == "ContainersReady" || t == "Ready") {
            let not_ready: Vec<&str> = rec.main.iter().filter(|c| !(c.is_running() && c.ready)).map(|c| c.name.as_str()).collect();
            c["reason"] = json!("ContainersNotReady");
            c["message"] = json!(format!("containers with unready status: [{}]", not_ready.join(" ")));
        }
        if !status && t == "Initialized" {
            let pending: Vec<&str> = rec
                .init
                .iter()
                .filter(|c| !matches!(c.state, ContainerState::Terminated { exit_code: 0, .. }))
                .map(|c| c.name.as_str())
                .collect();
            c["reason"] = json!("ContainersNotInitialized");
            c["message"] = json!(format!("containers with incomplete status: [{}]", pending.join(" ")));
        }
        conditions.push(c);
    }
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": rec.host_ip,
        "hostIPs": [{"ip": rec.host_ip}],
        "containerStatuses": rec.main.iter().map(container_json).collect::<Vec<_>>(),
    });
    if !rec.pod_ip.is_empty() {
        status["podIP"] = json!(rec.pod_ip);
        status["podIPs"] = json!([{"ip": rec.pod_ip}]);
    }
    if let Some(t) = rec.start_time {
        status["startTime"] = json!(ts(t));
    }
    if !rec.init.is_empty() {
        status["initContainerStatuses"] = Value::Array(rec.init.iter().map(container_json).collect());
    }
    if let Some((reason, message)) = &rec.failed {
        status["reason"] = json!(reason);
        status["message"] = json!(message);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).expect("time")
    }

    fn running(name: &str) -> ContainerRecord {
        let mut c = ContainerRecord::new(name, "img", "ContainerCreating");
        c.state = ContainerState::Running { started_at: t(0) };
        c.ready = true;
        c
    }

    fn terminated(name: &str, code: i32) -> ContainerRecord {
        let mut c = ContainerRecord::new(name, "img", "ContainerCreating");
        c.state = ContainerState::Terminated { exit_code: code, reason: if code == 0 { "Completed" } else { "Error" }.into(), message: String::new(), started_at: t(0), finished_at: t(1) };
        c
    }

    #[test]
    fn phases_follow_container_states() {
        let mut rec = PodRecord { initialized: true, ..Default::default() };
        rec.main = vec![ContainerRecord::new("a", "img", "ContainerCreating")];
        assert_eq!(phase(&rec, "Always"), "Pending");
        rec.main = vec![running("a"), terminated("b", 0)];
        assert_eq!(phase(&rec, "Never"), "Running");
        rec.main = vec![terminated("a", 0), terminated("b", 0)];
        assert_eq!(phase(&rec, "Never"), "Succeeded");
        rec.main = vec![terminated("a", 0), terminated("b", 3)];
        assert_eq!(phase(&rec, "Never"), "Failed");
        let mut backing_off = terminated("a", 1);
        backing_off.last_terminated = Some(backing_off.state.clone());
        backing_off.state = ContainerState::Waiting { reason: "CrashLoopBackOff".into(), message: String::new() };
        backing_off.restart_count = 1;
        rec.main = vec![backing_off];
        assert_eq!(phase(&rec, "Always"), "Running");
        rec.initialized = false;
        rec.init = vec![terminated("i", 1)];
        assert_eq!(phase(&rec, "Never"), "Failed");
        assert_eq!(phase(&rec, "OnFailure"), "Pending");
    }

    #[test]
    fn status_reports_conditions_and_keeps_transition_times() {
        let mut rec = PodRecord { initialized: true, host_ip: "127.0.0.1".into(), pod_ip: "10.1.0.2".into(), ..Default::default() };
        rec.main = vec![ContainerRecord::new("a", "img", "ContainerCreating")];
        let s = pod_status(&mut rec, "Always", t(0));
        assert_eq!(s["phase"], "Pending");
        assert_eq!(s["conditions"][3]["status"], "False");
        assert_eq!(s["containerStatuses"][0]["state"]["waiting"]["reason"], "ContainerCreating");
        rec.main = vec![running("a")];
        let s = pod_status(&mut rec, "Always", t(5));
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["conditions"][3], json!({"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": ts(t(5))}));
        assert_eq!(s["conditions"][0]["lastTransitionTime"], ts(t(0)));
        assert_eq!(s["podIP"], "10.1.0.2");
    }
}
