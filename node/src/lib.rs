//! Flotilla's node agent (its kubelet): registers a Node, heartbeats a Lease, runs the pods
//! bound to it as wasm components in wasmtime, reports their status, and serves logs,
//! exec and proxy to the API server.
//!
//! Map: `agent.rs` (Node, Lease, the pod watch), `identity.rs` (the node's own client
//! certificate: TLS bootstrap and renewal), `lifecycle/` (the pure pod lifecycle:
//! `step(state, event) -> effects`), `pod_worker.rs` (one pod's executor of those
//! effects), `pod_table.rs` (the node's table of running pods), `volumes.rs`,
//! `security_context.rs` (a container's securityContext as WASI grants), `network.rs` (pod addresses) and `network/` (where pods' outgoing requests and TCP
//! connections go, cluster DNS, each pod's TCP ports, whether NetworkPolicy lets them, and
//! the data plane that carries them to other nodes),
//! `images.rs` (pulls), `runtime/` (wasmtime), `logs.rs`, `server.rs` (the node's HTTPS
//! server), `attach.rs` (kubectl attach), `portforward/` (kubectl port-forward's SPDY
//! sessions).

mod agent;
mod attach;
mod exec_spdy;
mod identity;
pub mod images;
pub mod lifecycle;
pub mod logs;
mod network;
pub mod pod_table;
mod portforward;
mod pod_worker;
pub mod runtime;
mod security_context;
pub mod server;
pub mod usage;
mod volumes;

pub use agent::{INSTANCE_BUDGET, NodeConfig, NodeHandle, start};
pub use network::ingress::IngressListen;
