//! Kubernetes' audit.k8s.io/v1 `Policy` (YAML or JSON) and its evaluation, as
//! kube-apiserver's policy checker does it: the first rule matching a request gives its
//! level (no rule: `None`); the stages omitted are the policy's and the rule's.
//!
//! A rule matches when each of its lists that is not empty matches: `users` (the user's
//! name), `userGroups` (any of its groups), `verbs`; then either `namespaces`/`resources`
//! (a resource request: the namespace, "" for cluster-scoped, and `{group, resources,
//! resourceNames}` with "resource/subresource", "*", "*/subresource", "resource/*"), or
//! `nonResourceURLs` (a request for a path: exact, "*", or a prefix ending with "*").

use std::collections::HashSet;

use serde::Deserialize;

use crate::apiserver::auth::{Attributes, User};

/// How much of a request the log keeps, least first.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub(crate) enum Level {
    None,
    Metadata,
    Request,
    RequestResponse,
}

/// When an event is written.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash, serde::Serialize)]
pub(crate) enum Stage {
    RequestReceived,
    ResponseStarted,
    ResponseComplete,
    Panic,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Document {
    api_version: String,
    kind: String,
    #[serde(default)]
    #[allow(dead_code, reason = "accepted, as Kubernetes accepts it")]
    metadata: Option<serde_yaml::Value>,
    #[serde(default)]
    rules: Vec<Rule>,
    #[serde(default)]
    omit_stages: Vec<Stage>,
    #[serde(default)]
    omit_managed_fields: bool,
}

/// One rule of a policy.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Rule {
    level: Level,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    user_groups: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
    #[serde(default)]
    resources: Vec<GroupResources>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    non_resource_urls: Vec<String>,
    #[serde(default)]
    omit_stages: Vec<Stage>,
    #[serde(default)]
    omit_managed_fields: Option<bool>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GroupResources {
    #[serde(default)]
    group: String,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    resource_names: Vec<String>,
}

/// A policy, checked.
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    rules: Vec<Rule>,
    omit_stages: Vec<Stage>,
    omit_managed_fields: bool,
}

/// What the policy says of one request.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Verdict {
    pub level: Level,
    pub omit_stages: HashSet<Stage>,
    pub omit_managed_fields: bool,
}

impl Verdict {
    pub(crate) fn logs(&self, stage: Stage) -> bool {
        self.level > Level::None && !self.omit_stages.contains(&stage)
    }
}

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{0}")]
    Syntax(#[source] serde_yaml::Error),
    #[error("{0}")]
    Invalid(String),
}

fn contains(list: &[String], s: &str) -> bool {
    list.iter().any(|x| x == s)
}

impl Policy {
    /// The policy when none is given: everything at Metadata, one event per request
    /// (RequestReceived omitted).
    pub(crate) fn metadata_for_everything() -> Policy {
        Policy {
            rules: vec![Rule {
                level: Level::Metadata,
                users: vec![],
                user_groups: vec![],
                verbs: vec![],
                resources: vec![],
                namespaces: vec![],
                non_resource_urls: vec![],
                omit_stages: vec![],
                omit_managed_fields: None,
            }],
            omit_stages: vec![Stage::RequestReceived],
            omit_managed_fields: false,
        }
    }

    /// Parses and checks a policy file's text (YAML, of which JSON is a part).
    pub(crate) fn parse(text: &str) -> Result<Policy, PolicyError> {
        let doc: Document = serde_yaml::from_str(text).map_err(PolicyError::Syntax)?;
        let invalid = |m: String| Err(PolicyError::Invalid(m));
        if doc.api_version != "audit.k8s.io/v1" {
            return invalid(format!("apiVersion {:?} is not served: use audit.k8s.io/v1", doc.api_version));
        }
        if doc.kind != "Policy" {
            return invalid(format!("kind {:?}: an audit policy is kind Policy", doc.kind));
        }
        if doc.rules.is_empty() {
            return invalid("the policy has no rules".into());
        }
        for (i, r) in doc.rules.iter().enumerate() {
            if !r.non_resource_urls.is_empty() && (!r.resources.is_empty() || !r.namespaces.is_empty()) {
                return invalid(format!("rules[{i}]: rules cannot apply to both regular resources and non-resource URLs"));
            }
            for (j, u) in r.non_resource_urls.iter().enumerate() {
                let star = u.find('*');
                if u != "*" && !u.starts_with('/') || star.is_some_and(|p| p != u.len() - 1) {
                    return invalid(format!("rules[{i}].nonResourceURLs[{j}]: Invalid value: {u:?}: must be \"*\", a path starting with \"/\", or a path ending with \"*\""));
                }
            }
            for (j, g) in r.resources.iter().enumerate() {
                for (k, res) in g.resources.iter().enumerate() {
                    let bad = res.is_empty() || res.matches('/').count() > 1 || (res.contains('*') && !(res == "*" || res.starts_with("*/") || res.ends_with("/*")));
                    if bad {
                        return invalid(format!("rules[{i}].resources[{j}].resources[{k}]: Invalid value: {res:?}: a resource, \"resource/subresource\", \"*\", \"*/subresource\" or \"resource/*\""));
                    }
                }
                if !g.resource_names.is_empty() && g.resources.is_empty() {
                    return invalid(format!("rules[{i}].resources[{j}].resourceNames: resourceNames need resources"));
                }
            }
        }
        Ok(Policy { rules: doc.rules, omit_stages: doc.omit_stages, omit_managed_fields: doc.omit_managed_fields })
    }

