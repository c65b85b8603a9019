//! Request bodies: Kubernetes' 3 MiB limit, answered with a 413 Status the client gets.
//!
//! A handler that answers before reading a body (an error, or a body over the limit) left
//! the rest of it unread: hyper then closed the connection with the client still sending,
//! and the kernel answered the client's next segments with a reset, so the client saw
//! "connection reset" (or, over HTTP/2, a stream reset) instead of the 413. So every body
//! of a write (POST, PUT, PATCH, DELETE) is read whole here, before the request goes on:
//! over the limit, the rest is read and thrown away (up to [`DRAIN_LIMIT`] bytes, within
//! [`DRAIN_TIME`]) and then the 413 is sent, so the connection stays usable. A client that
//! announces a larger body and waits for `100 Continue` is answered at once, before it
//! sends anything. Beyond the drain limit the connection is closed after the 413.
//!
//! Streams are not read here: exec, attach and port-forward upgrades, the proxy
//! subresources (their bodies go to the node or pod as they come) and the registry
//! (`/v2/`, blobs have its own limits).

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use futures::StreamExt as _;

use super::error::ApiError;
use super::http::MAX_BODY;

/// How much of a too-large body is read and discarded so the client gets the 413.
const DRAIN_LIMIT: usize = 256 * 1024 * 1024;
/// How long a too-large body may take to be discarded.
const DRAIN_TIME: Duration = Duration::from_secs(30);

/// Kubernetes' 413 (apiserver's limitedReadBody).
pub(crate) fn too_large() -> ApiError {
    ApiError::new(413, "RequestEntityTooLarge", format!("Request entity too large: limit is {MAX_BODY}"))
}

/// Whether this request's body is a stream for someone else, not a document to read.
fn streams(req: &Request) -> bool {
    let path = req.uri().path();
    if path == "/v2" || path.starts_with("/v2/") || req.headers().contains_key(header::UPGRADE) {
        return true;
    }
    // /api/v1/[namespaces/NS/](pods|services|nodes)/NAME/proxy[/...]
    let segs: Vec<&str> = path.trim_start_matches('/').splitn(8, '/').collect();
    let rest = match segs.as_slice() {
        ["api", "v1", "namespaces", _, rest @ ..] => rest,
        ["api", "v1", rest @ ..] => rest,
        _ => return false,
    };
    matches!(rest, [r, _, "proxy", ..] if matches!(*r, "pods" | "services" | "nodes"))
}

/// What reading a body ended with.
enum Read {
    Whole(Bytes),
    TooLarge { drained: bool },
    /// The client stopped sending (or the connection failed).
    Failed,
}

async fn read(body: Body) -> Read {
    let mut stream = body.into_data_stream();
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { return Read::Failed };
        len += chunk.len();
        if len > MAX_BODY {
            drop(chunks);
            let drain = async {
                while let Some(c) = stream.next().await {
                    let Ok(c) = c else { return false };
                    len += c.len();
                    if len > DRAIN_LIMIT {
                        return false;
                    }
                }
                true
            };
            let drained = tokio::time::timeout(DRAIN_TIME, drain).await.unwrap_or(false);
            return Read::TooLarge { drained };
        }
        chunks.push(chunk);
    }
    match chunks.len() {
        0 => Read::Whole(Bytes::new()),
        1 => Read::Whole(chunks.pop().unwrap_or_default()),
        _ => Read::Whole(Bytes::from(chunks.concat())),
    }
}

