//! Normalisations: softmax, layer_norm and rms_norm.

use super::{Offsets, floats, from_floats};
use crate::{Shape, Tensor, TensorType};

/// `exp(x - max) / sum(exp(x - max))` along `axis`, in f64.
pub(super) fn softmax(x: &Tensor, axis: usize, ty: &TensorType) -> Result<Tensor, String> {
    let dims = x.shape().dims();
    let len = *dims.get(axis).ok_or_else(|| format!("axis {axis} out of range for {}", x.ty()))?;
    let outer: usize = dims[..axis].iter().product();
    let inner: usize = dims[axis + 1..].iter().product();
    let xs = floats(x)?;
    let mut out = vec![0f32; xs.len()];
    let mut e = vec![0f64; len];
    for o in 0..outer {
        for i in 0..inner {
            // Element j of this lane is at (o * len + j) * inner + i.
            let at = |j: usize| (o * len + j) * inner + i;
            let max = (0..len).map(|j| f64::from(xs[at(j)])).fold(f64::NEG_INFINITY, f64::max);
            let mut sum = 0f64;
            for (j, ej) in e.iter_mut().enumerate() {
                *ej = (f64::from(xs[at(j)]) - max).exp();
                sum += *ej;
            }
            for (j, ej) in e.iter().enumerate() {
                out[at(j)] = (ej / sum) as f32;
            }
        }
    }
    from_floats(ty, &out)
}

/// Layer normalisation over dims `axis..`: `(x - mean) / sqrt(var + eps) *
/// scale + bias` with the biased variance; scale and bias broadcast to the
/// normalised dims. Computed in f64 per row, rounded once.
pub(super) fn layer_norm(
    x: &Tensor,
    scale: &Tensor,
    bias: Option<&Tensor>,
    axis: usize,
    epsilon: f32,
    ty: &TensorType,
) -> Result<Tensor, String> {
    let dims = x.shape().dims();
    let norm = Shape(dims.get(axis..).ok_or_else(|| format!("axis {axis} out of range for {}", x.ty()))?.to_vec());
    let inner = norm.numel();
    // A parameter read at every position of the normalised dims.
    let expand = |p: &Tensor| -> Result<Vec<f64>, String> {
        let v = floats(p)?;
        Ok(Offsets::new(norm.dims(), &p.shape().broadcast_strides(&norm)).map(|o| f64::from(v[o])).collect())
    };
    let gamma = expand(scale)?;
    let beta = match bias {
        Some(b) => expand(b)?,
        None => vec![0.0; inner],
    };
    let xs = floats(x)?;
    let eps = f64::from(epsilon);
    let mut out = Vec::with_capacity(xs.len());
    if inner > 0 {
        for row in xs.chunks_exact(inner) {
            let n = inner as f64;
            let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            let var = row.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
            let inv_std = 1.0 / (var + eps).sqrt();
            for ((&v, g), b) in row.iter().zip(&gamma).zip(&beta) {
                out.push(((f64::from(v) - mean) * inv_std * g + b) as f32);
            }
        }
    }
    from_floats(ty, &out)
}

