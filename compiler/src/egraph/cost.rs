//! Extraction: a roofline cost per op from the target descriptor, and a
//! greedy extractor that picks the cheapest e-node of every e-class.
//!
//! **Cost of one op on a CPU target**:
//! `max(flops / peak, bytes / bandwidth) + launch overhead`, where peak =
//! clock × f32 lanes of the widest vector × 2 (FMA) × 2 (issue ports),
//! bandwidth = one vector load per cycle
//! (nano models live in L1/L2), and every kernel pays a fixed overhead (the
//! runtime runs one kernel per node). Bytes are every operand read plus the
//! result written. A fused op is one kernel and reads its input once, so it
//! beats its decomposition on every target with a launch overhead or finite
//! bandwidth. An op the target cannot run natively (the CPU backend's float
//! kernels are f32 only) costs infinity unless it was in the input graph.
//!
//! **Cost of one op on an NPU target** (`[npu]`, `docs/targets.md`). An op
//! listed in `npu.ops` whose tensors and attributes meet its constraints
//! (rank, extents, kernel/stride/dilation, constant weights; no i64 or bool
//! data) runs natively:
//! `passes × max(compute, memory) + op_overhead_cycles`, in core cycles, where
//! compute is MACs / MACs-per-cycle for contractions (the 8-bit mode; the
//! reduced and output extents rounded up to the MAC array's
//! `input_channels` × `output_channels`, which is the utilisation loss of a
//! narrow layer) and elements / `elementwise_per_cycle` for everything else
//! (lookup tables included; reshape is a free view); memory is activation
//! bytes at the SRAM's rate (the arena lives in SRAM, or the dedicated SRAM
//! caches it) plus constant bytes at the rate of the memory holding the
//! weights. Float data is costed at the 8-bit size: NPU targets run
//! quantised models (issue #6). Any other op runs on the `host` CPU: its
//! CPU cost (at least the time to read its constants from the weights'
//! memory) plus `handoff_cycles` (interrupt, cache maintenance, driver), so
//! the optimiser keeps work on the NPU where a native decomposition exists
//! (a LayerNorm stays as NPU reductions and elementwise ops, a division
//! becomes a reciprocal lookup table and a multiply) and fuses where the
//! fused op is native (GELU as one lookup table).
//!
//! **Extraction** is greedy and bottom-up like egg's `Extractor`, with two
//! changes that matter on deep models. egg's tree cost counts a shared value
//! once per use, so it doubles at every residual connection: past ~20
//! transformer layers the costs overflow or lose all precision and deep
//! fusions are no longer chosen; and its fixpoint sweep takes as many passes
//! as the graph is deep. Here:
//!
//! 1. Knuth's generalisation of Dijkstra, on the critical path (an e-node
//!    costs its op plus its costliest operand), visits every e-class once
//!    in O(E log E) and orders them so that each has an e-node over earlier
//!    classes only: choices restricted to those are acyclic.
//! 2. In that order each class takes its cheapest such e-node, costed as its
//!    op plus the cost of its *private* operands (classes no other class
//!    uses); shared operands are computed anyway and count zero. A value is
//!    thus counted once, costs stay local, and a fusion deep in the graph is
//!    decided as precisely as one at the top.
//! 3. "Used by two classes" over the whole e-graph overstates sharing: the
//!    dead intermediates of a fused decomposition (GELU's `x / √2` and
//!    `x · (…)`) or the alternatives that fuse across layers (epilogues)
//!    use a value that the extracted graph uses once. So phase 2 is
//!    repeated with "shared" recomputed from the uses in the graph it
//!    extracted (a few rounds, until nothing changes); the round with the
//!    lowest estimate wins.
//!
//! Costs are integers (picoseconds), so ties are exact; on a tie the
//! original e-node wins, so a rewrite that gains nothing changes nothing.
//!
//! `--extract dag` ([`Extractor::Dag`]) replaces step 2 with a greedy DAG
//! pass in the same order: an e-node costs its op plus every class its
//! operands need, each once (see `dag_pass`). It is pure Rust (egg's `lp`
//! extractor would pull in the CBC system library) and, by the tests, never
//! worse than the default on any fixture.

use super::analysis::EGraph;
use super::lang::{ENode, OpKind};
use egg::{Id, Language};
use nanoc_ir::{Arg, DType, Graph, Op, OpClass, Program, TensorType, UnaryOp, Window};
use nanoc_targets::{NpuDesc, OpConstraints, Sparsity, Target, TargetKind};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

/// Fixed cost of one kernel launch on a CPU: the runtime's call through the
/// step table, argument loads, loop set-up (ns).
const CPU_KERNEL_OVERHEAD_NS: f64 = 50.0;
/// FMA issue ports assumed per core.
const CPU_FMA_PORTS: f64 = 2.0;

/// The roofline parameters of a target.
#[derive(Clone, Debug)]
pub struct CostModel {
    /// Target name.
    pub target: String,
    /// Weight sparsity patterns the target exploits (from the descriptor).
    pub sparsity: Vec<Sparsity>,
    /// How the target computes.
    pub device: Device,
}

/// The device half of a cost model.
#[derive(Clone, Debug)]
pub enum Device {
    /// A CPU running the Cranelift backend's kernels.
    Cpu(CpuRoofline),
    /// An NPU, with the host CPU that runs what it cannot.
    Npu(Box<NpuRoofline>),
}

/// The roofline of a CPU.
#[derive(Clone, Debug)]
pub struct CpuRoofline {
    /// Peak arithmetic throughput, flops per ns.
    pub flops_per_ns: f64,
    /// Memory bandwidth, bytes per ns.
    pub bytes_per_ns: f64,
    /// Fixed cost per kernel, ns.
    pub overhead_ns: f64,
    /// Float dtypes the target computes natively.
    pub float_dtypes: Vec<DType>,
}

