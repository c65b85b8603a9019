//! PolicyRule: parsing from JSON, Kubernetes' request matching (`RuleAllows`), rule
//! coverage for escalation checks (`validation.Covers`), and the compact form Kubernetes
//! prints missing rules in.
//!
//! Invariants: matching and coverage are Kubernetes' exactly, quirks included:
//! - `resourceNames` restrict by the request's name, and a request without one (list,
//!   watch, create, deletecollection) never matches a rule that has them;
//! - `"*/sub"` matches that subresource of every resource, and nothing else;
//! - a nonResourceURL ending in `*` matches every path it is a prefix of (without the `*`).

use serde_json::{Map, Value, json};

/// One rule of a Role or ClusterRole.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PolicyRule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

/// What a request asks, as the matching sees it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Request<'a> {
    pub resource_request: bool,
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub name: &'a str,
    pub path: &'a str,
}

const ALL: &str = "*";

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

fn has(set: &[String], s: &str) -> bool {
    set.iter().any(|x| x == s)
}

fn has_all(set: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| has(set, w))
}

impl PolicyRule {
    pub(crate) fn from_json(v: &Value) -> PolicyRule {
        PolicyRule {
            verbs: strings(&v["verbs"]),
            api_groups: strings(&v["apiGroups"]),
            resources: strings(&v["resources"]),
            resource_names: strings(&v["resourceNames"]),
            non_resource_urls: strings(&v["nonResourceURLs"]),
        }
    }

    /// The rules of a Role or ClusterRole object (`rules: null` is none).
    pub(crate) fn list_from_json(role: &Value) -> Vec<PolicyRule> {
        role["rules"].as_array().map(|a| a.iter().map(PolicyRule::from_json).collect()).unwrap_or_default()
    }

    /// As rbac/v1 serializes it: `verbs` always, the other lists only when not empty.
    pub(crate) fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("verbs".into(), json!(self.verbs));
        for (k, v) in [
            ("apiGroups", &self.api_groups),
            ("resources", &self.resources),
            ("resourceNames", &self.resource_names),
            ("nonResourceURLs", &self.non_resource_urls),
        ] {
            if !v.is_empty() {
                m.insert(k.into(), json!(v));
            }
        }
        Value::Object(m)
    }

    /// Kubernetes' `RuleAllows`.
    pub(crate) fn allows(&self, r: &Request<'_>) -> bool {
        if !self.verb_matches(r.verb) {
            return false;
        }
        if r.resource_request {
            self.group_matches(r.group) && self.resource_matches(r.resource, r.subresource) && self.name_matches(r.name)
        } else {
            self.url_matches(r.path)
        }
    }

    fn verb_matches(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == ALL || v == verb)
    }

    fn group_matches(&self, group: &str) -> bool {
        self.api_groups.iter().any(|g| g == ALL || g == group)
    }

    /// `resource` or `resource/subresource` as one name, or `*/subresource`; compared
    /// without building the combined string.
    fn resource_matches(&self, resource: &str, sub: &str) -> bool {
        self.resources.iter().any(|rr| {
            if rr == ALL {
                return true;
            }
            if sub.is_empty() {
                return rr == resource;
            }
            let combined = rr.len() == resource.len() + 1 + sub.len()
                && rr.starts_with(resource)
                && rr.as_bytes()[resource.len()] == b'/'
                && rr.ends_with(sub);
            combined || (rr.len() == sub.len() + 2 && rr.starts_with("*/") && rr.ends_with(sub))
        })
    }

    fn name_matches(&self, name: &str) -> bool {
        self.resource_names.is_empty() || has(&self.resource_names, name)
    }

    fn url_matches(&self, path: &str) -> bool {
        self.non_resource_urls.iter().any(|u| u == ALL || u == path || (u.ends_with('*') && path.starts_with(u.trim_end_matches('*'))))
    }
}

// ---- coverage (validation.Covers) ----

