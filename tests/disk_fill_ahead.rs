//! `DirectStorage`'s fill-ahead writes zeros only where the log has not written: a writer that
//! syncs often and sometimes overtakes the filler with large bursts, with writes left in
//! flight, segments rolled and made again, is checked byte for byte against a model of the
//! files. Then through a `Log`: small syncs make the filler run and every record survives a
//! reopen; bulk appends with one sync make it write nothing.
#![cfg(target_os = "linux")]

mod disk_common;
mod wait_common;

use ballast_log::storage::{
    AlignedBuffer, CompletionKind, DirectOptions, DirectStorage, SegmentId, Storage,
};
use ballast_log::{Config, Log};
use disk_common::{Rng, ScratchDir};
use std::time::Duration;

const SEGMENT_SIZE_BYTES: usize = 2 * 1024 * 1024;
const BURST_SIZE_BYTES: usize = 128 * 1024;
/// Small, so that the filler's chunks sit where the writer goes next; some not a multiple of
/// the alignment.
const FILL_AHEAD_SIZES_BYTES: [u32; 3] = [64 * 1024, 5000, 4096];

/// A writer that appends like the log: each write starts where the last one ended, or one
/// sector earlier (the log writes its last, partly filled sector again).
struct World {
    storage: DirectStorage,
    /// The unit of writes: the storage's sector.
    sector: usize,
    segment: SegmentId,
    /// What the current segment must hold.
    model: Vec<u8>,
    /// Where the next write starts.
    frontier_bytes: usize,
    inflight: usize,
    buffers: Vec<AlignedBuffer>,
    token: u64,
}

impl World {
    fn complete_all(&mut self) {
        while let Some(completion) = self.storage.poll(true) {
            completion.result.expect("write or sync");
            if let CompletionKind::Write { buffer } = completion.kind {
                self.buffers.push(buffer);
            }
        }
        self.inflight = 0;
    }

    fn write(&mut self, rng: &mut Rng, size_bytes: usize) {
        let back = if self.frontier_bytes >= self.sector && rng.below(3) == 0 {
            self.sector
        } else {
            0
        };
        let offset = self.frontier_bytes - back;
        let size_bytes = size_bytes.min(SEGMENT_SIZE_BYTES - offset);
        if size_bytes == 0 {
            return;
        }
        // Writes in flight never overlap, as the log's do not.
        if back > 0 || self.buffers.is_empty() {
            self.complete_all();
        }
        let mut buffer = self.buffers.pop().expect("a free buffer");
        let fill = rng.next() | 1;
        // Never zero, and each sector stamped with where it goes (cheap in unoptimized builds).
        buffer[..size_bytes].fill(fill as u8 | 1);
        for (index, sector) in buffer[..size_bytes]
            .chunks_exact_mut(self.sector)
            .enumerate()
        {
            let stamp = fill ^ (offset + index * self.sector) as u64;
            sector[..8].copy_from_slice(&stamp.to_le_bytes());
        }
        self.model[offset..offset + size_bytes].copy_from_slice(&buffer[..size_bytes]);
        self.token += 1;
        self.storage
            .write_submit(self.token, self.segment, offset as u64, buffer, size_bytes);
        self.inflight += 1;
        self.frontier_bytes = offset + size_bytes;
        if rng.below(3) != 0 {
            self.complete_all();
        }
    }

    fn sync(&mut self) {
        self.complete_all();
        self.token += 1;
        self.storage.sync_submit(self.token, self.segment);
        self.complete_all();
    }

    /// Reads the whole segment back: what was written, and zeros everywhere else.
    fn check(&mut self) {
        self.complete_all();
        let mut read = AlignedBuffer::new(SEGMENT_SIZE_BYTES, self.sector);
        self.storage
            .read(self.segment, 0, &mut read)
            .expect("read the segment");
        // A slice comparison first (memcmp, fast in unoptimized test builds too); the byte
        // only to report a mismatch.
        if read[..] == self.model[..] {
            return;
        }
        if let Some(at) = (0..SEGMENT_SIZE_BYTES).find(|&at| read[at] != self.model[at]) {
            panic!(
                "segment {}: byte {at} is {:#x}, the writer put {:#x} there (frontier {})",
                self.segment, read[at], self.model[at], self.frontier_bytes
            );
        }
    }

