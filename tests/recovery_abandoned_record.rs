//! A crash that leaves the first fragments of a record on disk, but not its end, abandons that
//! record: the next epoch writes a new record at the same LSN. Regression: the sparse index
//! kept the abandoned continuation blocks' keys, which sort after the new record's, and the
//! first append after recovery panicked with "index keys out of order".

use ballast_log::storage::{MemStorage, SectorFate};
use ballast_log::{Config, Log};

fn config() -> Config {
    Config {
        segment_size_bytes: 1 << 20,
        block_size_bytes: 64 << 10,
        write_buffer_size_bytes: 64 << 10,
        read_buffer_size_bytes: 1 << 20,
        record_size_bytes_max: 256 << 10,
        segment_count_max: 8,
        ..Config::default()
    }
}

#[test]
fn append_after_an_abandoned_multi_block_record() {
    let mut log = Log::open(config(), MemStorage::new(4096)).unwrap();
    log.append(b"a").unwrap();
    log.flush().unwrap();
    // Spans four blocks: three are written (buffers full), none synced.
    log.append(&vec![7u8; 200 << 10]).unwrap();
    let mut storage = log.into_storage();
    storage.crash(|_, _| SectorFate::Kept);
    let mut log = Log::open(config(), storage).unwrap();
    assert_eq!(log.next_lsn(), 1);
    for round in 0..3u8 {
        let lsn = log.append(&[round; 70_000]).unwrap();
        log.append(b"x").unwrap();
        log.flush().unwrap();
        let mut buffer = vec![0u8; 256 << 10];
        let size = log.read(lsn, &mut buffer).unwrap();
        assert_eq!(&buffer[..size], &[round; 70_000][..]);
    }
    let mut buffer = vec![0u8; 256 << 10];
    let size = log.read(1, &mut buffer).unwrap();
    assert_eq!(&buffer[..size], &[0u8; 70_000][..]);
    let mut log = Log::open(config(), log.close().unwrap()).unwrap();
    assert_eq!(log.next_lsn(), 7);
    let mut cursor = log.cursor(0).unwrap();
    let mut sizes = Vec::new();
    while let Some(record) = log.cursor_next(&mut cursor).unwrap() {
        sizes.push(record.data.len());
    }
    assert_eq!(sizes, [1, 70_000, 1, 70_000, 1, 70_000, 1]);
}
