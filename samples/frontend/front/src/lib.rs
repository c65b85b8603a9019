//! The frontend sample's front container: a wasi:http/incoming-handler component on port
//! 8080. For each `GET /` it asks the sidecar of its own pod for a quote, over localhost
//! (`http://localhost:9090/quote`, an in-process call on Flotilla), and answers
//! `front <POD_NAME> says: <quote>` (text, or a small HTML page when the client accepts
//! text/html). If the sidecar fails it answers 502 with the error; other paths are 404.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingRequest, OutgoingResponse, ResponseOutparam, Scheme,
};
use wasip2::io::streams::StreamError;

wasip2::http::proxy::export!(Front);

/// Where the sidecar serves: the same pod, so localhost.
const SIDECAR: &str = "localhost:9090";

struct Front;

fn env(name: &str) -> Option<String> {
    wasip2::cli::environment::get_environment().into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

impl wasip2::exports::http::incoming_handler::Guest for Front {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".into());
        let html = request.headers().get("accept").iter().any(|v| String::from_utf8_lossy(v).contains("text/html"));
        if !(path == "/" || path.starts_with("/?")) {
            return respond(response_out, 404, "text/plain", "not found\n");
        }
        let pod = env("POD_NAME").unwrap_or_else(|| "front".into());
        match get(SIDECAR, "/quote") {
            Ok((200, quote)) => {
                let quote = quote.trim_end();
                if html {
                    let page = format!(
                        "<!doctype html>\n<title>frontend</title>\n<p>front <b>{}</b> says:</p>\n<blockquote>{}</blockquote>\n",
                        escape(&pod),
                        escape(quote)
                    );
                    respond(response_out, 200, "text/html", &page)
                } else {
                    respond(response_out, 200, "text/plain", &format!("front {pod} says: {quote}\n"))
                }
            }
            Ok((status, body)) => respond(
                response_out,
                502,
                "text/plain",
                &format!("front {pod}: the quotes sidecar answered {status}: {}\n", body.trim_end()),
            ),
            Err(e) => respond(response_out, 502, "text/plain", &format!("front {pod}: the quotes sidecar failed: {e}\n")),
        }
    }
}

/// `GET http://{authority}{path}`: the status and the body as text.
fn get(authority: &str, path: &str) -> Result<(u16, String), String> {
    let req = OutgoingRequest::new(Fields::new());
    req.set_scheme(Some(&Scheme::Http)).map_err(|()| "bad scheme".to_string())?;
    req.set_authority(Some(authority)).map_err(|()| format!("bad authority {authority:?}"))?;
    req.set_path_with_query(Some(path)).map_err(|()| format!("bad path {path:?}"))?;
    let pending = outgoing_handler::handle(req, None).map_err(|e| format!("{e:?}"))?;
    let resp = loop {
        match pending.get() {
            Some(Ok(Ok(resp))) => break resp,
            Some(Ok(Err(e))) => return Err(format!("{e:?}")),
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
            Err(StreamError::LastOperationFailed(e)) => return Err(format!("reading the body: {}", e.to_debug_string())),
        }
    }
    drop(stream);
    drop(IncomingBody::finish(body));
    Ok((status, String::from_utf8_lossy(&out).into_owned()))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn respond(response_out: ResponseOutparam, status: u16, content_type: &str, body: &str) {
    let headers = Fields::new();
    let _ = headers.set("content-type", &[format!("{content_type}; charset=utf-8").into_bytes()]);
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(out) = response.body() else { return };
    ResponseOutparam::set(response_out, Ok(response));
    if let Ok(stream) = out.write() {
        let _ = stream.blocking_write_and_flush(body.as_bytes());
        drop(stream);
    }
    let _ = OutgoingBody::finish(out, None);
}
