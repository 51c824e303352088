//! The 2:4-sparse matmul kernel (`sparse_matmul`, see `nanoc_ir`'s
//! `ops/sparse.rs`): per output element, K/2 multiply-adds, each reading the
//! activation its stored index selects within its group of four.

use crate::cpu::kernel::Kb;
use cranelift_codegen::ir::InstBuilder;
use cranelift_codegen::ir::types::{F32, I64};
use nanoc_ir::{DType, Node, TensorType};

/// `y[r, n] = sum_j a[r, 4·(j/2) + (idx[n, j] & 3)] · values[n, j]`.
pub(super) fn sparse_matmul(kb: &mut Kb, node: &Node, args: &[&TensorType]) -> Result<(), String> {
    let (a, values) = (args[0], args[1]);
    let k = *a.shape.dims().last().ok_or("sparse_matmul activations have rank 0")?;
    let [n, half] = *values.shape.dims() else { return Err(format!("sparse_matmul values {values} are not a matrix")) };
    let rows = if n == 0 { 0 } else { node.ty.shape.numel() / n };
    kb.nest(&[rows, n], &mut |kb, ivs| {
        let (r, j) = (ivs[0], ivs[1]);
        let a_row = kb.b.ins().imul_imm_s(r, k as i64);
        let w_row = kb.b.ins().imul_imm_s(j, half as i64);
        let init = kb.f32c(0.0);
        let acc = kb.var(F32, init);
        kb.for_n(half, &mut |kb, t| {
            let wi = kb.b.ins().iadd(w_row, t);
            let pi = kb.arg(3);
            let idx = kb.load(DType::U8, pi, wi);
            let idx = kb.b.ins().uextend(I64, idx);
            let idx = kb.b.ins().band_imm_s(idx, 3);
            // 4·(t/2) = 2·t with the low bit cleared.
            let group = kb.b.ins().band_imm_s(t, !1);
            let group = kb.b.ins().ishl_imm_u(group, 1);
            let col = kb.b.ins().iadd(group, idx);
            let ai = kb.b.ins().iadd(a_row, col);
            let pa = kb.arg(1);
            let x = kb.load(DType::F32, pa, ai);
            let pv = kb.arg(2);
            let v = kb.load(DType::F32, pv, wi);
            let prod = kb.b.ins().fmul(x, v);
            let cur = kb.b.use_var(acc);
            let sum = kb.b.ins().fadd(cur, prod);
            kb.b.def_var(acc, sum);
        });
        let oi = kb.b.ins().imul_imm_s(r, n as i64);
        let oi = kb.b.ins().iadd(oi, j);
        let po = kb.arg(0);
        let y = kb.b.use_var(acc);
        kb.store(DType::F32, po, oi, y);
    });
    Ok(())
}
