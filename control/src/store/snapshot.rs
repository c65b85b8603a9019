//! Raft snapshots of the store: what a lagging or new member installs instead of the log.
//!
//! A snapshot is the objects table as it is on disk (sealed Secrets stay sealed) at the
//! applied index, read in one redb read transaction, so its rows, revision and index agree.
//! [`LogStorage`] is raft-rs's `Storage`: the in-memory log (`MemStorage`) for entries and
//! state, and the database for snapshots.
//!
//! Data layout (little endian): `FLSNAP1\0`, revision u64, then per row: key length u32,
//! key, revision u64, value length u32, value. Sent in one raft message; transports cut
//! it into chunks on the wire.

use std::sync::Arc;

use raft::prelude::{Entry, Snapshot};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RaftState, Storage, StorageError};
use redb::{Database, ReadableDatabase, ReadableTable};

use super::machine::StoreError;

const MAGIC: &[u8; 8] = b"FLSNAP1\0";

/// One row of the objects table.
pub(super) struct Row {
    pub key: String,
    pub rv: u64,
    pub bytes: Vec<u8>,
}

/// A decoded snapshot's state.
pub(super) struct Data {
    pub revision: u64,
    pub rows: Vec<Row>,
}

pub(super) fn encode(revision: u64, rows: impl Iterator<Item = Result<(String, u64, Vec<u8>), StoreError>>) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(1 << 16);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&revision.to_le_bytes());
    for row in rows {
        let (key, rv, bytes) = row?;
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&rv.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
#[error("malformed store snapshot: {0}")]
pub(super) struct Malformed(&'static str);

pub(super) fn decode(data: &[u8]) -> Result<Data, StoreError> {
    let bad = |w| StoreError::Io(Arc::new(Malformed(w)));
    let mut rest = data.strip_prefix(MAGIC.as_slice()).ok_or_else(|| bad("magic"))?;
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if rest.len() < n {
            return None;
        }
        let (a, b) = rest.split_at(n);
        *rest = b;
        Some(a)
    }
    let u64_of = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    let u32_of = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize;
    let revision = u64_of(take(&mut rest, 8).ok_or_else(|| bad("revision"))?);
    let mut rows = Vec::new();
    while !rest.is_empty() {
        let klen = u32_of(take(&mut rest, 4).ok_or_else(|| bad("key length"))?);
        let key = String::from_utf8(take(&mut rest, klen).ok_or_else(|| bad("key"))?.to_vec()).map_err(|_| bad("key utf-8"))?;
        let rv = u64_of(take(&mut rest, 8).ok_or_else(|| bad("row revision"))?);
        let vlen = u32_of(take(&mut rest, 4).ok_or_else(|| bad("value length"))?);
        let bytes = take(&mut rest, vlen).ok_or_else(|| bad("value"))?.to_vec();
        rows.push(Row { key, rv, bytes });
    }
    Ok(Data { revision, rows })
}

/// raft-rs's view of this member's log: entries and hard state in memory (mirroring the
/// redb log the driver writes), snapshots built from the database.
pub(super) struct LogStorage {
    pub mem: MemStorage,
    pub db: Arc<Database>,
}

impl LogStorage {
    fn build(&self, request_index: u64) -> Result<Snapshot, StoreError> {
        let r = self.db.begin_read().map_err(super::raft::io)?;
        let state = r.open_table(super::raft::STATE).map_err(super::raft::io)?;
        let applied = state.get("applied").map_err(super::raft::io)?.map(|v| v.value()).unwrap_or(0);
        let revision = state.get("revision").map_err(super::raft::io)?.map(|v| v.value()).unwrap_or(0);
        if applied < request_index || applied == 0 {
            return Err(StoreError::Unavailable("snapshot not yet available"));
        }
        let objects = r.open_table(super::raft::OBJECTS).map_err(super::raft::io)?;
        let rows = objects.iter().map_err(super::raft::io)?.map(|item| {
            let (k, v) = item.map_err(super::raft::io)?;
            let (rv, bytes) = v.value();
            Ok((k.value().to_string(), rv, bytes.to_vec()))
        });
        let data = encode(revision, rows)?;
        let mut snap = Snapshot::default();
        snap.set_data(data.into());
        let md = snap.mut_metadata();
        md.index = applied;
        md.term = self.mem.term(applied).map_err(super::raft::io)?;
        md.set_conf_state(self.mem.initial_state().map_err(super::raft::io)?.conf_state);
        Ok(snap)
    }
}

impl Storage for LogStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.mem.initial_state()
    }

    fn entries(&self, low: u64, high: u64, max_size: impl Into<Option<u64>>, context: GetEntriesContext) -> raft::Result<Vec<Entry>> {
        self.mem.entries(low, high, max_size, context)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.mem.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.mem.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.mem.last_index()
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        match self.build(request_index) {
            Ok(s) => {
                tracing::info!(to, index = s.get_metadata().index, bytes = s.get_data().len(), "sending a store snapshot");
                Ok(s)
            }
            Err(e) => {
                tracing::warn!(to, error = %e, "store snapshot unavailable");
                Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_round_trips_and_truncation_is_refused() {
        let rows = vec![("a/b".to_string(), 3u64, b"{\"x\":1}".to_vec()), ("c".to_string(), 9, vec![])];
        let data = encode(9, rows.clone().into_iter().map(Ok)).expect("encode");
        let d = decode(&data).expect("decode");
        assert_eq!(d.revision, 9);
        let back: Vec<_> = d.rows.into_iter().map(|r| (r.key, r.rv, r.bytes)).collect();
        assert_eq!(back, rows);
        for cut in [0, 5, 12, data.len() - 1] {
            assert!(decode(&data[..cut]).is_err(), "cut at {cut}");
        }
    }
}
