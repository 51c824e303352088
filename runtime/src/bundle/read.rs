//! Validating bundle reader.
//!
//! The reader never panics, never indexes without a bounds check, and never
//! allocates a size read from the file before checking that the file is big
//! enough to hold it. The order of checks is: length ≥ 8, magic, format
//! version, kernel ABI version, file length, checksum, reserved header bytes,
//! section table, META, PLAN, SIGNATURE. Because the checksum comes early,
//! structural checks are only reachable with a bundle whose checksum is
//! right; tests build such bundles with
//! [`update_checksum`](super::update_checksum).

use super::{
    BufRef, BundleSpec, CRC_OFFSET, ElemType, FORMAT_VERSION, HEADER_SIZE, KERNEL_ABI_VERSION, KernelCode, MAGIC,
    MAX_ARENA_SIZE, Region, SECTION_ALIGN, SECTION_ENTRY_SIZE, SectionKind, Step, TensorSpec, checksum,
};
use crate::error::{Error, Result};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Decode and fully validate a bundle.
///
/// Everything is checked except the target triple (a bundle for another
/// architecture decodes fine; only [`Model`](crate::Model) refuses to run it).
/// Kernel code and weights are copied into the returned spec.
pub fn decode_bundle(bytes: &[u8]) -> Result<BundleSpec> {
    let l = parse(bytes)?;
    Ok(BundleSpec {
        target: l.target,
        triple: l.triple,
        arena_size: l.arena_size,
        inputs: l.inputs,
        outputs: l.outputs,
        kernels: l.kernels.into_iter().map(|k| KernelCode { name: k.name, code: k.code.to_vec() }).collect(),
        steps: l.steps,
        weights: l.weights.to_vec(),
    })
}

/// A kernel table entry, validated against CODE.
#[derive(Debug)]
pub(crate) struct KernelEntry<'a> {
    /// Kernel name.
    pub name: String,
    /// Offset of the kernel's first byte within CODE.
    pub offset: usize,
    /// The kernel's code (a subslice of [`Layout::code`]).
    pub code: &'a [u8],
}

/// A validated bundle whose CODE and WEIGHTS still live in the input bytes.
#[derive(Debug)]
pub(crate) struct Layout<'a> {
    pub target: String,
    pub triple: String,
    pub arena_size: u64,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    pub kernels: Vec<KernelEntry<'a>>,
    pub steps: Vec<Step>,
    /// The whole CODE section.
    pub code: &'a [u8],
    /// The whole WEIGHTS section.
    pub weights: &'a [u8],
}

