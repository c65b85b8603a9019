//! Test fixtures of the pod network's tests: one shared runtime and the built test guests,
//! compiled once per process.

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::runtime::{Compiled, Runtime, RuntimeConfig};

pub(crate) fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("flotilla-network-test-{}", std::process::id()));
        Runtime::new(RuntimeConfig { cache_dir: dir, max_instances: 64 }).expect("runtime")
    })
}

/// The test guest `name` (target/guests/NAME.wasm), compiled.
pub(crate) fn compiled(name: &str) -> Arc<Compiled> {
    let path = format!("{}/../target/guests/{name}.wasm", env!("CARGO_MANIFEST_DIR"));
    let wasm = std::fs::read(&path).unwrap_or_else(|e| panic!("guest {path} missing ({e}); run scripts/build-guests.sh"));
    runtime().prepare(&format!("sha256:network-test-{name}"), &wasm).expect("prepare")
}

/// An API object from its JSON.
pub(crate) fn obj<T: serde::de::DeserializeOwned>(v: Value) -> Arc<T> {
    Arc::new(serde_json::from_value(v).expect("a valid object"))
}
