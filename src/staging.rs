//! Group commit without threads: the staging area where producers' records wait for the next
//! commit, and the commit step that moves a staged group into the [`Log`] and syncs it.
//!
//! This is the deterministic core of [`SharedLog`](crate::SharedLog): the shared log runs it
//! under a mutex on a committer thread, and the simulator runs it in one thread with the
//! interleaving of producers drawn from its seed. Nothing here blocks, spawns or locks.
//!
//! Records are copied into a staging [`Batch`] when they are staged (one copy, into memory
//! allocated at open), and get their LSNs then: the commit step appends the batch in order, so
//! the LSNs the staging area hands out are the LSNs the log assigns. Two batches exist: one
//! fills while the other is appended and synced, so everything staged while a sync is in
//! flight goes into the next write and sync.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::log::Log;
use crate::storage::Storage;
use crate::Lsn;

/// Most bytes one staging batch may hold.
pub const STAGING_SIZE_BYTES_MAX: u32 = 1 << 30;
/// Most records one staging batch may hold.
pub const STAGING_RECORD_COUNT_MAX: u32 = 1 << 24;

/// The limits of the staging area of a [`SharedLog`](crate::SharedLog): two batches of these
/// sizes are allocated when it opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedOptions {
    /// Bytes of record data one batch holds. At least `Config::record_size_bytes_max`, so that
    /// any one record can be staged.
    pub staging_size_bytes: u32,
    /// Records one batch holds.
    pub staging_record_count_max: u32,
    /// Bytes of the tail cache: the newest records, which readers following the durable end
    /// copy from memory without waiting for the writer's IO (`docs/readers.md`). 0 disables
    /// it (with `tail_cache_record_count_max` 0): readers then read the log.
    pub tail_cache_size_bytes: u32,
    /// Records the tail cache holds (16 bytes each); the oldest are evicted first.
    pub tail_cache_record_count_max: u32,
}

impl Default for SharedOptions {
    fn default() -> SharedOptions {
        SharedOptions {
            staging_size_bytes: 4 << 20,
            staging_record_count_max: 16 * 1024,
            tail_cache_size_bytes: 8 << 20,
            tail_cache_record_count_max: 64 * 1024,
        }
    }
}

impl SharedOptions {
    /// Checks the limits against the log's config; names the first field that is wrong.
    pub fn validate(&self, config: &Config) -> Result<()> {
        let check = |ok: bool, field, reason| match ok {
            true => Ok(()),
            false => Err(Error::Config(crate::ConfigError { field, reason })),
        };
        check(
            self.staging_size_bytes >= config.record_size_bytes_max,
            "staging_size_bytes",
            "must be at least record_size_bytes_max",
        )?;
        check(
            self.staging_size_bytes <= STAGING_SIZE_BYTES_MAX,
            "staging_size_bytes",
            "must be at most 1 GiB",
        )?;
        check(
            (1..=STAGING_RECORD_COUNT_MAX).contains(&self.staging_record_count_max),
            "staging_record_count_max",
            "must be between 1 and 2^24",
        )?;
        check(
            self.tail_cache_size_bytes <= STAGING_SIZE_BYTES_MAX,
            "tail_cache_size_bytes",
            "must be at most 1 GiB",
        )?;
        check(
            self.tail_cache_record_count_max <= STAGING_RECORD_COUNT_MAX,
            "tail_cache_record_count_max",
            "must be at most 2^24",
        )?;
        check(
            (self.tail_cache_size_bytes == 0) == (self.tail_cache_record_count_max == 0),
            "tail_cache_record_count_max",
            "must be 0 exactly when tail_cache_size_bytes is 0",
        )
    }
}

/// Records staged in order, with the LSN of the first: a bounded arena allocated once.
#[derive(Debug)]
pub struct Batch {
    bytes: Vec<u8>,
    /// Where each record ends in `bytes`.
    ends: Vec<u32>,
    lsn_first: Lsn,
}

