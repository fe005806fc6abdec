//! `SimStorage`: the storage seam under simulated time, with faults.
//!
//! Every operation completes after a seeded delay on the simulated clock, so writes in flight
//! complete out of order. A write becomes visible when it completes and durable when a sync
//! submitted after its completion completes. A crash ("power loss") decides, sector by sector,
//! the fate of every write in flight and every completed write not yet synced: kept, lost, or
//! torn. Faults are drawn from the seed and bounded so that the run stays meaningful; each
//! damaging fault records the lowest LSN it may have damaged (its "taint") for the oracle.

use crate::swarm::Faults;
use crate::Digest;
use ballast_log::format::{
    self, BlockHeader, HeaderRead, BLOCK_HEADER_SIZE_BYTES, FRAME_HEADER_SIZE_BYTES,
};
use ballast_log::storage::{
    assert_aligned, AlignedBuffer, Clock, Completion, CompletionKind, SegmentId, Storage,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io;
use std::rc::Rc;

/// Fault classes the simulator can inject, for the per-class summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultClass {
    /// Writes completing out of submission order.
    Reorder,
    /// A power loss with writes in flight or unsynced.
    Crash,
    /// A sector cut in the middle by a crash.
    Torn,
    /// A read that fails with EIO.
    ReadError,
    /// A read that returns flipped bits (the same on every retry).
    BitFlip,
    /// A write that lands at the wrong offset.
    Misdirect,
    /// A sync that fails.
    SyncError,
    /// A write that fails with EIO.
    WriteError,
    /// Segment creation failing with ENOSPC.
    NoSpace,
    /// Damage to durable data while the log is at rest (closed cleanly, or idle after an
    /// attestation): a flipped bit, a sector lost (zeros), or a sector overwritten with a copy
    /// of another one (a misdirected write from elsewhere).
    AtRest,
    /// The process dies (a SIGKILL) while the OS keeps what it wrote: writes in flight complete,
    /// nothing unsynced is lost, and a power loss may come later.
    Kill,
    /// A crash (power loss or kill) inside `Log::open`, at any storage operation of recovery.
    RecoveryCrash,
    /// A write that reports success and never lands: the sectors keep their older bytes.
    LostWrite,
    /// A write that reports success after only a prefix of its sectors landed.
    ShortWrite,
    /// A write that fails with ENOSPC.
    NoSpaceWrite,
    /// A sector cut by a crash keeps its old bytes after the cut (a torn rewrite), not garbage.
    TornOld,
    /// A valid block at its very place, of the same epoch and LSN, but with another history:
    /// another predecessor and other records (a replica's block written into this log).
    Foreign,
    /// A bit flip on reads of a sector that persists across crashes and opens.
    ReadPersistent,
    /// A valid block of another log, further ahead (higher LSNs, a newer epoch), written where
    /// this log never wrote: its header names another place. It damages nothing, and must
    /// attest nothing.
    Stray,
    /// A crash in the middle of a metadata save (which writes a temporary file, syncs it,
    /// renames it over the metadata and syncs the directory): before the rename the old
    /// metadata stays and the temporary file is torn; after it, before the directory's sync,
    /// the old or the new one survives.
    MetadataCut,
}

/// Every fault class, in summary order.
pub const FAULT_CLASSES: [FaultClass; 20] = [
    FaultClass::Reorder,
    FaultClass::Crash,
    FaultClass::Torn,
    FaultClass::ReadError,
    FaultClass::BitFlip,
    FaultClass::Misdirect,
    FaultClass::SyncError,
    FaultClass::WriteError,
    FaultClass::NoSpace,
    FaultClass::AtRest,
    FaultClass::Kill,
    FaultClass::RecoveryCrash,
    FaultClass::LostWrite,
    FaultClass::ShortWrite,
    FaultClass::NoSpaceWrite,
    FaultClass::TornOld,
    FaultClass::Foreign,
    FaultClass::ReadPersistent,
    FaultClass::Stray,
    FaultClass::MetadataCut,
];

struct Segment {
    current: Vec<u8>,
    durable: Vec<u8>,
    /// Sectors written (completed) since their last sync.
    dirty: Vec<bool>,
    /// Sectors ever written: misdirected writes only land where nothing was.
    written: Vec<bool>,
}

enum Operation {
    Write {
        segment: SegmentId,
        offset_bytes: u64,
        buffer: AlignedBuffer,
        size_bytes: usize,
        /// Where the write really lands (differs when misdirected).
        target_bytes: u64,
        /// How much of it lands: `size_bytes`, less for a short write, 0 for a lost one.
        landed_bytes: usize,
    },
    Sync {
        segment: SegmentId,
        /// The dirty sectors when the sync was submitted: what it makes durable.
        covers: Vec<usize>,
        fails: bool,
    },
}

struct Pending {
    token: u64,
    complete_at_ns: u64,
    sequence: u64,
    operation: Operation,
    /// The errno the operation fails with, if it fails.
    errno: Option<i32>,
}

/// A read fault on one sector: EIO, or a deterministic bit flip.
#[derive(Clone, Copy, Debug)]
struct ReadFault {
    segment: SegmentId,
    sector: usize,
    flip: Option<(usize, u8)>,
    /// Opens it survives, crashes included (0: gone at the next crash or restart).
    opens_left: u32,
}

