//! Shape manipulation, data movement, constants and casts.

use super::super::tensor::{dtype_name, dtype_of_narrowing, tensor_from_f64, tensor_from_i64};
use super::{Ctx, ImportFn, Res};
use nanoc_ir::{BinaryOp, Bytes, DType, NodeId, Op, Shape, Tensor, TensorType};

/// The shape family's registration table.
pub(super) const OPS: &[(&str, ImportFn)] = &[
    ("Reshape", reshape),
    ("Transpose", transpose),
    ("Slice", slice),
    ("Concat", concat),
    ("Split", split),
    ("Gather", gather),
    ("Squeeze", squeeze),
    ("Unsqueeze", unsqueeze),
    ("Flatten", flatten),
    ("Expand", expand),
    ("Tile", tile),
    ("Shape", shape),
    ("Constant", constant),
    ("ConstantOfShape", constant_of_shape),
    ("Range", range),
    ("Cast", cast),
    ("CastLike", cast_like),
    ("Size", size),
    ("Identity", identity),
    ("Dropout", dropout),
    ("Trilu", trilu),
    ("Where", where_),
    ("Equal", |c| super::math::binary(c, BinaryOp::Equal)),
];

/// Adds a reshape of `x` to `dims` (named after the node).
fn reshape_to(c: &mut Ctx<'_, '_>, x: NodeId, dims: Vec<usize>) -> Res<NodeId> {
    let dtype = c.ty(x).dtype;
    c.add_typed(None, Op::Reshape, &[x], TensorType::new(dtype, dims))
}

fn reshape(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let target = c.require_const_i64s(1)?;
    let allow_zero = c.attr_bool_or("allowzero", false)?;
    let dims = tx.shape.dims();
    let mut out = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, &d) in target.iter().enumerate() {
        match d {
            -1 if infer_at.is_some() => return Err(c.err(format!("shape {target:?} has more than one -1"))),
            -1 => {
                infer_at = Some(i);
                out.push(1);
            }
            0 if !allow_zero => match dims.get(i) {
                Some(&v) => out.push(v),
                None => {
                    return Err(c.err(format!(
                        "shape {target:?} copies dim {i} (0) but the input {tx} has rank {}",
                        dims.len()
                    )));
                }
            },
            d if d >= 0 => out.push(d as usize),
            d => return Err(c.err(format!("shape {target:?} has invalid extent {d}"))),
        }
    }
    let numel = tx.shape.numel();
    if let Some(i) = infer_at {
        let known = Shape(out.clone()).checked_numel().unwrap_or(0);
        if known == 0 || numel % known != 0 {
            return Err(c.err(format!("cannot reshape {tx} to {target:?}: the -1 dim cannot be inferred")));
        }
        out[i] = numel / known;
    }
    if Shape(out.clone()).checked_numel() != Some(numel) {
        return Err(c.err(format!("cannot reshape {tx} ({numel} elements) to {target:?} = {}", Shape(out))));
    }
    let y = reshape_to(c, x, out)?;
    c.set_output(0, y);
    Ok(())
}

fn transpose(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let r = tx.shape.rank();
    let perm = match c.attr_ints("perm")? {
        None => (0..r).rev().collect(),
        Some(p) => p
            .iter()
            .map(|&v| usize::try_from(v).ok())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| c.err(format!("attribute `perm` {p:?} has negative entries")))?,
    };
    let y = if perm.iter().enumerate().all(|(i, &p)| i == p) && perm.len() == r {
        x
    } else {
        c.add(None, Op::Transpose { perm }, &[x])?
    };
    c.set_output(0, y);
    Ok(())
}

