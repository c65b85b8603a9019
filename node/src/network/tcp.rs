//! The pod network's TCP: each pod's port space ([`PodSockets`]), in-memory
//! connections between pods of this node ([`Conn`], a pair of bounded [`pipe`]s), and the
//! one entry point that opens a connection to a routed [`Target`] ([`connect`]).
//! wasi:sockets (`runtime/sockets.rs`) opens connections; a pod of another node is a
//! [`Target::Remote`] whose [`Dial`] (the data plane's CONNECT tunnel) yields a byte
//! stream, joined to the guest's [`Conn`] with [`bridge`], as real egress sockets are.
//!
//! Invariants:
//! - every pod has its own ports: a port is bound by at most one socket of the pod, and a
//!   binding lasts exactly as long as its [`Bound`] / [`Listener`] handle (dropped with
//!   the guest's socket, so with its store when the container stops: nothing leaks);
//! - a connection is refused at once — never queued or waited on — when nobody listens,
//!   the listener's address does not take it (a loopback-only listener takes only its
//!   own pod), its backlog is full, or the target pod is at [`MAX_POD_SOCKETS`];
//! - a pod holds at most [`MAX_POD_SOCKETS`] sockets (created, accepted, or queued in its
//!   backlogs, counted until the socket and both its streams are gone),
//!   so the host memory a pod's connections can pin is bounded too (at most
//!   `MAX_POD_SOCKETS` x 2 x [`PIPE_CAPACITY`], 128 MiB, outside its wasm memory limit);
//! - a pipe holds at most [`PIPE_CAPACITY`] bytes (writers see backpressure); a pipe
//!   whose writer is gone or shut down reads to its end, then end-of-stream; a write to a
//!   pipe whose reader is gone fails.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf as _, Bytes, BytesMut};

/// Most sockets one pod holds at once (see the module invariants).
pub const MAX_POD_SOCKETS: usize = 1024;
/// Bytes buffered per direction of an in-memory connection.
pub const PIPE_CAPACITY: usize = 64 * 1024;
/// Backlog of a listener when the guest sets none (Linux's SOMAXCONN).
pub const DEFAULT_BACKLOG: usize = 128;
/// Largest backlog a guest may ask for.
pub const MAX_BACKLOG: usize = 1024;
/// Real egress gives up connecting after this long (a failed route shows within 3 s).
pub const EGRESS_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Ephemeral ports handed to connecting sockets and to binds of port 0.
const EPHEMERAL: std::ops::RangeInclusive<u16> = 49152..=65535;

/// Why a TCP operation failed, as the guest will see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TcpError {
    #[error("connection refused")]
    Refused,
    #[error("access denied")]
    AccessDenied,
    #[error("address in use")]
    AddressInUse,
    #[error("address not bindable")]
    NotBindable,
    #[error("socket limit reached")]
    SocketLimit,
    #[error("timed out")]
    Timeout,
    #[error("remote unreachable")]
    Unreachable,
    #[error("connection reset")]
    Reset,
}

/// The end of a pipe: the other side is gone or shut down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closed;

// ---------------------------------------------------------------------------------------
// Pipes

#[derive(Debug)]
struct PipeState {
    buf: BytesMut,
    write_closed: bool,
    read_closed: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

#[derive(Debug)]
struct Pipe {
    state: Mutex<PipeState>,
}

impl Pipe {
    fn lock(&self) -> std::sync::MutexGuard<'_, PipeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn close_write(&self) {
        let mut s = self.lock();
        s.write_closed = true;
        if let Some(w) = s.reader.take() {
            w.wake();
        }
    }

    fn close_read(&self) {
        let mut s = self.lock();
        s.read_closed = true;
        s.buf.clear();
        if let Some(w) = s.writer.take() {
            w.wake();
        }
    }
}

/// A pipe end's hold on its pod's socket count.
type Held = Option<Arc<SocketSlot>>;

/// The read end of a bounded in-memory pipe.
#[derive(Debug)]
pub struct PipeReader {
    pipe: Arc<Pipe>,
    _held: Held,
}

/// The write end of a bounded in-memory pipe.
#[derive(Debug)]
pub struct PipeWriter {
    pipe: Arc<Pipe>,
    _held: Held,
}

