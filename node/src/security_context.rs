//! A container's securityContext as what its guest is granted (pure; applied by
//! `pod_worker/setup.rs` and `volumes.rs`). A guest has no root filesystem, no processes
//! and no kernel capabilities, so the fields that mean something are mapped onto WASI:
//!
//! - `readOnlyRootFilesystem: true` makes every preopen of the container read-only
//!   (emptyDir included); `readOnly` volumeMounts already are.
//! - The container's network (outgoing wasi:http, wasi:sockets TCP, name lookup) is the
//!   one capability Flotilla maps, and it is `NET_RAW`'s: the capability set starts as
//!   the runtime default (which holds NET_RAW) and is changed as containerd changes it
//!   (`add: [ALL]` → everything, `drop: [ALL]` → nothing, then each added name, then each
//!   dropped name; names in any case, with or without `CAP_`); the network stays only if
//!   NET_RAW is left. `privileged: true` keeps everything. An HTTP container whose network
//!   is dropped still serves the requests the node hands it (no guest socket is involved).
//! - runAsUser / runAsGroup (the container's, else the pod's) own what the guest creates
//!   in its volumes; the pod's fsGroup owns its volume directories (`volumes.rs`).

use serde_json::Value;

use crate::runtime::Owner;

/// What one container's securityContext grants its guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Grants {
    /// Every mount read-only.
    pub read_only: bool,
    /// The pod network (outgoing HTTP, sockets, name lookup) is granted.
    pub network: bool,
    /// The owner of files and directories the guest creates.
    pub owner: Option<Owner>,
}

fn id(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

/// A capability name as containerd compares it: upper case, without `CAP_`.
fn capability(v: &Value) -> String {
    let upper = v.as_str().unwrap_or("").to_ascii_uppercase();
    upper.strip_prefix("CAP_").map(str::to_string).unwrap_or(upper)
}

/// Whether NET_RAW is left after the container's capabilities are applied.
fn keeps_net_raw(sc: &Value) -> bool {
    if sc["privileged"].as_bool() == Some(true) {
        return true;
    }
    let names = |field: &str| -> Vec<String> { sc["capabilities"][field].as_array().into_iter().flatten().map(capability).collect() };
    let (add, drop) = (names("add"), names("drop"));
    let mut net_raw = true;
    if add.iter().any(|c| c == "ALL") {
        net_raw = true;
    }
    if drop.iter().any(|c| c == "ALL") {
        net_raw = false;
    }
    if add.iter().any(|c| c == "NET_RAW") {
        net_raw = true;
    }
    if drop.iter().any(|c| c == "NET_RAW") {
        net_raw = false;
    }
    net_raw
}

/// What `container` (an element of the pod's containers) is granted.
pub(crate) fn grants(pod: &Value, container: &Value) -> Grants {
    let sc = &container["securityContext"];
    let pod_sc = &pod["spec"]["securityContext"];
    let uid = id(&sc["runAsUser"]).or_else(|| id(&pod_sc["runAsUser"]));
    let gid = id(&sc["runAsGroup"]).or_else(|| id(&pod_sc["runAsGroup"]));
    Grants {
        read_only: sc["readOnlyRootFilesystem"].as_bool() == Some(true),
        network: keeps_net_raw(sc),
        owner: (uid.is_some() || gid.is_some()).then_some(Owner { uid, gid }),
    }
}

/// The pod's fsGroup: the group of its volume directories.
pub(crate) fn fs_group(pod: &Value) -> Option<u32> {
    id(&pod["spec"]["securityContext"]["fsGroup"])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn capabilities_map_to_the_network_as_containerd_applies_them() {
        let cases = [
            (json!({}), true),
            (json!({"capabilities": {"drop": ["NET_RAW"]}}), false),
            (json!({"capabilities": {"drop": ["ALL"]}}), false),
            (json!({"capabilities": {"drop": ["all"]}}), false),
            (json!({"capabilities": {"drop": ["CAP_NET_RAW"]}}), false),
            (json!({"capabilities": {"drop": ["CHOWN", "SYS_ADMIN"]}}), true),
            (json!({"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}), false),
            (json!({"capabilities": {"drop": ["ALL"], "add": ["NET_RAW"]}}), true),
            (json!({"capabilities": {"drop": ["NET_RAW"], "add": ["NET_RAW"]}}), false),
            (json!({"capabilities": {"drop": ["NET_RAW"], "add": ["ALL"]}}), false),
            (json!({"privileged": true, "capabilities": {"drop": ["ALL"]}}), true),
        ];
        for (sc, network) in cases {
            let c = json!({"name": "c", "securityContext": sc});
            assert_eq!(grants(&json!({}), &c).network, network, "{sc}");
        }
    }

    #[test]
    fn read_only_root_filesystem_and_owner() {
        let pod = json!({"spec": {"securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000}}});
        let c = json!({"name": "c", "securityContext": {"readOnlyRootFilesystem": true}});
        assert_eq!(grants(&pod, &c), Grants { read_only: true, network: true, owner: Some(Owner { uid: Some(1000), gid: Some(3000) }) });
        let c = json!({"name": "c", "securityContext": {"runAsUser": 7, "readOnlyRootFilesystem": false}});
        assert_eq!(grants(&pod, &c).owner, Some(Owner { uid: Some(7), gid: Some(3000) }));
        assert!(!grants(&pod, &c).read_only);
        assert_eq!(grants(&json!({}), &json!({"name": "c"})), Grants { read_only: false, network: true, owner: None });
        assert_eq!(fs_group(&pod), Some(2000));
        assert_eq!(fs_group(&json!({"spec": {}})), None);
    }
}
