//! `kubectl apply`, client-side (last-applied annotation + strategic merge) and server-side
//! (field managers, conflicts, --force-conflicts), asserting what kubectl prints.

use crate::harness::{Cluster, Run};

const MANIFEST: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
    tier: front
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
        ports:
        - containerPort: 80
      - name: sidecar
        image: busybox:1.36
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 80
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  labels:
    app: web
data:
  mode: prod
  extra: "1"
"#;

fn apply(c: &Cluster, manifest: &str) -> Run {
    c.kubectl_stdin(&["apply", "-f", "-"], manifest)
}

#[test]
fn apply_multi_document_created_unchanged_configured() {
    let c = Cluster::start();
    let r = apply(&c, MANIFEST);
    assert_eq!(r.ok(), "deployment.apps/web created\nservice/web created\nconfigmap/web-config created\n");
    assert_eq!(r.stderr, "", "no warnings expected on a fresh apply");

    let r = apply(&c, MANIFEST);
    assert_eq!(r.ok(), "deployment.apps/web unchanged\nservice/web unchanged\nconfigmap/web-config unchanged\n");

    let changed = MANIFEST.replace("replicas: 2", "replicas: 3").replace("mode: prod", "mode: dev");
    let r = apply(&c, &changed);
    assert_eq!(r.ok(), "deployment.apps/web configured\nservice/web unchanged\nconfigmap/web-config configured\n");
    assert_eq!(c.jsonpath(&["deployment", "web"], "{.spec.replicas}"), "3");
    assert_eq!(c.jsonpath(&["configmap", "web-config"], "{.data.mode}"), "dev");
    // The last-applied annotation tracks the new manifest.
    let last = c.jsonpath(&["configmap", "web-config"], "{.metadata.annotations.kubectl\\.kubernetes\\.io/last-applied-configuration}");
    assert!(last.contains(r#""mode":"dev""#), "{last}");
    // Re-applying the changed manifest is a no-op again.
    let r = apply(&c, &changed);
    assert_eq!(r.ok(), "deployment.apps/web unchanged\nservice/web unchanged\nconfigmap/web-config unchanged\n");
}

#[test]
fn apply_removes_fields_dropped_from_the_manifest() {
    let c = Cluster::start();
    apply(&c, MANIFEST).ok();
    assert_eq!(c.jsonpath(&["deployment", "web"], "{.spec.template.spec.containers[*].name}"), "nginx sidecar");

    // Drop the sidecar container, the tier label, a data key and the container port.
    let trimmed = MANIFEST
        .replace("      - name: sidecar\n        image: busybox:1.36\n", "")
        .replace("    tier: front\n", "")
        .replace("  extra: \"1\"\n", "")
        .replace("        ports:\n        - containerPort: 80\n", "");
    let r = apply(&c, &trimmed);
    assert_eq!(r.ok(), "deployment.apps/web configured\nservice/web unchanged\nconfigmap/web-config configured\n");
    assert_eq!(c.jsonpath(&["deployment", "web"], "{.spec.template.spec.containers[*].name}"), "nginx");
    assert_eq!(c.jsonpath(&["deployment", "web"], "{.spec.template.spec.containers[0].ports}"), "");
    assert_eq!(c.jsonpath(&["deployment", "web"], "{.metadata.labels}"), r#"{"app":"web"}"#);
    assert_eq!(c.jsonpath(&["configmap", "web-config"], "{.data}"), r#"{"mode":"prod"}"#);

    // A field set by someone else (not in last-applied) survives a re-apply.
    c.kubectl(&["label", "configmap", "web-config", "owner=ops"]).ok();
    apply(&c, &trimmed).ok();
    assert_eq!(c.jsonpath(&["configmap", "web-config"], "{.metadata.labels.owner}"), "ops");
}

#[test]
fn apply_server_side_create_update_conflict_force() {
    let c = Cluster::start();
    let cm = |v: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: \"{v}\"\n  b: keep\n");
    let r = c.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &cm("1"));
    assert_eq!(r.ok(), "configmap/ssa serverside-applied\n");
    assert_eq!(c.jsonpath(&["cm", "ssa"], "{.data.a}"), "1");
    assert_eq!(c.jsonpath(&["cm", "ssa"], "{.metadata.managedFields[0].manager} {.metadata.managedFields[0].operation}"), "kubectl Apply");
    // Server-side apply never writes the client-side annotation.
    assert_eq!(c.jsonpath(&["cm", "ssa"], "{.metadata.annotations}"), "");

    let r = c.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &cm("2"));
    assert_eq!(r.ok(), "configmap/ssa serverside-applied\n");
    assert_eq!(c.jsonpath(&["cm", "ssa"], "{.data.a}"), "2");

    // Another manager setting the same field to a different value conflicts.
    let other = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: \"3\"\n";
    let r = c.kubectl_stdin(&["apply", "--server-side", "--field-manager=other", "-f", "-"], other);
    let err = r.err();
    assert_eq!(err.lines().next(), Some(r#"error: Apply failed with 1 conflict: conflict with "kubectl": .data.a"#), "{err}");
    assert!(err.contains("--force-conflicts"), "{err}");
    assert_eq!(c.jsonpath(&["cm", "ssa"], "{.data.a}"), "2", "a failed apply changes nothing");

    let r = c.kubectl_stdin(&["apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-"], other);
    assert_eq!(r.ok(), "configmap/ssa serverside-applied\n");
    assert_eq!(c.jsonpath(&["cm", "ssa"], "{.data.a} {.data.b}"), "3 keep");
    // "other" now owns .data.a; kubectl still owns .data.b.
    let mf = c.jsonpath(&["cm", "ssa"], "{range .metadata.managedFields[*]}{.manager}={.fieldsV1}{\"\\n\"}{end}");
    let kubectl_line = mf.lines().find(|l| l.starts_with("kubectl=")).unwrap_or_else(|| panic!("{mf}"));
    let other_line = mf.lines().find(|l| l.starts_with("other=")).unwrap_or_else(|| panic!("{mf}"));
    assert!(kubectl_line.contains("f:b") && !kubectl_line.contains("f:a"), "{mf}");
    assert!(other_line.contains("f:a") && !other_line.contains("f:b"), "{mf}");

    // kubectl re-applying its manifest without .data.a (now owned by other) drops nothing of other's.
    let r = c.kubectl_stdin(&["apply", "--server-side", "-f", "-"], "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  b: keep\n");
    assert_eq!(r.ok(), "configmap/ssa serverside-applied\n");
    assert_eq!(c.jsonpath(&["cm", "ssa"], "{.data.a} {.data.b}"), "3 keep");
}

#[test]
fn apply_server_side_removes_fields_the_manager_stopped_applying() {
    let c = Cluster::start();
    let two = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  labels:\n    x: \"1\"\ndata:\n  a: \"1\"\n  b: \"2\"\n";
    c.kubectl_stdin(&["apply", "--server-side", "-f", "-"], two).ok();
    let one = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: \"1\"\n";
    c.kubectl_stdin(&["apply", "--server-side", "-f", "-"], one).ok();
    assert_eq!(c.jsonpath(&["cm", "ssa"], "{.data}"), r#"{"a":"1"}"#);
    assert_eq!(c.jsonpath(&["cm", "ssa"], "{.metadata.labels.x}"), "");
}

#[test]
fn apply_server_side_deployment_then_client_side_sees_it() {
    let c = Cluster::start();
    let deploy = MANIFEST.split("---").next().unwrap_or_default();
    let r = c.kubectl_stdin(&["apply", "--server-side", "-f", "-"], deploy);
    assert_eq!(r.ok(), "deployment.apps/web serverside-applied\n");
    // Defaults filled in by the server.
    assert_eq!(c.jsonpath(&["deploy", "web"], "{.spec.strategy.type} {.spec.template.spec.containers[0].imagePullPolicy}"), "RollingUpdate IfNotPresent");
    let r = c.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &deploy.replace("nginx:1.25", "nginx:1.27"));
    assert_eq!(r.ok(), "deployment.apps/web serverside-applied\n");
    assert_eq!(c.jsonpath(&["deploy", "web"], "{.spec.template.spec.containers[*].image}"), "nginx:1.27 busybox:1.36");
    assert_eq!(c.jsonpath(&["deploy", "web"], "{.metadata.generation}"), "2");
}