/// Middleware: reads each write's body whole (at most [`MAX_BODY`]), or answers 413.
pub(crate) async fn read_whole(req: Request, next: Next) -> Response {
    if !matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH | Method::DELETE) || streams(&req) {
        return next.run(req).await;
    }
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let waits_to_send = req.headers().get(header::EXPECT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if waits_to_send && declared.is_some_and(|n| n > MAX_BODY as u64) {
        // Answered before hyper sends 100 Continue: the client never sends the body.
        return with_close(too_large().into_response());
    }
    let (parts, body) = req.into_parts();
    match read(body).await {
        Read::Whole(bytes) => {
            super::audit::record_request_body(&bytes);
            next.run(Request::from_parts(parts, Body::from(bytes))).await
        }
        Read::TooLarge { drained: true } => too_large().into_response(),
        Read::TooLarge { drained: false } => with_close(too_large().into_response()),
        Read::Failed => ApiError::bad_request("the request body could not be read").into_response(),
    }
}

fn with_close(mut r: Response) -> Response {
    r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, uri: &str) -> Request {
        axum::http::Request::builder().method(method).uri(uri).body(Body::empty()).expect("request")
    }

    #[test]
    fn streams_are_proxies_upgrades_and_the_registry() {
        assert!(streams(&req(Method::POST, "/api/v1/namespaces/ns/pods/p/proxy/upload")));
        assert!(streams(&req(Method::POST, "/api/v1/namespaces/ns/services/s:80/proxy")));
        assert!(streams(&req(Method::PUT, "/api/v1/nodes/n/proxy/x")));
        assert!(streams(&req(Method::PATCH, "/v2/team/app/blobs/uploads/1")));
        assert!(!streams(&req(Method::PUT, "/api/v1/namespaces/ns/configmaps/proxy")));
        assert!(!streams(&req(Method::POST, "/api/v1/namespaces/ns/pods")));
        assert!(!streams(&req(Method::POST, "/apis/apps/v1/namespaces/proxy/deployments")));
        let mut upgrade = req(Method::POST, "/api/v1/namespaces/ns/pods/p/exec");
        upgrade.headers_mut().insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        assert!(streams(&upgrade));
    }

    async fn call(body: Body, headers: &[(&str, &str)]) -> (u16, serde_json::Value, Option<usize>) {
        use tower::ServiceExt as _;
        let router = axum::Router::new()
            .route("/api/v1/namespaces/ns/configmaps", axum::routing::post(|b: Body| async move { axum::body::to_bytes(b, usize::MAX).await.map(|b| b.len().to_string()).unwrap_or_default() }))
            .layer(axum::middleware::from_fn(read_whole));
        let mut r = axum::http::Request::builder().method(Method::POST).uri("/api/v1/namespaces/ns/configmaps");
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let resp = router.oneshot(r.body(body).expect("request")).await.expect("infallible");
        let code = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
        let len = std::str::from_utf8(&bytes).ok().and_then(|s| s.parse().ok());
        (code, serde_json::from_slice(&bytes).unwrap_or_default(), len)
    }

    #[tokio::test]
    async fn a_body_over_3_mib_is_read_to_its_end_and_refused_with_413() {
        let (code, _, len) = call(Body::from(vec![b'a'; MAX_BODY]), &[]).await;
        assert_eq!((code, len), (200, Some(MAX_BODY)));
        // 64 MiB in 1 MiB chunks: every chunk is consumed before the 413.
        let consumed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = consumed.clone();
        let chunks = futures::stream::iter(0..64).map(move |_| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, std::io::Error>(Bytes::from(vec![b'a'; 1024 * 1024]))
        });
        let (code, status, _) = call(Body::from_stream(chunks), &[]).await;
        assert_eq!(code, 413);
        assert_eq!(status["reason"], "RequestEntityTooLarge");
        assert_eq!(status["message"], "Request entity too large: limit is 3145728");
        assert_eq!(consumed.load(std::sync::atomic::Ordering::SeqCst), 64);
    }

    #[tokio::test]
    async fn a_client_waiting_for_100_continue_is_refused_before_it_sends() {
        let big = (MAX_BODY + 1).to_string();
        let (code, status, _) = call(Body::empty(), &[("content-length", &big), ("expect", "100-continue")]).await;
        assert_eq!(code, 413);
        assert_eq!(status["code"], 413);
    }
}
