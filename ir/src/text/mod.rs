//! The `.ngraph` text format: a readable, exact dump of a [`Graph`](crate::Graph).
//!
//! Like Cranelift's CLIF, a dump, a test and a bug report are the same file:
//! [`print`] writes a graph, [`parse`] reads it back, and
//! `print(&parse(&print(g), ..)?) == print(g)` holds exactly. Constants with
//! more than [`INLINE_MAX`] elements are not written in the text but
//! referred to by name (`@external`); [`external_weights`] gives them, to
//! save beside the text as a `.safetensors` file
//! ([`Weights::save_safetensors`](crate::weights::Weights::save_safetensors))
//! and to hand back to [`parse`].
//!
//! # Example
//!
//! ```text
//! ; filetests put their expectations in comments like this one
//! graph "gpt2" {
//!   %0 = input "input_ids" : i64[1,16]
//!   w0 = const "wte" : f32[256,64] @external
//!   w1 = const "ln_f.weight" : f32[64] @external
//!   w2 = const "ln_f.bias" : f32[64] @external
//!   w3 = const "shape" : i64[3] = [1, 16, 64]
//!   %1 = gather{axis=0}(w0, %0) "Gather_0" : f32[1,16,64]
//!   %2 = layer_norm{axis=2, epsilon=1e-5}(%1, w1, w2) "ln_f" : f32[1,16,64]
//!   output "logits" = %2
//! }
//! ```
//!
//! # Grammar
//!
//! ```text
//! file    := "graph" STRING "{" stmt* "}"
//! stmt    := VALUE "=" "input" STRING ":" type
//!          | VALUE "=" "const" STRING ":" type ( "=" "[" list(scalar) "]" | "@" "external" )
//!          | VALUE "=" OP ( "{" list(IDENT "=" attr) "}" )? "(" list(VALUE) ")" STRING ":" type
//!          | "output" STRING "=" VALUE
//! attr    := scalar | "[" list(scalar) "]"
//! scalar  := NUMBER | IDENT                 ; true, false, inf, NaN, dtype names
//! type    := DTYPE "[" list(INT) "]"         ; f32[] is a scalar
//! list(x) := ( x ( "," x )* )?               ; no trailing comma
//! VALUE   := "%" [A-Za-z0-9_]+ | "w" [0-9]+
//! STRING  := '"' ... '"'                     ; escapes \" \\ \n \r \t \u{HEX}
//! NUMBER  := [-+.0-9] [A-Za-z0-9_.]*, with a sign allowed right after `e`/`E`
//! ```
//!
//! `;` starts a comment that runs to the end of the line. Whitespace and
//! line breaks are free between tokens.
//!
//! # Meaning and printing rules
//!
//! - **Order.** The printer writes every graph input first, in graph-input
//!   order, then every other node in [`Graph::topo_order`](crate::Graph::topo_order) (which breaks ties
//!   by insertion order, so it is deterministic), then the outputs in order.
//!   The parser adds nodes in file order, so a printed-and-parsed graph
//!   prints in the same order again. Dead nodes are printed too.
//! - **Labels.** The printer labels constants `w0, w1, ...` and all other
//!   nodes `%0, %1, ...`, each in print order. Labels are only local names:
//!   the parser accepts either form for any node, but each label is defined
//!   once and used only after its definition. Node names (the quoted string
//!   after the operands) are what the graph keeps, and must be unique.
//! - **Ops** are written `name{attrs}(args) "node_name" : type`, with
//!   `name` from [`Op::name`](crate::Op::name) (unary, binary and reduce
//!   kinds each have their own name: `exp`, `add`, `reduce_mean`). The
//!   braces are omitted for ops without attributes (`{}` is accepted).
//!   The type is the node's declared result type.
//! - **Attributes** print in this fixed order; the parser accepts any order
//!   but requires each attribute exactly once (none are optional):
//!   `clip{min, max}`, `cast{to}`, `trilu{upper, k}`,
//!   `conv{kernel, strides, pads_begin, pads_end, dilations, group}`,
//!   `attention{scale, causal}`, `softmax{axis}`, `layer_norm{axis, epsilon}`,
//!   `reduce_sum|reduce_mean|reduce_max{axes, keep_dims}`,
//!   `max_pool{kernel, strides, pads_begin, pads_end, dilations}`,
//!   `avg_pool{kernel, strides, pads_begin, pads_end, dilations, count_include_pad}`,
//!   `transpose{perm}`, `slice{starts, steps}`, `concat{axis}`,
//!   `gather{axis}`. Lists are written `[1, 2]`, booleans `true`/`false`,
//!   dtypes by name (`cast{to=f16}`).
//! - **Floats** (attributes and inline constants) print with Rust's `{:?}`,
//!   the shortest text that parses back to the same `f32`, so
//!   parse∘print is exact; `inf`, `-inf` and `NaN` are printed and parsed.
//!   Inline f16/bf16 values print as their (exact) `f32` value and parse
//!   by rounding that to the dtype; bools print `true`/`false`; integers as
//!   integers (range-checked against the dtype when parsed).
//! - **Constants** with at most [`INLINE_MAX`] elements print inline as a
//!   flat row-major list: `w1 = const "eps" : f32[] = [1e-5]`. Larger ones
//!   print `@external`: the weight with the constant's node name in the
//!   weights given to [`parse`] (its dtype and shape must equal the printed
//!   type). The parser accepts either form for any size.
//! - **Checking.** The parser checks each op node as it reads it (the
//!   verifier's type inference, so the error names its line), then runs
//!   [`verify`](crate::verify::verify) on the whole graph, so a parsed graph
//!   is always valid. Syntax and resolution errors are
//!   [`IrError::Parse`](crate::IrError::Parse) with a 1-based line and
//!   column: unknown op, unknown value, use before definition, duplicate
//!   definition, duplicate node or output name, bad type, unknown,
//!   duplicate, missing or ill-typed attribute, wrong number of constant
//!   values, missing weights file, missing or mistyped weight.

mod parse;
mod print;
#[cfg(test)]
mod tests;

pub use parse::parse;
pub(crate) use print::attributes as op_attributes;
pub use print::{external_weights, print};

/// The name of every op written `name{attrs}(args)` (all ops but `input`
/// and `const`), as [`Op::name`](crate::Op::name) gives them.
pub fn op_names() -> impl Iterator<Item = &'static str> {
    parse::OPS.iter().map(|d| d.name)
}

/// Constants with at most this many elements are printed inline; larger ones
/// are printed `@external`.
pub const INLINE_MAX: usize = 16;
