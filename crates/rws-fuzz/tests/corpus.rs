//! Replays the committed corpora (`fuzz/corpus/<target>/`, minimized by `cargo fuzz cmin`)
//! through the targets' bodies with the ordinary toolchain: what the fuzzer found and kept
//! stays covered on every CI run, without libFuzzer.

use std::path::PathBuf;

fn corpus(name: &str) -> Vec<PathBuf> {
    let dir = rws_fuzz::repo_root().join("fuzz/corpus").join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_target_replays_its_committed_corpus() {
    for (name, body) in rws_fuzz::TARGETS {
        let files = corpus(name);
        // A target whose corpus went missing would pass on nothing.
        assert!(files.len() >= 3, "{name}: {} corpus files", files.len());
        for f in &files {
            let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            // A panic names the file: `cargo fuzz run <name> <file>` reproduces it.
            eprintln!("{name}: {}", f.display());
            body(&data);
        }
    }
}

#[test]
fn every_fuzz_binary_is_a_target_and_every_target_has_a_binary() {
    let dir = rws_fuzz::repo_root().join("fuzz/fuzz_targets");
    let mut bins: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| {
            let p = e.ok()?.path();
            Some(p.file_stem()?.to_str()?.to_string())
        })
        .collect();
    bins.sort();
    let mut names: Vec<String> = rws_fuzz::TARGETS.iter().map(|t| t.0.to_string()).collect();
    names.sort();
    assert_eq!(bins, names);
}