/// The simulated disk. [`SimStorage`] is the handle the log owns.
pub struct SimDisk {
    rng: ChaCha8Rng,
    faults: Faults,
    sector_size_bytes: u32,
    now_ns: Cell<u64>,
    metadata: Option<Vec<u8>>,
    segments: BTreeMap<SegmentId, Segment>,
    pending: Vec<Pending>,
    sequence: u64,
    read_faults: Vec<ReadFault>,
    /// After the crash point, every operation fails: the process is considered dead.
    crash_at_operation: Option<u64>,
    operations: u64,
    crashed: bool,
    /// The lowest LSN the active read faults may damage (cleared with them).
    pub taint_read_lsn: Option<u64>,
    /// The lowest LSN a misdirected write may have damaged; the oracle clears it once a
    /// recovery has passed it.
    pub taint_write_lsn: Option<u64>,
    /// Misdirected, lost and short writes since `taint_write_lsn` was last clear.
    pub misdirects_tainting: u32,
    /// Misdirected, lost and short writes since the disk was made.
    pub write_damages_total: u64,
    /// The lowest LSN damage at rest may have touched; the oracle clears it after the
    /// recovery that saw it.
    pub taint_rest_lsn: Option<u64>,
    /// Damage events at rest since `taint_rest_lsn` was last clear.
    pub rest_damages: u32,
    /// Storage operations at the start of the current log call: the liveness bound.
    pub call_start_operations: u64,
    /// How often each fault class fired.
    pub fired: BTreeMap<FaultClass, u64>,
    /// The trace digest.
    pub digest: Digest,
    /// The buffer the last exchanged read gave back, handed out by the next one.
    exchange_spare: Option<AlignedBuffer>,
    /// Segments created (or replaced) and not yet durable, in the order they were made, with
    /// what a replaced one held. Directory changes become durable in order (a journaling
    /// filesystem's, and what a directory's `fsync` gives): a crash undoes a suffix of them.
    created: Vec<(SegmentId, Option<Segment>)>,
}

const LATENCY_NS_MIN: u64 = 5_000;
/// More storage operations than this in one log call means the log is stuck in a loop.
const OPERATIONS_PER_CALL_MAX: u64 = 1_000_000;
/// Longer than any block the swarm draws, in sectors.
const BLOCK_SECTORS_LOOKBACK: usize = 256;

impl SimDisk {
    /// A simulated disk driven by `rng`, with the fault rates of `faults`.
    pub fn new(rng: ChaCha8Rng, faults: Faults, sector_size_bytes: u32) -> SimDisk {
        SimDisk {
            rng,
            faults,
            sector_size_bytes,
            now_ns: Cell::new(0),
            metadata: None,
            segments: BTreeMap::new(),
            pending: Vec::new(),
            sequence: 0,
            read_faults: Vec::new(),
            crash_at_operation: None,
            operations: 0,
            crashed: false,
            taint_read_lsn: None,
            taint_write_lsn: None,
            misdirects_tainting: 0,
            write_damages_total: 0,
            taint_rest_lsn: None,
            rest_damages: 0,
            call_start_operations: 0,
            fired: BTreeMap::new(),
            digest: Digest::default(),
            exchange_spare: None,
            created: Vec::new(),
        }
    }

    fn fire(&mut self, class: FaultClass) {
        *self.fired.entry(class).or_default() += 1;
        self.digest.add(0xFA17, class as u64);
    }

    /// Moves the clock forward (the workload's think time).
    pub fn advance_ns(&mut self, delta_ns: u64) {
        self.now_ns.set(self.now_ns.get() + delta_ns);
    }

    /// Arms a crash after `operations_more` further storage operations.
    pub fn crash_arm(&mut self, operations_more: u64) {
        self.crash_at_operation = Some(self.operations + operations_more);
    }

    /// Disarms a crash point not reached (an open that ended before it).
    pub fn crash_at_operation_clear(&mut self) {
        self.crash_at_operation = None;
    }

    /// A crash landed inside an open.
    pub fn recovery_crash_note(&mut self) {
        self.fire(FaultClass::RecoveryCrash);
    }

    /// Whether the crash point was reached: the log's results since then do not count.
    pub fn crashed(&self) -> bool {
        self.crashed
    }

    /// Storage operations so far (the liveness bound counts them).
    pub fn operations(&self) -> u64 {
        self.operations
    }

    /// Counts an operation; returns true if the process is dead (crash point reached).
    fn step(&mut self) -> bool {
        self.operations += 1;
        let in_call = self.operations - self.call_start_operations;
        assert!(
            in_call < OPERATIONS_PER_CALL_MAX,
            "liveness: {in_call} storage operations in one log call"
        );
        if let Some(at) = self.crash_at_operation {
            if self.operations >= at {
                self.crashed = true;
            }
        }
        self.crashed
    }

    fn latency_ns(&mut self) -> u64 {
        let max = self.faults.latency_ns_max.max(LATENCY_NS_MIN + 1);
        self.rng.random_range(LATENCY_NS_MIN..max)
    }

    fn dead() -> io::Error {
        io::Error::other("simulated process is dead")
    }

