//! certificates.k8s.io/v1 CertificateSigningRequests: the documented Kubernetes way of
//! adding a user. A CSR records who asked (spec.username, groups, uid, extra, set by the
//! server); `kubectl certificate approve` PUTs an Approved condition to `/approval`
//! (allowed to whoever may `approve` the signer, `certificates.k8s.io/signers`); the
//! built-in signers then issue a certificate signed by the cluster CA into
//! status.certificate, at once:
//! - `kubernetes.io/kube-apiserver-client`: a client certificate for the API server
//!   (CN = user, O = groups; usages client auth, digital signature, key encipherment);
//! - `kubernetes.io/kube-apiserver-client-kubelet`: the same, for nodes only: CN
//!   `system:node:NAME`, O exactly `system:nodes`.
//!
//! Other signer names are left for an external signer, as Kubernetes leaves them. Nodes'
//! requests are approved by the CSR approving controller (`controllers/csr_approving.rs`)
//! through [`approve_as_controller`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rcgen::{ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::{Value, json};

use super::auth::{self, Attributes, User};
use super::error::ApiError;
use super::service::{Part, WriteOptions};

pub(crate) const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
pub(crate) const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// Kubernetes' --cluster-signing-duration default (a year) and minimum (10 minutes).
const DEFAULT_SECONDS: i64 = 365 * 24 * 3600;
const MIN_SECONDS: i64 = 600;

fn info() -> &'static super::resources::ResourceInfo {
    super::resources::find("certificates.k8s.io", "v1", "certificatesigningrequests").expect("served")
}

/// The subject a CSR's PEM request asks for: (CN, organizations), after checking its
/// signature.
pub(crate) fn requested_subject(csr: &Value) -> Result<(String, Vec<String>), String> {
    let pem = request_pem(csr)?;
    rcgen::CertificateSigningRequestParams::from_pem(&pem).map_err(|e| format!("spec.request: Invalid value: {e}"))?;
    let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| format!("spec.request: Invalid value: {e}"))?;
    let (_, req) = <x509_parser::certification_request::X509CertificationRequest as x509_parser::prelude::FromDer<'_, _>>::from_der(&der.contents)
        .map_err(|e| format!("spec.request: Invalid value: {e}"))?;
    let subject = &req.certification_request_info.subject;
    let cn = subject.iter_common_name().next().and_then(|c| c.as_str().ok()).unwrap_or("").to_string();
    let orgs = subject.iter_organization().filter_map(|o| o.as_str().ok().map(str::to_string)).collect();
    Ok((cn, orgs))
}

fn request_pem(csr: &Value) -> Result<String, String> {
    let raw = csr["spec"]["request"].as_str().ok_or("spec.request: Required value")?;
    let bytes = B64.decode(raw).map_err(|_| "spec.request: Invalid value: not base64".to_string())?;
    let pem = String::from_utf8(bytes).map_err(|_| "spec.request: Invalid value: PEM block type must be CERTIFICATE REQUEST".to_string())?;
    if !pem.contains("-----BEGIN CERTIFICATE REQUEST-----") {
        return Err("spec.request: Invalid value: PEM block type must be CERTIFICATE REQUEST".into());
    }
    Ok(pem)
}

