//! Epilogues: elementwise work on a matmul's result folded into the matmul
//! kernel (`matmul_epilogue`), so that every product element passes through
//! the epilogue before it is stored: bias add, activation, residual add,
//! scale, clamp, mask select.
//!
//! Each row matches one elementwise op with an operand `?m` and, for every
//! `matmul` or `matmul_epilogue` in `?m`'s class, adds that matmul with the
//! op appended to its epilogue; the op's other operands become extra
//! operands of the kernel (reused when they already are one). Chains grow
//! one op per iteration (`gelu(matmul(a, b) + bias)` is two rows firing).
//! The type check keeps only epilogues that leave the product's shape (an
//! operand that would broadcast the product to a larger shape is not an
//! epilogue), and `matmul_epilogue` needs operands of rank >= 2. An operand
//! deeper than the product (computed from it, like the next layer's output
//! added to a residual stream the product feeds) is skipped: the product
//! would be needed before the kernel that makes it, and without this guard
//! the alternatives chain across layers. Commutative ops put the product
//! first, so both operand orders give one alternative. Whether the fused
//! kernel is chosen is the cost model's call: when the product is also
//! used elsewhere, fusing would compute it twice and costs more.

use super::{Ex, Match, Rule, Term, rw_fn};
use egg::Id;
use nanoc_ir::{Arg, BinaryOp, NodeId, Op, Program, UnaryOp};

/// At most this many epilogue steps (bounds the e-graph on long chains).
const MAX_STEPS: usize = 16;
/// At most this many extra operands.
const MAX_EXTRAS: usize = 8;

/// The epilogue rules (epilogue stage).
#[rustfmt::skip]
pub fn rules() -> Vec<Rule> {
    vec![
        // law: matmul_e(a, b, ..) + y = matmul_{e; add(·, y)}(a, b, .., y)       (bias, residual)
        rw_fn("epi-add", "(add ?m ?y)", |m| binary(m, BinaryOp::Add, true), "", |e| binary_example(e, BinaryOp::Add, "f32[17]", true)),
        // law: y + matmul_e(a, b, ..) = matmul_{e; add(y, ·)}(a, b, .., y)       (GPT-2 Conv1D writes the bias first)
        rw_fn("epi-add-r", "(add ?y ?m)", |m| binary(m, BinaryOp::Add, false), "", |e| binary_example(e, BinaryOp::Add, "f32[2,3,17]", false)),
        // law: matmul_e(a, b, ..) − y = matmul_{e; sub(·, y)}(a, b, .., y)
        rw_fn("epi-sub", "(sub ?m ?y)", |m| binary(m, BinaryOp::Sub, true), "", |e| binary_example(e, BinaryOp::Sub, "f32[3,1]", true)),
        // law: y − matmul_e(a, b, ..) = matmul_{e; sub(y, ·)}(a, b, .., y)
        rw_fn("epi-sub-r", "(sub ?y ?m)", |m| binary(m, BinaryOp::Sub, false), "", |e| binary_example(e, BinaryOp::Sub, "f32[17]", false)),
        // law: matmul_e(a, b, ..) · y = matmul_{e; mul(·, y)}(a, b, .., y)       (scale, SwiGLU's gate · up)
        rw_fn("epi-mul", "(mul ?m ?y)", |m| binary(m, BinaryOp::Mul, true), "", |e| binary_example(e, BinaryOp::Mul, "f32[]", true)),
        // law: y · matmul_e(a, b, ..) = matmul_{e; mul(y, ·)}(a, b, .., y)
        rw_fn("epi-mul-r", "(mul ?y ?m)", |m| binary(m, BinaryOp::Mul, false), "", |e| binary_example(e, BinaryOp::Mul, "f32[3,17]", false)),
        // law: matmul_e(a, b, ..) / y = matmul_{e; div(·, y)}(a, b, .., y)       (attention scores / √d)
        rw_fn("epi-div", "(div ?m ?y)", |m| binary(m, BinaryOp::Div, true), "", |e| binary_example(e, BinaryOp::Div, "f32[]", true)),
        // law: max(matmul_e(a, b, ..), y) = matmul_{e; max(·, y)}(a, b, .., y)
        rw_fn("epi-max", "(max ?m ?y)", |m| binary(m, BinaryOp::Max, true), "", |e| binary_example(e, BinaryOp::Max, "f32[1,17]", true)),
        // law: relu(matmul_e(a, b, ..)) = matmul_{e; relu}(a, b, ..)
        rw_fn("epi-relu", "(relu ?m)", |m| unary(m, UnaryOp::Relu), "", |e| unary_example(e, UnaryOp::Relu)),
        // law: gelu(matmul_e(a, b, ..)) = matmul_{e; gelu}(a, b, ..)
        rw_fn("epi-gelu", "(gelu ?m)", |m| unary(m, UnaryOp::Gelu), "", |e| unary_example(e, UnaryOp::Gelu)),
        // law: gelu_tanh(matmul_e(a, b, ..)) = matmul_{e; gelu_tanh}(a, b, ..)
        rw_fn("epi-gelu-tanh", "(gelu_tanh ?m)", |m| unary(m, UnaryOp::GeluTanh), "", |e| unary_example(e, UnaryOp::GeluTanh)),
        // law: silu(matmul_e(a, b, ..)) = matmul_{e; silu}(a, b, ..)             (SwiGLU's gate)
        rw_fn("epi-silu", "(silu ?m)", |m| unary(m, UnaryOp::Silu), "", |e| unary_example(e, UnaryOp::Silu)),
        // law: sigmoid(matmul_e(a, b, ..)) = matmul_{e; sigmoid}(a, b, ..)
        rw_fn("epi-sigmoid", "(sigmoid ?m)", |m| unary(m, UnaryOp::Sigmoid), "", |e| unary_example(e, UnaryOp::Sigmoid)),
        // law: tanh(matmul_e(a, b, ..)) = matmul_{e; tanh}(a, b, ..)
        rw_fn("epi-tanh", "(tanh ?m)", |m| unary(m, UnaryOp::Tanh), "", |e| unary_example(e, UnaryOp::Tanh)),
        // law: clip_{lo,hi}(matmul_e(a, b, ..)) = matmul_{e; clip_{lo,hi}}(a, b, ..)   (ReLU6)
        rw_fn("epi-clip", "(clip ?m)", clip, "", |e| { let m = mm_example(e, false); e.op(Op::Clip { min: 0.0, max: 6.0 }, &[m]) }),
        // law: where(c, matmul_e(a, b, ..), y) = matmul_{e; where(c, ·, y)}(a, b, .., c, y)   (masked scores)
        rw_fn("epi-where", "(where ?c ?m ?y)", |m| select(m, true), "", |e| where_example(e, true)),
        // law: where(c, y, matmul_e(a, b, ..)) = matmul_{e; where(c, y, ·)}(a, b, .., c, y)
        rw_fn("epi-where-r", "(where ?c ?y ?m)", |m| select(m, false), "", |e| where_example(e, false)),
    ]
}

