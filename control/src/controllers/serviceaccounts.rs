//! ServiceAccount controllers (Kubernetes' serviceaccounts, root-ca-cert-publisher and
//! tokens controllers, in one pure plan): every active namespace gets ServiceAccount
//! `default` and ConfigMap `kube-root-ca.crt` (the cluster CA, what the projected token
//! volume mounts as ca.crt); a Secret of type kubernetes.io/service-account-token gets
//! its account's legacy token, CA and namespace, and is deleted with its account.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::objects::{controller_write_options, deleting, ignore_transient, info, name, uid};
use crate::apiserver::service::DeleteOptions;
use crate::apiserver::service_accounts::ROOT_CA_CONFIGMAP;
use crate::apiserver::tokens::{self, Signer};
use crate::apiserver::{Api, Shutdown};

pub(crate) const TOKEN_TYPE: &str = "kubernetes.io/service-account-token";
const SA_NAME: &str = "kubernetes.io/service-account.name";
const SA_UID: &str = "kubernetes.io/service-account.uid";

#[derive(Debug, PartialEq)]
pub(crate) enum Step {
    CreateDefaultAccount { namespace: String },
    /// Create (`exists` false) or rewrite the namespace's kube-root-ca.crt.
    PublishCa { namespace: String, exists: bool },
    /// Fill a token Secret for the account (name, uid).
    PopulateToken { namespace: String, secret: String, account: String, account_uid: String },
    /// The token Secret's account is gone.
    DeleteToken { namespace: String, secret: String },
}

/// What the plan observes.
pub(crate) struct Observed<'a> {
    pub namespaces: &'a [&'a Value],
    pub accounts: &'a [&'a Value],
    pub config_maps: &'a [&'a Value],
    pub secrets: &'a [&'a Value],
    pub ca_pem: &'a str,
}

fn ns_of(v: &Value) -> &str {
    v["metadata"]["namespace"].as_str().unwrap_or("")
}

/// Pure.
pub(crate) fn plan(o: &Observed<'_>) -> Vec<Step> {
    let mut steps = Vec::new();
    for ns in o.namespaces.iter().filter(|n| !deleting(n)) {
        let n = name(ns);
        if !o.accounts.iter().any(|a| ns_of(a) == n && name(a) == "default") {
            steps.push(Step::CreateDefaultAccount { namespace: n.to_string() });
        }
        match o.config_maps.iter().find(|c| ns_of(c) == n && name(c) == ROOT_CA_CONFIGMAP) {
            None => steps.push(Step::PublishCa { namespace: n.to_string(), exists: false }),
            Some(c) if c["data"]["ca.crt"].as_str() != Some(o.ca_pem) => steps.push(Step::PublishCa { namespace: n.to_string(), exists: true }),
            Some(_) => {}
        }
    }
    for s in o.secrets.iter().filter(|s| s["type"] == TOKEN_TYPE && !deleting(s)) {
        let ns = ns_of(s);
        let Some(account) = s["metadata"]["annotations"][SA_NAME].as_str() else { continue };
        let found = o.accounts.iter().find(|a| ns_of(a) == ns && name(a) == account && !deleting(a));
        let wanted_uid = s["metadata"]["annotations"][SA_UID].as_str();
        match found {
            Some(a) if wanted_uid.is_none_or(|u| u == uid(a)) => {
                if s["data"]["token"].as_str().is_none_or(str::is_empty) {
                    steps.push(Step::PopulateToken { namespace: ns.to_string(), secret: name(s).to_string(), account: account.to_string(), account_uid: uid(a).to_string() });
                }
            }
            // Never filled, and its account is missing: it may yet be created.
            None if s["data"]["token"].as_str().is_none_or(str::is_empty) && wanted_uid.is_none() => {}
            _ => steps.push(Step::DeleteToken { namespace: ns.to_string(), secret: name(s).to_string() }),
        }
    }
    steps
}

