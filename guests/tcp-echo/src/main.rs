//! tcp-echo: a TCP echo server over wasi:sockets. Listens on `BIND:PORT` (args:
//! `tcp-echo [PORT [BIND]]`, else env `PORT`, `BIND`; defaults 7000 and 0.0.0.0), prints
//! `listening on ADDR`, then answers every line of every connection with `NAME: LINE`
//! (env `NAME`, default `echo`), forever, serving every connection at once by polling
//! (wasip2 has no threads). Exits 1 if it cannot listen (`bind ...: ERROR`).
#![forbid(unsafe_code)]

mod net;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let port = args.get(1).cloned().unwrap_or_else(|| env("PORT", "7000"));
    let bind = args.get(2).cloned().unwrap_or_else(|| env("BIND", "0.0.0.0"));
    let name = env("NAME", "echo");
    let (Ok(port), Ok(ip)) = (port.parse::<u16>(), bind.parse::<std::net::Ipv4Addr>()) else {
        eprintln!("usage: tcp-echo [PORT [BIND]]");
        std::process::exit(2);
    };
    let o = ip.octets();
    let listener = match net::listen((o[0], o[1], o[2], o[3]), port) {
        Ok(l) => l,
        Err(e) => {
            println!("bind {bind}:{port}: {}", e.name());
            std::process::exit(1);
        }
    };
    println!("listening on {}", listener.local_address().map(net::fmt_addr).unwrap_or_default());
    // Every connection at once, by polling the listener and each connection's input.
    let mut conns: Vec<(net::Stream, String)> = Vec::new();
    loop {
        let ready = {
            let mut pollables = vec![listener.subscribe()];
            pollables.extend(conns.iter().map(|(c, _)| c.subscribe()));
            let refs: Vec<&wasip2::io::poll::Pollable> = pollables.iter().collect();
            wasip2::io::poll::poll(&refs)
        };
        let mut ended = Vec::new();
        for i in ready {
            if i == 0 {
                while let Some(conn) = net::try_accept(&listener) {
                    match conn {
                        Ok(c) => {
                            let peer = c.peer();
                            conns.push((c, peer));
                        }
                        Err(e) => eprintln!("accept: {}", e.name()),
                    }
                }
                continue;
            }
            let (conn, peer) = &mut conns[i as usize - 1];
            let Some(lines) = conn.read_lines() else {
                ended.push(i as usize - 1);
                continue;
            };
            for line in lines {
                println!("{peer}: {line}");
                if !conn.write_all(format!("{name}: {line}\n").as_bytes()) {
                    ended.push(i as usize - 1);
                    break;
                }
            }
        }
        ended.sort_unstable();
        ended.dedup();
        for i in ended.into_iter().rev() {
            conns.swap_remove(i);
        }
    }
}
