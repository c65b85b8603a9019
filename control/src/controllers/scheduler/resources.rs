//! Resources (kube-scheduler's NodeResourcesFit inputs): a pod's effective request and a
//! node's allocatable, in millicores, bytes and extended/hugepages units.
//!
//! A pod requests max(sum of containers + sidecars, max of init containers) + overhead; a
//! resource without a request uses its limit. Scoring uses the "non-zero" requests.

use flotilla_api::quantity;
use serde_json::Value;

use super::str_of;

/// Requests kube-scheduler assumes, for scoring only, for a container that sets none.
const DEFAULT_MILLI_CPU: u64 = 100;
const DEFAULT_MEMORY: u64 = 200 * 1024 * 1024;

/// Requested or allocatable amounts: millicores, bytes, and extended/hugepages resources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Resources {
    pub(super) milli_cpu: u64,
    pub(super) memory: u64,
    pub(super) ephemeral: u64,
    pub(super) scalar: Vec<(String, u64)>,
}

impl Resources {
    /// From a ResourceList object; unparseable quantities count as zero.
    pub(super) fn from_list(list: &Value) -> Resources {
        let mut r = Resources::default();
        if let Some(m) = list.as_object() {
            for (name, q) in m {
                r.set(name, q);
            }
        }
        r
    }

    fn set(&mut self, name: &str, q: &Value) {
        let text = match q {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return,
        };
        match name {
            "cpu" => self.milli_cpu = quantity::millicores(&text).unwrap_or(0),
            "memory" => self.memory = quantity::bytes(&text).unwrap_or(0),
            "ephemeral-storage" => self.ephemeral = quantity::bytes(&text).unwrap_or(0),
            _ if is_scalar_resource(name) => {
                let v = quantity::parse(&text).map(|v| v.max(0.0).ceil() as u64).unwrap_or(0);
                match self.scalar.iter_mut().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v,
                    None => self.scalar.push((name.to_string(), v)),
                }
            }
            _ => {}
        }
    }

    pub(super) fn scalar(&self, name: &str) -> u64 {
        self.scalar.iter().find(|(n, _)| n == name).map(|(_, v)| *v).unwrap_or(0)
    }

    pub(super) fn add(&mut self, o: &Resources) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral += o.ephemeral;
        for (n, v) in &o.scalar {
            match self.scalar.iter_mut().find(|(m, _)| m == n) {
                Some(slot) => slot.1 += v,
                None => self.scalar.push((n.clone(), *v)),
            }
        }
    }

    fn max_with(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral = self.ephemeral.max(o.ephemeral);
        for (n, v) in &o.scalar {
            match self.scalar.iter_mut().find(|(m, _)| m == n) {
                Some(slot) => slot.1 = slot.1.max(*v),
                None => self.scalar.push((n.clone(), *v)),
            }
        }
    }
}

/// Extended resources (`example.com/foo`, not `kubernetes.io/`), hugepages, attachable volumes.
fn is_scalar_resource(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/') && !name.starts_with("kubernetes.io/") && !name.contains(".kubernetes.io/"))
}

/// A container's requests (limits stand in for missing requests); with `non_zero`, a missing
/// cpu or memory request counts as the scheduler's default.
fn container_requests(c: &Value, non_zero: bool) -> Resources {
    let res = &c["resources"];
    let mut r = Resources::from_list(&res["limits"]);
    if let Some(m) = res["requests"].as_object() {
        for (name, q) in m {
            r.set(name, q);
        }
    }
    if non_zero {
        let has = |k: &str| res["requests"].get(k).is_some() || res["limits"].get(k).is_some();
        if !has("cpu") {
            r.milli_cpu = DEFAULT_MILLI_CPU;
        }
        if !has("memory") {
            r.memory = DEFAULT_MEMORY;
        }
    }
    r
}

/// The pod's effective request: regular containers and sidecars run together, init
/// containers one at a time (alongside the sidecars started before them), plus overhead.
pub(super) fn pod_requests(spec: &Value, non_zero: bool) -> Resources {
    let mut sum = Resources::default();
    for c in spec["containers"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        sum.add(&container_requests(c, non_zero));
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in spec["initContainers"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let r = container_requests(c, non_zero);
        if str_of(&c["restartPolicy"]) == "Always" {
            sidecars.add(&r);
            init_max.max_with(&sidecars);
        } else {
            let mut during = r;
            during.add(&sidecars);
            init_max.max_with(&during);
        }
    }
    sum.add(&sidecars);
    sum.max_with(&init_max);
    sum.add(&Resources::from_list(&spec["overhead"]));
    sum
}

pub(super) use flotilla_api::quantity::from_json as quantity_value;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::scheduler::testing::*;
    use serde_json::json;

    #[test]
    fn quantity_forms() {
        // (pod cpu, pod memory, node cpu, node memory, fits)
        let cases = [
            ("100m", "", "0.1", "1Gi", true),
            ("101m", "", "0.1", "1Gi", false),
            ("0.5", "", "500m", "1Gi", true),
            ("0.5", "", "499m", "1Gi", false),
            ("", "1G", "1", "1Gi", true),  // 10^9 <= 2^30
            ("", "1Gi", "1", "1G", false), // 2^30 > 10^9
            ("", "1e3", "1", "1k", true),
            ("", "1001", "1", "1k", false),
            ("", "512Mi", "1", "0.5Gi", true),
            ("2", "128974848", "2000m", "123Mi", true), // 128974848 = 123Mi exactly
        ];
        for (cpu, mem, ncpu, nmem, fits) in cases {
            let got = run(&[node("n1", ncpu, nmem, 110)], &[], &pod("p", cpu, mem));
            assert_eq!(got.is_ok(), fits, "{cpu}/{mem} on {ncpu}/{nmem}: {got:?}");
        }
    }

    #[test]
    fn pod_request_is_max_of_containers_and_init_containers() {
        let c = |cpu: &str| json!({"name": "c", "resources": {"requests": {"cpu": cpu}}});
        // (containers, init containers, overhead, expected millicores)
        let cases = [
            (vec![c("1"), c("500m")], vec![], None, 1500),
            (vec![c("1")], vec![c("2"), c("300m")], None, 2000),
            (vec![c("1"), c("1")], vec![c("1500m")], None, 2000),
            (vec![c("1")], vec![], Some(json!({"cpu": "250m"})), 1250),
            // a sidecar (restartPolicy Always) runs alongside everything after it
            (vec![c("1")], vec![with(c("500m"), &["restartPolicy"], json!("Always")), c("2")], None, 2500),
        ];
        for (containers, inits, overhead, want) in cases {
            let mut spec = json!({"containers": containers, "initContainers": inits});
            if let Some(o) = overhead {
                spec["overhead"] = o;
            }
            assert_eq!(pod_requests(&spec, false).milli_cpu, want, "{spec}");
        }
        // limits stand in for missing requests; non-zero defaults only when neither is set
        let spec = json!({"containers": [{"name": "c", "resources": {"limits": {"memory": "1Gi"}}}]});
        assert_eq!(pod_requests(&spec, false), Resources { memory: 1 << 30, ..Default::default() });
        let nz = pod_requests(&spec, true);
        assert_eq!((nz.milli_cpu, nz.memory), (DEFAULT_MILLI_CPU, 1 << 30));
    }
}
