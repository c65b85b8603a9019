//! The raft driver: one thread owns the raft-rs `RawNode` and the redb database.
//!
//! Per loop: collect every queued proposal into one log entry (group commit), tick, then
//! handle `Ready`: persist new entries and hard state in one durable redb transaction,
//! apply committed entries through [`machine::apply`] (non-durable transaction: the log
//! is durable, so a crash replays from the last applied index), publish events, answer
//! proposers. Single voter today; nothing here assumes it beyond the bootstrap ConfState.
//!
//! Secrets are sealed (`encryption.rs`) where ops are encoded for a proposal, so the log
//! and the objects table — everything on disk — hold them only as envelopes.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfState, Entry, EntryType, HardState, Message, Snapshot as RaftSnapshot};
use raft::storage::MemStorage;
use raft::{Config, ProgressState, RawNode, ReadOnlyOption, StateRole, Storage};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use tokio::sync::oneshot;

use super::encryption::{self, EncryptionError, Key, Keyring};
use super::machine::{self, Op, OpResult, StoreError};
use super::snapshot::{self, LogStorage};
use super::transport::{NoPeers, Transport};
use super::{Batch, Objects, Shared, StoreConfig};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
pub(super) const STATE: TableDefinition<&str, u64> = TableDefinition::new("state");
/// key → (revision, the object's JSON as proposed — a Secret's sealed envelope as a JSON
/// string; its metadata.resourceVersion is the revision, set when the object is loaded).
pub(super) const OBJECTS: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("objects.v2");
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
/// which is also what the objects table stores. A sealed object is its envelope, a JSON
/// string.
struct Encoded {
    bytes: Vec<u8>,
    object: Option<std::ops::Range<usize>>,
}

fn encode(op: &Op, keys: &Keyring) -> Result<Encoded, StoreError> {
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
        if encryption::sealed(key) {
            serde_json::to_writer(&mut bytes, &keys.seal(key, o).map_err(sealing)?).map_err(io)?;
        } else {
            serde_json::to_writer(&mut bytes, o).map_err(io)?;
        }
        range = Some(start..bytes.len());
    }
    if let Some(p) = pre {
        bytes.extend_from_slice(b",\"precondition\":");
        serde_json::to_writer(&mut bytes, p).map_err(io)?;
    }
    bytes.extend_from_slice(b"}}");
    Ok(Encoded { bytes, object: range })
}


/// The id of a single member (and of the first member of a cluster).
pub const FIRST_MEMBER: u64 = 1;
const NODE_ID: u64 = FIRST_MEMBER;

/// This member's place in the raft group.
#[derive(Clone)]
pub struct MemberConfig {
    /// This member's raft id (unique in the cluster, never reused).
    pub id: u64,
    /// Voters of a new store (empty: joining, waits for a leader's snapshot). A store that
    /// has run keeps the membership it persisted.
    pub bootstrap: Vec<u64>,
    pub transport: Arc<dyn Transport>,
    /// Raft's logical clock (default 100 ms); elections time out after 10-20 ticks, the
    /// leader heartbeats every 3.
    pub tick: Duration,
    /// A write (or a linearizable read) not answered in this time fails with Unavailable;
    /// None: wait for ever (a single member always has a quorum).
    pub timeout: Option<Duration>,
}

impl MemberConfig {
    /// The only member of its cluster (today's default).
    pub fn single() -> MemberConfig {
        MemberConfig { id: NODE_ID, bootstrap: vec![NODE_ID], transport: Arc::new(NoPeers), tick: TICK, timeout: None }
    }
}

const TICK: Duration = Duration::from_millis(100);
const MAX_BATCH: usize = 4096;
/// A log entry stops taking proposals once it holds this many bytes (plus the last one's).
const MAX_ENTRY_BYTES: usize = 16 * 1024 * 1024;

pub(super) fn io<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    StoreError::Io(Arc::new(e))
}

/// redb's page cache.
const REDB_CACHE_BYTES: usize = 32 << 20;

fn sealing(e: EncryptionError) -> StoreError {
    StoreError::Encryption(Arc::new(e))
}

/// The bytes the objects table keeps for `value` stored under `key`.
fn row_bytes(key: &str, value: &serde_json::Value, keys: &Keyring) -> Result<Vec<u8>, StoreError> {
    if encryption::sealed(key) {
        serde_json::to_vec(&keys.seal(key, value).map_err(sealing)?).map_err(io)
    } else {
        serde_json::to_vec(value).map_err(io)
    }
}

/// The object a row of the objects table holds.
fn row_value(key: &str, bytes: &[u8], keys: &Keyring) -> Result<serde_json::Value, StoreError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(io)?;
    if encryption::sealed(key) { keys.open(key, &value).map_err(sealing) } else { Ok(value) }
}

/// The database file inside the store directory.
pub(super) const DB_FILE: &str = "flotilla.redb";

/// Where the key lives: the configured file, else `encryption.key` in the store directory.
pub(super) fn key_path(dir: &Path, config: &StoreConfig) -> PathBuf {
    config.encryption_key_file.clone().unwrap_or_else(|| dir.join("encryption.key"))
}

fn open_db(path: &Path) -> Result<Database, StoreError> {
    // redb's default page cache is 1 GiB: a dense cluster's writes filled it. Reads come
    // from the in-memory object map, so the cache only serves the write path.
    redb::Builder::new().set_cache_size(REDB_CACHE_BYTES).create(path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Unavailable("the store is in use by another process (stop the cluster first)"),
        e => io(e),
    })
}

/// What [`reseal`] rewrote.
pub(super) struct Resealed {
    pub objects: usize,
    pub log_entries: usize,
}

