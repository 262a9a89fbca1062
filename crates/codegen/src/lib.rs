//! Quickbeam's backend: Microwasm → x86-64 in one pass, into [`Stencil`]s.
//!
//! - [`stencil`]: the stencil format and [`finalize`].
//!
//! Invariant: no module index, address or constant value is baked into stencil bytes;
//! each goes through a relocation or a constant site.
#![forbid(unsafe_code)]

pub mod stencil;

pub use stencil::*;
