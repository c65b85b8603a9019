//! Flotilla's shared API helpers: label and field selectors, resource quantities, and
//! validation of objects as the Kubernetes API server does it. Used by the control plane
//! and the node.

pub mod pod;
pub mod quantity;
pub mod selector;
pub mod validation;
