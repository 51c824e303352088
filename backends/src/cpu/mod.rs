//! The CPU backend: one Cranelift kernel per IR node, a static memory plan
//! over one arena, and machine code for the JIT or for `.nanob` bundles.
//!
//! Pipeline: [`compile`] walks the graph in topological order, plans
//! memory (`plan.rs`), and builds each node's kernel with the emitter
//! table (`emit/`), whose loops and math live in `kernel.rs` and `math.rs`.
//! [`CpuProgram::machine_code`] compiles the kernels to position-independent
//! code without relocations; [`jit::JitModel`] runs them in-process.

mod emit;
pub mod jit;
pub mod kernel;
pub mod math;
pub mod object;
pub mod plan;

use crate::{BackendError, Result};
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::Function;
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use nanoc_ir::{Graph, Node, NodeId, Op, TensorType};
use nanoc_targets::Target;
use plan::{ArenaAlloc, Region, Slot, WeightsBlob};
use std::collections::HashMap;

/// One kernel: its name (the node it computes) and its Cranelift function.
pub struct Kernel {
    /// Kernel name (`k3_<node name>`).
    pub name: String,
    /// The Cranelift IR.
    pub func: Function,
}

/// A kernel invocation in the plan.
#[derive(Clone, Debug)]
pub struct Step {
    /// Index into [`CpuProgram::kernels`].
    pub kernel: usize,
    /// The node it computes.
    pub node: String,
    /// Buffers: output first, then operands.
    pub args: Vec<Slot>,
}

/// A graph input or output and where it lives in the arena.
#[derive(Clone, Debug)]
pub struct IoSlot {
    /// Name.
    pub name: String,
    /// Type.
    pub ty: TensorType,
    /// Arena slot.
    pub slot: Slot,
}

/// A compiled graph: kernels, the plan, and the constants.
pub struct CpuProgram {
    /// Target descriptor name.
    pub target: String,
    /// Target triple of the code.
    pub triple: String,
    /// The ISA the kernels are compiled for.
    pub isa: OwnedTargetIsa,
    /// Kernels, one per computing node.
    pub kernels: Vec<Kernel>,
    /// Kernel calls in execution order.
    pub steps: Vec<Step>,
    /// Graph inputs.
    pub inputs: Vec<IoSlot>,
    /// Graph outputs.
    pub outputs: Vec<IoSlot>,
    /// Arena size in bytes.
    pub arena_size: u64,
    /// The weights blob.
    pub weights: Vec<u8>,
}

/// Human-readable meaning of a nonzero kernel status.
pub fn status_message(status: i32) -> String {
    match status as i64 {
        kernel::STATUS_INDEX_OUT_OF_RANGE => "index out of range".into(),
        2 => "integer division by zero".into(),
        s => format!("kernel error {s}"),
    }
}

/// Builds the Cranelift ISA for a CPU target. `host` uses the host's
/// detected features (for the JIT); otherwise the target's baseline plus
/// its descriptor's `isa_flags`.
pub fn isa_for(target: &Target, host: bool) -> Result<OwnedTargetIsa> {
    let terr = |msg: String| BackendError::Target { target: target.name.clone(), msg };
    let cpu = target.cpu().ok_or_else(|| terr("not a CPU target".into()))?;
    let mut flags = settings::builder();
    // cranelift-jit needs is_pic=false; bundle code has no relocations either way.
    let pic = if host { "false" } else { "true" };
    for (k, v) in [("opt_level", "speed"), ("is_pic", pic), ("enable_verifier", "true")] {
        flags.set(k, v).map_err(|e| terr(format!("cranelift flag {k}: {e}")))?;
    }
    let host_arch = std::env::consts::ARCH;
    let mut isa_b = if host && cpu.arch == host_arch {
        cranelift_native::builder().map_err(|e| terr(e.to_string()))?
    } else {
        cranelift_codegen::isa::lookup_by_name(&cpu.triple)
            .map_err(|e| terr(format!("triple `{}`: {e}", cpu.triple)))?
    };
    for f in &cpu.isa_flags {
        isa_b.enable(f).map_err(|e| terr(format!("isa flag `{f}`: {e}")))?;
    }
    isa_b.finish(settings::Flags::new(flags)).map_err(|e| terr(e.to_string()))
}

