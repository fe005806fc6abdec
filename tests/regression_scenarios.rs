//! Regressions that pin a scenario, not a seed. A simulator seed means what the simulator
//! draws from it, which changes whenever the drawing changes; these scripts of operations and
//! faults do not. Each names the seed that found the bug and the planted bug
//! (`src/planted.rs`) that fails it, which `.ci/planted` proves.

mod common;

use ballast_log::storage::{
    AlignedBuffer, Clock, Completion, MemStorage, SectorFate, SegmentId, Storage,
};
use ballast_log::{Config, Error, Log, RecoveryMode, Verdict};
use std::io;

/// The tiny configuration: 512-byte sectors, 1 KiB blocks, 4 KiB segments.
fn config() -> Config {
    Config {
        attest_idle_ns: None,
        ..common::config_tiny()
    }
}

/// A storage whose reads of chosen sectors come back with a flipped bit, as a transient read
/// fault does: the bytes on the medium are intact, and the next open without the fault reads
/// them well.
struct FlakyReads {
    inner: MemStorage,
    /// (segment, byte offset of the sector): reads covering it flip a bit there.
    flips: Vec<(SegmentId, u64)>,
}

impl Clock for FlakyReads {
    fn now_ns(&self) -> u64 {
        self.inner.now_ns()
    }
}

impl Storage for FlakyReads {
    fn sector_size_bytes(&self) -> u32 {
        self.inner.sector_size_bytes()
    }
    fn metadata_read(&mut self, buffer: &mut [u8]) -> io::Result<bool> {
        self.inner.metadata_read(buffer)
    }
    fn metadata_write(&mut self, buffer: &[u8]) -> io::Result<()> {
        self.inner.metadata_write(buffer)
    }
    fn segment_list(&mut self) -> io::Result<Vec<SegmentId>> {
        self.inner.segment_list()
    }
    fn segment_create_with(
        &mut self,
        segment: SegmentId,
        size_bytes: u64,
        head: &[u8],
    ) -> io::Result<()> {
        self.inner.segment_create_with(segment, size_bytes, head)
    }
    fn segment_remove(&mut self, segment: SegmentId) -> io::Result<()> {
        self.inner.segment_remove(segment)
    }
    fn segment_size_bytes(&mut self, segment: SegmentId) -> io::Result<u64> {
        self.inner.segment_size_bytes(segment)
    }
    fn read(&mut self, segment: SegmentId, offset_bytes: u64, buffer: &mut [u8]) -> io::Result<()> {
        self.inner.read(segment, offset_bytes, buffer)?;
        let end = offset_bytes + buffer.len() as u64;
        for &(flipped, at) in &self.flips {
            if flipped == segment && (offset_bytes..end).contains(&at) {
                buffer[(at - offset_bytes) as usize + 20] ^= 0x04;
            }
        }
        Ok(())
    }
    fn write_submit(
        &mut self,
        token: u64,
        segment: SegmentId,
        offset_bytes: u64,
        buffer: AlignedBuffer,
        size_bytes: usize,
    ) {
        self.inner
            .write_submit(token, segment, offset_bytes, buffer, size_bytes);
    }
    fn sync_submit(&mut self, token: u64, segment: SegmentId) {
        self.inner.sync_submit(token, segment);
    }
    fn poll(&mut self, wait: bool) -> Option<Completion> {
        self.inner.poll(wait)
    }
}

fn open(storage: MemStorage, mode: RecoveryMode) -> Result<Log<MemStorage>, Error> {
    let config = Config {
        recovery_mode: mode,
        ..config()
    };
    Log::open(config, storage)
}

fn open_flaky(storage: MemStorage, flips: &[(SegmentId, u64)], mode: RecoveryMode) -> MemStorage {
    let config = Config {
        recovery_mode: mode,
        ..config()
    };
    let storage = FlakyReads {
        inner: storage,
        flips: flips.to_vec(),
    };
    Log::open(config, storage).unwrap().into_storage().inner
}

fn append_flush(log: &mut Log<MemStorage>, record: &[u8]) -> u64 {
    let lsn = log.append(record).unwrap();
    log.flush().unwrap();
    lsn
}

fn read(log: &mut Log<MemStorage>, lsn: u64) -> Vec<u8> {
    let mut buffer = vec![0; 2048];
    let size = log.read(lsn, &mut buffer).unwrap();
    buffer.truncate(size);
    buffer
}

/// Seed 52777 (planted bug `epoch-from-blocks-only`). An open whose transient read faults hid
/// every block of the newest epoch took that epoch again; its seal then shared an epoch with
/// an older block after it, which the next open, with the faults gone, took as attesting
/// records beyond the end, and `Strict` refused a healthy log. The epoch now comes from the
/// metadata's `epoch_max` too: every open takes a newer one than any earlier open took.
#[test]
fn an_epoch_hidden_by_read_faults_is_not_taken_again() {
    // Open 1 (epoch 1): record 0. Open 2 (epoch 2): record 1, two sectors long, then record 2,
    // in their own flushes, each a block of epoch 2. Each process dies without closing.
    let mut log = open(MemStorage::new(512), RecoveryMode::Strict).unwrap();
    append_flush(&mut log, b"zero");
    let mut log = open(log.into_storage(), RecoveryMode::Strict).unwrap();
    assert_eq!(log.recovery_report().epoch, 2);
    append_flush(&mut log, &[0x11; 700]);
    append_flush(&mut log, b"two");
    let storage = log.into_storage();
    // Open 3 reads both epoch-2 headers badly (blocks at 512 and 1536): the walk ends at 512,
    // the scan sees nothing of epoch 2, and the open seals the end.
    let storage = open_flaky(storage, &[(0, 512), (0, 1536)], RecoveryMode::Strict);
    let log = open(storage, RecoveryMode::Strict).expect("a healthy log opens");
    let report = *log.recovery_report();
    assert!(
        report.epoch >= 4,
        "open 3 took epoch 3 at least: {report:?}"
    );
    assert_eq!(
        log.next_lsn(),
        1,
        "the hidden records were dropped by open 3"
    );
}

