//! Embedding Ballast as a library: open, append, flush, read, follow with a cursor, crash,
//! recover. Run it with `cargo run --example embed`.

use ballast_log::storage::{MemStorage, SectorFate};
use ballast_log::{Config, Log};

fn main() -> Result<(), ballast_log::Error> {
    let config = Config {
        segment_size_bytes: 4 << 20,
        ..Config::default()
    };
    // MemStorage keeps the log in memory with real sector semantics; production disk mode
    // plugs a file-backed storage into the same seam.
    let mut log = Log::open(config.clone(), MemStorage::new(config.sector_size_bytes))?;

    let first = log.append(b"order 1: 3 apples")?;
    log.append_batch(&[b"order 2: 1 pear".as_slice(), b"order 3: 2 figs"])?;
    log.flush()?; // Durable from here on.
    log.append(b"order 4: not flushed")?;
    println!(
        "appended {} records, {} durable",
        log.next_lsn(),
        log.durable_lsn()
    );

    // Read-your-writes: the unflushed record is readable too.
    let mut buffer = vec![0u8; 64];
    let size = log.read(3, &mut buffer)?;
    println!("lsn 3 = {:?}", String::from_utf8_lossy(&buffer[..size]));

    // A cursor yields only durable records.
    let mut cursor = log.cursor(first)?;
    while let Some(record) = log.cursor_next(&mut cursor)? {
        println!(
            "durable lsn {} = {:?}",
            record.lsn,
            String::from_utf8_lossy(record.data)
        );
    }

    // Crash: whatever was not synced is lost or torn, sector by sector.
    let mut storage = log.into_storage();
    storage.crash(|_, _| SectorFate::Lost);
    let log = Log::open(config, storage)?;
    println!(
        "after the crash: next lsn {}, recovery ended with {:?}",
        log.next_lsn(),
        log.recovery_report().end
    );
    assert_eq!(log.next_lsn(), 3, "the three flushed records survive");
    Ok(())
}
