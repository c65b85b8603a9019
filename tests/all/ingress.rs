//! The built-in Ingress controller, driven by the real kubectl and curl against
//! `flotilla up --ingress-listen 127.0.0.1:0`: the default IngressClass `flotilla`, host
//! rules (exact and wildcard) and Exact/Prefix paths routing to two Deployments' Services
//! (by port name and number), 404 without a rule, 503 without a ready endpoint, HTTP/1.1
//! and HTTP/2, X-Forwarded-For/-Proto, the Ingress's status address, and a changed
//! Ingress served without a restart; HTTPS with certificates from tls Secrets picked by
//! SNI and verified by curl --cacert, a rotated Secret served without a restart, a
//! missing Secret reported as a Warning on the Ingress, the ssl-redirect annotation; pods on another embedded node;
//! NetworkPolicy with the outside client as an ipBlock peer; `flotilla node`'s listener.

use std::process::Command;
use std::time::Duration;

use crate::harness::{Cluster, guest, wait_for};

/// Two Deployments of hello-http that say who they are at /env (WHO=alpha, WHO=beta),
/// behind Services `alpha` (port 80 named `web`) and `beta` (port 8080), and a Service
/// `empty` that selects no pod.
fn backends(hello: &str) -> String {
    let deployment = |name: &str| {
        format!(
            r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: hello
        image: {hello}
        env: [{{name: WHO, value: {name}}}]
---
"#
        )
    };
    format!(
        r#"{}{}apiVersion: v1
kind: Service
metadata: {{name: alpha}}
spec:
  selector: {{app: alpha}}
  ports: [{{name: web, port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: beta}}
spec:
  selector: {{app: beta}}
  ports: [{{port: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: empty}}
spec:
  selector: {{app: nobody}}
  ports: [{{port: 80, targetPort: 8080}}]
"#,
        deployment("alpha"),
        deployment("beta")
    )
}

const ROUTES: &str = r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: routes}
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: alpha, port: {name: web}}}}
      - {path: /env, pathType: Exact, backend: {service: {name: beta, port: {number: 8080}}}}
  - host: b.test
    http:
      paths:
      - {path: /env, pathType: Prefix, backend: {service: {name: beta, port: {number: 8080}}}}
  - host: "*.wild.test"
    http:
      paths:
      - {path: /, pathType: ImplementationSpecific, backend: {service: {name: alpha, port: {number: 80}}}}
  - host: empty.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: empty, port: {number: 80}}}}
"#;

/// What curl got: status code, HTTP version and body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Got {
    pub code: u16,
    pub version: String,
    pub body: String,
}

/// `curl` to `scheme://host:PORT/path` with `host` resolved to the listener `addr`
/// (127.0.0.1:PORT), plus `extra` arguments.
pub(crate) fn curl(addr: &str, scheme: &str, host: &str, path: &str, extra: &[&str]) -> Got {
    let port = addr.rsplit(':').next().expect("port");
    let resolve = format!("{host}:{port}:127.0.0.1");
    let url = format!("{scheme}://{host}:{port}{path}");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--resolve", &resolve, "-w", "\n%{http_code} %{http_version}"])
        .args(extra)
        .arg(&url)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", &text));
    let (code, version) = tail.split_once(' ').unwrap_or((tail, ""));
    Got { code: code.parse().unwrap_or(0), version: version.to_string(), body: body.to_string() }
}

/// Waits until a GET of `path` on `host` answers `code` with a body containing `want`.
#[track_caller]
fn wait_answer(addr: &str, host: &str, path: &str, code: u16, want: &str) {
    let mut last = None;
    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(Duration::from_secs(60), &format!("{host}{path} to answer {code} {want:?}"), || {
            let got = curl(addr, "http", host, path, &[]);
            let ok = got.code == code && got.body.contains(want);
            last = Some(got);
            ok.then_some(())
        })
    }));
    assert!(found.is_ok(), "{host}{path}: wanted {code} {want:?}, last {last:?}");
}

