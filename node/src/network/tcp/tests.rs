use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn any(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
}

async fn read_all(rx: &mut PipeReader) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        match rx.try_read(1024) {
            Err(Closed) => return out,
            Ok(b) if b.is_empty() => rx.readable().await,
            Ok(b) => out.extend_from_slice(&b),
        }
    }
}

fn to(sockets: &Arc<PodSockets>, port: u16) -> Target {
    Target::Pod { sockets: sockets.clone(), port, loopback: false }
}

#[tokio::test]
async fn listen_connect_accept_and_echo() {
    let server = PodSockets::new(Some(ip("10.42.0.2")));
    let client = PodSockets::new(Some(ip("10.42.0.3")));
    let listener = server.bind(any(6379)).expect("bind").listen(8);
    assert_eq!(server.listening(), [6379]);

    let slot = client.socket().expect("slot");
    let mut c = connect(client.clone(), slot, to(&server, 6379)).await.expect("connected");
    let mut s = listener.try_accept().expect("a waiting connection");
    assert_eq!(c.peer, SocketAddr::new(ip("10.42.0.2"), 6379));
    assert_eq!(s.peer, c.local);
    assert_eq!(s.local.ip(), ip("10.42.0.2"));
    assert_eq!(c.local.ip(), ip("10.42.0.3"));

    assert_eq!(c.tx.try_write(b"ping\n"), Ok(5));
    let got = s.rx.try_read(100).expect("open");
    assert_eq!(&got[..], b"ping\n");
    s.tx.try_write(b"pong\n").expect("open");
    drop(s);
    // The server side is gone: the client reads what was sent, then the end.
    assert_eq!(read_all(&mut c.rx).await, b"pong\n");
    assert_eq!(c.tx.try_write(b"more"), Err(Closed), "writing to a closed peer fails");
}

#[tokio::test]
async fn nobody_listening_wrong_address_or_full_backlog_is_refused() {
    let server = PodSockets::new(Some(ip("10.42.0.2")));
    let client = PodSockets::new(Some(ip("10.42.0.3")));
    let c = |t| connect(client.clone(), client.socket().expect("slot"), t);
    assert_eq!(c(to(&server, 80)).await.err(), Some(TcpError::Refused));
    // Bound but not listening.
    let bound = server.bind(any(80)).expect("bind");
    assert_eq!(c(to(&server, 80)).await.err(), Some(TcpError::Refused));
    // Loopback-only listeners take their own pod only.
    let _lo = server.bind(SocketAddr::new(ip("127.0.0.1"), 81)).expect("bind").listen(8);
    assert_eq!(c(to(&server, 81)).await.err(), Some(TcpError::Refused));
    let own = connect(server.clone(), server.socket().expect("slot"), Target::Pod { sockets: server.clone(), port: 81, loopback: true }).await;
    assert_eq!(own.expect("loopback connect").peer, SocketAddr::new(ip("127.0.0.1"), 81));
    // Backlog of 2: the third waiting connection is refused; accepting makes room.
    let l = bound.listen(2);
    let a = c(to(&server, 80)).await.expect("first");
    let _b = c(to(&server, 80)).await.expect("second");
    assert_eq!(c(to(&server, 80)).await.err(), Some(TcpError::Refused));
    let _accepted = l.try_accept().expect("waiting");
    c(to(&server, 80)).await.expect("room again");
    drop(a);
    // Other targets.
    assert_eq!(c(Target::Refused).await.err(), Some(TcpError::Refused));
    assert_eq!(c(Target::Denied).await.err(), Some(TcpError::AccessDenied));
    let remote = Target::Remote { node: "other".into(), addr: SocketAddr::new(ip("10.42.1.2"), 80), dial: None };
    assert_eq!(c(remote).await.err(), Some(TcpError::Refused), "no data plane");
}

