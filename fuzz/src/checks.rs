//! The checks behind Ballast's fuzz targets, and the inputs they are built from.
//!
//! This file depends only on `ballast_log`, `arbitrary` and `std`, so that two programs share
//! it: the cargo-fuzz targets in `fuzz/fuzz_targets/` (nightly, libFuzzer) and the stable
//! integration test `tests/fuzz_replay.rs`, which replays the committed corpus and every
//! regression file through exactly the same functions. Each target turns its bytes into an
//! input with [`arbitrary::Unstructured`] and `arbitrary_take_rest`, as `fuzz_target!` does for
//! a typed input, and calls one check. A check panics when the log breaks a rule; bytes that do
//! not make an input are skipped.
//!
//! - [`recover`]: a small real log, built with the library, then edited (segments renamed,
//!   resized, removed, copied, overwritten, a valid block header forged) with damaged or
//!   foreign metadata, is opened. Opening never panics; an opened log is dense, reads equal
//!   the cursor, and appending, closing and reopening keep everything. Without edits, opening
//!   must succeed and keep every acknowledged record.
//! - [`ops`]: a sequence of operations (appends, batches, flushes, reads, cursors, retention,
//!   crashes with per-sector fates, byte corruption, injected IO failures, reopens) checked
//!   against a plain model of the log.
//! - [`codec`]: block headers, frames, bodies and metadata round-trip, and decoding arbitrary
//!   bytes never panics.

use arbitrary::{Arbitrary, Unstructured};
use ballast_log::format::{
    self, BlockHeader, FragmentKind, HeaderRead, Metadata, BLOCK_HEADER_SIZE_BYTES,
    FRAGMENT_SIZE_BYTES_MAX, FRAME_HEADER_SIZE_BYTES, METADATA_SIZE_BYTES,
};
use ballast_log::storage::{AlignedBuffer, Clock, MemStorage, SectorFate, SegmentId, Storage};
use ballast_log::{Config, Cursor, Error, Log, Lsn, RecoveryMode, Verdict};

/// Most operations one `ops` input runs.
pub const OP_COUNT_MAX: usize = 64;
/// Most records in a batch.
pub const BATCH_COUNT_MAX: u8 = 4;
/// Most records in the real log a `recover` input starts from.
pub const BASE_RECORD_COUNT_MAX: u8 = 48;
/// Most edits applied to the files of a `recover` input.
pub const EDIT_COUNT_MAX: usize = 8;
/// Most segment files a `recover` input hands to `Log::open`.
pub const SEGMENT_FILE_COUNT_MAX: usize = 8;
/// Most records of a recovered log that `recover` reads back (forged blocks may hold many
/// empty records).
pub const RECOVERED_RECORD_COUNT_MAX: u64 = 4096;

const HEADER: usize = BLOCK_HEADER_SIZE_BYTES;
const FRAME: usize = FRAME_HEADER_SIZE_BYTES;

// ---------------------------------------------------------------------------------------------
// Inputs shared by the targets.
// ---------------------------------------------------------------------------------------------

/// A small valid `Config`, drawn from a few bytes: every value maps onto a valid one.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct ConfigChoice {
    /// 4096-byte sectors, else 512.
    pub sector_large: bool,
    /// Block size in sectors, minus one (modulo 4 for 512-byte sectors, 2 for 4096).
    pub block_sectors: u8,
    /// Segment size in blocks, minus one (modulo 8).
    pub segment_blocks: u8,
    /// Write buffer size in blocks, minus one (modulo 2, capped at the segment).
    pub write_buffer_blocks: u8,
    /// Write buffer count, minus one (modulo 3).
    pub write_buffer_count: u8,
    /// Largest record, modulo the smaller of a segment's capacity and three blocks, plus one.
    pub record_size: u16,
    /// Segment count limit, minus two (modulo 5).
    pub segment_count: u8,
    /// Read buffer size beyond one block, in sectors (modulo 4).
    pub read_buffer_sectors: u8,
    /// Flush-on-size limit in bytes; zero for none.
    pub flush_size_bytes: u16,
    /// Flush-on-timeout limit in microseconds; zero for none.
    pub flush_timeout_us: u8,
    /// `RecoveryMode::PointInTime`, else `Strict`.
    pub point_in_time: bool,
}

impl ConfigChoice {
    /// The configuration this choice stands for; always valid.
    pub fn config(&self) -> Config {
        let sector: u32 = if self.sector_large { 4096 } else { 512 };
        let block_sectors = if self.sector_large {
            1 + u32::from(self.block_sectors % 2)
        } else {
            1 + u32::from(self.block_sectors % 4)
        };
        let block = sector * block_sectors;
        // Two blocks at least: a suffix truncation's block takes the first sector of a segment.
        let segment = u64::from(block) * (2 + u64::from(self.segment_blocks % 7));
        let write_buffer = block * (1 + u32::from(self.write_buffer_blocks % 2));
        let write_buffer = if u64::from(write_buffer) <= segment {
            write_buffer
        } else {
            block
        };
        let capacity = format::record_size_bytes_limit(segment, block, sector);
        let record_limit = capacity.min(3 * u64::from(block));
        let record_max = u64::from(self.record_size) % (record_limit + 1);
        let write_buffer_count = 1 + u32::from(self.write_buffer_count % 3);
        let config = Config {
            sector_size_bytes: sector,
            block_size_bytes: block,
            segment_size_bytes: segment,
            write_buffer_size_bytes: write_buffer,
            write_buffer_count,
            // One to four times the buffers: the log syncs by itself when bulk appends fill it.
            window_size_bytes: u64::from(write_buffer)
                * u64::from(write_buffer_count)
                * (1 + u64::from(self.write_buffer_count / 3 % 4)),
            record_size_bytes_max: u32::try_from(record_max).expect("small record limit"),
            segment_count_max: 2 + u32::from(self.segment_count % 5),
            read_buffer_size_bytes: block + sector * u32::from(self.read_buffer_sectors % 4),
            flush_size_bytes: (self.flush_size_bytes != 0)
                .then_some(u64::from(self.flush_size_bytes)),
            flush_timeout_ns: (self.flush_timeout_us != 0)
                .then_some(u64::from(self.flush_timeout_us) * 1000),
            attest_idle_ns: None,
            recovery_mode: mode(self.point_in_time),
            // From a bit of an existing field, so that the corpus decodes as before.
            sector_table: self.segment_count & 0x80 == 0,
            cache_size_bytes: u64::from(self.read_buffer_sectors / 4 % 4) * u64::from(sector) * 2,
        };
        assert_eq!(
            config.validate(),
            Ok(()),
            "the choice maps onto a valid config"
        );
        config
    }
}

fn mode(point_in_time: bool) -> RecoveryMode {
    if point_in_time {
        RecoveryMode::PointInTime
    } else {
        RecoveryMode::Strict
    }
}

/// What a crash does to one unsynced sector.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// The write reached the disk.
    Kept,
    /// The write never reached the disk.
    Lost,
    /// The write was cut inside the sector.
    Torn {
        /// New bytes that landed (capped at the sector).
        prefix_bytes: u16,
        /// The garbage after them.
        fill: u8,
    },
}

impl Fate {
    fn sector_fate(self) -> SectorFate {
        match self {
            Fate::Kept => SectorFate::Kept,
            Fate::Lost => SectorFate::Lost,
            Fate::Torn { prefix_bytes, fill } => SectorFate::Torn {
                prefix_bytes: u32::from(prefix_bytes),
                fill,
            },
        }
    }
}

/// Crashes `storage`: unsynced sectors meet `fates` in the order the storage visits them,
/// then `rest`. Pending IO failures are disarmed, as a restarted machine would have none.
fn crash(storage: &mut MemStorage, fates: &[Fate], rest: Fate) {
    storage.fail_writes(0);
    storage.fail_syncs(0);
    let mut index = 0;
    storage.crash(|_, _| {
        let fate = fates.get(index).copied().unwrap_or(rest);
        index += 1;
        fate.sector_fate()
    });
}

/// The bytes of record `lsn`: its LSN first, so that a record returned at the wrong LSN is
/// caught, then a pattern.
pub fn record_bytes(lsn: Lsn, size_bytes: usize, salt: u8, out: &mut Vec<u8>) {
    out.clear();
    out.extend((0..size_bytes).map(|index| (index as u8).wrapping_mul(salt | 1) ^ (lsn as u8)));
    let prefix = size_bytes.min(8);
    out[..prefix].copy_from_slice(&lsn.to_le_bytes()[..prefix]);
}

/// A small PRNG (splitmix64) for record sizes drawn from one seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0);
        self.next() % bound
    }
}

/// Builds an input the way `fuzz_target!` does for a typed input: `None` if the bytes do not
/// make one.
pub fn input<'a, T: Arbitrary<'a>>(data: &'a [u8]) -> Option<T> {
    T::arbitrary_take_rest(Unstructured::new(data)).ok()
}