pub(crate) fn start() -> (Cluster, String) {
    let c = Cluster::start_with(&["--ingress-listen", "127.0.0.1:0", "--ingress-tls-listen", "127.0.0.1:0"]);
    let addr = c.ingress.clone().expect("flotilla up announced its ingress listener");
    (c, addr)
}

#[test]
fn ingress_routes_hosts_and_paths_to_services() {
    let (c, addr) = start();
    assert_eq!(
        c.jsonpath(&["ingressclass", "flotilla"], r#"{.spec.controller} {.metadata.annotations.ingressclass\.kubernetes\.io/is-default-class}"#),
        "flotilla.dev/ingress true"
    );
    c.apply(&backends(&guest("hello-http")));
    for d in ["alpha", "beta"] {
        c.kubectl(&["rollout", "status", &format!("deployment/{d}"), "--timeout=60s"]).ok();
    }
    // No class named: the default class (flotilla) serves it.
    c.apply(ROUTES);

    wait_answer(&addr, "a.test", "/env", 200, "WHO=beta");
    // Exact /env beats Prefix / on a.test; anything else under / is alpha's.
    let got = curl(&addr, "http", "a.test", "/env/", &[]);
    assert_eq!((got.code, got.body.as_str()), (404, "not found: /env/\n"), "alpha's own 404 for /env/ (Exact does not match it)");
    assert_eq!(curl(&addr, "http", "a.test", "/", &[]).body, "Hello from Flotilla\n");
    // Prefix by element on b.test: /env and /env/x match, /environment and / do not.
    assert!(curl(&addr, "http", "b.test", "/env", &[]).body.contains("WHO=beta"));
    let got = curl(&addr, "http", "b.test", "/envx", &[]);
    assert_eq!(got.code, 404);
    assert!(got.body.starts_with("404 Not Found: no Ingress rule for host \"b.test:"), "{got:?}");
    assert_eq!(curl(&addr, "http", "b.test", "/", &[]).code, 404);
    // A wildcard covers one label.
    assert!(curl(&addr, "http", "x.wild.test", "/env", &[]).body.contains("WHO=alpha"));
    assert_eq!(curl(&addr, "http", "y.x.wild.test", "/env", &[]).code, 404);
    assert_eq!(curl(&addr, "http", "unknown.test", "/", &[]).code, 404);
    // A Service with no ready endpoint.
    let got = curl(&addr, "http", "empty.test", "/", &[]);
    assert_eq!((got.code, got.body.as_str()), (503, "503 Service Unavailable: no ready endpoint of Service default/empty:80\n"));

    // HTTP/1.1 and HTTP/2 (cleartext, prior knowledge).
    assert_eq!(curl(&addr, "http", "a.test", "/", &[]).version, "1.1");
    let h2 = curl(&addr, "http", "a.test", "/env", &["--http2-prior-knowledge"]);
    assert_eq!((h2.code, h2.version.as_str()), (200, "2"));
    assert!(h2.body.contains("WHO=beta"), "{h2:?}");
    // The backend sees who asked and how.
    let headers = curl(&addr, "http", "a.test", "/headers", &["-H", "X-Forwarded-For: 203.0.113.9"]).body;
    assert!(headers.contains("x-forwarded-for: 203.0.113.9, 127.0.0.1\n"), "{headers}");
    assert!(headers.contains("x-forwarded-proto: http\n"), "{headers}");

    // The status names the listener's address (kubectl's ADDRESS column).
    wait_for(Duration::from_secs(5), "the Ingress status address", || {
        (c.jsonpath(&["ingress", "routes"], "{.status.loadBalancer.ingress[*].ip}") == "127.0.0.1").then_some(())
    });
    let table = c.kubectl(&["get", "ingress", "routes"]).ok().to_string();
    let row: Vec<&str> = table.lines().nth(1).expect("a row").split_whitespace().collect();
    assert_eq!(row[..8], ["routes", "flotilla", "a.test,b.test,*.wild.test", "+", "1", "more...", "127.0.0.1", "80"], "{table}");

    // A changed Ingress is served within 5 s, without a restart.
    c.kubectl(&["patch", "ingress", "routes", "--type=json", "-p", r#"[{"op": "replace", "path": "/spec/rules/1/http/paths/0/backend/service/name", "value": "alpha"}, {"op": "replace", "path": "/spec/rules/1/http/paths/0/backend/service/port", "value": {"name": "web"}}]"#]).ok();
    wait_for(Duration::from_secs(5), "b.test/env to move to alpha", || curl(&addr, "http", "b.test", "/env", &[]).body.contains("WHO=alpha").then_some(()));
    // A Service scaled to nothing answers 503 once its endpoint is gone.
    c.kubectl(&["scale", "deployment/beta", "--replicas=0"]).ok();
    wait_for(Duration::from_secs(30), "a.test/env to answer 503", || (curl(&addr, "http", "a.test", "/env", &[]).code == 503).then_some(()));
    // Given to another class, the Ingress is no longer served and loses the address.
    c.kubectl(&["patch", "ingress", "routes", "--type=merge", "-p", r#"{"spec": {"ingressClassName": "other"}}"#]).ok();
    wait_for(Duration::from_secs(5), "the Ingress to be left to its new class", || {
        let gone = curl(&addr, "http", "a.test", "/", &[]).code == 404;
        (gone && c.jsonpath(&["ingress", "routes"], "{.status.loadBalancer.ingress[*].ip}").is_empty()).then_some(())
    });
}

/// Test certificates made with the openssl CLI: CAs and the leaf certificates they sign.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        Pki { dir: tempfile::tempdir().expect("tempdir") }
    }

    fn path(&self, file: &str) -> String {
        self.dir.path().join(file).display().to_string()
    }

    #[track_caller]
    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl").args(args).current_dir(self.dir.path()).output().expect("run openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A CA `NAME.crt`/`NAME.key`; returns the certificate's path.
    pub(crate) fn ca(&self, name: &str) -> String {
        let (crt, key, subj) = (format!("{name}.crt"), format!("{name}.key"), format!("/CN={name}"));
        self.openssl(&["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", &key, "-out", &crt, "-days", "2", "-subj", &subj]);
        self.path(&crt)
    }

    /// A certificate for `host` signed by CA `ca`, as `FILE.crt`/`FILE.key`; returns their paths.
    pub(crate) fn leaf(&self, ca: &str, host: &str, file: &str) -> (String, String) {
        let (crt, key, csr, ext, subj) = (format!("{file}.crt"), format!("{file}.key"), format!("{file}.csr"), format!("{file}.ext"), format!("/CN={host}"));
        std::fs::write(self.dir.path().join(&ext), format!("subjectAltName=DNS:{host}\n")).expect("write ext");
        self.openssl(&["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", &key, "-out", &csr, "-subj", &subj]);
        let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
        self.openssl(&["x509", "-req", "-in", &csr, "-CA", &ca_crt, "-CAkey", &ca_key, "-CAcreateserial", "-out", &crt, "-days", "2", "-extfile", &ext]);
        (self.path(&crt), self.path(&key))
    }
}

const SECURE: &str = r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: secure}
spec:
  ingressClassName: flotilla
  tls:
  - {hosts: [a.test], secretName: a-tls}
  - {hosts: [b.test], secretName: b-tls}
  - {hosts: [c.test], secretName: missing-tls}
  rules:
  - host: a.test
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: alpha, port: {number: 80}}}}]}
  - host: b.test
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: beta, port: {number: 8080}}}}]}
  - host: c.test
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: alpha, port: {number: 80}}}}]}
"#;

