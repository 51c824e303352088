//! Indexing, selection, scans and padding: GatherElements, GatherND,
//! ScatterND, Pad, CumSum, ArgMax, ArgMin, TopK (IR ops of their own), and
//! DepthToSpace / SpaceToDepth, DCR or CRD (reshape → transpose → reshape).

use super::{Ctx, ImportFn, Res};
use nanoc_ir::{Bytes, NodeId, Op, PadMode, ScatterReduction, Tensor, TensorType};

/// The indexing family's registration table.
pub(super) const OPS: &[(&str, ImportFn)] = &[
    ("GatherElements", gather_elements),
    ("GatherND", gather_nd),
    ("ScatterND", scatter_nd),
    ("Pad", pad),
    ("CumSum", cumsum),
    ("ArgMax", |c| arg_reduce(c, true)),
    ("ArgMin", |c| arg_reduce(c, false)),
    ("TopK", top_k),
    ("DepthToSpace", depth_to_space),
    ("SpaceToDepth", space_to_depth),
];

fn gather_elements(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let idx = c.input(1)?;
    let axis = c.axis(c.attr_int_or("axis", 0)?, tx.shape.rank(), "axis")?;
    let y = c.add(None, Op::GatherElements { axis }, &[x, idx])?;
    c.set_output(0, y);
    Ok(())
}

fn gather_nd(c: &mut Ctx<'_, '_>) -> Res<()> {
    let x = c.input(0)?;
    let idx = c.input(1)?;
    let b = c.attr_int_or("batch_dims", 0)?;
    let batch_dims =
        usize::try_from(b).map_err(|_| c.err(format!("attribute `batch_dims` must not be negative, got {b}")))?;
    let y = c.add(None, Op::GatherNd { batch_dims }, &[x, idx])?;
    c.set_output(0, y);
    Ok(())
}

fn scatter_nd(c: &mut Ctx<'_, '_>) -> Res<()> {
    let data = c.input(0)?;
    let idx = c.input(1)?;
    let updates = c.input(2)?;
    let name = c.attr_string("reduction")?.unwrap_or_else(|| "none".into());
    let reduction = ScatterReduction::from_name(&name)
        .ok_or_else(|| c.err(format!("attribute `reduction` must be none, add, mul, max or min, got {name:?}")))?;
    let y = c.add(None, Op::ScatterNd { reduction }, &[data, idx, updates])?;
    c.set_output(0, y);
    Ok(())
}

/// Pad (opset 11+ form): pads from constant input 1 (negative pads crop
/// with a slice first), fill value from optional input 2 (constant or
/// not), and the opset-18 `axes` input 3.
fn pad(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let r = tx.shape.rank();
    let mode_name = c.attr_string("mode")?.unwrap_or_else(|| "constant".into());
    let mode = PadMode::from_name(&mode_name)
        .ok_or_else(|| c.err(format!("attribute `mode` must be constant, reflect, edge or wrap, got {mode_name:?}")))?;
    let pads = c.require_const_i64s(1)?;
    let axes: Vec<usize> = match c.opt_const_i64s(3)? {
        None => (0..r).collect(),
        Some(a) => a.iter().map(|&a| c.axis(a, r, "axis")).collect::<Res<_>>()?,
    };
    if pads.len() != 2 * axes.len() {
        return Err(c.err(format!("pads {pads:?} must hold 2 x {} values (begins, then ends)", axes.len())));
    }
    let (mut begin, mut end) = (vec![0i64; r], vec![0i64; r]);
    for (i, &a) in axes.iter().enumerate() {
        begin[a] = pads[i];
        end[a] = pads[axes.len() + i];
    }
    // Negative pads remove cells: slice them off first.
    let dims = tx.shape.dims().to_vec();
    let mut x = x;
    if begin.iter().chain(&end).any(|&p| p < 0) {
        let mut starts = vec![0usize; r];
        let mut kept = dims.clone();
        for d in 0..r {
            let crop = begin[d].min(0).unsigned_abs().saturating_add(end[d].min(0).unsigned_abs());
            if crop > dims[d] as u64 {
                return Err(c.err(format!("negative pads {pads:?} remove more than dim {d} of {tx} holds")));
            }
            kept[d] = dims[d] - crop as usize;
            starts[d] = if kept[d] == 0 { 0 } else { begin[d].min(0).unsigned_abs() as usize };
        }
        let ty = TensorType::new(tx.dtype, kept);
        x = c.add_typed(Some("crop"), Op::Slice { starts, steps: vec![1; r] }, &[x], ty)?;
    }
    let to_usize = |v: &[i64]| v.iter().map(|&p| p.max(0) as usize).collect::<Vec<_>>();
    let (pads_begin, pads_end) = (to_usize(&begin), to_usize(&end));
    if pads_begin.iter().chain(&pads_end).all(|&p| p == 0) {
        c.set_output(0, x);
        return Ok(());
    }
    let mut args = vec![x];
    if mode == PadMode::Constant
        && let Some(v) = fill_value(c, tx.dtype)?
    {
        args.push(v);
    }
    let y = c.add(None, Op::Pad { mode, pads_begin, pads_end }, &args)?;
    c.set_output(0, y);
    Ok(())
}