/// Reads every record of `log` in `range` by LSN, asserting that each read succeeds.
fn read_all(
    log: &mut Log<MemStorage>,
    range: std::ops::Range<Lsn>,
    size_max: usize,
) -> Vec<Vec<u8>> {
    let mut buffer = vec![0u8; size_max];
    let mut records = Vec::with_capacity((range.end - range.start) as usize);
    for lsn in range {
        let size = log
            .read(lsn, &mut buffer)
            .unwrap_or_else(|error| panic!("read of recovered record {lsn}: {error}"));
        records.push(buffer[..size].to_vec());
    }
    records
}

/// Asserts that a cursor from `from` yields exactly `expected` (records `from..`), densely,
/// and stops at the durable end.
fn cursor_matches(log: &mut Log<MemStorage>, from: Lsn, expected: &[Vec<u8>]) {
    let mut cursor = log.cursor(from).expect("cursor in range");
    let mut lsn = from;
    while let Some(record) = log
        .cursor_next(&mut cursor)
        .unwrap_or_else(|error| panic!("cursor at {lsn}: {error}"))
    {
        assert_eq!(record.lsn, lsn, "cursor skipped or repeated a record");
        let index = (lsn - from) as usize;
        assert!(
            index < expected.len(),
            "cursor yields record {lsn} past the end"
        );
        assert!(
            record.data == expected[index],
            "cursor record {lsn} differs from read"
        );
        lsn += 1;
    }
    assert_eq!(
        lsn,
        log.durable_lsn(),
        "cursor stopped before the durable end"
    );
}

// ---------------------------------------------------------------------------------------------
// recover
// ---------------------------------------------------------------------------------------------

/// The input of the `recover` target.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct RecoverInput {
    /// The configuration the log is made and opened with.
    pub config: ConfigChoice,
    /// The real log the files start from.
    pub base: BaseLog,
    /// The metadata handed to `Log::open`.
    pub metadata: MetadataChoice,
    /// Records appended after a successful open (modulo 4), sizes from `base.size_seed`.
    pub append_count: u8,
    /// Changes to the segment files, applied in order (at most `EDIT_COUNT_MAX`).
    pub edits: Vec<SegmentEdit>,
}

/// A real log made with the library: appends, flushes, retention, and how it ended.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct BaseLog {
    /// Records appended (modulo `BASE_RECORD_COUNT_MAX + 1`).
    pub record_count: u8,
    /// Seeds the record sizes.
    pub size_seed: u16,
    /// Varies the record bytes.
    pub salt: u8,
    /// Flush after every this many records; zero never (but the end may).
    pub flush_every: u8,
    /// How the log ended.
    pub ending: Ending,
}

/// How the real log ended.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// `close`: everything flushed.
    Close,
    /// The process died: written bytes stay, the open block in memory is gone.
    Abandon,
    /// The machine crashed: every unsynced sector meets a fate.
    Crash {
        /// Fates in the order the storage visits unsynced sectors.
        fates: Vec<Fate>,
        /// The fate of the sectors after those.
        rest: Fate,
    },
}

/// The metadata handed to `Log::open`.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum MetadataChoice {
    /// The log's own.
    Valid,
    /// None at all.
    Missing,
    /// Valid bytes with one field changed: 0 version, 1 sector, 2 block, 3 segment size.
    Field {
        /// Which field (modulo 4).
        field: u8,
        /// Its new value (truncated to the field's width).
        value: u64,
    },
    /// The log's own with one byte changed.
    Xor {
        /// Which byte (modulo the sector).
        offset: u16,
        /// How it changes.
        xor: u8,
    },
    /// Arbitrary bytes.
    Bytes(Vec<u8>),
}

/// One change to the segment files. Segments are picked by index (modulo how many there
/// are) in ascending order of their names.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum SegmentEdit {
    /// Removes a segment file.
    Remove {
        /// The segment.
        index: u8,
    },
    /// Renames a segment file.
    Rename {
        /// The segment.
        index: u8,
        /// Its new name.
        id: u64,
    },
    /// Renames a segment file to a name near its own.
    Shift {
        /// The segment.
        index: u8,
        /// Added to its name.
        delta: i16,
    },
    /// Copies a segment file under a name after its own, as a stale file would.
    Duplicate {
        /// The segment.
        index: u8,
        /// The copy is named `id + 1 + delta`.
        delta: u16,
    },
    /// Changes a segment file's size (whole sectors; may be zero).
    Resize {
        /// The segment.
        index: u8,
        /// The new size in sectors.
        sectors: u8,
    },
    /// Overwrites bytes.
    Write {
        /// The segment.
        index: u8,
        /// Where (modulo the size).
        offset: u32,
        /// What (cut at the end of the file).
        bytes: Vec<u8>,
    },
    /// Flips bits of one byte.
    Xor {
        /// The segment.
        index: u8,
        /// Where (modulo the size).
        offset: u32,
        /// Which bits.
        xor: u8,
    },
    /// Zeroes a range.
    Zero {
        /// The segment.
        index: u8,
        /// Where (modulo the size).
        offset: u32,
        /// How many bytes.
        size_bytes: u16,
    },
    /// Copies whole sectors, as a misdirected write would.
    Copy {
        /// The source segment.
        from: u8,
        /// The source sector (modulo the size).
        from_sector: u16,
        /// The target segment.
        to: u8,
        /// The target sector (modulo the size).
        to_sector: u16,
        /// How many sectors.
        sectors: u8,
    },
    /// Writes a block header with a valid checksum, so that the bytes after it are read as a
    /// body.
    Header {
        /// The segment.
        index: u8,
        /// The sector it starts at (modulo the size).
        sector: u16,
        /// Its fields.
        header: HeaderForge,
    },
}

/// The fields of a forged block header. Unset options take the values that make the header
/// fit its place and the log's chain start.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct HeaderForge {
    /// Flags (only `FLAG_CONTINUES` is valid).
    pub flags: u8,
    /// The epoch.
    pub epoch: u32,
    /// The first LSN; the segment's name if unset.
    pub lsn_first: Option<u64>,
    /// The durable watermark it attests.
    pub lsn_durable: u64,
    /// The block size in sectors (may be zero or too large).
    pub size_sectors: u8,
    /// The body size (modulo what fits, unless the size is too small for a header).
    pub body_size_bytes: u16,
    /// The fragment count.
    pub fragment_count: u16,
    /// The previous block's checksum; zero if unset.
    pub checksum_previous: Option<u32>,
    /// Whether the body checksum matches the bytes after the header.
    pub body_checksum_right: bool,
    /// Whether segment, offset and geometry name this place; else they are off by one.
    pub placed: bool,
}

/// Segment files by name, in ascending order, each with its bytes.
type Files = Vec<(SegmentId, Vec<u8>)>;

/// What the real log held when it ended.
struct Base {
    files: Files,
    /// Every record appended, by LSN from 0.
    records: Vec<Vec<u8>>,
    lsn_first: Lsn,
    lsn_durable: Lsn,
}

/// The `recover` target: builds the input from `data` and runs [`recover_check`].
pub fn recover(data: &[u8]) {
    if let Some(input) = input::<RecoverInput>(data) {
        recover_check(&input);
    }
}

/// Opens the files the input describes and checks what comes out.
pub fn recover_check(input: &RecoverInput) {
    let config = input.config.config();
    let base = base_build(&config, &input.base);
    let mut files = base.files.clone();
    for edit in input.edits.iter().take(EDIT_COUNT_MAX) {
        edit_apply(&config, &mut files, edit);
    }
    files.truncate(SEGMENT_FILE_COUNT_MAX);
    let metadata = metadata_bytes(&config, &input.metadata);
    let storage = storage_build(config.sector_size_bytes, metadata.as_deref(), &files);
    // Without edits, the files are exactly what a real log left behind: opening must work and
    // keep every acknowledged record.
    let pristine = input.edits.is_empty() && input.metadata == MetadataChoice::Valid;
    match Log::open(config.clone(), storage) {
        Ok(mut log) => {
            if pristine {
                base_kept(&mut log, &base, &config);
            }
            unedited_kept(&mut log, &base, &files, &config);
            let sizes = (
                input.append_count % 4,
                input.base.size_seed,
                input.base.salt,
            );
            recovered_check(log, &config, sizes);
        }
        Err(error) => {
            assert!(
                !pristine,
                "a log a crash left behind does not open: {error}"
            );
        }
    }
}

