//! One seeded world: the workload drives the real `Log` over `SimStorage`, and the oracle, a
//! plain model of the log, checks every result and every recovery.

use crate::storage::{FaultClass, SimDisk, SimStorage};
use crate::swarm::Swarm;
use crate::{Digest, Seeds};
use ballast_log::staging::{self, Batch, Staged, Staging};
use ballast_log::storage::Clock;
use ballast_log::{Config, Error, Log, Lsn, RecoveryMode};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

mod readers;

/// Why a seed failed; each class has its own exit code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The log broke its contract: the oracle saw a wrong result.
    Correctness(String),
    /// The log stopped making progress.
    Liveness(String),
    /// The log panicked (a broken assertion).
    Panic(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Correctness(message) => write!(f, "correctness: {message}"),
            Failure::Liveness(message) => write!(f, "liveness: {message}"),
            Failure::Panic(message) => write!(f, "panic: {message}"),
        }
    }
}

/// What one seed did.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// The configuration it drew.
    pub swarm: Swarm,
    /// The trace digest: equal for equal seeds.
    pub digest: u64,
    /// Why it failed, if it did.
    pub failure: Option<Failure>,
    /// How often each fault class fired.
    pub fired: BTreeMap<FaultClass, u64>,
    /// Storage operations simulated.
    pub storage_operations: u64,
    /// Workload operations run.
    pub workload_operations: u64,
    /// Recoveries checked.
    pub recoveries: u64,
    /// Corruption errors the strict mode reported (and the oracle expected).
    pub corruptions_reported: u64,
    /// Group commits of simulated producers that appended at least one record.
    pub group_commits: u64,
    /// Records those group commits appended.
    pub group_records: u64,
    /// Group commits a crash cut in the middle.
    pub group_crashes: u64,
    /// Records the simulated tail readers read from the tail cache, each checked.
    pub tail_hits: u64,
}

/// The oracle's model of the log.
#[derive(Default)]
struct Model {
    /// The content id of the record at each LSN (index = LSN).
    ids: Vec<u64>,
    first: Lsn,
    /// Records appended at each LSN and later dropped by a recovery or a suffix truncation.
    superseded: BTreeMap<Lsn, Vec<u64>>,
    /// The content ids of the records a suffix truncation dropped: never to come back, unless
    /// the disk lost or misdirected a write (a seal that never landed).
    truncated: HashSet<u64>,
    /// The highest LSN passed to `truncate_prefix`: a crash in the middle of one may leave
    /// any prefix of its segment removals done.
    truncate_requested: Lsn,
    acknowledged: Lsn,
    id_next: u64,
    /// The durable watermark when the record at each LSN was appended: the block that holds
    /// it was sealed later, so it carries at least this watermark, and attests it once durable.
    appended_at_durable: Vec<Lsn>,
    /// Every record below it is attested by the metadata (a clean close, or an open).
    attested_metadata: Lsn,
    /// Every record below it is attested by a durable block (a later flush's, or an
    /// attestation after an idle period).
    attested_blocks: Lsn,
    /// Simulated time when the acknowledged watermark last advanced (at the end of that call).
    acknowledged_at_ns: u64,
    /// A suffix truncation at this LSN was cut by a crash: the recovery may find the log as it
    /// was before it, or as it is after (ending exactly here), never a mixture.
    truncate_suffix_pending: Option<Lsn>,
    /// A prefix truncation past the end, restarting the log empty at this LSN, was cut by a
    /// crash: the recovery may find the old log (less a prefix), or the new empty one.
    restart_pending: Option<Lsn>,
    /// The vote last saved.
    vote: Vec<u8>,
    /// A vote save cut by a crash or failed: the recovery may find it or the one before.
    vote_pending: Option<Vec<u8>>,
    /// Vote saves so far, which makes each vote's bytes.
    vote_saves: u64,
}

impl Model {
    fn next(&self) -> Lsn {
        self.ids.len() as Lsn
    }
}

/// Workload operations, in the order of `Workload::weights`.
#[derive(Clone, Copy, Debug)]
enum Operation {
    Append,
    Batch,
    Flush,
    Read,
    Cursor,
    Truncate,
    Tick,
    Reopen,
    Restart,
    /// A group commit (seeds with simulated producers only).
    Commit,
    TruncateSuffix,
    VoteSave,
}

const OPERATIONS: [Operation; 12] = [
    Operation::Append,
    Operation::Batch,
    Operation::Flush,
    Operation::Read,
    Operation::Cursor,
    Operation::Truncate,
    Operation::Tick,
    Operation::Reopen,
    Operation::Restart,
    Operation::Commit,
    Operation::TruncateSuffix,
    Operation::VoteSave,
];

/// Simulated producers on the group-commit core, and what the oracle knows of them.
struct Producers {
    staging: Staging,
    /// The tail cache, filled and cut as `SharedLog` fills and cuts it.
    tail: ballast_log::tail::TailCache,
    spare: Batch,
    /// Content ids of the staged records, in LSN order from the log's next LSN.
    staged_ids: Vec<u64>,
    staged_bytes: u64,
    /// The last LSN each producer was handed, to check that its order holds.
    lsn_last: Vec<Option<Lsn>>,
    /// The LSN end each producer waits to see durable; it stages nothing meanwhile.
    waiting: Vec<Option<Lsn>>,
}

/// Opens an operator tries before the run counts as stuck.
const RECOVERY_ATTEMPTS_MAX: u32 = 16;

/// Crashes injected into the opens of one recovery, at most.
const RECOVERY_CRASHES_MAX: u32 = 4;

/// A crash inside an open lands within this many of its storage operations.
const RECOVERY_CRASH_OPERATIONS_MAX: u64 = 48;

/// Workload operations without a new acknowledgement before the run counts as stuck.
const PROGRESS_OPERATIONS_MAX: u64 = 5_000;

