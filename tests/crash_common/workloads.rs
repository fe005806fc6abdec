//! The workloads whose traces the explorer crashes: each runs a log on `DirectStorage` with
//! the trace on, acknowledges every durable watermark it was promised, and says which record
//! it appended at every LSN.

use super::model::{Model, SECTOR_SIZE_BYTES};
use super::{record, Rng};
use crate::disk_common::ScratchDir;
use ballast_log::storage::trace::{self, Call, Event, FileId};
use ballast_log::storage::{DirectOptions, DirectStorage, Storage};
use ballast_log::{Config, Durability, Log, Lsn, SharedLog, SharedOptions};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A segment: small, so that every workload rolls several.
pub const SEGMENT_SIZE_BYTES: u64 = 64 * 1024;
/// How far fill-ahead writes zeros past the log's last write, when it is on.
pub const FILL_AHEAD_SIZE_BYTES: u32 = 16 * 1024;

/// What a workload does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Single appends, each followed by a flush; now and then an attestation.
    Single,
    /// Bulk appends that roll several segments, synced only when the window fills.
    Bulk,
    /// A `SharedLog` with producer threads waiting for durability.
    Shared,
    /// Appends, flushes and `truncate_prefix` dropping segments from the front.
    Truncate,
    /// Appends, then a drop without close and a reopen, three times over.
    Reopen,
    /// Appends and flushes, then `truncate_suffix` dropping records from the back and new
    /// records written over them, three times over.
    Suffix,
}

pub const WORKLOADS: [Workload; 6] = [
    Workload::Single,
    Workload::Bulk,
    Workload::Shared,
    Workload::Truncate,
    Workload::Reopen,
    Workload::Suffix,
];

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Single => "single",
            Workload::Bulk => "bulk",
            Workload::Shared => "shared",
            Workload::Truncate => "truncate",
            Workload::Reopen => "reopen",
            Workload::Suffix => "suffix",
        }
    }

    pub fn parse(name: &str) -> Option<Workload> {
        WORKLOADS
            .into_iter()
            .find(|workload| workload.name() == name)
    }
}

/// How `DirectStorage` runs: fill-ahead on or off, writes through io_uring or IO threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    pub fill_ahead: bool,
    pub io_uring: bool,
}

pub const VARIANTS: [Variant; 4] = [
    Variant {
        fill_ahead: true,
        io_uring: true,
    },
    Variant {
        fill_ahead: false,
        io_uring: true,
    },
    Variant {
        fill_ahead: true,
        io_uring: false,
    },
    Variant {
        fill_ahead: false,
        io_uring: false,
    },
];

impl Variant {
    pub fn name(self) -> String {
        let io = if self.io_uring { "uring" } else { "threads" };
        let fill = if self.fill_ahead { "fill" } else { "nofill" };
        format!("{io}-{fill}")
    }

    pub fn parse(name: &str) -> Option<Variant> {
        VARIANTS.into_iter().find(|variant| variant.name() == name)
    }

    pub fn options(self) -> DirectOptions {
        DirectOptions {
            io_thread_count: 2,
            read_ahead_size_bytes: 64 * 1024,
            fill_ahead_size_bytes: if self.fill_ahead {
                FILL_AHEAD_SIZE_BYTES
            } else {
                0
            },
            io_uring: self.io_uring,
            ..DirectOptions::default()
        }
    }
}

/// Small segments, blocks and buffers, so that a short trace rolls segments, spans blocks and
/// fills the window. The shared log attests by itself after a short idle time, so that its
/// traces hold attestation blocks too.
pub fn config(workload: Workload) -> Config {
    Config {
        sector_size_bytes: 4096,
        block_size_bytes: 16 * 1024,
        segment_size_bytes: SEGMENT_SIZE_BYTES,
        write_buffer_size_bytes: 16 * 1024,
        write_buffer_count: 4,
        window_size_bytes: 64 * 1024,
        record_size_bytes_max: 8 * 1024,
        segment_count_max: 64,
        read_buffer_size_bytes: 64 * 1024,
        attest_idle_ns: match workload {
            Workload::Shared => Some(2_000_000),
            _ => None,
        },
        ..Config::default()
    }
}

