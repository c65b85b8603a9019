//! ResourceQuota status (kube-controller-manager's resourcequota controller): keeps each
//! quota's `status.hard` equal to its `spec.hard` and `status.used` equal to what the
//! namespace's objects use, counted as admission counts them (`apiserver::quota`).
//!
//! Invariants: `plan` is pure; a quota whose status is already right is not written; the
//! write goes through the status subresource and is dropped if the quota changed meanwhile
//! (the next pass recounts).

use serde_json::{Value, json};

use super::objects::{self, name};
use super::status::write_status;
use crate::apiserver::Api;
use crate::apiserver::error::ApiError;
use crate::apiserver::quota;
use crate::apiserver::resources::ResourceInfo;

/// Pure: the status `q` should have, given the objects of its namespace.
pub(crate) fn plan<'a>(q: &Value, objects: impl IntoIterator<Item = (&'a ResourceInfo, &'a Value)>) -> Value {
    let used = quota::usage(q, objects);
    json!({ "hard": q["spec"]["hard"].clone(), "used": quota::to_list(&used) })
}

pub(crate) async fn reconcile_all(api: &Api, keyed: &[crate::store::Keyed]) -> Result<(), ApiError> {
    let info = objects::info("", "resourcequotas");
    for (ns, quotas) in objects::by_namespace(keyed, &info.store_prefix()) {
        for q in quotas {
            if objects::deleting(q) {
                continue;
            }
            let counted = api.namespace_objects(q, ns);
            let status = plan(q, counted.iter().map(|(i, s)| (*i, &s.value)));
            if q["status"] != status {
                tracing::debug!(namespace = ns, quota = name(q), "updating quota usage");
                write_status(api, info, q, status).await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources;

    #[test]
    fn status_mirrors_hard_and_counts_usage() {
        let q = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "10", "requests.memory": "1Gi", "count/configmaps": "5"}}});
        let pods = resources::find("", "v1", "pods").unwrap();
        let cms = resources::find("", "v1", "configmaps").unwrap();
        let p = json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"memory": "100Mi"}}}]}, "status": {"phase": "Running"}});
        let cm = json!({"metadata": {"name": "a"}});
        let status = plan(&q, [(pods, &p), (pods, &p), (cms, &cm)]);
        assert_eq!(status, json!({"hard": q["spec"]["hard"], "used": {"count/configmaps": "1", "pods": "2", "requests.memory": "200Mi"}}));
    }
}
