//! What one container has consumed, measured where the runtime already looks: [`Usage`]
//! is shared (an `Arc` in the container's [`super::InstanceSpec`]) by every instance of
//! the container (each attempt, each HTTP request, exec sessions and exec probes).
//!
//! Invariants: plain atomics, updated by the instances themselves, never by a task of
//! their own (an idle container costs ~100 bytes here and nothing per second); CPU is the thread
//! CPU time the CPU limit charges (`limits.rs`), counted at the end of every poll of the
//! guest; memory is the sum of the live instances' linear memories, counted by the
//! memory limiter as they grow and released when their store is dropped; counters only
//! ever grow while the container entry lives.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// `FLOTILLA_USAGE_ACCOUNTING=off` in the node's environment turns accounting off (the
/// runtime then never touches a [`Usage`]): only for measuring its cost
/// (`cargo bench --bench node`).
pub(super) fn accounting() -> bool {
    static ON: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| std::env::var("FLOTILLA_USAGE_ACCOUNTING").map_or(true, |v| v != "off"));
    *ON
}

/// The usage an instance feeds: `usage`, unless accounting is off.
pub(super) fn accounted(usage: &std::sync::Arc<Usage>) -> Option<std::sync::Arc<Usage>> {
    accounting().then(|| usage.clone())
}

/// Upper bounds (seconds) of the HTTP request latency histogram's buckets (+Inf implied).
pub const LATENCY_BUCKETS: [f64; 11] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// One container's consumption (see the module docs).
#[derive(Debug, Default)]
pub struct Usage {
    cpu_ns: AtomicU64,
    fuel: AtomicU64,
    memory_bytes: AtomicU64,
    memory_peak_bytes: AtomicU64,
    instances: AtomicU32,
    restarts: AtomicU32,
    /// Only HTTP containers get one (allocated at their first request).
    http: OnceLock<Box<HttpUsage>>,
    /// The node's sampler state ([`Usage::sample`]).
    sampled_cpu_ns: AtomicU64,
    nano_cores: AtomicU64,
    /// CPU ms and fuel last written to the pod's usage annotation (`crate::usage`).
    annotated_cpu_ms: AtomicU64,
    annotated_fuel: AtomicU64,
}

/// Requests an HTTP container served, and how long their guests ran.
#[derive(Debug, Default)]
pub struct HttpUsage {
    requests: AtomicU64,
    duration_ns: AtomicU64,
    /// Requests that took at most `LATENCY_BUCKETS[i]` (not cumulative).
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
}

/// A consistent-enough copy of a [`Usage`] (each figure read once).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UsageSnapshot {
    pub cpu_ns: u64,
    pub fuel: u64,
    pub memory_bytes: u64,
    pub memory_peak_bytes: u64,
    pub instances: u32,
    pub restarts: u32,
    /// CPU rate over the node's last sampling window, in billionths of a core.
    pub nano_cores: u64,
    pub http: Option<HttpSnapshot>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpSnapshot {
    pub requests: u64,
    pub duration_seconds: f64,
    /// Cumulative counts per [`LATENCY_BUCKETS`] bound.
    pub cumulative_buckets: Vec<u64>,
}

impl Usage {
    pub(super) fn add_cpu_ns(&self, ns: u64) {
        self.cpu_ns.fetch_add(ns, Relaxed);
    }

    pub(super) fn add_fuel(&self, fuel: u64) {
        self.fuel.fetch_add(fuel, Relaxed);
    }

    pub(super) fn grow_memory(&self, bytes: u64) {
        let now = self.memory_bytes.fetch_add(bytes, Relaxed).saturating_add(bytes);
        self.memory_peak_bytes.fetch_max(now, Relaxed);
    }

    pub(super) fn release_memory(&self, bytes: u64) {
        let _ = self.memory_bytes.fetch_update(Relaxed, Relaxed, |m| Some(m.saturating_sub(bytes)));
    }

    pub(super) fn instance_started(&self) {
        self.instances.fetch_add(1, Relaxed);
    }

