//! The e-graph optimiser end to end: conversion IR → e-graph → IR is
//! lossless on every fixture; the optimised graph of every fixture computes
//! what the imported one does (interpreter and JIT); insta snapshots pin the
//! optimised IR of the model fixtures; GPT-2 and a generated pre-LN decoder
//! (decomposed LayerNorm/GELU/softmax, explicit attention) and Llama-style
//! blocks (RMSNorm, SwiGLU) fuse as expected, with bias, activation and
//! residual adds as matmul epilogues; saturation time and e-graph size grow
//! linearly with the number of layers.

use nanoc::egraph::{self, OptOptions, StageLimits, convert, cost};
use nanoc_ir::{BinaryOp, Bytes, DType, Graph, NodeId, Op, ReduceKind, Tensor, TensorType, UnaryOp, text};
use nanoc_tests::*;
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

#[test]
fn conversion_round_trips_every_fixture() {
    let t = cpu_target();
    let model = cost::CostModel::for_target(&t).unwrap();
    for name in all_fixtures() {
        let g = fixture(&name).import().unwrap();
        let c = convert::to_egraph(&g).unwrap();
        let originals: HashSet<_> = c.origins.canonical(&c.egraph).into_keys().collect();
        let ext = cost::extract(&c.egraph, &c.roots, &model, &originals);
        let back = convert::to_ir(&c.egraph, &c.roots, &c.origins, |k| ext.choice[&c.egraph.find(k)].clone()).unwrap();
        assert_eq!(text::print(&back), text::print(&g), "{name}: IR -> e-graph -> IR changed the graph");
    }
}

#[test]
fn optimised_matches_unoptimised_on_every_fixture() {
    let mut changed = Vec::new();
    for name in all_fixtures() {
        let f = fixture(&name);
        let g = f.import().unwrap();
        let (opt, report) = f.import_optimized().unwrap();
        let want = run_interp(&g, &f.ordered_inputs(&g)).unwrap();
        let got = run_interp(&opt, &f.ordered_inputs(&opt)).unwrap();
        compare_all(&format!("{name}: optimised interp vs interp"), &got, &want, RTOL, ATOL).unwrap();
        let jit = run_jit(&opt, &f.inputs).unwrap();
        compare_all(&format!("{name}: optimised JIT vs interp"), &jit, &want, RTOL, ATOL).unwrap();
        let bundle = run_bundle(&opt, &f.inputs, &format!("opt_{name}")).unwrap();
        compare_all(&format!("{name}: optimised bundle vs interp"), &bundle, &want, RTOL, ATOL).unwrap();
        if text::print(&opt) != text::print(&g) {
            changed.push(format!("{name} ({} -> {} kernels)", report.before.kernels, report.after.kernels));
        }
    }
    println!("fixtures the optimiser changed: {}", changed.join(", "));
}

#[test]
fn optimised_ir_snapshots() {
    for name in ["gpt2", "mlp", "cnn", "qdq_cnn"] {
        let (g, report) = fixture(name).import_optimized().unwrap();
        insta::assert_snapshot!(format!("optimized_{name}"), text::print(&g));
        if name == "gpt2" {
            insta::assert_snapshot!("report_gpt2", report.render(false));
        }
    }
}

#[test]
fn model_node_and_kernel_counts() {
    for name in ["gpt2", "mlp", "cnn"] {
        let (g, r) = fixture(name).import_optimized().unwrap();
        println!(
            "{name}: nodes {} -> {}, kernels {} -> {}, estimated {:.1} us -> {:.1} us",
            r.before.nodes,
            r.after.nodes,
            r.before.kernels,
            r.after.kernels,
            r.estimate_ns.0 / 1e3,
            r.estimate_ns.1 / 1e3
        );
        print!("{}", r.render(true));
        assert_eq!(r.after, egraph::GraphStats::of(&g));
        assert!(r.after.kernels <= r.before.kernels, "{name}: more kernels after optimising");
    }
    let (g, r) = fixture("gpt2").import_optimized().unwrap();
    let uses = op_uses(&g);
    assert_eq!(uses.get("gelu"), Some(&2), "{uses:?}");
    assert_eq!(r.after.ops.get("erf"), None);
    assert_eq!(r.after.ops.get("attention"), Some(&2), "{:?}", r.after.ops);
    assert_eq!(r.after.ops.get("softmax"), None);
    // Two GELUs of five ops each and two attentions of five ops each
    // (matmul, div, where, softmax, matmul) become one op each (-16); 8 of
    // the 9 other matmuls (all but the bias-free lm_head) take their bias,
    // GELU and residual add as an epilogue (-14).
    assert_eq!(r.after.ops.get("matmul_epilogue"), Some(&8), "{:?}", r.after.ops);
    assert_eq!((r.before.kernels, r.after.kernels), (70, 40));
}

/// How often each op runs in `g`, counting the steps of fused programs
/// (`matmul_epilogue` epilogues and `fused` bodies) as their ops.
fn op_uses(g: &Graph) -> BTreeMap<&'static str, usize> {
    let mut uses = BTreeMap::new();
    for id in g.node_ids() {
        let op = &g.node(id).op;
        let program = match op {
            Op::Input | Op::Const(_) => continue,
            Op::Fused { body } => Some(body),
            Op::MatMulEpilogue { epilogue } => Some(epilogue),
            _ => None,
        };
        if matches!(op, Op::MatMulEpilogue { .. }) {
            *uses.entry("matmul").or_default() += 1;
        }
        match program {
            Some(p) => p.steps.iter().for_each(|s| *uses.entry(s.op.name()).or_default() += 1),
            None => *uses.entry(op.name()).or_default() += 1,
        }
    }
    uses
}

// ---- a generated pre-LN decoder with decomposed LayerNorm/GELU/softmax ----

