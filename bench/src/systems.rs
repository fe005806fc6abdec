//! The systems under comparison, each behind the same three workloads: bulk append, durable
//! appends from N producers, and reads (sequential scan, random reads cold and warm).
//!
//! Every function runs inside a child process (one system, one workload, one repetition), so
//! that its peak RSS is its own.

use ballast_log::storage::{AlignedBuffer, DirectOptions, DirectStorage, IoMode};
use ballast_log::{Config, Durability, Log, SharedLog, SharedOptions};
use hdrhistogram::Histogram;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub type Res<T> = Result<T, String>;

const MIB: usize = 1 << 20;
const ALIGNMENT_BYTES: usize = 4096;
const POOL_SIZE_BYTES: usize = 2 << 20;

/// Bulk append or durable appends: elapsed time and, where meaningful, per-operation latency.
pub struct WriteResult {
    pub records: u64,
    pub bytes: u64,
    pub ns: u64,
    pub latency: Option<Histogram<u64>>,
}

/// The read workload: a scan of everything written, then random reads by LSN, cold and warm.
pub struct ReadResult {
    pub scan_records: u64,
    pub scan_bytes: u64,
    pub scan_ns: u64,
    pub cold: Histogram<u64>,
    pub cold_ns: u64,
    pub warm: Histogram<u64>,
    pub warm_ns: u64,
}

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(100, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Pseudo-random, incompressible bytes that records are sliced from.
pub fn pool() -> Vec<u8> {
    let mut state: u64 = 0x0BA1_1A57;
    let mut pool = Vec::with_capacity(POOL_SIZE_BYTES);
    while pool.len() < POOL_SIZE_BYTES {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        pool.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    pool
}

fn record(pool: &[u8], index: u64, size: usize) -> &[u8] {
    let at = (index as usize).wrapping_mul(61) % (pool.len() - size);
    &pool[at..at + size]
}

/// The LSNs of the random reads: the same sequence for every system, cold then warm.
fn random_lsns(count: u64, reads: u64) -> Vec<u64> {
    let mut state: u64 = 0x5EED_1234_ABCD_0001;
    (0..reads)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % count
        })
        .collect()
}

/// The random reads of a read workload, timed twice over the same LSNs: cold, then warm at
/// once. `read` reads record `lsn` and checks its size.
fn random_passes(
    (scan_records, scan_bytes, scan_ns): (u64, u64, u64),
    lsns: &[u64],
    mut read: impl FnMut(u64) -> Res<()>,
) -> Res<ReadResult> {
    let mut pass = || -> Res<(Histogram<u64>, u64)> {
        let mut latency = histogram();
        let start = Instant::now();
        for &lsn in lsns {
            let t = Instant::now();
            read(lsn)?;
            latency.saturating_record(t.elapsed().as_nanos() as u64);
        }
        Ok((latency, start.elapsed().as_nanos() as u64))
    };
    let (cold, cold_ns) = pass()?;
    let (warm, warm_ns) = pass()?;
    Ok(ReadResult {
        scan_records,
        scan_bytes,
        scan_ns,
        cold,
        cold_ns,
        warm,
        warm_ns,
    })
}

fn err(context: &str) -> impl Fn(String) -> String + '_ {
    move |error| format!("{context}: {error}")
}

fn io<E: std::fmt::Display>(context: &str) -> impl Fn(E) -> String + '_ {
    move |error| format!("{context}: {error}")
}

