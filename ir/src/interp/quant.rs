//! Quantisation: dequantize and quantize with per-tensor, per-axis or
//! blocked parameters, and the quantised matmul.

use super::{floats, from_floats, from_ints, ints};
use crate::{DType, QMatMulForm, Tensor, TensorType, quant_param_map};

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
    let pi = param_indices(x, scale, axis, block)?;
    // ONNX: the division is done in f32, then rounded half to even.
    let out: Vec<i64> = xv.iter().zip(&pi).map(|(&v, &i)| quantize_one(v, sv[i], zv[i], ty.dtype)).collect();
    from_ints(ty, &out)
}

/// `saturate(round_half_even(v / scale) + zero_point)` to i8 or u8 (the
/// arithmetic of [`quantize`], for one element).
fn quantize_one(v: f32, scale: f32, zero_point: i64, to: DType) -> i64 {
    let (lo, hi) = if to == DType::U8 { (0.0, 255.0) } else { (-128.0, 127.0) };
    ((v / scale).round_ties_even() as f64 + zero_point as f64).clamp(lo, hi) as i64
}

/// The quantised matmul (see `ops/quant.rs` for the forms). The weight-only
/// form is exactly `matmul(a, dequantize(b))`: weights dequantised to f32,
/// products accumulated in f64. The integer forms accumulate
/// `(a - a_zp) * (b - b_zp)` in i32 (wrapping), then compute
/// `f32(acc) * (a_scale * b_scale[n])` in f32 and, requantised, quantize
/// that like `quantize`.
pub(super) fn qmatmul(args: &[&Tensor], ty: &TensorType) -> Result<Tensor, String> {
    let form =
        QMatMulForm::of(args.len()).ok_or_else(|| format!("qmatmul takes 4, 6 or 8 operands, got {}", args.len()))?;
    let wi = form.weights();
    let (a, b) = (args[0], args[wi]);
    let [k, n] = *b.shape().dims() else { return Err(format!("qmatmul weights must be a matrix, got {}", b.ty())) };
    let bq = ints(b)?;
    let b_scale = floats(args[wi + 1])?;
    let b_zero = ints(args[wi + 2])?;
    let col = |j: usize| if b_scale.len() == 1 { 0 } else { j };
    let rows = if n == 0 { 0 } else { ty.shape.numel() / n };
    if form == QMatMulForm::WeightOnly {
        let mut out = Vec::with_capacity(rows * n);
        let x = floats(a)?;
        let w: Vec<f64> = (0..k * n)
            .map(|i| ((bq[i] - b_zero[col(i % n)]) as f64 * b_scale[col(i % n)] as f64) as f32 as f64)
            .collect();
        for r in 0..rows {
            for j in 0..n {
                let s: f64 = (0..k).map(|p| x[r * k + p] as f64 * w[p * n + j]).sum();
                out.push(s as f32);
            }
        }
        return from_floats(ty, &out);
    }
    let x = ints(a)?;
    let a_scale = floats(args[1])?[0];
    let a_zero = ints(args[2])?[0];
    let mut y = Vec::with_capacity(rows * n);
    for r in 0..rows {
        for j in 0..n {
            let acc = (0..k)
                .map(|p| (x[r * k + p] - a_zero) * (bq[p * n + j] - b_zero[col(j)]))
                .fold(0i64, i64::wrapping_add) as i32;
            y.push(acc as f32 * (a_scale * b_scale[col(j)]));
        }
    }
    if form == QMatMulForm::Integer {
        return from_floats(ty, &y);
    }
    let y_scale = floats(args[6])?[0];
    let y_zero = ints(args[7])?[0];
    let q: Vec<i64> = y.iter().map(|&v| quantize_one(v, y_scale, y_zero, ty.dtype)).collect();
    from_ints(ty, &q)
}

/// Value `i` of a row of packed `bits`-bit values (low bits first).
fn unpack(row: &[u8], i: usize, bits: usize) -> i64 {
    let per_byte = 8 / bits;
    let mask = ((1u16 << bits) - 1) as u8;
    row.get(i / per_byte).map_or(0, |&b| ((b >> ((i % per_byte) * bits)) & mask) as i64)
}

