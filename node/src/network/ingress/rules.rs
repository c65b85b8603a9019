//! Which backend an Ingress request goes to: the served Ingresses' rules, merged into one
//! [`Rules`] snapshot by [`Rules::build`] (pure: no I/O, no clock), asked by
//! [`Rules::route`] for every request.
//!
//! Invariants (Kubernetes' Ingress semantics, as ingress-nginx applies them):
//! - served: Ingresses whose `spec.ingressClassName` (else the legacy
//!   `kubernetes.io/ingress.class` annotation) names an IngressClass whose controller is
//!   [`CONTROLLER`]; Ingresses naming no class when such a class is the default
//!   ([`DEFAULT_CLASS_ANNOTATION`] "true"); none while no such class exists;
//! - a host is matched case-insensitively without its port: an exact host rule first,
//!   else a wildcard `*.SUFFIX` (exactly one label before SUFFIX), else the rules without a
//!   host; the host group found owns the request, so a path missing there goes to the
//!   default backend, not to a less specific host;
//! - among a group's matching paths the longest path wins, Exact before Prefix when the
//!   lengths tie, then the oldest Ingress (creation time, namespace, name); Prefix matches
//!   by `/`-separated element (`/foo` matches `/foo` and `/foo/bar`, not `/foobar`), a
//!   trailing `/` in the rule ignored; ImplementationSpecific is Prefix;
//! - the default backend is the oldest served Ingress's `spec.defaultBackend`;
//! - a backend that names no Service (a `resource` backend) is kept as [`Target::None`]:
//!   the request matched, but nothing can serve it (503, not 404);
//! - a host under `tls:` answers plain HTTP too, unless its Ingress has
//!   [`SSL_REDIRECT_ANNOTATION`] "true": then plain HTTP for the hosts of its `tls:`
//!   entries is redirected to HTTPS.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};

use flotilla_api::{DEFAULT_INGRESS_CLASS_ANNOTATION as DEFAULT_CLASS_ANNOTATION, INGRESS_CONTROLLER as CONTROLLER};

/// An Ingress annotation: "true" redirects plain HTTP for its TLS hosts to HTTPS.
pub(crate) const SSL_REDIRECT_ANNOTATION: &str = "ingress.flotilla.dev/ssl-redirect";
/// The class annotation Ingresses used before `spec.ingressClassName`.
const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// An Ingress by namespace and name (with its UID, for Events).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct IngressRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// A Service port an Ingress routes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Backend {
    pub namespace: String,
    pub service: String,
    pub port: ServicePort,
}

/// `service.port` of an Ingress backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ServicePort {
    Number(u16),
    Name(String),
}

/// What a matched rule points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Service(Backend),
    /// A backend this controller cannot serve (a `resource` backend, no port).
    None,
}

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    Matched(&'a Target),
    /// No rule and no default backend: 404.
    NotFound,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PathKind {
    Exact,
    Prefix,
}

/// Creation time, namespace, name: older first.
type Age = (Option<String>, String, String);

#[derive(Debug)]
struct PathRule {
    /// As written (its length decides precedence).
    path: String,
    /// Prefix rules: the path without a trailing `/` ("" for the root).
    trimmed: String,
    kind: PathKind,
    target: Target,
}

impl PathRule {
    fn matches(&self, path: &str) -> bool {
        match self.kind {
            PathKind::Exact => path == self.path,
            PathKind::Prefix => path.strip_prefix(self.trimmed.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        }
    }
}

/// One TLS entry of a served Ingress: the Secret it names for its hosts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TlsRef {
    pub ingress: IngressRef,
    /// Lowercase host patterns (`*.example.com` allowed); empty: the certificate for
    /// clients whose SNI no entry names.
    pub hosts: Vec<String>,
    pub secret: String,
}

/// The merged rules of every served Ingress.
#[derive(Debug, Default)]
pub(crate) struct Rules {
    exact: HashMap<String, Vec<PathRule>>,
    /// By the suffix after `*.`.
    wildcard: HashMap<String, Vec<PathRule>>,
    any_host: Vec<PathRule>,
    default_backend: Option<Target>,
    /// TLS entries, oldest Ingress first.
    pub tls: Vec<TlsRef>,
    /// Host patterns whose plain HTTP is redirected to HTTPS.
    https_only: Vec<String>,
    /// The served Ingresses (for their status).
    pub served: Vec<IngressRef>,
}

fn is_true(v: Option<&String>) -> bool {
    v.is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Whether this controller serves `ing`, given every IngressClass.
fn served(ing: &Ingress, classes: &[Arc<IngressClass>]) -> bool {
    let ours = |name: &str| classes.iter().any(|c| c.metadata.name.as_deref() == Some(name) && c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(CONTROLLER));
    let annotated = ing.metadata.annotations.as_ref().and_then(|a| a.get(LEGACY_CLASS_ANNOTATION));
    match ing.spec.as_ref().and_then(|s| s.ingress_class_name.as_deref()).or(annotated.map(String::as_str)) {
        Some(class) => ours(class),
        None => classes.iter().any(|c| {
            is_true(c.metadata.annotations.as_ref().and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))) && c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(CONTROLLER)
        }),
    }
}

