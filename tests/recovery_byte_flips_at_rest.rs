//! Damage to a log at rest is never a silent loss. After a clean close, and after a log went
//! idle past its attestation time, every single-byte change in every written sector either
//! leaves every record readable, or is reported: `Error::Corruption` in the strict mode, a
//! loss (`lsn_lost`) covering every acknowledged record in the point-in-time mode. Never a
//! shorter log without an error (`docs/recovery.md`).

mod common;

use ballast_log::storage::MemStorage;
use ballast_log::{Config, Error, Log, RecoveryMode};
use common::{config_tiny, record};

const SEED: u64 = 17;
const SIZE_MAX: usize = 1500;
/// The idle attestation time of the idle log, on `MemStorage`'s clock.
const ATTEST_IDLE_NS: u64 = 1_000_000;

fn config() -> Config {
    Config {
        attest_idle_ns: Some(ATTEST_IDLE_NS),
        ..config_tiny()
    }
}

/// A small log over several segments, flushed in groups of three; the last group is the
/// flush no later block attests.
fn log_written() -> Log<MemStorage> {
    let mut log = common::log_new(&config());
    let mut bytes = Vec::new();
    for lsn in 0..14 {
        record(SEED, lsn, SIZE_MAX, &mut bytes);
        log.append(&bytes).unwrap();
        if lsn % 3 == 0 {
            log.flush().unwrap();
        }
    }
    log.flush().unwrap();
    log
}

/// Whatever opened holds every record, byte for byte.
fn check_whole(log: &mut Log<MemStorage>, lsn_next: u64, place: &str) {
    assert_eq!(
        log.next_lsn(),
        lsn_next,
        "{place}: a shorter log, without an error"
    );
    let mut expected = Vec::new();
    let mut buffer = vec![0u8; SIZE_MAX];
    for lsn in log.first_lsn()..lsn_next {
        record(SEED, lsn, SIZE_MAX, &mut expected);
        let size = log
            .read(lsn, &mut buffer)
            .unwrap_or_else(|error| panic!("{place}: read {lsn}: {error}"));
        assert_eq!(
            &buffer[..size],
            &expected[..],
            "{place}: record {lsn} differs"
        );
    }
}

/// Changes every byte of every written sector, one at a time, and opens in both modes.
/// Returns how many changes were reported as damage.
fn every_byte_changed(storage: &MemStorage, lsn_next: u64) -> u32 {
    let sector = config().sector_size_bytes as usize;
    let mut reported = 0;
    for segment in storage.segment_ids().collect::<Vec<_>>() {
        let bytes = storage.segment_bytes(segment).unwrap().to_vec();
        for offset in 0..bytes.len() {
            let start = offset / sector * sector;
            if bytes[start..start + sector].iter().all(|&byte| byte == 0) {
                continue;
            }
            let place = format!("segment {segment} offset {offset}");
            for mode in [RecoveryMode::Strict, RecoveryMode::PointInTime] {
                let mut damaged = storage.snapshot();
                damaged.corrupt(segment, offset, 0x81);
                let config = Config {
                    recovery_mode: mode,
                    ..config()
                };
                match (Log::open(config, damaged), mode) {
                    (Err(Error::Corruption { .. }), RecoveryMode::Strict) => reported += 1,
                    (Ok(log), RecoveryMode::PointInTime)
                        if log.recovery_report().lsn_lost.is_some() =>
                    {
                        let lost = log.recovery_report().lsn_lost.unwrap();
                        assert!(lost >= lsn_next, "{place}: loss reported up to {lost} only");
                    }
                    (Ok(mut log), _) => check_whole(&mut log, lsn_next, &place),
                    (Err(error), _) => panic!("{place} ({mode:?}): {error}"),
                }
            }
        }
    }
    reported
}

#[test]
fn every_byte_change_after_a_clean_close_is_harmless_or_reported() {
    let log = log_written();
    let lsn_next = log.next_lsn();
    let storage = log.close().unwrap();
    assert!(storage.segment_ids().count() >= 2, "the log spans segments");
    let reported = every_byte_changed(&storage, lsn_next);
    assert!(reported > 0, "no change was reported as damage");
}

#[test]
fn every_byte_change_after_an_idle_attestation_is_harmless_or_reported() {
    let mut log = log_written();
    let lsn_next = log.next_lsn();
    assert!(
        log.attested_lsn() < lsn_next,
        "the last flush is not attested yet"
    );
    let now = ballast_log::storage::Clock::now_ns(log.storage());
    log.storage().set_now_ns(now + ATTEST_IDLE_NS);
    log.tick().unwrap();
    assert_eq!(
        log.attested_lsn(),
        lsn_next,
        "an idle log attests its last flush"
    );
    // The process dies without closing: nothing but the attestation speaks for the last flush.
    let storage = log.into_storage();
    let reported = every_byte_changed(&storage, lsn_next);
    assert!(reported > 0, "no change was reported as damage");
}

/// The idle attestation waits until every record is durable: a record appended and not yet
/// flushed holds it back, and the tick neither attests nor flushes it.
#[test]
fn a_record_waiting_for_a_flush_holds_the_idle_attestation_back() {
    let mut log = log_written();
    let (durable, attested) = (log.durable_lsn(), log.attested_lsn());
    assert!(attested < durable);
    log.append(b"waiting").unwrap();
    let now = ballast_log::storage::Clock::now_ns(log.storage());
    log.storage().set_now_ns(now + ATTEST_IDLE_NS);
    log.tick().unwrap();
    assert_eq!((log.durable_lsn(), log.attested_lsn()), (durable, attested));
}

/// Without the attestation, the same log shows the one ambiguity left: damage to the last
/// flush reads as a torn tail (this test keeps `Known limits` in `docs/recovery.md` honest).
#[test]
fn before_the_idle_attestation_damage_to_the_last_flush_reads_as_a_torn_tail() {
    let log = log_written();
    let lsn_next = log.next_lsn();
    let attested = log.attested_lsn();
    assert!(attested < lsn_next);
    let storage = log.into_storage();
    let mut silent = 0;
    for segment in storage.segment_ids().collect::<Vec<_>>() {
        let size = storage.segment_bytes(segment).unwrap().len();
        for offset in (0..size).step_by(97) {
            let mut damaged = storage.snapshot();
            damaged.corrupt(segment, offset, 0x81);
            if let Ok(log) = Log::open(config(), damaged) {
                let next = log.next_lsn();
                assert!(
                    next >= attested,
                    "a silent loss below the attested {attested}"
                );
                silent += u32::from(next < lsn_next);
            }
        }
    }
    assert!(silent > 0, "no damage fell in the unattested last flush");
}