/// Makes the real log and returns its files.
fn base_build(config: &Config, base: &BaseLog) -> Base {
    let mut log = Log::open(config.clone(), MemStorage::new(config.sector_size_bytes))
        .expect("a new log opens");
    let mut rng = Rng(u64::from(base.size_seed));
    let mut records = Vec::new();
    let mut bytes = Vec::new();
    let size_max = u64::from(config.record_size_bytes_max);
    for index in 0..base.record_count % (BASE_RECORD_COUNT_MAX + 1) {
        let lsn = log.next_lsn();
        record_bytes(lsn, rng.below(size_max + 1) as usize, base.salt, &mut bytes);
        let appended = match log.append(&bytes) {
            Err(Error::LogFull { .. }) => {
                // Retention frees segments, as a user of a full log would.
                log.truncate_prefix(lsn).expect("retention");
                log.append(&bytes)
            }
            other => other,
        };
        match appended {
            Ok(appended) => assert_eq!(appended, lsn),
            Err(Error::LogFull { .. }) => break,
            Err(error) => panic!("append to a new log: {error}"),
        }
        records.push(bytes.clone());
        if base.flush_every != 0 && (index + 1) % base.flush_every == 0 {
            log.flush().expect("flush");
        }
    }
    let lsn_first = log.first_lsn();
    let lsn_durable = log.durable_lsn();
    let storage = match &base.ending {
        Ending::Close => log.close().expect("close"),
        Ending::Abandon => {
            let mut storage = log.into_storage();
            crash(&mut storage, &[], Fate::Kept);
            storage
        }
        Ending::Crash { fates, rest } => {
            let mut storage = log.into_storage();
            crash(&mut storage, fates, *rest);
            storage
        }
    };
    let lsn_durable = if matches!(base.ending, Ending::Close) {
        records.len() as Lsn
    } else {
        lsn_durable
    };
    let files = storage
        .segment_ids()
        .map(|id| (id, storage.segment_bytes(id).expect("listed").to_vec()))
        .collect();
    Base {
        files,
        records,
        lsn_first,
        lsn_durable,
    }
}

/// The oracle for unedited files: every acknowledged record is there, intact, and nothing
/// that was never appended.
fn base_kept(log: &mut Log<MemStorage>, base: &Base, config: &Config) {
    let lsn_next = log.next_lsn();
    assert_eq!(log.first_lsn(), base.lsn_first, "first LSN changed");
    assert!(
        lsn_next >= base.lsn_durable.max(base.lsn_first),
        "lost acknowledged records: recovered to {lsn_next}, durable was {}",
        base.lsn_durable
    );
    assert!(
        lsn_next <= base.records.len() as Lsn,
        "records that were never appended"
    );
    assert_ne!(
        log.recovery_report().end,
        Verdict::Lose,
        "a crash is not corruption"
    );
    let size_max = config.record_size_bytes_max as usize;
    let read = read_all(log, base.lsn_first..lsn_next, size_max);
    for (lsn, bytes) in (base.lsn_first..).zip(&read) {
        assert!(
            *bytes == base.records[lsn as usize],
            "record {lsn} differs from what was appended"
        );
    }
}

/// Whatever the edits, a record recovered below the first edited byte (in the log's order:
/// segments by name, then offset) is the record the real log wrote there, byte for byte: no
/// edit after it, forged block or copied sector included, can change what comes before it.
fn unedited_kept(log: &mut Log<MemStorage>, base: &Base, files: &Files, config: &Config) {
    let lsn_safe = lsn_before_first_edit(config, &base.files, files).min(base.records.len() as Lsn);
    let (first, next) = (log.first_lsn(), log.next_lsn().min(lsn_safe));
    if first >= next || next - first > RECOVERED_RECORD_COUNT_MAX {
        return;
    }
    let size_max = (config.record_size_bytes_max as usize).max(config.block_size_bytes as usize);
    let read = read_all(log, first..next, size_max);
    for (lsn, bytes) in (first..).zip(&read) {
        assert!(
            *bytes == base.records[lsn as usize],
            "record {lsn}, below the first edit (lsn {lsn_safe}), differs from what was written"
        );
    }
}

/// Every record below this LSN lies wholly before the first byte where `edited` differs from
/// `base`: the `lsn_first` of the base block that holds that byte (or of the next block).
fn lsn_before_first_edit(config: &Config, base: &Files, edited: &Files) -> Lsn {
    for (index, (id, bytes)) in base.iter().enumerate() {
        // A file named between this one and the next changes what follows this one.
        let next_id = base.get(index + 1).map_or(Lsn::MAX, |next| next.0);
        let inserted = edited
            .iter()
            .any(|(other, _)| *other > *id && *other < next_id);
        let changed_at = match edited.iter().find(|(other, _)| other == id) {
            None => Some(0),
            Some((_, other)) if other.len() != bytes.len() => Some(0),
            Some((_, other)) => other.iter().zip(bytes).position(|(a, b)| a != b),
        };
        if let Some(at) = changed_at {
            return block_lsn_at(config, *id, bytes, at);
        }
        if inserted {
            return next_id.min(block_lsn_at(config, *id, bytes, bytes.len()));
        }
    }
    Lsn::MAX
}

/// The `lsn_first` of the block of a base segment that holds byte `at`, or of the first block
/// after it; past the last block, that block's own `lsn_first` (conservative: a record it
/// leaves open may continue at `at`).
fn block_lsn_at(config: &Config, segment: SegmentId, bytes: &[u8], at: usize) -> Lsn {
    let mut offset = 0;
    let mut lsn_last = segment;
    while offset + BLOCK_HEADER_SIZE_BYTES <= bytes.len() {
        let HeaderRead::Valid(header) = BlockHeader::decode(&bytes[offset..]) else {
            break;
        };
        let size = header.size_bytes as usize;
        let placed = header.segment == segment && header.offset_bytes as usize == offset;
        if !placed || size == 0 || size & (config.sector_size_bytes as usize - 1) != 0 {
            break;
        }
        if offset + size > at {
            return header.lsn_first;
        }
        lsn_last = header.lsn_first;
        offset += size;
    }
    lsn_last
}

/// An opened log is consistent; appending, closing and reopening keep everything.
fn recovered_check(mut log: Log<MemStorage>, config: &Config, sizes: (u8, u16, u8)) {
    let (lsn_first, lsn_next) = (log.first_lsn(), log.next_lsn());
    let report = *log.recovery_report();
    assert!(lsn_first <= lsn_next);
    assert_eq!((report.lsn_first, report.lsn_next), (lsn_first, lsn_next));
    assert_eq!(
        log.durable_lsn(),
        lsn_next,
        "recovery makes what it keeps durable"
    );
    if lsn_next - lsn_first > RECOVERED_RECORD_COUNT_MAX {
        return;
    }
    // A forged block may hold a record larger than the limit, up to a block's body.
    let size_max = (config.record_size_bytes_max as usize).max(config.block_size_bytes as usize);
    let mut records = read_all(&mut log, lsn_first..lsn_next, size_max);
    cursor_matches(&mut log, lsn_first, &records);
    let mut buffer = [0u8; 1];
    assert!(matches!(
        log.read(lsn_next, &mut buffer),
        Err(Error::LsnOutOfRange { .. })
    ));
    let (count, size_seed, salt) = sizes;
    let mut rng = Rng(u64::from(size_seed) ^ 0xA5A5);
    for _ in 0..count {
        let lsn = log.next_lsn();
        let mut bytes = Vec::new();
        let size = rng.below(u64::from(config.record_size_bytes_max) + 1);
        record_bytes(lsn, size as usize, salt, &mut bytes);
        match log.append(&bytes) {
            Ok(appended) => assert_eq!(appended, lsn, "appends continue from the recovered end"),
            Err(Error::LogFull { .. }) => break,
            Err(error) => panic!("append after recovery: {error}"),
        }
        records.push(bytes);
    }
    let lsn_end = log.next_lsn();
    let storage = log.close().expect("close after recovery");
    let mut log = Log::open(config.clone(), storage).expect("reopen after recovery");
    assert_eq!(
        (log.first_lsn(), log.next_lsn()),
        (lsn_first, lsn_end),
        "reopen changed the log"
    );
    let again = read_all(&mut log, lsn_first..lsn_end, size_max);
    assert!(again == records, "reopen changed a record");
}

fn metadata_bytes(config: &Config, choice: &MetadataChoice) -> Option<Vec<u8>> {
    let sector = config.sector_size_bytes as usize;
    let valid = Metadata::new(
        config.sector_size_bytes,
        config.block_size_bytes,
        config.segment_size_bytes,
    );
    let mut bytes = vec![0u8; sector];
    match choice {
        MetadataChoice::Valid => valid.encode(&mut bytes),
        MetadataChoice::Missing => return None,
        MetadataChoice::Field { field, value } => {
            let mut changed = valid;
            match field % 4 {
                0 => changed.format_version = *value as u16,
                1 => changed.sector_size_bytes = *value as u32,
                2 => changed.block_size_bytes = *value as u32,
                _ => changed.segment_size_bytes = *value,
            }
            changed.encode(&mut bytes);
        }
        MetadataChoice::Xor { offset, xor } => {
            valid.encode(&mut bytes);
            bytes[*offset as usize % sector] ^= xor;
        }
        MetadataChoice::Bytes(raw) => {
            let size = raw.len().min(sector);
            bytes[..size].copy_from_slice(&raw[..size]);
        }
    }
    Some(bytes)
}

