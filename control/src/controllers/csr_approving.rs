//! The CSR approving controller for nodes (Kubernetes' csrapproving, its sarApprover):
//! approves a CertificateSigningRequest for a node's client certificate when the user who
//! created it may, by a SubjectAccessReview-like check with the API server's authorizer:
//! - a renewal by the node itself (CN == spec.username): `create` of
//!   `certificatesigningrequests/selfnodeclient` in certificates.k8s.io (bound to
//!   `system:nodes`);
//! - any node's request (a bootstrap identity's): `.../nodeclient` (bound to
//!   `system:bootstrappers`; members of `system:masters` hold everything).
//!
//! A node's request: signer `kubernetes.io/kube-apiserver-client-kubelet`, subject CN
//! `system:node:NAME` and O exactly `system:nodes`, usages exactly {digital signature,
//! client auth} or {key encipherment, digital signature, client auth}. Anything else, and
//! any request already approved, denied or issued, is left alone; so is a request its
//! creator may not have approved (an administrator may still `kubectl certificate
//! approve` it). Approval goes through [`certificates::approve_as_controller`], which
//! signs at once.
//!
//! It needs the authorizer and the CA, so it runs with the API server's [`App`] as its own
//! task on the leader (`lib.rs`), not in [`super::run`]'s loop over the `Api`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::apiserver::auth::{Attributes, Decision, User};
use crate::apiserver::certificates::{self, KUBELET_CLIENT_SIGNER};
use crate::apiserver::{App, Shutdown, resources, service};

/// The condition reason Kubernetes' approver writes.
pub(crate) const REASON: &str = "AutoApproved";
const SELF_MESSAGE: &str = "Auto approving self kubelet client certificate after SubjectAccessReview.";
const NODE_MESSAGE: &str = "Auto approving kubelet client certificate after SubjectAccessReview.";

/// Approve one request.
#[derive(Debug, PartialEq)]
pub(crate) struct Step {
    pub name: String,
    pub resource_version: String,
    pub message: &'static str,
}

/// The user who created a request, as the server recorded it.
fn requester(csr: &Value) -> User {
    let strings = |v: &Value| -> Vec<String> { v.as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)).collect() };
    let spec = &csr["spec"];
    User {
        name: spec["username"].as_str().unwrap_or("").to_string(),
        uid: spec["uid"].as_str().unwrap_or("").to_string(),
        groups: strings(&spec["groups"]),
        extra: spec["extra"].as_object().into_iter().flatten().map(|(k, v)| (k.clone(), strings(v))).collect(),
    }
}

