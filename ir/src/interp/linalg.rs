//! Contractions: matmul (numpy semantics) and N-d convolution.

use super::{Cell, Offsets, all_indices, floats, from_floats, from_ints, ints, window_cell};
use crate::{Shape, Tensor, TensorType, Window};

/// Splits a shape of rank >= 2 into (batch dims, rows, cols).
fn split_matrix(dims: &[usize]) -> Result<(&[usize], usize, usize), String> {
    match dims {
        [batch @ .., r, c] => Ok((batch, *r, *c)),
        _ => Err(format!("matmul operand {dims:?} has rank < 2 after promotion")),
    }
}

/// numpy matmul: batch dims broadcast; a rank-1 `a` is a row `[1, k]` and a
/// rank-1 `b` a column `[k, 1]`, the added dim being absent from the result
/// (`ty`'s shape already omits it, and the element order is the same).
/// Floats accumulate in f64; integers wrap.
pub(super) fn matmul(a: &Tensor, b: &Tensor, ty: &TensorType) -> Result<Tensor, String> {
    let promote = |dims: &[usize], row: bool| match dims {
        [k] if row => vec![1, *k],
        [k] => vec![*k, 1],
        _ => dims.to_vec(),
    };
    let (ad, bd) = (promote(a.shape().dims(), true), promote(b.shape().dims(), false));
    let (a_batch, m, k) = split_matrix(&ad)?;
    let (b_batch, k2, n) = split_matrix(&bd)?;
    if k != k2 {
        return Err(format!("matmul inner dims differ: {} x {}", a.shape(), b.shape()));
    }
    let (a_batch, b_batch) = (Shape(a_batch.to_vec()), Shape(b_batch.to_vec()));
    let batch = Shape::broadcast(&a_batch, &b_batch)
        .ok_or_else(|| format!("matmul batch dims do not broadcast: {} x {}", a.shape(), b.shape()))?;
    // Element offset of each batch's matrix in a and b.
    let a_strides: Vec<usize> = a_batch.broadcast_strides(&batch).iter().map(|s| s * m * k).collect();
    let b_strides: Vec<usize> = b_batch.broadcast_strides(&batch).iter().map(|s| s * k * n).collect();
    let matrices = || Offsets::new(batch.dims(), &a_strides).zip(Offsets::new(batch.dims(), &b_strides));
    let out_len = batch.numel() * m * n;

    if a.dtype().is_float() {
        let (x, y) = (floats(a)?, floats(b)?);
        let mut out = Vec::with_capacity(out_len);
        let mut row = vec![0f64; n];
        for (ao, bo) in matrices() {
            for i in 0..m {
                // row = sum_p a[i, p] * b[p, :], accumulated in f64.
                row.fill(0.0);
                for p in 0..k {
                    let av = f64::from(x[ao + i * k + p]);
                    for (acc, &bv) in row.iter_mut().zip(&y[bo + p * n..bo + (p + 1) * n]) {
                        *acc += av * f64::from(bv);
                    }
                }
                out.extend(row.iter().map(|&v| v as f32));
            }
        }
        from_floats(ty, &out)
    } else if a.dtype().is_int() {
        let (x, y) = (ints(a)?, ints(b)?);
        let mut out = Vec::with_capacity(out_len);
        let mut row = vec![0i64; n];
        for (ao, bo) in matrices() {
            for i in 0..m {
                row.fill(0);
                for p in 0..k {
                    let av = x[ao + i * k + p];
                    for (acc, &bv) in row.iter_mut().zip(&y[bo + p * n..bo + (p + 1) * n]) {
                        *acc = acc.wrapping_add(av.wrapping_mul(bv));
                    }
                }
                out.extend_from_slice(&row);
            }
        }
        from_ints(ty, &out)
    } else {
        Err(format!("matmul is not defined for {} operands", a.dtype()))
    }
}

