//! Pod Security admission: Kubernetes' Pod Security Standards (privileged, baseline,
//! restricted), chosen per namespace by the labels `pod-security.kubernetes.io/enforce`,
//! `warn` and `audit` (each with `-version`: `latest` or `v1.x`). Pure functions over
//! JSON objects, and a thin shell at the end (`Api::admit_pod_security`, reading the
//! namespace's labels and pods) that `service.rs` calls on creates and updates.
//!
//! - enforce: a pod that violates the level is refused (403 Forbidden, Kubernetes'
//!   words: `violates PodSecurity "restricted:latest": REASON (DETAIL), ...`);
//! - warn: a `would violate PodSecurity ...` warning, for pods and for the pod templates
//!   of Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs and CronJobs (never
//!   enforced on those, as in Kubernetes: their pods are);
//! - audit: the `pod-security.kubernetes.io/audit-violations` annotation of the request's
//!   audit event ([`Decision::audit`]);
//! - labelling a namespace with a stricter enforce level warns about its existing pods
//!   that violate it; invalid label values are refused (422), as Kubernetes does.
//!
//! Invariants: the checks, their order (baseline IDs sorted, then restricted IDs sorted;
//! restricted checks replace the baseline checks they override), their reasons and
//! details are those of k8s.io/pod-security-admission for the version asked, a version
//! newer than [`LATEST_MINOR`] (the Kubernetes version Flotilla serves) and `latest`
//! evaluate as that version. A pod update is evaluated only when it is significant
//! (containers added or removed, an image changed), as Kubernetes does.

use flotilla_api::selector::go_quote;
use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

/// The newest minor version whose checks exist here (`latest`): Kubernetes 1.32.
pub(crate) const LATEST_MINOR: u32 = 32;

const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";

/// A Pod Security Standards level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// A policy version: `latest` or `v1.MINOR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    Latest,
    V1(u32),
}

impl Version {
    fn parse(s: &str) -> Option<Version> {
        if s == "latest" {
            return Some(Version::Latest);
        }
        let minor = s.strip_prefix("v1.")?;
        if minor.is_empty() || !minor.bytes().all(|b| b.is_ascii_digit()) || (minor.len() > 1 && minor.starts_with('0')) {
            return None;
        }
        minor.parse().ok().map(Version::V1)
    }

    /// The minor version whose checks apply.
    fn minor(self) -> u32 {
        match self {
            Version::Latest => LATEST_MINOR,
            Version::V1(m) => m.min(LATEST_MINOR),
        }
    }
}

/// A level at a version, written as Kubernetes writes it (`restricted:latest`,
/// `baseline:v1.30`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LevelVersion {
    pub level: Level,
    pub version: Version,
}

impl fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Version::Latest => write!(f, "{}:latest", self.level.name()),
            Version::V1(m) => write!(f, "{}:v1.{m}", self.level.name()),
        }
    }
}

const PRIVILEGED_LATEST: LevelVersion = LevelVersion { level: Level::Privileged, version: Version::Latest };

/// A namespace's policy for each mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Policy {
    pub enforce: LevelVersion,
    pub warn: LevelVersion,
    pub audit: LevelVersion,
}

/// A label of the namespace with a value Pod Security does not accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LabelError {
    /// `metadata.labels[pod-security.kubernetes.io/enforce]`.
    pub field: String,
    pub value: String,
    pub message: &'static str,
}

