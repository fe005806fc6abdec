//! `Log::truncate_suffix`: every truncation point of a log of several segments, then appends
//! and reopens; a crash at every storage change of a truncation; damage to a truncation's
//! block at rest; and the vote, saved with the metadata.

mod common;

use ballast_log::storage::{AlignedBuffer, MemStorage, SectorFate, Storage};
use ballast_log::{format, Error, Log, Lsn};
use common::{check_by_cursor, check_by_lsn, config_tiny, record};

const OLD: u64 = 11;
const NEW: u64 = 12;

/// A log of `count` records made by `record(OLD, ..)`, flushed, spanning several segments.
fn log_with(count: u64) -> Log<MemStorage> {
    let config = config_tiny();
    let size_max = config.record_size_bytes_max as usize;
    let mut log = common::log_new(&config);
    let mut bytes = Vec::new();
    for lsn in 0..count {
        record(OLD, lsn, size_max, &mut bytes);
        assert_eq!(log.append(&bytes).unwrap(), lsn);
    }
    log.flush().unwrap();
    log
}

fn append_new(log: &mut Log<MemStorage>, count: u64) {
    let size_max = log.config().record_size_bytes_max as usize;
    let mut bytes = Vec::new();
    for _ in 0..count {
        let lsn = log.next_lsn();
        record(NEW, lsn, size_max, &mut bytes);
        assert_eq!(log.append(&bytes).unwrap(), lsn);
    }
}

/// Records below `cut` are the old ones, records from `cut` to the end the new ones.
fn check_content(log: &mut Log<MemStorage>, cut: Lsn) {
    let size_max = log.config().record_size_bytes_max as usize;
    let (first, next) = (log.first_lsn(), log.next_lsn());
    check_by_lsn(log, OLD, first..cut.min(next), size_max);
    check_by_lsn(log, NEW, cut.min(next)..next, size_max);
    let mut cursor = log.cursor(first).unwrap();
    let mut expected = Vec::new();
    let mut lsn = first;
    while let Some(found) = log.cursor_next(&mut cursor).unwrap() {
        assert_eq!(found.lsn, lsn);
        record(
            if lsn < cut { OLD } else { NEW },
            lsn,
            size_max,
            &mut expected,
        );
        assert_eq!(found.data, &expected[..], "cursor: record {lsn} differs");
        lsn += 1;
    }
    assert_eq!(lsn, log.durable_lsn());
}

fn reopen(log: Log<MemStorage>) -> Log<MemStorage> {
    let config = log.config().clone();
    let storage = log.close().unwrap();
    Log::open(config, storage).expect("reopen after a clean close")
}

fn reopen_after_crash(log: Log<MemStorage>) -> Log<MemStorage> {
    let config = log.config().clone();
    let mut storage = log.into_storage();
    storage.die_after(None);
    storage.crash(|_, _| SectorFate::Lost);
    Log::open(config, storage).expect("recovery after a crash")
}

#[test]
fn every_truncation_point_then_appends_and_reopens() {
    let count = 40;
    let segments = log_with(count).storage_mut().segment_list().unwrap().len();
    assert!(segments >= 4, "the log spans several segments: {segments}");
    for cut in 0..=count {
        let mut log = log_with(count);
        log.truncate_suffix(cut).unwrap();
        assert_eq!(log.next_lsn(), cut);
        assert_eq!(log.durable_lsn(), cut);
        let mut buffer = vec![0u8; 2048];
        assert!(matches!(
            log.read(cut, &mut buffer),
            Err(Error::LsnOutOfRange { .. })
        ));
        check_content(&mut log, cut);
        append_new(&mut log, 7);
        check_content(&mut log, cut);
        log.flush().unwrap();
        let mut log = reopen(log);
        assert_eq!(log.next_lsn(), cut + 7, "cut {cut}");
        check_content(&mut log, cut);
        append_new(&mut log, 3);
        let mut log = reopen_after_crash(log);
        assert_eq!(log.next_lsn(), cut + 7, "cut {cut}: unflushed appends lost");
        check_content(&mut log, cut);
        // Crash right after the truncation, with nothing appended after it.
        let mut log = log_with(count);
        log.truncate_suffix(cut).unwrap();
        let mut log = reopen_after_crash(log);
        assert_eq!(log.next_lsn(), cut, "cut {cut}: the truncation is durable");
        assert_eq!(log.recovery_report().discarded.block_count, 0);
        check_content(&mut log, cut);
        append_new(&mut log, 9);
        log.flush().unwrap();
        let mut log = reopen_after_crash(log);
        assert_eq!(log.next_lsn(), cut + 9);
        check_content(&mut log, cut);
    }
}

