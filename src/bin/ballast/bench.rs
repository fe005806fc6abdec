//! `ballast bench`: the log on `DirectStorage` against the raw device path, measured side by
//! side in one run.
//!
//! - Bulk append of 128 B and 1 KiB records through the log (`append`, one `flush` at the
//!   end), against a raw sequential `O_DIRECT` write of the same number of payload bytes in
//!   1 MiB buffers into a file preallocated with `fallocate`, then one `fdatasync`. Each side
//!   is timed from opening its files to the end of its sync; repetitions alternate log and
//!   raw, and the medians are compared. Target: log / raw throughput at least 0.90.
//! - One producer flushing after every 128 B record (`append` + `flush`), against a raw 4 KiB
//!   `O_DIRECT` `pwrite` + `fdatasync` at the next offset of a preallocated file, and of one
//!   whose blocks were written before. Samples alternate one by one so that all see the same
//!   disk weather. Target: p99 of the log at most 1.5 times the raw p99 (fresh blocks; the
//!   ratio to written blocks is printed beside it).
//! - With `--producers N`: N producer threads on one `SharedLog`, each appending 1 KiB records
//!   and waiting for each to be durable (group commit), next to 1 producer doing the same,
//!   next to the raw 4 KiB `O_DIRECT` `pwrite` + `fdatasync` loop, in one run. The raw loop
//!   runs twice, on a segment-sized file: on fresh blocks (`fallocate` + `fsync`, as the log's
//!   segments are made) and on blocks written before, which the filesystem syncs without
//!   marking them written. Each case starts after `syncfs` and a pause. Targets: durable
//!   records/s at least 0.8 x (raw syncs/s x mean group size), commit p99 at most 3 x one raw
//!   sync (its p50); the verdict is given against each reference. `--readers R` adds a run
//!   with R tail readers following the producers, `--replica-behind-bytes` one with a replica
//!   catching up from LSN 0.
//! - With `--reads N`: point reads by LSN, cold and warm, with the sector cache on and off,
//!   against raw 4 KiB `O_DIRECT` random reads (`reads`).

#[path = "bench/reads.rs"]
mod reads;

use ballast_log::storage::{AlignedBuffer, DirectOptions, DirectStorage, IoMode};
use ballast_log::{Config, Durability, Log, SharedLog, SharedOptions};
use clap::Args;
use hdrhistogram::Histogram;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use crate::size_human;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Directory for the benchmark's files, on the filesystem to measure (default: a new
    /// directory under the system's temporary directory). Files are removed afterwards.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// Payload bytes written by each bulk repetition.
    #[arg(long = "size-bytes", value_name = "BYTES", default_value_t = 256 << 20)]
    size_bytes: u64,

    /// Repetitions of each bulk case (log and raw alternate); the median is reported.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    repetitions: u32,

    /// Samples of each latency case (log and raw alternate sample by sample).
    #[arg(long, value_name = "N", default_value_t = 2000, value_parser = clap::value_parser!(u32).range(100..))]
    samples: u32,

    /// Measure group commit instead: this many producer threads on one shared log, each
    /// appending `--samples` 1 KiB records and waiting for each to be durable, next to one
    /// producer and to the raw write + fdatasync loop on fresh and on written blocks.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    producers: Option<u32>,

    /// With `--producers`: also run the producers while this many `TailReader`s follow the
    /// log from its start, each checking that it sees every record once, in order, and report
    /// the producers' rate against the run without readers.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "producers", value_parser = clap::value_parser!(u32).range(0..=64))]
    readers: u32,

    /// With `--producers`: also run the producers while one replica catches up: this many
    /// bytes of 1 KiB records are appended before they start, and a `TailReader` reads the
    /// log from LSN 0 to their end, checking every record's place; reports the producers'
    /// rate against the run without readers.
    #[arg(
        long = "replica-behind-bytes",
        value_name = "BYTES",
        default_value_t = 0,
        requires = "producers"
    )]
    replica_behind_bytes: u64,

    /// Measure point reads instead: write a read set of `--size-bytes` of 1 KiB records,
    /// then read this many LSNs drawn at random, cold (the log just opened) and warm (the
    /// same LSNs again), with the sector cache on and off, next to as many raw 4 KiB
    /// O_DIRECT random reads of the same files; reports the cache's hit ratio.
    #[arg(long, value_name = "N", conflicts_with = "producers", value_parser = clap::value_parser!(u32).range(1..))]
    reads: Option<u32>,

    /// The log's fill-ahead (`DirectOptions::fill_ahead_size_bytes`): zeros kept written past
    /// its last write while it syncs often; 0 turns it off, to compare.
    #[arg(long = "fill-ahead-size-bytes", value_name = "BYTES", default_value_t = DirectOptions::default().fill_ahead_size_bytes)]
    fill_ahead_size_bytes: u32,

    /// The log's background writes through io_uring (`DirectOptions::io_uring`), or on IO
    /// threads with `false`, to compare.
    #[arg(long = "io-uring", value_name = "BOOL", default_value_t = DirectOptions::default().io_uring, action = clap::ArgAction::Set)]
    io_uring: bool,
}

