//! The op set: every IR op, declared in one table.
//!
//! Adding an op: add a variant here (with a doc line), give it a name, arity
//! and class below, infer its type in [`Op::infer`], evaluate it in
//! `interp/`, print/parse its attributes in `text/`, and emit it in each
//! backend. The `match`es are exhaustive so rustc lists every place.

use crate::{DType, Shape, Tensor, TensorType};

mod extra;
mod program;
mod quant;
mod sparse;

pub use program::{Arg, Program, Step, is_fusable};
pub use quant::QMatMulForm;

/// Elementwise unary functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `sqrt(x)`
    Sqrt,
    /// `1 / x`
    Reciprocal,
    /// `e^x`
    Exp,
    /// natural logarithm
    Log,
    /// error function
    Erf,
    /// hyperbolic tangent
    Tanh,
    /// `1 / (1 + e^-x)`
    Sigmoid,
    /// `max(x, 0)`
    Relu,
    /// `0.5 x (1 + erf(x / sqrt 2))`
    Gelu,
    /// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`
    GeluTanh,
    /// `|x|`
    Abs,
    /// `-1`, `0` or `1` by the sign of x (NaN stays NaN)
    Sign,
    /// largest integer `<= x`
    Floor,
    /// smallest integer `>= x`
    Ceil,
    /// nearest integer, halves to even
    Round,
    /// `ln(1 + e^x)`, computed stably as `max(x, 0) + ln(1 + e^-|x|)`
    Softplus,
    /// `x · sigmoid(x)` (SiLU, also called swish)
    Silu,
    /// logical not of a bool tensor
    Not,
}

impl UnaryOp {
    /// True for ops on bool tensors (the rest take floats).
    pub fn is_logical(self) -> bool {
        self == UnaryOp::Not
    }
}

/// Elementwise binary functions (numpy broadcasting).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b` (integer division truncates toward zero)
    Div,
    /// `a ^ b`
    Pow,
    /// `a == b`, producing bool
    Equal,
    /// `min(a, b)` (NaN propagates)
    Min,
    /// `max(a, b)` (NaN propagates)
    Max,
    /// Floored remainder `a - floor(a / b) * b`: the sign of the divisor
    /// (ONNX Mod with fmod=0; integer division by zero is an error)
    Mod,
    /// Truncated remainder `a - trunc(a / b) * b`: the sign of the dividend
    /// (C fmod; ONNX Mod with fmod=1)
    Rem,
    /// `a < b`, producing bool
    Less,
    /// `a > b`, producing bool
    Greater,
    /// `a <= b`, producing bool
    LessEqual,
    /// `a >= b`, producing bool
    GreaterEqual,
    /// logical and of bool tensors
    And,
    /// logical or of bool tensors
    Or,
}

impl BinaryOp {
    /// True for comparisons, which produce bool.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Equal | BinaryOp::Less | BinaryOp::Greater | BinaryOp::LessEqual | BinaryOp::GreaterEqual
        )
    }

    /// True for ops on bool operands.
    pub fn is_logical(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or)
    }
}

/// Reductions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceKind {
    /// Sum of elements.
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Maximum.
    Max,
}

/// Window geometry shared by convolution and pooling (spatial dims only).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    /// Kernel extent per spatial dim.
    pub kernel: Vec<usize>,
    /// Stride per spatial dim.
    pub strides: Vec<usize>,
    /// Padding at the start of each spatial dim.
    pub pads_begin: Vec<usize>,
    /// Padding at the end of each spatial dim.
    pub pads_end: Vec<usize>,
    /// Dilation per spatial dim.
    pub dilations: Vec<usize>,
}

impl Window {
    /// Output extent of each spatial dim for input extents `input`, or
    /// `None` if the window does not fit.
    pub fn output_dims(&self, input: &[usize]) -> Option<Vec<usize>> {
        let n = self.kernel.len();
        if [input.len(), self.strides.len(), self.pads_begin.len(), self.pads_end.len(), self.dilations.len()]
            .iter()
            .any(|&l| l != n)
        {
            return None;
        }
        (0..n)
            .map(|i| {
                let padded = input[i].checked_add(self.pads_begin[i])?.checked_add(self.pads_end[i])?;
                let span = self.dilations[i].checked_mul(self.kernel[i].checked_sub(1)?)?.checked_add(1)?;
                if self.strides[i] == 0 || padded < span {
                    return None;
                }
                Some((padded - span) / self.strides[i] + 1)
            })
            .collect()
    }
}

/// How [`Op::Pad`] fills the cells outside the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PadMode {
    /// A constant: the optional fill-value operand, else zero.
    Constant,
    /// Mirror without repeating the edge: `[c b | a b c | b a]`.
    Reflect,
    /// Repeat the edge element: `[a a | a b c | c c]`.
    Edge,
    /// Wrap around: `[b c | a b c | a b]`.
    Wrap,
}

impl PadMode {
    /// Every mode, in declaration order.
    pub const ALL: [PadMode; 4] = [PadMode::Constant, PadMode::Reflect, PadMode::Edge, PadMode::Wrap];

