//! Images on the embedded node: pods from the cluster's own registry (`flotilla push`),
//! from a real registry on loopback (Debian's docker-registry via scripts/registry.sh),
//! with basic auth through imagePullSecrets, and the pull errors kubectl shows
//! (InvalidImageName, ErrImagePull → ImagePullBackOff, ErrImageNeverPull).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use crate::harness::{Cluster, Registry, guest_path, node_name, wait_for};
use crate::node_pods::ready_status_restarts;

/// An HTTP pod running `image`, with optional pull policy and pull secret.
fn pod(name: &str, image: &str, policy: Option<&str>, secret: Option<&str>) -> String {
    let node = node_name();
    let policy = policy.map(|p| format!("    imagePullPolicy: {p}\n")).unwrap_or_default();
    let secret = secret.map(|s| format!("  imagePullSecrets: [{{name: {s}}}]\n")).unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n{secret}  containers:\n  - name: main\n    image: \"{image}\"\n{policy}    ports: [{{containerPort: 8080}}]\n"
    )
}

/// `flotilla push` of hello-http; returns the manifest digest it prints (sha256:...).
#[track_caller]
fn push(c: &Cluster, args: &[&str], reference: &str) -> String {
    let wasm = guest_path("hello-http");
    let mut all: Vec<&str> = vec!["push"];
    all.extend_from_slice(args);
    all.push(wasm.to_str().expect("utf-8 path"));
    all.push(reference);
    let r = c.flotilla(&all);
    let out = r.ok().trim().to_string();
    let (pushed, digest) = out.rsplit_once('@').unwrap_or_else(|| panic!("push printed {out:?}"));
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{out}");
    assert!(!pushed.is_empty(), "{out}");
    digest.to_string()
}

#[track_caller]
fn assert_hello(c: &Cluster, pod: &str) {
    let r = c.kubectl(&["get", "--raw", &format!("/api/v1/namespaces/default/pods/{pod}:8080/proxy/")]);
    assert_eq!(r.ok(), "Hello from Flotilla\n", "pod {pod}");
}

fn waiting(c: &Cluster, pod: &str) -> (String, String) {
    let s = c.pod_jsonpath(pod, "{.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].state.waiting.message}");
    let (r, m) = s.split_once('|').unwrap_or(("", ""));
    (r.to_string(), m.to_string())
}

