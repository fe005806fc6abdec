//! The on-disk format: pure encode and decode, no IO. `docs/format.md` describes it byte by
//! byte; this file is the reference.
//!
//! A segment is a sequence of blocks. A block starts at a sector boundary, is a whole number of
//! sectors long (at most `Config::block_size_bytes`), and begins with a 128-byte header. The
//! body after the header holds frames: a 4-byte frame header (fragment kind and length) and the
//! fragment's bytes. A record that does not fit in the rest of a block continues in the next
//! block as further fragments. Everything is little-endian.

/// The log format this build writes, recorded in the metadata. Version 2 added the metadata's
/// recovery fields (epoch, window, checkpoint, clean end); this build also opens version 1 and
/// upgrades its metadata at the first open that writes.
pub const FORMAT_VERSION: u16 = 2;
/// The oldest log format this build opens.
pub const FORMAT_VERSION_MIN: u16 = 1;
/// The layout of a block header, recorded in every header. Unchanged since format 1.
pub const BLOCK_VERSION: u16 = 1;
/// Marks a block header: "BLST".
pub const BLOCK_MAGIC: u32 = u32::from_le_bytes(*b"BLST");
/// Marks the log's metadata.
pub const METADATA_MAGIC: [u8; 8] = *b"BALLAST\0";
/// Size of a block header.
pub const BLOCK_HEADER_SIZE_BYTES: usize = 128;
/// Size of a frame header.
pub const FRAME_HEADER_SIZE_BYTES: usize = 4;
/// Size of the metadata that is checksummed (the rest of its sector is zero).
pub const METADATA_SIZE_BYTES: usize = 256;
/// The most bytes of a vote (`Log::vote_save`) the metadata holds.
pub const VOTE_SIZE_BYTES_MAX: usize = 124;
/// Where the vote's size and bytes start in the metadata.
const METADATA_VOTE_OFFSET: usize = 128;
/// Size of the checksummed metadata of format version 1.
pub const METADATA_V1_SIZE_BYTES: usize = 64;
/// Metadata flag: the log was closed cleanly, and `Metadata::clean` says where it ended.
pub const METADATA_FLAG_CLEAN: u16 = 1;
/// Metadata flag: `Metadata::first` names the log's first block.
pub const METADATA_FLAG_FIRST: u16 = 2;
/// Metadata flag: `Metadata::loss` records a loss the last recovery settled.
pub const METADATA_FLAG_LOSS: u16 = 4;
/// A fragment's length is stored in 30 bits.
pub const FRAGMENT_SIZE_BYTES_MAX: u32 = (1 << 30) - 1;
/// LSNs stay below this bound (index keys double them).
pub const LSN_MAX: u64 = 1 << 62;
/// Appends stop here, with room below `LSN_MAX` for the frame count of any block.
pub const LSN_APPEND_MAX: u64 = LSN_MAX - (1 << 32);
/// Block header flag: the body begins with the continuation of a record from the previous
/// block (a `Middle` or `Last` fragment).
pub const FLAG_CONTINUES: u16 = 1;
/// Block header flag: a frameless block that truncates the log's suffix. It starts a segment
/// named after its `lsn_first`, and links to the block of the previous segment that completes
/// record `lsn_first - 1`: every block after that one in that segment, and every later
/// segment, is no longer part of the log (`docs/recovery.md`, "Suffix truncation").
pub const FLAG_TRUNCATES: u16 = 2;

const _: () = assert!(BLOCK_HEADER_SIZE_BYTES % 8 == 0);
const _: () = assert!(METADATA_SIZE_BYTES <= 512);
const _: () = assert!(BLOCK_HEADER_SIZE_BYTES + FRAME_HEADER_SIZE_BYTES < 512);

/// The CRC32C used everywhere in the format.
pub fn checksum(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// A block header, decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockHeader {
    /// CRC32C of header bytes `[4, 128)`.
    pub checksum_header: u32,
    /// CRC32C of the body's `body_size_bytes`.
    pub checksum_body: u32,
    /// `checksum_header` of the block before this one in the log (0 for the log's first).
    pub checksum_previous: u32,
    /// `FLAG_CONTINUES`, `FLAG_TRUNCATES` or zero.
    pub flags: u16,
    /// The epoch of the open that wrote the block: one more than the highest epoch that open's
    /// recovery saw. A newer epoch abandons a record a crash left open.
    pub epoch: u32,
    /// The segment this block belongs to (its first LSN).
    pub segment: u64,
    /// The LSN of the record the body's first fragment belongs to.
    pub lsn_first: u64,
    /// Every record below this LSN was durable when the block was sealed.
    pub lsn_durable: u64,
    /// Where this block starts in its segment.
    pub offset_bytes: u32,
    /// The block's length on disk, header and padding included; whole sectors.
    pub size_bytes: u32,
    /// Bytes of frames in the body.
    pub body_size_bytes: u32,
    /// Frames in the body.
    pub fragment_count: u32,
    /// The sector size the log was made with.
    pub sector_size_bytes: u32,
    /// The largest block the log was made with.
    pub block_size_bytes: u32,
    /// The segment size the log was made with.
    pub segment_size_bytes: u64,
}