/// Seals every sealed-prefix object in the objects table and the raft log with `keys`'
/// sealing key — opening envelopes any of its keys sealed, and sealing plaintext a store
/// from before encryption holds — and writes the check row, in one durable transaction.
fn reseal(db: &Database, keys: &Keyring) -> Result<Resealed, StoreError> {
    let mut w = db.begin_write().map_err(io)?;
    w.set_durability(Durability::Immediate).map_err(io)?;
    let mut done = Resealed { objects: 0, log_entries: 0 };
    // Plaintext (not yet sealed) or an envelope: the object either way.
    let object_of = |key: &str, v: &serde_json::Value| -> Result<serde_json::Value, StoreError> {
        if v.is_string() { keys.open(key, v).map_err(sealing) } else { Ok(v.clone()) }
    };
    {
        let mut objects = w.open_table(OBJECTS).map_err(io)?;
        let mut rows = Vec::new();
        for item in objects.range(encryption::SEALED_PREFIX..).map_err(io)? {
            let (k, v) = item.map_err(io)?;
            let key = k.value();
            if !encryption::sealed(key) {
                break;
            }
            let (rv, bytes) = v.value();
            rows.push((key.to_string(), rv, bytes.to_vec()));
        }
        for (key, rv, bytes) in rows {
            let value = object_of(&key, &serde_json::from_slice(&bytes).map_err(io)?)?;
            objects.insert(key.as_str(), (rv, row_bytes(&key, &value, keys)?.as_slice())).map_err(io)?;
            done.objects += 1;
        }
        let mut log = w.open_table(LOG).map_err(io)?;
        let mut rewritten = Vec::new();
        for item in log.iter().map_err(io)? {
            let (index, v) = item.map_err(io)?;
            let mut entry = Entry::parse_from_bytes(v.value()).map_err(io)?;
            if entry.get_entry_type() != EntryType::EntryNormal || entry.data.is_empty() {
                continue;
            }
            let mut batch: serde_json::Value = serde_json::from_slice(&entry.data).map_err(io)?;
            let mut changed = false;
            for op in batch["ops"].as_array_mut().into_iter().flatten() {
                // The serde form of an Op: {"Create": {"key": …, "object": …}}.
                for body in op.as_object_mut().into_iter().flat_map(|o| o.values_mut()) {
                    let Some(key) = body["key"].as_str().map(str::to_string) else { continue };
                    if !encryption::sealed(&key) || body.get("object").is_none() {
                        continue;
                    }
                    let value = object_of(&key, &body["object"])?;
                    body["object"] = serde_json::Value::String(keys.seal(&key, &value).map_err(sealing)?);
                    changed = true;
                }
            }
            if changed {
                entry.set_data(serde_json::to_vec(&batch).map_err(io)?.into());
                rewritten.push((index.value(), entry.write_to_bytes().map_err(io)?));
            }
        }
        for (index, bytes) in rewritten {
            log.insert(index, bytes.as_slice()).map_err(io)?;
            done.log_entries += 1;
        }
        w.open_table(META).map_err(io)?.insert(encryption::CHECK_ROW, keys.check_row().map_err(sealing)?.as_bytes()).map_err(io)?;
    }
    w.commit().map_err(io)?;
    Ok(done)
}

/// The key id the store's check row was sealed with, if the store has been sealed.
fn sealed_with(db: &Database) -> Result<Option<String>, StoreError> {
    let r = db.begin_read().map_err(io)?;
    let meta = match r.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let check = meta.get(encryption::CHECK_ROW).map_err(io)?.map(|v| String::from_utf8_lossy(v.value()).into_owned());
    Ok(check)
}

/// The store's keyring: its key file read (or made, for a store never sealed with the
/// default key file), checked against the check row; a store never sealed is sealed now.
fn keyring(db: &Database, path: &Path, explicit: bool) -> Result<Keyring, StoreError> {
    let check = sealed_with(db)?;
    let key = if explicit || path.exists() {
        Key::read(path).map_err(sealing)?
    } else if let Some(c) = &check {
        let sealed_with = encryption::envelope_key_id(c).unwrap_or("unknown").to_string();
        return Err(sealing(EncryptionError::MissingKey { path: path.to_path_buf(), sealed_with }));
    } else {
        Key::generate(path).map_err(sealing)?
    };
    let keys = Keyring::new(key);
    match check {
        Some(c) => keys.verify(&c, path).map_err(sealing)?,
        None => {
            reseal(db, &keys)?;
        }
    }
    Ok(keys)
}

/// What a key rotation did.
#[derive(Debug)]
pub struct Rotated {
    /// The key file, which now holds the new key.
    pub key_file: PathBuf,
    pub old_key_id: String,
    pub new_key_id: String,
    /// Sealed objects and raft log entries re-encrypted.
    pub objects: usize,
    pub log_entries: usize,
}

/// Re-encrypts every sealed object of the (stopped) store in `dir` with a new key, then
/// puts the new key in the key file. The new key waits in `KEYFILE.next` until the store
/// is rewritten, so a rotation cut short is finished by running it again.
pub(super) fn rotate(dir: &Path, config: &StoreConfig) -> Result<Rotated, StoreError> {
    let db_path = dir.join(DB_FILE);
    if !db_path.exists() {
        return Err(StoreError::Unavailable("no store in this data dir"));
    }
    let db = open_db(&db_path)?;
    let path = key_path(dir, config);
    let old = Key::read(&path).map_err(sealing)?;
    let old_key_id = old.id().to_string();
    let next_path = encryption::next_key_path(&path);
    let new = if next_path.exists() { Key::read(&next_path).map_err(sealing)? } else { Key::generate(&next_path).map_err(sealing)? };
    let keys = Keyring::rotating(new, old);
    if let Some(check) = sealed_with(&db)? {
        keys.verify(&check, &path).map_err(sealing)?;
    }
    let done = reseal(&db, &keys)?;
    drop(db);
    std::fs::rename(&next_path, &path)
        .and_then(|()| encryption::sync_parent(&path))
        .map_err(|source| sealing(EncryptionError::WriteKey { path: path.clone(), source }))?;
    Ok(Rotated { key_file: path, old_key_id, new_key_id: keys.sealing_id().to_string(), objects: done.objects, log_entries: done.log_entries })
}

/// What `load` read from disk, handed to the driver.
pub(super) struct Persisted {
    db: Arc<Database>,
    storage: MemStorage,
    applied: u64,
    keys: Arc<Keyring>,
}

