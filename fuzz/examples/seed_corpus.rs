//! Writes the seed corpus of the fuzz targets into `fuzz/corpus/<target>/seed-*`.
//!
//! Every seed describes a real log: `recover` and `ops` inputs make their logs with the library
//! when they run, and `codec` seeds are block headers, bodies, frames and metadata cut from a
//! log written here. Each seed is encoded as the bytes `arbitrary` reads back into the intended
//! input (little-endian integers, one byte per `bool`, a `u32` that selects an enum variant,
//! a continue byte before each element of a `Vec`); the program decodes every file again and
//! stops if the bytes do not give back the input, so a change to an input type or to
//! `arbitrary` cannot leave a stale seed behind unnoticed. Every seed also passes its check.
//!
//! Runs on stable: `cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus`.

use ballast_fuzz::checks::{
    self, BaseLog, CodecInput, ConfigChoice, Ending, Fate, HeaderFields, HeaderForge,
    MetadataChoice, Op, OpsInput, RecoverInput, SegmentEdit,
};
use ballast_log::format::{BlockHeader, HeaderRead, BLOCK_HEADER_SIZE_BYTES};
use ballast_log::storage::{AlignedBuffer, MemStorage, Storage};
use ballast_log::{Config, Log};
use std::path::{Path, PathBuf};

/// Writes a value as the bytes `arbitrary` 1.x reads it from.
trait Encode {
    fn encode(&self, out: &mut Vec<u8>);
}

macro_rules! encode_integers {
    ($($ty:ty),*) => {$(
        impl Encode for $ty {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
encode_integers!(u8, u16, u32, u64, i16);

impl Encode for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl<T: Encode> Encode for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        for element in self {
            out.push(1);
            element.encode(out);
        }
        out.push(0);
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                value.encode(out);
            }
        }
    }
}

impl<A: Encode, B: Encode> Encode for (A, B) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
    }
}

/// The `u32` from which `derive(Arbitrary)` picks variant `index` of `count`:
/// `(u64::from(u32) * count) >> 32`.
fn variant(out: &mut Vec<u8>, index: u32, count: u32) {
    assert!(index < count);
    let value = (u64::from(index) << 32).div_ceil(u64::from(count));
    u32::try_from(value).expect("fits").encode(out);
}

macro_rules! encode_fields {
    ($out:ident; $($field:expr),*) => {{ $($field.encode($out);)* }};
}

impl Encode for ConfigChoice {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_fields!(out; self.sector_large, self.block_sectors, self.segment_blocks,
            self.write_buffer_blocks, self.write_buffer_count, self.record_size,
            self.segment_count, self.read_buffer_sectors, self.flush_size_bytes,
            self.flush_timeout_us, self.point_in_time);
    }
}

impl Encode for Fate {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Fate::Kept => variant(out, 0, 3),
            Fate::Lost => variant(out, 1, 3),
            Fate::Torn { prefix_bytes, fill } => {
                variant(out, 2, 3);
                encode_fields!(out; prefix_bytes, fill);
            }
        }
    }
}

impl Encode for Ending {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Ending::Close => variant(out, 0, 3),
            Ending::Abandon => variant(out, 1, 3),
            Ending::Crash { fates, rest } => {
                variant(out, 2, 3);
                encode_fields!(out; fates, rest);
            }
        }
    }
}

impl Encode for BaseLog {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_fields!(out; self.record_count, self.size_seed, self.salt, self.flush_every,
            self.ending);
    }
}

impl Encode for MetadataChoice {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            MetadataChoice::Valid => variant(out, 0, 5),
            MetadataChoice::Missing => variant(out, 1, 5),
            MetadataChoice::Field { field, value } => {
                variant(out, 2, 5);
                encode_fields!(out; field, value);
            }
            MetadataChoice::Xor { offset, xor } => {
                variant(out, 3, 5);
                encode_fields!(out; offset, xor);
            }
            MetadataChoice::Bytes(bytes) => {
                variant(out, 4, 5);
                bytes.encode(out);
            }
        }
    }
}

impl Encode for HeaderForge {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_fields!(out; self.flags, self.epoch, self.lsn_first, self.lsn_durable,
            self.size_sectors, self.body_size_bytes, self.fragment_count,
            self.checksum_previous, self.body_checksum_right, self.placed);
    }
}

