//! The e-graph language: one e-node shape, `{ family, op, children }`, for
//! every IR op.
//!
//! An op is identified by its *key*, the text the `.ngraph` printer writes
//! for it with the spaces removed (`add`, `transpose{perm=[0,2,1,3]}`,
//! `layer_norm{axis=2,epsilon=1e-5}`). Ops whose result shape is not implied
//! by their operands (reshape, broadcast, slice: found by asking
//! [`Op::infer`] whether it reads the declared type) append it
//! (`reshape:f32[1,16,4,16]`), so different reshapes never merge. Leaves are
//! `input#N` (the N-th graph input) and `const#N` (the N-th entry of the
//! e-graph's constant table). Keys are interned in a process-wide table
//! ([`OpId`] is a hash of the key, so ids and the order of e-nodes do not
//! depend on which graph or test interned first); a new IR op needs no
//! change here.
//!
//! Patterns (`"(gelu ?x)"`, `"(transpose{perm=[1,0]} ?x)"`) are parsed by
//! [`FromOp`]: a key names that exact op; a bare family name of an op that
//! has attributes or a declared type (`transpose`, `reshape`,
//! `reduce_mean`) is a *wildcard* matching every op of the family (the rule's
//! Rust applier then reads the attributes from the matched e-class). Keys
//! are turned back into [`Op`]s by the `.ngraph` parser itself, on a small
//! template graph, so the text format's op table stays the one source of
//! truth.

use egg::{FromOp, Id, Language};
use nanoc_ir::{DType, Graph, IrError, Op, TensorType, text};
use std::collections::HashMap;
use std::fmt;
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// An op family (the op's name: `add`, `transpose`, `input`, ...): the
/// e-matching discriminant. A hash of the name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Family(u32);

/// One distinct op (name, attributes and, for shape-carrying ops, result
/// type): a hash of its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(u64);

/// The op of a wildcard pattern node (sorts after every real op of its
/// family, which egg's sorted-node matching relies on).
const WILDCARD: OpId = OpId(u64::MAX);

/// An e-node. Field order matters: nodes sort by family first, so the nodes
/// of one family are contiguous in an e-class.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ENode {
    family: Family,
    op: OpId,
    children: Vec<Id>,
}

/// What a key stands for.
#[derive(Debug)]
pub enum OpKind {
    /// The graph input with this index.
    Input(usize),
    /// The constant-table entry with this index.
    Const(usize),
    /// An IR op: the op and, for shape-carrying ops, its declared result
    /// type. Empty while the key is only known from a pattern that the
    /// template parser could not build.
    Op(OnceLock<(Op, Option<TensorType>)>),
}

/// An interned key.
#[derive(Debug)]
pub struct OpInfo {
    /// The key (`transpose{perm=[1,0]}`).
    pub key: String,
    /// Its family.
    pub family: Family,
    /// The family's name (`transpose`).
    pub family_name: &'static str,
    /// What it stands for.
    pub kind: OpKind,
}

