//! The demo on disk: a writer process appends on `DirectStorage` and reports what it
//! appended and what was acknowledged; the demo kills it with SIGKILL, then recovers and
//! verifies in its own process.
//!
//! The writer's protocol, one line per event on its stdout:
//! `first-max L` before a retention that may move the first LSN up to `L`; `first L` after
//! it; `upto L` before an append step (no record at or after `L` is appended by it);
//! `durable L` after a flush (every record below `L` is acknowledged); `appended L` once the
//! `--records` records are appended and flushed, after which it keeps appending and
//! flushing until it is killed.

use super::*;
use ballast_log::storage::{DirectOptions, DirectStorage, METADATA_FILE_NAME};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// The kill comes this long after the append phase, at most (the exact delay follows from the
/// seed): long enough for more appends and flushes to be under way.
const KILL_DELAY_US_MAX: u64 = 50_000;

fn options(args: &DemoArgs, config: &Config) -> DirectOptions {
    DirectOptions {
        buffered_fallback: args.buffered_fallback,
        segment_count_max: config.segment_count_max,
        read_ahead_size_bytes: config.read_buffer_size_bytes,
        ..DirectOptions::default()
    }
}

/// The writer process.
pub fn writer(args: &DemoArgs, dir: &Path) -> Result<(), String> {
    let config = demo_config(args)?;
    let storage = DirectStorage::open(dir, &options(args, &config))
        .map_err(|error| format!("open: {error}"))?;
    let mut log = Log::open(config.clone(), storage).map_err(|error| format!("open: {error}"))?;
    let mut workload = Workload::new(args.seed, &config);
    let mut out = std::io::stdout().lock();
    let mut report = |line: std::fmt::Arguments| -> Result<(), String> {
        writeln!(out, "{line}").map_err(|error| format!("report: {error}"))
    };
    let segment_count_max = config.segment_count_max as usize;
    let mut unflushed: u64 = 0;
    let mut announced = false;
    loop {
        let segment_count = log.segment_count();
        if segment_count + 1 >= segment_count_max {
            let segments = log
                .storage_mut()
                .segment_list()
                .map_err(|error| format!("segment list: {error}"))?;
            report(format_args!(
                "first-max {}",
                segments[segment_count + 2 - segment_count_max]
            ))?;
            retention_apply(&mut log)?;
            report(format_args!("first {}", log.first_lsn()))?;
        }
        let appended = log.next_lsn();
        let count_max = if appended < args.records {
            args.records - appended
        } else {
            TAIL_RECORD_COUNT_MAX
        };
        let upto = appended + count_max.min(workload.batch_count_max as u64);
        report(format_args!("upto {upto}"))?;
        let step = workload.step(&mut log, count_max)?;
        unflushed += step.record_count;
        let phase_done = !announced && log.next_lsn() >= args.records;
        if unflushed >= args.flush_interval_records || phase_done {
            log.flush().map_err(|error| format!("flush: {error}"))?;
            report(format_args!("durable {}", log.durable_lsn()))?;
            unflushed = 0;
        }
        if phase_done {
            report(format_args!("appended {}", log.next_lsn()))?;
            announced = true;
        }
    }
}

/// What the demo knows of the writer from its reports.
#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    first: Lsn,
    first_max: Lsn,
    upto: Lsn,
    durable: Lsn,
    appended: Option<Lsn>,
    /// The writer's stdout closed: it exited or was killed.
    closed: bool,
}

fn progress_note(progress: &mut Progress, line: &str) -> Result<(), String> {
    let (event, value) = line
        .split_once(' ')
        .ok_or_else(|| format!("the writer said {line:?}"))?;
    let value: Lsn = value
        .parse()
        .map_err(|_| format!("the writer said {line:?}"))?;
    match event {
        "first-max" => progress.first_max = value,
        "first" => {
            progress.first = value;
            progress.first_max = value;
        }
        "upto" => progress.upto = progress.upto.max(value),
        "durable" => {
            if value < progress.durable {
                return Err(format!("the durable watermark went back to {value}"));
            }
            progress.durable = value;
        }
        "appended" => progress.appended = Some(value),
        _ => return Err(format!("the writer said {line:?}")),
    }
    Ok(())
}

type Shared = Arc<(Mutex<(Progress, Option<String>)>, Condvar)>;

fn reports_read(stdout: std::process::ChildStdout, shared: Shared) {
    let (lock, changed) = &*shared;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let mut state = lock.lock().expect("progress lock");
        if let Err(error) = progress_note(&mut state.0, &line) {
            state.1.get_or_insert(error);
        }
        changed.notify_all();
    }
    lock.lock().expect("progress lock").0.closed = true;
    changed.notify_all();
}

