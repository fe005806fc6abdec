//! The worked example of `docs/format.md`, run: the bytes the page shows are the bytes the
//! library writes. Run with `--nocapture` to print them.

use ballast_log::format::{self, BlockHeader, HeaderRead, Metadata};
use ballast_log::storage::{AlignedBuffer, MemStorage, Storage};
use ballast_log::{Config, CorruptionKind, Error, Log, RecoveryMode, Verdict};

mod common;

/// The page's configuration: the tiny one of the tests, with four segments and a window of
/// its two write buffers.
fn config() -> Config {
    Config {
        window_size_bytes: 2048,
        segment_count_max: 4,
        ..common::config_tiny()
    }
}

fn hexdump(bytes: &[u8], base: usize) {
    for (row, chunk) in bytes.chunks(16).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|byte| format!("{byte:02x}")).collect();
        println!("{:06x}  {}", base + row * 16, hex.join(" "));
    }
}

fn header_at(storage: &MemStorage, offset: usize) -> BlockHeader {
    match BlockHeader::decode(&storage.segment_bytes(0).unwrap()[offset..]) {
        HeaderRead::Valid(header) => header,
        other => panic!("no header at {offset:#x}: {other:?}"),
    }
}

/// Three records, one flush; a fourth, a second flush; then the process ends without `close`.
fn example() -> MemStorage {
    let mut log = Log::open(config(), MemStorage::new(512)).unwrap();
    log.append(b"record zero.....").unwrap();
    log.append(&[0xb1; 1000]).unwrap();
    log.append(b"record two......").unwrap();
    log.flush().unwrap();
    log.append(b"record three....").unwrap();
    log.flush().unwrap();
    log.into_storage()
}

#[test]
fn the_worked_example_writes_what_the_page_shows() {
    let mut storage = example();
    let mut metadata = AlignedBuffer::new(512, 512);
    assert!(storage.metadata_read(&mut metadata).unwrap());
    println!("metadata:");
    hexdump(&metadata[..format::METADATA_SIZE_BYTES], 0);
    let decoded = Metadata::decode(&metadata).unwrap();
    assert_eq!((decoded.epoch_max, decoded.lsn_checkpoint), (1, 0));
    assert_eq!((decoded.window_size_bytes, decoded.clean), (2048, None));
    let segment = storage.segment_bytes(0).unwrap().to_vec();
    println!("segment 0:");
    hexdump(&segment[..0x800], 0);
    let block_0 = header_at(&storage, 0);
    let block_1 = header_at(&storage, 0x400);
    let block_2 = header_at(&storage, 0x600);
    assert_eq!(block_0.checksum_header, 0xf2d6_444d);
    assert_eq!(block_0.checksum_body, 0xf680_ce6c);
    assert_eq!(block_1.checksum_header, 0x68eb_1b48);
    assert_eq!(block_1.checksum_previous, block_0.checksum_header);
    assert_eq!(
        (block_2.checksum_header, block_2.lsn_durable),
        (0x6200_3979, 3)
    );
    assert!(segment[0x800..].iter().all(|&byte| byte == 0));
}

#[test]
fn a_flipped_byte_in_block_1_is_corruption_then_a_seal() {
    let mut damaged = example();
    damaged.corrupt(0, 0x500, 0x01);
    let strict = Log::open(config(), damaged.snapshot());
    match strict {
        Err(Error::Corruption {
            segment: 0,
            offset_bytes: 0x400,
            kind: CorruptionKind::BodyChecksum,
        }) => {}
        other => panic!("{:?}", other.map(|_| ())),
    }
    let config = Config {
        recovery_mode: RecoveryMode::PointInTime,
        ..config()
    };
    let log = Log::open(config, damaged).unwrap();
    let report = *log.recovery_report();
    assert_eq!(
        (report.end, report.lsn_next, report.lsn_lost),
        (Verdict::Lose, 1, Some(3))
    );
    let storage = log.into_storage();
    println!("seal:");
    hexdump(&storage.segment_bytes(0).unwrap()[0x400..0x480], 0x400);
    let seal = header_at(&storage, 0x400);
    assert_eq!((seal.epoch, seal.lsn_first, seal.lsn_durable), (2, 1, 1));
    assert_eq!(seal.checksum_header, 0xb475_ce98);
}