#[tokio::test]
async fn every_pod_has_its_own_ports() {
    let a = PodSockets::new(Some(ip("10.42.0.2")));
    let b = PodSockets::new(Some(ip("10.42.0.3")));
    let la = a.bind(any(6379)).expect("a binds").listen(8);
    let lb = b.bind(any(6379)).expect("b binds the same port").listen(8);
    assert_eq!(a.bind(any(6379)).err(), Some(TcpError::AddressInUse));
    assert_eq!(a.bind(SocketAddr::new(ip("10.42.0.9"), 1)).err(), Some(TcpError::NotBindable));
    a.bind(SocketAddr::new(ip("10.42.0.2"), 1)).expect("its own address");
    let client = PodSockets::new(Some(ip("10.42.0.4")));
    connect(client.clone(), client.socket().expect("slot"), to(&b, 6379)).await.expect("to b");
    assert!(la.try_accept().is_none());
    assert!(lb.try_accept().is_some());
    // Port 0: an ephemeral port.
    let e = a.bind(any(0)).expect("ephemeral");
    assert!(e.addr.port() >= 49152);
}

#[tokio::test]
async fn dropped_listeners_free_their_port_and_refuse_their_backlog() {
    let server = PodSockets::new(Some(ip("10.42.0.2")));
    let client = PodSockets::new(Some(ip("10.42.0.3")));
    let l = server.bind(any(7000)).expect("bind").listen(8);
    let mut waiting = connect(client.clone(), client.socket().expect("slot"), to(&server, 7000)).await.expect("queued");
    assert_eq!(server.open_sockets(), 1, "the queued connection counts");
    drop(l);
    assert!(server.listening().is_empty());
    assert_eq!(server.open_sockets(), 0);
    assert_eq!(read_all(&mut waiting.rx).await, b"", "a queued connection ends when its listener goes");
    drop(waiting);
    assert_eq!(client.open_sockets(), 0, "nothing held once the client dropped its side");
    server.bind(any(7000)).expect("the port is free again");
}

#[tokio::test]
async fn a_pod_holds_a_bounded_number_of_sockets() {
    let pod = PodSockets::new(Some(ip("10.42.0.2")));
    let slots: Vec<_> = (0..MAX_POD_SOCKETS).map(|_| pod.socket().expect("under the limit")).collect();
    assert_eq!(pod.socket().err(), Some(TcpError::SocketLimit));
    // A full pod refuses incoming connections.
    let _l = pod.bind(any(1)).expect("bind").listen(8);
    let client = PodSockets::new(Some(ip("10.42.0.3")));
    assert_eq!(connect(client.clone(), client.socket().expect("slot"), to(&pod, 1)).await.err(), Some(TcpError::Refused));
    drop(slots);
    assert_eq!(pod.open_sockets(), 0);
    pod.socket().expect("room again");
}

#[tokio::test]
async fn pipes_apply_backpressure_and_shutdown_ends_the_stream() {
    let (mut tx, mut rx) = pipe();
    let big = vec![7u8; PIPE_CAPACITY + 10];
    assert_eq!(tx.try_write(&big), Ok(PIPE_CAPACITY));
    assert_eq!(tx.room(), Ok(0));
    assert_eq!(tx.try_write(b"x"), Ok(0));
    let w = tokio::spawn(async move {
        tx.writable().await;
        tx.try_write(b"tail").expect("room");
        tx.close();
        tx
    });
    let got = read_all(&mut rx).await;
    assert_eq!(got.len(), PIPE_CAPACITY + 4);
    let tx = w.await.expect("writer");
    assert_eq!(tx.room(), Err(Closed));
}

#[tokio::test]
async fn bridge_copies_both_ways() {
    let (a, b) = Conn::pair(SocketAddr::new(ip("10.42.0.2"), 1), SocketAddr::new(ip("10.42.0.3"), 2));
    let (ours, theirs) = tokio::io::duplex(1024);
    bridge(b, theirs);
    let (mut rd, mut wr) = tokio::io::split(ours);
    let Conn { mut rx, mut tx, .. } = a;
    tx.try_write(b"up").expect("open");
    tx.close();
    let mut buf = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut rd, &mut buf).await.expect("read");
    assert_eq!(buf, b"up");
    tokio::io::AsyncWriteExt::write_all(&mut wr, b"down").await.expect("write");
    tokio::io::AsyncWriteExt::shutdown(&mut wr).await.expect("shutdown");
    assert_eq!(read_all(&mut rx).await, b"down");
}
