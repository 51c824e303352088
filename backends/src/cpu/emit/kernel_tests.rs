//! Kernels checked against the reference interpreter: each case builds a
//! one-op graph, runs it with `nanoc_ir::interp` and through the JIT, and
//! compares (bit-exact for integers and copies, 1e-5 relative for float
//! arithmetic); it also compiles the graph for a bundle, which must be
//! relocation-free. Covers scans, selection, indexing, padding,
//! transposed convolution and attention, including out-of-range indices
//! (status 1).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::cpu::{compile, jit::JitModel};
use nanoc_ir::{DType, Graph, Op, PadMode, ScatterReduction, Tensor, Window};
use nanoc_targets::Target;

pub(super) fn target() -> Target {
    Target::find(&format!("cpu-{}", std::env::consts::ARCH)).unwrap()
}

/// A graph computing `op` on `args` (in operand order); those at positions
/// `const_at` are constants, the rest graph inputs.
pub(super) fn graph(op: Op, args: &[&Tensor], const_at: &[usize]) -> Graph {
    let mut g = Graph::new("t");
    let ids: Vec<_> = args
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if const_at.contains(&i) {
                g.add_const(format!("c{i}"), (*t).clone())
            } else {
                g.add_input(format!("in{i}"), t.ty().clone())
            }
        })
        .collect();
    let y = g.add_op("y", op, &ids).unwrap();
    g.add_output("y", y);
    nanoc_ir::verify::verify(&g).unwrap();
    g
}

/// The graph inputs among `args`.
pub(super) fn runtime_args<'a>(args: &[&'a Tensor], const_at: &[usize]) -> Vec<&'a Tensor> {
    args.iter().enumerate().filter(|(i, _)| !const_at.contains(i)).map(|(_, t)| *t).collect()
}

/// Runs the graph through the JIT; `Err` carries the run error text.
pub(super) fn jit(g: &Graph, inputs: &[&Tensor]) -> Result<Tensor, String> {
    let prog = compile(g, &target(), true).map_err(|e| e.to_string())?;
    let ty = prog.outputs[0].ty.clone();
    let mut m = JitModel::new(prog).map_err(|e| e.to_string())?;
    let bytes: Vec<&[u8]> = inputs.iter().map(|t| t.bytes()).collect();
    let out = m.run(&bytes).map_err(|e| e.to_string())?;
    Tensor::from_bytes(ty, nanoc_ir::Bytes::from_vec(out.into_iter().next().unwrap())).map_err(|e| e.to_string())
}

/// [`check_with`] for graph inputs `inputs` followed by constants `consts`.
fn check(op: Op, inputs: &[&Tensor], consts: &[&Tensor]) -> Tensor {
    let args: Vec<&Tensor> = inputs.iter().chain(consts).copied().collect();
    let const_at: Vec<usize> = (inputs.len()..args.len()).collect();
    check_with(op, &args, &const_at)
}

/// Interpreter and JIT agree on `op`; the bundle code has no relocations.
fn check_with(op: Op, args: &[&Tensor], const_at: &[usize]) -> Tensor {
    let g = graph(op.clone(), args, const_at);
    let inputs = runtime_args(args, const_at);
    let owned: Vec<Tensor> = inputs.iter().map(|t| (*t).clone()).collect();
    let want = nanoc_ir::interp::run(&g, &owned).unwrap().remove(0);
    let got = jit(&g, &inputs).unwrap();
    assert_eq!(got.ty(), want.ty(), "{op:?}");
    if want.dtype() == DType::F32 {
        let (a, b) = (got.to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            let ok = (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-5 * (1.0 + y.abs());
            assert!(ok, "{op:?}: element {i}: jit {x} vs interp {y}");
        }
    } else {
        assert_eq!(got.bytes(), want.bytes(), "{op:?}");
    }
    let prog = compile(&g, &target(), false).unwrap();
    prog.machine_code().unwrap();
    want
}

/// The JIT run fails with an out-of-range status (and the interpreter errs too).
fn check_out_of_range(op: Op, inputs: &[&Tensor], consts: &[&Tensor]) {
    let args: Vec<&Tensor> = inputs.iter().chain(consts).copied().collect();
    let const_at: Vec<usize> = (inputs.len()..args.len()).collect();
    let g = graph(op.clone(), &args, &const_at);
    let owned: Vec<Tensor> = inputs.iter().map(|t| (*t).clone()).collect();
    assert!(nanoc_ir::interp::run(&g, &owned).is_err(), "{op:?}");
    let e = jit(&g, inputs).unwrap_err();
    assert!(e.contains("index out of range"), "{op:?}: {e}");
}

fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_vec(shape.to_vec(), v.to_vec()).unwrap()
}