impl Batch {
    /// An empty batch with room for the options' limits.
    pub fn new(options: &SharedOptions) -> Batch {
        Batch {
            bytes: Vec::with_capacity(options.staging_size_bytes as usize),
            ends: Vec::with_capacity(options.staging_record_count_max as usize),
            lsn_first: 0,
        }
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The LSN of its first record.
    pub fn lsn_first(&self) -> Lsn {
        self.lsn_first
    }

    /// The LSN after its last record.
    pub fn lsn_end(&self) -> Lsn {
        self.lsn_first + self.ends.len() as Lsn
    }

    /// Record `index` of the batch.
    pub fn record(&self, index: usize) -> &[u8] {
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        &self.bytes[start as usize..self.ends[index] as usize]
    }

    fn fits(&self, record_count: usize, size_bytes: usize) -> bool {
        self.ends.len() + record_count <= self.ends.capacity()
            && self.bytes.len() + size_bytes <= self.bytes.capacity()
    }

    fn push(&mut self, record: &[u8]) {
        assert!(self.fits(1, record.len()), "a batch never grows");
        self.bytes.extend_from_slice(record);
        self.ends.push(self.bytes.len() as u32);
    }

    fn clear(&mut self, lsn_first: Lsn) {
        self.bytes.clear();
        self.ends.clear();
        self.lsn_first = lsn_first;
    }
}

/// The staging area: the batch that fills, the next LSN to hand out, and how far durability
/// is wanted.
#[derive(Debug)]
pub struct Staging {
    filling: Batch,
    record_size_bytes_max: usize,
    /// Some producer waits for every LSN below this to be durable.
    lsn_wanted: Lsn,
}

/// What [`Staging::stage`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Staged {
    /// The records were staged; the first has this LSN, the others follow it.
    At(Lsn),
    /// No room until the next commit takes the filling batch: wait, then try again.
    Full,
}

impl Staging {
    /// An empty staging area whose first record gets `lsn_next` (the log's next LSN).
    pub fn new(options: &SharedOptions, config: &Config, lsn_next: Lsn) -> Staging {
        let mut filling = Batch::new(options);
        filling.clear(lsn_next);
        Staging {
            filling,
            record_size_bytes_max: config.record_size_bytes_max as usize,
            lsn_wanted: 0,
        }
    }

    /// The LSN the next staged record gets.
    pub fn lsn_next(&self) -> Lsn {
        self.filling.lsn_end()
    }

    /// Durability is wanted for every LSN below this.
    pub fn lsn_wanted(&self) -> Lsn {
        self.lsn_wanted
    }

    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.filling.is_empty()
    }

    /// Stages records in order, all or none. Sizes are checked first: a record larger than
    /// the log accepts, or a batch larger than a whole staging batch, is an error; a batch that
    /// does not fit beside what is staged now is [`Staged::Full`]. With `durable`, the next
    /// commit syncs.
    pub fn stage<R: AsRef<[u8]>>(&mut self, records: &[R], durable: bool) -> Result<Staged> {
        let mut size_bytes = 0usize;
        for record in records {
            let size = record.as_ref().len();
            if size > self.record_size_bytes_max {
                return Err(Error::RecordTooLarge {
                    size_bytes: size as u64,
                    size_bytes_max: self.record_size_bytes_max as u32,
                });
            }
            size_bytes += size;
        }
        let batch = &self.filling;
        if records.len() > batch.ends.capacity() || size_bytes > batch.bytes.capacity() {
            return Err(Error::BatchTooLarge {
                record_count: records.len(),
                size_bytes: size_bytes as u64,
            });
        }
        if !batch.fits(records.len(), size_bytes) {
            return Ok(Staged::Full);
        }
        let lsn = self.filling.lsn_end();
        for record in records {
            self.filling.push(record.as_ref());
        }
        if durable {
            self.durable_want(self.filling.lsn_end());
        }
        assert_eq!(self.filling.lsn_end(), lsn + records.len() as Lsn);
        Ok(Staged::At(lsn))
    }

    /// Wants every LSN below `lsn_end` durable at the next commit.
    pub fn durable_want(&mut self, lsn_end: Lsn) {
        assert!(
            lsn_end <= self.lsn_next(),
            "durability wanted beyond the staged end"
        );
        self.lsn_wanted = self.lsn_wanted.max(lsn_end);
    }

    /// Starts numbering again at `lsn_next`, with nothing staged: after the log's end moved
    /// (a suffix truncation, or a prefix truncation past the end). Durability wanted below it
    /// is met by the move; none is wanted beyond.
    pub fn restart_at(&mut self, lsn_next: Lsn) {
        assert!(
            self.is_empty(),
            "the staged records must be committed first"
        );
        self.filling.clear(lsn_next);
        self.lsn_wanted = self.lsn_wanted.min(lsn_next);
    }

    /// Hands the filling batch to a commit in exchange for the empty `spare`; the staging area
    /// fills `spare` from now on.
    pub fn take(&mut self, spare: &mut Batch) {
        assert!(spare.is_empty(), "the spare batch must be committed first");
        assert_eq!(spare.bytes.capacity(), self.filling.bytes.capacity());
        assert_eq!(spare.ends.capacity(), self.filling.ends.capacity());
        let lsn_next = self.lsn_next();
        spare.clear(lsn_next);
        std::mem::swap(&mut self.filling, spare);
        assert_eq!(self.lsn_next(), lsn_next);
    }
}

