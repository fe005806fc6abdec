//! Helpers for the tests that run on real files: scratch directories on a filesystem that
//! accepts `O_DIRECT`, and a configuration sized for them.
#![allow(dead_code)]

use ballast_log::Config;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh directory under Cargo's scratch directory for integration tests
/// (`target/tmp`, on the same filesystem as the build, which accepts `O_DIRECT` on CI),
/// removed when dropped.
pub struct ScratchDir {
    path: PathBuf,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl ScratchDir {
    pub fn new(name: &str) -> ScratchDir {
        let index = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("ballast-{name}-{}-{index}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a scratch directory");
        ScratchDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Small segments and buffers, so that tests roll segments often and stay fast on disk.
pub fn config_disk() -> Config {
    Config {
        sector_size_bytes: 4096,
        block_size_bytes: 16 * 1024,
        segment_size_bytes: 1024 * 1024,
        write_buffer_size_bytes: 64 * 1024,
        write_buffer_count: 4,
        record_size_bytes_max: 64 * 1024,
        segment_count_max: 64,
        read_buffer_size_bytes: 128 * 1024,
        ..Config::default()
    }
}

/// The record at `lsn` for a given seed: its contents and size follow from both, so a test
/// can check any record without keeping a copy.
pub fn record(seed: u64, lsn: u64, out: &mut Vec<u8>) {
    let mut state = seed ^ lsn.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let size = (next() % 3000) as usize;
    out.clear();
    out.extend_from_slice(&lsn.to_le_bytes());
    while out.len() < size.max(8) {
        out.extend_from_slice(&next().to_le_bytes());
    }
    out.truncate(size.max(8));
}

/// A small deterministic generator (xorshift64*): the tests need no crate for it.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}