/// RMS normalisation over dims `axis..`: `x / sqrt(mean(x²) + eps) *
/// scale` (scale broadcasts to the normalised dims; none means 1).
/// Computed in f64 per row, rounded once.
pub(super) fn rms_norm(
    x: &Tensor,
    scale: Option<&Tensor>,
    axis: usize,
    epsilon: f32,
    ty: &TensorType,
) -> Result<Tensor, String> {
    let dims = x.shape().dims();
    let norm = Shape(dims.get(axis..).ok_or_else(|| format!("axis {axis} out of range for {}", x.ty()))?.to_vec());
    let inner = norm.numel();
    let gamma: Vec<f64> = match scale {
        Some(p) => {
            let v = floats(p)?;
            Offsets::new(norm.dims(), &p.shape().broadcast_strides(&norm)).map(|o| f64::from(v[o])).collect()
        }
        None => vec![1.0; inner],
    };
    let xs = floats(x)?;
    let eps = f64::from(epsilon);
    let mut out = Vec::with_capacity(xs.len());
    if inner > 0 {
        for row in xs.chunks_exact(inner) {
            let mean_square = row.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / inner as f64;
            let inv_rms = 1.0 / (mean_square + eps).sqrt();
            for (&v, g) in row.iter().zip(&gamma) {
                out.push((f64::from(v) * inv_rms * g) as f32);
            }
        }
    }
    from_floats(ty, &out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::eval_op;
    use crate::{DType, Op, Tensor, TensorType};

    fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v.to_vec()).unwrap()
    }

    fn ty(shape: &[usize]) -> TensorType {
        TensorType::new(DType::F32, shape.to_vec())
    }

    fn close(got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!((f64::from(*g) - w).abs() <= 1e-7 * (1.0 + w.abs()), "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn softmax_known_values() {
        // e^k / (e + e^2 + e^3) for k = 1, 2, 3; the second row is shifted by 1000 (stability).
        let x = f32s(&[2, 3], &[1.0, 2.0, 3.0, 1001.0, 1002.0, 1003.0]);
        let y = eval_op(&Op::Softmax { axis: 1 }, &[&x], &ty(&[2, 3])).unwrap().to_vec::<f32>().unwrap();
        let want = [0.09003057317038046, 0.24472847105479767, 0.6652409557748219];
        close(&y[..3], &want);
        close(&y[3..], &want);
        for row in y.chunks(3) {
            assert!((row.iter().map(|&v| f64::from(v)).sum::<f64>() - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn softmax_inner_axis() {
        // Along axis 0 of [[0, 0], [ln 3, 0]]: column 0 -> [1/4, 3/4], column 1 -> [1/2, 1/2].
        let x = f32s(&[2, 2], &[0.0, 0.0, 3f32.ln(), 0.0]);
        let y = eval_op(&Op::Softmax { axis: 0 }, &[&x], &ty(&[2, 2])).unwrap().to_vec::<f32>().unwrap();
        close(&y, &[0.25, 0.5, 0.75, 0.5]);
    }

    #[test]
    fn layer_norm_known_values() {
        // [1,2,3,4]: mean 2.5, biased variance 1.25, so (x - 2.5) / sqrt(1.25); then *2 + 1.
        let x = f32s(&[1, 4], &[1.0, 2.0, 3.0, 4.0]);
        let scale = f32s(&[1], &[2.0]);
        let bias = f32s(&[4], &[1.0; 4]);
        let op = Op::LayerNorm { axis: 1, epsilon: 0.0 };
        let y = eval_op(&op, &[&x, &scale, &bias], &ty(&[1, 4])).unwrap().to_vec::<f32>().unwrap();
        let z = [-1.3416407864998738, -0.4472135954999579, 0.4472135954999579, 1.3416407864998738];
        close(&y, &z.map(|v| 2.0 * v + 1.0));
        // Two rows with eps = 3: [0, 2] has mean 1, variance 1 -> [-1, 1] / 2; [1, 1] -> 0.
        let x = f32s(&[2, 2], &[0.0, 2.0, 1.0, 1.0]);
        let scale = f32s(&[2], &[1.0, 1.0]);
        let op = Op::LayerNorm { axis: 1, epsilon: 3.0 };
        let y = eval_op(&op, &[&x, &scale], &ty(&[2, 2])).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(y, vec![-0.5, 0.5, 0.0, 0.0]);
    }

    #[test]
    fn rms_norm_known_values() {
        // [3, 4]: mean square 12.5, so x / sqrt(12.5); scale [2, 10].
        let x = f32s(&[1, 2], &[3.0, 4.0]);
        let scale = f32s(&[2], &[2.0, 10.0]);
        let op = Op::RmsNorm { axis: 1, epsilon: 0.0 };
        let y = eval_op(&op, &[&x, &scale], &ty(&[1, 2])).unwrap().to_vec::<f32>().unwrap();
        let r = 12.5f64.sqrt();
        close(&y, &[6.0 / r, 40.0 / r]);
        // Over two dims without scale, eps 1: {1, 1, 1, 1} has mean square 1 -> 1 / sqrt(2).
        let x = f32s(&[1, 2, 2], &[1.0, -1.0, 1.0, -1.0]);
        let op = Op::RmsNorm { axis: 1, epsilon: 1.0 };
        let y = eval_op(&op, &[&x], &ty(&[1, 2, 2])).unwrap().to_vec::<f32>().unwrap();
        let h = std::f64::consts::FRAC_1_SQRT_2;
        close(&y, &[h, -h, h, -h]);
        // A zero row stays zero (eps keeps the divisor positive).
        let z = f32s(&[1, 3], &[0.0; 3]);
        let op = Op::RmsNorm { axis: 1, epsilon: 1e-6 };
        assert_eq!(eval_op(&op, &[&z], &ty(&[1, 3])).unwrap().to_vec::<f32>().unwrap(), vec![0.0; 3]);
    }

    #[test]
    fn layer_norm_over_two_dims() {
        // Normalise over [2,2] = {0, 2, 4, 6}: mean 3, variance 5; scale [[1],[10]] broadcasts over columns.
        let x = f32s(&[1, 2, 2], &[0.0, 2.0, 4.0, 6.0]);
        let scale = f32s(&[2, 1], &[1.0, 10.0]);
        let op = Op::LayerNorm { axis: 1, epsilon: 0.0 };
        let y = eval_op(&op, &[&x, &scale], &ty(&[1, 2, 2])).unwrap().to_vec::<f32>().unwrap();
        let s = 5f64.sqrt();
        close(&y, &[-3.0 / s, -1.0 / s, 10.0 / s, 30.0 / s]);
    }
}
