//! Ownership: controller ownerReferences, and how an owner claims the objects its selector
//! matches (Kubernetes' ControllerRefManager), for ReplicaSets claiming pods, Deployments
//! claiming ReplicaSets, StatefulSets and DaemonSets claiming pods.
//!
//! - An object has at most one controller: the ownerReference with `controller: true`.
//! - A matching orphan is adopted (if the owner allows it) and a controlled object that
//!   stopped matching is released; terminating objects are neither adopted nor released.
//! - An owner being deleted keeps every object it controls and adopts nothing.
//! - The writes re-check the object they change (uid, controller, deletion), so a stale
//!   plan never adopts or releases a replaced object.

use flotilla_api::selector::LabelSelector;
use serde_json::{Value, json};

use super::objects::{deleting, labels, name, uid};
use crate::apiserver::Api;
use crate::apiserver::error::ApiError;
use crate::apiserver::resources::ResourceInfo;

/// The uid of the object's controller (the ownerReference with `controller: true`).
pub(crate) fn controller_uid(v: &Value) -> Option<&str> {
    v["metadata"]["ownerReferences"].as_array()?.iter().find(|r| r["controller"] == json!(true)).and_then(|r| r["uid"].as_str())
}

/// A controller ownerReference to `owner`.
pub(crate) fn controller_ref(owner: &Value, api_version: &str, kind: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": name(owner), "uid": uid(owner), "controller": true, "blockOwnerDeletion": true})
}

/// `obj` without its ownerReference to `owner_uid` (the list goes when it empties);
/// None when it has no ownerReferences.
pub(crate) fn without_owner(obj: &Value, owner_uid: &str) -> Option<Value> {
    let mut new = obj.clone();
    let refs = new["metadata"]["ownerReferences"].as_array_mut()?;
    refs.retain(|r| r["uid"].as_str() != Some(owner_uid));
    if refs.is_empty() {
        new["metadata"].as_object_mut()?.remove("ownerReferences");
    }
    Some(new)
}

/// A change of ownership a claim asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Adopt,
    Release,
}

/// What an owner claims among the objects it could control.
pub(crate) struct Claimed<'a> {
    /// Controlled and matching (every controlled one while the owner is being deleted),
    /// adopted ones included, in the order of the input.
    pub owned: Vec<&'a Value>,
    /// Adoptions and releases, in the order of the input.
    pub changes: Vec<(Change, &'a Value)>,
}

impl<'a> Claimed<'a> {
    /// The objects with change `c`, in the order of the input.
    pub(crate) fn with(&self, c: Change) -> impl Iterator<Item = &'a Value> + '_ {
        self.changes.iter().filter(move |(x, _)| *x == c).map(|(_, v)| *v)
    }
}

/// Claims among `objects` those `owner` controls and that match `sel`; matching orphans
/// that `may_adopt` are adopted, controlled ones that stopped matching are released.
pub(crate) fn claim<'a>(owner: &Value, sel: &LabelSelector, objects: &[&'a Value], may_adopt: &dyn Fn(&Value) -> bool) -> Claimed<'a> {
    let owner_uid = uid(owner);
    let owner_deleting = deleting(owner);
    let mut c = Claimed { owned: Vec::new(), changes: Vec::new() };
    for &o in objects {
        let matches = sel.matches(labels(o));
        match controller_uid(o) {
            Some(u) if u == owner_uid => {
                if matches || owner_deleting {
                    c.owned.push(o);
                } else if !deleting(o) {
                    c.changes.push((Change::Release, o));
                }
            }
            None if matches && !owner_deleting && !deleting(o) && may_adopt(o) => {
                c.changes.push((Change::Adopt, o));
                c.owned.push(o);
            }
            _ => {}
        }
    }
    c
}

/// Adds `owner_ref` (a controller reference) to the orphan `name` of `info` whose uid is
/// `obj_uid`; nothing is written if the object was replaced, has a controller by now, or
/// is terminating.
pub(crate) async fn adopt(api: &Api, info: &ResourceInfo, ns: &str, name: &str, obj_uid: &str, owner_ref: &Value) -> Result<(), ApiError> {
    api.modify(info, Some(ns), name, &|cur| {
        if uid(cur) != obj_uid || controller_uid(cur).is_some() || deleting(cur) {
            return None;
        }
        let mut new = cur.clone();
        match new["metadata"]["ownerReferences"].as_array_mut() {
            Some(refs) => refs.push(owner_ref.clone()),
            None => new["metadata"]["ownerReferences"] = json!([owner_ref.clone()]),
        }
        Some(new)
    })
    .await
    .map(|_| ())
}

/// Removes the reference to `owner_uid` from `name` of `info` whose uid is `obj_uid`;
/// nothing is written if the object was replaced.
pub(crate) async fn release(api: &Api, info: &ResourceInfo, ns: &str, name: &str, obj_uid: &str, owner_uid: &str) -> Result<(), ApiError> {
    api.modify(info, Some(ns), name, &|cur| {
        if uid(cur) != obj_uid {
            return None;
        }
        without_owner(cur, owner_uid)
    })
    .await
    .map(|_| ())
}
