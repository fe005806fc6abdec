//! `DirectStorage::open_read_only`: readers beside a running writer, without its lock, that
//! never change a file, even when the log's recovery would write (a seal after a torn tail).
#![cfg(target_os = "linux")]

mod disk_common;

use ballast_log::storage::{DirectOptions, DirectStorage, Storage};
use ballast_log::{Config, Log};
use disk_common::{config_disk, record, ScratchDir};
use std::os::unix::fs::FileExt;
use std::path::Path;

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(entry.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

fn reader(dir: &Path, config: &Config, lsn_from: u64) -> Log<DirectStorage> {
    let storage = DirectStorage::open_read_only(dir, &DirectOptions::default(), lsn_from).unwrap();
    assert!(storage.is_read_only());
    Log::open(config.clone(), storage).unwrap()
}

fn check_records(log: &mut Log<DirectStorage>, from: u64, to: u64) {
    let mut cursor = log.cursor(from).unwrap();
    let mut expected = Vec::new();
    for lsn in from..to {
        record(3, lsn, &mut expected);
        let found = log.cursor_next(&mut cursor).unwrap().expect("record");
        assert_eq!(found.lsn, lsn);
        assert_eq!(found.data, &expected[..]);
    }
    assert!(log.cursor_next(&mut cursor).unwrap().is_none());
}

#[test]
fn readers_follow_a_running_writer() {
    let dir = ScratchDir::new("read-only-follow");
    let config = config_disk();
    let storage = DirectStorage::open(dir.path(), &DirectOptions::default()).unwrap();
    let mut writer = Log::open(config.clone(), storage).unwrap();
    let mut buffer = Vec::new();
    for round in 0..3u64 {
        for lsn in round * 500..(round + 1) * 500 {
            record(3, lsn, &mut buffer);
            writer.append(&buffer).unwrap();
        }
        writer.flush().unwrap();
        let end = (round + 1) * 500;
        let mut log = reader(dir.path(), &config, 0);
        assert_eq!(log.next_lsn(), end);
        assert_eq!(log.durable_lsn(), end);
        check_records(&mut log, 0, end);
        // From an LSN, only the segments from the one that holds it are opened.
        let mut log = reader(dir.path(), &config, end - 10);
        assert!(log.first_lsn() <= end - 10);
        check_records(&mut log, end - 10, end);
    }
    assert!(writer.segment_count() > 1);
    writer.close().unwrap();
}

#[test]
fn a_reader_never_writes_even_when_recovery_would() {
    let dir = ScratchDir::new("read-only-torn");
    let config = config_disk();
    let storage = DirectStorage::open(dir.path(), &DirectOptions::default()).unwrap();
    let mut writer = Log::open(config.clone(), storage).unwrap();
    let mut buffer = Vec::new();
    for lsn in 0..300 {
        record(3, lsn, &mut buffer);
        writer.append(&buffer).unwrap();
    }
    writer.flush().unwrap();
    let end = writer.recovery_report().end_offset_bytes;
    assert_eq!(end, 0, "a fresh log");
    let last = *writer.storage_mut().segment_list().unwrap().last().unwrap();
    writer.close().unwrap();
    // A torn write after the end: garbage in the sector where the next block would go.
    let storage = DirectStorage::open_read_only(dir.path(), &DirectOptions::default(), 0).unwrap();
    let probe = Log::open(config.clone(), storage).unwrap();
    let tail = probe.recovery_report().end_offset_bytes;
    drop(probe);
    let path = dir
        .path()
        .join(ballast_log::storage::segment_file_name(last));
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[0xEE; 300], tail).unwrap();
    file.sync_all().unwrap();
    drop(file);
    let before = files(dir.path());
    for _ in 0..2 {
        let mut log = reader(dir.path(), &config, 0);
        assert_eq!(log.next_lsn(), 300);
        check_records(&mut log, 0, 300);
    }
    assert_eq!(files(dir.path()), before, "a reader changed the files");
    // The writer settles the torn tail for real and carries on.
    let storage = DirectStorage::open(dir.path(), &DirectOptions::default()).unwrap();
    let mut writer = Log::open(config.clone(), storage).unwrap();
    assert_eq!(writer.next_lsn(), 300);
    record(3, 300, &mut buffer);
    writer.append(&buffer).unwrap();
    writer.close().unwrap();
    assert_ne!(files(dir.path()), before);
    let mut log = reader(dir.path(), &config, 0);
    check_records(&mut log, 0, 301);
}
