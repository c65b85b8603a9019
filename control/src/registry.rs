//! The cluster's own OCI registry: the distribution API (`/v2/…`) served by the API
//! server, so `flotilla push` and nodes need no other registry.
//!
//! Layout under the registry root (`DATA_DIR/registry`):
//! - `blobs/sha256/HEX` — every blob and manifest, content-addressed; a file there always
//!   holds exactly the bytes whose sha256 is HEX (written to a temp file, then renamed).
//! - `uploads/UUID` — blob uploads in progress (state in memory; lost on restart).
//! - `repos/NAME/_manifests/HEX` — the manifest HEX belongs to repository NAME; the file
//!   holds the media type it was pushed with.
//! - `repos/NAME/_tags/TAG` — the digest the tag points at.
//!
//! Repository name components never start with `_`, so `_manifests`/`_tags` cannot clash
//! with a nested repository. Every request needs the admin token (Bearer, or Basic with any
//! user name and the token as password); without it the answer is 401 with a Basic
//! challenge so docker-style clients retry with credentials.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures::StreamExt as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

/// Largest manifest accepted (distribution's limit is 4 MiB).
const MAX_MANIFEST: usize = 4 * 1024 * 1024;
/// Largest blob accepted (components are megabytes; this bounds what one push can store).
const MAX_BLOB: u64 = 512 * 1024 * 1024;
/// Chunked uploads open at once, and how long an idle one is kept.
const MAX_UPLOADS: usize = 64;
const UPLOAD_IDLE: std::time::Duration = std::time::Duration::from_secs(3600);
const API_VERSION: &str = "registry/2.0";

