//! Replays the fuzz corpus checked in under `fuzz/corpus/<target>/` through the checks the fuzz
//! targets run, so that every input the fuzzer found interesting (the inputs of past findings
//! among them) is checked by the ordinary `cargo test`, without nightly or libFuzzer.

use std::path::{Path, PathBuf};

/// Runs `check` on every file of `fuzz/corpus/<target>`, naming the file that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no corpus", dir.display());
    for path in &files {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(panic) = std::panic::catch_unwind(|| check(&data)) {
            eprintln!("corpus file {} fails", path.display());
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn loss_corpus_passes() {
    replay("loss", rnnt_fuzz::check_loss);
}

#[test]
fn align_corpus_passes() {
    replay("align", rnnt_fuzz::check_align);
}

#[test]
fn npz_corpus_passes() {
    replay("npz", rnnt_fuzz::check_npz);
}
