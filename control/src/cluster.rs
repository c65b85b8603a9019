//! A control plane of several members: a member's identity, the peer transport (raft
//! messages over HTTP/2 with mutual TLS from the cluster CA), joining with a token, the
//! promotion of caught-up learners, and the membership API.
//!
//! Invariants:
//! - A member's id and name live in `D/member.json`, written once (first start or join);
//!   ids are never reused. Every member's `{id, name, apiURL, peerURL}` is a store object
//!   under [`MEMBERS`], so all members resolve peers from replicated state.
//! - A join token is `F10<sha256 of the CA PEM>::<secret>`: the joiner checks the CA it is
//!   shown against the hash before it sends the secret. The secret is a store object, so
//!   whichever member leads can admit joiners.
//! - Only the leader admits, promotes and removes members (raft conf changes); a removal
//!   that would leave the remaining voters without a live quorum is refused.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use protobuf::Message as _;
use raft::prelude::{ConfChangeType, Message};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::apiserver::error::ApiError;
use crate::apiserver::tls::write_private;
use crate::store::{Op, Precondition, Role, Store, StoreError, Transport};

/// Store keys of the members' records.
pub(crate) const MEMBERS: &str = "flotilla.dev/members/";
/// Store key of the join secret.
const JOIN_SECRET: &str = "flotilla.dev/cluster/join";
const TOKEN_PREFIX: &str = "F10";

/// How a member takes part in a cluster.
#[derive(Clone, Debug, Default)]
pub struct ClusterConfig {
    /// Where raft peers connect (None: a single member with no peer listener, as `up`).
    pub peer_listen: Option<SocketAddr>,
    /// First start only: join the cluster whose API is at this URL, with this token.
    pub join: Option<(String, String)>,
}

/// `D/member.json`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub(crate) struct Identity {
    pub id: u64,
    pub name: String,
    /// The first member: bootstraps a one-voter cluster when its store is new.
    pub founder: bool,
}

/// A member's record in the store.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MemberRecord {
    pub id: u64,
    pub name: String,
    #[serde(rename = "apiURL")]
    pub api_url: String,
    #[serde(rename = "peerURL")]
    pub peer_url: String,
}

fn member_key(id: u64) -> String {
    format!("{MEMBERS}{id}")
}

/// The URL a listener is reached at (an unspecified address: loopback).
pub fn url_of(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() { std::net::IpAddr::from([127, 0, 0, 1]) } else { addr.ip() };
    format!("https://{}", SocketAddr::new(ip, addr.port()))
}

fn random_secret() -> String {
    format!("{}", uuid::Uuid::new_v4().simple())
}

/// A join token's parts.
#[derive(Debug, PartialEq)]
pub(crate) struct JoinToken {
    pub ca_hash: String,
    pub secret: String,
}

impl JoinToken {
    pub(crate) fn parse(token: &str) -> anyhow::Result<JoinToken> {
        let rest = token.trim().strip_prefix(TOKEN_PREFIX).context("a join token starts with F10 (see D/join-token of a member)")?;
        let (hash, secret) = rest.split_once("::").context("a join token is F10<CA SHA-256>::<secret>")?;
        anyhow::ensure!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()), "the join token's CA hash is not a SHA-256 in hex");
        anyhow::ensure!(!secret.is_empty(), "the join token has no secret");
        Ok(JoinToken { ca_hash: hash.to_ascii_lowercase(), secret: secret.to_string() })
    }

    pub(crate) fn format(&self) -> String {
        format!("{TOKEN_PREFIX}{}::{}", self.ca_hash, self.secret)
    }
}

/// What a joiner sends.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct JoinRequest {
    name: String,
    #[serde(rename = "apiURL")]
    api_url: String,
    #[serde(rename = "peerURL")]
    peer_url: String,
}