/// The roofline of an NPU (rates per core cycle).
#[derive(Clone, Debug)]
pub struct NpuRoofline {
    /// Core clock, cycles per ns.
    pub cycles_per_ns: f64,
    /// 8-bit MACs per cycle.
    pub macs_per_cycle: f64,
    /// MAC array: reduced and output extents per cycle.
    pub array: (usize, usize),
    /// Elementwise/lookup-table/reduction outputs per cycle.
    pub elementwise_per_cycle: f64,
    /// Activation traffic (SRAM), bytes per cycle.
    pub sram_bytes_per_cycle: f64,
    /// Constant traffic (the weights' memory), bytes per cycle.
    pub weight_bytes_per_cycle: f64,
    /// Fixed cycles per NPU operation.
    pub op_overhead_cycles: f64,
    /// Cycles per move of work between NPU and host.
    pub handoff_cycles: f64,
    /// Largest rank and dimension.
    pub max_rank: usize,
    /// See `max_rank`.
    pub max_dim: usize,
    /// Bytes per activation element (the 8-bit mode's).
    pub elem_bytes: f64,
    /// Native ops and their constraints.
    pub ops: BTreeMap<String, OpConstraints>,
    /// The host CPU.
    pub host: CpuRoofline,
}

impl CpuRoofline {
    fn of(t: &Target) -> Result<CpuRoofline, String> {
        let cpu = t.cpu().ok_or_else(|| format!("target `{}` is not a CPU target", t.name))?;
        let lanes = cpu.vector_bits as f64 / 32.0;
        Ok(CpuRoofline {
            flops_per_ns: cpu.clock_ghz * lanes * 2.0 * CPU_FMA_PORTS,
            bytes_per_ns: cpu.clock_ghz * cpu.vector_bits as f64 / 8.0,
            overhead_ns: CPU_KERNEL_OVERHEAD_NS,
            float_dtypes: vec![DType::F32],
        })
    }

    /// Estimated time of one op (ns), or `None` if the CPU cannot run it.
    pub fn op_ns(&self, op: &Op, args: &[&TensorType], out: &TensorType) -> Option<f64> {
        let native = |t: &TensorType| !t.dtype.is_float() || self.float_dtypes.contains(&t.dtype);
        if !args.iter().all(|t| native(t)) || !native(out) {
            return None;
        }
        let bytes: f64 = args.iter().map(|t| t.byte_len() as f64).sum::<f64>() + out.byte_len() as f64;
        let time = (flops(op, args, out) / self.flops_per_ns).max(bytes / self.bytes_per_ns);
        Some(time + self.overhead_ns)
    }
}

impl NpuRoofline {
    fn of(t: &Target, npu: &NpuDesc) -> Result<NpuRoofline, String> {
        let bad = |key: &str, msg: String| format!("target `{}`: key `{key}`: {msg}", t.name);
        let host_target =
            Target::find(&npu.host).map_err(|e| bad("npu.host", format!("the host CPU descriptor: {e}")))?;
        let host = CpuRoofline::of(&host_target).map_err(|e| bad("npu.host", e))?;
        let mode = npu.int8_mode().ok_or_else(|| bad("npu.mac_modes", "no 8-bit mode".into()))?;
        let memory = |kind: nanoc_targets::MemoryKind, key: &str| {
            npu.memories.get(kind).map(|m| m.bytes_per_cycle()).ok_or_else(|| bad(key, "not described".into()))
        };
        Ok(NpuRoofline {
            cycles_per_ns: npu.clock_mhz / 1e3,
            macs_per_cycle: f64::from(mode.macs_per_cycle),
            array: (npu.mac_array.input_channels as usize, npu.mac_array.output_channels as usize),
            elementwise_per_cycle: f64::from(npu.elementwise_per_cycle),
            sram_bytes_per_cycle: memory(nanoc_targets::MemoryKind::Sram, "npu.memories.sram")?,
            weight_bytes_per_cycle: memory(npu.placement.weights, "npu.placement.weights")?,
            op_overhead_cycles: f64::from(npu.op_overhead_cycles),
            handoff_cycles: f64::from(npu.handoff_cycles),
            max_rank: npu.max_rank as usize,
            max_dim: npu.max_dim as usize,
            elem_bytes: f64::from(mode.activations.bytes()),
            ops: npu.ops.clone(),
            host,
        })
    }

    /// The constraints of `op` if the NPU runs it natively on these
    /// operands (`consts[i]`: operand `i` is a constant).
    pub fn native(&self, op: &Op, args: &[&TensorType], consts: &[bool], out: &TensorType) -> Option<&OpConstraints> {
        let c = self.ops.get(op.name())?;
        let fits = |t: &TensorType| {
            !matches!(t.dtype, DType::I64 | DType::Bool)
                && t.shape.rank() <= self.max_rank
                && t.shape.dims().iter().all(|&d| d <= self.max_dim)
        };
        if !args.iter().all(|t| fits(t)) || !fits(out) {
            return None;
        }
        if c.constant_weights && !consts.get(1).copied().unwrap_or(false) {
            return None;
        }
        let window = match op {
            Op::Conv { window, .. } | Op::MaxPool { window } | Op::AvgPool { window, .. } => Some(window),
            _ => None,
        };
        if let Some(w) = window
            && !window_fits(w, c)
        {
            return None;
        }
        Some(c)
    }

