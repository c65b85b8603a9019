//! tcp-echo: a TCP echo server over wasi:sockets. Listens on `BIND:PORT` (args:
//! `tcp-echo [PORT [BIND]]`, else env `PORT`, `BIND`; defaults 7000 and 0.0.0.0), prints
//! `listening on ADDR`, then answers every line of every connection with `NAME: LINE`
//! (env `NAME`, default `echo`), forever. Connections are served one at a time (wasip2
//! has no threads). Exits 1 if it cannot listen (`bind ...: ERROR`).
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
    loop {
        let mut conn = match net::accept(&listener) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("accept: {}", e.name());
                continue;
            }
        };
        let peer = conn.peer();
        while let Some(line) = conn.read_line() {
            println!("{peer}: {line}");
            if !conn.write_all(format!("{name}: {line}\n").as_bytes()) {
                break;
            }
        }
    }
}
