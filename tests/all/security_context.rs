//! Multi-tenant guest security with the real kubectl: Pod Security admission by namespace
//! labels (enforce refuses with Kubernetes' words, warn prints kubectl `Warning:` lines,
//! also for workloads and for a namespace relabelled over violating pods; invalid labels
//! are refused), and the securityContext as WASI grants on the node
//! (readOnlyRootFilesystem, capabilities drop ALL removing the network, runAsUser /
//! runAsGroup / fsGroup owning what a guest writes).

use std::os::unix::fs::MetadataExt as _;
use std::time::Duration;

use crate::harness::{Cluster, guest};

const NONROOT: &str = "{allowPrivilegeEscalation: false, runAsNonRoot: true, capabilities: {drop: [ALL]}, seccompProfile: {type: RuntimeDefault}}";

fn pod(name: &str, ns: &str, img: &str, security: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: \"{img}\"\n    args: [--sleep-ms, '600000']\n    securityContext: {security}\n{extra}"
    )
}

const HOSTPATH: &str = "    volumeMounts: [{name: data, mountPath: /data}]\n  volumes: [{name: data, hostPath: {path: /tmp}}]\n";

#[test]
fn pod_security_levels_from_namespace_labels() {
    let c = Cluster::start();
    let img = guest("hello-cmd");
    c.kubectl(&["create", "namespace", "locked"]).ok();
    let labelled = c.kubectl(&["label", "namespace", "locked", "pod-security.kubernetes.io/enforce=restricted"]);
    assert_eq!(labelled.ok(), "namespace/locked labeled\n");
    assert_eq!(labelled.stderr, "", "no pods, no warnings");

    // enforce=restricted: a hostPath pod and a pod without restricted's fields are refused.
    let r = c.kubectl_stdin(&["apply", "-f", "-"], &pod("hp", "locked", &img, NONROOT, HOSTPATH));
    assert_eq!(
        r.err(),
        "Error from server (Forbidden): error when creating \"STDIN\": pods \"hp\" is forbidden: violates PodSecurity \"restricted:latest\": \
         restricted volume types (volume \"data\" uses restricted volume type \"hostPath\")\n"
    );
    let r = c.kubectl(&["run", "bare", "-n", "locked", "--image", "example.com/bare:1"]);
    assert_eq!(
        r.err(),
        "Error from server (Forbidden): pods \"bare\" is forbidden: violates PodSecurity \"restricted:latest\": \
         allowPrivilegeEscalation != false (container \"bare\" must set securityContext.allowPrivilegeEscalation=false), \
         unrestricted capabilities (container \"bare\" must set securityContext.capabilities.drop=[\"ALL\"]), \
         runAsNonRoot != true (pod or container \"bare\" must set securityContext.runAsNonRoot=true), \
         seccompProfile (pod or container \"bare\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")\n"
    );
    // A pod meeting restricted is admitted and runs.
    let r = c.kubectl_stdin(&["apply", "-f", "-"], &pod("fine", "locked", &img, NONROOT, ""));
    assert_eq!((r.ok(), r.stderr.as_str()), ("pod/fine created\n", ""));
    c.kubectl(&["wait", "-n", "locked", "--for=condition=Ready", "pod/fine", "--timeout=60s"]).ok();
    // Workloads are warned, never refused (their pods are).
    let r = c.kubectl(&["create", "deployment", "web", "-n", "locked", "--image", "example.com/web:1"]);
    assert_eq!(r.ok(), "deployment.apps/web created\n");
    assert!(r.stderr.starts_with("Warning: would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \""), "{}", r.stderr);

    // warn=baseline: admitted with kubectl's Warning line.
    c.kubectl(&["create", "namespace", "loose"]).ok();
    c.kubectl(&["label", "namespace", "loose", "pod-security.kubernetes.io/warn=baseline"]).ok();
    let r = c.kubectl_stdin(&["apply", "-f", "-"], &pod("hp", "loose", &img, "{}", HOSTPATH));
    assert_eq!(r.ok(), "pod/hp created\n");
    assert_eq!(r.stderr, "Warning: would violate PodSecurity \"baseline:latest\": hostPath volumes (volume \"data\")\n");

    // Enforcing a level over pods that violate it names them.
    let r = c.kubectl(&["label", "namespace", "loose", "pod-security.kubernetes.io/enforce=baseline"]);
    assert_eq!(r.ok(), "namespace/loose labeled\n");
    assert_eq!(
        r.stderr,
        "Warning: existing pods in namespace \"loose\" violate the new PodSecurity enforce level \"baseline:latest\"\nWarning: hp: hostPath volumes\n"
    );
    let r = c.kubectl(&["label", "namespace", "loose", "--overwrite", "pod-security.kubernetes.io/enforce=strict"]);
    assert_eq!(
        r.err(),
        "The Namespace \"loose\" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": must be one of privileged, baseline, restricted\n"
    );
}