    /// Estimated time of one op (ns): natively, or on the host plus a
    /// handoff; `None` if neither can run it.
    pub fn op_ns(&self, op: &Op, args: &[&TensorType], consts: &[bool], out: &TensorType) -> Option<f64> {
        let elem = |t: &TensorType| {
            if t.dtype.is_float() { self.elem_bytes } else { t.dtype.size_bytes() as f64 }
        };
        let bytes = |t: &TensorType| t.shape.numel() as f64 * elem(t);
        let (mut act, mut weights) = (bytes(out), 0.0);
        for (i, t) in args.iter().enumerate() {
            if consts.get(i).copied().unwrap_or(false) { weights += bytes(t) } else { act += bytes(t) }
        }
        let Some(c) = self.native(op, args, consts, out) else {
            // The host reads the weights from the same memory as the NPU.
            let host = self.host.op_ns(op, args, out)?.max(weights / self.weight_bytes_per_cycle / self.cycles_per_ns);
            return Some(host + self.handoff_cycles / self.cycles_per_ns);
        };
        if matches!(op, Op::Reshape) {
            return Some(0.0);
        }
        let memory = act / self.sram_bytes_per_cycle + weights / self.weight_bytes_per_cycle;
        let compute = match op.class() {
            OpClass::Contraction => self.padded_macs(op, args, out) / self.macs_per_cycle,
            _ => {
                let most = args.iter().map(|t| t.shape.numel()).chain([out.shape.numel()]).max().unwrap_or(0);
                most as f64 / self.elementwise_per_cycle
            }
        };
        let passes = f64::from(c.passes.unwrap_or(1));
        Some((passes * compute.max(memory) + self.op_overhead_cycles) / self.cycles_per_ns)
    }

    /// MACs of a contraction with the reduced and output extents rounded
    /// up to the MAC array (matmul, conv); other contractions count flops / 2.
    fn padded_macs(&self, op: &Op, args: &[&TensorType], out: &TensorType) -> f64 {
        let (ic, oc) = self.array;
        let up = |n: usize, m: usize| n.div_ceil(m.max(1)) * m.max(1);
        let odims = out.shape.dims();
        match op {
            Op::MatMul => {
                let k = args.first().and_then(|a| a.shape.dims().last()).copied().unwrap_or(1);
                let n = odims.last().copied().unwrap_or(1);
                let rows = out.shape.numel() / n.max(1);
                (rows * up(k, ic) * up(n, oc)) as f64
            }
            Op::Conv { group, .. } if odims.len() >= 2 => {
                // Weights [C_out, C_in/group, k...]; output [N, C_out, spatial...].
                let w = args.get(1).map_or(&[][..], |w| w.shape.dims());
                let reduced: usize = w.iter().skip(1).product();
                let cout_group = odims[1] / (*group).max(1);
                let positions = out.shape.numel() / odims[1].max(1);
                (positions * *group * up(reduced, ic) * up(cout_group, oc)) as f64
            }
            _ => flops(op, args, out) / 2.0,
        }
    }
}

/// True if a window's kernel, strides and dilations are within the
/// constraints (`[h, w]`; a 1-D window is checked against `w`; 3-D and up
/// do not fit).
fn window_fits(w: &Window, c: &OpConstraints) -> bool {
    let within = |v: &[usize], max: Option<[u32; 2]>| match (v, max) {
        (_, None) => v.len() <= 2,
        ([x], Some([_, mw])) => *x <= mw as usize,
        ([y, x], Some([mh, mw])) => *y <= mh as usize && *x <= mw as usize,
        _ => false,
    };
    within(&w.kernel, c.kernel_max) && within(&w.strides, c.stride_max) && within(&w.dilations, c.dilation_max)
}

impl CostModel {
    /// The cost model of a target descriptor (an NPU's also loads its host).
    pub fn for_target(t: &Target) -> Result<CostModel, String> {
        let device = match (t.kind, t.npu()) {
            (TargetKind::Npu, Some(npu)) => Device::Npu(Box::new(NpuRoofline::of(t, npu)?)),
            _ => Device::Cpu(CpuRoofline::of(t)?),
        };
        Ok(CostModel { target: t.name.clone(), sparsity: t.sparsity.clone(), device })
    }

    /// Fixed cost of one op (ns): a CPU kernel launch, an NPU operation.
    pub fn overhead_ns(&self) -> f64 {
        match &self.device {
            Device::Cpu(c) => c.overhead_ns,
            Device::Npu(n) => n.op_overhead_cycles / n.cycles_per_ns,
        }
    }

    /// Estimated time of one op (ns) with every operand a computed value,
    /// or `None` if the target cannot run it.
    pub fn op_ns(&self, op: &Op, args: &[&TensorType], out: &TensorType) -> Option<f64> {
        self.op_ns_with(op, args, &[], out)
    }

    /// Estimated time of one op (ns); `consts[i]` says operand `i` is a
    /// constant (weights: they stream from the weights' memory on an NPU).
    pub fn op_ns_with(&self, op: &Op, args: &[&TensorType], consts: &[bool], out: &TensorType) -> Option<f64> {
        // The 2:4-compressed matmul runs only where the descriptor lists 2:4.
        if *op == Op::SparseMatMul && !self.sparsity.contains(&Sparsity::TwoOfFour) {
            return None;
        }
        match &self.device {
            Device::Cpu(c) => c.op_ns(op, args, out),
            Device::Npu(n) => n.op_ns(op, args, consts, out),
        }
    }

    /// True if the op runs on the target itself (always for a CPU; for an
    /// NPU, when it is native and within its constraints).
    pub fn runs_natively(&self, op: &Op, args: &[&TensorType], consts: &[bool], out: &TensorType) -> bool {
        match &self.device {
            Device::Cpu(_) => true,
            Device::Npu(n) => n.native(op, args, consts, out).is_some(),
        }
    }

