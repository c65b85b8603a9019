//! tcp-client: a TCP client over wasi:sockets; names resolve through ip-name-lookup.
//! `tcp-client HOST:PORT [MESSAGE]` connects, sends MESSAGE (default `hello`) and a
//! newline, prints `reply: LINE` and exits 0; on failure prints `error: ERROR-CODE`
//! (the wasi:sockets error-code name, e.g. `connection-refused`, `name-unresolvable`) and exits
//! 1. With env `TCP_RETRIES=N` a failed connect is retried N times, 200 ms apart (a
//! server that is still starting).
#![forbid(unsafe_code)]

#[path = "../../tcp-echo/src/net.rs"]
mod net;

fn fail(what: &str) -> ! {
    println!("error: {what}");
    std::process::exit(1);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some((host, port)) = args.get(1).and_then(|a| a.rsplit_once(':')) else {
        eprintln!("usage: tcp-client HOST:PORT [MESSAGE]");
        std::process::exit(2);
    };
    let Ok(port) = port.parse::<u16>() else { fail("invalid-port") };
    let message = args.get(2).map_or("hello", String::as_str);
    let retries: u32 = std::env::var("TCP_RETRIES").ok().and_then(|r| r.parse().ok()).unwrap_or(0);
    let mut attempt = 0;
    let mut conn = loop {
        match net::connect(host, port) {
            Ok(c) => break c,
            Err(e) if attempt < retries => {
                attempt += 1;
                eprintln!("connect {host}:{port}: {} (retrying)", e.name());
                wasip2::clocks::monotonic_clock::subscribe_duration(200_000_000).block();
            }
            Err(e) => fail(e.name()),
        }
    };
    println!("connected {} -> {}", conn.local(), conn.peer());
    if !conn.write_all(format!("{message}\n").as_bytes()) {
        fail("write failed");
    }
    match conn.read_line() {
        Some(line) => println!("reply: {line}"),
        None => fail("connection-closed"),
    }
    conn.finish();
}