    pub(super) fn instance_ended(&self) {
        let _ = self.instances.fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
    }

    pub(super) fn request_served(&self, took: Duration) {
        let http = self.http.get_or_init(Box::default);
        http.requests.fetch_add(1, Relaxed);
        http.duration_ns.fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Relaxed);
        let secs = took.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            http.buckets[i].fetch_add(1, Relaxed);
        }
    }

    /// The container's restart count (the pod worker keeps it current).
    pub fn set_restarts(&self, restarts: u32) {
        self.restarts.store(restarts, Relaxed);
    }

    /// Total CPU time used, in ns.
    pub fn cpu_ns(&self) -> u64 {
        self.cpu_ns.load(Relaxed)
    }

    /// Total fuel consumed.
    pub fn fuel(&self) -> u64 {
        self.fuel.load(Relaxed)
    }

    /// Ends a sampling window of `window`: the CPU rate since the previous call becomes
    /// [`UsageSnapshot::nano_cores`]. Called by one node-wide sampler, never concurrently.
    pub fn sample(&self, window: Duration) {
        let now = self.cpu_ns();
        let before = self.sampled_cpu_ns.swap(now, Relaxed);
        let secs = window.as_secs_f64();
        let rate = if secs > 0.0 { now.saturating_sub(before) as f64 / secs } else { 0.0 };
        self.nano_cores.store(rate as u64, Relaxed);
    }

    /// CPU ms and fuel the node last published in the pod's annotation.
    pub fn annotated(&self) -> (u64, u64) {
        (self.annotated_cpu_ms.load(Relaxed), self.annotated_fuel.load(Relaxed))
    }

    pub fn set_annotated(&self, cpu_ms: u64, fuel: u64) {
        self.annotated_cpu_ms.store(cpu_ms, Relaxed);
        self.annotated_fuel.store(fuel, Relaxed);
    }

    pub fn snapshot(&self) -> UsageSnapshot {
        UsageSnapshot {
            cpu_ns: self.cpu_ns(),
            fuel: self.fuel(),
            memory_bytes: self.memory_bytes.load(Relaxed),
            memory_peak_bytes: self.memory_peak_bytes.load(Relaxed),
            instances: self.instances.load(Relaxed),
            restarts: self.restarts.load(Relaxed),
            nano_cores: self.nano_cores.load(Relaxed),
            http: self.http.get().map(|h| {
                let cumulative_buckets = flotilla_api::prometheus::cumulative(&h.buckets);
                HttpSnapshot {
                    requests: h.requests.load(Relaxed),
                    duration_seconds: h.duration_ns.load(Relaxed) as f64 / 1e9,
                    cumulative_buckets,
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_peak_and_release() {
        let u = Usage::default();
        u.grow_memory(100);
        u.grow_memory(50);
        u.release_memory(120);
        u.grow_memory(10);
        let s = u.snapshot();
        assert_eq!((s.memory_bytes, s.memory_peak_bytes), (40, 150));
        u.release_memory(1000);
        assert_eq!(u.snapshot().memory_bytes, 0);
    }

    #[test]
    fn latency_buckets_are_cumulative() {
        let u = Usage::default();
        assert_eq!(u.snapshot().http, None);
        u.request_served(Duration::from_micros(500));
        u.request_served(Duration::from_millis(30));
        u.request_served(Duration::from_secs(60));
        let h = u.snapshot().http.expect("http");
        assert_eq!(h.requests, 3);
        assert_eq!(h.cumulative_buckets[0], 1);
        assert_eq!(h.cumulative_buckets[4], 2);
        assert_eq!(*h.cumulative_buckets.last().expect("buckets"), 2, "60 s is only in +Inf");
    }

    #[test]
    fn sample_gives_the_rate_over_the_window() {
        let u = Usage::default();
        u.add_cpu_ns(2_000_000_000);
        u.sample(Duration::from_secs(4));
        assert_eq!(u.snapshot().nano_cores, 500_000_000);
        u.sample(Duration::from_secs(4));
        assert_eq!(u.snapshot().nano_cores, 0);
    }
}
