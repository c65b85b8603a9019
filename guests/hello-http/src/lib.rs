//! hello-http: a wasi:http/incoming-handler component, the node agent's sample HTTP
//! container. Routes (anything else is 404, a wrong method 405):
//! - `GET /`             200 "Hello from Flotilla\n"
//! - `GET /env`          the environment it sees, `NAME=value` one per line
//! - `GET|POST /echo`    the request body, unchanged
//! - `GET /slow?ms=N`    sleeps N ms on the wasi monotonic clock, then "slept N ms\n"
//! - `GET /headers`      the request headers, `name: value` one per line
//!
//! Linked with the proxy adapter, so it imports the wasi:http/proxy world plus
//! wasi:cli/environment (for /env): the host must link that interface too.

use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasip2::io::streams::StreamError;

wasip2::http::proxy::export!(HelloHttp);

struct HelloHttp;

impl wasip2::exports::http::incoming_handler::Guest for HelloHttp {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let (status, body) = route(request);
        respond(response_out, status, &body);
    }
}

fn route(request: IncomingRequest) -> (u16, Vec<u8>) {
    let path_with_query = request.path_with_query().unwrap_or_else(|| "/".to_string());
    let (path, query) = match path_with_query.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (path_with_query, String::new()),
    };
    let method = request.method();
    let is_get = matches!(method, Method::Get);
    match path.as_str() {
        "/" if is_get => (200, b"Hello from Flotilla\n".to_vec()),
        "/env" if is_get => {
            let mut out = String::new();
            for (name, value) in wasip2::cli::environment::get_environment() {
                out.push_str(&format!("{name}={value}\n"));
            }
            (200, out.into_bytes())
        }
        "/echo" if is_get || matches!(method, Method::Post) => match read_body(request) {
            Ok(body) => (200, body),
            Err(e) => (500, format!("reading body: {e}\n").into_bytes()),
        },
        "/slow" if is_get => {
            let ms = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("ms="))
                .map(str::parse::<u64>);
            match ms {
                Some(Ok(ms)) => {
                    let nanos = ms.saturating_mul(1_000_000);
                    wasip2::clocks::monotonic_clock::subscribe_duration(nanos).block();
                    (200, format!("slept {ms} ms\n").into_bytes())
                }
                _ => (400, b"usage: /slow?ms=N\n".to_vec()),
            }
        }
        "/headers" if is_get => {
            let mut out = Vec::new();
            for (name, value) in request.headers().entries() {
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(&value);
                out.push(b'\n');
            }
            (200, out)
        }
        "/" | "/env" | "/echo" | "/slow" | "/headers" => (405, b"method not allowed\n".to_vec()),
        _ => (404, format!("not found: {path}\n").into_bytes()),
    }
}

/// Reads the whole request body.
fn read_body(request: IncomingRequest) -> Result<Vec<u8>, String> {
    let body = request.consume().map_err(|()| "body already consumed".to_string())?;
    let stream = body.stream().map_err(|()| "body stream already taken".to_string())?;
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => return Err(e.to_debug_string()),
        }
    }
    drop(stream);
    drop(wasip2::http::types::IncomingBody::finish(body));
    Ok(out)
}

fn respond(response_out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::new();
    // Appending a valid constant header to fresh, mutable fields cannot fail.
    let _ = headers.append("content-type", b"text/plain; charset=utf-8");
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(out_body) = response.body() else { return };
    ResponseOutparam::set(response_out, Ok(response));
    let Ok(stream) = out_body.write() else { return };
    // blocking-write-and-flush takes at most 4096 bytes per call.
    if body.chunks(4096).any(|chunk| stream.blocking_write_and_flush(chunk).is_err()) {
        return; // client went away; dropping the body without finish aborts the response
    }
    drop(stream);
    let _ = OutgoingBody::finish(out_body, None);
}
