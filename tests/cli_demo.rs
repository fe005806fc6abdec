//! `ballast demo` appends, crashes, recovers and verifies, and says so.
#![cfg(feature = "cli")]

mod wait_common;

use std::process::Command;

#[test]
fn demo_verifies_records_after_a_crash() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ballast"));
    command
        .args(["demo", "--records", "20000"])
        .env_remove("RUST_LOG");
    let output =
        wait_common::output(&mut command, b"", "ballast demo").expect("run the ballast binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "ballast demo failed with {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("verified"),
        "no verification line in the output:\n{stdout}"
    );
}
