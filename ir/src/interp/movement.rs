//! Data movement: reshape, transpose, slice, broadcast, concat, gather.
//! All work on raw element bytes, so every dtype is supported.

use super::{Offsets, from_bytes, next_index};
use crate::{Tensor, TensorType};

/// Copies the elements at `offsets` (element units) of `x` into a new tensor of type `ty`.
fn gather_elements(x: &Tensor, offsets: impl Iterator<Item = usize>, ty: &TensorType) -> Result<Tensor, String> {
    let es = x.dtype().size_bytes();
    let src = x.bytes();
    let mut bytes = Vec::with_capacity(ty.byte_len());
    for o in offsets {
        bytes.extend_from_slice(&src[o * es..(o + 1) * es]);
    }
    from_bytes(ty, bytes)
}

/// Same bytes, the node's shape (zero copy).
pub(super) fn reshape(x: &Tensor, ty: &TensorType) -> Result<Tensor, String> {
    Tensor::from_bytes(ty.clone(), x.data().clone()).map_err(|e| e.to_string())
}

/// Output dim `i` is input dim `perm[i]`: read the input with its strides permuted.
pub(super) fn transpose(x: &Tensor, perm: &[usize], ty: &TensorType) -> Result<Tensor, String> {
    let strides = x.shape().strides();
    let permuted = perm
        .iter()
        .map(|&p| strides.get(p).copied().ok_or_else(|| format!("transpose perm {perm:?} does not fit {}", x.ty())))
        .collect::<Result<Vec<usize>, String>>()?;
    gather_elements(x, Offsets::new(ty.shape.dims(), &permuted), ty)
}

/// Output index `i` along dim `d` reads input index `starts[d] + i * steps[d]`.
pub(super) fn slice(x: &Tensor, starts: &[usize], steps: &[i64], ty: &TensorType) -> Result<Tensor, String> {
    let (in_dims, out_dims) = (x.shape().dims(), ty.shape.dims());
    let strides = x.shape().strides();
    let mut offsets = Vec::with_capacity(ty.shape.numel());
    if ty.shape.numel() > 0 {
        let mut index = vec![0usize; out_dims.len()];
        loop {
            let mut offset = 0;
            for d in 0..index.len() {
                let at = starts[d] as i128 + index[d] as i128 * i128::from(steps[d]);
                let at = usize::try_from(at)
                    .ok()
                    .filter(|&a| a < in_dims[d])
                    .ok_or_else(|| format!("slice reads index {at} of dim {d} with extent {}", in_dims[d]))?;
                offset += at * strides[d];
            }
            offsets.push(offset);
            if !next_index(&mut index, out_dims) {
                break;
            }
        }
    }
    gather_elements(x, offsets.into_iter(), ty)
}

/// numpy broadcast to the node's shape.
pub(super) fn broadcast(x: &Tensor, ty: &TensorType) -> Result<Tensor, String> {
    gather_elements(x, Offsets::new(ty.shape.dims(), &x.shape().broadcast_strides(&ty.shape)), ty)
}

/// Concatenation along `axis`: for each index of the dims before `axis`,
/// each operand's contiguous block in turn.
pub(super) fn concat(args: &[&Tensor], axis: usize, ty: &TensorType) -> Result<Tensor, String> {
    let dims = ty.shape.dims();
    let outer: usize = dims.get(..axis).ok_or_else(|| format!("axis {axis} out of range for {ty}"))?.iter().product();
    let inner: usize = dims.get(axis + 1..).unwrap_or_default().iter().product();
    let es = ty.dtype.size_bytes();
    let mut bytes = Vec::with_capacity(ty.byte_len());
    for o in 0..outer {
        for t in args {
            let block = t.shape().dims().get(axis).copied().unwrap_or(0) * inner * es;
            bytes.extend_from_slice(&t.bytes()[o * block..(o + 1) * block]);
        }
    }
    from_bytes(ty, bytes)
}

