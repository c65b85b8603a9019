//! wasi:sockets over the pod network. wasmtime-wasi's own `tcp`, `tcp-create-socket` and
//! `ip-name-lookup` bind real host sockets and can only filter addresses; here they are
//! implemented on the instance's [`Network`] instead (same WIT, our resource types): a
//! socket binds and listens in its pod's own port space, a connect goes where the pod
//! network routes it (an in-memory connection to a pod of this node, real egress where
//! the node allows it), names resolve as cluster DNS answers them. Every other WASI
//! interface, `network`/`instance-network` (a capability token) and UDP included, is
//! wasmtime-wasi's: [`add_wasi_to_linker`] links them all.
//!
//! Invariants:
//! - UDP stays off: wasmtime-wasi's UDP with `allow_udp(false)` (bind: access-denied);
//! - without a [`Network`] (no pod network) `create-tcp-socket` is not-supported and
//!   every name is unresolvable;
//! - a connect never hangs: a pod of this node answers at once, real egress within
//!   [`crate::network::tcp::EGRESS_CONNECT_TIMEOUT`];
//! - socket options are accepted and reported but change nothing (no real socket under
//!   an in-memory connection); buffer sizes report the pipe capacity.
//!
//! Options std and wasi-libc use (bind, listen, accept, connect, local/remote address,
//! shutdown, streams, subscribe, backlog, keep-alive, buffer sizes, hop limit) all work.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt as _;
use tokio::task::JoinHandle;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddress, IpAddressFamily, IpSocketAddress};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, InputStream, OutputStream, Pollable, SocketError, StreamError, StreamResult};

use super::Network;
use super::host::Host;
use crate::network::tcp::{self, Closer, Conn, DEFAULT_BACKLOG, Listener, NameLookup, PIPE_CAPACITY, PipeReader, PipeWriter, PodSockets, SocketSlot, TcpError};

mod generated {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "flotilla:node/pod-sockets",
        imports: { default: trappable },
        require_store_data_send: true,
        trappable_error_type: {
            "wasi:sockets/network.error-code" => wasmtime_wasi::p2::SocketError,
        },
        with: {
            "wasi:io/poll": wasmtime_wasi_io::bindings::wasi::io::poll,
            "wasi:io/streams": wasmtime_wasi_io::bindings::wasi::io::streams,
            "wasi:io/error": wasmtime_wasi_io::bindings::wasi::io::error,
            "wasi:clocks/monotonic-clock": wasmtime_wasi::p2::bindings::clocks::monotonic_clock,
            "wasi:sockets/network": wasmtime_wasi::p2::bindings::sockets::network,
            "wasi:sockets/tcp.tcp-socket": super::TcpSocket,
            "wasi:sockets/ip-name-lookup.resolve-address-stream": super::ResolveAddressStream,
        },
    });
}

use generated::wasi::sockets::{ip_name_lookup, tcp as wasi_tcp, tcp_create_socket};
use wasi_tcp::ShutdownType;

/// What the socket host functions see of a store.
pub(super) struct SocketsView<'a> {
    pub table: &'a mut ResourceTable,
    pub network: Option<&'a Arc<dyn Network>>,
}

struct PodSocketsData;

impl HasData for PodSocketsData {
    type Data<'a> = SocketsView<'a>;
}

struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// Links all of WASI 0.2 as `wasmtime_wasi::p2::add_to_linker_async` does, except TCP
/// and name lookup, which come from this file, and filesystem `types`, which comes from
/// `ownership.rs`.
pub(super) fn add_wasi_to_linker(l: &mut Linker<Host>) -> wasmtime::Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView as _};
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sockets};
    use wasmtime_wasi::random::{WasiRandom, WasiRandomView as _};
    use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView as _};
    use wasmtime_wasi::{WasiView as _};

    wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<Host, HasIo>(l, |t| t.ctx().table)?;
    wasmtime_wasi_io::bindings::wasi::io::poll::add_to_linker::<Host, HasIo>(l, |t| t.ctx().table)?;
    wasmtime_wasi_io::bindings::wasi::io::streams::add_to_linker::<Host, HasIo>(l, |t| t.ctx().table)?;
    clocks::wall_clock::add_to_linker::<Host, WasiClocks>(l, Host::clocks)?;
    clocks::monotonic_clock::add_to_linker::<Host, WasiClocks>(l, Host::clocks)?;
    super::ownership::add_to_linker(l)?;
    filesystem::preopens::add_to_linker::<Host, WasiFilesystem>(l, Host::filesystem)?;
    random::random::add_to_linker::<Host, WasiRandom>(l, Host::random)?;
    random::insecure::add_to_linker::<Host, WasiRandom>(l, Host::random)?;
    random::insecure_seed::add_to_linker::<Host, WasiRandom>(l, Host::random)?;
    cli::exit::add_to_linker::<Host, WasiCli>(l, Host::cli)?;
    cli::environment::add_to_linker::<Host, WasiCli>(l, Host::cli)?;
    cli::stdin::add_to_linker::<Host, WasiCli>(l, Host::cli)?;
    cli::stdout::add_to_linker::<Host, WasiCli>(l, Host::cli)?;
    cli::stderr::add_to_linker::<Host, WasiCli>(l, Host::cli)?;
    cli::terminal_input::add_to_linker::<Host, WasiCli>(l, Host::cli)?;
    cli::terminal_output::add_to_linker::<Host, WasiCli>(l, Host::cli)?;
    cli::terminal_stdin::add_to_linker::<Host, WasiCli>(l, Host::cli)?;
    cli::terminal_stdout::add_to_linker::<Host, WasiCli>(l, Host::cli)?;
    cli::terminal_stderr::add_to_linker::<Host, WasiCli>(l, Host::cli)?;
    sockets::instance_network::add_to_linker::<Host, WasiSockets>(l, Host::sockets)?;
    sockets::network::add_to_linker::<Host, WasiSockets>(l, &Default::default(), Host::sockets)?;
    sockets::udp::add_to_linker::<Host, WasiSockets>(l, Host::sockets)?;
    sockets::udp_create_socket::add_to_linker::<Host, WasiSockets>(l, Host::sockets)?;
    wasi_tcp::add_to_linker::<Host, PodSocketsData>(l, Host::pod_sockets)?;
    tcp_create_socket::add_to_linker::<Host, PodSocketsData>(l, Host::pod_sockets)?;
    ip_name_lookup::add_to_linker::<Host, PodSocketsData>(l, Host::pod_sockets)?;
    Ok(())
}

fn code(e: TcpError) -> ErrorCode {
    match e {
        TcpError::Refused => ErrorCode::ConnectionRefused,
        TcpError::AccessDenied => ErrorCode::AccessDenied,
        TcpError::AddressInUse => ErrorCode::AddressInUse,
        TcpError::NotBindable => ErrorCode::AddressNotBindable,
        TcpError::SocketLimit => ErrorCode::NewSocketLimit,
        TcpError::Timeout => ErrorCode::Timeout,
        TcpError::Unreachable => ErrorCode::RemoteUnreachable,
        TcpError::Reset => ErrorCode::ConnectionReset,
    }
}

fn err<T>(c: ErrorCode) -> Result<T, SocketError> {
    Err(c.into())
}

// ---------------------------------------------------------------------------------------
// Streams

struct TcpReader(PipeReader);

#[wasmtime_wasi::async_trait]
impl Pollable for TcpReader {
    async fn ready(&mut self) {
        self.0.readable().await
    }
}

impl InputStream for TcpReader {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        self.0.try_read(size).map_err(|_| StreamError::Closed)
    }
}

struct TcpWriter(PipeWriter);

#[wasmtime_wasi::async_trait]
impl Pollable for TcpWriter {
    async fn ready(&mut self) {
        self.0.writable().await
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for TcpWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        match self.0.try_write(&bytes) {
            Ok(n) if n == bytes.len() => Ok(()),
            Ok(_) => Err(StreamError::Trap(wasmtime::format_err!("write exceeded the budget of check-write"))),
            Err(_) => Err(StreamError::Closed),
        }
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.0.room().map(|_| ()).map_err(|_| StreamError::Closed)
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.0.room().map_err(|_| StreamError::Closed)
    }
}

