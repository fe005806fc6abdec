//! 100k records of mixed sizes, from empty to the maximum, across several segment rolls:
//! closed, reopened, and read back by LSN and by cursor, byte for byte.

mod common;

use ballast_log::{Log, RecoveryMode};
use common::{check_by_cursor, check_by_lsn, config_small, log_new, record};

const SEED: u64 = 0x5EED;
const RECORD_COUNT: u64 = 100_000;

#[test]
fn hundred_thousand_records_survive_close_and_reopen() {
    let mut config = config_small();
    config.block_size_bytes = 4096;
    config.record_size_bytes_max = 6000;
    config.segment_size_bytes = 4 * 1024 * 1024;
    config.segment_count_max = 256;
    let size_max = config.record_size_bytes_max as usize;
    let mut log = log_new(&config);
    let mut bytes = Vec::new();
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut lsn = 0;
    while lsn < RECORD_COUNT {
        if lsn % 7 == 0 {
            let count = (lsn % 13 + 1).min(RECORD_COUNT - lsn);
            batch.clear();
            for offset in 0..count {
                record(SEED, lsn + offset, size_max, &mut bytes);
                batch.push(bytes.clone());
            }
            assert_eq!(log.append_batch(&batch).unwrap(), lsn);
            lsn += count;
        } else {
            record(SEED, lsn, size_max, &mut bytes);
            assert_eq!(log.append(&bytes).unwrap(), lsn);
            lsn += 1;
        }
        if lsn % 5_000 < 13 && lsn % 3 == 0 {
            log.flush().unwrap();
        }
    }
    assert!(
        log.segment_count() >= 4,
        "the test must roll segments: {}",
        log.segment_count()
    );
    // Read-your-writes before close, including records still in the write buffer.
    check_by_lsn(&mut log, SEED, 0..RECORD_COUNT, size_max);
    let mut storage = log.close().unwrap();
    for mode in [RecoveryMode::Strict, RecoveryMode::PointInTime] {
        let mut config = config.clone();
        config.recovery_mode = mode;
        let segments_before = storage.segment_ids().count();
        let mut log = Log::open(config, storage).unwrap();
        assert_eq!(log.segment_count(), segments_before);
        assert_eq!(log.next_lsn(), RECORD_COUNT);
        assert_eq!(log.durable_lsn(), RECORD_COUNT);
        check_by_lsn(&mut log, SEED, 0..RECORD_COUNT, size_max);
        assert_eq!(check_by_cursor(&mut log, SEED, 0, size_max), RECORD_COUNT);
        assert_eq!(
            check_by_cursor(&mut log, SEED, RECORD_COUNT - 17, size_max),
            17
        );
        storage = log.close().unwrap();
    }
}
