//! Differential testing (issue #9): random graphs over the IR op set run
//! through the reference interpreter, the JIT and a compiled bundle, which
//! must agree. `NANOC_DIFF_GRAPHS=N` sets the number of graphs (default 300
//! for `cargo test`; the long run uses 10,000+), `NANOC_DIFF_SEED` the first
//! seed. A disagreement prints the graph as `.ngraph` text with the seed,
//! so it can be replayed and saved as a regression case.
//!
//! Values carry an "exact" flag: graph inputs, constants, data movement and
//! the correctly rounded f32 operations (+ - * / min max neg abs relu clip)
//! of exact values are bit-identical on every path; discontinuous ops
//! (floor, ceil, round, sign, comparisons, casts to int) are only applied to
//! exact values, so a 1-ulp difference in a transcendental can never flip
//! them.

use nanoc_ir::{BinaryOp, DType, Graph, NodeId, Op, ReduceKind, Shape, Tensor, TensorType, UnaryOp, Window};
use nanoc_tests::*;

/// splitmix64: a small, seedable generator (no dependency needed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

/// A value in the graph under construction.
#[derive(Clone, Copy)]
struct Val {
    id: NodeId,
    exact: bool,
}

struct Gen<'a> {
    g: Graph,
    vals: Vec<Val>,
    rng: &'a mut Rng,
    n: usize,
}