/// Puts metadata and segments into a new `MemStorage` through the `Storage` trait, synced.
fn storage_build(sector: u32, metadata: Option<&[u8]>, files: &Files) -> MemStorage {
    let mut storage = MemStorage::new(sector);
    if let Some(metadata) = metadata {
        let mut buffer = AlignedBuffer::new(sector as usize, sector as usize);
        buffer.copy_from_slice(metadata);
        storage.metadata_write(&buffer).expect("metadata write");
    }
    for (id, bytes) in files {
        storage
            .segment_create(*id, bytes.len() as u64)
            .expect("segment create");
        if bytes.iter().all(|&byte| byte == 0) {
            continue;
        }
        let mut buffer = AlignedBuffer::new(bytes.len(), sector as usize);
        buffer.copy_from_slice(bytes);
        storage.write_submit(1, *id, 0, buffer, bytes.len());
        let written = storage.poll(true).expect("write completes");
        assert!(written.result.is_ok());
        storage.sync_submit(2, *id);
        let synced = storage.poll(true).expect("sync completes");
        assert!(synced.result.is_ok());
    }
    storage
}

/// Puts a file under a name, replacing any file of that name, keeping names in order.
fn file_put(files: &mut Files, id: SegmentId, bytes: Vec<u8>) {
    match files.binary_search_by_key(&id, |file| file.0) {
        Ok(index) => files[index].1 = bytes,
        Err(index) => files.insert(index, (id, bytes)),
    }
}

fn edit_apply(config: &Config, files: &mut Files, edit: &SegmentEdit) {
    if files.is_empty() {
        return;
    }
    let count = files.len();
    let pick = |index: u8| index as usize % count;
    let sector = config.sector_size_bytes as usize;
    match edit {
        SegmentEdit::Remove { index } => {
            files.remove(pick(*index));
        }
        SegmentEdit::Rename { index, id } => {
            let (_, bytes) = files.remove(pick(*index));
            file_put(files, *id, bytes);
        }
        SegmentEdit::Shift { index, delta } => {
            let (id, bytes) = files.remove(pick(*index));
            file_put(files, id.wrapping_add_signed(i64::from(*delta)), bytes);
        }
        SegmentEdit::Duplicate { index, delta } => {
            let (id, bytes) = files[pick(*index)].clone();
            if files.len() < SEGMENT_FILE_COUNT_MAX {
                file_put(files, id.wrapping_add(1 + u64::from(*delta)), bytes);
            }
        }
        SegmentEdit::Resize { index, sectors } => {
            files[pick(*index)].1.resize(*sectors as usize * sector, 0);
        }
        SegmentEdit::Write {
            index,
            offset,
            bytes,
        } => {
            let file = &mut files[pick(*index)].1;
            if let Some(start) = offset_in(file.len(), *offset as usize) {
                let size = bytes.len().min(file.len() - start);
                file[start..start + size].copy_from_slice(&bytes[..size]);
            }
        }
        SegmentEdit::Xor { index, offset, xor } => {
            let file = &mut files[pick(*index)].1;
            if let Some(at) = offset_in(file.len(), *offset as usize) {
                file[at] ^= xor;
            }
        }
        SegmentEdit::Zero {
            index,
            offset,
            size_bytes,
        } => {
            let file = &mut files[pick(*index)].1;
            if let Some(start) = offset_in(file.len(), *offset as usize) {
                let end = (start + *size_bytes as usize).min(file.len());
                file[start..end].fill(0);
            }
        }
        SegmentEdit::Copy {
            from,
            from_sector,
            to,
            to_sector,
            sectors,
        } => sectors_copy(
            files,
            sector,
            (pick(*from), *from_sector),
            (pick(*to), *to_sector),
            *sectors,
        ),
        SegmentEdit::Header {
            index,
            sector: at,
            header,
        } => {
            let (id, file) = &mut files[pick(*index)];
            if file.len() >= sector {
                let offset = (*at as usize % (file.len() / sector)) * sector;
                header_forge(config, *id, file, offset, header);
            }
        }
    }
}

fn offset_in(size: usize, offset: usize) -> Option<usize> {
    (size > 0).then(|| offset % size)
}

fn sectors_copy(
    files: &mut Files,
    sector: usize,
    from: (usize, u16),
    to: (usize, u16),
    sectors: u8,
) {
    let source = &files[from.0].1;
    let target_size = files[to.0].1.len();
    if source.len() < sector || target_size < sector {
        return;
    }
    let source_start = (from.1 as usize % (source.len() / sector)) * sector;
    let target_start = (to.1 as usize % (target_size / sector)) * sector;
    let size = (sectors as usize * sector)
        .min(source.len() - source_start)
        .min(target_size - target_start);
    let bytes = source[source_start..source_start + size].to_vec();
    files[to.0].1[target_start..target_start + size].copy_from_slice(&bytes);
}

/// Writes a header with a valid checksum at `offset`. The sizes are written as forged, even
/// when no writer could produce them, so that recovery's own checks are what stands between
/// them and the caller.
fn header_forge(
    config: &Config,
    id: SegmentId,
    file: &mut [u8],
    offset: usize,
    forge: &HeaderForge,
) {
    let sector = config.sector_size_bytes;
    let size_bytes = u32::from(forge.size_sectors) * sector;
    let body_room = size_bytes.saturating_sub(HEADER as u32);
    let body_size_bytes = u32::from(forge.body_size_bytes) % (body_room + 1);
    let body_start = (offset + HEADER).min(file.len());
    let body_end = (body_start + body_size_bytes as usize).min(file.len());
    let misplace = u64::from(!forge.placed);
    let mut header = BlockHeader {
        checksum_body: if forge.body_checksum_right {
            format::checksum(&file[body_start..body_end])
        } else {
            0x5EED_5EED
        },
        checksum_previous: forge.checksum_previous.unwrap_or(0),
        flags: u16::from(forge.flags),
        epoch: forge.epoch,
        segment: id.wrapping_add(misplace),
        lsn_first: forge.lsn_first.unwrap_or(id),
        lsn_durable: forge.lsn_durable,
        offset_bytes: offset as u32 + misplace as u32 * sector,
        size_bytes: size_bytes.max(HEADER as u32),
        body_size_bytes: 0,
        fragment_count: u32::from(forge.fragment_count),
        sector_size_bytes: sector,
        block_size_bytes: config.block_size_bytes,
        segment_size_bytes: config.segment_size_bytes,
        ..BlockHeader::default()
    };
    let mut bytes = [0u8; HEADER];
    header.encode(&mut bytes);
    // `encode` insists on possible sizes; write the forged ones and checksum again.
    bytes[52..56].copy_from_slice(&size_bytes.to_le_bytes());
    bytes[56..60].copy_from_slice(&body_size_bytes.to_le_bytes());
    let checksum = format::checksum(&bytes[4..]);
    bytes[..4].copy_from_slice(&checksum.to_le_bytes());
    let size = HEADER.min(file.len() - offset);
    file[offset..offset + size].copy_from_slice(&bytes[..size]);
}

// ---------------------------------------------------------------------------------------------
// ops
// ---------------------------------------------------------------------------------------------

/// The input of the `ops` target.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct OpsInput {
    /// The configuration.
    pub config: ConfigChoice,
    /// The operations, in order (at most `OP_COUNT_MAX`).
    pub ops: Vec<Op>,
}

/// One operation on the log.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Appends one record of `size` modulo the limit plus two (so sometimes too large).
    Append {
        /// The size.
        size: u16,
        /// Varies the bytes.
        salt: u8,
    },
    /// Appends a batch of `count` modulo 5 records, sizes drawn from `size_seed`.
    AppendBatch {
        /// How many.
        count: u8,
        /// Seeds the sizes.
        size_seed: u16,
        /// Varies the bytes.
        salt: u8,
    },
    /// Flushes.
    Flush,
    /// Reads one record, from just below the first to just past the last.
    Read {
        /// Picks the LSN.
        lsn: u16,
        /// Reads into a buffer half the record's size.
        small_buffer: bool,
    },
    /// Scans with a new cursor from an LSN to the durable end.
    Scan {
        /// Picks the start.
        from: u16,
    },
    /// Advances the long-lived cursor.
    CursorNext {
        /// Steps (modulo 8).
        count: u8,
    },
    /// Drops segments below an LSN; past the end (by up to `past`), the log starts again
    /// there, empty.
    TruncatePrefix {
        /// Picks the LSN.
        lsn: u16,
    },
    /// Drops the records at and after an LSN (a Raft follower's conflict).
    TruncateSuffix {
        /// Picks the LSN.
        lsn: u16,
    },
    /// Saves a vote of `size` bytes (modulo the most the metadata holds, plus two).
    VoteSave {
        /// The size.
        size: u8,
        /// Varies the bytes.
        salt: u8,
    },
    /// Advances the clock and lets the timeout policy flush.
    Tick {
        /// Microseconds.
        advance_us: u16,
    },
    /// Crashes the machine and reopens.
    Crash {
        /// Fates in the order the storage visits unsynced sectors.
        fates: Vec<Fate>,
        /// The fate of the sectors after those.
        rest: Fate,
        /// Reopens in `PointInTime` mode, else `Strict`.
        point_in_time: bool,
    },
    /// Closes (or, after a failure, drops) and reopens.
    Reopen {
        /// Reopens in `PointInTime` mode, else `Strict`.
        point_in_time: bool,
    },
    /// Changes one byte on "disk", in both the current and the synced image.
    Corrupt {
        /// Picks the segment.
        segment: u8,
        /// Picks the byte.
        offset: u32,
        /// How it changes (zero means 0x80).
        xor: u8,
    },
    /// Makes the next write fail.
    FailWrite,
    /// Makes the next sync fail.
    FailSync,
    /// Crashes the machine, then crashes it again in the middle of the reopen, after
    /// `changes` of its writes, syncs, metadata writes and segment changes (unsynced bytes
    /// meet the same fates), then reopens for good: recovery itself is cut by a power loss.
    CrashInOpen {
        /// Fates in the order the storage visits unsynced sectors.
        fates: Vec<Fate>,
        /// The fate of the sectors after those.
        rest: Fate,
        /// Changes the cut open makes before the power goes (modulo 32).
        changes: u8,
        /// Both opens in `PointInTime` mode, else `Strict`.
        point_in_time: bool,
    },
}