fn i64s(shape: &[usize], v: &[i64]) -> Tensor {
    Tensor::from_vec(shape.to_vec(), v.to_vec()).unwrap()
}

/// Deterministic values in [-2, 2) with a few repeats (for ties).
fn ramp(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed;
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 60) as f32) / 4.0 - 2.0
        })
        .collect();
    f32s(shape, &v)
}

#[test]
fn cumsum_kernels() {
    let x = ramp(&[2, 5, 3], 1);
    for axis in 0..3 {
        for (exclusive, reverse) in [(false, false), (true, false), (false, true), (true, true)] {
            check(Op::CumSum { axis, exclusive, reverse }, &[&x], &[]);
        }
    }
    let i = Tensor::from_vec(vec![4], vec![i32::MAX, 1, -5, 7]).unwrap();
    let y = check(Op::CumSum { axis: 0, exclusive: false, reverse: false }, &[&i], &[]);
    assert_eq!(y.to_vec::<i32>().unwrap(), vec![i32::MAX, i32::MIN, i32::MIN.wrapping_sub(5), i32::MIN + 2]);
    check(Op::CumSum { axis: 0, exclusive: true, reverse: true }, &[&i64s(&[3], &[1, 2, 3])], &[]);
}

#[test]
fn arg_max_and_min_kernels() {
    let mut v = ramp(&[3, 4, 5], 2).to_vec::<f32>().unwrap();
    v[7] = f32::NAN;
    v[31] = f32::NAN;
    v[33] = f32::NAN;
    let x = f32s(&[3, 4, 5], &v);
    for max in [true, false] {
        for axis in 0..3 {
            for (keep_dims, select_last) in [(false, false), (true, true), (false, true)] {
                check(Op::ArgReduce { max, axis, keep_dims, select_last }, &[&x], &[]);
            }
        }
    }
    let i = i64s(&[2, 3], &[5, -1, 5, 0, 0, -9]);
    let y = check(Op::ArgReduce { max: true, axis: 1, keep_dims: false, select_last: true }, &[&i], &[]);
    assert_eq!(y.to_vec::<i64>().unwrap(), vec![2, 1]);
    let u = Tensor::from_vec(vec![3], vec![200u8, 7, 255]).unwrap();
    let y = check(Op::ArgReduce { max: false, axis: 0, keep_dims: false, select_last: false }, &[&u], &[]);
    assert_eq!(y.to_vec::<i64>().unwrap(), vec![1]);
}

#[test]
fn top_k_kernels() {
    let mut v = ramp(&[3, 7, 2], 3).to_vec::<f32>().unwrap();
    v[4] = f32::NAN;
    v[9] = f32::NAN;
    let x = f32s(&[3, 7, 2], &v);
    for largest in [true, false] {
        for (axis, k) in [(1, 7), (1, 3), (0, 2), (2, 1), (1, 0)] {
            check(Op::TopK { axis, k, largest }, &[&x], &[]);
        }
    }
    let i = Tensor::from_vec(vec![6], vec![3i32, -1, 3, 8, -1, 0]).unwrap();
    let y = check(Op::TopK { axis: 0, k: 4, largest: false }, &[&i], &[]);
    assert_eq!(y.to_vec::<i64>().unwrap(), vec![1, 4, 5, 0]);
}

