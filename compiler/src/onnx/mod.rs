//! The ONNX importer: decodes a `.onnx` model and lowers it to a nanoc
//! [`Graph`].
//!
//! - `model.rs`: decoding, the opset check, graph inputs (binding symbolic
//!   dims), initializers, value lookup and the node loop;
//! - `tensor.rs`: `TensorProto` → [`nanoc_ir::Tensor`] (raw, typed and external data);
//! - `ops/`: one registration table per op family (`math`, `nn`, `shape`),
//!   each entry mapping an ONNX op type to a function that decomposes it
//!   into IR ops.
//!
//! Shapes in nanoc are static, so every symbolic input dim must be bound
//! ([`ImportOptions`]). Nodes whose operands are all constants are evaluated
//! at import with the reference interpreter, which folds the shape
//! subgraphs exporters emit (`Shape → Gather → Unsqueeze → Concat → Reshape`).

use nanoc_ir::{Graph, IrError};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

mod model;
mod ops;
mod tensor;

pub use tensor::tensor_from_proto;

/// Generated protobuf types for `onnx.proto` (prost).
#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used, clippy::expect_used)]
pub mod proto {
    include!("proto/onnx.rs");
}

/// Lowest default-domain opset the importer accepts.
pub const MIN_OPSET: i64 = 13;
/// Highest default-domain opset the importer accepts (onnx 1.23).
pub const MAX_OPSET: i64 = 28;

/// How to bind symbolic dims of the model's inputs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Values of named symbolic dims (`--dim seq=16`).
    pub dims: BTreeMap<String, usize>,
    /// Concrete shapes of inputs, by input name (e.g. the arrays given to
    /// `nanoc run`); symbolic dims are bound by matching them, and static
    /// dims must agree.
    pub input_shapes: BTreeMap<String, Vec<usize>>,
}

/// Imports the ONNX model at `path`. External data files are looked up
/// relative to the model's directory.
pub fn import_onnx(path: &Path, opts: &ImportOptions) -> Result<Graph, OnnxError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| OnnxError::Io { file: file.clone(), source })?;
    let dir = path.parent().map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p });
    import_onnx_bytes(&bytes, &file, dir, opts)
}

/// Imports an ONNX model from memory. `file` names the model in errors;
/// `base_dir` is where external data files are looked up (`None`: the model
/// must not use external data).
pub fn import_onnx_bytes(
    bytes: &[u8],
    file: &str,
    base_dir: Option<&Path>,
    opts: &ImportOptions,
) -> Result<Graph, OnnxError> {
    model::import(bytes, file, base_dir, opts)
}

/// An op type used by a model: how many nodes, and whether nanoc imports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpUse {
    /// Op domain (`""` is the default ONNX domain).
    pub domain: String,
    /// Op type.
    pub op_type: String,
    /// Number of nodes.
    pub count: usize,
    /// Whether the importer has a mapping for it.
    pub supported: bool,
}

/// The op types a model uses and whether each is supported, without
/// importing it (`nanoc inspect --support`).
pub fn op_support(bytes: &[u8], file: &str) -> Result<Vec<OpUse>, OnnxError> {
    model::op_support(bytes, file)
}

/// Every ONNX op type (default domain) the importer supports, sorted.
pub fn supported_ops() -> Vec<&'static str> {
    ops::supported_ops()
}

/// An op type the importer has no mapping for, with the nodes that use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedOp {
    /// The ONNX op type (`Celu`).
    pub op_type: String,
    /// The op's domain (empty for the default `ai.onnx` domain).
    pub domain: String,
    /// Number of nodes using it.
    pub count: usize,
    /// Names of the first nodes using it (up to 3).
    pub nodes: Vec<String>,
}

impl fmt::Display for UnsupportedOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.domain.is_empty() {
            write!(f, "{}:", self.domain)?;
        }
        write!(
            f,
            "{} ({} node{}: {}",
            self.op_type,
            self.count,
            if self.count == 1 { "" } else { "s" },
            self.nodes.join(", ")
        )?;
        if self.count > self.nodes.len() {
            write!(f, ", ...")?;
        }
        write!(f, ")")
    }
}

/// A symbolic (or unknown) input dim that no option binds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnboundDim {
    /// The graph input.
    pub input: String,
    /// Index of the dim in the input's shape.
    pub index: usize,
    /// The dim's symbolic name, or `None` if the model gives neither a size nor a name.
    pub param: Option<String>,
}

