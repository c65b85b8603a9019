//! hello-p1: hello-cmd's program (../hello-cmd/src/cmd.rs) as a wasm32-wasip1 core
//! module, for hosts running plain wasip1 modules as commands; proc_exit keeps the exact
//! exit code.
#![forbid(unsafe_code)]

#[path = "../../hello-cmd/src/cmd.rs"]
mod cmd;

fn exit(code: u8) -> ! {
    std::process::exit(i32::from(code))
}

fn main() {
    cmd::run(exit);
}
