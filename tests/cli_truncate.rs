//! `ballast truncate` and `append`'s retention: `--before` drops whole segments and keeps
//! every record at and after the LSN; `--from` drops a suffix, asks first (with the lock held,
//! so a writer started meanwhile is refused), and appends continue at the LSN; `append
//! --retain-segments` / `--retain-bytes` keep the log within its limit where it would
//! otherwise fail with "log full".
#![cfg(all(feature = "cli", target_os = "linux"))]

mod cli_common;
mod disk_common;
mod wait_common;

use cli_common::{ballast, failure, success};

use disk_common::ScratchDir;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use wait_common::Running;

/// Small segments, so that a few thousand lines make several.
const SEGMENT: &[&str] = &["--segment-size-bytes", "131072"];

fn lines(range: std::ops::Range<u64>) -> String {
    range.map(|index| format!("record-{index}\n")).collect()
}

/// `cat --lsn`, parsed: (lsn, record) pairs.
fn cat(dir: &Path) -> Vec<(u64, String)> {
    success(&ballast(&["cat", "--lsn"], dir, b""))
        .lines()
        .map(|line| {
            let (lsn, record) = line.split_once('\t').expect("an lsn, a tab, a record");
            (lsn.parse().expect("an lsn"), record.to_string())
        })
        .collect()
}

fn segment_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("read the log directory")
        .filter(|entry| {
            let name = entry.as_ref().expect("an entry").file_name();
            name.to_string_lossy().ends_with(".segment")
        })
        .count()
}

#[test]
fn truncate_before_drops_whole_segments_and_keeps_the_rest() {
    let dir = ScratchDir::new("cli-truncate-before");
    let log = dir.path().join("log");
    success(&ballast(
        &[&["append"], SEGMENT].concat(),
        &log,
        lines(0..20000).as_bytes(),
    ));
    let segments = segment_count(&log);
    assert!(segments >= 3, "{segments} segments: too few to drop any");

    let out = success(&ballast(&["truncate", "--before", "12000"], &log, b""));
    assert!(out.contains("the log holds lsn "), "{out}");
    let records = cat(&log);
    let first = records[0].0;
    assert!(first > 0 && first <= 12000, "first lsn {first}");
    assert!(segment_count(&log) < segments);
    // Every record from the new first one on is still there, in order, byte for byte.
    let expected: Vec<(u64, String)> = (first..20000)
        .map(|lsn| (lsn, format!("record-{lsn}")))
        .collect();
    assert_eq!(records, expected);
    let verify = success(&ballast(&["verify"], &log, b""));
    assert!(verify.starts_with("ok:"), "{verify}");
    // Before the first record held: the first segment stays, and the output says so.
    let first_text = first.to_string();
    let out = success(&ballast(&["truncate", "--before", &first_text], &log, b""));
    assert!(out.starts_with("nothing dropped"), "{out}");
    assert_eq!(cat(&log)[0].0, first);

    // Past the end is refused, and says how to drop everything but the last segment.
    let error = failure(&ballast(&["truncate", "--before", "20001"], &log, b""));
    assert!(
        error.contains("past the end") && error.contains("--before 20000"),
        "{error}"
    );
    assert_eq!(cat(&log).len(), records.len());
}

