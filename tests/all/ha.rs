//! A raft-replicated control plane of three `flotilla server` processes: joining with a
//! token (and refusing a token whose CA hash does not match), the membership API, writes
//! through every member, the leader killed with SIGKILL and restarted ten times, and every
//! acknowledged write on every member with the same resourceVersion.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{flotilla_bin, wait_for};

/// A free loopback port (bound, then released: a member keeps its ports across restarts).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

struct Member {
    dir: PathBuf,
    api: u16,
    peer: u16,
    child: Option<Child>,
}

impl Member {
    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.api)
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    fn command(&self, extra: &[&str]) -> Command {
        let mut c = Command::new(flotilla_bin());
        c.args(["server", "--data-dir"])
            .arg(self.dir.join("data"))
            .args(["--listen", &format!("127.0.0.1:{}", self.api), "--peer-listen", &format!("127.0.0.1:{}", self.peer), "--kubeconfig"])
            .arg(self.kubeconfig())
            .args(extra)
            .env("RUST_BACKTRACE", "0");
        c
    }

    /// Starts the process and waits for its ready line.
    fn start(dir: &Path, name: &str, extra: &[&str]) -> Member {
        let mut m = Member { dir: dir.join(name), api: free_port(), peer: free_port(), child: None };
        std::fs::create_dir_all(&m.dir).expect("dir");
        m.restart(extra);
        m
    }

    fn restart(&mut self, extra: &[&str]) {
        let mut child = self.command(extra).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn flotilla server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("flotilla server printed no ready line");
            if line.contains("ready") {
                assert!(line.contains(&self.url()), "{line}");
                break;
            }
        }
        self.child = Some(child);
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn kubectl(&self, args: &[&str]) -> std::process::Output {
        Command::new("kubectl").env("KUBECONFIG", self.kubeconfig()).env("HOME", &self.dir).args(args).output().expect("kubectl")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn client(ca: &str) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA")])
        .timeout(Duration::from_secs(40))
        .build()
        .expect("client")
}

async fn members(c: &reqwest::Client, url: &str, token: &str) -> Option<Vec<Value>> {
    let r = c.get(format!("{url}/flotilla/v1/members")).bearer_auth(token).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// The API URL of the member every live member agrees leads.
async fn leader(c: &reqwest::Client, urls: &[String], token: &str) -> Option<String> {
    let mut seen = None;
    for u in urls {
        let list = members(c, u, token).await?;
        let l = list.iter().find(|m| m["role"] == "leader")?["apiURL"].as_str()?.to_string();
        if seen.get_or_insert_with(|| l.clone()) != &l {
            return None;
        }
    }
    seen
}

/// One runtime for the test's clients (a client's connections live on it).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")).block_on(f)
}

