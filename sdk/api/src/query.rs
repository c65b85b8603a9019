//! Query parameters as the Kubernetes API server parses them.

/// A boolean query parameter (`watch`, `follow`, `stdin`, ...), with Go's
/// `strconv.ParseBool` spellings as the API server accepts them: clients differ
/// (kubectl sends `true`, the Python client up to 32.x sends `True`, some send `1`).
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_bool;

    #[test]
    fn go_spellings_parse_and_others_do_not() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for bad in ["", "yes", "tRUE", "2"] {
            assert_eq!(parse_bool(bad), None, "{bad}");
        }
    }
}