/// What the leader hands a joiner: its id, the cluster's credentials, and where the
/// members are.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JoinResponse {
    id: u64,
    name: String,
    ca_cert: String,
    ca_key: String,
    admin_token: String,
    encryption_key: String,
    /// The ServiceAccount token signing key (every member verifies what any issued).
    #[serde(default)]
    sa_key: String,
    join_token: String,
    members: Vec<MemberRecord>,
}

/// What [`prepare`] found or made.
pub(crate) struct Prepared {
    pub identity: Identity,
    /// Voters of a new store.
    pub bootstrap: Vec<u64>,
    /// Peers known before the store has their records (a joiner's first contact).
    pub seeds: HashMap<u64, String>,
    /// A join token made at this start (printed once).
    pub new_token: Option<String>,
}


/// The member's identity: read from `D/member.json`, or made at first start (the
/// founder: CA, join token), or obtained by joining (`join`).
pub(crate) async fn prepare(data_dir: &Path, key_file: &Path, api_url: &str, peer_url: &str, join: Option<&(String, String)>) -> anyhow::Result<Prepared> {
    let identity_path = data_dir.join("member.json");
    if identity_path.exists() {
        let identity: Identity = serde_json::from_slice(&std::fs::read(&identity_path)?).context("reading member.json")?;
        let bootstrap = if identity.founder { vec![identity.id] } else { vec![] };
        return Ok(Prepared { identity, bootstrap, seeds: HashMap::new(), new_token: None });
    }
    let pki = data_dir.join("pki");
    match join {
        None => {
            // The founder: the CA exists once `tls::ensure` ran; make it now for the hash.
            crate::apiserver::tls::ensure(&pki, &[])?;
            let ca = std::fs::read_to_string(pki.join("ca.crt"))?;
            let token = JoinToken { ca_hash: crate::apiserver::tls::ca_hash(&ca), secret: random_secret() }.format();
            write_private(&data_dir.join("join-token"), &token)?;
            let identity = Identity { id: crate::store::FIRST_MEMBER, name: default_name(crate::store::FIRST_MEMBER), founder: true };
            write_private(&identity_path, &serde_json::to_string(&identity)?)?;
            Ok(Prepared { bootstrap: vec![identity.id], identity, seeds: HashMap::new(), new_token: Some(token) })
        }
        Some((url, token)) => {
            let token = JoinToken::parse(token)?;
            let resp = tokio::time::timeout(Duration::from_secs(25), request_join(url, &token, api_url, peer_url))
                .await
                .map_err(|_| anyhow::anyhow!("joining through {url}: no answer within 25 s"))??;
            std::fs::create_dir_all(&pki)?;
            std::fs::write(pki.join("ca.crt"), &resp.ca_cert)?;
            write_private(&pki.join("ca.key"), &resp.ca_key)?;
            write_private(&pki.join("admin.token"), &resp.admin_token)?;
            if !resp.sa_key.is_empty() {
                write_private(&pki.join("sa.key"), &resp.sa_key)?;
            }
            if !key_file.exists() {
                write_private(key_file, &resp.encryption_key)?;
            }
            write_private(&data_dir.join("join-token"), &resp.join_token)?;
            let identity = Identity { id: resp.id, name: resp.name, founder: false };
            write_private(&identity_path, &serde_json::to_string(&identity)?)?;
            let seeds = resp.members.into_iter().map(|m| (m.id, m.peer_url)).collect();
            Ok(Prepared { identity, bootstrap: vec![], seeds, new_token: None })
        }
    }
}

fn default_name(id: u64) -> String {
    format!("member-{id}")
}

