//! The cluster's address plan: the service CIDR Service ClusterIPs are allocated from, and
//! the cluster CIDR pod IPs come from (a /`node_cidr_mask_size` of it per Node, handed
//! out by `controllers/node_ipam.rs`). Both are virtual: nothing is added to the host's
//! routing table.
//!
//! Invariant: a [`NetworkConfig`] that passed [`NetworkConfig::validate`] has a service CIDR
//! the allocator accepts (mask 12..=30), a cluster CIDR that holds at least one node range
//! (mask <= the node CIDR mask size, itself 16..=30, what a node accepts) and two CIDRs
//! that do not overlap.

use flotilla_api::cidr::Ipv4Cidr;

use crate::apiserver::node_port::NodePortRange;
use crate::apiserver::service_ip::{ServiceRange, ServiceRangeError};

/// Prefix length of the range each Node gets from the cluster CIDR by default
/// (kube-controller-manager's `--node-cidr-mask-size` IPv4 default): 256 addresses, 253 of
/// them for pods.
pub const NODE_CIDR_MASK_SIZE: u8 = 24;
/// Node ranges a node accepts: /16 (65,533 pods) to /30 (one pod).
pub const NODE_CIDR_MASK_RANGE: std::ops::RangeInclusive<u8> = 16..=30;

/// The `--service-cidr` and `--cluster-cidr` settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Service ClusterIPs are allocated from here (default 10.43.0.0/16); its first
    /// address is the `kubernetes` Service's.
    pub service_cidr: Ipv4Cidr,
    /// Pod IPs (default 10.42.0.0/16): each Node gets a /24 of it in `spec.podCIDR`, and
    /// its node agent hands out its pods' addresses from there.
    pub cluster_cidr: Ipv4Cidr,
    /// Service node ports are allocated from here (`--service-node-port-range`, default
    /// 30000-32767).
    pub node_port_range: NodePortRange,
    /// Prefix length of each Node's pod range (`--node-cidr-mask-size`, default 24): a
    /// node holds at most 2^(32-mask) - 3 pods.
    pub node_cidr_mask_size: u8,
}

/// Why the address plan is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkConfigError {
    #[error(transparent)]
    ServiceRange(#[from] ServiceRangeError),
    #[error("--service-cidr {service} overlaps --cluster-cidr {cluster}")]
    Overlap { service: Ipv4Cidr, cluster: Ipv4Cidr },
    /// kube-controller-manager's refusal, naming the flag it has and Flotilla fixes.
    #[error("invalid --cluster-cidr {0}: mask size of cluster CIDR must be less than or equal to the node CIDR mask size ({1})")]
    ClusterTooSmall(Ipv4Cidr, u8),
    #[error("invalid --node-cidr-mask-size {0}: must be 16 to 30")]
    NodeMask(u8),
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            service_cidr: Ipv4Cidr::new([10, 43, 0, 0].into(), 16),
            cluster_cidr: Ipv4Cidr::new([10, 42, 0, 0].into(), 16),
            node_port_range: NodePortRange::default(),
            node_cidr_mask_size: NODE_CIDR_MASK_SIZE,
        }
    }
}

impl NetworkConfig {
    /// Checks the plan; returns the service range to allocate from.
    pub fn validate(&self) -> Result<ServiceRange, NetworkConfigError> {
        let range = ServiceRange::new(self.service_cidr)?;
        if !NODE_CIDR_MASK_RANGE.contains(&self.node_cidr_mask_size) {
            return Err(NetworkConfigError::NodeMask(self.node_cidr_mask_size));
        }
        if self.cluster_cidr.prefix() > self.node_cidr_mask_size {
            return Err(NetworkConfigError::ClusterTooSmall(self.cluster_cidr, self.node_cidr_mask_size));
        }
        if self.service_cidr.overlaps(&self.cluster_cidr) {
            return Err(NetworkConfigError::Overlap { service: self.service_cidr, cluster: self.cluster_cidr });
        }
        Ok(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_overlaps_are_not() {
        let d = NetworkConfig::default();
        assert_eq!(d.validate().expect("default").cidr().to_string(), "10.43.0.0/16");
        assert_eq!(d.cluster_cidr.to_string(), "10.42.0.0/16");
        let overlap = NetworkConfig { service_cidr: "10.42.128.0/24".parse().expect("cidr"), ..d };
        assert_eq!(overlap.validate().expect_err("overlap").to_string(), "--service-cidr 10.42.128.0/24 overlaps --cluster-cidr 10.42.0.0/16");
        let big = NetworkConfig { service_cidr: "10.0.0.0/8".parse().expect("cidr"), cluster_cidr: "192.168.0.0/16".parse().expect("cidr"), ..d };
        assert!(matches!(big.validate(), Err(NetworkConfigError::ServiceRange(_))));
        let small = NetworkConfig { cluster_cidr: "10.42.0.0/25".parse().expect("cidr"), ..d };
        assert_eq!(
            small.validate().expect_err("too small").to_string(),
            "invalid --cluster-cidr 10.42.0.0/25: mask size of cluster CIDR must be less than or equal to the node CIDR mask size (24)"
        );
        let one_node = NetworkConfig { cluster_cidr: "10.42.0.0/24".parse().expect("cidr"), ..d };
        assert!(one_node.validate().is_ok());
        // Bigger node ranges for dense nodes; the node accepts /16 to /30.
        let dense = NetworkConfig { node_cidr_mask_size: 18, ..d };
        assert!(dense.validate().is_ok());
        let too_dense = NetworkConfig { node_cidr_mask_size: 18, cluster_cidr: "10.42.0.0/20".parse().expect("cidr"), ..d };
        assert!(matches!(too_dense.validate(), Err(NetworkConfigError::ClusterTooSmall(_, 18))));
        let bad = NetworkConfig { node_cidr_mask_size: 12, ..d };
        assert_eq!(bad.validate().expect_err("mask").to_string(), "invalid --node-cidr-mask-size 12: must be 16 to 30");
    }
}