    /// Estimated time of a whole graph (ns): the sum over its op nodes.
    pub fn graph_ns(&self, g: &Graph) -> f64 {
        g.node_ids()
            .into_iter()
            .filter_map(|id| {
                let n = g.node(id);
                if matches!(n.op, Op::Input | Op::Const(_)) {
                    return None;
                }
                let args = g.args(id);
                let tys: Vec<&TensorType> = args.iter().map(|&a| &g.node(a).ty).collect();
                let consts: Vec<bool> = args.iter().map(|&a| matches!(g.node(a).op, Op::Const(_))).collect();
                Some(self.op_ns_with(&n.op, &tys, &consts, &n.ty).unwrap_or(0.0))
            })
            .sum()
    }
}

/// Arithmetic of one op (flops, counting a transcendental function as the
/// polynomial the CPU backend evaluates).
fn flops(op: &Op, args: &[&TensorType], out: &TensorType) -> f64 {
    let n = out.shape.numel() as f64;
    let input = args.first().map_or(0.0, |t| t.shape.numel() as f64);
    match op {
        Op::MatMul => {
            let k = args.first().and_then(|a| a.shape.dims().last()).copied().unwrap_or(1) as f64;
            2.0 * n * k
        }
        Op::QMatMul => {
            let k = args.first().and_then(|a| a.shape.dims().last()).copied().unwrap_or(1) as f64;
            2.0 * n * k
        }
        Op::SparseMatMul => {
            // K/2 multiply-adds per output element.
            let k = args.first().and_then(|a| a.shape.dims().last()).copied().unwrap_or(1) as f64;
            n * k
        }
        Op::QMatMulBlock { .. } => {
            // Multiply-add plus unpacking and centring each weight, per output.
            let k = args.first().and_then(|a| a.shape.dims().last()).copied().unwrap_or(1) as f64;
            3.0 * n * k
        }
        Op::Conv { .. } => {
            // Each output element: a dot product over C/group × kernel.
            let w = args.get(1).map_or(1.0, |w| w.shape.dims().iter().skip(1).product::<usize>() as f64);
            2.0 * n * w
        }
        Op::Fused { body } => program_flops(body, args),
        Op::MatMulEpilogue { epilogue } => {
            let k = args.first().and_then(|a| a.shape.dims().last()).copied().unwrap_or(1) as f64;
            let product = TensorType::new(out.dtype, out.shape.clone());
            let mut operands = vec![&product];
            operands.extend_from_slice(args.get(2..).unwrap_or_default());
            2.0 * n * k + program_flops(epilogue, &operands)
        }
        Op::Unary(u) => n * unary_flops(*u),
        Op::Binary(_) => {
            n * match op.name() {
                "pow" => 40.0,
                "div" => 4.0,
                _ => 1.0,
            }
        }
        Op::Attention { .. } => {
            // 2·B·H·Sq·Sk·(D + Dv): the two products (B·H·Sq = n / Dv rows).
            let dims = |i: usize| args.get(i).map_or(&[][..], |t| t.shape.dims());
            let (q, v) = (dims(0), dims(2));
            let sk = dims(1).get(2).copied().unwrap_or(0) as f64;
            let d = q.last().copied().unwrap_or(0) as f64;
            let dv = v.last().copied().unwrap_or(0) as f64;
            let rows = if dv > 0.0 { n / dv } else { 0.0 };
            2.0 * rows * sk * (d + dv)
        }
        Op::Softmax { .. } => n * 24.0,
        Op::LayerNorm { .. } => n * 8.0,
        Op::RmsNorm { .. } => n * 5.0,
        _ => match op.class() {
            OpClass::Leaf | OpClass::Movement => 0.0,
            OpClass::Elementwise => n,
            OpClass::Reduction => input.max(n),
            OpClass::Contraction | OpClass::Normalization => 4.0 * n,
        },
    }
}

/// Arithmetic of a fused program: the sum of its steps' (a step that does
/// not type-check counts nothing; the op's own type check rejects it).
fn program_flops(p: &Program, operands: &[&TensorType]) -> f64 {
    let Ok(types) = p.step_types(operands) else { return 0.0 };
    p.steps
        .iter()
        .zip(&types)
        .map(|(step, ty)| {
            let tys: Vec<&TensorType> = step
                .args
                .iter()
                .filter_map(|&a| match a {
                    Arg::Operand(i) => operands.get(i).copied(),
                    Arg::Step(i) => types.get(i),
                })
                .collect();
            flops(&step.op, &tys, ty)
        })
        .sum()
}

/// Flops per element of a unary function: the polynomial and range
/// reduction of the transcendental ones, 1 for the rest.
fn unary_flops(u: UnaryOp) -> f64 {
    let name = Op::Unary(u).name();
    match name {
        "exp" | "log" | "sigmoid" | "softplus" => 16.0,
        "erf" | "tanh" => 20.0,
        "gelu" => 24.0,
        "silu" => 18.0,
        "gelu_tanh" => 26.0,
        "sqrt" | "reciprocal" => 4.0,
        _ => 1.0,
    }
}

/// The cost of one e-node (ps), or `None` if the target cannot run it.
/// `original` e-nodes are always runnable (they came from the input graph).
pub fn enode_ps(model: &CostModel, eg: &EGraph, class: Id, n: &ENode, original: bool) -> Option<u64> {
    let info = n.info()?;
    match &info.kind {
        OpKind::Input(_) | OpKind::Const(_) => Some(0),
        OpKind::Op(cell) => {
            let (op, _) = cell.get()?;
            let tys: Vec<&TensorType> = n.children().iter().map(|&c| &eg[c].data.ty).collect();
            let consts: Vec<bool> = n.children().iter().map(|&c| eg[c].data.is_const).collect();
            let ns = match model.op_ns_with(op, &tys, &consts, &eg[class].data.ty) {
                Some(ns) => ns,
                None if original => model.overhead_ns(),
                None => return None,
            };
            Some(((ns * 1000.0).round() as u64).max(1))
        }
    }
}