    /// The mode's name in the text format (as in ONNX).
    pub fn name(self) -> &'static str {
        match self {
            PadMode::Constant => "constant",
            PadMode::Reflect => "reflect",
            PadMode::Edge => "edge",
            PadMode::Wrap => "wrap",
        }
    }

    /// The mode called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// How [`Op::ScatterNd`] combines an update with the element it lands on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScatterReduction {
    /// Replace it.
    None,
    /// Add to it.
    Add,
    /// Multiply it.
    Mul,
    /// Keep the larger (NaN propagates).
    Max,
    /// Keep the smaller (NaN propagates).
    Min,
}

impl ScatterReduction {
    /// Every reduction, in declaration order.
    pub const ALL: [ScatterReduction; 5] = [
        ScatterReduction::None,
        ScatterReduction::Add,
        ScatterReduction::Mul,
        ScatterReduction::Max,
        ScatterReduction::Min,
    ];

    /// The reduction's name in the text format (as in ONNX).
    pub fn name(self) -> &'static str {
        match self {
            ScatterReduction::None => "none",
            ScatterReduction::Add => "add",
            ScatterReduction::Mul => "mul",
            ScatterReduction::Max => "max",
            ScatterReduction::Min => "min",
        }
    }

    /// The reduction called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// An IR operation. The result type of every node is stored on the node;
