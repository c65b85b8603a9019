//! The Flotilla hello sample: a wasi:http/incoming-handler component (it runs unchanged
//! under `wasmtime serve -S cli`). `GET /` answers "<GREETING> from <POD_NAME>\n", where
//! both come from the environment the pod spec grants; any other path is 404.

use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

wasip2::http::proxy::export!(Hello);

struct Hello;

fn env(name: &str) -> Option<String> {
    wasip2::cli::environment::get_environment().into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".into());
        let (status, body) = if path == "/" || path.starts_with("/?") {
            let greeting = env("GREETING").unwrap_or_else(|| "Hello".into());
            let pod = env("POD_NAME").unwrap_or_else(|| "Flotilla".into());
            (200, format!("{greeting} from {pod}\n"))
        } else {
            (404, "not found\n".to_string())
        };
        let headers = Fields::new();
        let _ = headers.set("content-type", &[b"text/plain; charset=utf-8".to_vec()]);
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
}
