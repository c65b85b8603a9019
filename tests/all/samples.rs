//! The samples, run the way their READMEs say, with the real kubectl against `flotilla up`:
//! the images pushed to the cluster's own registry with `flotilla push` and the sample's
//! YAML applied with only the registry address changed (127.0.0.1:6443 → the test
//! cluster's).
//!
//! frontend: a 2-replica Deployment of two-component pods (front on 8080 calls its quotes
//! sidecar on localhost:9090) behind the ClusterIP Service `frontend`, called through
//! pods/proxy and by a one-off http-client pod through the Service's name.
//!
//! ingress: the hello Deployment behind a Service and an Ingress with TLS, asked with curl
//! over HTTP and HTTPS (the certificate verified against the README's CA).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::harness::{Cluster, guest_path, wait_for};

/// `flotilla push target/guests/GUEST.wasm REFERENCE` (a reference without a host goes to
/// the cluster's registry).
#[track_caller]
fn push(c: &Cluster, guest: &str, reference: &str) {
    let wasm = guest_path(guest);
    c.flotilla(&["push", wasm.to_str().expect("utf-8 path"), reference]).ok();
}

/// samples/`file` with the test cluster's registry in place of 127.0.0.1:6443.
fn sample_yaml(c: &Cluster, file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples").join(file);
    let yaml = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(yaml.contains("image: 127.0.0.1:6443/"), "{file} names no image in the cluster registry");
    yaml.replace("image: 127.0.0.1:6443/", &format!("image: {}/", c.host()))
}

#[test]
fn samples_frontend_two_components_behind_a_service() {
    let c = Cluster::start();
    push(&c, "frontend-front", "frontend-front:v1");
    push(&c, "frontend-quotes", "frontend-quotes:v1");
    push(&c, "http-client", "http-client:v1");
    let out = c.kubectl_stdin(&["apply", "-f", "-"], &sample_yaml(&c, "frontend/frontend.yaml")).ok().to_string();
    assert_eq!(out, "deployment.apps/frontend created\nservice/frontend created\n");
    let r = c.kubectl(&["wait", "--for=condition=Available", "deployment/frontend", "--timeout=60s"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, c.kubectl(&["get", "pods", "-o", "wide"]).stdout);
    let pods: Vec<String> = c.jsonpath(&["pods", "-l", "app=frontend"], "{.items[*].metadata.name}").split_whitespace().map(str::to_string).collect();
    assert_eq!(pods.len(), 2, "{pods:?}");

    // The sidecar's quotes, asked directly on its port.
    let raw = |path: &str| c.kubectl(&["get", "--raw", path]).ok().to_string();
    let quotes: BTreeSet<String> = raw(&format!("/api/v1/namespaces/default/pods/{}:9090/proxy/quotes", pods[0])).lines().map(str::to_string).collect();
    assert_eq!(quotes.len(), 8, "{quotes:?}");
    let is_quote = |q: &str| quotes.contains(q);

    // Each front answers with a quote it got from its sidecar over localhost.
    for pod in &pods {
        for _ in 0..3 {
            let body = raw(&format!("/api/v1/namespaces/default/pods/{pod}:8080/proxy/"));
            let quote = body.strip_prefix(&format!("front {pod} says: ")).and_then(|q| q.strip_suffix('\n'));
            assert!(quote.is_some_and(is_quote), "{pod}: {body:?}");
        }
    }

    // The Service's endpoints: both pods, on the fronts' port 8080 (targetPort http).
    let r = c.kubectl(&["get", "svc,endpoints", "frontend"]);
    assert!(r.ok().contains("80/TCP"), "{}", r.stdout);
    let ports = c.jsonpath(&["endpoints", "frontend"], "{.subsets[*].ports[*].name}:{.subsets[*].ports[*].port}");
    assert_eq!(ports, "http:8080");
    wait_for(Duration::from_secs(20), "both pods as ready endpoints of frontend", || {
        let ips = c.jsonpath(&["endpoints", "frontend"], "{.subsets[*].addresses[*].ip}");
        (ips.split_whitespace().count() == 2).then_some(())
    });

    // A one-off client pod calls the Service by name; round robin reaches both replicas.
    c.kubectl(&["run", "client", &format!("--image={}/http-client:v1", c.host()), "--restart=Never", "--port=8080"]).ok();
    c.wait_ready("client");
    let fronts = wait_for(Duration::from_secs(20), "the client to reach both fronts through the Service", || {
        let out = raw("/api/v1/namespaces/default/pods/client:8080/proxy/fetch?url=http://frontend/&n=4");
        let mut fronts = BTreeSet::new();
        for line in out.lines() {
            let (pod, quote) = line.strip_prefix("200 front ")?.split_once(" says: ")?;
            assert!(is_quote(quote), "{line:?}");
            fronts.insert(pod.to_string());
        }
        (out.lines().count() == 4 && fronts.len() == 2).then_some(fronts)
    });
    assert_eq!(fronts, pods.iter().cloned().collect(), "the Service reached other pods than the Deployment's");
}

#[test]
fn samples_ingress_with_tls_in_front_of_the_hello_deployment() {
    let c = Cluster::start_with(&["--ingress-listen", "127.0.0.1:0", "--ingress-tls-listen", "127.0.0.1:0"]);
    let (http, https) = (c.ingress.clone().expect("http listener"), c.ingress_tls.clone().expect("https listener"));
    push(&c, "hello", "hello:v1");
    c.kubectl_stdin(&["apply", "-f", "-"], &sample_yaml(&c, "deployment/deployment.yaml")).ok();
    c.kubectl(&["rollout", "status", "deployment/hello-web", "--timeout=90s"]).ok();
    let pki = crate::ingress::Pki::new();
    let ca = pki.ca("ca");
    let (crt, key) = pki.leaf("ca", "hello.example", "hello");
    c.kubectl(&["create", "secret", "tls", "hello-tls", "--cert", &crt, "--key", &key]).ok();
    let yaml = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/ingress/ingress.yaml")).expect("sample");
    assert_eq!(c.kubectl_stdin(&["apply", "-f", "-"], &yaml).ok(), "service/hello-web created\ningress.networking.k8s.io/hello created\n");

    let pods: BTreeSet<String> = c.jsonpath(&["pods", "-l", "app=hello-web"], "{.items[*].metadata.name}").split_whitespace().map(str::to_string).collect();
    let answered_by = |got: crate::ingress::Got| -> Option<String> {
        let pod = got.body.strip_prefix("Hello from ")?.trim_end().to_string();
        (got.code == 200 && pods.contains(&pod)).then_some(pod)
    };
    wait_for(Duration::from_secs(30), "hello.example over HTTPS", || answered_by(crate::ingress::curl(&https, "https", "hello.example", "/", &["--cacert", &ca])));
    assert!(answered_by(crate::ingress::curl(&http, "http", "hello.example", "/", &[])).is_some());
    assert_eq!(crate::ingress::curl(&http, "http", "other.example", "/", &[]).code, 404);
    wait_for(Duration::from_secs(5), "the ADDRESS column", || {
        let row = c.kubectl(&["get", "ingress", "hello", "--no-headers"]).ok().split_whitespace().map(str::to_string).collect::<Vec<_>>();
        (row[..6] == ["hello", "flotilla", "hello.example", "127.0.0.1", "80,", "443"]).then_some(())
    });
}
