//! IPAddress repair (kube-apiserver's repairip controller): keeps the allocator's
//! IPAddress objects and the Services' ClusterIPs in agreement after what the API's own
//! writes cannot cover — a crash between the IPAddress create and the Service write, a
//! Service removed by its last finalizer rather than by a DELETE, an IPAddress deleted by
//! hand.
//!
//! Invariants:
//! - Only IPAddresses the allocator manages (label `ipaddress.kubernetes.io/managed-by:
//!   ipallocator.k8s.io`) whose parent is a Service are touched.
//! - An IPAddress is released only when its Service is gone or holds another address, and
//!   only once it is older than [`GRACE_SECONDS`]: an allocation writes the IPAddress first
//!   and the Service right after, so a younger one may belong to a write still in flight.
//!   The executor checks the Service again just before deleting.
//! - A Service whose in-range address has no IPAddress gets one again (if the address is
//!   free), so the address cannot be handed to another Service.
//! - `plan` is pure (the clock comes in as `now`); the executor reads Services and
//!   IPAddresses at one revision and reads the Service again before each repair.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::apiserver::service_ip::{self, ServiceRange};
use crate::apiserver::{Api, Shutdown};

/// Age below which an orphaned-looking IPAddress is left alone.
pub(crate) const GRACE_SECONDS: i64 = 10;
/// Time between passes when nothing changed (a pass also runs after a store change, at
/// most once per [`PASS_INTERVAL`]).
const RESYNC: Duration = Duration::from_secs(5);
const PASS_INTERVAL: Duration = Duration::from_secs(1);

/// What the repair sees.
pub(crate) struct Observed<'a> {
    pub services: &'a [&'a Value],
    pub ip_addresses: &'a [&'a Value],
    pub range: ServiceRange,
    pub now: DateTime<Utc>,
}

/// One repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Delete the IPAddress `ip` allocated to the Service `namespace/name`.
    Release { ip: String, namespace: String, name: String },
    /// Create the missing IPAddress of the Service's address.
    Recreate { ip: Ipv4Addr, namespace: String, name: String },
}

fn meta_str<'a>(v: &'a Value, k: &str) -> &'a str {
    v["metadata"][k].as_str().unwrap_or("")
}

/// Pure: the repairs `observed` calls for.
pub(crate) fn plan(observed: &Observed<'_>) -> Vec<Step> {
    let mut held: HashMap<(&str, &str), Vec<String>> = HashMap::new();
    for s in observed.services {
        held.insert((meta_str(s, "namespace"), meta_str(s, "name")), service_ip::allocated_ips(&s["spec"]));
    }
    let mut steps = Vec::new();
    let mut existing: HashSet<&str> = HashSet::new();
    let cutoff = observed.now - chrono::Duration::seconds(GRACE_SECONDS);
    for a in observed.ip_addresses {
        let ip = meta_str(a, "name");
        existing.insert(ip);
        let Some((namespace, name)) = service_ip::parent_service(a) else { continue };
        let in_use = held.get(&(namespace, name)).is_some_and(|ips| ips.iter().any(|i| i == ip));
        let created = DateTime::parse_from_rfc3339(meta_str(a, "creationTimestamp")).map(|t| t.with_timezone(&Utc));
        let old_enough = created.is_ok_and(|t| t < cutoff);
        if !in_use && old_enough {
            steps.push(Step::Release { ip: ip.to_string(), namespace: namespace.to_string(), name: name.to_string() });
        }
    }
    for s in observed.services {
        if !service_ip::needs_cluster_ip(&s["spec"]) {
            continue;
        }
        for ip in service_ip::allocated_ips(&s["spec"]) {
            let Ok(parsed) = ip.parse() else { continue };
            let Ok(v4) = observed.range.check(parsed) else { continue };
            if !existing.contains(ip.as_str()) {
                steps.push(Step::Recreate { ip: v4, namespace: meta_str(s, "namespace").to_string(), name: meta_str(s, "name").to_string() });
            }
        }
    }
    steps
}