impl Gen<'_> {
    fn ty(&self, v: Val) -> TensorType {
        self.g.node(v.id).ty.clone()
    }
    fn name(&mut self, what: &str) -> String {
        self.n += 1;
        format!("{what}_{}", self.n)
    }
    fn add(&mut self, what: &str, op: Op, args: &[Val], exact: bool) -> Option<Val> {
        let ids: Vec<NodeId> = args.iter().map(|a| a.id).collect();
        let name = self.name(what);
        let id = self.g.add_op(name, op, &ids).ok()?;
        let v = Val { id, exact: exact && args.iter().all(|a| a.exact) };
        self.vals.push(v);
        Some(v)
    }
    fn add_typed(&mut self, what: &str, op: Op, arg: Val, ty: TensorType) -> Option<Val> {
        let name = self.name(what);
        let id = self.g.add_node(name, op, &[arg.id], ty);
        let v = Val { id, exact: arg.exact };
        self.vals.push(v);
        Some(v)
    }
    fn konst(&mut self, shape: Vec<usize>, lo: f32, hi: f32) -> Val {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| self.rng.uniform(lo, hi)).collect();
        let name = self.name("w");
        let id = self.g.add_const(name, Tensor::from_vec(shape, data).unwrap_or_else(|e| panic!("{e}")));
        Val { id, exact: true }
    }
    fn float_val(&mut self) -> Val {
        let fl: Vec<Val> = self.vals.iter().copied().filter(|v| self.g.node(v.id).ty.dtype == DType::F32).collect();
        self.rng.pick(&fl)
    }
    /// `sqrt(abs(x) + 1)`-style positive operand for log/sqrt/reciprocal/div.
    fn positive(&mut self, x: Val) -> Option<Val> {
        let a = self.add("abs", Op::Unary(UnaryOp::Abs), &[x], true)?;
        let one = self.konst(vec![], 0.5, 1.5);
        self.add("pos", Op::Binary(BinaryOp::Add), &[a, one], true)
    }

    /// Adds one random op; `None` if the random choice did not fit.
    fn step(&mut self) -> Option<Val> {
        let x = self.float_val();
        let t = self.ty(x);
        let r = t.shape.rank();
        match self.rng.below(20) {
            0 | 1 => {
                let u = self.rng.pick(&[
                    UnaryOp::Neg,
                    UnaryOp::Exp,
                    UnaryOp::Tanh,
                    UnaryOp::Sigmoid,
                    UnaryOp::Relu,
                    UnaryOp::Gelu,
                    UnaryOp::GeluTanh,
                    UnaryOp::Erf,
                    UnaryOp::Abs,
                    UnaryOp::Softplus,
                ]);
                let exact = matches!(u, UnaryOp::Neg | UnaryOp::Relu | UnaryOp::Abs);
                self.add(Op::Unary(u).name(), Op::Unary(u), &[x], exact)
            }
            2 => {
                let u = self.rng.pick(&[UnaryOp::Log, UnaryOp::Sqrt, UnaryOp::Reciprocal]);
                let p = self.positive(x)?;
                self.add(Op::Unary(u).name(), Op::Unary(u), &[p], false)
            }
            3 if x.exact => {
                let u = self.rng.pick(&[UnaryOp::Floor, UnaryOp::Ceil, UnaryOp::Round, UnaryOp::Sign]);
                self.add(Op::Unary(u).name(), Op::Unary(u), &[x], true)
            }
            4 | 5 => {
                let b = self.rng.pick(&[BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Min, BinaryOp::Max]);
                // The other operand: an existing value that broadcasts, or a constant of a suffix shape.
                let y = match self.rng.below(2) {
                    0 => self.float_val(),
                    _ => {
                        let k = self.rng.below(r + 1);
                        let shape = t.shape.0[k..].to_vec();
                        self.konst(shape, -2.0, 2.0)
                    }
                };
                Shape::broadcast(&t.shape, &self.ty(y).shape)?;
                self.add(Op::Binary(b).name(), Op::Binary(b), &[x, y], true)
            }
            6 => {
                let y = self.float_val();
                Shape::broadcast(&t.shape, &self.ty(y).shape)?;
                let d = self.positive(y)?;
                self.add("div", Op::Binary(BinaryOp::Div), &[x, d], true)
            }
            7 if x.exact => {
                let y = self.float_val();
                if !self.ty(y).shape.0.is_empty() && !y.exact {
                    return None;
                }
                let c = self.rng.pick(&[BinaryOp::Less, BinaryOp::Greater, BinaryOp::Equal, BinaryOp::GreaterEqual]);
                let cond = self.add(Op::Binary(c).name(), Op::Binary(c), &[x, y], true)?;
                let other = self.float_val();
                self.add("where", Op::Where, &[cond, x, other], true)
            }
            8 if r >= 1 => {
                let k = t.shape.0[r - 1];
                let n = 1 + self.rng.below(6);
                let w = self.konst(vec![k, n], -1.0, 1.0);
                self.add("matmul", Op::MatMul, &[x, w], false)
            }
            9 if r >= 1 => {
                let axis = self.rng.below(r);
                self.add("softmax", Op::Softmax { axis }, &[x], false)
            }
            10 if r >= 1 => {
                let axis = self.rng.below(r);
                let pshape = t.shape.0[axis..].to_vec();
                let s = self.konst(pshape.clone(), 0.5, 1.5);
                let b = self.konst(pshape, -0.5, 0.5);
                // epsilon 1e-3 bounds the gain of 1/sqrt(var + eps) on near-constant
                // rows (e.g. softmax over an axis of one), where a 1-ulp difference
                // in the mean would otherwise be amplified 300x.
                self.add("layer_norm", Op::LayerNorm { axis, epsilon: 1e-3 }, &[x, s, b], false)
            }
            11 if r >= 1 => {
                let mut axes: Vec<usize> = (0..r).filter(|_| self.rng.below(2) == 0).collect();
                if axes.is_empty() {
                    axes.push(self.rng.below(r));
                }
                let kind = self.rng.pick(&[ReduceKind::Sum, ReduceKind::Mean, ReduceKind::Max]);
                let keep_dims = self.rng.below(2) == 0;
                self.add("reduce", Op::Reduce { kind, axes, keep_dims }, &[x], kind == ReduceKind::Max)
            }
            12 if r >= 2 => {
                let mut perm: Vec<usize> = (0..r).collect();
                for i in (1..r).rev() {
                    let j = self.rng.below(i + 1);
                    perm.swap(i, j);
                }
                self.add("transpose", Op::Transpose { perm }, &[x], true)
            }
            13 => {
                // Reshape to a random factorisation of the element count.
                let mut n = t.shape.numel();
                let mut dims = Vec::new();
                while n > 1 && dims.len() < 3 {
                    let f = (2..=n).find(|f| n % f == 0 && self.rng.below(2) == 0).unwrap_or(n);
                    dims.push(f);
                    n /= f;
                }
                if n > 1 {
                    dims.push(n);
                }
                self.add_typed("reshape", Op::Reshape, x, TensorType::new(DType::F32, dims))
            }
            14 if r >= 1 => {
                let d = self.rng.below(r);
                let dim = t.shape.0[d];
                let step: i64 = self.rng.pick(&[1, 2, -1]);
                let start = if step > 0 { self.rng.below(dim) } else { dim - 1 - self.rng.below(dim) };
                let count = if step > 0 { (dim - start).div_ceil(step as usize) } else { start + 1 };
                let mut starts = vec![0; r];
                let mut steps = vec![1; r];
                starts[d] = start;
                steps[d] = step;
                let mut shape = t.shape.0.clone();
                shape[d] = count;
                self.add_typed("slice", Op::Slice { starts, steps }, x, TensorType::new(DType::F32, shape))
            }
            15 if r >= 1 => {
                let axis = self.rng.below(r);
                self.add("concat", Op::Concat { axis }, &[x, x], true)
            }
            16 => {
                let mut shape = vec![1 + self.rng.below(3)];
                shape.extend(&t.shape.0);
                self.add_typed("broadcast", Op::Broadcast, x, TensorType::new(DType::F32, shape))
            }
            17 if r >= 1 => {
                let dim = t.shape.0[0] as i64;
                let n = 1 + self.rng.below(4);
                let idx: Vec<i64> = (0..n).map(|_| self.rng.below(2 * dim as usize) as i64 - dim).collect();
                let name = self.name("idx");
                let id = self.g.add_const(name, Tensor::from_vec(vec![n], idx).unwrap_or_else(|e| panic!("{e}")));
                let iv = Val { id, exact: true };
                self.add("gather", Op::Gather { axis: 0 }, &[x, iv], true)
            }
            18 if r == 4 && t.shape.0[2] >= 2 && t.shape.0[3] >= 2 => {
                let c = t.shape.0[1];
                let m = 1 + self.rng.below(4);
                let k = 1 + self.rng.below(2.min(t.shape.0[2]));
                let pad = self.rng.below(2);
                let window = Window {
                    kernel: vec![k, k],
                    strides: vec![1 + self.rng.below(2); 2],
                    pads_begin: vec![pad; 2],
                    pads_end: vec![pad; 2],
                    dilations: vec![1; 2],
                };
                match self.rng.below(3) {
                    0 => {
                        let w = self.konst(vec![m, c, k, k], -1.0, 1.0);
                        let b = self.konst(vec![m], -0.5, 0.5);
                        self.add("conv", Op::Conv { window, group: 1 }, &[x, w, b], false)
                    }
                    1 => self.add("max_pool", Op::MaxPool { window }, &[x], true),
                    _ => self.add("avg_pool", Op::AvgPool { window, count_include_pad: pad == 0 }, &[x], false),
                }
            }
            19 => {
                let lo = self.rng.uniform(-2.0, 0.0);
                let hi = lo + self.rng.uniform(0.5, 3.0);
                self.add("clip", Op::Clip { min: lo, max: hi }, &[x], true)
            }
            _ => None,
        }
    }
}