#[test]
fn truncate_from_drops_the_suffix_and_appends_continue_there() {
    let dir = ScratchDir::new("cli-truncate-from");
    let log = dir.path().join("log");
    success(&ballast(
        &[&["append"], SEGMENT].concat(),
        &log,
        lines(0..20000).as_bytes(),
    ));

    // No answer: nothing is dropped, and the error says how to go without asking.
    let error = failure(&ballast(&["truncate", "--from", "5000"], &log, b""));
    assert!(error.contains("--yes"), "{error}");
    // "no" keeps everything.
    let output = ballast(&["truncate", "--from", "5000"], &log, b"n\n");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(cat(&log).len(), 20000);

    let out = success(&ballast(
        &["truncate", "--from", "5000", "--yes"],
        &log,
        b"",
    ));
    assert!(
        out.contains("dropped 15000 records (lsn 5000..20000)"),
        "{out}"
    );
    success(&ballast(&["append"], &log, b"after-a\nafter-b\n"));
    let mut expected: Vec<(u64, String)> = (0..5000)
        .map(|lsn| (lsn, format!("record-{lsn}")))
        .collect();
    expected.push((5000, "after-a".into()));
    expected.push((5001, "after-b".into()));
    assert_eq!(cat(&log), expected);
    let verify = success(&ballast(&["verify"], &log, b""));
    assert!(verify.starts_with("ok:"), "{verify}");

    let error = failure(&ballast(
        &["truncate", "--from", "5003", "--yes"],
        &log,
        b"",
    ));
    assert!(error.contains("outside the log"), "{error}");
}

#[test]
fn a_writer_is_refused_while_a_truncation_holds_the_lock() {
    let dir = ScratchDir::new("cli-truncate-lock");
    let log = dir.path().join("log");
    success(&ballast(&["append"], &log, lines(0..100).as_bytes()));
    let mut command = Command::new(env!("CARGO_BIN_EXE_ballast"));
    command
        .args(["truncate", "--from", "40", "--dir"])
        .arg(&log)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut truncate = Running::start(&mut command, "ballast truncate").expect("run ballast");
    let mut stdin = truncate.stdin();
    let mut stderr = truncate.stderr();
    // The question is asked with the lock held: wait for it, not for a guessed time.
    wait_common::poll_until(
        "the confirmation question",
        Duration::from_millis(5),
        || {
            String::from_utf8_lossy(stderr.bytes_now())
                .contains("[y/N]")
                .then_some(())
        },
    );
    let error = failure(&ballast(&["append"], &log, b"intruder\n"));
    assert!(error.contains("locked"), "{error}");
    stdin.write_all(b"y\n").expect("answer the question");
    drop(stdin);
    let status = truncate.wait();
    assert!(status.success(), "truncate failed: {status}");
    let expected: Vec<(u64, String)> = (0..40).map(|lsn| (lsn, format!("record-{lsn}"))).collect();
    assert_eq!(cat(&log), expected);
}

#[test]
fn retention_keeps_a_full_log_appending() {
    let dir = ScratchDir::new("cli-retention");
    let log = dir.path().join("log");
    let small = [SEGMENT, &["--segment-count-max", "2"]].concat();
    // Without retention, two segments fill and the append fails, pointing at the remedies.
    let error = failure(&ballast(
        &[&["append"], &small[..]].concat(),
        &log,
        lines(0..40000).as_bytes(),
    ));
    assert!(
        error.contains("log full") && error.contains("--retain-bytes"),
        "{error}"
    );

    let retained = [&["append", "--retain-segments", "2"], &small[..]].concat();
    let out = success(&ballast(&retained, &log, lines(40000..100000).as_bytes()));
    assert!(out.contains("retention dropped"), "{out}");
    assert!(segment_count(&log) <= 2, "{} segments", segment_count(&log));
    let records = cat(&log);
    assert_eq!(
        records.last().map(|(_, record)| record.as_str()),
        Some("record-99999")
    );
    let first = records[0].0;
    assert_eq!(records.len() as u64, records.last().unwrap().0 + 1 - first);

    // --retain-bytes: at most that many bytes of segment files (here two 128 KiB segments).
    let by_bytes = ["append", "--retain-bytes", "300000"];
    let out = success(&ballast(&by_bytes, &log, lines(100000..160000).as_bytes()));
    assert!(out.contains("retention dropped"), "{out}");
    assert!(segment_count(&log) <= 2, "{} segments", segment_count(&log));
    assert_eq!(
        cat(&log).last().map(|(_, record)| record.clone()),
        Some("record-159999".into())
    );
}
