//! `/load`: N GETs of one URL, C in flight, timed on the monotonic clock inside the guest.
//! One wasi:io/poll `poll` over every in-flight request's pollable drives them all; a
//! response's body is read without blocking as far as it is available.

use wasip2::clocks::monotonic_clock;
use wasip2::http::types::{FutureIncomingResponse, IncomingBody, IncomingResponse};
use wasip2::io::poll::{Pollable, poll};
use wasip2::io::streams::{InputStream, StreamError};

/// One request in flight. Fields drop in order: a pollable before its parent, a stream
/// before its body, the body before its response.
enum Slot {
    Waiting { pollable: Pollable, pending: FutureIncomingResponse, t0: u64 },
    Reading { pollable: Pollable, stream: InputStream, body: IncomingBody, _resp: IncomingResponse, status: u16, t0: u64 },
}

impl Slot {
    fn pollable(&self) -> &Pollable {
        match self {
            Slot::Waiting { pollable, .. } | Slot::Reading { pollable, .. } => pollable,
        }
    }
}

enum Step {
    Again(Slot),
    /// Finished: Ok(latency in ns) or the error.
    Done(Result<u64, String>),
}

fn start(url: &str) -> Step {
    let t0 = monotonic_clock::now();
    match super::send(url) {
        Ok(pending) => advance(Slot::Waiting { pollable: pending.subscribe(), pending, t0 }),
        Err(e) => Step::Done(Err(e)),
    }
}

/// Moves a slot as far as it can go without blocking.
fn advance(slot: Slot) -> Step {
    match slot {
        Slot::Waiting { pollable, pending, t0 } => {
            let got = match pending.get() {
                None => return Step::Again(Slot::Waiting { pollable, pending, t0 }),
                Some(Ok(Ok(resp))) => Ok(resp),
                Some(Ok(Err(e))) => Err(super::code(&e)),
                Some(Err(())) => Err("response already taken".to_string()),
            };
            // A child resource goes before its parent (else the guest traps with "resource
            // has children"); bindings would drop in the other order.
            drop(pollable);
            drop(pending);
            let resp = match got {
                Ok(resp) => resp,
                Err(e) => return Step::Done(Err(e)),
            };
            let status = resp.status();
            let Ok(body) = resp.consume() else { return Step::Done(Err("body already consumed".to_string())) };
            let Ok(stream) = body.stream() else { return Step::Done(Err("body stream already taken".to_string())) };
            advance(Slot::Reading { pollable: stream.subscribe(), stream, body, _resp: resp, status, t0 })
        }
        Slot::Reading { pollable, stream, body, _resp, status, t0 } => loop {
            match stream.read(64 * 1024) {
                Ok(chunk) if chunk.is_empty() => return Step::Again(Slot::Reading { pollable, stream, body, _resp, status, t0 }),
                Ok(_) => continue,
                Err(StreamError::Closed) => {
                    let took = monotonic_clock::now().saturating_sub(t0);
                    drop(pollable);
                    drop(stream);
                    drop(IncomingBody::finish(body));
                    return Step::Done(if status == 200 { Ok(took) } else { Err(format!("status {status}")) });
                }
                Err(StreamError::LastOperationFailed(e)) => {
                    let e = format!("reading body: {}", e.to_debug_string());
                    drop(pollable);
                    drop(stream);
                    drop(body);
                    drop(_resp);
                    return Step::Done(Err(e));
                }
            }
        },
    }
}

