//! Fused programs: `fused` and `matmul_epilogue`, evaluated step by step
//! with each step's own reference (so a fused op means exactly the unfused
//! ops it replaced).

use super::{eval_op, linalg};
use crate::{Arg, Program, Tensor, TensorType, matmul_shape};

/// Evaluates `p` on `operands`: every step materialised by [`eval_op`].
pub(super) fn program(p: &Program, operands: &[&Tensor]) -> Result<Tensor, String> {
    let types: Vec<&TensorType> = operands.iter().map(|t| t.ty()).collect();
    let step_types = p.step_types(&types)?;
    let mut values: Vec<Tensor> = Vec::with_capacity(p.steps.len());
    for (i, (step, ty)) in p.steps.iter().zip(&step_types).enumerate() {
        let mut args = Vec::with_capacity(step.args.len());
        for a in &step.args {
            let v = match *a {
                Arg::Operand(k) => operands.get(k).copied(),
                Arg::Step(k) => values.get(k),
            };
            args.push(v.ok_or_else(|| format!("step t{i}: no value for {a}"))?);
        }
        let v = eval_op(&step.op, &args, ty).map_err(|e| format!("step t{i} ({}): {e}", step.op.name()))?;
        values.push(v);
    }
    values.pop().ok_or_else(|| "a fused program needs at least one step".into())
}

/// `matmul(a, b)`, then `epilogue` with the product as `x0` and the other
/// operands after it.
pub(super) fn matmul_epilogue(epilogue: &Program, args: &[&Tensor]) -> Result<Tensor, String> {
    let [a, b, extras @ ..] = args else {
        return Err(format!("matmul_epilogue takes at least 2 operands, got {}", args.len()));
    };
    let product_ty = TensorType::new(a.dtype(), matmul_shape(a.shape(), b.shape())?);
    let product = linalg::matmul(a, b, &product_ty)?;
    let mut operands = vec![&product];
    operands.extend_from_slice(extras);
    program(epilogue, &operands)
}
