//! The object store: a raft-replicated state machine whose only writer is [`machine::apply`].
//!
//! Invariants:
//! - Every write is an [`Op`] proposed through raft (`raft.rs`); the apply path assigns the
//!   cluster-wide revision (resourceVersion), one per successful op, strictly increasing.
//! - Memory mirrors redb: after a batch is applied, the in-memory object map, the watch
//!   history and redb hold the same objects at the same revision.
//! - Reads (get, list) are served from memory; watches from the bounded event history.
//! - Secrets are on disk only sealed (`encryption.rs`); in memory they are plaintext.

#[cfg(test)]
mod cluster_tests;
mod encryption;
pub(crate) mod machine;
mod raft;
mod snapshot;
pub mod transport;
pub(crate) mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use encryption::EncryptionError;
pub(crate) use machine::{EventType, Op, OpResult, Precondition};
pub use machine::StoreError;
pub use raft::{FIRST_MEMBER, MemberConfig, Progress, RaftStatus, Role, Rotated};
pub use transport::Transport;
use raft::READ_RETRY;
pub(crate) use watch::{WatchError, WatchStream};

/// Configuration of the store.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// How many events the watch history keeps (older resourceVersions get 410 Gone).
    pub watch_history: usize,
    /// Events older than this leave the history (as Kubernetes' watch cache keeps about
    /// 75 s of events), though the newest [`watch::HISTORY_MIN`] always stay: a burst is
    /// kept for watchers that fall behind, and an idle cluster does not hold it forever.
    pub watch_history_age: Duration,
    /// Raft log entries kept after they are applied (older ones are compacted away).
    pub log_retain: u64,
    /// The key Secrets are sealed with at rest: a file holding 32 bytes in base64. None:
    /// `encryption.key` in the store directory, generated (mode 0600) when the store is
    /// first opened.
    pub encryption_key_file: Option<PathBuf>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { watch_history: 100_000, watch_history_age: Duration::from_secs(75), log_retain: 1_000, encryption_key_file: None }
    }
}

/// A stored object: its JSON (metadata.resourceVersion set) and its revision.
#[derive(Debug)]
pub(crate) struct Stored {
    pub rv: u64,
    pub value: Value,
}

/// Keys are shared (`Arc<str>`): listing the store clones a pointer, not a string.
pub(crate) type Objects = BTreeMap<Arc<str>, Arc<Stored>>;

/// A listed object with its key.
pub(crate) type Keyed = (Arc<str>, Arc<Stored>);

/// Shared in-memory state, updated only by the raft driver after apply.
pub(crate) struct Shared {
    pub objects: RwLock<Snapshot>,
    pub watch: watch::WatchCache,
}

/// The object map and the revision it is at.
pub(crate) struct Snapshot {
    pub objects: Objects,
    pub revision: u64,
    /// The revision of the last write under each resource's key prefix
    /// (`group/plural/`, see [`resource_prefix`]), so a cache of one kind (RBAC's index) can
    /// tell in O(1) whether its objects changed.
    pub changed: std::collections::HashMap<Box<str>, u64>,
    /// The revision at which the objects were last replaced whole (open, snapshot install):
    /// every prefix counts as changed then.
    pub reset: u64,
}

impl Snapshot {
    pub(crate) fn new(objects: Objects, revision: u64) -> Snapshot {
        Snapshot { objects, revision, changed: Default::default(), reset: revision }
    }

    /// Records a write to `key` at the current revision.
    pub(crate) fn touch(&mut self, key: &str) {
        let prefix = resource_prefix(key);
        match self.changed.get_mut(prefix) {
            Some(rv) => *rv = self.revision,
            None => {
                self.changed.insert(prefix.into(), self.revision);
            }
        }
    }
}

/// The resource part of a store key: `group/plural/` of `group/plural/[ns/]name` (the
/// whole key when it has fewer parts).
pub(crate) fn resource_prefix(key: &str) -> &str {
    match key.match_indices('/').nth(1) {
        Some((i, _)) => &key[..=i],
        None => key,
    }
}

/// Handle to the running store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    proposer: raft::Proposer,
    /// The redb file (its size is a metric).
    db_file: Arc<Path>,
}

/// A batch proposed as one raft entry.
#[derive(Serialize, Deserialize)]
pub(crate) struct Batch {
    /// Identifies the proposal on the node that made it, so results reach the caller.
    pub id: u64,
    pub ops: Vec<Op>,
}