    /// The verdict for a request of `user` (None: a request without credentials) with
    /// attributes `a`.
    pub(crate) fn evaluate(&self, user: Option<&User>, a: &Attributes) -> Verdict {
        for r in &self.rules {
            if rule_matches(r, user, a) {
                return Verdict {
                    level: r.level,
                    omit_stages: self.omit_stages.iter().chain(&r.omit_stages).copied().collect(),
                    omit_managed_fields: r.omit_managed_fields.unwrap_or(self.omit_managed_fields),
                };
            }
        }
        Verdict { level: Level::None, omit_stages: HashSet::new(), omit_managed_fields: false }
    }
}

fn rule_matches(r: &Rule, user: Option<&User>, a: &Attributes) -> bool {
    let name = user.map_or("", |u| u.name.as_str());
    let groups: &[String] = user.map_or(&[], |u| u.groups.as_slice());
    if !r.users.is_empty() && !contains(&r.users, name) {
        return false;
    }
    if !r.user_groups.is_empty() && !groups.iter().any(|g| contains(&r.user_groups, g)) {
        return false;
    }
    if !r.verbs.is_empty() && !contains(&r.verbs, &a.verb) {
        return false;
    }
    if !r.namespaces.is_empty() || !r.resources.is_empty() {
        return resource_matches(r, a);
    }
    if !r.non_resource_urls.is_empty() {
        return !a.resource_request && r.non_resource_urls.iter().any(|spec| path_matches(&a.path, spec));
    }
    true
}

fn path_matches(path: &str, spec: &str) -> bool {
    spec == "*" || spec == path || spec.strip_suffix('*').is_some_and(|prefix| path.starts_with(prefix))
}