/// Checks the cluster CA against the token, then asks to be admitted.
async fn request_join(url: &str, token: &JoinToken, api_url: &str, peer_url: &str) -> anyhow::Result<JoinResponse> {
    let url = url.trim_end_matches('/');
    // Nothing secret is sent until the CA is checked.
    let insecure = reqwest::Client::builder().danger_accept_invalid_certs(true).timeout(Duration::from_secs(10)).build()?;
    let ca = insecure.get(format!("{url}/flotilla/v1/cacerts")).send().await.with_context(|| format!("fetching the cluster CA from {url}"))?;
    anyhow::ensure!(ca.status().is_success(), "fetching the cluster CA from {url}: {}", ca.status());
    let ca = ca.text().await?;
    let actual = crate::apiserver::tls::ca_hash(&ca);
    anyhow::ensure!(
        actual == token.ca_hash,
        "CA hash mismatch: the cluster at {url} presents a CA whose SHA-256 is {actual}, but the join token expects {}; not joining",
        token.ca_hash
    );
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes())?])
        .timeout(Duration::from_secs(20))
        .build()?;
    let req = JoinRequest { name: String::new(), api_url: api_url.to_string(), peer_url: peer_url.to_string() };
    let resp = client.post(format!("{url}/flotilla/v1/join")).bearer_auth(&token.secret).json(&req).send().await?;
    let status = resp.status();
    if !status.is_success() {
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        anyhow::bail!("joining through {url}: {status}: {}", body["message"].as_str().unwrap_or("no message"));
    }
    Ok(resp.json().await?)
}

/// Writes the founder's record and the join secret if the store lacks them (first start).
pub(crate) async fn seed_founder(store: &Store, identity: &Identity, api_url: &str, peer_url: &str, data_dir: &Path) -> anyhow::Result<()> {
    if store.get(&member_key(identity.id)).is_none() {
        let rec = MemberRecord { id: identity.id, name: identity.name.clone(), api_url: api_url.to_string(), peer_url: peer_url.to_string() };
        store.write(Op::Create { key: member_key(identity.id), object: serde_json::to_value(&rec)? }).await.map_err(|e| anyhow::anyhow!("recording member {}: {e}", identity.id))?;
    }
    if store.get(JOIN_SECRET).is_none() {
        let token = JoinToken::parse(&std::fs::read_to_string(data_dir.join("join-token"))?)?;
        store
            .write(Op::Create { key: JOIN_SECRET.into(), object: json!({"secret": token.secret}) })
            .await
            .map_err(|e| anyhow::anyhow!("recording the join secret: {e}"))?;
    }
    Ok(())
}

/// The records of every member in the store.
fn records(store: &Store) -> Vec<MemberRecord> {
    store.list_keys(MEMBERS).into_iter().filter_map(|(_, v)| serde_json::from_value(v.value.clone()).ok()).collect()
}

// ---- the peer transport ----

/// Raft messages to peers over HTTP/2 with mutual TLS: one queue and one sending task per
/// peer; a full queue drops (raft retransmits), a batch is one POST.
pub(crate) struct HttpTransport {
    queues: Mutex<HashMap<u64, mpsc::Sender<Message>>>,
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    resolver: Arc<Resolver>,
}

/// Where a peer listens: its store record, else a seed from the join.
pub(crate) struct Resolver {
    pub store: OnceLock<Store>,
    pub seeds: HashMap<u64, String>,
}

impl Resolver {
    fn peer_url(&self, id: u64) -> Option<String> {
        let stored = self.store.get().and_then(|s| s.get(&member_key(id))).and_then(|o| o.value["peerURL"].as_str().map(str::to_string));
        stored.or_else(|| self.seeds.get(&id).cloned())
    }
}

const PEER_QUEUE: usize = 4096;
const PEER_BATCH: usize = 512;

impl HttpTransport {
    pub(crate) fn new(tls: rustls::ClientConfig, resolver: Arc<Resolver>) -> anyhow::Result<HttpTransport> {
        let client = reqwest::Client::builder().use_preconfigured_tls(tls).http2_prior_knowledge().connect_timeout(Duration::from_secs(2)).no_proxy().build()?;
        Ok(HttpTransport { queues: Mutex::new(HashMap::new()), client, runtime: tokio::runtime::Handle::current(), resolver })
    }
}

