//! The raft driver: one thread owns the raft-rs `RawNode` and the redb database.
//!
//! Per loop: collect every queued proposal into one log entry (group commit), tick, then
//! handle `Ready`: persist new entries and hard state in one durable redb transaction,
//! apply committed entries through [`machine::apply`] (non-durable transaction: the log
//! is durable, so a crash replays from the last applied index), publish events, answer
//! proposers. Single voter today; nothing here assumes it beyond the bootstrap ConfState.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, EntryType, HardState, Snapshot as RaftSnapshot};
use raft::storage::MemStorage;
use raft::{Config, RawNode, StateRole, Storage};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use super::machine::{self, Op, OpResult, StoreError};
use super::{Batch, Objects, Shared, StoreConfig, Stored};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
const STATE: TableDefinition<&str, u64> = TableDefinition::new("state");
const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");

const NODE_ID: u64 = 1;
const TICK: Duration = Duration::from_millis(100);
const MAX_BATCH: usize = 4096;

fn io<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Io(e.to_string())
}

/// What `load` read from disk, handed to the driver.
pub(super) struct Persisted {
    db: Database,
    storage: MemStorage,
    applied: u64,
}

/// Opens the database and reads the object state and the raft log.
pub(super) fn load(path: &Path) -> Result<(Objects, u64, Persisted), StoreError> {
    let db = Database::create(path).map_err(io)?;
    {
        let w = db.begin_write().map_err(io)?;
        w.open_table(LOG).map_err(io)?;
        w.open_table(META).map_err(io)?;
        w.open_table(STATE).map_err(io)?;
        w.open_table(OBJECTS).map_err(io)?;
        w.commit().map_err(io)?;
    }
    let r = db.begin_read().map_err(io)?;
    let mut objects = Objects::new();
    for item in r.open_table(OBJECTS).map_err(io)?.iter().map_err(io)? {
        let (k, v) = item.map_err(io)?;
        let value: serde_json::Value = serde_json::from_slice(v.value()).map_err(io)?;
        let rv = value
            .pointer("/metadata/resourceVersion")
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        objects.insert(k.value().to_string(), Arc::new(Stored { rv, value }));
    }
    let state = r.open_table(STATE).map_err(io)?;
    let revision = state.get("revision").map_err(io)?.map(|v| v.value()).unwrap_or(0);
    let applied = state.get("applied").map_err(io)?.map(|v| v.value()).unwrap_or(0);
    let meta = r.open_table(META).map_err(io)?;
    let get_meta = |k: &str| -> Result<Option<Vec<u8>>, StoreError> {
        Ok(meta.get(k).map_err(io)?.map(|v| v.value().to_vec()))
    };
    let storage = match get_meta("hard_state")? {
        None => MemStorage::new_with_conf_state(ConfState::from((vec![NODE_ID], vec![]))),
        Some(hs) => {
            let mut hs = HardState::parse_from_bytes(&hs).map_err(io)?;
            // The commit index reaches disk with the next Ready; what was applied was
            // committed, so it bounds the commit index from below.
            if hs.commit < applied {
                hs.commit = applied;
            }
            let cs = match get_meta("conf_state")? {
                Some(b) => ConfState::parse_from_bytes(&b).map_err(io)?,
                None => ConfState::from((vec![NODE_ID], vec![])),
            };
            let storage = MemStorage::new();
            match get_meta("snapshot")? {
                // Compacted: entries up to the snapshot index are folded into the state.
                Some(b) => {
                    let mut snap = RaftSnapshot::default();
                    snap.set_metadata(raft::prelude::SnapshotMetadata::parse_from_bytes(&b).map_err(io)?);
                    snap.mut_metadata().set_conf_state(cs);
                    storage.wl().apply_snapshot(snap).map_err(io)?;
                }
                None => storage.wl().set_conf_state(cs),
            }
            let mut entries = Vec::new();
            for item in r.open_table(LOG).map_err(io)?.iter().map_err(io)? {
                let (_, v) = item.map_err(io)?;
                entries.push(Entry::parse_from_bytes(v.value()).map_err(io)?);
            }
            storage.wl().append(&entries).map_err(io)?;
            storage.wl().set_hardstate(hs);
            storage
        }
    };
    drop(meta);
    drop(state);
    drop(r);
    Ok((objects, revision, Persisted { db, storage, applied }))
}

struct Proposal {
    ops: Vec<Op>,
    reply: oneshot::Sender<Result<Vec<OpResult>, StoreError>>,
}

