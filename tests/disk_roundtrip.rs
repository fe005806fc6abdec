//! The log on `DirectStorage`: append, flush, roll segments, drop old ones, close, reopen,
//! and read every record back, by LSN and by cursor.
#![cfg(target_os = "linux")]

mod disk_common;

use ballast_log::storage::{DirectOptions, DirectStorage, IoMode, Storage};
use ballast_log::Log;
use disk_common::{config_disk, record, ScratchDir};

#[test]
fn records_survive_close_and_reopen_across_segments() {
    let dir = ScratchDir::new("roundtrip");
    let config = config_disk();
    let options = DirectOptions::default();
    let storage = DirectStorage::open(dir.path(), &options).unwrap();
    assert_eq!(storage.io_mode(), IoMode::Direct);
    assert_eq!(config.sector_size_bytes % storage.sector_size_bytes(), 0);
    let mut log = Log::open(config.clone(), storage).unwrap();
    let mut buffer = Vec::new();
    let count = 3000;
    for lsn in 0..count {
        record(7, lsn, &mut buffer);
        assert_eq!(log.append(&buffer).unwrap(), lsn);
        if lsn % 97 == 0 {
            log.flush().unwrap();
        }
    }
    log.flush().unwrap();
    assert!(log.segment_count() > 3, "the test rolls segments");
    let storage = log.close().unwrap();
    drop(storage);

    let storage = DirectStorage::open(dir.path(), &options).unwrap();
    let mut log = Log::open(config.clone(), storage).unwrap();
    assert_eq!(log.next_lsn(), count);
    assert_eq!(log.durable_lsn(), count);
    let mut read = vec![0u8; config.record_size_bytes_max as usize];
    for lsn in (0..count).step_by(7) {
        record(7, lsn, &mut buffer);
        let size = log.read(lsn, &mut read).unwrap();
        assert_eq!(&read[..size], &buffer[..], "lsn {lsn}");
    }
    let mut cursor = log.cursor(0).unwrap();
    for lsn in 0..count {
        record(7, lsn, &mut buffer);
        let found = log.cursor_next(&mut cursor).unwrap().expect("record");
        assert_eq!(found.lsn, lsn);
        assert_eq!(found.data, &buffer[..]);
    }
    // Retention drops whole segment files.
    let second = log.storage_mut().segment_list().unwrap()[1];
    log.truncate_prefix(second).unwrap();
    assert_eq!(log.first_lsn(), second);
    assert!(!dir
        .path()
        .join(ballast_log::storage::segment_file_name(0))
        .exists());
    for lsn in count..count + 100 {
        record(7, lsn, &mut buffer);
        log.append(&buffer).unwrap();
    }
    log.close().unwrap();
    let storage = DirectStorage::open(dir.path(), &options).unwrap();
    let log = Log::open(config, storage).unwrap();
    assert_eq!(log.first_lsn(), second);
    assert_eq!(log.next_lsn(), count + 100);
}
