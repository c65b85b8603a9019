//! Outgoing wasi:http requests: the [`WasiHttpHooks`] of every component store. The
//! instance's [`Network`] decides where a request goes; this file carries the decision
//! out: an in-process call of a node-local [`HttpService`], a [`Forward`] to a pod of
//! another node, real egress through wasmtime-wasi-http's `default_send_request`, or the
//! wasi:http error a real network would give.
//!
//! Invariants: without a network every request is denied (HTTP-request-denied); a
//! refusal or an unknown name is answered at once, never after a wait; an in-process
//! call adds no socket, no TLS and no copy of the body (frames are passed through), and
//! the target runs in its own store with its own limits, in its own task; real egress
//! gives up connecting after [`EGRESS_CONNECT_TIMEOUT`] unless the guest set its own
//! connect timeout.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt as _;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::{Dispatch, Forward, ForwardError, HttpService, Network};

/// Connect timeout of real egress when the guest set none (a failed route shows within 3 s).
pub(super) const EGRESS_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The response future [`WasiHttpHooks::send_request`] returns.
type Sent = Box<dyn Future<Output = wasmtime_wasi_http::Result<(http::Response<WasiBody>, IoFuture)>> + Send>;
type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// The hooks of one store: its instance's network.
pub(super) struct Outgoing {
    network: Option<Arc<dyn Network>>,
}

impl Outgoing {
    pub fn new(network: Option<Arc<dyn Network>>) -> Outgoing {
        Outgoing { network }
    }
}

impl WasiHttpHooks for Outgoing {
    fn send_request(&mut self, request: http::Request<WasiBody>, options: Option<RequestOptions>, _fut: IoFuture) -> Sent {
        let Some(network) = &self.network else { return failed(Error::HttpRequestDenied) };
        let Some((host, port)) = target(request.uri()) else { return failed(Error::HttpRequestUriInvalid) };
        match network.route(host, port) {
            Dispatch::Local(service) => Box::new(call_local(service, request, options)),
            Dispatch::External { host, port } => Box::new(egress(request, options, host, port)),
            Dispatch::Refused => failed(Error::ConnectionRefused),
            Dispatch::NoSuchName => failed(Error::DnsError { rcode: Some("NXDOMAIN".to_string()), info_code: None }),
            Dispatch::Denied => failed(Error::HttpRequestDenied),
            Dispatch::Remote(hop) => Box::new(call_remote(hop, request, options)),
        }
    }
}

fn failed(e: Error) -> Sent {
    Box::new(std::future::ready(Err(e)))
}

/// Host (IPv6 without brackets) and port (defaulted from the scheme) of a request URI.
fn target(uri: &http::Uri) -> Option<(&str, u16)> {
    let authority = uri.authority()?;
    let host = authority.host();
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let port = authority.port_u16().unwrap_or(if uri.scheme() == Some(&http::uri::Scheme::HTTPS) { 443 } else { 80 });
    (!host.is_empty()).then_some((host, port))
}

/// Calls `service` in-process. It gets what a server behind a socket would see: an
/// origin-form request target and the guest's Host header.
async fn call_local(
    service: Arc<HttpService>,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> wasmtime_wasi_http::Result<(http::Response<WasiBody>, IoFuture)> {
    let (mut parts, body) = request.into_parts();
    parts.uri = match parts.uri.path_and_query() {
        Some(pq) => http::Uri::from(pq.clone()),
        None => http::Uri::from_static("/"),
    };
    let body = body.map_err(std::io::Error::other).boxed_unsync();
    let call = service.handle(http::Request::from_parts(parts, body));
    let response = match options.and_then(|o| o.first_byte_timeout) {
        Some(limit) => tokio::time::timeout(limit, call).await.map_err(|_| Error::ConnectionReadTimeout)?,
        None => call.await,
    };
    let response = response.map(|body| {
        body.map_err(|e| {
            tracing::debug!(error = %e, "in-process response body failed");
            Error::ConnectionTerminated
        })
        .boxed_unsync()
    });
    Ok((response, Box::new(std::future::ready(Ok(()))) as IoFuture))
}

/// Sends the request to a pod of another node through `hop`; a refusal there is
/// connection-refused here.
async fn call_remote(
    hop: Box<dyn Forward>,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> wasmtime_wasi_http::Result<(http::Response<WasiBody>, IoFuture)> {
    let request = request.map(|body| body.map_err(std::io::Error::other).boxed_unsync());
    let call = hop.forward(request, options.as_ref().and_then(|o| o.connect_timeout));
    let response = match options.and_then(|o| o.first_byte_timeout) {
        Some(limit) => tokio::time::timeout(limit, call).await.map_err(|_| Error::ConnectionReadTimeout)?,
        None => call.await,
    };
    let response = match response {
        Ok(r) => r,
        Err(ForwardError::Refused) => return Err(Error::ConnectionRefused),
        Err(ForwardError::Terminated(e)) => {
            tracing::debug!(error = %e, "cross-node request failed");
            return Err(Error::ConnectionTerminated);
        }
    };
    let response = response.map(|body| {
        body.map_err(|e| {
            tracing::debug!(error = %e, "cross-node response body failed");
            Error::ConnectionTerminated
        })
        .boxed_unsync()
    });
    Ok((response, Box::new(std::future::ready(Ok(()))) as IoFuture))
}

/// Real egress to `host:port` over the host's network.
async fn egress(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    host: String,
    port: u16,
) -> wasmtime_wasi_http::Result<(http::Response<WasiBody>, IoFuture)> {
    let host = if host.contains(':') { format!("[{host}]") } else { host };
    let mut parts = request.uri().clone().into_parts();
    parts.authority = Some(format!("{host}:{port}").parse().map_err(|_| Error::HttpRequestUriInvalid)?);
    *request.uri_mut() = http::Uri::from_parts(parts).map_err(|_| Error::HttpRequestUriInvalid)?;
    let mut options = options.unwrap_or_default();
    options.connect_timeout = options.connect_timeout.or(Some(EGRESS_CONNECT_TIMEOUT));
    let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
    Ok((response.map(|b| b.boxed_unsync()), Box::new(io) as IoFuture))
}

#[cfg(test)]
mod tests {
    use super::target;

    #[test]
    fn targets_default_their_port_and_drop_brackets() {
        let t = |u: &str| target(&u.parse().unwrap()).map(|(h, p)| (h.to_string(), p));
        assert_eq!(t("http://web:8080/x"), Some(("web".into(), 8080)));
        assert_eq!(t("http://web/x"), Some(("web".into(), 80)));
        assert_eq!(t("https://Web.Example.com/"), Some(("Web.Example.com".into(), 443)));
        assert_eq!(t("http://[::1]:81/"), Some(("::1".into(), 81)));
        assert_eq!(t("/just/a/path"), None);
    }
}