struct World {
    swarm: Swarm,
    disk: Rc<RefCell<SimDisk>>,
    rng: ChaCha8Rng,
    crash_rng: ChaCha8Rng,
    log: Option<Log<SimStorage>>,
    model: Model,
    digest: Digest,
    mode_override: Option<RecoveryMode>,
    operations: u64,
    operations_since_progress: u64,
    recoveries: u64,
    corruptions_reported: u64,
    resurrections: u64,
    misdirects_before_open: Option<u64>,
    /// The lowest LSN damage seen by any attempt of the current recovery touched.
    loss_allowed_from: Option<Lsn>,
    /// The most independent damage events any attempt of the current recovery saw: an
    /// attempt cut by a crash may have sealed a loss it could not tell from a torn tail (its
    /// evidence hidden by a read fault the crash then cleared), and the seal makes that
    /// decision final for the attempts after it.
    damage_events_seen: u32,
    record: Vec<u8>,
    batch: Vec<Vec<u8>>,
    /// Prints each operation (BALLAST_SIM_TRACE set): for debugging one seed.
    trace: bool,
    read_buffer: Vec<u8>,
    producers: Option<Producers>,
    group_commits: u64,
    group_records: u64,
    group_crashes: u64,
    readers: readers::TailReaders,
}

type Checked = Result<(), Failure>;

fn wrong(message: String) -> Failure {
    Failure::Correctness(message)
}

/// Runs one seed to the end and reports what happened.
pub fn run(seed: u64) -> Outcome {
    let mut seeds = Seeds::split(seed);
    let mut swarm = Swarm::draw(&mut seeds.swarm);
    let readers = readers::TailReaders::draw(seeds.readers, &mut swarm);
    let disk = SimDisk::new(
        seeds.storage,
        swarm.faults.clone(),
        swarm.config.sector_size_bytes,
    );
    let mut world = World {
        disk: Rc::new(RefCell::new(disk)),
        rng: seeds.workload,
        crash_rng: seeds.crash,
        log: None,
        model: Model::default(),
        digest: Digest::default(),
        mode_override: None,
        operations: 0,
        operations_since_progress: 0,
        recoveries: 0,
        corruptions_reported: 0,
        resurrections: 0,
        misdirects_before_open: None,
        loss_allowed_from: None,
        damage_events_seen: 0,
        record: Vec::new(),
        batch: Vec::new(),
        trace: std::env::var_os("BALLAST_SIM_TRACE").is_some(),
        read_buffer: vec![0; swarm.config.record_size_bytes_max as usize],
        producers: None,
        group_commits: 0,
        group_records: 0,
        group_crashes: 0,
        readers,
        swarm,
    };
    let result = panic::catch_unwind(AssertUnwindSafe(|| world.run()));
    let failure = match result {
        Ok(Ok(())) => None,
        Ok(Err(failure)) => Some(failure),
        Err(payload) => Some(panic_failure(payload)),
    };
    world.log = None;
    let disk = world.disk.borrow();
    let mut digest = world.digest;
    digest.add(disk.digest.0, disk.operations());
    Outcome {
        seed,
        swarm: world.swarm.clone(),
        digest: digest.0,
        failure,
        fired: disk.fired.clone(),
        storage_operations: disk.operations(),
        workload_operations: world.operations,
        recoveries: world.recoveries,
        corruptions_reported: world.corruptions_reported,
        group_commits: world.group_commits,
        group_records: world.group_records,
        group_crashes: world.group_crashes,
        tail_hits: world.readers.hits,
    }
}

fn panic_failure(payload: Box<dyn std::any::Any + Send>) -> Failure {
    let message = crate::panic_message_take().unwrap_or_else(|| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|text| text.to_string()))
            .unwrap_or_else(|| "panic with a non-string payload".to_string())
    });
    if message.contains("liveness:") {
        Failure::Liveness(message)
    } else {
        Failure::Panic(message)
    }
}

impl World {
    fn config(&self) -> Config {
        let mut config = self.swarm.config.clone();
        config.recovery_mode = self.mode_override.unwrap_or(config.recovery_mode);
        config
    }

    fn log(&mut self) -> &mut Log<SimStorage> {
        self.log.as_mut().expect("log open")
    }

    fn run(&mut self) -> Checked {
        self.recover()?;
        let total: u32 = self.weights_extra().iter().sum::<u32>()
            + self.swarm.workload.weights.iter().sum::<u32>();
        for _ in 0..self.swarm.workload.operation_count {
            self.operations += 1;
            self.operations_since_progress += 1;
            if self.operations_since_progress > PROGRESS_OPERATIONS_MAX {
                return Err(Failure::Liveness(format!(
                    "no record acknowledged in {PROGRESS_OPERATIONS_MAX} operations"
                )));
            }
            self.crash_maybe_arm();
            let think_ns = self
                .rng
                .random_range(0..self.swarm.faults.latency_ns_max / 2);
            self.disk.borrow_mut().advance_ns(think_ns);
            let operation = self.operation_pick(total);
            self.digest.add(self.operations, operation as u64);
            self.call_start();
            if self.trace {
                eprintln!(
                    "op {} {operation:?} next {} acked {}",
                    self.operations,
                    self.model.next(),
                    self.model.acknowledged
                );
            }
            self.operation_run(operation)?;
            if self.disk.borrow().crashed() {
                self.crash_point()?;
            }
            self.tail_readers_step()?;
        }
        self.finish()
    }

    /// Closes the log cleanly (retrying through injected failures) and checks that a reopen
    /// keeps every record.
    fn finish(&mut self) -> Checked {
        for _attempt in 0..RECOVERY_ATTEMPTS_MAX {
            if self.producers.is_some() {
                // Shutdown drains what producers staged, then closes.
                self.call_start();
                self.commit(true)?;
                if self.disk.borrow().crashed() {
                    self.crash_point()?;
                }
            }
            self.call_start();
            let log = self.log.take().expect("log open");
            match log.close() {
                Ok(_) => {
                    self.closed_clean();
                    return self.recover_expecting_everything();
                }
                Err(_) if self.disk.borrow().crashed() => self.crash_point()?,
                Err(Error::Failed { .. }) => self.power_loss()?,
                Err(Error::Io { .. }) if self.swarm.faults.no_space_rate > 0.0 => {
                    self.power_loss()?
                }
                Err(error) => return Err(wrong(format!("close: {error}"))),
            }
        }
        Err(Failure::Liveness(
            "the log could not be closed cleanly".into(),
        ))
    }

    /// Marks the start of a log call for the liveness bound on storage operations.
    fn call_start(&mut self) {
        let mut disk = self.disk.borrow_mut();
        disk.call_start_operations = disk.operations();
    }

    fn crash_maybe_arm(&mut self) {
        let rate = self.swarm.faults.crash_rate;
        if rate > 0.0 && self.crash_rng.random_bool(rate) {
            let after = self.crash_rng.random_range(1..64);
            self.disk.borrow_mut().crash_arm(after);
        }
    }

