//! Real crashes: a writer process appends and flushes on `O_DIRECT` files and reports every
//! acknowledged LSN on a pipe; this test kills it with SIGKILL at seeded random moments,
//! reopens the log, checks that every acknowledged record is present and intact, and that
//! appending carries on from the recovered end.
//!
//! The moments follow the writer's own progress, not the clock alone, so that a slow or
//! loaded machine kills at the same kind of moments as a fast one: most kills come a seeded
//! random while after the writer's first acknowledgement, in the middle of its stream of
//! appends and flushes; the others come within the time the last writer took to reach its
//! first acknowledgement, so that they land while it starts, opens and recovers the log.
//!
//! The writer is this very test binary, started again with `BALLAST_KILL_CHILD_DIR` set: the
//! `kill_child` test then becomes the writer and never returns. 200 kills by default;
//! `BALLAST_KILLS=1000` runs more, `BALLAST_KILL_SEED=N` picks other moments.
//!
//! The second writer, `kill_child_shared`, runs several producer threads on one `SharedLog`
//! (group commit) and reports every record acknowledged as durable with its producer and
//! sequence number; `BALLAST_SHARED_KILLS` sets how many times it is killed (60 by default).
#![cfg(target_os = "linux")]

mod disk_common;
mod wait_common;

use ballast_log::storage::{DirectOptions, DirectStorage, Storage};
use ballast_log::{Config, Durability, Log, Lsn, SharedLog, SharedOptions};
use disk_common::{record, ScratchDir};
use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wait_common::{Pipe, Running};

const CHILD_DIR: &str = "BALLAST_KILL_CHILD_DIR";
const CHILD_PIPE: &str = "BALLAST_KILL_CHILD_PIPE";
const CHILD_GENERATION: &str = "BALLAST_KILL_CHILD_GENERATION";
const KILLS_DEFAULT: u64 = 200;
/// The writer lives at most this long after its first acknowledgement before it is killed.
const LIFE_US_MAX: u64 = 60_000;
/// One kill in this many comes while the writer starts rather than after its first
/// acknowledgement.
const STARTUP_KILL_EVERY: u64 = 4;
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

/// When a writer is killed: a while after it was started, or a while after its first report.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    AfterStart(Duration),
    AfterFirstReport(Duration),
}

