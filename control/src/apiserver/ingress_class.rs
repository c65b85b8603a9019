//! The cluster's default IngressClass `flotilla` (controller `flotilla.dev/ingress`,
//! served by the nodes' built-in Ingress controller), as k3s ships Traefik's.
//!
//! Invariants: created at start when missing, never rewritten, so an operator may edit it
//! (drop its default annotation to make another class the default); one deleted comes
//! back at the next start.

use serde_json::json;

use super::Api;
use super::error::ApiError;
use super::resources;
use super::service::WriteOptions;

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
}