/// `kubectl create secret tls NAME` from files, created or replaced.
fn tls_secret(c: &Cluster, name: &str, (crt, key): &(String, String)) {
    let yaml = c.kubectl(&["create", "secret", "tls", name, "--cert", crt, "--key", key, "--dry-run=client", "-o", "yaml"]).ok().to_string();
    c.apply(&yaml);
}

#[test]
fn ingress_terminates_tls_by_sni_and_serves_a_rotated_secret() {
    let (c, addr) = start();
    let tls = c.ingress_tls.clone().expect("flotilla up announced its HTTPS listener");
    c.apply(&backends(&guest("hello-http")));
    let pki = Pki::new();
    let ca1 = pki.ca("ca1");
    tls_secret(&c, "a-tls", &pki.leaf("ca1", "a.test", "a1"));
    tls_secret(&c, "b-tls", &pki.leaf("ca1", "b.test", "b1"));
    for d in ["alpha", "beta"] {
        c.kubectl(&["rollout", "status", &format!("deployment/{d}"), "--timeout=60s"]).ok();
    }
    c.apply(SECURE);

    // curl verifies the chain and the name against the CA: SNI picked each host's certificate.
    let https = |host: &str, path: &str, ca: &str, extra: &[&str]| {
        let mut args = vec!["--cacert", ca];
        args.extend_from_slice(extra);
        curl(&tls, "https", host, path, &args)
    };
    wait_for(Duration::from_secs(30), "a.test over HTTPS", || (https("a.test", "/env", &ca1, &[]).code == 200).then_some(()));
    let a = https("a.test", "/env", &ca1, &[]);
    assert!(a.body.contains("WHO=alpha"), "{a:?}");
    assert_eq!(a.version, "2", "ALPN h2");
    let b = https("b.test", "/env", &ca1, &["--http1.1"]);
    assert_eq!((b.code, b.version.as_str()), (200, "1.1"));
    assert!(b.body.contains("WHO=beta"), "{b:?}");
    let headers = https("a.test", "/headers", &ca1, &[]).body;
    assert!(headers.contains("x-forwarded-proto: https\n"), "{headers}");
    // A host under tls: still answers plain HTTP.
    assert!(curl(&addr, "http", "a.test", "/env", &[]).body.contains("WHO=alpha"));
    // c.test's Secret is missing: no certificate for it (the self-signed fallback does not
    // verify), yet it answers HTTP and the other hosts are unaffected.
    assert_eq!(https("c.test", "/", &ca1, &[]).code, 0, "the handshake must fail verification");
    assert_eq!(https("c.test", "/", &ca1, &["--insecure"]).code, 200);
    assert_eq!(curl(&addr, "http", "c.test", "/", &[]).code, 200);
    // … and the Ingress carries a Warning naming the Secret.
    let described = wait_for(Duration::from_secs(10), "the Warning event on the Ingress", || {
        let out = c.kubectl(&["describe", "ingress", "secure"]).ok().to_string();
        out.contains("InvalidTLSSecret").then_some(out)
    });
    let line = described.lines().find(|l| l.contains("InvalidTLSSecret")).expect("event line");
    assert!(line.trim_start().starts_with("Warning"), "{line}");
    assert!(line.contains("flotilla-ingress") && line.ends_with("TLS Secret default/missing-tls is not used: the Secret does not exist"), "{line}");
    assert_eq!(described.matches("InvalidTLSSecret").count(), 1, "reported once:\n{described}");

    // Rotation: a.test's Secret now holds a certificate of another CA; served within 5 s.
    let ca2 = pki.ca("ca2");
    tls_secret(&c, "a-tls", &pki.leaf("ca2", "a.test", "a2"));
    wait_for(Duration::from_secs(5), "the rotated certificate", || (https("a.test", "/", &ca2, &[]).code == 200).then_some(()));
    assert_eq!(https("a.test", "/", &ca1, &[]).code, 0, "the old certificate is no longer served");
    assert_eq!(https("b.test", "/", &ca1, &[]).code, 200);

    // Annotated, the Ingress sends plain HTTP for its TLS hosts to HTTPS (308).
    c.kubectl(&["annotate", "ingress", "secure", "ingress.flotilla.dev/ssl-redirect=true"]).ok();
    let tls_port = tls.rsplit(':').next().expect("port");
    wait_for(Duration::from_secs(5), "the redirect", || (curl(&addr, "http", "a.test", "/env?x=1", &[]).code == 308).then_some(()));
    let location = Command::new("curl").args(["-sS", "-o", "/dev/null", "-w", "%{redirect_url}", "--resolve", &format!("a.test:{}:127.0.0.1", addr.rsplit(':').next().expect("port"))]).arg(format!("http://a.test:{}/env?x=1", addr.rsplit(':').next().expect("port"))).output().expect("curl");
    assert_eq!(String::from_utf8_lossy(&location.stdout), format!("https://a.test:{tls_port}/env?x=1"));
    let resolve_tls = format!("a.test:{tls_port}:127.0.0.1");
    let followed = curl(&addr, "http", "a.test", "/env", &["-L", "--cacert", &ca2, "--resolve", &resolve_tls]);
    assert_eq!(followed.code, 200);
    assert!(followed.body.contains("WHO=alpha"), "{followed:?}");
    assert_eq!(curl(&addr, "http", "c.test", "/", &[]).code, 308, "a TLS host of the annotated Ingress, whatever its Secret");
}

