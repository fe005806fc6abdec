//! `ballast bench --reads N`: point reads by LSN through the log's sector table, cold and
//! warm, with the sector cache on and off, beside raw 4 KiB `O_DIRECT` random reads of the
//! same files, in one run.
//!
//! The read set (`--size-bytes` of 1 KiB records) is written and the log closed; each case
//! opens it again (empty read buffer and cache; `O_DIRECT` bypasses the page cache) and reads
//! `N` LSNs drawn at random, then the same `N` again (warm). After each cold read it reads a
//! random 4 KiB sector of the log's segment files with `pread` on an `O_DIRECT` descriptor:
//! the ceiling of a read that must reach the device, under the same disk weather. Every case
//! draws its own places, so that none finds what another read cached below the guest. Rates
//! are reads over the time spent in them. Target: cold reads at least 0.9 x raw.

use super::{direct_storage, histogram, record_pool, BenchArgs, ALIGNMENT_BYTES};
use ballast_log::storage::{segment_file_parse, AlignedBuffer};
use ballast_log::{Config, Log};
use hdrhistogram::Histogram;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

const READ_RECORD_SIZE_BYTES: usize = 1024;

/// One pass of reads: its latencies, and the sum of their times.
struct Pass {
    latency: Histogram<u64>,
    busy_ns: u64,
    /// The sector cache's hits and misses during the pass.
    hits_and_misses: (u64, u64),
}

impl Pass {
    fn new() -> Pass {
        Pass {
            latency: histogram(),
            busy_ns: 0,
            hits_and_misses: (0, 0),
        }
    }

    fn record(&mut self, ns: u64) {
        self.latency.saturating_record(ns);
        self.busy_ns += ns;
    }

    /// Reads a second, one at a time: the count over the time spent in them.
    fn rate(&self) -> f64 {
        self.latency.len() as f64 * 1e9 / self.busy_ns.max(1) as f64
    }
}

/// One case: the log's cold pass with the raw reads alternated with it, and its warm pass.
struct Case {
    cache_size_bytes: u64,
    raw: Pass,
    cold: Pass,
    warm: Pass,
}

/// `ballast bench --reads N`.
pub fn reads_bench(scratch: &Path, args: &BenchArgs, reads: u32) -> Result<ExitCode, String> {
    let pool = record_pool();
    let dir = scratch.join("reads");
    let records = (args.size_bytes / READ_RECORD_SIZE_BYTES as u64).max(1);
    let config = read_config(args.size_bytes, Config::default().cache_size_bytes);
    write_set(&dir, &config, args, records, &pool)?;
    let mut raw = RawReader::open(&dir, args.size_bytes)?;
    let mut cases = Vec::new();
    // Each case reads places of its own, drawn with its own seed: a place one case read is
    // not cold for the next (a virtual disk may cache it below the guest).
    for (seed, cache_size_bytes) in [(1, config.cache_size_bytes), (3, 0)] {
        let config = read_config(args.size_bytes, cache_size_bytes);
        let lsns = random_below(records, reads, seed);
        let places = random_below(raw.sectors, reads, seed + 1);
        cases.push(log_reads(
            &dir,
            &config,
            args,
            (&lsns, &places),
            &mut raw,
            &pool,
        )?);
    }
    drop(raw);
    let _ = std::fs::remove_dir_all(&dir);
    cases_print(&cases);
    let met = cases
        .iter()
        .all(|case| case.cold.rate() >= 0.9 * case.raw.rate());
    println!();
    println!(
        "target (cold point reads >= 0.9 x the raw 4 KiB random reads alternated with them): {}",
        if met { "met" } else { "NOT met" }
    );
    Ok(ExitCode::SUCCESS)
}

fn cases_print(cases: &[Case]) {
    let quantile_us = |latency: &Histogram<u64>, q: f64| latency.value_at_quantile(q) as f64 / 1e3;
    println!();
    println!("| case | reads/s | x raw 4 KiB | p50 | p99 | sector cache hit ratio |");
    println!("|------|---:|---:|---:|---:|---:|");
    for case in cases {
        let cache = match case.cache_size_bytes {
            0 => "cache off".to_string(),
            size => format!("cache {}", crate::size_human(size)),
        };
        let raw = case.raw.rate();
        println!(
            "| raw 4 KiB O_DIRECT random pread, alternated with the cold reads ({cache}) | {raw:.0} | 1.00 | {:.0} us | {:.0} us | |",
            quantile_us(&case.raw.latency, 0.5),
            quantile_us(&case.raw.latency, 0.99)
        );
        for (name, pass) in [("cold", &case.cold), ("warm", &case.warm)] {
            let (hits, misses) = pass.hits_and_misses;
            let ratio = match hits + misses {
                0 => "-".to_string(),
                total => format!("{:.3}", hits as f64 / total as f64),
            };
            println!(
                "| {name} 1 KiB point reads, {cache} | {:.0} | {:.2} | {:.0} us | {:.0} us | {ratio} |",
                pass.rate(),
                pass.rate() / raw,
                quantile_us(&pass.latency, 0.5),
                quantile_us(&pass.latency, 0.99)
            );
        }
    }
}

