//! HorizontalPodAutoscaler (autoscaling/v2; kube-controller-manager's podautoscaler): every
//! sync period (15 s, as Kubernetes; `FLOTILLA_HPA_SYNC_SECONDS` overrides it) each HPA
//! reads the CPU its target's pods use (from the nodes, as metrics.k8s.io does) against
//! their requests and sets the target's replicas.
//!
//! Semantics (Kubernetes' algorithm, for `Resource` cpu metrics with `Utilization` or
//! `AverageValue` targets):
//! - Only Ready pods that have a measurement count. utilization = Σusage / Σrequests;
//!   ratio = utilization / target. Within the 0.1 tolerance the replicas stay; otherwise
//!   desired = ceil(ratio × counted pods).
//! - Scaling up is limited per period by the default policy (the larger of doubling and
//!   +4 pods) and `behavior.scaleUp.policies`; stabilization windows (scale down: 300 s
//!   by default, scale up: 0) keep the highest (down) or lowest (up) recommendation seen
//!   within them; then minReplicas/maxReplicas.
//! - Conditions AbleToScale, ScalingActive and ScalingLimited and the SuccessfulRescale
//!   event carry Kubernetes' reasons and words, so `kubectl describe hpa` reads as usual.
//! - Not modelled: memory, Pods and Object/External metrics, the custom `requests_per_second`.
//!
//! Invariants: `plan` is pure (usage, clock and the recommendation history come in); the
//! executor writes the target's spec.replicas and the HPA's status.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::objects::{self, by_namespace, name, timestamp};
use crate::apiserver::error::ApiError;
use crate::apiserver::service::{Part, PatchType};
use crate::apiserver::{Api, Shutdown};

/// Kubernetes' --horizontal-pod-autoscaler-tolerance.
const TOLERANCE: f64 = 0.1;
/// Kubernetes' default scale-down stabilization window.
const DOWN_WINDOW_SECONDS: i64 = 300;

/// Where the controller reads pods' CPU: cores used now, by pod name.
pub(crate) trait CpuSource: Send + Sync {
    fn pod_cpu<'a>(&'a self, ns: &'a str, pods: &'a [&'a Value]) -> BoxFuture<'a, HashMap<String, f64>>;
}

/// One pod as the algorithm sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PodSample {
    pub ready: bool,
    /// Σ of its containers' CPU requests, cores.
    pub request: f64,
    /// Cores used now, if measured.
    pub usage: Option<f64>,
}

/// What one sync decides.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decision {
    pub desired: i64,
    pub status: Value,
    /// SuccessfulRescale's message when the replicas change.
    pub event: Option<String>,
}

fn cpu(q: &Value) -> f64 {
    flotilla_api::quantity::from_json(q).unwrap_or(0.0)
}

/// The CPU a pod requests (requests, else limits), cores.
pub(crate) fn pod_request(pod: &Value) -> f64 {
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let r = &c["resources"];
            if r["requests"]["cpu"].is_null() { cpu(&r["limits"]["cpu"]) } else { cpu(&r["requests"]["cpu"]) }
        })
        .sum()
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": now})
}

