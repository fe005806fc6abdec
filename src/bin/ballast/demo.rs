//! `ballast demo`: the main job of a log, end to end: append, crash, recover, verify, resume.
//!
//! In memory (the default), the demo crashes `MemStorage` with torn and lost sectors. With
//! `--dir`, it runs on `DirectStorage` in a real directory and the crash is real: the appends
//! run in a child process (this same binary) that the demo kills with SIGKILL at a seeded
//! moment while it is still appending. Record contents are a pure function of the seed and the
//! LSN, so the demo keeps no copy of what it wrote and its memory is bounded by the log's
//! configuration alone.

use ballast_log::format::FRAME_HEADER_SIZE_BYTES;
use ballast_log::storage::{MemStorage, SectorFate, SegmentId, Storage};
use ballast_log::{Config, ConfigError, Log, Lsn, RecoveryReport};
use clap::Args;
use std::time::Instant;

use crate::size_human;

#[path = "demo/disk.rs"]
mod disk;

#[derive(Args)]
pub struct DemoArgs {
    /// How many records to append (and flush) before the crash.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    records: u64,

    /// Largest record, in bytes; each record's size is drawn uniformly from 0 to this.
    #[arg(long = "record-size-max", value_name = "BYTES", default_value_t = 4096)]
    record_size_bytes_max: u32,

    /// Seed of everything pseudo-random: record sizes and contents, batching, the crash.
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,

    /// Size of each segment, in bytes: a multiple of the 64 KiB block size. Small segments
    /// make the log roll often.
    #[arg(long = "segment-size-bytes", value_name = "BYTES", default_value_t = 4 << 20)]
    segment_size_bytes: u64,

    /// Most segments the log holds at once. Before a roll would exceed it, the demo drops the
    /// oldest segment with `truncate_prefix` (retention), which bounds the memory the
    /// in-memory storage uses to about twice this many segments.
    #[arg(
        long = "segment-count-max",
        value_name = "COUNT",
        default_value_t = 16,
        value_parser = clap::value_parser!(u32).range(3..=65536)
    )]
    segment_count_max: u32,

    /// Flush (write and sync) after every this many records appended.
    #[arg(
        long = "flush-interval-records",
        value_name = "N",
        default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    flush_interval_records: u64,

    /// Run on real files (DirectStorage, O_DIRECT) in this directory, which must not hold a
    /// log yet (it is created if missing), with a real crash: the appends run in a child
    /// process that the demo kills with SIGKILL, at a moment chosen from `--seed`, while it is
    /// still appending. Without `--dir`, the demo runs in memory and crashes the in-memory
    /// storage sector by sector.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,

    /// With `--dir` on a filesystem that refuses O_DIRECT (tmpfs before Linux 6.6), use
    /// buffered IO with fdatasync instead of failing.
    #[arg(long = "buffered-fallback")]
    pub buffered_fallback: bool,

    /// Run as the disk demo's writer process (internal: the demo starts it).
    #[arg(long, hide = true)]
    pub writer: bool,
}

const SECTOR_SIZE_BYTES: u32 = 4096;
const BLOCK_SIZE_BYTES: u32 = 64 * 1024;
const WRITE_BUFFER_SIZE_BYTES_MAX: u64 = 256 * 1024;
const WRITE_BUFFER_COUNT: u32 = 4;
const READ_BUFFER_SIZE_BYTES: u32 = 1024 * 1024;
/// Most records in one `append_batch`; the batch's slices live in an array of this length.
const BATCH_COUNT_MAX: usize = 64;
/// The unflushed tail stops at this many records even if it has not filled its bytes target.
const TAIL_RECORD_COUNT_MAX: u64 = 100_000;
/// Records appended after recovery, to check that the log carries on from its end.
const RESUME_RECORD_COUNT: u64 = 100;

