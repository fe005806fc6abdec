//! The benchmark of Ballast as a Raft log store: one 3-node openraft cluster in one process
//! (in-process network, in-memory state machine), measured with three log stores in turn:
//! Ballast on real files, memory (the ceiling: no log IO at all), and okaywal (another
//! write-ahead log with group commit, `okaywal_store.rs`).
//!
//! Concurrent clients write through the leader; a write is acknowledged when the cluster has
//! committed it (a quorum made it durable). It reports acknowledged writes per second and the
//! p50 and p99 latency of a write. Not a test: it asserts nothing about timing.
//!
//! ```sh
//! cargo run --release -p ballast-openraft --example bench -- --writes 20000 --clients 32 --size 256 --repeat 3
//! ```

mod okaywal_store;

use ballast_openraft::cluster::{
    BallastFactory, Cluster, ClusterError, MemoryFactory, NodeId, Record, StoreFactory,
};
use okaywal_store::OkaywalLogStore;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Opens okaywal stores: node `n` in `dir/node-n`.
struct OkaywalFactory {
    dir: PathBuf,
}

impl StoreFactory for OkaywalFactory {
    type Store = OkaywalLogStore;

    fn open(&self, node: NodeId) -> Result<OkaywalLogStore, ClusterError> {
        let dir = self.dir.join(format!("node-{node}"));
        OkaywalLogStore::open(&dir).map_err(|error| {
            let source = ballast_openraft::Error::Log(ballast_log::Error::Open {
                path: dir,
                source: error,
            });
            ClusterError::Open { node, source }
        })
    }
}

/// What one run asks for.
#[derive(Clone, Debug)]
struct Load {
    writes: u64,
    clients: u64,
    record_size_bytes: usize,
}

/// What one run measured.
struct Measured {
    writes_per_second: f64,
    latency_p50: Duration,
    latency_p99: Duration,
}

const TIMEOUT: Duration = Duration::from_secs(60);

/// Starts a cluster over `factory`, warms it up, runs the load, and stops it.
async fn measure<F: StoreFactory>(factory: F, load: &Load) -> Result<Measured, ClusterError> {
    let cluster = Cluster::start(factory, 3, TIMEOUT).await?;
    for number in 0..100 {
        cluster
            .write(vec![number as u8; load.record_size_bytes], TIMEOUT)
            .await?;
    }
    let leader = cluster.leader_wait(TIMEOUT).await?;
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..load.clients {
        let raft = cluster.raft(leader).clone();
        let (writes, size_bytes) = (load.writes / load.clients, load.record_size_bytes);
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(writes as usize);
            for _ in 0..writes {
                let start = Instant::now();
                let written = raft.client_write(Record(vec![7; size_bytes])).await;
                written.map_err(|error| ClusterError::Raft {
                    node: leader,
                    source: Box::new(error),
                })?;
                latencies.push(start.elapsed());
            }
            Ok::<_, ClusterError>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for client in clients {
        latencies.extend(client.await.expect("a client task")?);
    }
    let elapsed = started.elapsed();
    cluster.shutdown().await?;
    latencies.sort();
    let percentile = |fraction: f64| latencies[((latencies.len() - 1) as f64 * fraction) as usize];
    Ok(Measured {
        writes_per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        latency_p50: percentile(0.50),
        latency_p99: percentile(0.99),
    })
}

fn arguments() -> Result<(Load, PathBuf, u64), String> {
    let mut load = Load {
        writes: 20_000,
        clients: 32,
        record_size_bytes: 256,
    };
    let mut dir = std::env::temp_dir();
    let mut repeat = 3;
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        let value = arguments
            .next()
            .ok_or(format!("{argument} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("bad number {value}"))
        };
        match argument.as_str() {
            "--writes" => load.writes = number()?,
            "--clients" => load.clients = number()?.max(1),
            "--size" => load.record_size_bytes = number()? as usize,
            "--repeat" => repeat = number()?.max(1),
            "--dir" => dir = PathBuf::from(&value),
            _ => return Err(format!("unknown argument {argument}")),
        }
    }
    Ok((load, dir, repeat))
}

/// The run of median throughput among `runs`.
fn median(mut runs: Vec<Measured>) -> Measured {
    runs.sort_by(|a, b| a.writes_per_second.total_cmp(&b.writes_per_second));
    runs.swap_remove(runs.len() / 2)
}

fn row(name: &str, measured: &Measured, ballast: Option<&Measured>) {
    let ratio = ballast.map_or(String::from("1.00"), |ballast| {
        format!(
            "{:.2}",
            ballast.writes_per_second / measured.writes_per_second
        )
    });
    println!(
        "| {name:<8} | {:>9.0} | {:>8.2} | {:>8.2} | {ratio:>13} |",
        measured.writes_per_second,
        measured.latency_p50.as_secs_f64() * 1e3,
        measured.latency_p99.as_secs_f64() * 1e3,
    );
}

fn scratch(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("ballast-raft-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    path
}

/// One run of each store, in turn, so that all three see the same moment of a shared
/// machine.
fn round(
    runtime: &tokio::runtime::Runtime,
    load: &Load,
    dir: &Path,
) -> Result<[Measured; 3], ClusterError> {
    let ballast_dir = scratch(dir, "ballast");
    let okaywal_dir = scratch(dir, "okaywal");
    let ballast = runtime.block_on(measure(BallastFactory::new(&ballast_dir), load));
    let memory = runtime.block_on(measure(MemoryFactory, load));
    let okaywal = runtime.block_on(measure(
        OkaywalFactory {
            dir: okaywal_dir.clone(),
        },
        load,
    ));
    let _ = std::fs::remove_dir_all(&ballast_dir);
    let _ = std::fs::remove_dir_all(&okaywal_dir);
    Ok([ballast?, memory?, okaywal?])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (load, dir, repeat) = arguments()?;
    let runtime = tokio::runtime::Runtime::new()?;
    println!(
        "3 nodes, {} writes of {} bytes from {} concurrent clients through the leader; \
         median of {repeat} rounds",
        load.writes, load.record_size_bytes, load.clients
    );
    let (mut ballast, mut memory, mut okaywal) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeat {
        let [b, m, o] = round(&runtime, &load, &dir)?;
        ballast.push(b);
        memory.push(m);
        okaywal.push(o);
    }
    let (ballast, memory, okaywal) = (median(ballast), median(memory), median(okaywal));
    println!("| store    | writes/s  | p50 ms   | p99 ms   | Ballast/store |");
    println!("| -------- | --------- | -------- | -------- | ------------- |");
    row("ballast", &ballast, None);
    row("memory", &memory, Some(&ballast));
    row("okaywal", &okaywal, Some(&ballast));
    Ok(())
}
