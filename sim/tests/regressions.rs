//! Every seed that ever found a bug, in the core or in the simulator, with a note on the bug.
//! Each must pass. A change to how the swarm or the workload draws from the seed changes what
//! these seeds exercise, so a seed alone proves little once the drawing changed: the bugs
//! behind 52777, 25 and 55 are pinned as scripts in `tests/regression_scenarios.rs`, each
//! failed by a planted bug (`.ci/planted`). The seeds stay as a floor, and new finds are added
//! below.

use ballast_sim::run;

/// (seed, the bug it found).
const REGRESSIONS: &[(u64, &str)] = &[
    (
        6,
        "core: write buffers returned on out-of-order completion overflowed the in-flight ring",
    ),
    (
        79,
        "core: the read cache kept zeros loaded over a write that was still in flight",
    ),
    (
        187,
        "core: a record left open at a segment's end hid the next segment; acked data dropped",
    ),
    (
        55,
        "core: a point-in-time loss was not durable and came back after a transient read fault",
    ),
    (
        25,
        "core: the same, for a torn tail decided on a bit flip (led to the seal block)",
    ),
    (
        387,
        "core: a read returned a stale block left where a misdirected write never landed",
    ),
    (
        2035,
        "core: a segment holding no record, then a seal, made the roll reuse its name",
    ),
    (
        6043,
        "core: the seal decision was taken twice and disagreed; the roll reused a name",
    ),
    (
        15,
        "simulator: truncate_prefix below the first LSN is a no-op, not an error",
    ),
    (
        19,
        "simulator: a crash in the middle of truncate_prefix may leave any prefix removed",
    ),
    (
        27,
        "simulator: a read that led to a recovery reused the read buffer it had taken",
    ),
    (
        65,
        "simulator: a misdirected seal written during open kept its damage taint",
    ),
    (
        386,
        "simulator: a read fault damages what is later written to its sector",
    ),
    (
        1691,
        "simulator: a loss decided by a failed open attempt stays allowed at the next",
    ),
    (
        2281,
        "simulator: an older record found where a write never landed is allowed past damage",
    ),
    (
        1702497,
        "core: a recovery removed a suffix truncation's segment as after the end without a \
         seal; the truncated blocks after the cut then attested records past the end",
    ),
    (
        1230515,
        "core: a seal misdirected over a block a suffix truncation had dropped left that block \
         linked to the one before; reads yielded its record until reads refused older epochs \
         where only this process wrote",
    ),
    (
        1132286,
        "simulator: an open attempt that two damage events left blind sealed a silent loss, \
         then a crash cleared one of them; the loss stays allowed at the next attempt",
    ),
    (
        1020047,
        "core: a truncation of the whole log refused for lack of space left the metadata \
         vouching for no first block, so a block of another history took its place unseen \
         (scenario in tests/truncate_suffix.rs)",
    ),
    (
        1082053,
        "core: a refused truncation of the whole log left the metadata's checkpoint lowered, \
         so damage to attested records read as a torn tail (scenario in \
         tests/truncate_suffix.rs)",
    ),
    (
        1076365,
        "core: the same, with the truncation inside the log",
    ),
    (
        52777,
        "core: an open whose read faults hid the newest epoch took it again (scenario in \
         tests/regression_scenarios.rs)",
    ),
    (
        2043197,
        "core: a point read of an empty record whose frame ended a sector loaded the next \
         one, a block still in the write buffer, and reported corruption (scenario in \
         tests/open_reads.rs)",
    ),
];

#[test]
fn regression_seeds_pass() {
    ballast_sim::panic_hook_install();
    let mut failures = Vec::new();
    for &(seed, note) in REGRESSIONS {
        let outcome = run(seed);
        if let Some(failure) = outcome.failure {
            failures.push(format!("seed {seed} ({note}): {failure}"));
        }
    }
    // The simulator's hook keeps panic messages for its reports; the default hook prints this
    // test's own failure, with every failing seed and its reason.
    drop(std::panic::take_hook());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn same_seed_same_digest() {
    for seed in [1, 2, 3, 42, 0xDEAD_BEEF] {
        let first = run(seed);
        let second = run(seed);
        assert_eq!(
            first.digest, second.digest,
            "seed {seed} is not deterministic"
        );
        assert_eq!(first.storage_operations, second.storage_operations);
    }
    assert_ne!(
        run(1).digest,
        run(2).digest,
        "different seeds, different worlds"
    );
}
