//! `core/v1` Pod validation: the pod spec (volumes, containers, ports, env, mounts), pod
//! templates as workloads embed them, and the narrow set of changes a Pod update may make.
//!
//! Invariant: a Pod update may change only container images, activeDeadlineSeconds
//! (downwards), tolerations (additions) and a negative grace period to 1
//! ([`POD_UPDATABLE_FIELDS`]); everything else compares semantically equal or is Forbidden.

use serde_json::{Map, Value};
use std::collections::BTreeSet;

use super::format::{is_dns1123_label, is_dns1123_subdomain, is_env_var_name, is_valid_port_name, is_valid_port_num};
use super::meta::{validate_annotations, validate_labels};
use super::{
    Bad, Cause, arr_at, at, child, duplicate, forbidden, index, int_at, invalid, normalized, not_found,
    not_supported, required, s, semantic_eq, str_at, text,
};

/// `VolumeSource` members in Go struct order (the order Kubernetes reports extra types in).
const VOLUME_TYPES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "quobyte",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

fn validate_volumes(c: &mut Vec<Cause>, vols: &[Value], path: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, vol) in vols.iter().enumerate() {
        let p = index(path, i);
        let mut el = Vec::new();
        let mut count = 0;
        for t in VOLUME_TYPES {
            let Some(src) = at(vol, &[t]) else { continue };
            if count > 0 {
                el.push(forbidden(
                    &child(&p, t),
                    "may not specify more than 1 volume type",
                ));
                continue;
            }
            count += 1;
            let (field, name) = match *t {
                "configMap" => ("name", str_at(src, &["name"])),
                "secret" => ("secretName", str_at(src, &["secretName"])),
                "persistentVolumeClaim" => ("claimName", str_at(src, &["claimName"])),
                "hostPath" => ("path", str_at(src, &["path"])),
                _ => continue,
            };
            if name.is_empty() {
                el.push(required(&child(&child(&p, t), field), ""));
            }
        }
        if count == 0 {
            el.push(required(&p, "must specify a volume type"));
        }
        let name = str_at(vol, &["name"]);
        let name_path = child(&p, "name");
        if name.is_empty() {
            el.push(required(&name_path, ""));
        } else {
            for m in is_dns1123_label(name) {
                el.push(invalid(&name_path, s(name), &m));
            }
        }
        if names.contains(name) {
            el.push(duplicate(&name_path, s(name)));
        }
        if el.is_empty() {
            names.insert(name.to_string());
        } else {
            c.extend(el);
        }
    }
    names
}

fn validate_container_ports(c: &mut Vec<Cause>, ports: &[Value], path: &str) {
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index(path, i);
        let name = str_at(port, &["name"]);
        if !name.is_empty() {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                for m in msgs {
                    c.push(invalid(&child(&p, "name"), s(name), &m));
                }
            } else if !names.insert(name.to_string()) {
                c.push(duplicate(&child(&p, "name"), s(name)));
            }
        }
        match int_at(port, &["containerPort"]).unwrap_or(0) {
            0 => c.push(required(&child(&p, "containerPort"), "")),
            n => {
                for m in is_valid_port_num(n) {
                    c.push(invalid(&child(&p, "containerPort"), Bad::Int(n), &m));
                }
            }
        }
        if let Some(hp) = int_at(port, &["hostPort"]).filter(|h| *h != 0) {
            for m in is_valid_port_num(hp) {
                c.push(invalid(&child(&p, "hostPort"), Bad::Int(hp), &m));
            }
        }
        validate_protocol(c, port, &child(&p, "protocol"));
    }
}

/// Protocol is defaulted to TCP, so only a present value is checked.
pub(super) fn validate_protocol(c: &mut Vec<Cause>, port: &Value, path: &str) {
    if let Some(proto) = at(port, &["protocol"]).map(text) {
        if proto.is_empty() {
            c.push(required(path, ""));
        } else if !matches!(proto.as_str(), "TCP" | "UDP" | "SCTP") {
            c.push(not_supported(
                path,
                Bad::Str(proto),
                &["SCTP", "TCP", "UDP"],
            ));
        }
    }
}

