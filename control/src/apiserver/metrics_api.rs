//! metrics.k8s.io/v1beta1 (what `kubectl top` reads): PodMetrics and NodeMetrics, made
//! from the nodes' `/stats/summary` (node/src/usage.rs), like metrics-server, but read on
//! demand instead of scraped into a cache: each request asks the nodes concerned (the
//! selected pods' nodes, or every node) at once, with a short timeout. The nodes already
//! turn CPU time into a rate over their own sampling window, so one read suffices and the
//! control plane keeps nothing between requests.
//!
//! Invariants: read-only (get, list); a pod appears only when its node reports it with
//! the uid the store has (a pod recreated under the same name never shows its
//! predecessor's figures); a node that does not answer in time is left out (as
//! metrics-server leaves out a node it cannot scrape), never fails the whole list; a
//! named pod or node without figures is 404 NotFound, as metrics-server answers.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flotilla_api::selector::{FieldSelector, LabelSelector};
use serde_json::{Value, json};

use super::App;
use super::error::ApiError;
use super::{node_proxy, resources, service};

pub(crate) const GROUP_VERSION: &str = "metrics.k8s.io/v1beta1";
/// How long a node has to answer.
const NODE_TIMEOUT: Duration = Duration::from_secs(5);

type Query = [(String, String)];

fn q<'a>(query: &'a Query, k: &str) -> Option<&'a str> {
    query.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
}

/// `/apis/metrics.k8s.io/v1beta1/REST` (REST split on '/').
pub(crate) async fn serve(app: &Arc<App>, method: &Method, rest: &[&str], query: &Query) -> Result<Response, ApiError> {
    if method != Method::GET {
        return Err(ApiError::method_not_allowed(format!("the server does not allow this method on the requested resource ({method})")));
    }
    let labels = match q(query, "labelSelector") {
        Some(s) => LabelSelector::parse(s).map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?,
        None => LabelSelector::everything(),
    };
    let fields = match q(query, "fieldSelector") {
        Some(s) if !s.is_empty() => Some(FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?),
        _ => None,
    };
    let body = match rest {
        ["pods"] => pod_list(app, None, &labels, fields.as_ref()).await?,
        ["namespaces", ns, "pods"] => pod_list(app, Some(ns), &labels, fields.as_ref()).await?,
        ["namespaces", ns, "pods", name] => {
            let fields = FieldSelector::parse(&format!("metadata.name={name}")).map_err(|e| ApiError::bad_request(e.to_string()))?;
            let list = pod_list(app, Some(ns), &LabelSelector::everything(), Some(&fields)).await?;
            list["items"].get(0).cloned().ok_or_else(|| ApiError::new(404, "NotFound", format!("podmetrics.metrics.k8s.io \"{ns}/{name}\" not found")))?
        }
        ["nodes"] => node_list(app, None, &labels).await?,
        ["nodes", name] => {
            let list = node_list(app, Some(name), &LabelSelector::everything()).await?;
            list["items"].get(0).cloned().ok_or_else(|| ApiError::new(404, "NotFound", format!("nodemetrics.metrics.k8s.io \"{name}\" not found")))?
        }
        _ => return Err(ApiError::page_not_found()),
    };
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response())
}

/// The CPU the named pods of `ns` use now, in cores, by pod name (pods their node does not
/// report, or reports under another uid, are left out): what the HPA controller reads.
pub(crate) async fn pod_cpu(app: &App, ns: &str, pods: &[&Value]) -> HashMap<String, f64> {
    let nodes: BTreeSet<String> = pods.iter().filter_map(|p| p["spec"]["nodeName"].as_str()).filter(|n| !n.is_empty()).map(String::from).collect();
    let reads = nodes.into_iter().map(|node| async move { node_proxy::node_json(app, &node, "/stats/summary", NODE_TIMEOUT).await.ok() });
    let summaries: Vec<Value> = futures::future::join_all(reads).await.into_iter().flatten().collect();
    let mut out = HashMap::new();
    for s in &summaries {
        for p in s["pods"].as_array().into_iter().flatten() {
            let r = &p["podRef"];
            if r["namespace"] != ns {
                continue;
            }
            let Some(pod) = pods.iter().find(|q| q["metadata"]["name"] == r["name"] && q["metadata"]["uid"] == r["uid"]) else { continue };
            let cores: u64 = p["containers"].as_array().into_iter().flatten().map(|c| c["cpu"]["usageNanoCores"].as_u64().unwrap_or(0)).sum();
            out.insert(pod["metadata"]["name"].as_str().unwrap_or("").to_string(), cores as f64 / 1e9);
        }
    }
    out
}

/// The summaries of `nodes`, by node name; nodes that fail or time out are skipped.
async fn summaries(app: &Arc<App>, nodes: BTreeSet<String>) -> HashMap<String, Value> {
    let reads = nodes.into_iter().map(|node| async move {
        match node_proxy::node_json(app, &node, "/stats/summary", NODE_TIMEOUT).await {
            Ok(v) => Some((node, v)),
            Err(e) => {
                tracing::debug!(node = %node, error = %e.message, "no summary from node");
                None
            }
        }
    });
    futures::future::join_all(reads).await.into_iter().flatten().collect()
}

