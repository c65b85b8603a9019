//! One pod's worker: pulls and compiles its images, prepares volumes and env, runs init
//! containers in order and then the containers, restarts them per restartPolicy with
//! back-off, enforces activeDeadlineSeconds, terminates on delete with the grace period,
//! and reports status. Decisions come from the pure `lifecycle` module.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::Utc;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use crate::agent::Ctx;
use crate::images::{PullError, PullPolicy, RegistryAuth, auths_from_dockerconfigjson};
use crate::lifecycle::{self, ContainerRecord, PodRecord, State};
use crate::logs::ContainerLogs;
use crate::pods::{ContainerEntry, PodEntry};
use crate::runtime::{Compiled, ContainerKind, ExitReason, InstanceSpec, Limits, Mount};

/// Default deadline of one HTTP request to a container.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Shared state of one pod's run.
struct PodRun {
    ctx: Arc<Ctx>,
    pod: Value,
    ns: String,
    name: String,
    uid: String,
    restart_policy: String,
    rec: Mutex<PodRecord>,
    report: Notify,
    /// Write the status even if it did not change since the last write: the API's copy
    /// was changed by someone else (the node lifecycle controller marks pods not Ready
    /// while this node is not Ready; the agent restores what it observes).
    force_report: std::sync::atomic::AtomicBool,
    entry: Arc<PodEntry>,
    dir: PathBuf,
    /// Grace period of the current termination, in seconds.
    grace: AtomicU64,
}

/// A container ready to run.
struct Prepared {
    name: String,
    init: bool,
    compiled: Arc<Compiled>,
    spec: InstanceSpec,
    ports: Vec<u16>,
    logs: Arc<ContainerLogs>,
    fuel: Arc<AtomicU64>,
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

impl PodRun {
    fn record(&self, f: impl FnOnce(&mut PodRecord)) {
        f(&mut self.rec.lock().expect("pod record lock"));
        self.report.notify_one();
    }

    fn set_state(&self, name: &str, init: bool, f: impl FnOnce(&mut ContainerRecord)) {
        self.record(|rec| {
            let list = if init { &mut rec.init } else { &mut rec.main };
            if let Some(c) = list.iter_mut().find(|c| c.name == name) {
                f(c);
            }
        });
    }

    fn event(&self, type_: &str, reason: &str, message: &str) {
        self.ctx.event(&self.pod, type_, reason, message);
    }

    fn status_json(&self) -> Value {
        let mut rec = self.rec.lock().expect("pod record lock");
        lifecycle::pod_status(&mut rec, &self.restart_policy, Utc::now())
    }

    async fn push_status(&self) {
        let status = self.status_json();
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        if let Err(e) = api.patch_status(&self.name, &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await {
            tracing::debug!(error = %e, pod = %self.name, "status update failed");
        }
    }
}

/// Reports status whenever the record changes (coalescing bursts).
async fn reporter(run: Arc<PodRun>) {
    let mut last = Value::Null;
    loop {
        run.report.notified().await;
        // Coalesce a burst of changes (pulled, created, started) into one write.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let status = run.status_json();
        let forced = run.force_report.swap(false, Ordering::Relaxed);
        if !forced && strip_times(&status) == strip_times(&last) {
            continue;
        }
        last = status;
        run.push_status().await;
    }
}

/// The status of a pod status's Ready condition.
fn ready_condition(status: &Value) -> Option<&str> {
    status["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")?["status"].as_str()
}

fn strip_times(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(conds) = v.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conds {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastProbeTime");
            }
        }
    }
    v
}

fn container_specs(pod: &Value) -> Vec<(Value, bool)> {
    let mut out = Vec::new();
    for (list, init) in [("initContainers", true), ("containers", false)] {
        if let Some(cs) = pod["spec"][list].as_array() {
            out.extend(cs.iter().map(|c| (c.clone(), init)));
        }
    }
    out
}

