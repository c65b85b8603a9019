//! The node's own credential (kubelet TLS bootstrap): a client certificate for the user
//! `system:node:NAME` in group `system:nodes`, which the control plane's Node authorizer
//! confines to this node's own objects.
//!
//! - At start the node uses the certificate in `DATA_DIR/pki/node.{crt,key}` while it is
//!   for this node and less than 80 % of its lifetime has passed. Otherwise it generates a
//!   key and creates a CertificateSigningRequest (signer
//!   `kubernetes.io/kube-apiserver-client-kubelet`, CN `system:node:NAME`, O
//!   `system:nodes`, usages digital signature, key encipherment, client auth) with the
//!   credential it was started with (the bootstrap credential), waits for it to be
//!   approved and issued (the control plane's CSR approver does it at once when that
//!   credential may; otherwise `kubectl certificate approve NAME`), and stores both files
//!   (the key mode 0600, each written whole, then renamed).
//! - [`renew`] requests the next certificate the same way at 80 % of the current one's
//!   lifetime, with the node's own credential (the approver's selfnodeclient case; the
//!   bootstrap credential once the old one has expired), and switches every client of the
//!   node to it ([`Switchable`]).
//!
//! The bootstrap credential stays in use only where the node's own identity cannot serve:
//! the node server's check of the API server's requests, pulls from the cluster's
//! registry, and the built-in Ingress controller's reads of TLS Secrets.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use sha2::Digest as _;

/// The signer of nodes' client certificates.
pub(crate) const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The group of every node's user.
pub(crate) const NODES_GROUP: &str = "system:nodes";

/// The node's user name.
pub(crate) fn user_name(node: &str) -> String {
    format!("system:node:{node}")
}

/// A client certificate (PEM) with its key (PEM) and validity (Unix seconds).
#[derive(Clone, Debug)]
pub(crate) struct Credential {
    pub cert_pem: String,
    pub key_pem: String,
    pub not_before: i64,
    pub not_after: i64,
}

impl Credential {
    /// Pure: reads a certificate and checks it is `node`'s.
    pub(crate) fn parse(cert_pem: &str, key_pem: &str, node: &str) -> Result<Credential, String> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).map_err(|e| format!("not a PEM certificate: {e}"))?;
        let cert = pem.parse_x509().map_err(|e| format!("not a certificate: {e}"))?;
        let subject = cert.subject();
        let cn: Vec<&str> = subject.iter_common_name().filter_map(|c| c.as_str().ok()).collect();
        let orgs: Vec<&str> = subject.iter_organization().filter_map(|o| o.as_str().ok()).collect();
        if cn != [user_name(node).as_str()] {
            return Err(format!("its common name is not {}", user_name(node)));
        }
        if orgs != [NODES_GROUP] {
            return Err(format!("its organization is not {NODES_GROUP}"));
        }
        rcgen::KeyPair::from_pem(key_pem).map_err(|e| format!("its key is not readable: {e}"))?;
        let validity = cert.validity();
        Ok(Credential {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
        })
    }

    /// Pure: when to request the next certificate: at 80 % of this one's lifetime.
    pub(crate) fn renew_at(&self) -> i64 {
        self.not_before + (self.not_after - self.not_before).max(0) * 8 / 10
    }

    /// The kube-rs client configuration's identity fields.
    pub(crate) fn apply(&self, auth: &mut kube::config::AuthInfo) {
        auth.token = None;
        auth.client_certificate_data = Some(B64.encode(&self.cert_pem));
        auth.client_key_data = Some(secrecy::SecretString::from(B64.encode(&self.key_pem)));
    }
}

fn paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("pki");
    (dir.join("node.crt"), dir.join("node.key"))
}

/// The stored credential, if it is `node`'s and not due for renewal at `now`.
pub(crate) fn load(data_dir: &Path, node: &str, now: i64) -> Option<Credential> {
    let (crt, key) = paths(data_dir);
    let (cert_pem, key_pem) = (std::fs::read_to_string(&crt).ok()?, std::fs::read_to_string(&key).ok()?);
    match Credential::parse(&cert_pem, &key_pem, node) {
        Ok(c) if now < c.renew_at() => Some(c),
        Ok(_) => {
            tracing::info!(path = %crt.display(), "the node's certificate is due for renewal");
            None
        }
        Err(why) => {
            tracing::warn!(path = %crt.display(), why, "not using the stored node certificate");
            None
        }
    }
}