/// Drops the page cache of every file under `dir` (`posix_fadvise(POSIX_FADV_DONTNEED)`, after
/// an `fdatasync` so that no page is dirty).
pub fn drop_cache(dir: &Path) -> Res<()> {
    for entry in std::fs::read_dir(dir).map_err(io("read_dir"))? {
        let path = entry.map_err(io("read_dir"))?.path();
        if path.is_dir() {
            drop_cache(&path)?;
            continue;
        }
        let Ok(file) = File::open(&path) else {
            continue;
        };
        let _ = file.sync_data();
        // SAFETY: plain system call on an open descriptor.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Ceilings: raw O_DIRECT.

fn raw_file(path: &Path, size_bytes: u64) -> Res<File> {
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
        return Err(format!("fallocate: {}", std::io::Error::last_os_error()));
    }
    Ok(file)
}

/// Sequential `O_DIRECT` writes of `bytes` in 1 MiB buffers, `depth` in flight (one thread
/// each), then one `fdatasync`; timed from `open` to the end of the sync.
pub fn ceiling_bulk(dir: &Path, bytes: u64, depth: u64, pool: &[u8]) -> Res<WriteResult> {
    let buffers: Vec<AlignedBuffer> = (0..depth)
        .map(|lane| {
            let mut buffer = AlignedBuffer::new(MIB, ALIGNMENT_BYTES);
            let at = lane as usize * 4096;
            buffer.copy_from_slice(&pool[at..at + MIB]);
            buffer
        })
        .collect();
    let size = bytes.next_multiple_of(MIB as u64);
    let chunks = size / MIB as u64;
    let start = Instant::now();
    let file = raw_file(&dir.join("raw"), size)?;
    std::thread::scope(|scope| {
        let writers: Vec<_> = buffers
            .iter()
            .enumerate()
            .map(|(lane, buffer)| {
                let file = &file;
                scope.spawn(move || -> Res<()> {
                    let mut chunk = lane as u64;
                    while chunk < chunks {
                        file.write_all_at(buffer, chunk * MIB as u64)
                            .map_err(io("raw write"))?;
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
    file.sync_data().map_err(io("fdatasync"))?;
    Ok(WriteResult {
        records: 0,
        bytes: size,
        ns: start.elapsed().as_nanos() as u64,
        latency: None,
    })
}

/// A 4 KiB `O_DIRECT` `pwrite` at the next offset of a preallocated file, then `fdatasync`,
/// `ops` times from one thread.
pub fn ceiling_durable(dir: &Path, ops: u64, pool: &[u8]) -> Res<WriteResult> {
    let file = raw_file(&dir.join("raw"), ops * 4096)?;
    let mut buffer = AlignedBuffer::new(4096, ALIGNMENT_BYTES);
    buffer.copy_from_slice(&pool[..4096]);
    let mut latency = histogram();
    let start = Instant::now();
    for op in 0..ops {
        let t = Instant::now();
        file.write_all_at(&buffer, op * 4096)
            .map_err(io("raw write"))?;
        file.sync_data().map_err(io("fdatasync"))?;
        latency.saturating_record(t.elapsed().as_nanos() as u64);
    }
    Ok(WriteResult {
        records: ops,
        bytes: ops * 4096,
        ns: start.elapsed().as_nanos() as u64,
        latency: Some(latency),
    })
}

/// Writes `bytes` raw (untimed), then reads them back sequentially in 1 MiB `O_DIRECT` reads,
/// then does 4 KiB `O_DIRECT` reads at the offsets of the random LSNs (1 KiB records).
pub fn ceiling_read(
    dir: &Path,
    bytes: u64,
    record_size: usize,
    reads: u64,
    pool: &[u8],
) -> Res<ReadResult> {
    ceiling_bulk(dir, bytes, 4, pool)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(dir.join("raw"))
        .map_err(io("open raw"))?;
    let size = bytes.next_multiple_of(MIB as u64);
    let mut buffer = AlignedBuffer::new(MIB, ALIGNMENT_BYTES);
    let start = Instant::now();
    let mut offset = 0;
    while offset < size {
        file.read_exact_at(&mut buffer, offset)
            .map_err(io("raw read"))?;
        offset += MIB as u64;
    }
    let scan_ns = start.elapsed().as_nanos() as u64;
    let count = bytes / record_size as u64;
    let lsns = random_lsns(count, reads);
    let mut small = AlignedBuffer::new(4096, ALIGNMENT_BYTES);
    random_passes((count, size, scan_ns), &lsns, |lsn| {
        let at = (lsn * record_size as u64) / 4096 * 4096;
        file.read_exact_at(&mut small, at).map_err(io("raw read"))?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// Naive: an O_APPEND file, one write() per record (a 4 B length, then the payload).

struct Naive {
    file: File,
    frame: Vec<u8>,
}

impl Naive {
    fn open(dir: &Path) -> Res<Naive> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(dir.join("naive.log"))
            .map_err(io("open naive"))?;
        Ok(Naive {
            file,
            frame: Vec::with_capacity(MIB + 4),
        })
    }

    fn append(&mut self, record: &[u8]) -> Res<()> {
        self.frame.clear();
        self.frame
            .extend_from_slice(&(record.len() as u32).to_le_bytes());
        self.frame.extend_from_slice(record);
        (&self.file).write_all(&self.frame).map_err(io("write"))
    }
}

pub fn naive_bulk(dir: &Path, bytes: u64, record_size: usize, pool: &[u8]) -> Res<WriteResult> {
    let count = bytes / record_size as u64;
    let start = Instant::now();
    let mut naive = Naive::open(dir)?;
    for index in 0..count {
        naive.append(record(pool, index, record_size))?;
    }
    naive.file.sync_data().map_err(io("fdatasync"))?;
    Ok(WriteResult {
        records: count,
        bytes: count * record_size as u64,
        ns: start.elapsed().as_nanos() as u64,
        latency: None,
    })
}

/// `producers` threads share one `O_APPEND` descriptor; each does write() + fdatasync().
pub fn naive_durable(
    dir: &Path,
    producers: u64,
    ops: u64,
    record_size: usize,
    pool: &[u8],
) -> Res<WriteResult> {
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.join("naive.log"))
        .map_err(io("open naive"))?;
    producers_run(producers, ops, record_size, pool, |_, _, data, frame| {
        frame.clear();
        frame.extend_from_slice(&(data.len() as u32).to_le_bytes());
        frame.extend_from_slice(data);
        let mut handle = &file;
        handle.write_all(frame).map_err(io("write"))?;
        file.sync_data().map_err(io("fdatasync"))
    })
}

/// Runs `producers` threads at once, producer `p` appending its `ops` records with
/// `append(p, op, record, scratch)` and timing each call; returns their combined result.
fn producers_run(
    producers: u64,
    ops: u64,
    record_size: usize,
    pool: &[u8],
    append: impl Fn(u64, u64, &[u8], &mut Vec<u8>) -> Res<()> + Sync,
) -> Res<WriteResult> {
    let start = Instant::now();
    let histograms = std::thread::scope(|scope| {
        let append = &append;
        let threads: Vec<_> = (0..producers)
            .map(|producer| {
                scope.spawn(move || -> Res<Histogram<u64>> {
                    let mut latency = histogram();
                    let mut scratch = Vec::with_capacity(record_size + 4);
                    for op in 0..ops {
                        let data = record(pool, producer * ops + op, record_size);
                        let t = Instant::now();
                        append(producer, op, data, &mut scratch)?;
                        latency.saturating_record(t.elapsed().as_nanos() as u64);
                    }
                    Ok(latency)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| thread.join().expect("producer"))
            .collect::<Res<Vec<_>>>()
    })?;
    durable_result(start, histograms, producers * ops, record_size)
}

fn durable_result(
    start: Instant,
    histograms: Vec<Histogram<u64>>,
    records: u64,
    record_size: usize,
) -> Res<WriteResult> {
    let ns = start.elapsed().as_nanos() as u64;
    let mut latency = histogram();
    for h in &histograms {
        latency.add(h).map_err(io("histogram"))?;
    }
    Ok(WriteResult {
        records,
        bytes: records * record_size as u64,
        ns,
        latency: Some(latency),
    })
}

pub fn naive_read(
    dir: &Path,
    bytes: u64,
    record_size: usize,
    reads: u64,
    pool: &[u8],
) -> Res<ReadResult> {
    naive_bulk(dir, bytes, record_size, pool)?;
    let count = bytes / record_size as u64;
    // The index a naive log would keep in memory: the offset of every record.
    let offsets: Vec<u64> = (0..count).map(|i| i * (record_size as u64 + 4)).collect();
    drop_cache(dir)?;
    let path = dir.join("naive.log");
    let start = Instant::now();
    let file = File::open(&path).map_err(io("open naive"))?;
    let mut reader = std::io::BufReader::with_capacity(MIB, file);
    let mut payload = vec![0u8; MIB];
    let (mut records, mut scanned) = (0u64, 0u64);
    loop {
        let mut header = [0u8; 4];
        match reader.read_exact(&mut header) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(error) => return Err(format!("scan: {error}")),
        }
        let size = u32::from_le_bytes(header) as usize;
        reader
            .read_exact(&mut payload[..size])
            .map_err(io("scan"))?;
        records += 1;
        scanned += size as u64;
    }
    let scan_ns = start.elapsed().as_nanos() as u64;
    drop_cache(dir)?;
    let file = File::open(&path).map_err(io("open naive"))?;
    let lsns = random_lsns(count, reads);
    let mut frame = vec![0u8; record_size + 4];
    random_passes((records, scanned, scan_ns), &lsns, |lsn| {
        file.read_exact_at(&mut frame, offsets[lsn as usize])
            .map_err(io("pread"))?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// Ballast through DirectStorage.

pub fn ballast_config() -> Config {
    Config::default()
}

fn ballast_open(dir: &Path) -> Res<Log<DirectStorage>> {
    let config = ballast_config();
    let options = DirectOptions {
        read_ahead_size_bytes: config.read_buffer_size_bytes,
        ..DirectOptions::default()
    };
    let storage = DirectStorage::open(dir, &options)
        .map_err(|error| format!("DirectStorage::open: {error}"))?;
    if storage.io_mode() != IoMode::Direct {
        return Err("DirectStorage is not in O_DIRECT mode".into());
    }
    Log::open(config, storage).map_err(|error| format!("Log::open: {error}"))
}

pub fn ballast_bulk(dir: &Path, bytes: u64, record_size: usize, pool: &[u8]) -> Res<WriteResult> {
    let count = bytes / record_size as u64;
    let start = Instant::now();
    let mut log = ballast_open(dir)?;
    for index in 0..count {
        log.append(record(pool, index, record_size))
            .map_err(|error| error.to_string())
            .map_err(err("append"))?;
    }
    log.flush()
        .map_err(|error| error.to_string())
        .map_err(err("flush"))?;
    let ns = start.elapsed().as_nanos() as u64;
    log.close().map_err(|error| error.to_string())?;
    Ok(WriteResult {
        records: count,
        bytes: count * record_size as u64,
        ns,
        latency: None,
    })
}

/// One producer: `Log::append` + `Log::flush` per record. More: a `SharedLog`, each producer
/// appending with `Durability::Wait` (group commit).
pub fn ballast_durable(
    dir: &Path,
    producers: u64,
    ops: u64,
    record_size: usize,
    pool: &[u8],
) -> Res<WriteResult> {
    let mut log = ballast_open(dir)?;
    if producers == 1 {
        let mut latency = histogram();
        let start = Instant::now();
        for op in 0..ops {
            let t = Instant::now();
            log.append(record(pool, op, record_size))
                .map_err(|error| error.to_string())?;
            log.flush().map_err(|error| error.to_string())?;
            latency.saturating_record(t.elapsed().as_nanos() as u64);
        }
        let result = durable_result(start, vec![latency], ops, record_size);
        log.close().map_err(|error| error.to_string())?;
        return result;
    }
    let shared = SharedLog::open(log, SharedOptions::default()).map_err(|e| e.to_string())?;
    let result = producers_run(producers, ops, record_size, pool, |_, _, data, _| {
        shared
            .append(data, Durability::Wait)
            .map(drop)
            .map_err(|error| error.to_string())
    });
    shared.close().map_err(|error| error.to_string())?;
    result
}

pub fn ballast_read(
    dir: &Path,
    bytes: u64,
    record_size: usize,
    reads: u64,
    pool: &[u8],
) -> Res<ReadResult> {
    ballast_bulk(dir, bytes, record_size, pool)?;
    let count = bytes / record_size as u64;
    // Reopen: the read buffer is empty, and O_DIRECT bypasses the page cache.
    let mut log = ballast_open(dir)?;
    let start = Instant::now();
    let mut cursor = log.cursor(log.first_lsn()).map_err(|e| e.to_string())?;
    let (mut records, mut scanned) = (0u64, 0u64);
    while let Some(entry) = log.cursor_next(&mut cursor).map_err(|e| e.to_string())? {
        records += 1;
        scanned += entry.data.len() as u64;
    }
    let scan_ns = start.elapsed().as_nanos() as u64;
    let lsns = random_lsns(count, reads);
    let mut buffer = vec![0u8; record_size];
    let result = random_passes((records, scanned, scan_ns), &lsns, |lsn| {
        let size = log.read(lsn, &mut buffer).map_err(|e| e.to_string())?;
        if size != record_size {
            return Err(format!("read {lsn}: {size} bytes"));
        }
        Ok(())
    })?;
    log.close().map_err(|error| error.to_string())?;
    Ok(result)
}

/// The tail workload: the producers' result, and the readers' records and time.
pub struct TailResult {
    pub producers: WriteResult,
    /// Records every reader yielded, summed over readers.
    pub reader_records: u64,
    /// From the producers' start until the last reader had read the last record.
    pub reader_ns: u64,
}

/// A hash of a record, summed (wrapping) over a set of records: equal sums for the records
/// the producers appended and the records a reader yielded mean the same records, whatever
/// the order the producers' appends interleaved in.
fn record_hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// `producers` append `ops` records each with `Durability::Wait` (group commit) while
/// `readers` `TailReader`s follow the log, each from `reader_lsn`, after `behind_bytes` of
/// records were appended before the producers started (a replica catching up). Every reader
/// must yield every record once, in LSN order, the same records the producers appended.
pub fn ballast_tail(
    dir: &Path,
    (producers, ops, record_size): (u64, u64, usize),
    readers: u64,
    behind_bytes: u64,
    pool: &[u8],
) -> Res<TailResult> {
    let mut log = ballast_open(dir)?;
    let behind = behind_bytes / record_size as u64;
    let mut expected_hash = 0u64;
    for index in 0..behind {
        let data = record(pool, u64::MAX - index, record_size);
        expected_hash = expected_hash.wrapping_add(record_hash(data));
        log.append(data).map_err(|error| error.to_string())?;
    }
    log.flush().map_err(|error| error.to_string())?;
    for index in 0..producers * ops {
        expected_hash = expected_hash.wrapping_add(record_hash(record(pool, index, record_size)));
    }
    let total = behind + producers * ops;
    let shared = SharedLog::open(log, SharedOptions::default()).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let (producers_result, reader_ns) = std::thread::scope(|scope| -> Res<(WriteResult, u64)> {
        let threads: Vec<_> = (0..readers)
            .map(|_| {
                let shared = &shared;
                scope.spawn(move || -> Res<u64> {
                    let mut reader = shared.reader(0).map_err(|e| e.to_string())?;
                    let mut buffer = vec![0u8; record_size];
                    let mut hash = 0u64;
                    for lsn in 0..total {
                        // No timeout: the producers' appends end every wait, and if they fail
                        // the log is shut down, which ends it too.
                        let found = reader
                            .next_wait(&mut buffer, None)
                            .map_err(|e| e.to_string())?;
                        match found {
                            Some((found, size)) if found == lsn && size == record_size => {
                                hash = hash.wrapping_add(record_hash(&buffer[..size]));
                            }
                            other => return Err(format!("reader at {lsn}: {other:?}")),
                        }
                    }
                    if hash != expected_hash {
                        return Err("a reader yielded other records than were appended".into());
                    }
                    Ok(start.elapsed().as_nanos() as u64)
                })
            })
            .collect();
        let produced = producers_run(producers, ops, record_size, pool, |_, _, data, _| {
            shared
                .append(data, Durability::Wait)
                .map(drop)
                .map_err(|error| error.to_string())
        });
        if produced.is_err() {
            let _ = shared.shutdown();
        }
        let mut reader_ns = 0;
        for thread in threads {
            reader_ns = reader_ns.max(thread.join().expect("reader")?);
        }
        Ok((produced?, reader_ns))
    })?;
    shared.close().map_err(|error| error.to_string())?;
    Ok(TailResult {
        producers: producers_result,
        reader_records: readers * total,
        reader_ns,
    })
}

// ---------------------------------------------------------------------------------------
// okaywal: entries of chunks; `EntryWriter::commit` writes the entry's end marker, flushes
// its 16 KiB buffer and calls `File::sync_data` (fdatasync), shared by concurrent committers.

#[derive(Debug, Default)]
struct Counting {
    records: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl okaywal::LogManager for Counting {
    fn recover(&mut self, entry: &mut okaywal::Entry<'_>) -> std::io::Result<()> {
        loop {
            match entry.read_chunk()? {
                okaywal::ReadChunkResult::Chunk(mut chunk) => {
                    let data = chunk.read_all()?;
                    if !chunk.check_crc()? {
                        return Err(std::io::Error::other("okaywal chunk crc"));
                    }
                    self.records.fetch_add(1, Ordering::Relaxed);
                    self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                okaywal::ReadChunkResult::EndOfEntry | okaywal::ReadChunkResult::AbortedEntry => {
                    return Ok(())
                }
            }
        }
    }

    fn checkpoint_to(
        &mut self,
        _last_checkpointed_id: okaywal::EntryId,
        _checkpointed_entries: &mut okaywal::SegmentReader,
        _wal: &okaywal::WriteAheadLog,
    ) -> std::io::Result<()> {
        Ok(())
    }
}

fn okaywal_open(dir: &Path, manager: Counting) -> Res<okaywal::WriteAheadLog> {
    // No checkpoint during the run, so everything written stays readable; 64 MiB files.
    okaywal::Configuration::default_for(dir)
        .preallocate_bytes(64 << 20)
        .checkpoint_after_bytes(u64::MAX / 2)
        .open(manager)
        .map_err(io("okaywal open"))
}

/// One entry holding every record as a chunk, committed (and synced) once.
fn okaywal_bulk_positions(
    dir: &Path,
    bytes: u64,
    record_size: usize,
    pool: &[u8],
    positions: Option<&mut Vec<okaywal::LogPosition>>,
) -> Res<WriteResult> {
    let count = bytes / record_size as u64;
    let start = Instant::now();
    let wal = okaywal_open(dir, Counting::default())?;
    let mut entry = wal.begin_entry().map_err(io("begin_entry"))?;
    let mut positions = positions;
    for index in 0..count {
        let chunk = entry
            .write_chunk(record(pool, index, record_size))
            .map_err(io("write_chunk"))?;
        if let Some(positions) = positions.as_deref_mut() {
            positions.push(chunk.position);
        }
    }
    entry.commit().map_err(io("commit"))?;
    let ns = start.elapsed().as_nanos() as u64;
    wal.shutdown().map_err(io("shutdown"))?;
    Ok(WriteResult {
        records: count,
        bytes: count * record_size as u64,
        ns,
        latency: None,
    })
}

pub fn okaywal_bulk(dir: &Path, bytes: u64, record_size: usize, pool: &[u8]) -> Res<WriteResult> {
    okaywal_bulk_positions(dir, bytes, record_size, pool, None)
}

/// Each record is one entry with one chunk, committed (synced) before the next.
pub fn okaywal_durable(
    dir: &Path,
    producers: u64,
    ops: u64,
    record_size: usize,
    pool: &[u8],
) -> Res<WriteResult> {
    let wal = okaywal_open(dir, Counting::default())?;
    let result = producers_run(producers, ops, record_size, pool, |_, _, data, _| {
        let mut entry = wal.begin_entry().map_err(io("begin_entry"))?;
        entry.write_chunk(data).map_err(io("write_chunk"))?;
        entry.commit().map_err(io("commit")).map(drop)
    });
    wal.shutdown().map_err(io("shutdown"))?;
    result
}

/// The scan is okaywal's recovery (its only way to iterate), timed from open.
pub fn okaywal_read(
    dir: &Path,
    bytes: u64,
    record_size: usize,
    reads: u64,
    pool: &[u8],
) -> Res<ReadResult> {
    let mut positions = Vec::new();
    okaywal_bulk_positions(dir, bytes, record_size, pool, Some(&mut positions))?;
    drop_cache(dir)?;
    let counting = Counting::default();
    let (records, scanned) = (Arc::clone(&counting.records), Arc::clone(&counting.bytes));
    let start = Instant::now();
    let wal = okaywal_open(dir, counting)?;
    let scan_ns = start.elapsed().as_nanos() as u64;
    drop_cache(dir)?;
    let lsns = random_lsns(positions.len() as u64, reads);
    let mut buffer = Vec::with_capacity(record_size);
    let result = random_passes(
        (
            records.load(Ordering::Relaxed),
            scanned.load(Ordering::Relaxed),
            scan_ns,
        ),
        &lsns,
        |lsn| {
            let mut reader = wal
                .read_at(positions[lsn as usize])
                .map_err(io("read_at"))?;
            buffer.clear();
            reader.read_to_end(&mut buffer).map_err(io("read"))?;
            if buffer.len() != record_size {
                return Err(format!("okaywal read {lsn}: {} bytes", buffer.len()));
            }
            Ok(())
        },
    )?;
    wal.shutdown().map_err(io("shutdown"))?;
    Ok(result)
}

// ---------------------------------------------------------------------------------------
// raft-engine: entries are protobuf messages in a `LogBatch`; `Engine::write(batch, true)`
// writes the batch (buffered `pwrite`) and calls `fdatasync` on the active file, with
// concurrent writers grouped behind one leader.

mod entry {
    use protobuf::{CodedInputStream, CodedOutputStream, Message, ProtobufResult, UnknownFields};
    use std::any::Any;

    /// A Raft-like entry: field 1 the index (varint), field 2 the payload (bytes).
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct Entry {
        pub index: u64,
        pub data: Vec<u8>,
        unknown: UnknownFields,
        cached: protobuf::CachedSize,
    }

    impl Entry {
        pub fn with(index: u64, data: &[u8]) -> Entry {
            Entry {
                index,
                data: data.to_vec(),
                ..Entry::default()
            }
        }
    }

    impl Message for Entry {
        fn descriptor(&self) -> &'static protobuf::reflect::MessageDescriptor {
            unimplemented!("no reflection for the benchmark's entry")
        }
        fn is_initialized(&self) -> bool {
            true
        }
        fn merge_from(&mut self, is: &mut CodedInputStream) -> ProtobufResult<()> {
            while !is.eof()? {
                let (field, wire) = is.read_tag_unpack()?;
                match field {
                    1 => self.index = is.read_uint64()?,
                    2 => is.read_bytes_into(&mut self.data)?,
                    _ => protobuf::rt::read_unknown_or_skip_group(
                        field,
                        wire,
                        is,
                        &mut self.unknown,
                    )?,
                }
            }
            Ok(())
        }
        fn write_to_with_cached_sizes(&self, os: &mut CodedOutputStream) -> ProtobufResult<()> {
            os.write_uint64(1, self.index)?;
            os.write_bytes(2, &self.data)?;
            Ok(())
        }
        fn compute_size(&self) -> u32 {
            let size =
                protobuf::rt::value_size(1, self.index, protobuf::wire_format::WireTypeVarint)
                    + protobuf::rt::bytes_size(2, &self.data);
            self.cached.set(size);
            size
        }
        fn get_cached_size(&self) -> u32 {
            self.cached.get()
        }
        fn get_unknown_fields(&self) -> &UnknownFields {
            &self.unknown
        }
        fn mut_unknown_fields(&mut self) -> &mut UnknownFields {
            &mut self.unknown
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
        fn as_any_mut(&mut self) -> &mut dyn Any {
            self
        }
        fn into_any(self: Box<Self>) -> Box<dyn Any> {
            self
        }
        fn new() -> Entry {
            Entry::default()
        }
        fn default_instance() -> &'static Entry {
            static INSTANCE: std::sync::OnceLock<Entry> = std::sync::OnceLock::new();
            INSTANCE.get_or_init(Entry::default)
        }
    }

    impl protobuf::Clear for Entry {
        fn clear(&mut self) {
            self.index = 0;
            self.data.clear();
        }
    }

    pub struct Ext;

    impl raft_engine::MessageExt for Ext {
        type Entry = Entry;
        fn index(entry: &Entry) -> u64 {
            entry.index
        }
    }
}

fn raft_open(dir: &Path) -> Res<raft_engine::Engine> {
    let config = raft_engine::Config {
        dir: dir.join("raft").to_string_lossy().into_owned(),
        // No LZ4: every system writes the same bytes (the records are incompressible).
        batch_compression_threshold: raft_engine::ReadableSize(0),
        ..raft_engine::Config::default()
    };
    raft_engine::Engine::open(config).map_err(io("raft-engine open"))
}

const RAFT_BATCH_BYTES: usize = MIB;

/// Records go into `LogBatch`es of about 1 MiB (raft-engine's unit of write), each written
/// without sync; one `Engine::sync` at the end.
pub fn raft_bulk(dir: &Path, bytes: u64, record_size: usize, pool: &[u8]) -> Res<WriteResult> {
    let count = bytes / record_size as u64;
    let per_batch = (RAFT_BATCH_BYTES / record_size).max(1) as u64;
    let start = Instant::now();
    let engine = raft_open(dir)?;
    let mut index = 0;
    let mut entries = Vec::with_capacity(per_batch as usize);
    while index < count {
        entries.clear();
        let end = (index + per_batch).min(count);
        for i in index..end {
            entries.push(entry::Entry::with(i + 1, record(pool, i, record_size)));
        }
        let mut batch = raft_engine::LogBatch::default();
        batch
            .add_entries::<entry::Ext>(1, &entries)
            .map_err(io("add_entries"))?;
        engine.write(&mut batch, false).map_err(io("write"))?;
        index = end;
    }
    engine.sync().map_err(io("sync"))?;
    let ns = start.elapsed().as_nanos() as u64;
    drop(engine);
    Ok(WriteResult {
        records: count,
        bytes: count * record_size as u64,
        ns,
        latency: None,
    })
}

/// One `LogBatch` of one entry per record, `Engine::write(batch, sync = true)`; each producer
/// is its own Raft group (region), as in TiKV.
pub fn raft_durable(
    dir: &Path,
    producers: u64,
    ops: u64,
    record_size: usize,
    pool: &[u8],
) -> Res<WriteResult> {
    let engine = raft_open(dir)?;
    producers_run(
        producers,
        ops,
        record_size,
        pool,
        |producer, op, data, _| {
            let entries = [entry::Entry::with(op + 1, data)];
            let mut batch = raft_engine::LogBatch::default();
            batch
                .add_entries::<entry::Ext>(producer + 1, &entries)
                .map_err(io("add_entries"))?;
            engine
                .write(&mut batch, true)
                .map_err(io("write"))
                .map(drop)
        },
    )
}

pub fn raft_read(
    dir: &Path,
    bytes: u64,
    record_size: usize,
    reads: u64,
    pool: &[u8],
) -> Res<ReadResult> {
    raft_bulk(dir, bytes, record_size, pool)?;
    let count = bytes / record_size as u64;
    // Reopen (recovery rebuilds the in-memory index, untimed), then drop the page cache.
    let engine = raft_open(dir)?;
    drop_cache(dir)?;
    let start = Instant::now();
    let (mut records, mut scanned) = (0u64, 0u64);
    let mut entries = Vec::with_capacity(1024);
    let mut index = 1;
    while index <= count {
        entries.clear();
        let end = (index + 1024).min(count + 1);
        engine
            .fetch_entries_to::<entry::Ext>(1, index, end, None, &mut entries)
            .map_err(io("fetch_entries_to"))?;
        for entry in &entries {
            records += 1;
            scanned += entry.data.len() as u64;
        }
        index = end;
    }
    let scan_ns = start.elapsed().as_nanos() as u64;
    drop_cache(dir)?;
    let lsns = random_lsns(count, reads);
    random_passes((records, scanned, scan_ns), &lsns, |lsn| {
        let entry = engine
            .get_entry::<entry::Ext>(1, lsn + 1)
            .map_err(io("get_entry"))?
            .ok_or_else(|| format!("raft-engine: no entry {}", lsn + 1))?;
        if entry.data.len() != record_size {
            return Err(format!(
                "raft-engine read {lsn}: {} bytes",
                entry.data.len()
            ));
        }
        Ok(())
    })
}