const _: () = assert!(BLOCK_SIZE_BYTES % SECTOR_SIZE_BYTES == 0);
const _: () = assert!(WRITE_BUFFER_SIZE_BYTES_MAX % BLOCK_SIZE_BYTES as u64 == 0);

/// The whole demo: append, crash, recover, verify, resume.
/// Runs the demo as its arguments say: in memory, on disk, or as the disk demo's writer.
pub fn demo(args: &DemoArgs) -> Result<(), String> {
    match (&args.dir, args.writer) {
        (Some(dir), true) => disk::writer(args, dir),
        (Some(dir), false) => disk::demo(args, dir),
        (None, false) => demo_memory(args),
        (None, true) => Err("--writer needs --dir".to_string()),
    }
}

/// The demo in memory: append, crash `MemStorage`, recover, verify, resume.
fn demo_memory(args: &DemoArgs) -> Result<(), String> {
    let config = demo_config(args)?;
    let mut storage = MemStorage::new(SECTOR_SIZE_BYTES);
    storage.reserve(config.segment_count_max as usize, config.segment_size_bytes);
    let mut log = Log::open(config.clone(), storage).map_err(|error| format!("open: {error}"))?;
    let mut workload = Workload::new(args.seed, &config);
    header_print(args, &config, &workload);

    let appended = append_phase(&mut log, &mut workload, args)?;
    appended_print(&appended, &log);
    let (tail, crash, storage) = crash_phase(log, &mut workload, args.seed)?;
    let expect = Expect {
        lsn_first: tail.lsn_first,
        lsn_first_max: tail.lsn_first,
        lsn_durable: tail.lsn_start,
        lsn_appended: tail.lsn_end,
    };
    crash_print(&tail, &crash);

    let start = Instant::now();
    let mut log = Log::open(config, storage).map_err(|error| format!("reopen: {error}"))?;
    let recovery_ns = elapsed_ns(start);
    recovery_print(log.recovery_report(), recovery_ns, &expect);
    recovery_check(log.recovery_report(), &expect)?;

    let (lsn_start, lsn_end) = (log.first_lsn(), log.next_lsn());
    let start = Instant::now();
    record_range_verify(&mut log, &mut workload, lsn_start, lsn_end)?;
    let verify_ns = elapsed_ns(start);
    resume_phase(&mut log, &mut workload)?;
    verified_print(&log, lsn_end, &expect, verify_ns);
    log.close().map_err(|error| format!("close: {error}"))?;
    Ok(())
}

/// The log's limits for the demo: small segments, so that the log rolls often.
fn demo_config(args: &DemoArgs) -> Result<Config, String> {
    let write_buffer_size_bytes = WRITE_BUFFER_SIZE_BYTES_MAX.min(args.segment_size_bytes);
    let config = Config {
        sector_size_bytes: SECTOR_SIZE_BYTES,
        block_size_bytes: BLOCK_SIZE_BYTES,
        segment_size_bytes: args.segment_size_bytes,
        write_buffer_size_bytes: u32::try_from(write_buffer_size_bytes).expect("at most 256 KiB"),
        write_buffer_count: WRITE_BUFFER_COUNT,
        record_size_bytes_max: args.record_size_bytes_max,
        segment_count_max: args.segment_count_max,
        read_buffer_size_bytes: READ_BUFFER_SIZE_BYTES,
        ..Config::default()
    };
    config.validate().map_err(config_error_explain)?;
    Ok(config)
}

/// The command-line flags behind a refused `Config` field, as `demo` and `append` name them
/// (both derive the write buffer from the segment size).
pub fn config_flag_hint(error: &ConfigError) -> &'static str {
    match error.field {
        "segment_size_bytes" | "write_buffer_size_bytes" => " (see --segment-size-bytes)",
        "record_size_bytes_max" => " (see --record-size-max and --segment-size-bytes)",
        "segment_count_max" => " (see --segment-count-max)",
        _ => "",
    }
}

fn config_error_explain(error: ConfigError) -> String {
    let flag = config_flag_hint(&error);
    format!("the demo's settings do not make a valid log: {error}{flag}")
}