/// Slice with constant starts/ends/axes/steps, clamped as ONNX specifies.
fn slice(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let starts = c.require_const_i64s(1)?;
    let ends = c.require_const_i64s(2)?;
    let n = starts.len();
    let axes = c.opt_const_i64s(3)?.unwrap_or_else(|| (0..n as i64).collect());
    let steps = c.opt_const_i64s(4)?.unwrap_or_else(|| vec![1; n]);
    if ends.len() != n || axes.len() != n || steps.len() != n {
        return Err(c.err(format!(
            "starts, ends, axes and steps must have the same length, got {}, {}, {} and {}",
            n,
            ends.len(),
            axes.len(),
            steps.len()
        )));
    }
    let dims = tx.shape.dims().to_vec();
    let r = dims.len();
    let mut out_starts = vec![0usize; r];
    let mut out_steps = vec![1i64; r];
    let mut out = dims.clone();
    let mut seen = vec![false; r];
    for k in 0..n {
        let axis = c.axis(axes[k], r, "axis")?;
        if std::mem::replace(&mut seen[axis], true) {
            return Err(c.err(format!("axis {} is sliced twice", axes[k])));
        }
        let step = steps[k];
        if step == 0 {
            return Err(c.err(format!("step for axis {} is 0", axes[k])));
        }
        let (start, count) = slice_range(starts[k], ends[k], step, dims[axis] as i64);
        out_starts[axis] = start;
        out_steps[axis] = step;
        out[axis] = count;
    }
    let y = if out == dims && out_steps.iter().all(|&s| s == 1) {
        x
    } else {
        c.add_typed(None, Op::Slice { starts: out_starts, steps: out_steps }, &[x], TensorType::new(tx.dtype, out))?
    };
    c.set_output(0, y);
    Ok(())
}

/// First index and element count of an ONNX slice of one dim (start 0 when
/// the slice is empty).
pub(crate) fn slice_range(start: i64, end: i64, step: i64, dim: i64) -> (usize, usize) {
    if dim <= 0 {
        return (0, 0);
    }
    let fix = |v: i64| if v < 0 { v.saturating_add(dim) } else { v };
    let (s, e) = (fix(start), fix(end));
    let (s, count) = if step > 0 {
        let (s, e) = (s.clamp(0, dim), e.clamp(0, dim));
        (s, if e > s { (e as i128 - s as i128 + step as i128 - 1) / step as i128 } else { 0 })
    } else {
        let (s, e) = (s.clamp(0, dim - 1), e.clamp(-1, dim - 1));
        let st = -(step as i128);
        (s, if s > e { (s as i128 - e as i128 + st - 1) / st } else { 0 })
    };
    if count == 0 { (0, 0) } else { (s as usize, count as usize) }
}

fn concat(c: &mut Ctx<'_, '_>) -> Res<()> {
    let n = c.num_inputs();
    if n == 0 {
        return Err(c.err("needs at least one input"));
    }
    let args: Vec<NodeId> = (0..n).map(|i| c.input(i)).collect::<Res<_>>()?;
    let rank = c.ty(args[0]).shape.rank();
    let axis = c.attr_int("axis")?.ok_or_else(|| c.err("attribute `axis` is required"))?;
    let axis = c.axis(axis, rank, "axis")?;
    let y = if args.len() == 1 { args[0] } else { c.add(None, Op::Concat { axis }, &args)? };
    c.set_output(0, y);
    Ok(())
}

/// Split → one slice per output. Sizes from input 1, or `num_outputs`
/// (opset 18; the last chunk may be smaller), or an equal split.
fn split(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let r = tx.shape.rank();
    let axis = c.axis(c.attr_int_or("axis", 0)?, r, "axis")?;
    let dim = tx.shape.dims()[axis];
    let n_out = c.num_outputs();
    if n_out == 0 {
        return Err(c.err("has no outputs"));
    }
    let sizes: Vec<usize> = if let Some(s) = c.opt_const_i64s(1)? {
        let sizes: Option<Vec<usize>> = s.iter().map(|&v| usize::try_from(v).ok()).collect();
        match sizes {
            Some(sz) if sz.len() == n_out && sz.iter().try_fold(0usize, |a, &b| a.checked_add(b)) == Some(dim) => sz,
            _ => {
                return Err(c.err(format!(
                    "split sizes {s:?} must be {n_out} non-negative values summing to the axis extent {dim}"
                )));
            }
        }
    } else if let Some(num) = c.attr_int("num_outputs")? {
        if num != n_out as i64 {
            return Err(c.err(format!("attribute `num_outputs` is {num} but the node has {n_out} outputs")));
        }
        let chunk = dim.div_ceil(n_out);
        let mut left = dim;
        (0..n_out)
            .map(|_| {
                let s = chunk.min(left);
                left -= s;
                s
            })
            .collect()
    } else {
        if dim % n_out != 0 {
            return Err(c.err(format!("axis extent {dim} does not split evenly into {n_out} outputs")));
        }
        vec![dim / n_out; n_out]
    };
    let mut offset = 0;
    for (i, &size) in sizes.iter().enumerate() {
        let mut starts = vec![0usize; r];
        let mut out = tx.shape.dims().to_vec();
        starts[axis] = if size == 0 { 0 } else { offset };
        out[axis] = size;
        offset += size;
        let y = if size == dim {
            x
        } else {
            let suffix = format!("out{i}");
            let suffix = if n_out == 1 { None } else { Some(suffix.as_str()) };
            c.add_typed(suffix, Op::Slice { starts, steps: vec![1; r] }, &[x], TensorType::new(tx.dtype, out))?
        };
        c.set_output(i, y);
    }
    Ok(())
}

