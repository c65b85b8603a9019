//! networking.k8s.io/v1 messages: Ingress (`kubectl create ingress`).

use k8s_pb::api::networking::v1 as net;
use serde_json::{Map, Value};

use super::meta_v1::object_meta;
use super::{Json, Result};

pub(super) fn ingress(i: &net::Ingress) -> Result<Map<String, Value>> {
    let mut j = Json::default();
    j.object("metadata", &i.metadata, object_meta)?;
    j.object("spec", &i.spec, |s: &net::IngressSpec| {
        let mut j = Json::default();
        j.str_ptr("ingressClassName", &s.ingress_class_name);
        j.ptr("defaultBackend", &s.default_backend, backend)?;
        j.list("tls", &s.tls, |t| {
            let mut j = Json::default();
            j.strs("hosts", &t.hosts);
            j.str("secretName", &t.secret_name);
            j.done()
        })?;
        j.list("rules", &s.rules, |r| {
            let mut j = Json::default();
            j.str("host", &r.host);
            // IngressRuleValue is embedded: its `http` sits in the rule.
            j.ptr("http", &r.ingress_rule_value.as_ref().and_then(|v| v.http.clone()), |h: &net::HttpIngressRuleValue| {
                let mut j = Json::default();
                j.list_req("paths", &h.paths, |p| {
                    let mut j = Json::default();
                    j.str("path", &p.path);
                    j.str_ptr("pathType", &p.path_type);
                    j.object("backend", &p.backend, backend)?;
                    j.done()
                })?;
                j.done()
            })?;
            j.done()
        })?;
        j.done()
    })?;
    Ok(j.0)
}

fn backend(b: &net::IngressBackend) -> Result<Value> {
    let mut j = Json::default();
    j.ptr("service", &b.service, |s| {
        let mut j = Json::default();
        j.str_req("name", &s.name);
        j.object("port", &s.port, |p: &net::ServiceBackendPort| {
            let mut j = Json::default();
            j.str("name", &p.name);
            j.int("number", p.number);
            j.done()
        })?;
        j.done()
    })?;
    j.ptr("resource", &b.resource, |r| {
        let mut j = Json::default();
        j.str_ptr("apiGroup", &r.api_group);
        j.str_req("kind", &r.kind);
        j.str_req("name", &r.name);
        j.done()
    })?;
    j.done()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{decoded, meta_named, s};
    use super::*;
    use serde_json::json;

    #[test]
    fn kubectl_create_ingress() {
        // What `kubectl create ingress web --class=flotilla --default-backend=fallback:80
        // --rule="a.test/api*=api:http,tls=a-tls" --rule="b.test/=web:8080"` sends.
        let port = |name: Option<&str>, number: i32| Some(net::ServiceBackendPort { name: name.map(str::to_string).or(s("")), number: Some(number) });
        let svc = |name: &str, p| Some(net::IngressBackend { service: Some(net::IngressServiceBackend { name: s(name), port: p }), resource: None });
        let rule = |host: &str, path: &str, kind: &str, b| net::IngressRule {
            host: s(host),
            ingress_rule_value: Some(net::IngressRuleValue { http: Some(net::HttpIngressRuleValue { paths: vec![net::HttpIngressPath { path: s(path), path_type: s(kind), backend: b }] }) }),
        };
        let ing = net::Ingress {
            metadata: meta_named("web"),
            spec: Some(net::IngressSpec {
                ingress_class_name: s("flotilla"),
                default_backend: svc("fallback", port(None, 80)),
                tls: vec![net::IngressTls { hosts: vec!["a.test".into()], secret_name: s("a-tls") }],
                rules: vec![rule("a.test", "/api", "Prefix", svc("api", port(Some("http"), 0))), rule("b.test", "/", "Exact", svc("web", port(None, 8080)))],
            }),
            status: Some(Default::default()),
        };
        assert_eq!(
            decoded("networking.k8s.io/v1", "Ingress", &ing),
            json!({
                "kind": "Ingress", "apiVersion": "networking.k8s.io/v1",
                "metadata": {"name": "web", "creationTimestamp": null},
                "spec": {
                    "ingressClassName": "flotilla",
                    "defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}},
                    "tls": [{"hosts": ["a.test"], "secretName": "a-tls"}],
                    "rules": [
                        {"host": "a.test", "http": {"paths": [{"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"name": "http"}}}}]}},
                        {"host": "b.test", "http": {"paths": [{"path": "/", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {"number": 8080}}}}]}},
                    ],
                },
            })
        );
    }
}
