//! The error type of `nanoc-backends`.

/// Errors from code generation.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend has no lowering for an op/dtype combination; every
    /// offending node is listed.
    #[error("the {backend} backend cannot lower:\n{}", nodes.join("\n"))]
    Unsupported {
        /// Backend name.
        backend: &'static str,
        /// One line per node: `node `name` (op): why`.
        nodes: Vec<String>,
    },
    /// The target descriptor is not usable by this backend.
    #[error("target `{target}`: {msg}")]
    Target {
        /// Target name.
        target: String,
        /// What was wrong.
        msg: String,
    },
    /// Cranelift rejected a kernel (a bug in the lowering).
    #[error("kernel `{kernel}`: cranelift: {msg}")]
    Codegen {
        /// Kernel name.
        kernel: String,
        /// Cranelift's message.
        msg: String,
    },
    /// A kernel returned an error code at run time.
    #[error("node `{node}`: kernel failed: {msg}")]
    Run {
        /// Node name.
        node: String,
        /// What failed.
        msg: String,
    },
    /// Graph-level problem (e.g. input count or size mismatch).
    #[error("{0}")]
    Invalid(String),
}

/// `Result` with [`BackendError`].
pub type Result<T> = std::result::Result<T, BackendError>;