impl Transport for HttpTransport {
    fn send(&self, msgs: Vec<Message>) {
        let mut queues = self.queues.lock().expect("peer queues");
        for m in msgs {
            let to = m.to;
            let q = queues.entry(to).or_insert_with(|| {
                let (tx, rx) = mpsc::channel(PEER_QUEUE);
                self.runtime.spawn(peer_loop(to, rx, self.client.clone(), self.resolver.clone()));
                tx
            });
            if q.try_send(m).is_err() {
                tracing::debug!(to, "peer queue full; raft message dropped");
            }
        }
    }
}

fn encode_batch(batch: &[Message]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in batch {
        let bytes = m.write_to_bytes().unwrap_or_default();
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

fn decode_batch(mut body: &[u8]) -> Option<Vec<Message>> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let len = u32::from_le_bytes(body.get(..4)?.try_into().ok()?) as usize;
        let bytes = body.get(4..4 + len)?;
        out.push(Message::parse_from_bytes(bytes).ok()?);
        body = &body[4 + len..];
    }
    Some(out)
}

async fn peer_loop(to: u64, mut rx: mpsc::Receiver<Message>, client: reqwest::Client, resolver: Arc<Resolver>) {
    let mut failing = false;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < PEER_BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let Some(url) = resolver.peer_url(to) else {
            tracing::debug!(to, "no address for raft peer");
            continue;
        };
        let snapshot = batch.iter().any(|m| m.get_msg_type() == raft::prelude::MessageType::MsgSnapshot);
        // A snapshot is one message: HTTP/2 streams it in frames; give it time.
        let timeout = if snapshot { Duration::from_secs(120) } else { Duration::from_secs(5) };
        let sent = client.post(format!("{url}/raft")).body(encode_batch(&batch)).timeout(timeout).send().await;
        match sent {
            Ok(r) if r.status().is_success() => failing = false,
            Ok(r) => tracing::warn!(to, status = %r.status(), "raft peer refused messages"),
            Err(e) => {
                if !failing {
                    tracing::warn!(to, error = %e, "raft peer unreachable");
                }
                failing = true;
                // Do not spin on a dead peer; raft resends what matters.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The peer listener's routes: raft messages in.
pub(crate) fn peer_router(store: Store) -> Router {
    Router::new().route(
        "/raft",
        post(move |body: axum::body::Bytes| {
            let store = store.clone();
            async move {
                match decode_batch(&body) {
                    Some(msgs) => {
                        for m in msgs {
                            store.step(m);
                        }
                        axum::http::StatusCode::NO_CONTENT
                    }
                    None => axum::http::StatusCode::BAD_REQUEST,
                }
            }
        }),
    )
}

// ---- promotion ----

/// On the leader: promotes learners whose log has caught up with the commit index.
pub(crate) async fn promote_learners(store: Store, shutdown: crate::apiserver::Shutdown) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
            _ = shutdown.cancelled() => return,
        }
        let st = store.raft_status();
        if st.role != Role::Leader {
            continue;
        }
        for id in &st.learners {
            let caught_up = st.progress.iter().any(|p| p.id == *id && p.matched >= st.commit && p.active);
            if caught_up {
                match store.change_membership(ConfChangeType::AddNode, *id).await {
                    Ok(_) => tracing::info!(member = id, "learner caught up; promoted to voter"),
                    Err(e) => tracing::warn!(member = id, error = %e, "promoting a learner failed"),
                }
            }
        }
    }
}

// ---- the leader's Lease ----

/// The Lease the leader holds (holderIdentity: its member name).
pub(crate) const LEASE_NAME: &str = "flotilla-control-plane";
const LEASE_SECONDS: i64 = 15;

