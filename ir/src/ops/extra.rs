//! Type inference of attention and of the scan, selection, indexing, padding
//! and transposed-convolution ops (cumsum, arg_max/arg_min, top_k,
//! gather_elements, gather_nd, scatter_nd, pad, conv_transpose), kept out
//! of [`Op::infer`](super::Op::infer)'s match so that it stays readable.
//! Every extent is computed with checked arithmetic.

use super::{PadMode, ScatterReduction, Window};
use crate::{DType, Shape, TensorType};

type Inferred = Result<TensorType, String>;

fn axis_ok(axis: usize, x: &TensorType) -> Result<(), String> {
    let rank = x.shape.rank();
    if axis < rank { Ok(()) } else { Err(format!("axis {axis} out of range for rank {rank}")) }
}

fn not_bool(name: &str, x: &TensorType) -> Result<(), String> {
    if x.dtype == DType::Bool { Err(format!("{name} is not defined for {x}")) } else { Ok(()) }
}

fn index_dtype(name: &str, idx: &TensorType) -> Result<(), String> {
    if matches!(idx.dtype, DType::I32 | DType::I64) {
        Ok(())
    } else {
        Err(format!("{name} indices must be i32 or i64, got {idx}"))
    }
}

/// cumsum: same type as x (not bool).
pub(super) fn cumsum(x: &TensorType, axis: usize) -> Inferred {
    axis_ok(axis, x)?;
    not_bool("cumsum", x)?;
    Ok(x.clone())
}

/// arg_max / arg_min: i64, `axis` removed or kept as 1; the axis must not be empty.
pub(super) fn arg_reduce(name: &str, x: &TensorType, axis: usize, keep_dims: bool) -> Inferred {
    axis_ok(axis, x)?;
    not_bool(name, x)?;
    let mut out = x.shape.0.clone();
    if out[axis] == 0 {
        return Err(format!("{name} over the empty axis {axis} of {x}"));
    }
    if keep_dims {
        out[axis] = 1;
    } else {
        out.remove(axis);
    }
    Ok(TensorType::new(DType::I64, out))
}

/// top_k: i64 indices, `axis` shortened to `k` (at most its extent).
pub(super) fn top_k(x: &TensorType, axis: usize, k: usize) -> Inferred {
    axis_ok(axis, x)?;
    not_bool("top_k", x)?;
    let mut out = x.shape.0.clone();
    if k > out[axis] {
        return Err(format!("top_k k = {k} exceeds the extent {} of axis {axis} of {x}", out[axis]));
    }
    out[axis] = k;
    Ok(TensorType::new(DType::I64, out))
}

/// gather_elements: data's dtype, indices' shape; indices have data's rank
/// and fit inside data off `axis`.
pub(super) fn gather_elements(data: &TensorType, idx: &TensorType, axis: usize) -> Inferred {
    axis_ok(axis, data)?;
    index_dtype("gather_elements", idx)?;
    let fits = idx.shape.rank() == data.shape.rank()
        && (0..data.shape.rank()).all(|d| d == axis || idx.shape.0[d] <= data.shape.0[d]);
    if !fits {
        return Err(format!(
            "gather_elements indices {idx} must have the rank of {data} and fit inside it off axis {axis}"
        ));
    }
    Ok(TensorType::new(data.dtype, idx.shape.clone()))
}

/// gather_nd: `indices.shape[..q-1] ++ data.shape[batch_dims + m..]` where
/// `m = indices.shape[q-1] <= rank - batch_dims`.
pub(super) fn gather_nd(data: &TensorType, idx: &TensorType, batch_dims: usize) -> Inferred {
    index_dtype("gather_nd", idx)?;
    let (dd, id) = (&data.shape.0, &idx.shape.0);
    let (r, q) = (dd.len(), id.len());
    if batch_dims >= r.min(q) {
        return Err(format!("gather_nd batch_dims {batch_dims} must be below the ranks of {data} and {idx}"));
    }
    if dd[..batch_dims] != id[..batch_dims] {
        return Err(format!("gather_nd batch dims of {data} and {idx} differ"));
    }
    let m = id[q - 1];
    if m > r - batch_dims {
        return Err(format!(
            "gather_nd index tuples of length {m} are too long for {data} with batch_dims {batch_dims}"
        ));
    }
    let mut out = id[..q - 1].to_vec();
    out.extend_from_slice(&dd[batch_dims + m..]);
    Ok(TensorType::new(data.dtype, out))
}