fn write_whole(path: &Path, data: &str, mode: u32) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
    f.write_all(data.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Stores the credential (the key first: a certificate is never stored without its key).
pub(crate) fn save(data_dir: &Path, c: &Credential) -> std::io::Result<()> {
    let (crt, key) = paths(data_dir);
    std::fs::create_dir_all(crt.parent().expect("pki dir"))?;
    write_whole(&key, &c.key_pem, 0o600)?;
    write_whole(&crt, &c.cert_pem, 0o644)
}

/// Pure: the CertificateSigningRequest object for `node`'s key; named after the key, as
/// the kubelet names its requests, so a retry with the same key finds its request.
pub(crate) fn csr_object(node: &str, key: &rcgen::KeyPair) -> anyhow::Result<(String, Value)> {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(rcgen::DnType::CommonName, user_name(node));
    p.distinguished_name.push(rcgen::DnType::OrganizationName, NODES_GROUP);
    let pem = p.serialize_request(key)?.pem()?;
    let digest = sha2::Sha256::digest(rcgen::PublicKeyData::der_bytes(key));
    let name = format!("node-csr-{}", digest.iter().take(12).map(|b| format!("{b:02x}")).collect::<String>());
    let obj = json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {"request": B64.encode(pem), "signerName": KUBELET_CLIENT_SIGNER, "usages": ["digital signature", "key encipherment", "client auth"]},
    });
    Ok((name, obj))
}

/// Why a request did not yield a certificate.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    #[error("certificate signing request {name} was not approved and issued within {}s (approve it with `kubectl certificate approve {name}`)", .waited.as_secs())]
    Timeout { name: String, waited: Duration },
    #[error("certificate signing request {name} was {outcome}: {message}")]
    Refused { name: String, outcome: String, message: String },
    #[error("certificate signing request {name}: {source}")]
    Api {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("the certificate issued for {name} is not this node's: {why}")]
    Issued { name: String, why: String },
    #[error("building the certificate signing request: {0}")]
    Build(#[source] anyhow::Error),
}