impl OpInfo {
    /// The IR op and declared type, if this key is an op that can be built.
    pub fn op(&self) -> Option<&(Op, Option<TensorType>)> {
        match &self.kind {
            OpKind::Op(cell) => cell.get(),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Table {
    ops: HashMap<u64, &'static OpInfo>,
    families: HashMap<u32, &'static str>,
    /// Per family name: does the op take its result type from the node?
    carries_type: HashMap<&'static str, bool>,
    /// Per family name: does the op print without attributes?
    bare: HashMap<&'static str, bool>,
    /// Printed keys of ops with attributes, by their `Debug` text.
    keys: HashMap<String, String>,
}

fn table() -> &'static RwLock<Table> {
    static TABLE: OnceLock<RwLock<Table>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

fn read() -> RwLockReadGuard<'static, Table> {
    table().read().unwrap_or_else(|e| e.into_inner())
}

fn write() -> RwLockWriteGuard<'static, Table> {
    table().write().unwrap_or_else(|e| e.into_inner())
}

/// FNV-1a, 64 bit: stable across runs and platforms.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

fn family_of(name: &str) -> Family {
    let h = fnv(name);
    Family((h ^ (h >> 32)) as u32)
}

/// Interns `name` as a family.
fn intern_family(name: &str) -> (Family, &'static str) {
    let f = family_of(name);
    if let Some(&n) = read().families.get(&f.0) {
        return (f, n);
    }
    let mut t = write();
    let n: &'static str = t.families.entry(f.0).or_insert_with(|| Box::leak(name.to_string().into_boxed_str()));
    (f, n)
}

/// Interns a key; `make` builds its kind the first time. A known key whose
/// op was still unbuilt gets `op` filled in.
fn intern(key: &str, family_name: &str, kind: impl FnOnce() -> OpKind) -> (Family, OpId) {
    let (family, family_name) = intern_family(family_name);
    let mut h = fnv(key);
    if h == WILDCARD.0 {
        h -= 1;
    }
    if read().ops.get(&h).is_some_and(|info| info.key == key) {
        return (family, OpId(h));
    }
    let mut t = write();
    loop {
        match t.ops.get(&h) {
            Some(info) if info.key == key => return (family, OpId(h)),
            // A 64-bit collision: probe (deterministic for a given set of keys).
            Some(_) => h = h.wrapping_add(1).min(WILDCARD.0 - 1),
            None => break,
        }
    }
    let info: &'static OpInfo = Box::leak(Box::new(OpInfo { key: key.to_string(), family, family_name, kind: kind() }));
    t.ops.insert(h, info);
    (family, OpId(h))
}

/// The interned key behind an op id (`None` for wildcards).
pub fn info(op: OpId) -> Option<&'static OpInfo> {
    read().ops.get(&op.0).copied()
}

/// The name of a family.
pub fn family_name(f: Family) -> &'static str {
    read().families.get(&f.0).copied().unwrap_or("?")
}

/// The `const` family.
pub fn const_family() -> Family {
    family_of("const")
}

/// The `name{attrs}` text the printer writes for `op`, without spaces.
fn printed(op: &Op, ty: &TensorType) -> String {
    if read().bare.get(op.name()) == Some(&true) {
        return op.name().to_string();
    }
    let debug = format!("{op:?}");
    if let Some(k) = read().keys.get(&debug) {
        return k.clone();
    }
    let key = print_op(op, ty);
    let mut t = write();
    t.bare.insert(op.name(), key == op.name());
    t.keys.insert(debug, key.clone());
    key
}

/// Prints `op` through the `.ngraph` printer (a one-node graph).
fn print_op(op: &Op, ty: &TensorType) -> String {
    let mut g = Graph::new("k");
    g.add_node("n", op.clone(), &[], ty.clone());
    let s = text::print(&g);
    let line = s.lines().find(|l| l.contains("= ")).unwrap_or_default();
    let after = line.split_once("= ").map_or("", |(_, r)| r);
    // The head ends at the first `(` outside a quoted attribute value (a
    // fused program is a string with parentheses of its own).
    let mut quoted = false;
    let mut escaped = false;
    let end = after
        .char_indices()
        .find(|&(_, c)| {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                '(' if !quoted => return true,
                _ => {}
            }
            false
        })
        .map_or(after.len(), |(i, _)| i);
    after[..end].chars().filter(|c| !c.is_whitespace()).collect()
}

/// Whether `op` takes its result type from the node: asked of the first
/// well-typed node of each family (does `infer` read the declared type?).
fn carries_type(op: &Op, args: &[&TensorType], ty: &TensorType) -> bool {
    if let Some(&c) = read().carries_type.get(op.name()) {
        return c;
    }
    if op.infer(args, ty).ok().as_ref() != Some(ty) {
        return false;
    }
    let other = if ty.dtype == DType::Bool { DType::F32 } else { DType::Bool };
    let bogus = TensorType::new(other, vec![7usize, 11, 13]);
    let c = op.infer(args, &bogus).ok().as_ref() != Some(ty);
    write().carries_type.insert(op.name(), c);
    c
}

