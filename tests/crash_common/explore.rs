//! The explorer's loop: runs each workload in each variant, plans crash points, replays the
//! model through the trace, and checks every planned state; reports the first failure with
//! the one command that reproduces it.

use super::check::{check, Expectation, Failure, Setup};
use super::model::{FileOp, Model};
use super::plan::{plan, Quota};
use super::states::{crash_state, exhaustive, CrashState, StateSpec};
use super::workloads::{self, Generation, Run, Variant, Workload, VARIANTS, WORKLOADS};
use super::{seed_of, trace_file};
use ballast_log::storage::trace::{Call, Event};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// States checked by default, over every workload and variant: about a minute of the debug
/// build on a two-core machine.
pub const STATES_DEFAULT: u64 = 2000;
/// States checked per trace by default.
pub const STATES_PER_TRACE_DEFAULT: u64 = 100;
/// A planned point with no more states than this has every one checked, past its quota.
pub const EXHAUSTIVE_STATES_DEFAULT: u64 = 4;

/// What to explore, from the environment.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `BALLAST_EXPLORE_STATES`: states over every workload and variant.
    pub states_total: u64,
    /// `BALLAST_EXPLORE_STATES_PER_TRACE`: states per trace; more states mean more traces.
    pub states_per_trace: u64,
    /// `BALLAST_EXPLORE_SEED`: the first trace seed.
    pub seed_first: u64,
    /// `BALLAST_EXPLORE_EXHAUSTIVE`: a planned point with no more states than this has every
    /// one checked, even past its quota.
    pub exhaustive_states_max: u64,
    /// `BALLAST_EXPLORE=workload:variant:seed:point:state`: only that state.
    pub target: Option<Target>,
    /// `BALLAST_EXPLORE_TRACE`: the saved trace of the target's run.
    pub trace: Option<PathBuf>,
    /// `BALLAST_EXPLORE_TRACE_SECOND`: the saved trace of the log resumed from the target.
    pub trace_second: Option<PathBuf>,
    /// `BALLAST_EXPLORE_KEEP_GOING=1`: report every failure and go on (for long runs).
    pub keep_going: bool,
}

/// One crash state, by name.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    pub workload: Workload,
    pub variant: Variant,
    pub seed: u64,
    pub point: usize,
    pub spec: StateSpec,
}

impl Target {
    fn parse(text: &str) -> Target {
        let parts: Vec<&str> = text.split(':').collect();
        let usage = "BALLAST_EXPLORE=workload:variant:seed:point:state";
        assert_eq!(parts.len(), 5, "{usage}, not {text}");
        Target {
            workload: Workload::parse(parts[0]).unwrap_or_else(|| panic!("workload {}", parts[0])),
            variant: Variant::parse(parts[1]).unwrap_or_else(|| panic!("variant {}", parts[1])),
            seed: parts[2].parse().expect("a seed"),
            point: parts[3].parse().expect("a crash point"),
            spec: parts[4].parse().expect("a crash state"),
        }
    }
}

impl Settings {
    pub fn from_environment() -> Settings {
        let number = |name: &str, default: u64| {
            std::env::var(name).map_or(default, |value| {
                value.parse().unwrap_or_else(|_| panic!("{name}={value}"))
            })
        };
        let path = |name: &str| std::env::var_os(name).map(PathBuf::from);
        Settings {
            states_total: number("BALLAST_EXPLORE_STATES", STATES_DEFAULT),
            states_per_trace: number("BALLAST_EXPLORE_STATES_PER_TRACE", STATES_PER_TRACE_DEFAULT)
                .max(1),
            seed_first: number("BALLAST_EXPLORE_SEED", 1),
            exhaustive_states_max: number("BALLAST_EXPLORE_EXHAUSTIVE", EXHAUSTIVE_STATES_DEFAULT),
            target: std::env::var("BALLAST_EXPLORE")
                .ok()
                .map(|text| Target::parse(&text)),
            trace: path("BALLAST_EXPLORE_TRACE"),
            trace_second: path("BALLAST_EXPLORE_TRACE_SECOND"),
            keep_going: std::env::var("BALLAST_EXPLORE_KEEP_GOING").is_ok_and(|value| value == "1"),
        }
    }