#[test]
fn gather_elements_kernels() {
    let data = ramp(&[3, 4], 4);
    let idx = i64s(&[2, 4], &[0, 2, -1, 1, 2, 0, 1, -3]);
    check(Op::GatherElements { axis: 0 }, &[&data, &idx], &[]);
    let idx32 = Tensor::from_vec(vec![3, 2], vec![3i32, 0, -4, 1, 2, 2]).unwrap();
    check(Op::GatherElements { axis: 1 }, &[&data], &[&idx32]);
    let bad = i64s(&[1, 1], &[3]);
    check_out_of_range(Op::GatherElements { axis: 0 }, &[&data, &bad], &[]);
    let bad = i64s(&[1, 1], &[-5]);
    check_out_of_range(Op::GatherElements { axis: 1 }, &[&data, &bad], &[]);
}

#[test]
fn gather_nd_kernels() {
    let data = ramp(&[2, 3, 4], 5);
    check(Op::GatherNd { batch_dims: 0 }, &[&data, &i64s(&[2, 2], &[1, 2, 0, -1])], &[]);
    check(Op::GatherNd { batch_dims: 0 }, &[&data, &i64s(&[2, 1, 3], &[1, 2, 3, 0, 0, -4])], &[]);
    check(Op::GatherNd { batch_dims: 0 }, &[&data, &i64s(&[1], &[1])], &[]);
    check(Op::GatherNd { batch_dims: 1 }, &[&data, &i64s(&[2, 2, 1], &[2, 0, 1, 1])], &[]);
    check(Op::GatherNd { batch_dims: 2 }, &[&data, &i64s(&[2, 3, 1], &[0, 1, 2, 3, -1, -4])], &[]);
    check_out_of_range(Op::GatherNd { batch_dims: 0 }, &[&data, &i64s(&[1, 2], &[1, 3])], &[]);
    check_out_of_range(Op::GatherNd { batch_dims: 1 }, &[&data, &i64s(&[2, 1], &[0, -4])], &[]);
}

#[test]
fn scatter_nd_kernels() {
    let data = ramp(&[4, 3], 6);
    let rows = ramp(&[2, 3], 7);
    let idx = i64s(&[2, 1], &[3, -4]);
    for reduction in ScatterReduction::ALL {
        // Runtime indices and constant indices.
        check(Op::ScatterNd { reduction }, &[&data, &idx, &rows], &[]);
        check_with(Op::ScatterNd { reduction }, &[&data, &idx, &rows], &[1]);
    }
    // Element updates with a repeated index, applied in order.
    let elems = i64s(&[3, 2], &[0, 1, 3, 2, 0, 1]);
    let upd = f32s(&[3], &[10.0, 20.0, 30.0]);
    for reduction in ScatterReduction::ALL {
        check(Op::ScatterNd { reduction }, &[&data, &elems, &upd], &[]);
    }
    let ints = i64s(&[4], &[1, 2, 3, 4]);
    let y = check(
        Op::ScatterNd { reduction: ScatterReduction::Mul },
        &[&ints, &i64s(&[2, 1], &[2, 2]), &i64s(&[2], &[5, -1])],
        &[],
    );
    assert_eq!(y.to_vec::<i64>().unwrap(), vec![1, 2, -15, 4]);
    let one_row = ramp(&[1, 3], 8);
    check_out_of_range(
        Op::ScatterNd { reduction: ScatterReduction::None },
        &[&data, &i64s(&[1, 1], &[4]), &one_row],
        &[],
    );
    check_out_of_range(
        Op::ScatterNd { reduction: ScatterReduction::Add },
        &[&data, &i64s(&[1, 1], &[-5]), &one_row],
        &[],
    );
}

