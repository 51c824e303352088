//! Quantised matmuls end to end: the QDQ model from onnxruntime's quantiser
//! and the quantised op fixtures (QDQ weights, QLinearMatMul, dynamic
//! quantisation, an int8-output QDQ matmul) come out of the e-graph
//! optimiser with their matmuls as `qmatmul` (no float `matmul` left), and
//! the optimised graph still matches onnxruntime's recorded outputs through
//! the interpreter, the JIT and a bundle.

use nanoc_tests::*;

/// (fixture, qmatmul nodes expected after optimisation).
const CASES: &[(&str, usize)] = &[
    ("qdq_cnn", 1),
    ("ops/dequantize_weights_matmul", 1),
    ("ops/qlinearmatmul_u8", 1),
    ("ops/dynamic_qdq_matmul", 1),
    ("ops/qdq_matmul_requant_i8", 1),
];

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
