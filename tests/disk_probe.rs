//! The `O_DIRECT` probe: on a filesystem that refuses `O_DIRECT`, `DirectStorage::open` fails
//! with `Error::DirectIoUnsupported`, unless the caller opts into the buffered fallback, on
//! which the log works as usual. On a filesystem that accepts it, the alignment comes from
//! `statx(STATX_DIOALIGN)` (or 4096) and fits the log's sector size.
//!
//! A refusing filesystem: `/dev/shm` if it is a tmpfs without `O_DIRECT` (before Linux 6.6);
//! otherwise a ramfs mounted in a private mount namespace (`unshare --user --map-root-user
//! --mount`), where this test binary runs itself again. Where neither is possible, the test
//! says so and skips.
#![cfg(target_os = "linux")]

mod disk_common;
mod wait_common;

use ballast_log::storage::{DirectOptions, DirectStorage, IoMode, Storage};
use ballast_log::{Error, Log};
use disk_common::{config_disk, ScratchDir};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

const CHILD_DIR: &str = "BALLAST_PROBE_CHILD_DIR";
const DONE: &str = "BALLAST-PROBE-DONE";
const SKIP: &str = "BALLAST-PROBE-SKIP";

/// Whether creating a file with `O_DIRECT` in `dir` fails with EINVAL.
fn refuses_direct(dir: &Path) -> bool {
    let path = dir.join(format!("ballast-probe-{}", std::process::id()));
    let name = CString::new(path.as_os_str().as_bytes()).unwrap();
    let flags = libc::O_CREAT | libc::O_RDWR | libc::O_DIRECT | libc::O_CLOEXEC;
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { libc::open(name.as_ptr(), flags, 0o600) };
    let errno = std::io::Error::last_os_error().raw_os_error();
    if fd >= 0 {
        // SAFETY: a descriptor we just opened.
        unsafe { libc::close(fd) };
    }
    let _ = std::fs::remove_file(&path);
    fd < 0 && errno == Some(libc::EINVAL)
}

/// The checks on a directory whose filesystem refuses `O_DIRECT`.
fn check_refusing(dir: &Path) {
    let strict = DirectOptions::default();
    match DirectStorage::open(dir, &strict) {
        Err(Error::DirectIoUnsupported { path }) => assert_eq!(path, dir),
        Err(error) => panic!("expected DirectIoUnsupported, got {error}"),
        Ok(_) => panic!("O_DIRECT was refused but open succeeded"),
    }
    let message = DirectStorage::open(dir, &strict).unwrap_err().to_string();
    assert!(message.contains("O_DIRECT"), "{message}");
    let fallback = DirectOptions {
        buffered_fallback: true,
        ..DirectOptions::default()
    };
    let storage = DirectStorage::open(dir, &fallback).unwrap();
    assert_eq!(storage.io_mode(), IoMode::Buffered);
    let mut log = Log::open(config_disk(), storage).unwrap();
    for index in 0..500u32 {
        log.append(&index.to_le_bytes().repeat(50)).unwrap();
    }
    log.flush().unwrap();
    log.close().unwrap();
    assert!(matches!(
        DirectStorage::open_read_only(dir, &strict, 0),
        Err(Error::DirectIoUnsupported { .. })
    ));
    let storage = DirectStorage::open(dir, &fallback).unwrap();
    let mut log = Log::open(config_disk(), storage).unwrap();
    assert_eq!(log.next_lsn(), 500);
    let mut buffer = vec![0u8; 200];
    assert_eq!(log.read(499, &mut buffer).unwrap(), 200);
    assert_eq!(&buffer[..4], &499u32.to_le_bytes());
}

/// Run by the test below inside a private mount namespace.
#[test]
fn probe_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let target = CString::new(dir.as_bytes()).unwrap();
    // SAFETY: NUL-terminated strings; no data argument.
    let mounted = unsafe {
        libc::mount(
            c"none".as_ptr(),
            target.as_ptr(),
            c"ramfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if mounted != 0 {
        println!("{SKIP}: mount ramfs: {}", std::io::Error::last_os_error());
        return;
    }
    let dir = Path::new(&dir);
    if !refuses_direct(dir) {
        println!("{SKIP}: this kernel's ramfs accepts O_DIRECT");
        return;
    }
    check_refusing(dir);
    println!("{DONE}");
}

#[test]
fn filesystem_refusing_o_direct_is_a_typed_error() {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && refuses_direct(shm) {
        let dir = shm.join(format!("ballast-probe-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        check_refusing(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        return;
    }
    let dir = ScratchDir::new("probe-ramfs");
    let mut command = Command::new("unshare");
    command
        .args(["--user", "--map-root-user", "--mount", "--"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "probe_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path());
    let output = wait_common::output(&mut command, b"", "the probe child in a namespace");
    let output = match output {
        Ok(output) => output,
        Err(error) => {
            eprintln!("SKIPPED: /dev/shm accepts O_DIRECT and `unshare` cannot run: {error}");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !stdout.contains("running 1 test") {
        eprintln!(
            "SKIPPED: /dev/shm accepts O_DIRECT and no private mount namespace is allowed \
             here: {}",
            stderr.trim()
        );
        return;
    }
    assert!(
        output.status.success(),
        "the probe checks failed in the namespace:\n{stdout}\n{stderr}"
    );
    if let Some(line) = stdout.lines().find(|line| line.contains(SKIP)) {
        eprintln!("SKIPPED: {line}");
        return;
    }
    assert!(stdout.contains(DONE), "{stdout}\n{stderr}");
}

#[test]
fn alignment_fits_the_log_sector_size() {
    let dir = ScratchDir::new("probe-alignment");
    assert!(
        !refuses_direct(dir.path()),
        "the scratch directory must accept O_DIRECT (CI's filesystem does)"
    );
    let storage = DirectStorage::open(dir.path(), &DirectOptions::default()).unwrap();
    assert_eq!(storage.io_mode(), IoMode::Direct);
    let sector = storage.sector_size_bytes();
    assert!(
        sector.is_power_of_two() && (512..=4096).contains(&sector),
        "{sector}"
    );
    assert_eq!(config_disk().sector_size_bytes % sector, 0);
}
