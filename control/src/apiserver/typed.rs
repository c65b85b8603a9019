//! Type checks: a body must decode into the kind's k8s-openapi type (wrong JSON types are
//! a 400 BadRequest, as Kubernetes' decoder reports them).

use k8s_openapi::api::{apps::v1 as apps, authorization::v1 as authz, batch::v1 as batch, coordination::v1 as coord, core::v1 as core, discovery::v1 as disc, events::v1 as events, networking::v1 as net, rbac::v1 as rbac, storage::v1 as storage};
use serde_json::Value;

use super::resources::ResourceInfo;

fn decode<T: serde::de::DeserializeOwned>(v: &Value) -> Result<(), String> {
    T::deserialize(v).map(|_| ()).map_err(|e| e.to_string())
}

/// Checks that `v` decodes as the kind of `info`.
pub(crate) fn check(info: &ResourceInfo, v: &Value) -> Result<(), String> {
    match (info.group, info.kind) {
        ("", "Namespace") => decode::<core::Namespace>(v),
        ("", "Pod") => decode::<core::Pod>(v),
        ("", "Service") => decode::<core::Service>(v),
        ("", "Endpoints") => decode::<core::Endpoints>(v),
        ("", "ConfigMap") => decode::<core::ConfigMap>(v),
        ("", "Secret") => decode::<core::Secret>(v),
        ("", "Event") => decode::<core::Event>(v),
        ("", "ServiceAccount") => decode::<core::ServiceAccount>(v),
        ("", "Node") => decode::<core::Node>(v),
        ("", "PersistentVolume") => decode::<core::PersistentVolume>(v),
        ("", "PersistentVolumeClaim") => decode::<core::PersistentVolumeClaim>(v),
        ("", "LimitRange") => decode::<core::LimitRange>(v),
        ("", "ResourceQuota") => decode::<core::ResourceQuota>(v),
        ("apps", "Deployment") => decode::<apps::Deployment>(v),
        ("apps", "ReplicaSet") => decode::<apps::ReplicaSet>(v),
        ("apps", "StatefulSet") => decode::<apps::StatefulSet>(v),
        ("apps", "DaemonSet") => decode::<apps::DaemonSet>(v),
        ("apps", "ControllerRevision") => decode::<apps::ControllerRevision>(v),
        ("batch", "Job") => decode::<batch::Job>(v),
        ("batch", "CronJob") => decode::<batch::CronJob>(v),
        ("networking.k8s.io", "Ingress") => decode::<net::Ingress>(v),
        ("networking.k8s.io", "IngressClass") => decode::<net::IngressClass>(v),
        ("networking.k8s.io", "NetworkPolicy") => decode::<net::NetworkPolicy>(v),
        ("networking.k8s.io", "IPAddress") => decode::<net::IPAddress>(v),
        ("networking.k8s.io", "ServiceCIDR") => decode::<net::ServiceCIDR>(v),
        ("discovery.k8s.io", "EndpointSlice") => decode::<disc::EndpointSlice>(v),
        ("coordination.k8s.io", "Lease") => decode::<coord::Lease>(v),
        ("rbac.authorization.k8s.io", "Role") => decode::<rbac::Role>(v),
        ("rbac.authorization.k8s.io", "RoleBinding") => decode::<rbac::RoleBinding>(v),
        ("rbac.authorization.k8s.io", "ClusterRole") => decode::<rbac::ClusterRole>(v),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => decode::<rbac::ClusterRoleBinding>(v),
        ("storage.k8s.io", "StorageClass") => decode::<storage::StorageClass>(v),
        ("autoscaling", "HorizontalPodAutoscaler") => decode::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>(v),
        ("policy", "PodDisruptionBudget") => decode::<k8s_openapi::api::policy::v1::PodDisruptionBudget>(v),
        ("scheduling.k8s.io", "PriorityClass") => decode::<k8s_openapi::api::scheduling::v1::PriorityClass>(v),
        ("events.k8s.io", "Event") => decode::<events::Event>(v),
        ("authorization.k8s.io", "SelfSubjectAccessReview") => decode::<authz::SelfSubjectAccessReview>(v),
        ("authorization.k8s.io", "SelfSubjectRulesReview") => decode::<authz::SelfSubjectRulesReview>(v),
        ("authorization.k8s.io", "SubjectAccessReview") => decode::<authz::SubjectAccessReview>(v),
        ("authorization.k8s.io", "LocalSubjectAccessReview") => decode::<authz::LocalSubjectAccessReview>(v),
        ("authentication.k8s.io", "SelfSubjectReview") => decode::<k8s_openapi::api::authentication::v1::SelfSubjectReview>(v),
        ("authentication.k8s.io", "TokenReview") => decode::<k8s_openapi::api::authentication::v1::TokenReview>(v),
        ("certificates.k8s.io", "CertificateSigningRequest") => decode::<k8s_openapi::api::certificates::v1::CertificateSigningRequest>(v),
        _ => Ok(()),
    }
}
