//! One `kubectl port-forward` connection: the SPDY session kubectl opens, served as the
//! kubelet serves it (`pkg/kubelet/cri/streaming/portforward/httpstream.go`).
//!
//! Per forwarded connection kubectl opens two streams with the same `requestid` header:
//! `streamtype: error` and `streamtype: data`, both naming the pod `port`. Every valid
//! stream gets a SYN_REPLY; an invalid one (no port, port 0, unknown type) is reset. Once
//! both streams of a request are there, the pod's port is opened ([`Forward::connect`])
//! and the data stream carries the bytes both ways: the client's FIN shuts the pod side's
//! write half, the pod side's end of stream sends our FIN and ends the forward (the
//! client's direction gets a second to drain). A port nobody listens on is
//! reported as text on the error stream, which kubectl prints before it gives up. The
//! error stream is closed (FIN) when the forward ends: kubectl waits for that.
//!
//! Invariants: frames are written by one task in order (the header compression context is
//! per connection); client pings (odd ids) are echoed; a request whose second stream does
//! not arrive within the creation timeout is reported on its error stream and dropped; a
//! RST_STREAM from the client ends that forward at once; when the session ends (the client
//! closes, a protocol error, the node shuts down) every forward of it ends.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{Sink, SinkExt as _, Stream, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio::sync::{mpsc, watch};

use super::spdy::{self, Decoder, Encoder, FLAG_FIN, Frame, Headers, header};
use crate::pod_table::PodEntry;

/// Opens a pod's port for one forwarded connection.
pub(crate) trait Forward: Send + Sync + 'static {
    /// Connects `stream` to `port` of `pod`, as to localhost inside it; the future carries
    /// the traffic until both directions end. Err is the reason, worded for the user.
    fn connect(&self, pod: &PodEntry, port: u16, stream: DuplexStream) -> Result<BoxFuture<'static, ()>, String>;
}

/// How long a request may wait for its second stream (the kubelet's default
/// streamCreationTimeout).
pub(crate) const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Buffer of the in-memory pipe between a data stream and the pod's port.
const PIPE: usize = 64 * 1024;
/// How long the client's direction may go on once the pod's has ended.
const UP_GRACE: Duration = Duration::from_secs(1);
/// Largest DATA frame sent.
const CHUNK: usize = 32 * 1024;

/// What one session forwards to.
pub(crate) struct Target {
    pub pod: Arc<PodEntry>,
    pub forward: Arc<dyn Forward>,
    pub stream_timeout: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Error,
    Data,
}

/// A stream the client opened and we accepted.
struct Accepted {
    /// Bytes the client sends on it (data streams), until its FIN.
    inbound: Option<mpsc::Sender<Bytes>>,
    /// Tells the forward using this stream that the client reset it.
    reset: Arc<watch::Sender<bool>>,
}

/// The streams of one request, until both are there.
struct Pair {
    port: u16,
    error: Option<u32>,
    data: Option<(u32, mpsc::Receiver<Bytes>)>,
    reset: Arc<watch::Sender<bool>>,
}

struct Session {
    out: mpsc::Sender<Frame>,
    target: Arc<Target>,
    /// Highest stream id the client opened.
    last_stream: u32,
    streams: HashMap<u32, Accepted>,
    pairs: HashMap<String, Pair>,
    timed_out: mpsc::Sender<String>,
    finished: mpsc::Sender<[u32; 2]>,
    closed: watch::Receiver<bool>,
}

