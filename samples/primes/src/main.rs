//! The Flotilla batch sample: counts the primes below N (first argument, default 100000)
//! and prints the count, with the Job completion index when it runs in an Indexed Job.

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let count = (2..n).filter(|&k| (2..).take_while(|d| d * d <= k).all(|d| k % d != 0)).count();
    match std::env::var("JOB_COMPLETION_INDEX") {
        Ok(i) => println!("index {i}: {count} primes below {n}"),
        Err(_) => println!("{count} primes below {n}"),
    }
}
