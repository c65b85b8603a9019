//! kubectl at every minor from 1.27 through 1.33 (the `kubectl` on PATH here is a version
//! dispatcher with `kubectl.1.27` … `kubectl.1.33` beside its target) drives the basic
//! verbs against one cluster: get, apply (client- and server-side), diff, edit, rollout
//! status/undo, logs -f, exec, wait, delete. 1.27 and 1.28 read /openapi/v2 (protobuf)
//! for apply and explain.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::harness::{Cluster, Run, guest};

const VERSIONS: [&str; 7] = ["1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33"];

/// `kubectl.1.NN` beside the binary `kubectl` on PATH resolves to.
fn kubectl_binary(version: &str) -> PathBuf {
    let path = std::env::var_os("PATH").expect("PATH");
    let on_path = std::env::split_paths(&path).map(|d| d.join("kubectl")).find(|p| p.is_file()).expect("kubectl on PATH");
    let real = std::fs::canonicalize(&on_path).expect("resolve kubectl");
    let versioned = real.parent().expect("dir").join(format!("kubectl.{version}"));
    assert!(versioned.is_file(), "{} is missing", versioned.display());
    versioned
}

struct Kubectl<'a> {
    bin: PathBuf,
    c: &'a Cluster,
    ns: String,
}

impl Kubectl<'_> {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env("KUBECONFIG", &self.c.kubeconfig).env("HOME", self.c.path()).env_remove("KUBECTL_EXTERNAL_DIFF").arg("-n").arg(&self.ns).args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        let o = self.cmd(args).output().expect("run kubectl");
        Run { code: o.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&o.stdout).into(), stderr: String::from_utf8_lossy(&o.stderr).into() }
    }

    fn stdin(&self, args: &[&str], input: &str) -> Run {
        use std::io::Write as _;
        let mut child = self.cmd(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("kubectl");
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write");
        let o = child.wait_with_output().expect("kubectl");
        Run { code: o.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&o.stdout).into(), stderr: String::from_utf8_lossy(&o.stderr).into() }
    }
}

fn deployment(replicas: u32, color: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, labels: {{app: web}}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}, annotations: {{color: {color}}}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: main\n        image: \"{}\"\n        ports: [{{containerPort: 8080}}]\n        env: [{{name: COLOR, value: {color}}}]\n",
        guest("hello-http")
    )
}

/// The basic verbs with one kubectl version, in its own namespace.
fn basic_verbs(c: &Cluster, version: &str) {
    let ns = format!("k{}", version.replace('.', "-"));
    let k = Kubectl { bin: kubectl_binary(version), c, ns: ns.clone() };
    let v = |what: &str| format!("kubectl {version}: {what}");
    k.run(&["create", "namespace", &ns]).ok();

    // apply, then apply a change (a strategic merge patch computed client-side)
    assert_eq!(k.stdin(&["apply", "-f", "-"], &deployment(1, "blue")).ok(), "deployment.apps/web created\n", "{}", v("apply"));
    assert_eq!(k.stdin(&["apply", "-f", "-"], &deployment(2, "blue")).ok(), "deployment.apps/web configured\n", "{}", v("apply again"));
    let r = k.run(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    assert!(r.ok().contains("successfully rolled out"), "{}: {}", v("rollout status"), r.stdout);
    let got = k.run(&["get", "deployment", "web", "-o", "jsonpath={.spec.replicas} {.status.readyReplicas}"]);
    assert_eq!(got.ok(), "2 2", "{}", v("get"));

    // server-side apply and diff
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: one}\n";
    assert_eq!(k.stdin(&["apply", "--server-side", "-f", "-"], cm).ok(), "configmap/cfg serverside-applied\n", "{}", v("apply --server-side"));
    let changed = cm.replace("a: one", "a: two");
    let diff = k.stdin(&["diff", "-f", "-"], &changed);
    assert_eq!(diff.code, 1, "{}: {diff:?}", v("diff"));
    assert!(diff.stdout.contains("-  a: one") && diff.stdout.contains("+  a: two"), "{}: {}", v("diff"), diff.stdout);

    // edit with a scripted editor
    let mut edit = k.cmd(&["edit", "configmap", "cfg"]);
    let o = edit.env("KUBE_EDITOR", "sed -i s/a:\\ one/a:\\ three/").output().expect("edit");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "configmap/cfg edited\n", "{}: {}", v("edit"), String::from_utf8_lossy(&o.stderr));
    assert_eq!(k.run(&["get", "cm", "cfg", "-o", "jsonpath={.data.a}"]).ok(), "three");

    // a second revision, then undo back to the first
    k.stdin(&["apply", "-f", "-"], &deployment(2, "green")).ok();
    k.run(&["rollout", "status", "deployment/web", "--timeout=90s"]).ok();
    assert_eq!(k.run(&["rollout", "undo", "deployment/web"]).ok(), "deployment.apps/web rolled back\n", "{}", v("rollout undo"));
    k.run(&["rollout", "status", "deployment/web", "--timeout=90s"]).ok();
    let color = k.run(&["get", "deployment", "web", "-o", "jsonpath={.spec.template.metadata.annotations.color}"]);
    assert_eq!(color.ok(), "blue", "{}", v("undo restored the template"));

    // a command pod: wait, logs -f (returns when the container exits), exec. It lives 8 s:
    // seven kubectl versions run this at once, and under a loaded CI the three execs took
    // longer than the 3 s it used to live (the last found its container gone).
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: cmd}}\nspec:\n  terminationGracePeriodSeconds: 1\n  restartPolicy: Never\n  containers:\n  - name: main\n    image: \"{}\"\n    args: [\"--sleep-ms\", \"8000\"]\n",
        guest("hello-cmd")
    );
    k.stdin(&["apply", "-f", "-"], &pod).ok();
    k.run(&["wait", "--for=condition=Ready", "pod/cmd", "--timeout=60s"]).ok();
    let exec = k.run(&["exec", "cmd", "--", "hello-cmd", "--exit", "0"]);
    // (kubectl before 1.30 speaks SPDY here, newer ones WebSocket.)
    assert!(exec.ok().contains("arg: --exit"), "{}: {exec:?}", v("exec"));
    let failing = k.run(&["exec", "cmd", "--", "hello-cmd", "--exit", "3"]);
    assert_eq!(failing.code, 3, "{}: {failing:?}", v("exec exit code"));
    let piped = k.stdin(&["exec", "-i", "cmd", "--", "hello-cmd", "--cat"], "through stdin\n");
    assert!(piped.ok().contains("stdin: through stdin"), "{}: {piped:?}", v("exec -i"));
    let logs = k.run(&["logs", "-f", "cmd"]);
    assert!(logs.ok().contains("hello from hello-cmd"), "{}: {logs:?}", v("logs -f"));

    assert_eq!(k.run(&["delete", "configmap", "cfg"]).ok(), "configmap \"cfg\" deleted\n", "{}", v("delete"));
    let gone = k.run(&["get", "configmap", "cfg"]);
    assert!(gone.err().contains("NotFound"), "{}", v("get after delete"));
}

#[test]
fn kubectl_1_27_through_1_33_basic_verbs() {
    let c = Cluster::start();
    std::thread::scope(|s| {
        for version in VERSIONS {
            let c = &c;
            s.spawn(move || basic_verbs(c, version));
        }
    });
}
