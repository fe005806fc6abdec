//! `MemStorage`: an in-memory backend with real sector semantics and crashes.
//!
//! Each segment keeps two images: what reads see now, and what survived the last sync. A
//! write changes the first and marks its sectors dirty; a sync copies dirty sectors into the
//! second. [`MemStorage::crash`] decides, sector by sector, what happens to every dirty
//! sector: kept, lost, or torn. Operations complete at once, in order; the seeded simulator
//! (`ballast-sim`) adds latency and reordering on top of the same seam.

use super::{assert_aligned, AlignedBuffer, Clock, Completion, CompletionKind, SegmentId, Storage};
use std::cell::Cell;
use std::collections::VecDeque;
use std::io;

/// What a crash does to one sector written since its segment's last sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectorFate {
    /// The write reached the disk.
    Kept,
    /// The write never reached the disk; the sector holds what it held at the last sync.
    Lost,
    /// The write was cut inside the sector: the first `prefix_bytes` are new, the rest is
    /// `fill`.
    Torn {
        /// How many bytes of the new content landed.
        prefix_bytes: u32,
        /// The garbage byte after them.
        fill: u8,
    },
}

#[derive(Clone)]
struct Segment {
    id: SegmentId,
    current: Vec<u8>,
    durable: Vec<u8>,
    /// One bit per sector written since the last sync.
    dirty: Vec<u64>,
}

/// An in-memory [`Storage`] for tests, examples and benchmarks.
pub struct MemStorage {
    sector_size_bytes: u32,
    metadata: Option<Vec<u8>>,
    segments: Vec<Segment>,
    /// Removed segments, kept for reuse so that a segment roll allocates nothing.
    pool: Vec<Segment>,
    completions: VecDeque<Completion>,
    now_ns: Cell<u64>,
    sync_failures_pending: u32,
    write_failures_pending: u32,
    create_failures_pending: u32,
    /// Changes the process may still make before it dies (`MemStorage::die_after`).
    changes_left: Option<u32>,
}

const COMPLETIONS_RESERVED: usize = 256;

impl MemStorage {
    /// An empty storage with the given sector size.
    pub fn new(sector_size_bytes: u32) -> MemStorage {
        assert!(sector_size_bytes.is_power_of_two());
        MemStorage {
            sector_size_bytes,
            metadata: None,
            segments: Vec::with_capacity(64),
            pool: Vec::with_capacity(64),
            completions: VecDeque::with_capacity(COMPLETIONS_RESERVED),
            now_ns: Cell::new(0),
            sync_failures_pending: 0,
            write_failures_pending: 0,
            create_failures_pending: 0,
            changes_left: None,
        }
    }

    /// Preallocates `segment_count` segments of `size_bytes`, so that creating segments later
    /// allocates nothing.
    pub fn reserve(&mut self, segment_count: usize, size_bytes: u64) {
        self.segments.reserve(segment_count);
        self.pool.reserve(segment_count);
        for _ in 0..segment_count {
            let segment = self.segment_new(u64::MAX, size_bytes);
            self.pool.push(segment);
        }
    }

    /// A copy of the storage as it is now, synced and unsynced bytes alike, with nothing in
    /// flight: to explore several crashes from one state.
    pub fn snapshot(&self) -> MemStorage {
        let mut copy = MemStorage::new(self.sector_size_bytes);
        copy.metadata.clone_from(&self.metadata);
        copy.segments = self.segments.clone();
        copy.now_ns.set(self.now_ns.get());
        copy
    }

    /// Sets the clock.
    pub fn set_now_ns(&self, now_ns: u64) {
        assert!(now_ns >= self.now_ns.get(), "clock went backwards");
        self.now_ns.set(now_ns);
    }

    /// Makes the next `count` syncs fail with an IO error.
    pub fn fail_syncs(&mut self, count: u32) {
        self.sync_failures_pending = count;
    }

    /// Makes the next `count` writes fail with an IO error (nothing is written).
    pub fn fail_writes(&mut self, count: u32) {
        self.write_failures_pending = count;
    }

