//! The `attention` op end to end: the fused CPU kernel against the reference
//! interpreter through the JIT and through a bundle on odd shapes (GQA,
//! MQA, causal with Sq < Sk and Sq > Sk, with and without a mask), its
//! `.ngraph` form round-tripping, and the attention-fusion corpus: every
//! exporter variant fuses to one `attention` node per block and matches
//! onnxruntime; so do onnxruntime's attention contrib ops once imported.

use nanoc_ir::{DType, Graph, Op, Tensor, TensorType, text};
use nanoc_tests::*;

/// Smooth pseudo-random values in [-1, 1).
fn values(dims: &[usize], seed: u64) -> Tensor {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let n: usize = dims.iter().product();
    let v = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    Tensor::from_vec(dims.to_vec(), v).unwrap()
}

/// One attention node over inputs q, k, v and, if given, a mask input.
fn attention_graph(q: &[usize], k: &[usize], v: &[usize], mask: Option<&[usize]>, scale: f32, causal: bool) -> Graph {
    let mut g = Graph::new("attention");
    let f = |d: &[usize]| TensorType::new(DType::F32, d.to_vec());
    let mut args = vec![g.add_input("q", f(q)), g.add_input("k", f(k)), g.add_input("v", f(v))];
    if let Some(m) = mask {
        args.push(g.add_input("mask", f(m)));
    }
    let y = g.add_op("attn", Op::Attention { scale, causal }, &args).unwrap();
    g.add_output("y", y);
    nanoc_ir::verify::verify(&g).unwrap();
    g
}