/// What the log must look like after recovery.
#[derive(Clone, Copy, Debug)]
struct Expect {
    /// The first LSN held before the crash (retention is durable).
    lsn_first: Lsn,
    /// The first LSN held if a retention in progress at the crash completed.
    lsn_first_max: Lsn,
    /// Every record below it was acknowledged and must survive.
    lsn_durable: Lsn,
    /// No record at or after it was ever appended.
    lsn_appended: Lsn,
}

/// Counters of the append phase.
#[derive(Clone, Copy, Debug, Default)]
struct Appended {
    record_count: u64,
    size_bytes: u64,
    single_count: u64,
    batch_count: u64,
    batch_record_count: u64,
    flush_count: u64,
    segments_dropped: u64,
    elapsed_ns: u64,
}

/// Appends `args.records` records, flushing every `args.flush_interval_records`.
fn append_phase(
    log: &mut Log<impl Storage>,
    workload: &mut Workload,
    args: &DemoArgs,
) -> Result<Appended, String> {
    let mut appended = Appended::default();
    let mut unflushed_count: u64 = 0;
    let start = Instant::now();
    while appended.record_count < args.records {
        appended.segments_dropped += retention_apply(log)?;
        let count_max = args.records - appended.record_count;
        let step = workload.step(log, count_max)?;
        assert!(step.record_count >= 1 && step.record_count <= count_max);
        appended.record_count += step.record_count;
        appended.size_bytes += step.size_bytes;
        if step.record_count == 1 {
            appended.single_count += 1;
        } else {
            appended.batch_count += 1;
            appended.batch_record_count += step.record_count;
        }
        unflushed_count += step.record_count;
        if unflushed_count >= args.flush_interval_records {
            log.flush().map_err(|error| format!("flush: {error}"))?;
            appended.flush_count += 1;
            unflushed_count = 0;
        }
    }
    if unflushed_count > 0 {
        log.flush().map_err(|error| format!("flush: {error}"))?;
        appended.flush_count += 1;
    }
    appended.elapsed_ns = elapsed_ns(start);
    assert_eq!(log.durable_lsn(), log.next_lsn());
    assert_eq!(
        log.next_lsn(),
        appended.record_count,
        "the log started empty"
    );
    Ok(appended)
}

/// Drops the oldest segment while the log could not roll once more: a step appends at most
/// half a segment, so it rolls at most once.
fn retention_apply(log: &mut Log<impl Storage>) -> Result<u64, String> {
    let segment_count_max = log.config().segment_count_max as usize;
    let mut dropped: u64 = 0;
    while log.segment_count() + 1 >= segment_count_max {
        let segment_count = log.segment_count();
        let segments = log
            .storage_mut()
            .segment_list()
            .map_err(|error| format!("segment list: {error}"))?;
        assert_eq!(segments.len(), segment_count);
        let second: SegmentId = segments[1];
        log.truncate_prefix(second)
            .map_err(|error| format!("truncate_prefix({second}): {error}"))?;
        assert_eq!(log.segment_count(), segment_count - 1);
        assert_eq!(log.first_lsn(), second);
        dropped += 1;
    }
    Ok(dropped)
}

/// The records appended after the last flush, then lost to the crash or not.
#[derive(Clone, Copy, Debug)]
struct Tail {
    /// The first LSN the log held at the crash.
    lsn_first: Lsn,
    /// The durable watermark at the crash: where the tail starts.
    lsn_start: Lsn,
    /// The next LSN at the crash: no record at or after it was appended.
    lsn_end: Lsn,
    size_bytes: u64,
    /// Segments retention dropped while the tail was appended.
    segments_dropped: u64,
}

/// What the crash did to the sectors written since their segment's last sync.
#[derive(Clone, Copy, Debug, Default)]
struct Crash {
    sectors_kept: u64,
    sectors_lost: u64,
    sectors_torn: u64,
}