/// A matmul (operands of rank >= 2) or matmul_epilogue in class `c`: its
/// a, b, epilogue (empty for a plain matmul) and extra operands.
fn producers(m: &Match<'_>, c: Id) -> Vec<(Id, Id, Program, Vec<Id>)> {
    let mut out = Vec::new();
    for (op, kids) in m.ops(c, "matmul") {
        let ranks_ok = kids.iter().all(|&k| m.data(k).ty.shape.rank() >= 2);
        if *op == Op::MatMul && ranks_ok {
            out.push((kids[0], kids[1], Program::default(), Vec::new()));
        }
    }
    for (op, kids) in m.ops(c, "matmul_epilogue") {
        if let Op::MatMulEpilogue { epilogue } = op {
            out.push((kids[0], kids[1], epilogue.clone(), kids[2..].to_vec()));
        }
    }
    out
}

/// For each producer in `?m`'s class: the same matmul with `op(args)`
/// appended to its epilogue, where `None` in `args` is the current result
/// and `Some(class)` another value (an extra operand).
fn extend(m: &Match<'_>, op: Op, args: &[Option<Id>]) -> Vec<Term> {
    let Some(mc) = m.var("?m") else { return Vec::new() };
    if args.iter().flatten().any(|&c| m.data(c).depth > m.data(mc).depth) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (a, b, prog, mut extras) in producers(m, mc) {
        if prog.steps.len() >= MAX_STEPS {
            continue;
        }
        let cur = prog.result();
        let step_args: Vec<Arg> = args
            .iter()
            .map(|x| match x {
                Some(c) if *c != mc => match extras.iter().position(|e| e == c) {
                    Some(i) => Arg::Operand(i + 1),
                    None => {
                        extras.push(*c);
                        Arg::Operand(extras.len())
                    }
                },
                _ => cur,
            })
            .collect();
        if extras.len() > MAX_EXTRAS {
            continue;
        }
        let mut kids = vec![Term::Class(a), Term::Class(b)];
        kids.extend(extras.iter().map(|&e| Term::Class(e)));
        out.push(Term::node(Op::MatMulEpilogue { epilogue: prog.then(op.clone(), step_args) }, kids));
    }
    out
}

fn unary(m: &Match<'_>, u: UnaryOp) -> Vec<Term> {
    extend(m, Op::Unary(u), &[None])
}

