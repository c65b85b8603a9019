//! The wasi:http glue behind [`crate::serve!`]: an `IncomingRequest` becomes a
//! [`Request`] (the body read lazily), the handler's [`Response`] becomes an
//! `OutgoingResponse` whose body is written in chunks the stream accepts.

use wasip2::http::types::{Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasip2::io::streams::{OutputStream, StreamError};

use super::{Handler, Request, Response};

/// Answers one request with `handler` (what [`crate::serve!`] calls).
#[doc(hidden)]
pub fn __handle<H: Handler>(handler: &H, request: IncomingRequest, response_out: ResponseOutparam) {
    let mut req = to_request(request);
    let resp = handler.call(&mut req);
    drop(req);
    send(resp, response_out);
}

fn method_name(m: &Method) -> String {
    match m {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(s) => return s.to_ascii_uppercase(),
    }
    .to_string()
}

fn to_request(incoming: IncomingRequest) -> Request {
    let pq = incoming.path_with_query().unwrap_or_else(|| "/".to_string());
    let mut req = Request::new(&method_name(&incoming.method()), &pq);
    for (name, value) in incoming.headers().entries() {
        req = req.with_header(&name, value);
    }
    req.with_loader(Box::new(move || read_body(incoming)))
}

fn read_body(incoming: IncomingRequest) -> Result<Vec<u8>, String> {
    let body = incoming.consume().map_err(|()| "body already consumed".to_string())?;
    let out = read_all(&body)?;
    drop(IncomingBody::finish(body));
    Ok(out)
}

/// Reads an incoming body's stream to its end.
pub(crate) fn read_all(body: &IncomingBody) -> Result<Vec<u8>, String> {
    let stream = body.stream().map_err(|()| "body stream already taken".to_string())?;
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(out),
            Err(StreamError::LastOperationFailed(e)) => return Err(e.to_debug_string()),
        }
    }
}

/// Writes all of `bytes` (blocking-write-and-flush takes at most 4096 bytes a call).
pub(crate) fn write_all(stream: &OutputStream, bytes: &[u8]) -> Result<(), String> {
    for chunk in bytes.chunks(4096) {
        stream.blocking_write_and_flush(chunk).map_err(|e| match e {
            StreamError::Closed => "stream closed".to_string(),
            StreamError::LastOperationFailed(e) => e.to_debug_string(),
        })?;
    }
    Ok(())
}

pub(crate) fn fields(headers: &[(String, Vec<u8>)]) -> Fields {
    let f = Fields::new();
    for (k, v) in headers {
        // Forbidden or malformed headers are dropped, as the host would refuse them.
        let _ = f.append(k, v);
    }
    f
}

fn send(resp: Response, response_out: ResponseOutparam) {
    let out = OutgoingResponse::new(fields(&resp.headers));
    if out.set_status_code(resp.status).is_err() {
        let _ = out.set_status_code(500);
    }
    let Ok(body) = out.body() else { return };
    ResponseOutparam::set(response_out, Ok(out));
    if let Ok(stream) = body.write() {
        if write_all(&stream, &resp.body).is_err() {
            // The client went away: nothing more to send.
            return;
        }
        drop(stream);
    }
    let _ = OutgoingBody::finish(body, None);
}