fn resource_matches(r: &Rule, a: &Attributes) -> bool {
    if !a.resource_request {
        return false;
    }
    if !r.namespaces.is_empty() && !contains(&r.namespaces, &a.namespace) {
        return false;
    }
    if r.resources.is_empty() {
        return true;
    }
    let combined = if a.subresource.is_empty() { a.resource.clone() } else { format!("{}/{}", a.resource, a.subresource) };
    r.resources.iter().filter(|g| g.group == a.group).any(|g| {
        if g.resources.is_empty() {
            return true;
        }
        if !g.resource_names.is_empty() && !contains(&g.resource_names, &a.name) {
            return false;
        }
        g.resources.iter().any(|res| {
            res == &combined
                || res == "*"
                || (!a.subresource.is_empty() && res.strip_prefix("*/") == Some(a.subresource.as_str()))
                || res.strip_suffix("/*") == Some(a.resource.as_str())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> User {
        User { name: name.into(), groups: groups.iter().map(|g| g.to_string()).collect(), ..User::default() }
    }

    fn res(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
        Attributes::resource(verb, group, resource, sub, ns, name)
    }

    /// Kubernetes' documented example policy (trimmed), as YAML.
    const EXAMPLE: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages:
  - "RequestReceived"
rules:
  - level: RequestResponse
    resources:
    - group: ""
      resources: ["pods"]
  - level: Metadata
    resources:
    - group: ""
      resources: ["pods/log", "pods/status"]
  - level: None
    resources:
    - group: ""
      resources: ["configmaps"]
      resourceNames: ["controller-leader"]
  - level: None
    users: ["system:kube-proxy"]
    verbs: ["watch"]
    resources:
    - group: ""
      resources: ["endpoints", "services"]
  - level: None
    userGroups: ["system:authenticated"]
    nonResourceURLs:
    - "/api*"
    - "/version"
  - level: Request
    resources:
    - group: ""
      resources: ["configmaps"]
    namespaces: ["kube-system"]
  - level: Metadata
    resources:
    - group: ""
      resources: ["secrets", "configmaps"]
  - level: Request
    resources:
    - group: ""
    - group: "extensions"
  - level: Metadata
    omitStages:
      - "RequestReceived"
"#;

    #[test]
    fn kubernetes_example_policy_gives_its_documented_levels() {
        let p = Policy::parse(EXAMPLE).expect("parses");
        let jane = user("jane", &["system:authenticated"]);
        let level = |u: &User, a: Attributes| p.evaluate(Some(u), &a).level;
        assert_eq!(level(&jane, res("get", "", "pods", "", "ns", "p")), Level::RequestResponse);
        assert_eq!(level(&jane, res("get", "", "pods", "log", "ns", "p")), Level::Metadata);
        assert_eq!(level(&jane, res("get", "", "pods", "exec", "ns", "p")), Level::Request, "core group, no resources listed");
        assert_eq!(level(&jane, res("update", "", "configmaps", "", "ns", "controller-leader")), Level::None);
        assert_eq!(level(&jane, res("update", "", "configmaps", "", "kube-system", "x")), Level::Request);
        assert_eq!(level(&jane, res("update", "", "configmaps", "", "ns", "x")), Level::Metadata);
        let proxy = user("system:kube-proxy", &[]);
        assert_eq!(level(&proxy, res("watch", "", "services", "", "", "")), Level::None);
        assert_eq!(level(&proxy, res("list", "", "services", "", "", "")), Level::Request);
        assert_eq!(level(&jane, Attributes::non_resource("get", "/apis/apps")), Level::None);
        assert_eq!(level(&jane, Attributes::non_resource("get", "/version")), Level::None);
        assert_eq!(level(&jane, Attributes::non_resource("get", "/healthz")), Level::Metadata);
        assert_eq!(level(&jane, res("get", "apps", "deployments", "", "ns", "d")), Level::Metadata);
        let v = p.evaluate(Some(&jane), &res("get", "", "pods", "", "ns", "p"));
        assert!(!v.logs(Stage::RequestReceived) && v.logs(Stage::ResponseComplete));
        assert_eq!(p.evaluate(None, &Attributes::non_resource("get", "/healthz")).level, Level::Metadata, "a request without a user");
    }

    #[test]
    fn resource_wildcards_match_as_in_kubernetes() {
        let rule = |resources: &str| {
            Policy::parse(&format!("{{\"apiVersion\":\"audit.k8s.io/v1\",\"kind\":\"Policy\",\"rules\":[{{\"level\":\"Request\",\"resources\":[{{\"group\":\"apps\",\"resources\":[{resources}]}}]}}]}}"))
                .expect("parses")
        };
        let u = user("u", &[]);
        let hit = |p: &Policy, sub: &str| p.evaluate(Some(&u), &res("get", "apps", "deployments", sub, "ns", "d")).level == Level::Request;
        assert!(hit(&rule("\"*\""), "") && hit(&rule("\"*\""), "scale"));
        assert!(hit(&rule("\"*/scale\""), "scale") && !hit(&rule("\"*/scale\""), ""));
        assert!(hit(&rule("\"deployments/*\""), "status") && hit(&rule("\"deployments/*\""), ""));
        assert!(hit(&rule("\"deployments\""), "") && !hit(&rule("\"deployments\""), "scale"));
        assert!(!rule("\"deployments\"").evaluate(Some(&u), &res("get", "", "deployments", "", "ns", "d")).level.gt(&Level::None), "group must match");
    }

    #[test]
    fn stages_and_managed_fields_come_from_the_policy_and_the_rule() {
        let p = Policy::parse(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [ResponseStarted]\nomitManagedFields: true\nrules:\n- level: Metadata\n  users: [a]\n  omitStages: [RequestReceived]\n  omitManagedFields: false\n- level: Request\n",
        )
        .expect("parses");
        let a = p.evaluate(Some(&user("a", &[])), &Attributes::non_resource("get", "/x"));
        assert_eq!(a.omit_stages, [Stage::ResponseStarted, Stage::RequestReceived].into_iter().collect());
        assert!(!a.omit_managed_fields);
        let b = p.evaluate(Some(&user("b", &[])), &Attributes::non_resource("get", "/x"));
        assert_eq!((b.level, b.omit_managed_fields), (Level::Request, true));
        assert!(b.logs(Stage::RequestReceived) && !b.logs(Stage::ResponseStarted));
    }

    #[test]
    fn malformed_policies_are_refused_with_what_is_wrong() {
        let err = |text: &str| Policy::parse(text).expect_err("refused").to_string();
        assert!(err("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n").contains("unknown variant `Loud`"));
        assert!(err("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  user: [a]\n").contains("unknown field `user`"));
        assert!(err("apiVersion: audit.k8s.io/v1beta2\nkind: Policy\nrules:\n- level: None\n").contains("audit.k8s.io/v1"));
        assert!(err("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n").contains("no rules"));
        assert!(err("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  nonResourceURLs: [\"/x\"]\n  namespaces: [a]\n").contains("both"));
        assert!(err("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  nonResourceURLs: [\"x*y\"]\n").contains("nonResourceURLs[0]"));
        assert!(err("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  omitStages: [Sometimes]\n").contains("unknown variant"));
        assert!(err("{not yaml").len() > 3);
    }
}
