//! The frontend sample's sidecar: an HTTP component (guest SDK) on port 9090, called by
//! the front container of its pod over localhost. Routes (others are 404):
//! - `GET /quote`      one quote, picked by the wall clock's milliseconds (a fresh
//!   instance serves each request, so there is no request counter to keep)
//! - `GET /quote?n=K`  quote K (modulo their number), for a reproducible answer
//! - `GET /quotes`     every quote, one a line

#![forbid(unsafe_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use flotilla_guest::http::{Request, Router};

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

fn app() -> Router {
    Router::new().get("/quote", quote).get("/quotes", |_: &Request| QUOTES.iter().map(|q| format!("{q}\n")).collect::<String>())
}

fn quote(req: &Request) -> String {
    let i = req.query("n").and_then(|n| n.parse::<usize>().ok()).unwrap_or_else(|| {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as usize)
    });
    format!("{}\n", QUOTES[i % QUOTES.len()])
}

flotilla_guest::serve!(app);