/// What a user of the log may rely on, kept apart from the log.
#[derive(Debug, Default)]
struct Model {
    /// Every record appended (or possibly appended, just before a failure), by LSN from 0.
    records: Vec<Vec<u8>>,
    lsn_first: Lsn,
    /// The highest first LSN a recovery may show: a `truncate_prefix` that failed part way
    /// may have dropped some of the segments it was asked to drop.
    lsn_first_max: Lsn,
    lsn_durable: Lsn,
    /// The log stopped after a failed write or sync.
    failed: bool,
    /// A write or sync failure was injected and may strike at the next IO.
    armed: bool,
    /// A byte on disk was changed: recovery may report corruption or lose records after the
    /// damage, but never return wrong bytes. It stays set, as the damage may stay on disk.
    damaged: bool,
    /// A suffix truncation at this LSN failed part way: recovery finds the log as before it
    /// or as after it.
    suffix_pending: Option<Lsn>,
    /// A prefix truncation past the end, to this LSN, failed part way: recovery finds the old
    /// log (less a prefix) or the new empty one.
    restart_pending: Option<Lsn>,
    /// The vote last saved.
    vote: Vec<u8>,
    /// A vote save that failed: recovery finds it or the one before.
    vote_pending: Option<Vec<u8>>,
}

impl Model {
    fn lsn_next(&self) -> Lsn {
        self.records.len() as Lsn
    }
}

struct Run {
    config: Config,
    log: Option<Log<MemStorage>>,
    model: Model,
    cursor: Option<Cursor>,
    bytes: Vec<u8>,
    buffer: Vec<u8>,
}

/// The `ops` target: builds the input from `data` and runs [`ops_check`].
pub fn ops(data: &[u8]) {
    if let Some(input) = input::<OpsInput>(data) {
        ops_check(&input);
    }
}

/// Runs the operations against the log and the model.
pub fn ops_check(input: &OpsInput) {
    let config = input.config.config();
    let log = Log::open(config.clone(), MemStorage::new(config.sector_size_bytes))
        .expect("a new log opens");
    let size_max = config.record_size_bytes_max as usize;
    let mut run = Run {
        config,
        log: Some(log),
        model: Model::default(),
        cursor: None,
        bytes: Vec::new(),
        buffer: vec![0; size_max.max(1)],
    };
    for op in input.ops.iter().take(OP_COUNT_MAX) {
        run.step(op);
        run.invariants();
    }
    // Whatever happened, a final crash that keeps nothing unsynced loses nothing durable.
    run.crash_reopen(&[], Fate::Lost, false);
}