fn target(namespace: &str, backend: &IngressBackend) -> Target {
    let Some(svc) = &backend.service else { return Target::None };
    let port = svc.port.as_ref().and_then(|p| match (&p.name, p.number) {
        (Some(name), _) if !name.is_empty() => Some(ServicePort::Name(name.clone())),
        (_, Some(n)) => u16::try_from(n).ok().filter(|&n| n != 0).map(ServicePort::Number),
        _ => None,
    });
    match port {
        Some(port) => Target::Service(Backend { namespace: namespace.to_string(), service: svc.name.to_ascii_lowercase(), port }),
        None => Target::None,
    }
}

/// A host as matched: lowercase, no port, no trailing dot.
fn normalize_host(host: &str) -> String {
    let host = host.trim();
    let no_port = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        }
    };
    no_port.trim_end_matches('.').to_ascii_lowercase()
}

impl Rules {
    /// The rules of the Ingresses this controller serves among `ingresses`.
    pub(crate) fn build(ingresses: &[Arc<Ingress>], classes: &[Arc<IngressClass>]) -> Rules {
        let mut ours: Vec<(&Ingress, Age)> = ingresses
            .iter()
            .filter(|i| served(i, classes))
            .map(|i| {
                let m = &i.metadata;
                let created = m.creation_timestamp.as_ref().map(|t| t.0.to_string());
                (&**i, (created, m.namespace.clone().unwrap_or_default(), m.name.clone().unwrap_or_default()))
            })
            .collect();
        ours.sort_by(|a, b| a.1.cmp(&b.1));

        let mut rules = Rules::default();
        for (ing, age) in ours {
            let namespace = age.1.as_str();
            rules.served.push(IngressRef { namespace: namespace.to_string(), name: age.2.clone(), uid: ing.metadata.uid.clone().unwrap_or_default() });
            let Some(spec) = &ing.spec else { continue };
            if rules.default_backend.is_none()
                && let Some(b) = &spec.default_backend
            {
                rules.default_backend = Some(target(namespace, b));
            }
            let redirect = is_true(ing.metadata.annotations.as_ref().and_then(|a| a.get(SSL_REDIRECT_ANNOTATION)));
            for tls in spec.tls.iter().flatten() {
                let hosts: Vec<String> = tls.hosts.iter().flatten().map(|h| normalize_host(h)).collect();
                if redirect {
                    rules.https_only.extend(hosts.iter().cloned());
                }
                let Some(secret) = tls.secret_name.clone().filter(|s| !s.is_empty()) else { continue };
                rules.tls.push(TlsRef { ingress: rules.served.last().cloned().expect("pushed above"), hosts, secret });
            }
            for rule in spec.rules.iter().flatten() {
                let group = match rule.host.as_deref().map(normalize_host).filter(|h| !h.is_empty()) {
                    None => &mut rules.any_host,
                    Some(h) => match h.strip_prefix("*.") {
                        Some(suffix) => rules.wildcard.entry(suffix.to_string()).or_default(),
                        None => rules.exact.entry(h).or_default(),
                    },
                };
                for p in rule.http.iter().flat_map(|h| &h.paths) {
                    let path = p.path.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "/".to_string());
                    if !path.starts_with('/') {
                        continue;
                    }
                    let kind = if p.path_type == "Exact" { PathKind::Exact } else { PathKind::Prefix };
                    let trimmed = path.trim_end_matches('/').to_string();
                    group.push(PathRule { path, trimmed, kind, target: target(namespace, &p.backend) });
                }
            }
        }
        for group in rules.exact.values_mut().chain(rules.wildcard.values_mut()).chain(std::iter::once(&mut rules.any_host)) {
            // Stable: among equal keys the oldest Ingress (pushed first) stays first.
            group.sort_by_key(|p| (Reverse(p.path.len()), p.kind));
        }
        rules
    }

    /// Whether plain HTTP for `host` (port allowed) is redirected to HTTPS.
    pub(crate) fn https_only(&self, host: &str) -> bool {
        let host = normalize_host(host);
        let suffix = host.split_once('.').filter(|(label, _)| !label.is_empty()).map(|(_, s)| s);
        self.https_only.iter().any(|p| *p == host || p.strip_prefix("*.").is_some_and(|p| Some(p) == suffix))
    }

    /// Where a request for `host` (a Host header or `:authority`, port allowed) and
    /// `path` (without the query) goes.
    pub(crate) fn route(&self, host: &str, path: &str) -> Route<'_> {
        let host = normalize_host(host);
        let path = if path.is_empty() { "/" } else { path };
        let wildcard = host.split_once('.').and_then(|(label, suffix)| if label.is_empty() { None } else { self.wildcard.get(suffix) });
        let group = self.exact.get(&host).or(wildcard).unwrap_or(&self.any_host);
        match group.iter().find(|p| p.matches(path)) {
            Some(p) => Route::Matched(&p.target),
            None => self.default_backend.as_ref().map_or(Route::NotFound, Route::Matched),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, controller: &str, default: bool) -> Arc<IngressClass> {
        let annotations = if default { serde_json::json!({DEFAULT_CLASS_ANNOTATION: "true"}) } else { serde_json::json!({}) };
        Arc::new(serde_json::from_value(serde_json::json!({"metadata": {"name": name, "annotations": annotations}, "spec": {"controller": controller}})).expect("class"))
    }

    fn ours() -> Vec<Arc<IngressClass>> {
        vec![class(flotilla_api::INGRESS_CLASS, CONTROLLER, true)]
    }

    /// An Ingress from its spec (JSON), created at second `created`.
    fn ing(name: &str, created: u32, spec: serde_json::Value) -> Arc<Ingress> {
        let ts = format!("2026-01-01T00:00:{created:02}Z");
        Arc::new(serde_json::from_value(serde_json::json!({"metadata": {"name": name, "namespace": "default", "uid": name, "creationTimestamp": ts}, "spec": spec})).expect("ingress"))
    }

    fn svc(name: &str, port: u16) -> serde_json::Value {
        serde_json::json!({"service": {"name": name, "port": {"number": port}}})
    }

    fn paths(host: Option<&str>, list: &[(&str, &str, &str)]) -> serde_json::Value {
        let paths: Vec<_> = list.iter().map(|(path, kind, to)| serde_json::json!({"path": path, "pathType": kind, "backend": svc(to, 80)})).collect();
        match host {
            Some(h) => serde_json::json!({"host": h, "http": {"paths": paths}}),
            None => serde_json::json!({"http": {"paths": paths}}),
        }
    }

    /// The Service a request goes to, or "404" / "none".
    fn to(rules: &Rules, host: &str, path: &str) -> String {
        match rules.route(host, path) {
            Route::Matched(Target::Service(b)) => b.service.clone(),
            Route::Matched(Target::None) => "none".into(),
            Route::NotFound => "404".into(),
        }
    }

    #[test]
    fn longest_path_wins_exact_before_prefix_prefix_by_element() {
        let spec = serde_json::json!({"rules": [paths(Some("a.test"), &[
            ("/", "Prefix", "root"), ("/foo", "Prefix", "foo"), ("/foo", "Exact", "foo-exact"),
            ("/foo/bar/", "Prefix", "bar"), ("/img", "ImplementationSpecific", "img"),
        ])]});
        let rules = Rules::build(&[ing("i", 0, spec)], &ours());
        let cases = [
            ("/", "root"),
            ("/foo", "foo-exact"),
            ("/foo/", "foo"),
            ("/foobar", "root"),
            ("/foo/baz", "foo"),
            ("/foo/bar", "bar"),
            ("/foo/bar/x", "bar"),
            ("/foo/barx", "foo"),
            ("/img/a.png", "img"),
            ("", "root"),
        ];
        for (path, want) in cases {
            assert_eq!(to(&rules, "a.test", path), want, "path {path}");
        }
    }

    #[test]
    fn hosts_exact_then_one_label_wildcard_then_any_host_and_the_host_owns_its_paths() {
        let spec = serde_json::json!({"rules": [
            paths(Some("Foo.Example.com"), &[("/api", "Prefix", "foo-api")]),
            paths(Some("*.example.com"), &[("/", "Prefix", "wild")]),
            paths(None, &[("/", "Prefix", "any")]),
        ]});
        let rules = Rules::build(&[ing("i", 0, spec)], &ours());
        assert_eq!(to(&rules, "foo.example.com", "/api/x"), "foo-api");
        assert_eq!(to(&rules, "FOO.example.com:8080", "/api"), "foo-api", "case and port ignored");
        assert_eq!(to(&rules, "foo.example.com", "/other"), "404", "the exact host owns the request");
        assert_eq!(to(&rules, "bar.example.com", "/x"), "wild");
        assert_eq!(to(&rules, "a.bar.example.com", "/x"), "any", "a wildcard covers exactly one label");
        assert_eq!(to(&rules, "example.com", "/x"), "any");
        assert_eq!(to(&rules, "127.0.0.1:8080", "/"), "any");
        assert_eq!(to(&rules, "[::1]:8080", "/"), "any");
    }

    #[test]
    fn default_backend_of_the_oldest_ingress_and_404_without_one() {
        let a = ing("a", 5, serde_json::json!({"defaultBackend": svc("newer", 80)}));
        let b = ing("b", 1, serde_json::json!({"defaultBackend": svc("older", 80), "rules": [paths(Some("h.test"), &[("/x", "Exact", "x")])]}));
        let rules = Rules::build(&[a.clone(), b], &ours());
        assert_eq!(to(&rules, "h.test", "/y"), "older");
        assert_eq!(to(&rules, "other", "/"), "older");
        let rules = Rules::build(&[ing("c", 0, serde_json::json!({"rules": [paths(Some("h.test"), &[("/x", "Exact", "x")])]}))], &ours());
        assert_eq!(to(&rules, "h.test", "/y"), "404");
        assert_eq!(to(&rules, "other", "/x"), "404");
        assert_eq!(to(&Rules::default(), "h", "/"), "404");
    }

    #[test]
    fn equal_paths_of_two_ingresses_go_to_the_older() {
        let young = ing("young", 9, serde_json::json!({"rules": [paths(Some("h"), &[("/p", "Prefix", "young")])]}));
        let old = ing("old", 1, serde_json::json!({"rules": [paths(Some("h"), &[("/p", "Prefix", "old"), ("/q", "Prefix", "q")])]}));
        let rules = Rules::build(&[young, old], &ours());
        assert_eq!(to(&rules, "h", "/p"), "old");
        assert_eq!(to(&rules, "h", "/q/1"), "q", "rules of one host merge across Ingresses");
    }

    #[test]
    fn backends_by_port_name_or_number_resource_backends_match_but_serve_nothing() {
        let spec = serde_json::json!({"rules": [{"host": "h", "http": {"paths": [
            {"path": "/named", "pathType": "Prefix", "backend": {"service": {"name": "Web", "port": {"name": "http"}}}},
            {"path": "/num", "pathType": "Prefix", "backend": svc("web", 8080)},
            {"path": "/res", "pathType": "Prefix", "backend": {"resource": {"apiGroup": "x.io", "kind": "Bucket", "name": "b"}}},
        ]}}]});
        let rules = Rules::build(&[ing("i", 0, spec)], &ours());
        let backend = |path| match rules.route("h", path) {
            Route::Matched(Target::Service(b)) => Some(b.clone()),
            _ => None,
        };
        assert_eq!(backend("/named"), Some(Backend { namespace: "default".into(), service: "web".into(), port: ServicePort::Name("http".into()) }));
        assert_eq!(backend("/num").map(|b| b.port), Some(ServicePort::Number(8080)));
        assert_eq!(rules.route("h", "/res"), Route::Matched(&Target::None));
    }

    #[test]
    fn only_ingresses_of_a_flotilla_class_or_classless_under_a_flotilla_default_are_served() {
        let spec = |class: Option<&str>| {
            let mut s = serde_json::json!({"defaultBackend": svc("x", 80)});
            if let Some(c) = class {
                s["ingressClassName"] = c.into();
            }
            s
        };
        let nginx = class("nginx", "k8s.io/ingress-nginx", false);
        let all = vec![ing("ours", 0, spec(Some("flotilla"))), ing("nginx", 1, spec(Some("nginx"))), ing("classless", 2, spec(None)), ing("unknown", 3, spec(Some("gone")))];
        let served = |classes: Vec<Arc<IngressClass>>| Rules::build(&all, &classes).served.into_iter().map(|r| r.name).collect::<Vec<_>>();
        assert_eq!(served(vec![class("flotilla", CONTROLLER, true), nginx.clone()]), ["ours", "classless"]);
        assert_eq!(served(vec![class("flotilla", CONTROLLER, false), class("nginx", "k8s.io/ingress-nginx", true)]), ["ours"]);
        assert!(served(vec![nginx]).is_empty(), "no flotilla class: nothing served");
        let mut legacy = (*ing("legacy", 4, spec(None))).clone();
        legacy.metadata.annotations = Some([(LEGACY_CLASS_ANNOTATION.to_string(), "nginx".to_string())].into());
        let rules = Rules::build(&[Arc::new(legacy)], &[class("flotilla", CONTROLLER, true)]);
        assert!(rules.served.is_empty(), "the legacy annotation names another class");
    }

    #[test]
    fn ssl_redirect_covers_the_tls_hosts_of_annotated_ingresses_only() {
        let tls = serde_json::json!({"tls": [{"hosts": ["a.test", "*.w.test"], "secretName": "s"}]});
        let mut annotated = (*ing("on", 0, tls.clone())).clone();
        annotated.metadata.annotations = Some([(SSL_REDIRECT_ANNOTATION.to_string(), "true".to_string())].into());
        let plain = ing("off", 1, serde_json::json!({"tls": [{"hosts": ["b.test"], "secretName": "s"}]}));
        let rules = Rules::build(&[Arc::new(annotated), plain], &ours());
        assert!(rules.https_only("A.test:8080"));
        assert!(rules.https_only("x.w.test"));
        assert!(!rules.https_only("y.x.w.test"));
        assert!(!rules.https_only("b.test"), "not annotated: answers plain HTTP");
        assert!(!rules.https_only("c.test"));
    }

    #[test]
    fn tls_entries_keep_their_ingress_and_lowercase_hosts() {
        let spec = serde_json::json!({"tls": [{"hosts": ["A.test", "*.b.test"], "secretName": "ab"}, {"secretName": "fallback"}, {"hosts": ["c"]}]});
        let rules = Rules::build(&[ing("i", 0, spec)], &ours());
        let got: Vec<(Vec<String>, String)> = rules.tls.iter().map(|t| (t.hosts.clone(), t.secret.clone())).collect();
        assert_eq!(got, vec![(vec!["a.test".to_string(), "*.b.test".to_string()], "ab".to_string()), (vec![], "fallback".to_string())]);
        assert_eq!(rules.tls[0].ingress.name, "i");
    }
}