/// What the first bytes of a sector hold, as far as the header alone can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderRead {
    /// All zero: nothing was ever written here.
    Zero,
    /// Something that is not a valid block header.
    Invalid,
    /// A header whose magic and checksum are right.
    Valid(BlockHeader),
}

fn put_u16(bytes: &mut [u8], offset: usize, value: u16) {
    bytes[offset..offset + 2].copy_from_slice(&value.to_le_bytes());
}
fn put_u32(bytes: &mut [u8], offset: usize, value: u32) {
    bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}
fn put_u64(bytes: &mut [u8], offset: usize, value: u64) {
    bytes[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
}
fn get_u16(bytes: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes(bytes[offset..offset + 2].try_into().expect("2 bytes"))
}
fn get_u32(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"))
}
fn get_u64(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().expect("8 bytes"))
}

impl BlockHeader {
    /// Writes the header into `bytes[..128]`, computing `checksum_header` (the other checksums
    /// must already be set). Returns the header checksum.
    pub fn encode(&mut self, bytes: &mut [u8]) -> u32 {
        assert!(bytes.len() >= BLOCK_HEADER_SIZE_BYTES);
        assert!(self.size_bytes as usize >= BLOCK_HEADER_SIZE_BYTES);
        assert!(
            self.body_size_bytes as usize <= self.size_bytes as usize - BLOCK_HEADER_SIZE_BYTES
        );
        let header = &mut bytes[..BLOCK_HEADER_SIZE_BYTES];
        put_u32(header, 4, self.checksum_body);
        put_u32(header, 8, self.checksum_previous);
        put_u32(header, 12, BLOCK_MAGIC);
        put_u16(header, 16, BLOCK_VERSION);
        put_u16(header, 18, self.flags);
        put_u32(header, 20, self.epoch);
        put_u64(header, 24, self.segment);
        put_u64(header, 32, self.lsn_first);
        put_u64(header, 40, self.lsn_durable);
        put_u32(header, 48, self.offset_bytes);
        put_u32(header, 52, self.size_bytes);
        put_u32(header, 56, self.body_size_bytes);
        put_u32(header, 60, self.fragment_count);
        put_u32(header, 64, self.sector_size_bytes);
        put_u32(header, 68, self.block_size_bytes);
        put_u64(header, 72, self.segment_size_bytes);
        header[80..].fill(0);
        self.checksum_header = checksum(&header[4..]);
        put_u32(header, 0, self.checksum_header);
        self.checksum_header
    }

    /// Reads a header from `bytes[..128]`, checking its magic, version and checksum only.
    pub fn decode(bytes: &[u8]) -> HeaderRead {
        assert!(bytes.len() >= BLOCK_HEADER_SIZE_BYTES);
        let header = &bytes[..BLOCK_HEADER_SIZE_BYTES];
        if header.iter().all(|&byte| byte == 0) {
            return HeaderRead::Zero;
        }
        if get_u32(header, 12) != BLOCK_MAGIC || get_u32(header, 0) != checksum(&header[4..]) {
            return HeaderRead::Invalid;
        }
        if get_u16(header, 16) != BLOCK_VERSION || header[80..].iter().any(|&byte| byte != 0) {
            return HeaderRead::Invalid;
        }
        HeaderRead::Valid(BlockHeader {
            checksum_header: get_u32(header, 0),
            checksum_body: get_u32(header, 4),
            checksum_previous: get_u32(header, 8),
            flags: get_u16(header, 18),
            epoch: get_u32(header, 20),
            segment: get_u64(header, 24),
            lsn_first: get_u64(header, 32),
            lsn_durable: get_u64(header, 40),
            offset_bytes: get_u32(header, 48),
            size_bytes: get_u32(header, 52),
            body_size_bytes: get_u32(header, 56),
            fragment_count: get_u32(header, 60),
            sector_size_bytes: get_u32(header, 64),
            block_size_bytes: get_u32(header, 68),
            segment_size_bytes: get_u64(header, 72),
        })
    }

    /// Whether the body begins with the continuation of a record.
    pub fn continues(&self) -> bool {
        self.flags & FLAG_CONTINUES != 0
    }

