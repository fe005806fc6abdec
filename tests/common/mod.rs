//! Helpers shared by the integration tests: small configurations and deterministic records.
#![allow(dead_code)]

use ballast_log::storage::MemStorage;
use ballast_log::{Config, Log, Lsn};

/// A small PRNG (splitmix64), so tests need no extra crate and stay reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0);
        self.next_u64() % bound
    }
}

/// A configuration with 4 KiB sectors and small segments, so that tests roll often.
pub fn config_small() -> Config {
    Config {
        sector_size_bytes: 4096,
        block_size_bytes: 8192,
        segment_size_bytes: 256 * 1024,
        write_buffer_size_bytes: 16 * 1024,
        write_buffer_count: 3,
        record_size_bytes_max: 20_000,
        segment_count_max: 64,
        read_buffer_size_bytes: 32 * 1024,
        ..Config::default()
    }
}

/// A configuration with 512-byte sectors and tiny segments, for exhaustive tests.
pub fn config_tiny() -> Config {
    Config {
        sector_size_bytes: 512,
        block_size_bytes: 1024,
        segment_size_bytes: 4096,
        write_buffer_size_bytes: 1024,
        write_buffer_count: 2,
        record_size_bytes_max: 1500,
        segment_count_max: 16,
        read_buffer_size_bytes: 1024,
        ..Config::default()
    }
}

/// The bytes of record `lsn` in a test run: a size drawn from `(seed, lsn)` up to `size_max`,
/// and content that names the LSN, so that a misplaced record is caught.
pub fn record(seed: u64, lsn: Lsn, size_max: usize, out: &mut Vec<u8>) {
    let mut rng = Rng(seed ^ lsn.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let size = match rng.below(10) {
        0 => 0,
        1 => size_max,
        2..=5 => rng.below(64) as usize,
        _ => rng.below(size_max as u64 + 1) as usize,
    }
    .min(size_max);
    out.clear();
    let salt = rng.next_u64() as u8 | 1;
    out.extend((0..size).map(|index| (index as u8).wrapping_mul(salt) ^ (lsn as u8)));
    let prefix = size.min(8);
    out[..prefix].copy_from_slice(&lsn.to_le_bytes()[..prefix]);
}

/// Opens a new log on fresh `MemStorage`.
pub fn log_new(config: &Config) -> Log<MemStorage> {
    Log::open(config.clone(), MemStorage::new(config.sector_size_bytes)).expect("open new log")
}

/// Checks that records `lsns` read back, by LSN, exactly as `record(seed, ..)` made them.
pub fn check_by_lsn(
    log: &mut Log<MemStorage>,
    seed: u64,
    lsns: std::ops::Range<Lsn>,
    size_max: usize,
) {
    let mut expected = Vec::new();
    let mut buffer = vec![0u8; size_max];
    for lsn in lsns {
        record(seed, lsn, size_max, &mut expected);
        let size = log
            .read(lsn, &mut buffer)
            .unwrap_or_else(|error| panic!("read {lsn}: {error}"));
        assert_eq!(&buffer[..size], &expected[..], "record {lsn} differs");
    }
}

/// Checks that a cursor from `from` yields exactly the durable records, in order.
pub fn check_by_cursor(log: &mut Log<MemStorage>, seed: u64, from: Lsn, size_max: usize) -> u64 {
    let mut expected = Vec::new();
    let mut cursor = log.cursor(from).expect("cursor");
    let mut lsn_expected = from;
    while let Some(record_read) = log.cursor_next(&mut cursor).expect("cursor_next") {
        assert_eq!(record_read.lsn, lsn_expected);
        record(seed, record_read.lsn, size_max, &mut expected);
        assert_eq!(
            record_read.data,
            &expected[..],
            "record {} differs",
            record_read.lsn
        );
        lsn_expected += 1;
    }
    assert_eq!(
        lsn_expected,
        log.durable_lsn(),
        "cursor stopped before the durable end"
    );
    lsn_expected - from
}