    fn operation_pick(&mut self, total: u32) -> Operation {
        let mut pick = self.rng.random_range(0..total.max(1));
        let weights = self.swarm.workload.weights;
        let extra = self.weights_extra();
        for (index, &weight) in weights.iter().chain(extra.iter()).enumerate() {
            if pick < weight {
                return OPERATIONS[index];
            }
            pick -= weight;
        }
        Operation::Append
    }

    /// The weights of the operations after `Workload::weights`, in `OPERATIONS` order.
    fn weights_extra(&self) -> [u32; 3] {
        let workload = &self.swarm.workload;
        let shared = workload.shared.as_ref();
        [
            shared.map_or(0, |shared| shared.commit_weight),
            workload.truncate_suffix_weight,
            workload.vote_weight,
        ]
    }

    fn operation_run(&mut self, operation: Operation) -> Checked {
        match operation {
            Operation::Append if self.producers.is_some() => self.stage(1),
            Operation::Append => self.append(1),
            Operation::Batch => {
                let count = self
                    .rng
                    .random_range(1..=self.swarm.workload.batch_count_max);
                match self.producers.is_some() {
                    true => self.stage(count),
                    false => self.append(count),
                }
            }
            Operation::Commit => self.commit(false),
            Operation::Flush => {
                let result = self.log().flush();
                self.result_check(result)
            }
            Operation::Read => self.read_one(),
            Operation::Cursor => self.cursor_scan(),
            Operation::Truncate => self.truncate(),
            Operation::TruncateSuffix => self.truncate_suffix(),
            Operation::VoteSave => self.vote_save(),
            Operation::Tick => {
                let config = &self.swarm.config;
                let timeout = config.flush_timeout_ns.unwrap_or(1_000_000);
                let timeout = timeout.max(config.attest_idle_ns.unwrap_or(0));
                let delta = self.rng.random_range(0..timeout * 2);
                self.disk.borrow_mut().advance_ns(delta);
                let result = self.log().tick();
                let failed = result.is_err();
                self.result_check(result)?;
                match failed || self.log.is_none() {
                    true => Ok(()),
                    false => self.idle_check(),
                }
            }
            Operation::Reopen => self.reopen_clean(),
            Operation::Restart => {
                self.log = None;
                self.disk.borrow_mut().restart();
                self.recover()
            }
        }
    }

    /// The bytes of the record with content id `id`: its size and bytes depend only on the id,
    /// and its first bytes spell the id, so a misplaced record is caught.
    fn record_make(&self, id: u64, out: &mut Vec<u8>) {
        let workload = &self.swarm.workload;
        let mut state = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let small = (next() % 1000) as f64 / 1000.0 < workload.record_small_rate;
        let bound = if small {
            65
        } else {
            u64::from(workload.record_size_bytes_max) + 1
        };
        let size = (next() % bound).min(u64::from(workload.record_size_bytes_max)) as usize;
        out.clear();
        let salt = next() as u8 | 1;
        out.extend((0..size).map(|index| (index as u8).wrapping_mul(salt)));
        let prefix = size.min(8);
        out[..prefix].copy_from_slice(&id.to_le_bytes()[..prefix]);
    }

    fn append(&mut self, count: u32) -> Checked {
        let durable_before = self.log().durable_lsn();
        let id_first = self.model.id_next;
        self.model.id_next += u64::from(count);
        let result = if count == 1 {
            let mut record = std::mem::take(&mut self.record);
            self.record_make(id_first, &mut record);
            let result = self.log().append(&record).map(|_| ());
            self.record = record;
            result
        } else {
            let mut batch = std::mem::take(&mut self.batch);
            batch.resize_with(count as usize, Vec::new);
            for (offset, record) in batch.iter_mut().enumerate() {
                self.record_make(id_first + offset as u64, record);
            }
            let result = self.log().append_batch(&batch).map(|_| ());
            self.batch = batch;
            result
        };
        // The log's own next LSN says how many of the records it placed, whatever the result.
        let placed = self.log().next_lsn() - self.model.next();
        if placed > u64::from(count) {
            return Err(wrong(format!(
                "{placed} records placed by an append of {count}"
            )));
        }
        self.model.ids.extend(id_first..id_first + placed);
        self.model
            .appended_at_durable
            .resize(self.model.ids.len(), durable_before);
        self.result_check(result)
    }

    /// A fresh staging area after a recovery or a failed commit: what was staged is gone (it was
    /// never acknowledged), and waiting producers were answered with the error.
    fn producers_reset(&mut self) {
        let Some(shared) = &self.swarm.workload.shared else {
            return;
        };
        let log = self.log.as_ref().expect("log open");
        let count = shared.producers as usize;
        self.producers = Some(Producers {
            staging: Staging::new(&shared.options, log.config(), log.next_lsn()),
            tail: ballast_log::tail::TailCache::new(
                shared.options.tail_cache_size_bytes,
                shared.options.tail_cache_record_count_max,
                log.next_lsn(),
                log.durable_lsn(),
            ),
            spare: Batch::new(&shared.options),
            staged_ids: Vec::new(),
            staged_bytes: 0,
            lsn_last: vec![None; count],
            waiting: vec![None; count],
        });
    }

