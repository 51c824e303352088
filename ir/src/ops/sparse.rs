//! Type inference of the 2:4-sparse matmul (`sparse_matmul`), kept out of
//! [`Op::infer`](super::Op::infer)'s match so that it stays readable.
//!
//! `sparse_matmul(a, values, indices)` is `a @ W` for a weight matrix
//! `W` `[K, N]` with at most two non-zeros in every group of four
//! consecutive rows of each column (2:4 structured sparsity along K), stored
//! compressed by output column:
//!
//! - `a` is f32 `[.., M, K]` (rank >= 1), K a multiple of 4; the result is
//!   f32 `[.., M, N]`.
//! - `values` is f32 `[N, K/2]`: for column `n`, group `g` holds its two
//!   kept weights at `values[n, 2g]` and `values[n, 2g + 1]`.
//! - `indices` is u8 `[N, K/2]`: the row of each kept weight within its
//!   group; only the low two bits are read, so every index is in range.
//!
//! `y[.., m, n] = sum_j a[.., m, 4·(j/2) + (indices[n, j] & 3)] · values[n, j]`.

use crate::{DType, TensorType};

/// sparse_matmul: see the module docs.
pub(super) fn sparse_matmul(args: &[&TensorType]) -> Result<TensorType, String> {
    let (a, values, indices) = (args[0], args[1], args[2]);
    if a.dtype != DType::F32 {
        return Err(format!("sparse_matmul takes f32 activations, got {a}"));
    }
    let k = *a.shape.dims().last().ok_or_else(|| format!("sparse_matmul activations must have rank >= 1, got {a}"))?;
    if k % 4 != 0 {
        return Err(format!("sparse_matmul needs K a multiple of 4, got {a}"));
    }
    let [n, half] = *values.shape.dims() else {
        return Err(format!("sparse_matmul values must be f32 [N, {}], got {values}", k / 2));
    };
    if values.dtype != DType::F32 || half != k / 2 {
        return Err(format!("sparse_matmul values must be f32 [N, {}], got {values}", k / 2));
    }
    if indices.dtype != DType::U8 || indices.shape != values.shape {
        return Err(format!("sparse_matmul indices must be u8 [{n}, {half}], got {indices}"));
    }
    let mut shape = a.shape.0.clone();
    shape.pop();
    shape.push(n);
    Ok(TensorType::new(DType::F32, shape))
}
