//! Decoding, the opset check, graph inputs (with symbolic-dim binding),
//! initializers, value lookup and the node loop.

use super::ops::{self, Ctx};
use super::proto::tensor_shape_proto::dimension::Value as DimValue;
use super::proto::type_proto::Value as TypeValue;
use super::proto::{GraphProto, ModelProto, ValueInfoProto};
use super::tensor::{dtype_name, dtype_of, tensor_from_proto};
use super::{ImportOptions, MAX_OPSET, MIN_OPSET, OnnxError, UnboundDim, UnsupportedOp};
use nanoc_ir::{Graph, NodeId, Tensor, TensorType};
use prost::Message;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// Constants up to this size are always built or folded at import.
pub(crate) const ALWAYS_FOLD_BYTES: usize = 64 << 10;

/// The fold budget for a model without initializers; see
/// [`Importer::may_fold`].
pub(crate) const FOLD_BUDGET_BASE: usize = 16 << 20;

/// State shared by the node importers.
pub(crate) struct Importer<'a> {
    /// Model file name, for errors.
    pub file: &'a str,
    /// Directory for external data.
    pub base_dir: Option<&'a Path>,
    /// Default-domain opset version.
    pub opset: i64,
    /// The graph being built.
    pub g: Graph,
    /// ONNX value name → IR node producing it.
    pub values: HashMap<String, NodeId>,
    /// IR node names in use.
    names: HashSet<String>,
    /// ONNX value names read by some node or graph output.
    pub used: HashSet<String>,
    /// Bytes of the model's initializers (sets the fold budget).
    pub init_bytes: usize,
    /// Bytes of the large constants built or folded so far (see
    /// [`Importer::may_fold`]).
    pub folded_bytes: usize,
}

impl Importer<'_> {
    /// Whether a constant of `bytes` may be built or folded at import from
    /// constant operands totalling `input_bytes`, and if so charges it to
    /// the budget. Small constants (shape arithmetic) always fold. A larger
    /// one folds only if it is at most twice its operands (folding must
    /// not inflate the model: a chain of Pad/Resize/Expand would grow
    /// geometrically) and the large constants built so far stay within
    /// [`FOLD_BUDGET_BASE`] (16 MiB) plus twice the initializers. Otherwise the node
    /// stays in the graph and runs at inference time.
    pub fn may_fold(&mut self, bytes: usize, input_bytes: usize) -> bool {
        if bytes <= ALWAYS_FOLD_BYTES {
            return true;
        }
        let budget = FOLD_BUDGET_BASE.saturating_add(self.init_bytes.saturating_mul(2));
        let total = self.folded_bytes.saturating_add(bytes);
        if bytes > input_bytes.saturating_mul(2) || total > budget {
            return false;
        }
        self.folded_bytes = total;
        true
    }

    /// `base`, or `base#2`, `base#3`, ... whichever is free; reserves it.
    pub fn unique_name(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 2;
        while self.names.contains(&name) {
            name = format!("{base}#{k}");
            k += 1;
        }
        self.names.insert(name.clone());
        name
    }

    /// The constant behind `id`, if it is one.
    pub fn const_of(&self, id: NodeId) -> Option<&Tensor> {
        match &self.g.node(id).op {
            nanoc_ir::Op::Const(t) => Some(t),
            _ => None,
        }
    }

    /// The value of `id` if it is computable at import: a constant, or an
    /// op the importer deliberately left unfolded (dequantize of constant
    /// weights), evaluated on demand for importers that need the value.
    pub fn value_of(&self, id: NodeId) -> Option<Tensor> {
        if let Some(t) = self.const_of(id) {
            return Some(t.clone());
        }
        let n = self.g.node(id);
        if !matches!(n.op, nanoc_ir::Op::Dequantize { .. }) {
            return None;
        }
        let args: Option<Vec<&Tensor>> = self.g.args(id).into_iter().map(|a| self.const_of(a)).collect();
        nanoc_ir::interp::eval_op(&n.op, &args?, &n.ty).ok()
    }
}

