//! The `.ngraph` parser: a small lexer and a recursive-descent parser.

use crate::weights::Weights;
use crate::{
    Arg, BinaryOp, Bytes, DType, Element, Graph, IrError, NodeId, Op, PadMode, Program, ReduceKind, Result,
    ScatterReduction, Step, Tensor, TensorType, UnaryOp, Window,
};
use half::{bf16, f16};
use std::collections::{HashMap, HashSet};

/// Parses `.ngraph` text (see the [module docs](super)) into a verified
/// graph.
///
/// `file` names the source in errors: every syntax or resolution error is an
/// [`IrError::Parse`] with the 1-based line and column and what was
/// expected; a graph that parses but fails [`crate::verify::verify`] gives
/// its [`IrError::Verify`]. `weights` resolves `@external` constants; a
/// missing weights file or a missing or mistyped weight is an error naming
/// it.
pub fn parse(src: &str, file: &str, weights: Option<&Weights>) -> Result<Graph> {
    let toks = lex(src, file)?;
    let mut p = Parser::new(toks, file, weights);
    let g = p.graph()?;
    crate::verify::verify(&g)?;
    Ok(g)
}

// ---- op table ----------------------------------------------------------

type Ctor = fn(&mut Attrs<'_>) -> Result<Op>;

/// One entry of the parser's op table.
pub(super) struct OpDef {
    /// The op's name, as [`Op::name`] gives it.
    pub name: &'static str,
    /// Its attributes, in printing order.
    pub attrs: &'static [&'static str],
    /// Builds the op from its attributes.
    ctor: Ctor,
}

const WINDOW: &[&str] = &["kernel", "strides", "pads_begin", "pads_end", "dilations"];
const CONV: &[&str] = &["kernel", "strides", "pads_begin", "pads_end", "dilations", "group"];
const AVG_POOL: &[&str] = &["kernel", "strides", "pads_begin", "pads_end", "dilations", "count_include_pad"];
const REDUCE: &[&str] = &["axes", "keep_dims"];
const AXIS: &[&str] = &["axis"];
const ARG_REDUCE: &[&str] = &["axis", "keep_dims", "select_last"];
const CONV_TRANSPOSE: &[&str] =
    &["kernel", "strides", "pads_begin", "pads_end", "dilations", "group", "output_padding"];

macro_rules! op {
    ($name:literal, $op:expr) => {
        OpDef { name: $name, attrs: &[], ctor: |_| Ok($op) }
    };
    ($name:literal, $attrs:expr, $ctor:expr) => {
        OpDef { name: $name, attrs: $attrs, ctor: $ctor }
    };
}

