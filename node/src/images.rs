//! Container images: resolving a container's `image:` to the bytes of a wasm component or
//! module, with Kubernetes' pull policies and reasons.
//!
//! Sources: `file:///abs/path.wasm` (only when the node allows file images) and OCI
//! references pulled with the OCI distribution API as wasm artifacts (a manifest whose
//! layer has media type `application/wasm` or `application/vnd.wasm.content.layer.v1+wasm`;
//! the wasm-pkg layout with config `application/vnd.wasm.config.v0+json` is one of these).
//! A reference without a registry host defaults to docker.io as in Kubernetes.
//!
//! Cache (DIR = the store's directory):
//! - DIR/blobs/sha256/HEX holds content by digest, written to a temp file then renamed;
//!   every read from disk is verified against its name (a corrupt blob counts as absent).
//! - DIR/index.json maps the normalized reference to the content digest (and, for OCI, the
//!   manifest digest), rewritten atomically after each pull, so `IfNotPresent`/`Never` hits
//!   need no network and survive restarts.
//! - Loaded blobs are kept in memory by digest (bounded), so a cached pull is a map lookup.
//!
//! Invariants: `Image::digest` is always `sha256:` of `Image::bytes` (the content, not the
//! manifest), and bytes start with the wasm magic. Pulls of one reference are serialized,
//! so N pods starting on a cold cache cause one download.
//!
//! Registries on loopback (`localhost`, `127.x`, `[::1]`) are tried over HTTPS first and
//! then plain HTTP (as Docker treats them); the scheme that worked is remembered.
//! Credentials named `flotilla` are sent as a bearer token (the cluster's own registry
//! takes the API token); others use basic auth (or the registry's token flow).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{ImageIndexEntry, OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth as OciAuth;
use oci_client::{Client, Reference};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Layer media types taken as a wasm component/module.
pub const WASM_LAYER_MEDIA_TYPES: &[&str] = &[
    "application/wasm",
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
    "application/vnd.module.wasm.content.layer.v1+wasm",
];

/// Config media type of the wasm-pkg (wkg) OCI layout.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";

/// The username whose password is sent as a bearer token (the cluster's own registry).
pub const FLOTILLA_REGISTRY_USER: &str = "flotilla";

/// Largest layer accepted from a registry.
const MAX_LAYER_BYTES: i64 = 1 << 30;
/// Loaded blobs kept in memory beyond those in use (bytes).
const MEMORY_CACHE_BYTES: usize = 512 << 20;
const WASM_MAGIC: &[u8] = b"\0asm";

/// A resolved image: its content and where it came from.
#[derive(Clone)]
pub struct Image {
    /// The image as the container spec names it.
    pub reference: String,
    /// `sha256:HEX` of `bytes` (the wasm content; the compile-cache key).
    pub digest: String,
    /// `sha256:HEX` of the OCI manifest, when pulled from a registry (the imageID digest).
    pub manifest_digest: Option<String>,
    pub bytes: Arc<Vec<u8>>,
    /// Served from the node's cache without asking the registry.
    pub from_cache: bool,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("reference", &self.reference)
            .field("digest", &self.digest)
            .field("manifest_digest", &self.manifest_digest)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// `imagePullPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// The container's policy, or Kubernetes' default when it is unset (or not one of the
    /// three values): `Always` when the tag is `latest` or there is neither tag nor digest,
    /// `IfNotPresent` otherwise.
    pub fn for_container(image: &str, policy: Option<&str>) -> PullPolicy {
        match policy {
            Some("Always") => PullPolicy::Always,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            Some("Never") => PullPolicy::Never,
            _ => {
                let (name, digest) = match image.split_once('@') {
                    Some((n, d)) => (n, Some(d)),
                    None => (image, None),
                };
                let last = name.rsplit('/').next().unwrap_or(name);
                let tag = last.split_once(':').map(|(_, t)| t);
                match (tag, digest) {
                    (Some("latest"), _) | (None, None) => PullPolicy::Always,
                    _ => PullPolicy::IfNotPresent,
                }
            }
        }
    }
}

/// Identifies a set of credentials without keeping the secrets themselves.
fn credentials_fingerprint(auth: &[RegistryAuth]) -> String {
    let mut h = Sha256::new();
    for a in auth {
        for part in [&a.registry, &a.username, &a.password] {
            h.update(part.as_bytes());
            h.update([0]);
        }
    }
    format!("{:x}", h.finalize())
}

/// Credentials for one registry (from an imagePullSecret, or the node's own token).
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    /// The docker config key: `host[:port]`, optionally with a scheme and/or path prefix.
    pub registry: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why an image could not be provided; variants are Kubernetes' waiting reasons and
/// carry the message shown with them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PullError {
    #[error("{0}")]
    InvalidImageName(String),
    #[error("{0}")]
    ErrImagePull(String),
    #[error("{0}")]
    ErrImageNeverPull(String),
}

impl PullError {
    /// The container status reason (`InvalidImageName`, `ErrImagePull`, `ErrImageNeverPull`).
    pub fn reason(&self) -> &'static str {
        match self {
            PullError::InvalidImageName(_) => "InvalidImageName",
            PullError::ErrImagePull(_) => "ErrImagePull",
            PullError::ErrImageNeverPull(_) => "ErrImageNeverPull",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            PullError::InvalidImageName(m) | PullError::ErrImagePull(m) | PullError::ErrImageNeverPull(m) => m,
        }
    }
}