/// Create: validates the request and records who made it (the server's, not the body's).
pub(crate) fn prepare_create(user: &User, csr: &mut Value) -> Result<(), ApiError> {
    let name = csr["metadata"]["name"].as_str().unwrap_or("").to_string();
    let invalid = |why: String| ApiError::new(422, "Invalid", format!("CertificateSigningRequest.certificates.k8s.io \"{name}\" is invalid: {why}"));
    requested_subject(csr).map_err(invalid)?;
    if csr["spec"]["signerName"].as_str().is_none_or(str::is_empty) {
        return Err(invalid("spec.signerName: Required value".into()));
    }
    if csr["spec"]["usages"].as_array().is_none_or(Vec::is_empty) {
        return Err(invalid("spec.usages: Required value".into()));
    }
    if let Some(s) = csr["spec"]["expirationSeconds"].as_i64()
        && s < MIN_SECONDS
    {
        return Err(invalid(format!("spec.expirationSeconds: Invalid value: {s}: may not specify a duration less than 600 seconds (10 minutes)")));
    }
    let spec = &mut csr["spec"];
    spec["username"] = json!(user.name);
    spec["groups"] = json!(user.groups);
    if user.uid.is_empty() {
        spec.as_object_mut().map(|m| m.remove("uid"));
    } else {
        spec["uid"] = json!(user.uid);
    }
    if user.extra.is_empty() {
        spec.as_object_mut().map(|m| m.remove("extra"));
    } else {
        spec["extra"] = json!(user.extra);
    }
    csr["status"] = json!({});
    Ok(())
}