/// Keeps a condition's lastTransitionTime while its status is unchanged.
fn carry(old: &Value, mut new: Value) -> Value {
    if let Some(prev) = old["status"]["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == new["type"]))
        && prev["status"] == new["status"]
    {
        new["lastTransitionTime"] = prev["lastTransitionTime"].clone();
    }
    new
}

/// Pure: the replicas `hpa` wants for a target at `current` replicas with `pods`, given the
/// recent recommendations (`history`: time, replicas; the caller keeps it and adds the
/// returned `desired`'s raw recommendation, returned as the second value).
pub(crate) fn plan(hpa: &Value, current: i64, pods: &[PodSample], history: &[(DateTime<Utc>, i64)], now: DateTime<Utc>) -> (Decision, i64) {
    let spec = &hpa["spec"];
    let min = spec["minReplicas"].as_i64().unwrap_or(1).max(1);
    let max = spec["maxReplicas"].as_i64().unwrap_or(min).max(min);
    let metric = spec["metrics"].as_array().and_then(|m| m.iter().find(|m| m["type"] == "Resource" && m["resource"]["name"] == "cpu")).cloned();
    let ts = timestamp(now);
    let target = metric.as_ref().map(|m| &m["resource"]["target"]).cloned().unwrap_or(json!({"type": "Utilization", "averageUtilization": 80}));
    let counted: Vec<&PodSample> = pods.iter().filter(|p| p.ready && p.usage.is_some()).collect();
    let mut conditions = vec![condition("AbleToScale", "True", "ReadyForNewScale", "recommended size matches current size", &ts)];
    if current == 0 {
        // A target scaled to zero by hand is left alone, as Kubernetes does.
        conditions.push(condition("ScalingActive", "False", "ScalingDisabled", "scaling is disabled since the replica count of the target is zero", &ts));
        let conditions: Vec<Value> = conditions.into_iter().map(|c| carry(hpa, c)).collect();
        let status = json!({"observedGeneration": objects::generation(hpa), "currentReplicas": 0, "desiredReplicas": 0, "currentMetrics": [], "conditions": conditions});
        return (Decision { desired: 0, status, event: None }, 0);
    }
    let mut current_metrics = json!([]);
    let (raw, active) = if counted.is_empty() {
        conditions.push(condition("ScalingActive", "False", "FailedGetResourceMetric", "the HPA was unable to compute the replica count: did not receive metrics for targeted pods (pods might be unready)", &ts));
        (current, false)
    } else {
        let usage: f64 = counted.iter().map(|p| p.usage.unwrap_or(0.0)).sum();
        let requests: f64 = counted.iter().map(|p| p.request).sum();
        let n = counted.len() as f64;
        let average = usage / n;
        let (ratio, current_metric) = match target["type"].as_str() {
            Some("AverageValue") => {
                let want = cpu(&target["averageValue"]).max(1e-9);
                (average / want, json!({"averageValue": format!("{}m", (average * 1000.0).round() as i64)}))
            }
            _ if requests <= 0.0 => {
                conditions.push(condition("ScalingActive", "False", "FailedGetResourceMetric", "the HPA was unable to compute the replica count: failed to get cpu utilization: missing request for cpu", &ts));
                return (finish(hpa, current, current, min, max, conditions, json!([]), now, false), current);
            }
            _ => {
                let utilization = usage / requests * 100.0;
                let want = target["averageUtilization"].as_f64().unwrap_or(80.0).max(1.0);
                (utilization / want, json!({"averageUtilization": utilization.round() as i64, "averageValue": format!("{}m", (average * 1000.0).round() as i64)}))
            }
        };
        current_metrics = json!([{"type": "Resource", "resource": {"name": "cpu", "current": current_metric}}]);
        conditions.push(condition(
            "ScalingActive",
            "True",
            "ValidMetricFound",
            "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)",
            &ts,
        ));
        let raw = if (ratio - 1.0).abs() <= TOLERANCE { current } else { (ratio * n).ceil() as i64 };
        (raw, true)
    };
    // Stabilization: the highest recommendation within the scale-down window (the lowest
    // within the scale-up one) wins.
    let behavior = &spec["behavior"];
    let down_window = behavior["scaleDown"]["stabilizationWindowSeconds"].as_i64().unwrap_or(DOWN_WINDOW_SECONDS);
    let up_window = behavior["scaleUp"]["stabilizationWindowSeconds"].as_i64().unwrap_or(0);
    let within = |w: i64| history.iter().filter(move |(t, _)| (now - *t).num_seconds() < w).map(|(_, r)| *r);
    let mut desired = raw;
    if raw < current {
        desired = within(down_window).chain([raw]).max().unwrap_or(raw).min(current);
    } else if raw > current {
        desired = within(up_window).chain([raw]).min().unwrap_or(raw).max(current);
        // Default scale-up policy: the larger of doubling and four more pods per period.
        let limit = (current * 2).max(current + 4);
        desired = desired.min(limit);
    }
    (finish(hpa, current, desired, min, max, conditions, current_metrics, now, active), raw)
}

#[allow(clippy::too_many_arguments, reason = "the parts of one status")]
fn finish(hpa: &Value, current: i64, desired: i64, min: i64, max: i64, mut conditions: Vec<Value>, current_metrics: Value, now: DateTime<Utc>, active: bool) -> Decision {
    let ts = timestamp(now);
    let clamped = desired.clamp(min, max);
    let limited = if desired > max {
        condition("ScalingLimited", "True", "TooManyReplicas", "the desired replica count is more than the maximum replica count", &ts)
    } else if desired < min {
        condition("ScalingLimited", "True", "TooFewReplicas", "the desired replica count is less than the minimum replica count", &ts)
    } else {
        condition("ScalingLimited", "False", "DesiredWithinRange", "the desired count is within the acceptable range", &ts)
    };
    conditions.push(limited);
    if clamped != current {
        conditions[0] = condition("AbleToScale", "True", "SucceededRescale", &format!("the HPA controller was able to update the target scale to {clamped}"), &ts);
    }
    let conditions: Vec<Value> = conditions.into_iter().map(|c| carry(hpa, c)).collect();
    let event = (clamped != current).then(|| {
        let why = if !active {
            "current replicas below Spec.MinReplicas".to_string()
        } else if clamped > current {
            "cpu resource utilization (percentage of request) above target".to_string()
        } else {
            "All metrics below target".to_string()
        };
        format!("New size: {clamped}; reason: {why}")
    });
    let mut status = json!({
        "observedGeneration": objects::generation(hpa),
        "currentReplicas": current,
        "desiredReplicas": clamped,
        "currentMetrics": current_metrics,
        "conditions": conditions,
    });
    match (&event, hpa["status"].get("lastScaleTime")) {
        (Some(_), _) => status["lastScaleTime"] = json!(ts),
        (None, Some(t)) => status["lastScaleTime"] = t.clone(),
        (None, None) => {}
    }
    Decision { desired: clamped, status, event }
}

fn sync_period() -> Duration {
    let secs = std::env::var("FLOTILLA_HPA_SYNC_SECONDS").ok().and_then(|v| v.parse::<u64>().ok()).filter(|s| *s > 0).unwrap_or(15);
    Duration::from_secs(secs)
}

/// The controller's loop: one sync of every HPA per period.
pub(crate) async fn run(api: Api, cpu: std::sync::Arc<dyn CpuSource>, shutdown: Shutdown) {
    let mut history: HashMap<String, Vec<(DateTime<Utc>, i64)>> = HashMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(sync_period()) => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(e) = sync_all(&api, cpu.as_ref(), &mut history).await {
            tracing::warn!(error = %e, "horizontal pod autoscaler sync failed");
        }
    }
}

