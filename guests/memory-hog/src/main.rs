//! memory-hog: allocates 1 MiB chunks, writes every byte, keeps them all, and prints
//! `allocated N MiB` every 16 MiB, forever: only a memory limit stops it (the failed
//! allocation aborts, i.e. traps).
#![forbid(unsafe_code)]

const CHUNK: usize = 1 << 20;

fn main() {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let chunk = vec![0xA5u8; CHUNK];
        chunks.push(std::hint::black_box(chunk));
        if chunks.len() % 16 == 0 {
            println!("allocated {} MiB", chunks.len());
        }
    }
}