/// Every op written `name{attrs}(args)`: all of [`Op`] but `input` and
/// `const`, which have statements of their own.
pub(super) const OPS: &[OpDef] = &[
    op!("neg", Op::Unary(UnaryOp::Neg)),
    op!("sqrt", Op::Unary(UnaryOp::Sqrt)),
    op!("reciprocal", Op::Unary(UnaryOp::Reciprocal)),
    op!("exp", Op::Unary(UnaryOp::Exp)),
    op!("log", Op::Unary(UnaryOp::Log)),
    op!("erf", Op::Unary(UnaryOp::Erf)),
    op!("tanh", Op::Unary(UnaryOp::Tanh)),
    op!("sigmoid", Op::Unary(UnaryOp::Sigmoid)),
    op!("relu", Op::Unary(UnaryOp::Relu)),
    op!("gelu", Op::Unary(UnaryOp::Gelu)),
    op!("gelu_tanh", Op::Unary(UnaryOp::GeluTanh)),
    op!("abs", Op::Unary(UnaryOp::Abs)),
    op!("sign", Op::Unary(UnaryOp::Sign)),
    op!("floor", Op::Unary(UnaryOp::Floor)),
    op!("ceil", Op::Unary(UnaryOp::Ceil)),
    op!("round", Op::Unary(UnaryOp::Round)),
    op!("softplus", Op::Unary(UnaryOp::Softplus)),
    op!("silu", Op::Unary(UnaryOp::Silu)),
    op!("not", Op::Unary(UnaryOp::Not)),
    op!("add", Op::Binary(BinaryOp::Add)),
    op!("sub", Op::Binary(BinaryOp::Sub)),
    op!("mul", Op::Binary(BinaryOp::Mul)),
    op!("div", Op::Binary(BinaryOp::Div)),
    op!("pow", Op::Binary(BinaryOp::Pow)),
    op!("equal", Op::Binary(BinaryOp::Equal)),
    op!("min", Op::Binary(BinaryOp::Min)),
    op!("max", Op::Binary(BinaryOp::Max)),
    op!("mod", Op::Binary(BinaryOp::Mod)),
    op!("rem", Op::Binary(BinaryOp::Rem)),
    op!("less", Op::Binary(BinaryOp::Less)),
    op!("greater", Op::Binary(BinaryOp::Greater)),
    op!("less_equal", Op::Binary(BinaryOp::LessEqual)),
    op!("greater_equal", Op::Binary(BinaryOp::GreaterEqual)),
    op!("and", Op::Binary(BinaryOp::And)),
    op!("or", Op::Binary(BinaryOp::Or)),
    op!("clip", &["min", "max"], |a| Ok(Op::Clip { min: a.f32("min")?, max: a.f32("max")? })),
    op!("cast", &["to"], |a| Ok(Op::Cast { to: a.dtype("to")? })),
    op!("where", Op::Where),
    op!("trilu", &["upper", "k"], |a| Ok(Op::Trilu { upper: a.bool("upper")?, k: a.i64("k")? })),
    op!("matmul", Op::MatMul),
    op!("qmatmul", Op::QMatMul),
    op!("sparse_matmul", Op::SparseMatMul),
    op!("qmatmul_block", &["bits", "block"], |a| Ok(Op::QMatMulBlock {
        bits: a.usize("bits")?,
        block: a.usize("block")?
    })),
    op!("conv", CONV, |a| Ok(Op::Conv { window: a.window()?, group: a.usize("group")? })),
    op!("attention", &["scale", "causal"], |a| Ok(Op::Attention { scale: a.f32("scale")?, causal: a.bool("causal")? })),
    op!("softmax", AXIS, |a| Ok(Op::Softmax { axis: a.usize("axis")? })),
    op!("layer_norm", &["axis", "epsilon"], |a| Ok(Op::LayerNorm {
        axis: a.usize("axis")?,
        epsilon: a.f32("epsilon")?
    })),
    op!("rms_norm", &["axis", "epsilon"], |a| Ok(Op::RmsNorm { axis: a.usize("axis")?, epsilon: a.f32("epsilon")? })),
    op!("reduce_sum", REDUCE, |a| reduce(a, ReduceKind::Sum)),
    op!("reduce_mean", REDUCE, |a| reduce(a, ReduceKind::Mean)),
    op!("reduce_max", REDUCE, |a| reduce(a, ReduceKind::Max)),
    op!("max_pool", WINDOW, |a| Ok(Op::MaxPool { window: a.window()? })),
    op!("avg_pool", AVG_POOL, |a| Ok(Op::AvgPool {
        window: a.window()?,
        count_include_pad: a.bool("count_include_pad")?
    })),
    op!("reshape", Op::Reshape),
    op!("transpose", &["perm"], |a| Ok(Op::Transpose { perm: a.usize_list("perm")? })),
    op!("slice", &["starts", "steps"], |a| Ok(Op::Slice {
        starts: a.usize_list("starts")?,
        steps: a.i64_list("steps")?
    })),
    op!("broadcast", Op::Broadcast),
    op!("dequantize", &["axis", "block"], |a| Ok(Op::Dequantize { axis: a.usize("axis")?, block: a.usize("block")? })),
    op!("quantize", &["axis", "block", "to"], |a| Ok(Op::Quantize {
        axis: a.usize("axis")?,
        block: a.usize("block")?,
        to: a.dtype("to")?
    })),
    op!("concat", AXIS, |a| Ok(Op::Concat { axis: a.usize("axis")? })),
    op!("gather", AXIS, |a| Ok(Op::Gather { axis: a.usize("axis")? })),
    op!("cumsum", &["axis", "exclusive", "reverse"], |a| Ok(Op::CumSum {
        axis: a.usize("axis")?,
        exclusive: a.bool("exclusive")?,
        reverse: a.bool("reverse")?
    })),
    op!("arg_max", ARG_REDUCE, |a| arg_reduce(a, true)),
    op!("arg_min", ARG_REDUCE, |a| arg_reduce(a, false)),
    op!("top_k", &["axis", "k", "largest"], |a| Ok(Op::TopK {
        axis: a.usize("axis")?,
        k: a.usize("k")?,
        largest: a.bool("largest")?
    })),
    op!("gather_elements", AXIS, |a| Ok(Op::GatherElements { axis: a.usize("axis")? })),
    op!("gather_nd", &["batch_dims"], |a| Ok(Op::GatherNd { batch_dims: a.usize("batch_dims")? })),
    op!("scatter_nd", &["reduction"], |a| Ok(Op::ScatterNd {
        reduction: a.scalar("reduction", "one of none, add, mul, max, min", |t| match t {
            Tok::Ident(s) => ScatterReduction::from_name(s),
            _ => None,
        })?
    })),
    op!("pad", &["mode", "pads_begin", "pads_end"], |a| Ok(Op::Pad {
        mode: a.scalar("mode", "one of constant, reflect, edge, wrap", |t| match t {
            Tok::Ident(s) => PadMode::from_name(s),
            _ => None,
        })?,
        pads_begin: a.usize_list("pads_begin")?,
        pads_end: a.usize_list("pads_end")?
    })),
    op!("fused", &["body"], |a| Ok(Op::Fused { body: a.program("body")? })),
    op!("matmul_epilogue", &["epilogue"], |a| Ok(Op::MatMulEpilogue { epilogue: a.program("epilogue")? })),
    op!("conv_transpose", CONV_TRANSPOSE, |a| Ok(Op::ConvTranspose {
        window: a.window()?,
        group: a.usize("group")?,
        output_padding: a.usize_list("output_padding")?
    })),
];