/// Credentials from a `kubernetes.io/dockerconfigjson` secret's `.dockerconfigjson` value
/// (base64, as in the Secret's `data`). Also accepts the legacy `.dockercfg` shape (the
/// host map without `auths`). Entries with neither username/password nor `auth` are skipped.
pub fn auths_from_dockerconfigjson(secret_data_b64: &str) -> Result<Vec<RegistryAuth>, PullError> {
    let bad = |why: String| PullError::ErrImagePull(format!("invalid image pull secret: {why}"));
    let raw = base64::engine::general_purpose::STANDARD
        .decode(secret_data_b64.trim())
        .map_err(|e| bad(format!("data is not base64: {e}")))?;
    let doc: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| bad(format!("not JSON: {e}")))?;
    let hosts = doc
        .get("auths")
        .unwrap_or(&doc)
        .as_object()
        .ok_or_else(|| bad("expected an object of registries under \"auths\"".into()))?;
    let mut out = Vec::new();
    for (registry, entry) in hosts {
        let field = |k: &str| entry.get(k).and_then(|v| v.as_str()).filter(|s| !s.is_empty());
        let (username, password) = match (field("username"), field("password"), field("auth")) {
            (Some(u), Some(p), _) => (u.to_string(), p.to_string()),
            (_, _, Some(auth)) => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .map_err(|e| bad(format!("auth for {registry:?} is not base64: {e}")))?;
                let text = String::from_utf8(decoded).map_err(|_| bad(format!("auth for {registry:?} is not UTF-8")))?;
                let (u, p) = text
                    .split_once(':')
                    .ok_or_else(|| bad(format!("auth for {registry:?} is not \"user:password\"")))?;
                (u.to_string(), p.to_string())
            }
            _ => continue,
        };
        out.push(RegistryAuth { registry: registry.clone(), username, password });
    }
    Ok(out)
}

/// Where an image comes from.
enum Source {
    File(PathBuf),
    Oci(Reference),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexEntry {
    digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    manifest_digest: Option<String>,
}

#[derive(Default, Serialize, Deserialize)]
struct IndexFile {
    images: HashMap<String, IndexEntry>,
}

#[derive(Default)]
struct State {
    index: HashMap<String, IndexEntry>,
    loaded: HashMap<String, Arc<Vec<u8>>>,
    loaded_bytes: usize,
    /// Cache key → when its last pull finished (lets queued `Always` pulls reuse it).
    last_pull: HashMap<String, Instant>,
    /// Loopback registry → whether it speaks plain HTTP.
    plain_http: HashMap<String, bool>,
    /// Cache key → lock serializing pulls of it.
    pulling: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
    /// Digest → lock serializing loads of its blob from disk.
    loading: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
    /// Blobs read (and verified) from disk, for tests.
    disk_loads: usize,
}

/// The node's image store (see the module docs).
pub struct ImageStore {
    dir: PathBuf,
    allow_file_images: bool,
    root_certs: Vec<Vec<u8>>,
    insecure_registries: Vec<String>,
    state: Mutex<State>,
    /// Serializes index.json rewrites.
    index_write: tokio::sync::Mutex<()>,
}

impl ImageStore {
    /// A store caching under `dir` (created on first write; an unreadable index starts empty).
    pub fn new(dir: PathBuf, allow_file_images: bool) -> ImageStore {
        let index = match std::fs::read(dir.join("index.json")) {
            Ok(raw) => match serde_json::from_slice::<IndexFile>(&raw) {
                Ok(f) => f.images,
                Err(e) => {
                    tracing::warn!(error = %e, "image index unreadable; starting empty");
                    HashMap::new()
                }
            },
            Err(_) => HashMap::new(),
        };
        ImageStore {
            dir,
            allow_file_images,
            root_certs: Vec::new(),
            insecure_registries: Vec::new(),
            state: Mutex::new(State { index, ..State::default() }),
            index_write: tokio::sync::Mutex::new(()),
        }
    }

    /// Also trust these PEM root certificates (one or many) for HTTPS registries.
    pub fn with_root_certs(mut self, pem: impl AsRef<[u8]>) -> ImageStore {
        self.root_certs.extend(split_pem_certs(pem.as_ref()));
        self
    }

    /// Registries (`host:port`) always reached over plain HTTP.
    pub fn with_insecure_registries(mut self, registries: Vec<String>) -> ImageStore {
        self.insecure_registries = registries;
        self
    }

