//! A property test of every write endpoint: malformed and oversized bodies (JSON, YAML,
//! protobuf, every patch type) sent through the API router with its request layers, to
//! POST collection, PUT and PATCH object, status, DELETE (DeleteOptions) and the write
//! subresources of every served resource. Each answer must be a Kubernetes Status with a
//! 4xx code (never a 5xx, never a panic) and the store must hold exactly what it held
//! before (nothing half-written). Deterministic: a seeded generator.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, header};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::resources::{RESOURCES, ResourceInfo};
use super::service::{self, WriteOptions};
use super::{Shutdown, test_app, test_router};

/// splitmix64: a small, seeded, reproducible generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const JSON: &str = "application/json";
const YAML: &str = "application/yaml";
const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
const JSON_PATCH: &str = "application/json-patch+json";
const MERGE_PATCH: &str = "application/merge-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";
const APPLY_YAML: &str = "application/apply-patch+yaml";
const APPLY_JSON: &str = "application/apply-patch+json";

/// A valid-looking object of `info` named `name`, the base of the malformed ones.
fn object(info: &ResourceInfo, name: &str) -> Value {
    json!({"apiVersion": info.api_version(), "kind": info.kind, "metadata": {"name": name, "labels": {"a": "b"}}})
}

/// A body no endpoint may accept, for a request with content type `ct`.
fn malformed(rng: &mut Rng, info: &ResourceInfo, ct: &str) -> Vec<u8> {
    let valid = object(info, "fz-obj").to_string();
    let choice = rng.below(16);
    match choice {
        // Truncated JSON (never the whole document).
        0 => valid.as_bytes()[..1 + rng.below(valid.len() - 1)].to_vec(),
        // Random bytes, invalid UTF-8 included.
        1 => {
            let n = 1 + rng.below(256);
            rng.bytes(n)
        }
        // A document that is not an object (`[]` is an empty JSON patch, a no-op).
        2 if ct == JSON_PATCH => ["5", "\"x\"", "null", "true", "{}"][rng.below(5)].as_bytes().to_vec(),
        2 => ["5", "\"x\"", "[1,2]", "null", "true", "[]"][rng.below(6)].as_bytes().to_vec(),
        // Nesting deeper than any decoder's recursion limit.
        3 => {
            let depth = 200 + rng.below(20_000);
            let (open, close) = if rng.below(2) == 0 { ("[", "]") } else { ("{\"a\":", "}") };
            format!("{}1{}", open.repeat(depth), close.repeat(depth)).into_bytes()
        }
        // Metadata of the wrong types.
        4 => {
            let mut v = object(info, "fz-obj");
            v["metadata"] = [json!("x"), json!(5), json!([]), json!({"name": 5}), json!({"name": "fz-obj", "labels": [1]}), json!({"name": "fz-obj", "labels": {"a": 5}}), json!({"name": "fz-obj", "annotations": "x"})][rng.below(7)].clone();
            v.to_string().into_bytes()
        }
        // apiVersion and kind of the wrong types.
        5 => {
            let mut v = object(info, "fz-obj");
            v[["apiVersion", "kind"][rng.below(2)]] = json!(rng.below(1000));
            v.to_string().into_bytes()
        }
        // A YAML alias bomb.
        6 => b"a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: [*h,*h,*h,*h,*h,*h,*h,*h,*h]\nmetadata: 5\n".to_vec(),
        // YAML that is not a mapping, or is broken.
        7 => ["- a\n- b\n", "metadata: [\n", "\t\tkind: x\n", "metadata:\n  name: *nope\n", "? [a]\n: b\n"][rng.below(5)].as_bytes().to_vec(),
        // The protobuf envelope with garbage inside, or truncated.
        8 => {
            let mut b = b"k8s\0".to_vec();
            let n = rng.below(64);
            b.extend(rng.bytes(n));
            b
        }
        9 => {
            // A well-formed envelope (TypeMeta for this kind) whose raw message is garbage.
            use prost::Message as _;
            let envelope = k8s_pb::apimachinery::pkg::runtime::Unknown {
                type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta { api_version: Some(info.api_version()), kind: Some(info.kind.to_string()) }),
                raw: Some(vec![0xff, 0xff, 0xff, 0x0f, 0x0a, 0x80]),
                ..Default::default()
            };
            let mut b = b"k8s\0".to_vec();
            b.extend(envelope.encode_to_vec());
            let cut = rng.below(2) == 0;
            if cut {
                b.truncate(4 + rng.below(b.len() - 4));
            }
            b
        }
        // JSON patches that cannot apply.
        10 => [
            "[{\"op\":\"bogus\",\"path\":\"/metadata\"}]",
            "[{\"op\":\"replace\",\"path\":\"/metadata/name\",\"value\":5}]",
            "[{\"op\":\"remove\",\"path\":\"/nope/nope\"}]",
            "[{\"op\":\"test\",\"path\":\"/metadata/name\",\"value\":\"not-this\"}]",
            "[{\"op\":\"add\",\"path\":\"/metadata/labels\",\"value\":[1]}]",
            "[{\"op\":\"replace\",\"path\":\"\",\"value\":7}]",
            "{\"op\":\"add\",\"metadata\":5}",
        ][rng.below(7)]
            .as_bytes()
            .to_vec(),
        // Merge and strategic patches of the wrong types or with bad directives.
        11 => [
            "{\"metadata\":{\"name\":5}}",
            "{\"metadata\":[]}",
            "{\"metadata\":{\"labels\":{\"a\":[\"b\"]}}}",
            "{\"$patch\":\"bogus\",\"metadata\":5}",
            "{\"metadata\":{\"$deleteFromPrimitiveList/finalizers\":5,\"name\":7}}",
            "{\"apiVersion\":5}",
        ][rng.below(6)]
            .as_bytes()
            .to_vec(),
        // Over 3 MiB.
        12 => {
            let mut b = b"{\"metadata\":{\"name\":\"fz-obj\",\"annotations\":{\"a\":\"".to_vec();
            b.resize(super::http::MAX_BODY + 1 + rng.below(4096), b'x');
            b
        }
        // Empty.
        13 => Vec::new(),
        // An object of another kind (a Pod to a ConfigMap endpoint...).
        14 => {
            let other = &RESOURCES[rng.below(RESOURCES.len())];
            let mut v = object(other, "fz-obj");
            if other.kind == info.kind {
                v["kind"] = json!("NotAKind");
            }
            v["metadata"]["name"] = json!(7);
            v.to_string().into_bytes()
        }
        // Valid JSON sent with a content type that says otherwise.
        _ => {
            let _ = ct;
            let mut b = rng.bytes(8);
            b.extend_from_slice(b"\xc3\x28");
            b
        }
    }
}

