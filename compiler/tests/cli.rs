//! The `nanoc` binary end to end: compile → bundle → run, dumps that parse
//! back, exit codes and error messages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn nanoc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nanoc")).args(args).current_dir(repo()).output().expect("run nanoc")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nanoc-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d.join(name)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn compile_and_run_gpt2_bundle() {
    let out = tmp("gpt2.nanob");
    let o = nanoc(&[
        "compile",
        "tests/fixtures/gpt2/model.onnx",
        "--dim",
        "batch=1",
        "--dim",
        "seq=16",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("lowered"), "progress output expected: {}", text(&o.stderr));
    let dir = tmp("gpt2-out");
    let o = nanoc(&[
        "run",
        out.to_str().unwrap(),
        "--input",
        "input_ids=tests/fixtures/gpt2/inputs/input_ids.npy",
        "--output-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with("logits: f32[1,16,256] min "), "{}", text(&o.stdout));
    let got = nanoc::npy::read_npy(&dir.join("logits.npy")).unwrap().to_vec::<f32>().unwrap();
    let want =
        nanoc::npy::read_npy(&repo().join("tests/fixtures/gpt2/outputs/logits.npy")).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-4 * w.abs() + 1e-5, "{g} vs {w}");
    }
    let o = nanoc(&["inspect", out.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(text(&o.stdout).contains("arena: "), "{}", text(&o.stdout));
}

#[test]
fn run_model_directly_binds_dims_from_inputs() {
    let o = nanoc(&[
        "run",
        "-q",
        "tests/fixtures/gpt2/model.onnx",
        "--input",
        "input_ids=tests/fixtures/gpt2/inputs/input_ids.npy",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with("logits: f32[1,16,256]"));
    assert!(text(&o.stderr).is_empty(), "--quiet: {}", text(&o.stderr));
}

#[test]
fn unsupported_ops_exit_2_with_one_error() {
    let o = nanoc(&["compile", "tests/fixtures/unsupported/model.onnx"]);
    assert_eq!(o.status.code(), Some(2));
    let e = text(&o.stderr);
    assert_eq!(e.matches("error:").count(), 1, "{e}");
    assert!(
        e.contains("Celu (1 node") && e.contains("Hardmax (2 nodes") && e.contains("LpNormalization (1 node"),
        "{e}"
    );
}

#[test]
fn emitted_ir_parses_back_to_the_same_graph() {
    let path = tmp("gpt2.ngraph");
    let o = nanoc(&[
        "compile",
        "-q",
        "tests/fixtures/gpt2/model.onnx",
        "--dim",
        "batch=1",
        "--dim",
        "seq=16",
        "--emit",
        "ir",
        "-o",
        path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let first = std::fs::read_to_string(&path).unwrap();
    // Re-importing the .ngraph (with its side .safetensors) prints the same text.
    let o = nanoc(&["compile", "-q", path.to_str().unwrap(), "--emit", "ir"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), first);
    // And it compiles and runs like the ONNX model.
    let o =
        nanoc(&["run", "-q", path.to_str().unwrap(), "--input", "input_ids=tests/fixtures/gpt2/inputs/input_ids.npy"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
}

#[test]
fn emit_clif_prints_kernels() {
    let o = nanoc(&["compile", "-q", "tests/fixtures/mlp/model.onnx", "--emit", "clif"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let s = text(&o.stdout);
    assert!(s.contains("; kernel k0_") && s.contains("function u0:0(i64) -> i32"), "{}", &s[..s.len().min(400)]);
}

#[test]
fn errors_name_what_is_wrong() {
    let o = nanoc(&["compile", "tests/fixtures/gpt2/model.onnx"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("--dim seq=N"), "{}", text(&o.stderr));
    let o = nanoc(&["compile", "tests/fixtures/mlp/model.onnx", "--target", "no-such-npu"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("unknown target `no-such-npu`"), "{}", text(&o.stderr));
    let o = nanoc(&["run", "tests/fixtures/mlp/model.onnx"]);
    assert!(text(&o.stderr).contains("missing input `x`"), "{}", text(&o.stderr));
}

#[test]
fn targets_lists_descriptors() {
    let o = nanoc(&["targets"]);
    assert!(o.status.success());
    let s = text(&o.stdout);
    assert!(s.contains("cpu-x86_64") && s.contains("cpu-aarch64"), "{s}");
    assert!(s.lines().any(|l| l.starts_with("npu-x") && l.contains(" npu ") && l.contains("256 MAC/cycle")), "{s}");
    assert!(s.contains("ethos-u55-128") && s.contains("ethos-u85-256"), "{s}");
}

#[test]
fn npu_targets_have_no_backend_yet() {
    for args in [
        &["compile", "tests/fixtures/mlp/model.onnx", "--target", "npu-x"][..],
        &["compile", "tests/fixtures/mlp/model.onnx", "--target", "ethos-u55-256", "--emit", "obj"],
        &["run", "tests/fixtures/mlp/model.onnx", "--target", "npu-x"],
    ] {
        let o = nanoc(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let e = text(&o.stderr);
        assert!(e.contains("is an NPU and the NPU backend does not exist yet (issue #6)"), "{args:?}: {e}");
    }
    // The optimiser works for it: the CPU fuses attention; npu-x has no
    // native attention, so it keeps the decomposition, with the scale
    // divisions as multiplies (it has no division either).
    let ir = |t: &str| {
        let gpt2 = "tests/fixtures/gpt2/model.onnx";
        let o =
            nanoc(&["compile", "-q", gpt2, "--dim", "batch=1", "--dim", "seq=16", "--target", t, "--emit", "egraph"]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout)
    };
    let (cpu, npu) = (ir("cpu-x86_64"), ir("npu-x"));
    assert!(npu.starts_with("e-graph optimiser, target npu-x") && npu.contains("graph \"gpt2_tiny\""), "{npu}");
    assert!(cpu.contains("= attention{") && !npu.contains("= attention{"), "{cpu}\n{npu}");
    assert!(!npu.contains("= div(") && npu.contains("attn/Div/div-reciprocal"), "{npu}");
    let placement = npu.lines().find(|l| l.starts_with("  placement: ")).unwrap_or_default();
    assert!(placement.ends_with(" ops on npu-x, 3 on the host CPU (gather 1, where 2)"), "{npu}");
    assert!(!cpu.contains("placement:"), "{cpu}");
}

#[test]
fn inspect_support_lists_op_types_per_target() {
    let o = nanoc(&["inspect", "--support", "tests/fixtures/unsupported/model.onnx"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let s = text(&o.stdout);
    assert!(s.lines().next().is_some_and(|h| h.contains("cpu-x86_64") && h.contains("cpu-aarch64")), "{s}");
    assert!(s.lines().any(|l| l.starts_with("Hardmax") && l.contains(" 2 ") && l.ends_with("no")), "{s}");
    assert!(s.lines().any(|l| l.starts_with("Relu") && l.ends_with("yes")), "{s}");
    assert!(s.contains("5 op types, 3 unsupported"), "{s}");
}

#[test]
fn emit_egraph_reports_stages() {
    let o = nanoc(&[
        "compile",
        "-q",
        "tests/fixtures/gpt2/model.onnx",
        "--dim",
        "batch=1",
        "--dim",
        "seq=16",
        "--emit",
        "egraph",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let s = text(&o.stdout);
    assert!(s.contains("stage canonicalise") && s.contains("stage fusion") && s.contains("gelu"), "{s}");
}

#[test]
fn emit_obj_writes_object_and_header() {
    let base = tmp("mlp_obj");
    let o = nanoc(&[
        "compile",
        "-q",
        "tests/fixtures/mlp/model.onnx",
        "--emit",
        "obj",
        "-o",
        base.to_str().unwrap(),
        "--prefix",
        "tiny_mlp",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let header = std::fs::read_to_string(base.with_extension("h")).unwrap();
    assert!(
        header.contains("int tiny_mlp_run(const void *const *inputs, void *const *outputs, void *scratch);"),
        "{header}"
    );
    assert!(std::fs::metadata(base.with_extension("o")).unwrap().len() > 0);
    let o = nanoc(&["compile", "tests/fixtures/mlp/model.onnx", "--prefix", "x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("--prefix only applies to --emit obj"), "{}", text(&o.stderr));
}

#[test]
fn inspect_fusions_lists_what_fused_where() {
    let gpt2 = "tests/fixtures/gpt2/model.onnx";
    let run = |t: &str| {
        let o = nanoc(&["inspect", "-q", "--fusions", gpt2, "--dim", "batch=1", "--dim", "seq=16", "--target", t]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout)
    };
    let cpu = run("cpu-x86_64");
    assert!(cpu.starts_with("fusions for target cpu-x86_64: 70 -> 40 kernels"), "{cpu}");
    assert!(
        cpu.contains("attention      2 nodes replacing 12 (div 2, matmul 4, softmax 2, transpose 2, where 2)"),
        "{cpu}"
    );
    // GELU and the bias add are the c_fc matmul's epilogue.
    let gelu = "matmul_epilogue /transformer/h.0/mlp/act/Mul_1/epi-gelu <- replaces 7: \
                /transformer/h.0/mlp/c_fc/MatMul (matmul), /transformer/h.0/mlp/c_fc/Add (add), \
                /transformer/h.0/mlp/act/Div (div), /transformer/h.0/mlp/act/Erf (erf), /transformer/h.0/mlp/act/Add (add), \
                /transformer/h.0/mlp/act/Mul (mul), /transformer/h.0/mlp/act/Mul_1 (mul)";
    assert!(cpu.lines().any(|l| l.trim() == gelu), "{cpu}");
    let summary = "matmul_epilogue 8 nodes replacing 30 (add 14, div 2, erf 2, matmul 8, mul 4)";
    assert!(cpu.contains(summary), "{cpu}");
    // Ops other passes add show up with no change here: attention.
    let attention = cpu.lines().filter(|l| l.trim_start().starts_with("attention ") && l.contains(" <- replaces "));
    assert_eq!(attention.count(), 2, "{cpu}");
    let dag = nanoc(&["inspect", "-q", "--fusions", gpt2, "--dim", "batch=1", "--dim", "seq=16", "--extract", "dag"]);
    assert!(dag.status.success(), "{}", text(&dag.stderr));
    assert!(text(&dag.stdout).contains(summary), "{}", text(&dag.stdout));
    let npu = run("npu-x");
    // npu-x has no native LayerNorm: each imported layer_norm is replaced by
    // its decomposition (reductions, elementwise ops, a reciprocal LUT).
    assert!(npu.contains("add            5 nodes replacing 5 (layer_norm 5)"), "{npu}");
    assert!(
        npu.contains(
            "mul            /transformer/h.0/attn/Div/div-reciprocal <- replaces 1: /transformer/h.0/attn/Div (div)"
        ),
        "{npu}"
    );
    assert!(npu.contains("on the host CPU (npu-x has no native form): gather 1, where 2"), "{npu}");
}

/// Compiles report stage and iteration progress on stderr; `--quiet`
/// silences it. `--emit egraph` prints per stage: iterations, e-nodes,
/// e-classes, stop reason, time, and each rule that fired with its count.
#[test]
fn optimiser_progress_and_stage_statistics() {
    let args = ["compile", "tests/fixtures/gpt2/model.onnx", "--dim", "batch=1", "--dim", "seq=16", "--emit", "egraph"];
    let o = nanoc(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    for want in [
        "] stage canonicalise: iteration 1, 106 e-nodes, 106 e-classes",
        "] stage canonicalise: saturated, ",
        "] stage fusion: iteration 1, ",
        "] extracting for cpu-",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    let out = text(&o.stdout);
    let stage = out.lines().find(|l| l.starts_with("  stage fusion: ")).unwrap_or_default();
    assert!(
        stage.contains(" iterations, ")
            && stage.contains(" e-nodes, ")
            && stage.contains(" e-classes, stop: saturated, ")
            && stage.ends_with(" ms"),
        "{out}"
    );
    assert!(out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["gelu-erf-a", "2"]), "{out}");
    let quiet = nanoc(&[&["-q"][..], &args].concat());
    assert!(quiet.status.success() && quiet.stderr.is_empty(), "{}", text(&quiet.stderr));
}

#[test]
fn prune_reports_the_accuracy_change() {
    let o = nanoc(&[
        "compile",
        "tests/fixtures/mlp/model.onnx",
        "--prune",
        "2:4",
        "--input",
        "tests/fixtures/mlp/inputs/x.npy",
        "--emit",
        "ir",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("pruned ") && err.contains("relative L2 change"), "{err}");
    let o = nanoc(&["compile", "tests/fixtures/mlp/model.onnx", "--prune", "1.5", "--emit", "ir"]);
    assert!(!o.status.success() && text(&o.stderr).contains("ratio between 0 and 1"), "{}", text(&o.stderr));
    let o = nanoc(&["compile", "tests/fixtures/mlp/model.onnx", "--input", "x.npy", "--emit", "ir"]);
    assert!(!o.status.success() && text(&o.stderr).contains("only applies to --prune"), "{}", text(&o.stderr));
}
