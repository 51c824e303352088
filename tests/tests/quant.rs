//! Quantised matmuls end to end: the QDQ model from onnxruntime's quantiser
//! and the quantised op fixtures (QDQ weights, QLinearMatMul, dynamic
//! quantisation, an int8-output QDQ matmul) come out of the e-graph
//! optimiser with their matmuls as `qmatmul` (no float `matmul` left), and
//! the optimised graph still matches onnxruntime's recorded outputs through
//! the interpreter, the JIT and a bundle. MatMulNBits imports as one
//! `qmatmul_block`.

use nanoc_tests::*;

/// (fixture, qmatmul nodes expected after optimisation).
const CASES: &[(&str, usize)] = &[
    ("qdq_cnn", 1),
    ("ops/dequantize_weights_matmul", 1),
    ("ops/qlinearmatmul_u8", 1),
    ("ops/dynamic_qdq_matmul", 1),
    ("ops/qdq_matmul_requant_i8", 1),
];

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
