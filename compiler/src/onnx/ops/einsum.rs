//! Einsum, decomposed into reduce_sum, transpose, reshape and (batched)
//! matmul. Operands are contracted left to right; each contraction lays
//! out its left operand as `[batch, kept, summed]` and its right one as
//! `[batch, summed, kept]` so that one matmul does the work. Letters found
//! in only one operand and not in the output are summed first. `...`
//! stands for the same leading dims in every operand (right-aligned, size-1
//! dims broadcast). A letter repeated within one operand (a diagonal) is
//! not supported.

use super::{Ctx, ImportFn, Res};
use nanoc_ir::{NodeId, Op, ReduceKind, TensorType};

/// The einsum family's registration table.
pub(super) const OPS: &[(&str, ImportFn)] = &[("Einsum", einsum)];

/// A parsed equation: letters of each input and of the output. Ellipsis
/// dims are given letters of their own (`'\u{100}'` onwards).
#[derive(Debug, PartialEq)]
pub(crate) struct Equation {
    pub inputs: Vec<Vec<char>>,
    pub output: Vec<char>,
}

/// Why an equation cannot be imported.
#[derive(Debug, PartialEq)]
pub(crate) enum EquationError {
    /// Malformed, or not matching the operands.
    Invalid(String),
    /// Valid, but nanoc does not implement it (diagonals).
    Unsupported(String),
}

/// Parses `equation` for operands of ranks `ranks`.
pub(crate) fn parse_equation(equation: &str, ranks: &[usize]) -> Result<Equation, EquationError> {
    parse(equation, ranks).map_err(
        |(unsupported, m)| {
            if unsupported { EquationError::Unsupported(m) } else { EquationError::Invalid(m) }
        },
    )
}

/// [`parse_equation`] with errors as `(unsupported, message)`.
fn parse(equation: &str, ranks: &[usize]) -> Result<Equation, (bool, String)> {
    let invalid = |m: String| (false, m);
    let eq: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let terms: Vec<&str> = lhs.split(',').collect();
    if terms.len() != ranks.len() {
        return Err(invalid(format!(
            "equation {equation:?} has {} operand term(s) but the node has {} input(s)",
            terms.len(),
            ranks.len()
        )));
    }
    // The number of dims `...` stands for in each term, and the most of any.
    let mut ell = Vec::with_capacity(terms.len());
    for (t, &rank) in terms.iter().zip(ranks) {
        let letters = t.replace("...", "");
        if let Some(bad) = letters.chars().find(|c| !c.is_ascii_alphabetic()) {
            return Err(invalid(format!("equation {equation:?}: unexpected character {bad:?}")));
        }
        let named = letters.chars().count();
        let n = if t.contains("...") {
            if t.matches("...").count() > 1 {
                return Err(invalid(format!("equation {equation:?}: term {t:?} has more than one `...`")));
            }
            rank.checked_sub(named)
        } else {
            (named == rank).then_some(0)
        };
        ell.push(n.ok_or_else(|| {
            invalid(format!("equation {equation:?}: term {t:?} does not fit an operand of rank {rank}"))
        })?);
    }
    let max_ell = ell.iter().copied().max().unwrap_or(0);
    let ell_letter = |i: usize| char::from_u32(0x100 + i as u32).unwrap_or('\u{100}');
    let expand = |t: &str, n: usize| -> Vec<char> {
        let mut out = Vec::new();
        let (head, tail) = t.split_once("...").unwrap_or((t, ""));
        out.extend(head.chars());
        if t.contains("...") {
            out.extend((max_ell - n..max_ell).map(ell_letter));
        }
        out.extend(tail.chars());
        out
    };
    let inputs: Vec<Vec<char>> = terms.iter().zip(&ell).map(|(t, &n)| expand(t, n)).collect();
    for (t, letters) in terms.iter().zip(&inputs) {
        if let Some(&d) = letters.iter().find(|&&l| letters.iter().filter(|&&m| m == l).count() > 1) {
            return Err((
                true,
                format!("equation {equation:?}: letter {d:?} repeats within term {t:?} (diagonals are not supported)"),
            ));
        }
    }
    let output = match rhs {
        Some(r) => {
            let letters = r.replace("...", "");
            if let Some(bad) = letters.chars().find(|c| !c.is_ascii_alphabetic()) {
                return Err(invalid(format!("equation {equation:?}: unexpected character {bad:?} in the output")));
            }
            let out = expand(r, if r.contains("...") { max_ell } else { 0 });
            for (i, l) in out.iter().enumerate() {
                if out[..i].contains(l) {
                    return Err(invalid(format!("equation {equation:?}: output letter {l:?} repeats")));
                }
                if !inputs.iter().any(|t| t.contains(l)) {
                    return Err(invalid(format!("equation {equation:?}: output letter {l:?} is in no input")));
                }
            }
            out
        }
        None => {
            // Implicit output: ellipsis dims, then the letters used once, sorted.
            let mut once: Vec<char> = inputs
                .iter()
                .flatten()
                .copied()
                .filter(|l| (*l as u32) < 0x100 && inputs.iter().flatten().filter(|&&m| m == *l).count() == 1)
                .collect();
            once.sort_unstable();
            let mut out: Vec<char> = (0..max_ell).map(ell_letter).collect();
            out.extend(once);
            out
        }
    };
    Ok(Equation { inputs, output })
}