    /// Traces per workload and variant: enough for the total at the per-trace budget.
    fn traces_per_variant(&self) -> u64 {
        let traces = (WORKLOADS.len() * VARIANTS.len()) as u64 * self.states_per_trace;
        self.states_total.div_ceil(traces).max(1)
    }
}

/// What one workload's exploration covered.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub traces: u64,
    pub events: u64,
    pub points: u64,
    pub points_exhaustive: u64,
    pub states: u64,
    pub failures: u64,
    pub elapsed: Duration,
}

/// Where an exploration stands, for the report of a failure.
struct Progress<'a> {
    settings: &'a Settings,
    start: Instant,
    summary: Summary,
}

/// Explores one workload in every variant (or only the target's state); panics with the
/// reproduction at the first failure.
pub fn explore(workload: Workload, settings: &Settings) -> Summary {
    let mut progress = Progress {
        settings,
        start: Instant::now(),
        summary: Summary::default(),
    };
    if let Some(target) = settings.target {
        if target.workload == workload {
            target_check(&target, settings);
            progress.summary.states = 1;
        }
        return progress.summary;
    }
    for round in 0..settings.traces_per_variant() {
        for variant in VARIANTS {
            let seed = settings.seed_first + round;
            let run = workloads::run(workload, variant, seed);
            progress.summary.traces += 1;
            progress.summary.events += run.trace.len() as u64;
            let plan = plan(&run.trace, settings.states_per_trace, seed);
            trace_explore(&run, &plan, &mut progress);
        }
        // A long run says how far it got, one line per round of variants.
        if settings.traces_per_variant() > 1 {
            eprintln!(
                "{}: round {} of {}, {} states, {} failures, {:.0} s",
                workload.name(),
                round + 1,
                settings.traces_per_variant(),
                progress.summary.states,
                progress.summary.failures,
                progress.start.elapsed().as_secs_f64()
            );
        }
    }
    let summary = &mut progress.summary;
    summary.elapsed = progress.start.elapsed();
    println!(
        "{}: {} traces ({} events), {} crash points ({} exhaustive), {} states, {} failures, \
         {:.1} s",
        workload.name(),
        summary.traces,
        summary.events,
        summary.points,
        summary.points_exhaustive,
        summary.states,
        summary.failures,
        summary.elapsed.as_secs_f64()
    );
    assert_eq!(summary.failures, 0, "crash states failed (reported above)");
    progress.summary
}

/// Replays the model through one trace and checks the planned states at each point.
fn trace_explore(
    run: &Run,
    plan: &std::collections::BTreeMap<usize, Quota>,
    progress: &mut Progress,
) {
    let setup = setup_of(run);
    let mut model = Model::new();
    for (point, event) in run.trace.iter().enumerate() {
        model.apply(event);
        let Some(quota) = plan.get(&point) else {
            continue;
        };
        let limit = quota.states().max(progress.settings.exhaustive_states_max);
        let (specs, all) = specs_at(&model, quota, limit, run.seed, point);
        progress.summary.points += 1;
        progress.summary.points_exhaustive += u64::from(all);
        for spec in specs {
            let state = crash_state(&model, spec);
            let expectation = Expectation::at(run.seed, &run.generations, &model);
            let seed_second = seed_of(&[run.seed, point as u64, spec_code(spec)]);
            let checked = check(&state, &expectation, &setup, seed_second, None);
            progress.summary.states += 1;
            let Err(failure) = checked else {
                continue;
            };
            let found = format!(
                "found after {:.1} s and {} states of this workload",
                progress.start.elapsed().as_secs_f64(),
                progress.summary.states
            );
            let report = report(run, &model, point, spec, &state, &failure, &found);
            if !progress.settings.keep_going {
                panic!("{report}");
            }
            eprintln!("{report}");
            progress.summary.failures += 1;
        }
    }
}

