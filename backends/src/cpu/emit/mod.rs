//! The op → emitter table of the CPU backend. Each emitter writes one
//! kernel (see `kernel.rs` for the ABI): `args[0]` is the output, then the
//! operands in order. An emitter first checks that it supports the
//! node's dtypes and returns a reason if not, before emitting anything.

mod attention;
mod elementwise;
mod indexing;
#[cfg(test)]
mod kernel_tests;
mod linalg;
mod movement;
mod norm;
mod quant;
#[cfg(test)]
mod quant_tests;
mod reduce;
mod select;
mod sparse;

use super::kernel::Kb;
use nanoc_ir::{Node, Op, TensorType};

/// Emits the kernel for `node` with operand types `args`, or explains why
/// this backend cannot.
pub fn emit(kb: &mut Kb, node: &Node, args: &[&TensorType]) -> Result<(), String> {
    match &node.op {
        Op::Input | Op::Const(_) => Err("leaves have no kernel".into()),
        Op::Unary(_) | Op::Binary(_) | Op::Clip { .. } | Op::Cast { .. } | Op::Where | Op::Trilu { .. } => {
            elementwise::emit(kb, node, args)
        }
        Op::MatMul => linalg::matmul(kb, node, args, None),
        Op::QMatMul => quant::qmatmul(kb, node, args),
        Op::QMatMulBlock { bits, block } => quant::qmatmul_block(kb, node, args, *bits, *block),
        Op::SparseMatMul => sparse::sparse_matmul(kb, node, args),
        Op::Conv { window, group } => linalg::conv(kb, node, args, window, *group),
        Op::Attention { scale, causal } => attention::attention(kb, node, args, *scale, *causal),
        Op::Softmax { axis } => norm::softmax(kb, node, *axis),
        Op::LayerNorm { axis, epsilon } => norm::layer_norm(kb, node, args, *axis, *epsilon),
        Op::RmsNorm { axis, epsilon } => norm::rms_norm(kb, node, args, *axis, *epsilon),
        Op::Reduce { kind, axes, .. } => reduce::reduce(kb, node, args, *kind, axes),
        Op::MaxPool { window } => reduce::pool(kb, node, args, window, None),
        Op::AvgPool { window, count_include_pad } => reduce::pool(kb, node, args, window, Some(*count_include_pad)),
        Op::Reshape => movement::reshape(kb, node),
        Op::Transpose { perm } => movement::transpose(kb, node, args, perm),
        Op::Slice { starts, steps } => movement::slice(kb, node, args, starts, steps),
        Op::Broadcast => movement::broadcast(kb, node, args),
        Op::Concat { axis } => movement::concat(kb, node, args, *axis),
        Op::Gather { axis } => movement::gather(kb, node, args, *axis),
        Op::Dequantize { axis, block } => quant::dequantize(kb, node, args, *axis, *block),
        Op::Quantize { axis, block, .. } => quant::quantize(kb, node, args, *axis, *block),
        Op::CumSum { axis, exclusive, reverse } => select::cumsum(kb, args, *axis, *exclusive, *reverse),
        Op::ArgReduce { max, axis, select_last, .. } => select::arg_reduce(kb, args, *max, *axis, *select_last),
        Op::TopK { axis, k, largest } => select::top_k(kb, node, args, *axis, *k, *largest),
        Op::GatherElements { axis } => indexing::gather_elements(kb, args, *axis),
        Op::GatherNd { batch_dims } => indexing::gather_nd(kb, args, *batch_dims),
        Op::ScatterNd { reduction } => indexing::scatter_nd(kb, args, *reduction),
        Op::Pad { mode, pads_begin, .. } => indexing::pad(kb, node, args, *mode, pads_begin),
        Op::ConvTranspose { window, group, .. } => linalg::conv_transpose(kb, node, args, window, *group),
        Op::Fused { body } => elementwise::fused(kb, node, args, body),
        Op::MatMulEpilogue { epilogue } => linalg::matmul(kb, node, args, Some(epilogue)),
    }
}

/// Element strides of `t` as i64.
pub(crate) fn strides(t: &TensorType) -> Vec<i64> {
    t.shape.strides().into_iter().map(|s| s as i64).collect()
}

/// Fails unless every type is f32.
pub(crate) fn require_f32(what: &str, tys: &[&TensorType]) -> Result<(), String> {
    match tys.iter().find(|t| t.dtype != nanoc_ir::DType::F32) {
        Some(t) => Err(format!("{what} on {t} is not supported (f32 only)")),
        None => Ok(()),
    }
}