/// The records one open of the log appended: `keys[i]` names the record at `lsn_start + i`
/// (with `tag`, see [`record`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generation {
    /// The index of the event from which on these records may be on disk: the
    /// acknowledgement recorded when the open that began them returned.
    pub begin_event: usize,
    pub tag: u32,
    pub lsn_start: Lsn,
    pub keys: Vec<u64>,
}

impl Generation {
    pub fn key(&self, lsn: Lsn) -> Option<u64> {
        let index = lsn.checked_sub(self.lsn_start)?;
        self.keys.get(usize::try_from(index).ok()?).copied()
    }
}

/// One traced run of a workload.
pub struct Run {
    pub workload: Workload,
    pub variant: Variant,
    pub seed: u64,
    pub trace: Vec<Event>,
    pub generations: Vec<Generation>,
}

/// Runs a workload with the trace on.
pub fn run(workload: Workload, variant: Variant, seed: u64) -> Run {
    let dir = ScratchDir::new("crash-workload");
    let mut writer = Writer {
        dir,
        config: config(workload),
        options: variant.options(),
        seed,
        rng: Rng::new(seed),
        generations: Vec::new(),
        buffer: Vec::new(),
        trace: Vec::new(),
    };
    trace::start();
    match workload {
        Workload::Single => single(&mut writer),
        Workload::Bulk => bulk(&mut writer),
        Workload::Shared => shared(&mut writer),
        Workload::Truncate => truncate(&mut writer),
        Workload::Reopen => reopen(&mut writer),
        Workload::Suffix => suffix(&mut writer),
    }
    writer.trace_cut(false);
    let trace = writer.trace;
    let mut generations = writer.generations;
    generations_place(&trace, &mut generations);
    Run {
        workload,
        variant,
        seed,
        trace,
        generations,
    }
}

/// Sets each generation's first event: the first acknowledgement after the open or the suffix
/// truncation that began it.
pub fn generations_place(trace: &[Event], generations: &mut [Generation]) {
    let starts: Vec<usize> = (0..trace.len())
        .filter(|&index| {
            matches!(
                trace[index].call,
                Call::OpenDir { .. } | Call::Truncating { .. }
            )
        })
        .collect();
    assert_eq!(
        starts.len(),
        generations.len(),
        "one open or truncation per generation"
    );
    for (generation, &start) in generations.iter_mut().zip(&starts) {
        if let Call::Truncating { lsn } = trace[start].call {
            assert_eq!(
                lsn, generation.lsn_start,
                "a truncation's generation starts at its cut"
            );
        }
        generation.begin_event = (start..trace.len())
            .find(|&index| matches!(trace[index].call, Call::Acknowledged { .. }))
            .expect("every open and truncation is acknowledged");
    }
}

/// The state a workload carries: where the log lives, and what it appended.
struct Writer {
    dir: ScratchDir,
    config: Config,
    options: DirectOptions,
    seed: u64,
    rng: Rng,
    generations: Vec<Generation>,
    buffer: Vec<u8>,
    /// The trace up to the last cut.
    trace: Vec<Event>,
}

impl Writer {
    /// Takes the trace so far, with any write it missed (see [`writes_missed`]), and goes on
    /// tracing if `resume`. Only while no log is open: nothing else may write meanwhile.
    fn trace_cut(&mut self, resume: bool) {
        self.trace.extend(trace::stop());
        let mut model = Model::new();
        self.trace.iter().for_each(|event| model.apply(event));
        let missed = writes_missed(self.dir.path(), &model);
        assert!(
            missed.is_empty() || self.options.io_uring,
            "the trace missed writes without io_uring: {missed:?}"
        );
        self.trace.extend(missed);
        if resume {
            trace::start();
        }
    }

    /// Drops the records from `lsn` on and begins a generation of new records there, with a tag
    /// of its own: a record read at an LSN says which generation wrote it.
    fn truncate_suffix(&mut self, log: &mut Log<DirectStorage>, lsn: Lsn) {
        trace::truncating(lsn);
        log.truncate_suffix(lsn).expect("truncate suffix");
        assert_eq!((log.next_lsn(), log.durable_lsn()), (lsn, lsn));
        // The truncation is durable when the call returns.
        trace::acknowledged(log.durable_lsn());
        self.generations.push(Generation {
            begin_event: 0,
            tag: self.generations.len() as u32 + 1,
            lsn_start: lsn,
            keys: Vec::new(),
        });
    }

