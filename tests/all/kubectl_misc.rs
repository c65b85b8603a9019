//! kubectl get (tables, wide, yaml/json, -A, selectors, watch, sort-by), describe, the
//! imperative `create` commands (protobuf bodies), api-resources, explain, diff, error
//! output and server-side dry run, each asserting what the real kubectl prints.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use crate::harness::Cluster;

/// True if `s` is a kubectl AGE such as `0s`, `12s`, `2m3s`.
fn is_age(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|ch| ch.is_ascii_digit() || "smhdy".contains(ch)) && s.starts_with(|ch: char| ch.is_ascii_digit())
}

/// Asserts `line` is `prefix` followed by an age (the table's last column).
#[track_caller]
fn assert_row(line: &str, prefix: &str) {
    let rest = line.strip_prefix(prefix).unwrap_or_else(|| panic!("row {line:?} does not start with {prefix:?}"));
    assert!(is_age(rest), "row {line:?}: {rest:?} is not an age");
}

/// First column of every row after the header.
fn names(out: &str) -> Vec<String> {
    out.lines().skip(1).filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect()
}

#[test]
fn get_tables_per_kind() {
    let c = Cluster::start();
    c.kubectl(&["create", "deployment", "web", "--image=nginx:1.25", "--replicas=2"]).ok();
    c.kubectl(&["create", "configmap", "cfg", "--from-literal=a=1", "--from-literal=b=2"]).ok();
    c.kubectl(&["create", "secret", "generic", "sec", "--from-literal=a=1"]).ok();

    let out = c.kubectl(&["get", "deployments"]).ok().to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0], "NAME   READY   UP-TO-DATE   AVAILABLE   AGE");
    // UP-TO-DATE is 0 until the Deployment controller's first pass (within a second of
    // the create) has written status, 2 after: either may be seen here.
    let up_to_date = if lines[1].starts_with("web    0/2     2 ") { "2" } else { "0" };
    assert_row(lines[1], &format!("web    0/2     {up_to_date}            0           "));

    // By name: a real cluster also holds kube-root-ca.crt in every namespace.
    let out = c.kubectl(&["get", "configmap", "cfg"]).ok().to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0], "NAME   DATA   AGE", "{out}");
    assert_row(lines[1], "cfg    2      ");

    let out = c.kubectl(&["get", "secret", "sec"]).ok().to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "NAME   TYPE     DATA   AGE", "{out}");
    assert_row(lines[1], "sec    Opaque   1      ");

    let out = c.kubectl(&["get", "namespaces"]).ok().to_string();
    assert_eq!(out.lines().next(), Some("NAME              STATUS   AGE"), "{out}");
    let row = out.lines().find(|l| l.starts_with("default ")).unwrap_or_else(|| panic!("{out}"));
    assert_row(row, "default           Active   ");

    // A single object by name, and -o name.
    let out = c.kubectl(&["get", "deploy", "web"]).ok().to_string();
    assert_eq!(out.lines().next(), Some("NAME   READY   UP-TO-DATE   AVAILABLE   AGE"));
    assert_eq!(c.kubectl(&["get", "deploy/web", "cm/cfg", "-o", "name"]).ok(), "deployment.apps/web\nconfigmap/cfg\n");
}

