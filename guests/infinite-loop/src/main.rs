//! infinite-loop: prints one line, then computes forever without a host call: only fuel
//! or epoch interruption stops it.
#![forbid(unsafe_code)]

fn main() {
    println!("infinite-loop: spinning");
    let mut x: u64 = std::hint::black_box(1);
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}