impl Run {
    fn log(&mut self) -> &mut Log<MemStorage> {
        self.log.as_mut().expect("log open")
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Append { size, salt } => self.append(*size, *salt),
            Op::AppendBatch {
                count,
                size_seed,
                salt,
            } => self.append_batch(*count, *size_seed, *salt),
            Op::Flush => {
                let result = self.log().flush();
                if self.outcome(result).is_some() {
                    self.model.lsn_durable = self.model.lsn_next();
                }
            }
            Op::Read { lsn, small_buffer } => self.read(*lsn, *small_buffer),
            Op::Scan { from } => self.scan(*from),
            Op::CursorNext { count } => self.cursor_next(*count),
            Op::TruncatePrefix { lsn } => self.truncate_prefix(*lsn),
            Op::TruncateSuffix { lsn } => self.truncate_suffix(*lsn),
            Op::VoteSave { size, salt } => self.vote_save(*size, *salt),
            Op::Tick { advance_us } => {
                let log = self.log();
                let now = log.storage().now_ns();
                log.storage()
                    .set_now_ns(now + u64::from(*advance_us) * 1000);
                let result = log.tick();
                self.outcome(result);
            }
            Op::Crash {
                fates,
                rest,
                point_in_time,
            } => self.crash_reopen(fates, *rest, *point_in_time),
            Op::Reopen { point_in_time } => self.reopen(*point_in_time),
            Op::Corrupt {
                segment,
                offset,
                xor,
            } => self.corrupt(*segment, *offset, *xor),
            Op::FailWrite => {
                self.log().storage_mut().fail_writes(1);
                self.model.armed = true;
            }
            Op::FailSync => {
                self.log().storage_mut().fail_syncs(1);
                self.model.armed = true;
            }
            Op::CrashInOpen {
                fates,
                rest,
                changes,
                point_in_time,
            } => self.crash_in_open(fates, *rest, *changes, *point_in_time),
        }
    }

    /// Judges a result that may be `Error::Failed`: allowed only once a failure was injected,
    /// and from then on the only answer. Returns the value if there was one.
    fn outcome<T>(&mut self, result: Result<T, Error>) -> Option<T> {
        match result {
            Ok(value) => {
                assert!(!self.model.failed, "a stopped log accepted work");
                Some(value)
            }
            Err(Error::Failed { .. }) => {
                assert!(self.model.armed, "the log stopped without an IO failure");
                self.model.failed = true;
                None
            }
            Err(error) => panic!("unexpected error: {error}"),
        }
    }

    /// Checks, after every operation, that the log and the model agree.
    fn invariants(&mut self) {
        if self.model.failed {
            return;
        }
        let (lsn_first, lsn_next) = (self.model.lsn_first, self.model.lsn_next());
        let lsn_durable = self.model.lsn_durable;
        let log = self.log();
        assert_eq!(log.next_lsn(), lsn_next, "next LSN");
        assert_eq!(log.first_lsn(), lsn_first, "first LSN");
        let durable = log.durable_lsn();
        assert!(
            (lsn_durable..=lsn_next).contains(&durable),
            "durable LSN {durable} outside [{lsn_durable}, {lsn_next}]"
        );
        self.model.lsn_durable = durable;
    }

    fn append(&mut self, size: u16, salt: u8) {
        let size_max = self.config.record_size_bytes_max as usize;
        let size = size as usize % (size_max + 2);
        let lsn = self.model.lsn_next();
        record_bytes(lsn, size, salt, &mut self.bytes);
        let bytes = std::mem::take(&mut self.bytes);
        let result = self.log().append(&bytes);
        match result {
            Err(Error::RecordTooLarge { .. }) if !self.model.failed => {
                assert!(size > size_max, "a record within the limit refused");
            }
            Err(Error::LogFull { lsn_next }) if !self.model.failed => assert_eq!(lsn_next, lsn),
            result => {
                assert!(
                    result.is_err() || size <= size_max,
                    "an oversized record accepted"
                );
                let failed_before = self.model.failed;
                if let Some(appended) = self.outcome(result) {
                    assert_eq!(appended, lsn, "append returned the wrong LSN");
                }
                // A record whose append failed may or may not be in the log: the model keeps
                // it, past the durable end, so that recovery may keep or lose it.
                if !failed_before {
                    self.model.records.push(bytes.clone());
                }
            }
        }
        self.bytes = bytes;
    }

    fn append_batch(&mut self, count: u8, size_seed: u16, salt: u8) {
        let size_max = self.config.record_size_bytes_max as u64;
        let mut rng = Rng(u64::from(size_seed));
        let lsn = self.model.lsn_next();
        let batch: Vec<Vec<u8>> = (0..count % (BATCH_COUNT_MAX + 1))
            .map(|index| {
                let mut bytes = Vec::new();
                let size = rng.below(size_max + 2) as usize;
                record_bytes(lsn + u64::from(index), size, salt, &mut bytes);
                bytes
            })
            .collect();
        let oversized = batch.iter().any(|record| record.len() as u64 > size_max);
        let result = self.log().append_batch(&batch);
        match result {
            Err(Error::RecordTooLarge { .. }) if !self.model.failed => {
                assert!(oversized, "a batch within the limit refused");
            }
            Err(Error::LogFull { lsn_next }) if !self.model.failed => {
                assert!(lsn_next >= lsn && lsn_next < lsn + batch.len() as u64);
                let appended = (lsn_next - lsn) as usize;
                self.model.records.extend(batch.into_iter().take(appended));
            }
            result => {
                assert!(result.is_err() || !oversized, "an oversized batch accepted");
                let failed_before = self.model.failed;
                if let Some(first) = self.outcome(result) {
                    assert_eq!(first, lsn, "batch returned the wrong LSN");
                }
                if !failed_before {
                    self.model.records.extend(batch);
                }
            }
        }
    }

    /// An LSN from just below the first to just past the next, drawn from `raw`.
    fn lsn_pick(&self, raw: u16) -> Lsn {
        let low = self.model.lsn_first.saturating_sub(1);
        let span = self.model.lsn_next() + 2 - low;
        low + u64::from(raw) % span
    }

    fn read(&mut self, raw: u16, small_buffer: bool) {
        let lsn = self.lsn_pick(raw);
        let in_range = lsn >= self.model.lsn_first && lsn < self.model.lsn_next();
        let expected = in_range.then(|| self.model.records[lsn as usize].clone());
        let size = match (&expected, small_buffer) {
            (Some(record), true) => record.len() / 2,
            _ => self.buffer.len(),
        };
        let mut buffer = std::mem::take(&mut self.buffer);
        let result = self.log().read(lsn, &mut buffer[..size]);
        match (result, &expected) {
            // A read may be the first to see a failed write complete.
            (Err(Error::Failed { .. }), _) if self.model.armed => self.model.failed = true,
            (Ok(read), Some(record)) => {
                assert!(!self.model.failed, "a stopped log read");
                assert!(
                    buffer[..read] == record[..],
                    "read {lsn} returned wrong bytes"
                );
            }
            (Err(Error::BufferTooSmall { size_bytes }), Some(record)) => {
                assert!(small_buffer && size < record.len() && size_bytes == record.len());
            }
            (Err(Error::Corruption { .. }), Some(_)) if self.model.damaged => {}
            (Err(Error::LsnOutOfRange { .. }), None) if !self.model.failed => {}
            (result, _) => panic!("read {lsn}: {:?}", result.map(|_| ())),
        }
        self.buffer = buffer;
    }

    /// Walks a cursor from `cursor` for at most `steps` records. Returns `false` if the walk
    /// stopped on an error the model allows (a stopped log, damage).
    fn cursor_walk(&mut self, cursor: &mut Cursor, steps: u64) -> bool {
        for _ in 0..steps {
            let lsn = cursor.lsn_next();
            let (damaged, failed, armed) =
                (self.model.damaged, self.model.failed, self.model.armed);
            let lsn_durable = self.model.lsn_durable;
            let expected = self.model.records.get(lsn as usize).cloned();
            match self.log.as_mut().expect("log open").cursor_next(cursor) {
                Ok(Some(record)) => {
                    assert!(!failed, "a stopped log yields records");
                    assert_eq!(record.lsn, lsn, "cursor skipped or repeated a record");
                    assert!(
                        lsn < lsn_durable,
                        "cursor yields a record that is not durable"
                    );
                    let expected = expected.expect("record appended");
                    assert!(
                        record.data == &expected[..],
                        "cursor returned wrong bytes at {lsn}"
                    );
                }
                Ok(None) => {
                    assert!(!failed, "a stopped log answers a cursor");
                    assert!(
                        lsn >= lsn_durable,
                        "cursor stopped at {lsn} before {lsn_durable}"
                    );
                    return true;
                }
                Err(Error::Failed { .. }) if armed => {
                    self.model.failed = true;
                    return false;
                }
                Err(Error::Corruption { .. }) if damaged => return false,
                Err(error) => panic!("cursor at {lsn}: {error}"),
            }
        }
        true
    }

    fn scan(&mut self, raw: u16) {
        let from = self.lsn_pick(raw);
        let (lsn_first, lsn_next) = (self.model.lsn_first, self.model.lsn_next());
        match self.log().cursor(from) {
            Ok(mut cursor) => {
                assert!(from >= lsn_first && from <= lsn_next);
                self.cursor_walk(&mut cursor, u64::MAX);
            }
            // A stopped log's next LSN may be below the model's: the model also holds the
            // records whose append failed.
            Err(Error::LsnOutOfRange { .. }) => {
                assert!(from < lsn_first || from > lsn_next || self.model.failed);
            }
            Err(error) => panic!("cursor at {from}: {error}"),
        }
    }

    fn cursor_next(&mut self, count: u8) {
        let lsn_first = self.model.lsn_first;
        let mut cursor = match self.cursor.take() {
            Some(cursor) if cursor.lsn_next() >= lsn_first => cursor,
            _ => match self.log().cursor(lsn_first) {
                Ok(cursor) => cursor,
                // A `truncate_prefix` that failed part way may have dropped segments past the
                // model's first LSN.
                Err(Error::LsnOutOfRange { .. }) if self.model.failed => return,
                Err(error) => panic!("cursor at the first LSN {lsn_first}: {error}"),
            },
        };
        if self.cursor_walk(&mut cursor, u64::from(count % 8)) {
            self.cursor = Some(cursor);
        }
    }

    fn truncate_prefix(&mut self, raw: u16) {
        let lsn = self.lsn_pick(raw);
        let (lsn_first, lsn_next) = (self.model.lsn_first, self.model.lsn_next());
        if lsn > lsn_next {
            return self.restart(lsn);
        }
        let result = self.log().truncate_prefix(lsn);
        let failed_before = self.model.failed;
        if self.outcome(result).is_some() {
            let first = self.log().first_lsn();
            assert!(
                first >= lsn_first && first <= lsn.max(lsn_first),
                "dropped too much"
            );
            self.model.lsn_first = first;
            self.model.lsn_first_max = first;
        } else if !failed_before {
            let first_max = lsn.min(lsn_next).max(self.model.lsn_first_max);
            self.model.lsn_first_max = first_max;
        }
    }

    /// A prefix truncation past the end: every record goes, and the log starts again there.
    fn restart(&mut self, lsn: Lsn) {
        let failed_before = self.model.failed;
        let result = self.log().truncate_prefix(lsn);
        if matches!(result, Err(Error::LogFull { .. })) && !failed_before {
            return;
        }
        if self.outcome(result).is_some() {
            let log = self.log();
            assert_eq!(
                (log.first_lsn(), log.next_lsn(), log.durable_lsn()),
                (lsn, lsn, lsn)
            );
            self.model_restart(lsn);
        } else if !failed_before {
            // Cut part way: the old segments go oldest first, so any of them may be the first.
            self.model.restart_pending = Some(lsn);
            self.model.lsn_first_max = self.model.lsn_next();
        }
    }

    fn model_restart(&mut self, lsn: Lsn) {
        let model = &mut self.model;
        model.records.resize(lsn as usize, Vec::new());
        model.lsn_first = lsn;
        model.lsn_first_max = lsn;
        model.lsn_durable = lsn;
        self.cursor = None;
    }

    fn truncate_suffix(&mut self, raw: u16) {
        let lsn = self.lsn_pick(raw);
        let (lsn_first, lsn_next) = (self.model.lsn_first, self.model.lsn_next());
        let failed_before = self.model.failed;
        let result = self.log().truncate_suffix(lsn);
        match result {
            Err(Error::LsnOutOfRange { .. }) if !failed_before => {
                assert!(lsn < lsn_first || lsn > lsn_next);
            }
            // Every segment is in use: refused before anything changed.
            Err(Error::LogFull { .. }) if !failed_before => {}
            // The block the truncation links to is damaged: refused before anything changed.
            Err(Error::Corruption { .. }) if self.model.damaged && !failed_before => {}
            result => {
                if self.outcome(result).is_some() {
                    assert!((lsn_first..=lsn_next).contains(&lsn));
                    let log = self.log();
                    assert_eq!((log.next_lsn(), log.durable_lsn()), (lsn, lsn));
                    self.model.records.truncate(lsn as usize);
                    self.model.lsn_durable = lsn;
                    self.cursor = None;
                } else if !failed_before {
                    self.model.suffix_pending = Some(lsn);
                }
            }
        }
    }

    fn vote_save(&mut self, size: u8, salt: u8) {
        let size = usize::from(size) % (format::VOTE_SIZE_BYTES_MAX + 2);
        let vote: Vec<u8> = (0..size).map(|at| (at as u8) ^ salt).collect();
        let failed_before = self.model.failed;
        let result = self.log().vote_save(&vote);
        match result {
            Err(Error::RecordTooLarge { .. }) if !failed_before => {
                assert!(size > format::VOTE_SIZE_BYTES_MAX);
            }
            result => {
                if self.outcome(result).is_some() {
                    assert_eq!(self.log().vote(), &vote[..]);
                    self.model.vote = vote;
                } else if !failed_before {
                    self.model.vote_pending = Some(vote);
                }
            }
        }
    }

    fn corrupt(&mut self, segment: u8, offset: u32, xor: u8) {
        let storage = self.log().storage_mut();
        let ids: Vec<SegmentId> = storage.segment_ids().collect();
        let id = ids[segment as usize % ids.len()];
        let size = storage.segment_bytes(id).expect("listed").len();
        let xor = if xor == 0 { 0x80 } else { xor };
        storage.corrupt(id, offset as usize % size, xor);
        self.model.damaged = true;
    }

    /// Closes and reopens; after a failure, the process dies instead (written bytes stay).
    fn reopen(&mut self, point_in_time: bool) {
        if !self.model.failed {
            let result = self.log().flush();
            if self.outcome(result).is_some() {
                self.model.lsn_durable = self.model.lsn_next();
                let storage = self.log.take().expect("log open").close().expect("close");
                return self.recover(storage, point_in_time);
            }
        }
        self.crash_reopen(&[], Fate::Kept, point_in_time);
    }

    fn crash_in_open(&mut self, fates: &[Fate], rest: Fate, changes: u8, point_in_time: bool) {
        let mut storage = self.log.take().expect("log open").into_storage();
        crash(&mut storage, fates, rest);
        storage.fail_writes(0);
        storage.fail_syncs(0);
        storage.die_after(Some(u32::from(changes % 32)));
        let mut config = self.config.clone();
        config.recovery_mode = mode(point_in_time);
        // Whatever the cut open returns, its process is dead: the storage is what it left.
        drop(Log::open(config, &mut storage));
        storage.die_after(None);
        crash(&mut storage, fates, rest);
        self.recover(storage, point_in_time);
    }

    fn crash_reopen(&mut self, fates: &[Fate], rest: Fate, point_in_time: bool) {
        let mut storage = self.log.take().expect("log open").into_storage();
        crash(&mut storage, fates, rest);
        self.recover(storage, point_in_time);
    }

    /// Opens the storage and checks the recovered log against the model: a dense prefix of
    /// what was appended, at least up to the durable watermark unless a byte was damaged.
    fn recover(&mut self, mut storage: MemStorage, point_in_time: bool) {
        storage.fail_writes(0);
        storage.fail_syncs(0);
        let mut config = self.config.clone();
        config.recovery_mode = mode(point_in_time);
        let damaged = self.model.damaged;
        let spare = damaged.then(|| storage.snapshot());
        let log = match (Log::open(config.clone(), storage), spare) {
            (Ok(log), _) => log,
            (Err(Error::Corruption { .. }), Some(spare)) if !point_in_time => {
                // Damage was reported, as it may be: carry on from the valid prefix.
                config.recovery_mode = RecoveryMode::PointInTime;
                Log::open(config, spare).expect("point-in-time recovery of a damaged log")
            }
            (Err(error), _) => panic!("recovery failed (damaged: {damaged}): {error}"),
        };
        self.log = Some(log);
        self.recovered_check();
    }

    fn recovered_check(&mut self) {
        let log = self.log.as_mut().expect("log open");
        let (recovered, lsn_first) = (log.next_lsn(), log.first_lsn());
        let vote = log.vote().to_vec();
        if let Some(lsn) = self.model.restart_pending.take() {
            if (lsn_first, recovered) == (lsn, lsn) {
                self.model_restart(lsn);
            }
        }
        match self.model.vote_pending.take() {
            Some(pending) if vote == pending => self.model.vote = pending,
            _ => assert!(vote == self.model.vote, "recovered a vote never saved"),
        }
        let suffix = self.model.suffix_pending.take();
        let model = &self.model;
        let lsn_next = model.lsn_next();
        let (damaged, mut lsn_durable) = (model.damaged, model.lsn_durable);
        if let Some(lsn) = suffix {
            // Before the truncation, or exactly after it.
            lsn_durable = lsn_durable.min(lsn);
        }
        let log = self.log.as_mut().expect("log open");
        assert!(
            (model.lsn_first..=model.lsn_first_max).contains(&lsn_first),
            "recovery changed the first LSN to {lsn_first}, expected {}..={}",
            model.lsn_first,
            model.lsn_first_max
        );
        assert!(
            recovered <= lsn_next,
            "recovered {recovered} records, only {lsn_next} appended"
        );
        assert!(recovered >= lsn_first, "recovered less than the first LSN");
        if !damaged {
            assert!(
                recovered >= lsn_durable,
                "lost acknowledged records: recovered to {recovered}, durable was {lsn_durable}"
            );
            assert_ne!(
                log.recovery_report().end,
                Verdict::Lose,
                "loss without damage"
            );
        }
        assert_eq!(log.durable_lsn(), recovered);
        let size_max = self.config.record_size_bytes_max as usize;
        let read = read_all(log, lsn_first..recovered, size_max);
        for (lsn, bytes) in (lsn_first..).zip(&read) {
            assert!(
                *bytes == model.records[lsn as usize],
                "recovered record {lsn} differs"
            );
        }
        cursor_matches(log, lsn_first, &read);
        self.model.records.truncate(recovered as usize);
        self.model.lsn_first = lsn_first;
        self.model.lsn_first_max = lsn_first;
        self.model.lsn_durable = recovered;
        self.model.failed = false;
        self.model.armed = false;
        self.cursor = None;
    }
}

