//! `ballast-bench`: Ballast side by side with the device's ceilings (raw `O_DIRECT`), a naive
//! `O_APPEND` file, okaywal and raft-engine, on the same machine, in one run.
//!
//! Every measurement runs in a child process of its own (one system, one workload, one
//! repetition), so that peak RSS is per system; repetitions interleave the systems and the
//! tables show medians.

mod systems;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use systems::Res;

#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Directory for the files (a new directory is made inside and removed afterwards).
    /// Default: /var/tmp, which accepts O_DIRECT.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Smoke test: small sizes, few samples, one repetition.
    #[arg(long)]
    quick: bool,
    /// Repetitions of every case, systems interleaved; tables show the median.
    #[arg(long, value_name = "N")]
    repetitions: Option<u32>,
    /// Payload bytes of each bulk repetition.
    #[arg(long, value_name = "BYTES")]
    bulk_bytes: Option<u64>,
    /// Durable appends per producer (1 KiB records).
    #[arg(long, value_name = "N")]
    durable_ops: Option<u64>,
    /// Payload bytes written, then scanned and read at random (1 KiB records).
    #[arg(long, value_name = "BYTES")]
    read_bytes: Option<u64>,
    /// Random reads by LSN in each pass (cold, then warm).
    #[arg(long, value_name = "N")]
    random_reads: Option<u64>,
    /// Which workloads to run, comma-separated: bulk, durable, read, tail (16 producers with
    /// tail readers, and a replica catching up), memory (peak RSS at two log sizes). Default:
    /// all of them.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_enum)]
    workloads: Vec<Workload>,
    /// Print the results as JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Run one case in this process (internal: the parent passes a JSON spec).
    #[arg(long, hide = true)]
    child: Option<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Bulk,
    Durable,
    Read,
    Tail,
    Memory,
}

/// The tail workload's systems: Ballast with this many tail readers, and a replica that
/// starts `TAIL_BEHIND_BYTES` behind the producers.
const SYSTEMS_TAIL: [&str; 4] = [
    "no readers",
    "1 tail reader",
    "16 tail readers",
    "1 replica from lsn 0",
];
const TAIL_PRODUCERS: u64 = 16;
/// How far behind the replica starts, in payload bytes (1 KiB records).
const TAIL_BEHIND_BYTES: u64 = 64 << 20;
const TAIL_BEHIND_BYTES_QUICK: u64 = 8 << 20;

