//! authorization.k8s.io/v1 messages: SelfSubjectAccessReview, what `kubectl auth can-i` sends.

use k8s_pb::api::authorization::v1 as authz;
use serde_json::{Map, Value};

use super::meta_v1::{field_selector_requirement, label_selector_requirement, object_meta};
use super::{Json, Result};

pub(super) fn self_subject_access_review(r: &authz::SelfSubjectAccessReview) -> Result<Map<String, Value>> {
    let mut j = Json::default();
    j.object("metadata", &r.metadata, object_meta)?;
    j.object("spec", &r.spec, |s: &authz::SelfSubjectAccessReviewSpec| {
        let mut j = Json::default();
        j.ptr("resourceAttributes", &s.resource_attributes, |a| {
            let mut j = Json::default();
            j.str("namespace", &a.namespace);
            j.str("verb", &a.verb);
            j.str("group", &a.group);
            j.str("version", &a.version);
            j.str("resource", &a.resource);
            j.str("subresource", &a.subresource);
            j.str("name", &a.name);
            j.ptr("fieldSelector", &a.field_selector, |f| {
                let mut j = Json::default();
                j.str("rawSelector", &f.raw_selector);
                j.list("requirements", &f.requirements, field_selector_requirement)?;
                j.done()
            })?;
            j.ptr("labelSelector", &a.label_selector, |l| {
                let mut j = Json::default();
                j.str("rawSelector", &l.raw_selector);
                j.list("requirements", &l.requirements, label_selector_requirement)?;
                j.done()
            })?;
            j.done()
        })?;
        j.ptr("nonResourceAttributes", &s.non_resource_attributes, |a| {
            let mut j = Json::default();
            j.str("path", &a.path);
            j.str("verb", &a.verb);
            j.done()
        })?;
        j.done()
    })?;
    Ok(j.0)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{decoded, fixture, s};
    use super::*;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
    use serde_json::json;

    #[test]
    fn access_review_with_selectors() {
        let review = authz::SelfSubjectAccessReview {
            metadata: None,
            spec: Some(authz::SelfSubjectAccessReviewSpec {
                resource_attributes: Some(authz::ResourceAttributes {
                    verb: s("list"),
                    resource: s("pods"),
                    field_selector: Some(authz::FieldSelectorAttributes {
                        raw_selector: s("spec.nodeName=n1"),
                        requirements: vec![],
                    }),
                    label_selector: Some(authz::LabelSelectorAttributes {
                        raw_selector: s(""),
                        requirements: vec![meta::LabelSelectorRequirement {
                            key: s("app"),
                            operator: s("In"),
                            values: vec!["web".into()],
                        }],
                    }),
                    ..Default::default()
                }),
                non_resource_attributes: None,
            }),
            status: None,
        };
        assert_eq!(
            decoded(
                "authorization.k8s.io/v1",
                "SelfSubjectAccessReview",
                &review
            )["spec"],
            json!({"resourceAttributes": {
                "verb": "list",
                "resource": "pods",
                "fieldSelector": {"rawSelector": "spec.nodeName=n1"},
                "labelSelector": {"requirements": [{"key": "app", "operator": "In", "values": ["web"]}]}
            }})
        );
    }

    #[test]
    fn kubectl_auth_can_i() {
        let review = |spec: Value| {
            json!({
                "kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                "metadata": {"creationTimestamp": null},
                "spec": spec
            })
        };
        // kubectl auth can-i list pods
        assert_eq!(
            fixture(include_bytes!("testdata/can_i_list_pods.bin")),
            review(
                json!({"resourceAttributes": {"namespace": "default", "verb": "list", "resource": "pods"}})
            )
        );
        // kubectl auth can-i create pods --subresource=exec -n kube-system
        assert_eq!(
            fixture(include_bytes!("testdata/can_i_subresource.bin")),
            review(json!({"resourceAttributes": {
                "namespace": "kube-system", "verb": "create", "resource": "pods", "subresource": "exec"
            }}))
        );
        // kubectl auth can-i get /logs
        assert_eq!(
            fixture(include_bytes!("testdata/can_i_nonresource.bin")),
            review(json!({"nonResourceAttributes": {"path": "/logs", "verb": "get"}}))
        );
    }
}
