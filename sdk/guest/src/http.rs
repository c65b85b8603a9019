//! HTTP handlers for the wasi:http proxy world: [`Request`], [`Response`], the
//! [`Router`], and the glue [`crate::serve!`] expands to.
//!
//! A handler is any `Fn(&Request) -> R` where `R:` [`IntoResponse`]: a [`Response`], a
//! `String`/`&str` (200, text/plain), `(status, body)`, or a `Result` of those with an
//! [`HttpError`] (so `?` works). The router answers 404 `not found\n` for an unknown
//! path and 405 (with `Allow`) for a known path with another method; HEAD is served by
//! the GET route without the body.
//!
//! Each request runs in a fresh instance, and a trap or panic in a handler ends only
//! that request (Flotilla answers 500); the request deadline (60 s) answers 504.

mod router;
pub(crate) mod serve;

use std::cell::{Cell, OnceCell};
use std::fmt::{self, Display};

pub use router::Router;
#[doc(hidden)]
pub use serve::__handle;

/// The body loader of a request not yet read.
type BodyLoader = Box<dyn FnOnce() -> Result<Vec<u8>, String>>;

/// An incoming request. The body is read on first use of [`Request::body`].
pub struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, Vec<u8>)>,
    params: Vec<(String, String)>,
    body: OnceCell<Result<Vec<u8>, String>>,
    loader: Cell<Option<BodyLoader>>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request").field("method", &self.method).field("path", &self.path).field("query", &self.query).finish_non_exhaustive()
    }
}

impl Request {
    /// A request built in memory (for tests of handlers): `path_with_query` as on the
    /// request line, e.g. `/users/7?full=1`.
    pub fn new(method: &str, path_with_query: &str) -> Request {
        let (path, query) = path_with_query.split_once('?').unwrap_or((path_with_query, ""));
        Request {
            method: method.to_ascii_uppercase(),
            path: if path.is_empty() { "/".to_string() } else { path.to_string() },
            query: query.to_string(),
            headers: Vec::new(),
            params: Vec::new(),
            body: OnceCell::new(),
            loader: Cell::new(None),
        }
    }

    /// The same request with a header added.
    pub fn with_header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Request {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// The same request with this body.
    pub fn with_body(self, body: impl Into<Vec<u8>>) -> Request {
        let _ = self.body.set(Ok(body.into()));
        self
    }

    pub(crate) fn with_loader(self, loader: BodyLoader) -> Request {
        self.loader.set(Some(loader));
        self
    }

    /// `GET`, `POST`, … (upper case).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The path, still percent-encoded (`/users/7`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The raw query string, without `?` (empty if none).
    pub fn query_string(&self) -> &str {
        &self.query
    }

    /// A path parameter of the matched route (`:id` in `/users/:id`, `*rest`), decoded.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub(crate) fn set_params(&mut self, params: Vec<(String, String)>) {
        self.params = params;
    }

    /// The first query parameter `name`, decoded (`?q=a%20b` → `a b`).
    pub fn query(&self, name: &str) -> Option<String> {
        crate::url::parse_query(&self.query).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// Query parameter `name` parsed as a `T`; a 400 if present but unparsable.
    pub fn query_as<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, HttpError> {
        match self.query(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| HttpError::bad_request(format!("query parameter {name}: cannot parse {v:?}"))),
        }
    }

    /// Every query parameter in order, decoded.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        crate::url::parse_query(&self.query)
    }

    /// The first value of header `name` (case-insensitive) as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Every header as (lower-case name, value), in order.
    pub fn headers(&self) -> &[(String, Vec<u8>)] {
        &self.headers
    }

    /// True if the `accept` header names `media` (e.g. `text/html`).
    pub fn accepts(&self, media: &str) -> bool {
        self.headers.iter().filter(|(k, _)| k == "accept").any(|(_, v)| String::from_utf8_lossy(v).contains(media))
    }

    /// The whole body (read once, then kept). Fails with 400 if reading it failed.
    pub fn body(&self) -> Result<&[u8], HttpError> {
        let r = self.body.get_or_init(|| match self.loader.take() {
            Some(load) => load(),
            None => Ok(Vec::new()),
        });
        r.as_deref().map_err(|e| HttpError::bad_request(format!("reading the request body: {e}")))
    }

    /// The body as UTF-8 text; a 400 if it is not.
    pub fn text(&self) -> Result<&str, HttpError> {
        std::str::from_utf8(self.body()?).map_err(|_| HttpError::bad_request("the request body is not UTF-8"))
    }

    /// The body parsed as JSON; a 400 if it does not parse.
    #[cfg(feature = "json")]
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(self.body()?).map_err(|e| HttpError::bad_request(format!("invalid JSON: {e}")))
    }
}