#[test]
fn three_servers_join_serve_and_lose_no_acknowledged_write_when_the_leader_is_killed_ten_times() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut ms = vec![Member::start(tmp.path(), "a", &[])];
    let token = std::fs::read_to_string(ms[0].dir.join("data/join-token")).expect("join token written").trim().to_string();
    assert!(token.starts_with("F10"), "{token}");
    let a_url = ms[0].url();
    ms.push(Member::start(tmp.path(), "b", &["--join", &a_url, "--token", &token]));
    // A member joins through a follower too (the join is forwarded to the leader).
    let b_url = ms[1].url();
    ms.push(Member::start(tmp.path(), "c", &["--join", &b_url, "--token", &token]));
    let ca = std::fs::read_to_string(ms[0].dir.join("data/pki/ca.crt")).expect("ca");
    let admin = std::fs::read_to_string(ms[0].dir.join("data/pki/admin.token")).expect("admin token").trim().to_string();
    for m in &ms[1..] {
        assert_eq!(std::fs::read_to_string(m.dir.join("data/pki/ca.crt")).expect("ca"), ca, "one cluster CA");
    }
    let urls: Vec<String> = ms.iter().map(Member::url).collect();
    let c = block_on(async { client(&ca) });

    // A token whose CA hash is not this cluster's: refused, fast, naming the mismatch.
    let bad = format!("F10{}::{}", "0".repeat(64), token.rsplit("::").next().expect("secret"));
    let t = Instant::now();
    let d = Member { dir: tmp.path().join("d"), api: free_port(), peer: free_port(), child: None };
    let out = d.command(&["--join", &a_url, "--token", &bad]).output().expect("run joiner");
    assert!(!out.status.success());
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CA hash mismatch"), "{stderr}");

    // Every member lists the same three members: one leader, two followers, promoted.
    let list = wait_for(Duration::from_secs(30), "three voters", || {
        let list = block_on(members(&c, &a_url, &admin))?;
        let roles: Vec<&str> = list.iter().filter_map(|m| m["role"].as_str()).collect();
        (list.len() == 3 && roles.iter().filter(|r| **r == "leader").count() == 1 && roles.iter().filter(|r| **r == "follower").count() == 2).then_some(list)
    });
    let names: std::collections::BTreeSet<&str> = list.iter().filter_map(|m| m["name"].as_str()).collect();
    assert_eq!(names.len(), 3, "{list:?}");
    for m in &list {
        assert!(urls.contains(&m["apiURL"].as_str().expect("apiURL").to_string()), "{m}");
        assert!(m["peerURL"].as_str().expect("peerURL").starts_with("https://127.0.0.1:"), "{m}");
    }
    // Without the admin token: 401.
    let r = block_on(async { c.get(format!("{a_url}/flotilla/v1/members")).send().await }).expect("send");
    assert_eq!(r.status(), 401);

    // The writer: ConfigMaps created through every member in turn; each acknowledged
    // (201) one recorded with its resourceVersion.
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, urls, admin, c) = (acked.clone(), stop.clone(), urls.clone(), admin.clone(), c.clone());
        std::thread::spawn(move || {
            block_on(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let name = format!("cm-{n}");
                    let url = &urls[n as usize % urls.len()];
                    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"n": n.to_string()}});
                    match c.post(format!("{url}/api/v1/namespaces/default/configmaps")).bearer_auth(&admin).json(&body).send().await {
                        Ok(r) if r.status() == 201 => {
                            let v: Value = r.json().await.expect("created object");
                            let rv = v["metadata"]["resourceVersion"].as_str().expect("rv").to_string();
                            acked.lock().expect("acked").insert(name, rv);
                        }
                        // Refused or unknown: not acknowledged (a later check does not need it).
                        _ => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            })
        })
    };

    let mut failovers = Vec::new();
    for round in 0..10 {
        let before = acked.lock().expect("acked").len();
        wait_for(Duration::from_secs(30), "writes to be acknowledged", || (acked.lock().expect("acked").len() >= before + 3).then_some(()));
        let l = wait_for(Duration::from_secs(30), "the members to agree on a leader", || block_on(leader(&c, &urls, &admin)));
        let k = urls.iter().position(|u| *u == l).expect("leader is a member");
        let count = acked.lock().expect("acked").len();
        let killed = Instant::now();
        ms[k].kill9();
        wait_for(Duration::from_secs(30), &format!("a write after killing the leader (round {round})"), || (acked.lock().expect("acked").len() > count).then_some(()));
        failovers.push(killed.elapsed());
        // Restarting needs only the data dir and the listen flags.
        ms[k].restart(&[]);
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    failovers.sort();
    eprintln!("failover (leader SIGKILL -> next write acknowledged): median {:?}, max {:?}", failovers[failovers.len() / 2], failovers.last().expect("rounds"));
    assert!(*failovers.last().expect("rounds") < Duration::from_secs(10), "{failovers:?}");

    // Every acknowledged ConfigMap is on every member with the same resourceVersion.
    let acked = acked.lock().expect("acked").clone();
    assert!(acked.len() >= 30, "{} writes acknowledged", acked.len());
    let mut views = Vec::new();
    for u in &urls {
        let list: Value = block_on(async {
            c.get(format!("{u}/api/v1/namespaces/default/configmaps")).bearer_auth(&admin).send().await.expect("list").json().await.expect("json")
        });
        let view: BTreeMap<String, String> = list["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| (i["metadata"]["name"].as_str().expect("name").to_string(), i["metadata"]["resourceVersion"].as_str().expect("rv").to_string()))
            .collect();
        for (name, rv) in &acked {
            assert_eq!(view.get(name), Some(rv), "{name} on {u}");
        }
        views.push(view);
    }
    assert!(views.windows(2).all(|w| w[0] == w[1]), "members differ");

    // The leader holds Lease kube-system/flotilla-control-plane.
    wait_for(Duration::from_secs(20), "the leader to hold the control plane's Lease", || {
        let l = block_on(leader(&c, &urls, &admin))?;
        let list = block_on(members(&c, &l, &admin))?;
        let name = list.iter().find(|m| m["role"] == "leader")?["name"].as_str()?.to_string();
        let out = ms[0].kubectl(&["-n", "kube-system", "get", "lease", "flotilla-control-plane", "-o", "jsonpath={.spec.holderIdentity}"]);
        (String::from_utf8_lossy(&out.stdout) == name).then_some(())
    });

    // kubectl works against every member: reads, and writes (forwarded to the leader).
    let some = acked.keys().next().expect("one").clone();
    for (i, m) in ms.iter().enumerate() {
        let out = m.kubectl(&["get", "configmap", &some, "-o", "jsonpath={.metadata.resourceVersion}"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout), acked[&some]);
        let out = m.kubectl(&["create", "configmap", &format!("by-kubectl-{i}"), "--from-literal=a=b"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn up_with_three_servers_runs_three_members_and_they_stop_with_it() {
    let cluster = crate::harness::Cluster::start_with(&["--servers", "3"]);
    let admin = cluster.admin_token();
    let ca = std::fs::read_to_string(cluster.path().join("data/pki/ca.crt")).expect("ca");
    let c = block_on(async { client(&ca) });
    let list = wait_for(Duration::from_secs(30), "three voters", || {
        let list = block_on(members(&c, &cluster.url, &admin))?;
        (list.len() == 3 && list.iter().all(|m| m["role"] == "leader" || m["role"] == "follower")).then_some(list)
    });
    // The embedded node registers through the first member; kubectl works.
    wait_for(Duration::from_secs(60), "the embedded node to be Ready", || {
        let out = cluster.kubectl(&["get", "nodes", "-o", "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}"]);
        (out.code == 0 && out.stdout.contains("True")).then_some(())
    });
    let others: Vec<String> = list.iter().filter_map(|m| m["apiURL"].as_str()).filter(|u| *u != cluster.url).map(str::to_string).collect();
    assert_eq!(others.len(), 2, "{list:?}");
    for u in &others {
        assert!(block_on(members(&c, u, &admin)).is_some(), "member at {u} serves");
    }
    // Killing `up` takes its members down with it.
    drop(cluster.stop());
    for u in &others {
        wait_for(Duration::from_secs(15), "a member to stop with up", || block_on(async { c.get(format!("{u}/healthz")).timeout(Duration::from_secs(1)).send().await.is_err() }).then_some(()));
    }
}

fn kubectl_out(m: &Member, args: &[&str]) -> String {
    String::from_utf8_lossy(&m.kubectl(args).stdout).into_owned()
}

fn apply_pod(m: &Member, name: &str) {
    use std::io::Write as _;
    let yaml = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - name: web\n    image: {}\n", crate::harness::guest("hello-http"));
    let mut child = Command::new("kubectl")
        .env("KUBECONFIG", m.kubeconfig())
        .env("HOME", &m.dir)
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    child.stdin.take().expect("stdin").write_all(yaml.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("kubectl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_node_given_every_member_fails_over_when_its_member_dies() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut ms = vec![Member::start(tmp.path(), "a", &[])];
    let token = std::fs::read_to_string(ms[0].dir.join("data/join-token")).expect("join token").trim().to_string();
    let a_url = ms[0].url();
    ms.push(Member::start(tmp.path(), "b", &["--join", &a_url, "--token", &token]));
    ms.push(Member::start(tmp.path(), "c", &["--join", &a_url, "--token", &token]));
    let admin = std::fs::read_to_string(ms[0].dir.join("data/pki/admin.token")).expect("admin").trim().to_string();
    let servers: Vec<String> = ms.iter().map(Member::url).collect();
    let node_dir = tmp.path().join("node");
    let mut node = Command::new(flotilla_bin())
        .args(["node", "--server", &servers.join(","), "--token", &admin, "--name", "ha-node", "--allow-file-images", "--ingress-listen", "off", "--data-dir"])
        .arg(&node_dir)
        .arg("--certificate-authority")
        .arg(ms[0].dir.join("data/pki/ca.crt"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn flotilla node");
    let mut a = ms.remove(0);
    let b = &ms[0];
    wait_for(Duration::from_secs(60), "the node to be Ready", || {
        (kubectl_out(b, &["get", "node", "ha-node", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]) == "True").then_some(())
    });
    apply_pod(b, "before");
    wait_for(Duration::from_secs(60), "pod before to run", || (kubectl_out(b, &["get", "pod", "before", "-o", "jsonpath={.status.phase}"]) == "Running").then_some(()));

    // The member the node talks to (the first) dies; its Lease is renewed through another.
    let renew = || kubectl_out(b, &["-n", "kube-node-lease", "get", "lease", "ha-node", "-o", "jsonpath={.spec.renewTime}"]);
    a.kill9();
    let killed = Instant::now();
    let first = wait_for(Duration::from_secs(20), "a readable lease", || Some(renew()).filter(|r| !r.is_empty()));
    wait_for(Duration::from_secs(30), "the node's Lease renewed through another member", || (renew() != first).then_some(()));
    eprintln!("node lease renewed {:?} after its member died", killed.elapsed());
    // Its pod keeps running, and it takes new work.
    assert_eq!(kubectl_out(b, &["get", "pod", "before", "-o", "jsonpath={.status.phase}"]), "Running");
    apply_pod(b, "after");
    wait_for(Duration::from_secs(60), "pod after to run", || (kubectl_out(b, &["get", "pod", "after", "-o", "jsonpath={.status.phase}"]) == "Running").then_some(()));
    assert_eq!(kubectl_out(b, &["get", "node", "ha-node", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]), "True");
    let _ = node.kill();
    let _ = node.wait();
}
