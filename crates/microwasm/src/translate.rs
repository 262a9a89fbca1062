//! Streaming Wasm → Microwasm translation (to be written).
