//! `TensorProto` → [`Tensor`]: raw little-endian data, the typed repeated
//! fields (`float_data`, `int32_data`, `int64_data`, `double_data`) and
//! external data files next to the model.

use super::OnnxError;
use super::proto::TensorProto;
use super::proto::tensor_proto::{DataLocation, DataType};
use half::{bf16, f16};
use nanoc_ir::{Bytes, DType, Element, Tensor, TensorType};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

/// The nanoc dtype of an ONNX element type code. DOUBLE is not listed: it is
/// only accepted where it can be narrowed to f32 (constant data, `Cast`).
pub(crate) fn dtype_of(code: i32) -> Option<DType> {
    Some(match DataType::try_from(code).ok()? {
        DataType::Float => DType::F32,
        DataType::Float16 => DType::F16,
        DataType::Bfloat16 => DType::BF16,
        DataType::Int8 => DType::I8,
        DataType::Uint8 => DType::U8,
        DataType::Int32 => DType::I32,
        DataType::Int64 => DType::I64,
        DataType::Bool => DType::Bool,
        _ => return None,
    })
}

/// Like [`dtype_of`], but DOUBLE narrows to f32.
pub(crate) fn dtype_of_narrowing(code: i32) -> Option<DType> {
    if code == DataType::Double as i32 { Some(DType::F32) } else { dtype_of(code) }
}

/// The ONNX name of an element type code (`FLOAT`, `STRING`, ...).
pub(crate) fn dtype_name(code: i32) -> String {
    match DataType::try_from(code) {
        Ok(d) => d.as_str_name().to_string(),
        Err(_) => format!("unknown element type {code}"),
    }
}

/// Converts an ONNX dims list to a shape, rejecting negative extents.
pub(crate) fn dims_to_shape(dims: &[i64]) -> Result<Vec<usize>, String> {
    dims.iter().map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d} in dims {dims:?}"))).collect()
}

/// Decodes a tensor. `name` is used in errors (the proto's own name if it
/// has one is preferred by callers); `base_dir` is the model's directory,
/// where external data files live.
pub fn tensor_from_proto(
    mut tp: TensorProto,
    name: &str,
    file: &str,
    base_dir: Option<&Path>,
) -> Result<Tensor, OnnxError> {
    let err = |msg: String| OnnxError::Tensor { file: file.to_string(), tensor: name.to_string(), msg };
    let code = tp.data_type.unwrap_or(0);
    let is_double = code == DataType::Double as i32;
    let dtype = dtype_of_narrowing(code).ok_or_else(|| OnnxError::UnsupportedDType {
        file: file.to_string(),
        what: format!("tensor `{name}`"),
        dtype: dtype_name(code),
    })?;
    if tp.segment.is_some() {
        return Err(err("segmented tensors are not supported".into()));
    }
    let shape = dims_to_shape(&tp.dims).map_err(err)?;
    let ty = TensorType::new(dtype, shape.clone());
    let numel = ty.shape.checked_numel().ok_or_else(|| err(format!("shape {:?} is too large", tp.dims)))?;
    // Element size as stored in the file (DOUBLE is 8 bytes on disk).
    let stored_size = if is_double { 8 } else { dtype.size_bytes() };
    let want = numel.checked_mul(stored_size).ok_or_else(|| err(format!("shape {:?} is too large", tp.dims)))?;
    let type_desc = format!("{} {}", dtype_name(code), ty.shape);

    let external = tp.data_location == Some(DataLocation::External as i32);
    let raw: Option<Vec<u8>> =
        if external { Some(read_external(&tp, name, want, file, base_dir)?) } else { tp.raw_data.take() };

    let bytes: Vec<u8> = if let Some(raw) = raw {
        if raw.len() != want {
            let src = if external { "external data" } else { "raw_data" };
            return Err(err(format!("{src} has {} bytes but {type_desc} needs {want}", raw.len())));
        }
        if is_double {
            let mut out = Vec::with_capacity(numel * 4);
            for c in raw.chunks_exact(8) {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                (f64::from_le_bytes(a) as f32).write_le(&mut out);
            }
            out
        } else {
            raw
        }
    } else {
        typed_field_bytes(&tp, dtype, is_double, numel, &type_desc).map_err(err)?
    };
    Tensor::from_bytes(ty, Bytes::from_vec(bytes)).map_err(|e| err(e.to_string()))
}

