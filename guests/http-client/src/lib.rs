//! http-client: a wasi:http/incoming-handler component that makes outgoing requests with
//! wasi:http/outgoing-handler, for the pod network's tests. Routes (others are 404):
//! - `GET /`                 200 "http-client\n"
//! - `GET /whoami`           the value of env POD_NAME (else "unknown"), one line
//! - `GET /fetch?url=U[&n=N][&timing=1]`
//!   GETs the percent-encoded URL `U` N times (default 1, at most 1000), one after the
//!   other, and answers 200 with one line per fetch: `STATUS BODY` (the body on one line,
//!   newlines shown as ` | `) or `error ERRORCODE` (the wasi:http error-code, as Rust's
//!   Debug prints it). With `timing=1` each line ends with ` Nus`: the fetch's time, from
//!   `outgoing-handler.handle` to the end of the body, on the monotonic clock.
//! - `GET /load?url=U&n=N[&c=C]`
//!   a load generator for benchmarks: GETs `U` N times (at most 1,000,000), keeping C
//!   requests in flight (default 1, at most 256; concurrent through wasi:io/poll over the
//!   outgoing requests' pollables), each body read to its end. Answers 200 with one JSON
//!   object: `n`, `c`, `ok` (status 200 and whole body), `errors`, `first_error`,
//!   `elapsed_us`, `rps` (ok / elapsed) and per-request latency (`handle` to end of body)
//!   `min_us`, `p50_us`, `p90_us`, `p99_us`, `max_us`, `mean_us`, all from
//!   wasi:clocks/monotonic-clock inside the guest.
//! - `GET /tcp-load?addr=HOST:PORT&n=N`
//!   one wasi:sockets TCP connection to a line echo server (tcp-echo), then N round trips
//!   of one line each, timed the same way; the same JSON plus `connect_us`.
//!
//! Linked with the proxy adapter; imports wasi:cli/environment too (for /whoami), and
//! wasi:sockets (tcp, ip-name-lookup; for /tcp-load, through tcp-echo's `net.rs`).

use wasip2::clocks::monotonic_clock;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingRequest, OutgoingBody, OutgoingRequest, OutgoingResponse, ResponseOutparam, Scheme,
};
use wasip2::io::streams::StreamError;

wasip2::http::proxy::export!(HttpClient);

struct HttpClient;

impl wasip2::exports::http::incoming_handler::Guest for HttpClient {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let (status, body) = route(&request);
        respond(response_out, status, body.as_bytes());
    }
}

fn route(request: &IncomingRequest) -> (u16, String) {
    let pq = request.path_with_query().unwrap_or_else(|| "/".to_string());
    let (path, query) = pq.split_once('?').unwrap_or((pq.as_str(), ""));
    let param = |name: &str| {
        query.split('&').find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('='))).map(percent_decode)
    };
    match path {
        "/" => (200, "http-client\n".to_string()),
        "/whoami" => {
            let me = wasip2::cli::environment::get_environment().into_iter().find(|(k, _)| k == "POD_NAME");
            (200, format!("{}\n", me.map_or_else(|| "unknown".to_string(), |(_, v)| v)))
        }
        "/fetch" => {
            let Some(url) = param("url") else { return (400, "usage: /fetch?url=U[&n=N][&timing=1]\n".to_string()) };
            let n = param("n").and_then(|n| n.parse::<u32>().ok()).unwrap_or(1).clamp(1, 1000);
            let timing = param("timing").as_deref() == Some("1");
            let mut out = String::new();
            for _ in 0..n {
                let t0 = monotonic_clock::now();
                let line = match fetch(&url) {
                    Ok((status, body)) => format!("{status} {}", one_line(&body)),
                    Err(e) => format!("error {e}"),
                };
                out.push_str(&line);
                if timing {
                    out.push_str(&format!(" {}us", (monotonic_clock::now() - t0) / 1000));
                }
                out.push('\n');
            }
            (200, out)
        }
        "/load" => {
            let Some(url) = param("url") else { return (400, "usage: /load?url=U&n=N[&c=C]\n".to_string()) };
            let n = param("n").and_then(|n| n.parse::<u32>().ok()).unwrap_or(100).clamp(1, 1_000_000);
            let c = param("c").and_then(|c| c.parse::<u32>().ok()).unwrap_or(1).clamp(1, 256);
            (200, load::run(&url, n, c))
        }
        "/tcp-load" => {
            let addr = param("addr").unwrap_or_default();
            let Some((host, Ok(port))) = addr.rsplit_once(':').map(|(h, p)| (h.to_string(), p.parse::<u16>())) else {
                return (400, "usage: /tcp-load?addr=HOST:PORT&n=N\n".to_string());
            };
            let n = param("n").and_then(|n| n.parse::<u32>().ok()).unwrap_or(100).clamp(1, 1_000_000);
            (200, load::tcp(&host, port, n))
        }
        _ => (404, format!("not found: {path}\n")),
    }
}

/// An outgoing GET of `url`, sent: its pending response.
fn send(url: &str) -> Result<wasip2::http::types::FutureIncomingResponse, String> {
    let (scheme, rest) = match url.split_once("://") {
        Some(("http", rest)) => (Scheme::Http, rest),
        Some(("https", rest)) => (Scheme::Https, rest),
        _ => return Err(format!("unsupported URL {url:?}")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let req = OutgoingRequest::new(Fields::new());
    req.set_scheme(Some(&scheme)).map_err(|()| "bad scheme".to_string())?;
    req.set_authority(Some(authority)).map_err(|()| format!("bad authority {authority:?}"))?;
    req.set_path_with_query(Some(path)).map_err(|()| format!("bad path {path:?}"))?;
    outgoing_handler::handle(req, None).map_err(|e| code(&e))
}

/// GETs `url`: the status and whole body, or the error as text.
fn fetch(url: &str) -> Result<(u16, Vec<u8>), String> {
    let pending = send(url)?;
    let resp = loop {
        match pending.get() {
            Some(Ok(Ok(resp))) => break resp,
            Some(Ok(Err(e))) => return Err(code(&e)),
            Some(Err(())) => return Err("response already taken".to_string()),
            None => pending.subscribe().block(),
        }
    };
    let status = resp.status();
    let body = resp.consume().map_err(|()| "body already consumed".to_string())?;
    let stream = body.stream().map_err(|()| "body stream already taken".to_string())?;
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => return Err(format!("reading body: {}", e.to_debug_string())),
        }
    }
    drop(stream);
    drop(wasip2::http::types::IncomingBody::finish(body));
    Ok((status, out))
}

mod load;
#[path = "../../tcp-echo/src/net.rs"]
mod net;

fn code(e: &ErrorCode) -> String {
    format!("{e:?}")
}

fn one_line(body: &[u8]) -> String {
    String::from_utf8_lossy(body).trim_end_matches('\n').replace('\n', " | ")
}

/// `%XX` escapes and `+` (a space) decoded; malformed escapes are kept as they are.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn respond(response_out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::new();
    let _ = headers.append("content-type", b"text/plain; charset=utf-8");
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(out_body) = response.body() else { return };
    ResponseOutparam::set(response_out, Ok(response));
    let Ok(stream) = out_body.write() else { return };
    if body.chunks(4096).any(|chunk| stream.blocking_write_and_flush(chunk).is_err()) {
        return;
    }
    drop(stream);
    let _ = OutgoingBody::finish(out_body, None);
}
