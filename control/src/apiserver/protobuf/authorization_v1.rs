//! authorization.k8s.io/v1 messages: SelfSubjectAccessReview (`kubectl auth can-i`),
//! SelfSubjectRulesReview (`kubectl auth can-i --list`), and SubjectAccessReview and
//! LocalSubjectAccessReview (sent by other clients, e.g. authorizing proxies).

use k8s_pb::api::authorization::v1 as authz;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use serde_json::{Map, Value};

use super::meta_v1::{field_selector_requirement, label_selector_requirement, object_meta};
use super::{Json, Result};

pub(super) fn self_subject_access_review(r: &authz::SelfSubjectAccessReview) -> Result<Map<String, Value>> {
    let mut j = Json::default();
    j.object("metadata", &r.metadata, object_meta)?;
    j.object("spec", &r.spec, |s: &authz::SelfSubjectAccessReviewSpec| {
        let mut j = Json::default();
        j.ptr("resourceAttributes", &s.resource_attributes, resource_attributes)?;
        j.ptr(
            "nonResourceAttributes",
            &s.non_resource_attributes,
            non_resource_attributes,
        )?;
        j.done()
    })?;
    Ok(j.0)
}

/// SubjectAccessReview and LocalSubjectAccessReview, which share their spec: may this
/// user (groups, extra, uid) do this?
pub(super) fn subject_access_review(
    metadata: &Option<meta::ObjectMeta>,
    spec: &Option<authz::SubjectAccessReviewSpec>,
) -> Result<Map<String, Value>> {
    let mut j = Json::default();
    j.object("metadata", metadata, object_meta)?;
    j.object("spec", spec, |s: &authz::SubjectAccessReviewSpec| {
        let mut j = Json::default();
        j.ptr("resourceAttributes", &s.resource_attributes, resource_attributes)?;
        j.ptr(
            "nonResourceAttributes",
            &s.non_resource_attributes,
            non_resource_attributes,
        )?;
        j.str("user", &s.user);
        j.strs("groups", &s.groups);
        j.extra("extra", &s.extra, |x| &x.items);
        j.str("uid", &s.uid);
        j.done()
    })?;
    Ok(j.0)
}

/// What `kubectl auth can-i --list` sends.
pub(super) fn self_subject_rules_review(r: &authz::SelfSubjectRulesReview) -> Result<Map<String, Value>> {
    let mut j = Json::default();
    j.object("metadata", &r.metadata, object_meta)?;
    j.object("spec", &r.spec, |s: &authz::SelfSubjectRulesReviewSpec| {
        let mut j = Json::default();
        j.str("namespace", &s.namespace);
        j.done()
    })?;
    Ok(j.0)
}

fn resource_attributes(a: &authz::ResourceAttributes) -> Result<Value> {
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
}

fn non_resource_attributes(a: &authz::NonResourceAttributes) -> Result<Value> {
    let mut j = Json::default();
    j.str("path", &a.path);
    j.str("verb", &a.verb);
    j.done()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{decoded, fixture, s};
    use super::*;
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

    #[test]
    fn kubectl_auth_can_i_list() {
        // kubectl auth can-i --list (the context's namespace, default)
        assert_eq!(
            fixture(include_bytes!("testdata/can_i_list_all.bin")),
            json!({
                "kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1",
                "metadata": {"creationTimestamp": null},
                "spec": {"namespace": "default"}
            })
        );
        // kubectl auth can-i --list -n kube-system
        assert_eq!(
            fixture(include_bytes!("testdata/can_i_list_namespace.bin"))["spec"],
            json!({"namespace": "kube-system"})
        );
    }

    #[test]
    fn subject_access_reviews() {
        // What client-go writes for another user (kubectl sends no SubjectAccessReview).
        let spec = authz::SubjectAccessReviewSpec {
            resource_attributes: Some(authz::ResourceAttributes {
                namespace: s("ns1"),
                verb: s("get"),
                group: s("apps"),
                resource: s("deployments"),
                name: s("web"),
                ..Default::default()
            }),
            non_resource_attributes: None,
            user: s("alice"),
            groups: vec!["dev".into(), "system:authenticated".into()],
            extra: [
                (
                    "scopes".to_string(),
                    authz::ExtraValue {
                        items: vec!["a".into()],
                    },
                ),
                ("empty".to_string(), authz::ExtraValue { items: vec![] }),
            ]
            .into(),
            uid: s("u-1"),
        };
        let expected = |kind: &str| {
            json!({
                "kind": kind, "apiVersion": "authorization.k8s.io/v1",
                "metadata": {"namespace": "ns1", "creationTimestamp": null},
                "spec": {
                    "resourceAttributes": {
                        "namespace": "ns1", "verb": "get", "group": "apps",
                        "resource": "deployments", "name": "web"
                    },
                    "user": "alice",
                    "groups": ["dev", "system:authenticated"],
                    "extra": {"empty": null, "scopes": ["a"]},
                    "uid": "u-1"
                }
            })
        };
        let metadata = Some(k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            namespace: s("ns1"),
            ..Default::default()
        });
        let review = authz::LocalSubjectAccessReview {
            metadata: metadata.clone(),
            spec: Some(spec.clone()),
            status: None,
        };
        assert_eq!(
            decoded("authorization.k8s.io/v1", "LocalSubjectAccessReview", &review),
            expected("LocalSubjectAccessReview")
        );
        let review = authz::SubjectAccessReview {
            metadata,
            spec: Some(spec),
            status: None,
        };
        assert_eq!(
            decoded("authorization.k8s.io/v1", "SubjectAccessReview", &review),
            expected("SubjectAccessReview")
        );

        // A non-resource request with only a user, and an empty spec.
        let review = authz::SubjectAccessReview {
            spec: Some(authz::SubjectAccessReviewSpec {
                non_resource_attributes: Some(authz::NonResourceAttributes {
                    path: s("/healthz"),
                    verb: s("get"),
                }),
                user: s("bob"),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            decoded("authorization.k8s.io/v1", "SubjectAccessReview", &review)["spec"],
            json!({"nonResourceAttributes": {"path": "/healthz", "verb": "get"}, "user": "bob"})
        );
        assert_eq!(
            decoded(
                "authorization.k8s.io/v1",
                "SubjectAccessReview",
                &authz::SubjectAccessReview::default()
            ),
            json!({
                "kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                "metadata": {"creationTimestamp": null},
                "spec": {}
            })
        );
    }
}
