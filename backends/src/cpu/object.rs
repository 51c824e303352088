//! Relocatable object files with a C header (`nanoc compile --emit obj`):
//! a compiled model linked straight into a C program, without the runtime.
//!
//! [`emit_object`] turns a [`CpuProgram`] into one object file (ELF for the
//! Linux triples of `targets/`) and the text of its header:
//!
//! - every kernel of the program, compiled from the same Cranelift functions
//!   as bundles and the JIT, as a local function `<prefix>_k<i>_<node>`;
//! - the weights blob as a local read-only data object `<prefix>_weights`
//!   (`.rodata`, 64-byte aligned, so every constant keeps the 64-byte
//!   alignment the plan gave it);
//! - one exported function, generated here with Cranelift:
//!   `int <prefix>_run(const void *const *inputs, void *const *outputs, void *scratch)`.
//!   It checks its arguments, copies the inputs into their arena slots in
//!   `scratch`, calls the kernels in plan order with argument arrays built on
//!   its stack (arena slots are `scratch + offset`, constants
//!   `<prefix>_weights + offset`), returns the first nonzero kernel status,
//!   and on success copies the outputs out of the arena.
//!
//! `<prefix>_run` is the object's only global symbol, so objects with
//! different prefixes link into one program. The object refers to nothing
//! outside itself (no libc, no `memcpy`: the copies are inline loops; a
//! kernel that would need a library call is an error, as for bundles), and
//! every reference inside it is PC-relative (below).
//!
//! ISA and PIC. The program must be compiled for the target's baseline
//! (`cpu::compile(g, target, false)`, as for bundles), whose ISA has
//! `is_pic=true` and no host features; a JIT program (`host = true`, may use
//! the build machine's CPU features) is refused, recognised by its
//! `is_pic=false`. The kernels are compiled with the program's ISA, so their
//! machine code is byte for byte a bundle's (no relocations, checked).
//! cranelift-object itself accepts PIC and non-PIC ISAs, but with
//! `is_pic=true` Cranelift reaches every symbol, even a local one, through
//! the GOT (`R_X86_64_GOTPCREL`, `R_AARCH64_ADR_GOT_PAGE`), which costs a GOT
//! entry and, in a PIE, a dynamic relocation. So the object module (which
//! compiles only the entry point) uses the same ISA with `is_pic=false`:
//! local symbols are "colocated", hence near, and non-PIC code reaches near
//! symbols PC-relatively (`call`/`lea rip+rel32` on x86-64, `bl`/`adrp+add`
//! on aarch64). The result is position independent without a GOT: it links
//! into PIEs, static executables and firmware images alike.

