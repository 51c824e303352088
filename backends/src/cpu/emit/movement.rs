//! Data movement: every op here is a strided copy
//! `out[i] = in[base + sum(i_d * s_d)]` with per-op base and strides
//! (negative for reversed slices, zero for broadcast dims), except gather,
//! which reads an index per output row.

use super::strides;
use crate::cpu::kernel::{Kb, STATUS_INDEX_OUT_OF_RANGE};
use cranelift_codegen::ir::InstBuilder;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::I64;
use nanoc_ir::{DType, Node, TensorType};

/// A strided view of a buffer: element `i` (per dim) is at
/// `base + sum(i_d * strides[d])`.
type View<'a> = (i64, &'a [i64]);

/// Copies operand `src_arg` into the output, walking `dims`, reading
/// through view `src` and writing through view `dst`.
fn strided_copy(kb: &mut Kb, dt: DType, src_arg: usize, dims: &[usize], src: View, dst: View) {
    let (sp, dp) = (kb.arg(src_arg), kb.arg(0));
    kb.nest(dims, &mut |kb, ivs| {
        let si = kb.index(src.0, ivs, src.1);
        let di = kb.index(dst.0, ivs, dst.1);
        kb.copy_elem(dt, sp, si, dp, di);
    });
}

/// Same bytes, new shape: a flat copy.
pub(super) fn reshape(kb: &mut Kb, node: &Node) -> Result<(), String> {
    let n = node.ty.shape.numel();
    strided_copy(kb, node.ty.dtype, 1, &[n], (0, &[1]), (0, &[1]));
    Ok(())
}

pub(super) fn transpose(kb: &mut Kb, node: &Node, args: &[&TensorType], perm: &[usize]) -> Result<(), String> {
    let xs = strides(args[0]);
    let src_s: Vec<i64> = perm.iter().map(|&p| xs[p]).collect();
    strided_copy(kb, node.ty.dtype, 1, &node.ty.shape.0, (0, &src_s), (0, &strides(&node.ty)));
    Ok(())
}

pub(super) fn slice(
    kb: &mut Kb,
    node: &Node,
    args: &[&TensorType],
    starts: &[usize],
    steps: &[i64],
) -> Result<(), String> {
    let xs = strides(args[0]);
    let base: i64 = starts.iter().zip(&xs).map(|(&s, &st)| s as i64 * st).sum();
    let src_s: Vec<i64> = steps.iter().zip(&xs).map(|(&k, &st)| k * st).collect();
    strided_copy(kb, node.ty.dtype, 1, &node.ty.shape.0, (base, &src_s), (0, &strides(&node.ty)));
    Ok(())
}

pub(super) fn broadcast(kb: &mut Kb, node: &Node, args: &[&TensorType]) -> Result<(), String> {
    let src_s: Vec<i64> = args[0].shape.broadcast_strides(&node.ty.shape).iter().map(|&s| s as i64).collect();
    strided_copy(kb, node.ty.dtype, 1, &node.ty.shape.0, (0, &src_s), (0, &strides(&node.ty)));
    Ok(())
}

pub(super) fn concat(kb: &mut Kb, node: &Node, args: &[&TensorType], axis: usize) -> Result<(), String> {
    let os = strides(&node.ty);
    let mut at = 0i64;
    for (i, a) in args.iter().enumerate() {
        strided_copy(kb, node.ty.dtype, i + 1, &a.shape.0, (0, &strides(a)), (at * os[axis], &os));
        at += a.shape.0[axis] as i64;
    }
    Ok(())
}

/// `out[o.., j.., i..] = data[o.., idx[j..], i..]`; a negative index counts
/// from the end; an index out of range makes the kernel return status 1.
pub(super) fn gather(kb: &mut Kb, node: &Node, args: &[&TensorType], axis: usize) -> Result<(), String> {
    let (data, idx) = (args[0], args[1]);
    let ds = strides(data);
    let is = strides(idx);
    let os = strides(&node.ty);
    let dim = data.shape.0[axis] as i64;
    let (ir, dt, it) = (idx.shape.rank(), data.dtype, idx.dtype);
    let (pd, pi, po) = (kb.arg(1), kb.arg(2), kb.arg(0));
    kb.nest(&node.ty.shape.0, &mut |kb, ivs| {
        let (outer, rest) = ivs.split_at(axis);
        let (jv, inner) = rest.split_at(ir);
        let ii = kb.index(0, jv, &is);
        let raw = kb.load(it, pi, ii);
        let j = if it == DType::I64 { raw } else { kb.b.ins().sextend(I64, raw) };
        let neg = kb.b.ins().icmp_imm_s(IntCC::SignedLessThan, j, 0);
        let wrapped = kb.b.ins().iadd_imm_s(j, dim);
        let j = kb.b.ins().select(neg, wrapped, j);
        let bad = kb.b.ins().icmp_imm_s(IntCC::UnsignedGreaterThanOrEqual, j, dim);
        kb.return_if(bad, STATUS_INDEX_OUT_OF_RANGE);
        let mut d_ivs = outer.to_vec();
        d_ivs.push(j);
        d_ivs.extend(inner);
        let di = kb.index(0, &d_ivs, &ds);
        let oi = kb.index(0, ivs, &os);
        kb.copy_elem(dt, pd, di, po, oi);
    });
    Ok(())
}