/// `up --nodes 2` runs one listener (its first node's), which reaches a pod of the second
/// node through the data plane (an HTTP/1.1 connection over the tunnel), over HTTP and
/// HTTPS, with the client's address forwarded.
#[test]
fn ingress_of_up_reaches_pods_of_every_embedded_node() {
    let c = Cluster::start_with(&["--nodes", "2", "--ingress-listen", "127.0.0.1:0", "--ingress-tls-listen", "127.0.0.1:0"]);
    let (addr, tls) = (c.ingress.clone().expect("http listener"), c.ingress_tls.clone().expect("https listener"));
    let nodes = crate::workloads::node_names(2);
    let hello = guest("hello-http");
    for (pod, node) in [("one", &nodes[0]), ("two", &nodes[1])] {
        c.apply(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, labels: {{app: {pod}}}}}\nspec:\n  nodeName: {node}\n  containers:\n  - name: hello\n    image: {hello}\n    env: [{{name: WHO, value: {pod}}}]\n"
        ));
        c.wait_ready(pod);
        c.kubectl(&["expose", "pod", pod, "--port=80", "--target-port=8080"]).ok();
    }
    // As a user would write it (kubectl sends it as protobuf).
    assert_eq!(c.kubectl(&["create", "ingress", "spread", "--rule=one.test/*=one:80", "--rule=two.test/*=two:80"]).ok(), "ingress.networking.k8s.io/spread created\n");
    wait_answer(&addr, "two.test", "/env", 200, "WHO=two");
    assert!(curl(&addr, "http", "one.test", "/env", &[]).body.contains("WHO=one"));
    let headers = curl(&addr, "http", "two.test", "/headers", &["--http2-prior-knowledge"]);
    assert_eq!(headers.version, "2");
    assert!(headers.body.contains("x-forwarded-for: 127.0.0.1\n"), "{headers:?}");
    let over_tls = curl(&tls, "https", "two.test", "/env", &["--insecure"]);
    assert_eq!(over_tls.code, 200);
    assert!(over_tls.body.contains("WHO=two"), "{over_tls:?}");
    wait_for(Duration::from_secs(5), "the Ingress status address", || {
        (c.jsonpath(&["ingress", "spread"], "{.status.loadBalancer.ingress[*].ip}") == "127.0.0.1").then_some(())
    });
}

