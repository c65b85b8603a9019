//! The kubectl-compatible API server (axum over rustls): routing, authentication,
//! discovery, OpenAPI, object operations, watch.

pub(crate) mod audit;
pub(crate) mod auth;
mod body_limit;
pub(crate) mod certificates;
mod console;
mod defaults;
mod discovery;
pub(crate) mod error;
pub(crate) mod eviction;
pub(crate) mod flow_control;
mod http;
pub(crate) mod ingress_class;
pub(crate) mod kubernetes_service;
mod merge_keys;
mod metrics_api;
pub mod node_port;
mod node_proxy;
pub(crate) mod node_authorizer;
mod limit_range;
mod openapi;
mod openapi_v2;
pub(crate) mod priority;
pub(crate) mod quota;
pub(crate) mod rbac;
pub(crate) mod patch;
mod pod_security;
mod protobuf;
mod reviews;
pub(crate) mod resources;
mod schema;
pub mod service;
pub(crate) mod service_accounts;
pub mod service_ip;
mod table;
pub mod tls;
pub(crate) mod tokens;
mod typed;
#[cfg(test)]
mod write_fuzz;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde_json::json;

pub use service::Api;

/// A cancellation signal shared by everything a server started.
#[derive(Clone)]
pub struct Shutdown {
    rx: tokio::sync::watch::Receiver<bool>,
}

/// Triggers a [`Shutdown`].
pub struct ShutdownTrigger {
    tx: tokio::sync::watch::Sender<bool>,
}

impl Shutdown {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (ShutdownTrigger { tx }, Shutdown { rx })
    }

    /// Whether shutdown has been triggered.
    pub fn is_cancelled(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown has been triggered.
    pub async fn cancelled(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|v| *v).await;
    }
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }
}

/// State shared by all handlers.
pub(crate) struct App {
    pub api: Api,
    pub authn: auth::Authenticator,
    /// The Node authorizer, then RBAC ([`node_authorizer::Chain`]).
    pub authz: Arc<dyn auth::Authorizer>,
    /// RBAC alone, for what only RBAC answers (escalation checks, rules reviews).
    pub rbac: Arc<rbac::Rbac>,
    /// The cluster CA, for the built-in CSR signers.
    pub ca: Arc<rcgen::Issuer<'static, rcgen::KeyPair>>,
    pub server_address: String,
    pub shutdown: Shutdown,
}

/// The Kubernetes version reported by /version. kubectl's dispatcher on these machines
/// picks the kubectl minor version matching it.
pub const KUBERNETES_VERSION: (&str, &str) = ("1", "32");

fn version_info() -> serde_json::Value {
    json!({
        "major": KUBERNETES_VERSION.0,
        "minor": KUBERNETES_VERSION.1,
        "gitVersion": format!("v{}.{}.0-flotilla.{}", KUBERNETES_VERSION.0, KUBERNETES_VERSION.1, env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH }),
    })
}

pub(crate) fn router(app: Arc<App>) -> Router {
    let ok = || async { (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "ok") };
    let router = Router::new()
        .route("/version", get(|| async { axum::Json(version_info()) }))
        .route("/healthz", get(ok))
        .route("/livez", get(ok))
        .route("/readyz", get(ok))
        .route("/metrics", get(metrics));
    console::routes(router).fallback(http::dispatch).layer(axum::middleware::from_fn(count_request)).with_state(app)
}

/// GET /metrics: the control plane's metrics (`crate::metrics`), for whoever may get the
/// path /metrics (system:masters, or a role granting it as `system:monitoring` does).
async fn metrics(axum::extract::State(app): axum::extract::State<Arc<App>>, extensions: axum::http::Extensions) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let user = match auth::user_of(&extensions) {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = auth::check(app.authz.as_ref(), &user, &auth::Attributes::non_resource("get", "/metrics")) {
        return e.into_response();
    }
    let size = app.api.store.file_size();
    (StatusCode::OK, [(header::CONTENT_TYPE, flotilla_api::prometheus::CONTENT_TYPE)], crate::metrics::render(size)).into_response()
}

/// Counts every request in `apiserver_request_total` and times it (not watches and
/// CONNECTs, whose duration is the client's) once its response head is ready.
async fn count_request(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let (verb, resource, sub) = crate::metrics::classify(req.method(), req.uri().path(), req.uri().query());
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let took = (!matches!(verb, "WATCH" | "CONNECT")).then(|| started.elapsed());
    crate::metrics::global().request(verb, &resource, &sub, resp.status().as_u16(), took);
    resp
}