    /// A simulated producer, drawn by the seed, stages `count` records; one that waits for
    /// durability stages nothing until a commit answers it.
    fn stage(&mut self, count: u32) -> Checked {
        let shared = self.swarm.workload.shared.clone().expect("a shared seed");
        let producer = self.rng.random_range(0..shared.producers) as usize;
        let durable = self.rng.random_bool(shared.durable_rate);
        if self.producers.as_ref().expect("producers").waiting[producer].is_some() {
            return Ok(());
        }
        let id_first = self.model.id_next;
        self.model.id_next += u64::from(count);
        let mut batch = std::mem::take(&mut self.batch);
        batch.resize_with(count as usize, Vec::new);
        for (offset, record) in batch.iter_mut().enumerate() {
            self.record_make(id_first + offset as u64, record);
        }
        let size_bytes: u64 = batch.iter().map(|record| record.len() as u64).sum();
        let lsn_expected =
            self.model.next() + self.producers.as_ref().expect("producers").staged_ids.len() as Lsn;
        let producers = self.producers.as_mut().expect("producers");
        let result = producers.staging.stage(&batch, durable);
        self.batch = batch;
        let options = &shared.options;
        let too_large = count > options.staging_record_count_max
            || size_bytes > u64::from(options.staging_size_bytes);
        let fits = producers.staged_ids.len() as u64 + u64::from(count)
            <= u64::from(options.staging_record_count_max)
            && producers.staged_bytes + size_bytes <= u64::from(options.staging_size_bytes);
        self.digest.add(0x57, producer as u64);
        match result {
            Ok(Staged::At(lsn)) if fits && !too_large => {
                if lsn != lsn_expected {
                    return Err(wrong(format!("staged at {lsn}, expected {lsn_expected}")));
                }
                if producers.lsn_last[producer].is_some_and(|last| last >= lsn) {
                    return Err(wrong(format!(
                        "producer {producer} handed {lsn} out of order"
                    )));
                }
                producers.lsn_last[producer] = Some(lsn + u64::from(count) - 1);
                producers
                    .staged_ids
                    .extend(id_first..id_first + u64::from(count));
                producers.staged_bytes += size_bytes;
                if durable {
                    producers.waiting[producer] = Some(lsn + u64::from(count));
                }
                Ok(())
            }
            // Backpressure: the producer waits for the next commit, and tries again later.
            Ok(Staged::Full) if !fits && !too_large => Ok(()),
            Err(Error::BatchTooLarge { .. }) if too_large => Ok(()),
            other => Err(wrong(format!(
                "staging {count} records of {size_bytes} bytes (fits {fits}, too large \
                 {too_large}): {other:?}"
            ))),
        }
    }

    /// One group commit of everything staged; `drain` wants all of it durable (shutdown).
    fn commit(&mut self, drain: bool) -> Checked {
        let producers = self.producers.as_mut().expect("producers");
        producers.staging.take(&mut producers.spare);
        let lsn_wanted = match drain {
            true => Lsn::MAX,
            false => producers.staging.lsn_wanted(),
        };
        let taken = std::mem::take(&mut producers.staged_ids);
        producers.staged_bytes = 0;
        let log = self.log.as_mut().expect("log open");
        let durable_before = log.durable_lsn();
        producers.tail.follow(log.first_lsn(), log.next_lsn());
        producers.tail.append_batch(&producers.spare);
        let result = staging::commit(log, &mut producers.spare, lsn_wanted);
        if result.is_ok() {
            producers.tail.durable_set(log.durable_lsn());
        }
        let (next, durable) = (log.next_lsn(), log.durable_lsn());
        let placed = (next - self.model.next()) as usize;
        if placed > taken.len() || (result.is_ok() && placed != taken.len()) {
            return Err(wrong(format!(
                "a commit of {} records placed {placed}",
                taken.len()
            )));
        }
        self.model.ids.extend_from_slice(&taken[..placed]);
        self.model
            .appended_at_durable
            .resize(self.model.ids.len(), durable_before);
        self.digest.add(0xC0, placed as u64);
        if !taken.is_empty() {
            self.group_commits += 1;
            self.group_records += placed as u64;
            self.group_crashes += u64::from(self.disk.borrow().crashed());
        }
        if result.is_err() {
            // The staged LSNs after the failure are void: producers get the error.
            self.producers_reset();
            return self.result_check(result.map(|_| ()));
        }
        let producers = self.producers.as_mut().expect("producers");
        for (producer, waiting) in producers.waiting.iter_mut().enumerate() {
            let Some(lsn_end) = *waiting else { continue };
            if lsn_end <= durable {
                *waiting = None;
            } else if lsn_end <= lsn_wanted.min(next) {
                return Err(wrong(format!(
                    "producer {producer} waits for {lsn_end}, committed but durable only to \
                     {durable}"
                )));
            }
        }
        self.result_check(Ok(()))
    }

    /// Folds the log's durable watermark into the model, and judges an operation's error.
    fn result_check(&mut self, result: Result<(), Error>) -> Checked {
        let (next, durable) = (self.log().next_lsn(), self.log().durable_lsn());
        self.digest.add(next, durable);
        self.acknowledge();
        if !self.disk.borrow().crashed() {
            self.attested_check()?;
        }
        let Err(error) = result else {
            return Ok(());
        };
        self.digest.add(0xE0, 1);
        if self.disk.borrow().crashed() {
            return Ok(());
        }
        match error {
            Error::Failed { .. } => {
                let enabled = self.swarm.enabled();
                let expected = enabled.contains(&FaultClass::WriteError)
                    || enabled.contains(&FaultClass::SyncError)
                    || enabled.contains(&FaultClass::NoSpaceWrite);
                if !expected {
                    return Err(wrong(format!("fail-stop without an IO fault: {error}")));
                }
                self.power_loss()
            }
            Error::LogFull { .. } => self.truncate_to(self.model.acknowledged),
            Error::Io { .. } if self.swarm.faults.no_space_rate > 0.0 => Ok(()),
            error => self.error_expected(error, None),
        }
    }

    /// Errors from reads are expected only where damage was injected.
    fn error_expected(&mut self, error: Error, lsn: Option<Lsn>) -> Checked {
        let disk = self.disk.borrow();
        if disk.crashed() {
            return Ok(());
        }
        let taint = disk.taint_lsn();
        let damaged = match lsn {
            Some(lsn) => taint.is_some_and(|taint| taint <= lsn),
            None => taint.is_some(),
        };
        match error {
            Error::Corruption { .. } if damaged => Ok(()),
            Error::Io { .. } if disk.read_faults_active() => Ok(()),
            error => Err(wrong(format!("unexpected error: {error}"))),
        }
    }

    fn acknowledge(&mut self) {
        let durable = self.log().durable_lsn();
        let next = self.log().next_lsn();
        assert!(durable <= next, "durable {durable} beyond next {next}");
        if durable > self.model.acknowledged {
            self.model.acknowledged = durable;
            self.operations_since_progress = 0;
            self.model.acknowledged_at_ns = self.disk.borrow().now_ns();
            let sealed_at = self.model.appended_at_durable[durable as usize - 1];
            self.model.attested_blocks = self.model.attested_blocks.max(sealed_at);
        }
    }

