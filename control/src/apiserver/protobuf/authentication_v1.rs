//! authentication.k8s.io messages: TokenRequest (`kubectl create token`, the
//! serviceaccounts/token subresource) and SelfSubjectReview (`kubectl auth whoami`, which
//! tries v1, then v1beta1 and v1alpha1 after a 404).

use k8s_pb::api::authentication::v1 as authn;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use serde_json::{Map, Value};

use super::meta_v1::object_meta;
use super::{Json, Result};

pub(super) fn token_request(r: &authn::TokenRequest) -> Result<Map<String, Value>> {
    let mut j = Json::default();
    j.object("metadata", &r.metadata, object_meta)?;
    // None of the spec's fields has `omitempty`: unset ones are `null`.
    j.object("spec", &r.spec, |s: &authn::TokenRequestSpec| {
        let mut j = Json::default();
        j.strs_req("audiences", &s.audiences);
        j.int_ptr_req("expirationSeconds", s.expiration_seconds);
        j.ptr_req("boundObjectRef", &s.bound_object_ref, |b| {
            let mut j = Json::default();
            j.str("kind", &b.kind);
            j.str("apiVersion", &b.api_version);
            j.str("name", &b.name);
            j.str("uid", &b.u_id);
            j.done()
        })?;
        j.done()
    })?;
    Ok(j.0)
}

/// SelfSubjectReview of any version (v1, v1beta1, v1alpha1 are alike): metadata only, the
/// server fills in the status.
pub(super) fn self_subject_review(
    metadata: &Option<meta::ObjectMeta>,
) -> Result<Map<String, Value>> {
    let mut j = Json::default();
    j.object("metadata", metadata, object_meta)?;
    Ok(j.0)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::fixture;
    use serde_json::json;

    #[test]
    fn kubectl_create_token() {
        // kubectl create token sa
        assert_eq!(
            fixture(include_bytes!("testdata/token.bin")),
            json!({
                "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": null},
                "spec": {"audiences": null, "expirationSeconds": null, "boundObjectRef": null}
            })
        );
        // kubectl create token sa -n ns1 --duration 10m --audience a --audience b
        //   --bound-object-kind Pod --bound-object-name p --bound-object-uid 11111111-…
        assert_eq!(
            fixture(include_bytes!("testdata/token_bound.bin")),
            json!({
                "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": null},
                "spec": {
                    "audiences": ["a", "b"],
                    "expirationSeconds": 600,
                    "boundObjectRef": {
                        "kind": "Pod", "apiVersion": "v1", "name": "p",
                        "uid": "11111111-2222-3333-4444-555555555555"
                    }
                }
            })
        );
    }

    #[test]
    fn kubectl_auth_whoami_tries_v1_then_beta_then_alpha() {
        // kubectl auth whoami, answered 404 each time
        for (bytes, version) in [
            (&include_bytes!("testdata/whoami_v1.bin")[..], "v1"),
            (
                &include_bytes!("testdata/whoami_v1beta1.bin")[..],
                "v1beta1",
            ),
            (
                &include_bytes!("testdata/whoami_v1alpha1.bin")[..],
                "v1alpha1",
            ),
        ] {
            assert_eq!(
                fixture(bytes),
                json!({
                    "kind": "SelfSubjectReview",
                    "apiVersion": format!("authentication.k8s.io/{version}"),
                    "metadata": {"creationTimestamp": null}
                })
            );
        }
    }
}
