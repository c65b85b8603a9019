//! One pod's worker: the executor of its lifecycle. It turns the API's updates, timers
//! and the outcomes of its own I/O into [`Event`]s, hands them to `lifecycle::step`, and
//! performs the [`Effect`]s that come back: set-up I/O (volumes, image pulls, compiles,
//! env), container instances, kills, timers, Kubernetes Events, status writes and the
//! final clean-up. It decides nothing itself.
//!
//! Invariants: only the worker's own task touches the lifecycle state (I/O runs in tasks
//! that report an `Outcome` through a channel); a container is in the node's pod table
//! (logs, exec, proxy) once it is configured, with its HTTP service while that runs; the
//! final status is written after the status writer stopped; the pod's table entry,
//! address and directory are released only by `Finish`, and everything the worker
//! started is stopped by then.
//!
//! Files: `setup.rs` (pull credentials, imageID, env and mounts), `reporter.rs` (the status
//! writer), `probes.rs` (one run of a probe).

mod probes;
mod reporter;
mod setup;

pub(crate) use self::reporter::StatusWriter;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Preconditions};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use self::reporter::Reporter;
use self::setup::{ConfigError, PodContext, Prepared};
use crate::agent::Ctx;
use crate::images::{Image, PullError, PullPolicy, RegistryAuth};
use crate::lifecycle::{self, Addresses, Effect, Event, Finish, ProbeKind, ProbeOutcome, Spec, State, Timer};
use crate::pod_table::{ContainerEntry, PodEntry};
use crate::runtime::{Compiled, ContainerKind, ExitReason, ExitStatus};
use crate::volumes::{self, Volume};

/// Runs a pod until it is deleted (or gone from this node).
pub(crate) async fn run(ctx: Arc<Ctx>, pod: Arc<Value>, updates: watch::Receiver<Option<Arc<Value>>>) {
    let spec = Spec::from_pod(&pod);
    let (state, effects, held) = if spec.ended {
        let (state, effects) = State::ended(spec);
        (state, effects, None)
    } else {
        // Keep the address a pod had in an earlier life of this node, else take a new one.
        let pod_ip = {
            let mut ips = ctx.ips.lock().expect("ip lock");
            let old = pod["status"]["podIP"].as_str().unwrap_or("").to_string();
            if !old.is_empty() && ips.claim(&old) { old } else { ips.allocate().unwrap_or_default() }
        };
        let entry = Arc::new(PodEntry { uid: spec.uid.clone(), namespace: spec.namespace.clone(), name: spec.name.clone(), containers: Default::default() });
        let ip = pod_ip.parse().ok();
        ctx.pods.insert_with_ip(entry.clone(), ip);
        let network = ctx.routing.for_pod(&entry, ip);
        let addresses = Addresses { host_ip: ctx.host_ip.clone(), pod_ip: pod_ip.clone() };
        let (state, effects) = State::start(spec, ctx.config.backoff, addresses, Utc::now());
        (state, effects, Some(Held { entry, pod_ip, network }))
    };
    Worker::new(ctx, pod, state, held).drive(effects, updates).await;
}

/// What a running pod holds on the node until it finishes.
struct Held {
    entry: Arc<PodEntry>,
    pod_ip: String,
    /// Where its guests' outgoing requests go.
    network: Arc<dyn crate::runtime::Network>,
}

/// A first compilation that took at least this long is reported as a pod event (a start
/// that found the image compiled, in memory or in the disk cache, is quick).
const COMPILE_EVENT_AFTER: Duration = Duration::from_millis(100);

/// What an I/O task reports back.
enum Outcome {
    Volumes(Result<Vec<Volume>, String>),
    Pulled { container: usize, auths: Arc<Vec<RegistryAuth>>, result: Result<Image, PullError>, took: Duration },
    /// `took`: set when this start waited at least [`COMPILE_EVENT_AFTER`] for the image's
    /// first compilation on the node.
    Compiled { container: usize, result: Result<Arc<Compiled>, String>, took: Option<Duration> },
    Configured { container: usize, result: Result<Prepared, ConfigError> },
    /// Set-up failed for a reason that is not the pod's (logged where it happened).
    Aborted { container: usize },
    Exited { container: usize, status: ExitStatus, ran_for: Duration },
    Probed { container: usize, probe: ProbeKind, attempt: u32, outcome: ProbeOutcome },
}