impl Store {
    /// Opens (or creates) the store in `dir` and starts the raft driver.
    /// A key that is not the one the store's Secrets are sealed with fails here, before
    /// anything is read.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<Store, StoreError> {
        Store::open_member(dir, config, MemberConfig::single())
    }

    /// Opens the store of one member of a raft group: its peers' messages reach it
    /// through [`Store::step`], its own leave through `member.transport`.
    pub fn open_member(dir: &Path, config: StoreConfig, member: MemberConfig) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(Arc::new(e)))?;
        let (objects, revision, persisted) = raft::load(dir, &config, &member.bootstrap)?;
        let shared = Arc::new(Shared {
            objects: RwLock::new(Snapshot::new(objects, revision)),
            watch: watch::WatchCache::new(config.watch_history, config.watch_history_age, revision),
        });
        let proposer = raft::start(persisted, shared.clone(), config, member)?;
        Ok(Store { shared, proposer, db_file: dir.join(raft::DB_FILE).into() })
    }

    /// The file holding the key the store in `dir` seals Secrets with.
    pub fn key_file(dir: &Path, config: &StoreConfig) -> PathBuf {
        raft::key_path(dir, config)
    }

    /// Re-encrypts every Secret of the store in `dir`, which no process may have open, with
    /// a new key, and writes the new key over the old one in the key file.
    pub fn rotate_encryption_key(dir: &Path, config: &StoreConfig) -> Result<Rotated, StoreError> {
        raft::rotate(dir, config)
    }

    /// Proposes ops as one atomic unit of the log; each op gets its own result.
    pub(crate) async fn propose(&self, ops: Vec<Op>) -> Result<Vec<OpResult>, StoreError> {
        let started = std::time::Instant::now();
        let r = self.proposer.propose(ops).await;
        if r.is_ok() {
            crate::metrics::global().proposal(started.elapsed());
        }
        r
    }

    /// Bytes of the store's redb file (0 if it cannot be read).
    pub(crate) fn file_size(&self) -> u64 {
        std::fs::metadata(&self.db_file).map_or(0, |m| m.len())
    }

    /// Hands a raft message from a peer to this member.
    pub fn step(&self, msg: ::raft::prelude::Message) {
        self.proposer.step(msg);
    }

    /// This member's view of the raft group.
    pub fn raft_status(&self) -> RaftStatus {
        self.proposer.status()
    }

    /// Waits until this member has applied every write committed before the call (raft
    /// ReadIndex, confirmed by a quorum): a read from memory after it is linearizable.
    /// Retries while no leader confirms it (an election, a lost message), up to
    /// `MemberConfig::timeout` (25 s for a cluster member).
    pub async fn read_barrier(&self) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + self.proposer.timeout().unwrap_or(Duration::from_secs(25));
        loop {
            match self.proposer.read_index().await {
                Ok(()) => return Ok(()),
                Err(e @ StoreError::NotLeader { .. }) | Err(e @ StoreError::Unavailable(READ_RETRY)) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(e);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Proposes a membership change on the leader; returns the membership after it is
    /// applied on this member.
    pub async fn change_membership(&self, kind: ::raft::prelude::ConfChangeType, id: u64) -> Result<::raft::prelude::ConfState, StoreError> {
        let mut cc = ::raft::prelude::ConfChange::default();
        cc.set_change_type(kind);
        cc.node_id = id;
        self.proposer.conf_change(cc).await
    }

    /// Stops the store and closes its database (blocking until it is closed); every
    /// handle's later writes fail with Unavailable. Reads keep serving the last state.
    pub fn close(&self) {
        self.proposer.close();
    }

    /// Proposes one op.
    pub(crate) async fn write(&self, op: Op) -> OpResult {
        match self.propose(vec![op]).await {
            Ok(mut r) => r.pop().unwrap_or(Err(StoreError::Unavailable("empty result"))),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<Arc<Stored>> {
        self.shared.objects.read().expect("store lock").objects.get(key).cloned()
    }

    /// Objects whose key starts with `prefix` and is after `after` (exclusive), at most
    /// `limit` of them that pass `filter`, plus the revision of the snapshot and whether more remain.
    pub(crate) fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: Option<usize>,
        filter: &dyn Fn(&Stored) -> bool,
    ) -> (Vec<Arc<Stored>>, u64, Option<String>) {
        let snap = self.shared.objects.read().expect("store lock");
        let start = match after {
            Some(a) => std::ops::Bound::Excluded(a),
            None => std::ops::Bound::Included(prefix),
        };
        let mut out = Vec::new();
        let mut more = None;
        let mut last_key: Option<&Arc<str>> = None;
        for (k, v) in snap.objects.range::<str, _>((start, std::ops::Bound::Unbounded)) {
            if !k.starts_with(prefix) {
                break;
            }
            if !filter(v) {
                continue;
            }
            if let Some(l) = limit
                && out.len() >= l
            {
                more = last_key.map(|k| k.to_string());
                break;
            }
            out.push(v.clone());
            last_key = Some(k);
        }
        (out, snap.revision, more)
    }

    /// Every object under `prefix` with its key.
    pub(crate) fn list_keys(&self, prefix: &str) -> Vec<Keyed> {
        let snap = self.shared.objects.read().expect("store lock");
        snap.objects
            .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Oldest revision a watch (or a continued list) may start from.
    pub(crate) fn watch_compacted(&self) -> u64 {
        self.shared.watch.compacted()
    }

    /// The revision of the last write of an object under `prefix`, a resource's key prefix
    /// (`group/plural/`); at least the revision the store was opened or last replaced at.
    pub(crate) fn changed_at(&self, prefix: &str) -> u64 {
        let snap = self.shared.objects.read().expect("store lock");
        snap.changed.get(prefix).copied().unwrap_or(0).max(snap.reset)
    }

    /// The current revision.
    pub(crate) fn revision(&self) -> u64 {
        self.shared.objects.read().expect("store lock").revision
    }

    /// Starts a watch on keys under `prefix` for events after revision `from`
    /// (`None`: synthetic ADDED events for current objects first, then changes).
    pub(crate) fn watch(&self, prefix: &str, from: Option<u64>) -> Result<WatchStream, WatchError> {
        watch::start(&self.shared, prefix, from)
    }
}
