//! End-to-end model fixtures (GPT-2-style decoder, MLP, CNN): the
//! interpreter against onnxruntime's recorded outputs, and the JIT and the
//! compiled bundle (through the runtime) against the interpreter and
//! onnxruntime.

use nanoc_tests::*;

fn check_model(name: &str) {
    let f = fixture(name);
    let g = f.import().unwrap();
    let interp = run_interp(&g, &f.ordered_inputs(&g)).unwrap();
    compare_all("interp vs onnxruntime", &interp, &f.outputs, RTOL, ATOL).unwrap();
    let jit = run_jit(&g, &f.inputs).unwrap();
    compare_all("jit vs interp", &jit, &interp, RTOL, ATOL).unwrap();
    let bundle = run_bundle(&g, &f.inputs, name).unwrap();
    compare_all("bundle vs interp", &bundle, &interp, RTOL, ATOL).unwrap();
    compare_all("bundle vs onnxruntime", &bundle, &f.outputs, RTOL, ATOL).unwrap();
}

#[test]
fn gpt2_decoder() {
    check_model("gpt2");
}

#[test]
fn mlp() {
    check_model("mlp");
}

#[test]
fn cnn() {
    check_model("cnn");
}

/// Symbolic dims bind to other shapes too: the GPT-2 fixture at seq 7 must
/// agree between the interpreter and the compiled bundle.
#[test]
fn gpt2_other_sequence_length() {
    let f = fixture("gpt2");
    let ids = f.inputs[0].1.to_vec::<i64>().unwrap();
    let short = nanoc_ir::Tensor::from_vec(vec![1, 7], ids[..7].to_vec()).unwrap();
    let opts = nanoc::onnx::ImportOptions {
        dims: [("batch".to_string(), 1), ("seq".to_string(), 7)].into_iter().collect(),
        ..Default::default()
    };
    let g = nanoc::driver::load_graph(&f.model, &opts).unwrap();
    let interp = run_interp(&g, std::slice::from_ref(&short)).unwrap();
    assert_eq!(interp[0].1.shape().0, vec![1, 7, 256]);
    // Causal: the first 7 positions of the full run see the same prefix.
    let full = &f.outputs[0].1.to_vec::<f32>().unwrap()[..7 * 256];
    let prefix = nanoc_ir::Tensor::from_vec(vec![1, 7, 256], full.to_vec()).unwrap();
    compare("interp seq 7 vs onnxruntime prefix", &interp[0].1, &prefix, RTOL, ATOL).unwrap();
    let bundle = run_bundle(&g, &[("input_ids".into(), short)], "gpt2_seq7").unwrap();
    compare_all("bundle vs interp", &bundle, &interp, RTOL, ATOL).unwrap();
}

/// The CNN quantised by onnxruntime's own tool (`quantize_static`, QDQ
/// form, per-channel int8 weights, `scripts/gen_fixtures.py`): nanoc does
/// the same float arithmetic between Quantize/Dequantize pairs as
/// onnxruntime, with the same rounding (half to even) and saturation, so the
/// usual f32 tolerance holds (measured: bit-exact on this fixture).
#[test]
fn qdq_cnn_from_onnxruntime_quantizer() {
    let f = fixture("qdq_cnn");
    let g = f.import().unwrap();
    let ops: Vec<&str> = g.node_ids().iter().map(|&id| g.node(id).op.name()).collect();
    assert!(ops.contains(&"quantize") && ops.contains(&"dequantize"), "{ops:?}");
    let interp = run_interp(&g, &f.ordered_inputs(&g)).unwrap();
    compare_all("interp vs onnxruntime", &interp, &f.outputs, RTOL, ATOL).unwrap();
    let jit = run_jit(&g, &f.inputs).unwrap();
    compare_all("jit vs onnxruntime", &jit, &f.outputs, RTOL, ATOL).unwrap();
    let bundle = run_bundle(&g, &f.inputs, "qdq_cnn").unwrap();
    compare_all("bundle vs onnxruntime", &bundle, &f.outputs, RTOL, ATOL).unwrap();
}
