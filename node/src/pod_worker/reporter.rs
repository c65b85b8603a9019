//! The node's status writer: one for all pods. A pod worker hands its latest status to
//! its [`Reporter`]; a dispatcher writes the pods that changed, at most [`IN_FLIGHT`] at a
//! time, each with the newest status it has when its turn comes (a burst of changes --
//! pulled, created, started -- and a backlog both coalesce into one write per pod).
//!
//! Invariants: a pod idle between changes costs no task, only its slot; a status equal to
//! the last one written is not written again unless the write is forced (the API's copy
//! was changed by someone else); a failed write is retried (back-off from
//! [`RETRY_FIRST`] doubling to [`RETRY_MAX`]) until one succeeds, a newer status
//! supersedes it, or the pod is gone (404): a pod that reached Running and then changes no
//! more must not stay ContainerCreating in the API because one write failed (5,000 pods
//! restarting at once saw that); after [`Reporter::stop`] returns, no write of the pod is
//! in flight or will start. Bounding the writes in flight keeps the node's API client on
//! a few keep-alive connections: 5,000 pods starting at once opened thousands before.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore, mpsc};

/// Status writes in flight at once, node-wide.
pub(crate) const IN_FLIGHT: usize = 16;
/// First wait before a failed write is retried; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// How one status write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    Ok,
    /// The pod is gone: nothing to retry.
    Gone,
    Failed,
}

type WriteFn = Arc<dyn Fn(String, String, Value) -> Pin<Box<dyn Future<Output = Written> + Send>> + Send + Sync>;

/// The node-wide writer: a queue of pods with a status to write.
pub(crate) struct StatusWriter {
    queue: mpsc::UnboundedSender<Arc<Slot>>,
}

/// One pod's place in the writer.
struct Slot {
    namespace: String,
    name: String,
    state: Mutex<SlotState>,
    /// Signalled when a write of this pod ends.
    idle: Notify,
}

#[derive(Default)]
struct SlotState {
    latest: Value,
    /// Bumped by every report.
    generation: u64,
    force: bool,
    /// In the queue (or about to be).
    queued: bool,
    writing: bool,
    stopped: bool,
    /// Digest of the last status written (times stripped); a dense node keeps no copy.
    last: Option<u64>,
    /// The back-off of the failed write being retried.
    retry: Option<Duration>,
}

impl StatusWriter {
    /// Writes through `client` (PATCH pods/NAME/status).
    pub(crate) fn start(client: kube::Client) -> StatusWriter {
        StatusWriter::with(IN_FLIGHT, Arc::new(move |ns, name, status| {
            let client = client.clone();
            Box::pin(async move { write(&client, &ns, &name, &status).await })
        }))
    }

    fn with(in_flight: usize, write: WriteFn) -> StatusWriter {
        let (queue, mut rx) = mpsc::unbounded_channel::<Arc<Slot>>();
        let requeue = queue.clone();
        let permits = Arc::new(Semaphore::new(in_flight));
        tokio::spawn(async move {
            while let Some(slot) = rx.recv().await {
                let Ok(permit) = permits.clone().acquire_owned().await else { return };
                let (write, requeue) = (write.clone(), requeue.clone());
                tokio::spawn(async move {
                    write_one(&slot, &write, &requeue).await;
                    drop(permit);
                });
            }
        });
        StatusWriter { queue }
    }

    /// The status writer of one pod.
    pub(super) fn reporter(&self, namespace: String, name: String) -> Reporter {
        let slot = Arc::new(Slot { namespace, name, state: Mutex::new(SlotState::default()), idle: Notify::new() });
        Reporter { slot, queue: self.queue.clone() }
    }
}

