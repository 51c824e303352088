//! Elementwise arithmetic and activations.

use super::{Ctx, ImportFn, Res};
use nanoc_ir::{BinaryOp, NodeId, Op, UnaryOp};

/// The math family's registration table.
pub(super) const OPS: &[(&str, ImportFn)] = &[
    ("Add", |c| binary(c, BinaryOp::Add)),
    ("Sub", |c| binary(c, BinaryOp::Sub)),
    ("Mul", |c| binary(c, BinaryOp::Mul)),
    ("Div", |c| binary(c, BinaryOp::Div)),
    ("Pow", |c| binary(c, BinaryOp::Pow)),
    ("Sqrt", |c| unary(c, UnaryOp::Sqrt)),
    ("Reciprocal", |c| unary(c, UnaryOp::Reciprocal)),
    ("Neg", neg),
    ("Exp", |c| unary(c, UnaryOp::Exp)),
    ("Log", |c| unary(c, UnaryOp::Log)),
    ("Erf", |c| unary(c, UnaryOp::Erf)),
    ("Tanh", |c| unary(c, UnaryOp::Tanh)),
    ("Sigmoid", |c| unary(c, UnaryOp::Sigmoid)),
    ("Relu", |c| unary(c, UnaryOp::Relu)),
    ("Gelu", gelu),
    ("Clip", clip),
    ("Abs", |c| unary(c, UnaryOp::Abs)),
    ("Sign", |c| unary(c, UnaryOp::Sign)),
    ("Floor", |c| unary(c, UnaryOp::Floor)),
    ("Ceil", |c| unary(c, UnaryOp::Ceil)),
    ("Round", |c| unary(c, UnaryOp::Round)),
    ("Softplus", |c| unary(c, UnaryOp::Softplus)),
    ("Not", |c| unary(c, UnaryOp::Not)),
    ("Min", |c| variadic(c, BinaryOp::Min)),
    ("Max", |c| variadic(c, BinaryOp::Max)),
    ("Mod", modulo),
    ("Less", |c| binary(c, BinaryOp::Less)),
    ("Greater", |c| binary(c, BinaryOp::Greater)),
    ("LessOrEqual", |c| binary(c, BinaryOp::LessEqual)),
    ("GreaterOrEqual", |c| binary(c, BinaryOp::GreaterEqual)),
    ("And", |c| binary(c, BinaryOp::And)),
    ("Or", |c| binary(c, BinaryOp::Or)),
    ("LeakyRelu", leaky_relu),
    ("PRelu", prelu),
    ("HardSigmoid", |c| {
        let (alpha, beta) = (c.attr_float_or("alpha", 0.2)?, c.attr_float_or("beta", 0.5)?);
        let x = c.input(0)?;
        let y = hard_sigmoid(c, x, alpha, beta)?;
        c.set_output(0, y);
        Ok(())
    }),
    ("HardSwish", hard_swish),
    ("Mish", mish),
];

/// A binary elementwise op with numpy broadcasting. Operands must have the
/// same element type (no implicit promotion), except that `Pow`'s exponent
/// is cast to the base's type, as ONNX defines it.
pub(super) fn binary(c: &mut Ctx<'_, '_>, op: BinaryOp) -> Res<()> {
    let (a, ta) = c.input_typed(0)?;
    let (mut b, tb) = c.input_typed(1)?;
    if op == BinaryOp::Pow && !ta.dtype.is_float() {
        return Err(c.unsupported(format!("Pow of {} (nanoc raises floats only)", ta.dtype)));
    }
    if ta.dtype != tb.dtype {
        if op == BinaryOp::Pow && ta.dtype.is_float() {
            b = c.add(Some("cast_exponent"), Op::Cast { to: ta.dtype }, &[b])?;
        } else {
            return Err(c.err(format!(
                "operands have different element types {} and {} (nanoc does no implicit type promotion)",
                ta, tb
            )));
        }
    }
    let y = c.add(None, Op::Binary(op), &[a, b])?;
    c.set_output(0, y);
    Ok(())
}

fn unary(c: &mut Ctx<'_, '_>, op: UnaryOp) -> Res<()> {
    let x = c.input(0)?;
    let y = c.add(None, Op::Unary(op), &[x])?;
    c.set_output(0, y);
    Ok(())
}

/// Neg; on integers (shape arithmetic in function expansions) `0 - x`.
fn neg(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    if !tx.dtype.is_int() {
        return unary(c, UnaryOp::Neg);
    }
    let zero = c.scalar("zero", tx.dtype, 0.0)?;
    let y = c.add(None, Op::Binary(BinaryOp::Sub), &[zero, x])?;
    c.set_output(0, y);
    Ok(())
}

fn gelu(c: &mut Ctx<'_, '_>) -> Res<()> {
    let op = match c.attr_string("approximate")?.as_deref() {
        None | Some("none") => UnaryOp::Gelu,
        Some("tanh") => UnaryOp::GeluTanh,
        Some(other) => {
            return Err(c.err(format!("attribute `approximate` must be \"none\" or \"tanh\", got {other:?}")));
        }
    };
    unary(c, op)
}

