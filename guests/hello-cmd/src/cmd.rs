//! The command program shared by hello-cmd (wasip2 component) and hello-p1 (wasip1 core
//! module; it includes this file by path). It prints `hello from <crate>`, `argv0: ..`,
//! each further argument as `arg: ..`, and `env: NAME=value` for GREETING and every
//! variable starting with `FLOTILLA_`; writes one line to stderr; then runs the options
//! in order:
//!   --env NAME          print `env: NAME=value` (or `env: NAME unset`)
//!   --all-env           print every variable as `env: NAME=value`
//!   --read PATH         print the file's contents as they are
//!   --write PATH TEXT   write TEXT to PATH, print `wrote PATH`
//!   --sleep-ms N        sleep N ms
//!   --loop-print N      print `line 1` .. `line N`
//!   --cat               print each line read from stdin as `stdin: LINE`, then
//!                       `stdin: EOF` at its end
//!   --exit N            exit with code N (0-255) at once
//! Errors (bad number, unreadable file) go to stderr and exit with code 2. Unknown
//! arguments are only printed. Without --exit it exits 0.

use std::io::Write as _;
use std::time::Duration;

/// Runs the program; `exit` must end the process with exactly the given code.
pub fn run(exit: fn(u8) -> !) {
    let args: Vec<String> = std::env::args().collect();
    println!("hello from {}", env!("CARGO_PKG_NAME"));
    if let Some(argv0) = args.first() {
        println!("argv0: {argv0}");
    }
    for arg in args.iter().skip(1) {
        println!("arg: {arg}");
    }
    for (name, value) in std::env::vars() {
        if name == "GREETING" || name.starts_with("FLOTILLA_") {
            println!("env: {name}={value}");
        }
    }
    eprintln!("{}: this line goes to stderr", env!("CARGO_PKG_NAME"));

    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let mut value = |what: &str| -> String {
            match rest.next() {
                Some(v) => v.clone(),
                None => fail(exit, format!("{arg} needs {what}")),
            }
        };
        match arg.as_str() {
            "--env" => {
                let name = value("NAME");
                match std::env::var(&name) {
                    Ok(v) => println!("env: {name}={v}"),
                    Err(_) => println!("env: {name} unset"),
                }
            }
            "--all-env" => {
                for (name, v) in std::env::vars() {
                    println!("env: {name}={v}");
                }
            }
            "--read" => {
                let path = value("PATH");
                match std::fs::read(&path) {
                    Ok(data) => {
                        let mut out = std::io::stdout().lock();
                        let _ = out.write_all(&data).and_then(|()| out.flush());
                    }
                    Err(e) => fail(exit, format!("reading {path}: {e}")),
                }
            }
            "--write" => {
                let path = value("PATH");
                let text = value("TEXT");
                match std::fs::write(&path, text.as_bytes()) {
                    Ok(()) => println!("wrote {path}"),
                    Err(e) => fail(exit, format!("writing {path}: {e}")),
                }
            }
            "--sleep-ms" => {
                let ms = number(&value("N"), exit);
                std::thread::sleep(Duration::from_millis(ms));
            }
            "--loop-print" => {
                let n = number(&value("N"), exit);
                let mut out = std::io::stdout().lock();
                for i in 1..=n {
                    let _ = writeln!(out, "line {i}");
                }
                let _ = out.flush();
            }
            "--cat" => {
                for line in std::io::stdin().lines() {
                    match line {
                        Ok(line) => println!("stdin: {line}"),
                        Err(e) => fail(exit, format!("reading stdin: {e}")),
                    }
                    let _ = std::io::stdout().flush();
                }
                println!("stdin: EOF");
            }
            "--exit" => {
                let raw = value("N");
                let code = u8::try_from(number(&raw, exit))
                    .unwrap_or_else(|_| fail(exit, format!("exit code {raw} is not in 0..=255")));
                let _ = std::io::stdout().flush();
                exit(code);
            }
            _ => {}
        }
    }
    let _ = std::io::stdout().flush();
}

fn number(raw: &str, exit: fn(u8) -> !) -> u64 {
    raw.parse().unwrap_or_else(|_| fail(exit, format!("not a number: {raw}")))
}

fn fail(exit: fn(u8) -> !, msg: String) -> ! {
    let _ = std::io::stdout().flush();
    eprintln!("{}: error: {msg}", env!("CARGO_PKG_NAME"));
    exit(2)
}