use super::CpuProgram;
use super::kernel::kernel_signature;
use super::plan::{ALIGN, Region};
use crate::{BackendError, Result};
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{I8, I16, I32, I64};
use cranelift_codegen::ir::{
    AbiParam, Block, BlockArg, Function, InstBuilder, MemFlagsData, Signature, StackSlotData, StackSlotKind,
    UserFuncName, Value,
};
use cranelift_codegen::isa::{self, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::{Context, FinalizedRelocTarget};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{DataDescription, DataId, FuncId, Linkage, Module, default_libcall_names};
use cranelift_object::{ObjectBuilder, ObjectModule};
use nanoc_ir::DType;

/// An object file and its C header.
#[derive(Clone, Debug)]
pub struct ObjectFiles {
    /// The relocatable object (`<name>.o`).
    pub object: Vec<u8>,
    /// The C header (`<name>.h`).
    pub header: String,
}

/// Status `<prefix>_run` returns for a NULL pointer argument or a scratch
/// buffer that is not [`SCRATCH_ALIGN`]-byte aligned (`<PREFIX>_ERR_BAD_ARGUMENT`).
pub const STATUS_BAD_ARGUMENT: i32 = -1;

/// Alignment the scratch buffer must have (the arena's slot alignment).
pub const SCRATCH_ALIGN: u64 = ALIGN;

/// True if `prefix` can name the object's symbols: an ASCII letter, then
/// letters, digits and `_`.
pub fn is_valid_prefix(prefix: &str) -> bool {
    let mut chars = prefix.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic()) && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The default prefix for an output file stem: every character that is not
/// an ASCII letter, digit or `_` becomes `_`, and `m_` is put in front when
/// the result does not start with a letter (`"model"` for an empty stem).
/// `my-model.v2` → `my_model_v2`, `2layer` → `m_2layer`.
pub fn prefix_from_stem(stem: &str) -> String {
    let clean: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if clean.is_empty() {
        "model".into()
    } else if clean.starts_with(|c: char| c.is_ascii_alphabetic()) {
        clean
    } else {
        format!("m_{clean}")
    }
}

fn module_err(what: &str, e: impl std::fmt::Debug) -> BackendError {
    BackendError::Codegen { kernel: what.into(), msg: format!("{e:?}") }
}

/// Compiles `prog` into a relocatable object whose symbols all start with
/// `prefix` (see [`is_valid_prefix`]), and writes its C header. See the
/// module documentation for what the object holds.
pub fn emit_object(prog: &CpuProgram, prefix: &str) -> Result<ObjectFiles> {
    if !is_valid_prefix(prefix) {
        return Err(BackendError::Invalid(format!(
            "symbol prefix `{prefix}`: must be a C identifier starting with a letter (letters, digits, `_`)"
        )));
    }
    let isa = prog.isa.clone();
    let terr = |msg: &str| BackendError::Target { target: prog.target.clone(), msg: msg.into() };
    if isa.pointer_type() != I64 {
        return Err(terr("object files need a 64-bit target"));
    }
    if !isa.flags().is_pic() {
        return Err(terr(
            "object files need a program compiled for the target baseline (cpu::compile with host = false), \
             not for the JIT",
        ));
    }
    // The module's ISA: the program's, with is_pic=false, for the entry
    // point (see the module documentation).
    let builder = ObjectBuilder::new(non_pic(&isa).map_err(|e| terr(&e))?, prefix, default_libcall_names())
        .map_err(|e| terr(&format!("cranelift-object: {e}")))?;
    let mut module = ObjectModule::new(builder);

    // Kernels: the program's Cranelift functions compiled with the program's
    // ISA (the same machine code as in a bundle), as local functions.
    let sig = kernel_signature(isa.default_call_conv());
    let mut kernel_ids = Vec::with_capacity(prog.kernels.len());
    for k in &prog.kernels {
        let name = format!("{prefix}_{}", k.name);
        let id = module.declare_function(&name, Linkage::Local, &sig).map_err(|e| module_err(&k.name, e))?;
        let mut ctx = Context::for_function(k.func.clone());
        let code = ctx
            .compile(&*isa, &mut ControlPlane::default())
            .map_err(|e| BackendError::Codegen { kernel: k.name.clone(), msg: format!("{:?}", e.inner) })?;
        if !code.buffer.relocs().is_empty() {
            return Err(BackendError::Codegen {
                kernel: k.name.clone(),
                msg: format!(
                    "kernel needs {} relocation(s); kernels must be self-contained code",
                    code.buffer.relocs().len()
                ),
            });
        }
        module
            .define_function_bytes(id, code.buffer.alignment as u64, code.code_buffer(), &[])
            .map_err(|e| module_err(&k.name, e))?;
        kernel_ids.push(id);
    }

    // The weights blob, read-only, 64-byte aligned.
    let weights = if prog.weights.is_empty() {
        None
    } else {
        let name = format!("{prefix}_weights");
        let id = module.declare_data(&name, Linkage::Local, false, false).map_err(|e| module_err(&name, e))?;
        let mut data = DataDescription::new();
        data.define(prog.weights.clone().into_boxed_slice());
        data.set_align(ALIGN);
        module.define_data(id, &data).map_err(|e| module_err(&name, e))?;
        Some(id)
    };

    // The entry point.
    let run_name = format!("{prefix}_run");
    let mut run_sig = Signature::new(isa.default_call_conv());
    run_sig.params.extend([AbiParam::new(I64); 3]);
    run_sig.returns.push(AbiParam::new(I32));
    let run_id = module.declare_function(&run_name, Linkage::Export, &run_sig).map_err(|e| module_err(&run_name, e))?;
    let mut ctx = module.make_context();
    ctx.func = Function::with_name_signature(UserFuncName::user(0, run_id.as_u32()), run_sig);
    build_driver(&mut module, &mut ctx.func, prog, &kernel_ids, weights);
    module.define_function(run_id, &mut ctx).map_err(|e| module_err(&run_name, e))?;
    if let Some(code) = ctx.compiled_code()
        && let Some(r) =
            code.buffer.relocs().iter().find(|r| !matches!(r.target, FinalizedRelocTarget::ExternalName(_)))
    {
        return Err(BackendError::Codegen {
            kernel: run_name,
            msg: format!("entry point needs a library call ({:?})", r.target),
        });
    }

    let object = module.finish().emit().map_err(|e| terr(&format!("writing the object file: {e}")))?;
    Ok(ObjectFiles { object, header: header(prog, prefix) })
}

/// `isa` with `is_pic=false` and every other setting kept.
fn non_pic(isa: &OwnedTargetIsa) -> std::result::Result<OwnedTargetIsa, String> {
    let mut shared = settings::builder();
    for v in isa.flags().iter() {
        let value = if v.name == "is_pic" { "false".to_string() } else { v.value_string() };
        shared.set(v.name, &value).map_err(|e| format!("cranelift flag {}: {e}", v.name))?;
    }
    let mut b = isa::lookup(isa.triple().clone()).map_err(|e| e.to_string())?;
    for v in isa.isa_flags() {
        b.set(v.name, &v.value_string()).map_err(|e| format!("isa flag {}: {e}", v.name))?;
    }
    b.finish(settings::Flags::new(shared)).map_err(|e| e.to_string())
}

/// Memory flags for the caller's buffers: no alignment is assumed.
fn user_mem() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// Continues in a fresh block when `cond` is false; jumps to `fail` with
/// `status` otherwise.
fn fail_if(b: &mut FunctionBuilder, cond: Value, fail: Block, status: Value) {
    let cont = b.create_block();
    b.ins().brif(cond, fail, &[BlockArg::Value(status)], cont, &[]);
    b.switch_to_block(cont);
}

fn offset(b: &mut FunctionBuilder, base: Value, off: u64) -> Value {
    if off == 0 { base } else { b.ins().iadd_imm_s(base, off as i64) }
}

/// Copies `size` bytes from `src` to `dst` (no alignment assumed): a loop
/// of 8-byte moves, then the tail. Inline, so the object needs no `memcpy`.
fn copy_bytes(b: &mut FunctionBuilder, dst: Value, src: Value, size: u64) {
    let words = size / 8;
    if words <= 8 {
        for w in 0..words {
            let v = b.ins().load(I64, user_mem(), src, (w * 8) as i32);
            b.ins().store(user_mem(), v, dst, (w * 8) as i32);
        }
    } else {
        let header = b.create_block();
        let exit = b.create_block();
        b.append_block_param(header, I64);
        let zero = b.ins().iconst(I64, 0);
        b.ins().jump(header, &[BlockArg::Value(zero)]);
        b.switch_to_block(header);
        let i = b.block_params(header)[0];
        let s = b.ins().iadd(src, i);
        let d = b.ins().iadd(dst, i);
        let v = b.ins().load(I64, user_mem(), s, 0);
        b.ins().store(user_mem(), v, d, 0);
        let next = b.ins().iadd_imm_s(i, 8);
        let more = b.ins().icmp_imm_s(IntCC::UnsignedLessThan, next, (words * 8) as i64);
        b.ins().brif(more, header, &[BlockArg::Value(next)], exit, &[]);
        b.switch_to_block(exit);
    }
    let mut off = words * 8;
    for (n, ty) in [(4u64, I32), (2, I16), (1, I8)] {
        if (size - off) >= n {
            let s = offset(b, src, off);
            let d = offset(b, dst, off);
            let v = b.ins().load(ty, user_mem(), s, 0);
            b.ins().store(user_mem(), v, d, 0);
            off += n;
        }
    }
}

/// Builds `<prefix>_run(inputs, outputs, scratch) -> i32`.
fn build_driver(
    module: &mut ObjectModule,
    func: &mut Function,
    prog: &CpuProgram,
    kernel_ids: &[FuncId],
    weights: Option<DataId>,
) {
    let cfg = module.isa().frontend_config();
    let kernels: Vec<_> = kernel_ids.iter().map(|&id| module.declare_func_in_func(id, func)).collect();
    let weights_gv = weights.map(|id| module.declare_data_in_func(id, func));
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(func, &mut fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let [inputs, outputs, scratch] = [0, 1, 2].map(|i| b.block_params(entry)[i]);
    let fail = b.create_block();
    b.append_block_param(fail, I32);

    // Arguments: scratch non-NULL and aligned, every buffer pointer non-NULL.
    let bad = b.ins().iconst(I32, STATUS_BAD_ARGUMENT as i64);
    let low = b.ins().band_imm_s(scratch, (SCRATCH_ALIGN - 1) as i64);
    let misaligned = b.ins().icmp_imm_s(IntCC::NotEqual, low, 0);
    let null = b.ins().icmp_imm_s(IntCC::Equal, scratch, 0);
    let bad_scratch = b.ins().bor(misaligned, null);
    fail_if(&mut b, bad_scratch, fail, bad);
    let pointers = |b: &mut FunctionBuilder, array: Value, n: usize| -> Vec<Value> {
        if n == 0 {
            return Vec::new();
        }
        let null = b.ins().icmp_imm_s(IntCC::Equal, array, 0);
        fail_if(b, null, fail, bad);
        (0..n)
            .map(|i| {
                let p = b.ins().load(I64, user_mem(), array, (i * 8) as i32);
                let null = b.ins().icmp_imm_s(IntCC::Equal, p, 0);
                fail_if(b, null, fail, bad);
                p
            })
            .collect()
    };
    let in_ptrs = pointers(&mut b, inputs, prog.inputs.len());
    let out_ptrs = pointers(&mut b, outputs, prog.outputs.len());

    // Inputs into the arena.
    for (io, &src) in prog.inputs.iter().zip(&in_ptrs) {
        let dst = offset(&mut b, scratch, io.slot.offset);
        copy_bytes(&mut b, dst, src, io.slot.size);
    }

    // The kernels, in plan order, each with its argument array on the stack.
    let max_args = prog.steps.iter().map(|s| s.args.len()).max().unwrap_or(0).max(1);
    let argv_slot =
        b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, (max_args * 8) as u32, 3));
    let weights_base = weights_gv.map(|gv| b.ins().symbol_value(I64, gv));
    for step in &prog.steps {
        for (j, slot) in step.args.iter().enumerate() {
            let base = match (slot.region, weights_base) {
                (Region::Arena, _) => scratch,
                (Region::Weights, Some(w)) => w,
                // A constant slot with an empty blob is zero-sized: any pointer will do.
                (Region::Weights, None) => scratch,
            };
            let p = offset(&mut b, base, slot.offset);
            b.ins().stack_store(I64, p, argv_slot, (j * 8) as i32);
        }
        let argv = b.ins().stack_addr(I64, argv_slot, 0);
        let call = b.ins().call(kernels[step.kernel], &[argv]);
        let status = b.inst_results(call)[0];
        let failed = b.ins().icmp_imm_s(IntCC::NotEqual, status, 0);
        fail_if(&mut b, failed, fail, status);
    }

    // Outputs out of the arena.
    for (io, &dst) in prog.outputs.iter().zip(&out_ptrs) {
        let src = offset(&mut b, scratch, io.slot.offset);
        copy_bytes(&mut b, dst, src, io.slot.size);
    }
    let ok = b.ins().iconst(I32, 0);
    b.ins().return_(&[ok]);

    b.switch_to_block(fail);
    let status = b.block_params(fail)[0];
    b.ins().return_(&[status]);
    b.seal_all_blocks();
    b.finalize(cfg);
}

