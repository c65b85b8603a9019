//! The pod's status writer: one task per pod that writes the latest status the worker
//! handed it, coalescing a burst of changes (pulled, created, started) into one write.
//!
//! Invariants: a status equal to the last one written is not written again unless the
//! write is forced (the API's copy was changed by someone else); a failed write is retried
//! (back-off from [`RETRY_FIRST`] doubling to [`RETRY_MAX`]) until one succeeds, a newer
//! status supersedes it, or the pod is gone (404): a pod that reached Running and then
//! changes no more must not stay ContainerCreating in the API because one write failed
//! (5,000 pods restarting at once saw that).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::agent::Ctx;

/// How long the writer waits after a change for more before it writes.
const COALESCE: Duration = Duration::from_millis(2);
/// First wait before a failed write is retried; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// How one status write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Written {
    Ok,
    /// The pod is gone: nothing to retry.
    Gone,
    Failed,
}

/// The running status writer of one pod.
pub(super) struct Reporter {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    latest: Mutex<Value>,
    force: AtomicBool,
    changed: Notify,
}

impl Reporter {
    pub(super) fn start(ctx: Arc<Ctx>, namespace: String, name: String) -> Reporter {
        let shared = Arc::new(Shared { latest: Mutex::new(Value::Null), force: AtomicBool::new(false), changed: Notify::new() });
        let task = tokio::spawn(write_changes(shared.clone(), move |status| {
            let (ctx, namespace, name) = (ctx.clone(), namespace.clone(), name.clone());
            async move { write(&ctx, &namespace, &name, &status).await }
        }));
        Reporter { shared, task }
    }

    /// Hands over the current status; `force` writes it even if it did not change.
    pub(super) fn report(&self, status: Value, force: bool) {
        *self.shared.latest.lock().expect("status lock") = status;
        if force {
            self.shared.force.store(true, Ordering::Relaxed);
        }
        self.shared.changed.notify_one();
    }

    /// Stops writing (before the final write, so that no older status lands after it).
    pub(super) fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn write_changes<W, F>(shared: Arc<Shared>, mut write: W)
where
    W: FnMut(Value) -> F,
    F: std::future::Future<Output = Written>,
{
    let mut last = Value::Null;
    let mut retry: Option<Duration> = None;
    loop {
        match retry {
            None => shared.changed.notified().await,
            // A newer status ends the wait at once; it is written in place of the failed one.
            Some(wait) => {
                tokio::select! {
                    () = shared.changed.notified() => {}
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
        tokio::time::sleep(COALESCE).await;
        let status = shared.latest.lock().expect("status lock").clone();
        let forced = shared.force.swap(false, Ordering::Relaxed);
        if retry.is_none() && !forced && strip_times(&status) == strip_times(&last) {
            continue;
        }
        last = status;
        retry = match write(last.clone()).await {
            Written::Ok | Written::Gone => None,
            Written::Failed => Some(retry.map_or(RETRY_FIRST, |d| (d * 2).min(RETRY_MAX))),
        };
    }
}

/// Writes `status` as the pod's status.
pub(super) async fn write(ctx: &Ctx, namespace: &str, name: &str, status: &Value) -> Written {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    match api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await {
        Ok(_) => Written::Ok,
        Err(kube::Error::Api(e)) if e.code == 404 => Written::Gone,
        Err(e) => {
            tracing::debug!(error = %e, pod = %name, "status update failed; retrying");
            Written::Failed
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed write is retried with back-off until it succeeds, and then the writer
    /// rests; a newer status replaces the one being retried.
    #[tokio::test(start_paused = true)]
    async fn failed_writes_are_retried_until_one_succeeds() {
        let shared = Arc::new(Shared { latest: Mutex::new(Value::Null), force: AtomicBool::new(false), changed: Notify::new() });
        let attempts = Arc::new(Mutex::new(Vec::<(Value, tokio::time::Instant)>::new()));
        let log = attempts.clone();
        let task = tokio::spawn(write_changes(shared.clone(), move |status| {
            let log = log.clone();
            async move {
                let mut l = log.lock().expect("log");
                l.push((status, tokio::time::Instant::now()));
                // The first three writes fail (an overloaded API server).
                if l.len() <= 3 { Written::Failed } else { Written::Ok }
            }
        }));
        let report = |v: Value| {
            *shared.latest.lock().expect("lock") = v;
            shared.changed.notify_one();
        };
        let start = tokio::time::Instant::now();
        report(json!({"phase": "Running"}));
        tokio::time::sleep(Duration::from_secs(60)).await;
        {
            let l = attempts.lock().expect("log");
            assert_eq!(l.len(), 4, "three failures, then one success, then nothing: {l:?}");
            assert!(l.iter().all(|(v, _)| v["phase"] == "Running"));
            let gaps: Vec<Duration> = l.windows(2).map(|w| w[1].1 - w[0].1).collect();
            assert!(gaps[0] >= RETRY_FIRST && gaps[1] >= 2 * RETRY_FIRST && gaps[2] >= 4 * RETRY_FIRST, "{gaps:?}");
            assert!(l[3].1 - start < Duration::from_secs(5));
        }
        // An unchanged status is not written again; a new one is.
        report(json!({"phase": "Running"}));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(attempts.lock().expect("log").len(), 4);
        report(json!({"phase": "Succeeded"}));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(attempts.lock().expect("log").last().expect("write").0["phase"], "Succeeded");
        task.abort();
    }
}
