//! The `.ngraph` printer.

use super::INLINE_MAX;
use crate::weights::Weights;
use crate::{DType, Element, Graph, NodeId, Op, Tensor, Window};
use half::{bf16, f16};
use std::collections::{HashMap, HashSet};
use std::fmt::Write;

/// Prints a graph in the `.ngraph` text format (see the [module docs](super)).
/// Constants with at most [`INLINE_MAX`] elements are printed inline; larger
/// ones are printed as `@external`, a reference to the weight of the same
/// name in the side weights file (see [`external_weights`]).
///
/// Never fails: a graph with a cycle (which the verifier rejects) is printed
/// in insertion order instead of topological order.
pub fn print(g: &Graph) -> String {
    let order = print_order(g);
    let mut labels: HashMap<NodeId, String> = HashMap::with_capacity(order.len());
    let (mut consts, mut values) = (0usize, 0usize);
    for &id in &order {
        let label = if matches!(g.node(id).op, Op::Const(_)) {
            consts += 1;
            format!("w{}", consts - 1)
        } else {
            values += 1;
            format!("%{}", values - 1)
        };
        labels.insert(id, label);
    }
    let label = |id: NodeId| labels.get(&id).map_or("%?", String::as_str);

    let mut s = String::new();
    let _ = writeln!(s, "graph {} {{", quote(&g.name));
    for &id in &order {
        let n = g.node(id);
        let _ = write!(s, "  {} = ", label(id));
        match &n.op {
            Op::Input => {
                let _ = write!(s, "input {} : {}", quote(&n.name), n.ty);
            }
            Op::Const(t) => {
                let _ = write!(s, "const {} : {}", quote(&n.name), t.ty());
                if is_inline(t) {
                    let _ = write!(s, " = [{}]", inline_values(t).join(", "));
                } else {
                    s.push_str(" @external");
                }
            }
            op => {
                s.push_str(op.name());
                let attrs = attributes(op);
                if !attrs.is_empty() {
                    let list: Vec<String> = attrs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
                    let _ = write!(s, "{{{}}}", list.join(", "));
                }
                let args: Vec<&str> = g.args(id).into_iter().map(label).collect();
                let _ = write!(s, "({}) {} : {}", args.join(", "), quote(&n.name), n.ty);
            }
        }
        s.push('\n');
    }
    for (name, id) in g.outputs() {
        let _ = writeln!(s, "  output {} = {}", quote(name), label(*id));
    }
    s.push_str("}\n");
    s
}

/// The constants [`print`] refers to by name (those with more than
/// [`INLINE_MAX`] elements), keyed by node name, to save as the side
/// `.safetensors` file. The tensors share their bytes with the graph.
pub fn external_weights(g: &Graph) -> Weights {
    g.node_ids()
        .into_iter()
        .filter_map(|id| {
            let n = g.node(id);
            match &n.op {
                Op::Const(t) if !is_inline(t) => Some((n.name.clone(), t.clone())),
                _ => None,
            }
        })
        .collect()
}

/// Whether a constant is printed inline.
fn is_inline(t: &Tensor) -> bool {
    t.shape().numel() <= INLINE_MAX
}

/// Graph inputs in graph-input order, then every other node in
/// `topo_order` (insertion order if the graph has a cycle).
fn print_order(g: &Graph) -> Vec<NodeId> {
    let topo = g.topo_order().unwrap_or_else(|_| g.node_ids());
    let mut seen: HashSet<NodeId> = HashSet::with_capacity(topo.len());
    let mut order = Vec::with_capacity(topo.len());
    for id in g.inputs().iter().copied().chain(topo) {
        if seen.insert(id) {
            order.push(id);
        }
    }
    order
}

/// Formats an f32 so that parsing gives it back exactly (`inf`, `-inf` and
/// `NaN` included).
pub(super) fn fmt_f32(x: f32) -> String {
    format!("{x:?}")
}

/// The elements of a constant, row-major, as printed inline.
fn inline_values(t: &Tensor) -> Vec<String> {
    let size = t.dtype().size_bytes();
    let chunks = t.bytes().chunks_exact(size);
    match t.dtype() {
        DType::F32 => chunks.map(|c| fmt_f32(f32::decode_le(c))).collect(),
        DType::F16 => chunks.map(|c| fmt_f32(f16::decode_le(c).to_f32())).collect(),
        DType::BF16 => chunks.map(|c| fmt_f32(bf16::decode_le(c).to_f32())).collect(),
        DType::I8 => chunks.map(|c| i8::decode_le(c).to_string()).collect(),
        DType::U8 => chunks.map(|c| u8::decode_le(c).to_string()).collect(),
        DType::I32 => chunks.map(|c| i32::decode_le(c).to_string()).collect(),
        DType::I64 => chunks.map(|c| i64::decode_le(c).to_string()).collect(),
        DType::Bool => chunks.map(|c| bool::decode_le(c).to_string()).collect(),
    }
}