#[test]
fn pad_kernels() {
    let x = ramp(&[2, 3, 4], 9);
    let nine = Tensor::scalar(9.0f32);
    for mode in PadMode::ALL {
        for (b, e) in [([0, 1, 2], [1, 0, 3]), ([1, 2, 0], [0, 2, 1]), ([0, 0, 0], [0, 0, 0])] {
            let op = Op::Pad { mode, pads_begin: b.to_vec(), pads_end: e.to_vec() };
            check(op.clone(), &[&x], &[]);
            if mode == PadMode::Constant {
                check(op.clone(), &[&x, &nine], &[]);
                check(op, &[&x], &[&nine]);
            }
        }
    }
    let i = i64s(&[2, 2], &[1, 2, 3, 4]);
    let op = Op::Pad { mode: PadMode::Reflect, pads_begin: vec![1, 1], pads_end: vec![1, 0] };
    let y = check(op, &[&i], &[]);
    assert_eq!(y.to_vec::<i64>().unwrap(), vec![4, 3, 4, 2, 1, 2, 4, 3, 4, 2, 1, 2]);
    let b = Tensor::from_vec(vec![3], vec![true, false, true]).unwrap();
    check(Op::Pad { mode: PadMode::Wrap, pads_begin: vec![2], pads_end: vec![3] }, &[&b], &[]);
    let empty = f32s(&[0, 2], &[]);
    let op = Op::Pad { mode: PadMode::Constant, pads_begin: vec![1, 0], pads_end: vec![1, 1] };
    let y = check(op, &[&empty], &[&nine]);
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![9.0; 6]);
}

fn window(kernel: &[usize], strides: &[usize], pb: &[usize], pe: &[usize], dil: &[usize]) -> Window {
    Window {
        kernel: kernel.to_vec(),
        strides: strides.to_vec(),
        pads_begin: pb.to_vec(),
        pads_end: pe.to_vec(),
        dilations: dil.to_vec(),
    }
}

#[test]
fn conv_transpose_kernels() {
    // 1-D: stride 3 (not a power of two), dilation 2, pads, output padding, bias.
    let x = ramp(&[2, 2, 5], 10);
    let w = ramp(&[2, 3, 3], 11);
    let b = ramp(&[3], 12);
    let op = Op::ConvTranspose { window: window(&[3], &[3], &[1], &[2], &[2]), group: 1, output_padding: vec![1] };
    check(op, &[&x], &[&w, &b]);
    let op = Op::ConvTranspose { window: window(&[3], &[1], &[0], &[0], &[1]), group: 1, output_padding: vec![0] };
    check(op, &[&x, &w], &[]);
    // 2-D: stride 2, groups 2, asymmetric pads, output padding on one dim.
    let x = ramp(&[1, 4, 3, 4], 13);
    let w = ramp(&[4, 3, 3, 2], 14);
    let b = ramp(&[6], 15);
    let op = Op::ConvTranspose {
        window: window(&[3, 2], &[2, 2], &[1, 0], &[0, 1], &[1, 1]),
        group: 2,
        output_padding: vec![1, 0],
    };
    check(op, &[&x], &[&w, &b]);
    let op = Op::ConvTranspose {
        window: window(&[3, 2], &[4, 1], &[2, 1], &[2, 0], &[1, 3]),
        group: 4,
        output_padding: vec![3, 2],
    };
    check(op, &[&x, &ramp(&[4, 1, 3, 2], 16)], &[]);
}

#[test]
fn rms_norm_kernels() {
    // Odd row lengths and row counts, scale of the normalised dims or broadcast, no scale.
    for (shape, axis) in [(vec![1usize, 1], 1), (vec![3, 7], 1), (vec![2, 17], 1), (vec![5, 33], 1), (vec![2, 3, 7], 1)]
    {
        let x = ramp(&shape, 7 + shape.len() as u64);
        let norm = shape[axis..].to_vec();
        check(Op::RmsNorm { axis, epsilon: 1e-6 }, &[&x, &ramp(&norm, 3)], &[]);
        check(Op::RmsNorm { axis, epsilon: 1e-5 }, &[&x], &[]);
        let last = vec![*norm.last().unwrap()];
        check(Op::RmsNorm { axis, epsilon: 0.25 }, &[&x], &[&ramp(&last, 5)]);
    }
    // A zero row stays zero.
    let y = check(Op::RmsNorm { axis: 1, epsilon: 1e-6 }, &[&f32s(&[1, 7], &[0.0; 7])], &[]);
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![0.0; 7]);
}

