//! Discovery documents, legacy (APIVersions, APIGroupList, APIResourceList) and aggregated
//! (apidiscovery.k8s.io/v2 APIGroupDiscoveryList), all derived from `resources.rs`
//! ([`discoverable`]: the stored kinds and metrics.k8s.io). One version per group.

use serde_json::{Value, json};

use super::resources::{ResourceInfo, discoverable, groups};

/// Content type kubectl requires on an aggregated discovery answer.
pub(crate) const AGGREGATED_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
pub(crate) const AGGREGATED_V2BETA1: &str = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// (subresource, kind it answers with (group, version, kind) or None = parent's, verbs)
fn subresource(info: &ResourceInfo, sub: &str) -> (Option<(&'static str, &'static str, &'static str)>, &'static [&'static str]) {
    match sub {
        "status" => (None, &["get", "patch", "update"]),
        "scale" => (Some(("autoscaling", "v1", "Scale")), &["get", "patch", "update"]),
        "log" => (Some(("", "v1", "Pod")), &["get"]),
        "exec" | "attach" | "portforward" => (Some(("", "v1", "PodExecOptions")), &["create", "get"]),
        "binding" => (Some(("", "v1", "Binding")), &["create"]),
        "eviction" => (Some(("policy", "v1", "Eviction")), &["create"]),
        "proxy" => (Some(("", "v1", if info.kind == "Pod" { "PodProxyOptions" } else { "NodeProxyOptions" })), &["create", "delete", "get", "patch", "update"]),
        "finalize" => (None, &["update"]),
        "token" => (Some(("authentication.k8s.io", "v1", "TokenRequest")), &["create"]),
        "ephemeralcontainers" => (None, &["get", "patch", "update"]),
        _ => (None, &["get"]),
    }
}

fn in_group(group: &str) -> impl Iterator<Item = &'static ResourceInfo> + '_ {
    discoverable().filter(move |r| r.group == group)
}

/// The one version `group` is served at.
fn version_of(group: &str) -> &'static str {
    in_group(group).next().map_or("v1", |r| r.version)
}

/// GET /api (legacy).
pub(crate) fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_entry(g: &str) -> Value {
    let v = version_of(g);
    let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
    json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
}

/// GET /apis (legacy).
pub(crate) fn api_group_list() -> Value {
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups().into_iter().map(group_entry).collect::<Vec<_>>()})
}

/// GET /apis/GROUP (legacy).
pub(crate) fn api_group(group: &str) -> Option<Value> {
    groups().contains(&group).then(|| {
        let mut g = group_entry(group);
        g["kind"] = json!("APIGroup");
        g["apiVersion"] = json!("v1");
        g
    })
}

/// GET /api/v1 or /apis/GROUP/VERSION (legacy).
pub(crate) fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    let mut resources = Vec::new();
    for r in in_group(group).filter(|r| r.version == version) {
        let mut res = json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            res["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            res["categories"] = json!(r.categories);
        }
        resources.push(res);
        for sub in r.subresources {
            let (kind, verbs) = subresource(r, sub);
            let mut s = json!({
                "name": format!("{}/{}", r.plural, sub), "singularName": "", "namespaced": r.namespaced,
                "kind": kind.map(|k| k.2).unwrap_or(r.kind), "verbs": verbs,
            });
            if let Some((g, v, _)) = kind {
                s["group"] = json!(g);
                s["version"] = json!(v);
            }
            resources.push(s);
        }
    }
    if resources.is_empty() {
        return None;
    }
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
}

fn aggregated_group(group: &str) -> Value {
    let resources: Vec<Value> = in_group(group)
        .map(|r| {
            let mut res = json!({
                "resource": r.plural,
                "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": r.singular,
                "verbs": r.verbs,
            });
            if !r.short_names.is_empty() {
                res["shortNames"] = json!(r.short_names);
            }
            if !r.categories.is_empty() {
                res["categories"] = json!(r.categories);
            }
            if !r.subresources.is_empty() {
                res["subresources"] = Value::Array(
                    r.subresources
                        .iter()
                        .map(|sub| {
                            let (kind, verbs) = subresource(r, sub);
                            let (g, v, k) = kind.unwrap_or((r.group, r.version, r.kind));
                            json!({"subresource": sub, "responseKind": {"group": g, "version": v, "kind": k}, "verbs": verbs})
                        })
                        .collect(),
                );
            }
            res
        })
        .collect();
    json!({
        "metadata": {"name": group, "creationTimestamp": null},
        "versions": [{"version": version_of(group), "resources": resources, "freshness": "Current"}],
    })
}

/// Aggregated discovery for /api (core group only) or /apis (all named groups).
pub(crate) fn aggregated(core: bool, api_version: &str) -> Value {
    let items: Vec<Value> = if core {
        vec![aggregated_group("")]
    } else {
        groups().into_iter().map(aggregated_group).collect()
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_listed_with_subresources_and_short_names() {
        let l = api_resource_list("", "v1").unwrap();
        let res = l["resources"].as_array().unwrap();
        let pods = res.iter().find(|r| r["name"] == "pods").unwrap();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert!(res.iter().any(|r| r["name"] == "pods/log"));
        let agg = aggregated(false, "apidiscovery.k8s.io/v2");
        let apps = agg["items"].as_array().unwrap().iter().find(|g| g["metadata"]["name"] == "apps").unwrap();
        let deploy = apps["versions"][0]["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "deployments").unwrap();
        assert_eq!(deploy["subresources"][1]["responseKind"]["kind"], "Scale");
        let metrics = agg["items"].as_array().unwrap().iter().find(|g| g["metadata"]["name"] == "metrics.k8s.io").unwrap();
        assert_eq!(metrics["versions"][0]["version"], "v1beta1");
        assert_eq!(metrics["versions"][0]["resources"][1]["responseKind"]["kind"], "PodMetrics");
        assert_eq!(api_group("metrics.k8s.io").unwrap()["preferredVersion"]["groupVersion"], "metrics.k8s.io/v1beta1");
        let l = api_resource_list("metrics.k8s.io", "v1beta1").unwrap();
        assert_eq!(l["resources"][0]["kind"], "NodeMetrics");
    }
}