/// A response: status, headers and a whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Vec::new() }
    }

    /// 200 with a `text/plain; charset=utf-8` body.
    pub fn text(body: impl Into<String>) -> Response {
        Response::new(200).header("content-type", "text/plain; charset=utf-8").body(body.into())
    }

    /// 200 with a `text/html; charset=utf-8` body.
    pub fn html(body: impl Into<String>) -> Response {
        Response::new(200).header("content-type", "text/html; charset=utf-8").body(body.into())
    }

    /// 200 with `value` as an `application/json` body.
    #[cfg(feature = "json")]
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => Response::new(200).header("content-type", "application/json").body(body),
            Err(e) => HttpError::internal(format!("encoding JSON: {e}")).into_response(),
        }
    }

    /// A redirect (302 unless changed with [`Response::status`]) to `location`.
    pub fn redirect(location: &str) -> Response {
        Response::new(302).header("location", location)
    }

    /// `404 not found\n`.
    pub fn not_found() -> Response {
        Response::text("not found\n").status(404)
    }

    /// The same response with another status.
    pub fn status(mut self, status: u16) -> Response {
        self.status = status;
        self
    }

    /// The same response with a header set (replacing one of the same name).
    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Response {
        let name = name.to_ascii_lowercase();
        self.headers.retain(|(k, _)| *k != name);
        self.headers.push((name, value.into()));
        self
    }

    /// The same response with this body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }
}

/// What a handler may return.
pub trait IntoResponse {
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for &str {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl<B: IntoResponse> IntoResponse for (u16, B) {
    fn into_response(self) -> Response {
        self.1.into_response().status(self.0)
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        }
    }
}

/// An error answered as `status` with `message` and a newline as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    pub status: u16,
    pub message: String,
}

impl HttpError {
    pub fn new(status: u16, message: impl Display) -> HttpError {
        HttpError { status, message: message.to_string() }
    }
    pub fn bad_request(message: impl Display) -> HttpError {
        HttpError::new(400, message)
    }
    pub fn not_found(message: impl Display) -> HttpError {
        HttpError::new(404, message)
    }
    pub fn internal(message: impl Display) -> HttpError {
        HttpError::new(500, message)
    }
    /// 502: an upstream (another Service) failed.
    pub fn bad_gateway(message: impl Display) -> HttpError {
        HttpError::new(502, message)
    }
}

impl Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut body = self.message;
        if !body.ends_with('\n') {
            body.push('\n');
        }
        Response::text(body).status(self.status)
    }
}

impl From<std::io::Error> for HttpError {
    fn from(e: std::io::Error) -> HttpError {
        HttpError::internal(e)
    }
}

impl From<crate::client::Error> for HttpError {
    fn from(e: crate::client::Error) -> HttpError {
        HttpError::bad_gateway(e)
    }
}

/// Something that answers requests: a [`Router`] or a handler function.
pub trait Handler {
    fn call(&self, req: &mut Request) -> Response;
}

impl<F, R> Handler for F
where
    F: Fn(&Request) -> R,
    R: IntoResponse,
{
    fn call(&self, req: &mut Request) -> Response {
        self(req).into_response()
    }
}

impl Handler for Router {
    fn call(&self, req: &mut Request) -> Response {
        self.dispatch(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_accessors() {
        let r = Request::new("get", "/a/b?x=1&y=a%20b&x=2").with_header("Accept", "text/html,*/*").with_body("hi");
        assert_eq!((r.method(), r.path(), r.query_string()), ("GET", "/a/b", "x=1&y=a%20b&x=2"));
        assert_eq!(r.query("x").as_deref(), Some("1"));
        assert_eq!(r.query("y").as_deref(), Some("a b"));
        assert_eq!(r.query_as::<u32>("x"), Ok(Some(1)));
        assert_eq!(r.query_as::<u32>("y").unwrap_err().status, 400);
        assert_eq!(r.header("ACCEPT"), Some("text/html,*/*"));
        assert!(r.accepts("text/html"));
        assert_eq!(r.text(), Ok("hi"));
        assert_eq!(Request::new("GET", "").path(), "/");
    }

    #[test]
    fn body_loaded_once() {
        let r = Request::new("POST", "/").with_loader(Box::new(|| Ok(b"abc".to_vec())));
        assert_eq!(r.body().unwrap(), b"abc");
        assert_eq!(r.body().unwrap(), b"abc");
        let bad = Request::new("POST", "/").with_loader(Box::new(|| Err("reset".into())));
        assert_eq!(bad.body().unwrap_err(), HttpError::bad_request("reading the request body: reset"));
    }

    #[test]
    fn into_response_shapes() {
        let r = "hi\n".into_response();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hi\n"[..]));
        assert_eq!(r.headers, vec![("content-type".to_string(), b"text/plain; charset=utf-8".to_vec())]);
        assert_eq!((201, "made").into_response().status, 201);
        let e: Result<Response, HttpError> = Err(HttpError::bad_gateway("upstream down"));
        let r = e.into_response();
        assert_eq!((r.status, r.body.as_slice()), (502, &b"upstream down\n"[..]));
        let r = Response::text("x").header("Content-Type", "text/csv");
        assert_eq!(r.headers, vec![("content-type".to_string(), b"text/csv".to_vec())]);
    }
}
