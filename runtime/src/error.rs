//! The crate's single error type.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// Everything that can go wrong while reading, loading or running a bundle.
///
/// Messages are lowercase without a trailing period. Format errors name the
/// part of the file (header, section table or section), the absolute byte
/// offset of the offending field, and what was expected. When a bundle is
/// loaded from a file, load errors are wrapped in [`Error::File`] so the
/// message starts with the path (`"m.nanob: ..."`); use [`Error::root`] to see
/// through that wrapper.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error while loading the bundle file at `path`; the message is
    /// `"<path>: <error>"`.
    #[error("{path}: {error}")]
    File {
        /// The file being loaded, as displayed in messages.
        path: String,
        /// What went wrong with it.
        error: Box<Error>,
    },

    /// An operating-system error (opening or mapping a file, mapping memory).
    #[error("cannot {action}: {error}")]
    Io {
        /// What was being attempted, e.g. `"open the bundle"`.
        action: String,
        /// The underlying error.
        error: OsError,
    },

    /// The data is shorter than the fixed 64-byte header.
    #[error("truncated: file has {actual} bytes, less than the 64-byte bundle header")]
    TooShort {
        /// The actual length of the data.
        actual: u64,
    },

    /// The first 8 bytes are not the bundle magic `b"NANOB\0\r\n"`.
    #[error("not a nanoc bundle: header at byte 0: expected magic \"NANOB\\0\\r\\n\", found \"{}\"", found.escape_ascii())]
    BadMagic {
        /// The 8 bytes found instead.
        found: [u8; 8],
    },

    /// The header's format version is not 1.
    #[error("unsupported bundle format version {version} (this runtime reads version 1)")]
    UnsupportedVersion {
        /// The version the file claims.
        version: u32,
    },

    /// The header's kernel ABI version is not 1.
    #[error("unsupported kernel ABI version {version} (this runtime calls kernels with ABI version 1)")]
    UnsupportedAbi {
        /// The ABI version the file claims.
        version: u32,
    },

    /// The data is shorter than the length recorded in the header.
    #[error("truncated: header says {expected} bytes, file has {actual}")]
    Truncated {
        /// The length recorded in the header.
        expected: u64,
        /// The actual length.
        actual: u64,
    },

    /// The data is longer than the length recorded in the header.
    #[error("trailing data: header says {expected} bytes, file has {actual}")]
    TrailingData {
        /// The length recorded in the header.
        expected: u64,
        /// The actual length.
        actual: u64,
    },

    /// The CRC-32 stored in the header does not match the contents.
    #[error(
        "checksum mismatch: header at byte 24 says crc32 {stored:#010x}, contents hash to {computed:#010x} (file corrupt)"
    )]
    ChecksumMismatch {
        /// The checksum recorded in the header.
        stored: u32,
        /// The checksum of the actual contents.
        computed: u32,
    },

    /// A structural error in the header, section table or a section
    /// (the checksum was fine, so the writer produced a bad bundle).
    #[error("{part} at byte {offset}: {what}")]
    Malformed {
        /// `"header"`, `"section table"` or e.g. `"PLAN section"`.
        part: &'static str,
        /// Absolute file offset of the offending field.
        offset: u64,
        /// What was found and what was expected.
        what: String,
    },

    /// The bundle's code is for another CPU architecture than this host.
    #[error(
        "bundle is compiled for {arch} (target triple \"{triple}\") but this host is {host}; refusing to run its code"
    )]
    WrongArch {
        /// The bundle's target triple.
        triple: String,
        /// The architecture component of the triple (normalised).
        arch: String,
        /// This host's architecture ([`HOST_ARCH`](crate::HOST_ARCH)).
        host: &'static str,
    },

    /// [`Model::run`](crate::Model::run) got the wrong number of inputs.
    #[error("expected {expected} inputs, got {actual}")]
    InputCount {
        /// Number of inputs in the signature.
        expected: usize,
        /// Number of inputs passed.
        actual: usize,
    },

    /// An input passed to [`Model::run`](crate::Model::run) has the wrong byte length.
    #[error("input {index} (\"{name}\", {elem}{shape:?}): expected {expected} bytes, got {actual}")]
    InputSize {
        /// Position of the input in the signature.
        index: usize,
        /// Name of the input.
        name: String,
        /// Element type name, e.g. `"f32"`.
        elem: &'static str,
        /// Shape of the input.
        shape: Vec<u64>,
        /// Expected byte length.
        expected: u64,
        /// Byte length passed.
        actual: u64,
    },

    /// A plan step passes more arguments than [`MAX_KERNEL_ARGS`](crate::MAX_KERNEL_ARGS)
    /// (refused at load: the runtime builds each step's argument array on the stack).
    #[error(
        "step {step} (node \"{node}\") passes {count} arguments to its kernel; this runtime supports at most {max}"
    )]
    TooManyArgs {
        /// Index of the plan step.
        step: usize,
        /// Name of the graph node the step computes.
        node: String,
        /// Number of arguments of the step.
        count: usize,
        /// The limit, [`MAX_KERNEL_ARGS`](crate::MAX_KERNEL_ARGS).
        max: usize,
    },

    /// A run got the wrong number of output buffers.
    #[error("expected {expected} output buffers, got {actual}")]
    OutputCount {
        /// Number of outputs in the signature.
        expected: usize,
        /// Number of buffers passed.
        actual: usize,
    },

    /// An output buffer passed to a run has the wrong byte length.
    #[error("output {index} (\"{name}\", {elem}{shape:?}): expected a buffer of {expected} bytes, got {actual}")]
    OutputSize {
        /// Position of the output in the signature.
        index: usize,
        /// Name of the output.
        name: String,
        /// Element type name, e.g. `"f32"`.
        elem: &'static str,
        /// Shape of the output.
        shape: Vec<u64>,
        /// Expected byte length.
        expected: u64,
        /// Byte length passed.
        actual: u64,
    },

    /// A caller-provided arena is smaller than the model's arena size.
    #[error("arena of {actual} bytes is too small: the model needs {expected} bytes")]
    ArenaTooSmall {
        /// The model's arena size.
        expected: u64,
        /// Length of the arena passed.
        actual: u64,
    },

    /// A caller-provided arena is not aligned to [`ARENA_ALIGN`](crate::ARENA_ALIGN) bytes.
    #[error("arena at address {address:#x} is not {align}-byte aligned")]
    ArenaMisaligned {
        /// Address of the arena passed.
        address: usize,
        /// The required alignment.
        align: usize,
    },

    /// A kernel returned a nonzero status code.
    #[error("step {step} (node \"{node}\", kernel \"{kernel}\"): {}", describe_kernel_code(*.code))]
    Kernel {
        /// Index of the plan step.
        step: usize,
        /// Name of the graph node the step computes.
        node: String,
        /// Name of the kernel that failed.
        kernel: String,
        /// The nonzero status code (1 = index out of range).
        code: i32,
    },
}

