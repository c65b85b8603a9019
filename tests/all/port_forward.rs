//! `kubectl port-forward` and `kubectl attach` with the real kubectl against `flotilla up`:
//! port-forward to an HTTP container (hello-http, through curl) and to a TCP container
//! (tcp-echo, bytes both ways), the `svc/NAME` form (kubectl resolves the Service to a pod
//! and its targetPort), a port nobody listens on (kubectl prints the node's error and
//! gives up), a pod that does not exist, a pod on a separate `flotilla node` process;
//! attach streams a running command container's
//! output as it is written, and with `-i` feeds a container that set `stdin: true`.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::{Cluster, NodeProcess, guest, guest_path, wait_for};
use crate::pod_tcp::echo_pod;

const WAIT: Duration = Duration::from_secs(60);

/// A running kubectl whose stdout and stderr lines are collected; killed on drop.
struct Running {
    child: Child,
    out: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn start(c: &Cluster, args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut child = c.kubectl_cmd().args(args).envs(env.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn kubectl");
        let collect = |r: Box<dyn std::io::Read + Send>| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    sink.lock().expect("lines").push(line);
                }
            });
            lines
        };
        let out = collect(Box::new(child.stdout.take().expect("stdout")));
        let err = collect(Box::new(child.stderr.take().expect("stderr")));
        Running { child, out, err }
    }

    fn stdout(&self) -> String {
        self.out.lock().expect("lines").join("\n")
    }

    fn stderr(&self) -> String {
        self.err.lock().expect("lines").join("\n")
    }

    /// The exit code once kubectl has exited by itself within `timeout`.
    fn exit_code(&mut self, timeout: Duration) -> Option<i32> {
        let start = std::time::Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kubectl port-forward TARGET :REMOTE`; returns it and the local port it listens on.
fn forward(c: &Cluster, target: &str, remote: u16) -> (Running, u16) {
    forward_with(c, target, remote, &[], &[])
}

/// [`forward`] with more kubectl flags and environment.
fn forward_with(c: &Cluster, target: &str, remote: u16, flags: &[&str], env: &[(&str, &str)]) -> (Running, u16) {
    let spec = format!(":{remote}");
    let mut args = vec!["port-forward", target, &spec];
    args.extend_from_slice(flags);
    let pf = Running::start(c, &args, env);
    // "Forwarding from 127.0.0.1:41234 -> 8080"
    let port = wait_for(WAIT, &format!("port-forward {target} to listen"), || {
        let out = pf.stdout();
        out.lines()
            .find_map(|l| l.strip_prefix("Forwarding from 127.0.0.1:").and_then(|rest| rest.split(' ').next()).and_then(|p| p.parse::<u16>().ok()))
            .or_else(|| {
                let err = pf.stderr();
                assert!(!err.contains("error:"), "port-forward {target} failed: {err}");
                None
            })
    });
    (pf, port)
}

/// curl through the forwarded port: (exit code, body).
fn curl(port: u16, path: &str, data: Option<&str>) -> (i32, String) {
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", &url]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if data.is_some() {
        cmd.args(["--data-binary", "@-"]);
    }
    let mut child = cmd.spawn().expect("run curl");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(data.unwrap_or("").as_bytes()).expect("curl's stdin");
    drop(stdin);
    let out = child.wait_with_output().expect("curl output");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

fn http_pod(name: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  containers:
  - name: web
    image: {img}
    ports: [{{containerPort: 8080, name: http}}]
"#,
        img = guest("hello-http")
    )
}

/// Writes `lines` on one connection and reads an answer line for each.
fn echo_roundtrip(port: u16, lines: &[&str]) -> Vec<String> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect to the forwarded port");
    conn.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    lines
        .iter()
        .map(|l| {
            conn.write_all(format!("{l}\n").as_bytes()).expect("write");
            let mut answer = String::new();
            reader.read_line(&mut answer).expect("read the echo");
            answer.trim_end().to_string()
        })
        .collect()
}

#[test]
fn port_forward_to_http_and_tcp_pods_and_a_service() {
    let c = Cluster::start();
    c.apply(&http_pod("web"));
    c.apply(&echo_pod("echo", &guest("tcp-echo"), 7000));
    c.apply(
        r#"apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
"#,
    );
    c.wait_ready("web");
    c.wait_ready("echo");

    // HTTP: several connections over one forward; a body goes up and comes back. kubectl
    // 1.32 tunnels SPDY in a WebSocket, and needs no fallback.
    let (pf, port) = forward_with(&c, "pod/web", 8080, &["-v=4"], &[]);
    for _ in 0..3 {
        assert_eq!(curl(port, "/", None), (0, "Hello from Flotilla\n".to_string()));
    }
    let body = "x".repeat(200_000);
    let (code, echoed) = curl(port, "/echo", Some(&body));
    assert_eq!(code, 0, "{}", &echoed[..echoed.len().min(500)]);
    assert!(echoed == body, "POST /echo came back with {} bytes", echoed.len());
    // A client that shuts its write side after the request still gets the response.
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    conn.write_all(b"GET / HTTP/1.1\r\nhost: web\r\n\r\n").expect("request");
    conn.shutdown(std::net::Shutdown::Write).expect("half-close");
    conn.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let mut response = String::new();
    conn.read_to_string(&mut response).expect("response");
    assert!(response.starts_with("HTTP/1.1 200 OK") && response.contains("Hello from Flotilla"), "{response}");
    assert!(pf.stdout().contains("Handling connection for"), "{}", pf.stdout());
    let log = pf.stderr();
    assert!(log.contains("negotiated protocol: portforward.k8s.io") && !log.contains("fallback to secondary dialer"), "{log}");
    drop(pf);

    // The plain SPDY upgrade (kubectl's fallback, or its only way with websockets off).
    let (pf, port) = forward_with(&c, "pod/web", 8080, &[], &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")]);
    assert_eq!(curl(port, "/", None), (0, "Hello from Flotilla\n".to_string()));
    let (code, echoed) = curl(port, "/echo", Some("over plain SPDY"));
    assert_eq!((code, echoed.as_str()), (0, "over plain SPDY"));
    drop(pf);

    // TCP: lines both ways, two connections at once.
    let (pf, port) = forward(&c, "pod/echo", 7000);
    let mut first = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    first.write_all(b"one\n").expect("write");
    assert_eq!(echo_roundtrip(port, &["two", "three"]), ["echo: two", "echo: three"]);
    first.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let mut got = [0u8; 10];
    first.read_exact(&mut got).expect("first connection's echo");
    assert_eq!(&got, b"echo: one\n");
    drop(pf);

    // svc/NAME: kubectl picks a pod of the Service and its targetPort (named here).
    let (_pf, port) = forward(&c, "svc/web", 80);
    assert_eq!(curl(port, "/", None), (0, "Hello from Flotilla\n".to_string()));
}

#[test]
fn port_forward_errors_are_kubectls() {
    let c = Cluster::start();
    c.apply(&http_pod("web"));
    c.wait_ready("web");

    let r = c.kubectl(&["port-forward", "pod/nope", ":8080"]);
    assert!(r.err().contains(r#"pods "nope" not found"#), "{}", r.stderr);

    // Nobody listens on 9999: the connection is dropped, kubectl prints the node's
    // reason and gives up on the pod.
    let (mut pf, port) = forward(&c, "pod/web", 9999);
    let (code, out) = curl(port, "/", None);
    assert_ne!(code, 0, "{out}");
    let code = pf.exit_code(WAIT).expect("kubectl port-forward exits");
    assert_ne!(code, 0);
    let err = pf.stderr();
    assert!(err.contains("error forwarding port 9999 to pod web_default"), "{err}");
    assert!(err.contains("failed to connect to localhost:9999 inside the pod"), "{err}");
    assert!(err.contains("lost connection to pod"), "{err}");
}

#[test]
fn attach_streams_a_running_commands_output() {
    let c = Cluster::start();
    c.apply(&echo_pod("echo", &guest("tcp-echo"), 7000));
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: done}}
spec:
  restartPolicy: Never
  containers:
  - name: once
    image: {img}
"#,
        img = guest("hello-cmd")
    ));
    c.wait_ready("echo");

    // tcp-echo prints every line it answers; a line sent through port-forward shows up in
    // the attached output (what it printed before attaching does not).
    let attach = Running::start(&c, &["attach", "echo"], &[]);
    let (_pf, port) = forward(&c, "pod/echo", 7000);
    let mut sent = 0;
    wait_for(WAIT, "the attached output to show the echoed line", || {
        // The attach may still be connecting: send again until a line shows up.
        sent += 1;
        assert_eq!(echo_roundtrip(port, &[&format!("via attach {sent}")]), [format!("echo: via attach {sent}")]);
        std::thread::sleep(Duration::from_millis(200));
        attach.stdout().contains(": via attach ").then_some(())
    });
    assert!(!attach.stdout().contains("listening on"), "output from before attaching: {}", attach.stdout());

    c.wait_pod("done", "{.status.phase}", "Succeeded", WAIT);
    let r = c.kubectl(&["attach", "done"]);
    assert!(r.err().contains("cannot attach a container in a completed pod; current phase is Succeeded"), "{}", r.stderr);
}

#[test]
fn attach_with_stdin_feeds_a_command_that_reads_it() {
    let c = Cluster::start();
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: cat}}
spec:
  restartPolicy: Never
  containers:
  - name: cat
    image: {img}
    args: ["--cat"]
    stdin: true
    stdinOnce: true
"#,
        img = guest("hello-cmd")
    ));
    c.wait_ready("cat");
    // The container waits on its stdin; kubectl's EOF closes it (stdinOnce), so the
    // command finishes and the attach ends with it.
    let r = c.kubectl_stdin(&["attach", "-i", "cat"], "one\ntwo\n");
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.stdout.contains("stdin: one\nstdin: two\nstdin: EOF\n"), "{}", r.stdout);
    c.wait_pod("cat", "{.status.phase}", "Succeeded", WAIT);
    let logs = c.kubectl(&["logs", "cat"]);
    assert!(logs.ok().contains("stdin: two\n"), "{}", logs.stdout);

    // `kubectl run -i` makes such a pod (stdin, stdinOnce), attaches, and removes it.
    // kubectl run wants a registry reference: the cluster's own registry.
    c.flotilla(&["push", guest_path("hello-cmd").to_str().expect("utf-8 path"), "hello-cmd:cat"]).ok();
    let image = format!("--image={}/hello-cmd:cat", c.host());
    let r = c.kubectl_stdin(&["run", "catrun", &image, "-i", "--rm", "--restart=Never", "--", "--cat"], "three\n");
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.stdout.contains("stdin: three\nstdin: EOF\n"), "{}", r.stdout);
    assert!(r.stdout.contains(r#"pod "catrun" deleted"#), "{}", r.stdout);
}

#[test]
fn port_forward_and_attach_reach_a_pod_on_another_node() {
    let c = Cluster::start();
    let joined = NodeProcess::start(&c, "joined");
    let yaml = echo_pod("far", &guest("tcp-echo"), 7000).replace("spec:\n", &format!("spec:\n  nodeName: {}\n", joined.name));
    c.apply(&yaml);
    c.wait_ready("far");
    assert_eq!(c.pod_jsonpath("far", "{.spec.nodeName}"), joined.name);
    let attach = Running::start(&c, &["attach", "far"], &[]);
    let (_pf, port) = forward(&c, "pod/far", 7000);
    assert_eq!(echo_roundtrip(port, &["across", "nodes"]), ["far: across", "far: nodes"]);
    wait_for(WAIT, "the attached output from the other node", || {
        let _ = echo_roundtrip(port, &["again"]);
        std::thread::sleep(Duration::from_millis(200));
        attach.stdout().contains(": again").then_some(())
    });
}
