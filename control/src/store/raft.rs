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
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use tokio::sync::oneshot;

use super::machine::{self, Op, OpResult, StoreError};
use super::{Batch, Objects, Shared, StoreConfig};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
const STATE: TableDefinition<&str, u64> = TableDefinition::new("state");
/// key → (revision, the object's JSON as proposed; its metadata.resourceVersion is the
/// revision, set when the object is loaded).
const OBJECTS: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("objects.v2");
/// The first layout: key → JSON with metadata.resourceVersion set (read once, then dropped).
const OBJECTS_V1: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");

/// Moves objects from the first layout into [`OBJECTS`].
fn migrate_objects_v1(w: &redb::WriteTransaction) -> Result<(), StoreError> {
    if !w.list_tables().map_err(io)?.any(|t| t.name() == OBJECTS_V1.name()) {
        return Ok(());
    }
    // The first layout exists only if the last binary to run wrote it: it is the truth.
    w.delete_table(OBJECTS).map_err(io)?;
    {
        let old = w.open_table(OBJECTS_V1).map_err(io)?;
        let mut new = w.open_table(OBJECTS).map_err(io)?;
        for item in old.iter().map_err(io)? {
            let (k, v) = item.map_err(io)?;
            let value: serde_json::Value = serde_json::from_slice(v.value()).map_err(io)?;
            let rv = value.pointer("/metadata/resourceVersion").and_then(|v| v.as_str()).and_then(|s| s.parse().ok()).unwrap_or(0);
            new.insert(k.value(), (rv, v.value())).map_err(io)?;
        }
    }
    w.delete_table(OBJECTS_V1).map_err(io)?;
    Ok(())
}

/// One op as JSON (the serde form of [`Op`]), encoded by the proposer so the driver thread
/// only concatenates bytes; `object` is where the object's own JSON sits inside `bytes`,
/// which is also what the objects table stores.
struct Encoded {
    bytes: Vec<u8>,
    object: Option<std::ops::Range<usize>>,
}

fn encode(op: &Op) -> Result<Encoded, StoreError> {
    let (tag, key, object, pre) = match op {
        Op::Create { key, object } => ("Create", key, Some(object), None),
        Op::Update { key, object, precondition } => ("Update", key, Some(object), Some(precondition)),
        Op::Delete { key, precondition } => ("Delete", key, None, Some(precondition)),
    };
    let mut bytes = Vec::with_capacity(256);
    bytes.extend_from_slice(b"{\"");
    bytes.extend_from_slice(tag.as_bytes());
    bytes.extend_from_slice(b"\":{\"key\":");
    serde_json::to_writer(&mut bytes, key).map_err(io)?;
    let mut range = None;
    if let Some(o) = object {
        bytes.extend_from_slice(b",\"object\":");
        let start = bytes.len();
        serde_json::to_writer(&mut bytes, o).map_err(io)?;
        range = Some(start..bytes.len());
    }
    if let Some(p) = pre {
        bytes.extend_from_slice(b",\"precondition\":");
        serde_json::to_writer(&mut bytes, p).map_err(io)?;
    }
    bytes.extend_from_slice(b"}}");
    Ok(Encoded { bytes, object: range })
}


const NODE_ID: u64 = 1;
const TICK: Duration = Duration::from_millis(100);
const MAX_BATCH: usize = 4096;
/// A log entry stops taking proposals once it holds this many bytes (plus the last one's).
const MAX_ENTRY_BYTES: usize = 16 * 1024 * 1024;

fn io<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    StoreError::Io(Arc::new(e))
}

/// redb's page cache.
const REDB_CACHE_BYTES: usize = 32 << 20;

/// What `load` read from disk, handed to the driver.
pub(super) struct Persisted {
    db: Database,
    storage: MemStorage,
    applied: u64,
}

