//! Runtime tests against the guests built by scripts/build-guests.sh (target/guests).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use tokio::sync::watch;

use super::*;

fn guest(name: &str) -> Vec<u8> {
    let path = format!("{}/../target/guests/{name}.wasm", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("guest {path} missing ({e}); run scripts/build-guests.sh"))
}

/// One runtime for all tests (engine, pool and calibration are per process anyway).
fn rt() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("flotilla-runtime-test-{}", std::process::id()));
        Runtime::new(RuntimeConfig { cache_dir: dir, max_instances: 64 }).expect("runtime")
    })
}

fn prepare(name: &str) -> Arc<Compiled> {
    rt().prepare(&format!("sha256:test-{name}"), &guest(name)).expect("prepare")
}

#[derive(Default)]
struct Collect(Mutex<(Vec<u8>, Vec<u8>)>);

impl Collect {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap().0).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap().1).into_owned()
    }
}

impl OutputSink for Collect {
    fn write(&self, stream: Stream, bytes: &[u8]) {
        let mut g = self.0.lock().unwrap();
        match stream {
            Stream::Stdout => g.0.extend_from_slice(bytes),
            Stream::Stderr => g.1.extend_from_slice(bytes),
        }
    }
}

fn spec(argv: &[&str]) -> InstanceSpec {
    InstanceSpec { argv: argv.iter().map(|s| s.to_string()).collect(), ..Default::default() }
}

fn no_kill() -> watch::Receiver<bool> {
    watch::channel(false).1
}

async fn run(name: &str, spec: &InstanceSpec) -> (ExitStatus, Arc<Collect>) {
    let out = Arc::new(Collect::default());
    let st = rt().run(&prepare(name), spec, None, out.clone(), no_kill()).await;
    (st, out)
}

#[test]
fn prepare_detects_kinds_and_shares_compilations() {
    assert_eq!(prepare("hello-http").kind, ContainerKind::Http);
    assert_eq!(prepare("http-misbehave").kind, ContainerKind::Http);
    assert_eq!(prepare("hello-cmd").kind, ContainerKind::Command);
    assert_eq!(prepare("hello-p1").kind, ContainerKind::Command);
    let a = prepare("hello-cmd");
    let b = prepare("hello-cmd");
    assert!(Arc::ptr_eq(&a, &b), "same digest must share one compilation");
    assert!(matches!(rt().prepare("sha256:junk", b"not wasm at all"), Err(RuntimeError::Invalid { .. })));
    // A core module without _start is not runnable.
    // (module (func (export "f")))
    let lib = [
        0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 4, 1, 0x60, 0, 0, 3, 2, 1, 0, 7, 5, 1, 1, b'f', 0, 0, 0x0a, 4, 1, 2, 0, 0x0b,
    ];
    assert!(matches!(rt().prepare("sha256:lib", &lib), Err(RuntimeError::Invalid { message: m, .. }) if m.contains("_start")));
    assert!(rt().fuel_per_core_second() > 10_000_000);
}

#[test]
fn errors_keep_their_cause_and_their_message() {
    use std::error::Error as _;
    // wasmtime's own rejection: the cause is kept, the message is the one a status shows.
    let bad = [0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0xff];
    let e = rt().prepare("sha256:bad", &bad).expect_err("invalid");
    assert!(matches!(&e, RuntimeError::Invalid { source: Some(_), .. }), "{e:?}");
    assert!(e.to_string().starts_with("invalid wasm: "), "{e}");
    // A check of the runtime's own has no cause.
    let e = rt().prepare("sha256:junk", b"not wasm at all").expect_err("invalid");
    assert_eq!(e.to_string(), "invalid wasm: not a WebAssembly binary (missing \\0asm header)");
    assert!(e.source().is_none());
    // An HTTP container whose volume is missing: the io error is the cause.
    let missing = Mount { host_path: "/nonexistent/flotilla".into(), guest_path: "/data".into(), read_only: false };
    let e = rt().serve(&prepare("hello-http"), InstanceSpec { mounts: vec![missing], ..Default::default() }, Arc::new(Collect::default())).err().expect("no such mount");
    assert_eq!(e.to_string(), "mount source /nonexistent/flotilla: No such file or directory (os error 2)");
    assert!(e.source().and_then(|c| c.downcast_ref::<std::io::Error>()).is_some());
}

#[test]
fn wasmtime_version_matches_the_lock_file() {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).expect("Cargo.lock");
    assert!(lock.contains(&format!("name = \"wasmtime\"\nversion = \"{WASMTIME_VERSION}\"\n")), "WASMTIME_VERSION {WASMTIME_VERSION} is not the locked wasmtime");
}