/// The result of extraction.
pub struct Extraction {
    /// The chosen e-node of every e-class that has one (canonical children).
    pub choice: HashMap<Id, ENode>,
    /// Estimated time of the extracted graph (ns): the sum over chosen op
    /// e-nodes reachable from the roots.
    pub estimate_ns: f64,
}

/// One e-node as extraction sees it.
struct Cand {
    node: ENode,
    /// Dense indices of its distinct operand classes.
    kids: Vec<usize>,
    /// Op cost (ps); `None` if the target cannot run it.
    cost: Option<u64>,
    original: bool,
}

/// Greedy extraction (see the module docs). `originals` are the input
/// graph's e-nodes (canonical), preferred on ties.
pub fn extract(eg: &EGraph, roots: &[Id], model: &CostModel, originals: &HashSet<ENode>) -> Extraction {
    extract_with(eg, roots, model, originals, Extractor::Greedy)
}

/// Which second phase extraction runs (`--extract`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Extractor {
    /// Each class's cheapest e-node counting its op and its private
    /// operands (linear time; the default).
    #[default]
    Greedy,
    /// Each class's cheapest e-node counting every class it needs once
    /// (greedy DAG; quadratic in the worst case).
    Dag,
}

/// Extraction with the given second phase (see the module docs).
pub fn extract_with(
    eg: &EGraph,
    roots: &[Id],
    model: &CostModel,
    originals: &HashSet<ENode>,
    extractor: Extractor,
) -> Extraction {
    // Dense class indices in id order.
    let mut ids: Vec<Id> = eg.classes().map(|c| c.id).collect();
    ids.sort();
    let len = ids.last().map_or(0, |&i| usize::from(i) + 1);
    let mut dense = vec![usize::MAX; len];
    for (i, &c) in ids.iter().enumerate() {
        dense[usize::from(c)] = i;
    }
    let ix = |c: Id| dense[usize::from(eg.find(c))];
    let n = ids.len();
    let mut shared = vec![false; n];
    for &r in roots {
        shared[ix(r)] = true;
    }

    // Candidates of every class; who uses whom.
    let mut cands: Vec<Vec<Cand>> = Vec::with_capacity(n);
    let mut parents: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
    let mut last_parent = vec![usize::MAX; n];
    let mut remaining: Vec<Vec<usize>> = Vec::with_capacity(n);
    let mut heap: BinaryHeap<Reverse<(u64, bool, usize, usize)>> = BinaryHeap::new();
    for (ci, &c) in ids.iter().enumerate() {
        let mut list = Vec::with_capacity(eg[c].nodes.len());
        let mut rem = Vec::with_capacity(eg[c].nodes.len());
        for node in &eg[c].nodes {
            let node = node.clone().map_children(|k| eg.find(k));
            let original = originals.contains(&node);
            let cost = enode_ps(model, eg, c, &node, original);
            let mut kids: Vec<usize> = node.children().iter().map(|&k| ix(k)).collect();
            kids.sort_unstable();
            kids.dedup();
            for &k in &kids {
                if k != ci && last_parent[k] != ci {
                    // A second distinct user class makes a class shared.
                    shared[k] |= last_parent[k] != usize::MAX;
                    last_parent[k] = ci;
                }
            }
            let j = list.len();
            rem.push(kids.len());
            if let Some(cost) = cost.filter(|_| !kids.contains(&ci)) {
                if kids.is_empty() {
                    heap.push(Reverse((cost, !original, ci, j)));
                }
                for &k in &kids {
                    parents[k].push((ci, j));
                }
            }
            list.push(Cand { node, kids, cost, original });
        }
        cands.push(list);
        remaining.push(rem);
    }

    // Phase 1: Knuth's algorithm on the critical path (an e-node costs its
    // op plus its costliest operand), which orders the classes so that
    // every class has an e-node over earlier classes only.
    let mut rank = vec![usize::MAX; n];
    let mut path = vec![0u64; n];
    let mut order: Vec<usize> = Vec::with_capacity(n);
    while let Some(Reverse((cost, _, c, _))) = heap.pop() {
        if rank[c] != usize::MAX {
            continue;
        }
        rank[c] = order.len();
        order.push(c);
        path[c] = cost;
        for &(p, pj) in &parents[c] {
            if rank[p] != usize::MAX {
                continue;
            }
            remaining[p][pj] -= 1;
            if remaining[p][pj] > 0 {
                continue;
            }
            let cand = &cands[p][pj];
            let longest = cand.kids.iter().map(|&k| path[k]).max().unwrap_or(0);
            heap.push(Reverse((cand.cost.unwrap_or(0).saturating_add(longest), !cand.original, p, pj)));
        }
    }

    // The classes reachable from the roots through the chosen e-nodes, the
    // estimate (each once), and which are shared there (a root, or used by
    // two chosen e-nodes of different classes).
    let walk = |best: &[Option<(u64, usize)>]| {
        let mut users = vec![usize::MAX; n];
        let mut used_twice = vec![false; n];
        let mut seen = vec![false; n];
        let mut stack: Vec<usize> = roots.iter().map(|&r| ix(r)).collect();
        for &r in &stack {
            used_twice[r] = true;
        }
        let mut ps = 0u64;
        while let Some(c) = stack.pop() {
            if std::mem::replace(&mut seen[c], true) {
                continue;
            }
            if let Some((_, j)) = best[c] {
                let cand = &cands[c][j];
                ps = ps.saturating_add(cand.cost.unwrap_or(0));
                for &k in &cand.kids {
                    used_twice[k] |= users[k] != usize::MAX && users[k] != c;
                    users[k] = c;
                    stack.push(k);
                }
            }
        }
        (ps, used_twice)
    };
    let mut best = match extractor {
        Extractor::Greedy => greedy_pass(&cands, &rank, &order, &shared),
        Extractor::Dag => dag_pass(&cands, &rank, &order),
    };
    let (mut best_ps, mut used) = walk(&best);
    // Greedy: re-decide "private" from the extracted graph's uses (step 3).
    if matches!(extractor, Extractor::Greedy) {
        for _ in 0..3 {
            if used == shared {
                break;
            }
            shared = used;
            let next = greedy_pass(&cands, &rank, &order, &shared);
            let (ps, next_used) = walk(&next);
            used = next_used;
            if ps < best_ps {
                (best, best_ps) = (next, ps);
            }
        }
    }

    let mut choice: HashMap<Id, ENode> = HashMap::with_capacity(n);
    for (ci, b) in best.iter().enumerate() {
        if let Some((_, j)) = b {
            choice.insert(ids[ci], cands[ci][*j].node.clone());
        }
    }
    Extraction { choice, estimate_ns: best_ps as f64 / 1000.0 }
}