    /// The log attests at least what the design promises: what its metadata says, what
    /// durable blocks written after a record say, and, once idle long enough, everything.
    fn attested_check(&mut self) -> Checked {
        let attested = self.log().attested_lsn();
        let promised = self.model.attested_metadata.max(self.model.attested_blocks);
        if attested < promised.min(self.model.acknowledged) {
            return Err(wrong(format!(
                "attested only to {attested}, but {promised} was attested on disk"
            )));
        }
        Ok(())
    }

    /// After a tick: if the log was idle (every record durable) for the attestation time, it
    /// must have attested every record, and the seed may damage it at rest and crash.
    fn idle_check(&mut self) -> Checked {
        let Some(idle_ns) = self.swarm.config.attest_idle_ns else {
            return Ok(());
        };
        let now = self.disk.borrow().now_ns();
        let idle = now.saturating_sub(self.model.acknowledged_at_ns) >= idle_ns;
        let durable = self.log().durable_lsn();
        if !idle || durable != self.model.next() || self.disk.borrow().crashed() {
            return Ok(());
        }
        self.model.attested_blocks = self.model.attested_blocks.max(durable);
        self.attested_check()?;
        if self.at_rest_damage() {
            self.log = None;
            return self.power_loss();
        }
        Ok(())
    }

    /// Damage at rest, if the seed says so now: a damaged sector, or a foreign block. Returns
    /// whether any struck.
    fn at_rest_damage(&mut self) -> bool {
        let (at_rest, foreign) = (
            self.swarm.faults.at_rest_rate,
            self.swarm.faults.foreign_rate,
        );
        let mut struck = false;
        if at_rest > 0.0 && self.crash_rng.random_bool(at_rest) {
            self.disk.borrow_mut().damage_at_rest();
            struck = true;
        }
        if foreign > 0.0 && self.crash_rng.random_bool(foreign) {
            struck |= self.disk.borrow_mut().foreign_block();
        }
        let stray = self.swarm.faults.stray_rate;
        if stray > 0.0 && self.crash_rng.random_bool(stray) {
            struck |= self.disk.borrow_mut().stray_block();
        }
        struck
    }

    fn read_one(&mut self) -> Checked {
        let (first, next) = (self.model.first, self.model.next());
        if first == next {
            return Ok(());
        }
        let lsn = self.rng.random_range(first..next);
        self.read_check(lsn)
    }

    fn read_check(&mut self, lsn: Lsn) -> Checked {
        // Taken, not borrowed: a failed read may lead to a recovery that reads again.
        let mut buffer = std::mem::take(&mut self.read_buffer);
        buffer.resize(self.swarm.config.record_size_bytes_max as usize, 0);
        let result = self.log().read(lsn, &mut buffer);
        let checked = match result {
            Ok(size) => self.record_compare(lsn, &buffer[..size]),
            Err(Error::Failed { .. }) => self.result_check(Err(result.unwrap_err())),
            Err(error) => self.error_expected(error, Some(lsn)),
        };
        self.read_buffer = buffer;
        checked
    }

    fn record_compare(&mut self, lsn: Lsn, data: &[u8]) -> Checked {
        let id = self.model.ids[lsn as usize];
        let mut expected = Vec::new();
        self.record_make(id, &mut expected);
        self.digest.add(lsn, data.len() as u64);
        if data == expected.as_slice() {
            return Ok(());
        }
        // Where a write may never have landed, the log may find an older record that was once
        // appended at this LSN and dropped by a recovery: written, but superseded.
        let damaged = self
            .disk
            .borrow()
            .taint_lsn()
            .is_some_and(|taint| taint <= lsn);
        let superseded = self.model.superseded.get(&lsn).cloned().unwrap_or_default();
        for old in superseded.into_iter().filter(|_| damaged) {
            self.record_make(old, &mut expected);
            if data == expected.as_slice() {
                self.model.ids[lsn as usize] = old;
                self.resurrections += 1;
                return Ok(());
            }
        }
        Err(wrong(format!(
            "record {lsn} differs: {} bytes read, {} expected",
            data.len(),
            expected.len()
        )))
    }

    fn cursor_scan(&mut self) -> Checked {
        let durable = self.log().durable_lsn();
        let first = self.model.first;
        let from = self.rng.random_range(first..=durable.max(first));
        let count_max = self.rng.random_range(1..64);
        self.cursor_check(from, count_max)
    }

    /// Reads up to `count_max` records with a cursor from `from`; it must yield exactly the
    /// model's durable records, in order.
    fn cursor_check(&mut self, from: Lsn, count_max: u64) -> Checked {
        let durable = self.log().durable_lsn();
        let mut cursor = match self.log().cursor(from) {
            Ok(cursor) => cursor,
            Err(error) => return Err(wrong(format!("cursor({from}): {error}"))),
        };
        let mut expected = Vec::new();
        for lsn in from..(from + count_max).min(durable) {
            let id = self.model.ids[lsn as usize];
            self.record_make(id, &mut expected);
            let log = self.log.as_mut().expect("log open");
            match log.cursor_next(&mut cursor) {
                Ok(Some(record)) if record.lsn == lsn && record.data == expected.as_slice() => {}
                Ok(Some(record)) => {
                    if self.trace {
                        self.disk.borrow().headers_print();
                    }
                    return Err(wrong(format!(
                        "cursor yielded a wrong record at {} (expected lsn {lsn}): {} bytes, \
                         id {:?}, expected {} bytes, id {id}",
                        record.lsn,
                        record.data.len(),
                        record
                            .data
                            .get(..8)
                            .map(|id| u64::from_le_bytes(id.try_into().expect("8 bytes"))),
                        expected.len(),
                    )));
                }
                Ok(None) => return Err(wrong(format!("cursor ended at {lsn} below {durable}"))),
                Err(error) => return self.error_expected(error, Some(lsn)),
            }
        }
        if from + count_max >= durable {
            let log = self.log.as_mut().expect("log open");
            if let Ok(Some(record)) = log.cursor_next(&mut cursor) {
                return Err(wrong(format!(
                    "cursor yielded {} beyond durable",
                    record.lsn
                )));
            }
        }
        Ok(())
    }

    fn truncate(&mut self) -> Checked {
        let (first, next) = (self.model.first, self.model.next());
        let rate = self.swarm.workload.restart_past_end_rate;
        if rate > 0.0 && self.rng.random_bool(rate) {
            let past = self.rng.random_range(1..1000);
            return self.restart_past_end(past);
        }
        let lsn = self.rng.random_range(first..=next);
        self.truncate_to(lsn)
    }

