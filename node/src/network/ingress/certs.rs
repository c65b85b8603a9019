//! The certificates of the HTTPS listener: the served Ingresses' `tls` entries resolved to
//! their `kubernetes.io/tls` Secrets ([`Certs::build`], pure: parsing only), picked per
//! handshake by SNI ([`SniResolver`]), so a changed or rotated Secret is used by the next
//! handshake without a restart.
//!
//! Invariants:
//! - a Secret counts only if it exists in the Ingress's namespace, is of type
//!   `kubernetes.io/tls`, and its `tls.crt` (PEM chain, leaf first) and `tls.key` (PEM
//!   PKCS#8, PKCS#1 or SEC1) parse and match; otherwise its entry is dropped and reported
//!   as a [`SecretProblem`] naming the Secret, and other entries are unaffected;
//! - SNI matches case-insensitively: an exact host first, else a wildcard entry covering
//!   exactly one label; for one host the oldest Ingress's valid entry wins;
//! - a client whose SNI no entry names (or that sends none) gets the certificate of an
//!   entry without hosts, else the listener's self-signed fallback, as ingress-nginx
//!   serves its fake certificate: such a client can still connect if it does not verify.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::State;
use super::rules::{IngressRef, TlsRef};

/// The Secret type an Ingress's TLS Secret must have.
const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// What is wrong with the Secret a served Ingress names for TLS.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SecretProblem {
    pub ingress: IngressRef,
    pub secret: String,
    pub why: String,
}

impl SecretProblem {
    /// The Warning event's message.
    pub(crate) fn message(&self) -> String {
        format!("TLS Secret {}/{} is not used: {}", self.ingress.namespace, self.secret, self.why)
    }
}

/// The certificates by SNI.
#[derive(Debug, Default)]
pub(crate) struct Certs {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// By the suffix after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// The first valid entry without hosts.
    any: Option<Arc<CertifiedKey>>,
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate and key of `secret`, or why they cannot be used.
fn load(secret: Option<&Secret>, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, String> {
    let Some(secret) = secret else { return Err("the Secret does not exist".into()) };
    let type_ = secret.type_.as_deref().unwrap_or("Opaque");
    if type_ != TLS_SECRET_TYPE {
        return Err(format!("its type is {type_}, not {TLS_SECRET_TYPE}"));
    }
    let data = secret.data.as_ref();
    let field = |k: &str| data.and_then(|d| d.get(k)).map(|b| b.0.as_slice()).filter(|b| !b.is_empty()).ok_or(format!("it has no {k}"));
    let (crt, key) = (field("tls.crt")?, field("tls.key")?);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(crt).collect::<Result<_, _>>().map_err(|e| format!("tls.crt is not PEM: {e}"))?;
    if chain.is_empty() {
        return Err("tls.crt holds no PEM certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("tls.key holds no PEM private key: {e}"))?;
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| format!("tls.crt and tls.key are unusable together: {e}"))?;
    Ok(Arc::new(certified))
}

impl Certs {
    /// The certificates of `tls` (oldest Ingress first) from `secrets`, and what is wrong
    /// with the Secrets that cannot be used.
    pub(crate) fn build(tls: &[TlsRef], secrets: &[Arc<Secret>]) -> (Certs, Vec<SecretProblem>) {
        let provider = provider();
        let by_name: HashMap<(&str, &str), &Secret> = secrets
            .iter()
            .filter_map(|s| Some(((s.metadata.namespace.as_deref().unwrap_or("default"), s.metadata.name.as_deref()?), &**s)))
            .collect();
        let mut loaded: HashMap<(&str, &str), Result<Arc<CertifiedKey>, String>> = HashMap::new();
        let mut certs = Certs::default();
        let mut problems = Vec::new();
        for entry in tls {
            let key = (entry.ingress.namespace.as_str(), entry.secret.as_str());
            let result = loaded.entry(key).or_insert_with(|| load(by_name.get(&key).copied(), &provider));
            let cert = match result {
                Ok(c) => c.clone(),
                Err(why) => {
                    problems.push(SecretProblem { ingress: entry.ingress.clone(), secret: entry.secret.clone(), why: why.clone() });
                    continue;
                }
            };
            if entry.hosts.is_empty() {
                certs.any.get_or_insert(cert.clone());
            }
            for host in &entry.hosts {
                let slot = match host.strip_prefix("*.") {
                    Some(suffix) => certs.wildcard.entry(suffix.to_string()),
                    None => certs.exact.entry(host.clone()),
                };
                slot.or_insert_with(|| cert.clone());
            }
        }
        (certs, problems)
    }

    /// The certificate for a client that sent `sni` (None: not found).
    pub(crate) fn lookup(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let by_name = sni.map(|s| s.trim_end_matches('.').to_ascii_lowercase()).and_then(|sni| {
            self.exact.get(&sni).or_else(|| sni.split_once('.').filter(|(label, _)| !label.is_empty()).and_then(|(_, suffix)| self.wildcard.get(suffix))).cloned()
        });
        by_name.or_else(|| self.any.clone())
    }
}

/// A self-signed certificate for clients no entry names.
pub(crate) fn fallback() -> anyhow::Result<Arc<CertifiedKey>> {
    let cert = rcgen::generate_simple_self_signed(vec!["flotilla-ingress.invalid".to_string()])?;
    let key = PrivateKeyDer::try_from(cert.signing_key.serialize_der()).map_err(|e| anyhow::anyhow!("fallback key: {e}"))?;
    Ok(Arc::new(CertifiedKey::from_der(vec![cert.cert.der().clone()], key, &provider())?))
}

/// Picks each handshake's certificate from the current [`Certs`].
#[derive(Debug)]
pub(crate) struct SniResolver {
    pub state: Arc<State>,
    pub fallback: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.state.certs().lookup(hello.server_name()).unwrap_or_else(|| self.fallback.clone()))
    }
}

/// The HTTPS listener's TLS configuration: ALPN h2 and http/1.1.
pub(crate) fn server_config(resolver: SniResolver) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?.with_no_client_auth().with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kubernetes.io/tls Secret `name` holding a fresh self-signed certificate for `host`.
    fn tls_secret(name: &str, host: &str) -> Arc<Secret> {
        let cert = rcgen::generate_simple_self_signed(vec![host.to_string()]).expect("cert");
        let data = serde_json::json!({"tls.crt": b64(cert.cert.pem().as_bytes()), "tls.key": b64(cert.signing_key.serialize_pem().as_bytes())});
        Arc::new(serde_json::from_value(serde_json::json!({"metadata": {"name": name, "namespace": "default"}, "type": "kubernetes.io/tls", "data": data})).expect("secret"))
    }

