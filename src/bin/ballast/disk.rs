//! The commands on a log directory: `append`, `cat`, `info`, `verify` (and the writer's
//! opening that `truncate` shares).
//!
//! `append` is the writer: it takes the directory's lock, so a second writer fails with
//! "locked". `cat`, `info` and `verify` are readers: they open the directory with
//! `DirectStorage::open_read_only`, which takes no lock and changes no file, so they work
//! beside a running writer. A reader's log is what recovery would make of the files at the
//! moment it opens, synced to disk by the reader itself: every record a reader prints is
//! durable.

use ballast_log::config::RECORD_SIZE_BYTES_MAX;
use ballast_log::format::{self, Metadata, METADATA_SIZE_BYTES};
use ballast_log::storage::{
    segment_file_name, segment_file_parse, DirectOptions, DirectStorage, IoMode, Storage,
    METADATA_FILE_NAME,
};
use ballast_log::{Config, Error, Log, Lsn, RecoveryReport};
use clap::Args;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use crate::size_human;

/// Where the log is, and how to open it.
#[derive(Args, Clone, Debug)]
pub struct DirArgs {
    /// The log directory.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,

    /// On a filesystem that refuses O_DIRECT (ramfs, tmpfs before Linux 6.6, some FUSE and
    /// network filesystems), use buffered IO with fdatasync instead of failing.
    #[arg(long = "buffered-fallback")]
    pub buffered_fallback: bool,
}

#[derive(Args, Debug)]
pub struct AppendArgs {
    #[command(flatten)]
    dir: DirArgs,

    /// Read records as a 4-byte little-endian length followed by that many bytes, instead of
    /// one record per line (without its `\n`).
    #[arg(long = "length-prefixed")]
    length_prefixed: bool,

    /// For a new log: the size of each segment file, a multiple of the 64 KiB block size.
    #[arg(long = "segment-size-bytes", value_name = "BYTES", default_value_t = 64 << 20)]
    segment_size_bytes: u64,

    /// The largest record accepted, in bytes [default: 1 MiB, or less if a segment holds
    /// less].
    #[arg(long = "record-size-max", value_name = "BYTES")]
    record_size_bytes_max: Option<u32>,

    /// Most segment files the log may hold; appends fail with "log full" beyond it.
    #[arg(
        long = "segment-count-max",
        value_name = "COUNT",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u32).range(2..=65536)
    )]
    segment_count_max: u32,

    #[command(flatten)]
    retain: RetainArgs,
}

#[derive(Args, Debug)]
pub struct CatArgs {
    #[command(flatten)]
    dir: DirArgs,

    /// The first record to print (default: the first the log holds).
    #[arg(long, value_name = "LSN")]
    from: Option<Lsn>,

    /// Keep printing records as they become durable, like `tail -f`.
    #[arg(short = 'f', long)]
    follow: bool,

    /// Print each record as a 4-byte little-endian length and its bytes, instead of one line
    /// per record.
    #[arg(long = "length-prefixed")]
    length_prefixed: bool,

    /// Start each line with the record's LSN and a tab.
    #[arg(long = "lsn", conflicts_with = "length_prefixed")]
    show_lsn: bool,

    /// With `-f`: how often to look for new records, in milliseconds.
    #[arg(long = "interval-ms", value_name = "MS", default_value_t = 200)]
    interval_ms: u64,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    dir: DirArgs,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    dir: DirArgs,
}

/// `append`'s largest record unless `--record-size-max` says otherwise.
const RECORD_SIZE_BYTES_DEFAULT: u64 = 1 << 20;
/// Write buffers of about this size; a multiple of the block size.
const WRITE_BUFFER_SIZE_BYTES: u32 = 1 << 20;
const WRITE_BUFFER_COUNT: u32 = 4;
const READ_BUFFER_SIZE_BYTES: u32 = 1 << 20;
/// A reader that meets damage or a vanished file tries again this many times: a writer
/// running beside it can make a block it read a moment ago look torn while a later one
/// already attests it, or drop a segment it was about to open. Real damage stays.
const READER_ATTEMPTS: u32 = 4;
const READER_RETRY_DELAY: Duration = Duration::from_millis(100);
/// `cat -f` reopens the log at least this often even if no file seems to have changed
/// (file times can be coarser than the writer's pace).
const FOLLOW_REFRESH: Duration = Duration::from_secs(2);