/// One group commit: appends every record of `batch` to the log in order (they get exactly the
/// LSNs they were staged with), empties it, then flushes if durability is wanted for an LSN
/// not yet durable, or lets the log's size and timeout policies decide otherwise.
///
/// On an error the batch is left holding what was not appended: the log's `next_lsn` says how
/// far it got. The staged LSNs after it are then void, so the caller stops staging.
pub fn commit<S: Storage>(log: &mut Log<S>, batch: &mut Batch, lsn_wanted: Lsn) -> Result<()> {
    if !batch.is_empty() {
        assert_eq!(
            log.next_lsn(),
            batch.lsn_first(),
            "a batch must follow the log"
        );
    }
    for index in 0..batch.len() {
        let lsn = log.append(batch.record(index))?;
        assert_eq!(lsn, batch.lsn_first() + index as Lsn);
    }
    let lsn_end = log.next_lsn();
    batch.clear(lsn_end);
    if lsn_wanted > log.durable_lsn() {
        log.flush()?;
        assert_eq!(log.durable_lsn(), lsn_end);
    } else {
        log.tick()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;

    fn small() -> (Config, SharedOptions) {
        let config = Config {
            segment_size_bytes: 64 * 1024,
            block_size_bytes: 4096,
            write_buffer_size_bytes: 8192,
            read_buffer_size_bytes: 8192,
            record_size_bytes_max: 1000,
            segment_count_max: 16,
            ..Config::default()
        };
        let options = SharedOptions {
            staging_size_bytes: 2000,
            staging_record_count_max: 4,
            tail_cache_size_bytes: 0,
            tail_cache_record_count_max: 0,
        };
        (config, options)
    }

    #[test]
    fn staged_lsns_are_the_log_lsns() {
        let (config, options) = small();
        options.validate(&config).unwrap();
        let mut log = Log::open(config.clone(), MemStorage::new(4096)).unwrap();
        let mut staging = Staging::new(&options, &config, log.next_lsn());
        let mut spare = Batch::new(&options);
        assert_eq!(staging.stage(&[b"a"], false).unwrap(), Staged::At(0));
        assert_eq!(
            staging.stage(&[b"bb".as_slice(), b"c"], true).unwrap(),
            Staged::At(1)
        );
        assert_eq!(staging.stage(&[b"d", b"e"], false).unwrap(), Staged::Full);
        assert_eq!(staging.lsn_wanted(), 3);
        staging.take(&mut spare);
        assert!(staging.is_empty());
        assert_eq!(staging.stage(&[b"d"], false).unwrap(), Staged::At(3));
        commit(&mut log, &mut spare, staging.lsn_wanted()).unwrap();
        assert!(spare.is_empty());
        assert_eq!(log.durable_lsn(), 3);
        let mut out = [0u8; 8];
        assert_eq!(log.read(1, &mut out).unwrap(), 2);
        assert_eq!(&out[..2], b"bb");
        staging.take(&mut spare);
        commit(&mut log, &mut spare, staging.lsn_wanted()).unwrap();
        assert_eq!(
            (log.next_lsn(), log.durable_lsn()),
            (4, 3),
            "no sync wanted"
        );
    }

    #[test]
    fn limits_are_errors_not_waits() {
        let (config, options) = small();
        let mut staging = Staging::new(&options, &config, 7);
        let big = vec![0u8; 1001];
        assert!(matches!(
            staging.stage(&[big.as_slice()], false),
            Err(Error::RecordTooLarge { .. })
        ));
        let five = [b"x"; 5];
        assert!(matches!(
            staging.stage(&five, false),
            Err(Error::BatchTooLarge {
                record_count: 5,
                ..
            })
        ));
        let wide = [vec![0u8; 1000], vec![0u8; 1000], vec![0u8; 1]];
        assert!(matches!(
            staging.stage(&wide, false),
            Err(Error::BatchTooLarge { .. })
        ));
        assert!(staging.is_empty());
        assert_eq!(staging.lsn_next(), 7);
        let bad = SharedOptions {
            staging_size_bytes: 999,
            ..options
        };
        assert!(matches!(bad.validate(&config), Err(Error::Config(_))));
    }
}