fn gather(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let idx = c.input(1)?;
    let axis = c.axis(c.attr_int_or("axis", 0)?, tx.shape.rank(), "axis")?;
    let y = c.add(None, Op::Gather { axis }, &[x, idx])?;
    c.set_output(0, y);
    Ok(())
}

fn squeeze(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let dims = tx.shape.dims();
    let r = dims.len();
    let out: Vec<usize> = match c.opt_const_i64s(1)? {
        None => dims.iter().copied().filter(|&d| d != 1).collect(),
        Some(axes) => {
            let mut drop = vec![false; r];
            for &a in &axes {
                let ax = c.axis(a, r, "axis")?;
                if dims[ax] != 1 {
                    return Err(c.err(format!("cannot squeeze axis {a} of {tx}: its extent is not 1")));
                }
                drop[ax] = true;
            }
            dims.iter().zip(&drop).filter(|(_, d)| !**d).map(|(&v, _)| v).collect()
        }
    };
    let y = reshape_to(c, x, out)?;
    c.set_output(0, y);
    Ok(())
}

fn unsqueeze(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let axes = c.require_const_i64s(1)?;
    let out_rank = tx.shape.rank() + axes.len();
    let mut ones = vec![false; out_rank];
    for &a in &axes {
        let ax = c.axis(a, out_rank, "axis")?;
        if std::mem::replace(&mut ones[ax], true) {
            return Err(c.err(format!("axes {axes:?} repeat an axis")));
        }
    }
    let mut it = tx.shape.dims().iter();
    let out: Vec<usize> = ones.iter().map(|&one| if one { 1 } else { it.next().copied().unwrap_or(1) }).collect();
    let y = reshape_to(c, x, out)?;
    c.set_output(0, y);
    Ok(())
}

fn flatten(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let r = tx.shape.rank() as i64;
    let a = c.attr_int_or("axis", 1)?;
    let axis = if a < 0 { a + r } else { a };
    if axis < 0 || axis > r {
        return Err(c.err(format!("axis {a} is out of range for rank {r}")));
    }
    let (head, tail) = tx.shape.dims().split_at(axis as usize);
    let y = reshape_to(c, x, vec![Shape(head.to_vec()).numel(), Shape(tail.to_vec()).numel()])?;
    c.set_output(0, y);
    Ok(())
}

/// Expand → broadcast to the numpy broadcast of the input shape and the
/// constant target shape.
fn expand(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let s = c.require_const_i64s(1)?;
    let s: Vec<usize> = s
        .iter()
        .map(|&v| usize::try_from(v).ok())
        .collect::<Option<_>>()
        .ok_or_else(|| c.err(format!("shape {s:?} has negative extents")))?;
    let target = Shape::broadcast(&tx.shape, &Shape(s.clone()))
        .ok_or_else(|| c.err(format!("cannot expand {tx} to {}", Shape(s))))?;
    let y =
        if target == tx.shape { x } else { c.add_typed(None, Op::Broadcast, &[x], TensorType::new(tx.dtype, target))? };
    c.set_output(0, y);
    Ok(())
}