fn options(dir: &DirArgs, config: &Config) -> DirectOptions {
    DirectOptions {
        buffered_fallback: dir.buffered_fallback,
        segment_count_max: config.segment_count_max,
        read_ahead_size_bytes: config.read_buffer_size_bytes,
        ..DirectOptions::default()
    }
}

/// The layout recorded in the directory's metadata, if it holds a log.
fn layout_read(dir: &Path) -> Result<Option<Metadata>, String> {
    let path = dir.join(METADATA_FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
    };
    if bytes.len() < METADATA_SIZE_BYTES {
        return Err(format!("{} is not a Ballast metadata file", path.display()));
    }
    Metadata::decode(&bytes)
        .map(Some)
        .map_err(|fault| format!("{} is damaged or foreign: {fault:?}", path.display()))
}

fn segment_files(dir: &Path) -> Result<Vec<Lsn>, String> {
    let entries = std::fs::read_dir(dir).map_err(|error| format!("{}: {error}", dir.display()))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| format!("{}: {error}", dir.display()))?;
        if let Some(segment) = segment_file_parse(entry.file_name().as_bytes()) {
            segments.push(segment);
        }
    }
    segments.sort_unstable();
    Ok(segments)
}

/// A `Config` for a log with this layout.
fn config_make(
    sector_size_bytes: u32,
    block_size_bytes: u32,
    segment_size_bytes: u64,
    record_size_bytes_max: Option<u32>,
    segment_count_max: u32,
) -> Result<Config, String> {
    let block = block_size_bytes;
    let write_buffer = (WRITE_BUFFER_SIZE_BYTES / block).max(1) * block;
    let write_buffer = u64::from(write_buffer).min(segment_size_bytes) as u32;
    let capacity = format::record_size_bytes_limit(segment_size_bytes, block, sector_size_bytes);
    let capacity = capacity.min(u64::from(RECORD_SIZE_BYTES_MAX)) as u32;
    let config = Config {
        sector_size_bytes,
        block_size_bytes: block,
        segment_size_bytes,
        write_buffer_size_bytes: write_buffer,
        write_buffer_count: WRITE_BUFFER_COUNT,
        // A reader does not know the largest record: it takes the largest a segment holds.
        record_size_bytes_max: record_size_bytes_max.unwrap_or(capacity),
        segment_count_max,
        read_buffer_size_bytes: READ_BUFFER_SIZE_BYTES.max(block),
        ..Config::default()
    };
    config.validate().map_err(|error| {
        // Only `append` takes these flags; a log opened for reading takes its sizes from the
        // metadata.
        let flag = crate::demo::config_flag_hint(&error);
        format!("these settings do not make a valid log: {error}{flag}")
    })?;
    Ok(config)
}

/// Opens the log for reading, from the segment holding `lsn_from`, retrying what a running
/// writer can cause.
fn reader_open(dir: &DirArgs, lsn_from: Lsn) -> Result<Log<DirectStorage>, String> {
    let mut attempt = 1;
    loop {
        match reader_open_once(dir, lsn_from) {
            Ok(log) => return Ok(log),
            Err(ReaderError::Log(error)) if attempt < READER_ATTEMPTS && transient(&error) => {
                tracing::info!(attempt, %error, "reopening: a writer may be running");
            }
            Err(error) => return Err(error.to_string()),
        }
        attempt += 1;
        std::thread::sleep(READER_RETRY_DELAY);
    }
}

enum ReaderError {
    Message(String),
    Log(Error),
}

