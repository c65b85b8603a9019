//! kubectl delete: plain, --wait=false, the three cascade policies observed through a
//! ConfigMap owned by a Deployment, by label, whole namespaces, and `kubectl wait --for=delete`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::{Cluster, wait_for};

const T: Duration = Duration::from_secs(30);

fn exists(c: &Cluster, what: &[&str]) -> bool {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    let r = c.kubectl(&args);
    if r.code == 0 {
        return true;
    }
    assert!(r.stderr.contains("(NotFound)"), "unexpected error: {}", r.stderr);
    false
}

/// Creates Deployment `owner` and ConfigMap `dependent` owned by it; returns the owner's uid.
fn owner_and_dependent(c: &Cluster, dependent_finalizer: bool) -> String {
    c.kubectl(&["create", "deployment", "owner", "--image=nginx"]).ok();
    let uid = c.jsonpath(&["deploy", "owner"], "{.metadata.uid}");
    assert_eq!(uid.len(), 36, "uid {uid:?}");
    let finalizers = if dependent_finalizer { "  finalizers: [\"example.com/hold\"]\n" } else { "" };
    let cm = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dependent\n{finalizers}  ownerReferences:\n  - apiVersion: apps/v1\n    kind: Deployment\n    name: owner\n    uid: {uid}\n    blockOwnerDeletion: true\n    controller: true\ndata:\n  a: b\n"
    );
    assert_eq!(c.kubectl_stdin(&["create", "-f", "-"], &cm).ok(), "configmap/dependent created\n");
    uid
}

