//! What the standard library would provide, for `no_std` builds (feature
//! `std` off; used only to build a small C library): a panic handler that
//! aborts and a global allocator over the C library's `malloc`.

use core::alloc::{GlobalAlloc, Layout};

/// Write a fixed message to stderr and abort. Panics are bugs (the C API
/// reports every error as a status); formatting the panic message would pull
/// the formatting of every panic site into the library.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    const MSG: &[u8] = b"nanoc runtime: internal error (panic), aborting\n";
    // SAFETY: writes a static buffer to fd 2, then aborts.
    unsafe {
        libc::write(2, MSG.as_ptr().cast(), MSG.len());
        libc::abort()
    }
}

/// The unwinding personality routine. The precompiled `core` and `alloc`
/// objects that a static library carries were built for unwinding and refer
/// to it from their unwind tables, so a C program linking the `.a` needs the
/// symbol; with `panic = "abort"` nothing unwinds through Rust frames, so it
/// is never called.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

/// The alignment `malloc` guarantees on the hosts this build supports.
const MALLOC_ALIGN: usize = if cfg!(target_pointer_width = "64") { 16 } else { 8 };

/// The global allocator: `malloc`/`calloc`/`realloc`/`free`, with
/// `posix_memalign` for over-aligned layouts.
struct Malloc;

impl Malloc {
    fn plain(layout: &Layout) -> bool {
        layout.align() <= MALLOC_ALIGN && layout.align() <= layout.size()
    }

    unsafe fn aligned(layout: &Layout) -> *mut u8 {
        let mut p = core::ptr::null_mut();
        let align = layout.align().max(core::mem::size_of::<usize>());
        // SAFETY: `align` is a power of two and a multiple of the pointer size.
        if unsafe { libc::posix_memalign(&mut p, align, layout.size()) } != 0 {
            return core::ptr::null_mut();
        }
        p.cast()
    }
}

// SAFETY: forwards to the C allocator, honouring each layout's alignment.
unsafe impl GlobalAlloc for Malloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if Self::plain(&layout) {
            // SAFETY: `malloc` with a nonzero size (GlobalAlloc's contract).
            unsafe { libc::malloc(layout.size()).cast() }
        } else {
            // SAFETY: as above.
            unsafe { Self::aligned(&layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if Self::plain(&layout) {
            // SAFETY: `calloc` with a nonzero size.
            unsafe { libc::calloc(1, layout.size()).cast() }
        } else {
            // SAFETY: a fresh block of `layout.size()` bytes, if not null.
            unsafe {
                let p = Self::aligned(&layout);
                if !p.is_null() {
                    core::ptr::write_bytes(p, 0, layout.size());
                }
                p
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from `malloc`, `calloc`, `realloc` or `posix_memalign`.
        unsafe { libc::free(ptr.cast()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN && layout.align() <= new_size {
            // SAFETY: `ptr` is a live block from this allocator; `new_size` is nonzero.
            unsafe { libc::realloc(ptr.cast(), new_size).cast() }
        } else {
            // SAFETY: the default: allocate, copy, free (GlobalAlloc's contract holds).
            unsafe {
                let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
                    return core::ptr::null_mut();
                };
                let p = self.alloc(new_layout);
                if !p.is_null() {
                    core::ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                p
            }
        }
    }
}

#[global_allocator]
static GLOBAL: Malloc = Malloc;