/// The policy a namespace's labels (its `metadata.labels`) ask for. Invalid values come
/// back as errors and evaluate as Kubernetes evaluates them: an invalid enforce level
/// as restricted (fail closed), invalid warn and audit levels as privileged, an invalid
/// version as latest.
pub(crate) fn policy(labels: &Value) -> (Policy, Vec<LabelError>) {
    let mut p = Policy { enforce: PRIVILEGED_LATEST, warn: PRIVILEGED_LATEST, audit: PRIVILEGED_LATEST };
    let mut errors = Vec::new();
    let label = |mode: &str| labels[format!("{LABEL_PREFIX}{mode}")].as_str().map(str::to_string);
    let mut error = |mode: &str, value: String, message: &'static str| {
        errors.push(LabelError { field: format!("metadata.labels[{LABEL_PREFIX}{mode}]"), value, message });
    };
    const LEVELS: &str = "must be one of privileged, baseline, restricted";
    const VERSIONS: &str = "must be \"latest\" or \"v1.x\"";
    let mut has_enforce_level = false;
    let (mut has_warn_level, mut has_warn_version) = (false, false);
    for (mode, invalid_level) in [("enforce", Level::Restricted), ("audit", Level::Privileged), ("warn", Level::Privileged)] {
        let lv = match mode {
            "enforce" => &mut p.enforce,
            "audit" => &mut p.audit,
            _ => &mut p.warn,
        };
        if let Some(v) = label(mode) {
            match Level::parse(&v) {
                Some(l) => {
                    lv.level = l;
                    has_enforce_level |= mode == "enforce";
                }
                None => {
                    lv.level = invalid_level;
                    error(mode, v, LEVELS);
                }
            }
            has_warn_level |= mode == "warn";
        }
        if let Some(v) = label(&format!("{mode}-version")) {
            match Version::parse(&v) {
                Some(version) => lv.version = version,
                None => {
                    lv.version = Version::Latest;
                    error(&format!("{mode}-version"), v, VERSIONS);
                }
            }
            has_warn_version |= mode == "warn";
        }
    }
    // Warn defaults to a stricter enforce level.
    if !has_warn_level && has_enforce_level && p.enforce.level > p.warn.level {
        p.warn.level = p.enforce.level;
        if !has_warn_version {
            p.warn.version = p.enforce.version;
        }
    }
    (p, errors)
}

/// One failed check: a reason and its detail (may be empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Violation {
    pub reason: String,
    pub detail: String,
}

/// `reason (detail), reason, ...` as Kubernetes' ForbiddenDetail joins them.
pub(crate) fn detail(violations: &[Violation]) -> String {
    let parts: Vec<String> = violations
        .iter()
        .map(|v| if v.detail.is_empty() { v.reason.clone() } else { format!("{} ({})", v.reason, v.detail) })
        .collect();
    parts.join(", ")
}

/// The reasons alone, comma separated (the namespace warnings use them).
fn reasons(violations: &[Violation]) -> String {
    violations.iter().map(|v| v.reason.as_str()).collect::<Vec<_>>().join(", ")
}

fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let parts: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    format!("\"{}\"", parts.join("\", \""))
}

fn plural(singular: &'static str, plural: &'static str, n: usize) -> &'static str {
    if n == 1 { singular } else { plural }
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// Init containers, containers, ephemeral containers: the order Kubernetes visits them.
fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"].into_iter().flat_map(move |f| spec[f].as_array().into_iter().flatten())
}

fn name(c: &Value) -> String {
    str_of(&c["name"]).to_string()
}

fn windows(spec: &Value) -> bool {
    spec["os"]["name"] == "windows"
}

/// `pod and containers "a", "b"` style setter lists.
fn setters(pod: bool, bad_containers: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    if pod {
        out.push("pod".to_string());
    }
    if !bad_containers.is_empty() {
        out.push(format!("{} {}", plural("container", "containers", bad_containers.len()), join_quote(bad_containers)));
    }
    out
}

type Check = fn(&Value, &Value, u32) -> Option<Violation>;

fn violation(reason: impl Into<String>, detail: impl Into<String>) -> Option<Violation> {
    Some(Violation { reason: reason.into(), detail: detail.into() })
}

// ---- baseline ----------------------------------------------------------------------

fn app_armor_profile(meta: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let allowed = |t: &Value| t == "RuntimeDefault" || t == "Localhost";
    let mut values = BTreeSet::new();
    let pod_profile = &spec["securityContext"]["appArmorProfile"];
    let pod_bad = pod_profile.is_object() && !allowed(&pod_profile["type"]);
    if pod_bad {
        values.insert(str_of(&pod_profile["type"]).to_string());
    }
    let mut bad = Vec::new();
    for c in containers(spec) {
        let p = &c["securityContext"]["appArmorProfile"];
        if p.is_object() && !allowed(&p["type"]) {
            bad.push(name(c));
            values.insert(str_of(&p["type"]).to_string());
        }
    }
    let mut setters = setters(pod_bad, &bad);
    let mut values: Vec<String> = values.into_iter().collect();
    let mut annotations: Vec<String> = meta["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, v)| {
            let v = str_of(v);
            k.starts_with("container.apparmor.security.beta.kubernetes.io/") && !(v.is_empty() || v == "runtime/default" || v.starts_with("localhost/"))
        })
        .map(|(k, v)| format!("{k}={}", go_quote(str_of(v))))
        .collect();
    if !annotations.is_empty() {
        annotations.sort();
        setters.push(plural("annotation", "annotations", annotations.len()).to_string());
        values.extend(annotations);
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        plural("forbidden AppArmor profile", "forbidden AppArmor profiles", values.len()),
        format!("{} must not set AppArmor profile type to {}", setters.join(" and "), join_quote(&values)),
    )
}

