//! Container probes (startupProbe, livenessProbe, readinessProbe) as lifecycle
//! transitions: what a probe is (read from the container spec, with Kubernetes' defaults),
//! when it runs (`Timer::Probe`), and what its result does (`Event::ProbeResult`).
//!
//! As the kubelet does: a started container is probed after each probe's
//! initialDelaySeconds, then every periodSeconds (counted from the previous result here);
//! the startup probe holds liveness and readiness back until it succeeds once; readiness
//! sets the container's `ready` after successThreshold consecutive successes and clears
//! it after failureThreshold consecutive failures (a container without a readiness probe
//! is ready once started); failureThreshold consecutive liveness or startup failures
//! kill the container (the probe's terminationGracePeriodSeconds, else the pod's), and the
//! ordinary exit path restarts it unless restartPolicy is Never. Every failure is a
//! Warning `Unhealthy` event, worded as the kubelet words it.
//!
//! Invariants: probes belong to one attempt of a container: a timer or result of an
//! earlier attempt, or of a container that is no longer running or is being killed, is
//! dropped, so probes stop with the container and start afresh with the next attempt;
//! at most one run of each probe of a container is under way; init containers are never
//! probed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{ContainerState, Effect, Effects, EventType, Stage, State, Timer};

/// Which of a container's probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    /// As the kubelet names it in events ("Liveness probe failed: ...").
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }

    fn index(self) -> usize {
        match self {
            ProbeKind::Startup => 0,
            ProbeKind::Liveness => 1,
            ProbeKind::Readiness => 2,
        }
    }
}

/// How a probe checks the container.
#[derive(Clone, Debug, PartialEq)]
pub enum Handler {
    /// GET `path` on `port`; 200 ≤ status < 400 is success. `host` empty: the pod's IP.
    HttpGet { scheme: String, host: String, port: u16, path: String, headers: Vec<(String, String)> },
    /// A connection to `port` is accepted. `host` empty: the pod's IP.
    TcpSocket { host: String, port: u16 },
    /// A fresh instance of the container's own image run with `command` as its argv
    /// (with the container's env, mounts and limits); exit 0 is success.
    Exec { command: Vec<String> },
    /// grpc.health.v1.Health/Check of `service` on `port`; SERVING is success.
    Grpc { port: u16, service: String },
    /// A probe this node cannot run (a named port the container does not declare, no
    /// handler): each run errors with this message and changes nothing.
    Unsupported(String),
}

/// One probe of a container, with Kubernetes' defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeSpec {
    pub handler: Handler,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// The probe's terminationGracePeriodSeconds (liveness and startup kills).
    pub grace: Option<Duration>,
}

/// A container's probes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Probes {
    pub startup: Option<ProbeSpec>,
    pub liveness: Option<ProbeSpec>,
    pub readiness: Option<ProbeSpec>,
}

/// What one run of a probe found.
#[derive(Clone, Debug, PartialEq)]
pub enum ProbeOutcome {
    Success,
    /// The kubelet's output text ("HTTP probe failed with statuscode: 500").
    Failure(String),
    /// The probe could not run: counted neither way.
    Error(String),
}