/// Opens the database in `dir`, checks its encryption key, and reads the object state
/// and the raft log.
/// `bootstrap` is the voters of a new store (empty: a joiner, which waits for a leader's
/// snapshot); a store that has run keeps the membership it persisted.
pub(super) fn load(dir: &Path, config: &StoreConfig, bootstrap: &[u64]) -> Result<(Objects, u64, Persisted), StoreError> {
    let db = open_db(&dir.join(DB_FILE))?;
    {
        let w = db.begin_write().map_err(io)?;
        w.open_table(LOG).map_err(io)?;
        w.open_table(META).map_err(io)?;
        w.open_table(STATE).map_err(io)?;
        w.open_table(OBJECTS).map_err(io)?;
        migrate_objects_v1(&w)?;
        w.commit().map_err(io)?;
    }
    let keys = Arc::new(keyring(&db, &key_path(dir, config), config.encryption_key_file.is_some())?);
    let r = db.begin_read().map_err(io)?;
    let mut objects = Objects::new();
    for item in r.open_table(OBJECTS).map_err(io)?.iter().map_err(io)? {
        let (k, v) = item.map_err(io)?;
        let (rv, bytes) = v.value();
        let value = row_value(k.value(), bytes, &keys)?;
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
        None if bootstrap.is_empty() => MemStorage::new(),
        None => MemStorage::new_with_conf_state(ConfState::from((bootstrap.to_vec(), vec![]))),
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
    Ok((objects, revision, Persisted { db: Arc::new(db), storage, applied, keys }))
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
    /// A message from a peer.
    Raft(Box<Message>),
    /// Answered once this member has applied everything committed when it was asked
    /// (raft ReadIndex): a read after it is linearizable.
    ReadIndex(oneshot::Sender<Result<(), StoreError>>),
    ConfChange(ConfChange, oneshot::Sender<Result<ConfState, StoreError>>),
    /// Commit what was received, then stop and close the database.
    Stop,
}

/// A member's view of the raft group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftStatus {
    pub id: u64,
    /// 0 when no leader is known.
    pub leader: u64,
    pub term: u64,
    pub role: Role,
    pub applied: u64,
    pub commit: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// On the leader: each member's replication progress.
    pub progress: Vec<Progress>,
}

/// How far the leader knows a member to be.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub id: u64,
    /// Highest log index known to be on the member.
    pub matched: u64,
    /// Heard from within the last election timeout.
    pub active: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    Leader,
    #[default]
    Follower,
    Learner,
    Candidate,
}

/// Sends proposals to the driver thread.
#[derive(Clone)]
pub(super) struct Proposer {
    tx: mpsc::Sender<Msg>,
    thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
    keys: Arc<Keyring>,
    status: Arc<std::sync::Mutex<RaftStatus>>,
    timeout: Option<Duration>,
}

/// What a caller gets when its proposal outlives the member's timeout: the write may
/// still commit (the caller must not assume either outcome).
const TIMED_OUT: StoreError = StoreError::Unavailable("no raft quorum answered in time; the write may or may not have been applied");

impl Proposer {
    async fn wait<T>(&self, rx: oneshot::Receiver<Result<T, StoreError>>) -> Result<T, StoreError> {
        let answer = match self.timeout {
            Some(t) => tokio::time::timeout(t, rx).await.map_err(|_| TIMED_OUT)?,
            None => rx.await,
        };
        answer.map_err(|_| StoreError::Unavailable("proposal dropped"))?
    }

    pub(super) async fn propose(&self, ops: Vec<Op>) -> Result<Vec<OpResult>, StoreError> {
        let encoded = ops.iter().map(|op| encode(op, &self.keys)).collect::<Result<Vec<_>, _>>()?;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Propose(Proposal { ops, encoded, reply }))
            .map_err(|_| StoreError::Unavailable("store stopped"))?;
        self.wait(rx).await
    }

    /// Waits until this member has applied everything committed before the call.
    pub(super) async fn read_index(&self) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::ReadIndex(reply)).map_err(|_| StoreError::Unavailable("store stopped"))?;
        self.wait(rx).await
    }

    /// Proposes a membership change (on the leader); answers once it is applied here.
    pub(super) async fn conf_change(&self, cc: ConfChange) -> Result<ConfState, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::ConfChange(cc, reply)).map_err(|_| StoreError::Unavailable("store stopped"))?;
        self.wait(rx).await
    }

    /// Hands a peer's message to the driver (dropped once the store is closed).
    pub(super) fn step(&self, msg: Message) {
        let _ = self.tx.send(Msg::Raft(Box::new(msg)));
    }

    pub(super) fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    pub(super) fn status(&self) -> RaftStatus {
        self.status.lock().expect("raft status").clone()
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

/// Starts the driver thread. The sole voter of its cluster returns once it leads (at
/// once); a member of a larger cluster returns at once and elects with its peers.
pub(super) fn start(p: Persisted, shared: Arc<Shared>, config: StoreConfig, member: MemberConfig) -> Result<Proposer, StoreError> {
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let cfg = Config {
        id: member.id,
        applied: p.applied,
        election_tick: 10,
        heartbeat_tick: 3,
        // A partitioned leader steps down (so it answers no more writes), and a member
        // rejoining after a partition does not depose a working leader.
        check_quorum: true,
        pre_vote: true,
        read_only_option: ReadOnlyOption::Safe,
        max_size_per_msg: 4 << 20,
        max_inflight_msgs: 256,
        ..Default::default()
    };
    cfg.validate().map_err(io)?;
    // Remember the membership so a restart sees the same voters.
    let cs = p.storage.initial_state().map_err(io)?.conf_state;
    {
        let w = p.db.begin_write().map_err(io)?;
        w.open_table(META).map_err(io)?.insert("conf_state", cs.write_to_bytes().map_err(io)?.as_slice()).map_err(io)?;
        w.commit().map_err(io)?;
    }
    let sole_voter = cs.voters == [member.id] && cs.learners.is_empty();
    let storage = LogStorage { mem: p.storage, db: p.db.clone() };
    let node = RawNode::new(&cfg, storage, &logger).map_err(io)?;
    let keys = p.keys;
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    let status = Arc::new(std::sync::Mutex::new(RaftStatus { id: member.id, ..RaftStatus::default() }));
    let timeout = member.timeout;
    let mut driver = Driver {
        node,
        db: p.db,
        shared,
        config,
        keys: keys.clone(),
        pending: BTreeMap::new(),
        conf_pending: BTreeMap::new(),
        reads: HashMap::new(),
        read_queue: Vec::new(),
        next_id: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
        leader_signal: Some(ready_tx),
        transport: member.transport.clone(),
        tick: member.tick,
        snapshot_since: HashMap::new(),
        status: status.clone(),
        sole_voter,
    };
    let thread = std::thread::Builder::new()
        .name("flotilla-raft".into())
        .spawn(move || driver.run(rx))
        .map_err(io)?;
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| StoreError::Unavailable("raft did not elect a leader"))??;
    Ok(Proposer { tx, thread: Arc::new(std::sync::Mutex::new(Some(thread))), keys, status, timeout })
}