const BASELINE_CAPABILITIES: [&str; 13] =
    ["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"];

fn added_capabilities(c: &Value) -> impl Iterator<Item = &str> {
    c["securityContext"]["capabilities"]["add"].as_array().into_iter().flatten().map(str_of)
}

fn capabilities_baseline(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let (mut bad, mut caps) = (Vec::new(), BTreeSet::new());
    for c in containers(spec) {
        let extra: Vec<&str> = added_capabilities(c).filter(|a| !BASELINE_CAPABILITIES.contains(a)).collect();
        if !extra.is_empty() {
            bad.push(name(c));
            caps.extend(extra.into_iter().map(str::to_string));
        }
    }
    if bad.is_empty() {
        return None;
    }
    let caps: Vec<String> = caps.into_iter().collect();
    violation(
        "non-default capabilities",
        format!("{} {} must not include {} in securityContext.capabilities.add", plural("container", "containers", bad.len()), join_quote(&bad), join_quote(&caps)),
    )
}

fn host_namespaces(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let set: Vec<&str> = [("hostNetwork", "hostNetwork=true"), ("hostPID", "hostPID=true"), ("hostIPC", "hostIPC=true")]
        .into_iter()
        .filter(|(f, _)| spec[*f] == true)
        .map(|(_, s)| s)
        .collect();
    if set.is_empty() { None } else { violation("host namespaces", set.join(", ")) }
}

fn volumes(spec: &Value) -> impl Iterator<Item = &Value> {
    spec["volumes"].as_array().into_iter().flatten()
}

fn host_path_volumes(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let bad: Vec<String> = volumes(spec).filter(|v| v.get("hostPath").is_some_and(|h| !h.is_null())).map(name).collect();
    if bad.is_empty() {
        return None;
    }
    violation("hostPath volumes", format!("{} {}", plural("volume", "volumes", bad.len()), join_quote(&bad)))
}

