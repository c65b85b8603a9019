//! The pods/eviction subresource (policy/v1 Eviction) as Kubernetes serves it: a graceful
//! delete that honours the PodDisruptionBudget covering the pod.
//!
//! - A terminal pod, or one no budget selects, is deleted at once.
//! - More than one budget selecting the pod: 500, as Kubernetes refuses it.
//! - A budget the disruption controller has not caught up with (observedGeneration behind)
//!   or that allows no disruption: 429 TooManyRequests, "Cannot evict pod as it would
//!   violate the pod's disruption budget." with a DisruptionBudget cause (kubectl drain
//!   retries it every 5 s).
//! - A pod that is not Ready may go while the budget is satisfied (healthy ≥ desired;
//!   `unhealthyPodEvictionPolicy: AlwaysAllow` lets it go anyway) without using a
//!   disruption.
//! - Otherwise the budget's `disruptionsAllowed` is decremented and the pod recorded in
//!   `disruptedPods` (a compare-and-swap on the budget, so two evictions cannot both use
//!   the last disruption), then the pod is deleted.

use serde_json::{Value, json};

use super::error::{ApiError, Cause};
use super::resources::{self, ResourceInfo};
use super::service::{Api, DeleteOptions, prefix, timestamp};

const VIOLATES: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// Whether PodDisruptionBudget `pdb` selects `pod` (an empty selector selects every pod of
/// its namespace, a missing one none).
pub(crate) fn selects(pdb: &Value, pod: &Value) -> bool {
    if pdb["spec"]["selector"].is_null() {
        return false;
    }
    match flotilla_api::selector::LabelSelector::from_label_selector_json(&pdb["spec"]["selector"]) {
        Ok(s) => s.matches(pod["metadata"]["labels"].as_object()),
        Err(_) => false,
    }
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn too_many_requests(cause: String) -> ApiError {
    let mut e = ApiError::new(429, "TooManyRequests", VIOLATES);
    e.causes = vec![Cause { reason: "DisruptionBudget".into(), message: cause, field: String::new() }];
    e
}

impl Api {
    /// Evicts pod `name` of `ns` (see the module doc); then deletes it with `opts`.
    pub(crate) async fn evict(&self, pods: &ResourceInfo, ns: &str, name: &str, opts: &DeleteOptions) -> Result<(), ApiError> {
        let Some(budgets) = resources::find("policy", "v1", "poddisruptionbudgets") else {
            self.delete(pods, Some(ns), name, opts).await?;
            return Ok(());
        };
        let mut allowed = false;
        for _ in 0..super::service::CONFLICT_RETRIES {
            let pod = self.get(pods, Some(ns), name)?;
            let terminal = matches!(pod.value["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
            let covering: Vec<Value> =
                self.store.list_keys(&prefix(budgets, Some(ns))).into_iter().map(|(_, s)| s.value.clone()).filter(|b| selects(b, &pod.value)).collect();
            if terminal || covering.is_empty() {
                allowed = true;
                break;
            }
            if covering.len() > 1 {
                return Err(ApiError::new(500, "InternalError", "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."));
            }
            let pdb = &covering[0];
            let pdb_name = pdb["metadata"]["name"].as_str().unwrap_or("");
            let status = &pdb["status"];
            if status["observedGeneration"].as_i64().unwrap_or(0) < pdb["metadata"]["generation"].as_i64().unwrap_or(0) || status.is_null() {
                return Err(too_many_requests(format!("The disruption budget {pdb_name} is still being processed by the server.")));
            }
            let healthy = status["currentHealthy"].as_i64().unwrap_or(0);
            let desired = status["desiredHealthy"].as_i64().unwrap_or(0);
            if !ready(&pod.value) {
                let always = pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow";
                if always || healthy >= desired {
                    allowed = true;
                    break;
                }
                return Err(too_many_requests(format!("The disruption budget {pdb_name} needs {desired} healthy pods and has {healthy} currently")));
            }
            let budget_left = status["disruptionsAllowed"].as_i64().unwrap_or(0);
            if budget_left < 0 {
                return Err(ApiError::forbidden("pdb disruptions allowed is negative"));
            }
            if budget_left == 0 {
                return Err(too_many_requests(format!("The disruption budget {pdb_name} needs {desired} healthy pods and has {healthy} currently")));
            }
            if opts.dry_run {
                return Ok(());
            }
            // Use one disruption: compare-and-swap on the budget's status.
            let mut new = pdb.clone();
            new["status"]["disruptionsAllowed"] = json!(budget_left - 1);
            if !new["status"]["disruptedPods"].is_object() {
                new["status"]["disruptedPods"] = json!({});
            }
            new["status"]["disruptedPods"][name] = json!(timestamp(self.clock.now()));
            let rv = pdb["metadata"]["resourceVersion"].as_str().and_then(|r| r.parse().ok());
            let key = super::service::key(budgets, Some(ns), pdb_name);
            let pre = crate::store::Precondition { resource_version: rv, uid: None };
            match self.store.write(crate::store::Op::Update { key, object: new, precondition: pre }).await {
                Ok(_) => {
                    self.delete(pods, Some(ns), name, opts).await?;
                    return Ok(());
                }
                Err(crate::store::StoreError::Conflict) => continue,
                Err(e) => return Err(ApiError::from_store(e, budgets, pdb_name)),
            }
        }
        if !allowed {
            // Every compare-and-swap on the budget lost to another writer.
            return Err(ApiError::new(429, "TooManyRequests", "the pod's disruption budget is being updated by others; try again"));
        }
        self.delete(pods, Some(ns), name, opts).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_follow_policy_v1() {
        let pod = json!({"metadata": {"labels": {"app": "web"}}});
        assert!(selects(&json!({"spec": {"selector": {}}}), &pod), "an empty selector selects all");
        assert!(!selects(&json!({"spec": {}}), &pod), "a missing one none");
        assert!(selects(&json!({"spec": {"selector": {"matchLabels": {"app": "web"}}}}), &pod));
        assert!(!selects(&json!({"spec": {"selector": {"matchLabels": {"app": "db"}}}}), &pod));
    }
}