fn setup_of(run: &Run) -> Setup {
    Setup {
        config: workloads::config(run.workload),
        options: run.variant.options(),
    }
}

/// The states to check at a point: every combination of kept and lost, if there are no more
/// than `limit`, else the extremes the quota asks for; then seeded samples up to the quota,
/// which tear sectors, as no combination of kept and lost does (unless the point has a single
/// state: nothing pending). The flag says whether every combination was taken.
fn specs_at(
    model: &Model,
    quota: &Quota,
    limit: u64,
    seed: u64,
    point: usize,
) -> (Vec<StateSpec>, bool) {
    let all = exhaustive(model, limit);
    let exhausted = all.is_some();
    let mut specs = match all {
        Some(all) => all,
        None if quota.extremes => vec![StateSpec::Kept, StateSpec::Lost],
        None => Vec::new(),
    };
    if specs.len() == 1 {
        return (specs, exhausted);
    }
    let mut index = 0;
    while (specs.len() as u64) < quota.states() {
        specs.push(StateSpec::Sample(seed_of(&[seed, point as u64, index])));
        index += 1;
    }
    (specs, exhausted)
}

/// A number for a state's name, to seed what follows from it.
fn spec_code(spec: StateSpec) -> u64 {
    match spec {
        StateSpec::Kept => seed_of(&[1]),
        StateSpec::Lost => seed_of(&[2]),
        StateSpec::Sectors(index) => seed_of(&[3, index]),
        StateSpec::Writes(index) => seed_of(&[4, index]),
        StateSpec::Sample(seed) => seed_of(&[5, seed]),
    }
}

/// Checks the one state `BALLAST_EXPLORE` names, from a saved trace if one is given, and
/// describes it.
fn target_check(target: &Target, settings: &Settings) {
    let run = match &settings.trace {
        Some(path) => {
            let (trace, generations) = trace_file::load(path);
            Run {
                workload: target.workload,
                variant: target.variant,
                seed: target.seed,
                trace,
                generations,
            }
        }
        None => workloads::run(target.workload, target.variant, target.seed),
    };
    assert!(
        target.point < run.trace.len(),
        "the trace has {} events",
        run.trace.len()
    );
    let mut model = Model::new();
    for event in &run.trace[..=target.point] {
        model.apply(event);
    }
    println!("{}", point_describe(&run, &model, target.point));
    let state = crash_state(&model, target.spec);
    println!("state {}: {}", target.spec, files_describe(&state));
    let expectation = Expectation::at(run.seed, &run.generations, &model);
    let trace_second = settings.trace_second.as_deref().map(trace_file::load);
    let seed_second = seed_of(&[run.seed, target.point as u64, spec_code(target.spec)]);
    let given = trace_second.as_ref().map(|(trace, _)| trace.as_slice());
    match check(&state, &expectation, &setup_of(&run), seed_second, given) {
        Ok(()) => println!("the state checks out"),
        Err(failure) => {
            let report = report(
                &run,
                &model,
                target.point,
                target.spec,
                &state,
                &failure,
                "",
            );
            panic!("{report}");
        }
    }
}