fn secs(v: &Value, default: u64, min: u64) -> Duration {
    Duration::from_secs(v.as_u64().unwrap_or(default).max(min))
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

impl Probes {
    /// The probes of container `c` (its spec as JSON). Liveness and startup probes count
    /// one success as success whatever successThreshold says (Kubernetes requires 1).
    pub fn from_container(c: &Value) -> Probes {
        let probe = |field: &str, one_success: bool| -> Option<ProbeSpec> {
            let p = c.get(field).filter(|p| p.is_object())?;
            let success_threshold = if one_success { 1 } else { p["successThreshold"].as_u64().unwrap_or(1).max(1) as u32 };
            Some(ProbeSpec {
                handler: handler(c, p),
                initial_delay: secs(&p["initialDelaySeconds"], 0, 0),
                period: secs(&p["periodSeconds"], 10, 1),
                timeout: secs(&p["timeoutSeconds"], 1, 1),
                success_threshold,
                failure_threshold: p["failureThreshold"].as_u64().unwrap_or(3).max(1) as u32,
                grace: p["terminationGracePeriodSeconds"].as_u64().map(Duration::from_secs),
            })
        };
        Probes { startup: probe("startupProbe", true), liveness: probe("livenessProbe", true), readiness: probe("readinessProbe", false) }
    }

    pub fn get(&self, kind: ProbeKind) -> Option<&ProbeSpec> {
        match kind {
            ProbeKind::Startup => self.startup.as_ref(),
            ProbeKind::Liveness => self.liveness.as_ref(),
            ProbeKind::Readiness => self.readiness.as_ref(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.startup.is_none() && self.liveness.is_none() && self.readiness.is_none()
    }
}

/// A probe's handler; a named port is looked up in the container's ports.
fn handler(c: &Value, p: &Value) -> Handler {
    let port = |v: &Value| -> Result<u16, Handler> {
        if let Some(n) = v.as_u64() {
            return u16::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| Handler::Unsupported(format!("invalid port {n}")));
        }
        let name = text(v);
        if let Ok(n) = name.parse::<u16>() {
            return Ok(n);
        }
        c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|cp| cp["name"] == name.as_str())
            .and_then(|cp| cp["containerPort"].as_u64())
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| Handler::Unsupported(format!("port {name:?} not found")))
    };
    if let Some(h) = p.get("httpGet").filter(|h| h.is_object()) {
        let port = match port(&h["port"]) {
            Ok(port) => port,
            Err(unsupported) => return unsupported,
        };
        let path = match text(&h["path"]) {
            p if p.is_empty() => "/".to_string(),
            p if p.starts_with('/') => p,
            p => format!("/{p}"),
        };
        let scheme = match text(&h["scheme"]) {
            s if s.is_empty() => "HTTP".to_string(),
            s => s,
        };
        let headers = h["httpHeaders"].as_array().into_iter().flatten().map(|kv| (text(&kv["name"]), text(&kv["value"]))).collect();
        return Handler::HttpGet { scheme, host: text(&h["host"]), port, path, headers };
    }
    if let Some(t) = p.get("tcpSocket").filter(|t| t.is_object()) {
        return match port(&t["port"]) {
            Ok(port) => Handler::TcpSocket { host: text(&t["host"]), port },
            Err(unsupported) => unsupported,
        };
    }
    if let Some(e) = p.get("exec").filter(|e| e.is_object()) {
        let command: Vec<String> = e["command"].as_array().into_iter().flatten().map(text).collect();
        if command.is_empty() {
            return Handler::Unsupported("exec probe has no command".into());
        }
        return Handler::Exec { command };
    }
    if let Some(g) = p.get("grpc").filter(|g| g.is_object()) {
        return match port(&g["port"]) {
            Ok(port) => Handler::Grpc { port, service: text(&g["service"]) },
            Err(unsupported) => unsupported,
        };
    }
    Handler::Unsupported("probe has no handler".into())
}

/// One probe's run of results within an attempt.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    successes: u32,
    failures: u32,
}

/// The probes' bookkeeping of one attempt of a container.
#[derive(Clone, Debug, Default)]
pub(super) struct Probing {
    /// The startup probe succeeded (or there is none): liveness and readiness run.
    started: bool,
    runs: [Run; 3],
    /// A liveness or startup failure is killing the container: its exit restarts it
    /// (restartPolicy permitting) instead of counting as a kill.
    pub(super) killed_by_probe: bool,
}

impl State {
    fn probes(&self, i: usize) -> &Probes {
        &self.spec.containers[i].probes
    }

    /// Container `i` started: its probes start afresh.
    pub(super) fn start_probes(&mut self, i: usize, fx: &mut Effects) {
        let has_startup = self.probes(i).startup.is_some();
        let has_readiness = self.probes(i).readiness.is_some();
        self.containers[i].probing = Probing { started: !has_startup, ..Default::default() };
        if self.spec.containers[i].init || self.probes(i).is_empty() {
            return;
        }
        let r = self.record_mut(i);
        r.starting = has_startup;
        r.ready = !has_startup && !has_readiness;
        if has_startup {
            self.arm_probe(i, ProbeKind::Startup, None, fx);
        } else {
            self.arm_probe(i, ProbeKind::Liveness, None, fx);
            self.arm_probe(i, ProbeKind::Readiness, None, fx);
        }
    }

    /// Arms the next run of probe `kind` of container `i`, if it has one: after `after`,
    /// or (None) after its initialDelaySeconds.
    fn arm_probe(&self, i: usize, kind: ProbeKind, after: Option<Duration>, fx: &mut Effects) {
        if let Some(p) = self.probes(i).get(kind) {
            let attempt = self.containers[i].attempt;
            fx.arm(Timer::Probe { container: i, probe: kind, attempt }, after.unwrap_or(p.initial_delay));
        }
    }

