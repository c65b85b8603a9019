//! ServiceAccount tokens: JWTs (ES256) signed by the cluster's service-account key,
//! `pki/sa.key` in the data dir (copied to members that join, so any member verifies
//! what another issued).
//!
//! Two kinds, with Kubernetes' claims:
//! - bound tokens from the TokenRequest API (`kubectl create token`, the projected token
//!   of a pod): `iss`, `sub`, `aud`, `iat`, `nbf`, `exp = iat + expirationSeconds`, `jti`
//!   and `kubernetes.io: {namespace, serviceaccount: {name, uid}, pod|secret: {name, uid}}`;
//! - legacy tokens of `kubernetes.io/service-account-token` Secrets: issuer
//!   `kubernetes/serviceaccount` and the `kubernetes.io/serviceaccount/*` claims, no expiry.
//!
//! A token is accepted only while what it names exists with the same uid: deleting the
//! ServiceAccount (or the pod or Secret it is bound to) revokes it.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};

use crate::apiserver::tls::write_private;

/// The issuer of bound tokens, also their default audience (kube-apiserver's
/// `--service-account-issuer` default in kubeadm and k3s clusters).
pub(crate) const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The issuer of legacy Secret-based tokens.
pub(crate) const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
/// The TokenRequest API's default and minimum durations (Kubernetes').
pub(crate) const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
pub(crate) const MIN_EXPIRATION_SECONDS: i64 = 600;
/// Kubernetes caps expirationSeconds at 2^32 seconds.
pub(crate) const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

/// Signs and verifies ServiceAccount tokens.
pub(crate) struct Signer {
    key: EcdsaKeyPair,
    kid: String,
    rng: SystemRandom,
}

impl Signer {
    /// Loads `pki/sa.key` (a PKCS#8 P-256 key, PEM), making it at first start.
    pub(crate) fn load_or_create(pki: &Path) -> anyhow::Result<Signer> {
        let path = pki.join("sa.key");
        if !path.exists() {
            let key = rcgen::KeyPair::generate()?;
            write_private(&path, &key.serialize_pem())?;
        }
        Signer::from_pem(&std::fs::read_to_string(&path)?)
    }

    pub(crate) fn from_pem(pem: &str) -> anyhow::Result<Signer> {
        let der = rcgen::KeyPair::from_pem(pem)?.serialize_der();
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng).map_err(|e| anyhow::anyhow!("sa.key: {e}"))?;
        use sha2::Digest as _;
        let kid = B64.encode(sha2::Sha256::digest(key.public_key().as_ref()));
        Ok(Signer { key, kid, rng })
    }

    /// A signed JWT carrying `claims`.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "kid": self.kid});
        let mut out = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let sig = self.key.sign(&self.rng, out.as_bytes()).expect("ECDSA signing with a valid key");
        out.push('.');
        out.push_str(&B64.encode(sig.as_ref()));
        out
    }

    /// The claims of `token` if this signer signed it (nothing else is checked here).
    pub(crate) fn verify(&self, token: &str) -> Option<Value> {
        let mut parts = token.split('.');
        let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value = serde_json::from_slice(&B64.decode(h).ok()?).ok()?;
        if header["alg"] != "ES256" {
            return None;
        }
        let sig = B64.decode(s).ok()?;
        let public = signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref());
        public.verify(format!("{h}.{c}").as_bytes(), &sig).ok()?;
        serde_json::from_slice(&B64.decode(c).ok()?).ok()
    }
}


/// What a bound token is bound to, besides its ServiceAccount.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Bound {
    /// "Pod" or "Secret".
    pub kind: String,
    pub name: String,
    pub uid: String,
    /// The pod's node, for pod-bound tokens (claim `kubernetes.io.node`).
    pub node: Option<(String, String)>,
}

