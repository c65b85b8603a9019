//! The pod lifecycle on the node as a pure state machine: `step(&mut State, Event, now)`
//! returns the [`Effect`]s the pod worker (`pod_worker.rs`) performs. No I/O, no clock:
//! the wall-clock time comes in as `now`, durations the executor measured come inside
//! events, and waiting is an [`Effect::ArmTimer`] that comes back as
//! [`Event::TimerFired`].
//!
//! The life of a pod, in the order `step` drives it:
//! 1. set-up (`setup.rs`): volumes, then each container in spec order (init containers
//!    first): pull its image (ErrImagePull → ImagePullBackOff with back-off), compile it,
//!    configure it (env, mounts; CreateContainerConfigError retried every 2 s);
//! 2. init containers one at a time, then all containers together (`containers.rs`),
//!    restarted per restartPolicy with exponential back-off (CrashLoopBackOff);
//! 3. termination (`termination.rs`): activeDeadlineSeconds kills the containers and
//!    fails the pod; a delete kills them with the grace period and, once nothing runs
//!    (or the grace period plus 5 s is over), finishes the pod.
//!
//! Invariants: once the containers are being killed nothing new starts (an outcome that
//! arrives still records its facts); an effect whose outcome is awaited (set-up steps,
//! a started container) keeps the pod from finishing until its outcome arrives or the
//! grace period ends; event reasons and messages are the kubelet's, word for word.
//!
//! Adding a decision means adding an event and handling it here. Probes (`probes.rs`) are
//! one: `Timer::Probe` → `Effect::RunProbe` → `Event::ProbeResult`, whose handler sets the
//! container record's `ready` (readiness, then `WriteStatus`) or, for a failed liveness or
//! startup probe, emits `KillContainer` and lets the ordinary exit path restart the
//! container.

mod backoff;
mod containers;
mod probes;
mod setup;
mod spec;
mod status;
mod termination;
#[cfg(test)]
mod tests;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use self::backoff::{Backoff, should_restart, should_restart_init};
pub use self::probes::{Handler, ProbeKind, ProbeOutcome, ProbeSpec, Probes};
pub use self::spec::{ContainerSpec, Spec, containers_of};
pub use self::status::{ContainerRecord, ContainerState, PodRecord, phase, pod_status, ts};
use crate::images::PullError;
use crate::runtime::{ContainerKind, ExitReason};

/// Something that happened to the pod: an outcome of an effect, a timer, or the API.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The pod's volumes exist.
    VolumesReady,
    /// A volume could not be set up (the message is the kubelet's FailedMount text).
    VolumesFailed { message: String },
    /// The container's image is on the node; `took` is the pull's duration.
    ImagePulled { container: usize, image_id: String, from_cache: bool, took: Duration },
    ImagePullFailed { container: usize, error: PullError },
    /// The image compiled; `kind` is what it can run as; `took` is set when this start
    /// waited for the image's first compilation on the node (a long step worth an event).
    Compiled { container: usize, kind: ContainerKind, took: Option<Duration> },
    CompileFailed { container: usize, message: String },
    /// The container's env and mounts are resolved: it can start.
    Configured { container: usize },
    /// Env or mounts could not be resolved; `retry` when a later attempt may succeed
    /// (a missing ConfigMap or Secret), not for a mistake in the spec.
    ConfigFailed { container: usize, message: String, retry: bool },
    /// Setting the container up failed for a reason that is not the pod's (logged by the
    /// executor): it never starts.
    SetupAborted { container: usize },
    /// An instance of the container started (after `StartContainer`).
    ContainerStarted { container: usize },
    /// `StartContainer` failed before anything ran.
    StartFailed { container: usize, message: String },
    /// The container's instance ended; `ran_for` is measured on a monotonic clock.
    ContainerExited { container: usize, code: i32, reason: ExitReason, message: String, ran_for: Duration },
    TimerFired(Timer),
    /// A run of a probe of the container's `attempt` ended (after `RunProbe`).
    ProbeResult { container: usize, probe: ProbeKind, attempt: u32, outcome: ProbeOutcome },
    /// The API's copy of the pod changed; `ready` is its Ready condition's status.
    PodUpdated { ready: Option<String> },
    /// The pod was deleted through the API (deletionTimestamp set).
    DeleteRequested { grace: Duration },
    /// The pod is gone from the API (deleted outright, or no longer bound to this node).
    Gone,
}

