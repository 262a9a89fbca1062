//! Shared helpers for Quickbeam's integration tests.
//!
//! - [`expected`]: strict expected-failure lists (`script.wast:line  reason`): an
//!   unlisted failure fails the run, and so does a listed entry that passes (the list
//!   only shrinks). `QUICKBEAM_SPEC_BLESS=1` rewrites a list from the current failures.
//! - [`spec`]: runs spec scripts through the CLI's `.wast` runner, in parallel, each on
//!   a thread with a large stack.
//! - [`programs`]: runs a WASI command with captured stdout/stderr.
//! - [`differential`]: wasm-smith modules run in Quickbeam and in wasmi, compared.
//! - [`malformed`]: random bytes and mutated modules, for `Module::new` to reject.

pub mod differential;
pub mod expected;
pub mod malformed;
pub mod programs;
pub mod spec;

use std::path::PathBuf;

/// The root of the workspace.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}

/// Compiles the Rust examples of `README.md` (as `no_run` doctests), so the README
/// follows the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeExamples;