/// An outside client is an `ipBlock` peer of NetworkPolicy: a policy admitting only
/// 10.0.0.0/8 to the pod turns its Ingress traffic away (503), one admitting
/// 127.0.0.1/32 lets it in.
#[test]
fn ingress_clients_are_ip_block_peers_of_network_policy() {
    let (c, addr) = start();
    let hello = guest("hello-http");
    c.apply(&format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: guarded, labels: {{app: guarded}}}}\nspec:\n  containers:\n  - name: hello\n    image: {hello}\n"));
    c.wait_ready("guarded");
    c.kubectl(&["expose", "pod", "guarded", "--port=80", "--target-port=8080"]).ok();
    c.kubectl(&["create", "ingress", "guarded", "--rule=g.test/*=guarded:80"]).ok();
    wait_answer(&addr, "g.test", "/", 200, "Hello from Flotilla");
    let policy = |cidr: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: outside}}\nspec:\n  podSelector: {{matchLabels: {{app: guarded}}}}\n  policyTypes: [Ingress]\n  ingress:\n  - from: [{{ipBlock: {{cidr: {cidr}}}}}]\n"
        )
    };
    c.apply(&policy("10.0.0.0/8"));
    wait_for(Duration::from_secs(5), "the policy to turn the outside client away", || (curl(&addr, "http", "g.test", "/", &[]).code == 503).then_some(()));
    c.apply(&policy("127.0.0.1/32"));
    wait_answer(&addr, "g.test", "/", 200, "Hello from Flotilla");
}

