//! Structure-aware ONNX mutation: decode the `ModelProto` with prost, edit
//! it (opsets, op types, node inputs and outputs, attributes, tensor dims,
//! types and data, graph inputs and outputs, node order, nodes spliced in
//! from another corpus entry), encode it again.

use super::Rng;
use nanoc::onnx::proto::tensor_shape_proto::Dimension;
use nanoc::onnx::proto::tensor_shape_proto::dimension::Value as DimValue;
use nanoc::onnx::proto::type_proto::Value as TypeValue;
use nanoc::onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    ValueInfoProto,
};
use prost::Message;
use std::sync::OnceLock;

const FLOATS: &[f32] = &[
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    2.0,
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::MAX,
    f32::MIN,
    f32::MIN_POSITIVE,
    1e-45,
    1e30,
    -1e30,
    3.0e9,
    65504.0,
    1e-12,
];

const STRINGS: &[&str] = &[
    "",
    "NOTSET",
    "SAME_UPPER",
    "SAME_LOWER",
    "VALID",
    "DCR",
    "CRD",
    "nearest",
    "linear",
    "cubic",
    "half_pixel",
    "half_pixel_symmetric",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
    "tf_crop_and_resize",
    "round_prefer_floor",
    "floor",
    "constant",
    "reflect",
    "edge",
    "wrap",
    "none",
    "add",
    "mul",
    "max",
    "min",
    "tanh",
    "ij,jk->ik",
    "...ii->...i",
    "i,i",
    "\u{ff}",
];

const ATTR_NAMES: &[&str] = &[
    "axis",
    "axes",
    "perm",
    "keepdims",
    "epsilon",
    "alpha",
    "beta",
    "transA",
    "transB",
    "group",
    "kernel_shape",
    "pads",
    "strides",
    "dilations",
    "auto_pad",
    "mode",
    "value",
    "to",
    "upper",
    "k",
    "largest",
    "sorted",
    "batch_dims",
    "reduction",
    "blocksize",
    "ceil_mode",
    "count_include_pad",
    "output_padding",
    "output_shape",
    "coordinate_transformation_mode",
    "select_last_index",
    "exclusive",
    "reverse",
    "equation",
    "block_size",
    "bits",
    "N",
    "K",
    "interleaved",
    "rotary_embedding_dim",
    "num_heads",
    "stash_type",
    "noop_with_empty_axes",
    "allowzero",
    "approximate",
    "min",
    "max",
    "storage_order",
    "nearest_mode",
    "split",
    "num_outputs",
    "",
];

fn ops() -> &'static [&'static str] {
    static OPS: OnceLock<Vec<&'static str>> = OnceLock::new();
    OPS.get_or_init(|| {
        let mut v = nanoc::onnx::supported_ops();
        v.extend(["", "Loop", "If", "Scan", "Celu", "LSTM", "MatMulNBits", "SkipLayerNormalization", "FusedConv"]);
        v
    })
}

/// Decodes `data`, applies one to three edits, encodes it again.
pub fn mutate(rng: &mut Rng, data: &[u8], corpus: &[Vec<u8>]) -> Option<Vec<u8>> {
    let mut m = ModelProto::decode(data).ok()?;
    for _ in 0..1 + rng.below(3) {
        edit(rng, &mut m, corpus);
    }
    Some(m.encode_to_vec())
}

fn value_names(g: &GraphProto) -> Vec<String> {
    let mut v: Vec<String> = g.input.iter().filter_map(|i| i.name.clone()).collect();
    v.extend(g.initializer.iter().filter_map(|t| t.name.clone()));
    v.extend(g.node.iter().flat_map(|n| n.output.iter().cloned()));
    v.extend(["".to_string(), "missing".to_string()]);
    v
}

fn idx(rng: &mut Rng, len: usize) -> Option<usize> {
    (len > 0).then(|| rng.below(len))
}

fn donor(rng: &mut Rng, corpus: &[Vec<u8>]) -> Option<GraphProto> {
    ModelProto::decode(rng.pick(corpus)?.as_slice()).ok()?.graph
}