impl ENode {
    /// The e-node of an IR op with operand types `args` and result type `ty`.
    pub fn op(op: &Op, args: &[&TensorType], ty: &TensorType, children: Vec<Id>) -> ENode {
        let carries = carries_type(op, args, ty);
        let mut key = printed(op, ty);
        if carries {
            key = format!("{key}:{ty}");
        }
        let declared = carries.then(|| ty.clone());
        let (family, id) = intern(&key, op.name(), || OpKind::Op(OnceLock::new()));
        if let Some(OpKind::Op(cell)) = info(id).map(|i| &i.kind) {
            cell.get_or_init(|| (op.clone(), declared));
        }
        ENode { family, op: id, children }
    }

    /// The leaf for graph input `index`.
    pub fn input(index: usize) -> ENode {
        let (family, op) = intern(&format!("input#{index}"), "input", || OpKind::Input(index));
        ENode { family, op, children: Vec::new() }
    }

    /// The leaf for constant-table entry `index`.
    pub fn constant(index: usize) -> ENode {
        let (family, op) = intern(&format!("const#{index}"), "const", || OpKind::Const(index));
        ENode { family, op, children: Vec::new() }
    }

    /// The family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The op id.
    pub fn op_id(&self) -> OpId {
        self.op
    }

    /// The interned key (`None` for a wildcard pattern node).
    pub fn info(&self) -> Option<&'static OpInfo> {
        if self.op == WILDCARD { None } else { info(self.op) }
    }

    /// True for a pattern node that matches any op of its family.
    pub fn is_wildcard(&self) -> bool {
        self.op == WILDCARD
    }

    /// True if this is a node of the family called `name`.
    pub fn is(&self, name: &str) -> bool {
        self.family == family_of(name)
    }
}

impl Language for ENode {
    type Discriminant = Family;

    fn discriminant(&self) -> Family {
        self.family
    }

    fn matches(&self, other: &Self) -> bool {
        self.family == other.family
            && self.children.len() == other.children.len()
            && (self.op == other.op || self.op == WILDCARD)
    }

    fn children(&self) -> &[Id] {
        &self.children
    }

    fn children_mut(&mut self) -> &mut [Id] {
        &mut self.children
    }
}

impl fmt::Display for ENode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.info() {
            Some(i) => f.write_str(&i.key),
            None => f.write_str(family_name(self.family)),
        }
    }
}

impl FromOp for ENode {
    type Error = String;

    fn from_op(op: &str, children: Vec<Id>) -> Result<Self, String> {
        let (family, op) = pattern_op(op, children.len())?;
        Ok(ENode { family, op, children })
    }
}

/// The family name of a key: the text before `{`, `:` or `#`.
fn family_part(key: &str) -> &str {
    key.split(['{', ':', '#']).next().unwrap_or(key)
}

/// Parses a pattern op: a key, or a bare family name (exact for ops without
/// attributes, else a wildcard).
fn pattern_op(s: &str, arity: usize) -> Result<(Family, OpId), String> {
    let name = family_part(s);
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("bad op `{s}` in pattern"));
    }
    let bare = name == s;
    match resolve_text(s, arity) {
        Ok((op, declared)) => {
            if bare && declared.is_some() {
                return Ok((intern_family(name).0, WILDCARD));
            }
            let mut key = printed(&op, declared.as_ref().unwrap_or(&TensorType::new(DType::F32, Vec::new())));
            if let Some(t) = &declared {
                key = format!("{key}:{t}");
            }
            let (family, id) = intern(&key, name, || OpKind::Op(OnceLock::new()));
            if let Some(OpKind::Op(cell)) = info(id).map(|i| &i.kind) {
                let _ = cell.set((op, declared));
            }
            Ok((family, id))
        }
        Err(e) if e.contains("unknown op") => Err(format!("unknown op `{name}` in pattern")),
        Err(_) if bare => Ok((intern_family(name).0, WILDCARD)),
        // A key the template cannot build (e.g. an attribute that needs other
        // operand shapes): matched by key; only Rust appliers build it.
        Err(_) => Ok(intern(s, name, || OpKind::Op(OnceLock::new()))),
    }
}

