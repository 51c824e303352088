//! Fused elementwise programs: the body of [`Op::Fused`](super::Op::Fused)
//! and the epilogue of [`Op::MatMulEpilogue`](super::Op::MatMulEpilogue).
//!
//! A [`Program`] is a straight-line list of elementwise steps (unary,
//! binary with numpy broadcasting, clip, cast, where); each step reads
//! operands of the fused op (`x0`, `x1`, ...) or results of earlier steps
//! (`t0`, `t1`, ...), and the last step is the result. Its meaning is the
//! unfused graph it was made from: every step is the IR op of the same
//! name, so the reference interpreter evaluates it step by step.
//!
//! Text form (the `body`/`epilogue` attribute, a quoted string): the steps
//! separated by commas, each written like an `.ngraph` op with its
//! attributes: `"sigmoid(x0), mul(x0, t0), clip{min=0.0, max=6.0}(t1)"`.

use super::{Op, TensorType};
use std::fmt;

/// Where a step reads a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arg {
    /// Operand `i` of the fused op (`x<i>` in text).
    Operand(usize),
    /// The result of step `i` (`t<i>` in text), an earlier step.
    Step(usize),
}

/// One step: an elementwise op over earlier values.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The op (unary, binary, clip, cast or where).
    pub op: Op,
    /// Its operands.
    pub args: Vec<Arg>,
}

/// A straight-line elementwise program; the last step is its result.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Program {
    /// The steps, in evaluation order.
    pub steps: Vec<Step>,
}

/// True for the ops a program may contain: elementwise ops whose output
/// element depends only on the same-index operand elements.
pub fn is_fusable(op: &Op) -> bool {
    matches!(op, Op::Unary(_) | Op::Binary(_) | Op::Clip { .. } | Op::Cast { .. } | Op::Where)
}

impl Program {
    /// The type of every step for operands of types `operands`, after
    /// checking the program: at least one step, only fusable ops, every
    /// argument an operand or an earlier step, each step type-checks, every
    /// step but the last is used by a later one and every operand is used
    /// (so every intermediate broadcasts to the result's shape).
    pub fn step_types(&self, operands: &[&TensorType]) -> Result<Vec<TensorType>, String> {
        if self.steps.is_empty() {
            return Err("a fused program needs at least one step".into());
        }
        let mut types: Vec<TensorType> = Vec::with_capacity(self.steps.len());
        let mut step_used = vec![false; self.steps.len()];
        let mut operand_used = vec![false; operands.len()];
        for (i, step) in self.steps.iter().enumerate() {
            if !is_fusable(&step.op) {
                return Err(format!("step t{i}: {} cannot be fused", step.op.name()));
            }
            let mut arg_types = Vec::with_capacity(step.args.len());
            for a in &step.args {
                match *a {
                    Arg::Operand(k) => {
                        let t = operands.get(k).ok_or_else(|| {
                            format!("step t{i}: operand x{k} does not exist ({} operands)", operands.len())
                        })?;
                        operand_used[k] = true;
                        arg_types.push(*t);
                    }
                    Arg::Step(k) => {
                        let t = types.get(k).ok_or_else(|| format!("step t{i}: t{k} is not an earlier step"))?;
                        step_used[k] = true;
                        arg_types.push(t);
                    }
                }
            }
            let placeholder = TensorType::new(crate::DType::F32, Vec::<usize>::new());
            let ty = step.op.infer(&arg_types, &placeholder).map_err(|e| format!("step t{i}: {e}"))?;
            types.push(ty);
        }
        if let Some(k) = step_used[..self.steps.len() - 1].iter().position(|u| !u) {
            return Err(format!("step t{k} is not used"));
        }
        if let Some(k) = operand_used.iter().position(|u| !u) {
            return Err(format!("operand x{k} is not used"));
        }
        Ok(types)
    }

    /// The result type for operands of types `operands` (see [`Program::step_types`]).
    pub fn infer(&self, operands: &[&TensorType]) -> Result<TensorType, String> {
        let mut types = self.step_types(operands)?;
        types.pop().ok_or_else(|| "a fused program needs at least one step".into())
    }

    /// The value the program currently ends with (`x0` for an empty one).
    pub fn result(&self) -> Arg {
        match self.steps.len() {
            0 => Arg::Operand(0),
            n => Arg::Step(n - 1),
        }
    }

    /// This program with one more step, `op(args)`, which becomes the result.
    pub fn then(&self, op: Op, args: Vec<Arg>) -> Program {
        let mut p = self.clone();
        p.steps.push(Step { op, args });
        p
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Operand(i) => write!(f, "x{i}"),
            Arg::Step(i) => write!(f, "t{i}"),
        }
    }
}

impl fmt::Display for Program {
    /// The text form (see the module docs), attributes as the `.ngraph`
    /// printer writes them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(s.op.name())?;
            let attrs = crate::text::op_attributes(&s.op);
            if !attrs.is_empty() {
                let list: Vec<String> = attrs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "{{{}}}", list.join(", "))?;
            }
            let args: Vec<String> = s.args.iter().map(Arg::to_string).collect();
            write!(f, "({})", args.join(", "))?;
        }
        Ok(())
    }
}