/// `out[pre, idx..., post] = data[pre, indices[idx...], post]`; negative
/// indices count from the end, anything else out of range is an error.
pub(super) fn gather(data: &Tensor, indices: &Tensor, axis: usize, ty: &TensorType) -> Result<Tensor, String> {
    let dims = data.shape().dims();
    let size = *dims.get(axis).ok_or_else(|| format!("axis {axis} out of range for {}", data.ty()))?;
    let outer: usize = dims[..axis].iter().product();
    let inner: usize = dims[axis + 1..].iter().product();
    let rows = indices
        .to_i64_vec()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|i| {
            let j = if i < 0 { i + size as i64 } else { i };
            usize::try_from(j).ok().filter(|&j| j < size).ok_or_else(|| {
                format!("gather index {i} is out of range for axis {axis} of size {size} (valid: -{size}..{size})")
            })
        })
        .collect::<Result<Vec<usize>, String>>()?;
    let offsets =
        (0..outer).flat_map(|o| rows.iter().flat_map(move |&r| (0..inner).map(move |i| (o * size + r) * inner + i)));
    gather_elements(data, offsets, ty)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::eval_op;
    use crate::{DType, Op, Tensor, TensorType};

    fn ty(d: DType, shape: &[usize]) -> TensorType {
        TensorType::new(d, shape.to_vec())
    }

    fn i64s(shape: &[usize], v: &[i64]) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v.to_vec()).unwrap()
    }

    #[test]
    fn reshape_keeps_bytes() {
        let x = i64s(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        let y = eval_op(&Op::Reshape, &[&x], &ty(DType::I64, &[3, 1, 2])).unwrap();
        assert_eq!(y.shape().dims(), &[3, 1, 2]);
        assert_eq!(y.to_vec::<i64>().unwrap(), vec![1, 2, 3, 4, 5, 6]);
        let e = eval_op(&Op::Reshape, &[&x], &ty(DType::I64, &[4])).unwrap_err();
        assert_eq!(e, "cannot reshape i64[2,3] to i64[4]");
    }

    #[test]
    fn transpose_2d_and_3d() {
        let x = Tensor::from_vec(vec![2, 3], vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let y = eval_op(&Op::Transpose { perm: vec![1, 0] }, &[&x], &ty(DType::F32, &[3, 2])).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        // out[i,j,k] = x[j,k,i] for x = 0..8 shaped [2,2,2].
        let x = Tensor::from_vec(vec![2, 2, 2], (0..8u8).collect()).unwrap();
        let y = eval_op(&Op::Transpose { perm: vec![2, 0, 1] }, &[&x], &ty(DType::U8, &[2, 2, 2])).unwrap();
        assert_eq!(y.to_vec::<u8>().unwrap(), vec![0, 2, 4, 6, 1, 3, 5, 7]);
        // Non-cube: [1,2,3] -> perm [2,0,1] -> [3,1,2].
        let x = i64s(&[1, 2, 3], &[1, 2, 3, 4, 5, 6]);
        let y = eval_op(&Op::Transpose { perm: vec![2, 0, 1] }, &[&x], &ty(DType::I64, &[3, 1, 2])).unwrap();
        assert_eq!(y.to_vec::<i64>().unwrap(), vec![1, 4, 2, 5, 3, 6]);
    }

    #[test]
    fn slice_with_steps() {
        let x = i64s(&[5], &[0, 1, 2, 3, 4]);
        let op = Op::Slice { starts: vec![4], steps: vec![-2] };
        assert_eq!(eval_op(&op, &[&x], &ty(DType::I64, &[3])).unwrap().to_vec::<i64>().unwrap(), vec![4, 2, 0]);
        let op = Op::Slice { starts: vec![1], steps: vec![2] };
        assert_eq!(eval_op(&op, &[&x], &ty(DType::I64, &[2])).unwrap().to_vec::<i64>().unwrap(), vec![1, 3]);
        // 2-D, both dims reversed.
        let x = i64s(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        let op = Op::Slice { starts: vec![1, 2], steps: vec![-1, -1] };
        assert_eq!(
            eval_op(&op, &[&x], &ty(DType::I64, &[2, 3])).unwrap().to_vec::<i64>().unwrap(),
            vec![6, 5, 4, 3, 2, 1]
        );
        // Row 0 only, columns 1..3.
        let op = Op::Slice { starts: vec![0, 1], steps: vec![1, 1] };
        assert_eq!(eval_op(&op, &[&x], &ty(DType::I64, &[1, 2])).unwrap().to_vec::<i64>().unwrap(), vec![2, 3]);
        // Walking off the start is rejected, not a panic.
        let op = Op::Slice { starts: vec![0, 1], steps: vec![1, -1] };
        assert!(eval_op(&op, &[&x], &ty(DType::I64, &[1, 3])).is_err());
    }

    #[test]
    fn broadcast_to_shape() {
        let x = Tensor::from_vec(vec![3], vec![1.0f32, 2.0, 3.0]).unwrap();
        let y = eval_op(&Op::Broadcast, &[&x], &ty(DType::F32, &[2, 3])).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
        let x = i64s(&[2, 1], &[7, 8]);
        let y = eval_op(&Op::Broadcast, &[&x], &ty(DType::I64, &[2, 2])).unwrap();
        assert_eq!(y.to_vec::<i64>().unwrap(), vec![7, 7, 8, 8]);
        let y = eval_op(&Op::Broadcast, &[&Tensor::scalar(true)], &ty(DType::Bool, &[3])).unwrap();
        assert_eq!(y.to_vec::<bool>().unwrap(), vec![true; 3]);
    }

    #[test]
    fn concat_along_axes() {
        let a = i64s(&[2, 2], &[1, 2, 3, 4]);
        let b = i64s(&[2, 1], &[5, 6]);
        let y = eval_op(&Op::Concat { axis: 1 }, &[&a, &b], &ty(DType::I64, &[2, 3])).unwrap();
        assert_eq!(y.to_vec::<i64>().unwrap(), vec![1, 2, 5, 3, 4, 6]);
        let c = i64s(&[1, 2], &[7, 8]);
        let y = eval_op(&Op::Concat { axis: 0 }, &[&a, &c, &a], &ty(DType::I64, &[5, 2])).unwrap();
        assert_eq!(y.to_vec::<i64>().unwrap(), vec![1, 2, 3, 4, 7, 8, 1, 2, 3, 4]);
        let p = Tensor::from_vec(vec![1], vec![true]).unwrap();
        let q = Tensor::from_vec(vec![2], vec![false, true]).unwrap();
        let y = eval_op(&Op::Concat { axis: 0 }, &[&p, &q], &ty(DType::Bool, &[3])).unwrap();
        assert_eq!(y.to_vec::<bool>().unwrap(), vec![true, false, true]);
    }

    #[test]
    fn gather_with_negative_indices() {
        let data = Tensor::from_vec(vec![3, 2], vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let idx = i64s(&[2], &[-1, 0]);
        let y = eval_op(&Op::Gather { axis: 0 }, &[&data, &idx], &ty(DType::F32, &[2, 2])).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![5.0, 6.0, 1.0, 2.0]);
        // Axis 1 with i32 indices.
        let idx = Tensor::from_vec(vec![1], vec![1i32]).unwrap();
        let y = eval_op(&Op::Gather { axis: 1 }, &[&data, &idx], &ty(DType::F32, &[3, 1])).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![2.0, 4.0, 6.0]);
        // 2-D indices, scalar index.
        let idx = i64s(&[2, 2], &[0, 2, 1, -3]);
        let y = eval_op(&Op::Gather { axis: 0 }, &[&data, &idx], &ty(DType::F32, &[2, 2, 2])).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 5.0, 6.0, 3.0, 4.0, 1.0, 2.0]);
        let y = eval_op(&Op::Gather { axis: 0 }, &[&data, &Tensor::scalar(1i64)], &ty(DType::F32, &[2])).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![3.0, 4.0]);
    }

    #[test]
    fn gather_out_of_range_is_an_error() {
        let data = i64s(&[3], &[1, 2, 3]);
        for bad in [3, -4] {
            let idx = i64s(&[1], &[bad]);
            let e = eval_op(&Op::Gather { axis: 0 }, &[&data, &idx], &ty(DType::I64, &[1])).unwrap_err();
            assert_eq!(e, format!("gather index {bad} is out of range for axis 0 of size 3 (valid: -3..3)"));
        }
        let idx = Tensor::from_vec(vec![1], vec![1.0f32]).unwrap();
        let e = eval_op(&Op::Gather { axis: 0 }, &[&data, &idx], &ty(DType::I64, &[1])).unwrap_err();
        assert_eq!(e, "gather indices must be i32 or i64, got f32[1]");
    }
}