/// A timer the executor arms on [`Effect::ArmTimer`] and reports back when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// activeDeadlineSeconds after the worker started.
    ActiveDeadline,
    /// The grace period (plus 5 s) of a termination is over.
    GracePeriod,
    /// Time to show ImagePullBackOff for the container.
    PullBackOff(usize),
    /// Time to pull the container's image again.
    PullRetry(usize),
    /// Time to resolve the container's env and mounts again.
    ConfigRetry(usize),
    /// Time to set the pod's volumes up again.
    VolumeRetry,
    /// Time to fetch the pod's projected ServiceAccount tokens again.
    TokenRefresh,
    /// The container's restart back-off is over.
    Restart(usize),
    /// Time to run a probe of the container's `attempt` (start count minus one).
    Probe { container: usize, probe: ProbeKind, attempt: u32 },
}

/// What the executor does.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Create the pod's volumes → `VolumesReady` / `VolumesFailed`.
    PrepareVolumes,
    /// Fetch the projected ServiceAccount tokens again and replace their files (no event
    /// back: a failure is logged and the next refresh tries again).
    RefreshTokens,
    /// Pull the container's image → `ImagePulled` / `ImagePullFailed`.
    PullImage { container: usize },
    /// Compile the pulled image → `Compiled` / `CompileFailed` / `SetupAborted`.
    Compile { container: usize },
    /// Resolve env and mounts → `Configured` / `ConfigFailed` / `SetupAborted`.
    Configure { container: usize },
    /// Start an instance: a command runs to its exit, an HTTP service serves until
    /// killed → `ContainerStarted` (or `StartFailed`), later `ContainerExited`.
    StartContainer { container: usize, kind: ContainerKind },
    /// Stop the container's instance: at once for a command; an HTTP service drains its
    /// requests for at most `grace`. → `ContainerExited`.
    KillContainer { container: usize, grace: Duration },
    /// Run a probe of the container's `attempt` once, within its timeoutSeconds →
    /// `ProbeResult`. Holds no instance beyond the run.
    RunProbe { container: usize, probe: ProbeKind, attempt: u32 },
    /// Report `TimerFired(timer)` after `after`.
    ArmTimer { timer: Timer, after: Duration },
    /// Record a Kubernetes Event about the pod.
    RecordEvent { type_: EventType, reason: &'static str, message: String },
    /// The status changed: write it (bursts may be coalesced). `force` writes it even if
    /// it equals the last one written (the API's copy was changed by someone else).
    WriteStatus { force: bool },
    /// The pod's work is over. Always the last effect.
    Finish(Finish),
}

/// How a pod's worker ends. The executor first stops whatever still runs, then does
/// these in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finish {
    /// Write the final status (the last write of this pod).
    pub write_status: bool,
    /// Remove the pod object (the kubelet's final delete: grace 0, uid precondition).
    pub delete_object: bool,
    /// Free the pod's address, table entry and directory.
    pub release: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Where the pod is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// It ended (Succeeded or Failed) in an earlier life of this node: it only awaits
    /// deletion and holds nothing.
    Ended,
    /// Creating volumes.
    Volumes,
    /// Setting container `i` up (spec order, init containers first).
    SettingUp(usize),
    /// Running init container `i`.
    Initializing(usize),
    /// The containers were started.
    Running,
    /// Nothing more will start: set-up or an init container failed for good.
    Stopped,
    /// `Finish` was emitted.
    Finished,
}

/// What the lifecycle waits for with a container, apart from the executor's work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    PullBackOff,
    PullRetry,
    ConfigRetry,
    Restart,
}

/// The lifecycle's bookkeeping of one container (its API-facing facts are in the
/// [`PodRecord`]).
#[derive(Clone, Debug, Default)]
struct Container {
    /// What its image compiled to; once started, what it runs as (an init container
    /// always runs as a command).
    kind: Option<ContainerKind>,
    /// An effect for it is under way (set-up step or a started instance).
    busy: bool,
    pending: Option<Pending>,
    pull_level: u32,
    /// The delay before the next pull, once ImagePullBackOff shows.
    pull_retry_in: Duration,
    restart_level: u32,
    /// Starts so far minus one: names the instance (`containerID`).
    attempt: u32,
    /// Its running instance was told to stop.
    kill_sent: bool,
    /// Its probes, for the current attempt.
    probing: probes::Probing,
}

