//! `kubectl attach` on the node (the kubelet's `/attach/{namespace}/{pod}/{container}`):
//! a WebSocket with exec's framing (`v5.channel.k8s.io`, `server::exec_session`) that
//! streams what the running container writes from now on, until it exits or the client
//! goes.
//!
//! Invariants: only a running container can be attached (its current log attempt); the
//! output comes from the container's log tap (`ContainerLogs::attach`), so attaching
//! changes nothing for the container or its logs; on a tty request stderr joins stdout;
//! with `stdin=true` the client's channel-0 bytes go to the container's stdin pipe when
//! its spec set `stdin: true` (`pod_table::StdinPipe`; closing the client's stdin or
//! leaving closes the container's only with `stdinOnce`), and are dropped otherwise; the
//! session ends with a Success status on channel 3 (as the kubelet's ServeAttach) when the
//! container's attempt ends.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::pod_table::{PodTable, StdinPipe};
use crate::runtime::{BoxBody, ExitReason, ExitStatus, OutputSink};
use crate::server::{ExecRequest, PROTOCOLS, exec_session, parse_bool, parse_query, text, websocket_handshake};

/// The streams an attach asks for (PodAttachOptions), validated as the kubelet does.
fn attach_request(query: Option<&str>) -> Result<ExecRequest, String> {
    let mut r = ExecRequest::default();
    for (k, v) in parse_query(query) {
        let flag = || parse_bool(&v).ok_or_else(|| format!("invalid value {v:?} for query parameter {k}"));
        match k.as_str() {
            "stdin" => r.stdin = flag()?,
            "stdout" => r.stdout = flag()?,
            "stderr" => r.stderr = flag()?,
            "tty" => r.tty = flag()?,
            _ => {}
        }
    }
    if !(r.stdin || r.stdout || r.stderr) {
        return Err("you must specify at least 1 of stdin, stdout, stderr".into());
    }
    Ok(r)
}

/// `/attach/{namespace}/{pod}/{container}`.
pub(crate) fn serve(pods: &PodTable, ns: &str, pod_name: &str, container: &str, req: Request<Incoming>, shutdown: watch::Receiver<bool>) -> Response<BoxBody> {
    let params = match attach_request(req.uri().query()) {
        Ok(p) => p,
        Err(msg) => return text(StatusCode::BAD_REQUEST, msg),
    };
    let Some(pod) = pods.get(ns, pod_name) else {
        return text(StatusCode::NOT_FOUND, format!("pod {pod_name:?} does not exist"));
    };
    let Some(entry) = pod.container(container) else {
        return text(StatusCode::NOT_FOUND, format!("container {container:?} not found in pod {pod_name:?}"));
    };
    let (accept, protocol) = match websocket_handshake(&req) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    // Tapped before answering: output written after the 101 is never missed.
    let Some(tap) = entry.logs.attach() else {
        return text(StatusCode::BAD_REQUEST, format!("container {container:?} in pod {pod_name:?} is not running"));
    };
    let pipe = if params.stdin { entry.stdin.clone() } else { None };
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(error) => return tracing::debug!(%error, "attach upgrade failed"),
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let run = move |stdin: Option<mpsc::Receiver<Bytes>>, out: Arc<dyn OutputSink>, kill: watch::Receiver<bool>| -> futures::future::BoxFuture<'static, ExitStatus> {
            Box::pin(follow(tap, stdin.zip(pipe), out, kill))
        };
        exec_session(ws, protocol == PROTOCOLS[0], params, run, shutdown).await;
    });
    crate::server::switching_protocols(protocol, &accept)
}

/// Copies the tapped output to the client until the attempt ends or `kill` (the client
/// left, the node stops), and the client's stdin (when asked for and the container has a
/// stdin pipe) to the running attempt's stdin.
async fn follow(
    mut tap: mpsc::Receiver<(crate::runtime::Stream, Bytes)>,
    stdin: Option<(mpsc::Receiver<Bytes>, Arc<StdinPipe>)>,
    out: Arc<dyn OutputSink>,
    mut kill: watch::Receiver<bool>,
) -> ExitStatus {
    let (mut input, pipe) = stdin.map_or((None, None), |(rx, pipe)| (Some(rx), Some(pipe)));
    let mut writer = pipe.as_ref().and_then(|p| p.writer());
    loop {
        tokio::select! {
            chunk = tap.recv() => match chunk {
                Some((stream, bytes)) => out.write(stream, &bytes),
                None => break,
            },
            bytes = async { match input.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => match bytes {
                Some(bytes) => {
                    if let Some(w) = &writer
                        && w.send(bytes).await.is_err()
                    {
                        writer = None;
                    }
                }
                // The client closed its stdin.
                None => {
                    input = None;
                    writer = None;
                    if let Some(p) = &pipe {
                        p.detached();
                    }
                }
            },
            () = async { let _ = kill.wait_for(|k| *k).await; } => break,
        }
    }
    drop(writer);
    if let Some(p) = &pipe {
        p.detached();
    }
    ExitStatus { code: 0, reason: ExitReason::Completed, message: String::new(), fuel: 0 }
}
