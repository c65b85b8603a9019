//! The pod network of this node: virtual pod addresses from the node's pod range (here),
//! the spec.podCIDR the control plane's node IPAM gave the Node (never routed on the
//! host); the routing table (`table.rs`, kept by `watch.rs`), pure name and address
//! resolution (`resolve.rs`), each pod's router (`router.rs`, TCP in
//! `router/tcp_route.rs`) and the in-memory pod TCP stack (`tcp.rs`).
//!
//! Invariants: an address is handed out at most once until it is released; only addresses
//! inside the pod range are handed out or claimed, and never its network address, its
//! first address (kept for the node, as CNI bridges keep `.1` for the gateway) or its
//! broadcast address. The range is an IPv4 block of prefix length
//! [`MIN_PREFIX`]..=[`MAX_PREFIX`] (a /24 from the node IPAM holds 253 pod addresses).
//! Addresses reserved at start (those of pods from an earlier life of the node) are never
//! allocated to a new pod, so their pods can claim them back whatever order their
//! workers start in; a reservation whose pod never claims it (deleted while the node was
//! down) lasts until the node restarts.

pub(crate) mod dataplane;
pub(crate) mod external;
pub(crate) mod frontends;
pub(crate) mod ingress;
pub(crate) mod policy;
mod resolve;
mod router;
mod table;
#[cfg(test)]
mod testing;
pub(crate) mod tcp;
pub(crate) mod watch;

pub(crate) use self::router::{Egress, Routing};

use std::collections::HashSet;
use std::net::Ipv4Addr;

use flotilla_api::cidr::Ipv4Cidr;

/// Shortest pod range prefix the node accepts (65,533 pod addresses).
pub(crate) const MIN_PREFIX: u8 = 16;
/// Longest pod range prefix the node accepts (one pod address).
pub(crate) const MAX_PREFIX: u8 = 30;
/// Offset of the first pod address: the network address and the node's `.1` come before.
const FIRST: u32 = 2;

/// Why the Node's podCIDR cannot be used for pod addresses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PodCidrError {
    #[error("the node's podCIDRs {0:?} hold no IPv4 range")]
    NoIpv4(Vec<String>),
    #[error("the node's podCIDR {0} is unusable: its prefix length must be {MIN_PREFIX} to {MAX_PREFIX}")]
    Prefix(Ipv4Cidr),
}

/// The node's pod range from its spec (podCIDRs, else podCIDR): the first IPv4 entry.
/// Ok(None) while the control plane has not set one.
pub(crate) fn pod_cidr(pod_cidr: Option<&str>, pod_cidrs: &[String]) -> Result<Option<Ipv4Cidr>, PodCidrError> {
    let written: Vec<&str> = if pod_cidrs.iter().any(|c| !c.is_empty()) {
        pod_cidrs.iter().map(String::as_str).filter(|c| !c.is_empty()).collect()
    } else {
        pod_cidr.filter(|c| !c.is_empty()).into_iter().collect()
    };
    if written.is_empty() {
        return Ok(None);
    }
    match written.iter().find_map(|c| c.parse::<Ipv4Cidr>().ok()) {
        Some(c) => Ok(Some(c)),
        None => Err(PodCidrError::NoIpv4(written.iter().map(|c| c.to_string()).collect())),
    }
}

/// Virtual pod IPs from the node's pod range.
pub(crate) struct IpPool {
    cidr: Ipv4Cidr,
    /// Offsets from the network address of the addresses handed out or claimed.
    used: HashSet<u32>,
    /// Offsets kept for the pods that held them before this node started.
    reserved: HashSet<u32>,
    /// Offset tried next: allocation goes round the range, so a released address is
    /// reused only after the others.
    next: u32,
}

impl IpPool {
    pub(crate) fn new(cidr: Ipv4Cidr) -> Result<Self, PodCidrError> {
        if !(MIN_PREFIX..=MAX_PREFIX).contains(&cidr.prefix()) {
            return Err(PodCidrError::Prefix(cidr));
        }
        Ok(IpPool { cidr, used: HashSet::new(), reserved: HashSet::new(), next: FIRST })
    }

    /// How many pod addresses the range holds.
    pub(crate) fn capacity(&self) -> usize {
        (self.end() - FIRST) as usize
    }

    /// One past the last pod address's offset (the broadcast address's).
    fn end(&self) -> u32 {
        (self.cidr.size() - 1) as u32
    }

    /// The offset of `ip` when it is a pod address of this range.
    fn offset(&self, ip: &str) -> Option<u32> {
        let ip: Ipv4Addr = ip.parse().ok()?;
        if !self.cidr.contains(ip) {
            return None;
        }
        let n = u32::from(ip) - u32::from(self.cidr.network());
        (FIRST..self.end()).contains(&n).then_some(n)
    }

    /// Keeps `ip` for the pod that had it in an earlier life of this node: only
    /// [`claim`](Self::claim) takes it. Addresses outside the range are ignored.
    pub(crate) fn reserve(&mut self, ip: &str) {
        if let Some(n) = self.offset(ip).filter(|n| !self.used.contains(n)) {
            self.reserved.insert(n);
        }
    }

    /// Marks an address taken (a pod keeping the address it had in an earlier life of
    /// this node, reserved or not); false if it is not a pod address of this range or
    /// already taken.
    pub(crate) fn claim(&mut self, ip: &str) -> bool {
        let Some(n) = self.offset(ip) else { return false };
        let fresh = self.used.insert(n);
        if fresh {
            self.reserved.remove(&n);
        }
        fresh
    }

