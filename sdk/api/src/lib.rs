//! Flotilla's shared API helpers: label and field selectors, resource quantities, and
//! validation of objects as the Kubernetes API server does it. Used by the control plane
//! and the node.

pub mod cidr;
pub mod pod;
pub mod prometheus;
pub mod quantity;
pub mod query;
pub mod selector;
pub mod validation;

/// The Node annotation in which a node publishes the SHA-256 (lowercase hex) of the
/// certificate its HTTPS server presents. Nodes serve a self-signed certificate; the API
/// server connects to a node for logs, exec and proxy only if the node presents exactly
/// this certificate, so its credential never reaches another server.
pub const SERVING_CERT_ANNOTATION: &str = "node.flotilla.dev/serving-cert-sha256";

/// The Node annotation in which a node publishes the port (decimal) of its pod network's
/// data-plane listener, on its InternalIP. Other nodes send requests for this node's pods
/// there, over mutual TLS with the certificate of [`SERVING_CERT_ANNOTATION`].
pub const DATA_PLANE_PORT_ANNOTATION: &str = "node.flotilla.dev/data-plane-port";

/// The IngressClass the control plane creates as the cluster's default, served by the
/// nodes' built-in Ingress controller.
pub const INGRESS_CLASS: &str = "flotilla";

/// `spec.controller` of the IngressClasses the built-in Ingress controller serves.
pub const INGRESS_CONTROLLER: &str = "flotilla.dev/ingress";

/// The IngressClass annotation ("true") that makes a class the default, for Ingresses
/// naming none.
pub const DEFAULT_INGRESS_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