// ---------------------------------------------------------------------------------------
// tcp-socket

/// A guest's TCP socket.
pub struct TcpSocket {
    family: IpAddressFamily,
    state: State,
    pod: Arc<PodSockets>,
    network: Arc<dyn Network>,
    /// Counts this socket against its pod's limit.
    slot: Arc<SocketSlot>,
    backlog: usize,
    options: Options,
}

type Connecting = JoinHandle<Result<Conn, TcpError>>;

enum State {
    Default,
    BindStarted(tcp::Bound),
    Bound(tcp::Bound),
    ListenStarted(Listener),
    Listening(Listener),
    Connecting { local: Option<tcp::Bound>, remote: SocketAddr, task: Connecting },
    ConnectReady { local: Option<tcp::Bound>, remote: SocketAddr, result: Result<Conn, TcpError> },
    Connected { local: SocketAddr, remote: SocketAddr, closers: (Closer, Closer), _bound: Option<tcp::Bound> },
    Closed,
}

/// Socket options as the guest set them (reported back, no effect).
struct Options {
    keep_alive: bool,
    keep_alive_idle: u64,
    keep_alive_interval: u64,
    keep_alive_count: u32,
    hop_limit: u8,
}

impl Default for Options {
    fn default() -> Self {
        // Linux's defaults: 2 h idle, 75 s interval, 9 probes, TTL 64.
        Options { keep_alive: false, keep_alive_idle: 7_200_000_000_000, keep_alive_interval: 75_000_000_000, keep_alive_count: 9, hop_limit: 64 }
    }
}

impl TcpSocket {
    fn new(family: IpAddressFamily, pod: Arc<PodSockets>, network: Arc<dyn Network>, slot: Arc<SocketSlot>, state: State) -> TcpSocket {
        TcpSocket { family, state, pod, network, slot, backlog: DEFAULT_BACKLOG, options: Options::default() }
    }

    /// `addr` as the pod network sees it: IPv4 (v4-mapped and loopback IPv6 included).
    fn check_family(&self, addr: IpSocketAddress) -> Result<SocketAddr, SocketError> {
        let addr = SocketAddr::from(addr);
        match (self.family, addr) {
            (IpAddressFamily::Ipv4, SocketAddr::V4(_)) => Ok(addr),
            (IpAddressFamily::Ipv6, SocketAddr::V6(v6)) => {
                let ip = v6.ip();
                let v4 = if ip.is_loopback() {
                    Some(Ipv4Addr::LOCALHOST)
                } else if ip.is_unspecified() {
                    Some(Ipv4Addr::UNSPECIFIED)
                } else {
                    ip.to_ipv4_mapped()
                };
                match v4 {
                    Some(v4) => Ok(SocketAddr::new(IpAddr::V4(v4), v6.port())),
                    None => err(ErrorCode::RemoteUnreachable),
                }
            }
            _ => err(ErrorCode::InvalidArgument),
        }
    }

    /// `addr` in the socket's family, as the guest should see it.
    fn guest_addr(&self, addr: SocketAddr) -> IpSocketAddress {
        match (self.family, addr) {
            (IpAddressFamily::Ipv6, SocketAddr::V4(v4)) => {
                let ip = if v4.ip().is_loopback() { std::net::Ipv6Addr::LOCALHOST } else { v4.ip().to_ipv6_mapped() };
                SocketAddr::new(IpAddr::V6(ip), v4.port()).into()
            }
            _ => addr.into(),
        }
    }