/// Appends an unflushed tail large enough that some of it reaches storage (at least two write
/// buffers), then crashes the storage; returns what is left of it.
fn crash_phase(
    mut log: Log<MemStorage>,
    workload: &mut Workload,
    seed: u64,
) -> Result<(Tail, Crash, MemStorage), String> {
    let lsn_start = log.next_lsn();
    let target_size_bytes = 2 * u64::from(log.config().write_buffer_size_bytes);
    let mut encoded_size_bytes: u64 = 0;
    let mut size_bytes: u64 = 0;
    let mut segments_dropped: u64 = 0;
    while encoded_size_bytes < target_size_bytes {
        let count_max = TAIL_RECORD_COUNT_MAX - (log.next_lsn() - lsn_start);
        if count_max == 0 {
            break;
        }
        segments_dropped += retention_apply(&mut log)?;
        let step = workload.step(&mut log, count_max)?;
        size_bytes += step.size_bytes;
        encoded_size_bytes += step.size_bytes + step.record_count * FRAME_HEADER_SIZE_BYTES as u64;
    }
    let tail = Tail {
        lsn_first: log.first_lsn(),
        lsn_start,
        lsn_end: log.next_lsn(),
        size_bytes,
        segments_dropped,
    };
    assert_eq!(log.durable_lsn(), tail.lsn_start, "the tail was flushed");
    let sector_size_bytes = log.config().sector_size_bytes;
    let mut storage = log.into_storage();
    let mut crash = Crash::default();
    let mut model = CrashModel::new(seed, sector_size_bytes);
    storage.crash(|_segment, _offset_bytes| {
        let fate = model.sector_fate();
        match fate {
            SectorFate::Kept => crash.sectors_kept += 1,
            SectorFate::Lost => crash.sectors_lost += 1,
            SectorFate::Torn { .. } => crash.sectors_torn += 1,
        }
        fate
    });
    Ok((tail, crash, storage))
}

/// How the crash treats the sectors written since their segment's last sync, visited in
/// storage order: the stream of writes is cut at one sector, chosen from the seed. Sectors
/// before the cut reached the disk, the cut sector is torn at a random byte and filled with
/// garbage, and after it a sector was kept (the disk reordered writes) one time in four, else
/// lost. With no cut among the sectors, every one was kept.
struct CrashModel {
    prng: Prng,
    sector_size_bytes: u32,
    cut: bool,
}

/// One chance in this many, per sector, that the crash cuts the writes there.
const CRASH_CUT_ODDS: u64 = 64;

impl CrashModel {
    fn new(seed: u64, sector_size_bytes: u32) -> CrashModel {
        CrashModel {
            prng: Prng::new(mix(seed ^ DOMAIN_CRASH)),
            sector_size_bytes,
            cut: false,
        }
    }

    fn sector_fate(&mut self) -> SectorFate {
        if self.cut {
            return if self.prng.below(4) == 0 {
                SectorFate::Kept
            } else {
                SectorFate::Lost
            };
        }
        if self.prng.below(CRASH_CUT_ODDS) != 0 {
            return SectorFate::Kept;
        }
        self.cut = true;
        SectorFate::Torn {
            prefix_bytes: self.prng.below(u64::from(self.sector_size_bytes)) as u32,
            fill: self.prng.next_u64() as u8,
        }
    }
}

/// Checks the recovery report against what was acknowledged and what was appended.
fn recovery_check(report: &RecoveryReport, expect: &Expect) -> Result<(), String> {
    if report.lsn_first < expect.lsn_first || report.lsn_first > expect.lsn_first_max {
        return Err(format!(
            "verification failed: the log starts at lsn {} after recovery, {} before the crash",
            report.lsn_first, expect.lsn_first
        ));
    }
    if report.lsn_next < expect.lsn_durable {
        return Err(format!(
            "verification failed: recovery ends at lsn {} but every record below {} was \
             acknowledged as durable",
            report.lsn_next, expect.lsn_durable
        ));
    }
    if report.lsn_next > expect.lsn_appended {
        return Err(format!(
            "verification failed: recovery ends at lsn {} but only {} records were appended",
            report.lsn_next, expect.lsn_appended
        ));
    }
    if let Some(lsn_lost) = report.lsn_lost {
        return Err(format!(
            "verification failed: recovery reports acknowledged records lost up to lsn {lsn_lost}"
        ));
    }
    Ok(())
}