impl Error {
    /// The underlying error, looking through any [`Error::File`] wrappers.
    pub fn root(&self) -> &Error {
        match self {
            Error::File { error, .. } => error.root(),
            other => other,
        }
    }

    pub(crate) fn in_file(self, path: &str) -> Error {
        Error::File { path: path.to_string(), error: Box::new(self) }
    }
}

/// Human-readable meaning of a kernel status code (kernel ABI v1).
pub(crate) fn describe_kernel_code(code: i32) -> String {
    match code {
        1 => "index out of range".to_string(),
        n => format!("kernel error {n}"),
    }
}

/// The crate's result type.
pub type Result<T> = core::result::Result<T, Error>;

/// An operating-system error code (`errno` on unix), as reported by a failed
/// `open`, `fstat`, `mmap` or `mprotect`.
///
/// It displays like [`std::io::Error`] does: `"No such file or directory (os error 2)"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsError {
    code: i32,
}

impl OsError {
    /// The error with OS error code `code`.
    pub fn from_raw(code: i32) -> OsError {
        OsError { code }
    }

    /// The OS error code (`errno`).
    pub fn raw(self) -> i32 {
        self.code
    }

    /// The calling thread's current `errno`.
    pub(crate) fn last() -> OsError {
        OsError { code: crate::sys::errno() }
    }
}

impl fmt::Display for OsError {
    #[cfg(feature = "std")]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&std::io::Error::from_raw_os_error(self.code), f)
    }

    #[cfg(not(feature = "std"))]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 128];
        match crate::sys::strerror(self.code, &mut buf) {
            Some(msg) => write!(f, "{msg} (os error {})", self.code),
            None => write!(f, "os error {}", self.code),
        }
    }
}

impl core::error::Error for OsError {}

#[cfg(feature = "std")]
impl From<OsError> for std::io::Error {
    fn from(e: OsError) -> std::io::Error {
        std::io::Error::from_raw_os_error(e.code)
    }
}
