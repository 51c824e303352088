//! `nanoc`: the compiler library behind the `nanoc` binary.
//!
//! - [`onnx`]: the ONNX frontend (prost over the official `onnx.proto`);
//! - [`driver`]: load a model, run the pass pipeline, compile, package bundles, run;
//! - [`npy`]: `.npy` inputs and outputs.

pub mod driver;
pub mod npy;
pub mod onnx;
