//! Flotilla's node agent (its kubelet): registers a Node, heartbeats a Lease, runs the pods
//! bound to it as wasm components in wasmtime, reports their status, and serves logs,
//! exec and proxy to the API server.

mod agent;
pub mod images;
pub mod lifecycle;
pub mod logs;
mod pod;
pub mod pods;
pub mod runtime;
pub mod server;

pub use agent::{NodeConfig, NodeHandle, start};