/// `flotilla node` runs the controller as well: a node process joined to `flotilla
/// server` (no embedded node) serves an Ingress on its own listener.
#[test]
fn ingress_of_a_node_process() {
    let c = Cluster::start_sub("server", &[], &[]);
    let node = crate::harness::NodeProcess::start_with(&c, "edge", &["--ingress-listen", "127.0.0.1:0", "--ingress-tls-listen", "off"]);
    let addr = node.ingress.clone().expect("flotilla node announced its ingress listener");
    assert_eq!(node.ingress_tls, None, "--ingress-tls-listen off");
    let hello = guest("hello-http");
    c.apply(&format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: edge-pod, labels: {{app: edge}}}}\nspec:\n  containers:\n  - name: hello\n    image: {hello}\n"));
    c.wait_ready("edge-pod");
    c.kubectl(&["expose", "pod", "edge-pod", "--name=edge", "--port=80", "--target-port=8080"]).ok();
    c.kubectl(&["create", "ingress", "edge", "--rule=edge.test/*=edge:80"]).ok();
    wait_answer(&addr, "edge.test", "/", 200, "Hello from Flotilla");
    wait_for(Duration::from_secs(5), "the Ingress status address", || (c.jsonpath(&["ingress", "edge"], "{.status.loadBalancer.ingress[*].ip}") == "127.0.0.1").then_some(()));
}

/// A TCP container (wasi:sockets) behind an Ingress is reached over an in-memory
/// connection; tcp-echo answers the request line with a line that is no HTTP response,
/// so the client gets 502 (503 would mean nothing was reached).
#[test]
fn ingress_to_a_tcp_container_that_is_no_http_server_is_a_bad_gateway() {
    let (c, addr) = start();
    let echo = guest("tcp-echo");
    c.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: echo, labels: {{app: echo}}}}\nspec:\n  containers:\n  - name: echo\n    image: {echo}\n    args: [\"7000\"]\n    ports: [{{containerPort: 7000}}]\n"
    ));
    c.wait_ready("echo");
    c.kubectl(&["expose", "pod", "echo", "--port=80", "--target-port=7000"]).ok();
    c.kubectl(&["create", "ingress", "echo", "--rule=echo.test/*=echo:80"]).ok();
    wait_answer(&addr, "echo.test", "/", 502, "502 Bad Gateway: Service default/echo:80 did not answer\n");
}
