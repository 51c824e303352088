//! Transcendental functions emitted as Cranelift code (no calls): scalar
//! f32 polynomial approximations in the style of Cephes.
//!
//! Maximum errors, checked against f64 std/libm by `tests` below:
//! exp ~2 ulp, log ~2 ulp on normal inputs, erf <= 2e-7 absolute
//! (relative ~1e-6 near 0), tanh ~3 ulp.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32, I32};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value};
use cranelift_frontend::FunctionBuilder;

fn c(b: &mut FunctionBuilder, v: f32) -> Value {
    b.ins().f32const(v)
}

/// Horner evaluation of `coeffs[0]*x^(n-1) + ... + coeffs[n-1]`.
fn poly(b: &mut FunctionBuilder, x: Value, coeffs: &[f32]) -> Value {
    let mut acc = c(b, coeffs[0]);
    for &k in &coeffs[1..] {
        let kc = c(b, k);
        let m = b.ins().fmul(acc, x);
        acc = b.ins().fadd(m, kc);
    }
    acc
}

/// `2^n` for an i32 `n` in [-126, 127], as f32.
fn pow2i(b: &mut FunctionBuilder, n: Value) -> Value {
    let e = b.ins().iadd_imm_s(n, 127);
    let bits = b.ins().ishl_imm_u(e, 23);
    b.ins().bitcast(F32, MemFlagsData::new(), bits)
}

/// Rounds to the nearest integer (halves away from zero), as i32.
fn round_i32(b: &mut FunctionBuilder, x: Value) -> Value {
    let half = c(b, 0.5);
    let h = b.ins().fcopysign(half, x);
    let t = b.ins().fadd(x, h);
    b.ins().fcvt_to_sint_sat(I32, t)
}

/// `e^x`.
pub fn exp(b: &mut FunctionBuilder, x: Value) -> Value {
    let lo = c(b, -104.0);
    let hi = c(b, 89.0);
    let x = b.ins().fmax(x, lo);
    let x = b.ins().fmin(x, hi);
    let log2e = c(b, std::f32::consts::LOG2_E);
    let t = b.ins().fmul(x, log2e);
    let n = round_i32(b, t);
    let nf = b.ins().fcvt_from_sint(F32, n);
    let c1 = c(b, 0.693_359_4);
    let c2 = c(b, -2.121_944_4e-4);
    let a = b.ins().fmul(nf, c1);
    let r = b.ins().fsub(x, a);
    let a = b.ins().fmul(nf, c2);
    let r = b.ins().fsub(r, a);
    let p = poly(b, r, &[1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 5e-1]);
    let r2 = b.ins().fmul(r, r);
    let p = b.ins().fmul(p, r2);
    let p = b.ins().fadd(p, r);
    let one = c(b, 1.0);
    let p = b.ins().fadd(p, one);
    // Scale by 2^n in two steps so n in [-150, 129] never leaves the exponent range.
    let n1 = b.ins().sshr_imm_u(n, 1);
    let n2 = b.ins().isub(n, n1);
    let s1 = pow2i(b, n1);
    let s2 = pow2i(b, n2);
    let p = b.ins().fmul(p, s1);
    b.ins().fmul(p, s2)
}