/// How to stop a running instance.
enum Kill {
    Command(watch::Sender<bool>),
    /// Carries the grace period the HTTP service drains for.
    Http(oneshot::Sender<Duration>),
}

/// The worker's side of one container: its spec and what set-up produced.
struct Slot {
    spec: Value,
    auths: Option<Arc<Vec<RegistryAuth>>>,
    image: Option<Image>,
    compiled: Option<Arc<Compiled>>,
    prepared: Option<Prepared>,
    kill: Option<Kill>,
}

struct Worker {
    ctx: Arc<Ctx>,
    /// The newest copy from the API (shared with the agent's channel).
    pod: Arc<Value>,
    state: State,
    held: Option<Held>,
    dir: PathBuf,
    slots: Vec<Slot>,
    volumes: Vec<Volume>,
    // Boxed: the channel allocates its slots in blocks of 32, per pod.
    outcomes_tx: mpsc::UnboundedSender<Box<Outcome>>,
    outcomes: mpsc::UnboundedReceiver<Box<Outcome>>,
    tasks: JoinSet<()>,
    timers: Vec<(Instant, Timer)>,
    /// Events of the worker's own making (a container started), handled before others.
    queue: VecDeque<Event>,
    reporter: Option<Reporter>,
    /// A `WriteStatus` is pending; `Some(true)` when forced.
    status_pending: Option<bool>,
}

/// Why the worker woke up.
enum Wake {
    Update(Event),
    Outcome(Outcome),
    Timer(Timer),
}

impl Worker {
    fn new(ctx: Arc<Ctx>, pod: Arc<Value>, state: State, held: Option<Held>) -> Worker {
        let spec = state.spec();
        let dir = ctx.config.data_dir.join("pods").join(&spec.uid);
        let slots = lifecycle::containers_of(&pod)
            .map(|(c, _)| Slot { spec: c.clone(), auths: None, image: None, compiled: None, prepared: None, kill: None })
            .collect();
        let reporter = held.is_some().then(|| ctx.status.reporter(spec.namespace.clone(), spec.name.clone()));
        let (outcomes_tx, outcomes) = mpsc::unbounded_channel();
        Worker {
            ctx,
            pod,
            state,
            held,
            dir,
            slots,
            volumes: Vec::new(),
            outcomes_tx,
            outcomes,
            tasks: JoinSet::new(),
            timers: Vec::new(),
            queue: VecDeque::new(),
            reporter,
            status_pending: None,
        }
    }

    async fn drive(mut self, mut effects: Vec<Effect>, mut updates: watch::Receiver<Option<Arc<Value>>>) {
        let mut updates_open = true;
        loop {
            for effect in std::mem::take(&mut effects) {
                if let Effect::Finish(finish) = effect {
                    // Boxed: its API calls would otherwise size every idle pod's task.
                    Box::pin(self.finish(finish)).await;
                    return;
                }
                self.perform(effect);
            }
            let event = match self.queue.pop_front() {
                Some(event) => event,
                None => {
                    self.write_status();
                    self.next_event(&mut updates, &mut updates_open).await
                }
            };
            effects = lifecycle::step(&mut self.state, event, Utc::now());
        }
    }

