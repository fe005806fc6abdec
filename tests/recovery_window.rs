//! The window: the log keeps at most `Config::window_size_bytes` written and not yet durable,
//! so a valid block a window past a damaged one proves the damaged one had been synced. That is
//! the only evidence for the first blocks of a record larger than the window when nothing was
//! written after the flush that made it durable: every later block carries the watermark from
//! before the record.

mod common;

use ballast_log::storage::MemStorage;
use ballast_log::{Config, CorruptionKind, Error, Log, RecoveryMode, Verdict};

const SECTOR: usize = 4096;
const WRITE_BUFFER: u64 = 16 * 1024;
const WINDOW: u64 = 3 * WRITE_BUFFER;
/// Record 5 spans eight 8 KiB blocks, from offset 4096 (after the block of records 0 to 4) to
/// the block at 61440, which the last flush sealed: 57344 bytes past the first, within a
/// buffer past the window.
const RECORD_LARGE_BYTES: usize = 7 * (8192 - 128 - 4) + 100;
const RECORD_LARGE_OFFSET: u64 = 4096;
const LAST_BLOCK_OFFSET: u64 = 61440;

fn config() -> Config {
    Config {
        sector_size_bytes: SECTOR as u32,
        block_size_bytes: 8192,
        segment_size_bytes: 256 * 1024,
        write_buffer_size_bytes: WRITE_BUFFER as u32,
        write_buffer_count: 3,
        window_size_bytes: WINDOW,
        record_size_bytes_max: 100 * 1024,
        segment_count_max: 8,
        read_buffer_size_bytes: 32 * 1024,
        attest_idle_ns: None,
        ..Config::default()
    }
}

fn open(mode: RecoveryMode, storage: MemStorage) -> Result<Log<MemStorage>, Error> {
    Log::open(
        Config {
            recovery_mode: mode,
            ..config()
        },
        storage,
    )
}

/// Records 0 to 4 flushed; record 5 (larger than the window) and record 6 flushed; then the
/// process dies, leaving the last flush attested by nothing but the window.
fn log_crashed() -> MemStorage {
    let mut log = common::log_new(&config());
    for index in 0..5u8 {
        log.append(&[index; 100]).unwrap();
    }
    log.flush().unwrap();
    log.append(&vec![0xA5; RECORD_LARGE_BYTES]).unwrap();
    log.append(b"after").unwrap();
    log.flush().unwrap();
    assert_eq!(log.durable_lsn(), 7);
    assert_eq!(
        log.attested_lsn(),
        5,
        "the last flush is attested by no watermark"
    );
    log.into_storage()
}

#[test]
fn a_block_a_window_past_damage_proves_it_was_synced() {
    let storage = log_crashed();
    let segment = storage.segment_bytes(0).unwrap();
    let last = LAST_BLOCK_OFFSET as usize;
    assert!(segment[last..last + SECTOR].iter().any(|&byte| byte != 0));
    assert!(
        segment[last + SECTOR..].iter().all(|&byte| byte == 0),
        "the last block"
    );
    let distance = LAST_BLOCK_OFFSET - RECORD_LARGE_OFFSET;
    assert!((WINDOW..WINDOW + WRITE_BUFFER).contains(&distance));
    let mut damaged = storage.snapshot();
    damaged.corrupt(0, RECORD_LARGE_OFFSET as usize + 300, 0x10);
    match open(RecoveryMode::Strict, damaged.snapshot()) {
        Err(Error::Corruption {
            segment,
            offset_bytes,
            kind,
        }) => assert_eq!(
            (segment, offset_bytes, kind),
            (0, RECORD_LARGE_OFFSET, CorruptionKind::BodyChecksum)
        ),
        other => panic!(
            "expected corruption, got {:?}",
            other.map(|log| *log.recovery_report())
        ),
    }
    let log = open(RecoveryMode::PointInTime, damaged).unwrap();
    let report = *log.recovery_report();
    assert_eq!((report.end, report.lsn_next), (Verdict::Lose, 5));
    assert!(report.lsn_lost.is_some(), "{report:?}");
}

/// Within the window, a damaged block is what a crash may leave: a torn write. Damage to the
/// block just before the last one reads as a torn tail, not as corruption.
#[test]
fn within_the_window_damage_is_a_torn_tail() {
    let storage = log_crashed();
    let mut damaged = storage.snapshot();
    damaged.corrupt(0, (LAST_BLOCK_OFFSET - 8192) as usize + 300, 0x10);
    let log = open(RecoveryMode::Strict, damaged).unwrap();
    let report = *log.recovery_report();
    assert_eq!((report.end, report.lsn_next), (Verdict::TornTail, 5));
    assert_eq!(
        report.discarded.block_count, 1,
        "the last block was dropped: {report:?}"
    );
    // What was dropped: the one-sector block at the end, with the last piece of record 5 and
    // record 6; the chain kept block 0 and the six blocks of record 5 before the damage.
    let dropped = report.discarded;
    assert_eq!(
        (dropped.size_bytes, dropped.lsn_first, dropped.lsn_end),
        (SECTOR as u64, 5, 7)
    );
    assert_eq!(report.records_discarded_max(), 2, "records 5 and 6 at most");
    assert_eq!(report.block_count, 7);
}

/// A format-1 log records no window (its metadata reads as a window of 0): no distance
/// proves a write was synced, so damage within the last flush reads as a torn tail, however
/// far the flush's last block lies past it.
#[test]
fn a_format_1_log_has_no_window() {
    use ballast_log::format::{checksum, METADATA_MAGIC, METADATA_V1_SIZE_BYTES};
    use ballast_log::storage::Storage;
    let mut storage = log_crashed();
    let mut metadata = ballast_log::storage::AlignedBuffer::new(SECTOR, SECTOR);
    let bytes = &mut metadata[..];
    bytes[4..6].copy_from_slice(&1u16.to_le_bytes());
    bytes[8..16].copy_from_slice(&METADATA_MAGIC);
    let config = config();
    bytes[16..20].copy_from_slice(&config.sector_size_bytes.to_le_bytes());
    bytes[20..24].copy_from_slice(&config.block_size_bytes.to_le_bytes());
    bytes[24..32].copy_from_slice(&config.segment_size_bytes.to_le_bytes());
    let sum = checksum(&bytes[4..METADATA_V1_SIZE_BYTES]);
    bytes[0..4].copy_from_slice(&sum.to_le_bytes());
    storage.metadata_write(&metadata).unwrap();
    storage.corrupt(0, RECORD_LARGE_OFFSET as usize + 300, 0x10);
    let log = open(RecoveryMode::Strict, storage).unwrap();
    let report = *log.recovery_report();
    assert_eq!((report.end, report.lsn_next), (Verdict::TornTail, 5));
    // The open wrote the metadata in the current format, with the window it keeps.
    let mut storage = log.close().unwrap();
    storage.metadata_read(&mut metadata).unwrap();
    let upgraded = ballast_log::format::Metadata::decode(&metadata).unwrap();
    assert_eq!(upgraded.format_version, ballast_log::format::FORMAT_VERSION);
    assert_eq!(upgraded.window_size_bytes, WINDOW);
}
