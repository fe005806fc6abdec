//! Every limit of a log, named with its unit, in one place.
//!
//! A `Config` is checked by [`Config::validate`] before anything is allocated. The sizes that
//! shape the files on disk (sector, block and segment size) are also recorded in the log's
//! metadata when it is formatted, and a later `open` with different values is refused with
//! [`Error::ConfigMismatch`](crate::Error::ConfigMismatch).

use crate::format::{self, BLOCK_HEADER_SIZE_BYTES, FRAME_HEADER_SIZE_BYTES};

/// Smallest sector size accepted (the classic disk sector).
pub const SECTOR_SIZE_BYTES_MIN: u32 = 512;
/// Largest sector size accepted.
pub const SECTOR_SIZE_BYTES_MAX: u32 = 64 * 1024;
/// Largest block: fragments carry a 30-bit length, and one block is read whole.
pub const BLOCK_SIZE_BYTES_MAX: u32 = 16 * 1024 * 1024;
/// Largest segment: block offsets inside a segment are stored as `u32`.
pub const SEGMENT_SIZE_BYTES_MAX: u64 = 1 << 31;
/// The largest sector cache (`Config::cache_size_bytes`): 1 TiB.
pub const CACHE_SIZE_BYTES_MAX: u64 = 1 << 40;
/// Largest record: records are read into one buffer allocated at open.
pub const RECORD_SIZE_BYTES_MAX: u32 = 256 * 1024 * 1024;
/// Most write buffers (writes in flight at once).
pub const WRITE_BUFFER_COUNT_MAX: u32 = 64;
/// Most segments a log may track; bounds the segment table and its index.
pub const SEGMENT_COUNT_MAX: u32 = 1 << 16;
/// How long a log stays idle, by default, before it attests its last flush: one second.
pub const ATTEST_IDLE_NS_DEFAULT: u64 = 1_000_000_000;

/// What recovery may drop when it finds a block that is not valid.
///
/// Compare RocksDB's `WALRecoveryMode` and raft-engine's `RecoveryMode`; `docs/recovery.md`
/// shows the decision table behind both modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecoveryMode {
    /// Drops only a torn tail: blocks that no later valid block attests as acknowledged.
    /// A damaged block below a durable watermark that a later valid block attests is reported
    /// as [`Error::Corruption`](crate::Error::Corruption) and nothing is changed on disk.
    /// Like RocksDB's `kTolerateCorruptedTailRecords` and raft-engine's
    /// `TolerateTailCorruption`, but it also reports damage to acknowledged data. The default.
    Strict,
    /// Keeps the longest valid prefix, whatever follows it. May drop acknowledged records
    /// after a damaged block; the loss is reported in
    /// [`RecoveryReport::lsn_lost`](crate::RecoveryReport) and as a `tracing` warning.
    /// Like RocksDB's `kPointInTimeRecovery`.
    PointInTime,
}

/// The limits of one log. Build it with [`Config::default`] and change fields as needed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The device's unit of atomic, aligned IO. Every buffer, offset and length passed to
    /// storage is a multiple of it. Power of two.
    pub sector_size_bytes: u32,
    /// Largest block, the unit that carries a checksummed header. A flush may seal a block
    /// early, at any sector boundary. A multiple of `sector_size_bytes`.
    pub block_size_bytes: u32,
    /// Size of every segment file, preallocated. A multiple of `block_size_bytes`.
    pub segment_size_bytes: u64,
    /// Size of one write buffer (one write in flight). A multiple of `block_size_bytes`.
    pub write_buffer_size_bytes: u32,
    /// How many write buffers exist, so how many writes may be in flight at once.
    pub write_buffer_count: u32,
    /// The most bytes the log keeps written and not yet durable. Before a write would take it
    /// past this, the log waits for its writes and syncs them (during bulk appends, one sync
    /// per window; a flush syncs anyway). This bounds what a crash can cut, and recovery
    /// relies on it: a valid block a window past a damaged one proves that the damaged one
    /// had been synced, so the damage is corruption, not a torn write (`docs/recovery.md`).
    /// At least `write_buffer_count * write_buffer_size_bytes`.
    pub window_size_bytes: u64,
    /// Largest record accepted by `append`. A record never spans segments, so it must fit in
    /// one empty segment together with its framing.
    pub record_size_bytes_max: u32,
    /// Most segments the log holds at once; `truncate_prefix` frees them.
    pub segment_count_max: u32,
    /// Size of the buffer that reads and cursors load from storage. At least one block.
    pub read_buffer_size_bytes: u32,
    /// Flush by itself once this many bytes were appended since the last flush.
    pub flush_size_bytes: Option<u64>,
    /// Flush by itself (on the next `append` or `tick`) once the oldest unflushed record is
    /// this old, on the storage's clock.
    pub flush_timeout_ns: Option<u64>,
    /// Attest an idle log: once every record is durable and nothing new was made durable for
    /// this long (storage clock), the next [`tick`](crate::Log::tick) writes an attestation
    /// (one sector and one sync), after which damage to any durable record is reported by
    /// recovery rather than read as a torn tail. `None` leaves the last flush of an idle log
    /// unattested until the next flush or `close`. [`SharedLog`](crate::SharedLog) ticks by
    /// itself; a [`Log`](crate::Log) used directly must be ticked when idle.
    pub attest_idle_ns: Option<u64>,
    /// What recovery may drop.
    pub recovery_mode: RecoveryMode,
    /// Keep a sector table: for every sector written, its CRC32C and the first frame that
    /// starts in it (12 bytes per sector of capacity, 0.3% of it with 4 KiB sectors: 48 MiB
    /// for the default 256 segments of 64 MiB). A point read then loads and checks only the
    /// sectors of its record, about one 4 KiB read for a small one, instead of a whole block.
    /// Off, point reads load whole blocks.
    pub sector_table: bool,
    /// Bytes of the sector cache: sectors that point reads loaded and checked, kept under
    /// CLOCK so that warm point reads copy from memory (whole sectors; 0 disables it). Only
    /// point reads through the sector table use it; scans and cursors read through the read
    /// buffer.
    pub cache_size_bytes: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            sector_size_bytes: 4096,
            block_size_bytes: 64 * 1024,
            segment_size_bytes: 64 * 1024 * 1024,
            write_buffer_size_bytes: 1024 * 1024,
            write_buffer_count: 4,
            window_size_bytes: 16 * 1024 * 1024,
            record_size_bytes_max: 1024 * 1024,
            segment_count_max: 256,
            read_buffer_size_bytes: 1024 * 1024,
            flush_size_bytes: None,
            flush_timeout_ns: None,
            attest_idle_ns: Some(ATTEST_IDLE_NS_DEFAULT),
            recovery_mode: RecoveryMode::Strict,
            sector_table: true,
            cache_size_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Which `Config` field is wrong, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The offending field, spelled as in `Config`.
    pub field: &'static str,
    /// Why its value is refused.
    pub reason: &'static str,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "config field `{}`: {}", self.field, self.reason)
    }
}

