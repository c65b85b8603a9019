//! Prometheus' text exposition format 0.0.4 (`Content-Type: text/plain; version=0.0.4`),
//! written from figures the caller already holds (atomics of the node's containers, the
//! API server's counters): no registry, no copies kept between scrapes.
//!
//! Invariants: every family gets `# HELP` and `# TYPE` before its samples, and its samples
//! are written together; label values are escaped (`\\`, `"`, newline) and help texts
//! (`\\`, newline) as the format requires; floats use Rust's shortest round-trip form, and
//! infinities Prometheus' `+Inf`/`-Inf`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The Content-Type of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Writes one exposition.
#[derive(Debug, Default)]
pub struct Encoder {
    out: String,
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder::default()
    }

    /// Starts family `name`: its HELP and TYPE lines. Its samples follow.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = write!(self.out, "# HELP {name} {help}\n# TYPE {name} {}\n", kind.as_str());
    }

    /// One sample of the current family (`name` is the family's, or a histogram's
    /// `_bucket`/`_sum`/`_count`).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"");
                for ch in v.chars() {
                    match ch {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        push_float(&mut self.out, value);
        self.out.push('\n');
    }

    /// A histogram's samples: `bounds` with the cumulative count at each, then +Inf
    /// (= `count`), `_sum` and `_count`.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], bounds: &[f64], cumulative: &[u64], sum: f64, count: u64) {
        let mut with_le: Vec<(&str, &str)> = labels.to_vec();
        let bucket = format!("{name}_bucket");
        let mut les: Vec<String> = bounds.iter().map(|b| float(*b)).collect();
        les.push("+Inf".into());
        for (i, le) in les.iter().enumerate() {
            with_le.push(("le", le));
            let n = cumulative.get(i).copied().unwrap_or(count);
            self.sample(&bucket, &with_le, n as f64);
            with_le.pop();
        }
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, count as f64);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// A histogram of durations in seconds, in atomics (observing takes no lock).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations at most `bounds[i]` and above the previous bound (not cumulative).
    buckets: Vec<AtomicU64>,
    sum_ns: AtomicU64,
    count: AtomicU64,
}

/// Kubernetes' request-latency buckets (seconds), shortened.
pub const LATENCY_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram { bounds, buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(), sum_ns: AtomicU64::new(0), count: AtomicU64::new(0) }
    }

    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.sum_ns.fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// Writes the histogram's samples (its family started by the caller).
    pub fn encode(&self, e: &mut Encoder, name: &str, labels: &[(&str, &str)]) {
        let cumulative = cumulative(&self.buckets);
        let count = self.count.load(Relaxed).max(cumulative.last().copied().unwrap_or(0));
        e.histogram(name, labels, self.bounds, &cumulative, self.sum_ns.load(Relaxed) as f64 / 1e9, count);
    }
}

/// Per-bucket counters as the cumulative counts a histogram's `_bucket` samples carry.
pub fn cumulative(buckets: &[std::sync::atomic::AtomicU64]) -> Vec<u64> {
    let mut total = 0;
    buckets
        .iter()
        .map(|b| {
            total += b.load(Relaxed);
            total
        })
        .collect()
}

fn float(v: f64) -> String {
    let mut s = String::new();
    push_float(&mut s, v);
    s
}

fn push_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_into_buckets() {
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_millis(500));
        h.observe(Duration::from_secs(5));
        let mut e = Encoder::new();
        h.encode(&mut e, "d_seconds", &[]);
        assert_eq!(
            e.finish(),
            "d_seconds_bucket{le=\"0.1\"} 1\nd_seconds_bucket{le=\"1\"} 2\nd_seconds_bucket{le=\"+Inf\"} 3\nd_seconds_sum 5.55\nd_seconds_count 3\n"
        );
    }

    #[test]
    fn families_samples_and_escaping() {
        let mut e = Encoder::new();
        e.family("x_total", Kind::Counter, "Things.\nMore \\ things.");
        e.sample("x_total", &[("pod", "a\"b\\c\nd"), ("container", "c")], 3.0);
        e.family("lat_seconds", Kind::Histogram, "Latency.");
        e.histogram("lat_seconds", &[("verb", "GET")], &[0.1, 1.0], &[1, 2], 0.75, 3);
        assert_eq!(
            e.finish(),
            "# HELP x_total Things.\\nMore \\\\ things.\n# TYPE x_total counter\n\
             x_total{pod=\"a\\\"b\\\\c\\nd\",container=\"c\"} 3\n\
             # HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n\
             lat_seconds_bucket{verb=\"GET\",le=\"0.1\"} 1\n\
             lat_seconds_bucket{verb=\"GET\",le=\"1\"} 2\n\
             lat_seconds_bucket{verb=\"GET\",le=\"+Inf\"} 3\n\
             lat_seconds_sum{verb=\"GET\"} 0.75\n\
             lat_seconds_count{verb=\"GET\"} 3\n"
        );
    }
}
