//! Type inference of the quantised matmuls (`qmatmul`, `qmatmul_block`),
//! kept out of [`Op::infer`](super::Op::infer)'s match so that it stays
//! readable.
//!
//! ## `qmatmul`
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
//!
//! ## `qmatmul_block{bits, block}(a, b, scales [, zero_points])`
//!
//! Weight-only matmul with block-quantised weights, the form of onnxruntime's
//! MatMulNBits and of GGUF's Q4_0/Q8_0:
//! `y[.., m, n] = sum_k a[.., m, k] * (q[n, k] - zp[n, k / block]) * scale[n, k / block]`.
//!
//! - `a` is f32 `[.., M, K]` (rank >= 1; the result is `[.., M, N]`).
//! - `b` is u8 `[N, ceil(K * bits / 8)]`: row `n` packs the `bits`-bit
//!   unsigned values `q[n, 0..K]`, `8 / bits` per byte, low bits first
//!   (bits 2, 4 or 8).
//! - `scales` is f32 `[N, ceil(K / block)]`; `zero_points`, if present, u8
//!   of the same shape (one value per byte); absent, every zero point is
//!   `2^(bits - 1)`.
//! - GGUF Q4_0 is `bits=4, block=32` with the default zero point 8 (f16
//!   scales widened); Q8_0 is `bits=8, block=32` with its i8 values offset by
//!   128 and zero point 128.

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

/// qmatmul_block: see the module docs.
pub(super) fn qmatmul_block(args: &[&TensorType], bits: usize, block: usize) -> Inferred {
    if !matches!(bits, 2 | 4 | 8) || block == 0 {
        return Err(format!("qmatmul_block needs bits 2, 4 or 8 and a positive block, got bits={bits} block={block}"));
    }
    let (a, b, scales) = (args[0], args[1], args[2]);
    if a.dtype != DType::F32 {
        return Err(format!("qmatmul_block takes f32 activations, got {a}"));
    }
    let k = *a.shape.dims().last().ok_or_else(|| format!("qmatmul_block activations must have rank >= 1, got {a}"))?;
    let [n, row_bytes] = *b.shape.dims() else {
        return Err(format!("qmatmul_block weights must be u8 [N, packed K], got {b}"));
    };
    let want_bytes = k.checked_mul(bits).ok_or("qmatmul_block K overflows")?.div_ceil(8);
    if b.dtype != DType::U8 || row_bytes != want_bytes {
        return Err(format!("qmatmul_block weights for K={k} at {bits} bits must be u8 [{n}, {want_bytes}], got {b}"));
    }
    let blocks = k.div_ceil(block);
    if scales.dtype != DType::F32 || scales.shape.dims() != [n, blocks] {
        return Err(format!("qmatmul_block scales must be f32 [{n}, {blocks}], got {scales}"));
    }
    if let Some(z) = args.get(3)
        && (z.dtype != DType::U8 || z.shape != scales.shape)
    {
        return Err(format!("qmatmul_block zero points must be u8 [{n}, {blocks}], got {z}"));
    }
    // [.., M, K] -> [.., M, N]; a rank-1 [K] gives [N] (numpy matmul).
    let mut shape = a.shape.0.clone();
    shape.pop();
    shape.push(n);
    Ok(TensorType::new(DType::F32, shape))
}