    async fn next_event(&mut self, updates: &mut watch::Receiver<Option<Arc<Value>>>, updates_open: &mut bool) -> Event {
        while self.tasks.try_join_next().is_some() {}
        let due = self.timers.iter().copied().min_by_key(|(at, _)| *at);
        let wake = tokio::select! {
            changed = updates.changed(), if *updates_open => match changed {
                Ok(()) => {
                    let latest = updates.borrow_and_update().clone();
                    if let Some(pod) = &latest {
                        // One copy of the pod per pod, not one per version seen.
                        self.pod = pod.clone();
                    }
                    Wake::Update(Event::from_update(latest.as_deref()))
                }
                Err(_) => {
                    *updates_open = false;
                    Wake::Update(Event::Gone)
                }
            },
            Some(outcome) = self.outcomes.recv() => Wake::Outcome(*outcome),
            _ = sleep_until(due.map(|(at, _)| at)) => {
                let (at, timer) = due.expect("a timer was due");
                if let Some(i) = self.timers.iter().position(|&t| t == (at, timer)) {
                    self.timers.swap_remove(i);
                }
                Wake::Timer(timer)
            }
        };
        match wake {
            Wake::Update(event) => event,
            Wake::Outcome(outcome) => self.absorb(outcome),
            Wake::Timer(timer) => Event::TimerFired(timer),
        }
    }

    /// Keeps what an outcome produced and turns it into the lifecycle's event.
    fn absorb(&mut self, outcome: Outcome) -> Event {
        match outcome {
            Outcome::Volumes(Ok(volumes)) => {
                self.volumes = volumes;
                Event::VolumesReady
            }
            Outcome::Volumes(Err(message)) => Event::VolumesFailed { message },
            Outcome::Pulled { container, auths, result, took } => {
                let slot = &mut self.slots[container];
                slot.auths = Some(auths);
                match result {
                    Ok(img) => {
                        let image_id = setup::image_id(&self.state.spec().containers[container].image, &img);
                        let from_cache = img.from_cache;
                        slot.image = Some(img);
                        Event::ImagePulled { container, image_id, from_cache, took }
                    }
                    Err(error) => Event::ImagePullFailed { container, error },
                }
            }
            Outcome::Compiled { container, result: Ok(compiled), took } => {
                let kind = compiled.kind;
                self.slots[container].compiled = Some(compiled);
                Event::Compiled { container, kind, took }
            }
            Outcome::Compiled { container, result: Err(message), .. } => Event::CompileFailed { container, message },
            Outcome::Configured { container, result: Ok(prepared) } => {
                self.register(container, &prepared, None);
                self.slots[container].prepared = Some(prepared);
                Event::Configured { container }
            }
            Outcome::Configured { container, result: Err(ConfigError::Env(message)) } => Event::ConfigFailed { container, message, retry: true },
            Outcome::Configured { container, result: Err(ConfigError::Spec(message)) } => Event::ConfigFailed { container, message, retry: false },
            Outcome::Configured { container, result: Err(ConfigError::Internal) } | Outcome::Aborted { container } => Event::SetupAborted { container },
            Outcome::Exited { container, status, ran_for } => {
                Event::ContainerExited { container, code: status.code, reason: status.reason, message: status.message, ran_for }
            }
            Outcome::Probed { container, probe, attempt, outcome } => Event::ProbeResult { container, probe, attempt, outcome },
        }
    }

    fn perform(&mut self, effect: Effect) {
        match effect {
            Effect::RefreshTokens => {
                let (client, pod, dir) = (self.ctx.client.clone(), self.pod.clone(), self.dir.clone());
                self.tasks.spawn(async move {
                    if let Err(e) = volumes::refresh_tokens(&client, &pod, &dir).await {
                        tracing::warn!(error = %e, "refreshing the pod's ServiceAccount token failed; trying again later");
                    }
                });
            }
            Effect::PrepareVolumes => {
                let (client, pod, dir, claims) = (self.ctx.client.clone(), self.pod.clone(), self.dir.clone(), self.ctx.config.data_dir.join("claims"));
                let allowed = self.ctx.config.allow_host_paths.clone();
                let tx = self.outcomes_tx.clone();
                self.tasks.spawn(async move {
                    let _ = tx.send(Box::new(Outcome::Volumes(volumes::prepare(&client, &pod, &dir, &claims, &allowed).await)));
                });
            }
            Effect::PullImage { container } => self.pull(container),
            Effect::Compile { container } => self.compile(container),
            Effect::Configure { container } => self.configure(container),
            Effect::StartContainer { container, kind } => self.start(container, kind),
            Effect::KillContainer { container, grace } => match &mut self.slots[container].kill {
                Some(Kill::Command(kill)) => {
                    let _ = kill.send(true);
                }
                Some(Kill::Http(_)) => {
                    if let Some(Kill::Http(kill)) = self.slots[container].kill.take() {
                        let _ = kill.send(grace);
                    }
                }
                None => {}
            },
            Effect::RunProbe { container, probe, attempt } => self.probe(container, probe, attempt),
            Effect::ArmTimer { timer, after } => self.timers.push((Instant::now() + after, timer)),
            Effect::RecordEvent { type_, reason, message } => self.ctx.event(&self.pod, type_.as_str(), reason, &message),
            Effect::WriteStatus { force } => self.status_pending = Some(self.status_pending.unwrap_or(false) || force),
            Effect::Finish(_) => unreachable!("Finish is performed by drive"),
        }
    }