fn reduce(a: &mut Attrs<'_>, kind: ReduceKind) -> Result<Op> {
    Ok(Op::Reduce { kind, axes: a.usize_list("axes")?, keep_dims: a.bool("keep_dims")? })
}

fn arg_reduce(a: &mut Attrs<'_>, max: bool) -> Result<Op> {
    Ok(Op::ArgReduce {
        max,
        axis: a.usize("axis")?,
        keep_dims: a.bool("keep_dims")?,
        select_last: a.bool("select_last")?,
    })
}

/// The table entry for an op name.
pub(super) fn op_def(name: &str) -> Option<&'static OpDef> {
    OPS.iter().find(|d| d.name == name)
}

// ---- lexer -------------------------------------------------------------

/// A 1-based line and column (in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pos {
    line: usize,
    col: usize,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// `graph`, `input`, op names, dtypes, `true`, `inf`, ...
    Ident(String),
    /// A value label: `%` followed by letters, digits and `_`, or `w<digits>`.
    Value(String),
    /// A number as written (`-3`, `1e-5`, `-inf`).
    Num(String),
    /// A quoted string, unescaped.
    Str(String),
    /// One of `= { } ( ) [ ] , : @`.
    Punct(char),
    Eof,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    pos: Pos,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) | Tok::Value(s) | Tok::Num(s) => format!("`{s}`"),
        Tok::Str(s) => format!("string {}", super::print::quote(s)),
        Tok::Punct(c) => format!("`{c}`"),
        Tok::Eof => "end of file".into(),
    }
}

fn perr(file: &str, pos: Pos, msg: impl Into<String>) -> IrError {
    IrError::Parse { file: file.to_string(), line: pos.line, col: pos.col, msg: msg.into() }
}

struct Lexer<'s> {
    chars: std::iter::Peekable<std::str::Chars<'s>>,
    pos: Pos,
}

impl Lexer<'_> {
    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.pos.line += 1;
            self.pos.col = 1;
        } else {
            self.pos.col += 1;
        }
        Some(c)
    }

    fn take_while(&mut self, out: &mut String, f: impl Fn(char) -> bool) {
        while let Some(c) = self.peek().filter(|&c| f(c)) {
            out.push(c);
            self.bump();
        }
    }
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn lex(src: &str, file: &str) -> Result<Vec<Token>> {
    let mut lx = Lexer { chars: src.chars().peekable(), pos: Pos { line: 1, col: 1 } };
    let mut out = Vec::new();
    loop {
        let pos = lx.pos;
        let Some(c) = lx.peek() else {
            out.push(Token { tok: Tok::Eof, pos });
            return Ok(out);
        };
        let tok = match c {
            c if c.is_whitespace() => {
                lx.bump();
                continue;
            }
            ';' => {
                while lx.peek().is_some_and(|c| c != '\n') {
                    lx.bump();
                }
                continue;
            }
            '"' => {
                lx.bump();
                Tok::Str(lex_string(&mut lx, file, pos)?)
            }
            '%' => {
                lx.bump();
                let mut s = String::from("%");
                lx.take_while(&mut s, is_word);
                if s.len() == 1 {
                    return Err(perr(file, lx.pos, "expected a value name after `%`"));
                }
                Tok::Value(s)
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut s = String::new();
                lx.take_while(&mut s, is_word);
                if s.len() > 1 && s.starts_with('w') && s[1..].bytes().all(|b| b.is_ascii_digit()) {
                    Tok::Value(s)
                } else {
                    Tok::Ident(s)
                }
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                // A number: sign, then letters, digits, `_`, `.`, and a sign
                // right after an exponent `e`; `-inf` lexes as one number.
                let mut s = String::new();
                s.push(c);
                lx.bump();
                while let Some(c) = lx.peek() {
                    let exp_sign = (c == '-' || c == '+') && s.ends_with(['e', 'E']);
                    if !(is_word(c) || c == '.' || exp_sign) {
                        break;
                    }
                    s.push(c);
                    lx.bump();
                }
                Tok::Num(s)
            }
            '=' | '{' | '}' | '(' | ')' | '[' | ']' | ',' | ':' | '@' => {
                lx.bump();
                Tok::Punct(c)
            }
            c => return Err(perr(file, pos, format!("unexpected character `{c}`"))),
        };
        out.push(Token { tok, pos });
    }
}