/// Builds the op a key names with the `.ngraph` parser, on a template graph
/// of `arity` operands (f32[2,2], or the declared type of a shape-carrying
/// key). Returns the op and, for shape-carrying keys, the declared type.
fn resolve_text(key: &str, arity: usize) -> Result<(Op, Option<TensorType>), String> {
    let (head, declared) = match key.split_once(':') {
        Some((h, t)) => (h, Some(parse_type(t).ok_or_else(|| format!("bad type `{t}` in op key `{key}`"))?)),
        None => (key, None),
    };
    let sq = |d: DType| TensorType::new(d, vec![2usize, 2]);
    let mut operand_sets: Vec<Vec<TensorType>> = Vec::new();
    if let Some(t) = &declared {
        operand_sets.push(vec![t.clone(); arity]);
    }
    operand_sets.push(vec![sq(DType::F32); arity]);
    if arity >= 1 {
        let mut v = vec![sq(DType::F32); arity];
        v[0] = sq(DType::Bool);
        operand_sets.push(v);
    }
    if arity >= 2 {
        let mut v = vec![sq(DType::F32); arity];
        v[1] = sq(DType::I64);
        operand_sets.push(v);
    }
    let results: Vec<TensorType> = match &declared {
        Some(t) => vec![t.clone()],
        None => vec![sq(DType::F32), sq(DType::Bool)],
    };
    let mut last = String::new();
    for operands in &operand_sets {
        for result in &results {
            let mut src = String::from("graph \"t\" {\n");
            for (i, t) in operands.iter().enumerate() {
                src.push_str(&format!("  %a{i} = input \"a{i}\" : {t}\n"));
            }
            let args: Vec<String> = (0..arity).map(|i| format!("%a{i}")).collect();
            src.push_str(&format!("  %r = {head}({}) \"n\" : {result}\n  output \"o\" = %r\n}}\n", args.join(", ")));
            match text::parse(&src, "<pattern>", None) {
                Ok(g) => {
                    let found = g.node_ids().into_iter().map(|id| g.node(id)).find(|n| n.name == "n");
                    if let Some(n) = found {
                        let tys: Vec<&TensorType> = operands.iter().collect();
                        let carries = carries_type(&n.op, &tys, &n.ty);
                        return Ok((n.op.clone(), carries.then(|| n.ty.clone())));
                    }
                }
                Err(IrError::Parse { msg, .. }) if msg.starts_with("unknown op") => return Err(msg),
                Err(e) => last = e.to_string(),
            }
        }
    }
    Err(last)
}

/// Parses a type written like `f32[2,3]`.
pub fn parse_type(s: &str) -> Option<TensorType> {
    let (d, rest) = s.split_once('[')?;
    let dims = rest.strip_suffix(']')?;
    let dims: Option<Vec<usize>> = if dims.trim().is_empty() {
        Some(Vec::new())
    } else {
        dims.split(',').map(|x| x.trim().parse().ok()).collect()
    };
    Some(TensorType::new(DType::from_name(d.trim())?, dims?))
}

