//! apps/v1 messages: Deployment (strategy, selector, pod template).

use k8s_pb::api::apps::v1 as apps;
use serde_json::{Map, Value};

use super::core_v1::pod_template_spec;
use super::meta_v1::{label_selector, object_meta};
use super::{Json, Result, int_or_string};

pub(super) fn deployment(d: &apps::Deployment) -> Result<Map<String, Value>> {
    let mut j = Json::default();
    j.object("metadata", &d.metadata, object_meta)?;
    j.object("spec", &d.spec, |s: &apps::DeploymentSpec| {
        let mut j = Json::default();
        j.int_ptr("replicas", s.replicas);
        j.ptr("selector", &s.selector, label_selector)?;
        j.object("template", &s.template, pod_template_spec)?;
        j.object("strategy", &s.strategy, |st: &apps::DeploymentStrategy| {
            let mut j = Json::default();
            j.str("type", &st.r#type);
            j.ptr("rollingUpdate", &st.rolling_update, |r| {
                let mut j = Json::default();
                j.ptr("maxUnavailable", &r.max_unavailable, int_or_string)?;
                j.ptr("maxSurge", &r.max_surge, int_or_string)?;
                j.done()
            })?;
            j.done()
        })?;
        j.int("minReadySeconds", s.min_ready_seconds);
        j.int_ptr("revisionHistoryLimit", s.revision_history_limit);
        j.bool("paused", s.paused);
        j.int_ptr("progressDeadlineSeconds", s.progress_deadline_seconds);
        j.done()
    })?;
    Ok(j.0)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::fixture;
    use serde_json::json;

    #[test]
    fn kubectl_create_deployment() {
        // kubectl create deployment d --image=x.wasm --replicas=2 --port=8080
        // kubectl names the container after the image, sanitised plus a random suffix.
        assert_eq!(
            fixture(include_bytes!("testdata/deployment.bin")),
            json!({
                "kind": "Deployment", "apiVersion": "apps/v1",
                "metadata": {"name": "d", "creationTimestamp": null, "labels": {"app": "d"}},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "d"}},
                    "template": {
                        "metadata": {"creationTimestamp": null, "labels": {"app": "d"}},
                        "spec": {"containers": [{
                            "name": "x-wasm-6jzgw",
                            "image": "x.wasm",
                            "ports": [{"containerPort": 8080}],
                            "resources": {}
                        }]}
                    },
                    "strategy": {}
                }
            })
        );
    }

    #[test]
    fn kubectl_create_deployment_with_two_images() {
        // kubectl create deployment dm --image=a.wasm --image=b.wasm
        let v = fixture(include_bytes!("testdata/deployment_multi.bin"));
        assert_eq!(v["spec"]["replicas"], 1);
        assert_eq!(
            v["spec"]["template"]["spec"]["containers"],
            json!([
                {"name": "a-wasm-9l4j8", "image": "a.wasm", "resources": {}},
                {"name": "b-wasm-grjkw", "image": "b.wasm", "resources": {}}
            ])
        );
    }
}