    /// Hands the status to the writer if it changed.
    fn write_status(&mut self) {
        if let (Some(force), Some(reporter)) = (self.status_pending.take(), &self.reporter) {
            reporter.report(self.state.status(Utc::now()), force);
        }
    }

    fn pull(&mut self, container: usize) {
        let (ctx, pod, tx) = (self.ctx.clone(), self.pod.clone(), self.outcomes_tx.clone());
        let auths = self.slots[container].auths.clone();
        let c = &self.slots[container].spec;
        let image = c["image"].as_str().unwrap_or("").to_string();
        let policy = PullPolicy::for_container(&image, c["imagePullPolicy"].as_str());
        self.tasks.spawn(async move {
            let auths = match auths {
                Some(auths) => auths,
                None => Arc::new(setup::pull_auths(&ctx, &pod).await),
            };
            let started = std::time::Instant::now();
            let result = ctx.images.pull(&image, policy, &auths).await;
            let _ = tx.send(Box::new(Outcome::Pulled { container, auths, result, took: started.elapsed() }));
        });
    }

    fn compile(&mut self, container: usize) {
        let (runtime, tx) = (self.ctx.runtime.clone(), self.outcomes_tx.clone());
        let image = self.slots[container].image.take();
        self.tasks.spawn(async move {
            let Some(img) = image else {
                tracing::error!(container, "no pulled image to compile");
                let _ = tx.send(Box::new(Outcome::Aborted { container }));
                return;
            };
            // One compilation per digest however many pods start it at once.
            let was_compiled = runtime.is_compiled(&img.digest);
            let started = std::time::Instant::now();
            let result = runtime.prepare_shared(&img.digest, img.bytes.clone()).await;
            let waited = started.elapsed();
            let took = (!was_compiled && result.is_ok() && waited >= COMPILE_EVENT_AFTER).then_some(waited);
            let _ = tx.send(Box::new(Outcome::Compiled { container, result: result.map_err(|e| e.to_string()), took }));
        });
    }

    fn configure(&mut self, container: usize) {
        let (ctx, pod, tx) = (self.ctx.clone(), self.pod.clone(), self.outcomes_tx.clone());
        let (c, dir, volumes) = (self.slots[container].spec.clone(), self.dir.clone(), self.volumes.clone());
        let pod_ip = self.held.as_ref().map(|h| h.pod_ip.clone()).unwrap_or_default();
        let network = self.held.as_ref().map(|h| h.network.clone());
        self.tasks.spawn(async move {
            let p = PodContext { ctx: &ctx, pod: &pod, pod_ip: &pod_ip, pod_dir: &dir, volumes: &volumes, network };
            let result = setup::configure(p, &c).await;
            let _ = tx.send(Box::new(Outcome::Configured { container, result }));
        });
    }

    /// Lists the container in the node's pod table (logs, exec, proxy).
    fn register(&self, container: usize, p: &Prepared, http: Option<Arc<crate::runtime::HttpService>>) {
        let Some(held) = &self.held else { return };
        held.entry.set_container(Arc::new(ContainerEntry {
            name: self.state.spec().containers[container].name.clone(),
            compiled: self.slots[container].compiled.clone(),
            spec: p.spec.clone(),
            http,
            ports: p.ports.clone(),
            logs: p.logs.clone(),
            stdin: p.stdin.clone(),
        }));
    }

