//! Named constant tensors (a model's weights) and their `.safetensors`
//! files. Loading memory-maps the file and exposes every tensor zero-copy:
//! each [`Tensor`]'s bytes are a window into the shared map, which lives as
//! long as any tensor from it.

use crate::{Bytes, DType, IrError, Result, Tensor, TensorType};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// Named constant tensors, e.g. the weights of a model, in name order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Weights {
    map: BTreeMap<String, Tensor>,
}

impl Weights {
    /// No tensors.
    pub fn new() -> Self {
        Weights::default()
    }

    /// Adds (or replaces) the tensor called `name`.
    pub fn insert(&mut self, name: String, t: Tensor) {
        self.map.insert(name, t);
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.map.get(name)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True if there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The tensors in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Memory-maps a `.safetensors` file and exposes each tensor zero-copy
    /// (tensor bytes are windows into the shared map). Supports the dtypes
    /// F32 F16 BF16 I8 U8 I32 I64 BOOL; any other dtype is an error naming
    /// the tensor. Every error is an [`IrError::Weights`] naming the path and
    /// what was wrong; a corrupt file never panics.
    ///
    /// The file must not be modified while the weights (or any tensor or
    /// graph constant taken from them) are alive: the bytes are read from
    /// the file's pages, not copied.
    pub fn load_safetensors(path: &Path) -> Result<Weights> {
        let err = |msg: String| IrError::Weights { path: path.display().to_string(), msg };
        let file = File::open(path).map_err(|e| err(format!("cannot open weights file: {e}")))?;
        // SAFETY: the map is read-only and private to this process; the
        // documented contract above is that the file is not modified while
        // mapped (the usual caveat of every memory-mapped weights loader).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| err(format!("cannot map weights file: {e}")))?;
        // Parses and validates the header (offsets contiguous, sizes match
        // shapes and dtypes, data region covers the rest of the file).
        let (header_len, meta) =
            SafeTensors::read_metadata(&map).map_err(|e| err(format!("not a valid safetensors file: {e}")))?;
        let data_start =
            header_len.checked_add(std::mem::size_of::<u64>()).ok_or_else(|| err("header length overflows".into()))?;
        let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = Arc::new(map);
        let mut out = Weights::new();
        for (name, info) in meta.tensors() {
            let dtype = dtype_from_st(info.dtype)
                .ok_or_else(|| err(format!("tensor `{name}` has unsupported dtype {}", info.dtype)))?;
            let (begin, end) = info.data_offsets;
            let window = end
                .checked_sub(begin)
                .and_then(|len| Some((data_start.checked_add(begin)?, len)))
                .and_then(|(start, len)| Bytes::window(owner.clone(), start, len))
                .ok_or_else(|| err(format!("tensor `{name}` data [{begin}, {end}) is out of bounds")))?;
            let t = Tensor::from_bytes(TensorType::new(dtype, info.shape.clone()), window)
                .map_err(|e| err(format!("tensor `{name}`: {e}")))?;
            out.insert(name, t);
        }
        Ok(out)
    }

    /// Writes all tensors to a `.safetensors` file (written to a temporary
    /// sibling and renamed, so a file mapped by loaded weights is never
    /// truncated under them).
    pub fn save_safetensors(&self, path: &Path) -> Result<()> {
        let views = self.map.iter().map(|(k, t)| (k.as_str(), StView(t)));
        safetensors::serialize_to_file(views, None, path).map_err(|e| IrError::Weights {
            path: path.display().to_string(),
            msg: format!("cannot write safetensors file: {e}"),
        })
    }
}

impl FromIterator<(String, Tensor)> for Weights {
    fn from_iter<I: IntoIterator<Item = (String, Tensor)>>(iter: I) -> Self {
        Weights { map: iter.into_iter().collect() }
    }
}

/// A tensor seen through the safetensors serializer's [`View`].
struct StView<'a>(&'a Tensor);

impl View for StView<'_> {
    fn dtype(&self) -> Dtype {
        dtype_to_st(self.0.dtype())
    }
    fn shape(&self) -> &[usize] {
        self.0.shape().dims()
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.0.bytes())
    }
    fn data_len(&self) -> usize {
        self.0.bytes().len()
    }
}

fn dtype_to_st(d: DType) -> Dtype {
    match d {
        DType::F32 => Dtype::F32,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::I8 => Dtype::I8,
        DType::U8 => Dtype::U8,
        DType::I32 => Dtype::I32,
        DType::I64 => Dtype::I64,
        DType::Bool => Dtype::BOOL,
    }
}

