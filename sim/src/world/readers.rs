//! Simulated tail readers: between the workload's operations they read the tail cache that
//! the simulated producers' commits fill, as `TailReader`s of a `SharedLog` read it from
//! other threads, and the oracle checks every record they are served: durable, not dropped by
//! a truncation, and byte for byte the record the model holds at that LSN.
//!
//! They draw from a stream of their own (`Seeds::readers`), so that turning them on left
//! every other draw of every seed as it was.

use super::{wrong, Checked, World};
use crate::swarm::Swarm;
use ballast_log::tail::TailRead;
use ballast_log::Lsn;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Simulated readers, at most.
const READERS_MAX: usize = 4;

/// Records one reader reads in one step, at most.
const READ_RUN_MAX: u32 = 8;

pub(super) struct TailReaders {
    rng: ChaCha8Rng,
    /// The LSN each reader reads next.
    positions: Vec<Lsn>,
    /// Records read from the tail cache and checked.
    pub hits: u64,
}

impl TailReaders {
    /// Draws the readers, and the tail cache's limits into the swarm's shared workload (a
    /// seed without simulated producers has neither); and whether the log keeps a sector
    /// table, and its sector cache's size (the readers' stream draws everything that came
    /// after the other streams).
    pub fn draw(mut rng: ChaCha8Rng, swarm: &mut Swarm) -> TailReaders {
        swarm.config.sector_table = rng.random_bool(0.8);
        // A sector cache of a few sectors, so that it evicts all the time, in most seeds.
        let sector = u64::from(swarm.config.sector_size_bytes);
        swarm.config.cache_size_bytes = match rng.random_bool(0.8) {
            true => sector * rng.random_range(1..=32),
            false => 0,
        };
        let mut positions = Vec::new();
        if let Some(shared) = &mut swarm.workload.shared {
            let options = &mut shared.options;
            if rng.random_bool(0.9) {
                let record_max = swarm.config.record_size_bytes_max;
                options.tail_cache_size_bytes = rng.random_range(1..=record_max * 16);
                options.tail_cache_record_count_max = rng.random_range(1..=64);
            }
            positions.resize(rng.random_range(1..=READERS_MAX), 0);
        }
        TailReaders {
            rng,
            positions,
            hits: 0,
        }
    }
}

impl World {
    /// Each reader, in turn, reads a short run of records from the tail cache; one that
    /// misses (the record is not held as durable) jumps to an LSN drawn near the log's live
    /// range, below its first included, where the cache must miss.
    pub(super) fn tail_readers_step(&mut self) -> Checked {
        let alive = self.log.is_some() && !self.disk.borrow().crashed();
        if !alive || self.producers.is_none() {
            return Ok(());
        }
        let (first, next, failed) = {
            let log = self.log.as_ref().expect("alive");
            (log.first_lsn(), log.next_lsn(), log.is_failed())
        };
        let tail = &mut self.producers.as_mut().expect("producers").tail;
        // As `SharedLog` does under the log's lock after every change to the log.
        tail.follow(first, next);
        if failed {
            tail.stop();
        }
        for reader in 0..self.readers.positions.len() {
            let run = self.readers.rng.random_range(1..=READ_RUN_MAX);
            for _ in 0..run {
                if !self.tail_read_one(reader)? {
                    let from = first.saturating_sub(8);
                    self.readers.positions[reader] = self.readers.rng.random_range(from..=next);
                    break;
                }
            }
        }
        Ok(())
    }

    /// Reads the reader's next record from the tail cache and checks it; `false` on a miss.
    fn tail_read_one(&mut self, reader: usize) -> Result<bool, crate::world::Failure> {
        let lsn = self.readers.positions[reader];
        let mut buffer = std::mem::take(&mut self.read_buffer);
        let read = {
            let tail = &self.producers.as_ref().expect("producers").tail;
            tail.read(lsn, &mut buffer)
        };
        let checked = match read {
            TailRead::Miss | TailRead::NotYet => Ok(false),
            TailRead::TooSmall(size) => Err(wrong(format!(
                "the tail cache holds record {lsn} of {size} bytes, over the record limit"
            ))),
            TailRead::Hit(size) => self.tail_hit_check(lsn, &buffer[..size]).map(|()| true),
        };
        self.read_buffer = buffer;
        if checked == Ok(true) {
            self.readers.positions[reader] = lsn + 1;
            self.readers.hits += 1;
        }
        checked
    }

    fn tail_hit_check(&mut self, lsn: Lsn, data: &[u8]) -> Checked {
        let model = &self.model;
        if lsn < model.first {
            return Err(wrong(format!(
                "a tail reader read record {lsn}, below the first {}: a truncation dropped it",
                model.first
            )));
        }
        if lsn >= model.acknowledged {
            return Err(wrong(format!(
                "a tail reader read record {lsn}, not durable (acknowledged {})",
                model.acknowledged
            )));
        }
        let mut expected = std::mem::take(&mut self.record);
        self.record_make(model.ids[lsn as usize], &mut expected);
        self.digest.add(lsn, data.len() as u64);
        let same = data == expected.as_slice();
        self.record = expected;
        match same {
            true => Ok(()),
            false => Err(wrong(format!(
                "a tail reader read record {lsn} with other bytes than were appended there"
            ))),
        }
    }
}