fn validate_container(
    c: &mut Vec<Cause>,
    ctr: &Value,
    path: &str,
    vols: &BTreeSet<String>,
    in_pod: bool,
) {
    let name = str_at(ctr, &["name"]);
    let name_path = child(path, "name");
    if name.is_empty() {
        c.push(required(&name_path, ""));
    } else {
        for m in is_dns1123_label(name) {
            c.push(invalid(&name_path, s(name), &m));
        }
    }
    let image = str_at(ctr, &["image"]);
    if image.is_empty() {
        c.push(required(&child(path, "image"), ""));
    }
    if let Some(tmp) = at(ctr, &["terminationMessagePolicy"]).map(text)
        && !matches!(tmp.as_str(), "File" | "FallbackToLogsOnError")
    {
        let p = child(path, "terminationMessagePolicy");
        c.push(if tmp.is_empty() {
            required(&p, "")
        } else {
            not_supported(&p, Bad::Str(tmp), &["File", "FallbackToLogsOnError"])
        });
    }
    validate_container_ports(c, arr_at(ctr, &["ports"]), &child(path, "ports"));
    for (i, env) in arr_at(ctr, &["env"]).iter().enumerate() {
        let p = child(&index(&child(path, "env"), i), "name");
        let n = str_at(env, &["name"]);
        if n.is_empty() {
            c.push(required(&p, ""));
        } else {
            for m in is_env_var_name(n) {
                c.push(invalid(&p, s(n), &m));
            }
        }
    }
    let mut mount_points = BTreeSet::new();
    for (i, mnt) in arr_at(ctr, &["volumeMounts"]).iter().enumerate() {
        let p = index(&child(path, "volumeMounts"), i);
        let n = str_at(mnt, &["name"]);
        if n.is_empty() {
            c.push(required(&child(&p, "name"), ""));
        }
        if !vols.contains(n) {
            c.push(not_found(&child(&p, "name"), s(n)));
        }
        let mp = str_at(mnt, &["mountPath"]);
        if mp.is_empty() {
            c.push(required(&child(&p, "mountPath"), ""));
        }
        if !mount_points.insert(mp.to_string()) {
            c.push(invalid(&child(&p, "mountPath"), s(mp), "must be unique"));
        }
        // Kubernetes' validateLocalDescendingPath: relative, and no '..' element.
        let sub = str_at(mnt, &["subPath"]);
        if sub.starts_with('/') {
            c.push(invalid(&child(&p, "subPath"), s(sub), "must be a relative path"));
        }
        if sub.split(['/', '\\']).any(|e| e == "..") {
            c.push(invalid(&child(&p, "subPath"), s(sub), "must not contain '..'"));
        }
    }
    if let Some(pp) = at(ctr, &["imagePullPolicy"]).map(text)
        && !matches!(pp.as_str(), "Always" | "IfNotPresent" | "Never")
    {
        let p = child(path, "imagePullPolicy");
        c.push(if pp.is_empty() {
            required(&p, "")
        } else {
            not_supported(&p, Bad::Str(pp), &["Always", "IfNotPresent", "Never"])
        });
    }
    if in_pod && image.len() != image.trim().len() {
        c.push(invalid(
            &child(path, "image"),
            s(image),
            "must not have leading or trailing whitespace",
        ));
    }
}

/// Probe handlers as `ProbeHandler` orders them.
const PROBE_HANDLERS: &[&str] = &["exec", "httpGet", "tcpSocket", "grpc"];

/// `validateProbe` and the container checks on probes: one handler each, non-negative
/// numbers, successThreshold 1 for liveness and startup, none on init containers.
fn validate_probes(c: &mut Vec<Cause>, ctr: &Value, path: &str, init: bool) {
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let Some(p) = at(ctr, &[probe]).filter(|p| p.is_object()) else { continue };
        let ppath = child(path, probe);
        if init {
            c.push(forbidden(&ppath, "may not be set for init containers without restartPolicy=Always"));
            continue;
        }
        let handlers: Vec<&str> = PROBE_HANDLERS.iter().copied().filter(|h| at(p, &[h]).is_some_and(|v| !v.is_null())).collect();
        match handlers.as_slice() {
            [] => c.push(required(&ppath, "must specify a handler type")),
            [_] => {}
            [_, more @ ..] => {
                for h in more {
                    c.push(forbidden(&child(&ppath, h), "may not specify more than 1 handler type"));
                }
            }
        }
        for f in ["initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"] {
            if let Some(v) = int_at(p, &[f])
                && v < 0
            {
                c.push(invalid(&child(&ppath, f), Bad::Int(v), "must be greater than or equal to 0"));
            }
        }
        if let Some(v) = int_at(p, &["terminationGracePeriodSeconds"])
            && v <= 0
        {
            c.push(invalid(&child(&ppath, "terminationGracePeriodSeconds"), Bad::Int(v), "must be greater than 0"));
        }
        if probe != "readinessProbe"
            && let Some(v) = int_at(p, &["successThreshold"])
            && v != 1
        {
            c.push(invalid(&child(&ppath, "successThreshold"), Bad::Int(v), "must be 1"));
        }
    }
}