/// Opens the database and reads the object state and the raft log.
pub(super) fn load(path: &Path) -> Result<(Objects, u64, Persisted), StoreError> {
    // redb's default page cache is 1 GiB: a dense cluster's writes filled it. Reads come
    // from the in-memory object map, so the cache only serves the write path.
    let db = redb::Builder::new().set_cache_size(REDB_CACHE_BYTES).create(path).map_err(io)?;
    {
        let w = db.begin_write().map_err(io)?;
        w.open_table(LOG).map_err(io)?;
        w.open_table(META).map_err(io)?;
        w.open_table(STATE).map_err(io)?;
        w.open_table(OBJECTS).map_err(io)?;
        migrate_objects_v1(&w)?;
        w.commit().map_err(io)?;
    }
    let r = db.begin_read().map_err(io)?;
    let mut objects = Objects::new();
    for item in r.open_table(OBJECTS).map_err(io)?.iter().map_err(io)? {
        let (k, v) = item.map_err(io)?;
        let (rv, bytes) = v.value();
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(io)?;
        objects.insert(k.value().into(), machine::stored(value, rv));
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
    encoded: Vec<Encoded>,
    reply: oneshot::Sender<Result<Vec<OpResult>, StoreError>>,
}

impl Proposal {
    fn bytes(&self) -> usize {
        self.encoded.iter().map(|e| e.bytes.len()).sum()
    }
}

enum Msg {
    Propose(Proposal),
    /// Commit what was received, then stop and close the database.
    Stop,
}

/// Sends proposals to the driver thread.
#[derive(Clone)]
pub(super) struct Proposer {
    tx: mpsc::Sender<Msg>,
    thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl Proposer {
    pub(super) async fn propose(&self, ops: Vec<Op>) -> Result<Vec<OpResult>, StoreError> {
        let encoded = ops.iter().map(encode).collect::<Result<Vec<_>, _>>()?;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Propose(Proposal { ops, encoded, reply }))
            .map_err(|_| StoreError::Unavailable("store stopped"))?;
        rx.await.map_err(|_| StoreError::Unavailable("proposal dropped"))?
    }

    /// Stops the driver and waits until the database is closed (blocking). Later
    /// proposals fail with Unavailable.
    pub(super) fn close(&self) {
        let _ = self.tx.send(Msg::Stop);
        let thread = self.thread.lock().expect("driver thread").take();
        if let Some(t) = thread {
            let _ = t.join();
        }
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
    let thread = std::thread::Builder::new()
        .name("flotilla-raft".into())
        .spawn(move || driver.run(rx))
        .map_err(io)?;
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| StoreError::Unavailable("raft did not elect a leader"))??;
    Ok(Proposer { tx, thread: Arc::new(std::sync::Mutex::new(Some(thread))) })
}

struct Waiting {
    replies: Vec<(oneshot::Sender<Result<Vec<OpResult>, StoreError>>, usize)>,
    /// The proposed ops themselves: the entry that carries them is applied from these
    /// instead of decoding its bytes again (the bytes are what the log keeps and what a
    /// replay after a restart decodes).
    ops: Option<(Vec<Op>, Vec<Encoded>)>,
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
    fn run(&mut self, rx: mpsc::Receiver<Msg>) {
        if let Err(e) = self.node.campaign() {
            self.fail(io(e));
            return;
        }
        let mut last_tick = Instant::now();
        loop {
            let timeout = TICK.saturating_sub(last_tick.elapsed());
            let mut batch = Vec::new();
            let mut stop = false;
            match rx.recv_timeout(timeout) {
                Ok(Msg::Propose(p)) => {
                    let mut bytes = p.bytes();
                    batch.push(p);
                    while batch.len() < MAX_BATCH && bytes < MAX_ENTRY_BYTES {
                        match rx.try_recv() {
                            Ok(Msg::Propose(p)) => {
                                bytes += p.bytes();
                                batch.push(p);
                            }
                            Ok(Msg::Stop) => {
                                stop = true;
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                }
                Ok(Msg::Stop) => stop = true,
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
            if stop {
                self.fail(StoreError::Unavailable("store closed"));
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
                let _ = p.reply.send(Err(StoreError::Unavailable("not the raft leader")));
            }
            return;
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let mut ops = Vec::new();
        let mut encoded = Vec::new();
        let mut replies = Vec::with_capacity(batch.len());
        for p in batch {
            replies.push((p.reply, p.ops.len()));
            ops.extend(p.ops);
            encoded.extend(p.encoded);
        }
        // The serde form of `Batch { id, ops }`, from the proposers' encodings.
        let mut data = Vec::with_capacity(32 + encoded.iter().map(|e| e.bytes.len() + 1).sum::<usize>());
        data.extend_from_slice(format!("{{\"id\":{id},\"ops\":[").as_bytes());
        for (i, e) in encoded.iter().enumerate() {
            if i > 0 {
                data.push(b',');
            }
            data.extend_from_slice(&e.bytes);
        }
        data.extend_from_slice(b"]}");
        // The entry's context names the proposal, so apply finds the ops without decoding.
        match self.node.propose(id.to_le_bytes().to_vec(), data) {
            Ok(()) => {
                self.pending.insert(id, Waiting { replies, ops: Some((ops, encoded)) });
            }
            Err(e) => {
                let e = StoreError::Rejected(Arc::new(e));
                for (r, _) in replies {
                    let _ = r.send(Err(e.clone()));
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
                let local = <[u8; 8]>::try_from(&e.context[..])
                    .ok()
                    .map(u64::from_le_bytes)
                    .and_then(|id| Some((id, self.pending.get_mut(&id)?.ops.take()?)));
                let (id, ops, encoded) = match local {
                    Some((id, (ops, encoded))) => (id, ops, Some(encoded)),
                    None => {
                        let batch: Batch = serde_json::from_slice(&e.data).map_err(io)?;
                        (batch.id, batch.ops, None)
                    }
                };
                let applied = machine::apply(&mut snap, ops);
                for (op, key, value) in applied.writes {
                    let row = match value {
                        None => None,
                        Some(s) => {
                            let bytes = match encoded.as_ref().and_then(|enc| Some((&enc[op], enc[op].object.clone()?))) {
                                Some((enc, range)) => enc.bytes[range].to_vec(),
                                None => serde_json::to_vec(&s.value).map_err(io)?,
                            };
                            Some((s.rv, bytes))
                        }
                    };
                    writes.push((key, row));
                }
                events.extend(applied.events);
                results.push((id, applied.results));
            }
            revision = snap.revision;
        }
        let mut w = self.db.begin_write().map_err(io)?;
        w.set_durability(Durability::None).map_err(io)?;
        {
            let mut objects = w.open_table(OBJECTS).map_err(io)?;
            for (k, v) in &writes {
                match v {
                    Some((rv, bytes)) => {
                        objects.insert(k.as_str(), (*rv, bytes.as_slice())).map_err(io)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Precondition;
    use serde_json::json;

    #[test]
    fn encoded_ops_are_the_serde_form_and_locate_the_object() {
        let pre = Precondition { resource_version: Some(7), uid: Some("u\"1".into()) };
        let ops = vec![
            Op::Create { key: "core/pods/ns/a\"b".into(), object: json!({"metadata": {"name": "a\"b"}, "n": [1, 2.5, null]}) },
            Op::Update { key: "k".into(), object: json!({"x": "é\n"}), precondition: pre.clone() },
            Op::Delete { key: "k".into(), precondition: Precondition::default() },
        ];
        for op in &ops {
            let enc = encode(op).expect("encode");
            let parsed: Op = serde_json::from_slice(&enc.bytes).expect("decodes as Op");
            assert_eq!(serde_json::to_value(&parsed).expect("json"), serde_json::to_value(op).expect("json"));
            match (op, enc.object) {
                (Op::Create { object, .. } | Op::Update { object, .. }, Some(r)) => {
                    assert_eq!(&serde_json::from_slice::<serde_json::Value>(&enc.bytes[r]).expect("object"), object);
                }
                (Op::Delete { .. }, None) => {}
                _ => panic!("object range wrong for {op:?}"),
            }
        }
    }
}
