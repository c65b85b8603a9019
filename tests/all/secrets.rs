//! Secrets with the real kubectl: stringData merged into data by `kubectl apply` (client-
//! and server-side), and Secrets encrypted at rest — no file under the data dir holds a
//! Secret's plaintext, before or after a restart and a key rotation, and a wrong key
//! refuses to start.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use crate::harness::{Cluster, Run, flotilla_bin};

fn secret_json(c: &Cluster, name: &str) -> Value {
    serde_json::from_str(c.kubectl(&["get", "secret", name, "-o", "json"]).ok()).expect("secret json")
}

/// Regression test for stringData stored verbatim with data left empty.
#[test]
fn kubectl_apply_merges_string_data_into_data() {
    let c = Cluster::start();
    let manifest = |password: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\ndata:\n  extra: {}\n  password: b2xk\nstringData:\n  user: admin\n  password: {password}\n",
            B64.encode("x")
        )
    };
    c.apply(&manifest("s3cret"));
    let s = secret_json(&c, "creds");
    assert!(s.get("stringData").is_none(), "{s}");
    assert_eq!(s["data"], serde_json::json!({"extra": B64.encode("x"), "password": B64.encode("s3cret"), "user": B64.encode("admin")}));
    // A second apply sends a patch of the stringData that changed.
    c.apply(&manifest("changed"));
    let s = secret_json(&c, "creds");
    assert!(s.get("stringData").is_none(), "{s}");
    assert_eq!(s["data"]["password"], B64.encode("changed"));
    assert_eq!(s["data"]["user"], B64.encode("admin"));

    let ssa = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: applied\nstringData:\n  token: abc\n";
    c.kubectl_stdin(&["apply", "--server-side", "-f", "-"], ssa).ok();
    let s = secret_json(&c, "applied");
    assert!(s.get("stringData").is_none(), "{s}");
    assert_eq!(s["data"]["token"], B64.encode("abc"));
    // `kubectl describe` counts the merged keys.
    let described = c.kubectl(&["describe", "secret", "creds"]).ok().to_string();
    assert!(described.contains("user:") && described.contains("password:") && described.contains("extra:"), "{described}");
}

/// Files under `dir` holding any of `needles`, with the needle found.
fn files_holding(dir: &Path, needles: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir") {
        let path = e.expect("entry").path();
        let meta = std::fs::symlink_metadata(&path).expect("metadata");
        if meta.is_dir() {
            found.extend(files_holding(&path, needles));
        } else if meta.is_file() {
            let bytes = std::fs::read(&path).expect("read file");
            for n in needles {
                if bytes.windows(n.len()).any(|w| w == n.as_bytes()) {
                    found.push(format!("{} holds {n:?}", path.display()));
                }
            }
        }
    }
    found
}

/// Runs flotilla with `args` and waits (at most a minute) for it to exit.
fn flotilla_exits(args: &[&str]) -> Run {
    let mut child = Command::new(flotilla_bin())
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn flotilla");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("flotilla {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    Run { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&out.stdout).into_owned(), stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

#[test]
fn secrets_are_encrypted_at_rest_through_restart_and_key_rotation() {
    let c = Cluster::start();
    let token = "flotilla-e2e-plaintext-7d1f3a9c";
    let applied = "flotilla-e2e-applied-4be0c2d1";
    c.kubectl(&["create", "secret", "generic", "vault", &format!("--from-literal=token={token}")]).ok();
    // Applied with stringData: kubectl's last-applied-configuration annotation holds it too.
    c.apply(&format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: manifest\nstringData:\n  key: {applied}\n"));
    let needles: Vec<String> = [token, applied].iter().flat_map(|p| [p.to_string(), B64.encode(p)]).collect();
    let reads = |c: &Cluster| {
        assert_eq!(c.jsonpath(&["secret", "vault"], "{.data.token}"), B64.encode(token));
        assert_eq!(c.jsonpath(&["secret", "manifest"], "{.data.key}"), B64.encode(applied));
    };
    reads(&c);
    // A configMap with the same value is stored as it is: the search below finds what is there.
    c.kubectl(&["create", "configmap", "control", "--from-literal=v=flotilla-e2e-not-secret"]).ok();

    let dir = c.stop();
    let data = dir.path().join("data");
    assert!(!files_holding(&data, &["flotilla-e2e-not-secret".to_string()]).is_empty(), "the search finds plaintext it is shown");
    assert_eq!(files_holding(&data, &needles), Vec::<String>::new(), "a Secret's plaintext on disk");
    let key_file = data.join("store/encryption.key");
    let key = std::fs::read_to_string(&key_file).expect("key generated into the data dir");
    assert_eq!(B64.decode(key.trim()).expect("base64").len(), 32);
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key_file).expect("meta").permissions()) & 0o777, 0o600);

    let c = Cluster::start_in(dir);
    reads(&c);
    let dir = c.stop();

    let data_arg = data.to_str().expect("utf-8 path");
    let rotated = flotilla_exits(&["server", "--data-dir", data_arg, "--rotate-encryption-key"]);
    assert_eq!(rotated.code, 0, "rotation failed: {}{}", rotated.stdout, rotated.stderr);
    assert!(rotated.stdout.contains("Secrets re-encrypted"), "{}", rotated.stdout);
    let new_key = std::fs::read_to_string(&key_file).expect("key");
    assert_ne!(new_key, key, "the key file holds the new key");
    assert_eq!(files_holding(&data, &needles), Vec::<String>::new(), "a Secret's plaintext on disk after rotation");

    // The rotated key opens the store, here given by --encryption-key-file.
    let given = dir.path().join("given.key");
    std::fs::copy(&key_file, &given).expect("copy key");
    let c = Cluster::start_in_with(dir, &["--encryption-key-file", given.to_str().expect("utf-8 path")]);
    reads(&c);
    let dir = c.stop();

    // A wrong key refuses to start, names the problem, and reveals nothing.
    let kubeconfig = dir.path().join("kubeconfig");
    let wrong = dir.path().join("wrong.key");
    std::fs::write(&wrong, B64.encode([7u8; 32])).expect("write key");
    let old = dir.path().join("old.key");
    std::fs::write(&old, &key).expect("write key");
    for (file, problem) in [(&wrong, "is not the key this store's Secrets are sealed with"), (&old, "is not the key this store's Secrets are sealed with")] {
        let r = flotilla_exits(&[
            "up", "--data-dir", data_arg, "--listen", "127.0.0.1:0", "--kubeconfig", kubeconfig.to_str().expect("path"),
            "--ingress-listen", "off", "--encryption-key-file", file.to_str().expect("path"),
        ]);
        assert_ne!(r.code, 0, "started with a wrong key: {}", r.stdout);
        assert!(r.stderr.contains(problem), "{}", r.stderr);
        assert!(!r.stdout.contains("ready"), "{}", r.stdout);
        for n in &needles {
            assert!(!r.stderr.contains(n.as_str()) && !r.stdout.contains(n.as_str()));
        }
        assert!(!r.stderr.contains(new_key.trim()) && !r.stderr.contains(key.trim()), "the error shows a key: {}", r.stderr);
    }
    std::fs::write(&wrong, "not a key").expect("write");
    let r = flotilla_exits(&["server", "--data-dir", data_arg, "--listen", "127.0.0.1:0", "--kubeconfig", kubeconfig.to_str().expect("path"), "--encryption-key-file", wrong.to_str().expect("path")]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("does not hold a key: expected 32 bytes in base64"), "{}", r.stderr);
    // Still opens with its own key after all that.
    let c = Cluster::start_in(dir);
    reads(&c);
}
