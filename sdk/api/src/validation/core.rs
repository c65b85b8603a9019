//! `core/v1` validation of the kinds other than Pod: Service (ports, types, cluster IPs),
//! ConfigMap and Secret (keys, sizes, typed secrets, `immutable`), Namespace finalizers, and
//! Node pod ranges (spec.podCIDRs).
//!
//! Invariant: a Service's cluster IP never changes once set, an `immutable` ConfigMap or
//! Secret keeps its data and stays immutable, and a Node's podCIDRs change only from none
//! to some.

use serde_json::{Map, Value};
use std::collections::BTreeSet;

use super::format::{is_config_map_key, is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_port_name, is_valid_port_num};
use super::meta::{validate_kube_finalizers, validate_labels};
use super::pod::validate_protocol;
use super::{
    Bad, Cause, arr_at, at, child, duplicate, forbidden, go_quote, go_string_slice, index, int_at, invalid, key,
    not_supported, obj_at, required, s, str_at, text, too_long,
};

pub(super) fn validate_service(c: &mut Vec<Cause>, obj: &Value) {
    let empty = Value::Object(Map::new());
    let spec = at(obj, &["spec"]).unwrap_or(&empty);
    let ty = at(spec, &["type"])
        .map(text)
        .unwrap_or_else(|| "ClusterIP".to_string());
    let cluster_ip = str_at(spec, &["clusterIP"]);
    let headless = cluster_ip == "None";
    let ports = arr_at(spec, &["ports"]);
    if ports.is_empty() && !headless && ty != "ExternalName" {
        c.push(required("spec.ports", ""));
    }
    if ty == "ExternalName" {
        let cname = str_at(spec, &["externalName"]);
        let cname = cname.strip_suffix('.').unwrap_or(cname);
        if cname.is_empty() {
            c.push(required("spec.externalName", ""));
        } else {
            for m in is_dns1123_subdomain(cname) {
                c.push(invalid("spec.externalName", s(cname), &m));
            }
        }
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index("spec.ports", i);
        let name = str_at(port, &["name"]);
        if ports.len() > 1 && name.is_empty() {
            c.push(required(&child(&p, "name"), ""));
        } else if !name.is_empty() {
            for m in is_dns1123_label(name) {
                c.push(invalid(&child(&p, "name"), s(name), &m));
            }
            if !names.insert(name.to_string()) {
                c.push(duplicate(&child(&p, "name"), s(name)));
            }
        }
        let num = int_at(port, &["port"]).unwrap_or(0);
        for m in is_valid_port_num(num) {
            c.push(invalid(&child(&p, "port"), Bad::Int(num), &m));
        }
        validate_protocol(c, port, &child(&p, "protocol"));
        match at(port, &["targetPort"]) {
            Some(Value::String(tp)) => {
                for m in is_valid_port_name(tp) {
                    c.push(invalid(&child(&p, "targetPort"), s(tp), &m));
                }
            }
            Some(tp) => {
                let n = tp.as_i64().unwrap_or(0);
                if n != 0 {
                    for m in is_valid_port_num(n) {
                        c.push(invalid(&child(&p, "targetPort"), Bad::Int(n), &m));
                    }
                }
            }
            None => {}
        }
    }
    validate_labels(c, at(spec, &["selector"]), "spec.selector");
    if let Some(sa) = at(spec, &["sessionAffinity"]).map(text)
        && !matches!(sa.as_str(), "ClientIP" | "None")
    {
        c.push(if sa.is_empty() {
            required("spec.sessionAffinity", "")
        } else {
            not_supported("spec.sessionAffinity", Bad::Str(sa), &["ClientIP", "None"])
        });
    }
    if !cluster_ip.is_empty() && !headless && cluster_ip.parse::<std::net::IpAddr>().is_err() {
        c.push(invalid(
            "spec.clusterIPs[0]",
            s(cluster_ip),
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ));
    }
    if !matches!(
        ty.as_str(),
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
    ) {
        let cause = if ty.is_empty() {
            required("spec.type", "")
        } else {
            not_supported(
                "spec.type",
                s(&ty),
                &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
            )
        };
        c.push(cause);
    }
    if ty == "ClusterIP" {
        for (i, port) in ports.iter().enumerate() {
            if int_at(port, &["nodePort"]).unwrap_or(0) != 0 {
                c.push(forbidden(
                    &child(&index("spec.ports", i), "nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    // externalTrafficPolicy (validateServiceExternalTrafficPolicy).
    let etp = at(spec, &["externalTrafficPolicy"]).map(text).unwrap_or_default();
    let external_ips = at(spec, &["externalIPs"]).and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer") || external_ips {
        if etp.is_empty() {
            c.push(required("spec.externalTrafficPolicy", ""));
        } else if !matches!(etp.as_str(), "Cluster" | "Local") {
            c.push(not_supported("spec.externalTrafficPolicy", s(&etp), &["Cluster", "Local"]));
        }
    } else if !etp.is_empty() {
        c.push(invalid("spec.externalTrafficPolicy", s(&etp), "may only be set for externally-accessible services"));
    }
    let proto = |p: &Value| {
        at(p, &["protocol"])
            .map(text)
            .unwrap_or_else(|| "TCP".to_string())
    };
    let mut node_ports = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let np = int_at(port, &["nodePort"]).unwrap_or(0);
        if np != 0 && !node_ports.insert((proto(port), np)) {
            c.push(duplicate(
                &child(&index("spec.ports", i), "nodePort"),
                Bad::Int(np),
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let (pr, num) = (proto(port), int_at(port, &["port"]).unwrap_or(0));
        if !seen.insert((pr.clone(), num)) {
            let key = format!(
                "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{num}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
                go_quote(&pr)
            );
            c.push(duplicate(&index("spec.ports", i), Bad::Raw(key)));
        }
    }
}

pub(super) fn validate_service_update(c: &mut Vec<Cause>, old: &Value, new: &Value) {
    let (ot, nt) = (
        str_at(old, &["spec", "type"]),
        str_at(new, &["spec", "type"]),
    );
    let (oip, nip) = (
        str_at(old, &["spec", "clusterIP"]),
        str_at(new, &["spec", "clusterIP"]),
    );
    let both_headless = oip == "None" && nip == "None";
    if ot != "ExternalName"
        && nt != "ExternalName"
        && !both_headless
        && !oip.is_empty()
        && !nip.is_empty()
        && oip != nip
    {
        let ips: Vec<String> = match arr_at(new, &["spec", "clusterIPs"]) {
            [] => vec![nip.to_string()],
            list => list.iter().map(text).collect(),
        };
        c.push(invalid(
            "spec.clusterIPs[0]",
            Bad::Raw(go_string_slice(&ips)),
            "may not change once set",
        ));
    }
    validate_service(c, new);
}

const MAX_SECRET_SIZE: usize = 1024 * 1024;

pub(super) fn validate_config_map(c: &mut Vec<Cause>, obj: &Value) {
    let binary = obj_at(obj, &["binaryData"]);
    let mut total = 0usize;
    if let Some(data) = obj_at(obj, &["data"]) {
        for (k, v) in data {
            for m in is_config_map_key(k) {
                c.push(invalid(&key("data", k), s(k), &m));
            }
            if binary.is_some_and(|b| b.contains_key(k)) {
                c.push(invalid(
                    &key("data", k),
                    s(k),
                    "duplicate of key present in binaryData",
                ));
            }
            total += text(v).len();
        }
    }
    if let Some(b) = binary {
        for (k, v) in b {
            for m in is_config_map_key(k) {
                c.push(invalid(&key("binaryData", k), s(k), &m));
            }
            total += text(v).len() / 4 * 3;
        }
    }
    if total > MAX_SECRET_SIZE {
        // Kubernetes reports this on `field.NewPath("")`, which prints as `[]`.
        c.push(too_long("[]", MAX_SECRET_SIZE));
    }
}

pub(super) fn validate_secret(c: &mut Vec<Cause>, obj: &Value) {
    let mut keys: Vec<String> = Vec::new();
    let mut total = 0usize;
    for (field, decode) in [("data", true), ("stringData", false)] {
        if let Some(data) = obj_at(obj, &[field]) {
            for (k, v) in data {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
                let len = text(v).len();
                total += if decode { len / 4 * 3 } else { len };
            }
        }
    }
    for k in &keys {
        for m in is_config_map_key(k) {
            c.push(invalid(&key("data", k), s(k), &m));
        }
    }
    if total > MAX_SECRET_SIZE {
        c.push(too_long("data", MAX_SECRET_SIZE));
    }
    let has = |k: &str| keys.iter().any(|x| x == k);
    match str_at(obj, &["type"]) {
        "kubernetes.io/service-account-token"
            if str_at(
                obj,
                &[
                    "metadata",
                    "annotations",
                    "kubernetes.io/service-account.name",
                ],
            )
            .is_empty() =>
        {
            c.push(required(
                "metadata.annotations[kubernetes.io/service-account.name]",
                "",
            ));
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => c.push(required("data[.dockercfg]", "")),
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => {
            c.push(required("data[.dockerconfigjson]", ""))
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            c.push(required("data[%s][username]", ""));
            c.push(required("data[%s][password]", ""));
        }
        "kubernetes.io/ssh-auth" if !has("ssh-privatekey") => {
            c.push(required("data[%s][ssh-privatekey]", ""))
        }
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !has(k) {
                    c.push(required(&key("data", k), ""));
                }
            }
        }
        _ => {}
    }
}

fn immutable_data(c: &mut Vec<Cause>, old: &Value, new: &Value, fields: &[&str]) {
    if at(old, &["immutable"]).and_then(Value::as_bool) != Some(true) {
        return;
    }
    if at(new, &["immutable"]).and_then(Value::as_bool) != Some(true) {
        c.push(forbidden(
            "immutable",
            "field is immutable when `immutable` is set",
        ));
    }
    for f in fields {
        if at(old, &[f]) != at(new, &[f]) {
            c.push(forbidden(f, "field is immutable when `immutable` is set"));
        }
    }
}

/// ConfigMap update: an `immutable` ConfigMap keeps its data, then the new object's checks.
pub(super) fn validate_config_map_update(c: &mut Vec<Cause>, old: &Value, new: &Value) {
    immutable_data(c, old, new, &["data", "binaryData"]);
    validate_config_map(c, new);
}

/// Secret update: the type is immutable once set, an `immutable` Secret keeps its data,
/// then the new object's checks.
pub(super) fn validate_secret_update(c: &mut Vec<Cause>, old: &Value, new: &Value) {
    let (ot, nt) = (str_at(old, &["type"]), str_at(new, &["type"]));
    if !nt.is_empty() && ot != nt {
        c.push(invalid("type", s(nt), "field is immutable"));
    }
    immutable_data(c, old, new, &["data"]);
    validate_secret(c, new);
}

pub(super) fn validate_namespace(c: &mut Vec<Cause>, obj: &Value) {
    let list = arr_at(obj, &["spec", "finalizers"]);
    for f in list.iter().map(text) {
        for m in is_qualified_name(&f) {
            c.push(invalid("spec.finalizers", s(&f), &m));
        }
    }
    validate_kube_finalizers(c, list, "spec.finalizers", false);
}

const NODE_POD_CIDR_IMMUTABLE: &str =
    "node updates may not change podCIDR except from \"\" to valid";

/// The node's pod ranges as the internal API holds them: spec.podCIDRs, else spec.podCIDR.
fn node_pod_cidrs(node: &Value) -> Vec<String> {
    let list: Vec<String> = arr_at(node, &["spec", "podCIDRs"])
        .iter()
        .map(text)
        .collect();
    if !list.is_empty() {
        return list;
    }
    let one = str_at(node, &["spec", "podCIDR"]);
    if one.is_empty() {
        Vec::new()
    } else {
        vec![one.to_string()]
    }
}

/// Some(true) for an IPv4 CIDR, Some(false) for IPv6, None if `s` is not a CIDR.
fn cidr_family_is_v4(s: &str) -> Option<bool> {
    let (addr, prefix) = s.split_once('/')?;
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let prefix: u32 = prefix.parse().ok()?;
    match addr.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(_) => (prefix <= 32).then_some(true),
        std::net::IpAddr::V6(_) => (prefix <= 128).then_some(false),
    }
}

/// `ValidateNode`'s spec.podCIDRs rules: each a CIDR, at most one per IP family, no
/// duplicates.
pub(super) fn validate_node(c: &mut Vec<Cause>, obj: &Value) {
    let cidrs = node_pod_cidrs(obj);
    let mut families = Vec::new();
    for (i, v) in cidrs.iter().enumerate() {
        match cidr_family_is_v4(v) {
            Some(v4) => families.push(v4),
            None => c.push(invalid(
                &index("spec.podCIDRs", i),
                s(v),
                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            )),
        }
    }
    if cidrs.len() > 1 {
        // Kubernetes only judges dual-stack when every entry parsed.
        let dual_stack = families.len() == 2 && families[0] != families[1];
        if families.len() == cidrs.len() && (!dual_stack || cidrs.len() > 2) {
            c.push(invalid(
                "spec.podCIDRs",
                Bad::Raw(go_string_slice(&cidrs)),
                "may specify no more than one CIDR for each IP family",
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, v) in cidrs.iter().enumerate() {
            if !seen.insert(v.as_str()) {
                c.push(duplicate(&index("spec.podCIDRs", i), s(v)));
            }
        }
    }
}

/// `ValidateNodeUpdate`'s podCIDR rule: the controller manager may set the node's ranges
/// once; after that they never change.
pub(super) fn validate_node_update(c: &mut Vec<Cause>, old: &Value, new: &Value) {
    let (before, after) = (node_pod_cidrs(old), node_pod_cidrs(new));
    if before.is_empty() {
        return;
    }
    if before.len() != after.len() {
        c.push(forbidden("spec.podCIDRs", NODE_POD_CIDR_IMMUTABLE));
        return;
    }
    // One cause per changed entry, as Kubernetes reports them.
    for (b, a) in before.iter().zip(&after) {
        if b != a {
            c.push(forbidden("spec.podCIDRs", NODE_POD_CIDR_IMMUTABLE));
        }
    }
}
#[cfg(test)]
mod tests {
    use super::super::fixtures::msgs;
    use super::super::{validate_create, validate_update};
    use super::*;
    use serde_json::json;

    #[test]
    fn service_rules() {
        let svc =
            |spec: Value| json!({"metadata": {"name": "web", "namespace": "d"}, "spec": spec});
        assert_eq!(
            msgs(&validate_create("", "Service", true, &svc(json!({})))),
            vec!["spec.ports: Required value"]
        );
        assert!(
            validate_create("", "Service", true, &svc(json!({"clusterIP": "None"}))).is_empty()
        );
        assert_eq!(
            msgs(&validate_create(
                "",
                "Service",
                true,
                &svc(json!({"type": "ExternalName"}))
            )),
            vec!["spec.externalName: Required value"]
        );
        let c = validate_create(
            "",
            "Service",
            true,
            &svc(json!({"type": "Magic", "ports": [
            {"port": 0, "protocol": "HTTP"}, {"name": "b", "port": 80, "nodePort": 30001}]})),
        );
        assert_eq!(
            msgs(&c),
            vec![
                "spec.ports[0].name: Required value",
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            ]
        );
        let c = validate_create(
            "",
            "Service",
            true,
            &svc(json!({"ports": [
            {"name": "a", "port": 80, "nodePort": 30001}, {"name": "b", "port": 80}]})),
        );
        assert_eq!(
            msgs(&c),
            vec![
                "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
                "spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}",
            ]
        );
        let etp = |spec: Value| msgs(&validate_create("", "Service", true, &svc(spec)));
        assert_eq!(
            etp(json!({"type": "ClusterIP", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]})),
            vec!["spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set for externally-accessible services"]
        );
        assert_eq!(
            etp(json!({"type": "NodePort", "externalTrafficPolicy": "Nearest", "ports": [{"port": 80}]})),
            vec!["spec.externalTrafficPolicy: Unsupported value: \"Nearest\": supported values: \"Cluster\", \"Local\""]
        );
        assert!(etp(json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]})).is_empty());
        let old = svc(json!({"clusterIP": "10.0.0.5", "ports": [{"port": 80}]}));
        let new = svc(json!({"clusterIP": "10.0.0.6", "ports": [{"port": 80}]}));
        assert_eq!(
            msgs(&validate_update("", "Service", &old, &new)),
            vec![
                "spec.clusterIPs[0]: Invalid value: []string{\"10.0.0.6\"}: may not change once set"
            ]
        );
        assert!(validate_update("", "Service", &old, &old).is_empty());
    }

    #[test]
    fn config_map_and_secret() {
        let cm = json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"ok.key": "v", "bad key": "v"}, "binaryData": {"ok.key": ""}});
        assert_eq!(
            msgs(&validate_create("", "ConfigMap", true, &cm)),
            vec![
                "data[ok.key]: Invalid value: \"ok.key\": duplicate of key present in binaryData",
                "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            ]
        );
        let tls = json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}});
        assert_eq!(
            msgs(&validate_create("", "Secret", true, &tls)),
            vec!["data[tls.key]: Required value"]
        );
        let old = json!({"metadata": {"name": "s", "namespace": "d"}, "immutable": true, "type": "Opaque", "data": {"a": "eA=="}});
        let new = json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA==", "tls.key": "eA=="}});
        assert_eq!(
            msgs(&validate_update("", "Secret", &old, &new)),
            vec![
                "type: Invalid value: \"kubernetes.io/tls\": field is immutable",
                "immutable: Forbidden: field is immutable when `immutable` is set",
                "data: Forbidden: field is immutable when `immutable` is set",
            ]
        );
        let cm_old = json!({"metadata": {"name": "c", "namespace": "d"}, "immutable": true, "data": {"a": "1"}});
        let mut cm_new = cm_old.clone();
        cm_new["data"]["a"] = json!("2");
        assert_eq!(
            msgs(&validate_update("", "ConfigMap", &cm_old, &cm_new)),
            vec!["data: Forbidden: field is immutable when `immutable` is set"]
        );
        assert!(validate_update("", "ConfigMap", &cm_old, &cm_old).is_empty());
        let huge = json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"k": "x".repeat(MAX_SECRET_SIZE + 1)}});
        assert_eq!(
            msgs(&validate_create("", "ConfigMap", true, &huge)),
            vec!["[]: Too long: may not be more than 1048576 bytes"]
        );
    }

    #[test]
    fn namespace_finalizers() {
        let ns =
            json!({"metadata": {"name": "team"}, "spec": {"finalizers": ["kubernetes", "custom"]}});
        assert_eq!(
            msgs(&validate_create("", "Namespace", false, &ns)),
            vec![
                "spec.finalizers: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified"
            ]
        );
    }

    #[test]
    fn node_pod_cidrs() {
        let node = |spec: Value| json!({"metadata": {"name": "n1"}, "spec": spec});
        assert!(validate_create("", "Node", false, &node(json!({}))).is_empty());
        assert!(
            validate_create(
                "",
                "Node",
                false,
                &node(json!({"podCIDR": "10.42.0.0/24", "podCIDRs": ["10.42.0.0/24"]}))
            )
            .is_empty()
        );
        assert!(
            validate_create(
                "",
                "Node",
                false,
                &node(json!({"podCIDRs": ["10.42.0.0/24", "fd00::/64"]}))
            )
            .is_empty()
        );
        assert_eq!(
            msgs(&validate_create(
                "",
                "Node",
                false,
                &node(json!({"podCIDR": "10.42.0.0/33"}))
            )),
            vec![
                "spec.podCIDRs[0]: Invalid value: \"10.42.0.0/33\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
            ]
        );
        assert_eq!(
            msgs(&validate_create(
                "",
                "Node",
                false,
                &node(json!({"podCIDRs": ["10.42.0.0/24", "10.42.0.0/24"]}))
            )),
            vec![
                "spec.podCIDRs: Invalid value: []string{\"10.42.0.0/24\", \"10.42.0.0/24\"}: may specify no more than one CIDR for each IP family",
                "spec.podCIDRs[1]: Duplicate value: \"10.42.0.0/24\"",
            ]
        );

        let old = node(json!({"podCIDR": "10.42.0.0/24", "podCIDRs": ["10.42.0.0/24"]}));
        let immutable = "spec.podCIDRs: Forbidden: node updates may not change podCIDR except from \"\" to valid";
        // From "" to valid: the controller manager's assignment.
        assert!(validate_update("", "Node", &node(json!({})), &old).is_empty());
        assert!(validate_update("", "Node", &old, &old).is_empty());
        for changed in [
            json!({"podCIDR": "10.42.1.0/24", "podCIDRs": ["10.42.1.0/24"]}),
            json!({}),
            json!({"podCIDRs": ["10.42.0.0/24", "fd00::/64"]}),
        ] {
            assert_eq!(
                msgs(&validate_update("", "Node", &old, &node(changed.clone()))),
                vec![immutable],
                "{changed}"
            );
        }
    }
}