/// Phase 2, greedy: in the critical-path order, each class takes its
/// cheapest e-node over earlier classes, costed as its op plus its private
/// operands' costs. Returns (cost, candidate index) per class.
fn greedy_pass(cands: &[Vec<Cand>], rank: &[usize], order: &[usize], shared: &[bool]) -> Vec<Option<(u64, usize)>> {
    let mut best: Vec<Option<(u64, usize)>> = vec![None; cands.len()];
    for &c in order {
        let mut pick: Option<(u64, bool, usize)> = None;
        for (j, cand) in cands[c].iter().enumerate() {
            let Some(op_cost) = cand.cost else { continue };
            if !cand.kids.iter().all(|&k| rank[k] < rank[c]) {
                continue;
            }
            let mut cost = op_cost;
            for &k in cand.kids.iter().filter(|&&k| !shared[k]) {
                cost = cost.saturating_add(best[k].map_or(0, |b| b.0));
            }
            let key = (cost, !cand.original, j);
            if pick.is_none_or(|p| key < p) {
                pick = Some(key);
            }
        }
        best[c] = pick.map(|(cost, _, j)| (cost, j));
    }
    best
}

/// Phase 2, greedy DAG (`--extract dag`): in the same order, each class
/// takes the e-node minimising the cost of everything its choice needs, its
/// op plus the union of its operands' needs, each class counted once, so a
/// value two operands share is paid for once. This is the "greedy DAG"
/// extractor of egraphs-good/extraction-gym (including its "faster" lower
/// bound: an e-node whose op plus costliest operand already costs more than
/// the best found is skipped); visiting classes in the acyclic order of
/// phase 1 makes it a single pass and its result acyclic. Needs are kept as
/// sorted (class, cost) lists: quadratic memory on long chains, which is why
/// it is not the default.
fn dag_pass(cands: &[Vec<Cand>], rank: &[usize], order: &[usize]) -> Vec<Option<(u64, usize)>> {
    let n = cands.len();
    let mut needs: Vec<Vec<(usize, u64)>> = vec![Vec::new(); n];
    let mut total = vec![0u64; n];
    let mut best: Vec<Option<(u64, usize)>> = vec![None; n];
    for &c in order {
        let mut pick: Option<((u64, bool, usize), Vec<(usize, u64)>)> = None;
        for (j, cand) in cands[c].iter().enumerate() {
            let Some(op_cost) = cand.cost else { continue };
            if !cand.kids.iter().all(|&k| rank[k] < rank[c]) {
                continue;
            }
            let bound = op_cost.saturating_add(cand.kids.iter().map(|&k| total[k]).max().unwrap_or(0));
            if pick.as_ref().is_some_and(|(key, _)| bound > key.0) {
                continue;
            }
            let mut set: Vec<(usize, u64)> = cand.kids.iter().flat_map(|&k| needs[k].iter().copied()).collect();
            set.sort_unstable();
            set.dedup_by_key(|e| e.0);
            let cost = set.iter().fold(op_cost, |sum, e| sum.saturating_add(e.1));
            let key = (cost, !cand.original, j);
            if pick.as_ref().is_none_or(|(p, _)| key < *p) {
                pick = Some((key, set));
            }
        }
        if let Some(((cost, _, j), mut set)) = pick {
            let own = cands[c][j].cost.unwrap_or(0);
            let at = set.partition_point(|e| e.0 < c);
            set.insert(at, (c, own));
            needs[c] = set;
            total[c] = cost;
            best[c] = Some((cost, j));
        }
    }
    best
}

/// egg's tree cost over the same per-op model, for use with
/// [`egg::Extractor`] (the unit tests check both extractors agree on small
/// graphs).
pub struct TreeCost<'a> {
    /// The model.
    pub model: &'a CostModel,
    /// The e-graph the nodes live in.
    pub egraph: &'a EGraph,
}

