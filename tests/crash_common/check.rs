//! The checker: writes a crash state out as a real directory, opens it as the next process
//! would (`DirectStorage::open`, then `Log::open` in strict recovery), and holds the log to its
//! promises. Then it resumes the log, traces that, cuts the power a second time somewhere in
//! the new trace, and checks the state that leaves too.

use super::model::Model;
use super::states::{crash_state, CrashState, StateSpec};
use super::workloads::{generations_place, writes_missed, Generation};
use super::{record, Rng};
use crate::disk_common::ScratchDir;
use ballast_log::storage::trace::{self, Event};
use ballast_log::storage::{DirectOptions, DirectStorage};
use ballast_log::{Config, Error, Log, Lsn};
use std::panic::AssertUnwindSafe;
use std::path::Path;

/// The tag of the records the checker appends after a crash: far from the workloads' own
/// (1, 2, 3), so that a record of either kind is never taken for the other.
const TAG_RESUMED_BASE: u32 = 100;

/// What a crash state must hold.
#[derive(Clone, Debug)]
pub struct Expectation {
    /// The workload's seed: records follow from it.
    pub seed: u64,
    /// The generations whose records may be on disk, in the order they began.
    pub generations: Vec<Generation>,
    /// Every record below this LSN was acknowledged as durable.
    pub lsn_acknowledged: Lsn,
    /// Records below this LSN may be gone: `truncate_prefix` removed their segments.
    pub lsn_droppable: Lsn,
}

impl Expectation {
    /// What a power cut after the event the model last applied must leave.
    pub fn at(seed: u64, generations: &[Generation], model: &Model) -> Expectation {
        let point = model.event_count.checked_sub(1);
        Expectation {
            seed,
            generations: generations
                .iter()
                .filter(|generation| Some(generation.begin_event) <= point)
                .cloned()
                .collect(),
            lsn_acknowledged: model.lsn_acknowledged,
            lsn_droppable: model.lsn_droppable,
        }
    }

    /// The record appended at `lsn`, by the latest generation that starts at or before it;
    /// `false` if none was.
    fn expected(&self, lsn: Lsn, out: &mut Vec<u8>) -> bool {
        let Some(generation) = self
            .generations
            .iter()
            .rev()
            .find(|generation| generation.lsn_start <= lsn)
        else {
            return false;
        };
        match generation.key(lsn) {
            Some(key) => {
                record(self.seed, generation.tag, key, out);
                true
            }
            None => false,
        }
    }

    /// The end of what was appended: no record may exist at or after it.
    fn lsn_appended_end(&self) -> Lsn {
        self.generations.last().map_or(0, |generation| {
            generation.lsn_start + generation.keys.len() as u64
        })
    }
}

/// How the checker opens a state.
#[derive(Clone, Debug)]
pub struct Setup {
    pub config: Config,
    pub options: DirectOptions,
}

/// Where the second power cut lands: a point of the resumed log's trace and a state there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecondCrash {
    pub point: usize,
    pub spec: StateSpec,
}

/// A state the log mishandled.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    /// The second crash, if the failure came after it.
    pub second: Option<SecondCrash>,
    /// The resumed log's trace, to reproduce the second crash exactly.
    pub trace_second: Vec<Event>,
}

/// Checks one crash state, then a second crash after the log resumed from it. `seed_second`
/// picks the second crash; `trace_second_given` replays a saved trace of the resumed log
/// instead of the one this run records (the IO threads make traces differ between runs).
pub fn check(
    state: &CrashState,
    expectation: &Expectation,
    setup: &Setup,
    seed_second: u64,
    trace_second_given: Option<&[Event]>,
) -> Result<(), Failure> {
    let dir = ScratchDir::new("crash-state");
    state_write(dir.path(), state);
    trace::start();
    let resumed = catch(|| first_open(dir.path(), expectation, setup, seed_second));
    let trace_recorded = trace::stop();
    let completed = match &resumed {
        Ok(_) => catch(|| Ok(trace_completed(dir.path(), state, trace_recorded.clone()))),
        Err(_) => Ok(trace_recorded.clone()),
    };
    let (resumed, trace_recorded) = match completed {
        Ok(trace) => (resumed, trace),
        Err(message) => (Err(message), trace_recorded),
    };
    let trace_second = trace_second_given.map_or(trace_recorded, <[Event]>::to_vec);
    let failure = |message, second| Failure {
        message,
        second,
        trace_second: trace_second.clone(),
    };
    let mut generation = resumed.map_err(|message| failure(message, None))?;
    let mut generations = expectation.generations.clone();
    generations.iter_mut().for_each(|old| old.begin_event = 0);
    generations_place(&trace_second, std::slice::from_mut(&mut generation));
    generations.push(generation);
    let second = second_crash_pick(seed_second, trace_second.len());
    let result = catch(|| {
        second_open(
            state,
            expectation,
            generations,
            setup,
            &trace_second,
            second,
        )
    });
    result.map_err(|message| failure(message, Some(second)))
}