/// ops whose result shape is not implied by their operands (reshape,
/// broadcast) take it from there.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    // ---- leaves -------------------------------------------------------
    /// A graph input (named by its node).
    Input,
    /// A constant tensor (weights or a folded value).
    Const(Tensor),

    // ---- elementwise --------------------------------------------------
    /// Elementwise unary function of a float tensor.
    Unary(UnaryOp),
    /// Elementwise binary function with numpy broadcasting.
    Binary(BinaryOp),
    /// `clamp(x, min, max)` on a float tensor.
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// Elementwise conversion to another dtype.
    Cast {
        /// Target dtype.
        to: DType,
    },
    /// `cond ? a : b` with broadcasting (cond is bool).
    Where,
    /// Keeps the upper (or lower) triangle of the last two dims, zeroing the rest.
    Trilu {
        /// Keep the upper triangle (`j - i >= k`) rather than the lower (`j - i <= k`).
        upper: bool,
        /// Diagonal offset.
        k: i64,
    },

    // ---- contraction --------------------------------------------------
    /// Matrix product with numpy semantics (batch dims broadcast; rank-1
    /// operands are promoted and the added dim removed).
    MatMul,
    /// Matmul with quantised (i8/u8) weights `b` `[K, N]`, per-tensor or
    /// per-column scale and zero point; `a` is f32 (weight-only) or
    /// quantised (products of integers accumulated in i32), the result f32
    /// or requantised. The operand count selects the form
    /// ([`QMatMulForm`]): `(a, b, b_scale, b_zero_point)`,
    /// `(a, a_scale, a_zero_point, b, b_scale, b_zero_point)`, and that
    /// plus `(y_scale, y_zero_point)`.
    QMatMul,
    /// Weight-only matmul with block-quantised weights (onnxruntime's
    /// MatMulNBits, GGUF Q4_0/Q8_0): operands `a` f32 `[.., M, K]`, `b` u8
    /// `[N, ceil(K·bits/8)]` packed `bits`-bit values, `scales` f32
    /// `[N, ceil(K/block)]` and optional u8 `zero_points` (default
    /// `2^(bits-1)`); see `ops/quant.rs`.
    QMatMulBlock {
        /// Bits per weight: 2, 4 or 8.
        bits: usize,
        /// Weights per block along K (one scale and zero point each).
        block: usize,
    },
    /// `a @ W` with W `[K, N]` 2:4-sparse along K, stored compressed:
    /// operands `a` f32 `[.., M, K]`, `values` f32 `[N, K/2]`, `indices` u8
    /// `[N, K/2]` (row within each group of four); see `ops/sparse.rs`.
    SparseMatMul,
    /// N-d convolution, NC[spatial] layout; operands x, w [, bias].
    Conv {
        /// Window geometry.
        window: Window,
        /// Number of groups.
        group: usize,
    },

    /// Scaled dot-product attention, ONNX `Attention` (opset 23) in its 4-D
    /// form. Operands q `[B, H, Sq, D]`, k `[B, Hkv, Sk, D]`, v
    /// `[B, Hkv, Sk, Dv]` and an optional additive float mask that
    /// broadcasts to `[B, H, Sq, Sk]`; `Hkv` divides `H` and query head `h`
    /// reads kv head `h / (H / Hkv)` (GQA; MQA when `Hkv = 1`). Result
    /// `[B, H, Sq, Dv]`: for query row `i`, `s_j = scale · q_i·k_j + mask_ij`,
    /// `out_i = Σ_j softmax(s)_j v_j`. With `causal`, key `j` is dropped
    /// unless `j <= i`: the triangle is aligned at the top left, which is
    /// ONNX's `is_causal` without a past cache (ONNX offsets it by the past
    /// length when `past_key` is given; the importer turns that into a mask).
    /// A row with no key left (every score `-inf`) gives zeros, as in ONNX.
    Attention {
        /// Multiplies `q·k` (ONNX's default is `1 / sqrt(D)`).
        scale: f32,
        /// Drop keys after the query position (top-left aligned).
        causal: bool,
    },

    // ---- normalisation ------------------------------------------------
    /// Softmax along one axis.
    Softmax {
        /// The axis.
        axis: usize,
    },
    /// Layer normalisation over dims `axis..`; operands x, scale [, bias].
    LayerNorm {
        /// First normalised axis.
        axis: usize,
        /// Added to the variance.
        epsilon: f32,
    },
    /// RMS normalisation over dims `axis..`: `x / sqrt(mean(x²) + ε) · scale`;
    /// operands x [, scale] (scale broadcasts to the normalised dims; none
    /// means 1).
    RmsNorm {
        /// First normalised axis.
        axis: usize,
        /// Added to the mean square.
        epsilon: f32,
    },

    // ---- reduction ----------------------------------------------------
    /// Reduction over `axes` (sorted, unique).
    Reduce {
        /// Sum, mean or max.
        kind: ReduceKind,
        /// Reduced axes.
        axes: Vec<usize>,
        /// Keep reduced dims as extent 1.
        keep_dims: bool,
    },
    /// Max pooling, NC[spatial] layout.
    MaxPool {
        /// Window geometry.
        window: Window,
    },
    /// Average pooling, NC[spatial] layout.
    AvgPool {
        /// Window geometry.
        window: Window,
        /// Count padding cells in the divisor.
        count_include_pad: bool,
    },

    // ---- quantisation -------------------------------------------------
    /// `(x - zero_point) * scale` as f32. Operands: x (i8, u8 or i32), scale
    /// (f32) and an optional zero point (x's dtype). The parameters' shape
    /// gives the granularity (see [`quant_param_map`]): per tensor, per
    /// `axis`, or in blocks of `block` along `axis`.
    Dequantize {
        /// Quantisation axis (per-axis and blocked).
        axis: usize,
        /// Block size along `axis` (0 = not blocked).
        block: usize,
    },
    /// `saturate(round_half_even(x / scale) + zero_point)` to `to` (i8 or
    /// u8). Operands: x (f32), scale (f32), optional zero point (`to`).
    /// Granularity as for dequantize.
    Quantize {
        /// Quantisation axis (per-axis and blocked).
        axis: usize,
        /// Block size along `axis` (0 = not blocked).
        block: usize,
        /// Result dtype.
        to: DType,
    },

    // ---- movement -----------------------------------------------------
    /// Same elements, new shape (the node's type).
    Reshape,
    /// Permutes dims: output dim `i` is input dim `perm[i]`.
    Transpose {
        /// The permutation.
        perm: Vec<usize>,
    },
    /// Strided slice: output element `i` per dim reads input index
    /// `starts[d] + i * steps[d]`; the output shape is the node's type.
    Slice {
        /// First index per dim (in range).
        starts: Vec<usize>,
        /// Step per dim (non-zero; negative walks backwards).
        steps: Vec<i64>,
    },
    /// Broadcasts to the node's shape (ONNX Expand).
    Broadcast,
    /// Concatenation along one axis.
    Concat {
        /// The axis.
        axis: usize,
    },
    /// Gathers slices of `data` along `axis` at integer `indices`
    /// (negative indices count from the end).
    Gather {
        /// The axis.
        axis: usize,
    },

    // ---- scans, selection, indexing, padding, transposed convolution --
    /// Running sum along `axis` (integers wrap).
    CumSum {
        /// The axis.
        axis: usize,
        /// Leave each element out of its own sum.
        exclusive: bool,
        /// Sum from the end.
        reverse: bool,
    },
    /// i64 index of the largest (`max`) or smallest element along `axis`;
    /// ties give the first index, or the last with `select_last`. NaN ranks
    /// above every number.
    ArgReduce {
        /// Largest (arg_max) rather than smallest (arg_min).
        max: bool,
        /// The axis.
        axis: usize,
        /// Keep the axis as extent 1.
        keep_dims: bool,
        /// Ties give the last index.
        select_last: bool,
    },
    /// i64 indices of the `k` largest (or smallest) elements along `axis`,
    /// best first, equal values in index order; NaN ranks above every number.
    TopK {
        /// The axis.
        axis: usize,
        /// How many.
        k: usize,
        /// Largest rather than smallest.
        largest: bool,
    },
    /// `out[p] = data[p with p[axis] := indices[p]]` (ONNX GatherElements);
    /// negative indices count from the end.
    GatherElements {
        /// The axis.
        axis: usize,
    },
    /// ONNX GatherND: the slices of `data` addressed by the index tuples in
    /// the last dim of `indices`, within batches of the first `batch_dims` dims.
    GatherNd {
        /// Leading dims shared by data and indices.
        batch_dims: usize,
    },
    /// ONNX ScatterND: `data` with the slices addressed by the index tuples
    /// of `indices` replaced by (or combined with) `updates`, in order.
    ScatterNd {
        /// How updates combine with the elements they land on.
        reduction: ScatterReduction,
    },
    /// Pads every dim; operands x and, in constant mode, an optional
    /// one-element fill value (default zero).
    Pad {
        /// How cells outside the input are filled.
        mode: PadMode,
        /// Cells added before each dim.
        pads_begin: Vec<usize>,
        /// Cells added after each dim.
        pads_end: Vec<usize>,
    },
    // ---- fusion -------------------------------------------------------
    /// Elementwise ops fused into one kernel: `body` (see [`Program`]) over
    /// the operands, which broadcast (numpy) to the result; one loop nest,
    /// no intermediate buffers.
    Fused {
        /// The fused steps.
        body: Program,
    },
    /// `matmul(a, b)` (both of rank >= 2) whose every product element
    /// passes through `epilogue` before it is stored. Operands a, b, then
    /// the epilogue's extra operands; in the epilogue `x0` is the product
    /// and `x<i>` operand `i + 1`. The extras broadcast to the product's
    /// shape, which the result keeps.
    MatMulEpilogue {
        /// The epilogue.
        epilogue: Program,
    },

    /// Transposed N-d convolution, NC[spatial] layout; operands x, w
    /// `[C, M/group, k...]` [, bias `[M]`]. `window.pads_*` crop the full
    /// output; `output_padding` extends it at the end first.
    ConvTranspose {
        /// Kernel, strides, pads and dilations.
        window: Window,
        /// Number of groups.
        group: usize,
        /// Extra cells at the end of each spatial dim.
        output_padding: Vec<usize>,
    },
}