/// While `term` lasts (this member leads), keeps Lease kube-system/flotilla-control-plane
/// held by `name`, renewed every 2 s.
pub(crate) async fn hold_lease(api: crate::apiserver::Api, name: String, term: crate::apiserver::Shutdown) {
    let info = crate::apiserver::resources::find("coordination.k8s.io", "v1", "leases").expect("leases served");
    let opts = crate::apiserver::service::WriteOptions::default();
    loop {
        let now = api.clock.now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let result = match api.get(info, Some("kube-system"), LEASE_NAME) {
            Err(e) if e.code == 404 => {
                let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": LEASE_NAME, "namespace": "kube-system"},
                    "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "acquireTime": now, "renewTime": now, "leaseTransitions": 0}});
                api.create(info, Some("kube-system"), lease, &opts).await.map(|_| ())
            }
            Err(e) => Err(e),
            Ok(cur) => {
                let mut lease = cur.value.clone();
                let spec = &mut lease["spec"];
                if spec["holderIdentity"] != json!(name) {
                    let transitions = spec["leaseTransitions"].as_i64().unwrap_or(0) + 1;
                    spec["holderIdentity"] = json!(name);
                    spec["acquireTime"] = json!(now);
                    spec["leaseTransitions"] = json!(transitions);
                }
                spec["leaseDurationSeconds"] = json!(LEASE_SECONDS);
                spec["renewTime"] = json!(now);
                api.update(info, Some("kube-system"), LEASE_NAME, lease, crate::apiserver::service::Part::Main, &opts).await.map(|_| ())
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "renewing the control plane's Lease failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = term.cancelled() => return,
        }
    }
}

// ---- writes on a follower go to the leader ----

/// Forwards writes that reach a follower to the leader's API server.
pub(crate) struct Forwarder {
    store: Store,
    client: reqwest::Client,
    admin_token: String,
}

/// Marks a forwarded request, so it is never forwarded twice.
const FORWARDED: &str = "x-flotilla-forwarded";
/// Largest write body forwarded.
const FORWARD_BODY: usize = 64 << 20;

impl Forwarder {
    pub(crate) fn new(store: Store, ca_pem: &str, admin_token: String) -> anyhow::Result<Forwarder> {
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes())?])
            .timeout(Duration::from_secs(60))
            .no_proxy()
            .build()?;
        Ok(Forwarder { store, client, admin_token })
    }

    /// The leader's API URL when a request should go there: a write, on a member that is
    /// not the leader, that knows the leader. Streams (exec, attach, port-forward, proxy,
    /// upgrades) and the registry stay local.
    fn target(&self, req: &axum::extract::Request) -> Option<String> {
        use axum::http::Method;
        if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) || req.headers().contains_key(FORWARDED) || req.headers().contains_key(axum::http::header::UPGRADE) {
            return None;
        }
        let path = req.uri().path();
        if path.starts_with("/v2/") || path.starts_with("/flotilla/v1/cacerts") || ["/exec", "/attach", "/portforward", "/proxy"].iter().any(|s| path.ends_with(s)) || path.contains("/proxy/") {
            return None;
        }
        let st = self.store.raft_status();
        if st.role == Role::Leader || st.leader == 0 {
            return None;
        }
        records(&self.store).into_iter().find(|m| m.id == st.leader).map(|m| m.api_url)
    }
}

/// Whether a read must see every write committed before it (raft ReadIndex first): a GET
/// that is not a watch and does not allow the local cache (resourceVersion=0 or
/// resourceVersionMatch=NotOlderThan).
fn needs_barrier(req: &axum::extract::Request) -> bool {
    if *req.method() != axum::http::Method::GET {
        return false;
    }
    let path = req.uri().path();
    if !(path.starts_with("/api/") || path.starts_with("/apis/") || path.starts_with("/flotilla/v1/members")) {
        return false;
    }
    let query = req.uri().query().unwrap_or("");
    !form_urlencoded::parse(query.as_bytes()).any(|(k, v)| (k == "watch" && (v == "true" || v == "1")) || (k == "resourceVersion" && v == "0") || (k == "resourceVersionMatch" && v == "NotOlderThan"))
}

