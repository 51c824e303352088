//! Rewrite rules as data: one file per topic (`algebra`, `activation`,
//! `norm`, `attention`, `epilogue`), each a table of [`Rule`] rows `name, lhs, rhs, when, example`
//! with a comment stating the law.
//!
//! - `lhs` is an egg pattern over op keys (see `lang.rs`): `(gelu ?x)`,
//!   `(transpose{perm=[1,0]} ?x)`, or a bare family name (`(transpose ?x)`)
//!   matching any op of that family.
//! - `rhs` is a pattern ([`rw`]) or a Rust function reading the matched
//!   e-classes (attributes, types, constants) and returning the terms to add
//!   ([`rw_fn`]).
//! - `when` binds pattern variables to constants: `"s=1.4142135 one=1"` means
//!   `?s` is a constant whose every element is `1.4142135` (within 1e-6).
//! - `example` is the rule's equivalence test: input types for the free
//!   variables (`"x:f32[2,8]"`, with the `when` constants filled in), or a
//!   function building a concrete left-hand side ([`rw_ex`], [`rw_fn`]: a
//!   wildcard has no concrete op to instantiate). The unit tests instantiate
//!   it, apply the rule, and check through the reference interpreter that
//!   every alternative the rule added computes the same values.
//!
//! Every right-hand side is type-checked before anything is added: a term
//! that does not type-check, or whose type differs from the matched
//! e-class's, is dropped, so classes of different types never merge (this
//! also makes `(reshape ?x) => ?x` mean "a reshape to x's own type"). Rules
//! only add alternatives; extraction decides with the target's cost model.

pub mod activation;
pub mod algebra;
pub mod attention;
pub mod epilogue;
pub mod norm;
pub mod quant;
pub mod sparsity;

use super::analysis::{ClassData, EGraph, NanoAnalysis};
use super::lang::{ENode, OpKind, build_op, parse_type};
use egg::{Applier, ENodeOrVar, Id, Language, Pattern, PatternAst, Rewrite, Subst, Symbol, Var};
use nanoc_ir::{DType, Graph, NodeId, Op, Tensor, TensorType};