    /// Power loss: every write in flight and every unsynced sector meets its fate; read
    /// faults and the crash point are cleared; the disk is whole again for the next open.
    pub fn crash(&mut self) {
        self.fire(FaultClass::Crash);
        let pending = std::mem::take(&mut self.pending);
        for operation in pending {
            if let Operation::Write {
                segment,
                buffer,
                target_bytes,
                landed_bytes,
                ..
            } = operation.operation
            {
                if operation.errno.is_none() {
                    self.write_apply(segment, target_bytes, &buffer[..landed_bytes]);
                }
            }
        }
        let sector = self.sector_size_bytes as usize;
        let torn_rate = self.faults.torn_rate;
        let ids: Vec<SegmentId> = self.segments.keys().copied().collect();
        for id in ids {
            let dirty: Vec<usize> = (0..self.segments[&id].dirty.len())
                .filter(|&index| self.segments[&id].dirty[index])
                .collect();
            for index in dirty {
                let fate = self.rng.random_range(0..3u8);
                let torn = fate == 2 && self.rng.random_bool(torn_rate);
                let cut = self.rng.random_range(0..sector);
                let fill = self.rng.random::<u8>();
                let torn_old = self.faults.torn_old_rate;
                let keeps_old = torn && torn_old > 0.0 && self.rng.random_bool(torn_old);
                let segment = self.segments.get_mut(&id).expect("segment");
                let range = index * sector..(index + 1) * sector;
                match (fate, torn, keeps_old) {
                    (0, _, _) => {}
                    (_, false, _) => segment.current[range.clone()]
                        .copy_from_slice(&segment.durable[range.clone()]),
                    // A torn rewrite: new bytes up to the cut, then what the sector held.
                    (_, true, true) => segment.current[range.start + cut..range.end]
                        .copy_from_slice(&segment.durable[range.start + cut..range.end]),
                    (_, true, false) => segment.current[range.start + cut..range.end].fill(fill),
                }
                segment.durable[range.clone()].copy_from_slice(&segment.current[range]);
                segment.dirty[index] = false;
                if torn {
                    self.fire(FaultClass::Torn);
                }
                if keeps_old {
                    self.fire(FaultClass::TornOld);
                }
                self.digest.add(id ^ index as u64, u64::from(fate));
            }
        }
        self.creations_undo();
        self.read_faults_transient_clear();
        self.crash_at_operation = None;
        self.crashed = false;
    }

    /// At a crash, the creations not yet durable survive up to a point drawn from the seed;
    /// each one after it is undone, latest first: its segment is missing again, or as it was
    /// before it was replaced.
    fn creations_undo(&mut self) {
        let cut = self.rng.random_range(0..=self.created.len());
        self.digest.add(0xC4EA7E, cut as u64);
        let undone = self.created.split_off(cut);
        self.created.clear();
        for (id, previous) in undone.into_iter().rev() {
            match previous {
                Some(mut segment) => {
                    segment.current.copy_from_slice(&segment.durable);
                    segment.dirty.fill(false);
                    self.segments.insert(id, segment);
                }
                None => {
                    self.segments.remove(&id);
                }
            }
        }
    }

    /// The segments on the disk.
    /// Prints every valid block header of every segment, as reads see them now (for tracing
    /// one seed).
    pub fn headers_print(&self) {
        let sector = self.sector_size_bytes as usize;
        for (id, segment) in &self.segments {
            eprintln!("segment {id}");
            for at in (0..segment.current.len()).step_by(sector) {
                if let HeaderRead::Valid(header) = BlockHeader::decode(&segment.current[at..]) {
                    eprintln!(
                        "  {at:>8} {:?} lsn {} frags {} epoch {} flags {} size {} sum {:08x} prev \
                         {:08x}",
                        header.segment,
                        header.lsn_first,
                        header.fragment_count,
                        header.epoch,
                        header.flags,
                        header.size_bytes,
                        header.checksum_header,
                        header.checksum_previous
                    );
                }
            }
        }
    }

    pub fn segment_ids(&self) -> Vec<SegmentId> {
        self.segments.keys().copied().collect()
    }

    /// Removes every read fault (a repaired or replaced disk).
    pub fn read_faults_clear(&mut self) {
        self.read_faults.clear();
        self.taint_read_lsn = None;
    }

    /// Removes the read faults that do not outlive a crash or a restart; the persistent ones
    /// stay, one open fewer, and keep their taint.
    fn read_faults_transient_clear(&mut self) {
        self.read_faults.retain_mut(|fault| {
            fault.opens_left = fault.opens_left.saturating_sub(1);
            fault.opens_left > 0
        });
        self.taint_read_recompute();
    }

    /// The taint of the read faults held now.
    fn taint_read_recompute(&mut self) {
        self.taint_read_lsn = None;
        let held: Vec<(SegmentId, usize)> = self
            .read_faults
            .iter()
            .map(|fault| (fault.segment, fault.sector))
            .collect();
        for (segment, sector) in held {
            self.taint(segment, sector);
        }
    }

    /// Whether read faults are active.
    pub fn read_faults_active(&self) -> bool {
        !self.read_faults.is_empty()
    }

