//! The environment the pod spec grants (`env`, `envFrom`, fieldRef values such as
//! `POD_NAME`), read through `wasi:cli/environment` so HTTP guests built with the proxy
//! adapter see it too (Rust's `std::env` does not there). Read once per instance.

use std::str::FromStr;
use std::sync::OnceLock;

fn all() -> &'static [(String, String)] {
    static ENV: OnceLock<Vec<(String, String)>> = OnceLock::new();
    ENV.get_or_init(|| {
        if cfg!(target_arch = "wasm32") {
            wasip2::cli::environment::get_environment()
        } else {
            // Host builds (unit tests): the process environment.
            std::env::vars().collect()
        }
    })
}

/// Every variable, in the order the pod spec gives them.
pub fn vars() -> &'static [(String, String)] {
    all()
}

/// The value of `name`, if set.
pub fn var(name: &str) -> Option<String> {
    all().iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// The value of `name`, or `default` when unset.
pub fn var_or(name: &str, default: &str) -> String {
    var(name).unwrap_or_else(|| default.to_string())
}

/// `name` parsed as a `T`: `None` when unset, `Some(Err(..))` when it does not parse.
pub fn parse<T: FromStr>(name: &str) -> Option<Result<T, T::Err>> {
    var(name).map(|v| v.trim().parse())
}