/// Clip: bounds from the optional inputs 1 and 2 (or the `min` / `max`
/// attributes of opsets before 11); an absent bound is ±infinity. Constant
/// float bounds give one `clip` node; integer or run-time bounds give
/// `max(x, min)` then `min(·, max)`.
fn clip(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let dt = tx.dtype;
    let mut bounds = Vec::new();
    for (i, attr) in [(1, "min"), (2, "max")] {
        let bound = match c.attr_float(attr)? {
            Some(v) => Some(Bound::Const(v as f64)),
            None => match c.opt_input(i)? {
                None => None,
                Some(id) if c.is_const(id) => c.opt_const_scalar(i)?.map(Bound::Const),
                Some(id) => {
                    let t = c.ty(id);
                    if t.dtype != dt || t.shape.numel() != 1 {
                        return Err(c.err(format!("input {i} (`{attr}`) must be one {dt} value, got {t}")));
                    }
                    Some(Bound::Runtime(id))
                }
            },
        };
        bounds.push(bound);
    }
    let (min, max) = (bounds[0], bounds[1]);
    let all_const = bounds.iter().all(|b| !matches!(b, Some(Bound::Runtime(_))));
    if dt.is_float() && all_const {
        let value = |b: Option<Bound>, none: f32| match b {
            Some(Bound::Const(v)) => v as f32,
            _ => none,
        };
        let y = c.add(None, Op::Clip { min: value(min, f32::NEG_INFINITY), max: value(max, f32::INFINITY) }, &[x])?;
        c.set_output(0, y);
        return Ok(());
    }
    let mut steps = Vec::new();
    for (bound, op, name) in [(min, BinaryOp::Max, "min"), (max, BinaryOp::Min, "max")] {
        match bound {
            None => {}
            Some(Bound::Const(v)) => steps.push((op, c.scalar(name, dt, v)?)),
            Some(Bound::Runtime(id)) => steps.push((op, id)),
        }
    }
    let mut y = x;
    for (i, &(op, k)) in steps.iter().enumerate() {
        // The last step carries the node's own name.
        let suffix = (i + 1 < steps.len()).then_some("at_least_min");
        y = c.add(suffix, Op::Binary(op), &[y, k])?;
    }
    c.set_output(0, y);
    Ok(())
}

/// A Clip bound: known at import, or a value computed at run time.
#[derive(Clone, Copy)]
enum Bound {
    Const(f64),
    Runtime(nanoc_ir::NodeId),
}

/// Min/Max over one or more inputs, folded pairwise (with broadcasting).
fn variadic(c: &mut Ctx<'_, '_>, op: BinaryOp) -> Res<()> {
    let n = c.num_inputs();
    if n == 0 {
        return Err(c.err("needs at least one input"));
    }
    let mut acc = c.input(0)?;
    for i in 1..n {
        let x = c.input(i)?;
        acc = c.add(Some(&format!("{}{i}", Op::Binary(op).name())), Op::Binary(op), &[acc, x])?;
    }
    c.set_output(0, acc);
    Ok(())
}

/// Mod: `fmod=1` is C fmod (sign of the dividend), `fmod=0` the floored
/// remainder (sign of the divisor; ONNX defines it for integers, and its
/// tests use the same rule for floats).
fn modulo(c: &mut Ctx<'_, '_>) -> Res<()> {
    let fmod = c.attr_bool_or("fmod", false)?;
    binary(c, if fmod { BinaryOp::Rem } else { BinaryOp::Mod })
}

/// `x < 0 ? slope * x : x`.
fn where_negative(c: &mut Ctx<'_, '_>, x: NodeId, slope: NodeId) -> Res<NodeId> {
    let dt = c.ty(x).dtype;
    let zero = c.scalar("zero", dt, 0.0)?;
    let neg = c.add(Some("is_negative"), Op::Binary(BinaryOp::Less), &[x, zero])?;
    let scaled = c.add(Some("scaled"), Op::Binary(BinaryOp::Mul), &[x, slope])?;
    c.add(None, Op::Where, &[neg, scaled, x])
}

fn leaky_relu(c: &mut Ctx<'_, '_>) -> Res<()> {
    let alpha = c.attr_float_or("alpha", 0.01)?;
    let x = c.input(0)?;
    let dt = c.ty(x).dtype;
    let slope = c.scalar("alpha", dt, alpha as f64)?;
    let y = where_negative(c, x, slope)?;
    c.set_output(0, y);
    Ok(())
}

fn prelu(c: &mut Ctx<'_, '_>) -> Res<()> {
    let x = c.input(0)?;
    let slope = c.input(1)?;
    let y = where_negative(c, x, slope)?;
    c.set_output(0, y);
    Ok(())
}

/// `clip(alpha * x + beta, 0, 1)`.
fn hard_sigmoid(c: &mut Ctx<'_, '_>, x: NodeId, alpha: f32, beta: f32) -> Res<NodeId> {
    let dt = c.ty(x).dtype;
    let a = c.scalar("alpha", dt, alpha as f64)?;
    let b = c.scalar("beta", dt, beta as f64)?;
    let ax = c.add(Some("scaled"), Op::Binary(BinaryOp::Mul), &[x, a])?;
    let axb = c.add(Some("shifted"), Op::Binary(BinaryOp::Add), &[ax, b])?;
    c.add(Some("hard_sigmoid"), Op::Clip { min: 0.0, max: 1.0 }, &[axb])
}

/// `x * hard_sigmoid(x)` with alpha 1/6, beta 1/2.
fn hard_swish(c: &mut Ctx<'_, '_>) -> Res<()> {
    let x = c.input(0)?;
    let h = hard_sigmoid(c, x, 1.0 / 6.0, 0.5)?;
    let y = c.add(None, Op::Binary(BinaryOp::Mul), &[x, h])?;
    c.set_output(0, y);
    Ok(())
}

/// `x * tanh(softplus(x))`.
fn mish(c: &mut Ctx<'_, '_>) -> Res<()> {
    let x = c.input(0)?;
    let sp = c.add(Some("softplus"), Op::Unary(UnaryOp::Softplus), &[x])?;
    let t = c.add(Some("tanh"), Op::Unary(UnaryOp::Tanh), &[sp])?;
    let y = c.add(None, Op::Binary(BinaryOp::Mul), &[x, t])?;
    c.set_output(0, y);
    Ok(())
}
