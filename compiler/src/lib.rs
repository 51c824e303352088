//! `nanoc`: the compiler library behind the `nanoc` binary.
//!
//! - [`onnx`]: the ONNX frontend (prost over the official `onnx.proto`);
//! - [`driver`]: load a model, run the pass pipeline, compile, package bundles, run;
//! - [`egraph`]: the e-graph optimiser (egg): rules, staged runner, target-costed extraction;
//! - [`passes`]: graph passes outside the optimiser (half precision computed in f32);
//! - [`npy`]: `.npy` inputs and outputs.

pub mod driver;
pub mod egraph;
pub mod npy;
pub mod onnx;
pub mod passes;