    /// Whether this is a suffix truncation's block.
    pub fn truncates(&self) -> bool {
        self.flags & FLAG_TRUNCATES != 0
    }

    /// Whether the sizes are possible for a block at this place, under these limits (a sector
    /// size of zero makes nothing possible).
    pub fn sizes_valid(&self, sector_size_bytes: u32, block_size_bytes: u32) -> bool {
        if sector_size_bytes == 0 {
            return false;
        }
        let header = BLOCK_HEADER_SIZE_BYTES as u64;
        let frames_min = u64::from(self.fragment_count) * FRAME_HEADER_SIZE_BYTES as u64;
        let truncates = self.flags & FLAG_TRUNCATES != 0;
        self.flags & !(FLAG_CONTINUES | FLAG_TRUNCATES) == 0
            && !(truncates && (self.continues() || self.fragment_count != 0))
            && self.size_bytes >= sector_size_bytes
            && self.size_bytes % sector_size_bytes == 0
            && self.size_bytes <= block_size_bytes
            && self.offset_bytes % sector_size_bytes == 0
            && u64::from(self.body_size_bytes) + header <= u64::from(self.size_bytes)
            && frames_min <= u64::from(self.body_size_bytes)
            && self.lsn_first < LSN_MAX - u64::from(self.fragment_count)
            && self.lsn_durable <= LSN_MAX
            && !(self.continues() && self.fragment_count == 0)
    }
}

/// The kind of a fragment: a whole record, or a piece of one that spans blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragmentKind {
    /// A whole record.
    Full = 0,
    /// The first piece of a record that continues in the next block.
    First = 1,
    /// A piece that is neither first nor last.
    Middle = 2,
    /// The last piece.
    Last = 3,
}

/// Encodes a frame header.
pub fn frame_encode(bytes: &mut [u8], kind: FragmentKind, size_bytes: u32) {
    assert!(size_bytes <= FRAGMENT_SIZE_BYTES_MAX);
    put_u32(bytes, 0, (kind as u32) << 30 | size_bytes);
}

/// Decodes a frame header.
pub fn frame_decode(bytes: &[u8]) -> (FragmentKind, u32) {
    let value = get_u32(bytes, 0);
    let kind = match value >> 30 {
        0 => FragmentKind::Full,
        1 => FragmentKind::First,
        2 => FragmentKind::Middle,
        _ => FragmentKind::Last,
    };
    (kind, value & FRAGMENT_SIZE_BYTES_MAX)
}

/// What a well-framed body holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodySummary {
    /// Records whose last fragment is in this block (`Full` and `Last` frames).
    pub records_completed: u64,
    /// Whether the body ends inside a record (a `First` or `Middle` frame last).
    pub ends_open: bool,
}

/// Checks that `body` holds exactly `fragment_count` frames that fit together: a
/// continuation only at the start and only when `continues`, an open record only at the end.
/// Returns `None` if it does not.
pub fn body_check(body: &[u8], fragment_count: u32, continues: bool) -> Option<BodySummary> {
    if continues && fragment_count == 0 {
        return None;
    }
    let mut offset = 0usize;
    let mut summary = BodySummary {
        records_completed: 0,
        ends_open: false,
    };
    for index in 0..fragment_count {
        if summary.ends_open || offset + FRAME_HEADER_SIZE_BYTES > body.len() {
            return None;
        }
        let (kind, size) = frame_decode(&body[offset..]);
        offset += FRAME_HEADER_SIZE_BYTES;
        let first = index == 0;
        let continuing = matches!(kind, FragmentKind::Middle | FragmentKind::Last);
        if continuing != (first && continues) {
            return None;
        }
        if size as usize > body.len() - offset {
            return None;
        }
        offset += size as usize;
        match kind {
            FragmentKind::Full | FragmentKind::Last => summary.records_completed += 1,
            FragmentKind::First | FragmentKind::Middle => summary.ends_open = true,
        }
    }
    if offset != body.len() {
        return None;
    }
    Some(summary)
}

/// Bytes of record payload that still fit in a segment, for one record whose first fragment
/// goes into the open block at `block_offset_bytes`, already filled to `block_fill_bytes`
/// (its header included). Each further block costs a header and a frame header.
pub fn segment_capacity_bytes(
    segment_size_bytes: u64,
    block_size_bytes: u32,
    block_offset_bytes: u64,
    block_fill_bytes: u32,
) -> u64 {
    assert!(block_offset_bytes <= segment_size_bytes);
    let block = u64::from(block_size_bytes);
    let overhead = (BLOCK_HEADER_SIZE_BYTES + FRAME_HEADER_SIZE_BYTES) as u64;
    let block_size = block.min(segment_size_bytes - block_offset_bytes);
    let free = block_size.saturating_sub(u64::from(block_fill_bytes));
    let current = free.saturating_sub(FRAME_HEADER_SIZE_BYTES as u64);
    let later = segment_size_bytes - block_offset_bytes - block_size;
    let later_full = (later / block) * (block - overhead);
    let later_tail = (later % block).saturating_sub(overhead);
    current + later_full + later_tail
}

