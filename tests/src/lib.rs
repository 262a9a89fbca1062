//! Shared helpers for Quickbeam's integration tests.