impl Encode for SegmentEdit {
    fn encode(&self, out: &mut Vec<u8>) {
        const COUNT: u32 = 10;
        match self {
            SegmentEdit::Remove { index } => {
                variant(out, 0, COUNT);
                index.encode(out);
            }
            SegmentEdit::Rename { index, id } => {
                variant(out, 1, COUNT);
                encode_fields!(out; index, id);
            }
            SegmentEdit::Shift { index, delta } => {
                variant(out, 2, COUNT);
                encode_fields!(out; index, delta);
            }
            SegmentEdit::Duplicate { index, delta } => {
                variant(out, 3, COUNT);
                encode_fields!(out; index, delta);
            }
            SegmentEdit::Resize { index, sectors } => {
                variant(out, 4, COUNT);
                encode_fields!(out; index, sectors);
            }
            SegmentEdit::Write {
                index,
                offset,
                bytes,
            } => {
                variant(out, 5, COUNT);
                encode_fields!(out; index, offset, bytes);
            }
            SegmentEdit::Xor { index, offset, xor } => {
                variant(out, 6, COUNT);
                encode_fields!(out; index, offset, xor);
            }
            SegmentEdit::Zero {
                index,
                offset,
                size_bytes,
            } => {
                variant(out, 7, COUNT);
                encode_fields!(out; index, offset, size_bytes);
            }
            SegmentEdit::Copy {
                from,
                from_sector,
                to,
                to_sector,
                sectors,
            } => {
                variant(out, 8, COUNT);
                encode_fields!(out; from, from_sector, to, to_sector, sectors);
            }
            SegmentEdit::Header {
                index,
                sector,
                header,
            } => {
                variant(out, 9, COUNT);
                encode_fields!(out; index, sector, header);
            }
        }
    }
}

impl Encode for RecoverInput {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_fields!(out; self.config, self.base, self.metadata, self.append_count,
            self.edits);
    }
}

impl Encode for Op {
    fn encode(&self, out: &mut Vec<u8>) {
        const COUNT: u32 = 13;
        match self {
            Op::Append { size, salt } => {
                variant(out, 0, COUNT);
                encode_fields!(out; size, salt);
            }
            Op::AppendBatch {
                count,
                size_seed,
                salt,
            } => {
                variant(out, 1, COUNT);
                encode_fields!(out; count, size_seed, salt);
            }
            Op::Flush => variant(out, 2, COUNT),
            Op::Read { lsn, small_buffer } => {
                variant(out, 3, COUNT);
                encode_fields!(out; lsn, small_buffer);
            }
            Op::Scan { from } => {
                variant(out, 4, COUNT);
                from.encode(out);
            }
            Op::CursorNext { count } => {
                variant(out, 5, COUNT);
                count.encode(out);
            }
            Op::TruncatePrefix { lsn } => {
                variant(out, 6, COUNT);
                lsn.encode(out);
            }
            Op::Tick { advance_us } => {
                variant(out, 7, COUNT);
                advance_us.encode(out);
            }
            Op::Crash {
                fates,
                rest,
                point_in_time,
            } => {
                variant(out, 8, COUNT);
                encode_fields!(out; fates, rest, point_in_time);
            }
            Op::Reopen { point_in_time } => {
                variant(out, 9, COUNT);
                point_in_time.encode(out);
            }
            Op::Corrupt {
                segment,
                offset,
                xor,
            } => {
                variant(out, 10, COUNT);
                encode_fields!(out; segment, offset, xor);
            }
            Op::FailWrite => variant(out, 11, COUNT),
            Op::FailSync => variant(out, 12, COUNT),
        }
    }
}

impl Encode for OpsInput {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_fields!(out; self.config, self.ops);
    }
}

impl Encode for HeaderFields {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_fields!(out; self.checksum_body, self.checksum_previous, self.flags, self.epoch,
            self.segment, self.lsn_first, self.lsn_durable, self.offset_bytes, self.size_bytes,
            self.body_size_bytes, self.fragment_count, self.sector_size_bytes,
            self.block_size_bytes, self.segment_size_bytes);
    }
}

