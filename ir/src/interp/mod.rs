//! The reference interpreter: plain, obviously-correct evaluation of every
//! op, the ground truth that every backend and every rewrite is checked
//! against.
//!
//! Numerics: float ops compute in `f32` (F16/BF16 are widened to `f32` and
//! rounded back); sums and dot products accumulate in `f64` and are rounded
//! once at the end; transcendental functions are evaluated in `f64`.
//! Integer arithmetic wraps. Movement ops copy raw element bytes, so they
//! work on every dtype.
//!
//! Layout by concern: `elementwise` (unary, binary, clip, cast, where,
//! trilu), `linalg` (matmul, conv), `attention`, `norm` (softmax, layer_norm, rms_norm),
//! `reduce` (reductions and pooling), `movement` (reshape, transpose,
//! slice, broadcast, concat, gather), `fused` (fused programs, step by
//! step through the ops above).

mod attention;
mod elementwise;
mod fused;
mod indexing;
mod linalg;
mod movement;
mod norm;
mod quant;
mod reduce;
mod select;
mod sparse;

use crate::{Bytes, DType, Graph, IrError, NodeId, Op, Tensor, TensorType, Window};
use half::{bf16, f16};
use std::collections::{HashMap, HashSet};

/// Evaluates one op on constant operands; `ty` is the node's declared result type (used by reshape/broadcast/slice and checked by the rest). Errors are plain messages (the caller adds the node name).
pub fn eval_op(op: &Op, args: &[&Tensor], ty: &TensorType) -> std::result::Result<Tensor, String> {
    let arg_types: Vec<&TensorType> = args.iter().map(|t| t.ty()).collect();
    let inferred = op.infer(&arg_types, ty)?;
    if inferred != *ty {
        return Err(format!("declared type {ty} but the operands give {inferred}"));
    }
    if ty.shape.checked_numel().and_then(|n| n.checked_mul(ty.dtype.size_bytes())).is_none() {
        return Err(format!("result type {ty} is too large"));
    }
    match op {
        Op::Input => Err("a graph input has no value of its own; pass it to `run`".into()),
        Op::Const(t) => Ok(t.clone()),
        Op::Unary(u) => elementwise::unary(*u, one(args)?, ty),
        Op::Binary(b) => {
            let (a, b2) = two(args)?;
            elementwise::binary(*b, a, b2, ty)
        }
        Op::Clip { min, max } => elementwise::clip(one(args)?, *min, *max, ty),
        Op::Cast { .. } => elementwise::cast(one(args)?, ty),
        Op::Where => {
            let (c, a, b) = three(args)?;
            elementwise::where_(c, a, b, ty)
        }
        Op::Trilu { upper, k } => elementwise::trilu(one(args)?, *upper, *k, ty),
        Op::MatMul => {
            let (a, b) = two(args)?;
            linalg::matmul(a, b, ty)
        }
        Op::QMatMul => quant::qmatmul(args, ty),
        Op::QMatMulBlock { bits, block } => quant::qmatmul_block(args, *bits, *block, ty),
        Op::SparseMatMul => sparse::sparse_matmul(args, ty),
        Op::Conv { window, group } => {
            let (x, w, bias) = two_or_three(args)?;
            linalg::conv(x, w, bias, window, *group, ty)
        }
        Op::Attention { scale, causal } => attention::attention(args, *scale, *causal, ty),
        Op::Softmax { axis } => norm::softmax(one(args)?, *axis, ty),
        Op::LayerNorm { axis, epsilon } => {
            let (x, scale, bias) = two_or_three(args)?;
            norm::layer_norm(x, scale, bias, *axis, *epsilon, ty)
        }
        Op::RmsNorm { axis, epsilon } => {
            let (x, scale) = match args {
                [x] => (*x, None),
                [x, s] => (*x, Some(*s)),
                _ => return Err(format!("expected 1 or 2 operands, got {}", args.len())),
            };
            norm::rms_norm(x, scale, *axis, *epsilon, ty)
        }
        Op::Reduce { kind, axes, .. } => reduce::reduce(one(args)?, *kind, axes, ty),
        Op::MaxPool { window } => reduce::max_pool(one(args)?, window, ty),
        Op::AvgPool { window, count_include_pad } => reduce::avg_pool(one(args)?, window, *count_include_pad, ty),
        Op::Reshape => movement::reshape(one(args)?, ty),
        Op::Transpose { perm } => movement::transpose(one(args)?, perm, ty),
        Op::Slice { starts, steps } => movement::slice(one(args)?, starts, steps, ty),
        Op::Broadcast => movement::broadcast(one(args)?, ty),
        Op::Concat { axis } => movement::concat(args, *axis, ty),
        Op::Gather { axis } => {
            let (data, indices) = two(args)?;
            movement::gather(data, indices, *axis, ty)
        }
        Op::Dequantize { axis, block } => quant::dequantize(args, *axis, *block, ty),
        Op::Quantize { axis, block, .. } => quant::quantize(args, *axis, *block, ty),
        Op::CumSum { axis, exclusive, reverse } => select::cumsum(one(args)?, *axis, *exclusive, *reverse, ty),
        Op::ArgReduce { max, axis, select_last, .. } => select::arg_reduce(one(args)?, *max, *axis, *select_last, ty),
        Op::TopK { axis, k, largest } => select::top_k(one(args)?, *axis, *k, *largest, ty),
        Op::GatherElements { axis } => {
            let (data, indices) = two(args)?;
            indexing::gather_elements(data, indices, *axis, ty)
        }
        Op::GatherNd { batch_dims } => {
            let (data, indices) = two(args)?;
            indexing::gather_nd(data, indices, *batch_dims, ty)
        }
        Op::ScatterNd { reduction } => {
            let (data, indices, updates) = three(args)?;
            indexing::scatter_nd(data, indices, updates, *reduction, ty)
        }
        Op::Pad { mode, pads_begin, .. } => {
            let (x, value) = match args {
                [x] => (*x, None),
                [x, v] => (*x, Some(*v)),
                _ => return Err(format!("expected 1 or 2 operands, got {}", args.len())),
            };
            indexing::pad(x, value, *mode, pads_begin, ty)
        }
        Op::ConvTranspose { window, group, .. } => {
            let (x, w, bias) = two_or_three(args)?;
            linalg::conv_transpose(x, w, bias, window, *group, ty)
        }
        Op::Fused { body } => fused::program(body, args),
        Op::MatMulEpilogue { epilogue } => fused::matmul_epilogue(epilogue, args),
    }
}