/// Runs the ServiceAccount controllers until shutdown (on the leader).
pub(crate) async fn run(api: Api, signer: Arc<Signer>, ca_pem: String, shutdown: Shutdown) {
    let mut last_rev = u64::MAX;
    loop {
        let rev = api.store.revision();
        if rev != last_rev {
            last_rev = rev;
            if let Err(e) = pass(&api, &signer, &ca_pem).await {
                tracing::debug!(error = %e, "service account controller pass failed");
                last_rev = u64::MAX;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

pub(crate) async fn pass(api: &Api, signer: &Signer, ca_pem: &str) -> Result<(), crate::apiserver::error::ApiError> {
    let list = |prefix: &str| api.store.list(prefix, None, None, &|_| true).0;
    let (namespaces, accounts, config_maps, secrets) = (list("core/namespaces/"), list("core/serviceaccounts/"), list("core/configmaps/"), list("core/secrets/"));
    fn refs(v: &[Arc<crate::store::Stored>]) -> Vec<&Value> {
        v.iter().map(|s| &s.value).collect()
    }
    let (n, a, c, s) = (refs(&namespaces), refs(&accounts), refs(&config_maps), refs(&secrets));
    let observed = Observed { namespaces: &n, accounts: &a, config_maps: &c, secrets: &s, ca_pem };
    let opts = controller_write_options();
    for step in plan(&observed) {
        match step {
            Step::CreateDefaultAccount { namespace } => {
                let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": namespace}});
                ignore_exists(api.create(info("", "serviceaccounts"), Some(&namespace), sa, &opts).await)?;
            }
            Step::PublishCa { namespace, exists } => {
                let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": namespace, "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}}, "data": {"ca.crt": ca_pem}});
                let cms = info("", "configmaps");
                if exists {
                    ignore_transient(api.update(cms, Some(&namespace), ROOT_CA_CONFIGMAP, cm, crate::apiserver::service::Part::Main, &opts).await)?;
                } else {
                    ignore_exists(api.create(cms, Some(&namespace), cm, &opts).await)?;
                }
            }
            Step::PopulateToken { namespace, secret, account, account_uid } => {
                let secrets_info = info("", "secrets");
                let Ok(current) = api.get(secrets_info, Some(&namespace), &secret) else { continue };
                let mut obj = current.value.clone();
                let token = signer.sign(&tokens::legacy_claims(&namespace, &account, &account_uid, &secret));
                obj["metadata"]["annotations"][SA_UID] = json!(account_uid);
                obj["data"]["token"] = json!(B64.encode(&token));
                obj["data"]["ca.crt"] = json!(B64.encode(ca_pem));
                obj["data"]["namespace"] = json!(B64.encode(&namespace));
                ignore_transient(api.update(secrets_info, Some(&namespace), &secret, obj, crate::apiserver::service::Part::Main, &opts).await)?;
            }
            Step::DeleteToken { namespace, secret } => {
                let r = api.delete(info("", "secrets"), Some(&namespace), &secret, &DeleteOptions::default()).await;
                if let Err(e) = r
                    && e.code != 404
                {
                    ignore_transient(Err::<(), _>(e))?;
                }
            }
        }
    }
    Ok(())
}

fn ignore_exists<T>(r: Result<T, crate::apiserver::error::ApiError>) -> Result<(), crate::apiserver::error::ApiError> {
    match r {
        Err(e) if e.code == 409 || e.code == 403 => Ok(()),
        other => ignore_transient(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(ns: &str, name: &str, extra: Value) -> Value {
        let mut v = json!({"metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}")}});
        if let (Some(a), Some(b)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in b {
                if k == "metadata" {
                    for (mk, mv) in x.as_object().into_iter().flatten() {
                        a["metadata"][mk] = mv.clone();
                    }
                } else {
                    a.insert(k.clone(), x.clone());
                }
            }
        }
        v
    }

    #[test]
    fn every_active_namespace_gets_a_default_account_and_the_ca() {
        let ns = [json!({"metadata": {"name": "a"}}), json!({"metadata": {"name": "b"}}), json!({"metadata": {"name": "gone", "deletionTimestamp": "x"}})];
        let sa = [obj("a", "default", json!({}))];
        let cms = [obj("a", ROOT_CA_CONFIGMAP, json!({"data": {"ca.crt": "OLD"}})), obj("b", ROOT_CA_CONFIGMAP, json!({"data": {"ca.crt": "CA"}}))];
        let (n, a, c): (Vec<&Value>, Vec<&Value>, Vec<&Value>) = (ns.iter().collect(), sa.iter().collect(), cms.iter().collect());
        let steps = plan(&Observed { namespaces: &n, accounts: &a, config_maps: &c, secrets: &[], ca_pem: "CA" });
        assert_eq!(steps, vec![Step::PublishCa { namespace: "a".into(), exists: true }, Step::CreateDefaultAccount { namespace: "b".into() }]);
    }

    #[test]
    fn token_secrets_are_filled_for_their_account_and_deleted_without_it() {
        let sa = [obj("a", "robot", json!({}))];
        let ann = |name: &str, uid: Option<&str>| {
            let mut a = json!({SA_NAME: name});
            if let Some(u) = uid {
                a[SA_UID] = json!(u);
            }
            json!({"type": TOKEN_TYPE, "metadata": {"annotations": a}})
        };
        let secrets = [
            obj("a", "fresh", ann("robot", None)),
            obj("a", "waiting", ann("later", None)),
            obj("a", "orphan", {
                let mut x = ann("gone", Some("uid-gone"));
                x["data"] = json!({"token": "dG9r"});
                x
            }),
            obj("a", "recreated", ann("robot", Some("uid-old"))),
            obj("a", "plain", json!({"type": "Opaque"})),
        ];
        let (a, s): (Vec<&Value>, Vec<&Value>) = (sa.iter().collect(), secrets.iter().collect());
        let steps = plan(&Observed { namespaces: &[], accounts: &a, config_maps: &[], secrets: &s, ca_pem: "CA" });
        assert_eq!(
            steps,
            vec![
                Step::PopulateToken { namespace: "a".into(), secret: "fresh".into(), account: "robot".into(), account_uid: "uid-robot".into() },
                Step::DeleteToken { namespace: "a".into(), secret: "orphan".into() },
                Step::DeleteToken { namespace: "a".into(), secret: "recreated".into() },
            ]
        );
    }
}