/// The rest of a string after its opening quote at `start`.
fn lex_string(lx: &mut Lexer<'_>, file: &str, start: Pos) -> Result<String> {
    let mut s = String::new();
    loop {
        let pos = lx.pos;
        match lx.bump() {
            None | Some('\n') => return Err(perr(file, start, "unterminated string")),
            Some('"') => return Ok(s),
            Some('\\') => match lx.bump() {
                Some('"') => s.push('"'),
                Some('\\') => s.push('\\'),
                Some('n') => s.push('\n'),
                Some('r') => s.push('\r'),
                Some('t') => s.push('\t'),
                Some('u') => {
                    let mut hex = String::new();
                    let ok = lx.bump() == Some('{') && {
                        lx.take_while(&mut hex, |c| c.is_ascii_hexdigit());
                        lx.bump() == Some('}')
                    };
                    let c = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                    match c {
                        Some(c) if ok => s.push(c),
                        _ => return Err(perr(file, pos, "bad escape: expected `\\u{HEX}` naming a character")),
                    }
                }
                _ => {
                    return Err(perr(
                        file,
                        pos,
                        "bad escape: expected one of `\\\"`, `\\\\`, `\\n`, `\\r`, `\\t`, `\\u{HEX}`",
                    ));
                }
            },
            Some(c) => s.push(c),
        }
    }
}

// ---- attributes --------------------------------------------------------

enum AttrVal {
    Scalar(Token),
    List(Vec<Token>),
}

struct Attr {
    name: String,
    pos: Pos,
    val: AttrVal,
    val_pos: Pos,
}

/// The attributes written on one op, read by the op table's constructors.
pub(super) struct Attrs<'a> {
    op: &'static str,
    op_pos: Pos,
    file: &'a str,
    items: Vec<Attr>,
}

