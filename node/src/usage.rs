//! What the node reports of its containers' consumption (measured by the runtime into
//! each container's [`Usage`]): one sampler task for all pods turns cumulative CPU time
//! into a rate every [`SAMPLE_EVERY`] and writes the per-container annotation
//! [`ANNOTATION_PREFIX`]`CONTAINER` (`kubectl describe pod`) every [`ANNOTATE_EVERY`];
//! the node server renders [`metrics`] (Prometheus) and [`summary`] (what the API
//! server's metrics.k8s.io reads) from the same figures.
//!
//! Invariants: no task per pod; an annotation is written only when its container's CPU
//! time or fuel changed since the last successful write (an idle pod causes no writes),
//! at most [`IN_FLIGHT`] writes at once; a failed write is retried at the next round.

use std::sync::Arc;
use std::time::Duration;

use flotilla_api::prometheus::{Encoder, Kind};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::pod_table::{PodEntry, PodTable};
use crate::runtime::{LATENCY_BUCKETS, UsageSnapshot};

/// The sampling window of CPU rates (`usageNanoCores`, PodMetrics' window).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// How often changed usage annotations are written.
pub const ANNOTATE_EVERY: Duration = Duration::from_secs(10);
/// Annotation key prefix; the name part is the container's name. Value:
/// `cpu=SECONDSs fuel=N memory=BYTES peak=BYTES`.
pub const ANNOTATION_PREFIX: &str = "usage.flotilla.dev/";
/// Annotation writes in flight at once.
const IN_FLIGHT: usize = 8;

/// Runs the sampler until `shutdown` turns true.
pub(crate) async fn run(client: kube::Client, pods: Arc<PodTable>, shutdown: watch::Receiver<bool>) {
    let stop = crate::server::shutdown_signal(shutdown);
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = tokio::time::Instant::now();
    let mut last_annotated = last;
    loop {
        tokio::select! {
            () = stop.as_mut() => return,
            _ = tick.tick() => {}
        }
        let now = tokio::time::Instant::now();
        let window = now - last;
        last = now;
        let all = pods.pods();
        for pod in &all {
            for c in pod.containers.read().expect("pod lock").iter() {
                c.spec.usage.sample(window);
            }
        }
        if now - last_annotated + Duration::from_millis(100) >= ANNOTATE_EVERY {
            last_annotated = now;
            let writes = all.iter().filter_map(|pod| annotation_patch(pod).map(|(patch, done)| (pod.clone(), patch, done)));
            futures::stream::iter(writes)
                .for_each_concurrent(IN_FLIGHT, |(pod, patch, done)| {
                    let client = client.clone();
                    async move {
                        let api: Api<Pod> = Api::namespaced(client, &pod.namespace);
                        match api.patch(&pod.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                            Ok(_) => done(),
                            Err(error) => tracing::debug!(%error, pod.namespace = %pod.namespace, pod.name = %pod.name, "usage annotation write failed"),
                        }
                    }
                })
                .await;
        }
    }
}

/// The merge patch of `pod`'s changed usage annotations, and what records them as
/// written; None when nothing changed.
fn annotation_patch(pod: &PodEntry) -> Option<(Value, impl FnOnce() + Send + use<>)> {
    let mut annotations = serde_json::Map::new();
    let mut changed = Vec::new();
    for c in pod.containers.read().expect("pod lock").iter() {
        let u = c.spec.usage.snapshot();
        let cpu_ms = u.cpu_ns / 1_000_000;
        if c.spec.usage.annotated() == (cpu_ms, u.fuel) {
            continue;
        }
        annotations.insert(format!("{ANNOTATION_PREFIX}{}", c.name), Value::String(annotation_value(&u)));
        changed.push((c.clone(), cpu_ms, u.fuel));
    }
    if changed.is_empty() {
        return None;
    }
    let done = move || {
        for (c, cpu_ms, fuel) in changed {
            c.spec.usage.set_annotated(cpu_ms, fuel);
        }
    };
    Some((json!({"metadata": {"annotations": annotations}}), done))
}

/// `cpu=1.234s fuel=5678 memory=65536 peak=131072`.
pub fn annotation_value(u: &UsageSnapshot) -> String {
    format!("cpu={:.3}s fuel={} memory={} peak={}", u.cpu_ns as f64 / 1e9, u.fuel, u.memory_bytes, u.memory_peak_bytes)
}

/// One container's figures with its pod's identity.
struct Row {
    namespace: String,
    pod: String,
    uid: String,
    container: String,
    usage: UsageSnapshot,
}