/// The largest record a log of these sizes takes: one that fits, with its framing, in a
/// segment whose first sector is already used (by a suffix truncation's block, which starts
/// the segment it names).
pub fn record_size_bytes_limit(
    segment_size_bytes: u64,
    block_size_bytes: u32,
    sector_size_bytes: u32,
) -> u64 {
    segment_capacity_bytes(
        segment_size_bytes,
        block_size_bytes,
        u64::from(sector_size_bytes).min(segment_size_bytes),
        BLOCK_HEADER_SIZE_BYTES as u32,
    )
}

/// The log's metadata: the sizes that shape its files, and what recovery must know beyond the
/// blocks. Rewritten whole and atomically (`Storage::metadata_write`) when the log is
/// formatted, by every open that writes, at a clean close, and when an idle log attests at the
/// exact end of a segment. `docs/format.md` gives the bytes; `docs/recovery.md` the use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// The format version (1 or 2 are read; 2 is written).
    pub format_version: u16,
    /// `Config::sector_size_bytes` at format time.
    pub sector_size_bytes: u32,
    /// `Config::block_size_bytes` at format time.
    pub block_size_bytes: u32,
    /// `Config::segment_size_bytes` at format time.
    pub segment_size_bytes: u64,
    /// The highest epoch an open of this log has taken. No block on disk carries a newer one,
    /// so the next open that writes takes a newer epoch than every block, even one it cannot
    /// read.
    pub epoch_max: u32,
    /// The most bytes any writer of this log kept written and not yet synced
    /// (`write_buffer_count * write_buffer_size_bytes` of its config, the largest seen):
    /// a valid block this far past a damaged one proves the damaged one was synced.
    pub window_size_bytes: u64,
    /// Every record below this LSN was durable when the metadata was written: recovery that
    /// ends below it has lost acknowledged records, and says so.
    pub lsn_checkpoint: u64,
    /// Where the log ended when it was closed cleanly; `None` once an open may have written.
    pub clean: Option<CleanEnd>,
    /// The log's first block: its segment and its `checksum_header`. Nothing before it can
    /// vouch for it (its predecessor is gone, or it has none), so recovery checks it against
    /// this. `None` when the log had no block then; stale (naming a removed segment) after an
    /// interrupted `truncate_prefix`, and then unused.
    pub first: Option<FirstBlock>,
    /// The loss of acknowledged records the last recovery settled (in point-in-time mode),
    /// until records are written after it: every open until then reports it again, so that a
    /// crash that cuts the open which settled it cannot hide it.
    pub loss: Option<Loss>,
    /// The vote (Raft's hard state, or any small blob the caller keeps with the log): its
    /// first `vote_size_bytes` bytes.
    pub vote: [u8; VOTE_SIZE_BYTES_MAX],
    /// How many bytes of `vote` are set.
    pub vote_size_bytes: u16,
}

/// A loss of acknowledged records a recovery settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loss {
    /// Where the log ended after the loss: records from here on were dropped.
    pub lsn_next: u64,
    /// Records below this had been acknowledged (`RecoveryReport::lsn_lost`).
    pub lsn_lost: u64,
}

/// The first block of a log, as the metadata records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirstBlock {
    /// The log's first segment.
    pub segment: u64,
    /// The `checksum_header` of the block at its offset 0.
    pub checksum: u32,
}

/// Where a cleanly closed log ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanEnd {
    /// The last segment.
    pub segment: u64,
    /// Where the next block would have started in it.
    pub offset_bytes: u64,
    /// The LSN the next append would have taken.
    pub lsn_next: u64,
    /// The `checksum_header` of the last block (0 if the log held none).
    pub checksum_last: u32,
}

/// Why metadata bytes are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataFault {
    /// Not Ballast's magic: a foreign file.
    Magic,
    /// The checksum does not match.
    Checksum,
    /// Bytes that must be zero are not.
    Reserved,
}

impl Metadata {
    /// The metadata of a new log with these sizes: epoch 0, nothing written.
    pub fn new(sector_size_bytes: u32, block_size_bytes: u32, segment_size_bytes: u64) -> Metadata {
        Metadata {
            format_version: FORMAT_VERSION,
            sector_size_bytes,
            block_size_bytes,
            segment_size_bytes,
            epoch_max: 0,
            window_size_bytes: 0,
            lsn_checkpoint: 0,
            clean: None,
            first: None,
            loss: None,
            vote: [0; VOTE_SIZE_BYTES_MAX],
            vote_size_bytes: 0,
        }
    }