/// Runs a whole graph: `inputs` in `g.inputs()` order (types must match exactly, else an IrError naming the input); returns outputs in `g.outputs()` order. Evaluates in `g.topo_order()`, freeing intermediates after their last use; errors are `IrError::Eval { node, op, msg }`.
pub fn run(g: &Graph, inputs: &[Tensor]) -> crate::Result<Vec<Tensor>> {
    if inputs.len() != g.inputs().len() {
        return Err(IrError::Invalid(format!(
            "graph `{}` takes {} input(s), got {}",
            g.name,
            g.inputs().len(),
            inputs.len()
        )));
    }
    let mut values: HashMap<NodeId, Tensor> = HashMap::new();
    for (&id, t) in g.inputs().iter().zip(inputs) {
        let node = g.node(id);
        if t.ty() != &node.ty {
            return Err(IrError::Invalid(format!(
                "input `{}` of graph `{}` expects {}, got {}",
                node.name,
                g.name,
                node.ty,
                t.ty()
            )));
        }
        values.insert(id, t.clone());
    }

    let order = g.topo_order()?;
    // Remaining uses of each value (one per operand edge); outputs are kept to the end.
    let keep: HashSet<NodeId> = g.outputs().iter().map(|&(_, id)| id).collect();
    let mut uses: HashMap<NodeId, usize> = HashMap::new();
    let mut operands: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for &id in &order {
        let args = g.args(id);
        for &a in &args {
            *uses.entry(a).or_default() += 1;
        }
        operands.insert(id, args);
    }

    for &id in &order {
        let node = g.node(id);
        let args = operands.remove(&id).unwrap_or_default();
        if !(matches!(node.op, Op::Input) && values.contains_key(&id)) {
            let eval_err = |msg: String| IrError::Eval { node: node.name.clone(), op: node.op.name(), msg };
            let arg_values = args
                .iter()
                .map(|a| values.get(a).ok_or_else(|| eval_err(format!("operand `{}` has no value", g.node(*a).name))))
                .collect::<crate::Result<Vec<&Tensor>>>()?;
            let value = eval_op(&node.op, &arg_values, &node.ty).map_err(eval_err)?;
            values.insert(id, value);
        }
        // Free operands after their last use, and this value if nobody needs it.
        for a in args {
            if let Some(n) = uses.get_mut(&a) {
                *n -= 1;
                if *n == 0 && !keep.contains(&a) {
                    values.remove(&a);
                }
            }
        }
        if !uses.contains_key(&id) && !keep.contains(&id) {
            values.remove(&id);
        }
    }

    g.outputs()
        .iter()
        .map(|(name, id)| {
            values
                .get(id)
                .cloned()
                .ok_or_else(|| IrError::Invalid(format!("output `{name}` of graph `{}` has no value", g.name)))
        })
        .collect()
}

