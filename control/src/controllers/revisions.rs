//! Template versions: the pod-template hash Deployments name their ReplicaSets by, and
//! the ControllerRevisions StatefulSets and DaemonSets keep their templates in.
//!
//! - The hash covers the template with field order, nulls, empty maps and lists and the
//!   `pod-template-hash` label ignored (Kubernetes' semantic equality), plus the owner's
//!   `status.collisionCount` when a name collides.
//! - An owner's revisions are numbered; returning to an old template renumbers its
//!   revision instead of creating one. Unused revisions beyond revisionHistoryLimit go.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::objects::{controller_write_options, ignore_transient, info, name, uid};
use super::owner::{controller_ref, controller_uid};
use crate::apiserver::Api;
use crate::apiserver::error::ApiError;
use crate::apiserver::service::DeleteOptions;

/// On a Deployment's ReplicaSets and pods: the hash of the template they were made from.
pub(crate) const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// On pods (and DaemonSet revisions): the revision the pod was made from.
pub(crate) const REVISION_LABEL: &str = "controller-revision-hash";

// ---- template hashing ----

/// Sorted-key JSON, so equal templates hash alike whatever their field order.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, &Value> = m.iter().collect();
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn fnv32a(bytes: &[u8], mut h: u32) -> u32 {
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(16_777_619);
    }
    h
}

/// The pod-template-hash: FNV-32a of the template (and collision count), its decimal
/// form spelled in Kubernetes' vowel-free alphabet, as `rand.SafeEncodeString` does.
pub(crate) fn template_hash(template: &Value, collision_count: Option<i64>) -> String {
    let mut s = String::new();
    canonical(&without_hash(template), &mut s);
    let mut h = fnv32a(s.as_bytes(), 2_166_136_261);
    if let Some(c) = collision_count {
        h = fnv32a(&(c as u32).to_le_bytes(), h);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    h.to_string().bytes().map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char).collect()
}

/// The template without the pod-template-hash label, nulls and empty maps or lists: what
/// Kubernetes' semantic equality compares (kubectl sends `creationTimestamp: null`).
pub(crate) fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(l) = t.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        l.remove(POD_TEMPLATE_HASH_LABEL);
    }
    prune_empty(&mut t);
    t
}

fn prune_empty(v: &mut Value) {
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    match v {
        Value::Object(o) => {
            for x in o.values_mut() {
                prune_empty(x);
            }
            o.retain(|_, x| !empty(x));
        }
        Value::Array(a) => a.iter_mut().for_each(prune_empty),
        _ => {}
    }
}

// ---- ControllerRevisions ----

/// What a plan asks of an owner's ControllerRevisions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RevisionStep {
    Create { revision: Value },
    /// Give an existing revision a new number (the template came back).
    Renumber { name: String, uid: String, revision: i64 },
    Delete { name: String, uid: String },
}

/// The owner's revisions as a plan resolves them.
#[derive(Debug, Clone)]
pub(crate) struct History<'a> {
    /// Owned revisions, by ascending revision number.
    pub owned: Vec<&'a Value>,
    /// Name of the revision of the owner's current template (maybe created by `steps`).
    pub update_name: String,
    pub update_hash: String,
    pub steps: Vec<RevisionStep>,
}

