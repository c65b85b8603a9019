//! The watch cache: a bounded history of events shared by every watcher.
//!
//! Invariants: events in the history have strictly increasing revisions; every event with
//! a revision above `compacted` is in the history. A watch from revision R is served iff
//! R >= compacted; otherwise it is told `Expired` (HTTP 410). Each watcher keeps only a
//! cursor, so a slow watcher costs no memory beyond the shared history.
//!
//! The history holds at most `capacity` events, and drops events older than `max_age`
//! beyond the newest [`HISTORY_MIN`] (as Kubernetes' watch cache keeps about 75 s): a
//! burst of writes stays available to watchers that fall behind during it, and superseded
//! object versions do not stay in memory once the cluster is quiet.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::machine::{Event, EventType};
use super::Shared;

/// Events the history keeps whatever their age.
pub(crate) const HISTORY_MIN: usize = 1_000;

struct History {
    events: VecDeque<Arc<Event>>,
    /// When each event of `events` was pushed (same order and length).
    pushed: VecDeque<Instant>,
    /// Revision up to which events are no longer available.
    compacted: u64,
}

pub(crate) struct WatchCache {
    history: Mutex<History>,
    capacity: usize,
    max_age: Duration,
    notify: tokio::sync::watch::Sender<u64>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum WatchError {
    #[error("too old resource version: {requested} ({oldest})")]
    Expired { requested: u64, oldest: u64 },
}

impl WatchCache {
    pub(crate) fn new(capacity: usize, max_age: Duration, revision: u64) -> Self {
        let (notify, _) = tokio::sync::watch::channel(revision);
        WatchCache {
            history: Mutex::new(History { events: VecDeque::new(), pushed: VecDeque::new(), compacted: revision }),
            capacity: capacity.max(1),
            max_age,
            notify,
        }
    }

    /// Appends applied events (called by the raft driver only, in revision order).
    pub(crate) fn push(&self, events: Vec<Arc<Event>>, revision: u64) {
        {
            let mut h = self.history.lock().expect("watch lock");
            let now = Instant::now();
            for e in events {
                h.events.push_back(e);
                h.pushed.push_back(now);
            }
            let keep = self.capacity.min(HISTORY_MIN);
            while h.events.len() > self.capacity || (h.events.len() > keep && h.pushed.front().is_some_and(|t| now.duration_since(*t) > self.max_age)) {
                h.pushed.pop_front();
                if let Some(old) = h.events.pop_front() {
                    h.compacted = old.object.rv;
                }
            }
        }
        self.notify.send_replace(revision);
    }

    /// Forgets the history: the state jumped to `revision` (a raft snapshot was installed),
    /// so every watcher behind it gets 410 Gone and relists.
    pub(crate) fn reset(&self, revision: u64) {
        {
            let mut h = self.history.lock().expect("watch lock");
            h.events.clear();
            h.pushed.clear();
            h.compacted = revision;
        }
        self.notify.send_replace(revision);
    }

    /// Oldest revision a watch may start from.
    pub(crate) fn compacted(&self) -> u64 {
        self.history.lock().expect("watch lock").compacted
    }
}

/// One watcher's position in the history.
pub(crate) struct WatchStream {
    shared: Arc<Shared>,
    prefix: String,
    cursor: u64,
    pending: VecDeque<Arc<Event>>,
    rx: tokio::sync::watch::Receiver<u64>,
}

pub(crate) fn start(shared: &Arc<Shared>, prefix: &str, from: Option<u64>) -> Result<WatchStream, WatchError> {
    let rx = shared.watch.notify.subscribe();
    let mut pending = VecDeque::new();
    let cursor = match from {
        Some(rv) => {
            let compacted = shared.watch.compacted();
            if rv < compacted {
                return Err(WatchError::Expired { requested: rv, oldest: compacted + 1 });
            }
            rv
        }
        None => {
            let snap = shared.objects.read().expect("store lock");
            for (k, v) in snap.objects.range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded)) {
                if !k.starts_with(prefix) {
                    break;
                }
                pending.push_back(Arc::new(Event { kind: EventType::Added, key: k.clone(), object: v.clone(), prev: None }));
            }
            snap.revision
        }
    };
    Ok(WatchStream { shared: shared.clone(), prefix: prefix.to_string(), cursor, pending, rx })
}

impl WatchStream {
    /// The revision this watcher has seen everything up to (for BOOKMARK events).
    pub(crate) fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The next event, waiting for one if needed. `Err(Expired)` if the watcher fell
    /// behind the history; `None` if the store shut down.
    pub(crate) async fn next(&mut self) -> Option<Result<Arc<Event>, WatchError>> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                if e.object.rv > self.cursor {
                    self.cursor = e.object.rv;
                }
                return Some(Ok(e));
            }
            self.rx.borrow_and_update();
            {
                let h = self.shared.watch.history.lock().expect("watch lock");
                if self.cursor < h.compacted {
                    return Some(Err(WatchError::Expired { requested: self.cursor, oldest: h.compacted + 1 }));
                }
                let start = h.events.partition_point(|e| e.object.rv <= self.cursor);
                for e in h.events.range(start..) {
                    if e.key.starts_with(&self.prefix) {
                        self.pending.push_back(e.clone());
                    }
                }
                if self.pending.is_empty() && let Some(last) = h.events.back() {
                    self.cursor = self.cursor.max(last.object.rv);
                }
            }
            if self.pending.is_empty() {
                if self.rx.changed().await.is_err() {
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Stored;

    fn events(from: u64, to: u64) -> Vec<Arc<Event>> {
        (from..to)
            .map(|rv| Arc::new(Event { kind: EventType::Added, key: format!("k/{rv}").into(), object: Arc::new(Stored { rv, value: serde_json::Value::Null }), prev: None }))
            .collect()
    }

    /// Old events leave the history, but the newest HISTORY_MIN stay; watches from before
    /// them are told Expired, and the capacity bounds a burst.
    #[test]
    fn history_is_bounded_by_age_and_capacity() {
        let fresh = WatchCache::new(100_000, Duration::from_secs(3600), 0);
        fresh.push(events(1, 3001), 3000);
        assert_eq!(fresh.history.lock().unwrap().events.len(), 3000, "young events all stay");
        assert_eq!(fresh.compacted(), 0);

        let aged = WatchCache::new(100_000, Duration::ZERO, 0);
        aged.push(events(1, 1501), 1500);
        std::thread::sleep(Duration::from_millis(2));
        aged.push(events(1501, 1502), 1501);
        let h = aged.history.lock().unwrap();
        assert_eq!(h.events.len(), HISTORY_MIN, "old events beyond the newest {HISTORY_MIN} go");
        assert_eq!(h.compacted, 1501 - HISTORY_MIN as u64);
        drop(h);

        let small = WatchCache::new(20, Duration::from_secs(3600), 0);
        small.push(events(1, 101), 100);
        assert_eq!(small.history.lock().unwrap().events.len(), 20);
        assert_eq!(small.compacted(), 80);
    }
}