/// A random graph and its inputs.
fn random_graph(seed: u64) -> (Graph, Vec<(String, Tensor)>) {
    let mut rng = Rng(seed);
    let mut g = Graph::new(format!("random_{seed}"));
    let mut vals = Vec::new();
    let mut inputs = Vec::new();
    for i in 0..1 + rng.below(2) {
        let rank = 1 + rng.below(4);
        let shape: Vec<usize> = (0..rank).map(|_| 1 + rng.below(5)).collect();
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| rng.uniform(-3.0, 3.0)).collect();
        let name = format!("x{i}");
        let id = g.add_input(name.clone(), TensorType::new(DType::F32, shape.clone()));
        vals.push(Val { id, exact: true });
        inputs.push((name, Tensor::from_vec(shape, data).unwrap_or_else(|e| panic!("{e}"))));
    }
    let mut gn = Gen { g, vals, rng: &mut rng, n: 0 };
    let target = 3 + gn.rng.below(10);
    let mut made = Vec::new();
    for _ in 0..target * 8 {
        if made.len() >= target {
            break;
        }
        if let Some(v) = gn.step() {
            made.push(v);
        }
    }
    let last = made.last().copied().unwrap_or(gn.vals[0]);
    gn.g.add_output("y", last.id);
    if made.len() > 2 {
        let other = made[gn.rng.below(made.len() - 1)];
        gn.g.add_output("z", other.id);
    }
    gn.g.remove_dead();
    (gn.g, inputs)
}

