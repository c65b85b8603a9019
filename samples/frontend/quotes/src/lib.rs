//! The frontend sample's sidecar: a wasi:http/incoming-handler component on port 9090,
//! called by the front container of its pod over localhost. Routes (others are 404):
//! - `GET /quote`      one quote, picked by the wall clock's milliseconds (a fresh
//!   instance serves each request, so there is no request counter to keep)
//! - `GET /quote?n=K`  quote K (modulo their number), for a reproducible answer
//! - `GET /quotes`     every quote, one a line

use wasip2::clocks::wall_clock;
use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

wasip2::http::proxy::export!(Quotes);

const QUOTES: &[&str] = &[
    "\"Simplicity is prerequisite for reliability.\" - Edsger W. Dijkstra",
    "\"Premature optimization is the root of all evil.\" - Donald Knuth",
    "\"Make it work, make it right, make it fast.\" - Kent Beck",
    "\"The best way to predict the future is to invent it.\" - Alan Kay",
    "\"Talk is cheap. Show me the code.\" - Linus Torvalds",
    "\"Programs must be written for people to read.\" - Harold Abelson",
    "\"There are only two hard things in computer science: cache invalidation and naming things.\" - Phil Karlton",
    "\"Controlling complexity is the essence of computer programming.\" - Brian Kernighan",
];

struct Quotes;

impl wasip2::exports::http::incoming_handler::Guest for Quotes {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let pq = request.path_with_query().unwrap_or_else(|| "/".into());
        let (path, query) = pq.split_once('?').unwrap_or((pq.as_str(), ""));
        let n = query.split('&').find_map(|kv| kv.strip_prefix("n=")).and_then(|n| n.parse::<usize>().ok());
        let (status, body) = match path {
            "/quote" => {
                let i = n.unwrap_or_else(|| {
                    let now = wall_clock::now();
                    (now.seconds * 1000 + u64::from(now.nanoseconds / 1_000_000)) as usize
                });
                (200, format!("{}\n", QUOTES[i % QUOTES.len()]))
            }
            "/quotes" => (200, QUOTES.iter().map(|q| format!("{q}\n")).collect()),
            _ => (404, "not found\n".to_string()),
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
