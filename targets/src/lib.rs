//! `nanoc-targets`: target descriptors.
//!
//! A target is data: a `.toml` file in this folder (`targets/NAME.toml`)
//! describes a CPU (`[cpu]`) or an NPU (`[npu]`, see [`npu`]); adding a
//! variant is adding a file. `--target NAME` finds
//! `targets/NAME.toml`; `--target path/to/file.toml` loads that file.
//! Descriptors are checked against a serde schema (unknown keys are errors)
//! and then validated; every error names the file and the key.

pub mod npu;

pub use npu::{MacMode, Memory, MemoryKind, MemoryMode, NpuDesc, NpuDtype, OpConstraints};
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
    /// A neural processing unit beside a host CPU (described by `[npu]`).
    Npu,
}

impl TargetKind {
    /// The kind as written in descriptors.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Cpu => "cpu",
            TargetKind::Npu => "npu",
        }
    }
}

/// A weight sparsity pattern a target computes faster than dense.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Sparsity {
    /// 2:4 structured: at most two non-zeros in every group of four weights
    /// along the reduced dimension (`"2:4"`).
    #[serde(rename = "2:4")]
    TwoOfFour,
    /// Any zero pattern, skipped when the zero fraction is high
    /// (`"unstructured"`).
    #[serde(rename = "unstructured")]
    Unstructured,
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
    /// Weight sparsity patterns the target exploits (`"2:4"`,
    /// `"unstructured"`); empty: dense only.
    #[serde(default)]
    pub sparsity: Vec<Sparsity>,
    /// CPU details (required when `kind = "cpu"`).
    pub cpu: Option<CpuDesc>,
    /// NPU details (required when `kind = "npu"`).
    pub npu: Option<NpuDesc>,
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

    /// The NPU description (present for NPU targets after validation).
    pub fn npu(&self) -> Option<&NpuDesc> {
        self.npu.as_ref()
    }

    /// True if the target exploits weight sparsity of this pattern.
    pub fn supports_sparsity(&self, s: Sparsity) -> bool {
        self.sparsity.contains(&s)
    }

    fn validate(&self, path: &str) -> Result<()> {
        let bad = |key: &str, msg: String| Err(TargetError::Invalid { path: path.into(), key: key.into(), msg });
        let stem = Path::new(path).file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if !stem.is_empty() && stem != self.name && path.ends_with(".toml") {
            return bad("name", format!("must match the file name `{stem}`, got `{}`", self.name));
        }
        if let Some(i) = (1..self.sparsity.len()).find(|&i| self.sparsity[..i].contains(&self.sparsity[i])) {
            return bad(&format!("sparsity[{i}]"), "listed twice".into());
        }
        match self.kind {
            TargetKind::Npu => {
                if self.cpu.is_some() {
                    return bad("cpu", "an npu target has no [cpu] table (its host CPU is npu.host)".into());
                }
                let Some(npu) = &self.npu else { return bad("npu", "an npu target needs an [npu] table".into()) };
                let is_op = |name: &str| nanoc_ir::text::op_names().any(|n| n == name);
                npu.validate(|key, msg| TargetError::Invalid { path: path.into(), key: key.into(), msg }, is_op)?;
            }
            TargetKind::Cpu => {
                if self.npu.is_some() {
                    return bad("npu", "a cpu target has no [npu] table".into());
                }
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
        for want in
            ["cpu-x86_64", "cpu-aarch64", "npu-x", "ethos-u55-128", "ethos-u55-256", "ethos-u65-512", "ethos-u85-256"]
        {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        for t in &all {
            if let Some(npu) = t.npu() {
                // Every NPU's host is a bundled CPU descriptor.
                let host = Target::find(&npu.host).unwrap();
                assert_eq!(host.kind, TargetKind::Cpu, "{}: host {}", t.name, npu.host);
                assert!(npu.int8_mode().is_some());
            }
        }
        let x = Target::find("npu-x").unwrap();
        assert!(x.supports_sparsity(Sparsity::TwoOfFour) && !x.supports_sparsity(Sparsity::Unstructured));
        let npu = x.npu().unwrap();
        assert_eq!(npu.int8_mode().unwrap().macs_per_cycle, 256);
        assert_eq!(npu.memories.sram.as_ref().unwrap().bytes_per_cycle(), 32.0);
        assert!(Target::find("cpu-x86_64").unwrap().sparsity.is_empty());
    }

    /// A new NPU variant is a new file: a renamed copy loads by path.
    #[test]
    fn a_variant_is_a_file() {
        let text = std::fs::read_to_string(targets_dir().join("npu-x.toml")).unwrap();
        let dir = std::env::temp_dir().join(format!("nanoc-targets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("npu-y.toml");
        let text = text.replace("name = \"npu-x\"", "name = \"npu-y\"").replace("clock_mhz = 1000", "clock_mhz = 800");
        std::fs::write(&path, text).unwrap();
        let t = Target::find(path.to_str().unwrap()).unwrap();
        assert_eq!((t.name.as_str(), t.npu().unwrap().clock_mhz), ("npu-y", 800.0));
        std::fs::remove_dir_all(&dir).unwrap();
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

    #[test]
    fn npu_errors_name_file_and_key() {
        let text = std::fs::read_to_string(targets_dir().join("npu-x.toml")).unwrap();
        let err = |from: &str, to: &str| {
            assert!(text.contains(from), "{from}");
            Target::parse(&text.replace(from, to), "t/npu-x.toml").unwrap_err().to_string()
        };
        let cases = [
            ("gather = {}", "gahter = {}", "t/npu-x.toml: key `npu.ops.gahter`: `gahter` is not an IR op"),
            ("sparsity = [\"2:4\"]", "sparsity = [\"2:4\", \"2:4\"]", "key `sparsity[1]`: listed twice"),
            (
                "weights = \"dram\" }",
                "weights = \"sram\" }",
                "key `npu.placement`: mode SharedSram means the arena in sram and the weights off-chip",
            ),
            ("weights = \"dram\" }", "weights = \"flash\" }", "key `npu.placement.weights`: `flash` is not described"),
            (
                "input_channels = 16,",
                "input_channels = 8,",
                "key `npu.mac_array`: input_channels x output_channels = 128",
            ),
            ("clock_scale = 0.5", "clock_scale = 0", "key `npu.memories.dram.clock_scale`: expected a scale in (0, 4]"),
            ("macs_per_cycle = 128", "macs_per_cycle = 100", "key `npu.mac_modes[1].macs_per_cycle`"),
            ("lut_entries = 256", "lut_entries = 0", "key `npu.ops.erf.lut`: npu.lut_entries is 0"),
            ("conv = { kernel_max = [8, 8]", "conv = { kernel_max = [0, 8]", "key `npu.ops.conv.kernel_max`"),
            ("fused_activations = [\"relu\"", "fused_activations = [\"rleu\"", "key `npu.fused_activations[0]`"),
            ("kind = \"npu\"", "kind = \"cpu\"", "key `npu`: a cpu target has no [npu] table"),
        ];
        for (from, to, want) in cases {
            let e = err(from, to);
            assert!(e.contains(want), "{from} -> {to}: {e}");
        }
        // Schema errors (unknown keys, bad enum values) name the key and line.
        for (from, to, want) in [
            ("sparsity = [\"2:4\"]", "sparsity = [\"4:8\"]", "4:8"),
            ("dma = { channels = 2 }", "dma = { channels = 2, speed = 1 }", "speed"),
            ("activations = \"int16\"", "activations = \"int4\"", "int4"),
            ("[npu.memories.dram]", "[npu.memories.hbm]", "hbm"),
        ] {
            let e = err(from, to);
            assert!(e.starts_with("t/npu-x.toml: ") && e.contains(want) && e.contains("line"), "{e}");
        }
    }
}