/// Runs a pod until it is deleted.
pub(crate) async fn run(ctx: Arc<Ctx>, pod: Value, mut updates: watch::Receiver<Option<Value>>) {
    let ns = s(&pod["metadata"]["namespace"]);
    let name = s(&pod["metadata"]["name"]);
    let uid = s(&pod["metadata"]["uid"]);
    let phase = s(&pod["status"]["phase"]);
    let dir = ctx.config.data_dir.join("pods").join(&uid);

    // A pod that already finished (in an earlier life of this node) only awaits deletion.
    if phase == "Succeeded" || phase == "Failed" {
        loop {
            let deleting = match &*updates.borrow() {
                None => Some(false),
                Some(p) if !p["metadata"]["deletionTimestamp"].is_null() => Some(true),
                _ => None,
            };
            match deleting {
                Some(true) => {
                    delete_object(&ctx, &ns, &name, &uid).await;
                    return;
                }
                Some(false) => return,
                None => {}
            }
            if updates.changed().await.is_err() {
                return;
            }
        }
    }

    // Keep the address a pod had in an earlier life of this node, else take a new one.
    let pod_ip = {
        let mut ips = ctx.ips.lock().expect("ip lock");
        let old = s(&pod["status"]["podIP"]);
        if !old.is_empty() && ips.claim(&old) { old } else { ips.allocate().unwrap_or_default() }
    };
    let has_init = pod["spec"]["initContainers"].as_array().is_some_and(|a| !a.is_empty());
    let mut rec = PodRecord { host_ip: ctx.host_ip.clone(), pod_ip: pod_ip.clone(), start_time: Some(Utc::now()), initialized: !has_init, ..Default::default() };
    for (c, init) in container_specs(&pod) {
        let reason = if init || has_init { "PodInitializing" } else { "ContainerCreating" };
        let r = ContainerRecord::new(&s(&c["name"]), &s(&c["image"]), reason);
        if init { rec.init.push(r) } else { rec.main.push(r) }
    }
    let entry = Arc::new(PodEntry { uid: uid.clone(), namespace: ns.clone(), name: name.clone(), containers: Default::default() });
    ctx.pods.insert(entry.clone());
    let run = Arc::new(PodRun {
        ctx: ctx.clone(),
        pod: pod.clone(),
        ns: ns.clone(),
        name: name.clone(),
        uid: uid.clone(),
        restart_policy: pod["spec"]["restartPolicy"].as_str().unwrap_or("Always").to_string(),
        rec: Mutex::new(rec),
        report: Notify::new(),
        force_report: std::sync::atomic::AtomicBool::new(false),
        entry,
        dir,
        grace: AtomicU64::new(pod["spec"]["terminationGracePeriodSeconds"].as_u64().unwrap_or(30)),
    });
    // The first status goes out with the next change rather than delaying the start.
    let reporter_task = tokio::spawn(reporter(run.clone()));
    run.report.notify_one();

    let (kill_tx, kill_rx) = watch::channel(false);
    let mut containers = tokio::spawn(run_containers(run.clone(), kill_rx));
    let mut containers_done = false;
    let deadline = pod["spec"]["activeDeadlineSeconds"].as_u64().map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut deadline_hit = false;

    let deleted_outright = loop {
        tokio::select! {
            changed = updates.changed() => {
                let cur = if changed.is_err() { None } else { updates.borrow().clone() };
                match cur {
                    None => break true,
                    Some(p) if !p["metadata"]["deletionTimestamp"].is_null() => {
                        let grace = p["metadata"]["deletionGracePeriodSeconds"].as_u64().unwrap_or(30);
                        run.grace.store(grace, Ordering::Relaxed);
                        break false;
                    }
                    Some(p) => {
                        // The API says Ready differently from what this agent observes.
                        if ready_condition(&p["status"]).is_some_and(|r| Some(r) != ready_condition(&run.status_json())) {
                            run.force_report.store(true, Ordering::Relaxed);
                            run.report.notify_one();
                        }
                    }
                }
            }
            _ = async { match deadline { Some(d) if !deadline_hit => tokio::time::sleep_until(d).await, _ => std::future::pending().await } } => {
                deadline_hit = true;
                run.record(|r| r.failed = Some(("DeadlineExceeded".into(), "Pod was active on the node longer than the specified deadline".into())));
                run.event("Normal", "DeadlineExceeded", "Pod was active on the node longer than the specified deadline");
                run.grace.store(0, Ordering::Relaxed);
                let _ = kill_tx.send(true);
            }
            _ = &mut containers, if !containers_done => {
                containers_done = true;
                run.report.notify_one();
            }
        }
    };

    // Terminate: stop taking requests, let in-flight ones finish, kill after the grace period.
    let grace = run.grace.load(Ordering::Relaxed);
    for c in run.rec.lock().expect("pod record lock").main.iter().filter(|c| matches!(c.state, State::Running { .. })) {
        run.ctx.event(&run.pod, "Normal", "Killing", &format!("Stopping container {}", c.name));
    }
    let _ = kill_tx.send(true);
    if !containers_done {
        let _ = tokio::time::timeout(Duration::from_secs(grace + 5), &mut containers).await;
        containers.abort();
    }
    reporter_task.abort();
    if !deleted_outright {
        run.push_status().await;
        delete_object(&ctx, &ns, &name, &uid).await;
    }
    ctx.pods.remove(&ns, &name);
    ctx.ips.lock().expect("ip lock").release(&pod_ip);
    let _ = tokio::fs::remove_dir_all(&run.dir).await;
}

