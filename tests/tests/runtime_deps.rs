//! Architecture invariant: the runtime never links the compiler, Cranelift,
//! egg, petgraph or clap (checked on the real dependency graph).

#[test]
fn runtime_has_no_compiler_dependencies() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["tree", "-p", "nanoc-runtime", "-e", "normal,build", "--prefix", "none", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("nanoc-runtime"), "{tree}");
    for banned in ["cranelift", "egg", "petgraph", "clap", "nanoc-ir", "nanoc-backends", "nanoc v"] {
        assert!(!tree.lines().any(|l| l.starts_with(banned)), "runtime depends on {banned}:\n{tree}");
    }
}