/// Whether `owner` covers every rule of `servant`, and the atomic rules it does not.
pub(crate) fn covers(owner: &[PolicyRule], servant: &[PolicyRule]) -> (bool, Vec<PolicyRule>) {
    let missing: Vec<PolicyRule> =
        servant.iter().flat_map(breakdown).filter(|sub| !owner.iter().any(|o| rule_covers(o, sub))).collect();
    (missing.is_empty(), missing)
}

/// A rule as rules of one group, resource, verb and (if any) resource name each; URLs pair
/// with verbs only.
pub(crate) fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let one = |s: &String| vec![s.clone()];
    let mut out = Vec::new();
    for g in &rule.api_groups {
        for r in &rule.resources {
            for v in &rule.verbs {
                if rule.resource_names.is_empty() {
                    out.push(PolicyRule { api_groups: one(g), resources: one(r), verbs: one(v), ..Default::default() });
                } else {
                    for n in &rule.resource_names {
                        out.push(PolicyRule { api_groups: one(g), resources: one(r), verbs: one(v), resource_names: one(n), ..Default::default() });
                    }
                }
            }
        }
    }
    for u in &rule.non_resource_urls {
        for v in &rule.verbs {
            out.push(PolicyRule { non_resource_urls: one(u), verbs: one(v), ..Default::default() });
        }
    }
    out
}

fn resources_cover(owner: &[String], wanted: &[String]) -> bool {
    if has(owner, ALL) || has_all(owner, wanted) {
        return true;
    }
    wanted.iter().all(|w| {
        has(owner, w) || w.split_once('/').is_some_and(|(_, sub)| owner.iter().any(|o| o.len() == sub.len() + 2 && o.starts_with("*/") && o.ends_with(sub)))
    })
}

fn url_covers(owner: &str, path: &str) -> bool {
    owner == path || (owner.ends_with('*') && path.starts_with(owner.trim_end_matches('*')))
}

/// Whether `owner` covers `sub`, a rule from [`breakdown`].
fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, ALL) || has_all(&owner.verbs, &sub.verbs);
    let groups = has(&owner.api_groups, ALL) || has_all(&owner.api_groups, &sub.api_groups);
    let resources = resources_cover(&owner.resources, &sub.resources);
    let urls = sub.non_resource_urls.iter().all(|p| owner.non_resource_urls.iter().any(|o| url_covers(o, p)));
    let names = if sub.resource_names.is_empty() {
        owner.resource_names.is_empty()
    } else {
        owner.resource_names.is_empty() || has_all(&owner.resource_names, &sub.resource_names)
    };
    verbs && groups && resources && names && urls
}

// ---- the forms Kubernetes prints ----

/// Kubernetes' `CompactRules`: rules of one group, one resource and at most one resource
/// name (and nothing else) merged into one rule with all their verbs, in first-seen order.
pub(crate) fn compact(rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
    let mut out: Vec<PolicyRule> = Vec::new();
    let mut simple: Vec<PolicyRule> = Vec::new();
    for rule in rules {
        let is_simple = rule.resource_names.len() <= 1
            && rule.non_resource_urls.is_empty()
            && rule.api_groups.len() == 1
            && rule.resources.len() == 1;
        if !is_simple {
            out.push(rule);
            continue;
        }
        match simple.iter_mut().find(|s| s.api_groups == rule.api_groups && s.resources == rule.resources && s.resource_names == rule.resource_names) {
            Some(s) => s.verbs.extend(rule.verbs),
            None => simple.push(rule),
        }
    }
    out.extend(simple);
    out
}

/// Kubernetes' `CompactString`: `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`.
pub(crate) fn compact_string(rule: &PolicyRule) -> String {
    let parts: Vec<String> = [
        ("APIGroups", &rule.api_groups),
        ("Resources", &rule.resources),
        ("NonResourceURLs", &rule.non_resource_urls),
        ("ResourceNames", &rule.resource_names),
        ("Verbs", &rule.verbs),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| format!("{k}:{}", go_quote_list(v)))
    .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Go's `%q` of a string (the one strconv.Quote the API crate keeps).
pub(crate) use flotilla_api::selector::go_quote;

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub(crate) fn go_quote_list(v: &[String]) -> String {
    format!("[{}]", v.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(" "))
}