#[test]
fn delete_plain_and_no_wait() {
    let c = Cluster::start();
    c.kubectl(&["create", "deployment", "web", "--image=nginx"]).ok();
    let r = c.kubectl(&["delete", "deployment", "web"]);
    assert_eq!(r.ok(), "deployment.apps \"web\" deleted\n");
    assert_eq!(c.kubectl(&["get", "deploy", "web"]).err().trim(), "Error from server (NotFound): deployments.apps \"web\" not found");

    c.kubectl(&["create", "configmap", "a"]).ok();
    c.kubectl(&["create", "configmap", "b"]).ok();
    let r = c.kubectl(&["delete", "configmap", "a", "b", "--wait=false"]);
    assert_eq!(r.ok(), "configmap \"a\" deleted\nconfigmap \"b\" deleted\n");
    wait_for(T, "configmaps gone", || (!exists(&c, &["cm", "a"]) && !exists(&c, &["cm", "b"])).then_some(()));

    // A finalizer holds the object: --wait=false returns at once, the object lingers with a
    // deletionTimestamp, and deleting it again is accepted.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [\"example.com/hold\"]\n";
    c.kubectl_stdin(&["create", "-f", "-"], cm).ok();
    let start = Instant::now();
    assert_eq!(c.kubectl(&["delete", "configmap", "held", "--wait=false"]).ok(), "configmap \"held\" deleted\n");
    assert!(start.elapsed() < Duration::from_secs(20), "--wait=false must not wait");
    let ts = c.jsonpath(&["cm", "held"], "{.metadata.deletionTimestamp}");
    assert!(ts.ends_with('Z'), "deletionTimestamp {ts:?}");
    assert_eq!(c.jsonpath(&["cm", "held"], "{.metadata.finalizers}"), r#"["example.com/hold"]"#);
    // A finalizer cannot be added to an object being deleted; it can be removed.
    c.kubectl(&["patch", "configmap", "held", "--type=json", "-p", r#"[{"op":"remove","path":"/metadata/finalizers"}]"#]).ok();
    wait_for(T, "held configmap gone", || (!exists(&c, &["cm", "held"])).then_some(()));

    let r = c.kubectl(&["delete", "configmap", "nope"]);
    assert_eq!(r.err().trim(), "Error from server (NotFound): configmaps \"nope\" not found");
    let r = c.kubectl(&["delete", "configmap", "nope", "--ignore-not-found"]);
    assert_eq!(r.ok(), "");
}

#[test]
fn cascade_background_deletes_dependents() {
    let c = Cluster::start();
    owner_and_dependent(&c, false);
    let r = c.kubectl(&["delete", "deployment", "owner", "--cascade=background"]);
    assert_eq!(r.ok(), "deployment.apps \"owner\" deleted\n");
    assert!(!exists(&c, &["deploy", "owner"]));
    wait_for(T, "dependent deleted by the garbage collector", || (!exists(&c, &["cm", "dependent"])).then_some(()));

    // Background is the default.
    owner_and_dependent(&c, false);
    c.kubectl(&["delete", "deployment", "owner"]).ok();
    wait_for(T, "dependent deleted by default cascade", || (!exists(&c, &["cm", "dependent"])).then_some(()));
}

#[test]
fn cascade_orphan_keeps_dependents_and_strips_owner_reference() {
    let c = Cluster::start();
    owner_and_dependent(&c, false);
    let r = c.kubectl(&["delete", "deployment", "owner", "--cascade=orphan"]);
    assert_eq!(r.ok(), "deployment.apps \"owner\" deleted\n");
    // kubectl waited for the owner to go (the orphan finalizer was processed).
    assert!(!exists(&c, &["deploy", "owner"]));
    assert_eq!(c.jsonpath(&["cm", "dependent"], "{.metadata.ownerReferences}"), "", "owner reference stripped");
    assert_eq!(c.jsonpath(&["cm", "dependent"], "{.data.a}"), "b");
    // And it stays: nothing collects it later.
    c.kubectl(&["create", "configmap", "tick"]).ok();
    c.kubectl(&["delete", "configmap", "tick"]).ok();
    assert!(exists(&c, &["cm", "dependent"]));
}

#[test]
fn cascade_foreground_deletes_dependents_before_the_owner() {
    let c = Cluster::start();
    // The dependent's own finalizer holds it, so the in-between state is observable.
    owner_and_dependent(&c, true);
    let r = c.kubectl(&["delete", "deployment", "owner", "--cascade=foreground", "--wait=false"]);
    assert_eq!(r.ok(), "deployment.apps \"owner\" deleted\n");
    assert_eq!(c.jsonpath(&["deploy", "owner"], "{.metadata.finalizers}"), r#"["foregroundDeletion"]"#);
    assert!(c.jsonpath(&["deploy", "owner"], "{.metadata.deletionTimestamp}").ends_with('Z'));
    wait_for(T, "dependent marked for deletion", || c.jsonpath(&["cm", "dependent"], "{.metadata.deletionTimestamp}").ends_with('Z').then_some(()));
    // The owner waits for its blocking dependent.
    assert!(exists(&c, &["deploy", "owner"]), "owner must outlive its blocking dependent");

    c.kubectl(&["patch", "configmap", "dependent", "--type=json", "-p", r#"[{"op":"remove","path":"/metadata/finalizers"}]"#]).ok();
    wait_for(T, "dependent gone", || (!exists(&c, &["cm", "dependent"])).then_some(()));
    wait_for(T, "owner gone after its dependent", || (!exists(&c, &["deploy", "owner"])).then_some(()));

    // Without holds, a waiting foreground delete returns with both gone.
    owner_and_dependent(&c, false);
    let r = c.kubectl(&["delete", "deployment", "owner", "--cascade=foreground"]);
    assert_eq!(r.ok(), "deployment.apps \"owner\" deleted\n");
    assert!(!exists(&c, &["deploy", "owner"]));
    assert!(!exists(&c, &["cm", "dependent"]), "foreground: the dependent goes before the owner");
}

#[test]
fn delete_by_label_and_all() {
    let c = Cluster::start();
    for (name, app) in [("a1", "xx"), ("a2", "xx"), ("b1", "yy")] {
        let cm = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels:\n    app: {app}\n");
        c.kubectl_stdin(&["apply", "-f", "-"], &cm).ok();
    }
    c.kubectl(&["create", "configmap", "nolabel"]).ok();
    let r = c.kubectl(&["delete", "configmap", "-l", "app=xx"]);
    assert_eq!(r.ok(), "configmap \"a1\" deleted\nconfigmap \"a2\" deleted\n");
    assert!(!exists(&c, &["cm", "a1"]) && !exists(&c, &["cm", "a2"]));
    assert!(exists(&c, &["cm", "b1"]) && exists(&c, &["cm", "nolabel"]));

    // Existence selector: only labelled objects.
    let r = c.kubectl(&["delete", "configmap", "-l", "app"]);
    assert_eq!(r.ok(), "configmap \"b1\" deleted\n");
    assert!(exists(&c, &["cm", "nolabel"]), "an existence selector must not match unlabelled objects");

    let r = c.kubectl(&["delete", "configmap", "-l", "app=none"]);
    assert_eq!(r.ok(), "No resources found\n");

    c.kubectl(&["create", "namespace", "other"]).ok();
    c.kubectl(&["-n", "other", "create", "configmap", "keep"]).ok();
    c.kubectl(&["delete", "configmap", "--all"]).ok();
    assert!(!exists(&c, &["cm", "nolabel"]));
    assert!(exists(&c, &["-n", "other", "cm", "keep"]), "--all stays in its namespace");
}

#[test]
fn delete_namespace_removes_its_contents() {
    let c = Cluster::start();
    c.kubectl(&["create", "namespace", "tmp"]).ok();
    c.kubectl(&["-n", "tmp", "create", "configmap", "x", "--from-literal=a=b"]).ok();
    c.kubectl(&["-n", "tmp", "create", "deployment", "y", "--image=nginx"]).ok();
    c.kubectl(&["-n", "tmp", "create", "secret", "generic", "z", "--from-literal=a=b"]).ok();
    c.kubectl(&["create", "configmap", "outside"]).ok();

    let r = c.kubectl(&["delete", "namespace", "tmp"]);
    assert_eq!(r.ok(), "namespace \"tmp\" deleted\n");
    // kubectl waited: the namespace is gone, and so is everything in it.
    assert_eq!(c.kubectl(&["get", "namespace", "tmp"]).err().trim(), "Error from server (NotFound): namespaces \"tmp\" not found");
    for what in [["cm", "x"], ["deploy", "y"], ["secret", "z"]] {
        assert!(!exists(&c, &["-n", "tmp", what[0], what[1]]), "{what:?} survived its namespace");
    }
    let all = c.kubectl(&["get", "cm,deploy,secret", "-A", "-o", "name"]).ok().to_string();
    assert!(!all.contains("configmap/x") && !all.contains("deployment.apps/y") && !all.contains("secret/z"), "{all}");
    assert!(exists(&c, &["cm", "outside"]));

    let r = c.kubectl(&["delete", "namespace", "default"]);
    assert_eq!(r.err().trim(), "Error from server (Forbidden): namespaces \"default\" is forbidden: this namespace may not be deleted");
}

#[test]
fn terminating_namespace_refuses_new_content() {
    let c = Cluster::start();
    c.kubectl(&["create", "namespace", "tmp"]).ok();
    let held = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  namespace: tmp\n  finalizers: [\"example.com/hold\"]\n";
    c.kubectl_stdin(&["create", "-f", "-"], held).ok();
    assert_eq!(c.kubectl(&["delete", "namespace", "tmp", "--wait=false"]).ok(), "namespace \"tmp\" deleted\n");
    assert!(exists(&c, &["ns", "tmp"]), "the namespace vanished although a held object remains in it");

    wait_for(T, "namespace Terminating", || (c.jsonpath(&["ns", "tmp"], "{.status.phase}") == "Terminating").then_some(()));
    let out = c.kubectl(&["get", "ns", "tmp"]).ok().to_string();
    assert_eq!(out.lines().next(), Some("NAME   STATUS        AGE"), "{out}");
    assert!(out.lines().nth(1).is_some_and(|l| l.starts_with("tmp    Terminating   ")), "{out}");
    let r = c.kubectl(&["-n", "tmp", "create", "configmap", "late"]);
    assert_eq!(
        r.err().trim(),
        "error: failed to create configmap: configmaps \"late\" is forbidden: unable to create new content in namespace tmp because it is being terminated"
    );
    wait_for(T, "held configmap marked for deletion", || c.jsonpath(&["-n", "tmp", "cm", "held"], "{.metadata.deletionTimestamp}").ends_with('Z').then_some(()));

    c.kubectl(&["-n", "tmp", "patch", "configmap", "held", "--type=json", "-p", r#"[{"op":"remove","path":"/metadata/finalizers"}]"#]).ok();
    wait_for(T, "namespace gone", || (!exists(&c, &["ns", "tmp"])).then_some(()));
}

#[test]
fn wait_for_delete_returns_once_gone() {
    let c = Cluster::start();
    let held = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [\"example.com/hold\"]\n";
    c.kubectl_stdin(&["create", "-f", "-"], held).ok();
    c.kubectl(&["delete", "configmap", "held", "--wait=false"]).ok();

    let waiter = c
        .kubectl_cmd()
        .args(["wait", "--for=delete", "configmap/held", "--timeout=60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubectl wait");
    // Still held: the waiter must not have finished.
    let r = c.kubectl(&["get", "configmap", "held", "-o", "name"]);
    assert_eq!(r.ok(), "configmap/held\n");
    c.kubectl(&["patch", "configmap", "held", "--type=json", "-p", r#"[{"op":"remove","path":"/metadata/finalizers"}]"#]).ok();
    let out = waiter.wait_with_output().expect("kubectl wait");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "configmap/held condition met\n");
    assert!(!exists(&c, &["cm", "held"]));

    // A short timeout on an object that stays fails.
    c.kubectl(&["create", "configmap", "stays"]).ok();
    let r = c.kubectl(&["wait", "--for=delete", "configmap/stays", "--timeout=2s"]);
    assert_eq!(r.err().trim().lines().last(), Some("error: timed out waiting for the condition on configmaps/stays"), "{}", r.stderr);
}
