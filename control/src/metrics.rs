//! The control plane's own metrics, served by the API server at `/metrics` (admin token):
//! requests by verb, resource and code with their latency, registered watchers, raft
//! proposals and their commit latency, the store's file size, scheduling attempts by
//! result and their latency.
//!
//! Invariants: one process-wide registry ([`global`]), as Kubernetes' legacyregistry (the
//! processes of a cluster each run one control plane; in-process tests that start several
//! add theirs up, so they assert growth, never totals); counting never blocks on I/O: a
//! short mutex over a map of label sets, or an atomic; families are written whole, with
//! TYPE lines, by [`render`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use axum::http::Method;
use flotilla_api::prometheus::{Encoder, Histogram, Kind, LATENCY_BUCKETS};

/// (verb, resource, subresource).
type RequestKey = (&'static str, String, String);

/// The registry.
pub(crate) struct ControlMetrics {
    requests: Mutex<HashMap<(RequestKey, u16), u64>>,
    durations: Mutex<HashMap<RequestKey, Histogram>>,
    watchers: Mutex<HashMap<String, i64>>,
    proposals: AtomicU64,
    commit: Histogram,
    attempts: [AtomicU64; 3],
    attempt_durations: [Histogram; 3],
    audit_events: AtomicU64,
    audit_dropped: AtomicU64,
    /// Requests refused by the per-user limits: [rate, in flight].
    rejected: [AtomicU64; 2],
}

/// Results of a scheduling attempt, as kube-scheduler labels them.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Attempt {
    Scheduled = 0,
    Unschedulable = 1,
    Error = 2,
}

const ATTEMPT_RESULTS: [&str; 3] = ["scheduled", "unschedulable", "error"];
/// Raft commits and scheduling attempts are fast: finer buckets.
const FAST_BUCKETS: &[f64] = &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

pub(crate) fn global() -> &'static ControlMetrics {
    static METRICS: OnceLock<ControlMetrics> = OnceLock::new();
    METRICS.get_or_init(|| ControlMetrics {
        requests: Mutex::default(),
        durations: Mutex::default(),
        watchers: Mutex::default(),
        proposals: AtomicU64::new(0),
        commit: Histogram::new(FAST_BUCKETS),
        attempts: Default::default(),
        attempt_durations: [Histogram::new(FAST_BUCKETS), Histogram::new(FAST_BUCKETS), Histogram::new(FAST_BUCKETS)],
        audit_events: AtomicU64::new(0),
        audit_dropped: AtomicU64::new(0),
        rejected: Default::default(),
    })
}

/// Counts a registered watch of `resource` while alive.
pub(crate) struct Watcher(String);

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(n) = global().watchers.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&self.0) {
            *n -= 1;
        }
    }
}

impl ControlMetrics {
    /// One finished request. Watches (and other long-running verbs) are counted but not
    /// timed, as in Kubernetes.
    pub(crate) fn request(&self, verb: &'static str, resource: &str, subresource: &str, code: u16, took: Option<Duration>) {
        let key: RequestKey = (verb, resource.to_string(), subresource.to_string());
        if let Some(took) = took {
            self.durations.lock().unwrap_or_else(|p| p.into_inner()).entry(key.clone()).or_insert_with(|| Histogram::new(LATENCY_BUCKETS)).observe(took);
        }
        *self.requests.lock().unwrap_or_else(|p| p.into_inner()).entry((key, code)).or_default() += 1;
    }

    pub(crate) fn watcher(&self, resource: &str) -> Watcher {
        *self.watchers.lock().unwrap_or_else(|p| p.into_inner()).entry(resource.to_string()).or_default() += 1;
        Watcher(resource.to_string())
    }

    /// One raft proposal, committed (and applied) after `took`.
    pub(crate) fn proposal(&self, took: Duration) {
        self.proposals.fetch_add(1, Relaxed);
        self.commit.observe(took);
    }

    pub(crate) fn scheduling_attempt(&self, result: Attempt, took: Duration) {
        self.attempts[result as usize].fetch_add(1, Relaxed);
        self.attempt_durations[result as usize].observe(took);
    }

    /// An audit event written (`dropped`: not written, the writer being behind).
    pub(crate) fn audit_event(&self, dropped: bool) {
        self.audit_events.fetch_add(1, Relaxed);
        if dropped {
            self.audit_dropped.fetch_add(1, Relaxed);
        }
    }