/// A pipe holding at most [`PIPE_CAPACITY`] bytes.
pub fn pipe() -> (PipeWriter, PipeReader) {
    let pipe = Arc::new(Pipe {
        state: Mutex::new(PipeState { buf: BytesMut::new(), write_closed: false, read_closed: false, reader: None, writer: None }),
    });
    (PipeWriter { pipe: pipe.clone(), _held: None }, PipeReader { pipe, _held: None })
}

impl PipeReader {
    /// Up to `max` buffered bytes (empty: none yet); Err once drained and closed.
    pub fn try_read(&mut self, max: usize) -> Result<Bytes, Closed> {
        let mut s = self.pipe.lock();
        if s.buf.is_empty() {
            return if s.write_closed || s.read_closed { Err(Closed) } else { Ok(Bytes::new()) };
        }
        let n = max.min(s.buf.len());
        let out = s.buf.split_to(n).freeze();
        if let Some(w) = s.writer.take() {
            w.wake();
        }
        Ok(out)
    }

    /// Ready when bytes are buffered or the pipe is closed.
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.pipe.lock();
        if !s.buf.is_empty() || s.write_closed || s.read_closed {
            return Poll::Ready(());
        }
        s.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    pub async fn readable(&self) {
        std::future::poll_fn(|cx| self.poll_readable(cx)).await
    }

    /// A handle that can close this end (shutdown(receive)) while the guest holds it.
    fn closer(&self) -> Closer {
        Closer { pipe: Arc::downgrade(&self.pipe), read: true }
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        self.pipe.close_read();
    }
}

impl PipeWriter {
    /// Bytes that can be written now; Err when the reader is gone.
    pub fn room(&self) -> Result<usize, Closed> {
        let s = self.pipe.lock();
        if s.read_closed || s.write_closed {
            return Err(Closed);
        }
        Ok(PIPE_CAPACITY.saturating_sub(s.buf.len()))
    }

    /// Writes as much of `data` as fits; Err when the reader is gone.
    pub fn try_write(&mut self, data: &[u8]) -> Result<usize, Closed> {
        let mut s = self.pipe.lock();
        if s.read_closed || s.write_closed {
            return Err(Closed);
        }
        let n = data.len().min(PIPE_CAPACITY.saturating_sub(s.buf.len()));
        s.buf.extend_from_slice(&data[..n]);
        if n > 0
            && let Some(w) = s.reader.take()
        {
            w.wake();
        }
        Ok(n)
    }

    /// Ready when there is room or the pipe is closed.
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.pipe.lock();
        if s.buf.len() < PIPE_CAPACITY || s.read_closed || s.write_closed {
            return Poll::Ready(());
        }
        s.writer = Some(cx.waker().clone());
        Poll::Pending
    }

    pub async fn writable(&self) {
        std::future::poll_fn(|cx| self.poll_writable(cx)).await
    }

    /// Ends the stream: the reader drains what is buffered, then sees the end.
    pub fn close(&self) {
        self.pipe.close_write();
    }

    fn closer(&self) -> Closer {
        Closer { pipe: Arc::downgrade(&self.pipe), read: false }
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        self.pipe.close_write();
    }
}

/// Closes one end of a pipe without owning it (socket shutdown).
#[derive(Clone, Debug)]
pub struct Closer {
    pipe: Weak<Pipe>,
    read: bool,
}

impl Closer {
    pub fn close(&self) {
        if let Some(p) = self.pipe.upgrade() {
            if self.read { p.close_read() } else { p.close_write() }
        }
    }
}

