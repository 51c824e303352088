//! Bundle writer (used by the compiler).

use super::{
    BundleSpec, FORMAT_VERSION, HEADER_SIZE, KERNEL_ABI_VERSION, KERNEL_ALIGN, MAGIC, SECTION_ALIGN,
    SECTION_ENTRY_SIZE, SectionKind, TensorSpec, update_checksum,
};

use alloc::vec::Vec;

/// Encode `spec` as a version-1 `.nanob` bundle.
///
/// The writer trusts its input: it does not check that offsets fit the arena
/// or that kernel indices exist ([`decode_bundle`](super::decode_bundle) and
/// [`Model`](crate::Model) do). Sections are written in the order META,
/// SIGNATURE, PLAN, CODE, WEIGHTS, each at a 64-byte aligned offset, with
/// zero padding between them; each kernel's code starts at a 16-byte aligned
/// offset within CODE.
///
/// # Panics
///
/// If a string, shape or list has more than `u32::MAX` entries or bytes
/// (which no real model comes near).
pub fn encode_bundle(spec: &BundleSpec) -> Vec<u8> {
    // CODE first: the PLAN records where each kernel landed.
    let mut code = Vec::new();
    let mut code_ranges = Vec::with_capacity(spec.kernels.len());
    for k in &spec.kernels {
        pad_to(&mut code, KERNEL_ALIGN);
        code_ranges.push((code.len() as u64, k.code.len() as u64));
        code.extend_from_slice(&k.code);
    }

    let mut meta = Vec::new();
    put_str(&mut meta, &spec.target);
    put_str(&mut meta, &spec.triple);

    let mut sig = Vec::new();
    for list in [&spec.inputs, &spec.outputs] {
        put_u32(&mut sig, count(list.len()));
        for t in list {
            put_tensor(&mut sig, t);
        }
    }

    let mut plan = Vec::new();
    put_u64(&mut plan, spec.arena_size);
    put_u32(&mut plan, count(spec.kernels.len()));
    for (k, (offset, size)) in spec.kernels.iter().zip(code_ranges) {
        put_str(&mut plan, &k.name);
        put_u64(&mut plan, offset);
        put_u64(&mut plan, size);
    }
    put_u32(&mut plan, count(spec.steps.len()));
    for s in &spec.steps {
        put_u32(&mut plan, s.kernel);
        put_str(&mut plan, &s.node);
        put_u32(&mut plan, count(s.args.len()));
        for a in &s.args {
            plan.push(a.region.code());
            put_u64(&mut plan, a.offset);
            put_u64(&mut plan, a.size);
        }
    }

    let sections: [(SectionKind, &[u8]); 5] = [
        (SectionKind::Meta, &meta),
        (SectionKind::Signature, &sig),
        (SectionKind::Plan, &plan),
        (SectionKind::Code, &code),
        (SectionKind::Weights, &spec.weights),
    ];

    let table_end = HEADER_SIZE + sections.len() * SECTION_ENTRY_SIZE;
    let total_estimate = table_end + sections.iter().map(|(_, b)| b.len() + SECTION_ALIGN).sum::<usize>();
    let mut out = Vec::with_capacity(total_estimate);

    // Header (file_len and crc patched below).
    out.extend_from_slice(&MAGIC);
    put_u32(&mut out, FORMAT_VERSION);
    put_u32(&mut out, KERNEL_ABI_VERSION);
    put_u64(&mut out, 0); // file_len
    put_u32(&mut out, 0); // crc32
    put_u32(&mut out, count(sections.len()));
    out.resize(HEADER_SIZE, 0);

    // Section table (offsets patched as the sections are laid out).
    out.resize(table_end, 0);
    for (i, (kind, body)) in sections.iter().enumerate() {
        pad_to(&mut out, SECTION_ALIGN);
        let offset = out.len() as u64;
        out.extend_from_slice(body);
        let mut entry = Vec::with_capacity(SECTION_ENTRY_SIZE);
        put_u32(&mut entry, *kind as u32);
        put_u32(&mut entry, 0);
        put_u64(&mut entry, offset);
        put_u64(&mut entry, body.len() as u64);
        let at = HEADER_SIZE + i * SECTION_ENTRY_SIZE;
        out[at..at + SECTION_ENTRY_SIZE].copy_from_slice(&entry);
    }

    let len = out.len() as u64;
    out[16..24].copy_from_slice(&len.to_le_bytes());
    update_checksum(&mut out);
    out
}

fn put_tensor(out: &mut Vec<u8>, t: &TensorSpec) {
    put_str(out, &t.name);
    out.push(t.elem.code());
    put_u32(out, count(t.shape.len()));
    for &d in &t.shape {
        put_u64(out, d);
    }
    put_u64(out, t.offset);
}

fn pad_to(out: &mut Vec<u8>, align: usize) {
    out.resize(out.len().next_multiple_of(align), 0);
}

fn count(n: usize) -> u32 {
    match u32::try_from(n) {
        Ok(n) => n,
        Err(_) => panic!("bundle list or string of {n} entries exceeds the u32 limit"),
    }
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, count(s.len()));
    out.extend_from_slice(s.as_bytes());
}
