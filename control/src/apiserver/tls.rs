//! Serving credentials: a cluster CA kept in the data dir, a serving certificate signed by
//! it on every start (so the names it covers follow the listen address), and the admin
//! bearer token created at first start.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// What clients need to trust and authenticate to the API server.
pub struct Credentials {
    /// The cluster CA certificate, PEM.
    pub ca_pem: String,
    /// The admin bearer token.
    pub admin_token: String,
    pub(crate) server_config: Arc<rustls::ServerConfig>,
}

/// Writes a secret file whole: mode 0600, synced, then renamed into place (a crash leaves
/// the old file or the new one, never half of either).
pub(crate) fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The CA's parameters; deterministic, so the issuer can be rebuilt from the stored key.
fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, "flotilla-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    Ok(params)
}

fn random_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// Loads or creates the CA and admin token in `dir`, and issues a serving certificate for
/// localhost, 127.0.0.1 and `extra` addresses.
pub fn ensure(dir: &Path, extra: &[IpAddr]) -> anyhow::Result<Credentials> {
    std::fs::create_dir_all(dir)?;
    let (ca_cert, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
    if !ca_cert.exists() || !ca_key.exists() {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        let _ = std::fs::remove_file(&ca_key);
        write_private(&ca_key, &key.serialize_pem())?;
        std::fs::write(&ca_cert, cert.pem())?;
    }
    let token_path = dir.join("admin.token");
    if !token_path.exists() {
        write_private(&token_path, &random_token())?;
    }
    let admin_token = std::fs::read_to_string(&token_path)?.trim().to_string();
    let ca_pem = std::fs::read_to_string(&ca_cert)?;
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(&ca_key)?)?;
    // The issuer is the CA's name and key; the certificate itself is not needed to sign.
    let issuer = Issuer::new(ca_params()?, ca_key);

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "flotilla".to_string()])?;
    params.distinguished_name.push(DnType::CommonName, "flotilla-apiserver");
    params.subject_alt_names.push(SanType::IpAddress(IpAddr::from([127, 0, 0, 1])));
    for ip in extra {
        if !ip.is_unspecified() {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
    }
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let cert = params.signed_by(&key, &issuer)?;
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    // Client certificates are optional (most clients send a token) but, when sent, must be
    // signed by the cluster CA: they name the user (auth.rs).
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c?)?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).allow_unauthenticated().build()?;
    let mut server_config = rustls::ServerConfig::builder().with_client_cert_verifier(verifier).with_single_cert(chain, key_der)?;
    server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Credentials { ca_pem, admin_token, server_config: Arc::new(server_config) })
}

/// The cluster CA as an issuer (the CSR signers sign with it).
pub(crate) fn ca_issuer(dir: &Path) -> anyhow::Result<Issuer<'static, KeyPair>> {
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(dir.join("ca.key"))?)?;
    Ok(Issuer::new(ca_params()?, ca_key))
}

/// TLS for raft peers: a member certificate (signed by the cluster CA in `dir` on every
/// start, for client and server use) and configurations that accept only peers holding
/// one (mutual TLS), both speaking HTTP/2.
pub(crate) fn member_tls(dir: &Path, id: u64, ips: &[IpAddr]) -> anyhow::Result<(Arc<rustls::ServerConfig>, rustls::ClientConfig)> {
    use rustls::pki_types::pem::PemObject as _;
    let ca_pem = std::fs::read(dir.join("ca.crt"))?;
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(dir.join("ca.key"))?)?;
    let issuer = Issuer::new(ca_params()?, ca_key);
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["localhost".to_string(), format!("flotilla-member-{id}")])?;
    params.distinguished_name.push(DnType::CommonName, format!("flotilla-member-{id}"));
    params.subject_alt_names.push(SanType::IpAddress(IpAddr::from([127, 0, 0, 1])));
    for ip in ips {
        if !ip.is_unspecified() && !ip.is_loopback() {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
    }
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let cert = params.signed_by(&key, &issuer)?;
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&ca_pem) {
        roots.add(c?)?;
    }
    let roots = Arc::new(roots);
    let verifier = rustls::server::WebPkiClientVerifier::builder(roots.clone()).build()?;
    let mut server = rustls::ServerConfig::builder().with_client_cert_verifier(verifier).with_single_cert(chain.clone(), key_der.clone_key())?;
    server.alpn_protocols = vec![b"h2".to_vec()];
    let mut client = rustls::ClientConfig::builder().with_root_certificates(roots).with_client_auth_cert(chain, key_der)?;
    client.alpn_protocols = vec![b"h2".to_vec()];
    Ok((Arc::new(server), client))
}

/// The SHA-256 of the cluster CA certificate (the PEM file's bytes), in hex: what a join
/// token carries so a joiner can check the CA before trusting it.
pub fn ca_hash(ca_pem: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(ca_pem.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}