/// Encodes the typed repeated field that holds data of `dtype`.
fn typed_field_bytes(
    tp: &TensorProto,
    dtype: DType,
    is_double: bool,
    numel: usize,
    type_desc: &str,
) -> Result<Vec<u8>, String> {
    let check = |field: &str, len: usize| -> Result<(), String> {
        if len == numel { Ok(()) } else { Err(format!("{field} has {len} values but {type_desc} needs {numel}")) }
    };
    // Check the field length before allocating (dims come from the file).
    if is_double {
        check("double_data", tp.double_data.len())?;
    } else {
        match dtype {
            DType::F32 => check("float_data", tp.float_data.len())?,
            DType::I64 => check("int64_data", tp.int64_data.len())?,
            _ => check("int32_data", tp.int32_data.len())?,
        }
    }
    let mut out = Vec::with_capacity(numel.saturating_mul(dtype.size_bytes()));
    if is_double {
        tp.double_data.iter().for_each(|&v| (v as f32).write_le(&mut out));
        return Ok(out);
    }
    match dtype {
        DType::F32 => tp.float_data.iter().for_each(|&v| v.write_le(&mut out)),
        DType::I64 => tp.int64_data.iter().for_each(|&v| v.write_le(&mut out)),
        _ => {
            for &v in &tp.int32_data {
                match dtype {
                    // 16-bit floats are stored as their bit patterns.
                    DType::F16 => f16::from_bits(v as u16).write_le(&mut out),
                    DType::BF16 => bf16::from_bits(v as u16).write_le(&mut out),
                    DType::I8 => (v as i8).write_le(&mut out),
                    DType::U8 => (v as u8).write_le(&mut out),
                    DType::I32 => v.write_le(&mut out),
                    DType::Bool => (v != 0).write_le(&mut out),
                    DType::F32 | DType::I64 => {}
                }
            }
        }
    }
    Ok(out)
}

/// Reads `want` bytes of external data described by `tp.external_data`.
fn read_external(
    tp: &TensorProto,
    name: &str,
    want: usize,
    file: &str,
    base_dir: Option<&Path>,
) -> Result<Vec<u8>, OnnxError> {
    let err = |msg: String| OnnxError::Tensor { file: file.to_string(), tensor: name.to_string(), msg };
    let get =
        |key: &str| tp.external_data.iter().find(|e| e.key.as_deref() == Some(key)).and_then(|e| e.value.as_deref());
    let location = get("location").ok_or_else(|| err("external data has no `location` entry".into()))?;
    let parse = |key: &str| -> Result<Option<u64>, OnnxError> {
        get(key)
            .map(|v| {
                v.trim().parse::<u64>().map_err(|_| err(format!("external data `{key}` is not a byte count: `{v}`")))
            })
            .transpose()
    };
    let offset = parse("offset")?.unwrap_or(0);
    let length = parse("length")?;
    let rel = Path::new(location);
    if !rel.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(err(format!(
            "external data location `{location}` must be a relative path inside the model's directory"
        )));
    }
    let Some(dir) = base_dir else {
        return Err(err(format!(
            "external data `{location}` cannot be found: the model was given as bytes without a directory"
        )));
    };
    let path: PathBuf = dir.join(rel);
    let ext_err = |msg: String| OnnxError::ExternalData {
        file: file.to_string(),
        tensor: name.to_string(),
        path: path.clone(),
        msg,
    };
    if let Some(len) = length
        && len != want as u64
    {
        return Err(ext_err(format!("`length` is {len} bytes but the tensor needs {want}")));
    }
    let mut f = std::fs::File::open(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound { ext_err("file not found".into()) } else { ext_err(e.to_string()) }
    })?;
    let size = f.metadata().map_err(|e| ext_err(e.to_string()))?.len();
    let end = offset.checked_add(want as u64);
    if end.is_none_or(|end| end > size) {
        return Err(ext_err(format!(
            "range at offset {offset} of {want} bytes is past the end of the file ({size} bytes)"
        )));
    }
    f.seek(SeekFrom::Start(offset)).map_err(|e| ext_err(e.to_string()))?;
    let mut buf = vec![0u8; want];
    f.read_exact(&mut buf).map_err(|e| ext_err(e.to_string()))?;
    Ok(buf)
}

/// Builds a tensor of `dtype` from f64 values (rounding/truncating as a
/// cast would).
pub(crate) fn tensor_from_f64(dtype: DType, shape: Vec<usize>, vals: &[f64]) -> Result<Tensor, String> {
    let r = match dtype {
        DType::F32 => Tensor::from_vec(shape, vals.iter().map(|&v| v as f32).collect()),
        DType::F16 => Tensor::from_vec(shape, vals.iter().map(|&v| f16::from_f64(v)).collect()),
        DType::BF16 => Tensor::from_vec(shape, vals.iter().map(|&v| bf16::from_f64(v)).collect()),
        DType::I8 => Tensor::from_vec(shape, vals.iter().map(|&v| v as i8).collect()),
        DType::U8 => Tensor::from_vec(shape, vals.iter().map(|&v| v as u8).collect()),
        DType::I32 => Tensor::from_vec(shape, vals.iter().map(|&v| v as i32).collect()),
        DType::I64 => Tensor::from_vec(shape, vals.iter().map(|&v| v as i64).collect()),
        DType::Bool => Tensor::from_vec(shape, vals.iter().map(|&v| v != 0.0).collect()),
    };
    r.map_err(|e| e.to_string())
}

