//! The fuzz targets: one harness per loader, with its structure-aware
//! mutator, integrity fixup and dictionary.
//!
//! | target | harness | oracle on success |
//! | --- | --- | --- |
//! | `onnx` | `nanoc::onnx::import_onnx_bytes` + `promote_half` | the graph verifies; `.ngraph` print/parse round-trips |
//! | `ngraph` | `nanoc_ir::text::parse` | print/parse round-trips |
//! | `safetensors` | `Weights::load_safetensors` | save + load gives the same weights |
//! | `toml` | `nanoc_targets::Target::parse` | - |
//! | `bundle` | `nanoc_runtime::decode_bundle` + `Model::from_bytes` | they agree; encode/decode round-trips |

use super::{FixupFn, MutateFn, Rng, Target};
use nanoc::onnx::ImportOptions;
use nanoc_ir::text;
use nanoc_ir::weights::Weights;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Every target.
pub fn all() -> &'static [Target] {
    &TARGETS
}

/// The target called `name`.
pub fn by_name(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

static TARGETS: [Target; 5] = [
    Target {
        name: "onnx",
        run: run_onnx,
        mutate: Some(super::onnx_mut::mutate as MutateFn),
        fixup: None,
        dict: ONNX_DICT,
        max_len: 1 << 20,
    },
    Target {
        name: "ngraph",
        run: run_ngraph,
        mutate: Some(mutate_ngraph as MutateFn),
        fixup: None,
        dict: NGRAPH_DICT,
        max_len: 1 << 18,
    },
    Target {
        name: "safetensors",
        run: run_safetensors,
        mutate: Some(mutate_safetensors as MutateFn),
        fixup: None,
        dict: ST_DICT,
        max_len: 1 << 18,
    },
    Target {
        name: "toml",
        run: run_toml,
        mutate: Some(mutate_toml as MutateFn),
        fixup: None,
        dict: TOML_DICT,
        max_len: 1 << 16,
    },
    Target {
        name: "bundle",
        run: run_bundle,
        mutate: Some(mutate_bundle as MutateFn),
        fixup: Some(fix_bundle as FixupFn),
        dict: BUNDLE_DICT,
        max_len: 1 << 18,
    },
];

/// A scratch folder for files the harnesses need on disk (tmpfs when there
/// is one): `data.bin` for ONNX external data, and the safetensors
/// target's inputs, which are removed after each run.
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let d = base.join("nanoc-fuzz");
        let _ = std::fs::create_dir_all(&d);
        // External data the ONNX target can point at (`location: data.bin`),
        // written under a unique name and renamed: processes share it.
        let data: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
        if std::fs::read(d.join("data.bin")).ok().as_ref() != Some(&data) {
            let tmp = d.join(format!("data.bin.{}", std::process::id()));
            let _ = std::fs::write(&tmp, &data).and_then(|_| std::fs::rename(&tmp, d.join("data.bin")));
        }
        d
    })
}

/// Removes its files when dropped.
struct TempFiles(Vec<PathBuf>);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Behaviour description of a graph: its sorted distinct op names.
fn graph_behaviour(g: &nanoc_ir::Graph) -> String {
    let ops: BTreeSet<&str> = g.node_ids().into_iter().map(|id| g.node(id).op.name()).collect();
    ops.into_iter().collect::<Vec<_>>().join(",")
}

/// The documented text-format property: printing a parsed graph and
/// parsing it back prints the same text.
fn check_text_round_trip(g: &nanoc_ir::Graph, what: &str) {
    let t1 = text::print(g);
    let w = text::external_weights(g);
    let g2 = text::parse(&t1, "roundtrip.ngraph", Some(&w))
        .unwrap_or_else(|e| panic!("{what}: the printed graph does not parse back: {e}\n{t1}"));
    let t2 = text::print(&g2);
    assert!(t1 == t2, "{what}: print(parse(print(g))) != print(g)\n--- first\n{t1}\n--- second\n{t2}");
}

// ---- onnx ----------------------------------------------------------------

const ONNX_DICT: &[&[u8]] = &[
    b"\x08\x07",         // ir_version 7
    b"\x42\x02\x10\x0d", // opset_import { version: 13 }
    b"\x3a\x00",         // empty graph
    b"\x12\x00",
    b"data.bin",
    b"location",
    b"offset",
    b"length",
    b"com.microsoft",
    b"batch",
    b"seq",
    b"\xff\xff\xff\xff\x0f",
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
    b"\x80\x80\x80\x80\x08",
];

fn onnx_opts() -> &'static ImportOptions {
    static O: OnceLock<ImportOptions> = OnceLock::new();
    O.get_or_init(|| {
        let mut o = ImportOptions::default();
        o.dims.insert("batch".into(), 1);
        o.dims.insert("seq".into(), 4);
        o.dims.insert("N".into(), 2);
        o
    })
}

