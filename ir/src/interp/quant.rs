//! Quantisation: dequantize and quantize with per-tensor, per-axis or
//! blocked parameters.

use super::{floats, from_floats, from_ints, ints};
use crate::{DType, Tensor, TensorType, quant_param_map};

/// Parameter index of every element of x (row-major), from [`quant_param_map`].
fn param_indices(x: &Tensor, p: &Tensor, axis: usize, block: usize) -> Result<Vec<usize>, String> {
    let map = quant_param_map(x.shape(), p.shape(), axis, block)
        .ok_or_else(|| format!("parameter {} does not fit {}", p.ty(), x.ty()))?;
    let dims = &x.shape().0;
    let mut idx = vec![0usize; dims.len()];
    let mut out = Vec::with_capacity(x.shape().numel());
    for _ in 0..x.shape().numel() {
        out.push(idx.iter().zip(&map).map(|(&i, &(div, stride))| (i / div) * stride).sum());
        for d in (0..dims.len()).rev() {
            idx[d] += 1;
            if idx[d] < dims[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok(out)
}

/// `(x - zero_point) * scale`.
pub(super) fn dequantize(args: &[&Tensor], axis: usize, block: usize, ty: &TensorType) -> Result<Tensor, String> {
    let (x, scale) = (args[0], args[1]);
    let xv = ints(x)?;
    let sv = floats(scale)?;
    let zv = match args.get(2) {
        Some(z) => ints(z)?,
        None => vec![0; sv.len()],
    };
    let pi = param_indices(x, scale, axis, block)?;
    let out: Vec<f32> = xv.iter().zip(&pi).map(|(&q, &i)| ((q - zv[i]) as f64 * sv[i] as f64) as f32).collect();
    from_floats(ty, &out)
}

/// `saturate(round_half_even(x / scale) + zero_point)`.
pub(super) fn quantize(args: &[&Tensor], axis: usize, block: usize, ty: &TensorType) -> Result<Tensor, String> {
    let (x, scale) = (args[0], args[1]);
    let xv = floats(x)?;
    let sv = floats(scale)?;
    let zv = match args.get(2) {
        Some(z) => ints(z)?,
        None => vec![0; sv.len()],
    };
    let (lo, hi) = if ty.dtype == DType::U8 { (0.0, 255.0) } else { (-128.0, 127.0) };
    let pi = param_indices(x, scale, axis, block)?;
    let out: Vec<i64> = xv
        .iter()
        .zip(&pi)
        .map(|(&v, &i)| {
            // ONNX: the division is done in f32, then rounded half to even.
            let q = (v / sv[i]).round_ties_even() as f64 + zv[i] as f64;
            q.clamp(lo, hi) as i64
        })
        .collect();
    from_ints(ty, &out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::eval_op;
    use crate::{DType, Op, Tensor, TensorType};

    #[test]
    fn per_tensor_round_trip() {
        let x = Tensor::from_vec(vec![5], vec![-1.0f32, 0.25, 0.3, 2.0, 200.0]).unwrap();
        let s = Tensor::scalar(0.5f32);
        let z = Tensor::scalar(3u8);
        let q = eval_op(
            &Op::Quantize { axis: 0, block: 0, to: DType::U8 },
            &[&x, &s, &z],
            &TensorType::new(DType::U8, vec![5]),
        )
        .unwrap();
        // -1/0.5 = -2 -> 1; 0.25/0.5 = 0.5 -> 0 (half to even) -> 3; 0.6 -> 1 -> 4; 4 -> 7; 400 + 3 saturates to 255.
        assert_eq!(q.to_vec::<u8>().unwrap(), vec![1, 3, 4, 7, 255]);
        let d = eval_op(&Op::Dequantize { axis: 0, block: 0 }, &[&q, &s, &z], &TensorType::new(DType::F32, vec![5]))
            .unwrap();
        assert_eq!(d.to_vec::<f32>().unwrap(), vec![-1.0, 0.0, 0.5, 2.0, 126.0]);
    }

    #[test]
    fn per_axis_and_blocked() {
        let x = Tensor::from_vec(vec![2, 4], vec![1i8, 2, 3, 4, -1, -2, -3, -4]).unwrap();
        let s = Tensor::from_vec(vec![2], vec![1.0f32, 10.0]).unwrap();
        let d = eval_op(&Op::Dequantize { axis: 0, block: 0 }, &[&x, &s], &TensorType::new(DType::F32, vec![2, 4]))
            .unwrap();
        assert_eq!(d.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0, 4.0, -10.0, -20.0, -30.0, -40.0]);
        // Blocks of 2 along axis 1: scale [2, 2].
        let s = Tensor::from_vec(vec![2, 2], vec![1.0f32, 2.0, 3.0, 4.0]).unwrap();
        let d = eval_op(&Op::Dequantize { axis: 1, block: 2 }, &[&x, &s], &TensorType::new(DType::F32, vec![2, 4]))
            .unwrap();
        assert_eq!(d.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 6.0, 8.0, -3.0, -6.0, -12.0, -16.0]);
        let bad = Tensor::from_vec(vec![3], vec![1.0f32, 2.0, 3.0]).unwrap();
        let e = eval_op(&Op::Dequantize { axis: 1, block: 0 }, &[&x, &bad], &TensorType::new(DType::F32, vec![2, 4]));
        assert!(e.unwrap_err().contains("fits neither"));
    }
}