fn list<T: ToString>(v: &[T]) -> String {
    let items: Vec<String> = v.iter().map(T::to_string).collect();
    format!("[{}]", items.join(", "))
}

fn window(w: &Window) -> Vec<(&'static str, String)> {
    vec![
        ("kernel", list(&w.kernel)),
        ("strides", list(&w.strides)),
        ("pads_begin", list(&w.pads_begin)),
        ("pads_end", list(&w.pads_end)),
        ("dilations", list(&w.dilations)),
    ]
}

/// The attributes of an op, in their fixed printing order (the same order
/// as the parser's op table lists them).
pub(crate) fn attributes(op: &Op) -> Vec<(&'static str, String)> {
    match op {
        Op::Input
        | Op::Const(_)
        | Op::Unary(_)
        | Op::Binary(_)
        | Op::Where
        | Op::MatMul
        | Op::QMatMul
        | Op::SparseMatMul
        | Op::Reshape
        | Op::Broadcast => Vec::new(),
        Op::Clip { min, max } => vec![("min", fmt_f32(*min)), ("max", fmt_f32(*max))],
        Op::Cast { to } => vec![("to", to.name().to_string())],
        Op::Dequantize { axis, block } => vec![("axis", axis.to_string()), ("block", block.to_string())],
        Op::QMatMulBlock { bits, block } => vec![("bits", bits.to_string()), ("block", block.to_string())],
        Op::Quantize { axis, block, to } => {
            vec![("axis", axis.to_string()), ("block", block.to_string()), ("to", to.name().to_string())]
        }
        Op::Trilu { upper, k } => vec![("upper", upper.to_string()), ("k", k.to_string())],
        Op::Conv { window: w, group } => {
            let mut a = window(w);
            a.push(("group", group.to_string()));
            a
        }
        Op::Softmax { axis } | Op::Concat { axis } | Op::Gather { axis } => vec![("axis", axis.to_string())],
        Op::LayerNorm { axis, epsilon } | Op::RmsNorm { axis, epsilon } => {
            vec![("axis", axis.to_string()), ("epsilon", fmt_f32(*epsilon))]
        }
        Op::Attention { scale, causal } => vec![("scale", fmt_f32(*scale)), ("causal", causal.to_string())],
        Op::Reduce { axes, keep_dims, .. } => vec![("axes", list(axes)), ("keep_dims", keep_dims.to_string())],
        Op::MaxPool { window: w } => window(w),
        Op::AvgPool { window: w, count_include_pad } => {
            let mut a = window(w);
            a.push(("count_include_pad", count_include_pad.to_string()));
            a
        }
        Op::Transpose { perm } => vec![("perm", list(perm))],
        Op::Slice { starts, steps } => vec![("starts", list(starts)), ("steps", list(steps))],
        Op::CumSum { axis, exclusive, reverse } => {
            vec![("axis", axis.to_string()), ("exclusive", exclusive.to_string()), ("reverse", reverse.to_string())]
        }
        Op::ArgReduce { axis, keep_dims, select_last, .. } => vec![
            ("axis", axis.to_string()),
            ("keep_dims", keep_dims.to_string()),
            ("select_last", select_last.to_string()),
        ],
        Op::TopK { axis, k, largest } => {
            vec![("axis", axis.to_string()), ("k", k.to_string()), ("largest", largest.to_string())]
        }
        Op::GatherElements { axis } => vec![("axis", axis.to_string())],
        Op::GatherNd { batch_dims } => vec![("batch_dims", batch_dims.to_string())],
        Op::ScatterNd { reduction } => vec![("reduction", reduction.name().to_string())],
        Op::Pad { mode, pads_begin, pads_end } => {
            vec![("mode", mode.name().to_string()), ("pads_begin", list(pads_begin)), ("pads_end", list(pads_end))]
        }
        Op::Fused { body } => vec![("body", quote(&body.to_string()))],
        Op::MatMulEpilogue { epilogue } => vec![("epilogue", quote(&epilogue.to_string()))],
        Op::ConvTranspose { window: w, group, output_padding } => {
            let mut a = window(w);
            a.push(("group", group.to_string()));
            a.push(("output_padding", list(output_padding)));
            a
        }
    }
}

/// Quotes a string: `"` and `\` are escaped with a backslash, and so are
/// newline (`\n`), carriage return (`\r`) and tab (`\t`); other control
/// characters become `\u{XX}`.
pub(super) fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\r' => q.push_str("\\r"),
            '\t' => q.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(q, "\\u{{{:x}}}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}