    /// Whether a probe timer or result for `attempt` of container `i` still applies.
    fn probe_applies(&self, i: usize, attempt: u32) -> bool {
        let c = &self.containers[i];
        self.stage == Stage::Running
            && !self.killing
            && !c.kill_sent
            && c.attempt == attempt
            && !self.spec.containers[i].init
            && self.record(i).is_running()
    }

    pub(super) fn probe_due(&mut self, i: usize, kind: ProbeKind, attempt: u32, fx: &mut Effects) {
        if self.probe_applies(i, attempt) {
            fx.push(Effect::RunProbe { container: i, probe: kind, attempt });
        }
    }

    pub(super) fn probe_result(&mut self, i: usize, kind: ProbeKind, attempt: u32, outcome: ProbeOutcome, now: DateTime<Utc>, fx: &mut Effects) {
        if !self.probe_applies(i, attempt) {
            return;
        }
        let Some(spec) = self.probes(i).get(kind).cloned() else { return };
        let run = &mut self.containers[i].probing.runs[kind.index()];
        match outcome {
            ProbeOutcome::Error(message) => {
                fx.event(EventType::Warning, "Unhealthy", format!("{} probe errored and resulted in unknown state: {message}", kind.as_str()));
                self.arm_probe(i, kind, Some(spec.period), fx);
            }
            ProbeOutcome::Success => {
                run.failures = 0;
                run.successes = run.successes.saturating_add(1);
                let enough = run.successes >= spec.success_threshold;
                match kind {
                    ProbeKind::Startup => return self.startup_succeeded(i, now, fx),
                    ProbeKind::Readiness if enough && !self.record(i).ready => {
                        self.record_mut(i).ready = true;
                        fx.status();
                    }
                    _ => {}
                }
                self.arm_probe(i, kind, Some(spec.period), fx);
            }
            ProbeOutcome::Failure(output) => {
                run.successes = 0;
                run.failures = run.failures.saturating_add(1);
                let enough = run.failures >= spec.failure_threshold;
                fx.event(EventType::Warning, "Unhealthy", format!("{} probe failed: {output}", kind.as_str()));
                match kind {
                    ProbeKind::Liveness | ProbeKind::Startup if enough => return self.kill_for_probe(i, kind, spec.grace, fx),
                    ProbeKind::Readiness if enough && self.record(i).ready => {
                        self.record_mut(i).ready = false;
                        fx.status();
                    }
                    _ => {}
                }
                self.arm_probe(i, kind, Some(spec.period), fx);
            }
        }
    }

    /// The startup probe succeeded: the container counts as started, and liveness and
    /// readiness start, each once its initialDelaySeconds since the start is over.
    fn startup_succeeded(&mut self, i: usize, now: DateTime<Utc>, fx: &mut Effects) {
        if self.containers[i].probing.started {
            return;
        }
        self.containers[i].probing.started = true;
        let has_readiness = self.probes(i).readiness.is_some();
        let ran = match self.record(i).state {
            ContainerState::Running { started_at } => (now - started_at).to_std().unwrap_or_default(),
            _ => Duration::ZERO,
        };
        let r = self.record_mut(i);
        r.starting = false;
        r.ready = !has_readiness;
        fx.status();
        for kind in [ProbeKind::Liveness, ProbeKind::Readiness] {
            if let Some(p) = self.probes(i).get(kind) {
                let after = p.initial_delay.saturating_sub(ran);
                self.arm_probe(i, kind, Some(after), fx);
            }
        }
    }

    /// Liveness or startup failed failureThreshold times: the container is killed and
    /// the exit path restarts it (restartPolicy permitting).
    fn kill_for_probe(&mut self, i: usize, kind: ProbeKind, grace: Option<Duration>, fx: &mut Effects) {
        let restart = self.spec.restart_policy != "Never";
        let name = &self.spec.containers[i].name;
        let which = if kind == ProbeKind::Startup { "startup" } else { "liveness" };
        let mut message = format!("Container {name} failed {which} probe");
        if restart {
            message.push_str(", will be restarted");
        }
        fx.event(EventType::Normal, "Killing", message);
        let c = &mut self.containers[i];
        c.kill_sent = true;
        c.probing.killed_by_probe = true;
        self.record_mut(i).ready = false;
        fx.status();
        fx.push(Effect::KillContainer { container: i, grace: grace.unwrap_or(self.spec.grace) });
    }
}
