//! Every single-op fixture (`tests/fixtures/ops/*`, made with onnxruntime by
//! `scripts/gen_fixtures.py`) through all three paths: the reference
//! interpreter, the JIT, and a bundle run by the runtime, each compared
//! with onnxruntime's recorded outputs. Prints a table per case.

use nanoc_tests::*;

/// Tolerances per case, by name prefix; everything else uses the default
/// f32 tolerance (`RTOL`, `ATOL`) and exact integers.
///
/// - `f16_`: onnxruntime computes in half precision and rounds after every
///   op; nanoc computes half models in f32 and rounds once at the output, so
///   results differ by a few half-precision ulps (2^-10 relative).
fn tolerance(case: &str) -> (f64, f64) {
    if case.starts_with("f16_") { (1e-2, 1e-3) } else { (RTOL, ATOL) }
}

#[test]
fn every_op_case_matches_onnxruntime_on_every_path() {
    let list = std::fs::read_to_string(fixtures_dir().join("ops/CASES.txt")).unwrap();
    let mut failures = Vec::new();
    println!("{:<36} {:<8} {:<8} {:<8}", "case", "interp", "jit", "bundle");
    for case in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let f = fixture(&format!("ops/{case}"));
        let g = match f.import() {
            Ok(g) => g,
            Err(e) => {
                failures.push(format!("{case}: import: {e}"));
                println!("{case:<36} import failed");
                continue;
            }
        };
        let mut row = Vec::new();
        let (rtol, atol) = tolerance(case);
        let interp =
            run_interp(&g, &f.ordered_inputs(&g)).and_then(|o| compare_all("interp", &o, &f.outputs, rtol, atol));
        let jit = run_jit(&g, &f.inputs).and_then(|o| compare_all("jit", &o, &f.outputs, rtol, atol));
        let bundle = run_bundle(&g, &f.inputs, case).and_then(|o| compare_all("bundle", &o, &f.outputs, rtol, atol));
        for r in [interp, jit, bundle] {
            row.push(if r.is_ok() { "ok" } else { "FAIL" });
            if let Err(e) = r {
                failures.push(format!("{case}: {e}"));
            }
        }
        println!("{case:<36} {:<8} {:<8} {:<8}", row[0], row[1], row[2]);
    }
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
}