#[tokio::test]
async fn hello_cmd_args_env_and_exit_codes() {
    let mut s = spec(&["hello-cmd", "one", "two words"]);
    s.env = vec![("GREETING".into(), "hi".into()), ("FLOTILLA_POD".into(), "p1".into())];
    let (st, out) = run("hello-cmd", &s).await;
    assert_eq!((st.code, st.reason), (0, ExitReason::Completed), "{st:?}");
    assert!(st.message.is_empty());
    assert!(st.fuel > 0);
    let stdout = out.stdout();
    for line in ["hello from hello-cmd", "argv0: hello-cmd", "arg: one", "arg: two words", "env: GREETING=hi", "env: FLOTILLA_POD=p1"] {
        assert!(stdout.lines().any(|l| l == line), "missing {line:?} in {stdout}");
    }
    assert_eq!(out.stderr(), "hello-cmd: this line goes to stderr\n");

    let (st, _) = run("hello-cmd", &spec(&["hello-cmd", "--exit", "7"])).await;
    assert_eq!((st.code, st.reason), (7, ExitReason::Error), "{st:?}");
    let (st, _) = run("hello-cmd", &spec(&["hello-cmd", "--exit", "0"])).await;
    assert_eq!((st.code, st.reason), (0, ExitReason::Completed));
    let (st, _) = run("hello-cmd", &spec(&["hello-cmd", "--exit", "255"])).await;
    assert_eq!(st.code, 255);
}

#[tokio::test]
async fn env_is_exactly_what_is_granted() {
    let mut s = spec(&["hello-cmd", "--all-env"]);
    s.env = vec![("A".into(), "1".into()), ("B".into(), "two=2".into())];
    let (st, out) = run("hello-cmd", &s).await;
    assert_eq!(st.code, 0);
    let stdout = out.stdout();
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("env: ")).collect();
    assert_eq!(lines, ["env: A=1", "env: B=two=2"], "{stdout}");
}

#[tokio::test]
async fn preopens_read_write_and_read_only() {
    let rw = tempfile::tempdir().unwrap();
    let ro = tempfile::tempdir().unwrap();
    std::fs::write(ro.path().join("given.txt"), "from the host").unwrap();
    let mounts = vec![
        Mount { host_path: rw.path().to_path_buf(), guest_path: "/data".into(), read_only: false },
        Mount { host_path: ro.path().to_path_buf(), guest_path: "/config".into(), read_only: true },
    ];
    let mut s = spec(&["hello-cmd", "--write", "/data/out.txt", "written by guest", "--read", "/data/out.txt", "--read", "/config/given.txt"]);
    s.mounts = mounts.clone();
    let (st, out) = run("hello-cmd", &s).await;
    assert_eq!(st.code, 0, "{st:?} {}", out.stderr());
    assert_eq!(std::fs::read_to_string(rw.path().join("out.txt")).unwrap(), "written by guest");
    assert!(out.stdout().contains("wrote /data/out.txt\nwritten by guestfrom the host"), "{}", out.stdout());

    let mut s = spec(&["hello-cmd", "--write", "/config/evil.txt", "x"]);
    s.mounts = mounts.clone();
    let (st, out) = run("hello-cmd", &s).await;
    assert_eq!(st.code, 2, "write to a read-only mount must fail: {st:?}");
    assert!(out.stderr().contains("writing /config/evil.txt"), "{}", out.stderr());
    assert!(!ro.path().join("evil.txt").exists());

    // Nothing outside the mounts is visible.
    let mut s = spec(&["hello-cmd", "--read", "/etc/hostname"]);
    s.mounts = mounts;
    let (st, _) = run("hello-cmd", &s).await;
    assert_eq!(st.code, 2);

    // A missing host directory fails the container, not the node.
    let mut s = spec(&["hello-cmd"]);
    s.mounts = vec![Mount { host_path: "/nonexistent/flotilla".into(), guest_path: "/x".into(), read_only: false }];
    let (st, _) = run("hello-cmd", &s).await;
    assert_eq!(st.reason, ExitReason::Error);
    assert!(st.message.contains("/nonexistent/flotilla"), "{st:?}");
}

/// Files a guest creates get the container's owner (runAsUser/runAsGroup) before it can
/// see them; under a setgid directory (an fsGroup volume) the directory's group stays.
#[tokio::test]
async fn created_files_get_the_containers_owner() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let plain = tempfile::tempdir().unwrap();
    let grouped = tempfile::tempdir().unwrap();
    std::fs::write(plain.path().join("old.txt"), "before").unwrap();
    let node_uid = std::fs::metadata(plain.path().join("old.txt")).unwrap().uid();
    if node_uid != 0 {
        eprintln!("skipped: chown needs root");
        return;
    }
    std::os::unix::fs::chown(grouped.path(), None, Some(4242)).unwrap();
    std::fs::set_permissions(grouped.path(), std::fs::Permissions::from_mode(0o2775)).unwrap();
    let mut s = spec(&["hello-cmd", "--write", "/data/new.txt", "x", "--write", "/data/old.txt", "y", "--write", "/fs/new.txt", "z"]);
    s.mounts = vec![
        Mount { host_path: plain.path().to_path_buf(), guest_path: "/data".into(), read_only: false },
        Mount { host_path: grouped.path().to_path_buf(), guest_path: "/fs".into(), read_only: false },
    ];
    s.owner = Some(Owner { uid: Some(1234), gid: Some(5678) });
    let (st, out) = run("hello-cmd", &s).await;
    assert_eq!(st.code, 0, "{st:?} {}", out.stderr());
    let owner = |p: &std::path::Path| {
        let md = std::fs::metadata(p).unwrap();
        (md.uid(), md.gid())
    };
    assert_eq!(owner(&plain.path().join("new.txt")), (1234, 5678));
    assert_eq!(owner(&plain.path().join("old.txt")).0, 0, "an existing file keeps its owner");
    assert_eq!(owner(&grouped.path().join("new.txt")), (1234, 4242));
}

