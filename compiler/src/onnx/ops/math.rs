//! Elementwise arithmetic and activations.

use super::{Ctx, ImportFn, Res};
use nanoc_ir::{BinaryOp, Op, UnaryOp};

/// The math family's registration table.
pub(super) const OPS: &[(&str, ImportFn)] = &[
    ("Add", |c| binary(c, BinaryOp::Add)),
    ("Sub", |c| binary(c, BinaryOp::Sub)),
    ("Mul", |c| binary(c, BinaryOp::Mul)),
    ("Div", |c| binary(c, BinaryOp::Div)),
    ("Pow", |c| binary(c, BinaryOp::Pow)),
    ("Sqrt", |c| unary(c, UnaryOp::Sqrt)),
    ("Reciprocal", |c| unary(c, UnaryOp::Reciprocal)),
    ("Neg", |c| unary(c, UnaryOp::Neg)),
    ("Exp", |c| unary(c, UnaryOp::Exp)),
    ("Log", |c| unary(c, UnaryOp::Log)),
    ("Erf", |c| unary(c, UnaryOp::Erf)),
    ("Tanh", |c| unary(c, UnaryOp::Tanh)),
    ("Sigmoid", |c| unary(c, UnaryOp::Sigmoid)),
    ("Relu", |c| unary(c, UnaryOp::Relu)),
    ("Gelu", gelu),
    ("Clip", clip),
];

/// A binary elementwise op with numpy broadcasting. Operands must have the
/// same element type (no implicit promotion), except that `Pow`'s exponent
/// is cast to the base's type, as ONNX defines it.
pub(super) fn binary(c: &mut Ctx<'_, '_>, op: BinaryOp) -> Res<()> {
    let (a, ta) = c.input_typed(0)?;
    let (mut b, tb) = c.input_typed(1)?;
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

/// Clip: bounds from the optional constant inputs 1 and 2 (or the `min` /
/// `max` attributes of opsets before 11); an absent bound is ±infinity.
fn clip(c: &mut Ctx<'_, '_>) -> Res<()> {
    let x = c.input(0)?;
    let min = match c.attr_float("min")? {
        Some(v) => Some(v as f64),
        None => c.opt_const_scalar(1)?,
    };
    let max = match c.attr_float("max")? {
        Some(v) => Some(v as f64),
        None => c.opt_const_scalar(2)?,
    };
    let (min, max) = (min.map_or(f32::NEG_INFINITY, |v| v as f32), max.map_or(f32::INFINITY, |v| v as f32));
    let y = c.add(None, Op::Clip { min, max }, &[x])?;
    c.set_output(0, y);
    Ok(())
}
