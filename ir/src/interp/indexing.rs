//! Indexing and padding: gather_elements, gather_nd, scatter_nd and pad.
//! Like `movement`, they copy raw element bytes (so every dtype works),
//! except scatter_nd's reductions, which compute (floats in f32, integers
//! wrapping). Negative indices count from the end; any other index out of
//! range is an error.

use super::{all_indices, floats, from_bytes, from_floats, from_ints, ints};
use crate::{PadMode, ScatterReduction, Shape, Tensor, TensorType};

/// Index `i` into an axis of `size` (negative counts from the end).
fn wrap(op: &str, i: i64, size: usize) -> Result<usize, String> {
    let j = if i < 0 { i.checked_add(size as i64) } else { Some(i) };
    j.and_then(|j| usize::try_from(j).ok())
        .filter(|&j| j < size)
        .ok_or_else(|| format!("{op} index {i} is out of range for an axis of size {size} (valid: -{size}..{size})"))
}

/// The bytes of element `i` of `t`.
fn elem(t: &Tensor, i: usize) -> &[u8] {
    let es = t.dtype().size_bytes();
    &t.bytes()[i * es..(i + 1) * es]
}

fn index_values(indices: &Tensor) -> Result<Vec<i64>, String> {
    indices.to_i64_vec().map_err(|e| e.to_string())
}

/// `out[p] = data[p with p[axis] := indices[p]]`.
pub(super) fn gather_elements(data: &Tensor, indices: &Tensor, axis: usize, ty: &TensorType) -> Result<Tensor, String> {
    let size = data.shape().dims()[axis];
    let ds = data.shape().strides();
    let mut bytes = Vec::with_capacity(ty.byte_len());
    for (p, &i) in all_indices(indices.shape().dims()).iter().zip(&index_values(indices)?) {
        let j = wrap("gather_elements", i, size)?;
        let off: usize = p.iter().enumerate().map(|(d, &v)| if d == axis { j } else { v } * ds[d]).sum();
        bytes.extend_from_slice(elem(data, off));
    }
    from_bytes(ty, bytes)
}

/// Flat offsets into a tensor of dims `dims` (strides `strides`) of the
/// slices addressed by each `m`-long tuple of `idx`, tuple `t` reading
/// `idx[t*m..(t+1)*m]` as indices into dims `first..first+m`.
fn tuple_offsets(
    op: &str,
    idx: &[i64],
    m: usize,
    dims: &[usize],
    strides: &[usize],
    first: usize,
) -> Result<Vec<usize>, String> {
    let count = if m == 0 { 0 } else { idx.len() / m };
    (0..count)
        .map(|t| (0..m).map(|i| Ok(wrap(op, idx[t * m + i], dims[first + i])? * strides[first + i])).sum())
        .collect()
}

/// GatherND: for each index tuple (the last dim of `indices`), the slice of
/// `data` it addresses within its batch (the first `batch_dims` dims).
pub(super) fn gather_nd(data: &Tensor, indices: &Tensor, batch_dims: usize, ty: &TensorType) -> Result<Tensor, String> {
    let (dd, id) = (data.shape().dims(), indices.shape().dims());
    let q = id.len();
    let m = id[q - 1];
    let slice: usize = dd[batch_dims + m..].iter().product();
    let ds = data.shape().strides();
    let idx = index_values(indices)?;
    let es = data.dtype().size_bytes();
    let mut bytes = Vec::with_capacity(ty.byte_len());
    for (t, p) in all_indices(&id[..q - 1]).iter().enumerate() {
        let batch: usize = (0..batch_dims).map(|d| p[d] * ds[d]).sum();
        let within = tuple_offsets("gather_nd", &idx[t * m..(t + 1) * m], m, dd, &ds, batch_dims)?;
        let at = batch + within.first().copied().unwrap_or(0);
        bytes.extend_from_slice(&data.bytes()[at * es..(at + slice) * es]);
    }
    from_bytes(ty, bytes)
}

