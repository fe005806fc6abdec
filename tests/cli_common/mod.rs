//! Running the `ballast` command in tests: to its end, with a deadline, on a log directory.
#![allow(dead_code)]

use super::wait_common;
use std::path::Path;
use std::process::{Command, Output};

/// Runs `ballast ARGS --dir DIR` to its end (or the deadline) with `stdin` as its input.
pub fn ballast(args: &[&str], dir: &Path, stdin: &[u8]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ballast"));
    command
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env_remove("RUST_LOG");
    wait_common::output(&mut command, stdin, &format!("ballast {}", args.join(" ")))
        .expect("run ballast")
}

/// The stdout of a run that must have succeeded; fails the test with both outputs otherwise.
#[track_caller]
pub fn success(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "ballast failed with {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The stderr of a run that must have failed.
#[track_caller]
pub fn failure(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "ballast succeeded:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}
