use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, header};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::*;
use crate::apiserver::service::{self, WriteOptions};
use crate::apiserver::{Shutdown, flow_control, resources, router, test_app, with_request_layers};

struct Fixture {
    router: axum::Router,
    events: tokio::sync::mpsc::Receiver<Vec<u8>>,
    _dir: tempfile::TempDir,
    _trigger: crate::apiserver::ShutdownTrigger,
}

async fn fixture(policy: &str) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = crate::store::Store::open(dir.path(), crate::store::StoreConfig::default()).expect("store");
    let api = service::Api::new(store, Arc::new(service::SystemClock));
    let ns = resources::find("", "v1", "namespaces").expect("namespaces");
    api.create(ns, None, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}), &WriteOptions::default()).await.expect("ns");
    let (trigger, shutdown) = Shutdown::new();
    let app = test_app(api, "t".into(), "127.0.0.1:6443".into(), shutdown);
    let policy = if policy.is_empty() { Policy::metadata_for_everything() } else { Policy::parse(policy).expect("policy") };
    let (auditor, events) = Auditor::to_channel(policy);
    let router = with_request_layers(router(app.clone()), app, Some(auditor), &flow_control::FlowControlConfig::default());
    Fixture { router, events, _dir: dir, _trigger: trigger }
}

impl Fixture {
    async fn call(&self, method: Method, uri: &str, headers: &[(&str, &str)], body: &str) -> axum::response::Response {
        let mut r = axum::http::Request::builder().method(method).uri(uri).header(header::AUTHORIZATION, "Bearer t");
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        self.router.clone().oneshot(r.body(Body::from(body.to_string())).expect("request")).await.expect("infallible")
    }

    #[track_caller]
    fn next_event(&mut self) -> Value {
        let line = self.events.try_recv().expect("an event");
        assert_eq!(line.last(), Some(&b'\n'));
        serde_json::from_slice(&line).expect("json line")
    }

    fn no_more_events(&mut self) {
        assert!(self.events.try_recv().is_err(), "no further event");
    }
}

const CONFIGMAP: &str = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"k":"v"}}"#;

