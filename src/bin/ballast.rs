//! `ballast`: the command-line face of Ballast.
//!
//! `append`, `cat`, `info` and `verify` work on a log directory through `DirectStorage`
//! (`O_DIRECT` files); `bench` measures the log on disk against the raw device path; `demo`
//! runs the main job end to end (append, crash, recover, verify), in memory or, with `--dir`,
//! on disk with a real SIGKILL.

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};

#[path = "ballast/bench.rs"]
mod bench;
#[path = "ballast/demo.rs"]
mod demo;
#[path = "ballast/disk.rs"]
mod disk;
#[path = "ballast/truncate.rs"]
mod truncate;

use bench::BenchArgs;
use demo::{demo, DemoArgs};
use disk::{AppendArgs, CatArgs, InfoArgs, VerifyArgs};
use truncate::TruncateArgs;

/// Ballast, an embeddable, crash-safe, append-only log, on the command line.
///
/// A log is a directory: segment files named by their first LSN
/// (`00000000000000000000.segment`, preallocated), a `metadata` file and a `lock` file.
/// Files are opened with O_DIRECT; a filesystem that refuses it (ramfs, tmpfs before Linux
/// 6.6) is an error unless `--buffered-fallback` is given. One writer at a time: `append`
/// takes the directory's lock, and a second writer fails with "locked". `cat`, `info` and
/// `verify` take no lock and change no file, so they run beside a writer, and they print only
/// records that are durable on disk.
///
/// Examples:
///
///   printf 'hello\nworld\n' | ballast append --dir /var/lib/app/log
///
///   ballast cat --dir /var/lib/app/log --from 1 -f
///
///   ballast verify --dir /var/lib/app/log && echo intact
///
/// Set `RUST_LOG` (for example `RUST_LOG=info` or `RUST_LOG=ballast_log=debug`) to see the
/// library's tracing on stderr; the default level is `warn`.
#[derive(Parser)]
#[command(name = "ballast", version, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Appends records read from stdin: one per line (without its newline), or
    /// length-prefixed with `--length-prefixed`.
    ///
    /// Creates the log if the directory holds none. Records are flushed (written and
    /// fdatasynced) whenever stdin has no more input ready, and at the end of the input, so a
    /// slow producer gets each record durable as soon as it pauses and a bulk input is synced
    /// in bulk. Prints the LSN range appended. Fails with "locked" if another writer holds the
    /// directory, and with "log full" at `--segment-count-max` segments unless a retention
    /// limit (`--retain-bytes`, `--retain-segments`) drops the oldest segments as new ones
    /// fill, as Kafka's `retention.bytes` does.
    Append(AppendArgs),

    /// Prints records, one per line (or length-prefixed), from `--from` (default: the first).
    ///
    /// Only durable records are printed: the log is opened read-only, without the writer's
    /// lock, and what it reads is fdatasynced before it is printed. With `-f`, keeps printing
    /// records as a writer makes them durable, like `tail -f`: every `--interval-ms` it checks
    /// whether a segment file changed, and if so reopens the log from the segment holding the
    /// next record (so each check reads at most one segment plus what is new).
    Cat(CatArgs),

    /// Shows the log's segments, LSN range, durable watermark and sizes.
    Info(InfoArgs),

    /// Reads the whole log and checks every block checksum, chain link and record frame.
    ///
    /// Exit status:
    ///   0  intact: every record reads back, and nothing valid lies after the end.
    ///   1  acknowledged data is damaged or unreadable. The report names the segment file
    ///      and the byte offset of the damaged block. The records there are known to have
    ///      been durable: the metadata's checkpoint (a clean close or an open), a later
    ///      block, or a block a whole window further on says so.
    ///   2  could not verify: no log, wrong arguments, an IO error.
    ///   3  possible loss: every record up to the end reads back, but recovery dropped
    ///      valid blocks after the end that nothing attests were durable (a crash cut the
    ///      log before them, or damage hid the block before them). The report says how
    ///      many records they claim beyond which LSN.
    ///
    /// Shows a progress bar on a terminal.
    #[command(verbatim_doc_comment)]
    Verify(VerifyArgs),

    /// Drops old segments (`--before LSN`) or every record from an LSN on (`--from LSN`).
    ///
    /// Takes the directory's lock like `append`, so it fails with "locked" beside a running
    /// writer, and a writer started meanwhile fails the same way. `--before` drops whole
    /// segments only: records at and after LSN stay, and so do earlier records sharing their
    /// segment. `--from` removes a suffix, as a Raft follower does when its log conflicts with
    /// the leader's; it asks for confirmation on stdin (with the lock held) unless `--yes` is
    /// given, and is durable when it returns: a crash leaves the log before or after it,
    /// never a mixture. Exit status 1 if the answer was no.
    ///
    /// Examples:
    ///
    ///   ballast truncate --dir /var/lib/app/log --before 1000000
    ///
    ///   ballast truncate --dir /var/lib/app/log --from 4242 --yes
    #[command(verbatim_doc_comment)]
    Truncate(TruncateArgs),

    /// Measures the log on DirectStorage against raw O_DIRECT writes in the same run.
    ///
    /// Bulk appends of 128 B and 1 KiB records against a sequential O_DIRECT write of the
    /// same bytes in 1 MiB buffers (throughput ratio, target at least 0.90); one producer
    /// flushing after every record against a 4 KiB O_DIRECT write + fdatasync (latency
    /// percentiles, target p99 at most 1.5 times the raw one). Prints a Markdown table.
    Bench(BenchArgs),

    /// Appends records, crashes, recovers, and verifies every acknowledged record.
    ///
    /// The demo appends `--records` records of pseudo-random sizes (a mix of single appends
    /// and batches, flushed every `--flush-interval-records` records), then keeps appending
    /// and crashes. In memory (the default), the crash keeps, loses or tears every sector
    /// written since the last sync, as a pure function of `--seed`. With `--dir`, the log is
    /// on disk and the crash is real: the appends run in a child process that the demo kills
    /// with SIGKILL. The demo then reopens the log, checks that every acknowledged record
    /// survived byte for byte (read by LSN and with a cursor), and that appends resume at the
    /// recovered end. Exits with status 1 if any check fails.
    Demo(DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging_init();
    let result = match &cli.command {
        Command::Append(args) => disk::append(args),
        Command::Cat(args) => disk::cat(args),
        Command::Info(args) => disk::info(args),
        Command::Verify(args) => disk::verify(args),
        Command::Truncate(args) => truncate::truncate(args),
        Command::Bench(args) => bench::bench(args),
        Command::Demo(args) => demo(args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("ballast: error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Sends `tracing` events to stderr, filtered by `RUST_LOG` (default `warn`).
fn logging_init() {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::WARN.into())
        .from_env()
        .unwrap_or_else(|error| {
            eprintln!("ballast: ignoring RUST_LOG ({error}); logging at warn");
            EnvFilter::new("warn")
        });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// A size in bytes, in the largest binary unit that keeps it at least 1.
fn size_human(size_bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if size_bytes < 1024 {
        return format!("{size_bytes} B");
    }
    let mut value = size_bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