    fn b64(b: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    fn entry(ingress: &str, hosts: &[&str], secret: &str) -> TlsRef {
        TlsRef {
            ingress: IngressRef { namespace: "default".into(), name: ingress.into(), uid: ingress.into() },
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            secret: secret.into(),
        }
    }

    #[test]
    fn sni_picks_exact_then_one_label_wildcard_then_the_hostless_entry() {
        let (a, wild, any) = (tls_secret("a", "a.test"), tls_secret("wild", "*.w.test"), tls_secret("any", "any"));
        let tls = [entry("i", &["a.test"], "a"), entry("i", &["*.w.test"], "wild"), entry("i", &[], "any")];
        let (certs, problems) = Certs::build(&tls, &[a.clone(), wild.clone(), any.clone()]);
        assert!(problems.is_empty(), "{problems:?}");
        let leaf = |sni: Option<&str>| certs.lookup(sni).map(|c| c.cert[0].clone());
        let der = |s: &Secret| CertificateDer::pem_slice_iter(&s.data.as_ref().expect("data")["tls.crt"].0).next().expect("pem").expect("der");
        assert_eq!(leaf(Some("A.test")), Some(der(&a)));
        assert_eq!(leaf(Some("x.w.test")), Some(der(&wild)));
        assert_eq!(leaf(Some("y.x.w.test")), Some(der(&any)), "a wildcard covers one label");
        assert_eq!(leaf(None), Some(der(&any)));
        let (only_a, _) = Certs::build(&tls[..1], &[a]);
        assert!(only_a.lookup(Some("b.test")).is_none());
    }

    #[test]
    fn bad_secrets_are_reported_by_name_and_leave_other_hosts_alone() {
        let good = tls_secret("good", "good.test");
        let mut opaque = (*tls_secret("opaque", "o.test")).clone();
        opaque.type_ = Some("Opaque".into());
        let mut garbage = (*tls_secret("garbage", "g.test")).clone();
        garbage.data.as_mut().expect("data").insert("tls.crt".into(), k8s_openapi::ByteString(b"not a certificate".to_vec()));
        let mut mismatched = (*tls_secret("mismatched", "m.test")).clone();
        let other_key = tls_secret("other", "x").data.as_ref().expect("data")["tls.key"].clone();
        mismatched.data.as_mut().expect("data").insert("tls.key".into(), other_key);
        let tls = [
            entry("i", &["missing.test"], "missing"),
            entry("i", &["o.test"], "opaque"),
            entry("i", &["g.test"], "garbage"),
            entry("i", &["m.test"], "mismatched"),
            entry("i", &["good.test"], "good"),
        ];
        let (certs, problems) = Certs::build(&tls, &[good, Arc::new(opaque), Arc::new(garbage), Arc::new(mismatched)]);
        let said: Vec<(String, String)> = problems.iter().map(|p| (p.secret.clone(), p.message())).collect();
        assert_eq!(said[0], ("missing".to_string(), "TLS Secret default/missing is not used: the Secret does not exist".to_string()));
        assert_eq!(said[1].1, "TLS Secret default/opaque is not used: its type is Opaque, not kubernetes.io/tls");
        assert_eq!(said[2].1, "TLS Secret default/garbage is not used: tls.crt holds no PEM certificate");
        assert!(said[3].1.starts_with("TLS Secret default/mismatched is not used: tls.crt and tls.key are unusable together"), "{}", said[3].1);
        assert_eq!(said.len(), 4);
        assert!(certs.lookup(Some("good.test")).is_some());
        assert!(certs.lookup(Some("m.test")).is_none());
    }
}