/// C element type and `NANOC_DTYPE_*` code of a dtype (the runtime API's codes).
fn c_type(dt: DType) -> (&'static str, &'static str) {
    match dt {
        DType::F32 => ("float", "NANOC_DTYPE_F32"),
        DType::F16 => ("uint16_t", "NANOC_DTYPE_F16"),
        DType::BF16 => ("uint16_t", "NANOC_DTYPE_BF16"),
        DType::I8 => ("int8_t", "NANOC_DTYPE_I8"),
        DType::U8 => ("uint8_t", "NANOC_DTYPE_U8"),
        DType::I32 => ("int32_t", "NANOC_DTYPE_I32"),
        DType::I64 => ("int64_t", "NANOC_DTYPE_I64"),
        DType::Bool => ("uint8_t", "NANOC_DTYPE_BOOL"),
    }
}

/// A C string literal for `s` (non-printable and non-ASCII bytes as
/// three-digit octal escapes).
fn c_string(s: &str) -> String {
    let mut out = String::from("\"");
    for &byte in s.as_bytes() {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'?' => out.push_str("\\?"), // no trigraphs
            0x20..=0x7e => out.push(byte as char),
            _ => out.push_str(&format!("\\{byte:03o}")),
        }
    }
    out.push('"');
    out
}

