//! `nanoc-runtime`: the tiny runtime for models compiled by nanoc.
//!
//! nanoc compiles a neural network ahead of time into a `.nanob` bundle: one
//! file holding the model's signature, an execution plan, the machine code of
//! every kernel and the weights. This crate owns that format — the writer
//! ([`encode_bundle`], used by the compiler) and the validating reader
//! ([`decode_bundle`]) — and runs bundles ([`Model`]). It deliberately
//! depends on nothing but `libc`, `crc32fast` and `thiserror`: no
//! compiler, no code generator, no graph library.
//!
//! # Execution model
//!
//! A model owns one read-write *arena* (a single zeroed buffer whose size the
//! compiler chose) holding inputs, outputs and intermediates at fixed
//! offsets, plus the read-only *weights*, used in place from the bundle.
//! Running a model copies the inputs into the arena, then calls each plan
//! step's kernel in order with an array of pointers into the arena and the
//! weights (see [`KernelFn`] for the calling convention), then copies the
//! outputs out.
//!
//! ```no_run
//! # fn main() -> nanoc_runtime::Result<()> {
//! let mut model = nanoc_runtime::Model::from_file(std::path::Path::new("m.nanob"))?;
//! let x = vec![0u8; model.inputs()[0].byte_len().unwrap_or(0) as usize];
//! let outputs = model.run(&[&x])?;
//! # let _ = outputs;
//! # Ok(())
//! # }
//! ```
//!
//! The byte-level format is specified in `docs/bundle-format.md`.
//!
//! # C library
//!
//! The crate also builds as a static and a shared C library exporting the
//! functions of [`capi`], declared in `runtime/include/nanoc_runtime.h`
//! (guide: `docs/c-api.md`).
//!
//! # Features
//!
//! - `std` (default): the Rust standard library. Without it the crate is
//!   `no_std` (`alloc` + `libc`, unix only) and provides its own panic handler
//!   (abort) and a `malloc`-backed global allocator. That mode exists to build
//!   a small C library (`scripts/runtime_size.sh`, profile `release-min`) and
//!   needs a `panic = "abort"` profile; [`Model::from_file`] is then replaced
//!   by [`Model::from_file_cstr`].
#![cfg_attr(not(feature = "std"), no_std)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

extern crate alloc;

#[cfg(not(feature = "std"))]
mod bare;
pub mod bundle;
pub mod capi;
mod error;
mod exec;
mod model;
mod sys;

pub use bundle::{BufRef, BundleSpec, ElemType, KernelCode, Region, Step, TensorSpec, decode_bundle, encode_bundle};
pub use error::{Error, OsError, Result};
pub use exec::{HOST_ARCH, KernelFn, check_host_triple, triple_arch};
pub use model::{ARENA_ALIGN, MAX_KERNEL_ARGS, Model};

#[cfg(test)]
pub(crate) mod test_util;
