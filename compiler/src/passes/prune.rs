//! Magnitude pruning of constant matmul weights (`nanoc compile --prune`).
//!
//! A weight is a constant f32 matrix `[K, N]` whose every use is as the
//! second operand of a `matmul` (so pruning changes nothing else). `2:4`
//! keeps the two largest magnitudes in every four consecutive rows of each
//! column (the pattern the sparsity stage turns into `sparse_matmul`;
//! weights with K not a multiple of 4 are left dense); a ratio `r` zeroes
//! the `⌊r·len⌋` smallest magnitudes of each weight (ties: lower index
//! first). The caller measures the accuracy cost by running both graphs.

use nanoc_ir::{DType, Graph, NodeId, Op, Tensor};
use std::str::FromStr;

/// How to prune.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Prune {
    /// 2:4 structured along K.
    TwoOfFour,
    /// This fraction (in (0, 1)) of each weight, smallest magnitudes first.
    Ratio(f64),
}

impl FromStr for Prune {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "2:4" {
            return Ok(Prune::TwoOfFour);
        }
        match s.parse::<f64>() {
            Ok(r) if r > 0.0 && r < 1.0 => Ok(Prune::Ratio(r)),
            _ => Err(format!("`{s}`: expected 2:4 or a ratio between 0 and 1 (exclusive)")),
        }
    }
}

/// What pruning did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Weights pruned.
    pub weights: usize,
    /// Weights left dense (2:4 with K not a multiple of 4).
    pub skipped: usize,
    /// Elements of the pruned weights.
    pub elements: usize,
    /// Of those, zero after pruning.
    pub zeros: usize,
}

/// The constant matmul weights of `g` (see the module docs).
fn weights(g: &Graph) -> Vec<NodeId> {
    g.node_ids()
        .into_iter()
        .filter(|&id| {
            let n = g.node(id);
            let users = g.users(id);
            matches!(n.op, Op::Const(_))
                && n.ty.dtype == DType::F32
                && n.ty.shape.rank() == 2
                && !users.is_empty()
                && users.iter().all(|&u| g.node(u).op == Op::MatMul && g.args(u).get(1) == Some(&id))
                && !g.outputs().iter().any(|(_, o)| *o == id)
        })
        .collect()
}

/// Indices of the elements to zero in `w` (`k` rows of `n`).
fn pruned(w: &[f32], k: usize, n: usize, how: Prune) -> Option<Vec<usize>> {
    let by_magnitude = |a: &usize, b: &usize| w[*a].abs().total_cmp(&w[*b].abs()).then(a.cmp(b));
    match how {
        Prune::TwoOfFour => {
            if k % 4 != 0 {
                return None;
            }
            let mut out = Vec::with_capacity(w.len() / 2);
            for g in 0..k / 4 {
                for c in 0..n {
                    let mut group: Vec<usize> = (0..4).map(|r| (4 * g + r) * n + c).collect();
                    group.sort_by(by_magnitude);
                    out.extend_from_slice(&group[..2]);
                }
            }
            Some(out)
        }
        Prune::Ratio(r) => {
            let mut order: Vec<usize> = (0..w.len()).collect();
            order.sort_by(by_magnitude);
            order.truncate((r * w.len() as f64).floor() as usize);
            Some(order)
        }
    }
}

/// Prunes every constant matmul weight of `g` in place.
pub fn prune(g: &mut Graph, how: Prune) -> PruneReport {
    let mut report = PruneReport::default();
    for id in weights(g) {
        let node = g.node(id);
        let Op::Const(t) = &node.op else { continue };
        let [k, n] = *node.ty.shape.dims() else { continue };
        let Ok(mut w) = t.to_vec::<f32>() else { continue };
        let Some(zero) = pruned(&w, k, n, how) else {
            report.skipped += 1;
            continue;
        };
        for i in zero {
            if let Some(x) = w.get_mut(i) {
                *x = 0.0;
            }
        }
        let Ok(t) = Tensor::from_vec(vec![k, n], w) else { continue };
        report.weights += 1;
        report.elements += k * n;
        report.zeros += t.to_vec::<f32>().map_or(0, |v| v.iter().filter(|x| **x == 0.0).count());
        g.node_mut(id).op = Op::Const(t);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanoc_ir::TensorType;

    fn graph(w: Vec<f32>, k: usize, n: usize) -> (Graph, NodeId) {
        let mut g = Graph::new("p");
        let x = g.add_input("x", TensorType::new(DType::F32, vec![1, k]));
        let w = g.add_const("w", Tensor::from_vec(vec![k, n], w).unwrap());
        let y = g.add_op("y", Op::MatMul, &[x, w]).unwrap();
        g.add_output("y", y);
        (g, w)
    }

    fn values(g: &Graph, id: NodeId) -> Vec<f32> {
        match &g.node(id).op {
            Op::Const(t) => t.to_vec::<f32>().unwrap(),
            _ => panic!("not a constant"),
        }
    }

    #[test]
    fn two_of_four_keeps_the_two_largest_per_group() {
        // K = 4, N = 2: column 0 is 1, -5, 3, 2; column 1 is 0.5, 0.25, -4, 4.
        let (mut g, w) = graph(vec![1.0, 0.5, -5.0, 0.25, 3.0, -4.0, 2.0, 4.0], 4, 2);
        let r = prune(&mut g, Prune::TwoOfFour);
        assert_eq!(r, PruneReport { weights: 1, skipped: 0, elements: 8, zeros: 4 });
        assert_eq!(values(&g, w), vec![0.0, 0.0, -5.0, 0.0, 3.0, -4.0, 0.0, 4.0]);
        let (mut g, _) = graph(vec![1.0; 6], 3, 2);
        assert_eq!(prune(&mut g, Prune::TwoOfFour).skipped, 1);
    }

    #[test]
    fn ratio_zeroes_the_smallest() {
        let (mut g, w) = graph(vec![0.1, -3.0, 2.0, -0.2, 5.0, 0.3], 2, 3);
        let r = prune(&mut g, Prune::Ratio(0.5));
        assert_eq!(r.zeros, 3);
        assert_eq!(values(&g, w), vec![0.0, -3.0, 2.0, 0.0, 5.0, 0.0]);
        assert!("1.5".parse::<Prune>().is_err() && "2:8".parse::<Prune>().is_err());
        assert_eq!("0.25".parse::<Prune>(), Ok(Prune::Ratio(0.25)));
    }
}
