//! Pod semantics shared by the control plane and the node: QoS class and the `$(VAR)`
//! expansion of command and args.

use serde_json::Value;

/// The pod's QoS class, as Kubernetes computes it: Guaranteed when every container has
/// cpu and memory limits equal to its requests (requests default to limits), BestEffort
/// when no container requests or limits anything, Burstable otherwise.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|l| spec[*l].as_array())
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        let req = &c["resources"]["requests"];
        let lim = &c["resources"]["limits"];
        for r in ["cpu", "memory"] {
            let (q, l) = (req[r].as_str(), lim[r].as_str());
            if q.is_some() || l.is_some() {
                any = true;
            }
            match (q, l) {
                (_, None) => guaranteed = false,
                (Some(q), Some(l)) if crate::quantity::parse(q).ok() != crate::quantity::parse(l).ok() => guaranteed = false,
                _ => {}
            }
        }
        let other = |v: &Value| v.as_object().is_some_and(|m| m.keys().any(|k| k != "cpu" && k != "memory"));
        if other(req) || other(lim) {
            any = true;
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Expands `$(VAR)` in a command or argument with the container's env, as Kubernetes
/// does: a reference to an undefined variable is left as written, and `$$` escapes `$`.
pub fn expand(s: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(')
            && let Some(end) = body.find(')')
        {
            let name = &body[..end];
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn qos_classes() {
        assert_eq!(qos_class(&json!({"containers": [{"name": "a"}]})), "BestEffort");
        assert_eq!(qos_class(&json!({"containers": [{"name": "a", "resources": {"requests": {"memory": "16Mi"}}}]})), "Burstable");
        assert_eq!(qos_class(&json!({"containers": [{"name": "a", "resources": {"limits": {"memory": "16Mi", "cpu": "100m"}}}]})), "Guaranteed");
        assert_eq!(
            qos_class(&json!({"containers": [{"name": "a", "resources": {"limits": {"memory": "16Mi", "cpu": "100m"}, "requests": {"cpu": "0.1", "memory": "16Mi"}}}]})),
            "Guaranteed"
        );
        assert_eq!(qos_class(&json!({"containers": [{"name": "a", "resources": {"limits": {"memory": "16Mi"}}}]})), "Burstable");
    }

    #[test]
    fn expansion_follows_kubernetes() {
        let env = vec![("I".to_string(), "3".to_string()), ("N".to_string(), "x".to_string())];
        assert_eq!(expand("shard-$(I)", &env), "shard-3");
        assert_eq!(expand("$$(I)", &env), "$(I)");
        assert_eq!(expand("$(MISSING)/$(N)", &env), "$(MISSING)/x");
        assert_eq!(expand("a$b$", &env), "a$b$");
        assert_eq!(expand("$(unclosed", &env), "$(unclosed");
    }
}