impl tokio::io::AsyncRead for PipeReader {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut tokio::io::ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.try_read(out.remaining()) {
            Err(Closed) => Poll::Ready(Ok(())),
            Ok(b) if b.is_empty() => match self.poll_readable(cx) {
                Poll::Ready(()) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Poll::Pending => Poll::Pending,
            },
            Ok(mut b) => {
                let n = b.len();
                out.put_slice(&b[..n]);
                b.advance(n);
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl tokio::io::AsyncWrite for PipeWriter {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.try_write(data) {
            Err(Closed) => Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
            Ok(0) if !data.is_empty() => match self.poll_writable(cx) {
                Poll::Ready(()) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Poll::Pending => Poll::Pending,
            },
            Ok(n) => Poll::Ready(Ok(n)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.close();
        Poll::Ready(Ok(()))
    }
}

// ---------------------------------------------------------------------------------------
// Connections

/// One side of a connection: what it reads, what it writes, and the addresses as this
/// side sees them.
#[derive(Debug)]
pub struct Conn {
    pub rx: PipeReader,
    pub tx: PipeWriter,
    pub local: SocketAddr,
    pub peer: SocketAddr,
}

impl Conn {
    /// Both sides of a fresh connection between `a` and `b`.
    pub fn pair(a: SocketAddr, b: SocketAddr) -> (Conn, Conn) {
        let (a_tx, b_rx) = pipe();
        let (b_tx, a_rx) = pipe();
        (Conn { rx: a_rx, tx: a_tx, local: a, peer: b }, Conn { rx: b_rx, tx: b_tx, local: b, peer: a })
    }

    /// Closers for shutdown(receive) and shutdown(send).
    pub fn closers(&self) -> (Closer, Closer) {
        (self.rx.closer(), self.tx.closer())
    }

    /// The socket slot this side counts against, if any.
    pub fn slot(&self) -> Option<Arc<SocketSlot>> {
        self.rx._held.clone()
    }

    /// Counts this connection against `slot`'s pod until both its streams are gone.
    fn hold(mut self, slot: &Arc<SocketSlot>) -> Conn {
        self.rx._held = Some(slot.clone());
        self.tx._held = Some(slot.clone());
        self
    }
}

/// Copies between `conn` and a real byte stream until both directions end (real egress;
/// the cross-node data plane's streams).
pub fn bridge<S>(conn: Conn, stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let Conn { mut rx, mut tx, .. } = conn;
    tokio::spawn(async move {
        let up = async {
            let _ = tokio::io::copy(&mut rx, &mut wr).await;
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut wr).await;
        };
        let down = async {
            let _ = tokio::io::copy(&mut rd, &mut tx).await;
            tx.close();
        };
        tokio::join!(up, down);
    });
}

// ---------------------------------------------------------------------------------------
// A pod's port space

/// A pod's socket count while this is alive.
#[derive(Debug)]
pub struct SocketSlot {
    pod: Arc<PodSockets>,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.pod.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The TCP state of one pod: its bound ports, its listeners, its socket count.
#[derive(Debug)]
pub struct PodSockets {
    /// The pod's address (None before it has one: loopback only).
    pub ip: Option<IpAddr>,
    ports: Mutex<Ports>,
    open: AtomicUsize,
}

#[derive(Debug, Default)]
struct Ports {
    bound: HashMap<u16, Binding>,
    next_ephemeral: u16,
}

#[derive(Debug)]
struct Binding {
    ip: IpAddr,
    queue: Option<Arc<Backlog>>,
}

/// Connections waiting for a listener's accept.
#[derive(Debug)]
pub struct Backlog {
    state: Mutex<BacklogState>,
}

#[derive(Debug)]
struct BacklogState {
    queue: VecDeque<Conn>,
    limit: usize,
    waker: Option<Waker>,
    closed: bool,
}

impl PodSockets {
    pub fn new(ip: Option<IpAddr>) -> Arc<PodSockets> {
        Arc::new(PodSockets { ip, ports: Mutex::default(), open: AtomicUsize::new(0) })
    }

    fn ports(&self) -> std::sync::MutexGuard<'_, Ports> {
        self.ports.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a socket of the pod's allowance; Err at [`MAX_POD_SOCKETS`].
    pub fn socket(self: &Arc<Self>) -> Result<Arc<SocketSlot>, TcpError> {
        let prev = self.open.fetch_add(1, Ordering::Relaxed);
        if prev >= MAX_POD_SOCKETS {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return Err(TcpError::SocketLimit);
        }
        Ok(Arc::new(SocketSlot { pod: self.clone() }))
    }

    /// Sockets the pod holds now.
    pub fn open_sockets(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Whether the pod may bind `ip`: unspecified, loopback or its own address.
    pub fn bindable(&self, ip: IpAddr) -> bool {
        ip.is_unspecified() || ip.is_loopback() || Some(ip) == self.ip
    }

    /// Binds `addr` (port 0: an ephemeral port) for the life of the returned handle.
    pub fn bind(self: &Arc<Self>, addr: SocketAddr) -> Result<Bound, TcpError> {
        if !self.bindable(addr.ip()) {
            return Err(TcpError::NotBindable);
        }
        let mut ports = self.ports();
        let port = match addr.port() {
            0 => ephemeral(&mut ports).ok_or(TcpError::AddressInUse)?,
            p if ports.bound.contains_key(&p) => return Err(TcpError::AddressInUse),
            p => p,
        };
        ports.bound.insert(port, Binding { ip: addr.ip(), queue: None });
        Ok(Bound { pod: self.clone(), addr: SocketAddr::new(addr.ip(), port) })
    }

    /// Listed ports (for tests and logs).
    pub fn listening(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self.ports().bound.iter().filter(|(_, b)| b.queue.is_some()).map(|(p, _)| *p).collect();
        v.sort_unstable();
        v
    }

    /// Opens a connection from `from` (a pod's client socket, `from_addr` its address as
    /// the target sees it; None: a client outside this node, through the cross-node data
    /// plane) to this pod's `port`. `loopback`: the client is this pod, over loopback.
    pub fn accept_from(self: &Arc<Self>, from: Option<&Arc<SocketSlot>>, from_addr: SocketAddr, port: u16, loopback: bool) -> Result<Conn, TcpError> {
        let ports = self.ports();
        let Some(Binding { ip, queue: Some(queue) }) = ports.bound.get(&port) else { return Err(TcpError::Refused) };
        let takes = ip.is_unspecified() || if loopback { ip.is_loopback() } else { !ip.is_loopback() };
        if !takes {
            return Err(TcpError::Refused);
        }
        let local_ip = if loopback { from_addr.ip() } else { self.ip.unwrap_or(*ip) };
        let mut q = queue.state.lock().unwrap_or_else(|p| p.into_inner());
        if q.closed || q.queue.len() >= q.limit {
            return Err(TcpError::Refused);
        }
        let server_slot = self.socket().map_err(|_| TcpError::Refused)?;
        let (client, server) = Conn::pair(from_addr, SocketAddr::new(local_ip, port));
        q.queue.push_back(server.hold(&server_slot));
        if let Some(w) = q.waker.take() {
            w.wake();
        }
        Ok(match from {
            Some(slot) => client.hold(slot),
            None => client,
        })
    }

    /// An ephemeral port for a connecting socket of this pod.
    pub fn ephemeral_port(&self) -> u16 {
        let mut ports = self.ports();
        ephemeral(&mut ports).unwrap_or(*EPHEMERAL.start())
    }
}

fn ephemeral(ports: &mut Ports) -> Option<u16> {
    let span = u32::from(*EPHEMERAL.end() - *EPHEMERAL.start()) + 1;
    for _ in 0..span {
        if !EPHEMERAL.contains(&ports.next_ephemeral) {
            ports.next_ephemeral = *EPHEMERAL.start();
        }
        let p = ports.next_ephemeral;
        ports.next_ephemeral = ports.next_ephemeral.wrapping_add(1);
        if !ports.bound.contains_key(&p) {
            return Some(p);
        }
    }
    None
}

/// A bound port of a pod, held until dropped.
#[derive(Debug)]
pub struct Bound {
    pod: Arc<PodSockets>,
    pub addr: SocketAddr,
}

impl Bound {
    /// Starts listening with at most `backlog` connections waiting for accept.
    pub fn listen(self, backlog: usize) -> Listener {
        let queue = Arc::new(Backlog {
            state: Mutex::new(BacklogState { queue: VecDeque::new(), limit: backlog.clamp(1, MAX_BACKLOG), waker: None, closed: false }),
        });
        if let Some(b) = self.pod.ports().bound.get_mut(&self.addr.port()) {
            b.queue = Some(queue.clone());
        }
        Listener { bound: self, queue }
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        self.pod.ports().bound.remove(&self.addr.port());
    }
}

/// A listening port of a pod; dropping it refuses what waits in its backlog.
#[derive(Debug)]
pub struct Listener {
    bound: Bound,
    queue: Arc<Backlog>,
}

impl Listener {
    pub fn addr(&self) -> SocketAddr {
        self.bound.addr
    }

    /// The next waiting connection, if any.
    pub fn try_accept(&self) -> Option<Conn> {
        self.queue.state.lock().unwrap_or_else(|p| p.into_inner()).queue.pop_front()
    }

    /// Ready when a connection waits.
    pub fn poll_pending(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut q = self.queue.state.lock().unwrap_or_else(|p| p.into_inner());
        if !q.queue.is_empty() {
            return Poll::Ready(());
        }
        q.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    pub async fn pending(&self) {
        std::future::poll_fn(|cx| self.poll_pending(cx)).await
    }

    /// Changes the backlog limit (connections already waiting stay).
    pub fn set_backlog(&self, backlog: usize) {
        self.queue.state.lock().unwrap_or_else(|p| p.into_inner()).limit = backlog.clamp(1, MAX_BACKLOG);
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let mut q = self.queue.state.lock().unwrap_or_else(|p| p.into_inner());
        q.closed = true;
        q.queue.clear();
    }
}

// ---------------------------------------------------------------------------------------
// Routing a connect

/// A byte stream a connection can be bridged to (a data-plane tunnel, a real socket).
pub trait ByteStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> ByteStream for S {}

/// Opens the transport to a pod of another node (the data plane's tunnel).
pub struct Dial(pub futures::future::BoxFuture<'static, Result<Box<dyn ByteStream>, TcpError>>);

impl std::fmt::Debug for Dial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dial")
    }
}

/// Where a TCP connection goes, as the router decides it.
#[derive(Debug)]
pub enum Target {
    /// A pod of this node (the connecting pod itself when `loopback`).
    Pod { sockets: Arc<PodSockets>, port: u16, loopback: bool },
    /// A pod of another node, reached through the data plane's `dial` (refused without).
    Remote { node: String, addr: SocketAddr, dial: Option<Dial> },
    /// Outside the cluster, over the host's network (egress allowed).
    External(SocketAddr),
    /// Nobody takes it: connection refused.
    Refused,
    /// Not allowed: access denied.
    Denied,
}

/// Opens a connection from `from` (the connecting pod, its socket `slot`) to `target`.
/// Answers a pod of this node at once; real egress within [`EGRESS_CONNECT_TIMEOUT`].
pub async fn connect(from: Arc<PodSockets>, slot: Arc<SocketSlot>, target: Target) -> Result<Conn, TcpError> {
    match target {
        Target::Pod { sockets, port, loopback } => {
            let ip = if loopback { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { from.ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)) };
            let from_addr = SocketAddr::new(ip, from.ephemeral_port());
            sockets.accept_from(Some(&slot), from_addr, port, loopback)
        }
        Target::Remote { node, addr, dial } => {
            let Some(Dial(dial)) = dial else {
                tracing::debug!(target = %addr, target.node = %node, "connection refused: no data plane to the target's node");
                return Err(TcpError::Refused);
            };
            let stream = dial.await?;
            let ip = from.ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
            let (guest, host) = Conn::pair(SocketAddr::new(ip, from.ephemeral_port()), addr);
            bridge(host, stream);
            Ok(guest.hold(&slot))
        }
        Target::External(addr) => {
            let stream = match tokio::time::timeout(EGRESS_CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
                Err(_) => return Err(TcpError::Timeout),
                Ok(Err(e)) => {
                    return Err(match e.kind() {
                        std::io::ErrorKind::ConnectionRefused => TcpError::Refused,
                        std::io::ErrorKind::ConnectionReset => TcpError::Reset,
                        std::io::ErrorKind::TimedOut => TcpError::Timeout,
                        _ => TcpError::Unreachable,
                    });
                }
                Ok(Ok(s)) => s,
            };
            let local = stream.local_addr().unwrap_or(addr);
            let (guest, host) = Conn::pair(local, addr);
            bridge(host, stream);
            Ok(guest.hold(&slot))
        }
        Target::Refused => Err(TcpError::Refused),
        Target::Denied => Err(TcpError::AccessDenied),
    }
}

/// What a name resolves to for ip-name-lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameLookup {
    /// Cluster addresses (a ClusterIP, ready pod IPs, a pod address, loopback).
    Addresses(Vec<IpAddr>),
    /// A name outside the cluster, to resolve over the host's DNS (egress allowed).
    External(String),
    /// No such name (or an external name while egress is off): name-unresolvable.
    NoSuchName,
}

#[cfg(test)]
mod tests;
