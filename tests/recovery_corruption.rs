//! A damaged acknowledged block is reported as the typed corruption error in the strict mode,
//! naming segment and offset, and dropped with a report in the point-in-time mode.

mod common;

use ballast_log::storage::MemStorage;
use ballast_log::{Config, CorruptionKind, Error, Log, RecoveryMode, Verdict};
use common::{check_by_lsn, config_small, record};

const SEED: u64 = 3;

/// Writes 40 records, one flush per record, so that every block is durable and every later
/// block attests the earlier ones, then closes the log cleanly (which attests the last one).
fn log_flushed(config: &Config) -> MemStorage {
    log_flushed_open(config).close().unwrap()
}

/// The same 40 records, flushed, and the log left open, as a crash leaves it.
fn log_flushed_open(config: &Config) -> Log<MemStorage> {
    let mut log = common::log_new(config);
    append_flushed(&mut log, 0..40);
    log
}

/// Appends the test's records at `lsns` (up to 3000 bytes: one 4 KiB block each with
/// `config_small`), one flush each.
fn append_flushed(log: &mut Log<MemStorage>, lsns: std::ops::Range<u64>) {
    let mut bytes = Vec::new();
    for lsn in lsns {
        record(SEED, lsn, 3000, &mut bytes);
        assert_eq!(log.append(&bytes).unwrap(), lsn);
        log.flush().unwrap();
    }
}

/// Appends `count` records of 100 bytes, one flush each: one-sector blocks with
/// `config_sectors`.
fn append_sectors(log: &mut Log<MemStorage>, count: u8) {
    for index in 0..count {
        log.append(&[index; 100]).unwrap();
        log.flush().unwrap();
    }
}

fn open(
    config: &Config,
    mode: RecoveryMode,
    storage: MemStorage,
) -> Result<Log<MemStorage>, Error> {
    let mut config = config.clone();
    config.recovery_mode = mode;
    Log::open(config, storage)
}

/// The corruption a strict open reports: its segment, offset and kind; fails the test if the
/// open reports anything else.
#[track_caller]
fn strict_corruption(config: &Config, storage: MemStorage) -> (u64, u64, CorruptionKind) {
    match open(config, RecoveryMode::Strict, storage) {
        Err(Error::Corruption {
            segment,
            offset_bytes,
            kind,
        }) => (segment, offset_bytes, kind),
        other => panic!(
            "expected corruption, got {:?}",
            other.map(|log| *log.recovery_report())
        ),
    }
}

/// Sectors of 512 bytes and segments of eight: one-sector blocks fill a segment in eight
/// flushes.
fn config_sectors() -> Config {
    Config {
        record_size_bytes_max: 300,
        attest_idle_ns: None,
        ..common::config_tiny()
    }
}

#[test]
fn strict_reports_damaged_acknowledged_block_and_point_in_time_drops_it() {
    let config = config_small();
    let storage = log_flushed(&config);
    // Every flush wrote one 4 KiB block: block 5 starts at 5 * 4096 and holds record 5.
    let damaged_offset = 5 * 4096;
    for (offset_in_block, kind) in [
        (0, CorruptionKind::HeaderChecksum),
        (129, CorruptionKind::BodyChecksum),
    ] {
        let mut damaged = storage.snapshot();
        damaged.corrupt(0, damaged_offset + offset_in_block, 0x40);
        match open(&config, RecoveryMode::Strict, damaged.snapshot()) {
            Err(Error::Corruption {
                segment,
                offset_bytes,
                kind: found,
            }) => {
                assert_eq!(segment, 0);
                assert_eq!(offset_bytes, damaged_offset as u64);
                assert_eq!(found, kind);
            }
            Ok(log) => panic!(
                "strict recovery accepted damaged acknowledged data ({offset_in_block}): {:?}",
                log.recovery_report()
            ),
            Err(error) => panic!("unexpected error: {error}"),
        }
        let mut log = open(&config, RecoveryMode::PointInTime, damaged).unwrap();
        let report = *log.recovery_report();
        assert_eq!(report.end, Verdict::Lose);
        assert_eq!(report.lsn_next, 5);
        assert_eq!(
            report.lsn_lost,
            Some(40),
            "the clean close attests every record"
        );
        assert_eq!(log.next_lsn(), 5);
        check_by_lsn(&mut log, SEED, 0..5, 3000);
        // The log goes on from the point in time, and a reopen keeps it.
        log.append(b"after").unwrap();
        log.flush().unwrap();
        let log = open(&config, RecoveryMode::Strict, log.close().unwrap()).unwrap();
        assert_eq!(log.next_lsn(), 6);
    }
}

