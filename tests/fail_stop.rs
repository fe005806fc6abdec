//! A failed sync or write stops the log: every later call fails, and reopening recovers what
//! was durable.

mod common;

use ballast_log::{Error, IoOperation, Log};
use common::{check_by_lsn, config_small, record};

const SEED: u64 = 21;

fn assert_failed<T: std::fmt::Debug>(result: Result<T, Error>, operation: IoOperation) {
    match result {
        Err(Error::Failed {
            operation: found, ..
        }) => assert_eq!(found, operation),
        other => panic!("expected Failed({operation:?}), got {other:?}"),
    }
}

#[test]
fn failed_sync_stops_the_log_and_reopen_recovers() {
    let config = config_small();
    let mut log = common::log_new(&config);
    let mut bytes = Vec::new();
    for lsn in 0..50 {
        record(SEED, lsn, 3000, &mut bytes);
        log.append(&bytes).unwrap();
    }
    log.flush().unwrap();
    for lsn in 50..60 {
        record(SEED, lsn, 3000, &mut bytes);
        log.append(&bytes).unwrap();
    }
    log.storage_mut().fail_syncs(1);
    assert_failed(log.flush(), IoOperation::Sync);
    assert_eq!(
        log.durable_lsn(),
        50,
        "a failed sync must not advance the watermark"
    );
    // A later sync would succeed, but the log must not retry as if nothing happened.
    assert_failed(log.flush(), IoOperation::Sync);
    assert_failed(log.append(b"x"), IoOperation::Sync);
    assert_failed(log.append_batch(&[b"x"]), IoOperation::Sync);
    assert_failed(log.truncate_prefix(0), IoOperation::Sync);
    assert_failed(log.read(0, &mut [0; 8]), IoOperation::Sync);
    assert_failed(log.tick(), IoOperation::Sync);
    let mut log = Log::open(config, log.into_storage()).unwrap();
    assert!(log.next_lsn() >= 50);
    let next = log.next_lsn();
    check_by_lsn(&mut log, SEED, 0..next, 3000);
    log.append(b"continues").unwrap();
    log.flush().unwrap();
}

#[test]
fn failed_write_stops_the_log() {
    let config = config_small();
    let mut log = common::log_new(&config);
    log.append(b"durable").unwrap();
    log.flush().unwrap();
    log.storage_mut().fail_writes(1);
    log.append(&[7; 1000]).unwrap();
    assert_failed(log.flush(), IoOperation::Write);
    assert_failed(log.append(b"y"), IoOperation::Write);
    let mut log = Log::open(config, log.into_storage()).unwrap();
    assert_eq!(log.next_lsn(), 1);
    let mut buffer = [0u8; 16];
    let size = log.read(0, &mut buffer).unwrap();
    assert_eq!(&buffer[..size], b"durable");
}
