//! stack-overflow: recurses without bound (not a tail call, so it cannot become a loop)
//! until the wasm call stack is exhausted: the run must fail with a trap.
#![forbid(unsafe_code)]

fn depth(n: u64) -> u64 {
    let n = std::hint::black_box(n);
    if n == u64::MAX {
        return 0; // never: keeps the recursion formally conditional
    }
    depth(n + 1) + std::hint::black_box(1)
}

fn main() {
    println!("stack-overflow: recursing");
    let d = depth(std::hint::black_box(0));
    println!("stack-overflow: returned {d} (should not happen)");
}
