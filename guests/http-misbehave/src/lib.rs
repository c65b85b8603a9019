//! http-misbehave: a wasi:http/incoming-handler component that misbehaves on request,
//! for the node agent's isolation and limit tests. Routes:
//! - `/`       200 "ok\n" (readiness)
//! - `/trap`   executes `unreachable` (a wasm trap)
//! - `/panic`  panics (panic=abort, so also a trap)
//! - `/loop`   busy-loops forever without host calls (needs fuel or epoch interruption)
//! - `/oom`    allocates and touches 1 MiB chunks until memory runs out

use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

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
            _ => respond(response_out, 404, b"not found\n"),
        }
    }
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
