//! In-memory append benchmark: how fast records go through `Log` into `MemStorage`, next to
//! the cost of merely copying and checksumming the same bytes.
//!
//! Run with `cargo bench --bench append` (about 20 seconds) or
//! `cargo bench --bench append -- --quick` (a few seconds, for a smoke test). Every case runs
//! once to warm up and then `REPETITION_COUNT` times; the table reports the median repetition.
//! Everything runs on the calling thread, so on one core.
//!
//! No criterion: the figures `docs/benchmarks.md` quotes must come from one plain binary whose
//! loops can be read in a minute, and the log allocates nothing while appending, so a simple
//! median of wall-clock repetitions is stable enough.

use ballast_log::storage::MemStorage;
use ballast_log::{Config, Log, Lsn};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Repetitions measured after the warm-up; the median is reported.
const REPETITION_COUNT: usize = 7;
/// Distinct records the inputs cycle through; a power of two so batch windows divide it.
const POOL_RECORD_COUNT: usize = 4096;
/// Distance between the starts of consecutive pool records (larger records overlap).
const POOL_STRIDE_BYTES: usize = 128;
const RECORD_SIZE_SMALL_BYTES: usize = 128;
const RECORD_SIZE_LARGE_BYTES: usize = 1024;

const SECTOR_SIZE_BYTES: u32 = 4096;
const BLOCK_SIZE_BYTES: u32 = 64 * 1024;
const SEGMENT_SIZE_BYTES: u64 = 64 * 1024 * 1024;
const WRITE_BUFFER_SIZE_BYTES: u32 = 1024 * 1024;
const SEGMENT_COUNT_MAX: u32 = 64;
/// Framing the log adds to every record that fits in a block: the frame header.
const FRAME_SIZE_BYTES: usize = 4;
/// Framing the log adds to every block: the block header.
const BLOCK_HEADER_SIZE_BYTES: usize = 128;
/// Records appended after a flush for the "still in the write buffer" reads: they must fit in
/// one write buffer, so that none of them has been written to storage yet.
const READ_RECENT_COUNT: usize = 4096;
const READ_BUFFER_SIZE_BYTES: usize = RECORD_SIZE_LARGE_BYTES;

/// 128 B records that fill one segment: 495 framed records fill a block body, and a segment
/// holds 1024 blocks.
const RECORDS_PER_SEGMENT_SMALL: u64 = records_per_segment(RECORD_SIZE_SMALL_BYTES);
/// 1 KiB records that fill one segment: 63 per block.
const RECORDS_PER_SEGMENT_LARGE: u64 = records_per_segment(RECORD_SIZE_LARGE_BYTES);

const fn records_per_segment(record_size_bytes: usize) -> u64 {
    let body = BLOCK_SIZE_BYTES as usize - BLOCK_HEADER_SIZE_BYTES;
    let per_block = body / (record_size_bytes + FRAME_SIZE_BYTES);
    (per_block as u64) * (SEGMENT_SIZE_BYTES / BLOCK_SIZE_BYTES as u64)
}

const _: () = assert!(RECORDS_PER_SEGMENT_SMALL == 495 * 1024);
const _: () = assert!(RECORDS_PER_SEGMENT_LARGE == 63 * 1024);
const _: () = assert!(POOL_RECORD_COUNT.is_power_of_two());
const _: () = assert!(POOL_RECORD_COUNT % 1024 == 0);
const _: () = assert!(READ_RECENT_COUNT.is_power_of_two());
const _: () = assert!(
    READ_RECENT_COUNT * (RECORD_SIZE_SMALL_BYTES + FRAME_SIZE_BYTES)
        < WRITE_BUFFER_SIZE_BYTES as usize * 3 / 4
);
const _: () = assert!(SEGMENT_SIZE_BYTES % BLOCK_SIZE_BYTES as u64 == 0);