/// The claims of a bound token issued at `now` (seconds since the epoch).
#[allow(clippy::too_many_arguments, reason = "every claim of a bound token")]
pub(crate) fn bound_claims(ns: &str, sa: &str, sa_uid: &str, audiences: &[String], now: i64, expiration_seconds: i64, bound: Option<&Bound>, jti: &str) -> Value {
    let mut k8s = json!({"namespace": ns, "serviceaccount": {"name": sa, "uid": sa_uid}});
    if let Some(b) = bound {
        let key = if b.kind == "Pod" { "pod" } else { "secret" };
        k8s[key] = json!({"name": b.name, "uid": b.uid});
        if let Some((node, node_uid)) = &b.node {
            k8s["node"] = json!({"name": node, "uid": node_uid});
        }
    }
    json!({
        "aud": audiences,
        "exp": now + expiration_seconds,
        "iat": now,
        "iss": ISSUER,
        "jti": jti,
        "kubernetes.io": k8s,
        "nbf": now,
        "sub": format!("system:serviceaccount:{ns}:{sa}"),
    })
}

/// The claims of a legacy Secret-based token.
pub(crate) fn legacy_claims(ns: &str, sa: &str, sa_uid: &str, secret: &str) -> Value {
    json!({
        "iss": LEGACY_ISSUER,
        "kubernetes.io/serviceaccount/namespace": ns,
        "kubernetes.io/serviceaccount/secret.name": secret,
        "kubernetes.io/serviceaccount/service-account.name": sa,
        "kubernetes.io/serviceaccount/service-account.uid": sa_uid,
        "sub": format!("system:serviceaccount:{ns}:{sa}"),
    })
}

/// What a verified token claims, before the objects it names are checked.
#[derive(Debug, PartialEq)]
pub(crate) struct Claimed {
    pub namespace: String,
    pub service_account: String,
    pub service_account_uid: String,
    pub bound: Option<Bound>,
    /// The legacy Secret the token came from.
    pub secret: Option<String>,
    pub jti: Option<String>,
}

/// Why a token is refused (logged, never sent: a 401 says only "Unauthorized").
#[derive(Debug, PartialEq, thiserror::Error)]
pub(crate) enum Refused {
    #[error("unknown issuer")]
    Issuer,
    #[error("token audiences do not include {ISSUER}")]
    Audience,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("malformed claims")]
    Malformed,
}

/// Checks the time and audience claims of a token at `now` and reads who it names.
pub(crate) fn check_claims(c: &Value, now: i64) -> Result<Claimed, Refused> {
    let s = |v: &Value| v.as_str().map(str::to_string).ok_or(Refused::Malformed);
    match c["iss"].as_str() {
        Some(LEGACY_ISSUER) => {
            let sub = s(&c["sub"])?;
            let ns = s(&c["kubernetes.io/serviceaccount/namespace"])?;
            let sa = s(&c["kubernetes.io/serviceaccount/service-account.name"])?;
            if sub != format!("system:serviceaccount:{ns}:{sa}") {
                return Err(Refused::Malformed);
            }
            Ok(Claimed {
                namespace: ns,
                service_account: sa,
                service_account_uid: s(&c["kubernetes.io/serviceaccount/service-account.uid"])?,
                bound: None,
                secret: Some(s(&c["kubernetes.io/serviceaccount/secret.name"])?),
                jti: None,
            })
        }
        Some(ISSUER) => {
            let aud_ok = match &c["aud"] {
                Value::String(a) => a == ISSUER,
                Value::Array(a) => a.iter().any(|x| x == ISSUER),
                _ => false,
            };
            if !aud_ok {
                return Err(Refused::Audience);
            }
            let exp = c["exp"].as_i64().ok_or(Refused::Malformed)?;
            if now >= exp {
                return Err(Refused::Expired);
            }
            // Kubernetes allows a minute of clock skew on nbf.
            if c["nbf"].as_i64().is_some_and(|nbf| now + 60 < nbf) {
                return Err(Refused::NotYetValid);
            }
            let k = &c["kubernetes.io"];
            let ns = s(&k["namespace"])?;
            let sa = s(&k["serviceaccount"]["name"])?;
            if s(&c["sub"])? != format!("system:serviceaccount:{ns}:{sa}") {
                return Err(Refused::Malformed);
            }
            let bound = [("pod", "Pod"), ("secret", "Secret")].iter().find(|(k2, _)| k[*k2].is_object()).map(|(k2, kind)| Bound {
                kind: kind.to_string(),
                name: k[*k2]["name"].as_str().unwrap_or_default().to_string(),
                uid: k[*k2]["uid"].as_str().unwrap_or_default().to_string(),
                node: k["node"]["name"].as_str().map(|n| (n.to_string(), k["node"]["uid"].as_str().unwrap_or_default().to_string())),
            });
            Ok(Claimed {
                namespace: ns,
                service_account: sa,
                service_account_uid: s(&k["serviceaccount"]["uid"])?,
                bound,
                secret: None,
                jti: c["jti"].as_str().map(str::to_string),
            })
        }
        _ => Err(Refused::Issuer),
    }
}