impl std::fmt::Display for ReaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReaderError::Message(message) => f.write_str(message),
            ReaderError::Log(error) => write!(f, "{error}"),
        }
    }
}

fn reader_open_once(dir: &DirArgs, lsn_from: Lsn) -> Result<Log<DirectStorage>, ReaderError> {
    let Some(layout) = layout_read(&dir.dir).map_err(ReaderError::Message)? else {
        return Err(ReaderError::Message(format!(
            "{} holds no log (no {METADATA_FILE_NAME} file)",
            dir.dir.display()
        )));
    };
    let segment_count = segment_files(&dir.dir).map_err(ReaderError::Message)?.len();
    let segment_count_max = (segment_count as u32 + 2).max(2);
    let config = config_make(
        layout.sector_size_bytes,
        layout.block_size_bytes,
        layout.segment_size_bytes,
        None,
        segment_count_max,
    )
    .map_err(ReaderError::Message)?;
    let storage = DirectStorage::open_read_only(&dir.dir, &options(dir, &config), lsn_from)
        .map_err(ReaderError::Log)?;
    Log::open(config, storage).map_err(ReaderError::Log)
}

/// Errors a running writer can cause a reader, which a second look clears.
fn transient(error: &Error) -> bool {
    match error {
        Error::Corruption { .. } | Error::ConfigMismatch { .. } => true,
        Error::Io { source, .. } | Error::Open { source, .. } => {
            source.kind() == std::io::ErrorKind::NotFound
        }
        _ => false,
    }
}

