//! Percent-encoding and query strings (RFC 3986 / WHATWG form encoding), pure.

/// Decodes `%XX` escapes and, as forms do, `+` as a space. Malformed escapes stay as
/// they are; invalid UTF-8 becomes U+FFFD.
pub fn percent_decode(s: &str) -> String {
    decode(s, true)
}

/// Decodes `%XX` escapes only (a path segment: `+` is a plus).
pub(crate) fn decode_segment(s: &str) -> String {
    decode(s, false)
}

fn decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(h << 4 | l);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Encodes everything but RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`), for a
/// query value or a path segment.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// `a=1&b=x%20y&flag` → [("a","1"), ("b","x y"), ("flag","")]; empty pieces skipped.
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_plus() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(decode_segment("a%20b+c"), "a b+c");
        assert_eq!(percent_decode("http%3A%2F%2Fx%2F"), "http://x/");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }

    #[test]
    fn encodes_reserved() {
        assert_eq!(percent_encode("a b/c?d=é"), "a%20b%2Fc%3Fd%3D%C3%A9");
        assert_eq!(percent_decode(&percent_encode("x&y=z +%")), "x&y=z +%");
    }

    #[test]
    fn parses_queries() {
        assert_eq!(
            parse_query("a=1&b=x%20y&&flag&c=a=b"),
            vec![("a".into(), "1".into()), ("b".into(), "x y".into()), ("flag".into(), "".into()), ("c".into(), "a=b".into())]
        );
        assert!(parse_query("").is_empty());
    }
}
