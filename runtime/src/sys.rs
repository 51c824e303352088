//! The operating-system layer: owned memory mappings (anonymous or of a
//! file), protection changes and `errno`, over `libc` on unix hosts.
//!
//! Other hosts compile, but every mapping fails with an "unsupported" error,
//! so bundles can be encoded and decoded there but not loaded.

use core::ffi::CStr;
use core::ptr::NonNull;

use crate::error::OsError;

/// Access rights of a mapping after [`Mapping::protect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protect {
    /// Read only.
    Read,
    /// Read and execute (never writable and executable at once).
    ReadExec,
}

/// An owned memory mapping, unmapped on drop. A zero-length mapping owns no
/// memory (its pointer is dangling but non-null).
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a `Mapping` owns its memory exclusively, like a `Box<[u8]>`.
unsafe impl Send for Mapping {}
// SAFETY: `&Mapping` only hands out the pointer and read-only slices.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn empty() -> Mapping {
        Mapping { ptr: NonNull::dangling(), len: 0 }
    }

    /// Start of the mapping (page aligned unless the mapping is empty).
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The mapped bytes. Only for mappings nothing writes to (read-only ones).
    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes that live as long as `self`.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// A copy of `bytes` in fresh anonymous memory with access `prot`.
    pub(crate) fn copy_of(bytes: &[u8], prot: Protect) -> Result<Mapping, OsError> {
        let mut map = Mapping::anon(bytes.len())?;
        // SAFETY: the fresh mapping is `bytes.len()` writable bytes and cannot
        // overlap `bytes`.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), map.as_ptr(), bytes.len()) };
        map.protect(prot)?;
        Ok(map)
    }
}

#[cfg(unix)]
mod imp {
    use super::*;

    impl Mapping {
        /// `len` zeroed, read-write, page-aligned bytes.
        pub(crate) fn anon(len: usize) -> Result<Mapping, OsError> {
            if len == 0 {
                return Ok(Mapping::empty());
            }
            let prot = libc::PROT_READ | libc::PROT_WRITE;
            // SAFETY: an anonymous private mapping at an address of the kernel's choosing.
            let p = unsafe { libc::mmap(core::ptr::null_mut(), len, prot, libc::MAP_PRIVATE | libc::MAP_ANON, -1, 0) };
            Mapping::from_mmap(p, len)
        }

        /// Map the file at `path` read-only (private, so never written back).
        /// On failure returns what was being attempted and the OS error.
        pub(crate) fn file(path: &CStr) -> Result<Mapping, (&'static str, OsError)> {
            // SAFETY: `path` is NUL-terminated.
            let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(("open the bundle", OsError::last()));
            }
            struct Fd(libc::c_int);
            impl Drop for Fd {
                fn drop(&mut self) {
                    // SAFETY: the descriptor is open and owned; the mapping
                    // (if any) stays valid after closing it.
                    unsafe { libc::close(self.0) };
                }
            }
            let fd = Fd(fd);
            // SAFETY: `stat` is plain data; all-zero is a valid value to overwrite.
            let mut st: libc::stat = unsafe { core::mem::zeroed() };
            // SAFETY: `fd` is open and `st` is writable.
            if unsafe { libc::fstat(fd.0, &mut st) } != 0 {
                return Err(("read the size of the bundle", OsError::last()));
            }
            let Ok(len) = usize::try_from(st.st_size) else {
                return Err(("map the bundle", OsError::from_raw(libc::EFBIG)));
            };
            if len == 0 {
                return Ok(Mapping::empty());
            }
            // SAFETY: a read-only private mapping of an open file.
            let p = unsafe { libc::mmap(core::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_PRIVATE, fd.0, 0) };
            Mapping::from_mmap(p, len).map_err(|e| ("map the bundle", e))
        }

        fn from_mmap(p: *mut libc::c_void, len: usize) -> Result<Mapping, OsError> {
            if p == libc::MAP_FAILED {
                return Err(OsError::last());
            }
            match NonNull::new(p.cast::<u8>()) {
                Some(ptr) => Ok(Mapping { ptr, len }),
                None => Err(OsError::from_raw(libc::ENOMEM)),
            }
        }

