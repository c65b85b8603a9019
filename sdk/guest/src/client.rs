//! Outgoing HTTP over wasi:http/outgoing-handler: calling another Service, a pod, or a
//! sidecar of the same pod.
//!
//! On Flotilla the pod network routes `http://SERVICE/` (same namespace),
//! `http://SERVICE.NAMESPACE/`, `http://SERVICE.NAMESPACE.svc.cluster.local:PORT/`, a
//! ClusterIP or pod IP, and `http://localhost:PORT/` (another container of the same
//! pod), in-process when the target runs on the same node. Addresses outside the
//! cluster are refused unless the node allows pod egress (`--allow-pod-egress`), and
//! NetworkPolicy applies.
//!
//! ```ignore
//! let quote = flotilla_guest::client::get("http://quotes/quote")?.text()?;
//! let resp = client::Request::post("http://users:8080/users").header("content-type", "application/json").body(json).send()?;
//! ```

use std::fmt::{self, Display};
use std::time::Duration;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme};

use crate::http::serve::{fields, read_all, write_all};

/// Why a request got no response: a bad URL, or the wasi:http error code (e.g.
/// `ConnectionRefused`, `DnsError(..)` for an unknown Service, `ConnectionTimeout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub url: String,
    pub message: String,
}

impl Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.url, self.message)
    }
}

impl std::error::Error for Error {}

/// `GET url`.
pub fn get(url: &str) -> Result<Response, Error> {
    Request::get(url).send()
}

/// A URL split as wasi:http wants it. Pure (tested).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Target<'a> {
    pub https: bool,
    pub authority: &'a str,
    pub path_with_query: String,
}

pub(crate) fn split_url(url: &str) -> Option<Target<'_>> {
    let (https, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        return None;
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() {
        return None;
    }
    let path_with_query = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    Some(Target { https, authority, path_with_query })
}

/// An outgoing request being built.
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    timeout: Option<Duration>,
}

/// A response, body read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first value of header `name` (case-insensitive) as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body parsed as JSON.
    #[cfg(feature = "json")]
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

impl Request {
    /// A request with any method.
    pub fn new(method: &str, url: &str) -> Request {
        Request { method: method.to_ascii_uppercase(), url: url.to_string(), headers: Vec::new(), body: Vec::new(), timeout: None }
    }
    pub fn get(url: &str) -> Request {
        Request::new("GET", url)
    }
    pub fn post(url: &str) -> Request {
        Request::new("POST", url)
    }
    pub fn put(url: &str) -> Request {
        Request::new("PUT", url)
    }
    pub fn delete(url: &str) -> Request {
        Request::new("DELETE", url)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Request {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// Sets a JSON body and `content-type: application/json`.
    #[cfg(feature = "json")]
    pub fn json<T: serde::Serialize + ?Sized>(self, value: &T) -> Request {
        let body = serde_json::to_vec(value).unwrap_or_default();
        self.header("content-type", "application/json").body(body)
    }

    /// Connect and first-byte timeout (default: the host's).
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = Some(timeout);
        self
    }

    /// Sends it and reads the whole response.
    pub fn send(self) -> Result<Response, Error> {
        let err = |message: String| Error { url: self.url.clone(), message };
        let target = split_url(&self.url).ok_or_else(|| err("not an http:// or https:// URL".into()))?;
        let req = OutgoingRequest::new(fields(&self.headers));
        let method = match self.method.as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_string()),
        };
        req.set_method(&method).map_err(|()| err(format!("bad method {:?}", self.method)))?;
        req.set_scheme(Some(&if target.https { Scheme::Https } else { Scheme::Http })).map_err(|()| err("bad scheme".into()))?;
        req.set_authority(Some(target.authority)).map_err(|()| err(format!("bad authority {:?}", target.authority)))?;
        req.set_path_with_query(Some(&target.path_with_query)).map_err(|()| err(format!("bad path {:?}", target.path_with_query)))?;
        let body = req.body().map_err(|()| err("request body already taken".into()))?;
        let options = self.timeout.map(|t| {
            let o = RequestOptions::new();
            let ns = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
            let _ = o.set_connect_timeout(Some(ns));
            let _ = o.set_first_byte_timeout(Some(ns));
            o
        });
        let pending = outgoing_handler::handle(req, options).map_err(|e| err(format!("{e:?}")))?;
        {
            let stream = body.write().map_err(|()| err("request body stream already taken".into()))?;
            write_all(&stream, &self.body).map_err(|e| err(format!("sending the body: {e}")))?;
        }
        OutgoingBody::finish(body, None).map_err(|e| err(format!("{e:?}")))?;
        let resp = loop {
            match pending.get() {
                Some(Ok(Ok(resp))) => break resp,
                Some(Ok(Err(e))) => return Err(err(format!("{e:?}"))),
                Some(Err(())) => return Err(err("response already taken".into())),
                None => pending.subscribe().block(),
            }
        };
        let status = resp.status();
        let headers = resp.headers().entries();
        let incoming = resp.consume().map_err(|()| err("body already consumed".into()))?;
        let body = read_all(&incoming).map_err(|e| err(format!("reading the body: {e}")))?;
        drop(IncomingBody::finish(incoming));
        Ok(Response { status, headers, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = |u| split_url(u).map(|t| (t.https, t.authority, t.path_with_query));
        assert_eq!(t("http://quotes/quote?n=1"), Some((false, "quotes", "/quote?n=1".to_string())));
        assert_eq!(t("http://quotes.default.svc.cluster.local:8080"), Some((false, "quotes.default.svc.cluster.local:8080", "/".to_string())));
        assert_eq!(t("https://10.43.0.7:443?x"), Some((true, "10.43.0.7:443", "/?x".to_string())));
        assert_eq!(t("ftp://x/"), None);
        assert_eq!(t("http:///x"), None);
    }
}