impl Attrs<'_> {
    fn get(&self, name: &str) -> Result<&Attr> {
        self.items
            .iter()
            .find(|a| a.name == name)
            .ok_or_else(|| perr(self.file, self.op_pos, format!("missing attribute `{name}` for `{}`", self.op)))
    }

    fn bad(&self, a: &Attr, pos: Pos, expected: &str, found: &Tok) -> IrError {
        perr(
            self.file,
            pos,
            format!("attribute `{}` of `{}`: expected {expected}, found {}", a.name, self.op, describe(found)),
        )
    }

    fn scalar<T>(&self, name: &str, expected: &str, conv: impl Fn(&Tok) -> Option<T>) -> Result<T> {
        let a = self.get(name)?;
        match &a.val {
            AttrVal::Scalar(t) => conv(&t.tok).ok_or_else(|| self.bad(a, t.pos, expected, &t.tok)),
            AttrVal::List(_) => Err(self.bad(a, a.val_pos, expected, &Tok::Punct('['))),
        }
    }

    fn list<T>(&self, name: &str, expected: &str, conv: impl Fn(&Tok) -> Option<T>) -> Result<Vec<T>> {
        let a = self.get(name)?;
        match &a.val {
            AttrVal::List(items) => items
                .iter()
                .map(|t| conv(&t.tok).ok_or_else(|| self.bad(a, t.pos, &format!("a list of {expected}"), &t.tok)))
                .collect(),
            AttrVal::Scalar(t) => Err(self.bad(a, t.pos, &format!("a list `[..]` of {expected}"), &t.tok)),
        }
    }

    fn usize(&mut self, name: &str) -> Result<usize> {
        self.scalar(name, "a non-negative integer", num::<usize>)
    }

    fn i64(&mut self, name: &str) -> Result<i64> {
        self.scalar(name, "an integer", num::<i64>)
    }

    fn f32(&mut self, name: &str) -> Result<f32> {
        self.scalar(name, "a number", float)
    }

    fn bool(&mut self, name: &str) -> Result<bool> {
        self.scalar(name, "`true` or `false`", boolean)
    }

    fn dtype(&mut self, name: &str) -> Result<DType> {
        self.scalar(name, "a dtype (f32, f16, bf16, i8, u8, i32, i64, bool)", |t| match t {
            Tok::Ident(s) => DType::from_name(s),
            _ => None,
        })
    }

    fn usize_list(&mut self, name: &str) -> Result<Vec<usize>> {
        self.list(name, "non-negative integers", num::<usize>)
    }

    fn i64_list(&mut self, name: &str) -> Result<Vec<i64>> {
        self.list(name, "integers", num::<i64>)
    }

    /// A fused program: a quoted string of steps (see `ops/program.rs`),
    /// parsed with the `.ngraph` lexer and op table; errors point into the
    /// string.
    fn program(&mut self, name: &str) -> Result<Program> {
        let a = self.get(name)?;
        let expected = "a quoted program like \"sigmoid(x0), mul(x0, t0)\"";
        let (text, at) = match &a.val {
            AttrVal::Scalar(Token { tok: Tok::Str(s), pos }) => (s.clone(), *pos),
            AttrVal::Scalar(t) => return Err(self.bad(a, t.pos, expected, &t.tok)),
            AttrVal::List(_) => return Err(self.bad(a, a.val_pos, expected, &Tok::Punct('['))),
        };
        // A position in the string, as a position in the file (the string
        // has no newlines or escapes when it is a program).
        let shift = |p: Pos| Pos { line: at.line + p.line - 1, col: if p.line == 1 { at.col + p.col } else { p.col } };
        let toks = lex(&text, self.file).map_err(|e| match e {
            IrError::Parse { file, line, col, msg } => {
                let p = shift(Pos { line, col });
                IrError::Parse { file, line: p.line, col: p.col, msg }
            }
            other => other,
        })?;
        let toks = toks.into_iter().map(|t| Token { pos: shift(t.pos), tok: t.tok }).collect();
        let mut p = Parser::new(toks, self.file, None);
        p.program_steps().map_err(|e| match e {
            IrError::Parse { file, line, col, msg } => {
                IrError::Parse { file, line, col, msg: format!("attribute `{name}` of `{}`: {msg}", self.op) }
            }
            other => other,
        })
    }

    fn window(&mut self) -> Result<Window> {
        Ok(Window {
            kernel: self.usize_list("kernel")?,
            strides: self.usize_list("strides")?,
            pads_begin: self.usize_list("pads_begin")?,
            pads_end: self.usize_list("pads_end")?,
            dilations: self.usize_list("dilations")?,
        })
    }
}

fn num<T: std::str::FromStr>(t: &Tok) -> Option<T> {
    match t {
        Tok::Num(s) => s.parse().ok(),
        _ => None,
    }
}

/// A float: a number, or `inf` / `NaN` (any spelling Rust's `f32` parser
/// accepts).
fn float(t: &Tok) -> Option<f32> {
    match t {
        Tok::Num(s) | Tok::Ident(s) => s.parse().ok(),
        _ => None,
    }
}

fn boolean(t: &Tok) -> Option<bool> {
    match t {
        Tok::Ident(s) if s == "true" => Some(true),
        Tok::Ident(s) if s == "false" => Some(false),
        _ => None,
    }
}

// ---- parser ------------------------------------------------------------

struct Parser<'a> {
    toks: Vec<Token>,
    at: usize,
    file: &'a str,
    weights: Option<&'a Weights>,
    g: Graph,
    /// Defined value labels: node and where it was defined.
    values: HashMap<String, (NodeId, Pos)>,
    /// Every label defined somewhere in the file (to tell "used before its
    /// definition" from "unknown").
    all_defs: HashSet<String>,
    /// Node names in use and where.
    node_names: HashMap<String, Pos>,
    /// Output names in use and where.
    output_names: HashMap<String, Pos>,
}

impl<'a> Parser<'a> {
    fn new(toks: Vec<Token>, file: &'a str, weights: Option<&'a Weights>) -> Self {
        let all_defs = toks
            .windows(2)
            .filter_map(|w| match (&w[0].tok, &w[1].tok) {
                (Tok::Value(v), Tok::Punct('=')) => Some(v.clone()),
                _ => None,
            })
            .collect();
        Parser {
            toks,
            at: 0,
            file,
            weights,
            g: Graph::default(),
            values: HashMap::new(),
            all_defs,
            node_names: HashMap::new(),
            output_names: HashMap::new(),
        }
    }

