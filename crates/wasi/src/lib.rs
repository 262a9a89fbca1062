//! WASI preview1 host functions for Quickbeam
