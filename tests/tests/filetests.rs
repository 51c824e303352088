//! Text filetests (Cranelift style): each file in `tests/filetests/<kind>/`
//! holds a header (`; test optimize cpu-x86_64`), an input graph in
//! `.ngraph` text, optional `; run: interp` / `; run: jit` lines, and the
//! expected output after a `; expect:` line, every line commented. This one
//! test runs the folder. `NANOC_BLESS=1` rewrites the expectations from what
//! the compiler produces; a mismatch prints a line diff.
//!
//! `; run: interp` evaluates the input and the optimised graph with the
//! interpreter on deterministic inputs and compares them; `; run: jit` runs
//! the optimised graph through the JIT against the input's interpretation.

use nanoc_ir::{DType, Graph, Tensor, text};
use nanoc_tests::*;
use std::path::{Path, PathBuf};

const EXPECT: &str = "; expect:";

fn files(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("filetests").join(kind);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "ngraph"))
        .collect();
    v.sort();
    v
}

/// Deterministic inputs in [-2, 2) (integers in [-6, 6), bools alternating).
fn inputs(g: &Graph) -> Vec<(String, Tensor)> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0
    };
    g.inputs()
        .iter()
        .map(|&id| {
            let n = g.node(id);
            let (shape, count) = (n.ty.shape.clone(), n.ty.shape.numel());
            let t = match n.ty.dtype {
                DType::F32 => Tensor::from_vec(shape, (0..count).map(|_| next() as f32).collect()),
                DType::I64 => Tensor::from_vec(shape, (0..count).map(|_| (next() * 3.0) as i64).collect()),
                DType::I32 => Tensor::from_vec(shape, (0..count).map(|_| (next() * 3.0) as i32).collect()),
                DType::Bool => Tensor::from_vec(shape, (0..count).map(|i| i % 2 == 0).collect()),
                d => panic!("filetest inputs of dtype {d} are not supported"),
            };
            (n.name.clone(), t.unwrap())
        })
        .collect()
}

/// A line diff (longest common subsequence): ` ` kept, `-` expected, `+` got.
fn diff(want: &[&str], got: &[&str]) -> String {
    let (n, m) = (want.len(), got.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if want[i] == got[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < n || j < m {
        if i < n && j < m && want[i] == got[j] {
            out += &format!("   {}\n", want[i]);
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out += &format!(" - {}\n", want[i]);
            i += 1;
        } else {
            out += &format!(" + {}\n", got[j]);
            j += 1;
        }
    }
    out
}

/// Runs one `test optimize` file; returns a failure message.
fn run_optimize(path: &Path, src: &str, target: &str, bless: bool) -> Result<(), String> {
    let file = path.display().to_string();
    let g = text::parse(src, &file, None).map_err(|e| e.to_string())?;
    let t = nanoc::driver::resolve_target(target).map_err(|e| format!("{e:#}"))?;
    let (opt, _) = nanoc::egraph::optimize(&g, &t, &Default::default()).map_err(|e| e.to_string())?;
    let got = text::print(&opt);

    for line in src.lines().filter_map(|l| l.strip_prefix("; run:")).map(str::trim) {
        let ins = inputs(&g);
        let ordered: Vec<Tensor> = ins.iter().map(|(_, t)| t.clone()).collect();
        let want = run_interp(&g, &ordered)?;
        let out = match line {
            "interp" => run_interp(&opt, &ordered)?,
            "jit" => run_jit(&opt, &ins)?,
            other => return Err(format!("unknown `; run: {other}` (expected interp or jit)")),
        };
        compare_all(&format!("; run: {line}"), &out, &want, RTOL, ATOL)?;
    }

    let (head, expected) = match src.split_once(&format!("\n{EXPECT}\n")) {
        Some((h, e)) => (h, Some(e)),
        None => (src.trim_end(), None),
    };
    let want: Vec<&str> = expected
        .map(|e| e.lines().map(|l| l.strip_prefix("; ").unwrap_or(l.trim_start_matches(';'))).collect())
        .unwrap_or_default();
    let got_lines: Vec<&str> = got.lines().collect();
    if want == got_lines {
        return Ok(());
    }
    if bless {
        let body: String = got_lines.iter().map(|l| format!("; {l}\n")).collect();
        std::fs::write(path, format!("{head}\n{EXPECT}\n{body}")).map_err(|e| e.to_string())?;
        return Ok(());
    }
    Err(format!("output differs from `{EXPECT}` (NANOC_BLESS=1 rewrites it):\n{}", diff(&want, &got_lines)))
}

#[test]
fn filetests() {
    let bless = std::env::var_os("NANOC_BLESS").is_some_and(|v| v != "0");
    let mut failures = Vec::new();
    let mut count = 0;
    for path in files("optimize") {
        let src = std::fs::read_to_string(&path).unwrap();
        let header = src.lines().next().unwrap_or_default();
        let words: Vec<&str> = header.trim_start_matches(';').split_whitespace().collect();
        let r = match words.as_slice() {
            ["test", "optimize", target] => run_optimize(&path, &src, target, bless),
            _ => Err(format!("first line must be `; test optimize <target>`, got `{header}`")),
        };
        count += 1;
        if let Err(e) = r {
            failures.push(format!("{}: {e}", path.display()));
        }
    }
    assert!(count > 0, "no filetests found");
    assert!(failures.is_empty(), "{} of {count} filetests failed:\n\n{}", failures.len(), failures.join("\n\n"));
}
