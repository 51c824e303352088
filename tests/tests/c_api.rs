//! The C API end to end: compile the MLP fixture to a bundle, then build
//! `tests/c/run_bundle.c` with the system C compiler against
//! `runtime/include/nanoc_runtime.h` and the runtime's static library, and
//! run it: it loads the bundle from the file and from memory, runs it on its
//! own arena and on a caller-provided one, compares the outputs with
//! onnxruntime's recorded ones, and checks that a corrupt bundle is
//! rejected with a message (see the C file).
//!
//! The static library is the one cargo builds for this test's own
//! dependency on `nanoc-runtime` (its `staticlib` crate type, written to
//! `target/<profile>/deps/libnanoc_runtime-HASH.a`). `NANOC_C_API_LIB=/path/lib.a`
//! links another build instead, with `NANOC_C_API_LIBS` as its native
//! libraries (`scripts/runtime_size.sh` uses this for the size-optimised
//! `no_std` library). Skipped, with a note, when no C compiler is found.

use nanoc::driver;
use nanoc_tests::{fixture, temp_path};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Native libraries a `std` Rust static library needs on Linux
/// (`cargo rustc -p nanoc-runtime --crate-type staticlib -- --print native-static-libs`).
const STD_NATIVE_LIBS: &str = "-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The C compiler: `$CC`, else `cc`, if it runs.
fn c_compiler() -> Option<String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    Command::new(&cc).arg("--version").output().ok().filter(|o| o.status.success()).map(|_| cc)
}

/// The runtime's static library, next to this test binary in
/// `target/<profile>/deps/`: cargo compiles a dependency with all its crate
/// types. The name carries a hash (`libnanoc_runtime-HASH.a`), and other
/// builds of the runtime (e.g. `cargo test -p nanoc-runtime`, with other
/// dependency features) leave theirs beside it; cargo has just rebuilt this
/// test's one if the sources changed, so the newest is current (they differ
/// only in how their dependencies were built).
fn staticlib() -> Option<PathBuf> {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    std::fs::read_dir(&deps)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.starts_with("libnanoc_runtime") && name.ends_with(".a")
        })
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
}

/// Writes the bundle, inputs, expected outputs and a corrupt bundle to `dir`.
fn write_case(dir: &Path) {
    let fx = fixture("mlp");
    let g = fx.import().unwrap();
    let target = driver::resolve_target("cpu").unwrap();
    let prog = nanoc_backends::cpu::compile(&g, &target, false).unwrap();
    let bytes = driver::bundle_bytes(&prog).unwrap();
    std::fs::write(dir.join("model.nanob"), &bytes).unwrap();

    let model = nanoc_runtime::Model::from_bytes(&bytes).unwrap();
    for (i, spec) in model.inputs().iter().enumerate() {
        let (_, t) = fx.inputs.iter().find(|(n, _)| *n == spec.name).unwrap();
        assert_eq!(t.bytes().len(), model.input_len(i), "input {}", spec.name);
        std::fs::write(dir.join(format!("input_{i}.bin")), t.bytes()).unwrap();
    }
    for (i, spec) in model.outputs().iter().enumerate() {
        let npy = nanoc_tests::fixtures_dir().join("mlp/outputs").join(format!("{}.npy", spec.name));
        let want = nanoc::npy::read_npy(&npy).unwrap();
        assert_eq!(want.bytes().len(), model.output_len(i), "output {}", spec.name);
        std::fs::write(dir.join(format!("expected_{i}.bin")), want.bytes()).unwrap();
    }

    // A weight byte flipped: only the checksum can tell.
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x5A;
    std::fs::write(dir.join("corrupt.nanob"), &bad).unwrap();
}

#[test]
fn c_program_runs_the_mlp_through_the_c_api() {
    if !cfg!(target_os = "linux") {
        println!("note: the C API test links with Linux library names; skipped on this OS");
        return;
    }
    let Some(cc) = c_compiler() else {
        println!("note: no C compiler (`cc` or $CC) found; skipping the C API test");
        return;
    };
    let (lib, native) = match std::env::var("NANOC_C_API_LIB") {
        Ok(lib) => (PathBuf::from(lib), std::env::var("NANOC_C_API_LIBS").unwrap_or_else(|_| "-lc".to_string())),
        Err(_) => {
            let lib = staticlib().expect(
                "no libnanoc_runtime-*.a beside the test binary: cargo builds the runtime's staticlib crate type \
                 for this test's dependency on nanoc-runtime",
            );
            (lib, STD_NATIVE_LIBS.to_string())
        }
    };
    assert!(lib.exists(), "{} not found", lib.display());
    println!("linking {}", lib.display());

    let dir = temp_path("c_api");
    std::fs::create_dir_all(&dir).unwrap();
    write_case(&dir);

    let exe = dir.join("run_bundle");
    let out = Command::new(&cc)
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-D_POSIX_C_SOURCE=200809L", "-D_ISOC11_SOURCE"])
        .arg("-I")
        .arg(repo().join("runtime/include"))
        .arg(repo().join("tests/c/run_bundle.c"))
        .arg(&lib)
        .args(native.split_whitespace())
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cc} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let run = Command::new(&exe).arg(&dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    println!("{stdout}");
    assert!(run.status.success(), "run_bundle failed:\n{stdout}{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("input 0: "), "{stdout}");
    assert!(stdout.contains("corrupt bundle: status 3: ") && stdout.contains("checksum mismatch"), "{stdout}");
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");

    // README's "Embed in C" example, built the same way, on the same bundle.
    let embed = dir.join("embed");
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg("-I")
        .arg(repo().join("runtime/include"))
        .arg(repo().join("runtime/examples/embed.c"))
        .arg(&lib)
        .args(native.split_whitespace())
        .arg("-o")
        .arg(&embed)
        .output()
        .unwrap();
    assert!(out.status.success(), "{cc} failed on embed.c:\n{}", String::from_utf8_lossy(&out.stderr));
    let run = Command::new(&embed).arg(dir.join("model.nanob")).output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    println!("{stdout}");
    assert!(run.status.success(), "embed failed:\n{stdout}{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("input 0: ") && stdout.contains("output 0: ") && stdout.contains("arena "), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn header_compiles_as_cpp_too() {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".to_string());
    if Command::new(&cxx).arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        println!("note: no C++ compiler (`c++` or $CXX) found; skipping");
        return;
    }
    let dir = temp_path("c_api_cpp");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("use_header.cpp");
    let code = r#"#include "nanoc_runtime.h"
int main() {
    nanoc_model *m = nullptr;
    nanoc_tensor_info info{};
    int st = nanoc_model_load_file("m.nanob", &m);
    if (st == NANOC_OK && nanoc_model_input_info(m, 0, &info) == NANOC_OK) st = (int)info.rank;
    nanoc_model_free(m);
    return st + (nanoc_last_error(nullptr)[0] != 0);
}
"#;
    std::fs::write(&src, code).unwrap();
    let out = Command::new(&cxx)
        .args(["-std=c++11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-I"])
        .arg(repo().join("runtime/include"))
        .arg(&src)
        .output()
        .unwrap();
    assert!(out.status.success(), "{cxx} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}
