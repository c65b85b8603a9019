//! The web console in a real browser: headless Chromium (Debian's `chromium`), driven over
//! the DevTools protocol. Logs in (a wrong token is refused), watches a pod go Running
//! live, scales a Deployment from 1 to 3 and sees the pods appear, reads a pod's logs.
//! Screenshots land in target/ (and in docs/ with UPDATE_DOCS=1).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

use crate::harness::{Cluster, guest, node_name};

struct Browser {
    child: Child,
    ws: WebSocket<TcpStream>,
    next: u64,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET over HTTP/1.1 (Chromium's DevTools server keeps the connection open: read the
/// Content-Length it announces).
fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("devtools http");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut reader = BufReader::new(s);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return String::new();
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    String::from_utf8_lossy(&body).into_owned()
}

impl Browser {
    fn launch() -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new("chromium")
            .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--ignore-certificate-errors", "--remote-debugging-port=0", "--window-size=1280,900"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium (apt-get install chromium)");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let ws_url = loop {
            let line = lines.next().expect("chromium exited before listening").expect("read");
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                break url.trim().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        let addr = ws_url.trim_start_matches("ws://").split('/').next().expect("host").to_string();
        // The page target's own socket: commands go straight to the page.
        let page_url = (0..50)
            .find_map(|_| {
                let list: Value = serde_json::from_str(&http_get(&addr, "/json/list")).unwrap_or(Value::Null);
                let url = list.as_array()?.iter().find(|t| t["type"] == "page")?["webSocketDebuggerUrl"].as_str()?.to_string();
                Some(url).or_else(|| {
                    std::thread::sleep(Duration::from_millis(100));
                    None
                })
            })
            .expect("a page target");
        let stream = TcpStream::connect(&addr).expect("connect devtools");
        let (ws, _) = tungstenite::client(page_url.as_str(), stream).expect("devtools websocket");
        let mut b = Browser { child, ws, next: 0, _profile: profile };
        b.call("Page.enable", json!({}));
        b
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        self.ws.send(Message::text(json!({"id": id, "method": method, "params": params}).to_string())).expect("send");
        loop {
            let msg = self.ws.read().expect("devtools read");
            let Message::Text(t) = msg else { continue };
            let v: Value = serde_json::from_str(t.as_str()).expect("json");
            if v["id"] == id {
                assert!(v["error"].is_null(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({"expression": expr, "returnByValue": true, "awaitPromise": true}));
        assert!(r["exceptionDetails"].is_null(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    /// Waits until `expr` is truthy; panics with `what` and the page's text after `secs`.
    fn wait(&mut self, what: &str, secs: u64, expr: &str) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.eval(&format!("(() => {{ try {{ return !!({expr}); }} catch (e) {{ return false; }} }})()"));
            if v == true {
                return;
            }
            if Instant::now() > deadline {
                let text = self.eval("document.body.innerText");
                panic!("timed out waiting for {what}; the page shows:\n{}", text.as_str().unwrap_or(""));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn go(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
    }

    fn screenshot(&mut self, name: &str) {
        use base64::Engine as _;
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().expect("data")).expect("png");
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::write(root.join("target").join(name), &png).expect("write screenshot");
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(root.join("docs").join(name), &png).expect("write docs screenshot");
        }
    }
}

fn js(s: &str) -> String {
    serde_json::to_string(s).expect("json string")
}

#[test]
fn console_login_live_pods_scale_and_logs_in_a_browser() {
    let c = Cluster::start();
    c.apply(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: main\n        image: \"{}\"\n",
        guest("hello-http")
    ));
    let mut b = Browser::launch();
    b.go(&format!("{}/ui/", c.url));
    b.wait("the login form, ready", 20, "document.body.dataset.ready === 'true' && document.querySelector('#token')");

    // A wrong token is refused with the API's answer.
    b.eval("document.querySelector('#token').value = 'not-a-token'; document.querySelector('#login-button').click(); true");
    b.wait("the refusal", 20, "document.querySelector('#login-error').textContent.includes('401 Unauthorized')");

    // The admin token logs in: the overview shows the node.
    b.eval(&format!("document.querySelector('#token').value = {}; document.querySelector('#login-button').click(); true", js(&c.admin_token())));
    let node = node_name();
    b.wait("the node on the overview", 30, &format!("document.querySelector('#nodes tr[data-name={}]').textContent.includes('Ready')", js(&node)));

    // The pods list follows a watch: a pod created now shows up and goes Running.
    b.go(&format!("{}/ui/#/list/core/v1/pods", c.url));
    b.wait("the pods list", 20, "document.querySelector('#list table')");
    c.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: hello}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: \"{}\"\n    args: [--sleep-ms, '600000']\n",
        guest("hello-cmd")
    ));
    b.wait("hello Running, live", 60, "document.querySelector('#list tr[data-name=\"hello\"]').textContent.includes('Running')");
    b.go(&format!("{}/ui/#/", c.url));
    b.wait("the overview counts", 30, "Number(document.querySelector('#pods-by-phase [data-phase=Running] b').textContent) >= 2");
    b.screenshot("console-overview.png");

    // Scale the Deployment from 1 to 3 and watch the pods appear.
    b.go(&format!("{}/ui/#/obj/apps/v1/deployments/default/web", c.url));
    b.wait("the scale control", 20, "document.querySelector('#scale-input')");
    b.eval("const i = document.querySelector('#scale-input'); i.value = '3'; document.querySelector('#scale-button').click(); true");
    b.wait("the scale result", 20, "document.querySelector('#scale-status').textContent.includes('scaled to 3')");
    b.go(&format!("{}/ui/#/list/core/v1/pods", c.url));
    b.wait("three web pods Running", 60, "[...document.querySelectorAll('#list tr')].filter(r => (r.dataset.name || '').startsWith('web-') && r.textContent.includes('Running')).length === 3");
    assert_eq!(c.jsonpath(&["deployment", "web"], "{.spec.replicas}"), "3");

    // A pod's page: its YAML, and its logs.
    b.go(&format!("{}/ui/#/obj/core/v1/pods/default/hello", c.url));
    b.wait("the pod's YAML", 20, "document.querySelector('#yaml').textContent.includes('hello-cmd')");
    b.eval("document.querySelector('[data-tab=Logs]').click(); true");
    b.wait("the pod's logs", 30, "document.querySelector('#logs').textContent.includes('hello from hello-cmd')");
    b.screenshot("console-pod.png");
    let related = b.eval("document.querySelector('[data-tab=Related]').click(); true");
    assert_eq!(related, true);
}

/// The console's assets are public (they are the login page) but carry a strict CSP; the
/// API behind them still needs the token.
#[test]
fn console_assets_are_served_with_a_strict_policy() {
    let c = Cluster::start();
    let out = Command::new("curl").args(["-sk", "-D", "-", &format!("{}/ui/", c.url)]).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/2 200") || text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("content-security-policy: default-src 'self'"), "{text}");
    assert!(text.contains("<script src=\"app.js\"></script>"), "{text}");
    let api = Command::new("curl").args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", &format!("{}/api/v1/pods", c.url)]).output().expect("curl");
    assert_eq!(String::from_utf8_lossy(&api.stdout), "401");
    let _ = PathBuf::new();
}