/// `ValidatePodSpec` (subset); `in_pod` adds the checks only created Pods get.
fn validate_pod_spec(c: &mut Vec<Cause>, spec: &Value, path: &str, in_pod: bool) {
    let vols = validate_volumes(c, arr_at(spec, &["volumes"]), &child(path, "volumes"));
    let containers = arr_at(spec, &["containers"]);
    let cpath = child(path, "containers");
    let mut names = BTreeSet::new();
    if containers.is_empty() {
        c.push(required(&cpath, ""));
    }
    // Container names are unique across containers and init containers.
    for (list, lpath) in [(containers, cpath), (arr_at(spec, &["initContainers"]), child(path, "initContainers"))] {
        for (i, ctr) in list.iter().enumerate() {
            let p = index(&lpath, i);
            validate_container(c, ctr, &p, &vols, in_pod);
            validate_probes(c, ctr, &p, lpath.ends_with("initContainers"));
            let n = str_at(ctr, &["name"]);
            if !names.insert(n.to_string()) {
                c.push(duplicate(&child(&p, "name"), s(n)));
            }
        }
    }
    if let Some(rp) = at(spec, &["restartPolicy"]).map(text) {
        let p = child(path, "restartPolicy");
        match rp.as_str() {
            "Always" | "OnFailure" | "Never" => {}
            "" => c.push(required(&p, "")),
            _ => c.push(not_supported(
                &p,
                Bad::Str(rp),
                &["Always", "OnFailure", "Never"],
            )),
        }
    }
    validate_labels(c, at(spec, &["nodeSelector"]), &child(path, "nodeSelector"));
    for f in ["serviceAccountName", "nodeName"] {
        let v = str_at(spec, &[f]);
        if !v.is_empty() {
            for m in is_dns1123_subdomain(v) {
                c.push(invalid(&child(path, f), s(v), &m));
            }
        }
    }
    if let Some(ads) = int_at(spec, &["activeDeadlineSeconds"])
        && !(1..=i64::from(i32::MAX)).contains(&ads)
    {
        c.push(invalid(
            &child(path, "activeDeadlineSeconds"),
            Bad::Int(ads),
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    for f in ["hostname", "subdomain"] {
        let v = str_at(spec, &[f]);
        if !v.is_empty() {
            for m in is_dns1123_label(v) {
                c.push(invalid(&child(path, f), s(v), &m));
            }
        }
    }
}

/// `ValidatePodTemplateSpec`: template labels/annotations (at `<path>.labels`) and the pod spec.
pub(super) fn validate_pod_template(c: &mut Vec<Cause>, tmpl: &Value, path: &str) {
    validate_labels(c, at(tmpl, &["metadata", "labels"]), &child(path, "labels"));
    validate_annotations(
        c,
        at(tmpl, &["metadata", "annotations"]),
        &child(path, "annotations"),
    );
    let empty = Value::Object(Map::new());
    validate_pod_spec(
        c,
        at(tmpl, &["spec"]).unwrap_or(&empty),
        &child(path, "spec"),
        false,
    );
    if !arr_at(tmpl, &["spec", "ephemeralContainers"]).is_empty() {
        c.push(forbidden(
            &child(path, "spec.ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
}

/// `on_create` adds the checks Kubernetes runs only when a Pod is created.
pub(super) fn validate_pod(c: &mut Vec<Cause>, obj: &Value, on_create: bool) {
    let empty = Value::Object(Map::new());
    validate_pod_spec(c, at(obj, &["spec"]).unwrap_or(&empty), "spec", on_create);
}

const POD_UPDATABLE_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

fn validate_container_updates(
    c: &mut Vec<Cause>,
    new: &[Value],
    old: &[Value],
    path: &str,
) -> bool {
    if new.len() != old.len() {
        c.push(forbidden(
            path,
            "pod updates may not add or remove containers",
        ));
        return true;
    }
    for (i, ctr) in new.iter().enumerate() {
        let image = str_at(ctr, &["image"]);
        if image.is_empty() {
            c.push(required(&child(&index(path, i), "image"), ""));
        }
        if image.trim().len() != image.len() {
            c.push(invalid(
                &child(&index(path, i), "image"),
                s(image),
                "must not have leading or trailing whitespace",
            ));
        }
    }
    false
}

pub(super) fn validate_pod_update(c: &mut Vec<Cause>, old: &Value, new: &Value) {
    validate_pod(c, new, false);
    let empty = Value::Object(Map::new());
    let os = at(old, &["spec"]).unwrap_or(&empty);
    let ns = at(new, &["spec"]).unwrap_or(&empty);
    for f in ["containers", "initContainers"] {
        if validate_container_updates(c, arr_at(ns, &[f]), arr_at(os, &[f]), &format!("spec.{f}")) {
            return;
        }
    }
    let ads_path = "spec.activeDeadlineSeconds";
    match (
        int_at(ns, &["activeDeadlineSeconds"]),
        int_at(os, &["activeDeadlineSeconds"]),
    ) {
        (Some(n), old_ads) => {
            if !(0..=i64::from(i32::MAX)).contains(&n) {
                c.push(invalid(
                    ads_path,
                    Bad::Int(n),
                    "must be between 0 and 2147483647, inclusive",
                ));
                return;
            }
            if old_ads.is_some_and(|o| o < n) {
                c.push(invalid(
                    ads_path,
                    Bad::Int(n),
                    "must be less than or equal to previous value",
                ));
                return;
            }
        }
        (None, Some(_)) => {
            c.push(invalid(
                ads_path,
                s("null"),
                "must not update from a positive integer to nil value",
            ));
        }
        (None, None) => {}
    }
    let new_tol = arr_at(ns, &["tolerations"]);
    for ot in arr_at(os, &["tolerations"]) {
        let strip = |t: &Value| {
            let mut t = normalized(t);
            if let Some(o) = t.as_object_mut() {
                o.remove("tolerationSeconds");
            }
            t
        };
        if !new_tol.iter().any(|nt| strip(nt) == strip(ot)) {
            c.push(forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            break;
        }
    }
    if semantic_eq(Some(ns), Some(os)) {
        return;
    }
    let mut munged = ns.clone();
    if let Some(m) = munged.as_object_mut() {
        for f in ["containers", "initContainers"] {
            let olds = arr_at(os, &[f]);
            if let Some(list) = m.get_mut(f).and_then(Value::as_array_mut) {
                for (ctr, old_ctr) in list.iter_mut().zip(olds) {
                    if let Some(o) = ctr.as_object_mut() {
                        o.insert(
                            "image".into(),
                            at(old_ctr, &["image"]).cloned().unwrap_or(Value::Null),
                        );
                    }
                }
            }
        }
        for f in ["activeDeadlineSeconds", "tolerations", "schedulingGates"] {
            match os.get(f) {
                Some(v) => m.insert(f.into(), v.clone()),
                None => m.remove(f),
            };
        }
        let old_grace = int_at(os, &["terminationGracePeriodSeconds"]);
        if old_grace.is_some_and(|g| g < 0)
            && int_at(ns, &["terminationGracePeriodSeconds"]) == Some(1)
        {
            m.insert(
                "terminationGracePeriodSeconds".into(),
                os["terminationGracePeriodSeconds"].clone(),
            );
        }
    }
    if !semantic_eq(Some(&munged), Some(os)) {
        c.push(forbidden(
            "spec",
            &format!("pod updates may not change fields other than {POD_UPDATABLE_FIELDS}"),
        ));
    }
}
#[cfg(test)]
mod tests {
    use super::super::fixtures::{LABEL_MSG, msgs, pod};
    use super::super::{validate_create, validate_update};
    use super::*;
    use serde_json::json;

    #[test]
    fn probes_have_one_handler_and_liveness_one_success() {
        let probe = |extra: serde_json::Value| {
            let mut p = json!({"httpGet": {"port": 80}, "periodSeconds": 10});
            for (k, v) in extra.as_object().into_iter().flatten() {
                p[k] = v.clone();
            }
            p
        };
        let c = validate_create(
            "",
            "Pod",
            true,
            &pod(json!({
                "containers": [{"name": "a", "image": "x",
                    "livenessProbe": probe(json!({"successThreshold": 2, "tcpSocket": {"port": 80}})),
                    "readinessProbe": probe(json!({"successThreshold": 2, "periodSeconds": -1})),
                    "startupProbe": {"terminationGracePeriodSeconds": 0}}],
                "initContainers": [{"name": "i", "image": "x", "readinessProbe": probe(json!({}))}],
            })),
        );
        assert_eq!(msgs(&c), vec![
            "spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
            "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
            "spec.containers[0].readinessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
            "spec.containers[0].startupProbe: Required value: must specify a handler type",
            "spec.containers[0].startupProbe.terminationGracePeriodSeconds: Invalid value: 0: must be greater than 0",
            "spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
        ]);
    }

    #[test]
    fn pod_containers_required_and_checked() {
        let c = validate_create("", "Pod", true, &pod(json!({})));
        assert_eq!(msgs(&c), vec!["spec.containers: Required value"]);
        let c = validate_create(
            "",
            "Pod",
            true,
            &pod(json!({"restartPolicy": "Sometimes", "containers": [
            {"name": "Web", "image": ""},
            {"name": "dup", "image": "x", "ports": [{"containerPort": 70000, "protocol": "ICMP"}, {"name": "http"}]},
            {"name": "dup", "image": " x"}]})),
        );
        assert_eq!(msgs(&c), vec![
            format!("spec.containers[0].name: Invalid value: \"Web\": {LABEL_MSG}"),
            "spec.containers[0].image: Required value".to_string(),
            "spec.containers[1].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive".to_string(),
            "spec.containers[1].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"".to_string(),
            "spec.containers[1].ports[1].containerPort: Required value".to_string(),
            "spec.containers[2].image: Invalid value: \" x\": must not have leading or trailing whitespace".to_string(),
            "spec.containers[2].name: Duplicate value: \"dup\"".to_string(),
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"".to_string(),
        ]);
        assert_eq!(c[6].reason, "FieldValueDuplicate");
        assert_eq!(c[7].reason, "FieldValueNotSupported");
    }

    #[test]
    fn pod_volumes_and_mounts() {
        let c = validate_create(
            "",
            "Pod",
            true,
            &pod(json!({
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "data", "emptyDir": {}},
                        {"name": "cfg", "configMap": {}, "secret": {"secretName": "s"}}, {"name": "none"},
                        {"name": "cm", "configMap": {}}],
            "containers": [{"name": "c", "image": "i", "volumeMounts": [
                {"name": "data", "mountPath": "/d"}, {"name": "cfg", "mountPath": "/d"}]}]})),
        );
        assert_eq!(
            msgs(&c),
            vec![
                "spec.volumes[1].name: Duplicate value: \"data\"",
                "spec.volumes[2].configMap: Forbidden: may not specify more than 1 volume type",
                "spec.volumes[3]: Required value: must specify a volume type",
                "spec.volumes[4].configMap.name: Required value",
                "spec.containers[0].volumeMounts[1].name: Not found: \"cfg\"",
                "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/d\": must be unique",
            ]
        );
    }

    #[test]
    fn pod_update_rules() {
        let old = pod(
            json!({"nodeName": "n1", "containers": [{"name": "c", "image": "a", "ports": [{"containerPort": 80}]}],
            "tolerations": [{"key": "k", "operator": "Exists"}]}),
        );
        let mut image = old.clone();
        image["spec"]["containers"][0]["image"] = json!("b");
        image["spec"]["activeDeadlineSeconds"] = json!(30);
        image["spec"]["tolerations"] =
            json!([{"key": "k", "operator": "Exists"}, {"key": "z", "operator": "Exists"}]);
        assert!(validate_update("", "Pod", &old, &image).is_empty());
        let mut spaced = old.clone();
        spaced["spec"]["containers"][0]["image"] = json!("b ");
        assert_eq!(
            msgs(&validate_update("", "Pod", &old, &spaced)),
            vec![
                "spec.containers[0].image: Invalid value: \"b \": must not have leading or trailing whitespace"
            ]
        );

        let mut port = old.clone();
        port["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(81);
        assert_eq!(
            msgs(&validate_update("", "Pod", &old, &port)),
            vec![format!(
                "spec: Forbidden: pod updates may not change fields other than {POD_UPDATABLE_FIELDS}"
            )]
        );
        let mut more = old.clone();
        more["spec"]["containers"] =
            json!([{"name": "c", "image": "a"}, {"name": "d", "image": "a"}]);
        assert_eq!(
            msgs(&validate_update("", "Pod", &old, &more)),
            vec!["spec.containers: Forbidden: pod updates may not add or remove containers"]
        );
        let mut tol = old.clone();
        tol["spec"]["tolerations"] = json!([]);
        assert_eq!(
            msgs(&validate_update("", "Pod", &old, &tol)),
            vec![
                "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"
            ]
        );
        let mut with_ads = old.clone();
        with_ads["spec"]["activeDeadlineSeconds"] = json!(10);
        let mut raised = old.clone();
        raised["spec"]["activeDeadlineSeconds"] = json!(20);
        assert_eq!(
            msgs(&validate_update("", "Pod", &with_ads, &raised)),
            vec![
                "spec.activeDeadlineSeconds: Invalid value: 20: must be less than or equal to previous value"
            ]
        );
        assert_eq!(
            msgs(&validate_update("", "Pod", &with_ads, &old)),
            vec![
                "spec.activeDeadlineSeconds: Invalid value: \"null\": must not update from a positive integer to nil value"
            ]
        );
    }

}
