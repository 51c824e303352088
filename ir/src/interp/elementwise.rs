//! Elementwise ops: unary functions, binary arithmetic with numpy
//! broadcasting, clip, cast, where and trilu.

use super::{Offsets, bools, floats, from_bools, from_bytes, from_floats, from_ints, ints};
use crate::{BinaryOp, DType, Op, Tensor, TensorType, UnaryOp};
use half::{bf16, f16};
use std::f64::consts::{FRAC_1_SQRT_2, PI};

/// Applies a unary function elementwise to a float tensor (computed in f64,
/// rounded once to the result type).
pub(super) fn unary(op: UnaryOp, x: &Tensor, ty: &TensorType) -> Result<Tensor, String> {
    if op == UnaryOp::Not {
        let out: Vec<bool> = bools(x)?.into_iter().map(|v| !v).collect();
        return from_bools(ty, &out);
    }
    let f = |v: f64| -> f64 {
        match op {
            UnaryOp::Neg => -v,
            UnaryOp::Sqrt => v.sqrt(),
            UnaryOp::Reciprocal => 1.0 / v,
            UnaryOp::Exp => v.exp(),
            UnaryOp::Log => v.ln(),
            UnaryOp::Erf => erf(v),
            UnaryOp::Tanh => v.tanh(),
            UnaryOp::Sigmoid => 1.0 / (1.0 + (-v).exp()),
            // NaN propagates; everything not above zero becomes +0.
            UnaryOp::Relu => {
                if v > 0.0 || v.is_nan() {
                    v
                } else {
                    0.0
                }
            }
            UnaryOp::Gelu => 0.5 * v * (1.0 + erf(v * FRAC_1_SQRT_2)),
            UnaryOp::GeluTanh => 0.5 * v * (1.0 + ((2.0 / PI).sqrt() * (v + 0.044715 * v * v * v)).tanh()),
            UnaryOp::Abs => v.abs(),
            UnaryOp::Sign => {
                if v > 0.0 {
                    1.0
                } else if v < 0.0 {
                    -1.0
                } else {
                    v * 0.0 // 0 stays 0, NaN stays NaN
                }
            }
            UnaryOp::Floor => v.floor(),
            UnaryOp::Ceil => v.ceil(),
            UnaryOp::Round => v.round_ties_even(),
            UnaryOp::Softplus => v.max(0.0) + (-v.abs()).exp().ln_1p(),
            UnaryOp::Silu => v / (1.0 + (-v).exp()),
            UnaryOp::Not => f64::NAN, // handled above
        }
    };
    let out: Vec<f32> = floats(x)?.into_iter().map(|v| f(v as f64) as f32).collect();
    from_floats(ty, &out)
}

/// The error function, accurate to about 1e-15 (absolute and relative).
///
/// For `|x| < 1.5` it sums the everywhere-positive series
/// `erf(x) = 2/sqrt(pi) e^(-x^2) sum_n 2^n x^(2n+1) / (1*3*...*(2n+1))`;
/// above it uses the continued fraction
/// `erfc(x) = e^(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))`
/// evaluated bottom-up from a fixed depth, and `erf = 1 - erfc`.
pub(super) fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let r = if a < 1.5 {
        erf_series(a)
    } else if a < 6.0 {
        1.0 - erfc_continued_fraction(a)
    } else {
        1.0 // erfc(6) ~ 2e-17 is below half an ulp of 1
    };
    if x < 0.0 { -r } else { r }
}

/// `e^(-a^2)` without the rounding error of forming `a^2`: splits `a` into
/// `hi` (a multiple of 1/16, so `hi^2` is exact) and a small remainder.
fn exp_neg_square(a: f64) -> f64 {
    let hi = (a * 16.0).trunc() / 16.0;
    let lo = a - hi;
    (-hi * hi).exp() * (-lo * (a + hi)).exp()
}

fn erf_series(a: f64) -> f64 {
    let two_a2 = 2.0 * a * a;
    let (mut term, mut sum, mut n) = (a, a, 0.0);
    // Terms shrink by at least 2a^2/(2n+1) < 1 once n > a^2; 100 is ample for a < 1.5.
    for _ in 0..100 {
        n += 1.0;
        term *= two_a2 / (2.0 * n + 1.0);
        sum += term;
        if term <= sum * 1e-17 {
            break;
        }
    }
    2.0 / PI.sqrt() * exp_neg_square(a) * sum
}

fn erfc_continued_fraction(a: f64) -> f64 {
    const DEPTH: u32 = 120; // converged to full precision for a >= 1.5
    let mut t = a;
    for n in (1..=DEPTH).rev() {
        t = a + (f64::from(n) / 2.0) / t;
    }
    exp_neg_square(a) / (PI.sqrt() * t)
}

