//! `flotilla up -d`, `flotilla status` and `flotilla down`: a cluster in the background,
//! stopped gracefully, with the user's kubeconfig left as it was found.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::{Run, flotilla_bin, guest};

const KUBECONFIG: &str = "\
apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster: {server: 'https://prod.example:6443'}
users:
- name: admin
  user: {token: secret}
contexts:
- name: prod
  context: {cluster: prod, user: admin, namespace: shop}
current-context: prod
preferences: {}
";

fn run(home: &Path, cmd: &str, args: &[&str]) -> Run {
    let out = Command::new(cmd).args(args).env("HOME", home).env("KUBECONFIG", home.join("kubeconfig")).env("RUST_BACKTRACE", "0").output().expect("run");
    Run { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&out.stdout).into(), stderr: String::from_utf8_lossy(&out.stderr).into() }
}

fn yaml(path: &Path) -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(path).expect("kubeconfig")).expect("yaml")
}

/// The value after `key ` on the line that starts with it.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines().find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' '))).unwrap_or_else(|| panic!("no `{key}` line in:\n{out}"))
}

#[test]
fn up_detached_then_down_keeps_the_data_and_restores_the_kubeconfig() {
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    let kc = h.join("kubeconfig");
    std::fs::write(&kc, KUBECONFIG).unwrap();
    let data = h.join("data");
    let data_s = data.to_str().unwrap();
    let up = ["up", "-d", "--listen", "127.0.0.1:0", "--data-dir", data_s, "--ingress-listen", "off"];

    let status = run(h, flotilla_bin(), &["status", "--data-dir", data_s]);
    assert_eq!((status.code, status.stdout.trim()), (3, "not running"));

    // `up -d` returns once the cluster serves, saying where it is.
    let started = run(h, flotilla_bin(), &up);
    let out = started.ok();
    let api = field(out, "api");
    assert!(api.starts_with("https://127.0.0.1:"), "{out}");
    assert!(field(out, "context").starts_with("flotilla"), "{out}");
    assert_eq!(field(out, "console"), format!("{api}/ui/"));
    let log = field(out, "log").to_string();
    assert!(Path::new(&log).is_file(), "{out}");
    assert_eq!(yaml(&kc)["current-context"], "flotilla");
    let nodes = run(h, "kubectl", &["get", "nodes", "-o", "name"]);
    let node = field(out, "nodes");
    assert_eq!(nodes.ok().trim(), format!("node/{node}"));

    let status = run(h, flotilla_bin(), &["status", "--data-dir", data_s]);
    let s = status.ok();
    assert_eq!(s.lines().next(), Some("running"), "{s}");
    assert_eq!(field(s, "version"), env!("CARGO_PKG_VERSION"));
    assert_eq!(field(s, "nodes"), node);
    assert_eq!(field(s, "api"), api);
    assert!(field(s, "uptime").ends_with('s'), "{s}");

    // A second `up` on the same data dir is refused while the first runs.
    let again = run(h, flotilla_bin(), &up);
    assert!(again.err().contains("already running"), "{}", again.stderr);

    let hello = guest("hello-http");
    let pod = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: web, namespace: default}}\nspec:\n  containers:\n  - name: main\n    image: \"{hello}\"\n    ports: [{{containerPort: 8080}}]\n");
    std::fs::write(h.join("pod.yaml"), &pod).unwrap();
    run(h, "kubectl", &["apply", "-f", h.join("pod.yaml").to_str().unwrap()]).ok();
    run(h, "kubectl", &["wait", "--for=condition=Ready", "pod/web", "-n", "default", "--timeout=60s"]).ok();

    // `down` stops it gracefully and puts the previous context back; the data stays.
    let down = run(h, flotilla_bin(), &["down", "--data-dir", data_s]);
    let d = down.ok();
    assert!(d.contains("flotilla stopped"), "{d}");
    assert!(d.contains("current context is prod again"), "{d}");
    let status = run(h, flotilla_bin(), &["status", "--data-dir", data_s]);
    assert_eq!((status.code, status.stdout.trim()), (3, "not running"));
    let after = yaml(&kc);
    assert_eq!(after["current-context"], "prod");
    let names = |list: &str| -> Vec<String> {
        after[list].as_sequence().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(names("clusters"), ["prod", "flotilla"]);
    assert_eq!(after["contexts"][0]["context"]["namespace"], "shop");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("flotilla cluster ready"), "the log holds the cluster's output: {logged}");

    // Started again, the cluster still has its pod; `down --purge` removes every trace.
    run(h, flotilla_bin(), &up).ok();
    let get = run(h, "kubectl", &["get", "pod", "web", "-n", "default", "-o", "name"]);
    assert_eq!(get.ok().trim(), "pod/web");
    let purge = run(h, flotilla_bin(), &["down", "--data-dir", data_s, "--purge"]);
    purge.ok();
    assert!(!data.exists(), "{}", purge.stdout);
    assert_eq!(yaml(&kc), serde_yaml::from_str::<serde_yaml::Value>(KUBECONFIG).unwrap(), "kubeconfig back to what it was");
    let again = run(h, flotilla_bin(), &["down", "--data-dir", data_s]);
    assert!(again.ok().contains("not running"));
}

#[test]
fn up_refuses_a_malformed_kubeconfig_and_leaves_it_alone() {
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    let kc = h.join("kubeconfig");
    let bad = "apiVersion: v1\nclusters: {prod: 1}\ncurrent-context: prod\n";
    std::fs::write(&kc, bad).unwrap();
    let data = h.join("data");
    for detach in [true, false] {
        let mut args = vec!["up", "--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap(), "--ingress-listen", "off"];
        if detach {
            args.push("-d");
        }
        let r = run(h, flotilla_bin(), &args);
        let err = r.err();
        assert!(err.contains("malformed") && err.contains("kubeconfig"), "{err}");
        assert_eq!(std::fs::read_to_string(&kc).unwrap(), bad);
    }
    std::thread::sleep(Duration::from_millis(200));
    let status = run(h, flotilla_bin(), &["status", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(status.stdout.trim(), "not running");
}
