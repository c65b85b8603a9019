//! Printers of storage kinds: PersistentVolume and PersistentVolumeClaim (core/v1) and
//! StorageClass (storage.k8s.io/v1).
//!
//! Invariant: each `*_cells` returns one cell per column of its `*_COLUMNS`, in order.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{AGE, Column, NAME, age, col, default_str, flag, get, list, name, quantity, text, wide};

// ---------------------------------------------------------------------------------------
// Columns

#[rustfmt::skip]
pub(super) const PERSISTENT_VOLUME_COLUMNS: &[Column] = &[
    NAME,
    col("Capacity", "string", "capacity is the description of the persistent volume's resources and capacity."),
    col("Access Modes", "string", "accessModes contains all ways the volume can be mounted."),
    col("Reclaim Policy", "string", "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim."),
    col("Status", "string", "phase indicates if a volume is available, bound to a claim, or released by a claim."),
    col("Claim", "string", "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim."),
    col("StorageClass", "string", "StorageClass of the pv"),
    col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
    col("Reason", "string", "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI."),
    AGE,
    wide("VolumeMode", "string", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state."),
];

#[rustfmt::skip]
pub(super) const PERSISTENT_VOLUME_CLAIM_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "phase represents the current phase of PersistentVolumeClaim."),
    col("Volume", "string", "volumeName is the binding reference to the PersistentVolume backing this claim."),
    col("Capacity", "string", "capacity represents the actual resources of the underlying volume."),
    col("Access Modes", "string", "accessModes contains the actual access modes the volume backing the PVC has."),
    col("StorageClass", "string", "StorageClass of the pvc"),
    col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
    AGE,
    wide("VolumeMode", "string", "volumeMode defines what type of volume is required by the claim."),
];

#[rustfmt::skip]
pub(super) const STORAGE_CLASS_COLUMNS: &[Column] = &[
    NAME,
    col("Provisioner", "string", "provisioner indicates the type of the provisioner."),
    col("ReclaimPolicy", "string", "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class."),
    col("VolumeBindingMode", "string", "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound."),
    col("AllowVolumeExpansion", "string", "allowVolumeExpansion shows whether the storage class allow volume expand."),
    AGE,
];

// ---------------------------------------------------------------------------------------
// Printers

pub(super) fn persistent_volume_cells(pv: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let claim = match get(pv, &["spec", "claimRef"]) {
        Some(r) => format!("{}/{}", text(r, &["namespace"]), text(r, &["name"])),
        None => String::new(),
    };
    let phase = if get(pv, &["metadata", "deletionTimestamp"]).is_some() {
        "Terminating"
    } else {
        default_str(text(pv, &["status", "phase"]), "Pending")
    };
    let class = match get(pv, &["metadata", "annotations", "volume.beta.kubernetes.io/storage-class"]) {
        Some(v) => v.as_str().unwrap_or(""),
        None => text(pv, &["spec", "storageClassName"]),
    };
    vec![
        name(pv).into(),
        quantity(get(pv, &["spec", "capacity", "storage"])).into(),
        access_modes(list(pv, &["spec", "accessModes"])).into(),
        default_str(text(pv, &["spec", "persistentVolumeReclaimPolicy"]), "Retain").into(),
        phase.into(),
        claim.into(),
        class.into(),
        default_str(text(pv, &["spec", "volumeAttributesClassName"]), "<unset>").into(),
        text(pv, &["status", "reason"]).into(),
        age(pv, now),
        default_str(text(pv, &["spec", "volumeMode"]), "Filesystem").into(),
    ]
}

pub(super) fn persistent_volume_claim_cells(pvc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let phase = if get(pvc, &["metadata", "deletionTimestamp"]).is_some() {
        "Terminating"
    } else {
        default_str(text(pvc, &["status", "phase"]), "Pending")
    };
    let volume = text(pvc, &["spec", "volumeName"]);
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (quantity(get(pvc, &["status", "capacity", "storage"])), access_modes(list(pvc, &["status", "accessModes"])))
    };
    let class = match get(pvc, &["metadata", "annotations", "volume.beta.kubernetes.io/storage-class"]) {
        Some(v) => v.as_str().unwrap_or(""),
        None => text(pvc, &["spec", "storageClassName"]),
    };
    vec![
        name(pvc).into(),
        phase.into(),
        volume.into(),
        capacity.into(),
        modes.into(),
        class.into(),
        default_str(text(pvc, &["spec", "volumeAttributesClassName"]), "<unset>").into(),
        age(pvc, now),
        default_str(text(pvc, &["spec", "volumeMode"]), "Filesystem").into(),
    ]
}

pub(super) fn storage_class_cells(sc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let is_default =
        ["storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"]
            .iter()
            .any(|a| text(sc, &["metadata", "annotations", a]) == "true");
    let mut display = name(sc).to_string();
    if is_default {
        display.push_str(" (default)");
    }
    vec![
        display.into(),
        text(sc, &["provisioner"]).into(),
        default_str(text(sc, &["reclaimPolicy"]), "Delete").into(),
        default_str(text(sc, &["volumeBindingMode"]), "Immediate").into(),
        flag(sc, &["allowVolumeExpansion"]).into(),
        age(sc, now),
    ]
}

/// `GetAccessModesAsString`: RWO, ROX, RWX, RWOP in that order, de-duplicated.
fn access_modes(modes: &[Value]) -> String {
    let present = |mode: &str| modes.iter().any(|m| m.as_str() == Some(mode));
    [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP")]
        .iter()
        .filter(|(mode, _)| present(mode))
        .map(|(_, short)| *short)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::cells;
    use serde_json::{Value, json};

    #[test]
    fn storage_kinds() {
        let c = cells(
            "",
            "PersistentVolume",
            json!({"metadata": {"name": "pv1"},
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                     "claimRef": {"namespace": "ns", "name": "data"}, "storageClassName": "fast"},
            "status": {"phase": "Bound"}}),
        );
        assert_eq!(
            Value::Array(c),
            json!([
                "pv1",
                "10Gi",
                "RWO,RWX",
                "Retain",
                "Bound",
                "ns/data",
                "fast",
                "<unset>",
                "",
                "<unknown>",
                "Filesystem"
            ])
        );
        let c = cells(
            "",
            "PersistentVolumeClaim",
            json!({"metadata": {"name": "data"},
            "spec": {"volumeName": "pv1", "storageClassName": "fast"},
            "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"]}}),
        );
        assert_eq!(
            &c[..7],
            &[
                json!("data"),
                json!("Bound"),
                json!("pv1"),
                json!("10Gi"),
                json!("RWO"),
                json!("fast"),
                json!("<unset>")
            ]
        );
        let c = cells("", "PersistentVolumeClaim", json!({"spec": {"resources": {"requests": {"storage": "1Gi"}}}}));
        assert_eq!(&c[1..5], &[json!("Pending"), json!(""), json!(""), json!("")]);
        let c = cells(
            "storage.k8s.io",
            "StorageClass",
            json!({"metadata": {"name": "local",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "flotilla.io/local"}),
        );
        assert_eq!(
            &c[..5],
            &[json!("local (default)"), json!("flotilla.io/local"), json!("Delete"), json!("Immediate"), json!(false)]
        );
    }
}
