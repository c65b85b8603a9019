//! Limits against noisy tenants and the audit log, end to end with kubectl, on one cluster
//! started with `--audit-log-path` and `--audit-policy-file`: a ServiceAccount hammering
//! the API gets 429 with Retry-After while the admin is unaffected; a body over 3 MiB gets
//! kubectl a clear 413 error; every request kubectl makes has an audit line with its verb,
//! user, objectRef and response code (configmaps at RequestResponse); a malformed policy
//! stops `up` and `server` before they start.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Cluster, flotilla_bin, wait_for};

const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
omitManagedFields: true
rules:
  - level: RequestResponse
    resources:
    - group: ""
      resources: ["configmaps"]
  - level: Metadata
"#;

fn client(ca: &str) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA")])
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Sends `n` GETs of the configmaps list with `token` over `parallel` connections: the
/// status codes and the Retry-After of each 429.
async fn hammer(c: &reqwest::Client, url: &str, token: &str, n: usize, parallel: usize) -> (Vec<u16>, Vec<(String, Value)>) {
    let mut tasks = Vec::new();
    for _ in 0..parallel {
        let (c, url, token) = (c.clone(), url.to_string(), token.to_string());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for _ in 0..n / parallel {
                let r = c.get(format!("{url}/api/v1/namespaces/default/configmaps")).bearer_auth(&token).send().await.expect("request");
                let code = r.status().as_u16();
                let retry = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                let body: Value = r.json().await.unwrap_or_default();
                out.push((code, retry, body));
            }
            out
        }));
    }
    let mut codes = Vec::new();
    let mut refused = Vec::new();
    for t in tasks {
        for (code, retry, body) in t.await.expect("task") {
            codes.push(code);
            if code == 429 {
                refused.push((retry, body));
            }
        }
    }
    (codes, refused)
}

/// The audit log's events.
fn events(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {l}"))).collect()
}

