//! Replays the committed fuzz corpus and every fuzz regression on stable, through the same
//! checks the cargo-fuzz targets run (`fuzz/src/checks.rs`), so CI covers them without a
//! nightly toolchain.
//!
//! Each file under `fuzz/corpus/<target>/` and `tests/fuzz_regressions/<target>/` is turned
//! into the target's input with `arbitrary::Unstructured`, exactly as the fuzz target does.

#[allow(dead_code)]
#[path = "../fuzz/src/checks.rs"]
mod checks;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The files of one directory, sorted; notes (`*.md`) and hidden files are not inputs.
fn inputs(directory: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .filter(|path| {
            let name = path
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or("");
            !name.starts_with('.') && !name.ends_with(".md")
        })
        .collect();
    files.sort();
    files
}

/// Runs `check` on every input of `target`; fails naming every file that panicked.
fn replay(target: &str, check: fn(&[u8]), corpus_required: bool) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = inputs(&root.join("fuzz/corpus").join(target));
    let regressions = inputs(&root.join("tests/fuzz_regressions").join(target));
    assert!(
        !corpus_required || !corpus.is_empty(),
        "no corpus for `{target}` under fuzz/corpus/{target}"
    );
    let mut failures = Vec::new();
    for path in corpus.iter().chain(&regressions) {
        let data = std::fs::read(path).expect("read input");
        if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failures.push(path.display().to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "`{target}` fails on {} of {} inputs (the panic messages are above):\n{}",
        failures.len(),
        corpus.len() + regressions.len(),
        failures.join("\n")
    );
}

#[test]
fn recover_corpus_and_regressions() {
    replay("recover", checks::recover, true);
}

#[test]
fn ops_corpus_and_regressions() {
    replay("ops", checks::ops, true);
}

#[test]
fn codec_corpus_and_regressions() {
    replay("codec", checks::codec, true);
}

/// `BALLAST_FUZZ_REPLAY=<target>:<path>` prints the input one file decodes to and replays it
/// without `catch_unwind`, with its panic message and backtrace: for diagnosing a crash file
/// (`cargo test --test fuzz_replay one_file -- --nocapture`).
#[test]
fn one_file_from_the_environment() {
    let Ok(spec) = std::env::var("BALLAST_FUZZ_REPLAY") else {
        return;
    };
    let (target, path) = spec
        .split_once(':')
        .expect("BALLAST_FUZZ_REPLAY=<target>:<path>");
    let data = std::fs::read(path).expect("read the file");
    match target {
        "recover" => {
            println!("{:#?}", checks::input::<checks::RecoverInput>(&data));
            checks::recover(&data);
        }
        "ops" => {
            println!("{:#?}", checks::input::<checks::OpsInput>(&data));
            checks::ops(&data);
        }
        "codec" => {
            println!("{:#?}", checks::input::<checks::CodecInput>(&data));
            checks::codec(&data);
        }
        _ => panic!("unknown target `{target}`"),
    }
}
