//! Quickbeam: a WebAssembly runtime whose reloads cost almost nothing