/// Seed 25 (planted bug `seal-skipped`). A torn tail decided on a transient bit flip must
/// stay decided: open 2 dropped record 1 and appended a new record 1; with the fault gone,
/// open 3 must find the new record, not the old one back. The seal block makes it final.
#[test]
fn a_torn_tail_decided_on_a_bit_flip_does_not_come_back() {
    let mut log = open(MemStorage::new(512), RecoveryMode::Strict).unwrap();
    append_flush(&mut log, b"zero");
    append_flush(&mut log, b"one, the first");
    let storage = open_flaky(log.into_storage(), &[(0, 512)], RecoveryMode::Strict);
    let mut log = open(storage, RecoveryMode::Strict).unwrap();
    assert_eq!(log.next_lsn(), 1);
    let report = *log.recovery_report();
    assert_eq!(report.end, Verdict::TornTail);
    append_flush(&mut log, b"one, the second");
    let mut log = open(log.into_storage(), RecoveryMode::Strict).unwrap();
    assert_eq!(log.next_lsn(), 2);
    assert_eq!(read(&mut log, 1), b"one, the second");
}

/// Seed 55 (planted bug `seal-skipped`). A point-in-time loss must stay final: open 2, in
/// `PointInTime`, dropped records 1 and 2 after a bit flip in record 1's block (record 2's
/// block attested it) and appended a new record 1. A strict open 3, the fault gone, must
/// open, with the new record 1 and no report of the old damage.
#[test]
fn a_point_in_time_loss_decided_on_a_bit_flip_does_not_come_back() {
    let mut log = open(MemStorage::new(512), RecoveryMode::Strict).unwrap();
    append_flush(&mut log, b"zero");
    append_flush(&mut log, b"one, the first");
    append_flush(&mut log, b"two");
    let storage = log.into_storage();
    let config = Config {
        recovery_mode: RecoveryMode::PointInTime,
        ..config()
    };
    let flaky = FlakyReads {
        inner: storage,
        flips: vec![(0, 512)],
    };
    let log = Log::open(config, flaky).unwrap();
    let report = *log.recovery_report();
    assert_eq!((report.end, report.lsn_next), (Verdict::Lose, 1));
    assert_eq!(
        report.lsn_lost,
        Some(2),
        "record 2's block attests record 1"
    );
    let mut log = open(log.into_storage().inner, RecoveryMode::PointInTime).unwrap();
    append_flush(&mut log, b"one, the second");
    let mut log = open(log.into_storage(), RecoveryMode::Strict).expect("the loss is final");
    assert_eq!(log.next_lsn(), 2);
    assert_eq!(read(&mut log, 1), b"one, the second");
}

/// Seed 738, later 3132 (planted bug `recovery-sync-kept-after-seal`). A writer is killed with
/// blocks written and not synced: the next open reads them and keeps them. It must make them
/// durable before the metadata's checkpoint (or a seal) attests them; a power loss at any
/// point of that open must leave a log the open after it recovers without `Corruption`, with
/// every acknowledged record. With the sync moved after the metadata, a power loss in between
/// lost the kept blocks the checkpoint had attested.
#[test]
fn an_open_after_a_kill_makes_what_it_keeps_durable_before_attesting_it() {
    let record = vec![0x5A; 700];
    let mut changes = 0;
    loop {
        let mut log = open(MemStorage::new(512), RecoveryMode::Strict).unwrap();
        for _ in 0..3 {
            append_flush(&mut log, &record);
        }
        let acknowledged = log.durable_lsn();
        for _ in 0..8 {
            log.append(&record).unwrap();
        }
        // Killed: what was written stays readable, and nothing more is durable.
        let mut storage = log.into_storage();
        storage.kill();
        storage.die_after(Some(changes));
        let config = Config {
            recovery_mode: RecoveryMode::Strict,
            ..config()
        };
        let done = match Log::open(config, &mut storage) {
            Ok(log) => {
                assert!(
                    log.next_lsn() > acknowledged,
                    "the kill left written blocks for the open to keep"
                );
                true
            }
            Err(_) => false,
        };
        // The power goes out: every sector not synced is lost.
        storage.die_after(None);
        storage.crash(|_, _| SectorFate::Lost);
        let mut log = match open(storage, RecoveryMode::Strict) {
            Ok(log) => log,
            Err(error) => panic!("power loss after {changes} changes of the open: {error}"),
        };
        assert!(log.next_lsn() >= acknowledged);
        for lsn in 0..log.next_lsn() {
            assert_eq!(read(&mut log, lsn), record, "record {lsn}");
        }
        if done {
            break;
        }
        changes += 1;
    }
    assert!(changes >= 2, "the open made {changes} changes");
}