// ---------------------------------------------------------------------------------------------
// codec
// ---------------------------------------------------------------------------------------------

/// The input of the `codec` target: one case.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum CodecInput {
    /// Encodes a header, decodes it, and flips one bit.
    HeaderRoundTrip {
        /// Its fields (sizes adjusted to what `encode` accepts).
        fields: HeaderFields,
        /// The bit to flip, modulo the header's bits.
        flip_bit: u16,
    },
    /// Decodes arbitrary bytes as a header and judges its sizes.
    HeaderDecode {
        /// The bytes (padded with zeros to a header).
        bytes: Vec<u8>,
        /// Sector size for `sizes_valid`: 512 shifted left by this modulo 8.
        sector_shift: u8,
        /// Block size for `sizes_valid`, in sectors (modulo 64, plus one).
        block_sectors: u8,
    },
    /// Encodes and decodes a frame header.
    FrameRoundTrip {
        /// The kind (modulo 4).
        kind: u8,
        /// The size (modulo the 30-bit limit plus one).
        size_bytes: u32,
    },
    /// Decodes four arbitrary bytes as a frame header.
    FrameDecode {
        /// The bytes, as a little-endian word.
        value: u32,
    },
    /// Builds a body from frames and checks it against an independent reading of the rules.
    BodyBuild {
        /// Frames: kind (modulo 4) and size.
        frames: Vec<(u8, u8)>,
        /// Whether the block continues a record.
        continues: bool,
        /// Claims this many frames more (modulo 3, minus one) than there are.
        count_delta: u8,
    },
    /// Checks arbitrary bytes as a body.
    BodyDecode {
        /// The body.
        body: Vec<u8>,
        /// The claimed frame count.
        fragment_count: u32,
        /// Whether the block continues a record.
        continues: bool,
    },
    /// Encodes and decodes metadata.
    MetadataRoundTrip {
        /// The version.
        format_version: u16,
        /// The sector size.
        sector_size_bytes: u32,
        /// The block size.
        block_size_bytes: u32,
        /// The segment size.
        segment_size_bytes: u64,
        /// Extra zero bytes after the metadata.
        tail_bytes: u8,
    },
    /// Decodes arbitrary bytes as metadata.
    MetadataDecode {
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Computes a segment's remaining capacity under valid limits.
    Capacity {
        /// Sector size: 512 shifted left by this modulo 8.
        sector_shift: u8,
        /// Block size in sectors (modulo 64, plus one).
        block_sectors: u8,
        /// Segment size in blocks (modulo 64, plus one).
        segment_blocks: u8,
        /// Where the open block starts, in sectors (modulo the segment's sectors plus one).
        offset_sectors: u16,
        /// How full the open block is.
        fill_bytes: u32,
    },
}

/// The fields of a block header that `encode` takes.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct HeaderFields {
    /// `checksum_body`.
    pub checksum_body: u32,
    /// `checksum_previous`.
    pub checksum_previous: u32,
    /// `flags`.
    pub flags: u16,
    /// `epoch`.
    pub epoch: u32,
    /// `segment`.
    pub segment: u64,
    /// `lsn_first`.
    pub lsn_first: u64,
    /// `lsn_durable`.
    pub lsn_durable: u64,
    /// `offset_bytes`.
    pub offset_bytes: u32,
    /// `size_bytes` (raised to a header at least).
    pub size_bytes: u32,
    /// `body_size_bytes` (modulo what fits).
    pub body_size_bytes: u32,
    /// `fragment_count`.
    pub fragment_count: u32,
    /// `sector_size_bytes`.
    pub sector_size_bytes: u32,
    /// `block_size_bytes`.
    pub block_size_bytes: u32,
    /// `segment_size_bytes`.
    pub segment_size_bytes: u64,
}

