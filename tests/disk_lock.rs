//! One writer per log directory: a second `DirectStorage::open`, in this process or in
//! another, fails with `Error::Locked` and writes nothing; once the first writer is gone, the
//! directory opens again. Readers (`open_read_only`) take no lock.
#![cfg(target_os = "linux")]

mod disk_common;
mod wait_common;

use ballast_log::storage::{DirectOptions, DirectStorage, LOCK_FILE_NAME, TEMPORARY_FILE_SUFFIX};
use ballast_log::{Error, Log};
use disk_common::{config_disk, ScratchDir};
use std::path::Path;
use std::process::{Command, Stdio};
use wait_common::Running;

const CHILD_DIR: &str = "BALLAST_LOCK_CHILD_DIR";
const HELD: &str = "BALLAST-LOCK-HELD";

/// Every file of the directory with its bytes, to check that a refused open wrote nothing.
/// Temporary files are left out: the writer holding the lock makes its spare segment
/// (`spare.segment.tmp`) ahead of need on a thread of its own, whenever that thread runs, so
/// it may appear between two snapshots; a refused open fails before it could touch one.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(TEMPORARY_FILE_SUFFIX) {
                return None;
            }
            Some((name, std::fs::read(entry.path()).unwrap()))
        })
        .collect();
    files.sort();
    files
}

/// What differs between two snapshots, one line per file, for a readable failure message.
fn snapshot_changes(before: &[(String, Vec<u8>)], after: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut changes = Vec::new();
    for (name, bytes) in before {
        match after.iter().find(|(other, _)| other == name) {
            None => changes.push(format!("{name}: removed")),
            Some((_, now)) if now.len() != bytes.len() => {
                changes.push(format!("{name}: {} bytes, then {}", bytes.len(), now.len()));
            }
            Some((_, now)) => {
                if let Some(at) = (0..bytes.len()).find(|&at| bytes[at] != now[at]) {
                    changes.push(format!("{name}: first changed at byte {at}"));
                }
            }
        }
    }
    for (name, _) in after {
        if !before.iter().any(|(other, _)| other == name) {
            changes.push(format!("{name}: added"));
        }
    }
    changes
}

fn assert_locked(result: ballast_log::Result<DirectStorage>, dir: &Path) {
    match result {
        Err(Error::Locked { path }) => assert_eq!(path, dir),
        Err(error) => panic!("expected Locked, got {error}"),
        Ok(_) => panic!("a second writer opened a locked directory"),
    }
}

#[test]
fn second_writer_in_this_process_is_locked_out() {
    // The directory is opened again below: no other test may start a child meanwhile, or the
    // child could keep the lock a moment after this test has let it go.
    let _held = wait_common::directory_lock_hold();
    let dir = ScratchDir::new("lock-in-process");
    let options = DirectOptions::default();
    let mut log = Log::open(
        config_disk(),
        DirectStorage::open(dir.path(), &options).unwrap(),
    )
    .unwrap();
    log.append(b"first writer").unwrap();
    log.flush().unwrap();
    let before = snapshot(dir.path());
    assert_locked(DirectStorage::open(dir.path(), &options), dir.path());
    let changes = snapshot_changes(&before, &snapshot(dir.path()));
    assert!(changes.is_empty(), "the refused writer wrote: {changes:?}");
    let message = DirectStorage::open(dir.path(), &options)
        .unwrap_err()
        .to_string();
    assert!(message.contains("locked"), "{message}");
    // A reader needs no lock.
    let reader = DirectStorage::open_read_only(dir.path(), &options, 0).unwrap();
    let mut reader = Log::open(config_disk(), reader).unwrap();
    assert_eq!(reader.next_lsn(), 1);
    let mut buffer = [0u8; 64];
    let size = reader.read(0, &mut buffer).unwrap();
    assert_eq!(&buffer[..size], b"first writer");
    drop(reader);
    log.close().unwrap();
    // The lock goes with the storage.
    let storage = DirectStorage::open(dir.path(), &options).unwrap();
    assert_eq!(Log::open(config_disk(), storage).unwrap().next_lsn(), 1);
}

/// Run by the test below in a child process: holds the directory until killed.
#[test]
fn lock_holder_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let storage = DirectStorage::open(&dir, &DirectOptions::default()).expect("child open");
    let mut log = Log::open(config_disk(), storage).expect("child log");
    log.append(b"child").unwrap();
    log.flush().unwrap();
    println!("{HELD}");
    loop {
        std::thread::park();
    }
}

#[test]
fn second_writer_in_another_process_is_locked_out() {
    let dir = ScratchDir::new("lock-other-process");
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "lock_holder_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = Running::start(&mut command, "the lock holder").unwrap();
    let mut stdout = child.stdout();
    let held = std::iter::from_fn(|| stdout.line()).any(|line| line.contains(HELD));
    assert!(held, "the child did not take the lock");
    let before = snapshot(dir.path());
    assert!(before.iter().any(|(name, _)| name == LOCK_FILE_NAME));
    assert_locked(
        DirectStorage::open(dir.path(), &DirectOptions::default()),
        dir.path(),
    );
    let changes = snapshot_changes(&before, &snapshot(dir.path()));
    assert!(changes.is_empty(), "the refused writer wrote: {changes:?}");
    child.kill();
    // The kernel released the dead writer's lock: the directory opens, with its record.
    let storage = DirectStorage::open(dir.path(), &DirectOptions::default()).unwrap();
    let mut log = Log::open(config_disk(), storage).unwrap();
    assert_eq!(log.next_lsn(), 1);
    let mut buffer = [0u8; 16];
    let size = log.read(0, &mut buffer).unwrap();
    assert_eq!(&buffer[..size], b"child");
}