    /// Makes the next `count` segment creations fail with `ENOSPC` (nothing is created or
    /// replaced).
    pub fn fail_creates(&mut self, count: u32) {
        self.create_failures_pending = count;
    }

    /// The process dies after `count` more changes (writes, syncs, metadata writes, segment
    /// creations and removals): every change from then on fails and changes nothing, as after
    /// a crash in the middle of a call. `None` brings it back to life. For tests that cut an
    /// operation, `Log::open` included, at any point.
    pub fn die_after(&mut self, count: Option<u32>) {
        self.changes_left = count;
    }

    /// Counts a change; whether the process is dead.
    fn dead(&mut self) -> bool {
        match &mut self.changes_left {
            None => false,
            Some(0) => true,
            Some(left) => {
                *left -= 1;
                false
            }
        }
    }

    fn dead_error() -> io::Error {
        io::Error::other("the process died (MemStorage::die_after)")
    }

    /// The bytes of a segment as reads see them now.
    pub fn segment_bytes(&self, segment: SegmentId) -> Option<&[u8]> {
        let index = self.segment_index(segment)?;
        Some(&self.segments[index].current)
    }

    /// Changes a segment's bytes in place, in both images (as a bad disk would): for tests of
    /// corruption.
    pub fn corrupt(&mut self, segment: SegmentId, offset_bytes: usize, xor: u8) {
        let index = self.segment_index(segment).expect("no such segment");
        let segment = &mut self.segments[index];
        segment.current[offset_bytes] ^= xor;
        segment.durable[offset_bytes] ^= xor;
    }

    /// The segments, in ascending order.
    pub fn segment_ids(&self) -> impl Iterator<Item = SegmentId> + '_ {
        self.segments.iter().map(|segment| segment.id)
    }

    /// The process is killed (SIGKILL), the machine stays up: operations in flight complete
    /// unseen, and what was written stays readable without being durable, so the next open
    /// reads it and a later [`crash`](MemStorage::crash) decides its fate.
    pub fn kill(&mut self) {
        self.completions.clear();
    }

    /// Crashes: every operation in flight is dropped, and every sector written since its
    /// segment's last sync meets the fate `fate(segment, sector_offset_bytes)` chooses.
    pub fn crash(&mut self, mut fate: impl FnMut(SegmentId, u64) -> SectorFate) {
        self.completions.clear();
        let sector = self.sector_size_bytes as usize;
        for segment in &mut self.segments {
            for sector_index in dirty_sectors(&segment.dirty) {
                let start = sector_index * sector;
                let range = start..start + sector;
                match fate(segment.id, start as u64) {
                    SectorFate::Kept => {}
                    SectorFate::Lost => segment.current[range.clone()]
                        .copy_from_slice(&segment.durable[range.clone()]),
                    SectorFate::Torn { prefix_bytes, fill } => {
                        let cut = start + (prefix_bytes as usize).min(sector);
                        segment.current[cut..start + sector].fill(fill);
                    }
                }
                segment.durable[range.clone()].copy_from_slice(&segment.current[range]);
            }
            segment.dirty.fill(0);
        }
    }

    fn segment_new(&self, id: SegmentId, size_bytes: u64) -> Segment {
        let sectors = size_bytes as usize / self.sector_size_bytes as usize;
        Segment {
            id,
            current: vec![0; size_bytes as usize],
            durable: vec![0; size_bytes as usize],
            dirty: vec![0; sectors.div_ceil(64)],
        }
    }

    fn segment_index(&self, segment: SegmentId) -> Option<usize> {
        self.segments
            .binary_search_by_key(&segment, |segment| segment.id)
            .ok()
    }

    fn segment_index_or_error(&self, segment: SegmentId) -> io::Result<usize> {
        self.segment_index(segment)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn complete(&mut self, token: u64, kind: CompletionKind, result: io::Result<()>) {
        self.completions.push_back(Completion {
            token,
            kind,
            result,
        });
    }
}

fn dirty_sectors(dirty: &[u64]) -> impl Iterator<Item = usize> + '_ {
    dirty.iter().enumerate().flat_map(|(word_index, &word)| {
        (0..64)
            .filter(move |bit| word & (1 << bit) != 0)
            .map(move |bit| word_index * 64 + bit)
    })
}

