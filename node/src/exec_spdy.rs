//! `kubectl exec` over SPDY/3.1 (`v4.channel.k8s.io`), as kubectl before 1.30 speaks it
//! (and newer ones fall back to), served as the kubelet serves it
//! (`pkg/kubelet/cri/streaming/remotecommand`): the client opens one stream per channel,
//! named by its `streamtype` header (`error`, `stdin`, `stdout`, `stderr`, `resize`); once
//! every stream the request asked for is there, a fresh instance of the container runs
//! the command; its output goes out as DATA on the stdout/stderr streams, the client's
//! stdin DATA comes in (its FIN closes the guest's stdin); when the instance exits, the
//! output streams end (FIN) and the error stream carries the Status JSON kubectl turns into
//! its exit code, then ends too.
//!
//! Invariants: frames leave through one writer task in order (header compression is per
//! connection); every accepted stream gets a SYN_REPLY; client pings are echoed; the
//! instance is killed when the client goes away (end of connection, GOAWAY) or the node
//! shuts down; streams that do not all arrive within the creation timeout end the
//! session with the reason on the error stream.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{Sink, SinkExt as _, Stream, StreamExt as _};
use tokio::sync::{mpsc, watch};

use crate::portforward::spdy::{Decoder, Encoder, FLAG_FIN, Frame, header, rst};
use crate::runtime::{ExitReason, ExitStatus, OutputSink};
use crate::server::{ExecRequest, exec_status};

/// The one remotecommand protocol served over SPDY (the Status JSON on the error stream).
pub(crate) const PROTOCOL: &str = "v4.channel.k8s.io";
/// How long the client may take to open the streams it asked for.
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Most stdin held for an instance that has not started (its streams are not all open).
const EARLY_STDIN_LIMIT: usize = 1 << 20;
/// Largest DATA frame sent.
const CHUNK: usize = 32 * 1024;

/// Stream ids of the channels, as the client opened them.
#[derive(Default, Debug)]
struct Streams {
    error: Option<u32>,
    stdin: Option<u32>,
    stdout: Option<u32>,
    stderr: Option<u32>,
    resize: Option<u32>,
}

impl Streams {
    /// Whether every stream `req` needs has arrived (the kubelet's expected count).
    fn complete(&self, req: &ExecRequest) -> bool {
        self.error.is_some()
            && (!req.stdin || self.stdin.is_some())
            && (!req.stdout || self.stdout.is_some())
            && (req.tty || !req.stderr || self.stderr.is_some())
            && (!req.tty || self.resize.is_some())
    }
}

/// Guest output, as DATA frames on its stream.
struct Sink_ {
    out: mpsc::UnboundedSender<Frame>,
    stdout: Option<u32>,
    stderr: Option<u32>,
}

impl OutputSink for Sink_ {
    fn write(&self, stream: crate::runtime::Stream, bytes: &[u8]) {
        let id = match stream {
            crate::runtime::Stream::Stdout => self.stdout,
            crate::runtime::Stream::Stderr => self.stderr,
        };
        if let Some(id) = id {
            for chunk in bytes.chunks(CHUNK) {
                let _ = self.out.send(Frame::Data { stream: id, flags: 0, data: Bytes::copy_from_slice(chunk) });
            }
        }
    }
}