/// Middleware: forwards a follower's writes to the leader and relays the answer; makes
/// reads linearizable.
pub(crate) async fn forward_writes(State(fwd): State<Arc<Forwarder>>, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if needs_barrier(&req) {
        if let Err(e) = fwd.store.read_barrier().await {
            return store_error(e).into_response();
        }
        return next.run(req).await;
    }
    let Some(leader) = fwd.target(&req) else { return next.run(req).await };
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, FORWARD_BODY).await {
        Ok(b) => b,
        Err(e) => return ApiError::new(413, "RequestEntityTooLarge", format!("request body: {e}")).into_response(),
    };
    let url = format!("{leader}{}", parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let mut out = fwd.client.request(parts.method.clone(), &url).body(body).header(FORWARDED, "1");
    for (name, value) in &parts.headers {
        if name != axum::http::header::HOST && name != axum::http::header::CONTENT_LENGTH && name != axum::http::header::CONNECTION {
            out = out.header(name, value);
        }
    }
    // A client certificate cannot be forwarded: the follower vouches for its user by
    // impersonating it with the admin token (the user was authenticated here).
    if !parts.headers.contains_key(axum::http::header::AUTHORIZATION)
        && let Some(user) = parts.extensions.get::<crate::apiserver::auth::User>()
    {
        out = out.bearer_auth(&fwd.admin_token).header("Impersonate-User", &user.name);
        for g in &user.groups {
            out = out.header("Impersonate-Group", g);
        }
        if !user.uid.is_empty() {
            out = out.header("Impersonate-Uid", &user.uid);
        }
    }
    match out.send().await {
        Ok(resp) => {
            let status = resp.status();
            let headers = resp.headers().clone();
            match resp.bytes().await {
                Ok(bytes) => {
                    let mut r = (status, bytes).into_response();
                    for (name, value) in &headers {
                        if name != axum::http::header::TRANSFER_ENCODING && name != axum::http::header::CONNECTION && name != axum::http::header::CONTENT_LENGTH {
                            r.headers_mut().insert(name, value.clone());
                        }
                    }
                    r
                }
                Err(e) => forward_failed(&leader, e),
            }
        }
        Err(e) => forward_failed(&leader, e),
    }
}

fn forward_failed(leader: &str, e: reqwest::Error) -> Response {
    tracing::debug!(leader, error = %e, "forwarding a write to the leader failed");
    let mut a = ApiError::new(503, "ServiceUnavailable", format!("forwarding the write to the raft leader at {leader} failed; the write may or may not have been applied: {e}"));
    a.retry_after = Some(1);
    a.into_response()
}

// ---- the membership API (on the API port) ----

pub(crate) struct Ctx {
    pub store: Store,
    pub admin_token: String,
    pub pki: PathBuf,
    pub key_file: PathBuf,
    pub data_dir: PathBuf,
}

pub(crate) fn api_router(ctx: Arc<Ctx>) -> Router {
    Router::new()
        .route("/flotilla/v1/cacerts", get(cacerts))
        .route("/flotilla/v1/join", post(admit))
        .route("/flotilla/v1/members", get(list_members))
        .route("/flotilla/v1/members/{id}", delete(remove_member))
        .with_state(ctx)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")
}

fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

/// The membership API is for system:masters (the admin token, or a certificate in that
/// group), as the user the API server authenticated.
fn check_admin(extensions: &axum::http::Extensions) -> Result<(), ApiError> {
    let user = crate::apiserver::auth::user_of(extensions)?;
    if user.in_group(crate::apiserver::auth::MASTERS) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!("forbidden: User \"{}\" cannot manage raft members (system:masters only)", user.name)))
    }
}

