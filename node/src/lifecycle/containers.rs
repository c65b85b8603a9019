//! Running transitions: init containers one at a time (each must succeed before the next
//! starts), then every container at once; an exited container is started again per
//! restartPolicy after the back-off (CrashLoopBackOff), else it stays terminated.
//!
//! Invariants: a container that exits while being killed is never restarted and raises
//! no Failed event; its restart count goes up when the restart happens, not at the exit;
//! the back-off resets after a run of `Backoff::reset_after`.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{ContainerState, Effect, Effects, EventType, Pending, Stage, State, Timer, should_restart, should_restart_init};
use crate::runtime::{ContainerKind, ExitReason};

impl State {
    /// All containers are set up: the first init container starts, or, without any, the
    /// containers do.
    pub(super) fn start_containers(&mut self, fx: &mut Effects) {
        if self.spec.first_main() > 0 {
            self.stage = Stage::Initializing(0);
            self.start_container(0, fx);
        } else {
            self.initialized(fx);
        }
    }

    /// The init containers all succeeded (or there are none): the containers start.
    fn initialized(&mut self, fx: &mut Effects) {
        self.record.initialized = true;
        for c in self.record.main.iter_mut() {
            if let ContainerState::Waiting { reason, .. } = &mut c.state
                && reason == "PodInitializing"
            {
                *reason = "ContainerCreating".into();
            }
        }
        fx.status();
        self.stage = Stage::Running;
        for i in self.spec.first_main()..self.containers.len() {
            self.start_container(i, fx);
        }
    }

    fn start_container(&mut self, i: usize, fx: &mut Effects) {
        // Init containers run to completion whatever their image is.
        let kind = if self.spec.containers[i].init { ContainerKind::Command } else { self.containers[i].kind.unwrap_or(ContainerKind::Command) };
        self.containers[i].kind = Some(kind);
        self.containers[i].busy = true;
        fx.push(Effect::StartContainer { container: i, kind });
    }

    pub(super) fn container_started(&mut self, i: usize, now: DateTime<Utc>, fx: &mut Effects) {
        let init = self.spec.containers[i].init;
        let container_id = format!("wasm://{}/{}/{}", self.spec.uid, self.spec.containers[i].name, self.containers[i].attempt);
        self.containers[i].kill_sent = false;
        let r = self.record_mut(i);
        r.state = ContainerState::Running { started_at: now };
        r.ready = !init;
        r.starting = false;
        r.container_id = container_id;
        fx.status();
        let name = &self.spec.containers[i].name;
        fx.event(EventType::Normal, "Created", format!("Created container: {name}"));
        fx.event(EventType::Normal, "Started", format!("Started container {name}"));
        self.start_probes(i, fx);
    }

    pub(super) fn start_failed(&mut self, i: usize, message: String, fx: &mut Effects) {
        self.containers[i].busy = false;
        self.waiting(i, "CreateContainerError", message.clone());
        fx.status();
        fx.event(EventType::Warning, "Failed", format!("Error: {message}"));
    }

    #[expect(clippy::too_many_arguments, reason = "the fields of Event::ContainerExited")]
    pub(super) fn container_exited(
        &mut self,
        i: usize,
        code: i32,
        reason: ExitReason,
        message: String,
        ran_for: Duration,
        now: DateTime<Utc>,
        fx: &mut Effects,
    ) {
        // A container killed for failing a probe runs again as after a failure.
        let probe_kill = std::mem::take(&mut self.containers[i].probing.killed_by_probe) && !self.killing;
        let killed = self.killing || (self.containers[i].kill_sent && !probe_kill);
        self.containers[i].busy = false;
        self.containers[i].kill_sent = false;
        let reason = match reason {
            ExitReason::Completed => "Completed",
            ExitReason::OOMKilled => "OOMKilled",
            ExitReason::Error | ExitReason::Killed => "Error",
        };
        let started_at = match self.record(i).state {
            ContainerState::Running { started_at } => started_at,
            _ => now,
        };
        let terminated = ContainerState::Terminated { exit_code: code, reason: reason.into(), message: message.clone(), started_at, finished_at: now };
        let spec = &self.spec.containers[i];
        let (init, name) = (spec.init, spec.name.clone());
        let policy = &self.spec.restart_policy;
        let restart = if probe_kill {
            policy != "Never"
        } else {
            !killed && if init { should_restart_init(policy, code) } else { should_restart(policy, code) }
        };
        if !restart {
            let r = self.record_mut(i);
            r.state = terminated;
            r.ready = false;
            r.starting = false;
            fx.status();
            if code != 0 && !killed && !probe_kill {
                let why = if message.is_empty() { reason } else { &message };
                fx.event(EventType::Warning, "Failed", format!("Container {name} failed: {why} (exit code {code})"));
            }
            if init {
                self.init_done(i, code == 0 && !killed, fx);
            }
            return;
        }
        let c = &mut self.containers[i];
        let (delay, level) = self.backoff.next(c.restart_level, ran_for);
        c.restart_level = level;
        c.pending = Some(Pending::Restart);
        let (pod, ns, uid) = (&self.spec.name, &self.spec.namespace, &self.spec.uid);
        let waiting = format!("back-off {}s restarting failed container={name} pod={pod}_{ns}({uid})", delay.as_secs());
        let event = format!("Back-off restarting failed container {name} in pod {pod}_{ns}({uid})");
        let r = self.record_mut(i);
        r.last_terminated = Some(terminated);
        r.state = ContainerState::Waiting { reason: "CrashLoopBackOff".into(), message: waiting };
        r.ready = false;
        r.starting = false;
        fx.status();
        fx.event(EventType::Warning, "BackOff", event);
        fx.arm(Timer::Restart(i), delay);
    }

    /// Init container `i` ended for good: the next one starts, or the containers do; after
    /// a failure nothing more starts.
    fn init_done(&mut self, i: usize, succeeded: bool, fx: &mut Effects) {
        if !succeeded {
            self.stage = Stage::Stopped;
            return;
        }
        let next = i + 1;
        if next < self.spec.first_main() {
            self.stage = Stage::Initializing(next);
            self.start_container(next, fx);
        } else {
            self.initialized(fx);
        }
    }

    /// The back-off is over: the container starts again.
    pub(super) fn restart(&mut self, i: usize, fx: &mut Effects) {
        if self.containers[i].pending != Some(Pending::Restart) {
            return;
        }
        self.containers[i].pending = None;
        self.containers[i].attempt += 1;
        self.record_mut(i).restart_count += 1;
        fx.status();
        self.start_container(i, fx);
    }
}