#[test]
fn attention_kernel_matches_the_interpreter_through_jit_and_bundle() {
    // (batch, heads, kv heads, Sq, Sk, D, Dv)
    let cases = [
        (1, 2, 2, 1, 33, 8, 8),
        (1, 4, 1, 7, 33, 5, 5),
        (2, 4, 1, 17, 1, 8, 3),
        (1, 8, 2, 7, 17, 5, 8),
        (1, 4, 4, 17, 33, 8, 8),
    ];
    let mut checked = 0;
    for (n, &(b, h, hkv, sq, sk, d, dv)) in cases.iter().enumerate() {
        let (qd, kd, vd) = ([b, h, sq, d], [b, hkv, sk, d], [b, hkv, sk, dv]);
        let masks: [Option<Vec<usize>>; 3] = [None, Some(vec![sq, sk]), Some(vec![b, 1, sq, sk])];
        for (m, mask) in masks.iter().enumerate() {
            for causal in [false, true] {
                let g = attention_graph(&qd, &kd, &vd, mask.as_deref(), 1.0 / (d as f32).sqrt(), causal);
                let seed = (n * 10 + m) as u64;
                let mut inputs = vec![values(&qd, seed), values(&kd, seed + 1), values(&vd, seed + 2)];
                if let Some(md) = mask {
                    // Additive mask with a -inf in every third position.
                    let t = values(md, seed + 3);
                    let v: Vec<f32> = t
                        .to_vec::<f32>()
                        .unwrap()
                        .iter()
                        .enumerate()
                        .map(|(i, &x)| if i % 3 == 1 { f32::NEG_INFINITY } else { x })
                        .collect();
                    inputs.push(Tensor::from_vec(md.clone(), v).unwrap());
                }
                let named: Vec<(String, Tensor)> =
                    ["q", "k", "v", "mask"].iter().map(|s| s.to_string()).zip(inputs.iter().cloned()).collect();
                let want = run_interp(&g, &inputs).unwrap();
                let what = format!("case {n} mask {m} causal {causal}");
                let jit = run_jit(&g, &named).unwrap();
                compare_all(&format!("{what}: JIT"), &jit, &want, RTOL, ATOL).unwrap();
                let bundle = run_bundle(&g, &named, &format!("attention{n}_{m}_{causal}")).unwrap();
                compare_all(&format!("{what}: bundle"), &bundle, &want, RTOL, ATOL).unwrap();
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 30);
}

#[test]
fn attention_text_round_trips() {
    let g = attention_graph(&[1, 4, 7, 5], &[1, 2, 9, 5], &[1, 2, 9, 3], Some(&[7, 9]), 0.125, true);
    let s = text::print(&g);
    assert!(s.contains(r#"attention{scale=0.125, causal=true}(%0, %1, %2, %3) "attn" : f32[1,4,7,3]"#), "{s}");
    let back = text::parse(&s, "a.ngraph", None).unwrap();
    assert_eq!(text::print(&back), s);
    let bad = s.replace("f32[1,2,9,3]", "f32[1,3,9,3]");
    let e = text::parse(&bad, "a.ngraph", None).unwrap_err().to_string();
    assert!(e.contains("must match k") || e.contains("divide"), "{e}");
}

/// The attention corpus (`tests/fixtures/attention`, see its README): every
/// variant imports, optimises for the CPU into exactly one `attention` node
/// per block with no softmax left, and computes onnxruntime's outputs
/// through the interpreter and the JIT.
#[test]
fn attention_corpus_fuses_and_matches_onnxruntime() {
    let list = std::fs::read_to_string(fixtures_dir().join("attention/CASES.txt")).unwrap();
    let mut rows = Vec::new();
    for line in list.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (name, blocks) = line.split_once(' ').unwrap();
        let blocks: usize = blocks.trim().parse().unwrap();
        let f = fixture(&format!("attention/{name}"));
        let (g, r) = f.import_optimized().unwrap_or_else(|e| panic!("{name}: {e}"));
        let count = |op: &str| r.after.ops.get(op).copied().unwrap_or(0);
        assert_eq!(count("attention"), blocks, "{name}: {:?}\n{}", r.after.ops, text::print(&g));
        assert_eq!(count("softmax"), 0, "{name}: {:?}", r.after.ops);
        // onnxruntime rounds an f16 model to f16 after every op; nanoc computes it in f32.
        let half = f.outputs.iter().any(|(_, t)| t.dtype() == DType::F16);
        let (rtol, atol) = if half { (2e-2, 2e-3) } else { (1e-3, 1e-4) };
        let interp = run_interp(&g, &f.ordered_inputs(&g)).unwrap();
        compare_all(&format!("{name}: interp vs onnxruntime"), &interp, &f.outputs, rtol, atol).unwrap();
        let jit = run_jit(&g, &f.inputs).unwrap();
        compare_all(&format!("{name}: JIT vs onnxruntime"), &jit, &f.outputs, rtol, atol).unwrap();
        rows.push(format!(
            "{name}: {} attention, kernels {} -> {}",
            count("attention"),
            r.before.kernels,
            r.after.kernels
        ));
    }
    println!("{}", rows.join("\n"));
    assert!(rows.len() >= 8);
}

/// onnxruntime's attention contrib ops (`tests/fixtures/attention_contrib`,
/// `scripts/gen_contrib_attention_fixtures.py`) import as one `attention`
/// node each and compute onnxruntime's outputs.
#[test]
fn contrib_attention_ops_import_as_attention() {
    for name in ["mha_bias_attention_bias", "mha_unidirectional", "gqa_no_cache", "gqa_past"] {
        let f = fixture(&format!("attention_contrib/{name}"));
        let g = f.import().unwrap_or_else(|e| panic!("{name}: {e}"));
        let atts = g.node_ids().into_iter().filter(|&id| g.node(id).op.name() == "attention").count();
        assert_eq!(atts, 1, "{name}:\n{}", text::print(&g));
        let interp = run_interp(&g, &f.ordered_inputs(&g)).unwrap();
        compare_all(&format!("{name}: interp vs onnxruntime"), &interp, &f.outputs, 1e-3, 1e-4).unwrap();
        let jit = run_jit(&g, &f.inputs).unwrap();
        compare_all(&format!("{name}: JIT vs onnxruntime"), &jit, &f.outputs, 1e-3, 1e-4).unwrap();
    }
}
