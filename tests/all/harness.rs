//! Test harness: starts the real `flotilla up` binary on a free port with a temp data dir
//! and kubeconfig, and runs the real kubectl against it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `flotilla up` process, killed on drop.
pub struct Cluster {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub url: String,
    pub kubeconfig: PathBuf,
    /// Process id of the `flotilla up` child (0 once stopped).
    pub pid: u32,
    /// Where its Ingress controller listens for HTTP and HTTPS (off unless the test
    /// passes `--ingress-listen`).
    pub ingress: Option<String>,
    pub ingress_tls: Option<String>,
}

/// What a kubectl run printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "command failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        &self.stdout
    }

    /// Asserts failure and returns stderr.
    #[track_caller]
    pub fn err(&self) -> &str {
        assert_ne!(self.code, 0, "command unexpectedly succeeded:\nstdout: {}", self.stdout);
        &self.stderr
    }
}

/// Waits (up to a minute) for the line a flotilla process prints once it serves; also
/// returns the lines before it.
fn ready_line(child: &mut Child) -> Result<(String, Vec<String>), std::sync::mpsc::RecvTimeoutError> {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        while let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut before = Vec::new();
    loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))?;
        if line.contains("ready") {
            return Ok((line, before));
        }
        before.push(line);
    }
}

/// The HTTP and HTTPS addresses of the ingress listeners a flotilla process announced.
fn ingress_of(lines: &[String]) -> (Option<String>, Option<String>) {
    let Some(rest) = lines.iter().find_map(|l| l.strip_prefix("flotilla ingress listening: ")) else { return (None, None) };
    let find = |scheme: &str| rest.split_whitespace().find_map(|w| w.strip_prefix(scheme)).map(str::to_string);
    (find("http://"), find("https://"))
}

pub fn flotilla_bin() -> &'static str {
    env!("CARGO_BIN_EXE_flotilla")
}

