//! Corruption campaign: every single-byte flip (xor 0xFF) and every
//! truncation of a small valid bundle must be rejected by
//! `Model::from_bytes` — before any code could run.
//!
//! A second flip campaign re-fixes the checksum after each flip, so the
//! structural validation sees every corruption. Those flips must be rejected
//! too, except in the regions the format deliberately does not interpret:
//! weights, kernel machine code, padding between sections, the bytes of
//! names (if they stay valid UTF-8), and the arena size (any size up to
//! 4 GiB that still holds every tensor and argument is a valid plan). The
//! test asserts that only those pass. Accepted models are dropped, never run.

#![allow(clippy::unwrap_used)] // test code: a panic is a failure with a message

use std::ops::Range;

use nanoc_runtime::bundle::update_checksum;
use nanoc_runtime::{BufRef, BundleSpec, ElemType, KernelCode, Model, Region, Step, TensorSpec};

/// Why a byte may legitimately be changed without the loader noticing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    /// Checked structure: a flip here must be rejected.
    Structure,
    /// The header's crc32 field (re-fixing the checksum undoes the flip).
    Crc,
    /// Zero padding between sections (covered by the checksum only).
    Padding,
    /// Bytes of a name (target, triple, tensor, kernel or node name).
    Name,
    /// The PLAN's arena size (a larger arena is a valid plan).
    ArenaSize,
    /// Kernel machine code (including padding between kernels).
    Code,
    /// Weight bytes.
    Weights,
}

fn arena(offset: u64, size: u64) -> BufRef {
    BufRef { region: Region::Arena, offset, size }
}

/// A small bundle for this host: 2 inputs (one with a shape), 2 outputs,
/// 2 kernels, 3 steps, 8 bytes of weights. The code bytes are never run.
fn spec() -> BundleSpec {
    let t = |name: &str, shape: Vec<u64>, offset| TensorSpec { name: name.into(), elem: ElemType::F32, shape, offset };
    BundleSpec {
        target: "test-host".into(),
        triple: format!("{}-unknown-linux-gnu", std::env::consts::ARCH),
        arena_size: 128,
        inputs: vec![t("x", vec![2, 3], 0), t("s", vec![], 24)],
        outputs: vec![t("y", vec![2], 64), t("w", vec![], 96)],
        kernels: vec![
            KernelCode { name: "copy4".into(), code: vec![0x48, 0x8B, 0x07, 0x48, 0x8B, 0x4F, 0x08, 0xC3] },
            KernelCode { name: "fail1".into(), code: vec![0xB8, 0x01, 0x00, 0x00, 0x00, 0xC3] },
        ],
        steps: vec![
            Step { kernel: 0, node: "copy_in".into(), args: vec![arena(0, 4), arena(64, 4)] },
            Step { kernel: 0, node: "copy_out".into(), args: vec![arena(24, 4), arena(68, 4)] },
            Step {
                kernel: 1,
                node: "load_w".into(),
                args: vec![BufRef { region: Region::Weights, offset: 4, size: 4 }, arena(96, 4)],
            },
        ],
        weights: [1.0f32.to_le_bytes(), 2.5f32.to_le_bytes()].concat(),
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Walks the (valid) encoding and classifies every byte of the file.
fn classify(b: &[u8]) -> Vec<Class> {
    let mut class = vec![Class::Padding; b.len()];
    let mut mark = |r: Range<usize>, c: Class| class[r].iter_mut().for_each(|x| *x = c);
    mark(0..64, Class::Structure);
    mark(24..28, Class::Crc);
    let count = u32_at(b, 28) as usize;
    mark(64..64 + 24 * count, Class::Structure);
    let mut sections = [(0usize, 0usize); 6];
    for i in 0..count {
        let at = 64 + 24 * i;
        let (kind, start, size) = (u32_at(b, at) as usize, u64_at(b, at + 8) as usize, u64_at(b, at + 16) as usize);
        sections[kind] = (start, start + size);
    }
    let (code, weights) = (sections[4], sections[5]);
    mark(code.0..code.1, Class::Code);
    mark(weights.0..weights.1, Class::Weights);

    // Fields of META, SIGNATURE and PLAN: structure, except name bytes.
    let mut spans: Vec<(Range<usize>, Class)> = Vec::new();
    struct Walk<'a> {
        b: &'a [u8],
        pos: usize,
        spans: &'a mut Vec<(Range<usize>, Class)>,
    }
    impl Walk<'_> {
        fn field(&mut self, n: usize, c: Class) -> usize {
            let at = self.pos;
            self.spans.push((at..at + n, c));
            self.pos += n;
            at
        }
        fn u32(&mut self) -> usize {
            let at = self.field(4, Class::Structure);
            u32_at(self.b, at) as usize
        }
        fn str(&mut self) {
            let n = self.u32();
            self.field(n, Class::Name);
        }
        fn tensors(&mut self) {
            for _ in 0..self.u32() {
                self.str();
                self.field(1, Class::Structure);
                let rank = self.u32();
                self.field(8 * rank + 8, Class::Structure);
            }
        }
    }
    let mut w = Walk { b, pos: sections[1].0, spans: &mut spans };
    w.str();
    w.str();
    w.pos = sections[2].0;
    w.tensors();
    w.tensors();
    w.pos = sections[3].0;
    w.field(8, Class::ArenaSize);
    for _ in 0..w.u32() {
        w.str();
        w.field(16, Class::Structure);
    }
    for _ in 0..w.u32() {
        w.field(4, Class::Structure);
        w.str();
        let nargs = w.u32();
        w.field(17 * nargs, Class::Structure);
    }
    assert_eq!(w.pos, sections[3].1, "walked the whole PLAN");
    for (r, c) in spans {
        mark(r, c);
    }
    class
}

