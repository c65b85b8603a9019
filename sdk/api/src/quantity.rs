//! Kubernetes resource quantities ("100m", "0.5", "16Mi", "1G", "1e3").

/// A quantity that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
pub struct QuantityError;

/// Parses a quantity into its value (as f64; exact for the sizes and CPU amounts used here).
pub fn parse(s: &str) -> Result<f64, QuantityError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(QuantityError);
    }
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let value: f64 = num.parse().map_err(|_| QuantityError)?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().map_err(|_| QuantityError)?;
            10f64.powi(exp)
        }
        _ => return Err(QuantityError),
    };
    let v = value * mult;
    if !v.is_finite() {
        return Err(QuantityError);
    }
    Ok(v)
}

/// A quantity as a JSON value holds it: a string ("100m", "1Gi") or a number; None for
/// anything else or a string that does not parse.
pub fn from_json(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::String(s) => parse(s).ok(),
        serde_json::Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// A memory quantity in bytes (rounded up).
pub fn bytes(s: &str) -> Result<u64, QuantityError> {
    let v = parse(s)?;
    if v < 0.0 {
        return Err(QuantityError);
    }
    Ok(v.ceil() as u64)
}

/// A CPU quantity in millicores (rounded up, as Kubernetes does).
pub fn millicores(s: &str) -> Result<u64, QuantityError> {
    let v = parse(s)?;
    if v < 0.0 {
        return Err(QuantityError);
    }
    Ok((v * 1000.0 - 1e-9).ceil().max(0.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_and_cpu_forms() {
        assert_eq!(bytes("16Mi"), Ok(16 * 1024 * 1024));
        assert_eq!(bytes("1G"), Ok(1_000_000_000));
        assert_eq!(bytes("128974848"), Ok(128_974_848));
        assert_eq!(bytes("129e6"), Ok(129_000_000));
        assert_eq!(bytes("1.5Ki"), Ok(1536));
        assert_eq!(millicores("100m"), Ok(100));
        assert_eq!(millicores("0.5"), Ok(500));
        assert_eq!(millicores("2"), Ok(2000));
        assert_eq!(millicores("1.0001"), Ok(1001));
        assert!(bytes("12Q").is_err());
        assert!(bytes("").is_err());
        assert!(bytes("-1").is_err());
    }
}
