//! The `[npu]` table of an NPU descriptor: MAC array and its dtype modes,
//! clock, memories (modelled on the system configuration of Arm's Ethos-U
//! compiler: bus width, ports, clock scale, burst length, latencies), where
//! the arena and the weights live, DMA, command FIFO, and the ops the NPU
//! runs natively with their constraints. Everything else runs on the `host`
//! CPU target.

use serde::Deserialize;
use std::collections::BTreeMap;

/// An NPU description (`[npu]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NpuDesc {
    /// Core clock, MHz.
    pub clock_mhz: f64,
    /// The CPU target (a descriptor name) that runs what the NPU cannot.
    pub host: String,
    /// Fixed cost of one NPU operation: command decoding, pipeline fill and
    /// drain, cycles.
    pub op_overhead_cycles: u32,
    /// Cycles lost each time work moves between the NPU and the host CPU
    /// (interrupt, cache maintenance, driver round trip).
    pub handoff_cycles: u32,
    /// Output elements per cycle of elementwise, lookup-table, pooling and
    /// reduction operations (8-bit data).
    pub elementwise_per_cycle: u32,
    /// Highest tensor rank the NPU accepts.
    pub max_rank: u32,
    /// Largest extent of any one dimension.
    pub max_dim: u32,
    /// Depth of the command FIFO, in 32-bit words.
    pub command_fifo_words: u32,
    /// Entries of an activation lookup table (0: no lookup tables).
    pub lut_entries: u32,
    /// Activations the output stage of a conv/matmul applies for free (IR op names).
    #[serde(default)]
    pub fused_activations: Vec<String>,
    /// The MAC array.
    pub mac_array: MacArray,
    /// The multiply-accumulate modes (operand dtypes and their throughput).
    pub mac_modes: Vec<MacMode>,
    /// The memories the NPU reaches.
    pub memories: Memories,
    /// Where the activation arena and the constants live.
    pub placement: Placement,
    /// The DMA engine.
    pub dma: Dma,
    /// Ops the NPU runs natively, by IR op name, with their constraints.
    pub ops: BTreeMap<String, OpConstraints>,
}

/// The MAC array geometry: per cycle it multiplies `input_channels` inputs
/// into `output_channels` outputs (8-bit mode), so contractions whose
/// reduced and output extents are not multiples of these waste MACs.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MacArray {
    /// Reduced (input-channel) extent per cycle.
    pub input_channels: u32,
    /// Output-channel extent per cycle.
    pub output_channels: u32,
}

/// An operand element type of the NPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NpuDtype {
    /// Signed 8-bit.
    Int8,
    /// Unsigned 8-bit.
    Uint8,
    /// Signed 16-bit.
    Int16,
}

impl NpuDtype {
    /// Bytes per element.
    pub fn bytes(self) -> u32 {
        match self {
            NpuDtype::Int8 | NpuDtype::Uint8 => 1,
            NpuDtype::Int16 => 2,
        }
    }
}

/// One multiply-accumulate mode.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MacMode {
    /// Activation (feature map) dtype.
    pub activations: NpuDtype,
    /// Weight dtype.
    pub weights: NpuDtype,
    /// Accumulator width, bits.
    pub accumulator_bits: u32,
    /// Peak MACs per cycle in this mode.
    pub macs_per_cycle: u32,
}

/// The memories by role (each optional; placement says which are used).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memories {
    /// On-chip SRAM (system SRAM shared with the CPU, or the NPU's own).
    pub sram: Option<Memory>,
    /// Off-chip DRAM.
    pub dram: Option<Memory>,
    /// Flash (on- or off-chip).
    pub flash: Option<Memory>,
}

impl Memories {
    /// The memory of `kind`, if described.
    pub fn get(&self, kind: MemoryKind) -> Option<&Memory> {
        match kind {
            MemoryKind::Sram => self.sram.as_ref(),
            MemoryKind::Dram => self.dram.as_ref(),
            MemoryKind::Flash => self.flash.as_ref(),
        }
    }
}

/// A memory as the NPU sees it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// Size, KiB (required for SRAM; absent means not a constraint).
    pub size_kib: Option<u32>,
    /// Banks (SRAM).
    pub banks: Option<u32>,
    /// Width of each port (AXI data bus), bits.
    pub bus_bits: u32,
    /// Ports the NPU reaches it through.
    pub ports: u32,
    /// Its clock relative to the NPU core clock.
    pub clock_scale: f64,
    /// Burst length, bytes.
    pub burst_bytes: u32,
    /// Read latency, cycles.
    pub read_latency: u32,
    /// Write latency, cycles.
    pub write_latency: u32,
}