#[test]
fn get_wide_and_all_namespaces() {
    let c = Cluster::start();
    c.kubectl(&["create", "deployment", "web", "--image=nginx:1.25", "--replicas=2"]).ok();
    c.kubectl(&["create", "namespace", "team-a"]).ok();
    c.kubectl(&["-n", "team-a", "create", "deployment", "api", "--image=busybox:1.36"]).ok();

    let out = c.kubectl(&["get", "deploy", "-o", "wide"]).ok().to_string();
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"], "{out}");
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!([rows[1][0], rows[1][1], rows[1][2], rows[1][3]], ["web", "0/2", "0", "0"], "{out}");
    assert!(is_age(rows[1][4]), "{out}");
    assert_eq!(rows[1][5..], ["nginx", "nginx:1.25", "app=web"], "{out}");

    let out = c.kubectl(&["get", "deploy", "-A"]).ok().to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "NAMESPACE   NAME   READY   UP-TO-DATE   AVAILABLE   AGE", "{out}");
    assert_eq!(lines.len(), 3, "{out}");
    assert_row(lines[1], "default     web    0/2     0            0           ");
    assert_row(lines[2], "team-a      api    0/1     0            0           ");

    let out = c.kubectl(&["get", "deploy", "--all-namespaces", "-o", "wide"]).ok().to_string();
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0][0..2], ["NAMESPACE", "NAME"], "{out}");
    assert_eq!(rows[2][0..2], ["team-a", "api"], "{out}");
    assert_eq!(rows[2][6..], ["busybox", "busybox:1.36", "app=api"], "{out}");

    // Only the named namespace with -n.
    let out = c.kubectl(&["-n", "team-a", "get", "deploy", "-o", "name"]).ok().to_string();
    assert_eq!(out, "deployment.apps/api\n");
    let r = c.kubectl(&["-n", "kube-public", "get", "deploy"]);
    assert_eq!(r.ok(), "");
    assert_eq!(r.stderr.trim(), "No resources found in kube-public namespace.");
}

#[test]
fn get_yaml_and_json_carry_server_set_fields() {
    let c = Cluster::start();
    let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    app: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: nginx\n        image: nginx:1.25\n        ports:\n        - containerPort: 80\n";
    c.kubectl_stdin(&["apply", "-f", "-"], deploy).ok();
    let y = c.kubectl(&["get", "deploy", "web", "-o", "yaml"]).ok().to_string();
    assert!(y.starts_with("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n"), "{y}");
    for field in ["  uid: ", "  resourceVersion: \"", "  creationTimestamp: \"", "  generation: 1\n", "  name: web\n", "  namespace: default\n"] {
        assert!(y.contains(field), "missing {field:?} in\n{y}");
    }
    // Real API servers never serialize empty optional fields as null (only the template's
    // zero creationTimestamp).
    let nulls: Vec<&str> = y.lines().filter(|l| l.ends_with(": null") && l.trim() != "creationTimestamp: null").collect();
    assert!(nulls.is_empty(), "unexpected null fields {nulls:?} in\n{y}");
    // Defaults as Kubernetes fills them.
    for field in ["  replicas: 1\n", "  revisionHistoryLimit: 10\n", "  progressDeadlineSeconds: 600\n", "      maxSurge: 25%\n", "      maxUnavailable: 25%\n", "    type: RollingUpdate\n", "        imagePullPolicy: IfNotPresent\n", "      restartPolicy: Always\n"] {
        assert!(y.contains(field), "missing default {field:?} in\n{y}");
    }

    let j = c.kubectl(&["get", "deploy", "web", "-o", "json"]).ok().to_string();
    let v: serde_json::Value = serde_json::from_str(&j).expect("kubectl -o json prints JSON");
    assert_eq!(v["kind"], "Deployment");
    assert_eq!(v["apiVersion"], "apps/v1");
    let uid = v["metadata"]["uid"].as_str().expect("uid");
    assert_eq!(uid.len(), 36, "uid {uid} is a UUID");
    let rv = v["metadata"]["resourceVersion"].as_str().expect("resourceVersion is a string");
    assert!(rv.parse::<u64>().is_ok(), "resourceVersion {rv}");
    let ts = v["metadata"]["creationTimestamp"].as_str().expect("creationTimestamp");
    assert!(ts.len() == 20 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "RFC 3339 seconds: {ts}");
    assert_eq!(v["metadata"]["generation"], 1);

    // A list prints as a v1 List.
    let j = c.kubectl(&["get", "deploy", "-o", "json"]).ok().to_string();
    let v: serde_json::Value = serde_json::from_str(&j).expect("json");
    assert_eq!(v["kind"], "List");
    assert_eq!(v["items"][0]["metadata"]["name"], "web");
    assert_eq!(v["items"][0]["kind"], "Deployment");
}