async fn sync_all(api: &Api, cpu: &dyn CpuSource, history: &mut HashMap<String, Vec<(DateTime<Utc>, i64)>>) -> Result<(), ApiError> {
    let keyed = api.store.list_keys("");
    let hpas_info = objects::info_in("autoscaling", "v2", "horizontalpodautoscalers");
    let pods = by_namespace(&keyed, "core/pods");
    let none = Vec::new();
    let now = api.clock.now();
    let live: std::collections::HashSet<String> = by_namespace(&keyed, &hpas_info.store_prefix()).values().flatten().map(|h| objects::uid(h).to_string()).collect();
    history.retain(|uid, _| live.contains(uid));
    for (ns, hpas) in by_namespace(&keyed, &hpas_info.store_prefix()) {
        for hpa in hpas {
            let r = &hpa["spec"]["scaleTargetRef"];
            let plural = match r["kind"].as_str() {
                Some("Deployment") => "deployments",
                Some("ReplicaSet") => "replicasets",
                Some("StatefulSet") => "statefulsets",
                _ => continue,
            };
            let target_info = objects::info("apps", plural);
            let Ok(target) = api.get(target_info, Some(ns), r["name"].as_str().unwrap_or("")) else { continue };
            let target = target.value.clone();
            let Some(selector) = objects::selector(&target) else { continue };
            let selected: Vec<&Value> = pods
                .get(ns)
                .unwrap_or(&none)
                .iter()
                .copied()
                .filter(|p| selector.matches(objects::labels(p)) && !objects::deleting(p) && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
                .collect();
            let usage = cpu.pod_cpu(ns, &selected).await;
            let samples: Vec<PodSample> = selected
                .iter()
                .map(|p| PodSample { ready: super::pods::pod_ready(p), request: pod_request(p), usage: usage.get(name(p)).copied() })
                .collect();
            let current = target["spec"]["replicas"].as_i64().unwrap_or(1);
            let uid = objects::uid(hpa).to_string();
            let past = history.entry(uid).or_default();
            let (decision, raw) = plan(hpa, current, &samples, past, now);
            past.push((now, raw));
            past.retain(|(t, _)| (now - *t).num_seconds() < 3600);
            if decision.desired != current {
                let patch = json!({"spec": {"replicas": decision.desired}});
                let opts = objects::controller_write_options();
                let scaled = api.patch(target_info, Some(ns), name(&target), PatchType::Merge, &patch, Part::Main, false, &opts).await;
                match scaled {
                    Ok(_) => {
                        if let Some(msg) = &decision.event {
                            api.record_event(hpa, "Normal", "SuccessfulRescale", msg, "horizontal-pod-autoscaler").await;
                        }
                    }
                    Err(e) => {
                        api.record_event(hpa, "Warning", "FailedRescale", &format!("New size: {}; error: {}", decision.desired, e.message), "horizontal-pod-autoscaler").await;
                        continue;
                    }
                }
            }
            if hpa["status"] != decision.status {
                super::status::write_status(api, hpas_info, hpa, decision.status).await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::objects::t;

    fn hpa(extra: Value) -> Value {
        let mut h = json!({"metadata": {"name": "web", "namespace": "default", "generation": 1}, "spec": {
            "minReplicas": 1, "maxReplicas": 5,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}],
        }});
        if let (Some(s), Some(e)) = (h["spec"].as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                s.insert(k.clone(), v.clone());
            }
        }
        h
    }

    fn pod(usage: f64) -> PodSample {
        PodSample { ready: true, request: 0.1, usage: Some(usage) }
    }

    #[test]
    fn scales_up_by_the_ratio_and_stays_within_tolerance() {
        let (d, raw) = plan(&hpa(json!({})), 1, &[pod(0.2)], &[], t(0));
        // 200% of request against 50%: ratio 4 → 4 pods.
        assert_eq!((d.desired, raw), (4, 4));
        assert_eq!(d.event.as_deref(), Some("New size: 4; reason: cpu resource utilization (percentage of request) above target"));
        assert_eq!(d.status["currentMetrics"][0]["resource"]["current"]["averageUtilization"], 200);
        let (d, _) = plan(&hpa(json!({})), 2, &[pod(0.053), pod(0.05)], &[], t(0));
        assert_eq!((d.desired, d.event), (2, None), "51.5% is within the tolerance of 50%");
    }

    #[test]
    fn max_replicas_and_the_scale_up_policy_limit() {
        let (d, _) = plan(&hpa(json!({"maxReplicas": 3})), 1, &[pod(0.2)], &[], t(0));
        assert_eq!(d.desired, 3);
        let limited = d.status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "ScalingLimited").unwrap().clone();
        assert_eq!(limited["reason"], "TooManyReplicas");
        let (d, _) = plan(&hpa(json!({"maxReplicas": 100})), 1, &[pod(10.0)], &[], t(0));
        assert_eq!(d.desired, 5, "at most max(2x, +4) per period");
    }

    #[test]
    fn scale_down_waits_for_the_stabilization_window() {
        let history = [(t(0), 4), (t(100), 4)];
        let (d, raw) = plan(&hpa(json!({})), 4, &[pod(0.0), pod(0.0), pod(0.0), pod(0.0)], &history, t(200));
        assert_eq!((d.desired, raw), (4, 0), "a recommendation of 4 within 300 s holds it");
        let (d, _) = plan(&hpa(json!({})), 4, &[pod(0.0); 4], &history, t(500));
        assert_eq!(d.desired, 1, "down to minReplicas once the window passed");
        assert_eq!(d.event.as_deref(), Some("New size: 1; reason: All metrics below target"));
        let quick = hpa(json!({"behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}}));
        assert_eq!(plan(&quick, 4, &[pod(0.0); 4], &history, t(200)).0.desired, 1);
    }

    #[test]
    fn a_target_scaled_to_zero_is_left_alone() {
        let (d, _) = plan(&hpa(json!({})), 0, &[], &[], t(0));
        assert_eq!((d.desired, d.event), (0, None));
        assert_eq!(d.status["conditions"][1]["reason"], "ScalingDisabled");
    }

    #[test]
    fn no_metrics_keeps_the_replicas_and_says_why() {
        let (d, _) = plan(&hpa(json!({})), 2, &[PodSample { ready: true, request: 0.1, usage: None }], &[], t(0));
        assert_eq!(d.desired, 2);
        let active = d.status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "ScalingActive").unwrap().clone();
        assert_eq!((active["status"].as_str(), active["reason"].as_str()), (Some("False"), Some("FailedGetResourceMetric")));
    }
}