fn edit(rng: &mut Rng, m: &mut ModelProto, corpus: &[Vec<u8>]) {
    if rng.one_in(20) {
        // Opsets: another default-domain version, a second entry, none.
        match rng.below(4) {
            0 => m.opset_import.clear(),
            1 => m.opset_import.push(OperatorSetIdProto {
                domain: Some(if rng.one_in(2) { "com.microsoft".into() } else { String::new() }),
                version: Some(rng.below(32) as i64),
            }),
            _ => {
                if let Some(i) = idx(rng, m.opset_import.len()) {
                    m.opset_import[i].version =
                        Some(if rng.one_in(2) { rng.interesting_i64() } else { 10 + rng.below(22) as i64 });
                }
            }
        }
        return;
    }
    let g = m.graph.get_or_insert_with(Default::default);
    let names = value_names(g);
    match rng.below(16) {
        // Op type (and domain).
        0 => {
            if let Some(i) = idx(rng, g.node.len()) {
                g.node[i].op_type = Some(rng.pick(ops()).copied().unwrap_or("Add").to_string());
                if rng.one_in(4) {
                    let d = ["", "ai.onnx", "com.microsoft", "bogus"];
                    g.node[i].domain = Some(rng.pick(&d).copied().unwrap_or("").to_string());
                }
            }
        }
        // Node inputs: another value (including the node's own or a later
        // node's output: cycles and uses before definition), added, removed.
        1 | 2 => {
            if let Some(i) = idx(rng, g.node.len()) {
                let name = rng.pick(&names).cloned().unwrap_or_default();
                let n = &mut g.node[i];
                match rng.below(4) {
                    0 => n.input.push(name),
                    1 => {
                        if let Some(k) = idx(rng, n.input.len()) {
                            n.input.remove(k);
                        }
                    }
                    2 => {
                        let own = n.output.first().cloned().unwrap_or_default();
                        if let Some(k) = idx(rng, n.input.len()) {
                            n.input[k] = own;
                        }
                    }
                    _ => {
                        if let Some(k) = idx(rng, n.input.len()) {
                            n.input[k] = name;
                        }
                    }
                }
            }
        }
        // Node outputs: renamed onto another value (duplicate definitions),
        // added, removed, emptied.
        3 => {
            if let Some(i) = idx(rng, g.node.len()) {
                let name = rng.pick(&names).cloned().unwrap_or_default();
                let n = &mut g.node[i];
                match rng.below(3) {
                    0 => n.output.push(name),
                    1 => {
                        if let Some(k) = idx(rng, n.output.len()) {
                            n.output.remove(k);
                        }
                    }
                    _ => {
                        if let Some(k) = idx(rng, n.output.len()) {
                            n.output[k] = name;
                        }
                    }
                }
            }
        }
        // Attribute values.
        4..=6 => {
            let Some(i) = idx(rng, g.node.len()) else { return };
            let n = &mut g.node[i];
            match idx(rng, n.attribute.len()) {
                Some(k) => edit_attribute(rng, &mut n.attribute[k]),
                None => n.attribute.push(new_attribute(rng)),
            }
        }
        // Attributes added, removed, duplicated, taken from another node.
        7 => {
            let donor_attr = g.node.iter().flat_map(|n| n.attribute.iter()).nth(rng.below(8)).cloned();
            let Some(i) = idx(rng, g.node.len()) else { return };
            let n = &mut g.node[i];
            match rng.below(4) {
                0 => n.attribute.push(new_attribute(rng)),
                1 => {
                    if let Some(k) = idx(rng, n.attribute.len()) {
                        n.attribute.remove(k);
                    }
                }
                2 => {
                    if let Some(k) = idx(rng, n.attribute.len()) {
                        let a = n.attribute[k].clone();
                        n.attribute.push(a);
                    }
                }
                _ => n.attribute.extend(donor_attr),
            }
        }
        // Initializers (dims, type, data, location, name).
        8..=10 => {
            if let Some(i) = idx(rng, g.initializer.len()) {
                let other = rng.pick(&names).cloned();
                edit_tensor(rng, &mut g.initializer[i], other);
            } else if let Some(i) = idx(rng, g.node.len()) {
                // A Constant node's tensor.
                if let Some(t) = g.node[i].attribute.iter_mut().find_map(|a| a.t.as_mut()) {
                    edit_tensor(rng, t, None);
                }
            }
        }
        // Graph inputs: edited, or frozen into an initializer of random
        // data (so the node reading it is constant-folded by the
        // interpreter).
        11 => {
            let Some(i) = idx(rng, g.input.len()) else { return };
            if rng.one_in(2) {
                if let Some(t) = freeze(rng, &g.input[i]) {
                    g.input.remove(i);
                    g.initializer.push(t);
                }
            } else {
                edit_value_info(rng, &mut g.input[i], &names);
            }
        }
        // Graph outputs.
        12 => match rng.below(3) {
            0 => {
                if let Some(i) = idx(rng, g.output.len()) {
                    edit_value_info(rng, &mut g.output[i], &names);
                }
            }
            1 => {
                if let Some(i) = idx(rng, g.output.len()) {
                    let o = g.output[i].clone();
                    g.output.push(o);
                }
            }
            _ => {
                if let Some(i) = idx(rng, g.output.len()) {
                    g.output.remove(i);
                }
            }
        },
        // Node order: swap, delete, duplicate.
        13 => {
            let (Some(a), Some(b)) = (idx(rng, g.node.len()), idx(rng, g.node.len())) else { return };
            match rng.below(3) {
                0 => g.node.swap(a, b),
                1 => {
                    g.node.remove(a);
                }
                _ => {
                    let n = g.node[a].clone();
                    g.node.insert(b, n);
                }
            }
        }
        // Splice from another model: a node (wired to our values) or an initializer.
        14 => {
            let Some(d) = donor(rng, corpus) else { return };
            if rng.one_in(3) {
                if let Some(t) = rng.pick(&d.initializer) {
                    g.initializer.push(t.clone());
                }
            } else if let Some(n) = rng.pick(&d.node) {
                let mut n: NodeProto = n.clone();
                for inp in n.input.iter_mut() {
                    if !rng.one_in(4) {
                        *inp = rng.pick(&names).cloned().unwrap_or_default();
                    }
                }
                let at = rng.below(g.node.len() + 1);
                g.node.insert(at, n);
            }
        }
        // Rarely: a long chain of copies of one node, a huge attribute, a
        // subgraph attribute nested deeply, a sparse initializer.
        _ => match rng.below(4) {
            0 => {
                if let Some(i) = idx(rng, g.node.len()) {
                    let base = g.node[i].clone();
                    let base_out = base.output.first().cloned().unwrap_or_default();
                    let mut prev = base_out.clone();
                    for k in 0..rng.small(2000) {
                        let mut c = base.clone();
                        c.name = Some(format!("chain{k}"));
                        if let Some(inp) = c.input.first_mut() {
                            *inp = prev.clone();
                        }
                        let out = format!("{base_out}_chain{k}");
                        if let Some(o) = c.output.first_mut() {
                            *o = out.clone();
                        }
                        prev = out;
                        g.node.push(c);
                    }
                }
            }
            1 => {
                if let Some(i) = idx(rng, g.node.len()) {
                    let n = rng.small(1 << 17);
                    let name = rng.pick(ATTR_NAMES).copied().unwrap_or("axes").to_string();
                    let ints = (0..n).map(|_| rng.interesting_i64()).collect();
                    g.node[i].attribute.push(AttributeProto {
                        name: Some(name),
                        r#type: Some(7),
                        ints,
                        ..Default::default()
                    });
                }
            }
            2 => {
                let mut inner = GraphProto::default();
                for _ in 0..rng.small(200) {
                    let node = NodeProto {
                        op_type: Some("If".into()),
                        attribute: vec![AttributeProto {
                            name: Some("then_branch".into()),
                            r#type: Some(5),
                            g: Some(inner),
                            ..Default::default()
                        }],
                        ..Default::default()
                    };
                    inner = GraphProto { node: vec![node], ..Default::default() };
                }
                g.node.extend(inner.node);
            }
            _ => g.sparse_initializer.push(Default::default()),
        },
    }
}

