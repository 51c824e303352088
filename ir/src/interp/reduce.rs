//! Reductions and pooling.

use super::{Cell, Offsets, all_indices, floats, from_floats, from_ints, ints, window_cell};
use crate::{Op, ReduceKind, Shape, Tensor, TensorType, Window};

/// `max` that propagates NaN (like numpy), unlike `f64::max`.
fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b > a { b } else { a }
}

/// Sum, mean or max over `axes`. Every input element is added into the
/// output element its non-reduced coordinates select (`keep_dims` does not
/// change the element order). Floats accumulate in f64; integer sums wrap.
pub(super) fn reduce(x: &Tensor, kind: ReduceKind, axes: &[usize], ty: &TensorType) -> Result<Tensor, String> {
    let name = Op::Reduce { kind, axes: Vec::new(), keep_dims: false }.name();
    let dims = x.shape().dims();
    // Output strides laid over the input's dims, 0 along reduced axes.
    let kept: Vec<usize> = dims.iter().enumerate().map(|(d, &e)| if axes.contains(&d) { 1 } else { e }).collect();
    let mut strides = Shape(kept.clone()).strides();
    for &a in axes {
        if let Some(s) = strides.get_mut(a) {
            *s = 0;
        }
    }
    let out_len: usize = kept.iter().product();
    let count: usize = axes.iter().filter_map(|&a| dims.get(a)).product();
    let targets = || Offsets::new(dims, &strides);

    if x.dtype().is_float() {
        let init = if kind == ReduceKind::Max { f64::NEG_INFINITY } else { 0.0 };
        let mut acc = vec![init; out_len];
        for (&v, o) in floats(x)?.iter().zip(targets()) {
            let v = f64::from(v);
            acc[o] = if kind == ReduceKind::Max { nan_max(acc[o], v) } else { acc[o] + v };
        }
        if kind == ReduceKind::Mean {
            acc.iter_mut().for_each(|a| *a /= count as f64);
        }
        from_floats(ty, &acc.iter().map(|&a| a as f32).collect::<Vec<_>>())
    } else if x.dtype().is_int() && kind != ReduceKind::Mean {
        // The max of no elements is the type's minimum (-inf for floats).
        let init = match (kind, x.dtype()) {
            (ReduceKind::Max, crate::DType::I8) => i8::MIN as i64,
            (ReduceKind::Max, crate::DType::U8) => 0,
            (ReduceKind::Max, crate::DType::I32) => i32::MIN as i64,
            (ReduceKind::Max, _) => i64::MIN,
            _ => 0,
        };
        let mut acc = vec![init; out_len];
        for (&v, o) in ints(x)?.iter().zip(targets()) {
            acc[o] = if kind == ReduceKind::Max { acc[o].max(v) } else { acc[o].wrapping_add(v) };
        }
        from_ints(ty, &acc)
    } else {
        Err(format!("{name} is not defined for {}", x.ty()))
    }
}

/// Builds a pooling result: `f(plane, out_cell)` for every (n, c) plane of
/// the input and every output spatial position, in output order.
fn pool(x: &Tensor, ty: &TensorType, mut f: impl FnMut(&[f32], &[usize]) -> f32) -> Result<Tensor, String> {
    let dims = x.shape().dims();
    if dims.len() < 3 {
        return Err(format!("pooling input {} has rank < 3", x.ty()));
    }
    let spatial = &dims[2..];
    let out_spatial = ty.shape.dims().get(2..).ok_or_else(|| format!("pooling result {ty} has rank < 3"))?;
    let plane_len: usize = spatial.iter().product();
    let planes: usize = dims[..2].iter().product();
    let out_cells = all_indices(out_spatial);
    let xs = floats(x)?;
    let mut out = Vec::with_capacity(ty.shape.numel());
    for p in 0..planes {
        let plane = &xs[p * plane_len..(p + 1) * plane_len];
        for o in &out_cells {
            out.push(f(plane, o));
        }
    }
    from_floats(ty, &out)
}

