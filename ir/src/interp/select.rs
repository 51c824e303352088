//! Scans and selections along one axis: cumsum, arg_max/arg_min, top_k.
//!
//! Order of values: numbers by value (`-0 == +0`), NaN above every number
//! and equal to NaN, so arg_max and top_k (largest) pick NaN first and
//! arg_min and top_k (smallest) last. Integers compare exactly.

use super::{floats, from_floats, from_ints, ints};
use crate::{Tensor, TensorType};
use std::cmp::Ordering;

/// A tensor's values for ordering: floats or integers.
enum Values {
    Float(Vec<f32>),
    Int(Vec<i64>),
}

impl Values {
    fn of(x: &Tensor) -> Result<Self, String> {
        if x.dtype().is_float() { Ok(Values::Float(floats(x)?)) } else { Ok(Values::Int(ints(x)?)) }
    }

    /// Compares elements `i` and `j` (NaN above every number).
    fn cmp(&self, i: usize, j: usize) -> Ordering {
        match self {
            Values::Int(v) => v[i].cmp(&v[j]),
            Values::Float(v) => match (v[i].is_nan(), v[j].is_nan()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => v[i].partial_cmp(&v[j]).unwrap_or(Ordering::Equal),
            },
        }
    }
}

/// `(outer, len, inner)`: the extents before, of and after `axis`; element
/// `j` of lane `(o, i)` is at `(o * len + j) * inner + i`.
fn lanes(x: &Tensor, axis: usize) -> Result<(usize, usize, usize), String> {
    let dims = x.shape().dims();
    let len = *dims.get(axis).ok_or_else(|| format!("axis {axis} out of range for {}", x.ty()))?;
    Ok((dims[..axis].iter().product(), len, dims[axis + 1..].iter().product()))
}

/// Running sums along `axis`, from the start or (`reverse`) the end; an
/// `exclusive` sum leaves out the element itself. Floats accumulate in f64
/// (each output rounded once); integers wrap.
pub(super) fn cumsum(
    x: &Tensor,
    axis: usize,
    exclusive: bool,
    reverse: bool,
    ty: &TensorType,
) -> Result<Tensor, String> {
    let (outer, len, inner) = lanes(x, axis)?;
    let order = |j: usize| if reverse { len - 1 - j } else { j };
    if x.dtype().is_float() {
        let xs = floats(x)?;
        let mut out = vec![0f32; xs.len()];
        for o in 0..outer {
            for i in 0..inner {
                let mut acc = 0f64;
                for j in 0..len {
                    let at = (o * len + order(j)) * inner + i;
                    let before = acc;
                    acc += f64::from(xs[at]);
                    out[at] = (if exclusive { before } else { acc }) as f32;
                }
            }
        }
        from_floats(ty, &out)
    } else {
        let xs = ints(x)?;
        let mut out = vec![0i64; xs.len()];
        for o in 0..outer {
            for i in 0..inner {
                let mut acc = 0i64;
                for j in 0..len {
                    let at = (o * len + order(j)) * inner + i;
                    let before = acc;
                    acc = acc.wrapping_add(xs[at]);
                    out[at] = if exclusive { before } else { acc };
                }
            }
        }
        from_ints(ty, &out)
    }
}

/// Index of the largest (`max`) or smallest element of each lane along
/// `axis`: the first such index, or the last with `select_last`. The
/// result's element order does not depend on `keep_dims`.
pub(super) fn arg_reduce(
    x: &Tensor,
    max: bool,
    axis: usize,
    select_last: bool,
    ty: &TensorType,
) -> Result<Tensor, String> {
    let (outer, len, inner) = lanes(x, axis)?;
    let v = Values::of(x)?;
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| (o * len + j) * inner + i;
            let mut best = 0;
            for j in 1..len {
                let ord = v.cmp(at(j), at(best));
                let wins = if max { ord == Ordering::Greater } else { ord == Ordering::Less };
                if wins || (select_last && ord == Ordering::Equal) {
                    best = j;
                }
            }
            out.push(best as i64);
        }
    }
    from_ints(ty, &out)
}