    /// Commits everything the simulated producers staged, as `SharedLog` does before an
    /// operation that moves the log's end. Whether the log is still open and alive after.
    fn producers_drain(&mut self) -> Result<bool, Failure> {
        if self.producers.is_none() {
            return Ok(true);
        }
        self.commit(true)?;
        Ok(self.log.is_some() && !self.disk.borrow().crashed())
    }

    /// The log's end moved to `lsn` (with nothing staged): producers number from it.
    fn producers_restart(&mut self, lsn: Lsn) {
        if let Some(producers) = &mut self.producers {
            assert!(producers.staged_ids.is_empty());
            producers.staging.restart_at(lsn);
            producers.waiting.fill(None);
            // The LSNs handed out after `lsn` are void: the next ones may repeat them.
            producers.lsn_last.fill(None);
        }
    }

    /// A prefix truncation `past` LSNs past the end: the log restarts, empty, there.
    fn restart_past_end(&mut self, past: u64) -> Checked {
        if !self.producers_drain()? {
            return Ok(());
        }
        let lsn = self.model.next() + past;
        if self.trace {
            eprintln!("truncate_prefix({lsn}) past the end {}", self.model.next());
        }
        self.model.restart_pending = Some(lsn);
        // Until it is done, the old segments go one by one, oldest first.
        self.model.truncate_requested = self.model.truncate_requested.max(self.model.next());
        let result = self.log().truncate_prefix(lsn);
        if let Err(error) = &result {
            let cut = self.disk.borrow().crashed() || matches!(error, Error::Failed { .. });
            if !cut {
                self.model.restart_pending = None;
            }
            return self.result_check(result);
        }
        self.model.restart_pending = None;
        let (first, next) = (self.log().first_lsn(), self.log().next_lsn());
        if (first, next) != (lsn, lsn) {
            return Err(wrong(format!(
                "truncate_prefix({lsn}) past the end left [{first}, {next})"
            )));
        }
        self.model_restart(lsn);
        self.producers_restart(lsn);
        self.result_check(Ok(()))
    }

    /// The model of a log restarted empty at `lsn`, past its end.
    fn model_restart(&mut self, lsn: Lsn) {
        let model = &mut self.model;
        assert!(lsn > model.next());
        // No record ever held the LSNs skipped: they are below the first, never read.
        model.ids.resize(lsn as usize, u64::MAX);
        model.appended_at_durable.resize(lsn as usize, lsn);
        model.first = lsn;
        model.truncate_requested = model.truncate_requested.max(lsn);
        model.superseded.clear();
        model.acknowledged = lsn;
        model.attested_metadata = model.attested_metadata.min(lsn);
        model.attested_blocks = model.attested_blocks.min(lsn);
        model.acknowledged_at_ns = self.disk.borrow().now_ns();
        self.operations_since_progress = 0;
    }

    /// Drops the records at and after an LSN drawn in the log (a Raft follower's conflict).
    fn truncate_suffix(&mut self) -> Checked {
        if !self.producers_drain()? {
            return Ok(());
        }
        let (first, next) = (self.model.first, self.model.next());
        let lsn = self.rng.random_range(first..=next);
        if self.trace {
            eprintln!("truncate_suffix({lsn}) first {first} next {next}");
        }
        self.model.truncate_suffix_pending = Some(lsn);
        let result = self.log().truncate_suffix(lsn);
        if let Err(error) = &result {
            // Only a crash or a fail-stop leaves the truncation's fate to the recovery; any
            // other error refused it before anything changed.
            let cut = self.disk.borrow().crashed() || matches!(error, Error::Failed { .. });
            if !cut {
                self.model.truncate_suffix_pending = None;
            }
            return self.result_check(result);
        }
        self.model.truncate_suffix_pending = None;
        let (next_now, durable) = (self.log().next_lsn(), self.log().durable_lsn());
        if (next_now, durable) != (lsn, lsn) {
            return Err(wrong(format!(
                "truncate_suffix({lsn}) left next {next_now}, durable {durable}"
            )));
        }
        self.model_truncate_suffix(lsn);
        self.producers_restart(lsn);
        self.result_check(Ok(()))
    }

    /// The model after a suffix truncation at `lsn`: the records after it are gone for good
    /// (no recovery may bring them back, whatever the damage), everything before is durable.
    fn model_truncate_suffix(&mut self, lsn: Lsn) {
        let model = &mut self.model;
        for (at, &id) in model.ids.iter().enumerate().skip(lsn as usize) {
            model.superseded.entry(at as Lsn).or_default().push(id);
            model.truncated.insert(id);
        }
        model.ids.truncate(lsn as usize);
        model.appended_at_durable.truncate(lsn as usize);
        model.acknowledged = lsn;
        model.attested_metadata = model.attested_metadata.min(lsn);
        model.attested_blocks = model.attested_blocks.min(lsn);
        model.acknowledged_at_ns = self.disk.borrow().now_ns();
        self.operations_since_progress = 0;
    }

    /// Saves a vote of a size drawn up to the most the metadata holds.
    fn vote_save(&mut self) -> Checked {
        self.model.vote_saves += 1;
        let size = self
            .rng
            .random_range(0..=ballast_log::format::VOTE_SIZE_BYTES_MAX);
        let saves = self.model.vote_saves;
        let vote: Vec<u8> = (0..size)
            .map(|index| (saves as u8).wrapping_add(index as u8).wrapping_mul(31))
            .collect();
        let result = self.log().vote_save(&vote);
        match result {
            Ok(()) => {
                if self.log().vote() != &vote[..] {
                    return Err(wrong(
                        "the vote read back differs from the one saved".into(),
                    ));
                }
                self.model.vote = vote;
                self.model.vote_pending = None;
            }
            Err(_) => self.model.vote_pending = Some(vote),
        }
        self.result_check(result)
    }

    /// After a recovery: the vote is the one last saved, or one whose save was cut.
    fn vote_check(&mut self) -> Checked {
        let pending = self.model.vote_pending.take();
        let vote = self.log.as_ref().expect("log open").vote();
        if vote == &self.model.vote[..] {
            return Ok(());
        }
        match pending {
            Some(pending) if vote == &pending[..] => {
                self.model.vote = pending;
                Ok(())
            }
            _ => Err(wrong(format!(
                "recovered a vote of {} bytes that was never saved (last saved {} bytes)",
                vote.len(),
                self.model.vote.len()
            ))),
        }
    }

