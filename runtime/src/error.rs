//! The crate's single error type.

use std::path::PathBuf;

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
    #[error("{}: {error}", path.display())]
    File {
        /// The file being loaded.
        path: PathBuf,
        /// What went wrong with it.
        error: Box<Error>,
    },

    /// An operating-system error (opening or mapping a file, mapping memory).
    #[error("cannot {action}: {error}")]
    Io {
        /// What was being attempted, e.g. `"open the bundle"`.
        action: String,
        /// The underlying error.
        error: std::io::Error,
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
        /// This host's architecture ([`std::env::consts::ARCH`]).
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

    pub(crate) fn in_file(self, path: &std::path::Path) -> Error {
        Error::File { path: path.to_path_buf(), error: Box::new(self) }
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
pub type Result<T> = std::result::Result<T, Error>;