/// Indices of the `k` largest (or smallest) elements of each lane along
/// `axis`, best first; equal values keep index order.
pub(super) fn top_k(x: &Tensor, axis: usize, k: usize, largest: bool, ty: &TensorType) -> Result<Tensor, String> {
    let (outer, len, inner) = lanes(x, axis)?;
    let v = Values::of(x)?;
    let mut out = vec![0i64; outer * k * inner];
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| (o * len + j) * inner + i;
            let mut order: Vec<usize> = (0..len).collect();
            // A stable sort keeps equal values in index order.
            order.sort_by(|&a, &b| {
                let ord = v.cmp(at(a), at(b));
                if largest { ord.reverse() } else { ord }
            });
            for (r, &j) in order.iter().take(k).enumerate() {
                out[(o * k + r) * inner + i] = j as i64;
            }
        }
    }
    from_ints(ty, &out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::eval_op;
    use crate::{DType, Op, Tensor, TensorType};

    fn ty(d: DType, shape: &[usize]) -> TensorType {
        TensorType::new(d, shape.to_vec())
    }

    fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v.to_vec()).unwrap()
    }

    #[test]
    fn cumsum_all_four_ways() {
        let x = f32s(&[4], &[1.0, 2.0, 3.0, 4.0]);
        let run = |exclusive, reverse| {
            let op = Op::CumSum { axis: 0, exclusive, reverse };
            eval_op(&op, &[&x], x.ty()).unwrap().to_vec::<f32>().unwrap()
        };
        assert_eq!(run(false, false), vec![1.0, 3.0, 6.0, 10.0]);
        assert_eq!(run(true, false), vec![0.0, 1.0, 3.0, 6.0]);
        assert_eq!(run(false, true), vec![10.0, 9.0, 7.0, 4.0]);
        assert_eq!(run(true, true), vec![9.0, 7.0, 4.0, 0.0]);
        // Axis 0 of a [2,3] i64 tensor, and i32 wrapping.
        let x = Tensor::from_vec(vec![2, 3], vec![1i64, 2, 3, 10, 20, 30]).unwrap();
        let y = eval_op(&Op::CumSum { axis: 0, exclusive: false, reverse: false }, &[&x], x.ty()).unwrap();
        assert_eq!(y.to_vec::<i64>().unwrap(), vec![1, 2, 3, 11, 22, 33]);
        let x = Tensor::from_vec(vec![2], vec![i32::MAX, 1]).unwrap();
        let y = eval_op(&Op::CumSum { axis: 0, exclusive: false, reverse: false }, &[&x], x.ty()).unwrap();
        assert_eq!(y.to_vec::<i32>().unwrap(), vec![i32::MAX, i32::MIN]);
        let b = Tensor::from_vec(vec![1], vec![true]).unwrap();
        let e = eval_op(&Op::CumSum { axis: 0, exclusive: false, reverse: false }, &[&b], b.ty()).unwrap_err();
        assert_eq!(e, "cumsum is not defined for bool[1]");
    }

    #[test]
    fn arg_max_and_min_with_ties_and_nan() {
        // [[1,3,3],[2,0,0]]
        let x = f32s(&[2, 3], &[1.0, 3.0, 3.0, 2.0, 0.0, 0.0]);
        let arg = |max, axis, keep_dims, select_last, out: &[usize]| {
            let op = Op::ArgReduce { max, axis, keep_dims, select_last };
            eval_op(&op, &[&x], &ty(DType::I64, out)).unwrap().to_vec::<i64>().unwrap()
        };
        assert_eq!(arg(true, 1, false, false, &[2]), vec![1, 0]);
        assert_eq!(arg(true, 1, true, true, &[2, 1]), vec![2, 0]);
        assert_eq!(arg(false, 1, false, false, &[2]), vec![0, 1]);
        assert_eq!(arg(false, 1, false, true, &[2]), vec![0, 2]);
        assert_eq!(arg(true, 0, true, false, &[1, 3]), vec![1, 0, 0]);
        assert_eq!(arg(false, 0, false, false, &[3]), vec![0, 1, 1]);
        let n = f32s(&[3], &[1.0, f32::NAN, 5.0]);
        let op = Op::ArgReduce { max: true, axis: 0, keep_dims: false, select_last: false };
        assert_eq!(eval_op(&op, &[&n], &ty(DType::I64, &[])).unwrap().to_vec::<i64>().unwrap(), vec![1]);
        let op = Op::ArgReduce { max: false, axis: 0, keep_dims: false, select_last: false };
        assert_eq!(eval_op(&op, &[&n], &ty(DType::I64, &[])).unwrap().to_vec::<i64>().unwrap(), vec![0]);
        let i = Tensor::from_vec(vec![3], vec![5i32, -7, 5]).unwrap();
        let op = Op::ArgReduce { max: true, axis: 0, keep_dims: false, select_last: true };
        assert_eq!(eval_op(&op, &[&i], &ty(DType::I64, &[])).unwrap().to_vec::<i64>().unwrap(), vec![2]);
    }

    #[test]
    fn top_k_sorted_with_ties_in_index_order() {
        let x = f32s(&[8], &[1.0, 3.0, 3.0, 0.0, 2.0, 3.0, 1.0, 0.0]);
        let top = |k, largest| {
            let op = Op::TopK { axis: 0, k, largest };
            eval_op(&op, &[&x], &ty(DType::I64, &[k])).unwrap().to_vec::<i64>().unwrap()
        };
        assert_eq!(top(8, true), vec![1, 2, 5, 4, 0, 6, 3, 7]);
        assert_eq!(top(8, false), vec![3, 7, 0, 6, 4, 1, 2, 5]);
        assert_eq!(top(2, true), vec![1, 2]);
        assert_eq!(top(0, true), Vec::<i64>::new());
        // Axis 0 of [3,2]: columns [5,1,3] and [0,9,9].
        let x = f32s(&[3, 2], &[5.0, 0.0, 1.0, 9.0, 3.0, 9.0]);
        let op = Op::TopK { axis: 0, k: 2, largest: true };
        let y = eval_op(&op, &[&x], &ty(DType::I64, &[2, 2])).unwrap();
        assert_eq!(y.to_vec::<i64>().unwrap(), vec![0, 1, 2, 2]);
        let e = eval_op(&Op::TopK { axis: 0, k: 4, largest: true }, &[&x], &ty(DType::I64, &[4, 2])).unwrap_err();
        assert_eq!(e, "top_k k = 4 exceeds the extent 3 of axis 0 of f32[3,2]");
    }
}