    /// A request refused by the per-user limits (`in_flight`: too many at once, else too
    /// many a second).
    pub(crate) fn rejected(&self, in_flight: bool) {
        self.rejected[usize::from(in_flight)].fetch_add(1, Relaxed);
    }

    pub(crate) fn proposals(&self) -> u64 {
        self.proposals.load(Relaxed)
    }
}

/// The exposition; `store_size` is the store file's size in bytes.
pub(crate) fn render(store_size: u64) -> String {
    let m = global();
    let mut e = Encoder::new();
    e.family("apiserver_request_total", Kind::Counter, "API requests by verb, resource, subresource and HTTP code.");
    let mut requests: Vec<_> = m.requests.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (k.clone(), *v)).collect();
    requests.sort();
    for (((verb, resource, sub), code), n) in requests {
        let code = code.to_string();
        e.sample("apiserver_request_total", &[("verb", verb), ("resource", &resource), ("subresource", &sub), ("code", &code)], n as f64);
    }
    e.family("apiserver_request_duration_seconds", Kind::Histogram, "API request latency by verb, resource and subresource (WATCH and CONNECT excluded).");
    {
        let durations = m.durations.lock().unwrap_or_else(|p| p.into_inner());
        let mut keys: Vec<&RequestKey> = durations.keys().collect();
        keys.sort();
        for key in keys {
            durations[key].encode(&mut e, "apiserver_request_duration_seconds", &[("verb", key.0), ("resource", &key.1), ("subresource", &key.2)]);
        }
    }
    e.family("apiserver_registered_watchers", Kind::Gauge, "Watches open, by resource.");
    let mut watchers: Vec<(String, i64)> = m.watchers.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (k.clone(), *v)).collect();
    watchers.sort();
    for (resource, n) in watchers {
        e.sample("apiserver_registered_watchers", &[("resource", &resource)], n as f64);
    }
    e.family("flotilla_raft_proposals_total", Kind::Counter, "Proposals to the raft log (each a batch of ops of one request).");
    e.sample("flotilla_raft_proposals_total", &[], m.proposals() as f64);
    e.family("flotilla_raft_commit_duration_seconds", Kind::Histogram, "Time from proposing to the raft log until the entry was committed durably and applied.");
    m.commit.encode(&mut e, "flotilla_raft_commit_duration_seconds", &[]);
    e.family("flotilla_store_size_bytes", Kind::Gauge, "Size of the store's redb file.");
    e.sample("flotilla_store_size_bytes", &[], store_size as f64);
    e.family("scheduler_schedule_attempts_total", Kind::Counter, "Attempts to schedule a pod, by result (scheduled, unschedulable, error).");
    for (i, result) in ATTEMPT_RESULTS.iter().enumerate() {
        e.sample("scheduler_schedule_attempts_total", &[("result", result), ("profile", "default-scheduler")], m.attempts[i].load(Relaxed) as f64);
    }
    e.family("scheduler_scheduling_attempt_duration_seconds", Kind::Histogram, "Scheduling attempt latency (filters and scores; the binding write excluded), by result.");
    for (i, result) in ATTEMPT_RESULTS.iter().enumerate() {
        m.attempt_durations[i].encode(&mut e, "scheduler_scheduling_attempt_duration_seconds", &[("result", result), ("profile", "default-scheduler")]);
    }
    e.family("apiserver_audit_event_total", Kind::Counter, "Audit events generated.");
    e.sample("apiserver_audit_event_total", &[], m.audit_events.load(Relaxed) as f64);
    e.family("apiserver_audit_error_total", Kind::Counter, "Audit events dropped because the log writer was behind.");
    e.sample("apiserver_audit_error_total", &[("plugin", "log")], m.audit_dropped.load(Relaxed) as f64);
    e.family("apiserver_flowcontrol_rejected_requests_total", Kind::Counter, "Requests refused with 429 by the per-user limits, by reason.");
    for (i, reason) in ["rate-limit", "concurrency-limit"].iter().enumerate() {
        e.sample("apiserver_flowcontrol_rejected_requests_total", &[("reason", reason)], m.rejected[i].load(Relaxed) as f64);
    }
    e.finish()
}