    /// Opens the log (recovering what a previous open left) and begins a generation.
    fn open(&mut self) -> Log<DirectStorage> {
        let storage = DirectStorage::open(self.dir.path(), &self.options).expect("open storage");
        let log = Log::open(self.config.clone(), storage).expect("open log");
        assert_eq!(log.durable_lsn(), log.next_lsn());
        // Every open makes what it recovered durable before it returns.
        trace::acknowledged(log.durable_lsn());
        self.generations.push(Generation {
            begin_event: 0,
            tag: self.generations.len() as u32 + 1,
            lsn_start: log.next_lsn(),
            keys: Vec::new(),
        });
        log
    }

    fn generation(&mut self) -> &mut Generation {
        self.generations.last_mut().expect("the log is open")
    }

    /// Appends the next record (its key is its LSN), acknowledging the watermark if the
    /// append advanced it (bulk appends sync when the window fills).
    fn append(&mut self, log: &mut Log<DirectStorage>) {
        let lsn = log.next_lsn();
        let tag = self.generation().tag;
        record(self.seed, tag, lsn, &mut self.buffer);
        let durable = log.durable_lsn();
        assert_eq!(log.append(&self.buffer).expect("append"), lsn);
        self.generation().keys.push(lsn);
        acknowledge_if_advanced(log, durable);
    }

    /// Appends two to four records in one batch.
    fn append_batch(&mut self, log: &mut Log<DirectStorage>) {
        let lsn = log.next_lsn();
        let tag = self.generation().tag;
        let count = 2 + self.rng.below(3);
        let records: Vec<Vec<u8>> = (0..count)
            .map(|index| {
                let mut bytes = Vec::new();
                record(self.seed, tag, lsn + index, &mut bytes);
                bytes
            })
            .collect();
        let durable = log.durable_lsn();
        assert_eq!(log.append_batch(&records).expect("append batch"), lsn);
        self.generation().keys.extend(lsn..lsn + count);
        acknowledge_if_advanced(log, durable);
    }

    /// Appends one to four records and flushes, until the log holds `segment_count` segments.
    fn fill_to(&mut self, log: &mut Log<DirectStorage>, segment_count: usize) {
        while log.segment_count() < segment_count {
            for _ in 0..1 + self.rng.below(4) {
                self.append(log);
            }
            self.flush(log);
        }
    }

    fn flush(&mut self, log: &mut Log<DirectStorage>) {
        log.flush().expect("flush");
        trace::acknowledged(log.durable_lsn());
    }
}

fn acknowledge_if_advanced(log: &Log<DirectStorage>, durable_before: Lsn) {
    if log.durable_lsn() > durable_before {
        trace::acknowledged(log.durable_lsn());
    }
}

/// Single appends (now and then a batch), each flushed; now and then an attestation block;
/// a clean close at the end.
fn single(writer: &mut Writer) {
    let mut log = writer.open();
    let count = 18 + writer.rng.below(8);
    for _ in 0..count {
        match writer.rng.below(6) {
            0 => writer.append_batch(&mut log),
            _ => writer.append(&mut log),
        }
        writer.flush(&mut log);
        if writer.rng.below(5) == 0 {
            log.attest().expect("attest");
        }
    }
    log.close().expect("close");
}

/// Bulk appends, about five segments' worth, synced only when the window fills; then a
/// flush, and a close or a drop without one.
fn bulk(writer: &mut Writer) {
    let mut log = writer.open();
    let size_bytes = 5 * SEGMENT_SIZE_BYTES;
    let mut appended_bytes = 0;
    while appended_bytes < size_bytes {
        let lsn = log.next_lsn();
        match writer.rng.below(8) {
            0 => writer.append_batch(&mut log),
            _ => writer.append(&mut log),
        }
        appended_bytes += written_bytes(writer, lsn, log.next_lsn());
    }
    writer.flush(&mut log);
    // Unflushed records after the last flush: written or not, never acknowledged.
    for _ in 0..writer.rng.below(6) {
        writer.append(&mut log);
    }
    if writer.rng.below(2) == 0 {
        log.close().expect("close");
    }
}

