//! The `ballast` command on a log directory: `append` then `cat` give the records back,
//! `verify` passes an intact log and names the file and offset of damage in a corrupted copy
//! (the last flush of a closed log included), reports valid blocks after the end as a possible
//! loss with its own exit status,
//! `cat -f` follows a writer, `info` describes the log, and `demo --dir` crashes a real writer
//! process and verifies, and `bench --producers --readers` reports every case against both raw
//! references and the readers' run against the producers alone.
#![cfg(all(feature = "cli", target_os = "linux"))]

mod cli_common;
mod disk_common;
mod wait_common;

use cli_common::{ballast, failure, success};

use ballast_log::storage::{DirectOptions, DirectStorage};
use ballast_log::Log;
use disk_common::ScratchDir;
use std::path::Path;
use std::process::{Command, Stdio};
use wait_common::Running;

#[test]
fn append_then_cat_round_trip() {
    let dir = ScratchDir::new("cli-roundtrip");
    let log = dir.path().join("log");
    let lines: String = (0..5000)
        .map(|index| format!("record {index} {}\n", "x".repeat(index % 300)))
        .collect();
    let out = success(&ballast(&["append"], &log, lines.as_bytes()));
    assert!(out.contains("appended 5000 records (lsn 0..5000)"), "{out}");
    let out = success(&ballast(
        &["append"],
        &log,
        b"one more\n\nafter an empty one",
    ));
    assert!(out.contains("lsn 5000..5003"), "{out}");
    let cat = success(&ballast(&["cat"], &log, b""));
    let expected = format!("{lines}one more\n\nafter an empty one\n");
    assert!(cat == expected, "cat differs from what was appended");
    let from = success(&ballast(&["cat", "--from", "4999", "--lsn"], &log, b""));
    assert_eq!(
        from,
        format!(
            "4999\trecord 4999 {}\n5000\tone more\n5001\t\n5002\tafter an empty one\n",
            "x".repeat(4999 % 300)
        )
    );
    // Length-prefixed records may hold any bytes, newlines included.
    let mut framed = Vec::new();
    for record in [&b"a\nb"[..], b"", &[0u8, 255, 10, 13]] {
        framed.extend_from_slice(&(record.len() as u32).to_le_bytes());
        framed.extend_from_slice(record);
    }
    let out = success(&ballast(&["append", "--length-prefixed"], &log, &framed));
    assert!(out.contains("lsn 5003..5006"), "{out}");
    let cat = ballast(&["cat", "--from", "5003", "--length-prefixed"], &log, b"");
    assert_eq!(cat.stdout, framed);
    let info = success(&ballast(&["info"], &log, b""));
    assert!(info.contains("lsn 0..5006 (5006 records)"), "{info}");
    assert!(info.contains("00000000000000000000.segment"), "{info}");
}

/// A record limit that the segments cannot hold is refused before anything is made, and the
/// error names the flags that set it.
#[test]
fn append_refuses_a_record_limit_the_segments_cannot_hold() {
    let dir = ScratchDir::new("cli-record-limit");
    let log = dir.path().join("log");
    let args = [
        "append",
        "--segment-size-bytes",
        "1048576",
        "--record-size-max",
        "4000000",
    ];
    let error = failure(&ballast(&args, &log, b"one\n"));
    assert!(error.contains("--record-size-max"), "{error}");
    assert!(!log.join("metadata").exists(), "nothing is made");
}