/// A function computing a rule's right-hand side from a match.
pub type ApplyFn = fn(&Match<'_>) -> Vec<Term>;

/// A function building a rule's example left-hand side; returns the root.
pub type ExampleFn = fn(&mut Ex) -> NodeId;

/// A rule's right-hand side.
#[derive(Clone, Copy)]
pub enum Rhs {
    /// A pattern over the left-hand side's variables.
    Pattern(&'static str),
    /// A Rust function.
    Apply(ApplyFn),
}

/// A rule's equivalence test.
#[derive(Clone, Copy)]
pub enum Example {
    /// Types of the free variables: `"x:f32[2,8] y:f32[8]"`.
    Vars(&'static str),
    /// Builds a concrete left-hand side.
    Build(ExampleFn),
}

/// One rewrite rule (see the module docs).
#[derive(Clone, Copy)]
pub struct Rule {
    /// Unique name, used in reports and in the names of the nodes it makes.
    pub name: &'static str,
    /// Left-hand side pattern.
    pub lhs: &'static str,
    /// Right-hand side.
    pub rhs: Rhs,
    /// Constant variables: `"s=1.4142135 one=1"`.
    pub when: &'static str,
    /// The equivalence test.
    pub example: Example,
}

/// A pattern rule.
pub const fn rw(
    name: &'static str,
    lhs: &'static str,
    rhs: &'static str,
    when: &'static str,
    ex: &'static str,
) -> Rule {
    Rule { name, lhs, rhs: Rhs::Pattern(rhs), when, example: Example::Vars(ex) }
}

/// A pattern rule whose example is built by Rust code (a wildcard left-hand
/// side has no concrete ops to instantiate).
pub const fn rw_ex(
    name: &'static str,
    lhs: &'static str,
    rhs: &'static str,
    when: &'static str,
    ex: ExampleFn,
) -> Rule {
    Rule { name, lhs, rhs: Rhs::Pattern(rhs), when, example: Example::Build(ex) }
}

/// A rule whose right-hand side is computed by Rust code.
pub const fn rw_fn(name: &'static str, lhs: &'static str, f: ApplyFn, when: &'static str, ex: ExampleFn) -> Rule {
    Rule { name, lhs, rhs: Rhs::Apply(f), when, example: Example::Build(ex) }
}

/// A term a rule adds: an existing e-class, a new op over terms, or a new
/// constant.
#[derive(Clone, Debug)]
pub enum Term {
    /// An existing e-class.
    Class(Id),
    /// An op; `declared` is the result type for ops that take it from the
    /// node (reshape, broadcast, slice).
    Node {
        /// The op.
        op: Op,
        /// Declared result type (shape-carrying ops only).
        declared: Option<TensorType>,
        /// Operands.
        args: Vec<Term>,
    },
    /// A new constant.
    Const(Tensor),
}

impl Term {
    /// An op over terms.
    pub fn node(op: Op, args: Vec<Term>) -> Term {
        Term::Node { op, declared: None, args }
    }
}

/// A match handed to a Rust right-hand side: the e-graph, the matched
/// e-class and the variable bindings.
pub struct Match<'a> {
    /// The e-graph.
    pub eg: &'a EGraph,
    /// The matched e-class (the root of the left-hand side).
    pub eclass: Id,
    subst: &'a Subst,
}

impl Match<'_> {
    /// The e-class bound to `?name`.
    pub fn var(&self, name: &str) -> Option<Id> {
        let v: Var = name.parse().ok()?;
        self.subst.get(v).map(|&id| self.eg.find(id))
    }

    /// The analysis data of an e-class.
    pub fn data(&self, c: Id) -> &ClassData {
        &self.eg[c].data
    }

    /// The ops of family `family` in e-class `c`, with canonical operands.
    pub fn ops(&self, c: Id, family: &str) -> Vec<(&'static Op, Vec<Id>)> {
        self.eg[c]
            .nodes
            .iter()
            .filter(|n| n.is(family))
            .filter_map(|n| {
                let info = n.info()?;
                let (op, _) = info.op()?;
                Some((op, n.children().iter().map(|&k| self.eg.find(k)).collect()))
            })
            .collect()
    }

    /// The tensor of e-class `c` if it has a constant leaf (of any size).
    pub fn const_tensor(&self, c: Id) -> Option<&Tensor> {
        self.eg[c].nodes.iter().find_map(|n| match &n.info()?.kind {
            OpKind::Const(i) => self.eg.analysis.consts.get(*i),
            _ => None,
        })
    }

    /// The e-class of `op(children)` if the e-graph has it.
    pub fn lookup(&self, op: &Op, children: &[Id]) -> Option<Id> {
        let tys: Vec<&TensorType> = children.iter().map(|&c| &self.eg[c].data.ty).collect();
        let ty = op.infer(&tys, &TensorType::new(DType::F32, Vec::<usize>::new())).ok()?;
        self.eg.lookup(ENode::op(op, &tys, &ty, children.to_vec()))
    }
}

/// Parses a `when` string into (variable, value) pairs.
fn parse_when(when: &str) -> Result<Vec<(Var, f64)>, String> {
    when.split_whitespace()
        .map(|item| {
            let (v, x) = item.split_once('=').ok_or_else(|| format!("`{item}`: expected NAME=VALUE"))?;
            let var: Var = format!("?{v}").parse().map_err(|e| format!("`{item}`: {e}"))?;
            let x: f64 = x.parse().map_err(|_| format!("`{item}`: `{x}` is not a number"))?;
            Ok((var, x))
        })
        .collect()
}

enum RhsImpl {
    Pattern(PatternAst<ENode>, Vec<Var>),
    Apply(ApplyFn),
}

/// The applier of every rule: checks the constants, computes the terms,
/// type-checks them, adds them and unions them with the matched class.
struct RuleApplier {
    name: &'static str,
    when: Vec<(Var, f64)>,
    rhs: RhsImpl,
}

/// The type of a term, or why it does not type-check.
fn term_type(eg: &EGraph, t: &Term) -> Result<TensorType, String> {
    match t {
        Term::Class(c) => Ok(eg[*c].data.ty.clone()),
        Term::Const(t) => Ok(t.ty().clone()),
        Term::Node { op, declared, args } => {
            let tys = args.iter().map(|a| term_type(eg, a)).collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<&TensorType> = tys.iter().collect();
            let placeholder = TensorType::new(DType::F32, Vec::<usize>::new());
            op.infer(&refs, declared.as_ref().unwrap_or(&placeholder))
        }
    }
}

/// Adds a type-checked term.
fn add_term(eg: &mut EGraph, t: &Term) -> Id {
    match t {
        Term::Class(c) => *c,
        Term::Const(t) => {
            let i = eg.analysis.folded_const(t.clone());
            eg.add(ENode::constant(i))
        }
        Term::Node { op, declared, args } => {
            let kids: Vec<Id> = args.iter().map(|a| add_term(eg, a)).collect();
            let tys: Vec<TensorType> = kids.iter().map(|&k| eg[k].data.ty.clone()).collect();
            let refs: Vec<&TensorType> = tys.iter().collect();
            let placeholder = TensorType::new(DType::F32, Vec::<usize>::new());
            let ty = op.infer(&refs, declared.as_ref().unwrap_or(&placeholder)).unwrap_or(placeholder);
            eg.add(ENode::op(op, &refs, &ty, kids))
        }
    }
}

/// The term a pattern's node `i` stands for under `subst`.
fn pattern_term(ast: &PatternAst<ENode>, i: usize, subst: &Subst) -> Result<Term, String> {
    match &ast[Id::from(i)] {
        ENodeOrVar::Var(v) => subst.get(*v).map(|&c| Term::Class(c)).ok_or_else(|| format!("unbound {v}")),
        ENodeOrVar::ENode(n) => {
            let (op, declared) = build_op(n)?;
            let args =
                n.children().iter().map(|&k| pattern_term(ast, usize::from(k), subst)).collect::<Result<_, _>>()?;
            Ok(Term::Node { op, declared, args })
        }
    }
}

impl Applier<ENode, NanoAnalysis> for RuleApplier {
    fn apply_one(
        &self,
        eg: &mut EGraph,
        eclass: Id,
        subst: &Subst,
        _ast: Option<&PatternAst<ENode>>,
        _rule: Symbol,
    ) -> Vec<Id> {
        let ok = self.when.iter().all(|(v, x)| subst.get(*v).is_some_and(|&c| eg[c].data.is_splat(*x)));
        if !ok {
            return Vec::new();
        }
        let terms = match &self.rhs {
            RhsImpl::Pattern(ast, _) => pattern_term(ast, ast.as_ref().len() - 1, subst).into_iter().collect(),
            RhsImpl::Apply(f) => f(&Match { eg, eclass, subst }),
        };
        let mut changed = Vec::new();
        for t in terms {
            if term_type(eg, &t).ok().as_ref() != Some(&eg[eclass].data.ty) {
                continue;
            }
            eg.analysis.rule = Some(self.name);
            let id = add_term(eg, &t);
            eg.analysis.rule = None;
            if eg.union(eclass, id) {
                changed.push(eclass);
            }
        }
        changed
    }

    fn vars(&self) -> Vec<Var> {
        match &self.rhs {
            RhsImpl::Pattern(_, vars) => vars.clone(),
            RhsImpl::Apply(_) => Vec::new(),
        }
    }
}

impl Rule {
    /// Compiles the rule into an egg rewrite, checking its patterns (ops
    /// known, right-hand side buildable, variables bound).
    pub fn compile(&self) -> Result<Rewrite<ENode, NanoAnalysis>, String> {
        let err = |e: String| format!("rule `{}`: {e}", self.name);
        let lhs: Pattern<ENode> = self.lhs.parse().map_err(|e| err(format!("left-hand side: {e}")))?;
        let when = parse_when(self.when).map_err(err)?;
        for (v, _) in &when {
            if !lhs.vars().contains(v) {
                return Err(err(format!("`when` names {v}, which the left-hand side does not bind")));
            }
        }
        let rhs = match self.rhs {
            Rhs::Pattern(p) => {
                let pat: Pattern<ENode> = p.parse().map_err(|e| err(format!("right-hand side: {e}")))?;
                for n in pat.ast.as_ref() {
                    if let ENodeOrVar::ENode(n) = n {
                        build_op(n).map_err(|e| err(format!("right-hand side: {e}")))?;
                    }
                }
                let vars = pat.vars();
                RhsImpl::Pattern(pat.ast, vars)
            }
            Rhs::Apply(f) => RhsImpl::Apply(f),
        };
        if let Example::Vars(ex) = self.example {
            parse_example(ex).map_err(err)?;
        }
        Rewrite::new(self.name, lhs, RuleApplier { name: self.name, when, rhs }).map_err(err)
    }
}

/// Parses `"x:f32[2,8] y:f32[8]"`.
fn parse_example(ex: &str) -> Result<Vec<(String, TensorType)>, String> {
    ex.split_whitespace()
        .map(|item| {
            let (v, t) = item.split_once(':').ok_or_else(|| format!("example `{item}`: expected NAME:TYPE"))?;
            let ty = parse_type(t).ok_or_else(|| format!("example `{item}`: bad type `{t}`"))?;
            Ok((v.to_string(), ty))
        })
        .collect()
}

fn example_type(ty: &str) -> TensorType {
    parse_type(ty).unwrap_or_else(|| panic!("example type `{ty}` does not parse"))
}

/// Builds example graphs: inputs get deterministic pseudo-random values.
pub struct Ex {
    /// The graph being built.
    pub g: Graph,
    n: usize,
}

impl Default for Ex {
    fn default() -> Self {
        Ex { g: Graph::new("example"), n: 0 }
    }
}

impl Ex {
    fn name(&mut self, prefix: &str) -> String {
        self.n += 1;
        format!("{prefix}{}", self.n)
    }

    /// A graph input of type `ty` (`"f32[2,3]"`).
    pub fn input(&mut self, ty: &str) -> NodeId {
        let ty = example_type(ty);
        let name = self.name("in");
        self.g.add_input(name, ty)
    }

    /// A constant of type `ty` with every element `v`.
    pub fn splat(&mut self, ty: &str, v: f32) -> NodeId {
        let ty = example_type(ty);
        let t = Tensor::from_vec(ty.shape.clone(), vec![v; ty.shape.numel()]).unwrap_or_else(|_| Tensor::scalar(v));
        let name = self.name("c");
        self.g.add_const(name, t)
    }

    /// A constant of type `ty` (`"i8[4]"`) holding `values` (converted to
    /// its dtype like a cast).
    pub fn values(&mut self, ty: &str, values: &[f32]) -> NodeId {
        let ty = example_type(ty);
        let t = Tensor::from_vec(ty.shape.clone(), values.to_vec())
            .map_err(|e| e.to_string())
            .and_then(|f| nanoc_ir::interp::eval_op(&Op::Cast { to: ty.dtype }, &[&f], &ty))
            .unwrap_or_else(|e| panic!("example constant {ty}: {e}"));
        let name = self.name("c");
        self.g.add_const(name, t)
    }

    /// An op node with an inferred type.
    pub fn op(&mut self, op: Op, args: &[NodeId]) -> NodeId {
        let name = self.name("n");
        let tys: Vec<&TensorType> = args.iter().map(|&a| &self.g.node(a).ty).collect();
        let ty = op
            .infer(&tys, &TensorType::new(DType::F32, Vec::<usize>::new()))
            .unwrap_or_else(|e| panic!("example node `{name}` ({}): {e}", op.name()));
        self.g.add_node(name, op, args, ty)
    }

    /// An op node with a declared type (reshape, broadcast, slice).
    pub fn typed(&mut self, op: Op, args: &[NodeId], ty: &str) -> NodeId {
        let name = self.name("n");
        let ty = example_type(ty);
        self.g.add_node(name, op, args, ty)
    }
}

#[cfg(test)]
pub mod check {
    //! The equivalence tests of the rule tables.

    use super::*;
    use crate::egraph::convert::{to_egraph, to_ir};
    use crate::egraph::cost::{CostModel, extract};
    use egg::{Runner, SimpleScheduler};
    use std::collections::HashSet;

    /// Deterministic values in [-2, 2) for a type.
    pub fn values(ty: &TensorType, seed: usize) -> Tensor {
        let mut s = (seed as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0
        };
        let n = ty.shape.numel();
        match ty.dtype {
            DType::I64 => Tensor::from_vec(ty.shape.clone(), (0..n).map(|_| (next() * 3.0) as i64).collect()),
            DType::I32 => Tensor::from_vec(ty.shape.clone(), (0..n).map(|_| (next() * 3.0) as i32).collect()),
            DType::Bool => Tensor::from_vec(ty.shape.clone(), (0..n).map(|_| next() > 0.0).collect()),
            DType::I8 => Tensor::from_vec(ty.shape.clone(), (0..n).map(|_| (next() * 63.0) as i8).collect()),
            DType::U8 => Tensor::from_vec(ty.shape.clone(), (0..n).map(|_| ((next() + 2.0) * 63.0) as u8).collect()),
            _ => Tensor::from_vec(ty.shape.clone(), (0..n).map(|_| next() as f32).collect()),
        }
        .unwrap()
    }

    /// The rule's example left-hand side as a graph with one output.
    pub fn example_graph(rule: &Rule) -> Graph {
        let mut ex = Ex::default();
        let root = match rule.example {
            Example::Build(f) => f(&mut ex),
            Example::Vars(vars) => {
                let vars = parse_example(vars).unwrap();
                let when = parse_when(rule.when).unwrap();
                let pat: Pattern<ENode> = rule.lhs.parse().unwrap();
                let mut ids: Vec<NodeId> = Vec::new();
                let mut bound: Vec<(Var, NodeId)> = Vec::new();
                for n in pat.ast.as_ref() {
                    let id = match n {
                        ENodeOrVar::Var(v) => match bound.iter().find(|(b, _)| b == v) {
                            Some(&(_, id)) => id,
                            None => {
                                let id = match when.iter().find(|(w, _)| w == v) {
                                    Some(&(_, x)) => ex.splat("f32[]", x as f32),
                                    None => {
                                        let ty =
                                            &vars.iter().find(|(n, _)| format!("?{n}") == v.to_string()).unwrap().1;
                                        ex.input(&ty.to_string())
                                    }
                                };
                                bound.push((*v, id));
                                id
                            }
                        },
                        ENodeOrVar::ENode(n) => {
                            let (op, declared) = build_op(n).unwrap();
                            let args: Vec<NodeId> = n.children().iter().map(|&k| ids[usize::from(k)]).collect();
                            match declared {
                                Some(t) => ex.typed(op, &args, &t.to_string()),
                                None => ex.op(op, &args),
                            }
                        }
                    };
                    ids.push(id);
                }
                *ids.last().unwrap()
            }
        };
        ex.g.add_output("y", root);
        nanoc_ir::verify::verify(&ex.g).unwrap_or_else(|e| panic!("rule `{}`: example: {e}", rule.name));
        ex.g
    }

    fn close(a: &Tensor, b: &Tensor) -> bool {
        a.ty() == b.ty()
            && a.to_f64_vec()
                .iter()
                .zip(b.to_f64_vec())
                .all(|(x, y)| (x - y).abs() <= 1e-4 * y.abs() + 1e-5 || (x.is_nan() && y.is_nan()))
    }

    /// Applies `rule` to its example and checks that every alternative it
    /// added to the root class computes the same values.
    pub fn check_rule(rule: &Rule) {
        let g = example_graph(rule);
        let inputs: Vec<Tensor> = g.inputs().iter().enumerate().map(|(i, &id)| values(&g.node(id).ty, i)).collect();
        let want = nanoc_ir::interp::run(&g, &inputs).unwrap();
        let c = to_egraph(&g).unwrap();
        let original_root = c.egraph[c.roots[0]].nodes.clone();
        let rw = rule.compile().unwrap();
        let runner = Runner::default()
            .with_egraph(c.egraph)
            .with_iter_limit(3)
            .with_scheduler(SimpleScheduler)
            .run(std::slice::from_ref(&rw));
        let eg = runner.egraph;
        assert!(eg.analysis.errors.is_empty(), "rule `{}`: {:?}", rule.name, eg.analysis.errors);
        let root = eg.find(c.roots[0]);
        let originals: HashSet<ENode> = c.origins.canonical(&eg).into_keys().collect();
        let target = nanoc_targets::Target::find("cpu-x86_64").unwrap();
        let ext = extract(&eg, &[root], &CostModel::for_target(&target).unwrap(), &originals);
        let old: Vec<ENode> = original_root.into_iter().map(|n| n.map_children(|k| eg.find(k))).collect();
        let mut checked = 0;
        for alt in &eg[root].nodes {
            let alt = alt.clone().map_children(|k| eg.find(k));
            if old.contains(&alt) || alt.children().contains(&root) {
                continue;
            }
            let choice = |k: Id| if k == root { alt.clone() } else { ext.choice[&k].clone() };
            let h = to_ir(&eg, &[root], &c.origins, choice).unwrap();
            nanoc_ir::verify::verify(&h).unwrap();
            let got = nanoc_ir::interp::run(&h, &inputs).unwrap();
            assert!(
                close(&got[0], &want[0]),
                "rule `{}`: alternative `{alt}` differs:\n{}\nvs\n{}",
                rule.name,
                nanoc_ir::text::print(&h),
                nanoc_ir::text::print(&g)
            );
            checked += 1;
        }
        assert!(checked > 0, "rule `{}` did not fire on its example:\n{}", rule.name, nanoc_ir::text::print(&g));
    }

    /// Checks every rule of a table: compiles, unique names, law holds.
    pub fn check_table(rules: &[Rule]) {
        let mut names = HashSet::new();
        for r in rules {
            assert!(names.insert(r.name), "duplicate rule name `{}`", r.name);
            r.compile().unwrap_or_else(|e| panic!("{e}"));
            check_rule(r);
        }
    }
}
