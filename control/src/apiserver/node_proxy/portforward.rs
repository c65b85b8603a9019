//! pods/portforward: kubectl's upgrade (a WebSocket with subprotocol
//! `SPDY/3.1+portforward.k8s.io`, or the plain `Upgrade: SPDY/3.1` it falls back to) is
//! passed through to the node's `/portForward/{namespace}/{pod}`, which terminates SPDY
//! (node/src/portforward/).
//!
//! Invariants: the upgrade headers the protocol needs (the WebSocket key, version and
//! subprotocols; `X-Stream-Protocol-Version`) go to the node unchanged, so its answer
//! (accept key, chosen protocol) is valid for the client; after the 101 the bytes are
//! copied both ways unchanged until either side closes or the API server shuts down; a
//! node that refuses the upgrade has its answer passed on as a Status.

use std::sync::Arc;

use axum::http::{HeaderName, Method, StatusCode, header};
use axum::response::Response;

use super::{SubRequest, clients, encode_query, has_token, node_base, node_failure, path_segment, read_limited, splice_upgrade, unreachable_node};
use crate::apiserver::App;
use crate::apiserver::error::ApiError;
use crate::apiserver::resources::ResourceInfo;

const STREAM_PROTOCOL: HeaderName = HeaderName::from_static("x-stream-protocol-version");

/// The two upgrades kubectl asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Upgrade {
    WebSocket,
    Spdy,
}

pub(super) async fn port_forward(app: &Arc<App>, info: &'static ResourceInfo, r: SubRequest<'_>) -> Result<Response, ApiError> {
    if !matches!(r.method, Method::GET | Method::POST) {
        return Err(ApiError::method_not_allowed(format!("the server does not allow this method on the requested resource ({})", r.method)));
    }
    let pod = app.api.get(info, Some(r.namespace), r.name)?;
    let upgrading = has_token(&r.headers, header::CONNECTION, "upgrade");
    let upgrade = if upgrading && has_token(&r.headers, header::UPGRADE, "websocket") {
        Upgrade::WebSocket
    } else if upgrading && has_token(&r.headers, header::UPGRADE, "spdy") {
        Upgrade::Spdy
    } else {
        return Err(ApiError::bad_request("Upgrade request required"));
    };
    let Some(on_upgrade) = r.on_upgrade else {
        return Err(ApiError::bad_request("Upgrade request required (port-forward needs HTTP/1.1)"));
    };
    let target = node_base(app, &pod.value, r.name)?;
    let mut url = format!("{}/portForward/{}/{}", target.base, path_segment(r.namespace), path_segment(r.name));
    if !r.query.is_empty() {
        let params: Vec<(&str, &str)> = r.query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        url.push('?');
        url.push_str(&encode_query(&params));
    }
    let mut req = clients(target.sha256)?
        .upgrade
        .request(r.method.clone(), &url)
        .bearer_auth(app.authn.admin_token())
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, if upgrade == Upgrade::WebSocket { "websocket" } else { "SPDY/3.1" });
    for h in [header::SEC_WEBSOCKET_KEY, header::SEC_WEBSOCKET_VERSION, header::SEC_WEBSOCKET_PROTOCOL, STREAM_PROTOCOL] {
        for v in r.headers.get_all(&h) {
            req = req.header(h.clone(), v.clone());
        }
    }
    let resp = req.send().await.map_err(|e| unreachable_node(&e))?;
    let status = resp.status();
    if status != StatusCode::SWITCHING_PROTOCOLS {
        let body = read_limited(resp, 64 * 1024).await;
        return Ok(node_failure(status, &body));
    }
    let copy = [header::SEC_WEBSOCKET_ACCEPT, header::SEC_WEBSOCKET_PROTOCOL, STREAM_PROTOCOL];
    Ok(splice_upgrade(app, resp, on_upgrade, &copy, None, "port-forward", (r.namespace, r.name)))
}