/// `ballast append`.
pub fn append(args: &AppendArgs) -> Result<ExitCode, String> {
    let dir = &args.dir;
    let layout = layout_read(&dir.dir)?;
    let (sector, block, segment) = match &layout {
        Some(layout) => (
            layout.sector_size_bytes,
            layout.block_size_bytes,
            layout.segment_size_bytes,
        ),
        None => (4096, 64 << 10, args.segment_size_bytes),
    };
    let segment_count = if dir.dir.is_dir() {
        segment_files(&dir.dir)?.len() as u32
    } else {
        0
    };
    // Room for the segments there are, and with retention for the kept ones plus the one a
    // roll adds before retention drops the oldest.
    let segment_count_kept = args.retain.segments_kept(segment).unwrap_or(0);
    let segment_count_max = args
        .segment_count_max
        .max(segment_count + 1)
        .max(segment_count_kept + 1);
    let record_size_bytes_max = args.record_size_bytes_max.unwrap_or_else(|| {
        let capacity = format::record_size_bytes_limit(segment, block, sector);
        capacity.min(RECORD_SIZE_BYTES_DEFAULT) as u32
    });
    let config = config_make(
        sector,
        block,
        segment,
        Some(record_size_bytes_max),
        segment_count_max,
    )?;
    let mut log = writer_open(dir, config.clone())?;
    let mut retention = Retention::new(&args.retain, segment);
    retention.apply(&mut log)?;
    let lsn_start = log.next_lsn();
    let stdin = std::io::stdin();
    let mut input = BufReader::with_capacity(1 << 20, stdin.lock());
    let mut record = Vec::with_capacity(config.record_size_bytes_max as usize + 1);
    let mut flush_count: u64 = 0;
    loop {
        // Group commit: flush whenever the input has nothing more ready, so that a record is
        // acknowledged as soon as its producer pauses, and a bulk input is synced in bulk.
        if input.buffer().is_empty() && log.next_lsn() > log.durable_lsn() && !stdin_ready() {
            log.flush().map_err(|error| error.to_string())?;
            flush_count += 1;
        }
        let more = if args.length_prefixed {
            record_read_prefixed(&mut input, &mut record, record_size_bytes_max)?
        } else {
            record_read_line(&mut input, &mut record)?
        };
        if !more {
            break;
        }
        log.append(&record).map_err(|error| {
            let hint = match error {
                Error::LogFull { .. } => {
                    "; drop old segments with `ballast truncate --before LSN`, or append with \
                     --retain-bytes or --retain-segments"
                }
                _ => "",
            };
            format!(
                "record {} of the input: {error}{hint}",
                log.next_lsn() - lsn_start
            )
        })?;
        retention.apply(&mut log)?;
    }
    log.flush().map_err(|error| error.to_string())?;
    flush_count += 1;
    let lsn_end = log.next_lsn();
    let lsn_first = log.first_lsn();
    log.close().map_err(|error| error.to_string())?;
    println!(
        "appended {} records (lsn {lsn_start}..{lsn_end}), durable; {flush_count} flushes",
        lsn_end - lsn_start
    );
    if retention.segments_dropped > 0 {
        println!(
            "retention dropped {} segments; the log holds lsn {lsn_first}..{lsn_end}",
            retention.segments_dropped
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens the log in `dir` as its one writer: takes the directory's lock (a second writer
/// fails with "locked") and recovers. Creates the log if the directory holds none.
pub fn writer_open(dir: &DirArgs, config: Config) -> Result<Log<DirectStorage>, String> {
    let storage =
        DirectStorage::open(&dir.dir, &options(dir, &config)).map_err(|error| error.to_string())?;
    Log::open(config, storage).map_err(|error| error.to_string())
}

/// Opens an existing log as its writer, with the layout its metadata records; fails if the
/// directory holds no log rather than making one.
pub fn writer_open_existing(dir: &DirArgs) -> Result<Log<DirectStorage>, String> {
    let Some(layout) = layout_read(&dir.dir)? else {
        return Err(format!(
            "{} holds no log (no {METADATA_FILE_NAME} file)",
            dir.dir.display()
        ));
    };
    let segment_count = segment_files(&dir.dir)?.len() as u32;
    let config = config_make(
        layout.sector_size_bytes,
        layout.block_size_bytes,
        layout.segment_size_bytes,
        None,
        (segment_count + 2).max(2),
    )?;
    writer_open(dir, config)
}

/// How much of the log `append` keeps: Kafka's `retention.bytes`, in whole segments.
#[derive(Args, Debug, Clone, Default)]
pub struct RetainArgs {
    /// Keep at most this many bytes of segment files: after each segment roll, drop the
    /// oldest whole segments until the rest fit (at least the segment being written stays).
    /// The preallocated spare segment file is not counted. Default: keep everything.
    #[arg(long = "retain-bytes", value_name = "BYTES")]
    retain_bytes: Option<u64>,

    /// Keep at most this many segments: after each segment roll, drop the oldest.
    #[arg(
        long = "retain-segments",
        value_name = "COUNT",
        value_parser = clap::value_parser!(u32).range(1..=65535)
    )]
    retain_segments: Option<u32>,
}

impl RetainArgs {
    /// The number of segments to keep, if any limit is set: the stricter of the two.
    fn segments_kept(&self, segment_size_bytes: u64) -> Option<u32> {
        let by_bytes = self
            .retain_bytes
            .map(|bytes| (bytes / segment_size_bytes).clamp(1, u64::from(u32::MAX)) as u32);
        match (by_bytes, self.retain_segments) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Drops the oldest segments past the retention limit, whenever a roll adds one.
struct Retention {
    segments_kept: Option<u32>,
    segments_dropped: u64,
}

impl Retention {
    fn new(args: &RetainArgs, segment_size_bytes: u64) -> Retention {
        Retention {
            segments_kept: args.segments_kept(segment_size_bytes),
            segments_dropped: 0,
        }
    }

    fn apply(&mut self, log: &mut Log<DirectStorage>) -> Result<(), String> {
        let Some(kept) = self.segments_kept else {
            return Ok(());
        };
        let count = log.segment_count();
        if count <= kept as usize {
            return Ok(());
        }
        let lsn = log
            .segment_lsn(count - kept as usize)
            .expect("a segment index below the count");
        log.truncate_prefix(lsn)
            .map_err(|error| format!("retention: dropping segments before lsn {lsn}: {error}"))?;
        self.segments_dropped += (count - log.segment_count()) as u64;
        Ok(())
    }
}

/// Whether stdin has input ready now (so reading will not block).
fn stdin_ready() -> bool {
    let mut poll = libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no timeout.
    let ready = unsafe { libc::poll(&mut poll, 1, 0) };
    ready > 0
}

fn record_read_line(input: &mut impl BufRead, record: &mut Vec<u8>) -> Result<bool, String> {
    record.clear();
    let size = input
        .read_until(b'\n', record)
        .map_err(|error| format!("reading stdin: {error}"))?;
    if size == 0 {
        return Ok(false);
    }
    if record.last() == Some(&b'\n') {
        record.pop();
    }
    Ok(true)
}

fn record_read_prefixed(
    input: &mut impl BufRead,
    record: &mut Vec<u8>,
    size_bytes_max: u32,
) -> Result<bool, String> {
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let read = input
            .read(&mut prefix[got..])
            .map_err(|error| format!("reading stdin: {error}"))?;
        if read == 0 {
            if got == 0 {
                return Ok(false);
            }
            return Err("stdin ends inside a length prefix".to_string());
        }
        got += read;
    }
    let size = u32::from_le_bytes(prefix);
    if size > size_bytes_max {
        return Err(format!(
            "a record of {size} bytes exceeds --record-size-max ({size_bytes_max})"
        ));
    }
    record.resize(size as usize, 0);
    input
        .read_exact(record)
        .map_err(|error| format!("stdin ends inside a record of {size} bytes: {error}"))?;
    Ok(true)
}

/// `ballast cat`.
pub fn cat(args: &CatArgs) -> Result<ExitCode, String> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut next: Option<Lsn> = args.from;
    loop {
        let signature = follow_signature(&args.dir.dir);
        let mut log = reader_open(&args.dir, next.unwrap_or(0))?;
        let start = next.unwrap_or(log.first_lsn());
        if start < log.first_lsn() {
            return Err(format!(
                "records before lsn {} were dropped by retention; asked for lsn {start}",
                log.first_lsn()
            ));
        }
        if start > log.next_lsn() && !args.follow {
            return Err(format!(
                "lsn {start} is past the end of the log (next lsn {})",
                log.next_lsn()
            ));
        }
        if start <= log.next_lsn() {
            let mut cursor = log.cursor(start).map_err(|error| error.to_string())?;
            while let Some(record) = log
                .cursor_next(&mut cursor)
                .map_err(|error| error.to_string())?
            {
                if let Err(error) = record_write(&mut out, args, record.lsn, record.data) {
                    return pipe_closed(error);
                }
            }
            next = Some(cursor.lsn_next());
        }
        if let Err(error) = out.flush() {
            return pipe_closed(error);
        }
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        drop(log);
        follow_wait(&args.dir.dir, signature, args.interval_ms);
    }
}

fn pipe_closed(error: std::io::Error) -> Result<ExitCode, String> {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        return Ok(ExitCode::SUCCESS);
    }
    Err(format!("writing stdout: {error}"))
}