/// The `codec` target: builds the input from `data` and runs [`codec_check`].
pub fn codec(data: &[u8]) {
    if let Some(input) = input::<CodecInput>(data) {
        codec_check(&input);
    }
}

/// Runs one codec case.
pub fn codec_check(input: &CodecInput) {
    match input {
        CodecInput::HeaderRoundTrip { fields, flip_bit } => header_round_trip(fields, *flip_bit),
        CodecInput::HeaderDecode {
            bytes,
            sector_shift,
            block_sectors,
        } => header_decode(bytes, *sector_shift, *block_sectors),
        CodecInput::FrameRoundTrip { kind, size_bytes } => {
            let kind = fragment_kind(*kind);
            let size = size_bytes % (FRAGMENT_SIZE_BYTES_MAX + 1);
            let mut bytes = [0u8; FRAME];
            format::frame_encode(&mut bytes, kind, size);
            assert_eq!(format::frame_decode(&bytes), (kind, size));
        }
        CodecInput::FrameDecode { value } => {
            let bytes = value.to_le_bytes();
            let (kind, size) = format::frame_decode(&bytes);
            assert!(size <= FRAGMENT_SIZE_BYTES_MAX);
            let mut again = [0u8; FRAME];
            format::frame_encode(&mut again, kind, size);
            assert_eq!(again, bytes, "every frame header decodes and encodes back");
        }
        CodecInput::BodyBuild {
            frames,
            continues,
            count_delta,
        } => body_build(frames, *continues, *count_delta),
        CodecInput::BodyDecode {
            body,
            fragment_count,
            continues,
        } => body_decode(body, *fragment_count, *continues),
        CodecInput::MetadataRoundTrip {
            format_version,
            sector_size_bytes,
            block_size_bytes,
            segment_size_bytes,
            tail_bytes,
        } => {
            let metadata = Metadata {
                format_version: *format_version,
                ..Metadata::new(*sector_size_bytes, *block_size_bytes, *segment_size_bytes)
            };
            let mut bytes = vec![0xEE; METADATA_SIZE_BYTES + *tail_bytes as usize];
            metadata.encode(&mut bytes);
            assert_eq!(Metadata::decode(&bytes), Ok(metadata));
        }
        CodecInput::MetadataDecode { bytes } => {
            // Version 1 metadata decodes, but encoding writes the current layout.
            let current = |metadata: &Metadata| metadata.format_version != 1;
            if let Some(metadata) = Metadata::decode(bytes).ok().filter(current) {
                let mut again = vec![0u8; bytes.len()];
                metadata.encode(&mut again);
                assert!(
                    again == *bytes,
                    "accepted metadata is not what encode writes"
                );
            }
        }
        CodecInput::Capacity {
            sector_shift,
            block_sectors,
            segment_blocks,
            offset_sectors,
            fill_bytes,
        } => capacity(
            *sector_shift,
            *block_sectors,
            *segment_blocks,
            *offset_sectors,
            *fill_bytes,
        ),
    }
}

fn fragment_kind(raw: u8) -> FragmentKind {
    match raw % 4 {
        0 => FragmentKind::Full,
        1 => FragmentKind::First,
        2 => FragmentKind::Middle,
        _ => FragmentKind::Last,
    }
}

fn header_round_trip(fields: &HeaderFields, flip_bit: u16) {
    let size_bytes = fields.size_bytes.max(HEADER as u32);
    let mut header = BlockHeader {
        checksum_header: 0,
        checksum_body: fields.checksum_body,
        checksum_previous: fields.checksum_previous,
        flags: fields.flags,
        epoch: fields.epoch,
        segment: fields.segment,
        lsn_first: fields.lsn_first,
        lsn_durable: fields.lsn_durable,
        offset_bytes: fields.offset_bytes,
        size_bytes,
        body_size_bytes: fields.body_size_bytes % (size_bytes - HEADER as u32 + 1),
        fragment_count: fields.fragment_count,
        sector_size_bytes: fields.sector_size_bytes,
        block_size_bytes: fields.block_size_bytes,
        segment_size_bytes: fields.segment_size_bytes,
    };
    let mut bytes = [0xEEu8; HEADER + 8];
    let checksum = header.encode(&mut bytes);
    assert_eq!(checksum, header.checksum_header);
    assert!(
        bytes[HEADER..].iter().all(|&byte| byte == 0xEE),
        "encode wrote past the header"
    );
    assert_eq!(BlockHeader::decode(&bytes), HeaderRead::Valid(header));
    let bit = flip_bit as usize % (HEADER * 8);
    bytes[bit / 8] ^= 1 << (bit % 8);
    assert_eq!(
        BlockHeader::decode(&bytes),
        HeaderRead::Invalid,
        "bit {bit} flip not detected"
    );
}

fn header_decode(raw: &[u8], sector_shift: u8, block_sectors: u8) {
    let mut bytes = raw.to_vec();
    if bytes.len() < HEADER {
        bytes.resize(HEADER, 0);
    }
    match BlockHeader::decode(&bytes) {
        HeaderRead::Zero => assert!(bytes[..HEADER].iter().all(|&byte| byte == 0)),
        HeaderRead::Invalid => {}
        HeaderRead::Valid(mut header) => {
            // `sizes_valid` takes the limits of a valid `Config`.
            let sector = 512u32 << (sector_shift % 8);
            let block = sector * (1 + u32::from(block_sectors % 64));
            let sizes_valid = header.sizes_valid(sector, block);
            let encodable = header.size_bytes as usize >= HEADER
                && header.body_size_bytes <= header.size_bytes - HEADER as u32;
            assert!(
                encodable || !sizes_valid,
                "sizes judged valid that encode refuses"
            );
            if encodable {
                let mut again = [0u8; HEADER];
                header.encode(&mut again);
                assert!(
                    again[..] == bytes[..HEADER],
                    "a valid header is not what encode writes"
                );
            }
        }
    }
}

/// The rules of a body, read independently of `body_check`: a continuation fragment exactly
/// first and only when the block continues (so a continuing block has at least one), an open
/// record only last.
fn body_expected(kinds: &[FragmentKind], continues: bool) -> Option<format::BodySummary> {
    if continues && kinds.is_empty() {
        return None;
    }
    let mut summary = format::BodySummary {
        records_completed: 0,
        ends_open: false,
    };
    for (index, &kind) in kinds.iter().enumerate() {
        let continuing = matches!(kind, FragmentKind::Middle | FragmentKind::Last);
        if continuing != (index == 0 && continues) || summary.ends_open {
            return None;
        }
        match kind {
            FragmentKind::Full | FragmentKind::Last => summary.records_completed += 1,
            FragmentKind::First | FragmentKind::Middle => summary.ends_open = true,
        }
    }
    Some(summary)
}

fn body_build(frames: &[(u8, u8)], continues: bool, count_delta: u8) {
    let mut body = Vec::new();
    let mut kinds = Vec::new();
    for &(kind, size) in frames {
        let kind = fragment_kind(kind);
        let mut frame = [0u8; FRAME];
        format::frame_encode(&mut frame, kind, u32::from(size));
        body.extend_from_slice(&frame);
        body.extend(std::iter::repeat_n(size, size as usize));
        kinds.push(kind);
    }
    let count = (frames.len() as i64 + i64::from(count_delta % 3) - 1).max(0);
    let count = u32::try_from(count).expect("small count");
    let expected = if count as usize == frames.len() {
        body_expected(&kinds, continues)
    } else {
        None
    };
    assert_eq!(
        format::body_check(&body, count, continues),
        expected,
        "{kinds:?}"
    );
}

fn body_decode(body: &[u8], fragment_count: u32, continues: bool) {
    let Some(summary) = format::body_check(body, fragment_count, continues) else {
        return;
    };
    // Walk the frames again: they must cover the body exactly, as the summary says.
    let mut offset = 0;
    let mut kinds = Vec::new();
    for _ in 0..fragment_count {
        let (kind, size) = format::frame_decode(&body[offset..]);
        offset += FRAME + size as usize;
        kinds.push(kind);
    }
    assert_eq!(offset, body.len());
    assert_eq!(body_expected(&kinds, continues), Some(summary));
}

fn capacity(
    sector_shift: u8,
    block_sectors: u8,
    segment_blocks: u8,
    offset_sectors: u16,
    fill: u32,
) {
    let sector = 512u64 << (sector_shift % 8);
    let block = sector * (1 + u64::from(block_sectors % 64));
    let segment = block * (1 + u64::from(segment_blocks % 64));
    let offset = sector * (u64::from(offset_sectors) % (segment / sector + 1));
    let block = u32::try_from(block).expect("block within limits");
    let capacity = format::segment_capacity_bytes(segment, block, offset, fill);
    assert!(capacity <= segment - offset, "more capacity than bytes");
    let fuller = format::segment_capacity_bytes(segment, block, offset, fill.saturating_add(1));
    assert!(fuller <= capacity, "a fuller block has more room");
}