impl Encode for CodecInput {
    fn encode(&self, out: &mut Vec<u8>) {
        const COUNT: u32 = 9;
        match self {
            CodecInput::HeaderRoundTrip { fields, flip_bit } => {
                variant(out, 0, COUNT);
                encode_fields!(out; fields, flip_bit);
            }
            CodecInput::HeaderDecode {
                bytes,
                sector_shift,
                block_sectors,
            } => {
                variant(out, 1, COUNT);
                encode_fields!(out; bytes, sector_shift, block_sectors);
            }
            CodecInput::FrameRoundTrip { kind, size_bytes } => {
                variant(out, 2, COUNT);
                encode_fields!(out; kind, size_bytes);
            }
            CodecInput::FrameDecode { value } => {
                variant(out, 3, COUNT);
                value.encode(out);
            }
            CodecInput::BodyBuild {
                frames,
                continues,
                count_delta,
            } => {
                variant(out, 4, COUNT);
                encode_fields!(out; frames, continues, count_delta);
            }
            CodecInput::BodyDecode {
                body,
                fragment_count,
                continues,
            } => {
                variant(out, 5, COUNT);
                encode_fields!(out; body, fragment_count, continues);
            }
            CodecInput::MetadataRoundTrip {
                format_version,
                sector_size_bytes,
                block_size_bytes,
                segment_size_bytes,
                tail_bytes,
            } => {
                variant(out, 6, COUNT);
                encode_fields!(out; format_version, sector_size_bytes, block_size_bytes,
                    segment_size_bytes, tail_bytes);
            }
            CodecInput::MetadataDecode { bytes } => {
                variant(out, 7, COUNT);
                bytes.encode(out);
            }
            CodecInput::Capacity {
                sector_shift,
                block_sectors,
                segment_blocks,
                offset_sectors,
                fill_bytes,
            } => {
                variant(out, 8, COUNT);
                encode_fields!(out; sector_shift, block_sectors, segment_blocks,
                    offset_sectors, fill_bytes);
            }
        }
    }
}

/// Writes one seed after checking that its bytes decode to `value` and that it passes.
fn seed<T>(directory: &Path, name: &str, value: &T, check: fn(&T))
where
    T: Encode + PartialEq + std::fmt::Debug + for<'a> arbitrary::Arbitrary<'a>,
{
    let mut bytes = Vec::new();
    value.encode(&mut bytes);
    let decoded: T = checks::input(&bytes).expect("seed decodes");
    assert_eq!(
        &decoded, value,
        "seed `{name}` does not decode to its input"
    );
    check(value);
    std::fs::write(directory.join(format!("seed-{name}")), &bytes).expect("write seed");
}

fn directory(target: &str) -> PathBuf {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&directory).expect("create corpus directory");
    directory
}

/// 512-byte sectors, 1 KiB blocks, 4 KiB segments, records up to 1500 bytes (they span
/// blocks), 6 segments.
fn config_tiny(point_in_time: bool) -> ConfigChoice {
    ConfigChoice {
        sector_large: false,
        block_sectors: 1,
        segment_blocks: 3,
        write_buffer_blocks: 1,
        write_buffer_count: 1,
        record_size: 1500,
        segment_count: 4,
        read_buffer_sectors: 2,
        flush_size_bytes: 0,
        flush_timeout_us: 0,
        point_in_time,
    }
}

/// 4096-byte sectors, 8 KiB blocks, 64 KiB segments, records up to 20 000 bytes.
fn config_small(point_in_time: bool) -> ConfigChoice {
    ConfigChoice {
        sector_large: true,
        block_sectors: 1,
        segment_blocks: 7,
        write_buffer_blocks: 1,
        write_buffer_count: 2,
        record_size: 20_000,
        segment_count: 4,
        read_buffer_sectors: 1,
        flush_size_bytes: 0,
        flush_timeout_us: 0,
        point_in_time,
    }
}

fn base(record_count: u8, flush_every: u8, ending: Ending) -> BaseLog {
    BaseLog {
        record_count,
        size_seed: u16::from(record_count) * 31 + u16::from(flush_every),
        salt: 7,
        flush_every,
        ending,
    }
}

fn recover_input(config: ConfigChoice, base: BaseLog, edits: Vec<SegmentEdit>) -> RecoverInput {
    RecoverInput {
        config,
        base,
        metadata: MetadataChoice::Valid,
        append_count: 2,
        edits,
    }
}

