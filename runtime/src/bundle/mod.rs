//! The `.nanob` bundle format, version 1: data model, writer and validating reader.
//!
//! A bundle is one little-endian file: a fixed 64-byte header, a section
//! table, and five 64-byte aligned sections (META, SIGNATURE, PLAN, CODE,
//! WEIGHTS). The exact layout is documented in `docs/bundle-format.md`.
//!
//! [`BundleSpec`] is the in-memory form; [`encode_bundle`] turns it into bytes
//! (it trusts its input) and [`decode_bundle`] turns bytes back into a spec
//! after validating everything.

pub mod read;
pub mod write;

use alloc::string::String;
use alloc::vec::Vec;

pub use read::decode_bundle;
pub use write::encode_bundle;

/// The 8 magic bytes every bundle starts with.
pub const MAGIC: [u8; 8] = *b"NANOB\0\r\n";
/// The bundle format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The kernel calling convention version this crate writes and calls
/// (see [`KernelFn`](crate::KernelFn)).
pub const KERNEL_ABI_VERSION: u32 = 1;
/// Size of the fixed header in bytes.
pub const HEADER_SIZE: usize = 64;
/// Size of one section table entry in bytes.
pub const SECTION_ENTRY_SIZE: usize = 24;
/// Every section starts at a file offset that is a multiple of this.
pub const SECTION_ALIGN: usize = 64;
/// The writer starts each kernel's code at a CODE offset that is a multiple
/// of this (readers must not rely on it).
pub const KERNEL_ALIGN: usize = 16;
/// Largest arena a bundle may ask for (4 GiB); larger sizes are rejected as
/// implausible.
pub const MAX_ARENA_SIZE: u64 = 1 << 32;

/// Byte offset of the `crc32` header field.
pub(crate) const CRC_OFFSET: usize = 24;

/// Section kinds of format version 1 (the `kind` field of a section table entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum SectionKind {
    /// Target name and target triple.
    Meta = 1,
    /// Input and output tensors.
    Signature = 2,
    /// Arena size, kernel table and steps.
    Plan = 3,
    /// All kernels' machine code, concatenated.
    Code = 4,
    /// Raw weight bytes.
    Weights = 5,
}

impl SectionKind {
    /// All kinds, in the order the writer emits them.
    pub const ALL: [SectionKind; 5] =
        [SectionKind::Meta, SectionKind::Signature, SectionKind::Plan, SectionKind::Code, SectionKind::Weights];

    /// The kind with table code `code`, if v1 knows it.
    pub fn from_code(code: u32) -> Option<SectionKind> {
        Self::ALL.into_iter().find(|k| *k as u32 == code)
    }

    /// The name used in error messages, e.g. `"PLAN section"`.
    pub fn label(self) -> &'static str {
        match self {
            SectionKind::Meta => "META section",
            SectionKind::Signature => "SIGNATURE section",
            SectionKind::Plan => "PLAN section",
            SectionKind::Code => "CODE section",
            SectionKind::Weights => "WEIGHTS section",
        }
    }
}

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElemType {
    /// IEEE 754 binary32.
    F32,
    /// IEEE 754 binary16.
    F16,
    /// bfloat16.
    BF16,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 32-bit integer.
    I32,
    /// Signed 64-bit integer.
    I64,
    /// Boolean stored as one byte (0 or 1).
    Bool,
}

impl ElemType {
    /// All element types, in code order.
    pub const ALL: [ElemType; 8] = [
        ElemType::F32,
        ElemType::F16,
        ElemType::BF16,
        ElemType::I8,
        ElemType::U8,
        ElemType::I32,
        ElemType::I64,
        ElemType::Bool,
    ];

    /// Size of one element in bytes.
    pub fn size_bytes(self) -> usize {
        match self {
            ElemType::F32 | ElemType::I32 => 4,
            ElemType::F16 | ElemType::BF16 => 2,
            ElemType::I8 | ElemType::U8 | ElemType::Bool => 1,
            ElemType::I64 => 8,
        }
    }

    /// Lowercase name: `"f32"`, `"f16"`, `"bf16"`, `"i8"`, `"u8"`, `"i32"`, `"i64"` or `"bool"`.
    pub fn name(self) -> &'static str {
        match self {
            ElemType::F32 => "f32",
            ElemType::F16 => "f16",
            ElemType::BF16 => "bf16",
            ElemType::I8 => "i8",
            ElemType::U8 => "u8",
            ElemType::I32 => "i32",
            ElemType::I64 => "i64",
            ElemType::Bool => "bool",
        }
    }

    /// The code stored in bundles: 1 f32, 2 f16, 3 bf16, 4 i8, 5 u8, 6 i32, 7 i64, 8 bool.
    pub fn code(self) -> u8 {
        match self {
            ElemType::F32 => 1,
            ElemType::F16 => 2,
            ElemType::BF16 => 3,
            ElemType::I8 => 4,
            ElemType::U8 => 5,
            ElemType::I32 => 6,
            ElemType::I64 => 7,
            ElemType::Bool => 8,
        }
    }

    /// The element type with bundle code `code`, or `None` for an unknown code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.code() == code)
    }
}