/// Draws the moment of kill number `kill`. `startup` is how long the last writer took from
/// its start to its first report: kills within it land while a writer starts, opens and
/// recovers the log, on a slow machine as on a fast one. Which kills do so follows from
/// `kill` alone, so that most kills come after a first report, whatever the seed.
fn kill_at_draw(state: &mut u64, kill: u64, startup: Duration) -> KillAt {
    if kill % STARTUP_KILL_EVERY == STARTUP_KILL_EVERY - 1 {
        let startup_us = u64::try_from(startup.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        KillAt::AfterStart(Duration::from_micros(splitmix(state) % startup_us))
    } else {
        KillAt::AfterFirstReport(Duration::from_micros(splitmix(state) % LIFE_US_MAX))
    }
}

/// What a killed writer left: every byte it reported, and how long it took from its start to
/// its first report, if it got that far.
struct Killed {
    reports: Vec<u8>,
    startup: Option<Duration>,
}

/// Starts the writer, kills it at `kill_at`, and returns the highest watermark it
/// acknowledged (0 if none), and its time to its first report.
fn writer_run_and_kill(dir: &std::path::Path, kill_at: KillAt) -> (Lsn, Option<Duration>) {
    let killed = child_run_and_kill(dir, kill_at, "kill_child", 0, 8);
    let whole = killed.reports.len() / 8 * 8;
    let acknowledged = killed.reports[..whole]
        .chunks_exact(8)
        .map(|chunk| u64::from_le_bytes(chunk.try_into().expect("8 bytes")))
        .fold(0, |max, lsn| {
            assert!(lsn >= max, "watermarks only grow");
            lsn
        });
    (acknowledged, killed.startup)
}

/// Starts the test `child` as a writer in its own process, kills it with SIGKILL at `kill_at`
/// (`report_size_bytes` is the size of one report: the first whole one starts the clock of a
/// kill after the first report), and returns what it reported on its pipe.
fn child_run_and_kill(
    dir: &std::path::Path,
    kill_at: KillAt,
    child: &str,
    generation: u64,
    report_size_bytes: usize,
) -> Killed {
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
        .args(["--exact", child, "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_GENERATION, generation.to_string())
        .env(CHILD_PIPE, write_fd.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
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
    // Killed when dropped, so that a failing check below leaves no writer running.
    let mut writer =
        Running::start(&mut command, format!("the writer {child}")).expect("start the writer");
    let started = Instant::now();
    drop(write_end);
    let mut reports = Pipe::new(std::fs::File::from(read_end), "the writer's reports");
    let mut stderr = writer.stderr();
    let mut startup = None;
    match kill_at {
        KillAt::AfterStart(life) => std::thread::sleep(life),
        KillAt::AfterFirstReport(life) => {
            if !reports.wait_bytes(report_size_bytes) {
                let status = writer.wait();
                panic!(
                    "the writer ended ({status}) before its first report:\n{}",
                    String::from_utf8_lossy(stderr.wait_end())
                );
            }
            startup = Some(started.elapsed());
            std::thread::sleep(life);
        }
    }
    let status = writer.kill();
    assert!(
        status.code().is_none(),
        "the writer exited on its own ({status}): it failed before the kill:\n{}",
        String::from_utf8_lossy(stderr.wait_end())
    );
    Killed {
        reports: reports.wait_end().to_vec(),
        startup,
    }
}

/// Reopens the log after a kill and checks it: every acknowledged record is there and intact,
/// nothing else is wrong, and appends continue at the recovered end.
fn check_after_kill(dir: &std::path::Path, acknowledged: Lsn, buffer: &mut Vec<u8>) -> (Lsn, Lsn) {
    // The next writer takes the directory's lock after this check: no child may start while
    // the check holds it, or that child could keep it from the next writer.
    let _held = wait_common::directory_lock_hold();
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
    let mut startup = Duration::from_micros(LIFE_US_MAX);
    for kill in 0..kills {
        let kill_at = kill_at_draw(&mut state, kill, startup);
        let (acknowledged, startup_measured) = writer_run_and_kill(dir.path(), kill_at);
        startup = startup_measured.unwrap_or(startup);
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

const SHARED_PRODUCERS: u64 = 6;
const SHARED_KILLS_DEFAULT: u64 = 60;
/// A report on the pipe: LSN, producer, sequence number, each a little-endian `u64`.
const REPORT_SIZE_BYTES: usize = 24;

/// A record of the shared writer: it names its writer generation, producer and sequence
/// number, and its size and bytes follow from them, so that the parent can check it alone.
fn shared_record(generation: u64, producer: u64, sequence: u64, out: &mut Vec<u8>) {
    let mut state = generation ^ (producer << 48) ^ sequence.wrapping_mul(0x2545_F491_4F6C_DD1D);
    let size = 24 + (splitmix(&mut state) % 3000) as usize;
    out.clear();
    for word in [generation, producer, sequence] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    while out.len() < size {
        out.push(splitmix(&mut state) as u8);
    }
}

/// Checks a record of the shared writer byte for byte and returns who wrote it.
fn shared_parse(lsn: Lsn, data: &[u8]) -> (u64, u64, u64) {
    assert!(data.len() >= 24, "record {lsn} is too short");
    let word = |at: usize| u64::from_le_bytes(data[at..at + 8].try_into().expect("8 bytes"));
    let (generation, producer, sequence) = (word(0), word(8), word(16));
    let mut expected = Vec::new();
    shared_record(generation, producer, sequence, &mut expected);
    assert!(data == &expected[..], "record {lsn} differs");
    (generation, producer, sequence)
}

/// One producer of the shared writer: appends forever, waiting for durability on most records
/// and staging the others until a later wait, and reports each durable record.
fn shared_produce(
    shared: &SharedLog<DirectStorage>,
    pipe: &std::fs::File,
    generation: u64,
    producer: u64,
) {
    let mut state = generation * 31 + producer;
    let mut buffer = Vec::new();
    let mut pending: Vec<(Lsn, u64)> = Vec::new();
    for sequence in 0.. {
        shared_record(generation, producer, sequence, &mut buffer);
        let wait = splitmix(&mut state) % 4 != 0;
        let durability = if wait {
            Durability::Wait
        } else {
            Durability::Staged
        };
        let lsn = shared.append(&buffer, durability).expect("append");
        pending.push((lsn, sequence));
        if !wait && pending.len() < 8 {
            continue;
        }
        shared.wait_durable(lsn).expect("wait_durable");
        for (lsn, sequence) in pending.drain(..) {
            let mut report = [0u8; REPORT_SIZE_BYTES];
            for (at, word) in [lsn, producer, sequence].into_iter().enumerate() {
                report[at * 8..at * 8 + 8].copy_from_slice(&word.to_le_bytes());
            }
            // One write of 24 bytes to a pipe is atomic: reports of threads never interleave.
            std::io::Write::write_all(&mut &*pipe, &report).expect("report");
        }
        if producer == 0 && sequence % 4 == 0 {
            let segments = shared
                .with_storage(|storage| storage.segment_list().expect("list"))
                .expect("open");
            if segments.len() > SEGMENTS_KEPT {
                shared
                    .truncate_prefix(segments[1])
                    .expect("truncate_prefix");
            }
        }
    }
}

/// The shared writer: several producer threads on one `SharedLog`, until killed.
#[test]
fn kill_child_shared() {
    let (Ok(dir), Ok(pipe), Ok(generation)) = (
        std::env::var(CHILD_DIR),
        std::env::var(CHILD_PIPE),
        std::env::var(CHILD_GENERATION),
    ) else {
        return; // Run as a plain test: nothing to do.
    };
    let pipe: i32 = pipe.parse().expect("pipe descriptor");
    let generation: u64 = generation.parse().expect("generation");
    // SAFETY: the parent passed this descriptor, open for writing, for this process alone.
    let pipe = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(pipe) });
    let storage = DirectStorage::open(&dir, &DirectOptions::default()).expect("open storage");
    let log = Log::open(config(), storage).expect("open log");
    let options = SharedOptions {
        staging_size_bytes: 64 * 1024,
        staging_record_count_max: 64,
        ..SharedOptions::default()
    };
    let shared = SharedLog::open(log, options).expect("open shared log");
    std::thread::scope(|scope| {
        for producer in 0..SHARED_PRODUCERS {
            let (shared, pipe) = (&shared, &pipe);
            scope.spawn(move || shared_produce(shared, pipe, generation, producer));
        }
    });
}

/// Reopens the log after a kill of the shared writer and checks it: every record is intact
/// and dense, each producer's records are consecutive in LSN order, and every record ever
/// acknowledged that retention kept is there, as acknowledged.
fn check_shared_after_kill(
    dir: &std::path::Path,
    acknowledged: &HashMap<Lsn, (u64, u64, u64)>,
) -> Lsn {
    // As in `check_after_kill`: no child may start while this check holds the lock.
    let _held = wait_common::directory_lock_hold();
    let storage = DirectStorage::open(dir, &DirectOptions::default()).expect("reopen storage");
    let mut log = Log::open(config(), storage).expect("recovery after SIGKILL");
    let (first, next) = (log.first_lsn(), log.next_lsn());
    let end = acknowledged.keys().map(|lsn| lsn + 1).max().unwrap_or(0);
    assert!(
        next >= end,
        "acknowledged records lost: recovered end {next}, acknowledged {end}"
    );
    let mut last: HashMap<(u64, u64), u64> = HashMap::new();
    let mut cursor = log.cursor(first).expect("cursor");
    for lsn in first..next {
        let found = log
            .cursor_next(&mut cursor)
            .unwrap_or_else(|error| panic!("read lsn {lsn}: {error}"))
            .unwrap_or_else(|| panic!("the cursor ended at {lsn} before {next}"));
        assert_eq!(found.lsn, lsn);
        let (generation, producer, sequence) = shared_parse(lsn, found.data);
        if let Some(&previous) = last.get(&(generation, producer)) {
            assert_eq!(
                sequence,
                previous + 1,
                "producer {producer} lost its order at {lsn}"
            );
        }
        last.insert((generation, producer), sequence);
        if let Some(&expected) = acknowledged.get(&lsn) {
            assert_eq!(
                (generation, producer, sequence),
                expected,
                "acknowledged {lsn} differs"
            );
        }
    }
    assert!(log.cursor_next(&mut cursor).unwrap().is_none());
    log.close().expect("close");
    next
}

#[test]
fn acknowledged_records_of_many_producers_survive_sigkill() {
    let kills: u64 = std::env::var("BALLAST_SHARED_KILLS")
        .ok()
        .and_then(|kills| kills.parse().ok())
        .unwrap_or(SHARED_KILLS_DEFAULT);
    let mut state: u64 = std::env::var("BALLAST_KILL_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(1);
    let dir = ScratchDir::new("kill-shared");
    let mut acknowledged: HashMap<Lsn, (u64, u64, u64)> = HashMap::new();
    let mut acknowledging_writers = 0;
    let mut startup = Duration::from_micros(LIFE_US_MAX);
    for generation in 1..=kills {
        let kill_at = kill_at_draw(&mut state, generation, startup);
        let killed = child_run_and_kill(
            dir.path(),
            kill_at,
            "kill_child_shared",
            generation,
            REPORT_SIZE_BYTES,
        );
        startup = killed.startup.unwrap_or(startup);
        let reports = killed.reports;
        let whole = reports.len() / REPORT_SIZE_BYTES * REPORT_SIZE_BYTES;
        let before = acknowledged.len();
        for report in reports[..whole].chunks_exact(REPORT_SIZE_BYTES) {
            let word = |at: usize| u64::from_le_bytes(report[at..at + 8].try_into().expect("8"));
            let previous = acknowledged.insert(word(0), (generation, word(8), word(16)));
            assert!(previous.is_none(), "lsn {} acknowledged twice", word(0));
        }
        if acknowledged.len() > before {
            acknowledging_writers += 1;
        }
        check_shared_after_kill(dir.path(), &acknowledged);
    }
    eprintln!(
        "disk_kill shared: {kills} SIGKILLs of {SHARED_PRODUCERS} producers; \
         {acknowledging_writers} writers acknowledged records; {} records acknowledged",
        acknowledged.len()
    );
    assert!(
        kills < 20 || acknowledging_writers * 2 >= kills,
        "most writers must get records acknowledged before the kill, or the test tests little"
    );
}