/// Pad's optional `constant_value` (input 2) as a one-element operand of
/// `dtype`, or `None` when absent or a constant zero.
fn fill_value(c: &mut Ctx<'_, '_>, dtype: nanoc_ir::DType) -> Res<Option<NodeId>> {
    let Some(v) = c.opt_input(2)? else { return Ok(None) };
    let tv = c.ty(v);
    if tv.dtype != dtype || tv.shape.numel() != 1 {
        return Err(c.err(format!("constant_value must be one {dtype} element, got {tv}")));
    }
    if let Some(t) = c.const_input(2) {
        if t.bytes().iter().all(|&b| b == 0) {
            return Ok(None);
        }
        if t.shape().rank() > 1 {
            let t = Tensor::from_bytes(TensorType::new(dtype, Vec::new()), Bytes::from_vec(t.bytes().to_vec()))
                .map_err(|e| c.err(e.to_string()))?;
            return Ok(Some(c.add_const(Some("value"), t)));
        }
        return Ok(Some(v));
    }
    if tv.shape.rank() > 1 {
        return Ok(Some(c.add_typed(Some("value"), Op::Reshape, &[v], TensorType::new(dtype, Vec::new()))?));
    }
    Ok(Some(v))
}

fn cumsum(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let axis = match c.require_const_i64s(1)?.as_slice() {
        [a] => c.axis(*a, tx.shape.rank(), "axis")?,
        v => return Err(c.err(format!("axis must be a single value, got {v:?}"))),
    };
    let exclusive = c.attr_bool_or("exclusive", false)?;
    let reverse = c.attr_bool_or("reverse", false)?;
    let y = c.add(None, Op::CumSum { axis, exclusive, reverse }, &[x])?;
    c.set_output(0, y);
    Ok(())
}

fn arg_reduce(c: &mut Ctx<'_, '_>, max: bool) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let axis = c.axis(c.attr_int_or("axis", 0)?, tx.shape.rank(), "axis")?;
    let keep_dims = c.attr_bool_or("keepdims", true)?;
    let select_last = c.attr_bool_or("select_last_index", false)?;
    let y = c.add(None, Op::ArgReduce { max, axis, keep_dims, select_last }, &[x])?;
    c.set_output(0, y);
    Ok(())
}

/// TopK → an IR top_k for the indices (output 1) and, for the values
/// (output 0), a gather_elements of x at those indices. `sorted = 0` allows
/// any order; nanoc always returns the sorted one.
fn top_k(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let k = match c.require_const_i64s(1)?.as_slice() {
        [k] => usize::try_from(*k).map_err(|_| c.err(format!("k must not be negative, got {k}")))?,
        v => return Err(c.err(format!("k must be a single value, got {v:?}"))),
    };
    let axis = c.axis(c.attr_int_or("axis", -1)?, tx.shape.rank(), "axis")?;
    let largest = c.attr_bool_or("largest", true)?;
    c.attr_bool_or("sorted", true)?;
    let indices = c.add(Some("indices"), Op::TopK { axis, k, largest }, &[x])?;
    if c.output_used(0) {
        let values = c.add(None, Op::GatherElements { axis }, &[x, indices])?;
        c.set_output(0, values);
    }
    c.set_output(1, indices);
    Ok(())
}