/// Writes the slot's newest status if it needs writing, then queues it again if a newer
/// one came meanwhile, or arms the retry of a failed write.
async fn write_one(slot: &Arc<Slot>, write: &WriteFn, queue: &mpsc::UnboundedSender<Arc<Slot>>) {
    let (status, generation) = {
        let mut st = slot.state.lock().expect("status lock");
        st.queued = false;
        if st.stopped || st.writing {
            return;
        }
        let forced = std::mem::take(&mut st.force);
        if st.retry.is_none() && !forced && st.last == Some(digest(&st.latest)) {
            // Nothing new: the status need not stay in memory either.
            st.latest = Value::Null;
            return;
        }
        st.writing = true;
        (st.latest.clone(), st.generation)
    };
    let written = write(slot.namespace.clone(), slot.name.clone(), status.clone()).await;
    let retry_after = {
        let mut st = slot.state.lock().expect("status lock");
        st.writing = false;
        match written {
            Written::Ok | Written::Gone => {
                st.last = Some(digest(&status));
                st.retry = None;
                if st.generation == generation {
                    st.latest = Value::Null;
                }
            }
            Written::Failed => st.retry = Some(st.retry.map_or(RETRY_FIRST, |d| (d * 2).min(RETRY_MAX))),
        }
        let mut retry_after = None;
        if !st.stopped {
            if st.generation != generation {
                // A newer status came while this one was written: write it now.
                st.queued = true;
                let _ = queue.send(slot.clone());
            } else if written == Written::Failed {
                retry_after = st.retry;
            }
        }
        retry_after
    };
    slot.idle.notify_waiters();
    if let Some(wait) = retry_after {
        let (slot, queue) = (slot.clone(), queue.clone());
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let mut st = slot.state.lock().expect("status lock");
            // A newer report may have queued it already (and written it).
            if !st.queued && !st.writing && !st.stopped && st.retry.is_some() {
                st.queued = true;
                drop(st);
                let _ = queue.send(slot);
            }
        });
    }
}

/// One pod's handle on the node's status writer.
pub(super) struct Reporter {
    slot: Arc<Slot>,
    queue: mpsc::UnboundedSender<Arc<Slot>>,
}

impl Reporter {
    /// Hands over the current status; `force` writes it even if it did not change.
    pub(super) fn report(&self, status: Value, force: bool) {
        let mut st = self.slot.state.lock().expect("status lock");
        if st.stopped {
            return;
        }
        st.latest = status;
        st.generation += 1;
        st.force |= force;
        // While a write runs, its end queues the pod again.
        if !st.queued && !st.writing {
            st.queued = true;
            drop(st);
            let _ = self.queue.send(self.slot.clone());
        }
    }

    /// Stops writing (before the final write, so that no older status lands after it):
    /// returns once no write of this pod is in flight.
    pub(super) async fn stop(&self) {
        loop {
            let idle = self.slot.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            {
                let mut st = self.slot.state.lock().expect("status lock");
                st.stopped = true;
                if !st.writing {
                    return;
                }
            }
            idle.await;
        }
    }
}

/// Writes `status` as the pod's status.
pub(crate) async fn write(client: &kube::Client, namespace: &str, name: &str, status: &Value) -> Written {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await {
        Ok(_) => Written::Ok,
        Err(kube::Error::Api(e)) if e.code == 404 => Written::Gone,
        Err(e) => {
            tracing::debug!(error = %e, pod = %name, "status update failed; retrying");
            Written::Failed
        }
    }
}