fn fates_torn() -> Ending {
    Ending::Crash {
        fates: vec![
            Fate::Kept,
            Fate::Kept,
            Fate::Torn {
                prefix_bytes: 100,
                fill: 0x5A,
            },
            Fate::Kept,
        ],
        rest: Fate::Lost,
    }
}

fn recover_seeds() {
    let directory = directory("recover");
    let check = checks::recover_check;
    let closed = base(30, 3, Ending::Close);
    let seeds = [
        (
            "closed-512",
            recover_input(config_tiny(false), closed.clone(), vec![]),
        ),
        (
            "closed-4096",
            recover_input(config_small(false), base(40, 5, Ending::Close), vec![]),
        ),
        (
            "abandoned",
            recover_input(config_tiny(false), base(48, 0, Ending::Abandon), vec![]),
        ),
        (
            "crash-torn",
            recover_input(config_tiny(false), base(40, 4, fates_torn()), vec![]),
        ),
        (
            "crash-torn-4096",
            recover_input(config_small(true), base(44, 6, fates_torn()), vec![]),
        ),
        (
            "empty",
            recover_input(config_tiny(false), base(0, 0, Ending::Close), vec![]),
        ),
        (
            "byte-flip-strict",
            recover_input(
                config_tiny(false),
                closed.clone(),
                vec![SegmentEdit::Xor {
                    index: 0,
                    offset: 1024 + 200,
                    xor: 0x40,
                }],
            ),
        ),
        (
            "byte-flip-point-in-time",
            recover_input(
                config_tiny(true),
                closed.clone(),
                vec![SegmentEdit::Xor {
                    index: 1,
                    offset: 3,
                    xor: 0x01,
                }],
            ),
        ),
        (
            "segments-renamed-removed",
            recover_input(
                config_tiny(false),
                closed.clone(),
                vec![
                    SegmentEdit::Remove { index: 1 },
                    SegmentEdit::Shift { index: 1, delta: 1 },
                ],
            ),
        ),
        (
            "segment-stale-copy",
            recover_input(
                config_tiny(false),
                closed.clone(),
                vec![SegmentEdit::Duplicate { index: 0, delta: 2 }],
            ),
        ),
        (
            "segment-resized",
            recover_input(
                config_tiny(false),
                closed.clone(),
                vec![SegmentEdit::Resize {
                    index: 0,
                    sectors: 6,
                }],
            ),
        ),
        (
            "misdirected-sectors",
            recover_input(
                config_tiny(false),
                closed.clone(),
                vec![SegmentEdit::Copy {
                    from: 0,
                    from_sector: 2,
                    to: 1,
                    to_sector: 4,
                    sectors: 2,
                }],
            ),
        ),
        (
            "zeroed-and-overwritten",
            recover_input(
                config_small(false),
                base(40, 5, Ending::Close),
                vec![
                    SegmentEdit::Zero {
                        index: 0,
                        offset: 8192,
                        size_bytes: 4096,
                    },
                    SegmentEdit::Write {
                        index: 0,
                        offset: 16384,
                        bytes: b"BLST garbage where a block was".to_vec(),
                    },
                ],
            ),
        ),
        (
            "forged-header",
            recover_input(
                config_tiny(false),
                base(0, 0, Ending::Close),
                vec![SegmentEdit::Header {
                    index: 0,
                    sector: 0,
                    header: HeaderForge {
                        flags: 0,
                        epoch: 1,
                        lsn_first: None,
                        lsn_durable: 0,
                        size_sectors: 1,
                        body_size_bytes: 0,
                        fragment_count: 0,
                        checksum_previous: None,
                        body_checksum_right: true,
                        placed: true,
                    },
                }],
            ),
        ),
    ];
    for (name, input) in &seeds {
        seed(&directory, name, input, check);
    }
    let metadata = [
        ("metadata-missing", MetadataChoice::Missing),
        (
            "metadata-other-block-size",
            MetadataChoice::Field {
                field: 2,
                value: 2048,
            },
        ),
        (
            "metadata-byte-flip",
            MetadataChoice::Xor { offset: 20, xor: 4 },
        ),
        (
            "metadata-foreign",
            MetadataChoice::Bytes(b"\x7fELF not a log at all".to_vec()),
        ),
    ];
    for (name, metadata) in metadata {
        let mut input = recover_input(config_tiny(false), closed.clone(), vec![]);
        input.metadata = metadata;
        seed(&directory, name, &input, check);
    }
}

