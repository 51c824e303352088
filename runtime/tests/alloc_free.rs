//! The allocation-free run mode: `Model::run_with_arena` and
//! `Model::run_into` (and the C API's `nanoc_model_run_with_arena` and
//! `nanoc_model_run`) perform no heap allocation when they succeed, checked
//! with a counting global allocator.
#![cfg(all(target_arch = "x86_64", unix))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::c_void;

use nanoc_runtime::capi;
use nanoc_runtime::{BufRef, BundleSpec, ElemType, KernelCode, Model, Region, Step, TensorSpec};

/// Counts this thread's allocations (tests run on several threads).
struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCS.with(Cell::get);
    let out = f();
    (out, ALLOCS.with(Cell::get) - before)
}

/// x86-64: copy 4 bytes from args[0] to args[1], return 0.
const COPY4: &[u8] = &[0x48, 0x8B, 0x07, 0x48, 0x8B, 0x4F, 0x08, 0x8B, 0x10, 0x89, 0x11, 0x31, 0xC0, 0xC3];

fn bundle() -> Vec<u8> {
    let f32_scalar = |name: &str, offset| TensorSpec { name: name.into(), elem: ElemType::F32, shape: vec![], offset };
    let arena = |offset| BufRef { region: Region::Arena, offset, size: 4 };
    nanoc_runtime::encode_bundle(&BundleSpec {
        target: "test-host".into(),
        triple: "x86_64-unknown-linux-gnu".into(),
        arena_size: 64,
        inputs: vec![f32_scalar("x", 0)],
        outputs: vec![f32_scalar("y", 16), f32_scalar("w", 32)],
        kernels: vec![KernelCode { name: "copy4".into(), code: COPY4.to_vec() }],
        steps: vec![
            Step { kernel: 0, node: "a".into(), args: vec![arena(0), arena(8)] },
            Step { kernel: 0, node: "b".into(), args: vec![arena(8), arena(16)] },
            Step {
                kernel: 0,
                node: "c".into(),
                args: vec![BufRef { region: Region::Weights, offset: 4, size: 4 }, arena(32)],
            },
        ],
        weights: [1.0f32.to_le_bytes(), 2.5f32.to_le_bytes()].concat(),
    })
}

#[repr(align(64))]
struct Arena([u8; 64]);

#[test]
fn rust_runs_do_not_allocate() {
    let mut m = Model::from_bytes(&bundle()).unwrap();
    let mut arena = Arena([0; 64]);
    let x = 3.5f32.to_le_bytes();
    let (mut y, mut w) = ([0u8; 4], [0u8; 4]);
    let (r, n) = allocations(|| m.run_with_arena(&mut arena.0, &[&x], &mut [&mut y, &mut w]));
    r.unwrap();
    assert_eq!((f32::from_le_bytes(y), f32::from_le_bytes(w)), (3.5, 2.5));
    assert_eq!(n, 0, "run_with_arena allocated");

    let (r, n) = allocations(|| m.run_into(&[&x], &mut [&mut y, &mut w]));
    r.unwrap();
    assert_eq!(n, 0, "run_into allocated");

    // The counter works: `run` returns fresh buffers.
    let (r, n) = allocations(|| m.run(&[&x]));
    assert_eq!(r.unwrap().len(), 2);
    assert!(n > 0);
}

#[test]
fn c_runs_do_not_allocate() {
    let bytes = bundle();
    let mut m = std::ptr::null_mut();
    let mut arena = Arena([0; 64]);
    let x = 7.25f32.to_le_bytes();
    let (mut y, mut w) = ([0u8; 4], [0u8; 4]);
    let ins = [x.as_ptr().cast::<c_void>()];
    let outs = [y.as_mut_ptr().cast::<c_void>(), w.as_mut_ptr().cast::<c_void>()];
    // SAFETY: valid buffers of the sizes the model reports; `m` is freed once.
    unsafe {
        assert_eq!(capi::nanoc_model_load_memory(bytes.as_ptr().cast(), bytes.len(), &mut m), 0);
        let a = arena.0.as_mut_ptr().cast();
        let (status, n) = allocations(|| capi::nanoc_model_run_with_arena(m, a, 64, ins.as_ptr(), outs.as_ptr()));
        assert_eq!((status, n), (0, 0), "nanoc_model_run_with_arena allocated");
        let (status, n) = allocations(|| capi::nanoc_model_run(m, ins.as_ptr(), outs.as_ptr()));
        assert_eq!((status, n), (0, 0), "nanoc_model_run allocated");
        capi::nanoc_model_free(m);
    }
    assert_eq!((f32::from_le_bytes(y), f32::from_le_bytes(w)), (7.25, 2.5));
}
