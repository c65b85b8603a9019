//! LimitRange and ResourceQuota with real kubectl: defaults and limits applied to new pods,
//! quota refusals in Kubernetes' words, status.used kept current, and a Deployment held
//! at its quota.

use std::time::Duration;

use crate::harness::{Cluster, guest, wait_for};

fn pod(name: &str, resources: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: q}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: \"{}\"\n    ports: [{{containerPort: 8080}}]\n{resources}",
        guest("hello-http")
    )
}

#[test]
fn limit_ranges_and_quotas_admit_default_and_refuse() {
    let c = Cluster::start();
    c.kubectl(&["create", "namespace", "q"]).ok();
    c.apply(
        "apiVersion: v1\nkind: LimitRange\nmetadata: {name: limits, namespace: q}\nspec:\n  limits:\n  - type: Container\n    default: {cpu: 200m, memory: 64Mi}\n    defaultRequest: {cpu: 100m}\n    max: {cpu: '1'}\n    min: {memory: 16Mi}\n",
    );
    // The API server fills in the item's defaults as Kubernetes does (max → default limit…).
    let lr = c.jsonpath(&["limitrange", "limits", "-n", "q"], "{.spec.limits[0].defaultRequest.memory}");
    assert_eq!(lr, "64Mi");

    // A pod that says nothing gets the defaults, and says so.
    c.apply(&pod("plain", ""));
    let res = c.jsonpath(&["pod", "plain", "-n", "q"], "{.spec.containers[0].resources.limits.cpu} {.spec.containers[0].resources.requests.cpu} {.spec.containers[0].resources.requests.memory} {.status.qosClass}");
    assert_eq!(res, "200m 100m 64Mi Burstable");
    let note = c.jsonpath(&["pod", "plain", "-n", "q"], "{.metadata.annotations.kubernetes\\.io/limit-ranger}");
    assert_eq!(note, "LimitRanger plugin set: cpu, memory request for container main; cpu, memory limit for container main");

    // Limits outside the range are refused with Kubernetes' words.
    let r = c.kubectl_stdin(&["apply", "-f", "-"], &pod("big", "    resources: {limits: {cpu: '2', memory: 8Mi}}\n"));
    let err = r.err();
    assert!(
        err.contains("Error from server (Forbidden)")
            && err.contains("pods \"big\" is forbidden: [minimum memory usage per Container is 16Mi, but request is 8Mi, maximum cpu usage per Container is 1, but limit is 2]"),
        "{err}"
    );
    // A container that limits but does not request is requested at its limit.
    c.apply(&pod("limited", "    resources: {limits: {cpu: 300m, memory: 32Mi}}\n"));
    assert_eq!(c.jsonpath(&["pod", "limited", "-n", "q"], "{.spec.containers[0].resources.requests.cpu} {.status.qosClass}"), "300m Guaranteed");

    // A quota: its status counts what is there, kubectl shows it.
    c.apply("apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: compute, namespace: q}\nspec:\n  hard: {pods: '3', requests.cpu: 500m, limits.memory: 1Gi, count/configmaps: '2'}\n");
    wait_for(Duration::from_secs(20), "quota usage", || {
        let used = c.jsonpath(&["quota", "compute", "-n", "q"], "{.status.used.pods} {.status.used.requests\\.cpu} {.status.used.limits\\.memory}");
        (used == "2 400m 96Mi").then_some(())
    });
    let table = c.kubectl(&["get", "quota", "-n", "q"]);
    assert!(table.ok().contains("pods: 2/3"), "{}", table.stdout);

    // Over the quota: refused, naming the resource, what was asked, used and allowed.
    let r = c.kubectl_stdin(&["apply", "-f", "-"], &pod("third", "    resources: {requests: {cpu: 200m}}\n"));
    let err = r.err();
    assert!(
        err.contains("pods \"third\" is forbidden: exceeded quota: compute, requested: requests.cpu=200m, used: requests.cpu=400m, limited: requests.cpu=500m"),
        "{err}"
    );
    c.apply(&pod("fits", "    resources: {requests: {cpu: 100m}}\n"));
    let r = c.kubectl_stdin(&["apply", "-f", "-"], &pod("fourth", "    resources: {requests: {cpu: 0m}}\n"));
    assert!(r.err().contains("exceeded quota: compute, requested: pods=1, used: pods=3, limited: pods=3"), "{}", r.stderr);
    c.kubectl(&["create", "configmap", "one", "-n", "q"]).ok();
    let r = c.kubectl(&["create", "configmap", "two", "-n", "q"]);
    // kube-root-ca.crt, in every namespace, counts as in Kubernetes.
    assert!(r.err().contains("exceeded quota: compute, requested: count/configmaps=1, used: count/configmaps=2, limited: count/configmaps=2"), "{}", r.stderr);

    // Deleting frees the room (status.used follows), and a Deployment stops at the quota
    // with the reason on its ReplicaSet.
    c.kubectl(&["delete", "pod", "plain", "limited", "fits", "-n", "q", "--wait=false"]).ok();
    wait_for(Duration::from_secs(30), "quota usage to drop", || {
        (c.jsonpath(&["quota", "compute", "-n", "q"], "{.status.used.pods}") == "0").then_some(())
    });
    let deploy = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: q}}\nspec:\n  replicas: 5\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers:\n      - name: main\n        image: \"{}\"\n",
        guest("hello-http")
    );
    c.apply(&deploy);
    wait_for(Duration::from_secs(30), "the ReplicaSet's quota failure", || {
        // (The ReplicaSet may not exist yet: then the jsonpath fails and we wait.)
        let r = c.kubectl(&["get", "rs", "-n", "q", "-l", "app=web", "-o=jsonpath={.items[*].status.conditions[?(@.type==\"ReplicaFailure\")].message}"]);
        r.stdout.contains("exceeded quota: compute").then_some(r.stdout)
    });
    assert_eq!(c.jsonpath(&["pods", "-n", "q", "-l", "app=web", "-o", "name"], "{.items[*].metadata.name}").split_whitespace().count(), 3);
}