/// Producer threads on a `SharedLog`: appends that wait for durability, staged appends
/// waited for later, batches. Each producer acknowledges the watermark after every wait.
fn shared(writer: &mut Writer) {
    let log = writer.open();
    let options = SharedOptions {
        staging_size_bytes: 64 * 1024,
        staging_record_count_max: 256,
        ..SharedOptions::default()
    };
    let shared = SharedLog::open(log, options).expect("open shared log");
    let (seed, tag) = (writer.seed, writer.generation().tag);
    let producer_count = 3u64;
    let appended: Vec<Vec<(Lsn, u64)>> = std::thread::scope(|scope| {
        let producers: Vec<_> = (0..producer_count)
            .map(|producer| {
                let shared = &shared;
                let rng = Rng::new(super::seed_of(&[seed, producer]));
                scope.spawn(move || produce(shared, seed, tag, producer, rng))
            })
            .collect();
        producers
            .into_iter()
            .map(|producer| producer.join().expect("producer"))
            .collect()
    });
    shared.close().expect("close");
    let generation = writer.generation();
    let mut lsns: Vec<(Lsn, u64)> = appended.into_iter().flatten().collect();
    lsns.sort_unstable();
    for (index, &(lsn, key)) in lsns.iter().enumerate() {
        assert_eq!(lsn, generation.lsn_start + index as u64, "LSNs are dense");
        generation.keys.push(key);
    }
}

/// One producer: returns the LSN and key of every record it appended.
fn produce(
    shared: &SharedLog<DirectStorage>,
    seed: u64,
    tag: u32,
    producer: u64,
    mut rng: Rng,
) -> Vec<(Lsn, u64)> {
    let mut appended = Vec::new();
    let mut sequence = 0u64;
    let mut key_next = || {
        sequence += 1;
        ((producer + 1) << 32) | sequence
    };
    for _ in 0..8 {
        let keys: Vec<u64> = (0..1 + rng.below(3) * rng.below(2))
            .map(|_| key_next())
            .collect();
        let records: Vec<Vec<u8>> = keys
            .iter()
            .map(|&key| {
                let mut bytes = Vec::new();
                record(seed, tag, key, &mut bytes);
                bytes
            })
            .collect();
        let durability = match rng.below(3) {
            0 => Durability::Staged,
            _ => Durability::Wait,
        };
        let lsn = shared.append_batch(&records, durability).expect("append");
        if durability == Durability::Staged {
            shared
                .wait_durable(lsn + keys.len() as u64 - 1)
                .expect("wait");
        }
        // Read after the wait returned, so the acknowledgement follows, in the trace, the
        // sync that made the records durable; the trace's lock orders it with other threads'.
        trace::acknowledged(shared.durable_lsn());
        appended.extend(
            keys.iter()
                .enumerate()
                .map(|(index, &key)| (lsn + index as u64, key)),
        );
    }
    appended
}

/// Appends and flushes until the log holds three or four segments, then drops segments from
/// the front (one, or every one below the durable end), three times over; a close at the end.
fn truncate(writer: &mut Writer) {
    let mut log = writer.open();
    for _ in 0..3 {
        let segments_wanted = 3 + writer.rng.below(2) as usize;
        writer.fill_to(&mut log, segments_wanted);
        let lsn = match writer.rng.below(2) {
            0 => log.storage_mut().segment_list().expect("segments")[1],
            _ => log.durable_lsn(),
        };
        log.truncate_prefix(lsn).expect("truncate prefix");
        for _ in 0..writer.rng.below(3) {
            writer.append(&mut log);
        }
        writer.flush(&mut log);
    }
    log.close().expect("close");
}