/// ScatterND: a copy of `data` where, in order, each index tuple's slice is
/// replaced by (or combined with) the matching slice of `updates`.
pub(super) fn scatter_nd(
    data: &Tensor,
    indices: &Tensor,
    updates: &Tensor,
    reduction: ScatterReduction,
    ty: &TensorType,
) -> Result<Tensor, String> {
    let (dd, id) = (data.shape().dims(), indices.shape().dims());
    let m = id[id.len() - 1];
    let slice: usize = dd[m..].iter().product();
    let tuples: usize = id[..id.len() - 1].iter().product();
    let idx = index_values(indices)?;
    let offsets: Vec<usize> =
        if m == 0 { vec![0; tuples] } else { tuple_offsets("scatter_nd", &idx, m, dd, &data.shape().strides(), 0)? };
    match reduction {
        ScatterReduction::None => {
            let es = data.dtype().size_bytes();
            let mut bytes = data.bytes().to_vec();
            for (t, &o) in offsets.iter().enumerate() {
                bytes[o * es..(o + slice) * es].copy_from_slice(&updates.bytes()[t * slice * es..(t + 1) * slice * es]);
            }
            from_bytes(ty, bytes)
        }
        _ if data.dtype().is_float() => {
            let (mut out, u) = (floats(data)?, floats(updates)?);
            for (t, &o) in offsets.iter().enumerate() {
                for s in 0..slice {
                    let (a, b) = (out[o + s], u[t * slice + s]);
                    out[o + s] = match reduction {
                        ScatterReduction::Add => a + b,
                        ScatterReduction::Mul => a * b,
                        // NaN propagates, like the binary max/min.
                        ScatterReduction::Max if a.is_nan() || b.is_nan() => f32::NAN,
                        ScatterReduction::Min if a.is_nan() || b.is_nan() => f32::NAN,
                        ScatterReduction::Max => a.max(b),
                        ScatterReduction::Min => a.min(b),
                        ScatterReduction::None => b,
                    };
                }
            }
            from_floats(ty, &out)
        }
        _ => {
            let (mut out, u) = (ints(data)?, ints(updates)?);
            for (t, &o) in offsets.iter().enumerate() {
                for s in 0..slice {
                    let (a, b) = (out[o + s], u[t * slice + s]);
                    out[o + s] = match reduction {
                        ScatterReduction::Add => a.wrapping_add(b),
                        ScatterReduction::Mul => a.wrapping_mul(b),
                        ScatterReduction::Max => a.max(b),
                        ScatterReduction::Min => a.min(b),
                        ScatterReduction::None => b,
                    };
                }
            }
            from_ints(ty, &out)
        }
    }
}

