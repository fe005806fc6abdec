//! The crash states of one crash point: which of the operations pending in the [`Model`] a
//! power cut keeps, loses or tears, named by a [`StateSpec`] so that a failure can be
//! reproduced exactly.
//!
//! A directory operation is kept or lost whole, and only together with every earlier pending
//! operation on one of its names (`docs/crash-consistency.md`, "The directory"). A size change is
//! kept or lost whole. A write is kept, lost or torn sector by sector (512 bytes): a torn
//! sector holds the new bytes up to a cut, then the old bytes or garbage.

use super::model::{op_apply, write_sectors, DirOp, FileOp, Model, SECTOR_SIZE_BYTES};
use super::Rng;
use std::collections::BTreeMap;

/// The most pending directory operations whose allowed subsets are enumerated.
const DIR_OPS_ENUMERATED_MAX: usize = 16;

/// What a power cut did to one sector of a pending write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Keep,
    Lose,
    /// The new bytes up to `cut_bytes` (inside the sector), then the old bytes or garbage.
    Torn {
        cut_bytes: usize,
        garbage: bool,
    },
}

/// One crash state, by name: every choice follows from it and the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateSpec {
    /// Everything pending survived.
    Kept,
    /// Everything pending was lost.
    Lost,
    /// The `index`th of every combination of kept and lost sectors, size changes and
    /// directory operations (only sectors whose new bytes differ from the durable ones count).
    Sectors(u64),
    /// The `index`th of every combination of kept and lost whole writes, size changes and
    /// directory operations.
    Writes(u64),
    /// A seeded random choice, tears included.
    Sample(u64),
}

impl std::fmt::Display for StateSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateSpec::Kept => write!(f, "kept"),
            StateSpec::Lost => write!(f, "lost"),
            StateSpec::Sectors(index) => write!(f, "sectors-{index}"),
            StateSpec::Writes(index) => write!(f, "writes-{index}"),
            StateSpec::Sample(seed) => write!(f, "sample-{seed}"),
        }
    }
}

impl std::str::FromStr for StateSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<StateSpec, String> {
        let number = |rest: &str| {
            rest.parse::<u64>()
                .map_err(|error| format!("{text}: {error}"))
        };
        match text.split_once('-') {
            None if text == "kept" => Ok(StateSpec::Kept),
            None if text == "lost" => Ok(StateSpec::Lost),
            Some(("sectors", rest)) => Ok(StateSpec::Sectors(number(rest)?)),
            Some(("writes", rest)) => Ok(StateSpec::Writes(number(rest)?)),
            Some(("sample", rest)) => Ok(StateSpec::Sample(number(rest)?)),
            _ => Err(format!("not a crash state: {text}")),
        }
    }
}

/// The files a power cut left: name to contents (the length is the file's size).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrashState {
    pub files: BTreeMap<String, Vec<u8>>,
}

/// The choices of one state: for each pending directory operation whether it survived, and
/// for each object, for each of its pending operations, the fate of each of its sectors (one
/// entry for a size change).
#[derive(Clone, Debug)]
struct Choice {
    dir_kept: Vec<bool>,
    file_fates: Vec<Vec<Vec<Fate>>>,
    garbage_seed: u64,
}

/// The pending operations of a crash point, counted for enumeration.
struct Pending {
    /// Allowed subsets of the directory operations, as bit masks (bit `i`: operation `i`).
    dir_masks: Option<Vec<u64>>,
    /// For each object, for each pending operation, for each sector: whether keeping or
    /// losing it can make a difference.
    effective: Vec<Vec<Vec<bool>>>,
}

impl Pending {
    fn of(model: &Model) -> Pending {
        let dir_masks = (model.dir_pending.len() <= DIR_OPS_ENUMERATED_MAX)
            .then(|| dir_masks_allowed(&model.dir_pending));
        let reachable = objects_reachable(model);
        let effective = model
            .objects
            .iter()
            .zip(reachable)
            .map(|(object, reachable)| {
                let mut effective = sectors_effective(&object.durable, &object.pending);
                if !reachable {
                    effective.iter_mut().for_each(|sectors| sectors.fill(false));
                }
                effective
            })
            .collect();
        Pending {
            dir_masks,
            effective,
        }
    }

    /// Units at sector level: sectors that matter and size changes.
    fn units_sectors(&self) -> u64 {
        self.effective
            .iter()
            .flatten()
            .map(|sectors| sectors.iter().filter(|&&effective| effective).count() as u64)
            .sum()
    }