impl Memory {
    /// Peak transfer rate, bytes per NPU core cycle.
    pub fn bytes_per_cycle(&self) -> f64 {
        f64::from(self.bus_bits) / 8.0 * f64::from(self.ports) * self.clock_scale
    }
}

/// A memory by role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryKind {
    /// `memories.sram`.
    Sram,
    /// `memories.dram`.
    Dram,
    /// `memories.flash`.
    Flash,
}

impl MemoryKind {
    /// The key of this memory under `npu.memories`.
    pub fn key(self) -> &'static str {
        match self {
            MemoryKind::Sram => "sram",
            MemoryKind::Dram => "dram",
            MemoryKind::Flash => "flash",
        }
    }
}

/// How the memories are used (the memory modes of the Ethos-U compiler).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryMode {
    /// Arena and constants in SRAM.
    SramOnly,
    /// Arena in (system) SRAM, constants off-chip.
    SharedSram,
    /// Arena and constants off-chip, the SRAM a cache in front of them.
    DedicatedSram,
}

/// Where data lives.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// The memory mode.
    pub mode: MemoryMode,
    /// The memory holding the activation arena.
    pub arena: MemoryKind,
    /// The memory holding weights and other constants.
    pub weights: MemoryKind,
}

/// The DMA engine.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dma {
    /// Independent channels (transfers that can be in flight at once).
    pub channels: u32,
}

/// Constraints on one natively supported op (all optional).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpConstraints {
    /// Largest kernel, `[height, width]` (convolutions, pools).
    pub kernel_max: Option<[u32; 2]>,
    /// Largest stride, `[height, width]`.
    pub stride_max: Option<[u32; 2]>,
    /// Largest dilation, `[height, width]`.
    pub dilation_max: Option<[u32; 2]>,
    /// Evaluated through an activation lookup table.
    #[serde(default)]
    pub lut: bool,
    /// The second operand must be a constant (weights): a fully connected
    /// layer runs, a product of two activations falls back to the CPU.
    #[serde(default)]
    pub constant_weights: bool,
    /// Passes over the data the NPU needs (1 unless the op is a sequence of
    /// hardware operations, such as softmax).
    pub passes: Option<u32>,
}

impl NpuDesc {
    /// The fastest 8-bit × 8-bit mode (validation guarantees one).
    pub fn int8_mode(&self) -> Option<&MacMode> {
        self.mac_modes
            .iter()
            .filter(|m| m.activations.bytes() == 1 && m.weights.bytes() == 1)
            .max_by_key(|m| m.macs_per_cycle)
    }

