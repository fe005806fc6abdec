//! The replicated log end to end (`examples/cluster.rs`): three nodes on Ballast logs on real
//! files; the leader is killed after acknowledged writes, a new leader takes more, the old
//! leader restarts from its files, and every acknowledged write is on every node, byte for
//! byte. Every wait has a deadline and follows the cluster's own progress.

mod common;

use ballast_openraft::cluster::scenario::{self, ScenarioOptions};
use common::ScratchDir;
use std::time::Duration;

#[test]
fn acknowledged_writes_survive_a_leader_kill_and_restart() {
    let dir = ScratchDir::new("failover");
    let options = ScenarioOptions {
        writes_per_phase: 60,
        record_size_bytes_max: 2048,
        wait_timeout: Duration::from_secs(60),
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let report = runtime
        .block_on(scenario::run(dir.path(), &options))
        .expect("the scenario runs");
    assert_eq!(report.writes_acknowledged, 2 * options.writes_per_phase);
    assert_ne!(report.leader_killed, report.leader_new);
    assert_eq!(report.nodes_checked, vec![1, 2, 3]);
    // The old leader held the first phase's writes when it came back from its files.
    assert!(report.restarted_last_index >= Some(options.writes_per_phase));
}