fn rows(pods: &PodTable) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut all = pods.pods();
    all.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    for pod in all {
        for c in pod.containers.read().expect("pod lock").iter() {
            rows.push(Row {
                namespace: pod.namespace.clone(),
                pod: pod.name.clone(),
                uid: pod.uid.clone(),
                container: c.name.clone(),
                usage: c.spec.usage.snapshot(),
            });
        }
    }
    rows
}

/// The node's per-container metrics in Prometheus' text format, after `node_families`
/// (the node-wide ones, written by the caller's encoder).
pub(crate) fn metrics(pods: &PodTable, e: &mut Encoder) {
    let rows = rows(pods);
    let labels = |r: &Row| [("namespace", r.namespace.clone()), ("pod", r.pod.clone()), ("container", r.container.clone())];
    type Get = fn(&UsageSnapshot) -> Option<f64>;
    let families: [(&str, Kind, &str, Get); 7] = [
        ("container_cpu_usage_seconds_total", Kind::Counter, "CPU time the container's instances ran (thread CPU time, as its CPU limit charges it).", |u| Some(u.cpu_ns as f64 / 1e9)),
        ("flotilla_container_fuel_consumed_total", Kind::Counter, "wasm fuel the container's instances consumed.", |u| Some(u.fuel as f64)),
        ("container_memory_working_set_bytes", Kind::Gauge, "Linear memory of the container's live instances.", |u| Some(u.memory_bytes as f64)),
        ("flotilla_container_memory_peak_bytes", Kind::Gauge, "Most linear memory the container's live instances held at once.", |u| Some(u.memory_peak_bytes as f64)),
        ("flotilla_container_instances", Kind::Gauge, "wasm instances of the container alive (running commands, requests in flight, exec sessions).", |u| Some(u.instances as f64)),
        ("flotilla_container_restarts_total", Kind::Counter, "Times the container was restarted.", |u| Some(u.restarts as f64)),
        ("flotilla_container_http_requests_total", Kind::Counter, "HTTP requests the container served.", |u| u.http.as_ref().map(|h| h.requests as f64)),
    ];
    for (name, kind, help, get) in families {
        e.family(name, kind, help);
        for r in &rows {
            if let Some(v) = get(&r.usage) {
                let l = labels(r);
                e.sample(name, &l.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(), v);
            }
        }
    }
    let name = "flotilla_container_http_request_duration_seconds";
    e.family(name, Kind::Histogram, "How long the container's guests took to handle HTTP requests (instantiation to the end of the response).");
    for r in &rows {
        if let Some(h) = &r.usage.http {
            let l = labels(r);
            let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
            e.histogram(name, &l, &LATENCY_BUCKETS, &h.cumulative_buckets, h.duration_seconds, h.requests);
        }
    }
}

/// The node's summary (a subset of the kubelet's `/stats/summary` shape): per pod and
/// container `cpu.usageNanoCores` (rate over the last [`SAMPLE_EVERY`]),
/// `cpu.usageCoreNanoSeconds`, `memory.workingSetBytes`, plus `fuel`; the node's totals
/// are its containers' sums.
pub(crate) fn summary(pods: &PodTable) -> Value {
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let window = format!("{}s", SAMPLE_EVERY.as_secs());
    let (mut cores, mut cpu_ns, mut memory) = (0u64, 0u64, 0u64);
    let mut out: Vec<Value> = Vec::new();
    let mut current: Option<(String, String)> = None;
    for r in rows(pods) {
        cores += r.usage.nano_cores;
        cpu_ns += r.usage.cpu_ns;
        memory += r.usage.memory_bytes;
        let c = json!({
            "name": r.container,
            "cpu": {"time": time, "usageNanoCores": r.usage.nano_cores, "usageCoreNanoSeconds": r.usage.cpu_ns},
            "memory": {"time": time, "workingSetBytes": r.usage.memory_bytes},
            "fuel": r.usage.fuel,
        });
        let key = (r.namespace.clone(), r.pod.clone());
        if current.as_ref() != Some(&key) {
            out.push(json!({"podRef": {"namespace": r.namespace, "name": r.pod, "uid": r.uid}, "window": window, "containers": []}));
            current = Some(key);
        }
        if let Some(Value::Array(cs)) = out.last_mut().map(|p| &mut p["containers"]) {
            cs.push(c);
        }
    }
    json!({
        "node": {
            "window": window,
            "cpu": {"time": time, "usageNanoCores": cores, "usageCoreNanoSeconds": cpu_ns},
            "memory": {"time": time, "workingSetBytes": memory},
        },
        "pods": out,
    })
}