/// How much work each case does per repetition.
struct Plan {
    quick: bool,
    /// Records per repetition of the 128 B cases.
    record_count_small: u64,
    /// Records per repetition of the 1 KiB cases.
    record_count_large: u64,
    /// Records appended (and flushed) for the read and scan cases.
    record_count_read_set: u64,
    read_count_recent: u64,
    read_count_flushed_random: u64,
    read_count_flushed_ascending: u64,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        // Whole segments per repetition, so that every repetition pays for the same number of
        // segment rolls; both counts are multiples of 1024, the largest batch.
        let segments = if quick { 1 } else { 4 };
        let shift = if quick { 3 } else { 0 };
        Plan {
            quick,
            record_count_small: RECORDS_PER_SEGMENT_SMALL * segments,
            record_count_large: RECORDS_PER_SEGMENT_LARGE * segments,
            record_count_read_set: (32 << 10) >> shift,
            read_count_recent: (128 << 10) >> shift,
            read_count_flushed_random: (2 << 10) >> shift,
            read_count_flushed_ascending: (32 << 10) >> shift,
        }
    }

    /// Bytes the largest append case puts into storage in one repetition, framing included.
    fn repetition_size_bytes_max(&self) -> u64 {
        let small = self.record_count_small * (RECORD_SIZE_SMALL_BYTES + FRAME_SIZE_BYTES) as u64;
        let large = self.record_count_large * (RECORD_SIZE_LARGE_BYTES + FRAME_SIZE_BYTES) as u64;
        small.max(large)
    }

    /// Segments alive at once, at most: the one `truncate_prefix` keeps, those one repetition
    /// fills, one more when a repetition starts late in a segment, and one spare. Reserving
    /// them all means no segment roll allocates.
    fn segment_count_reserved(&self) -> usize {
        (self
            .repetition_size_bytes_max()
            .div_ceil(SEGMENT_SIZE_BYTES)
            + 3) as usize
    }
}

/// The record bytes every case copies: a pseudo-random pool that stays in the L2 cache.
struct Records {
    pool: Vec<u8>,
}

impl Records {
    fn new() -> Records {
        let size = (POOL_RECORD_COUNT - 1) * POOL_STRIDE_BYTES + RECORD_SIZE_LARGE_BYTES;
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let pool = (0..size)
            .map(|_| {
                // xorshift64: incompressible bytes, so nothing downstream can shortcut them.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 56) as u8
            })
            .collect();
        Records { pool }
    }

    fn get(&self, index: u64, size_bytes: usize) -> &[u8] {
        let start = (index as usize % POOL_RECORD_COUNT) * POOL_STRIDE_BYTES;
        &self.pool[start..start + size_bytes]
    }

    /// Every pool record as a slice, for batches.
    fn slices(&self, size_bytes: usize) -> Vec<&[u8]> {
        (0..POOL_RECORD_COUNT as u64)
            .map(|index| self.get(index, size_bytes))
            .collect()
    }
}

/// One line of the table.
struct Row {
    name: String,
    record_size_bytes: usize,
    /// Records appended, copied, read or scanned per repetition.
    record_count: u64,
    /// Wall-clock time of each measured repetition, sorted.
    elapsed_ns: Vec<u64>,
    /// Minor page faults of the median repetition.
    fault_count: u64,
}

impl Row {
    fn median_ns(&self) -> u64 {
        self.elapsed_ns[self.elapsed_ns.len() / 2]
    }

    fn ns_per_record(&self, elapsed_ns: u64) -> f64 {
        elapsed_ns as f64 / self.record_count as f64
    }

    fn records_per_second(&self) -> f64 {
        self.record_count as f64 * 1e9 / self.median_ns() as f64
    }
}