/// Natural logarithm (`-inf` at 0, NaN below 0).
pub fn log(b: &mut FunctionBuilder, x: Value) -> Value {
    let bits = b.ins().bitcast(I32, MemFlagsData::new(), x);
    let e = b.ins().ushr_imm_u(bits, 23);
    let e = b.ins().band_imm_u(e, 0xff);
    let e = b.ins().iadd_imm_s(e, -126);
    let mbits = b.ins().band_imm_u(bits, 0x807f_ffff);
    let mbits = b.ins().bor_imm_u(mbits, 0x3f00_0000);
    let m = b.ins().bitcast(F32, MemFlagsData::new(), mbits);
    // m in [0.5, 1): if m < sqrt(1/2) use 2m - 1 and e - 1, else m - 1.
    let sqrthf = c(b, std::f32::consts::FRAC_1_SQRT_2);
    let small = b.ins().fcmp(FloatCC::LessThan, m, sqrthf);
    let one = c(b, 1.0);
    let m2 = b.ins().fadd(m, m);
    let m2 = b.ins().fsub(m2, one);
    let m1 = b.ins().fsub(m, one);
    let m = b.ins().select(small, m2, m1);
    let em1 = b.ins().iadd_imm_s(e, -1);
    let e = b.ins().select(small, em1, e);
    let z = b.ins().fmul(m, m);
    let p = poly(
        b,
        m,
        &[
            7.037_683_6e-2,
            -1.151_461e-1,
            1.167_699_9e-1,
            -1.242_014_1e-1,
            1.424_932_3e-1,
            -1.666_805_8e-1,
            2.000_071_4e-1,
            -2.499_999_4e-1,
            3.333_333e-1,
        ],
    );
    let y = b.ins().fmul(p, m);
    let y = b.ins().fmul(y, z);
    let fe = b.ins().fcvt_from_sint(F32, e);
    let q1 = c(b, -2.121_944_4e-4);
    let t = b.ins().fmul(fe, q1);
    let y = b.ins().fadd(y, t);
    let half = c(b, 0.5);
    let t = b.ins().fmul(z, half);
    let y = b.ins().fsub(y, t);
    let r = b.ins().fadd(m, y);
    let q2 = c(b, 0.693_359_4);
    let t = b.ins().fmul(fe, q2);
    let r = b.ins().fadd(r, t);
    // Special cases: 0 -> -inf, negative -> NaN, +inf -> +inf, NaN -> NaN.
    let zero = c(b, 0.0);
    let ninf = c(b, f32::NEG_INFINITY);
    let nan = c(b, f32::NAN);
    let pinf = c(b, f32::INFINITY);
    let is_zero = b.ins().fcmp(FloatCC::Equal, x, zero);
    let r = b.ins().select(is_zero, ninf, r);
    let is_neg = b.ins().fcmp(FloatCC::LessThan, x, zero);
    let r = b.ins().select(is_neg, nan, r);
    let is_inf = b.ins().fcmp(FloatCC::Equal, x, pinf);
    let r = b.ins().select(is_inf, pinf, r);
    let is_nan = b.ins().fcmp(FloatCC::Unordered, x, x);
    b.ins().select(is_nan, x, r)
}

/// Hyperbolic tangent.
pub fn tanh(b: &mut FunctionBuilder, x: Value) -> Value {
    let ax = b.ins().fabs(x);
    // Small |x|: odd polynomial.
    let z = b.ins().fmul(x, x);
    let p = poly(b, z, &[-5.704_988_7e-3, 2.063_909e-2, -5.373_974e-2, 1.333_144_2e-1, -3.333_328e-1]);
    let p = b.ins().fmul(p, z);
    let p = b.ins().fmul(p, x);
    let small_r = b.ins().fadd(p, x);
    // Large |x|: 1 - 2 / (e^{2|x|} + 1), with the sign of x.
    let two = c(b, 2.0);
    let one = c(b, 1.0);
    let t = b.ins().fmul(ax, two);
    let e = exp(b, t);
    let d = b.ins().fadd(e, one);
    let q = b.ins().fdiv(two, d);
    let large = b.ins().fsub(one, q);
    let large_r = b.ins().fcopysign(large, x);
    let lim = c(b, 0.625);
    let is_small = b.ins().fcmp(FloatCC::LessThan, ax, lim);
    b.ins().select(is_small, small_r, large_r)
}

/// Error function.
pub fn erf(b: &mut FunctionBuilder, x: Value) -> Value {
    let ax = b.ins().fabs(x);
    // |x| < 1: x * P(x^2) (Cephes erff).
    let z = b.ins().fmul(x, x);
    let p = poly(
        b,
        z,
        &[
            7.853_861_4e-5,
            -8.010_193_6e-4,
            5.188_327_7e-3,
            -2.685_381_2e-2,
            1.128_358_5e-1,
            -3.761_262_6e-1,
            std::f32::consts::FRAC_2_SQRT_PI,
        ],
    );
    let small_r = b.ins().fmul(p, x);
    // |x| >= 1: Abramowitz & Stegun 7.1.26, abs error <= 1.5e-7.
    let one = c(b, 1.0);
    let pc = c(b, 0.327_591_1);
    let t = b.ins().fmul(ax, pc);
    let t = b.ins().fadd(t, one);
    let t = b.ins().fdiv(one, t);
    let q = poly(b, t, &[1.061_405_4, -1.453_152, 1.421_413_8, -0.284_496_74, 0.254_829_6]);
    let q = b.ins().fmul(q, t);
    let nz = b.ins().fneg(z);
    let e = exp(b, nz);
    let q = b.ins().fmul(q, e);
    let large = b.ins().fsub(one, q);
    let large_r = b.ins().fcopysign(large, x);
    let is_small = b.ins().fcmp(FloatCC::LessThan, ax, one);
    b.ins().select(is_small, small_r, large_r)
}