/// Failures, as the distribution spec's error codes.
#[derive(Debug, thiserror::Error)]
enum RegistryError {
    #[error("authentication required")]
    Unauthorized,
    #[error("requested access to the resource is denied: {0}")]
    Denied(String),
    #[error("invalid repository name")]
    NameInvalid,
    #[error("repository name not known to registry")]
    NameUnknown,
    #[error("blob unknown to registry")]
    BlobUnknown,
    #[error("blob upload unknown to registry")]
    BlobUploadUnknown,
    #[error("blob upload invalid: {0}")]
    BlobUploadInvalid(String),
    #[error("provided digest did not match uploaded content")]
    DigestInvalid,
    #[error("manifest unknown")]
    ManifestUnknown,
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    #[error("manifest references unknown blob {0}")]
    ManifestBlobUnknown(String),
    #[error("invalid tag")]
    TagInvalid,
    #[error("requested range not satisfiable")]
    RangeInvalid,
    #[error("blob larger than {0} bytes")]
    TooLarge(u64),
    #[error("too many uploads in progress; finish or cancel some first")]
    TooManyUploads,
    #[error("the operation is unsupported")]
    Unsupported,
    #[error("storage error: {0}")]
    Io(#[from] std::io::Error),
}

impl RegistryError {
    fn code(&self) -> (StatusCode, &'static str) {
        match self {
            RegistryError::Unauthorized => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            RegistryError::Denied(_) => (StatusCode::FORBIDDEN, "DENIED"),
            RegistryError::NameInvalid => (StatusCode::BAD_REQUEST, "NAME_INVALID"),
            RegistryError::NameUnknown => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
            RegistryError::BlobUnknown => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
            RegistryError::BlobUploadUnknown => (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
            RegistryError::BlobUploadInvalid(_) => (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID"),
            RegistryError::DigestInvalid => (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
            RegistryError::ManifestUnknown => (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
            RegistryError::ManifestInvalid(_) => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
            RegistryError::ManifestBlobUnknown(_) => (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN"),
            RegistryError::TagInvalid => (StatusCode::BAD_REQUEST, "TAG_INVALID"),
            RegistryError::RangeInvalid => (StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID"),
            RegistryError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID"),
            RegistryError::TooManyUploads => (StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS"),
            RegistryError::Unsupported => (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
            RegistryError::Io(_) => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
        }
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let (status, code) = self.code();
        if let RegistryError::Io(e) = &self {
            tracing::error!(error = %e, "registry storage failure");
        }
        let body = json!({"errors": [{"code": code, "message": self.to_string()}]}).to_string();
        let mut r = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"flotilla\""));
        }
        r.headers_mut().insert("docker-distribution-api-version", HeaderValue::from_static(API_VERSION));
        r
    }
}

type Result<T> = std::result::Result<T, RegistryError>;

/// An upload in progress: bytes so far are in `uploads/UUID`.
struct Upload {
    repo: String,
    size: u64,
    hasher: Sha256,
    /// Last time a request worked on it (idle uploads are dropped).
    touched: std::time::Instant,
}

/// Decides whether the API user of a request (in its extensions) may do `verb` (get,
/// create, delete) on repository `repo` ("" for the base endpoint): Err(None) when the
/// request has no user (401), Err(Some(why)) when refused (403).
pub(crate) type Access = Arc<dyn Fn(&axum::http::Extensions, &str, &str) -> std::result::Result<(), Option<String>> + Send + Sync>;

/// The registry's storage and credentials.
pub struct Registry {
    root: PathBuf,
    token: String,
    /// Who may do what, once the API server authenticates requests (else: the token).
    access: Option<Access>,
    uploads: Mutex<HashMap<String, Upload>>,
    max_blob: u64,
    max_uploads: usize,
}

impl Registry {
    /// A registry storing under `root` and accepting `token`.
    pub fn new(root: PathBuf, token: String) -> Self {
        // Uploads live in memory: files of a previous run's unfinished ones are garbage.
        let _ = std::fs::remove_dir_all(root.join("uploads"));
        Registry { root, token, access: None, uploads: Mutex::new(HashMap::new()), max_blob: MAX_BLOB, max_uploads: MAX_UPLOADS }
    }

    /// Requests are authorized by `access` (the API server's authorizer) instead of the
    /// token alone.
    pub(crate) fn with_access(mut self, access: Access) -> Self {
        self.access = Some(access);
        self
    }

    #[cfg(test)]
    fn with_limits(mut self, max_blob: u64, max_uploads: usize) -> Self {
        self.max_blob = max_blob;
        self.max_uploads = max_uploads;
        self
    }

    fn blob_path(&self, hex: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(hex)
    }

    fn repo_dir(&self, repo: &str) -> PathBuf {
        self.root.join("repos").join(repo)
    }

    fn upload_path(&self, uuid: &str) -> PathBuf {
        self.root.join("uploads").join(uuid)
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        crate::apiserver::auth::presented_token(headers).is_some_and(|t| crate::apiserver::auth::constant_time_eq(t.as_bytes(), self.token.as_bytes()))
    }
}

/// The routes under `/v2`, ready to merge into the API server's router.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/v2", any(handle))
        .route("/v2/", any(handle))
        .route("/v2/{*rest}", any(handle))
        .with_state(registry)
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/…)*`, the distribution spec's name grammar.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.split('/').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, b'.' | b'_' | b'-'))
                && !c.contains("..")
        })
}

/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, b'.' | b'_' | b'-'))
}

/// The hex part of a `sha256:HEX` digest.
fn digest_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))).then_some(hex)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a `/v2/…` path asks for.
#[derive(Debug, PartialEq)]
enum Target<'a> {
    Base,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    UploadStart(&'a str),
    Upload(&'a str, &'a str),
    Blob(&'a str, &'a str),
}

fn parse_target(path: &str) -> Option<Target<'_>> {
    let rest = path.strip_prefix("/v2")?;
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Some(Target::Base);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Target::Tags(name));
    }
    if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        return Some(Target::Manifest(name, reference));
    }
    if let Some(name) = rest.strip_suffix("/blobs/uploads/").or_else(|| rest.strip_suffix("/blobs/uploads")) {
        return Some(Target::UploadStart(name));
    }
    if let Some((name, uuid)) = rest.rsplit_once("/blobs/uploads/") {
        return Some(Target::Upload(name, uuid));
    }
    if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
        return Some(Target::Blob(name, digest));
    }
    None
}

async fn handle(State(reg): State<Arc<Registry>>, req: Request) -> Response {
    match serve(&reg, req).await {
        Ok(mut r) => {
            r.headers_mut().insert("docker-distribution-api-version", HeaderValue::from_static(API_VERSION));
            r
        }
        Err(e) => e.into_response(),
    }
}

fn query_param(req: &Request, key: &str) -> Option<String> {
    let q = req.uri().query()?;
    form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

async fn serve(reg: &Registry, req: Request) -> Result<Response> {
    if reg.access.is_none() && !reg.authorized(req.headers()) {
        return Err(RegistryError::Unauthorized);
    }
    let path = req.uri().path().to_string();
    let target = parse_target(&path).ok_or(RegistryError::Unsupported)?;
    let name = match &target {
        Target::Base => None,
        Target::Tags(n) | Target::Manifest(n, _) | Target::UploadStart(n) | Target::Upload(n, _) | Target::Blob(n, _) => Some(*n),
    };
    if let Some(n) = name
        && !valid_name(n)
    {
        return Err(RegistryError::NameInvalid);
    }
    if let Some(access) = &reg.access {
        // Pull is get, push is create, removing an upload is delete.
        let verb = match *req.method() {
            Method::GET | Method::HEAD => "get",
            Method::DELETE => "delete",
            _ => "create",
        };
        access(req.extensions(), verb, name.unwrap_or("")).map_err(|e| match e {
            None => RegistryError::Unauthorized,
            Some(why) => RegistryError::Denied(why),
        })?;
    }
    let method = req.method().clone();
    match (target, method) {
        (Target::Base, Method::GET | Method::HEAD) => Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{}").into_response()),
        (Target::Tags(repo), Method::GET) => {
            let (n, last) = (query_param(&req, "n"), query_param(&req, "last"));
            tags_list(reg, repo, n, last).await
        }
        (Target::Manifest(repo, reference), m @ (Method::GET | Method::HEAD)) => get_manifest(reg, repo, reference, m == Method::HEAD).await,
        (Target::Manifest(repo, reference), Method::PUT) => put_manifest(reg, repo, reference, req).await,
        (Target::Blob(_, digest), m @ (Method::GET | Method::HEAD)) => get_blob(reg, digest, m == Method::HEAD).await,
        (Target::UploadStart(repo), Method::POST) => start_upload(reg, repo, req).await,
        (Target::Upload(repo, uuid), Method::PATCH) => patch_upload(reg, repo, uuid, req).await,
        (Target::Upload(repo, uuid), Method::PUT) => finish_upload(reg, repo, uuid, req).await,
        (Target::Upload(repo, uuid), Method::GET) => upload_status(reg, repo, uuid),
        (Target::Upload(_, uuid), Method::DELETE) => {
            let removed = lock(&reg.uploads).remove(uuid);
            if removed.is_none() {
                return Err(RegistryError::BlobUploadUnknown);
            }
            let _ = tokio::fs::remove_file(reg.upload_path(uuid)).await;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(RegistryError::Unsupported),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Writes `bytes` to `path` through a temp file and a rename.
async fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().ok_or_else(|| std::io::Error::other("path without a parent"))?;
    tokio::fs::create_dir_all(dir).await?;
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    let mut f = tokio::fs::File::create(&tmp).await?;
    f.write_all(bytes).await?;
    f.sync_all().await?;
    drop(f);
    tokio::fs::rename(&tmp, path).await
}

async fn tags_list(reg: &Registry, repo: &str, n: Option<String>, last: Option<String>) -> Result<Response> {
    let dir = reg.repo_dir(repo);
    if !tokio::fs::try_exists(dir.join("_manifests")).await.unwrap_or(false) {
        return Err(RegistryError::NameUnknown);
    }
    let mut tags = Vec::new();
    if let Ok(mut rd) = tokio::fs::read_dir(dir.join("_tags")).await {
        while let Some(e) = rd.next_entry().await? {
            if let Some(t) = e.file_name().to_str()
                && valid_tag(t)
            {
                tags.push(t.to_string());
            }
        }
    }
    tags.sort();
    if let Some(last) = last {
        tags.retain(|t| t.as_str() > last.as_str());
    }
    let mut link = None;
    if let Some(n) = n.and_then(|n| n.parse::<usize>().ok())
        && tags.len() > n
    {
        tags.truncate(n);
        if let Some(last) = tags.last() {
            link = Some(format!("</v2/{repo}/tags/list?n={n}&last={last}>; rel=\"next\""));
        }
    }
    let body = json!({"name": repo, "tags": tags}).to_string();
    let mut r = (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(l) = link {
        r.headers_mut().insert(header::LINK, header_value(&l));
    }
    Ok(r)
}

/// Resolves a tag or digest reference of `repo` to the manifest's hex digest.
async fn resolve(reg: &Registry, repo: &str, reference: &str) -> Result<String> {
    if reference.contains(':') {
        let hex = digest_hex(reference).ok_or(RegistryError::DigestInvalid)?;
        return Ok(hex.to_string());
    }
    if !valid_tag(reference) {
        return Err(RegistryError::TagInvalid);
    }
    let digest = match tokio::fs::read_to_string(reg.repo_dir(repo).join("_tags").join(reference)).await {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(RegistryError::ManifestUnknown),
        Err(e) => return Err(e.into()),
    };
    digest_hex(digest.trim()).map(str::to_string).ok_or(RegistryError::ManifestUnknown)
}

async fn get_manifest(reg: &Registry, repo: &str, reference: &str, head: bool) -> Result<Response> {
    let hex = resolve(reg, repo, reference).await?;
    let media_type = match tokio::fs::read_to_string(reg.repo_dir(repo).join("_manifests").join(&hex)).await {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(RegistryError::ManifestUnknown),
        Err(e) => return Err(e.into()),
    };
    let bytes = match tokio::fs::read(reg.blob_path(&hex)).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(RegistryError::ManifestUnknown),
        Err(e) => return Err(e.into()),
    };
    let len = bytes.len();
    let body = if head { Body::empty() } else { Body::from(bytes) };
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, header_value(media_type.trim()));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert("docker-content-digest", header_value(&format!("sha256:{hex}")));
    Ok(r)
}

async fn put_manifest(reg: &Registry, repo: &str, reference: &str, req: Request) -> Result<Response> {
    let media_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let bytes = axum::body::to_bytes(req.into_body(), MAX_MANIFEST)
        .await
        .map_err(|_| RegistryError::ManifestInvalid(format!("manifest larger than {MAX_MANIFEST} bytes")))?;
    let doc: Value = serde_json::from_slice(&bytes).map_err(|e| RegistryError::ManifestInvalid(e.to_string()))?;
    let media_type = media_type
        .or_else(|| doc["mediaType"].as_str().map(str::to_string))
        .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".to_string());
    let hex = hex(&Sha256::digest(&bytes));
    let tag = if reference.contains(':') {
        if digest_hex(reference) != Some(hex.as_str()) {
            return Err(RegistryError::DigestInvalid);
        }
        None
    } else if valid_tag(reference) {
        Some(reference)
    } else {
        return Err(RegistryError::TagInvalid);
    };
    // Everything the manifest points at must already be here.
    let mut blobs: Vec<&str> = Vec::new();
    if let Some(d) = doc["config"]["digest"].as_str() {
        blobs.push(d);
    }
    for l in doc["layers"].as_array().into_iter().flatten() {
        blobs.push(l["digest"].as_str().unwrap_or(""));
    }
    for d in blobs {
        let ok = match digest_hex(d) {
            Some(h) => tokio::fs::try_exists(reg.blob_path(h)).await.unwrap_or(false),
            None => false,
        };
        if !ok {
            return Err(RegistryError::ManifestBlobUnknown(d.to_string()));
        }
    }
    for m in doc["manifests"].as_array().into_iter().flatten() {
        let d = m["digest"].as_str().unwrap_or("");
        let ok = match digest_hex(d) {
            Some(h) => tokio::fs::try_exists(reg.repo_dir(repo).join("_manifests").join(h)).await.unwrap_or(false),
            None => false,
        };
        if !ok {
            return Err(RegistryError::ManifestBlobUnknown(d.to_string()));
        }
    }
    let blob = reg.blob_path(&hex);
    if !tokio::fs::try_exists(&blob).await.unwrap_or(false) {
        write_atomic(&blob, &bytes).await?;
    }
    write_atomic(&reg.repo_dir(repo).join("_manifests").join(&hex), media_type.as_bytes()).await?;
    if let Some(t) = tag {
        write_atomic(&reg.repo_dir(repo).join("_tags").join(t), format!("sha256:{hex}").as_bytes()).await?;
    }
    let digest = format!("sha256:{hex}");
    let mut r = StatusCode::CREATED.into_response();
    let h = r.headers_mut();
    h.insert(header::LOCATION, header_value(&format!("/v2/{repo}/manifests/{digest}")));
    h.insert("docker-content-digest", header_value(&digest));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    Ok(r)
}

async fn get_blob(reg: &Registry, digest: &str, head: bool) -> Result<Response> {
    let hex = digest_hex(digest).ok_or(RegistryError::DigestInvalid)?;
    let file = match tokio::fs::File::open(reg.blob_path(hex)).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(RegistryError::BlobUnknown),
        Err(e) => return Err(e.into()),
    };
    let len = file.metadata().await?.len();
    let body = if head { Body::empty() } else { Body::from_stream(tokio_util_reader(file)) };
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert("docker-content-digest", header_value(digest));
    h.insert(header::ETAG, header_value(&format!("\"{digest}\"")));
    Ok(r)
}

/// Streams a file in 64 KiB chunks.
fn tokio_util_reader(file: tokio::fs::File) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> {
    use tokio::io::AsyncReadExt as _;
    futures::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

fn upload_response(status: StatusCode, repo: &str, uuid: &str, size: u64) -> Response {
    let mut r = status.into_response();
    let h = r.headers_mut();
    h.insert(header::LOCATION, header_value(&format!("/v2/{repo}/blobs/uploads/{uuid}")));
    h.insert("docker-upload-uuid", header_value(uuid));
    h.insert(header::RANGE, header_value(&format!("0-{}", size.saturating_sub(1))));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    r
}

/// Appends a request body to the upload file, hashing as it goes.
async fn append(path: &Path, up: &mut Upload, body: Body, max_blob: u64) -> Result<()> {
    let mut f = tokio::fs::OpenOptions::new().create(true).append(true).open(path).await?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| RegistryError::BlobUploadInvalid(format!("reading the request body: {e}")))?;
        if up.size + chunk.len() as u64 > max_blob {
            return Err(RegistryError::TooLarge(max_blob));
        }
        f.write_all(&chunk).await?;
        up.hasher.update(&chunk);
        up.size += chunk.len() as u64;
    }
    f.flush().await?;
    Ok(())
}

/// Moves a finished upload into the blob store once its digest checks out.
async fn commit(reg: &Registry, uuid: &str, up: Upload, digest: &str) -> Result<()> {
    let path = reg.upload_path(uuid);
    let expected = digest_hex(digest).ok_or(RegistryError::DigestInvalid);
    let actual = hex(&up.hasher.finalize());
    let expected = match expected {
        Ok(e) if e == actual => e,
        _ => {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(RegistryError::DigestInvalid);
        }
    };
    let blob = reg.blob_path(expected);
    if tokio::fs::try_exists(&blob).await.unwrap_or(false) {
        let _ = tokio::fs::remove_file(&path).await;
        return Ok(());
    }
    if let Some(dir) = blob.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    // An empty upload never created its file.
    if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        tokio::fs::write(&path, b"").await?;
    }
    tokio::fs::File::open(&path).await?.sync_all().await?;
    tokio::fs::rename(&path, &blob).await?;
    Ok(())
}

fn blob_created(repo: &str, digest: &str) -> Response {
    let mut r = StatusCode::CREATED.into_response();
    let h = r.headers_mut();
    h.insert(header::LOCATION, header_value(&format!("/v2/{repo}/blobs/{digest}")));
    h.insert("docker-content-digest", header_value(digest));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    r
}

async fn start_upload(reg: &Registry, repo: &str, req: Request) -> Result<Response> {
    // Cross-repository mount: blobs are global, so an existing blob mounts at once.
    if let Some(mount) = query_param(&req, "mount") {
        let hex = digest_hex(&mount).ok_or(RegistryError::DigestInvalid)?;
        if tokio::fs::try_exists(reg.blob_path(hex)).await.unwrap_or(false) {
            return Ok(blob_created(repo, &mount));
        }
    }
    let digest = query_param(&req, "digest");
    let uuid = uuid::Uuid::new_v4().to_string();
    tokio::fs::create_dir_all(reg.root.join("uploads")).await?;
    let mut up = Upload { repo: repo.to_string(), size: 0, hasher: Sha256::new(), touched: std::time::Instant::now() };
    let path = reg.upload_path(&uuid);
    if let Some(digest) = digest {
        // Monolithic upload: the whole blob is this request's body.
        if let Err(e) = append(&path, &mut up, req.into_body(), reg.max_blob).await {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
        commit(reg, &uuid, up, &digest).await?;
        return Ok(blob_created(repo, &digest));
    }
    let (idle, full) = {
        let mut uploads = lock(&reg.uploads);
        let idle: Vec<String> = uploads.iter().filter(|(_, u)| u.touched.elapsed() > UPLOAD_IDLE).map(|(k, _)| k.clone()).collect();
        for k in &idle {
            uploads.remove(k);
        }
        (idle, uploads.len() >= reg.max_uploads)
    };
    for k in idle {
        let _ = tokio::fs::remove_file(reg.upload_path(&k)).await;
    }
    if full {
        return Err(RegistryError::TooManyUploads);
    }
    tokio::fs::write(&path, b"").await?;
    lock(&reg.uploads).insert(uuid.clone(), up);
    Ok(upload_response(StatusCode::ACCEPTED, repo, &uuid, 0))
}

/// Takes the upload out of the table while a request works on it.
fn take_upload(reg: &Registry, repo: &str, uuid: &str) -> Result<Upload> {
    let mut uploads = lock(&reg.uploads);
    match uploads.get(uuid) {
        Some(u) if u.repo == repo => uploads.remove(uuid).ok_or(RegistryError::BlobUploadUnknown),
        _ => Err(RegistryError::BlobUploadUnknown),
    }
}

fn upload_status(reg: &Registry, repo: &str, uuid: &str) -> Result<Response> {
    let uploads = lock(&reg.uploads);
    match uploads.get(uuid) {
        Some(u) if u.repo == repo => Ok(upload_response(StatusCode::NO_CONTENT, repo, uuid, u.size)),
        _ => Err(RegistryError::BlobUploadUnknown),
    }
}

/// The start offset of a `Content-Range: START-END` header, if any.
fn content_range_start(headers: &HeaderMap) -> Result<Option<u64>> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else { return Ok(None) };
    let s = v.to_str().map_err(|_| RegistryError::RangeInvalid)?;
    let s = s.trim().trim_start_matches("bytes").trim_start_matches([' ', '=']);
    let (start, _) = s.split_once('-').ok_or(RegistryError::RangeInvalid)?;
    start.trim().parse::<u64>().map(Some).map_err(|_| RegistryError::RangeInvalid)
}

async fn patch_upload(reg: &Registry, repo: &str, uuid: &str, req: Request) -> Result<Response> {
    let mut up = take_upload(reg, repo, uuid)?;
    match content_range_start(req.headers()) {
        Ok(Some(start)) if start != up.size => {
            let size = up.size;
            lock(&reg.uploads).insert(uuid.to_string(), up);
            let mut r = RegistryError::RangeInvalid.into_response();
            r.headers_mut().insert(header::RANGE, header_value(&format!("0-{}", size.saturating_sub(1))));
            r.headers_mut().insert(header::LOCATION, header_value(&format!("/v2/{repo}/blobs/uploads/{uuid}")));
            return Ok(r);
        }
        Ok(_) => {}
        Err(e) => {
            lock(&reg.uploads).insert(uuid.to_string(), up);
            return Err(e);
        }
    }
    let path = reg.upload_path(uuid);
    if let Err(e) = append(&path, &mut up, req.into_body(), reg.max_blob).await {
        // Partial data may have been written: the upload cannot continue.
        let _ = tokio::fs::remove_file(&path).await;
        return Err(e);
    }
    let size = up.size;
    up.touched = std::time::Instant::now();
    lock(&reg.uploads).insert(uuid.to_string(), up);
    Ok(upload_response(StatusCode::ACCEPTED, repo, uuid, size))
}

async fn finish_upload(reg: &Registry, repo: &str, uuid: &str, req: Request) -> Result<Response> {
    let Some(digest) = query_param(&req, "digest") else {
        return Err(RegistryError::DigestInvalid);
    };
    let mut up = take_upload(reg, repo, uuid)?;
    let path = reg.upload_path(uuid);
    if let Err(e) = append(&path, &mut up, req.into_body(), reg.max_blob).await {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(e);
    }
    commit(reg, uuid, up, &digest).await?;
    Ok(blob_created(repo, &digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    const TOKEN: &str = "s3cret";

    fn setup() -> (tempfile::TempDir, Router) {
        let dir = tempfile::tempdir().expect("tempdir");
        let reg = Arc::new(Registry::new(dir.path().join("registry"), TOKEN.to_string()));
        (dir, router(reg))
    }

    fn req(method: Method, uri: &str, headers: &[(&str, &str)], body: impl Into<Body>) -> Request {
        let mut b = axum::http::Request::builder().method(method).uri(uri).header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(body.into()).expect("request")
    }

    async fn send(app: &Router, r: Request) -> (StatusCode, HeaderMap, bytes::Bytes) {
        let resp = app.clone().oneshot(r).await.expect("infallible");
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.expect("body");
        (parts.status, parts.headers, bytes)
    }

    fn digest_of(b: &[u8]) -> String {
        format!("sha256:{}", hex(&Sha256::digest(b)))
    }

    fn hdr<'a>(h: &'a HeaderMap, k: &str) -> &'a str {
        h.get(k).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    #[test]
    fn paths_parse_with_slashes_in_names() {
        assert_eq!(parse_target("/v2/"), Some(Target::Base));
        assert_eq!(parse_target("/v2/a/b/tags/list"), Some(Target::Tags("a/b")));
        assert_eq!(parse_target("/v2/a/b/manifests/v1"), Some(Target::Manifest("a/b", "v1")));
        assert_eq!(parse_target("/v2/a/blobs/uploads/"), Some(Target::UploadStart("a")));
        assert_eq!(parse_target("/v2/a/b/blobs/uploads/xyz"), Some(Target::Upload("a/b", "xyz")));
        assert_eq!(parse_target("/v2/a/blobs/sha256:00"), Some(Target::Blob("a", "sha256:00")));
        assert!(valid_name("library/hello-world"));
        assert!(!valid_name("../etc"));
        assert!(!valid_name("a/_tags"));
        assert!(!valid_name("Upper"));
        assert!(valid_tag("v1.0_rc-1"));
        assert!(!valid_tag(".hidden"));
    }

    #[tokio::test]
    async fn requests_without_the_token_get_a_basic_challenge() {
        let (_d, app) = setup();
        let r = axum::http::Request::builder().uri("/v2/").body(Body::empty()).expect("request");
        let (status, headers, body) = send(&app, r).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(hdr(&headers, "www-authenticate"), "Basic realm=\"flotilla\"");
        assert!(String::from_utf8_lossy(&body).contains("UNAUTHORIZED"));
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("anyone:{TOKEN}"));
        let r = axum::http::Request::builder().uri("/v2/").header("authorization", format!("Basic {basic}")).body(Body::empty()).expect("request");
        let (status, _, body) = send(&app, r).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"{}");
        let wrong = base64::engine::general_purpose::STANDARD.encode("anyone:nope");
        let r = axum::http::Request::builder().uri("/v2/").header("authorization", format!("Basic {wrong}")).body(Body::empty()).expect("request");
        assert_eq!(send(&app, r).await.0, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn chunked_upload_manifest_and_pull_round_trip() {
        let (dir, app) = setup();
        let layer = b"\0asm\x0d\0\x01\0 pretend component".to_vec();
        let layer_digest = digest_of(&layer);
        // Chunked upload: POST, two PATCHes with Content-Range, PUT ?digest=.
        let (status, h, _) = send(&app, req(Method::POST, "/v2/team/hello/blobs/uploads/", &[], Body::empty())).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let location = hdr(&h, "location").to_string();
        assert!(location.starts_with("/v2/team/hello/blobs/uploads/"), "{location}");
        assert!(!hdr(&h, "docker-upload-uuid").is_empty());
        let (first, second) = layer.split_at(10);
        let (status, h, _) = send(&app, req(Method::PATCH, &location, &[("content-range", "0-9")], first.to_vec())).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(hdr(&h, "range"), "0-9");
        // A chunk at the wrong offset is refused and leaves the upload intact.
        let (status, _, _) = send(&app, req(Method::PATCH, &location, &[("content-range", "3-5")], b"xyz".to_vec())).await;
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
        let range = format!("10-{}", layer.len() - 1);
        let (status, _, _) = send(&app, req(Method::PATCH, &location, &[("content-range", &range)], second.to_vec())).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let (status, h, _) = send(&app, req(Method::PUT, &format!("{location}?digest={layer_digest}"), &[], Body::empty())).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(hdr(&h, "docker-content-digest"), layer_digest);
        assert!(dir.path().join("registry/blobs/sha256").join(layer_digest.trim_start_matches("sha256:")).exists());

        // Monolithic config upload.
        let config = br#"{"architecture":"wasm","os":"wasip2"}"#.to_vec();
        let config_digest = digest_of(&config);
        let (status, _, _) =
            send(&app, req(Method::POST, &format!("/v2/team/hello/blobs/uploads/?digest={config_digest}"), &[], config.clone())).await;
        assert_eq!(status, StatusCode::CREATED);

        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/wasm", "digest": layer_digest, "size": layer.len()}],
        })
        .to_string()
        .into_bytes();
        let manifest_digest = digest_of(&manifest);
        let ct = "application/vnd.oci.image.manifest.v1+json";
        let (status, h, _) = send(&app, req(Method::PUT, "/v2/team/hello/manifests/v1", &[("content-type", ct)], manifest.clone())).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(hdr(&h, "docker-content-digest"), manifest_digest);

        // Pull by tag and by digest: exact bytes, digest and media type.
        for reference in ["v1", manifest_digest.as_str()] {
            let (status, h, body) = send(&app, req(Method::GET, &format!("/v2/team/hello/manifests/{reference}"), &[], Body::empty())).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(&body[..], &manifest[..]);
            assert_eq!(hdr(&h, "content-type"), ct);
            assert_eq!(hdr(&h, "docker-content-digest"), manifest_digest);
        }
        let (status, h, body) = send(&app, req(Method::HEAD, "/v2/team/hello/manifests/v1", &[], Body::empty())).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.is_empty());
        assert_eq!(hdr(&h, "content-length"), manifest.len().to_string());
        let (status, h, body) = send(&app, req(Method::GET, &format!("/v2/team/hello/blobs/{layer_digest}"), &[], Body::empty())).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], &layer[..]);
        assert_eq!(hdr(&h, "docker-content-digest"), layer_digest);
        let (status, _, body) = send(&app, req(Method::GET, "/v2/team/hello/tags/list", &[], Body::empty())).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(serde_json::from_slice::<Value>(&body).expect("json"), json!({"name": "team/hello", "tags": ["v1"]}));

        // Unknown things answer with the spec's codes.
        let (status, _, body) = send(&app, req(Method::GET, "/v2/team/hello/manifests/v2", &[], Body::empty())).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(String::from_utf8_lossy(&body).contains("MANIFEST_UNKNOWN"));
        let missing = digest_of(b"missing");
        let (status, _, _) = send(&app, req(Method::HEAD, &format!("/v2/team/hello/blobs/{missing}"), &[], Body::empty())).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = send(&app, req(Method::GET, "/v2/other/tags/list", &[], Body::empty())).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn oversized_blobs_and_upload_floods_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = router(Arc::new(Registry::new(dir.path().join("registry"), TOKEN.to_string()).with_limits(8, 2)));
        // Monolithic and chunked uploads stop at the size limit; nothing is stored.
        let big = b"123456789".to_vec();
        let (status, _, body) = send(&app, req(Method::POST, &format!("/v2/x/blobs/uploads/?digest={}", digest_of(&big)), &[], big.clone())).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(String::from_utf8_lossy(&body).contains("blob larger than 8 bytes"), "{body:?}");
        assert!(!dir.path().join("registry/blobs/sha256").join(digest_of(&big).trim_start_matches("sha256:")).exists());
        let (status, headers, _) = send(&app, req(Method::POST, "/v2/x/blobs/uploads/", &[], Body::empty())).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let location = hdr(&headers, "location").to_string();
        let (status, _, _) = send(&app, req(Method::PATCH, &location, &[], b"12345".to_vec())).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let (status, _, _) = send(&app, req(Method::PATCH, &location, &[("content-range", "5-9")], b"6789".to_vec())).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        // Two uploads may be open at once; a third waits until one ends.
        for _ in 0..2 {
            let (status, _, _) = send(&app, req(Method::POST, "/v2/x/blobs/uploads/", &[], Body::empty())).await;
            assert_eq!(status, StatusCode::ACCEPTED);
        }
        let (status, _, body) = send(&app, req(Method::POST, "/v2/x/blobs/uploads/", &[], Body::empty())).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(String::from_utf8_lossy(&body).contains("TOOMANYREQUESTS"));
    }

    #[tokio::test]
    async fn wrong_digests_and_dangling_manifests_are_refused() {
        let (dir, app) = setup();
        let wrong = digest_of(b"something else");
        let (status, _, body) = send(&app, req(Method::POST, &format!("/v2/x/blobs/uploads/?digest={wrong}"), &[], b"data".to_vec())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(String::from_utf8_lossy(&body).contains("DIGEST_INVALID"));
        assert!(!dir.path().join("registry/blobs/sha256").join(wrong.trim_start_matches("sha256:")).exists());
        let manifest = json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": wrong, "size": 1},
            "layers": [],
        })
        .to_string();
        let (status, _, body) = send(&app, req(Method::PUT, "/v2/x/manifests/v1", &[], manifest.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(String::from_utf8_lossy(&body).contains("MANIFEST_BLOB_UNKNOWN"));
        let (status, _, _) = send(&app, req(Method::PUT, &format!("/v2/x/manifests/{wrong}"), &[], manifest)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _, _) = send(&app, req(Method::GET, "/v2/Bad/tags/list", &[], Body::empty())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
