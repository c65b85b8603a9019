//! Structured logs for `kubectl logs`: one line per record, written whole to stderr
//! (stdout stays the program's output), as
//!
//! ```text
//! INFO  user created id=42 name="Ada Lovelace"
//! WARN  slow upstream service=quotes ms=812
//! ```
//!
//! The level (padded to 5), the message, then `key=value` fields in the order given.
//! A value (or message) is quoted, Rust-style (`\"`, `\\`, `\n`, `\t`, `\u{..}`), when it
//! is empty or holds a space, `"`, `=` or a control character, so a record never spans
//! two lines and splits back into fields. `kubectl logs --timestamps` adds the time, so
//! records carry none.
//!
//! The minimum level comes from env `LOG_LEVEL` (`debug`, `info` (default), `warn`,
//! `error`, `off`), read once per instance.
//!
//! ```ignore
//! use flotilla_guest::{info, warn};
//! info!("user created", id = 42, name = "Ada Lovelace");
//! warn!(format!("retry {n}"), service = "quotes");
//! ```

use std::fmt::{Display, Write as _};
use std::io::Write as _;
use std::sync::OnceLock;

/// A record's severity, least severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    /// The name a record starts with: `DEBUG`, `INFO`, `WARN`, `ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }

    /// `LOG_LEVEL`'s values, case-insensitive: `Some(None)` for `off`, `None` if unknown.
    fn parse_filter(s: &str) -> Option<Option<Level>> {
        Some(Some(match s.trim().to_ascii_lowercase().as_str() {
            "debug" | "trace" => Level::Debug,
            "info" | "" => Level::Info,
            "warn" | "warning" => Level::Warn,
            "error" => Level::Error,
            "off" | "none" => return Some(None),
            _ => return None,
        }))
    }
}

/// The least severe level written (`None`: logging off), from env `LOG_LEVEL`.
fn min_level() -> Option<Level> {
    static MIN: OnceLock<Option<Level>> = OnceLock::new();
    *MIN.get_or_init(|| crate::env::var("LOG_LEVEL").and_then(|v| Level::parse_filter(&v)).unwrap_or(Some(Level::Info)))
}

/// True if a record of `level` would be written.
pub fn enabled(level: Level) -> bool {
    min_level().is_some_and(|min| level >= min)
}

/// Writes one record (what the macros call). Fields are `(key, value)` pairs.
pub fn write(level: Level, message: &dyn Display, fields: &[(&str, &dyn Display)]) {
    if !enabled(level) {
        return;
    }
    let line = format_record(level, message, fields);
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(line.as_bytes());
    let _ = err.flush();
}

/// The record as one line, ending in `\n`.
pub fn format_record(level: Level, message: &dyn Display, fields: &[(&str, &dyn Display)]) -> String {
    let mut line = format!("{:<5} ", level.as_str());
    let msg = message.to_string();
    // The message may hold spaces unquoted: only line breaks and quotes at its ends matter.
    if msg.chars().any(|c| c.is_control()) || msg.starts_with('"') {
        push_quoted(&mut line, &msg);
    } else {
        line.push_str(&msg);
    }
    for (k, v) in fields {
        line.push(' ');
        line.push_str(k);
        line.push('=');
        push_value(&mut line, &v.to_string());
    }
    line.push('\n');
    line
}

fn push_value(line: &mut String, v: &str) {
    if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '=') {
        push_quoted(line, v);
    } else {
        line.push_str(v);
    }
}

fn push_quoted(line: &mut String, v: &str) {
    line.push('"');
    for c in v.chars() {
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\t' => line.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(line, "\\u{{{:x}}}", c as u32);
            }
            c => line.push(c),
        }
    }
    line.push('"');
}

/// `log!(Level::Info, "message", key = value, ...)`: one record; values are `Display`.
#[macro_export]
macro_rules! log {
    ($level:expr, $msg:expr $(, $k:ident = $v:expr)* $(,)?) => {
        if $crate::log::enabled($level) {
            $crate::log::write($level, &$msg, &[$((stringify!($k), &$v as &dyn ::core::fmt::Display)),*]);
        }
    };
}

/// `debug!("message", key = value, ...)`
#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => { $crate::log!($crate::log::Level::Debug, $($t)*) };
}

/// `info!("message", key = value, ...)`
#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { $crate::log!($crate::log::Level::Info, $($t)*) };
}

/// `warn!("message", key = value, ...)`
#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::log!($crate::log::Level::Warn, $($t)*) };
}

/// `error!("message", key = value, ...)`
#[macro_export]
macro_rules! error {
    ($($t:tt)*) => { $crate::log!($crate::log::Level::Error, $($t)*) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(level: Level, msg: &str, fields: &[(&str, &dyn Display)]) -> String {
        format_record(level, &msg, fields)
    }

    #[test]
    fn one_line_with_fields() {
        assert_eq!(rec(Level::Info, "user created", &[("id", &42), ("name", &"Ada Lovelace")]), "INFO  user created id=42 name=\"Ada Lovelace\"\n");
        assert_eq!(rec(Level::Error, "boom", &[]), "ERROR boom\n");
        assert_eq!(rec(Level::Warn, "w", &[("path", &"/a?b=c")]), "WARN  w path=\"/a?b=c\"\n");
        assert_eq!(rec(Level::Debug, "d", &[("empty", &"")]), "DEBUG d empty=\"\"\n");
    }

    #[test]
    fn never_spans_lines() {
        let line = rec(Level::Info, "two\nlines", &[("v", &"a\"b\\c\nd\u{1}")]);
        assert_eq!(line, "INFO  \"two\\nlines\" v=\"a\\\"b\\\\c\\nd\\u{1}\"\n");
        assert_eq!(line.matches('\n').count(), 1);
    }

    #[test]
    fn level_filter() {
        assert_eq!(Level::parse_filter("WARN"), Some(Some(Level::Warn)));
        assert_eq!(Level::parse_filter("off"), Some(None));
        assert_eq!(Level::parse_filter("loud"), None);
        assert!(Level::Error > Level::Info && Level::Debug < Level::Info);
    }

    #[test]
    fn macro_shapes_compile() {
        // LOG_LEVEL is unset on the host here: info and above are written (to stderr).
        crate::info!("plain");
        crate::warn!(format!("n={}", 3), k = 1, s = "x y",);
        crate::debug!("hidden", k = 2);
    }
}