/// `1 / (1 + e^-x)`.
pub fn sigmoid(b: &mut FunctionBuilder, x: Value) -> Value {
    let nx = b.ins().fneg(x);
    let e = exp(b, nx);
    let one = c(b, 1.0);
    let d = b.ins().fadd(e, one);
    b.ins().fdiv(one, d)
}

/// `0.5 x (1 + erf(x / sqrt 2))`.
pub fn gelu(b: &mut FunctionBuilder, x: Value) -> Value {
    let k = c(b, std::f32::consts::FRAC_1_SQRT_2);
    let t = b.ins().fmul(x, k);
    let e = erf(b, t);
    half_x_one_plus(b, x, e)
}

/// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
pub fn gelu_tanh(b: &mut FunctionBuilder, x: Value) -> Value {
    let x3 = b.ins().fmul(x, x);
    let x3 = b.ins().fmul(x3, x);
    let k = c(b, 0.044_715);
    let t = b.ins().fmul(x3, k);
    let t = b.ins().fadd(t, x);
    let s = c(b, 0.797_884_6);
    let t = b.ins().fmul(t, s);
    let th = tanh(b, t);
    half_x_one_plus(b, x, th)
}

fn half_x_one_plus(b: &mut FunctionBuilder, x: Value, y: Value) -> Value {
    let one = c(b, 1.0);
    let half = c(b, 0.5);
    let s = b.ins().fadd(y, one);
    let hx = b.ins().fmul(x, half);
    b.ins().fmul(hx, s)
}

/// `x` with its fraction dropped (toward zero). Exact: values with
/// `|x| >= 2^23` (and NaN, infinities) are already integral and pass through.
fn trunc(b: &mut FunctionBuilder, x: Value) -> Value {
    let ax = b.ins().fabs(x);
    let lim = c(b, 8_388_608.0);
    let small = b.ins().fcmp(FloatCC::LessThan, ax, lim);
    let i = b.ins().fcvt_to_sint_sat(I32, x);
    let t = b.ins().fcvt_from_sint(F32, i);
    let t = b.ins().fcopysign(t, x);
    b.ins().select(small, t, x)
}

/// Largest integer `<= x` (software: the baseline x86-64 ISA has no `roundss`).
pub fn floor(b: &mut FunctionBuilder, x: Value) -> Value {
    let t = trunc(b, x);
    let one = c(b, 1.0);
    let above = b.ins().fcmp(FloatCC::GreaterThan, t, x);
    let t1 = b.ins().fsub(t, one);
    let r = b.ins().select(above, t1, t);
    b.ins().fcopysign(r, x)
}

/// Smallest integer `>= x`.
pub fn ceil(b: &mut FunctionBuilder, x: Value) -> Value {
    let t = trunc(b, x);
    let one = c(b, 1.0);
    let below = b.ins().fcmp(FloatCC::LessThan, t, x);
    let t1 = b.ins().fadd(t, one);
    let r = b.ins().select(below, t1, t);
    b.ins().fcopysign(r, x)
}

/// Nearest integer, halves to even.
pub fn round_half_even(b: &mut FunctionBuilder, x: Value) -> Value {
    let f = floor(b, x);
    let d = b.ins().fsub(x, f);
    let half = c(b, 0.5);
    let one = c(b, 1.0);
    let up = b.ins().fadd(f, one);
    // floor is integral and, when it matters (|x| < 2^23), fits in i32.
    let fi = b.ins().fcvt_to_sint_sat(I32, f);
    let odd = b.ins().band_imm_u(fi, 1);
    let odd = b.ins().icmp_imm_s(IntCC::NotEqual, odd, 0);
    let tie = b.ins().select(odd, up, f);
    let gt = b.ins().fcmp(FloatCC::GreaterThan, d, half);
    let eq = b.ins().fcmp(FloatCC::Equal, d, half);
    let r = b.ins().select(eq, tie, f);
    let r = b.ins().select(gt, up, r);
    b.ins().fcopysign(r, x)
}