    fn truncate_to(&mut self, lsn: Lsn) -> Checked {
        if self.trace {
            let first = self.log().first_lsn();
            let segments: Vec<_> = self.disk.borrow().segment_ids();
            eprintln!("truncate_prefix({lsn}) first {first} segments {segments:?}");
        }
        self.model.truncate_requested = self.model.truncate_requested.max(lsn);
        let result = self.log().truncate_prefix(lsn);
        if result.is_ok() {
            let first = self.log().first_lsn();
            if first > lsn.max(self.model.first) || first < self.model.first {
                return Err(wrong(format!(
                    "truncate_prefix({lsn}) moved first to {first}"
                )));
            }
            self.model.first = first;
        }
        self.result_check(result)
    }

    fn reopen_clean(&mut self) -> Checked {
        let log = self.log.take().expect("log open");
        match log.close() {
            Ok(_) => {
                self.closed_clean();
                self.recover_expecting_everything()
            }
            Err(_) if self.disk.borrow().crashed() => self.crash_point(),
            Err(Error::Failed { .. }) => self.power_loss(),
            Err(error) => Err(wrong(format!("close: {error}"))),
        }
    }

    fn acknowledge_all(&mut self) {
        self.model.acknowledged = self.model.next();
        self.operations_since_progress = 0;
    }

    /// A clean close acknowledged and attested every record; the process ends, and the seed
    /// may damage the log while it rests.
    fn closed_clean(&mut self) {
        self.acknowledge_all();
        self.model.attested_metadata = self.model.next();
        self.disk.borrow_mut().restart();
        self.at_rest_damage();
    }

    /// After a clean close every record was acknowledged: the recovery rules then demand all
    /// of them back, less only what injected damage may have taken.
    fn recover_expecting_everything(&mut self) -> Checked {
        assert_eq!(self.model.acknowledged, self.model.next());
        self.recover()
    }

    fn power_loss(&mut self) -> Checked {
        if self.trace {
            eprintln!("power loss");
        }
        self.log = None;
        self.disk.borrow_mut().crash();
        self.recover()
    }

    /// The crash point was reached: the process is dead. Either the power went (what was not
    /// synced meets its fate) or only the process was killed (the OS keeps what it wrote, and
    /// the next open reads it: a power loss may come during that recovery).
    fn crash_point(&mut self) -> Checked {
        let rate = self.swarm.faults.kill_rate;
        if rate > 0.0 && self.crash_rng.random_bool(rate) {
            if self.trace {
                eprintln!("process killed");
            }
            self.log = None;
            self.disk.borrow_mut().kill();
            return self.recover();
        }
        self.power_loss()
    }

    /// Arms a crash inside the next open, at one of its storage operations, if the seed says
    /// so; at most a few per recovery, so that recovery still ends.
    fn recovery_crash_arm(&mut self, attempt: u32) {
        let rate = self.swarm.faults.recovery_crash_rate;
        if rate > 0.0 && attempt < RECOVERY_CRASHES_MAX && self.crash_rng.random_bool(rate) {
            let after = self
                .crash_rng
                .random_range(1..RECOVERY_CRASH_OPERATIONS_MAX);
            self.disk.borrow_mut().crash_arm(after);
        }
    }

    /// A crash cut the open: power loss or kill, as at any crash point; then the operator opens
    /// again.
    fn recovery_crashed(&mut self) {
        let rate = self.swarm.faults.kill_rate;
        let kill = rate > 0.0 && self.crash_rng.random_bool(rate);
        if self.trace {
            eprintln!(
                "crash during open ({})",
                if kill { "kill" } else { "power loss" }
            );
        }
        let mut disk = self.disk.borrow_mut();
        disk.recovery_crash_note();
        match kill {
            true => disk.kill(),
            false => disk.crash(),
        }
    }
}

impl World {
    /// Opens the log after a crash or restart, as an operator would: retries in point-in-time
    /// mode after a corruption report, and after repairing a disk that failed reads.
    fn recover(&mut self) -> Checked {
        self.recoveries += 1;
        if self.swarm.faults.read_fault_rate > 0.0 && self.model.next() > 0 {
            self.disk.borrow_mut().read_faults_draw();
        }
        for attempt in 0..RECOVERY_ATTEMPTS_MAX {
            let config = self.config();
            let mode = config.recovery_mode;
            self.call_start();
            self.recovery_crash_arm(attempt);
            self.misdirects_before_open = Some(self.disk.borrow().write_damages_total);
            // A failed attempt may already have acted on damage seen then (removed segments
            // after a loss) even if the damage reads differently at the next attempt.
            let taint = self.disk.borrow().taint_lsn();
            self.damage_events_seen = self
                .damage_events_seen
                .max(self.disk.borrow().damage_events());
            self.loss_allowed_from = match (self.loss_allowed_from, taint) {
                (Some(allowed), Some(taint)) => Some(allowed.min(taint)),
                (allowed, taint) => allowed.or(taint),
            };
            let result = Log::open(config, SimStorage(Rc::clone(&self.disk)));
            if self.disk.borrow().crashed() {
                // The open was cut, whatever it returned: the process is dead.
                drop(result);
                self.recovery_crashed();
                continue;
            }
            self.disk.borrow_mut().crash_at_operation_clear();
            if self.trace {
                let taint = self.disk.borrow().taint_lsn();
                match &result {
                    Ok(log) => eprintln!("open: {:?} taint {taint:?}", log.recovery_report()),
                    Err(error) => eprintln!("open: {error} taint {taint:?}"),
                }
            }
            match result {
                Ok(log) => {
                    self.log = Some(log);
                    let checked = self.recovered_check();
                    self.damage_events_seen = 0;
                    return checked;
                }
                Err(Error::Corruption { .. }) if mode == RecoveryMode::Strict => {
                    if self.disk.borrow().taint_lsn().is_none() {
                        if self.trace {
                            self.disk.borrow().headers_print();
                        }
                        return Err(wrong(
                            "corruption reported where nothing was damaged".into(),
                        ));
                    }
                    self.corruptions_reported += 1;
                    self.mode_override = Some(RecoveryMode::PointInTime);
                }
                Err(Error::Io { .. }) if self.disk.borrow().read_faults_active() => {
                    self.disk.borrow_mut().read_faults_clear();
                }
                // A sync at open or the first segment's creation may fail under injected
                // faults; the operator retries.
                Err(Error::Failed { .. }) if self.swarm.faults.sync_error_rate > 0.0 => {}
                Err(Error::Io { .. }) if self.swarm.faults.no_space_rate > 0.0 => {}
                Err(Error::Io { .. }) if self.swarm.faults.write_error_rate > 0.0 => {}
                Err(Error::Io { .. }) if self.swarm.faults.no_space_write_rate > 0.0 => {}
                Err(error) => return Err(wrong(format!("recovery failed: {error}"))),
            }
        }
        Err(Failure::Liveness(format!(
            "recovery did not succeed in {RECOVERY_ATTEMPTS_MAX} attempts"
        )))
    }

