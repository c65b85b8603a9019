//! Flotilla node agent: runs pods of wasm components. Empty until the node issue lands.