#[test]
fn truncations_upon_truncations() {
    let mut rng = common::Rng(5);
    let mut log = log_with(30);
    // The content the log must hold: which seed made each record.
    let mut seeds: Vec<u64> = vec![OLD; 30];
    let size_max = log.config().record_size_bytes_max as usize;
    let mut bytes = Vec::new();
    for round in 0..60u64 {
        let (first, next) = (log.first_lsn(), log.next_lsn());
        let cut = first + rng.below(next - first + 1);
        log.truncate_suffix(cut).unwrap();
        seeds.truncate(cut as usize);
        let seed = 100 + round;
        for _ in 0..rng.below(12) {
            let lsn = log.next_lsn();
            record(seed, lsn, size_max, &mut bytes);
            log.append(&bytes).unwrap();
            seeds.push(seed);
        }
        match rng.below(4) {
            0 => log = reopen(log),
            1 => {
                log.flush().unwrap();
                log = reopen_after_crash(log);
            }
            2 if log.next_lsn() > log.first_lsn() + 8 => {
                log.truncate_prefix(log.first_lsn() + 4).unwrap();
            }
            _ => log.flush().unwrap(),
        }
        assert_eq!(log.next_lsn(), seeds.len() as Lsn, "round {round}");
        let mut buffer = vec![0u8; size_max];
        for lsn in log.first_lsn()..log.next_lsn() {
            record(seeds[lsn as usize], lsn, size_max, &mut bytes);
            let size = log.read(lsn, &mut buffer).unwrap();
            assert_eq!(&buffer[..size], &bytes[..], "round {round}: record {lsn}");
        }
    }
}

/// A crash after every storage change of a truncation (and of the appends after it) leaves the
/// log as it was before the truncation or as it is after, never a mixture.
#[test]
fn a_crash_at_every_change_of_a_truncation() {
    let count = 40;
    for cut in (0..count).step_by(3) {
        let mut changes = 0;
        loop {
            let mut log = log_with(count);
            log.storage_mut().die_after(Some(changes));
            let result = log.truncate_suffix(cut);
            let done = result.is_ok();
            let mut log = reopen_after_crash(log);
            let next = log.next_lsn();
            assert!(
                next == cut || (next == count && !done),
                "cut {cut}, crash after {changes} changes: recovered up to {next}"
            );
            assert_eq!(log.recovery_report().discarded.block_count, 0);
            check_content(&mut log, count);
            // Whichever it was, the log goes on.
            append_new(&mut log, 5);
            log.flush().unwrap();
            let mut log = reopen_after_crash(log);
            assert_eq!(log.next_lsn(), next + 5);
            check_content(&mut log, next);
            if done {
                break;
            }
            changes += 1;
        }
        assert!(
            changes >= 3,
            "a truncation makes several changes: {changes}"
        );
    }
}

