//! Tests of the `.ngraph` printer and parser.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::parse::{OPS, op_def};
use super::print::attributes;
use super::*;
use crate::weights::Weights;
use crate::{
    Arg, BinaryOp, DType, Element, Graph, IrError, NodeId, Op, PadMode, Program, ReduceKind, ScatterReduction, Step,
    Tensor, TensorType, UnaryOp, Window,
};
use half::{bf16, f16};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

fn tt(d: DType, s: &[usize]) -> TensorType {
    TensorType::new(d, s.to_vec())
}

/// `n` distinct, exactly representable values of type `T`.
fn ramp<T: Element>(shape: &[usize], f: impl Fn(usize) -> T) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(shape.to_vec(), (0..n).map(f).collect()).unwrap()
}

fn window(kernel: &[usize], strides: &[usize], pads: &[usize], dilations: &[usize]) -> Window {
    Window {
        kernel: kernel.to_vec(),
        strides: strides.to_vec(),
        pads_begin: pads.to_vec(),
        pads_end: pads.to_vec(),
        dilations: dilations.to_vec(),
    }
}

/// A valid graph that uses every op variant (every unary, binary and reduce
/// kind), every dtype in inline and external constants, special floats
/// and names that need escapes.
fn every_op_graph() -> Graph {
    use DType::*;
    let mut g = Graph::new("every \"op\"\\graph");
    let x = g.add_input("x", tt(F32, &[2, 3]));
    let ids = g.add_input("ids", tt(I64, &[2]));
    let img = g.add_input("img", tt(F32, &[1, 2, 4, 4]));
    let cond = g.add_input("co\"nd\\\n\t;x", tt(Bool, &[2, 3]));

    // Inline constants (<= 16 elements), every dtype, special floats.
    let c3 = g.add_const("c3", Tensor::from_vec(vec![3], vec![1.0f32, -0.5, f32::INFINITY]).unwrap());
    g.add_const(
        "specials",
        Tensor::from_vec(vec![2, 3], vec![f32::NAN, f32::NEG_INFINITY, 1e-5, -0.0, f32::MIN_POSITIVE, f32::MAX])
            .unwrap(),
    );
    g.add_const("scalar", Tensor::scalar(0.1f32));
    g.add_const("empty", Tensor::from_vec(vec![0, 3], Vec::<f32>::new()).unwrap());
    let w34 = g.add_const("w34", ramp(&[3, 4], |i| i as f32 * 0.25 - 1.0));
    let h16 = g.add_const("h16", ramp(&[2, 3], |i| f16::from_f32(0.1 * i as f32 - 0.2)));
    g.add_const("b16", Tensor::from_vec(vec![3], vec![bf16::from_f32(0.3), bf16::MAX, bf16::NEG_INFINITY]).unwrap());
    let i8c = g.add_const("i8c", Tensor::from_vec(vec![2], vec![-128i8, 127]).unwrap());
    let u8c = g.add_const("u8c", Tensor::from_vec(vec![2], vec![0u8, 255]).unwrap());
    let idx32 = g.add_const("idx32", Tensor::from_vec(vec![2], vec![2i32, -1]).unwrap());
    g.add_const("i64c", Tensor::from_vec(vec![2], vec![i64::MIN, i64::MAX]).unwrap());
    g.add_const("boolc", Tensor::from_vec(vec![2, 3], vec![true, false, true, false, false, true]).unwrap());
    let scale = g.add_const("ln.scale", Tensor::from_vec(vec![3], vec![1.0f32, 2.0, 0.5]).unwrap());
    let bias = g.add_const("ln.bias", Tensor::from_vec(vec![3], vec![0.0f32, -1.0, 1.0]).unwrap());
    let convb = g.add_const("conv.bias", Tensor::from_vec(vec![3], vec![0.5f32, -0.5, 0.0]).unwrap());
    let gw = g.add_const("gconv.w", Tensor::from_vec(vec![2, 1, 1, 1], vec![2.0f32, -3.0]).unwrap());

    // External constants (> 16 elements), every dtype.
    let w45 = g.add_const("w45", ramp(&[4, 5], |i| i as f32 / 8.0));
    let emb = g.add_const("emb", ramp(&[6, 3], |i| -(i as f32)));
    let convw = g.add_const("conv.w", ramp(&[3, 2, 3, 3], |i| (i % 7) as f32 - 3.0));
    g.add_const("h16big", ramp(&[17], |i| f16::from_f32(i as f32 * 0.5)));
    g.add_const("b16big", ramp(&[4, 5], |i| bf16::from_f32(i as f32 * -0.25)));
    g.add_const("i8big", ramp(&[17], |i| i as i8 - 8));
    g.add_const("u8big", ramp(&[17], |i| (i * 15) as u8));
    g.add_const("i32big", ramp(&[17], |i| i as i32 * 1000 - 7000));
    g.add_const("i64big", ramp(&[17], |i| (i as i64) << 40));
    g.add_const("boolbig", ramp(&[17], |i| i % 3 == 0));

    let op = |g: &mut Graph, name: &str, op: Op, args: &[NodeId]| g.add_op(name, op, args).unwrap();
    for u in [
        UnaryOp::Neg,
        UnaryOp::Sqrt,
        UnaryOp::Reciprocal,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Erf,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Relu,
        UnaryOp::Gelu,
        UnaryOp::GeluTanh,
    ] {
        op(&mut g, Op::Unary(u).name(), Op::Unary(u), &[x]);
    }
    let neg = g.node_ids().into_iter().find(|&id| g.node(id).name == "neg").unwrap();
    let add = op(&mut g, "add", Op::Binary(BinaryOp::Add), &[x, c3]);
    op(&mut g, "sub", Op::Binary(BinaryOp::Sub), &[x, add]);
    op(&mut g, "mul", Op::Binary(BinaryOp::Mul), &[x, x]);
    op(&mut g, "div", Op::Binary(BinaryOp::Div), &[x, c3]);
    op(&mut g, "pow", Op::Binary(BinaryOp::Pow), &[x, c3]);
    let eq = op(&mut g, "equal", Op::Binary(BinaryOp::Equal), &[x, c3]);
    op(&mut g, "i8add", Op::Binary(BinaryOp::Add), &[i8c, i8c]);
    op(&mut g, "i32div", Op::Binary(BinaryOp::Div), &[idx32, idx32]);
    let clip = op(&mut g, "clip", Op::Clip { min: f32::NEG_INFINITY, max: 6.0 }, &[x]);
    op(&mut g, "clip_nan", Op::Clip { min: f32::NAN, max: f32::INFINITY }, &[clip]);
    let cast = op(&mut g, "cast", Op::Cast { to: F16 }, &[x]);
    op(&mut g, "h16add", Op::Binary(BinaryOp::Add), &[cast, h16]);
    op(&mut g, "u8cast", Op::Cast { to: F32 }, &[u8c]);
    op(&mut g, "where", Op::Where, &[cond, x, neg]);
    op(&mut g, "where2", Op::Where, &[eq, x, c3]);
    op(&mut g, "triu", Op::Trilu { upper: true, k: 0 }, &[x]);
    op(&mut g, "tril", Op::Trilu { upper: false, k: -1 }, &[x]);
    let mm = op(&mut g, "matmul", Op::MatMul, &[x, w34]);
    let logits = op(&mut g, "matmul2", Op::MatMul, &[mm, w45]);
    let conv_op = Op::Conv { window: window(&[3, 3], &[1, 1], &[1, 1], &[1, 1]), group: 1 };
    let conv = op(&mut g, "conv", conv_op, &[img, convw, convb]);
    let gconv = Op::Conv { window: window(&[1, 1], &[2, 1], &[0, 0], &[1, 1]), group: 2 };
    op(&mut g, "gconv", gconv, &[img, gw]);
    op(&mut g, "softmax", Op::Softmax { axis: 1 }, &[x]);
    op(&mut g, "layer_norm", Op::LayerNorm { axis: 1, epsilon: 1e-5 }, &[x, scale, bias]);
    op(&mut g, "layer_norm2", Op::LayerNorm { axis: 1, epsilon: 0.1 }, &[x, scale]);
    let rs = Op::Reduce { kind: ReduceKind::Sum, axes: vec![1], keep_dims: true };
    op(&mut g, "reduce_sum", rs, &[x]);
    let rm = Op::Reduce { kind: ReduceKind::Mean, axes: vec![0, 1], keep_dims: false };
    let mean = op(&mut g, "reduce_mean", rm, &[x]);
    let rx = Op::Reduce { kind: ReduceKind::Max, axes: vec![0], keep_dims: true };
    op(&mut g, "reduce_max", rx, &[x]);
    let mp = Op::MaxPool { window: window(&[2, 2], &[2, 2], &[0, 0], &[1, 1]) };
    op(&mut g, "max_pool", mp, &[conv]);
    let ap = Op::AvgPool { window: window(&[3, 3], &[1, 1], &[1, 1], &[1, 1]), count_include_pad: false };
    op(&mut g, "avg_pool", ap, &[img]);
    g.add_node("reshape", Op::Reshape, &[x], tt(F32, &[3, 2]));
    op(&mut g, "transpose", Op::Transpose { perm: vec![1, 0] }, &[x]);
    g.add_node("slice", Op::Slice { starts: vec![1, 2], steps: vec![1, -1] }, &[x], tt(F32, &[1, 3]));
    g.add_node("broadcast", Op::Broadcast, &[c3], tt(F32, &[2, 3]));
    op(&mut g, "concat", Op::Concat { axis: 0 }, &[x, x, neg]);
    let gather = op(&mut g, "gather", Op::Gather { axis: 0 }, &[emb, ids]);
    op(&mut g, "gather1", Op::Gather { axis: 1 }, &[x, idx32]);

    // Ops added after the first version: appended last so the numbering
    // of the nodes above stays as printed_form_is_stable pins it.
    for u in [UnaryOp::Abs, UnaryOp::Sign, UnaryOp::Floor, UnaryOp::Ceil, UnaryOp::Round, UnaryOp::Softplus] {
        op(&mut g, Op::Unary(u).name(), Op::Unary(u), &[x]);
    }
    op(&mut g, "not", Op::Unary(UnaryOp::Not), &[cond]);
    for b in [
        BinaryOp::Min,
        BinaryOp::Max,
        BinaryOp::Mod,
        BinaryOp::Rem,
        BinaryOp::Less,
        BinaryOp::Greater,
        BinaryOp::LessEqual,
        BinaryOp::GreaterEqual,
    ] {
        op(&mut g, Op::Binary(b).name(), Op::Binary(b), &[x, c3]);
    }
    op(&mut g, "and", Op::Binary(BinaryOp::And), &[cond, cond]);
    op(&mut g, "or", Op::Binary(BinaryOp::Or), &[cond, cond]);
    let q = op(&mut g, "quantize", Op::Quantize { axis: 1, block: 0, to: I8 }, &[x, scale]);
    op(&mut g, "dequantize", Op::Dequantize { axis: 1, block: 0 }, &[q, scale]);
    // Scans, selection, indexing, padding and transposed convolution.
    op(&mut g, "cumsum", Op::CumSum { axis: 1, exclusive: true, reverse: false }, &[x]);
    op(&mut g, "arg_max", Op::ArgReduce { max: true, axis: 1, keep_dims: false, select_last: false }, &[x]);
    op(&mut g, "arg_min", Op::ArgReduce { max: false, axis: 0, keep_dims: true, select_last: true }, &[x]);
    let top = op(&mut g, "top_k", Op::TopK { axis: 1, k: 2, largest: true }, &[x]);
    op(&mut g, "gather_elements", Op::GatherElements { axis: 1 }, &[x, top]);
    let tuples = g.add_const("nd.idx", Tensor::from_vec(vec![2, 1], vec![1i64, -2]).unwrap());
    op(&mut g, "gather_nd", Op::GatherNd { batch_dims: 0 }, &[x, tuples]);
    let rows = g.add_const("nd.rows", Tensor::from_vec(vec![2, 3], vec![1.0f32; 6]).unwrap());
    op(&mut g, "scatter_nd", Op::ScatterNd { reduction: ScatterReduction::Add }, &[x, tuples, rows]);
    let pad = Op::Pad { mode: PadMode::Constant, pads_begin: vec![0, 1], pads_end: vec![1, 0] };
    let fill = g.add_const("pad.value", Tensor::scalar(-1.0f32));
    op(&mut g, "pad", pad, &[x, fill]);
    let ct_w = g.add_const("ct.w", ramp(&[2, 1, 2, 2], |i| i as f32 - 4.0));
    let ct_b = g.add_const("ct.b", Tensor::from_vec(vec![2], vec![0.5f32, -0.5]).unwrap());
    let ct = Op::ConvTranspose {
        window: Window {
            kernel: vec![2, 2],
            strides: vec![2, 2],
            pads_begin: vec![1, 0],
            pads_end: vec![0, 1],
            dilations: vec![1, 1],
        },
        group: 2,
        output_padding: vec![1, 0],
    };
    op(&mut g, "conv_transpose", ct, &[img, ct_w, ct_b]);
    // RMSNorm and SiLU.
    op(&mut g, "rms_norm", Op::RmsNorm { axis: 1, epsilon: 1e-6 }, &[x, scale]);
    op(&mut g, "rms_norm_plain", Op::RmsNorm { axis: 0, epsilon: 0.5 }, &[x]);
    op(&mut g, "silu", Op::Unary(UnaryOp::Silu), &[x]);
    // Attention over q = img viewed as [1, 2, 4, 4] and a [4, 4] mask.
    let mask = g.add_const("attn.mask", ramp(&[4, 4], |i| if i % 5 == 1 { f32::NEG_INFINITY } else { 0.0 }));
    op(&mut g, "attention", Op::Attention { scale: 0.5, causal: true }, &[img, img, img, mask]);
    op(&mut g, "attention3", Op::Attention { scale: 1.0, causal: false }, &[img, img, img]);
    // Fused programs: an elementwise chain and a matmul with an epilogue.
    let body = Program {
        steps: vec![
            Step { op: Op::Unary(UnaryOp::Sigmoid), args: vec![Arg::Operand(0)] },
            Step { op: Op::Binary(BinaryOp::Mul), args: vec![Arg::Operand(0), Arg::Step(0)] },
            Step { op: Op::Clip { min: -1.5, max: 6.0 }, args: vec![Arg::Step(1)] },
            Step { op: Op::Binary(BinaryOp::Add), args: vec![Arg::Step(2), Arg::Operand(1)] },
        ],
    };
    op(&mut g, "fused", Op::Fused { body }, &[x, c3]);
    let epilogue = Program {
        steps: vec![
            Step { op: Op::Binary(BinaryOp::Add), args: vec![Arg::Operand(0), Arg::Operand(1)] },
            Step { op: Op::Unary(UnaryOp::Gelu), args: vec![Arg::Step(0)] },
        ],
    };
    let mm_bias = g.add_const("mm.bias", Tensor::from_vec(vec![4], vec![0.5f32, -0.5, 1.0, 0.0]).unwrap());
    op(&mut g, "matmul_epilogue", Op::MatMulEpilogue { epilogue }, &[x, w34, mm_bias]);
    // Quantised matmul (weight-only form, per-column parameters).
    let qw = g.add_const("qmm.w", Tensor::from_vec(vec![3, 2], vec![1i8, -2, 3, -4, 5, -6]).unwrap());
    let qs = g.add_const("qmm.s", Tensor::from_vec(vec![2], vec![0.5f32, 0.25]).unwrap());
    let qz = g.add_const("qmm.z", Tensor::from_vec(vec![2], vec![0i8, 1]).unwrap());
    op(&mut g, "qmatmul", Op::QMatMul, &[x, qw, qs, qz]);
    // Block-quantised matmul: 4-bit weights [N=2, K=3] packed in 2 bytes per row, blocks of 2.
    let bw = g.add_const("qmb.w", Tensor::from_vec(vec![2, 2], vec![0x1fu8, 0x0a, 0xe3, 0x07]).unwrap());
    let bs = g.add_const("qmb.s", Tensor::from_vec(vec![2, 2], vec![0.5f32, 0.25, 1.0, 2.0]).unwrap());
    op(&mut g, "qmatmul_block", Op::QMatMulBlock { bits: 4, block: 2 }, &[x, bw, bs]);
    // 2:4-sparse matmul: K = 4 (x [2, 3] is too narrow, so a [4]-vector input), N = 2.
    let sv = g.add_const("sp.values", Tensor::from_vec(vec![2, 2], vec![1.5f32, -2.0, 0.5, 4.0]).unwrap());
    let si = g.add_const("sp.indices", Tensor::from_vec(vec![2, 2], vec![0u8, 3, 1, 2]).unwrap());
    let v4 = g.add_const("sp.a", Tensor::from_vec(vec![4], vec![1.0f32, 2.0, 3.0, 4.0]).unwrap());
    op(&mut g, "sparse_matmul", Op::SparseMatMul, &[v4, sv, si]);
    g.add_output("logits", logits);
    g.add_output("gathered", gather);
    g.add_output("o\"ut\\", mean);
    g.add_output("logits_again", logits);
    crate::verify::verify(&g).unwrap();
    g
}