    /// Checks ranges and consistency; `bad(key, msg)` builds the error and
    /// `is_op` says whether a name is an IR op.
    pub(crate) fn validate<E>(&self, bad: impl Fn(&str, String) -> E, is_op: impl Fn(&str) -> bool) -> Result<(), E> {
        if !(self.clock_mhz >= 1.0 && self.clock_mhz <= 10_000.0) {
            return Err(bad("npu.clock_mhz", format!("expected 1 to 10000 MHz, got {}", self.clock_mhz)));
        }
        if self.host.is_empty() {
            return Err(bad("npu.host", "expected the name of a CPU target descriptor".into()));
        }
        for (key, v) in [
            ("npu.elementwise_per_cycle", self.elementwise_per_cycle),
            ("npu.max_rank", self.max_rank),
            ("npu.max_dim", self.max_dim),
            ("npu.command_fifo_words", self.command_fifo_words),
            ("npu.mac_array.input_channels", self.mac_array.input_channels),
            ("npu.mac_array.output_channels", self.mac_array.output_channels),
            ("npu.dma.channels", self.dma.channels),
        ] {
            if v == 0 {
                return Err(bad(key, "must be at least 1".into()));
            }
        }
        if self.mac_modes.is_empty() {
            return Err(bad("npu.mac_modes", "expected at least one mode".into()));
        }
        for (i, m) in self.mac_modes.iter().enumerate() {
            if !matches!(m.accumulator_bits, 32 | 40 | 48 | 64) {
                let msg = format!("expected 32, 40, 48 or 64, got {}", m.accumulator_bits);
                return Err(bad(&format!("npu.mac_modes[{i}].accumulator_bits"), msg));
            }
            if m.macs_per_cycle == 0 || !m.macs_per_cycle.is_power_of_two() {
                let msg = format!("expected a power of two, got {}", m.macs_per_cycle);
                return Err(bad(&format!("npu.mac_modes[{i}].macs_per_cycle"), msg));
            }
        }
        let Some(int8) = self.int8_mode() else {
            return Err(bad("npu.mac_modes", "expected an int8 x int8 (or uint8) mode".into()));
        };
        let array = u64::from(self.mac_array.input_channels) * u64::from(self.mac_array.output_channels);
        if array != u64::from(int8.macs_per_cycle) {
            let msg = format!(
                "input_channels x output_channels = {array}, but the int8 mode does {} MACs/cycle",
                int8.macs_per_cycle
            );
            return Err(bad("npu.mac_array", msg));
        }
        for kind in [MemoryKind::Sram, MemoryKind::Dram, MemoryKind::Flash] {
            let Some(m) = self.memories.get(kind) else { continue };
            let key = |f: &str| format!("npu.memories.{}.{f}", kind.key());
            if !matches!(m.bus_bits, 32 | 64 | 128 | 256 | 512) {
                return Err(bad(&key("bus_bits"), format!("expected 32, 64, 128, 256 or 512, got {}", m.bus_bits)));
            }
            if m.ports == 0 {
                return Err(bad(&key("ports"), "must be at least 1".into()));
            }
            if !(m.clock_scale > 0.0 && m.clock_scale <= 4.0) {
                return Err(bad(&key("clock_scale"), format!("expected a scale in (0, 4], got {}", m.clock_scale)));
            }
            if m.burst_bytes == 0 || !m.burst_bytes.is_power_of_two() {
                return Err(bad(&key("burst_bytes"), format!("expected a power of two, got {}", m.burst_bytes)));
            }
            if m.size_kib == Some(0) {
                return Err(bad(&key("size_kib"), "must be at least 1".into()));
            }
        }
        let Some(sram) = &self.memories.sram else {
            return Err(bad("npu.memories.sram", "an NPU needs SRAM (its working memory)".into()));
        };
        if sram.size_kib.is_none() {
            return Err(bad("npu.memories.sram.size_kib", "the SRAM size is required".into()));
        }
        let p = &self.placement;
        for (key, kind) in [("npu.placement.arena", p.arena), ("npu.placement.weights", p.weights)] {
            if self.memories.get(kind).is_none() {
                let msg = format!("`{}` is not described under npu.memories", kind.key());
                return Err(bad(key, msg));
            }
        }
        let off_chip = |k: MemoryKind| k != MemoryKind::Sram;
        let consistent = match p.mode {
            MemoryMode::SramOnly => !off_chip(p.arena) && !off_chip(p.weights),
            MemoryMode::SharedSram => !off_chip(p.arena) && off_chip(p.weights),
            MemoryMode::DedicatedSram => off_chip(p.arena) && off_chip(p.weights),
        };
        if !consistent {
            let want = match p.mode {
                MemoryMode::SramOnly => "arena and weights in sram",
                MemoryMode::SharedSram => "the arena in sram and the weights off-chip (dram or flash)",
                MemoryMode::DedicatedSram => "arena and weights off-chip (dram or flash), sram caching them",
            };
            return Err(bad("npu.placement", format!("mode {:?} means {want}", p.mode)));
        }
        for (name, c) in &self.ops {
            let key = |f: &str| if f.is_empty() { format!("npu.ops.{name}") } else { format!("npu.ops.{name}.{f}") };
            if !is_op(name) {
                return Err(bad(&key(""), format!("`{name}` is not an IR op (see ir/src/ops.rs)")));
            }
            for (f, v) in [("kernel_max", c.kernel_max), ("stride_max", c.stride_max), ("dilation_max", c.dilation_max)]
            {
                if v.is_some_and(|v| v.contains(&0)) {
                    return Err(bad(&key(f), "each extent must be at least 1".into()));
                }
            }
            if c.passes == Some(0) {
                return Err(bad(&key("passes"), "must be at least 1".into()));
            }
            if c.lut && self.lut_entries == 0 {
                return Err(bad(&key("lut"), "npu.lut_entries is 0: this NPU has no lookup tables".into()));
            }
        }
        for (i, a) in self.fused_activations.iter().enumerate() {
            if !is_op(a) {
                return Err(bad(&format!("npu.fused_activations[{i}]"), format!("`{a}` is not an IR op")));
            }
        }
        Ok(())
    }
}
