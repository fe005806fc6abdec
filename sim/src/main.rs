//! `ballast-sim`: run one seed, or sweep many, of the deterministic simulator.

use ballast_sim::{run, seed_parse, Failure, FaultClass, Outcome, Swarm, FAULT_CLASSES};
use clap::Parser;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Exit codes, one per class of failure.
const EXIT_CORRECTNESS: u8 = 10;
const EXIT_LIVENESS: u8 = 11;
const EXIT_PANIC: u8 = 12;
const EXIT_SIMULATOR: u8 = 13;
const EXIT_NONDETERMINISM: u8 = 14;
/// Failures printed as they happen in a sweep; the summary counts them all.
const FAILURES_PRINTED_MAX: usize = 20;

/// Runs the real Ballast log against a simulated disk that injects latency, reordering,
/// crashes, torn writes, read errors, bit flips, misdirected writes, sync and write failures
/// and ENOSPC, all drawn from one seed; an oracle checks every result and every recovery.
///
/// Exit codes: 0 pass, 10 correctness, 11 liveness, 12 panic, 13 simulator failure (an
/// enabled fault class never fired in a sweep), 14 nondeterminism (--doublecheck).
#[derive(Parser, Debug)]
#[command(name = "ballast-sim", version)]
struct Arguments {
    /// Run this one seed (a u64, or a 40-hex git commit id) and print its configuration.
    #[arg(long, conflicts_with = "seeds", value_parser = seed_parse)]
    seed: Option<u64>,
    /// Sweep this many seeds, from --from upwards.
    #[arg(long)]
    seeds: Option<u64>,
    /// The first seed of a sweep (a u64, or a 40-hex git commit id). Default: from the clock.
    #[arg(long, value_parser = seed_parse)]
    from: Option<u64>,
    /// Worker threads for a sweep. Default: all cores.
    #[arg(long)]
    jobs: Option<usize>,
    /// Run the seed twice and compare the trace digests.
    #[arg(long)]
    doublecheck: bool,
}

fn main() -> ExitCode {
    let arguments = Arguments::parse();
    ballast_sim::panic_hook_install();
    match (arguments.seed, arguments.seeds) {
        (Some(seed), _) => seed_one(seed, arguments.doublecheck),
        (None, seeds) => {
            let from = arguments.from.unwrap_or_else(seed_from_clock);
            let jobs = arguments.jobs.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, |count| count.get())
            });
            sweep(
                from,
                seeds.unwrap_or(1000),
                jobs.max(1),
                arguments.doublecheck,
            )
        }
    }
}

fn seed_from_clock() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |elapsed| elapsed.as_nanos() as u64)
}

fn reproduce(seed: u64) -> String {
    format!("cargo run --release -p ballast-sim -- --seed {seed}")
}

fn exit_code(failure: &Failure) -> u8 {
    match failure {
        Failure::Correctness(_) => EXIT_CORRECTNESS,
        Failure::Liveness(_) => EXIT_LIVENESS,
        Failure::Panic(_) => EXIT_PANIC,
    }
}

fn seed_one(seed: u64, doublecheck: bool) -> ExitCode {
    if std::env::var_os("BALLAST_SIM_TRACE").is_some() {
        // The log's own events too (`RUST_LOG=ballast_log=trace` shows every block).
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .without_time()
            .init();
    }
    println!("SEED={seed}");
    let start = Instant::now();
    let outcome = run(seed);
    print_swarm(&outcome.swarm);
    println!(
        "ran {} workload operations, {} storage operations, {} recoveries ({} corruption \
         reports) in {:.3} s",
        outcome.workload_operations,
        outcome.storage_operations,
        outcome.recoveries,
        outcome.corruptions_reported,
        start.elapsed().as_secs_f64()
    );
    println!("faults fired: {:?}", outcome.fired);
    println!("digest {:016x}", outcome.digest);
    if doublecheck {
        let again = run(seed);
        println!("digest {:016x} (second run)", again.digest);
        if again.digest != outcome.digest {
            println!("FAIL: nondeterminism: the two runs of seed {seed} differ");
            return ExitCode::from(EXIT_NONDETERMINISM);
        }
        println!("digests equal");
    }
    match &outcome.failure {
        None => {
            println!("PASS");
            ExitCode::SUCCESS
        }
        Some(failure) => {
            println!("FAIL: {failure}");
            println!("reproduce: {}", reproduce(seed));
            ExitCode::from(exit_code(failure))
        }
    }
}

fn print_swarm(swarm: &Swarm) {
    println!("{swarm}");
}

/// What a sweep has seen so far.
#[derive(Default)]
struct Tally {
    done: u64,
    failures: Vec<(u64, Failure)>,
    fired: BTreeMap<FaultClass, u64>,
    enabled: BTreeMap<FaultClass, u64>,
    storage_operations: u64,
    corruptions_reported: u64,
    group_commits: u64,
    group_records: u64,
    group_crashes: u64,
    tail_hits: u64,
    nondeterministic: Vec<u64>,
}