/// A fresh scratch directory under the system temp dir.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nanoc-ir-text-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn by_name(g: &Graph) -> HashMap<String, NodeId> {
    g.node_ids().into_iter().map(|id| (g.node(id).name.clone(), id)).collect()
}

#[test]
fn every_op_round_trips_with_external_weights() {
    let g = every_op_graph();
    let text = print(&g);
    let ext = external_weights(&g);
    let ext_names: Vec<&str> = ext.iter().map(|(n, _)| n).collect();
    assert_eq!(
        ext_names,
        ["b16big", "boolbig", "conv.w", "emb", "h16big", "i32big", "i64big", "i8big", "u8big", "w45"]
    );

    let dir = scratch("every_op");
    let path = dir.join("every_op.safetensors");
    ext.save_safetensors(&path).unwrap();
    let loaded = Weights::load_safetensors(&path).unwrap();
    assert_eq!(loaded, ext, "weights survive the safetensors round trip byte for byte");

    let parsed = parse(&text, "every_op.ngraph", Some(&loaded)).unwrap();
    assert_eq!(print(&parsed), text);
    assert_eq!(parsed.name, g.name);

    // Same nodes (by name), ops, types, operands and outputs.
    let (a, b) = (by_name(&g), by_name(&parsed));
    assert_eq!(a.len(), b.len());
    for (name, &ia) in &a {
        let (na, nb) = (g.node(ia), parsed.node(b[name]));
        assert_eq!(na.ty, nb.ty, "{name}");
        match (&na.op, &nb.op) {
            (Op::Const(ta), Op::Const(tb)) => assert_eq!(ta, tb, "{name}"),
            // Debug, not ==, so that NaN attributes compare equal.
            (oa, ob) => assert_eq!(format!("{oa:?}"), format!("{ob:?}"), "{name}"),
        }
        let args = |g: &Graph, id| g.args(id).into_iter().map(|x| g.node(x).name.clone()).collect::<Vec<_>>();
        assert_eq!(args(&g, ia), args(&parsed, b[name]), "{name}");
    }
    let outs = |g: &Graph| g.outputs().iter().map(|(n, id)| (n.clone(), g.node(*id).name.clone())).collect::<Vec<_>>();
    assert_eq!(outs(&g), outs(&parsed));
    assert_eq!(
        parsed.inputs().iter().map(|&i| parsed.node(i).name.clone()).collect::<Vec<_>>(),
        ["x", "ids", "img", "co\"nd\\\n\t;x"]
    );

    // External constants are the loaded weights themselves: windows into
    // the mapped file, not copies.
    for (name, t) in loaded.iter() {
        let Op::Const(pt) = &parsed.node(b[name]).op else { panic!("{name} is not a constant") };
        assert_eq!(pt.bytes().as_ptr(), t.bytes().as_ptr(), "{name} was copied");
    }
    drop(parsed);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn printed_form_is_stable() {
    let text = print(&every_op_graph());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], r#"graph "every \"op\"\\graph" {"#);
    for want in [
        r#"  %0 = input "x" : f32[2,3]"#,
        r#"  %3 = input "co\"nd\\\n\t;x" : bool[2,3]"#,
        r#"  w0 = const "c3" : f32[3] = [1.0, -0.5, inf]"#,
        r#"  w1 = const "specials" : f32[2,3] = [NaN, -inf, 1e-5, -0.0, 1.1754944e-38, 3.4028235e38]"#,
        r#"  w2 = const "scalar" : f32[] = [0.1]"#,
        r#"  w3 = const "empty" : f32[0,3] = []"#,
        r#"  w5 = const "h16" : f16[2,3] = [-0.19995117, -0.099975586, 0.0, 0.099975586, 0.19995117, 0.30004883]"#,
        r#"  w6 = const "b16" : bf16[3] = [0.30078125, 3.3895314e38, -inf]"#,
        r#"  w7 = const "i8c" : i8[2] = [-128, 127]"#,
        r#"  w10 = const "i64c" : i64[2] = [-9223372036854775808, 9223372036854775807]"#,
        r#"  w11 = const "boolc" : bool[2,3] = [true, false, true, false, false, true]"#,
        r#"  w16 = const "w45" : f32[4,5] @external"#,
        r#"  %4 = neg(%0) "neg" : f32[2,3]"#,
        r#"  %15 = add(%0, w0) "add" : f32[2,3]"#,
        r#"  %23 = clip{min=-inf, max=6.0}(%0) "clip" : f32[2,3]"#,
        r#"  %24 = clip{min=NaN, max=inf}(%23) "clip_nan" : f32[2,3]"#,
        r#"  %25 = cast{to=f16}(%0) "cast" : f16[2,3]"#,
        r#"  %28 = where(%3, %0, %4) "where" : f32[2,3]"#,
        r#"  %31 = trilu{upper=false, k=-1}(%0) "tril" : f32[2,3]"#,
        r#"  %34 = conv{kernel=[3, 3], strides=[1, 1], pads_begin=[1, 1], pads_end=[1, 1], dilations=[1, 1], group=1}(%2, w18, w14) "conv" : f32[1,3,4,4]"#,
        r#"  %37 = layer_norm{axis=1, epsilon=1e-5}(%0, w12, w13) "layer_norm" : f32[2,3]"#,
        r#"  %40 = reduce_mean{axes=[0, 1], keep_dims=false}(%0) "reduce_mean" : f32[]"#,
        r#"  %43 = avg_pool{kernel=[3, 3], strides=[1, 1], pads_begin=[1, 1], pads_end=[1, 1], dilations=[1, 1], count_include_pad=false}(%2) "avg_pool" : f32[1,2,4,4]"#,
        r#"  %46 = slice{starts=[1, 2], steps=[1, -1]}(%0) "slice" : f32[1,3]"#,
        r#"  %49 = gather{axis=0}(w17, %1) "gather" : f32[2,3]"#,
        r#"  output "o\"ut\\" = %40"#,
    ] {
        assert!(lines.contains(&want), "missing line {want}\nin\n{text}");
    }
    assert_eq!(lines[lines.len() - 2], r#"  output "logits_again" = %33"#);
    assert_eq!(lines[lines.len() - 1], "}");
    assert!(text.ends_with("}\n"));
}

/// Every op variant: `Op::name` of each appears in the every-op graph and
/// is parseable, and the parser's table has nothing else.
#[test]
fn op_table_covers_every_op_name() {
    // Exhaustive on purpose: a new variant fails to compile here until it
    // is counted (and then the count below catches a missing graph node).
    fn variants(op: &Op) -> usize {
        match op {
            Op::Input | Op::Const(_) => 1,
            Op::Unary(
                UnaryOp::Neg
                | UnaryOp::Sqrt
                | UnaryOp::Reciprocal
                | UnaryOp::Exp
                | UnaryOp::Log
                | UnaryOp::Erf
                | UnaryOp::Tanh
                | UnaryOp::Sigmoid
                | UnaryOp::Relu
                | UnaryOp::Gelu
                | UnaryOp::GeluTanh
                | UnaryOp::Abs
                | UnaryOp::Sign
                | UnaryOp::Floor
                | UnaryOp::Ceil
                | UnaryOp::Round
                | UnaryOp::Softplus
                | UnaryOp::Silu
                | UnaryOp::Not,
            ) => 2,
            Op::Binary(
                BinaryOp::Add
                | BinaryOp::Sub
                | BinaryOp::Mul
                | BinaryOp::Div
                | BinaryOp::Pow
                | BinaryOp::Equal
                | BinaryOp::Min
                | BinaryOp::Max
                | BinaryOp::Mod
                | BinaryOp::Rem
                | BinaryOp::Less
                | BinaryOp::Greater
                | BinaryOp::LessEqual
                | BinaryOp::GreaterEqual
                | BinaryOp::And
                | BinaryOp::Or,
            ) => 3,
            Op::Clip { .. } | Op::Cast { .. } | Op::Where | Op::Trilu { .. } | Op::MatMul | Op::Conv { .. } => 4,
            Op::Softmax { .. } | Op::LayerNorm { .. } | Op::RmsNorm { .. } => 5,
            Op::Reduce { kind: ReduceKind::Sum | ReduceKind::Mean | ReduceKind::Max, .. } => 6,
            Op::MaxPool { .. } | Op::AvgPool { .. } | Op::Reshape | Op::Transpose { .. } | Op::Slice { .. } => 7,
            Op::Broadcast | Op::Concat { .. } | Op::Gather { .. } => 8,
            Op::Dequantize { .. } | Op::Quantize { .. } => 9,
            Op::CumSum { .. } | Op::ArgReduce { max: true | false, .. } | Op::TopK { .. } => 10,
            Op::GatherElements { .. } | Op::GatherNd { .. } | Op::ScatterNd { .. } | Op::Pad { .. } => 11,
            Op::ConvTranspose { .. } => 12,
            Op::Attention { .. } => 13,
            Op::Fused { .. } | Op::MatMulEpilogue { .. } => 14,
            Op::QMatMul | Op::QMatMulBlock { .. } | Op::SparseMatMul => 15,
        }
    }
    // 38 variants of Op (arg_reduce has two names), 19 unary, 16 binary and 3 reduce kinds.
    const NAMES: usize = 38 - 3 + 1 + 19 + 16 + 3;

    let g = every_op_graph();
    let mut names = BTreeSet::new();
    for id in g.node_ids() {
        let op = &g.node(id).op;
        assert!(variants(op) > 0);
        names.insert(op.name());
        match op {
            Op::Input | Op::Const(_) => assert!(op_def(op.name()).is_none(), "{} has its own statement", op.name()),
            _ => {
                let def =
                    op_def(op.name()).unwrap_or_else(|| panic!("op `{}` is not in the parser's table", op.name()));
                let printed: Vec<&str> = attributes(op).into_iter().map(|(k, _)| k).collect();
                assert_eq!(def.attrs, printed.as_slice(), "attribute order of `{}`", op.name());
            }
        }
    }
    assert_eq!(names.len(), NAMES, "the every-op graph misses a variant: {names:?}");
    let table: BTreeSet<&str> = OPS.iter().map(|d| d.name).chain(["input", "const"]).collect();
    assert_eq!(table.len(), OPS.len() + 2, "duplicate names in the op table");
    assert_eq!(table, names);
}

const BASE: &str = r#"graph "t" {
  %0 = input "x" : f32[2,3]
  %1 = relu(%0) "r" : f32[2,3]
  output "y" = %1
}
"#;