/// Runs the load and answers its figures as one JSON object (and a newline).
pub fn run(url: &str, n: u32, c: u32) -> String {
    let mut lat: Vec<u64> = Vec::with_capacity(n as usize);
    let (mut started, mut errors, mut first_error) = (0u32, 0u32, None::<String>);
    let mut slots: Vec<Slot> = Vec::with_capacity(c as usize);
    let mut finish = |r: Result<u64, String>, lat: &mut Vec<u64>| match r {
        Ok(ns) => lat.push(ns),
        Err(e) => {
            errors += 1;
            first_error.get_or_insert(e);
        }
    };
    let t_start = monotonic_clock::now();
    loop {
        while slots.len() < c as usize && started < n {
            started += 1;
            match start(url) {
                Step::Again(s) => slots.push(s),
                Step::Done(r) => finish(r, &mut lat),
            }
        }
        if slots.is_empty() {
            break;
        }
        let ready = {
            let ps: Vec<&Pollable> = slots.iter().map(Slot::pollable).collect();
            poll(&ps)
        };
        let mut is_ready = vec![false; slots.len()];
        for i in ready {
            is_ready[i as usize] = true;
        }
        for (slot, ready) in std::mem::take(&mut slots).into_iter().zip(is_ready) {
            if !ready {
                slots.push(slot);
                continue;
            }
            match advance(slot) {
                Step::Again(s) => slots.push(s),
                Step::Done(r) => finish(r, &mut lat),
            }
        }
    }
    let elapsed = monotonic_clock::now().saturating_sub(t_start);
    figures(n, c, lat, errors, first_error, elapsed, "")
}

/// The figures of a run as one JSON object (and a newline); `extra` is more `"k":v,` pairs.
fn figures(n: u32, c: u32, mut lat: Vec<u64>, errors: u32, first_error: Option<String>, elapsed: u64, extra: &str) -> String {
    lat.sort_unstable();
    let us = |ns: u64| ns as f64 / 1000.0;
    let pct = |p: f64| if lat.is_empty() { 0.0 } else { us(lat[(((lat.len() - 1) as f64) * p).round() as usize]) };
    let mean = if lat.is_empty() { 0.0 } else { us(lat.iter().sum::<u64>()) / lat.len() as f64 };
    let err = first_error.map_or("null".to_string(), |e| format!("\"{}\"", e.replace('\\', "\\\\").replace('"', "\\\"")));
    format!(
        "{{{extra}\"n\":{n},\"c\":{c},\"ok\":{},\"errors\":{errors},\"first_error\":{err},\"elapsed_us\":{:.1},\"rps\":{:.1},\"min_us\":{:.1},\"p50_us\":{:.1},\"p90_us\":{:.1},\"p99_us\":{:.1},\"max_us\":{:.1},\"mean_us\":{:.1}}}\n",
        lat.len(),
        us(elapsed),
        lat.len() as f64 / (elapsed as f64 / 1e9).max(1e-9),
        pct(0.0),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0),
        mean,
    )
}

/// `/tcp-load`: one TCP connection to `host:port` (a line echo server), then N round trips
/// of one line each (write a line, read the answering line), each timed; the connect is
/// timed apart (`connect_us`). Stops at the first failure.
pub fn tcp(host: &str, port: u16, n: u32) -> String {
    let t0 = monotonic_clock::now();
    let mut conn = match super::net::connect(host, port) {
        Ok(c) => c,
        Err(e) => return figures(n, 1, Vec::new(), n, Some(e.name().to_string()), 0, "\"connect_us\":0,"),
    };
    let connect = monotonic_clock::now().saturating_sub(t0);
    let mut lat: Vec<u64> = Vec::with_capacity(n as usize);
    let mut first_error = None;
    let t_start = monotonic_clock::now();
    for i in 0..n {
        let t = monotonic_clock::now();
        if !conn.write_all(format!("{i}\n").as_bytes()) {
            first_error = Some("write failed".to_string());
            break;
        }
        match conn.read_line() {
            Some(line) if line.ends_with(&format!(": {i}")) => lat.push(monotonic_clock::now().saturating_sub(t)),
            Some(line) => {
                first_error = Some(format!("unexpected reply {line:?}"));
                break;
            }
            None => {
                first_error = Some("connection-closed".to_string());
                break;
            }
        }
    }
    let elapsed = monotonic_clock::now().saturating_sub(t_start);
    conn.finish();
    let errors = n - lat.len() as u32;
    figures(n, 1, lat, errors, first_error, elapsed, &format!("\"connect_us\":{:.1},", connect as f64 / 1000.0))
}