/// The resumed log's trace, with any write it missed (see `writes_missed`).
fn trace_completed(dir: &Path, state: &CrashState, mut trace: Vec<Event>) -> Vec<Event> {
    let mut model = Model::with_files(&state.files);
    trace.iter().for_each(|event| model.apply(event));
    trace.extend(writes_missed(dir, &model));
    trace
}

/// The first open after the crash: checks the state, then resumes the log. Returns what it
/// appended.
fn first_open(
    dir: &Path,
    expectation: &Expectation,
    setup: &Setup,
    seed: u64,
) -> Result<Generation, String> {
    let mut log = open(dir, setup)?;
    verify(&mut log, expectation)?;
    // The open made everything it recovered durable before it returned.
    trace::acknowledged(log.durable_lsn());
    resume(log, expectation, seed)
}

/// Appends after the crash: two flushed rounds, each read back, then a few records never
/// flushed; a drop without close (the second crash may land anywhere after) or a close.
fn resume(
    mut log: Log<DirectStorage>,
    expectation: &Expectation,
    seed: u64,
) -> Result<Generation, String> {
    let mut rng = Rng::new(seed);
    let mut generation = Generation {
        begin_event: 0,
        tag: TAG_RESUMED_BASE + expectation.generations.len() as u32,
        lsn_start: log.next_lsn(),
        keys: Vec::new(),
    };
    let mut bytes = Vec::new();
    let mut read = vec![0u8; log.config().record_size_bytes_max as usize];
    for round in 0..3 {
        for _ in 0..1 + rng.below(4) {
            let lsn = log.next_lsn();
            record(expectation.seed, generation.tag, lsn, &mut bytes);
            let appended = log.append(&bytes).map_err(|error| {
                format!("append after the crash failed at LSN {lsn}: {error:?}")
            })?;
            assert_eq!(appended, lsn);
            generation.keys.push(lsn);
        }
        if round == 2 {
            break;
        }
        log.flush()
            .map_err(|error| format!("flush after the crash failed: {error:?}"))?;
        trace::acknowledged(log.durable_lsn());
        read_back(&mut log, &generation, expectation.seed, &mut read)?;
    }
    match rng.below(3) {
        0 => drop(
            log.close()
                .map_err(|error| format!("close failed: {error:?}"))?,
        ),
        _ => drop(log),
    }
    Ok(generation)
}

fn read_back(
    log: &mut Log<DirectStorage>,
    generation: &Generation,
    seed: u64,
    read: &mut [u8],
) -> Result<(), String> {
    let mut expected = Vec::new();
    for (index, &key) in generation.keys.iter().enumerate() {
        let lsn = generation.lsn_start + index as u64;
        let size = log
            .read(lsn, read)
            .map_err(|error| format!("reading back record {lsn} after the crash: {error:?}"))?;
        record(seed, generation.tag, key, &mut expected);
        if read[..size] != expected[..] {
            return Err(format!(
                "record {lsn} appended after the crash reads back wrong"
            ));
        }
    }
    Ok(())
}

/// Picks the second power cut: the end of the resumed log's trace two times in five, else
/// any point; all kept, all lost or a random state.
pub fn second_crash_pick(seed: u64, trace_len: usize) -> SecondCrash {
    let mut rng = Rng::new(seed ^ 0x2ECD);
    assert!(trace_len > 0, "the resumed log's trace is never empty");
    let point = match rng.below(5) {
        0 | 1 => trace_len - 1,
        _ => rng.below(trace_len as u64) as usize,
    };
    let spec = match rng.below(10) {
        0..=2 => StateSpec::Kept,
        3..=5 => StateSpec::Lost,
        _ => StateSpec::Sample(rng.next()),
    };
    SecondCrash { point, spec }
}