    /// Provides `image` under `policy`, pulling with the first of `auth` that matches the
    /// registry (more specific keys first; anonymous when none match).
    pub async fn pull(&self, image: &str, policy: PullPolicy, auth: &[RegistryAuth]) -> Result<Image, PullError> {
        let source = self.parse(image)?;
        let key = match &source {
            Source::File(p) => format!("file://{}", p.display()),
            Source::Oci(r) => r.whole(),
        };
        if policy != PullPolicy::Always {
            if let Some(img) = self.cached(&key, image).await {
                return Ok(img);
            }
            if policy == PullPolicy::Never {
                return Err(PullError::ErrImageNeverPull(format!(
                    "Container image \"{image}\" is not present with pull policy of Never"
                )));
            }
        }

        let asked = Instant::now();
        let lock = self.lock_state().pulling.entry(key.clone()).or_default().clone();
        let _guard = lock.lock().await;
        // Someone else pulled it while we waited with the same credentials: that pull
        // satisfies this one too. Other credentials must prove themselves to the registry.
        let pull_key = format!("{key}\0{}", credentials_fingerprint(auth));
        let fresh = self.lock_state().last_pull.get(&pull_key).is_some_and(|t| *t >= asked);
        if (fresh || policy != PullPolicy::Always)
            && let Some(img) = self.cached(&key, image).await
        {
            return Ok(img);
        }
        let (bytes, digest, manifest_digest) = match &source {
            Source::File(path) => {
                let bytes = tokio::fs::read(path).await.map_err(|e| {
                    PullError::ErrImagePull(format!("failed to pull image \"{image}\": open {}: {e}", path.display()))
                })?;
                let digest = sha256_hex(&bytes);
                (Arc::new(bytes), digest, None)
            }
            Source::Oci(reference) => self.pull_oci(image, reference, auth).await?,
        };
        if !bytes.starts_with(WASM_MAGIC) {
            return Err(PullError::ErrImagePull(format!(
                "failed to pull image \"{image}\": content is not a wasm component or module"
            )));
        }
        self.store_blob(&digest, &bytes).await.map_err(|e| {
            PullError::ErrImagePull(format!("failed to pull image \"{image}\": storing {digest}: {e}"))
        })?;
        let entry = IndexEntry { digest: digest.clone(), manifest_digest: manifest_digest.clone() };
        self.record(&key, entry).await;
        self.lock_state().last_pull.insert(pull_key, Instant::now());
        Ok(Image { reference: image.to_string(), digest, manifest_digest, bytes, from_cache: false })
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn parse(&self, image: &str) -> Result<Source, PullError> {
        let invalid = |why: &str| {
            PullError::InvalidImageName(format!(
                "Failed to apply default image tag \"{image}\": couldn't parse image reference \"{image}\": {why}"
            ))
        };
        if let Some(rest) = image.strip_prefix("file://") {
            if !self.allow_file_images {
                return Err(invalid("file images are not allowed on this node (it was not started with --allow-file-images)"));
            }
            let path = Path::new(rest);
            if !rest.starts_with('/') || !path.is_absolute() {
                return Err(invalid("a file image must name an absolute path: file:///abs/path.wasm"));
            }
            return Ok(Source::File(path.to_path_buf()));
        }
        if image.contains("://") || image.trim() != image {
            return Err(invalid("invalid reference format"));
        }
        Reference::try_from(image).map(Source::Oci).map_err(|e| invalid(&e.to_string()))
    }

    /// The cached image for `key`, if its blob is present and intact.
    async fn cached(&self, key: &str, image: &str) -> Option<Image> {
        let entry = self.lock_state().index.get(key).cloned()?;
        let bytes = self.load_blob(&entry.digest).await?;
        Some(Image { reference: image.to_string(), digest: entry.digest, manifest_digest: entry.manifest_digest, bytes, from_cache: true })
    }

    fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(self.dir.join("blobs").join("sha256").join(hex.to_ascii_lowercase()))
    }

    /// The blob of `digest`, from memory or else from disk (verified). A single flight per
    /// digest: a node restarting with 5,000 pods of one image reads and hashes it once.
    async fn load_blob(&self, digest: &str) -> Option<Arc<Vec<u8>>> {
        if let Some(b) = self.lock_state().loaded.get(digest) {
            return Some(b.clone());
        }
        let lock = self.lock_state().loading.entry(digest.to_string()).or_default().clone();
        let _guard = lock.lock().await;
        if let Some(b) = self.lock_state().loaded.get(digest) {
            return Some(b.clone());
        }
        let path = self.blob_path(digest)?;
        self.lock_state().disk_loads += 1;
        let bytes = tokio::fs::read(&path).await.ok()?;
        if sha256_hex(&bytes) != digest {
            tracing::warn!(%digest, "cached image blob is corrupt; discarding it");
            let _ = tokio::fs::remove_file(&path).await;
            return None;
        }
        let bytes = Arc::new(bytes);
        self.remember(digest, &bytes);
        Some(bytes)
    }

    fn remember(&self, digest: &str, bytes: &Arc<Vec<u8>>) {
        let mut st = self.lock_state();
        if st.loaded.contains_key(digest) {
            return;
        }
        if st.loaded_bytes + bytes.len() > MEMORY_CACHE_BYTES {
            // Drop blobs nobody holds; blobs in use stay (they cost nothing extra).
            let idle: Vec<String> =
                st.loaded.iter().filter(|(_, b)| Arc::strong_count(b) == 1).map(|(d, _)| d.clone()).collect();
            for d in idle {
                if let Some(b) = st.loaded.remove(&d) {
                    st.loaded_bytes -= b.len();
                }
            }
        }
        st.loaded_bytes += bytes.len();
        st.loaded.insert(digest.to_string(), bytes.clone());
    }

    async fn store_blob(&self, digest: &str, bytes: &Arc<Vec<u8>>) -> std::io::Result<()> {
        let path = self.blob_path(digest).ok_or_else(|| std::io::Error::other("not a sha256 digest"))?;
        if tokio::fs::metadata(&path).await.is_err() {
            write_atomic(&path, bytes).await?;
        }
        self.remember(digest, bytes);
        Ok(())
    }

    async fn record(&self, key: &str, entry: IndexEntry) {
        let _w = self.index_write.lock().await;
        let snapshot = {
            let mut st = self.lock_state();
            st.index.insert(key.to_string(), entry);
            IndexFile { images: st.index.clone() }
        };
        let result = match serde_json::to_vec_pretty(&snapshot) {
            Ok(raw) => write_atomic(&self.dir.join("index.json"), &raw).await,
            Err(e) => Err(std::io::Error::other(e)),
        };
        if let Err(e) = result {
            // The pull itself succeeded; only the restart-surviving record is lost.
            tracing::warn!(error = %e, "could not write the image index");
        }
    }