// ---- operand access ----------------------------------------------------

fn one<'a>(args: &[&'a Tensor]) -> Result<&'a Tensor, String> {
    match args {
        [x] => Ok(x),
        _ => Err(format!("expected 1 operand, got {}", args.len())),
    }
}

fn two<'a>(args: &[&'a Tensor]) -> Result<(&'a Tensor, &'a Tensor), String> {
    match args {
        [a, b] => Ok((a, b)),
        _ => Err(format!("expected 2 operands, got {}", args.len())),
    }
}

fn three<'a>(args: &[&'a Tensor]) -> Result<(&'a Tensor, &'a Tensor, &'a Tensor), String> {
    match args {
        [a, b, c] => Ok((a, b, c)),
        _ => Err(format!("expected 3 operands, got {}", args.len())),
    }
}

/// Two operands and an optional third (conv bias, layer_norm bias).
type TwoOrThree<'a> = (&'a Tensor, &'a Tensor, Option<&'a Tensor>);

fn two_or_three<'a>(args: &[&'a Tensor]) -> Result<TwoOrThree<'a>, String> {
    match args {
        [a, b] => Ok((a, b, None)),
        [a, b, c] => Ok((a, b, Some(c))),
        _ => Err(format!("expected 2 or 3 operands, got {}", args.len())),
    }
}

// ---- decoding and encoding ---------------------------------------------

/// Builds a tensor of type `ty` from raw little-endian bytes.
fn from_bytes(ty: &TensorType, bytes: Vec<u8>) -> Result<Tensor, String> {
    Tensor::from_bytes(ty.clone(), Bytes::from_vec(bytes)).map_err(|e| e.to_string())
}

/// Decodes a float tensor (F32, F16 or BF16) as `f32` values (exact).
fn floats(t: &Tensor) -> Result<Vec<f32>, String> {
    let decoded = match t.dtype() {
        DType::F32 => t.to_vec::<f32>(),
        DType::F16 => t.to_vec::<f16>().map(|v| v.into_iter().map(f16::to_f32).collect()),
        DType::BF16 => t.to_vec::<bf16>().map(|v| v.into_iter().map(bf16::to_f32).collect()),
        _ => return Err(format!("expected a float tensor, got {}", t.ty())),
    };
    decoded.map_err(|e| e.to_string())
}

/// Encodes `f32` values as a tensor of float type `ty` (rounding to nearest even for F16/BF16).
fn from_floats(ty: &TensorType, values: &[f32]) -> Result<Tensor, String> {
    let mut bytes = Vec::with_capacity(values.len() * ty.dtype.size_bytes());
    match ty.dtype {
        DType::F32 => values.iter().for_each(|v| bytes.extend_from_slice(&v.to_le_bytes())),
        DType::F16 => values.iter().for_each(|&v| bytes.extend_from_slice(&f16::from_f32(v).to_le_bytes())),
        DType::BF16 => values.iter().for_each(|&v| bytes.extend_from_slice(&bf16::from_f32(v).to_le_bytes())),
        _ => return Err(format!("expected a float result type, got {ty}")),
    }
    from_bytes(ty, bytes)
}

/// Decodes an integer tensor (I8, U8, I32 or I64, not bool) as `i64` values.
fn ints(t: &Tensor) -> Result<Vec<i64>, String> {
    if !t.dtype().is_int() {
        return Err(format!("expected an integer tensor, got {}", t.ty()));
    }
    t.to_i64_vec().map_err(|e| e.to_string())
}