#[tokio::test]
async fn hello_p1_runs_with_exact_exit_code() {
    let mut s = spec(&["hello-p1", "x", "--exit", "42"]);
    s.env = vec![("GREETING".into(), "p1".into())];
    let (st, out) = run("hello-p1", &s).await;
    assert_eq!((st.code, st.reason), (42, ExitReason::Error), "{st:?}");
    let stdout = out.stdout();
    assert!(stdout.contains("hello from hello-p1\n"), "{stdout}");
    assert!(stdout.contains("arg: x\n") && stdout.contains("env: GREETING=p1\n"), "{stdout}");
    let (st, _) = run("hello-p1", &spec(&["hello-p1"])).await;
    assert_eq!((st.code, st.reason), (0, ExitReason::Completed));
    assert!(st.fuel > 0);
}

#[tokio::test]
async fn stdin_and_streamed_output() {
    // Output arrives while the guest still runs (it sleeps after printing).
    let out = Arc::new(Collect::default());
    let compiled = prepare("hello-cmd");
    let s = spec(&["hello-cmd", "--loop-print", "3", "--sleep-ms", "600"]);
    let started = Instant::now();
    let task = {
        let out = out.clone();
        async move { rt().run(&compiled, &s, None, out, no_kill()).await }
    };
    let handle = tokio::spawn(task);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(out.stdout().contains("line 3\n"), "output must stream: {:?}", out.stdout());
    assert!(!handle.is_finished());
    let st = handle.await.unwrap();
    assert_eq!(st.code, 0);
    assert!(started.elapsed() >= Duration::from_millis(600));

    // stdin channel: the p1 guest ignores stdin, but a closed channel must not hang it.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    tx.send(Bytes::from_static(b"ignored")).await.unwrap();
    drop(tx);
    let st = rt().run(&prepare("hello-p1"), &spec(&["hello-p1"]), Some(rx), out, no_kill()).await;
    assert_eq!(st.code, 0);
}

#[tokio::test]
async fn misbehaving_commands_end_with_errors() {
    for (name, needle) in [("trap", "unreachable"), ("panic", "unreachable"), ("stack-overflow", "call stack exhausted")] {
        let (st, out) = run(name, &spec(&[name])).await;
        assert_eq!((st.code, st.reason), (EXIT_CODE_TRAP, ExitReason::Error), "{name}: {st:?}");
        assert!(st.message.contains(needle), "{name}: {}", st.message);
        assert!(!out.stdout().is_empty() || !out.stderr().is_empty(), "{name} printed before failing");
    }
    let (_, out) = run("panic", &spec(&["panic"])).await;
    assert!(out.stderr().contains("panicked"), "{}", out.stderr());
}