/// Serves one SPDY session: `incoming` is the client's bytes (however they are framed on
/// the wire), `outgoing` takes ours. Returns when the session is over.
pub(crate) async fn run<R, W>(mut incoming: R, outgoing: W, target: Target, shutdown: watch::Receiver<bool>)
where
    R: Stream<Item = io::Result<Bytes>> + Unpin + Send,
    W: Sink<Bytes, Error = io::Error> + Unpin + Send + 'static,
{
    let (out, out_rx) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(write_frames(outgoing, out_rx));
    let (closed_tx, closed) = watch::channel(false);
    let (timed_out, mut timeouts) = mpsc::channel::<String>(16);
    let (finished, mut done) = mpsc::channel::<[u32; 2]>(16);
    let mut s = Session { out, target: Arc::new(target), last_stream: 0, streams: HashMap::new(), pairs: HashMap::new(), timed_out, finished, closed };
    let mut decoder = Decoder::default();
    let stop = crate::server::shutdown_signal(shutdown);
    tokio::pin!(stop);
    'session: loop {
        tokio::select! {
            chunk = incoming.next() => match chunk {
                Some(Ok(bytes)) => decoder.push(&bytes),
                Some(Err(error)) => {
                    tracing::debug!(%error, "port-forward connection failed");
                    break;
                }
                None => break,
            },
            Some(request) = timeouts.recv() => s.timed_out(&request).await,
            Some(ids) = done.recv() => {
                for id in ids {
                    s.streams.remove(&id);
                }
            }
            () = &mut stop => {
                let _ = s.out.send(Frame::GoAway { last_good: s.last_stream, status: spdy::goaway::OK }).await;
                break;
            }
        }
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    if !s.handle(frame).await {
                        break 'session;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::debug!(%error, "port-forward: not SPDY/3.1 this server accepts");
                    let _ = s.out.send(Frame::GoAway { last_good: s.last_stream, status: spdy::goaway::PROTOCOL_ERROR }).await;
                    break 'session;
                }
            }
        }
    }
    let _ = closed_tx.send(true);
    drop(s);
    let abort = writer.abort_handle();
    if tokio::time::timeout(Duration::from_secs(2), writer).await.is_err() {
        abort.abort();
    }
}

/// Encodes frames in order and writes them.
async fn write_frames<W: Sink<Bytes, Error = io::Error> + Unpin>(mut sink: W, mut frames: mpsc::Receiver<Frame>) {
    let mut encoder = Encoder::default();
    while let Some(frame) = frames.recv().await {
        let bytes = match encoder.encode(&frame) {
            Ok(b) => b,
            Err(error) => {
                tracing::warn!(%error, "port-forward: cannot encode a frame");
                break;
            }
        };
        if let Err(error) = sink.send(bytes).await {
            tracing::debug!(%error, "port-forward: the client is gone");
            break;
        }
    }
    let _ = sink.close().await;
}

