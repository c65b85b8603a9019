//! The pod network of this node. Today: virtual pod addresses from the node's pod CIDR
//! (10.N.0.0/16 with N from the node name, never routed); the pod network proper will
//! live here too.
//!
//! Invariants: an address is handed out at most once until it is released; `.0` and
//! `.255` host parts and the first two addresses are never handed out.

mod resolve;
mod router;
mod table;
pub(crate) mod watch;

pub(crate) use self::router::{Egress, Routing};

use std::collections::HashSet;

/// Virtual pod IPs from the node's pod CIDR.
pub(crate) struct IpPool {
    prefix: [u8; 2],
    used: HashSet<u16>,
    next: u16,
}

impl IpPool {
    pub(crate) fn new(node_name: &str) -> Self {
        let h = node_name.bytes().fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)));
        IpPool { prefix: [10, 100 + (h % 100) as u8], used: Default::default(), next: 2 }
    }

    pub(crate) fn cidr(&self) -> String {
        format!("{}.{}.0.0/16", self.prefix[0], self.prefix[1])
    }

    fn ip(&self, n: u16) -> String {
        format!("{}.{}.{}.{}", self.prefix[0], self.prefix[1], n >> 8, n & 0xff)
    }

    /// The host part of `ip` when it lies in this pool's CIDR.
    fn host_part(&self, ip: &str) -> Option<u16> {
        let rest = ip.strip_prefix(&format!("{}.{}.", self.prefix[0], self.prefix[1]))?;
        let mut it = rest.split('.').filter_map(|s| s.parse::<u16>().ok());
        match (it.next(), it.next()) {
            (Some(a), Some(b)) if a < 256 && b < 256 => Some(a << 8 | b),
            _ => None,
        }
    }

    /// Marks an address taken (a pod keeping the address it had in an earlier life of
    /// this node); false if it is not in the pool or already taken.
    pub(crate) fn claim(&mut self, ip: &str) -> bool {
        self.host_part(ip).is_some_and(|n| self.used.insert(n))
    }

    pub(crate) fn allocate(&mut self) -> Option<String> {
        for _ in 0..u16::MAX {
            let n = self.next;
            self.next = if self.next >= 0xfffe { 2 } else { self.next + 1 };
            if n & 0xff == 0 || n & 0xff == 0xff {
                continue;
            }
            if self.used.insert(n) {
                return Some(self.ip(n));
            }
        }
        None
    }

    pub(crate) fn release(&mut self, ip: &str) {
        if let Some(n) = self.host_part(ip) {
            self.used.remove(&n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::IpPool;

    #[test]
    fn addresses_are_claimed_allocated_and_released_once() {
        let mut pool = IpPool::new("node-a");
        let cidr = pool.cidr();
        let prefix = cidr.strip_suffix("0.0/16").expect("a /16");
        let first = pool.allocate().expect("an address");
        assert_eq!(first, format!("{prefix}0.2"));
        assert!(!pool.claim(&first), "taken twice");
        assert!(pool.claim(&format!("{prefix}0.3")));
        assert_eq!(pool.allocate(), Some(format!("{prefix}0.4")));
        assert!(!pool.claim("192.168.0.1"));
        pool.release(&first);
        assert!(pool.claim(&first));
    }
}