fn new_attribute(rng: &mut Rng) -> AttributeProto {
    let mut a = AttributeProto {
        name: Some(rng.pick(ATTR_NAMES).copied().unwrap_or("axis").to_string()),
        ..Default::default()
    };
    match rng.below(5) {
        0 => {
            a.r#type = Some(2);
            a.i = Some(rng.interesting_i64());
        }
        1 => {
            a.r#type = Some(1);
            a.f = rng.pick(FLOATS).copied();
        }
        2 => {
            a.r#type = Some(7);
            a.ints = (0..rng.below(6)).map(|_| rng.interesting_i64()).collect();
        }
        3 => {
            a.r#type = Some(3);
            a.s = rng.pick(STRINGS).map(|s| s.as_bytes().to_vec());
        }
        _ => {
            a.r#type = Some(4);
            a.t = Some(TensorProto {
                data_type: Some(1 + rng.below(16) as i32),
                dims: vec![rng.below(4) as i64],
                raw_data: Some(vec![0; rng.below(32)]),
                ..Default::default()
            });
        }
    }
    a
}

fn edit_attribute(rng: &mut Rng, a: &mut AttributeProto) {
    match rng.below(9) {
        0 => a.i = Some(rng.interesting_i64()),
        1 => a.f = rng.pick(FLOATS).copied(),
        2 => {
            if let Some(k) = idx(rng, a.ints.len()) {
                a.ints[k] = rng.interesting_i64();
            } else {
                a.ints.push(rng.interesting_i64());
            }
        }
        3 => match rng.below(3) {
            0 => a.ints.push(rng.interesting_i64()),
            1 => {
                a.ints.pop();
            }
            _ => a.ints.clear(),
        },
        4 => a.s = rng.pick(STRINGS).map(|s| s.as_bytes().to_vec()),
        5 => a.r#type = Some(rng.below(15) as i32),
        6 => {
            if let Some(k) = idx(rng, a.floats.len()) {
                a.floats[k] = rng.pick(FLOATS).copied().unwrap_or(0.0);
            } else {
                a.floats.push(1.0);
            }
        }
        7 => a.name = Some(rng.pick(ATTR_NAMES).copied().unwrap_or("axis").to_string()),
        _ => {
            if let Some(t) = a.t.as_mut() {
                edit_tensor(rng, t, None);
            }
        }
    }
}