impl core::fmt::Display for ElemType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A model input or output: a dense row-major tensor living in the arena.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorSpec {
    /// Name from the source graph.
    pub name: String,
    /// Element type.
    pub elem: ElemType,
    /// Dimensions (empty for a scalar).
    pub shape: Vec<u64>,
    /// Byte offset of the tensor's first element in the arena.
    pub offset: u64,
}

impl TensorSpec {
    /// Number of elements (product of the shape), or `None` on overflow.
    pub fn elem_count(&self) -> Option<u64> {
        self.shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))
    }

    /// Size in bytes (elements × element size), or `None` on overflow.
    pub fn byte_len(&self) -> Option<u64> {
        self.elem_count()?.checked_mul(self.elem.size_bytes() as u64)
    }
}

/// Which memory region a kernel argument points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Region {
    /// The model's read-write arena (stored as region code 0).
    Arena,
    /// The read-only WEIGHTS section (stored as region code 1).
    Weights,
}

impl Region {
    /// The code stored in bundles: 0 arena, 1 weights.
    pub fn code(self) -> u8 {
        match self {
            Region::Arena => 0,
            Region::Weights => 1,
        }
    }

    /// The region with bundle code `code`, or `None` for an unknown code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Region::Arena),
            1 => Some(Region::Weights),
            _ => None,
        }
    }

    /// Lowercase name: `"arena"` or `"weights"`.
    pub fn name(self) -> &'static str {
        match self {
            Region::Arena => "arena",
            Region::Weights => "weights",
        }
    }
}

/// A byte range in the arena or the weights, passed to a kernel as one pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BufRef {
    /// Region the range lies in.
    pub region: Region,
    /// Byte offset from the start of the region.
    pub offset: u64,
    /// Length in bytes (used for validation; the kernel sees only the pointer).
    pub size: u64,
}

/// One compiled kernel: position-independent host machine code without
/// relocations, callable as [`KernelFn`](crate::KernelFn).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KernelCode {
    /// Kernel (symbol) name, for diagnostics.
    pub name: String,
    /// Machine code; execution starts at byte 0. Must not be empty.
    pub code: Vec<u8>,
}

/// One step of the execution plan: call a kernel with a list of buffers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Step {
    /// Index into [`BundleSpec::kernels`].
    pub kernel: u32,
    /// Name of the graph node this step computes, for diagnostics.
    pub node: String,
    /// The kernel's arguments, in order; the kernel receives one pointer per entry.
    pub args: Vec<BufRef>,
}

/// Everything a bundle contains, in memory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BundleSpec {
    /// Target name (e.g. a nanoc target preset name).
    pub target: String,
    /// Target triple the code was compiled for, e.g. `"x86_64-unknown-linux-gnu"`.
    pub triple: String,
    /// Size of the read-write arena in bytes (at most [`MAX_ARENA_SIZE`]).
    pub arena_size: u64,
    /// Model inputs, in call order.
    pub inputs: Vec<TensorSpec>,
    /// Model outputs, in result order.
    pub outputs: Vec<TensorSpec>,
    /// Kernels referenced by the steps.
    pub kernels: Vec<KernelCode>,
    /// Steps, executed in order.
    pub steps: Vec<Step>,
    /// Raw weight bytes (the WEIGHTS section).
    pub weights: Vec<u8>,
}

/// CRC-32 of a bundle with its crc field treated as zero.
///
/// `bytes` must be at least [`HEADER_SIZE`] long.
pub(crate) fn checksum(bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(bytes.get(..CRC_OFFSET).unwrap_or_default());
    h.update(&[0; 4]);
    h.update(bytes.get(CRC_OFFSET + 4..).unwrap_or_default());
    h.finalize()
}

/// Recompute and store the header checksum of an encoded bundle.
///
/// For tools and tests that patch bundles after encoding (e.g. to build
/// deliberately malformed files); [`encode_bundle`] already does this.
/// Does nothing if `bytes` is shorter than the header.
pub fn update_checksum(bytes: &mut [u8]) {
    if bytes.len() < HEADER_SIZE {
        return;
    }
    let crc = checksum(bytes);
    bytes[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elem_type_codes_round_trip() {
        for e in ElemType::ALL {
            assert_eq!(ElemType::from_code(e.code()), Some(e));
            assert_eq!(e.to_string(), e.name());
        }
        assert_eq!(ElemType::from_code(0), None);
        assert_eq!(ElemType::from_code(9), None);
        assert_eq!(ElemType::BF16.size_bytes(), 2);
        assert_eq!(ElemType::I64.size_bytes(), 8);
    }

    #[test]
    fn byte_len_is_checked() {
        let mut t = TensorSpec { name: "x".into(), elem: ElemType::F32, shape: vec![2, 3], offset: 0 };
        assert_eq!(t.byte_len(), Some(24));
        t.shape = vec![];
        assert_eq!(t.byte_len(), Some(4));
        t.shape = vec![u64::MAX, 2];
        assert_eq!(t.byte_len(), None);
        t.shape = vec![u64::MAX / 2];
        assert_eq!(t.byte_len(), None);
    }
}