fn host_ports(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let (mut bad, mut ports) = (Vec::new(), BTreeSet::new());
    for c in containers(spec) {
        let used: Vec<String> = c["ports"].as_array().into_iter().flatten().filter_map(|p| p["hostPort"].as_i64()).filter(|p| *p != 0).map(|p| p.to_string()).collect();
        if !used.is_empty() {
            bad.push(name(c));
            ports.extend(used);
        }
    }
    if bad.is_empty() {
        return None;
    }
    let ports: Vec<String> = ports.into_iter().collect();
    violation(
        "hostPort",
        format!(
            "{} {} {} {} {}",
            plural("container", "containers", bad.len()),
            join_quote(&bad),
            plural("uses", "use", bad.len()),
            plural("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
        ),
    )
}

fn privileged(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let bad: Vec<String> = containers(spec).filter(|c| c["securityContext"]["privileged"] == true).map(name).collect();
    if bad.is_empty() {
        return None;
    }
    violation("privileged", format!("{} {} must not set securityContext.privileged=true", plural("container", "containers", bad.len()), join_quote(&bad)))
}

fn proc_mount(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let (mut bad, mut types) = (Vec::new(), BTreeSet::new());
    for c in containers(spec) {
        if let Some(t) = c["securityContext"]["procMount"].as_str().filter(|t| *t != "Default") {
            bad.push(name(c));
            types.insert(t.to_string());
        }
    }
    if bad.is_empty() {
        return None;
    }
    let types: Vec<String> = types.into_iter().collect();
    violation(
        "procMount",
        format!("{} {} must not set securityContext.procMount to {}", plural("container", "containers", bad.len()), join_quote(&bad), join_quote(&types)),
    )
}

fn se_linux_options(_: &Value, spec: &Value, minor: u32) -> Option<Violation> {
    let mut allowed = vec!["", "container_t", "container_init_t", "container_kvm_t"];
    if minor >= 31 {
        allowed.push("container_engine_t");
    }
    let (mut bad_types, mut set_user, mut set_role) = (BTreeSet::new(), false, false);
    let mut valid = |o: &Value| {
        let mut ok = true;
        let t = str_of(&o["type"]);
        if !allowed.contains(&t) {
            ok = false;
            bad_types.insert(t.to_string());
        }
        if !str_of(&o["user"]).is_empty() {
            ok = false;
            set_user = true;
        }
        if !str_of(&o["role"]).is_empty() {
            ok = false;
            set_role = true;
        }
        ok
    };
    let pod_opts = &spec["securityContext"]["seLinuxOptions"];
    let pod_bad = pod_opts.is_object() && !valid(pod_opts);
    let mut bad = Vec::new();
    for c in containers(spec) {
        let o = &c["securityContext"]["seLinuxOptions"];
        if o.is_object() && !valid(o) {
            bad.push(name(c));
        }
    }
    let setters = setters(pod_bad, &bad);
    if setters.is_empty() {
        return None;
    }
    let mut data = Vec::new();
    if !bad_types.is_empty() {
        let types: Vec<String> = bad_types.into_iter().collect();
        data.push(format!("{} {}", plural("type", "types", types.len()), join_quote(&types)));
    }
    if set_user {
        data.push("user may not be set".to_string());
    }
    if set_role {
        data.push("role may not be set".to_string());
    }
    violation("seLinuxOptions", format!("{} set forbidden securityContext.seLinuxOptions: {}", setters.join(" and "), data.join("; ")))
}

fn valid_seccomp(t: &Value) -> bool {
    t == "Localhost" || t == "RuntimeDefault"
}

fn seccomp_profile_baseline(meta: &Value, spec: &Value, minor: u32) -> Option<Violation> {
    if minor < 19 {
        let valid = |v: &str| v == "runtime/default" || v == "docker/default" || v.starts_with("localhost/");
        let mut forbidden = BTreeSet::new();
        let ann = &meta["annotations"];
        let pod_key = "seccomp.security.alpha.kubernetes.io/pod";
        if let Some(v) = ann[pod_key].as_str().filter(|v| !valid(v)) {
            forbidden.insert(format!("{pod_key}={}", go_quote(v)));
        }
        for c in containers(spec) {
            let key = format!("container.seccomp.security.alpha.kubernetes.io/{}", name(c));
            if let Some(v) = ann[&key].as_str().filter(|v| !valid(v)) {
                forbidden.insert(format!("{key}={}", go_quote(v)));
            }
        }
        if forbidden.is_empty() {
            return None;
        }
        let list: Vec<String> = forbidden.into_iter().collect();
        return violation("seccompProfile", format!("forbidden {} {}", plural("annotation", "annotations", list.len()), list.join(", ")));
    }
    seccomp_fields(spec, false)
}

/// The seccompProfile field checks; `required`: restricted (each container must end up
/// with a valid type).
fn seccomp_fields(spec: &Value, required: bool) -> Option<Violation> {
    let mut values = BTreeSet::new();
    let pod_profile = &spec["securityContext"]["seccompProfile"];
    let (mut pod_bad, mut pod_set) = (false, false);
    if pod_profile.is_object() {
        if valid_seccomp(&pod_profile["type"]) {
            pod_set = true;
        } else {
            pod_bad = true;
            values.insert(str_of(&pod_profile["type"]).to_string());
        }
    }
    let (mut bad, mut implicit) = (Vec::new(), Vec::new());
    for c in containers(spec) {
        let p = &c["securityContext"]["seccompProfile"];
        if p.is_object() {
            if !valid_seccomp(&p["type"]) {
                bad.push(name(c));
                values.insert(str_of(&p["type"]).to_string());
            }
        } else if !pod_set {
            implicit.push(name(c));
        }
    }
    let setters = setters(pod_bad, &bad);
    if !setters.is_empty() {
        let values: Vec<String> = values.into_iter().collect();
        return violation("seccompProfile", format!("{} must not set securityContext.seccompProfile.type to {}", setters.join(" and "), join_quote(&values)));
    }
    if required && !implicit.is_empty() {
        return violation(
            "seccompProfile",
            format!(
                "pod or {} {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                plural("container", "containers", implicit.len()),
                join_quote(&implicit)
            ),
        );
    }
    None
}

fn sysctls(_: &Value, spec: &Value, minor: u32) -> Option<Violation> {
    let mut allowed = vec![
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
    ];
    if minor >= 27 {
        allowed.push("net.ipv4.ip_local_reserved_ports");
    }
    if minor >= 29 {
        allowed.extend(["net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"]);
    }
    if minor >= 32 {
        allowed.extend(["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"]);
    }
    let bad: Vec<&str> = spec["securityContext"]["sysctls"].as_array().into_iter().flatten().map(|s| str_of(&s["name"])).filter(|n| !allowed.contains(n)).collect();
    if bad.is_empty() { None } else { violation("forbidden sysctls", bad.join(", ")) }
}

fn windows_host_process(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let pod = spec["securityContext"]["windowsOptions"]["hostProcess"] == true;
    let bad: Vec<String> = containers(spec).filter(|c| c["securityContext"]["windowsOptions"]["hostProcess"] == true).map(name).collect();
    let setters = setters(pod, &bad);
    if setters.is_empty() {
        return None;
    }
    violation("hostProcess", format!("{} must not set securityContext.windowsOptions.hostProcess=true", setters.join(" and ")))
}

// ---- restricted --------------------------------------------------------------------

fn allow_privilege_escalation(_: &Value, spec: &Value, minor: u32) -> Option<Violation> {
    if minor >= 25 && windows(spec) {
        return None;
    }
    let bad: Vec<String> = containers(spec).filter(|c| c["securityContext"]["allowPrivilegeEscalation"] != false).map(name).collect();
    if bad.is_empty() {
        return None;
    }
    violation(
        "allowPrivilegeEscalation != false",
        format!("{} {} must set securityContext.allowPrivilegeEscalation=false", plural("container", "containers", bad.len()), join_quote(&bad)),
    )
}

fn capabilities_restricted(_: &Value, spec: &Value, minor: u32) -> Option<Violation> {
    if minor >= 25 && windows(spec) {
        return None;
    }
    let (mut missing_drop, mut adding, mut forbidden) = (Vec::new(), Vec::new(), BTreeSet::new());
    for c in containers(spec) {
        let caps = &c["securityContext"]["capabilities"];
        if !caps["drop"].as_array().is_some_and(|d| d.iter().any(|x| x == "ALL")) {
            missing_drop.push(name(c));
        }
        let extra: Vec<&str> = added_capabilities(c).filter(|a| *a != "NET_BIND_SERVICE").collect();
        if !extra.is_empty() {
            adding.push(name(c));
            forbidden.extend(extra.into_iter().map(str::to_string));
        }
    }
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details.push(format!(
            "{} {} must set securityContext.capabilities.drop=[\"ALL\"]",
            plural("container", "containers", missing_drop.len()),
            join_quote(&missing_drop)
        ));
    }
    if !adding.is_empty() {
        let forbidden: Vec<String> = forbidden.into_iter().collect();
        details.push(format!(
            "{} {} must not include {} in securityContext.capabilities.add",
            plural("container", "containers", adding.len()),
            join_quote(&adding),
            join_quote(&forbidden)
        ));
    }
    if details.is_empty() { None } else { violation("unrestricted capabilities", details.join("; ")) }
}