impl Clock for MemStorage {
    fn now_ns(&self) -> u64 {
        self.now_ns.get()
    }
}

impl Storage for MemStorage {
    fn sector_size_bytes(&self) -> u32 {
        self.sector_size_bytes
    }

    fn metadata_read(&mut self, buffer: &mut [u8]) -> io::Result<bool> {
        assert_aligned(self.sector_size_bytes, 0, buffer);
        match &self.metadata {
            None => Ok(false),
            Some(metadata) => {
                let size = metadata.len().min(buffer.len());
                buffer[..size].copy_from_slice(&metadata[..size]);
                buffer[size..].fill(0);
                Ok(true)
            }
        }
    }

    fn metadata_write(&mut self, buffer: &[u8]) -> io::Result<()> {
        assert_aligned(self.sector_size_bytes, 0, buffer);
        if self.dead() {
            return Err(Self::dead_error());
        }
        match &mut self.metadata {
            // Replaced in place: an open log rewrites it without allocating.
            Some(metadata) if metadata.len() == buffer.len() => metadata.copy_from_slice(buffer),
            metadata => *metadata = Some(buffer.to_vec()),
        }
        Ok(())
    }

    fn segment_list(&mut self) -> io::Result<Vec<SegmentId>> {
        Ok(self.segment_ids().collect())
    }