/// The block-quantised matmul (see `ops/quant.rs`): each weight dequantised
/// to f32 like `dequantize` does (`(q - zp) * scale` in f64, rounded once),
/// products accumulated in f64: exactly `matmul(a, transpose(dequantize(q)))`.
pub(super) fn qmatmul_block(args: &[&Tensor], bits: usize, block: usize, ty: &TensorType) -> Result<Tensor, String> {
    let (a, b) = (args[0], args[1]);
    let k = a.shape().dims().last().copied().unwrap_or(0);
    let [n, row_bytes] = *b.shape().dims() else {
        return Err(format!("qmatmul_block weights {} are not a matrix", b.ty()));
    };
    let blocks = k.div_ceil(block);
    let x = floats(a)?;
    let scales = floats(args[2])?;
    let zeros = match args.get(3) {
        Some(z) => ints(z)?,
        None => vec![1i64 << (bits - 1); n * blocks],
    };
    let mut w = Vec::with_capacity(n * k);
    for (j, row) in b.bytes().chunks(row_bytes.max(1)).take(n).enumerate() {
        for p in 0..k {
            let c = j * blocks + p / block;
            w.push(((unpack(row, p, bits) - zeros[c]) as f64 * scales[c] as f64) as f32 as f64);
        }
    }
    let rows = if n == 0 { 0 } else { ty.shape.numel() / n };
    let mut out = Vec::with_capacity(rows * n);
    for r in 0..rows {
        for j in 0..n {
            out.push((0..k).map(|p| x[r * k + p] as f64 * w[j * k + p]).sum::<f64>() as f32);
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod qmatmul_tests {
    use super::super::eval_op;
    use crate::{DType, Op, Tensor, TensorType};

    fn run(args: &[&Tensor], ty: TensorType) -> Tensor {
        eval_op(&Op::QMatMul, args, &ty).unwrap()
    }

    #[test]
    fn weight_only_is_matmul_of_dequantized_weights() {
        let a = Tensor::from_vec(vec![2, 3], vec![1.0f32, -2.0, 0.5, 3.0, 0.25, -1.0]).unwrap();
        let b = Tensor::from_vec(vec![3, 2], vec![10u8, 0, 20, 255, 130, 128]).unwrap();
        let s = Tensor::from_vec(vec![2], vec![0.5f32, 0.125]).unwrap();
        let z = Tensor::from_vec(vec![2], vec![128u8, 127]).unwrap();
        let y = run(&[&a, &b, &s, &z], TensorType::new(DType::F32, vec![2, 2]));
        // Dequantized weights [[-59, -15.875], [-54, 16], [1, 0.125]].
        let w = [[-59.0f64, -15.875], [-54.0, 16.0], [1.0, 0.125]];
        let av = a.to_vec::<f32>().unwrap();
        let want: Vec<f32> =
            (0..4).map(|i| (0..3).map(|p| av[(i / 2) * 3 + p] as f64 * w[p][i % 2]).sum::<f64>() as f32).collect();
        assert_eq!(y.to_vec::<f32>().unwrap(), want);
    }

    #[test]
    fn integer_and_requantized_forms() {
        let a = Tensor::from_vec(vec![1, 2], vec![130u8, 120]).unwrap();
        let (sa, za) = (Tensor::scalar(0.5f32), Tensor::scalar(128u8));
        let b = Tensor::from_vec(vec![2, 2], vec![3i8, -4, 5, 6]).unwrap();
        let (sb, zb) = (Tensor::scalar(0.25f32), Tensor::scalar(1i8));
        // acc = [2*2 + -8*4, 2*-5 + -8*5] = [-28, -50]; times 0.125.
        let y = run(&[&a, &sa, &za, &b, &sb, &zb], TensorType::new(DType::F32, vec![1, 2]));
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![-3.5, -6.25]);
        let (sy, zy) = (Tensor::scalar(0.5f32), Tensor::scalar(-1i8));
        let q = run(&[&a, &sa, &za, &b, &sb, &zb, &sy, &zy], TensorType::new(DType::I8, vec![1, 2]));
        // -7 - 1 and round_half_even(-12.5) = -12, - 1.
        assert_eq!(q.to_vec::<i8>().unwrap(), vec![-8, -13]);
    }

    #[test]
    fn block_quantised_weights() {
        // K = 5 at 4 bits: rows of 3 bytes; blocks of 2 (3 per row); N = 2.
        let q = [[1u8, 15, 8, 0, 7], [9, 9, 2, 3, 14]];
        let pack = |r: &[u8; 5]| [r[0] | (r[1] << 4), r[2] | (r[3] << 4), r[4]];
        let b: Vec<u8> = q.iter().flat_map(pack).collect();
        let b = Tensor::from_vec(vec![2, 3], b).unwrap();
        let s = Tensor::from_vec(vec![2, 3], vec![0.5f32, 0.25, 2.0, 1.0, 0.125, 4.0]).unwrap();
        let z = Tensor::from_vec(vec![2, 3], vec![8u8, 7, 0, 9, 1, 15]).unwrap();
        let a = Tensor::from_vec(vec![1, 5], vec![1.0f32, -2.0, 0.5, 3.0, -1.0]).unwrap();
        let op = Op::QMatMulBlock { bits: 4, block: 2 };
        let y = eval_op(&op, &[&a, &b, &s, &z], &TensorType::new(DType::F32, vec![1, 2])).unwrap();
        // Row 0: (1-8)·.5, (15-8)·.5, (8-7)·.25, (0-7)·.25, (7-0)·2 = -3.5, 3.5, .25, -1.75, 14.
        // Row 1: 0, 0, (2-1)·.125, (3-1)·.125, (14-15)·4 = 0, 0, .125, .25, -4.
        let want = [-3.5 - 7.0 + 0.125 - 5.25 - 14.0, 0.0625 + 0.75 + 4.0];
        assert_eq!(y.to_vec::<f32>().unwrap(), want);
        // Without zero points every zero point is 8.
        let y = eval_op(&op, &[&a, &b, &s], &TensorType::new(DType::F32, vec![1, 2])).unwrap();
        let want = [-3.5 - 7.0 + 0.0 - 6.0 + 2.0, 1.0 - 2.0 - 0.375 - 1.875 - 24.0];
        assert_eq!(y.to_vec::<f32>().unwrap(), want);
        let e = eval_op(&op, &[&a, &b], &TensorType::new(DType::F32, vec![1, 2])).unwrap_err();
        assert!(e.contains("3 to 4"), "{e}");
        let narrow = Tensor::from_vec(vec![2, 2], vec![0u8; 4]).unwrap();
        let e = eval_op(&op, &[&a, &narrow, &s], &TensorType::new(DType::F32, vec![1, 2])).unwrap_err();
        assert!(e.contains("must be u8 [2, 3]"), "{e}");
    }

    #[test]
    fn bad_operands_are_errors() {
        let a = Tensor::from_vec(vec![1, 2], vec![1.0f32, 2.0]).unwrap();
        let b = Tensor::from_vec(vec![2, 3], vec![1i8; 6]).unwrap();
        let s = Tensor::from_vec(vec![2], vec![1.0f32; 2]).unwrap();
        let z = Tensor::from_vec(vec![2], vec![0i8; 2]).unwrap();
        let e = eval_op(&Op::QMatMul, &[&a, &b, &s, &z], &TensorType::new(DType::F32, vec![1, 3])).unwrap_err();
        assert!(e.contains("1 or 3 elements"), "{e}");
        let e = eval_op(&Op::QMatMul, &[&a, &b, &s], &TensorType::new(DType::F32, vec![1, 3])).unwrap_err();
        assert!(e.contains("4 to 8"), "{e}");
    }
}