    /// The lowest LSN any active damage may have touched.
    pub fn taint_lsn(&self) -> Option<u64> {
        [
            self.taint_read_lsn,
            self.taint_write_lsn,
            self.taint_rest_lsn,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Independent damage events now in effect: active read faults, misdirected writes and
    /// damage at rest. One event never destroys both a record and the evidence that it was
    /// durable; two may, and the oracle then allows what damage alone explains.
    pub fn damage_events(&self) -> u32 {
        self.read_faults.len() as u32 + self.misdirects_tainting + self.rest_damages
    }

    /// Replaces one valid block of the durable image with a block of another history: the same
    /// place, sizes, epoch and `lsn_first`, another predecessor and other record bytes, both
    /// checksums right (a replica's block written into this log). Only the chain can tell.
    /// Returns false if no block with record bytes was found.
    pub fn foreign_block(&mut self) -> bool {
        let sector = self.sector_size_bytes as usize;
        let Some((segment, index)) = self.sector_written_pick() else {
            return false;
        };
        let bytes = &self.segments[&segment].current;
        let Some(start) = (0..=index)
            .rev()
            .take(BLOCK_SECTORS_LOOKBACK)
            .map(|at| at * sector)
            .find(|&at| matches!(BlockHeader::decode(&bytes[at..]), HeaderRead::Valid(_)))
        else {
            return false;
        };
        let HeaderRead::Valid(mut header) = BlockHeader::decode(&bytes[start..]) else {
            unreachable!("found above");
        };
        let size = header.size_bytes as usize;
        let body_size = header.body_size_bytes as usize;
        let frame_data = BLOCK_HEADER_SIZE_BYTES + FRAME_HEADER_SIZE_BYTES;
        let fits = header.sizes_valid(self.sector_size_bytes, header.block_size_bytes)
            && start + size <= bytes.len();
        if !fits || header.fragment_count == 0 || body_size <= FRAME_HEADER_SIZE_BYTES {
            return false;
        }
        let mut block = bytes[start..start + size].to_vec();
        // Other bytes in the first fragment's data: the frames still fit together.
        let (_, first_size) = format::frame_decode(&block[BLOCK_HEADER_SIZE_BYTES..]);
        if first_size == 0 || frame_data + first_size as usize > BLOCK_HEADER_SIZE_BYTES + body_size
        {
            return false;
        }
        let at = frame_data + self.rng.random_range(0..first_size as usize);
        block[at] ^= self.rng.random_range(1..=255u8);
        header.checksum_body =
            format::checksum(&block[BLOCK_HEADER_SIZE_BYTES..BLOCK_HEADER_SIZE_BYTES + body_size]);
        header.checksum_previous ^= self.rng.random_range(1..=u32::MAX);
        header.encode(&mut block);
        let lsn = header.lsn_first;
        self.taint_rest_lsn = Some(self.taint_rest_lsn.map_or(lsn, |taint| taint.min(lsn)));
        let target = self.segments.get_mut(&segment).expect("picked segment");
        target.current[start..start + size].copy_from_slice(&block);
        target.durable[start..start + size].copy_from_slice(&block);
        self.rest_damages += 1;
        self.fire(FaultClass::Foreign);
        self.digest.add(segment ^ start as u64, lsn);
        true
    }

    /// Writes a stray block: a valid block of another log that is further ahead (its LSNs and
    /// watermark far beyond this log's, a newer epoch), at the same offset in its segment as
    /// here, into sectors of one of this log's segments that were never written. Its header
    /// names its own place, so it is misplaced here. No taint: it damages nothing. Returns
    /// false if there was no room or no block to copy.
    pub fn stray_block(&mut self) -> bool {
        let sector = self.sector_size_bytes as usize;
        let Some((segment, index)) = self.sector_written_pick() else {
            return false;
        };
        let bytes = &self.segments[&segment].current;
        let HeaderRead::Valid(mut header) = BlockHeader::decode(&bytes[index * sector..]) else {
            return false;
        };
        let size = header.size_bytes as usize;
        if size != sector {
            return false;
        }
        let mut block = bytes[index * sector..(index + 1) * sector].to_vec();
        let target = self.segments.get(&segment).expect("picked segment");
        let last_written = target
            .written
            .iter()
            .rposition(|&written| written)
            .unwrap_or(0);
        let room = target.written.len();
        if last_written + 2 >= room {
            return false;
        }
        let landing = self.rng.random_range(last_written + 2..room);
        header.lsn_first += 1 << 20;
        header.lsn_durable = header.lsn_first;
        header.epoch = header.epoch.saturating_add(1000);
        header.encode(&mut block);
        let target = self.segments.get_mut(&segment).expect("picked segment");
        let range = landing * sector..(landing + 1) * sector;
        target.current[range.clone()].copy_from_slice(&block);
        target.durable[range].copy_from_slice(&block);
        target.written[landing] = true;
        self.fire(FaultClass::Stray);
        self.digest.add(segment ^ landing as u64, header.lsn_first);
        true
    }

    /// Damages one written sector of the durable image, as bit rot or a stray write would
    /// while the log is at rest: a flipped bit, zeros, or a copy of another written sector.
    /// Records the lowest LSN the block covering it may hold as a taint.
    pub fn damage_at_rest(&mut self) {
        let Some((segment, sector)) = self.sector_written_pick() else {
            return;
        };
        let size = self.sector_size_bytes as usize;
        if let Some(lsn) = self.block_lsn_covering(segment, sector) {
            self.taint_rest_lsn = Some(self.taint_rest_lsn.map_or(lsn, |taint| taint.min(lsn)));
        }
        let kind = self.rng.random_range(0..3u8);
        let source = self.sector_written_pick();
        let byte = self.rng.random_range(0..size);
        let bit = self.rng.random_range(0..8);
        let mut bytes =
            self.segments[&segment].current[sector * size..(sector + 1) * size].to_vec();
        match (kind, source) {
            (0, _) | (2.., None) => bytes[byte] ^= 1 << bit,
            (1, _) => bytes.fill(0),
            (_, Some((from, from_sector))) => bytes.copy_from_slice(
                &self.segments[&from].current[from_sector * size..(from_sector + 1) * size],
            ),
        }
        let target = self.segments.get_mut(&segment).expect("picked segment");
        let range = sector * size..(sector + 1) * size;
        assert!(!target.dirty[sector], "damage at rest hits durable sectors");
        target.current[range.clone()].copy_from_slice(&bytes);
        target.durable[range].copy_from_slice(&bytes);
        self.rest_damages += 1;
        self.fire(FaultClass::AtRest);
        self.digest.add(segment ^ sector as u64, u64::from(kind));
    }

    /// A clean restart without power loss (the process ended; the page cache survives).
    pub fn restart(&mut self) {
        self.crash_at_operation = None;
        self.crashed = false;
        self.read_faults_transient_clear();
        while self.complete_next().is_some() {}
    }

    /// The process dies at the crash point (a SIGKILL) but the OS lives: what it submitted
    /// completes, nothing unsynced is lost; a power loss may still come later.
    pub fn kill(&mut self) {
        self.fire(FaultClass::Kill);
        self.restart();
    }

    /// Draws read faults for the next open: a bounded set of sectors that read back wrong.
    /// Persistent ones drawn at an earlier open stay and count towards the bound.
    pub fn read_faults_draw(&mut self) {
        self.read_faults.retain(|fault| fault.opens_left > 0);
        self.taint_read_recompute();
        let count = self.faults.read_fault_sectors_max;
        for _ in self.read_faults.len() as u32..count {
            if !self.rng.random_bool(self.faults.read_fault_rate) {
                continue;
            }
            let Some((segment, sector)) = self.sector_written_pick() else {
                return;
            };
            let flip = if self.rng.random_bool(0.5) {
                let bit = self.rng.random_range(0..8);
                Some((
                    self.rng.random_range(0..self.sector_size_bytes as usize),
                    1u8 << bit,
                ))
            } else {
                None
            };
            self.taint(segment, sector);
            let persistent = self.faults.read_persistent_rate;
            let opens_left = match flip.is_some() && persistent > 0.0 {
                true if self.rng.random_bool(persistent) => {
                    self.fire(FaultClass::ReadPersistent);
                    self.rng.random_range(2..5)
                }
                _ => 0,
            };
            self.read_faults.push(ReadFault {
                segment,
                sector,
                flip,
                opens_left,
            });
        }
    }

    fn sector_written_pick(&mut self) -> Option<(SegmentId, usize)> {
        let candidates: Vec<(SegmentId, usize)> = self
            .segments
            .iter()
            .flat_map(|(&id, segment)| {
                segment
                    .written
                    .iter()
                    .enumerate()
                    .filter(|(_, &written)| written)
                    .map(move |(index, _)| (id, index))
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        Some(candidates[self.rng.random_range(0..candidates.len())])
    }

    /// Records the lowest LSN the block covering a sector may hold.
    fn taint(&mut self, segment: SegmentId, sector: usize) {
        if let Some(lsn) = self.block_lsn_covering(segment, sector) {
            self.taint_read_lsn = Some(self.taint_read_lsn.map_or(lsn, |taint| taint.min(lsn)));
        }
    }

    /// The lowest `lsn_first` of the valid blocks whose extent covers `sector`, looking back
    /// further than the swarm's largest block; `None` if no valid block covers it.
    fn block_lsn_covering(&self, segment: SegmentId, sector: usize) -> Option<u64> {
        let bytes = &self.segments.get(&segment)?.current;
        let sector_size = self.sector_size_bytes as usize;
        let mut lowest = None;
        for start in (0..=sector).rev().take(BLOCK_SECTORS_LOOKBACK) {
            let at = start * sector_size;
            if let HeaderRead::Valid(header) = BlockHeader::decode(&bytes[at..]) {
                if start * sector_size + header.size_bytes as usize > sector * sector_size {
                    let lsn = header.lsn_first;
                    lowest = Some(lowest.map_or(lsn, |low: u64| low.min(lsn)));
                }
            }
        }
        lowest
    }

    fn write_apply(&mut self, segment: SegmentId, offset_bytes: u64, data: &[u8]) {
        let sector = self.sector_size_bytes as usize;
        let Some(target) = self.segments.get_mut(&segment) else {
            return;
        };
        let start = offset_bytes as usize;
        target.current[start..start + data.len()].copy_from_slice(data);
        for index in start / sector..(start + data.len()) / sector {
            target.dirty[index] = true;
            target.written[index] = true;
        }
        // A read fault belongs to the sector, so it now damages what was just written there.
        let sectors = start / sector..(start + data.len()) / sector;
        let faulty: Vec<usize> = self
            .read_faults
            .iter()
            .filter(|fault| fault.segment == segment && sectors.contains(&fault.sector))
            .map(|fault| fault.sector)
            .collect();
        for sector_index in faulty {
            self.taint(segment, sector_index);
        }
    }

    /// Completes the pending operation due first; returns it.
    fn complete_next(&mut self) -> Option<Completion> {
        let index = (0..self.pending.len()).min_by_key(|&index| {
            let pending = &self.pending[index];
            (pending.complete_at_ns, pending.sequence)
        })?;
        if self
            .pending
            .iter()
            .any(|other| other.sequence < self.pending[index].sequence)
        {
            self.fire(FaultClass::Reorder);
        }
        let pending = self.pending.swap_remove(index);
        self.now_ns
            .set(self.now_ns.get().max(pending.complete_at_ns));
        self.digest.add(pending.token, pending.complete_at_ns);
        let result = match pending.errno {
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        };
        let kind = match pending.operation {
            Operation::Write {
                segment,
                buffer,
                target_bytes,
                landed_bytes,
                ..
            } => {
                if pending.errno.is_none() {
                    self.write_apply(segment, target_bytes, &buffer[..landed_bytes]);
                }
                CompletionKind::Write { buffer }
            }
            Operation::Sync {
                segment,
                covers,
                fails,
            } => {
                if !fails {
                    self.sync_apply(segment, &covers);
                    self.creations_durable(segment);
                }
                CompletionKind::Sync
            }
        };
        Some(Completion {
            token: pending.token,
            kind,
            result,
        })
    }

    /// A sync of `segment` completed: its creation is durable, and every one before it.
    fn creations_durable(&mut self, segment: SegmentId) {
        if let Some(last) = self.created.iter().rposition(|(id, _)| *id == segment) {
            self.created.drain(..=last);
        }
    }

    fn sync_apply(&mut self, segment: SegmentId, covers: &[usize]) {
        let sector = self.sector_size_bytes as usize;
        let Some(target) = self.segments.get_mut(&segment) else {
            return;
        };
        for &index in covers {
            let range = index * sector..(index + 1) * sector;
            target.durable[range.clone()].copy_from_slice(&target.current[range]);
            target.dirty[index] = false;
        }
    }

    /// Whether a write fails, and with what: EIO, or ENOSPC (a full filesystem).
    fn write_errno_draw(&mut self, dead: bool) -> Option<i32> {
        if dead {
            return Some(5);
        }
        if self.rng.random_bool(self.faults.write_error_rate) {
            self.fire(FaultClass::WriteError);
            return Some(5);
        }
        let rate = self.faults.no_space_write_rate;
        if rate > 0.0 && self.rng.random_bool(rate) {
            self.fire(FaultClass::NoSpaceWrite);
            return Some(28);
        }
        None
    }

    /// How much of a write that reports success lands: all of it, none (a lost write), or a
    /// prefix of its sectors (a short write).
    fn landed_draw(&mut self, size_bytes: usize) -> usize {
        let lost = self.faults.lost_write_rate;
        if lost > 0.0 && self.rng.random_bool(lost) {
            self.fire(FaultClass::LostWrite);
            return 0;
        }
        let sectors = size_bytes / self.sector_size_bytes as usize;
        let short = self.faults.short_write_rate;
        if sectors > 1 && short > 0.0 && self.rng.random_bool(short) {
            self.fire(FaultClass::ShortWrite);
            return self.rng.random_range(1..sectors) * self.sector_size_bytes as usize;
        }
        size_bytes
    }

    fn misdirect_target(
        &mut self,
        segment: SegmentId,
        offset_bytes: u64,
        size_bytes: usize,
    ) -> u64 {
        if !self.rng.random_bool(self.faults.misdirect_rate) {
            return offset_bytes;
        }
        let sector = self.sector_size_bytes as usize;
        let Some(target) = self.segments.get(&segment) else {
            return offset_bytes;
        };
        let sectors = size_bytes / sector;
        let last_written = target
            .written
            .iter()
            .rposition(|&written| written)
            .map_or(0, |at| at + 1);
        let intended = offset_bytes as usize / sector;
        let start = last_written.max(intended + sectors);
        if start + sectors > target.written.len() {
            return offset_bytes;
        }
        let landing = self
            .rng
            .random_range(start..=target.written.len() - sectors);
        self.fire(FaultClass::Misdirect);
        // The intended sectors keep their old content: what the write was to hold there is
        // lost, which the caller records as a taint from the write's first LSN.
        (landing * sector) as u64
    }
}

impl Clock for SimDisk {
    fn now_ns(&self) -> u64 {
        self.now_ns.get()
    }
}

impl Storage for SimDisk {
    fn sector_size_bytes(&self) -> u32 {
        self.sector_size_bytes
    }

    fn metadata_read(&mut self, buffer: &mut [u8]) -> io::Result<bool> {
        assert_aligned(self.sector_size_bytes, 0, buffer);
        if self.step() {
            return Err(Self::dead());
        }
        match &self.metadata {
            None => Ok(false),
            Some(metadata) => {
                buffer.copy_from_slice(&metadata[..buffer.len()]);
                Ok(true)
            }
        }
    }

    fn metadata_write(&mut self, buffer: &[u8]) -> io::Result<()> {
        assert_aligned(self.sector_size_bytes, 0, buffer);
        // The temporary file: a crash tears it, and leaves the old metadata.
        let alive = !self.crashed;
        if self.step() {
            if alive {
                self.fire(FaultClass::MetadataCut);
            }
            return Err(Self::dead());
        }
        let old = self.metadata.replace(buffer.to_vec());
        // Renamed over the old one; a crash before the directory's sync keeps either.
        if self.step() {
            self.fire(FaultClass::MetadataCut);
            let keep_new = self.rng.random_bool(0.5);
            self.digest.add(0x3E7A, u64::from(keep_new));
            if !keep_new {
                self.metadata = old;
            }
            return Err(Self::dead());
        }
        // Durable when it returns, with every directory change before it.
        self.created.clear();
        Ok(())
    }

    fn segment_list(&mut self) -> io::Result<Vec<SegmentId>> {
        if self.step() {
            return Err(Self::dead());
        }
        Ok(self.segments.keys().copied().collect())
    }

    fn segment_create_with(
        &mut self,
        segment: SegmentId,
        size_bytes: u64,
        head: &[u8],
    ) -> io::Result<()> {
        assert_aligned(self.sector_size_bytes, 0, head);
        if self.step() {
            return Err(Self::dead());
        }
        if self.rng.random_bool(self.faults.no_space_rate) {
            self.fire(FaultClass::NoSpace);
            return Err(io::Error::from_raw_os_error(28));
        }
        let sectors = size_bytes as usize / self.sector_size_bytes as usize;
        self.digest.add(0x5E6, segment);
        let mut made = Segment {
            current: vec![0; size_bytes as usize],
            durable: vec![0; size_bytes as usize],
            dirty: vec![false; sectors],
            written: vec![false; sectors],
        };
        // The head comes with the creation, whole: a crash undoes both or neither.
        made.current[..head.len()].copy_from_slice(head);
        made.durable[..head.len()].copy_from_slice(head);
        let head_sectors = head.len() / self.sector_size_bytes as usize;
        made.written[..head_sectors].fill(true);
        let previous = self.segments.insert(segment, made);
        self.created.push((segment, previous));
        // A read fault belongs to the sector, so it now damages the head written there.
        let faulty: Vec<usize> = self
            .read_faults
            .iter()
            .filter(|fault| fault.segment == segment && fault.sector < head_sectors)
            .map(|fault| fault.sector)
            .collect();
        for sector_index in faulty {
            self.taint(segment, sector_index);
        }
        Ok(())
    }

    fn segment_remove(&mut self, segment: SegmentId) -> io::Result<()> {
        if self.step() {
            return Err(Self::dead());
        }
        self.digest.add(0x8E3, segment);
        // Durable when it returns, with every directory change before it.
        self.created.clear();
        self.segments
            .remove(&segment)
            .map(|_| ())
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn segment_size_bytes(&mut self, segment: SegmentId) -> io::Result<u64> {
        if self.step() {
            return Err(Self::dead());
        }
        self.segments
            .get(&segment)
            .map(|segment| segment.current.len() as u64)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn read(&mut self, segment: SegmentId, offset_bytes: u64, buffer: &mut [u8]) -> io::Result<()> {
        assert_aligned(self.sector_size_bytes, offset_bytes, buffer);
        if self.step() {
            return Err(Self::dead());
        }
        let latency = self.latency_ns();
        self.advance_ns(latency / 4);
        let sector = self.sector_size_bytes as usize;
        let start = offset_bytes as usize;
        let Some(source) = self.segments.get(&segment) else {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        };
        let Some(bytes) = source.current.get(start..start + buffer.len()) else {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        };
        buffer.copy_from_slice(bytes);
        let first = start / sector;
        let last = first + buffer.len() / sector;
        let hits: Vec<ReadFault> = self
            .read_faults
            .iter()
            .filter(|fault| fault.segment == segment && (first..last).contains(&fault.sector))
            .copied()
            .collect();
        for fault in hits {
            match fault.flip {
                None => {
                    self.fire(FaultClass::ReadError);
                    return Err(io::Error::from_raw_os_error(5));
                }
                Some((byte, mask)) => {
                    self.fire(FaultClass::BitFlip);
                    buffer[(fault.sector - first) * sector + byte] ^= mask;
                }
            }
        }
        Ok(())
    }

    /// As a backend that read ahead does, half the time: hands back another buffer, whose
    /// bytes outside the range read are garbage, so that a caller relying on them is caught.
    fn read_exchange(
        &mut self,
        segment: SegmentId,
        offset_bytes: u64,
        buffer: &mut AlignedBuffer,
        at: usize,
        size_bytes: usize,
    ) -> io::Result<()> {
        if !self.rng.random_bool(0.5) {
            return self.read(segment, offset_bytes, &mut buffer[at..at + size_bytes]);
        }
        let mut other = match self.exchange_spare.take() {
            Some(other) if other.len() == buffer.len() => other,
            _ => AlignedBuffer::new(buffer.len(), buffer.alignment_bytes()),
        };
        other.fill(0xA5);
        let result = self.read(segment, offset_bytes, &mut other[at..at + size_bytes]);
        if result.is_ok() {
            std::mem::swap(buffer, &mut other);
        }
        self.exchange_spare = Some(other);
        result
    }

    fn write_submit(
        &mut self,
        token: u64,
        segment: SegmentId,
        offset_bytes: u64,
        buffer: AlignedBuffer,
        size_bytes: usize,
    ) {
        assert_aligned(self.sector_size_bytes, offset_bytes, &buffer[..size_bytes]);
        let dead = self.step();
        let overlapping = self.pending.iter().any(|pending| match &pending.operation {
            Operation::Write {
                segment: other,
                offset_bytes: other_offset,
                size_bytes: other_size,
                ..
            } => {
                *other == segment
                    && offset_bytes < other_offset + *other_size as u64
                    && *other_offset < offset_bytes + size_bytes as u64
            }
            Operation::Sync { .. } => false,
        });
        assert!(!overlapping, "overlapping writes in flight");
        let errno = self.write_errno_draw(dead);
        let target_bytes = match errno {
            Some(_) => offset_bytes,
            None => self.misdirect_target(segment, offset_bytes, size_bytes),
        };
        let landed_bytes = match errno {
            Some(_) => 0,
            None => self.landed_draw(size_bytes),
        };
        if target_bytes != offset_bytes || landed_bytes < size_bytes {
            // What the write was to hold where it did not land is lost: a taint from the first
            // block it did not deliver.
            let at = if target_bytes != offset_bytes {
                0
            } else {
                landed_bytes
            };
            if let Some(lsn) = lsn_at(&buffer[..size_bytes], at) {
                self.taint_write_lsn = Some(self.taint_write_lsn.map_or(lsn, |t| t.min(lsn)));
                self.misdirects_tainting += 1;
                self.write_damages_total += 1;
            }
        }
        let latency = self.latency_ns();
        self.digest
            .add(token ^ segment, offset_bytes ^ size_bytes as u64);
        self.sequence += 1;
        self.pending.push(Pending {
            token,
            complete_at_ns: self.now_ns.get() + latency,
            sequence: self.sequence,
            operation: Operation::Write {
                segment,
                offset_bytes,
                buffer,
                size_bytes,
                target_bytes,
                landed_bytes,
            },
            errno,
        });
    }

    fn sync_submit(&mut self, token: u64, segment: SegmentId) {
        let dead = self.step();
        let fails = dead || self.rng.random_bool(self.faults.sync_error_rate);
        if fails && !dead {
            self.fire(FaultClass::SyncError);
        }
        let covers = self
            .segments
            .get(&segment)
            .map(|target| {
                (0..target.dirty.len())
                    .filter(|&index| target.dirty[index])
                    .collect()
            })
            .unwrap_or_default();
        let latency = self.latency_ns();
        self.digest.add(token, 0x5C);
        self.sequence += 1;
        self.pending.push(Pending {
            token,
            complete_at_ns: self.now_ns.get() + latency,
            sequence: self.sequence,
            operation: Operation::Sync {
                segment,
                covers,
                fails,
            },
            errno: fails.then_some(5),
        });
    }

    fn poll(&mut self, wait: bool) -> Option<Completion> {
        let due = self
            .pending
            .iter()
            .map(|pending| pending.complete_at_ns)
            .min()?;
        if !wait && due > self.now_ns.get() {
            return None;
        }
        self.complete_next()
    }
}

/// The `lsn_first` of the block of a write buffer that holds byte `at` (or begins after it),
/// if the buffer's blocks decode up to there.
fn lsn_at(bytes: &[u8], at: usize) -> Option<u64> {
    let mut start = 0;
    while start + BLOCK_HEADER_SIZE_BYTES <= bytes.len() {
        let HeaderRead::Valid(header) = BlockHeader::decode(&bytes[start..]) else {
            return None;
        };
        let end = start + header.size_bytes as usize;
        if at < end || header.size_bytes == 0 {
            return Some(header.lsn_first);
        }
        start = end;
    }
    None
}

/// The log's handle on a shared [`SimDisk`]: the simulator keeps another handle, so that it
/// can crash the disk, inspect it, and reopen after an `open` that failed.
#[derive(Clone)]
pub struct SimStorage(pub Rc<RefCell<SimDisk>>);

impl Clock for SimStorage {
    fn now_ns(&self) -> u64 {
        self.0.borrow().now_ns()
    }
}

impl Storage for SimStorage {
    fn sector_size_bytes(&self) -> u32 {
        self.0.borrow().sector_size_bytes()
    }
    fn metadata_read(&mut self, buffer: &mut [u8]) -> io::Result<bool> {
        self.0.borrow_mut().metadata_read(buffer)
    }
    fn metadata_write(&mut self, buffer: &[u8]) -> io::Result<()> {
        self.0.borrow_mut().metadata_write(buffer)
    }
    fn segment_list(&mut self) -> io::Result<Vec<SegmentId>> {
        self.0.borrow_mut().segment_list()
    }
    fn segment_create_with(
        &mut self,
        segment: SegmentId,
        size_bytes: u64,
        head: &[u8],
    ) -> io::Result<()> {
        self.0
            .borrow_mut()
            .segment_create_with(segment, size_bytes, head)
    }
    fn segment_remove(&mut self, segment: SegmentId) -> io::Result<()> {
        self.0.borrow_mut().segment_remove(segment)
    }
    fn segment_size_bytes(&mut self, segment: SegmentId) -> io::Result<u64> {
        self.0.borrow_mut().segment_size_bytes(segment)
    }
    fn read(&mut self, segment: SegmentId, offset_bytes: u64, buffer: &mut [u8]) -> io::Result<()> {
        self.0.borrow_mut().read(segment, offset_bytes, buffer)
    }
    fn read_exchange(
        &mut self,
        segment: SegmentId,
        offset_bytes: u64,
        buffer: &mut AlignedBuffer,
        at: usize,
        size_bytes: usize,
    ) -> io::Result<()> {
        self.0
            .borrow_mut()
            .read_exchange(segment, offset_bytes, buffer, at, size_bytes)
    }
    fn write_submit(
        &mut self,
        token: u64,
        segment: SegmentId,
        offset_bytes: u64,
        buffer: AlignedBuffer,
        size_bytes: usize,
    ) {
        self.0
            .borrow_mut()
            .write_submit(token, segment, offset_bytes, buffer, size_bytes)
    }
    fn sync_submit(&mut self, token: u64, segment: SegmentId) {
        self.0.borrow_mut().sync_submit(token, segment)
    }
    fn poll(&mut self, wait: bool) -> Option<Completion> {
        self.0.borrow_mut().poll(wait)
    }
}
