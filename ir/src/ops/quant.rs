//! Type inference of the quantised matmul (`qmatmul`), kept out of
//! [`Op::infer`](super::Op::infer)'s match so that it stays readable.
//!
//! `qmatmul` has no attributes: its operands say which form it is.
//!
//! | operands | form | result |
//! | --- | --- | --- |
//! | `a, b, b_scale, b_zero_point` | [`QMatMulForm::WeightOnly`] | f32: `a @ dequantize(b)` |
//! | `a, a_scale, a_zero_point, b, b_scale, b_zero_point` | [`QMatMulForm::Integer`] | f32: `f32(acc) * (a_scale * b_scale[n])` |
//! | the six, then `y_scale, y_zero_point` | [`QMatMulForm::Requantized`] | `quantize` of that to `y_zero_point`'s dtype |
//!
//! - `a` is `[.., M, K]` (rank >= 1, numpy matmul rules); f32 in the
//!   weight-only form, i8 or u8 otherwise.
//! - `b` is the weight matrix `[K, N]`, i8 or u8; `b_scale` (f32) and
//!   `b_zero_point` (b's dtype) are per tensor (one element) or per output
//!   column (`[N]`).
//! - `a_scale`/`a_zero_point` and `y_scale`/`y_zero_point` are per tensor
//!   (one element each); they may be computed at run time (dynamic
//!   quantisation).
//! - `acc[.., m, n] = sum_k (a[.., m, k] - a_zero_point) * (b[k, n] -
//!   b_zero_point[n])`, exact in i32 (wrapping on overflow, which needs
//!   K > 33,000 full-range products).

use crate::{DType, TensorType, matmul_shape};

type Inferred = Result<TensorType, String>;

/// Which of its three forms a `qmatmul` node has (from its operand count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QMatMulForm {
    /// `(a, b, b_scale, b_zero_point)`: f32 activations, weights
    /// dequantised on the fly, f32 result.
    WeightOnly,
    /// `(a, a_scale, a_zero_point, b, b_scale, b_zero_point)`: quantised
    /// activations, i32 accumulation, f32 result.
    Integer,
    /// The integer form plus `(y_scale, y_zero_point)`: the result
    /// requantised to `y_zero_point`'s dtype.
    Requantized,
}

impl QMatMulForm {
    /// The form of a `qmatmul` with `operands` operands, if any.
    pub fn of(operands: usize) -> Option<QMatMulForm> {
        match operands {
            4 => Some(QMatMulForm::WeightOnly),
            6 => Some(QMatMulForm::Integer),
            8 => Some(QMatMulForm::Requantized),
            _ => None,
        }
    }

    /// Operand index of `b` (the weights): `b_scale` and `b_zero_point` follow.
    pub fn weights(self) -> usize {
        match self {
            QMatMulForm::WeightOnly => 1,
            _ => 3,
        }
    }
}

fn quantised(what: &str, t: &TensorType) -> Result<(), String> {
    if matches!(t.dtype, DType::I8 | DType::U8) {
        Ok(())
    } else {
        Err(format!("qmatmul {what} must be i8 or u8, got {t}"))
    }
}

/// A per-tensor scale and zero point: f32 and `dtype`, one element each.
fn per_tensor(what: &str, scale: &TensorType, zero_point: &TensorType, dtype: DType) -> Result<(), String> {
    if scale.dtype != DType::F32 || scale.shape.numel() != 1 {
        return Err(format!("qmatmul {what} scale must be one f32, got {scale}"));
    }
    if zero_point.dtype != dtype || zero_point.shape.numel() != 1 {
        return Err(format!("qmatmul {what} zero point must be one {dtype}, got {zero_point}"));
    }
    Ok(())
}

/// qmatmul: see the module docs.
pub(super) fn qmatmul(args: &[&TensorType]) -> Inferred {
    let form =
        QMatMulForm::of(args.len()).ok_or_else(|| format!("qmatmul takes 4, 6 or 8 operands, got {}", args.len()))?;
    let a = args[0];
    let wi = form.weights();
    let (b, b_scale, b_zero) = (args[wi], args[wi + 1], args[wi + 2]);
    if form == QMatMulForm::WeightOnly {
        if a.dtype != DType::F32 {
            return Err(format!("qmatmul with 4 operands takes f32 activations, got {a}"));
        }
    } else {
        quantised("activations", a)?;
        per_tensor("activation", args[1], args[2], a.dtype)?;
    }
    quantised("weights", b)?;
    let [_, n] = b.shape.dims() else { return Err(format!("qmatmul weights must be a matrix [K, N], got {b}")) };
    let params_ok = |p: &TensorType| p.shape.numel() == 1 || p.shape.dims() == [*n];
    if b_scale.dtype != DType::F32 || !params_ok(b_scale) {
        return Err(format!("qmatmul weight scale must be f32 with 1 or {n} elements, got {b_scale}"));
    }
    if b_zero.dtype != b.dtype || b_zero.shape != b_scale.shape {
        return Err(format!(
            "qmatmul weight zero point must be {} shaped like the scale {b_scale}, got {b_zero}",
            b.dtype
        ));
    }
    let shape = matmul_shape(&a.shape, &b.shape)?;
    let dtype = if form == QMatMulForm::Requantized {
        let (y_scale, y_zero) = (args[6], args[7]);
        quantised("output zero point", y_zero)?;
        per_tensor("output", y_scale, y_zero, y_zero.dtype)?;
        y_zero.dtype
    } else {
        DType::F32
    };
    Ok(TensorType::new(dtype, shape))
}