    /// The vote's bytes.
    pub fn vote(&self) -> &[u8] {
        &self.vote[..self.vote_size_bytes as usize]
    }

    /// Writes the metadata into `bytes` (at least `METADATA_SIZE_BYTES`; the rest zeroed), in
    /// the current layout, with the version `format_version` says.
    pub fn encode(&self, bytes: &mut [u8]) {
        assert!(bytes.len() >= METADATA_SIZE_BYTES);
        bytes.fill(0);
        put_u16(bytes, 4, self.format_version);
        bytes[8..16].copy_from_slice(&METADATA_MAGIC);
        put_u32(bytes, 16, self.sector_size_bytes);
        put_u32(bytes, 20, self.block_size_bytes);
        put_u64(bytes, 24, self.segment_size_bytes);
        put_u32(bytes, 32, self.epoch_max);
        put_u64(bytes, 40, self.window_size_bytes);
        put_u64(bytes, 48, self.lsn_checkpoint);
        let mut flags = 0;
        if let Some(clean) = self.clean {
            flags |= METADATA_FLAG_CLEAN;
            put_u64(bytes, 56, clean.segment);
            put_u64(bytes, 64, clean.offset_bytes);
            put_u64(bytes, 72, clean.lsn_next);
            put_u32(bytes, 80, clean.checksum_last);
        }
        if let Some(first) = self.first {
            flags |= METADATA_FLAG_FIRST;
            put_u32(bytes, 84, first.checksum);
            put_u64(bytes, 88, first.segment);
        }
        if let Some(loss) = self.loss {
            flags |= METADATA_FLAG_LOSS;
            put_u64(bytes, 96, loss.lsn_next);
            put_u64(bytes, 104, loss.lsn_lost);
        }
        put_u16(bytes, 6, flags);
        assert!(self.vote_size_bytes as usize <= VOTE_SIZE_BYTES_MAX);
        put_u16(bytes, METADATA_VOTE_OFFSET, self.vote_size_bytes);
        let vote = METADATA_VOTE_OFFSET + 4;
        bytes[vote..vote + VOTE_SIZE_BYTES_MAX].copy_from_slice(&self.vote);
        let sum = checksum(&bytes[4..METADATA_SIZE_BYTES]);
        put_u32(bytes, 0, sum);
    }