/// Whether `token` looks like a JWT (three base64url parts), so the admin token is not
/// parsed as one.
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.bytes().filter(|b| *b == b'.').count() == 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::from_pem(&rcgen::KeyPair::generate().expect("key").serialize_pem()).expect("signer")
    }

    #[test]
    fn a_signed_token_verifies_and_a_tampered_or_foreign_one_does_not() {
        let s = signer();
        let claims = bound_claims("ns", "sa", "u1", &[ISSUER.to_string()], 1000, 600, None, "j");
        let t = s.sign(&claims);
        assert!(looks_like_jwt(&t));
        assert_eq!(s.verify(&t), Some(claims.clone()));
        // Another key's signature.
        assert_eq!(signer().verify(&t), None);
        // A changed payload.
        let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
        let mut evil = claims.clone();
        evil["sub"] = json!("system:serviceaccount:kube-system:admin");
        parts[1] = B64.encode(evil.to_string());
        assert_eq!(s.verify(&parts.join(".")), None);
        // alg none.
        parts[0] = B64.encode(json!({"alg": "none"}).to_string());
        parts[2] = String::new();
        assert_eq!(s.verify(&parts.join(".")), None);
    }

    #[test]
    fn claims_are_checked_for_time_audience_and_subject() {
        let pod = Bound { kind: "Pod".into(), name: "p".into(), uid: "pu".into(), node: Some(("n1".into(), "nu".into())) };
        let c = bound_claims("ns", "sa", "u1", &[ISSUER.to_string()], 1000, 600, Some(&pod), "j");
        assert_eq!(c["exp"], 1600);
        assert_eq!(c["kubernetes.io"]["pod"]["name"], "p");
        let got = check_claims(&c, 1599).expect("valid");
        assert_eq!(got.service_account, "sa");
        assert_eq!(got.bound, Some(pod));
        assert_eq!(check_claims(&c, 1600), Err(Refused::Expired));
        assert_eq!(check_claims(&c, 900), Err(Refused::NotYetValid));
        let other = bound_claims("ns", "sa", "u1", &["vault".to_string()], 1000, 600, None, "j");
        assert_eq!(check_claims(&other, 1001), Err(Refused::Audience));
        let mut lying = c.clone();
        lying["sub"] = json!("system:serviceaccount:kube-system:sa");
        assert_eq!(check_claims(&lying, 1001), Err(Refused::Malformed));
        let legacy = legacy_claims("ns", "sa", "u1", "sa-token");
        let got = check_claims(&legacy, i64::MAX - 1).expect("legacy tokens do not expire");
        assert_eq!(got.secret.as_deref(), Some("sa-token"));
        assert_eq!(check_claims(&json!({"iss": "someone"}), 0), Err(Refused::Issuer));
    }
}