/// 503 on a member that does not lead, naming the leader's API if known.
fn not_leader(store: &Store) -> ApiError {
    let st = store.raft_status();
    let leader = records(store).into_iter().find(|m| m.id == st.leader && st.leader != 0);
    let msg = match leader {
        Some(l) => format!("this member is not the raft leader; the leader is {} at {}", l.name, l.api_url),
        None => "there is no raft leader (no quorum); try again".to_string(),
    };
    let mut e = ApiError::new(503, "ServiceUnavailable", msg);
    e.retry_after = Some(1);
    e
}

fn store_error(e: StoreError) -> ApiError {
    let mut a = ApiError::new(503, "ServiceUnavailable", e.to_string());
    a.retry_after = Some(1);
    a
}

async fn cacerts(State(ctx): State<Arc<Ctx>>) -> Response {
    match std::fs::read_to_string(ctx.pki.join("ca.crt")) {
        Ok(pem) => ([(axum::http::header::CONTENT_TYPE, "application/x-pem-file")], pem).into_response(),
        Err(e) => ApiError::new(500, "InternalError", format!("reading the CA: {e}")).into_response(),
    }
}

async fn admit(State(ctx): State<Arc<Ctx>>, headers: HeaderMap, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let secret = ctx.store.get(JOIN_SECRET).and_then(|o| o.value["secret"].as_str().map(str::to_string));
    if secret.is_none() || bearer(&headers) != secret.as_deref() {
        return Err(unauthorized());
    }
    let req: JoinRequest = serde_json::from_slice(&body).map_err(|e| ApiError::new(400, "BadRequest", format!("join request: {e}")))?;
    let st = ctx.store.raft_status();
    if st.role != Role::Leader {
        return Err(not_leader(&ctx.store));
    }
    let members = records(&ctx.store);
    let id = members.iter().map(|m| m.id).chain(st.voters.iter().copied()).chain(st.learners.iter().copied()).max().unwrap_or(0) + 1;
    let name = if req.name.is_empty() { default_name(id) } else { req.name.clone() };
    if members.iter().any(|m| m.name == name) {
        return Err(ApiError::new(409, "AlreadyExists", format!("a member named {name} exists")));
    }
    let rec = MemberRecord { id, name: name.clone(), api_url: req.api_url, peer_url: req.peer_url };
    ctx.store
        .write(Op::Create { key: member_key(id), object: serde_json::to_value(&rec).expect("json") })
        .await
        .map_err(store_error)?;
    ctx.store.change_membership(ConfChangeType::AddLearnerNode, id).await.map_err(store_error)?;
    tracing::info!(member = id, name = %name, "member admitted as a learner");
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| ApiError::new(500, "InternalError", format!("reading {}: {e}", p.display())));
    let resp = JoinResponse {
        id,
        name,
        ca_cert: read(&ctx.pki.join("ca.crt"))?,
        ca_key: read(&ctx.pki.join("ca.key"))?,
        admin_token: ctx.admin_token.clone(),
        encryption_key: read(&ctx.key_file)?,
        sa_key: {
            // Made now if this member never started the API with one (tokens.rs makes it).
            crate::apiserver::tokens::Signer::load_or_create(&ctx.pki).map_err(|e| ApiError::new(500, "InternalError", format!("the ServiceAccount key: {e}")))?;
            read(&ctx.pki.join("sa.key"))?
        },
        join_token: read(&ctx.data_dir.join("join-token"))?,
        members: records(&ctx.store),
    };
    Ok(axum::Json(resp).into_response())
}

async fn list_members(State(ctx): State<Arc<Ctx>>, extensions: axum::http::Extensions) -> Result<Response, ApiError> {
    check_admin(&extensions)?;
    let st = ctx.store.raft_status();
    let mut out = Vec::new();
    for m in records(&ctx.store) {
        let role = if m.id == st.leader {
            "leader"
        } else if st.learners.contains(&m.id) {
            "learner"
        } else if st.voters.contains(&m.id) {
            "follower"
        } else {
            continue;
        };
        let applied = if m.id == st.id { st.applied } else { st.progress.iter().find(|p| p.id == m.id).map(|p| p.matched).unwrap_or(0) };
        out.push(json!({"id": m.id, "name": m.name, "apiURL": m.api_url, "peerURL": m.peer_url, "role": role, "applied": applied}));
    }
    Ok(axum::Json(Value::Array(out)).into_response())
}