/// Tile by constant repeats: `x [d0, d1, ...]` → Reshape `[1, d0, 1, d1, ...]`
/// → Broadcast `[r0, d0, r1, d1, ...]` → Reshape `[r0·d0, r1·d1, ...]`
/// (output index `a·d + b` reads `x[b]`).
fn tile(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let reps = c.require_const_i64s(1)?;
    let dims = tx.shape.dims().to_vec();
    if reps.len() != dims.len() {
        return Err(c.err(format!("repeats {reps:?} must have one entry per dim of {tx}")));
    }
    let reps: Vec<usize> = reps
        .iter()
        .map(|&r| usize::try_from(r).ok())
        .collect::<Option<_>>()
        .ok_or_else(|| c.err(format!("repeats {reps:?} must not be negative")))?;
    let out: Option<Vec<usize>> = dims.iter().zip(&reps).map(|(&d, &r)| d.checked_mul(r)).collect();
    let out = out
        .filter(|o| Shape(o.clone()).checked_numel().is_some())
        .ok_or_else(|| c.err(format!("tiling {tx} by {reps:?} is too large")))?;
    if reps.iter().all(|&r| r == 1) {
        c.set_output(0, x);
        return Ok(());
    }
    let split: Vec<usize> = dims.iter().flat_map(|&d| [1, d]).collect();
    let wide: Vec<usize> = dims.iter().zip(&reps).flat_map(|(&d, &r)| [r, d]).collect();
    let x1 = reshape_to(c, x, split)?;
    let xb = c.add_typed(Some("broadcast"), Op::Broadcast, &[x1], TensorType::new(tx.dtype, wide))?;
    let y = reshape_to(c, xb, out)?;
    c.set_output(0, y);
    Ok(())
}

/// Shape (with `start`/`end`, opset 15) → an i64 constant.
fn shape(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (_, tx) = c.input_typed(0)?;
    let r = tx.shape.rank() as i64;
    let fix = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = fix(c.attr_int_or("start", 0)?);
    let end = fix(c.attr_int_or("end", r)?);
    let dims: Vec<i64> = tx.shape.dims().get(start..end.max(start)).unwrap_or(&[]).iter().map(|&d| d as i64).collect();
    let t = Tensor::from_vec(vec![dims.len()], dims).map_err(|e| c.err(e.to_string()))?;
    let y = c.add_const(None, t);
    c.set_output(0, y);
    Ok(())
}

fn constant(c: &mut Ctx<'_, '_>) -> Res<()> {
    for a in ["sparse_value", "value_string", "value_strings"] {
        if c.has_attr(a) {
            return Err(c.unsupported(format!("attribute `{a}`")));
        }
    }
    let t = if let Some(t) = c.attr_tensor("value")? {
        t
    } else if let Some(v) = c.attr_float("value_float")? {
        Tensor::scalar(v)
    } else if let Some(v) = c.attr_floats("value_floats")? {
        Tensor::from_vec(vec![v.len()], v).map_err(|e| c.err(e.to_string()))?
    } else if let Some(v) = c.attr_int("value_int")? {
        Tensor::scalar(v)
    } else if let Some(v) = c.attr_ints("value_ints")? {
        Tensor::from_vec(vec![v.len()], v).map_err(|e| c.err(e.to_string()))?
    } else {
        return Err(c.err("needs one of the attributes value, value_float(s) or value_int(s)"));
    };
    let y = c.add_const(None, t);
    c.set_output(0, y);
    Ok(())
}

