//! IPv4 CIDR blocks (`10.43.0.0/16`), as the `--service-cidr` and `--cluster-cidr` flags
//! and the networking.k8s.io ServiceCIDR objects write them.
//!
//! Invariants: an [`Ipv4Cidr`] is always masked (its address is the network address, as
//! Go's `net.ParseCIDR` returns it), so two values are equal exactly when they cover the
//! same addresses; `Display` prints the canonical `a.b.c.d/n` form.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network: a masked address and a prefix length (0..=32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    network: Ipv4Addr,
    prefix: u8,
}

/// Why a CIDR did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not `address/prefix` with an IPv4 address and a prefix of 0..=32 (Go's message).
    #[error("invalid CIDR address: {0}")]
    Invalid(String),
    /// An IPv6 block: only IPv4 networks are supported.
    #[error("{0} is an IPv6 range; only IPv4 ranges are supported")]
    Ipv6(String),
}

impl Ipv4Cidr {
    /// The network `addr/prefix` with the host bits of `addr` cleared.
    /// Panics if `prefix > 32` (a programming error; parsing never yields one).
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Ipv4Cidr {
        assert!(prefix <= 32, "IPv4 prefix length {prefix} > 32");
        Ipv4Cidr { network: Ipv4Addr::from(u32::from(addr) & mask(prefix)), prefix }
    }

    /// The network address (all host bits zero).
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// How many addresses the block holds, network and broadcast included.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The broadcast address (all host bits one).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask(self.prefix))
    }

    /// The address `offset` places after the network address, if inside the block.
    pub fn nth(&self, offset: u64) -> Option<Ipv4Addr> {
        (offset < self.size()).then(|| Ipv4Addr::from(u32::from(self.network) + offset as u32))
    }

    /// Whether `ip` is inside the block.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.network)
    }

    /// Whether the two blocks share an address.
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Ipv4Cidr, CidrError> {
        let invalid = || CidrError::Invalid(s.to_string());
        let (addr, prefix) = s.split_once('/').ok_or_else(invalid)?;
        if addr.contains(':') {
            return Err(if addr.parse::<std::net::Ipv6Addr>().is_ok() { CidrError::Ipv6(s.to_string()) } else { invalid() });
        }
        let addr: Ipv4Addr = addr.parse().map_err(|_| invalid())?;
        // Go accepts only decimal digits here: no sign, no spaces.
        if prefix.is_empty() || prefix.len() > 2 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
        if prefix > 32 {
            return Err(invalid());
        }
        Ok(Ipv4Cidr::new(addr, prefix))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_masks_and_prints_canonically() {
        let c: Ipv4Cidr = "10.43.7.9/16".parse().expect("cidr");
        assert_eq!(c.to_string(), "10.43.0.0/16");
        assert_eq!(c.size(), 65536);
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 43, 255, 255));
        assert_eq!(c.nth(1), Some(Ipv4Addr::new(10, 43, 0, 1)));
        assert_eq!(c.nth(65536), None);
        assert!(c.contains(Ipv4Addr::new(10, 43, 200, 1)));
        assert!(!c.contains(Ipv4Addr::new(10, 42, 0, 1)));
        let all: Ipv4Cidr = "0.0.0.0/0".parse().expect("cidr");
        assert_eq!(all.size(), 1 << 32);
        assert!(all.overlaps(&c) && c.overlaps(&all));
        assert!(!c.overlaps(&"10.42.0.0/16".parse().expect("cidr")));
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in ["10.43.0.0", "10.43.0.0/33", "10.43.0.0/", "10.43.0/16", "10.43.0.0/+8", "nope", "10.43.0.0/16/1", ""] {
            assert_eq!(bad.parse::<Ipv4Cidr>(), Err(CidrError::Invalid(bad.to_string())), "{bad}");
        }
        assert_eq!("fd00::/108".parse::<Ipv4Cidr>(), Err(CidrError::Ipv6("fd00::/108".into())));
        assert_eq!(CidrError::Invalid("x".into()).to_string(), "invalid CIDR address: x");
    }
}
