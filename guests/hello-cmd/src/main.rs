//! hello-cmd: the node agent's sample command container, a wasm32-wasip2 component
//! exporting wasi:cli/run. The program itself is in cmd.rs (shared with hello-p1).
//! Exact exit codes use the unstable wasi:cli/exit#exit-with-code (a component's plain
//! exit only tells success from failure), so hosts must enable it
//! (`wasmtime run -S cli-exit-with-code`).
#![forbid(unsafe_code)]

mod cmd;

fn exit(code: u8) -> ! {
    if code == 0 {
        std::process::exit(0);
    }
    wasip2::cli::exit::exit_with_code(code);
    std::process::abort() // not reached: exit-with-code does not return
}

fn main() {
    cmd::run(exit);
}
