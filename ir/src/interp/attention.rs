//! Scaled dot-product attention, computed the plain way: every score of a
//! query row, then a softmax, then the weighted sum of the values, in f64.

use super::{Offsets, floats, from_floats};
use crate::{Shape, Tensor, TensorType};

/// See [`Op::Attention`](crate::Op::Attention): operands q, k, v and an
/// optional additive mask; `causal` drops keys `j > i` (top-left aligned);
/// a row whose every score is `-inf` gives zeros.
pub(super) fn attention(args: &[&Tensor], scale: f32, causal: bool, ty: &TensorType) -> Result<Tensor, String> {
    let (q, k, v, mask) = match args {
        [q, k, v] => (*q, *k, *v, None),
        [q, k, v, m] => (*q, *k, *v, Some(*m)),
        _ => return Err(format!("expected 3 or 4 operands, got {}", args.len())),
    };
    let rank4 = |t: &Tensor| -> Result<[usize; 4], String> {
        <[usize; 4]>::try_from(t.shape().dims()).map_err(|_| format!("expected rank 4, got {}", t.ty()))
    };
    let [b, h, sq, d] = rank4(q)?;
    let [_, hkv, sk, _] = rank4(k)?;
    let [_, _, _, dv] = rank4(v)?;
    let group = h / hkv.max(1);
    let (qs, ks, vs) = (floats(q)?, floats(k)?, floats(v)?);
    let scores_shape = Shape(vec![b, h, sq, sk]);
    // The mask read at every score position (empty without a mask).
    let masks: Vec<f32> = match mask {
        Some(m) => {
            let mv = floats(m)?;
            Offsets::new(scores_shape.dims(), &m.shape().broadcast_strides(&scores_shape)).map(|o| mv[o]).collect()
        }
        None => Vec::new(),
    };
    let mut out = vec![0f32; b * h * sq * dv];
    let mut scores = vec![f64::NEG_INFINITY; sk];
    for bi in 0..b {
        for hi in 0..h {
            let kv = bi * hkv + hi / group;
            for i in 0..sq {
                let row = (bi * h + hi) * sq + i;
                let qrow = &qs[row * d..(row + 1) * d];
                for (j, s) in scores.iter_mut().enumerate() {
                    *s = if causal && j > i {
                        f64::NEG_INFINITY
                    } else {
                        let krow = &ks[(kv * sk + j) * d..(kv * sk + j + 1) * d];
                        let dot: f64 = qrow.iter().zip(krow).map(|(&a, &c)| f64::from(a) * f64::from(c)).sum();
                        let m = masks.get(row * sk + j).map_or(0.0, |&m| f64::from(m));
                        dot * f64::from(scale) + m
                    };
                }
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                if max == f64::NEG_INFINITY {
                    continue;
                }
                let mut sum = 0f64;
                let mut acc = vec![0f64; dv];
                for (j, &s) in scores.iter().enumerate() {
                    let p = (s - max).exp();
                    sum += p;
                    let vrow = &vs[(kv * sk + j) * dv..(kv * sk + j + 1) * dv];
                    for (a, &x) in acc.iter_mut().zip(vrow) {
                        *a += p * f64::from(x);
                    }
                }
                for (o, a) in out[row * dv..(row + 1) * dv].iter_mut().zip(&acc) {
                    *o = (a / sum) as f32;
                }
            }
        }
    }
    from_floats(ty, &out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::eval_op;
    use crate::{BinaryOp, DType, Op, Tensor, TensorType};

    fn t(shape: &[usize], seed: u32) -> Tensor {
        let n: usize = shape.iter().product();
        let v = (0..n)
            .map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed * 97) >> 8) % 1000) as f32 / 500.0 - 1.0);
        Tensor::from_vec(shape.to_vec(), v.collect()).unwrap()
    }

    fn ty(shape: &[usize]) -> TensorType {
        TensorType::new(DType::F32, shape.to_vec())
    }

    /// The same attention written with matmul, softmax and friends.
    fn decomposed(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, scale: f32) -> Vec<f32> {
        let [b, h, sq, d] = <[usize; 4]>::try_from(q.shape().dims()).unwrap();
        let [_, hkv, sk, _] = <[usize; 4]>::try_from(k.shape().dims()).unwrap();
        let dv = v.shape().dims()[3];
        let group = h / hkv;
        // Repeat kv heads: [b, hkv, s, d] -> [b, hkv, group, s, d] -> [b, h, s, d].
        let rep = |x: &Tensor, e: usize| {
            let x5 = eval_op(&Op::Reshape, &[x], &ty(&[b, hkv, 1, sk, e])).unwrap();
            let x5 = eval_op(&Op::Broadcast, &[&x5], &ty(&[b, hkv, group, sk, e])).unwrap();
            eval_op(&Op::Reshape, &[&x5], &ty(&[b, h, sk, e])).unwrap()
        };
        let (k, v) = (rep(k, d), rep(v, dv));
        let kt = eval_op(&Op::Transpose { perm: vec![0, 1, 3, 2] }, &[&k], &ty(&[b, h, d, sk])).unwrap();
        let s = eval_op(&Op::MatMul, &[q, &kt], &ty(&[b, h, sq, sk])).unwrap();
        let c = Tensor::scalar(scale);
        let mut s = eval_op(&Op::Binary(BinaryOp::Mul), &[&s, &c], &ty(&[b, h, sq, sk])).unwrap();
        if let Some(m) = mask {
            s = eval_op(&Op::Binary(BinaryOp::Add), &[&s, m], &ty(&[b, h, sq, sk])).unwrap();
        }
        let p = eval_op(&Op::Softmax { axis: 3 }, &[&s], &ty(&[b, h, sq, sk])).unwrap();
        eval_op(&Op::MatMul, &[&p, &v], &ty(&[b, h, sq, dv])).unwrap().to_vec::<f32>().unwrap()
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-5 + 1e-5 * y.abs(), "{x} vs {y}");
        }
    }

    #[test]
    fn matches_the_decomposition_with_gqa_and_mask() {
        for (h, hkv, sq, sk, d, dv) in [(4, 1, 7, 33, 5, 3), (4, 2, 1, 17, 8, 8), (3, 3, 17, 1, 5, 7)] {
            let (q, k, v) = (t(&[2, h, sq, d], 1), t(&[2, hkv, sk, d], 2), t(&[2, hkv, sk, dv], 3));
            let mask = t(&[sq, sk], 4);
            for m in [None, Some(&mask)] {
                let mut args = vec![&q, &k, &v];
                args.extend(m);
                let op = Op::Attention { scale: 0.3, causal: false };
                let got = eval_op(&op, &args, &ty(&[2, h, sq, dv])).unwrap().to_vec::<f32>().unwrap();
                close(&got, &decomposed(&q, &k, &v, m, 0.3));
            }
        }
    }

    #[test]
    fn causal_is_the_top_left_triangle() {
        let (q, k, v) = (t(&[1, 2, 7, 5], 1), t(&[1, 2, 9, 5], 2), t(&[1, 2, 9, 4], 3));
        let tri: Vec<f32> =
            (0..7).flat_map(|i| (0..9).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY })).collect();
        let tri = Tensor::from_vec(vec![7, 9], tri).unwrap();
        let op = Op::Attention { scale: 0.5, causal: true };
        let got = eval_op(&op, &[&q, &k, &v], &ty(&[1, 2, 7, 4])).unwrap().to_vec::<f32>().unwrap();
        close(&got, &decomposed(&q, &k, &v, Some(&tri), 0.5));
    }

    #[test]
    fn fully_masked_rows_are_zero_and_types_are_checked() {
        let (q, k, v) = (t(&[1, 1, 2, 3], 1), t(&[1, 1, 4, 3], 2), t(&[1, 1, 4, 2], 3));
        let mask = Tensor::from_vec(vec![2, 1], vec![f32::NEG_INFINITY, 0.0]).unwrap();
        let op = Op::Attention { scale: 1.0, causal: false };
        let got = eval_op(&op, &[&q, &k, &v, &mask], &ty(&[1, 1, 2, 2])).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(&got[..2], &[0.0, 0.0]);
        assert!(got[2..].iter().all(|x| x.is_finite() && *x != 0.0));
        let k3 = t(&[1, 2, 4, 3], 2);
        let e = eval_op(&op, &[&q, &k3, &v], &ty(&[1, 1, 2, 2])).unwrap_err();
        assert!(e.contains("kv heads (2) must divide query heads (1)") || e.contains("must match k"), "{e}");
        let q3 = t(&[1, 2, 3], 1);
        let e = eval_op(&op, &[&q3, &k, &v], &ty(&[1, 1, 2, 2])).unwrap_err();
        assert!(e.contains("attention q must have rank 4"), "{e}");
    }
}
