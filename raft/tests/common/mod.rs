//! Scratch directories for the tests that run on real files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh directory under Cargo's scratch directory for integration tests (`target/tmp`, on
/// the build's filesystem, which accepts `O_DIRECT` on CI), removed when dropped.
pub struct ScratchDir {
    path: PathBuf,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl ScratchDir {
    pub fn new(name: &str) -> ScratchDir {
        let index = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "ballast-raft-{name}-{}-{index}",
            std::process::id()
        ));
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

/// Small segments and buffers: the tests roll segments and stay fast on disk.
pub fn config_small() -> ballast_log::Config {
    ballast_log::Config {
        sector_size_bytes: 4096,
        block_size_bytes: 16 * 1024,
        segment_size_bytes: 256 * 1024,
        write_buffer_size_bytes: 64 * 1024,
        write_buffer_count: 4,
        window_size_bytes: 1024 * 1024,
        record_size_bytes_max: 64 * 1024,
        segment_count_max: 64,
        read_buffer_size_bytes: 128 * 1024,
        ..ballast_log::Config::default()
    }
}

/// Options sized for [`config_small`].
pub fn direct_small() -> ballast_log::storage::DirectOptions {
    ballast_log::storage::DirectOptions {
        read_ahead_size_bytes: 128 * 1024,
        fill_ahead_size_bytes: 64 * 1024,
        segment_count_max: 64,
        ..ballast_log::storage::DirectOptions::default()
    }
}
