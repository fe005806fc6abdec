//! Segment files are preallocated: after `segment_create` (a log's open or a roll) each file
//! has the segment's size and its blocks are allocated, so a full disk shows up when a segment
//! is created, not in the middle of a write. Creating a segment that exists replaces it with
//! zeros, as recovery needs; files a crash left half-made are removed at open.
#![cfg(target_os = "linux")]

mod disk_common;
mod wait_common;

use ballast_log::storage::{
    segment_file_name, AlignedBuffer, DirectOptions, DirectStorage, Storage,
};
use ballast_log::Log;
use disk_common::{config_disk, ScratchDir};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

#[test]
fn segments_are_allocated_at_creation() {
    let dir = ScratchDir::new("preallocation");
    let config = config_disk();
    let storage = DirectStorage::open(dir.path(), &DirectOptions::default()).unwrap();
    let mut log = Log::open(config.clone(), storage).unwrap();
    let record = vec![0x11u8; 10_000];
    while log.segment_count() < 3 {
        log.append(&record).unwrap();
    }
    log.flush().unwrap();
    let segments = log.storage_mut().segment_list().unwrap();
    assert_eq!(segments.len(), 3);
    for segment in segments {
        let path = dir.path().join(segment_file_name(segment));
        let metadata = std::fs::metadata(&path).unwrap();
        assert_eq!(
            metadata.len(),
            config.segment_size_bytes,
            "{}",
            path.display()
        );
        assert!(
            metadata.blocks() * 512 >= config.segment_size_bytes,
            "{}: {} bytes allocated of {}",
            path.display(),
            metadata.blocks() * 512,
            config.segment_size_bytes
        );
    }
    let metadata = std::fs::metadata(dir.path().join("metadata")).unwrap();
    assert_eq!(metadata.len(), u64::from(config.sector_size_bytes));
}

#[test]
fn creating_an_existing_segment_replaces_it_with_zeros() {
    let dir = ScratchDir::new("replace");
    let size = 64 * 1024;
    let mut storage = DirectStorage::open(dir.path(), &DirectOptions::default()).unwrap();
    let sector = storage.sector_size_bytes() as usize;
    storage.segment_create(7, size).unwrap();
    let mut buffer = AlignedBuffer::new(4096, 4096);
    buffer.fill(0xAB);
    storage.write_submit(1, 7, 8192, buffer, 4096);
    let completion = storage.poll(true).unwrap();
    assert!(completion.result.is_ok());
    storage.sync_submit(2, 7);
    assert!(storage.poll(true).unwrap().result.is_ok());
    let mut read = AlignedBuffer::new(4096, sector.max(4096));
    storage.read(7, 8192, &mut read).unwrap();
    assert!(read.iter().all(|&byte| byte == 0xAB));
    storage.segment_create(7, size).unwrap();
    storage.read(7, 8192, &mut read).unwrap();
    assert!(
        read.iter().all(|&byte| byte == 0),
        "a replaced segment reads as zeros"
    );
    assert_eq!(storage.segment_size_bytes(7).unwrap(), size);
    assert_eq!(storage.segment_list().unwrap(), vec![7]);
    // Never-written bytes read as zeros, and the file has its size on disk.
    storage.read(7, size - 4096, &mut read).unwrap();
    assert!(read.iter().all(|&byte| byte == 0));
    let path = dir.path().join(segment_file_name(7));
    assert_eq!(std::fs::metadata(path).unwrap().len(), size);
    storage.segment_remove(7).unwrap();
    assert!(storage.segment_list().unwrap().is_empty());
}

#[test]
fn half_made_files_are_removed_at_open() {
    let dir = ScratchDir::new("half-made");
    drop(DirectStorage::open(dir.path(), &DirectOptions::default()).unwrap());
    let stray = dir.path().join(format!("{}.tmp", segment_file_name(42)));
    std::fs::write(&stray, b"cut short by a crash").unwrap();
    let metadata_stray = dir.path().join("metadata.tmp");
    std::fs::write(&metadata_stray, b"also cut short").unwrap();
    let mut storage = DirectStorage::open(dir.path(), &DirectOptions::default()).unwrap();
    assert!(!stray.exists() && !metadata_stray.exists());
    assert!(storage.segment_list().unwrap().is_empty());
}

/// Waits until the spare segment file exists with `size_bytes`, and returns its inode. The
/// preparer makes it on a thread of its own, so this waits for the file, not for a guessed
/// time; the deadline only catches a preparer that never makes it.
fn spare_wait(dir: &std::path::Path, size_bytes: u64) -> u64 {
    let path = dir.join("spare.segment.tmp");
    let what = format!("a spare segment of {size_bytes} bytes");
    wait_common::poll_until(&what, Duration::from_millis(1), || {
        let metadata = std::fs::metadata(&path).ok()?;
        (metadata.len() == size_bytes).then(|| metadata.ino())
    })
}

#[test]
fn a_roll_renames_the_spare_made_ahead_into_place() {
    let dir = ScratchDir::new("prepare-ahead");
    let size_bytes = 1 << 20;
    let mut storage = DirectStorage::open(dir.path(), &DirectOptions::default()).unwrap();
    storage.segment_create(0, size_bytes).unwrap();
    let spare = spare_wait(dir.path(), size_bytes);
    storage.segment_create(1 << 20, size_bytes).unwrap();
    let path = dir.path().join(segment_file_name(1 << 20));
    let metadata = std::fs::metadata(&path).unwrap();
    assert_eq!(metadata.ino(), spare, "the roll used the spare");
    assert_eq!(metadata.len(), size_bytes);
    assert!(
        metadata.blocks() * 512 >= size_bytes,
        "the spare is allocated"
    );
    // It reads as zeros and takes writes like any segment.
    let mut buffer = AlignedBuffer::new(1 << 20, 4096);
    buffer.fill(0xAA);
    storage.read(1 << 20, 0, &mut buffer).unwrap();
    assert!(buffer.iter().all(|&byte| byte == 0));
    // The next spare is made, and a clean close removes it.
    spare_wait(dir.path(), size_bytes);
    drop(storage);
    assert!(!dir.path().join("spare.segment.tmp").exists());
    // A spare left by a crash is removed when a writer opens the directory.
    std::fs::write(dir.path().join("spare.segment.tmp"), b"left by a crash").unwrap();
    let storage = DirectStorage::open(dir.path(), &DirectOptions::default()).unwrap();
    assert!(!dir.path().join("spare.segment.tmp").exists());
    assert!(!storage.is_read_only());
}

#[test]
fn without_prepare_ahead_no_spare_is_made() {
    let dir = ScratchDir::new("prepare-off");
    let options = DirectOptions {
        segment_prepare_ahead: false,
        ..DirectOptions::default()
    };
    let mut storage = DirectStorage::open(dir.path(), &options).unwrap();
    storage.segment_create(0, 1 << 20).unwrap();
    storage.segment_create(1 << 20, 1 << 20).unwrap();
    // A pause that a wrongly started preparer could use to show itself. It cannot fail a
    // correct build however long the machine makes it; it only gives the check its teeth.
    std::thread::sleep(Duration::from_millis(100));
    assert!(!dir.path().join("spare.segment.tmp").exists());
}