/// Decodes and imports a model.
pub(crate) fn import(
    bytes: &[u8],
    file: &str,
    base_dir: Option<&Path>,
    opts: &ImportOptions,
) -> Result<Graph, OnnxError> {
    let model =
        ModelProto::decode(bytes).map_err(|e| OnnxError::Decode { file: file.to_string(), msg: e.to_string() })?;
    let model_err = |msg: String| OnnxError::Model { file: file.to_string(), msg };
    let opset = default_opset(&model, file)?;
    let Some(graph) = model.graph else {
        return Err(model_err("the model has no graph".into()));
    };
    check_supported(&graph, file)?;
    if !graph.sparse_initializer.is_empty() {
        return Err(model_err("sparse initializers are not supported".into()));
    }

    let name = match graph.name.as_deref() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => Path::new(file).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into()),
    };
    let mut imp = Importer {
        file,
        base_dir,
        opset,
        g: Graph::new(name),
        values: HashMap::new(),
        names: HashSet::new(),
        used: HashSet::new(),
        init_bytes: 0,
        folded_bytes: 0,
    };
    for n in &graph.node {
        imp.used.extend(n.input.iter().filter(|s| !s.is_empty()).cloned());
    }
    imp.used.extend(graph.output.iter().filter_map(|o| o.name.clone()));

    // Graph inputs (those that are not initializers), with static shapes.
    let init_names: HashSet<&str> = graph.initializer.iter().filter_map(|t| t.name.as_deref()).collect();
    let inputs: Vec<&ValueInfoProto> =
        graph.input.iter().filter(|vi| !vi.name.as_deref().is_some_and(|n| init_names.contains(n))).collect();
    let input_types = bind_inputs(&inputs, opts, file)?;
    for (input_name, ty) in input_types {
        let node_name = imp.unique_name(&input_name);
        let id = imp.g.add_input(node_name, ty);
        imp.values.insert(input_name, id);
    }

    // Initializers become named constants.
    let GraphProto { node: nodes, initializer, output, .. } = graph;
    for (i, tp) in initializer.into_iter().enumerate() {
        let Some(init_name) = tp.name.clone().filter(|n| !n.is_empty()) else {
            return Err(model_err(format!("initializer {i} has no name")));
        };
        let t = tensor_from_proto(tp, &init_name, file, base_dir)?;
        imp.init_bytes = imp.init_bytes.saturating_add(t.ty().byte_len());
        let node_name = imp.unique_name(&init_name);
        let id = imp.g.add_const(node_name, t);
        imp.values.insert(init_name, id);
    }

    // Nodes, in order (ONNX requires a topological order).
    for (index, node) in nodes.iter().enumerate() {
        let op_type = node.op_type.as_deref().unwrap_or("");
        let domain = node.domain.as_deref().unwrap_or("");
        let Some(f) = ops::lookup(domain, op_type) else {
            // check_supported already rejected these.
            return Err(model_err(format!("node {index}: no importer for {op_type}")));
        };
        let base = match node.name.as_deref() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => format!("{op_type}_{index}"),
        };
        let mut ctx = Ctx::new(&mut imp, node, base);
        f(&mut ctx)?;
        ctx.check_outputs()?;
    }

    // Graph outputs.
    let mut out_names = HashSet::new();
    for (i, vo) in output.iter().enumerate() {
        let Some(out_name) = vo.name.as_deref().filter(|n| !n.is_empty()) else {
            return Err(model_err(format!("graph output {i} has no name")));
        };
        if !out_names.insert(out_name) {
            return Err(model_err(format!("graph output `{out_name}` is listed twice")));
        }
        let Some(&id) = imp.values.get(out_name) else {
            return Err(model_err(format!(
                "graph output `{out_name}` is not produced by any node, initializer or input"
            )));
        };
        check_declared_output(vo, out_name, &imp.g.node(id).ty, file)?;
        imp.g.add_output(out_name, id);
    }
    if output.is_empty() {
        return Err(model_err("the graph has no outputs".into()));
    }

    let mut g = imp.g;
    g.remove_dead();
    nanoc_ir::verify::verify(&g).map_err(|source| OnnxError::Verify { file: file.to_string(), source })?;
    Ok(g)
}