/// Pads every dim: output coordinate `o` reads input coordinate `o -
/// begin`, mapped back inside `[0, n)` by the mode (mirror without the edge,
/// repeat the edge, wrap around) or, in constant mode, replaced by `value`
/// (zero bytes, i.e. 0 / false, when absent).
pub(super) fn pad(
    x: &Tensor,
    value: Option<&Tensor>,
    mode: PadMode,
    begin: &[usize],
    ty: &TensorType,
) -> Result<Tensor, String> {
    let dims = x.shape().dims();
    let strides = Shape(dims.to_vec()).strides();
    let es = x.dtype().size_bytes();
    let fill = match value {
        Some(v) => v.bytes().to_vec(),
        None => vec![0; es],
    };
    let out_dims = ty.shape.dims();
    let mut bytes = Vec::with_capacity(ty.byte_len());
    let mut o = vec![0usize; out_dims.len()];
    let mut more = ty.shape.numel() > 0;
    while more {
        let mut offset = Some(0usize);
        for d in 0..dims.len() {
            let (c, n) = (o[d] as i64 - begin[d] as i64, dims[d] as i64);
            let src = if (0..n).contains(&c) {
                c
            } else {
                match mode {
                    PadMode::Constant => {
                        offset = None;
                        break;
                    }
                    PadMode::Edge => c.clamp(0, n - 1),
                    PadMode::Reflect if c < 0 => -c,
                    PadMode::Reflect => 2 * (n - 1) - c,
                    PadMode::Wrap => c.rem_euclid(n.max(1)),
                }
            };
            if !(0..n).contains(&src) {
                return Err(format!("pad ({}) of {} reads index {src} of dim {d}", mode.name(), x.ty()));
            }
            offset = offset.map(|off| off + src as usize * strides[d]);
        }
        match offset {
            Some(off) => bytes.extend_from_slice(elem(x, off)),
            None => bytes.extend_from_slice(&fill),
        }
        more = super::next_index(&mut o, out_dims);
    }
    from_bytes(ty, bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::eval_op;
    use crate::{DType, Op, PadMode, ScatterReduction, Tensor, TensorType};

    fn ty(d: DType, shape: &[usize]) -> TensorType {
        TensorType::new(d, shape.to_vec())
    }

    fn i64s(shape: &[usize], v: &[i64]) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v.to_vec()).unwrap()
    }

    fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v.to_vec()).unwrap()
    }

    #[test]
    fn gather_elements_along_each_axis() {
        // data [[1,2],[3,4]]; axis 1, indices [[0,0],[1,0]] -> [[1,1],[4,3]] (the ONNX example).
        let data = f32s(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
        let idx = i64s(&[2, 2], &[0, 0, 1, 0]);
        let y = eval_op(&Op::GatherElements { axis: 1 }, &[&data, &idx], &ty(DType::F32, &[2, 2])).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![1.0, 1.0, 4.0, 3.0]);
        // axis 0 with a negative index and fewer rows than data: [[x[1][0], x[0][1]]] = [[3, 2]].
        let idx = i64s(&[1, 2], &[-1, 0]);
        let y = eval_op(&Op::GatherElements { axis: 0 }, &[&data, &idx], &ty(DType::F32, &[1, 2])).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![3.0, 2.0]);
        let idx = i64s(&[1, 2], &[2, 0]);
        let e = eval_op(&Op::GatherElements { axis: 0 }, &[&data, &idx], &ty(DType::F32, &[1, 2])).unwrap_err();
        assert_eq!(e, "gather_elements index 2 is out of range for an axis of size 2 (valid: -2..2)");
    }

    #[test]
    fn gather_nd_with_and_without_batch_dims() {
        // data 0..8 as [2,2,2]. Tuples of length 2 pick rows: [[0,1],[1,0]] -> [[2,3],[4,5]].
        let data = i64s(&[2, 2, 2], &[0, 1, 2, 3, 4, 5, 6, 7]);
        let idx = i64s(&[2, 2], &[0, 1, 1, 0]);
        let y = eval_op(&Op::GatherNd { batch_dims: 0 }, &[&data, &idx], &ty(DType::I64, &[2, 2])).unwrap();
        assert_eq!(y.to_vec::<i64>().unwrap(), vec![2, 3, 4, 5]);
        // Full tuples pick elements: [[1,1,1],[0,1,0]] -> [7, 2].
        let idx = i64s(&[2, 3], &[1, 1, 1, 0, 1, 0]);
        let y = eval_op(&Op::GatherNd { batch_dims: 0 }, &[&data, &idx], &ty(DType::I64, &[2])).unwrap();
        assert_eq!(y.to_vec::<i64>().unwrap(), vec![7, 2]);
        // batch_dims 1: batch 0 takes row 1 ([2,3]), batch 1 takes row -2 = 0 ([4,5]).
        let idx = i64s(&[2, 1], &[1, -2]);
        let y = eval_op(&Op::GatherNd { batch_dims: 1 }, &[&data, &idx], &ty(DType::I64, &[2, 2])).unwrap();
        assert_eq!(y.to_vec::<i64>().unwrap(), vec![2, 3, 4, 5]);
        let idx = i64s(&[2, 1], &[1, 2]);
        let e = eval_op(&Op::GatherNd { batch_dims: 1 }, &[&data, &idx], &ty(DType::I64, &[2, 2])).unwrap_err();
        assert!(e.starts_with("gather_nd index 2 is out of range"), "{e}");
    }

    #[test]
    fn scatter_nd_replaces_and_reduces_in_order() {
        // The ONNX example: data 1..8, indices [[4],[3],[1],[7]], updates [9,10,11,12].
        let data = f32s(&[8], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        let idx = i64s(&[4, 1], &[4, 3, 1, 7]);
        let upd = f32s(&[4], &[9.0, 10.0, 11.0, 12.0]);
        let op = |reduction| Op::ScatterNd { reduction };
        let t = ty(DType::F32, &[8]);
        let y = eval_op(&op(ScatterReduction::None), &[&data, &idx, &upd], &t).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![1.0, 11.0, 3.0, 10.0, 9.0, 6.0, 7.0, 12.0]);
        // Duplicate index -1 (= 7) with add and mul: both updates apply.
        let idx = i64s(&[2, 1], &[-1, 7]);
        let upd = f32s(&[2], &[2.0, 3.0]);
        let y = eval_op(&op(ScatterReduction::Add), &[&data, &idx, &upd], &t).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap()[7], 13.0);
        let y = eval_op(&op(ScatterReduction::Mul), &[&data, &idx, &upd], &t).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap()[7], 48.0);
        let y = eval_op(&op(ScatterReduction::Max), &[&data, &idx, &upd], &t).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap()[7], 8.0);
        let y = eval_op(&op(ScatterReduction::Min), &[&data, &idx, &upd], &t).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap()[7], 2.0);
        // Row updates of a [3,2] i64 tensor: row 2 := [7,8], row 0 := [5,6].
        let data = i64s(&[3, 2], &[0; 6]);
        let idx = i64s(&[2, 1], &[2, 0]);
        let upd = i64s(&[2, 2], &[7, 8, 5, 6]);
        let y = eval_op(&op(ScatterReduction::None), &[&data, &idx, &upd], &ty(DType::I64, &[3, 2])).unwrap();
        assert_eq!(y.to_vec::<i64>().unwrap(), vec![5, 6, 0, 0, 7, 8]);
        let idx = i64s(&[1, 1], &[3]);
        let upd = i64s(&[1, 2], &[1, 1]);
        let e = eval_op(&op(ScatterReduction::Add), &[&data, &idx, &upd], &ty(DType::I64, &[3, 2])).unwrap_err();
        assert_eq!(e, "scatter_nd index 3 is out of range for an axis of size 3 (valid: -3..3)");
    }

    #[test]
    fn pad_modes() {
        let x = f32s(&[3], &[1.0, 2.0, 3.0]);
        let pad = |mode, b: usize, e: usize, v: Option<&Tensor>| {
            let op = Op::Pad { mode, pads_begin: vec![b], pads_end: vec![e] };
            let mut args = vec![&x];
            args.extend(v);
            eval_op(&op, &args, &ty(DType::F32, &[3 + b + e])).unwrap().to_vec::<f32>().unwrap()
        };
        let nine = Tensor::scalar(9.0f32);
        assert_eq!(pad(PadMode::Constant, 2, 1, None), vec![0.0, 0.0, 1.0, 2.0, 3.0, 0.0]);
        assert_eq!(pad(PadMode::Constant, 1, 0, Some(&nine)), vec![9.0, 1.0, 2.0, 3.0]);
        assert_eq!(pad(PadMode::Reflect, 2, 2, None), vec![3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0]);
        assert_eq!(pad(PadMode::Edge, 2, 1, None), vec![1.0, 1.0, 1.0, 2.0, 3.0, 3.0]);
        assert_eq!(pad(PadMode::Wrap, 2, 3, None), vec![2.0, 3.0, 1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
        // 2-D: reflect rows, constant-free edge columns.
        let x = i64s(&[2, 2], &[1, 2, 3, 4]);
        let op = Op::Pad { mode: PadMode::Edge, pads_begin: vec![1, 0], pads_end: vec![0, 1] };
        let y = eval_op(&op, &[&x], &ty(DType::I64, &[3, 3])).unwrap();
        assert_eq!(y.to_vec::<i64>().unwrap(), vec![1, 2, 2, 1, 2, 2, 3, 4, 4]);
        let op = Op::Pad { mode: PadMode::Reflect, pads_begin: vec![1, 1], pads_end: vec![0, 0] };
        let y = eval_op(&op, &[&x], &ty(DType::I64, &[3, 3])).unwrap();
        assert_eq!(y.to_vec::<i64>().unwrap(), vec![4, 3, 4, 2, 1, 2, 4, 3, 4]);
        // Reflect needs pads below the extent.
        let op = Op::Pad { mode: PadMode::Reflect, pads_begin: vec![2, 0], pads_end: vec![0, 0] };
        assert!(eval_op(&op, &[&x], &ty(DType::I64, &[4, 2])).is_err());
        // Constant padding of an empty tensor is all fill.
        let e = f32s(&[0], &[]);
        let op = Op::Pad { mode: PadMode::Constant, pads_begin: vec![1], pads_end: vec![1] };
        let y = eval_op(&op, &[&e, &nine], &ty(DType::F32, &[2])).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![9.0, 9.0]);
    }
}