impl Cluster {
    /// Starts `flotilla up` in a fresh temp dir.
    pub fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir)
    }

    /// Starts `flotilla up` with the data dir inside `dir` (reused across restarts).
    pub fn start_in(dir: tempfile::TempDir) -> Cluster {
        Self::start_in_with(dir, &[])
    }

    /// Starts `flotilla up` in a fresh temp dir with extra flags, e.g.
    /// `["--restart-backoff-ms", "200"]`.
    pub fn start_with(args: &[&str]) -> Cluster {
        Self::start_in_with(tempfile::tempdir().expect("tempdir"), args)
    }

    /// Starts `flotilla up` with the data dir inside `dir` and extra flags.
    pub fn start_in_with(dir: tempfile::TempDir, args: &[&str]) -> Cluster {
        Self::spawn(dir, "up", args, &[])
    }

    /// Starts `flotilla SUBCOMMAND` (`up` or `server`) in a fresh temp dir with extra flags
    /// and extra environment variables for the process (e.g. the node-lifecycle timings).
    pub fn start_sub(subcommand: &str, args: &[&str], envs: &[(&str, &str)]) -> Cluster {
        Self::spawn(tempfile::tempdir().expect("tempdir"), subcommand, args, envs)
    }

    fn spawn(dir: tempfile::TempDir, subcommand: &str, args: &[&str], envs: &[(&str, &str)]) -> Cluster {
        let kubeconfig = dir.path().join("kubeconfig");
        // Tests run in parallel: no Ingress listener on the fixed default ports unless asked.
        let ingress_off: &[&str] = if subcommand == "up" && !args.contains(&"--ingress-listen") { &["--ingress-listen", "off"] } else { &[] };
        let mut child = Command::new(flotilla_bin())
            .args([subcommand, "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(ingress_off)
            .args(args)
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn flotilla up");
        let (line, before) = ready_line(&mut child).expect("flotilla up printed no ready line");
        let url = line.split_whitespace().find(|w| w.starts_with("https://")).expect("url in ready line").to_string();
        let pid = child.id();
        let (ingress, ingress_tls) = ingress_of(&before);
        Cluster { child: Some(child), dir, url, kubeconfig, pid, ingress, ingress_tls }
    }

    /// Stops the process (SIGKILL) and hands back its directory.
    pub fn stop(mut self) -> tempfile::TempDir {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.pid = 0;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
        dir
    }

    pub fn kubectl_cmd(&self) -> Command {
        let mut c = Command::new("kubectl");
        c.env("KUBECONFIG", &self.kubeconfig).env("HOME", self.dir.path()).env_remove("KUBECTL_EXTERNAL_DIFF");
        c
    }

    /// Runs kubectl with `args`.
    pub fn kubectl(&self, args: &[&str]) -> Run {
        Run::from(self.kubectl_cmd().args(args).output().expect("run kubectl"))
    }

    /// Runs kubectl with `args`, feeding `stdin`.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Run {
        use std::io::Write as _;
        let mut child = self.kubectl_cmd().args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run kubectl");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
        Run::from(child.wait_with_output().expect("kubectl output"))
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("data/pki/admin.token")).expect("token").trim().to_string()
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// host:port of the API server (also the cluster's own OCI registry).
    pub fn host(&self) -> &str {
        self.url.trim_start_matches("https://").trim_end_matches('/')
    }

    /// Runs `flotilla` with `args` and this cluster's kubeconfig in the environment.
    pub fn flotilla(&self, args: &[&str]) -> Run {
        let out = Command::new(flotilla_bin())
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("run flotilla");
        Run::from(out)
    }

    /// Applies a manifest given as YAML text.
    #[track_caller]
    pub fn apply(&self, yaml: &str) {
        self.kubectl_stdin(&["apply", "-f", "-"], yaml).ok();
    }

    /// `kubectl get pod NAME -o jsonpath=PATH` (empty string if the command fails).
    /// `kubectl get WHAT… -o=jsonpath=PATH`, asserting success.
    pub fn jsonpath(&self, what: &[&str], path: &str) -> String {
        let arg = format!("-o=jsonpath={path}");
        let mut args: Vec<&str> = vec!["get"];
        args.extend_from_slice(what);
        args.push(&arg);
        self.kubectl(&args).ok().to_string()
    }

    pub fn pod_jsonpath(&self, pod: &str, path: &str) -> String {
        let arg = format!("-o=jsonpath={path}");
        let r = self.kubectl(&["get", "pod", pod, &arg]);
        if r.code == 0 { r.stdout } else { String::new() }
    }

    /// Waits until `kubectl get pod NAME -o jsonpath=PATH` prints `want`.
    #[track_caller]
    pub fn wait_pod(&self, pod: &str, path: &str, want: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            let last = self.pod_jsonpath(pod, path);
            if last == want {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out waiting for pod {pod} {path} == {want:?}; last {last:?}\nstatus: {}",
                self.pod_jsonpath(pod, "{.status}")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `kubectl wait --for=condition=Ready pod/NAME`.
    #[track_caller]
    pub fn wait_ready(&self, pod: &str) {
        let target = format!("pod/{pod}");
        let r = self.kubectl(&["wait", "--for=condition=Ready", &target, "--timeout=60s"]);
        assert_eq!(r.code, 0, "pod {pod} never became Ready: {}\nstatus: {}", r.stderr, self.pod_jsonpath(pod, "{.status}"));
        assert_eq!(r.stdout, format!("pod/{pod} condition met\n"));
    }

    /// User + system CPU seconds the `flotilla up` process has used so far.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).expect("read /proc/PID/stat");
        // The command name (field 2) may hold spaces; fields after it are plain.
        let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15, i.e. 11 and 12 after the name.
        let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        ticks as f64 / clock_ticks() as f64
    }
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`, 100 if unavailable).
fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// Name of the node `flotilla up` embeds: the host name, lowercased.
pub fn node_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "localhost".into());
    let name: String = raw
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' })
        .collect();
    if name.is_empty() { "localhost".into() } else { name }
}

/// Path of a built test guest, target/guests/NAME.wasm; panics if it was not built.
pub fn guest_path(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/guests").join(format!("{name}.wasm"));
    assert!(path.is_file(), "guest {} is missing: build the guests with scripts/build-guests.sh", path.display());
    path
}

/// file:// URL of a built test guest (the embedded node allows file images).
pub fn guest(name: &str) -> String {
    format!("file://{}", guest_path(name).display())
}

/// A throwaway OCI registry on loopback (Debian's docker-registry via scripts/registry.sh),
/// stopped on drop.
pub struct Registry {
    /// 127.0.0.1:PORT
    pub addr: String,
    dir: String,
}

impl Registry {
    /// Starts one, with htpasswd basic auth if `auth` (USER:PASS) is given.
    pub fn start(auth: Option<&str>) -> Registry {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/registry.sh");
        let mut cmd = Command::new(script);
        cmd.arg("start");
        if let Some(a) = auth {
            cmd.args(["--auth", a]);
        }
        let out = cmd.stderr(Stdio::inherit()).output().expect("run scripts/registry.sh");
        assert!(out.status.success(), "scripts/registry.sh start failed");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text.lines();
        let addr = lines.next().expect("registry address").trim().to_string();
        let dir = lines.next().expect("registry dir").trim().to_string();
        Registry { addr, dir }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/registry.sh");
        let _ = Command::new(script).args(["stop", &self.dir]).output();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `f` until it returns Some or `timeout` passes.
#[track_caller]
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A separate `flotilla node` process joined to a cluster, SIGKILLed on drop.
pub struct NodeProcess {
    child: Option<Child>,
    pub name: String,
    /// Where its Ingress controller listens for HTTP and HTTPS (off unless asked).
    pub ingress: Option<String>,
    pub ingress_tls: Option<String>,
    /// The node's data directory (images, logs, volumes), removed on drop.
    _dir: tempfile::TempDir,
}

impl NodeProcess {
    /// Starts `flotilla node --name NAME` against `c` (admin token, cluster CA, file images
    /// allowed) and waits for its ready line.
    pub fn start(c: &Cluster, name: &str) -> NodeProcess {
        Self::start_with(c, name, &[])
    }

    /// [`NodeProcess::start`] with extra flags; its Ingress listener is off unless they
    /// include `--ingress-listen`.
    pub fn start_with(c: &Cluster, name: &str, args: &[&str]) -> NodeProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let ingress_off: &[&str] = if args.contains(&"--ingress-listen") { &[] } else { &["--ingress-listen", "off"] };
        let mut child = Command::new(flotilla_bin())
            .args(["node", "--server", &c.url, "--token", &c.admin_token(), "--name", name, "--allow-file-images"])
            .args(ingress_off)
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--certificate-authority")
            .arg(c.path().join("data/pki/ca.crt"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn flotilla node");
        let ready = ready_line(&mut child);
        let mut node = NodeProcess { child: Some(child), name: name.to_string(), ingress: None, ingress_tls: None, _dir: dir };
        let (line, before) = ready.unwrap_or_else(|_| {
            node.kill();
            panic!("flotilla node {name} printed no ready line")
        });
        assert!(line.starts_with(&format!("flotilla node {name} ready")), "{line}");
        (node.ingress, node.ingress_tls) = ingress_of(&before);
        node
    }

    /// SIGKILLs the process (no goodbye to the control plane).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A long-running kubectl (e.g. `get pods -w`) whose stdout lines are collected as they
/// arrive; killed on drop.
pub struct KubectlStream {
    child: Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl KubectlStream {
    pub fn start(c: &Cluster, args: &[&str]) -> KubectlStream {
        let mut child = c.kubectl_cmd().args(args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn kubectl");
        let stdout = child.stdout.take().expect("stdout");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().expect("lines lock").push(line);
            }
        });
        KubectlStream { child, lines }
    }

    /// The lines printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines lock").clone()
    }
}

impl Drop for KubectlStream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