    /// Reads metadata of format version 1 or 2, or of an unknown version whose checksum holds
    /// over the current layout; the version is returned as found, for the caller to judge.
    /// Version 1 reads with every recovery field zero.
    pub fn decode(bytes: &[u8]) -> Result<Metadata, MetadataFault> {
        if bytes.len() < METADATA_SIZE_BYTES || bytes[8..16] != METADATA_MAGIC {
            return Err(MetadataFault::Magic);
        }
        let stored = get_u32(bytes, 0);
        let version = get_u16(bytes, 4);
        let sizes = Metadata::new(get_u32(bytes, 16), get_u32(bytes, 20), get_u64(bytes, 24));
        if version == 1 && stored == checksum(&bytes[4..METADATA_V1_SIZE_BYTES]) {
            if get_u16(bytes, 6) != 0 || bytes[32..].iter().any(|&byte| byte != 0) {
                return Err(MetadataFault::Reserved);
            }
            return Ok(Metadata {
                format_version: 1,
                ..sizes
            });
        }
        if stored != checksum(&bytes[4..METADATA_SIZE_BYTES]) {
            return Err(MetadataFault::Checksum);
        }
        let flags = get_u16(bytes, 6);
        let zero = |range: std::ops::Range<usize>| bytes[range].iter().all(|&byte| byte == 0);
        let clean = flags & METADATA_FLAG_CLEAN != 0;
        let first = flags & METADATA_FLAG_FIRST != 0;
        let loss = flags & METADATA_FLAG_LOSS != 0;
        let known = METADATA_FLAG_CLEAN | METADATA_FLAG_FIRST | METADATA_FLAG_LOSS;
        let reserved = flags & !known != 0
            || !zero(36..40)
            || (!loss && !zero(96..112))
            || !zero(112..METADATA_VOTE_OFFSET)
            || !zero(METADATA_VOTE_OFFSET + 2..METADATA_VOTE_OFFSET + 4)
            || !zero(METADATA_SIZE_BYTES..bytes.len())
            || (!clean && !zero(56..84))
            || (!first && !zero(84..96));
        let vote_size_bytes = get_u16(bytes, METADATA_VOTE_OFFSET);
        let vote_at = METADATA_VOTE_OFFSET + 4;
        let vote_rest_zero = zero(
            vote_at + (vote_size_bytes as usize).min(VOTE_SIZE_BYTES_MAX)
                ..vote_at + VOTE_SIZE_BYTES_MAX,
        );
        if reserved || vote_size_bytes as usize > VOTE_SIZE_BYTES_MAX || !vote_rest_zero {
            return Err(MetadataFault::Reserved);
        }
        let mut vote = [0; VOTE_SIZE_BYTES_MAX];
        vote.copy_from_slice(&bytes[vote_at..vote_at + VOTE_SIZE_BYTES_MAX]);
        Ok(Metadata {
            vote,
            vote_size_bytes,
            format_version: version,
            epoch_max: get_u32(bytes, 32),
            window_size_bytes: get_u64(bytes, 40),
            lsn_checkpoint: get_u64(bytes, 48),
            clean: clean.then(|| CleanEnd {
                segment: get_u64(bytes, 56),
                offset_bytes: get_u64(bytes, 64),
                lsn_next: get_u64(bytes, 72),
                checksum_last: get_u32(bytes, 80),
            }),
            first: first.then(|| FirstBlock {
                checksum: get_u32(bytes, 84),
                segment: get_u64(bytes, 88),
            }),
            loss: loss.then(|| Loss {
                lsn_next: get_u64(bytes, 96),
                lsn_lost: get_u64(bytes, 104),
            }),
            ..sizes
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_sample() -> BlockHeader {
        BlockHeader {
            checksum_body: 0xDEAD_BEEF,
            checksum_previous: 7,
            flags: FLAG_CONTINUES,
            epoch: 3,
            segment: 1000,
            lsn_first: 1234,
            lsn_durable: 1200,
            offset_bytes: 8192,
            size_bytes: 4096,
            body_size_bytes: 100,
            fragment_count: 2,
            sector_size_bytes: 4096,
            block_size_bytes: 65536,
            segment_size_bytes: 1 << 26,
            ..BlockHeader::default()
        }
    }

    #[test]
    fn header_round_trip_and_every_bit_flip_detected() {
        let mut header = header_sample();
        let mut bytes = [0u8; BLOCK_HEADER_SIZE_BYTES];
        let sum = header.encode(&mut bytes);
        assert_eq!(BlockHeader::decode(&bytes), HeaderRead::Valid(header));
        assert_eq!(header.checksum_header, sum);
        for bit in 0..BLOCK_HEADER_SIZE_BYTES * 8 {
            let mut flipped = bytes;
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                BlockHeader::decode(&flipped),
                HeaderRead::Invalid,
                "bit {bit}"
            );
        }
        assert_eq!(BlockHeader::decode(&[0; 128]), HeaderRead::Zero);
    }

    /// Headers the writer never makes, with a valid checksum (forged, or a CRC collision):
    /// each breaks one rule of `sizes_valid`, and is refused.
    #[test]
    fn forged_headers_with_impossible_fields_are_refused() {
        let (sector, block) = (4096, 65536);
        let base = header_sample();
        assert!(base.sizes_valid(sector, block));
        assert!(
            !base.sizes_valid(0, block),
            "no sector size makes nothing possible"
        );
        let forged: [(&str, BlockHeader); 12] = [
            (
                "an unknown flag",
                BlockHeader {
                    flags: FLAG_CONTINUES | 4,
                    ..base
                },
            ),
            (
                "a truncation with fragments",
                BlockHeader {
                    flags: FLAG_TRUNCATES,
                    ..base
                },
            ),
            (
                "a truncation that continues",
                BlockHeader {
                    flags: FLAG_TRUNCATES | FLAG_CONTINUES,
                    fragment_count: 0,
                    body_size_bytes: 0,
                    ..base
                },
            ),
            (
                "no size",
                BlockHeader {
                    size_bytes: 0,
                    body_size_bytes: 0,
                    fragment_count: 0,
                    flags: 0,
                    ..base
                },
            ),
            (
                "a size of part of a sector",
                BlockHeader {
                    size_bytes: 4096 + 512,
                    ..base
                },
            ),
            (
                "larger than a block",
                BlockHeader {
                    size_bytes: 65536 + 4096,
                    ..base
                },
            ),
            (
                "off the sector grid",
                BlockHeader {
                    offset_bytes: 8192 + 512,
                    ..base
                },
            ),
            (
                "a body past the block",
                BlockHeader {
                    body_size_bytes: 4096 - 127,
                    ..base
                },
            ),
            (
                "a body too short for its frames",
                BlockHeader {
                    body_size_bytes: 4,
                    ..base
                },
            ),
            (
                "records past the LSN bound",
                BlockHeader {
                    lsn_first: LSN_MAX - 2,
                    ..base
                },
            ),
            (
                "a watermark past the LSN bound",
                BlockHeader {
                    lsn_durable: LSN_MAX + 1,
                    ..base
                },
            ),
            (
                "a continuation with no fragment",
                BlockHeader {
                    fragment_count: 0,
                    body_size_bytes: 0,
                    ..base
                },
            ),
        ];
        for (what, header) in forged {
            assert!(!header.sizes_valid(sector, block), "{what}: {header:?}");
        }
        // The bounds themselves are possible.
        let edges = [
            BlockHeader {
                lsn_first: LSN_MAX - 3,
                lsn_durable: LSN_MAX,
                ..base
            },
            BlockHeader {
                size_bytes: 65536,
                body_size_bytes: 65536 - 128,
                ..base
            },
            BlockHeader {
                body_size_bytes: 8,
                ..base
            },
            BlockHeader {
                flags: FLAG_TRUNCATES,
                fragment_count: 0,
                body_size_bytes: 0,
                ..base
            },
        ];
        for header in edges {
            assert!(header.sizes_valid(sector, block), "{header:?}");
        }
    }

    /// A header with a valid checksum but another block version, or reserved bytes set, is
    /// not a header this build can read.
    #[test]
    fn forged_header_versions_and_reserved_bytes_are_refused() {
        let mut bytes = [0u8; BLOCK_HEADER_SIZE_BYTES];
        header_sample().encode(&mut bytes);
        let reseal = |bytes: &mut [u8; BLOCK_HEADER_SIZE_BYTES]| {
            let sum = checksum(&bytes[4..]);
            put_u32(bytes, 0, sum);
        };
        let mut version = bytes;
        put_u16(&mut version, 16, BLOCK_VERSION + 1);
        reseal(&mut version);
        assert_eq!(BlockHeader::decode(&version), HeaderRead::Invalid);
        for at in [80, 100, BLOCK_HEADER_SIZE_BYTES - 1] {
            let mut reserved = bytes;
            reserved[at] = 1;
            reseal(&mut reserved);
            assert_eq!(
                BlockHeader::decode(&reserved),
                HeaderRead::Invalid,
                "byte {at}"
            );
        }
    }

    #[test]
    fn frames_round_trip() {
        let kinds = [
            FragmentKind::Full,
            FragmentKind::First,
            FragmentKind::Middle,
            FragmentKind::Last,
        ];
        for kind in kinds {
            for size in [0, 1, 4096, FRAGMENT_SIZE_BYTES_MAX] {
                let mut bytes = [0u8; 4];
                frame_encode(&mut bytes, kind, size);
                assert_eq!(frame_decode(&bytes), (kind, size));
            }
        }
    }

    fn body(frames: &[(FragmentKind, usize)]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for &(kind, size) in frames {
            let mut frame = [0u8; 4];
            frame_encode(&mut frame, kind, size as u32);
            bytes.extend_from_slice(&frame);
            bytes.extend(std::iter::repeat_n(0xAB, size));
        }
        bytes
    }

    #[test]
    fn body_check_accepts_only_well_formed_sequences() {
        use FragmentKind::*;
        let good = body(&[(Last, 3), (Full, 0), (Full, 5), (First, 2)]);
        assert_eq!(
            body_check(&good, 4, true),
            Some(BodySummary {
                records_completed: 3,
                ends_open: true
            })
        );
        assert_eq!(
            body_check(&good, 4, false),
            None,
            "continuation not flagged"
        );
        assert_eq!(body_check(&good, 3, true), None, "trailing bytes");
        assert_eq!(body_check(&good, 5, true), None, "too few frames");
        let middle_inside = body(&[(Full, 1), (Middle, 1)]);
        assert_eq!(body_check(&middle_inside, 2, false), None);
        let first_not_last = body(&[(First, 1), (Full, 1)]);
        assert_eq!(body_check(&first_not_last, 2, false), None);
        let mut overlong = body(&[(Full, 4)]);
        overlong.truncate(6);
        assert_eq!(body_check(&overlong, 1, false), None);
    }

    #[test]
    fn capacity_of_an_empty_segment() {
        let overhead = (BLOCK_HEADER_SIZE_BYTES + FRAME_HEADER_SIZE_BYTES) as u64;
        let capacity = segment_capacity_bytes(4 * 4096, 4096, 0, BLOCK_HEADER_SIZE_BYTES as u32);
        assert_eq!(capacity, 4 * (4096 - overhead));
        // A quarter of the open block used, then a short tail block of one sector.
        let capacity = segment_capacity_bytes(4 * 4096, 8192, 4096, 2048);
        assert_eq!(capacity, (8192 - 2048 - 4) + (4096 - overhead));
    }

    #[test]
    fn metadata_round_trip_and_faults() {
        let mut metadata = Metadata {
            epoch_max: 7,
            window_size_bytes: 4 << 20,
            lsn_checkpoint: 1234,
            clean: Some(CleanEnd {
                segment: 1000,
                offset_bytes: 8192,
                lsn_next: 1234,
                checksum_last: 0xDEAD_BEEF,
            }),
            first: Some(FirstBlock {
                segment: 500,
                checksum: 0xFEED_F00D,
            }),
            loss: Some(Loss {
                lsn_next: 1200,
                lsn_lost: 1234,
            }),
            vote_size_bytes: 2,
            ..Metadata::new(4096, 65536, 1 << 26)
        };
        metadata.vote[..2].copy_from_slice(b"v7");
        let mut bytes = vec![0u8; 4096];
        metadata.encode(&mut bytes);
        assert_eq!(Metadata::decode(&bytes), Ok(metadata));
        for bit in 0..METADATA_SIZE_BYTES * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(Metadata::decode(&flipped).is_err(), "bit {bit}");
        }
        bytes[20] ^= 1;
        assert_eq!(Metadata::decode(&bytes), Err(MetadataFault::Checksum));
        bytes[9] ^= 1;
        assert_eq!(Metadata::decode(&bytes), Err(MetadataFault::Magic));
    }

    /// Metadata whose checksum holds but which sets a byte that must be zero, each alone:
    /// an unknown flag, a field of an absent part, padding, bytes past the vote's size or past
    /// the checksummed layout, or a vote longer than its area.
    #[test]
    fn forged_metadata_with_reserved_bytes_set_is_refused() {
        let mut metadata = Metadata::new(4096, 65536, 1 << 26);
        metadata.vote[..3].copy_from_slice(b"abc");
        metadata.vote_size_bytes = 3;
        let mut bytes = vec![0u8; 512];
        metadata.encode(&mut bytes);
        assert_eq!(Metadata::decode(&bytes), Ok(metadata));
        let vote = METADATA_VOTE_OFFSET + 4;
        let forged: [(&str, usize, u8); 10] = [
            ("an unknown flag", 6, 8),
            ("padding after the epoch", 37, 1),
            ("a clean end without its flag", 60, 1),
            ("a first block without its flag", 90, 1),
            ("a loss without its flag", 100, 1),
            ("padding before the vote", 120, 1),
            ("padding after the vote's size", METADATA_VOTE_OFFSET + 2, 1),
            ("a vote byte past its size", vote + 3, 1),
            ("a vote longer than its area", METADATA_VOTE_OFFSET, 125),
            ("a byte past the layout", METADATA_SIZE_BYTES + 10, 1),
        ];
        for (what, at, value) in forged {
            let mut forged = bytes.clone();
            forged[at] = value;
            let sum = checksum(&forged[4..METADATA_SIZE_BYTES]);
            put_u32(&mut forged, 0, sum);
            assert_eq!(
                Metadata::decode(&forged),
                Err(MetadataFault::Reserved),
                "{what}"
            );
        }
    }

    /// A version-1 metadata sector (64 checksummed bytes) still opens, with no recovery facts.
    #[test]
    fn metadata_version_1_decodes() {
        let mut bytes = vec![0u8; 4096];
        put_u16(&mut bytes, 4, 1);
        bytes[8..16].copy_from_slice(&METADATA_MAGIC);
        put_u32(&mut bytes, 16, 4096);
        put_u32(&mut bytes, 20, 65536);
        put_u64(&mut bytes, 24, 1 << 26);
        let sum = checksum(&bytes[4..METADATA_V1_SIZE_BYTES]);
        put_u32(&mut bytes, 0, sum);
        let expected = Metadata {
            format_version: 1,
            ..Metadata::new(4096, 65536, 1 << 26)
        };
        assert_eq!(Metadata::decode(&bytes), Ok(expected));
        // The checksummed bytes are all there is: a buffer of exactly the current layout's
        // size reads too.
        assert_eq!(
            Metadata::decode(&bytes[..METADATA_SIZE_BYTES]),
            Ok(expected)
        );
        // Version 1 has no flags and nothing after its 64 bytes, checksum or not.
        let mut flagged = bytes.clone();
        put_u16(&mut flagged, 6, 1);
        let sum = checksum(&flagged[4..METADATA_V1_SIZE_BYTES]);
        put_u32(&mut flagged, 0, sum);
        assert_eq!(Metadata::decode(&flagged), Err(MetadataFault::Reserved));
        bytes[40] = 1;
        assert_eq!(Metadata::decode(&bytes), Err(MetadataFault::Checksum));
    }
}
