//! A newcomer's first session, as README tells it: the README's first command
//! (scripts/up.sh, with the test build of the binary) starts a cluster with the hello
//! sample answering, the console is served, a scaffolded guest is built, pushed and
//! deployed, and `flotilla down` leaves the kubeconfig's previous context current.
//! The samples name the cluster's registry as 127.0.0.1:6443, the default address, so
//! this is the one test on that port.

use std::path::Path;
use std::process::Command;

use crate::harness::flotilla_bin;

const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: work\n  cluster: {server: 'https://work.example:6443'}\nusers:\n- name: me\n  user: {token: t}\ncontexts:\n- name: work\n  context: {cluster: work, user: me}\ncurrent-context: work\n";

#[test]
fn readme_first_command_then_console_guest_and_down() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let home = tempfile::tempdir().expect("home");
    let h = home.path();
    let kc = h.join("kubeconfig");
    std::fs::write(&kc, KUBECONFIG).unwrap();
    let data = h.join("data");
    let env = |c: &mut Command| {
        c.env("HOME", h)
            .env("KUBECONFIG", &kc)
            .env("FLOTILLA_BIN", flotilla_bin())
            .env("FLOTILLA_DATA_DIR", &data)
            .env("FLOTILLA_UP_ARGS", "--ingress-listen off")
            .env("FLOTILLA_GUEST_BUILD_DIR", root.join("target/guest-build"))
            .env_remove("KUBECTL_EXTERNAL_DIFF");
    };
    let run = |program: &Path, args: &[&str], cwd: &Path| {
        let mut c = Command::new(program);
        c.args(args).current_dir(cwd);
        env(&mut c);
        let out = c.output().expect("run");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
        (out.status.success(), stdout, stderr)
    };
    // Whatever happens below, stop the cluster.
    struct Down<'a>(&'a Path, &'a Path);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = Command::new(flotilla_bin()).args(["down", "--data-dir"]).arg(self.0).env("HOME", self.1).output();
        }
    }
    let _down = Down(&data, h);

    let (ok, stdout, stderr) = run(&root.join("scripts/up.sh"), &[], root);
    assert!(ok, "scripts/up.sh failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("Hello from hello"), "the hello sample did not answer:\n{stdout}");
    assert!(stdout.contains("console https://127.0.0.1:6443/ui/"), "{stdout}");

    let console = Command::new("curl").args(["-sk", "https://127.0.0.1:6443/ui/"]).output().expect("curl");
    assert!(String::from_utf8_lossy(&console.stdout).contains("<title>Flotilla</title>"));

    let work = tempfile::tempdir().expect("work dir");
    let flotilla = Path::new(flotilla_bin());
    for args in [&["new", "http", "newbie"][..], &["build", "newbie"], &["push", "newbie/target/wasm/newbie.wasm", "newbie:v1"]] {
        let (ok, stdout, stderr) = run(flotilla, args, work.path());
        assert!(ok, "flotilla {args:?} failed:\n{stdout}\n{stderr}");
    }
    let kubectl = Path::new("kubectl");
    let (ok, _, stderr) = run(kubectl, &["apply", "-f", "newbie/manifest.yaml"], work.path());
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = run(kubectl, &["rollout", "status", "deployment/newbie", "--timeout=90s"], work.path());
    assert!(ok, "{stdout}\n{stderr}");

    let (ok, stdout, stderr) = run(flotilla, &["down", "--data-dir", data.to_str().unwrap()], h);
    assert!(ok, "{stdout}\n{stderr}");
    let after: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&kc).unwrap()).unwrap();
    assert_eq!(after["current-context"], "work", "flotilla down left the kubeconfig on {:?}", after["current-context"]);
}