/// Binary arithmetic or comparison with numpy broadcasting.
pub(super) fn binary(op: BinaryOp, a: &Tensor, b: &Tensor, ty: &TensorType) -> Result<Tensor, String> {
    let out = &ty.shape;
    let offsets = || {
        Offsets::new(out.dims(), &a.shape().broadcast_strides(out))
            .zip(Offsets::new(out.dims(), &b.shape().broadcast_strides(out)))
    };
    let name = Op::Binary(op).name();
    if op.is_comparison() || op.is_logical() {
        let out: Vec<bool> = if a.dtype().is_float() {
            let (x, y) = (floats(a)?, floats(b)?);
            offsets().map(|(i, j)| float_binary(op, x[i] as f64, y[j] as f64) != 0.0).collect()
        } else {
            // Integers and bools compare exactly as i64.
            let (x, y) = (a.to_i64_vec().map_err(|e| e.to_string())?, b.to_i64_vec().map_err(|e| e.to_string())?);
            offsets().map(|(i, j)| int_binary(op, x[i], y[j]).map(|v| v != 0)).collect::<Result<_, String>>()?
        };
        return from_bools(ty, &out);
    }
    if a.dtype().is_float() {
        let (x, y) = (floats(a)?, floats(b)?);
        let out: Vec<f32> = offsets().map(|(i, j)| float_binary(op, x[i] as f64, y[j] as f64) as f32).collect();
        from_floats(ty, &out)
    } else if a.dtype().is_int() {
        let (x, y) = (ints(a)?, ints(b)?);
        let out = offsets().map(|(i, j)| int_binary(op, x[i], y[j])).collect::<Result<Vec<i64>, String>>()?;
        from_ints(ty, &out)
    } else {
        Err(format!("{name} is not defined for {} operands", a.dtype()))
    }
}

/// Float arithmetic; `+ - * /` in f64 then rounded to f32 equal the f32 operations exactly.
fn float_binary(op: BinaryOp, p: f64, q: f64) -> f64 {
    match op {
        BinaryOp::Add => p + q,
        BinaryOp::Sub => p - q,
        BinaryOp::Mul => p * q,
        BinaryOp::Div => p / q,
        BinaryOp::Pow => p.powf(q),
        BinaryOp::Min if p.is_nan() || q.is_nan() => f64::NAN,
        BinaryOp::Min => p.min(q),
        BinaryOp::Max if p.is_nan() || q.is_nan() => f64::NAN,
        BinaryOp::Max => p.max(q),
        BinaryOp::Mod => {
            let r = p % q;
            if r != 0.0 && (r < 0.0) != (q < 0.0) { r + q } else { r }
        }
        BinaryOp::Rem => p % q,
        BinaryOp::Equal => f64::from(u8::from(p == q)),
        BinaryOp::Less => f64::from(u8::from(p < q)),
        BinaryOp::Greater => f64::from(u8::from(p > q)),
        BinaryOp::LessEqual => f64::from(u8::from(p <= q)),
        BinaryOp::GreaterEqual => f64::from(u8::from(p >= q)),
        BinaryOp::And => f64::from(u8::from(p != 0.0 && q != 0.0)),
        BinaryOp::Or => f64::from(u8::from(p != 0.0 || q != 0.0)),
    }
}

/// Integer arithmetic on i64 values of any integer dtype: wrapping, so the
/// caller's truncation to the narrow type gives the narrow type's wrapping result.
fn int_binary(op: BinaryOp, p: i64, q: i64) -> Result<i64, String> {
    match op {
        BinaryOp::Add => Ok(p.wrapping_add(q)),
        BinaryOp::Sub => Ok(p.wrapping_sub(q)),
        BinaryOp::Mul => Ok(p.wrapping_mul(q)),
        BinaryOp::Div if q == 0 => Err(format!("integer division by zero ({p} / 0)")),
        BinaryOp::Div => Ok(p.wrapping_div(q)), // truncates toward zero
        BinaryOp::Pow => Err("pow is only defined for float operands".into()),
        BinaryOp::Min => Ok(p.min(q)),
        BinaryOp::Max => Ok(p.max(q)),
        BinaryOp::Mod | BinaryOp::Rem if q == 0 => Err(format!("integer remainder by zero ({p} % 0)")),
        BinaryOp::Mod => {
            let r = p.wrapping_rem(q);
            Ok(if r != 0 && (r < 0) != (q < 0) { r + q } else { r })
        }
        BinaryOp::Rem => Ok(p.wrapping_rem(q)),
        BinaryOp::Equal => Ok(i64::from(p == q)),
        BinaryOp::Less => Ok(i64::from(p < q)),
        BinaryOp::Greater => Ok(i64::from(p > q)),
        BinaryOp::LessEqual => Ok(i64::from(p <= q)),
        BinaryOp::GreaterEqual => Ok(i64::from(p >= q)),
        BinaryOp::And => Ok(i64::from(p != 0 && q != 0)),
        BinaryOp::Or => Ok(i64::from(p != 0 || q != 0)),
    }
}