/// One pod's lifecycle state.
#[derive(Clone, Debug)]
pub struct State {
    spec: Spec,
    backoff: Backoff,
    record: PodRecord,
    containers: Vec<Container>,
    stage: Stage,
    volumes_busy: bool,
    /// Grace period of a kill (the spec's, 0 after activeDeadlineSeconds, the delete's).
    grace: Duration,
    deadline_hit: bool,
    /// The containers are being killed: nothing new starts.
    killing: bool,
    /// Set once the pod is deleted or gone: it finishes when nothing is under way.
    ending: Option<Finish>,
}

/// The pod's addresses, as its status reports them.
#[derive(Clone, Debug, Default)]
pub struct Addresses {
    pub host_ip: String,
    pub pod_ip: String,
}

/// The kubelet's message for activeDeadlineSeconds.
const DEADLINE_MESSAGE: &str = "Pod was active on the node longer than the specified deadline";
/// Wait between attempts to resolve a container's env.
const CONFIG_RETRY: Duration = Duration::from_secs(2);
/// ImagePullBackOff shows at most this long after ErrImagePull.
const PULL_BACKOFF_SHOWN_AFTER: Duration = Duration::from_millis(500);
/// The executor's slack beyond the grace period before it stops what still runs.
const GRACE_SLACK: Duration = Duration::from_secs(5);

impl State {
    /// A pod this worker runs, from the start.
    pub fn start(spec: Spec, backoff: Backoff, addresses: Addresses, now: DateTime<Utc>) -> (State, Vec<Effect>) {
        let has_init = spec.containers.iter().any(|c| c.init);
        let mut record =
            PodRecord { host_ip: addresses.host_ip, pod_ip: addresses.pod_ip, start_time: Some(now), initialized: !has_init, ..Default::default() };
        for c in &spec.containers {
            let reason = if c.init || has_init { "PodInitializing" } else { "ContainerCreating" };
            let r = ContainerRecord::new(&c.name, &c.image, reason);
            if c.init { record.init.push(r) } else { record.main.push(r) }
        }
        let mut state = State::new(spec, backoff, record, Stage::Volumes);
        state.volumes_busy = true;
        let mut fx = vec![Effect::WriteStatus { force: false }, Effect::PrepareVolumes];
        if let Some(after) = state.spec.active_deadline {
            fx.push(Effect::ArmTimer { timer: Timer::ActiveDeadline, after });
        }
        (state, fx)
    }

    /// A pod that ended in an earlier life of this node: it only awaits deletion.
    pub fn ended(spec: Spec) -> (State, Vec<Effect>) {
        let deleting = spec.deleting;
        let mut state = State::new(spec, Backoff::default(), PodRecord::default(), Stage::Ended);
        let fx = if deleting { state.finish_ended(true) } else { Vec::new() };
        (state, fx)
    }

    fn new(spec: Spec, backoff: Backoff, record: PodRecord, stage: Stage) -> State {
        State {
            containers: vec![Container::default(); spec.containers.len()],
            grace: spec.grace,
            spec,
            backoff,
            record,
            stage,
            volumes_busy: false,
            deadline_hit: false,
            killing: false,
            ending: None,
        }
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The PodStatus as of `now` (keeps condition transition times stable).
    pub fn status(&mut self, now: DateTime<Utc>) -> Value {
        pod_status(&mut self.record, &self.spec.restart_policy, now)
    }

    /// How often container `i` (init containers first) has been restarted.
    pub fn restart_count(&self, i: usize) -> u32 {
        self.record(i).restart_count
    }

    fn record(&self, i: usize) -> &ContainerRecord {
        let n_init = self.record.init.len();
        if i < n_init { &self.record.init[i] } else { &self.record.main[i - n_init] }
    }

    fn record_mut(&mut self, i: usize) -> &mut ContainerRecord {
        let n_init = self.record.init.len();
        if i < n_init { &mut self.record.init[i] } else { &mut self.record.main[i - n_init] }
    }

    fn waiting(&mut self, i: usize, reason: &str, message: String) {
        self.record_mut(i).state = ContainerState::Waiting { reason: reason.to_string(), message };
    }

    /// Nothing is under way in the executor.
    fn idle(&self) -> bool {
        !self.volumes_busy && self.containers.iter().all(|c| !c.busy)
    }
}

/// Effects being collected by one step.
#[derive(Default)]
struct Effects(Vec<Effect>);

impl Effects {
    fn push(&mut self, e: Effect) {
        self.0.push(e);
    }