/// The op behind an e-node (and its declared type, for shape-carrying ops),
/// or why it cannot be built (a wildcard, a leaf, an unbuilt pattern key).
pub fn build_op(node: &ENode) -> Result<(Op, Option<TensorType>), String> {
    let info = node.info().ok_or_else(|| format!("wildcard `{node}` cannot be built; write a Rust applier"))?;
    match &info.kind {
        OpKind::Op(cell) => cell
            .get()
            .cloned()
            .ok_or_else(|| format!("op `{}` cannot be built from its key; write a Rust applier", info.key)),
        _ => Err(format!("leaf `{}` is not an op", info.key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanoc_ir::{BinaryOp, UnaryOp};

    fn p(s: &str) -> egg::Pattern<ENode> {
        s.parse().unwrap()
    }

    #[test]
    fn keys_are_the_printed_op() {
        let t = TensorType::new(DType::F32, vec![1usize, 4, 16, 16]);
        let u = TensorType::new(DType::F32, vec![1usize, 16, 4, 16]);
        let n = ENode::op(&Op::Transpose { perm: vec![0, 2, 1, 3] }, &[&t], &u, vec![Id::from(0)]);
        assert_eq!(n.to_string(), "transpose{perm=[0,2,1,3]}");
        let r = TensorType::new(DType::F32, vec![4usize, 256]);
        let n = ENode::op(&Op::Reshape, &[&t], &r, vec![Id::from(0)]);
        assert_eq!(n.to_string(), "reshape:f32[4,256]");
        let n = ENode::op(&Op::Binary(BinaryOp::Add), &[&t, &t], &t, vec![Id::from(0), Id::from(1)]);
        assert_eq!(n.to_string(), "add");
        assert_eq!(ENode::input(3).to_string(), "input#3");
        // A fused program's parentheses are part of the key.
        let p = nanoc_ir::Program::default().then(Op::Binary(BinaryOp::Sub), vec![nanoc_ir::Arg::Operand(0)]);
        let q = p.then(Op::Unary(UnaryOp::Neg), vec![nanoc_ir::Arg::Step(0)]);
        let (n1, n2) = (
            ENode::op(&Op::Fused { body: p }, &[&t], &t, vec![]),
            ENode::op(&Op::Fused { body: q }, &[&t], &t, vec![]),
        );
        assert_eq!(n2.to_string(), r#"fused{body="sub(x0),neg(t0)"}"#);
        assert_ne!(n1.op_id(), n2.op_id());
    }

    #[test]
    fn patterns_parse_exact_ops_and_wildcards() {
        let gelu = p("(gelu ?x)");
        let ENodeOrVar::ENode(n) = gelu.ast.last().unwrap() else { panic!() };
        assert!(!n.is_wildcard());
        assert_eq!(build_op(n).unwrap().0, Op::Unary(UnaryOp::Gelu));
        for w in ["(transpose ?x)", "(reshape ?x)", "(reduce_mean ?x)", "(softmax ?x)"] {
            let pat = p(w);
            let ENodeOrVar::ENode(n) = pat.ast.last().unwrap() else { panic!() };
            assert!(n.is_wildcard(), "{w}");
        }
        let t = p("(transpose{perm=[1,0]} ?x)");
        let ENodeOrVar::ENode(n) = t.ast.last().unwrap() else { panic!() };
        assert_eq!(build_op(n).unwrap().0, Op::Transpose { perm: vec![1, 0] });
        // The same op from a graph interns to the same id.
        let ty = TensorType::new(DType::F32, vec![3usize, 5]);
        let ty2 = TensorType::new(DType::F32, vec![5usize, 3]);
        assert_eq!(ENode::op(&Op::Transpose { perm: vec![1, 0] }, &[&ty], &ty2, vec![Id::from(0)]).op_id(), n.op_id());
        assert!("(bogus_op ?x)".parse::<egg::Pattern<ENode>>().is_err());
    }

    use egg::ENodeOrVar;

    #[test]
    fn types_parse() {
        assert_eq!(parse_type("f32[2,3]"), Some(TensorType::new(DType::F32, vec![2usize, 3])));
        assert_eq!(parse_type("i64[]"), Some(TensorType::new(DType::I64, Vec::<usize>::new())));
        assert_eq!(parse_type("x[1]"), None);
    }
}