/// Damage to the truncation's block at rest never brings back a truncated record: the log
/// ends at the truncation, or the damage is reported.
/// Where the log ends once the truncation block of segment `cut` is lost: after the block it
/// links to (where record `cut - 1` ends) and any blocks that only carry on the record left
/// open there. After a block that fills its segment, or that also completes records after the
/// cut, the log goes on in the truncation's segment.
fn linked_chain_end(storage: &MemStorage, cut: Lsn, segment_size_bytes: u64) -> (Lsn, u64) {
    let header_at = |segment, offset: u64| {
        if offset >= segment_size_bytes {
            return None;
        }
        let bytes = storage.segment_bytes(segment).unwrap();
        match format::BlockHeader::decode(&bytes[offset as usize..]) {
            format::HeaderRead::Valid(header) => Some(header),
            _ => None,
        }
    };
    let truncation = header_at(cut, 0).expect("the truncation block");
    assert!(truncation.truncates());
    let sector = u64::from(truncation.sector_size_bytes);
    let linked = storage
        .segment_ids()
        .filter(|&segment| segment < cut)
        .flat_map(|segment| (0..segment_size_bytes / sector).map(move |i| (segment, i * sector)))
        .find(|&(segment, offset)| {
            header_at(segment, offset)
                .is_some_and(|header| header.checksum_header == truncation.checksum_previous)
        });
    let (segment, offset) = linked.expect("a block carries the checksum the truncation links to");
    let header = header_at(segment, offset).unwrap();
    let mut end = offset + u64::from(header.size_bytes);
    let continued_at = |offset| header_at(segment, offset).is_some_and(|next| next.continues());
    let completed = u64::from(header.fragment_count) - u64::from(continued_at(end));
    if header.lsn_first + completed > cut {
        return (cut, 0);
    }
    // Middle pieces of the record left open at the cut.
    while let Some(next) = header_at(segment, end) {
        let middle = next.continues() && next.fragment_count == 1;
        if !middle || !continued_at(end + u64::from(next.size_bytes)) {
            break;
        }
        end += u64::from(next.size_bytes);
    }
    match end == segment_size_bytes {
        true => (cut, 0),
        false => (segment, end),
    }
}

#[test]
fn damage_to_the_truncation_block_resurrects_nothing() {
    let count = 40;
    for cut in 1..count {
        for appended in [0, 6] {
            let mut log = log_with(count);
            log.truncate_suffix(cut).unwrap();
            append_new(&mut log, appended);
            let config = log.config().clone();
            let mut storage = log.close().unwrap();
            let segments = storage.segment_list().unwrap();
            assert!(
                segments.contains(&cut),
                "the truncation's segment is named {cut}"
            );
            let linked = linked_chain_end(&storage, cut, config.segment_size_bytes);
            storage.corrupt(cut, 40, 0x10);
            match Log::open(config, storage) {
                Ok(mut log) => {
                    let next = log.next_lsn();
                    assert!(next <= cut + appended, "cut {cut}: recovered up to {next}");
                    // The blocks the truncation dropped are neither evidence nor a possible
                    // loss.
                    let report = *log.recovery_report();
                    assert_eq!(report.discarded.block_count, 0, "cut {cut}");
                    // The log ends in the chain the truncation cut, right after the block that
                    // holds record `cut - 1`: nothing of the truncation's segment is kept.
                    let end = (report.end_segment, report.end_offset_bytes);
                    assert_eq!(end, linked, "cut {cut}: {report:?}");
                    check_content(&mut log, cut);
                }
                Err(Error::Corruption { .. }) => {}
                Err(error) => panic!("cut {cut}: {error}"),
            }
        }
    }
}

#[test]
fn truncation_bounds() {
    let mut log = log_with(20);
    log.truncate_prefix(8).unwrap();
    let first = log.first_lsn();
    assert!(first > 0);
    assert!(matches!(
        log.truncate_suffix(first - 1),
        Err(Error::LsnOutOfRange { .. })
    ));
    assert!(matches!(
        log.truncate_suffix(21),
        Err(Error::LsnOutOfRange { .. })
    ));
    // At the end: nothing to drop, and nothing written.
    log.truncate_suffix(20).unwrap();
    assert_eq!(log.next_lsn(), 20);
    log.truncate_suffix(first).unwrap();
    assert_eq!((log.first_lsn(), log.next_lsn()), (first, first));
    append_new(&mut log, 4);
    let mut log = reopen(log);
    assert_eq!((log.first_lsn(), log.next_lsn()), (first, first + 4));
    check_content(&mut log, first);
}