/// Encodes `i64` values as a tensor of integer type `ty`, wrapping like `as`.
/// Wrapping i64 arithmetic followed by this truncation equals wrapping
/// arithmetic in the narrow type (both are arithmetic modulo 2^bits).
fn from_ints(ty: &TensorType, values: &[i64]) -> Result<Tensor, String> {
    let mut bytes = Vec::with_capacity(values.len() * ty.dtype.size_bytes());
    match ty.dtype {
        DType::I8 => values.iter().for_each(|&v| bytes.push(v as i8 as u8)),
        DType::U8 => values.iter().for_each(|&v| bytes.push(v as u8)),
        DType::I32 => values.iter().for_each(|&v| bytes.extend_from_slice(&(v as i32).to_le_bytes())),
        DType::I64 => values.iter().for_each(|&v| bytes.extend_from_slice(&v.to_le_bytes())),
        _ => return Err(format!("expected an integer result type, got {ty}")),
    }
    from_bytes(ty, bytes)
}

/// Decodes a bool tensor.
fn bools(t: &Tensor) -> Result<Vec<bool>, String> {
    t.to_vec::<bool>().map_err(|e| e.to_string())
}

/// Encodes bools as a tensor of type `ty` (which must be bool).
fn from_bools(ty: &TensorType, values: &[bool]) -> Result<Tensor, String> {
    if ty.dtype != DType::Bool {
        return Err(format!("expected a bool result type, got {ty}"));
    }
    from_bytes(ty, values.iter().map(|&b| b as u8).collect())
}

// ---- index iteration ---------------------------------------------------

/// Advances a row-major multi-index over `dims` (last dim fastest); returns
/// `false` after the last index, leaving `index` all zeros.
fn next_index(index: &mut [usize], dims: &[usize]) -> bool {
    for d in (0..dims.len()).rev() {
        index[d] += 1;
        if index[d] < dims[d] {
            return true;
        }
        index[d] = 0;
    }
    false
}

/// Every multi-index of `dims` in row-major order (one entry, `[]`, for rank 0).
fn all_indices(dims: &[usize]) -> Vec<Vec<usize>> {
    let count: usize = dims.iter().product();
    let mut out = Vec::with_capacity(count);
    if count > 0 {
        let mut index = vec![0; dims.len()];
        loop {
            out.push(index.clone());
            if !next_index(&mut index, dims) {
                break;
            }
        }
    }
    out
}

/// Where one kernel cell of a conv/pool window lands in the input.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Cell {
    /// A real input element, at this flat offset within one spatial plane.
    Real(usize),
    /// A padding cell inside the padded extent.
    Padding,
    /// Beyond the padded extent (cannot happen for windows that `Window::output_dims` accepted).
    Outside,
}

/// The input cell read by kernel position `kernel` of the window at output
/// position `out`: padded coordinate `out*stride + kernel*dilation`, real
/// coordinate that minus `pads_begin`. `spatial` are the input's spatial
/// extents and `strides` its row-major strides within one plane.
fn window_cell(window: &Window, out: &[usize], kernel: &[usize], spatial: &[usize], strides: &[usize]) -> Cell {
    let mut offset = 0;
    let mut padding = false;
    for d in 0..spatial.len() {
        let padded = out[d] * window.strides[d] + kernel[d] * window.dilations[d];
        if padded >= spatial[d] + window.pads_begin[d] + window.pads_end[d] {
            return Cell::Outside;
        }
        match padded.checked_sub(window.pads_begin[d]) {
            Some(p) if p < spatial[d] => offset += p * strides[d],
            _ => padding = true,
        }
    }
    if padding { Cell::Padding } else { Cell::Real(offset) }
}

/// The flat offsets `sum(index[d] * strides[d])` of every multi-index of
/// `dims`, in row-major order. With `Shape::broadcast_strides` this reads a
/// tensor as if broadcast; with permuted strides it reads a transpose.
struct Offsets {
    dims: Vec<usize>,
    strides: Vec<usize>,
    index: Vec<usize>,
    offset: usize,
    remaining: usize,
}

impl Offsets {
    fn new(dims: &[usize], strides: &[usize]) -> Self {
        debug_assert_eq!(dims.len(), strides.len());
        Offsets {
            dims: dims.to_vec(),
            strides: strides.to_vec(),
            index: vec![0; dims.len()],
            offset: 0,
            remaining: dims.iter().product(),
        }
    }
}