impl fmt::Display for UnboundDim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.param {
            Some(p) => {
                write!(f, "input `{}` dim {} is symbolic `{p}`: bind it with --dim {p}=N", self.input, self.index)
            }
            None => write!(
                f,
                "input `{}` dim {} has neither a size nor a name: give the input's shape",
                self.input, self.index
            ),
        }
    }
}

/// Errors from importing an ONNX model. Every message starts with the model
/// file; node errors name the node and its op type.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The model file could not be read.
    #[error("{file}: cannot read the model: {source}")]
    Io {
        /// The model file.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a valid `ModelProto`.
    #[error("{file}: truncated or corrupt protobuf: {msg}")]
    Decode {
        /// The model file.
        file: String,
        /// The decoder's message.
        msg: String,
    },
    /// The default-domain opset is missing or outside [`MIN_OPSET`]..=[`MAX_OPSET`].
    #[error("{file}: {msg}")]
    Opset {
        /// The model file.
        file: String,
        /// What was found and what is needed.
        msg: String,
    },
    /// Symbolic input dims that are not bound; all of them are listed.
    #[error("{file}: {} unbound input dim{}: {}", dims.len(), if dims.len() == 1 { "" } else { "s" }, join(dims, "; "))]
    UnboundDims {
        /// The model file.
        file: String,
        /// Every unbound dim.
        dims: Vec<UnboundDim>,
    },
    /// Op types with no importer; every one is listed with its node count.
    #[error("{file}: {} unsupported op type{}: {}", ops.len(), if ops.len() == 1 { "" } else { "s" }, join(ops, ", "))]
    Unsupported {
        /// The model file.
        file: String,
        /// Every unsupported op type, sorted by domain and name.
        ops: Vec<UnsupportedOp>,
    },
    /// A supported op used with an attribute value, input or output nanoc
    /// does not support (3-D conv, a used MaxPool `Indices` output, ...).
    #[error("{file}: node `{node}` ({op_type}): not supported: {msg}")]
    UnsupportedFeature {
        /// The model file.
        file: String,
        /// Node name.
        node: String,
        /// ONNX op type.
        op_type: String,
        /// What is not supported.
        msg: String,
    },
    /// A tensor or value whose element type nanoc does not have.
    #[error("{file}: {what} has element type {dtype}, which nanoc does not support")]
    UnsupportedDType {
        /// The model file.
        file: String,
        /// What has the type (`input `x``, `tensor `w``, `node ...`).
        what: String,
        /// The ONNX element type name.
        dtype: String,
    },
    /// An invalid node: bad attribute, wrong operand types, a non-constant
    /// input where a constant is needed, ...
    #[error("{file}: node `{node}` ({op_type}): {msg}")]
    Node {
        /// The model file.
        file: String,
        /// Node name.
        node: String,
        /// ONNX op type.
        op_type: String,
        /// What was wrong and what was expected.
        msg: String,
    },
    /// Tensor data that cannot be decoded (wrong size, bad dims, ...).
    #[error("{file}: tensor `{tensor}`: {msg}")]
    Tensor {
        /// The model file.
        file: String,
        /// Tensor (initializer or attribute) name.
        tensor: String,
        /// What was wrong.
        msg: String,
    },
    /// An external data file is missing or too short.
    #[error("{file}: tensor `{tensor}`: external data file `{}`: {msg}", path.display())]
    ExternalData {
        /// The model file.
        file: String,
        /// Tensor name.
        tensor: String,
        /// The external data file.
        path: PathBuf,
        /// What was wrong.
        msg: String,
    },
    /// Any other structural problem (no graph, bad graph inputs or outputs).
    #[error("{file}: {msg}")]
    Model {
        /// The model file.
        file: String,
        /// What was wrong.
        msg: String,
    },
    /// The imported graph failed IR verification (an importer bug or an
    /// inconsistent model).
    #[error("{file}: imported graph failed verification: {source}")]
    Verify {
        /// The model file.
        file: String,
        /// The verifier's report.
        #[source]
        source: IrError,
    },
}

impl OnnxError {
    /// True when the model is valid but uses something nanoc does not
    /// support (unsupported op types, features or element types); the CLI
    /// exits with code 2 for these.
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            OnnxError::Unsupported { .. } | OnnxError::UnsupportedFeature { .. } | OnnxError::UnsupportedDType { .. }
        )
    }
}

fn join<T: fmt::Display>(items: &[T], sep: &str) -> String {
    items.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(sep)
}

#[cfg(test)]
mod tests;