fn constant_of_shape(c: &mut Ctx<'_, '_>) -> Res<()> {
    let s = c.require_const_i64s(0)?;
    let dims: Vec<usize> = s
        .iter()
        .map(|&v| usize::try_from(v).ok())
        .collect::<Option<_>>()
        .ok_or_else(|| c.err(format!("shape {s:?} has negative extents")))?;
    let value = c.attr_tensor("value")?.unwrap_or_else(|| Tensor::scalar(0.0f32));
    if value.shape().numel() != 1 {
        return Err(c.err(format!("attribute `value` must hold one element, got {}", value.ty())));
    }
    let ty = TensorType::new(value.dtype(), dims);
    let n = ty
        .shape
        .checked_numel()
        .filter(|&n| n.saturating_mul(ty.dtype.size_bytes()) <= super::MAX_FOLD_BYTES)
        .ok_or_else(|| c.err(format!("shape {s:?} is too large (over 1 GiB)")))?;
    let bytes = n * ty.dtype.size_bytes();
    let y = if c.imp.may_fold(bytes, bytes) {
        let t = Tensor::from_bytes(ty, Bytes::from_vec(value.bytes().repeat(n))).map_err(|e| c.err(e.to_string()))?;
        c.add_const(None, t)
    } else {
        // Over the fold budget: broadcast the value at run time.
        let scalar =
            Tensor::from_bytes(TensorType::new(value.dtype(), Vec::new()), Bytes::from_vec(value.bytes().to_vec()))
                .map_err(|e| c.err(e.to_string()))?;
        let v = c.add_const(Some("value"), scalar);
        c.add_typed(None, Op::Broadcast, &[v], ty)?
    };
    c.set_output(0, y);
    Ok(())
}

/// Range of constant scalars → a constant.
fn range(c: &mut Ctx<'_, '_>) -> Res<()> {
    const MAX_LEN: i128 = (super::MAX_FOLD_BYTES / 8) as i128;
    let ts = c.require_const(0)?;
    let dtype = ts.dtype();
    for i in 1..3 {
        let t = c.require_const(i)?;
        if t.dtype() != dtype {
            return Err(c.err(format!("start is {} but input {i} is {}", ts.ty(), t.ty())));
        }
    }
    let one = |i: usize| -> Res<Tensor> {
        let t = c.require_const(i)?;
        if t.shape().numel() != 1 {
            return Err(c.err(format!("input {i} must be a scalar, got {}", t.ty())));
        }
        Ok(t)
    };
    let (s, l, d) = (one(0)?, one(1)?, one(2)?);
    let t = if dtype.is_float() {
        let [s, l, d] = [&s, &l, &d].map(|t| t.to_f64_vec().first().copied().unwrap_or(0.0));
        if d == 0.0 || !d.is_finite() || !s.is_finite() || !l.is_finite() {
            return Err(c.err(format!("cannot make a range from {s} to {l} by {d}")));
        }
        let n = ((l - s) / d).ceil().max(0.0);
        if n >= MAX_LEN as f64 {
            return Err(c.err(format!("range from {s} to {l} by {d} is too long")));
        }
        let vals: Vec<f64> = (0..n as usize).map(|i| s + i as f64 * d).collect();
        tensor_from_f64(dtype, vec![vals.len()], &vals)
    } else {
        let get = |t: &Tensor| t.to_i64_vec().ok().and_then(|v| v.first().copied()).unwrap_or(0);
        let (s, l, d) = (get(&s), get(&l), get(&d));
        if d == 0 {
            return Err(c.err("delta is 0"));
        }
        let (num, den) = ((l as i128 - s as i128), d as i128);
        // ceil(num / den) with truncating division.
        let n = (num / den + i128::from(num % den != 0 && (num < 0) == (den < 0))).max(0);
        if n >= MAX_LEN {
            return Err(c.err(format!("range from {s} to {l} by {d} is too long")));
        }
        let vals: Vec<i64> = (0..n as i64).map(|i| s.wrapping_add(i.wrapping_mul(d))).collect();
        tensor_from_i64(dtype, vec![vals.len()], &vals)
    }
    .map_err(|m| c.err(m))?;
    let bytes = t.ty().byte_len();
    if !c.imp.may_fold(bytes, bytes) {
        return Err(c.err(format!("a range of {} elements is over the import budget for constants", t.shape().numel())));
    }
    let y = c.add_const(None, t);
    c.set_output(0, y);
    Ok(())
}

fn cast(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let code = c.attr_int("to")?.ok_or_else(|| c.err("attribute `to` is required"))?;
    let to = i32::try_from(code).ok().and_then(dtype_of_narrowing).ok_or_else(|| {
        c.unsupported(format!("cast to element type {}", dtype_name(i32::try_from(code).unwrap_or(-1))))
    })?;
    let y = if to == tx.dtype { x } else { c.add(None, Op::Cast { to }, &[x])? };
    c.set_output(0, y);
    Ok(())
}