    /// Pulls the wasm layer of `reference`: (bytes, content digest, manifest digest).
    async fn pull_oci(
        &self,
        image: &str,
        reference: &Reference,
        auth: &[RegistryAuth],
    ) -> Result<(Arc<Vec<u8>>, String, Option<String>), PullError> {
        let candidates = matching_auths(auth, reference);
        let mut last = None;
        for cred in &candidates {
            match self.pull_oci_with(reference, cred).await {
                Ok(v) => return Ok(v),
                Err(f) => {
                    let retry = f.auth_failure;
                    last = Some(f);
                    if !retry {
                        break;
                    }
                }
            }
        }
        let detail = last.map(|f| f.message).unwrap_or_else(|| "no credentials to try".into());
        Err(PullError::ErrImagePull(format!("failed to pull image \"{image}\": {detail}")))
    }

    async fn pull_oci_with(
        &self,
        reference: &Reference,
        cred: &OciAuth,
    ) -> Result<(Arc<Vec<u8>>, String, Option<String>), Failure> {
        let registry = reference.resolve_registry().to_string();
        let schemes: Vec<bool> = if self.insecure_registries.iter().any(|r| r == &registry) {
            vec![true]
        } else if is_loopback(&registry) {
            match self.lock_state().plain_http.get(&registry) {
                Some(&plain) => vec![plain],
                None => vec![false, true],
            }
        } else {
            vec![false]
        };
        let mut last = None;
        for (i, &plain) in schemes.iter().enumerate() {
            let client = self.client(plain).map_err(|e| Failure::from_oci(&e, None))?;
            let result = self.fetch(&client, reference, cred).await;
            // The registry answered over this scheme (even if with an error): remember it.
            let answered = !matches!(result, Err(FetchError::Oci(OciDistributionError::RequestError(_))));
            if answered && is_loopback(&registry) {
                self.lock_state().plain_http.insert(registry.clone(), plain);
            }
            match result {
                Ok(v) => return Ok(v),
                Err(FetchError::Oci(OciDistributionError::RequestError(e))) if i + 1 < schemes.len() => {
                    tracing::debug!(%registry, error = %e, "HTTPS failed on a loopback registry; trying HTTP");
                    last = Some(Failure { message: error_chain(&e), auth_failure: false });
                }
                Err(FetchError::Oci(e)) => {
                    let body = match &e {
                        OciDistributionError::UnauthorizedError { url } => http_error_message(url, cred).await,
                        _ => None,
                    };
                    return Err(Failure::from_oci(&e, body));
                }
                Err(FetchError::Other(message)) => return Err(Failure { message, auth_failure: false }),
            }
        }
        Err(last.unwrap_or(Failure { message: "no protocol to try".into(), auth_failure: false }))
    }

    fn client(&self, plain_http: bool) -> Result<Client, OciDistributionError> {
        let config = ClientConfig {
            protocol: if plain_http { ClientProtocol::Http } else { ClientProtocol::Https },
            extra_root_certificates: self
                .root_certs
                .iter()
                .map(|pem| Certificate { encoding: CertificateEncoding::Pem, data: pem.clone() })
                .collect(),
            platform_resolver: Some(Box::new(wasm_platform_resolver)),
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: concat!("flotilla-node/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        Client::try_from(config)
    }

    async fn fetch(
        &self,
        client: &Client,
        reference: &Reference,
        cred: &OciAuth,
    ) -> Result<(Arc<Vec<u8>>, String, Option<String>), FetchError> {
        let (manifest, manifest_digest) = client.pull_image_manifest(reference, cred).await?;
        let layer = select_wasm_layer(&manifest).map_err(FetchError::Other)?;
        if !layer.digest.starts_with("sha256:") {
            return Err(FetchError::Other(format!("unsupported layer digest {}", layer.digest)));
        }
        if let Some(bytes) = self.load_blob(&layer.digest).await {
            return Ok((bytes, layer.digest.clone(), Some(manifest_digest)));
        }
        if layer.size > MAX_LAYER_BYTES {
            return Err(FetchError::Other(format!("wasm layer is too large ({} bytes)", layer.size)));
        }
        let mut out = Vec::with_capacity(usize::try_from(layer.size).unwrap_or(0));
        client.pull_blob(reference, layer, &mut out).await?;
        let digest = sha256_hex(&out);
        if digest != layer.digest {
            return Err(FetchError::Other(format!("layer digest mismatch: expected {}, got {digest}", layer.digest)));
        }
        Ok((Arc::new(out), digest, Some(manifest_digest)))
    }
}

enum FetchError {
    Oci(OciDistributionError),
    Other(String),
}

impl From<OciDistributionError> for FetchError {
    fn from(e: OciDistributionError) -> Self {
        FetchError::Oci(e)
    }
}

/// A failed attempt with one credential.
struct Failure {
    message: String,
    /// The registry refused the credentials (another one may work).
    auth_failure: bool,
}

impl Failure {
    fn from_oci(e: &OciDistributionError, registry_message: Option<String>) -> Failure {
        match e {
            OciDistributionError::UnauthorizedError { url } => Failure {
                message: match registry_message {
                    Some(m) => format!("unauthorized: {m}"),
                    None => format!("unauthorized: the registry refused access (401 from {url})"),
                },
                auth_failure: true,
            },
            OciDistributionError::AuthenticationFailure(reason) => {
                Failure { message: format!("authentication failed: {}", reason.trim()), auth_failure: true }
            }
            OciDistributionError::RegistryError { envelope, .. } => {
                let auth_failure = envelope
                    .errors
                    .iter()
                    .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied));
                let text: Vec<String> =
                    envelope.errors.iter().map(|e| format!("{}: {}", code_name(&e.code), e.message)).collect();
                Failure { message: text.join("; "), auth_failure }
            }
            OciDistributionError::ServerError { code, message, .. } => Failure {
                message: format!("registry answered {code}: {}", message.trim()),
                auth_failure: *code == 401 || *code == 403,
            },
            OciDistributionError::RequestError(re) => Failure { message: error_chain(re), auth_failure: false },
            other => Failure { message: other.to_string(), auth_failure: false },
        }
    }
}

fn code_name(code: &OciErrorCode) -> String {
    match serde_json::to_value(code) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{code:?}"),
    }
}