/// Max over each window's real cells (padding is ignored); a window with no
/// real cell gives -inf. NaN propagates.
pub(super) fn max_pool(x: &Tensor, window: &Window, ty: &TensorType) -> Result<Tensor, String> {
    let spatial = x.shape().dims().get(2..).unwrap_or_default().to_vec();
    let strides = Shape(spatial.clone()).strides();
    let kernel_cells = all_indices(&window.kernel);
    pool(x, ty, |plane, o| {
        let mut best = f64::NEG_INFINITY;
        for k in &kernel_cells {
            if let Cell::Real(off) = window_cell(window, o, k, &spatial, &strides) {
                best = nan_max(best, f64::from(plane[off]));
            }
        }
        best as f32
    })
}

/// Mean over each window. The divisor is the number of cells inside the
/// padded extent (real and padding) if `count_include_pad`, else the number
/// of real cells; a window with no counted cell gives 0.
pub(super) fn avg_pool(
    x: &Tensor,
    window: &Window,
    count_include_pad: bool,
    ty: &TensorType,
) -> Result<Tensor, String> {
    let spatial = x.shape().dims().get(2..).unwrap_or_default().to_vec();
    let strides = Shape(spatial.clone()).strides();
    let kernel_cells = all_indices(&window.kernel);
    pool(x, ty, |plane, o| {
        let (mut sum, mut count) = (0f64, 0usize);
        for k in &kernel_cells {
            match window_cell(window, o, k, &spatial, &strides) {
                Cell::Real(off) => {
                    sum += f64::from(plane[off]);
                    count += 1;
                }
                Cell::Padding if count_include_pad => count += 1,
                Cell::Padding | Cell::Outside => {}
            }
        }
        if count == 0 { 0.0 } else { (sum / count as f64) as f32 }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::eval_op;
    use crate::{DType, Op, ReduceKind, Tensor, TensorType, Window};

    fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v.to_vec()).unwrap()
    }

    fn ty(d: DType, shape: &[usize]) -> TensorType {
        TensorType::new(d, shape.to_vec())
    }

    fn reduce(kind: ReduceKind, axes: &[usize], keep_dims: bool, x: &Tensor, out: &[usize]) -> Tensor {
        let op = Op::Reduce { kind, axes: axes.to_vec(), keep_dims };
        eval_op(&op, &[x], &ty(x.dtype(), out)).unwrap()
    }

    #[test]
    fn reduce_float() {
        let x = f32s(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(reduce(ReduceKind::Sum, &[1], false, &x, &[2]).to_vec::<f32>().unwrap(), vec![6.0, 15.0]);
        let k = reduce(ReduceKind::Sum, &[1], true, &x, &[2, 1]);
        assert_eq!(k.shape().dims(), &[2, 1]);
        assert_eq!(k.to_vec::<f32>().unwrap(), vec![6.0, 15.0]);
        assert_eq!(reduce(ReduceKind::Mean, &[0], false, &x, &[3]).to_vec::<f32>().unwrap(), vec![2.5, 3.5, 4.5]);
        assert_eq!(reduce(ReduceKind::Max, &[0, 1], false, &x, &[]).to_vec::<f32>().unwrap(), vec![6.0]);
        assert_eq!(reduce(ReduceKind::Mean, &[0, 1], true, &x, &[1, 1]).to_vec::<f32>().unwrap(), vec![3.5]);
        // Middle axis of [2,2,2]: pairs (0,2), (1,3), (4,6), (5,7).
        let x = f32s(&[2, 2, 2], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -7.0]);
        assert_eq!(
            reduce(ReduceKind::Max, &[1], false, &x, &[2, 2]).to_vec::<f32>().unwrap(),
            vec![2.0, 3.0, 6.0, 5.0]
        );
        // No axes: identity.
        assert_eq!(reduce(ReduceKind::Sum, &[], false, &x, &[2, 2, 2]), x);
    }

    #[test]
    fn reduce_integers() {
        let x = Tensor::from_vec(vec![2, 2], vec![3i64, -5, 7, 1]).unwrap();
        assert_eq!(reduce(ReduceKind::Sum, &[0], false, &x, &[2]).to_vec::<i64>().unwrap(), vec![10, -4]);
        assert_eq!(reduce(ReduceKind::Max, &[1], false, &x, &[2]).to_vec::<i64>().unwrap(), vec![3, 7]);
        let x = Tensor::from_vec(vec![2], vec![100i8, 100]).unwrap();
        assert_eq!(reduce(ReduceKind::Sum, &[0], false, &x, &[]).to_vec::<i8>().unwrap(), vec![-56]); // 200 wraps
        let b = Tensor::from_vec(vec![2], vec![true, false]).unwrap();
        let e = eval_op(
            &Op::Reduce { kind: ReduceKind::Sum, axes: vec![0], keep_dims: false },
            &[&b],
            &ty(DType::Bool, &[]),
        )
        .unwrap_err();
        assert_eq!(e, "reduce_sum is not defined for bool[2]");
    }

    fn window(kernel: &[usize], strides: &[usize], pb: &[usize], pe: &[usize]) -> Window {
        Window {
            kernel: kernel.to_vec(),
            strides: strides.to_vec(),
            pads_begin: pb.to_vec(),
            pads_end: pe.to_vec(),
            dilations: vec![1; kernel.len()],
        }
    }

    #[test]
    fn max_pool_ignores_padding() {
        let x = f32s(&[1, 1, 3, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
        let op = Op::MaxPool { window: window(&[2, 2], &[1, 1], &[0, 0], &[0, 0]) };
        let y = eval_op(&op, &[&x], &ty(DType::F32, &[1, 1, 2, 2])).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![5.0, 6.0, 8.0, 9.0]);
        // All-negative input with padding: a padded cell must not win as 0.
        let x = f32s(&[1, 1, 3], &[-1.0, -2.0, -3.0]);
        let op = Op::MaxPool { window: window(&[2], &[1], &[1], &[1]) };
        let y = eval_op(&op, &[&x], &ty(DType::F32, &[1, 1, 4])).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![-1.0, -1.0, -2.0, -3.0]);
    }

    #[test]
    fn avg_pool_count_include_pad_both_ways_1d() {
        // Padded [0 | 1 2 3 | 0], kernel 2, stride 2: windows [pad,1] and [2,3].
        let x = f32s(&[1, 1, 3], &[1.0, 2.0, 3.0]);
        let w = window(&[2], &[2], &[1], &[1]);
        let t = ty(DType::F32, &[1, 1, 2]);
        let inc = eval_op(&Op::AvgPool { window: w.clone(), count_include_pad: true }, &[&x], &t).unwrap();
        assert_eq!(inc.to_vec::<f32>().unwrap(), vec![0.5, 2.5]);
        let exc = eval_op(&Op::AvgPool { window: w, count_include_pad: false }, &[&x], &t).unwrap();
        assert_eq!(exc.to_vec::<f32>().unwrap(), vec![1.0, 2.5]);
    }

    #[test]
    fn avg_pool_count_include_pad_both_ways_2d() {
        // [[1,2],[3,4]] padded by 1, 2x2 windows: sums [[1,3,2],[4,10,6],[3,7,4]],
        // real-cell counts [[1,2,1],[2,4,2],[1,2,1]].
        let x = f32s(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
        let w = window(&[2, 2], &[1, 1], &[1, 1], &[1, 1]);
        let t = ty(DType::F32, &[1, 1, 3, 3]);
        let inc = eval_op(&Op::AvgPool { window: w.clone(), count_include_pad: true }, &[&x], &t).unwrap();
        assert_eq!(inc.to_vec::<f32>().unwrap(), vec![0.25, 0.75, 0.5, 1.0, 2.5, 1.5, 0.75, 1.75, 1.0]);
        let exc = eval_op(&Op::AvgPool { window: w, count_include_pad: false }, &[&x], &t).unwrap();
        assert_eq!(exc.to_vec::<f32>().unwrap(), vec![1.0, 1.5, 2.0, 2.0, 2.5, 3.0, 3.0, 3.5, 4.0]);
    }

    #[test]
    fn pooling_runs_per_channel() {
        // Two channels, global 1-D average.
        let x = f32s(&[1, 2, 2], &[1.0, 3.0, 10.0, 20.0]);
        let op = Op::AvgPool { window: window(&[2], &[1], &[0], &[0]), count_include_pad: false };
        let y = eval_op(&op, &[&x], &ty(DType::F32, &[1, 2, 1])).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![2.0, 15.0]);
    }
}