type Reply = oneshot::Sender<Result<Vec<OpResult>, StoreError>>;

/// A ReadIndex request: asked when, in which (term, leader), and its reply.
type PendingRead = (Instant, (u64, u64), oneshot::Sender<Result<(), StoreError>>);

/// A proposal in the log, not yet applied, keyed by its log index.
struct Waiting {
    /// The proposal id in the entry's context: the entry at this index is ours only if
    /// it carries this id (after a leader change another entry may take the index).
    id: u64,
    replies: Vec<(Reply, usize)>,
    /// The proposed ops themselves: the entry that carries them is applied from these
    /// instead of decoding its bytes again (the bytes are what the log keeps and what a
    /// replay after a restart or a follower decodes).
    ops: Option<(Vec<Op>, Vec<Encoded>)>,
}

struct Driver {
    node: RawNode<LogStorage>,
    db: Arc<Database>,
    shared: Arc<Shared>,
    config: StoreConfig,
    /// Opens the Secrets of replayed entries; seals the rows they write.
    keys: Arc<Keyring>,
    /// Proposals by log index.
    pending: BTreeMap<u64, Waiting>,
    /// Membership changes by log index: (proposal id, reply).
    conf_pending: BTreeMap<u64, (u64, oneshot::Sender<Result<ConfState, StoreError>>)>,
    /// ReadIndex requests sent to raft, by context.
    reads: HashMap<u64, PendingRead>,
    /// Reads whose index is known, waiting for it to be applied.
    read_queue: Vec<(u64, oneshot::Sender<Result<(), StoreError>>)>,
    next_id: u64,
    leader_signal: Option<mpsc::Sender<Result<(), StoreError>>>,
    transport: Arc<dyn Transport>,
    tick: Duration,
    /// Peers the leader is sending a snapshot to, since when.
    snapshot_since: HashMap<u64, Instant>,
    status: Arc<std::sync::Mutex<RaftStatus>>,
    sole_voter: bool,
}

/// A snapshot not acknowledged within this many ticks is reported failed, so raft sends
/// another (a lost snapshot message would otherwise stall the follower for good).
const SNAPSHOT_TICKS: u32 = 100;

/// A ReadIndex request unanswered for this many ticks is failed (the caller retries).
const READ_TICKS: u32 = 20;

/// Why a ReadIndex request was failed: asking again may succeed.
pub(super) const READ_RETRY: &str = "the read was not confirmed by a leader (leader changed or message lost); retry";

fn context_id(e: &Entry) -> Option<u64> {
    <[u8; 8]>::try_from(&e.context[..]).ok().map(u64::from_le_bytes)
}

impl Driver {
    fn run(&mut self, rx: mpsc::Receiver<Msg>) {
        if self.sole_voter {
            if let Err(e) = self.node.campaign() {
                self.fail(io(e));
                return;
            }
        } else if let Some(s) = self.leader_signal.take() {
            let _ = s.send(Ok(()));
        }
        let mut last_tick = Instant::now();
        loop {
            let timeout = self.tick.saturating_sub(last_tick.elapsed());
            let mut batch = Vec::new();
            let mut bytes = 0;
            let mut stop = false;
            let mut first = Some(rx.recv_timeout(timeout));
            loop {
                let msg = match first.take() {
                    Some(Ok(m)) => m,
                    Some(Err(mpsc::RecvTimeoutError::Timeout)) => break,
                    Some(Err(mpsc::RecvTimeoutError::Disconnected)) => return,
                    None if batch.len() < MAX_BATCH && bytes < MAX_ENTRY_BYTES => match rx.try_recv() {
                        Ok(m) => m,
                        Err(_) => break,
                    },
                    None => break,
                };
                match msg {
                    Msg::Propose(p) => {
                        bytes += p.bytes();
                        batch.push(p);
                    }
                    Msg::Raft(m) => {
                        let (from, kind) = (m.from, m.get_msg_type());
                        if let Err(e) = self.node.step(*m) {
                            tracing::debug!(from, ?kind, error = %e, "raft message not stepped");
                        }
                    }
                    Msg::ReadIndex(reply) => self.read_index(reply),
                    Msg::ConfChange(cc, reply) => self.propose_conf_change(cc, reply),
                    Msg::Stop => {
                        stop = true;
                        break;
                    }
                }
            }
            if !batch.is_empty() {
                self.propose(batch);
            }
            if last_tick.elapsed() >= self.tick {
                self.node.tick();
                self.check_snapshots();
                self.expire_reads();
                last_tick = Instant::now();
            }
            if let Err(e) = self.on_ready() {
                // Storage failed: nothing can be trusted any more; stop answering.
                tracing::error!(error = %e, "raft storage failed; store stopping");
                self.fail(e);
                return;
            }
            self.publish_status();
            if stop {
                self.fail(StoreError::Unavailable("store closed"));
                return;
            }
        }
    }

    fn publish_status(&self) {
        let raft = &self.node.raft;
        let conf = raft.prs().conf().to_conf_state();
        let role = match raft.state {
            StateRole::Leader => Role::Leader,
            StateRole::Candidate | StateRole::PreCandidate => Role::Candidate,
            StateRole::Follower if conf.learners.contains(&raft.id) => Role::Learner,
            StateRole::Follower => Role::Follower,
        };
        let st = RaftStatus {
            id: raft.id,
            leader: raft.leader_id,
            term: raft.term,
            role,
            applied: raft.raft_log.applied,
            commit: raft.raft_log.committed,
            voters: conf.voters,
            learners: conf.learners,
            progress: if raft.state == StateRole::Leader {
                let mut p: Vec<Progress> = raft
                    .prs()
                    .iter()
                    .map(|(id, pr)| Progress { id: *id, matched: pr.matched, active: *id == raft.id || pr.recent_active })
                    .collect();
                p.sort_by_key(|p| p.id);
                p
            } else {
                Vec::new()
            },
        };
        let mut cur = self.status.lock().expect("raft status");
        if *cur != st {
            *cur = st;
        }
    }

    fn fail(&mut self, e: StoreError) {
        if let Some(s) = self.leader_signal.take() {
            let _ = s.send(Err(e.clone()));
        }
        for (_, w) in std::mem::take(&mut self.pending) {
            for (r, _) in w.replies {
                let _ = r.send(Err(e.clone()));
            }
        }
        for (_, (_, r)) in std::mem::take(&mut self.conf_pending) {
            let _ = r.send(Err(e.clone()));
        }
        for (_, (_, _, r)) in self.reads.drain() {
            let _ = r.send(Err(e.clone()));
        }
        for (_, r) in self.read_queue.drain(..) {
            let _ = r.send(Err(e.clone()));
        }
    }

