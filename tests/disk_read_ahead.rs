//! `DirectStorage`'s read-ahead never changes what a read returns: random writes (some left in
//! flight), read-ahead hints, exchanged reads, and segments removed and made again, checked
//! against a model of the file's bytes. Then a whole log scanned with and without read-ahead.
#![cfg(target_os = "linux")]

mod disk_common;

use ballast_log::storage::{
    AlignedBuffer, CompletionKind, DirectOptions, DirectStorage, SegmentId, Storage,
};
use ballast_log::{Config, Log};
use disk_common::{Rng, ScratchDir};

const SECTOR: usize = 4096;
const SEGMENT_SIZE_BYTES: usize = 1024 * 1024;
const BUFFER_SIZE_BYTES: usize = 256 * 1024;
const SEGMENTS: [SegmentId; 2] = [0, 1 << 20];

/// A sector-aligned stretch of at most `most_sectors` inside a segment.
fn stretch(rng: &mut Rng, most_sectors: u64) -> (u64, usize) {
    let sectors = 1 + rng.below(most_sectors);
    let segment_sectors = (SEGMENT_SIZE_BYTES / SECTOR) as u64;
    let first = rng.below(segment_sectors - sectors + 1);
    (first * SECTOR as u64, (sectors as usize) * SECTOR)
}

struct World {
    storage: DirectStorage,
    model: Vec<Vec<u8>>,
    /// Writes submitted and not yet polled: (segment index, offset, size).
    inflight: Vec<(usize, u64, usize)>,
    buffers: Vec<AlignedBuffer>,
}

impl World {
    fn overlaps_inflight(&self, index: usize, offset_bytes: u64, size_bytes: usize) -> bool {
        self.inflight.iter().any(|&(held, offset, size)| {
            held == index
                && offset_bytes < offset + size as u64
                && offset < offset_bytes + size_bytes as u64
        })
    }

    fn complete_all(&mut self) {
        while let Some(completion) = self.storage.poll(true) {
            completion.result.expect("write");
            if let CompletionKind::Write { buffer } = completion.kind {
                self.buffers.push(buffer);
            }
        }
        self.inflight.clear();
    }

    fn write(&mut self, rng: &mut Rng, token: u64) {
        let index = rng.below(2) as usize;
        let (offset, size) = stretch(rng, (BUFFER_SIZE_BYTES / SECTOR) as u64);
        if self.buffers.is_empty() || self.overlaps_inflight(index, offset, size) {
            self.complete_all();
        }
        let mut buffer = self.buffers.pop().expect("a free buffer");
        let fill = rng.next();
        for (at, byte) in buffer[..size].iter_mut().enumerate() {
            *byte = (fill.wrapping_add(at as u64 / 8) >> (at % 8 * 8)) as u8;
        }
        let start = offset as usize;
        self.model[index][start..start + size].copy_from_slice(&buffer[..size]);
        self.storage
            .write_submit(token, SEGMENTS[index], offset, buffer, size);
        self.inflight.push((index, offset, size));
        // Most writes complete before what comes next; some stay in flight across hints.
        if rng.below(4) != 0 {
            self.complete_all();
        }
    }

    fn read(&mut self, rng: &mut Rng, target: &mut AlignedBuffer) {
        let index = rng.below(2) as usize;
        let (offset, size) = stretch(rng, (BUFFER_SIZE_BYTES / SECTOR) as u64);
        let at = rng.below(((BUFFER_SIZE_BYTES - size) / SECTOR + 1) as u64) as usize * SECTOR;
        if self.overlaps_inflight(index, offset, size) {
            self.complete_all();
        }
        self.storage
            .read_exchange(SEGMENTS[index], offset, target, at, size)
            .expect("read");
        assert_eq!(
            target.len(),
            BUFFER_SIZE_BYTES,
            "an exchange keeps the length"
        );
        let start = offset as usize;
        assert!(
            target[at..at + size] == self.model[index][start..start + size],
            "segment {index}, offset {offset}, {size} bytes at {at}: not what was written"
        );
    }

    fn remake(&mut self, rng: &mut Rng) {
        let index = rng.below(2) as usize;
        self.complete_all();
        if rng.below(2) == 0 {
            self.storage
                .segment_remove(SEGMENTS[index])
                .expect("remove");
        }
        self.storage
            .segment_create(SEGMENTS[index], SEGMENT_SIZE_BYTES as u64)
            .expect("create");
        self.model[index].fill(0);
    }
}

/// With writes on the ring and on IO threads.
#[test]
fn read_ahead_returns_what_was_written() {
    for io_uring in [true, false] {
        read_ahead_against_model(io_uring);
    }
}