/// `[N, C, H, W]` and a block size, checked.
fn nchw_and_block(c: &Ctx<'_, '_>, tx: &TensorType) -> Res<([usize; 4], usize)> {
    let b = c.attr_int("blocksize")?.ok_or_else(|| c.err("attribute `blocksize` is required"))?;
    let b = usize::try_from(b)
        .ok()
        .filter(|&b| b > 0)
        .ok_or_else(|| c.err(format!("blocksize must be positive, got {b}")))?;
    match tx.shape.dims() {
        &[n, ch, h, w] if [1, ch, h, w].iter().all(|&d| d.checked_mul(b).and_then(|v| v.checked_mul(b)).is_some()) => {
            Ok(([n, ch, h, w], b))
        }
        &[_, _, _, _] => Err(c.err(format!("blocksize {b} is too large for {tx}"))),
        _ => Err(c.err(format!("input must be N x C x H x W, got {tx}"))),
    }
}

/// reshape → transpose → reshape, each step named after the node.
fn shuffle(c: &mut Ctx<'_, '_>, x: NodeId, split: Vec<usize>, perm: Vec<usize>, out: Vec<usize>) -> Res<NodeId> {
    let dt = c.ty(x).dtype;
    let s = c.add_typed(Some("split"), Op::Reshape, &[x], TensorType::new(dt, split))?;
    let t = c.add(Some("transpose"), Op::Transpose { perm }, &[s])?;
    c.add_typed(None, Op::Reshape, &[t], TensorType::new(dt, out))
}

/// DepthToSpace: DCR (default) reads channels as `[b, b, C/b²]`, CRD as
/// `[C/b², b, b]`.
fn depth_to_space(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let ([n, ch, h, w], b) = nchw_and_block(c, &tx)?;
    if ch % (b * b) != 0 {
        return Err(c.err(format!("channels {ch} are not a multiple of blocksize² = {}", b * b)));
    }
    let cb = ch / (b * b);
    let mode = c.attr_string("mode")?.unwrap_or_else(|| "DCR".into());
    let (split, perm) = match mode.as_str() {
        "DCR" => (vec![n, b, b, cb, h, w], vec![0, 3, 4, 1, 5, 2]),
        "CRD" => (vec![n, cb, b, b, h, w], vec![0, 1, 4, 2, 5, 3]),
        other => return Err(c.err(format!("attribute `mode` must be DCR or CRD, got {other:?}"))),
    };
    let y = shuffle(c, x, split, perm, vec![n, cb, h * b, w * b])?;
    c.set_output(0, y);
    Ok(())
}

fn space_to_depth(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let ([n, ch, h, w], b) = nchw_and_block(c, &tx)?;
    if h % b != 0 || w % b != 0 {
        return Err(c.err(format!("spatial dims of {tx} are not multiples of blocksize {b}")));
    }
    // DCR (default): output channel (bh*b + bw)*C + c; CRD: c*b*b + bh*b + bw.
    let mode = c.attr_string("mode")?.unwrap_or_else(|| "DCR".into());
    let perm = match mode.as_str() {
        "DCR" => vec![0, 3, 5, 1, 2, 4],
        "CRD" => vec![0, 1, 3, 5, 2, 4],
        other => return Err(c.err(format!("attribute `mode` must be DCR or CRD, got {other:?}"))),
    };
    let y = shuffle(c, x, vec![n, ch, h / b, b, w / b, b], perm, vec![n, ch * b * b, h / b, w / b])?;
    c.set_output(0, y);
    Ok(())
}