    /// Moves on to a new segment, as a roll does, and now and then removes the old one.
    fn roll(&mut self, rng: &mut Rng) {
        self.check();
        if rng.below(2) == 0 {
            self.storage.segment_remove(self.segment).expect("remove");
        }
        self.segment += 1;
        self.storage
            .segment_create(self.segment, SEGMENT_SIZE_BYTES as u64)
            .expect("create");
        self.model.fill(0);
        self.frontier_bytes = 0;
    }
}

/// With writes on the ring and on IO threads.
#[test]
fn fill_ahead_never_writes_over_data() {
    for io_uring in [true, false] {
        for fill_ahead_size_bytes in FILL_AHEAD_SIZES_BYTES {
            writer_against_model(fill_ahead_size_bytes, io_uring, 3000);
        }
    }
}

fn writer_against_model(fill_ahead_size_bytes: u32, io_uring: bool, steps: u32) {
    let scratch = ScratchDir::new("fill-ahead-model");
    let options = DirectOptions {
        fill_ahead_size_bytes,
        io_thread_count: 2,
        io_uring,
        ..DirectOptions::default()
    };
    let mut storage = DirectStorage::open(scratch.path(), &options).expect("open");
    storage
        .segment_create(0, SEGMENT_SIZE_BYTES as u64)
        .expect("create");
    let sector = storage.sector_size_bytes() as usize;
    let mut world = World {
        storage,
        sector,
        segment: 0,
        model: vec![0u8; SEGMENT_SIZE_BYTES],
        frontier_bytes: 0,
        inflight: 0,
        buffers: (0..6)
            .map(|_| AlignedBuffer::new(BURST_SIZE_BYTES, sector))
            .collect(),
        token: 0,
    };
    let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ u64::from(fill_ahead_size_bytes));
    for _ in 0..steps {
        match rng.below(100) {
            // Small writes, each followed by a sync: the filler runs.
            0..=59 => {
                let sectors = 1 + rng.below(12) as usize;
                world.write(&mut rng, sectors * sector);
                world.sync();
            }
            // Bursts with no sync between them: they overtake the filler's chunks.
            60..=94 => {
                for _ in 0..1 + rng.below(4) {
                    let sectors = 1 + rng.below((BURST_SIZE_BYTES / sector) as u64) as usize;
                    world.write(&mut rng, sectors * sector);
                }
            }
            95..=97 => world.check(),
            _ => world.roll(&mut rng),
        }
        if world.frontier_bytes + BURST_SIZE_BYTES > SEGMENT_SIZE_BYTES {
            world.roll(&mut rng);
        }
    }
    // The filler runs on a thread of its own, whenever it is scheduled: on a loaded machine
    // the steps above may all pass before it first runs. Small writes and syncs go on until it
    // has written something, so that the outcome does not depend on the scheduling.
    let what =
        format!("fill-ahead {fill_ahead_size_bytes}: the small syncs to make the filler run");
    wait_common::poll_until(&what, Duration::from_millis(10), || {
        if world.storage.zero_filled_bytes() > 0 {
            return Some(());
        }
        if world.frontier_bytes + BURST_SIZE_BYTES > SEGMENT_SIZE_BYTES {
            world.roll(&mut rng);
        }
        world.write(&mut rng, world.sector);
        world.sync();
        None
    });
    world.check();
}

fn config() -> Config {
    Config {
        segment_size_bytes: 4 * 1024 * 1024,
        ..disk_common::config_disk()
    }
}

fn options() -> DirectOptions {
    DirectOptions {
        fill_ahead_size_bytes: 256 * 1024,
        ..DirectOptions::default()
    }
}

