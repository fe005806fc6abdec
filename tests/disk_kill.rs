//! Real crashes: a writer process appends and flushes on `O_DIRECT` files and reports every
//! acknowledged LSN on a pipe; this test kills it with SIGKILL at seeded random moments,
//! reopens the log, checks that every acknowledged record is present and intact, and that
//! appending carries on from the recovered end.
//!
//! The writer is this very test binary, started again with `BALLAST_KILL_CHILD_DIR` set: the
//! `kill_child` test then becomes the writer and never returns. 200 kills by default;
//! `BALLAST_KILLS=1000` runs more, `BALLAST_KILL_SEED=N` picks other moments.
#![cfg(target_os = "linux")]

mod disk_common;

use ballast_log::storage::{DirectOptions, DirectStorage, Storage};
use ballast_log::{Config, Log, Lsn};
use disk_common::{record, ScratchDir};
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_DIR: &str = "BALLAST_KILL_CHILD_DIR";
const CHILD_PIPE: &str = "BALLAST_KILL_CHILD_PIPE";
const KILLS_DEFAULT: u64 = 200;
/// The writer lives at most this long before it is killed.
const LIFE_US_MAX: u64 = 60_000;
/// Segments the writer keeps; it drops older ones, so that each check stays small.
const SEGMENTS_KEPT: usize = 4;
const SEED_RECORDS: u64 = 0x5EED;

fn config() -> Config {
    Config {
        sector_size_bytes: 4096,
        block_size_bytes: 16 * 1024,
        segment_size_bytes: 256 * 1024,
        write_buffer_size_bytes: 32 * 1024,
        write_buffer_count: 4,
        record_size_bytes_max: 16 * 1024,
        segment_count_max: 16,
        read_buffer_size_bytes: 64 * 1024,
        ..Config::default()
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The writer: appends batches of records, flushes, reports the durable watermark, drops old
/// segments, forever (until killed).
#[test]
fn kill_child() {
    let (Ok(dir), Ok(pipe)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_PIPE)) else {
        return; // Run as a plain test: nothing to do.
    };
    let pipe: i32 = pipe.parse().expect("pipe descriptor");
    // SAFETY: the parent passed this descriptor, open for writing, for this process alone.
    let mut pipe = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(pipe) });
    let storage = DirectStorage::open(&dir, &DirectOptions::default()).expect("open storage");
    let mut log = Log::open(config(), storage).expect("open log");
    let mut state = log.next_lsn() ^ 0xC41D;
    let mut buffer = Vec::new();
    loop {
        let count = 1 + splitmix(&mut state) % 16;
        for _ in 0..count {
            let lsn = log.next_lsn();
            record(SEED_RECORDS, lsn, &mut buffer);
            assert_eq!(log.append(&buffer).expect("append"), lsn);
        }
        log.flush().expect("flush");
        std::io::Write::write_all(&mut pipe, &log.durable_lsn().to_le_bytes()).expect("report");
        if log.segment_count() > SEGMENTS_KEPT {
            let second = log.storage_mut().segment_list().expect("list")[1];
            log.truncate_prefix(second).expect("truncate_prefix");
        }
    }
}