fn check(ok: bool, field: &'static str, reason: &'static str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError { field, reason })
    }
}

impl Config {
    /// Checks every limit and how the limits relate; names the first field that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_sizes()?;
        self.validate_buffers()?;
        self.validate_policies()
    }

    fn validate_sizes(&self) -> Result<(), ConfigError> {
        let sector = self.sector_size_bytes;
        check(
            sector.is_power_of_two(),
            "sector_size_bytes",
            "must be a power of two",
        )?;
        check(
            (SECTOR_SIZE_BYTES_MIN..=SECTOR_SIZE_BYTES_MAX).contains(&sector),
            "sector_size_bytes",
            "must be between 512 and 65536",
        )?;
        check(
            self.block_size_bytes % sector == 0 && self.block_size_bytes >= sector,
            "block_size_bytes",
            "must be a non-zero multiple of sector_size_bytes",
        )?;
        check(
            self.block_size_bytes <= BLOCK_SIZE_BYTES_MAX,
            "block_size_bytes",
            "must be at most 16 MiB",
        )?;
        check(
            sector as usize > BLOCK_HEADER_SIZE_BYTES + FRAME_HEADER_SIZE_BYTES,
            "sector_size_bytes",
            "must hold a block header and a frame",
        )?;
        let block = u64::from(self.block_size_bytes);
        check(
            self.segment_size_bytes % block == 0 && self.segment_size_bytes >= block,
            "segment_size_bytes",
            "must be a non-zero multiple of block_size_bytes",
        )?;
        check(
            self.segment_size_bytes <= SEGMENT_SIZE_BYTES_MAX,
            "segment_size_bytes",
            "must be at most 2 GiB",
        )?;
        check(
            self.record_size_bytes_max <= RECORD_SIZE_BYTES_MAX,
            "record_size_bytes_max",
            "must be at most 256 MiB",
        )?;
        let limit = format::record_size_bytes_limit(
            self.segment_size_bytes,
            self.block_size_bytes,
            self.sector_size_bytes,
        );
        check(
            limit >= u64::from(self.record_size_bytes_max.max(1)),
            "record_size_bytes_max",
            "must fit, with its framing, in one segment after its first sector",
        )
    }

    fn validate_buffers(&self) -> Result<(), ConfigError> {
        check(
            self.write_buffer_size_bytes % self.block_size_bytes == 0
                && self.write_buffer_size_bytes >= self.block_size_bytes,
            "write_buffer_size_bytes",
            "must be a non-zero multiple of block_size_bytes",
        )?;
        check(
            u64::from(self.write_buffer_size_bytes) <= self.segment_size_bytes,
            "write_buffer_size_bytes",
            "must be at most segment_size_bytes",
        )?;
        check(
            (1..=WRITE_BUFFER_COUNT_MAX).contains(&self.write_buffer_count),
            "write_buffer_count",
            "must be between 1 and 64",
        )?;
        let buffers_bytes =
            u64::from(self.write_buffer_count) * u64::from(self.write_buffer_size_bytes);
        check(
            self.window_size_bytes >= buffers_bytes,
            "window_size_bytes",
            "must be at least write_buffer_count * write_buffer_size_bytes",
        )?;
        check(
            (2..=SEGMENT_COUNT_MAX).contains(&self.segment_count_max),
            "segment_count_max",
            "must be between 2 and 65536",
        )?;
        check(
            self.read_buffer_size_bytes % self.sector_size_bytes == 0
                && self.read_buffer_size_bytes >= self.block_size_bytes,
            "read_buffer_size_bytes",
            "must be a multiple of sector_size_bytes and at least block_size_bytes",
        )?;
        check(
            self.cache_size_bytes <= CACHE_SIZE_BYTES_MAX,
            "cache_size_bytes",
            "must be at most 1 TiB",
        )
    }

    fn validate_policies(&self) -> Result<(), ConfigError> {
        check(
            self.flush_size_bytes != Some(0),
            "flush_size_bytes",
            "must be positive when set",
        )?;
        check(
            self.flush_timeout_ns != Some(0),
            "flush_timeout_ns",
            "must be positive when set",
        )?;
        check(
            self.attest_idle_ns != Some(0),
            "attest_idle_ns",
            "must be positive when set",
        )
    }

    /// Index slots per segment: one per `block_size_bytes` of segment.
    pub(crate) fn index_slots_per_segment(&self) -> usize {
        (self.segment_size_bytes / u64::from(self.block_size_bytes)) as usize
    }

    /// Sector table entries per segment (0 when the table is off).
    pub(crate) fn sectors_per_segment(&self) -> usize {
        match self.sector_table {
            true => (self.segment_size_bytes / u64::from(self.sector_size_bytes)) as usize,
            false => 0,
        }
    }

    /// Bytes this configuration allocates when a log opens (buffers, segment table, index,
    /// sector table), excluding the storage backend. Peak memory of the core is set by this
    /// figure.
    pub fn memory_size_bytes(&self) -> u64 {
        let write = u64::from(self.write_buffer_size_bytes) * u64::from(self.write_buffer_count);
        // The read buffer and its spare, into which a scan loads the next step.
        let read = 2 * u64::from(self.read_buffer_size_bytes);
        let record = u64::from(self.record_size_bytes_max);
        let index = u64::from(self.segment_count_max)
            * self.index_slots_per_segment() as u64
            * std::mem::size_of::<crate::log::IndexEntry>() as u64;
        let sectors = u64::from(self.segment_count_max)
            * self.sectors_per_segment() as u64
            * std::mem::size_of::<crate::sectors::SectorEntry>() as u64;
        write + read + record + index + sectors + self.cache_memory_size_bytes()
    }

    /// The sector cache's frames, its keys and counts, and its lookup table (twice as many
    /// buckets as frames, rounded up to a power of two).
    fn cache_memory_size_bytes(&self) -> u64 {
        let frames = self.cache_size_bytes / u64::from(self.sector_size_bytes);
        let buckets = match frames {
            0 => 0,
            frames => (2 * frames).next_power_of_two(),
        };
        frames * (u64::from(self.sector_size_bytes) + 16 + 1) + buckets * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn each_bad_field_is_named() {
        type Mutation = fn(&mut Config);
        let cases: [(Mutation, &str); 10] = [
            (|c| c.sector_size_bytes = 4000, "sector_size_bytes"),
            (|c| c.block_size_bytes = 5000, "block_size_bytes"),
            (|c| c.segment_size_bytes = 100_000, "segment_size_bytes"),
            (
                |c| c.write_buffer_size_bytes = 1000,
                "write_buffer_size_bytes",
            ),
            (|c| c.write_buffer_count = 0, "write_buffer_count"),
            (|c| c.segment_count_max = 1, "segment_count_max"),
            (
                |c| c.read_buffer_size_bytes = 4096,
                "read_buffer_size_bytes",
            ),
            (|c| c.flush_size_bytes = Some(0), "flush_size_bytes"),
            (
                |c| c.record_size_bytes_max = 64 << 20,
                "record_size_bytes_max",
            ),
            (|c| c.cache_size_bytes = 2 << 40, "cache_size_bytes"),
        ];
        for (mutate, field) in cases {
            let mut config = Config::default();
            mutate(&mut config);
            let error = config.validate().unwrap_err();
            assert_eq!(error.field, field, "{error}");
        }
    }

    /// A segment of one sector holds a suffix truncation's block and nothing else: a record
    /// would never fit after it (found by the `ops` fuzz target, which then rolled into a
    /// segment of the same name).
    #[test]
    fn a_record_fits_after_a_truncation_block() {
        let tiny = Config {
            sector_size_bytes: 512,
            block_size_bytes: 512,
            segment_size_bytes: 512,
            write_buffer_size_bytes: 512,
            write_buffer_count: 1,
            window_size_bytes: 512,
            record_size_bytes_max: 0,
            read_buffer_size_bytes: 512,
            ..Config::default()
        };
        let error = tiny.validate().unwrap_err();
        assert_eq!(error.field, "record_size_bytes_max", "{error}");
        let two_sectors = Config {
            segment_size_bytes: 1024,
            ..tiny
        };
        assert_eq!(two_sectors.validate(), Ok(()));
    }
}