    /// Past the model's end, a recovery may only find records that were once appended there and
    /// dropped by an earlier recovery, and only where a write may never have landed (a seal
    /// misdirected, say): they become the model's records, checked byte for byte next.
    fn resurrection_check(&mut self, next: Lsn, taint: Option<Lsn>) -> Checked {
        let end = self.model.next();
        let damaged = taint.is_some_and(|taint| taint <= end);
        let known = (end..next).all(|lsn| self.model.superseded.contains_key(&lsn));
        if !(damaged && known) {
            return Err(wrong(format!(
                "recovered {next} records but only {end} were appended"
            )));
        }
        let write_damaged = self
            .disk
            .borrow()
            .taint_write_lsn
            .is_some_and(|taint| taint <= end);
        for lsn in end..next {
            let id = *self.model.superseded[&lsn]
                .last()
                .expect("superseded record");
            if self.model.truncated.contains(&id) && !write_damaged {
                return Err(wrong(format!(
                    "recovered record {lsn}, which a suffix truncation dropped"
                )));
            }
            self.model.ids.push(id);
        }
        Ok(())
    }

    /// The oracle's rules after a recovery.
    fn recovered_check(&mut self) -> Checked {
        self.mode_override = None;
        let log = self.log.as_ref().expect("log open");
        let (first, next, durable) = (log.first_lsn(), log.next_lsn(), log.durable_lsn());
        let report = *log.recovery_report();
        self.digest.add(next, first);
        let taint = self.loss_allowed_from.take();
        let mut required = self.required(taint, report.lsn_lost);
        if let Some(lsn) = self.model.truncate_suffix_pending.take() {
            // Before the truncation (its flush may have been cut too), or exactly after it.
            required = required.min(lsn);
        }
        if let Some(lsn) = self.model.restart_pending.take() {
            if (first, next) == (lsn, lsn) {
                self.model_restart(lsn);
                required = lsn;
            }
        }
        if durable != next {
            return Err(wrong(format!(
                "after recovery, durable {durable} != next {next}"
            )));
        }
        let first_max = self.model.first.max(self.model.truncate_requested);
        if first < self.model.first || first > first_max {
            return Err(wrong(format!(
                "first lsn {first} outside [{}, {first_max}]",
                self.model.first
            )));
        }
        self.model.first = first;
        if next < required {
            return Err(wrong(format!(
                "lost acknowledged records: recovered up to {next}, acknowledged {} (damage \
                 from {taint:?}, attested by metadata {} and blocks {}, {} damage events, \
                 lost reported {:?})",
                self.model.acknowledged,
                self.model.attested_metadata,
                self.model.attested_blocks,
                self.disk
                    .borrow()
                    .damage_events()
                    .max(self.damage_events_seen),
                report.lsn_lost,
            )));
        }
        if report.lsn_lost.is_some_and(|lost| lost < next) {
            return Err(wrong(format!(
                "a loss reported below the recovered end: {report:?}"
            )));
        }
        if next > self.model.next() {
            self.resurrection_check(next, taint)?;
        }
        for lsn in first..next {
            self.read_check(lsn)?;
        }
        self.cursor_check(first, next - first)?;
        self.vote_check()?;
        for (lsn, &id) in self.model.ids.iter().enumerate().skip(next as usize) {
            self.model
                .superseded
                .entry(lsn as Lsn)
                .or_default()
                .push(id);
        }
        self.model.ids.truncate(next as usize);
        self.model.appended_at_durable.truncate(next as usize);
        self.model.acknowledged = next;
        // The open attested everything it kept, in the metadata.
        self.model.attested_metadata = next;
        self.model.attested_blocks = next;
        self.model.acknowledged_at_ns = self.disk.borrow().now_ns();
        self.producers_reset();
        // Damage from a misdirected write stays on disk until the log has written past it,
        // unless a write of this very open (its seal) was misdirected too.
        let mut disk = self.disk.borrow_mut();
        let misdirected = Some(disk.write_damages_total);
        if misdirected == self.misdirects_before_open
            && disk.taint_write_lsn.is_some_and(|taint| next > taint)
        {
            disk.taint_write_lsn = None;
            disk.misdirects_tainting = 0;
        }
        // Damage at rest was judged by this recovery: it is now past the end, or harmless.
        // Unless a read fault may have hidden the evidence of the loss it caused: a later open
        // may then report that loss, until the log writes past it.
        let hidden = disk.read_faults_active() && disk.taint_rest_lsn.is_some_and(|t| t >= next);
        if !hidden {
            disk.taint_rest_lsn = None;
            disk.rest_damages = 0;
        }
        Ok(())
    }

    /// How far a recovery must reach. Without damage, every acknowledged record. Damage may
    /// end the log early, from the lowest LSN it touched; but without a report of the loss
    /// (`lsn_lost`), only past what was attested on disk: the metadata's attestation always
    /// survives damage to segments, a block's only if a single damage event is in effect (one
    /// event never takes both a record and the block that attests it).
    fn required(&self, taint: Option<Lsn>, lsn_lost: Option<Lsn>) -> Lsn {
        let acknowledged = self.model.acknowledged;
        let Some(taint) = taint else {
            return acknowledged;
        };
        if lsn_lost.is_some() {
            return acknowledged.min(taint);
        }
        let events = self
            .disk
            .borrow()
            .damage_events()
            .max(self.damage_events_seen);
        let attested = match events {
            0 | 1 => self.model.attested_metadata.max(self.model.attested_blocks),
            _ => self.model.attested_metadata,
        };
        acknowledged.min(taint.max(attested))
    }
}