/// Resolves when `flag` turns true; never if its sender goes first.
async fn raised(flag: &mut watch::Receiver<bool>) {
    if flag.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The stream type and port of a new stream, or why it is refused (the kubelet's words).
fn validate(headers: &Headers) -> Result<(Kind, u16), String> {
    let port = header(headers, "port").filter(|p| !p.is_empty()).ok_or("\"port\" header is required")?;
    let port: u16 = port.parse().map_err(|_| format!("unable to parse {port:?} as a port"))?;
    if port < 1 {
        return Err(format!("port \"{port}\" must be > 0"));
    }
    match header(headers, "streamtype") {
        None | Some("") => Err("\"streamType\" header is required".into()),
        Some("error") => Ok((Kind::Error, port)),
        Some("data") => Ok((Kind::Data, port)),
        Some(other) => Err(format!("invalid stream type {other:?}")),
    }
}

impl Session {
    async fn send(&self, frame: Frame) {
        let _ = self.out.send(frame).await;
    }

    /// Acts on one frame; false ends the session.
    async fn handle(&mut self, frame: Frame) -> bool {
        match frame {
            Frame::SynStream { stream, flags, headers, .. } => self.open(stream, flags, &headers).await,
            Frame::Data { stream, flags, data } => {
                if let Some(accepted) = self.streams.get_mut(&stream) {
                    if !data.is_empty()
                        && let Some(tx) = &accepted.inbound
                        && tx.send(data).await.is_err()
                    {
                        accepted.inbound = None;
                    }
                    if flags & FLAG_FIN != 0 {
                        accepted.inbound = None;
                    }
                }
            }
            Frame::RstStream { stream, .. } => {
                if let Some(accepted) = self.streams.remove(&stream) {
                    let _ = accepted.reset.send(true);
                }
            }
            // Client pings have odd ids; ours would be even, and we send none.
            Frame::Ping { id } if id % 2 == 1 => self.send(Frame::Ping { id }).await,
            Frame::GoAway { .. } => return false,
            _ => {}
        }
        true
    }

    async fn open(&mut self, stream: u32, flags: u8, headers: &Headers) {
        if stream.is_multiple_of(2) || stream <= self.last_stream {
            self.send(Frame::RstStream { stream, status: spdy::rst::PROTOCOL_ERROR }).await;
            return;
        }
        self.last_stream = stream;
        let (kind, port) = match validate(headers) {
            Ok(v) => v,
            Err(why) => {
                tracing::debug!(stream, "port-forward stream rejected: {why}");
                self.send(Frame::RstStream { stream, status: spdy::rst::CANCEL }).await;
                return;
            }
        };
        self.send(Frame::SynReply { stream, flags: 0, headers: Vec::new() }).await;
        // Old clients send no request id: the kubelet pairs consecutive ids.
        let request = header(headers, "requestid").filter(|r| !r.is_empty()).map(str::to_string).unwrap_or_else(|| match kind {
            Kind::Error => stream.to_string(),
            Kind::Data => stream.saturating_sub(2).to_string(),
        });
        if !self.pairs.contains_key(&request) {
            let reset = Arc::new(watch::channel(false).0);
            self.pairs.insert(request.clone(), Pair { port, error: None, data: None, reset });
            let (tx, timeout, mut closed, request) = (self.timed_out.clone(), self.target.stream_timeout, self.closed.clone(), request.clone());
            tokio::spawn(async move {
                tokio::select! {
                    () = tokio::time::sleep(timeout) => { let _ = tx.send(request).await; }
                    () = raised(&mut closed) => {}
                }
            });
        }
        let Some(pair) = self.pairs.get_mut(&request) else { return };
        let (inbound, rx) = match kind {
            Kind::Data => {
                let (tx, rx) = mpsc::channel(16);
                (Some(tx), Some(rx))
            }
            Kind::Error => (None, None),
        };
        let taken = match kind {
            Kind::Error => pair.error.is_some(),
            Kind::Data => pair.data.is_some(),
        };
        if taken {
            let what = if kind == Kind::Error { "error" } else { "data" };
            let msg = format!("error processing stream for request {request}: {what} stream already assigned");
            tracing::debug!("port-forward: {msg}");
            if let Some(error) = pair.error {
                let _ = self.out.send(Frame::Data { stream: error, flags: 0, data: Bytes::from(msg) }).await;
            }
            return;
        }
        self.streams.insert(stream, Accepted { inbound: if flags & FLAG_FIN != 0 { None } else { inbound }, reset: pair.reset.clone() });
        match (kind, rx) {
            (Kind::Data, Some(rx)) => pair.data = Some((stream, rx)),
            _ => pair.error = Some(stream),
        }
        if pair.error.is_some() && pair.data.is_some()
            && let Some(Pair { port, error: Some(error), data: Some((data, inbound)), reset }) = self.pairs.remove(&request)
        {
            let job = Forwarding { out: self.out.clone(), error, data, port, target: self.target.clone() };
            let (finished, closed, reset) = (self.finished.clone(), self.closed.clone(), reset.subscribe());
            tokio::spawn(async move {
                job.run(inbound, reset, closed).await;
                let _ = finished.send([error, data]).await;
            });
        }
    }

    /// A request whose second stream never came.
    async fn timed_out(&mut self, request: &str) {
        let Some(pair) = self.pairs.remove(request) else { return };
        tracing::debug!(request, "port-forward: timed out waiting for streams");
        if let Some(error) = pair.error {
            let msg = format!("(request={request}) timed out waiting for streams");
            self.send(Frame::Data { stream: error, flags: 0, data: Bytes::from(msg) }).await;
            self.send(Frame::Data { stream: error, flags: FLAG_FIN, data: Bytes::new() }).await;
        }
        for id in pair.error.into_iter().chain(pair.data.map(|d| d.0)) {
            self.streams.remove(&id);
        }
    }
}

/// One forwarded connection: a complete pair of streams.
struct Forwarding {
    out: mpsc::Sender<Frame>,
    error: u32,
    data: u32,
    port: u16,
    target: Arc<Target>,
}

impl Forwarding {
    async fn run(self, mut inbound: mpsc::Receiver<Bytes>, mut reset: watch::Receiver<bool>, mut closed: watch::Receiver<bool>) {
        let (ours, theirs) = tokio::io::duplex(PIPE);
        let pod = &self.target.pod;
        match self.target.forward.connect(pod, self.port, theirs) {
            Err(why) => {
                let msg = format!("error forwarding port {} to pod {}_{}, uid {}: {why}", self.port, pod.name, pod.namespace, pod.uid);
                tracing::debug!("port-forward: {msg}");
                self.fin(self.error, Some(msg)).await;
                self.fin(self.data, None).await;
                return;
            }
            Ok(serving) => {
                tokio::spawn(serving);
            }
        }
        let (mut rd, mut wr) = tokio::io::split(ours);
        let up = async {
            while let Some(bytes) = inbound.recv().await {
                if wr.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        };
        let down = async {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let frame = Frame::Data { stream: self.data, flags: 0, data: Bytes::copy_from_slice(&buf[..n]) };
                        if self.out.send(frame).await.is_err() {
                            return;
                        }
                    }
                }
            }
            self.fin(self.data, None).await;
        };
        // The pod side's end decides (the kubelet's copy loop): the client's side gets a
        // moment to finish, then the forward is over.
        let both = async {
            tokio::pin!(up, down);
            tokio::select! {
                () = &mut up => down.await,
                () = &mut down => {
                    let _ = tokio::time::timeout(UP_GRACE, up).await;
                }
            }
        };
        tokio::select! {
            () = both => {}
            () = raised(&mut reset) => {}
            () = raised(&mut closed) => return,
        }
        self.fin(self.error, None).await;
    }

    /// Sends `msg` (if any) and then FIN on `stream`.
    async fn fin(&self, stream: u32, msg: Option<String>) {
        if let Some(msg) = msg {
            let _ = self.out.send(Frame::Data { stream, flags: 0, data: Bytes::from(msg) }).await;
        }
        let _ = self.out.send(Frame::Data { stream, flags: FLAG_FIN, data: Bytes::new() }).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::RwLock;

    use futures::channel::mpsc as fmpsc;

    use super::*;
    use crate::portforward::spdy::rst;

    const WAIT: Duration = Duration::from_secs(5);

    /// Port 7 echoes (upper-cased, so the direction is visible); port 8 answers "hi" and
    /// closes; every other port refuses.
    struct Fake;

    impl Forward for Fake {
        fn connect(&self, _pod: &PodEntry, port: u16, stream: DuplexStream) -> Result<BoxFuture<'static, ()>, String> {
            match port {
                7 => Ok(Box::pin(async move {
                    let (mut rd, mut wr) = tokio::io::split(stream);
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = rd.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if wr.write_all(&buf[..n].to_ascii_uppercase()).await.is_err() {
                            break;
                        }
                    }
                    let _ = wr.shutdown().await;
                })),
                8 => Ok(Box::pin(async move {
                    let mut stream = stream;
                    let _ = stream.write_all(b"hi").await;
                    let _ = stream.shutdown().await;
                })),
                _ => Err(format!("failed to connect to localhost:{port} inside the pod: connection refused")),
            }
        }
    }

    fn pod() -> Arc<PodEntry> {
        Arc::new(PodEntry { uid: "u1".into(), namespace: "ns".into(), name: "p".into(), containers: RwLock::new(vec![]) })
    }

    /// A client end: frames in, frames out, through a real session.
    struct Client {
        enc: Encoder,
        dec: Decoder,
        to_server: fmpsc::UnboundedSender<io::Result<Bytes>>,
        from_server: fmpsc::UnboundedReceiver<Bytes>,
        stop: watch::Sender<bool>,
        session: tokio::task::JoinHandle<()>,
    }

    fn start(timeout: Duration) -> Client {
        let (to_server, incoming) = fmpsc::unbounded();
        let (outgoing, from_server) = fmpsc::unbounded::<Bytes>();
        let (stop, shutdown) = watch::channel(false);
        let target = Target { pod: pod(), forward: Arc::new(Fake), stream_timeout: timeout };
        let sink = outgoing.sink_map_err(io::Error::other);
        let session = tokio::spawn(run(incoming, sink, target, shutdown));
        Client { enc: Encoder::default(), dec: Decoder::default(), to_server, from_server, stop, session }
    }

    impl Client {
        fn send(&mut self, frame: Frame) {
            let bytes = self.enc.encode(&frame).expect("encode");
            // Split every frame in two writes: framing must not depend on reads.
            let (a, b) = bytes.split_at(bytes.len() / 2);
            self.to_server.unbounded_send(Ok(Bytes::copy_from_slice(a))).expect("send");
            self.to_server.unbounded_send(Ok(Bytes::copy_from_slice(b))).expect("send");
        }

        fn syn(&mut self, stream: u32, kind: &str, port: &str, request: &str) {
            let headers = vec![("streamtype".into(), kind.into()), ("port".into(), port.into()), ("requestid".into(), request.into())];
            self.send(Frame::SynStream { stream, associated: 0, priority: 0, flags: 0, headers });
        }

        async fn next(&mut self) -> Option<Frame> {
            loop {
                if let Some(f) = self.dec.next_frame().expect("server frames decode") {
                    return Some(f);
                }
                let bytes = tokio::time::timeout(WAIT, self.from_server.next()).await.expect("timely")?;
                self.dec.push(&bytes);
            }
        }

        /// Frames until `stream` is finished (FIN) or reset, its data concatenated.
        async fn read_stream(&mut self, stream: u32) -> (String, bool) {
            let mut text = String::new();
            while let Some(f) = self.next().await {
                match f {
                    Frame::Data { stream: s, flags, data } if s == stream => {
                        text.push_str(&String::from_utf8_lossy(&data));
                        if flags & FLAG_FIN != 0 {
                            return (text, true);
                        }
                    }
                    Frame::RstStream { stream: s, .. } if s == stream => return (text, false),
                    _ => {}
                }
            }
            (text, false)
        }

        async fn expect(&mut self, want: Frame) {
            assert_eq!(self.next().await, Some(want));
        }
    }

    fn reply(stream: u32) -> Frame {
        Frame::SynReply { stream, flags: 0, headers: vec![] }
    }

    #[tokio::test]
    async fn forwards_bytes_both_ways_and_finishes_both_streams() {
        let mut c = start(STREAM_CREATION_TIMEOUT);
        c.syn(1, "error", "7", "0");
        c.expect(reply(1)).await;
        c.syn(3, "data", "7", "0");
        c.expect(reply(3)).await;
        c.send(Frame::Data { stream: 3, flags: 0, data: Bytes::from_static(b"hello ") });
        c.send(Frame::Data { stream: 3, flags: FLAG_FIN, data: Bytes::from_static(b"world") });
        assert_eq!(c.read_stream(3).await, ("HELLO WORLD".to_string(), true));
        assert_eq!(c.read_stream(1).await, (String::new(), true), "the error stream closes empty");
    }

    #[tokio::test]
    async fn two_requests_share_the_connection() {
        let mut c = start(STREAM_CREATION_TIMEOUT);
        c.syn(1, "error", "8", "0");
        c.syn(3, "data", "8", "0");
        c.syn(5, "error", "7", "1");
        c.syn(7, "data", "7", "1");
        c.send(Frame::Data { stream: 7, flags: FLAG_FIN, data: Bytes::from_static(b"abc") });
        let mut data: HashMap<u32, String> = HashMap::new();
        let mut fins = Vec::new();
        while fins.len() < 4 {
            match c.next().await.expect("frame") {
                Frame::Data { stream, flags, data: d } => {
                    data.entry(stream).or_default().push_str(&String::from_utf8_lossy(&d));
                    if flags & FLAG_FIN != 0 {
                        fins.push(stream);
                    }
                }
                Frame::SynReply { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(data.get(&3).map(String::as_str), Some("hi"));
        assert_eq!(data.get(&7).map(String::as_str), Some("ABC"));
        fins.sort();
        assert_eq!(fins, [1, 3, 5, 7]);
    }

    #[tokio::test]
    async fn refused_port_is_reported_on_the_error_stream() {
        let mut c = start(STREAM_CREATION_TIMEOUT);
        c.syn(1, "error", "9999", "0");
        c.syn(3, "data", "9999", "0");
        c.expect(reply(1)).await;
        c.expect(reply(3)).await;
        let (msg, fin) = c.read_stream(1).await;
        assert!(fin);
        assert_eq!(msg, "error forwarding port 9999 to pod p_ns, uid u1: failed to connect to localhost:9999 inside the pod: connection refused");
        assert_eq!(c.read_stream(3).await, (String::new(), true));
    }

    #[tokio::test]
    async fn invalid_streams_are_reset() {
        let mut c = start(STREAM_CREATION_TIMEOUT);
        c.syn(1, "error", "", "0");
        c.expect(Frame::RstStream { stream: 1, status: rst::CANCEL }).await;
        c.syn(3, "error", "0", "0");
        c.expect(Frame::RstStream { stream: 3, status: rst::CANCEL }).await;
        c.syn(5, "error", "http", "0");
        c.expect(Frame::RstStream { stream: 5, status: rst::CANCEL }).await;
        c.syn(7, "bogus", "80", "0");
        c.expect(Frame::RstStream { stream: 7, status: rst::CANCEL }).await;
        // Stream ids must be odd and increasing.
        c.syn(4, "error", "80", "0");
        c.expect(Frame::RstStream { stream: 4, status: rst::PROTOCOL_ERROR }).await;
        c.syn(7, "error", "80", "0");
        c.expect(Frame::RstStream { stream: 7, status: rst::PROTOCOL_ERROR }).await;
    }

    #[tokio::test]
    async fn a_second_stream_of_one_type_is_an_error() {
        let mut c = start(STREAM_CREATION_TIMEOUT);
        c.syn(1, "error", "7", "0");
        c.syn(3, "error", "7", "0");
        c.expect(reply(1)).await;
        c.expect(reply(3)).await;
        c.expect(Frame::Data { stream: 1, flags: 0, data: Bytes::from_static(b"error processing stream for request 0: error stream already assigned") }).await;
    }

    #[tokio::test]
    async fn a_lone_stream_times_out() {
        let mut c = start(Duration::from_millis(50));
        c.syn(1, "error", "7", "0");
        c.expect(reply(1)).await;
        assert_eq!(c.read_stream(1).await, ("(request=0) timed out waiting for streams".to_string(), true));
    }

    #[tokio::test]
    async fn pings_are_echoed_and_goaway_ends_the_session() {
        let mut c = start(STREAM_CREATION_TIMEOUT);
        c.send(Frame::Ping { id: 1 });
        c.expect(Frame::Ping { id: 1 }).await;
        c.send(Frame::Ping { id: 2 });
        c.send(Frame::Settings(vec![(4, 100)]));
        c.send(Frame::Ping { id: 3 });
        c.expect(Frame::Ping { id: 3 }).await;
        c.send(Frame::GoAway { last_good: 0, status: 0 });
        tokio::time::timeout(WAIT, &mut c.session).await.expect("session ends").expect("no panic");
    }

    #[tokio::test]
    async fn reset_ends_the_forward_and_closes_the_error_stream() {
        let mut c = start(STREAM_CREATION_TIMEOUT);
        c.syn(1, "error", "7", "0");
        c.syn(3, "data", "7", "0");
        c.send(Frame::Data { stream: 3, flags: 0, data: Bytes::from_static(b"x") });
        c.expect(reply(1)).await;
        c.expect(reply(3)).await;
        c.expect(Frame::Data { stream: 3, flags: 0, data: Bytes::from_static(b"X") }).await;
        c.send(Frame::RstStream { stream: 3, status: rst::CANCEL });
        assert_eq!(c.read_stream(1).await, (String::new(), true));
    }

    #[tokio::test]
    async fn garbage_gets_goaway_and_shutdown_ends_the_session() {
        let mut c = start(STREAM_CREATION_TIMEOUT);
        c.to_server.unbounded_send(Ok(Bytes::from_static(&[0x80, 2, 0, 1, 0, 0, 0, 0]))).expect("send");
        c.expect(Frame::GoAway { last_good: 0, status: spdy::goaway::PROTOCOL_ERROR }).await;
        tokio::time::timeout(WAIT, &mut c.session).await.expect("session ends").expect("no panic");

        let mut c = start(STREAM_CREATION_TIMEOUT);
        c.syn(1, "error", "7", "0");
        c.expect(reply(1)).await;
        c.stop.send(true).expect("stop");
        c.expect(Frame::GoAway { last_good: 1, status: spdy::goaway::OK }).await;
        tokio::time::timeout(WAIT, &mut c.session).await.expect("session ends").expect("no panic");
    }
}