/// `-1`, `0` or `1` by the sign of `x`; NaN stays NaN.
pub fn sign(b: &mut FunctionBuilder, x: Value) -> Value {
    let zero = c(b, 0.0);
    let one = c(b, 1.0);
    let m1 = c(b, -1.0);
    let z = b.ins().fmul(x, zero);
    let neg = b.ins().fcmp(FloatCC::LessThan, x, zero);
    let r = b.ins().select(neg, m1, z);
    let pos = b.ins().fcmp(FloatCC::GreaterThan, x, zero);
    b.ins().select(pos, one, r)
}

/// `ln(1 + e^x)` as `max(x, 0) + log1p(e^-|x|)`, with `log1p(u)` computed as
/// `ln(1 + u) * u / ((1 + u) - 1)` to keep precision for small `u`.
pub fn softplus(b: &mut FunctionBuilder, x: Value) -> Value {
    let zero = c(b, 0.0);
    let one = c(b, 1.0);
    let ax = b.ins().fabs(x);
    let nax = b.ins().fneg(ax);
    let e = exp(b, nax);
    let u = b.ins().fadd(one, e);
    let l = log(b, u);
    let um1 = b.ins().fsub(u, one);
    let q = b.ins().fdiv(e, um1);
    let l1 = b.ins().fmul(l, q);
    let exact = b.ins().fcmp(FloatCC::Equal, um1, zero);
    let lp = b.ins().select(exact, e, l1);
    let m = b.ins().fmax(x, zero);
    b.ins().fadd(m, lp)
}

/// Truncated remainder `a - trunc(a / b) * b` (the sign of `a`, like C fmod).
pub fn frem(b: &mut FunctionBuilder, a: Value, d: Value) -> Value {
    let q = b.ins().fdiv(a, d);
    let t = trunc(b, q);
    let m = b.ins().fmul(t, d);
    let r = b.ins().fsub(a, m);
    let r = b.ins().fcopysign(r, a);
    // fmod(a, ±inf) = a for finite a.
    let ad = b.ins().fabs(d);
    let inf = c(b, f32::INFINITY);
    let d_inf = b.ins().fcmp(FloatCC::Equal, ad, inf);
    b.ins().select(d_inf, a, r)
}

/// Floored remainder: the sign of the divisor.
pub fn fmod_floored(b: &mut FunctionBuilder, a: Value, d: Value) -> Value {
    let r = frem(b, a, d);
    let zero = c(b, 0.0);
    let nonzero = b.ins().fcmp(FloatCC::NotEqual, r, zero);
    let rn = b.ins().fcmp(FloatCC::LessThan, r, zero);
    let dn = b.ins().fcmp(FloatCC::LessThan, d, zero);
    let differ = b.ins().bxor(rn, dn);
    let fix = b.ins().band(nonzero, differ);
    let rd = b.ins().fadd(r, d);
    b.ins().select(fix, rd, r)
}

/// f16 bits (in an i16) to f32: shift exponent and mantissa into place and
/// rescale by 2^112 (which also normalises subnormals); infinities and NaNs
/// keep an all-ones exponent.
pub fn f16_to_f32(b: &mut FunctionBuilder, h: Value) -> Value {
    let h = b.ins().uextend(I32, h);
    let sign = b.ins().band_imm_u(h, 0x8000);
    let sign = b.ins().ishl_imm_u(sign, 16);
    let em = b.ins().band_imm_u(h, 0x7fff);
    let o = b.ins().ishl_imm_u(em, 13);
    let of = b.ins().bitcast(F32, MemFlagsData::new(), o);
    let magic = c(b, f32::from_bits(0x7780_0000)); // 2^112
    let scaled = b.ins().fmul(of, magic);
    let scaled = b.ins().bitcast(I32, MemFlagsData::new(), scaled);
    let special = b.ins().bor_imm_u(o, 0x7f80_0000);
    let is_special = b.ins().icmp_imm_u(IntCC::UnsignedGreaterThanOrEqual, em, 0x7c00);
    let r = b.ins().select(is_special, special, scaled);
    let r = b.ins().bor(r, sign);
    b.ins().bitcast(F32, MemFlagsData::new(), r)
}