/// Appends (with `append`) and flushes one small record at a time until the filler has
/// written at least `bytes` in all, and returns what it has written.
///
/// Once it has caught up, the filler keeps a whole fill-ahead written past the last write, so
/// a writer that syncs often soon makes it write that much. But it runs on a thread of its own,
/// and on a loaded machine it may have been left behind until the last write, and then stop
/// short of a fill-ahead: only more small syncs make it go on. So this drives the log rather
/// than waiting, and the outcome does not depend on how the threads were scheduled.
fn small_syncs_until_filled(
    log: &mut Log<DirectStorage>,
    bytes: u64,
    mut append: impl FnMut(&mut Log<DirectStorage>),
) -> u64 {
    let what = format!("the filler to write {bytes} bytes");
    wait_common::poll_until(&what, Duration::from_millis(10), || {
        let filled = log.storage().zero_filled_bytes();
        if filled >= bytes {
            return Some(filled);
        }
        append(log);
        log.flush().expect("flush");
        None
    })
}

#[test]
fn small_syncs_fill_ahead_and_every_record_survives() {
    let scratch = ScratchDir::new("fill-ahead-log");
    let seed = 7;
    let mut record = Vec::new();
    let mut count = 0;
    {
        let storage = DirectStorage::open(scratch.path(), &options()).expect("open");
        let mut log = Log::open(config(), storage).expect("open the log");
        let mut append = |log: &mut Log<DirectStorage>| {
            disk_common::record(seed, count, &mut record);
            assert_eq!(log.append(&record).expect("append"), count);
            count += 1;
        };
        for _ in 0..400 {
            append(&mut log);
            log.flush().expect("flush");
        }
        small_syncs_until_filled(&mut log, 256 * 1024, append);
        log.close().expect("close");
    }
    let storage = DirectStorage::open(scratch.path(), &options()).expect("reopen");
    let mut log = Log::open(config(), storage).expect("reopen the log");
    assert_eq!(log.next_lsn(), count);
    let mut buffer = vec![0u8; 64 * 1024];
    for lsn in 0..count {
        disk_common::record(seed, lsn, &mut record);
        let size = log.read(lsn, &mut buffer).expect("read");
        assert!(buffer[..size] == record[..], "record {lsn} changed");
    }
}

#[test]
fn bulk_appends_with_one_sync_fill_nothing() {
    let scratch = ScratchDir::new("fill-ahead-bulk");
    let storage = DirectStorage::open(scratch.path(), &options()).expect("open");
    let mut log = Log::open(config(), storage).expect("open the log");
    let record = vec![0x5au8; 1000];
    // Three segments and a little: the one sync lands soon after a roll, so the writes since
    // the last sync must be counted across segments, not from the roll.
    for _ in 0..12_488 {
        log.append(&record).expect("append");
    }
    log.flush().expect("flush");
    assert_eq!(log.storage().zero_filled_bytes(), 0);
    // More bulk, with no sync: still nothing.
    for _ in 0..3_000 {
        log.append(&record).expect("append");
    }
    log.flush().expect("flush");
    assert_eq!(log.storage().zero_filled_bytes(), 0);
    log.close().expect("close");
}

#[test]
fn bulk_after_small_syncs_stops_filling() {
    let scratch = ScratchDir::new("fill-ahead-switch");
    let storage = DirectStorage::open(scratch.path(), &options()).expect("open");
    let mut log = Log::open(config(), storage).expect("open the log");
    let record = vec![0x5au8; 1000];
    for _ in 0..100 {
        log.append(&record).expect("append");
        log.flush().expect("flush");
    }
    let filled = small_syncs_until_filled(&mut log, 256 * 1024, |log| {
        log.append(&record).expect("append");
    });
    // A segment and a half of bulk with no sync: the filler stops once a fill-ahead has been
    // written without a sync. It never fills past one fill-ahead beyond the last write, so it
    // adds at most what it had yet to catch up when `filled` was read (less than a fill-ahead
    // past the last small write, however far behind it was) and one fill-ahead of bulk.
    for _ in 0..6_000 {
        log.append(&record).expect("append");
    }
    log.flush().expect("flush");
    let after = log.storage().zero_filled_bytes();
    assert!(
        after <= filled + 2 * 256 * 1024,
        "the filler went on during bulk appends: {filled} then {after} bytes"
    );
    log.close().expect("close");
}