/// DeleteOptions no DELETE may accept (unknown fields are ignored, as in Kubernetes, so
/// these have known fields of the wrong types or values, or do not decode).
fn malformed_delete_options(rng: &mut Rng, info: &ResourceInfo) -> Vec<u8> {
    match rng.below(4) {
        0 => [
            "{\"gracePeriodSeconds\":\"x\"}",
            "{\"gracePeriodSeconds\":-5.5}",
            "{\"propagationPolicy\":5}",
            "{\"propagationPolicy\":\"Sideways\"}",
            "{\"preconditions\":{\"uid\":5}}",
            "{\"preconditions\":\"x\"}",
            "{\"dryRun\":\"All\"}",
            "{\"dryRun\":[\"Some\"]}",
            "{\"orphanDependents\":\"yes\"}",
            "{\"kind\":5}",
            "5",
            "[1]",
            "\"x\"",
        ][rng.below(13)]
            .as_bytes()
            .to_vec(),
        1 => {
            let mut b = b"{\"kind\":\"DeleteOptions\",\"x\":\"".to_vec();
            b.resize(super::http::MAX_BODY + 1 + rng.below(4096), b'x');
            b
        }
        _ => loop {
            // Anything from the object generator that does not decode as JSON.
            let b = malformed(rng, info, JSON);
            if !b.is_empty() && serde_json::from_slice::<Value>(&b).is_err() {
                break b;
            }
        },
    }
}

/// The write endpoints of `info`: (method, path, content types to try).
fn endpoints(info: &ResourceInfo, ns: Option<&str>) -> Vec<(Method, String, &'static [&'static str])> {
    let base = match (info.group, ns) {
        ("", Some(ns)) => format!("/api/v1/namespaces/{ns}/{}", info.plural),
        ("", None) => format!("/api/v1/{}", info.plural),
        (g, Some(ns)) => format!("/apis/{g}/{}/namespaces/{ns}/{}", info.version, info.plural),
        (g, None) => format!("/apis/{g}/{}/{}", info.version, info.plural),
    };
    const BODIES: &[&str] = &[JSON, YAML, PROTOBUF];
    const PATCHES: &[&str] = &[JSON_PATCH, MERGE_PATCH, STRATEGIC, APPLY_YAML, APPLY_JSON];
    let mut out = vec![(Method::POST, base.clone(), BODIES)];
    for name in ["fz-obj", "fz-missing"] {
        let obj = format!("{base}/{name}");
        out.push((Method::PUT, obj.clone(), BODIES));
        out.push((Method::PATCH, obj.clone(), PATCHES));
        out.push((Method::DELETE, obj.clone(), &[JSON]));
        for sub in info.subresources {
            let path = format!("{obj}/{sub}");
            match *sub {
                "status" | "scale" => {
                    out.push((Method::PUT, path.clone(), BODIES));
                    out.push((Method::PATCH, path, PATCHES));
                }
                "finalize" | "approval" => out.push((Method::PUT, path, BODIES)),
                "binding" | "eviction" | "token" => out.push((Method::POST, path, BODIES)),
                _ => {}
            }
        }
    }
    out
}

