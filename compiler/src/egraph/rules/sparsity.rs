//! Sparsity: constant matmul weights whose zeros have 2:4 structure along K
//! (at most two non-zeros in every four consecutive rows of a column, as
//! the e-class analysis measures when a constant leaf is added:
//! `ClassData::two_of_four`) get a `sparse_matmul` alternative holding the
//! weights compressed to half. The target's cost decides: only a target
//! whose descriptor lists `"2:4"` in `sparsity` can run it (the cost model
//! gives it no cost elsewhere), so a target without sparse support keeps the
//! dense matmul.

use super::{Ex, Match, Rule, Term, rw_fn};
use nanoc_ir::{NodeId, Op, Tensor};

/// The sparsity rules (sparsity stage).
#[rustfmt::skip]
pub fn rules() -> Vec<Rule> {
    vec![
        // law: a · W = sparse_matmul(a, compress₂﹕₄(W))   (W constant f32 [K, N], K a multiple of 4, ≤ 2 non-zeros per group of 4 rows in each column)
        rw_fn("sparse-2-4", "(matmul ?a ?w)", sparse_2_4, "", example),
    ]
}

/// Compresses `w` `[K, N]` (2:4 along K) to `values` and `indices` `[N, K/2]`:
/// per column and group, the rows of its non-zeros in order, padded with
/// zero weights at the group's other rows.
pub fn compress_2_4(w: &Tensor) -> Option<(Tensor, Tensor)> {
    let [k, n] = *w.shape().dims() else { return None };
    let v = w.to_vec::<f32>().ok()?;
    if k % 4 != 0 {
        return None;
    }
    let half = k / 2;
    let (mut values, mut indices) = (vec![0f32; n * half], vec![0u8; n * half]);
    for col in 0..n {
        for g in 0..k / 4 {
            let rows: Vec<usize> = (0..4).filter(|&r| v[(4 * g + r) * n + col] != 0.0).collect();
            if rows.len() > 2 {
                return None;
            }
            // Pad with zero rows, keeping the kept rows in ascending order.
            let mut kept = rows.clone();
            for r in 0..4 {
                if kept.len() == 2 {
                    break;
                }
                if !rows.contains(&r) {
                    kept.push(r);
                }
            }
            kept.sort_unstable();
            for (t, &r) in kept.iter().enumerate() {
                let at = col * half + 2 * g + t;
                values[at] = v[(4 * g + r) * n + col];
                indices[at] = r as u8;
            }
        }
    }
    Some((Tensor::from_vec(vec![n, half], values).ok()?, Tensor::from_vec(vec![n, half], indices).ok()?))
}

/// `sparse_matmul(a, values, indices)` for a measured 2:4 constant `?w`.
fn sparse_2_4(m: &Match<'_>) -> Vec<Term> {
    let (Some(a), Some(w)) = (m.var("?a"), m.var("?w")) else { return Vec::new() };
    if !m.data(w).two_of_four {
        return Vec::new();
    }
    let Some((values, indices)) = m.const_tensor(w).and_then(compress_2_4) else { return Vec::new() };
    vec![Term::node(Op::SparseMatMul, vec![Term::Class(a), Term::Const(values), Term::Const(indices)])]
}

/// `a [3, 8] · W [8, 5]`, W 2:4-sparse along K (one group with a single non-zero).
fn example(e: &mut Ex) -> NodeId {
    let a = e.input("f32[3,8]");
    let w: Vec<f32> = (0..40)
        .map(|i| {
            let (row, col) = (i / 5, i % 5);
            let keep = (row + col) % 4 < 2 && !(row == 5 && col == 1);
            if keep { 0.25 * (i as f32) - 4.0 } else { 0.0 }
        })
        .collect();
    let w = e.values("f32[8,5]", &w);
    e.op(Op::MatMul, &[a, w])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_builds_and_holds() {
        super::super::check::check_table(&rules());
    }

    #[test]
    fn only_two_of_four_weights_compress() {
        let dense = Tensor::from_vec(vec![4, 1], vec![1.0f32, 0.0, 2.0, 3.0]).unwrap();
        assert!(compress_2_4(&dense).is_none());
        let sparse = Tensor::from_vec(vec![4, 1], vec![0.0f32, 0.0, 0.0, 3.0]).unwrap();
        let (v, i) = compress_2_4(&sparse).unwrap();
        assert_eq!(v.to_vec::<f32>().unwrap(), vec![0.0, 3.0]);
        assert_eq!(i.to_vec::<u8>().unwrap(), vec![0, 3]);
    }
}