/// Starts the writer, lets it live for `life`, kills it, and returns the highest watermark
/// it acknowledged (0 if none).
fn writer_run_and_kill(dir: &std::path::Path, life: Duration) -> Lsn {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for two descriptors. O_CLOEXEC on both: the child gets its copy
    // of the write end through `pre_exec` below.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors are new and owned here.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let write_fd = fds[1];
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args(["--exact", "kill_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_PIPE, write_fd.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: between fork and exec only async-signal-safe calls: fcntl clears close-on-exec
    // on the write end.
    unsafe {
        command.pre_exec(move || {
            if libc::fcntl(write_fd, libc::F_SETFD, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().expect("start the writer");
    drop(write_end);
    std::thread::sleep(life);
    child.kill().expect("SIGKILL the writer");
    let status = child.wait().expect("reap the writer");
    assert!(
        status.code().is_none(),
        "the writer exited on its own ({status}): it failed before the kill"
    );
    let mut reports = Vec::new();
    std::fs::File::from(read_end)
        .read_to_end(&mut reports)
        .expect("read the reports");
    let whole = reports.len() / 8 * 8;
    reports[..whole]
        .chunks_exact(8)
        .map(|chunk| u64::from_le_bytes(chunk.try_into().expect("8 bytes")))
        .fold(0, |max, lsn| {
            assert!(lsn >= max, "watermarks only grow");
            lsn
        })
}

/// Reopens the log after a kill and checks it: every acknowledged record is there and intact,
/// nothing else is wrong, and appends continue at the recovered end.
fn check_after_kill(dir: &std::path::Path, acknowledged: Lsn, buffer: &mut Vec<u8>) -> (Lsn, Lsn) {
    let storage = DirectStorage::open(dir, &DirectOptions::default()).expect("reopen storage");
    let mut log = Log::open(config(), storage).expect("recovery after SIGKILL");
    let (first, next) = (log.first_lsn(), log.next_lsn());
    assert!(
        next >= acknowledged,
        "acknowledged records lost: recovered end {next}, acknowledged {acknowledged}"
    );
    let mut cursor = log.cursor(first).expect("cursor");
    for lsn in first..next {
        record(SEED_RECORDS, lsn, buffer);
        let found = log
            .cursor_next(&mut cursor)
            .unwrap_or_else(|error| panic!("read lsn {lsn}: {error}"))
            .unwrap_or_else(|| panic!("the cursor ended at {lsn} before {next}"));
        assert_eq!(found.lsn, lsn);
        assert!(found.data == &buffer[..], "record {lsn} differs");
    }
    assert!(log.cursor_next(&mut cursor).unwrap().is_none());
    record(SEED_RECORDS, next, buffer);
    assert_eq!(log.append(buffer).expect("append after recovery"), next);
    log.flush().expect("flush after recovery");
    let mut read = vec![0u8; config().record_size_bytes_max as usize];
    let size = log.read(next, &mut read).expect("read the new record");
    assert!(read[..size] == buffer[..]);
    log.close().expect("close");
    (next, next + 1)
}

#[test]
fn acknowledged_records_survive_sigkill() {
    let kills: u64 = std::env::var("BALLAST_KILLS")
        .ok()
        .and_then(|kills| kills.parse().ok())
        .unwrap_or(KILLS_DEFAULT);
    let seed: u64 = std::env::var("BALLAST_KILL_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(1);
    let dir = ScratchDir::new("kill");
    let mut state = seed;
    let mut buffer = Vec::new();
    let mut acknowledged_max: Lsn = 0;
    let mut recovered_sum: u64 = 0;
    let mut durable_count: u64 = 0;
    let mut unacknowledged_kept: u64 = 0;
    let start = Instant::now();
    for kill in 0..kills {
        let life = Duration::from_micros(splitmix(&mut state) % LIFE_US_MAX);
        let acknowledged = writer_run_and_kill(dir.path(), life);
        if acknowledged > 0 {
            durable_count += 1;
        }
        assert!(
            acknowledged == 0 || acknowledged >= acknowledged_max,
            "kill {kill} (seed {seed}): the writer acknowledged {acknowledged} below an earlier \
             {acknowledged_max}"
        );
        acknowledged_max = acknowledged_max.max(acknowledged);
        let (recovered, next) = check_after_kill(dir.path(), acknowledged_max, &mut buffer);
        if recovered > acknowledged_max {
            // Records appended but not yet acknowledged reached the disk before the kill.
            unacknowledged_kept += 1;
        }
        // The parent's own append is acknowledged too.
        acknowledged_max = next;
        recovered_sum += next;
    }
    let elapsed = start.elapsed();
    eprintln!(
        "disk_kill: {kills} SIGKILLs (seed {seed}) in {:.1} s; {durable_count} writers \
         acknowledged records before their kill; {unacknowledged_kept} recoveries kept records \
         that were written but not yet acknowledged; log end {acknowledged_max} (mean \
         recovered end {})",
        elapsed.as_secs_f64(),
        recovered_sum / kills.max(1)
    );
    assert!(
        kills < 20 || durable_count * 2 >= kills,
        "most writers must get records acknowledged before the kill, or the test tests little"
    );
}