/// Coarse op classes that passes and backends match on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpClass {
    /// Inputs and constants.
    Leaf,
    /// One output element from the same-index input elements.
    Elementwise,
    /// Matrix products and convolutions.
    Contraction,
    /// Softmax and normalisations.
    Normalization,
    /// Reductions and pooling.
    Reduction,
    /// Data movement without arithmetic.
    Movement,
}

impl Op {
    /// The op's name in the text format.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Const(_) => "const",
            Op::Unary(u) => match u {
                UnaryOp::Neg => "neg",
                UnaryOp::Sqrt => "sqrt",
                UnaryOp::Reciprocal => "reciprocal",
                UnaryOp::Exp => "exp",
                UnaryOp::Log => "log",
                UnaryOp::Erf => "erf",
                UnaryOp::Tanh => "tanh",
                UnaryOp::Sigmoid => "sigmoid",
                UnaryOp::Relu => "relu",
                UnaryOp::Gelu => "gelu",
                UnaryOp::GeluTanh => "gelu_tanh",
                UnaryOp::Abs => "abs",
                UnaryOp::Sign => "sign",
                UnaryOp::Floor => "floor",
                UnaryOp::Ceil => "ceil",
                UnaryOp::Round => "round",
                UnaryOp::Softplus => "softplus",
                UnaryOp::Silu => "silu",
                UnaryOp::Not => "not",
            },
            Op::Binary(b) => match b {
                BinaryOp::Add => "add",
                BinaryOp::Sub => "sub",
                BinaryOp::Mul => "mul",
                BinaryOp::Div => "div",
                BinaryOp::Pow => "pow",
                BinaryOp::Equal => "equal",
                BinaryOp::Min => "min",
                BinaryOp::Max => "max",
                BinaryOp::Mod => "mod",
                BinaryOp::Rem => "rem",
                BinaryOp::Less => "less",
                BinaryOp::Greater => "greater",
                BinaryOp::LessEqual => "less_equal",
                BinaryOp::GreaterEqual => "greater_equal",
                BinaryOp::And => "and",
                BinaryOp::Or => "or",
            },
            Op::Clip { .. } => "clip",
            Op::Cast { .. } => "cast",
            Op::Where => "where",
            Op::Trilu { .. } => "trilu",
            Op::MatMul => "matmul",
            Op::QMatMul => "qmatmul",
            Op::QMatMulBlock { .. } => "qmatmul_block",
            Op::SparseMatMul => "sparse_matmul",
            Op::Conv { .. } => "conv",
            Op::Attention { .. } => "attention",
            Op::Softmax { .. } => "softmax",
            Op::LayerNorm { .. } => "layer_norm",
            Op::RmsNorm { .. } => "rms_norm",
            Op::Reduce { kind, .. } => match kind {
                ReduceKind::Sum => "reduce_sum",
                ReduceKind::Mean => "reduce_mean",
                ReduceKind::Max => "reduce_max",
            },
            Op::MaxPool { .. } => "max_pool",
            Op::AvgPool { .. } => "avg_pool",
            Op::Reshape => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Slice { .. } => "slice",
            Op::Broadcast => "broadcast",
            Op::Concat { .. } => "concat",
            Op::Gather { .. } => "gather",
            Op::Dequantize { .. } => "dequantize",
            Op::Quantize { .. } => "quantize",
            Op::CumSum { .. } => "cumsum",
            Op::ArgReduce { max: true, .. } => "arg_max",
            Op::ArgReduce { max: false, .. } => "arg_min",
            Op::TopK { .. } => "top_k",
            Op::GatherElements { .. } => "gather_elements",
            Op::GatherNd { .. } => "gather_nd",
            Op::ScatterNd { .. } => "scatter_nd",
            Op::Pad { .. } => "pad",
            Op::ConvTranspose { .. } => "conv_transpose",
            Op::Fused { .. } => "fused",
            Op::MatMulEpilogue { .. } => "matmul_epilogue",
        }
    }

    /// The class of the op.
    pub fn class(&self) -> OpClass {
        match self {
            Op::Input | Op::Const(_) => OpClass::Leaf,
            Op::Unary(_) | Op::Binary(_) | Op::Clip { .. } | Op::Cast { .. } | Op::Where | Op::Trilu { .. } => {
                OpClass::Elementwise
            }
            Op::MatMul
            | Op::QMatMul
            | Op::QMatMulBlock { .. }
            | Op::SparseMatMul
            | Op::Conv { .. }
            | Op::Attention { .. } => OpClass::Contraction,
            Op::Softmax { .. } | Op::LayerNorm { .. } | Op::RmsNorm { .. } => OpClass::Normalization,
            Op::Reduce { .. } | Op::MaxPool { .. } | Op::AvgPool { .. } => OpClass::Reduction,
            Op::Reshape
            | Op::Transpose { .. }
            | Op::Slice { .. }
            | Op::Broadcast
            | Op::Concat { .. }
            | Op::Gather { .. } => OpClass::Movement,
            Op::Dequantize { .. } | Op::Quantize { .. } => OpClass::Elementwise,
            Op::CumSum { .. } | Op::ArgReduce { .. } | Op::TopK { .. } => OpClass::Reduction,
            Op::GatherElements { .. } | Op::GatherNd { .. } | Op::ScatterNd { .. } | Op::Pad { .. } => {
                OpClass::Movement
            }
            Op::ConvTranspose { .. } => OpClass::Contraction,
            Op::Fused { .. } => OpClass::Elementwise,
            Op::MatMulEpilogue { .. } => OpClass::Contraction,
        }
    }

    /// Allowed operand counts `(min, max)`; `max == usize::MAX` is variadic.
    pub fn arity(&self) -> (usize, usize) {
        match self {
            Op::Input | Op::Const(_) => (0, 0),
            Op::Unary(_) | Op::Clip { .. } | Op::Cast { .. } | Op::Trilu { .. } => (1, 1),
            Op::Softmax { .. } | Op::Reduce { .. } | Op::MaxPool { .. } | Op::AvgPool { .. } => (1, 1),
            Op::Reshape | Op::Transpose { .. } | Op::Slice { .. } | Op::Broadcast => (1, 1),
            Op::Binary(_) | Op::MatMul | Op::Gather { .. } => (2, 2),
            Op::Where => (3, 3),
            Op::QMatMul => (4, 8),
            Op::QMatMulBlock { .. } => (3, 4),
            Op::SparseMatMul => (3, 3),
            Op::Conv { .. } | Op::LayerNorm { .. } => (2, 3),
            Op::RmsNorm { .. } => (1, 2),
            Op::Attention { .. } => (3, 4),
            Op::Dequantize { .. } | Op::Quantize { .. } => (2, 3),
            Op::CumSum { .. } | Op::ArgReduce { .. } | Op::TopK { .. } => (1, 1),
            Op::GatherElements { .. } | Op::GatherNd { .. } => (2, 2),
            Op::ScatterNd { .. } => (3, 3),
            Op::Pad { .. } => (1, 2),
            Op::ConvTranspose { .. } => (2, 3),
            Op::Concat { .. } | Op::Fused { .. } => (1, usize::MAX),
            Op::MatMulEpilogue { .. } => (2, usize::MAX),
        }
    }

    /// Infers the result type from operand types. `declared` is the node's
    /// stored type, used by ops whose shape is an attribute of the node
    /// (reshape, broadcast, slice, input, const) and checked for them.
    /// Errors are human-readable and name what was expected.
    pub fn infer(&self, args: &[&TensorType], declared: &TensorType) -> Result<TensorType, String> {
        let (lo, hi) = self.arity();
        if args.len() < lo || args.len() > hi {
            return Err(if lo == hi {
                format!("{} takes {lo} operand(s), got {}", self.name(), args.len())
            } else {
                format!("{} takes {lo} to {hi} operands, got {}", self.name(), args.len())
            });
        }
        let float = |t: &TensorType| -> Result<(), String> {
            if t.dtype.is_float() { Ok(()) } else { Err(format!("{} expects a float operand, got {t}", self.name())) }
        };
        let bool_operand = |t: &TensorType| -> Result<(), String> {
            if t.dtype == DType::Bool {
                Ok(())
            } else {
                Err(format!("{} expects a bool operand, got {t}", self.name()))
            }
        };
        let same_dtype = |a: &TensorType, b: &TensorType| -> Result<(), String> {
            if a.dtype == b.dtype {
                Ok(())
            } else {
                Err(format!("{} operands differ in dtype: {a} vs {b}", self.name()))
            }
        };
        let axis_ok = |axis: usize, rank: usize| -> Result<(), String> {
            if axis < rank { Ok(()) } else { Err(format!("axis {axis} out of range for rank {rank}")) }
        };
        match self {
            Op::Input => Ok(declared.clone()),
            Op::Const(t) => {
                if t.ty() == declared {
                    Ok(declared.clone())
                } else {
                    Err(format!("constant has type {} but node says {declared}", t.ty()))
                }
            }
            Op::Unary(u) if u.is_logical() => {
                bool_operand(args[0])?;
                Ok(args[0].clone())
            }
            Op::Unary(_) | Op::Clip { .. } => {
                float(args[0])?;
                Ok(args[0].clone())
            }
            Op::Cast { to } => Ok(TensorType::new(*to, args[0].shape.clone())),
            Op::Trilu { .. } => {
                if args[0].shape.rank() < 2 {
                    return Err(format!("trilu needs rank >= 2, got {}", args[0]));
                }
                Ok(args[0].clone())
            }
            Op::Binary(b) => {
                same_dtype(args[0], args[1])?;
                if *b == BinaryOp::Pow {
                    float(args[0])?;
                }
                if b.is_logical() {
                    bool_operand(args[0])?;
                } else if args[0].dtype == DType::Bool && !b.is_comparison() {
                    return Err(format!("{} is not defined for bool operands", self.name()));
                }
                let shape = Shape::broadcast(&args[0].shape, &args[1].shape)
                    .ok_or_else(|| format!("shapes {} and {} do not broadcast", args[0].shape, args[1].shape))?;
                let dtype = if b.is_comparison() { DType::Bool } else { args[0].dtype };
                Ok(TensorType::new(dtype, shape))
            }
            Op::Where => {
                if args[0].dtype != DType::Bool {
                    return Err(format!("where condition must be bool, got {}", args[0]));
                }
                same_dtype(args[1], args[2])?;
                let s = Shape::broadcast(&args[0].shape, &args[1].shape)
                    .and_then(|s| Shape::broadcast(&s, &args[2].shape))
                    .ok_or_else(|| "where operands do not broadcast".to_string())?;
                Ok(TensorType::new(args[1].dtype, s))
            }
            Op::MatMul => {
                same_dtype(args[0], args[1])?;
                matmul_shape(&args[0].shape, &args[1].shape).map(|s| TensorType::new(args[0].dtype, s))
            }
            Op::QMatMul => quant::qmatmul(args),
            Op::QMatMulBlock { bits, block } => quant::qmatmul_block(args, *bits, *block),
            Op::SparseMatMul => sparse::sparse_matmul(args),
            Op::Conv { window, group } => {
                let (x, w) = (args[0], args[1]);
                float(x)?;
                same_dtype(x, w)?;
                let r = x.shape.rank();
                if r < 3 || w.shape.rank() != r {
                    return Err(format!("conv expects x and w of equal rank >= 3, got {x} and {w}"));
                }
                let (c, m) = (x.shape.0[1], w.shape.0[0]);
                if *group == 0 || c % group != 0 || m % group != 0 || w.shape.0[1].checked_mul(*group) != Some(c) {
                    return Err(format!("conv group {group} does not fit input channels {c} and weight {w}"));
                }
                if window.kernel != w.shape.0[2..] {
                    return Err(format!("conv kernel {:?} does not match weight {w}", window.kernel));
                }
                if let Some(b) = args.get(2)
                    && b.shape.0 != [m]
                {
                    return Err(format!("conv bias must be [{m}], got {b}"));
                }
                let sp =
                    window.output_dims(&x.shape.0[2..]).ok_or_else(|| format!("conv window does not fit input {x}"))?;
                let mut out = vec![x.shape.0[0], m];
                out.extend(sp);
                Ok(TensorType::new(x.dtype, out))
            }
            Op::Attention { .. } => extra::attention(args),
            Op::Softmax { axis } => {
                float(args[0])?;
                axis_ok(*axis, args[0].shape.rank())?;
                Ok(args[0].clone())
            }
            Op::LayerNorm { axis, .. } | Op::RmsNorm { axis, .. } => {
                float(args[0])?;
                axis_ok(*axis, args[0].shape.rank())?;
                let norm = &args[0].shape.0[*axis..];
                for p in &args[1..] {
                    same_dtype(args[0], p)?;
                    if Shape::broadcast(&Shape(norm.to_vec()), &p.shape).as_ref().map(|s| s.dims()) != Some(norm) {
                        return Err(format!("{} parameter {p} does not broadcast to {:?}", self.name(), norm));
                    }
                }
                Ok(args[0].clone())
            }
            Op::Reduce { kind, axes, keep_dims } => {
                let x = args[0];
                if *kind == ReduceKind::Mean {
                    float(x)?;
                }
                if axes.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(format!("reduce axes {axes:?} must be sorted and unique"));
                }
                for &a in axes {
                    axis_ok(a, x.shape.rank())?;
                }
                let mut out = Vec::new();
                for (i, &d) in x.shape.0.iter().enumerate() {
                    if axes.contains(&i) {
                        if *keep_dims {
                            out.push(1);
                        }
                    } else {
                        out.push(d);
                    }
                }
                Ok(TensorType::new(x.dtype, out))
            }
            Op::MaxPool { window } | Op::AvgPool { window, .. } => {
                let x = args[0];
                float(x)?;
                if x.shape.rank() < 3 {
                    return Err(format!("{} expects rank >= 3, got {x}", self.name()));
                }
                let sp = window
                    .output_dims(&x.shape.0[2..])
                    .ok_or_else(|| format!("{} window does not fit input {x}", self.name()))?;
                let mut out = x.shape.0[..2].to_vec();
                out.extend(sp);
                Ok(TensorType::new(x.dtype, out))
            }
            Op::Reshape => {
                if args[0].dtype != declared.dtype || args[0].shape.checked_numel() != declared.shape.checked_numel() {
                    return Err(format!("cannot reshape {} to {declared}", args[0]));
                }
                Ok(declared.clone())
            }
            Op::Transpose { perm } => {
                let x = args[0];
                let mut seen = vec![false; x.shape.rank()];
                if perm.len() != x.shape.rank()
                    || perm.iter().any(|&p| p >= seen.len() || std::mem::replace(&mut seen[p], true))
                {
                    return Err(format!("transpose perm {perm:?} is not a permutation of rank {}", x.shape.rank()));
                }
                Ok(TensorType::new(x.dtype, perm.iter().map(|&p| x.shape.0[p]).collect::<Vec<_>>()))
            }
            Op::Slice { starts, steps } => {
                let x = args[0];
                let r = x.shape.rank();
                if starts.len() != r || steps.len() != r || declared.shape.rank() != r || declared.dtype != x.dtype {
                    return Err(format!("slice of {x} to {declared} needs one start and step per dim"));
                }
                for d in 0..r {
                    let (n, s, st, dim) =
                        (declared.shape.0[d] as i128, starts[d] as i128, steps[d] as i128, x.shape.0[d] as i128);
                    let last = s + (n - 1).max(0) * st;
                    if st == 0 || (n > 0 && (s >= dim || last < 0 || last >= dim)) {
                        return Err(format!("slice dim {d}: start {s} step {st} count {n} leaves [0,{dim})"));
                    }
                }
                Ok(declared.clone())
            }
            Op::Broadcast => {
                if args[0].dtype != declared.dtype
                    || Shape::broadcast(&args[0].shape, &declared.shape).as_ref() != Some(&declared.shape)
                {
                    return Err(format!("cannot broadcast {} to {declared}", args[0]));
                }
                Ok(declared.clone())
            }
            Op::Concat { axis } => {
                let first = args[0];
                axis_ok(*axis, first.shape.rank())?;
                let mut out = first.shape.0.clone();
                for a in &args[1..] {
                    same_dtype(first, a)?;
                    let ok = a.shape.rank() == first.shape.rank()
                        && (0..out.len()).all(|d| d == *axis || a.shape.0[d] == first.shape.0[d]);
                    if !ok {
                        return Err(format!("concat operand {a} does not match {first} off axis {axis}"));
                    }
                    out[*axis] = out[*axis]
                        .checked_add(a.shape.0[*axis])
                        .ok_or_else(|| format!("concat along axis {axis} overflows"))?;
                }
                Ok(TensorType::new(first.dtype, out))
            }
            Op::Dequantize { axis, block } | Op::Quantize { axis, block, .. } => {
                let (x, scale) = (args[0], args[1]);
                let (in_ok, out) = match self {
                    Op::Quantize { to, .. } => {
                        if !matches!(to, DType::I8 | DType::U8) {
                            return Err(format!("quantize produces i8 or u8, not {to}"));
                        }
                        (x.dtype == DType::F32, *to)
                    }
                    _ => (matches!(x.dtype, DType::I8 | DType::U8 | DType::I32), DType::F32),
                };
                if !in_ok {
                    return Err(format!("{} does not take {x}", self.name()));
                }
                if scale.dtype != DType::F32 {
                    return Err(format!("{} scale must be f32, got {scale}", self.name()));
                }
                for p in &args[1..] {
                    if quant_param_map(&x.shape, &p.shape, *axis, *block).is_none() {
                        return Err(format!(
                            "{} parameter {p} fits neither per-tensor, per-axis ({axis}) nor blocked ({block}) use on {x}",
                            self.name()
                        ));
                    }
                }
                if let Some(zp) = args.get(2) {
                    let want = if matches!(self, Op::Quantize { .. }) { out } else { x.dtype };
                    if zp.dtype != want || zp.shape.numel() != scale.shape.numel() {
                        return Err(format!(
                            "{} zero point {zp} must be {want} shaped like the scale {scale}",
                            self.name()
                        ));
                    }
                }
                Ok(TensorType::new(out, x.shape.clone()))
            }
            Op::CumSum { axis, .. } => extra::cumsum(args[0], *axis),
            Op::ArgReduce { axis, keep_dims, .. } => extra::arg_reduce(self.name(), args[0], *axis, *keep_dims),
            Op::TopK { axis, k, .. } => extra::top_k(args[0], *axis, *k),
            Op::GatherElements { axis } => extra::gather_elements(args[0], args[1], *axis),
            Op::GatherNd { batch_dims } => extra::gather_nd(args[0], args[1], *batch_dims),
            Op::ScatterNd { reduction } => extra::scatter_nd(args[0], args[1], args[2], *reduction),
            Op::Pad { mode, pads_begin, pads_end } => extra::pad(args, *mode, pads_begin, pads_end),
            Op::ConvTranspose { window, group, output_padding } => {
                extra::conv_transpose(args, window, *group, output_padding)
            }
            Op::Fused { body } => body.infer(args),
            Op::MatMulEpilogue { epilogue } => {
                let (a, b) = (args[0], args[1]);
                if a.shape.rank() < 2 || b.shape.rank() < 2 {
                    return Err(format!("matmul_epilogue needs operands of rank >= 2, got {a} and {b}"));
                }
                same_dtype(a, b)?;
                let product = TensorType::new(a.dtype, matmul_shape(&a.shape, &b.shape)?);
                let mut operands = vec![&product];
                operands.extend_from_slice(&args[2..]);
                let out = epilogue.infer(&operands).map_err(|e| format!("epilogue: {e}"))?;
                if out.shape != product.shape {
                    return Err(format!("the epilogue makes the product {} a {}", product.shape, out.shape));
                }
                Ok(out)
            }
            Op::Gather { axis } => {
                let (data, idx) = (args[0], args[1]);
                axis_ok(*axis, data.shape.rank())?;
                if !matches!(idx.dtype, DType::I32 | DType::I64) {
                    return Err(format!("gather indices must be i32 or i64, got {idx}"));
                }
                let mut out = data.shape.0[..*axis].to_vec();
                out.extend_from_slice(&idx.shape.0);
                out.extend_from_slice(&data.shape.0[axis + 1..]);
                Ok(TensorType::new(data.dtype, out))
            }
        }
    }
}