/// Volume types restricted allows; anything else is named by its field.
const RESTRICTED_VOLUME_TYPES: [&str; 9] = ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image", "persistentVolumeClaim", "projected", "secret"];
const OTHER_VOLUME_TYPES: [&str; 21] = [
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
];

fn restricted_volumes(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let has = |v: &Value, t: &str| v.get(t).is_some_and(|x| !x.is_null());
    let (mut bad, mut types) = (Vec::new(), BTreeSet::new());
    for v in volumes(spec) {
        // A volume without a source is defaulted to an emptyDir.
        let sourceless = v.as_object().is_some_and(|o| o.keys().all(|k| k == "name"));
        if sourceless || RESTRICTED_VOLUME_TYPES.iter().any(|t| has(v, t)) {
            continue;
        }
        bad.push(name(v));
        types.insert(OTHER_VOLUME_TYPES.iter().find(|t| has(v, t)).copied().unwrap_or("unknown").to_string());
    }
    if bad.is_empty() {
        return None;
    }
    let types: Vec<String> = types.into_iter().collect();
    violation(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            plural("volume", "volumes", bad.len()),
            join_quote(&bad),
            plural("uses", "use", bad.len()),
            plural("restricted volume type", "restricted volume types", types.len()),
            join_quote(&types)
        ),
    )
}

fn run_as_non_root(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let mut bad_setters = Vec::new();
    let pod = &spec["securityContext"]["runAsNonRoot"];
    let pod_non_root = *pod == true;
    if *pod == false {
        bad_setters.push("pod".to_string());
    }
    let (mut explicit, mut implicit) = (Vec::new(), Vec::new());
    for c in containers(spec) {
        match c["securityContext"]["runAsNonRoot"].as_bool() {
            Some(false) => explicit.push(name(c)),
            Some(true) => {}
            None if !pod_non_root => implicit.push(name(c)),
            None => {}
        }
    }
    if !explicit.is_empty() {
        bad_setters.push(format!("{} {}", plural("container", "containers", explicit.len()), join_quote(&explicit)));
    }
    if !bad_setters.is_empty() {
        return violation("runAsNonRoot != true", format!("{} must not set securityContext.runAsNonRoot=false", bad_setters.join(" and ")));
    }
    if !implicit.is_empty() {
        return violation(
            "runAsNonRoot != true",
            format!("pod or {} {} must set securityContext.runAsNonRoot=true", plural("container", "containers", implicit.len()), join_quote(&implicit)),
        );
    }
    None
}