#[test]
fn the_vote_is_saved_with_the_log() {
    let mut log = log_with(10);
    assert_eq!(log.vote(), b"");
    log.vote_save(b"term 3, voted for 2").unwrap();
    assert_eq!(log.vote(), b"term 3, voted for 2");
    let mut log = reopen(log);
    assert_eq!(log.vote(), b"term 3, voted for 2");
    let largest = [7u8; format::VOTE_SIZE_BYTES_MAX];
    log.vote_save(&largest).unwrap();
    assert!(matches!(
        log.vote_save(&[0u8; format::VOTE_SIZE_BYTES_MAX + 1]),
        Err(Error::RecordTooLarge { .. })
    ));
    assert_eq!(log.vote(), &largest[..]);
    // It outlives truncations and crashes.
    log.truncate_suffix(4).unwrap();
    append_new(&mut log, 2);
    let mut log = reopen_after_crash(log);
    assert_eq!(log.vote(), &largest[..]);
    log.vote_save(b"").unwrap();
    let log = reopen(log);
    assert_eq!(log.vote(), b"");
}

/// A crash during a vote's save leaves the old vote or the new one.
#[test]
fn a_crash_during_a_vote_save_leaves_old_or_new() {
    let mut log = log_with(3);
    log.vote_save(b"old").unwrap();
    let mut log = reopen_after_crash(log);
    log.storage_mut().die_after(Some(0));
    assert!(log.vote_save(b"new").is_err());
    let log = reopen_after_crash(log);
    assert_eq!(log.vote(), b"old");
}

#[test]
fn cursors_after_a_truncation_see_the_new_records() {
    let mut log = log_with(30);
    let size_max = log.config().record_size_bytes_max as usize;
    check_by_cursor(&mut log, OLD, 0, size_max);
    let mut cursor = log.cursor(10).unwrap();
    for _ in 0..5 {
        log.cursor_next(&mut cursor).unwrap().unwrap();
    }
    log.truncate_suffix(15).unwrap();
    assert!(log.cursor_next(&mut cursor).unwrap().is_none());
    append_new(&mut log, 4);
    log.flush().unwrap();
    let mut expected = Vec::new();
    for lsn in 15..19 {
        let found = log.cursor_next(&mut cursor).unwrap().unwrap();
        assert_eq!(found.lsn, lsn);
        record(NEW, lsn, size_max, &mut expected);
        assert_eq!(found.data, &expected[..]);
    }
}

/// A truncation of the whole log that the storage refuses (no space for its segment) leaves the
/// metadata as it was (but for the epoch it took), vouching for the first block and attesting
/// the records as before: the log goes on, and a block of another
/// history put in the first block's place at rest is told apart, not read as the log's own
/// records. Found by the simulator (seed 1020047): the truncation had already told the
/// metadata to vouch for no first block, and nothing restored it.
#[test]
fn a_refused_truncation_keeps_the_first_block_vouched_for() {
    // An open attests what it found in the metadata's checkpoint.
    let mut log = reopen(log_with(3));
    let before = metadata(&mut log);
    assert!(
        before.first.is_some(),
        "the metadata vouches for the first block"
    );
    assert_eq!(
        before.lsn_checkpoint, 3,
        "the metadata attests every record"
    );
    log.storage_mut().fail_creates(1);
    match log.truncate_suffix(0) {
        Err(Error::Io { .. }) => {}
        other => panic!("a refused segment creation: {other:?}"),
    }
    // As before, but for the epoch the truncation took (seeds 1082053 and 1076365: a
    // checkpoint left lowered let damage to attested records read as a torn tail).
    let after = metadata(&mut log);
    assert!(after.epoch_max > before.epoch_max);
    assert_eq!(
        format::Metadata {
            epoch_max: before.epoch_max,
            ..after
        },
        before
    );
    let vouched = before.first;
    // The log goes on where it was, and a crash now keeps every record.
    assert_eq!(log.next_lsn(), 3);
    append_new(&mut log, 2);
    log.flush().unwrap();
    assert_eq!(metadata(&mut log).first, vouched);
    let mut log = reopen_after_crash(log);
    assert_eq!(log.next_lsn(), 5);
    check_content(&mut log, 3);
}

fn metadata(log: &mut Log<MemStorage>) -> format::Metadata {
    let sector = log.config().sector_size_bytes as usize;
    let mut buffer = AlignedBuffer::new(
        format::METADATA_SIZE_BYTES.div_ceil(sector) * sector,
        sector,
    );
    assert!(log.storage_mut().metadata_read(&mut buffer).unwrap());
    format::Metadata::decode(&buffer).expect("the metadata decodes")
}