fn record_write(
    out: &mut impl Write,
    args: &CatArgs,
    lsn: Lsn,
    data: &[u8],
) -> std::io::Result<()> {
    if args.length_prefixed {
        let size = u32::try_from(data.len()).expect("records are at most 256 MiB");
        out.write_all(&size.to_le_bytes())?;
        return out.write_all(data);
    }
    if args.show_lsn {
        write!(out, "{lsn}\t")?;
    }
    out.write_all(data)?;
    out.write_all(b"\n")
}

/// What changes when a writer writes: the segment files and the newest one's time.
fn follow_signature(dir: &Path) -> Option<(Vec<Lsn>, SystemTime)> {
    let segments = segment_files(dir).ok()?;
    let last = *segments.last()?;
    let modified = std::fs::metadata(dir.join(segment_file_name(last)))
        .and_then(|metadata| metadata.modified())
        .ok()?;
    Some((segments, modified))
}

/// Sleeps until the files change (or [`FOLLOW_REFRESH`] passes).
fn follow_wait(dir: &Path, signature: Option<(Vec<Lsn>, SystemTime)>, interval_ms: u64) {
    let start = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(interval_ms.max(1)));
        if follow_signature(dir) != signature || start.elapsed() >= FOLLOW_REFRESH {
            return;
        }
    }
}

