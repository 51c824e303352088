//! Shared test fixtures.

use crate::bundle::{BufRef, BundleSpec, ElemType, KernelCode, Region, Step, TensorSpec};

/// x86-64 SysV: `mov rax,[rdi]; mov rcx,[rdi+8]; mov edx,[rax]; mov [rcx],edx; xor eax,eax; ret`
/// (copy 4 bytes from args[0] to args[1], return 0).
pub const COPY4: &[u8] = &[
    0x48, 0x8B, 0x07, // mov rax, [rdi]
    0x48, 0x8B, 0x4F, 0x08, // mov rcx, [rdi+8]
    0x8B, 0x10, // mov edx, [rax]
    0x89, 0x11, // mov [rcx], edx
    0x31, 0xC0, // xor eax, eax
    0xC3, // ret
];

/// x86-64: `mov eax, 1; ret` (always "index out of range").
pub const FAIL1: &[u8] = &[0xB8, 0x01, 0x00, 0x00, 0x00, 0xC3];

/// x86-64: `mov eax, 42; ret`.
pub const FAIL42: &[u8] = &[0xB8, 42, 0x00, 0x00, 0x00, 0xC3];

pub fn host_triple() -> String {
    format!("{}-unknown-linux-gnu", std::env::consts::ARCH)
}

fn arena(offset: u64, size: u64) -> BufRef {
    BufRef { region: Region::Arena, offset, size }
}

/// A bundle computing `y = x` (via an intermediate at 8) and `w = weights[1]`,
/// with x, y, w scalars of f32.
pub fn sample_spec() -> BundleSpec {
    let f32_scalar = |name: &str, offset| TensorSpec { name: name.into(), elem: ElemType::F32, shape: vec![], offset };
    BundleSpec {
        target: "test-host".into(),
        triple: host_triple(),
        arena_size: 64,
        inputs: vec![f32_scalar("x", 0)],
        outputs: vec![f32_scalar("y", 16), f32_scalar("w", 32)],
        kernels: vec![
            KernelCode { name: "copy4".into(), code: COPY4.to_vec() },
            KernelCode { name: "fail1".into(), code: FAIL1.to_vec() },
        ],
        steps: vec![
            Step { kernel: 0, node: "copy_in".into(), args: vec![arena(0, 4), arena(8, 4)] },
            Step { kernel: 0, node: "copy_out".into(), args: vec![arena(8, 4), arena(16, 4)] },
            Step {
                kernel: 0,
                node: "load_w".into(),
                args: vec![BufRef { region: Region::Weights, offset: 4, size: 4 }, arena(32, 4)],
            },
        ],
        weights: [1.0f32.to_le_bytes(), 2.5f32.to_le_bytes()].concat(),
    }
}

/// File offset of the section of `kind` in an encoded bundle (trusting the table).
pub fn section_offset(bytes: &[u8], kind: u32) -> usize {
    let count = u32::from_le_bytes(bytes[28..32].try_into().unwrap()) as usize;
    for i in 0..count {
        let at = 64 + 24 * i;
        if u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) == kind {
            return u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap()) as usize;
        }
    }
    panic!("no section of kind {kind}")
}

/// Decode and return the error message (panicking if decoding succeeds).
pub fn decode_err(bytes: &[u8]) -> String {
    match crate::decode_bundle(bytes) {
        Ok(_) => panic!("expected decoding to fail"),
        Err(e) => e.to_string(),
    }
}
