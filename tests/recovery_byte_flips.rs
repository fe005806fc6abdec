//! Every single-byte change of a small log's files opens without a panic, and whatever opens
//! returns only records that were written.

mod common;

use ballast_log::storage::{MemStorage, Storage};
use ballast_log::{Error, Log, RecoveryMode};
use common::{config_tiny, record};

const SEED: u64 = 11;

fn log_small() -> (MemStorage, u64) {
    let config = config_tiny();
    let mut log = common::log_new(&config);
    let mut bytes = Vec::new();
    for lsn in 0..14 {
        record(SEED, lsn, 1500, &mut bytes);
        log.append(&bytes).unwrap();
        if lsn % 3 == 0 {
            log.flush().unwrap();
        }
    }
    let lsn_next = log.next_lsn();
    (log.close().unwrap(), lsn_next)
}

fn check_opened(log: &mut Log<MemStorage>, lsn_next: u64) {
    assert!(log.next_lsn() <= lsn_next);
    let mut expected = Vec::new();
    let mut buffer = vec![0u8; 1500];
    for lsn in log.first_lsn()..log.next_lsn() {
        record(SEED, lsn, 1500, &mut expected);
        // Recovery checked every block it kept, so reads succeed and return what was written.
        let size = log
            .read(lsn, &mut buffer)
            .unwrap_or_else(|error| panic!("read {lsn}: {error}"));
        assert_eq!(&buffer[..size], &expected[..], "record {lsn} differs");
    }
}

#[test]
fn every_single_byte_change_opens_without_panic() {
    let (storage, lsn_next) = log_small();
    let segments: Vec<u64> = storage.segment_ids().collect();
    assert!(
        segments.len() >= 2,
        "the log must span segments: {segments:?}"
    );
    let mut opened = 0;
    let mut refused = 0;
    for &segment in &segments {
        let size = storage.segment_bytes(segment).unwrap().len();
        for offset in 0..size {
            for mode in [RecoveryMode::Strict, RecoveryMode::PointInTime] {
                let mut damaged = storage.snapshot();
                damaged.corrupt(segment, offset, 0x81);
                let mut config = config_tiny();
                config.recovery_mode = mode;
                match Log::open(config, damaged) {
                    Ok(mut log) => {
                        check_opened(&mut log, lsn_next);
                        opened += 1;
                    }
                    Err(Error::Corruption { .. }) => refused += 1,
                    Err(error) => panic!("segment {segment} offset {offset}: {error}"),
                }
            }
        }
    }
    assert!(
        opened > 0 && refused > 0,
        "opened {opened}, refused {refused}"
    );
}

#[test]
fn every_single_byte_change_of_the_metadata_is_refused() {
    let (storage, _) = log_small();
    let sector = storage.sector_size_bytes() as usize;
    for offset in 0..ballast_log::format::METADATA_SIZE_BYTES {
        let mut damaged = storage.snapshot();
        let mut metadata = ballast_log::storage::AlignedBuffer::new(sector, sector);
        assert!(damaged.metadata_read(&mut metadata).unwrap());
        metadata[offset] ^= 0x81;
        damaged.metadata_write(&metadata).unwrap();
        match Log::open(config_tiny(), damaged) {
            Err(Error::NotALog { .. }) => {}
            Err(error) => panic!("offset {offset}: unexpected {error}"),
            Ok(_) => panic!("offset {offset}: damaged metadata accepted"),
        }
    }
}
