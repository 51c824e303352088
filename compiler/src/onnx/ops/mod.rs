//! Op importers. Each family file holds one registration table
//! (`OPS: &[(op type, importer)]`); [`lookup`] searches them, so adding an
//! op touches one table.
//!
//! An importer receives a [`Ctx`]: typed attribute getters, operand lookup
//! (`input`, `const_input`, `require_const_i64s`), node creation with
//! constant folding (`add`, `add_typed`, `add_const`) and output binding
//! (`set_output`). Every error it produces names the node and its op type.

use super::OnnxError;
use super::model::Importer;
use super::proto::attribute_proto::AttributeType;
use super::proto::{AttributeProto, NodeProto};
use super::tensor::{tensor_from_f64, tensor_from_proto};
use nanoc_ir::{DType, NodeId, Op, Tensor, TensorType};

mod attention;
mod contrib;
mod einsum;
mod indexing;
mod math;
mod nn;
mod quant;
mod shape;
mod spatial;

#[cfg(test)]
pub(crate) use shape::slice_range as slice_range_for_tests;

/// Imports one ONNX node.
pub(crate) type ImportFn = fn(&mut Ctx<'_, '_>) -> Result<(), OnnxError>;

/// Largest constant (in bytes) the importer builds or folds; bigger
/// all-constant nodes stay in the graph.
pub(crate) const MAX_FOLD_BYTES: usize = 1 << 30;

/// Result type of the importers.
pub(crate) type Res<T> = Result<T, OnnxError>;

/// Every default-domain (`""` / `ai.onnx`) importer table entry.
fn default_domain_ops() -> impl Iterator<Item = &'static (&'static str, ImportFn)> {
    [
        math::OPS,
        nn::OPS,
        quant::OPS,
        shape::OPS,
        contrib::ORT_DEFAULT_DOMAIN_OPS,
        indexing::OPS,
        spatial::OPS,
        einsum::OPS,
        attention::OPS,
    ]
    .into_iter()
    .flatten()
}

/// The importer for `op_type` in `domain` (`""` or `ai.onnx`), if any.
pub(crate) fn lookup(domain: &str, op_type: &str) -> Option<ImportFn> {
    if domain == contrib::DOMAIN {
        return contrib::OPS.iter().chain(attention::CONTRIB_OPS).find(|(name, _)| *name == op_type).map(|&(_, f)| f);
    }
    if !(domain.is_empty() || domain == "ai.onnx") {
        return None;
    }
    default_domain_ops().find(|(name, _)| *name == op_type).map(|&(_, f)| f)
}

/// Every supported (default-domain) op type, sorted.
pub(crate) fn supported_ops() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = default_domain_ops().map(|&(n, _)| n).collect();
    v.sort_unstable();
    v
}

/// What an importer sees of the node it imports and the graph so far.
pub(crate) struct Ctx<'a, 'b> {
    imp: &'a mut Importer<'b>,
    node: &'a NodeProto,
    /// The node's name (the ONNX name, or `{OpType}_{index}`).
    base: String,
    op_type: &'a str,
    bound: Vec<bool>,
}

impl<'a, 'b> Ctx<'a, 'b> {
    /// A context for `node`, named `base`.
    pub fn new(imp: &'a mut Importer<'b>, node: &'a NodeProto, base: String) -> Self {
        let op_type = node.op_type.as_deref().unwrap_or("");
        let bound = vec![false; node.output.len()];
        Ctx { imp, node, base, op_type, bound }
    }

    // ---- errors ---------------------------------------------------------

    /// An error about this node.
    pub fn err(&self, msg: impl Into<String>) -> OnnxError {
        OnnxError::Node {
            file: self.imp.file.to_string(),
            node: self.base.clone(),
            op_type: self.op_type.to_string(),
            msg: msg.into(),
        }
    }

    /// An "unsupported feature" error about this node.
    pub fn unsupported(&self, msg: impl Into<String>) -> OnnxError {
        OnnxError::UnsupportedFeature {
            file: self.imp.file.to_string(),
            node: self.base.clone(),
            op_type: self.op_type.to_string(),
            msg: msg.into(),
        }
    }

    /// The default-domain opset of the model.
    pub fn opset(&self) -> i64 {
        self.imp.opset
    }