/// After a clean close, the metadata attests every record: damage to the last flush's block
/// is corruption, not a torn tail.
#[test]
fn damage_to_the_last_block_after_a_clean_close_is_corruption() {
    let config = config_small();
    let mut storage = log_flushed(&config);
    storage.corrupt(0, 39 * 4096 + 300, 0x01);
    assert_eq!(
        strict_corruption(&config, storage.snapshot()),
        (0, 39 * 4096, CorruptionKind::BodyChecksum)
    );
    let log = open(&config, RecoveryMode::PointInTime, storage).unwrap();
    assert_eq!(log.next_lsn(), 39);
    assert_eq!(log.recovery_report().lsn_lost, Some(40));
}

/// After a clean close, damage before the clean end: the walk ends early in the segment where
/// the log was closed, so the clean end does not spare the scan after it, and the report
/// counts the valid blocks it dropped (records 6 to 39, one block each, and the close's
/// attestation block).
#[test]
fn damage_before_the_clean_end_reports_the_blocks_dropped() {
    let config = config_small();
    let mut storage = log_flushed(&config);
    storage.corrupt(0, 5 * 4096 + 129, 0x01);
    let log = open(&config, RecoveryMode::PointInTime, storage).unwrap();
    let report = *log.recovery_report();
    assert_eq!((report.lsn_next, report.lsn_lost), (5, Some(40)));
    let dropped = report.discarded;
    assert_eq!((dropped.lsn_first, dropped.lsn_end), (6, 40), "{report:?}");
    assert!(dropped.block_count >= 34, "{report:?}");
}

/// A loss that a point-in-time recovery settled is reported by every open until records are
/// written after it: again after a clean close with nothing appended, no more once records
/// were flushed past it.
#[test]
fn a_settled_loss_is_reported_until_records_are_written_after_it() {
    let config = config_small();
    let mut storage = log_flushed(&config);
    storage.corrupt(0, 5 * 4096 + 129, 0x01);
    let log = open(&config, RecoveryMode::PointInTime, storage).unwrap();
    assert_eq!(log.recovery_report().lsn_lost, Some(40));
    // The loss is settled: a crash right after the open that settled it finds it final, and
    // reported again, even in the strict mode.
    let log = open(&config, RecoveryMode::Strict, log.into_storage()).unwrap();
    let report = *log.recovery_report();
    assert_eq!(
        (report.lsn_next, report.lsn_lost),
        (5, Some(40)),
        "after a crash"
    );
    let log = open(&config, RecoveryMode::PointInTime, log.close().unwrap()).unwrap();
    let report = *log.recovery_report();
    assert_eq!((report.lsn_next, report.lsn_lost), (5, Some(40)), "again");
    let mut log = open(&config, RecoveryMode::Strict, log.close().unwrap()).unwrap();
    log.append(b"after the loss").unwrap();
    log.flush().unwrap();
    let log = open(&config, RecoveryMode::Strict, log.close().unwrap()).unwrap();
    assert_eq!(
        log.recovery_report().lsn_lost,
        None,
        "records were written after it"
    );
}

/// An attestation when the last block fills its segment: no block fits after it, so the
/// metadata's checkpoint attests the last flush, and damage to it is corruption.
#[test]
fn an_attestation_with_no_room_left_goes_to_the_metadata() {
    let config = config_sectors();
    let mut log = common::log_new(&config);
    append_sectors(&mut log, 8);
    assert_eq!(log.attested_lsn(), 7);
    log.attest().unwrap();
    assert_eq!(log.attested_lsn(), 8);
    let mut storage = log.into_storage();
    assert_eq!(storage.segment_ids().collect::<Vec<_>>(), [0]);
    storage.corrupt(0, 7 * 512 + 200, 0x10);
    assert_eq!(strict_corruption(&config, storage).1, 7 * 512);
}

/// A clean close's end stops counting once the log writes again: records written after a
/// reopen, then damage to the first of them and a crash, is corruption (the later blocks
/// attest it), not a clean end that spares the scan.
#[test]
fn a_clean_end_is_forgotten_once_the_log_writes_again() {
    let config = config_small();
    let storage = log_flushed(&config);
    let mut log = open(&config, RecoveryMode::Strict, storage).unwrap();
    append_flushed(&mut log, 40..45);
    let mut storage = log.into_storage();
    // The close's attestation block took the sector after record 39's: record 40 is next.
    storage.corrupt(0, 41 * 4096 + 129, 0x01);
    assert_eq!(strict_corruption(&config, storage).1, 41 * 4096);
}