#[test]
fn security_context_becomes_wasi_grants() {
    let c = Cluster::start();
    let cmd = guest("hello-cmd");
    let write = |name: &str, security: &str, pod_security: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: Never\n  securityContext: {pod_security}\n  containers:\n  - name: c\n    image: \"{cmd}\"\n    args: [--write, /data/x, hi]\n    securityContext: {security}\n    volumeMounts: [{{name: data, mountPath: /data}}]\n  volumes: [{{name: data, emptyDir: {{}}}}]\n"
        )
    };
    // readOnlyRootFilesystem: the guest's emptyDir is read-only.
    c.apply(&write("ro", "{readOnlyRootFilesystem: true}", "{}"));
    // runAsUser/runAsGroup own what it writes; fsGroup owns the volume (setgid).
    c.apply(&write("owned", "{runAsUser: 1000}", "{runAsUser: 7, runAsGroup: 3000, fsGroup: 2000}"));
    c.wait_pod("ro", "{.status.phase}", "Failed", Duration::from_secs(60));
    let logs = c.kubectl(&["logs", "ro"]).ok().to_string();
    assert!(logs.contains("hello-cmd: error: writing /data/x: "), "{logs}");
    c.wait_pod("owned", "{.status.phase}", "Succeeded", Duration::from_secs(60));
    let uid = c.pod_jsonpath("owned", "{.metadata.uid}");
    let vol = c.path().join("data/node/pods").join(&uid).join("volumes/data");
    if std::fs::metadata(c.path()).expect("data dir").uid() == 0 {
        let (dir, file) = (std::fs::metadata(&vol).expect("volume dir"), std::fs::metadata(vol.join("x")).expect("written file"));
        assert_eq!((dir.gid(), dir.mode() & 0o2000), (2000, 0o2000), "fsGroup owns the volume, setgid");
        assert_eq!((file.uid(), file.gid()), (1000, 2000), "the container's runAsUser, the volume's group");
    }

    // capabilities drop ALL: no outgoing network, but the HTTP container still serves.
    let client = guest("http-client");
    for (name, security) in [("online", "{}"), ("offline", "{capabilities: {drop: [ALL]}}")] {
        c.apply(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - name: c\n    image: \"{client}\"\n    ports: [{{containerPort: 8080}}]\n    securityContext: {security}\n"
        ));
    }
    c.wait_ready("online");
    c.wait_ready("offline");
    let fetch = |pod: &str| c.kubectl(&["get", "--raw", &format!("/api/v1/namespaces/default/pods/{pod}:8080/proxy/fetch?url=http%3A%2F%2Flocalhost%3A8080%2F&n=1")]).ok().to_string();
    assert!(fetch("online").starts_with("200 http-client"), "{}", fetch("online"));
    assert_eq!(fetch("offline"), "error ErrorCode::HttpRequestDenied\n");
}