/// An error with its sources (reqwest's own Display hides the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// The wasm layer of a manifest: the first layer with a wasm media type.
fn select_wasm_layer(manifest: &OciImageManifest) -> Result<&OciDescriptor, String> {
    manifest.layers.iter().find(|l| WASM_LAYER_MEDIA_TYPES.contains(&l.media_type.as_str())).ok_or_else(|| {
        let types: Vec<&str> = manifest.layers.iter().map(|l| l.media_type.as_str()).collect();
        format!(
            "not a wasm artifact: no layer of media type application/wasm (config {}, layers [{}])",
            manifest.config.media_type,
            types.join(", ")
        )
    })
}

/// Picks from an image index: the `wasm` architecture entry, else the only entry, else the
/// node's own platform.
fn wasm_platform_resolver(entries: &[ImageIndexEntry]) -> Option<String> {
    let arch = |e: &&ImageIndexEntry| e.platform.as_ref().map(|p| p.architecture.to_string());
    if let Some(e) = entries.iter().find(|e| arch(e).as_deref() == Some("wasm")) {
        return Some(e.digest.clone());
    }
    if let [only] = entries {
        return Some(only.digest.clone());
    }
    oci_client::client::current_platform_resolver(entries)
}

fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

async fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let parent = path.parent().ok_or_else(|| std::io::Error::other("no parent directory"))?;
    tokio::fs::create_dir_all(parent).await?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("blob");
    let tmp = parent.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    tokio::fs::write(&tmp, bytes).await?;
    if let Err(e) = tokio::fs::rename(&tmp, path).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    Ok(())
}

/// Each `-----BEGIN CERTIFICATE-----` block of a PEM bundle, on its own.
fn split_pem_certs(pem: &[u8]) -> Vec<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let text = String::from_utf8_lossy(pem);
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else { break };
        let stop = start + len + END.len();
        out.push(format!("{}\n", &rest[start..stop]).into_bytes());
        rest = &rest[stop..];
    }
    out
}

/// Host part of `host[:port]` (IPv6 literals keep no brackets).
fn registry_host(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.split(':').next().unwrap_or(registry)
}

fn is_loopback(registry: &str) -> bool {
    let host = registry_host(registry);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn canonical_registry(host: &str) -> String {
    let h = host.to_ascii_lowercase();
    match h.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io".into(),
        _ => h,
    }
}

/// The credentials whose key matches the reference, most specific first, as oci-client
/// auths; `[Anonymous]` when none match.
fn matching_auths(auths: &[RegistryAuth], reference: &Reference) -> Vec<OciAuth> {
    let registry = canonical_registry(reference.registry());
    let repo = reference.repository();
    let mut found: Vec<(usize, &RegistryAuth)> = auths
        .iter()
        .filter_map(|a| {
            let key = a.registry.trim();
            let key = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
            let (host, path) = key.split_once('/').unwrap_or((key, ""));
            let path = path.trim_end_matches('/');
            if canonical_registry(host) != registry {
                return None;
            }
            // Docker's "https://index.docker.io/v1/" names the whole registry.
            let path = if path == "v1" || path == "v2" { "" } else { path };
            let matches = path.is_empty()
                || repo == path
                || repo.strip_prefix(path).is_some_and(|rest| rest.starts_with('/'));
            matches.then_some((path.len(), a))
        })
        .collect();
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    if found.is_empty() {
        return vec![OciAuth::Anonymous];
    }
    found
        .into_iter()
        .map(|(_, a)| {
            if a.username == FLOTILLA_REGISTRY_USER {
                OciAuth::Bearer(a.password.clone())
            } else {
                OciAuth::Basic(a.username.clone(), a.password.clone())
            }
        })
        .collect()
}