/// Checks every record in `[lsn_start, lsn_end)`, first by LSN, then with a cursor, which
/// must stop exactly at `lsn_end`.
fn record_range_verify(
    log: &mut Log<impl Storage>,
    workload: &mut Workload,
    lsn_start: Lsn,
    lsn_end: Lsn,
) -> Result<(), String> {
    assert!(lsn_start <= lsn_end);
    assert_eq!(lsn_end, log.durable_lsn(), "verify up to the durable end");
    let mut actual = vec![0u8; log.config().record_size_bytes_max as usize];
    for lsn in lsn_start..lsn_end {
        let size_bytes = log
            .read(lsn, &mut actual)
            .map_err(|error| format!("verification failed: read of lsn {lsn}: {error}"))?;
        workload.record_compare(lsn, &actual[..size_bytes], "read by lsn")?;
    }
    let mut cursor = log
        .cursor(lsn_start)
        .map_err(|error| format!("verification failed: cursor at lsn {lsn_start}: {error}"))?;
    for lsn in lsn_start..lsn_end {
        let record = log
            .cursor_next(&mut cursor)
            .map_err(|error| format!("verification failed: cursor at lsn {lsn}: {error}"))?
            .ok_or_else(|| {
                format!("verification failed: the cursor ended at lsn {lsn}, before {lsn_end}")
            })?;
        if record.lsn != lsn {
            return Err(format!(
                "verification failed: the cursor yielded lsn {} where lsn {lsn} was due",
                record.lsn
            ));
        }
        workload.record_compare(lsn, record.data, "read by cursor")?;
    }
    let beyond = log
        .cursor_next(&mut cursor)
        .map_err(|error| format!("verification failed: cursor at lsn {lsn_end}: {error}"))?;
    if let Some(record) = beyond {
        return Err(format!(
            "verification failed: the cursor yielded lsn {} past the durable end {lsn_end}",
            record.lsn
        ));
    }
    Ok(())
}

/// Appends after recovery: the first new record must take the recovered end's LSN, and the
/// new records must read back with contents that no record before the crash had.
fn resume_phase(log: &mut Log<impl Storage>, workload: &mut Workload) -> Result<(), String> {
    let lsn_start = log.next_lsn();
    workload.generation_start(lsn_start);
    let mut record_count: u64 = 0;
    while record_count < RESUME_RECORD_COUNT {
        retention_apply(log)?;
        let step = workload.step(log, RESUME_RECORD_COUNT - record_count)?;
        record_count += step.record_count;
    }
    log.flush().map_err(|error| format!("flush: {error}"))?;
    let lsn_end = log.next_lsn();
    assert_eq!(lsn_end - lsn_start, RESUME_RECORD_COUNT);
    let lsn_verify_start = lsn_start.max(log.first_lsn());
    record_range_verify(log, workload, lsn_verify_start, lsn_end)
}

/// One call into the log: a single append or a batch.
#[derive(Clone, Copy, Debug)]
struct Step {
    record_count: u64,
    size_bytes: u64,
}

/// The demo's records, a pure function of the seed and the LSN, so that the demo keeps no
/// copy of what it wrote.
#[derive(Clone, Copy, Debug)]
struct Content {
    seed: u64,
    record_size_bytes_max: usize,
    /// Records at or after this LSN were appended after the crash and have other contents.
    lsn_generation: Lsn,
}