/// Pure: whether the request is for a node's client certificate; `Some(true)` when the node
/// itself asks (a renewal).
fn node_client_request(csr: &Value) -> Option<bool> {
    if csr["spec"]["signerName"] != KUBELET_CLIENT_SIGNER {
        return None;
    }
    let (cn, orgs) = certificates::requested_subject(csr).ok()?;
    if orgs != ["system:nodes"] || cn.strip_prefix("system:node:").is_none_or(str::is_empty) {
        return None;
    }
    let mut usages: Vec<&str> = csr["spec"]["usages"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    usages.sort_unstable();
    usages.dedup();
    if usages != ["client auth", "digital signature"] && usages != ["client auth", "digital signature", "key encipherment"] {
        return None;
    }
    Some(csr["spec"]["username"] == cn.as_str())
}

/// Pure: already approved, denied (in any status, as Kubernetes reads them) or issued.
fn settled(csr: &Value) -> bool {
    csr["status"]["certificate"].as_str().is_some_and(|c| !c.is_empty())
        || csr["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Approved" || c["type"] == "Denied")
}

/// Pure: the requests to approve, given `may(user, subresource)`: whether the user may
/// `create` that subresource of certificatesigningrequests.
pub(crate) fn plan(csrs: &[&Value], may: &dyn Fn(&User, &str) -> bool) -> Vec<Step> {
    let mut out = Vec::new();
    for csr in csrs {
        if settled(csr) {
            continue;
        }
        let Some(own) = node_client_request(csr) else { continue };
        let user = requester(csr);
        let message = if own && may(&user, "selfnodeclient") {
            SELF_MESSAGE
        } else if may(&user, "nodeclient") {
            NODE_MESSAGE
        } else {
            continue;
        };
        out.push(Step {
            name: csr["metadata"]["name"].as_str().unwrap_or("").to_string(),
            resource_version: csr["metadata"]["resourceVersion"].as_str().unwrap_or("").to_string(),
            message,
        });
    }
    out
}

/// Re-plans whenever the store changes, until `shutdown`.
pub(crate) async fn run(app: Arc<App>, shutdown: Shutdown) {
    let info = resources::find("certificates.k8s.io", "v1", "certificatesigningrequests").expect("served");
    let prefix = service::prefix(info, None);
    let may = |user: &User, sub: &str| {
        let a = Attributes::resource("create", "certificates.k8s.io", "certificatesigningrequests", sub, "", "");
        matches!(app.authz.authorize(user, &a), Decision::Allow)
    };
    let mut last_rev = u64::MAX;
    loop {
        let rev = app.api.store.revision();
        if rev != last_rev {
            last_rev = rev;
            let csrs = app.api.store.list(&prefix, None, None, &|_| true).0;
            let values: Vec<&Value> = csrs.iter().map(|o| &o.value).collect();
            for step in plan(&values, &may) {
                match certificates::approve_as_controller(&app, &step.name, &step.resource_version, REASON, step.message).await {
                    Ok(_) => tracing::info!(csr = %step.name, "approved a node's certificate signing request"),
                    Err(e) => {
                        tracing::debug!(error = %e, csr = %step.name, "approving a node's CSR failed; retrying");
                        last_rev = u64::MAX;
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use serde_json::json;

    use super::*;

    fn csr(name: &str, username: &str, groups: &[&str], cn: &str, orgs: &[&str], usages: &[&str]) -> Value {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        for o in orgs {
            p.distinguished_name.push(rcgen::DnType::OrganizationName, *o);
        }
        let pem = p.serialize_request(&key).expect("csr").pem().expect("pem");
        json!({"metadata": {"name": name, "resourceVersion": "7"}, "spec": {
            "request": base64::engine::general_purpose::STANDARD.encode(pem), "signerName": KUBELET_CLIENT_SIGNER,
            "usages": usages, "username": username, "groups": groups}, "status": {}})
    }

    const USAGES: &[&str] = &["digital signature", "key encipherment", "client auth"];
    const NODES: &[&str] = &["system:nodes"];

    /// Bootstrappers may create nodeclient requests, nodes selfnodeclient ones.
    fn may(user: &User, sub: &str) -> bool {
        match sub {
            "nodeclient" => user.in_group("system:bootstrappers") || user.in_group("system:masters"),
            "selfnodeclient" => user.in_group("system:nodes"),
            _ => false,
        }
    }

    #[test]
    fn node_requests_are_approved_for_whoever_may_create_them() {
        let boot = &["system:bootstrappers", "system:authenticated"];
        let node = &["system:nodes", "system:authenticated"];
        let cases: Vec<(Value, Option<&str>)> = vec![
            (csr("first", "system:bootstrap:abc", boot, "system:node:n1", NODES, USAGES), Some(NODE_MESSAGE)),
            (csr("admin", "flotilla-admin", &["system:masters"], "system:node:n1", NODES, &["digital signature", "client auth"]), Some(NODE_MESSAGE)),
            (csr("renewal", "system:node:n1", node, "system:node:n1", NODES, USAGES), Some(SELF_MESSAGE)),
            // A node asking for another node's certificate, a user without the permission.
            (csr("other", "system:node:n1", node, "system:node:n2", NODES, USAGES), None),
            (csr("alice", "alice", &["devs"], "system:node:n1", NODES, USAGES), None),
            // Not a node's client certificate.
            (csr("cn", "system:bootstrap:abc", boot, "alice", NODES, USAGES), None),
            (csr("org", "system:bootstrap:abc", boot, "system:node:n1", &["system:masters"], USAGES), None),
            (csr("usage", "system:bootstrap:abc", boot, "system:node:n1", NODES, &["client auth", "server auth"]), None),
        ];
        for (c, want) in &cases {
            let got = plan(&[c], &may);
            assert_eq!(got.first().map(|s| s.message), *want, "{}", c["metadata"]["name"]);
        }
        let mut other_signer = csr("signer", "system:bootstrap:abc", boot, "system:node:n1", NODES, USAGES);
        other_signer["spec"]["signerName"] = json!("kubernetes.io/kube-apiserver-client");
        assert!(plan(&[&other_signer], &may).is_empty());
        let first = &cases[0].0;
        assert_eq!(plan(&[first], &may), vec![Step { name: "first".into(), resource_version: "7".into(), message: NODE_MESSAGE }]);
    }

    #[test]
    fn settled_requests_are_left_alone() {
        let boot = &["system:bootstrappers"];
        let mut approved = csr("a", "system:bootstrap:abc", boot, "system:node:n1", NODES, USAGES);
        approved["status"]["conditions"] = json!([{"type": "Approved", "status": "True"}]);
        let mut denied = csr("d", "system:bootstrap:abc", boot, "system:node:n1", NODES, USAGES);
        denied["status"]["conditions"] = json!([{"type": "Denied", "status": "True"}]);
        let mut issued = csr("i", "system:bootstrap:abc", boot, "system:node:n1", NODES, USAGES);
        issued["status"]["certificate"] = json!("LS0t");
        assert!(plan(&[&approved, &denied, &issued], &may).is_empty());
    }
}
