//! configMap/secret `items` and modes, downwardAPI and projected volumes, and
//! resourceFieldRef env, read back by a guest through kubectl exec.

use std::os::unix::fs::PermissionsExt as _;

use crate::harness::{Cluster, guest};

#[test]
fn projected_downward_api_items_and_modes() {
    let c = Cluster::start();
    c.kubectl(&["create", "configmap", "cfg", "--from-literal=greeting=hi", "--from-literal=other=no"]).ok();
    c.kubectl(&["create", "secret", "generic", "creds", "--from-literal=password=s3cret"]).ok();
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: vols, labels: {{app: vols, tier: front-end}}, annotations: {{note: hello}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: "{}"
    args: [--sleep-ms, '600000']
    resources: {{limits: {{cpu: 250m, memory: 32Mi}}}}
    env:
    - {{name: CPU_MILLIS, valueFrom: {{resourceFieldRef: {{resource: limits.cpu, divisor: 1m}}}}}}
    - {{name: GREETING, value: x}}
    volumeMounts:
    - {{name: all, mountPath: /all}}
    - {{name: info, mountPath: /info}}
    - {{name: picked, mountPath: /picked}}
  volumes:
  - name: all
    projected:
      defaultMode: 0440
      sources:
      - configMap: {{name: cfg, items: [{{key: greeting, path: cfg/greeting}}]}}
      - secret: {{name: creds, items: [{{key: password, path: secret/password, mode: 0400}}]}}
      - downwardAPI: {{items: [{{path: name, fieldRef: {{fieldPath: metadata.name}}}}]}}
      - configMap: {{name: absent, optional: true}}
  - name: info
    downwardAPI:
      items:
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
      - {{path: note, fieldRef: {{fieldPath: "metadata.annotations['note']"}}}}
      - {{path: mem, resourceFieldRef: {{containerName: main, resource: limits.memory, divisor: 1Mi}}}}
  - name: picked
    configMap: {{name: cfg, items: [{{key: other, path: renamed}}]}}
"#,
        guest("hello-cmd")
    ));
    c.wait_ready("vols");
    let read = |path: &str| {
        let r = c.kubectl(&["exec", "vols", "--", "hello-cmd", "--read", path]);
        let out = r.ok().to_string();
        // hello-cmd prints its banner lines, then the file.
        out.rsplit_once("env: GREETING=x\n").map(|(_, f)| f.to_string()).unwrap_or(out)
    };
    assert_eq!(read("/all/cfg/greeting"), "hi");
    assert_eq!(read("/all/secret/password"), "s3cret");
    assert_eq!(read("/all/name"), "vols");
    assert_eq!(read("/info/labels"), "app=\"vols\"\ntier=\"front-end\"");
    assert_eq!(read("/info/note"), "hello");
    assert_eq!(read("/info/mem"), "32");
    assert_eq!(read("/picked/renamed"), "no");
    let absent = c.kubectl(&["exec", "vols", "--", "hello-cmd", "--read", "/picked/other"]);
    assert_ne!(absent.code, 0, "only the listed key is there");
    let env = c.kubectl(&["exec", "vols", "--", "hello-cmd"]);
    assert!(env.ok().contains("argv0"), "{}", env.stdout);

    // Modes are applied to the files on the node.
    let uid = c.pod_jsonpath("vols", "{.metadata.uid}");
    let vol = c.path().join("data/node/pods").join(&uid).join("volumes/all");
    let mode = |p: &str| std::fs::metadata(vol.join(p)).expect("file on the node").permissions().mode() & 0o777;
    assert_eq!((mode("cfg/greeting"), mode("secret/password"), mode("name")), (0o440, 0o400, 0o440));
}

/// hostPath volumes only under what the node allows (`--allow-host-path`); anything else
/// fails to mount with a Warning event naming hostPath and the path.
#[test]
fn host_paths_only_where_the_node_allows() {
    let shared = tempfile::tempdir().expect("shared dir");
    let allowed = shared.path().join("allowed");
    std::fs::create_dir_all(&allowed).unwrap();
    let c = Cluster::start_with(&["--allow-host-path", allowed.to_str().unwrap()]);
    let pod = |name: &str, path: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: \"{}\"\n    args: [--write, /host/out.txt, from-the-guest]\n    volumeMounts: [{{name: host, mountPath: /host}}]\n  volumes:\n  - name: host\n    hostPath: {{path: \"{path}\", type: DirectoryOrCreate}}\n",
            guest("hello-cmd")
        )
    };
    let inside = allowed.join("app");
    c.apply(&pod("inside", inside.to_str().unwrap()));
    c.wait_pod("inside", "{.status.phase}", "Succeeded", std::time::Duration::from_secs(60));
    assert_eq!(std::fs::read_to_string(inside.join("out.txt")).expect("written on the host"), "from-the-guest");

    let outside = shared.path().join("elsewhere");
    c.apply(&pod("outside", outside.to_str().unwrap()));
    crate::harness::wait_for(std::time::Duration::from_secs(30), "the FailedMount event", || {
        let ev = c.kubectl(&["get", "events", "--field-selector", "involvedObject.name=outside,reason=FailedMount", "-o", "jsonpath={.items[*].message}"]);
        (ev.stdout.contains("hostPath") && ev.stdout.contains(outside.to_str().unwrap())).then_some(())
    });
    assert!(!outside.exists(), "nothing is created outside the allowed prefix");
}