#[test]
fn random_graphs_agree_on_every_path() {
    let count: u64 = std::env::var("NANOC_DIFF_GRAPHS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let first: u64 = std::env::var("NANOC_DIFF_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let mut failures = Vec::new();
    let mut nodes = 0;
    for seed in first..first + count {
        let (g, inputs) = random_graph(seed);
        nodes += g.node_count();
        if let Err(e) = nanoc_ir::verify::verify(&g) {
            failures.push(format!("seed {seed}: generator made an invalid graph: {e}"));
            continue;
        }
        let ordered: Vec<Tensor> = inputs.iter().map(|(_, t)| t.clone()).collect();
        let check = || -> Result<(), String> {
            let want = run_interp(&g, &ordered)?;
            let jit = run_jit(&g, &inputs)?;
            compare_all("jit vs interp", &jit, &want, 1e-4, 1e-5)?;
            let bundle = run_bundle(&g, &inputs, &format!("diff_{seed}"))?;
            compare_all("bundle vs jit", &bundle, &jit, 0.0, 0.0)
        };
        if let Err(e) = check() {
            failures.push(format!("seed {seed}: {e}\n{}", nanoc_ir::text::print(&g)));
        }
    }
    println!("{count} random graphs ({nodes} nodes), {} disagreements", failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Regressions the random graphs found, minimised by hand: each graph runs
/// through the interpreter, the JIT and a bundle, which must agree.
#[test]
fn minimised_regressions() {
    let check = |g: &Graph, inputs: Vec<(String, Tensor)>, what: &str| {
        let ordered: Vec<Tensor> = inputs.iter().map(|(_, t)| t.clone()).collect();
        let want = run_interp(g, &ordered).unwrap();
        compare_all(&format!("{what}: jit"), &run_jit(g, &inputs).unwrap(), &want, 1e-4, 1e-5).unwrap();
        compare_all(&format!("{what}: bundle"), &run_bundle(g, &inputs, what).unwrap(), &want, 1e-4, 1e-5).unwrap();
    };
    // Seed 732: an average-pooling window that lies entirely in the padding
    // (count_include_pad = false) divided 0 by 0 in the kernel; it is 0.
    let mut g = Graph::new("avg_pool_empty_window");
    let x = g.add_input("x", TensorType::new(DType::F32, vec![1, 1, 3, 3]));
    let window = Window {
        kernel: vec![1, 1],
        strides: vec![2, 2],
        pads_begin: vec![1, 1],
        pads_end: vec![1, 1],
        dilations: vec![1, 1],
    };
    let y = g.add_op("y", Op::AvgPool { window, count_include_pad: false }, &[x]).unwrap();
    g.add_output("y", y);
    let xs = Tensor::from_vec(vec![1, 1, 3, 3], (1..=9).map(|v| v as f32).collect()).unwrap();
    let out = run_interp(&g, std::slice::from_ref(&xs)).unwrap();
    assert_eq!(
        out[0].1.to_vec::<f32>().unwrap(),
        [0.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0],
        "interpreter semantics"
    );
    check(&g, vec![("x".into(), xs)], "avg_pool_empty_window");

    // Seed 8391: layer norm of a constant row (clip saturated every value)
    // must give exactly the bias; the kernel's mean was one ulp off, and
    // 1/sqrt(eps) amplified it past the tolerance.
    let mut g = Graph::new("layer_norm_constant_row");
    let x = g.add_input("x", TensorType::new(DType::F32, vec![2, 15]));
    let c = g.add_op("c", Op::Clip { min: -1.366_009, max: 0.519_822_6 }, &[x]).unwrap();
    let s = g.add_const("s", Tensor::from_vec(vec![15], vec![1.47f32; 15]).unwrap());
    let b = g.add_const("b", Tensor::from_vec(vec![15], (0..15).map(|i| i as f32 * 0.01).collect()).unwrap());
    let y = g.add_op("y", Op::LayerNorm { axis: 1, epsilon: 1e-5 }, &[c, s, b]).unwrap();
    g.add_output("y", y);
    let xs = Tensor::from_vec(vec![2, 15], (0..30).map(|i| 0.65 + i as f32 * 0.1).collect()).unwrap();
    check(&g, vec![("x".into(), xs)], "layer_norm_constant_row");
}