#[test]
fn verify_names_the_damaged_block() {
    let dir = ScratchDir::new("cli-verify");
    let log = dir.path().join("log");
    let lines: String = (0..20_000).map(|index| format!("{index:08}\n")).collect();
    success(&ballast(&["append"], &log, lines.as_bytes()));
    // A second append writes blocks that attest the first append's records as durable.
    success(&ballast(&["append"], &log, b"attesting\n"));
    let out = success(&ballast(&["verify"], &log, b""));
    assert!(out.contains("ok: 20001 records"), "{out}");

    let copy = dir.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(&log).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    let segment = copy.join("00000000000000000000.segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[100_000] ^= 0x40; // Inside the second 64 KiB block, which starts at byte 65536.
    std::fs::write(&segment, &bytes).unwrap();
    let output = ballast(&["verify"], &copy, b"");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("00000000000000000000.segment"), "{stdout}");
    assert!(stdout.contains("byte offset 65536"), "{stdout}");
    // The original is untouched and still verifies.
    success(&ballast(&["verify"], &log, b""));
    // No log at all: status 2.
    let output = ballast(&["verify"], &dir.path().join("nothing"), b"");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn cat_follow_prints_records_as_they_become_durable() {
    let dir = ScratchDir::new("cli-follow");
    let log = dir.path().join("log");
    success(&ballast(&["append"], &log, b"before\n"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_ballast"));
    command
        .args(["cat", "-f", "--interval-ms", "20", "--dir"])
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // Killed when dropped, also when an assertion below fails, and each line is awaited with
    // a deadline: a follower that stops printing fails the test instead of hanging it.
    let mut follower = Running::start(&mut command, "ballast cat -f").expect("run ballast");
    let mut lines = follower.stdout();
    assert_eq!(lines.line().as_deref(), Some("before"));
    for round in 0..3 {
        let record = format!("follow {round}");
        success(&ballast(
            &["append"],
            &log,
            format!("{record}\n").as_bytes(),
        ));
        assert_eq!(lines.line(), Some(record));
    }
    follower.kill();
}

#[test]
fn demo_on_disk_survives_a_real_kill() {
    let dir = ScratchDir::new("cli-demo");
    let mut command = Command::new(env!("CARGO_BIN_EXE_ballast"));
    command
        .args(["demo", "--records", "5000", "--dir"])
        .arg(dir.path().join("log"))
        .env_remove("RUST_LOG");
    let output = wait_common::output(&mut command, b"", "ballast demo").expect("run ballast");
    let stdout = success(&output);
    assert!(stdout.contains("SIGKILL"), "{stdout}");
    assert!(stdout.contains("verified"), "{stdout}");
}

/// Runs `ballast bench`, which must succeed; its standard output.
fn bench_output(command: &mut Command) -> String {
    let output = wait_common::output(command, b"", "ballast bench").expect("run ballast");
    success(&output)
}

/// The cells of the table row of `stdout` that starts with `prefix`.
fn table_row(stdout: &str, prefix: &str) -> Vec<String> {
    let line = stdout
        .lines()
        .find(|line| line.starts_with(prefix))
        .unwrap_or_else(|| panic!("no row {prefix:?} in\n{stdout}"));
    line.split('|')
        .map(|cell| cell.trim().to_string())
        .collect()
}

/// `bench --reads`: every case beside the raw reads alternated with it; the warm pass with
/// the cache on finds every sector the cold pass loaded, and with the cache off none.
#[test]
fn bench_reads_reports_cold_and_warm_with_the_cache_on_and_off() {
    let dir = ScratchDir::new("cli-bench-reads");
    let mut command = Command::new(env!("CARGO_BIN_EXE_ballast"));
    command
        .args([
            "bench",
            "--reads",
            "200",
            "--size-bytes",
            "8388608",
            "--dir",
        ])
        .arg(dir.path())
        .env_remove("RUST_LOG");
    let stdout = bench_output(&mut command);
    let cells = |prefix: &str| table_row(&stdout, prefix);
    for cache in ["cache 16 MiB", "cache off"] {
        let raw = cells(&format!(
            "| raw 4 KiB O_DIRECT random pread, alternated with the cold reads ({cache})"
        ));
        assert!(raw[2].parse::<f64>().unwrap() > 0.0, "{stdout}");
        for pass in ["cold", "warm"] {
            let row = cells(&format!("| {pass} 1 KiB point reads, {cache}"));
            assert!(row[3].parse::<f64>().unwrap() > 0.0, "{stdout}");
        }
    }
    assert_eq!(
        cells("| warm 1 KiB point reads, cache 16 MiB")[6],
        "1.000",
        "{stdout}"
    );
    assert_eq!(
        cells("| warm 1 KiB point reads, cache off")[6],
        "0.000",
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "{stdout}"
    );
}

#[test]
fn bench_producers_reports_every_case_against_both_references() {
    let dir = ScratchDir::new("cli-bench");
    let mut command = Command::new(env!("CARGO_BIN_EXE_ballast"));
    command
        .args([
            "bench",
            "--producers",
            "3",
            "--readers",
            "2",
            "--replica-behind-bytes",
            "1048576",
            "--samples",
            "100",
            "--dir",
        ])
        .arg(dir.path())
        .env_remove("RUST_LOG");
    let stdout = bench_output(&mut command);
    let row = |prefix: &str| table_row(&stdout, prefix);
    for reference in ["fresh blocks", "written blocks"] {
        let cells = row(&format!(
            "| raw 4 KiB O_DIRECT pwrite + fdatasync, {reference}"
        ));
        let rate: f64 = cells[2].trim_end_matches(" syncs/s").parse().unwrap();
        assert!(rate > 0.0, "{stdout}");
    }
    for (producers, group_max) in [(1, 1.0), (3, 3.0)] {
        let cells = row(&format!("| {producers} producer(s), 1 KiB, wait durable"));
        let group: f64 = cells[3].parse().unwrap();
        // Every record waits for durability, so a group holds at most one record per producer.
        assert!((1.0..=group_max).contains(&group), "{stdout}");
        for ratio in &cells[4..6] {
            assert!(ratio.parse::<f64>().unwrap() > 0.0, "{stdout}");
        }
    }
    // The readers' run: its rate against the producers alone, and every record read by each.
    let cells = row("| 3 producer(s) while 2 tail reader(s) follow");
    assert!(cells[2].parse::<f64>().unwrap() > 0.0, "{stdout}");
    let reads = format!(
        "every one saw every record once, in order ({} records",
        2 * 3 * 96
    );
    assert!(stdout.contains(&reads), "{stdout}");
    // The replica's run: 1 MiB of 1 KiB records before the producers, then theirs.
    let cells = row("| 3 producer(s) while 1 replica catches up from LSN 0 (1 MiB behind)");
    assert!(cells[2].parse::<f64>().unwrap() > 0.0, "{stdout}");
    let replica = format!(
        "replica: saw every record once, in order ({} records read in all",
        8 * (1024 + 3 * 12)
    );
    assert!(stdout.contains(&replica), "{stdout}");
    assert!(stdout.contains("against fresh blocks"), "{stdout}");
    // The scratch files are gone: only the directory the test made is left.
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "{stdout}"
    );
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// The sequence a new user tried: 20,000 records appended and closed, four bytes flipped in
/// the only flush. Before the metadata attested a clean close, `verify` said "intact" with 0,
/// 4,434 or 8,794 records. Now it names the damaged block and exits with status 1.
#[test]
fn damage_to_the_last_flush_of_a_closed_log_is_named() {
    let dir = ScratchDir::new("cli-verify-closed");
    let log = dir.path().join("log");
    let lines: String = (1..=20_000)
        .map(|index| format!("record-{index}\n"))
        .collect();
    // From a file, as `< in.txt` does: the input is ready at once, so `append` flushes once
    // at its end however busy the machine is (from a pipe it flushes whenever the pipe runs
    // dry for a moment).
    let input = dir.path().join("in.txt");
    std::fs::write(&input, &lines).expect("write the input");
    let mut command = Command::new(env!("CARGO_BIN_EXE_ballast"));
    command
        .args(["append", "--dir"])
        .arg(&log)
        .env_remove("RUST_LOG");
    let stdin = std::fs::File::open(&input).expect("open the input");
    let output =
        wait_common::output_from_file(&mut command, stdin, "ballast append").expect("run ballast");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("1 flushes"),
        "one flush, nothing after it"
    );
    for (offset, block) in [(5_000, 0), (70_000, 65_536), (150_000, 131_072)] {
        let copy = dir.path().join(format!("copy-{offset}"));
        copy_dir(&log, &copy);
        let segment = copy.join("00000000000000000000.segment");
        let mut bytes = std::fs::read(&segment).unwrap();
        for (index, byte) in [0xff, 0xfe, 0xfd, 0xfc].into_iter().enumerate() {
            bytes[offset + index] = byte;
        }
        std::fs::write(&segment, &bytes).unwrap();
        let output = ballast(&["verify"], &copy, b"");
        let stdout = text(&output.stdout);
        assert_eq!(output.status.code(), Some(1), "offset {offset}: {stdout}");
        assert!(stdout.contains("00000000000000000000.segment"), "{stdout}");
        assert!(
            stdout.contains(&format!("byte offset {block}:")),
            "{stdout}"
        );
        assert!(!stdout.contains("intact"), "{stdout}");
    }
}

/// A crash left valid blocks after a lost one, in the last flush, which nothing attests:
/// `verify` reads every record up to the end, then exits with status 3 and says how many
/// records the dropped blocks claim; `info` shows the same.
#[test]
fn valid_blocks_after_the_end_are_a_possible_loss() {
    let dir = ScratchDir::new("cli-verify-discarded");
    let path = dir.path().join("log");
    let config = disk_common::config_disk();
    let storage = DirectStorage::open(&path, &DirectOptions::default()).unwrap();
    let mut log = Log::open(config, storage).unwrap();
    for index in 0..10u32 {
        log.append(format!("first {index}").as_bytes()).unwrap();
    }
    log.flush().unwrap();
    for _ in 0..60 {
        log.append(&[0x42u8; 1000]).unwrap();
    }
    log.flush().unwrap();
    // The first flush wrote one 4 KiB block; the second flush's blocks start right after it.
    let offset = 4096;
    // The process dies without closing: nothing attests the second flush.
    drop(log.into_storage());
    let segment = path.join("00000000000000000000.segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[offset..offset + 4096].fill(0);
    std::fs::write(&segment, &bytes).unwrap();
    let output = ballast(&["verify"], &path, b"");
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(3),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert!(stdout.contains("POSSIBLE LOSS"), "{stdout}");
    assert!(stdout.contains("beyond lsn 10"), "{stdout}");
    assert!(stdout.contains("10 records (lsn 0..10"), "{stdout}");
    assert!(!stdout.contains("intact"), "{stdout}");
    let output = ballast(&["info"], &path, b"");
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(stdout.contains("discarded   possible loss of"), "{stdout}");
    assert!(stdout.contains("not closed cleanly"), "{stdout}");
}
