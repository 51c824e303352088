//! Spatial resampling: ConvTranspose (an IR op) and Resize (decomposed into
//! gathers along each resized axis with constant indices, plus constant
//! weights and an add for linear interpolation).

use super::super::tensor::tensor_from_f64;
use super::{Ctx, ImportFn, Res};
use nanoc_ir::{BinaryOp, NodeId, Op, Tensor, Window};

/// The spatial family's registration table.
pub(super) const OPS: &[(&str, ImportFn)] = &[("ConvTranspose", conv_transpose), ("Resize", resize)];

/// Largest stride, dilation, pad or kernel extent accepted.
const MAX_EXTENT: i64 = u32::MAX as i64;

/// An INTS attribute of `n` values in `lo..=MAX_EXTENT`, or `default` repeated.
fn ints_or(c: &Ctx<'_, '_>, name: &str, n: usize, lo: i64, default: usize) -> Res<Vec<usize>> {
    match c.attr_ints(name)? {
        None => Ok(vec![default; n]),
        Some(v) if v.len() == n && v.iter().all(|&x| (lo..=MAX_EXTENT).contains(&x)) => {
            Ok(v.iter().map(|&x| x as usize).collect())
        }
        Some(v) => Err(c.err(format!("attribute `{name}` must have {n} values >= {lo}, got {v:?}"))),
    }
}