#[tokio::test]
async fn a_create_is_one_metadata_event_in_kubernetes_shape_without_a_policy() {
    let mut f = fixture("").await;
    let resp = f.call(Method::POST, "/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create", &[("content-type", "application/json"), ("user-agent", "kubectl/v1.32.0")], CONFIGMAP).await;
    assert_eq!(resp.status(), 201);
    let id = resp.headers()["audit-id"].to_str().expect("ascii").to_string();
    let e = f.next_event();
    f.no_more_events();
    assert_eq!(e["kind"], "Event");
    assert_eq!(e["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(e["level"], "Metadata");
    assert_eq!(e["stage"], "ResponseComplete");
    assert_eq!(e["auditID"], id.as_str());
    assert_eq!(uuid::Uuid::parse_str(&id).expect("uuid").get_version_num(), 4);
    assert_eq!(e["requestURI"], "/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create");
    assert_eq!(e["verb"], "create");
    assert_eq!(e["user"]["username"], "flotilla-admin");
    assert_eq!(e["user"]["groups"], json!(["system:masters", "system:authenticated"]));
    assert_eq!(e["userAgent"], "kubectl/v1.32.0");
    assert_eq!(e["objectRef"], json!({"resource": "configmaps", "namespace": "default", "apiVersion": "v1"}));
    assert_eq!(e["responseStatus"], json!({"metadata": {}, "code": 201}));
    assert_eq!(e["annotations"]["authorization.k8s.io/decision"], "allow");
    assert!(e.get("requestObject").is_none() && e.get("responseObject").is_none(), "Metadata keeps no bodies");
    let (rx, st) = (e["requestReceivedTimestamp"].as_str().expect("ts"), e["stageTimestamp"].as_str().expect("ts"));
    assert!(chrono::DateTime::parse_from_rfc3339(rx).is_ok() && rx.len() == "2024-01-01T00:00:00.000000Z".len(), "{rx}");
    assert!(st >= rx);
}

const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitManagedFields: true
rules:
- level: None
  nonResourceURLs: ["/version", "/healthz*"]
- level: RequestResponse
  resources: [{group: "", resources: ["configmaps"]}]
  omitStages: [RequestReceived]
- level: Request
  verbs: ["patch"]
  omitStages: [RequestReceived]
- level: Metadata
"#;

#[tokio::test]
async fn request_response_keeps_both_objects_and_failures_their_status() {
    let mut f = fixture(POLICY).await;
    let r = f.call(Method::POST, "/api/v1/namespaces/default/configmaps", &[("content-type", "application/json")], CONFIGMAP).await;
    assert_eq!(r.status(), 201);
    let e = f.next_event();
    assert_eq!(e["level"], "RequestResponse");
    assert_eq!(e["requestObject"]["data"], json!({"k": "v"}));
    assert_eq!(e["responseObject"]["metadata"]["name"], "c");
    assert!(e["responseObject"]["metadata"].get("managedFields").is_none(), "omitManagedFields");
    assert!(e["responseObject"]["metadata"]["uid"].is_string());
    // A second create: 409, with Kubernetes' Status in responseStatus.
    assert_eq!(f.call(Method::POST, "/api/v1/namespaces/default/configmaps", &[("content-type", "application/json")], CONFIGMAP).await.status(), 409);
    let e = f.next_event();
    assert_eq!(e["responseStatus"]["code"], 409);
    assert_eq!(e["responseStatus"]["status"], "Failure");
    assert_eq!(e["responseStatus"]["reason"], "AlreadyExists");
    assert_eq!(e["responseStatus"]["message"], "configmaps \"c\" already exists");
    // Not logged at all.
    assert_eq!(f.call(Method::GET, "/version", &[], "").await.status(), 200);
    f.no_more_events();
    // Request: the patch body, not the response.
    let patch = r#"{"metadata":{"labels":{"a":"b"}}}"#;
    let r = f.call(Method::PATCH, "/apis/apps/v1/namespaces/default/deployments/nope", &[("content-type", "application/merge-patch+json")], patch).await;
    assert_eq!(r.status(), 404);
    let e = f.next_event();
    assert_eq!((e["level"].as_str(), e["verb"].as_str()), (Some("Request"), Some("patch")));
    assert_eq!(e["objectRef"], json!({"resource": "deployments", "namespace": "default", "name": "nope", "apiGroup": "apps", "apiVersion": "v1"}));
    assert_eq!(e["requestObject"], json!({"metadata": {"labels": {"a": "b"}}}));
    assert!(e.get("responseObject").is_none());
    // Stages are omitted per rule: the last rule logs RequestReceived too.
    assert_eq!(f.call(Method::GET, "/readyz", &[("audit-id", "from-the-client")], "").await.headers()["audit-id"], "from-the-client");
    let (a, b) = (f.next_event(), f.next_event());
    assert_eq!((a["stage"].as_str(), b["stage"].as_str()), (Some("RequestReceived"), Some("ResponseComplete")));
    assert_eq!((a["auditID"].as_str(), a["verb"].as_str()), (Some("from-the-client"), Some("get")));
    assert!(a.get("objectRef").is_none() && a.get("responseStatus").is_none());
}

#[tokio::test]
async fn impersonation_shows_both_users_and_a_refusal_the_decision() {
    let mut f = fixture("").await;
    let r = f.call(Method::GET, "/api/v1/namespaces/default/secrets/s", &[("impersonate-user", "jane"), ("impersonate-group", "devs")], "").await;
    assert_eq!(r.status(), 403);
    let e = f.next_event();
    assert_eq!(e["user"]["username"], "flotilla-admin");
    assert_eq!(e["impersonatedUser"], json!({"username": "jane", "groups": ["devs", "system:authenticated"]}));
    assert_eq!(e["annotations"]["authorization.k8s.io/decision"], "forbid");
    assert_eq!(e["responseStatus"]["reason"], "Forbidden");
    assert_eq!(e["objectRef"]["name"], "s");
}

#[tokio::test]
async fn a_watch_has_response_started_then_complete_when_its_stream_ends() {
    let mut f = fixture("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  omitStages: [RequestReceived]\n").await;
    let resp = f.call(Method::GET, "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1", &[], "").await;
    assert_eq!(resp.status(), 200);
    let e = f.next_event();
    assert_eq!((e["stage"].as_str(), e["verb"].as_str()), (Some("ResponseStarted"), Some("watch")));
    f.no_more_events();
    let _ = axum::body::to_bytes(resp.into_body(), usize::MAX).await;
    let e = f.next_event();
    assert_eq!((e["stage"].as_str(), e["responseStatus"]["code"].as_u64()), (Some("ResponseComplete"), Some(200)));
}

#[tokio::test]
async fn pod_security_audit_annotations_reach_the_event() {
    let mut f = fixture("").await;
    let ns = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"audited","labels":{"pod-security.kubernetes.io/audit":"restricted"}}}"#;
    assert_eq!(f.call(Method::POST, "/api/v1/namespaces", &[("content-type", "application/json")], ns).await.status(), 201);
    let _ = f.next_event();
    let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"file:///x.wasm"}]}}"#;
    assert_eq!(f.call(Method::POST, "/api/v1/namespaces/audited/pods", &[("content-type", "application/json")], pod).await.status(), 201);
    let e = f.next_event();
    let v = e["annotations"]["pod-security.kubernetes.io/audit-violations"].as_str().expect("annotation");
    assert!(v.starts_with("would violate PodSecurity \"restricted:latest\""), "{v}");
}

#[tokio::test]
async fn the_log_file_is_appended_to_with_mode_0600_and_a_bad_policy_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.log");
    std::fs::write(&log, "earlier\n").expect("write");
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let auditor = Auditor::open(&AuditConfig { policy_file: None, log_path: Some(log.clone()) }).expect("opens").expect("a log");
    auditor.send(b"{\"a\":1}\n".to_vec());
    drop(auditor);
    let text = wait_for_line(&log, "{\"a\":1}");
    assert!(text.starts_with("earlier\n"), "{text}");
    let fresh = dir.path().join("fresh.log");
    let a = Auditor::open(&AuditConfig { policy_file: None, log_path: Some(fresh.clone()) }).expect("opens");
    assert_eq!(std::fs::metadata(&fresh).expect("created").permissions().mode() & 0o777, 0o600);
    drop(a);
    let bad = dir.path().join("policy.yaml");
    std::fs::write(&bad, "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Everything\n").expect("write");
    let e = Auditor::open(&AuditConfig { policy_file: Some(bad.clone()), log_path: Some(fresh) }).expect_err("refused").to_string();
    assert!(e.contains("policy.yaml") && e.contains("unknown variant `Everything`"), "{e}");
}

/// The file's text once it holds `line` (the writer thread appends it shortly).
fn wait_for_line(path: &std::path::Path, line: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().any(|l| l == line) {
            return text;
        }
        assert!(std::time::Instant::now() < deadline, "{} never held {line}: {text}", path.display());
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