    fn start(&mut self, container: usize, kind: ContainerKind) {
        let slot = &self.slots[container];
        let (Some(compiled), Some(p)) = (slot.compiled.clone(), slot.prepared.as_ref()) else {
            tracing::error!(container, "start of a container that is not set up");
            self.queue.push_back(Event::SetupAborted { container });
            return;
        };
        let (spec, logs, tx) = (p.spec.clone(), p.logs.clone(), self.outcomes_tx.clone());
        spec.usage.set_restarts(self.state.restart_count(container));
        // A command attempt reads a fresh stdin pipe when the spec asks for one.
        let stdin = if matches!(kind, ContainerKind::Command) { p.stdin.as_ref().map(|pipe| pipe.open()) } else { None };
        logs.start_attempt();
        match kind {
            ContainerKind::Http => {
                let svc = match self.ctx.runtime.serve(&compiled, spec, logs.sink()) {
                    Ok(svc) => Arc::new(svc),
                    Err(e) => {
                        self.queue.push_back(Event::StartFailed { container, message: e.to_string() });
                        return;
                    }
                };
                if let Some(p) = &self.slots[container].prepared {
                    self.register(container, p, Some(svc.clone()));
                }
                let (kill, killed) = oneshot::channel();
                self.slots[container].kill = Some(Kill::Http(kill));
                self.queue.push_back(Event::ContainerStarted { container });
                self.tasks.spawn(async move {
                    let grace = killed.await.unwrap_or(Duration::ZERO);
                    Box::pin(svc.shutdown(grace)).await;
                    logs.finish_attempt();
                    let status = ExitStatus { code: 0, reason: ExitReason::Completed, message: String::new(), fuel: svc.fuel_consumed() };
                    let _ = tx.send(Box::new(Outcome::Exited { container, status, ran_for: Duration::ZERO }));
                });
            }
            ContainerKind::Command => {
                let (kill, killed) = watch::channel(false);
                self.slots[container].kill = Some(Kill::Command(kill));
                self.queue.push_back(Event::ContainerStarted { container });
                let runtime = self.ctx.runtime.clone();
                self.tasks.spawn(async move {
                    let t0 = std::time::Instant::now();
                    let status = runtime.run(&compiled, &spec, stdin, logs.sink(), killed).await;
                    logs.finish_attempt();
                    let _ = tx.send(Box::new(Outcome::Exited { container, status, ran_for: t0.elapsed() }));
                });
            }
        }
    }

    /// Stops what still runs, then ends the pod as `finish` says.
    async fn finish(mut self, finish: Finish) {
        self.tasks.abort_all();
        if let Some(reporter) = &self.reporter {
            reporter.stop().await;
        }
        let spec = self.state.spec().clone();
        if finish.write_status {
            let status = self.state.status(Utc::now());
            // The last word on the pod (its terminal phase): retried a few times, since no
            // later change will write it again.
            let mut wait = std::time::Duration::from_millis(200);
            for _ in 0..5 {
                if reporter::write(&self.ctx.client, &spec.namespace, &spec.name, &status).await != reporter::Written::Failed {
                    break;
                }
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        if finish.delete_object {
            delete_object(&self.ctx, &spec.namespace, &spec.name, &spec.uid).await;
        }
        if finish.release
            && let Some(held) = &self.held
        {
            self.ctx.pods.remove(&spec.namespace, &spec.name);
            self.ctx.ips.lock().expect("ip lock").release(&held.pod_ip);
            let _ = tokio::fs::remove_dir_all(&self.dir).await;
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Removes the pod object once its containers are stopped (the kubelet's final delete).
async fn delete_object(ctx: &Ctx, ns: &str, name: &str, uid: &str) {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions { uid: Some(uid.to_string()), resource_version: None }),
        ..Default::default()
    };
    if let Err(e) = api.delete(name, &dp).await {
        tracing::debug!(error = %e, pod = name, "final delete failed");
    }
}