/// Everything needed to understand and reproduce a failure; saves the traces and the state.
fn report(
    run: &Run,
    model: &Model,
    point: usize,
    spec: StateSpec,
    state: &CrashState,
    failure: &Failure,
    found: &str,
) -> String {
    let name = format!(
        "{}-{}-{}-{point}-{spec}",
        run.workload.name(),
        run.variant.name(),
        run.seed
    );
    let saved = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("crash-explorer")
        .join(&name);
    let trace_path = saved.join("trace");
    let trace_second_path = saved.join("trace-second");
    trace_file::save(&trace_path, &run.trace, &run.generations).expect("save the trace");
    trace_file::save(&trace_second_path, &failure.trace_second, &[]).expect("save the trace");
    let state_dir = saved.join("state");
    let _ = std::fs::remove_dir_all(&state_dir);
    std::fs::create_dir_all(&state_dir).expect("a directory for the state");
    super::check::state_write(&state_dir, state);
    // A planted bug must be compiled in and switched on again to reproduce.
    let planted = std::env::var("BALLAST_PLANTED").map_or(String::new(), |name| {
        format!(
            "RUSTFLAGS='--cfg ballast_planted' CARGO_TARGET_DIR=target/planted \
             BALLAST_PLANTED={name} "
        )
    });
    let second = match failure.second {
        Some(second) => format!(
            "after a second crash at point {} of the resumed log's {} events, state {}",
            second.point,
            failure.trace_second.len(),
            second.spec
        ),
        None => "at the first open after the crash".to_string(),
    };
    format!(
        "\nCRASH STATE FAILED {found}\n  workload {} variant {} trace seed {}\n  {}\n  \
         state {spec}: {}\n  {second}: {}\n  saved in {}\n  reproduce: {planted}\
         BALLAST_EXPLORE={}:{}:{}:{point}:{spec} BALLAST_EXPLORE_TRACE={} \
         BALLAST_EXPLORE_TRACE_SECOND={} cargo test --all-features --test crash_explorer\n",
        run.workload.name(),
        run.variant.name(),
        run.seed,
        point_describe(run, model, point),
        files_describe(state),
        failure.message,
        saved.display(),
        run.workload.name(),
        run.variant.name(),
        run.seed,
        trace_path.display(),
        trace_second_path.display(),
    )
}

/// The crash point: the events around it, what was acknowledged and what is pending.
fn point_describe(run: &Run, model: &Model, point: usize) -> String {
    let mut text = format!(
        "crash point {point} of {} events, acknowledged below LSN {}, generations {}:",
        run.trace.len(),
        model.lsn_acknowledged,
        generations_describe(&run.generations),
    );
    let from = point.saturating_sub(6);
    for index in from..(point + 3).min(run.trace.len()) {
        let marker = if index == point { "=>" } else { "  " };
        text += &format!(
            "\n    {marker} {index}: {}",
            event_describe(&run.trace[index])
        );
    }
    text += &format!("\n  pending directory operations: {:?}", model.dir_pending);
    for (name, &object) in &model.names_current {
        let pending = &model.objects[object].pending;
        if !pending.is_empty() {
            let ops: Vec<String> = pending
                .iter()
                .map(|(event, op)| op_describe(*event, op))
                .collect();
            text += &format!("\n  pending in {name}: {}", ops.join(", "));
        }
    }
    text
}

fn generations_describe(generations: &[Generation]) -> String {
    let parts: Vec<String> = generations
        .iter()
        .map(|generation| {
            format!(
                "[tag {} from event {}: LSN {}..{}]",
                generation.tag,
                generation.begin_event,
                generation.lsn_start,
                generation.lsn_start + generation.keys.len() as u64
            )
        })
        .collect();
    parts.join(" ")
}

fn event_describe(event: &Event) -> String {
    let call = match &event.call {
        Call::Write {
            file,
            offset_bytes,
            bytes,
        } => format!(
            "Write {{ ino {}, at {offset_bytes}, {} bytes }}",
            file.ino,
            bytes.len()
        ),
        other => format!("{other:?}"),
    };
    format!("thread {} {call} -> {:?}", event.thread, event.result)
}

fn op_describe(event: usize, op: &FileOp) -> String {
    match op {
        FileOp::Write {
            offset_bytes,
            bytes,
        } => format!(
            "write at {offset_bytes} of {} bytes (event {event})",
            bytes.len()
        ),
        FileOp::Size { size_bytes } => format!("size {size_bytes} (event {event})"),
    }
}

fn files_describe(state: &CrashState) -> String {
    let files: Vec<String> = state
        .files
        .iter()
        .map(|(name, bytes)| format!("{name} ({} bytes)", bytes.len()))
        .collect();
    files.join(", ")
}