/// Validate `bytes` as a bundle and return its layout.
pub(crate) fn parse(bytes: &[u8]) -> Result<Layout<'_>> {
    let len = bytes.len() as u64;
    let too_short = || Error::TooShort { actual: len };

    let magic: [u8; 8] = array_at(bytes, 0).ok_or_else(too_short)?;
    if magic != MAGIC {
        return Err(Error::BadMagic { found: magic });
    }
    let version = u32_at(bytes, 8).ok_or_else(too_short)?;
    if version != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion { version });
    }
    let abi = u32_at(bytes, 12).ok_or_else(too_short)?;
    if abi != KERNEL_ABI_VERSION {
        return Err(Error::UnsupportedAbi { version: abi });
    }
    let file_len = u64_at(bytes, 16).ok_or_else(too_short)?;
    if file_len > len {
        return Err(Error::Truncated { expected: file_len, actual: len });
    }
    if file_len < len {
        return Err(Error::TrailingData { expected: file_len, actual: len });
    }
    if bytes.len() < HEADER_SIZE {
        return Err(too_short());
    }
    let stored = u32_at(bytes, CRC_OFFSET).ok_or_else(too_short)?;
    let computed = checksum(bytes);
    if stored != computed {
        return Err(Error::ChecksumMismatch { stored, computed });
    }
    let section_count = u32_at(bytes, 28).ok_or_else(too_short)?;
    let reserved = bytes.get(32..HEADER_SIZE).ok_or_else(too_short)?;
    if let Some(i) = reserved.iter().position(|&b| b != 0) {
        return Err(Error::Malformed {
            part: "header",
            offset: 32 + i as u64,
            what: format!("reserved header bytes 32..64 must be zero, found {:#04x}", reserved[i]),
        });
    }

    let sections = parse_section_table(bytes, section_count)?;
    let slice = |kind: SectionKind| -> Result<(&[u8], u64)> {
        let (start, end) = sections[kind as usize - 1];
        let body = bytes.get(start as usize..end as usize).ok_or_else(|| Error::Malformed {
            part: kind.label(),
            offset: start,
            what: "section out of bounds".to_string(),
        })?;
        Ok((body, start))
    };

    let (code, _) = slice(SectionKind::Code)?;
    let (weights, _) = slice(SectionKind::Weights)?;

    let (meta, base) = slice(SectionKind::Meta)?;
    let mut c = Cursor::new(meta, base, SectionKind::Meta.label());
    let target = c.string("target name")?;
    let triple = c.string("target triple")?;
    c.finish()?;

    let (plan, base) = slice(SectionKind::Plan)?;
    let mut c = Cursor::new(plan, base, SectionKind::Plan.label());
    let (arena_size, kernels, steps) = parse_plan(&mut c, code, weights.len() as u64)?;

    let (sig, base) = slice(SectionKind::Signature)?;
    let mut c = Cursor::new(sig, base, SectionKind::Signature.label());
    let inputs = parse_tensors(&mut c, "input", arena_size)?;
    let outputs = parse_tensors(&mut c, "output", arena_size)?;
    c.finish()?;

    Ok(Layout { target, triple, arena_size, inputs, outputs, kernels, steps, code, weights })
}

/// Parse and check the section table; returns `[start, end)` file offsets
/// indexed by `kind - 1`.
fn parse_section_table(bytes: &[u8], count: u32) -> Result<[(u64, u64); 5]> {
    let len = bytes.len() as u64;
    let table_end = HEADER_SIZE as u64 + u64::from(count) * SECTION_ENTRY_SIZE as u64;
    if table_end > len {
        return Err(Error::Malformed {
            part: "header",
            offset: 28,
            what: format!(
                "section_count {count} needs a section table ending at byte {table_end}, but the file has {len} bytes"
            ),
        });
    }
    let table_err = |offset: u64, what: String| Error::Malformed { part: "section table", offset, what };

    let mut found: [Option<(u64, u64, u64)>; 5] = [None; 5]; // (start, end, entry offset)
    for i in 0..count as usize {
        let at = HEADER_SIZE + i * SECTION_ENTRY_SIZE;
        let field = |off: usize| at as u64 + off as u64;
        let (Some(kind), Some(reserved), Some(start), Some(size)) =
            (u32_at(bytes, at), u32_at(bytes, at + 4), u64_at(bytes, at + 8), u64_at(bytes, at + 16))
        else {
            return Err(table_err(field(0), format!("entry {i} extends past the end of the file")));
        };
        let Some(k) = SectionKind::from_code(kind) else {
            return Err(table_err(
                field(0),
                format!("entry {i}: unknown section kind {kind} (format version 1 knows kinds 1 to 5)"),
            ));
        };
        let label = k.label();
        if reserved != 0 {
            return Err(table_err(
                field(4),
                format!("entry {i} ({label}): reserved field must be zero, found {reserved}"),
            ));
        }
        let slot = &mut found[k as usize - 1];
        if slot.is_some() {
            return Err(table_err(
                field(0),
                format!("entry {i}: second {label} (each section kind must appear exactly once)"),
            ));
        }
        if start % SECTION_ALIGN as u64 != 0 {
            return Err(table_err(
                field(8),
                format!("entry {i} ({label}): offset {start} is not a multiple of {SECTION_ALIGN}"),
            ));
        }
        if start < table_end {
            return Err(table_err(
                field(8),
                format!(
                    "entry {i} ({label}): offset {start} overlaps the header and section table, which end at byte {table_end}"
                ),
            ));
        }
        let end = match start.checked_add(size) {
            Some(end) if end <= len => end,
            _ => {
                return Err(table_err(
                    field(16),
                    format!(
                        "entry {i} ({label}): {size} bytes at offset {start} extend past the end of the file ({len} bytes)"
                    ),
                ));
            }
        };
        *slot = Some((start, end, field(0)));
    }

    let mut out = [(0u64, 0u64); 5];
    for k in SectionKind::ALL {
        match found[k as usize - 1] {
            Some((start, end, _)) => out[k as usize - 1] = (start, end),
            None => {
                return Err(table_err(
                    HEADER_SIZE as u64,
                    format!("missing required {} (kind {})", k.label(), k as u32),
                ));
            }
        }
    }

    let mut order: Vec<(u64, u64, u64, SectionKind)> =
        SectionKind::ALL.into_iter().filter_map(|k| found[k as usize - 1].map(|(s, e, at)| (s, e, at, k))).collect();
    order.sort_by_key(|&(s, e, _, _)| (s, e));
    for w in order.windows(2) {
        let [(s0, e0, _, k0), (s1, e1, at1, k1)] = [w[0], w[1]];
        if e0 > s1 {
            return Err(table_err(
                at1 + 8,
                format!("{} at bytes {s1}..{e1} overlaps {} at bytes {s0}..{e0}", k1.label(), k0.label()),
            ));
        }
    }
    Ok(out)
}