    /// Moves a finished connect into ConnectReady.
    fn poll_connect(&mut self) {
        if let State::Connecting { task, .. } = &mut self.state
            && task.is_finished()
            && let Some(done) = task.now_or_never()
        {
            let State::Connecting { local, remote, .. } = std::mem::replace(&mut self.state, State::Closed) else { unreachable!() };
            let result = done.unwrap_or(Err(TcpError::Reset));
            self.state = State::ConnectReady { local, remote, result };
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for TcpSocket {
    async fn ready(&mut self) {
        match &mut self.state {
            State::Connecting { task, .. } => {
                // A JoinHandle must not be polled again once it has completed.
                let result = (&mut *task).await.unwrap_or(Err(TcpError::Reset));
                let State::Connecting { local, remote, .. } = std::mem::replace(&mut self.state, State::Closed) else { unreachable!() };
                self.state = State::ConnectReady { local, remote, result };
            }
            State::Listening(l) => l.pending().await,
            _ => {}
        }
    }
}

fn push_streams(table: &mut ResourceTable, conn: Conn) -> Result<(Resource<DynInputStream>, Resource<DynOutputStream>), wasmtime::component::ResourceTableError> {
    let Conn { rx, tx, .. } = conn;
    let input: DynInputStream = Box::new(TcpReader(rx));
    let output: DynOutputStream = Box::new(TcpWriter(tx));
    Ok((table.push(input)?, table.push(output)?))
}

impl wasi_tcp::Host for SocketsView<'_> {}

// Only for the error conversion of the functions above: `network` itself is linked from
// wasmtime-wasi.
impl wasmtime_wasi::p2::bindings::sockets::network::Host for SocketsView<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        error.downcast()
    }

    fn network_error_code(&mut self, _err: Resource<wasmtime::Error>) -> wasmtime::Result<Option<ErrorCode>> {
        Ok(None)
    }
}

impl wasmtime_wasi::p2::bindings::sockets::network::HostNetwork for SocketsView<'_> {
    fn drop(&mut self, this: Resource<wasmtime_wasi::p2::Network>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl wasi_tcp::HostTcpSocket for SocketsView<'_> {
    fn start_bind(&mut self, this: Resource<TcpSocket>, _network: Resource<wasmtime_wasi::p2::Network>, local: IpSocketAddress) -> Result<(), SocketError> {
        let s = self.table.get_mut(&this)?;
        let addr = s.check_family(local)?;
        if !matches!(s.state, State::Default) {
            return err(ErrorCode::InvalidState);
        }
        let bound = s.pod.bind(addr).map_err(code)?;
        s.state = State::BindStarted(bound);
        Ok(())
    }

    fn finish_bind(&mut self, this: Resource<TcpSocket>) -> Result<(), SocketError> {
        let s = self.table.get_mut(&this)?;
        match std::mem::replace(&mut s.state, State::Closed) {
            State::BindStarted(b) => {
                s.state = State::Bound(b);
                Ok(())
            }
            other => {
                s.state = other;
                err(ErrorCode::NotInProgress)
            }
        }
    }

    fn start_connect(&mut self, this: Resource<TcpSocket>, _network: Resource<wasmtime_wasi::p2::Network>, remote: IpSocketAddress) -> Result<(), SocketError> {
        let s = self.table.get_mut(&this)?;
        let addr = s.check_family(remote)?;
        if addr.ip().is_unspecified() || addr.port() == 0 {
            return err(ErrorCode::InvalidArgument);
        }
        let local = match std::mem::replace(&mut s.state, State::Closed) {
            State::Default => None,
            State::Bound(b) => Some(b),
            other => {
                s.state = other;
                return err(ErrorCode::InvalidState);
            }
        };
        let target = s.network.tcp_target(addr);
        let mut fut = Box::pin(tcp::connect(s.pod.clone(), s.slot.clone(), target));
        s.state = match fut.as_mut().now_or_never() {
            Some(result) => State::ConnectReady { local, remote: addr, result },
            None => State::Connecting { local, remote: addr, task: tokio::spawn(fut) },
        };
        Ok(())
    }

    fn finish_connect(&mut self, this: Resource<TcpSocket>) -> Result<(Resource<DynInputStream>, Resource<DynOutputStream>), SocketError> {
        let s = self.table.get_mut(&this)?;
        s.poll_connect();
        match std::mem::replace(&mut s.state, State::Closed) {
            State::ConnectReady { local, remote, result: Ok(conn) } => {
                let closers = conn.closers();
                let local_addr = local.as_ref().map_or(conn.local, |b| b.addr);
                s.state = State::Connected { local: local_addr, remote, closers, _bound: local };
                Ok(push_streams(self.table, conn)?)
            }
            State::ConnectReady { result: Err(e), .. } => err(code(e)),
            other @ State::Connecting { .. } => {
                s.state = other;
                err(ErrorCode::WouldBlock)
            }
            other => {
                s.state = other;
                err(ErrorCode::NotInProgress)
            }
        }
    }

    fn start_listen(&mut self, this: Resource<TcpSocket>) -> Result<(), SocketError> {
        let s = self.table.get_mut(&this)?;
        match std::mem::replace(&mut s.state, State::Closed) {
            State::Bound(b) => {
                s.state = State::ListenStarted(b.listen(s.backlog));
                Ok(())
            }
            other => {
                s.state = other;
                err(ErrorCode::InvalidState)
            }
        }
    }

    fn finish_listen(&mut self, this: Resource<TcpSocket>) -> Result<(), SocketError> {
        let s = self.table.get_mut(&this)?;
        match std::mem::replace(&mut s.state, State::Closed) {
            State::ListenStarted(l) => {
                s.state = State::Listening(l);
                Ok(())
            }
            other => {
                s.state = other;
                err(ErrorCode::NotInProgress)
            }
        }
    }

    #[allow(clippy::type_complexity, reason = "the WIT signature")]
    fn accept(&mut self, this: Resource<TcpSocket>) -> Result<(Resource<TcpSocket>, Resource<DynInputStream>, Resource<DynOutputStream>), SocketError> {
        let s = self.table.get_mut(&this)?;
        let State::Listening(l) = &s.state else { return err(ErrorCode::InvalidState) };
        let Some(conn) = l.try_accept() else { return err(ErrorCode::WouldBlock) };
        let Some(slot) = conn.slot() else { return err(ErrorCode::NewSocketLimit) };
        let state = State::Connected { local: conn.local, remote: conn.peer, closers: conn.closers(), _bound: None };
        let socket = TcpSocket::new(s.family, s.pod.clone(), s.network.clone(), slot, state);
        let (input, output) = push_streams(self.table, conn)?;
        Ok((self.table.push(socket)?, input, output))
    }

    fn local_address(&mut self, this: Resource<TcpSocket>) -> Result<IpSocketAddress, SocketError> {
        let s = self.table.get(&this)?;
        let addr = match &s.state {
            State::BindStarted(b) | State::Bound(b) => b.addr,
            State::ListenStarted(l) | State::Listening(l) => l.addr(),
            State::Connected { local, .. } => *local,
            _ => return err(ErrorCode::InvalidState),
        };
        Ok(s.guest_addr(addr))
    }

    fn remote_address(&mut self, this: Resource<TcpSocket>) -> Result<IpSocketAddress, SocketError> {
        let s = self.table.get(&this)?;
        match &s.state {
            State::Connected { remote, .. } => Ok(s.guest_addr(*remote)),
            _ => err(ErrorCode::InvalidState),
        }
    }

    fn is_listening(&mut self, this: Resource<TcpSocket>) -> wasmtime::Result<bool> {
        Ok(matches!(self.table.get(&this)?.state, State::Listening(_)))
    }

    fn address_family(&mut self, this: Resource<TcpSocket>) -> wasmtime::Result<IpAddressFamily> {
        Ok(self.table.get(&this)?.family)
    }

    fn set_listen_backlog_size(&mut self, this: Resource<TcpSocket>, value: u64) -> Result<(), SocketError> {
        let s = self.table.get_mut(&this)?;
        if value == 0 {
            return err(ErrorCode::InvalidArgument);
        }
        s.backlog = usize::try_from(value).unwrap_or(usize::MAX);
        match &s.state {
            State::Listening(l) | State::ListenStarted(l) => l.set_backlog(s.backlog),
            State::Connecting { .. } | State::ConnectReady { .. } | State::Connected { .. } => return err(ErrorCode::InvalidState),
            _ => {}
        }
        Ok(())
    }

    fn keep_alive_enabled(&mut self, this: Resource<TcpSocket>) -> Result<bool, SocketError> {
        Ok(self.table.get(&this)?.options.keep_alive)
    }

    fn set_keep_alive_enabled(&mut self, this: Resource<TcpSocket>, value: bool) -> Result<(), SocketError> {
        self.table.get_mut(&this)?.options.keep_alive = value;
        Ok(())
    }

    fn keep_alive_idle_time(&mut self, this: Resource<TcpSocket>) -> Result<u64, SocketError> {
        Ok(self.table.get(&this)?.options.keep_alive_idle)
    }

    fn set_keep_alive_idle_time(&mut self, this: Resource<TcpSocket>, value: u64) -> Result<(), SocketError> {
        if value == 0 {
            return err(ErrorCode::InvalidArgument);
        }
        self.table.get_mut(&this)?.options.keep_alive_idle = value;
        Ok(())
    }

    fn keep_alive_interval(&mut self, this: Resource<TcpSocket>) -> Result<u64, SocketError> {
        Ok(self.table.get(&this)?.options.keep_alive_interval)
    }

    fn set_keep_alive_interval(&mut self, this: Resource<TcpSocket>, value: u64) -> Result<(), SocketError> {
        if value == 0 {
            return err(ErrorCode::InvalidArgument);
        }
        self.table.get_mut(&this)?.options.keep_alive_interval = value;
        Ok(())
    }

    fn keep_alive_count(&mut self, this: Resource<TcpSocket>) -> Result<u32, SocketError> {
        Ok(self.table.get(&this)?.options.keep_alive_count)
    }

    fn set_keep_alive_count(&mut self, this: Resource<TcpSocket>, value: u32) -> Result<(), SocketError> {
        if value == 0 {
            return err(ErrorCode::InvalidArgument);
        }
        self.table.get_mut(&this)?.options.keep_alive_count = value;
        Ok(())
    }

    fn hop_limit(&mut self, this: Resource<TcpSocket>) -> Result<u8, SocketError> {
        Ok(self.table.get(&this)?.options.hop_limit)
    }

    fn set_hop_limit(&mut self, this: Resource<TcpSocket>, value: u8) -> Result<(), SocketError> {
        if value == 0 {
            return err(ErrorCode::InvalidArgument);
        }
        self.table.get_mut(&this)?.options.hop_limit = value;
        Ok(())
    }

    fn receive_buffer_size(&mut self, this: Resource<TcpSocket>) -> Result<u64, SocketError> {
        self.table.get(&this)?;
        Ok(PIPE_CAPACITY as u64)
    }

    fn set_receive_buffer_size(&mut self, this: Resource<TcpSocket>, value: u64) -> Result<(), SocketError> {
        self.table.get(&this)?;
        if value == 0 { err(ErrorCode::InvalidArgument) } else { Ok(()) }
    }

    fn send_buffer_size(&mut self, this: Resource<TcpSocket>) -> Result<u64, SocketError> {
        self.table.get(&this)?;
        Ok(PIPE_CAPACITY as u64)
    }

    fn set_send_buffer_size(&mut self, this: Resource<TcpSocket>, value: u64) -> Result<(), SocketError> {
        self.table.get(&this)?;
        if value == 0 { err(ErrorCode::InvalidArgument) } else { Ok(()) }
    }

    fn subscribe(&mut self, this: Resource<TcpSocket>) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi::p2::subscribe(self.table, this)
    }

