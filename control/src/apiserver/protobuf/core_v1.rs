//! core/v1 messages: Secret, ConfigMap, Namespace, Service, ServiceAccount, and the pod
//! template (PodSpec, Container, env, resources, volumes) that workloads embed.
//!
//! Invariant: a set field this module does not convert (see the parent module's list)
//! fails with `ProtoError::UnsupportedField`; it is never dropped.

use k8s_pb::api::core::v1 as core;
use prost::Message;
use serde_json::{Map, Value};

use super::meta_v1::object_meta;
use super::{Json, Result, int_or_string, quantity, reject};

pub(super) fn secret(s: &core::Secret) -> Result<Map<String, Value>> {
    let mut j = Json::default();
    j.object("metadata", &s.metadata, object_meta)?;
    j.bool_ptr("immutable", s.immutable);
    j.bytes_map("data", &s.data);
    j.map("stringData", &s.string_data);
    j.str("type", &s.r#type);
    Ok(j.0)
}

pub(super) fn config_map(c: &core::ConfigMap) -> Result<Map<String, Value>> {
    let mut j = Json::default();
    j.object("metadata", &c.metadata, object_meta)?;
    j.bool_ptr("immutable", c.immutable);
    j.map("data", &c.data);
    j.bytes_map("binaryData", &c.binary_data);
    Ok(j.0)
}

pub(super) fn namespace(n: &core::Namespace) -> Result<Map<String, Value>> {
    let mut j = Json::default();
    j.object("metadata", &n.metadata, object_meta)?;
    j.object("spec", &n.spec, |s: &core::NamespaceSpec| {
        let mut j = Json::default();
        j.strs("finalizers", &s.finalizers);
        j.done()
    })?;
    Ok(j.0)
}

pub(super) fn service(s: &core::Service) -> Result<Map<String, Value>> {
    let mut j = Json::default();
    j.object("metadata", &s.metadata, object_meta)?;
    j.object("spec", &s.spec, service_spec)?;
    Ok(j.0)
}

fn service_spec(s: &core::ServiceSpec) -> Result<Value> {
    let mut j = Json::default();
    j.list("ports", &s.ports, service_port)?;
    j.map("selector", &s.selector);
    j.str("clusterIP", &s.cluster_ip);
    j.strs("clusterIPs", &s.cluster_ips);
    j.str("type", &s.r#type);
    j.strs("externalIPs", &s.external_ips);
    j.str("sessionAffinity", &s.session_affinity);
    j.str("loadBalancerIP", &s.load_balancer_ip);
    j.strs("loadBalancerSourceRanges", &s.load_balancer_source_ranges);
    j.str("externalName", &s.external_name);
    j.str("externalTrafficPolicy", &s.external_traffic_policy);
    j.int("healthCheckNodePort", s.health_check_node_port);
    j.bool("publishNotReadyAddresses", s.publish_not_ready_addresses);
    j.ptr("sessionAffinityConfig", &s.session_affinity_config, |c| {
        let mut j = Json::default();
        j.ptr("clientIP", &c.client_ip, |c| {
            let mut j = Json::default();
            j.int_ptr("timeoutSeconds", c.timeout_seconds);
            j.done()
        })?;
        j.done()
    })?;
    j.strs("ipFamilies", &s.ip_families);
    j.str_ptr("ipFamilyPolicy", &s.ip_family_policy);
    j.bool_ptr(
        "allocateLoadBalancerNodePorts",
        s.allocate_load_balancer_node_ports,
    );
    j.str_ptr("loadBalancerClass", &s.load_balancer_class);
    j.str_ptr("internalTrafficPolicy", &s.internal_traffic_policy);
    j.str_ptr("trafficDistribution", &s.traffic_distribution);
    j.done()
}

fn service_port(p: &core::ServicePort) -> Result<Value> {
    let mut j = Json::default();
    j.str("name", &p.name);
    j.str("protocol", &p.protocol);
    j.str_ptr("appProtocol", &p.app_protocol);
    j.int_req("port", p.port);
    j.object("targetPort", &p.target_port, int_or_string)?;
    j.int("nodePort", p.node_port);
    j.done()
}

pub(super) fn service_account(s: &core::ServiceAccount) -> Result<Map<String, Value>> {
    let mut j = Json::default();
    j.object("metadata", &s.metadata, object_meta)?;
    j.list("secrets", &s.secrets, |r| {
        let mut j = Json::default();
        j.str("kind", &r.kind);
        j.str("namespace", &r.namespace);
        j.str("name", &r.name);
        j.str("uid", &r.uid);
        j.str("apiVersion", &r.api_version);
        j.str("resourceVersion", &r.resource_version);
        j.str("fieldPath", &r.field_path);
        j.done()
    })?;
    j.list(
        "imagePullSecrets",
        &s.image_pull_secrets,
        local_object_reference,
    )?;
    j.bool_ptr(
        "automountServiceAccountToken",
        s.automount_service_account_token,
    );
    Ok(j.0)
}

fn local_object_reference(r: &core::LocalObjectReference) -> Result<Value> {
    let mut j = Json::default();
    j.str("name", &r.name);
    j.done()
}

pub(super) fn pod_template_spec(t: &core::PodTemplateSpec) -> Result<Value> {
    let mut j = Json::default();
    j.object("metadata", &t.metadata, object_meta)?;
    j.object("spec", &t.spec, pod_spec)?;
    j.done()
}

fn pod_spec(s: &core::PodSpec) -> Result<Value> {
    reject(
        !s.ephemeral_containers.is_empty(),
        "PodSpec.ephemeralContainers",
    )?;
    // An empty context (what a defaulted object read back carries) means nothing.
    reject(s.security_context.as_ref().is_some_and(|c| *c != core::PodSecurityContext::default()), "PodSpec.securityContext")?;
    reject(s.affinity.is_some(), "PodSpec.affinity")?;
    reject(s.dns_config.is_some(), "PodSpec.dnsConfig")?;
    reject(
        !s.topology_spread_constraints.is_empty(),
        "PodSpec.topologySpreadConstraints",
    )?;
    reject(!s.resource_claims.is_empty(), "PodSpec.resourceClaims")?;
    reject(s.workload_ref.is_some(), "PodSpec.workloadRef")?;

    let mut j = Json::default();
    j.list("volumes", &s.volumes, volume)?;
    j.list("initContainers", &s.init_containers, container)?;
    j.list_req("containers", &s.containers, container)?;
    j.str("restartPolicy", &s.restart_policy);
    j.int_ptr(
        "terminationGracePeriodSeconds",
        s.termination_grace_period_seconds,
    );
    j.int_ptr("activeDeadlineSeconds", s.active_deadline_seconds);
    j.str("dnsPolicy", &s.dns_policy);
    j.map("nodeSelector", &s.node_selector);
    j.str("serviceAccountName", &s.service_account_name);
    j.str("serviceAccount", &s.service_account);
    j.bool_ptr(
        "automountServiceAccountToken",
        s.automount_service_account_token,
    );
    j.str("nodeName", &s.node_name);
    j.bool("hostNetwork", s.host_network);
    j.bool("hostPID", s.host_pid);
    j.bool("hostIPC", s.host_ipc);
    j.bool_ptr("shareProcessNamespace", s.share_process_namespace);
    j.list(
        "imagePullSecrets",
        &s.image_pull_secrets,
        local_object_reference,
    )?;
    j.str("hostname", &s.hostname);
    j.str("subdomain", &s.subdomain);
    j.str("schedulerName", &s.scheduler_name);
    j.list("tolerations", &s.tolerations, |t| {
        let mut j = Json::default();
        j.str("key", &t.key);
        j.str("operator", &t.operator);
        j.str("value", &t.value);
        j.str("effect", &t.effect);
        j.int_ptr("tolerationSeconds", t.toleration_seconds);
        j.done()
    })?;
    j.list("hostAliases", &s.host_aliases, |a| {
        let mut j = Json::default();
        j.str_req("ip", &a.ip);
        j.strs("hostnames", &a.hostnames);
        j.done()
    })?;
    j.str("priorityClassName", &s.priority_class_name);
    j.int_ptr("priority", s.priority);
    j.list("readinessGates", &s.readiness_gates, |g| {
        let mut j = Json::default();
        j.str_req("conditionType", &g.condition_type);
        j.done()
    })?;
    j.str_ptr("runtimeClassName", &s.runtime_class_name);
    j.bool_ptr("enableServiceLinks", s.enable_service_links);
    j.str_ptr("preemptionPolicy", &s.preemption_policy);
    j.quantities("overhead", &s.overhead);
    j.bool_ptr("setHostnameAsFQDN", s.set_hostname_as_fqdn);
    j.ptr("os", &s.os, |os| {
        let mut j = Json::default();
        j.str_req("name", &os.name);
        j.done()
    })?;
    j.bool_ptr("hostUsers", s.host_users);
    j.list("schedulingGates", &s.scheduling_gates, |g| {
        let mut j = Json::default();
        j.str_req("name", &g.name);
        j.done()
    })?;
    j.ptr("resources", &s.resources, resource_requirements)?;
    j.str_ptr("hostnameOverride", &s.hostname_override);
    j.done()
}

fn container(c: &core::Container) -> Result<Value> {
    reject(!c.resize_policy.is_empty(), "Container.resizePolicy")?;
    reject(
        !c.restart_policy_rules.is_empty(),
        "Container.restartPolicyRules",
    )?;
    reject(!c.volume_devices.is_empty(), "Container.volumeDevices")?;
    reject(c.liveness_probe.is_some(), "Container.livenessProbe")?;
    reject(c.readiness_probe.is_some(), "Container.readinessProbe")?;
    reject(c.startup_probe.is_some(), "Container.startupProbe")?;
    reject(c.lifecycle.is_some(), "Container.lifecycle")?;
    reject(c.security_context.as_ref().is_some_and(|c| *c != core::SecurityContext::default()), "Container.securityContext")?;

    let mut j = Json::default();
    j.str_req("name", &c.name);
    j.str("image", &c.image);
    j.strs("command", &c.command);
    j.strs("args", &c.args);
    j.str("workingDir", &c.working_dir);
    j.list("ports", &c.ports, container_port)?;
    j.list("envFrom", &c.env_from, env_from_source)?;
    j.list("env", &c.env, env_var)?;
    j.object("resources", &c.resources, resource_requirements)?;
    j.str_ptr("restartPolicy", &c.restart_policy);
    j.list("volumeMounts", &c.volume_mounts, volume_mount)?;
    j.str("terminationMessagePath", &c.termination_message_path);
    j.str("terminationMessagePolicy", &c.termination_message_policy);
    j.str("imagePullPolicy", &c.image_pull_policy);
    j.bool("stdin", c.stdin);
    j.bool("stdinOnce", c.stdin_once);
    j.bool("tty", c.tty);
    j.done()
}

fn container_port(p: &core::ContainerPort) -> Result<Value> {
    let mut j = Json::default();
    j.str("name", &p.name);
    j.int("hostPort", p.host_port);
    j.int_req("containerPort", p.container_port);
    j.str("protocol", &p.protocol);
    j.str("hostIP", &p.host_ip);
    j.done()
}

fn env_var(e: &core::EnvVar) -> Result<Value> {
    let mut j = Json::default();
    j.str_req("name", &e.name);
    j.str("value", &e.value);
    j.ptr("valueFrom", &e.value_from, env_var_source)?;
    j.done()
}

fn env_var_source(s: &core::EnvVarSource) -> Result<Value> {
    reject(s.file_key_ref.is_some(), "EnvVarSource.fileKeyRef")?;
    let mut j = Json::default();
    j.ptr("fieldRef", &s.field_ref, |f| {
        let mut j = Json::default();
        j.str("apiVersion", &f.api_version);
        j.str_req("fieldPath", &f.field_path);
        j.done()
    })?;
    j.ptr("resourceFieldRef", &s.resource_field_ref, |r| {
        let mut j = Json::default();
        j.str("containerName", &r.container_name);
        j.str_req("resource", &r.resource);
        j.object("divisor", &r.divisor, |q| Ok(quantity(q)))?;
        j.done()
    })?;
    j.ptr("configMapKeyRef", &s.config_map_key_ref, |k| {
        key_selector(&k.local_object_reference, &k.key, k.optional)
    })?;
    j.ptr("secretKeyRef", &s.secret_key_ref, |k| {
        key_selector(&k.local_object_reference, &k.key, k.optional)
    })?;
    j.done()
}

fn key_selector(
    reference: &Option<core::LocalObjectReference>,
    key: &Option<String>,
    optional: Option<bool>,
) -> Result<Value> {
    let mut j = Json::default();
    if let Some(r) = reference {
        j.str("name", &r.name);
    }
    j.str_req("key", key);
    j.bool_ptr("optional", optional);
    j.done()
}

fn env_from_source(e: &core::EnvFromSource) -> Result<Value> {
    let mut j = Json::default();
    j.str("prefix", &e.prefix);
    j.ptr("configMapRef", &e.config_map_ref, |r| {
        env_source(&r.local_object_reference, r.optional)
    })?;
    j.ptr("secretRef", &e.secret_ref, |r| {
        env_source(&r.local_object_reference, r.optional)
    })?;
    j.done()
}

fn env_source(
    reference: &Option<core::LocalObjectReference>,
    optional: Option<bool>,
) -> Result<Value> {
    let mut j = Json::default();
    if let Some(r) = reference {
        j.str("name", &r.name);
    }
    j.bool_ptr("optional", optional);
    j.done()
}

fn resource_requirements(r: &core::ResourceRequirements) -> Result<Value> {
    let mut j = Json::default();
    j.quantities("limits", &r.limits);
    j.quantities("requests", &r.requests);
    j.list("claims", &r.claims, |c| {
        let mut j = Json::default();
        j.str_req("name", &c.name);
        j.str("request", &c.request);
        j.done()
    })?;
    j.done()
}

fn volume_mount(m: &core::VolumeMount) -> Result<Value> {
    let mut j = Json::default();
    j.str_req("name", &m.name);
    j.bool("readOnly", m.read_only);
    j.str_ptr("recursiveReadOnly", &m.recursive_read_only);
    j.str_req("mountPath", &m.mount_path);
    j.str("subPath", &m.sub_path);
    j.str_ptr("mountPropagation", &m.mount_propagation);
    j.str("subPathExpr", &m.sub_path_expr);
    j.done()
}

fn volume(v: &core::Volume) -> Result<Value> {
    let mut j = Json::default();
    j.str_req("name", &v.name);
    // VolumeSource is inlined in JSON.
    if let Some(s) = &v.volume_source {
        volume_source(&mut j, s)?;
    }
    j.done()
}

fn volume_source(j: &mut Json, s: &core::VolumeSource) -> Result<()> {
    // Any source left after clearing the converted ones is one this module drops.
    let others = {
        let mut rest = s.clone();
        rest.host_path = None;
        rest.empty_dir = None;
        rest.secret = None;
        rest.persistent_volume_claim = None;
        rest.config_map = None;
        rest.encoded_len() > 0
    };
    reject(
        others,
        "Volume source (only emptyDir, configMap, secret, hostPath, persistentVolumeClaim are converted)",
    )?;

    j.ptr("hostPath", &s.host_path, |h| {
        let mut j = Json::default();
        j.str_req("path", &h.path);
        j.str_ptr("type", &h.r#type);
        j.done()
    })?;
    j.ptr("emptyDir", &s.empty_dir, |e| {
        let mut j = Json::default();
        j.str("medium", &e.medium);
        j.ptr("sizeLimit", &e.size_limit, |q| Ok(quantity(q)))?;
        j.done()
    })?;
    j.ptr("secret", &s.secret, |v| {
        let mut j = Json::default();
        j.str("secretName", &v.secret_name);
        j.list("items", &v.items, key_to_path)?;
        j.int_ptr("defaultMode", v.default_mode);
        j.bool_ptr("optional", v.optional);
        j.done()
    })?;
    j.ptr("persistentVolumeClaim", &s.persistent_volume_claim, |p| {
        let mut j = Json::default();
        j.str_req("claimName", &p.claim_name);
        j.bool("readOnly", p.read_only);
        j.done()
    })?;
    j.ptr("configMap", &s.config_map, |v| {
        let mut j = Json::default();
        if let Some(r) = &v.local_object_reference {
            j.str("name", &r.name);
        }
        j.list("items", &v.items, key_to_path)?;
        j.int_ptr("defaultMode", v.default_mode);
        j.bool_ptr("optional", v.optional);
        j.done()
    })?;
    Ok(())
}

fn key_to_path(k: &core::KeyToPath) -> Result<Value> {
    let mut j = Json::default();
    j.str_req("key", &k.key);
    j.str_req("path", &k.path);
    j.int_ptr("mode", k.mode);
    j.done()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{decoded, envelope, fixture, map, meta_named, qty, s};
    use super::super::{ProtoError, decode};
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use k8s_pb::api::apps::v1 as apps;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
    use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
    use serde_json::json;

    fn deployment_with(spec: core::PodSpec) -> apps::Deployment {
        apps::Deployment {
            metadata: Some(meta::ObjectMeta { name: Some("d".to_string()), ..Default::default() }),
            spec: Some(apps::DeploymentSpec {
                template: Some(core::PodTemplateSpec { metadata: None, spec: Some(spec) }),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn empty_security_contexts_are_accepted() {
        let t = deployment_with(core::PodSpec {
            security_context: Some(core::PodSecurityContext::default()),
            containers: vec![core::Container { name: s("c"), image: s("i"), security_context: Some(core::SecurityContext::default()), ..Default::default() }],
            ..Default::default()
        });
        let v = decode(&envelope("apps/v1", "Deployment", &t)).expect("decodes");
        assert_eq!(v["spec"]["template"]["spec"]["containers"][0]["name"], "c");
    }

    #[test]
    fn config_map_binary_data_is_base64() {
        let cm = core::ConfigMap {
            metadata: meta_named("c"),
            immutable: None,
            data: map(&[("k", "v".to_string())]),
            binary_data: map(&[("b", vec![0xde, 0xad, 0xbe, 0xef])]),
        };
        assert_eq!(
            decoded("v1", "ConfigMap", &cm),
            json!({
                "kind": "ConfigMap", "apiVersion": "v1",
                "metadata": {"name": "c", "creationTimestamp": null},
                "data": {"k": "v"},
                "binaryData": {"b": "3q2+7w=="}
            })
        );
    }

    #[test]
    fn deployment_with_full_pod_template() {
        let container = core::Container {
            name: s("web"),
            image: s("web.wasm"),
            command: vec!["serve".into()],
            args: vec!["--port".into(), "8080".into()],
            ports: vec![core::ContainerPort {
                name: s("http"),
                host_port: Some(0),
                container_port: Some(8080),
                protocol: s("TCP"),
                host_ip: s(""),
            }],
            env: vec![
                core::EnvVar {
                    name: s("MODE"),
                    value: s("prod"),
                    value_from: None,
                },
                core::EnvVar {
                    name: s("TOKEN"),
                    value: s(""),
                    value_from: Some(core::EnvVarSource {
                        secret_key_ref: Some(core::SecretKeySelector {
                            local_object_reference: Some(core::LocalObjectReference {
                                name: s("creds"),
                            }),
                            key: s("token"),
                            optional: Some(true),
                        }),
                        ..Default::default()
                    }),
                },
                core::EnvVar {
                    name: s("POD"),
                    value: None,
                    value_from: Some(core::EnvVarSource {
                        field_ref: Some(core::ObjectFieldSelector {
                            api_version: s("v1"),
                            field_path: s("metadata.name"),
                        }),
                        ..Default::default()
                    }),
                },
            ],
            resources: Some(core::ResourceRequirements {
                limits: map(&[("memory", qty("64Mi"))]),
                requests: map(&[("cpu", qty("100m"))]),
                claims: vec![],
            }),
            volume_mounts: vec![core::VolumeMount {
                name: s("cache"),
                read_only: Some(true),
                mount_path: s("/cache"),
                sub_path: s(""),
                ..Default::default()
            }],
            image_pull_policy: s("IfNotPresent"),
            stdin: Some(false),
            ..Default::default()
        };
        let volumes = vec![
            core::Volume {
                name: s("cache"),
                volume_source: Some(core::VolumeSource {
                    empty_dir: Some(core::EmptyDirVolumeSource {
                        medium: s(""),
                        size_limit: Some(qty("1Gi")),
                    }),
                    ..Default::default()
                }),
            },
            core::Volume {
                name: s("conf"),
                volume_source: Some(core::VolumeSource {
                    config_map: Some(core::ConfigMapVolumeSource {
                        local_object_reference: Some(core::LocalObjectReference {
                            name: s("conf"),
                        }),
                        items: vec![core::KeyToPath {
                            key: s("a"),
                            path: s("a.txt"),
                            mode: None,
                        }],
                        default_mode: Some(0o644),
                        optional: None,
                    }),
                    ..Default::default()
                }),
            },
            core::Volume {
                name: s("tls"),
                volume_source: Some(core::VolumeSource {
                    secret: Some(core::SecretVolumeSource {
                        secret_name: s("tls"),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            },
        ];
        let deployment = apps::Deployment {
            metadata: meta_named("web"),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(0),
                selector: Some(meta::LabelSelector {
                    match_labels: map(&[("app", "web".to_string())]),
                    match_expressions: vec![meta::LabelSelectorRequirement {
                        key: s("tier"),
                        operator: s("Exists"),
                        values: vec![],
                    }],
                }),
                template: Some(core::PodTemplateSpec {
                    metadata: Some(meta::ObjectMeta {
                        labels: map(&[("app", "web".to_string())]),
                        ..Default::default()
                    }),
                    spec: Some(core::PodSpec {
                        volumes,
                        containers: vec![container],
                        restart_policy: s("Always"),
                        termination_grace_period_seconds: Some(0),
                        node_selector: map(&[("flotilla.dev/arch", "wasm32".to_string())]),
                        host_network: Some(false),
                        ..Default::default()
                    }),
                }),
                strategy: Some(apps::DeploymentStrategy {
                    r#type: s("RollingUpdate"),
                    rolling_update: Some(apps::RollingUpdateDeployment {
                        max_unavailable: Some(IntOrString {
                            r#type: Some(0),
                            int_val: Some(0),
                            str_val: s(""),
                        }),
                        max_surge: Some(IntOrString {
                            r#type: Some(1),
                            int_val: Some(0),
                            str_val: s("25%"),
                        }),
                    }),
                }),
                min_ready_seconds: Some(0),
                revision_history_limit: Some(3),
                paused: Some(false),
                progress_deadline_seconds: None,
            }),
            status: None,
        };
        assert_eq!(
            decoded("apps/v1", "Deployment", &deployment),
            json!({
                "kind": "Deployment", "apiVersion": "apps/v1",
                "metadata": {"name": "web", "creationTimestamp": null},
                "spec": {
                    "replicas": 0,
                    "selector": {
                        "matchLabels": {"app": "web"},
                        "matchExpressions": [{"key": "tier", "operator": "Exists"}]
                    },
                    "template": {
                        "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                        "spec": {
                            "volumes": [
                                {"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}},
                                {"name": "conf", "configMap": {
                                    "name": "conf", "items": [{"key": "a", "path": "a.txt"}],
                                    "defaultMode": 420
                                }},
                                {"name": "tls", "secret": {"secretName": "tls"}}
                            ],
                            "containers": [{
                                "name": "web",
                                "image": "web.wasm",
                                "command": ["serve"],
                                "args": ["--port", "8080"],
                                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                                "env": [
                                    {"name": "MODE", "value": "prod"},
                                    {"name": "TOKEN", "valueFrom": {"secretKeyRef": {
                                        "name": "creds", "key": "token", "optional": true
                                    }}},
                                    {"name": "POD", "valueFrom": {"fieldRef": {
                                        "apiVersion": "v1", "fieldPath": "metadata.name"
                                    }}}
                                ],
                                "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "100m"}},
                                "volumeMounts": [{"name": "cache", "readOnly": true, "mountPath": "/cache"}],
                                "imagePullPolicy": "IfNotPresent"
                            }],
                            "restartPolicy": "Always",
                            "terminationGracePeriodSeconds": 0,
                            "nodeSelector": {"flotilla.dev/arch": "wasm32"}
                        }
                    },
                    "strategy": {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}
                    },
                    "revisionHistoryLimit": 3
                }
            })
        );
    }

    #[test]
    fn service_target_port_by_name_and_number() {
        let port = |name: &str, target: IntOrString| core::ServicePort {
            name: s(name),
            protocol: s("TCP"),
            port: Some(80),
            target_port: Some(target),
            node_port: Some(0),
            ..Default::default()
        };
        let svc = core::Service {
            metadata: meta_named("web"),
            spec: Some(core::ServiceSpec {
                ports: vec![
                    port(
                        "named",
                        IntOrString {
                            r#type: Some(1),
                            int_val: Some(0),
                            str_val: s("http"),
                        },
                    ),
                    port(
                        "numbered",
                        IntOrString {
                            r#type: Some(0),
                            int_val: Some(8080),
                            str_val: s(""),
                        },
                    ),
                ],
                selector: map(&[("app", "web".to_string())]),
                r#type: s("ClusterIP"),
                cluster_ip: s(""),
                ip_family_policy: s("SingleStack"),
                ..Default::default()
            }),
            status: None,
        };
        assert_eq!(
            decoded("v1", "Service", &svc),
            json!({
                "kind": "Service", "apiVersion": "v1",
                "metadata": {"name": "web", "creationTimestamp": null},
                "spec": {
                    "ports": [
                        {"name": "named", "protocol": "TCP", "port": 80, "targetPort": "http"},
                        {"name": "numbered", "protocol": "TCP", "port": 80, "targetPort": 8080}
                    ],
                    "selector": {"app": "web"},
                    "type": "ClusterIP",
                    "ipFamilyPolicy": "SingleStack"
                }
            })
        );
    }

    #[test]
    fn set_but_unconverted_pod_fields_fail_instead_of_being_dropped() {
        let pod_template = |spec: core::PodSpec| apps::Deployment {
            metadata: meta_named("d"),
            spec: Some(apps::DeploymentSpec {
                template: Some(core::PodTemplateSpec {
                    metadata: None,
                    spec: Some(spec),
                }),
                ..Default::default()
            }),
            status: None,
        };
        let with_security_context = pod_template(core::PodSpec {
            security_context: Some(core::PodSecurityContext {
                run_as_user: Some(1000),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert!(matches!(
            decode(&envelope("apps/v1", "Deployment", &with_security_context)),
            Err(ProtoError::UnsupportedField {
                field: "PodSpec.securityContext"
            })
        ));

        let with_probe = pod_template(core::PodSpec {
            containers: vec![core::Container {
                name: s("c"),
                liveness_probe: Some(core::Probe::default()),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert!(matches!(
            decode(&envelope("apps/v1", "Deployment", &with_probe)),
            Err(ProtoError::UnsupportedField {
                field: "Container.livenessProbe"
            })
        ));

        let with_nfs = pod_template(core::PodSpec {
            volumes: vec![core::Volume {
                name: s("n"),
                volume_source: Some(core::VolumeSource {
                    nfs: Some(core::NfsVolumeSource {
                        server: s("nfs"),
                        path: s("/"),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }],
            ..Default::default()
        });
        assert!(matches!(
            decode(&envelope("apps/v1", "Deployment", &with_nfs)),
            Err(ProtoError::UnsupportedField { .. })
        ));
    }

    // ---- bodies captured from kubectl 1.32.4 ----

    #[test]
    fn kubectl_create_secret_generic() {
        // kubectl create secret generic s --from-literal=a=b
        assert_eq!(
            fixture(include_bytes!("testdata/secret_generic.bin")),
            json!({
                "kind": "Secret", "apiVersion": "v1",
                "metadata": {"name": "s", "creationTimestamp": null},
                "data": {"a": "Yg=="}
            })
        );
    }

    #[test]
    fn kubectl_create_secret_docker_registry() {
        // kubectl create secret docker-registry dr --docker-server=r.example
        //   --docker-username=u --docker-password=p
        let v = fixture(include_bytes!("testdata/secret_docker.bin"));
        assert_eq!(v["type"], "kubernetes.io/dockerconfigjson");
        let encoded = v["data"][".dockerconfigjson"].as_str().unwrap_or_default();
        let config: Value =
            serde_json::from_slice(&BASE64.decode(encoded).unwrap_or_default()).unwrap_or_default();
        assert_eq!(
            config,
            json!({"auths": {"r.example": {"username": "u", "password": "p", "auth": "dTpw"}}})
        );
    }

    #[test]
    fn kubectl_create_configmap() {
        // kubectl create configmap c --from-literal=k=v
        assert_eq!(
            fixture(include_bytes!("testdata/configmap.bin")),
            json!({
                "kind": "ConfigMap", "apiVersion": "v1",
                "metadata": {"name": "c", "creationTimestamp": null},
                "data": {"k": "v"}
            })
        );
    }

    #[test]
    fn kubectl_create_namespace() {
        // kubectl create namespace n
        assert_eq!(
            fixture(include_bytes!("testdata/namespace.bin")),
            json!({
                "kind": "Namespace", "apiVersion": "v1",
                "metadata": {"name": "n", "creationTimestamp": null},
                "spec": {}
            })
        );
    }

    #[test]
    fn kubectl_create_services_and_service_account() {
        // kubectl create service clusterip svc --tcp=80:8080
        assert_eq!(
            fixture(include_bytes!("testdata/service_clusterip.bin")),
            json!({
                "kind": "Service", "apiVersion": "v1",
                "metadata": {"name": "svc", "creationTimestamp": null, "labels": {"app": "svc"}},
                "spec": {
                    "ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                    "selector": {"app": "svc"},
                    "type": "ClusterIP"
                }
            })
        );
        // kubectl create service nodeport np --tcp=80:8080 --node-port=30080
        let np = fixture(include_bytes!("testdata/service_nodeport.bin"));
        assert_eq!(
            np["spec"]["ports"],
            json!([{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080}])
        );
        assert_eq!(np["spec"]["type"], "NodePort");
        // kubectl create serviceaccount sa
        assert_eq!(
            fixture(include_bytes!("testdata/serviceaccount.bin")),
            json!({
                "kind": "ServiceAccount", "apiVersion": "v1",
                "metadata": {"name": "sa", "creationTimestamp": null}
            })
        );
    }
}