/// An operand during the decomposition: its node and the letter of each dim.
struct Term {
    id: NodeId,
    letters: Vec<char>,
}

fn einsum(c: &mut Ctx<'_, '_>) -> Res<()> {
    let equation = c.attr_string("equation")?.ok_or_else(|| c.err("attribute `equation` is required"))?;
    let n = c.num_inputs();
    let ids: Vec<NodeId> = (0..n).map(|i| c.input(i)).collect::<Res<_>>()?;
    if ids.is_empty() {
        return Err(c.err("needs at least one input"));
    }
    let tys: Vec<TensorType> = ids.iter().map(|&i| c.ty(i)).collect();
    let ranks: Vec<usize> = tys.iter().map(|t| t.shape.rank()).collect();
    let eq = parse_equation(&equation, &ranks).map_err(|e| match e {
        EquationError::Invalid(m) => c.err(m),
        EquationError::Unsupported(m) => c.unsupported(m),
    })?;
    if let Some(t) = tys.iter().find(|t| t.dtype != tys[0].dtype) {
        return Err(c.err(format!("operands differ in element type: {} and {t}", tys[0])));
    }
    // Extent of every letter (the largest; size-1 dims broadcast to it).
    let mut extent: Vec<(char, usize)> = Vec::new();
    for (t, ty) in eq.inputs.iter().zip(&tys) {
        for (&l, &d) in t.iter().zip(ty.shape.dims()) {
            match extent.iter_mut().find(|(m, _)| *m == l) {
                Some((_, e)) if *e == d || d == 1 => {}
                Some((_, e)) if *e == 1 => *e = d,
                Some((_, e)) => return Err(c.err(format!("letter {} has extents {e} and {d}", show(l)))),
                None => extent.push((l, d)),
            }
        }
    }
    let ext = |l: char| extent.iter().find(|(m, _)| *m == l).map_or(1, |&(_, e)| e);
    let mut terms = Vec::with_capacity(n);
    for (i, (t, ty)) in eq.inputs.iter().zip(&tys).enumerate() {
        let mut id = ids[i];
        let full: Vec<usize> = t.iter().map(|&l| ext(l)).collect();
        if full != ty.shape.dims() {
            id = c.add_typed(Some(&format!("broadcast{i}")), Op::Broadcast, &[id], TensorType::new(ty.dtype, full))?;
        }
        terms.push(Term { id, letters: t.clone() });
    }
    let mut step = 0usize;
    let mut acc = terms.remove(0);
    // Letters of `acc` used nowhere else are summed right away.
    let needed = |rest: &[Term], out: &[char]| -> Vec<char> {
        let mut v: Vec<char> = out.to_vec();
        v.extend(rest.iter().flat_map(|t| t.letters.iter().copied()));
        v
    };
    acc = sum_out(c, acc, &needed(&terms, &eq.output), &mut step)?;
    while !terms.is_empty() {
        let rhs = terms.remove(0);
        let keep = needed(&terms, &eq.output);
        let mut keep_rhs = keep.clone();
        keep_rhs.extend(acc.letters.iter().copied());
        let rhs = sum_out(c, rhs, &keep_rhs, &mut step)?;
        acc = contract(c, acc, rhs, &keep, &ext, &mut step)?;
    }
    // Final layout: the output order.
    let perm: Vec<usize> =
        eq.output.iter().map(|l| acc.letters.iter().position(|m| m == l).unwrap_or(usize::MAX)).collect();
    if perm.contains(&usize::MAX) || perm.len() != acc.letters.len() {
        return Err(c.err(format!("internal: einsum result letters {:?} vs output {:?}", acc.letters, eq.output)));
    }
    let y = if perm.iter().enumerate().all(|(i, &p)| i == p) {
        acc.id
    } else {
        c.add(None, Op::Transpose { perm }, &[acc.id])?
    };
    c.set_output(0, y);
    Ok(())
}

fn show(l: char) -> String {
    if (l as u32) < 0x100 { format!("{l:?}") } else { "of `...`".into() }
}

/// Sums the dims of `t` whose letters are not in `keep`.
fn sum_out(c: &mut Ctx<'_, '_>, t: Term, keep: &[char], step: &mut usize) -> Res<Term> {
    let axes: Vec<usize> = (0..t.letters.len()).filter(|&i| !keep.contains(&t.letters[i])).collect();
    if axes.is_empty() {
        return Ok(t);
    }
    *step += 1;
    let letters = t.letters.iter().copied().filter(|l| keep.contains(l)).collect();
    let id =
        c.add(Some(&format!("sum{step}")), Op::Reduce { kind: ReduceKind::Sum, axes, keep_dims: false }, &[t.id])?;
    Ok(Term { id, letters })
}