/// Runs `once` for a warm-up and then `REPETITION_COUNT` times; `once` times its own measured
/// part (so that per-repetition setup stays outside) and returns it.
fn measure(
    name: &str,
    record_size_bytes: usize,
    record_count: u64,
    mut once: impl FnMut() -> Duration,
) -> Row {
    assert!(record_count > 0);
    black_box(once());
    let mut samples: Vec<(u64, u64)> = (0..REPETITION_COUNT)
        .map(|_| {
            let faults_before = minor_fault_count();
            let elapsed = once();
            let faults = minor_fault_count().saturating_sub(faults_before);
            (
                u64::try_from(elapsed.as_nanos()).expect("elapsed fits u64"),
                faults,
            )
        })
        .collect();
    samples.sort_unstable();
    let row = Row {
        name: name.to_string(),
        record_size_bytes,
        record_count,
        elapsed_ns: samples.iter().map(|&(elapsed, _)| elapsed).collect(),
        fault_count: samples[samples.len() / 2].1,
    };
    eprintln!(
        "  {:<40} {:>9.1} ns/record",
        row.name,
        row.ns_per_record(row.median_ns())
    );
    row
}

/// Minor page faults of this process so far (Linux; zero elsewhere). A non-zero count in a
/// measured repetition means memory was touched for the first time while timing.
fn minor_fault_count() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // Fields after the parenthesised command name start at field 3 (state); minflt is field 10.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    rest.split_whitespace()
        .nth(7)
        .and_then(|field| field.parse().ok())
        .unwrap_or(0)
}

/// The memcpy ceiling: the same record bytes copied one record at a time into a preallocated
/// buffer of the same total size.
fn baseline_memcpy(records: &Records, size_bytes: usize, record_count: u64) -> Row {
    let mut target = vec![0u8; size_bytes * record_count as usize];
    measure(
        &format!("baseline: memcpy {size_bytes} B"),
        size_bytes,
        record_count,
        || {
            let start = Instant::now();
            for (index, chunk) in target.chunks_exact_mut(size_bytes).enumerate() {
                chunk.copy_from_slice(records.get(index as u64, size_bytes));
            }
            black_box(&mut target);
            start.elapsed()
        },
    )
}

/// The checksum ceiling: crc32c over the same number of record bytes, taken from the pool in
/// pieces of one block, as the log checksums a block body at once.
fn baseline_crc32c(records: &Records, size_bytes: usize, record_count: u64) -> Row {
    let total = size_bytes as u64 * record_count;
    let piece = BLOCK_SIZE_BYTES as usize;
    let source = &records.pool[..POOL_RECORD_COUNT * POOL_STRIDE_BYTES];
    measure(
        &format!("baseline: crc32c {size_bytes} B"),
        size_bytes,
        record_count,
        || {
            let start = Instant::now();
            let mut checksum = 0u32;
            let mut done = 0u64;
            while done < total {
                let offset = (done % source.len() as u64) as usize;
                let size = (piece as u64).min(total - done) as usize;
                let size = size.min(source.len() - offset);
                checksum = crc32c::crc32c_append(checksum, &source[offset..offset + size]);
                done += size as u64;
            }
            black_box(checksum);
            start.elapsed()
        },
    )
}

/// The bytes any log over MemStorage must move, with none of the log's per-record logic:
/// frame and copy each record into a write buffer, crc32c each block body, copy each full
/// buffer into the segment's image, zero both images of every new segment (one new segment
/// per segment's worth of records), and at the end copy everything written into the durable
/// images, as a sync does. Segments cycle through as many images as the log has reserved, so
/// the memory traffic matches.
fn baseline_byte_path(
    records: &Records,
    size_bytes: usize,
    record_count: u64,
    segment_count: usize,
) -> Row {
    let segment_size = SEGMENT_SIZE_BYTES as usize;
    let mut path = BytePath {
        buffer: vec![0u8; WRITE_BUFFER_SIZE_BYTES as usize],
        fill: BLOCK_HEADER_SIZE_BYTES,
        block_start: 0,
        images: (0..segment_count)
            // Not zeros: written now, so that no repetition takes the first page faults.
            .map(|_| [vec![1u8; segment_size], vec![1u8; segment_size]])
            .collect(),
        written: vec![0; segment_count],
        segment: 0,
        checksum: 0,
    };
    measure(
        &format!("baseline: byte path {size_bytes} B"),
        size_bytes,
        record_count,
        || {
            let start = Instant::now();
            let first = path.roll();
            for index in 0..record_count {
                let record = records.get(index, size_bytes);
                if path.fill + FRAME_SIZE_BYTES + size_bytes
                    > path.block_start + BLOCK_SIZE_BYTES as usize
                {
                    path.block_seal();
                }
                path.frame_put(record);
            }
            path.flush(first);
            black_box(path.checksum);
            start.elapsed()
        },
    )
}