/// scatter_nd: data's type; updates shaped `indices.shape[..q-1] ++ data.shape[m..]`.
pub(super) fn scatter_nd(
    data: &TensorType,
    idx: &TensorType,
    updates: &TensorType,
    reduction: ScatterReduction,
) -> Inferred {
    index_dtype("scatter_nd", idx)?;
    let (dd, id) = (&data.shape.0, &idx.shape.0);
    let q = id.len();
    if q == 0 || id[q - 1] > dd.len() {
        return Err(format!(
            "scatter_nd indices {idx} must have rank >= 1 and tuples no longer than the rank of {data}"
        ));
    }
    let mut want = id[..q - 1].to_vec();
    want.extend_from_slice(&dd[id[q - 1]..]);
    if updates.dtype != data.dtype || updates.shape.0 != want {
        return Err(format!(
            "scatter_nd updates must be {} for data {data} and indices {idx}, got {updates}",
            TensorType::new(data.dtype, want)
        ));
    }
    if reduction != ScatterReduction::None {
        not_bool("scatter_nd with a reduction", data)?;
    }
    Ok(data.clone())
}

/// pad: every dim grows by its pads; reflect pads stay below the extent,
/// wrap pads at most the extent, and edge/reflect/wrap need a non-empty dim
/// to pad. The optional fill value (constant mode only) is a one-element
/// tensor of x's dtype.
pub(super) fn pad(args: &[&TensorType], mode: PadMode, begin: &[usize], end: &[usize]) -> Inferred {
    let x = args[0];
    let r = x.shape.rank();
    if begin.len() != r || end.len() != r {
        return Err(format!("pad needs one begin and one end pad per dim of {x}"));
    }
    if let Some(v) = args.get(1) {
        if mode != PadMode::Constant {
            return Err(format!("pad mode {} takes no fill value", mode.name()));
        }
        if v.dtype != x.dtype || v.shape.rank() > 1 || v.shape.numel() != 1 {
            return Err(format!("pad fill value must be one {} element, got {v}", x.dtype));
        }
    }
    let mut out = Vec::with_capacity(r);
    for d in 0..r {
        let (dim, b, e) = (x.shape.0[d], begin[d], end[d]);
        let padded = b > 0 || e > 0;
        let ok = match mode {
            PadMode::Constant => true,
            PadMode::Edge => !padded || dim > 0,
            PadMode::Reflect => !padded || (b < dim && e < dim),
            PadMode::Wrap => !padded || (dim > 0 && b <= dim && e <= dim),
        };
        if !ok {
            return Err(format!("pad mode {} cannot pad dim {d} of {x} by ({b}, {e})", mode.name()));
        }
        out.push(dim.checked_add(b).and_then(|v| v.checked_add(e)).ok_or_else(|| format!("pad of {x} overflows"))?);
    }
    Ok(TensorType::new(x.dtype, out))
}

/// conv_transpose: x `[N, C, s...]`, w `[C, M/group, k...]`, bias `[M]`;
/// result `[N, M, o...]` with `o = (s-1)*stride + (k-1)*dilation + 1 +
/// output_padding - pads_begin - pads_end`.
pub(super) fn conv_transpose(
    args: &[&TensorType],
    window: &Window,
    group: usize,
    output_padding: &[usize],
) -> Inferred {
    let (x, w) = (args[0], args[1]);
    if !x.dtype.is_float() || w.dtype != x.dtype {
        return Err(format!("conv_transpose expects float x and w of one dtype, got {x} and {w}"));
    }
    let r = x.shape.rank();
    if r < 3 || w.shape.rank() != r {
        return Err(format!("conv_transpose expects x and w of equal rank >= 3, got {x} and {w}"));
    }
    let c = x.shape.0[1];
    if group == 0 || c % group != 0 || w.shape.0[0] != c {
        return Err(format!("conv_transpose group {group} does not fit input channels {c} and weight {w}"));
    }
    let m = w.shape.0[1].checked_mul(group).ok_or("conv_transpose output channels overflow")?;
    if window.kernel != w.shape.0[2..] {
        return Err(format!("conv_transpose kernel {:?} does not match weight {w}", window.kernel));
    }
    if let Some(b) = args.get(2)
        && (b.shape.0 != [m] || b.dtype != x.dtype)
    {
        return Err(format!("conv_transpose bias must be {}[{m}], got {b}", x.dtype));
    }
    let n = r - 2;
    let lens = [window.strides.len(), window.pads_begin.len(), window.pads_end.len(), window.dilations.len()];
    if lens.iter().chain([&output_padding.len()]).any(|&l| l != n) {
        return Err(format!("conv_transpose needs {n} strides, pads, dilations and output paddings"));
    }
    let mut out = vec![x.shape.0[0], m];
    for i in 0..n {
        let (len, k, s, d, op) =
            (x.shape.0[2 + i], window.kernel[i], window.strides[i], window.dilations[i], output_padding[i]);
        if len == 0 || k == 0 || s == 0 || d == 0 {
            return Err(format!(
                "conv_transpose dim {i}: extent {len}, kernel {k}, stride {s}, dilation {d} must be positive"
            ));
        }
        let full = (len - 1)
            .checked_mul(s)
            .and_then(|v| v.checked_add((k - 1).checked_mul(d)?))
            .and_then(|v| v.checked_add(1)?.checked_add(op))
            .ok_or("conv_transpose output extent overflows")?;
        let o = window.pads_begin[i]
            .checked_add(window.pads_end[i])
            .and_then(|p| full.checked_sub(p))
            .ok_or_else(|| format!("conv_transpose pads of dim {i} exceed its full output extent {full}"))?;
        out.push(o);
    }
    Ok(TensorType::new(x.dtype, out))
}

