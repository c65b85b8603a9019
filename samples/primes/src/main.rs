//! The Flotilla batch sample, a command written with the guest SDK: counts the primes
//! below N (first argument, default 100000) and prints the count, with the Job
//! completion index when it runs in an Indexed Job. A bad N is a usage error (exit 2).

#![forbid(unsafe_code)]

use flotilla_guest::cli::{self, Args, Error};
use flotilla_guest::env;

fn main() {
    cli::run(primes)
}

fn primes(args: Args) -> Result<(), Error> {
    let n: u64 = args.positional_or(0, 100_000)?;
    let count = (2..n).filter(|&k| (2..).take_while(|d| d * d <= k).all(|d| k % d != 0)).count();
    match env::var("JOB_COMPLETION_INDEX") {
        Some(i) => println!("index {i}: {count} primes below {n}"),
        None => println!("{count} primes below {n}"),
    }
    Ok(())
}
