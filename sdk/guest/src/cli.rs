//! A command's entry point (`wasi:cli/run`: a Job's, a CronJob's or a long-running
//! worker's container): its arguments (the container's `command` + `args`) and an exact
//! exit code (`kubectl get pod` shows it; a Job counts non-zero as a failure).
//!
//! ```ignore
//! use flotilla_guest::cli::{self, Args};
//!
//! fn main() {
//!     cli::run(|args: Args| {
//!         let n: u64 = args.positional_or(0, 100)?;
//!         println!("{n}");
//!         Ok(())
//!     })
//! }
//! ```

use std::fmt::{self, Display};
use std::io::Write as _;
use std::str::FromStr;

/// Runs `main` with the program's arguments and exits: 0 on `Ok`, else the error is
/// logged (`ERROR message`, see [`crate::log`]) and the exit code is the error's
/// (default 1). Never returns.
pub fn run<F>(main: F) -> !
where
    F: FnOnce(Args) -> Result<(), Error>,
{
    match main(Args::from_env()) {
        Ok(()) => exit(0),
        Err(e) => {
            crate::log::write(crate::log::Level::Error, &e.message, &[]);
            exit(e.code)
        }
    }
}

/// Ends the program with exactly `code` (wasi:cli/exit's exit-with-code; a plain
/// `std::process::exit` in a component only tells success from failure). Flushes
/// stdout and stderr first.
pub fn exit(code: u8) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    if cfg!(target_arch = "wasm32") {
        wasip2::cli::exit::exit_with_code(code);
    }
    std::process::exit(i32::from(code))
}

/// A command's failure: what to log and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub message: String,
    pub code: u8,
}

impl Error {
    /// A failure exiting with 1.
    pub fn new(message: impl Display) -> Error {
        Error { message: message.to_string(), code: 1 }
    }

    /// A usage error: exit code 2, as Unix tools use.
    pub fn usage(message: impl Display) -> Error {
        Error { message: message.to_string(), code: 2 }
    }

    /// The same failure with another exit code.
    pub fn with_code(mut self, code: u8) -> Error {
        self.code = code;
        self
    }
}

impl Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::new(e)
    }
}

impl From<String> for Error {
    fn from(e: String) -> Error {
        Error::new(e)
    }
}

impl From<&str> for Error {
    fn from(e: &str) -> Error {
        Error::new(e)
    }
}

impl From<crate::client::Error> for Error {
    fn from(e: crate::client::Error) -> Error {
        Error::new(e)
    }
}

/// The program's arguments: `argv[0]` is the program name; options are `--name value`,
/// `--name=value` or flags (`--verbose`); everything else (and all after `--`) is
/// positional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    all: Vec<String>,
}

impl Args {
    /// This program's arguments (wasi:cli/environment's get-arguments).
    pub fn from_env() -> Args {
        if cfg!(target_arch = "wasm32") {
            Args::new(wasip2::cli::environment::get_arguments())
        } else {
            Args::new(std::env::args().collect())
        }
    }

    /// Arguments as given, `argv[0]` first.
    pub fn new(all: Vec<String>) -> Args {
        Args { all }
    }

    /// `argv[0]`.
    pub fn program(&self) -> &str {
        self.all.first().map_or("", String::as_str)
    }

    /// Everything after `argv[0]`, as given.
    pub fn raw(&self) -> &[String] {
        self.all.get(1..).unwrap_or(&[])
    }

    /// True if `--name` (or `-n` when `name` is one letter) is present.
    pub fn flag(&self, name: &str) -> bool {
        self.options().iter().any(|(k, _)| *k == name)
    }

    /// The value of `--name VALUE` or `--name=VALUE` (the last one given).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.options().into_iter().rev().find(|(k, _)| *k == name).and_then(|(_, v)| v)
    }

    /// `--name`'s value parsed, or `default` when absent; a usage error if it does not parse.
    pub fn value_or<T: FromStr>(&self, name: &str, default: T) -> Result<T, Error> {
        match self.value(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| Error::usage(format!("--{name}: cannot parse {v:?}"))),
        }
    }

    /// The positional arguments (not options or their values).
    pub fn positional(&self) -> Vec<&str> {
        let mut out = Vec::new();
        let mut it = self.raw().iter();
        while let Some(a) = it.next() {
            if a == "--" {
                out.extend(it.map(String::as_str));
                break;
            }
            match Self::option_name(a) {
                Some((_, Some(_))) => {}
                Some((_, None)) => {
                    // `--name VALUE`: a following non-option is the value.
                    if it.as_slice().first().is_some_and(|n| Self::option_name(n).is_none() && n != "--") {
                        it.next();
                    }
                }
                None => out.push(a),
            }
        }
        out
    }

    /// Positional argument `i` parsed, or `default` when absent; a usage error if it does not parse.
    pub fn positional_or<T: FromStr>(&self, i: usize, default: T) -> Result<T, Error> {
        match self.positional().get(i) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| Error::usage(format!("argument {}: cannot parse {v:?}", i + 1))),
        }
    }

    /// `--name` / `--name=v` / `-n` → (name, inline value).
    fn option_name(a: &str) -> Option<(&str, Option<&str>)> {
        let body = a.strip_prefix("--").or_else(|| a.strip_prefix('-').filter(|s| s.len() == 1 && !s.starts_with(|c: char| c.is_ascii_digit())))?;
        if body.is_empty() {
            return None;
        }
        Some(match body.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (body, None),
        })
    }

    /// Options in order with their values (the next argument when it is not an option).
    fn options(&self) -> Vec<(&str, Option<&str>)> {
        let mut out = Vec::new();
        let raw = self.raw();
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == "--" {
                break;
            }
            if let Some((k, inline)) = Self::option_name(&raw[i]) {
                match inline {
                    Some(v) => out.push((k, Some(v))),
                    None => match raw.get(i + 1).filter(|n| Self::option_name(n).is_none() && *n != "--") {
                        Some(v) => {
                            out.push((k, Some(v.as_str())));
                            i += 1;
                        }
                        None => out.push((k, None)),
                    },
                }
            }
            i += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Args {
        Args::new(s.split_whitespace().map(str::to_string).collect())
    }

    #[test]
    fn options_and_positionals() {
        let a = args("prog 200 --name Ada --verbose --n=3 -x file -- --not-an-option");
        assert_eq!(a.program(), "prog");
        assert_eq!(a.value("name"), Some("Ada"));
        assert_eq!(a.value("n"), Some("3"));
        assert_eq!(a.value_or("n", 0u32), Ok(3));
        assert_eq!(a.value_or("missing", 7u32), Ok(7));
        assert!(a.flag("verbose") && a.flag("x") && !a.flag("quiet"));
        // `-x file`: `file` is -x's value, so not positional.
        assert_eq!(a.positional(), vec!["200", "--not-an-option"]);
        assert_eq!(a.positional_or(0, 1u64), Ok(200));
        assert_eq!(a.positional_or(5, 1u64), Ok(1));
    }

    #[test]
    fn parse_errors_are_usage_errors() {
        let a = args("prog abc --n=x");
        assert_eq!(a.positional_or::<u64>(0, 1).unwrap_err().code, 2);
        assert_eq!(a.value_or::<u32>("n", 0).unwrap_err().message, "--n: cannot parse \"x\"");
    }

    #[test]
    fn negative_numbers_are_positional() {
        assert_eq!(args("prog -5").positional(), vec!["-5"]);
    }
}