    /// Units at write level: whole writes and size changes with a sector that matters.
    fn units_writes(&self) -> u64 {
        self.effective
            .iter()
            .flatten()
            .filter(|sectors| sectors.contains(&true))
            .count() as u64
    }

    /// How many states a level has, if it can be counted in a `u64` and enumerated.
    fn count(&self, units: u64) -> Option<u64> {
        let masks = self.dir_masks.as_ref()?.len() as u64;
        let combinations = 1u64.checked_shl(u32::try_from(units).ok()?)?;
        masks.checked_mul(combinations)
    }
}

/// Every state of the crash point, if there are at most `limit`: at sector level if that
/// level is small enough, else at write level.
pub fn exhaustive(model: &Model, limit: u64) -> Option<Vec<StateSpec>> {
    let pending = Pending::of(model);
    if let Some(count) = pending
        .count(pending.units_sectors())
        .filter(|&n| n <= limit)
    {
        return Some((0..count).map(StateSpec::Sectors).collect());
    }
    let count = pending.count(pending.units_writes())?;
    (count <= limit).then(|| (0..count).map(StateSpec::Writes).collect())
}

/// The files a power cut leaves in state `spec` of the crash point `model` is at.
pub fn crash_state(model: &Model, spec: StateSpec) -> CrashState {
    let choice = choice_of(model, spec);
    let mut names = model.names_durable.clone();
    for (index, (_, op)) in model.dir_pending.iter().enumerate() {
        if choice.dir_kept[index] {
            op.apply(&mut names);
        }
    }
    let mut rng = Rng::new(choice.garbage_seed);
    let files = names
        .into_iter()
        .map(|(name, object)| {
            let file = &model.objects[object];
            let fates = &choice.file_fates[object];
            (name, image(&file.durable, &file.pending, fates, &mut rng))
        })
        .collect();
    CrashState { files }
}

fn choice_of(model: &Model, spec: StateSpec) -> Choice {
    let pending = Pending::of(model);
    let uniform = |fate: Fate| Choice {
        dir_kept: vec![fate == Fate::Keep; model.dir_pending.len()],
        file_fates: fates_uniform(&pending.effective, fate),
        garbage_seed: 0,
    };
    match spec {
        StateSpec::Kept => uniform(Fate::Keep),
        StateSpec::Lost => uniform(Fate::Lose),
        StateSpec::Sectors(index) => choice_indexed(model, &pending, index, true),
        StateSpec::Writes(index) => choice_indexed(model, &pending, index, false),
        StateSpec::Sample(seed) => choice_sampled(model, &pending, seed),
    }
}

fn fates_uniform(effective: &[Vec<Vec<bool>>], fate: Fate) -> Vec<Vec<Vec<Fate>>> {
    effective
        .iter()
        .map(|ops| {
            ops.iter()
                .map(|sectors| vec![fate; sectors.len()])
                .collect()
        })
        .collect()
}

/// Decodes an enumeration index: the low part picks the directory subset, each following bit
/// keeps one unit (a sector that matters, or a whole write, and a size change).
fn choice_indexed(model: &Model, pending: &Pending, index: u64, sectors: bool) -> Choice {
    let masks = pending
        .dir_masks
        .as_ref()
        .expect("enumerated only with few directory operations");
    let mask = masks[(index % masks.len() as u64) as usize];
    let mut bits = index / masks.len() as u64;
    let mut take = || {
        let kept = bits & 1 == 1;
        bits >>= 1;
        if kept {
            Fate::Keep
        } else {
            Fate::Lose
        }
    };
    let mut file_fates = Vec::new();
    for ops in &pending.effective {
        let mut object = Vec::new();
        for op in ops {
            let fates = match sectors {
                true => op
                    .iter()
                    .map(|&effective| if effective { take() } else { Fate::Keep })
                    .collect(),
                false if op.contains(&true) => vec![take(); op.len()],
                false => vec![Fate::Keep; op.len()],
            };
            object.push(fates);
        }
        file_fates.push(object);
    }
    let dir_kept = (0..model.dir_pending.len())
        .map(|bit| mask & (1 << bit) != 0)
        .collect();
    Choice {
        dir_kept,
        file_fates,
        garbage_seed: index,
    }
}

/// Every subset of the pending directory operations that keeps, with each operation, every
/// earlier one that touches one of its names.
fn dir_masks_allowed(ops: &[(usize, DirOp)]) -> Vec<u64> {
    assert!(ops.len() <= DIR_OPS_ENUMERATED_MAX);
    (0..1u64 << ops.len())
        .filter(|&mask| {
            (0..ops.len()).all(|later| {
                mask & (1 << later) == 0
                    || (0..later).all(|earlier| {
                        mask & (1 << earlier) != 0 || !ops[earlier].1.touches(&ops[later].1)
                    })
            })
        })
        .collect()
}

