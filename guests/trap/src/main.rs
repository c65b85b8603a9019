//! trap: prints a line, then executes wasm `unreachable`: the run must fail with a trap.
#![forbid(unsafe_code)]

fn main() {
    println!("trap: about to execute unreachable");
    core::arch::wasm32::unreachable();
}