fn dtype_from_st(d: Dtype) -> Option<DType> {
    DType::ALL.into_iter().find(|&x| dtype_to_st(x) == d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use half::{bf16, f16};
    use std::path::PathBuf;

    /// A fresh scratch directory under the system temp dir.
    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nanoc-ir-weights-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn sample() -> Weights {
        let mut w = Weights::new();
        w.insert(
            "a.f32".into(),
            Tensor::from_vec(vec![2, 3], vec![1.0f32, -2.0, 3.5, 0.0, f32::INFINITY, 7.0]).unwrap(),
        );
        w.insert(
            "b.f16".into(),
            Tensor::from_vec(vec![3], vec![f16::from_f32(0.5), f16::ONE, f16::NEG_INFINITY]).unwrap(),
        );
        w.insert("c.bf16".into(), Tensor::from_vec(vec![1, 2], vec![bf16::from_f32(1.5), bf16::MIN]).unwrap());
        w.insert("d.i8".into(), Tensor::from_vec(vec![2], vec![-128i8, 127]).unwrap());
        w.insert("e.u8".into(), Tensor::from_vec(vec![1], vec![255u8]).unwrap());
        w.insert("f.i32".into(), Tensor::from_vec(vec![2], vec![i32::MIN, 5]).unwrap());
        w.insert("g.i64".into(), Tensor::scalar(i64::MAX));
        w.insert("h.bool".into(), Tensor::from_vec(vec![3], vec![true, false, true]).unwrap());
        w.insert("i.empty".into(), Tensor::from_vec(vec![0, 4], Vec::<f32>::new()).unwrap());
        w
    }

    #[test]
    fn save_load_round_trip_is_zero_copy() {
        let dir = scratch("rt");
        let path = dir.join("w.safetensors");
        let w = sample();
        w.save_safetensors(&path).unwrap();
        let back = Weights::load_safetensors(&path).unwrap();
        assert_eq!(back, w);
        let names: Vec<&str> = back.iter().map(|(n, _)| n).collect();
        assert_eq!(names, w.iter().map(|(n, _)| n).collect::<Vec<_>>());

        // Zero copy: each tensor's bytes sit at its file offset inside one map.
        let file = std::fs::read(&path).unwrap();
        let (n, meta) = SafeTensors::read_metadata(&file).unwrap();
        let (anchor_name, anchor) = back.iter().find(|(_, t)| !t.bytes().is_empty()).unwrap();
        let anchor_off = 8 + n + meta.info(anchor_name).unwrap().data_offsets.0;
        for (name, t) in back.iter() {
            let off = 8 + n + meta.info(name).unwrap().data_offsets.0;
            assert_eq!(&file[off..off + t.bytes().len()], t.bytes(), "{name}");
            if !t.bytes().is_empty() {
                let delta = t.bytes().as_ptr() as isize - anchor.bytes().as_ptr() as isize;
                assert_eq!(delta, off as isize - anchor_off as isize, "{name} is not a window into the map");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_files_are_errors_naming_the_path() {
        let dir = scratch("corrupt");
        let good = dir.join("good.safetensors");
        sample().save_safetensors(&good).unwrap();
        let bytes = std::fs::read(&good).unwrap();
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", vec![], "header too small"),
            ("short", bytes[..5].to_vec(), "header too small"),
            ("trunc_header", bytes[..20].to_vec(), "invalid header length"),
            ("trunc_data", bytes[..bytes.len() - 3].to_vec(), "not fully covered"),
            ("garbage", b"\x04\x00\x00\x00\x00\x00\x00\x00{{{{".to_vec(), "invalid JSON"),
            ("huge_len", b"\xff\xff\xff\xff\xff\xff\xff\xff{}".to_vec(), "header too large"),
            (
                "bad_offsets",
                {
                    let h = br#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#;
                    let mut v = (h.len() as u64).to_le_bytes().to_vec();
                    v.extend_from_slice(h);
                    v.extend_from_slice(&[0; 4]);
                    v
                },
                "invalid shape, data type, or offset",
            ),
            (
                "f64",
                {
                    let h = br#"{"dbl":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#;
                    let mut v = (h.len() as u64).to_le_bytes().to_vec();
                    v.extend_from_slice(h);
                    v.extend_from_slice(&[0; 8]);
                    v
                },
                "tensor `dbl` has unsupported dtype F64",
            ),
        ];
        for (name, data, want) in cases {
            let p = dir.join(format!("{name}.safetensors"));
            std::fs::write(&p, data).unwrap();
            let e = Weights::load_safetensors(&p).unwrap_err();
            assert!(matches!(e, IrError::Weights { .. }), "{name}: {e:?}");
            let msg = e.to_string();
            assert!(msg.starts_with(&p.display().to_string()), "{name}: {msg}");
            assert!(msg.contains(want), "{name}: {msg}");
        }
        let missing = dir.join("nope.safetensors");
        let msg = Weights::load_safetensors(&missing).unwrap_err().to_string();
        assert!(msg.contains("nope.safetensors") && msg.contains("cannot open"), "{msg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn saving_over_a_mapped_file_keeps_loaded_tensors() {
        let dir = scratch("overwrite");
        let path = dir.join("w.safetensors");
        let w = sample();
        w.save_safetensors(&path).unwrap();
        let loaded = Weights::load_safetensors(&path).unwrap();
        let mut other = Weights::new();
        other.insert("z".into(), Tensor::scalar(1.0f32));
        other.save_safetensors(&path).unwrap();
        assert_eq!(loaded, w);
        assert_eq!(Weights::load_safetensors(&path).unwrap(), other);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