type Plan<'a> = (u64, Vec<KernelEntry<'a>>, Vec<Step>);

fn parse_plan<'a>(c: &mut Cursor<'_>, code: &'a [u8], weights_len: u64) -> Result<Plan<'a>> {
    let at = c.pos;
    let arena_size = c.u64("arena size")?;
    if arena_size > MAX_ARENA_SIZE {
        return Err(c.error_at(
            at,
            format!("arena size {arena_size} bytes is implausible (the limit is {MAX_ARENA_SIZE} bytes, 4 GiB)"),
        ));
    }

    // Smallest encodings: kernel = name len + offset + size; step = kernel +
    // node len + arg count; arg = region + offset + size.
    let n = c.count("kernel", 4 + 8 + 8)?;
    let mut kernels = Vec::with_capacity(n);
    for i in 0..n {
        let name = c.string("kernel name")?;
        let at = c.pos;
        let offset = c.u64("kernel code offset")?;
        let size = c.u64("kernel code size")?;
        if size == 0 {
            return Err(c.error_at(
                at + 8,
                format!("kernel {i} (\"{name}\"): code size is 0 (expected at least one instruction)"),
            ));
        }
        let body = offset
            .checked_add(size)
            .filter(|&end| end <= code.len() as u64)
            .and_then(|end| code.get(offset as usize..end as usize));
        let Some(body) = body else {
            return Err(c.error_at(
                at,
                format!(
                    "kernel {i} (\"{name}\"): code range {offset}..{} is outside the CODE section ({} bytes)",
                    offset.saturating_add(size),
                    code.len()
                ),
            ));
        };
        kernels.push(KernelEntry { name, offset: offset as usize, code: body });
    }

    let n = c.count("step", 4 + 4 + 4)?;
    let mut steps = Vec::with_capacity(n);
    for i in 0..n {
        let kernel_at = c.pos;
        let kernel = c.u32("step kernel index")?;
        let node = c.string("step node name")?;
        if kernel as usize >= kernels.len() {
            return Err(c.error_at(
                kernel_at,
                format!(
                    "step {i} (node \"{node}\"): kernel index {kernel} out of range (the bundle has {} kernels)",
                    kernels.len()
                ),
            ));
        }
        let nargs = c.count("step argument", 1 + 8 + 8)?;
        let mut args = Vec::with_capacity(nargs);
        for j in 0..nargs {
            let region_at = c.pos;
            let code = c.u8("argument region")?;
            let Some(region) = Region::from_code(code) else {
                return Err(c.error_at(
                    region_at,
                    format!("step {i} (node \"{node}\") arg {j}: unknown region code {code} (expected 0 = arena or 1 = weights)"),
                ));
            };
            let offset_at = c.pos;
            let offset = c.u64("argument offset")?;
            let size = c.u64("argument size")?;
            let limit = match region {
                Region::Arena => arena_size,
                Region::Weights => weights_len,
            };
            if offset.checked_add(size).is_none_or(|end| end > limit) {
                let what = match region {
                    Region::Arena => "arena",
                    Region::Weights => "WEIGHTS section",
                };
                return Err(c.error_at(
                    offset_at,
                    format!(
                        "step {i} (node \"{node}\") arg {j}: {} bytes {offset}..{} are outside the {what} ({limit} bytes)",
                        region.name(),
                        offset.saturating_add(size)
                    ),
                ));
            }
            args.push(BufRef { region, offset, size });
        }
        steps.push(Step { kernel, node, args });
    }
    c.finish()?;
    Ok((arena_size, kernels, steps))
}

