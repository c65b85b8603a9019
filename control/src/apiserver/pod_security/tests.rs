//! Pod Security: the checks' words against what Kubernetes answers, label parsing,
//! versions, templates, namespace warnings.

use serde_json::{Value, json};

use super::*;

fn lv(level: Level, version: Version) -> LevelVersion {
    LevelVersion { level, version }
}

const RESTRICTED: LevelVersion = LevelVersion { level: Level::Restricted, version: Version::Latest };
const BASELINE: LevelVersion = LevelVersion { level: Level::Baseline, version: Version::Latest };

/// A container meeting restricted.
fn good(name: &str) -> Value {
    json!({"name": name, "image": "x", "securityContext": {
        "allowPrivilegeEscalation": false, "runAsNonRoot": true,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}})
}

fn with(mut v: Value, pointer: &str, value: Value) -> Value {
    let (parent, last) = pointer.rsplit_once('/').unwrap();
    let mut cur = &mut v;
    for part in parent.split('/').skip(1) {
        cur = if let Ok(i) = part.parse::<usize>() { &mut cur[i] } else { &mut cur[part] };
    }
    cur[last] = value;
    v
}

#[test]
fn checks_word_violations_as_kubernetes() {
    let bare = json!({"containers": [{"name": "c", "image": "x"}]});
    let ok = json!({"containers": [good("c")]});
    let cases: Vec<(&str, LevelVersion, Value, &str)> = vec![
        ("bare pod, restricted", RESTRICTED, bare.clone(),
         "allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), \
          unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), \
          runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), \
          seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"),
        ("bare pod, baseline", BASELINE, bare.clone(), ""),
        ("restricted pod", RESTRICTED, ok.clone(), ""),
        ("pod-level runAsNonRoot and seccomp", RESTRICTED,
         json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "Localhost"}},
                "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]}), ""),
        ("hostPath, restricted", RESTRICTED, with(ok.clone(), "/volumes", json!([{"name": "data", "hostPath": {"path": "/tmp"}}, {"name": "e", "emptyDir": {}}])),
         "restricted volume types (volume \"data\" uses restricted volume type \"hostPath\")"),
        ("hostPath, baseline", BASELINE, with(ok.clone(), "/volumes", json!([{"name": "a", "hostPath": {"path": "/tmp"}}, {"name": "b", "hostPath": {"path": "/x"}}])),
         "hostPath volumes (volumes \"a\", \"b\")"),
        ("nfs and unknown, restricted", RESTRICTED, with(ok.clone(), "/volumes", json!([{"name": "n", "nfs": {"server": "s", "path": "/"}}, {"name": "u", "futureSource": {}}, {"name": "defaulted"}])),
         "restricted volume types (volumes \"n\", \"u\" use restricted volume types \"nfs\", \"unknown\")"),
        ("host namespaces and ports, privileged, capabilities", BASELINE,
         json!({"hostNetwork": true, "hostIPC": true, "containers": [
             {"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81, "hostPort": 10}],
              "securityContext": {"privileged": true, "capabilities": {"add": ["SYS_ADMIN", "CHOWN", "NET_RAW"]}}},
             {"name": "b", "ports": [{"containerPort": 80}]}]}),
         "non-default capabilities (container \"a\" must not include \"NET_RAW\", \"SYS_ADMIN\" in securityContext.capabilities.add), \
          host namespaces (hostNetwork=true, hostIPC=true), \
          hostPort (container \"a\" uses hostPorts 10, 8080), \
          privileged (container \"a\" must not set securityContext.privileged=true)"),
        ("restricted capabilities replace baseline's", RESTRICTED,
         with(ok.clone(), "/containers/0/securityContext/capabilities/add", json!(["SYS_ADMIN"])),
         "unrestricted capabilities (container \"c\" must not include \"SYS_ADMIN\" in securityContext.capabilities.add)"),
        ("explicit bad setters", RESTRICTED,
         json!({"securityContext": {"runAsNonRoot": false, "runAsUser": 0, "seccompProfile": {"type": "Unconfined"}},
                "initContainers": [with(good("i"), "/securityContext/runAsUser", json!(0))],
                "containers": [with(good("c"), "/securityContext/runAsNonRoot", json!(false))]}),
         "runAsNonRoot != true (pod and container \"c\" must not set securityContext.runAsNonRoot=false), \
          runAsUser=0 (pod and container \"i\" must not set runAsUser=0), \
          seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")"),
        ("sysctls, procMount, seLinux, appArmor, hostProcess", BASELINE,
         json!({"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}, {"name": "net.ipv4.tcp_syncookies", "value": "1"}],
                                    "seLinuxOptions": {"type": "spc_t"}, "appArmorProfile": {"type": "Unconfined"}},
                "containers": [{"name": "c", "securityContext": {"procMount": "Unmasked", "seLinuxOptions": {"user": "u"},
                                                              "windowsOptions": {"hostProcess": true}}}]}),
         "forbidden AppArmor profile (pod must not set AppArmor profile type to \"Unconfined\"), \
          procMount (container \"c\" must not set securityContext.procMount to \"Unmasked\"), \
          seLinuxOptions (pod and container \"c\" set forbidden securityContext.seLinuxOptions: type \"spc_t\"; user may not be set), \
          forbidden sysctls (kernel.msgmax), \
          hostProcess (container \"c\" must not set securityContext.windowsOptions.hostProcess=true)"),
        ("allowPrivilegeEscalation true in two containers", RESTRICTED,
         json!({"containers": [with(good("a"), "/securityContext/allowPrivilegeEscalation", json!(true)), with(good("b"), "/securityContext/allowPrivilegeEscalation", Value::Null)]}),
         "allowPrivilegeEscalation != false (containers \"a\", \"b\" must set securityContext.allowPrivilegeEscalation=false)"),
        ("windows pods skip linux-only restricted checks", RESTRICTED,
         json!({"os": {"name": "windows"}, "securityContext": {"runAsNonRoot": true}, "containers": [{"name": "c"}]}), ""),
    ];
    for (what, lv, spec, want) in cases {
        let got = detail(&evaluate(lv, &json!({}), &spec));
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn versions_choose_the_checks_of_their_time() {
    let runs_as_root = json!({"securityContext": {"runAsUser": 0}, "containers": [good("c")]});
    assert_eq!(evaluate(lv(Level::Restricted, Version::V1(22)), &json!({}), &runs_as_root), vec![]);
    assert_eq!(evaluate(lv(Level::Restricted, Version::V1(23)), &json!({}), &runs_as_root).len(), 1);
    // Before 1.22 restricted had baseline's capabilities check only.
    let bare = json!({"containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true}}]});
    let got = detail(&evaluate(lv(Level::Restricted, Version::V1(21)), &json!({}), &bare));
    assert_eq!(got, "seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")");
    // Before 1.19 seccomp was annotations.
    let meta = json!({"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}});
    assert_eq!(detail(&evaluate(lv(Level::Baseline, Version::V1(18)), &meta, &bare)), "seccompProfile (forbidden annotation seccomp.security.alpha.kubernetes.io/pod=\"unconfined\")");
    // Newer than Flotilla's Kubernetes evaluates as latest; the name keeps what was asked.
    assert_eq!(evaluate(lv(Level::Restricted, Version::V1(40)), &json!({}), &bare), evaluate(RESTRICTED, &json!({}), &bare));
    assert_eq!(lv(Level::Baseline, Version::V1(40)).to_string(), "baseline:v1.40");
    assert_eq!(RESTRICTED.to_string(), "restricted:latest");
}

fn labels(pairs: &[(&str, &str)]) -> Value {
    Value::Object(pairs.iter().map(|(k, v)| (format!("pod-security.kubernetes.io/{k}"), json!(v))).collect())
}

#[test]
fn labels_give_the_policy() {
    let (p, errors) = policy(&json!({}));
    assert_eq!(p.enforce, PRIVILEGED_LATEST);
    assert!(errors.is_empty());
    // A stricter enforce level is also warned.
    let (p, _) = policy(&labels(&[("enforce", "restricted"), ("enforce-version", "v1.30")]));
    assert_eq!((p.enforce, p.warn, p.audit), (lv(Level::Restricted, Version::V1(30)), lv(Level::Restricted, Version::V1(30)), PRIVILEGED_LATEST));
    let (p, _) = policy(&labels(&[("enforce", "baseline"), ("warn", "restricted"), ("audit", "baseline"), ("audit-version", "latest")]));
    assert_eq!((p.enforce.level, p.warn.level, p.audit.level), (Level::Baseline, Level::Restricted, Level::Baseline));
    // Invalid values: enforce fails closed, warn and audit open, versions become latest.
    let (p, errors) = policy(&labels(&[("enforce", "strict"), ("warn", "nope"), ("warn-version", "v1.01"), ("audit-version", "1.2")]));
    assert_eq!((p.enforce.level, p.warn.level, p.warn.version), (Level::Restricted, Level::Privileged, Version::Latest));
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, [
        "metadata.labels[pod-security.kubernetes.io/enforce]",
        "metadata.labels[pod-security.kubernetes.io/audit-version]",
        "metadata.labels[pod-security.kubernetes.io/warn]",
        "metadata.labels[pod-security.kubernetes.io/warn-version]",
    ]);
    let c = causes(&errors);
    assert_eq!(c[0].to_string(), "metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": must be one of privileged, baseline, restricted");
    assert_eq!(c[1].message, "Invalid value: \"1.2\": must be \"latest\" or \"v1.x\"");
    assert_eq!(Version::parse("v1.0"), Some(Version::V1(0)));
    assert_eq!(Version::parse("v1."), None);
}

#[test]
fn decisions_enforce_warn_and_audit() {
    let bare = json!({"containers": [{"name": "c", "image": "x"}]});
    let hostpath = json!({"containers": [{"name": "c"}], "volumes": [{"name": "h", "hostPath": {"path": "/"}}]});
    let (p, e) = policy(&labels(&[("enforce", "restricted")]));
    let d = evaluate_policy(&p, &e, &json!({}), &bare, true);
    assert!(d.forbidden.as_deref().unwrap().starts_with("violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"c\" must set"), "{d:?}");
    assert!(d.warnings.is_empty(), "no warning on a refused request");
    assert_eq!(d.audit, [("pod-security.kubernetes.io/enforce-policy".to_string(), "restricted:latest".to_string())]);
    // A workload template is warned, never refused.
    let d = evaluate_policy(&p, &e, &json!({}), &bare, false);
    assert_eq!(d.forbidden, None);
    assert!(d.warnings[0].starts_with("would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"), "{d:?}");
    let (p, e) = policy(&labels(&[("warn", "baseline"), ("audit", "baseline")]));
    let d = evaluate_policy(&p, &e, &json!({}), &hostpath, true);
    assert_eq!(d.forbidden, None);
    assert_eq!(d.warnings, ["would violate PodSecurity \"baseline:latest\": hostPath volumes (volume \"h\")"]);
    assert!(d.audit.contains(&("pod-security.kubernetes.io/audit-violations".to_string(), "would violate PodSecurity \"baseline:latest\": hostPath volumes (volume \"h\")".to_string())));
    let (p, e) = policy(&labels(&[("enforce", "bogus")]));
    let d = evaluate_policy(&p, &e, &json!({}), &bare, true);
    assert!(d.forbidden.is_some());
    assert_eq!(d.audit[0].0, "error");
}

#[test]
fn templates_of_workloads() {
    let t = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}});
    let deploy = json!({"spec": {"template": t}});
    assert_eq!(pod_template("apps", "Deployment", &deploy), Some((&t["metadata"], &t["spec"])));
    let cron = json!({"spec": {"jobTemplate": {"spec": {"template": t}}}});
    assert_eq!(pod_template("batch", "CronJob", &cron), Some((&t["metadata"], &t["spec"])));
    assert_eq!(pod_template("batch", "Job", &json!({"spec": {}})), None);
    assert_eq!(pod_template("", "ConfigMap", &deploy), None);
}

#[test]
fn only_significant_pod_updates_are_evaluated() {
    let pod = json!({"metadata": {"annotations": {}}, "spec": {"containers": [{"name": "c", "image": "a"}]}});
    assert!(!significant_pod_update(&pod, &with(pod.clone(), "/metadata/annotations/x", json!("y"))));
    assert!(!significant_pod_update(&pod, &with(pod.clone(), "/spec/nodeName", json!("n"))));
    assert!(significant_pod_update(&pod, &with(pod.clone(), "/spec/containers/0/image", json!("b"))));
    assert!(significant_pod_update(&pod, &with(pod.clone(), "/spec/ephemeralContainers", json!([{"name": "d", "image": "x"}]))));
}

#[test]
fn stricter_enforce_label_warns_about_existing_pods() {
    let pod = |name: &str, spec: Value| json!({"metadata": {"name": name}, "spec": spec});
    let hostpath = json!({"containers": [good("c")], "volumes": [{"name": "h", "hostPath": {"path": "/"}}]});
    let pods = [pod("b", hostpath.clone()), pod("a", hostpath.clone()), pod("c", hostpath), pod("ok", json!({"containers": [good("c")]})), pod("z", json!({"containers": [{"name": "c"}]}))];
    let refs: Vec<&Value> = pods.iter().collect();
    let got = check_namespace("team", Some(&json!({})), &labels(&[("enforce", "restricted")]), &refs).unwrap();
    assert_eq!(got, [
        "existing pods in namespace \"team\" violate the new PodSecurity enforce level \"restricted:latest\"",
        "a (and 2 other pods): restricted volume types",
        "z: allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile",
    ]);
    // Unchanged, relaxed or privileged: nothing to check.
    let restricted = labels(&[("enforce", "restricted")]);
    assert!(check_namespace("team", Some(&restricted), &restricted, &refs).unwrap().is_empty());
    assert!(check_namespace("team", Some(&restricted), &labels(&[("enforce", "baseline")]), &refs).unwrap().is_empty());
    // Invalid labels: refused on create, and on update when they change.
    let bad = labels(&[("enforce", "strict")]);
    assert_eq!(check_namespace("team", None, &bad, &[]).unwrap_err().len(), 1);
    assert!(check_namespace("team", Some(&json!({})), &bad, &[]).is_err());
    assert!(check_namespace("team", Some(&bad), &json!({"pod-security.kubernetes.io/enforce": "strict", "x": "y"}), &[]).is_ok());
}

