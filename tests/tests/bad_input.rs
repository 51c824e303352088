//! Bad input gets a clear error naming the file and what was wrong, never
//! a panic: truncated ONNX, unsupported ops (all listed at once), unbound
//! symbolic dims, corrupt and out-of-range bundles.

use nanoc::onnx::ImportOptions;
use nanoc_runtime::bundle::update_checksum;
use nanoc_tests::*;

#[test]
fn truncated_onnx_names_the_file() {
    let bytes = std::fs::read(fixtures_dir().join("mlp/model.onnx")).unwrap();
    let path = temp_path("truncated.onnx");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let e = nanoc::driver::load_graph(&path, &ImportOptions::default()).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.starts_with(&path.display().to_string()), "{msg}");
    assert!(msg.contains("truncated or corrupt"), "{msg}");
}

#[test]
fn unsupported_ops_are_listed_together() {
    let f = fixture("unsupported");
    let e = f.import().unwrap_err();
    let expected = std::fs::read_to_string(fixtures_dir().join("unsupported/EXPECTED_OPS.txt")).unwrap();
    assert!(e.contains("3 unsupported op types"), "{e}");
    for line in expected.lines().filter(|l| !l.trim().is_empty()) {
        let (op, count) = line.split_once(' ').unwrap();
        let noun = if count == "1" { "node" } else { "nodes" };
        assert!(e.contains(&format!("{op} ({count} {noun}")), "missing `{line}` in: {e}");
    }
}

#[test]
fn unbound_symbolic_dims_are_named() {
    let e = nanoc::driver::load_graph(&fixtures_dir().join("gpt2/model.onnx"), &ImportOptions::default()).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("--dim batch=N") && msg.contains("--dim seq=N"), "{msg}");
}

fn mlp_bundle() -> Vec<u8> {
    let g = fixture("mlp").import().unwrap();
    let t = nanoc::driver::resolve_target("cpu").unwrap();
    nanoc::driver::bundle_bytes(&nanoc_backends::cpu::compile(&g, &t, false).unwrap()).unwrap()
}

#[test]
fn bundle_with_a_flipped_byte_is_rejected() {
    let mut b = mlp_bundle();
    let i = b.len() / 2;
    b[i] ^= 0x40;
    let e = nanoc_runtime::Model::from_bytes(&b).unwrap_err().to_string();
    assert!(e.contains("checksum mismatch"), "{e}");
    let path = temp_path("flipped.nanob");
    std::fs::write(&path, &b).unwrap();
    let e = nanoc_runtime::Model::from_file(&path).unwrap_err().to_string();
    assert!(e.starts_with(&path.display().to_string()) && e.contains("checksum mismatch"), "{e}");
}

#[test]
fn bundle_with_an_out_of_range_offset_is_rejected() {
    let spec = nanoc_runtime::decode_bundle(&mlp_bundle()).unwrap();
    let mut bad = spec.clone();
    bad.steps[0].args[0].offset = bad.arena_size + 64;
    let mut bytes = nanoc_runtime::encode_bundle(&bad);
    update_checksum(&mut bytes);
    let e = nanoc_runtime::Model::from_bytes(&bytes).unwrap_err().to_string();
    assert!(e.contains("outside the arena"), "{e}");
    assert!(e.contains(&format!("node \"{}\"", spec.steps[0].node)), "{e}");
}

#[test]
fn truncated_bundle_is_rejected() {
    let b = mlp_bundle();
    let e = nanoc_runtime::Model::from_bytes(&b[..b.len() - 10]).unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
}
