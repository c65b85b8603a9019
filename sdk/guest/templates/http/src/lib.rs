//! {{name}}: an HTTP component for Flotilla, written with the guest SDK (flotilla-guest).
//! Every request runs in a fresh instance of this component.
//!
//! - `GET /`              a greeting: the ConfigMap file /etc/{{name}}/greeting (else env
//!                        GREETING, else "Hello"), from the pod's name
//! - `GET /hello/:name`   `hello, NAME!` (`?times=N` repeats it)
//! - `POST /echo`         the request body back
//! - `GET /healthz`       `ok` (the readiness probe)

#![forbid(unsafe_code)]

use flotilla_guest::http::{HttpError, Request, Response, Router};
use flotilla_guest::{env, fs, info};

fn app() -> Router {
    Router::new()
        .get("/", index)
        .get("/hello/:name", hello)
        .post("/echo", echo)
        .get("/healthz", |_: &Request| "ok\n")
}

fn index(_req: &Request) -> String {
    let greeting = fs::read_to_string("/etc/{{name}}/greeting")
        .map(|s| s.trim().to_string())
        .ok()
        .or_else(|| env::var("GREETING"))
        .unwrap_or_else(|| "Hello".to_string());
    format!("{greeting} from {}\n", env::var_or("POD_NAME", "{{name}}"))
}

fn hello(req: &Request) -> Result<String, HttpError> {
    let name = req.param("name").unwrap_or("world");
    let times: usize = req.query_as("times")?.unwrap_or(1);
    info!("greeting", name = name, times = times);
    Ok(format!("hello, {name}!\n").repeat(times.clamp(1, 100)))
}

fn echo(req: &Request) -> Result<Response, HttpError> {
    let content_type = req.header("content-type").unwrap_or("application/octet-stream");
    Ok(Response::new(200).header("content-type", content_type).body(req.body()?.to_vec()))
}

flotilla_guest::serve!(app);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = app().handle(Request::new("GET", "/hello/Ada?times=2"));
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello, Ada!\nhello, Ada!\n"[..]));
        assert_eq!(app().handle(Request::new("GET", "/nope")).status, 404);
    }
}
