//! The frontend sample's front container: an HTTP component (guest SDK) on port 8080.
//! For each `GET /` it asks the quotes service for a quote and answers
//! `front <POD_NAME> says: <quote>` (text, or a small HTML page when the client accepts
//! text/html). The quotes service is its own pod's sidecar over localhost by default
//! (`http://localhost:9090`, an in-process call on Flotilla); env `QUOTES_URL` points it
//! elsewhere, e.g. `http://quotes` for quotes run as a Service of its own. If the quotes
//! service fails it answers 502 with the error; other paths are 404.

#![forbid(unsafe_code)]

use flotilla_guest::http::{Request, Response, Router};
use flotilla_guest::{client, env, warn};

fn app() -> Router {
    Router::new().get("/", front)
}

fn front(req: &Request) -> Response {
    let pod = env::var_or("POD_NAME", "front");
    let base = env::var_or("QUOTES_URL", "http://localhost:9090");
    let url = format!("{}/quote", base.trim_end_matches('/'));
    match client::get(&url) {
        Ok(r) if r.status == 200 => {
            let text = r.text();
            let quote = text.trim_end();
            if req.accepts("text/html") {
                Response::html(format!(
                    "<!doctype html>\n<title>frontend</title>\n<p>front <b>{}</b> says:</p>\n<blockquote>{}</blockquote>\n",
                    escape(&pod),
                    escape(quote)
                ))
            } else {
                Response::text(format!("front {pod} says: {quote}\n"))
            }
        }
        Ok(r) => {
            warn!("quotes answered an error", url = url, status = r.status);
            Response::text(format!("front {pod}: the quotes sidecar answered {}: {}\n", r.status, r.text().trim_end())).status(502)
        }
        Err(e) => {
            warn!("quotes failed", url = url, error = e.message);
            Response::text(format!("front {pod}: the quotes sidecar failed: {}\n", e.message)).status(502)
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

flotilla_guest::serve!(app);
