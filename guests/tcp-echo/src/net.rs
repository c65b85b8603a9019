//! Blocking TCP over wasi:sockets 0.2 for the TCP test guests (shared by tcp-echo and
//! tcp-client). Debian's wasi-libc (2022) has no BSD sockets for wasm32-wasip2, so
//! Rust std's TcpListener/TcpStream cannot be linked here; this drives the same
//! interfaces wasi-libc does (create, bind, listen, accept, connect, name lookup,
//! subscribe/block, streams, shutdown).

#![allow(dead_code, reason = "shared by tcp-echo and tcp-client, each using part of it")]

use wasip2::io::streams::{InputStream, OutputStream, StreamError};
use wasip2::sockets::instance_network::instance_network;
use wasip2::sockets::ip_name_lookup::resolve_addresses;
use wasip2::sockets::network::{ErrorCode, IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
use wasip2::sockets::tcp::{ShutdownType, TcpSocket};
use wasip2::sockets::tcp_create_socket::create_tcp_socket;

/// A connected socket. Fields drop in order: the streams before their socket.
pub struct Stream {
    input: InputStream,
    output: OutputStream,
    socket: TcpSocket,
    buf: Vec<u8>,
}

pub fn fmt_addr(a: IpSocketAddress) -> String {
    match a {
        IpSocketAddress::Ipv4(v4) => {
            let (a, b, c, d) = v4.address;
            format!("{a}.{b}.{c}.{d}:{}", v4.port)
        }
        IpSocketAddress::Ipv6(v6) => format!("[{:x?}]:{}", v6.address, v6.port),
    }
}

fn retry<T>(socket: &TcpSocket, mut f: impl FnMut() -> Result<T, ErrorCode>) -> Result<T, ErrorCode> {
    loop {
        match f() {
            Err(ErrorCode::WouldBlock) => socket.subscribe().block(),
            other => return other,
        }
    }
}

/// A socket listening on `bind:port`.
pub fn listen(bind: (u8, u8, u8, u8), port: u16) -> Result<TcpSocket, ErrorCode> {
    let net = instance_network();
    let s = create_tcp_socket(IpAddressFamily::Ipv4)?;
    s.start_bind(&net, IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address: bind }))?;
    retry(&s, || s.finish_bind())?;
    s.start_listen()?;
    retry(&s, || s.finish_listen())?;
    Ok(s)
}

/// A waiting connection, if any (never blocks).
pub fn try_accept(listener: &TcpSocket) -> Option<Result<Stream, ErrorCode>> {
    match listener.accept() {
        Ok((socket, input, output)) => Some(Ok(Stream { input, output, socket, buf: Vec::new() })),
        Err(ErrorCode::WouldBlock) => None,
        Err(e) => Some(Err(e)),
    }
}

pub fn accept(listener: &TcpSocket) -> Result<Stream, ErrorCode> {
    let (socket, input, output) = retry(listener, || listener.accept())?;
    Ok(Stream { input, output, socket, buf: Vec::new() })
}

/// The IPv4 addresses `host` resolves to. An IP literal is itself, without a lookup (as
/// in std and wasi-libc).
pub fn resolve(host: &str) -> Result<Vec<(u8, u8, u8, u8)>, ErrorCode> {
    if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
        let o = ip.octets();
        return Ok(vec![(o[0], o[1], o[2], o[3])]);
    }
    let net = instance_network();
    let stream = resolve_addresses(&net, host)?;
    let mut out = Vec::new();
    loop {
        match stream.resolve_next_address() {
            Ok(Some(IpAddress::Ipv4(a))) => out.push(a),
            Ok(Some(IpAddress::Ipv6(_))) => {}
            Ok(None) => return Ok(out),
            Err(ErrorCode::WouldBlock) => stream.subscribe().block(),
            Err(e) => return Err(e),
        }
    }
}

pub fn connect(host: &str, port: u16) -> Result<Stream, ErrorCode> {
    let ip = *resolve(host)?.first().ok_or(ErrorCode::NameUnresolvable)?;
    let net = instance_network();
    let socket = create_tcp_socket(IpAddressFamily::Ipv4)?;
    socket.start_connect(&net, IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address: ip }))?;
    let (input, output) = retry(&socket, || socket.finish_connect())?;
    Ok(Stream { input, output, socket, buf: Vec::new() })
}

impl Stream {
    pub fn local(&self) -> String {
        self.socket.local_address().map(fmt_addr).unwrap_or_default()
    }

    pub fn peer(&self) -> String {
        self.socket.remote_address().map(fmt_addr).unwrap_or_default()
    }

    /// Ready when bytes can be read (or the stream ended). Drop it before the stream.
    pub fn subscribe(&self) -> wasip2::io::poll::Pollable {
        self.input.subscribe()
    }

    /// The complete lines read so far without blocking; None once the stream ended
    /// (the lines still buffered, then the rest, were returned before).
    pub fn read_lines(&mut self) -> Option<Vec<String>> {
        let ended = loop {
            match self.input.read(4096) {
                Ok(bytes) if bytes.is_empty() => break false,
                Ok(bytes) => self.buf.extend_from_slice(&bytes),
                Err(_) => break true,
            }
        };
        let mut lines = Vec::new();
        while let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            lines.push(String::from_utf8_lossy(&line[..i]).trim_end_matches('\r').to_string());
        }
        if ended {
            if !self.buf.is_empty() {
                lines.push(String::from_utf8_lossy(&std::mem::take(&mut self.buf)).to_string());
            }
            return if lines.is_empty() { None } else { Some(lines) };
        }
        Some(lines)
    }

    /// The next line without its newline; None at the end of the stream.
    pub fn read_line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&line[..i]).trim_end_matches('\r').to_string());
            }
            match self.input.blocking_read(4096) {
                Ok(bytes) => self.buf.extend_from_slice(&bytes),
                Err(StreamError::Closed) | Err(StreamError::LastOperationFailed(_)) => {
                    if self.buf.is_empty() {
                        return None;
                    }
                    let rest = std::mem::take(&mut self.buf);
                    return Some(String::from_utf8_lossy(&rest).to_string());
                }
            }
        }
    }

    pub fn write_all(&mut self, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            let n = data.len().min(4096);
            if self.output.blocking_write_and_flush(&data[..n]).is_err() {
                return false;
            }
            data = &data[n..];
        }
        true
    }

    /// Ends what this side sends; the peer reads to the end.
    pub fn finish(&self) {
        let _ = self.socket.shutdown(ShutdownType::Send);
    }
}