    fn not_leader(&self) -> StoreError {
        let leader = self.node.raft.leader_id;
        StoreError::NotLeader { leader: (leader != raft::INVALID_ID).then_some(leader) }
    }

    fn propose(&mut self, batch: Vec<Proposal>) {
        if self.node.raft.state != StateRole::Leader {
            let e = self.not_leader();
            for p in batch {
                let _ = p.reply.send(Err(e.clone()));
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
        let before = self.node.raft.raft_log.last_index();
        match self.node.propose(id.to_le_bytes().to_vec(), data) {
            Ok(()) if self.node.raft.raft_log.last_index() > before => {
                let index = self.node.raft.raft_log.last_index();
                self.pending.insert(index, Waiting { id, replies, ops: Some((ops, encoded)) });
            }
            Ok(()) => {
                for (r, _) in replies {
                    let _ = r.send(Err(StoreError::Unavailable("raft dropped the proposal")));
                }
            }
            Err(e) => {
                let e = StoreError::Rejected(Arc::new(e));
                for (r, _) in replies {
                    let _ = r.send(Err(e.clone()));
                }
            }
        }
    }

    fn propose_conf_change(&mut self, cc: ConfChange, reply: oneshot::Sender<Result<ConfState, StoreError>>) {
        if self.node.raft.state != StateRole::Leader {
            let _ = reply.send(Err(self.not_leader()));
            return;
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let before = self.node.raft.raft_log.last_index();
        match self.node.propose_conf_change(id.to_le_bytes().to_vec(), cc) {
            Ok(()) if self.node.raft.raft_log.last_index() > before => {
                self.conf_pending.insert(self.node.raft.raft_log.last_index(), (id, reply));
            }
            Ok(()) => {
                let _ = reply.send(Err(StoreError::Unavailable("raft dropped the membership change")));
            }
            Err(e) => {
                let _ = reply.send(Err(StoreError::Rejected(Arc::new(e))));
            }
        }
    }

    fn read_index(&mut self, reply: oneshot::Sender<Result<(), StoreError>>) {
        if self.node.raft.leader_id == raft::INVALID_ID {
            let _ = reply.send(Err(self.not_leader()));
            return;
        }
        let ctx = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.node.read_index(ctx.to_le_bytes().to_vec());
        let epoch = (self.node.raft.term, self.node.raft.leader_id);
        self.reads.insert(ctx, (Instant::now(), epoch, reply));
    }

    /// Fails ReadIndex requests raft will not answer: asked of a leader that is no longer
    /// the leader (a request forwarded to a dead one is lost), or unanswered for
    /// [`READ_TICKS`] ticks (a message dropped). Reads are idempotent: callers retry.
    fn expire_reads(&mut self) {
        let epoch = (self.node.raft.term, self.node.raft.leader_id);
        let limit = self.tick * READ_TICKS;
        let stale: Vec<u64> = self.reads.iter().filter(|(_, (at, e, r))| r.is_closed() || *e != epoch || at.elapsed() > limit).map(|(c, _)| *c).collect();
        for c in stale {
            if let Some((_, _, r)) = self.reads.remove(&c) {
                let _ = r.send(Err(StoreError::Unavailable(READ_RETRY)));
            }
        }
    }

    /// Answers reads whose index this member has applied.
    fn answer_reads(&mut self) {
        let applied = self.node.raft.raft_log.applied;
        let mut i = 0;
        while i < self.read_queue.len() {
            if self.read_queue[i].0 <= applied {
                let (_, r) = self.read_queue.swap_remove(i);
                let _ = r.send(Ok(()));
            } else {
                i += 1;
            }
        }
    }

    fn check_snapshots(&mut self) {
        if self.node.raft.state != StateRole::Leader {
            self.snapshot_since.clear();
            return;
        }
        let now = Instant::now();
        let sending: Vec<u64> = self.node.raft.prs().iter().filter(|(_, pr)| pr.state == ProgressState::Snapshot).map(|(id, _)| *id).collect();
        self.snapshot_since.retain(|id, _| sending.contains(id));
        for id in sending {
            let since = *self.snapshot_since.entry(id).or_insert(now);
            if now.duration_since(since) > self.tick * SNAPSHOT_TICKS {
                tracing::warn!(to = id, "store snapshot not acknowledged; sending another");
                self.node.report_snapshot(id, raft::SnapshotStatus::Failure);
                self.snapshot_since.remove(&id);
            }
        }
    }

    fn send(&self, msgs: Vec<Message>) {
        if !msgs.is_empty() {
            self.transport.send(msgs);
        }
    }

    fn on_ready(&mut self) -> Result<(), StoreError> {
        if !self.node.has_ready() {
            return Ok(());
        }
        let mut ready = self.node.ready();
        // A leader sends before it persists (raft allows it: the append is durable on a
        // quorum either way); everything else waits for persistence below.
        self.send(ready.take_messages());
        if !ready.snapshot().is_empty() {
            self.install_snapshot(ready.snapshot().clone(), ready.hs().cloned())?;
        }
        let committed = ready.take_committed_entries();
        self.apply_entries(committed)?;
        if !ready.entries().is_empty() || ready.hs().is_some() {
            let w = self.db.begin_write().map_err(io)?;
            {
                let mut log = w.open_table(LOG).map_err(io)?;
                if let Some(first) = ready.entries().first() {
                    // Entries from `first` on are replaced: a new leader overwrote them.
                    log.retain_in(first.index.., |_, _| false).map_err(io)?;
                }
                for e in ready.entries() {
                    log.insert(e.index, e.write_to_bytes().map_err(io)?.as_slice()).map_err(io)?;
                }
                if let Some(hs) = ready.hs() {
                    w.open_table(META).map_err(io)?.insert("hard_state", hs.write_to_bytes().map_err(io)?.as_slice()).map_err(io)?;
                }
            }
            w.commit().map_err(io)?;
            let mut st = self.node.mut_store().mem.wl();
            st.append(ready.entries()).map_err(io)?;
            if let Some(hs) = ready.hs() {
                st.set_hardstate(hs.clone());
            }
        }
        for rs in ready.take_read_states() {
            if let Some((_, _, reply)) = context_id_bytes(&rs.request_ctx).and_then(|c| self.reads.remove(&c)) {
                self.read_queue.push((rs.index, reply));
            }
        }
        self.send(ready.take_persisted_messages());
        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.node.mut_store().mem.wl().mut_hard_state().set_commit(commit);
        }
        self.send(light.take_messages());
        self.apply_entries(light.take_committed_entries())?;
        self.node.advance_apply();
        self.answer_reads();
        if self.node.raft.state == StateRole::Leader
            && let Some(s) = self.leader_signal.take()
        {
            // Whoever waited for leadership reads the status next: publish it first.
            self.publish_status();
            let _ = s.send(Ok(()));
        }
        self.maybe_compact()
    }

    /// Replaces this member's state with a leader's snapshot, in one durable transaction.
    fn install_snapshot(&mut self, snap: RaftSnapshot, hs: Option<HardState>) -> Result<(), StoreError> {
        let md = snap.get_metadata().clone();
        let data = snapshot::decode(snap.get_data())?;
        let mut objects = Objects::new();
        for row in &data.rows {
            let value = row_value(&row.key, &row.bytes, &self.keys)?;
            objects.insert(row.key.as_str().into(), machine::stored(value, row.rv));
        }
        let w = self.db.begin_write().map_err(io)?;
        {
            w.delete_table(OBJECTS).map_err(io)?;
            let mut table = w.open_table(OBJECTS).map_err(io)?;
            for row in &data.rows {
                table.insert(row.key.as_str(), (row.rv, row.bytes.as_slice())).map_err(io)?;
            }
            w.delete_table(LOG).map_err(io)?;
            w.open_table(LOG).map_err(io)?;
            let mut state = w.open_table(STATE).map_err(io)?;
            state.insert("revision", data.revision).map_err(io)?;
            state.insert("applied", md.index).map_err(io)?;
            let mut meta = w.open_table(META).map_err(io)?;
            let mut bare = md.clone();
            bare.clear_conf_state();
            meta.insert("snapshot", bare.write_to_bytes().map_err(io)?.as_slice()).map_err(io)?;
            meta.insert("conf_state", md.get_conf_state().write_to_bytes().map_err(io)?.as_slice()).map_err(io)?;
            if let Some(hs) = &hs {
                meta.insert("hard_state", hs.write_to_bytes().map_err(io)?.as_slice()).map_err(io)?;
            }
        }
        w.commit().map_err(io)?;
        self.node.mut_store().mem.wl().apply_snapshot(snap).map_err(io)?;
        // Proposals this member made as leader that the snapshot may or may not hold.
        let unknown = StoreError::Unavailable("the leader changed; the write may or may not have been applied");
        let covered: Vec<u64> = self.pending.range(..=md.index).map(|(i, _)| *i).collect();
        for i in covered {
            if let Some(w) = self.pending.remove(&i) {
                for (r, _) in w.replies {
                    let _ = r.send(Err(unknown.clone()));
                }
            }
        }
        let covered: Vec<u64> = self.conf_pending.range(..=md.index).map(|(i, _)| *i).collect();
        for i in covered {
            if let Some((_, r)) = self.conf_pending.remove(&i) {
                let _ = r.send(Err(unknown.clone()));
            }
        }
        {
            let mut snap = self.shared.objects.write().expect("store lock");
            snap.objects = objects;
            snap.revision = data.revision;
            snap.changed.clear();
            snap.reset = data.revision;
        }
        // Watchers of this member relist: the events between its old state and the
        // snapshot are not known here.
        self.shared.watch.reset(data.revision);
        tracing::info!(index = md.index, revision = data.revision, objects = data.rows.len(), "installed a store snapshot");
        Ok(())
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<(), StoreError> {
        let Some(last) = entries.last() else { return Ok(()) };
        let last_index = last.index;
        let mut results = Vec::new();
        let mut lost = Vec::new();
        let mut conf_done = Vec::new();
        let mut conf_state = None;
        let mut compact = false;
        let mut writes = Vec::new();
        let mut events = Vec::new();
        let revision;
        {
            let mut snap = self.shared.objects.write().expect("store lock");
            for e in &entries {
                let ours = self.pending.get(&e.index).is_some_and(|w| context_id(e) == Some(w.id) && e.get_entry_type() == EntryType::EntryNormal);
                if !ours && let Some(w) = self.pending.remove(&e.index) {
                    lost.push(w);
                }
                match e.get_entry_type() {
                    EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                        let before = self.node.raft.prs().conf().to_conf_state();
                        let cs = if e.get_entry_type() == EntryType::EntryConfChange {
                            let cc = ConfChange::parse_from_bytes(&e.data).map_err(io)?;
                            self.node.apply_conf_change(&cc)
                        } else {
                            let cc = raft::prelude::ConfChangeV2::parse_from_bytes(&e.data).map_err(io)?;
                            self.node.apply_conf_change(&cc)
                        };
                        let result = cs.map_err(|e| StoreError::Rejected(Arc::new(e)));
                        if let Ok(cs) = &result {
                            self.node.mut_store().mem.wl().set_conf_state(cs.clone());
                            let added = cs.voters.iter().chain(&cs.learners).any(|id| !before.voters.contains(id) && !before.learners.contains(id));
                            compact |= added;
                            conf_state = Some(cs.clone());
                        }
                        if let Some((id, _)) = self.conf_pending.get(&e.index) {
                            let mine = context_id(e) == Some(*id);
                            let (_, reply) = self.conf_pending.remove(&e.index).expect("present");
                            conf_done.push((reply, if mine { result } else { Err(StoreError::Unavailable("the membership change was not committed (leader changed or another change was pending)")) }));
                        }
                        continue;
                    }
                    EntryType::EntryNormal => {}
                }
                if let Some((_, r)) = self.conf_pending.remove(&e.index) {
                    // raft turns a refused conf change into an empty normal entry.
                    conf_done.push((r, Err(StoreError::Unavailable("raft refused the membership change (another change is pending)"))));
                }
                if e.data.is_empty() {
                    continue;
                }
                let local = if ours { self.pending.get_mut(&e.index).and_then(|w| w.ops.take()) } else { None };
                let (ops, encoded) = match local {
                    Some((ops, encoded)) => (ops, Some(encoded)),
                    None => {
                        let mut batch: Batch = serde_json::from_slice(&e.data).map_err(io)?;
                        self.keys.open_ops(&mut batch.ops).map_err(sealing)?;
                        (batch.ops, None)
                    }
                };
                let applied = machine::apply(&mut snap, ops);
                for (op, key, value) in applied.writes {
                    let row = match value {
                        None => None,
                        Some(s) => {
                            let bytes = match encoded.as_ref().and_then(|enc| Some((&enc[op], enc[op].object.clone()?))) {
                                Some((enc, range)) => enc.bytes[range].to_vec(),
                                None => row_bytes(&key, &s.value, &self.keys)?,
                            };
                            Some((s.rv, bytes))
                        }
                    };
                    writes.push((key, row));
                }
                events.extend(applied.events);
                if ours {
                    results.push((e.index, applied.results));
                }
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
            if let Some(cs) = &conf_state {
                w.open_table(META).map_err(io)?.insert("conf_state", cs.write_to_bytes().map_err(io)?.as_slice()).map_err(io)?;
            }
        }
        w.commit().map_err(io)?;
        self.shared.watch.push(events, revision);
        for (index, res) in results {
            if let Some(waiting) = self.pending.remove(&index) {
                let mut res = res.into_iter();
                for (reply, n) in waiting.replies {
                    let _ = reply.send(Ok(res.by_ref().take(n).collect()));
                }
            }
        }
        // Another entry took the index: the proposal is not in the log and never will be.
        for w in lost {
            for (reply, _) in w.replies {
                let _ = reply.send(Err(StoreError::Unavailable("the leader changed before the write was committed; it was not applied")));
            }
        }
        for (reply, r) in conf_done {
            let _ = reply.send(r);
        }
        if compact {
            // A new member starts from a snapshot, not from a log whose first entries
            // predate the membership it must know. (The last entry stays: raft-rs's
            // MemStorage cannot be compacted empty.)
            self.compact_to(last_index)?;
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
        self.compact_to(applied - retain)
    }

    /// Drops log entries before `upto` (all applied); the snapshot covers up to `upto - 1`.
    fn compact_to(&mut self, upto: u64) -> Result<(), StoreError> {
        let first = self.node.store().first_index().map_err(io)?;
        if upto <= first {
            return Ok(());
        }
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
        self.node.mut_store().mem.wl().compact(upto).map_err(io)?;
        Ok(())
    }
}

fn context_id_bytes(ctx: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(ctx).ok().map(u64::from_le_bytes)
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
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = Keyring::new(Key::generate(&dir.path().join("key")).expect("key"));
        for op in &ops {
            let enc = encode(op, &keys).expect("encode");
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

    #[test]
    fn secrets_are_encoded_sealed_and_other_objects_as_they_are() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = Keyring::new(Key::generate(&dir.path().join("key")).expect("key"));
        let secret = json!({"kind": "Secret", "data": {"p": "cGxhaW4="}});
        let op = Op::Create { key: "core/secrets/ns/s".into(), object: secret.clone() };
        let enc = encode(&op, &keys).expect("encode");
        let text = String::from_utf8(enc.bytes.clone()).expect("utf8");
        assert!(!text.contains("cGxhaW4=") && !text.contains("Secret"), "{text}");
        let mut parsed: Batch = serde_json::from_slice(format!("{{\"id\":1,\"ops\":[{text}]}}").as_bytes()).expect("a batch");
        keys.open_ops(&mut parsed.ops).expect("opens");
        assert!(matches!(&parsed.ops[0], Op::Create { object, .. } if *object == secret));
        // The objects table's row is the envelope, as a JSON string.
        let row = &enc.bytes[enc.object.expect("object range")];
        assert_eq!(row_value("core/secrets/ns/s", row, &keys).expect("row"), secret);
        let cm = Op::Create { key: "core/configmaps/ns/s".into(), object: json!({"data": {"p": "plain"}}) };
        assert!(String::from_utf8(encode(&cm, &keys).expect("encode").bytes).expect("utf8").contains("plain"));
    }

    fn contains(hay: &[u8], needle: &str) -> bool {
        hay.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    /// Every byte of every file under `dir`.
    fn all_bytes(dir: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                out.extend(all_bytes(&p));
            } else {
                out.extend(std::fs::read(&p).expect("read"));
            }
        }
        out
    }

    fn secret(value: &str) -> serde_json::Value {
        use base64::Engine as _;
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "ns", "uid": "u"},
               "data": {"p": base64::engine::general_purpose::STANDARD.encode(value)}})
    }

