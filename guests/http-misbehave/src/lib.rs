//! http-misbehave: a wasi:http/incoming-handler component that misbehaves on request,
//! for the node agent's isolation and limit tests. Routes:
//! - `/`       200 "ok\n" (readiness)
//! - `/trap`   executes `unreachable` (a wasm trap)
//! - `/panic`  panics (panic=abort, so also a trap)
//! - `/loop`   busy-loops forever without host calls (needs fuel or epoch interruption)
//! - `/oom`    allocates and touches 1 MiB chunks until memory runs out
//! - `/grpc.health.v1.Health/Check` a gRPC health check: SERVING, or NOT_SERVING for
//!   the service `down` (grpc-status 0 in the trailers)

use wasip2::http::types::{Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasip2::io::streams::StreamError;

wasip2::http::proxy::export!(Misbehave);

struct Misbehave;

impl wasip2::exports::http::incoming_handler::Guest for Misbehave {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let path = path.split('?').next().unwrap_or_default();
        eprintln!("http-misbehave: {path}");
        match path {
            "/" => respond(response_out, 200, b"ok\n"),
            "/trap" => core::arch::wasm32::unreachable(),
            "/panic" => panic!("http-misbehave: panic requested"),
            "/loop" => spin(),
            "/oom" => hog(),
            "/grpc.health.v1.Health/Check" => health(request, response_out),
            _ => respond(response_out, 404, b"not found\n"),
        }
    }
}

/// Answers a grpc.health.v1 HealthCheckRequest: SERVING (1), NOT_SERVING (2) for `down`.
fn health(request: IncomingRequest, response_out: ResponseOutparam) {
    let mut body = Vec::new();
    if let Ok(incoming) = request.consume() {
        if let Ok(stream) = incoming.stream() {
            loop {
                match stream.blocking_read(64 * 1024) {
                    Ok(chunk) => body.extend_from_slice(&chunk),
                    Err(StreamError::Closed) | Err(StreamError::LastOperationFailed(_)) => break,
                }
            }
        }
        drop(IncomingBody::finish(incoming));
    }
    // A 5-byte frame header, then field 1 (service) if set: 0x0a, length, bytes.
    let service = body.get(5..).and_then(|m| if m.first() == Some(&0x0a) { m.get(2..2 + usize::from(*m.get(1)?)) } else { None }).unwrap_or(b"");
    let status = if service == b"down" { 2 } else { 1 };
    let headers = Fields::new();
    let _ = headers.append("content-type", b"application/grpc");
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(200);
    let Ok(out_body) = response.body() else { return };
    ResponseOutparam::set(response_out, Ok(response));
    let Ok(stream) = out_body.write() else { return };
    if stream.blocking_write_and_flush(&[0, 0, 0, 0, 2, 0x08, status]).is_err() {
        return;
    }
    drop(stream);
    let trailers = Fields::new();
    let _ = trailers.append("grpc-status", b"0");
    let _ = OutgoingBody::finish(out_body, Some(trailers));
}

fn spin() -> ! {
    let mut x: u64 = std::hint::black_box(1);
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

fn hog() -> ! {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let chunk = vec![0xA5u8; 1 << 20];
        chunks.push(std::hint::black_box(chunk));
    }
}

fn respond(response_out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::new();
    let _ = headers.append("content-type", b"text/plain; charset=utf-8");
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(out_body) = response.body() else { return };
    ResponseOutparam::set(response_out, Ok(response));
    let Ok(stream) = out_body.write() else { return };
    // blocking-write-and-flush takes at most 4096 bytes per call.
    if body.chunks(4096).any(|chunk| stream.blocking_write_and_flush(chunk).is_err()) {
        return;
    }
    drop(stream);
    let _ = OutgoingBody::finish(out_body, None);
}