#[test]
fn silu_kernels() {
    for shape in [vec![1usize], vec![7], vec![17, 3], vec![33]] {
        check(Op::Unary(nanoc_ir::UnaryOp::Silu), &[&ramp(&shape, 11)], &[]);
    }
    let big = f32s(&[5], &[-100.0, -20.0, 0.0, 20.0, 100.0]);
    check(Op::Unary(nanoc_ir::UnaryOp::Silu), &[&big], &[]);
}

/// Smooth pseudo-random values in [-1, 1) (attention scores stay moderate).
fn smooth(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    f32s(shape, &v)
}

#[test]
fn attention_kernels() {
    // (batch, heads, kv heads, Sq, Sk, D, Dv): odd sizes, GQA 4:1, MQA, Sq < Sk and Sq > Sk.
    let shapes = [
        (1, 2, 2, 1, 33, 8, 8),
        (2, 4, 1, 7, 33, 5, 3),
        (1, 4, 2, 17, 1, 8, 5),
        (1, 8, 2, 7, 17, 5, 8),
        (2, 3, 3, 17, 7, 8, 1),
    ];
    for (seed, &(b, h, hkv, sq, sk, d, dv)) in shapes.iter().enumerate() {
        let seed = seed as u64 * 10;
        let q = smooth(&[b, h, sq, d], seed + 1);
        let k = smooth(&[b, hkv, sk, d], seed + 2);
        let v = smooth(&[b, hkv, sk, dv], seed + 3);
        // An additive mask broadcast over batch and heads, with some -inf
        // (row 0 fully masked when Sk = 1), and one per (batch, head).
        let mask: Vec<f32> =
            (0..sq * sk).map(|i| if i % 3 == 0 { f32::NEG_INFINITY } else { (i % 5) as f32 * 0.25 }).collect();
        let mask = f32s(&[sq, sk], &mask);
        let full = smooth(&[b, h, sq, sk], seed + 4);
        for causal in [false, true] {
            let op = Op::Attention { scale: 1.0 / (d as f32).sqrt(), causal };
            check(op.clone(), &[&q, &k, &v], &[]);
            check(op.clone(), &[&q, &k, &v, &mask], &[]);
            check(op, &[&q, &k, &v], &[&full]);
        }
    }
    // A fully masked row gives zeros in both.
    let q = smooth(&[1, 1, 2, 5], 1);
    let k = smooth(&[1, 1, 3, 5], 2);
    let v = smooth(&[1, 1, 3, 4], 3);
    let mask = f32s(&[2, 1], &[f32::NEG_INFINITY, 0.0]);
    let y = check(Op::Attention { scale: 0.5, causal: false }, &[&q, &k, &v], &[&mask]);
    assert_eq!(&y.to_vec::<f32>().unwrap()[..4], &[0.0; 4]);
}

/// A program from `(op, args)` steps.
fn program(steps: Vec<(Op, Vec<nanoc_ir::Arg>)>) -> nanoc_ir::Program {
    nanoc_ir::Program { steps: steps.into_iter().map(|(op, args)| nanoc_ir::Step { op, args }).collect() }
}

