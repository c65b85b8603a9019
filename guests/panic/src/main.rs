//! panic: prints a line, then panics (panic=abort, so the message goes to stderr and the
//! run ends in a trap).
#![forbid(unsafe_code)]

fn main() {
    println!("panic: about to panic");
    panic!("flotilla test guest panicked on purpose");
}
