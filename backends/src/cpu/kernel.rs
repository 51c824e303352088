//! Helpers for writing kernels with cranelift-frontend: the kernel ABI
//! (entry block, argument pointers, status return), counted loops, loop
//! nests, address arithmetic, typed loads and stores.
//!
//! Kernel ABI v1: `extern "C" fn(args: *const *mut u8) -> i32`. `args[0]`
//! is the output buffer, `args[1..]` the operands in order. Returns 0, or a
//! nonzero status (1 = index out of range).

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32, I8, I16, I32, I64};
use cranelift_codegen::ir::{
    AbiParam, BlockArg, Function, InstBuilder, MemFlagsData, Signature, Type, UserFuncName, Value,
};
use cranelift_codegen::isa::{CallConv, TargetFrontendConfig};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use nanoc_ir::DType;

/// Status returned by a kernel when a gathered index is out of range.
pub const STATUS_INDEX_OUT_OF_RANGE: i64 = 1;

/// The signature every kernel has.
pub fn kernel_signature(call_conv: CallConv) -> Signature {
    let mut sig = Signature::new(call_conv);
    sig.params.push(AbiParam::new(I64));
    sig.returns.push(AbiParam::new(I32));
    sig
}

/// A kernel under construction.
pub struct Kb<'a> {
    /// The underlying function builder.
    pub b: FunctionBuilder<'a>,
    args: Vec<Value>,
}

/// Builds one kernel: sets up the entry block, loads `nargs` buffer
/// pointers, runs `body`, returns 0, and finalises the function.
pub fn build_kernel(name_index: u32, cfg: TargetFrontendConfig, nargs: usize, body: impl FnOnce(&mut Kb)) -> Function {
    let mut func =
        Function::with_name_signature(UserFuncName::user(0, name_index), kernel_signature(cfg.default_call_conv));
    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let argv = b.block_params(entry)[0];
        let args = (0..nargs).map(|i| b.ins().load(I64, MemFlagsData::trusted(), argv, (i * 8) as i32)).collect();
        let mut kb = Kb { b, args };
        body(&mut kb);
        let zero = kb.b.ins().iconst(I32, 0);
        kb.b.ins().return_(&[zero]);
        kb.b.seal_all_blocks();
        kb.b.finalize(cfg);
    }
    func
}

/// Cranelift type used to hold one element of `dt` in registers.
pub fn reg_type(dt: DType) -> Option<Type> {
    Some(match dt {
        DType::F32 => F32,
        DType::I64 => I64,
        DType::I32 => I32,
        DType::I8 | DType::U8 | DType::Bool => I8,
        DType::F16 | DType::BF16 => return None,
    })
}

/// Integer type of the same width as `dt`, for raw copies.
pub fn raw_type(dt: DType) -> Type {
    match dt.size_bytes() {
        1 => I8,
        2 => I16,
        4 => I32,
        _ => I64,
    }
}