    fn event(&mut self, type_: EventType, reason: &'static str, message: String) {
        self.0.push(Effect::RecordEvent { type_, reason, message });
    }

    /// The status changed (one `WriteStatus` per step).
    fn status(&mut self) {
        if !self.0.iter().any(|e| matches!(e, Effect::WriteStatus { .. })) {
            self.0.push(Effect::WriteStatus { force: false });
        }
    }

    fn arm(&mut self, timer: Timer, after: Duration) {
        self.0.push(Effect::ArmTimer { timer, after });
    }
}

/// Advances the pod's lifecycle by one event.
pub fn step(state: &mut State, event: Event, now: DateTime<Utc>) -> Vec<Effect> {
    let mut fx = Effects::default();
    if state.stage == Stage::Finished {
        return fx.0;
    }
    if state.stage == Stage::Ended {
        match event {
            Event::DeleteRequested { .. } => return state.finish_ended(true),
            Event::Gone => return state.finish_ended(false),
            _ => return fx.0,
        }
    }
    match event {
        Event::VolumesReady => state.volumes_ready(&mut fx),
        Event::VolumesFailed { message } => state.volumes_failed(message, &mut fx),
        Event::ImagePulled { container, image_id, from_cache, took } => state.image_pulled(container, image_id, from_cache, took, &mut fx),
        Event::ImagePullFailed { container, error } => state.image_pull_failed(container, error, &mut fx),
        Event::Compiled { container, kind, took } => state.compiled(container, kind, took, &mut fx),
        Event::CompileFailed { container, message } => state.compile_failed(container, message, &mut fx),
        Event::Configured { container } => state.configured(container, &mut fx),
        Event::ConfigFailed { container, message, retry } => state.config_failed(container, message, retry, &mut fx),
        Event::SetupAborted { container } => state.setup_aborted(container, &mut fx),
        Event::ContainerStarted { container } => state.container_started(container, now, &mut fx),
        Event::StartFailed { container, message } => state.start_failed(container, message, &mut fx),
        Event::ContainerExited { container, code, reason, message, ran_for } => {
            state.container_exited(container, code, reason, message, ran_for, now, &mut fx)
        }
        Event::TimerFired(timer) => state.timer_fired(timer, &mut fx),
        Event::ProbeResult { container, probe, attempt, outcome } => state.probe_result(container, probe, attempt, outcome, now, &mut fx),
        Event::PodUpdated { ready } => state.pod_updated(ready, &mut fx),
        Event::DeleteRequested { grace } => state.terminate(Some(grace), &mut fx),
        Event::Gone => state.terminate(None, &mut fx),
    }
    state.finish_if_idle(&mut fx);
    fx.0
}

impl State {
    fn timer_fired(&mut self, timer: Timer, fx: &mut Effects) {
        match timer {
            Timer::ActiveDeadline => self.deadline_exceeded(fx),
            Timer::GracePeriod => self.grace_period_over(fx),
            Timer::PullBackOff(i) => self.pull_backoff_shown(i, fx),
            Timer::PullRetry(i) => self.pull_retry(i, fx),
            Timer::ConfigRetry(i) => self.config_retry(i, fx),
            Timer::VolumeRetry => self.volume_retry(fx),
            Timer::TokenRefresh => self.token_refresh(fx),
            Timer::Restart(i) => self.restart(i, fx),
            Timer::Probe { container, probe, attempt } => self.probe_due(container, probe, attempt, fx),
        }
    }

    /// The API's copy changed: if it says Ready differently from what this node observes
    /// (the node lifecycle controller marks pods not Ready while their node is not
    /// Ready), write the observed status again even though it did not change.
    fn pod_updated(&mut self, ready: Option<String>, fx: &mut Effects) {
        if self.ending.is_some() {
            return;
        }
        let observed = if self.record.containers_ready() { "True" } else { "False" };
        if ready.is_some_and(|r| r != observed) {
            fx.push(Effect::WriteStatus { force: true });
        }
    }
}