#[tokio::test]
async fn memory_limit_ends_oomkilled() {
    let mut s = spec(&["memory-hog"]);
    s.limits.memory_bytes = Some(32 << 20);
    let (st, out) = run("memory-hog", &s).await;
    assert_eq!((st.code, st.reason), (EXIT_CODE_KILLED, ExitReason::OOMKilled), "{st:?}");
    assert!(st.message.contains("memory limit"), "{}", st.message);
    let stdout = out.stdout();
    assert!(stdout.contains("allocated 16 MiB"), "{stdout}");
    assert!(!stdout.contains("allocated 32 MiB"), "grew past the limit: {stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_limit_holds_and_kill_stops_busy_guest() {
    let compiled = prepare("infinite-loop");
    let mut s = spec(&["infinite-loop"]);
    s.limits.cpu_millis = Some(100);
    let (kill_tx, kill_rx) = watch::channel(false);
    let out = Arc::new(Collect::default());
    let handle = {
        let (compiled, out) = (compiled.clone(), out.clone());
        tokio::spawn(async move { rt().run(&compiled, &s, None, out, kill_rx).await })
    };
    let wall = Duration::from_millis(1500);
    tokio::time::sleep(wall).await;
    let t = Instant::now();
    kill_tx.send_replace(true);
    let st = handle.await.unwrap();
    let kill_latency = t.elapsed();
    assert_eq!((st.code, st.reason), (EXIT_CODE_KILLED, ExitReason::Killed), "{st:?}");
    assert!(kill_latency < Duration::from_millis(300), "kill took {kill_latency:?}");
    let cores = st.fuel as f64 / rt().fuel_per_core_second() as f64 / wall.as_secs_f64();
    println!("infinite-loop at 100m: {cores:.3} cores over {wall:?}, kill latency {kill_latency:?}");
    assert!((0.03..0.3).contains(&cores), "100m guest used {cores} cores");
    assert!(!out.stdout().is_empty());

    // Unlimited busy guest: killed promptly too, and it got far more CPU.
    let (kill_tx, kill_rx) = watch::channel(false);
    let s = spec(&["infinite-loop"]);
    let handle = {
        let out = out.clone();
        tokio::spawn(async move { rt().run(&compiled, &s, None, out, kill_rx).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    kill_tx.send_replace(true);
    let st = handle.await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(300), "kill took {:?}", t.elapsed());
    assert_eq!(st.reason, ExitReason::Killed);
    let unlimited = st.fuel as f64 / rt().fuel_per_core_second() as f64 / 0.5;
    println!("infinite-loop unlimited: {unlimited:.3} cores (fuel/s calibrated at {})", rt().fuel_per_core_second());
    assert!(unlimited > 0.4, "unlimited guest used only {unlimited} cores");
}

#[tokio::test]
async fn kill_stops_guest_blocked_in_host_call() {
    let (kill_tx, kill_rx) = watch::channel(false);
    let compiled = prepare("hello-cmd");
    let handle = tokio::spawn(async move {
        rt().run(&compiled, &spec(&["hello-cmd", "--sleep-ms", "60000"]), None, Arc::new(Collect::default()), kill_rx).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    kill_tx.send_replace(true);
    let st = tokio::time::timeout(Duration::from_secs(2), handle).await.expect("kill in host call").unwrap();
    assert_eq!(st.reason, ExitReason::Killed);
    // Already-set kill flag: never starts.
    let (_tx, rx) = watch::channel(true);
    let st = rt().run(&prepare("hello-cmd"), &spec(&["hello-cmd"]), None, Arc::new(Collect::default()), rx).await;
    assert_eq!(st.reason, ExitReason::Killed);
}

fn request(method: &str, uri: &str, body: &'static [u8]) -> ::http::Request<BoxBody> {
    let body = http_body_util::Full::new(Bytes::from_static(body)).map_err(|never| match never {}).boxed_unsync();
    ::http::Request::builder().method(method).uri(uri).header("host", "pod.test").header("x-flotilla", "yes").body(body).unwrap()
}

async fn text(resp: ::http::Response<BoxBody>) -> (u16, String) {
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_http_serves() {
    let s = InstanceSpec { env: vec![("POD_NAME".into(), "web-1".into()), ("MODE".into(), "test".into())], ..Default::default() };
    let out = Arc::new(Collect::default());
    let svc = Arc::new(rt().serve(&prepare("hello-http"), s, out).unwrap());
    assert_eq!(text(svc.handle(request("GET", "/", b"")).await).await, (200, "Hello from Flotilla\n".into()));
    let (status, env) = text(svc.handle(request("GET", "/env", b"")).await).await;
    assert_eq!(status, 200);
    let mut lines: Vec<&str> = env.lines().collect();
    lines.sort();
    assert_eq!(lines, ["MODE=test", "POD_NAME=web-1"]);
    assert_eq!(text(svc.handle(request("POST", "/echo", b"ping pong")).await).await, (200, "ping pong".into()));
    let (status, headers) = text(svc.handle(request("GET", "/headers", b"")).await).await;
    assert_eq!(status, 200);
    assert!(headers.contains("x-flotilla: yes"), "{headers}");
    assert_eq!(text(svc.handle(request("GET", "/nope", b"")).await).await.0, 404);
    // Absolute-form URI without Host header works too.
    let body = http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync();
    let req = ::http::Request::builder().uri("/").body(body).unwrap();
    assert_eq!(text(svc.handle(req).await).await.0, 200);

    // Concurrent requests, including slow ones.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..24 {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            let uri = if i % 3 == 0 { "/slow?ms=300" } else { "/" };
            text(svc.handle(request("GET", uri, b"")).await).await
        }));
    }
    for t in tasks {
        let (status, _) = t.await.unwrap();
        assert_eq!(status, 200);
    }
    assert!(started.elapsed() < Duration::from_millis(2500), "slow requests must overlap: {:?}", started.elapsed());
    assert!(svc.fuel_consumed() > 0);
    assert_eq!(svc.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_requests_are_contained() {
    let mut s = InstanceSpec::default();
    s.limits.memory_bytes = Some(32 << 20);
    s.limits.request_timeout = Some(Duration::from_millis(500));
    let out = Arc::new(Collect::default());
    let svc = rt().serve(&prepare("http-misbehave"), s, out.clone()).unwrap();
    let hello = rt().serve(&prepare("hello-http"), InstanceSpec::default(), Arc::new(Collect::default())).unwrap();
    for path in ["/trap", "/panic", "/oom"] {
        let (status, body) = text(svc.handle(request("GET", path, b"")).await).await;
        assert_eq!(status, 500, "{path}: {body}");
        assert_eq!(text(svc.handle(request("GET", "/", b"")).await).await, (200, "ok\n".into()), "after {path}");
    }
    let (status, body) = text(svc.handle(request("GET", "/oom", b"")).await).await;
    assert!(status == 500 && body.contains("OOMKilled"), "{status} {body}");
    // A busy loop misses its deadline; meanwhile another pod keeps answering.
    let looping = svc.handle(request("GET", "/loop", b""));
    let other = async {
        let mut ok = 0;
        for _ in 0..5 {
            if text(hello.handle(request("GET", "/", b"")).await).await.0 == 200 {
                ok += 1;
            }
        }
        ok
    };
    let started = Instant::now();
    let (resp, ok) = tokio::join!(looping, other);
    assert_eq!(resp.status().as_u16(), 504);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(ok, 5);
    assert_eq!(text(svc.handle(request("GET", "/", b"")).await).await.0, 200);
    assert!(out.stderr().contains("flotilla: request"), "{}", out.stderr());
    assert!(svc.fuel_consumed() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_then_refuses() {
    let svc = Arc::new(rt().serve(&prepare("hello-http"), InstanceSpec::default(), Arc::new(Collect::default())).unwrap());
    let slow = {
        let svc = svc.clone();
        tokio::spawn(async move { text(svc.handle(request("GET", "/slow?ms=300", b"")).await).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(svc.in_flight(), 1);
    let t = Instant::now();
    svc.shutdown(Duration::from_secs(5)).await;
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(slow.await.unwrap(), (200, "slept 300 ms\n".into()));
    assert_eq!(svc.handle(request("GET", "/", b"")).await.status().as_u16(), 503);

    // Grace shorter than the request: the request is killed.
    let svc = Arc::new(rt().serve(&prepare("hello-http"), InstanceSpec::default(), Arc::new(Collect::default())).unwrap());
    let slow = {
        let svc = svc.clone();
        tokio::spawn(async move { text(svc.handle(request("GET", "/slow?ms=5000", b"")).await).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    svc.shutdown(Duration::from_millis(200)).await;
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(slow.await.unwrap().0, 503);
    assert_eq!(svc.in_flight(), 0);
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Figures: per-request instantiate+handle latency of hello-http and run time of
/// hello-cmd, both with the compilation cached. Run with --nocapture to see them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measure_latencies() {
    let svc = rt().serve(&prepare("hello-http"), InstanceSpec::default(), Arc::new(Collect::default())).unwrap();
    for _ in 0..20 {
        text(svc.handle(request("GET", "/", b"")).await).await;
    }
    let mut times = Vec::new();
    for _ in 0..300 {
        let t = Instant::now();
        let (status, _) = text(svc.handle(request("GET", "/", b"")).await).await;
        times.push(t.elapsed());
        assert_eq!(status, 200);
    }
    times.sort();
    println!(
        "hello-http GET / (fresh instance per request): p50 {:?} p99 {:?} max {:?}",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[times.len() - 1]
    );
    let compiled = prepare("hello-cmd");
    let mut times = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        let st = rt().run(&compiled, &spec(&["hello-cmd"]), None, Arc::new(Collect::default()), no_kill()).await;
        times.push(t.elapsed());
        assert_eq!(st.code, 0);
    }
    times.sort();
    println!("hello-cmd run: p50 {:?} p99 {:?}", percentile(&times, 0.5), percentile(&times, 0.99));
    let wasm = guest("hello-cmd");
    let t = Instant::now();
    let again = rt().prepare("sha256:test-hello-cmd", &wasm).unwrap();
    println!("prepare (in-memory hit): {:?}", t.elapsed());
    assert!(Arc::ptr_eq(&again, &compiled));
}

/// A second engine on the same cache dir loads the compilation from disk.
#[test]
fn disk_cache_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RuntimeConfig { cache_dir: dir.path().to_path_buf(), max_instances: 4 };
    let wasm = guest("hello-http");
    let first = Runtime::new(cfg.clone()).unwrap();
    let t = Instant::now();
    first.prepare("d", &wasm).unwrap();
    let cold = t.elapsed();
    drop(first);
    let second = Runtime::new(cfg).unwrap();
    let t = Instant::now();
    second.prepare("d", &wasm).unwrap();
    let warm = t.elapsed();
    println!("hello-http compile: cold {cold:?}, from disk cache {warm:?}");
    assert!(dir.path().join("wasmtime").read_dir().unwrap().next().is_some(), "cache dir stays empty");
    assert!(warm < cold, "cache hit {warm:?} not faster than compile {cold:?}");
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

/// A node-sized pool (10,000 instances) starts, and 1,000 idle HTTP containers of one
/// image cost next to nothing: no instance exists until a request comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sized_pool_and_idle_http_pods_are_cheap() {
    let dir = tempfile::tempdir().unwrap();
    let rss0 = rss_bytes();
    let t = Instant::now();
    let rt = Runtime::new(RuntimeConfig { cache_dir: dir.path().to_path_buf(), max_instances: 10_000 }).unwrap();
    let startup = t.elapsed();
    let rss1 = rss_bytes();
    let compiled = rt.prepare("sha256:hello-http", &guest("hello-http")).unwrap();
    let rss2 = rss_bytes();
    let services: Vec<HttpService> = (0..1000)
        .map(|i| {
            let spec = InstanceSpec { env: vec![("POD".into(), format!("p{i}"))], ..Default::default() };
            rt.serve(&compiled, spec, Arc::new(Collect::default())).unwrap()
        })
        .collect();
    let rss3 = rss_bytes();
    let (status, env) = text(services[999].handle(request("GET", "/env", b"")).await).await;
    assert_eq!((status, env.as_str()), (200, "POD=p999\n"));
    println!(
        "pool for 10,000 instances: start {startup:?}, max memory per guest {} MiB, RSS +{} KiB; \
         hello-http compiled +{} KiB; 1,000 idle HTTP services +{} KiB",
        rt.max_memory_bytes() >> 20,
        rss1.saturating_sub(rss0) >> 10,
        rss2.saturating_sub(rss1) >> 10,
        rss3.saturating_sub(rss2) >> 10
    );
    assert!(rt.max_memory_bytes() >= 512 << 20);
    assert!(rss3.saturating_sub(rss2) < 32 << 20, "idle services cost {} bytes", rss3 - rss2);
}

/// CPU seconds (user + system, from schedstat) of this process's threads named `prefix*`.
fn threads_cpu_secs(prefix: &str) -> f64 {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task").flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        ns += stat.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    ns as f64 / 1e9
}

/// Runs `argv[0]` with `limits` for `wall` on its own 2-worker tokio runtime (the node's
/// shape) and returns the real CPU its threads used per wall second (cores) until the
/// kill (teardown not included), and the exit status (Killed unless it ended first).
fn measure_cpu(tag: &str, argv: &[&str], limits: Limits, wall: Duration) -> (f64, ExitStatus) {
    let compiled = prepare(argv[0]);
    let prefix = format!("cpu-{tag}");
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(prefix.clone())
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut s = spec(argv);
    s.limits = limits;
    let (kill_tx, kill_rx) = watch::channel(false);
    let cpu0 = threads_cpu_secs(&prefix);
    let t0 = Instant::now();
    let handle = tokio_rt.spawn(async move { rt().run(&compiled, &s, None, Arc::new(Collect::default()), kill_rx).await });
    while t0.elapsed() < wall && !handle.is_finished() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let cores = (threads_cpu_secs(&prefix) - cpu0) / t0.elapsed().as_secs_f64();
    kill_tx.send_replace(true);
    let st = tokio_rt.block_on(handle).expect("guest task");
    (cores, st)
}

/// Real CPU time (not fuel) of a busy guest tracks its limit within ±25%.
/// `CPU_MILLIS=250,1000` measures more limits.
#[test]
fn cpu_limit_holds_in_real_cpu_time() {
    let extra: Vec<u64> = std::env::var("CPU_MILLIS").map(|v| v.split(',').filter_map(|m| m.parse().ok()).collect()).unwrap_or_default();
    for millis in [100u64, 500].into_iter().chain(extra) {
        let limits = Limits { cpu_millis: Some(millis), ..Default::default() };
        let (cores, st) = measure_cpu(&format!("loop{millis}"), &["infinite-loop"], limits, Duration::from_secs(2));
        let want = millis as f64 / 1000.0;
        println!("infinite-loop at {millis}m: {cores:.3} cores of real CPU (want {want})");
        assert_eq!(st.reason, ExitReason::Killed, "{st:?}");
        assert!((want * 0.75..want * 1.25).contains(&cores), "infinite-loop at {millis}m used {cores:.3} cores");
    }
}

/// A guest that spends its time writing fresh memory (page faults, bulk fills that cost
/// little fuel) is held to its limit in real CPU time too.
#[test]
fn cpu_limit_holds_for_memory_touching_guest() {
    let limits = Limits { cpu_millis: Some(200), memory_bytes: Some(1 << 30), ..Default::default() };
    let (cores, st) = measure_cpu("hog200", &["memory-hog"], limits, Duration::from_secs(2));
    println!("memory-hog at 200m: {cores:.3} cores of real CPU ({st:?})");
    assert!((0.15..0.25).contains(&cores), "memory-hog at 200m used {cores:.3} cores");
}

/// Concurrent busy requests of one HTTP container share its CPU limit.
#[test]
fn cpu_limit_is_shared_by_http_requests() {
    let compiled = prepare("http-misbehave");
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("cpu-http200")
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut s = InstanceSpec::default();
    s.limits.cpu_millis = Some(200);
    s.limits.request_timeout = Some(Duration::from_secs(2));
    let svc = Arc::new(rt().serve(&compiled, s, Arc::new(Collect::default())).unwrap());
    let cpu0 = threads_cpu_secs("cpu-http200");
    let t0 = Instant::now();
    let statuses = tokio_rt.block_on(async {
        let loops: Vec<_> = (0..3)
            .map(|_| {
                let svc = svc.clone();
                tokio::spawn(async move { svc.handle(request("GET", "/loop", b"")).await.status().as_u16() })
            })
            .collect();
        let mut statuses = Vec::new();
        for l in loops {
            statuses.push(l.await.unwrap());
        }
        statuses
    });
    let cores = (threads_cpu_secs("cpu-http200") - cpu0) / t0.elapsed().as_secs_f64();
    println!("3 looping requests sharing 200m: {cores:.3} cores of real CPU");
    assert_eq!(statuses, [504, 504, 504]);
    assert!((0.15..0.25).contains(&cores), "3 looping requests at 200m used {cores:.3} cores");
}

/// `s` with everything but unreserved characters percent-encoded (a query value).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// The body http-client answers `/fetch?url=URL&QUERY` with.
async fn fetch(client: &HttpService, url: &str, query: &str) -> String {
    let (status, body) = text(client.handle(request("GET", &format!("/fetch?url={}{query}", encode(url)), b"")).await).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A fixed routing for the runtime's side of outgoing requests.
struct Routes {
    web: Arc<HttpService>,
    egress_port: u16,
    closed_port: u16,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Routes")
    }
}

impl Network for Routes {
    fn route(&self, host: &str, port: u16) -> Dispatch {
        match (host, port) {
            ("web", 80) => Dispatch::Local(self.web.clone()),
            ("out", 80) => Dispatch::External { host: "127.0.0.1".into(), port: self.egress_port },
            ("closed", 80) => Dispatch::External { host: "127.0.0.1".into(), port: self.closed_port },
            ("nx", _) => Dispatch::NoSuchName,
            ("denied", _) => Dispatch::Denied,
            _ => Dispatch::Refused,
        }
    }
}

/// A one-shot-per-connection HTTP/1.1 server on loopback that answers with the Host
/// header and request target it saw.
async fn egress_server() -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).into_owned();
                let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let host = head.lines().find_map(|l| l.strip_prefix("host: ")).unwrap_or("").trim().to_string();
                let body = format!("egress saw host={host} target={target}");
                let resp = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = conn.write_all(resp.as_bytes()).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_requests_are_denied_without_a_network() {
    let client = rt().serve(&prepare("http-client"), InstanceSpec::default(), Arc::new(Collect::default())).unwrap();
    assert_eq!(text(client.handle(request("GET", "/", b"")).await).await, (200, "http-client\n".into()));
    assert_eq!(fetch(&client, "http://localhost:8080/", "").await, "error ErrorCode::HttpRequestDenied\n");
    assert_eq!(fetch(&client, "http://127.0.0.1:1/", "").await, "error ErrorCode::HttpRequestDenied\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_requests_go_where_the_network_says() {
    let web = Arc::new(rt().serve(&prepare("hello-http"), InstanceSpec::default(), Arc::new(Collect::default())).unwrap());
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let routes = Routes { web: web.clone(), egress_port: egress_server().await, closed_port };
    let spec = InstanceSpec { network: Some(Arc::new(routes)), ..Default::default() };
    let client = rt().serve(&prepare("http-client"), spec, Arc::new(Collect::default())).unwrap();

    let started = Instant::now();
    // In-process, with the guest's path and query.
    assert_eq!(fetch(&client, "http://web/", "").await, "200 Hello from Flotilla\n");
    assert_eq!(fetch(&client, "http://web/", "&n=3").await, "200 Hello from Flotilla\n".repeat(3));
    assert_eq!(fetch(&client, "http://web/nope?x=1", "").await, "404 not found: /nope\n");
    assert!(web.fuel_consumed() > 0);
    assert_eq!(web.in_flight(), 0);
    // Refusals and unknown names come back as a real network's errors, at once.
    assert_eq!(fetch(&client, "http://web:81/", "").await, "error ErrorCode::ConnectionRefused\n");
    assert_eq!(fetch(&client, "http://nx/", "").await, "error ErrorCode::DnsError(DnsErrorPayload { rcode: Some(\"NXDOMAIN\"), info-code: None })\n");
    assert_eq!(fetch(&client, "http://denied/", "").await, "error ErrorCode::HttpRequestDenied\n");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    // Real egress: connects to the address the network named, keeps the guest's Host.
    assert_eq!(fetch(&client, "http://out/path?q=1", "").await, "200 egress saw host=out target=/path?q=1\n");
    assert_eq!(fetch(&client, "http://closed/", "").await, "error ErrorCode::ConnectionRefused\n");
}

/// Figures: an outgoing request to a node-local HTTP container, timed inside the calling
/// guest, against the same request handed to the container's service by the host.
/// Their difference is what the in-process route adds. Run with --nocapture to see them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measure_in_process_call_overhead() {
    let web = Arc::new(rt().serve(&prepare("hello-http"), InstanceSpec::default(), Arc::new(Collect::default())).unwrap());
    let routes = Routes { web: web.clone(), egress_port: 1, closed_port: 1 };
    let client = rt().serve(&prepare("http-client"), InstanceSpec { network: Some(Arc::new(routes)), ..Default::default() }, Arc::new(Collect::default())).unwrap();
    let mut direct = Vec::new();
    for i in 0..320 {
        let t = Instant::now();
        let (status, _) = text(web.handle(request("GET", "/", b"")).await).await;
        if i >= 20 {
            direct.push(t.elapsed());
        }
        assert_eq!(status, 200);
    }
    direct.sort();
    fetch(&client, "http://web/", "&n=20").await;
    let body = fetch(&client, "http://web/", "&n=300&timing=1").await;
    let mut routed: Vec<Duration> = body
        .lines()
        .map(|l| {
            assert!(l.starts_with("200 Hello from Flotilla "), "{l}");
            Duration::from_micros(l.rsplit(' ').next().and_then(|t| t.strip_suffix("us")).and_then(|t| t.parse().ok()).expect("a timing"))
        })
        .collect();
    routed.sort();
    let (d50, r50) = (percentile(&direct, 0.5), percentile(&routed, 0.5));
    println!(
        "in-process call: from the guest p50 {r50:?} p99 {:?}; host→service p50 {d50:?} p99 {:?}; added p50 {:?}",
        percentile(&routed, 0.99),
        percentile(&direct, 0.99),
        r50.saturating_sub(d50)
    );
}

#[path = "tests/tcp.rs"]
mod tcp;

/// A burst of starts of one new image compiles it once; every start shares the result. A
/// failed compilation is each waiter's error and is not remembered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_starts_of_one_digest_compile_once() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(Runtime::new(RuntimeConfig { cache_dir: dir.path().to_path_buf(), max_instances: 4 }).unwrap());
    let wasm = Arc::new(guest("hello-http"));
    let starts = (0..50).map(|_| {
        let (rt, wasm) = (rt.clone(), wasm.clone());
        tokio::spawn(async move { rt.prepare_shared("sha256:burst", wasm).await })
    });
    let all: Vec<Arc<Compiled>> = futures::future::join_all(starts).await.into_iter().map(|r| r.expect("task").expect("prepare")).collect();
    assert_eq!(rt.compilations(), 1, "50 concurrent starts of one digest compile once");
    assert!(all.iter().all(|c| Arc::ptr_eq(c, &all[0])), "they share one compilation");
    assert!(rt.flights.lock().unwrap().is_empty(), "no flight left behind");

    let bad = Arc::new(b"\0asm\x01\0\0\0garbage".to_vec());
    let starts = (0..10).map(|_| {
        let (rt, bad) = (rt.clone(), bad.clone());
        tokio::spawn(async move { rt.prepare_shared("sha256:bad", bad).await })
    });
    for r in futures::future::join_all(starts).await {
        let e = r.expect("task").expect_err("invalid wasm");
        assert!(e.to_string().starts_with("invalid wasm"), "{e}");
    }
    let after_failure = rt.compilations();
    assert!((2..=11).contains(&after_failure), "{after_failure}");
    rt.prepare_shared("sha256:bad", bad).await.expect_err("still invalid");
    assert_eq!(rt.compilations(), after_failure + 1, "a failure is retried, not cached");
}

/// A container's [`super::Usage`] gets the CPU time its limit charges (its share of the
/// wall time), fuel, memory while instances live, and its HTTP requests.
#[test]
fn usage_counts_cpu_fuel_memory_and_requests() {
    let compiled = prepare("infinite-loop");
    let tokio_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    let mut s = spec(&["infinite-loop"]);
    s.limits.cpu_millis = Some(300);
    let usage = s.usage.clone();
    let (kill_tx, kill_rx) = watch::channel(false);
    let t0 = Instant::now();
    let handle = tokio_rt.spawn(async move { rt().run(&compiled, &s, None, Arc::new(Collect::default()), kill_rx).await });
    std::thread::sleep(Duration::from_millis(300));
    let live = usage.snapshot();
    assert_eq!(live.instances, 1);
    assert!(live.memory_bytes > 0, "{live:?}");
    std::thread::sleep(Duration::from_millis(1200));
    kill_tx.send_replace(true);
    let st = tokio_rt.block_on(handle).expect("guest task");
    let wall = t0.elapsed().as_secs_f64();
    let u = usage.snapshot();
    let cores = u.cpu_ns as f64 / 1e9 / wall;
    println!("usage of infinite-loop at 300m: {cores:.3} cores, fuel {}", u.fuel);
    assert!((0.2..0.4).contains(&cores), "{u:?} over {wall:.2} s");
    assert_eq!(u.fuel, st.fuel);
    assert!(u.fuel > 0);
    assert_eq!((u.instances, u.memory_bytes), (0, 0), "{u:?}");
    assert_eq!(u.memory_peak_bytes, live.memory_peak_bytes.max(u.memory_peak_bytes));
    assert!(u.memory_peak_bytes >= live.memory_bytes);

    let svc = rt().serve(&prepare("hello-http"), InstanceSpec::default(), Arc::new(Collect::default())).unwrap();
    let usage = svc.usage();
    tokio_rt.block_on(async {
        for _ in 0..5 {
            assert_eq!(text(svc.handle(request("GET", "/", b"")).await).await.0, 200);
        }
        // A request's guest ends (and is counted) just after its response body.
        let t0 = Instant::now();
        while svc.in_flight() > 0 && t0.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let u = usage.snapshot();
    let http = u.http.clone().expect("http usage");
    assert_eq!(http.requests, 5);
    assert_eq!(*http.cumulative_buckets.last().expect("buckets"), 5);
    assert!(http.duration_seconds > 0.0);
    assert_eq!(u.fuel, svc.fuel_consumed());
    assert!(u.cpu_ns > 0);
    assert_eq!((u.instances, u.memory_bytes), (0, 0), "{u:?}");
}