/// Builds GPT-2-style stacks: embeddings in, `layers` pre-LN blocks with
/// LayerNorm, GELU and softmax written out as exporters decompose them.
struct Stack {
    g: Graph,
    n: usize,
    seed: u64,
    /// One shared weight buffer per shape, so deep stacks stay small in memory.
    buffers: Vec<(TensorType, Bytes)>,
}

impl Stack {
    fn new(name: &str) -> Self {
        Stack { g: Graph::new(name), n: 0, seed: 1, buffers: Vec::new() }
    }

    fn name(&mut self, what: &str) -> String {
        self.n += 1;
        format!("{what}_{}", self.n)
    }

    fn weight(&mut self, dims: &[usize], scale: f32) -> NodeId {
        let ty = TensorType::new(DType::F32, dims.to_vec());
        let bytes = match self.buffers.iter().find(|(t, _)| *t == ty) {
            Some((_, b)) => b.clone(),
            None => {
                let n = ty.shape.numel();
                let mut v = Vec::with_capacity(n * 4);
                for _ in 0..n {
                    self.seed ^= self.seed << 13;
                    self.seed ^= self.seed >> 7;
                    self.seed ^= self.seed << 17;
                    let x = ((self.seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 * scale;
                    v.extend_from_slice(&x.to_le_bytes());
                }
                let b = Bytes::from_vec(v);
                self.buffers.push((ty.clone(), b.clone()));
                b
            }
        };
        let name = self.name("w");
        self.g.add_const(name, Tensor::from_bytes(ty, bytes).unwrap())
    }

    fn scalar(&mut self, v: f32) -> NodeId {
        let name = self.name("c");
        self.g.add_const(name, Tensor::scalar(v))
    }

    fn op(&mut self, op: Op, args: &[NodeId]) -> NodeId {
        let name = self.name(op.name());
        self.g.add_op(name, op, args).unwrap()
    }

    fn bin(&mut self, b: BinaryOp, x: NodeId, y: NodeId) -> NodeId {
        self.op(Op::Binary(b), &[x, y])
    }

    fn typed(&mut self, op: Op, x: NodeId, dims: &[usize]) -> NodeId {
        let name = self.name(op.name());
        self.g.add_node(name, op, &[x], TensorType::new(DType::F32, dims.to_vec()))
    }

    fn layer_norm(&mut self, x: NodeId, n: usize) -> NodeId {
        let r = |kind| Op::Reduce { kind, axes: vec![2], keep_dims: true };
        let mean = self.op(r(ReduceKind::Mean), &[x]);
        let d = self.bin(BinaryOp::Sub, x, mean);
        let two = self.scalar(2.0);
        let sq = self.bin(BinaryOp::Pow, d, two);
        let var = self.op(r(ReduceKind::Mean), &[sq]);
        let eps = self.scalar(1e-5);
        let ve = self.bin(BinaryOp::Add, var, eps);
        let sd = self.op(Op::Unary(UnaryOp::Sqrt), &[ve]);
        let y = self.bin(BinaryOp::Div, d, sd);
        let g = self.weight(&[n], 1.0);
        let b = self.weight(&[n], 0.1);
        let y = self.bin(BinaryOp::Mul, y, g);
        self.bin(BinaryOp::Add, y, b)
    }

    fn gelu(&mut self, x: NodeId) -> NodeId {
        let s = self.scalar(std::f32::consts::SQRT_2);
        let d = self.bin(BinaryOp::Div, x, s);
        let e = self.op(Op::Unary(UnaryOp::Erf), &[d]);
        let one = self.scalar(1.0);
        let p = self.bin(BinaryOp::Add, e, one);
        let m = self.bin(BinaryOp::Mul, x, p);
        let half = self.scalar(0.5);
        self.bin(BinaryOp::Mul, m, half)
    }

    fn softmax(&mut self, x: NodeId) -> NodeId {
        let mx = self.op(Op::Reduce { kind: ReduceKind::Max, axes: vec![3], keep_dims: true }, &[x]);
        let d = self.bin(BinaryOp::Sub, x, mx);
        let e = self.op(Op::Unary(UnaryOp::Exp), &[d]);
        let s = self.op(Op::Reduce { kind: ReduceKind::Sum, axes: vec![3], keep_dims: true }, &[e]);
        self.bin(BinaryOp::Div, e, s)
    }

    fn linear(&mut self, x: NodeId, k: usize, n: usize) -> NodeId {
        let w = self.weight(&[k, n], 1.0 / (k as f32).sqrt());
        let b = self.weight(&[n], 0.02);
        let y = self.op(Op::MatMul, &[x, w]);
        self.bin(BinaryOp::Add, y, b)
    }

    /// RMSNorm over the last dim as exporters write it: HF Llama
    /// (`x.to(f32)`, `pow(2).mean`, `x * rsqrt(var + eps)`, `w * h.to(dtype)`,
    /// the casts being identities here), `x / sqrt(mean(x·x) + eps) * w`, or
    /// `x * (1 / sqrt(..)) * w`.
    fn rms_norm(&mut self, x: NodeId, n: usize, form: usize) -> NodeId {
        let x = if form == 0 { self.op(Op::Cast { to: DType::F32 }, &[x]) } else { x };
        let sq = if form == 0 {
            let two = self.scalar(2.0);
            self.bin(BinaryOp::Pow, x, two)
        } else {
            self.bin(BinaryOp::Mul, x, x)
        };
        let ms = self.op(Op::Reduce { kind: ReduceKind::Mean, axes: vec![2], keep_dims: true }, &[sq]);
        let eps = self.scalar(1e-6);
        let v = self.bin(BinaryOp::Add, ms, eps);
        let r = self.op(Op::Unary(UnaryOp::Sqrt), &[v]);
        let w = self.weight(&[n], 1.0);
        match form {
            0 => {
                let inv = self.op(Op::Unary(UnaryOp::Reciprocal), &[r]);
                let y = self.bin(BinaryOp::Mul, x, inv);
                let y = self.op(Op::Cast { to: DType::F32 }, &[y]);
                self.bin(BinaryOp::Mul, w, y)
            }
            1 => {
                let y = self.bin(BinaryOp::Div, x, r);
                self.bin(BinaryOp::Mul, y, w)
            }
            _ => {
                let one = self.scalar(1.0);
                let inv = self.bin(BinaryOp::Div, one, r);
                let y = self.bin(BinaryOp::Mul, x, inv);
                self.bin(BinaryOp::Mul, y, w)
            }
        }
    }

    /// A Llama MLP: `down(silu(gate(x)) · up(x))` with SiLU written
    /// `g · sigmoid(g)` (or `sigmoid(g) · g` when `flip`).
    fn swiglu(&mut self, x: NodeId, n: usize, hidden: usize, flip: bool) -> NodeId {
        let wg = self.weight(&[n, hidden], 1.0 / (n as f32).sqrt());
        let wu = self.weight(&[n, hidden], 1.0 / (n as f32).sqrt());
        let wd = self.weight(&[hidden, n], 1.0 / (hidden as f32).sqrt());
        let g = self.op(Op::MatMul, &[x, wg]);
        let u = self.op(Op::MatMul, &[x, wu]);
        let sg = self.op(Op::Unary(UnaryOp::Sigmoid), &[g]);
        let act = if flip { self.bin(BinaryOp::Mul, sg, g) } else { self.bin(BinaryOp::Mul, g, sg) };
        let h = self.bin(BinaryOp::Mul, act, u);
        self.op(Op::MatMul, &[h, wd])
    }

    /// Llama-style blocks (RMSNorm, SwiGLU MLP, residuals; no attention)
    /// over f32[1, seq, n], cycling through the RMSNorm forms.
    fn llama_mlp_stack(layers: usize, seq: usize, n: usize) -> Graph {
        let mut s = Stack::new(&format!("llama{layers}"));
        let mut h = s.g.add_input("embeddings", TensorType::new(DType::F32, vec![1, seq, n]));
        for l in 0..layers {
            let a = s.rms_norm(h, n, l % 3);
            let m = s.swiglu(a, n, 3 * n - 1, l % 2 == 1);
            h = s.bin(BinaryOp::Add, h, m);
        }
        let out = s.rms_norm(h, n, 0);
        s.g.add_output("hidden", out);
        nanoc_ir::verify::verify(&s.g).unwrap();
        s.g
    }

    /// An N-layer decoder over embeddings f32[1, seq, n_embd].
    fn decoder(layers: usize, seq: usize, n_embd: usize, heads: usize) -> Graph {
        let mut s = Stack::new(&format!("decoder{layers}"));
        let hd = n_embd / heads;
        let mut h = s.g.add_input("embeddings", TensorType::new(DType::F32, vec![1, seq, n_embd]));
        for _ in 0..layers {
            let a = s.layer_norm(h, n_embd);
            let qkv = s.linear(a, n_embd, 3 * n_embd);
            let mut parts = Vec::new();
            for (i, perm) in [[0, 2, 1, 3], [0, 2, 3, 1], [0, 2, 1, 3]].iter().enumerate() {
                let sl = Op::Slice { starts: vec![0, 0, i * n_embd], steps: vec![1, 1, 1] };
                let p = s.typed(sl, qkv, &[1, seq, n_embd]);
                let r = s.typed(Op::Reshape, p, &[1, seq, heads, hd]);
                parts.push(s.op(Op::Transpose { perm: perm.to_vec() }, &[r]));
            }
            let att = s.op(Op::MatMul, &[parts[0], parts[1]]);
            let scale = s.scalar((hd as f32).sqrt());
            let att = s.bin(BinaryOp::Div, att, scale);
            let p = s.softmax(att);
            let o = s.op(Op::MatMul, &[p, parts[2]]);
            let o = s.op(Op::Transpose { perm: vec![0, 2, 1, 3] }, &[o]);
            let o = s.typed(Op::Reshape, o, &[1, seq, n_embd]);
            let o = s.linear(o, n_embd, n_embd);
            h = s.bin(BinaryOp::Add, h, o);
            let m = s.layer_norm(h, n_embd);
            let m = s.linear(m, n_embd, 4 * n_embd);
            let m = s.gelu(m);
            let m = s.linear(m, 4 * n_embd, n_embd);
            h = s.bin(BinaryOp::Add, h, m);
        }
        let out = s.layer_norm(h, n_embd);
        s.g.add_output("hidden", out);
        nanoc_ir::verify::verify(&s.g).unwrap();
        s.g
    }
}

fn embeddings(g: &Graph) -> Tensor {
    let ty = &g.node(g.inputs()[0]).ty;
    let n = ty.shape.numel();
    Tensor::from_vec(ty.shape.clone(), (0..n).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect()).unwrap()
}

#[test]
fn decomposed_decoder_fuses_layer_norm_gelu_and_attention() {
    let g = Stack::decoder(2, 8, 64, 4);
    let (opt, r) = egraph::optimize(&g, &cpu_target(), &OptOptions::default()).unwrap();
    print!("{}", r.render(true));
    let uses = op_uses(&opt);
    assert_eq!(uses.get("layer_norm"), Some(&5), "{uses:?}");
    assert_eq!(uses.get("gelu"), Some(&2), "{uses:?}");
    assert_eq!(uses.get("attention"), Some(&2), "{uses:?}");
    for gone in ["reduce_mean", "pow", "sqrt", "erf", "exp", "reduce_max", "reduce_sum", "softmax"] {
        assert_eq!(uses.get(gone), None, "{gone} left: {uses:?}");
    }
    // Every linear layer's bias (and the GELU, the residual adds) is an
    // epilogue; the attention scores' scale is in the attention op.
    assert_eq!(r.after.ops.get("matmul_epilogue"), Some(&8), "{:?}", r.after.ops);
    let x = embeddings(&g);
    let want = run_interp(&g, std::slice::from_ref(&x)).unwrap();
    let got = run_interp(&opt, std::slice::from_ref(&x)).unwrap();
    compare_all("optimised decoder (interp)", &got, &want, RTOL, ATOL).unwrap();
    let jit = run_jit(&opt, &[("embeddings".into(), x)]).unwrap();
    compare_all("optimised decoder (JIT)", &jit, &want, RTOL, ATOL).unwrap();
}

#[test]
fn decomposed_llama_blocks_fuse_rms_norm_and_silu() {
    let g = Stack::llama_mlp_stack(3, 7, 33);
    let (opt, r) = egraph::optimize(&g, &cpu_target(), &OptOptions::default()).unwrap();
    print!("{}", r.render(true));
    let uses = op_uses(&opt);
    assert_eq!(uses.get("rms_norm"), Some(&4), "{uses:?}");
    assert_eq!(uses.get("silu"), Some(&3), "{uses:?}");
    for gone in ["reduce_mean", "pow", "sqrt", "reciprocal", "div", "sigmoid", "cast"] {
        assert_eq!(uses.get(gone), None, "{gone} left: {uses:?}");
    }
    // SwiGLU: the gate's SiLU is its matmul's epilogue, the product with it
    // the up projection's (the cost model sees no difference to putting
    // both in the gate's); the residual add is the down projection's.
    assert_eq!(r.after.ops.get("matmul_epilogue"), Some(&9), "{:?}", r.after.ops);
    assert_eq!(r.after.kernels, 13, "{:?}", r.after.ops);
    let x = embeddings(&g);
    let want = run_interp(&g, std::slice::from_ref(&x)).unwrap();
    let got = run_interp(&opt, std::slice::from_ref(&x)).unwrap();
    compare_all("optimised llama blocks (interp)", &got, &want, RTOL, ATOL).unwrap();
    let jit = run_jit(&opt, &[("embeddings".into(), x)]).unwrap();
    compare_all("optimised llama blocks (JIT)", &jit, &want, RTOL, ATOL).unwrap();
}

/// A mixed-precision RMSNorm (`x.to(f32)` … `.to(f16)` around the f32
/// core, f16 weight): the core between the casts fuses.
#[test]
fn mixed_precision_rms_norm_fuses_between_casts() {
    let mut g = Graph::new("rms_f16");
    let x = g.add_input("x", TensorType::new(DType::F16, vec![2, 5, 17]));
    let xf = g.add_op("to_f32", Op::Cast { to: DType::F32 }, &[x]).unwrap();
    let two = g.add_const("two", Tensor::scalar(2.0f32));
    let sq = g.add_op("pow", Op::Binary(BinaryOp::Pow), &[xf, two]).unwrap();
    let ms = g.add_op("mean", Op::Reduce { kind: ReduceKind::Mean, axes: vec![2], keep_dims: true }, &[sq]).unwrap();
    let eps = g.add_const("eps", Tensor::scalar(1e-6f32));
    let v = g.add_op("add", Op::Binary(BinaryOp::Add), &[ms, eps]).unwrap();
    let r = g.add_op("sqrt", Op::Unary(UnaryOp::Sqrt), &[v]).unwrap();
    let inv = g.add_op("rsqrt", Op::Unary(UnaryOp::Reciprocal), &[r]).unwrap();
    let y = g.add_op("mul", Op::Binary(BinaryOp::Mul), &[xf, inv]).unwrap();
    let y16 = g.add_op("to_f16", Op::Cast { to: DType::F16 }, &[y]).unwrap();
    let to_f16 = |t: Tensor| {
        let ty = TensorType::new(DType::F16, t.shape().dims().to_vec());
        nanoc_ir::interp::eval_op(&Op::Cast { to: DType::F16 }, &[&t], &ty).unwrap()
    };
    let w: Vec<f32> = (0..17).map(|i| 0.5 + i as f32 / 16.0).collect();
    let w = g.add_const("w", to_f16(Tensor::from_vec(vec![17], w).unwrap()));
    let out = g.add_op("scaled", Op::Binary(BinaryOp::Mul), &[w, y16]).unwrap();
    g.add_output("y", out);
    let (opt, r) = egraph::optimize(&g, &cpu_target(), &OptOptions::default()).unwrap();
    assert_eq!(r.after.ops.get("rms_norm"), Some(&1), "{:?}", r.after.ops);
    assert_eq!(r.after.ops.get("reduce_mean"), None, "{:?}", r.after.ops);
    let xs: Vec<f32> = (0..170).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
    let xs = to_f16(Tensor::from_vec(vec![2, 5, 17], xs).unwrap());
    let want = run_interp(&g, std::slice::from_ref(&xs)).unwrap();
    let got = run_interp(&opt, std::slice::from_ref(&xs)).unwrap();
    compare_all("mixed-precision rms_norm (interp)", &got, &want, 2e-3, 2e-3).unwrap();
}

/// Saturation on 2..48 identical layers: e-nodes and e-classes per layer
/// stay constant and the iteration count does not grow with depth (the
/// times are printed for the record).
#[test]
fn saturation_grows_linearly_with_depth() {
    let t = cpu_target();
    let mut rows = Vec::new();
    println!(
        "layers | graph nodes | time ms | e-nodes | e-classes | iterations (canon, fusion) | kernels before -> after"
    );
    for layers in [2usize, 6, 12, 24, 48] {
        let g = Stack::decoder(layers, 16, 256, 4);
        // The best of three runs: the machine may be busy.
        let mut ms = f64::INFINITY;
        let mut report = None;
        for _ in 0..3 {
            let start = Instant::now();
            let (_, r) = egraph::optimize(&g, &t, &OptOptions::default()).unwrap();
            ms = ms.min(start.elapsed().as_secs_f64() * 1e3);
            report = Some(r);
        }
        let r = report.unwrap();
        let last = r.stages.last().unwrap();
        println!(
            "{layers:>6} | {:>11} | {ms:>7.1} | {:>7} | {:>9} | {:?} | {} -> {}",
            g.node_count(),
            last.enodes,
            last.eclasses,
            r.stages.iter().map(|s| s.iterations).collect::<Vec<_>>(),
            r.before.kernels,
            r.after.kernels
        );
        for s in &r.stages {
            let stop = egraph::stages::stop_text(&s.stop);
            assert_eq!(stop, "saturated", "{layers} layers: stage {}", s.name);
        }
        rows.push((layers as f64, ms, last.enodes as f64, r.stages.iter().map(|s| s.iterations).sum::<usize>()));
    }
    // E-graph size is linear: the same number of e-nodes per layer (plus a constant).
    let per = |i: usize, j: usize| (rows[j].2 - rows[i].2) / (rows[j].0 - rows[i].0);
    assert!((per(0, 1) - per(3, 4)).abs() <= 0.02 * per(0, 1), "e-nodes per layer grow: {rows:?}");
    // The number of iterations does not grow with depth.
    assert_eq!(rows[0].3, rows[4].3, "{rows:?}");
    // Times are printed, not asserted: tests never fail on timing.
}

#[test]
fn limits_stop_stages_and_the_result_is_still_right() {
    let g = Stack::decoder(1, 8, 64, 4);
    let x = embeddings(&g);
    let want = run_interp(&g, std::slice::from_ref(&x)).unwrap();
    let tiny = StageLimits { iters: 1, nodes_per_input: 1, min_nodes: 0, time: Duration::from_secs(5) };
    let one_iter = StageLimits { iters: 1, nodes_per_input: 8, min_nodes: 0, time: Duration::from_secs(5) };
    for (limits, want_stop) in [(tiny, "node limit"), (one_iter, "iteration limit")] {
        let opts = OptOptions {
            limits: vec![("canonicalise".into(), limits), ("fusion".into(), limits)],
            ..Default::default()
        };
        let (opt, r) = egraph::optimize(&g, &cpu_target(), &opts).unwrap();
        let stop = egraph::stages::stop_text(&r.stages[0].stop);
        assert!(stop.starts_with(want_stop), "{stop}");
        let got = run_interp(&opt, std::slice::from_ref(&x)).unwrap();
        compare_all("limited optimisation", &got, &want, RTOL, ATOL).unwrap();
    }
    // Only some rules.
    let opts = OptOptions { only_rules: Some(vec!["gelu-erf-a".into()]), ..Default::default() };
    let (opt, r) = egraph::optimize(&g, &cpu_target(), &opts).unwrap();
    let uses = op_uses(&opt);
    assert_eq!(uses.get("gelu"), Some(&1), "{uses:?}");
    assert_eq!(r.after.ops.get("layer_norm"), None);
}

/// Phase times by depth (a manual benchmark; `LAYERS=N` runs one depth):
/// `cargo test --release -p nanoc-tests --test optimize -- --ignored --nocapture bench_`.
#[test]
#[ignore]
fn bench_phase_times_by_depth() {
    let only: Option<usize> = std::env::var("LAYERS").ok().and_then(|v| v.parse().ok());
    for layers in only.map_or(vec![24usize, 48, 96, 24, 48, 96], |l| vec![l]) {
        let g = Stack::decoder(layers, 16, 256, 4);
        let (_, r) = egraph::optimize(&g, &cpu_target(), &OptOptions::default()).unwrap();
        let st: Vec<String> = r.stages.iter().map(|s| format!("{:.1}", s.time.as_secs_f64() * 1e3)).collect();
        println!(
            "{layers}: convert {:.1} stages {:?} extract {:.1} total {:.1}",
            r.times.0.as_secs_f64() * 1e3,
            st,
            r.times.1.as_secs_f64() * 1e3,
            r.times.2.as_secs_f64() * 1e3
        );
    }
}

/// The same decoder extracts differently for a CPU and for `npu-x`: the CPU
/// fuses each decomposed LayerNorm into one `layer_norm` kernel; `npu-x`
/// has no native LayerNorm (it would run on the host with a handoff each
/// time), so it keeps the decomposition as NPU reductions and elementwise
/// ops, and turns every division (not native) into a multiply by a
/// reciprocal lookup table. GELU and softmax are native on both, so both
/// fuse them. Each extraction is the cheaper of the two under its own
/// target's cost model, and both compute what the input graph does.
#[test]
fn cpu_and_npu_extract_differently() {
    let g = Stack::decoder(2, 8, 64, 4);
    let cpu = nanoc_targets::Target::find("cpu-x86_64").unwrap();
    let npu = nanoc_targets::Target::find("npu-x").unwrap();
    let (on_cpu, rc) = egraph::optimize(&g, &cpu, &OptOptions::default()).unwrap();
    let (on_npu, rn) = egraph::optimize(&g, &npu, &OptOptions::default()).unwrap();
    println!("---- extracted for cpu-x86_64\n{}\n{}", rc.render(false), text::print(&on_cpu));
    println!("---- extracted for npu-x\n{}\n{}", rn.render(false), text::print(&on_npu));
    let ops = |r: &egraph::OptReport, op: &str| r.after.ops.get(op).copied().unwrap_or(0);
    // CPU: LayerNorm, GELU and attention fused (GELU into its matmul's
    // epilogue); divisions stay divisions.
    let cpu_uses = op_uses(&on_cpu);
    let uses = |op: &str| cpu_uses.get(op).copied().unwrap_or(0);
    assert_eq!((uses("layer_norm"), uses("gelu"), uses("attention")), (5, 2, 2), "{cpu_uses:?}");
    assert_eq!(uses("softmax"), 0, "{cpu_uses:?}");
    assert_eq!((ops(&rc, "reduce_mean"), ops(&rc, "reciprocal")), (0, 0), "{:?}", rc.after.ops);
    // npu-x: GELU and softmax fused, LayerNorm decomposed (two means each),
    // no division left: one reciprocal per LayerNorm.
    assert_eq!((ops(&rn, "layer_norm"), ops(&rn, "gelu"), ops(&rn, "softmax")), (0, 2, 2), "{:?}", rn.after.ops);
    assert_eq!((ops(&rn, "reduce_mean"), ops(&rn, "div"), ops(&rn, "reciprocal")), (10, 0, 5), "{:?}", rn.after.ops);
    // Every op of the NPU graph runs on the NPU (the report's placement).
    assert_eq!(rn.placement, Some((rn.after.kernels, Default::default())), "{}", rn.render(false));
    assert_eq!(rc.placement, None);
    let npu_model = cost::CostModel::for_target(&npu).unwrap();
    for id in on_npu.node_ids() {
        let n = on_npu.node(id);
        if matches!(n.op, Op::Input | Op::Const(_)) {
            continue;
        }
        let args = on_npu.args(id);
        let tys: Vec<&TensorType> = args.iter().map(|&a| &on_npu.node(a).ty).collect();
        let consts: Vec<bool> = args.iter().map(|&a| matches!(on_npu.node(a).op, Op::Const(_))).collect();
        assert!(
            npu_model.runs_natively(&n.op, &tys, &consts, &n.ty),
            "{} ({}) falls back to the CPU",
            n.name,
            n.op.name()
        );
    }
    // Each graph is the cheaper one under its own model.
    let cpu_model = cost::CostModel::for_target(&cpu).unwrap();
    let (c_c, c_n) = (cpu_model.graph_ns(&on_cpu), cpu_model.graph_ns(&on_npu));
    let (n_c, n_n) = (npu_model.graph_ns(&on_cpu), npu_model.graph_ns(&on_npu));
    println!(
        "cpu model: cpu graph {c_c:.0} ns, npu graph {c_n:.0} ns; npu model: cpu graph {n_c:.0} ns, npu graph {n_n:.0} ns"
    );
    assert!(c_c < c_n && n_n < n_c, "cpu model {c_c} vs {c_n}, npu model {n_c} vs {n_n}");
    let x = embeddings(&g);
    let want = run_interp(&g, std::slice::from_ref(&x)).unwrap();
    for (what, opt) in [("cpu", &on_cpu), ("npu-x", &on_npu)] {
        let got = run_interp(opt, std::slice::from_ref(&x)).unwrap();
        compare_all(&format!("decoder extracted for {what} (interp)"), &got, &want, RTOL, ATOL).unwrap();
    }
    let one = Stack::decoder(1, 4, 16, 2);
    let (small, _) = egraph::optimize(&one, &npu, &OptOptions::default()).unwrap();
    insta::assert_snapshot!("decoder1_npu_x", text::print(&small));
    let (small_cpu, _) = egraph::optimize(&one, &cpu, &OptOptions::default()).unwrap();
    insta::assert_snapshot!("decoder1_cpu", text::print(&small_cpu));
}

/// Provenance: every fused node of the decoder lists exactly the original
/// nodes of the decomposition the generator wrote for it (LayerNorm: two
/// means, sub, pow, two adds, sqrt, div, mul; attention: the scores'
/// matmul and scale, the softmax's max, sub, exp, sum and div, the product
/// with v and k's transpose; a matmul with an epilogue: the matmul and the
/// elementwise ops after it, GELU's decomposition included), all of them
/// input-graph nodes that the optimised graph no longer has.
#[test]
fn new_nodes_list_the_nodes_they_replaced() {
    let g = Stack::decoder(2, 8, 64, 4);
    let (opt, r) = egraph::optimize(&g, &cpu_target(), &OptOptions::default()).unwrap();
    let input_names: HashSet<String> = g.node_ids().into_iter().map(|id| g.node(id).name.clone()).collect();
    let output_names: HashSet<String> = opt.node_ids().into_iter().map(|id| opt.node(id).name.clone()).collect();
    let mut fused = std::collections::BTreeMap::new();
    for n in &r.new_nodes {
        assert!(output_names.contains(&n.name) && !input_names.contains(&n.name), "{}", n.name);
        let mut ops: Vec<&str> = n.replaced.iter().map(|(_, op)| *op).collect();
        ops.sort();
        let want: &[&str] = match n.op {
            "layer_norm" => &["add", "add", "div", "mul", "pow", "reduce_mean", "reduce_mean", "sqrt", "sub"],
            "gelu" => &["add", "div", "erf", "mul", "mul"],
            "softmax" => &["div", "exp", "reduce_max", "reduce_sum", "sub"],
            // The scores' product, scale, softmax, the product with v, and
            // k's transpose (a new transpose reads k's heads instead).
            "attention" => &["div", "div", "exp", "matmul", "matmul", "reduce_max", "reduce_sum", "sub", "transpose"],
            "matmul_epilogue" => {
                let gelu = ["add", "add", "div", "erf", "matmul", "mul", "mul"];
                let ok = ops == gelu
                    || (ops.iter().filter(|&&o| o == "matmul").count() == 1
                        && ops.iter().all(|&o| ["matmul", "add", "div"].contains(&o)));
                assert!(ok, "{} replaced {:?}", n.name, n.replaced);
                &[]
            }
            _ => continue,
        };
        if n.op == "matmul_epilogue" {
            *fused.entry(n.op).or_insert(0) += 1;
            continue;
        }
        assert_eq!(ops, want, "{} ({}) replaced {:?}", n.name, n.op, n.replaced);
        for (name, _) in &n.replaced {
            assert!(input_names.contains(name) && !output_names.contains(name), "{name}");
        }
        *fused.entry(n.op).or_insert(0) += 1;
    }
    assert_eq!(fused, [("attention", 2), ("layer_norm", 5), ("matmul_epilogue", 8)].into(), "{:?}", r.new_nodes);
}

/// `--extract dag` is never worse than the default greedy extraction: on
/// every fixture and on generated decoders, for a CPU and two NPUs, from
/// the same saturated e-graph, its estimate (every chosen e-node reachable
/// from the outputs counted once) is at most greedy's; and its graph
/// computes what the input graph does.
#[test]
fn dag_extraction_is_never_worse_than_greedy() {
    let targets: Vec<_> =
        ["cpu-x86_64", "npu-x", "ethos-u55-256"].iter().map(|t| nanoc_targets::Target::find(t).unwrap()).collect();
    let mut graphs: Vec<(String, Graph)> =
        all_fixtures().into_iter().filter_map(|name| fixture(&name).import().ok().map(|g| (name, g))).collect();
    graphs.push(("decoder2".into(), Stack::decoder(2, 8, 64, 4)));
    graphs.push(("llama3".into(), Stack::llama_mlp_stack(3, 7, 33)));
    let (mut better, mut total) = (0, 0);
    for t in &targets {
        let model = cost::CostModel::for_target(t).unwrap();
        for (name, g) in &graphs {
            let c = convert::to_egraph(g).unwrap();
            let enodes = c.egraph.total_number_of_nodes();
            let progress = egraph::Progress::default();
            let (eg, _) = egraph::stages::run(c.egraph, &egraph::stages::default_stages(), enodes, &progress).unwrap();
            let roots: Vec<_> = c.roots.iter().map(|&r| eg.find(r)).collect();
            let originals: HashSet<_> = c.origins.canonical(&eg).into_keys().collect();
            let greedy = cost::extract_with(&eg, &roots, &model, &originals, cost::Extractor::Greedy);
            let dag = cost::extract_with(&eg, &roots, &model, &originals, cost::Extractor::Dag);
            assert!(
                dag.estimate_ns <= greedy.estimate_ns + 1e-9,
                "{name} on {}: dag {} ns > greedy {} ns",
                t.name,
                dag.estimate_ns,
                greedy.estimate_ns
            );
            total += 1;
            if dag.estimate_ns < greedy.estimate_ns - 1e-9 {
                better += 1;
                println!(
                    "{name} on {}: dag {:.3} us < greedy {:.3} us",
                    t.name,
                    dag.estimate_ns / 1e3,
                    greedy.estimate_ns / 1e3
                );
            }
        }
    }
    println!("dag extraction strictly better on {better} of {total} (graph, target) pairs, equal on the rest");
    // Extraction time on a deep stack (printed, not asserted).
    let deep = Stack::decoder(24, 16, 256, 4);
    for extractor in [cost::Extractor::Greedy, cost::Extractor::Dag] {
        let (_, r) = egraph::optimize(&deep, &targets[0], &OptOptions { extractor, ..Default::default() }).unwrap();
        println!("24-layer decoder, {extractor:?} extraction: {:.1} ms", r.times.1.as_secs_f64() * 1e3);
    }
    let g = Stack::decoder(2, 8, 64, 4);
    let x = embeddings(&g);
    let want = run_interp(&g, std::slice::from_ref(&x)).unwrap();
    for t in &targets {
        let opts = OptOptions { extractor: cost::Extractor::Dag, ..Default::default() };
        let (opt, _) = egraph::optimize(&g, t, &opts).unwrap();
        let got = run_interp(&opt, std::slice::from_ref(&x)).unwrap();
        compare_all(&format!("decoder, dag extraction for {}", t.name), &got, &want, RTOL, ATOL).unwrap();
    }
}

// ---- elementwise-chain fusion ----------------------------------------------

/// A random elementwise DAG over f32 inputs that broadcast to one result
/// shape of odd extents: unary activations, binary ops with broadcasting,
/// clip, a compare-and-select, a cast round trip, a guarded division.
/// Sometimes an intermediate is an output too.
fn random_chain(seed: u64) -> Graph {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move |n: usize| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 33) as usize % n
    };
    let shapes: [&[usize]; 5] = [&[1], &[7], &[3, 17], &[2, 5, 7], &[33]];
    let out = shapes[next(shapes.len())].to_vec();
    let mut g = Graph::new(format!("chain{seed}"));
    let mut vals: Vec<NodeId> = Vec::new();
    for i in 0..2 + next(3) {
        // The full shape, or some dims (or leading dims) dropped to 1.
        let mut dims = out.clone();
        if i > 0 && next(2) == 0 {
            for d in dims.iter_mut() {
                if next(2) == 0 {
                    *d = 1;
                }
            }
        }
        if i > 0 && next(3) == 0 && dims.len() > 1 {
            dims.remove(0);
        }
        vals.push(g.add_input(format!("in{i}"), TensorType::new(DType::F32, dims)));
    }
    let mut n = 0;
    let mut op = |g: &mut Graph, op: Op, args: &[NodeId]| {
        n += 1;
        g.add_op(format!("{}{n}", op.name()), op, args).unwrap()
    };
    let one = g.add_const("one", Tensor::scalar(1.0f32));
    let four = g.add_const("four", Tensor::scalar(4.0f32));
    let unary =
        [UnaryOp::Neg, UnaryOp::Tanh, UnaryOp::Sigmoid, UnaryOp::Relu, UnaryOp::Silu, UnaryOp::Gelu, UnaryOp::Abs];
    let binary = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Max, BinaryOp::Min];
    let mut extra_output = None;
    for _ in 0..3 + next(10) {
        // Mostly extend the latest values, so chains form.
        let pick = |k: usize, vals: &[NodeId]| vals[vals.len() - 1 - k.min(vals.len() - 1)];
        let a = pick(next(3), &vals);
        let b = pick(next(5), &vals);
        let v = match next(8) {
            0 | 1 => op(&mut g, Op::Unary(unary[next(unary.len())]), &[a]),
            2 | 3 => op(&mut g, Op::Binary(binary[next(binary.len())]), &[a, b]),
            4 => op(&mut g, Op::Clip { min: -1.0, max: 1.5 }, &[a]),
            5 => {
                let c = op(&mut g, Op::Binary(BinaryOp::Greater), &[a, b]);
                op(&mut g, Op::Where, &[c, a, b])
            }
            6 => {
                // A cast round trip of an input (exact values: no rounding ties).
                let x = op(&mut g, Op::Binary(BinaryOp::Mul), &[vals[0], four]);
                let i = op(&mut g, Op::Cast { to: DType::I32 }, &[x]);
                op(&mut g, Op::Cast { to: DType::F32 }, &[i])
            }
            _ => {
                let t = op(&mut g, Op::Unary(UnaryOp::Abs), &[b]);
                let d = op(&mut g, Op::Binary(BinaryOp::Add), &[t, one]);
                let e = op(&mut g, Op::Unary(UnaryOp::Tanh), &[a]);
                let e = op(&mut g, Op::Unary(UnaryOp::Exp), &[e]);
                op(&mut g, Op::Binary(BinaryOp::Div), &[e, d])
            }
        };
        if extra_output.is_none() && next(6) == 0 {
            extra_output = Some(v);
        }
        vals.push(v);
    }
    // The result has the full shape: add the first input (full shape) last.
    let last = *vals.last().unwrap();
    let y = op(&mut g, Op::Binary(BinaryOp::Add), &[last, vals[0]]);
    g.add_output("y", y);
    if let Some(v) = extra_output {
        g.add_output("intermediate", v);
    }
    g.remove_dead();
    nanoc_ir::verify::verify(&g).unwrap();
    g
}

