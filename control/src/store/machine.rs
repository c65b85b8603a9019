//! The deterministic state machine: [`apply`] is the only function that changes objects.
//!
//! It runs identically on every raft member for every committed batch, so it reads
//! nothing but its inputs: ids and timestamps are chosen by the proposer, the revision
//! comes from the state itself.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Snapshot, Stored};

/// One write.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) enum Op {
    /// Fails with AlreadyExists if the key exists.
    Create { key: String, object: Value },
    /// Replaces an existing object. An object left with a deletionTimestamp and no
    /// finalizers is deleted instead.
    Update { key: String, object: Value, precondition: Precondition },
    Delete { key: String, precondition: Precondition },
}

/// Conditions the current object must meet for an update or delete to apply.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub(crate) struct Precondition {
    pub resource_version: Option<u64>,
    pub uid: Option<String>,
}

/// Result of one op: the object as stored (for a delete, the last state with the
/// deletion's revision).
pub(crate) type OpResult = Result<Arc<Stored>, StoreError>;

/// Why a store operation failed. Clone, since one storage failure answers every waiting
/// proposal; causes are therefore shared (`Arc`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("the object has been modified; please apply your changes to the latest version and try again")]
    Conflict,
    #[error("precondition failed: UID in precondition: {expected}, UID in object meta: {actual}")]
    UidMismatch { expected: String, actual: String },
    /// Storage failed (redb, the raft log, encoding, the file system); the store stops.
    #[error("storage I/O: {0}")]
    Io(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// The store takes no writes now (closed, not the leader, no leader elected); says why.
    #[error("store unavailable: {0}")]
    Unavailable(&'static str),
    /// This member does not lead the raft group; `leader` is the member that does, if known.
    #[error("store unavailable: {}", match leader { Some(_) => "this member is not the raft leader", None => "no raft leader (no quorum)" })]
    NotLeader { leader: Option<u64> },
    /// raft refused the proposal (e.g. dropped while leadership changes); try again.
    #[error("store unavailable: {0}")]
    Rejected(#[source] Arc<raft::Error>),
    /// Secrets at rest: a key file missing, malformed or not the store's key, or a sealed
    /// object that does not open.
    #[error("secrets encryption: {0}")]
    Encryption(#[source] Arc<super::EncryptionError>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

/// A change, as watchers see it.
#[derive(Debug)]
pub(crate) struct Event {
    pub kind: EventType,
    pub key: Arc<str>,
    pub object: Arc<Stored>,
    /// The object before the change (None for Added).
    pub prev: Option<Arc<Stored>>,
}

/// What applying a batch did.
pub(crate) struct Applied {
    pub results: Vec<OpResult>,
    pub events: Vec<Arc<Event>>,
    /// Keys to write to disk, each with the index of the op that wrote it: Some = put,
    /// None = delete.
    pub writes: Vec<(usize, String, Option<Arc<Stored>>)>,
}

pub(crate) fn stored(mut value: Value, rv: u64) -> Arc<Stored> {
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
    Arc::new(Stored { rv, value })
}

fn check(pre: &Precondition, cur: &Stored) -> Result<(), StoreError> {
    if let Some(rv) = pre.resource_version
        && rv != cur.rv
    {
        return Err(StoreError::Conflict);
    }
    if let Some(uid) = &pre.uid {
        let actual = cur.value.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
        if actual != uid {
            return Err(StoreError::UidMismatch { expected: uid.clone(), actual: actual.to_string() });
        }
    }
    Ok(())
}

/// True when an object is marked for deletion and nothing holds it any more: no
/// finalizers, and for a Namespace no `spec.finalizers` either.
pub(crate) fn deletion_complete(value: &Value) -> bool {
    let meta = &value["metadata"];
    let empty = |v: &Value| v.as_array().is_none_or(|f| f.is_empty());
    !meta["deletionTimestamp"].is_null()
        && empty(&meta["finalizers"])
        && (value["kind"] != "Namespace" || empty(&value["spec"]["finalizers"]))
}

/// Applies a batch to the snapshot. Deterministic: same snapshot + ops → same result.
pub(crate) fn apply(snap: &mut Snapshot, ops: Vec<Op>) -> Applied {
    let mut out = Applied { results: Vec::with_capacity(ops.len()), events: Vec::new(), writes: Vec::new() };
    for (i, op) in ops.into_iter().enumerate() {
        let result = match op {
            Op::Create { key, object } => {
                if snap.objects.contains_key(key.as_str()) {
                    Err(StoreError::AlreadyExists)
                } else {
                    snap.revision += 1;
                    let s = stored(object, snap.revision);
                    let k = Arc::<str>::from(key.as_str());
                    snap.objects.insert(k.clone(), s.clone());
                    out.writes.push((i, key, Some(s.clone())));
                    out.events.push(Arc::new(Event { kind: EventType::Added, key: k, object: s.clone(), prev: None }));
                    Ok(s)
                }
            }
            Op::Update { key, object, precondition } => match snap.objects.get(key.as_str()).cloned() {
                None => Err(StoreError::NotFound),
                Some(cur) => check(&precondition, &cur).map(|()| {
                    snap.revision += 1;
                    let s = stored(object, snap.revision);
                    if deletion_complete(&s.value) {
                        let k = snap.objects.remove_entry(key.as_str()).map(|(k, _)| k).unwrap_or_else(|| Arc::<str>::from(key.as_str()));
                        out.writes.push((i, key, None));
                        out.events.push(Arc::new(Event { kind: EventType::Deleted, key: k, object: s.clone(), prev: Some(cur) }));
                    } else {
                        let k = match snap.objects.get_key_value(key.as_str()) {
                            Some((k, _)) => k.clone(),
                            None => Arc::<str>::from(key.as_str()),
                        };
                        snap.objects.insert(k.clone(), s.clone());
                        out.writes.push((i, key, Some(s.clone())));
                        out.events.push(Arc::new(Event { kind: EventType::Modified, key: k, object: s.clone(), prev: Some(cur) }));
                    }
                    s
                }),
            },
            Op::Delete { key, precondition } => match snap.objects.get(key.as_str()).cloned() {
                None => Err(StoreError::NotFound),
                Some(cur) => check(&precondition, &cur).map(|()| {
                    snap.revision += 1;
                    let s = stored(cur.value.clone(), snap.revision);
                    let k = snap.objects.remove_entry(key.as_str()).map(|(k, _)| k).unwrap_or_else(|| Arc::<str>::from(key.as_str()));
                    out.writes.push((i, key, None));
                    out.events.push(Arc::new(Event { kind: EventType::Deleted, key: k, object: s.clone(), prev: Some(cur) }));
                    s
                }),
            },
        };
        if let Some((_, key, _)) = out.writes.last().filter(|w| w.0 == i && result.is_ok()) {
            snap.touch(key);
        }
        out.results.push(result);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snap() -> Snapshot {
        Snapshot::new(Default::default(), 0)
    }

    fn obj(name: &str) -> Value {
        json!({"metadata": {"name": name, "uid": format!("uid-{name}")}})
    }

    #[test]
    fn revisions_increase_per_successful_op() {
        let mut s = snap();
        let a = apply(&mut s, vec![
            Op::Create { key: "k/a".into(), object: obj("a") },
            Op::Create { key: "k/a".into(), object: obj("a") },
            Op::Create { key: "k/b".into(), object: obj("b") },
        ]);
        assert_eq!(a.results[0].as_ref().unwrap().rv, 1);
        assert!(matches!(a.results[1], Err(StoreError::AlreadyExists)));
        assert_eq!(a.results[2].as_ref().unwrap().rv, 2);
        assert_eq!(s.revision, 2);
        assert_eq!(s.objects["k/b"].value["metadata"]["resourceVersion"], "2");
    }

    #[test]
    fn each_resource_remembers_the_revision_of_its_last_write() {
        let mut s = snap();
        apply(&mut s, vec![
            Op::Create { key: "rbac.authorization.k8s.io/roles/ns/a".into(), object: obj("a") },
            Op::Create { key: "core/pods/ns/p".into(), object: obj("p") },
            Op::Create { key: "core/pods/ns/p".into(), object: obj("p") },
        ]);
        assert_eq!(s.changed.get("rbac.authorization.k8s.io/roles/"), Some(&1));
        assert_eq!(s.changed.get("core/pods/"), Some(&2), "a failed op is not a write");
        apply(&mut s, vec![Op::Delete { key: "rbac.authorization.k8s.io/roles/ns/a".into(), precondition: Precondition::default() }]);
        assert_eq!(s.changed.get("rbac.authorization.k8s.io/roles/"), Some(&3), "a delete is a write");
        assert_eq!(crate::store::resource_prefix("rbac.authorization.k8s.io/clusterroles/admin"), "rbac.authorization.k8s.io/clusterroles/");
        assert_eq!(crate::store::resource_prefix("join-secret"), "join-secret");
    }

    #[test]
    fn stale_resource_version_conflicts() {
        let mut s = snap();
        apply(&mut s, vec![Op::Create { key: "k/a".into(), object: obj("a") }]);
        let pre = |rv| Precondition { resource_version: Some(rv), uid: None };
        let a = apply(&mut s, vec![
            Op::Update { key: "k/a".into(), object: obj("a"), precondition: pre(1) },
            Op::Update { key: "k/a".into(), object: obj("a"), precondition: pre(1) },
        ]);
        assert!(a.results[0].is_ok());
        assert!(matches!(a.results[1], Err(StoreError::Conflict)));
    }

    #[test]
    fn update_clearing_last_finalizer_of_deleted_object_deletes_it() {
        let mut s = snap();
        apply(&mut s, vec![Op::Create { key: "k/a".into(), object: obj("a") }]);
        let mut o = obj("a");
        o["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        o["metadata"]["finalizers"] = json!([]);
        let a = apply(&mut s, vec![Op::Update { key: "k/a".into(), object: o, precondition: Default::default() }]);
        assert!(a.results[0].is_ok());
        assert_eq!(a.events[0].kind, EventType::Deleted);
        assert!(s.objects.is_empty());
    }

    #[test]
    fn uid_precondition_checked_on_delete() {
        let mut s = snap();
        apply(&mut s, vec![Op::Create { key: "k/a".into(), object: obj("a") }]);
        let a = apply(&mut s, vec![Op::Delete {
            key: "k/a".into(),
            precondition: Precondition { resource_version: None, uid: Some("other".into()) },
        }]);
        assert!(matches!(a.results[0], Err(StoreError::UidMismatch { .. })));
        assert_eq!(s.objects.len(), 1);
    }

    #[test]
    fn storage_errors_keep_their_cause() {
        use std::error::Error as _;
        let e = StoreError::Io(Arc::new(std::io::Error::other("disk full")));
        assert_eq!(e.to_string(), "storage I/O: disk full");
        assert_eq!(e.clone().source().map(ToString::to_string).as_deref(), Some("disk full"));
        let r = StoreError::Rejected(Arc::new(raft::Error::ProposalDropped));
        assert_eq!(r.to_string(), "store unavailable: raft: proposal dropped");
        // The cause is the shared `Arc` itself: it displays as the cause and downcasts to it.
        let cause = r.source().and_then(|s| s.downcast_ref::<Arc<raft::Error>>());
        assert_eq!(cause.map(|c| &**c), Some(&raft::Error::ProposalDropped));
        assert_eq!(StoreError::Unavailable("store closed").to_string(), "store unavailable: store closed");
    }
}