/// Which objects a name may hold after a power cut: a durable name's, or one that a pending
/// directory operation gives a name. The fates of the others change nothing.
fn objects_reachable(model: &Model) -> Vec<bool> {
    let mut reachable = vec![false; model.objects.len()];
    let mut names = model.names_durable.clone();
    names.values().for_each(|&object| reachable[object] = true);
    for (_, op) in &model.dir_pending {
        op.apply(&mut names);
        names.values().for_each(|&object| reachable[object] = true);
    }
    reachable
}

/// Keeps `wanted` directory operations, dropping any whose earlier operation on a shared name
/// is lost.
fn dir_closed(ops: &[(usize, DirOp)], wanted: &[bool]) -> Vec<bool> {
    let mut kept = wanted.to_vec();
    for later in 0..ops.len() {
        let blocked =
            (0..later).any(|earlier| !kept[earlier] && ops[earlier].1.touches(&ops[later].1));
        kept[later] = kept[later] && !blocked;
    }
    kept
}

/// For each pending operation of one object, for each of its sectors, whether its fate can
/// change the file: a sector whose bytes differ from the durable ones in any pending write,
/// and every sector of an object whose size changes.
fn sectors_effective(durable: &[u8], pending: &[(usize, FileOp)]) -> Vec<Vec<bool>> {
    let resized = pending
        .iter()
        .any(|(_, op)| matches!(op, FileOp::Size { .. }));
    let mut differing = std::collections::HashSet::new();
    for (_, op) in pending {
        let FileOp::Write {
            offset_bytes,
            bytes,
        } = op
        else {
            continue;
        };
        for range in write_sectors(*offset_bytes, bytes.len()) {
            let start = *offset_bytes as usize + range.start;
            let old = durable.get(start..start + range.len());
            if old != Some(&bytes[range.clone()]) {
                differing.insert(start as u64 / SECTOR_SIZE_BYTES);
            }
        }
    }
    pending
        .iter()
        .map(|(_, op)| match op {
            FileOp::Size { .. } => vec![true],
            FileOp::Write {
                offset_bytes,
                bytes,
            } => write_sectors(*offset_bytes, bytes.len())
                .into_iter()
                .map(|range| {
                    let sector = (*offset_bytes + range.start as u64) / SECTOR_SIZE_BYTES;
                    resized || differing.contains(&sector)
                })
                .collect(),
        })
        .collect()
}

/// A seeded random state, in one of three styles: each unit on its own; everything made
/// before a cut point and nothing after (a disk that persists in order), torn at the cut;
/// whole writes on their own, with one torn sector.
fn choice_sampled(model: &Model, pending: &Pending, seed: u64) -> Choice {
    let mut rng = Rng::new(seed);
    let garbage_seed = rng.next();
    let (dir_wanted, file_fates) = match rng.below(3) {
        0 => sample_independent(model, pending, &mut rng),
        1 => sample_in_order(model, pending, &mut rng),
        _ => sample_whole_writes(model, pending, &mut rng),
    };
    Choice {
        dir_kept: dir_closed(&model.dir_pending, &dir_wanted),
        file_fates,
        garbage_seed,
    }
}

fn torn(rng: &mut Rng, size_bytes: usize) -> Fate {
    Fate::Torn {
        cut_bytes: rng.below(size_bytes.max(1) as u64) as usize,
        garbage: rng.below(2) == 0,
    }
}

type Sampled = (Vec<bool>, Vec<Vec<Vec<Fate>>>);

fn sample_independent(model: &Model, pending: &Pending, rng: &mut Rng) -> Sampled {
    let keep_percent = [20, 50, 80][rng.below(3) as usize];
    let torn_percent = [0, 2, 10][rng.below(3) as usize];
    let dir_wanted = (0..model.dir_pending.len())
        .map(|_| rng.below(100) < keep_percent)
        .collect();
    let mut fates = fates_uniform(&pending.effective, Fate::Lose);
    for (object, ops) in fates.iter_mut().enumerate() {
        for (op, sectors) in ops.iter_mut().enumerate() {
            let size_bytes = sector_size_of(&model.objects[object].pending[op].1);
            for fate in sectors.iter_mut() {
                *fate = match rng.below(100) {
                    roll if roll < torn_percent => torn(rng, size_bytes),
                    _ if rng.below(100) < keep_percent => Fate::Keep,
                    _ => Fate::Lose,
                };
            }
        }
    }
    (dir_wanted, fates)
}