/// CastLike: a cast to the element type of input 1.
fn cast_like(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let to = c.ty(c.input(1)?).dtype;
    let y = if to == tx.dtype { x } else { c.add(None, Op::Cast { to }, &[x])? };
    c.set_output(0, y);
    Ok(())
}

/// Size: the (static) element count, an i64 scalar constant.
fn size(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (_, tx) = c.input_typed(0)?;
    let y = c.add_const(None, Tensor::scalar(tx.shape.numel() as i64));
    c.set_output(0, y);
    Ok(())
}

fn identity(c: &mut Ctx<'_, '_>) -> Res<()> {
    let x = c.input(0)?;
    c.set_output(0, x);
    Ok(())
}

/// Inference dropout is the identity; the mask output is not computed.
fn dropout(c: &mut Ctx<'_, '_>) -> Res<()> {
    let x = c.input(0)?;
    if c.opt_input(2)?.is_some() && c.require_const_i64s(2)?.iter().any(|&v| v != 0) {
        return Err(c.unsupported("training_mode true (only inference is supported)"));
    }
    if c.output_used(1) {
        return Err(c.unsupported("output 1 (mask) is used, but nanoc does not compute it"));
    }
    c.set_output(0, x);
    Ok(())
}

/// Trilu with a constant `k` → the `trilu` op; with `k` computed at run
/// time → `where(col - row >= k (upper) or <= k (lower), x, 0)` over a
/// constant i64 `[rows, cols]` diagonal-offset table.
fn trilu(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let upper = c.attr_bool_or("upper", true)?;
    if let Some(k) = c.opt_input(1)?.filter(|&k| !c.is_const(k)) {
        let tk = c.ty(k);
        if tk.dtype != DType::I64 || tk.shape.numel() != 1 {
            return Err(c.err(format!("k must be one i64 value, got {tk}")));
        }
        let dims = tx.shape.dims();
        let [.., rows, cols] = dims[..] else {
            return Err(c.err(format!("input must have rank >= 2, got {tx}")));
        };
        let offsets: Vec<i64> = (0..rows).flat_map(|r| (0..cols).map(move |col| col as i64 - r as i64)).collect();
        let offsets = Tensor::from_vec(vec![rows, cols], offsets).map_err(|e| c.err(e.to_string()))?;
        let offsets = c.add_const(Some("diagonal_offsets"), offsets);
        let k = c.add_typed(Some("k"), Op::Reshape, &[k], TensorType::new(DType::I64, Vec::new()))?;
        let cmp = if upper { BinaryOp::GreaterEqual } else { BinaryOp::LessEqual };
        let keep = c.add(Some("keep"), Op::Binary(cmp), &[offsets, k])?;
        let zero = c.scalar("zero", tx.dtype, 0.0)?;
        let y = c.add(None, Op::Where, &[keep, x, zero])?;
        c.set_output(0, y);
        return Ok(());
    }
    let k = match c.opt_const_i64s(1)? {
        None => 0,
        Some(v) => match v.as_slice() {
            [k] => *k,
            _ => return Err(c.err(format!("k must be a single value, got {v:?}"))),
        },
    };
    let y = c.add(None, Op::Trilu { upper, k }, &[x])?;
    c.set_output(0, y);
    Ok(())
}

fn where_(c: &mut Ctx<'_, '_>) -> Res<()> {
    let cond = c.input(0)?;
    let (a, ta) = c.input_typed(1)?;
    let (b, tb) = c.input_typed(2)?;
    if ta.dtype != tb.dtype {
        return Err(c.err(format!("X is {ta} but Y is {tb} (nanoc does no implicit type promotion)")));
    }
    if c.ty(cond).dtype != DType::Bool {
        return Err(c.err(format!("condition must be bool, got {}", c.ty(cond))));
    }
    let y = c.add(None, Op::Where, &[cond, a, b])?;
    c.set_output(0, y);
    Ok(())
}
