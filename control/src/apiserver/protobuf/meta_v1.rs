//! meta/v1 messages embedded in every kind: ObjectMeta (owner references, managed fields,
//! a zero creationTimestamp as `null`), label selectors and field selector requirements.

use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use serde_json::Value;

use super::{Json, ProtoError, Result, time};

pub(super) fn object_meta(m: &meta::ObjectMeta) -> Result<Value> {
    let mut j = Json::default();
    j.str("name", &m.name);
    j.str("generateName", &m.generate_name);
    j.str("namespace", &m.namespace);
    j.str("selfLink", &m.self_link);
    j.str("uid", &m.uid);
    j.str("resourceVersion", &m.resource_version);
    j.int("generation", m.generation);
    j.object("creationTimestamp", &m.creation_timestamp, time)?;
    j.ptr("deletionTimestamp", &m.deletion_timestamp, time)?;
    j.int_ptr(
        "deletionGracePeriodSeconds",
        m.deletion_grace_period_seconds,
    );
    j.map("labels", &m.labels);
    j.map("annotations", &m.annotations);
    j.list("ownerReferences", &m.owner_references, owner_reference)?;
    j.strs("finalizers", &m.finalizers);
    j.list("managedFields", &m.managed_fields, managed_fields_entry)?;
    j.done()
}

fn owner_reference(r: &meta::OwnerReference) -> Result<Value> {
    let mut j = Json::default();
    j.str_req("apiVersion", &r.api_version);
    j.str_req("kind", &r.kind);
    j.str_req("name", &r.name);
    j.str_req("uid", &r.uid);
    j.bool_ptr("controller", r.controller);
    j.bool_ptr("blockOwnerDeletion", r.block_owner_deletion);
    j.done()
}

fn managed_fields_entry(e: &meta::ManagedFieldsEntry) -> Result<Value> {
    let mut j = Json::default();
    j.str("manager", &e.manager);
    j.str("operation", &e.operation);
    j.str("apiVersion", &e.api_version);
    j.ptr("time", &e.time, time)?;
    j.str("fieldsType", &e.fields_type);
    j.ptr("fieldsV1", &e.fields_v1, |f| {
        // FieldsV1 holds raw JSON; Go writes it verbatim.
        let raw = f.raw.as_deref().unwrap_or(b"{}");
        serde_json::from_slice(raw).map_err(|e| ProtoError::InvalidValue {
            field: "managedFields.fieldsV1",
            reason: e.to_string(),
        })
    })?;
    j.str("subresource", &e.subresource);
    j.done()
}

pub(super) fn label_selector(s: &meta::LabelSelector) -> Result<Value> {
    let mut j = Json::default();
    j.map("matchLabels", &s.match_labels);
    j.list(
        "matchExpressions",
        &s.match_expressions,
        label_selector_requirement,
    )?;
    j.done()
}

pub(super) fn label_selector_requirement(r: &meta::LabelSelectorRequirement) -> Result<Value> {
    let mut j = Json::default();
    j.str_req("key", &r.key);
    j.str_req("operator", &r.operator);
    j.strs("values", &r.values);
    j.done()
}

pub(super) fn field_selector_requirement(r: &meta::FieldSelectorRequirement) -> Result<Value> {
    let mut j = Json::default();
    j.str_req("key", &r.key);
    j.str_req("operator", &r.operator);
    j.strs("values", &r.values);
    j.done()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{decoded, map, s};
    use k8s_pb::api::core::v1 as core;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
    use serde_json::json;

    #[test]
    fn secret_with_full_object_meta() {
        let secret = core::Secret {
            metadata: Some(meta::ObjectMeta {
                name: s(""),
                generate_name: s("creds-"),
                namespace: s("prod"),
                uid: s(""),
                generation: Some(0),
                creation_timestamp: Some(meta::Time {
                    seconds: Some(1_700_000_000),
                    nanos: Some(0),
                }),
                deletion_grace_period_seconds: Some(0),
                labels: map(&[("app", "web".to_string())]),
                annotations: map(&[("note", "x".to_string())]),
                owner_references: vec![meta::OwnerReference {
                    api_version: s("apps/v1"),
                    kind: s("Deployment"),
                    name: s("web"),
                    uid: s("u-1"),
                    controller: Some(true),
                    block_owner_deletion: None,
                }],
                finalizers: vec!["example.com/keep".to_string()],
                ..Default::default()
            }),
            immutable: Some(false),
            data: map(&[("bin", vec![0u8, 255, 1]), ("txt", b"hello".to_vec())]),
            string_data: map(&[("plain", "p".to_string())]),
            r#type: s("Opaque"),
        };
        assert_eq!(
            decoded("v1", "Secret", &secret),
            json!({
                "kind": "Secret",
                "apiVersion": "v1",
                "metadata": {
                    "generateName": "creds-",
                    "namespace": "prod",
                    "creationTimestamp": "2023-11-14T22:13:20Z",
                    "deletionGracePeriodSeconds": 0,
                    "labels": {"app": "web"},
                    "annotations": {"note": "x"},
                    "ownerReferences": [{
                        "apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                        "uid": "u-1", "controller": true
                    }],
                    "finalizers": ["example.com/keep"]
                },
                "immutable": false,
                "data": {"bin": "AP8B", "txt": "aGVsbG8="},
                "stringData": {"plain": "p"},
                "type": "Opaque"
            })
        );
    }
}