/// The strategic-merge patch a revision stores, which `kubectl rollout undo` applies.
pub(crate) fn revision_data(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(o) = t.as_object_mut() {
        o.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// The template a revision holds.
pub(crate) fn revision_template(rev: &Value) -> Value {
    let mut t = rev["data"]["spec"]["template"].clone();
    if let Some(o) = t.as_object_mut() {
        o.remove("$patch");
    }
    t
}

fn revision_number(rev: &Value) -> i64 {
    rev["revision"].as_i64().unwrap_or(0)
}

/// Resolves the revision of `owner`'s template among `revisions` (every revision in the
/// namespace): an equal owned one (renumbered if it is not the latest), or a new one named
/// `OWNER-<hash>` labelled `hash_label`. `Err(())` means a foreign or different revision
/// already has that name: the caller bumps `status.collisionCount` and retries.
pub(crate) fn resolve_history<'a>(owner: &Value, kind: &str, hash_label: &str, revisions: &[&'a Value]) -> Result<History<'a>, ()> {
    let template = &owner["spec"]["template"];
    let owner_uid = uid(owner);
    let mut owned: Vec<&Value> = revisions.iter().copied().filter(|r| !owner_uid.is_empty() && controller_uid(r) == Some(owner_uid)).collect();
    owned.sort_by(|a, b| revision_number(a).cmp(&revision_number(b)).then_with(|| name(a).cmp(name(b))));
    let max = owned.last().map(|r| revision_number(r)).unwrap_or(0);
    let plain = template_hash(template, None);
    let equal = owned.iter().rev().find(|r| template_hash(&revision_template(r), None) == plain);
    let mut steps = Vec::new();
    if let Some(r) = equal {
        if revision_number(r) < max {
            steps.push(RevisionStep::Renumber { name: name(r).to_string(), uid: uid(r).to_string(), revision: max + 1 });
        }
        let hash = r["metadata"]["labels"][hash_label].as_str().map(str::to_string).unwrap_or_else(|| plain.clone());
        let update_name = name(r).to_string();
        return Ok(History { owned, update_name, update_hash: hash, steps });
    }
    let hash = template_hash(template, owner["status"]["collisionCount"].as_i64());
    let rev_name = format!("{}-{hash}", name(owner));
    if revisions.iter().any(|r| name(r) == rev_name) {
        return Err(());
    }
    let mut rev_labels = template["metadata"]["labels"].as_object().cloned().unwrap_or_default();
    rev_labels.insert(hash_label.to_string(), json!(hash));
    let revision = json!({
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {
            "name": rev_name, "namespace": owner["metadata"]["namespace"].as_str().unwrap_or("default"),
            "labels": rev_labels, "ownerReferences": [controller_ref(owner, "apps/v1", kind)],
        },
        "data": revision_data(template),
        "revision": max + 1,
    });
    steps.push(RevisionStep::Create { revision });
    Ok(History { owned, update_name: rev_name, update_hash: hash, steps })
}

/// Deletes the oldest owned revisions beyond `revisionHistoryLimit` (default 10) that
/// are neither in `keep` (names) nor used by a pod (`in_use(rev)`).
pub(crate) fn truncate_history(owner: &Value, history: &History<'_>, keep: &[&str], in_use: &dyn Fn(&Value) -> bool) -> Vec<RevisionStep> {
    let limit = owner["spec"]["revisionHistoryLimit"].as_i64().unwrap_or(10).max(0) as usize;
    let old: Vec<&&Value> = history.owned.iter().filter(|r| !keep.contains(&name(r)) && !in_use(r)).collect();
    let excess = old.len().saturating_sub(limit);
    old.into_iter().take(excess).map(|r| RevisionStep::Delete { name: name(r).to_string(), uid: uid(r).to_string() }).collect()
}

/// Carries out one revision step; a transient failure is left to the next pass.
pub(crate) async fn execute_revision_step(api: &Api, ns: &str, step: RevisionStep) -> Result<(), ApiError> {
    let revisions = info("apps", "controllerrevisions");
    let r = match step {
        RevisionStep::Create { revision } => api.create(revisions, Some(ns), revision, &controller_write_options()).await.map(|_| ()),
        RevisionStep::Renumber { name: rev, uid: rev_uid, revision } => api
            .modify(revisions, Some(ns), &rev, &|cur| {
                if uid(cur) != rev_uid || cur["revision"] == json!(revision) {
                    return None;
                }
                let mut new = cur.clone();
                new["revision"] = json!(revision);
                Some(new)
            })
            .await
            .map(|_| ()),
        RevisionStep::Delete { name: rev, uid: rev_uid } => {
            let opts = DeleteOptions { uid: Some(rev_uid), ..Default::default() };
            api.delete(revisions, Some(ns), &rev, &opts).await.map(|_| ())
        }
    };
    ignore_transient(r)
}

