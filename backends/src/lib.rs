//! `nanoc-backends`: code generators.
//!
//! - [`cpu`]: lowers a verified IR graph to Cranelift IR, one kernel per
//!   node, and compiles it to machine code (for the JIT and for `.nanob`
//!   bundles), with a memory plan over one activation arena.

pub mod cpu;
mod error;

pub use error::{BackendError, Result};
