//! The keep-alive HTTP load generator the node and density benchmarks share: `conns`
//! connections, each its own reqwest client (HTTP/1.1, one idle connection), GET one URL
//! as fast as they can for a while on a separate runtime, every request timed from send
//! to the end of its body. Included by those benches with `#[path]`.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one load run measured.
pub(crate) struct Load {
    pub requests: usize,
    pub errors: usize,
    pub elapsed: Duration,
    /// Every request's latency, sorted.
    pub latency: Vec<Duration>,
}

impl Load {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at quantile `p` (0..=1).
    pub fn pct(&self, p: f64) -> Duration {
        pct(&self.latency, p)
    }
}

/// `conns` keep-alive HTTP/1.1 connections (one client each) GET `url` as fast as they can
/// for `seconds`, on the load runtime. Each connection is warmed by one request first.
pub(crate) async fn load(rt: &tokio::runtime::Handle, url: String, bearer: Option<String>, ca_pem: Option<String>, conns: usize, seconds: u64) -> Load {
    let barrier = Arc::new(tokio::sync::Barrier::new(conns + 1));
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            let (url, bearer, ca_pem, barrier) = (url.clone(), bearer.clone(), ca_pem.clone(), barrier.clone());
            rt.spawn(async move {
                let mut b = reqwest::Client::builder().http1_only().pool_max_idle_per_host(1).no_proxy().tcp_nodelay(true);
                if url.starts_with("https://") {
                    b = match &ca_pem {
                        Some(pem) => b.tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).expect("CA cert")]),
                        None => b.danger_accept_invalid_certs(true),
                    };
                }
                let c = b.build().expect("load client");
                let get = |c: &reqwest::Client| {
                    let mut r = c.get(&url);
                    if let Some(t) = &bearer {
                        r = r.bearer_auth(t);
                    }
                    r.send()
                };
                let warm_ok = match get(&c).await {
                    Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                barrier.wait().await;
                if !warm_ok {
                    eprintln!("warm-up request to {url} failed");
                    return (Vec::new(), 1);
                }
                let deadline = Instant::now() + Duration::from_secs(seconds);
                let (mut lat, mut errors) = (Vec::new(), 0usize);
                while Instant::now() < deadline {
                    let s = Instant::now();
                    match get(&c).await {
                        Ok(r) => {
                            let ok = r.status() == 200;
                            let body = r.bytes().await;
                            if ok && body.is_ok() {
                                lat.push(s.elapsed());
                            } else {
                                errors += 1;
                            }
                        }
                        Err(_) => errors += 1,
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    barrier.wait().await;
    let start = Instant::now();
    let (mut latency, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.expect("load task");
        latency.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed();
    latency.sort();
    Load { requests: latency.len(), errors, elapsed, latency }
}

/// The latency at quantile `p` of `sorted` (zero when empty).
pub(crate) fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