#[cfg(test)]
mod tests {
    use crate::{DType, Op, PadMode, ScatterReduction, TensorType, Window};

    fn t(d: DType, s: &[usize]) -> TensorType {
        TensorType::new(d, s.to_vec())
    }

    fn f(s: &[usize]) -> TensorType {
        t(DType::F32, s)
    }

    fn infer(op: Op, args: &[TensorType]) -> Result<TensorType, String> {
        op.infer(&args.iter().collect::<Vec<_>>(), &f(&[]))
    }

    #[test]
    fn conv_transpose_shapes() {
        let w = |k: usize, s: usize, pb: usize, pe: usize, d: usize| Window {
            kernel: vec![k],
            strides: vec![s],
            pads_begin: vec![pb],
            pads_end: vec![pe],
            dilations: vec![d],
        };
        let ct = |win, group, op: usize| Op::ConvTranspose { window: win, group, output_padding: vec![op] };
        // (5-1)*2 + (3-1)*1 + 1 + 1 - 1 - 0 = 11; C=4, group 2, M = 3*2.
        let y = infer(ct(w(3, 2, 1, 0, 1), 2, 1), &[f(&[1, 4, 5]), f(&[4, 3, 3]), f(&[6])]).unwrap();
        assert_eq!(y, f(&[1, 6, 11]));
        assert!(infer(ct(w(3, 2, 6, 6, 1), 1, 0), &[f(&[1, 4, 2]), f(&[4, 3, 3])]).unwrap_err().contains("exceed"));
        assert!(infer(ct(w(3, 1, 0, 0, 1), 3, 0), &[f(&[1, 4, 2]), f(&[4, 3, 3])]).unwrap_err().contains("group 3"));
        assert!(
            infer(ct(w(3, 1, 0, 0, 1), 1, 0), &[f(&[1, 4, 2]), f(&[4, 3, 3]), f(&[4])]).unwrap_err().contains("bias")
        );
        let huge = infer(ct(w(3, usize::MAX, 0, 0, 1), 1, usize::MAX), &[f(&[1, 4, 2]), f(&[4, 3, 3])]);
        assert!(huge.unwrap_err().contains("overflows"));
    }

    #[test]
    fn indexing_shapes() {
        let i64t = |s: &[usize]| t(DType::I64, s);
        let nd = |b| Op::GatherNd { batch_dims: b };
        assert_eq!(infer(nd(0), &[f(&[2, 3, 4]), i64t(&[5, 2])]).unwrap(), f(&[5, 4]));
        assert_eq!(infer(nd(1), &[f(&[2, 3, 4]), i64t(&[2, 5, 1])]).unwrap(), f(&[2, 5, 4]));
        assert!(infer(nd(0), &[f(&[2, 3]), i64t(&[5, 3])]).unwrap_err().contains("too long"));
        assert!(infer(nd(1), &[f(&[2, 3]), i64t(&[3, 1])]).unwrap_err().contains("batch dims"));
        assert!(infer(nd(0), &[f(&[2, 3]), f(&[1, 1])]).unwrap_err().contains("must be i32 or i64"));
        let sc = Op::ScatterNd { reduction: ScatterReduction::Add };
        assert_eq!(infer(sc.clone(), &[f(&[4, 3]), i64t(&[2, 1]), f(&[2, 3])]).unwrap(), f(&[4, 3]));
        assert!(infer(sc, &[f(&[4, 3]), i64t(&[2, 1]), f(&[2, 4])]).unwrap_err().contains("updates must be f32[2,3]"));
        let ge = Op::GatherElements { axis: 0 };
        assert_eq!(infer(ge.clone(), &[f(&[3, 4]), i64t(&[7, 2])]).unwrap(), f(&[7, 2]));
        assert!(infer(ge, &[f(&[3, 4]), i64t(&[7, 5])]).is_err());
    }