impl Kb<'_> {
    /// Pointer to buffer argument `i` (0 = output).
    pub fn arg(&self, i: usize) -> Value {
        self.args[i]
    }

    /// An i64 constant.
    pub fn i64c(&mut self, v: i64) -> Value {
        self.b.ins().iconst(I64, v)
    }

    /// An f32 constant.
    pub fn f32c(&mut self, v: f32) -> Value {
        self.b.ins().f32const(v)
    }

    /// Emits `for i in 0..n { body(i) }` (i is i64). Nothing for n = 0; no
    /// loop for n = 1.
    pub fn for_n(&mut self, n: usize, body: &mut dyn FnMut(&mut Self, Value)) {
        match n {
            0 => {}
            1 => {
                let z = self.i64c(0);
                body(self, z);
            }
            _ => {
                let header = self.b.create_block();
                let exit = self.b.create_block();
                self.b.append_block_param(header, I64);
                let z = self.i64c(0);
                self.b.ins().jump(header, &[BlockArg::Value(z)]);
                self.b.switch_to_block(header);
                let i = self.b.block_params(header)[0];
                body(self, i);
                let next = self.b.ins().iadd_imm_s(i, 1);
                let more = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, next, n as i64);
                self.b.ins().brif(more, header, &[BlockArg::Value(next)], exit, &[]);
                self.b.switch_to_block(exit);
            }
        }
    }

    /// Emits a loop nest over `dims` (outermost first); `body` gets one
    /// induction variable per dim.
    pub fn nest(&mut self, dims: &[usize], body: &mut dyn FnMut(&mut Self, &[Value])) {
        let mut ivs = Vec::with_capacity(dims.len());
        self.nest_rec(dims, &mut ivs, body);
    }

    fn nest_rec(&mut self, dims: &[usize], ivs: &mut Vec<Value>, body: &mut dyn FnMut(&mut Self, &[Value])) {
        match dims.split_first() {
            None => body(self, ivs),
            Some((&n, rest)) => self.for_n(n, &mut |kb, i| {
                ivs.push(i);
                kb.nest_rec(rest, ivs, body);
                ivs.pop();
            }),
        }
    }

    /// `base + sum(ivs[d] * strides[d])` as an i64 element index.
    pub fn index(&mut self, base: i64, ivs: &[Value], strides: &[i64]) -> Value {
        let mut acc = self.i64c(base);
        for (&iv, &s) in ivs.iter().zip(strides) {
            if s == 0 {
                continue;
            }
            let t = if s == 1 { iv } else { self.b.ins().imul_imm_s(iv, s) };
            acc = self.b.ins().iadd(acc, t);
        }
        acc
    }

    /// Address of element `idx` (i64) of `size`-byte elements at `ptr`.
    pub fn addr(&mut self, ptr: Value, idx: Value, size: usize) -> Value {
        let off = if size == 1 { idx } else { self.b.ins().imul_imm_s(idx, size as i64) };
        self.b.ins().iadd(ptr, off)
    }

    /// Loads element `idx` of a `dt` buffer, widened to its register type.
    pub fn load(&mut self, dt: DType, ptr: Value, idx: Value) -> Value {
        let a = self.addr(ptr, idx, dt.size_bytes());
        let ty = reg_type(dt).unwrap_or_else(|| raw_type(dt));
        self.b.ins().load(ty, MemFlagsData::trusted(), a, 0)
    }

    /// Stores `v` (register type of `dt`) to element `idx`.
    pub fn store(&mut self, dt: DType, ptr: Value, idx: Value, v: Value) {
        let a = self.addr(ptr, idx, dt.size_bytes());
        self.b.ins().store(MemFlagsData::trusted(), v, a, 0);
    }

    /// Copies one `dt` element between buffers as raw bits.
    pub fn copy_elem(&mut self, dt: DType, src: Value, si: Value, dst: Value, di: Value) {
        let ty = raw_type(dt);
        let sa = self.addr(src, si, dt.size_bytes());
        let v = self.b.ins().load(ty, MemFlagsData::trusted(), sa, 0);
        let da = self.addr(dst, di, dt.size_bytes());
        self.b.ins().store(MemFlagsData::trusted(), v, da, 0);
    }

    /// A fresh mutable variable of type `ty` initialised to `init`.
    pub fn var(&mut self, ty: Type, init: Value) -> Variable {
        let v = self.b.declare_var(ty);
        self.b.def_var(v, init);
        v
    }

    /// Returns `status` from the kernel now if `cond` is true; continues in
    /// a fresh block otherwise.
    pub fn return_if(&mut self, cond: Value, status: i64) {
        let fail = self.b.create_block();
        let cont = self.b.create_block();
        self.b.ins().brif(cond, fail, &[], cont, &[]);
        self.b.switch_to_block(fail);
        let s = self.b.ins().iconst(I32, status);
        self.b.ins().return_(&[s]);
        self.b.switch_to_block(cont);
    }

    /// Runs `body` only when `cond` is true.
    pub fn if_then(&mut self, cond: Value, body: &mut dyn FnMut(&mut Self)) {
        let then = self.b.create_block();
        let cont = self.b.create_block();
        self.b.ins().brif(cond, then, &[], cont, &[]);
        self.b.switch_to_block(then);
        body(self);
        self.b.ins().jump(cont, &[]);
        self.b.switch_to_block(cont);
    }
}
