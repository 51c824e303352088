//! The `.ngraph` text format on real models: every fixture's imported IR
//! prints, parses back (with its weights through a side safetensors file)
//! and prints identically; the parsed graph computes the same outputs; and
//! the imported IR of the model fixtures is pinned by insta snapshots.

use nanoc_ir::text;
use nanoc_tests::*;

fn all_fixtures() -> Vec<String> {
    let mut v: Vec<String> = ["gpt2", "mlp", "cnn"].iter().map(|s| s.to_string()).collect();
    let list = std::fs::read_to_string(fixtures_dir().join("ops/CASES.txt")).unwrap();
    v.extend(list.lines().map(str::trim).filter(|l| !l.is_empty()).map(|c| format!("ops/{c}")));
    v
}

#[test]
fn every_fixture_round_trips_through_text() {
    for name in all_fixtures() {
        let f = fixture(&name);
        let g = f.import().unwrap();
        let printed = text::print(&g);
        let side = temp_path(&format!("{name}.safetensors"));
        text::external_weights(&g).save_safetensors(&side).unwrap();
        let w = nanoc_ir::weights::Weights::load_safetensors(&side).unwrap();
        let parsed = text::parse(&printed, &name, Some(&w)).unwrap();
        assert_eq!(text::print(&parsed), printed, "{name}: print -> parse -> print differs");
        let a = run_interp(&g, &f.ordered_inputs(&g)).unwrap();
        let b = run_interp(&parsed, &f.ordered_inputs(&parsed)).unwrap();
        compare_all(&format!("{name}: parsed graph"), &b, &a, 0.0, 0.0).unwrap();
    }
}

#[test]
fn imported_ir_snapshots() {
    for name in ["gpt2", "mlp", "cnn"] {
        let g = fixture(name).import().unwrap();
        insta::assert_snapshot!(format!("import_{name}"), text::print(&g));
    }
}
