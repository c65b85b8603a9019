//! The cluster's default IngressClass `flotilla` (controller `flotilla.dev/ingress`,
//! served by the nodes' built-in Ingress controller), as k3s ships Traefik's, and
//! Kubernetes' DefaultIngressClass admission.
//!
//! Invariants: created at start when missing, never rewritten, so an operator may edit it
//! (drop its default annotation to make another class the default); one deleted comes
//! back at the next start. An Ingress created naming no class (no
//! `spec.ingressClassName`, no legacy `kubernetes.io/ingress.class` annotation) gets the
//! default class's name, the newest when several are marked default, none when no class
//! is; updates are left alone.

use serde_json::{Value, json};

use super::Api;
use super::error::ApiError;
use super::resources;
use super::service::{self, WriteOptions};

/// The class annotation Ingresses used before `spec.ingressClassName`.
const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// Creates the IngressClass unless it exists. Failures are logged; the API server runs
/// without it.
pub(crate) async fn ensure(api: &Api) {
    if let Err(e) = create_if_missing(api).await {
        tracing::warn!(error = %e, "IngressClass {} not written", flotilla_api::INGRESS_CLASS);
    }
}

async fn create_if_missing(api: &Api) -> Result<(), ApiError> {
    let info = resources::find("networking.k8s.io", "v1", "ingressclasses").expect("served resource");
    match api.get(info, None, flotilla_api::INGRESS_CLASS) {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => {
            let class = json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                "metadata": {
                    "name": flotilla_api::INGRESS_CLASS,
                    "annotations": {flotilla_api::DEFAULT_INGRESS_CLASS_ANNOTATION: "true"},
                    "labels": {"app.kubernetes.io/managed-by": "flotilla"},
                },
                "spec": {"controller": flotilla_api::INGRESS_CONTROLLER},
            });
            let options = WriteOptions { field_manager: "flotilla".into(), ..Default::default() };
            api.create(info, None, class, &options).await.map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// DefaultIngressClass admission for a new Ingress `ingress`.
pub(crate) fn admit(api: &Api, ingress: &mut Value) {
    let named = ingress["spec"]["ingressClassName"].as_str().is_some_and(|c| !c.is_empty());
    if named || !ingress["metadata"]["annotations"][LEGACY_CLASS_ANNOTATION].is_null() {
        return;
    }
    let info = resources::find("networking.k8s.io", "v1", "ingressclasses").expect("served resource");
    let (classes, _, _) = api.store.list(&service::prefix(info, None), None, None, &|s| {
        s.value["metadata"]["annotations"][flotilla_api::DEFAULT_INGRESS_CLASS_ANNOTATION].as_str().is_some_and(|v| v.eq_ignore_ascii_case("true"))
    });
    // RFC 3339 timestamps in UTC order as text; the name breaks ties.
    let newest = classes.iter().map(|c| &c.value["metadata"]).max_by_key(|m| (m["creationTimestamp"].as_str().unwrap_or("").to_string(), m["name"].as_str().unwrap_or("").to_string()));
    if let Some(name) = newest.and_then(|m| m["name"].as_str()) {
        if !ingress["spec"].is_object() {
            ingress["spec"] = json!({});
        }
        ingress["spec"]["ingressClassName"] = json!(name);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::apiserver::service::SystemClock;

    #[tokio::test]
    async fn the_default_class_is_created_once_and_an_edit_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(dir.path(), crate::store::StoreConfig::default()).expect("store");
        let api = Api::new(store, Arc::new(SystemClock));
        let info = resources::find("networking.k8s.io", "v1", "ingressclasses").expect("info");
        ensure(&api).await;
        let class = api.get(info, None, "flotilla").expect("class").value.clone();
        assert_eq!(class["spec"]["controller"], "flotilla.dev/ingress");
        assert_eq!(class["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"], "true");
        let patch = json!({"metadata": {"annotations": {"ingressclass.kubernetes.io/is-default-class": "false"}}});
        api.patch(info, None, "flotilla", super::super::service::PatchType::Merge, &patch, super::super::service::Part::Main, false, &WriteOptions::default()).await.expect("patch");
        ensure(&api).await;
        let class = api.get(info, None, "flotilla").expect("class").value.clone();
        assert_eq!(class["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"], "false");
    }

    #[tokio::test]
    async fn an_ingress_naming_no_class_gets_the_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(dir.path(), crate::store::StoreConfig::default()).expect("store");
        let api = Api::new(store, Arc::new(SystemClock));
        let admitted = |ing: Value| {
            let mut ing = ing;
            admit(&api, &mut ing);
            ing["spec"]["ingressClassName"].clone()
        };
        assert_eq!(admitted(json!({"metadata": {"name": "i"}, "spec": {}})), Value::Null, "no default class yet");
        ensure(&api).await;
        assert_eq!(admitted(json!({"metadata": {"name": "i"}, "spec": {}})), json!("flotilla"));
        assert_eq!(admitted(json!({"metadata": {"name": "i"}})), json!("flotilla"));
        assert_eq!(admitted(json!({"metadata": {"name": "i"}, "spec": {"ingressClassName": "nginx"}})), json!("nginx"));
        let legacy = json!({"metadata": {"name": "i", "annotations": {"kubernetes.io/ingress.class": "nginx"}}, "spec": {}});
        assert_eq!(admitted(legacy), Value::Null, "the legacy annotation names a class");
    }
}