/// N-d convolution (cross-correlation), layout x `[N, C, s...]`, w
/// `[M, C/group, k...]`, optional bias `[M]`, result `[N, M, o...]`.
/// Output channel `oc` belongs to group `oc / (M/group)` and reads input
/// channels `g*C/group ..`; padding cells contribute zero. Accumulates in f64.
pub(super) fn conv(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    window: &Window,
    group: usize,
    ty: &TensorType,
) -> Result<Tensor, String> {
    let (xd, wd, od) = (x.shape().dims(), w.shape().dims(), ty.shape.dims());
    let (batch, channels, spatial) = match xd {
        [n, c, s @ ..] => (*n, *c, s),
        _ => return Err(format!("conv input {} has rank < 3", x.ty())),
    };
    let (out_channels, group_channels, kernel) = match wd {
        [m, cg, k @ ..] => (*m, *cg, k),
        _ => return Err(format!("conv weight {} has rank < 3", w.ty())),
    };
    let out_spatial = od.get(2..).ok_or_else(|| format!("conv result {ty} has rank < 3"))?;
    let out_per_group = out_channels / group.max(1);

    let (xs, ws) = (floats(x)?, floats(w)?);
    let bs = bias.map(floats).transpose()?;
    let plane: usize = spatial.iter().product();
    let plane_strides = Shape(spatial.to_vec()).strides();
    let kernel_cells = all_indices(kernel);
    let out_cells = all_indices(out_spatial);

    let mut out = Vec::with_capacity(ty.shape.numel());
    for b in 0..batch {
        for oc in 0..out_channels {
            let g = oc / out_per_group;
            for o in &out_cells {
                let mut acc = 0f64;
                for ic in 0..group_channels {
                    let x_base = (b * channels + g * group_channels + ic) * plane;
                    let w_base = (oc * group_channels + ic) * kernel_cells.len();
                    for (kf, kc) in kernel_cells.iter().enumerate() {
                        if let Cell::Real(off) = window_cell(window, o, kc, spatial, &plane_strides) {
                            acc += f64::from(xs[x_base + off]) * f64::from(ws[w_base + kf]);
                        }
                    }
                }
                if let Some(bs) = &bs {
                    acc += f64::from(bs[oc]);
                }
                out.push(acc as f32);
            }
        }
    }
    from_floats(ty, &out)
}

