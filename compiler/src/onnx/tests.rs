//! Importer tests on tiny models built in Rust with the prost structs, plus
//! the generated fixtures under `tests/fixtures/` when they exist.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::proto::attribute_proto::AttributeType;
use super::proto::tensor_proto::{DataLocation, DataType};
use super::proto::tensor_shape_proto::{Dimension, dimension};
use super::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, type_proto,
};
use super::*;
use nanoc_ir::{DType, Graph, NodeId, Op, Tensor, TensorType};
use prost::Message;
use std::collections::HashMap;
use std::path::PathBuf;

// ---- model builders ------------------------------------------------------

enum D {
    V(i64),
    P(&'static str),
}

fn vi(name: &str, elem: DataType, dims: &[D]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            denotation: None,
            value: Some(match d {
                D::V(v) => dimension::Value::DimValue(*v),
                D::P(p) => dimension::Value::DimParam(p.to_string()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            denotation: None,
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
        ..Default::default()
    }
}

fn vf(name: &str, dims: &[i64]) -> ValueInfoProto {
    vi(name, DataType::Float, &dims.iter().map(|&d| D::V(d)).collect::<Vec<_>>())
}

/// An output with no declared type (shape inference not run).
fn out(name: &str) -> ValueInfoProto {
    ValueInfoProto { name: Some(name.into()), ..Default::default() }
}

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

fn attr(name: &str, ty: AttributeType) -> AttributeProto {
    AttributeProto { name: Some(name.into()), r#type: Some(ty as i32), ..Default::default() }
}
fn a_i(name: &str, v: i64) -> AttributeProto {
    AttributeProto { i: Some(v), ..attr(name, AttributeType::Int) }
}
fn a_f(name: &str, v: f32) -> AttributeProto {
    AttributeProto { f: Some(v), ..attr(name, AttributeType::Float) }
}
fn a_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { ints: v.to_vec(), ..attr(name, AttributeType::Ints) }
}
fn a_s(name: &str, v: &str) -> AttributeProto {
    AttributeProto { s: Some(v.as_bytes().to_vec()), ..attr(name, AttributeType::String) }
}

fn t_f32(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}
fn t_i64(name: &str, dims: &[i64], data: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Int64 as i32),
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

fn model_opset(
    opset: i64,
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    inits: Vec<TensorProto>,
) -> ModelProto {
    ModelProto {
        ir_version: Some(9),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(opset) }],
        graph: Some(GraphProto {
            name: Some("test_graph".into()),
            node: nodes,
            input: inputs,
            output: outputs,
            initializer: inits,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn model(
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    inits: Vec<TensorProto>,
) -> ModelProto {
    model_opset(18, nodes, inputs, outputs, inits)
}

fn import(m: &ModelProto, opts: &ImportOptions) -> Result<Graph, OnnxError> {
    import_onnx_bytes(&m.encode_to_vec(), "test.onnx", None, opts)
}

fn import_ok(m: &ModelProto) -> Graph {
    import(m, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

// ---- graph helpers -------------------------------------------------------

/// Names of the non-leaf ops in topological order.
fn op_names(g: &Graph) -> Vec<&'static str> {
    g.topo_order()
        .unwrap()
        .into_iter()
        .map(|id| g.node(id).op.name())
        .filter(|n| *n != "input" && *n != "const")
        .collect()
}

fn find(g: &Graph, name: &str) -> NodeId {
    g.node_ids().into_iter().find(|&id| g.node(id).name == name).unwrap_or_else(|| panic!("no node `{name}`"))
}

/// Evaluates the graph with the reference interpreter.
fn run(g: &Graph, inputs: &[Tensor]) -> Vec<Tensor> {
    let mut vals: HashMap<NodeId, Tensor> = HashMap::new();
    for (&id, t) in g.inputs().iter().zip(inputs) {
        vals.insert(id, t.clone());
    }
    for id in g.topo_order().unwrap() {
        let n = g.node(id);
        let t = match &n.op {
            Op::Input => continue,
            Op::Const(t) => t.clone(),
            op => {
                let args: Vec<&Tensor> = g.args(id).iter().map(|a| &vals[a]).collect();
                nanoc_ir::interp::eval_op(op, &args, &n.ty).unwrap_or_else(|e| panic!("{}: {e}", n.name))
            }
        };
        vals.insert(id, t);
    }
    g.outputs().iter().map(|(_, id)| vals[id].clone()).collect()
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

fn assert_close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nanoc-onnx-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

// ---- tests ---------------------------------------------------------------

fn gemm_model(b_is_const: bool) -> ModelProto {
    let b = [1.0f32, 0.0, -1.0, 2.0, 1.0, 0.5, 0.0, 0.0, 1.0, -1.0, -1.0, -1.0];
    let mut inits = vec![t_f32("C", &[4], &[1.0, 2.0, 3.0, 4.0])];
    let mut inputs = vec![vf("A", &[2, 3])];
    if b_is_const {
        inits.push(t_f32("B", &[4, 3], &b));
    } else {
        inputs.push(vf("B", &[4, 3]));
    }
    model(
        vec![node(
            "Gemm",
            "gemm",
            &["A", "B", "C"],
            &["Y"],
            vec![a_i("transB", 1), a_f("alpha", 2.0), a_f("beta", 0.5)],
        )],
        inputs,
        vec![vf("Y", &[2, 4])],
        inits,
    )
}

#[test]
fn gemm_decomposes_and_folds_constant_transpose() {
    let g = import_ok(&gemm_model(true));
    assert_eq!(g.name, "test_graph");
    // B^T and beta*C fold to constants.
    assert_eq!(op_names(&g), ["matmul", "mul", "add"]);
    assert!(matches!(g.node(find(&g, "gemm/transpose_b")).op, Op::Const(_)));
    assert!(matches!(g.node(find(&g, "gemm/beta_mul")).op, Op::Const(_)));
    assert_eq!(g.node(find(&g, "gemm/matmul")).op, Op::MatMul);
    let y = find(&g, "gemm");
    assert_eq!(g.outputs(), &[("Y".to_string(), y)]);
    assert_eq!(g.node(y).ty, TensorType::new(DType::F32, vec![2, 4]));

    let a = Tensor::from_vec(vec![2, 3], vec![1.0f32, 2.0, 3.0, -1.0, 0.0, 1.0]).unwrap();
    let got = run(&g, &[a]);
    // Y = 2 * A @ B^T + 0.5 * C
    let want = [
        2.0 * (1.0 + 0.0 - 3.0) + 0.5,
        2.0 * (2.0 + 2.0 + 1.5) + 1.0,
        2.0 * (0.0 + 0.0 + 3.0) + 1.5,
        2.0 * (-1.0 - 2.0 - 3.0) + 2.0,
        2.0 * (-1.0 + 0.0 - 1.0) + 0.5,
        2.0 * (-2.0 + 0.0 + 0.5) + 1.0,
        2.0 * (0.0 + 0.0 + 1.0) + 1.5,
        2.0 * (1.0 + 0.0 - 1.0) + 2.0,
    ];
    assert_close(&f32s(&got[0]), &want);
}

#[test]
fn gemm_with_dynamic_b_keeps_the_transpose() {
    let g = import_ok(&gemm_model(false));
    assert_eq!(op_names(&g), ["transpose", "matmul", "mul", "add"]);
    assert_eq!(g.node(find(&g, "gemm/transpose_b")).op, Op::Transpose { perm: vec![1, 0] });
    assert_eq!(g.node(find(&g, "gemm/alpha_mul")).op.name(), "mul");
    assert_eq!(g.node(find(&g, "gemm")).op.name(), "add");
}

#[test]
fn gemm_defaults_are_a_single_matmul() {
    let m = model(
        vec![node("Gemm", "", &["A", "B"], &["Y"], vec![])],
        vec![vf("A", &[2, 3]), vf("B", &[3, 4])],
        vec![vf("Y", &[2, 4])],
        vec![],
    );
    let g = import_ok(&m);
    assert_eq!(op_names(&g), ["matmul"]);
    find(&g, "Gemm_0");
}

/// The shape subgraph torch.onnx.export writes for `x.view(b, s, 2, 4)`.
#[test]
fn shape_subgraph_reshape_folds_to_a_constant_target() {
    let m = model(
        vec![
            node("Shape", "/Shape", &["x"], &["s"], vec![]),
            node(
                "Constant",
                "/Constant",
                &[],
                &["i0"],
                vec![AttributeProto { t: Some(t_i64("", &[], &[0])), ..attr("value", AttributeType::Tensor) }],
            ),
            node("Constant", "/Constant_1", &[], &["i1"], vec![a_i("value_int", 1)]),
            node("Gather", "/Gather", &["s", "i0"], &["b"], vec![a_i("axis", 0)]),
            node("Gather", "/Gather_1", &["s", "i1"], &["q"], vec![]),
            node("Unsqueeze", "/Unsqueeze", &["b", "ax"], &["b1"], vec![]),
            node("Unsqueeze", "/Unsqueeze_1", &["q", "ax"], &["q1"], vec![]),
            node("Concat", "/Concat", &["b1", "q1", "tail"], &["shp"], vec![a_i("axis", 0)]),
            node("Reshape", "/Reshape", &["x", "shp"], &["y"], vec![]),
        ],
        vec![vi("x", DataType::Float, &[D::P("batch"), D::P("seq"), D::V(8)])],
        vec![vi("y", DataType::Float, &[D::P("batch"), D::P("seq"), D::V(2), D::V(4)])],
        vec![t_i64("ax", &[1], &[0]), t_i64("tail", &[2], &[2, 4])],
    );
    let opts = ImportOptions { dims: [("batch".into(), 2), ("seq".into(), 3)].into(), ..Default::default() };
    let g = import(&m, &opts).unwrap();
    assert_eq!(g.node_count(), 2, "only x and the reshape remain");
    let y = find(&g, "/Reshape");
    assert_eq!(g.node(y).op, Op::Reshape);
    assert_eq!(g.node(y).ty, TensorType::new(DType::F32, vec![2, 3, 2, 4]));
    assert_eq!(g.args(y), vec![find(&g, "x")]);

    // Binding through the input's concrete shape works the same way.
    let opts = ImportOptions { input_shapes: [("x".into(), vec![5, 1, 8])].into(), ..Default::default() };
    let g = import(&m, &opts).unwrap();
    assert_eq!(g.node(find(&g, "/Reshape")).ty.shape.dims(), &[5, 1, 2, 4]);
    // A conflicting static dim is reported.
    let opts = ImportOptions { input_shapes: [("x".into(), vec![5, 1, 9])].into(), ..Default::default() };
    let e = import(&m, &opts).unwrap_err().to_string();
    assert!(e.contains("input `x` dim 2 is 8 but the given shape [5, 1, 9] has 9"), "{e}");
}

#[test]
fn every_unsupported_op_type_is_listed_at_once() {
    let m = model(
        vec![
            node("Celu", "celu_0", &["x"], &["a"], vec![]),
            node("Hardmax", "hm_0", &["a"], &["b"], vec![]),
            node("Relu", "r", &["b"], &["c"], vec![]),
            node("Hardmax", "hm_1", &["c"], &["d"], vec![]),
            node("LpNormalization", "lpn", &["d"], &["y"], vec![]),
        ],
        vec![vi("x", DataType::Float, &[D::P("n")])],
        vec![out("y")],
        vec![],
    );
    let e = import(&m, &ImportOptions::default()).unwrap_err();
    assert!(e.is_unsupported());
    assert_eq!(
        e.to_string(),
        "test.onnx: 3 unsupported op types: Celu (1 node: celu_0), Hardmax (2 nodes: hm_0, hm_1), LpNormalization (1 node: lpn)"
    );
    let OnnxError::Unsupported { ops, .. } = e else { panic!() };
    assert_eq!(
        ops[1],
        UnsupportedOp {
            op_type: "Hardmax".into(),
            domain: String::new(),
            count: 2,
            nodes: vec!["hm_0".into(), "hm_1".into()]
        }
    );

    // More than three nodes, unnamed nodes and other domains.
    let mut nodes: Vec<NodeProto> =
        (0..4).map(|i| node("Celu", &format!("c{i}"), &["x"], &[&format!("o{i}")], vec![])).collect();
    nodes.push(NodeProto { domain: Some("com.microsoft".into()), ..node("FusedGemm", "", &["x"], &["y"], vec![]) });
    let m = model(nodes, vec![vf("x", &[1])], vec![out("y")], vec![]);
    let e = import(&m, &ImportOptions::default()).unwrap_err().to_string();
    assert_eq!(
        e,
        "test.onnx: 2 unsupported op types: Celu (4 nodes: c0, c1, c2, ...), com.microsoft:FusedGemm (1 node: FusedGemm_4)"
    );
}

#[test]
fn truncated_file_names_the_file() {
    let dir = temp_dir("truncated");
    let path = dir.join("model.onnx");
    let bytes = gemm_model(true).encode_to_vec();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let e = import_onnx(&path, &ImportOptions::default()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, OnnxError::Decode { .. }), "{msg}");
    assert!(msg.starts_with(&format!("{}: truncated or corrupt protobuf: ", path.display())), "{msg}");
    assert!(!e.is_unsupported());

    let e = import_onnx(&dir.join("missing.onnx"), &ImportOptions::default()).unwrap_err().to_string();
    assert!(e.contains("missing.onnx: cannot read the model"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unbound_symbolic_dims_are_all_listed() {
    let m = model(
        vec![node("Identity", "id", &["input_ids"], &["y"], vec![])],
        vec![vi("input_ids", DataType::Int64, &[D::P("batch"), D::P("seq")])],
        vec![out("y")],
        vec![],
    );
    let e = import(&m, &ImportOptions::default()).unwrap_err();
    let OnnxError::UnboundDims { dims, .. } = &e else { panic!("{e}") };
    assert_eq!(dims.len(), 2);
    assert_eq!(
        e.to_string(),
        "test.onnx: 2 unbound input dims: input `input_ids` dim 0 is symbolic `batch`: bind it with --dim batch=N; \
         input `input_ids` dim 1 is symbolic `seq`: bind it with --dim seq=N"
    );
    let opts = ImportOptions { dims: [("batch".into(), 1)].into(), ..Default::default() };
    let e = import(&m, &opts).unwrap_err().to_string();
    assert_eq!(
        e,
        "test.onnx: 1 unbound input dim: input `input_ids` dim 1 is symbolic `seq`: bind it with --dim seq=N"
    );
    let opts = ImportOptions { dims: [("batch".into(), 1), ("seq".into(), 7)].into(), ..Default::default() };
    let g = import(&m, &opts).unwrap();
    assert_eq!(g.node(g.inputs()[0]).ty, TensorType::new(DType::I64, vec![1, 7]));
}

#[test]
fn external_data_initializer_loads() {
    let dir = temp_dir("external");
    let mut data = vec![0xAAu8; 8];
    data.extend([1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0].iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(dir.join("weights.bin"), &data).unwrap();
    let ext = |k: &str, v: &str| StringStringEntryProto { key: Some(k.into()), value: Some(v.into()) };
    let w = TensorProto {
        name: Some("W".into()),
        dims: vec![2, 3],
        data_type: Some(DataType::Float as i32),
        data_location: Some(DataLocation::External as i32),
        external_data: vec![ext("location", "weights.bin"), ext("offset", "8"), ext("length", "24")],
        ..Default::default()
    };
    let m = model(
        vec![node("Add", "add", &["x", "W"], &["y"], vec![])],
        vec![vf("x", &[2, 3])],
        vec![vf("y", &[2, 3])],
        vec![w.clone()],
    );
    let path = dir.join("model.onnx");
    std::fs::write(&path, m.encode_to_vec()).unwrap();
    let g = import_onnx(&path, &ImportOptions::default()).unwrap();
    let Op::Const(t) = &g.node(find(&g, "W")).op else { panic!() };
    assert_eq!(f32s(t), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);

    // A missing file and a short file are errors naming the tensor and file.
    let mut w2 = w.clone();
    w2.external_data[0] = ext("location", "nope.bin");
    let m2 =
        model(vec![node("Add", "add", &["x", "W"], &["y"], vec![])], vec![vf("x", &[2, 3])], vec![out("y")], vec![w2]);
    let e = import_onnx_bytes(&m2.encode_to_vec(), "m.onnx", Some(&dir), &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("m.onnx: tensor `W`: external data file `") && e.ends_with("nope.bin`: file not found"),
        "{e}"
    );
    let mut w3 = w;
    w3.external_data[1] = ext("offset", "16");
    w3.external_data.truncate(2);
    let m3 =
        model(vec![node("Add", "add", &["x", "W"], &["y"], vec![])], vec![vf("x", &[2, 3])], vec![out("y")], vec![w3]);
    let e = import_onnx_bytes(&m3.encode_to_vec(), "m.onnx", Some(&dir), &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("past the end of the file (32 bytes)"), "{e}");
    let e = import_onnx_bytes(&m3.encode_to_vec(), "m.onnx", None, &ImportOptions::default()).unwrap_err().to_string();
    assert!(e.contains("without a directory"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn opset_below_13_is_rejected() {
    let m =
        model_opset(11, vec![node("Relu", "r", &["x"], &["y"], vec![])], vec![vf("x", &[2])], vec![out("y")], vec![]);
    let e = import(&m, &ImportOptions::default()).unwrap_err().to_string();
    assert!(e.starts_with("test.onnx: default-domain opset 11 is too old: nanoc needs opset 13 to 28"), "{e}");
}

#[test]
fn non_constant_input_where_a_constant_is_needed() {
    let m = model(
        vec![node("Reshape", "rs", &["x", "s"], &["y"], vec![])],
        vec![vf("x", &[2, 3]), vi("s", DataType::Int64, &[D::V(2)])],
        vec![out("y")],
        vec![],
    );
    let e = import(&m, &ImportOptions::default()).unwrap_err().to_string();
    assert!(e.starts_with("test.onnx: node `rs` (Reshape): input 1 `s` must be a constant"), "{e}");

    let m = model(vec![node("Relu", "r", &["nope"], &["y"], vec![])], vec![vf("x", &[2])], vec![out("y")], vec![]);
    let e = import(&m, &ImportOptions::default()).unwrap_err().to_string();
    assert!(e.contains("node `r` (Relu): input 0 `nope` is not produced by an earlier node"), "{e}");

    let m = model(
        vec![node("Add", "add", &["x", "i"], &["y"], vec![])],
        vec![vf("x", &[2]), vi("i", DataType::Int64, &[D::V(2)])],
        vec![out("y")],
        vec![],
    );
    let e = import(&m, &ImportOptions::default()).unwrap_err().to_string();
    assert!(e.contains("node `add` (Add): operands have different element types f32[2] and i64[2]"), "{e}");

    let m = model(
        vec![node("Softmax", "sm", &["x"], &["y"], vec![a_f("axis", 1.0)])],
        vec![vf("x", &[2])],
        vec![out("y")],
        vec![],
    );
    let e = import(&m, &ImportOptions::default()).unwrap_err().to_string();
    assert!(e.contains("node `sm` (Softmax): attribute `axis` must be INT, got FLOAT"), "{e}");
}

#[test]
fn slice_clamps_like_onnx() {
    use super::ops::slice_range_for_tests as sr;
    assert_eq!(sr(0, i64::MAX, 1, 5), (0, 5));
    assert_eq!(sr(-1, i64::MIN, -1, 5), (4, 5));
    assert_eq!(sr(0, i64::MAX, 2, 5), (0, 3));
    assert_eq!(sr(10, 20, 1, 5), (0, 0));
    assert_eq!(sr(-100, 3, 1, 5), (0, 3));
    assert_eq!(sr(3, 0, -2, 5), (3, 2));
    assert_eq!(sr(1, 3, 1, 0), (0, 0));

    let m = model(
        vec![node("Slice", "sl", &["x", "st", "en", "ax", "sp"], &["y"], vec![])],
        vec![vf("x", &[3, 4])],
        vec![vf("y", &[3, 2])],
        vec![t_i64("st", &[1], &[-1]), t_i64("en", &[1], &[-10]), t_i64("ax", &[1], &[-1]), t_i64("sp", &[1], &[-2])],
    );
    let g = import_ok(&m);
    let x = Tensor::from_vec(vec![3, 4], (0..12).map(|v| v as f32).collect()).unwrap();
    assert_eq!(f32s(&run(&g, &[x])[0]), vec![3.0, 1.0, 7.0, 5.0, 11.0, 9.0]);
}

#[test]
fn split_variants() {
    let split18 = model(
        vec![node("Split", "sp", &["x"], &["a", "b", "c"], vec![a_i("axis", 1), a_i("num_outputs", 3)])],
        vec![vf("x", &[2, 7])],
        vec![out("a"), out("b"), out("c")],
        vec![],
    );
    let g = import_ok(&split18);
    let dims: Vec<Vec<usize>> = g.outputs().iter().map(|(_, id)| g.node(*id).ty.shape.0.clone()).collect();
    assert_eq!(dims, [vec![2, 3], vec![2, 3], vec![2, 1]]);
    find(&g, "sp/out2");
    let x = Tensor::from_vec(vec![2, 7], (0..14).map(|v| v as f32).collect()).unwrap();
    let r = run(&g, &[x]);
    assert_eq!(f32s(&r[2]), vec![6.0, 13.0]);

    let sizes = model(
        vec![node("Split", "sp", &["x", "s"], &["a", "b"], vec![])],
        vec![vf("x", &[5, 2])],
        vec![out("a"), out("b")],
        vec![t_i64("s", &[2], &[1, 4])],
    );
    let g = import_ok(&sizes);
    assert_eq!(g.node(g.outputs()[1].1).ty.shape.dims(), &[4, 2]);
    assert_eq!(g.node(g.outputs()[1].1).op, Op::Slice { starts: vec![1, 0], steps: vec![1, 1] });

    let uneven = model(
        vec![node("Split", "sp", &["x"], &["a", "b"], vec![])],
        vec![vf("x", &[5])],
        vec![out("a"), out("b")],
        vec![],
    );
    let e = import(&uneven, &ImportOptions::default()).unwrap_err().to_string();
    assert!(e.contains("axis extent 5 does not split evenly into 2 outputs"), "{e}");
}

#[test]
fn batch_norm_folds_into_scale_and_shift() {
    let m = model_opset(
        15,
        vec![node("BatchNormalization", "bn", &["x", "g", "b", "m", "v"], &["y"], vec![a_f("epsilon", 0.0)])],
        vec![vf("x", &[1, 2, 1, 2])],
        vec![vf("y", &[1, 2, 1, 2])],
        vec![
            t_f32("g", &[2], &[2.0, 1.0]),
            t_f32("b", &[2], &[1.0, 0.0]),
            t_f32("m", &[2], &[1.0, -1.0]),
            t_f32("v", &[2], &[4.0, 1.0]),
        ],
    );
    let g = import_ok(&m);
    assert_eq!(op_names(&g), ["mul", "add"]);
    let Op::Const(s) = &g.node(find(&g, "bn/scale")).op else { panic!() };
    assert_eq!(s.shape().dims(), &[2, 1, 1]);
    let x = Tensor::from_vec(vec![1, 2, 1, 2], vec![1.0f32, 3.0, 0.0, 2.0]).unwrap();
    // (x - m) / sqrt(v) * g + b
    assert_close(&f32s(&run(&g, &[x])[0]), &[1.0, 3.0, 1.0, 3.0]);
}

#[test]
fn conv_and_pool_windows() {
    let m = model(
        vec![
            node("Conv", "conv", &["x", "w"], &["c"], vec![a_s("auto_pad", "SAME_UPPER"), a_ints("strides", &[2, 2])]),
            node(
                "MaxPool",
                "mp",
                &["c"],
                &["p"],
                vec![a_ints("kernel_shape", &[2, 2]), a_ints("strides", &[2, 2]), a_i("ceil_mode", 1)],
            ),
            node(
                "AveragePool",
                "ap",
                &["c"],
                &["q"],
                vec![a_ints("kernel_shape", &[3, 3]), a_ints("pads", &[1, 1, 1, 1]), a_i("count_include_pad", 1)],
            ),
            node("GlobalAveragePool", "gap", &["c"], &["r"], vec![]),
        ],
        vec![vf("x", &[1, 1, 5, 5])],
        vec![vf("p", &[1, 2, 2, 2]), vf("q", &[1, 2, 3, 3]), vf("r", &[1, 2, 1, 1])],
        vec![t_f32("w", &[2, 1, 3, 3], &[1.0; 18])],
    );
    let g = import_ok(&m);
    let Op::Conv { window, group } = &g.node(find(&g, "conv")).op else { panic!() };
    assert_eq!((window.pads_begin.clone(), window.pads_end.clone(), *group), (vec![1, 1], vec![1, 1], 1));
    assert_eq!(g.node(find(&g, "conv")).ty.shape.dims(), &[1, 2, 3, 3]);
    let Op::MaxPool { window } = &g.node(find(&g, "mp")).op else { panic!() };
    assert_eq!(window.pads_end, vec![1, 1], "ceil_mode extends the end padding");
    let x = Tensor::from_vec(vec![1, 1, 5, 5], vec![1.0f32; 25]).unwrap();
    let r = run(&g, &[x]);
    assert_eq!(f32s(&r[0]), vec![9.0, 6.0, 6.0, 4.0, 9.0, 6.0, 6.0, 4.0]);

    // ceil_mode + count_include_pad with an overhanging window is refused.
    let m = model(
        vec![node(
            "AveragePool",
            "ap",
            &["x"],
            &["y"],
            vec![
                a_ints("kernel_shape", &[2]),
                a_ints("strides", &[2]),
                a_i("ceil_mode", 1),
                a_i("count_include_pad", 1),
            ],
        )],
        vec![vf("x", &[1, 1, 5])],
        vec![out("y")],
        vec![],
    );
    let e = import(&m, &ImportOptions::default()).unwrap_err();
    assert!(e.is_unsupported(), "{e}");
    // 3-D convolutions are reported as unsupported.
    let m = model(
        vec![node("Conv", "c3", &["x", "w"], &["y"], vec![])],
        vec![vf("x", &[1, 1, 2, 2, 2])],
        vec![out("y")],
        vec![t_f32("w", &[1, 1, 1, 1, 1], &[1.0])],
    );
    let e = import(&m, &ImportOptions::default()).unwrap_err();
    assert!(e.is_unsupported() && e.to_string().contains("node `c3` (Conv): not supported: only 1-D and 2-D"), "{e}");
}

#[test]
fn reduce_axes_by_opset() {
    let make = |opset: i64, with_input: bool| {
        let (inputs, attrs, inits) = if with_input {
            (vec!["x", "axes"], vec![a_i("keepdims", 0)], vec![t_i64("axes", &[1], &[-1])])
        } else {
            (vec!["x"], vec![a_i("keepdims", 0), a_ints("axes", &[-1])], vec![])
        };
        model_opset(
            opset,
            vec![node("ReduceMean", "rm", &inputs, &["y"], attrs)],
            vec![vf("x", &[2, 3])],
            vec![out("y")],
            inits,
        )
    };
    for (opset, with_input) in [(13, false), (18, true)] {
        let g = import_ok(&make(opset, with_input));
        assert_eq!(
            g.node(find(&g, "rm")).op,
            Op::Reduce { kind: nanoc_ir::ReduceKind::Mean, axes: vec![1], keep_dims: false }
        );
    }
    // Opset 18 without axes reduces everything; noop_with_empty_axes is the identity.
    let m =
        model(vec![node("ReduceSum", "rs", &["x"], &["y"], vec![])], vec![vf("x", &[2, 3])], vec![out("y")], vec![]);
    let g = import_ok(&m);
    assert_eq!(g.node(g.outputs()[0].1).ty.shape.dims(), &[1, 1]);
    let m = model(
        vec![node("ReduceSum", "rs", &["x"], &["y"], vec![a_i("noop_with_empty_axes", 1)])],
        vec![vf("x", &[2, 3])],
        vec![out("y")],
        vec![],
    );
    let g = import_ok(&m);
    assert_eq!(g.outputs()[0].1, g.inputs()[0]);
}

#[test]
fn aliases_unused_outputs_and_names() {
    let m = model(
        vec![
            node("Dropout", "drop", &["x"], &["d", "mask"], vec![]),
            node("Identity", "id", &["d"], &["i"], vec![]),
            node("Relu", "dup", &["i"], &["r1"], vec![]),
            node("Relu", "dup", &["r1"], &["r2"], vec![]),
            node("LayerNormalization", "ln", &["r2", "s"], &["y", "mean"], vec![]),
        ],
        vec![vf("x", &[2, 4])],
        vec![vf("y", &[2, 4])],
        vec![t_f32("s", &[4], &[1.0; 4]), t_f32("dup", &[1], &[0.0])],
    );
    let g = import_ok(&m);
    assert_eq!(op_names(&g), ["relu", "relu", "layer_norm"]);
    // Initializer `dup` kept its name (then was removed as dead); the nodes got suffixes.
    find(&g, "dup#2");
    find(&g, "dup#3");
    assert_eq!(g.args(find(&g, "dup#2")), vec![g.inputs()[0]]);

    let m = model(
        vec![node("Dropout", "drop", &["x"], &["d", "mask"], vec![])],
        vec![vf("x", &[2, 4])],
        vec![out("d"), out("mask")],
        vec![],
    );
    let e = import(&m, &ImportOptions::default()).unwrap_err();
    assert!(
        e.is_unsupported() && e.to_string().contains("node `drop` (Dropout): not supported: output 1 (mask)"),
        "{e}"
    );
}

#[test]
fn constants_ranges_and_casts_fold() {
    let m = model(
        vec![
            node("Range", "range", &["s", "l", "d"], &["r"], vec![]),
            node("Cast", "cast", &["r"], &["rf"], vec![a_i("to", DataType::Float as i32 as i64)]),
            node(
                "ConstantOfShape",
                "cos",
                &["shp"],
                &["z"],
                vec![AttributeProto { t: Some(t_f32("", &[1], &[0.5])), ..attr("value", AttributeType::Tensor) }],
            ),
            node("Expand", "ex", &["rf", "shp"], &["e"], vec![]),
            node("Add", "add", &["e", "z"], &["ez"], vec![]),
            node("Trilu", "tri", &["ez"], &["t"], vec![a_i("upper", 0)]),
            node("Add", "out", &["x", "t"], &["y"], vec![]),
        ],
        vec![vf("x", &[2, 3])],
        vec![vf("y", &[2, 3])],
        vec![t_i64("s", &[], &[5]), t_i64("l", &[], &[0]), t_i64("d", &[], &[-2]), t_i64("shp", &[2], &[2, 3])],
    );
    let g = import_ok(&m);
    assert_eq!(op_names(&g), ["add"]);
    let Op::Const(t) = &g.node(find(&g, "tri")).op else { panic!() };
    assert_eq!(f32s(t), vec![5.5, 0.0, 0.0, 5.5, 3.5, 0.0]);
}

/// Corrupted models give errors, never panics: every truncation and a byte
/// flip at every position of a small model that uses most importers.
#[test]
fn corrupt_models_never_panic() {
    let m = model(
        vec![
            node("Gemm", "gemm", &["A", "B", "C"], &["g"], vec![a_i("transB", 1), a_f("alpha", 2.0)]),
            node("Reshape", "rs", &["g", "shp"], &["r"], vec![]),
            node("Conv", "conv", &["r", "w"], &["c"], vec![a_ints("pads", &[1, 1, 1, 1]), a_ints("strides", &[1, 1])]),
            node(
                "MaxPool",
                "mp",
                &["c"],
                &["p"],
                vec![a_ints("kernel_shape", &[2, 2]), a_ints("strides", &[2, 2]), a_i("ceil_mode", 1)],
            ),
            node("Slice", "sl", &["p", "st", "en"], &["s"], vec![]),
            node("Split", "sp", &["s"], &["s0", "s1"], vec![a_i("axis", 3)]),
            node("Concat", "cc", &["s0", "s1"], &["y"], vec![a_i("axis", 3)]),
        ],
        vec![vf("A", &[2, 3])],
        vec![out("y")],
        vec![
            t_f32("B", &[4, 3], &[0.5; 12]),
            t_f32("C", &[4], &[1.0; 4]),
            t_i64("shp", &[4], &[1, 1, 2, 4]),
            t_f32("w", &[1, 1, 3, 3], &[0.1; 9]),
            t_i64("st", &[1], &[0]),
            t_i64("en", &[1], &[i64::MAX]),
        ],
    );
    let bytes = m.encode_to_vec();
    import_onnx_bytes(&bytes, "m.onnx", None, &ImportOptions::default()).unwrap();
    let mut errors = 0;
    for len in 0..bytes.len() {
        errors += import_onnx_bytes(&bytes[..len], "m.onnx", None, &ImportOptions::default()).is_err() as usize;
    }
    for i in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xFF] {
            let mut b = bytes.clone();
            b[i] ^= flip;
            errors += import_onnx_bytes(&b, "m.onnx", None, &ImportOptions::default()).is_err() as usize;
        }
    }
    assert!(errors > bytes.len());
}

// ---- fixtures ------------------------------------------------------------

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// Every `model.onnx` under the fixtures (except `unsupported` and the
/// attention corpus, which `tests/tests/attention.rs` covers with its own
/// expectations), with dims bound to small values, imports and verifies.
#[test]
fn fixtures_import_and_verify() {
    let mut models = Vec::new();
    let Ok(entries) = std::fs::read_dir(fixtures_dir()) else {
        eprintln!("no fixtures yet");
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.file_name().is_some_and(|n| n == "unsupported" || n == "attention") {
            continue;
        }
        if p.join("model.onnx").exists() {
            models.push(p.join("model.onnx"));
        }
        if let Ok(sub) = std::fs::read_dir(&p) {
            for s in sub.flatten() {
                if s.path().join("model.onnx").exists() {
                    models.push(s.path().join("model.onnx"));
                }
            }
        }
    }
    models.sort();
    let opts = ImportOptions { dims: [("batch".into(), 2), ("seq".into(), 8)].into(), ..Default::default() };
    let mut failures = Vec::new();
    for m in &models {
        match import_onnx(m, &opts) {
            Ok(g) => {
                let mut hist = std::collections::BTreeMap::new();
                for id in g.node_ids() {
                    *hist.entry(g.node(id).op.name()).or_insert(0) += 1;
                }
                eprintln!("{}: {} nodes {hist:?}", m.display(), g.node_count());
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    eprintln!("{} fixture models", models.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unsupported_fixture_lists_expected_ops() {
    let dir = fixtures_dir().join("unsupported");
    let (Ok(expected), true) = (std::fs::read_to_string(dir.join("EXPECTED_OPS.txt")), dir.join("model.onnx").exists())
    else {
        eprintln!("no unsupported fixture yet");
        return;
    };
    // One `OpType count` per line.
    let want: Vec<String> = expected.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    let e = import_onnx(&dir.join("model.onnx"), &ImportOptions::default()).unwrap_err();
    assert!(e.is_unsupported(), "{e}");
    let OnnxError::Unsupported { ops, .. } = &e else { panic!("{e}") };
    let got: Vec<String> = ops.iter().map(|o| format!("{} {}", o.op_type, o.count)).collect();
    assert_eq!(got, want, "{e}");
}

#[test]
fn batch2_decompositions_have_the_expected_shape() {
    // DepthToSpace: reshape, transpose, reshape; values follow the DCR layout.
    let m = model(
        vec![node("DepthToSpace", "d2s", &["x"], &["y"], vec![a_i("blocksize", 2)])],
        vec![vf("x", &[1, 4, 1, 1])],
        vec![out("y")],
        vec![],
    );
    let g = import_ok(&m);
    assert_eq!(op_names(&g), ["reshape", "transpose", "reshape"]);
    let x = Tensor::from_vec(vec![1, 4, 1, 1], vec![1.0f32, 2.0, 3.0, 4.0]).unwrap();
    assert_eq!(f32s(&run(&g, &[x])[0]), [1.0, 2.0, 3.0, 4.0]);
    // SpaceToDepth of two 2x2 channels a, b: DCR interleaves them by block
    // position, CRD keeps each channel's block together.
    let s2d = |mode: &str| {
        let m = model(
            vec![node("SpaceToDepth", "s2d", &["x"], &["y"], vec![a_i("blocksize", 2), a_s("mode", mode)])],
            vec![vf("x", &[1, 2, 2, 2])],
            vec![out("y")],
            vec![],
        );
        let x = Tensor::from_vec(vec![1, 2, 2, 2], vec![0.0f32, 1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 13.0]).unwrap();
        f32s(&run(&import_ok(&m), &[x])[0])
    };
    assert_eq!(s2d("DCR"), [0.0, 10.0, 1.0, 11.0, 2.0, 12.0, 3.0, 13.0]);
    assert_eq!(s2d("CRD"), [0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 13.0]);

    // Resize nearest: one gather per resized axis; linear: two gathers, two muls, an add.
    let resize = |mode: &str| {
        model(
            vec![node("Resize", "rs", &["x", "", "scales"], &["y"], vec![a_s("mode", mode)])],
            vec![vf("x", &[1, 1, 2, 2])],
            vec![out("y")],
            vec![t_f32("scales", &[4], &[1.0, 1.0, 2.0, 1.0])],
        )
    };
    assert_eq!(op_names(&import_ok(&resize("nearest"))), ["gather"]);
    assert_eq!(op_names(&import_ok(&resize("linear"))), ["gather", "gather", "mul", "mul", "add"]);
    let e = import(&resize("cubic"), &ImportOptions::default()).unwrap_err();
    assert!(e.is_unsupported() && e.to_string().contains("cubic"), "{e}");

    // TopK whose values are unused: no gather_elements.
    let m = model(
        vec![node("TopK", "tk", &["x", "k"], &["v", "i"], vec![])],
        vec![vf("x", &[2, 5])],
        vec![out("i")],
        vec![t_i64("k", &[1], &[2])],
    );
    assert_eq!(op_names(&import_ok(&m)), ["top_k"]);

    // Pad: negative pads crop with a slice first; all-zero pads are the identity.
    let pad = |pads: &[i64]| {
        model(
            vec![node("Pad", "p", &["x", "pads"], &["y"], vec![a_s("mode", "edge")])],
            vec![vf("x", &[3, 4])],
            vec![out("y")],
            vec![t_i64("pads", &[4], pads)],
        )
    };
    let g = import_ok(&pad(&[-1, 2, 0, -1]));
    assert_eq!(op_names(&g), ["slice", "pad"]);
    assert_eq!(g.node(g.outputs()[0].1).ty.shape.dims(), &[2, 5]);
    assert!(op_names(&import_ok(&pad(&[0, 0, 0, 0]))).is_empty());

    // Einsum attention scores: one batched matmul, the key side transposed.
    let m = model(
        vec![node("Einsum", "e", &["q", "k"], &["y"], vec![a_s("equation", "bhqd,bhkd->bhqk")])],
        vec![vf("q", &[1, 2, 3, 4]), vf("k", &[1, 2, 5, 4])],
        vec![out("y")],
        vec![],
    );
    let g = import_ok(&m);
    assert_eq!(op_names(&g).iter().filter(|n| **n == "matmul").count(), 1);
    assert_eq!(g.node(g.outputs()[0].1).ty.shape.dims(), &[1, 2, 3, 5]);
}

#[test]
fn batch2_unsupported_and_bad_attributes_are_clear_errors() {
    let einsum = |eq: &str| {
        model(
            vec![node("Einsum", "e", &["x"], &["y"], vec![a_s("equation", eq)])],
            vec![vf("x", &[3, 3])],
            vec![out("y")],
            vec![],
        )
    };
    let e = import(&einsum("ii->i"), &ImportOptions::default()).unwrap_err();
    assert!(e.is_unsupported(), "{e}");
    assert!(e.to_string().contains("diagonals are not supported"), "{e}");
    let e = import(&einsum("ij->k"), &ImportOptions::default()).unwrap_err();
    assert!(!e.is_unsupported() && e.to_string().contains("is in no input"), "{e}");

    // ConvTranspose output_shape a stride or more beyond the full output extent.
    let m = model(
        vec![node("ConvTranspose", "ct", &["x", "w"], &["y"], vec![a_ints("output_shape", &[9])])],
        vec![vf("x", &[1, 1, 3])],
        vec![out("y")],
        vec![t_f32("w", &[1, 1, 3], &[1.0, 0.0, 0.0])],
    );
    let e = import(&m, &ImportOptions::default()).unwrap_err().to_string();
    assert!(e.contains("output_shape extent 9 of spatial dim 0 is too large: at most 5"), "{e}");

    // ScatterND with constant operands and an index out of range fails at import (folding).
    let m = model(
        vec![node("ScatterND", "s", &["d", "i", "u"], &["y"], vec![])],
        vec![],
        vec![out("y")],
        vec![t_f32("d", &[2], &[1.0, 2.0]), t_i64("i", &[1, 1], &[2]), t_f32("u", &[1], &[5.0])],
    );
    let e = import(&m, &ImportOptions::default()).unwrap_err().to_string();
    assert!(e.contains("scatter_nd index 2 is out of range"), "{e}");

    // Reflect padding by the full extent is rejected by type inference.
    let m = model(
        vec![node("Pad", "p", &["x", "pads"], &["y"], vec![a_s("mode", "reflect")])],
        vec![vf("x", &[2])],
        vec![out("y")],
        vec![t_i64("pads", &[2], &[2, 0])],
    );
    let e = import(&m, &ImportOptions::default()).unwrap_err().to_string();
    assert!(e.contains("pad mode reflect cannot pad dim 0"), "{e}");
}

#[test]
fn attention_imports_and_names_what_it_cannot_compute() {
    let att = |attrs: Vec<AttributeProto>, inputs: &[&str]| node("Attention", "att", inputs, &["y"], attrs);
    let vis = || {
        vec![
            vf("q", &[1, 4, 6]),
            vf("k", &[1, 5, 6]),
            vf("v", &[1, 5, 4]),
            vf("pk", &[1, 2, 3, 3]),
            vf("pv", &[1, 2, 3, 2]),
        ]
    };
    let heads = || vec![a_i("q_num_heads", 2), a_i("kv_num_heads", 2), a_i("is_causal", 1)];
    // 3-D, causal, no cache: one attention over split heads, merged back.
    let g = import_ok(&model_opset(23, vec![att(heads(), &["q", "k", "v"])], vis(), vec![out("y")], vec![]));
    let a = g.node_ids().into_iter().find(|&id| g.node(id).op.name() == "attention").unwrap();
    assert_eq!(g.node(a).op, Op::Attention { scale: 1.0 / 3f32.sqrt(), causal: true });
    assert_eq!(g.node(g.outputs()[0].1).ty, TensorType::new(DType::F32, vec![1, 4, 4]));
    // With a past cache the triangle is offset by the past length: a mask, not `causal`.
    let g = import_ok(&model_opset(
        23,
        vec![att(heads(), &["q", "k", "v", "", "pk", "pv"])],
        vis(),
        vec![out("y")],
        vec![],
    ));
    let a = g.node_ids().into_iter().find(|&id| g.node(id).op.name() == "attention").unwrap();
    assert_eq!(g.node(a).op, Op::Attention { scale: 1.0 / 3f32.sqrt(), causal: false });
    assert_eq!(g.args(a).len(), 4);
    // What nanoc does not compute is named.
    let mut softcap = heads();
    softcap.push(a_f("softcap", 2.0));
    for (opset, attrs, want) in [
        (23, softcap, "attribute softcap is not supported"),
        (23, vec![], "3-D inputs need the q_num_heads and kv_num_heads attributes"),
        (22, heads(), "Attention is an opset-23 op, the model imports opset 22"),
    ] {
        let e = import(
            &model_opset(opset, vec![att(attrs, &["q", "k", "v"])], vis(), vec![out("y")], vec![]),
            &ImportOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("node `att` (Attention)") && e.contains(want), "{e}");
    }
}