/// Appends and flushes until the log holds two or three segments, then truncates its suffix:
/// within the last segment, at a segment's first record, or in an earlier segment; appends
/// after the cut, some flushed, some not. Three times over; a close or a drop at the end.
fn suffix(writer: &mut Writer) {
    let mut log = writer.open();
    for _ in 0..3 {
        let segments_wanted = 2 + writer.rng.below(2) as usize;
        writer.fill_to(&mut log, segments_wanted);
        let segments = log.storage_mut().segment_list().expect("segments");
        let (first, end) = (log.first_lsn(), log.durable_lsn());
        let lsn = match writer.rng.below(3) {
            0 => end - 1 - writer.rng.below((end - first).min(3)),
            1 => segments[segments.len() - 1].max(first),
            _ => first + writer.rng.below(end - first),
        };
        writer.truncate_suffix(&mut log, lsn);
        for _ in 0..1 + writer.rng.below(4) {
            writer.append(&mut log);
        }
        writer.flush(&mut log);
        for _ in 0..writer.rng.below(3) {
            writer.append(&mut log);
        }
    }
    if writer.rng.below(2) == 0 {
        log.close().expect("close");
    }
}

/// Three opens: each appends and flushes, appends more without a flush (enough to fill write
/// buffers, so that some of it is written and never synced), and is dropped without a close,
/// as a process that dies would be; the last one closes.
fn reopen(writer: &mut Writer) {
    for round in 0..3 {
        let mut log = writer.open();
        for _ in 0..4 + writer.rng.below(8) {
            writer.append(&mut log);
            if writer.rng.below(3) == 0 {
                writer.flush(&mut log);
            }
        }
        writer.flush(&mut log);
        let unflushed_bytes = 8 * 1024 + writer.rng.below(40 * 1024);
        let start = log.next_lsn();
        while written_bytes(writer, start, log.next_lsn()) < unflushed_bytes {
            writer.append(&mut log);
        }
        if round == 2 {
            log.close().expect("close");
        } else {
            drop(log);
            writer.trace_cut(true);
        }
    }
}

/// The bytes of the records appended from `start` to `end` in the current generation.
fn written_bytes(writer: &mut Writer, start: Lsn, end: Lsn) -> u64 {
    let tag = writer.generation().tag;
    (start..end)
        .map(|lsn| {
            record(writer.seed, tag, lsn, &mut writer.buffer);
            writer.buffer.len() as u64
        })
        .sum()
}

/// Compares the directory with the model's view of it (what the process sees), and returns
/// writes for the bytes the trace missed: io_uring writes still in flight when a storage is
/// dropped complete while the ring drains, and the trace does not record those. They are
/// placed at the end, as if they completed last (on thread 0, which no traced thread has).
/// Anything else the trace missed (a name, a size, bytes outside a segment) is a broken
/// assumption: it panics.
pub fn writes_missed(dir: &Path, model: &Model) -> Vec<Event> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list the log directory")
        .map(|entry| {
            entry
                .expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into()
        })
        .collect();
    names.sort();
    let modelled: Vec<String> = model.names_current.keys().cloned().collect();
    assert_eq!(names, modelled, "the trace missed a change of names");
    let mut missed = Vec::new();
    for (name, &object) in &model.names_current {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).expect("read a file of the log");
        let current = &model.objects[object].current;
        assert_eq!(
            bytes.len(),
            current.len(),
            "the trace missed a size of {name}"
        );
        if bytes == *current {
            continue;
        }
        // Only the log's own writes go through the ring.
        assert!(
            ballast_log::storage::segment_file_parse(name.as_bytes()).is_some(),
            "the trace missed a write to {name}"
        );
        let metadata = std::fs::metadata(&path).expect("stat a file of the log");
        let file = FileId {
            dev: metadata.dev(),
            ino: metadata.ino(),
        };
        missed.extend(
            sector_runs_differing(current, &bytes)
                .into_iter()
                .map(|range| Event {
                    thread: 0,
                    call: Call::Write {
                        file,
                        offset_bytes: range.start as u64,
                        bytes: bytes[range].to_vec(),
                    },
                    result: Ok(()),
                }),
        );
    }
    missed
}

/// The runs of 512-byte sectors where two images of one size differ.
fn sector_runs_differing(old: &[u8], new: &[u8]) -> Vec<std::ops::Range<usize>> {
    let sector = SECTOR_SIZE_BYTES as usize;
    let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
    for start in (0..new.len()).step_by(sector) {
        let end = (start + sector).min(new.len());
        if old[start..end] == new[start..end] {
            continue;
        }
        match runs.last_mut() {
            Some(run) if run.end == start => run.end = end,
            _ => runs.push(start..end),
        }
    }
    runs
}
