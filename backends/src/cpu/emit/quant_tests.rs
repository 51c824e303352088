//! The quantised matmul kernels against the reference interpreter on odd
//! shapes (M 1/7/17, K 33/100, N 1/17): `qmatmul` in every form, i8 and
//! u8, per-tensor and per-column parameters; `qmatmul_block` at 2, 4 and 8
//! bits, with and without zero points, K a multiple of the block or not;
//! and the 2:4-sparse `sparse_matmul` (indices above 3 included: only
//! their low two bits count). Integer forms must agree bit for bit (the
//! kernel and the interpreter do the same i32 and f32 arithmetic); the
//! weight-only form sums in f32 in the kernel and in f64 in the
//! interpreter, so it is compared within the f32 rounding of a K-term sum.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::kernel_tests::{graph, jit, runtime_args, target};
use crate::cpu::compile;
use nanoc_ir::{DType, Op, Tensor};

/// Deterministic pseudo-random integers in `[lo, hi]`.
fn ints(n: usize, lo: i64, hi: i64, seed: u64) -> Vec<i64> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + (s % (hi - lo + 1) as u64) as i64
        })
        .collect()
}

/// An i8 or u8 tensor of pseudo-random values over the dtype's range.
fn quantised(dt: DType, shape: &[usize], seed: u64) -> Tensor {
    let n = shape.iter().product();
    match dt {
        DType::U8 => Tensor::from_vec(shape.to_vec(), ints(n, 0, 255, seed).iter().map(|&v| v as u8).collect()),
        _ => Tensor::from_vec(shape.to_vec(), ints(n, -128, 127, seed).iter().map(|&v| v as i8).collect()),
    }
    .unwrap()
}

fn floats(shape: &[usize], lo: f32, hi: f32, seed: u64) -> Tensor {
    let n = shape.iter().product();
    let v = ints(n, 0, 1 << 20, seed).iter().map(|&i| lo + (hi - lo) * i as f32 / (1 << 20) as f32).collect();
    Tensor::from_vec(shape.to_vec(), v).unwrap()
}

/// Runs `qmatmul(args)` through the interpreter and the JIT (operands at
/// `const_at` are constants) and compares; the bundle code must be
/// relocation-free.
fn check(args: &[&Tensor], const_at: &[usize], k: usize) {
    check_op(Op::QMatMul, args, const_at, k);
}

/// [`check`] for any quantised matmul op; float results of the weight-only
/// ops are compared within the rounding of a K-term f32 sum.
fn check_op(op: Op, args: &[&Tensor], const_at: &[usize], k: usize) {
    let weight_only = args.len() == 4 && op == Op::QMatMul || matches!(op, Op::QMatMulBlock { .. } | Op::SparseMatMul);
    let g = graph(op, args, const_at);
    let inputs = runtime_args(args, const_at);
    let owned: Vec<Tensor> = inputs.iter().map(|t| (*t).clone()).collect();
    let want = nanoc_ir::interp::run(&g, &owned).unwrap().remove(0);
    let got = jit(&g, &inputs).unwrap();
    assert_eq!(got.ty(), want.ty());
    if weight_only {
        let (a, b) = (got.to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
        let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let tol = 4.0 * f32::EPSILON * k as f32 * scale;
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() <= tol, "{}: element {i}: jit {x} vs interp {y} (tolerance {tol})", got.ty());
        }
    } else {
        assert_eq!(got.bytes(), want.bytes(), "{} from {} operands", got.ty(), args.len());
    }
    compile(&g, &target(), false).unwrap().machine_code().unwrap();
}

/// Scale and zero point of the weights: per tensor or per column.
fn weight_params(dt: DType, n: usize, per_column: bool, seed: u64) -> (Tensor, Tensor) {
    let len = if per_column { n } else { 1 };
    let shape: &[usize] = if per_column { &[n] } else { &[] };
    let s = floats(shape, 0.005, 0.02, seed);
    let z = match dt {
        DType::U8 => Tensor::from_vec(shape.to_vec(), ints(len, 100, 150, seed + 1).iter().map(|&v| v as u8).collect()),
        _ => Tensor::from_vec(shape.to_vec(), ints(len, -10, 10, seed + 1).iter().map(|&v| v as i8).collect()),
    }
    .unwrap();
    (s, z)
}