/// ConvTranspose: pads from `pads`, `auto_pad` or `output_shape` (which
/// split the total padding as onnxruntime does: SAME_UPPER puts the odd
/// cell at the end, NOTSET and SAME_LOWER at the start; an output_shape
/// past the full extent adds end cells like output_padding).
fn conv_transpose(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let (w, tw) = c.input_typed(1)?;
    let bias = c.opt_input(2)?;
    let r = tx.shape.rank();
    if r < 3 || tw.shape.rank() != r {
        return Err(c.err(format!("input {tx} and weight {tw} must be N x C x spatial... of equal rank")));
    }
    let n = r - 2;
    let kernel = tw.shape.dims()[2..].to_vec();
    if let Some(k) = c.attr_ints("kernel_shape")?
        && k.iter().map(|&v| usize::try_from(v).ok()).collect::<Option<Vec<_>>>() != Some(kernel.clone())
    {
        return Err(c.err(format!("attribute `kernel_shape` {k:?} does not match the weight {tw}")));
    }
    let strides = ints_or(c, "strides", n, 1, 1)?;
    let dilations = ints_or(c, "dilations", n, 1, 1)?;
    let output_padding = ints_or(c, "output_padding", n, 0, 0)?;
    let group = c.attr_int_or("group", 1)?;
    let group = usize::try_from(group)
        .ok()
        .filter(|&g| g > 0)
        .ok_or_else(|| c.err(format!("group must be positive, got {group}")))?;
    let input = &tx.shape.dims()[2..];
    // Output extent before any padding is removed.
    let full: Vec<usize> = (0..n)
        .map(|i| {
            input[i]
                .checked_sub(1)
                .and_then(|v| v.checked_mul(strides[i]))
                .and_then(|v| v.checked_add(kernel[i].checked_sub(1)?.checked_mul(dilations[i])?))
                .and_then(|v| v.checked_add(1 + output_padding[i]))
                .ok_or_else(|| c.err(format!("spatial dim {i} of {tx} with kernel {kernel:?} has no valid output")))
        })
        .collect::<Res<_>>()?;
    let auto_pad = c.attr_string("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
    // Pads that cut the full extent down to `want`; an extent beyond it is
    // reached (output_shape) by extra end cells, less than a stride as
    // onnxruntime requires, or (auto_pad) left at the full extent.
    let mut extra = vec![0usize; n];
    let mut split = |c: &Ctx<'_, '_>, want: &[usize], upper: bool, extend: bool| -> Res<(Vec<usize>, Vec<usize>)> {
        let mut begin = Vec::with_capacity(n);
        let mut end = Vec::with_capacity(n);
        for i in 0..n {
            let total = match full[i].checked_sub(want[i]) {
                Some(t) => t,
                None if !extend => 0,
                None if want[i] - full[i] < strides[i] => {
                    extra[i] = want[i] - full[i];
                    0
                }
                None => {
                    return Err(c.err(format!(
                        "output_shape extent {} of spatial dim {i} is too large: at most {} for this input, kernel and stride",
                        want[i],
                        full[i].saturating_add(strides[i] - 1)
                    )));
                }
            };
            let (b, e) = if upper { (total / 2, total - total / 2) } else { (total - total / 2, total / 2) };
            begin.push(b);
            end.push(e);
        }
        Ok((begin, end))
    };
    let (pads_begin, pads_end) = if let Some(os) = c.attr_ints("output_shape")? {
        let os = if os.len() == n + 2 { os[2..].to_vec() } else { os };
        let want: Vec<usize> = match os.iter().map(|&v| usize::try_from(v).ok()).collect::<Option<Vec<_>>>() {
            Some(v) if v.len() == n => v,
            _ => return Err(c.err(format!("attribute `output_shape` {os:?} must hold {n} spatial extents"))),
        };
        split(c, &want, auto_pad == "SAME_UPPER", true)?
    } else {
        match auto_pad.as_str() {
            "NOTSET" => {
                let p = ints_or(c, "pads", 2 * n, 0, 0)?;
                (p[..n].to_vec(), p[n..].to_vec())
            }
            "VALID" => (vec![0; n], vec![0; n]),
            "SAME_UPPER" | "SAME_LOWER" => {
                let want: Vec<usize> = (0..n).map(|i| input[i].saturating_mul(strides[i])).collect();
                split(c, &want, auto_pad == "SAME_UPPER", false)?
            }
            other => {
                return Err(c.err(format!(
                    "attribute `auto_pad` must be NOTSET, VALID, SAME_UPPER or SAME_LOWER, got {other:?}"
                )));
            }
        }
    };
    let output_padding: Vec<usize> = output_padding.iter().zip(&extra).map(|(p, e)| p + e).collect();
    let window = Window { kernel, strides, pads_begin, pads_end, dilations };
    let mut args = vec![x, w];
    args.extend(bias);
    let y = c.add(None, Op::ConvTranspose { window, group, output_padding }, &args)?;
    c.set_output(0, y);
    Ok(())
}

/// How an output coordinate maps back to an input coordinate.
#[derive(Clone, Copy, PartialEq)]
enum Coord {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
}

/// The input coordinate of output coordinate `x` along an axis resized from
/// `len_in` to `len_out` by `scale`, in f32 as onnxruntime computes it.
fn original_coordinate(mode: Coord, x: usize, scale: f32, len_in: usize, len_out: usize) -> f32 {
    let xf = x as f32;
    match mode {
        Coord::HalfPixel => (xf + 0.5) / scale - 0.5,
        Coord::HalfPixelSymmetric => {
            let adjustment = len_out as f32 / (scale * len_in as f32);
            let center = len_in as f32 / 2.0;
            center * (1.0 - adjustment) + (xf + 0.5) / scale - 0.5
        }
        Coord::PytorchHalfPixel => {
            if len_out > 1 {
                (xf + 0.5) / scale - 0.5
            } else {
                0.0
            }
        }
        Coord::AlignCorners => {
            if len_out == 1 {
                0.0
            } else {
                xf * (len_in as f32 - 1.0) / (len_out as f32 - 1.0)
            }
        }
        Coord::Asymmetric => xf / scale,
    }
}

/// Nearest-pixel rounding of an input coordinate.
#[derive(Clone, Copy, PartialEq)]
enum Nearest {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

fn nearest_index(mode: Nearest, v: f32) -> i64 {
    let r = match mode {
        // Exact halves go down; everything else rounds half away from zero.
        Nearest::RoundPreferFloor if v == (v as i64) as f32 + 0.5 => v.floor(),
        Nearest::RoundPreferFloor | Nearest::RoundPreferCeil => v.round(),
        Nearest::Floor => v.floor(),
        Nearest::Ceil => v.ceil(),
    };
    r as i64
}

/// Resize of the spatial (or any) axes with `nearest` or `linear` mode.
/// Each resized axis becomes a gather of constant indices (nearest) or two
/// gathers weighted by constants and added (linear, separable); the
/// coordinate maths follows onnxruntime in f32. Scales or sizes must be
/// constant.
fn resize(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let r = tx.shape.rank();
    let mode = c.attr_string("mode")?.unwrap_or_else(|| "nearest".into());
    let linear = match mode.as_str() {
        "nearest" => false,
        "linear" => true,
        "cubic" => return Err(c.unsupported("mode \"cubic\" (nearest and linear are supported)")),
        other => return Err(c.err(format!("attribute `mode` must be nearest, linear or cubic, got {other:?}"))),
    };
    let ctm = c.attr_string("coordinate_transformation_mode")?.unwrap_or_else(|| "half_pixel".into());
    let coord = match ctm.as_str() {
        "half_pixel" => Coord::HalfPixel,
        "half_pixel_symmetric" => Coord::HalfPixelSymmetric,
        "pytorch_half_pixel" => Coord::PytorchHalfPixel,
        "align_corners" => Coord::AlignCorners,
        "asymmetric" => Coord::Asymmetric,
        "tf_crop_and_resize" => return Err(c.unsupported("coordinate_transformation_mode \"tf_crop_and_resize\"")),
        other => return Err(c.err(format!("unknown coordinate_transformation_mode {other:?}"))),
    };
    let nm = c.attr_string("nearest_mode")?.unwrap_or_else(|| "round_prefer_floor".into());
    let nearest = match nm.as_str() {
        "round_prefer_floor" => Nearest::RoundPreferFloor,
        "round_prefer_ceil" => Nearest::RoundPreferCeil,
        "floor" => Nearest::Floor,
        "ceil" => Nearest::Ceil,
        other => return Err(c.err(format!("unknown nearest_mode {other:?}"))),
    };
    if c.attr_int_or("antialias", 0)? != 0 {
        return Err(c.unsupported("antialias = 1"));
    }
    let policy = c.attr_string("keep_aspect_ratio_policy")?.unwrap_or_else(|| "stretch".into());
    if !matches!(policy.as_str(), "stretch" | "not_larger" | "not_smaller") {
        return Err(c.err(format!(
            "attribute `keep_aspect_ratio_policy` must be stretch, not_larger or not_smaller, got {policy:?}"
        )));
    }
    if linear && !tx.dtype.is_float() {
        return Err(c.unsupported(format!("linear resize of {tx} (floats only)")));
    }
    let axes: Vec<usize> = match c.attr_ints("axes")? {
        None => (0..r).collect(),
        Some(a) => a.iter().map(|&a| c.axis(a, r, "axis")).collect::<Res<_>>()?,
    };
    // Scales (input 2) or sizes (input 3), one per resized axis; an empty tensor counts as absent.
    let scales = match c.opt_input(2)? {
        Some(_) => Some(c.require_const(2)?.to_f64_vec()).filter(|v| !v.is_empty()),
        None => None,
    };
    let sizes = c.opt_const_i64s(3)?.filter(|v| !v.is_empty());
    let dims = tx.shape.dims().to_vec();
    let plan: Vec<(usize, f32)> = match (scales, sizes) {
        (Some(s), None) if s.len() == axes.len() => s
            .iter()
            .zip(&axes)
            .map(|(&s, &a)| {
                let s = s as f32;
                if !(s > 0.0 && s.is_finite()) {
                    return Err(c.err(format!("scales must be positive, got {s}")));
                }
                Ok(((s * dims[a] as f32).floor() as usize, s))
            })
            .collect::<Res<_>>()?,
        (None, Some(z)) if z.len() == axes.len() => {
            let plan: Vec<(usize, f32)> = z
                .iter()
                .zip(&axes)
                .map(|(&z, &a)| match usize::try_from(z) {
                    Ok(z) if z > 0 && dims[a] > 0 => Ok((z, z as f32 / dims[a] as f32)),
                    _ => Err(c.err(format!("sizes must be positive, got {z}"))),
                })
                .collect::<Res<_>>()?;
            // Keeping the aspect ratio: one scale for every axis, the
            // smallest (not_larger) or largest (not_smaller), sizes rounded half up.
            let pick = |f: fn(f32, f32) -> f32| plan.iter().map(|&(_, s)| s).reduce(f).unwrap_or(1.0);
            let s = match policy.as_str() {
                "not_larger" => Some(pick(f32::min)),
                "not_smaller" => Some(pick(f32::max)),
                _ => None,
            };
            match s {
                None => plan,
                Some(s) => axes.iter().map(|&a| (((s * dims[a] as f32) + 0.5).floor() as usize, s)).collect(),
            }
        }
        _ => {
            return Err(c.err(format!("needs exactly one of scales or sizes, with one value per axis of {axes:?}")));
        }
    };
    let mut out_dims = dims.clone();
    for (&a, &(len, _)) in axes.iter().zip(&plan) {
        out_dims[a] = len;
    }
    let too_big = nanoc_ir::Shape(out_dims.clone())
        .checked_numel()
        .and_then(|n| n.checked_mul(tx.dtype.size_bytes()))
        .is_none_or(|b| b > super::MAX_FOLD_BYTES);
    if too_big {
        return Err(c.err(format!("resized shape {out_dims:?} is too large")));
    }
    let mut y = x;
    let resized: Vec<usize> = (0..axes.len()).filter(|&i| plan[i].0 != dims[axes[i]] || plan[i].1 != 1.0).collect();
    for (step, &i) in resized.iter().enumerate() {
        let (axis, (len_out, scale), len_in) = (axes[i], plan[i], dims[axes[i]]);
        let last = step + 1 == resized.len();
        let name = |s: &str| if last && s.is_empty() { None } else { Some(format!("axis{axis}{s}")) };
        let coords: Vec<f32> = (0..len_out).map(|o| original_coordinate(coord, o, scale, len_in, len_out)).collect();
        let hi = len_in as i64 - 1;
        if !linear {
            let idx: Vec<i64> = coords.iter().map(|&v| nearest_index(nearest, v).clamp(0, hi)).collect();
            let idx = index_const(c, &format!("axis{axis}/index"), idx)?;
            y = c.add(name("").as_deref(), Op::Gather { axis }, &[y, idx])?;
            continue;
        }
        // Linear: y = x[i0] * (1 - f) + x[i1] * f along the axis (both 0.5 where i0 == i1).
        let (mut i0, mut i1, mut w0, mut w1) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for &v in &coords {
            let v = v.clamp(0.0, hi as f32);
            let a = (v as i64).min(hi);
            let b = (a + 1).min(hi);
            let (d0, d1) = if a == b { (0.5, 0.5) } else { ((v - a as f32).abs(), (v - b as f32).abs()) };
            i0.push(a);
            i1.push(b);
            w0.push(f64::from(d1));
            w1.push(f64::from(d0));
        }
        let mut wshape = vec![len_out];
        wshape.extend(std::iter::repeat_n(1, r - axis - 1));
        let dt = tx.dtype;
        let weight = |c: &mut Ctx<'_, '_>, s: &str, w: &[f64]| -> Res<NodeId> {
            let t = tensor_from_f64(dt, wshape.clone(), w).map_err(|m| c.err(m))?;
            Ok(c.add_const(Some(&format!("axis{axis}/{s}")), t))
        };
        let (k0, k1) =
            (index_const(c, &format!("axis{axis}/index0"), i0)?, index_const(c, &format!("axis{axis}/index1"), i1)?);
        let (c0, c1) = (weight(c, "weight0", &w0)?, weight(c, "weight1", &w1)?);
        let g0 = c.add(name("/gather0").as_deref(), Op::Gather { axis }, &[y, k0])?;
        let g1 = c.add(name("/gather1").as_deref(), Op::Gather { axis }, &[y, k1])?;
        let m0 = c.add(name("/scaled0").as_deref(), Op::Binary(BinaryOp::Mul), &[g0, c0])?;
        let m1 = c.add(name("/scaled1").as_deref(), Op::Binary(BinaryOp::Mul), &[g1, c1])?;
        y = c.add(name("").as_deref(), Op::Binary(BinaryOp::Add), &[m0, m1])?;
    }
    c.set_output(0, y);
    Ok(())
}

fn index_const(c: &mut Ctx<'_, '_>, suffix: &str, idx: Vec<i64>) -> Res<NodeId> {
    let t = Tensor::from_vec(vec![idx.len()], idx).map_err(|e| c.err(e.to_string()))?;
    Ok(c.add_const(Some(suffix), t))
}