/// Runs the repair until shutdown.
pub(crate) async fn run(api: Api, shutdown: Shutdown) {
    let mut last_rev = u64::MAX;
    let mut last_pass = std::time::Instant::now();
    loop {
        let rev = api.store.revision();
        if rev != last_rev || last_pass.elapsed() >= RESYNC {
            last_rev = rev;
            last_pass = std::time::Instant::now();
            pass(&api).await;
            // Node ports have no API object; the API server's own entries are repaired
            // here too (`apiserver/service/node_ports.rs`).
            api.repair_node_ports().await;
        }
        tokio::select! {
            _ = tokio::time::sleep(PASS_INTERVAL) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Services and IPAddresses, read at one revision unless writes keep interleaving (the
/// executor re-reads the Service before acting, so a torn read only delays a repair).
fn snapshot(api: &Api) -> (Vec<std::sync::Arc<crate::store::Stored>>, Vec<std::sync::Arc<crate::store::Stored>>) {
    let mut attempts = 0;
    loop {
        let (services, r1, _) = api.store.list("core/services/", None, None, &|_| true);
        let (addresses, r2, _) = api.store.list("networking.k8s.io/ipaddresses/", None, None, &|_| true);
        attempts += 1;
        if r1 == r2 || attempts == 5 {
            return (services, addresses);
        }
    }
}

async fn pass(api: &Api) {
    let (services, addresses) = snapshot(api);
    let services: Vec<&Value> = services.iter().map(|s| &s.value).collect();
    let ip_addresses: Vec<&Value> = addresses.iter().map(|s| &s.value).collect();
    let observed = Observed { services: &services, ip_addresses: &ip_addresses, range: api.service_range, now: api.clock.now() };
    let info = crate::apiserver::resources::find("", "v1", "services").expect("services served");
    for step in plan(&observed) {
        match step {
            Step::Release { ip, namespace, name } => {
                // The Service may have been written since the snapshot.
                let current = api.get(info, Some(&namespace), &name).ok();
                if current.is_some_and(|s| service_ip::allocated_ips(&s.value["spec"]).contains(&ip)) {
                    continue;
                }
                tracing::info!(ip, service.namespace = %namespace, service.name = %name, "releasing an IPAddress whose Service no longer holds it");
                api.release_ip(&ip, &namespace, &name).await;
            }
            Step::Recreate { ip, namespace, name } => {
                let Ok(current) = api.get(info, Some(&namespace), &name) else { continue };
                if !service_ip::allocated_ips(&current.value["spec"]).contains(&ip.to_string()) {
                    continue;
                }
                tracing::warn!(%ip, service.namespace = %namespace, service.name = %name, "ClusterIP is not allocated; repairing");
                let _ = api.create_ip_address(ip, &namespace, &name).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-01-01T00:01:00Z").expect("time").with_timezone(&Utc)
    }

    fn address(ip: &str, ns: &str, name: &str, created: &str) -> Value {
        let mut a = service_ip::ip_address(ip.parse().expect("ip"), ns, name);
        a["metadata"]["creationTimestamp"] = json!(created);
        a
    }

    fn service(ns: &str, name: &str, spec: Value) -> Value {
        json!({"metadata": {"namespace": ns, "name": name}, "spec": spec})
    }

    fn run_plan(services: &[Value], addresses: &[Value]) -> Vec<Step> {
        let s: Vec<&Value> = services.iter().collect();
        let a: Vec<&Value> = addresses.iter().collect();
        plan(&Observed { services: &s, ip_addresses: &a, range: ServiceRange::default(), now: now() })
    }

    const OLD: &str = "2025-01-01T00:00:00Z";
    const FRESH: &str = "2025-01-01T00:00:55Z";

    #[test]
    fn matched_addresses_need_nothing() {
        let svc = service("d", "web", json!({"clusterIP": "10.43.3.4", "clusterIPs": ["10.43.3.4"]}));
        assert_eq!(run_plan(&[svc], &[address("10.43.3.4", "d", "web", OLD)]), vec![]);
    }

    #[test]
    fn orphans_are_released_after_the_grace_period_only() {
        // The Service is gone (a crash between the two writes, or a finalizer removal).
        let gone = address("10.43.3.4", "d", "web", OLD);
        assert_eq!(
            run_plan(&[], &[gone]),
            vec![Step::Release { ip: "10.43.3.4".into(), namespace: "d".into(), name: "web".into() }]
        );
        // A young one may be an allocation whose Service write is still in flight.
        assert_eq!(run_plan(&[], &[address("10.43.3.4", "d", "web", FRESH)]), vec![]);
        // The Service holds another address (re-created, or became ExternalName).
        let other = service("d", "web", json!({"clusterIP": "10.43.9.9", "clusterIPs": ["10.43.9.9"]}));
        let steps = run_plan(&[other], &[address("10.43.3.4", "d", "web", OLD), address("10.43.9.9", "d", "web", OLD)]);
        assert_eq!(steps, vec![Step::Release { ip: "10.43.3.4".into(), namespace: "d".into(), name: "web".into() }]);
    }

    #[test]
    fn addresses_not_managed_by_the_allocator_are_left_alone() {
        let mut foreign = address("10.43.3.4", "d", "web", OLD);
        foreign["metadata"]["labels"] = json!({"ipaddress.kubernetes.io/managed-by": "someone-else"});
        assert_eq!(run_plan(&[], &[foreign]), vec![]);
    }

    #[test]
    fn a_missing_address_object_is_recreated() {
        let svc = service("d", "web", json!({"clusterIP": "10.43.3.4", "clusterIPs": ["10.43.3.4"]}));
        assert_eq!(
            run_plan(std::slice::from_ref(&svc), &[]),
            vec![Step::Recreate { ip: "10.43.3.4".parse().expect("ip"), namespace: "d".into(), name: "web".into() }]
        );
        // Headless, ExternalName and out-of-range addresses have nothing to recreate.
        let headless = service("d", "h", json!({"clusterIP": "None", "clusterIPs": ["None"]}));
        let external = service("d", "e", json!({"type": "ExternalName", "externalName": "x.example"}));
        let elsewhere = service("d", "o", json!({"clusterIP": "10.99.0.1", "clusterIPs": ["10.99.0.1"]}));
        assert_eq!(run_plan(&[headless, external, elsewhere], &[]), vec![]);
        // Held by another Service: not recreated (and not released: it is that one's).
        let taken = address("10.43.3.4", "d", "other", OLD);
        let other = service("d", "other", json!({"clusterIP": "10.43.3.4", "clusterIPs": ["10.43.3.4"]}));
        assert_eq!(run_plan(&[svc, other], &[taken]), vec![]);
    }
}