fn run_onnx(data: &[u8]) -> Result<String, String> {
    let g = nanoc::onnx::import_onnx_bytes(data, "fuzz.onnx", Some(scratch()), onnx_opts()).map_err(|e| {
        use nanoc::onnx::OnnxError;
        match &e {
            // The decoder's message lists the field path: keep what failed.
            OnnxError::Decode { msg, .. } => {
                let rest: Vec<&str> = msg.split(": ").filter(|p| !p.contains("Proto.")).collect();
                format!("decode: {}", rest.join(": "))
            }
            // Which op types are unsupported is not a new behaviour.
            OnnxError::Unsupported { .. } => "unsupported op types".into(),
            _ => e.to_string(),
        }
    })?;
    nanoc_ir::verify::verify(&g).unwrap_or_else(|e| panic!("an imported graph must verify: {e}"));
    check_text_round_trip(&g, "imported graph");
    let g = nanoc::passes::precision::promote_half(g).map_err(|e| format!("promote_half: {e}"))?;
    Ok(graph_behaviour(&g))
}

// ---- ngraph --------------------------------------------------------------

const NGRAPH_DICT: &[&[u8]] = &[
    b"graph \"g\" {\n",
    b"}\n",
    b" = input \"x\" : f32[2,3]\n",
    b" = const \"c\" : f32[] = [1.0]\n",
    b"@external",
    b"output \"y\" = %0\n",
    b"\\u{",
    b"; comment\n",
    b"{axis=0}",
    b"[]",
    b"f32[",
    b"i64[",
    b"%0",
    b"w0",
];

/// The weights the `ngraph` seeds refer to (`@external`), committed beside
/// the corpus as `tests/fuzz/ngraph-weights.safetensors`.
pub fn ngraph_weights_path() -> PathBuf {
    super::fuzz_dir().join("ngraph-weights.safetensors")
}

fn ngraph_weights() -> Option<&'static Weights> {
    static W: OnceLock<Option<Weights>> = OnceLock::new();
    W.get_or_init(|| Weights::load_safetensors(&ngraph_weights_path()).ok()).as_ref()
}

fn run_ngraph(data: &[u8]) -> Result<String, String> {
    let src = String::from_utf8_lossy(data);
    let g = text::parse(&src, "fuzz.ngraph", ngraph_weights()).map_err(|e| e.to_string())?;
    check_text_round_trip(&g, "parsed graph");
    Ok(graph_behaviour(&g))
}

/// Op names, dtypes, keywords and attribute names of the text format.
const NGRAPH_WORDS: &[&str] = &[
    "graph",
    "input",
    "const",
    "output",
    "external",
    "true",
    "false",
    "inf",
    "NaN",
    "f32",
    "f16",
    "bf16",
    "i8",
    "u8",
    "i32",
    "i64",
    "bool",
    "f64",
    "neg",
    "sqrt",
    "reciprocal",
    "exp",
    "log",
    "erf",
    "tanh",
    "sigmoid",
    "relu",
    "gelu",
    "gelu_tanh",
    "abs",
    "sign",
    "floor",
    "ceil",
    "round",
    "softplus",
    "not",
    "add",
    "sub",
    "mul",
    "div",
    "pow",
    "equal",
    "min",
    "max",
    "mod",
    "rem",
    "less",
    "greater",
    "less_equal",
    "greater_equal",
    "and",
    "or",
    "clip",
    "cast",
    "where",
    "trilu",
    "matmul",
    "conv",
    "softmax",
    "layer_norm",
    "reduce_sum",
    "reduce_mean",
    "reduce_max",
    "max_pool",
    "avg_pool",
    "reshape",
    "transpose",
    "slice",
    "broadcast",
    "dequantize",
    "quantize",
    "concat",
    "gather",
    "cumsum",
    "arg_max",
    "arg_min",
    "top_k",
    "gather_elements",
    "gather_nd",
    "scatter_nd",
    "pad",
    "conv_transpose",
    "axis",
    "axes",
    "keep_dims",
    "epsilon",
    "kernel",
    "strides",
    "pads_begin",
    "pads_end",
    "dilations",
    "group",
    "count_include_pad",
    "perm",
    "starts",
    "steps",
    "block",
    "to",
    "upper",
    "k",
    "exclusive",
    "reverse",
    "select_last",
    "largest",
    "batch_dims",
    "reduction",
    "mode",
    "output_padding",
    "none",
    "constant",
    "reflect",
    "edge",
    "wrap",
];

const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "3",
    "4",
    "16",
    "17",
    "255",
    "256",
    "65536",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "1000000000000",
    "1e39",
    "-1e39",
    "1e-50",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "0.5",
    "-0",
    "-0.0",
    "00",
    "1_000",
    "0x10",
    "1e",
    "-",
    "+1",
    "1.5e+3",
    "99999999999999999999999999",
    ".",
    "1.",
];

const STRINGS: &[&str] = &[
    "\"\"",
    "\"\\u{110000}\"",
    "\"\\u{D800}\"",
    "\"\\u{}\"",
    "\"\\u{41\"",
    "\"\\q\"",
    "\"a\\\"b\"",
    "\"\u{1F600}\"",
    "\"x\\ny\"",
    "\"",
    "\"\\\"",
];

/// A token of a text input, with its class.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    Space,
    Comment,
    Str,
    Num,
    Word,
    Value,
    Punct,
}