/// Compiles a verified graph for a CPU target. `host` selects host CPU
/// features (JIT) rather than the descriptor's baseline (bundles).
pub fn compile(g: &Graph, target: &Target, host: bool) -> Result<CpuProgram> {
    let isa = isa_for(target, host)?;
    let cpu = target
        .cpu()
        .ok_or_else(|| BackendError::Target { target: target.name.clone(), msg: "not a CPU target".into() })?;
    let order = g.topo_order().map_err(|e| BackendError::Invalid(e.to_string()))?;
    let last = plan::last_uses(g, &order);
    let mut arena = ArenaAlloc::default();
    let mut blob = WeightsBlob::default();
    let mut slots: HashMap<NodeId, Slot> = HashMap::new();
    let mut kernels = Vec::new();
    let mut steps = Vec::new();
    let mut unsupported = Vec::new();
    let cfg = isa.frontend_config();

    // Inputs are live from the start.
    for &id in g.inputs() {
        let n = g.node(id);
        let size = n.ty.byte_len() as u64;
        slots.insert(id, Slot { region: Region::Arena, offset: arena.alloc(size), size });
    }
    for (pos, &id) in order.iter().enumerate() {
        let n = g.node(id);
        match &n.op {
            Op::Input => continue,
            Op::Const(t) => {
                let size = t.bytes().len() as u64;
                slots.insert(id, Slot { region: Region::Weights, offset: blob.push(t.bytes()), size });
                continue;
            }
            _ => {}
        }
        let args = g.args(id);
        let arg_tys: Vec<&TensorType> = args.iter().map(|&a| &g.node(a).ty).collect();
        let size = n.ty.byte_len() as u64;
        let out = Slot { region: Region::Arena, offset: arena.alloc(size), size };
        slots.insert(id, out);
        let mut step_args = vec![out];
        step_args.extend(args.iter().map(|a| slots[a]));
        let index = kernels.len() as u32;
        let mut err = None;
        let func = kernel::build_kernel(index, cfg, 1 + args.len(), |kb| {
            if let Err(e) = emit::emit(kb, n, &arg_tys) {
                err = Some(e);
            }
        });
        if let Some(e) = err {
            unsupported.push(format!("node `{}` ({}): {e}", n.name, n.op.name()));
        } else {
            steps.push(Step { kernel: kernels.len(), node: n.name.clone(), args: step_args });
            kernels.push(Kernel { name: kernel_name(kernels.len(), n), func });
        }
        // Free operands whose last use was this step.
        for a in args.iter().collect::<std::collections::BTreeSet<_>>() {
            if last.get(a) == Some(&pos) && slots[a].region == Region::Arena && !g.inputs().contains(a) {
                arena.release(slots[a].offset, slots[a].size);
            }
        }
    }
    if !unsupported.is_empty() {
        return Err(BackendError::Unsupported { backend: "cpu", nodes: unsupported });
    }
    // Outputs that are leaves (an input or a folded constant) need a copy
    // into their own arena slot.
    let mut outputs = Vec::new();
    for (name, id) in g.outputs() {
        let n = g.node(*id);
        let slot = match &n.op {
            Op::Input | Op::Const(_) => {
                let size = n.ty.byte_len() as u64;
                let out = Slot { region: Region::Arena, offset: arena.alloc(size), size };
                let copy = Node { name: format!("{name}/copy"), op: Op::Reshape, ty: n.ty.clone() };
                let index = kernels.len() as u32;
                let func = kernel::build_kernel(index, cfg, 2, |kb| {
                    let _ = emit::emit(kb, &copy, &[&n.ty]);
                });
                steps.push(Step { kernel: kernels.len(), node: copy.name.clone(), args: vec![out, slots[id]] });
                kernels.push(Kernel { name: kernel_name(kernels.len(), &copy), func });
                out
            }
            _ => slots[id],
        };
        outputs.push(IoSlot { name: name.clone(), ty: n.ty.clone(), slot });
    }
    let inputs = g
        .inputs()
        .iter()
        .map(|&id| IoSlot { name: g.node(id).name.clone(), ty: g.node(id).ty.clone(), slot: slots[&id] })
        .collect();
    Ok(CpuProgram {
        target: target.name.clone(),
        triple: cpu.triple.clone(),
        isa,
        kernels,
        steps,
        inputs,
        outputs,
        arena_size: arena.size,
        weights: blob.bytes,
    })
}

/// `k<index>_<node name>` with the name reduced to identifier characters.
fn kernel_name(index: usize, n: &Node) -> String {
    let clean: String = n.name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("k{index}_{clean}")
}

impl CpuProgram {
    /// The Cranelift IR of every kernel, as text (`--emit clif`).
    pub fn clif(&self) -> String {
        let mut s = String::new();
        for (k, step) in self.kernels.iter().zip(&self.steps) {
            s.push_str(&format!("; kernel {} (node `{}`)\n{}\n", k.name, step.node, k.func.display()));
        }
        s
    }

    /// Compiles every kernel to machine code for the bundle. The code must
    /// be position independent with no relocations; anything else is an
    /// error (it would need a linker).
    pub fn machine_code(&self) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::with_capacity(self.kernels.len());
        for k in &self.kernels {
            let mut ctx = cranelift_codegen::Context::for_function(k.func.clone());
            let code = ctx
                .compile(&*self.isa, &mut ControlPlane::default())
                .map_err(|e| BackendError::Codegen { kernel: k.name.clone(), msg: format!("{:?}", e.inner) })?;
            if !code.buffer.relocs().is_empty() {
                return Err(BackendError::Codegen {
                    kernel: k.name.clone(),
                    msg: format!(
                        "kernel needs {} relocation(s); bundles require self-contained code",
                        code.buffer.relocs().len()
                    ),
                });
            }
            out.push(code.code_buffer().to_vec());
        }
        Ok(out)
    }
}