fn read_ahead_against_model(io_uring: bool) {
    let scratch = ScratchDir::new("read-ahead-model");
    let options = DirectOptions {
        read_ahead_size_bytes: BUFFER_SIZE_BYTES as u32,
        io_thread_count: 2,
        io_uring,
        ..DirectOptions::default()
    };
    let mut storage = DirectStorage::open(scratch.path(), &options).expect("open");
    for segment in SEGMENTS {
        storage
            .segment_create(segment, SEGMENT_SIZE_BYTES as u64)
            .expect("create");
    }
    let mut world = World {
        storage,
        model: vec![vec![0u8; SEGMENT_SIZE_BYTES]; 2],
        inflight: Vec::new(),
        buffers: (0..8)
            .map(|_| AlignedBuffer::new(BUFFER_SIZE_BYTES, SECTOR))
            .collect(),
    };
    let mut target = AlignedBuffer::new(BUFFER_SIZE_BYTES, SECTOR);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for step in 0..3000u64 {
        match rng.below(100) {
            0..=29 => world.write(&mut rng, step),
            30..=59 => {
                let index = rng.below(2) as usize;
                let (offset, size) = stretch(&mut rng, (BUFFER_SIZE_BYTES / SECTOR) as u64);
                let at = rng.below(4) as usize * SECTOR;
                world.storage.read_ahead(SEGMENTS[index], offset, size, at);
            }
            60..=97 => world.read(&mut rng, &mut target),
            _ => world.remake(&mut rng),
        }
    }
    world.complete_all();
    // A hint over a write still in flight, read after the write completes: the read-ahead
    // must not have loaded the bytes before the write landed.
    for step in 0..300u64 {
        let size = BUFFER_SIZE_BYTES;
        let offset = rng.below((SEGMENT_SIZE_BYTES / size) as u64) * size as u64;
        let mut buffer = world.buffers.pop().expect("a free buffer");
        buffer.fill((step % 250) as u8 + 1);
        let start = offset as usize;
        world.model[0][start..start + size].copy_from_slice(&buffer[..size]);
        world
            .storage
            .write_submit(step, SEGMENTS[0], offset, buffer, size);
        world.inflight.push((0, offset, size));
        world.storage.read_ahead(SEGMENTS[0], offset, size, 0);
        world.complete_all();
        world
            .storage
            .read_exchange(SEGMENTS[0], offset, &mut target, 0, size)
            .expect("read");
        assert!(
            target[..size] == world.model[0][start..start + size],
            "offset {offset}: the read returned bytes from before a completed write"
        );
    }
}

/// A sequential read right after a hint for it must come from the read-ahead and still be
/// what a plain read returns, also when the hint runs past the end of the segment.
#[test]
fn scan_with_and_without_read_ahead_agree() {
    let scratch = ScratchDir::new("read-ahead-scan");
    let config = Config {
        sector_size_bytes: SECTOR as u32,
        block_size_bytes: 16 * 1024,
        segment_size_bytes: SEGMENT_SIZE_BYTES as u64,
        read_buffer_size_bytes: 128 * 1024,
        ..disk_common::config_disk()
    };
    let records: Vec<Vec<u8>> = (0..6000u32)
        .map(|index| {
            let size = 1 + (index as usize * 7919) % 3000;
            (0..size).map(|at| (index as usize + at) as u8).collect()
        })
        .collect();
    {
        let storage = DirectStorage::open(scratch.path(), &DirectOptions::default()).unwrap();
        let mut log = Log::open(config.clone(), storage).unwrap();
        for record in &records {
            log.append(record).unwrap();
        }
        log.close().unwrap();
    }
    assert!(records.iter().map(Vec::len).sum::<usize>() > 3 * SEGMENT_SIZE_BYTES);
    for read_ahead_size_bytes in [0, 128 * 1024, 64 * 1024] {
        let options = DirectOptions {
            read_ahead_size_bytes,
            ..DirectOptions::default()
        };
        let storage = DirectStorage::open(scratch.path(), &options).unwrap();
        let mut log = Log::open(config.clone(), storage).unwrap();
        let mut cursor = log.cursor(log.first_lsn()).unwrap();
        let mut count = 0;
        while let Some(record) = log.cursor_next(&mut cursor).unwrap() {
            assert_eq!(
                record.data,
                &records[record.lsn as usize][..],
                "record {} with {read_ahead_size_bytes} bytes of read-ahead",
                record.lsn
            );
            count += 1;
        }
        assert_eq!(count, records.len());
        log.close().unwrap();
    }
}