/// Removes the pod object once its containers are stopped (the kubelet's final delete).
async fn delete_object(ctx: &Arc<Ctx>, ns: &str, name: &str, uid: &str) {
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

async fn wait_killed(kill: &mut watch::Receiver<bool>) {
    while !*kill.borrow() {
        if kill.changed().await.is_err() {
            return;
        }
    }
}

/// Sleeps `d` unless killed first; true if killed.
async fn sleep_or_killed(d: Duration, kill: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *kill.borrow(),
        _ = wait_killed(kill) => true,
    }
}

async fn run_containers(run: Arc<PodRun>, mut kill: watch::Receiver<bool>) {
    let volumes = match prepare_volumes(&run).await {
        Ok(v) => v,
        Err(msg) => {
            for (c, init) in container_specs(&run.pod) {
                run.set_state(&s(&c["name"]), init, |r| r.state = State::Waiting { reason: "CreateContainerConfigError".into(), message: msg.clone() });
            }
            run.event("Warning", "FailedMount", &msg);
            return;
        }
    };
    let mut prepared = Vec::new();
    for (c, init) in container_specs(&run.pod) {
        match prepare_container(&run, &c, init, &volumes, &mut kill).await {
            Some(p) => prepared.push(p),
            None => return,
        }
    }
    let (init, main): (Vec<Prepared>, Vec<Prepared>) = prepared.into_iter().partition(|p| p.init);
    for p in init {
        if !run_command(&run, &p, &mut kill.clone()).await {
            return;
        }
    }
    run.record(|r| {
        r.initialized = true;
        for c in r.main.iter_mut() {
            if let State::Waiting { reason, .. } = &mut c.state
                && reason == "PodInitializing"
            {
                *reason = "ContainerCreating".into();
            }
        }
    });
    let tasks: Vec<_> = main
        .into_iter()
        .map(|p| {
            let run = run.clone();
            let mut kill = kill.clone();
            tokio::spawn(async move {
                match p.compiled.kind {
                    ContainerKind::Http => run_http(&run, &p, &mut kill).await,
                    ContainerKind::Command => {
                        run_command(&run, &p, &mut kill).await;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

/// Host directories of the pod's volumes, by volume name, with whether they must be read-only.
async fn prepare_volumes(run: &PodRun) -> Result<Vec<(String, PathBuf, bool)>, String> {
    let mut out = Vec::new();
    let Some(vols) = run.pod["spec"]["volumes"].as_array() else { return Ok(out) };
    for v in vols {
        let name = s(&v["name"]);
        if !safe_component(&name) {
            return Err(format!("volume name {name:?} is not a valid path component"));
        }
        let dir = run.dir.join("volumes").join(&name);
        tokio::fs::create_dir_all(&dir).await.map_err(|e| format!("volume {name}: {e}"))?;
        if v.get("emptyDir").is_some() {
            out.push((name, dir, false));
        } else if let Some(cm) = v.get("configMap") {
            let api: Api<ConfigMap> = Api::namespaced(run.ctx.client.clone(), &run.ns);
            let cm_name = s(&cm["name"]);
            match api.get_opt(&cm_name).await {
                Ok(Some(obj)) => {
                    for (k, val) in obj.data.unwrap_or_default() {
                        if safe_component(&k) {
                            tokio::fs::write(dir.join(&k), val).await.map_err(|e| format!("volume {name}: {e}"))?;
                        }
                    }
                    for (k, val) in obj.binary_data.unwrap_or_default() {
                        if safe_component(&k) {
                            tokio::fs::write(dir.join(&k), val.0).await.map_err(|e| format!("volume {name}: {e}"))?;
                        }
                    }
                }
                Ok(None) if cm["optional"] == json!(true) => {}
                Ok(None) => return Err(format!("MountVolume.SetUp failed for volume \"{name}\" : configmap \"{cm_name}\" not found")),
                Err(e) => return Err(format!("volume {name}: {e}")),
            }
            out.push((name, dir, true));
        } else if let Some(sec) = v.get("secret") {
            let api: Api<Secret> = Api::namespaced(run.ctx.client.clone(), &run.ns);
            let sec_name = s(&sec["secretName"]);
            match api.get_opt(&sec_name).await {
                Ok(Some(obj)) => {
                    for (k, val) in obj.data.unwrap_or_default() {
                        if safe_component(&k) {
                            tokio::fs::write(dir.join(&k), val.0).await.map_err(|e| format!("volume {name}: {e}"))?;
                        }
                    }
                }
                Ok(None) if sec["optional"] == json!(true) => {}
                Ok(None) => return Err(format!("MountVolume.SetUp failed for volume \"{name}\" : secret \"{sec_name}\" not found")),
                Err(e) => return Err(format!("volume {name}: {e}")),
            }
            out.push((name, dir, true));
        } else if let Some(pvc) = v.get("persistentVolumeClaim") {
            // Node-local storage for a claim: a directory that outlives the pod, so the
            // replacement pod on this node (a StatefulSet's) gets the same data.
            let claim = s(&pvc["claimName"]);
            if !safe_component(&claim) {
                return Err(format!("volume \"{name}\": invalid claimName {claim:?}"));
            }
            let claim_dir = run.ctx.config.data_dir.join("claims").join(&run.ns).join(&claim);
            tokio::fs::create_dir_all(&claim_dir).await.map_err(|e| format!("volume {name}: {e}"))?;
            out.push((name, claim_dir, pvc["readOnly"] == json!(true)));
        } else {
            return Err(format!("volume \"{name}\": only emptyDir, configMap, secret and persistentVolumeClaim volumes are supported"));
        }
    }
    Ok(out)
}

async fn resolve_env(run: &PodRun, c: &Value) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: String, v: String| {
        env.retain(|(n, _)| *n != k);
        env.push((k, v));
    };
    let pod = &run.pod;
    let pod_ip = run.rec.lock().expect("pod record lock").pod_ip.clone();
    if let Some(from) = c["envFrom"].as_array() {
        for f in from {
            let prefix = s(&f["prefix"]);
            if let Some(r) = f.get("configMapRef") {
                let api: Api<ConfigMap> = Api::namespaced(run.ctx.client.clone(), &run.ns);
                match api.get_opt(&s(&r["name"])).await.map_err(|e| e.to_string())? {
                    Some(cm) => cm.data.unwrap_or_default().into_iter().for_each(|(k, v)| set(format!("{prefix}{k}"), v)),
                    None if r["optional"] == json!(true) => {}
                    None => return Err(format!("configmap \"{}\" not found", s(&r["name"]))),
                }
            }
            if let Some(r) = f.get("secretRef") {
                let api: Api<Secret> = Api::namespaced(run.ctx.client.clone(), &run.ns);
                match api.get_opt(&s(&r["name"])).await.map_err(|e| e.to_string())? {
                    Some(sec) => sec.data.unwrap_or_default().into_iter().for_each(|(k, v)| set(format!("{prefix}{k}"), String::from_utf8_lossy(&v.0).into_owned())),
                    None if r["optional"] == json!(true) => {}
                    None => return Err(format!("secret \"{}\" not found", s(&r["name"]))),
                }
            }
        }
    }
    for e in c["env"].as_array().cloned().unwrap_or_default() {
        let name = s(&e["name"]);
        if let Some(v) = e.get("value") {
            set(name, v.as_str().unwrap_or("").to_string());
            continue;
        }
        let Some(from) = e.get("valueFrom") else {
            set(name, String::new());
            continue;
        };
        if let Some(f) = from.get("fieldRef") {
            let path = s(&f["fieldPath"]);
            let value = match path.as_str() {
                "metadata.name" => s(&pod["metadata"]["name"]),
                "metadata.namespace" => s(&pod["metadata"]["namespace"]),
                "metadata.uid" => s(&pod["metadata"]["uid"]),
                "spec.nodeName" => run.ctx.config.name.clone(),
                "spec.serviceAccountName" => s(&pod["spec"]["serviceAccountName"]),
                "status.podIP" => pod_ip.clone(),
                "status.hostIP" => run.ctx.host_ip.clone(),
                p => {
                    let label = p.strip_prefix("metadata.labels['").and_then(|r| r.strip_suffix("']"));
                    let ann = p.strip_prefix("metadata.annotations['").and_then(|r| r.strip_suffix("']"));
                    match (label, ann) {
                        (Some(l), _) => s(&pod["metadata"]["labels"][l]),
                        (_, Some(a)) => s(&pod["metadata"]["annotations"][a]),
                        _ => return Err(format!("unsupported fieldRef {p}")),
                    }
                }
            };
            set(name, value);
        } else if let Some(r) = from.get("configMapKeyRef") {
            let api: Api<ConfigMap> = Api::namespaced(run.ctx.client.clone(), &run.ns);
            let cm = api.get_opt(&s(&r["name"])).await.map_err(|e| e.to_string())?;
            match cm.and_then(|cm| cm.data.unwrap_or_default().remove(&s(&r["key"]))) {
                Some(v) => set(name, v),
                None if r["optional"] == json!(true) => {}
                None => return Err(format!("couldn't find key {} in ConfigMap {}/{}", s(&r["key"]), run.ns, s(&r["name"]))),
            }
        } else if let Some(r) = from.get("secretKeyRef") {
            let api: Api<Secret> = Api::namespaced(run.ctx.client.clone(), &run.ns);
            let sec = api.get_opt(&s(&r["name"])).await.map_err(|e| e.to_string())?;
            match sec.and_then(|sec| sec.data.unwrap_or_default().remove(&s(&r["key"]))) {
                Some(v) => set(name, String::from_utf8_lossy(&v.0).into_owned()),
                None if r["optional"] == json!(true) => {}
                None => return Err(format!("couldn't find key {} in Secret {}/{}", s(&r["key"]), run.ns, s(&r["name"]))),
            }
        }
    }
    Ok(env)
}

async fn pull_auths(run: &PodRun) -> Vec<RegistryAuth> {
    let mut out = Vec::new();
    // The cluster's own registry is the API server: the node's token opens it.
    if let Some(host) = run.ctx.config.server.split("://").nth(1).map(|h| h.trim_end_matches('/').to_string()) {
        out.push(RegistryAuth { registry: host, username: crate::images::FLOTILLA_REGISTRY_USER.to_string(), password: run.ctx.config.token.clone() });
    }
    let api: Api<Secret> = Api::namespaced(run.ctx.client.clone(), &run.ns);
    for r in run.pod["spec"]["imagePullSecrets"].as_array().cloned().unwrap_or_default() {
        if let Ok(Some(sec)) = api.get_opt(&s(&r["name"])).await
            && let Some(data) = sec.data.as_ref().and_then(|d| d.get(".dockerconfigjson"))
        {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&data.0);
            match auths_from_dockerconfigjson(&b64) {
                Ok(a) => out.extend(a),
                Err(e) => tracing::warn!(error = %e, "bad imagePullSecret"),
            }
        }
    }
    out
}

/// Pulls and compiles a container's image and builds what its instances are granted.
/// None when the pod is being killed (or the container can never start).
async fn prepare_container(run: &Arc<PodRun>, c: &Value, init: bool, volumes: &[(String, PathBuf, bool)], kill: &mut watch::Receiver<bool>) -> Option<Prepared> {
    let name = s(&c["name"]);
    let image = s(&c["image"]);
    let policy = PullPolicy::for_container(&image, c["imagePullPolicy"].as_str());
    let auths = pull_auths(run).await;
    let mut level = 0;
    let compiled = loop {
        if *kill.borrow() {
            return None;
        }
        let started = Instant::now();
        match run.ctx.images.pull(&image, policy, &auths).await {
            Ok(img) => {
                if img.from_cache {
                    run.event("Normal", "Pulled", &format!("Container image \"{image}\" already present on machine"));
                } else {
                    run.event("Normal", "Pulling", &format!("Pulling image \"{image}\""));
                    run.event("Normal", "Pulled", &format!("Successfully pulled image \"{image}\" in {}ms", started.elapsed().as_millis()));
                }
                let digest = img.digest.clone();
                let image_id = format!("{}@{}", repository(&image), img.manifest_digest.as_deref().unwrap_or(&img.digest));
                run.set_state(&name, init, |r| r.image_id = image_id.clone());
                let rt = run.ctx.runtime.clone();
                let bytes = img.bytes.clone();
                let d2 = digest.clone();
                match tokio::task::spawn_blocking(move || rt.prepare(&d2, &bytes)).await {
                    Ok(Ok(compiled)) => break compiled,
                    Ok(Err(e)) => {
                        let msg = format!("failed to compile image \"{image}\": {e}");
                        run.set_state(&name, init, |r| r.state = State::Waiting { reason: "CreateContainerError".into(), message: msg.clone() });
                        run.event("Warning", "Failed", &format!("Error: {msg}"));
                        wait_killed(kill).await;
                        return None;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "compile task failed");
                        return None;
                    }
                }
            }
            Err(e) => {
                run.event("Normal", "Pulling", &format!("Pulling image \"{image}\""));
                let (reason, retry) = match &e {
                    PullError::InvalidImageName(_) => ("InvalidImageName", false),
                    PullError::ErrImageNeverPull(_) => ("ErrImageNeverPull", false),
                    _ => ("ErrImagePull", true),
                };
                let msg = e.to_string();
                run.set_state(&name, init, |r| r.state = State::Waiting { reason: reason.into(), message: msg.clone() });
                run.event("Warning", "Failed", &format!("Failed to pull image \"{image}\": {msg}"));
                run.event("Warning", "Failed", &format!("Error: {reason}"));
                if !retry {
                    wait_killed(kill).await;
                    return None;
                }
                let (delay, next) = run.ctx.config.backoff.next(level, Duration::ZERO);
                level = next;
                if sleep_or_killed(Duration::from_millis(500).min(delay), kill).await {
                    return None;
                }
                run.set_state(&name, init, |r| r.state = State::Waiting { reason: "ImagePullBackOff".into(), message: format!("Back-off pulling image \"{image}\"") });
                run.event("Normal", "BackOff", &format!("Back-off pulling image \"{image}\""));
                if sleep_or_killed(delay, kill).await {
                    return None;
                }
            }
        }
    };
    let env = loop {
        match resolve_env(run, c).await {
            Ok(env) => break env,
            Err(msg) => {
                run.set_state(&name, init, |r| r.state = State::Waiting { reason: "CreateContainerConfigError".into(), message: msg.clone() });
                run.event("Warning", "Failed", &format!("Error: {msg}"));
                if sleep_or_killed(Duration::from_secs(2), kill).await {
                    return None;
                }
            }
        }
    };
    let mut mounts = Vec::new();
    for m in c["volumeMounts"].as_array().cloned().unwrap_or_default() {
        if let Some((_, dir, ro)) = volumes.iter().find(|(n, _, _)| *n == s(&m["name"])) {
            let host = match m["subPath"].as_str().filter(|sub| !sub.is_empty()) {
                None => dir.clone(),
                Some(sub) => match contained(dir, sub) {
                    Some(p) => p,
                    None => {
                        let msg = format!("volumeMount {}: subPath {sub:?} must be a relative path inside the volume", s(&m["name"]));
                        run.set_state(&name, init, |r| r.state = State::Waiting { reason: "CreateContainerConfigError".into(), message: msg.clone() });
                        run.event("Warning", "Failed", &format!("Error: {msg}"));
                        wait_killed(kill).await;
                        return None;
                    }
                },
            };
            mounts.push(Mount { host_path: host, guest_path: s(&m["mountPath"]), read_only: *ro || m["readOnly"] == json!(true) });
        }
    }
    let words = |field: &str| -> Vec<String> {
        c[field].as_array().map(|a| a.iter().map(|w| flotilla_api::pod::expand(&s(w), &env)).collect()).unwrap_or_default()
    };
    let mut argv = words("command");
    if argv.is_empty() {
        argv.push(name.clone());
    }
    argv.extend(words("args"));
    let limits = &c["resources"]["limits"];
    let limits = Limits {
        memory_bytes: limits["memory"].as_str().and_then(|q| flotilla_api::quantity::bytes(q).ok()),
        cpu_millis: limits["cpu"].as_str().and_then(|q| flotilla_api::quantity::millicores(q).ok()),
        request_timeout: Some(REQUEST_TIMEOUT),
    };
    let ports = c["ports"].as_array().map(|a| a.iter().filter_map(|p| p["containerPort"].as_u64()).map(|p| p as u16).collect()).unwrap_or_default();
    if !safe_component(&name) {
        tracing::error!(container = %name, "container name is not a valid path component");
        return None;
    }
    let logs = match ContainerLogs::open(run.dir.join("logs").join(&name), run.ctx.config.max_log_bytes) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "log dir");
            return None;
        }
    };
    let spec = InstanceSpec { argv, env, mounts, limits };
    run.entry.set_container(Arc::new(ContainerEntry { name: name.clone(), compiled: Some(compiled.clone()), spec: spec.clone(), http: None, ports: Vec::clone(&ports), logs: logs.clone() }));
    Some(Prepared { name, init, compiled, spec, ports, logs, fuel: Arc::new(AtomicU64::new(0)) })
}

/// True for a name usable as one path component under a pod's directory.
fn safe_component(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// `dir/sub` when `sub` is a relative path that stays inside `dir` once symlinks are
/// resolved (a guest may have planted one in a writable volume); created if missing.
fn contained(dir: &std::path::Path, sub: &str) -> Option<PathBuf> {
    let rel = std::path::Path::new(sub);
    if !rel.components().all(|c| matches!(c, std::path::Component::Normal(_))) {
        return None;
    }
    let base = std::fs::canonicalize(dir).ok()?;
    let joined = base.join(rel);
    let _ = std::fs::create_dir_all(&joined);
    let real = std::fs::canonicalize(&joined).ok()?;
    real.starts_with(&base).then_some(real)
}

/// The repository part of an image reference (no tag, no digest), as imageIDs name it.
fn repository(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    match no_digest.rfind(':') {
        Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
        _ => no_digest,
    }
}

fn container_id(run: &PodRun, name: &str, n: u32) -> String {
    format!("wasm://{}/{}/{}", run.uid, name, n)
}

/// Runs an HTTP container until the pod is killed, then drains it within the grace period.
async fn run_http(run: &Arc<PodRun>, p: &Prepared, kill: &mut watch::Receiver<bool>) {
    p.logs.start_attempt();
    let svc = match run.ctx.runtime.serve(&p.compiled, p.spec.clone(), p.logs.sink()) {
        Ok(svc) => Arc::new(svc),
        Err(e) => {
            let msg = e.to_string();
            run.set_state(&p.name, false, |r| r.state = State::Waiting { reason: "CreateContainerError".into(), message: msg.clone() });
            run.event("Warning", "Failed", &format!("Error: {msg}"));
            return;
        }
    };
    run.entry.set_container(Arc::new(ContainerEntry {
        name: p.name.clone(),
        compiled: Some(p.compiled.clone()),
        spec: p.spec.clone(),
        http: Some(svc.clone()),
        ports: p.ports.clone(),
        logs: p.logs.clone(),
    }));
    let started = Utc::now();
    run.set_state(&p.name, false, |r| {
        r.state = State::Running { started_at: started };
        r.ready = true;
        r.container_id = container_id(run, &p.name, 0);
    });
    run.event("Normal", "Created", &format!("Created container: {}", p.name));
    run.event("Normal", "Started", &format!("Started container {}", p.name));
    wait_killed(kill).await;
    run.set_state(&p.name, false, |r| r.ready = false);
    svc.shutdown(Duration::from_secs(run.grace.load(Ordering::Relaxed))).await;
    p.fuel.store(svc.fuel_consumed(), Ordering::Relaxed);
    p.logs.finish_attempt();
    run.set_state(&p.name, false, |r| {
        r.state = State::Terminated { exit_code: 0, reason: "Completed".into(), message: String::new(), started_at: started, finished_at: Utc::now() };
    });
}

/// Runs a command container (restarting it per policy); returns true if it ended
/// successfully for good (what an init container must do before the next starts).
async fn run_command(run: &Arc<PodRun>, p: &Prepared, kill: &mut watch::Receiver<bool>) -> bool {
    let mut level = 0;
    let mut attempt = 0u32;
    loop {
        if *kill.borrow() {
            return false;
        }
        p.logs.start_attempt();
        let started = Utc::now();
        let t0 = Instant::now();
        run.set_state(&p.name, p.init, |r| {
            r.state = State::Running { started_at: started };
            r.ready = !p.init;
            r.container_id = container_id(run, &p.name, attempt);
        });
        run.event("Normal", "Created", &format!("Created container: {}", p.name));
        run.event("Normal", "Started", &format!("Started container {}", p.name));
        let st = run.ctx.runtime.run(&p.compiled, &p.spec, None, p.logs.sink(), kill.clone()).await;
        p.logs.finish_attempt();
        p.fuel.fetch_add(st.fuel, Ordering::Relaxed);
        let reason = match st.reason {
            ExitReason::Completed => "Completed",
            ExitReason::OOMKilled => "OOMKilled",
            ExitReason::Error | ExitReason::Killed => "Error",
        };
        let terminated = State::Terminated { exit_code: st.code, reason: reason.into(), message: st.message.clone(), started_at: started, finished_at: Utc::now() };
        let killed = *kill.borrow();
        let restart = !killed
            && if p.init { st.code != 0 && run.restart_policy != "Never" } else { lifecycle::should_restart(&run.restart_policy, st.code) };
        if !restart {
            run.set_state(&p.name, p.init, |r| {
                r.state = terminated.clone();
                r.ready = false;
            });
            if st.code != 0 && !killed {
                run.event("Warning", "Failed", &format!("Container {} failed: {} (exit code {})", p.name, if st.message.is_empty() { reason } else { &st.message }, st.code));
            }
            return st.code == 0 && !killed;
        }
        let (delay, next) = run.ctx.config.backoff.next(level, t0.elapsed());
        level = next;
        let msg = format!("back-off {}s restarting failed container={} pod={}_{}({})", delay.as_secs(), p.name, run.name, run.ns, run.uid);
        run.set_state(&p.name, p.init, |r| {
            r.last_terminated = Some(terminated.clone());
            r.state = State::Waiting { reason: "CrashLoopBackOff".into(), message: msg.clone() };
            r.ready = false;
        });
        run.event("Warning", "BackOff", &format!("Back-off restarting failed container {} in pod {}_{}({})", p.name, run.name, run.ns, run.uid));
        if sleep_or_killed(delay, kill).await {
            run.set_state(&p.name, p.init, |r| {
                if let Some(t) = r.last_terminated.clone() {
                    r.state = t;
                }
            });
            return false;
        }
        attempt += 1;
        run.set_state(&p.name, p.init, |r| r.restart_count += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::{contained, repository, safe_component};

    #[test]
    fn sub_paths_stay_inside_the_volume() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = std::fs::canonicalize(dir.path()).expect("canonical");
        assert_eq!(contained(dir.path(), "a/b"), Some(base.join("a/b")));
        for bad in ["/", "/etc", "../x", "a/../../x", "./a"] {
            assert_eq!(contained(dir.path(), bad), None, "{bad}");
        }
        std::os::unix::fs::symlink("../../..", dir.path().join("esc")).expect("symlink");
        assert_eq!(contained(dir.path(), "esc"), None);
        assert!(!safe_component("..") && !safe_component("a/b") && safe_component("data"));
    }

    #[test]
    fn repository_drops_tag_and_digest_but_not_port() {
        assert_eq!(repository("127.0.0.1:5000/hello:v1"), "127.0.0.1:5000/hello");
        assert_eq!(repository("127.0.0.1:5000/team/hello@sha256:abc"), "127.0.0.1:5000/team/hello");
        assert_eq!(repository("127.0.0.1:5000/hello"), "127.0.0.1:5000/hello");
        assert_eq!(repository("file:///opt/x.wasm"), "file:///opt/x.wasm");
    }
}