const SYSTEMS_BULK: [&str; 6] = [
    "raw O_DIRECT QD1",
    "raw O_DIRECT QD4",
    "naive O_APPEND",
    "okaywal",
    "raft-engine",
    "ballast",
];
const SYSTEMS: [&str; 5] = [
    "ceiling",
    "naive O_APPEND",
    "okaywal",
    "raft-engine",
    "ballast",
];

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(spec) = &args.child {
        return match child(spec) {
            Ok(result) => {
                println!("RESULT {result}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{error}");
                ExitCode::FAILURE
            }
        };
    }
    match parent(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ballast-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------
// The child: one system, one workload.

fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

fn latency_json(histogram: &hdrhistogram::Histogram<u64>) -> Value {
    json!({
        "p50_ns": histogram.value_at_quantile(0.50),
        "p99_ns": histogram.value_at_quantile(0.99),
        "p999_ns": histogram.value_at_quantile(0.999),
    })
}

fn child(spec: &str) -> Res<Value> {
    let spec: Value = serde_json::from_str(spec).map_err(|e| e.to_string())?;
    let text = |key: &str| spec[key].as_str().unwrap_or_default().to_string();
    let number = |key: &str| spec[key].as_u64().unwrap_or_default();
    let (system, workload) = (text("system"), text("workload"));
    let dir = PathBuf::from(text("dir"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let pool = systems::pool();
    let (bytes, record_size) = (number("bytes"), number("record_size") as usize);
    let (producers, ops, reads) = (number("producers"), number("ops"), number("reads"));
    use systems::*;
    let result = match workload.as_str() {
        "bulk" => {
            let r = match system.as_str() {
                "raw O_DIRECT QD1" => ceiling_bulk(&dir, bytes, 1, &pool),
                "raw O_DIRECT QD4" => ceiling_bulk(&dir, bytes, 4, &pool),
                "naive O_APPEND" => naive_bulk(&dir, bytes, record_size, &pool),
                "okaywal" => okaywal_bulk(&dir, bytes, record_size, &pool),
                "raft-engine" => raft_bulk(&dir, bytes, record_size, &pool),
                "ballast" => ballast_bulk(&dir, bytes, record_size, &pool),
                other => Err(format!("unknown system {other}")),
            }?;
            // The ceilings write the same payload bytes; count them as the same records.
            let records = if r.records == 0 {
                bytes / record_size as u64
            } else {
                r.records
            };
            json!({"records": records, "bytes": bytes, "ns": r.ns})
        }
        "durable" => {
            let r = match system.as_str() {
                "ceiling" => ceiling_durable(&dir, ops, &pool),
                "naive O_APPEND" => naive_durable(&dir, producers, ops, record_size, &pool),
                "okaywal" => okaywal_durable(&dir, producers, ops, record_size, &pool),
                "raft-engine" => raft_durable(&dir, producers, ops, record_size, &pool),
                "ballast" => ballast_durable(&dir, producers, ops, record_size, &pool),
                other => Err(format!("unknown system {other}")),
            }?;
            let latency = r.latency.as_ref().map(latency_json).unwrap_or(Value::Null);
            json!({"records": r.records, "bytes": r.bytes, "ns": r.ns, "latency": latency})
        }
        "read" => {
            let r = match system.as_str() {
                "ceiling" => ceiling_read(&dir, bytes, record_size, reads, &pool),
                "naive O_APPEND" => naive_read(&dir, bytes, record_size, reads, &pool),
                "okaywal" => okaywal_read(&dir, bytes, record_size, reads, &pool),
                "raft-engine" => raft_read(&dir, bytes, record_size, reads, &pool),
                "ballast" => ballast_read(&dir, bytes, record_size, reads, &pool),
                other => Err(format!("unknown system {other}")),
            }?;
            if r.scan_records != bytes / record_size as u64 {
                return Err(format!(
                    "{system}: scanned {} records, wrote {}",
                    r.scan_records,
                    bytes / record_size as u64
                ));
            }
            json!({
                "scan": {"records": r.scan_records, "bytes": r.scan_bytes, "ns": r.scan_ns},
                "cold": {"records": reads, "bytes": reads * record_size as u64, "ns": r.cold_ns,
                         "latency": latency_json(&r.cold)},
                "warm": {"records": reads, "bytes": reads * record_size as u64, "ns": r.warm_ns,
                         "latency": latency_json(&r.warm)},
            })
        }
        "tail" => {
            let readers = match system.as_str() {
                "no readers" => 0,
                "1 tail reader" | "1 replica from lsn 0" => 1,
                "16 tail readers" => 16,
                other => return Err(format!("unknown system {other}")),
            };
            let behind = match system.as_str() {
                "1 replica from lsn 0" => number("behind_bytes"),
                _ => 0,
            };
            let r = ballast_tail(&dir, (producers, ops, record_size), readers, behind, &pool)?;
            let p = &r.producers;
            let latency = p.latency.as_ref().map(latency_json).unwrap_or(Value::Null);
            json!({"records": p.records, "bytes": p.bytes, "ns": p.ns, "latency": latency,
                   "readers": {"records": r.reader_records,
                               "bytes": r.reader_records * record_size as u64,
                               "ns": r.reader_ns}})
        }
        other => return Err(format!("unknown workload {other}")),
    };
    let _ = std::fs::remove_dir_all(&dir);
    let mut result = result;
    result["peak_rss_bytes"] = json!(peak_rss_bytes());
    Ok(result)
}

// ---------------------------------------------------------------------------------------
// The parent: machine header, interleaved repetitions, tables.

struct Case {
    /// Table names this case feeds (a read case feeds three tables).
    name: String,
    workload: &'static str,
    systems: Vec<&'static str>,
    spec: Value,
}

fn machine(dir: &Path) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut filesystem = ("?".to_string(), "?".to_string(), String::new(), 0usize);
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 4 {
            continue;
        }
        let point = fields[1];
        if dir.starts_with(point) && point.len() >= filesystem.3 {
            filesystem = (
                fields[2].to_string(),
                fields[0].to_string(),
                fields[3].to_string(),
                point.len(),
            );
        }
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024;
    json!({
        "cpu": cpu,
        "cores": cores,
        "memory_bytes": memory,
        "kernel": kernel.trim(),
        "dir": dir.display().to_string(),
        "filesystem": filesystem.0,
        "device": filesystem.1,
        "mount_options": filesystem.2,
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Lets the filesystem settle after a run, so that the next one does not pay for it: the
/// child removed its files, and ext4 mounted with `discard` sends the freed extents to the
/// device at the next journal commit; `syncfs` forces that commit (and any writeback) now.
fn settle(root: &Path) {
    if let Ok(dir) = std::fs::File::open(root) {
        // SAFETY: plain system call on a descriptor we own.
        unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir)) };
    }
    std::thread::sleep(std::time::Duration::from_millis(SETTLE_MS));
}

/// Pause after each run's `syncfs`, for the device to finish what it was sent.
const SETTLE_MS: u64 = 100;

fn run_child(spec: &Value) -> Res<Value> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = Command::new(exe)
        .arg("--child")
        .arg(spec.to_string())
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("RESULT "))
        .ok_or("child printed no result")?;
    serde_json::from_str(line).map_err(|e| e.to_string())
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// One table row: medians over repetitions of one system's measurements.
fn summarise(runs: &[Value]) -> Value {
    let take = |f: &dyn Fn(&Value) -> Option<f64>| median(runs.iter().filter_map(f).collect());
    let rates: Vec<f64> = runs
        .iter()
        .filter_map(|r| Some(r["records"].as_f64()? / r["ns"].as_f64()? * 1e9))
        .collect();
    let spread = if rates.len() > 1 {
        let (lo, hi) = rates
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        (hi - lo) / median(rates.clone())
    } else {
        0.0
    };
    let latency = |q: &str| take(&|r: &Value| r["latency"][q].as_f64());
    json!({
        "repetitions": runs.len(),
        "records_per_s": median(rates),
        "mb_per_s": take(&|r: &Value| Some(r["bytes"].as_f64()? / r["ns"].as_f64()? * 1e3)),
        "p50_ns": nan_null(latency("p50_ns")),
        "p99_ns": nan_null(latency("p99_ns")),
        "p999_ns": nan_null(latency("p999_ns")),
        "peak_rss_bytes": take(&|r: &Value| r["peak_rss_bytes"].as_f64()),
        "spread": spread,
    })
}

/// A table: its title, the name of its ceiling row, and one summary per system.
type Table = (String, String, Vec<(String, Value)>);

fn nan_null(value: f64) -> Value {
    if value.is_nan() {
        Value::Null
    } else {
        json!(value)
    }
}

fn parent(args: &Args) -> Res<()> {
    let quick = args.quick;
    let repetitions = args.repetitions.unwrap_or(if quick { 1 } else { 3 });
    let bulk_bytes = args
        .bulk_bytes
        .unwrap_or(if quick { 16 << 20 } else { 256 << 20 });
    let durable_ops = args.durable_ops.unwrap_or(if quick { 100 } else { 1000 });
    let read_bytes = args
        .read_bytes
        .unwrap_or(if quick { 16 << 20 } else { 256 << 20 });
    let random_reads = args.random_reads.unwrap_or(if quick { 200 } else { 2000 });
    let base = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    let root = base.join(format!("ballast-bench-{}", std::process::id()));
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let machine = machine(&root);
    let load_start = loadavg();

    let runs = |workload: Workload| args.workloads.is_empty() || args.workloads.contains(&workload);
    let mut cases = Vec::new();
    for record_size in [128u64, 1024, 65536]
        .into_iter()
        .filter(|_| runs(Workload::Bulk))
    {
        cases.push(Case {
            name: format!("bulk append, {record_size} B records, one final sync"),
            workload: "bulk",
            systems: SYSTEMS_BULK.to_vec(),
            spec: json!({"workload": "bulk", "bytes": bulk_bytes, "record_size": record_size}),
        });
    }
    for producers in [1u64, 16].into_iter().filter(|_| runs(Workload::Durable)) {
        // Same total records for 1 and 16 producers.
        let ops = if producers == 1 {
            durable_ops
        } else {
            (durable_ops * 4 / producers).max(10)
        };
        cases.push(Case {
            name: format!("durable appends, 1 KiB records, {producers} producer(s)"),
            workload: "durable",
            systems: SYSTEMS.to_vec(),
            spec: json!({"workload": "durable", "producers": producers, "ops": ops,
                         "record_size": 1024}),
        });
    }
    if runs(Workload::Read) {
        cases.push(Case {
            name: "read".into(),
            workload: "read",
            systems: SYSTEMS.to_vec(),
            spec: json!({"workload": "read", "bytes": read_bytes, "record_size": 1024,
                         "reads": random_reads}),
        });
    }
    if runs(Workload::Tail) {
        let behind = if quick {
            TAIL_BEHIND_BYTES_QUICK
        } else {
            TAIL_BEHIND_BYTES
        };
        cases.push(Case {
            name: "tail".into(),
            workload: "tail",
            systems: SYSTEMS_TAIL.to_vec(),
            spec: json!({"workload": "tail", "producers": TAIL_PRODUCERS,
                         "ops": (durable_ops * 4 / TAIL_PRODUCERS).max(10), "record_size": 1024,
                         "behind_bytes": behind}),
        });
    }
    // Memory: bulk 1 KiB at two log sizes, one repetition each.
    let memory_sizes = [bulk_bytes, bulk_bytes * 4];
    let memory_systems: Vec<&str> = SYSTEMS_BULK
        .iter()
        .copied()
        .filter(|system| !system.starts_with("raw") && runs(Workload::Memory))
        .collect();

    let total: u64 = cases
        .iter()
        .map(|case| (case.systems.len() as u64) * u64::from(repetitions))
        .sum::<u64>()
        + 2 * memory_systems.len() as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut results: Vec<Vec<Vec<Value>>> = cases
        .iter()
        .map(|case| vec![Vec::new(); case.systems.len()])
        .collect();
    let mut failures: Vec<String> = Vec::new();
    let mut run_number = 0usize;
    for repetition in 0..repetitions {
        for (case_index, case) in cases.iter().enumerate() {
            let count = case.systems.len();
            for step in 0..count {
                // Rotate the order every repetition, so no system always runs first.
                let system_index = (step + repetition as usize) % count;
                let system = case.systems[system_index];
                bar.set_message(format!("{} / {system} / rep {}", case.name, repetition + 1));
                let mut spec = case.spec.clone();
                spec["system"] = json!(system);
                run_number += 1;
                spec["dir"] = json!(root.join(format!("run-{run_number}")).display().to_string());
                match run_child(&spec) {
                    Ok(value) => results[case_index][system_index].push(value),
                    Err(error) => failures.push(format!("{} / {system}: {error}", case.name)),
                }
                settle(&root);
                bar.inc(1);
            }
        }
    }
    let mut memory = Vec::new();
    for system in &memory_systems {
        let mut row = json!({"system": system});
        for (which, bytes) in memory_sizes.iter().enumerate() {
            bar.set_message(format!("memory / {system} / {bytes} B"));
            run_number += 1;
            let spec = json!({"workload": "bulk", "bytes": bytes, "record_size": 1024,
                "system": system,
                "dir": root.join(format!("run-{run_number}")).display().to_string()});
            match run_child(&spec) {
                Ok(value) => {
                    row[format!("peak_rss_bytes_{which}")] = value["peak_rss_bytes"].clone();
                }
                Err(error) => failures.push(format!("memory / {system}: {error}")),
            }
            bar.inc(1);
        }
        memory.push(row);
    }
    bar.finish_and_clear();
    let _ = std::fs::remove_dir_all(&root);
    let load_end = loadavg();

    // Tables: (title, ceiling row name, rows).
    let mut tables: Vec<Table> = Vec::new();
    for (case_index, case) in cases.iter().enumerate() {
        let runs = &results[case_index];
        if case.workload == "read" {
            for (part, title) in [
                ("scan", "sequential scan of 256 MiB of 1 KiB records (cold)"),
                ("cold", "random reads by LSN, 1 KiB records, cold"),
                ("warm", "random reads by LSN, 1 KiB records, warm"),
            ] {
                let title = if part == "scan" {
                    format!(
                        "sequential scan of {} MiB of 1 KiB records (cold)",
                        read_bytes >> 20
                    )
                } else {
                    title.to_string()
                };
                let rows = case
                    .systems
                    .iter()
                    .zip(runs)
                    .map(|(system, runs)| {
                        let parts: Vec<Value> = runs
                            .iter()
                            .map(|r| {
                                let mut p = r[part].clone();
                                p["peak_rss_bytes"] = r["peak_rss_bytes"].clone();
                                p
                            })
                            .collect();
                        (system.to_string(), summarise(&parts))
                    })
                    .collect();
                tables.push((title, "ceiling".into(), rows));
            }
        } else if case.workload == "tail" {
            let producers = case
                .systems
                .iter()
                .zip(runs)
                .map(|(system, runs)| (system.to_string(), summarise(runs)))
                .collect();
            tables.push((
                "16 producers, durable 1 KiB appends, while readers follow: producers".into(),
                "no readers".into(),
                producers,
            ));
            let readers = case
                .systems
                .iter()
                .zip(runs)
                .filter(|(system, _)| **system != "no readers")
                .map(|(system, runs)| {
                    let parts: Vec<Value> = runs
                        .iter()
                        .map(|r| {
                            let mut part = r["readers"].clone();
                            part["peak_rss_bytes"] = r["peak_rss_bytes"].clone();
                            part
                        })
                        .collect();
                    (system.to_string(), summarise(&parts))
                })
                .collect();
            tables.push((
                "the same runs: records yielded by all readers together".into(),
                "1 tail reader".into(),
                readers,
            ));
        } else {
            let rows = case
                .systems
                .iter()
                .zip(runs)
                .map(|(system, runs)| (system.to_string(), summarise(runs)))
                .collect();
            let ceiling = if case.workload == "bulk" {
                "raw O_DIRECT QD1"
            } else {
                "ceiling"
            };
            tables.push((case.name.clone(), ceiling.into(), rows));
        }
    }
    // Ratios.
    for (_, ceiling, rows) in &mut tables {
        let rate_of = |rows: &Vec<(String, Value)>, name: &str| {
            rows.iter()
                .find(|(system, _)| system == name)
                .and_then(|(_, v)| v["records_per_s"].as_f64())
                .unwrap_or(f64::NAN)
        };
        let (ceiling_rate, ballast_rate) = (rate_of(rows, ceiling), rate_of(rows, "ballast"));
        for (_, value) in rows.iter_mut() {
            let rate = value["records_per_s"].as_f64().unwrap_or(f64::NAN);
            value["x_ceiling"] = nan_null(rate / ceiling_rate);
            value["x_ballast"] = nan_null(rate / ballast_rate);
        }
    }

    let parameters = json!({
        "repetitions": repetitions, "bulk_bytes": bulk_bytes, "durable_ops": durable_ops,
        "read_bytes": read_bytes, "random_reads": random_reads,
        "ballast_config_memory_bytes": systems::ballast_config().memory_size_bytes(),
    });
    if args.json {
        let output = json!({
            "machine": machine,
            "loadavg_start": load_start,
            "loadavg_end": load_end,
            "parameters": parameters,
            "tables": tables.iter().map(|(title, ceiling, rows)| json!({
                "title": title, "ceiling": ceiling,
                "rows": rows.iter().map(|(system, v)| {
                    let mut v = v.clone();
                    v["system"] = json!(system);
                    v
                }).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "memory": {"log_sizes_bytes": memory_sizes, "rows": memory},
            "failures": failures,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&output).map_err(|e| e.to_string())?
        );
        return Ok(());
    }

    println!(
        "Machine: {}, {} cores, {} GiB; Linux {}; {} ({} on {}, {})",
        machine["cpu"].as_str().unwrap_or_default(),
        machine["cores"],
        machine["memory_bytes"].as_u64().unwrap_or(0) >> 30,
        machine["kernel"].as_str().unwrap_or_default(),
        machine["dir"].as_str().unwrap_or_default(),
        machine["filesystem"].as_str().unwrap_or_default(),
        machine["device"].as_str().unwrap_or_default(),
        machine["mount_options"].as_str().unwrap_or_default(),
    );
    println!(
        "Parameters: {repetitions} repetitions (median; systems interleaved), bulk {} MiB, \
         {durable_ops} durable appends (1 producer), read set {} MiB, {random_reads} random \
         reads per pass; tail: {TAIL_PRODUCERS} producers, the replica starts {} MiB behind. \
         Load average {load_start} at start, {load_end} at end.",
        bulk_bytes >> 20,
        read_bytes >> 20,
        if quick {
            TAIL_BEHIND_BYTES_QUICK
        } else {
            TAIL_BEHIND_BYTES
        } >> 20,
    );
    for (title, ceiling, rows) in &tables {
        println!();
        println!("### {title}");
        println!();
        println!(
            "| system | records/s | MB/s | p50 | p99 | p999 | peak RSS | x ceiling ({ceiling}) \
             | x ballast | spread |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (system, v) in rows {
            let us = |key: &str| {
                v[key]
                    .as_f64()
                    .map_or("-".to_string(), |ns| format!("{:.0} us", ns / 1e3))
            };
            let ratio = |key: &str| v[key].as_f64().map_or("-".into(), |x| format!("{x:.2}"));
            println!(
                "| {system} | {} | {:.0} | {} | {} | {} | {:.0} MiB | {} | {} | {:.0}% |",
                human(v["records_per_s"].as_f64().unwrap_or(f64::NAN)),
                v["mb_per_s"].as_f64().unwrap_or(f64::NAN),
                us("p50_ns"),
                us("p99_ns"),
                us("p999_ns"),
                v["peak_rss_bytes"].as_f64().unwrap_or(0.0) / (1u64 << 20) as f64,
                ratio("x_ceiling"),
                ratio("x_ballast"),
                v["spread"].as_f64().unwrap_or(0.0) * 100.0,
            );
        }
    }
    if !memory.is_empty() {
        println!();
        println!(
            "### peak RSS against log size (bulk append, 1 KiB records; Ballast Config::memory_size_bytes = {} MiB)",
            systems::ballast_config().memory_size_bytes() >> 20
        );
        println!();
        println!(
            "| system | {} MiB log | {} MiB log |",
            memory_sizes[0] >> 20,
            memory_sizes[1] >> 20
        );
        println!("|---|---:|---:|");
        for row in &memory {
            let mib = |key: &str| {
                row[key].as_f64().map_or("-".into(), |b| {
                    format!("{:.0} MiB", b / (1u64 << 20) as f64)
                })
            };
            println!(
                "| {} | {} | {} |",
                row["system"].as_str().unwrap_or_default(),
                mib("peak_rss_bytes_0"),
                mib("peak_rss_bytes_1")
            );
        }
    }
    if !failures.is_empty() {
        println!();
        println!("Failures:");
        for failure in &failures {
            println!("- {failure}");
        }
    }
    Ok(())
}

fn human(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2} M", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1} k", rate / 1e3)
    } else {
        format!("{rate:.0}")
    }
}
