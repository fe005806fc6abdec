//! Swarm testing: every seed draws its own log configuration, workload mix and fault rates,
//! and which fault classes are on at all.

use crate::storage::FaultClass;
use ballast_log::format::record_size_bytes_limit;
use ballast_log::{Config, RecoveryMode, SharedOptions};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::fmt;

/// Fault rates; a class whose rate is zero is off for this seed.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Largest latency of one operation.
    pub latency_ns_max: u64,
    /// Chance per workload operation to arm a power loss.
    pub crash_rate: f64,
    /// Chance that a sector a crash loses is torn instead (garbage after a cut).
    pub torn_rate: f64,
    /// Chance, per candidate sector at each open, of a read fault there.
    pub read_fault_rate: f64,
    /// How many sectors may carry read faults at once.
    pub read_fault_sectors_max: u32,
    /// Chance per write that it lands at the wrong offset.
    pub misdirect_rate: f64,
    /// Chance per sync that it fails.
    pub sync_error_rate: f64,
    /// Chance per write that it fails with EIO.
    pub write_error_rate: f64,
    /// Chance per segment creation that it fails with ENOSPC.
    pub no_space_rate: f64,
    /// Chance, after a clean close or an idle attestation, that a durable sector is damaged
    /// while the log is at rest.
    pub at_rest_rate: f64,
    /// Chance that a crash point is a process kill (the OS keeps what was written) rather
    /// than a power loss.
    pub kill_rate: f64,
    /// Chance per attempt to open that a crash lands inside it.
    pub recovery_crash_rate: f64,
    /// Chance per write that it reports success and never lands.
    pub lost_write_rate: f64,
    /// Chance per write of several sectors that only a prefix lands (reported as success).
    pub short_write_rate: f64,
    /// Chance per write that it fails with ENOSPC.
    pub no_space_write_rate: f64,
    /// Chance that a torn sector keeps its old bytes after the cut.
    pub torn_old_rate: f64,
    /// Chance, at the moments of damage at rest, that a block is replaced by a foreign one.
    pub foreign_rate: f64,
    /// Chance that a bit-flip read fault persists across crashes and opens.
    pub read_persistent_rate: f64,
    /// Chance, at the moments of damage at rest, that a stray block of another log lands
    /// where this log never wrote.
    pub stray_rate: f64,
}

/// The workload's mix: weights of operations and record shapes.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Workload operations in the run.
    pub operation_count: u32,
    /// Largest record the workload appends (at most the config's maximum).
    pub record_size_bytes_max: u32,
    /// Chance that a record is small (up to 64 bytes).
    pub record_small_rate: f64,
    /// Largest batch.
    pub batch_count_max: u32,
    /// Weights of: append, batch, flush, read, cursor, truncate, tick, close-and-reopen,
    /// process restart.
    pub weights: [u32; 9],
    /// The concurrent front end, or `None` for a seed that drives the `Log` directly.
    pub shared: Option<SharedWorkload>,
    /// Weight of a suffix truncation (`Log::truncate_suffix`), against `weights`.
    pub truncate_suffix_weight: u32,
    /// Weight of a vote save (`Log::vote_save`), against `weights`.
    pub vote_weight: u32,
    /// Chance that a prefix truncation goes past the end (the log restarts empty further on).
    pub restart_past_end_rate: f64,
}

/// A seed that drives the log through the group-commit core (`ballast_log::staging`): the
/// workload's appends and batches are staged by simulated producers, and commits run as
/// their own operation, so that groups take any size the interleaving gives them.
#[derive(Clone, Debug)]
pub struct SharedWorkload {
    /// Simulated producers.
    pub producers: u32,
    /// The staging area's limits.
    pub options: SharedOptions,
    /// Chance that a staged append asks for durability (the producer then waits).
    pub durable_rate: f64,
    /// Weight of a commit step, against the weights of `Workload::weights`.
    pub commit_weight: u32,
}

/// Everything one seed runs with.
#[derive(Clone, Debug)]
pub struct Swarm {
    /// The log's configuration.
    pub config: Config,
    /// The fault rates.
    pub faults: Faults,
    /// The workload mix.
    pub workload: Workload,
}