fn binary(m: &Match<'_>, b: BinaryOp, producer_first: bool) -> Vec<Term> {
    let Some(y) = m.var("?y") else { return Vec::new() };
    let commutative = matches!(b, BinaryOp::Add | BinaryOp::Mul | BinaryOp::Max | BinaryOp::Min);
    let args = if producer_first || commutative { [None, Some(y)] } else { [Some(y), None] };
    extend(m, Op::Binary(b), &args)
}

/// The clip ops over `?m` in the matched class (their bounds are attributes).
fn clip(m: &Match<'_>) -> Vec<Term> {
    let Some(mc) = m.var("?m") else { return Vec::new() };
    m.ops(m.eclass, "clip")
        .into_iter()
        .filter(|(_, kids)| kids[0] == mc)
        .flat_map(|(op, _)| extend(m, op.clone(), &[None]))
        .collect()
}

fn select(m: &Match<'_>, producer_true: bool) -> Vec<Term> {
    let (Some(c), Some(y)) = (m.var("?c"), m.var("?y")) else { return Vec::new() };
    let args = if producer_true { [Some(c), None, Some(y)] } else { [Some(c), Some(y), None] };
    extend(m, Op::Where, &args)
}

/// `matmul(a, b)` over f32[2,3,7] × f32[7,17] (odd sizes, a batch dim that
/// b broadcasts over), or with a bias epilogue already when `with_bias`.
fn mm_example(e: &mut Ex, with_bias: bool) -> NodeId {
    let a = e.input("f32[2,3,7]");
    let b = e.input("f32[7,17]");
    if !with_bias {
        return e.op(Op::MatMul, &[a, b]);
    }
    let bias = e.input("f32[17]");
    let epilogue = Program::default().then(Op::Binary(BinaryOp::Add), vec![Arg::Operand(0), Arg::Operand(1)]);
    e.op(Op::MatMulEpilogue { epilogue }, &[a, b, bias])
}

/// `op(matmul, y)` (or `op(y, matmul)`) with `y` of type `y_ty`.
fn binary_example(e: &mut Ex, b: BinaryOp, y_ty: &str, producer_first: bool) -> NodeId {
    let m = mm_example(e, false);
    let y = e.input(y_ty);
    let args = if producer_first { [m, y] } else { [y, m] };
    e.op(Op::Binary(b), &args)
}

/// `u(matmul_epilogue{bias})`: extends an existing epilogue.
fn unary_example(e: &mut Ex, u: UnaryOp) -> NodeId {
    let m = mm_example(e, true);
    e.op(Op::Unary(u), &[m])
}

/// A masked select of the product (the mask broadcasts over the batch).
fn where_example(e: &mut Ex, producer_true: bool) -> NodeId {
    let m = mm_example(e, true);
    let x = e.input("f32[3,17]");
    let zero = e.splat("f32[]", 0.0);
    let mask = e.op(Op::Binary(BinaryOp::Greater), &[x, zero]);
    let fill = e.splat("f32[]", -1e4);
    let args = if producer_true { [mask, m, fill] } else { [mask, fill, m] };
    e.op(Op::Where, &args)
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;
    use crate::egraph::convert::to_egraph;
    use egg::{Runner, SimpleScheduler};

    #[test]
    fn every_rule_builds_and_holds() {
        check::check_table(&super::rules());
    }

    /// An operand that would broadcast the product to a larger shape, and a
    /// rank-1 matmul operand, give no epilogue.
    #[test]
    fn no_epilogue_that_changes_the_product_shape() {
        let mut e = Ex::default();
        let a = e.input("f32[3,7]");
        let b = e.input("f32[7,17]");
        let mm = e.op(Op::MatMul, &[a, b]);
        let y = e.input("f32[2,3,17]");
        let root = e.op(Op::Binary(BinaryOp::Add), &[mm, y]);
        let v = e.input("f32[7]");
        let mv = e.op(Op::MatMul, &[a, v]);
        let relu = e.op(Op::Unary(UnaryOp::Relu), &[mv]);
        e.g.add_output("y", root);
        e.g.add_output("r", relu);
        let c = to_egraph(&e.g).unwrap();
        let rules: Vec<_> = rules().iter().map(|r| r.compile().unwrap()).collect();
        let eg = Runner::default().with_egraph(c.egraph).with_scheduler(SimpleScheduler).run(&rules).egraph;
        for root in &c.roots {
            let fused = eg[eg.find(*root)].nodes.iter().any(|n| n.is("matmul_epilogue"));
            assert!(!fused, "an epilogue was added:\n{}", nanoc_ir::text::print(&e.g));
        }
    }
}