/// A digest of `status` without its probe times, to tell whether it changed.
fn digest(status: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&strip_times(status)).unwrap_or_default().hash(&mut h);
    h.finish()
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    type Log = Arc<Mutex<Vec<(String, Value, tokio::time::Instant)>>>;

    /// A writer whose writes are logged; `fail(n)` says whether the n-th (1-based) fails.
    fn logged(in_flight: usize, fail: impl Fn(usize) -> bool + Send + Sync + 'static) -> (StatusWriter, Log) {
        let log: Log = Arc::default();
        let l = log.clone();
        let fail = Arc::new(fail);
        let w = StatusWriter::with(in_flight, Arc::new(move |_ns, name, status| {
            let (l, fail) = (l.clone(), fail.clone());
            Box::pin(async move {
                let n = {
                    let mut l = l.lock().expect("log");
                    l.push((name, status, tokio::time::Instant::now()));
                    l.len()
                };
                tokio::time::sleep(Duration::from_millis(5)).await;
                if fail(n) { Written::Failed } else { Written::Ok }
            })
        }));
        (w, log)
    }

    /// A failed write is retried with back-off until it succeeds, and then the writer
    /// rests; an unchanged status is not written again, a new one is.
    #[tokio::test(start_paused = true)]
    async fn failed_writes_are_retried_until_one_succeeds() {
        // The first three writes fail (an overloaded API server).
        let (w, log) = logged(IN_FLIGHT, |n| n <= 3);
        let r = w.reporter("ns".into(), "p".into());
        let start = tokio::time::Instant::now();
        r.report(json!({"phase": "Running"}), false);
        tokio::time::sleep(Duration::from_secs(60)).await;
        {
            let l = log.lock().expect("log");
            assert_eq!(l.len(), 4, "three failures, then one success, then nothing: {l:?}");
            assert!(l.iter().all(|(_, v, _)| v["phase"] == "Running"));
            let gaps: Vec<Duration> = l.windows(2).map(|w| w[1].2 - w[0].2).collect();
            assert!(gaps[0] >= RETRY_FIRST && gaps[1] >= 2 * RETRY_FIRST && gaps[2] >= 4 * RETRY_FIRST, "{gaps:?}");
            assert!(l[3].2 - start < Duration::from_secs(5));
        }
        r.report(json!({"phase": "Running"}), false);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(log.lock().expect("log").len(), 4);
        // Forced, the same status is written again.
        r.report(json!({"phase": "Running"}), true);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(log.lock().expect("log").len(), 5);
        r.report(json!({"phase": "Succeeded"}), false);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(log.lock().expect("log").last().expect("write").1["phase"], "Succeeded");
    }

    /// A newer status ends the wait of a failed write at once, and is what gets written.
    #[tokio::test(start_paused = true)]
    async fn a_newer_status_replaces_the_one_being_retried() {
        let (w, log) = logged(IN_FLIGHT, |n| n == 1);
        let r = w.reporter("ns".into(), "p".into());
        r.report(json!({"phase": "Pending"}), false);
        tokio::time::sleep(Duration::from_millis(50)).await;
        r.report(json!({"phase": "Running"}), false);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let l = log.lock().expect("log");
        let phases: Vec<&Value> = l.iter().map(|(_, v, _)| &v["phase"]).collect();
        assert_eq!(phases, [&json!("Pending"), &json!("Running")], "the newer status is written before the back-off ends");
    }

    /// Many pods changing at once: at most `in_flight` writes run together, each pod's
    /// changes coalesce into its newest status, and every pod gets written.
    #[tokio::test(start_paused = true)]
    async fn writes_are_bounded_and_coalesced() {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let log: Log = Arc::default();
        let (r2, p2, l2) = (running.clone(), peak.clone(), log.clone());
        let w = StatusWriter::with(4, Arc::new(move |_ns, name, status| {
            let (running, peak, log) = (r2.clone(), p2.clone(), l2.clone());
            Box::pin(async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                log.lock().expect("log").push((name, status, tokio::time::Instant::now()));
                running.fetch_sub(1, Ordering::SeqCst);
                Written::Ok
            })
        }));
        let reporters: Vec<Reporter> = (0..100).map(|i| w.reporter("ns".into(), format!("p{i}"))).collect();
        for r in &reporters {
            for phase in ["Pending", "ContainerCreating", "Running"] {
                r.report(json!({"phase": phase}), false);
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(peak.load(Ordering::SeqCst) <= 4, "peak {} writes in flight", peak.load(Ordering::SeqCst));
        let l = log.lock().expect("log");
        assert_eq!(l.len(), 100, "one write per pod");
        assert!(l.iter().all(|(_, v, _)| v["phase"] == "Running"));
    }

    /// After stop, a write in flight has ended and no other starts.
    #[tokio::test(start_paused = true)]
    async fn stop_waits_for_the_write_in_flight() {
        let (w, log) = logged(IN_FLIGHT, |_| false);
        let r = w.reporter("ns".into(), "p".into());
        r.report(json!({"phase": "Running"}), false);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(log.lock().expect("log").len(), 1, "the write started");
        r.report(json!({"phase": "Succeeded"}), false);
        r.stop().await;
        assert!(!r.slot.state.lock().expect("lock").writing);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(log.lock().expect("log").len(), 1, "nothing written after stop");
    }
}