fn chance(rng: &mut ChaCha8Rng, on: f64, low: f64, high: f64) -> f64 {
    if rng.random_bool(on) {
        rng.random_range(low..high)
    } else {
        0.0
    }
}

impl Swarm {
    /// Draws a swarm configuration.
    pub fn draw(rng: &mut ChaCha8Rng) -> Swarm {
        let config = config_draw(rng);
        let faults = Faults {
            latency_ns_max: rng.random_range(10_000..2_000_000),
            crash_rate: chance(rng, 0.8, 0.001, 0.02),
            torn_rate: chance(rng, 0.7, 0.1, 0.9),
            read_fault_rate: chance(rng, 0.3, 0.05, 0.5),
            read_fault_sectors_max: rng.random_range(1..4),
            misdirect_rate: chance(rng, 0.3, 0.001, 0.02),
            sync_error_rate: chance(rng, 0.3, 0.001, 0.02),
            write_error_rate: chance(rng, 0.3, 0.001, 0.01),
            no_space_rate: chance(rng, 0.3, 0.01, 0.2),
            ..Faults::default()
        };
        let record_size_bytes_max = rng.random_range(1..=config.record_size_bytes_max);
        let workload = Workload {
            operation_count: rng.random_range(200..1500),
            record_size_bytes_max,
            record_small_rate: rng.random_range(0.0..1.0),
            batch_count_max: rng.random_range(1..32),
            weights: [
                rng.random_range(10..60),
                rng.random_range(0..20),
                rng.random_range(1..20),
                rng.random_range(0..20),
                rng.random_range(0..5),
                rng.random_range(0..4),
                rng.random_range(0..4),
                rng.random_range(0..2),
                rng.random_range(0..2),
            ],
            shared: None,
            truncate_suffix_weight: 0,
            vote_weight: 0,
            restart_past_end_rate: 0.0,
        };
        // Drawn last, so that the draws above stay what they were before the shared front end.
        let shared = rng.random_bool(0.5).then(|| shared_draw(rng, &config));
        let workload = Workload { shared, ..workload };
        // Drawn after it, for the same reason: the window, the idle attestation and damage at
        // rest.
        let config = Config {
            window_size_bytes: config.window_size_bytes * rng.random_range(1..=4),
            attest_idle_ns: rng
                .random_bool(0.7)
                .then(|| rng.random_range(10_000..5_000_000)),
            ..config
        };
        let faults = Faults {
            at_rest_rate: chance(rng, 0.5, 0.1, 0.9),
            kill_rate: chance(rng, 0.5, 0.2, 0.8),
            recovery_crash_rate: chance(rng, 0.4, 0.05, 0.5),
            lost_write_rate: chance(rng, 0.2, 0.001, 0.01),
            short_write_rate: chance(rng, 0.2, 0.001, 0.01),
            no_space_write_rate: chance(rng, 0.2, 0.001, 0.01),
            torn_old_rate: chance(rng, 0.5, 0.2, 1.0),
            foreign_rate: chance(rng, 0.3, 0.1, 0.9),
            read_persistent_rate: chance(rng, 0.3, 0.2, 0.8),
            stray_rate: chance(rng, 0.3, 0.2, 0.9),
            ..faults
        };
        // Drawn after them: the Raft log store's operations.
        let workload = Workload {
            truncate_suffix_weight: match rng.random_bool(0.6) {
                true => rng.random_range(1..6),
                false => 0,
            },
            vote_weight: match rng.random_bool(0.5) {
                true => rng.random_range(1..6),
                false => 0,
            },
            restart_past_end_rate: chance(rng, 0.3, 0.05, 0.5),
            ..workload
        };
        Swarm {
            config,
            faults,
            workload,
        }
    }