/// The default-domain opset, checked against the supported range.
fn default_opset(model: &ModelProto, file: &str) -> Result<i64, OnnxError> {
    let err = |msg: String| OnnxError::Opset { file: file.to_string(), msg };
    let v = model
        .opset_import
        .iter()
        .find(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        .map(|o| o.version.unwrap_or(0))
        .ok_or_else(|| {
            err(format!(
                "the model imports no default-domain (ai.onnx) opset; nanoc needs opset {MIN_OPSET} to {MAX_OPSET}"
            ))
        })?;
    if v < MIN_OPSET {
        return Err(err(format!(
            "default-domain opset {v} is too old: nanoc needs opset {MIN_OPSET} to {MAX_OPSET} (re-export with opset_version >= {MIN_OPSET})"
        )));
    }
    if v > MAX_OPSET {
        return Err(err(format!("default-domain opset {v} is newer than nanoc supports ({MIN_OPSET} to {MAX_OPSET})")));
    }
    Ok(v)
}

/// Every (domain, op type) the model uses, with its node count and whether
/// the importer supports it, sorted by domain and op type.
pub(crate) fn op_support(bytes: &[u8], file: &str) -> Result<Vec<super::OpUse>, OnnxError> {
    let model =
        ModelProto::decode(bytes).map_err(|e| OnnxError::Decode { file: file.to_string(), msg: e.to_string() })?;
    let graph =
        model.graph.ok_or_else(|| OnnxError::Model { file: file.to_string(), msg: "the model has no graph".into() })?;
    let mut uses: BTreeMap<(String, String), usize> = BTreeMap::new();
    for node in &graph.node {
        let key = (node.domain.clone().unwrap_or_default(), node.op_type.clone().unwrap_or_default());
        *uses.entry(key).or_default() += 1;
    }
    Ok(uses
        .into_iter()
        .map(|((domain, op_type), count)| super::OpUse {
            supported: ops::lookup(&domain, &op_type).is_some(),
            domain,
            op_type,
            count,
        })
        .collect())
}

/// Collects every node whose (domain, op type) has no importer.
fn check_supported(graph: &GraphProto, file: &str) -> Result<(), OnnxError> {
    let mut found: BTreeMap<(String, String), UnsupportedOp> = BTreeMap::new();
    for (index, node) in graph.node.iter().enumerate() {
        let op_type = node.op_type.as_deref().unwrap_or("");
        let domain = node.domain.as_deref().unwrap_or("");
        if ops::lookup(domain, op_type).is_some() {
            continue;
        }
        let name = match node.name.as_deref() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => format!("{op_type}_{index}"),
        };
        let e = found.entry((domain.to_string(), op_type.to_string())).or_insert_with(|| UnsupportedOp {
            op_type: op_type.to_string(),
            domain: domain.to_string(),
            count: 0,
            nodes: Vec::new(),
        });
        e.count += 1;
        if e.nodes.len() < 3 {
            e.nodes.push(name);
        }
    }
    if found.is_empty() {
        Ok(())
    } else {
        Err(OnnxError::Unsupported { file: file.to_string(), ops: found.into_values().collect() })
    }
}

/// One input dim as declared by the model.
enum Dim {
    Fixed(usize),
    Param(String),
    Unknown,
}

