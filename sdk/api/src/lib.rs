//! Flotilla's shared API helpers: label and field selectors, and validation of objects as
//! the Kubernetes API server does it. Used by the control plane and (later) the node.

pub mod selector;
pub mod validation;