fn run_as_user(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let pod = spec["securityContext"]["runAsUser"] == 0;
    let bad: Vec<String> = containers(spec).filter(|c| c["securityContext"]["runAsUser"] == 0).map(name).collect();
    let setters = setters(pod, &bad);
    if setters.is_empty() {
        return None;
    }
    violation("runAsUser=0", format!("{} must not set runAsUser=0", setters.join(" and ")))
}

fn seccomp_profile_restricted(_: &Value, spec: &Value, minor: u32) -> Option<Violation> {
    if minor >= 25 && windows(spec) {
        return None;
    }
    seccomp_fields(spec, true)
}

/// A check: its ID, level, the first minor version it exists at, and the baseline check
/// it replaces under restricted (from that version).
struct CheckDef {
    id: &'static str,
    level: Level,
    since: u32,
    overrides: Option<(&'static str, u32)>,
    check: Check,
}

/// Baseline checks sorted by ID, then restricted checks sorted by ID: Kubernetes' order.
const CHECKS: [CheckDef; 17] = [
    CheckDef { id: "appArmorProfile", level: Level::Baseline, since: 0, overrides: None, check: app_armor_profile },
    CheckDef { id: "capabilities_baseline", level: Level::Baseline, since: 0, overrides: None, check: capabilities_baseline },
    CheckDef { id: "hostNamespaces", level: Level::Baseline, since: 0, overrides: None, check: host_namespaces },
    CheckDef { id: "hostPathVolumes", level: Level::Baseline, since: 0, overrides: None, check: host_path_volumes },
    CheckDef { id: "hostPorts", level: Level::Baseline, since: 0, overrides: None, check: host_ports },
    CheckDef { id: "privileged", level: Level::Baseline, since: 0, overrides: None, check: privileged },
    CheckDef { id: "procMount", level: Level::Baseline, since: 0, overrides: None, check: proc_mount },
    CheckDef { id: "seLinuxOptions", level: Level::Baseline, since: 0, overrides: None, check: se_linux_options },
    CheckDef { id: "seccompProfile_baseline", level: Level::Baseline, since: 0, overrides: None, check: seccomp_profile_baseline },
    CheckDef { id: "sysctls", level: Level::Baseline, since: 0, overrides: None, check: sysctls },
    CheckDef { id: "windowsHostProcess", level: Level::Baseline, since: 0, overrides: None, check: windows_host_process },
    CheckDef { id: "allowPrivilegeEscalation", level: Level::Restricted, since: 8, overrides: None, check: allow_privilege_escalation },
    CheckDef {
        id: "capabilities_restricted",
        level: Level::Restricted,
        since: 22,
        overrides: Some(("capabilities_baseline", 22)),
        check: capabilities_restricted,
    },
    CheckDef { id: "restrictedVolumes", level: Level::Restricted, since: 0, overrides: Some(("hostPathVolumes", 0)), check: restricted_volumes },
    CheckDef { id: "runAsNonRoot", level: Level::Restricted, since: 0, overrides: None, check: run_as_non_root },
    CheckDef { id: "runAsUser", level: Level::Restricted, since: 23, overrides: None, check: run_as_user },
    CheckDef {
        id: "seccompProfile_restricted",
        level: Level::Restricted,
        since: 19,
        overrides: Some(("seccompProfile_baseline", 19)),
        check: seccomp_profile_restricted,
    },
];

/// What a pod (its `metadata` and `spec`) violates of `lv`, in Kubernetes' order.
pub(crate) fn evaluate(lv: LevelVersion, meta: &Value, spec: &Value) -> Vec<Violation> {
    if lv.level == Level::Privileged {
        return Vec::new();
    }
    let minor = lv.version.minor();
    let active = |c: &CheckDef| c.level <= lv.level && c.since <= minor;
    let overridden = |id: &str| lv.level == Level::Restricted && CHECKS.iter().any(|c| active(c) && c.overrides.is_some_and(|(o, since)| o == id && since <= minor));
    CHECKS.iter().filter(|c| active(c) && !overridden(c.id)).filter_map(|c| (c.check)(meta, spec, minor)).collect()
}

/// What Pod Security decided about one write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Decision {
    /// Refused: the message after `KIND "NAME" is forbidden: `.
    pub forbidden: Option<String>,
    /// `Warning` headers.
    pub warnings: Vec<String>,
    /// Annotations of the request's audit event (`pod-security.kubernetes.io/...`).
    pub audit: Vec<(String, String)>,
}

