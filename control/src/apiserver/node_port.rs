//! Service node ports, the rules (kube-apiserver's `portallocator` and the Service
//! registry's node-port handling): the range (`--service-node-port-range`), which Services
//! need node ports and a health-check node port, the fields that go when a Service's type
//! no longer needs them, the ports an update keeps, and Kubernetes' error messages. The
//! writes are in `service/node_ports.rs`.
//!
//! - A Service needs a node port on every port when it is of type NodePort, or
//!   LoadBalancer with `allocateLoadBalancerNodePorts` not false; it needs a
//!   `healthCheckNodePort` when it is of type LoadBalancer with externalTrafficPolicy
//!   Local.
//! - Ports of one Service with the same number under different protocols may share a node
//!   port; a node port is held once per Service.
//! - Dynamic allocation starts at a random place in the upper band of the range (the lower
//!   band is kept for static requests, as Kubernetes' ServiceNodePortStaticSubrange does)
//!   and goes round the whole range.

use std::collections::BTreeSet;

use flotilla_api::validation::Cause;
use serde_json::Value;

/// The range node ports are allocated from, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodePortRange {
    pub first: u16,
    pub last: u16,
}

impl Default for NodePortRange {
    fn default() -> Self {
        NodePortRange { first: 30000, last: 32767 }
    }
}

impl std::fmt::Display for NodePortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// Why a `--service-node-port-range` value is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid --service-node-port-range {0:?}: want FIRST-LAST or FIRST+SIZE, ports 1-65535, FIRST <= LAST")]
pub struct NodePortRangeError(pub String);

impl std::str::FromStr for NodePortRange {
    type Err = NodePortRangeError;

    /// `30000-32767` or `30000+2767` (Kubernetes' two forms).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || NodePortRangeError(s.to_string());
        let (first, last) = if let Some((a, b)) = s.split_once('-') {
            (a.trim().parse::<u32>().map_err(|_| bad())?, b.trim().parse::<u32>().map_err(|_| bad())?)
        } else if let Some((a, n)) = s.split_once('+') {
            let a = a.trim().parse::<u32>().map_err(|_| bad())?;
            (a, a + n.trim().parse::<u32>().map_err(|_| bad())?)
        } else {
            return Err(bad());
        };
        if first == 0 || first > last || last > 65535 {
            return Err(bad());
        }
        Ok(NodePortRange { first: first as u16, last: last as u16 })
    }
}

impl NodePortRange {
    pub fn contains(&self, port: i64) -> bool {
        (i64::from(self.first)..=i64::from(self.last)).contains(&port)
    }

    fn size(&self) -> u32 {
        u32::from(self.last) - u32::from(self.first) + 1
    }

    /// Size of the lower band kept for static requests: size/32, at least 16, at most 128
    /// (none for a range smaller than 16).
    fn static_band(&self) -> u32 {
        let size = self.size();
        if size < 16 { 0 } else { (size / 32).clamp(16, 128) }
    }

    /// Every port of the range once, in the order dynamic allocation tries them: from a
    /// place in the upper band picked by `seed`, round the range.
    pub fn candidates(&self, seed: u64) -> impl Iterator<Item = u16> + use<> {
        let (size, band) = (self.size(), self.static_band());
        let start = band + (seed % u64::from(size - band)) as u32;
        let first = u32::from(self.first);
        (0..size).map(move |i| (first + (start + i) % size) as u16)
    }
}

fn str_at<'a>(spec: &'a Value, key: &str) -> &'a str {
    spec[key].as_str().unwrap_or("")
}

/// Whether the Service `spec` needs a node port on each of its ports.
pub(crate) fn needs_node_ports(spec: &Value) -> bool {
    match str_at(spec, "type") {
        "NodePort" => true,
        "LoadBalancer" => spec["allocateLoadBalancerNodePorts"] != false,
        _ => false,
    }
}

/// Whether the Service `spec` needs a `healthCheckNodePort`.
pub(crate) fn needs_health_check(spec: &Value) -> bool {
    str_at(spec, "type") == "LoadBalancer" && str_at(spec, "externalTrafficPolicy") == "Local"
}

fn port_number(v: &Value) -> u16 {
    v.as_i64().and_then(|p| u16::try_from(p).ok()).unwrap_or(0)
}

/// The node ports `spec` holds (its ports' and its health check's), each once.
pub(crate) fn held(spec: &Value) -> BTreeSet<u16> {
    let ports = spec["ports"].as_array().into_iter().flatten().map(|p| port_number(&p["nodePort"]));
    ports.chain([port_number(&spec["healthCheckNodePort"])]).filter(|p| *p != 0).collect()
}

/// One node port to allocate: where it goes and whether the user asked for a number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Want {
    /// `Some(i)`: `spec.ports[i].nodePort`; None: `spec.healthCheckNodePort`.
    pub port_index: Option<usize>,
    /// The number asked for; 0: any.
    pub requested: i64,
}

impl Want {
    pub fn field(&self) -> String {
        match self.port_index {
            Some(i) => format!("spec.ports[{i}].nodePort"),
            None => "spec.healthCheckNodePort".to_string(),
        }
    }
}