/// State of [`baseline_byte_path`].
struct BytePath {
    buffer: Vec<u8>,
    fill: usize,
    block_start: usize,
    /// The current and the durable image of each segment.
    images: Vec<[Vec<u8>; 2]>,
    /// Bytes written to each segment's current image.
    written: Vec<usize>,
    segment: usize,
    checksum: u32,
}

impl BytePath {
    fn frame_put(&mut self, record: &[u8]) {
        let frame = self.fill..self.fill + FRAME_SIZE_BYTES;
        self.buffer[frame].copy_from_slice(&(record.len() as u32).to_le_bytes());
        self.fill += FRAME_SIZE_BYTES;
        self.buffer[self.fill..self.fill + record.len()].copy_from_slice(record);
        self.fill += record.len();
    }

    /// Checksums the block, and writes the buffer out once full.
    fn block_seal(&mut self) {
        let body = self.block_start + BLOCK_HEADER_SIZE_BYTES..self.fill;
        self.checksum ^= crc32c::crc32c(&self.buffer[body]);
        self.block_start += BLOCK_SIZE_BYTES as usize;
        self.fill = self.block_start + BLOCK_HEADER_SIZE_BYTES;
        if self.block_start < self.buffer.len() {
            return;
        }
        self.write(self.buffer.len());
        (self.block_start, self.fill) = (0, BLOCK_HEADER_SIZE_BYTES);
    }

    /// Starts the next segment, zeroing both its images; returns its index.
    fn roll(&mut self) -> usize {
        self.segment = (self.segment + 1) % self.images.len();
        for image in &mut self.images[self.segment] {
            image.fill(0);
        }
        self.written[self.segment] = 0;
        self.segment
    }

    /// Writes the first `size` bytes of the buffer at the end of the segment, after starting
    /// the next segment if they do not fit.
    fn write(&mut self, size: usize) {
        if self.written[self.segment] + size > SEGMENT_SIZE_BYTES as usize {
            self.roll();
        }
        let offset = self.written[self.segment];
        self.images[self.segment][0][offset..offset + size].copy_from_slice(&self.buffer[..size]);
        self.written[self.segment] += size;
    }

    /// Seals the open block, writes the buffer's used sectors, and copies everything written
    /// to the segments from `first` on into their durable images.
    fn flush(&mut self, first: usize) {
        let body = self.block_start + BLOCK_HEADER_SIZE_BYTES..self.fill;
        self.checksum ^= crc32c::crc32c(&self.buffer[body]);
        self.write(self.fill.next_multiple_of(SECTOR_SIZE_BYTES as usize));
        (self.block_start, self.fill) = (0, BLOCK_HEADER_SIZE_BYTES);
        let segment_count = (self.segment + self.images.len() - first) % self.images.len() + 1;
        for step in 0..segment_count {
            let segment = (first + step) % self.images.len();
            let written = self.written[segment];
            let [current, durable] = &mut self.images[segment];
            durable[..written].copy_from_slice(&current[..written]);
        }
    }
}