/// `BASE` with line 3 replaced.
fn with_line3(line: &str) -> String {
    BASE.replace(r#"  %1 = relu(%0) "r" : f32[2,3]"#, line)
}

fn parse_err(src: &str, weights: Option<&Weights>) -> String {
    match parse(src, "t.ngraph", weights) {
        Ok(g) => panic!("parsed:\n{}", print(&g)),
        Err(e) => e.to_string(),
    }
}

#[test]
fn fused_program_errors_point_into_the_string() {
    let cases = [
        (r#"fused{body="relu(x0), frob(t0)"}(%0)"#, r#"t.ngraph:3:30: attribute `body` of `fused`: unknown op `frob`"#),
        (
            r#"fused{body="relu(y0)"}(%0)"#,
            "t.ngraph:3:25: attribute `body` of `fused`: expected an operand `x<N>` or a step `t<N>`, found `y0`",
        ),
        (
            r#"fused{body="relu(x0) neg(t0)"}(%0)"#,
            "t.ngraph:3:29: attribute `body` of `fused`: expected `,`, found `neg`",
        ),
        (
            r#"fused{body="relu(x1)"}(%0)"#,
            r#"t.ngraph:3:8: node "r" (fused): step t0: operand x1 does not exist (1 operands)"#,
        ),
        (r#"fused{body="relu(x0), neg(x0)"}(%0)"#, r#"t.ngraph:3:8: node "r" (fused): step t0 is not used"#),
        (r#"fused{body="neg(t0)"}(%0)"#, r#"t.ngraph:3:8: node "r" (fused): step t0: t0 is not an earlier step"#),
        (
            r#"fused{body="softmax{axis=0}(x0)"}(%0)"#,
            r#"t.ngraph:3:8: node "r" (fused): step t0: softmax cannot be fused"#,
        ),
        (
            r#"fused{body="add(x0, x1)"}(%0)"#,
            r#"t.ngraph:3:8: node "r" (fused): step t0: operand x1 does not exist (1 operands)"#,
        ),
        (
            r#"fused{body=relu}(%0)"#,
            r#"t.ngraph:3:19: attribute `body` of `fused`: expected a quoted program like "sigmoid(x0), mul(x0, t0)", found `relu`"#,
        ),
        (
            r#"matmul_epilogue{epilogue="relu(x0)"}(%0, %0)"#,
            r#"t.ngraph:3:8: node "r" (matmul_epilogue): matmul inner dims differ: [2,3] x [2,3]"#,
        ),
    ];
    for (op, want) in cases {
        let src = with_line3(&format!(r#"  %1 = {op} "r" : f32[2,3]"#));
        assert_eq!(parse_err(&src, None), want, "{op}");
    }
    // The printed form parses back to the same program.
    let src =
        with_line3(r#"  %1 = fused{body="sigmoid(x0), mul(x0, t0), clip{min=-1.0, max=6.0}(t1)"}(%0) "r" : f32[2,3]"#);
    let g = parse(&src, "t.ngraph", None).unwrap();
    assert_eq!(print(&g), src);
}

#[test]
fn base_parses() {
    let g = parse(BASE, "t.ngraph", None).unwrap();
    assert_eq!(print(&g), BASE);
}

#[test]
fn parse_errors_name_line_column_and_what_was_expected() {
    let cases: Vec<(String, &str)> = vec![
        (with_line3(r#"  %1 = frob(%0) "r" : f32[2,3]"#), "t.ngraph:3:8: unknown op `frob`"),
        (with_line3(r#"  %1 = relu(%7) "r" : f32[2,3]"#), "t.ngraph:3:13: unknown value `%7`"),
        (
            with_line3("  %1 = relu(%2) \"r\" : f32[2,3]\n  %2 = relu(%0) \"s\" : f32[2,3]"),
            "t.ngraph:3:13: value `%2` is used before its definition",
        ),
        (with_line3(r#"  %0 = relu(%0) "r" : f32[2,3]"#), "t.ngraph:3:3: value `%0` is already defined (at 2:3)"),
        (with_line3(r#"  %1 = relu(%0) "r" : f33[2,3]"#), "t.ngraph:3:23: unknown dtype `f33`"),
        (
            with_line3(r#"  %1 = relu(%0) "r" : f32[2,x]"#),
            "t.ngraph:3:29: expected a dimension (a non-negative integer) or `]`, found `x`",
        ),
        (with_line3(r#"  %1 = relu(%0) "r" f32[2,3]"#), "t.ngraph:3:21: expected `:`, found `f32`"),
        (
            with_line3(r#"  %1 = softmax{axis=-1}(%0) "r" : f32[2,3]"#),
            "t.ngraph:3:21: attribute `axis` of `softmax`: expected a non-negative integer, found `-1`",
        ),
        (
            with_line3(r#"  %1 = softmax{axis=[1]}(%0) "r" : f32[2,3]"#),
            "t.ngraph:3:21: attribute `axis` of `softmax`: expected a non-negative integer, found `[`",
        ),
        (
            with_line3(r#"  %1 = transpose{perm=[1, x]}(%0) "r" : f32[3,2]"#),
            "t.ngraph:3:27: attribute `perm` of `transpose`: expected a list of non-negative integers, found `x`",
        ),
        (
            with_line3(r#"  %1 = trilu{upper=yes, k=0}(%0) "r" : f32[2,3]"#),
            "t.ngraph:3:20: attribute `upper` of `trilu`: expected `true` or `false`, found `yes`",
        ),
        (
            with_line3(r#"  %1 = cast{to=f64}(%0) "r" : f32[2,3]"#),
            "t.ngraph:3:16: attribute `to` of `cast`: expected a dtype (f32, f16, bf16, i8, u8, i32, i64, bool), found `f64`",
        ),
        (with_line3(r#"  %1 = softmax(%0) "r" : f32[2,3]"#), "t.ngraph:3:8: missing attribute `axis` for `softmax`"),
        (
            with_line3(r#"  %1 = softmax{axsi=1}(%0) "r" : f32[2,3]"#),
            "t.ngraph:3:16: unknown attribute `axsi` for `softmax`",
        ),
        (
            with_line3(r#"  %1 = softmax{axis=1, axis=1}(%0) "r" : f32[2,3]"#),
            "t.ngraph:3:24: duplicate attribute `axis` for `softmax`",
        ),
        (with_line3(r#"  %1 = relu{axis=1}(%0) "r" : f32[2,3]"#), "t.ngraph:3:13: unknown attribute `axis` for `relu`"),
        (
            with_line3(r#"  %1 = softmax{axis=5}(%0) "r" : f32[2,3]"#),
            "t.ngraph:3:8: node \"r\" (softmax): axis 5 out of range for rank 2",
        ),
        (
            with_line3(r#"  %1 = relu(%0) "r" : f32[3,2]"#),
            "t.ngraph:3:23: node \"r\" (relu): declared type f32[3,2] but operands give f32[2,3]",
        ),
        (
            with_line3(r#"  %1 = matmul(%0) "r" : f32[2,3]"#),
            "t.ngraph:3:8: node \"r\" (matmul): matmul takes 2 operand(s), got 1",
        ),
        (with_line3(r#"  %1 = relu(%0) "r : f32[2,3]"#), "t.ngraph:3:17: unterminated string"),
        (
            with_line3(r#"  %1 = relu(%0) "\q" : f32[2,3]"#),
            "t.ngraph:3:18: bad escape: expected one of `\\\"`, `\\\\`, `\\n`, `\\r`, `\\t`, `\\u{HEX}`",
        ),
        (with_line3(r#"  %1 = relu(%0) "x" : f32[2,3]"#), "t.ngraph:3:17: duplicate node name \"x\" (first at 2:14)"),
        (with_line3(r#"  %1 = relu(%0) $ : f32[2,3]"#), "t.ngraph:3:17: unexpected character `$`"),
        (with_line3(r#"  %1 = relu(%0 %0) "r" : f32[2,3]"#), "t.ngraph:3:16: expected `,`, found `%0`"),
        (with_line3(r#"  %1 = relu(x) "r" : f32[2,3]"#), "t.ngraph:3:13: expected a value (`%N` or `wN`), found `x`"),
        (with_line3(r#"  relu(%0)"#), "t.ngraph:3:3: expected a definition `%N = ...`, `output` or `}`, found `relu`"),
        (BASE.replace("}\n", ""), "t.ngraph:5:1: expected a definition `%N = ...`, `output` or `}`, found end of file"),
        (BASE.replace("}\n", "} x"), "t.ngraph:5:3: expected end of file after the graph, found `x`"),
        (BASE.replace("graph \"t\"", "graf \"t\""), "t.ngraph:1:1: expected `graph`, found `graf`"),
        (
            BASE.replace("output \"y\" = %1", "output \"y\" = %1\n  output \"y\" = %0"),
            "t.ngraph:5:10: duplicate output name \"y\" (first at 4:10)",
        ),
        (
            with_line3(r#"  w0 = const "c" : f32[2] = [1.0]"#),
            "t.ngraph:3:29: constant \"c\" has 1 value(s) but type f32[2] needs 2",
        ),
        (
            with_line3(r#"  w0 = const "c" : i8[2] = [1, 300]"#),
            "t.ngraph:3:32: expected a value of dtype i8 or `]`, found `300`",
        ),
        (
            with_line3(r#"  w0 = const "c" : bool[1] = [1]"#),
            "t.ngraph:3:31: expected a value of dtype bool or `]`, found `1`",
        ),
        (
            with_line3(r#"  w0 = const "c" : f32[2] [1.0, 2.0]"#),
            "t.ngraph:3:27: expected `= [values]` or `@external`, found `[`",
        ),
        (
            with_line3(r#"  w0 = const "big" : f32[17] @external"#),
            "t.ngraph:3:31: constant \"big\" is @external but no weights file was given",
        ),
        (
            with_line3(r#"  w0 = const "big" : f32[4611686018427387904,4] @external"#),
            "t.ngraph:3:22: type f32[4611686018427387904,4] is too large",
        ),
        (BASE.replace("  output \"y\" = %1\n", ""), "graph `t` failed verification:\ngraph has no outputs"),
    ];
    for (src, want) in cases {
        assert_eq!(parse_err(&src, None), want, "source:\n{src}");
    }
}

#[test]
fn external_weights_must_exist_with_the_declared_type() {
    let src = with_line3(r#"  w0 = const "big" : f32[17] @external"#);
    let empty = Weights::new();
    assert_eq!(parse_err(&src, Some(&empty)), "t.ngraph:3:14: weight \"big\" is not in the weights file");
    let mut w = Weights::new();
    w.insert("big".into(), Tensor::from_vec(vec![17], vec![0i32; 17]).unwrap());
    assert_eq!(
        parse_err(&src, Some(&w)),
        "t.ngraph:3:14: weight \"big\" has type i32[17] in the weights file but the constant says f32[17]"
    );
    let mut w = Weights::new();
    w.insert("big".into(), Tensor::from_vec(vec![17], vec![0f32; 17]).unwrap());
    let src = src.replace("output \"y\" = %1", "output \"y\" = w0");
    let g = parse(&src, "t.ngraph", Some(&w)).unwrap();
    assert_eq!(external_weights(&g), w);
}

#[test]
fn parse_errors_are_parse_variants() {
    let e = parse("graph", "f.ngraph", None).unwrap_err();
    match e {
        IrError::Parse { file, line, col, msg } => {
            assert_eq!((file.as_str(), line, col), ("f.ngraph", 1, 6));
            assert_eq!(msg, "expected the graph name (a string), found end of file");
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn hand_written_text_with_comments_parses_to_canonical_form() {
    let src = r#"
; CHECK: a hand-written test file
graph "gpt2" {   ; trailing comment
  %in = input "input_ids" : i64[1, 4]
  wte = const "wte" : f32[8,4] @external   ; not a wN label: an error below
}
"#;
    assert_eq!(parse_err(src, None), "t.ngraph:5:3: expected a definition `%N = ...`, `output` or `}`, found `wte`");

    let src = r#"
; CHECK: a hand-written test file
graph "gpt2" {   ; trailing comment
  %in = input "input_ids" : i64[1, 4]
  w7 = const "wte" : f32[8,4] @external
  w3 = const "ln.w" : f32[4] = [1, 1.0, 1e0, +1]
  w1 = const "ln.b" : f32[4] = [ 0 , -0.0, 0.0e0,
                                 .5 ]   ; spans lines
  w0 = const "one" : f16[] = [1.0009765625]
  %emb = gather{axis=0}(w7, %in) "Gather_0" : f32[1,4,4]
  %ln = layer_norm{epsilon=1E-05, axis=2}(%emb, w3, w1) "ln_f" : f32[1,4,4]
  %x = relu{}(%ln) "r" : f32[1,4,4]
  output "logits" = %x
}
"#;
    let mut w = Weights::new();
    w.insert("wte".into(), ramp(&[8, 4], |i| i as f32));
    let g = parse(src, "t.ngraph", Some(&w)).unwrap();
    let canonical = r#"graph "gpt2" {
  %0 = input "input_ids" : i64[1,4]
  w0 = const "wte" : f32[8,4] @external
  w1 = const "ln.w" : f32[4] = [1.0, 1.0, 1.0, 1.0]
  w2 = const "ln.b" : f32[4] = [0.0, -0.0, 0.0, 0.5]
  w3 = const "one" : f16[] = [1.0009766]
  %1 = gather{axis=0}(w0, %0) "Gather_0" : f32[1,4,4]
  %2 = layer_norm{axis=2, epsilon=1e-5}(%1, w1, w2) "ln_f" : f32[1,4,4]
  %3 = relu(%2) "r" : f32[1,4,4]
  output "logits" = %3
}
"#;
    assert_eq!(print(&g), canonical);
    assert_eq!(print(&parse(canonical, "c.ngraph", Some(&w)).unwrap()), canonical);
}

#[test]
fn special_floats_round_trip_exactly() {
    for x in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 1e-45, f32::MIN, 0.1, 16777217.0, 1e20] {
        let src = format!(
            "graph \"f\" {{\n  %0 = input \"x\" : f32[2]\n  %1 = clip{{min={}, max={}}}(%0) \"c\" : f32[2]\n  w0 = const \"k\" : f32[1] = [{}]\n  output \"y\" = %1\n}}\n",
            super::print::fmt_f32(x),
            super::print::fmt_f32(x),
            super::print::fmt_f32(x)
        );
        let g = parse(&src, "f.ngraph", None).unwrap();
        assert_eq!(print(&g), src);
        let c = g.node_ids().into_iter().find(|&id| g.node(id).name == "c").unwrap();
        let Op::Clip { min, .. } = g.node(c).op else { panic!() };
        assert!(min.to_bits() == x.to_bits() || (x.is_nan() && min.is_nan()), "{x:?} -> {min:?}");
    }
}

#[test]
fn printing_a_cyclic_graph_does_not_panic() {
    let mut g = Graph::new("cyc");
    let x = g.add_input("x", tt(DType::F32, &[2]));
    let a = g.add_node("a", Op::Unary(UnaryOp::Relu), &[x], tt(DType::F32, &[2]));
    let b = g.add_node("b", Op::Unary(UnaryOp::Relu), &[a], tt(DType::F32, &[2]));
    g.replace_uses(x, b);
    g.add_output("y", b);
    let text = print(&g);
    assert!(text.contains(r#"%1 = relu(%2) "a""#), "{text}");
    assert!(parse(&text, "c.ngraph", None).unwrap_err().to_string().contains("used before its definition"));
}