    fn shutdown(&mut self, this: Resource<TcpSocket>, how: ShutdownType) -> Result<(), SocketError> {
        let s = self.table.get(&this)?;
        let State::Connected { closers: (read, write), .. } = &s.state else { return err(ErrorCode::InvalidState) };
        if matches!(how, ShutdownType::Receive | ShutdownType::Both) {
            read.close();
        }
        if matches!(how, ShutdownType::Send | ShutdownType::Both) {
            write.close();
        }
        Ok(())
    }

    fn drop(&mut self, this: Resource<TcpSocket>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl tcp_create_socket::Host for SocketsView<'_> {
    fn create_tcp_socket(&mut self, family: IpAddressFamily) -> Result<Resource<TcpSocket>, SocketError> {
        let Some(network) = self.network else { return err(ErrorCode::NotSupported) };
        let Some(pod) = network.sockets() else { return err(ErrorCode::NotSupported) };
        let slot = pod.socket().map_err(code)?;
        let socket = TcpSocket::new(family, pod, network.clone(), slot, State::Default);
        Ok(self.table.push(socket)?)
    }
}

// ---------------------------------------------------------------------------------------
// ip-name-lookup

/// How long a real DNS lookup (egress allowed) may take.
const EXTERNAL_LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// The answers of one `resolve-addresses`.
pub enum ResolveAddressStream {
    Ready(VecDeque<IpAddr>),
    Failed(ErrorCode),
    Waiting(JoinHandle<Result<Vec<IpAddr>, ErrorCode>>),
}

impl ResolveAddressStream {
    fn settle(&mut self, result: Result<Result<Vec<IpAddr>, ErrorCode>, tokio::task::JoinError>) {
        *self = match result {
            Ok(Ok(ips)) => ResolveAddressStream::Ready(ips.into()),
            Ok(Err(c)) => ResolveAddressStream::Failed(c),
            Err(_) => ResolveAddressStream::Failed(ErrorCode::TemporaryResolverFailure),
        };
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for ResolveAddressStream {
    async fn ready(&mut self) {
        if let ResolveAddressStream::Waiting(task) = self {
            let result = task.await;
            self.settle(result);
        }
    }
}

async fn external_lookup(host: String) -> Result<Vec<IpAddr>, ErrorCode> {
    match tokio::time::timeout(EXTERNAL_LOOKUP_TIMEOUT, tokio::net::lookup_host((host.as_str(), 0))).await {
        Err(_) => Err(ErrorCode::TemporaryResolverFailure),
        Ok(Err(_)) => Err(ErrorCode::NameUnresolvable),
        Ok(Ok(addrs)) => Ok(addrs.map(|a| a.ip()).collect()),
    }
}

impl ip_name_lookup::Host for SocketsView<'_> {
    fn resolve_addresses(&mut self, _network: Resource<wasmtime_wasi::p2::Network>, name: String) -> Result<Resource<ResolveAddressStream>, SocketError> {
        let literal = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(&name);
        let stream = if let Ok(ip) = literal.parse::<IpAddr>() {
            ResolveAddressStream::Ready(VecDeque::from([ip]))
        } else if name.is_empty() || name.len() > 253 || name.contains([':', '/', ' ']) {
            return err(ErrorCode::InvalidArgument);
        } else {
            match self.network.map(|n| n.lookup(&name)) {
                Some(NameLookup::Addresses(ips)) if !ips.is_empty() => ResolveAddressStream::Ready(ips.into()),
                Some(NameLookup::External(host)) => ResolveAddressStream::Waiting(tokio::spawn(external_lookup(host))),
                _ => ResolveAddressStream::Failed(ErrorCode::NameUnresolvable),
            }
        };
        Ok(self.table.push(stream)?)
    }
}

impl ip_name_lookup::HostResolveAddressStream for SocketsView<'_> {
    fn resolve_next_address(&mut self, this: Resource<ResolveAddressStream>) -> Result<Option<IpAddress>, SocketError> {
        let s = self.table.get_mut(&this)?;
        if let ResolveAddressStream::Waiting(task) = s
            && task.is_finished()
            && let Some(result) = task.now_or_never()
        {
            s.settle(result);
        }
        match s {
            ResolveAddressStream::Ready(ips) => Ok(ips.pop_front().map(IpAddress::from)),
            ResolveAddressStream::Failed(c) => err(*c),
            ResolveAddressStream::Waiting(_) => err(ErrorCode::WouldBlock),
        }
    }

    fn subscribe(&mut self, this: Resource<ResolveAddressStream>) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi::p2::subscribe(self.table, this)
    }

    fn drop(&mut self, this: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}