/// The labels of a request: (VERB, resource, subresource) as Kubernetes writes them
/// (`LIST`, `WATCH`, `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `DELETECOLLECTION`,
/// `CONNECT` for exec/attach/portforward/proxy); non-resource paths (discovery,
/// OpenAPI, /version) have no resource and the method as verb.
pub(crate) fn classify(method: &Method, path: &str, query: Option<&str>) -> (&'static str, String, String) {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let rest: Vec<&str> = match segs.as_slice() {
        ["api", "v1", rest @ ..] | ["apis", _, _, rest @ ..] => rest.to_vec(),
        _ => vec![],
    };
    let rest = match rest.as_slice() {
        ["namespaces", _, r, more @ ..] if !matches!(*r, "status" | "finalize") => [&[*r], more].concat(),
        _ => rest,
    };
    let resource = rest.first().map_or_else(String::new, |s| s.to_string());
    let sub = rest.get(2).map_or_else(String::new, |s| s.to_string());
    let named = rest.len() >= 2;
    let watching = query.is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let verb = if resource.is_empty() {
        match *method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::HEAD => "HEAD",
            _ => "OTHER",
        }
    } else if matches!(sub.as_str(), "exec" | "attach" | "portforward" | "proxy") {
        "CONNECT"
    } else {
        match *method {
            Method::GET if watching => "WATCH",
            Method::GET if named => "GET",
            Method::GET => "LIST",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::PATCH => "PATCH",
            Method::DELETE if named => "DELETE",
            Method::DELETE => "DELETECOLLECTION",
            _ => "OTHER",
        }
    };
    (verb, resource, sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_as_kubernetes_labels_them() {
        let c = |m: Method, p: &str, q: Option<&str>| {
            let (v, r, s) = classify(&m, p, q);
            (v, r, s)
        };
        let s = |v: &'static str, r: &str, sub: &str| (v, r.to_string(), sub.to_string());
        assert_eq!(c(Method::GET, "/api/v1/namespaces/default/pods", Some("limit=500")), s("LIST", "pods", ""));
        assert_eq!(c(Method::GET, "/api/v1/pods", Some("watch=true&resourceVersion=3")), s("WATCH", "pods", ""));
        assert_eq!(c(Method::GET, "/api/v1/namespaces/default/pods/x", None), s("GET", "pods", ""));
        assert_eq!(c(Method::GET, "/api/v1/namespaces/default/pods/x/log", None), s("GET", "pods", "log"));
        assert_eq!(c(Method::GET, "/api/v1/namespaces/default/pods/x/exec", None), s("CONNECT", "pods", "exec"));
        assert_eq!(c(Method::PATCH, "/apis/apps/v1/namespaces/d/deployments/web/scale", None), s("PATCH", "deployments", "scale"));
        assert_eq!(c(Method::DELETE, "/api/v1/namespaces/d/configmaps", None), s("DELETECOLLECTION", "configmaps", ""));
        assert_eq!(c(Method::GET, "/api/v1/namespaces/default", None), s("GET", "namespaces", ""));
        assert_eq!(c(Method::PUT, "/api/v1/namespaces/default/finalize", None), s("PUT", "namespaces", "finalize"));
        assert_eq!(c(Method::GET, "/apis", None), s("GET", "", ""));
        assert_eq!(c(Method::GET, "/apis/metrics.k8s.io/v1beta1/nodes", None), s("LIST", "nodes", ""));
    }

    #[test]
    fn exposition_has_every_family() {
        let m = global();
        m.request("GET", "pods", "", 200, Some(Duration::from_millis(3)));
        m.request("WATCH", "pods", "", 200, None);
        let w = m.watcher("pods");
        m.proposal(Duration::from_micros(300));
        m.scheduling_attempt(Attempt::Scheduled, Duration::from_micros(40));
        let text = render(4096);
        drop(w);
        for family in [
            "apiserver_request_total counter",
            "apiserver_request_duration_seconds histogram",
            "apiserver_registered_watchers gauge",
            "flotilla_raft_proposals_total counter",
            "flotilla_raft_commit_duration_seconds histogram",
            "flotilla_store_size_bytes gauge",
            "scheduler_schedule_attempts_total counter",
            "scheduler_scheduling_attempt_duration_seconds histogram",
        ] {
            assert!(text.contains(&format!("# TYPE {family}\n")), "{family} in\n{text}");
        }
        assert!(text.contains("apiserver_request_total{verb=\"GET\",resource=\"pods\",subresource=\"\",code=\"200\"} "), "{text}");
        assert!(text.contains("flotilla_store_size_bytes 4096\n"), "{text}");
    }
}
