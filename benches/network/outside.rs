//! Traffic from outside the cluster (`cargo bench --bench network`, part 6): a load
//! generator in the bench process (hyper HTTP/1.1 clients, one keep-alive connection per
//! request in flight, every request timed from send to end of body) GETs hello-http
//! through a node port, and the same component under `wasmtime serve` on loopback; the
//! ratio is the goal's (>= 90%). HTTPS targets (TLS with rustls) take the same path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{Figures, ROUNDS, Summary, WARM_UP, report, summarize};

/// Requests per round of one outside figure.
pub const N: u32 = 4000;

/// Where an outside client connects, and how.
pub struct Target {
    pub label: String,
    pub addr: SocketAddr,
    /// The Host header (and the TLS server name).
    pub host: String,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Io for T {}

async fn connect(t: &Target) -> Result<Box<dyn Io>, String> {
    let tcp = TcpStream::connect(t.addr).await.map_err(|e| format!("connect {}: {e}", t.addr))?;
    let _ = tcp.set_nodelay(true);
    match &t.tls {
        None => Ok(Box::new(tcp)),
        Some(cfg) => {
            let name = rustls::pki_types::ServerName::try_from(t.host.clone()).map_err(|e| e.to_string())?;
            let tls = tokio_rustls::TlsConnector::from(cfg.clone()).connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?;
            Ok(Box::new(tls))
        }
    }
}

/// One connection's share: `n` sequential GETs; their latencies in µs.
async fn one_connection(t: &Target, n: u32) -> Result<Vec<f64>, String> {
    let io = connect(t).await?;
    let (mut send, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(io)).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let req = http::Request::get("/").header(http::header::HOST, &t.host).body(Empty::new()).map_err(|e| e.to_string())?;
        send.ready().await.map_err(|e| e.to_string())?;
        let start = Instant::now();
        let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        resp.into_body().collect().await.map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("HTTP {status}"));
        }
        out.push(start.elapsed().as_secs_f64() * 1e6);
    }
    Ok(out)
}

/// `n` GETs over `conns` connections in parallel.
pub async fn load(t: &Target, n: u32, conns: u32) -> Figures {
    let start = Instant::now();
    let per = n / conns;
    let runs = futures::future::join_all((0..conns).map(|_| one_connection(t, per))).await;
    let elapsed = start.elapsed().as_secs_f64();
    let mut lat = Vec::new();
    let mut f = Figures::default();
    for r in runs {
        match r {
            Ok(l) => lat.extend(l),
            Err(e) => {
                f.errors += u64::from(per);
                f.first_error.get_or_insert(e);
            }
        }
    }
    lat.sort_by(f64::total_cmp);
    f.ok = lat.len() as u64;
    f.rps = f.ok as f64 / elapsed.max(1e-9);
    let q = |p: f64| if lat.is_empty() { 0.0 } else { lat[((lat.len() - 1) as f64 * p) as usize] };
    f.p50_us = q(0.5);
    f.p99_us = q(0.99);
    f
}

/// Retries one GET until it succeeds (listeners and endpoints settle).
pub async fn wait(t: &Target, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let f = load(t, 1, 1).await;
        if f.ok == 1 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(f.first_error.unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Measures the baseline (first) and the other targets at 1 and 8 connections, rounds
/// interleaved, and prints them with their ratio to the baseline.
pub async fn measure_and_report(targets: &[Target]) {
    for conns in [1u32, 8] {
        for t in targets {
            let _ = load(t, WARM_UP, conns).await;
        }
        let mut rounds: Vec<Vec<Figures>> = vec![Vec::new(); targets.len()];
        for _ in 0..ROUNDS {
            for (i, t) in targets.iter().enumerate() {
                rounds[i].push(load(t, N, conns).await);
            }
        }
        let s: Vec<Summary> = rounds.iter().map(|r| summarize(r)).collect();
        for (i, t) in targets.iter().enumerate() {
            report(&t.label, conns, &s[i], (i > 0).then(|| &s[0]));
        }
    }
}