    // ---- attributes -----------------------------------------------------

    fn attr(&self, name: &str, want: AttributeType) -> Res<Option<&'a AttributeProto>> {
        let node: &'a NodeProto = self.node;
        let Some(a) = node.attribute.iter().find(|a| a.name.as_deref() == Some(name)) else {
            return Ok(None);
        };
        if a.ref_attr_name.is_some() {
            return Err(
                self.err(format!("attribute `{name}` refers to a function attribute, which is not supported here"))
            );
        }
        let ty = match a.r#type.and_then(|t| AttributeType::try_from(t).ok()) {
            Some(AttributeType::Undefined) | None => guess_attr_type(a),
            Some(t) => t,
        };
        if ty != want && ty != AttributeType::Undefined {
            return Err(self.err(format!(
                "attribute `{name}` must be {}, got {}",
                want.as_str_name(),
                ty.as_str_name()
            )));
        }
        Ok(Some(a))
    }

    /// An INT attribute.
    pub fn attr_int(&self, name: &str) -> Res<Option<i64>> {
        Ok(self.attr(name, AttributeType::Int)?.map(|a| a.i.unwrap_or(0)))
    }

    /// An INT attribute with a default.
    pub fn attr_int_or(&self, name: &str, default: i64) -> Res<i64> {
        Ok(self.attr_int(name)?.unwrap_or(default))
    }

    /// An INT attribute that must be 0 or 1.
    pub fn attr_bool_or(&self, name: &str, default: bool) -> Res<bool> {
        match self.attr_int(name)? {
            None => Ok(default),
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            Some(v) => Err(self.err(format!("attribute `{name}` must be 0 or 1, got {v}"))),
        }
    }

    /// A FLOAT attribute.
    pub fn attr_float(&self, name: &str) -> Res<Option<f32>> {
        Ok(self.attr(name, AttributeType::Float)?.map(|a| a.f.unwrap_or(0.0)))
    }

    /// A FLOAT attribute with a default.
    pub fn attr_float_or(&self, name: &str, default: f32) -> Res<f32> {
        Ok(self.attr_float(name)?.unwrap_or(default))
    }

    /// An INTS attribute.
    pub fn attr_ints(&self, name: &str) -> Res<Option<Vec<i64>>> {
        Ok(self.attr(name, AttributeType::Ints)?.map(|a| a.ints.clone()))
    }

    /// A FLOATS attribute.
    pub fn attr_floats(&self, name: &str) -> Res<Option<Vec<f32>>> {
        Ok(self.attr(name, AttributeType::Floats)?.map(|a| a.floats.clone()))
    }

    /// A STRING attribute (UTF-8).
    pub fn attr_string(&self, name: &str) -> Res<Option<String>> {
        match self.attr(name, AttributeType::String)? {
            None => Ok(None),
            Some(a) => String::from_utf8(a.s.clone().unwrap_or_default())
                .map(Some)
                .map_err(|_| self.err(format!("attribute `{name}` is not valid UTF-8"))),
        }
    }

    /// A TENSOR attribute, decoded.
    pub fn attr_tensor(&self, name: &str) -> Res<Option<Tensor>> {
        match self.attr(name, AttributeType::Tensor)? {
            None => Ok(None),
            Some(a) => {
                let tp = a.t.clone().unwrap_or_default();
                let tname = match tp.name.as_deref() {
                    Some(n) if !n.is_empty() => n.to_string(),
                    _ => format!("{}.{name}", self.base),
                };
                tensor_from_proto(tp, &tname, self.imp.file, self.imp.base_dir).map(Some)
            }
        }
    }

    /// True if the node has an attribute called `name` (of any type).
    pub fn has_attr(&self, name: &str) -> bool {
        self.node.attribute.iter().any(|a| a.name.as_deref() == Some(name))
    }

    // ---- operands -------------------------------------------------------

    /// Number of inputs listed (including empty, i.e. omitted, ones).
    pub fn num_inputs(&self) -> usize {
        self.node.input.len()
    }

    /// Number of outputs listed.
    pub fn num_outputs(&self) -> usize {
        self.node.output.len()
    }

    /// The optional input `i` (`None` when omitted).
    pub fn opt_input(&self, i: usize) -> Res<Option<NodeId>> {
        match self.node.input.get(i).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(name) => self.imp.values.get(name).copied().map(Some).ok_or_else(|| {
                self.err(format!(
                    "input {i} `{name}` is not produced by an earlier node, an initializer or a graph input"
                ))
            }),
        }
    }

    /// The required input `i`.
    pub fn input(&self, i: usize) -> Res<NodeId> {
        self.opt_input(i)?.ok_or_else(|| self.err(format!("input {i} is missing")))
    }

    /// True if `id` is a constant (known at import).
    pub fn is_const(&self, id: NodeId) -> bool {
        self.imp.const_of(id).is_some()
    }

    /// The type of a node.
    pub fn ty(&self, id: NodeId) -> TensorType {
        self.imp.g.node(id).ty.clone()
    }

    /// The required input `i` and its type.
    pub fn input_typed(&self, i: usize) -> Res<(NodeId, TensorType)> {
        let id = self.input(i)?;
        Ok((id, self.ty(id)))
    }

    /// The constant value of input `i`, if it is present and constant.
    pub fn const_input(&self, i: usize) -> Option<&Tensor> {
        let id = self.opt_input(i).ok()??;
        self.imp.const_of(id)
    }

    /// The constant value of input `i`, which must be present and constant.
    pub fn require_const(&self, i: usize) -> Res<Tensor> {
        let id = self.input(i)?;
        match self.imp.value_of(id) {
            Some(t) => Ok(t),
            None => Err(self.err(format!(
                "input {i} `{}` must be a constant (an initializer or computable at import), but it depends on graph inputs",
                self.node.input.get(i).map(String::as_str).unwrap_or("")
            ))),
        }
    }

    /// Input `i` as constant integers.
    pub fn require_const_i64s(&self, i: usize) -> Res<Vec<i64>> {
        let t = self.require_const(i)?;
        t.to_i64_vec().map_err(|e| self.err(format!("input {i}: {e}")))
    }

    /// Optional input `i` as constant integers (`None` when omitted).
    pub fn opt_const_i64s(&self, i: usize) -> Res<Option<Vec<i64>>> {
        if self.opt_input(i)?.is_none() {
            return Ok(None);
        }
        self.require_const_i64s(i).map(Some)
    }

    /// Optional input `i` as one constant number (`None` when omitted).
    pub fn opt_const_scalar(&self, i: usize) -> Res<Option<f64>> {
        if self.opt_input(i)?.is_none() {
            return Ok(None);
        }
        let t = self.require_const(i)?;
        match t.to_f64_vec().as_slice() {
            [v] => Ok(Some(*v)),
            _ => Err(self.err(format!("input {i} must be a single value, got {}", t.ty()))),
        }
    }

    // ---- building -------------------------------------------------------

    fn node_name(&mut self, suffix: Option<&str>) -> String {
        let base = match suffix {
            None => self.base.clone(),
            Some(s) => format!("{}/{s}", self.base),
        };
        self.imp.unique_name(&base)
    }

    /// Adds a node whose type is inferred from its operands, named after
    /// this node (plus `/suffix` for decomposition nodes). Folds it to a
    /// constant if all operands are constants.
    pub fn add(&mut self, suffix: Option<&str>, op: Op, args: &[NodeId]) -> Res<NodeId> {
        let tys: Vec<TensorType> = args.iter().map(|&a| self.ty(a)).collect();
        let refs: Vec<&TensorType> = tys.iter().collect();
        let placeholder = TensorType::new(DType::F32, Vec::new());
        let ty = op.infer(&refs, &placeholder).map_err(|m| self.err(m))?;
        self.add_typed(suffix, op, args, ty)
    }

    /// Adds a node with a given result type (checked), folding it if all
    /// operands are constants.
    pub fn add_typed(&mut self, suffix: Option<&str>, op: Op, args: &[NodeId], ty: TensorType) -> Res<NodeId> {
        let tys: Vec<TensorType> = args.iter().map(|&a| self.ty(a)).collect();
        let refs: Vec<&TensorType> = tys.iter().collect();
        let inferred = op.infer(&refs, &ty).map_err(|m| self.err(m))?;
        if inferred != ty {
            return Err(self.err(format!("{} gives {inferred}, expected {ty}", op.name())));
        }
        let Some(bytes) = ty.shape.checked_numel().and_then(|n| n.checked_mul(ty.dtype.size_bytes())) else {
            return Err(self.err(format!("{} result {ty} is too large", op.name())));
        };
        // Dequantize of constant weights stays a node: the weights stay
        // quantised in the bundle and the optimiser can see the pattern.
        let foldable = !matches!(op, Op::Dequantize { .. })
            && !args.is_empty()
            && args.iter().all(|&a| self.imp.const_of(a).is_some())
            && bytes <= MAX_FOLD_BYTES;
        let input_bytes = tys.iter().map(|t| t.byte_len()).fold(0usize, usize::saturating_add);
        let consts: Option<Vec<&Tensor>> = if foldable && self.imp.may_fold(bytes, input_bytes) {
            args.iter().map(|&a| self.imp.const_of(a)).collect()
        } else {
            None
        };
        if let Some(consts) = consts {
            let t = nanoc_ir::interp::eval_op(&op, &consts, &ty)
                .map_err(|m| self.err(format!("constant folding {} failed: {m}", op.name())))?;
            if t.ty() != &ty {
                return Err(self.err(format!("constant folding {} gave {}, expected {ty}", op.name(), t.ty())));
            }
            let name = self.node_name(suffix);
            return Ok(self.imp.g.add_const(name, t));
        }
        let name = self.node_name(suffix);
        Ok(self.imp.g.add_node(name, op, args, ty))
    }

    /// Adds a constant.
    pub fn add_const(&mut self, suffix: Option<&str>, t: Tensor) -> NodeId {
        let name = self.node_name(suffix);
        self.imp.g.add_const(name, t)
    }

    /// Adds a scalar constant of `dtype`.
    pub fn scalar(&mut self, suffix: &str, dtype: DType, v: f64) -> Res<NodeId> {
        let t = tensor_from_f64(dtype, Vec::new(), &[v]).map_err(|m| self.err(m))?;
        Ok(self.add_const(Some(suffix), t))
    }

    /// Binds output `i` to `id` (no-op for omitted outputs).
    pub fn set_output(&mut self, i: usize, id: NodeId) {
        if let Some(name) = self.node.output.get(i).filter(|n| !n.is_empty()) {
            self.imp.values.insert(name.clone(), id);
            if let Some(b) = self.bound.get_mut(i) {
                *b = true;
            }
        }
    }

    /// True if output `i` is listed and read by a node or graph output.
    pub fn output_used(&self, i: usize) -> bool {
        self.node.output.get(i).is_some_and(|n| !n.is_empty() && self.imp.used.contains(n))
    }

    /// After the importer ran: every used output must have been bound.
    pub fn check_outputs(&self) -> Res<()> {
        for (i, name) in self.node.output.iter().enumerate() {
            if !name.is_empty() && !self.bound.get(i).copied().unwrap_or(false) && self.output_used(i) {
                return Err(self.unsupported(format!("output {i} `{name}` is used, but nanoc does not compute it")));
            }
        }
        Ok(())
    }

    /// Normalises a possibly negative axis against `rank`.
    pub fn axis(&self, axis: i64, rank: usize, what: &str) -> Res<usize> {
        let r = rank as i64;
        let a = if axis < 0 { axis + r } else { axis };
        if a < 0 || a >= r {
            return Err(self.err(format!("{what} {axis} is out of range for rank {rank}")));
        }
        Ok(a as usize)
    }
}

/// The type of an attribute that does not say (IR version 1 models).
fn guess_attr_type(a: &AttributeProto) -> AttributeType {
    if a.f.is_some() {
        AttributeType::Float
    } else if a.i.is_some() {
        AttributeType::Int
    } else if a.s.is_some() {
        AttributeType::String
    } else if a.t.is_some() {
        AttributeType::Tensor
    } else if a.g.is_some() {
        AttributeType::Graph
    } else if !a.floats.is_empty() {
        AttributeType::Floats
    } else if !a.ints.is_empty() {
        AttributeType::Ints
    } else if !a.strings.is_empty() {
        AttributeType::Strings
    } else if !a.tensors.is_empty() {
        AttributeType::Tensors
    } else {
        AttributeType::Undefined
    }
}