impl egg::CostFunction<ENode> for TreeCost<'_> {
    type Cost = f64;

    fn cost<C: FnMut(Id) -> f64>(&mut self, enode: &ENode, mut costs: C) -> f64 {
        let class = self.egraph.lookup(enode.clone());
        let own = class
            .and_then(|c| enode_ps(self.model, self.egraph, c, enode, false))
            .map_or(f64::INFINITY, |ps| ps as f64 / 1000.0);
        enode.fold(own, |sum, k| sum + costs(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egraph::convert::to_egraph;
    use crate::egraph::rules::{activation, check::example_graph};
    use egg::{Runner, SimpleScheduler};

    /// On a small graph (no sharing to speak of) egg's extractor with the
    /// tree cost and this one pick the same root e-node: the fused GELU or
    /// SiLU.
    #[test]
    fn agrees_with_egg_extractor_on_small_graphs() {
        let target = Target::find("cpu-x86_64").unwrap();
        let model = CostModel::for_target(&target).unwrap();
        for rule in activation::rules() {
            let g = example_graph(&rule);
            let c = to_egraph(&g).unwrap();
            let rw = rule.compile().unwrap();
            let eg = Runner::default()
                .with_egraph(c.egraph)
                .with_scheduler(SimpleScheduler)
                .run(std::slice::from_ref(&rw))
                .egraph;
            let root = eg.find(c.roots[0]);
            let originals: HashSet<ENode> = c.origins.canonical(&eg).into_keys().collect();
            let ours = extract(&eg, &[root], &model, &originals);
            let egg_best =
                egg::Extractor::new(&eg, TreeCost { model: &model, egraph: &eg }).find_best_node(root).clone();
            assert_eq!(ours.choice[&root], egg_best, "rule {}", rule.name);
            let fused = ["gelu", "gelu_tanh", "silu"].iter().any(|op| ours.choice[&root].is(op));
            assert!(fused, "rule {}", rule.name);
        }
    }

    /// Where greedy and DAG extraction differ: the class of `r` holds
    /// A = add(neg(s), abs(s)) with s = exp(x), and B = add(add(neg(x),
    /// relu(x)), x). Greedy counts the shared s as free inside A and picks
    /// it; the DAG pass counts s once and picks the truly cheaper B.
    #[test]
    fn dag_counts_shared_operands_once() {
        use nanoc_ir::BinaryOp;
        let model = CostModel::for_target(&Target::find("cpu-x86_64").unwrap()).unwrap();
        let t = TensorType::new(DType::F32, vec![64usize, 64]);
        let mut g = Graph::new("ab");
        let x = g.add_input("x", t.clone());
        let un = |g: &mut Graph, name: &str, u: UnaryOp, a| g.add_node(name, Op::Unary(u), &[a], t.clone());
        let bin = |g: &mut Graph, name: &str, b: BinaryOp, a, c| g.add_node(name, Op::Binary(b), &[a, c], t.clone());
        let s = un(&mut g, "s", UnaryOp::Exp, x);
        let p = un(&mut g, "p", UnaryOp::Neg, s);
        let q = un(&mut g, "q", UnaryOp::Abs, s);
        let a = bin(&mut g, "a", BinaryOp::Add, p, q);
        let nx = un(&mut g, "nx", UnaryOp::Neg, x);
        let rx = un(&mut g, "rx", UnaryOp::Relu, x);
        let b1 = bin(&mut g, "b1", BinaryOp::Add, nx, rx);
        let b = bin(&mut g, "b", BinaryOp::Add, b1, x);
        g.add_output("a", a);
        g.add_output("b", b);
        let mut c = to_egraph(&g).unwrap();
        c.egraph.union(c.roots[0], c.roots[1]);
        c.egraph.rebuild();
        let eg = c.egraph;
        let root = eg.find(c.roots[0]);
        let originals: HashSet<ENode> = c.origins.canonical(&eg).into_keys().collect();
        let ns = |op: Op, args: usize| model.op_ns(&op, &vec![&t; args], &t).unwrap();
        let (add, un_ns) = (ns(Op::Binary(BinaryOp::Add), 2), |u| ns(Op::Unary(u), 1));
        let cost_a = add + un_ns(UnaryOp::Neg) + un_ns(UnaryOp::Abs) + un_ns(UnaryOp::Exp);
        let cost_b = 2.0 * add + un_ns(UnaryOp::Neg) + un_ns(UnaryOp::Relu);
        assert!(add + un_ns(UnaryOp::Neg) + un_ns(UnaryOp::Abs) < cost_b && cost_b < cost_a, "{cost_a} {cost_b}");
        let greedy = extract_with(&eg, &[root], &model, &originals, Extractor::Greedy);
        let dag = extract_with(&eg, &[root], &model, &originals, Extractor::Dag);
        let kid_is = |e: &Extraction, op: &str| {
            let first = eg.find(e.choice[&root].children()[0]);
            e.choice[&first].is(op)
        };
        assert!(kid_is(&greedy, "neg") && kid_is(&dag, "add"));
        assert!((greedy.estimate_ns - cost_a).abs() < 0.01, "{} vs {cost_a}", greedy.estimate_ns);
        assert!((dag.estimate_ns - cost_b).abs() < 0.01, "{} vs {cost_b}", dag.estimate_ns);
    }

    /// The NPU roofline against numbers worked by hand from npu-x.toml:
    /// 1 GHz, 256 MACs/cycle on a 16×16 array, 16 elementwise outputs per
    /// cycle, SRAM 128 bits × 2 ports = 32 B/cycle, DRAM (weights) 128 bits
    /// × 0.5 = 8 B/cycle, 100 cycles per op, 4000 cycles per handoff.
    #[test]
    fn npu_roofline_by_hand() {
        let m = CostModel::for_target(&Target::find("npu-x").unwrap()).unwrap();
        let f = |d: &[usize]| TensorType::new(DType::F32, d.to_vec());
        // x[8,64] · W[64,48] (W constant): compute 8·64·48/256 = 96 cycles;
        // memory (8·64 + 8·48) B / 32 + 64·48 B / 8 = 28 + 384 = 412 cycles.
        let (x, w, y) = (f(&[1, 8, 64]), f(&[64, 48]), f(&[1, 8, 48]));
        assert_eq!(m.op_ns_with(&Op::MatMul, &[&x, &w], &[false, true], &y), Some(412.0 + 100.0));
        // Both operands computed: all at the SRAM rate: (512 + 3072 + 384) / 32 = 124 cycles.
        assert_eq!(m.op_ns(&Op::MatMul, &[&x, &w], &y), Some(124.0 + 100.0));
        // K = 8 and N = 8 use a quarter of each array side: 64·16·16/256 = 64
        // cycles of compute against (64·8 + 64 + 64·8) / 32 = 34 of memory.
        let (a, b, c) = (f(&[64, 8]), f(&[8, 8]), f(&[64, 8]));
        assert_eq!(m.op_ns(&Op::MatMul, &[&a, &b], &c), Some(64.0 + 100.0));
        // A lookup-table GELU over 4096 elements: 4096 / 16 = 256 cycles.
        let t = f(&[16, 256]);
        assert_eq!(m.op_ns(&Op::Unary(UnaryOp::Gelu), &[&t], &t), Some(256.0 + 100.0));
        // Softmax takes 3 passes: 3 · 256 cycles.
        assert_eq!(m.op_ns(&Op::Softmax { axis: 1 }, &[&t], &t), Some(768.0 + 100.0));
        // Division is not native: the host's time plus the 4 µs handoff.
        let s = f(&[]);
        let div = Op::Binary(nanoc_ir::BinaryOp::Div);
        let Device::Npu(npu) = &m.device else { panic!("npu-x is an NPU") };
        let host = npu.host.op_ns(&div, &[&t, &s], &t).unwrap();
        assert_eq!(m.op_ns(&div, &[&t, &s], &t), Some(host + 4000.0));
        // On the host, constants still stream from the weights' memory: on
        // ethos-u55-256 that is flash at 64 bits × 0.125 = 1 B/cycle at
        // 500 MHz, so a [256, 256] constant divisor takes 65536 × 2 ns to
        // read, more than the host's own estimate; plus 2000 cycles = 4 µs.
        let u55 = CostModel::for_target(&Target::find("ethos-u55-256").unwrap()).unwrap();
        let Device::Npu(u55_npu) = &u55.device else { panic!("ethos-u55-256 is an NPU") };
        let x = f(&[256, 256]);
        assert!(u55_npu.host.op_ns(&div, &[&x, &x], &x).unwrap() < 131_072.0);
        assert_eq!(u55.op_ns_with(&div, &[&x, &x], &[false, true], &x), Some(131_072.0 + 4000.0));
        assert!(!m.runs_natively(&div, &[&t, &s], &[false, true], &t));
        // A 5-D tensor is past max_rank: on the host.
        let big = f(&[1, 2, 2, 2, 2]);
        assert!(!m.runs_natively(&Op::Unary(UnaryOp::Gelu), &[&big], &[false], &big));
        assert_eq!(m.sparsity, vec![Sparsity::TwoOfFour]);
    }

    #[test]
    fn fused_ops_cost_less_than_their_decompositions() {
        let target = Target::find("cpu-x86_64").unwrap();
        let m = CostModel::for_target(&target).unwrap();
        let t = TensorType::new(DType::F32, vec![16usize, 256]);
        let s = TensorType::new(DType::F32, Vec::<usize>::new());
        let unary = |u| m.op_ns(&Op::Unary(u), &[&t], &t).unwrap();
        let bin = |b| m.op_ns(&Op::Binary(b), &[&t, &s], &t).unwrap();
        use nanoc_ir::BinaryOp::*;
        let decomposed = bin(Div) + unary(UnaryOp::Erf) + bin(Add) + bin(Mul) + bin(Mul);
        assert!(unary(UnaryOp::Gelu) < decomposed / 2.0, "{} vs {decomposed}", unary(UnaryOp::Gelu));
        // f16 is not native on the CPU target.
        let h = TensorType::new(DType::F16, vec![16usize, 256]);
        assert_eq!(m.op_ns(&Op::Unary(UnaryOp::Gelu), &[&h], &h), None);
    }

    /// Attention's flops are 2·B·H·Sq·Sk·(D + Dv), and the fused op costs
    /// less than matmul, scale, softmax and matmul.
    #[test]
    fn attention_flops_and_cost() {
        let f = |d: &[usize]| TensorType::new(DType::F32, d.to_vec());
        let (q, k, v, out) = (f(&[2, 4, 7, 8]), f(&[2, 1, 33, 8]), f(&[2, 1, 33, 5]), f(&[2, 4, 7, 5]));
        let op = Op::Attention { scale: 0.5, causal: false };
        assert_eq!(flops(&op, &[&q, &k, &v], &out), 2.0 * (2 * 4 * 7 * 33 * (8 + 5)) as f64);
        let m = CostModel::for_target(&Target::find("cpu-x86_64").unwrap()).unwrap();
        let (kt, s, vv, c) = (f(&[2, 4, 8, 33]), f(&[2, 4, 7, 33]), f(&[2, 4, 33, 5]), f(&[]));
        let decomposed = m.op_ns(&Op::MatMul, &[&q, &kt], &s).unwrap()
            + m.op_ns(&Op::Binary(nanoc_ir::BinaryOp::Mul), &[&s, &c], &s).unwrap()
            + m.op_ns(&Op::Softmax { axis: 3 }, &[&s], &s).unwrap()
            + m.op_ns(&Op::MatMul, &[&s, &vv], &out).unwrap();
        assert!(m.op_ns(&op, &[&q, &k, &v], &out).unwrap() < decomposed);
    }
}
