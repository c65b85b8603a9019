//! flotilla-guest: write Flotilla guests (wasm32-wasip2 components) in safe Rust.
//!
//! - [`http`]: an HTTP handler for the wasi:http proxy world with a small [`http::Router`]
//!   (method + path with `:param` and `*rest` segments, query, headers, bodies, status
//!   codes), exported with [`serve!`].
//! - [`cli`]: a command's entry point (`wasi:cli/run`): arguments and exact exit codes.
//! - [`env`] and [`fs`]: the environment the pod spec grants and the files of its volumes
//!   (ConfigMap and Secret volumes are plain files), in both kinds of guest.
//! - [`log`]: structured logs, one line per record, that `kubectl logs` shows well.
//! - [`client`]: outgoing HTTP requests over wasi:http, e.g. to another Service by name
//!   (`http://quotes/`, `http://quotes.default.svc.cluster.local:8080/`).
//!
//! An HTTP guest is a `cdylib` built with the proxy adapter; a command is a `bin`:
//!
//! ```ignore
//! use flotilla_guest::http::{Request, Response, Router};
//!
//! fn app() -> Router {
//!     Router::new()
//!         .get("/", |_req: &Request| "hello\n")
//!         .get("/users/:id", |req: &Request| format!("user {}\n", req.param("id").unwrap_or("")))
//! }
//!
//! flotilla_guest::serve!(app);
//! ```
//!
//! Invariants: user code needs no `unsafe` (the export macros expand to the generated
//! bindings' own glue); nothing here uses Rust std's filesystem or environment, which the
//! proxy adapter does not provide, so [`env`] and [`fs`] work the same in HTTP guests and
//! commands. The pure parts (routing, query and path decoding, log lines, argument
//! parsing) need no WASI and are unit-tested on the host.

#![forbid(unsafe_code)]

pub mod cli;
pub mod client;
pub mod env;
pub mod fs;
pub mod http;
pub mod log;
mod url;

pub use url::{percent_decode, percent_encode};

/// serde_json, re-exported with the `json` feature (e.g. for `serde_json::json!`).
#[cfg(feature = "json")]
pub use serde_json;

/// For the macros only: not a stable interface.
#[doc(hidden)]
pub mod __private {
    pub use wasip2;
}

/// Exports an HTTP handler as this component's `wasi:http/incoming-handler`.
///
/// The argument is a function (or closure) that builds the handler: a [`http::Router`],
/// or any `Fn(&Request) -> impl IntoResponse`. It runs for each request (Flotilla, like
/// `wasmtime serve`, gives every request a fresh instance, so nothing survives between
/// requests anyway).
///
/// ```ignore
/// flotilla_guest::serve!(app);                    // fn app() -> Router
/// flotilla_guest::serve!(|| |_req: &Request| "ok\n");
/// ```
#[macro_export]
macro_rules! serve {
    ($make:expr) => {
        #[doc(hidden)]
        struct __FlotillaGuestHttp;
        impl $crate::__private::wasip2::exports::http::incoming_handler::Guest for __FlotillaGuestHttp {
            fn handle(
                request: $crate::__private::wasip2::http::types::IncomingRequest,
                response_out: $crate::__private::wasip2::http::types::ResponseOutparam,
            ) {
                let handler = ($make)();
                $crate::http::__handle(&handler, request, response_out);
            }
        }
        $crate::__private::wasip2::http::proxy::export!(__FlotillaGuestHttp);
    };
}