#[test]
fn fused_elementwise_kernels() {
    use nanoc_ir::Arg::{Operand as X, Step as T};
    use nanoc_ir::{BinaryOp, UnaryOp};
    // silu(x) · y + bias, ReLU6, with broadcast operands of odd extents.
    let body = program(vec![
        (Op::Unary(UnaryOp::Sigmoid), vec![X(0)]),
        (Op::Binary(BinaryOp::Mul), vec![X(0), T(0)]),
        (Op::Binary(BinaryOp::Mul), vec![T(1), X(1)]),
        (Op::Binary(BinaryOp::Add), vec![T(2), X(2)]),
        (Op::Clip { min: 0.0, max: 6.0 }, vec![T(3)]),
    ]);
    for (x, y, b) in [
        (vec![1usize], vec![1usize], vec![1usize]),
        (vec![7], vec![7], vec![1]),
        (vec![3, 17], vec![17], vec![3, 1]),
        (vec![2, 5, 33], vec![5, 1], vec![33]),
    ] {
        check(Op::Fused { body: body.clone() }, &[&ramp(&x, 1), &ramp(&y, 2)], &[&ramp(&b, 3)]);
    }
    // Compare, select, cast and integer arithmetic in one program.
    let body = program(vec![
        (Op::Binary(BinaryOp::Greater), vec![X(0), X(1)]),
        (Op::Where, vec![T(0), X(0), X(1)]),
        (Op::Cast { to: DType::I32 }, vec![T(1)]),
        (Op::Binary(BinaryOp::Mul), vec![T(2), T(2)]),
        (Op::Cast { to: DType::F32 }, vec![T(3)]),
        (Op::Unary(UnaryOp::Neg), vec![T(4)]),
    ]);
    let (a, b) = (ramp(&[3, 17], 4).to_vec::<f32>().unwrap(), ramp(&[17], 5).to_vec::<f32>().unwrap());
    let scaled = |v: Vec<f32>, s: &[usize]| f32s(s, &v.iter().map(|x| x * 7.0).collect::<Vec<_>>());
    check(Op::Fused { body }, &[&scaled(a, &[3, 17]), &scaled(b, &[17])], &[]);
}

#[test]
fn matmul_epilogue_kernels() {
    use nanoc_ir::Arg::{Operand as X, Step as T};
    use nanoc_ir::{BinaryOp, UnaryOp};
    // Bias, GELU, residual and scale on odd shapes, with a batch dim b broadcasts over.
    let body = program(vec![
        (Op::Binary(BinaryOp::Add), vec![X(0), X(1)]),
        (Op::Unary(UnaryOp::Gelu), vec![T(0)]),
        (Op::Binary(BinaryOp::Add), vec![X(2), T(1)]),
        (Op::Binary(BinaryOp::Mul), vec![T(2), X(3)]),
    ]);
    for (m, k, n, batch) in
        [(1usize, 1usize, 1usize, vec![]), (3, 7, 17, vec![]), (5, 33, 7, vec![2]), (17, 3, 1, vec![3])]
    {
        let mut ad = batch.clone();
        ad.extend([m, k]);
        let mut out = batch.clone();
        out.extend([m, n]);
        let (a, b) = (ramp(&ad, 6), ramp(&[k, n], 7));
        check(
            Op::MatMulEpilogue { epilogue: body.clone() },
            &[&a, &b, &ramp(&out, 8)],
            &[&ramp(&[n], 9), &f32s(&[], &[0.5])],
        );
    }
    // A mask select (bool operand) and an integer matmul with a ReLU-like max.
    let body = program(vec![(Op::Where, vec![X(1), X(0), X(2)])]);
    let mask = Tensor::from_vec(vec![7, 1], (0..7).map(|i| i % 3 == 0).collect::<Vec<_>>()).unwrap();
    check(
        Op::MatMulEpilogue { epilogue: body },
        &[&ramp(&[7, 5], 10), &ramp(&[5, 9], 11), &mask],
        &[&f32s(&[], &[-1e4])],
    );
    let body = program(vec![(Op::Binary(BinaryOp::Max), vec![X(0), X(1)])]);
    let ai = Tensor::from_vec(vec![3, 5], (0..15).map(|i| i as i32 - 7).collect::<Vec<_>>()).unwrap();
    let bi = Tensor::from_vec(vec![5, 2], (0..10).map(|i| 3 - i as i32).collect::<Vec<_>>()).unwrap();
    check(Op::MatMulEpilogue { epilogue: body }, &[&ai, &bi], &[&Tensor::scalar(0i32)]);
}