fn now() -> String {
    service::timestamp(chrono::Utc::now())
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"kind": kind, "apiVersion": GROUP_VERSION, "metadata": {}, "items": items})
}

/// Quantities as metrics-server writes them: CPU in nanocores, memory in bytes.
fn usage(stats: &Value) -> Value {
    let cores = stats["cpu"]["usageNanoCores"].as_u64().unwrap_or(0);
    let bytes = stats["memory"]["workingSetBytes"].as_u64().unwrap_or(0);
    json!({"cpu": format!("{cores}n"), "memory": format!("{bytes}")})
}

async fn pod_list(app: &Arc<App>, ns: Option<&str>, labels: &LabelSelector, fields: Option<&FieldSelector>) -> Result<Value, ApiError> {
    let info = resources::find("", "v1", "pods").ok_or_else(|| ApiError::internal("pods are not served"))?;
    let (pods, _, _) = app.api.store.list(&service::prefix(info, ns), None, None, &|s| {
        labels.matches(s.value["metadata"]["labels"].as_object()) && fields.is_none_or(|f| f.matches(&s.value))
    });
    let nodes: BTreeSet<String> = pods.iter().filter_map(|p| p.value["spec"]["nodeName"].as_str()).filter(|n| !n.is_empty()).map(String::from).collect();
    if nodes.is_empty() {
        return Ok(list("PodMetricsList", vec![]));
    }
    let summaries = summaries(app, nodes).await;
    // (namespace, name) → (uid, the node's pod entry).
    let mut reported: HashMap<(&str, &str), &Value> = HashMap::new();
    for s in summaries.values() {
        for p in s["pods"].as_array().into_iter().flatten() {
            let r = &p["podRef"];
            if let (Some(ns), Some(name)) = (r["namespace"].as_str(), r["name"].as_str()) {
                reported.insert((ns, name), p);
            }
        }
    }
    let created = now();
    let items = pods
        .iter()
        .filter_map(|pod| {
            let meta = &pod.value["metadata"];
            let (ns, name) = (meta["namespace"].as_str()?, meta["name"].as_str()?);
            let stats = reported.get(&(ns, name)).filter(|p| p["podRef"]["uid"] == meta["uid"])?;
            let containers: Vec<Value> = stats["containers"]
                .as_array()?
                .iter()
                .map(|c| json!({"name": c["name"], "usage": usage(c)}))
                .collect();
            let timestamp = stats["containers"][0]["cpu"]["time"].as_str().map_or_else(|| created.clone(), String::from);
            let mut m = json!({"name": name, "namespace": ns, "creationTimestamp": created});
            if let Some(l) = meta.get("labels") {
                m["labels"] = l.clone();
            }
            Some(json!({
                "kind": "PodMetrics", "apiVersion": GROUP_VERSION, "metadata": m,
                "timestamp": timestamp, "window": stats["window"].as_str().unwrap_or("5s"), "containers": containers,
            }))
        })
        .collect();
    Ok(list("PodMetricsList", items))
}

async fn node_list(app: &Arc<App>, only: Option<&str>, labels: &LabelSelector) -> Result<Value, ApiError> {
    let (nodes, _, _) = app.api.store.list("core/nodes/", None, None, &|s| {
        labels.matches(s.value["metadata"]["labels"].as_object()) && only.is_none_or(|n| s.value["metadata"]["name"] == n)
    });
    let names: BTreeSet<String> = nodes.iter().filter_map(|n| n.value["metadata"]["name"].as_str()).map(String::from).collect();
    let summaries = summaries(app, names).await;
    let created = now();
    let items = nodes
        .iter()
        .filter_map(|node| {
            let meta = &node.value["metadata"];
            let name = meta["name"].as_str()?;
            let s = &summaries.get(name)?["node"];
            let mut m = json!({"name": name, "creationTimestamp": created});
            if let Some(l) = meta.get("labels") {
                m["labels"] = l.clone();
            }
            Some(json!({
                "kind": "NodeMetrics", "apiVersion": GROUP_VERSION, "metadata": m,
                "timestamp": s["cpu"]["time"].as_str().unwrap_or(&created), "window": s["window"].as_str().unwrap_or("5s"),
                "usage": usage(s),
            }))
        })
        .collect();
    Ok(list("NodeMetricsList", items))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_in_nanocores_and_bytes() {
        let s = json!({"cpu": {"usageNanoCores": 123_456_789u64}, "memory": {"workingSetBytes": 65536}});
        assert_eq!(usage(&s), json!({"cpu": "123456789n", "memory": "65536"}));
        assert_eq!(usage(&json!({})), json!({"cpu": "0n", "memory": "0"}));
    }
}
