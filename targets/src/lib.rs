//! `nanoc-targets`: target descriptors.
//!
//! A target is data: a `.toml` file in this folder (`targets/NAME.toml`)
//! describes a CPU (and, later, an NPU). `--target NAME` finds
//! `targets/NAME.toml`; `--target path/to/file.toml` loads that file.
//! Descriptors are checked against a serde schema (unknown keys are errors)
//! and then validated; every error names the file and the key.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Errors from loading descriptors.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The file could not be read.
    #[error("{path}: {msg}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        msg: String,
    },
    /// The TOML does not match the schema (message includes the key and line).
    #[error("{path}: {msg}")]
    Schema {
        /// The file.
        path: String,
        /// What the TOML parser reported.
        msg: String,
    },
    /// A value is out of range.
    #[error("{path}: key `{key}`: {msg}")]
    Invalid {
        /// The file.
        path: String,
        /// Dotted key.
        key: String,
        /// What was expected.
        msg: String,
    },
    /// No descriptor with this name.
    #[error("unknown target `{name}` (known: {known})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// Comma-separated known names.
        known: String,
    },
}

/// `Result` with [`TargetError`].
pub type Result<T> = std::result::Result<T, TargetError>;

/// What kind of device a descriptor describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// A general-purpose CPU (code from the Cranelift backend).
    Cpu,
}

/// A CPU description.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuDesc {
    /// Architecture: `x86_64` or `aarch64`.
    pub arch: String,
    /// Target triple for code generation.
    pub triple: String,
    /// Widest vector register the code generator uses, in bits.
    pub vector_bits: u32,
    /// Extra ISA flags the generated code may assume.
    #[serde(default)]
    pub isa_flags: Vec<String>,
    /// Cores available to the runtime.
    pub cores: u32,
    /// Clock in GHz (for estimates).
    pub clock_ghz: f64,
    /// L1 data cache per core, KiB.
    pub l1d_kib: u32,
    /// L2 cache per core, KiB.
    pub l2_kib: u32,
}

/// A validated target descriptor.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Name used on the command line (must match the file stem).
    pub name: String,
    /// Device kind.
    pub kind: TargetKind,
    /// One-line description.
    pub description: String,
    /// CPU details (required when `kind = "cpu"`).
    pub cpu: Option<CpuDesc>,
}

impl Target {
    /// Parses and validates descriptor text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Target> {
        let t: Target = toml::from_str(text)
            .map_err(|e| TargetError::Schema { path: path.into(), msg: e.to_string().trim_end().into() })?;
        t.validate(path)?;
        Ok(t)
    }

    /// Loads and validates a descriptor file.
    pub fn load(path: &Path) -> Result<Target> {
        let p = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| TargetError::Io { path: p.clone(), msg: e.to_string() })?;
        Target::parse(&text, &p)
    }

    /// Finds a target by name in [`targets_dir`], or loads `name` as a path
    /// if it ends in `.toml` or contains a path separator.
    pub fn find(name: &str) -> Result<Target> {
        if name.ends_with(".toml") || name.contains('/') {
            return Target::load(Path::new(name));
        }
        let path = targets_dir().join(format!("{name}.toml"));
        if path.exists() {
            return Target::load(&path);
        }
        let known = list().map(|v| v.iter().map(|t| t.name.clone()).collect::<Vec<_>>().join(", ")).unwrap_or_default();
        Err(TargetError::Unknown { name: name.into(), known })
    }

    /// The CPU description (present for CPU targets after validation).
    pub fn cpu(&self) -> Option<&CpuDesc> {
        self.cpu.as_ref()
    }

    fn validate(&self, path: &str) -> Result<()> {
        let bad = |key: &str, msg: String| Err(TargetError::Invalid { path: path.into(), key: key.into(), msg });
        let stem = Path::new(path).file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if !stem.is_empty() && stem != self.name && path.ends_with(".toml") {
            return bad("name", format!("must match the file name `{stem}`, got `{}`", self.name));
        }
        match self.kind {
            TargetKind::Cpu => {
                let Some(cpu) = &self.cpu else { return bad("cpu", "a cpu target needs a [cpu] table".into()) };
                if !matches!(cpu.arch.as_str(), "x86_64" | "aarch64") {
                    return bad("cpu.arch", format!("expected \"x86_64\" or \"aarch64\", got \"{}\"", cpu.arch));
                }
                if !cpu.triple.starts_with(&cpu.arch) {
                    return bad("cpu.triple", format!("`{}` does not start with arch `{}`", cpu.triple, cpu.arch));
                }
                if !matches!(cpu.vector_bits, 128 | 256 | 512) {
                    return bad("cpu.vector_bits", format!("expected 128, 256 or 512, got {}", cpu.vector_bits));
                }
                if cpu.cores == 0 {
                    return bad("cpu.cores", "must be at least 1".into());
                }
                if !(cpu.clock_ghz > 0.0 && cpu.clock_ghz < 10.0) {
                    return bad(
                        "cpu.clock_ghz",
                        format!("expected a clock between 0 and 10 GHz, got {}", cpu.clock_ghz),
                    );
                }
            }
        }
        Ok(())
    }
}

/// The folder holding the bundled descriptors (`NANOC_TARGETS_DIR`
/// overrides it).
pub fn targets_dir() -> PathBuf {
    std::env::var_os("NANOC_TARGETS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Loads every descriptor in [`targets_dir`], sorted by name; the first
/// invalid one is an error.
pub fn list() -> Result<Vec<Target>> {
    let dir = targets_dir();
    let rd =
        std::fs::read_dir(&dir).map_err(|e| TargetError::Io { path: dir.display().to_string(), msg: e.to_string() })?;
    let mut paths: Vec<PathBuf> =
        rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "toml")).collect();
    paths.retain(|p| p.file_name().is_some_and(|f| f != "Cargo.toml"));
    paths.sort();
    paths.iter().map(|p| Target::load(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_descriptor_loads() {
        let all = list().unwrap();
        let names: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
        assert!(names.contains(&"cpu-x86_64") && names.contains(&"cpu-aarch64"), "{names:?}");
    }

    #[test]
    fn errors_name_file_and_key() {
        let text = std::fs::read_to_string(targets_dir().join("cpu-x86_64.toml")).unwrap();
        let e =
            Target::parse(&text.replace("vector_bits = 128", "vector_bits = 100"), "x/cpu-x86_64.toml").unwrap_err();
        assert_eq!(e.to_string(), "x/cpu-x86_64.toml: key `cpu.vector_bits`: expected 128, 256 or 512, got 100");
        let e = Target::parse(&text.replace("cores = 2", "cores = 2\nbogus = 1"), "y.toml").unwrap_err().to_string();
        assert!(e.starts_with("y.toml: ") && e.contains("bogus"), "{e}");
        assert!(matches!(Target::find("no-such-target"), Err(TargetError::Unknown { .. })));
    }
}