const RAW_BUFFER_SIZE_BYTES: usize = 1 << 20;
const LATENCY_RECORD_SIZE_BYTES: usize = 128;
const LATENCY_WRITE_SIZE_BYTES: usize = 4096;
const RECORD_POOL_SIZE_BYTES: usize = 1 << 20;
const ALIGNMENT_BYTES: usize = 4096;

/// A scratch directory removed on drop.
struct Scratch {
    path: PathBuf,
    remove: bool,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn bench_config(segment_count_max: u32) -> Config {
    Config {
        segment_count_max,
        ..Config::default()
    }
}

/// `ballast bench`.
pub fn bench(args: &BenchArgs) -> Result<ExitCode, String> {
    let scratch = match &args.dir {
        Some(dir) => Scratch {
            path: dir.join(format!("ballast-bench-{}", std::process::id())),
            remove: true,
        },
        None => Scratch {
            path: std::env::temp_dir().join(format!("ballast-bench-{}", std::process::id())),
            remove: true,
        },
    };
    std::fs::create_dir_all(&scratch.path)
        .map_err(|error| format!("{}: {error}", scratch.path.display()))?;
    println!(
        "ballast bench in {} ({} per bulk repetition, {} repetitions, {} latency samples)",
        scratch.path.display(),
        size_human(args.size_bytes),
        args.repetitions,
        args.samples
    );
    let pool = record_pool();
    if let Some(producers) = args.producers {
        return producers_bench(&scratch.path, args, producers, &pool);
    }
    if let Some(reads) = args.reads {
        return reads::reads_bench(&scratch.path, args, reads);
    }
    println!();
    println!("| case | log | raw O_DIRECT | log / raw |");
    println!("|------|-----|--------------|-----------|");
    let mut targets_met = true;
    for record_size in [128usize, 1024] {
        let (log_ns, raw_ns, raw_deep_ns) = bulk_case(&scratch.path, args, record_size, &pool)?;
        let rate = |ns: u64| args.size_bytes as f64 / ns as f64 * 1e3;
        let (log_rate, raw_rate, raw_deep_rate) = (rate(log_ns), rate(raw_ns), rate(raw_deep_ns));
        targets_met &= log_rate / raw_rate >= 0.90;
        println!(
            "| bulk append {record_size} B records | {log_rate:.0} MB/s ({:.2} M records/s) | \
             {raw_rate:.0} MB/s (1 write in flight) | {:.2} |",
            log_rate / record_size as f64,
            log_rate / raw_rate
        );
        println!(
            "| bulk append {record_size} B records | (same) | {raw_deep_rate:.0} MB/s ({} writes \
             in flight, as the log) | {:.2} |",
            Config::default().write_buffer_count,
            log_rate / raw_deep_rate
        );
    }
    let [log, raw, raw_written] = latency_case(&scratch.path, args, &pool)?;
    for (name, quantile) in [("p50", 0.50), ("p99", 0.99), ("p99.9", 0.999)] {
        let us = |histogram: &Histogram<u64>| histogram.value_at_quantile(quantile) as f64 / 1e3;
        let (log_us, raw_us, written_us) = (us(&log), us(&raw), us(&raw_written));
        if name == "p99" {
            targets_met &= log_us <= 1.5 * raw_us;
        }
        println!(
            "| append + flush 128 B, {name} | {log_us:.0} us | {raw_us:.0} us (4 KiB write + \
             fdatasync, fresh blocks) | {:.2} |",
            log_us / raw_us
        );
        println!(
            "| append + flush 128 B, {name} | (same) | {written_us:.0} us (the same, blocks \
             written before) | {:.2} |",
            log_us / written_us
        );
    }
    println!(
        "| append + flush 128 B, max | {:.0} us | {:.0} us, {:.0} us written | |",
        log.max() as f64 / 1e3,
        raw.max() as f64 / 1e3,
        raw_written.max() as f64 / 1e3
    );
    let attest = attest_case(&scratch.path, args, &pool)?;
    for (name, quantile) in [("p50", 0.50), ("p99", 0.99)] {
        let us = |histogram: &Histogram<u64>| histogram.value_at_quantile(quantile) as f64 / 1e3;
        println!(
            "| idle attestation (1 sector + fdatasync), {name} | {:.0} us | {:.0} us (4 KiB \
             write + fdatasync, fresh blocks) | {:.2} |",
            us(&attest),
            us(&raw),
            us(&attest) / us(&raw)
        );
    }
    let (clean_ns, crash_ns) = open_case(&scratch.path, args, &pool)?;
    println!(
        "| open a fresh log of 64 MiB segments, median | {:.1} ms after a clean close | {:.1} ms \
         after a crash (the scan after the end) | {:.2} |",
        clean_ns as f64 / 1e6,
        crash_ns as f64 / 1e6,
        clean_ns as f64 / crash_ns as f64
    );
    println!();
    println!(
        "targets (bulk log/raw >= 0.90, flush p99 <= 1.5 x raw): {}",
        if targets_met { "met" } else { "NOT met" }
    );
    Ok(ExitCode::SUCCESS)
}

/// Pseudo-random bytes to slice records from.
fn record_pool() -> Vec<u8> {
    let mut state: u64 = 0x0BA1_1A57;
    let mut pool = Vec::with_capacity(RECORD_POOL_SIZE_BYTES);
    while pool.len() < RECORD_POOL_SIZE_BYTES {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        pool.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    pool
}

fn direct_storage(dir: &Path, config: &Config, args: &BenchArgs) -> Result<DirectStorage, String> {
    let options = DirectOptions {
        segment_count_max: config.segment_count_max,
        read_ahead_size_bytes: config.read_buffer_size_bytes,
        fill_ahead_size_bytes: args.fill_ahead_size_bytes,
        io_uring: args.io_uring,
        ..DirectOptions::default()
    };
    let storage = DirectStorage::open(dir, &options).map_err(|error| error.to_string())?;
    assert_eq!(storage.io_mode(), IoMode::Direct);
    Ok(storage)
}

/// Median nanoseconds of the log, of the raw write, and of the raw write with as many
/// writes in flight as the log keeps, alternating repetitions.
fn bulk_case(
    scratch: &Path,
    args: &BenchArgs,
    record_size: usize,
    pool: &[u8],
) -> Result<(u64, u64, u64), String> {
    let mut log_ns = Vec::new();
    let mut raw_ns = Vec::new();
    let mut raw_deep_ns = Vec::new();
    let depth = u64::from(Config::default().write_buffer_count);
    for repetition in 0..args.repetitions {
        let dir = scratch.join(format!("bulk-{record_size}-{repetition}"));
        log_ns.push(bulk_log(&dir, args, record_size, pool)?);
        let _ = std::fs::remove_dir_all(&dir);
        let file = scratch.join(format!("raw-{record_size}-{repetition}"));
        raw_ns.push(bulk_raw(&file, args.size_bytes, pool, 1)?);
        let _ = std::fs::remove_file(&file);
        raw_deep_ns.push(bulk_raw(&file, args.size_bytes, pool, depth)?);
        let _ = std::fs::remove_file(&file);
    }
    let median = |mut values: Vec<u64>| {
        values.sort_unstable();
        values[values.len() / 2]
    };
    Ok((median(log_ns), median(raw_ns), median(raw_deep_ns)))
}

fn bulk_log(dir: &Path, args: &BenchArgs, record_size: usize, pool: &[u8]) -> Result<u64, String> {
    let size_bytes = args.size_bytes;
    let config = Config::default();
    let segment_count = size_bytes.div_ceil(config.segment_size_bytes) as u32 * 2 + 2;
    let config = bench_config(segment_count.max(4));
    let record_count = size_bytes / record_size as u64;
    let start = Instant::now();
    let storage = direct_storage(dir, &config, args)?;
    let mut log = Log::open(config, storage).map_err(|error| error.to_string())?;
    let offsets = pool.len() - record_size;
    for index in 0..record_count {
        let at = (index as usize * 61) % offsets;
        log.append(&pool[at..at + record_size])
            .map_err(|error| error.to_string())?;
    }
    log.flush().map_err(|error| error.to_string())?;
    let elapsed = start.elapsed().as_nanos() as u64;
    log.close().map_err(|error| error.to_string())?;
    Ok(elapsed)
}

fn raw_file(path: &Path, size_bytes: u64) -> Result<std::fs::File, String> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(|error| format!("{}: {error}", path.display()))?;
    // SAFETY: plain system call on an open descriptor.
    let allocated = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, size_bytes as libc::off_t) };
    if allocated != 0 {
        return Err(format!(
            "fallocate {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(file)
}

fn pwrite_all(file: &std::fs::File, bytes: &[u8], offset: u64) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(bytes, offset)
        .map_err(|error| format!("raw write: {error}"))
}

fn fdatasync(file: &std::fs::File) -> Result<(), String> {
    file.sync_data()
        .map_err(|error| format!("raw fdatasync: {error}"))
}

/// A raw sequential write in 1 MiB buffers with `depth` writes in flight (one thread each,
/// thread `k` writing buffers `k`, `k + depth`, ...), then one `fdatasync`.
fn bulk_raw(path: &Path, size_bytes: u64, pool: &[u8], depth: u64) -> Result<u64, String> {
    let buffers: Vec<AlignedBuffer> = (0..depth)
        .map(|_| {
            let mut buffer = AlignedBuffer::new(RAW_BUFFER_SIZE_BYTES, ALIGNMENT_BYTES);
            buffer.copy_from_slice(&pool[..RAW_BUFFER_SIZE_BYTES]);
            buffer
        })
        .collect();
    let size_bytes = size_bytes.next_multiple_of(RAW_BUFFER_SIZE_BYTES as u64);
    let chunk_count = size_bytes / RAW_BUFFER_SIZE_BYTES as u64;
    let start = Instant::now();
    let file = raw_file(path, size_bytes)?;
    std::thread::scope(|scope| {
        let writers: Vec<_> = buffers
            .iter()
            .enumerate()
            .map(|(lane, buffer)| {
                let file = &file;
                scope.spawn(move || -> Result<(), String> {
                    let mut chunk = lane as u64;
                    while chunk < chunk_count {
                        pwrite_all(file, buffer, chunk * RAW_BUFFER_SIZE_BYTES as u64)?;
                        chunk += depth;
                    }
                    Ok(())
                })
            })
            .collect();
        writers
            .into_iter()
            .try_for_each(|writer| writer.join().expect("raw writer"))
    })?;
    fdatasync(&file)?;
    Ok(start.elapsed().as_nanos() as u64)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Latency histograms (ns), in this order: append + flush through the log, a raw write + sync
/// on fresh blocks, and the same on blocks written before.
fn latency_case(
    scratch: &Path,
    args: &BenchArgs,
    pool: &[u8],
) -> Result<[Histogram<u64>; 3], String> {
    let dir = scratch.join("latency-log");
    let config = bench_config(4);
    let storage = direct_storage(&dir, &config, args)?;
    let mut log = Log::open(config, storage).map_err(|error| error.to_string())?;
    let raw_size = u64::from(args.samples) * LATENCY_WRITE_SIZE_BYTES as u64;
    let raw = raw_sync_file(&scratch.join("latency-raw"), raw_size, false, pool)?;
    let raw_written = raw_sync_file(&scratch.join("latency-raw-written"), raw_size, true, pool)?;
    let mut buffer = AlignedBuffer::new(LATENCY_WRITE_SIZE_BYTES, ALIGNMENT_BYTES);
    buffer.copy_from_slice(&pool[..LATENCY_WRITE_SIZE_BYTES]);
    let mut histograms = [histogram(), histogram(), histogram()];
    for sample in 0..args.samples {
        let at = sample as usize % (pool.len() - LATENCY_RECORD_SIZE_BYTES);
        let start = Instant::now();
        log.append(&pool[at..at + LATENCY_RECORD_SIZE_BYTES])
            .map_err(|error| error.to_string())?;
        log.flush().map_err(|error| error.to_string())?;
        histograms[0]
            .record(start.elapsed().as_nanos() as u64)
            .expect("in bounds");
        let offset = u64::from(sample) * LATENCY_WRITE_SIZE_BYTES as u64;
        for (file, histogram) in [(&raw, 1), (&raw_written, 2)] {
            let start = Instant::now();
            pwrite_all(file, &buffer, offset)?;
            fdatasync(file)?;
            histograms[histogram]
                .record(start.elapsed().as_nanos() as u64)
                .expect("in bounds");
        }
    }
    log.close().map_err(|error| error.to_string())?;
    Ok(histograms)
}

/// The latency (ns) of an idle log's attestation: after each append + flush, the attestation
/// a tick writes once the log has been idle (`Log::attest`): one sector and one sync.
fn attest_case(scratch: &Path, args: &BenchArgs, pool: &[u8]) -> Result<Histogram<u64>, String> {
    let dir = scratch.join("attest-log");
    let config = bench_config(4);
    let storage = direct_storage(&dir, &config, args)?;
    let mut log = Log::open(config, storage).map_err(|error| error.to_string())?;
    let mut histogram = histogram();
    for sample in 0..args.samples / 4 {
        let at = sample as usize % (pool.len() - LATENCY_RECORD_SIZE_BYTES);
        log.append(&pool[at..at + LATENCY_RECORD_SIZE_BYTES])
            .map_err(|error| error.to_string())?;
        log.flush().map_err(|error| error.to_string())?;
        let start = Instant::now();
        log.attest().map_err(|error| error.to_string())?;
        histogram
            .record(start.elapsed().as_nanos() as u64)
            .expect("in bounds");
        assert_eq!(log.attested_lsn(), log.durable_lsn());
    }
    log.close().map_err(|error| error.to_string())?;
    Ok(histogram)
}

/// The median time (ns) to open a fresh log (one flushed block in a 64 MiB segment): after a
/// clean close, which skips the scan after the end, and after a crash, which reads it.
fn open_case(scratch: &Path, args: &BenchArgs, pool: &[u8]) -> Result<(u64, u64), String> {
    const OPENS: usize = 15;
    let dir = scratch.join("open-log");
    let config = bench_config(4);
    let mut median = [0u64; 2];
    for (case, clean) in [(0, true), (1, false)] {
        let mut times = Vec::with_capacity(OPENS);
        for _ in 0..OPENS {
            let storage = direct_storage(&dir, &config, args)?;
            let start = Instant::now();
            let mut log = Log::open(config.clone(), storage).map_err(|error| error.to_string())?;
            times.push(start.elapsed().as_nanos() as u64);
            log.append(&pool[..LATENCY_RECORD_SIZE_BYTES])
                .map_err(|error| error.to_string())?;
            log.flush().map_err(|error| error.to_string())?;
            match clean {
                true => drop(log.close().map_err(|error| error.to_string())?),
                false => drop(log.into_storage()),
            }
            settle(&dir);
        }
        // The first open of each case formats the log: it is left out.
        times.remove(0);
        times.sort_unstable();
        median[case] = times[times.len() / 2];
        std::fs::remove_dir_all(&dir).map_err(|error| format!("{}: {error}", dir.display()))?;
    }
    Ok((median[0], median[1]))
}

/// A file for a raw write + sync loop: preallocated to `size_bytes`, its blocks `written`
/// once first or left fresh, and synced, as the log's segments are made before their first
/// write.
fn raw_sync_file(
    path: &Path,
    size_bytes: u64,
    written: bool,
    pool: &[u8],
) -> Result<std::fs::File, String> {
    let file = raw_file(path, size_bytes)?;
    if written {
        blocks_write(&file, size_bytes, pool)?;
    }
    file.sync_all()
        .map_err(|error| format!("raw fsync: {error}"))?;
    Ok(file)
}

/// Writes every block of `file` (the first `size_bytes`) once and syncs, so that later writes
/// find them written.
fn blocks_write(file: &std::fs::File, size_bytes: u64, pool: &[u8]) -> Result<(), String> {
    let mut chunk = AlignedBuffer::new(RAW_BUFFER_SIZE_BYTES, ALIGNMENT_BYTES);
    chunk.copy_from_slice(&pool[..RAW_BUFFER_SIZE_BYTES]);
    let mut offset = 0;
    while offset < size_bytes {
        let size = (size_bytes - offset).min(RAW_BUFFER_SIZE_BYTES as u64) as usize;
        pwrite_all(file, &chunk[..size], offset)?;
        offset += size as u64;
    }
    fdatasync(file)
}

const PRODUCER_RECORD_SIZE_BYTES: usize = 1024;

/// Rounds of the group-commit cases; each round runs every case once.
const PRODUCER_ROUNDS: u32 = 8;

/// What group-commit runs measured.
struct ProducersRun {
    records: u64,
    elapsed_ns: u64,
    commits: u64,
    latency: Histogram<u64>,
    /// Records the tail readers yielded, summed over readers.
    reader_records: u64,
    /// Reads the tail cache served, and reads that missed it.
    tail_hits_and_misses: (u64, u64),
}

impl Default for ProducersRun {
    fn default() -> ProducersRun {
        ProducersRun {
            records: 0,
            elapsed_ns: 0,
            commits: 0,
            latency: histogram(),
            reader_records: 0,
            tail_hits_and_misses: (0, 0),
        }
    }
}

impl ProducersRun {
    fn add(&mut self, other: &ProducersRun) {
        self.records += other.records;
        self.elapsed_ns += other.elapsed_ns;
        self.commits += other.commits;
        self.latency.add(&other.latency).expect("same bounds");
        self.reader_records += other.reader_records;
        self.tail_hits_and_misses.0 += other.tail_hits_and_misses.0;
        self.tail_hits_and_misses.1 += other.tail_hits_and_misses.1;
    }
}

/// `ballast bench --producers N`.
fn producers_bench(
    scratch: &Path,
    args: &BenchArgs,
    producers: u32,
    pool: &[u8],
) -> Result<ExitCode, String> {
    // Rounds alternate the cases, so that all see the same disk weather, and each case starts
    // from a settled filesystem (`settle`): without it, metadata and discards that the last
    // case left behind land in the next one, and the first file of a run measured up to a
    // third faster than the rest.
    let mut raw = histogram();
    let mut raw_written = histogram();
    let mut one = ProducersRun::default();
    let mut many = ProducersRun::default();
    let mut read = ProducersRun::default();
    let mut replica = ProducersRun::default();
    let replica_behind = args.replica_behind_bytes / PRODUCER_RECORD_SIZE_BYTES as u64;
    let segment_size_bytes = Config::default().segment_size_bytes;
    for round in 0..PRODUCER_ROUNDS {
        let samples = args.samples / PRODUCER_ROUNDS;
        let name = |case: &str| scratch.join(format!("{case}-{round}"));
        settle(scratch);
        raw.add(raw_sync_case(
            &name("sync-raw"),
            segment_size_bytes,
            false,
            samples,
            pool,
        )?)
        .expect("same bounds");
        settle(scratch);
        raw_written
            .add(raw_sync_case(
                &name("sync-raw-written"),
                segment_size_bytes,
                true,
                samples,
                pool,
            )?)
            .expect("same bounds");
        settle(scratch);
        one.add(&producers_case(
            &name("producers-1"),
            args,
            (1, 0, 0),
            samples,
            pool,
        )?);
        settle(scratch);
        many.add(&producers_case(
            &name("producers-n"),
            args,
            (producers, 0, 0),
            samples,
            pool,
        )?);
        if args.readers > 0 {
            settle(scratch);
            read.add(&producers_case(
                &name("producers-n-readers"),
                args,
                (producers, args.readers, 0),
                samples,
                pool,
            )?);
        }
        if replica_behind > 0 {
            settle(scratch);
            replica.add(&producers_case(
                &name("producers-n-replica"),
                args,
                (producers, 1, replica_behind),
                samples,
                pool,
            )?);
        }
    }
    // Two references: fresh blocks, preallocated and never written, as the log's segments
    // are; and blocks written before, which skip the filesystem's work of marking them
    // written at each sync (on this ext4, one more metadata write per sync).
    let references = [("fresh blocks", &raw), ("written blocks", &raw_written)];
    let quantile_us =
        |histogram: &Histogram<u64>, quantile| histogram.value_at_quantile(quantile) as f64 / 1e3;
    println!();
    println!(
        "| case | durable records/s | mean group | / (raw fresh x group) | / (raw written x group) | p50 | p99 | p99.9 |"
    );
    println!("|------|---:|---:|---:|---:|---:|---:|---:|");
    for (name, reference) in references {
        println!(
            "| raw 4 KiB O_DIRECT pwrite + fdatasync, {name} | {:.0} syncs/s | 1 | | | {:.0} us | {:.0} us | {:.0} us |",
            1e9 / reference.mean(),
            quantile_us(reference, 0.5),
            quantile_us(reference, 0.99),
            quantile_us(reference, 0.999)
        );
    }
    let mut met = [true; 2];
    for (count, run) in [(1, &one), (producers, &many)] {
        let rate = run.records as f64 * 1e9 / run.elapsed_ns as f64;
        let group = run.records as f64 / run.commits.max(1) as f64;
        let ratio = |reference: &Histogram<u64>| rate / (1e9 / reference.mean() * group);
        let p99_us = quantile_us(&run.latency, 0.99);
        println!(
            "| {count} producer(s), 1 KiB, wait durable | {rate:.0} | {group:.1} | {:.2} | {:.2} | {:.0} us | {p99_us:.0} us | {:.0} us |",
            ratio(&raw),
            ratio(&raw_written),
            quantile_us(&run.latency, 0.5),
            quantile_us(&run.latency, 0.999)
        );
        for (index, (_, reference)) in references.iter().enumerate() {
            met[index] &= ratio(reference) >= 0.8 && p99_us <= 3.0 * quantile_us(reference, 0.5);
        }
    }
    if args.readers > 0 {
        let case = format!(
            "{producers} producer(s) while {} tail reader(s) follow",
            args.readers
        );
        beside_row(&case, &read, &many);
        let (hits, misses) = read.tail_hits_and_misses;
        println!(
            "tail readers: every one saw every record once, in order ({} records read in all); \
             tail cache hit ratio {:.3} ({hits} hits, {misses} misses)",
            read.reader_records,
            hits as f64 / (hits + misses).max(1) as f64
        );
    }
    if replica_behind > 0 {
        let behind = crate::size_human(args.replica_behind_bytes);
        let case = format!(
            "{producers} producer(s) while 1 replica catches up from LSN 0 ({behind} behind)"
        );
        beside_row(&case, &replica, &many);
        let (hits, misses) = replica.tail_hits_and_misses;
        println!(
            "replica: saw every record once, in order ({} records read in all: {hits} from the \
             tail cache, {misses} through the log)",
            replica.reader_records
        );
    }
    println!();
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    println!(
        "targets (records/s >= 0.8 x raw syncs/s x mean group, p99 <= 3 x raw p50): against \
         fresh blocks {}, against written blocks {}",
        verdict(met[0]),
        verdict(met[1])
    );
    Ok(ExitCode::SUCCESS)
}

/// A row for the producers' run beside readers: its rate against the producers alone.
fn beside_row(case: &str, run: &ProducersRun, alone: &ProducersRun) {
    let rate = |run: &ProducersRun| run.records as f64 * 1e9 / run.elapsed_ns as f64;
    let quantile_us = |quantile| run.latency.value_at_quantile(quantile) as f64 / 1e3;
    println!(
        "| {case} | {:.0} | {:.1} | x {:.2} of the producers alone | | {:.0} us | {:.0} us | {:.0} us |",
        rate(run),
        run.records as f64 / run.commits.max(1) as f64,
        rate(run) / rate(alone),
        quantile_us(0.5),
        quantile_us(0.99),
        quantile_us(0.999)
    );
}

/// `producers` threads each append `records_each` 1 KiB records to one shared log, waiting
/// for each to be durable, while `readers` tail readers follow the log from its start, after
/// `behind` records were appended before the producers started (a replica catching up).
fn producers_case(
    dir: &Path,
    args: &BenchArgs,
    (producers, readers, behind): (u32, u32, u64),
    records_each: u32,
    pool: &[u8],
) -> Result<ProducersRun, String> {
    let total_bytes = (u64::from(producers) * u64::from(records_each) + behind) * 2048;
    let config =
        bench_config((total_bytes / Config::default().segment_size_bytes + 4).max(4) as u32);
    let storage = direct_storage(dir, &config, args)?;
    let mut log = Log::open(config, storage).map_err(|error| error.to_string())?;
    for index in 0..behind {
        let at = (index as usize * 61) % (pool.len() - PRODUCER_RECORD_SIZE_BYTES);
        log.append(&pool[at..at + PRODUCER_RECORD_SIZE_BYTES])
            .map_err(|error| error.to_string())?;
    }
    log.flush().map_err(|error| error.to_string())?;
    let shared =
        SharedLog::open(log, SharedOptions::default()).map_err(|error| error.to_string())?;
    let records = u64::from(producers) * u64::from(records_each);
    let start = Instant::now();
    let (histograms, reader_records) = std::thread::scope(|scope| {
        let followers: Vec<_> = (0..readers)
            .map(|_| {
                let shared = &shared;
                scope.spawn(move || tail_follow(shared, behind + records))
            })
            .collect();
        let workers: Vec<_> = (0..producers)
            .map(|producer| {
                let shared = &shared;
                scope.spawn(move || -> Result<Histogram<u64>, String> {
                    let mut latency = histogram();
                    for index in 0..records_each {
                        let at = (producer as usize * 7919 + index as usize * 61)
                            % (pool.len() - PRODUCER_RECORD_SIZE_BYTES);
                        let record = &pool[at..at + PRODUCER_RECORD_SIZE_BYTES];
                        let begin = Instant::now();
                        shared
                            .append(record, Durability::Wait)
                            .map_err(|error| error.to_string())?;
                        latency
                            .record(begin.elapsed().as_nanos() as u64)
                            .expect("in bounds");
                    }
                    Ok(latency)
                })
            })
            .collect();
        let histograms = workers
            .into_iter()
            .map(|worker| worker.join().expect("producer thread"))
            .collect::<Result<Vec<_>, String>>();
        if histograms.is_err() {
            // The readers would wait for records that never come: a shut-down log ends them.
            let _ = shared.shutdown();
        }
        let mut reader_records = 0;
        for follower in followers {
            reader_records += follower.join().expect("reader thread")?;
        }
        Ok::<_, String>((histograms?, reader_records))
    })?;
    let elapsed_ns = start.elapsed().as_nanos() as u64;
    let mut latency = histogram();
    for histogram in &histograms {
        latency.add(histogram).expect("same bounds");
    }
    let run = ProducersRun {
        records,
        elapsed_ns,
        commits: shared.commits_durable(),
        latency,
        reader_records,
        tail_hits_and_misses: shared.tail_cache_hits_and_misses(),
    };
    assert_eq!(shared.durable_lsn(), behind + run.records);
    shared.close().map_err(|error| error.to_string())?;
    let _ = std::fs::remove_dir_all(dir);
    Ok(run)
}

/// Follows the log from its start until `records` records were read, each the next LSN and
/// of the producers' size; returns how many it read.
fn tail_follow(shared: &SharedLog<DirectStorage>, records: u64) -> Result<u64, String> {
    let mut reader = shared.reader(0).map_err(|error| error.to_string())?;
    let mut buffer = vec![0u8; PRODUCER_RECORD_SIZE_BYTES];
    for lsn in 0..records {
        // `None` would be a timeout: there is none, the producers' appends end the wait.
        match reader.next_wait(&mut buffer, None) {
            Ok(Some((found, size))) if found == lsn && size == PRODUCER_RECORD_SIZE_BYTES => {}
            other => return Err(format!("tail reader at lsn {lsn}: {other:?}")),
        }
    }
    Ok(records)
}

/// Latencies of `samples` raw 4 KiB `O_DIRECT` writes, each followed by `fdatasync`, at
/// consecutive offsets of a file preallocated to `size_bytes` (a segment's size, as the log
/// writes into), whose blocks are `written` first or left unwritten as `fallocate` makes them.
fn raw_sync_case(
    path: &Path,
    size_bytes: u64,
    written: bool,
    samples: u32,
    pool: &[u8],
) -> Result<Histogram<u64>, String> {
    let size_bytes = size_bytes.max(u64::from(samples) * LATENCY_WRITE_SIZE_BYTES as u64);
    let raw = raw_sync_file(path, size_bytes, written, pool)?;
    let mut buffer = AlignedBuffer::new(LATENCY_WRITE_SIZE_BYTES, ALIGNMENT_BYTES);
    buffer.copy_from_slice(&pool[..LATENCY_WRITE_SIZE_BYTES]);
    let mut latency = histogram();
    for index in 0..samples {
        let start = Instant::now();
        pwrite_all(
            &raw,
            &buffer,
            u64::from(index) * LATENCY_WRITE_SIZE_BYTES as u64,
        )?;
        fdatasync(&raw)?;
        latency
            .record(start.elapsed().as_nanos() as u64)
            .expect("in bounds");
    }
    drop(raw);
    let _ = std::fs::remove_file(path);
    Ok(latency)
}

/// Lets the filesystem finish what the last case left (metadata, discards of removed files)
/// before the next case starts: `syncfs`, then a pause for the device.
fn settle(dir: &Path) {
    if let Ok(dir) = std::fs::File::open(dir) {
        // SAFETY: plain system call on a descriptor we own.
        unsafe { libc::syncfs(dir.as_raw_fd()) };
    }
    std::thread::sleep(std::time::Duration::from_millis(SETTLE_MS));
}

/// Pause after `syncfs` between cases.
const SETTLE_MS: u64 = 100;
