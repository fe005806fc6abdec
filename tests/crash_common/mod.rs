//! The crash-state explorer for disk mode (`tests/crash_explorer.rs`): workloads run on
//! `DirectStorage` with the file-system trace on, a persistence model replays each trace to
//! compute what a power cut could leave on disk after every event, and a checker opens each
//! such state and holds the log to its promises. `docs/crash-consistency.md` describes it.
#![allow(dead_code)]

pub mod check;
pub mod explore;
pub mod model;
pub mod plan;
pub mod states;
pub mod trace_file;
pub mod workloads;

/// A small seeded generator (SplitMix64): any seed, zero included, gives a good stream.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    pub fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// A number below `bound` (which must not be zero).
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0);
        self.next() % bound
    }
}

/// A strong 64-bit mixer (SplitMix64's finalizer): derives independent seeds from several
/// numbers.
pub fn mix(value: u64) -> u64 {
    let mut z = value;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed derived from a list of numbers, each mixed in turn.
pub fn seed_of(parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(0x5EED_u64, |seed, &part| mix(seed ^ mix(part)))
}

/// The largest record a workload appends: records up to this size span blocks (16 KiB) but
/// always fit a segment (64 KiB).
pub const RECORD_SIZE_BYTES_MAX: usize = 8000;

/// The record a workload appends for `key` in content generation `tag`: contents and size
/// follow from `(seed, tag, key)` alone, so the checker regenerates any record instead of
/// keeping a copy. The first bytes spell the key and the tag, so a wrong record is easy to
/// name in a failure.
pub fn record(seed: u64, tag: u32, key: u64, out: &mut Vec<u8>) {
    let mut rng = Rng::new(seed_of(&[seed, u64::from(tag), key]));
    // Mostly small records, some that fill a good part of a block, a few that span blocks.
    let size_bytes = match rng.below(10) {
        0..=6 => 16 + rng.below(400),
        7 | 8 => 416 + rng.below(2600),
        _ => 3016 + rng.below(RECORD_SIZE_BYTES_MAX as u64 - 3016),
    } as usize;
    out.clear();
    out.extend_from_slice(&key.to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    while out.len() < size_bytes {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(size_bytes);
}