/// Every object in the store and its revision.
fn snapshot(api: &service::Api) -> (u64, Vec<(String, Value)>) {
    let objects = api.store.list_keys("").into_iter().map(|(k, v)| (k.to_string(), v.value.clone())).collect();
    (api.store.revision(), objects)
}

#[tokio::test]
async fn malformed_and_oversized_bodies_to_every_write_endpoint_get_a_4xx_status_and_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = crate::store::Store::open(dir.path(), crate::store::StoreConfig::default()).expect("store");
    let api = service::Api::new(store, Arc::new(service::SystemClock));
    let (_trigger, shutdown) = Shutdown::new();
    let app = test_app(api.clone(), "t".into(), "127.0.0.1:6443".into(), shutdown);
    let router = test_router(app);
    let call = |method: Method, uri: String, ct: &'static str, body: Vec<u8>| {
        let router = router.clone();
        async move {
            let req = axum::http::Request::builder()
                .method(method)
                .uri(uri)
                .header(header::AUTHORIZATION, "Bearer t")
                .header(header::CONTENT_TYPE, ct)
                .body(Body::from(body))
                .expect("request");
            let resp = router.oneshot(req).await.expect("infallible");
            let code = resp.status().as_u16();
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
            (code, bytes)
        }
    };
    // Objects to write over: one of each kind where a bare object is valid, and a few
    // with the spec they need.
    for ns in ["default", "fz"] {
        let info = super::resources::find("", "v1", "namespaces").expect("namespaces");
        api.create(info, None, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}), &WriteOptions::default()).await.expect("namespace");
    }
    let specs: &[(&str, Value)] = &[
        ("Pod", json!({"containers": [{"name": "c", "image": "file:///x.wasm"}]})),
        ("Deployment", json!({"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}})),
        ("ReplicaSet", json!({"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}})),
        ("StatefulSet", json!({"serviceName": "s", "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}})),
        ("Service", json!({"ports": [{"port": 80}]})),
    ];
    let mut created = 0;
    for info in RESOURCES {
        let ns = info.namespaced.then_some("fz");
        let mut obj = object(info, "fz-obj");
        if let Some((_, spec)) = specs.iter().find(|(k, _)| *k == info.kind) {
            obj["spec"] = spec.clone();
        }
        if info.kind == "CertificateSigningRequest" {
            continue;
        }
        if api.create(info, ns, obj, &WriteOptions::default()).await.is_ok() {
            created += 1;
        }
    }
    assert!(created >= 25, "only {created} kinds have an object to write over");
    let before = snapshot(&api);
    let mut rng = Rng(0x5EED_F107_111A);
    let mut cases = 0;
    let mut failures = Vec::new();
    let started = std::time::Instant::now();
    for info in RESOURCES {
        let ns = info.namespaced.then_some("fz");
        for (method, path, types) in endpoints(info, ns) {
            for _ in 0..5 {
                let ct = types[rng.below(types.len())];
                let body = if method == Method::DELETE { malformed_delete_options(&mut rng, info) } else { malformed(&mut rng, info, ct) };
                let strict = rng.below(2) == 0;
                let uri = if strict { format!("{path}?fieldValidation=Strict") } else { path.clone() };
                let shown = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                let (code, bytes) = call(method.clone(), uri.clone(), ct, body).await;
                cases += 1;
                let status: Value = serde_json::from_slice(&bytes).unwrap_or_default();
                let is_status = (status["kind"].as_str(), status["apiVersion"].as_str(), status["status"].as_str()) == (Some("Status"), Some("v1"), Some("Failure"))
                    && status["code"] == code
                    && status["reason"].as_str().is_some_and(|r| !r.is_empty());
                if !(400..500).contains(&code) || !is_status {
                    failures.push(format!("{method} {uri} ({ct}) {shown:?}: {code} {}", String::from_utf8_lossy(&bytes[..bytes.len().min(300)])));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {cases} malformed writes were not refused with a 4xx Status:\n{}", failures.len(), failures.iter().take(40).cloned().collect::<Vec<_>>().join("\n"));
    let after = snapshot(&api);
    if before != after {
        let changed: Vec<&String> = after.1.iter().filter(|o| !before.1.contains(o)).map(|(k, _)| k).collect();
        let gone: Vec<&String> = before.1.iter().filter(|o| !after.1.contains(o)).map(|(k, _)| k).collect();
        panic!("the store changed (revision {} -> {}): changed or new {changed:?}, gone {gone:?}", before.0, after.0);
    }
    assert!(cases >= 1900, "{cases} cases");
    eprintln!("{cases} malformed writes in {:?}", started.elapsed());
}