/// Evaluates a pod or pod template against the namespace's policy; `enforce` only for
/// pods (workload templates are warned and audited only).
pub(crate) fn evaluate_policy(policy: &Policy, label_errors: &[LabelError], meta: &Value, spec: &Value, enforce: bool) -> Decision {
    let mut d = Decision::default();
    if !label_errors.is_empty() {
        let msgs: Vec<String> = label_errors.iter().map(|e| format!("{}: Invalid value: {}: {}", e.field, go_quote(&e.value), e.message)).collect();
        d.audit.push(("error".into(), format!("Failed to parse policy: {}", aggregate(&msgs))));
    }
    if enforce {
        d.audit.push((format!("{LABEL_PREFIX}enforce-policy"), policy.enforce.to_string()));
        let v = evaluate(policy.enforce, meta, spec);
        if !v.is_empty() {
            d.forbidden = Some(format!("violates PodSecurity {}: {}", go_quote(&policy.enforce.to_string()), detail(&v)));
        }
    }
    let v = evaluate(policy.audit, meta, spec);
    if !v.is_empty() {
        d.audit.push((format!("{LABEL_PREFIX}audit-violations"), format!("would violate PodSecurity {}: {}", go_quote(&policy.audit.to_string()), detail(&v))));
    }
    if d.forbidden.is_none() {
        let v = evaluate(policy.warn, meta, spec);
        if !v.is_empty() {
            d.warnings.push(format!("would violate PodSecurity {}: {}", go_quote(&policy.warn.to_string()), detail(&v)));
        }
    }
    d
}

/// Kubernetes' aggregate of several errors: one alone, else `[a, b]`.
fn aggregate(msgs: &[String]) -> String {
    if msgs.len() == 1 { msgs[0].clone() } else { format!("[{}]", msgs.join(", ")) }
}

/// The pod template of a workload kind (group, kind): its metadata and spec.
pub(crate) fn pod_template<'a>(group: &str, kind: &str, obj: &'a Value) -> Option<(&'a Value, &'a Value)> {
    let template = match (group, kind) {
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") | ("", "ReplicationController" | "PodTemplate") | ("batch", "Job") => {
            if kind == "PodTemplate" { &obj["template"] } else { &obj["spec"]["template"] }
        }
        ("batch", "CronJob") => &obj["spec"]["jobTemplate"]["spec"]["template"],
        _ => return None,
    };
    template.is_object().then(|| (&template["metadata"], &template["spec"]))
}

/// Whether a pod update asks for a new evaluation (Kubernetes: containers added or
/// removed, an image changed, an ephemeral container added or its image changed).
pub(crate) fn significant_pod_update(old: &Value, new: &Value) -> bool {
    let list = |p: &Value, f: &str| p["spec"][f].as_array().cloned().unwrap_or_default();
    for f in ["containers", "initContainers"] {
        let (o, n) = (list(old, f), list(new, f));
        if o.len() != n.len() || o.iter().zip(&n).any(|(a, b)| a["image"] != b["image"]) {
            return true;
        }
    }
    let old_eph = list(old, "ephemeralContainers");
    list(new, "ephemeralContainers").iter().any(|c| !old_eph.iter().any(|o| o["name"] == c["name"] && o["image"] == c["image"]))
}

/// A namespace create or update: invalid labels (the Err is the 422's causes; on update
/// only when they changed), else warnings naming existing `pods` that violate a new,
/// stricter enforce level (`old_labels` None on create).
pub(crate) fn check_namespace(namespace: &str, old_labels: Option<&Value>, new_labels: &Value, pods: &[&Value]) -> Result<Vec<String>, Vec<LabelError>> {
    let (new, errors) = policy(new_labels);
    let Some(old_labels) = old_labels else {
        return if errors.is_empty() { Ok(Vec::new()) } else { Err(errors) };
    };
    let (old, old_errors) = policy(old_labels);
    if !errors.is_empty() && errors != old_errors {
        return Err(errors);
    }
    if new.enforce == old.enforce || new.enforce.level == Level::Privileged || (new.enforce.version == old.enforce.version && new.enforce.level <= old.enforce.level) {
        return Ok(Vec::new());
    }
    // Identical reasons share one warning, named after the first pod by name.
    let mut seen: Vec<(String, String, usize)> = Vec::new();
    for p in pods {
        let v = evaluate(new.enforce, &p["metadata"], &p["spec"]);
        if v.is_empty() {
            continue;
        }
        let why = reasons(&v);
        let pod = str_of(&p["metadata"]["name"]).to_string();
        match seen.iter_mut().find(|(w, _, _)| *w == why) {
            Some((_, first, n)) => {
                *n += 1;
                if pod < *first {
                    *first = pod;
                }
            }
            None => seen.push((why, pod, 1)),
        }
    }
    if seen.is_empty() {
        return Ok(Vec::new());
    }
    let mut warnings = vec![format!("existing pods in namespace {} violate the new PodSecurity enforce level {}", go_quote(namespace), go_quote(&new.enforce.to_string()))];
    let mut per_pod: Vec<String> = seen
        .into_iter()
        .map(|(why, pod, n)| match n {
            1 => format!("{pod}: {why}"),
            2 => format!("{pod} (and 1 other pod): {why}"),
            _ => format!("{pod} (and {} other pods): {why}", n - 1),
        })
        .collect();
    per_pod.sort();
    warnings.extend(per_pod);
    Ok(warnings)
}