/// Transposes `t` so that its letters come in `order` (a permutation of them).
fn arrange(c: &mut Ctx<'_, '_>, t: &Term, order: &[char], name: &str) -> Res<NodeId> {
    let perm: Vec<usize> = order.iter().filter_map(|l| t.letters.iter().position(|m| m == l)).collect();
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(t.id);
    }
    c.add(Some(name), Op::Transpose { perm }, &[t.id])
}

/// Reshapes `id` to `dims` unless it already has them.
fn reshape(c: &mut Ctx<'_, '_>, id: NodeId, dims: Vec<usize>, name: &str) -> Res<NodeId> {
    let ty = c.ty(id);
    if ty.shape.dims() == dims.as_slice() {
        return Ok(id);
    }
    c.add_typed(Some(name), Op::Reshape, &[id], TensorType::new(ty.dtype, dims))
}

/// Contracts `a` with `b`, keeping the letters in `keep` (and summing
/// shared letters that are not) with one batched matmul.
fn contract(
    c: &mut Ctx<'_, '_>,
    a: Term,
    b: Term,
    keep: &[char],
    ext: &dyn Fn(char) -> usize,
    step: &mut usize,
) -> Res<Term> {
    *step += 1;
    let s = *step;
    let shared = |l: &char| b.letters.contains(l);
    let batch: Vec<char> = a.letters.iter().copied().filter(|l| shared(l) && keep.contains(l)).collect();
    let summed: Vec<char> = a.letters.iter().copied().filter(|l| shared(l) && !keep.contains(l)).collect();
    let a_kept: Vec<char> = a.letters.iter().copied().filter(|l| !shared(l)).collect();
    let b_kept: Vec<char> = b.letters.iter().copied().filter(|l| !a.letters.contains(l)).collect();
    let size = |ls: &[char]| ls.iter().map(|&l| ext(l)).product::<usize>();
    let (nb, m, k, n) = (size(&batch), size(&a_kept), size(&summed), size(&b_kept));
    let a_order: Vec<char> = batch.iter().chain(&a_kept).chain(&summed).copied().collect();
    let b_order: Vec<char> = batch.iter().chain(&summed).chain(&b_kept).copied().collect();
    let at = arrange(c, &a, &a_order, &format!("lhs{s}"))?;
    let bt = arrange(c, &b, &b_order, &format!("rhs{s}"))?;
    let (a3, b3) = if batch.is_empty() { (vec![m, k], vec![k, n]) } else { (vec![nb, m, k], vec![nb, k, n]) };
    let a3 = reshape(c, at, a3, &format!("lhs{s}_3d"))?;
    let b3 = reshape(c, bt, b3, &format!("rhs{s}_3d"))?;
    let prod = c.add(Some(&format!("matmul{s}")), Op::MatMul, &[a3, b3])?;
    let letters: Vec<char> = batch.iter().chain(&a_kept).chain(&b_kept).copied().collect();
    let dims: Vec<usize> = letters.iter().map(|&l| ext(l)).collect();
    let id = reshape(c, prod, dims, &format!("result{s}"))?;
    Ok(Term { id, letters })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equations_parse_with_ellipsis_and_implicit_output() {
        let e = parse_equation("bij, bjk -> bik", &[3, 3]).unwrap();
        assert_eq!(e.inputs, vec![vec!['b', 'i', 'j'], vec!['b', 'j', 'k']]);
        assert_eq!(e.output, vec!['b', 'i', 'k']);
        let e = parse_equation("ij,jk", &[2, 2]).unwrap();
        assert_eq!(e.output, vec!['i', 'k']);
        let e = parse_equation("...ij,...jk->...ik", &[4, 3]).unwrap();
        let (x, y) = ('\u{100}', '\u{101}');
        assert_eq!(e.inputs, vec![vec![x, y, 'i', 'j'], vec![y, 'j', 'k']]);
        assert_eq!(e.output, vec![x, y, 'i', 'k']);
        let e = parse_equation("ji", &[2]).unwrap();
        assert_eq!(e.output, vec!['i', 'j']);
        let err = |eq: &str, ranks: &[usize]| match parse_equation(eq, ranks).unwrap_err() {
            EquationError::Invalid(m) => (false, m),
            EquationError::Unsupported(m) => (true, m),
        };
        let (unsupported, m) = err("ii->i", &[2]);
        assert!(unsupported && m.contains("diagonals are not supported"), "{m}");
        let (unsupported, m) = err("ij->k", &[2]);
        assert!(!unsupported && m.contains("is in no input"), "{m}");
        assert!(err("ij,jk->ik", &[2]).1.contains("1 input(s)"));
        assert!(err("ijk->i", &[2]).1.contains("does not fit"));
        assert!(err("i...j...->i", &[4]).1.contains("more than one"));
        assert!(err("i2->i", &[2]).1.contains("unexpected character"));
    }
}
