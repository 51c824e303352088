//! Constant tensors: a type plus little-endian bytes that may live in an
//! owned buffer or, zero-copy, in a memory-mapped weights file.

use crate::{DType, IrError, Result, Shape, TensorType};
use half::{bf16, f16};
use std::fmt;
use std::sync::Arc;

/// Shared, immutable bytes: an owned buffer or a window into a mapped file.
#[derive(Clone)]
pub struct Bytes {
    owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    start: usize,
    len: usize,
}

impl Bytes {
    /// Wraps an owned buffer.
    pub fn from_vec(v: Vec<u8>) -> Self {
        let len = v.len();
        Bytes { owner: Arc::new(v), start: 0, len }
    }

    /// A window `start..start+len` into a shared owner (e.g. an mmap), or
    /// `None` if the window is out of bounds.
    pub fn window(owner: Arc<dyn AsRef<[u8]> + Send + Sync>, start: usize, len: usize) -> Option<Self> {
        let end = start.checked_add(len)?;
        if end > (*owner).as_ref().len() {
            return None;
        }
        Some(Bytes { owner, start, len })
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &(*self.owner).as_ref()[self.start..self.start + self.len]
    }
}

impl PartialEq for Bytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.len)
    }
}

/// A Rust element type that maps to a [`DType`] with a little-endian encoding.
pub trait Element: Copy + fmt::Debug + PartialEq + 'static {
    /// The matching dtype.
    const DTYPE: DType;
    /// Decodes one element from exactly `DTYPE.size_bytes()` bytes.
    fn decode_le(b: &[u8]) -> Self;
    /// Appends the little-endian encoding.
    fn write_le(self, out: &mut Vec<u8>);
}

macro_rules! element_num {
    ($t:ty, $d:expr) => {
        impl Element for $t {
            const DTYPE: DType = $d;
            fn decode_le(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                <$t>::from_le_bytes(a)
            }
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}
element_num!(f32, DType::F32);
element_num!(f16, DType::F16);
element_num!(bf16, DType::BF16);
element_num!(i8, DType::I8);
element_num!(u8, DType::U8);
element_num!(i32, DType::I32);
element_num!(i64, DType::I64);

impl Element for bool {
    const DTYPE: DType = DType::Bool;
    fn decode_le(b: &[u8]) -> Self {
        b.first().is_some_and(|&x| x != 0)
    }
    fn write_le(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
}

/// A constant tensor.
#[derive(Clone, PartialEq)]
pub struct Tensor {
    ty: TensorType,
    data: Bytes,
}

impl Tensor {
    /// Builds a tensor from raw little-endian bytes, checking the length.
    pub fn from_bytes(ty: TensorType, data: Bytes) -> Result<Self> {
        let want = ty
            .shape
            .checked_numel()
            .and_then(|n| n.checked_mul(ty.dtype.size_bytes()))
            .ok_or_else(|| IrError::Invalid(format!("tensor of type {ty} is too large")))?;
        if data.as_slice().len() != want {
            return Err(IrError::Invalid(format!(
                "tensor of type {ty} needs {want} bytes, got {}",
                data.as_slice().len()
            )));
        }
        Ok(Tensor { ty, data })
    }

    /// Builds a tensor from typed values; `values.len()` must match the shape.
    pub fn from_vec<T: Element>(shape: impl Into<Shape>, values: Vec<T>) -> Result<Self> {
        let mut bytes = Vec::with_capacity(values.len() * T::DTYPE.size_bytes());
        for v in values {
            v.write_le(&mut bytes);
        }
        Tensor::from_bytes(TensorType::new(T::DTYPE, shape), Bytes::from_vec(bytes))
    }

    /// A rank-0 tensor.
    pub fn scalar<T: Element>(v: T) -> Self {
        let mut bytes = Vec::new();
        v.write_le(&mut bytes);
        Tensor { ty: TensorType::new(T::DTYPE, Vec::new()), data: Bytes::from_vec(bytes) }
    }

    /// Type of the tensor.
    pub fn ty(&self) -> &TensorType {
        &self.ty
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.ty.dtype
    }

    /// Shape.
    pub fn shape(&self) -> &Shape {
        &self.ty.shape
    }

    /// Raw little-endian bytes.
    pub fn bytes(&self) -> &[u8] {
        self.data.as_slice()
    }

    /// The shared byte buffer.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// Same bytes, new shape with the same element count.
    pub fn reshaped(&self, shape: impl Into<Shape>) -> Result<Self> {
        Tensor::from_bytes(TensorType::new(self.dtype(), shape), self.data.clone())
    }

    /// Decodes the elements as `T`; errors if the dtype differs.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        if self.dtype() != T::DTYPE {
            return Err(IrError::Invalid(format!("expected a {} tensor, got {}", T::DTYPE, self.ty)));
        }
        Ok(self.bytes().chunks_exact(T::DTYPE.size_bytes()).map(T::decode_le).collect())
    }

    /// Decodes any numeric or bool tensor as f64 values (for printing, folding
    /// and comparisons).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        let b = self.bytes();
        let n = self.dtype().size_bytes();
        b.chunks_exact(n)
            .map(|c| match self.dtype() {
                DType::F32 => f32::decode_le(c) as f64,
                DType::F16 => f16::decode_le(c).to_f64(),
                DType::BF16 => bf16::decode_le(c).to_f64(),
                DType::I8 => i8::decode_le(c) as f64,
                DType::U8 => u8::decode_le(c) as f64,
                DType::I32 => i32::decode_le(c) as f64,
                DType::I64 => i64::decode_le(c) as f64,
                DType::Bool => bool::decode_le(c) as u8 as f64,
            })
            .collect()
    }

    /// Decodes an integer tensor as i64 values (for shape arithmetic).
    pub fn to_i64_vec(&self) -> Result<Vec<i64>> {
        let b = self.bytes();
        let n = self.dtype().size_bytes();
        match self.dtype() {
            DType::I64 => Ok(b.chunks_exact(n).map(i64::decode_le).collect()),
            DType::I32 => Ok(b.chunks_exact(n).map(|c| i32::decode_le(c) as i64).collect()),
            DType::I8 => Ok(b.chunks_exact(n).map(|c| i8::decode_le(c) as i64).collect()),
            DType::U8 => Ok(b.chunks_exact(n).map(|c| u8::decode_le(c) as i64).collect()),
            DType::Bool => Ok(b.chunks_exact(n).map(|c| bool::decode_le(c) as i64).collect()),
            _ => Err(IrError::Invalid(format!("expected an integer tensor, got {}", self.ty))),
        }
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor({})", self.ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_round_trip() {
        let t = Tensor::from_vec(vec![2, 2], vec![1.0f32, -2.0, 3.5, 0.0]).unwrap();
        assert_eq!(t.to_vec::<f32>().unwrap(), vec![1.0, -2.0, 3.5, 0.0]);
        assert!(t.to_vec::<i64>().is_err());
        assert!(Tensor::from_vec(vec![3], vec![1i64, 2]).is_err());
    }
}