/// f32 to f16 bits (an i16), rounding to nearest even; overflow gives
/// infinity, NaN a quiet NaN, tiny values subnormals or zero.
pub fn f32_to_f16(b: &mut FunctionBuilder, x: Value) -> Value {
    let f = b.ins().bitcast(I32, MemFlagsData::new(), x);
    let sign = b.ins().band_imm_u(f, 0x8000_0000);
    let a = b.ins().bxor(f, sign);
    // Inf or NaN (or too large): 0x7c00, NaN 0x7e00.
    let is_nan = b.ins().icmp_imm_u(IntCC::UnsignedGreaterThan, a, 0x7f80_0000);
    let nan = b.ins().iconst(I32, 0x7e00);
    let inf = b.ins().iconst(I32, 0x7c00);
    let big_r = b.ins().select(is_nan, nan, inf);
    let too_big = b.ins().icmp_imm_u(IntCC::UnsignedGreaterThanOrEqual, a, (127 + 16) << 23);
    // Subnormal or zero: add a magic float so the FPU rounds at the right bit.
    let af = b.ins().bitcast(F32, MemFlagsData::new(), a);
    let magic_bits: i64 = ((127 - 15) + (23 - 10) + 1) << 23;
    let magic = c(b, f32::from_bits(magic_bits as u32));
    let sum = b.ins().fadd(af, magic);
    let sum = b.ins().bitcast(I32, MemFlagsData::new(), sum);
    let small_r = b.ins().iadd_imm_s(sum, -magic_bits);
    let is_small = b.ins().icmp_imm_u(IntCC::UnsignedLessThan, a, 113 << 23);
    // Normal: rebias the exponent and round the dropped 13 bits to even.
    let odd = b.ins().ushr_imm_u(a, 13);
    let odd = b.ins().band_imm_u(odd, 1);
    let n = b.ins().iadd_imm_s(a, (((15 - 127) << 23) + 0xfff) as i64);
    let n = b.ins().iadd(n, odd);
    let normal_r = b.ins().ushr_imm_u(n, 13);
    let r = b.ins().select(is_small, small_r, normal_r);
    let r = b.ins().select(too_big, big_r, r);
    let s16 = b.ins().ushr_imm_u(sign, 16);
    let r = b.ins().bor(r, s16);
    b.ins().ireduce(cranelift_codegen::ir::types::I16, r)
}

/// bf16 bits (an i16) to f32: the upper half of the f32 bits.
pub fn bf16_to_f32(b: &mut FunctionBuilder, h: Value) -> Value {
    let h = b.ins().uextend(I32, h);
    let o = b.ins().ishl_imm_u(h, 16);
    b.ins().bitcast(F32, MemFlagsData::new(), o)
}

/// f32 to bf16 bits (an i16), rounding to nearest even; NaN stays a quiet NaN.
pub fn f32_to_bf16(b: &mut FunctionBuilder, x: Value) -> Value {
    let f = b.ins().bitcast(I32, MemFlagsData::new(), x);
    let lsb = b.ins().ushr_imm_u(f, 16);
    let lsb = b.ins().band_imm_u(lsb, 1);
    let r = b.ins().iadd_imm_s(f, 0x7fff);
    let r = b.ins().iadd(r, lsb);
    let r = b.ins().ushr_imm_u(r, 16);
    let is_nan = b.ins().fcmp(FloatCC::Unordered, x, x);
    let hi = b.ins().ushr_imm_u(f, 16);
    let qnan = b.ins().bor_imm_u(hi, 0x40);
    let r = b.ins().select(is_nan, qnan, r);
    b.ins().ireduce(cranelift_codegen::ir::types::I16, r)
}