#[test]
fn every_flip_and_truncation_is_rejected() {
    let t0 = std::time::Instant::now();
    let good = nanoc_runtime::encode_bundle(&spec());
    Model::from_bytes(&good).expect("the pristine bundle loads");
    let class = classify(&good);
    let n = good.len();

    // 1. Flips as they come: caught by the checksum (or earlier header checks).
    let mut rejected = 0;
    for i in 0..n {
        let mut b = good.clone();
        b[i] ^= 0xFF;
        assert!(Model::from_bytes(&b).is_err(), "flipping byte {i} ({:?}) was accepted", class[i]);
        rejected += 1;
    }

    // 2. Every truncation.
    let mut truncations = 0;
    for len in 0..n {
        assert!(Model::from_bytes(&good[..len]).is_err(), "a prefix of {len} bytes was accepted");
        truncations += 1;
    }

    // 3. Flips with the checksum re-fixed: structural validation only.
    let mut by_class: std::collections::BTreeMap<Class, (usize, usize)> = Default::default();
    let mut refixed = 0;
    for i in (0..n).filter(|&i| class[i] != Class::Crc) {
        let mut b = good.clone();
        b[i] ^= 0xFF;
        update_checksum(&mut b);
        let accepted = Model::from_bytes(&b).is_ok(); // dropped, never run
        if accepted {
            assert_ne!(class[i], Class::Structure, "flipping structural byte {i} was accepted (checksum re-fixed)");
        }
        let e = by_class.entry(class[i]).or_default();
        if accepted {
            e.1 += 1;
        } else {
            e.0 += 1;
        }
        refixed += 1;
    }
    // What the format deliberately ignores is exactly what passes.
    for c in [Class::Padding, Class::Code, Class::Weights] {
        assert_eq!(by_class[&c].0, 0, "{c:?} flips should all load (the loader does not interpret them)");
    }
    assert_eq!(by_class[&Class::Name].1, 0, "ASCII name bytes xor 0xFF are invalid UTF-8");
    assert!(by_class[&Class::Structure].0 > 0);

    let accepted: usize = by_class.values().map(|v| v.1).sum();
    println!("bundle of {n} bytes");
    println!("flips, checksum as written: {n} cases, {rejected} rejected");
    println!("truncations: {truncations} cases, {truncations} rejected");
    println!(
        "flips, checksum re-fixed: {refixed} cases (the 4 crc bytes excluded), {} rejected, {accepted} accepted by design",
        refixed - accepted
    );
    for (c, (rej, acc)) in &by_class {
        println!("  {c:?}: {} bytes, {rej} rejected, {acc} accepted", rej + acc);
    }
    println!("time: {:?}", t0.elapsed());
}