fn appends(count: usize, size: u16) -> impl Iterator<Item = Op> {
    (0..count).map(move |index| Op::Append {
        size: size.wrapping_mul(index as u16 + 1),
        salt: index as u8,
    })
}

fn crash_torn(point_in_time: bool) -> Op {
    Op::Crash {
        fates: vec![
            Fate::Kept,
            Fate::Torn {
                prefix_bytes: 300,
                fill: 0xA5,
            },
        ],
        rest: Fate::Lost,
        point_in_time,
    }
}

fn ops_seeds() {
    let directory = directory("ops");
    let check = checks::ops_check;
    let mut timeout = config_tiny(false);
    timeout.flush_timeout_us = 50;
    timeout.flush_size_bytes = 3000;
    let seeds: Vec<(&str, ConfigChoice, Vec<Op>)> = vec![
        (
            "append-flush-crash",
            config_tiny(false),
            appends(6, 300)
                .chain([Op::Flush])
                .chain(appends(3, 700))
                .chain([crash_torn(false), Op::Scan { from: 0 }])
                .chain(appends(2, 50))
                .collect(),
        ),
        (
            "spanning-records-read-scan",
            config_tiny(false),
            appends(4, 1400)
                .chain([
                    Op::AppendBatch {
                        count: 4,
                        size_seed: 9,
                        salt: 3,
                    },
                    Op::Read {
                        lsn: 2,
                        small_buffer: false,
                    },
                    Op::Flush,
                    Op::Scan { from: 1 },
                    Op::CursorNext { count: 5 },
                    Op::Read {
                        lsn: 7,
                        small_buffer: true,
                    },
                    Op::Reopen {
                        point_in_time: false,
                    },
                    Op::CursorNext { count: 7 },
                ])
                .collect(),
        ),
        (
            "full-log-retention",
            config_tiny(false),
            appends(30, 600)
                .chain([Op::Flush, Op::TruncatePrefix { lsn: 20 }])
                .chain(appends(10, 500))
                .chain([crash_torn(false), Op::TruncatePrefix { lsn: 40 }])
                .collect(),
        ),
        (
            "sync-failure",
            config_tiny(false),
            appends(5, 400)
                .chain([Op::Flush, Op::FailSync])
                .chain(appends(3, 400))
                .chain([
                    Op::Flush,
                    Op::Read {
                        lsn: 1,
                        small_buffer: false,
                    },
                    Op::Reopen {
                        point_in_time: false,
                    },
                ])
                .chain(appends(2, 100))
                .collect(),
        ),
        (
            "write-failure",
            config_small(false),
            [Op::FailWrite]
                .into_iter()
                .chain(appends(12, 3000))
                .chain([Op::Flush, crash_torn(false)])
                .collect(),
        ),
        (
            "corruption-strict",
            config_tiny(false),
            appends(8, 200)
                .chain([Op::Flush])
                .chain(appends(4, 200))
                .chain([
                    Op::Flush,
                    Op::Corrupt {
                        segment: 0,
                        offset: 600,
                        xor: 0x10,
                    },
                    Op::Read {
                        lsn: 1,
                        small_buffer: false,
                    },
                    crash_torn(false),
                ])
                .chain(appends(2, 100))
                .collect(),
        ),
        (
            "corruption-point-in-time",
            config_small(true),
            appends(10, 900)
                .chain([
                    Op::Flush,
                    Op::Corrupt {
                        segment: 0,
                        offset: 4096 + 130,
                        xor: 0x01,
                    },
                    Op::Reopen {
                        point_in_time: true,
                    },
                ])
                .chain(appends(3, 900))
                .collect(),
        ),
        (
            "flush-policies",
            timeout,
            appends(5, 400)
                .chain([Op::Tick { advance_us: 80 }])
                .chain(appends(8, 500))
                .chain([crash_torn(true), Op::Scan { from: 0 }])
                .collect(),
        ),
    ];
    for (name, config, ops) in seeds {
        seed(&directory, name, &OpsInput { config, ops }, check);
    }
}