/// The second crash: replays the resumed log's trace over the first state, cuts the power
/// at `second`, and checks what is left against both crashes' promises.
fn second_open(
    state: &CrashState,
    expectation: &Expectation,
    generations: Vec<Generation>,
    setup: &Setup,
    trace_second: &[Event],
    second: SecondCrash,
) -> Result<(), String> {
    let mut model = Model::with_files(&state.files);
    for event in &trace_second[..=second.point] {
        model.apply(event);
    }
    let state_second = crash_state(&model, second.spec);
    let expectation_second = Expectation {
        seed: expectation.seed,
        generations: generations
            .into_iter()
            .filter(|generation| generation.begin_event <= second.point)
            .collect(),
        lsn_acknowledged: expectation.lsn_acknowledged.max(model.lsn_acknowledged),
        lsn_droppable: expectation.lsn_droppable,
    };
    let dir = ScratchDir::new("crash-state-second");
    state_write(dir.path(), &state_second);
    let mut log = open(dir.path(), setup)?;
    verify(&mut log, &expectation_second)
}

/// Writes the files of a state into an empty directory.
pub fn state_write(dir: &Path, state: &CrashState) {
    for (name, bytes) in &state.files {
        std::fs::write(dir.join(name), bytes).expect("write a crash state's file");
    }
}

fn open(dir: &Path, setup: &Setup) -> Result<Log<DirectStorage>, String> {
    let storage = DirectStorage::open(dir, &setup.options)
        .map_err(|error| format!("DirectStorage::open failed: {error:?}"))?;
    Log::open(setup.config.clone(), storage).map_err(|error| match error {
        Error::Corruption { .. } => {
            format!("Log::open reported {error:?}, but no damage was injected")
        }
        error => format!("Log::open failed: {error:?}"),
    })
}

/// Checks what the opened log holds: every acknowledged record, byte for byte, in order;
/// nothing below the first record but what retention removed; past the acknowledged ones,
/// only records that were appended.
fn verify(log: &mut Log<DirectStorage>, expectation: &Expectation) -> Result<(), String> {
    let (first, next) = (log.first_lsn(), log.next_lsn());
    if log.durable_lsn() != next {
        return Err(format!(
            "after open the durable end {} is not the end {next}",
            log.durable_lsn()
        ));
    }
    if next < expectation.lsn_acknowledged {
        return Err(format!(
            "acknowledged records lost: the log ends at {next}, but every record below {} \
             was acknowledged",
            expectation.lsn_acknowledged
        ));
    }
    if first > expectation.lsn_droppable {
        return Err(format!(
            "the log starts at {first}, but retention removed nothing past {}",
            expectation.lsn_droppable
        ));
    }
    if next > expectation.lsn_appended_end() {
        return Err(format!(
            "the log ends at {next}, past the {} records ever appended",
            expectation.lsn_appended_end()
        ));
    }
    records_verify(log, expectation, first, next)
}

fn records_verify(
    log: &mut Log<DirectStorage>,
    expectation: &Expectation,
    first: Lsn,
    next: Lsn,
) -> Result<(), String> {
    let mut cursor = log
        .cursor(first)
        .map_err(|error| format!("cursor at {first}: {error:?}"))?;
    let mut expected = Vec::new();
    for lsn in first..next {
        let found = log
            .cursor_next(&mut cursor)
            .map_err(|error| format!("reading record {lsn}: {error:?}"))?
            .ok_or_else(|| format!("the cursor ended at {lsn}, before the log's end {next}"))?;
        if found.lsn != lsn {
            return Err(format!("the cursor yielded LSN {} for {lsn}", found.lsn));
        }
        if !expectation.expected(lsn, &mut expected) {
            return Err(format!("record {lsn} was never appended"));
        }
        if found.data != expected.as_slice() {
            return Err(format!(
                "record {lsn} is not the one appended: found {}, expected {}",
                describe(found.data),
                describe(&expected)
            ));
        }
    }
    match log.cursor_next(&mut cursor) {
        Ok(None) => Ok(()),
        Ok(Some(extra)) => Err(format!("the cursor yielded {} past the end", extra.lsn)),
        Err(error) => Err(format!("reading past the end: {error:?}")),
    }
}

/// A record's size and the key and tag its first bytes spell.
fn describe(bytes: &[u8]) -> String {
    let key = bytes
        .get(..8)
        .map(|key| u64::from_le_bytes(key.try_into().unwrap()));
    let tag = bytes
        .get(8..12)
        .map(|tag| u32::from_le_bytes(tag.try_into().unwrap()));
    format!("{} bytes, key {key:?}, tag {tag:?}", bytes.len())
}

/// Runs `work`, turning a panic into a failure that names it.
fn catch<T>(work: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match std::panic::catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|text| text.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_string());
            Err(format!("panicked: {message}"))
        }
    }
}