/// Text safe inside a `/* */` comment.
fn c_comment(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect::<String>().replace("*/", "*?/")
}

/// The lower-case identifier form of a tensor name, for parameter names.
fn c_ident(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
}

/// The C header of the object [`emit_object`] writes for `prog` and `prefix`.
pub fn header(prog: &CpuProgram, prefix: &str) -> String {
    use std::fmt::Write;
    let p = prefix;
    let up = prefix.to_ascii_uppercase();
    let mut h = String::new();
    let tensor_desc =
        |io: &super::IoSlot| format!("`{}` {}{:?}", c_comment(&io.name), io.ty.dtype.name(), io.ty.shape.0);
    let _ = writeln!(h, "/* Generated by nanoc: the C interface of a model compiled to an object file");
    let _ = writeln!(
        h,
        " * with symbol prefix `{p}`, for target `{}` ({}). Do not edit.",
        c_comment(&prog.target),
        c_comment(&prog.triple)
    );
    h.push_str(&format!(
        r#" *
 * int {p}_run(const void *const *inputs, void *const *outputs, void *scratch);
 *   Runs the model once. inputs[i] points to input i ({up}_INPUT_<i>_SIZE
 *   bytes, any alignment) and outputs[i] to a buffer for output i
 *   ({up}_OUTPUT_<i>_SIZE bytes). scratch is {up}_SCRATCH_SIZE bytes of
 *   memory aligned to {up}_SCRATCH_ALIGN bytes; it needs no initialising and
 *   is not needed after the call. The inputs are copied into scratch before
 *   the first kernel and the outputs are copied out after the last one, so
 *   the output buffers are written only when the run succeeds and may alias
 *   the inputs. Returns {up}_OK, or the status of the first kernel that
 *   failed, or {up}_ERR_BAD_ARGUMENT for a NULL pointer or a misaligned
 *   scratch. The function allocates nothing and uses no globals but the
 *   read-only weights: calls with distinct scratch buffers may run
 *   concurrently. {p}_run_typed below is the same call with one typed
 *   pointer per tensor.
 *
 * The object defines no other global symbol and needs none: the weights
 * ({up}_WEIGHTS_SIZE bytes) are in its read-only data.
 */
"#
    ));
    let guard = format!("{up}_H_NANOC");
    let _ = writeln!(h, "#ifndef {guard}\n#define {guard}\n");
    h.push_str("#include <stddef.h>\n#include <stdint.h>\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
    h.push_str("/* Element type codes, the same as the runtime API's (nanoc_runtime.h). */\n#ifndef NANOC_DTYPE_F32\n");
    for (name, code) in [("F32", 1), ("F16", 2), ("BF16", 3), ("I8", 4), ("U8", 5), ("I32", 6), ("I64", 7)] {
        let _ = writeln!(h, "#define NANOC_DTYPE_{name} {code}");
    }
    h.push_str("#define NANOC_DTYPE_BOOL 8 /* one byte, 0 or 1 */\n#endif\n\n");

    let _ = writeln!(h, "/* Status codes of {p}_run. */");
    let _ = writeln!(h, "#define {up}_OK 0");
    let _ = writeln!(h, "#define {up}_ERR_INDEX_OUT_OF_RANGE 1 /* a gathered/scattered index was out of range */");
    let _ = writeln!(h, "#define {up}_ERR_DIV_BY_ZERO 2 /* integer division by zero */");
    let _ =
        writeln!(h, "#define {up}_ERR_BAD_ARGUMENT ({STATUS_BAD_ARGUMENT}) /* NULL pointer or misaligned scratch */");
    h.push('\n');
    let _ = writeln!(h, "#define {up}_SCRATCH_SIZE {}u", prog.arena_size);
    let _ = writeln!(h, "#define {up}_SCRATCH_ALIGN {SCRATCH_ALIGN}u");
    let _ = writeln!(h, "#define {up}_WEIGHTS_SIZE {}u", prog.weights.len());
    let _ = writeln!(h, "#define {up}_NUM_INPUTS {}", prog.inputs.len());
    let _ = writeln!(h, "#define {up}_NUM_OUTPUTS {}", prog.outputs.len());
    for (kind, list) in [("INPUT", &prog.inputs), ("OUTPUT", &prog.outputs)] {
        for (i, io) in list.iter().enumerate() {
            let m = format!("{up}_{kind}_{i}");
            let (cty, code) = c_type(io.ty.dtype);
            let dims = &io.ty.shape.0;
            let _ = writeln!(h, "\n/* {} {i}: {} */", kind.to_ascii_lowercase(), tensor_desc(io));
            let _ = writeln!(h, "#define {m}_NAME {}", c_string(&io.name));
            let _ = writeln!(h, "#define {m}_DTYPE {code}");
            let _ = writeln!(h, "#define {m}_CTYPE {cty}");
            let _ = writeln!(h, "#define {m}_RANK {}", dims.len());
            let list = dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
            let _ =
                writeln!(h, "#define {m}_SHAPE {{{}}} /* initializer */", if dims.is_empty() { "0" } else { &list });
            for (d, n) in dims.iter().enumerate() {
                let _ = writeln!(h, "#define {m}_DIM_{d} {n}");
            }
            let _ = writeln!(h, "#define {m}_NUMEL {}", io.ty.shape.numel());
            let _ = writeln!(h, "#define {m}_SIZE {}u", io.slot.size);
        }
    }

    let _ = writeln!(h, "\n/* The entry point, defined in the object file. */");
    let _ = writeln!(h, "int {p}_run(const void *const *inputs, void *const *outputs, void *scratch);\n");
    let mut params = Vec::new();
    let mut ins = Vec::new();
    let mut outs = Vec::new();
    for (i, io) in prog.inputs.iter().enumerate() {
        let name = format!("in{i}_{}", c_ident(&io.name));
        params.push(format!("const {} *{name}", c_type(io.ty.dtype).0));
        ins.push(name);
    }
    for (i, io) in prog.outputs.iter().enumerate() {
        let name = format!("out{i}_{}", c_ident(&io.name));
        params.push(format!("{} *{name}", c_type(io.ty.dtype).0));
        outs.push(name);
    }
    params.push("void *scratch".into());
    let array = |v: &[String]| if v.is_empty() { "{0}".to_string() } else { format!("{{{}}}", v.join(", ")) };
    let _ = writeln!(h, "/* {p}_run with one pointer per tensor, in signature order. */");
    let _ = writeln!(h, "static inline int {p}_run_typed({}) {{", params.join(", "));
    let _ = writeln!(h, "    const void *const inputs[] = {};", array(&ins));
    let _ = writeln!(h, "    void *const outputs[] = {};", array(&outs));
    let _ = writeln!(h, "    return {p}_run(inputs, outputs, scratch);\n}}\n");
    let _ = writeln!(h, "#ifdef __cplusplus\n}}\n#endif\n\n#endif /* {guard} */");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert!(is_valid_prefix("mlp_2"));
        for bad in ["", "2x", "_x", "a-b", "a b", "é"] {
            assert!(!is_valid_prefix(bad), "{bad}");
        }
        assert_eq!(prefix_from_stem("my-model.v2"), "my_model_v2");
        assert_eq!(prefix_from_stem("2layer"), "m_2layer");
        assert_eq!(prefix_from_stem("_x"), "m__x");
        assert_eq!(prefix_from_stem(""), "model");
        for s in ["my-model.v2", "2layer", "", "_", "ü"] {
            assert!(is_valid_prefix(&prefix_from_stem(s)), "{s}");
        }
    }

    #[test]
    fn c_literals() {
        assert_eq!(c_string("a\"b\\c?\n"), "\"a\\\"b\\\\c\\?\\012\"");
        assert_eq!(c_comment("x*/y\n"), "x*?/y?");
    }
}