#[test]
fn node_image_from_cluster_registry() {
    let c = Cluster::start();
    let host = c.host().to_string();
    let digest = push(&c, &[], "hello:v1");

    let tagged = format!("{host}/hello:v1");
    let by_digest = format!("{host}/hello@{digest}");
    c.apply(&format!("{}---\n{}", pod("reg", &tagged, None, None), pod("bydigest", &by_digest, None, None)));
    c.wait_ready("reg");
    c.wait_ready("bydigest");
    assert_hello(&c, "reg");
    assert_hello(&c, "bydigest");
    assert_eq!(ready_status_restarts(&c, "reg"), Some(("1/1".into(), "Running".into(), "0".into())));
    assert_eq!(c.pod_jsonpath("reg", "{.status.containerStatuses[0].image}"), tagged);

    // Events as a kubelet records them.
    let reasons = c.kubectl(&["get", "events", "--field-selector", "involvedObject.name=reg", "-o=jsonpath={.items[*].reason}"]).ok().to_string();
    for want in ["Pulling", "Pulled", "Created", "Started"] {
        assert!(reasons.split(' ').any(|r| r == want), "event {want} missing: {reasons}");
    }

    // Once present, imagePullPolicy Never runs it without pulling.
    c.apply(&pod("cached", &tagged, Some("Never"), None));
    c.wait_ready("cached");
    assert_hello(&c, "cached");

    // Checked last, all together, so one failure does not hide the others.
    let mut problems = Vec::new();
    // A kubelet reports a cached image as `Pulled: Container image "X" already present on
    // machine` rather than pulling it.
    let msgs = c.kubectl(&["get", "events", "--field-selector", "involvedObject.name=cached", "-o=jsonpath={.items[?(@.reason==\"Pulled\")].message}"]).ok().to_string();
    let want = format!("Container image \"{tagged}\" already present on machine");
    if msgs != want {
        problems.push(format!("pod cached: Pulled event {msgs:?}, want {want:?}"));
    }
    // imageID is the image's digest: the manifest digest `flotilla push` printed, i.e. a
    // reference that pulls exactly this image (as containerd reports repo digests).
    for p in ["reg", "bydigest"] {
        let image_id = c.pod_jsonpath(p, "{.status.containerStatuses[0].imageID}");
        if !image_id.ends_with(&format!("@{digest}")) {
            problems.push(format!("pod {p}: imageID {image_id:?} is not {host}/hello@{digest}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn node_image_pull_errors() {
    let c = Cluster::start();
    let host = c.host().to_string();
    push(&c, &[], "hello:v1");
    let missing_tag = format!("{host}/hello:v9");
    let absent = format!("{host}/absent:v1");
    c.apply(&format!(
        "{}---\n{}---\n{}",
        pod("badref", "Hello:UPPER:x", None, None),
        pod("notag", &missing_tag, None, None),
        pod("never", &absent, Some("Never"), None)
    ));

    // A missing tag: ErrImagePull, then ImagePullBackOff (seen through a watch).
    let mut watch = c
        .kubectl_cmd()
        .args(["get", "pod", "notag", "-w", "-o=jsonpath={.status.containerStatuses[0].state.waiting.reason}{\"\\n\"}"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    let stdout = watch.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen: Vec<String> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !(seen.iter().any(|s| s == "ErrImagePull") && seen.iter().skip_while(|s| *s != "ErrImagePull").any(|s| s == "ImagePullBackOff")) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("never saw ErrImagePull then ImagePullBackOff; saw {seen:?}"),
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    let (reason, message) = wait_for(Duration::from_secs(60), "ImagePullBackOff", || Some(waiting(&c, "notag")).filter(|(r, _)| r == "ImagePullBackOff"));
    assert_eq!(reason, "ImagePullBackOff");
    assert!(message.starts_with(&format!("Back-off pulling image \"{missing_tag}\"")), "{message}");
    assert_eq!(c.pod_jsonpath("notag", "{.status.phase}"), "Pending");
    let row = ready_status_restarts(&c, "notag").expect("row");
    assert!(row.1 == "ImagePullBackOff" || row.1 == "ErrImagePull", "{row:?}");
    let reasons = c.kubectl(&["get", "events", "--field-selector", "involvedObject.name=notag", "-o=jsonpath={.items[*].reason}"]).ok().to_string();
    assert!(reasons.split(' ').any(|r| r == "Failed") && reasons.split(' ').any(|r| r == "BackOff"), "{reasons}");

    let (reason, message) = wait_for(Duration::from_secs(30), "InvalidImageName", || Some(waiting(&c, "badref")).filter(|(r, _)| !r.is_empty()));
    assert_eq!(reason, "InvalidImageName", "{message}");
    assert!(message.contains("\"Hello:UPPER:x\"") && message.contains("invalid reference format"), "{message}");
    assert_eq!(ready_status_restarts(&c, "badref"), Some(("0/1".into(), "InvalidImageName".into(), "0".into())));

    let (reason, message) = wait_for(Duration::from_secs(30), "ErrImageNeverPull", || Some(waiting(&c, "never")).filter(|(r, _)| !r.is_empty()));
    assert_eq!(reason, "ErrImageNeverPull");
    assert_eq!(message, format!("Container image \"{absent}\" is not present with pull policy of Never"));
    assert_eq!(ready_status_restarts(&c, "never"), Some(("0/1".into(), "ErrImageNeverPull".into(), "0".into())));
}

#[test]
fn node_image_from_loopback_registry() {
    let reg = Registry::start(None);
    let c = Cluster::start();
    let digest = push(&c, &["--plain-http"], &format!("{}/hello:v1", reg.addr));
    push(&c, &["--plain-http"], &format!("{}/hello", reg.addr));

    let tagged = format!("{}/hello:v1", reg.addr);
    let latest = format!("{}/hello", reg.addr);
    c.apply(&format!("{}---\n{}", pod("ext", &tagged, None, None), pod("ext-latest", &latest, None, None)));
    c.wait_ready("ext");
    c.wait_ready("ext-latest");
    assert_hello(&c, "ext");
    assert_hello(&c, "ext-latest");
    // :latest defaults to imagePullPolicy Always, as in Kubernetes.
    let policies = c.kubectl(&["get", "pod", "ext", "ext-latest", "-o=jsonpath={.items[*].spec.containers[0].imagePullPolicy}"]).ok().to_string();
    assert_eq!(policies, "IfNotPresent Always");
    let image_id = c.pod_jsonpath("ext", "{.status.containerStatuses[0].imageID}");
    assert!(image_id.ends_with(&format!("@{digest}")), "imageID {image_id:?} is not the pushed manifest digest {digest}");
}

/// Waits for `pod` to fail its pull (ErrImagePull, or ImagePullBackOff right after it) and
/// checks the Failed event names the registry's refusal.
#[track_caller]
fn assert_unauthorized(c: &Cluster, pod: &str) {
    let reason = wait_for(Duration::from_secs(60), "a failed pull", || {
        let (r, _) = waiting(c, pod);
        if r == "ErrImagePull" || r == "ImagePullBackOff" {
            return Some(r);
        }
        let running = c.pod_jsonpath(pod, "{.status.containerStatuses[0].state.running.startedAt}");
        (!running.is_empty()).then(|| format!("running since {running}"))
    });
    assert!(reason == "ErrImagePull" || reason == "ImagePullBackOff", "pod {pod} pulled with wrong or no credentials: {reason}");
    let sel = format!("involvedObject.name={pod}");
    let failed = c.kubectl(&["get", "events", "--field-selector", &sel, "-o=jsonpath={.items[?(@.reason==\"Failed\")].message}"]).ok().to_string();
    assert!(failed.contains("Failed to pull image") && failed.contains("unauthorized"), "{pod}: Failed events: {failed:?}");
}

#[test]
fn node_image_pull_secret_basic_auth() {
    let reg = Registry::start(Some("alice:s3cret"));
    let c = Cluster::start();
    let image = format!("{}/private:v1", reg.addr);
    let r = c.flotilla(&["push", "--plain-http", guest_path("hello-http").to_str().expect("utf-8"), &image]);
    assert_ne!(r.code, 0, "push without credentials succeeded: {}", r.stdout);
    push(&c, &["--plain-http", "--user", "alice:s3cret"], &image);

    let server = format!("--docker-server={}", reg.addr);
    let r = c.kubectl(&["create", "secret", "docker-registry", "regcred", &server, "--docker-username=alice", "--docker-password=s3cret"]);
    assert_eq!(r.ok(), "secret/regcred created\n");
    let r = c.kubectl(&["create", "secret", "docker-registry", "badcred", &server, "--docker-username=alice", "--docker-password=wrong"]);
    assert_eq!(r.ok(), "secret/badcred created\n");

    // Without credentials, or with wrong ones, the registry refuses the pull.
    c.apply(&format!("{}---\n{}", pod("nosecret", &image, Some("Always"), None), pod("wrongsecret", &image, Some("Always"), Some("badcred"))));
    assert_unauthorized(&c, "nosecret");
    assert_unauthorized(&c, "wrongsecret");

    // With the right secret it pulls and runs. A pod with wrong credentials whose pull
    // is queued behind it (same image, Always) must not ride on that pull.
    c.apply(&format!("{}---\n{}", pod("withsecret", &image, Some("Always"), Some("regcred")), pod("racer", &image, Some("Always"), Some("badcred"))));
    c.wait_ready("withsecret");
    assert_hello(&c, "withsecret");
    assert_unauthorized(&c, "racer");
    // The pod without a secret is still refused.
    let (reason, _) = waiting(&c, "nosecret");
    assert!(reason == "ErrImagePull" || reason == "ImagePullBackOff", "{reason}");
}