    fn segment_create_with(
        &mut self,
        id: SegmentId,
        size_bytes: u64,
        head: &[u8],
    ) -> io::Result<()> {
        assert_eq!(size_bytes % u64::from(self.sector_size_bytes), 0);
        assert_aligned(self.sector_size_bytes, 0, head);
        assert!(head.len() as u64 <= size_bytes);
        if self.dead() {
            return Err(Self::dead_error());
        }
        if self.create_failures_pending > 0 {
            self.create_failures_pending -= 1;
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device (injected)",
            ));
        }
        if let Some(index) = self.segment_index(id) {
            let old = self.segments.remove(index);
            self.pool.push(old);
        }
        let reusable = self
            .pool
            .iter()
            .position(|segment| segment.current.len() as u64 == size_bytes);
        let mut segment = match reusable {
            Some(index) => self.pool.swap_remove(index),
            None => self.segment_new(id, size_bytes),
        };
        segment.id = id;
        segment.current.fill(0);
        segment.durable.fill(0);
        segment.dirty.fill(0);
        // Made whole at once: the head is durable with the creation.
        segment.current[..head.len()].copy_from_slice(head);
        segment.durable[..head.len()].copy_from_slice(head);
        let position = self
            .segments
            .binary_search_by_key(&id, |segment| segment.id)
            .unwrap_err();
        self.segments.insert(position, segment);
        Ok(())
    }

    fn segment_remove(&mut self, id: SegmentId) -> io::Result<()> {
        if self.dead() {
            return Err(Self::dead_error());
        }
        let index = self.segment_index_or_error(id)?;
        let segment = self.segments.remove(index);
        self.pool.push(segment);
        Ok(())
    }

    fn segment_size_bytes(&mut self, id: SegmentId) -> io::Result<u64> {
        let index = self.segment_index_or_error(id)?;
        Ok(self.segments[index].current.len() as u64)
    }

    fn read(&mut self, id: SegmentId, offset_bytes: u64, buffer: &mut [u8]) -> io::Result<()> {
        assert_aligned(self.sector_size_bytes, offset_bytes, buffer);
        let index = self.segment_index_or_error(id)?;
        let segment = &self.segments[index];
        let start = offset_bytes as usize;
        let Some(source) = segment.current.get(start..start + buffer.len()) else {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        };
        buffer.copy_from_slice(source);
        Ok(())
    }

    fn write_submit(
        &mut self,
        token: u64,
        id: SegmentId,
        offset_bytes: u64,
        buffer: AlignedBuffer,
        size_bytes: usize,
    ) {
        assert_aligned(self.sector_size_bytes, offset_bytes, &buffer[..size_bytes]);
        if self.dead() {
            let error = Self::dead_error();
            return self.complete(token, CompletionKind::Write { buffer }, Err(error));
        }
        if self.write_failures_pending > 0 {
            self.write_failures_pending -= 1;
            let error = io::Error::from(io::ErrorKind::Other);
            return self.complete(token, CompletionKind::Write { buffer }, Err(error));
        }
        let sector = self.sector_size_bytes as usize;
        let index = self.segment_index(id).expect("write to a missing segment");
        let segment = &mut self.segments[index];
        let start = offset_bytes as usize;
        assert!(
            start + size_bytes <= segment.current.len(),
            "write past the end"
        );
        segment.current[start..start + size_bytes].copy_from_slice(&buffer[..size_bytes]);
        for sector_index in start / sector..(start + size_bytes) / sector {
            segment.dirty[sector_index / 64] |= 1 << (sector_index % 64);
        }
        self.complete(token, CompletionKind::Write { buffer }, Ok(()));
    }

    fn sync_submit(&mut self, token: u64, id: SegmentId) {
        if self.dead() {
            return self.complete(token, CompletionKind::Sync, Err(Self::dead_error()));
        }
        if self.sync_failures_pending > 0 {
            self.sync_failures_pending -= 1;
            let error = io::Error::from(io::ErrorKind::Other);
            return self.complete(token, CompletionKind::Sync, Err(error));
        }
        let sector = self.sector_size_bytes as usize;
        let index = self.segment_index(id).expect("sync of a missing segment");
        let segment = &mut self.segments[index];
        for word_index in 0..segment.dirty.len() {
            let mut word = segment.dirty[word_index];
            while word != 0 {
                let bit = word.trailing_zeros() as usize;
                word &= word - 1;
                let start = (word_index * 64 + bit) * sector;
                segment.durable[start..start + sector]
                    .copy_from_slice(&segment.current[start..start + sector]);
            }
            segment.dirty[word_index] = 0;
        }
        self.complete(token, CompletionKind::Sync, Ok(()));
    }

    fn poll(&mut self, _wait: bool) -> Option<Completion> {
        self.completions.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(storage: &mut MemStorage, offset: u64, byte: u8) {
        let mut buffer = AlignedBuffer::new(4096, 4096);
        buffer.fill(byte);
        storage.write_submit(1, 0, offset, buffer, 4096);
        let completion = storage.poll(true).unwrap();
        assert!(completion.result.is_ok());
    }

    fn sector(storage: &MemStorage, offset: usize) -> &[u8] {
        &storage.segment_bytes(0).unwrap()[offset..offset + 4096]
    }

    #[test]
    fn crash_keeps_synced_and_decides_unsynced() {
        let mut storage = MemStorage::new(4096);
        storage.segment_create(0, 4 * 4096).unwrap();
        written(&mut storage, 0, 1);
        storage.sync_submit(2, 0);
        assert!(storage.poll(true).unwrap().result.is_ok());
        written(&mut storage, 0, 9);
        written(&mut storage, 4096, 2);
        written(&mut storage, 8192, 3);
        storage.crash(|_, offset| match offset {
            0 => SectorFate::Lost,
            4096 => SectorFate::Kept,
            _ => SectorFate::Torn {
                prefix_bytes: 100,
                fill: 0xEE,
            },
        });
        assert!(sector(&storage, 0).iter().all(|&b| b == 1));
        assert!(sector(&storage, 4096).iter().all(|&b| b == 2));
        let torn = sector(&storage, 8192);
        assert!(torn[..100].iter().all(|&b| b == 3));
        assert!(torn[100..].iter().all(|&b| b == 0xEE));
        assert!(sector(&storage, 12288).iter().all(|&b| b == 0));
        // After the crash, everything is on disk: a second crash changes nothing.
        storage.crash(|_, _| SectorFate::Lost);
        assert!(sector(&storage, 4096).iter().all(|&b| b == 2));
    }

    #[test]
    #[should_panic(expected = "not sector-aligned")]
    fn misaligned_write_is_rejected() {
        let mut storage = MemStorage::new(4096);
        storage.segment_create(0, 4 * 4096).unwrap();
        let buffer = AlignedBuffer::new(4096, 4096);
        storage.write_submit(1, 0, 512, buffer, 4096);
    }
}