fn has_condition(csr: &Value, t: &str) -> bool {
    csr["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == t && c["status"] != "False"))
}

/// Pure: why the built-in `signer` refuses to sign for this request (None: it signs).
pub(crate) fn refusal(signer: &str, cn: &str, orgs: &[String], usages: &[String]) -> Option<String> {
    let allowed: &[&str] = &["client auth", "digital signature", "key encipherment"];
    if let Some(u) = usages.iter().find(|u| !allowed.contains(&u.as_str())) {
        return Some(format!("invalid usage for client certificate: {u}"));
    }
    if !usages.iter().any(|u| u == "client auth") {
        return Some("missing required usage: client auth".into());
    }
    if cn.is_empty() {
        return Some("subject common name must not be empty".into());
    }
    if signer == KUBELET_CLIENT_SIGNER {
        if !cn.starts_with("system:node:") || cn.len() == "system:node:".len() {
            return Some("subject common name does not begin with system:node:".into());
        }
        if orgs != ["system:nodes"] {
            return Some("subject organization is not system:nodes".into());
        }
    }
    None
}

/// Issues the certificate a CSR asks for, signed by the CA.
fn issue(ca: &Issuer<'static, KeyPair>, csr: &Value, now: chrono::DateTime<chrono::Utc>) -> Result<String, String> {
    let pem = request_pem(csr)?;
    let mut req = rcgen::CertificateSigningRequestParams::from_pem(&pem).map_err(|e| e.to_string())?;
    let seconds = csr["spec"]["expirationSeconds"].as_i64().unwrap_or(DEFAULT_SECONDS).clamp(MIN_SECONDS, DEFAULT_SECONDS);
    let p = &mut req.params;
    p.is_ca = rcgen::IsCa::ExplicitNoCa;
    // Backdated as Kubernetes does, for clocks slightly behind.
    let from = now - chrono::Duration::minutes(5);
    let until = now + chrono::Duration::seconds(seconds);
    p.not_before = time::OffsetDateTime::from_unix_timestamp(from.timestamp()).map_err(|e| e.to_string())?;
    p.not_after = time::OffsetDateTime::from_unix_timestamp(until.timestamp()).map_err(|e| e.to_string())?;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.serial_number = Some(rcgen::SerialNumber::from_slice(uuid::Uuid::new_v4().as_bytes()));
    let cert = req.signed_by(ca).map_err(|e| e.to_string())?;
    Ok(cert.pem())
}

/// Whether `user` may approve or deny requests for `signer` (the verb `approve` on
/// `signers` named the signer or `DOMAIN/*`, as Kubernetes checks it).
fn may_approve(app: &super::App, user: &User, signer: &str) -> Result<(), ApiError> {
    let exact = Attributes::resource("approve", "certificates.k8s.io", "signers", "", "", signer);
    if matches!(app.authz.authorize(user, &exact), auth::Decision::Allow) {
        return Ok(());
    }
    let domain = signer.split('/').next().unwrap_or("");
    let wildcard = Attributes::resource("approve", "certificates.k8s.io", "signers", "", "", &format!("{domain}/*"));
    if matches!(app.authz.authorize(user, &wildcard), auth::Decision::Allow) {
        return Ok(());
    }
    Err(ApiError::forbidden(format!("certificatesigningrequests.certificates.k8s.io \"{}\" is forbidden: user not permitted to approve requests with signerName \"{signer}\"", "")))
}

/// PUT `/approval`: takes the conditions of `body` (nothing else), then signs an approved
/// request of a built-in signer.
pub(crate) async fn approve(app: &super::App, user: &User, name: &str, body: Value) -> Result<Value, ApiError> {
    let current = app.api.get(info(), None, name)?.value.clone();
    let signer = current["spec"]["signerName"].as_str().unwrap_or("").to_string();
    may_approve(app, user, &signer).map_err(|mut e| {
        e.message = format!("certificatesigningrequests.certificates.k8s.io \"{name}\" is forbidden: user not permitted to approve requests with signerName \"{signer}\"");
        e
    })?;
    write_approval(app, name, current, &signer, body).await
}

/// The CSR approving controller's approval (`controllers/csr_approving.rs`): an Approved
/// condition with `reason` and `message` on the request as it was at `resource_version`,
/// then the built-in signer's certificate, as [`approve`] writes them for a user.
pub(crate) async fn approve_as_controller(app: &super::App, name: &str, resource_version: &str, reason: &str, message: &str) -> Result<Value, ApiError> {
    let current = app.api.get(info(), None, name)?.value.clone();
    let signer = current["spec"]["signerName"].as_str().unwrap_or("").to_string();
    let mut conditions = current["status"]["conditions"].as_array().cloned().unwrap_or_default();
    conditions.push(json!({"type": "Approved", "status": "True", "reason": reason, "message": message}));
    let body = json!({"metadata": {"resourceVersion": resource_version}, "status": {"conditions": conditions}});
    write_approval(app, name, current, &signer, body).await
}

/// Writes the conditions of `body` over `current`, then signs an approved request of a
/// built-in signer.
async fn write_approval(app: &super::App, name: &str, current: Value, signer: &str, body: Value) -> Result<Value, ApiError> {
    let now = app.api.clock.now();
    let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut conditions = body["status"]["conditions"].as_array().cloned().unwrap_or_default();
    for c in &mut conditions {
        for k in ["lastUpdateTime", "lastTransitionTime"] {
            if c[k].is_null() {
                c[k] = json!(stamp);
            }
        }
        if c["status"].is_null() {
            c["status"] = json!("True");
        }
    }
    let approved = conditions.iter().any(|c| c["type"] == "Approved" && c["status"] == "True");
    let denied = conditions.iter().any(|c| c["type"] == "Denied" && c["status"] == "True");
    if approved && denied {
        return Err(ApiError::new(422, "Invalid", format!("CertificateSigningRequest.certificates.k8s.io \"{name}\" is invalid: status.conditions[1].type: Invalid value: \"Denied\": Approved and Denied conditions are mutually exclusive")));
    }
    if has_condition(&current, "Approved") && !approved {
        return Err(ApiError::new(422, "Invalid", format!("CertificateSigningRequest.certificates.k8s.io \"{name}\" is invalid: status.conditions: Forbidden: updates may not remove a condition of type \"Approved\"")));
    }
    let mut next = current.clone();
    if let Some(rv) = body["metadata"]["resourceVersion"].as_str() {
        next["metadata"]["resourceVersion"] = json!(rv);
    }
    next["status"]["conditions"] = json!(conditions);
    let written = app.api.update(info(), None, name, next, Part::Status, &WriteOptions::default()).await?;
    let mut obj = written.object;
    if approved && !denied && obj["status"]["certificate"].as_str().is_none_or(str::is_empty) && matches!(signer, CLIENT_SIGNER | KUBELET_CLIENT_SIGNER) {
        obj = sign(app, obj, signer, now).await?;
    }
    Ok(obj)
}

/// The built-in signer's answer: the certificate, or a Failed condition.
async fn sign(app: &super::App, mut obj: Value, signer: &str, now: chrono::DateTime<chrono::Utc>) -> Result<Value, ApiError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    let usages: Vec<String> = obj["spec"]["usages"].as_array().into_iter().flatten().filter_map(|u| u.as_str().map(str::to_string)).collect();
    let outcome = requested_subject(&obj).and_then(|(cn, orgs)| match refusal(signer, &cn, &orgs, &usages) {
        Some(why) => Err(why),
        None => issue(&app.ca, &obj, now),
    });
    let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    match outcome {
        Ok(pem) => obj["status"]["certificate"] = json!(B64.encode(pem)),
        Err(why) => {
            let failed = json!({"type": "Failed", "status": "True", "reason": "SignerValidationFailure", "message": why, "lastUpdateTime": stamp, "lastTransitionTime": stamp});
            match obj["status"]["conditions"].as_array_mut() {
                Some(c) => c.push(failed),
                None => obj["status"]["conditions"] = json!([failed]),
            }
        }
    }
    Ok(app.api.update(info(), None, &name, obj, Part::Status, &WriteOptions::default()).await?.object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_signers_check_usages_and_node_subjects() {
        let u = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(refusal(CLIENT_SIGNER, "alice", &u(&["devs"]), &u(&["client auth", "digital signature"])), None);
        assert_eq!(refusal(CLIENT_SIGNER, "alice", &[], &u(&["server auth", "client auth"])), Some("invalid usage for client certificate: server auth".into()));
        assert_eq!(refusal(CLIENT_SIGNER, "alice", &[], &u(&["digital signature"])), Some("missing required usage: client auth".into()));
        assert_eq!(refusal(KUBELET_CLIENT_SIGNER, "system:node:n1", &u(&["system:nodes"]), &u(&["client auth"])), None);
        assert!(refusal(KUBELET_CLIENT_SIGNER, "alice", &u(&["system:nodes"]), &u(&["client auth"])).is_some());
        assert!(refusal(KUBELET_CLIENT_SIGNER, "system:node:n1", &u(&["system:masters"]), &u(&["client auth"])).is_some());
    }

    #[test]
    fn an_approved_request_is_issued_by_the_ca_for_its_subject() {
        let ca_key = KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "test-ca");
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("key");
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name.push(rcgen::DnType::CommonName, "alice");
        p.distinguished_name.push(rcgen::DnType::OrganizationName, "devs");
        let req = p.serialize_request(&key).expect("csr").pem().expect("pem");
        let mut csr = json!({"metadata": {"name": "alice"}, "spec": {"request": B64.encode(&req), "signerName": CLIENT_SIGNER, "usages": ["client auth"], "expirationSeconds": 3600}});
        let admin = User::admin();
        prepare_create(&admin, &mut csr).expect("valid");
        assert_eq!(csr["spec"]["username"], "flotilla-admin");
        assert_eq!(requested_subject(&csr).expect("subject"), ("alice".to_string(), vec!["devs".to_string()]));
        let pem = issue(&issuer, &csr, chrono::Utc::now()).expect("issued");
        let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("pem");
        let u = auth::certificate_user(&der.contents).expect("user");
        assert_eq!(u.name, "alice");
        assert_eq!(u.groups, vec!["devs".to_string(), auth::AUTHENTICATED.to_string()]);
        let mut bad = json!({"metadata": {"name": "x"}, "spec": {"request": B64.encode("hello"), "signerName": CLIENT_SIGNER, "usages": ["client auth"]}});
        assert_eq!(prepare_create(&admin, &mut bad).expect_err("not a CSR").code, 422);
    }
}