/// The node ports `spec` needs that it does not hold in `old` (None for a create). A
/// requested number another port of the same Service already takes (another protocol on
/// the same node port) is not asked for twice.
pub(crate) fn wanted(spec: &Value, old: Option<&Value>) -> Vec<Want> {
    let before = old.map(held).unwrap_or_default();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    if needs_node_ports(spec) {
        for (i, p) in spec["ports"].as_array().into_iter().flatten().enumerate() {
            let requested = p["nodePort"].as_i64().unwrap_or(0);
            if requested != 0 && (before.contains(&port_number(&p["nodePort"])) || !seen.insert(requested)) {
                continue;
            }
            out.push(Want { port_index: Some(i), requested });
        }
    }
    if needs_health_check(spec) {
        let requested = spec["healthCheckNodePort"].as_i64().unwrap_or(0);
        if requested == 0 || !before.contains(&port_number(&spec["healthCheckNodePort"])) {
            out.push(Want { port_index: None, requested });
        }
    }
    out
}

/// Writes an allocated port where `want` says.
pub(crate) fn set(spec: &mut Value, want: &Want, port: u16) {
    match want.port_index {
        Some(i) => spec["ports"][i]["nodePort"] = Value::from(port),
        None => spec["healthCheckNodePort"] = Value::from(port),
    }
}

/// An update of `new` from `old`, before validation (Kubernetes' patchAllocatedValues and
/// dropTypeDependentFields): ports left without a node port keep the one their namesake
/// had, the health-check port is kept; fields the new type no longer needs go, unless
/// the update set them itself.
pub(crate) fn prepare_update(old: &Value, new: &mut Value) {
    let (Some(o), Some(n)) = (old.get("spec"), new.get_mut("spec").filter(|s| s.is_object())) else { return };
    if needs_node_ports(o) && needs_node_ports(n) {
        let both: BTreeSet<u16> = node_ports_of(o).intersection(&node_ports_of(n)).copied().collect();
        let by_name: Vec<(String, Value)> = o["ports"].as_array().into_iter().flatten().map(|p| (str_at(p, "name").to_string(), p["nodePort"].clone())).collect();
        for p in n.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
            if p["nodePort"].as_i64().unwrap_or(0) != 0 {
                continue;
            }
            if let Some((_, np)) = by_name.iter().find(|(name, _)| name == str_at(p, "name"))
                && port_number(np) != 0
                && !both.contains(&port_number(np))
            {
                p["nodePort"] = np.clone();
            }
        }
    }
    if needs_health_check(o) && needs_health_check(n) && n["healthCheckNodePort"].as_i64().unwrap_or(0) == 0 && o["healthCheckNodePort"].is_i64() {
        n["healthCheckNodePort"] = o["healthCheckNodePort"].clone();
    }
    // dropTypeDependentFields: only what the update left as it was.
    if !needs_node_ports(n) && node_ports_of(o) == node_ports_of(n) {
        for p in n.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(p) = p.as_object_mut() {
                p.remove("nodePort");
            }
        }
    }
    let before = n.clone();
    let spec = n.as_object_mut().expect("checked above");
    let unchanged = |k: &str| o.get(k) == before.get(k);
    if !needs_health_check(&before) && unchanged("healthCheckNodePort") {
        spec.remove("healthCheckNodePort");
    }
    let ty = str_at(&before, "type");
    if ty != "LoadBalancer" {
        for k in ["allocateLoadBalancerNodePorts", "loadBalancerClass"] {
            if unchanged(k) {
                spec.remove(k);
            }
        }
    }
    if !matches!(ty, "NodePort" | "LoadBalancer") && unchanged("externalTrafficPolicy") {
        spec.remove("externalTrafficPolicy");
    }
}

fn node_ports_of(spec: &Value) -> BTreeSet<u16> {
    spec["ports"].as_array().into_iter().flatten().map(|p| port_number(&p["nodePort"])).filter(|p| *p != 0).collect()
}

/// Kubernetes' validation of the node-port fields for one spec against the range (what
/// the allocator reports for a requested port outside it).
pub(crate) fn check(spec: &Value, range: &NodePortRange) -> Vec<Cause> {
    let mut causes = Vec::new();
    for w in wanted(spec, None) {
        if w.requested != 0 && !range.contains(w.requested) {
            causes.push(not_in_range(&w, range));
        }
    }
    if !needs_health_check(spec) && spec["healthCheckNodePort"].as_i64().unwrap_or(0) != 0 {
        causes.push(invalid(
            "spec.healthCheckNodePort",
            spec["healthCheckNodePort"].to_string(),
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ));
    }
    causes
}

fn invalid(field: &str, rendered: String, detail: &str) -> Cause {
    Cause { field: field.to_string(), reason: "FieldValueInvalid", message: format!("Invalid value: {rendered}: {detail}") }
}

pub(crate) fn not_in_range(w: &Want, range: &NodePortRange) -> Cause {
    invalid(&w.field(), w.requested.to_string(), &format!("provided port is not in the valid range. The range of valid ports is {range}"))
}