impl Content {
    /// The record at `lsn`: writes its contents into `out` and returns its size.
    fn record_make(&self, lsn: Lsn, out: &mut [u8]) -> usize {
        let generation = u64::from(lsn >= self.lsn_generation);
        let key = mix(mix(self.seed ^ generation) ^ lsn);
        let size_bytes =
            (mix(key ^ DOMAIN_SIZE) % (self.record_size_bytes_max as u64 + 1)) as usize;
        assert!(size_bytes <= self.record_size_bytes_max);
        let mut prng = Prng::new(key ^ DOMAIN_CONTENT);
        for chunk in out[..size_bytes].chunks_mut(8) {
            chunk.copy_from_slice(&prng.next_u64().to_le_bytes()[..chunk.len()]);
        }
        size_bytes
    }
}

/// Makes the demo's records and appends them, singly and in batches.
struct Workload {
    content: Content,
    /// Records in one batch at most: at most half a segment's worth, so a step rolls at most
    /// one segment.
    batch_count_max: usize,
    /// Chooses between single appends and batches, and batch sizes.
    prng: Prng,
    /// Holds a batch's records end to end, and the expected record when verifying.
    buffer: Vec<u8>,
}

const DOMAIN_SIZE: u64 = 0x5349_5A45; // "SIZE"
const DOMAIN_CONTENT: u64 = 0x4441_5441; // "DATA"
const DOMAIN_STEPS: u64 = 0x5354_4550; // "STEP"
const DOMAIN_CRASH: u64 = 0x4352_4153; // "CRAS"

impl Workload {
    fn new(seed: u64, config: &Config) -> Workload {
        let record_size_bytes_max = config.record_size_bytes_max as usize;
        let record_encoded_bytes = record_size_bytes_max + FRAME_HEADER_SIZE_BYTES;
        let half_segment_bytes = (config.segment_size_bytes / 2) as usize;
        let batch_count_max = (half_segment_bytes / record_encoded_bytes).clamp(1, BATCH_COUNT_MAX);
        Workload {
            content: Content {
                seed,
                record_size_bytes_max,
                lsn_generation: Lsn::MAX,
            },
            batch_count_max,
            prng: Prng::new(mix(seed ^ DOMAIN_STEPS)),
            buffer: vec![0; batch_count_max * record_size_bytes_max],
        }
    }

    /// From `lsn` on, records get the contents of a new generation, so that a record left
    /// over from before the crash cannot pass for one appended after it.
    fn generation_start(&mut self, lsn: Lsn) {
        assert_eq!(self.content.lsn_generation, Lsn::MAX, "one crash per demo");
        self.content.lsn_generation = lsn;
    }

    /// Checks that `actual` is the record at `lsn`; says where it differs if not.
    fn record_compare(&mut self, lsn: Lsn, actual: &[u8], how: &str) -> Result<(), String> {
        let size_bytes = self.content.record_make(lsn, &mut self.buffer);
        match record_difference(&self.buffer[..size_bytes], actual) {
            None => Ok(()),
            Some(what) => Err(format!("verification failed: record {lsn} ({how}): {what}")),
        }
    }

    /// Appends a single record or a batch of up to `count_max` records.
    fn step(&mut self, log: &mut Log<impl Storage>, count_max: u64) -> Result<Step, String> {
        assert!(count_max > 0);
        let batch = self.batch_count_max > 1 && self.prng.below(2) == 0;
        let count = if batch {
            2 + self.prng.below(self.batch_count_max as u64 - 1)
        } else {
            1
        };
        let count = count.min(count_max) as usize;
        if count == 1 {
            self.append_single(log)
        } else {
            self.append_batch(log, count)
        }
    }

    fn append_single(&mut self, log: &mut Log<impl Storage>) -> Result<Step, String> {
        let lsn = log.next_lsn();
        let size_bytes = self.content.record_make(lsn, &mut self.buffer);
        let lsn_appended = log
            .append(&self.buffer[..size_bytes])
            .map_err(|error| format!("append at lsn {lsn}: {error}"))?;
        assert_eq!(lsn_appended, lsn);
        Ok(Step {
            record_count: 1,
            size_bytes: size_bytes as u64,
        })
    }

