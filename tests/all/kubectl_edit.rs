//! Commands that modify live objects in place: label, annotate, patch (strategic, merge,
//! json), scale, edit (with a scripted editor) and set image, asserting what kubectl prints
//! and what lands on the object.

use crate::harness::Cluster;

const DEPLOY: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        env:
        - name: A
          value: "1"
      - name: sidecar
        image: busybox:1.36
"#;

#[test]
fn label_add_overwrite_remove() {
    let c = Cluster::start();
    c.kubectl(&["create", "configmap", "cfg", "--from-literal=a=b"]).ok();
    assert_eq!(c.kubectl(&["label", "configmap", "cfg", "env=prod", "tier=be"]).ok(), "configmap/cfg labeled\n");
    assert_eq!(c.jsonpath(&["cm", "cfg"], "{.metadata.labels}"), r#"{"env":"prod","tier":"be"}"#);

    let r = c.kubectl(&["label", "configmap", "cfg", "env=dev"]);
    assert_eq!(r.err().trim(), "error: 'env' already has a value (prod), and --overwrite is false");
    assert_eq!(c.jsonpath(&["cm", "cfg"], "{.metadata.labels.env}"), "prod");

    assert_eq!(c.kubectl(&["label", "configmap", "cfg", "env=dev", "--overwrite"]).ok(), "configmap/cfg labeled\n");
    assert_eq!(c.jsonpath(&["cm", "cfg"], "{.metadata.labels.env}"), "dev");

    assert_eq!(c.kubectl(&["label", "configmap", "cfg", "env-"]).ok(), "configmap/cfg unlabeled\n");
    assert_eq!(c.jsonpath(&["cm", "cfg"], "{.metadata.labels}"), r#"{"tier":"be"}"#);
    // Same value again: nothing to change.
    assert_eq!(c.kubectl(&["label", "configmap", "cfg", "tier=be", "--overwrite"]).ok(), "configmap/cfg not labeled\n");

    // Invalid label values are refused by the server.
    let r = c.kubectl(&["patch", "configmap", "cfg", "--type=merge", "-p", r#"{"metadata":{"labels":{"bad":"-x-"}}}"#]);
    assert!(r.err().starts_with(r#"The ConfigMap "cfg" is invalid: metadata.labels: Invalid value: "-x-": "#), "{}", r.stderr);
    assert!(
        r.err().contains(r#"metadata.labels: Invalid value: "-x-": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"#),
        "{}",
        r.stderr
    );

    // Labelling several objects by selector.
    c.kubectl(&["create", "configmap", "cfg2"]).ok();
    c.kubectl(&["label", "configmap", "cfg2", "tier=be"]).ok();
    let out = c.kubectl(&["label", "configmap", "-l", "tier=be", "team=core"]).ok().to_string();
    assert_eq!(out, "configmap/cfg labeled\nconfigmap/cfg2 labeled\n");
}

#[test]
fn annotate_add_overwrite_remove() {
    let c = Cluster::start();
    c.kubectl(&["create", "configmap", "cfg"]).ok();
    assert_eq!(c.kubectl(&["annotate", "configmap", "cfg", "note=one"]).ok(), "configmap/cfg annotated\n");
    let r = c.kubectl(&["annotate", "configmap", "cfg", "note=two"]);
    assert_eq!(r.err().trim(), "error: --overwrite is false but found the following declared annotation(s): 'note' already has a value (one)");
    assert_eq!(c.jsonpath(&["cm", "cfg"], "{.metadata.annotations.note}"), "one");
    assert_eq!(c.kubectl(&["annotate", "configmap", "cfg", "note=two", "--overwrite"]).ok(), "configmap/cfg annotated\n");
    assert_eq!(c.jsonpath(&["cm", "cfg"], "{.metadata.annotations.note}"), "two");
    assert_eq!(c.kubectl(&["annotate", "configmap", "cfg", "note-"]).ok(), "configmap/cfg annotated\n");
    // The last annotation removed leaves no annotations map (Kubernetes omits empty maps).
    assert_eq!(c.jsonpath(&["cm", "cfg"], "{.metadata.annotations}"), "");
    let y = c.kubectl(&["get", "cm", "cfg", "-o", "yaml"]).ok().to_string();
    assert!(!y.contains("annotations"), "{y}");
}

#[test]
fn patch_strategic_merge_json() {
    let c = Cluster::start();
    c.kubectl_stdin(&["apply", "-f", "-"], DEPLOY).ok();

    // Strategic (the default): containers merge by name, the others are kept.
    let r = c.kubectl(&["patch", "deployment", "web", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.27"}]}}}}"#]);
    assert_eq!(r.ok(), "deployment.apps/web patched\n");
    assert_eq!(c.jsonpath(&["deploy", "web"], "{.spec.template.spec.containers[*].name}"), "nginx sidecar");
    assert_eq!(c.jsonpath(&["deploy", "web"], "{.spec.template.spec.containers[*].image}"), "nginx:1.27 busybox:1.36");
    // Fields of the merged item not in the patch survive.
    assert_eq!(c.jsonpath(&["deploy", "web"], "{.spec.template.spec.containers[0].env[0].value}"), "1");
    assert_eq!(c.jsonpath(&["deploy", "web"], "{.metadata.generation}"), "2");

    // env merges by name too: adding B keeps A.
    c.kubectl(&["patch", "deployment", "web", "--type=strategic", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","env":[{"name":"B","value":"2"}]}]}}}}"#]).ok();
    assert_eq!(c.jsonpath(&["deploy", "web"], "{.spec.template.spec.containers[0].env[*].name}"), "B A");

    // A new container is added to the list; $patch: delete removes one by name.
    c.kubectl(&["patch", "deployment", "web", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"helper","image":"alpine:3"}]}}}}"#]).ok();
    assert_eq!(c.jsonpath(&["deploy", "web"], "{.spec.template.spec.containers[*].name}"), "helper nginx sidecar");
    c.kubectl(&["patch", "deployment", "web", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}"#]).ok();
    assert_eq!(c.jsonpath(&["deploy", "web"], "{.spec.template.spec.containers[*].name}"), "helper nginx");

    // Merge patch replaces lists wholesale and null deletes keys.
    let r = c.kubectl(&["patch", "deployment", "web", "--type=merge", "-p", r#"{"metadata":{"labels":{"x":"1"}},"spec":{"replicas":5}}"#]);
    assert_eq!(r.ok(), "deployment.apps/web patched\n");
    assert_eq!(c.jsonpath(&["deploy", "web"], "{.spec.replicas} {.metadata.labels.x}"), "5 1");
    c.kubectl(&["patch", "deployment", "web", "--type=merge", "-p", r#"{"metadata":{"labels":{"x":null}}}"#]).ok();
    assert_eq!(c.jsonpath(&["deploy", "web"], "{.metadata.labels.x}"), "");
    c.kubectl(&["patch", "deployment", "web", "--type=merge", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"only","image":"nginx"}]}}}}"#]).ok();
    assert_eq!(c.jsonpath(&["deploy", "web"], "{.spec.template.spec.containers[*].name}"), "only");
    // Defaults are re-applied to the replaced container.
    assert_eq!(c.jsonpath(&["deploy", "web"], "{.spec.template.spec.containers[0].imagePullPolicy}"), "Always");

    // JSON patch.
    let r = c.kubectl(&["patch", "deployment", "web", "--type=json", "-p", r#"[{"op":"replace","path":"/spec/replicas","value":4},{"op":"add","path":"/metadata/annotations","value":{"a":"b"}}]"#]);
    assert_eq!(r.ok(), "deployment.apps/web patched\n");
    assert_eq!(c.jsonpath(&["deploy", "web"], "{.spec.replicas} {.metadata.annotations.a}"), "4 b");
    let r = c.kubectl(&["patch", "deployment", "web", "--type=json", "-p", r#"[{"op":"test","path":"/spec/replicas","value":9}]"#]);
    assert!(r.err().starts_with("The request is invalid"), "{}", r.stderr);

    // No change is reported as such.
    let r = c.kubectl(&["patch", "deployment", "web", "--type=merge", "-p", r#"{"spec":{"replicas":4}}"#]);
    assert_eq!(r.ok(), "deployment.apps/web patched (no change)\n");

    let r = c.kubectl(&["patch", "deployment", "nope", "-p", "{}"]);
    assert_eq!(r.err().trim(), "Error from server (NotFound): deployments.apps \"nope\" not found");
}

#[test]
fn scale_deployment() {
    let c = Cluster::start();
    c.kubectl_stdin(&["apply", "-f", "-"], DEPLOY).ok();
    assert_eq!(c.kubectl(&["scale", "deployment", "web", "--replicas=5"]).ok(), "deployment.apps/web scaled\n");
    assert_eq!(c.jsonpath(&["deploy", "web"], "{.spec.replicas}"), "5");
    assert_eq!(c.kubectl(&["scale", "deployment/web", "--current-replicas=5", "--replicas=3"]).ok(), "deployment.apps/web scaled\n");
    assert_eq!(c.jsonpath(&["deploy", "web"], "{.spec.replicas}"), "3");

    let r = c.kubectl(&["scale", "deployment", "web", "--current-replicas=2", "--replicas=4"]);
    assert_eq!(r.err().trim(), "error: Expected replicas to be 2, was 3");
    assert_eq!(c.jsonpath(&["deploy", "web"], "{.spec.replicas}"), "3");
    assert_eq!(c.kubectl(&["scale", "deployment", "web", "--replicas=0"]).ok(), "deployment.apps/web scaled\n");

    // The scale subresource reads as autoscaling/v1 Scale.
    let raw = c.kubectl(&["get", "--raw", "/apis/apps/v1/namespaces/default/deployments/web/scale"]).ok().to_string();
    let v: serde_json::Value = serde_json::from_str(&raw).expect("json");
    assert_eq!(v["kind"], "Scale");
    assert_eq!(v["apiVersion"], "autoscaling/v1");
    assert_eq!(v["spec"]["replicas"], 0);
    assert_eq!(v["status"]["selector"], "app=web");

    let r = c.kubectl(&["scale", "deployment", "nope", "--replicas=1"]);
    assert_eq!(r.err().trim(), "error: no objects passed to scale deployments.apps \"nope\" not found");

    // With --current-replicas kubectl PUTs the Scale; Go omits replicas 0 (omitempty), which
    // means 0, so scaling to zero that way must work too.
    c.kubectl(&["scale", "deployment", "web", "--replicas=2"]).ok();
    assert_eq!(c.kubectl(&["scale", "deployment/web", "--current-replicas=2", "--replicas=0"]).ok(), "deployment.apps/web scaled\n");
    assert_eq!(c.jsonpath(&["deploy", "web"], "{.spec.replicas}"), "0");
}

#[test]
fn edit_with_a_scripted_editor() {
    let c = Cluster::start();
    c.kubectl(&["create", "configmap", "cfg", "--from-literal=a=one"]).ok();
    let edit = |editor: &str, args: &[&str]| {
        let mut cmd = c.kubectl_cmd();
        cmd.env("KUBE_EDITOR", editor).args(args);
        let o = cmd.output().expect("run kubectl edit");
        (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (code, out, err) = edit("sed -i s/a:\\ one/a:\\ two/", &["edit", "configmap", "cfg"]);
    assert_eq!((code, out.as_str()), (0, "configmap/cfg edited\n"), "{err}");
    assert_eq!(c.jsonpath(&["cm", "cfg"], "{.data.a}"), "two");

    let (code, _out, err) = edit("true", &["edit", "configmap", "cfg"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.trim(), "Edit cancelled, no changes made.");

    let (code, _out, err) = edit("sed -i s/name:\\ cfg/name:\\ other/", &["edit", "configmap", "cfg"]);
    assert_eq!(code, 1);
    assert!(err.contains("error: At least one of apiVersion, kind and name was changed"), "{err}");

    // Editing a deployment bumps its generation.
    c.kubectl_stdin(&["apply", "-f", "-"], DEPLOY).ok();
    let (code, out, err) = edit("sed -i s/replicas:\\ 2/replicas:\\ 7/", &["edit", "deployment", "web"]);
    assert_eq!((code, out.as_str()), (0, "deployment.apps/web edited\n"), "{err}");
    assert_eq!(c.jsonpath(&["deploy", "web"], "{.spec.replicas} {.metadata.generation}"), "7 2");
}

#[test]
fn set_image_and_rollout_restart() {
    let c = Cluster::start();
    c.kubectl_stdin(&["apply", "-f", "-"], DEPLOY).ok();
    assert_eq!(c.kubectl(&["set", "image", "deployment/web", "sidecar=busybox:1.37"]).ok(), "deployment.apps/web image updated\n");
    assert_eq!(c.jsonpath(&["deploy", "web"], "{.spec.template.spec.containers[*].image}"), "nginx:1.25 busybox:1.37");
    assert_eq!(c.kubectl(&["rollout", "restart", "deployment/web"]).ok(), "deployment.apps/web restarted\n");
    let at = c.jsonpath(&["deploy", "web"], "{.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}");
    assert!(at.len() >= 20, "restartedAt {at:?}");
}
