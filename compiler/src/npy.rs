//! `.npy` input and output files (through the `npyz` crate).

use anyhow::{Context, Result, bail};
use nanoc_ir::{Bytes, DType, Tensor, TensorType};
use npyz::WriterBuilder;
use std::io::Read;
use std::path::Path;

/// The numpy type string of a dtype (little-endian).
fn type_str(dt: DType) -> &'static str {
    match dt {
        DType::F32 => "<f4",
        DType::F16 => "<f2",
        DType::BF16 => "<V2",
        DType::I8 => "|i1",
        DType::U8 => "|u1",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::Bool => "|b1",
    }
}

/// Reads a C-order `.npy` file into a tensor.
pub fn read_npy(path: &Path) -> Result<Tensor> {
    let p = path.display();
    let file = std::fs::File::open(path).with_context(|| format!("{p}: cannot open"))?;
    let npy =
        npyz::NpyFile::new(std::io::BufReader::new(file)).with_context(|| format!("{p}: not a valid .npy file"))?;
    if npy.order() != npyz::Order::C {
        bail!("{p}: Fortran-order arrays are not supported; save with np.ascontiguousarray");
    }
    let ts = match npy.dtype() {
        npyz::DType::Plain(ts) => ts.to_string(),
        other => bail!("{p}: unsupported structured dtype {other:?}"),
    };
    let ts_norm = ts.replace('=', "<");
    let dtype = DType::ALL
        .into_iter()
        .find(|&d| type_str(d) == ts_norm || (d.size_bytes() == 1 && type_str(d)[1..] == ts_norm[1..]))
        .with_context(|| {
            format!("{p}: unsupported numpy dtype `{ts}` (nanoc reads f32, f16, i8, u8, i32, i64, bool)")
        })?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let ty = TensorType::new(dtype, shape);
    let want = ty.shape.checked_numel().and_then(|n| n.checked_mul(dtype.size_bytes()));
    let Some(want) = want else { bail!("{p}: shape {} is too large", ty.shape) };
    let mut data = Vec::new();
    npy.into_inner().take(want as u64 + 1).read_to_end(&mut data).with_context(|| format!("{p}: read error"))?;
    if data.len() != want {
        bail!("{p}: truncated: {ty} needs {want} data bytes, file has {}", data.len());
    }
    Ok(Tensor::from_bytes(ty, Bytes::from_vec(data))?)
}

/// Writes a tensor as a `.npy` file (f32, f16, i8, u8, i32, i64, bool).
pub fn write_npy(path: &Path, t: &Tensor) -> Result<()> {
    let shape: Vec<u64> = t.shape().0.iter().map(|&d| d as u64).collect();
    match t.dtype() {
        DType::F32 => write_typed(path, &shape, t.to_vec::<f32>()?),
        DType::F16 => write_typed(path, &shape, t.to_vec::<half::f16>()?),
        DType::I8 => write_typed(path, &shape, t.to_vec::<i8>()?),
        DType::U8 => write_typed(path, &shape, t.to_vec::<u8>()?),
        DType::I32 => write_typed(path, &shape, t.to_vec::<i32>()?),
        DType::I64 => write_typed(path, &shape, t.to_vec::<i64>()?),
        DType::Bool => write_typed(path, &shape, t.to_vec::<bool>()?),
        other => bail!("{}: writing {other} arrays is not supported", path.display()),
    }
}

fn write_typed<T: npyz::AutoSerialize>(path: &Path, shape: &[u64], data: Vec<T>) -> Result<()> {
    let p = path.display();
    let file = std::fs::File::create(path).with_context(|| format!("{p}: cannot create"))?;
    let mut w =
        npyz::WriteOptions::new().default_dtype().shape(shape).writer(std::io::BufWriter::new(file)).begin_nd()?;
    w.extend(data).with_context(|| format!("{p}: write error"))?;
    w.finish().with_context(|| format!("{p}: write error"))?;
    Ok(())
}