    /// A free address, or None when the range is exhausted.
    pub(crate) fn allocate(&mut self) -> Option<String> {
        let (first, end) = (FIRST, self.end());
        for _ in first..end {
            let n = self.next;
            self.next = if n + 1 >= end { first } else { n + 1 };
            if !self.reserved.contains(&n) && self.used.insert(n) {
                return self.cidr.nth(u64::from(n)).map(|ip| ip.to_string());
            }
        }
        None
    }

    pub(crate) fn release(&mut self, ip: &str) {
        if let Some(n) = self.offset(ip) {
            self.used.remove(&n);
            self.reserved.remove(&n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(cidr: &str) -> IpPool {
        IpPool::new(cidr.parse().expect("cidr")).expect("usable")
    }

    #[test]
    fn addresses_are_claimed_allocated_and_released_once() {
        let mut pool = pool("10.42.3.0/24");
        let first = pool.allocate().expect("an address");
        assert_eq!(first, "10.42.3.2");
        assert!(!pool.claim(&first), "taken twice");
        assert!(pool.claim("10.42.3.3"));
        assert_eq!(pool.allocate().as_deref(), Some("10.42.3.4"));
        // Outside the range, or the network, node and broadcast addresses: never ours.
        for other in ["192.168.0.1", "10.42.4.5", "10.42.3.0", "10.42.3.1", "10.42.3.255", "nonsense"] {
            assert!(!pool.claim(other), "{other}");
        }
        pool.release(&first);
        assert!(pool.claim(&first));
    }

    #[test]
    fn a_range_is_used_up_then_wraps_to_released_addresses() {
        // A /29: offsets 2..=6 are pod addresses.
        let mut pool = pool("10.9.0.8/29");
        let got: Vec<String> = std::iter::from_fn(|| pool.allocate()).collect();
        assert_eq!(got, ["10.9.0.10", "10.9.0.11", "10.9.0.12", "10.9.0.13", "10.9.0.14"]);
        assert_eq!(pool.allocate(), None);
        pool.release("10.9.0.12");
        pool.release("10.9.0.10");
        // The cursor goes on from where it was: .10 comes round before .12.
        assert_eq!(pool.allocate().as_deref(), Some("10.9.0.10"));
        assert_eq!(pool.allocate().as_deref(), Some("10.9.0.12"));
        assert_eq!(pool.allocate(), None);
    }

    #[test]
    fn reserved_addresses_wait_for_their_pods() {
        // Two pods had .2 and .4 before the node restarted; a new pod's worker runs first.
        let mut pool = pool("10.42.0.0/24");
        for ip in ["10.42.0.2", "10.42.0.4", "10.42.9.9"] {
            pool.reserve(ip);
        }
        assert_eq!(pool.allocate().as_deref(), Some("10.42.0.3"));
        assert_eq!(pool.allocate().as_deref(), Some("10.42.0.5"));
        assert!(pool.claim("10.42.0.4") && pool.claim("10.42.0.2"));
        assert!(!pool.claim("10.42.0.2"), "claimed once");
        // Released, a once-reserved address is an ordinary one again.
        pool.release("10.42.0.2");
        pool.reserve("10.42.0.5");
        let mut rest: Vec<String> = std::iter::from_fn(|| pool.allocate()).collect();
        rest.sort_by_key(|ip| ip.parse::<Ipv4Addr>().expect("ip"));
        assert_eq!(rest.len(), 253 - 3);
        assert_eq!(rest[0], "10.42.0.2");
    }

    #[test]
    fn prefix_lengths_16_to_30_are_usable() {
        assert_eq!((pool("10.42.0.0/16").capacity(), pool("10.42.0.0/24").capacity(), pool("10.42.0.0/30").capacity()), (65_533, 253, 1));
        let mut p16 = pool("10.42.0.0/16");
        assert_eq!(p16.allocate().as_deref(), Some("10.42.0.2"));
        // In a /16, x.y.0.255 and x.y.1.0 are ordinary addresses.
        assert!(p16.claim("10.42.0.255") && p16.claim("10.42.1.0"));
        assert!(!p16.claim("10.42.255.255"));
        let mut p30 = pool("10.42.0.4/30");
        assert_eq!((p30.allocate().as_deref(), p30.allocate()), (Some("10.42.0.6"), None));
        for bad in ["10.0.0.0/15", "10.42.0.0/31", "10.42.0.1/32"] {
            let c: Ipv4Cidr = bad.parse().expect("cidr");
            assert_eq!(IpPool::new(c).err(), Some(PodCidrError::Prefix(c)), "{bad}");
        }
        assert_eq!(
            PodCidrError::Prefix("10.42.0.0/31".parse().expect("cidr")).to_string(),
            "the node's podCIDR 10.42.0.0/31 is unusable: its prefix length must be 16 to 30"
        );
    }

    #[test]
    fn the_pod_range_comes_from_the_node_spec() {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(pod_cidr(None, &[]), Ok(None));
        assert_eq!(pod_cidr(Some(""), &list(&[""])), Ok(None));
        assert_eq!(pod_cidr(Some("10.42.1.0/24"), &[]), Ok(Some("10.42.1.0/24".parse().expect("cidr"))));
        // podCIDRs wins; the IPv4 entry of a dual-stack node.
        assert_eq!(pod_cidr(Some("fd00::/64"), &list(&["fd00::/64", "10.42.2.0/24"])), Ok(Some("10.42.2.0/24".parse().expect("cidr"))));
        assert_eq!(pod_cidr(None, &list(&["fd00::/64"])), Err(PodCidrError::NoIpv4(list(&["fd00::/64"]))));
    }
}
