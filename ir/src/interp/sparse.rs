//! The 2:4-sparse matmul (see `ops/sparse.rs`).

use super::{floats, from_floats};
use crate::{Tensor, TensorType};

/// `y[.., m, n] = sum_j a[.., m, 4·(j/2) + (idx[n, j] & 3)] · values[n, j]`,
/// products accumulated in f64 in j order (the order of the dense matmul
/// it replaces, which adds the same non-zero products and zeros).
pub(super) fn sparse_matmul(args: &[&Tensor], ty: &TensorType) -> Result<Tensor, String> {
    let (a, values, indices) = (args[0], args[1], args[2]);
    let k = a.shape().dims().last().copied().unwrap_or(0);
    let [n, half] = *values.shape().dims() else { return Err(format!("values {} are not a matrix", values.ty())) };
    let x = floats(a)?;
    let v = floats(values)?;
    let idx = indices.bytes();
    let rows = if n == 0 { 0 } else { ty.shape.numel() / n };
    let mut out = Vec::with_capacity(rows * n);
    for r in 0..rows {
        let row = &x[r * k..(r + 1) * k];
        for j in 0..n {
            let s: f64 = (0..half)
                .map(|t| {
                    let col = 4 * (t / 2) + (idx[j * half + t] & 3) as usize;
                    row[col] as f64 * v[j * half + t] as f64
                })
                .sum();
            out.push(s as f32);
        }
    }
    from_floats(ty, &out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::eval_op;
    use crate::{DType, Op, Tensor, TensorType};

    #[test]
    fn compressed_weights_multiply_like_the_dense_matrix() {
        // W [8, 2]: column 0 keeps rows 1, 3 and 4, 6; column 1 keeps rows 0 and 7 (one per group).
        let values = Tensor::from_vec(vec![2, 4], vec![2.0f32, -1.0, 0.5, 4.0, 3.0, 0.0, 0.0, -2.0]).unwrap();
        let indices = Tensor::from_vec(vec![2, 4], vec![1u8, 3, 0, 2, 0, 1, 2, 7]).unwrap();
        let a = Tensor::from_vec(vec![1, 8], vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]).unwrap();
        let y = eval_op(&Op::SparseMatMul, &[&a, &values, &indices], &TensorType::new(DType::F32, vec![1, 2]));
        // Column 0: 2·2 − 1·4 + .5·5 + 4·7; column 1: 3·1 − 2·8 (index 7 reads its low bits: row 4 + 3).
        assert_eq!(y.unwrap().to_vec::<f32>().unwrap(), vec![4.0 - 4.0 + 2.5 + 28.0, 3.0 - 16.0]);
        let a7 = Tensor::from_vec(vec![1, 7], vec![0.0f32; 7]).unwrap();
        let e = eval_op(&Op::SparseMatMul, &[&a7, &values, &indices], &TensorType::new(DType::F32, vec![1, 2]));
        assert!(e.unwrap_err().contains("multiple of 4"));
    }
}