/// `min(max(x, min), max)` elementwise (NaN propagates; if `min > max` the result is `max`).
pub(super) fn clip(x: &Tensor, min: f32, max: f32, ty: &TensorType) -> Result<Tensor, String> {
    let out: Vec<f32> = floats(x)?
        .into_iter()
        .map(|v| {
            let v = if v < min { min } else { v };
            if v > max { max } else { v }
        })
        .collect();
    from_floats(ty, &out)
}

/// Decoded element values, by kind.
enum Values {
    Float(Vec<f32>),
    Int(Vec<i64>),
    Bool(Vec<bool>),
}

fn decode(t: &Tensor) -> Result<Values, String> {
    Ok(match t.dtype() {
        d if d.is_float() => Values::Float(floats(t)?),
        d if d.is_int() => Values::Int(ints(t)?),
        _ => Values::Bool(bools(t)?),
    })
}

/// Converts to `ty.dtype`: float->float rounds to nearest even; float->int
/// truncates toward zero, saturating, NaN -> 0 (Rust `as`); int->int wraps
/// (Rust `as`); int->float rounds to nearest; anything->bool is `x != 0`
/// (NaN -> true); bool->number is 0 or 1.
pub(super) fn cast(x: &Tensor, ty: &TensorType) -> Result<Tensor, String> {
    let to = ty.dtype;
    match decode(x)? {
        Values::Float(v) => match to {
            DType::F32 | DType::F16 | DType::BF16 => from_floats(ty, &v),
            DType::I8 => from_ints(ty, &v.iter().map(|&f| i64::from(f as i8)).collect::<Vec<_>>()),
            DType::U8 => from_ints(ty, &v.iter().map(|&f| i64::from(f as u8)).collect::<Vec<_>>()),
            DType::I32 => from_ints(ty, &v.iter().map(|&f| i64::from(f as i32)).collect::<Vec<_>>()),
            DType::I64 => from_ints(ty, &v.iter().map(|&f| f as i64).collect::<Vec<_>>()),
            DType::Bool => from_bools(ty, &v.iter().map(|&f| f != 0.0).collect::<Vec<_>>()),
        },
        Values::Int(v) => {
            let mut bytes = Vec::with_capacity(v.len() * to.size_bytes());
            match to {
                DType::F32 => v.iter().for_each(|&i| bytes.extend_from_slice(&(i as f32).to_le_bytes())),
                // i64 -> f64 is exact up to 2^53; beyond, f16 is infinite anyway and
                // bf16 may round twice (magnitudes above 9e15 only).
                DType::F16 => v.iter().for_each(|&i| bytes.extend_from_slice(&f16::from_f64(i as f64).to_le_bytes())),
                DType::BF16 => v.iter().for_each(|&i| bytes.extend_from_slice(&bf16::from_f64(i as f64).to_le_bytes())),
                DType::I8 | DType::U8 | DType::I32 | DType::I64 => return from_ints(ty, &v),
                DType::Bool => return from_bools(ty, &v.iter().map(|&i| i != 0).collect::<Vec<_>>()),
            }
            from_bytes(ty, bytes)
        }
        Values::Bool(v) => match to {
            DType::F32 | DType::F16 | DType::BF16 => {
                from_floats(ty, &v.iter().map(|&b| f32::from(u8::from(b))).collect::<Vec<_>>())
            }
            DType::I8 | DType::U8 | DType::I32 | DType::I64 => {
                from_ints(ty, &v.iter().map(|&b| i64::from(b)).collect::<Vec<_>>())
            }
            DType::Bool => from_bools(ty, &v),
        },
    }
}