    /// The fault classes that can fire under this configuration.
    pub fn enabled(&self) -> Vec<FaultClass> {
        let faults = &self.faults;
        let mut enabled = Vec::new();
        if self.config.write_buffer_count >= 2 {
            enabled.push(FaultClass::Reorder);
        }
        let classes = [
            (faults.crash_rate, FaultClass::Crash),
            (faults.crash_rate * faults.torn_rate, FaultClass::Torn),
            (faults.read_fault_rate, FaultClass::ReadError),
            (faults.read_fault_rate, FaultClass::BitFlip),
            (faults.misdirect_rate, FaultClass::Misdirect),
            (faults.sync_error_rate, FaultClass::SyncError),
            (faults.write_error_rate, FaultClass::WriteError),
            (faults.no_space_rate, FaultClass::NoSpace),
            (faults.at_rest_rate, FaultClass::AtRest),
            (faults.crash_rate * faults.kill_rate, FaultClass::Kill),
            (faults.recovery_crash_rate, FaultClass::RecoveryCrash),
            (faults.lost_write_rate, FaultClass::LostWrite),
            (faults.short_write_rate, FaultClass::ShortWrite),
            (faults.no_space_write_rate, FaultClass::NoSpaceWrite),
            (
                faults.crash_rate * faults.torn_rate * faults.torn_old_rate,
                FaultClass::TornOld,
            ),
            (faults.foreign_rate, FaultClass::Foreign),
            (
                faults.read_fault_rate * faults.read_persistent_rate,
                FaultClass::ReadPersistent,
            ),
            (faults.stray_rate, FaultClass::Stray),
            (faults.crash_rate, FaultClass::MetadataCut),
        ];
        enabled.extend(
            classes
                .iter()
                .filter(|(rate, _)| *rate > 0.0)
                .map(|&(_, class)| class),
        );
        enabled
    }
}

fn shared_draw(rng: &mut ChaCha8Rng, config: &Config) -> SharedWorkload {
    let record_max = config.record_size_bytes_max;
    let staging = rng.random_range(record_max..=record_max.saturating_mul(8));
    SharedWorkload {
        producers: rng.random_range(1..=8),
        options: SharedOptions {
            staging_size_bytes: staging,
            staging_record_count_max: rng.random_range(1..=64),
            // Drawn with the tail readers (`world::readers`), from their own stream.
            tail_cache_size_bytes: 0,
            tail_cache_record_count_max: 0,
        },
        durable_rate: rng.random_range(0.0..1.0),
        commit_weight: rng.random_range(1..40),
    }
}

fn config_draw(rng: &mut ChaCha8Rng) -> Config {
    let sector: u32 = if rng.random_bool(0.5) { 512 } else { 4096 };
    let block = sector * [1, 2, 4, 8][rng.random_range(0..4)];
    let write_buffer = block * rng.random_range(1..=4);
    let segment_blocks = rng.random_range(write_buffer / block..=32).max(2);
    let segment = u64::from(block) * u64::from(segment_blocks);
    let capacity = record_size_bytes_limit(segment, block, sector);
    let record_bound = capacity.min(3 * u64::from(block));
    let record_max = rng.random_range(record_bound / 8..=record_bound).max(1) as u32;
    let write_buffer_count = rng.random_range(1..=4);
    Config {
        sector_size_bytes: sector,
        block_size_bytes: block,
        segment_size_bytes: segment,
        write_buffer_size_bytes: write_buffer,
        write_buffer_count,
        window_size_bytes: u64::from(write_buffer) * u64::from(write_buffer_count),
        record_size_bytes_max: record_max,
        segment_count_max: rng.random_range(3..=12),
        read_buffer_size_bytes: block * rng.random_range(1..=4),
        flush_size_bytes: rng
            .random_bool(0.3)
            .then(|| rng.random_range(1..=u64::from(write_buffer) * 2)),
        flush_timeout_ns: rng
            .random_bool(0.3)
            .then(|| rng.random_range(10_000..5_000_000)),
        attest_idle_ns: None,
        recovery_mode: if rng.random_bool(0.5) {
            RecoveryMode::Strict
        } else {
            RecoveryMode::PointInTime
        },
        // Drawn with the tail readers (`world::readers`), from their own stream.
        sector_table: true,
        cache_size_bytes: 0,
    }
}

impl fmt::Display for Swarm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "config: {:?}", self.config)?;
        writeln!(f, "faults: {:?}", self.faults)?;
        writeln!(f, "workload: {:?}", self.workload)?;
        write!(f, "enabled: {:?}", self.enabled())
    }
}