fn edit_tensor(rng: &mut Rng, t: &mut TensorProto, other_name: Option<String>) {
    match rng.below(10) {
        0 | 1 => {
            if let Some(k) = idx(rng, t.dims.len()) {
                t.dims[k] = rng.interesting_i64();
            } else {
                t.dims.push(rng.interesting_i64());
            }
        }
        2 => match rng.below(3) {
            0 => t.dims.push(rng.interesting_i64()),
            1 => {
                t.dims.pop();
            }
            _ => t.dims.clear(),
        },
        3 => t.data_type = Some(if rng.one_in(4) { rng.interesting_i64() as i32 } else { rng.below(24) as i32 }),
        4 | 5 => {
            let raw = t.raw_data.get_or_insert_with(Vec::new);
            match rng.below(4) {
                0 => raw.truncate(rng.below(raw.len() + 1)),
                1 => raw.extend(std::iter::repeat_n(0x3f, rng.small(64))),
                2 => {
                    if let Some(k) = idx(rng, raw.len()) {
                        raw[k] = rng.next_u64() as u8;
                    }
                }
                _ => {
                    t.raw_data = None;
                }
            }
        }
        6 => {
            // Data moved to a typed field (or the typed field edited).
            let n = t.raw_data.take().map(|r| r.len() / 4).unwrap_or(0);
            match rng.below(4) {
                0 => t.float_data = vec![1.5; n + rng.below(3)],
                1 => t.int64_data = vec![1; n / 2 + rng.below(3)],
                2 => t.int32_data = vec![1; n + rng.below(3)],
                _ => t.double_data = vec![0.25; n / 2 + rng.below(3)],
            }
        }
        7 => {
            // External data in the harness's scratch folder.
            t.raw_data = None;
            t.data_location = Some(1);
            let loc = ["data.bin", "missing.bin", "../data.bin", "/etc/passwd", "", "."];
            t.external_data = vec![StringStringEntryProto {
                key: Some("location".into()),
                value: Some(rng.pick(&loc).copied().unwrap_or("data.bin").to_string()),
            }];
            for key in ["offset", "length"] {
                if rng.one_in(2) {
                    let v = if rng.one_in(4) { "x".to_string() } else { rng.interesting_i64().to_string() };
                    t.external_data.push(StringStringEntryProto { key: Some(key.into()), value: Some(v) });
                }
            }
        }
        8 => t.name = other_name,
        _ => {
            t.segment = Some(Default::default());
        }
    }
}

