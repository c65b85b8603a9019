//! Printer of certificates.k8s.io/v1 CertificateSigningRequest (`kubectl get csr`).
//!
//! Invariant: `csr_cells` returns one cell per column of `CSR_COLUMNS`, in order.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{AGE, Column, NAME, age, col, human_duration, list, name, text};

#[rustfmt::skip]
pub(super) const CSR_COLUMNS: &[Column] = &[
    NAME,
    AGE,
    col("SignerName", "string", "signerName indicates the requested signer, and is a qualified name."),
    col("Requestor", "string", "username contains the name of the user that created the CertificateSigningRequest."),
    col("RequestedDuration", "string", "expirationSeconds is the requested duration of validity of the issued certificate."),
    col("Condition", "string", "conditions applied to the request. Known conditions are \"Approved\", \"Denied\", and \"Failed\"."),
];

/// Kubernetes' condition summary: Denied, Approved or Pending, then ",Failed" and
/// ",Issued" as they apply.
fn condition(csr: &Value) -> String {
    let has = |t: &str| list(csr, &["status", "conditions"]).iter().any(|c| text(c, &["type"]) == t);
    let mut s = if has("Denied") { "Denied" } else if has("Approved") { "Approved" } else { "Pending" }.to_string();
    if has("Failed") {
        s.push_str(",Failed");
    }
    if !text(csr, &["status", "certificate"]).is_empty() {
        s.push_str(",Issued");
    }
    s
}

pub(super) fn csr_cells(csr: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let duration = match csr["spec"]["expirationSeconds"].as_i64() {
        Some(s) => human_duration(chrono::Duration::seconds(s)),
        None => "<none>".into(),
    };
    vec![name(csr).into(), age(csr, now), text(csr, &["spec", "signerName"]).into(), text(csr, &["spec", "username"]).into(), duration.into(), condition(csr).into()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csr_rows_summarise_conditions_as_kubectl_shows_them() {
        let now = Utc::now();
        let mut csr = json!({"metadata": {"name": "alice", "creationTimestamp": now.to_rfc3339()}, "spec": {"signerName": "kubernetes.io/kube-apiserver-client", "username": "admin", "expirationSeconds": 86400}});
        assert_eq!(csr_cells(&csr, now), vec![json!("alice"), json!("0s"), json!("kubernetes.io/kube-apiserver-client"), json!("admin"), json!("24h"), json!("Pending")]);
        csr["status"] = json!({"conditions": [{"type": "Approved"}], "certificate": "Zm9v"});
        assert_eq!(csr_cells(&csr, now)[5], json!("Approved,Issued"));
        csr["status"] = json!({"conditions": [{"type": "Denied"}, {"type": "Failed"}]});
        assert_eq!(csr_cells(&csr, now)[5], json!("Denied,Failed"));
    }
}