/// How a quantisation parameter (scale or zero point) of shape `p` maps
/// onto a tensor of shape `x`: for each dim `d` of x, the element index
/// `i_d` contributes `(i_d / divisor) * stride` to the parameter's index.
/// A scalar (or one-element) parameter is per tensor; a vector of length
/// `x[axis]` is per axis; a tensor shaped like x with dim `axis` equal to
/// `ceil(x[axis] / block)` is blocked. `None` if `p` fits none of these.
pub fn quant_param_map(x: &Shape, p: &Shape, axis: usize, block: usize) -> Option<Vec<(usize, usize)>> {
    let r = x.rank();
    if p.checked_numel()? == 1 {
        return Some(vec![(1, 0); r]);
    }
    if axis >= r {
        return None;
    }
    if block == 0 {
        if p.rank() == 1 && p.0[0] == x.0[axis] {
            return Some((0..r).map(|d| if d == axis { (1, 1) } else { (1, 0) }).collect());
        }
        return None;
    }
    let fits =
        p.rank() == r && (0..r).all(|d| if d == axis { p.0[d] == x.0[d].div_ceil(block) } else { p.0[d] == x.0[d] });
    if !fits {
        return None;
    }
    let ps = p.strides();
    Some((0..r).map(|d| (if d == axis { block } else { 1 }, ps[d])).collect())
}