/// Sends proposals to the driver thread.
#[derive(Clone)]
pub(super) struct Proposer {
    tx: mpsc::Sender<Proposal>,
}

impl Proposer {
    pub(super) async fn propose(&self, ops: Vec<Op>) -> Result<Vec<OpResult>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Proposal { ops, reply })
            .map_err(|_| StoreError::Unavailable("store stopped".into()))?;
        rx.await.map_err(|_| StoreError::Unavailable("proposal dropped".into()))?
    }
}

/// Starts the driver thread; returns once this member leads (single voter: at once).
pub(super) fn start(p: Persisted, shared: Arc<Shared>, config: StoreConfig) -> Result<Proposer, StoreError> {
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let cfg = Config { id: NODE_ID, applied: p.applied, election_tick: 10, heartbeat_tick: 3, ..Default::default() };
    cfg.validate().map_err(io)?;
    // Remember the bootstrap membership so a restart sees the same voters.
    {
        let cs = p.storage.initial_state().map_err(io)?.conf_state;
        let w = p.db.begin_write().map_err(io)?;
        w.open_table(META).map_err(io)?.insert("conf_state", cs.write_to_bytes().map_err(io)?.as_slice()).map_err(io)?;
        w.commit().map_err(io)?;
    }
    let node = RawNode::new(&cfg, p.storage, &logger).map_err(io)?;
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut driver = Driver {
        node,
        db: p.db,
        shared,
        config,
        pending: HashMap::new(),
        next_id: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
        leader_signal: Some(ready_tx),
    };
    std::thread::Builder::new()
        .name("flotilla-raft".into())
        .spawn(move || driver.run(rx))
        .map_err(io)?;
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| StoreError::Unavailable("raft did not elect a leader".into()))??;
    Ok(Proposer { tx })
}

struct Waiting {
    replies: Vec<(oneshot::Sender<Result<Vec<OpResult>, StoreError>>, usize)>,
}

struct Driver {
    node: RawNode<MemStorage>,
    db: Database,
    shared: Arc<Shared>,
    config: StoreConfig,
    pending: HashMap<u64, Waiting>,
    next_id: u64,
    leader_signal: Option<mpsc::Sender<Result<(), StoreError>>>,
}

