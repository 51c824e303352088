//! `nanoc-ir`: the tensor IR of nanoc.
//!
//! - [`DType`], [`Shape`], [`TensorType`], [`Tensor`]: values and their types;
//! - [`Op`] (in `ops.rs`): the whole op set in one table;
//! - [`Graph`]: the dataflow graph (petgraph), with named inputs/outputs;
//! - [`verify`]: checks shapes, dtypes, arity and acyclicity, reporting every problem;
//! - [`text`]: the `.ngraph` text format (printer and parser that round-trip);
//! - [`weights`]: safetensors loading (memory-mapped, zero copy);
//! - [`interp`]: the reference interpreter, the ground truth for every backend.

mod dtype;
mod error;
mod graph;
pub mod interp;
mod ops;
mod shape;
mod tensor;
pub mod text;
pub mod verify;
pub mod weights;

pub use dtype::DType;
pub use error::{IrError, Result};
pub use graph::{Graph, Node, NodeId};
pub use ops::{Arg, Program, Step, is_fusable};
pub use ops::{BinaryOp, Op, OpClass, ReduceKind, UnaryOp, Window, matmul_shape, quant_param_map};
pub use ops::{PadMode, QMatMulForm, ScatterReduction};
pub use shape::{Shape, TensorType};
pub use tensor::{Bytes, Element, Tensor};
