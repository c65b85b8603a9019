//! The pod's status writer: one task per pod that writes the latest status the worker
//! handed it, coalescing a burst of changes (pulled, created, started) into one write.
//!
//! Invariants: a status equal to the last one written is not written again unless the
//! write is forced (the API's copy was changed by someone else); writes are best effort
//! (a failed one is logged; the next change writes again).

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
        let task = tokio::spawn(write_changes(shared.clone(), ctx, namespace, name));
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

async fn write_changes(shared: Arc<Shared>, ctx: Arc<Ctx>, namespace: String, name: String) {
    let mut last = Value::Null;
    loop {
        shared.changed.notified().await;
        tokio::time::sleep(COALESCE).await;
        let status = shared.latest.lock().expect("status lock").clone();
        let forced = shared.force.swap(false, Ordering::Relaxed);
        if !forced && strip_times(&status) == strip_times(&last) {
            continue;
        }
        last = status;
        write(&ctx, &namespace, &name, &last).await;
    }
}

/// Writes `status` as the pod's status (best effort).
pub(super) async fn write(ctx: &Ctx, namespace: &str, name: &str, status: &Value) {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    if let Err(e) = api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await {
        tracing::debug!(error = %e, pod = %name, "status update failed");
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
