//! Quantised matmuls end to end: the QDQ model from onnxruntime's quantiser
//! and the quantised op fixtures (QDQ weights, QLinearMatMul, dynamic
//! quantisation, an int8-output QDQ matmul) come out of the e-graph
//! optimiser with their matmuls as `qmatmul` (no float `matmul` left), and
//! the optimised graph still matches onnxruntime's recorded outputs through
//! the interpreter, the JIT and a bundle. MatMulNBits imports as one
//! `qmatmul_block`. A 2:4-sparse constant weight becomes `sparse_matmul`
//! only for a target whose descriptor lists `"2:4"`.

use nanoc_ir::{Graph, Op, Tensor, TensorType};
use nanoc_tests::*;

/// (fixture, qmatmul nodes expected after optimisation).
const CASES: &[(&str, usize)] = &[
    ("qdq_cnn", 1),
    ("ops/dequantize_weights_matmul", 1),
    ("ops/qlinearmatmul_u8", 1),
    ("ops/dynamic_qdq_matmul", 1),
    ("ops/qdq_matmul_requant_i8", 1),
];

/// `x [7, 32] · W [32, 17]`, W 2:4-sparse along K (half of it zero).
fn sparse_graph() -> (Graph, Tensor) {
    let (k, n) = (32usize, 17usize);
    let w: Vec<f32> =
        (0..k * n).map(|i| if ((i / n) + i % n) % 4 < 2 { ((i * 37) % 19) as f32 / 9.0 - 1.0 } else { 0.0 }).collect();
    let mut g = Graph::new("sparse");
    let x = g.add_input("x", TensorType::new(nanoc_ir::DType::F32, vec![7, k]));
    let w = g.add_const("w", Tensor::from_vec(vec![k, n], w).unwrap());
    let y = g.add_op("y", Op::MatMul, &[x, w]).unwrap();
    g.add_output("out", y);
    let input: Vec<f32> = (0..7 * k).map(|i| ((i * 13) % 29) as f32 / 7.0 - 2.0).collect();
    (g, Tensor::from_vec(vec![7, k], input).unwrap())
}

#[test]
fn sparse_weights_follow_the_target() {
    let (g, x) = sparse_graph();
    let want = run_interp(&g, std::slice::from_ref(&x)).unwrap();
    let dense_target = cpu_target();
    assert!(dense_target.sparsity.is_empty());
    let mut sparse_target = dense_target.clone();
    sparse_target.sparsity = vec![nanoc_targets::Sparsity::TwoOfFour];
    for (t, sparse) in [(&dense_target, false), (&sparse_target, true)] {
        let (opt, report) = nanoc::egraph::optimize(&g, t, &Default::default()).unwrap();
        println!("2:4 sparse weights for {} (sparsity {:?}): {:?}", t.name, t.sparsity, report.after.ops);
        assert_eq!(report.after.ops.get("sparse_matmul").is_some(), sparse, "{:?}", report.after.ops);
        assert_eq!(report.after.ops.get("matmul").is_some(), !sparse, "{:?}", report.after.ops);
        let got = run_interp(&opt, std::slice::from_ref(&x)).unwrap();
        compare_all("optimised interp", &got, &want, RTOL, ATOL).unwrap();
        let jit = run_jit(&opt, &[("x".to_string(), x.clone())]).unwrap();
        compare_all("optimised jit", &jit, &want, RTOL, ATOL).unwrap();
    }
}

/// MatMulNBits fixtures (4 and 8 bits, K a multiple of the block or not).
const NBITS: &[&str] = &["ops/ms_matmulnbits_q4_asym", "ops/ms_matmulnbits_q4_sym_k48", "ops/ms_matmulnbits_q8_k40"];

#[test]
fn matmul_nbits_imports_as_qmatmul_block() {
    for name in NBITS {
        let f = fixture(name);
        let g = f.import().unwrap();
        let ops: Vec<&str> = g.node_ids().iter().map(|&id| g.node(id).op.name()).collect();
        assert!(ops.contains(&"qmatmul_block") && !ops.contains(&"dequantize"), "{name}: {ops:?}");
        let (opt, _) = f.import_optimized().unwrap();
        for (path, got) in [("interp", run_interp(&opt, &f.ordered_inputs(&opt))), ("jit", run_jit(&opt, &f.inputs))] {
            compare_all(&format!("{name} {path}"), &got.unwrap(), &f.outputs, RTOL, ATOL).unwrap();
        }
    }
}

#[test]
fn quantised_matmuls_become_qmatmul_and_match_onnxruntime() {
    let mut failures = Vec::new();
    for &(name, want) in CASES {
        let f = fixture(name);
        let (g, report) = f.import_optimized().unwrap();
        let ops = &report.after.ops;
        println!(
            "{name}: {} -> {} kernels, qmatmul {}, ops {:?}",
            report.before.kernels,
            report.after.kernels,
            ops.get("qmatmul").copied().unwrap_or(0),
            ops
        );
        assert_eq!(ops.get("qmatmul"), Some(&want), "{name}: {ops:?}");
        assert_eq!(ops.get("matmul"), None, "{name}: a float matmul is left: {ops:?}");
        let runs = [
            ("interp", run_interp(&g, &f.ordered_inputs(&g))),
            ("jit", run_jit(&g, &f.inputs)),
            ("bundle", run_bundle(&g, &f.inputs, &name.replace('/', "_"))),
        ];
        for (path, got) in runs {
            if let Err(e) = got.and_then(|o| compare_all(&format!("{name} {path}"), &o, &f.outputs, RTOL, ATOL)) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