/// Transposed convolution: every input element `x[b, c, i...]` adds
/// `x * w[c, m, k...]` to output `[b, g*M/group + m, i*stride + k*dilation -
/// pads_begin]` (for each spatial dim, when inside the output), for output
/// channels `m` of its group `g = c / (C/group)`; then the bias. Layout x
/// `[N, C, s...]`, w `[C, M/group, k...]`. Accumulates in f64.
pub(super) fn conv_transpose(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    window: &Window,
    group: usize,
    ty: &TensorType,
) -> Result<Tensor, String> {
    let (xd, wd, od) = (x.shape().dims(), w.shape().dims(), ty.shape.dims());
    let (batch, channels, spatial) = match xd {
        [n, c, s @ ..] => (*n, *c, s),
        _ => return Err(format!("conv_transpose input {} has rank < 3", x.ty())),
    };
    let (per_group_out, kernel) = match wd {
        [_, mg, k @ ..] => (*mg, k),
        _ => return Err(format!("conv_transpose weight {} has rank < 3", w.ty())),
    };
    let (out_channels, out_spatial) = match od {
        [_, m, o @ ..] => (*m, o),
        _ => return Err(format!("conv_transpose result {ty} has rank < 3")),
    };
    let per_group_in = channels / group.max(1);
    let (xs, ws) = (floats(x)?, floats(w)?);
    let in_cells = all_indices(spatial);
    let kernel_cells = all_indices(kernel);
    let out_plane: usize = out_spatial.iter().product();
    let out_strides = Shape(out_spatial.to_vec()).strides();
    let mut acc = vec![0f64; batch * out_channels * out_plane];
    for b in 0..batch {
        for c in 0..channels {
            let g = c / per_group_in;
            for (ii, icell) in in_cells.iter().enumerate() {
                let xv = f64::from(xs[(b * channels + c) * in_cells.len() + ii]);
                for (kf, kcell) in kernel_cells.iter().enumerate() {
                    // Where this tap lands, if inside the output.
                    let mut at = Some(0usize);
                    for d in 0..spatial.len() {
                        let p = (icell[d] * window.strides[d] + kcell[d] * window.dilations[d]) as i64
                            - window.pads_begin[d] as i64;
                        at = at
                            .filter(|_| (0..out_spatial[d] as i64).contains(&p))
                            .map(|a| a + p as usize * out_strides[d]);
                    }
                    let Some(at) = at else { continue };
                    for m in 0..per_group_out {
                        let oc = g * per_group_out + m;
                        let wv = f64::from(ws[(c * per_group_out + m) * kernel_cells.len() + kf]);
                        acc[(b * out_channels + oc) * out_plane + at] += xv * wv;
                    }
                }
            }
        }
    }
    if let Some(bias) = bias {
        let bs = floats(bias)?;
        for (i, a) in acc.iter_mut().enumerate() {
            *a += f64::from(bs[(i / out_plane) % out_channels]);
        }
    }
    from_floats(ty, &acc.iter().map(|&v| v as f32).collect::<Vec<_>>())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::eval_op;
    use crate::{DType, Op, Tensor, TensorType, Window};

    fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v.to_vec()).unwrap()
    }

    fn ty(d: DType, shape: &[usize]) -> TensorType {
        TensorType::new(d, shape.to_vec())
    }

    fn matmul(a: &Tensor, b: &Tensor, out: &[usize]) -> Vec<f32> {
        eval_op(&Op::MatMul, &[a, b], &ty(DType::F32, out)).unwrap().to_vec::<f32>().unwrap()
    }

    #[test]
    fn matmul_2d() {
        let a = f32s(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
        let b = f32s(&[2, 2], &[5.0, 6.0, 7.0, 8.0]);
        assert_eq!(matmul(&a, &b, &[2, 2]), vec![19.0, 22.0, 43.0, 50.0]);
        // Non-square: [2,3] x [3,1].
        let a = f32s(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let b = f32s(&[3, 1], &[1.0, 0.0, -1.0]);
        assert_eq!(matmul(&a, &b, &[2, 1]), vec![-2.0, -2.0]);
    }

    #[test]
    fn matmul_batched_broadcast() {
        // a: two 1x2 rows [1,2], [3,4] as [2,1,1,2]; b: three 2x1 columns as [3,2,1].
        let a = f32s(&[2, 1, 1, 2], &[1.0, 2.0, 3.0, 4.0]);
        let b = f32s(&[3, 2, 1], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        assert_eq!(matmul(&a, &b, &[2, 3, 1, 1]), vec![1.0, 2.0, 3.0, 3.0, 4.0, 7.0]);
        // Rank-2 b shared by every batch of a.
        let a = f32s(&[2, 1, 2], &[1.0, 2.0, 3.0, 4.0]);
        let b = f32s(&[2, 1], &[5.0, 6.0]);
        assert_eq!(matmul(&a, &b, &[2, 1, 1]), vec![17.0, 39.0]);
    }

    #[test]
    fn matmul_rank_1() {
        let v = f32s(&[3], &[1.0, 2.0, 3.0]);
        let w = f32s(&[3], &[4.0, 5.0, 6.0]);
        assert_eq!(matmul(&v, &w, &[]), vec![32.0]);
        let v = f32s(&[2], &[1.0, 2.0]);
        let m = f32s(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(matmul(&v, &m, &[3]), vec![9.0, 12.0, 15.0]);
        let m = f32s(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
        let ones = f32s(&[2], &[1.0, 1.0]);
        assert_eq!(matmul(&m, &ones, &[2]), vec![3.0, 7.0]);
        // Batched matrix times vector: [2,2,2] x [2] -> [2,2].
        let m = f32s(&[2, 2, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        assert_eq!(matmul(&m, &ones, &[2, 2]), vec![3.0, 7.0, 11.0, 15.0]);
    }

    #[test]
    fn matmul_integers_wrap() {
        let a = Tensor::from_vec(vec![1, 2], vec![1i64, 2]).unwrap();
        let b = Tensor::from_vec(vec![2, 1], vec![3i64, 4]).unwrap();
        let y = eval_op(&Op::MatMul, &[&a, &b], &ty(DType::I64, &[1, 1])).unwrap();
        assert_eq!(y.to_vec::<i64>().unwrap(), vec![11]);
        let a = Tensor::from_vec(vec![1, 1], vec![i32::MAX]).unwrap();
        let b = Tensor::from_vec(vec![1, 1], vec![2i32]).unwrap();
        let y = eval_op(&Op::MatMul, &[&a, &b], &ty(DType::I32, &[1, 1])).unwrap();
        assert_eq!(y.to_vec::<i32>().unwrap(), vec![-2]);
    }

    #[test]
    fn matmul_bad_shapes_are_errors() {
        let a = f32s(&[2, 3], &[0.0; 6]);
        let e = eval_op(&Op::MatMul, &[&a, &a], &ty(DType::F32, &[2, 2])).unwrap_err();
        assert_eq!(e, "matmul inner dims differ: [2,3] x [2,3]");
    }

    fn window(kernel: &[usize], strides: &[usize], pb: &[usize], pe: &[usize], dil: &[usize]) -> Window {
        Window {
            kernel: kernel.to_vec(),
            strides: strides.to_vec(),
            pads_begin: pb.to_vec(),
            pads_end: pe.to_vec(),
            dilations: dil.to_vec(),
        }
    }

    #[test]
    fn conv_1d_padding_stride_dilation_bias() {
        // Padded input [0,1,2,3,4,5,0]; taps at padded 2o and 2o+2 with weights 1 and 10.
        let x = f32s(&[1, 1, 5], &[1.0, 2.0, 3.0, 4.0, 5.0]);
        let w = f32s(&[1, 1, 2], &[1.0, 10.0]);
        let b = f32s(&[1], &[0.5]);
        let op = Op::Conv { window: window(&[2], &[2], &[1], &[1], &[2]), group: 1 };
        let y = eval_op(&op, &[&x, &w, &b], &ty(DType::F32, &[1, 1, 3])).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![20.5, 42.5, 4.5]);
    }

    #[test]
    fn conv_2d_padding_window_sums() {
        // A 2x2 all-ones kernel over [[1,2],[3,4]] padded by 1: each output is its window's sum.
        let x = f32s(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
        let w = f32s(&[1, 1, 2, 2], &[1.0; 4]);
        let op = Op::Conv { window: window(&[2, 2], &[1, 1], &[1, 1], &[1, 1], &[1, 1]), group: 1 };
        let y = eval_op(&op, &[&x, &w], &ty(DType::F32, &[1, 1, 3, 3])).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![1.0, 3.0, 2.0, 4.0, 10.0, 6.0, 3.0, 7.0, 4.0]);
    }

    #[test]
    fn conv_groups() {
        // Two groups of two channels: out0 = x0 + x1, out1 = x2 - x3 + 1.
        let x = f32s(&[1, 4, 1, 1], &[1.0, 2.0, 3.0, 4.0]);
        let w = f32s(&[2, 2, 1, 1], &[1.0, 1.0, 1.0, -1.0]);
        let b = f32s(&[2], &[0.0, 1.0]);
        let op = Op::Conv { window: window(&[1, 1], &[1, 1], &[0, 0], &[0, 0], &[1, 1]), group: 2 };
        let y = eval_op(&op, &[&x, &w, &b], &ty(DType::F32, &[1, 2, 1, 1])).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![3.0, 0.0]);
    }

    #[test]
    fn conv_2d_all_features() {
        // x: ch0 = 4r+c, ch1 = 100+4r+c on a 4x4 grid; 2 groups (depthwise); kernel 2x2,
        // stride 2, dilation 2, pad 1: output (oy,ox) reads real rows 2oy-1, 2oy+1 and
        // cols 2ox-1, 2ox+1. w0 = [[1,0],[0,10]], w1 = ones, bias [1,-1].
        let mut xv: Vec<f32> = (0..16).map(|v| v as f32).collect();
        xv.extend((0..16).map(|v| 100.0 + v as f32));
        let x = f32s(&[1, 2, 4, 4], &xv);
        let w = f32s(&[2, 1, 2, 2], &[1.0, 0.0, 0.0, 10.0, 1.0, 1.0, 1.0, 1.0]);
        let b = f32s(&[2], &[1.0, -1.0]);
        let op = Op::Conv { window: window(&[2, 2], &[2, 2], &[1, 1], &[1, 1], &[2, 2]), group: 2 };
        let y = eval_op(&op, &[&x, &w, &b], &ty(DType::F32, &[1, 2, 2, 2])).unwrap();
        // ch0: 10*5, 10*7, 10*13, 5 + 10*15; ch1: 105, 105+107, 105+113, 105+107+113+115.
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![51.0, 71.0, 131.0, 156.0, 104.0, 211.0, 217.0, 439.0]);
    }

    fn conv_transpose(
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        win: Window,
        group: usize,
        op: &[usize],
        out: &[usize],
    ) -> Vec<f32> {
        let op = Op::ConvTranspose { window: win, group, output_padding: op.to_vec() };
        let mut args = vec![x, w];
        args.extend(b);
        eval_op(&op, &args, &ty(DType::F32, out)).unwrap().to_vec::<f32>().unwrap()
    }

    #[test]
    fn conv_transpose_1d_stride_pads_output_padding() {
        // x [1,2,3], w [1,10,100], stride 2: x_i lands at 2i, 2i+1, 2i+2 with weights 1, 10, 100.
        // Full output (7): [1, 10, 102, 20, 203, 30, 300].
        let x = f32s(&[1, 1, 3], &[1.0, 2.0, 3.0]);
        let w = f32s(&[1, 1, 3], &[1.0, 10.0, 100.0]);
        let full = window(&[3], &[2], &[0], &[0], &[1]);
        assert_eq!(
            conv_transpose(&x, &w, None, full, 1, &[0], &[1, 1, 7]),
            vec![1.0, 10.0, 102.0, 20.0, 203.0, 30.0, 300.0]
        );
        // pads (1, 2) crop the ends; output_padding 1 adds one more cell at the end first.
        let w2 = window(&[3], &[2], &[1], &[2], &[1]);
        assert_eq!(conv_transpose(&x, &w, None, w2, 1, &[1], &[1, 1, 5]), vec![10.0, 102.0, 20.0, 203.0, 30.0]);
        // Dilation 2, stride 1, bias 0.5: x_i lands at i, i+2, i+4.
        let b = f32s(&[1], &[0.5]);
        let w3 = window(&[3], &[1], &[0], &[0], &[2]);
        assert_eq!(
            conv_transpose(&x, &w, Some(&b), w3, 1, &[0], &[1, 1, 7]),
            vec![1.5, 2.5, 13.5, 20.5, 130.5, 200.5, 300.5]
        );
    }

    #[test]
    fn conv_transpose_2d_groups() {
        // Two groups, one input channel each, two output channels per group, 1x1 kernels, stride 2:
        // out channel m of group g is w[g, m] * x_g spread on even positions.
        let x = f32s(&[1, 2, 1, 2], &[1.0, 2.0, 3.0, 4.0]);
        let w = f32s(&[2, 2, 1, 1], &[1.0, -1.0, 10.0, 100.0]);
        let win = window(&[1, 1], &[2, 2], &[0, 0], &[0, 0], &[1, 1]);
        let y = conv_transpose(&x, &w, None, win, 2, &[0, 0], &[1, 4, 1, 3]);
        assert_eq!(y, vec![1.0, 0.0, 2.0, -1.0, 0.0, -2.0, 30.0, 0.0, 40.0, 300.0, 0.0, 400.0]);
        // A 2x2 all-ones kernel with stride 1 over [[1,2],[3,4]]: each output sums the inputs it covers.
        let x = f32s(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
        let w = f32s(&[1, 1, 2, 2], &[1.0; 4]);
        let win = window(&[2, 2], &[1, 1], &[0, 0], &[0, 0], &[1, 1]);
        let y = conv_transpose(&x, &w, None, win, 1, &[0, 0], &[1, 1, 3, 3]);
        assert_eq!(y, vec![1.0, 3.0, 2.0, 4.0, 10.0, 6.0, 3.0, 7.0, 4.0]);
    }

    #[test]
    fn conv_bad_weight_is_an_error() {
        let x = f32s(&[1, 2, 3], &[0.0; 6]);
        let w = f32s(&[1, 3, 1], &[0.0; 3]);
        let op = Op::Conv { window: window(&[1], &[1], &[0], &[0], &[1]), group: 1 };
        let e = eval_op(&op, &[&x, &w], &ty(DType::F32, &[1, 1, 3])).unwrap_err();
        assert!(e.starts_with("conv group 1 does not fit input channels 2"), "{e}");
    }
}