/// `ballast info`.
pub fn info(args: &InfoArgs) -> Result<ExitCode, String> {
    let mut log = reader_open(&args.dir, 0)?;
    let config = log.config().clone();
    let report = *log.recovery_report();
    let storage_mode = log.storage().io_mode();
    let alignment = log.storage().sector_size_bytes();
    let segments = log
        .storage_mut()
        .segment_list()
        .map_err(|error| error.to_string())?;
    println!("log         {}", args.dir.dir.display());
    let mode = match storage_mode {
        IoMode::Direct => format!("O_DIRECT, {alignment}-byte alignment"),
        IoMode::Buffered => "buffered (the filesystem refuses O_DIRECT), fdatasync".to_string(),
    };
    println!("io          {mode}");
    println!(
        "format      version {}: {} sectors, {} blocks, {} segments",
        format::FORMAT_VERSION,
        size_human(u64::from(config.sector_size_bytes)),
        size_human(u64::from(config.block_size_bytes)),
        size_human(config.segment_size_bytes)
    );
    println!(
        "segments    {} files, {} allocated",
        segments.len(),
        size_human(config.segment_size_bytes * segments.len() as u64)
    );
    for (index, &segment) in segments.iter().enumerate() {
        let end = segments.get(index + 1).copied().unwrap_or(log.next_lsn());
        println!(
            "  {}  lsn {segment}..{end} ({} records)",
            segment_file_name(segment),
            end - segment
        );
    }
    let used = config.segment_size_bytes * (segments.len() as u64 - 1) + report.end_offset_bytes;
    println!(
        "records     lsn {}..{} ({} records)",
        log.first_lsn(),
        log.next_lsn(),
        log.next_lsn() - log.first_lsn()
    );
    println!(
        "durable     every record below lsn {} is on disk (synced when this command read it)",
        log.durable_lsn()
    );
    println!(
        "end         segment {} at byte offset {}; about {} written",
        segment_file_name(report.end_segment),
        report.end_offset_bytes,
        size_human(used)
    );
    let end = match (report.clean_end, report.end_written) {
        (true, _) => "closed cleanly there",
        (false, false) => "not closed cleanly; nothing written after the end",
        (false, true) => "not closed cleanly; the sector after the end holds a cut write",
    };
    println!("recovery    {end}; epoch {}", report.epoch);
    println!(
        "attested    every record below lsn {} is attested on disk: damage to it is reported",
        report.lsn_checkpoint.max(log.attested_lsn())
    );
    if let Some(line) = discarded_line(&report) {
        println!("discarded   {line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// What recovery dropped after the end, if it dropped any valid block: a possible loss.
fn discarded_line(report: &RecoveryReport) -> Option<String> {
    let discarded = report.discarded;
    if discarded.block_count == 0 {
        return None;
    }
    Some(format!(
        "possible loss of {} records beyond lsn {}: {} valid block(s) ({}) after the end, \
         claiming lsn {}..{}, were dropped; they were written but nothing attests that they \
         were durable (a crash cut the log before them, or damage hid the block before them)",
        report.records_discarded_max(),
        report.lsn_next,
        discarded.block_count,
        size_human(discarded.size_bytes),
        discarded.lsn_first,
        discarded.lsn_end
    ))
}

/// Exit status of `verify` when damage is found.
const EXIT_CORRUPT: u8 = 1;
/// Exit status of `verify` when it could not verify (no log, IO error, bad arguments).
const EXIT_UNVERIFIED: u8 = 2;
/// Exit status of `verify` when every record is intact but recovery dropped valid blocks after
/// the end, which may have held acknowledged records.
const EXIT_POSSIBLE_LOSS: u8 = 3;

/// `ballast verify`.
pub fn verify(args: &VerifyArgs) -> Result<ExitCode, String> {
    let start = Instant::now();
    let mut attempt = 1;
    let mut log = loop {
        match reader_open_once(&args.dir, 0) {
            Ok(log) => break log,
            Err(ReaderError::Log(error)) if attempt < READER_ATTEMPTS && transient(&error) => {
                attempt += 1;
                std::thread::sleep(READER_RETRY_DELAY);
            }
            Err(ReaderError::Log(error)) => return Ok(verify_failed(&args.dir.dir, &error)),
            Err(error) => {
                eprintln!("ballast verify: cannot verify: {error}");
                return Ok(ExitCode::from(EXIT_UNVERIFIED));
            }
        }
    };
    let (first, next) = (log.first_lsn(), log.next_lsn());
    let report = *log.recovery_report();
    let bar = indicatif::ProgressBar::new(next - first);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} verifying [{bar:40}] {pos}/{len} records ({per_sec}, {eta} left)",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let mut cursor = log.cursor(first).map_err(|error| error.to_string())?;
    let mut size_bytes: u64 = 0;
    let mut count: u64 = 0;
    loop {
        match log.cursor_next(&mut cursor) {
            Ok(Some(record)) => {
                size_bytes += record.data.len() as u64;
                count += 1;
                if count % 4096 == 0 {
                    bar.set_position(count);
                }
            }
            Ok(None) => break,
            Err(error) => {
                bar.abandon();
                return Ok(verify_failed(&args.dir.dir, &error));
            }
        }
    }
    bar.finish_and_clear();
    assert_eq!(
        count,
        next - first,
        "the cursor yields every durable record"
    );
    let summary = format!(
        "{count} records (lsn {first}..{next}, {}) in {} segments verified in {:.2} s",
        size_human(size_bytes),
        log.segment_count(),
        start.elapsed().as_secs_f64()
    );
    if let Some(line) = discarded_line(&report) {
        println!("POSSIBLE LOSS: {line}");
        println!("{summary}: every block checksum, chain link and record frame up to the end");
        return Ok(ExitCode::from(EXIT_POSSIBLE_LOSS));
    }
    let end = match report.end_written {
        true => " (a crash cut a write after the last record; the bytes there hold no valid block)",
        false => "",
    };
    println!("ok: {summary}: every block checksum, chain link and record frame is intact{end}");
    Ok(ExitCode::SUCCESS)
}

/// Reports what `verify` found and returns its exit status.
fn verify_failed(dir: &Path, error: &Error) -> ExitCode {
    match error {
        Error::Corruption {
            segment,
            offset_bytes,
            kind,
        } => {
            println!(
                "CORRUPT: {} (segment {segment}), block at byte offset {offset_bytes}: {kind:?}",
                dir.join(segment_file_name(*segment)).display()
            );
            println!(
                "acknowledged records are damaged there; `Config::recovery_mode = PointInTime` \
                 would keep the records before it and drop the rest"
            );
            ExitCode::from(EXIT_CORRUPT)
        }
        Error::Io {
            segment: Some(segment),
            offset_bytes,
            source,
            ..
        } => {
            println!(
                "UNREADABLE: {} (segment {segment}) at byte offset {}: {source}",
                dir.join(segment_file_name(*segment)).display(),
                offset_bytes.map_or("?".to_string(), |offset| offset.to_string())
            );
            ExitCode::from(EXIT_CORRUPT)
        }
        error => {
            eprintln!("ballast verify: cannot verify: {error}");
            ExitCode::from(EXIT_UNVERIFIED)
        }
    }
}