/// Serves `router` over TLS on `listener` until `shutdown`.
pub(crate) async fn serve_tls(listener: tokio::net::TcpListener, tls: Arc<rustls::ServerConfig>, router: Router, shutdown: Shutdown) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                _ => return,
            };
            // A client certificate the acceptor verified against the cluster CA names the
            // user of every request on this connection.
            let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| auth::certificate_user(c.as_ref())).map(auth::ClientCert);
            let svc = TowerToHyperService::new(tower::ServiceBuilder::new().map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
                if let Some(c) = &cert {
                    req.extensions_mut().insert(c.clone());
                }
                req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                req
            }).service(router));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
            tokio::select! {
                _ = conn => {}
                _ = shutdown.cancelled() => {}
            }
        });
    }
}

/// Test state: `app` with a fresh ServiceAccount key and CA.
#[cfg(test)]
pub(crate) fn test_app(api: Api, admin_token: String, server_address: String, shutdown: Shutdown) -> Arc<App> {
    let signer = Arc::new(tokens::Signer::from_pem(&rcgen::KeyPair::generate().expect("key").serialize_pem()).expect("signer"));
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::Issuer::new(params, rcgen::KeyPair::generate().expect("key"));
    app(api, admin_token, signer, ca, server_address, shutdown)
}

/// The layers every request on the API port passes, outermost first: authentication, the
/// audit log (with one), the body limit, per-user limits; then `inner` (the routers, and
/// what must run after the limits: a follower's forwarding of writes).
pub(crate) fn with_request_layers(inner: Router, app: Arc<App>, auditor: Option<Arc<audit::Auditor>>, limits: &flow_control::FlowControlConfig) -> Router {
    use axum::middleware::{from_fn, from_fn_with_state};
    let mut r = inner;
    if !limits.is_unlimited() {
        r = r.layer(from_fn_with_state(flow_control::FlowControl::new(limits.clone()), flow_control::limit));
    }
    r = r.layer(from_fn(body_limit::read_whole));
    if let Some(a) = auditor {
        r = r.layer(from_fn_with_state(a, audit::audit));
    }
    r.layer(from_fn_with_state(app, auth::authenticate))
}

/// The API router with its request layers, as `lib.rs` serves it (no audit log).
#[cfg(test)]
pub(crate) fn test_router(app: Arc<App>) -> Router {
    with_request_layers(router(app.clone()), app, None, &flow_control::FlowControlConfig::default())
}

/// The registry's authorization: repository `team/app` is the `images` resource named
/// `team/app` in API group registry.flotilla.dev, in namespace `team` when that namespace
/// exists (cluster-scoped otherwise); pull is `get`, push `create`.
pub(crate) fn registry_access(app: Arc<App>) -> crate::registry::Access {
    Arc::new(move |extensions: &axum::http::Extensions, verb: &str, repo: &str| {
        let user = extensions.get::<auth::User>().ok_or(None)?;
        if repo.is_empty() {
            return Ok(());
        }
        let first = repo.split('/').next().unwrap_or("");
        let ns_info = resources::find("", "v1", "namespaces").expect("served");
        let ns = if repo.contains('/') && app.api.store.get(&service::key(ns_info, None, first)).is_some() { first } else { "" };
        let attrs = auth::Attributes::resource(verb, REGISTRY_GROUP, "images", "", ns, repo);
        auth::check(app.authz.as_ref(), user, &attrs).map_err(|e| Some(e.message))
    })
}

/// The API group the registry's `images` resource is authorized under.
pub(crate) const REGISTRY_GROUP: &str = "registry.flotilla.dev";

/// Builds the API server's shared state.
/// The HPA controller's view of pods' CPU, read from the nodes as metrics.k8s.io reads it.
pub(crate) struct AppCpu(pub Arc<App>);

impl crate::controllers::hpa::CpuSource for AppCpu {
    fn pod_cpu<'a>(&'a self, ns: &'a str, pods: &'a [&'a serde_json::Value]) -> futures::future::BoxFuture<'a, std::collections::HashMap<String, f64>> {
        Box::pin(metrics_api::pod_cpu(&self.0, ns, pods))
    }
}

pub(crate) fn app(api: Api, admin_token: String, signer: Arc<tokens::Signer>, ca: rcgen::Issuer<'static, rcgen::KeyPair>, server_address: String, shutdown: Shutdown) -> Arc<App> {
    let rbac = Arc::new(rbac::Rbac::new(api.store.clone()));
    let nodes = Arc::new(node_authorizer::NodeAuthorizer::new(api.store.clone()));
    Arc::new(App {
        authn: auth::Authenticator::new(admin_token, signer, api.store.clone()),
        api,
        authz: Arc::new(audit::Recorded(Arc::new(node_authorizer::Chain(vec![nodes, rbac.clone()])))),
        rbac,
        ca: Arc::new(ca),
        server_address,
        shutdown,
    })
}