    async fn write(store: &crate::store::Store, object: serde_json::Value) {
        store.write(Op::Create { key: "core/secrets/ns/s".into(), object }).await.expect("create");
    }

    #[tokio::test]
    async fn secrets_reach_disk_sealed_and_read_back_after_restart_and_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = StoreConfig::default;
        let store = crate::store::Store::open(dir.path(), config()).expect("open");
        write(&store, secret("hunter2-plaintext")).await;
        let plain = |s: &crate::store::Store| s.get("core/secrets/ns/s").map(|o| o.value["data"]["p"].clone());
        let want = plain(&store);
        store.close();
        let bytes = all_bytes(dir.path());
        assert!(!contains(&bytes, "hunter2-plaintext") && !contains(&bytes, want.as_ref().and_then(|v| v.as_str()).expect("data")));
        assert!(contains(&bytes, "k8s:enc:xchacha20poly1305:v1:"));
        let key_file = dir.path().join("encryption.key");
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key_file).expect("key made").permissions());
        assert_eq!(mode & 0o777, 0o600);

        // Restart: the log replays and the objects table loads, both opened.
        let store = crate::store::Store::open(dir.path(), config()).expect("reopen");
        assert_eq!(plain(&store), want);
        let before = Key::read(&key_file).expect("key").id().to_string();
        // Rotation needs the store closed.
        let busy = crate::store::Store::rotate_encryption_key(dir.path(), &config()).expect_err("in use");
        assert!(busy.to_string().contains("in use"), "{busy}");
        store.close();
        let rotated = crate::store::Store::rotate_encryption_key(dir.path(), &config()).expect("rotate");
        assert_eq!((rotated.old_key_id.as_str(), rotated.objects), (before.as_str(), 1));
        assert!(rotated.log_entries >= 1, "{rotated:?}");
        assert_eq!(Key::read(&key_file).expect("key").id(), rotated.new_key_id);
        assert!(!encryption::next_key_path(&key_file).exists());
        let store = crate::store::Store::open(dir.path(), config()).expect("open after rotation");
        assert_eq!(plain(&store), want);
        store.close();
        // The live store data holds only the new key's envelopes.
        let db = Database::create(dir.path().join(DB_FILE)).expect("db");
        let r = db.begin_read().expect("read");
        let row = r.open_table(OBJECTS).expect("objects").get("core/secrets/ns/s").expect("get").map(|v| v.value().1.to_vec()).expect("row");
        assert!(contains(&row, &format!(":v1:{}:", rotated.new_key_id)));
        for item in r.open_table(LOG).expect("log").iter().expect("iter") {
            let (_, v) = item.expect("entry");
            assert!(!contains(v.value(), &format!(":v1:{before}:")), "a log entry keeps the old key's envelope");
        }
    }

    #[tokio::test]
    async fn a_wrong_or_missing_key_refuses_to_open_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(dir.path(), StoreConfig::default()).expect("open");
        store.close();
        let other = dir.path().join("other.key");
        Key::generate(&other).expect("key");
        let with = |f: &Path| StoreConfig { encryption_key_file: Some(f.to_path_buf()), ..StoreConfig::default() };
        let e = crate::store::Store::open(dir.path(), with(&other)).err().expect("wrong key");
        let msg = e.to_string();
        assert!(msg.contains("is not the key this store's Secrets are sealed with"), "{msg}");
        assert!(!msg.contains(std::fs::read_to_string(&other).expect("key").trim()), "{msg}");
        let e = crate::store::Store::open(dir.path(), with(&dir.path().join("nope"))).err().expect("missing file");
        assert!(e.to_string().contains("reading the encryption key file"), "{e}");
        std::fs::remove_file(dir.path().join("encryption.key")).expect("remove");
        let e = crate::store::Store::open(dir.path(), StoreConfig::default()).err().expect("key gone");
        assert!(e.to_string().contains("its key file") && e.to_string().contains("is missing"), "{e}");
        // A given key file seals a new store, and only it opens it afterwards.
        let fresh = tempfile::tempdir().expect("tempdir");
        crate::store::Store::open(fresh.path(), with(&other)).expect("given key").close();
        assert!(!fresh.path().join("encryption.key").exists());
        assert!(crate::store::Store::open(fresh.path(), StoreConfig::default()).is_err());
    }

    #[tokio::test]
    async fn a_rotation_cut_short_is_finished_by_running_it_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(dir.path(), StoreConfig::default()).expect("open");
        write(&store, secret("v")).await;
        store.close();
        let key_file = dir.path().join("encryption.key");
        // As if a rotation sealed everything with the next key, then died before the rename.
        let next = encryption::next_key_path(&key_file);
        let keys = Keyring::rotating(Key::generate(&next).expect("next"), Key::read(&key_file).expect("key"));
        reseal(&Database::create(dir.path().join(DB_FILE)).expect("db"), &keys).expect("reseal");
        let e = crate::store::Store::open(dir.path(), StoreConfig::default()).err().expect("old key refused");
        assert!(e.to_string().contains("run --rotate-encryption-key again"), "{e}");
        let rotated = crate::store::Store::rotate_encryption_key(dir.path(), &StoreConfig::default()).expect("finish");
        assert_eq!(rotated.new_key_id, keys.sealing_id());
        let store = crate::store::Store::open(dir.path(), StoreConfig::default()).expect("open");
        assert!(store.get("core/secrets/ns/s").is_some());
        store.close();
    }

    #[tokio::test]
    async fn a_store_from_before_encryption_is_sealed_when_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(dir.path(), StoreConfig::default()).expect("open");
        write(&store, secret("old-plaintext")).await;
        store.close();
        // Turn the store back into what a binary without encryption wrote: plaintext
        // Secrets in the log and the objects table, no check row, no key file.
        let keys = Keyring::new(Key::read(&dir.path().join("encryption.key")).expect("key"));
        {
            let db = Database::create(dir.path().join(DB_FILE)).expect("db");
            let w = db.begin_write().expect("write");
            {
                let mut objects = w.open_table(OBJECTS).expect("objects");
                let (rv, bytes) = objects.get("core/secrets/ns/s").expect("get").map(|v| (v.value().0, v.value().1.to_vec())).expect("row");
                let plain = serde_json::to_vec(&row_value("core/secrets/ns/s", &bytes, &keys).expect("open")).expect("json");
                objects.insert("core/secrets/ns/s", (rv, plain.as_slice())).expect("insert");
                let mut log = w.open_table(LOG).expect("log");
                let entries: Vec<(u64, Vec<u8>)> = log.iter().expect("iter").map(|i| i.expect("entry")).map(|(k, v)| (k.value(), v.value().to_vec())).collect();
                for (index, bytes) in entries {
                    let mut entry = Entry::parse_from_bytes(&bytes).expect("entry");
                    if entry.data.is_empty() {
                        continue;
                    }
                    let mut batch: Batch = serde_json::from_slice(&entry.data).expect("batch");
                    keys.open_ops(&mut batch.ops).expect("open");
                    entry.set_data(serde_json::to_vec(&batch).expect("json").into());
                    log.insert(index, entry.write_to_bytes().expect("bytes").as_slice()).expect("insert");
                }
                w.open_table(META).expect("meta").remove(encryption::CHECK_ROW).expect("remove");
            }
            w.commit().expect("commit");
        }
        std::fs::remove_file(dir.path().join("encryption.key")).expect("remove key");
        let store = crate::store::Store::open(dir.path(), StoreConfig::default()).expect("open and seal");
        assert_eq!(store.get("core/secrets/ns/s").map(|o| o.value["data"]["p"].clone()), Some(secret("old-plaintext")["data"]["p"].clone()));
        store.close();
        let db = Database::create(dir.path().join(DB_FILE)).expect("db");
        let r = db.begin_read().expect("read");
        let plaintext = secret("old-plaintext")["data"]["p"].as_str().expect("data").to_string();
        let row = r.open_table(OBJECTS).expect("objects").get("core/secrets/ns/s").expect("get").map(|v| v.value().1.to_vec()).expect("row");
        assert!(!contains(&row, &plaintext));
        for item in r.open_table(LOG).expect("log").iter().expect("iter") {
            assert!(!contains(item.expect("entry").1.value(), &plaintext), "a log entry still holds the plaintext");
        }
        assert!(r.open_table(META).expect("meta").get(encryption::CHECK_ROW).expect("get").is_some());
    }
}