fn edit_value_info(rng: &mut Rng, vi: &mut ValueInfoProto, names: &[String]) {
    let tt = match vi.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        Some(TypeValue::TensorType(tt)) => Some(tt),
        _ => None,
    };
    match (rng.below(6), tt) {
        (0, Some(tt)) => tt.elem_type = Some(rng.below(24) as i32),
        (1 | 2, Some(tt)) => {
            let shape = tt.shape.get_or_insert_with(Default::default);
            let d = match rng.below(4) {
                0 => Some(DimValue::DimParam(["batch", "seq", "N", "unbound", ""][rng.below(5)].to_string())),
                1 => None,
                _ => Some(DimValue::DimValue(rng.interesting_i64())),
            };
            match idx(rng, shape.dim.len()) {
                Some(k) if !rng.one_in(4) => shape.dim[k].value = d,
                _ => shape.dim.push(Dimension { value: d, denotation: None }),
            }
        }
        (3, Some(tt)) => {
            if let Some(s) = tt.shape.as_mut() {
                if rng.one_in(2) {
                    s.dim.pop();
                } else {
                    tt.shape = None;
                }
            }
        }
        (4, _) => vi.name = rng.pick(names).cloned(),
        _ => vi.r#type = None,
    }
}

/// An initializer with the name, element type and shape of graph input
/// `vi` (symbolic dims bound to 1..4) holding random data: mostly small
/// integers (valid indices, axes, shapes), sometimes random bytes.
fn freeze(rng: &mut Rng, vi: &ValueInfoProto) -> Option<TensorProto> {
    let Some(TypeValue::TensorType(tt)) = vi.r#type.as_ref()?.value.as_ref() else { return None };
    let code = tt.elem_type?;
    let size = match code {
        1 | 6 => 4,
        2 | 3 | 9 => 1,
        7 | 11 => 8,
        10 | 16 => 2,
        _ => return None,
    };
    let dims: Vec<i64> = tt
        .shape
        .as_ref()?
        .dim
        .iter()
        .map(|d| match d.value {
            Some(DimValue::DimValue(v)) => v,
            _ => 1 + rng.below(4) as i64,
        })
        .collect();
    let numel = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(usize::try_from(d).ok()?))?;
    if numel > 1 << 14 {
        return None;
    }
    let random_bytes = rng.one_in(4);
    let mut raw = Vec::with_capacity(numel * size);
    for _ in 0..numel {
        let small = rng.below(8) as i64 - 2;
        match code {
            _ if random_bytes => raw.extend((0..size).map(|_| rng.next_u64() as u8)),
            1 => raw.extend_from_slice(&(small as f32 * 0.5).to_le_bytes()),
            11 => raw.extend_from_slice(&(small as f64 * 0.5).to_le_bytes()),
            10 | 16 => raw.extend_from_slice(&[0, small.clamp(0, 63) as u8]),
            9 => raw.push((small > 1) as u8),
            _ => raw.extend_from_slice(&small.to_le_bytes()[..size]),
        }
    }
    Some(TensorProto { name: vi.name.clone(), data_type: Some(code), dims, raw_data: Some(raw), ..Default::default() })
}
