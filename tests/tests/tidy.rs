//! Workspace hygiene, checked under `cargo test`: formatting, no leftover
//! `todo!`/`unimplemented!`/`dbg!`, and size budgets for tracked files.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tracked_files() -> Vec<PathBuf> {
    let out = Command::new("git").args(["ls-files", "-z"]).current_dir(repo()).output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .split('\0')
            .filter(|s| !s.is_empty())
            .map(|s| repo().join(s))
            .filter(|p| p.exists())
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn code_is_formatted() {
    let out = Command::new(env!("CARGO")).args(["fmt", "--all", "--check"]).current_dir(repo()).output().unwrap();
    assert!(out.status.success(), "run `cargo fmt --all`:\n{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn no_placeholders_in_rust_sources() {
    let banned = [concat!("todo", "!("), concat!("unimplemented", "!("), concat!("dbg", "!(")];
    for f in tracked_files().iter().filter(|p| p.extension().is_some_and(|e| e == "rs")) {
        let text = std::fs::read_to_string(f).unwrap();
        for b in banned {
            assert!(!text.contains(b), "{} contains {b}", f.display());
        }
    }
}

#[test]
fn files_stay_within_budget() {
    for f in tracked_files() {
        let len = std::fs::metadata(&f).unwrap().len();
        assert!(len <= 5 << 20, "{} is {len} bytes; keep tracked files under 5 MB", f.display());
    }
}