/// `cond ? a : b` elementwise with all three broadcast; copies raw element bytes.
pub(super) fn where_(cond: &Tensor, a: &Tensor, b: &Tensor, ty: &TensorType) -> Result<Tensor, String> {
    let out = &ty.shape;
    let es = ty.dtype.size_bytes();
    let c = bools(cond)?;
    let (ab, bb) = (a.bytes(), b.bytes());
    let mut bytes = Vec::with_capacity(ty.byte_len());
    let offs = Offsets::new(out.dims(), &cond.shape().broadcast_strides(out))
        .zip(Offsets::new(out.dims(), &a.shape().broadcast_strides(out)))
        .zip(Offsets::new(out.dims(), &b.shape().broadcast_strides(out)));
    for ((ci, ai), bi) in offs {
        let src = if c[ci] { &ab[ai * es..(ai + 1) * es] } else { &bb[bi * es..(bi + 1) * es] };
        bytes.extend_from_slice(src);
    }
    from_bytes(ty, bytes)
}

/// Keeps the upper (`j - i >= k`) or lower (`j - i <= k`) triangle of the
/// last two dims, zeroing the rest (all-zero bytes are zero in every dtype).
pub(super) fn trilu(x: &Tensor, upper: bool, k: i64, ty: &TensorType) -> Result<Tensor, String> {
    let dims = x.shape().dims();
    let (rows, cols) = match dims {
        [.., r, c] => (*r, *c),
        _ => return Err(format!("trilu needs rank >= 2, got {}", x.ty())),
    };
    let es = x.dtype().size_bytes();
    let mut bytes = Vec::with_capacity(x.bytes().len());
    for (e, elem) in x.bytes().chunks_exact(es).enumerate() {
        let (i, j) = ((e / cols) % rows, e % cols);
        let diag = j as i64 - i as i64;
        let keep = if upper { diag >= k } else { diag <= k };
        if keep {
            bytes.extend_from_slice(elem);
        } else {
            bytes.extend(std::iter::repeat_n(0u8, es));
        }
    }
    from_bytes(ty, bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::eval_op;
    use super::*;

    fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v.to_vec()).unwrap()
    }

    fn ty(d: DType, shape: &[usize]) -> TensorType {
        TensorType::new(d, shape.to_vec())
    }

    fn eval(op: Op, args: &[&Tensor], t: TensorType) -> Tensor {
        eval_op(&op, args, &t).unwrap()
    }

    fn close(got: &[f32], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() <= tol * (1.0 + w.abs()), "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn erf_matches_table() {
        let table = [
            (0.0, 0.0),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (2.0, 0.9953222650189527),
            (-0.1, -0.1124629160182849),
            (4.0, 0.9999999845827421),
            (-4.0, -0.9999999845827421),
            (1.5, 0.9661051464753108),
            (3.0, 0.9999779095030014),
            (1e-10, 1.1283791670955126e-10),
            (10.0, 1.0),
        ];
        for (x, want) in table {
            let got = erf(x);
            assert!((got - want).abs() <= 1e-15 * want.abs().max(1e-300) + 1e-300, "erf({x}) = {got}, want {want}");
        }
        assert!(erf(f64::NAN).is_nan());
    }

    #[test]
    fn unary_functions() {
        let x = f32s(&[4], &[-1.0, 0.0, 1.0, 4.0]);
        let t = ty(DType::F32, &[4]);
        let run = |u| eval(Op::Unary(u), &[&x], t.clone()).to_vec::<f32>().unwrap();
        assert_eq!(run(UnaryOp::Neg), vec![1.0, -0.0, -1.0, -4.0]);
        assert_eq!(run(UnaryOp::Relu), vec![0.0, 0.0, 1.0, 4.0]);
        assert_eq!(run(UnaryOp::Sqrt)[1..], [0.0, 1.0, 2.0]);
        assert!(run(UnaryOp::Sqrt)[0].is_nan());
        assert_eq!(run(UnaryOp::Reciprocal), vec![-1.0, f32::INFINITY, 1.0, 0.25]);
        close(&run(UnaryOp::Exp), &[0.36787944117144233, 1.0, std::f64::consts::E, 54.598150033144236], 1e-7);
        assert_eq!(run(UnaryOp::Log)[1..3], [f32::NEG_INFINITY, 0.0]);
        close(&run(UnaryOp::Tanh), &[-0.7615941559557649, 0.0, 0.7615941559557649, 0.999329299739067], 1e-7);
        close(&run(UnaryOp::Sigmoid), &[0.2689414213699951, 0.5, 0.7310585786300049, 0.9820137900379085], 1e-7);
        // silu(x) = x * sigmoid(x).
        close(&run(UnaryOp::Silu), &[-0.2689414213699951, 0.0, 0.7310585786300049, 3.928055160151634], 1e-7);
        close(&run(UnaryOp::Erf), &[-0.8427007929497149, 0.0, 0.8427007929497149, 0.9999999845827421], 1e-7);
        // gelu(x) = x * Phi(x): Phi(1) = 0.8413447460685429, Phi(4) = 0.9999683287581669.
        close(&run(UnaryOp::Gelu), &[-0.15865525393145707, 0.0, 0.8413447460685429, 3.9998733150326676], 1e-7);
        // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), evaluated in 30-digit arithmetic.
        close(&run(UnaryOp::GeluTanh), &[-0.15880800939172324, 0.0, 0.8411919906082768, 3.9999297540518076], 1e-7);
    }

    #[test]
    fn unary_on_half_types() {
        let x = Tensor::from_vec(vec![2], vec![f16::from_f32(1.5), f16::from_f32(-4.0)]).unwrap();
        let y = eval(Op::Unary(UnaryOp::Neg), &[&x], ty(DType::F16, &[2]));
        assert_eq!(y.to_vec::<f16>().unwrap(), vec![f16::from_f32(-1.5), f16::from_f32(4.0)]);
        let x = Tensor::from_vec(vec![1], vec![bf16::from_f32(4.0)]).unwrap();
        let y = eval(Op::Unary(UnaryOp::Sqrt), &[&x], ty(DType::BF16, &[1]));
        assert_eq!(y.to_vec::<bf16>().unwrap(), vec![bf16::from_f32(2.0)]);
    }

    #[test]
    fn unary_rejects_ints_without_panicking() {
        let x = Tensor::from_vec(vec![1], vec![1i32]).unwrap();
        let e = eval_op(&Op::Unary(UnaryOp::Exp), &[&x], &ty(DType::I32, &[1])).unwrap_err();
        assert_eq!(e, "exp expects a float operand, got i32[1]");
    }

    #[test]
    fn broadcast_add_2x3_plus_3() {
        let a = f32s(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let b = f32s(&[3], &[10.0, 20.0, 30.0]);
        let y = eval(Op::Binary(BinaryOp::Add), &[&a, &b], ty(DType::F32, &[2, 3]));
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
        // Both sides broadcast: [2,1] - [3].
        let c = f32s(&[2, 1], &[1.0, 2.0]);
        let y = eval(Op::Binary(BinaryOp::Sub), &[&c, &b], ty(DType::F32, &[2, 3]));
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![-9.0, -19.0, -29.0, -8.0, -18.0, -28.0]);
    }

    #[test]
    fn float_mul_div_pow() {
        let a = f32s(&[3], &[2.0, 4.0, -3.0]);
        let b = f32s(&[3], &[3.0, 0.5, 2.0]);
        let t = ty(DType::F32, &[3]);
        let run = |op| eval(Op::Binary(op), &[&a, &b], t.clone()).to_vec::<f32>().unwrap();
        assert_eq!(run(BinaryOp::Mul), vec![6.0, 2.0, -6.0]);
        assert_eq!(run(BinaryOp::Div), vec![2.0 / 3.0, 8.0, -1.5]);
        assert_eq!(run(BinaryOp::Pow), vec![8.0, 2.0, 9.0]);
    }

    #[test]
    fn integer_div_truncates_toward_zero() {
        let a = Tensor::from_vec(vec![4], vec![7i32, -7, 7, -7]).unwrap();
        let b = Tensor::from_vec(vec![4], vec![2i32, 2, -2, -2]).unwrap();
        let y = eval(Op::Binary(BinaryOp::Div), &[&a, &b], ty(DType::I32, &[4]));
        assert_eq!(y.to_vec::<i32>().unwrap(), vec![3, -3, -3, 3]);
        let z = Tensor::from_vec(vec![1], vec![0i32]).unwrap();
        let e = eval_op(&Op::Binary(BinaryOp::Div), &[&a, &z], &ty(DType::I32, &[4])).unwrap_err();
        assert_eq!(e, "integer division by zero (7 / 0)");
        // i64::MIN / -1 wraps instead of panicking.
        let m = Tensor::from_vec(vec![1], vec![i64::MIN]).unwrap();
        let n = Tensor::from_vec(vec![1], vec![-1i64]).unwrap();
        let y = eval(Op::Binary(BinaryOp::Div), &[&m, &n], ty(DType::I64, &[1]));
        assert_eq!(y.to_vec::<i64>().unwrap(), vec![i64::MIN]);
    }

    #[test]
    fn integer_arithmetic_wraps() {
        let a = Tensor::from_vec(vec![2], vec![127i8, -128]).unwrap();
        let b = Tensor::from_vec(vec![1], vec![1i8]).unwrap();
        let t = ty(DType::I8, &[2]);
        assert_eq!(eval(Op::Binary(BinaryOp::Add), &[&a, &b], t.clone()).to_vec::<i8>().unwrap(), vec![-128, -127]);
        assert_eq!(eval(Op::Binary(BinaryOp::Sub), &[&a, &b], t.clone()).to_vec::<i8>().unwrap(), vec![126, 127]);
        let u = Tensor::from_vec(vec![2], vec![200u8, 3]).unwrap();
        let y = eval(Op::Binary(BinaryOp::Mul), &[&u, &u], ty(DType::U8, &[2]));
        assert_eq!(y.to_vec::<u8>().unwrap(), vec![64, 9]); // 40000 mod 256 = 64
        let s = Tensor::from_vec(vec![3], vec![2i64, 3, 4]).unwrap();
        let y = eval(Op::Binary(BinaryOp::Mul), &[&s, &Tensor::scalar(-5i64)], ty(DType::I64, &[3]));
        assert_eq!(y.to_vec::<i64>().unwrap(), vec![-10, -15, -20]);
    }

    #[test]
    fn int_pow_and_bool_add_are_errors() {
        let a = Tensor::from_vec(vec![1], vec![2i32]).unwrap();
        let e = eval_op(&Op::Binary(BinaryOp::Pow), &[&a, &a], &ty(DType::I32, &[1])).unwrap_err();
        assert_eq!(e, "pow expects a float operand, got i32[1]");
        let b = Tensor::from_vec(vec![1], vec![true]).unwrap();
        let e = eval_op(&Op::Binary(BinaryOp::Add), &[&b, &b], &ty(DType::Bool, &[1])).unwrap_err();
        assert_eq!(e, "add is not defined for bool operands");
    }

    #[test]
    fn equal_on_all_kinds() {
        let a = f32s(&[3], &[1.0, f32::NAN, 3.0]);
        let b = f32s(&[3], &[1.0, f32::NAN, 2.0]);
        let y = eval(Op::Binary(BinaryOp::Equal), &[&a, &b], ty(DType::Bool, &[3]));
        assert_eq!(y.to_vec::<bool>().unwrap(), vec![true, false, false]);
        let a = Tensor::from_vec(vec![2, 1], vec![i64::MAX, 5]).unwrap();
        let b = Tensor::from_vec(vec![2], vec![i64::MAX, i64::MAX - 1]).unwrap();
        let y = eval(Op::Binary(BinaryOp::Equal), &[&a, &b], ty(DType::Bool, &[2, 2]));
        assert_eq!(y.to_vec::<bool>().unwrap(), vec![true, false, false, false]);
        let p = Tensor::from_vec(vec![2], vec![true, false]).unwrap();
        let y = eval(Op::Binary(BinaryOp::Equal), &[&p, &Tensor::scalar(false)], ty(DType::Bool, &[2]));
        assert_eq!(y.to_vec::<bool>().unwrap(), vec![false, true]);
    }

    #[test]
    fn clip_clamps() {
        let x = f32s(&[4], &[-2.0, 0.5, 3.0, -1.0]);
        let y = eval(Op::Clip { min: -1.0, max: 1.0 }, &[&x], ty(DType::F32, &[4]));
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![-1.0, 0.5, 1.0, -1.0]);
    }

    #[test]
    fn cast_float_to_int_truncates_and_saturates() {
        let x = f32s(&[6], &[2.7, -2.7, 300.0, f32::NAN, -0.5, -1000.0]);
        let cast = |to| eval(Op::Cast { to }, &[&x], ty(to, &[6]));
        assert_eq!(cast(DType::I8).to_vec::<i8>().unwrap(), vec![2, -2, 127, 0, 0, -128]);
        assert_eq!(cast(DType::I32).to_vec::<i32>().unwrap(), vec![2, -2, 300, 0, 0, -1000]);
        assert_eq!(cast(DType::U8).to_vec::<u8>().unwrap(), vec![2, 0, 255, 0, 0, 0]);
        assert_eq!(cast(DType::I64).to_vec::<i64>().unwrap(), vec![2, -2, 300, 0, 0, -1000]);
        assert_eq!(cast(DType::Bool).to_vec::<bool>().unwrap(), vec![true, true, true, true, true, true]);
        let h = cast(DType::F16).to_vec::<f16>().unwrap();
        assert_eq!(h[2], f16::from_f32(300.0));
        assert_eq!(h[0], f16::from_f32(2.7)); // nearest f16 to 2.7 is 2.69921875
        assert_eq!(h[0].to_f32(), 2.699_218_8);
    }

    #[test]
    fn cast_between_ints_bools_and_floats() {
        let x = Tensor::from_vec(vec![4], vec![0i32, 5, -1, 300]).unwrap();
        let cast = |to| eval(Op::Cast { to }, &[&x], ty(to, &[4]));
        assert_eq!(cast(DType::Bool).to_vec::<bool>().unwrap(), vec![false, true, true, true]);
        assert_eq!(cast(DType::U8).to_vec::<u8>().unwrap(), vec![0, 5, 255, 44]); // wraps like `as`
        assert_eq!(cast(DType::I8).to_vec::<i8>().unwrap(), vec![0, 5, -1, 44]);
        assert_eq!(cast(DType::F32).to_vec::<f32>().unwrap(), vec![0.0, 5.0, -1.0, 300.0]);
        assert_eq!(cast(DType::BF16).to_vec::<bf16>().unwrap()[3], bf16::from_f32(300.0));
        assert_eq!(cast(DType::I32), x);
        let b = Tensor::from_vec(vec![2], vec![true, false]).unwrap();
        assert_eq!(
            eval(Op::Cast { to: DType::F32 }, &[&b], ty(DType::F32, &[2])).to_vec::<f32>().unwrap(),
            vec![1.0, 0.0]
        );
        assert_eq!(eval(Op::Cast { to: DType::I64 }, &[&b], ty(DType::I64, &[2])).to_vec::<i64>().unwrap(), vec![1, 0]);
        // 2^24 + 1 is not representable in f32: rounds to even.
        let big = Tensor::from_vec(vec![1], vec![16_777_217i64]).unwrap();
        assert_eq!(
            eval(Op::Cast { to: DType::F32 }, &[&big], ty(DType::F32, &[1])).to_vec::<f32>().unwrap(),
            vec![16_777_216.0]
        );
    }

    #[test]
    fn where_broadcasts_all_three() {
        let c = Tensor::from_vec(vec![2, 1], vec![true, false]).unwrap();
        let a = f32s(&[3], &[1.0, 2.0, 3.0]);
        let b = Tensor::scalar(0.0f32);
        let y = eval(Op::Where, &[&c, &a, &b], ty(DType::F32, &[2, 3]));
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0, 0.0, 0.0, 0.0]);
        // i64 payloads, condition broadcast along rows.
        let c = Tensor::from_vec(vec![2], vec![false, true]).unwrap();
        let a = Tensor::from_vec(vec![2, 2], vec![1i64, 2, 3, 4]).unwrap();
        let b = Tensor::from_vec(vec![2, 1], vec![-1i64, -2]).unwrap();
        let y = eval(Op::Where, &[&c, &a, &b], ty(DType::I64, &[2, 2]));
        assert_eq!(y.to_vec::<i64>().unwrap(), vec![-1, 2, -2, 4]);
    }

    #[test]
    fn trilu_upper_and_lower_with_k() {
        let x = f32s(&[3, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
        let t = ty(DType::F32, &[3, 3]);
        let run = |upper, k| eval(Op::Trilu { upper, k }, &[&x], t.clone()).to_vec::<f32>().unwrap();
        assert_eq!(run(true, 0), vec![1.0, 2.0, 3.0, 0.0, 5.0, 6.0, 0.0, 0.0, 9.0]);
        assert_eq!(run(true, 1), vec![0.0, 2.0, 3.0, 0.0, 0.0, 6.0, 0.0, 0.0, 0.0]);
        assert_eq!(run(false, 0), vec![1.0, 0.0, 0.0, 4.0, 5.0, 0.0, 7.0, 8.0, 9.0]);
        assert_eq!(run(false, -1), vec![0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 7.0, 8.0, 0.0]);
        // Batched, non-square, integer: [2, 2, 3] lower with k = 1.
        let x = Tensor::from_vec(vec![2, 2, 3], (1..=12i64).collect()).unwrap();
        let y = eval(Op::Trilu { upper: false, k: 1 }, &[&x], ty(DType::I64, &[2, 2, 3]));
        assert_eq!(y.to_vec::<i64>().unwrap(), vec![1, 2, 0, 4, 5, 6, 7, 8, 0, 10, 11, 12]);
        let e =
            eval_op(&Op::Trilu { upper: true, k: 0 }, &[&f32s(&[3], &[1.0; 3])], &ty(DType::F32, &[3])).unwrap_err();
        assert!(e.contains("trilu needs rank >= 2"), "{e}");
    }

    #[test]
    fn rounding_sign_abs_softplus() {
        let x = f32s(&[8], &[0.5, 1.5, 2.5, -0.5, -1.5, -2.7, 3.2, 0.0]);
        let run = |u| eval(Op::Unary(u), &[&x], ty(DType::F32, &[8])).to_vec::<f32>().unwrap();
        assert_eq!(run(UnaryOp::Round), vec![0.0, 2.0, 2.0, -0.0, -2.0, -3.0, 3.0, 0.0]);
        assert_eq!(run(UnaryOp::Floor), vec![0.0, 1.0, 2.0, -1.0, -2.0, -3.0, 3.0, 0.0]);
        assert_eq!(run(UnaryOp::Ceil), vec![1.0, 2.0, 3.0, -0.0, -1.0, -2.0, 4.0, 0.0]);
        assert_eq!(run(UnaryOp::Sign), vec![1.0, 1.0, 1.0, -1.0, -1.0, -1.0, 1.0, 0.0]);
        assert_eq!(run(UnaryOp::Abs), vec![0.5, 1.5, 2.5, 0.5, 1.5, 2.7, 3.2, 0.0]);
        // softplus(0) = ln 2; softplus(3.2) = ln(1 + e^3.2); far below zero it is e^x.
        let sp = f32s(&[3], &[0.0, 3.2, -30.0]);
        let got = eval(Op::Unary(UnaryOp::Softplus), &[&sp], ty(DType::F32, &[3])).to_vec::<f32>().unwrap();
        close(&got, &[std::f64::consts::LN_2, 3.239_953_3, 9.357623e-14], 1e-7);
        assert!((got[2] as f64 / 9.357623e-14 - 1.0).abs() < 1e-5, "relative accuracy far below zero");
    }

    #[test]
    fn min_max_mod_rem() {
        let a = f32s(&[4], &[-7.0, 7.0, -1.0, f32::NAN]);
        let b = f32s(&[4], &[3.0, -3.0, 2.0, 1.0]);
        let run = |o| eval(Op::Binary(o), &[&a, &b], ty(DType::F32, &[4])).to_vec::<f32>().unwrap();
        let mn = run(BinaryOp::Min);
        assert_eq!(mn[..3], [-7.0, -3.0, -1.0]);
        assert!(mn[3].is_nan());
        assert_eq!(run(BinaryOp::Max)[..3], [3.0, 7.0, 2.0]);
        assert_eq!(run(BinaryOp::Rem)[..3], [-1.0, 1.0, -1.0]);
        assert_eq!(run(BinaryOp::Mod)[..3], [2.0, -2.0, 1.0]);
        let ia = Tensor::from_vec(vec![4], vec![-7i64, 7, -9, 5]).unwrap();
        let ib = Tensor::from_vec(vec![4], vec![3i64, -3, 4, -3]).unwrap();
        let ir = |o| eval(Op::Binary(o), &[&ia, &ib], ty(DType::I64, &[4])).to_vec::<i64>().unwrap();
        assert_eq!(ir(BinaryOp::Mod), vec![2, -2, 3, -1]);
        assert_eq!(ir(BinaryOp::Rem), vec![-1, 1, -1, 2]);
        let zero = Tensor::from_vec(vec![1], vec![0i64]).unwrap();
        let e = eval_op(&Op::Binary(BinaryOp::Mod), &[&ia, &zero], &ty(DType::I64, &[4])).unwrap_err();
        assert!(e.contains("by zero"), "{e}");
    }

    #[test]
    fn comparisons_and_logic() {
        let a = f32s(&[3], &[1.0, 2.0, 3.0]);
        let b = f32s(&[1], &[2.0]);
        let run = |o| eval(Op::Binary(o), &[&a, &b], ty(DType::Bool, &[3])).to_vec::<bool>().unwrap();
        assert_eq!(run(BinaryOp::Less), vec![true, false, false]);
        assert_eq!(run(BinaryOp::Greater), vec![false, false, true]);
        assert_eq!(run(BinaryOp::LessEqual), vec![true, true, false]);
        assert_eq!(run(BinaryOp::GreaterEqual), vec![false, true, true]);
        let p = Tensor::from_vec(vec![4], vec![true, true, false, false]).unwrap();
        let q = Tensor::from_vec(vec![4], vec![true, false, true, false]).unwrap();
        let l = |o| eval(Op::Binary(o), &[&p, &q], ty(DType::Bool, &[4])).to_vec::<bool>().unwrap();
        assert_eq!(l(BinaryOp::And), vec![true, false, false, false]);
        assert_eq!(l(BinaryOp::Or), vec![true, true, true, false]);
        let n = eval(Op::Unary(UnaryOp::Not), &[&p], ty(DType::Bool, &[4])).to_vec::<bool>().unwrap();
        assert_eq!(n, vec![false, false, true, true]);
        let e = eval_op(&Op::Binary(BinaryOp::And), &[&a, &a], &ty(DType::Bool, &[3])).unwrap_err();
        assert!(e.contains("expects a bool operand"), "{e}");
    }
}