    #[test]
    fn pad_and_selection_shapes() {
        let pad = |mode, b: usize, e: usize| Op::Pad { mode, pads_begin: vec![b], pads_end: vec![e] };
        assert_eq!(infer(pad(PadMode::Constant, 2, 1), &[f(&[3]), f(&[])]).unwrap(), f(&[6]));
        assert!(infer(pad(PadMode::Edge, 2, 1), &[f(&[3]), f(&[])]).unwrap_err().contains("takes no fill value"));
        assert!(infer(pad(PadMode::Constant, 1, 0), &[f(&[3]), f(&[2])]).unwrap_err().contains("one f32 element"));
        assert!(infer(pad(PadMode::Wrap, 4, 0), &[f(&[3])]).is_err());
        assert!(infer(pad(PadMode::Edge, 1, 0), &[f(&[0])]).is_err());
        assert!(infer(pad(PadMode::Constant, usize::MAX, 1), &[f(&[3])]).unwrap_err().contains("overflows"));
        let arg = Op::ArgReduce { max: true, axis: 1, keep_dims: false, select_last: false };
        assert_eq!(infer(arg.clone(), &[f(&[2, 3, 4])]).unwrap(), t(DType::I64, &[2, 4]));
        assert!(infer(arg, &[f(&[2, 0])]).unwrap_err().contains("empty axis"));
        assert!(infer(Op::TopK { axis: 2, k: 1, largest: true }, &[f(&[2, 3])]).unwrap_err().contains("out of range"));
    }
}

/// attention: q `[B, H, Sq, D]`, k `[B, Hkv, Sk, D]`, v `[B, Hkv, Sk, Dv]`
/// and an optional mask broadcasting to `[B, H, Sq, Sk]`, all of one float
/// dtype, `Hkv` dividing `H`; result `[B, H, Sq, Dv]`.
pub(super) fn attention(args: &[&TensorType]) -> Inferred {
    let (q, k, v) = (args[0], args[1], args[2]);
    if !q.dtype.is_float() {
        return Err(format!("attention expects float operands, got q {q}"));
    }
    for (what, t) in [("k", k), ("v", v)].into_iter().chain(args.get(3).map(|m| ("mask", *m))) {
        if t.dtype != q.dtype {
            return Err(format!("attention {what} {t} differs in dtype from q {q}"));
        }
    }
    let dims = |what: &str, t: &TensorType| -> Result<[usize; 4], String> {
        <[usize; 4]>::try_from(t.shape.dims())
            .map_err(|_| format!("attention {what} must have rank 4 ([batch, heads, seq, head size]), got {t}"))
    };
    let [b, h, sq, d] = dims("q", q)?;
    let [kb, hkv, sk, kd] = dims("k", k)?;
    let [vb, vh, vs, dv] = dims("v", v)?;
    if kb != b || vb != b {
        return Err(format!("attention batch sizes differ: q {q}, k {k}, v {v}"));
    }
    if kd != d {
        return Err(format!("attention head sizes of q {q} and k {k} differ"));
    }
    if vh != hkv || vs != sk {
        return Err(format!("attention v {v} must match k {k} in heads and sequence length"));
    }
    if hkv == 0 || h % hkv != 0 {
        return Err(format!("attention kv heads ({hkv}) must divide query heads ({h})"));
    }
    let out_scores = Shape(vec![b, h, sq, sk]);
    if let Some(m) = args.get(3)
        && Shape::broadcast(&m.shape, &out_scores).as_ref() != Some(&out_scores)
    {
        return Err(format!("attention mask {m} does not broadcast to the scores [{b}, {h}, {sq}, {sk}]"));
    }
    Ok(TensorType::new(q.dtype, vec![b, h, sq, dv]))
}
