//! In-process execution with cranelift-jit, for `nanoc run MODEL`.

use super::plan::Region;
use super::{CpuProgram, kernel::kernel_signature};
use crate::{BackendError, Result};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Linkage, Module, default_libcall_names};

type KernelFn = unsafe extern "C" fn(*const *mut u8) -> i32;

/// A program compiled into this process, with its own arena and weights.
pub struct JitModel {
    _module: JITModule,
    fns: Vec<KernelFn>,
    arena: Vec<u64>,
    weights: Vec<u64>,
    program: CpuProgram,
}

impl JitModel {
    /// JIT-compiles every kernel of `program` for the host.
    pub fn new(program: CpuProgram) -> Result<JitModel> {
        let codegen = |kernel: &str, e: &dyn std::fmt::Display| BackendError::Codegen {
            kernel: kernel.into(),
            msg: e.to_string(),
        };
        let isa = program.isa.clone();
        let mut module = JITModule::new(JITBuilder::with_isa(isa.clone(), default_libcall_names()));
        let sig = kernel_signature(isa.default_call_conv());
        let mut ids = Vec::new();
        for k in &program.kernels {
            let id = module.declare_function(&k.name, Linkage::Local, &sig).map_err(|e| codegen(&k.name, &e))?;
            let mut ctx = module.make_context();
            ctx.func = k.func.clone();
            module.define_function(id, &mut ctx).map_err(|e| codegen(&k.name, &e))?;
            ids.push(id);
        }
        module.finalize_definitions().map_err(|e| codegen("<finalize>", &e))?;
        let fns = ids
            .iter()
            .map(|&id| {
                let p = module.get_finalized_function(id);
                // SAFETY: every kernel was built with `kernel_signature`.
                unsafe { std::mem::transmute::<*const u8, KernelFn>(p) }
            })
            .collect();
        let arena = vec![0u64; (program.arena_size as usize).div_ceil(8)];
        let mut weights = vec![0u64; program.weights.len().div_ceil(8)];
        for (i, chunk) in program.weights.chunks(8).enumerate() {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            weights[i] = u64::from_le_bytes(b);
        }
        Ok(JitModel { _module: module, fns, arena, weights, program })
    }

    /// The compiled program.
    pub fn program(&self) -> &CpuProgram {
        &self.program
    }

    /// Runs once: `inputs` are raw little-endian bytes in graph-input order;
    /// returns each output's bytes.
    pub fn run(&mut self, inputs: &[&[u8]]) -> Result<Vec<Vec<u8>>> {
        let p = &self.program;
        if inputs.len() != p.inputs.len() {
            return Err(BackendError::Invalid(format!("expected {} inputs, got {}", p.inputs.len(), inputs.len())));
        }
        let arena = self.arena.as_mut_ptr() as *mut u8;
        for (slot, data) in p.inputs.iter().zip(inputs) {
            if data.len() as u64 != slot.slot.size {
                return Err(BackendError::Invalid(format!(
                    "input `{}` ({}) needs {} bytes, got {}",
                    slot.name,
                    slot.ty,
                    slot.slot.size,
                    data.len()
                )));
            }
            // SAFETY: the plan keeps every slot inside the arena.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), arena.add(slot.slot.offset as usize), data.len()) };
        }
        let weights = self.weights.as_ptr() as *mut u8;
        for step in &p.steps {
            let ptrs: Vec<*mut u8> = step
                .args
                .iter()
                .map(|s| {
                    let base = if s.region == Region::Arena { arena } else { weights };
                    // SAFETY: slots are inside their region by construction.
                    unsafe { base.add(s.offset as usize) }
                })
                .collect();
            // SAFETY: the kernel reads and writes only the slots it was compiled for.
            let status = unsafe { (self.fns[step.kernel])(ptrs.as_ptr()) };
            if status != 0 {
                return Err(BackendError::Run { node: step.node.clone(), msg: super::status_message(status) });
            }
        }
        Ok(p.outputs
            .iter()
            .map(|o| {
                // SAFETY: output slots are inside the arena.
                unsafe { std::slice::from_raw_parts(arena.add(o.slot.offset as usize), o.slot.size as usize).to_vec() }
            })
            .collect())
    }
}