        /// Change the access rights of the whole mapping.
        pub(crate) fn protect(&mut self, prot: Protect) -> Result<(), OsError> {
            if self.len == 0 {
                return Ok(());
            }
            let prot = match prot {
                Protect::Read => libc::PROT_READ,
                Protect::ReadExec => libc::PROT_READ | libc::PROT_EXEC,
            };
            // SAFETY: the range is exactly a mapping this value owns (page aligned).
            if unsafe { libc::mprotect(self.ptr.as_ptr().cast(), self.len, prot) } != 0 {
                return Err(OsError::last());
            }
            Ok(())
        }
    }

    impl Drop for Mapping {
        fn drop(&mut self) {
            if self.len != 0 {
                // SAFETY: the range is a mapping this value owns and nothing
                // borrows it any more.
                unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
            }
        }
    }

    /// The calling thread's `errno`.
    #[cfg(feature = "std")]
    pub(crate) fn errno() -> i32 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    /// The calling thread's `errno`.
    #[cfg(all(not(feature = "std"), any(target_os = "linux", target_os = "l4re")))]
    pub(crate) fn errno() -> i32 {
        // SAFETY: returns the address of the calling thread's errno.
        unsafe { *libc::__errno_location() }
    }

    /// The calling thread's `errno`.
    #[cfg(all(not(feature = "std"), target_vendor = "apple"))]
    pub(crate) fn errno() -> i32 {
        // SAFETY: returns the address of the calling thread's errno.
        unsafe { *libc::__error() }
    }

    /// The system's message for error `code`, written into `buf`.
    #[cfg(not(feature = "std"))]
    pub(crate) fn strerror(code: i32, buf: &mut [u8]) -> Option<&str> {
        // SAFETY: `buf` is writable for its length; XSI strerror_r
        // NUL-terminates on success.
        if unsafe { libc::strerror_r(code, buf.as_mut_ptr().cast(), buf.len()) } != 0 {
            return None;
        }
        let msg = CStr::from_bytes_until_nul(buf).ok()?;
        msg.to_str().ok()
    }
}

#[cfg(not(unix))]
mod imp {
    use super::*;

    /// Code of the "unsupported" error on hosts without an implementation.
    const UNSUPPORTED: i32 = -1;

    impl Mapping {
        pub(crate) fn anon(len: usize) -> Result<Mapping, OsError> {
            if len == 0 { Ok(Mapping::empty()) } else { Err(OsError::from_raw(UNSUPPORTED)) }
        }

        pub(crate) fn file(_path: &CStr) -> Result<Mapping, (&'static str, OsError)> {
            Err(("map the bundle", OsError::from_raw(UNSUPPORTED)))
        }

        pub(crate) fn protect(&mut self, _prot: Protect) -> Result<(), OsError> {
            if self.len == 0 { Ok(()) } else { Err(OsError::from_raw(UNSUPPORTED)) }
        }
    }

    pub(crate) fn errno() -> i32 {
        UNSUPPORTED
    }

    #[cfg(not(feature = "std"))]
    compile_error!("the no_std build of nanoc-runtime supports unix hosts only");
}

pub(crate) use imp::*;

/// `ENOMEM`: the error for sizes that exceed the address space.
#[cfg(unix)]
pub(crate) const ENOMEM: i32 = libc::ENOMEM;
/// `ENOMEM`: the error for sizes that exceed the address space.
#[cfg(not(unix))]
pub(crate) const ENOMEM: i32 = 12;

/// `EINVAL`: the error for paths that contain a NUL byte.
#[cfg(all(unix, feature = "std"))]
pub(crate) const EINVAL: i32 = libc::EINVAL;
/// `EINVAL`: the error for paths that contain a NUL byte.
#[cfg(all(not(unix), feature = "std"))]
pub(crate) const EINVAL: i32 = 22;

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn anon_mappings_are_zeroed_aligned_and_protectable() {
        let mut m = Mapping::anon(10_000).unwrap();
        assert_eq!(m.len(), 10_000);
        assert_eq!(m.as_ptr() as usize % 4096, 0);
        assert!(m.as_slice().iter().all(|&b| b == 0));
        m.protect(Protect::Read).unwrap();
        m.protect(Protect::ReadExec).unwrap();
        let e = Mapping::anon(0).unwrap();
        assert_eq!(e.len(), 0);
        assert!(e.as_slice().is_empty());
        let c = Mapping::copy_of(b"abc", Protect::Read).unwrap();
        assert_eq!(c.as_slice(), b"abc");
    }

    #[test]
    fn file_mapping_and_errors() {
        let path = std::env::temp_dir().join(format!("nanoc-runtime-sys-{}.bin", std::process::id()));
        std::fs::write(&path, b"hello").unwrap();
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        let m = Mapping::file(&c).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(m.as_slice(), b"hello");

        let (action, e) = Mapping::file(&c).err().unwrap();
        assert_eq!(action, "open the bundle");
        assert_eq!(e.raw(), libc::ENOENT);
        assert_eq!(e.to_string(), std::io::Error::from_raw_os_error(libc::ENOENT).to_string());

        let huge = Mapping::anon(usize::MAX - 4096).err().unwrap();
        assert_eq!(huge.raw(), libc::ENOMEM);
    }
}