/// Builds an integer tensor of `dtype` from i64 values (exact for i64).
pub(crate) fn tensor_from_i64(dtype: DType, shape: Vec<usize>, vals: &[i64]) -> Result<Tensor, String> {
    let r = match dtype {
        DType::I64 => Tensor::from_vec(shape, vals.to_vec()),
        DType::I32 => Tensor::from_vec(shape, vals.iter().map(|&v| v as i32).collect()),
        DType::I8 => Tensor::from_vec(shape, vals.iter().map(|&v| v as i8).collect()),
        DType::U8 => Tensor::from_vec(shape, vals.iter().map(|&v| v as u8).collect()),
        _ => return tensor_from_f64(dtype, shape, &vals.iter().map(|&v| v as f64).collect::<Vec<_>>()),
    };
    r.map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::onnx::proto::StringStringEntryProto;

    fn tp(dt: DataType, dims: &[i64]) -> TensorProto {
        TensorProto { data_type: Some(dt as i32), dims: dims.to_vec(), ..Default::default() }
    }

    #[test]
    fn typed_fields_decode() {
        let mut t = tp(DataType::Float, &[2]);
        t.float_data = vec![1.5, -2.0];
        let x = tensor_from_proto(t, "t", "m.onnx", None).unwrap();
        assert_eq!(x.to_vec::<f32>().unwrap(), vec![1.5, -2.0]);

        let mut t = tp(DataType::Float16, &[1]);
        t.int32_data = vec![f16::from_f32(0.5).to_bits() as i32];
        let x = tensor_from_proto(t, "t", "m.onnx", None).unwrap();
        assert_eq!(x.to_vec::<f16>().unwrap(), vec![f16::from_f32(0.5)]);

        let mut t = tp(DataType::Double, &[2]);
        t.double_data = vec![0.25, 3.0];
        let x = tensor_from_proto(t, "t", "m.onnx", None).unwrap();
        assert_eq!(x.to_vec::<f32>().unwrap(), vec![0.25, 3.0]);

        let mut t = tp(DataType::Bool, &[3]);
        t.int32_data = vec![1, 0, 1];
        let x = tensor_from_proto(t, "t", "m.onnx", None).unwrap();
        assert_eq!(x.to_vec::<bool>().unwrap(), vec![true, false, true]);

        let mut t = tp(DataType::Int64, &[]);
        t.raw_data = Some(7i64.to_le_bytes().to_vec());
        let x = tensor_from_proto(t, "t", "m.onnx", None).unwrap();
        assert_eq!(x.to_vec::<i64>().unwrap(), vec![7]);
    }

    #[test]
    fn wrong_sizes_are_errors() {
        let mut t = tp(DataType::Float, &[2, 3]);
        t.raw_data = Some(vec![0; 20]);
        let e = tensor_from_proto(t, "w", "m.onnx", None).unwrap_err().to_string();
        assert_eq!(e, "m.onnx: tensor `w`: raw_data has 20 bytes but FLOAT [2,3] needs 24");
        let mut t = tp(DataType::Int64, &[4]);
        t.int64_data = vec![1, 2];
        let e = tensor_from_proto(t, "w", "m.onnx", None).unwrap_err().to_string();
        assert!(e.contains("int64_data has 2 values but INT64 [4] needs 4"), "{e}");
        let t = tp(DataType::String, &[1]);
        let e = tensor_from_proto(t, "s", "m.onnx", None).unwrap_err();
        assert!(e.is_unsupported() && e.to_string().contains("STRING"), "{e}");
        let t = tp(DataType::Float, &[-1]);
        assert!(tensor_from_proto(t, "n", "m.onnx", None).is_err());
    }

    #[test]
    fn external_location_must_stay_inside() {
        let mut t = tp(DataType::Float, &[1]);
        t.data_location = Some(DataLocation::External as i32);
        t.external_data =
            vec![StringStringEntryProto { key: Some("location".into()), value: Some("../etc/passwd".into()) }];
        let e = tensor_from_proto(t, "w", "m.onnx", Some(Path::new("/tmp"))).unwrap_err().to_string();
        assert!(e.contains("must be a relative path"), "{e}");
    }
}
