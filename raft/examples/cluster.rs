//! A replicated log you can run: three openraft nodes in one process, each with its own
//! Ballast log on real files, an in-process network between them.
//!
//! It writes records through the leader, kills the leader (drops its Raft and its log without
//! closing them), waits for a new leader, writes more, restarts the old leader from its
//! files, and checks that every acknowledged write is on every node, byte for byte, in the
//! log store and in the state machine.
//!
//! ```sh
//! cargo run --release -p ballast-openraft --example cluster
//! cargo run --release -p ballast-openraft --example cluster -- --dir /var/tmp/raft --writes 1000
//! ```

use ballast_openraft::cluster::scenario::{self, ScenarioOptions};
use std::path::PathBuf;
use std::process::ExitCode;

/// The command line: `--dir DIR` (default: a fresh directory under the system's temporary
/// directory, removed at the end) and `--writes N` (writes before the kill, and again after).
fn arguments() -> Result<(Option<PathBuf>, ScenarioOptions), String> {
    let mut options = ScenarioOptions::default();
    let mut dir = None;
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        let mut value = || arguments.next().ok_or(format!("{argument} needs a value"));
        match argument.as_str() {
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--writes" => {
                let writes = value()?;
                options.writes_per_phase =
                    writes.parse().map_err(|_| format!("bad count {writes}"))?;
            }
            _ => {
                return Err(format!(
                    "unknown argument {argument}; use --dir DIR, --writes N"
                ))
            }
        }
    }
    Ok((dir, options))
}

fn main() -> ExitCode {
    let (dir, options) = match arguments() {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let scratch = dir.is_none();
    let dir = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("ballast-raft-cluster-{}", std::process::id()))
    });
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let report = runtime.block_on(scenario::run(&dir, &options));
    if scratch {
        let _ = std::fs::remove_dir_all(&dir);
    }
    match report {
        Ok(report) => {
            println!(
                "leader {} killed, node {} elected; old leader restarted from its files at index {:?}",
                report.leader_killed, report.leader_new, report.restarted_last_index
            );
            println!(
                "{} acknowledged writes on every node {:?}, byte for byte, in {:.2?}",
                report.writes_acknowledged, report.nodes_checked, report.elapsed
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("cluster failed: {error}");
            ExitCode::FAILURE
        }
    }
}
