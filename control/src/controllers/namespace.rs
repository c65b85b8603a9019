//! Namespace controller: a namespace being deleted (phase Terminating) has everything in it
//! deleted; once nothing is left the namespace itself goes.
//!
//! Contents are deleted in the background with no grace period (a pod is removed at once,
//! see [`Api::remove`]); the emptied namespace is removed whatever holds it.

use serde_json::Value;

use super::objects::{ignore_transient, info, parse_key};
use crate::apiserver::Api;
use crate::apiserver::error::ApiError;
use crate::apiserver::service::DeleteOptions;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Delete the namespaced object at `key`.
    DeleteContent { key: String },
    /// The namespace is empty: remove it.
    Finalize { name: String },
}

/// Pure: `namespaces` are the Namespace objects, `contents` the keys and values of every
/// namespaced object.
pub(crate) fn plan(namespaces: &[&Value], contents: &[(&str, &Value)]) -> Vec<Step> {
    let mut steps = Vec::new();
    for ns in namespaces {
        if ns["metadata"]["deletionTimestamp"].is_null() {
            continue;
        }
        let name = ns["metadata"]["name"].as_str().unwrap_or("");
        let inside: Vec<&(&str, &Value)> =
            contents.iter().filter(|(_, v)| v["metadata"]["namespace"].as_str() == Some(name)).collect();
        if inside.is_empty() {
            steps.push(Step::Finalize { name: name.to_string() });
        }
        for (k, v) in inside {
            if v["metadata"]["deletionTimestamp"].is_null() {
                steps.push(Step::DeleteContent { key: k.to_string() });
            }
        }
    }
    steps
}

// ---- executor ----

/// Plans over every namespace and namespaced object in `objects` and carries out the
/// steps. A failed delete other than a transient one stops the pass.
pub(crate) async fn reconcile_all(api: &Api, objects: &[crate::store::Keyed]) -> Result<(), ApiError> {
    let namespaces: Vec<&Value> = objects.iter().filter(|(k, _)| k.starts_with("core/namespaces/")).map(|(_, s)| &s.value).collect();
    let contents: Vec<(&str, &Value)> = objects
        .iter()
        .filter(|(k, _)| parse_key(k).is_some_and(|(info, ns, _)| info.namespaced && ns.is_some()))
        .map(|(k, s)| (&**k, &s.value))
        .collect();
    for step in plan(&namespaces, &contents) {
        match step {
            Step::DeleteContent { key } => {
                let Some((info, ns, name)) = parse_key(&key) else { continue };
                if info.kind == "Pod" {
                    let _ = api.remove(info, ns, name, None).await;
                    continue;
                }
                let opts = DeleteOptions { propagation: Some("Background".into()), grace_period_seconds: Some(0), ..Default::default() };
                ignore_transient(api.delete(info, ns, name, &opts).await)?;
            }
            Step::Finalize { name } => {
                let _ = api.remove(info("", "namespaces"), None, &name, None).await;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn terminating_namespace_is_emptied_then_finalized() {
        let ns = json!({"metadata": {"name": "t", "deletionTimestamp": "2026-01-01T00:00:00Z"}});
        let live = json!({"metadata": {"name": "l"}});
        let cm = json!({"metadata": {"name": "c", "namespace": "t"}});
        let other = json!({"metadata": {"name": "c", "namespace": "l"}});
        let steps = plan(&[&ns, &live], &[("core/configmaps/t/c", &cm), ("core/configmaps/l/c", &other)]);
        assert_eq!(steps, vec![Step::DeleteContent { key: "core/configmaps/t/c".into() }]);
        let steps = plan(&[&ns], &[("core/configmaps/l/c", &other)]);
        assert_eq!(steps, vec![Step::Finalize { name: "t".into() }]);
    }
}