/// `a ^ p`: exact sign for negative bases with integral exponents, NaN for
/// negative bases with fractional exponents, `x^0 = 1`.
pub fn pow(b: &mut FunctionBuilder, a: Value, p: Value) -> Value {
    let aa = b.ins().fabs(a);
    let l = log(b, aa);
    let t = b.ins().fmul(l, p);
    let r = exp(b, t);
    // Integral exponent? (|p| < 2^24 so the i32 round trip is exact.)
    let pi = b.ins().fcvt_to_sint_sat(I32, p);
    let pf = b.ins().fcvt_from_sint(F32, pi);
    let integral = b.ins().fcmp(FloatCC::Equal, pf, p);
    let odd = b.ins().band_imm_u(pi, 1);
    let odd = b.ins().icmp_imm_s(IntCC::NotEqual, odd, 0);
    let zero = c(b, 0.0);
    let neg = b.ins().fcmp(FloatCC::LessThan, a, zero);
    let nr = b.ins().fneg(r);
    let signed = b.ins().select(odd, nr, r);
    let nan = c(b, f32::NAN);
    let negr = b.ins().select(integral, signed, nan);
    let r = b.ins().select(neg, negr, r);
    let one = c(b, 1.0);
    let p0 = b.ins().fcmp(FloatCC::Equal, p, zero);
    b.ins().select(p0, one, r)
}

#[cfg(test)]
mod tests {
    use crate::cpu::{compile, jit::JitModel};
    use nanoc_ir::{DType, Graph, Op, TensorType, UnaryOp};
    use nanoc_targets::Target;