    fn append_batch(&mut self, log: &mut Log<impl Storage>, count: usize) -> Result<Step, String> {
        assert!(count >= 2 && count <= self.batch_count_max);
        let lsn = log.next_lsn();
        let mut sizes_bytes = [0usize; BATCH_COUNT_MAX];
        let mut offset_bytes = 0;
        for (index, size_bytes) in sizes_bytes[..count].iter_mut().enumerate() {
            let out = &mut self.buffer[offset_bytes..];
            *size_bytes = self.content.record_make(lsn + index as u64, out);
            offset_bytes += *size_bytes;
        }
        let mut records: [&[u8]; BATCH_COUNT_MAX] = [&[]; BATCH_COUNT_MAX];
        let mut rest = &self.buffer[..offset_bytes];
        for (record, &size_bytes) in records[..count].iter_mut().zip(&sizes_bytes[..count]) {
            (*record, rest) = rest.split_at(size_bytes);
        }
        assert!(rest.is_empty());
        let lsn_appended = log
            .append_batch(&records[..count])
            .map_err(|error| format!("append_batch at lsn {lsn}: {error}"))?;
        assert_eq!(lsn_appended, lsn);
        assert_eq!(log.next_lsn(), lsn + count as u64);
        Ok(Step {
            record_count: count as u64,
            size_bytes: offset_bytes as u64,
        })
    }
}

/// Where two records differ, or `None` if they are equal.
fn record_difference(expected: &[u8], actual: &[u8]) -> Option<String> {
    if expected.len() != actual.len() {
        return Some(format!(
            "expected {} bytes, read {} bytes",
            expected.len(),
            actual.len()
        ));
    }
    let offset = expected.iter().zip(actual).position(|(a, b)| a != b)?;
    Some(format!(
        "byte {offset} differs: expected {:#04x}, read {:#04x}",
        expected[offset], actual[offset]
    ))
}

/// SplitMix64 (Steele, Lea and Flood, 2014): tiny, fast, and plenty for demo data.
struct Prng {
    state: u64,
}

impl Prng {
    fn new(seed: u64) -> Prng {
        Prng { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// A number in `0..bound`; the modulo bias is negligible for the small bounds used here.
    fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0);
        self.next_u64() % bound
    }
}