    fn peek(&self) -> &Token {
        // The token list always ends with `Eof`, which is never consumed.
        &self.toks[self.at.min(self.toks.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.at += 1;
        }
        t
    }

    fn err(&self, pos: Pos, msg: impl Into<String>) -> IrError {
        perr(self.file, pos, msg)
    }

    fn expected(&self, what: &str) -> IrError {
        let t = self.peek();
        self.err(t.pos, format!("expected {what}, found {}", describe(&t.tok)))
    }

    fn eat_punct(&mut self, c: char) -> bool {
        if self.peek().tok == Tok::Punct(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn punct(&mut self, c: char) -> Result<Pos> {
        let pos = self.peek().pos;
        if self.eat_punct(c) { Ok(pos) } else { Err(self.expected(&format!("`{c}`"))) }
    }

    fn keyword(&mut self, kw: &str) -> Result<Pos> {
        match &self.peek().tok {
            Tok::Ident(s) if s == kw => Ok(self.next().pos),
            _ => Err(self.expected(&format!("`{kw}`"))),
        }
    }

    fn string(&mut self, what: &str) -> Result<(String, Pos)> {
        match &self.peek().tok {
            Tok::Str(_) => {
                let t = self.next();
                match t.tok {
                    Tok::Str(s) => Ok((s, t.pos)),
                    _ => unreachable!("peeked a string"),
                }
            }
            _ => Err(self.expected(what)),
        }
    }

    fn graph(&mut self) -> Result<Graph> {
        self.keyword("graph")?;
        let (name, _) = self.string("the graph name (a string)")?;
        self.g.name = name;
        self.punct('{')?;
        loop {
            match &self.peek().tok {
                Tok::Punct('}') => break,
                Tok::Ident(s) if s == "output" => self.output()?,
                Tok::Value(_) => self.definition()?,
                _ => return Err(self.expected("a definition `%N = ...`, `output` or `}`")),
            }
        }
        self.punct('}')?;
        if self.peek().tok != Tok::Eof {
            return Err(self.expected("end of file after the graph"));
        }
        Ok(std::mem::take(&mut self.g))
    }

    fn output(&mut self) -> Result<()> {
        self.keyword("output")?;
        let (name, pos) = self.string("the output name (a string)")?;
        if let Some(first) = self.output_names.get(&name) {
            return Err(self.err(
                pos,
                format!("duplicate output name {} (first at {}:{})", super::print::quote(&name), first.line, first.col),
            ));
        }
        self.output_names.insert(name.clone(), pos);
        self.punct('=')?;
        let id = self.value_ref()?;
        self.g.add_output(name, id);
        Ok(())
    }

    /// A use of a value label.
    fn value_ref(&mut self) -> Result<NodeId> {
        let t = self.peek().clone();
        let Tok::Value(v) = &t.tok else {
            return Err(self.expected("a value (`%N` or `wN`)"));
        };
        self.at += 1;
        match self.values.get(v) {
            Some(&(id, _)) => Ok(id),
            None if self.all_defs.contains(v) => {
                Err(self.err(t.pos, format!("value `{v}` is used before its definition")))
            }
            None => Err(self.err(t.pos, format!("unknown value `{v}`"))),
        }
    }

    /// A node name; unique in the graph.
    fn node_name(&mut self) -> Result<(String, Pos)> {
        let (name, pos) = self.string("the node name (a string)")?;
        if let Some(first) = self.node_names.get(&name) {
            return Err(self.err(
                pos,
                format!("duplicate node name {} (first at {}:{})", super::print::quote(&name), first.line, first.col),
            ));
        }
        self.node_names.insert(name.clone(), pos);
        Ok((name, pos))
    }

    fn definition(&mut self) -> Result<()> {
        let t = self.next();
        let Tok::Value(label) = t.tok else { unreachable!("caller peeked a value") };
        if let Some((_, first)) = self.values.get(&label) {
            return Err(
                self.err(t.pos, format!("value `{label}` is already defined (at {}:{})", first.line, first.col))
            );
        }
        self.punct('=')?;
        let op_tok = self.peek().clone();
        let Tok::Ident(op_name) = &op_tok.tok else {
            return Err(self.expected("an op name"));
        };
        self.at += 1;
        let id = match op_name.as_str() {
            "input" => {
                let (name, _) = self.node_name()?;
                self.punct(':')?;
                let (ty, _) = self.ty()?;
                self.g.add_input(name, ty)
            }
            "const" => {
                let (name, name_pos) = self.node_name()?;
                self.punct(':')?;
                let (ty, _) = self.ty()?;
                let t = self.const_value(&name, name_pos, ty)?;
                self.g.add_const(name, t)
            }
            other => {
                let def = op_def(other).ok_or_else(|| self.err(op_tok.pos, format!("unknown op `{other}`")))?;
                self.op_node(def, op_tok.pos)?
            }
        };
        self.values.insert(label, (id, t.pos));
        Ok(())
    }

    /// `{attrs}` after an op name (optional), and the op they make.
    fn op_attrs(&mut self, def: &'static OpDef, op_pos: Pos) -> Result<Op> {
        let mut attrs = Attrs { op: def.name, op_pos, file: self.file, items: Vec::new() };
        if self.eat_punct('{') {
            while !self.eat_punct('}') {
                if !attrs.items.is_empty() {
                    self.punct(',')?;
                }
                let a = self.attr(def)?;
                if attrs.items.iter().any(|b| b.name == a.name) {
                    return Err(self.err(a.pos, format!("duplicate attribute `{}` for `{}`", a.name, def.name)));
                }
                attrs.items.push(a);
            }
        }
        (def.ctor)(&mut attrs)
    }

    /// The steps of a fused program, `op{attrs}(x0, t1), ...`, up to the
    /// end of the tokens (the type check comes with the node's).
    fn program_steps(&mut self) -> Result<Program> {
        let mut steps = Vec::new();
        loop {
            let op_tok = self.peek().clone();
            let Tok::Ident(op_name) = &op_tok.tok else {
                return Err(self.expected("an op name"));
            };
            let def = op_def(op_name).ok_or_else(|| self.err(op_tok.pos, format!("unknown op `{op_name}`")))?;
            self.at += 1;
            let op = self.op_attrs(def, op_tok.pos)?;
            self.punct('(')?;
            let mut args = Vec::new();
            while !self.eat_punct(')') {
                if !args.is_empty() {
                    self.punct(',')?;
                }
                args.push(self.program_arg()?);
            }
            steps.push(Step { op, args });
            if self.peek().tok == Tok::Eof {
                return Ok(Program { steps });
            }
            self.punct(',')?;
        }
    }

    /// `x<N>` (an operand) or `t<N>` (a step), N without leading zeros.
    fn program_arg(&mut self) -> Result<Arg> {
        let arg = match &self.peek().tok {
            Tok::Ident(s) => {
                let (kind, digits) = s.split_at(1);
                match (kind, digits.parse::<usize>()) {
                    ("x", Ok(i)) if digits == i.to_string() => Some(Arg::Operand(i)),
                    ("t", Ok(i)) if digits == i.to_string() => Some(Arg::Step(i)),
                    _ => None,
                }
            }
            _ => None,
        };
        match arg {
            Some(a) => {
                self.at += 1;
                Ok(a)
            }
            None => Err(self.expected("an operand `x<N>` or a step `t<N>`")),
        }
    }

    /// `name{attrs}(args) "node" : type`, after the name.
    fn op_node(&mut self, def: &'static OpDef, op_pos: Pos) -> Result<NodeId> {
        let op = self.op_attrs(def, op_pos)?;
        self.punct('(')?;
        let mut args = Vec::new();
        while !self.eat_punct(')') {
            if !args.is_empty() {
                self.punct(',')?;
            }
            args.push(self.value_ref()?);
        }
        let (name, _) = self.node_name()?;
        self.punct(':')?;
        let (ty, ty_pos) = self.ty()?;
        // The verifier's per-node check, here so that it can name the line.
        let arg_tys: Vec<&TensorType> = args.iter().map(|&a| &self.g.node(a).ty).collect();
        let q = super::print::quote(&name);
        match op.infer(&arg_tys, &ty) {
            Ok(t) if t == ty => {}
            Ok(t) => {
                return Err(
                    self.err(ty_pos, format!("node {q} ({}): declared type {ty} but operands give {t}", def.name))
                );
            }
            Err(msg) => return Err(self.err(op_pos, format!("node {q} ({}): {msg}", def.name))),
        }
        Ok(self.g.add_node(name, op, &args, ty))
    }

    /// `name = value` or `name = [v, ...]` in an op's braces.
    fn attr(&mut self, def: &OpDef) -> Result<Attr> {
        let t = self.peek().clone();
        let Tok::Ident(name) = t.tok else {
            return Err(self.expected(&format!("an attribute name of `{}`", def.name)));
        };
        if !def.attrs.contains(&name.as_str()) {
            return Err(self.err(t.pos, format!("unknown attribute `{name}` for `{}`", def.name)));
        }
        self.at += 1;
        self.punct('=')?;
        let val_pos = self.peek().pos;
        let val = if self.eat_punct('[') {
            let mut items = Vec::new();
            while !self.eat_punct(']') {
                if !items.is_empty() {
                    self.punct(',')?;
                }
                items.push(self.scalar_token(&format!("a value of attribute `{name}`"))?);
            }
            AttrVal::List(items)
        } else {
            AttrVal::Scalar(self.scalar_token(&format!("a value of attribute `{name}`"))?)
        };
        Ok(Attr { name, pos: t.pos, val, val_pos })
    }

    /// A number, identifier or string token.
    fn scalar_token(&mut self, what: &str) -> Result<Token> {
        match self.peek().tok {
            Tok::Num(_) | Tok::Ident(_) | Tok::Str(_) => Ok(self.next()),
            _ => Err(self.expected(what)),
        }
    }

    /// `dtype[d0,d1,...]`.
    fn ty(&mut self) -> Result<(TensorType, Pos)> {
        let t = self.peek().clone();
        let dtype = match &t.tok {
            Tok::Ident(s) => DType::from_name(s).ok_or_else(|| self.err(t.pos, format!("unknown dtype `{s}`")))?,
            _ => return Err(self.expected("a type like `f32[2,3]`")),
        };
        self.at += 1;
        self.punct('[')?;
        let mut dims = Vec::new();
        while !self.eat_punct(']') {
            if !dims.is_empty() {
                self.punct(',')?;
            }
            let d = self.peek().clone();
            match num::<usize>(&d.tok) {
                Some(v) => {
                    self.at += 1;
                    dims.push(v);
                }
                None => return Err(self.expected("a dimension (a non-negative integer) or `]`")),
            }
        }
        let ty = TensorType::new(dtype, dims);
        if ty.shape.checked_numel().and_then(|n| n.checked_mul(dtype.size_bytes())).is_none() {
            return Err(self.err(t.pos, format!("type {ty} is too large")));
        }
        Ok((ty, t.pos))
    }

    /// ` = [values]` or ` @external` after a constant's type.
    fn const_value(&mut self, name: &str, name_pos: Pos, ty: TensorType) -> Result<Tensor> {
        let q = super::print::quote(name);
        if self.eat_punct('@') {
            let ext = self.keyword("external")?;
            let Some(w) = self.weights else {
                return Err(self.err(ext, format!("constant {q} is @external but no weights file was given")));
            };
            let t = w.get(name).ok_or_else(|| self.err(name_pos, format!("weight {q} is not in the weights file")))?;
            if *t.ty() != ty {
                return Err(self.err(
                    name_pos,
                    format!("weight {q} has type {} in the weights file but the constant says {ty}", t.ty()),
                ));
            }
            return Ok(t.clone());
        }
        if !self.eat_punct('=') {
            return Err(self.expected("`= [values]` or `@external`"));
        }
        let open = self.punct('[')?;
        let mut bytes = Vec::with_capacity(ty.byte_len().min(1 << 20));
        let mut count = 0usize;
        while !self.eat_punct(']') {
            if count > 0 {
                self.punct(',')?;
            }
            let t = self.peek().clone();
            if !self.encode(&t.tok, ty.dtype, &mut bytes) {
                return Err(self.expected(&format!("a value of dtype {} or `]`", ty.dtype)));
            }
            self.at += 1;
            count += 1;
        }
        let want = ty.shape.numel();
        if count != want {
            return Err(self.err(open, format!("constant {q} has {count} value(s) but type {ty} needs {want}")));
        }
        Tensor::from_bytes(ty, Bytes::from_vec(bytes)).map_err(|e| self.err(open, e.to_string()))
    }

    /// Appends the encoding of one inline value; false if it is not a value
    /// of `dtype` (ints out of range included).
    fn encode(&self, t: &Tok, dtype: DType, out: &mut Vec<u8>) -> bool {
        fn put<T: Element>(v: Option<T>, out: &mut Vec<u8>) -> bool {
            v.map(|v| v.write_le(out)).is_some()
        }
        match dtype {
            DType::F32 => put(float(t), out),
            DType::F16 => put(float(t).map(f16::from_f32), out),
            DType::BF16 => put(float(t).map(bf16::from_f32), out),
            DType::I8 => put(num::<i8>(t), out),
            DType::U8 => put(num::<u8>(t), out),
            DType::I32 => put(num::<i32>(t), out),
            DType::I64 => put(num::<i64>(t), out),
            DType::Bool => put(boolean(t), out),
        }
    }
}