    /// Runs a unary op over `xs` through the JIT.
    fn run_unary(op: UnaryOp, xs: &[f32]) -> Vec<f32> {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TensorType::new(DType::F32, vec![xs.len()]));
        let y = g.add_op("y", Op::Unary(op), &[x]).unwrap();
        g.add_output("y", y);
        let target = Target::find("cpu-x86_64").unwrap();
        let mut m = JitModel::new(compile(&g, &target, true).unwrap()).unwrap();
        let bytes: Vec<u8> = xs.iter().flat_map(|v| v.to_le_bytes()).collect();
        let out = m.run(&[&bytes]).unwrap();
        out[0].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    }

    fn grid(lo: f32, hi: f32, n: usize) -> Vec<f32> {
        (0..n).map(|i| lo + (hi - lo) * i as f32 / (n - 1) as f32).collect()
    }

    fn max_rel(got: &[f32], want: impl Fn(f64) -> f64, xs: &[f32], floor: f64) -> f64 {
        xs.iter()
            .zip(got)
            .map(|(&x, &g)| {
                let w = want(x as f64);
                (g as f64 - w).abs() / w.abs().max(floor)
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn exp_log_tanh_sigmoid_accuracy() {
        let xs = grid(-80.0, 80.0, 4001);
        assert!(max_rel(&run_unary(UnaryOp::Exp, &xs), f64::exp, &xs, 1e-30) < 1e-6);
        let xs = grid(1e-6, 1e4, 4001);
        assert!(max_rel(&run_unary(UnaryOp::Log, &xs), f64::ln, &xs, 1e-3) < 1e-6);
        let xs = grid(-12.0, 12.0, 4001);
        assert!(max_rel(&run_unary(UnaryOp::Tanh, &xs), f64::tanh, &xs, 1e-30) < 1e-6);
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        assert!(max_rel(&run_unary(UnaryOp::Sigmoid, &xs), sig, &xs, 1e-30) < 1e-6);
    }

    #[test]
    fn special_values() {
        let out = run_unary(UnaryOp::Exp, &[f32::NEG_INFINITY, 100.0, 0.0]);
        assert_eq!(out, vec![0.0, f32::INFINITY, 1.0]);
        let out = run_unary(UnaryOp::Log, &[0.0, -1.0, f32::INFINITY, 1.0]);
        assert_eq!(out[0], f32::NEG_INFINITY);
        assert!(out[1].is_nan());
        assert_eq!(out[2], f32::INFINITY);
        assert_eq!(out[3], 0.0);
    }

    #[test]
    fn erf_matches_table() {
        // Reference values of erf (Abramowitz & Stegun table 7.1).
        let table = [
            (0.0, 0.0),
            (0.1, 0.1124629160182849),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (1.5, 0.9661051464753108),
            (2.0, 0.9953222650189527),
            (3.0, 0.9999779095030014),
            (-0.5, -0.5204998778130465),
            (-2.0, -0.9953222650189527),
        ];
        let xs: Vec<f32> = table.iter().map(|t| t.0 as f32).collect();
        let got = run_unary(UnaryOp::Erf, &xs);
        for ((x, want), g) in table.iter().zip(got) {
            assert!((g as f64 - want).abs() < 3e-7, "erf({x}) = {g}, want {want}");
        }
    }

    /// Runs `x` (raw bytes of `from`) through a cast kernel and through the
    /// reference interpreter; returns both results' raw bytes.
    fn cast_both(from: DType, to: DType, n: usize, bytes: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TensorType::new(from, vec![n]));
        let y = g.add_op("y", Op::Cast { to }, &[x]).unwrap();
        g.add_output("y", y);
        let t = nanoc_ir::Tensor::from_bytes(TensorType::new(from, vec![n]), nanoc_ir::Bytes::from_vec(bytes.clone()))
            .unwrap();
        let want = nanoc_ir::interp::run(&g, &[t]).unwrap().remove(0).bytes().to_vec();
        let target = Target::find("cpu-x86_64").unwrap();
        let mut m = JitModel::new(compile(&g, &target, true).unwrap()).unwrap();
        (m.run(&[&bytes]).unwrap().remove(0), want)
    }

    fn assert_same_bits_16(got: &[u8], want: &[u8], nan: impl Fn(u16) -> bool, what: &str) {
        for (i, (g, w)) in got.chunks_exact(2).zip(want.chunks_exact(2)).enumerate() {
            let (g, w) = (u16::from_le_bytes([g[0], g[1]]), u16::from_le_bytes([w[0], w[1]]));
            assert!(g == w || (nan(g) && nan(w)), "{what} element {i}: got {g:#06x} want {w:#06x}");
        }
    }

    #[test]
    fn half_conversions_match_the_half_crate() {
        // Every f16 and bf16 bit pattern to f32.
        let all: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
        for from in [DType::F16, DType::BF16] {
            let (got, want) = cast_both(from, DType::F32, 65536, all.clone());
            for (g, w) in got.chunks_exact(4).zip(want.chunks_exact(4)) {
                let (g, w) =
                    (f32::from_le_bytes([g[0], g[1], g[2], g[3]]), f32::from_le_bytes([w[0], w[1], w[2], w[3]]));
                assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "{from}: {g} vs {w}");
            }
        }
        // f32 to f16/bf16: every f16 value, the midpoints between neighbours
        // (ties round to even), and values around the subnormal and overflow
        // thresholds.
        let mut xs: Vec<f32> = Vec::new();
        for h in 0..=u16::MAX {
            let a = f16_bits_to_f32(h);
            let b = f16_bits_to_f32(h.wrapping_add(1));
            xs.push(a);
            if a.is_finite() && b.is_finite() {
                xs.push(a + (b - a) / 2.0);
                xs.push(a + (b - a) * 0.49);
            }
        }
        xs.extend([65504.0, 65519.0, 65520.0, 1e6, -1e6, f32::INFINITY, f32::NAN, 1e-8, 3e-8, 6e-8, -5.96e-8]);
        let bytes: Vec<u8> = xs.iter().flat_map(|v| v.to_le_bytes()).collect();
        let (got, want) = cast_both(DType::F32, DType::F16, xs.len(), bytes.clone());
        assert_same_bits_16(&got, &want, |h| h & 0x7c00 == 0x7c00 && h & 0x3ff != 0, "f32->f16");
        let (got, want) = cast_both(DType::F32, DType::BF16, xs.len(), bytes);
        assert_same_bits_16(&got, &want, |h| h & 0x7f80 == 0x7f80 && h & 0x7f != 0, "f32->bf16");
    }

    /// f16 bits to f32 in plain Rust (exact; for building test inputs).
    fn f16_bits_to_f32(h: u16) -> f32 {
        let (s, e, m) = ((h >> 15) as i32, ((h >> 10) & 0x1f) as i32, (h & 0x3ff) as f32);
        let v = match e {
            0 => m * 2f32.powi(-24),
            31 => {
                if m == 0.0 {
                    f32::INFINITY
                } else {
                    f32::NAN
                }
            }
            _ => (1.0 + m / 1024.0) * 2f32.powi(e - 15),
        };
        if s == 1 { -v } else { v }
    }
}