impl Driver {
    fn run(&mut self, rx: mpsc::Receiver<Proposal>) {
        if let Err(e) = self.node.campaign() {
            self.fail(io(e));
            return;
        }
        let mut last_tick = Instant::now();
        loop {
            let timeout = TICK.saturating_sub(last_tick.elapsed());
            let mut batch = Vec::new();
            match rx.recv_timeout(timeout) {
                Ok(p) => {
                    batch.push(p);
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(p) => batch.push(p),
                            Err(_) => break,
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            if !batch.is_empty() {
                self.propose(batch);
            }
            if last_tick.elapsed() >= TICK {
                self.node.tick();
                last_tick = Instant::now();
            }
            if let Err(e) = self.on_ready() {
                // Storage failed: nothing can be trusted any more; stop answering.
                tracing::error!(error = %e, "raft storage failed; store stopping");
                self.fail(e);
                return;
            }
        }
    }

    fn fail(&mut self, e: StoreError) {
        if let Some(s) = self.leader_signal.take() {
            let _ = s.send(Err(e.clone()));
        }
        for (_, w) in self.pending.drain() {
            for (r, _) in w.replies {
                let _ = r.send(Err(e.clone()));
            }
        }
    }

    fn propose(&mut self, batch: Vec<Proposal>) {
        if self.node.raft.state != StateRole::Leader {
            for p in batch {
                let _ = p.reply.send(Err(StoreError::Unavailable("not the raft leader".into())));
            }
            return;
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let mut ops = Vec::new();
        let mut replies = Vec::with_capacity(batch.len());
        for p in batch {
            replies.push((p.reply, p.ops.len()));
            ops.extend(p.ops);
        }
        let data = match serde_json::to_vec(&Batch { id, ops }) {
            Ok(d) => d,
            Err(e) => {
                for (r, _) in replies {
                    let _ = r.send(Err(io(&e)));
                }
                return;
            }
        };
        match self.node.propose(vec![], data) {
            Ok(()) => {
                self.pending.insert(id, Waiting { replies });
            }
            Err(e) => {
                for (r, _) in replies {
                    let _ = r.send(Err(StoreError::Unavailable(e.to_string())));
                }
            }
        }
    }

    fn on_ready(&mut self) -> Result<(), StoreError> {
        if !self.node.has_ready() {
            return Ok(());
        }
        let mut ready = self.node.ready();
        // Messages to peers go here once there are peers (a later issue adds a transport).
        let committed = ready.take_committed_entries();
        self.apply_entries(committed)?;
        if !ready.entries().is_empty() || ready.hs().is_some() {
            let w = self.db.begin_write().map_err(io)?;
            {
                let mut log = w.open_table(LOG).map_err(io)?;
                for e in ready.entries() {
                    log.insert(e.index, e.write_to_bytes().map_err(io)?.as_slice()).map_err(io)?;
                }
                if let Some(hs) = ready.hs() {
                    w.open_table(META).map_err(io)?.insert("hard_state", hs.write_to_bytes().map_err(io)?.as_slice()).map_err(io)?;
                }
            }
            w.commit().map_err(io)?;
            let mut st = self.node.mut_store().wl();
            st.append(ready.entries()).map_err(io)?;
            if let Some(hs) = ready.hs() {
                st.set_hardstate(hs.clone());
            }
        }
        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.node.mut_store().wl().mut_hard_state().set_commit(commit);
        }
        self.apply_entries(light.take_committed_entries())?;
        self.node.advance_apply();
        if self.node.raft.state == StateRole::Leader
            && let Some(s) = self.leader_signal.take()
        {
            let _ = s.send(Ok(()));
        }
        self.maybe_compact()
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<(), StoreError> {
        let Some(last) = entries.last() else { return Ok(()) };
        let last_index = last.index;
        let mut results = Vec::new();
        let mut writes = Vec::new();
        let mut events = Vec::new();
        let revision;
        {
            let mut snap = self.shared.objects.write().expect("store lock");
            for e in &entries {
                if e.get_entry_type() != EntryType::EntryNormal || e.data.is_empty() {
                    continue;
                }
                let batch: Batch = serde_json::from_slice(&e.data).map_err(io)?;
                let applied = machine::apply(&mut snap, batch.ops);
                writes.extend(applied.writes);
                events.extend(applied.events);
                results.push((batch.id, applied.results));
            }
            revision = snap.revision;
        }
        let mut w = self.db.begin_write().map_err(io)?;
        w.set_durability(Durability::None).map_err(io)?;
        {
            let mut objects = w.open_table(OBJECTS).map_err(io)?;
            for (k, v) in &writes {
                match v {
                    Some(s) => {
                        let bytes = serde_json::to_vec(&s.value).map_err(io)?;
                        objects.insert(k.as_str(), bytes.as_slice()).map_err(io)?;
                    }
                    None => {
                        objects.remove(k.as_str()).map_err(io)?;
                    }
                }
            }
            let mut state = w.open_table(STATE).map_err(io)?;
            state.insert("revision", revision).map_err(io)?;
            state.insert("applied", last_index).map_err(io)?;
        }
        w.commit().map_err(io)?;
        self.shared.watch.push(events, revision);
        for (id, res) in results {
            if let Some(waiting) = self.pending.remove(&id) {
                let mut res = res.into_iter();
                for (reply, n) in waiting.replies {
                    let _ = reply.send(Ok(res.by_ref().take(n).collect()));
                }
            }
        }
        Ok(())
    }

    fn maybe_compact(&mut self) -> Result<(), StoreError> {
        let applied = self.node.raft.raft_log.applied;
        let first = self.node.store().first_index().map_err(io)?;
        let retain = self.config.log_retain.max(1);
        if applied < first + 2 * retain {
            return Ok(());
        }
        // Entries before `upto` go; the snapshot covers everything up to `upto - 1`.
        let upto = applied - retain;
        let term = self.node.store().term(upto - 1).map_err(io)?;
        let w = self.db.begin_write().map_err(io)?;
        {
            let mut log = w.open_table(LOG).map_err(io)?;
            log.retain_in(..upto, |_, _| false).map_err(io)?;
            let mut md = raft::prelude::SnapshotMetadata::default();
            md.index = upto - 1;
            md.term = term;
            w.open_table(META).map_err(io)?.insert("snapshot", md.write_to_bytes().map_err(io)?.as_slice()).map_err(io)?;
        }
        w.commit().map_err(io)?;
        self.node.mut_store().wl().compact(upto).map_err(io)?;
        Ok(())
    }
}