/// Resolves the static type of every graph input: declared sizes, then
/// `--dim` bindings, then dims bound by matching `opts.input_shapes`.
/// Reports every unbound dim at once.
fn bind_inputs(
    inputs: &[&ValueInfoProto],
    opts: &ImportOptions,
    file: &str,
) -> Result<Vec<(String, TensorType)>, OnnxError> {
    let model_err = |msg: String| OnnxError::Model { file: file.to_string(), msg };
    // Declared dtype and dims of each input.
    let mut declared = Vec::new();
    for (i, vi) in inputs.iter().enumerate() {
        let Some(name) = vi.name.clone().filter(|n| !n.is_empty()) else {
            return Err(model_err(format!("graph input {i} has no name")));
        };
        let Some(TypeValue::TensorType(tt)) = vi.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
            return Err(OnnxError::UnsupportedDType {
                file: file.to_string(),
                what: format!("input `{name}`"),
                dtype: "a non-tensor type".into(),
            });
        };
        let code = tt.elem_type.unwrap_or(0);
        let dtype = dtype_of(code).ok_or_else(|| OnnxError::UnsupportedDType {
            file: file.to_string(),
            what: format!("input `{name}`"),
            dtype: dtype_name(code),
        })?;
        let dims: Option<Vec<Dim>> = match &tt.shape {
            None => None,
            Some(s) => Some(
                s.dim
                    .iter()
                    .enumerate()
                    .map(|(k, d)| match &d.value {
                        Some(DimValue::DimValue(v)) => usize::try_from(*v)
                            .map(Dim::Fixed)
                            .map_err(|_| model_err(format!("input `{name}` dim {k} has negative size {v}"))),
                        Some(DimValue::DimParam(p)) if !p.is_empty() => Ok(Dim::Param(p.clone())),
                        _ => Ok(Dim::Unknown),
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        declared.push((name, dtype, dims));
    }

    for given in opts.input_shapes.keys() {
        if !declared.iter().any(|(n, _, _)| n == given) {
            let names: Vec<&str> = declared.iter().map(|(n, _, _)| n.as_str()).collect();
            return Err(model_err(format!(
                "a shape was given for `{given}`, which is not a model input (inputs: {})",
                names.join(", ")
            )));
        }
    }

    // Bind params: --dim first, then by matching given input shapes.
    let mut bound: BTreeMap<String, (usize, String)> =
        opts.dims.iter().map(|(k, &v)| (k.clone(), (v, "--dim".to_string()))).collect();
    for (name, _, dims) in &declared {
        let Some(shape) = opts.input_shapes.get(name) else { continue };
        if let Some(dims) = dims {
            if dims.len() != shape.len() {
                return Err(model_err(format!(
                    "input `{name}` has rank {} but the given shape {shape:?} has rank {}",
                    dims.len(),
                    shape.len()
                )));
            }
            for (k, (d, &s)) in dims.iter().zip(shape).enumerate() {
                match d {
                    Dim::Fixed(v) if *v != s => {
                        return Err(model_err(format!(
                            "input `{name}` dim {k} is {v} but the given shape {shape:?} has {s}"
                        )));
                    }
                    Dim::Param(p) => match bound.get(p) {
                        Some((v, src)) if *v != s => {
                            return Err(model_err(format!(
                                "input `{name}` dim {k} is `{p}`, bound to {v} by {src}, but the given shape {shape:?} has {s}"
                            )));
                        }
                        Some(_) => {}
                        None => {
                            bound.insert(p.clone(), (s, format!("the shape of input `{name}`")));
                        }
                    },
                    _ => {}
                }
            }
        }
    }

    let mut unbound = Vec::new();
    let mut out = Vec::new();
    for (name, dtype, dims) in declared {
        let shape: Vec<usize> = match (&dims, opts.input_shapes.get(&name)) {
            (_, Some(s)) => s.clone(),
            (None, None) => {
                return Err(model_err(format!(
                    "input `{name}` has no declared shape: give its shape (e.g. the input array to `nanoc run`)"
                )));
            }
            (Some(dims), None) => dims
                .iter()
                .enumerate()
                .map(|(k, d)| match d {
                    Dim::Fixed(v) => *v,
                    Dim::Param(p) => bound.get(p).map(|b| b.0).unwrap_or_else(|| {
                        unbound.push(UnboundDim { input: name.clone(), index: k, param: Some(p.clone()) });
                        0
                    }),
                    Dim::Unknown => {
                        unbound.push(UnboundDim { input: name.clone(), index: k, param: None });
                        0
                    }
                })
                .collect(),
        };
        let ty = TensorType::new(dtype, shape);
        if ty.shape.checked_numel().and_then(|n| n.checked_mul(dtype.size_bytes())).is_none() {
            return Err(model_err(format!("input `{name}` of type {ty} is too large")));
        }
        out.push((name, ty));
    }
    if !unbound.is_empty() {
        return Err(OnnxError::UnboundDims { file: file.to_string(), dims: unbound });
    }
    Ok(out)
}

/// Checks a graph output's declared element type and static dims against
/// the imported type (symbolic dims are not checked).
fn check_declared_output(vo: &ValueInfoProto, name: &str, ty: &TensorType, file: &str) -> Result<(), OnnxError> {
    let Some(TypeValue::TensorType(tt)) = vo.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Ok(());
    };
    let err = |what: String| OnnxError::Model {
        file: file.to_string(),
        msg: format!("graph output `{name}` is declared with {what} but imports as {ty}"),
    };
    if let Some(code) = tt.elem_type.filter(|&c| c != 0) {
        // DOUBLE values are imported as f32.
        if let Some(d) = super::tensor::dtype_of_narrowing(code)
            && d != ty.dtype
        {
            return Err(err(format!("element type {}", dtype_name(code))));
        }
    }
    if let Some(shape) = &tt.shape {
        if shape.dim.len() != ty.shape.rank() {
            return Err(err(format!("rank {}", shape.dim.len())));
        }
        for (k, d) in shape.dim.iter().enumerate() {
            if let Some(DimValue::DimValue(v)) = &d.value
                && usize::try_from(*v).ok() != ty.shape.dims().get(k).copied()
            {
                return Err(err(format!("size {v} at dim {k}")));
            }
        }
    }
    Ok(())
}