/// Invalid labels as the causes of a 422 Invalid on the namespace.
pub(crate) fn causes(errors: &[LabelError]) -> Vec<flotilla_api::validation::Cause> {
    errors
        .iter()
        .map(|e| flotilla_api::validation::Cause { field: e.field.clone(), reason: "FieldValueInvalid", message: format!("Invalid value: {}: {}", go_quote(&e.value), e.message) })
        .collect()
}

// ---- the shell: what `Api::create` and `Api::update` call -----------------------------

impl super::service::Api {
    /// Pod Security admission of a create (`old` None) or update of `obj` in `ns`: Err 403
    /// when the namespace enforces a level the pod violates (422 for a Namespace with
    /// invalid labels), else the warnings. Workload updates are evaluated only when their
    /// pod template changed (scale, status and controller annotations never warn again).
    pub(crate) fn admit_pod_security(&self, info: &super::resources::ResourceInfo, ns: Option<&str>, old: Option<&Value>, obj: &Value) -> Result<Vec<String>, super::error::ApiError> {
        use super::service::{key, prefix};
        let (group, kind) = (info.group, info.kind);
        let name = str_of(&obj["metadata"]["name"]);
        if group.is_empty() && kind == "Namespace" {
            let pods_info = super::resources::find("", "v1", "pods").expect("pods served");
            let pods = match old {
                Some(_) => self.store.list_keys(&prefix(pods_info, Some(name))),
                None => Vec::new(),
            };
            let pods: Vec<&Value> = pods.iter().map(|(_, s)| &s.value).collect();
            return check_namespace(name, old.map(|o| &o["metadata"]["labels"]), &obj["metadata"]["labels"], &pods).map_err(|errors| {
                let causes = causes(&errors);
                let message = flotilla_api::validation::invalid_message(kind, name, &causes);
                let causes = causes.into_iter().map(|c| super::error::Cause { reason: c.reason.to_string(), message: c.message, field: c.field }).collect();
                super::error::ApiError::invalid(info, name, message, causes)
            });
        }
        let is_pod = group.is_empty() && kind == "Pod";
        let (meta, spec) = match (is_pod, ns) {
            (_, None) => return Ok(Vec::new()),
            (true, _) if old.is_some_and(|o| !significant_pod_update(o, obj)) => return Ok(Vec::new()),
            (true, _) => (&obj["metadata"], &obj["spec"]),
            (false, _) => match pod_template(group, kind, obj) {
                Some(t) if old.and_then(|o| pod_template(group, kind, o)) != Some(t) => t,
                _ => return Ok(Vec::new()),
            },
        };
        let ns_info = super::resources::find("", "v1", "namespaces").expect("namespaces served");
        let Some(namespace) = self.store.get(&key(ns_info, None, ns.unwrap_or_default())) else { return Ok(Vec::new()) };
        let (policy, errors) = policy(&namespace.value["metadata"]["labels"]);
        if errors.is_empty() && [policy.enforce, policy.warn, policy.audit].iter().all(|lv| lv.level == Level::Privileged) {
            return Ok(Vec::new());
        }
        let d = evaluate_policy(&policy, &errors, meta, spec, is_pod);
        for (k, v) in d.audit {
            super::audit::annotate(k, v);
        }
        match d.forbidden {
            Some(why) => Err(super::error::ApiError::forbidden(format!("{} \"{name}\" is forbidden: {why}", info.qualified_plural()))),
            None => Ok(d.warnings),
        }
    }
}

#[cfg(test)]
mod tests;