/// Splits text into tokens that concatenate back to it.
fn tokenize(s: &str) -> Vec<(Class, String)> {
    let cs: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        let start = i;
        let class = if c.is_whitespace() {
            while i < cs.len() && cs[i].is_whitespace() {
                i += 1;
            }
            Class::Space
        } else if c == ';' || c == '#' {
            while i < cs.len() && cs[i] != '\n' {
                i += 1;
            }
            Class::Comment
        } else if c == '"' || c == '\'' {
            i += 1;
            while i < cs.len() && cs[i] != c && cs[i] != '\n' {
                if cs[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i = (i + 1).min(cs.len());
            Class::Str
        } else if c.is_ascii_digit()
            || ((c == '-' || c == '+' || c == '.') && cs.get(i + 1).is_some_and(|d| d.is_ascii_alphanumeric()))
        {
            i += 1;
            while i < cs.len()
                && (cs[i].is_ascii_alphanumeric()
                    || cs[i] == '_'
                    || cs[i] == '.'
                    || ((cs[i] == '-' || cs[i] == '+') && matches!(cs[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            Class::Num
        } else if c.is_alphanumeric() || c == '_' || c == '%' {
            i += 1;
            while i < cs.len() && (cs[i].is_alphanumeric() || cs[i] == '_' || cs[i] == '-') {
                i += 1;
            }
            let w: String = cs[start..i].iter().collect();
            if w.starts_with('%') || (w.len() > 1 && w.starts_with('w') && w[1..].bytes().all(|b| b.is_ascii_digit())) {
                out.push((Class::Value, w));
                continue;
            }
            Class::Word
        } else {
            i += 1;
            Class::Punct
        };
        out.push((class, cs[start..i].iter().collect()));
    }
    out
}

/// Token- and line-level edits of a text input: numbers become boundary
/// numbers, words become other keywords/op names, values and strings are
/// swapped for others in the file (duplicates, uses before definitions,
/// self-references), tokens and lines are deleted, duplicated, swapped or
/// moved, lines are spliced in from another corpus entry, and lists are
/// blown up.
fn mutate_text(rng: &mut Rng, src: &str, corpus: &[Vec<u8>], words: &[&str], extra_values: &[&str]) -> String {
    let mut toks = tokenize(src);
    let rounds = 1 + rng.below(3);
    for _ in 0..rounds {
        let of = |toks: &[(Class, String)], c: Class| -> Vec<usize> {
            toks.iter().enumerate().filter(|(_, t)| t.0 == c).map(|(i, _)| i).collect()
        };
        match rng.below(13) {
            0 | 1 => {
                if let Some(&i) = rng.pick(&of(&toks, Class::Num)) {
                    toks[i].1 = if rng.one_in(3) {
                        rng.interesting_i64().to_string()
                    } else {
                        rng.pick(NUMBERS).copied().unwrap_or("0").to_string()
                    };
                }
            }
            2 | 3 => {
                if let Some(&i) = rng.pick(&of(&toks, Class::Word)) {
                    toks[i].1 = rng.pick(words).copied().unwrap_or("x").to_string();
                }
            }
            4 => {
                let vals = of(&toks, Class::Value);
                if let (Some(&i), Some(&j)) = (rng.pick(&vals), rng.pick(&vals)) {
                    toks[i].1 = if rng.one_in(4) {
                        rng.pick(extra_values).copied().unwrap_or("%x").to_string()
                    } else {
                        toks[j].1.clone()
                    };
                }
            }
            5 => {
                let strs = of(&toks, Class::Str);
                if let (Some(&i), Some(&j)) = (rng.pick(&strs), rng.pick(&strs)) {
                    toks[i].1 = if rng.one_in(3) {
                        rng.pick(STRINGS).copied().unwrap_or("\"\"").to_string()
                    } else {
                        toks[j].1.clone()
                    };
                }
            }
            6 if !toks.is_empty() => {
                let i = rng.below(toks.len());
                match rng.below(3) {
                    0 => {
                        toks.remove(i);
                    }
                    1 => {
                        let t = toks[i].clone();
                        toks.insert(i, t);
                    }
                    _ => {
                        let j = rng.below(toks.len());
                        toks.swap(i, j);
                    }
                }
            }
            7..=9 => {
                let text: String = toks.iter().map(|t| t.1.as_str()).collect();
                let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
                if lines.is_empty() {
                    continue;
                }
                let i = rng.below(lines.len());
                match rng.below(5) {
                    0 => {
                        lines.remove(i);
                    }
                    1 => {
                        let l = lines[i].clone();
                        let at = rng.below(lines.len() + 1);
                        lines.insert(at, l);
                    }
                    2 => {
                        let j = rng.below(lines.len());
                        lines.swap(i, j);
                    }
                    3 => {
                        // Move a line up: uses before definitions, outputs first.
                        let l = lines.remove(i);
                        let at = rng.below(i + 1);
                        lines.insert(at, l);
                    }
                    _ => {
                        if let Some(other) = rng.pick(corpus) {
                            let o = String::from_utf8_lossy(other);
                            let ol: Vec<&str> = o.split_inclusive('\n').collect();
                            if let Some(l) = rng.pick(&ol) {
                                let at = rng.below(lines.len() + 1);
                                lines.insert(at, l.to_string());
                            }
                        }
                    }
                }
                toks = tokenize(&lines.concat());
            }
            10 => {
                // Blow up a list: many more items after a `[`.
                let opens: Vec<usize> = toks.iter().enumerate().filter(|(_, t)| t.1 == "[").map(|(i, _)| i).collect();
                if let Some(&i) = rng.pick(&opens) {
                    let n = if rng.one_in(16) { 1 + rng.below(100_000) } else { rng.small(64) };
                    let item = rng.pick(NUMBERS).copied().unwrap_or("0");
                    let mut s = String::with_capacity(n * (item.len() + 2));
                    for _ in 0..n {
                        s.push_str(item);
                        s.push_str(", ");
                    }
                    toks.insert(i + 1, (Class::Space, s));
                }
            }
            11 => {
                // Deep nesting.
                if !toks.is_empty() {
                    let i = rng.below(toks.len());
                    let n = if rng.one_in(8) { 1 + rng.below(50_000) } else { rng.small(64) };
                    let (open, close) = match rng.below(3) {
                        0 => ("[", "]"),
                        1 => ("{", "}"),
                        _ => ("(", ")"),
                    };
                    let s =
                        format!("{}{}", open.repeat(n), if rng.one_in(2) { close.repeat(n) } else { String::new() });
                    toks.insert(i, (Class::Punct, s));
                }
            }
            _ => {
                if !toks.is_empty() {
                    let i = rng.below(toks.len());
                    let w = rng.pick(words).copied().unwrap_or("x");
                    toks.insert(i, (Class::Word, format!(" {w} ")));
                }
            }
        }
    }
    toks.iter().map(|t| t.1.as_str()).collect()
}

/// Half the time an edit that tends to keep the graph valid (so accepted
/// graphs reach the round-trip check): an op swapped for another of its
/// class, one dim value changed in every type, one dtype changed
/// everywhere, a number made small, a boolean flipped; otherwise the
/// generic text edits.
fn mutate_ngraph(rng: &mut Rng, data: &[u8], corpus: &[Vec<u8>]) -> Option<Vec<u8>> {
    let src = std::str::from_utf8(data).ok()?;
    if rng.one_in(2) {
        return Some(
            mutate_text(rng, src, corpus, NGRAPH_WORDS, &["%0", "w0", "%999999", "w18446744073709551616", "%", "%_"])
                .into_bytes(),
        );
    }
    const GROUPS: &[&[&str]] = &[
        &[
            "neg",
            "sqrt",
            "reciprocal",
            "exp",
            "log",
            "erf",
            "tanh",
            "sigmoid",
            "relu",
            "gelu",
            "gelu_tanh",
            "abs",
            "sign",
            "floor",
            "ceil",
            "round",
            "softplus",
        ],
        &["add", "sub", "mul", "div", "pow", "min", "max", "mod", "rem"],
        &["equal", "less", "greater", "less_equal", "greater_equal"],
        &["and", "or"],
        &["reduce_sum", "reduce_mean", "reduce_max"],
        &["arg_max", "arg_min"],
        &["gather", "gather_elements", "concat", "softmax"],
        &["f32", "f16", "bf16", "i8", "u8", "i32", "i64", "bool"],
    ];
    let mut toks = tokenize(src);
    match rng.below(5) {
        // Another op of the same class (or dtype, for one type).
        0 => {
            let hits: Vec<(usize, &[&str])> = toks
                .iter()
                .enumerate()
                .filter_map(|(i, t)| GROUPS.iter().find(|g| g.contains(&t.1.as_str())).map(|g| (i, *g)))
                .collect();
            let &(i, g) = rng.pick(&hits)?;
            toks[i].1 = rng.pick(g)?.to_string();
        }
        // One dim value changed in every type (`f32[2,3]`): shapes stay
        // consistent across the graph.
        1 => {
            let mut in_type = false;
            let mut dims = Vec::new();
            for (i, t) in toks.iter().enumerate() {
                match t.1.as_str() {
                    "[" if i > 0 && GROUPS[7].contains(&toks[i - 1].1.as_str()) => in_type = true,
                    "]" => in_type = false,
                    _ if in_type && t.0 == Class::Num => dims.push(i),
                    _ => {}
                }
            }
            let &i = rng.pick(&dims)?;
            let from = toks[i].1.clone();
            let to = rng.pick(&["0", "1", "2", "3", "5", "8", "16", "17"])?.to_string();
            for &k in &dims {
                if toks[k].1 == from {
                    toks[k].1 = to.clone();
                }
            }
        }
        // One dtype changed everywhere.
        2 => {
            let present: Vec<&str> = GROUPS[7].iter().copied().filter(|d| toks.iter().any(|t| t.1 == *d)).collect();
            let from = *rng.pick(&present)?;
            let to = *rng.pick(GROUPS[7])?;
            for t in toks.iter_mut().filter(|t| t.1 == from) {
                t.1 = to.to_string();
            }
        }
        // A small number.
        3 => {
            let nums: Vec<usize> = toks.iter().enumerate().filter(|(_, t)| t.0 == Class::Num).map(|(i, _)| i).collect();
            let &i = rng.pick(&nums)?;
            toks[i].1 = (rng.below(6) as i64 - 1).to_string();
        }
        // A boolean flipped.
        _ => {
            let bools: Vec<usize> =
                toks.iter().enumerate().filter(|(_, t)| t.1 == "true" || t.1 == "false").map(|(i, _)| i).collect();
            let &i = rng.pick(&bools)?;
            toks[i].1 = if toks[i].1 == "true" { "false".into() } else { "true".into() };
        }
    }
    Some(toks.iter().map(|t| t.1.as_str()).collect::<String>().into_bytes())
}

// ---- safetensors ---------------------------------------------------------

const ST_DICT: &[&[u8]] = &[
    b"\"dtype\"",
    b"\"shape\"",
    b"\"data_offsets\"",
    b"\"__metadata__\"",
    b"\"F32\"",
    b"\"F64\"",
    b"\"BOOL\"",
    b"\"I64\"",
    b"\"F8_E4M3\"",
    b"[0,0]",
    b"[18446744073709551615]",
    b"{}",
];

const ST_WORDS: &[&str] = &[
    "F32",
    "F16",
    "BF16",
    "I8",
    "U8",
    "I32",
    "I64",
    "BOOL",
    "F64",
    "U16",
    "U32",
    "U64",
    "I16",
    "F8_E4M3",
    "F8_E5M2",
    "C64",
    "F4",
    "dtype",
    "shape",
    "data_offsets",
    "__metadata__",
    "true",
    "null",
];

/// Writes the input to a scratch file (the loader takes a path), loads it;
/// on success saves and reloads the weights and checks they are equal.
fn run_safetensors(data: &[u8]) -> Result<String, String> {
    let tid = format!("{:?}", std::thread::current().id()).replace(|c: char| !c.is_ascii_alphanumeric(), "");
    let id = format!("{}-{tid}", std::process::id());
    let (path, again) =
        (scratch().join(format!("in-{id}.safetensors")), scratch().join(format!("rt-{id}.safetensors")));
    let _cleanup = TempFiles(vec![path.clone(), again.clone()]);
    std::fs::write(&path, data).map_err(|e| format!("harness: {e}"))?;
    let w = Weights::load_safetensors(&path).map_err(|e| e.to_string())?;
    w.save_safetensors(&again).unwrap_or_else(|e| panic!("loaded weights cannot be saved: {e}"));
    let back = Weights::load_safetensors(&again).unwrap_or_else(|e| panic!("saved weights do not load: {e}"));
    assert!(back == w, "save + load changed the weights");
    let dtypes: BTreeSet<String> = w.iter().map(|(_, t)| t.dtype().to_string()).collect();
    Ok(format!("{} tensors of {}", w.len().min(4), dtypes.into_iter().collect::<Vec<_>>().join(",")))
}

/// Edits the JSON header as text (numbers, dtype strings, keys, lines) and
/// rewrites the length prefix (usually to the new header's length), and
/// sometimes truncates or extends the data.
fn mutate_safetensors(rng: &mut Rng, data: &[u8], corpus: &[Vec<u8>]) -> Option<Vec<u8>> {
    if rng.one_in(3) {
        return Some(generate_safetensors(rng));
    }
    let n = u64::from_le_bytes(data.get(..8)?.try_into().ok()?) as usize;
    let header = std::str::from_utf8(data.get(8..8usize.checked_add(n)?)?).ok()?;
    let mut body = data[8 + n..].to_vec();
    // Tokenize the JSON header; the text mutator treats strings as a class.
    let headers: Vec<Vec<u8>> = corpus
        .iter()
        .filter_map(|c| {
            let n = u64::from_le_bytes(c.get(..8)?.try_into().ok()?) as usize;
            Some(c.get(8..8usize.checked_add(n)?)?.to_vec())
        })
        .collect();
    let mut h = if rng.one_in(3) {
        // Swap a dtype string for another.
        let mut h = header.to_string();
        let from = ["\"F32\"", "\"F16\"", "\"BF16\"", "\"I64\"", "\"I32\"", "\"U8\"", "\"I8\"", "\"BOOL\""];
        let f = rng.pick(&from).copied().unwrap_or("\"F32\"");
        let to = format!("\"{}\"", rng.pick(ST_WORDS).copied().unwrap_or("F32"));
        h = h.replacen(f, &to, 1);
        h
    } else {
        mutate_text(rng, header, &headers, ST_WORDS, &[])
    };
    if rng.one_in(8) {
        h.push_str(&" ".repeat(rng.below(8)));
    }
    match rng.below(8) {
        0 => body.truncate(rng.below(body.len() + 1)),
        1 => body.extend(std::iter::repeat_n(0u8, rng.small(256))),
        _ => {}
    }
    let len: u64 = if rng.one_in(10) { rng.interesting_i64() as u64 } else { h.len() as u64 };
    let mut out = len.to_le_bytes().to_vec();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(&body);
    Some(out)
}

/// A fresh file from random tensor specs: mostly consistent (offsets
/// contiguous, data sized to match) with one thing occasionally off (a
/// gap, an overlap, reversed or huge offsets, missing or extra data, an
/// unsupported dtype, a huge or empty shape, a duplicate name, metadata).
fn generate_safetensors(rng: &mut Rng) -> Vec<u8> {
    const DTYPES: &[(&str, u64)] = &[
        ("F32", 4),
        ("F16", 2),
        ("BF16", 2),
        ("I8", 1),
        ("U8", 1),
        ("I32", 4),
        ("I64", 8),
        ("BOOL", 1),
        ("F64", 8),
        ("U16", 2),
        ("I16", 2),
        ("U64", 8),
        ("F8_E4M3", 1),
    ];
    let names = ["w", "a.b", "", "x", "\\u00e9", "__metadata__", "very.long.name.of.a.weight"];
    let n = rng.below(5);
    let mut entries = Vec::new();
    let mut offset = 0u64;
    for k in 0..n {
        let choices = if rng.one_in(6) { DTYPES } else { &DTYPES[..8] };
        let &(dtype, size) = rng.pick(choices).unwrap_or(&("F32", 4));
        let rank = rng.below(4);
        let mut shape: Vec<u64> = (0..rank).map(|_| rng.below(5) as u64).collect();
        if rng.one_in(12) {
            shape.push(rng.interesting_i64().unsigned_abs());
        }
        let bytes = shape.iter().try_fold(size, |a, &d| a.checked_mul(d)).unwrap_or(u64::MAX);
        let (mut b, mut e) = (offset, offset.saturating_add(bytes));
        match rng.below(16) {
            0 => b = b.saturating_add(1 + rng.below(8) as u64),
            1 => b = b.saturating_sub(1 + rng.below(8) as u64),
            2 => (b, e) = (e, b),
            3 => e = rng.interesting_i64() as u64,
            _ => {}
        }
        offset = e.max(offset);
        let name = if rng.one_in(4) { rng.pick(&names).copied().unwrap_or("w").to_string() } else { format!("t{k}") };
        let shape_s: Vec<String> = shape.iter().map(u64::to_string).collect();
        entries.push(format!(
            "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{}],\"data_offsets\":[{b},{e}]}}",
            shape_s.join(",")
        ));
    }
    if rng.one_in(4) {
        entries.insert(rng.below(entries.len() + 1), "\"__metadata__\":{\"format\":\"pt\"}".into());
    }
    let mut header = format!("{{{}}}", entries.join(","));
    if rng.one_in(2) {
        while header.len() % 8 != 0 {
            header.push(' ');
        }
    }
    let data_len = match rng.below(10) {
        0 => offset.saturating_sub(1 + rng.below(4) as u64),
        1 => offset.saturating_add(1 + rng.below(4) as u64),
        _ => offset,
    };
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    let data_len = data_len.min(1 << 16) as usize;
    out.extend((0..data_len).map(|_| rng.next_u64() as u8));
    out
}

// ---- toml ----------------------------------------------------------------

const TOML_DICT: &[&[u8]] = &[
    b"[cpu]\n",
    b"[[cpu]]\n",
    b"[npu]\n",
    b"name = \"x\"\n",
    b"kind = \"cpu\"\n",
    b"\"\"\"",
    b"'''",
    b"= [",
    b"= {",
    b"\\u0000",
];

const TOML_WORDS: &[&str] = &[
    "name",
    "kind",
    "description",
    "cpu",
    "npu",
    "arch",
    "triple",
    "vector_bits",
    "isa_flags",
    "cores",
    "clock_ghz",
    "l1d_kib",
    "l2_kib",
    "bogus",
    "true",
    "false",
    "inf",
    "nan",
    "x86_64",
    "aarch64",
    "cpu.arch",
    "\"cpu\"",
];

const TOML_VALUES: &[&str] = &[
    "0",
    "-1",
    "1",
    "128",
    "256",
    "512",
    "100",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "1e309",
    "nan",
    "inf",
    "-inf",
    "0.0",
    "-0.0",
    "10.0",
    "9.999999",
    "\"x86_64\"",
    "\"aarch64\"",
    "\"\"",
    "\"x86_64-unknown-linux-gnu\"",
    "\"cpu\"",
    "\"npu\"",
    "[]",
    "[\"avx2\", \"fma\"]",
    "[1, \"a\"]",
    "true",
    "{}",
    "{ arch = \"x86_64\" }",
    "1979-05-27T07:32:00Z",
    "'''multi\nline'''",
    "\"\\u0000\"",
    "\"\\uD800\"",
    "0x7fffffffffffffff",
    "0o777",
    "0b1",
    "1_000",
];

fn run_toml(data: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(data);
    // Not ending in `.toml`: the name-matches-file-stem rule is skipped, so
    // both seed descriptors reach the value checks.
    let t = nanoc_targets::Target::parse(&text, "fuzz/descriptor").map_err(|e| {
        // The TOML parser quotes the offending line under a `N |` gutter;
        // leave it out of the behaviour (it differs for every input).
        // Validation errors end `, got "<the value as written>"` (quotes
        // unescaped, possibly several lines): not part of the behaviour either.
        let msg = e.to_string();
        let msg = msg.split(", got ").next().unwrap_or("");
        let gutter = |l: &str| l.split_once('|').is_some_and(|(a, _)| a.trim().bytes().all(|b| b.is_ascii_digit()));
        msg.lines().filter(|l| !gutter(l)).collect::<Vec<_>>().join("\n")
    })?;
    if t.npu().is_none() {
        return Ok(format!("{:?}", t.kind));
    }
    // An NPU descriptor drives the optimiser's cost model: build it (this
    // loads the host CPU descriptor) and cost a matmul and a convolution.
    let model = nanoc::egraph::cost::CostModel::for_target(&t)
        .map_err(|e| e.split(": key").next().unwrap_or("").to_string())?;
    let f = |d: &[usize]| nanoc_ir::TensorType::new(nanoc_ir::DType::F32, d.to_vec());
    let (x, w, y) = (f(&[1, 8, 64]), f(&[64, 48]), f(&[1, 8, 48]));
    let matmul = model.op_ns_with(&nanoc_ir::Op::MatMul, &[&x, &w], &[false, true], &y);
    let window = nanoc_ir::Window {
        kernel: vec![3, 3],
        strides: vec![1, 1],
        pads_begin: vec![1, 1],
        pads_end: vec![1, 1],
        dilations: vec![1, 1],
    };
    let (img, k, out) = (f(&[1, 8, 16, 16]), f(&[16, 8, 3, 3]), f(&[1, 16, 16, 16]));
    let conv = nanoc_ir::Op::Conv { window, group: 1 };
    let conv_ns = model.op_ns_with(&conv, &[&img, &k], &[false, true], &out);
    let native = model.runs_natively(&conv, &[&img, &k], &[false, true], &out);
    Ok(format!("{:?} matmul {} conv {} native {native}", t.kind, matmul.is_some(), conv_ns.is_some()))
}

/// Key/value edits: a value becomes a boundary value of another type, a key
/// another schema key, lines are deleted/duplicated/moved, table headers
/// are inserted; plus the generic text edits.
fn mutate_toml(rng: &mut Rng, data: &[u8], corpus: &[Vec<u8>]) -> Option<Vec<u8>> {
    let src = std::str::from_utf8(data).ok()?;
    if rng.one_in(3) {
        return Some(mutate_text(rng, src, corpus, TOML_WORDS, &[]).into_bytes());
    }
    let mut lines: Vec<String> = src.lines().map(str::to_string).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    let i = rng.below(lines.len());
    match rng.below(7) {
        0..=2 => {
            let kv: Vec<usize> = (0..lines.len()).filter(|&k| lines[k].contains('=')).collect();
            if let Some(&k) = rng.pick(&kv) {
                let key = lines[k].split('=').next().unwrap_or("").trim().to_string();
                let v = if rng.one_in(10) {
                    let max = if rng.one_in(4) { 100_000 } else { 200 };
                    let n = 1 + rng.below(max);
                    format!("{}{}", "[".repeat(n), "]".repeat(n))
                } else {
                    rng.pick(TOML_VALUES).copied().unwrap_or("0").to_string()
                };
                lines[k] = format!("{key} = {v}");
            }
        }
        3 => {
            let kv: Vec<usize> = (0..lines.len()).filter(|&k| lines[k].contains('=')).collect();
            if let Some(&k) = rng.pick(&kv) {
                let value = lines[k].split_once('=').map(|x| x.1).unwrap_or("").to_string();
                lines[k] = format!("{} ={value}", rng.pick(TOML_WORDS).copied().unwrap_or("x"));
            }
        }
        4 => {
            lines.remove(i);
        }
        5 => {
            let l = lines[i].clone();
            let at = rng.below(lines.len() + 1);
            lines.insert(at, l);
        }
        _ => {
            let hdr =
                ["[cpu]", "[[cpu]]", "[npu]", "[cpu.extra]", "[]", "[cpu", "cpu = 1", "kind = \"npu\"", "name = 1"];
            lines.insert(i, rng.pick(&hdr).copied().unwrap_or("[cpu]").to_string());
        }
    }
    Some((lines.join("\n") + "\n").into_bytes())
}

// ---- bundle --------------------------------------------------------------

const BUNDLE_DICT: &[&[u8]] = &[b"NANOB\0\r\n", b"\x01\x00\x00\x00", b"\x05\x00\x00\x00", b"x86_64-unknown-linux-gnu"];

/// Loads the input twice, as the runtime does (`decode_bundle` and
/// `Model::from_bytes`, which also maps the code executable but does not
/// run it), and checks they agree; a decoded spec must re-encode to bytes
/// that decode to the same spec.
fn run_bundle(data: &[u8]) -> Result<String, String> {
    let decoded = nanoc_runtime::decode_bundle(data);
    let model = nanoc_runtime::Model::from_bytes(data);
    match (&decoded, &model) {
        (Err(d), Err(m)) => {
            assert_eq!(d.to_string(), m.to_string(), "decode_bundle and Model::from_bytes disagree");
            Err(d.to_string())
        }
        (Err(d), Ok(_)) => panic!("Model::from_bytes accepted a bundle decode_bundle rejects: {d}"),
        (Ok(spec), m) => {
            let again = nanoc_runtime::decode_bundle(&nanoc_runtime::encode_bundle(spec))
                .unwrap_or_else(|e| panic!("a decoded bundle re-encodes to an invalid one: {e}"));
            assert!(&again == spec, "encode(decode(b)) decodes to a different spec");
            match m {
                Ok(m) => {
                    assert_eq!(m.kernel_count(), spec.kernels.len());
                    assert_eq!(m.step_count(), spec.steps.len());
                    Ok(format!("loaded, {} inputs", spec.inputs.len().min(3)))
                }
                // Decodes, but this host will not load it (another
                // architecture, a step with too many arguments, ...).
                Err(e) => Err(format!("decoded but not loaded: {e}")),
            }
        }
    }
}

/// Makes the header's file length and checksum right.
fn fix_bundle(d: &mut Vec<u8>) {
    if d.len() >= 24 {
        let len = d.len() as u64;
        d[16..24].copy_from_slice(&len.to_le_bytes());
    }
    nanoc_runtime::bundle::update_checksum(d);
}

/// Either edits a header or section-table field (or a word inside a
/// section) and repairs the checksum, or decodes the bundle, edits the
/// spec (arena size, tensor shapes and offsets, kernels, steps and their
/// arguments, weights, triple) and re-encodes it.
fn mutate_bundle(rng: &mut Rng, data: &[u8], _corpus: &[Vec<u8>]) -> Option<Vec<u8>> {
    if rng.one_in(3) {
        let mut d = data.to_vec();
        if d.len() < 64 {
            return None;
        }
        let count = u32::from_le_bytes(d[28..32].try_into().ok()?).min(16) as usize;
        let (at, width) = match rng.below(4) {
            0 => (*rng.pick(&[8usize, 12, 16, 24, 28, 32, 40, 56])?, if rng.one_in(2) { 4 } else { 8 }),
            1 | 2 if count > 0 => {
                let e = 64 + 24 * rng.below(count);
                let (off, w) = *rng.pick(&[(0usize, 4usize), (4, 4), (8, 8), (16, 8)])?;
                (e + off, w)
            }
            _ => (rng.below(d.len()), if rng.one_in(2) { 4 } else { 8 }),
        };
        let v = rng.interesting_i64().to_le_bytes();
        for k in 0..width {
            if let Some(b) = d.get_mut(at + k) {
                *b = v[k];
            }
        }
        fix_bundle(&mut d);
        return Some(d);
    }
    let mut spec = nanoc_runtime::decode_bundle(data).ok()?;
    for _ in 0..1 + rng.below(3) {
        let big = |rng: &mut Rng| rng.interesting_i64() as u64;
        match rng.below(12) {
            0 => {
                spec.arena_size = if rng.one_in(2) {
                    big(rng)
                } else {
                    spec.arena_size.wrapping_add(rng.below(129) as u64).wrapping_sub(64)
                }
            }
            1 | 2 => {
                let list = if rng.one_in(2) { &mut spec.inputs } else { &mut spec.outputs };
                if let Some(t) = (!list.is_empty()).then(|| rng.below(list.len())).and_then(|i| list.get_mut(i)) {
                    match rng.below(6) {
                        0 => {
                            if let Some(d) =
                                (!t.shape.is_empty()).then(|| rng.below(t.shape.len())).and_then(|i| t.shape.get_mut(i))
                            {
                                *d = big(rng);
                            }
                        }
                        1 => t.shape.push(big(rng)),
                        2 => t.offset = big(rng),
                        3 => t.elem = *rng.pick(&nanoc_runtime::ElemType::ALL)?,
                        4 => t.name = String::new(),
                        _ => {
                            let t = t.clone();
                            list.push(t);
                        }
                    }
                } else {
                    list.clear();
                }
            }
            3 => {
                if let Some(k) = (!spec.kernels.is_empty()).then(|| rng.below(spec.kernels.len())) {
                    match rng.below(4) {
                        0 => spec.kernels[k].code.clear(),
                        1 => {
                            let n = rng.below(spec.kernels[k].code.len() + 1);
                            spec.kernels[k].code.truncate(n)
                        }
                        2 => {
                            spec.kernels.remove(k);
                        }
                        _ => spec.kernels[k].name = "\u{0}".repeat(rng.small(8)),
                    }
                }
            }
            4..=7 => {
                if let Some(s) = (!spec.steps.is_empty()).then(|| rng.below(spec.steps.len())) {
                    let step = &mut spec.steps[s];
                    match rng.below(6) {
                        0 => step.kernel = big(rng) as u32,
                        1 => {
                            let a = step.args.first().copied().unwrap_or(nanoc_runtime::BufRef {
                                region: nanoc_runtime::Region::Arena,
                                offset: 0,
                                size: 0,
                            });
                            let n = if rng.one_in(2) { 257 } else { rng.small(300) };
                            step.args.extend(std::iter::repeat_n(a, n));
                        }
                        2 => step.args.clear(),
                        _ => {
                            if let Some(a) = (!step.args.is_empty())
                                .then(|| rng.below(step.args.len()))
                                .and_then(|i| step.args.get_mut(i))
                            {
                                match rng.below(3) {
                                    0 => a.offset = big(rng),
                                    1 => a.size = big(rng),
                                    _ => {
                                        a.region = if a.region == nanoc_runtime::Region::Arena {
                                            nanoc_runtime::Region::Weights
                                        } else {
                                            nanoc_runtime::Region::Arena
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            8 => {
                if !spec.steps.is_empty() {
                    let s = rng.below(spec.steps.len());
                    if rng.one_in(2) {
                        spec.steps.remove(s);
                    } else {
                        let st = spec.steps[s].clone();
                        spec.steps.push(st);
                    }
                }
            }
            9 => {
                let n = rng.below(spec.weights.len() + 1);
                if rng.one_in(2) {
                    spec.weights.truncate(n)
                } else {
                    spec.weights.extend(std::iter::repeat_n(0xAB, rng.small(4096)))
                }
            }
            10 => {
                let triples = [
                    "",
                    "aarch64-unknown-linux-gnu",
                    "x86_64-pc-windows-msvc",
                    "riscv64gc-unknown-linux-gnu",
                    "x86_64",
                    "arm64-apple-darwin",
                    "amd64",
                    "x64-linux",
                ];
                spec.triple = rng.pick(&triples)?.to_string();
            }
            _ => spec.target = "t".repeat(rng.small(300)),
        }
    }
    Some(nanoc_runtime::encode_bundle(&spec))
}