fn log_open(plan: &Plan) -> Log<MemStorage> {
    let config = Config {
        sector_size_bytes: SECTOR_SIZE_BYTES,
        block_size_bytes: BLOCK_SIZE_BYTES,
        segment_size_bytes: SEGMENT_SIZE_BYTES,
        write_buffer_size_bytes: WRITE_BUFFER_SIZE_BYTES,
        segment_count_max: SEGMENT_COUNT_MAX,
        ..Config::default()
    };
    let segment_count = plan.segment_count_reserved();
    assert!(segment_count < SEGMENT_COUNT_MAX as usize);
    let mut storage = MemStorage::new(SECTOR_SIZE_BYTES);
    storage.reserve(segment_count, SEGMENT_SIZE_BYTES);
    let mut log = Log::open(config, storage).expect("open");
    warm_segments(&mut log, segment_count);
    log
}

/// Creates (and so zeroes) every reserved segment once, all alive at the same time, so that no
/// repetition is the first to touch a segment's memory and pays its page faults.
fn warm_segments(log: &mut Log<MemStorage>, segment_count: usize) {
    let record = vec![0u8; 64 * 1024];
    while log.segment_count() < segment_count {
        log.append(&record).expect("append");
    }
    log.flush().expect("flush");
    log.truncate_prefix(log.next_lsn()).expect("truncate");
    assert_eq!(log.segment_count(), 1);
}

/// Appends `record_count` records per repetition in batches of `batch_count` (one record at a
/// time with `append` when it is `None`), then flushes.
fn log_append(
    log: &mut Log<MemStorage>,
    records: &Records,
    size_bytes: usize,
    record_count: u64,
    batch_count: Option<usize>,
) -> Row {
    let slices = records.slices(size_bytes);
    let name = match batch_count {
        None => format!("append {size_bytes} B"),
        Some(count) => format!("append_batch {size_bytes} B x {count}"),
    };
    measure(&name, size_bytes, record_count, || {
        // Keep memory bounded: drop every segment but the current one, outside the timing.
        log.truncate_prefix(log.next_lsn()).expect("truncate");
        let start = Instant::now();
        match batch_count {
            None => {
                for index in 0..record_count {
                    black_box(log.append(records.get(index, size_bytes)).expect("append"));
                }
            }
            Some(count) => {
                assert_eq!(record_count % count as u64, 0);
                for batch in 0..record_count / count as u64 {
                    let first = (batch as usize * count) % POOL_RECORD_COUNT;
                    let lsn = log.append_batch(&slices[first..first + count]);
                    black_box(lsn.expect("append_batch"));
                }
            }
        }
        log.flush().expect("flush");
        start.elapsed()
    })
}

/// A sequence of indexes below `count` (a power of two) in scattered order: an odd stride
/// visits every index once per `count` steps.
fn scattered(step: u64, count: u64) -> u64 {
    assert!(count.is_power_of_two());
    step.wrapping_mul(0x9E37_79B9) & (count - 1)
}

/// Reads of records that are still in the write buffer: appended after a flush, not written.
fn log_read_recent(
    log: &mut Log<MemStorage>,
    records: &Records,
    read_count: u64,
    buffer: &mut [u8],
) -> Row {
    let size = RECORD_SIZE_SMALL_BYTES;
    log.flush().expect("flush");
    let mut lsn_first = log.next_lsn();
    loop {
        let segments = log.segment_count();
        for index in 0..READ_RECENT_COUNT as u64 {
            log.append(records.get(index, size)).expect("append");
        }
        // A segment roll writes the buffer out; start again in the new segment.
        if log.segment_count() == segments {
            break;
        }
        lsn_first = log.next_lsn();
    }
    assert!(
        log.durable_lsn() <= lsn_first,
        "records must not be durable"
    );
    let row = measure(
        &format!("read {size} B, in write buffer"),
        size,
        read_count,
        || {
            let start = Instant::now();
            for step in 0..read_count {
                let lsn = lsn_first + scattered(step, READ_RECENT_COUNT as u64);
                black_box(log.read(lsn, buffer).expect("read"));
            }
            start.elapsed()
        },
    );
    log.flush().expect("flush");
    row
}