/// After a crash with the last flush's block unattested (no close, no idle attestation, no
/// block written after it), damage to that block cannot be told from a torn write: the one
/// ambiguity left (`docs/recovery.md`, "Known limits").
#[test]
fn damage_to_the_unattested_last_flush_after_a_crash_is_a_torn_tail() {
    let config = config_small();
    let log = log_flushed_open(&config);
    assert_eq!(
        log.attested_lsn(),
        39,
        "the last block attests up to record 39"
    );
    let mut storage = log.into_storage();
    storage.corrupt(0, 39 * 4096 + 300, 0x01);
    let log = open(&config, RecoveryMode::Strict, storage).unwrap();
    assert_eq!(log.next_lsn(), 39);
    assert_eq!(log.recovery_report().end, Verdict::TornTail);
}

#[test]
fn damage_in_an_earlier_segment_names_that_segment() {
    let mut config = config_small();
    config.segment_size_bytes = 8 * 4096;
    let storage = log_flushed(&config);
    let segments: Vec<u64> = storage.segment_ids().collect();
    assert!(segments.len() >= 3, "{segments:?}");
    let mut damaged = storage.snapshot();
    damaged.corrupt(segments[1], 4096 + 150, 0xFF);
    let (segment, offset_bytes, _) = strict_corruption(&config, damaged);
    assert_eq!((segment, offset_bytes), (segments[1], 4096));
}

/// A clean end (zeros after the last block) and a cut one (bytes after it) both end with
/// `TornTail`; the report tells them apart, and only the cut one is sealed.
#[test]
fn the_report_tells_a_clean_end_from_a_cut_one() {
    let config = config_small();
    let storage = log_flushed(&config);
    let log = open(&config, RecoveryMode::Strict, storage).unwrap();
    let report = *log.recovery_report();
    assert_eq!(report.end, Verdict::TornTail);
    assert!(!report.end_written, "{report:?}");
    let next = log.next_lsn();
    let mut storage = log.into_storage();
    // Bytes in the first sector after the end, as a write cut by a crash leaves them.
    storage.corrupt(
        report.end_segment,
        report.end_offset_bytes as usize + 100,
        0x5A,
    );
    let log = open(&config, RecoveryMode::Strict, storage).unwrap();
    let cut = *log.recovery_report();
    assert_eq!(cut.end, Verdict::TornTail);
    assert!(cut.end_written, "{cut:?}");
    assert_eq!(log.next_lsn(), next, "nothing acknowledged is lost");
    // The seal covered the bytes: the next open ends cleanly after it.
    let log = open(&config, RecoveryMode::Strict, log.into_storage()).unwrap();
    assert!(!log.recovery_report().end_written);
}

/// An attestation block in a segment's last sector is named after the next segment (its
/// `lsn_first` is the segment's limit). It is still evidence: damage to the block it attests,
/// with the next segment empty, is corruption, not a torn tail.
#[test]
fn an_attestation_at_the_segment_limit_is_evidence() {
    let config = config_sectors();
    let mut log = common::log_new(&config);
    // Seven one-sector blocks, one flush each, then the attestation in the eighth sector.
    append_sectors(&mut log, 7);
    assert_eq!(
        log.attested_lsn(),
        6,
        "the last flush is attested by nothing"
    );
    log.attest().unwrap();
    assert_eq!(log.attested_lsn(), 7);
    // The next record rolls to segment 7; the process dies before it is written.
    log.append(&[7; 100]).unwrap();
    let mut storage = log.into_storage();
    storage.crash(|_, _| ballast_log::storage::SectorFate::Lost);
    assert_eq!(storage.segment_ids().collect::<Vec<_>>(), [0, 7]);
    assert!(storage
        .segment_bytes(7)
        .unwrap()
        .iter()
        .all(|&byte| byte == 0));
    let last = storage.segment_bytes(0).unwrap();
    assert!(
        last[3584..].iter().any(|&byte| byte != 0),
        "the attestation"
    );
    storage.corrupt(0, 6 * 512 + 200, 0x10);
    assert_eq!(
        strict_corruption(&config, storage),
        (0, 6 * 512, CorruptionKind::BodyChecksum)
    );
}

/// A segment lost after a full one, with later segments attesting its records: the
/// corruption names the segment found where the lost one should continue the log.
#[test]
fn a_lost_segment_names_the_segment_found_in_its_place() {
    use ballast_log::storage::Storage;
    let mut config = config_small();
    config.segment_size_bytes = 8 * 4096;
    let storage = log_flushed(&config);
    let segments: Vec<u64> = storage.segment_ids().collect();
    assert!(segments.len() >= 3, "{segments:?}");
    let mut damaged = storage.snapshot();
    damaged.segment_remove(segments[1]).unwrap();
    assert_eq!(
        strict_corruption(&config, damaged),
        (segments[2], 0, CorruptionKind::Misplaced)
    );
}
