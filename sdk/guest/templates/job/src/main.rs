//! {{name}}: a batch command for Flotilla (a Job's container), written with the guest
//! SDK (flotilla-guest).
//!
//! `{{name}} [--count N] [--fail] [WHO]` prints `I: hello, WHO` N times (default 3,
//! WHO default `world`), logging its start and end. In an Indexed Job each pod sees its
//! `JOB_COMPLETION_INDEX`. `--fail` exits with code 3 (the Job retries up to its
//! backoffLimit); a bad `--count` is a usage error (exit code 2).

#![forbid(unsafe_code)]

use flotilla_guest::cli::{self, Args, Error};
use flotilla_guest::{env, info};

fn main() {
    cli::run(run)
}

fn run(args: Args) -> Result<(), Error> {
    let count: u64 = args.value_or("count", 3)?;
    let who = args.positional().first().copied().unwrap_or("world").to_string();
    let index = env::var_or("JOB_COMPLETION_INDEX", "-");
    info!("starting", index = index, count = count);
    for i in 1..=count {
        println!("{i}: hello, {who}");
    }
    if args.flag("fail") {
        return Err(Error::new("failing as asked (--fail)").with_code(3));
    }
    info!("done", index = index);
    Ok(())
}