#[test]
fn qmatmul_weight_only_kernels() {
    let mut seed = 1;
    for (m, k, n) in [(1, 33, 1), (7, 100, 17), (17, 33, 17), (1, 100, 17), (7, 33, 1)] {
        for dt in [DType::I8, DType::U8] {
            for per_column in [false, true] {
                seed += 10;
                let a = floats(&[m, k], -2.0, 2.0, seed);
                let b = quantised(dt, &[k, n], seed + 2);
                let (s, z) = weight_params(dt, n, per_column, seed + 3);
                check(&[&a, &b, &s, &z], &[1, 2, 3], k);
            }
        }
    }
    // Batched activations [2, 3, K].
    let a = floats(&[2, 3, 33], -1.0, 1.0, 99);
    let b = quantised(DType::I8, &[33, 17], 98);
    let (s, z) = weight_params(DType::I8, 17, true, 97);
    check(&[&a, &b, &s, &z], &[1, 2, 3], 33);
}

#[test]
fn qmatmul_integer_kernels() {
    let mut seed = 500;
    for (m, k, n) in [(1, 33, 1), (7, 100, 17), (17, 33, 17), (17, 100, 1)] {
        for (adt, bdt) in [(DType::U8, DType::I8), (DType::I8, DType::I8), (DType::U8, DType::U8)] {
            for per_column in [false, true] {
                seed += 10;
                let a = quantised(adt, &[m, k], seed);
                let sa = Tensor::scalar(0.02f32);
                let za = match adt {
                    DType::U8 => Tensor::scalar(128u8),
                    _ => Tensor::scalar(-3i8),
                };
                let b = quantised(bdt, &[k, n], seed + 2);
                let (sb, zb) = weight_params(bdt, n, per_column, seed + 3);
                // f32 result; the activation parameters as run-time inputs (dynamic quantisation).
                check(&[&a, &sa, &za, &b, &sb, &zb], &[3, 4, 5], k);
                // Requantised to u8 and i8.
                let (sy, zy_u8, zy_i8) = (Tensor::scalar(0.5f32), Tensor::scalar(120u8), Tensor::scalar(5i8));
                check(&[&a, &sa, &za, &b, &sb, &zb, &sy, &zy_u8], &[1, 2, 3, 4, 5, 6, 7], k);
                check(&[&a, &sa, &za, &b, &sb, &zb, &sy, &zy_i8], &[1, 2, 3, 4, 5, 6, 7], k);
            }
        }
    }
}

#[test]
fn qmatmul_block_kernels() {
    let mut seed = 900;
    for (m, k, n) in [(1, 33, 1), (7, 100, 17), (17, 33, 17), (1, 64, 17)] {
        for bits in [2, 4, 8] {
            for block in [16, 32] {
                for zero_points in [false, true] {
                    seed += 10;
                    let a = floats(&[m, k], -2.0, 2.0, seed);
                    let row_bytes = (k * bits).div_ceil(8);
                    let b = quantised(DType::U8, &[n, row_bytes], seed + 1);
                    let blocks = k.div_ceil(block);
                    let s = floats(&[n, blocks], 0.01, 0.1, seed + 2);
                    let top = (1i64 << bits) - 1;
                    let z: Vec<u8> = ints(n * blocks, 0, top, seed + 3).iter().map(|&v| v as u8).collect();
                    let z = Tensor::from_vec(vec![n, blocks], z).unwrap();
                    let op = Op::QMatMulBlock { bits, block };
                    if zero_points {
                        check_op(op, &[&a, &b, &s, &z], &[1, 2, 3], k);
                    } else {
                        check_op(op, &[&a, &b, &s], &[1, 2], k);
                    }
                }
            }
        }
    }
    // Batched activations and weights as run-time inputs.
    let a = floats(&[2, 3, 40], -1.0, 1.0, 7);
    let b = quantised(DType::U8, &[5, 20], 8);
    let s = floats(&[5, 3], 0.01, 0.1, 9);
    check_op(Op::QMatMulBlock { bits: 4, block: 16 }, &[&a, &b, &s], &[], 40);
}

#[test]
fn sparse_matmul_kernels() {
    let mut seed = 1300;
    for (m, k, n) in [(1, 32, 1), (7, 100, 17), (17, 36, 17), (1, 4, 17)] {
        seed += 10;
        let a = floats(&[m, k], -2.0, 2.0, seed);
        let values = floats(&[n, k / 2], -1.0, 1.0, seed + 1);
        let indices = quantised(DType::U8, &[n, k / 2], seed + 2);
        check_op(Op::SparseMatMul, &[&a, &values, &indices], &[1, 2], k);
    }
    let a = floats(&[2, 3, 8], -1.0, 1.0, 5);
    let values = floats(&[5, 4], -1.0, 1.0, 6);
    let indices = quantised(DType::U8, &[5, 4], 7);
    check_op(Op::SparseMatMul, &[&a, &values, &indices], &[], 8);
}