/// Serves one exec session: `incoming` is the client's bytes, `outgoing` takes ours.
pub(crate) async fn run<R, W, F>(mut incoming: R, outgoing: W, req: ExecRequest, start: F, mut shutdown: watch::Receiver<bool>)
where
    R: Stream<Item = io::Result<Bytes>> + Unpin + Send,
    W: Sink<Bytes, Error = io::Error> + Unpin + Send + 'static,
    F: FnOnce(Option<mpsc::Receiver<Bytes>>, Arc<dyn OutputSink>, watch::Receiver<bool>) -> BoxFuture<'static, ExitStatus>,
{
    let (out, out_rx) = mpsc::unbounded_channel::<Frame>();
    let writer = tokio::spawn(write_frames(outgoing, out_rx));
    let (kill_tx, kill_rx) = watch::channel(false);
    let mut decoder = Decoder::default();
    let mut streams = Streams::default();
    let mut start = Some(start);
    let mut stdin_tx: Option<mpsc::Sender<Bytes>> = None;
    let mut early_stdin: Vec<Bytes> = Vec::new();
    let mut early_bytes = 0usize;
    let mut stdin_closed = false;
    let (done_tx, mut done_rx) = mpsc::channel::<ExitStatus>(1);
    let deadline = tokio::time::sleep(STREAM_CREATION_TIMEOUT);
    tokio::pin!(deadline);
    let mut client_gone = false;
    let status = 'session: loop {
        tokio::select! {
            chunk = incoming.next() => {
                let Some(Ok(bytes)) = chunk else {
                    client_gone = true;
                    break 'session None;
                };
                decoder.push(&bytes);
                loop {
                    let frame = match decoder.next_frame() {
                        Ok(Some(f)) => f,
                        Ok(None) => break,
                        Err(error) => {
                            tracing::debug!(%error, "exec: bad SPDY from the client");
                            client_gone = true;
                            break 'session None;
                        }
                    };
                    match frame {
                        Frame::SynStream { stream, headers, .. } => {
                            let slot = match header(&headers, "streamtype") {
                                Some("error") => &mut streams.error,
                                Some("stdin") => &mut streams.stdin,
                                Some("stdout") => &mut streams.stdout,
                                Some("stderr") => &mut streams.stderr,
                                Some("resize") => &mut streams.resize,
                                _ => {
                                    let _ = out.send(Frame::RstStream { stream, status: rst::PROTOCOL_ERROR });
                                    continue;
                                }
                            };
                            *slot = Some(stream);
                            let _ = out.send(Frame::SynReply { stream, flags: 0, headers: Vec::new() });
                            if start.is_some() && streams.complete(&req) {
                                let (tx, rx) = if req.stdin { let (t, r) = mpsc::channel(16); (Some(t), Some(r)) } else { (None, None) };
                                let stderr = if req.tty { streams.stdout } else { streams.stderr };
                                let sink: Arc<dyn OutputSink> = Arc::new(Sink_ { out: out.clone(), stdout: streams.stdout, stderr });
                                let instance = (start.take().expect("once"))(rx, sink, kill_rx.clone());
                                let done = done_tx.clone();
                                tokio::spawn(async move {
                                    let _ = done.send(instance.await).await;
                                });
                                // Stdin the client sent before the last stream opened.
                                if let Some(tx) = &tx {
                                    for data in early_stdin.drain(..) {
                                        if tx.send(data).await.is_err() {
                                            break;
                                        }
                                    }
                                }
                                stdin_tx = if stdin_closed { None } else { tx };
                            }
                        }
                        Frame::Data { stream, flags, data } => {
                            if Some(stream) == streams.stdin {
                                if start.is_some() {
                                    early_bytes += data.len();
                                    if early_bytes > EARLY_STDIN_LIMIT {
                                        tracing::debug!("exec: the client sent too much stdin before opening its streams");
                                        client_gone = true;
                                        break 'session None;
                                    }
                                    if !data.is_empty() {
                                        early_stdin.push(data);
                                    }
                                } else if let Some(tx) = &stdin_tx && !data.is_empty() && tx.send(data).await.is_err() {
                                    stdin_tx = None;
                                }
                                if flags & FLAG_FIN != 0 {
                                    stdin_closed = true;
                                    stdin_tx = None;
                                }
                            }
                        }
                        Frame::Ping { id } => {
                            let _ = out.send(Frame::Ping { id });
                        }
                        Frame::GoAway { .. } => {
                            client_gone = true;
                            break 'session None;
                        }
                        _ => {}
                    }
                }
            }
            status = done_rx.recv() => break 'session status,
            () = &mut deadline, if start.is_some() => {
                if let Some(id) = streams.error {
                    let msg = format!("timed out waiting for the client's streams (have {streams:?})");
                    let _ = out.send(Frame::Data { stream: id, flags: FLAG_FIN, data: Bytes::from(msg) });
                }
                break 'session None;
            }
            () = raised(&mut shutdown) => {
                let _ = kill_tx.send(true);
                break 'session done_rx.recv().await;
            }
        }
    };
    // The client left (or never started it): nobody reads the result.
    let _ = kill_tx.send(true);
    if let Some(status) = status
        && !client_gone
    {
        let stderr = if req.tty { streams.stdout } else { streams.stderr };
        if status.code != 0 && !status.message.is_empty() && status.reason != ExitReason::Killed
            && let Some(id) = stderr
        {
            let _ = out.send(Frame::Data { stream: id, flags: 0, data: Bytes::from(format!("{}\n", status.message)) });
        }
        for id in [streams.stdout, streams.stderr].into_iter().flatten() {
            let _ = out.send(Frame::Data { stream: id, flags: FLAG_FIN, data: Bytes::new() });
        }
        if let Some(id) = streams.error {
            let json = exec_status(&req.command, &status);
            let _ = out.send(Frame::Data { stream: id, flags: FLAG_FIN, data: Bytes::from(json) });
        }
    }
    drop(out);
    // Let the writer flush; the client closes the connection once it has read the status.
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
}