/// Requests a certificate for `node` with `client`'s credential and waits up to `timeout`
/// for it to be approved and issued.
pub(crate) async fn request(client: &kube::Client, node: &str, timeout: Duration) -> Result<Credential, RequestError> {
    let key = rcgen::KeyPair::generate().map_err(|e| RequestError::Build(e.into()))?;
    let (name, obj) = csr_object(node, &key).map_err(RequestError::Build)?;
    let api_err = |source| RequestError::Api { name: name.clone(), source };
    let csrs: kube::Api<kube::api::DynamicObject> = kube::Api::all_with(client.clone(), &csr_resource());
    let start = tokio::time::Instant::now();
    let mut created = false;
    let mut logged = false;
    loop {
        if !created {
            let o: kube::api::DynamicObject = serde_json::from_value(obj.clone()).map_err(|e| RequestError::Build(e.into()))?;
            match csrs.create(&kube::api::PostParams::default(), &o).await {
                Ok(_) => created = true,
                Err(kube::Error::Api(e)) if e.code == 409 => created = true,
                // The API server may not serve yet: try again until the deadline.
                Err(e) if start.elapsed() < timeout => tracing::debug!(error = %e, csr = %name, "creating the node's CSR failed; retrying"),
                Err(e) => return Err(api_err(e)),
            }
            if created {
                tracing::info!(csr = %name, node.name = %node, "requested a node client certificate; waiting for approval");
            }
        }
        if created {
            match csrs.get(&name).await {
                Ok(o) => {
                    let status = &o.data["status"];
                    for c in status["conditions"].as_array().into_iter().flatten() {
                        if matches!(c["type"].as_str(), Some("Denied" | "Failed")) && c["status"] != "False" {
                            let outcome = if c["type"] == "Denied" { "denied" } else { "not signed" };
                            return Err(RequestError::Refused { name, outcome: outcome.into(), message: c["message"].as_str().unwrap_or("").into() });
                        }
                    }
                    if let Some(cert) = status["certificate"].as_str().filter(|c| !c.is_empty()) {
                        let pem = B64.decode(cert).ok().and_then(|b| String::from_utf8(b).ok()).unwrap_or_default();
                        let c = Credential::parse(&pem, &key.serialize_pem(), node).map_err(|why| RequestError::Issued { name: name.clone(), why })?;
                        tracing::info!(csr = %name, node.name = %node, not_after = c.not_after, "node client certificate issued");
                        return Ok(c);
                    }
                    if !logged && start.elapsed() > Duration::from_secs(5) {
                        tracing::info!(csr = %name, "waiting for certificate signing request {name} to be approved (`kubectl certificate approve {name}`)");
                        logged = true;
                    }
                }
                Err(e) => tracing::debug!(error = %e, csr = %name, "reading the node's CSR failed; retrying"),
            }
        }
        if start.elapsed() >= timeout {
            return Err(RequestError::Timeout { name, waited: timeout });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn csr_resource() -> kube::api::ApiResource {
    kube::api::ApiResource {
        group: "certificates.k8s.io".into(),
        version: "v1".into(),
        api_version: "certificates.k8s.io/v1".into(),
        kind: "CertificateSigningRequest".into(),
        plural: "certificatesigningrequests".into(),
    }
}

/// A kube-rs client whose credential can be replaced while every clone is in use: each
/// request goes through the client current at the time.
#[derive(Clone)]
pub(crate) struct Switchable {
    current: Arc<RwLock<kube::Client>>,
}

impl Switchable {
    pub(crate) fn new(client: kube::Client) -> Switchable {
        Switchable { current: Arc::new(RwLock::new(client)) }
    }

    pub(crate) fn client(&self) -> kube::Client {
        kube::Client::new(self.clone(), "default")
    }

    pub(crate) fn switch(&self, client: kube::Client) {
        *self.current.write().expect("client lock") = client;
    }
}

impl tower::Service<http::Request<kube::client::Body>> for Switchable {
    type Response = http::Response<kube::client::Body>;
    type Error = kube::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, kube::Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), kube::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<kube::client::Body>) -> Self::Future {
        let client = self.current.read().expect("client lock").clone();
        Box::pin(async move { client.send(req).await })
    }
}

/// Renews the credential at 80 % of its lifetime, for good, until `shutdown`: requests the
/// next one with the node's own client (the bootstrap one once the current certificate has
/// expired), stores it and switches `clients` to a client built by `build`.
#[allow(clippy::too_many_arguments, reason = "what a renewal needs, each used once")]
pub(crate) async fn renew(
    mut current: Credential,
    own: kube::Client,
    bootstrap: kube::Client,
    clients: Switchable,
    build: impl Fn(&Credential) -> anyhow::Result<kube::Client> + Send + 'static,
    node: String,
    data_dir: PathBuf,
    timeout: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let wait = (current.renew_at() - chrono::Utc::now().timestamp()).max(0) as u64;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(wait)) => {}
            _ = shutdown.changed() => return,
        }
        let via = if chrono::Utc::now().timestamp() < current.not_after { &own } else { &bootstrap };
        let next = match request(via, &node, timeout).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, node.name = %node, "renewing the node's certificate failed; retrying in 30s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                    _ = shutdown.changed() => return,
                }
                continue;
            }
        };
        if let Err(e) = save(&data_dir, &next) {
            tracing::warn!(error = %e, "storing the renewed node certificate failed");
        }
        match build(&next) {
            Ok(c) => {
                clients.switch(c);
                tracing::info!(node.name = %node, "switched to the renewed node certificate");
            }
            Err(e) => tracing::warn!(error = %e, "building a client with the renewed node certificate failed"),
        }
        current = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issued(cn: &str, org: &str, seconds: i64) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.distinguished_name.push(rcgen::DnType::OrganizationName, org);
        p.not_before = time_of(1_000_000);
        p.not_after = time_of(1_000_000 + seconds);
        (p.self_signed(&key).expect("cert").pem(), key.serialize_pem())
    }

    fn time_of(t: i64) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp(t).expect("time")
    }

    #[test]
    fn a_stored_certificate_is_used_while_it_is_this_nodes_and_young() {
        let dir = tempfile::tempdir().expect("dir");
        let (cert, key) = issued("system:node:n1", "system:nodes", 1000);
        let c = Credential::parse(&cert, &key, "n1").expect("n1's");
        assert_eq!((c.not_before, c.not_after, c.renew_at()), (1_000_000, 1_001_000, 1_000_800));
        assert!(Credential::parse(&cert, &key, "n2").is_err(), "another node's");
        let (other_org, k2) = issued("system:node:n1", "system:masters", 1000);
        assert!(Credential::parse(&other_org, &k2, "n1").is_err());
        save(dir.path(), &c).expect("saved");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(dir.path().join("pki/node.key")).expect("key").permissions().mode() & 0o777, 0o600);
        assert!(load(dir.path(), "n1", 1_000_799).is_some());
        assert!(load(dir.path(), "n1", 1_000_800).is_none(), "due for renewal at 80%");
        assert!(load(dir.path(), "n2", 1_000_000).is_none());
    }

    #[test]
    fn the_request_asks_for_the_nodes_subject_from_the_kubelet_signer() {
        let key = rcgen::KeyPair::generate().expect("key");
        let (name, obj) = csr_object("n1", &key).expect("csr");
        assert!(name.starts_with("node-csr-"));
        assert_eq!(csr_object("n1", &key).expect("again").0, name, "named after the key");
        assert_eq!(obj["spec"]["signerName"], KUBELET_CLIENT_SIGNER);
        let pem = String::from_utf8(B64.decode(obj["spec"]["request"].as_str().expect("request")).expect("b64")).expect("utf8");
        let req = rcgen::CertificateSigningRequestParams::from_pem(&pem).expect("csr");
        let dn = &req.params.distinguished_name;
        assert_eq!(dn.get(&rcgen::DnType::CommonName), Some(&rcgen::DnValue::Utf8String("system:node:n1".into())));
        assert_eq!(dn.get(&rcgen::DnType::OrganizationName), Some(&rcgen::DnValue::Utf8String("system:nodes".into())));
    }
}
