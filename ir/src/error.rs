//! The error type of `nanoc-ir`.

/// Errors from building, verifying, parsing or evaluating IR.
#[derive(Debug, thiserror::Error)]
pub enum IrError {
    /// A malformed value or request, with a message naming what was wrong.
    #[error("{0}")]
    Invalid(String),
    /// The verifier found problems; every one is listed.
    #[error("graph `{graph}` failed verification:\n{}", problems.join("\n"))]
    Verify {
        /// Graph name.
        graph: String,
        /// One line per problem, each naming its node.
        problems: Vec<String>,
    },
    /// A `.ngraph` text parse error.
    #[error("{file}:{line}:{col}: {msg}")]
    Parse {
        /// File name (or `<text>`).
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What was expected.
        msg: String,
    },
    /// A weights file could not be read.
    #[error("{path}: {msg}")]
    Weights {
        /// The file.
        path: String,
        /// What was wrong.
        msg: String,
    },
    /// The interpreter cannot evaluate a node.
    #[error("node `{node}` ({op}): {msg}")]
    Eval {
        /// Node name.
        node: String,
        /// Op name.
        op: &'static str,
        /// What was wrong.
        msg: String,
    },
}

/// `Result` with [`IrError`].
pub type Result<T> = std::result::Result<T, IrError>;