/// Result shape of a numpy matmul, or an error naming the mismatch.
pub fn matmul_shape(a: &Shape, b: &Shape) -> Result<Shape, String> {
    if a.rank() == 0 || b.rank() == 0 {
        return Err("matmul operands must have rank >= 1".into());
    }
    let a2 = if a.rank() == 1 { Shape(vec![1, a.0[0]]) } else { a.clone() };
    let b2 = if b.rank() == 1 { Shape(vec![b.0[0], 1]) } else { b.clone() };
    let (m, k) = (a2.0[a2.rank() - 2], a2.0[a2.rank() - 1]);
    let (k2, n) = (b2.0[b2.rank() - 2], b2.0[b2.rank() - 1]);
    if k != k2 {
        return Err(format!("matmul inner dims differ: {a} x {b}"));
    }
    let batch = Shape::broadcast(&Shape(a2.0[..a2.rank() - 2].to_vec()), &Shape(b2.0[..b2.rank() - 2].to_vec()))
        .ok_or_else(|| format!("matmul batch dims do not broadcast: {a} x {b}"))?;
    let mut out = batch.0;
    if a.rank() > 1 {
        out.push(m);
    }
    if b.rank() > 1 {
        out.push(n);
    }
    Ok(Shape(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &[usize]) -> TensorType {
        TensorType::new(DType::F32, s.to_vec())
    }

    #[test]
    fn matmul_shapes() {
        assert_eq!(matmul_shape(&Shape(vec![2, 1, 3, 4]), &Shape(vec![5, 4, 6])), Ok(Shape(vec![2, 5, 3, 6])));
        assert_eq!(matmul_shape(&Shape(vec![4]), &Shape(vec![4, 6])), Ok(Shape(vec![6])));
        assert!(matmul_shape(&Shape(vec![3, 4]), &Shape(vec![5, 6])).is_err());
    }

    #[test]
    fn infer_reports_arity() {
        let e = Op::MatMul.infer(&[&t(&[2, 2])], &t(&[2, 2])).unwrap_err();
        assert_eq!(e, "matmul takes 2 operand(s), got 1");
    }

    #[test]
    fn conv_output_shape() {
        let op = Op::Conv {
            window: Window {
                kernel: vec![3, 3],
                strides: vec![2, 2],
                pads_begin: vec![1, 1],
                pads_end: vec![1, 1],
                dilations: vec![1, 1],
            },
            group: 1,
        };
        let out = op.infer(&[&t(&[1, 3, 16, 16]), &t(&[8, 3, 3, 3])], &t(&[])).unwrap();
        assert_eq!(out, t(&[1, 8, 8, 8]));
    }
}