#[test]
fn get_label_and_field_selectors() {
    let c = Cluster::start();
    // Every test object carries group=t so selectors ignore what a real cluster adds
    // (kube-root-ca.crt).
    for (name, labels) in [("sel-a", "group=t,env=prod,tier=be"), ("sel-b", "group=t,env=dev"), ("sel-c", "group=t,env=staging,tier=fe"), ("plain", "group=t")] {
        c.kubectl(&["create", "configmap", name, "--from-literal=k=v"]).ok();
        let labels: Vec<&str> = labels.split(',').filter(|l| !l.is_empty()).collect();
        if !labels.is_empty() {
            let mut args = vec!["label", "configmap", name];
            args.extend(labels);
            assert_eq!(c.kubectl(&args).ok(), format!("configmap/{name} labeled\n"));
        }
    }
    let sel = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["get", "configmaps", "-o", "name"];
        let mut args = args.to_vec();
        let with_group: String;
        match args.iter().position(|a| *a == "-l" || *a == "--selector") {
            Some(i) => {
                with_group = format!("group=t,{}", args[i + 1]);
                args[i + 1] = &with_group;
            }
            None => args.extend(["-l", "group=t"]),
        }
        a.extend_from_slice(&args);
        c.kubectl(&a).ok().lines().map(|l| l.trim_start_matches("configmap/").to_string()).collect()
    };
    assert_eq!(sel(&["-l", "env=prod"]), ["sel-a"]);
    assert_eq!(sel(&["-l", "env==dev"]), ["sel-b"]);
    assert_eq!(sel(&["-l", "env in (dev,staging)"]), ["sel-b", "sel-c"]);
    assert_eq!(sel(&["-l", "env"]), ["sel-a", "sel-b", "sel-c"]);
    assert_eq!(sel(&["-l", "!env"]), ["plain"]);
    assert_eq!(sel(&["-l", "env!=prod"]), ["plain", "sel-b", "sel-c"]);
    assert_eq!(sel(&["-l", "env notin (prod,dev)"]), ["plain", "sel-c"]);
    assert_eq!(sel(&["-l", "env,tier=fe"]), ["sel-c"]);
    assert_eq!(sel(&["-l", "tier in (fe,be),env!=dev"]), ["sel-a", "sel-c"]);
    assert_eq!(sel(&["--selector", "env=prod,tier=fe"]), Vec::<String>::new());

    assert_eq!(sel(&["--field-selector", "metadata.name=sel-b"]), ["sel-b"]);
    assert_eq!(sel(&["--field-selector", "metadata.name!=sel-b"]), ["plain", "sel-a", "sel-c"]);
    assert_eq!(sel(&["--field-selector", "metadata.namespace=default", "-l", "env=dev"]), ["sel-b"]);
    assert_eq!(sel(&["--field-selector", "metadata.namespace!=default"]), Vec::<String>::new());
    let r = c.kubectl(&["get", "configmaps", "-l", "env=nothing"]);
    assert_eq!(r.ok(), "");
    assert_eq!(r.stderr.trim(), "No resources found in default namespace.");
    // Unsupported field selectors are rejected, as Kubernetes does for configmaps.
    let r = c.kubectl(&["get", "configmaps", "--field-selector", "data.k=v"]);
    assert_eq!(r.err().trim(), "Error from server (BadRequest): Unable to find \"/v1, Resource=configmaps\" that match label selector \"\", field selector \"data.k=v\": \"data.k\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"");
}

#[test]
fn get_sort_by() {
    let c = Cluster::start();
    for (name, env) in [("a-one", "prod"), ("b-two", "dev"), ("c-three", "staging")] {
        c.kubectl(&["create", "configmap", name, "--from-literal=k=v"]).ok();
        c.kubectl(&["label", "configmap", name, &format!("env={env}")]).ok();
    }
    let out = c.kubectl(&["get", "cm", "-l", "env", "--sort-by=.metadata.labels.env"]).ok().to_string();
    assert_eq!(out.lines().next(), Some("NAME      DATA   AGE"), "{out}");
    assert_eq!(names(&out), ["b-two", "a-one", "c-three"], "{out}");
    let out = c.kubectl(&["get", "cm", "-l", "env", "--sort-by={.metadata.name}"]).ok().to_string();
    assert_eq!(names(&out), ["a-one", "b-two", "c-three"], "{out}");
    let out = c.kubectl(&["get", "cm", "-l", "env", "--sort-by=.metadata.labels.env", "-o", "custom-columns=N:.metadata.name,E:.metadata.labels.env"]).ok().to_string();
    assert_eq!(out, "N         E\nb-two     dev\na-one     prod\nc-three   staging\n");
}

