//! The built-in Ingress controller (IngressClass `flotilla`, controller
//! `flotilla.dev/ingress`): which backend a request goes to (`rules.rs`, pure).
//!
//! Invariants: requests are routed against one immutable [`rules::Rules`] snapshot; the
//! Service port's ready backends are looked up in the pod network's current table at
//! request time, so Service and endpoint changes apply as they do for pods.

pub(crate) mod rules;