/// Whether removing `id` leaves the remaining voters a live quorum (as the leader sees it).
pub(crate) fn removal_keeps_quorum(voters: &[u64], progress: &[crate::store::Progress], id: u64) -> bool {
    let remaining: Vec<u64> = voters.iter().copied().filter(|v| *v != id).collect();
    if remaining.is_empty() {
        return false;
    }
    let live = remaining.iter().filter(|v| progress.iter().any(|p| p.id == **v && p.active)).count();
    live > remaining.len() / 2
}

async fn remove_member(State(ctx): State<Arc<Ctx>>, extensions: axum::http::Extensions, UrlPath(id): UrlPath<String>) -> Result<Response, ApiError> {
    check_admin(&extensions)?;
    let id: u64 = id.parse().map_err(|_| ApiError::new(400, "BadRequest", format!("member id {id:?} is not a number")))?;
    let st = ctx.store.raft_status();
    if st.role != Role::Leader {
        return Err(not_leader(&ctx.store));
    }
    if !st.voters.contains(&id) && !st.learners.contains(&id) {
        return Err(ApiError::new(404, "NotFound", format!("member {id} not found")));
    }
    if st.voters.contains(&id) && !removal_keeps_quorum(&st.voters, &st.progress, id) {
        return Err(ApiError::new(409, "Conflict", format!("removing member {id} would leave the cluster without a quorum of live voters; bring the other members back first")));
    }
    ctx.store.change_membership(ConfChangeType::RemoveNode, id).await.map_err(store_error)?;
    if let Err(e) = ctx.store.write(Op::Delete { key: member_key(id), precondition: Precondition::default() }).await {
        tracing::warn!(member = id, error = %e, "member removed from raft; its record stays");
    }
    Ok(axum::Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": id.to_string(), "kind": "members"}})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Progress;

    #[test]
    fn join_tokens_round_trip_and_malformed_ones_are_refused() {
        let t = JoinToken { ca_hash: "a".repeat(64), secret: "s3cret".into() };
        assert_eq!(JoinToken::parse(&t.format()).expect("parse"), t);
        for bad in ["", "K10abc::x", &format!("F10{}", "a".repeat(64)), &format!("F10{}::", "a".repeat(64)), "F10zz::x"] {
            assert!(JoinToken::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn message_batches_round_trip() {
        let mut a = Message::default();
        a.to = 2;
        a.from = 1;
        a.term = 7;
        let mut b = Message::default();
        b.set_msg_type(raft::prelude::MessageType::MsgHeartbeat);
        let body = encode_batch(&[a.clone(), b.clone()]);
        assert_eq!(decode_batch(&body).expect("decode"), vec![a, b]);
        assert!(decode_batch(&body[..body.len() - 1]).is_none());
    }

    #[test]
    fn removal_is_refused_when_the_rest_would_lack_a_live_quorum() {
        let p = |id, active| Progress { id, matched: 0, active };
        // 3 voters, all live: removing one leaves 2 of 2.
        assert!(removal_keeps_quorum(&[1, 2, 3], &[p(1, true), p(2, true), p(3, true)], 3));
        // 3 down; removing live 2 leaves {1, 3} with only 1 live: refused.
        assert!(!removal_keeps_quorum(&[1, 2, 3], &[p(1, true), p(2, true), p(3, false)], 2));
        // removing the dead one is fine.
        assert!(removal_keeps_quorum(&[1, 2, 3], &[p(1, true), p(2, true), p(3, false)], 3));
        assert!(!removal_keeps_quorum(&[1], &[p(1, true)], 1));
    }
}