/// Spawns `kubectl args` and hands back the child and a channel of its stdout lines.
fn spawn_lines(c: &Cluster, args: &[&str]) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = c.kubectl_cmd().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn kubectl");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

#[track_caller]
fn next_line(rx: &mpsc::Receiver<String>, what: &str) -> String {
    rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| panic!("kubectl get -w printed no line for {what}"))
}

fn labelled_cm(name: &str, data: &[(&str, &str)]) -> String {
    let mut s = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels:\n    w: \"1\"\ndata:\n");
    for (k, v) in data {
        s.push_str(&format!("  {k}: \"{v}\"\n"));
    }
    s
}

#[test]
fn get_watch_prints_rows_as_objects_change() {
    let c = Cluster::start();
    c.kubectl_stdin(&["apply", "-f", "-"], &labelled_cm("before", &[("a", "b")])).ok();
    let (mut child, rx) = spawn_lines(&c, &["get", "configmaps", "-l", "w=1", "-w"]);
    assert_eq!(next_line(&rx, "header"), "NAME     DATA   AGE");
    assert_row(&next_line(&rx, "initial list"), "before   1      ");

    c.kubectl_stdin(&["apply", "-f", "-"], &labelled_cm("w1", &[("a", "b")])).ok();
    let l = next_line(&rx, "create");
    assert_eq!(l.split_whitespace().take(2).collect::<Vec<_>>(), ["w1", "1"], "{l:?}");
    c.kubectl(&["patch", "configmap", "w1", "--type=merge", "-p", r#"{"data":{"b":"c"}}"#]).ok();
    let l = next_line(&rx, "modify");
    assert_eq!(l.split_whitespace().take(2).collect::<Vec<_>>(), ["w1", "2"], "{l:?}");
    // Objects outside the selector print nothing; deletion prints the last state.
    c.kubectl(&["create", "configmap", "unlabelled"]).ok();
    c.kubectl(&["delete", "configmap", "before"]).ok();
    let l = next_line(&rx, "delete");
    assert_eq!(l.split_whitespace().take(2).collect::<Vec<_>>(), ["before", "1"], "{l:?}");
    let _ = child.kill();
    let _ = child.wait();

    // --output-watch-events names the event types; -w on a single name watches just that one.
    let (mut child, rx) = spawn_lines(&c, &["get", "configmap", "w1", "-w", "--output-watch-events"]);
    // kubectl sizes the EVENT column for "MODIFIED".
    assert_eq!(next_line(&rx, "header"), "EVENT      NAME   DATA   AGE");
    assert_row(&next_line(&rx, "initial"), "ADDED      w1     2      ");
    c.kubectl(&["create", "configmap", "other"]).ok();
    c.kubectl(&["label", "configmap", "w1", "x=y"]).ok();
    let l = next_line(&rx, "label");
    assert_eq!(l.split_whitespace().take(2).collect::<Vec<_>>(), ["MODIFIED", "w1"], "{l:?}");
    c.kubectl(&["delete", "configmap", "w1"]).ok();
    let l = next_line(&rx, "delete");
    assert_eq!(l.split_whitespace().take(2).collect::<Vec<_>>(), ["DELETED", "w1"], "{l:?}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn describe_deployment() {
    let c = Cluster::start();
    let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    app: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: nginx\n        image: nginx:1.25\n        ports:\n        - containerPort: 80\n";
    c.kubectl_stdin(&["apply", "-f", "-"], deploy).ok();

    let out = c.kubectl(&["describe", "deployment", "web"]).ok().to_string();
    for line in [
        "Name:                   web",
        "Namespace:              default",
        "Labels:                 app=web",
        "Selector:               app=web",
        "StrategyType:           RollingUpdate",
        "MinReadySeconds:        0",
        "RollingUpdateStrategy:  25% max unavailable, 25% max surge",
        "  Labels:  app=web",
        "   nginx:",
        "    Image:         nginx:1.25",
        "    Port:          80/TCP",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
    }
    assert!(out.lines().any(|l| l.starts_with("CreationTimestamp:")), "{out}");
    // The Deployment controller works on it meanwhile: the counts move, the desired count does not.
    assert!(out.lines().any(|l| l.starts_with("Replicas:               2 desired | ")), "{out}");
}

#[test]
fn describe_configmap_and_namespace() {
    let c = Cluster::start();
    c.kubectl(&["create", "configmap", "cfg", "--from-literal=greeting=hello"]).ok();
    c.kubectl(&["label", "configmap", "cfg", "team=core"]).ok();
    let out = c.kubectl(&["describe", "configmap", "cfg"]).ok().to_string();
    let expected_head = "Name:         cfg\nNamespace:    default\nLabels:       team=core\nAnnotations:  <none>\n\nData\n====\ngreeting:\n----\nhello\n";
    assert!(out.starts_with(expected_head), "{out}");

    let out = c.kubectl(&["describe", "namespace", "default"]).ok().to_string();
    assert!(
        out.starts_with("Name:         default\nLabels:       kubernetes.io/metadata.name=default\nAnnotations:  <none>\nStatus:       Active\n"),
        "{out}"
    );
    assert!(!out.contains("Namespace:"), "a namespace has no Namespace line: {out}");

    let r = c.kubectl(&["describe", "configmap", "nope"]);
    assert_eq!(r.err().trim(), "Error from server (NotFound): configmaps \"nope\" not found");
}

#[test]
fn create_secret_configmap_namespace_deployment() {
    let c = Cluster::start();
    let r = c.kubectl(&["create", "secret", "generic", "creds", "--from-literal=user=admin", "--from-literal=pass=p@ss w0rd"]);
    assert_eq!(r.ok(), "secret/creds created\n");
    assert_eq!(c.jsonpath(&["secret", "creds"], "{.type} {.data.user} {.data.pass}"), "Opaque YWRtaW4= cEBzcyB3MHJk");
    let r = c.kubectl(&["create", "secret", "generic", "tls-ish", "--type=example.com/custom", "--from-literal=k=v"]);
    assert_eq!(r.ok(), "secret/tls-ish created\n");
    assert_eq!(c.jsonpath(&["secret", "tls-ish"], "{.type} {.data.k}"), "example.com/custom dg==");

    let file = c.path().join("app.properties");
    std::fs::write(&file, "color=blue\nsize=3\n").expect("write file");
    let from_file = format!("--from-file={}", file.display());
    let r = c.kubectl(&["create", "configmap", "settings", "--from-literal=k1=v1", &from_file]);
    assert_eq!(r.ok(), "configmap/settings created\n");
    assert_eq!(c.jsonpath(&["cm", "settings"], "{.data.k1}"), "v1");
    assert_eq!(c.jsonpath(&["cm", "settings"], "{.data.app\\.properties}"), "color=blue\nsize=3\n");

    let r = c.kubectl(&["create", "namespace", "team"]);
    assert_eq!(r.ok(), "namespace/team created\n");
    assert_eq!(c.jsonpath(&["ns", "team"], "{.status.phase} {.metadata.labels}"), r#"Active {"kubernetes.io/metadata.name":"team"}"#);

    let r = c.kubectl(&["-n", "team", "create", "deployment", "dd", "--image=nginx:1.27", "--replicas=3", "--port=8080"]);
    assert_eq!(r.ok(), "deployment.apps/dd created\n");
    assert_eq!(
        c.jsonpath(&["-n", "team", "deploy", "dd"], "{.spec.replicas} {.spec.template.spec.containers[0].name} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort} {.spec.selector.matchLabels} {.spec.template.metadata.labels}"),
        r#"3 nginx nginx:1.27 8080 {"app":"dd"} {"app":"dd"}"#
    );
    // -o yaml on create prints the object the server stored.
    let y = c.kubectl(&["create", "configmap", "echo", "--from-literal=a=b", "-o", "yaml"]).ok().to_string();
    assert!(y.contains("  uid: ") && y.contains("  resourceVersion: ") && y.contains("data:\n  a: b\n"), "{y}");
    // Defaults are filled in for protobuf-created objects too (their strategy arrives as {}).
    assert_eq!(
        c.jsonpath(&["-n", "team", "deploy", "dd"], "{.spec.strategy.type} {.spec.strategy.rollingUpdate.maxSurge} {.spec.template.spec.containers[0].ports[0].protocol}"),
        "RollingUpdate 25% TCP"
    );
}

#[test]
fn api_resources_and_explain() {
    let c = Cluster::start();
    let out = c.kubectl(&["api-resources"]).ok().to_string();
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"], "{out}");
    for want in [
        &["configmaps", "cm", "v1", "true", "ConfigMap"][..],
        &["deployments", "deploy", "apps/v1", "true", "Deployment"],
        &["replicasets", "rs", "apps/v1", "true", "ReplicaSet"],
        &["namespaces", "ns", "v1", "false", "Namespace"],
        &["pods", "po", "v1", "true", "Pod"],
        &["services", "svc", "v1", "true", "Service"],
        &["secrets", "v1", "true", "Secret"],
        &["nodes", "no", "v1", "false", "Node"],
    ] {
        assert!(rows.iter().any(|r| r.as_slice() == want), "no row {want:?} in\n{out}");
    }
    let header = out.lines().next().unwrap_or_default();
    let col = |name: &str| header.find(name).unwrap_or_else(|| panic!("{header}"));
    // Columns line up under their headers.
    let deploy = out.lines().find(|l| l.starts_with("deployments ")).unwrap_or_default();
    assert_eq!(&deploy[col("SHORTNAMES")..col("SHORTNAMES") + 6], "deploy", "{out}");
    assert_eq!(&deploy[col("APIVERSION")..col("APIVERSION") + 7], "apps/v1", "{out}");

    let out = c.kubectl(&["api-resources", "--namespaced=false", "-o", "name"]).ok().to_string();
    assert!(out.lines().any(|l| l == "namespaces"), "{out}");
    assert!(!out.lines().any(|l| l == "configmaps"), "{out}");
    let out = c.kubectl(&["api-resources", "--api-group=apps", "-o", "name"]).ok().to_string();
    for r in ["deployments.apps", "replicasets.apps", "statefulsets.apps", "daemonsets.apps"] {
        assert!(out.lines().any(|l| l == r), "no {r} in {out}");
    }

    let out = c.kubectl(&["explain", "deployment.spec.replicas"]).ok().to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..5], ["GROUP:      apps", "KIND:       Deployment", "VERSION:    v1", "", "FIELD: replicas <integer>"], "{out}");
    assert!(lines.contains(&"DESCRIPTION:"), "{out}");
    assert!(out.contains("    Number of desired pods."), "{out}");

    let out = c.kubectl(&["explain", "configmap"]).ok().to_string();
    assert!(out.starts_with("KIND:       ConfigMap\nVERSION:    v1\n"), "{out}");
    assert!(out.contains("FIELDS:\n"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("  data\t<map[string]string>")), "{out}");
    let r = c.kubectl(&["explain", "deployment.spec.nope"]);
    assert!(r.err().contains("field \"nope\" does not exist"), "{}", r.stderr);
}

#[test]
fn diff_exit_codes() {
    let c = Cluster::start();
    let cm = |v: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dcm\ndata:\n  a: \"{v}\"\n");
    let file = c.path().join("dcm.yaml");
    std::fs::write(&file, cm("1")).expect("write");
    let f = file.to_str().expect("utf-8 path");
    c.kubectl(&["apply", "-f", f]).ok();

    let r = c.kubectl(&["diff", "-f", f]);
    assert_eq!(r.code, 0, "no diff expected: {r:?}");
    assert_eq!(r.stdout, "");

    std::fs::write(&file, cm("2")).expect("write");
    let r = c.kubectl(&["diff", "-f", f]);
    assert_eq!(r.code, 1, "diff should exit 1: {r:?}");
    assert!(r.stdout.starts_with("diff -u -N "), "{}", r.stdout);
    assert!(r.stdout.lines().any(|l| l == "-  a: \"1\""), "{}", r.stdout);
    assert!(r.stdout.lines().any(|l| l == "+  a: \"2\""), "{}", r.stdout);
    // A dry-run update does not bump the resourceVersion.
    assert!(!r.stdout.lines().any(|l| l.starts_with("+  resourceVersion") || l.starts_with("-  resourceVersion")), "{}", r.stdout);
    assert_eq!(c.jsonpath(&["cm", "dcm"], "{.data.a}"), "1", "diff must not change the object");

    // A new object diffs against nothing.
    std::fs::write(&file, cm("3").replace("dcm", "fresh")).expect("write");
    let r = c.kubectl(&["diff", "-f", f]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.lines().any(|l| l == "+  name: fresh"), "{}", r.stdout);
    assert_eq!(c.kubectl(&["get", "cm", "fresh"]).err().trim(), "Error from server (NotFound): configmaps \"fresh\" not found");
}

#[test]
fn error_not_found() {
    let c = Cluster::start();
    assert_eq!(c.kubectl(&["get", "deployment", "nope"]).err().trim(), "Error from server (NotFound): deployments.apps \"nope\" not found");
    assert_eq!(c.kubectl(&["delete", "configmap", "nope"]).err().trim(), "Error from server (NotFound): configmaps \"nope\" not found");
    let r = c.kubectl(&["-n", "missing", "create", "configmap", "x"]);
    assert_eq!(r.err().trim(), "error: failed to create configmap: namespaces \"missing\" not found");
    // After a NotFound, kubectl 1.32 looks the namespace up and reports that instead.
    assert_eq!(c.kubectl(&["-n", "missing", "get", "configmap", "x"]).err().trim(), "Error from server (NotFound): namespaces \"missing\" not found");
    assert_eq!(c.kubectl(&["-n", "kube-public", "get", "configmap", "x"]).err().trim(), "Error from server (NotFound): configmaps \"x\" not found");
}

#[test]
fn error_already_exists_and_invalid() {
    let c = Cluster::start();
    c.kubectl(&["create", "deployment", "web", "--image=nginx"]).ok();
    let r = c.kubectl(&["create", "deployment", "web", "--image=nginx"]);
    assert_eq!(r.err().trim(), "error: failed to create deployment: deployments.apps \"web\" already exists");

    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\ndata:\n  a: b\n";
    let invalid = "The ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    assert_eq!(c.kubectl_stdin(&["create", "-f", "-"], bad).err().trim(), invalid);
    assert_eq!(c.kubectl_stdin(&["apply", "-f", "-"], bad).err().trim(), invalid);
    assert_eq!(c.kubectl(&["get", "cm", "Bad_Name"]).err().trim(), "Error from server (NotFound): configmaps \"Bad_Name\" not found");
    let r = c.kubectl(&["patch", "deployment", "web", "--type=merge", "-p", r#"{"spec":{"replicas":-1}}"#]);
    assert_eq!(r.err().trim(), "The Deployment \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0");
}

#[test]
fn error_conflict_on_stale_replace() {
    let c = Cluster::start();
    c.kubectl(&["create", "configmap", "x", "--from-literal=a=1"]).ok();
    let stale = c.kubectl(&["get", "configmap", "x", "-o", "yaml"]).ok().to_string();
    c.kubectl(&["label", "configmap", "x", "bump=1"]).ok();
    let r = c.kubectl_stdin(&["replace", "-f", "-"], &stale);
    assert_eq!(
        r.err().trim(),
        "Error from server (Conflict): error when replacing \"STDIN\": Operation cannot be fulfilled on configmaps \"x\": the object has been modified; please apply your changes to the latest version and try again"
    );
    // A fresh copy replaces fine.
    let fresh = c.kubectl(&["get", "configmap", "x", "-o", "yaml"]).ok().replace("a: \"1\"", "a: \"2\"");
    assert_eq!(c.kubectl_stdin(&["replace", "-f", "-"], &fresh).ok(), "configmap/x replaced\n");
    assert_eq!(c.jsonpath(&["cm", "x"], "{.data.a} {.metadata.labels.bump}"), "2 1");
}

#[test]
fn error_unknown_field_strict_validation() {
    let c = Cluster::start();
    // Unknown fields are refused under the default strict validation.
    let unknown = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: unk\nspec:\n  foo: bar\n  selector:\n    matchLabels: {app: unk}\n  template:\n    metadata:\n      labels: {app: unk}\n    spec:\n      containers:\n      - name: c\n        image: nginx\n";
    let r = c.kubectl_stdin(&["apply", "-f", "-"], unknown);
    assert_eq!(r.err().trim(), "Error from server (BadRequest): error when creating \"STDIN\": strict decoding error: unknown field \"spec.foo\"");
    assert_eq!(c.kubectl(&["get", "deploy", "unk"]).err().trim(), "Error from server (NotFound): deployments.apps \"unk\" not found");
    // With --validate=warn it is created and the field dropped.
    let r = c.kubectl_stdin(&["apply", "--validate=warn", "-f", "-"], unknown);
    assert_eq!(r.ok(), "deployment.apps/unk created\n");
    assert!(r.stderr.contains("Warning: unknown field \"spec.foo\""), "{}", r.stderr);
    assert_eq!(c.jsonpath(&["deploy", "unk"], "{.spec.foo}"), "");
}

#[test]
fn server_dry_run_changes_nothing() {
    let c = Cluster::start();
    let r = c.kubectl(&["create", "configmap", "dry", "--from-literal=a=b", "--dry-run=server"]);
    assert_eq!(r.ok(), "configmap/dry created (server dry run)\n");
    assert_eq!(c.kubectl(&["get", "cm", "dry"]).err().trim(), "Error from server (NotFound): configmaps \"dry\" not found");
    // The dry-run reply is the object the server would store (server-set fields filled).
    let y = c.kubectl(&["create", "configmap", "dry", "--from-literal=a=b", "--dry-run=server", "-o", "yaml"]).ok().to_string();
    assert!(y.contains("  uid: ") && y.contains("  creationTimestamp: \""), "{y}");

    let cm = |v: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: real\ndata:\n  a: \"{v}\"\n");
    assert_eq!(c.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &cm("1")).ok(), "configmap/real created (server dry run)\n");
    assert_eq!(c.kubectl(&["get", "cm", "real"]).err().trim(), "Error from server (NotFound): configmaps \"real\" not found");
    c.kubectl_stdin(&["apply", "-f", "-"], &cm("1")).ok();
    let rv = c.jsonpath(&["cm", "real"], "{.metadata.resourceVersion}");
    assert_eq!(c.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &cm("2")).ok(), "configmap/real configured (server dry run)\n");
    assert_eq!(c.kubectl_stdin(&["apply", "--server-side", "--dry-run=server", "-f", "-"], &cm("3")).ok(), "configmap/real serverside-applied (server dry run)\n");
    assert_eq!(c.kubectl(&["label", "cm", "real", "x=y", "--dry-run=server"]).ok(), "configmap/real labeled (server dry run)\n");
    assert_eq!(c.kubectl(&["delete", "cm", "real", "--dry-run=server"]).ok(), "configmap \"real\" deleted (server dry run)\n");
    assert_eq!(c.jsonpath(&["cm", "real"], "{.data.a} {.metadata.labels} {.metadata.resourceVersion}"), format!("1  {rv}"));
}

#[test]
fn server_side_apply_unknown_field_is_a_schema_error() {
    let c = Cluster::start();
    let unknown = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: unk\nspec:\n  foo: bar\n  selector:\n    matchLabels: {app: unk}\n  template:\n    metadata:\n      labels: {app: unk}\n    spec:\n      containers:\n      - name: c\n        image: nginx\n";
    let r = c.kubectl_stdin(&["apply", "--server-side", "-f", "-"], unknown);
    // Kubernetes fails converting the apply patch to its typed form before strict decoding.
    assert!(
        r.err().contains("failed to create typed patch object (default/unk; apps/v1, Kind=Deployment): .spec.foo: field not declared in schema"),
        "{}",
        r.stderr
    );
    assert_eq!(c.kubectl(&["get", "deploy", "unk"]).err().trim(), "Error from server (NotFound): deployments.apps \"unk\" not found");
}