impl Tally {
    fn add(&mut self, outcome: Outcome, digest_again: Option<u64>) {
        self.done += 1;
        for class in outcome.swarm.enabled() {
            *self.enabled.entry(class).or_default() += 1;
        }
        for (class, count) in outcome.fired {
            *self.fired.entry(class).or_default() += count;
        }
        self.storage_operations += outcome.storage_operations;
        self.corruptions_reported += outcome.corruptions_reported;
        self.group_commits += outcome.group_commits;
        self.group_records += outcome.group_records;
        self.group_crashes += outcome.group_crashes;
        self.tail_hits += outcome.tail_hits;
        if digest_again.is_some_and(|digest| digest != outcome.digest) {
            self.nondeterministic.push(outcome.seed);
        }
        if let Some(failure) = outcome.failure {
            if self.failures.len() < FAILURES_PRINTED_MAX {
                eprintln!("\nFAIL seed {}: {failure}", outcome.seed);
                eprintln!("reproduce: {}", reproduce(outcome.seed));
            }
            self.failures.push((outcome.seed, failure));
        }
    }
}

fn sweep(from: u64, count: u64, jobs: usize, doublecheck: bool) -> ExitCode {
    println!("SEED={from} (sweep of {count} seeds, {jobs} jobs)");
    let start = Instant::now();
    let next = AtomicU64::new(0);
    let (sender, receiver) = mpsc::channel::<(Outcome, Option<u64>)>();
    let mut tally = Tally::default();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let sender = sender.clone();
            let next = &next;
            scope.spawn(move || loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    return;
                }
                let seed = from.wrapping_add(index);
                let outcome = run(seed);
                let again = doublecheck.then(|| run(seed).digest);
                if sender.send((outcome, again)).is_err() {
                    return;
                }
            });
        }
        drop(sender);
        // On a terminal the line redraws every second; in a log it is a new line every 10 s.
        let terminal = std::io::stderr().is_terminal();
        let interval = Duration::from_secs(if terminal { 1 } else { 10 });
        let mut shown = Instant::now();
        for (outcome, again) in receiver {
            tally.add(outcome, again);
            if shown.elapsed() >= interval || tally.done == count {
                progress(&tally, count, start, terminal);
                shown = Instant::now();
            }
        }
    });
    eprintln!();
    summary(&tally, start)
}

fn progress(tally: &Tally, count: u64, start: Instant, terminal: bool) {
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    eprint!(
        "{}seeds {}/{count}  failures {}  {:.0} seeds/min  {:.2}M simulated storage ops/s   {}",
        if terminal { "\r" } else { "" },
        tally.done,
        tally.failures.len(),
        tally.done as f64 * 60.0 / seconds,
        tally.storage_operations as f64 / seconds / 1e6,
        if terminal { "" } else { "\n" },
    );
}

fn summary(tally: &Tally, start: Instant) -> ExitCode {
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{} seeds in {:.1} s ({:.0} seeds/min), {} failures, {} corruption reports expected \
         and seen",
        tally.done,
        seconds,
        tally.done as f64 * 60.0 / seconds.max(1e-9),
        tally.failures.len(),
        tally.corruptions_reported
    );
    println!(
        "simulated producers: {} group commits, {:.1} records per group, {} cut by a crash; \
         tail readers: {} records read from the tail cache",
        tally.group_commits,
        tally.group_records as f64 / tally.group_commits.max(1) as f64,
        tally.group_crashes,
        tally.tail_hits
    );
    println!("{:<12} {:>10} {:>12}", "fault", "seeds on", "times fired");
    let mut silent = Vec::new();
    for class in FAULT_CLASSES {
        let enabled = tally.enabled.get(&class).copied().unwrap_or(0);
        let fired = tally.fired.get(&class).copied().unwrap_or(0);
        println!("{:<12} {:>10} {:>12}", format!("{class:?}"), enabled, fired);
        if enabled > 0 && fired == 0 {
            silent.push(class);
        }
    }
    if let Some((seed, failure)) = tally.failures.iter().min_by_key(|(seed, _)| *seed) {
        println!("FAIL: first failing seed {seed}: {failure}");
        println!("reproduce: {}", reproduce(*seed));
        return ExitCode::from(exit_code(failure));
    }
    if !tally.nondeterministic.is_empty() {
        println!("FAIL: nondeterministic seeds: {:?}", tally.nondeterministic);
        return ExitCode::from(EXIT_NONDETERMINISM);
    }
    if !silent.is_empty() {
        println!("FAIL: simulator: enabled fault classes never fired: {silent:?}");
        return ExitCode::from(EXIT_SIMULATOR);
    }
    println!("PASS");
    ExitCode::SUCCESS
}