/// The whole disk demo: start the writer, kill it, recover, verify, resume.
pub fn demo(args: &DemoArgs, dir: &Path) -> Result<(), String> {
    if dir.join(METADATA_FILE_NAME).exists() {
        return Err(format!(
            "{} already holds a log; the demo needs a fresh directory",
            dir.display()
        ));
    }
    let config = demo_config(args)?;
    let mut workload = Workload::new(args.seed, &config);
    header_print(args, &config, &workload);
    let start = Instant::now();
    let (progress, kill_delay) = writer_run(args, dir)?;
    let Some(appended) = progress.appended else {
        return Err("the writer stopped before its append phase ended".to_string());
    };
    let expect = Expect {
        lsn_first: progress.first,
        lsn_first_max: progress.first_max.max(progress.first),
        lsn_durable: progress.durable,
        lsn_appended: progress.upto.max(appended),
    };
    println!("append (writer process)");
    println!(
        "  records     {} appended and flushed, flush every {} records, then more until the kill",
        appended, args.flush_interval_records
    );
    println!("  time        {:.3} s", elapsed_ns(start) as f64 / 1e9);
    println!("crash");
    println!(
        "  SIGKILL     {:.1} ms after the append phase: every record below lsn {} was \
         acknowledged, none at or after lsn {} was appended",
        kill_delay.as_secs_f64() * 1e3,
        expect.lsn_durable,
        expect.lsn_appended
    );
    let start = Instant::now();
    let storage = DirectStorage::open(dir, &options(args, &config))
        .map_err(|error| format!("reopen: {error}"))?;
    let mut log = Log::open(config, storage).map_err(|error| format!("reopen: {error}"))?;
    let recovery_ns = elapsed_ns(start);
    recovery_print(log.recovery_report(), recovery_ns, &expect);
    recovery_check(log.recovery_report(), &expect)?;
    let (lsn_start, lsn_end) = (log.first_lsn(), log.next_lsn());
    let start = Instant::now();
    record_range_verify(&mut log, &mut workload, lsn_start, lsn_end)?;
    let verify_ns = elapsed_ns(start);
    resume_phase(&mut log, &mut workload)?;
    let expect = Expect {
        lsn_first: lsn_start,
        ..expect
    };
    verified_print(&log, lsn_end, &expect, verify_ns);
    log.close().map_err(|error| format!("close: {error}"))?;
    println!(
        "the log stays in {}: try `ballast info --dir {0}` or `ballast verify --dir {0}`",
        dir.display()
    );
    Ok(())
}

/// Starts the writer, waits for its append phase, kills it at the seeded moment, and returns
/// what it reported and the delay of the kill.
fn writer_run(args: &DemoArgs, dir: &Path) -> Result<(Progress, Duration), String> {
    let executable =
        std::env::current_exe().map_err(|error| format!("cannot find this program: {error}"))?;
    let mut command = Command::new(executable);
    command
        .arg("demo")
        .arg("--writer")
        .arg("--dir")
        .arg(dir)
        .args(["--records", &args.records.to_string()])
        .args(["--record-size-max", &args.record_size_bytes_max.to_string()])
        .args(["--seed", &args.seed.to_string()])
        .args(["--segment-size-bytes", &args.segment_size_bytes.to_string()])
        .args(["--segment-count-max", &args.segment_count_max.to_string()])
        .args([
            "--flush-interval-records",
            &args.flush_interval_records.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if args.buffered_fallback {
        command.arg("--buffered-fallback");
    }
    let mut child = command
        .spawn()
        .map_err(|error| format!("cannot start the writer: {error}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let shared: Shared = Arc::new((Mutex::new((Progress::default(), None)), Condvar::new()));
    let reader = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || reports_read(stdout, shared))
    };
    {
        let (lock, changed) = &*shared;
        let mut state = lock.lock().expect("progress lock");
        while state.0.appended.is_none() && !state.0.closed && state.1.is_none() {
            state = changed.wait(state).expect("progress lock");
        }
    }
    let kill_delay = Duration::from_micros(mix(args.seed ^ DOMAIN_CRASH) % KILL_DELAY_US_MAX);
    std::thread::sleep(kill_delay);
    let _ = child.kill();
    let status = child
        .wait()
        .map_err(|error| format!("wait for the writer: {error}"))?;
    reader.join().expect("the report reader does not panic");
    let (progress, error) = shared.0.lock().expect("progress lock").clone();
    if let Some(error) = error {
        return Err(error);
    }
    if status.code().is_some() {
        return Err(format!("the writer exited on its own with {status}"));
    }
    Ok((progress, kill_delay))
}
