//! HorizontalPodAutoscaler (autoscaling/v2) with real kubectl: a Deployment of CPU-bound
//! pods scales up to maxReplicas, then back down once its pods go idle (the test sets a
//! scale-down stabilization window of 0 and a 2 s sync period instead of 15 s). The
//! manifest leaves `replicas` out, as one does under an HPA (apply would reset it).

use std::time::Duration;

use crate::harness::{Cluster, guest, wait_for};

fn deployment(image: &str, args: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: busy}}\nspec:\n  selector: {{matchLabels: {{app: busy}}}}\n  template:\n    metadata: {{labels: {{app: busy}}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: main\n        image: \"{image}\"\n        args: {args}\n        resources: {{requests: {{cpu: 100m}}, limits: {{cpu: 150m, memory: 32Mi}}}}\n"
    )
}

#[test]
fn hpa_scales_a_deployment_up_under_load_and_down_when_idle() {
    let c = Cluster::start_sub("up", &[], &[("FLOTILLA_HPA_SYNC_SECONDS", "2")]);
    c.apply(&deployment(&guest("infinite-loop"), "[]"));
    c.apply(
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: busy}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: busy}\n  minReplicas: 1\n  maxReplicas: 3\n  metrics:\n  - type: Resource\n    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}\n  behavior:\n    scaleDown: {stabilizationWindowSeconds: 0}\n",
    );
    // ~150% of the request against a 50% target: up to maxReplicas.
    wait_for(Duration::from_secs(90), "the HPA to scale up to 3", || {
        (c.jsonpath(&["deployment", "busy"], "{.spec.replicas}") == "3").then_some(())
    });
    let get = c.kubectl(&["get", "hpa", "busy"]);
    let out = get.ok();
    assert!(out.contains("Deployment/busy") && out.contains("/50%"), "{out}");
    let limited = c.jsonpath(&["hpa", "busy"], "{.status.conditions[?(@.type==\"ScalingLimited\")].reason}");
    assert!(matches!(limited.as_str(), "TooManyReplicas" | "DesiredWithinRange"), "{limited}");
    wait_for(Duration::from_secs(20), "the SuccessfulRescale event in describe", || {
        let d = c.kubectl(&["describe", "hpa", "busy"]);
        (d.stdout.contains("SuccessfulRescale") && d.stdout.contains("New size: 3")).then_some(())
    });

    // Idle pods: back down to minReplicas.
    c.apply(&deployment(&guest("hello-cmd"), "[--sleep-ms, '600000']"));
    wait_for(Duration::from_secs(120), "the HPA to scale down to 1", || {
        (c.jsonpath(&["deployment", "busy"], "{.spec.replicas}") == "1").then_some(())
    });
    wait_for(Duration::from_secs(20), "the scale-down event in describe", || {
        c.kubectl(&["describe", "hpa", "busy"]).stdout.contains("New size: 1; reason: All metrics below target").then_some(())
    });
}
