//! certificates.k8s.io/v1 messages: CertificateSigningRequest. `kubectl certificate
//! approve|deny` GETs the CSR and PUTs it whole to `…/certificatesigningrequests/NAME/approval`
//! with an Approved or Denied condition added to `status.conditions`, so this is the one
//! kind whose status is converted (see the module docs).

use k8s_pb::api::certificates::v1 as certs;
use serde_json::{Map, Value};

use super::meta_v1::object_meta;
use super::{Json, Result, time};

pub(super) fn certificate_signing_request(
    r: &certs::CertificateSigningRequest,
) -> Result<Map<String, Value>> {
    let mut j = Json::default();
    j.object("metadata", &r.metadata, object_meta)?;
    j.object(
        "spec",
        &r.spec,
        |s: &certs::CertificateSigningRequestSpec| {
            let mut j = Json::default();
            j.bytes_req("request", &s.request);
            j.str_req("signerName", &s.signer_name);
            j.int_ptr("expirationSeconds", s.expiration_seconds);
            j.strs("usages", &s.usages);
            j.str("username", &s.username);
            j.str("uid", &s.uid);
            j.strs("groups", &s.groups);
            j.extra("extra", &s.extra, |x| &x.items);
            j.done()
        },
    )?;
    j.object(
        "status",
        &r.status,
        |s: &certs::CertificateSigningRequestStatus| {
            let mut j = Json::default();
            j.list("conditions", &s.conditions, |c| {
                let mut j = Json::default();
                j.str_req("type", &c.r#type);
                j.str_req("status", &c.status);
                j.str("reason", &c.reason);
                j.str("message", &c.message);
                // metav1.Time is a struct: `omitempty` does not apply, zero is `null`.
                j.object("lastUpdateTime", &c.last_update_time, time)?;
                j.object("lastTransitionTime", &c.last_transition_time, time)?;
                j.done()
            })?;
            j.bytes("certificate", &s.certificate);
            j.done()
        },
    )?;
    Ok(j.0)
}

#[cfg(test)]
mod tests {
    use super::super::BASE64;
    use super::super::fixtures::fixture;
    use base64::Engine as _;
    use serde_json::json;

    /// The `spec.request` of the CSRs the captures were made with.
    fn request() -> String {
        BASE64.encode(include_bytes!("testdata/csr_request.pem"))
    }

    #[test]
    fn kubectl_certificate_approve() {
        // kubectl certificate approve alice, the server holding a CSR with every spec field
        // and managed fields: kubectl PUTs it back with an Approved condition.
        assert_eq!(
            fixture(include_bytes!("testdata/csr_approve.bin")),
            json!({
                "kind": "CertificateSigningRequest", "apiVersion": "certificates.k8s.io/v1",
                "metadata": {
                    "name": "alice",
                    "uid": "8d3f0b0e-1c1a-4c39-9a4e-3f7a2b5c6d70",
                    "resourceVersion": "7",
                    "creationTimestamp": "2025-01-01T00:00:00Z",
                    "labels": {"team": "dev"},
                    "annotations": {"note": "hi"},
                    "managedFields": [{
                        "manager": "kubectl-create", "operation": "Update",
                        "apiVersion": "certificates.k8s.io/v1", "time": "2025-01-01T00:00:00Z",
                        "fieldsType": "FieldsV1",
                        "fieldsV1": {"f:spec": {"f:request": {}, "f:signerName": {}}}
                    }]
                },
                "spec": {
                    "request": request(),
                    "signerName": "kubernetes.io/kube-apiserver-client",
                    "expirationSeconds": 86400,
                    "usages": ["client auth", "digital signature"],
                    "username": "admin",
                    "uid": "u-1",
                    "groups": ["system:masters", "system:authenticated"],
                    "extra": {"scopes": ["a", "b"]}
                },
                "status": {"conditions": [{
                    "type": "Approved", "status": "True", "reason": "KubectlApprove",
                    "message": "This CSR was approved by kubectl certificate approve.",
                    "lastUpdateTime": "2026-12-08T01:29:25Z", // when kubectl ran
                    "lastTransitionTime": null
                }]}
            })
        );
    }

    #[test]
    fn kubectl_certificate_deny() {
        // kubectl certificate deny bob, the CSR already having a Failed condition and a
        // certificate: kubectl appends Denied and keeps the rest.
        assert_eq!(
            fixture(include_bytes!("testdata/csr_deny.bin")),
            json!({
                "kind": "CertificateSigningRequest", "apiVersion": "certificates.k8s.io/v1",
                "metadata": {
                    "name": "bob",
                    "uid": "9d3f0b0e-1c1a-4c39-9a4e-3f7a2b5c6d71",
                    "resourceVersion": "8",
                    "creationTimestamp": "2025-01-01T00:00:00Z"
                },
                "spec": {
                    "request": request(),
                    "signerName": "example.com/signer",
                    "usages": ["client auth"],
                    "username": "bob",
                    "groups": ["system:authenticated"]
                },
                "status": {
                    "conditions": [
                        {
                            "type": "Failed", "status": "True", "reason": "SignerError",
                            "message": "x",
                            "lastUpdateTime": "2025-01-02T03:04:05Z",
                            "lastTransitionTime": "2025-01-02T03:04:05Z"
                        },
                        {
                            "type": "Denied", "status": "True", "reason": "KubectlDeny",
                            "message": "This CSR was denied by kubectl certificate deny.",
                            "lastUpdateTime": "2026-12-08T01:29:25Z", // when kubectl ran
                            "lastTransitionTime": null
                        }
                    ],
                    "certificate": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="
                }
            })
        );
    }
}