pub(crate) fn allocated(w: &Want) -> Cause {
    invalid(&w.field(), w.requested.to_string(), "provided port is already allocated")
}

/// The message of a dynamic allocation that found the range full.
pub(crate) const FULL: &str = "failed to allocate a nodePort: range is full";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ranges_parse_in_both_forms() {
        assert_eq!("30000-32767".parse::<NodePortRange>(), Ok(NodePortRange::default()));
        assert_eq!("30000+2767".parse::<NodePortRange>(), Ok(NodePortRange::default()));
        for bad in ["", "30000", "3-2", "0-10", "1-70000", "a-b"] {
            assert!(bad.parse::<NodePortRange>().is_err(), "{bad}");
        }
        assert_eq!(NodePortRange::default().to_string(), "30000-32767");
    }

    #[test]
    fn candidates_cover_the_range_once_starting_in_the_upper_band() {
        let r = NodePortRange { first: 30000, last: 30099 };
        for seed in [0, 1, 99, 12345] {
            let all: Vec<u16> = r.candidates(seed).collect();
            assert_eq!(all.len(), 100);
            assert_eq!(all.iter().copied().collect::<BTreeSet<_>>().len(), 100);
            assert!(all[0] >= 30016, "{}", all[0]);
        }
        let tiny = NodePortRange { first: 40000, last: 40001 };
        assert_eq!(tiny.candidates(1).collect::<Vec<_>>(), vec![40001, 40000]);
    }

    #[test]
    fn which_services_need_node_ports() {
        assert!(needs_node_ports(&json!({"type": "NodePort"})));
        assert!(needs_node_ports(&json!({"type": "LoadBalancer"})));
        assert!(!needs_node_ports(&json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false})));
        assert!(!needs_node_ports(&json!({"type": "ClusterIP"})));
        assert!(needs_health_check(&json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local"})));
        assert!(!needs_health_check(&json!({"type": "NodePort", "externalTrafficPolicy": "Local"})));
    }

    #[test]
    fn wanted_skips_what_is_held_and_shared_numbers() {
        let spec = json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [
            {"port": 53, "protocol": "TCP", "nodePort": 30053}, {"port": 53, "protocol": "UDP", "nodePort": 30053}, {"port": 80}]});
        assert_eq!(wanted(&spec, None), vec![
            Want { port_index: Some(0), requested: 30053 },
            Want { port_index: Some(2), requested: 0 },
            Want { port_index: None, requested: 0 },
        ]);
        let mut held_spec = spec.clone();
        held_spec["ports"][2]["nodePort"] = json!(31000);
        held_spec["healthCheckNodePort"] = json!(31001);
        assert_eq!(held(&held_spec), BTreeSet::from([30053, 31000, 31001]));
        assert_eq!(wanted(&held_spec, Some(&held_spec)), vec![]);
    }

    #[test]
    fn updates_keep_ports_and_drop_what_the_type_no_longer_needs() {
        let old = json!({"spec": {"type": "NodePort", "externalTrafficPolicy": "Cluster", "ports": [{"name": "web", "port": 80, "nodePort": 30080}]}});
        // `kubectl replace` without the node port: kept by name.
        let mut new = json!({"spec": {"type": "NodePort", "externalTrafficPolicy": "Cluster", "ports": [{"name": "web", "port": 8080}]}});
        prepare_update(&old, &mut new);
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
        // Back to ClusterIP: the node ports and the traffic policy go.
        let mut new = json!({"spec": {"type": "ClusterIP", "externalTrafficPolicy": "Cluster", "ports": [{"name": "web", "port": 80, "nodePort": 30080}]}});
        prepare_update(&old, &mut new);
        assert_eq!(new["spec"], json!({"type": "ClusterIP", "ports": [{"name": "web", "port": 80}]}));
        // A node port the update set itself stays (and validation refuses it).
        let mut new = json!({"spec": {"type": "ClusterIP", "ports": [{"name": "web", "port": 80, "nodePort": 30081}]}});
        prepare_update(&old, &mut new);
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30081);
        // The health check port survives an update that leaves it out.
        let lb = json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 31500, "ports": []}});
        let mut new = json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": []}});
        prepare_update(&lb, &mut new);
        assert_eq!(new["spec"]["healthCheckNodePort"], 31500);
        let mut new = json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Cluster", "healthCheckNodePort": 31500, "ports": []}});
        prepare_update(&lb, &mut new);
        assert!(new["spec"].get("healthCheckNodePort").is_none(), "{new}");
    }

    #[test]
    fn checks_give_kubernetes_messages() {
        let r = NodePortRange::default();
        let spec = json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}], "healthCheckNodePort": 30001});
        let msgs: Vec<String> = check(&spec, &r).iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        assert_eq!(msgs, vec![
            "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767".to_string(),
            "spec.healthCheckNodePort: Invalid value: 30001: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'".to_string(),
        ]);
        let w = Want { port_index: Some(1), requested: 30080 };
        assert_eq!(allocated(&w).message, "Invalid value: 30080: provided port is already allocated");
    }
}