/// Resolves when `flag` turns true; never if its sender goes first.
async fn raised(flag: &mut watch::Receiver<bool>) {
    if flag.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Encodes frames in order and writes them; ends when every sender is gone.
async fn write_frames<W: Sink<Bytes, Error = io::Error> + Unpin>(mut sink: W, mut frames: mpsc::UnboundedReceiver<Frame>) {
    let mut encoder = Encoder::default();
    while let Some(frame) = frames.recv().await {
        let bytes = match encoder.encode(&frame) {
            Ok(b) => b,
            Err(error) => {
                tracing::warn!(%error, "exec: cannot encode a frame");
                break;
            }
        };
        if sink.send(bytes).await.is_err() {
            break;
        }
    }
    let _ = sink.flush().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Stream as Out;

    /// A client's frames as bytes, and a reader of the server's frames.
    struct Client {
        enc: Encoder,
        dec: Decoder,
        to_server: mpsc::UnboundedSender<io::Result<Bytes>>,
        from_server: mpsc::UnboundedReceiver<Bytes>,
    }

    impl Client {
        fn send(&mut self, f: Frame) {
            let _ = self.to_server.send(Ok(self.enc.encode(&f).unwrap()));
        }

        async fn next(&mut self) -> Option<Frame> {
            loop {
                if let Some(f) = self.dec.next_frame().unwrap() {
                    return Some(f);
                }
                let b = tokio::time::timeout(Duration::from_secs(10), self.from_server.recv()).await.ok()??;
                self.dec.push(&b);
            }
        }

        fn open(&mut self, stream: u32, kind: &str) {
            self.send(Frame::SynStream { stream, associated: 0, priority: 0, flags: 0, headers: vec![("streamtype".into(), kind.into())] });
        }
    }

    fn session(req: ExecRequest, exit: i32) -> (Client, tokio::task::JoinHandle<()>) {
        let (to_server, rx) = mpsc::unbounded_channel();
        let (tx, from_server) = mpsc::unbounded_channel::<Bytes>();
        let incoming = tokio_stream_from(rx);
        let outgoing = futures::sink::unfold(tx, |tx, b: Bytes| async move {
            tx.send(b).map_err(|_| io::Error::other("closed"))?;
            Ok::<_, io::Error>(tx)
        });
        let (_stop_tx, stop) = watch::channel(false);
        let task = tokio::spawn(async move {
            let _keep = _stop_tx;
            run(
                incoming,
                Box::pin(outgoing),
                req,
                move |stdin: Option<mpsc::Receiver<Bytes>>, out: Arc<dyn OutputSink>, _kill| {
                    Box::pin(async move {
                        out.write(Out::Stdout, b"hello\n");
                        if let Some(mut stdin) = stdin {
                            while let Some(b) = stdin.recv().await {
                                out.write(Out::Stdout, &b);
                            }
                        }
                        out.write(Out::Stderr, b"oops\n");
                        ExitStatus { code: exit, reason: ExitReason::Completed, message: String::new(), fuel: 0 }
                    }) as BoxFuture<'static, ExitStatus>
                },
                stop,
            )
            .await
        });
        let client = Client { enc: Encoder::default(), dec: Decoder::default(), to_server, from_server };
        (client, task)
    }

    fn tokio_stream_from(mut rx: mpsc::UnboundedReceiver<io::Result<Bytes>>) -> impl Stream<Item = io::Result<Bytes>> + Unpin + Send {
        Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }

    /// Collects DATA per stream until the error stream's FIN.
    async fn collect(c: &mut Client) -> std::collections::HashMap<u32, Vec<u8>> {
        let mut data: std::collections::HashMap<u32, Vec<u8>> = Default::default();
        while let Some(f) = c.next().await {
            if let Frame::Data { stream, flags, data: d } = f {
                data.entry(stream).or_default().extend_from_slice(&d);
                if stream == 1 && flags & FLAG_FIN != 0 {
                    break;
                }
            }
        }
        data
    }

    #[tokio::test]
    async fn runs_once_all_streams_are_open_and_reports_the_exit_code() {
        let req = ExecRequest { command: vec!["x".into()], stdin: true, stdout: true, stderr: true, tty: false };
        let (mut c, task) = session(req, 3);
        c.open(1, "error");
        c.open(3, "stdin");
        c.open(5, "stdout");
        for id in [1, 3, 5] {
            assert!(matches!(c.next().await, Some(Frame::SynReply { stream, .. }) if stream == id));
        }
        c.send(Frame::Data { stream: 3, flags: FLAG_FIN, data: Bytes::from_static(b"typed\n") });
        // Nothing runs until the stderr stream is there too.
        c.open(7, "stderr");
        c.send(Frame::Ping { id: 1 });
        let data = collect(&mut c).await;
        assert_eq!(data[&5], b"hello\ntyped\n");
        assert_eq!(data[&7], b"oops\n");
        let status: serde_json::Value = serde_json::from_slice(&data[&1]).unwrap();
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(status["details"]["causes"][0]["message"], "3");
        drop(c);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn success_is_a_success_status_and_unknown_streams_are_reset() {
        let req = ExecRequest { command: vec!["x".into()], stdin: false, stdout: true, stderr: false, tty: false };
        let (mut c, task) = session(req, 0);
        c.open(1, "error");
        assert!(matches!(c.next().await, Some(Frame::SynReply { stream: 1, .. })));
        c.open(3, "bogus");
        assert!(matches!(c.next().await, Some(Frame::RstStream { stream: 3, .. })));
        c.open(5, "stdout");
        let data = collect(&mut c).await;
        assert_eq!(data[&5], b"hello\n");
        let status: serde_json::Value = serde_json::from_slice(&data[&1]).unwrap();
        assert_eq!(status["status"], "Success");
        drop(c);
        task.await.unwrap();
    }
}