impl Iterator for Offsets {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let current = self.offset;
        for d in (0..self.dims.len()).rev() {
            self.index[d] += 1;
            self.offset += self.strides[d];
            if self.index[d] < self.dims[d] {
                break;
            }
            self.offset -= self.strides[d] * self.dims[d];
            self.index[d] = 0;
        }
        Some(current)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::{BinaryOp, UnaryOp};

    fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v.to_vec()).unwrap()
    }

    fn ty(d: DType, shape: &[usize]) -> TensorType {
        TensorType::new(d, shape.to_vec())
    }

    #[test]
    fn run_three_node_graph() {
        let mut g = Graph::new("g");
        let x = g.add_input("x", ty(DType::F32, &[2]));
        let c = g.add_const("c", f32s(&[2], &[1.0, -5.0]));
        let y = g.add_op("y", Op::Binary(BinaryOp::Add), &[x, c]).unwrap();
        g.add_output("y", y);
        let out = run(&g, &[f32s(&[2], &[2.0, 3.0])]).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].to_vec::<f32>().unwrap(), vec![3.0, -2.0]);
    }

    #[test]
    fn run_keeps_outputs_that_are_also_operands() {
        // z = relu(x @ w); outputs [z, y] where y = x @ w is also z's operand; x is an output too.
        let mut g = Graph::new("g");
        let x = g.add_input("x", ty(DType::F32, &[1, 2]));
        let w = g.add_const("w", f32s(&[2, 2], &[1.0, -1.0, 2.0, -2.0]));
        let y = g.add_op("y", Op::MatMul, &[x, w]).unwrap();
        let z = g.add_op("z", Op::Unary(UnaryOp::Relu), &[y]).unwrap();
        let unused = g.add_op("unused", Op::Unary(UnaryOp::Neg), &[x]).unwrap();
        let _ = unused;
        g.add_output("z", z);
        g.add_output("y", y);
        g.add_output("x", x);
        let out = run(&g, &[f32s(&[1, 2], &[1.0, 1.0])]).unwrap();
        assert_eq!(out[0].to_vec::<f32>().unwrap(), vec![3.0, 0.0]);
        assert_eq!(out[1].to_vec::<f32>().unwrap(), vec![3.0, -3.0]);
        assert_eq!(out[2].to_vec::<f32>().unwrap(), vec![1.0, 1.0]);
    }

    #[test]
    fn run_rejects_wrong_inputs() {
        let mut g = Graph::new("g");
        let x = g.add_input("x", ty(DType::F32, &[2]));
        g.add_output("x", x);
        let e = run(&g, &[f32s(&[3], &[1.0; 3])]).unwrap_err();
        assert_eq!(e.to_string(), "input `x` of graph `g` expects f32[2], got f32[3]");
        let e = run(&g, &[Tensor::from_vec(vec![2], vec![1i32, 2]).unwrap()]).unwrap_err();
        assert_eq!(e.to_string(), "input `x` of graph `g` expects f32[2], got i32[2]");
        let e = run(&g, &[]).unwrap_err();
        assert_eq!(e.to_string(), "graph `g` takes 1 input(s), got 0");
    }

    #[test]
    fn run_reports_the_failing_node() {
        let mut g = Graph::new("g");
        let idx = g.add_input("idx", ty(DType::I64, &[2]));
        let table = g.add_const("table", f32s(&[3], &[1.0, 2.0, 3.0]));
        let gathered = g.add_op("g", Op::Gather { axis: 0 }, &[table, idx]).unwrap();
        g.add_output("out", gathered);
        let ok = run(&g, &[Tensor::from_vec(vec![2], vec![2i64, -3]).unwrap()]).unwrap();
        assert_eq!(ok[0].to_vec::<f32>().unwrap(), vec![3.0, 1.0]);
        let e = run(&g, &[Tensor::from_vec(vec![2], vec![0i64, 5]).unwrap()]).unwrap_err();
        assert!(matches!(&e, IrError::Eval { node, op: "gather", .. } if node == "g"), "{e:?}");
        assert_eq!(
            e.to_string(),
            "node `g` (gather): gather index 5 is out of range for axis 0 of size 3 (valid: -3..3)"
        );
    }

    #[test]
    fn run_reports_a_wrong_declared_type() {
        let mut g = Graph::new("g");
        let x = g.add_input("x", ty(DType::F32, &[2]));
        let y = g.add_node("y", Op::Unary(UnaryOp::Exp), &[x], ty(DType::F32, &[3]));
        g.add_output("y", y);
        let e = run(&g, &[f32s(&[2], &[0.0, 0.0])]).unwrap_err();
        assert_eq!(e.to_string(), "node `y` (exp): declared type f32[3] but the operands give f32[2]");
    }

    #[test]
    fn eval_op_checks_arity_and_leaves() {
        let a = f32s(&[2], &[1.0, 2.0]);
        let e = eval_op(&Op::Binary(BinaryOp::Add), &[&a], &ty(DType::F32, &[2])).unwrap_err();
        assert_eq!(e, "add takes 2 operand(s), got 1");
        let e = eval_op(&Op::Input, &[], &ty(DType::F32, &[2])).unwrap_err();
        assert!(e.contains("no value"), "{e}");
        assert_eq!(eval_op(&Op::Const(a.clone()), &[], a.ty()).unwrap(), a);
        let e = eval_op(&Op::Const(a), &[], &ty(DType::F32, &[3])).unwrap_err();
        assert_eq!(e, "constant has type f32[2] but node says f32[3]");
        let huge = ty(DType::F32, &[usize::MAX, 2]);
        let e = eval_op(&Op::Broadcast, &[&Tensor::scalar(1.0f32)], &huge).unwrap_err();
        assert_eq!(e, format!("result type {huge} is too large"));
    }

    #[test]
    fn offsets_iterate_broadcast_and_scalars() {
        assert_eq!(Offsets::new(&[2, 3], &[0, 1]).collect::<Vec<_>>(), vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(Offsets::new(&[2, 2], &[1, 2]).collect::<Vec<_>>(), vec![0, 2, 1, 3]);
        assert_eq!(Offsets::new(&[], &[]).collect::<Vec<_>>(), vec![0]);
        assert_eq!(Offsets::new(&[2, 0], &[1, 1]).count(), 0);
        assert_eq!(all_indices(&[2, 2]), vec![vec![0, 0], vec![0, 1], vec![1, 0], vec![1, 1]]);
    }

    /// Deterministic pseudo-random weights in [-scale, scale).
    fn weights(seed: &mut u64, shape: &[usize], scale: f32) -> Tensor {
        let n = shape.iter().product();
        let v = (0..n)
            .map(|_| {
                *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((*seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect();
        Tensor::from_vec(shape.to_vec(), v).unwrap()
    }

    /// A 2-layer GPT-2 (d=64, 4 heads, seq 16, GPT-2's vocabulary) built from IR ops.
    fn gpt2(vocab: usize) -> Graph {
        let (seq, d, heads, layers) = (16, 64, 4, 2);
        let dh = d / heads;
        let f = |s: &[usize]| TensorType::new(DType::F32, s.to_vec());
        let mut seed = 1;
        let mut g = Graph::new("gpt2");
        let ids = g.add_input("ids", TensorType::new(DType::I64, vec![seq]));
        let wte = g.add_const("wte", weights(&mut seed, &[vocab, d], 0.1));
        let wpe = g.add_const("wpe", weights(&mut seed, &[seq, d], 0.1));
        let tok = g.add_op("tok", Op::Gather { axis: 0 }, &[wte, ids]).unwrap();
        let mut h = g.add_op("h0", Op::Binary(BinaryOp::Add), &[tok, wpe]).unwrap();
        let ones = g.add_const("ones", Tensor::from_vec(vec![seq, seq], vec![1.0f32; seq * seq]).unwrap());
        let lower = g.add_op("lower", Op::Trilu { upper: false, k: 0 }, &[ones]).unwrap();
        let mask = g.add_op("mask", Op::Cast { to: DType::Bool }, &[lower]).unwrap();
        let neg = g.add_const("neg", Tensor::scalar(-1e9f32));
        let scale = g.add_const("scale", Tensor::scalar(1.0 / (dh as f32).sqrt()));
        let ln = |g: &mut Graph, name: &str, x: NodeId, seed: &mut u64| {
            let s = g.add_const(format!("{name}.g"), weights(seed, &[d], 1.0));
            let b = g.add_const(format!("{name}.b"), weights(seed, &[d], 0.1));
            g.add_op(name, Op::LayerNorm { axis: 1, epsilon: 1e-5 }, &[x, s, b]).unwrap()
        };
        let linear = |g: &mut Graph, name: &str, x: NodeId, i: usize, o: usize, seed: &mut u64| {
            let w = g.add_const(format!("{name}.w"), weights(seed, &[i, o], 0.1));
            let b = g.add_const(format!("{name}.b"), weights(seed, &[o], 0.1));
            let m = g.add_op(format!("{name}.mm"), Op::MatMul, &[x, w]).unwrap();
            g.add_op(name, Op::Binary(BinaryOp::Add), &[m, b]).unwrap()
        };
        for l in 0..layers {
            let p = |s: &str| format!("l{l}.{s}");
            let x = ln(&mut g, &p("ln1"), h, &mut seed);
            let qkv = linear(&mut g, &p("qkv"), x, d, 3 * d, &mut seed);
            let mut split = Vec::new();
            for (i, (n, perm)) in [("q", [1, 0, 2]), ("k", [1, 2, 0]), ("v", [1, 0, 2])].into_iter().enumerate() {
                let s = g.add_node(p(n), Op::Slice { starts: vec![0, i * d], steps: vec![1, 1] }, &[qkv], f(&[seq, d]));
                let r = g.add_node(p(&format!("{n}.r")), Op::Reshape, &[s], f(&[seq, heads, dh]));
                split.push(g.add_op(p(&format!("{n}.t")), Op::Transpose { perm: perm.to_vec() }, &[r]).unwrap());
            }
            let att = g.add_op(p("att"), Op::MatMul, &[split[0], split[1]]).unwrap();
            let att = g.add_op(p("att.s"), Op::Binary(BinaryOp::Mul), &[att, scale]).unwrap();
            let att = g.add_op(p("att.m"), Op::Where, &[mask, att, neg]).unwrap();
            let att = g.add_op(p("att.p"), Op::Softmax { axis: 2 }, &[att]).unwrap();
            let y = g.add_op(p("y"), Op::MatMul, &[att, split[2]]).unwrap();
            let y = g.add_op(p("y.t"), Op::Transpose { perm: vec![1, 0, 2] }, &[y]).unwrap();
            let y = g.add_node(p("y.r"), Op::Reshape, &[y], f(&[seq, d]));
            let y = linear(&mut g, &p("proj"), y, d, d, &mut seed);
            h = g.add_op(p("h1"), Op::Binary(BinaryOp::Add), &[h, y]).unwrap();
            let x = ln(&mut g, &p("ln2"), h, &mut seed);
            let x = linear(&mut g, &p("fc"), x, d, 4 * d, &mut seed);
            let x = g.add_op(p("gelu"), Op::Unary(UnaryOp::GeluTanh), &[x]).unwrap();
            let x = linear(&mut g, &p("fc2"), x, 4 * d, d, &mut seed);
            h = g.add_op(p("h2"), Op::Binary(BinaryOp::Add), &[h, x]).unwrap();
        }
        let x = ln(&mut g, "ln_f", h, &mut seed);
        let wte_t = g.add_op("wte.t", Op::Transpose { perm: vec![1, 0] }, &[wte]).unwrap();
        let logits = g.add_op("logits", Op::MatMul, &[x, wte_t]).unwrap();
        g.add_output("logits", logits);
        g
    }

    #[test]
    fn gpt2_two_layers_runs_quickly() {
        let vocab = 50257;
        let g = gpt2(vocab);
        crate::verify::verify(&g).unwrap();
        let ids = Tensor::from_vec(vec![16], (0..16i64).map(|i| i * 3001 - 7 * i * i).collect()).unwrap();
        let start = std::time::Instant::now();
        let out = run(&g, &[ids]).unwrap();
        let elapsed = start.elapsed();
        eprintln!("gpt2 (2 layers, d=64, seq 16, vocab {vocab}): {elapsed:?}");
        assert_eq!(out[0].shape().dims(), &[16, vocab]);
        assert!(out[0].to_vec::<f32>().unwrap().iter().all(|v| v.is_finite()));
        // Generous bound (shared 2-core machine); the point is catching quadratic blow-ups.
        assert!(elapsed.as_secs_f64() < 10.0, "{elapsed:?}");
    }
}