/// Reads of flushed records: in scattered order over the whole read set (most miss the read
/// buffer), or in ascending order (most hit it).
fn log_read_flushed(
    log: &mut Log<MemStorage>,
    lsn_range: (Lsn, Lsn),
    read_count: u64,
    scattered_order: bool,
    buffer: &mut [u8],
) -> Row {
    let (lsn_first, lsn_end) = lsn_range;
    assert!(lsn_end <= log.durable_lsn());
    assert!(lsn_end > lsn_first);
    // The largest power of two in the range, for `scattered`.
    let span = 1 << (63 - (lsn_end - lsn_first).leading_zeros());
    let name = if scattered_order {
        format!("read {RECORD_SIZE_SMALL_BYTES} B, flushed, scattered")
    } else {
        format!("read {RECORD_SIZE_SMALL_BYTES} B, flushed, ascending")
    };
    measure(&name, RECORD_SIZE_SMALL_BYTES, read_count, || {
        let start = Instant::now();
        for step in 0..read_count {
            let offset = if scattered_order {
                scattered(step, span)
            } else {
                step % (lsn_end - lsn_first)
            };
            black_box(log.read(lsn_first + offset, buffer).expect("read"));
        }
        start.elapsed()
    })
}

/// A cursor over the whole read set, all flushed, to the durable end of the log.
fn log_scan(log: &mut Log<MemStorage>, lsn_range: (Lsn, Lsn)) -> Row {
    let (lsn_first, lsn_end) = lsn_range;
    assert_eq!(lsn_end, log.durable_lsn());
    let record_count = lsn_end - lsn_first;
    measure(
        &format!("cursor scan {RECORD_SIZE_SMALL_BYTES} B, flushed"),
        RECORD_SIZE_SMALL_BYTES,
        record_count,
        || {
            let start = Instant::now();
            let mut cursor = log.cursor(lsn_first).expect("cursor");
            let mut count = 0u64;
            while let Some(record) = log.cursor_next(&mut cursor).expect("cursor_next") {
                black_box(record.data);
                count += 1;
            }
            let elapsed = start.elapsed();
            assert_eq!(count, record_count);
            elapsed
        },
    )
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

fn print_header(plan: &Plan) {
    let cores = std::thread::available_parallelism().map_or(0, |count| count.get());
    println!("In-memory append (MemStorage)");
    println!("machine: {}, {cores} cores available", cpu_model());
    println!(
        "mode: {}; median of {REPETITION_COUNT} repetitions after one warm-up; one thread",
        if plan.quick { "--quick" } else { "default" }
    );
    println!(
        "log: sector {SECTOR_SIZE_BYTES} B, block {} KiB, segment {} MiB, write buffer {} KiB x 4, \
         {} segments reserved",
        BLOCK_SIZE_BYTES / 1024,
        SEGMENT_SIZE_BYTES >> 20,
        WRITE_BUFFER_SIZE_BYTES / 1024,
        plan.segment_count_reserved()
    );
    println!();
}

/// Prints the table; the ratio is to the memcpy baseline of the same record size.
fn print_table(rows: &[Row]) {
    let memcpy_ns = |size: usize| {
        rows.iter()
            .find(|row| row.record_size_bytes == size && row.name.contains("memcpy"))
            .map(|row| row.ns_per_record(row.median_ns()))
    };
    println!(
        "| {:<38} | {:>9} | {:>10} | {:>8} | {:>9} | {:>17} | {:>8} | {:>7} |",
        "case", "records", "records/s", "MB/s", "ns/record", "min-max ns/rec", "x memcpy", "faults"
    );
    println!(
        "|{:-<40}|{:->11}|{:->12}|{:->10}|{:->11}|{:->19}|{:->10}|{:->9}|",
        "", "", "", "", "", "", "", ""
    );
    for row in rows {
        let ns = row.ns_per_record(row.median_ns());
        let ratio = memcpy_ns(row.record_size_bytes)
            .map_or("-".to_string(), |base| format!("{:.2}", ns / base));
        let mb_per_second = row.records_per_second() * row.record_size_bytes as f64 / 1e6;
        let spread = format!(
            "{:.1}-{:.1}",
            row.ns_per_record(row.elapsed_ns[0]),
            row.ns_per_record(*row.elapsed_ns.last().expect("samples"))
        );
        println!(
            "| {:<38} | {:>9} | {:>9.2}M | {:>8.0} | {:>9.1} | {:>17} | {:>8} | {:>7} |",
            row.name,
            row.record_count,
            row.records_per_second() / 1e6,
            mb_per_second,
            ns,
            spread,
            ratio,
            row.fault_count
        );
    }
}

/// The targets of the issue, checked against the median.
fn print_targets(rows: &[Row]) {
    let targets = [
        ("append 128 B", 2.0e6),
        ("append_batch 128 B x 64", 5.0e6),
        ("append_batch 128 B x 1024", 5.0e6),
    ];
    println!();
    for (name, target) in targets {
        let Some(row) = rows.iter().find(|row| row.name == name) else {
            continue;
        };
        let rate = row.records_per_second();
        let verdict = if rate >= target { "met" } else { "MISSED" };
        println!(
            "target {name}: >= {:.1}M records/s, measured {:.2}M: {verdict}",
            target / 1e6,
            rate / 1e6
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; the only option of our own is `--quick`.
    let quick = std::env::args()
        .skip(1)
        .any(|argument| argument == "--quick");
    let plan = Plan::new(quick);
    print_header(&plan);
    let started = Instant::now();
    let records = Records::new();
    let (small, large) = (RECORD_SIZE_SMALL_BYTES, RECORD_SIZE_LARGE_BYTES);
    let (count_small, count_large) = (plan.record_count_small, plan.record_count_large);
    let segments = plan.segment_count_reserved();

    eprintln!("measuring:");
    let mut rows = vec![
        baseline_memcpy(&records, small, count_small),
        baseline_crc32c(&records, small, count_small),
        baseline_byte_path(&records, small, count_small, segments),
    ];
    let mut log = log_open(&plan);
    rows.push(log_append(&mut log, &records, small, count_small, None));
    rows.push(log_append(&mut log, &records, small, count_small, Some(64)));
    rows.push(log_append(
        &mut log,
        &records,
        small,
        count_small,
        Some(1024),
    ));
    rows.push(baseline_memcpy(&records, large, count_large));
    rows.push(baseline_crc32c(&records, large, count_large));
    rows.push(baseline_byte_path(&records, large, count_large, segments));
    rows.push(log_append(&mut log, &records, large, count_large, None));

    // The read set: flushed 128 B records, read back by LSN and scanned by a cursor.
    log.truncate_prefix(log.next_lsn()).expect("truncate");
    let lsn_first = log.next_lsn();
    for index in 0..plan.record_count_read_set {
        log.append(records.get(index, small)).expect("append");
    }
    log.flush().expect("flush");
    log.truncate_prefix(lsn_first).expect("truncate");
    let lsn_range = (lsn_first, log.next_lsn());
    let mut buffer = vec![0u8; READ_BUFFER_SIZE_BYTES];
    rows.push(log_read_flushed(
        &mut log,
        lsn_range,
        plan.read_count_flushed_ascending,
        false,
        &mut buffer,
    ));
    rows.push(log_read_flushed(
        &mut log,
        lsn_range,
        plan.read_count_flushed_random,
        true,
        &mut buffer,
    ));
    rows.push(log_scan(&mut log, lsn_range));
    rows.push(log_read_recent(
        &mut log,
        &records,
        plan.read_count_recent,
        &mut buffer,
    ));

    print_table(&rows);
    print_targets(&rows);
    println!();
    println!(
        "MB/s counts record payload only (1 MB = 10^6 B); x memcpy is ns/record over the memcpy \
         baseline of the same record size; faults are minor page faults in the median \
         repetition. Total run time {:.1} s.",
        started.elapsed().as_secs_f64()
    );
}