/// Deterministic inputs in [-2, 2) for `g`.
fn chain_inputs(g: &Graph, seed: u64) -> Vec<(String, Tensor)> {
    g.inputs()
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            let n = g.node(id);
            let count = n.ty.shape.numel();
            let v: Vec<f32> = (0..count)
                .map(|k| ((k * 7919 + i * 104_729 + seed as usize * 31) % 1000) as f32 / 250.0 - 2.0)
                .collect();
            (n.name.clone(), Tensor::from_vec(n.ty.shape.clone(), v).unwrap())
        })
        .collect()
}

fn bit_equal(what: &str, got: &[(String, Tensor)], want: &[(String, Tensor)]) {
    for ((gn, g), (wn, w)) in got.iter().zip(want) {
        assert_eq!(gn, wn, "{what}");
        assert_eq!(g.bytes(), w.bytes(), "{what}: output {gn} differs");
    }
}

/// Random chains: the fused graph computes the unfused one exactly in the
/// interpreter (a fused op is its steps), bit for bit on the CPU (JIT and
/// bundle: each step is the unfused kernel's scalar code), and the CPU
/// agrees with the interpreter within tolerance.
#[test]
fn random_elementwise_chains_fuse_and_agree() {
    let model = cost::CostModel::for_target(&cpu_target()).unwrap();
    let (mut fused_graphs, mut groups, mut ops, mut kernels) = (0, 0, 0, (0, 0));
    for seed in 0..60u64 {
        let g = random_chain(seed);
        let mut f = g.clone();
        let stats = egraph::fuse::fuse_elementwise(&mut f, &model).unwrap();
        nanoc_ir::verify::verify(&f).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let (before, after) = (egraph::GraphStats::of(&g).kernels, egraph::GraphStats::of(&f).kernels);
        assert_eq!(before - after, stats.ops - stats.groups, "seed {seed}");
        fused_graphs += usize::from(stats.groups > 0);
        (groups, ops, kernels) = (groups + stats.groups, ops + stats.ops, (kernels.0 + before, kernels.1 + after));
        let inputs = chain_inputs(&g, seed);
        let tensors: Vec<Tensor> = inputs.iter().map(|(_, t)| t.clone()).collect();
        let want = run_interp(&g, &tensors).unwrap();
        bit_equal(&format!("seed {seed}: fused interp"), &run_interp(&f, &tensors).unwrap(), &want);
        let jit_unfused = run_jit(&g, &inputs).unwrap();
        let jit = run_jit(&f, &inputs).unwrap();
        bit_equal(&format!("seed {seed}: fused JIT vs unfused JIT"), &jit, &jit_unfused);
        let bundle = run_bundle(&f, &inputs, &format!("chain{seed}")).unwrap();
        bit_equal(&format!("seed {seed}: fused bundle vs fused JIT"), &bundle, &jit);
        compare_all(&format!("seed {seed}: fused JIT vs interp"), &jit, &want, 1e-3, 1e-4)
            .unwrap_or_else(|e| panic!("{e}\n{}", text::print(&f)));
    }
    println!(
        "{fused_graphs} of 60 random graphs fused: {groups} chains of {ops} ops; kernels {} -> {}",
        kernels.0, kernels.1
    );
    assert!(fused_graphs >= 40, "only {fused_graphs} of 60 graphs had a chain to fuse");
}