/// The size of a write's sectors (a size change has one unit, never torn).
fn sector_size_of(op: &FileOp) -> usize {
    match op {
        FileOp::Write { .. } => SECTOR_SIZE_BYTES as usize,
        FileOp::Size { .. } => 0,
    }
}

fn sample_in_order(model: &Model, pending: &Pending, rng: &mut Rng) -> Sampled {
    let mut events: Vec<usize> = model.dir_pending.iter().map(|(event, _)| *event).collect();
    for object in &model.objects {
        events.extend(object.pending.iter().map(|(event, _)| *event));
    }
    events.sort_unstable();
    events.dedup();
    // Everything made before `cut` survives and the operation made at `cut` is torn; a cut
    // past the last operation keeps everything.
    let roll = rng.below(events.len() as u64 + 1) as usize;
    let cut = events.get(roll).copied().unwrap_or(usize::MAX);
    let dir_wanted = model
        .dir_pending
        .iter()
        .map(|(event, _)| *event < cut)
        .collect();
    let mut fates = fates_uniform(&pending.effective, Fate::Lose);
    for (object, ops) in fates.iter_mut().enumerate() {
        for (op, sectors) in ops.iter_mut().enumerate() {
            let (event, file_op) = &model.objects[object].pending[op];
            if *event < cut {
                sectors.fill(Fate::Keep);
            } else if *event == cut && sector_size_of(file_op) > 0 {
                let kept = rng.below(sectors.len() as u64 + 1) as usize;
                sectors[..kept].fill(Fate::Keep);
                if kept < sectors.len() {
                    sectors[kept] = torn(rng, SECTOR_SIZE_BYTES as usize);
                }
            }
        }
    }
    (dir_wanted, fates)
}

fn sample_whole_writes(model: &Model, pending: &Pending, rng: &mut Rng) -> Sampled {
    let keep_percent = [25, 50, 75][rng.below(3) as usize];
    let dir_wanted = (0..model.dir_pending.len())
        .map(|_| rng.below(100) < keep_percent)
        .collect();
    let mut fates = fates_uniform(&pending.effective, Fate::Lose);
    let mut writes = Vec::new();
    for (object, ops) in fates.iter_mut().enumerate() {
        for (op, sectors) in ops.iter_mut().enumerate() {
            if rng.below(100) < keep_percent {
                sectors.fill(Fate::Keep);
            }
            if sector_size_of(&model.objects[object].pending[op].1) > 0 {
                writes.push((object, op));
            }
        }
    }
    if !writes.is_empty() {
        let (object, op) = writes[rng.below(writes.len() as u64) as usize];
        let sectors = &mut fates[object][op];
        let sector = rng.below(sectors.len() as u64) as usize;
        sectors[sector] = torn(rng, SECTOR_SIZE_BYTES as usize);
    }
    (dir_wanted, fates)
}

/// A file after a power cut: its durable image with each pending operation applied as its
/// fates say, in the order the operations were made.
fn image(
    durable: &[u8],
    pending: &[(usize, FileOp)],
    fates: &[Vec<Fate>],
    rng: &mut Rng,
) -> Vec<u8> {
    let mut bytes = durable.to_vec();
    for ((_, op), fates) in pending.iter().zip(fates) {
        match op {
            FileOp::Size { .. } => {
                if fates[0] == Fate::Keep {
                    op_apply(&mut bytes, op);
                }
            }
            FileOp::Write {
                offset_bytes,
                bytes: written,
            } => {
                let ranges = write_sectors(*offset_bytes, written.len());
                for (range, fate) in ranges.into_iter().zip(fates) {
                    let at = *offset_bytes as usize + range.start;
                    sector_apply(&mut bytes, at, &written[range], *fate, rng);
                }
            }
        }
    }
    bytes
}

/// Applies one sector of a write as its fate says.
fn sector_apply(bytes: &mut Vec<u8>, at: usize, new: &[u8], fate: Fate, rng: &mut Rng) {
    let (cut, garbage) = match fate {
        Fate::Lose => return,
        Fate::Keep => (new.len(), false),
        Fate::Torn { cut_bytes, garbage } => (cut_bytes.min(new.len()), garbage),
    };
    if bytes.len() < at + new.len() {
        bytes.resize(at + new.len(), 0);
    }
    bytes[at..at + cut].copy_from_slice(&new[..cut]);
    if garbage {
        for byte in &mut bytes[at + cut..at + new.len()] {
            *byte = rng.next() as u8;
        }
    }
}
