//! Headers and names at the edges of the format's counters get typed errors, never a panic and
//! never a silent loss. Regressions: a forged header with epoch `u32::MAX - 1` made the next
//! open write blocks with an epoch the open after refused (acknowledged records dropped), and
//! a segment renamed just below `LSN_MAX` let appends write blocks that recovery refused.

mod common;

use ballast_log::format::{self, BlockHeader, LSN_APPEND_MAX, LSN_MAX};
use ballast_log::storage::{AlignedBuffer, MemStorage, Storage};
use ballast_log::{Error, Log};
use common::config_small;

/// Writes a valid block with no frames and the given epoch at `offset_bytes` of segment 0.
fn forge_block(storage: &mut MemStorage, offset_bytes: u64, epoch: u32, lsn_first: u64) {
    let config = config_small();
    let mut buffer = AlignedBuffer::new(4096, 4096);
    let mut header = BlockHeader {
        checksum_body: format::checksum(&[]),
        epoch,
        segment: 0,
        lsn_first,
        lsn_durable: lsn_first,
        offset_bytes: offset_bytes as u32,
        size_bytes: 4096,
        sector_size_bytes: config.sector_size_bytes,
        block_size_bytes: config.block_size_bytes,
        segment_size_bytes: config.segment_size_bytes,
        ..BlockHeader::default()
    };
    header.encode(&mut buffer);
    storage.write_submit(1, 0, offset_bytes, buffer, 4096);
    assert!(storage.poll(true).unwrap().result.is_ok());
}

#[test]
fn exhausted_epoch_counter_is_a_typed_error_not_a_loss() {
    for epoch in [u32::MAX - 1, u32::MAX] {
        let mut log = common::log_new(&config_small());
        log.append(b"one").unwrap();
        log.flush().unwrap();
        // Left as a crash leaves it, so that recovery scans past the end and meets the block
        // (after a clean close, nothing past the end is read: it cannot be the log's).
        let mut storage = log.into_storage();
        forge_block(&mut storage, 8192, epoch, 1);
        match Log::open(config_small(), storage) {
            // The next epoch fits: the open works and what it writes must survive the next.
            Ok(mut log) if epoch < u32::MAX => {
                for _ in 0..4 {
                    log.append(b"more").unwrap();
                }
                log.flush().unwrap();
                match Log::open(config_small(), log.close().unwrap()) {
                    Ok(log) => assert_eq!(log.next_lsn(), 5, "acknowledged records lost"),
                    Err(Error::NotALog { .. }) => {}
                    Err(error) => panic!("epoch {epoch}: {error}"),
                }
            }
            Ok(_) => panic!("epoch {epoch}: the open must refuse an exhausted epoch counter"),
            Err(Error::NotALog { reason }) => assert!(reason.contains("epoch"), "{reason}"),
            Err(error) => panic!("epoch {epoch}: unexpected {error}"),
        }
    }
}

#[test]
fn appends_stop_below_the_lsn_bound() {
    let config = config_small();
    let storage = common::log_new(&config).close().unwrap();
    let mut renamed = MemStorage::new(4096);
    let mut metadata = AlignedBuffer::new(4096, 4096);
    let mut source = storage;
    assert!(source.metadata_read(&mut metadata).unwrap());
    renamed.metadata_write(&metadata).unwrap();
    renamed
        .segment_create(LSN_MAX - 1, config.segment_size_bytes)
        .unwrap();
    let mut log = Log::open(config.clone(), renamed).unwrap();
    assert_eq!(log.next_lsn(), LSN_MAX - 1);
    const { assert!(LSN_MAX > LSN_APPEND_MAX) };
    match log.append(b"x") {
        Err(Error::LogFull { lsn_next }) => assert_eq!(lsn_next, LSN_MAX - 1),
        other => panic!("{other:?}"),
    }
    let mut beyond = MemStorage::new(4096);
    beyond.metadata_write(&metadata).unwrap();
    beyond
        .segment_create(LSN_MAX, config.segment_size_bytes)
        .unwrap();
    assert!(matches!(
        Log::open(config, beyond),
        Err(Error::NotALog { .. })
    ));
}

/// Appends work right up to the bound: a log restarted far on (a snapshot installed at LSN
/// 2^40, and one just below `LSN_APPEND_MAX`) takes records there, and they survive a reopen.
#[test]
fn appends_work_up_to_the_lsn_bound() {
    let config = config_small();
    for lsn in [1 << 40, LSN_APPEND_MAX - 2] {
        let mut log = common::log_new(&config);
        log.truncate_prefix(lsn).unwrap();
        assert_eq!(log.next_lsn(), lsn);
        assert_eq!(log.append(b"far on").unwrap(), lsn);
        assert_eq!(log.append(b"the last").unwrap(), lsn + 1);
        log.flush().unwrap();
        let storage = log.close().unwrap();
        let mut log = Log::open(config.clone(), storage).unwrap();
        assert_eq!((log.first_lsn(), log.next_lsn()), (lsn, lsn + 2));
        let mut buffer = [0u8; 16];
        let size = log.read(lsn + 1, &mut buffer).unwrap();
        assert_eq!(&buffer[..size], b"the last");
        assert!(
            matches!(log.append(b"x"), Err(Error::LogFull { .. })) == (lsn + 2 >= LSN_APPEND_MAX)
        );
    }
}