fn parse_tensors(c: &mut Cursor<'_>, role: &str, arena_size: u64) -> Result<Vec<TensorSpec>> {
    // Smallest tensor: name len + elem + rank + offset.
    let n = c.count(role, 4 + 1 + 4 + 8)?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let name = c.string(&format!("{role} name"))?;
        let elem_at = c.pos;
        let code = c.u8("element type")?;
        let Some(elem) = ElemType::from_code(code) else {
            return Err(c.error_at(
                elem_at,
                format!("{role} {i} (\"{name}\"): unknown element type code {code} (expected 1 to 8)"),
            ));
        };
        let rank = c.count(&format!("{role} {i} (\"{name}\") dimension"), 8)?;
        let mut shape = Vec::with_capacity(rank);
        for _ in 0..rank {
            shape.push(c.u64("dimension")?);
        }
        let offset_at = c.pos;
        let offset = c.u64("arena offset")?;
        let t = TensorSpec { name, elem, shape, offset };
        let Some(size) = t.byte_len() else {
            return Err(c.error_at(
                elem_at,
                format!("{role} {i} (\"{}\"): byte size of {elem}{:?} overflows u64", t.name, t.shape),
            ));
        };
        if offset.checked_add(size).is_none_or(|end| end > arena_size) {
            return Err(c.error_at(
                offset_at,
                format!(
                    "{role} {i} (\"{}\", {size} bytes): arena bytes {offset}..{} are outside the arena ({arena_size} bytes)",
                    t.name,
                    offset.saturating_add(size)
                ),
            ));
        }
        out.push(t);
    }
    Ok(out)
}

/// Bounds-checked little-endian reader over one section.
struct Cursor<'a> {
    data: &'a [u8],
    /// File offset of `data[0]`.
    base: u64,
    pos: usize,
    part: &'static str,
}

impl<'a> Cursor<'a> {
    fn new(data: &'a [u8], base: u64, part: &'static str) -> Self {
        Cursor { data, base, pos: 0, part }
    }

    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    fn error_at(&self, pos: usize, what: String) -> Error {
        Error::Malformed { part: self.part, offset: self.base + pos as u64, what }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let rest = self.remaining();
        let Some(s) = self.pos.checked_add(n).and_then(|end| self.data.get(self.pos..end)) else {
            return Err(self.error_at(
                self.pos,
                format!("expected {n} bytes for the {what}, but only {rest} remain in the section"),
            ));
        };
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(u8::from_le_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let at = self.pos;
        let n = self.u32(&format!("{what} length"))? as usize;
        let bytes = self.take(n, what)?;
        match core::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(e) => Err(self.error_at(at, format!("the {what} is not valid UTF-8 ({e})"))),
        }
    }

