//! The API's limits and policies: record size, buffer size, LSN range, a full log, flush on
//! size and on timeout, retention with `truncate_prefix`.

mod common;

use ballast_log::{Config, Error, Log};
use common::{check_by_lsn, config_small, record};

#[test]
fn record_too_large_is_refused_and_batch_is_all_or_nothing() {
    let config = config_small();
    let mut log = common::log_new(&config);
    let max = config.record_size_bytes_max as usize;
    assert_eq!(log.append(&vec![1; max]).unwrap(), 0);
    match log.append(&vec![1; max + 1]) {
        Err(Error::RecordTooLarge {
            size_bytes,
            size_bytes_max,
        }) => {
            assert_eq!((size_bytes, size_bytes_max), (max as u64 + 1, max as u32));
        }
        other => panic!("{other:?}"),
    }
    let batch = [vec![1; 10], vec![2; max + 1]];
    assert!(matches!(
        log.append_batch(&batch),
        Err(Error::RecordTooLarge { .. })
    ));
    assert_eq!(log.next_lsn(), 1, "a refused batch appends nothing");
}

#[test]
fn read_errors_say_what_is_wrong() {
    let mut log = common::log_new(&config_small());
    log.append(&[9; 100]).unwrap();
    let mut small = [0u8; 10];
    assert!(matches!(
        log.read(0, &mut small),
        Err(Error::BufferTooSmall { size_bytes: 100 })
    ));
    match log.read(1, &mut small) {
        Err(Error::LsnOutOfRange {
            lsn,
            lsn_first,
            lsn_next,
        }) => {
            assert_eq!((lsn, lsn_first, lsn_next), (1, 0, 1));
        }
        other => panic!("{other:?}"),
    }
    assert!(log.cursor(2).is_err());
}

#[test]
fn cursor_yields_only_durable_records_and_resumes() {
    let mut log = common::log_new(&config_small());
    log.append(b"a").unwrap();
    log.append(b"b").unwrap();
    let mut cursor = log.cursor(0).unwrap();
    assert!(
        log.cursor_next(&mut cursor).unwrap().is_none(),
        "nothing durable yet"
    );
    log.flush().unwrap();
    log.append(b"c").unwrap();
    assert_eq!(log.cursor_next(&mut cursor).unwrap().unwrap().data, b"a");
    assert_eq!(log.cursor_next(&mut cursor).unwrap().unwrap().data, b"b");
    assert!(
        log.cursor_next(&mut cursor).unwrap().is_none(),
        "c is not durable"
    );
    log.flush().unwrap();
    let record = log.cursor_next(&mut cursor).unwrap().unwrap();
    assert_eq!((record.lsn, record.data), (2, b"c".as_slice()));
}

#[test]
fn flush_on_size_and_on_timeout() {
    let config = Config {
        flush_size_bytes: Some(10_000),
        flush_timeout_ns: Some(1_000_000),
        ..config_small()
    };
    let mut log = common::log_new(&config);
    log.append(&[0; 4000]).unwrap();
    log.append(&[0; 4000]).unwrap();
    assert_eq!(log.durable_lsn(), 0);
    log.append(&[0; 4000]).unwrap();
    assert_eq!(
        log.durable_lsn(),
        3,
        "12 000 bytes reach the size threshold"
    );
    log.append(b"small").unwrap();
    log.storage().set_now_ns(999_999);
    log.tick().unwrap();
    assert_eq!(log.durable_lsn(), 3, "not yet due");
    log.storage().set_now_ns(1_000_000);
    log.tick().unwrap();
    assert_eq!(log.durable_lsn(), 4, "due after the timeout");
}

#[test]
fn truncate_prefix_drops_whole_segments_and_survives_reopen() {
    let config = Config {
        segment_size_bytes: 32 * 1024,
        ..config_small()
    };
    let mut log = common::log_new(&config);
    let mut bytes = Vec::new();
    for lsn in 0..200 {
        record(5, lsn, 3000, &mut bytes);
        log.append(&bytes).unwrap();
    }
    log.flush().unwrap();
    let segments = log.segment_count();
    assert!(segments >= 4);
    log.truncate_prefix(120).unwrap();
    let first = log.first_lsn();
    assert!(first > 0 && first <= 120, "first {first}");
    assert!(log.segment_count() < segments);
    assert!(matches!(
        log.read(first - 1, &mut [0; 8]),
        Err(Error::LsnOutOfRange { .. })
    ));
    check_by_lsn(&mut log, 5, first..200, 3000);
    log.truncate_prefix(200).unwrap();
    assert_eq!(log.segment_count(), 1, "only the current segment stays");
    let first = log.first_lsn();
    let mut log = Log::open(config.clone(), log.close().unwrap()).unwrap();
    assert_eq!((log.first_lsn(), log.next_lsn()), (first, 200));
    check_by_lsn(&mut log, 5, first..200, 3000);
    // Past the end: every record goes, and the log starts again, empty, there.
    log.truncate_prefix(250).unwrap();
    assert_eq!(
        (log.first_lsn(), log.next_lsn(), log.durable_lsn()),
        (250, 250, 250)
    );
    assert_eq!(log.segment_count(), 1);
    assert!(matches!(
        log.read(199, &mut [0; 8]),
        Err(Error::LsnOutOfRange { .. })
    ));
    for lsn in 250..260 {
        record(5, lsn, 3000, &mut bytes);
        assert_eq!(log.append(&bytes).unwrap(), lsn);
    }
    let mut log = Log::open(config, log.close().unwrap()).unwrap();
    assert_eq!((log.first_lsn(), log.next_lsn()), (250, 260));
    check_by_lsn(&mut log, 5, 250..260, 3000);
}

#[test]
fn full_log_is_reported_and_retention_frees_it() {
    let config = Config {
        segment_size_bytes: 32 * 1024,
        segment_count_max: 2,
        ..config_small()
    };
    let mut log = common::log_new(&config);
    let result = (0..100).try_for_each(|_| log.append(&[3; 5000]).map(|_| ()));
    let lsn_next = match result {
        Err(Error::LogFull { lsn_next }) => lsn_next,
        other => panic!("{other:?}"),
    };
    assert_eq!(log.next_lsn(), lsn_next);
    log.flush().unwrap();
    log.truncate_prefix(lsn_next).unwrap();
    log.append(&[3; 5000]).unwrap();
    log.flush().unwrap();
}