/// The registry's own error text for a refused plain-HTTP request (oci-client drops the
/// body of a 401). HTTPS registries answer with their token endpoint's message instead.
async fn http_error_message(url: &str, cred: &OciAuth) -> Option<String> {
    use http_body_util::BodyExt as _;
    let uri: http::Uri = url.parse().ok()?;
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let authority = uri.authority()?.clone();
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
    let port = authority.port_u16().unwrap_or(80);
    let limit = Duration::from_secs(5);
    let work = async {
        let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await.ok()?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.ok()?;
        let driver = tokio::spawn(conn);
        let mut req = http::Request::get(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
            .header(http::header::HOST, authority.as_str())
            .header(http::header::ACCEPT, "application/vnd.oci.image.manifest.v1+json");
        match cred {
            OciAuth::Basic(u, p) => {
                let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
                req = req.header(http::header::AUTHORIZATION, format!("Basic {b}"));
            }
            OciAuth::Bearer(t) => req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}")),
            OciAuth::Anonymous => {}
        }
        let resp = sender.send_request(req.body(http_body_util::Empty::<bytes::Bytes>::new()).ok()?).await.ok()?;
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        driver.abort();
        let doc: serde_json::Value = serde_json::from_slice(&body).ok()?;
        let msgs: Vec<String> = doc
            .get("errors")?
            .as_array()?
            .iter()
            .filter_map(|e| e.get("message").and_then(|m| m.as_str()).map(str::to_string))
            .collect();
        (!msgs.is_empty()).then(|| msgs.join("; "))
    };
    tokio::time::timeout(limit, work).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_client::client::{Config, ImageLayer};
    use std::process::Command;

    const HELLO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/guests/hello-http.wasm");
    const REGISTRY_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/registry.sh");

    fn hello_bytes() -> Vec<u8> {
        std::fs::read(HELLO).unwrap_or_else(|e| panic!("{HELLO}: {e}; build guests with scripts/build-guests.sh"))
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn auth(registry: &str, user: &str, pass: &str) -> RegistryAuth {
        RegistryAuth { registry: registry.into(), username: user.into(), password: pass.into() }
    }

    #[test]
    fn policy_defaults_follow_kubernetes() {
        use PullPolicy::*;
        let d = |img| PullPolicy::for_container(img, None);
        assert_eq!(d("nginx"), Always);
        assert_eq!(d("nginx:latest"), Always);
        assert_eq!(d("localhost:5000/app"), Always);
        assert_eq!(d("localhost:5000/app:v1"), IfNotPresent);
        assert_eq!(d("registry.example/app@sha256:abc"), IfNotPresent);
        assert_eq!(d("registry.example/app:latest@sha256:abc"), Always);
        assert_eq!(d("registry.example/app:1.2@sha256:abc"), IfNotPresent);
        assert_eq!(PullPolicy::for_container("nginx", Some("Never")), Never);
        assert_eq!(PullPolicy::for_container("nginx:1", Some("Always")), Always);
        assert_eq!(PullPolicy::for_container("nginx", Some("IfNotPresent")), IfNotPresent);
    }

    #[test]
    fn dockerconfigjson_parsing() {
        let doc = serde_json::json!({"auths": {
            "reg.example:5000": {"username": "alice", "password": "pw"},
            "https://index.docker.io/v1/": {"auth": b64("bob:pa:ss")},
            "empty.example": {"email": "x@example"}
        }});
        let mut got = auths_from_dockerconfigjson(&b64(&doc.to_string())).expect("parse");
        got.sort_by(|a, b| a.registry.cmp(&b.registry));
        assert_eq!(
            got,
            vec![auth("https://index.docker.io/v1/", "bob", "pa:ss"), auth("reg.example:5000", "alice", "pw")]
        );
        // Legacy .dockercfg shape.
        let legacy = serde_json::json!({"r.example": {"auth": b64("u:p")}});
        assert_eq!(auths_from_dockerconfigjson(&b64(&legacy.to_string())).expect("legacy"), vec![auth("r.example", "u", "p")]);
        for bad in ["%%%", &b64("not json"), &b64(r#"{"auths":{"r":{"auth":"!!!"}}}"#), &b64(r#"{"auths":{"r":{"auth":"bm9jb2xvbg=="}}}"#)] {
            let e = auths_from_dockerconfigjson(bad).expect_err(bad);
            assert_eq!(e.reason(), "ErrImagePull", "{e}");
            assert!(e.message().starts_with("invalid image pull secret"), "{e}");
        }
    }

    #[test]
    fn auth_matching() {
        let r = Reference::try_from("reg.example:5000/team/app:v1").expect("ref");
        let auths = vec![
            auth("other.example", "x", "x"),
            auth("reg.example:5000", "host", "h"),
            auth("https://reg.example:5000/team", "team", "t"),
            auth("reg.example:5000/elsewhere", "no", "no"),
            auth("reg.example:5000", "flotilla", "tok"),
        ];
        assert_eq!(
            matching_auths(&auths, &r),
            vec![OciAuth::Basic("team".into(), "t".into()), OciAuth::Basic("host".into(), "h".into()), OciAuth::Bearer("tok".into())]
        );
        let hub = Reference::try_from("library/nginx").expect("ref");
        assert_eq!(matching_auths(&[auth("https://index.docker.io/v1/", "u", "p")], &hub), vec![OciAuth::Basic("u".into(), "p".into())]);
        assert_eq!(matching_auths(&auths, &hub), vec![OciAuth::Anonymous]);
        assert!(is_loopback("localhost:5000") && is_loopback("127.0.0.1:1") && is_loopback("[::1]:5000"));
        assert!(!is_loopback("reg.example:5000"));
    }

    #[tokio::test]
    async fn file_images_allowed_refused_relative() {
        let tmp = tempfile::tempdir().expect("tmp");
        let wasm = tmp.path().join("hello.wasm");
        std::fs::write(&wasm, hello_bytes()).expect("write");
        let image = format!("file://{}", wasm.display());

        let refused = ImageStore::new(tmp.path().join("a"), false);
        let e = refused.pull(&image, PullPolicy::IfNotPresent, &[]).await.expect_err("refused");
        assert_eq!(e.reason(), "InvalidImageName");
        assert!(e.message().contains("--allow-file-images"), "{e}");

        let store = ImageStore::new(tmp.path().join("b"), true);
        let e = store.pull("file://relative/hello.wasm", PullPolicy::IfNotPresent, &[]).await.expect_err("relative");
        assert_eq!(e.reason(), "InvalidImageName");
        let e = store.pull("Bad Name!", PullPolicy::IfNotPresent, &[]).await.expect_err("bad ref");
        assert_eq!(e.reason(), "InvalidImageName");

        let img = store.pull(&image, PullPolicy::IfNotPresent, &[]).await.expect("pull");
        assert_eq!(img.digest, sha256_hex(&hello_bytes()));
        assert_eq!(img.bytes.as_slice(), hello_bytes().as_slice());
        assert_eq!(img.reference, image);
        let hex = img.digest.trim_start_matches("sha256:");
        assert!(tmp.path().join("b/blobs/sha256").join(hex).is_file());

        // Not wasm, and missing: ErrImagePull.
        let txt = tmp.path().join("x.wasm");
        std::fs::write(&txt, b"hello").expect("write");
        let e = store.pull(&format!("file://{}", txt.display()), PullPolicy::Always, &[]).await.expect_err("not wasm");
        assert_eq!(e.reason(), "ErrImagePull");
        let e = store.pull("file:///nonexistent/x.wasm", PullPolicy::IfNotPresent, &[]).await.expect_err("missing");
        assert_eq!(e.reason(), "ErrImagePull");
    }

    /// Many pods of one image starting at once on a fresh node process read its blob once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_cached_pulls_load_the_blob_once() {
        let tmp = tempfile::tempdir().expect("tmp");
        let wasm = tmp.path().join("hello.wasm");
        std::fs::write(&wasm, hello_bytes()).expect("write");
        let image = format!("file://{}", wasm.display());
        let cache = tmp.path().join("cache");
        ImageStore::new(cache.clone(), true).pull(&image, PullPolicy::IfNotPresent, &[]).await.expect("pull");
        // A new process: the index and blob are on disk, nothing in memory.
        let store = Arc::new(ImageStore::new(cache, true));
        let pulls: Vec<_> = (0..50)
            .map(|_| {
                let (store, image) = (store.clone(), image.clone());
                tokio::spawn(async move { store.pull(&image, PullPolicy::IfNotPresent, &[]).await })
            })
            .collect();
        for p in pulls {
            assert!(p.await.expect("join").expect("pull").from_cache);
        }
        assert_eq!(store.lock_state().disk_loads, 1);
    }

    #[tokio::test]
    async fn cache_serves_never_and_survives_restart() {
        let tmp = tempfile::tempdir().expect("tmp");
        let wasm = tmp.path().join("hello.wasm");
        std::fs::write(&wasm, hello_bytes()).expect("write");
        let image = format!("file://{}", wasm.display());
        let cache = tmp.path().join("cache");

        let store = ImageStore::new(cache.clone(), true);
        let e = store.pull(&image, PullPolicy::Never, &[]).await.expect_err("never, absent");
        assert_eq!(e, PullError::ErrImageNeverPull(format!("Container image \"{image}\" is not present with pull policy of Never")));
        let first = store.pull(&image, PullPolicy::IfNotPresent, &[]).await.expect("pull");
        drop(store);

        // The source is gone: only the cache can answer, after a restart.
        std::fs::remove_file(&wasm).expect("rm");
        let store = ImageStore::new(cache.clone(), true);
        let again = store.pull(&image, PullPolicy::Never, &[]).await.expect("never hit");
        assert_eq!(again.digest, first.digest);
        assert!(store.pull(&image, PullPolicy::IfNotPresent, &[]).await.is_ok());
        assert_eq!(store.pull(&image, PullPolicy::Always, &[]).await.expect_err("always").reason(), "ErrImagePull");

        // A corrupted blob is detected and not served.
        let hex = first.digest.trim_start_matches("sha256:");
        std::fs::write(cache.join("blobs/sha256").join(hex), b"\0asm garbage").expect("corrupt");
        let store = ImageStore::new(cache, true);
        assert_eq!(store.pull(&image, PullPolicy::Never, &[]).await.expect_err("corrupt").reason(), "ErrImageNeverPull");
    }

    /// A docker-registry on loopback, stopped on drop.
    struct TestRegistry {
        addr: String,
        dir: String,
    }

    impl TestRegistry {
        /// None (with a loud message) only when docker-registry is not installed.
        fn start(auth: Option<&str>) -> Option<TestRegistry> {
            if !Path::new("/usr/bin/docker-registry").exists() {
                eprintln!(
                    "\n!!!!! SKIPPING registry test: /usr/bin/docker-registry is missing \
                     (install it with scripts/registry.sh install) !!!!!\n"
                );
                return None;
            }
            let mut cmd = Command::new(REGISTRY_SH);
            cmd.arg("start");
            if let Some(a) = auth {
                cmd.args(["--auth", a]);
            }
            let out = cmd.output().expect("run scripts/registry.sh");
            assert!(out.status.success(), "registry.sh failed: {}", String::from_utf8_lossy(&out.stderr));
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let mut lines = text.lines();
            let addr = lines.next().expect("address line").to_string();
            let dir = lines.next().expect("dir line").to_string();
            Some(TestRegistry { addr, dir })
        }

        fn stop(&self) {
            let _ = Command::new(REGISTRY_SH).args(["stop", &self.dir]).status();
        }
    }

    impl Drop for TestRegistry {
        fn drop(&mut self) {
            self.stop();
        }
    }

    fn install_crypto() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }

    /// Pushes `wasm` as a one-layer artifact; returns the manifest digest.
    async fn push(reference: &str, wasm: Vec<u8>, layer_type: &str, config_type: &str, cred: OciAuth) -> String {
        let client = Client::new(ClientConfig { protocol: ClientProtocol::Http, ..ClientConfig::default() });
        let r = Reference::try_from(reference).expect("ref");
        let layer = ImageLayer::new(wasm, layer_type.to_string(), None);
        let config = Config::new(b"{}".to_vec(), config_type.to_string(), None);
        let manifest = OciImageManifest::build(std::slice::from_ref(&layer), &config, None);
        let resp = client.push(&r, &[layer], config, &cred, Some(manifest)).await.expect("push");
        let (_, digest) = client.pull_manifest(&r, &cred).await.expect("manifest after push");
        assert!(resp.manifest_url.contains(r.repository()));
        digest
    }

    #[tokio::test]
    async fn oci_anonymous_pull_cache_and_layouts() {
        install_crypto();
        let Some(reg) = TestRegistry::start(None) else { return };
        let wasm = hello_bytes();
        let image = format!("{}/flotilla/hello:v1", reg.addr);
        let manifest_digest = push(&image, wasm.clone(), "application/wasm", WASM_CONFIG_MEDIA_TYPE, OciAuth::Anonymous).await;

        let tmp = tempfile::tempdir().expect("tmp");
        let store = ImageStore::new(tmp.path().to_path_buf(), false);
        assert_eq!(store.pull(&image, PullPolicy::Never, &[]).await.expect_err("not yet").reason(), "ErrImageNeverPull");
        let img = store.pull(&image, PullPolicy::IfNotPresent, &[]).await.expect("pull");
        assert_eq!(img.bytes.as_slice(), wasm.as_slice());
        assert_eq!(img.digest, sha256_hex(&wasm));
        assert_eq!(img.manifest_digest.as_deref(), Some(manifest_digest.as_str()));

        // By digest, and the other wasm layer media type.
        let by_digest = format!("{}/flotilla/hello@{manifest_digest}", reg.addr);
        assert_eq!(store.pull(&by_digest, PullPolicy::Always, &[]).await.expect("by digest").digest, img.digest);
        let alt = format!("{}/flotilla/alt:v1", reg.addr);
        push(&alt, wasm.clone(), "application/vnd.wasm.content.layer.v1+wasm", "application/vnd.oci.image.config.v1+json", OciAuth::Anonymous).await;
        assert_eq!(store.pull(&alt, PullPolicy::Always, &[]).await.expect("alt layout").digest, img.digest);

        // Not a wasm artifact.
        let tar = format!("{}/flotilla/tar:v1", reg.addr);
        push(&tar, wasm.clone(), "application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.config.v1+json", OciAuth::Anonymous).await;
        let e = store.pull(&tar, PullPolicy::IfNotPresent, &[]).await.expect_err("tar");
        assert_eq!(e.reason(), "ErrImagePull");
        assert!(e.message().contains("not a wasm artifact"), "{e}");

        // Missing tag.
        let missing = format!("{}/flotilla/hello:nope", reg.addr);
        let e = store.pull(&missing, PullPolicy::IfNotPresent, &[]).await.expect_err("missing tag");
        assert_eq!(e.reason(), "ErrImagePull");
        assert!(e.message().contains("MANIFEST_UNKNOWN") && e.message().contains(&missing), "{e}");

        // Registry gone: cached pulls need no network, Always fails, and a restart keeps it.
        reg.stop();
        assert!(store.pull(&image, PullPolicy::IfNotPresent, &[]).await.is_ok());
        let e = store.pull(&image, PullPolicy::Always, &[]).await.expect_err("always, registry down");
        assert_eq!(e.reason(), "ErrImagePull");
        drop(store);
        let store = ImageStore::new(tmp.path().to_path_buf(), false);
        let again = store.pull(&image, PullPolicy::Never, &[]).await.expect("never after restart");
        assert_eq!(again.manifest_digest.as_deref(), Some(manifest_digest.as_str()));
    }

    #[tokio::test]
    async fn oci_basic_auth_from_dockerconfigjson() {
        install_crypto();
        let Some(reg) = TestRegistry::start(Some("alice:s3cret")) else { return };
        let wasm = hello_bytes();
        let image = format!("{}/private/hello:v2", reg.addr);
        push(&image, wasm.clone(), "application/wasm", WASM_CONFIG_MEDIA_TYPE, OciAuth::Basic("alice".into(), "s3cret".into())).await;

        let secret = |pw: &str| {
            let doc = serde_json::json!({"auths": {reg.addr.clone(): {"auth": b64(&format!("alice:{pw}"))}}});
            auths_from_dockerconfigjson(&b64(&doc.to_string())).expect("secret")
        };
        let tmp = tempfile::tempdir().expect("tmp");
        let store = ImageStore::new(tmp.path().to_path_buf(), false);

        let e = store.pull(&image, PullPolicy::Always, &[]).await.expect_err("anonymous");
        assert_eq!(e.reason(), "ErrImagePull");
        assert!(e.message().contains("authentication required"), "{e}");

        let e = store.pull(&image, PullPolicy::Always, &secret("wrong")).await.expect_err("wrong password");
        assert_eq!(e.reason(), "ErrImagePull");
        assert!(e.message().contains("authentication required"), "registry's message expected: {e}");

        // A wrong credential first, then the right one (more specific key wins ordering).
        let mut both = secret("wrong");
        both.extend(secret("s3cret"));
        let img = store.pull(&image, PullPolicy::Always, &both).await.expect("pull with secret");
        assert_eq!(img.bytes.as_slice(), wasm.as_slice());

        let missing = format!("{}/private/hello:nope", reg.addr);
        let e = store.pull(&missing, PullPolicy::Always, &secret("s3cret")).await.expect_err("missing tag");
        assert!(e.message().contains("manifest unknown"), "{e}");
    }
}