/// A real log with 4 KiB sectors and blocks: returns the metadata sector, then each block.
fn codec_log() -> (Vec<u8>, Vec<Vec<u8>>) {
    let config = Config {
        sector_size_bytes: 4096,
        block_size_bytes: 4096,
        segment_size_bytes: 64 * 1024,
        write_buffer_size_bytes: 8192,
        write_buffer_count: 2,
        record_size_bytes_max: 10_000,
        segment_count_max: 8,
        read_buffer_size_bytes: 8192,
        ..Config::default()
    };
    let mut log = Log::open(config, MemStorage::new(4096)).expect("open");
    let mut record = Vec::new();
    for (lsn, size) in [10usize, 0, 300, 9000, 40, 5000].into_iter().enumerate() {
        checks::record_bytes(lsn as u64, size, 5, &mut record);
        log.append(&record).expect("append");
        log.flush().expect("flush");
    }
    let mut storage = log.close().expect("close");
    let mut metadata = AlignedBuffer::new(4096, 4096);
    assert!(storage.metadata_read(&mut metadata).expect("metadata"));
    let segment = storage.segment_bytes(0).expect("segment 0");
    let blocks = segment
        .chunks(4096)
        .take_while(|block| matches!(BlockHeader::decode(block), HeaderRead::Valid(_)))
        .map(<[u8]>::to_vec)
        .collect();
    (metadata.to_vec(), blocks)
}

fn codec_seeds() {
    let directory = directory("codec");
    let check = checks::codec_check;
    let (metadata, blocks) = codec_log();
    assert!(blocks.len() >= 4, "the log wrote {} blocks", blocks.len());
    let mut seeds = vec![(
        "metadata".to_string(),
        CodecInput::MetadataDecode {
            bytes: metadata[..64].to_vec(),
        },
    )];
    for (index, block) in blocks.iter().enumerate().take(4) {
        let HeaderRead::Valid(header) = BlockHeader::decode(block) else {
            unreachable!("only valid blocks kept")
        };
        let body_start = BLOCK_HEADER_SIZE_BYTES;
        let body = &block[body_start..body_start + header.body_size_bytes as usize];
        seeds.push((
            format!("header-{index}"),
            CodecInput::HeaderDecode {
                bytes: block[..BLOCK_HEADER_SIZE_BYTES].to_vec(),
                sector_shift: 3,
                block_sectors: 0,
            },
        ));
        seeds.push((
            format!("body-{index}"),
            CodecInput::BodyDecode {
                body: body.to_vec(),
                fragment_count: header.fragment_count,
                continues: header.continues(),
            },
        ));
        seeds.push((
            format!("frame-{index}"),
            CodecInput::FrameDecode {
                value: u32::from_le_bytes(body[..4].try_into().expect("a frame")),
            },
        ));
    }
    let HeaderRead::Valid(header) = BlockHeader::decode(&blocks[1]) else {
        unreachable!()
    };
    seeds.push((
        "header-round-trip".to_string(),
        CodecInput::HeaderRoundTrip {
            fields: HeaderFields {
                checksum_body: header.checksum_body,
                checksum_previous: header.checksum_previous,
                flags: header.flags,
                epoch: header.epoch,
                segment: header.segment,
                lsn_first: header.lsn_first,
                lsn_durable: header.lsn_durable,
                offset_bytes: header.offset_bytes,
                size_bytes: header.size_bytes,
                body_size_bytes: header.body_size_bytes,
                fragment_count: header.fragment_count,
                sector_size_bytes: header.sector_size_bytes,
                block_size_bytes: header.block_size_bytes,
                segment_size_bytes: header.segment_size_bytes,
            },
            flip_bit: 77,
        },
    ));
    seeds.push((
        "body-build".to_string(),
        CodecInput::BodyBuild {
            frames: vec![(3, 10), (0, 0), (0, 7), (1, 20)],
            continues: true,
            count_delta: 1,
        },
    ));
    seeds.push((
        "capacity".to_string(),
        CodecInput::Capacity {
            sector_shift: 3,
            block_sectors: 1,
            segment_blocks: 7,
            offset_sectors: 5,
            fill_bytes: 2048,
        },
    ));
    for (name, input) in &seeds {
        seed(&directory, name, input, check);
    }
}

fn main() {
    recover_seeds();
    ops_seeds();
    codec_seeds();
    for target in ["recover", "ops", "codec"] {
        let count = std::fs::read_dir(directory(target))
            .expect("corpus")
            .count();
        println!("fuzz/corpus/{target}: {count} files");
    }
}