    /// Read a u32 element count and check that `count × min_size` bytes remain.
    fn count(&mut self, what: &str, min_size: usize) -> Result<usize> {
        let at = self.pos;
        let n = self.u32(&format!("{what} count"))? as usize;
        let rest = self.remaining();
        match n.checked_mul(min_size) {
            Some(need) if need <= rest => Ok(n),
            _ => Err(self.error_at(
                at,
                format!(
                    "{what} count {n} needs at least {} bytes, but only {rest} remain in the section",
                    n.saturating_mul(min_size)
                ),
            )),
        }
    }

    fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.error_at(self.pos, format!("{n} unexpected bytes after the end of the section's contents"))),
        }
    }
}

fn array_at<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    let s = bytes.get(at..at.checked_add(N)?)?;
    let mut a = [0; N];
    a.copy_from_slice(s);
    Some(a)
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    array_at(bytes, at).map(u32::from_le_bytes)
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    array_at(bytes, at).map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{encode_bundle, update_checksum};
    use crate::test_util::{decode_err, sample_spec, section_offset};

    const META: u32 = 1;
    const SIG: u32 = 2;
    const PLAN: u32 = 3;

    #[test]
    fn round_trip() {
        let spec = sample_spec();
        let bytes = encode_bundle(&spec);
        assert_eq!(&bytes[..8], b"NANOB\0\r\n");
        assert_eq!(u64::from_le_bytes(bytes[16..24].try_into().unwrap()), bytes.len() as u64);
        for kind in 1..=5 {
            assert_eq!(section_offset(&bytes, kind) % 64, 0);
        }
        assert_eq!(decode_bundle(&bytes).unwrap(), spec);

        // An empty model round-trips too.
        let empty = BundleSpec {
            target: String::new(),
            triple: String::new(),
            arena_size: 0,
            inputs: vec![],
            outputs: vec![],
            kernels: vec![],
            steps: vec![],
            weights: vec![],
        };
        assert_eq!(decode_bundle(&encode_bundle(&empty)).unwrap(), empty);
    }

    #[test]
    fn round_trip_all_elem_types_and_shapes() {
        let mut spec = sample_spec();
        spec.arena_size = 4096;
        spec.inputs = ElemType::ALL
            .into_iter()
            .enumerate()
            .map(|(i, elem)| TensorSpec {
                name: format!("in{i}"),
                elem,
                shape: vec![2, 3, i as u64 + 1],
                offset: 64 * i as u64,
            })
            .collect();
        let bytes = encode_bundle(&spec);
        assert_eq!(decode_bundle(&bytes).unwrap(), spec);
    }

    #[test]
    fn bad_magic() {
        let mut bytes = encode_bundle(&sample_spec());
        bytes[0] = b'X';
        assert_eq!(
            decode_err(&bytes),
            "not a nanoc bundle: header at byte 0: expected magic \"NANOB\\0\\r\\n\", found \"XANOB\\x00\\r\\n\""
        );
        assert!(decode_err(b"\x7fELF\x02\x01\x01\0rest of an ELF file").starts_with("not a nanoc bundle"));
    }

    #[test]
    fn wrong_versions() {
        let mut bytes = encode_bundle(&sample_spec());
        bytes[8] = 2;
        assert_eq!(decode_err(&bytes), "unsupported bundle format version 2 (this runtime reads version 1)");
        let mut bytes = encode_bundle(&sample_spec());
        bytes[12] = 7;
        assert_eq!(
            decode_err(&bytes),
            "unsupported kernel ABI version 7 (this runtime calls kernels with ABI version 1)"
        );
    }

    #[test]
    fn truncated_and_too_short() {
        let bytes = encode_bundle(&sample_spec());
        let n = bytes.len();
        assert_eq!(decode_err(&bytes[..n - 10]), format!("truncated: header says {n} bytes, file has {}", n - 10));
        assert_eq!(decode_err(&bytes[..40]), format!("truncated: header says {n} bytes, file has 40"));
        assert_eq!(decode_err(&bytes[..10]), "truncated: file has 10 bytes, less than the 64-byte bundle header");
        assert_eq!(decode_err(&[]), "truncated: file has 0 bytes, less than the 64-byte bundle header");
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(decode_err(&long), format!("trailing data: header says {n} bytes, file has {}", n + 1));
    }

    #[test]
    fn every_truncation_fails_cleanly() {
        let bytes = encode_bundle(&sample_spec());
        for n in 0..bytes.len() {
            assert!(decode_bundle(&bytes[..n]).is_err(), "prefix of {n} bytes decoded");
        }
    }

    #[test]
    fn flipped_byte_is_a_checksum_mismatch() {
        let mut bytes = encode_bundle(&sample_spec());
        let stored = u32::from_le_bytes(bytes[24..28].try_into().unwrap());
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40; // in the weights
        let computed = checksum(&bytes);
        assert_eq!(
            decode_err(&bytes),
            format!(
                "checksum mismatch: header at byte 24 says crc32 {stored:#010x}, contents hash to {computed:#010x} (file corrupt)"
            )
        );
    }

    #[test]
    fn any_single_byte_corruption_never_panics() {
        // With the checksum fixed up, every corruption reaches the
        // structural checks: none may panic (most must fail).
        let bytes = encode_bundle(&sample_spec());
        for i in 0..bytes.len() {
            if (16..28).contains(&i) {
                continue; // file_len/crc: covered elsewhere
            }
            for v in [0x00, 0x01, 0x7f, 0x80, 0xff, bytes[i].wrapping_add(1)] {
                let mut b = bytes.clone();
                b[i] = v;
                update_checksum(&mut b);
                let _ = decode_bundle(&b);
            }
        }
    }

    #[test]
    fn reserved_header_bytes_must_be_zero() {
        let mut bytes = encode_bundle(&sample_spec());
        bytes[40] = 1;
        update_checksum(&mut bytes);
        assert_eq!(decode_err(&bytes), "header at byte 40: reserved header bytes 32..64 must be zero, found 0x01");
    }

    #[test]
    fn section_table_errors() {
        let good = encode_bundle(&sample_spec());
        let meta = section_offset(&good, META);

        // Unknown kind.
        let mut b = good.clone();
        b[64] = 9;
        update_checksum(&mut b);
        assert_eq!(
            decode_err(&b),
            "section table at byte 64: entry 0: unknown section kind 9 (format version 1 knows kinds 1 to 5)"
        );

        // Duplicate kind (entry 1 claims to be META too).
        let mut b = good.clone();
        b[88] = 1;
        update_checksum(&mut b);
        assert_eq!(
            decode_err(&b),
            "section table at byte 88: entry 1: second META section (each section kind must appear exactly once)"
        );

        // Misaligned section.
        let mut b = good.clone();
        b[72..80].copy_from_slice(&(meta as u64 + 8).to_le_bytes());
        update_checksum(&mut b);
        assert_eq!(
            decode_err(&b),
            format!("section table at byte 72: entry 0 (META section): offset {} is not a multiple of 64", meta + 8)
        );

        // Section past the end of the file.
        let mut b = good.clone();
        b[80..88].copy_from_slice(&u64::MAX.to_le_bytes());
        update_checksum(&mut b);
        assert_eq!(
            decode_err(&b),
            format!(
                "section table at byte 80: entry 0 (META section): {} bytes at offset {meta} extend past the end of the file ({} bytes)",
                u64::MAX,
                good.len()
            )
        );

        // Overlapping sections: SIGNATURE moved onto META.
        let mut b = good.clone();
        b[96..104].copy_from_slice(&(meta as u64).to_le_bytes());
        update_checksum(&mut b);
        let e = decode_err(&b);
        assert!(e.starts_with("section table at byte 96: SIGNATURE section at bytes 192.."), "{e}");
        assert!(e.contains("overlaps META section at bytes 192..233"), "{e}");

        // Section overlapping the header.
        let mut b = good.clone();
        b[72..80].copy_from_slice(&64u64.to_le_bytes());
        update_checksum(&mut b);
        assert_eq!(
            decode_err(&b),
            "section table at byte 72: entry 0 (META section): offset 64 overlaps the header and section table, which end at byte 184"
        );

        // Missing section: claim only 4 entries.
        let mut b = good.clone();
        b[28] = 4;
        update_checksum(&mut b);
        assert_eq!(decode_err(&b), "section table at byte 64: missing required WEIGHTS section (kind 5)");

        // Table that cannot fit in the file.
        let mut b = good.clone();
        b[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
        update_checksum(&mut b);
        assert!(
            decode_err(&b)
                .starts_with("header at byte 28: section_count 4294967295 needs a section table ending at byte")
        );
    }

    #[test]
    fn string_length_out_of_bounds() {
        let mut b = encode_bundle(&sample_spec());
        let meta = section_offset(&b, META);
        b[meta..meta + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        update_checksum(&mut b);
        assert_eq!(
            decode_err(&b),
            format!(
                "META section at byte {}: expected 4294967295 bytes for the target name, but only 37 remain in the section",
                meta + 4
            )
        );
    }

    #[test]
    fn invalid_utf8_and_trailing_bytes() {
        let mut b = encode_bundle(&sample_spec());
        let meta = section_offset(&b, META);
        b[meta + 4] = 0xff;
        update_checksum(&mut b);
        assert!(
            decode_err(&b).starts_with(&format!("META section at byte {meta}: the target name is not valid UTF-8")),
        );

        // Grow the META section's recorded size into its padding.
        let mut b = encode_bundle(&sample_spec());
        b[80..88].copy_from_slice(&45u64.to_le_bytes());
        update_checksum(&mut b);
        assert_eq!(
            decode_err(&b),
            format!("META section at byte {}: 4 unexpected bytes after the end of the section's contents", meta + 41)
        );
    }

    #[test]
    fn huge_count_is_rejected_before_allocating() {
        let mut b = encode_bundle(&sample_spec());
        let plan = section_offset(&b, PLAN);
        b[plan + 8..plan + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        update_checksum(&mut b);
        assert_eq!(
            decode_err(&b),
            format!(
                "PLAN section at byte {}: kernel count 4294967295 needs at least 85899345900 bytes, but only 213 remain in the section",
                plan + 8
            )
        );
    }

    #[test]
    fn step_arg_out_of_arena() {
        // Built by a (buggy) writer: the checksum is right, the structure is not.
        let mut spec = sample_spec();
        spec.steps[0].args[1].offset = 62;
        let b = encode_bundle(&spec);
        let plan = section_offset(&b, PLAN);
        assert_eq!(
            decode_err(&b),
            format!(
                "PLAN section at byte {}: step 0 (node \"copy_in\") arg 1: arena bytes 62..66 are outside the arena (64 bytes)",
                plan + 103
            )
        );

        // The same corruption patched into the bytes, with the crc fixed up.
        let mut b = encode_bundle(&sample_spec());
        b[plan + 103..plan + 111].copy_from_slice(&62u64.to_le_bytes());
        update_checksum(&mut b);
        assert!(decode_err(&b).contains("arena bytes 62..66 are outside the arena (64 bytes)"));

        // Offset + size overflowing u64.
        let mut spec = sample_spec();
        spec.steps[0].args[1].offset = u64::MAX;
        assert!(decode_err(&encode_bundle(&spec)).contains(&format!(
            "arena bytes {}..{} are outside the arena",
            u64::MAX,
            u64::MAX
        )));
    }

    #[test]
    fn step_arg_out_of_weights_and_bad_region() {
        let mut spec = sample_spec();
        spec.steps[2].args[0].offset = 5;
        let e = decode_err(&encode_bundle(&spec));
        assert!(
            e.ends_with("step 2 (node \"load_w\") arg 0: weights bytes 5..9 are outside the WEIGHTS section (8 bytes)"),
            "{e}"
        );

        let mut b = encode_bundle(&sample_spec());
        let plan = section_offset(&b, PLAN);
        b[plan + 85] = 2; // step 0 arg 0 region
        update_checksum(&mut b);
        assert_eq!(
            decode_err(&b),
            format!(
                "PLAN section at byte {}: step 0 (node \"copy_in\") arg 0: unknown region code 2 (expected 0 = arena or 1 = weights)",
                plan + 85
            )
        );
    }

    #[test]
    fn io_tensor_out_of_arena() {
        let mut spec = sample_spec();
        spec.outputs[0].offset = 62;
        let b = encode_bundle(&spec);
        let sig = section_offset(&b, SIG);
        assert_eq!(
            decode_err(&b),
            format!(
                "SIGNATURE section at byte {}: output 0 (\"y\", 4 bytes): arena bytes 62..66 are outside the arena (64 bytes)",
                sig + 36
            )
        );

        let mut spec = sample_spec();
        spec.inputs[0].shape = vec![1 << 40, 1 << 40];
        let e = decode_err(&encode_bundle(&spec));
        assert!(e.ends_with("input 0 (\"x\"): byte size of f32[1099511627776, 1099511627776] overflows u64"), "{e}");
    }

    #[test]
    fn bad_elem_code() {
        let mut b = encode_bundle(&sample_spec());
        let sig = section_offset(&b, SIG);
        b[sig + 9] = 9; // input 0's element type (after count and name "x")
        update_checksum(&mut b);
        assert_eq!(
            decode_err(&b),
            format!(
                "SIGNATURE section at byte {}: input 0 (\"x\"): unknown element type code 9 (expected 1 to 8)",
                sig + 9
            )
        );
    }

    #[test]
    fn bad_kernel_index() {
        let mut spec = sample_spec();
        spec.steps[0].kernel = 5;
        let b = encode_bundle(&spec);
        let plan = section_offset(&b, PLAN);
        assert_eq!(
            decode_err(&b),
            format!(
                "PLAN section at byte {}: step 0 (node \"copy_in\"): kernel index 5 out of range (the bundle has 2 kernels)",
                plan + 66
            )
        );
    }

    #[test]
    fn kernel_code_out_of_code_section() {
        let mut b = encode_bundle(&sample_spec());
        let plan = section_offset(&b, PLAN);
        // kernel 1's code offset field: arena(8) + count(4) + kernel 0 (25) + name "fail1" (9)
        b[plan + 46..plan + 54].copy_from_slice(&20u64.to_le_bytes());
        update_checksum(&mut b);
        assert_eq!(
            decode_err(&b),
            format!(
                "PLAN section at byte {}: kernel 1 (\"fail1\"): code range 20..26 is outside the CODE section (22 bytes)",
                plan + 46
            )
        );

        let mut spec = sample_spec();
        spec.kernels[1].code.clear();
        assert!(
            decode_err(&encode_bundle(&spec))
                .ends_with("kernel 1 (\"fail1\"): code size is 0 (expected at least one instruction)")
        );
    }

    #[test]
    fn implausible_arena() {
        let mut spec = sample_spec();
        spec.arena_size = (4 << 30) + 1;
        let b = encode_bundle(&spec);
        let plan = section_offset(&b, PLAN);
        assert_eq!(
            decode_err(&b),
            format!(
                "PLAN section at byte {plan}: arena size 4294967297 bytes is implausible (the limit is 4294967296 bytes, 4 GiB)"
            )
        );
    }

    #[test]
    fn foreign_triple_still_decodes() {
        let mut spec = sample_spec();
        spec.triple = "riscv64gc-unknown-linux-gnu".into();
        assert_eq!(decode_bundle(&encode_bundle(&spec)).unwrap(), spec);
    }
}