/// (method, path and query, code) of each request `kubectl -v=6` reports.
fn kubectl_requests(stderr: &str) -> Vec<(String, String, u64)> {
    stderr
        .lines()
        .filter_map(|l| {
            let i = l.find(" https://")?;
            let method = l[..i].rsplit(' ').next()?.to_string();
            let rest = &l[i + " https://".len()..];
            let path = &rest[rest.find('/')?..];
            let mut words = path.split_whitespace();
            let path = words.next()?.to_string();
            let code = words.next()?.parse().ok()?;
            Some((method, path, code))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn noisy_tenants_get_429_and_413_and_every_request_is_audited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).expect("policy");
    let log = dir.path().join("audit.log");
    let c = Cluster::start_in_with(dir, &["--audit-policy-file", policy.to_str().expect("utf-8"), "--audit-log-path", log.to_str().expect("utf-8")]);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&log).expect("audit log created").permissions().mode() & 0o777, 0o600);

    // Audit: each request kubectl makes has its line.
    c.kubectl(&["create", "configmap", "audited", "--from-literal=k=v"]).ok();
    let get = c.kubectl(&["get", "configmap", "audited", "-o", "name", "-v=6"]);
    assert_eq!(get.ok().trim(), "configmap/audited");
    let requests = kubectl_requests(&get.stderr);
    assert!(!requests.is_empty(), "kubectl -v=6 reported no requests: {}", get.stderr);
    c.kubectl(&["delete", "configmap", "audited", "--wait=false"]).ok();
    let refused = c.kubectl(&["--as", "jane", "get", "configmap", "audited"]);
    assert!(refused.err().contains("forbidden"), "{}", refused.stderr);
    let all = wait_for(Duration::from_secs(10), "the audit lines of the kubectl requests", || {
        let all = events(&log);
        let done = all.iter().any(|e| e["impersonatedUser"]["username"] == "jane");
        done.then_some(all)
    });
    for (method, path, code) in &requests {
        let found = all.iter().any(|e| e["requestURI"] == path.as_str() && e["responseStatus"]["code"] == *code);
        assert!(found, "no audit event for kubectl's {method} {path} ({code})");
    }
    for e in &all {
        assert_eq!((e["kind"].as_str(), e["apiVersion"].as_str()), (Some("Event"), Some("audit.k8s.io/v1")), "{e}");
        assert!(e["auditID"].as_str().is_some_and(|id| id.len() == 36), "{e}");
        assert!(e["stage"] == "ResponseComplete" || e["stage"] == "ResponseStarted", "RequestReceived is omitted: {e}");
    }
    let of = |verb: &str| {
        all.iter()
            .find(|e| e["verb"] == verb && e["objectRef"]["name"] == "audited" && e["impersonatedUser"].is_null())
            .unwrap_or_else(|| panic!("no {verb} event of configmap audited"))
    };
    let create = all.iter().find(|e| e["verb"] == "create" && e["objectRef"]["resource"] == "configmaps").expect("create event");
    assert_eq!(create["user"]["username"], "flotilla-admin");
    assert_eq!(create["objectRef"]["namespace"], "default");
    assert_eq!(create["responseStatus"]["code"], 201);
    assert_eq!(create["level"], "RequestResponse");
    assert_eq!(create["requestObject"]["data"]["k"], "v", "kubectl's protobuf body, decoded: {create}");
    assert_eq!(create["responseObject"]["metadata"]["name"], "audited");
    assert!(create["responseObject"]["metadata"].get("managedFields").is_none());
    assert_eq!(create["annotations"]["authorization.k8s.io/decision"], "allow");
    assert_eq!(of("get")["responseStatus"]["code"], 200);
    assert_eq!(of("delete")["responseStatus"]["code"], 200);
    assert_eq!(of("delete")["objectRef"], serde_json::json!({"resource": "configmaps", "namespace": "default", "name": "audited", "apiVersion": "v1"}));
    let jane = all.iter().find(|e| e["impersonatedUser"]["username"] == "jane").expect("impersonated event");
    assert_eq!(jane["user"]["username"], "flotilla-admin");
    assert_eq!(jane["responseStatus"]["code"], 403);
    assert_eq!(jane["responseStatus"]["reason"], "Forbidden");
    assert_eq!(jane["annotations"]["authorization.k8s.io/decision"], "forbid");
    assert!(all.iter().any(|e| e["verb"] == "get" && e["objectRef"].is_null() && e["level"] == "Metadata"), "discovery at Metadata");

    // 413: a body over 3 MiB, refused in Kubernetes' words; nothing is created.
    let big = c.path().join("big.txt");
    std::fs::write(&big, vec![b'a'; 4 * 1024 * 1024]).expect("big file");
    let r = c.kubectl(&["create", "configmap", "big", &format!("--from-file={}", big.display())]);
    assert!(r.err().contains("Request entity too large: limit is 3145728"), "{}", r.stderr);
    assert!(c.kubectl(&["get", "configmap", "big"]).err().contains("NotFound"));
    let too_large = wait_for(Duration::from_secs(10), "the 413's audit line", || {
        events(&log).into_iter().find(|e| e["verb"] == "create" && e["responseStatus"]["code"] == 413)
    });
    assert_eq!(too_large["responseStatus"]["reason"], "RequestEntityTooLarge");

    // 429: a ServiceAccount beyond 100 requests/s; the admin at the same time is not limited.
    c.kubectl(&["create", "serviceaccount", "robot"]).ok();
    c.kubectl(&["create", "rolebinding", "robot-view", "--clusterrole=view", "--serviceaccount=default:robot"]).ok();
    let token = c.kubectl(&["create", "token", "robot"]).ok().trim().to_string();
    let ca = std::fs::read_to_string(c.path().join("data/pki/ca.crt")).expect("CA");
    let http = client(&ca);
    let admin = c.admin_token();
    let (robot, admin_run) = tokio::join!(hammer(&http, &c.url, &token, 600, 12), hammer(&http, &c.url, &admin, 300, 6));
    let (codes, refusals) = robot;
    assert!(!refusals.is_empty(), "600 requests at once were all admitted: {codes:?}");
    assert!(codes.iter().all(|c| *c == 200 || *c == 429), "{codes:?}");
    assert!(codes.iter().filter(|c| **c == 200).count() >= 100, "the burst is admitted: {codes:?}");
    for (retry, body) in &refusals {
        assert!(retry.parse::<u32>().is_ok_and(|s| s >= 1), "Retry-After {retry:?}");
        assert_eq!(body["reason"], "TooManyRequests", "{body}");
        assert_eq!(body["message"], "Too many requests, please try again later.");
        assert_eq!(body["code"], 429);
    }
    assert!(admin_run.0.iter().all(|c| *c == 200), "system:masters is exempt: {:?}", admin_run.0);
    // kubectl as the ServiceAccount still works once the flood stops (client-go also
    // retries a 429 after its Retry-After).
    let ok = c.kubectl(&["--token", &token, "get", "configmaps", "-o", "name"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
}

#[test]
fn a_malformed_audit_policy_stops_the_start_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Verbose\n").expect("policy");
    for sub in ["up", "server"] {
        let out = Command::new(flotilla_bin())
            .args([sub, "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join(format!("data-{sub}")))
            .arg("--kubeconfig")
            .arg(dir.path().join("kubeconfig"))
            .arg("--audit-policy-file")
            .arg(&policy)
            .arg("--audit-log-path")
            .arg(dir.path().join("audit.log"))
            .output()
            .expect("run flotilla");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{sub} started");
        assert!(stderr.contains("policy.yaml") && stderr.contains("is not a valid audit.k8s.io/v1 Policy") && stderr.contains("unknown variant `Verbose`"), "{sub}: {stderr}");
        assert!(!dir.path().join(format!("data-{sub}")).join("store").exists(), "{sub} opened its store");
    }
}
