//! Executable memory for kernel code and the kernel calling convention.

use alloc::format;
use alloc::string::ToString;

use crate::error::{Error, Result};
use crate::sys::{Mapping, Protect};

/// A compiled kernel, as called by the runtime (kernel ABI version 1).
///
/// `args` points to an array of buffer pointers, one per argument of the plan
/// step, in order. The kernel returns 0 on success and a nonzero status code
/// on a runtime error (1 = index out of range; anything else is reported as
/// "kernel error N"). Shapes are baked into the code. Kernels must not write
/// through pointers into the weights, which are mapped read-only.
pub type KernelFn = unsafe extern "C" fn(args: *const *mut u8) -> i32;

/// Machine code copied into its own read+execute mapping.
pub(crate) struct ExecCode {
    map: Mapping,
}

impl ExecCode {
    /// Copy `code` into fresh anonymous memory and make it read+execute
    /// (never writable and executable at the same time).
    ///
    /// On aarch64 Linux the kernel keeps the instruction cache coherent for
    /// pages that become executable through `mprotect`, and the mapping is
    /// fresh, so no explicit cache maintenance is needed.
    pub(crate) fn new(code: &[u8]) -> Result<ExecCode> {
        let map_err = |error| Error::Io {
            action: format!("map {} bytes of executable memory for kernel code", code.len()),
            error,
        };
        let map = Mapping::copy_of(code, Protect::ReadExec).map_err(map_err)?;
        Ok(ExecCode { map })
    }

    /// The kernel starting at byte `offset` of the code.
    ///
    /// # Safety
    ///
    /// `offset` must be less than the code length and be the entry point of a
    /// function following [`KernelFn`]'s ABI for this host.
    pub(crate) unsafe fn kernel(&self, offset: usize) -> KernelFn {
        debug_assert!(offset < self.map.len());
        let entry = self.map.as_ptr().wrapping_add(offset);
        // SAFETY: `entry` points into executable memory that lives as long as
        // `self`; the caller guarantees it is a kernel entry point.
        unsafe { core::mem::transmute::<*const u8, KernelFn>(entry) }
    }
}

/// Normalised architecture component of a target triple
/// (`arm64` → `aarch64`, `amd64`/`x64` → `x86_64`).
pub fn triple_arch(triple: &str) -> &str {
    match triple.split('-').next().unwrap_or_default() {
        "arm64" => "aarch64",
        "amd64" | "x64" => "x86_64",
        other => other,
    }
}

/// This host's CPU architecture, spelled as in target triples and as
/// `std::env::consts::ARCH` does (`"x86_64"`, `"aarch64"`, ...).
pub const HOST_ARCH: &str = host_arch();

const fn host_arch() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "x86_64"
    } else if cfg!(target_arch = "aarch64") {
        "aarch64"
    } else if cfg!(target_arch = "x86") {
        "x86"
    } else if cfg!(target_arch = "arm") {
        "arm"
    } else if cfg!(target_arch = "riscv64") {
        "riscv64"
    } else if cfg!(target_arch = "riscv32") {
        "riscv32"
    } else if cfg!(target_arch = "powerpc64") {
        "powerpc64"
    } else if cfg!(target_arch = "s390x") {
        "s390x"
    } else if cfg!(target_arch = "loongarch64") {
        "loongarch64"
    } else {
        "unknown"
    }
}

/// Check that code compiled for `triple` can run on this host's CPU
/// architecture ([`HOST_ARCH`]).
pub fn check_host_triple(triple: &str) -> Result<()> {
    let arch = triple_arch(triple);
    let host = HOST_ARCH;
    if arch == host {
        Ok(())
    } else {
        Err(Error::WrongArch { triple: triple.to_string(), arch: arch.to_string(), host })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_arch_matches_std() {
        assert_eq!(HOST_ARCH, std::env::consts::ARCH);
    }

    #[test]
    fn arch_normalisation() {
        assert_eq!(triple_arch("x86_64-unknown-linux-gnu"), "x86_64");
        assert_eq!(triple_arch("arm64-apple-darwin"), "aarch64");
        assert_eq!(triple_arch("aarch64-unknown-linux-gnu"), "aarch64");
        assert_eq!(triple_arch(""), "");
        assert!(check_host_triple(&format!("{}-unknown-linux-gnu", std::env::consts::ARCH)).is_ok());
    }

    #[test]
    fn wrong_arch_is_rejected() {
        let other = if std::env::consts::ARCH == "x86_64" { "aarch64" } else { "x86_64" };
        let triple = format!("{other}-unknown-linux-gnu");
        let e = check_host_triple(&triple).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "bundle is compiled for {other} (target triple \"{triple}\") but this host is {}; refusing to run its code",
                std::env::consts::ARCH
            )
        );
    }

    #[cfg(all(target_arch = "x86_64", unix))]
    #[test]
    fn call_raw_kernel() {
        // mov eax, 7; ret
        let code = ExecCode::new(&[0xB8, 7, 0, 0, 0, 0xC3]).unwrap();
        // SAFETY: offset 0 is the entry of the function above.
        let f = unsafe { code.kernel(0) };
        // SAFETY: the kernel ignores its argument.
        assert_eq!(unsafe { f(std::ptr::null()) }, 7);
    }
}