/// SplitMix64's finalizer: a bijection that scatters every input bit over the output.
fn mix(value: u64) -> u64 {
    let mut z = value;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn elapsed_ns(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn header_print(args: &DemoArgs, config: &Config, workload: &Workload) {
    let storage_size_bytes = 2 * config.segment_size_bytes * u64::from(config.segment_count_max);
    let on = match &args.dir {
        None => "in-memory storage".to_string(),
        Some(dir) => format!("DirectStorage in {}", dir.display()),
    };
    println!(
        "ballast demo: seed {}, {} records of 0..={} bytes, on {on}",
        args.seed, args.records, args.record_size_bytes_max
    );
    println!(
        "  config      {} segments, {} blocks, {} x {} write buffers, at most {} segments held",
        size_human(config.segment_size_bytes),
        size_human(u64::from(config.block_size_bytes)),
        config.write_buffer_count,
        size_human(u64::from(config.write_buffer_size_bytes)),
        config.segment_count_max,
    );
    println!(
        "  workload    single appends and batches of up to {} records, flush every {} records",
        workload.batch_count_max, args.flush_interval_records
    );
    if args.dir.is_none() {
        println!(
            "  memory      {} of log buffers, at most {} of storage (two images per segment)",
            size_human(config.memory_size_bytes()),
            size_human(storage_size_bytes),
        );
    } else {
        println!(
            "  disk        {} of log buffers, at most {} of segment files",
            size_human(config.memory_size_bytes()),
            size_human(config.segment_size_bytes * u64::from(config.segment_count_max)),
        );
    }
}

fn appended_print(appended: &Appended, log: &Log<impl Storage>) {
    let seconds = appended.elapsed_ns.max(1) as f64 / 1e9;
    let segment_count = log.segment_count() as u64;
    println!("append");
    println!(
        "  records     {} ({} single appends, {} records in {} batches)",
        appended.record_count,
        appended.single_count,
        appended.batch_record_count,
        appended.batch_count
    );
    println!(
        "  bytes       {} ({})",
        appended.size_bytes,
        size_human(appended.size_bytes)
    );
    println!("  flushes     {}", appended.flush_count);
    println!(
        "  segments    {} rolls, {} dropped by retention, {} held (lsn {}..{})",
        appended.segments_dropped + segment_count - 1,
        appended.segments_dropped,
        segment_count,
        log.first_lsn(),
        log.next_lsn()
    );
    println!(
        "  time        {:.3} s: {:.0} records/s, {:.1} MB/s",
        seconds,
        appended.record_count as f64 / seconds,
        appended.size_bytes as f64 / seconds / 1e6
    );
    println!("  durable     every record below lsn {}", log.durable_lsn());
}

fn crash_print(tail: &Tail, crash: &Crash) {
    let sector_count = crash.sectors_kept + crash.sectors_lost + crash.sectors_torn;
    println!("crash");
    println!(
        "  unflushed   {} records appended after the last flush (lsn {}..{}, {})",
        tail.lsn_end - tail.lsn_start,
        tail.lsn_start,
        tail.lsn_end,
        size_human(tail.size_bytes)
    );
    if tail.segments_dropped > 0 {
        println!(
            "  retention   dropped {} more segment(s) while appending them (log from lsn {})",
            tail.segments_dropped, tail.lsn_first
        );
    }
    println!(
        "  sectors     {} written but not synced: {} kept, {} lost, {} torn",
        sector_count, crash.sectors_kept, crash.sectors_lost, crash.sectors_torn
    );
}

fn recovery_print(report: &RecoveryReport, recovery_ns: u64, expect: &Expect) {
    let tail_count = expect.lsn_appended - expect.lsn_durable;
    let survived_count = report.lsn_next.saturating_sub(expect.lsn_durable);
    println!("recovery");
    println!("  time        {:.3} ms", recovery_ns as f64 / 1e6);
    println!(
        "  lsn range   {}..{} ({} records)",
        report.lsn_first,
        report.lsn_next,
        report.lsn_next.saturating_sub(report.lsn_first)
    );
    let after = match report.end_written {
        true => "bytes follow: a write was cut or dropped",
        false => "zeros follow",
    };
    println!(
        "  end         {:?} in segment {} at byte offset {} ({after})",
        report.end, report.end_segment, report.end_offset_bytes
    );
    println!(
        "  blocks      {} accepted in {} segments; segments removed after the end: {}",
        report.block_count, report.segment_count, report.segments_removed
    );
    println!(
        "  unflushed   {survived_count} of {tail_count} unflushed records survived (never \
         acknowledged, so they may be lost)"
    );
    println!("  epoch       {}", report.epoch);
}

fn verified_print(log: &Log<impl Storage>, lsn_recovered: Lsn, expect: &Expect, verify_ns: u64) {
    let record_count = lsn_recovered - expect.lsn_first;
    println!("verify");
    println!(
        "  records     lsn {}..{} match byte for byte, by lsn and by cursor ({:.3} s)",
        expect.lsn_first,
        lsn_recovered,
        verify_ns as f64 / 1e9
    );
    println!(
        "  resume      {RESUME_RECORD_COUNT} records appended at lsn {lsn_recovered}..{}, \
         flushed and read back",
        log.next_lsn()
    );
    println!(
        "verified {record_count} records: every acknowledged record the log still holds \
         survived the crash byte for byte"
    );
}