fn read_config(size_bytes: u64, cache_size_bytes: u64) -> Config {
    let segment = Config::default().segment_size_bytes;
    Config {
        segment_count_max: (size_bytes * 2 / segment + 4) as u32,
        cache_size_bytes,
        ..Config::default()
    }
}

fn write_set(
    dir: &Path,
    config: &Config,
    args: &BenchArgs,
    records: u64,
    pool: &[u8],
) -> Result<(), String> {
    let storage = direct_storage(dir, config, args)?;
    let mut log = Log::open(config.clone(), storage).map_err(|error| error.to_string())?;
    for index in 0..records {
        log.append(record(pool, index))
            .map_err(|error| error.to_string())?;
    }
    log.close().map_err(|error| error.to_string())?;
    Ok(())
}

fn record(pool: &[u8], index: u64) -> &[u8] {
    let at = (index as usize).wrapping_mul(61) % (pool.len() - READ_RECORD_SIZE_BYTES);
    &pool[at..at + READ_RECORD_SIZE_BYTES]
}

/// `count` numbers below `bound`, drawn by an xorshift from `seed`.
fn random_below(bound: u64, count: u32, seed: u64) -> Vec<u64> {
    let mut state: u64 = 0x5EED_1234_ABCD_0001 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        })
        .collect()
}

/// Opens the log and reads `lsns` twice, checking every record: cold, with a raw read of
/// `places` after each (the same disk weather for both), then warm.
fn log_reads(
    dir: &Path,
    config: &Config,
    args: &BenchArgs,
    (lsns, places): (&[u64], &[u64]),
    raw: &mut RawReader,
    pool: &[u8],
) -> Result<Case, String> {
    let storage = direct_storage(dir, config, args)?;
    let mut log = Log::open(config.clone(), storage).map_err(|error| error.to_string())?;
    let mut buffer = vec![0u8; READ_RECORD_SIZE_BYTES];
    let mut raw_pass = Pass::new();
    let mut pass = |log: &mut Log<_>, mut raw: Option<&mut RawReader>| -> Result<Pass, String> {
        let mut pass = Pass::new();
        let before = log.cache_hits_and_misses();
        for (&lsn, &place) in lsns.iter().zip(places) {
            let begin = Instant::now();
            let size = log
                .read(lsn, &mut buffer)
                .map_err(|error| format!("read {lsn}: {error}"))?;
            pass.record(begin.elapsed().as_nanos() as u64);
            if buffer[..size] != *record(pool, lsn) {
                return Err(format!("read {lsn}: other bytes than were appended"));
            }
            if let Some(raw) = raw.as_deref_mut() {
                let begin = Instant::now();
                raw.read(place)?;
                raw_pass.record(begin.elapsed().as_nanos() as u64);
            }
        }
        let after = log.cache_hits_and_misses();
        pass.hits_and_misses = (after.0 - before.0, after.1 - before.1);
        Ok(pass)
    };
    let cold = pass(&mut log, Some(raw))?;
    let warm = pass(&mut log, None)?;
    log.close().map_err(|error| error.to_string())?;
    Ok(Case {
        cache_size_bytes: config.cache_size_bytes,
        raw: raw_pass,
        cold,
        warm,
    })
}

/// 4 KiB `O_DIRECT` preads of the log's segment files, where the read set wrote (unwritten
/// extents read as zeros without reaching the disk).
struct RawReader {
    files: Vec<std::fs::File>,
    /// Sectors the read set wrote, over the files in order.
    sectors: u64,
    buffer: AlignedBuffer,
}

impl RawReader {
    fn open(dir: &Path, size_bytes: u64) -> Result<RawReader, String> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|error| error.to_string())? {
            let path = entry.map_err(|error| error.to_string())?.path();
            let name = path
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or("");
            if let Some(segment) = segment_file_parse(name.as_bytes()) {
                names.push((segment, path));
            }
        }
        names.sort();
        let mut files = Vec::new();
        for (_, path) in names {
            let file = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECT)
                .open(&path)
                .map_err(|error| format!("{}: {error}", path.display()))?;
            files.push(file);
        }
        let segment = Config::default().segment_size_bytes;
        let sectors = size_bytes.min(files.len() as u64 * segment) / ALIGNMENT_BYTES as u64;
        Ok(RawReader {
            files,
            sectors: sectors.max(1),
            buffer: AlignedBuffer::new(ALIGNMENT_BYTES, ALIGNMENT_BYTES),
        })
    }

    /// Reads the `place`th sector the read set wrote.
    fn read(&mut self, place: u64) -> Result<(), String> {
        let per_file = Config::default().segment_size_bytes / ALIGNMENT_BYTES as u64;
        let file = &self.files[(place / per_file) as usize];
        let offset = (place % per_file) * ALIGNMENT_BYTES as u64;
        // SAFETY: the buffer is valid for its length; the descriptor is open.
        let read = unsafe {
            libc::pread(
                file.as_raw_fd(),
                self.buffer.as_mut_ptr().cast(),
                ALIGNMENT_BYTES,
                offset as libc::off_t,
            )
        };
        match read == ALIGNMENT_BYTES as isize {
            true => Ok(()),
            false => Err(format!("raw pread: {}", std::io::Error::last_os_error())),
        }
    }
}
