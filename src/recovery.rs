//! Recovery: find the longest valid prefix of the log, and tell a torn tail from damage to
//! acknowledged data.
//!
//! Recovery walks the blocks of every segment in order. Each block gets one verdict from
//! [`verdict`], a decision table over a few facts about the block; `docs/recovery.md` prints
//! the table and a test enumerates every combination of its inputs.

use crate::config::{Config, RecoveryMode};
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{BlockHeader, BodySummary, CleanEnd, FirstBlock, Metadata};
use crate::read::{HeaderState, Place, ReadCache};
use crate::segments::{IndexEntry, SegmentTable};
use crate::storage::{SegmentId, Storage};
use crate::Lsn;

/// The facts about one block that decide its fate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockFacts {
    /// The header's own checksum and magic are right, and it names this very place.
    pub header_valid: bool,
    /// The body's checksum is right and its frames fit together.
    pub body_valid: bool,
    /// The block continues the log: it follows the previous block's checksum, LSN and epoch.
    pub chained: bool,
    /// The next segment's first block continues the log from the previous valid block, so
    /// nothing lies between them: the rest of this segment was never used.
    pub successor: bool,
    /// A later valid block says that records at or after this block's place were durable.
    pub attested: bool,
}

/// What recovery does with a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The block is part of the log.
    Accept,
    /// The rest of this segment is unused; the log continues in the next segment.
    SegmentEnd,
    /// The log ends here: what follows was never acknowledged (a torn tail). Truncate.
    TornTail,
    /// Acknowledged data is damaged here: report it, change nothing.
    Corrupt,
    /// Acknowledged data is damaged here and the mode allows dropping it: truncate here.
    Lose,
}

/// The one decision table of recovery.
pub fn verdict(facts: BlockFacts, mode: RecoveryMode) -> Verdict {
    let acceptable = facts.header_valid && facts.body_valid && facts.chained;
    match (acceptable, facts.successor, facts.attested, mode) {
        (true, _, _, _) => Verdict::Accept,
        (false, true, _, _) => Verdict::SegmentEnd,
        (false, false, false, _) => Verdict::TornTail,
        (false, false, true, RecoveryMode::Strict) => Verdict::Corrupt,
        (false, false, true, RecoveryMode::PointInTime) => Verdict::Lose,
    }
}

/// What recovery found, kept by the log and shown by `Log::recovery_report`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The first LSN the log holds.
    pub lsn_first: Lsn,
    /// The LSN the next append gets.
    pub lsn_next: Lsn,
    /// Blocks accepted.
    pub block_count: u64,
    /// Segments kept.
    pub segment_count: usize,
    /// Segments removed because they lay wholly after the end of the log.
    pub segments_removed: usize,
    /// The verdict that ended the log: `TornTail` or `Lose` (`Accept` if it ended at the end
    /// of the last segment). `TornTail` is also the verdict of a clean end, where only zeros
    /// follow the last block: `end_written` tells the two apart.
    pub end: Verdict,
    /// The first sector after the last block kept held bytes: a write the crash cut, or
    /// blocks recovery dropped. `false` for a clean end (zeros) and for `Accept`.
    pub end_written: bool,
    /// Where the log ended: segment and byte offset.
    pub end_segment: SegmentId,
    /// Byte offset of the end in `end_segment`.
    pub end_offset_bytes: u64,
    /// In `PointInTime` mode, when acknowledged records were dropped: the durable watermark a
    /// later block attested (records in `[lsn_next, lsn_lost)` were acknowledged and lost).
    pub lsn_lost: Option<Lsn>,
    /// The epoch new blocks are written with.
    pub epoch: u32,
    /// The metadata's checkpoint when the log was opened: every record below it had been
    /// durable, so an end below it is reported as damage.
    pub lsn_checkpoint: Lsn,
    /// The log had been closed cleanly exactly where the walk ended, so nothing after the end
    /// was read (and nothing there can be the log's).
    pub clean_end: bool,
    /// Valid blocks found after the end and dropped: blocks a crash left behind a torn or lost
    /// one, or blocks that damage cut off. Recovery cannot tell whether they held records that
    /// were acknowledged; tools report them as a possible loss.
    pub discarded: Discarded,
}

/// Valid blocks after the end of the log, of its last epoch or a newer one, that recovery
/// dropped. Blocks of older epochs after the end were dropped by an earlier recovery (which
/// reported them) and are not counted again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Discarded {
    /// How many.
    pub block_count: u64,
    /// Their size on disk.
    pub size_bytes: u64,
    /// The lowest `lsn_first` among them.
    pub lsn_first: Lsn,
    /// The highest LSN they claim to reach (`lsn_first + fragment_count`), exclusive.
    pub lsn_end: Lsn,
}

impl Discarded {
    fn note(&mut self, header: &BlockHeader) {
        let end = header.lsn_first + u64::from(header.fragment_count);
        if self.block_count == 0 {
            self.lsn_first = header.lsn_first;
            self.lsn_end = end;
        }
        self.block_count += 1;
        self.size_bytes += u64::from(header.size_bytes);
        self.lsn_first = self.lsn_first.min(header.lsn_first);
        self.lsn_end = self.lsn_end.max(end);
    }
}

impl RecoveryReport {
    /// A report of nothing, before recovery fills it in.
    pub(crate) fn empty() -> RecoveryReport {
        RecoveryReport {
            lsn_first: 0,
            lsn_next: 0,
            block_count: 0,
            segment_count: 0,
            segments_removed: 0,
            end: Verdict::Accept,
            end_written: false,
            end_segment: 0,
            end_offset_bytes: 0,
            lsn_lost: None,
            epoch: 0,
            lsn_checkpoint: 0,
            clean_end: false,
            discarded: Discarded::default(),
        }
    }

    /// How many records past the end the discarded blocks claim: records that may have been
    /// acknowledged and are gone (0 when nothing valid was discarded).
    pub fn records_discarded_max(&self) -> u64 {
        match self.discarded.block_count {
            0 => 0,
            _ => self.discarded.lsn_end.saturating_sub(self.lsn_next),
        }
    }
}

/// Where the chain of valid blocks stands during the walk.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chain {
    pub lsn_next: Lsn,
    pub checksum_previous: Option<u32>,
    /// Before the first block (no `checksum_previous` yet): the `checksum_header` that block
    /// must have, when the metadata records the log's first block.
    pub checksum_first: Option<u32>,
    pub epoch: u32,
    /// The last accepted block ends inside a record (its first fragments are written).
    pub record_open: bool,
}

impl Chain {
    /// Whether `header` may follow the chain. A block of a newer epoch abandons a record left
    /// open by the previous epoch's crash and starts afresh at the same LSN.
    pub fn continued_by(&self, header: &BlockHeader) -> bool {
        let previous_ok = match (self.checksum_previous, self.checksum_first) {
            (Some(checksum), _) => {
                header.checksum_previous == checksum
                    || crate::planted::active("checksum-previous-unchecked")
            }
            // Nothing before the first block vouches for it: the metadata does.
            (None, Some(checksum)) => header.checksum_header == checksum,
            (None, None) => true,
        };
        let same_epoch = header.epoch == self.epoch && header.continues() == self.record_open;
        let newer_epoch = header.epoch > self.epoch && !header.continues();
        previous_ok && header.lsn_first == self.lsn_next && (same_epoch || newer_epoch)
    }
}

/// Recovery's walk over the segments.
pub(crate) struct Scan<'a, S: Storage> {
    pub config: &'a Config,
    pub storage: &'a mut S,
    pub cache: &'a mut ReadCache,
    pub segments: &'a [SegmentId],
    pub chain: Chain,
    pub epoch_max: u32,
    pub block_count: u64,
    /// The watermark the last attestation scan found, kept for the verdict that needed it.
    pub attested_watermark: Option<Lsn>,
    /// The log was formatted by this open: its one segment was just made and reads as zeros,
    /// so no block can lie after the end, and the attestation scan (a read of the whole
    /// segment) is skipped.
    formatted: bool,
    /// The chain as it stood before the current segment's first block.
    pub chain_segment_start: Chain,
    /// The current segment holds records below this LSN only: the next segment's name (a
    /// suffix truncation named its segment after the first LSN it dropped), or `Lsn::MAX`.
    lsn_limit: Lsn,
    /// The next segment begins with a suffix truncation's block, which links to the block with
    /// this checksum: the current segment's part of the log ends right after that block.
    cut: Option<u32>,
    /// The chain passed the current segment's limit in the middle of a block (records after
    /// it there were cut off by a suffix truncation): the log may not go on in this segment.
    trimmed: bool,
    /// Every record below it was durable (the metadata's checkpoint).
    checkpoint: Lsn,
    /// Where the log was closed cleanly, if it was and nothing was written since.
    clean: Option<CleanEnd>,
    /// The most bytes a writer of this log kept unsynced (0: unknown, the fact is unused).
    window_size_bytes: u64,
    /// What the last attestation scan found after the end.
    discarded: Discarded,
    /// The walk ended at the clean end, and the scan after it was skipped.
    clean_matched: bool,
}

/// The end of the walk.
pub(crate) struct End {
    pub verdict: Verdict,
    pub segment_index: usize,
    pub offset_bytes: u64,
    pub lsn_lost: Option<Lsn>,
    pub clean: bool,
    pub discarded: Discarded,
}

impl Chain {
    /// The chain before the first block of a log whose first segment is `segment`; `first`
    /// is the metadata's record of the log's first block.
    pub fn start(segment: SegmentId, first: Option<FirstBlock>) -> Chain {
        Chain {
            lsn_next: segment,
            checksum_previous: None,
            checksum_first: first
                .filter(|first| first.segment == segment)
                .map(|first| first.checksum),
            epoch: 0,
            record_open: false,
        }
    }
}

impl<'a, S: Storage> Scan<'a, S> {
    /// A walk over `segments` (at least one, ascending), with the facts of the metadata.
    pub fn new(
        config: &'a Config,
        storage: &'a mut S,
        cache: &'a mut ReadCache,
        segments: &'a [SegmentId],
        formatted: bool,
        metadata: &Metadata,
    ) -> Scan<'a, S> {
        assert!(!segments.is_empty());
        assert!(
            !formatted || segments.len() == 1,
            "a new log has one segment"
        );
        Scan {
            formatted,
            config,
            storage,
            cache,
            segments,
            chain: Chain::start(segments[0], metadata.first),
            epoch_max: 0,
            block_count: 0,
            attested_watermark: None,
            chain_segment_start: Chain::start(segments[0], metadata.first),
            lsn_limit: Lsn::MAX,
            cut: None,
            trimmed: false,
            checkpoint: metadata.lsn_checkpoint,
            clean: metadata.clean,
            window_size_bytes: metadata.window_size_bytes,
            discarded: Discarded::default(),
            clean_matched: false,
        }
    }
}

impl<S: Storage> Scan<'_, S> {
    fn place(&self, segment_index: usize, offset_bytes: u64) -> Place {
        Place {
            segment: self.segments[segment_index],
            offset_bytes,
            segment_size_bytes: self.config.segment_size_bytes,
            sector_size_bytes: self.config.sector_size_bytes,
            block_size_bytes: self.config.block_size_bytes,
        }
    }

    /// Walks every block, filling `table`, until the verdict ends the log.
    pub fn run(&mut self, table: &mut SegmentTable) -> Result<End> {
        let mut end = self.walk(table)?;
        if self.trimmed {
            // The log ended in a segment whose last block kept holds records a suffix
            // truncation dropped: it may not go on there (a block written after it would
            // chain to them again), but at the start of the next segment, which the
            // truncation made; recovery settles it with a truncation's block again.
            assert_eq!(end.segment_index + 1, table.len());
            end.segment_index += 1;
            end.offset_bytes = 0;
            self.segment_enter(table, end.segment_index)?;
            tracing::info!(
                segment = self.segments[end.segment_index],
                "the log ends at a truncation"
            );
        }
        Ok(end)
    }

    fn walk(&mut self, table: &mut SegmentTable) -> Result<End> {
        let mut segment_index = 0;
        let mut offset_bytes = 0;
        self.segment_enter(table, segment_index)?;
        loop {
            if offset_bytes == self.config.segment_size_bytes {
                let next = segment_index + 1;
                if self.segments.get(next) == Some(&self.chain.lsn_next) {
                    // The next segment is named after the next LSN: its first block gets its
                    // own verdict (Accept when it continues the log).
                    segment_index = next;
                    offset_bytes = 0;
                    self.segment_enter(table, segment_index)?;
                    continue;
                }
                return self.segment_boundary_end(segment_index);
            }
            let (facts, accepted) = self.block_facts(segment_index, offset_bytes)?;
            let verdict = verdict(facts, self.config.recovery_mode);
            tracing::trace!(
                segment = self.segments[segment_index],
                offset_bytes,
                ?facts,
                ?verdict,
                "block"
            );
            match verdict {
                Verdict::Accept => {
                    let (header, summary) = accepted.expect("accepted block has a header");
                    if self.chain.record_open && !header.continues() {
                        // A newer epoch abandoned the record the previous one left open.
                        let key = IndexEntry::key(header.lsn_first, false);
                        table.index_clamp(segment_index, key);
                    }
                    table.index_note(
                        segment_index,
                        offset_bytes,
                        header.lsn_first,
                        header.continues(),
                        header.checksum_header,
                    );
                    self.sectors_note(table, segment_index, offset_bytes, &header)?;
                    self.accept(&header, summary);
                    offset_bytes += u64::from(header.size_bytes);
                    if self.cut.is_some() && self.cut == self.chain.checksum_previous {
                        // A suffix truncation cut the segment's part of the log here; its
                        // block, at the start of the next segment, gets its own verdict.
                        self.chain.record_open = false;
                        segment_index += 1;
                        offset_bytes = 0;
                        self.segment_enter(table, segment_index)?;
                    }
                }
                Verdict::SegmentEnd => {
                    tracing::debug!(
                        segment = self.segments[segment_index],
                        offset_bytes,
                        "segment end"
                    );
                    segment_index += 1;
                    offset_bytes = 0;
                    self.segment_enter(table, segment_index)?;
                }
                Verdict::TornTail => {
                    return Ok(self.end(verdict, segment_index, offset_bytes, None));
                }
                Verdict::Corrupt | Verdict::Lose => {
                    let lsn_lost = self.attested_watermark;
                    if verdict == Verdict::Corrupt {
                        return Err(Error::Corruption {
                            segment: self.segments[segment_index],
                            offset_bytes,
                            kind: self.corruption_kind(segment_index, offset_bytes)?,
                        });
                    }
                    return Ok(self.end(verdict, segment_index, offset_bytes, lsn_lost));
                }
            }
        }
    }

    /// The walk moves into the segment at `segment_index`.
    fn segment_enter(&mut self, table: &mut SegmentTable, segment_index: usize) -> Result<()> {
        table.push(self.segments[segment_index]);
        self.chain_segment_start = self.chain;
        self.lsn_limit = self.segment_lsn_limit(segment_index);
        self.cut = self.truncation_next(segment_index)?;
        self.trimmed = false;
        tracing::trace!(
            segment = self.segments[segment_index],
            lsn_limit = self.lsn_limit,
            chain = ?self.chain,
            "segment"
        );
        Ok(())
    }

    /// If the segment after `segment_index` begins with a valid suffix truncation's block:
    /// the checksum of the block it links to.
    fn truncation_next(&mut self, segment_index: usize) -> Result<Option<u32>> {
        let Some(&next) = self.segments.get(segment_index + 1) else {
            return Ok(None);
        };
        if crate::planted::active("truncation-limit-ignored") {
            return Ok(None);
        }
        let place = self.place(segment_index + 1, 0);
        Ok(match place.load_header(self.cache, self.storage)? {
            HeaderState::Valid(header) if header.truncates() && header.lsn_first == next => {
                Some(header.checksum_previous)
            }
            _ => None,
        })
    }

    /// The LSN below which every record of a segment lies: the next segment's name. Blocks
    /// of the segment that start at or after it were cut off by a suffix truncation.
    fn segment_lsn_limit(&self, segment_index: usize) -> Lsn {
        match crate::planted::active("truncation-limit-ignored") {
            true => Lsn::MAX,
            false => self
                .segments
                .get(segment_index + 1)
                .copied()
                .unwrap_or(Lsn::MAX),
        }
    }

    /// Whether a block may belong to the current segment: it starts below the segment's limit,
    /// or completes no record (a seal, an attestation, or the middle of a record that a crash
    /// or a truncation left open at the limit). The block that completes the record just below
    /// the limit may hold records after it: they are cut off (`accept`).
    fn below_limit(&self, header: &BlockHeader, summary: &BodySummary) -> bool {
        header.lsn_first < self.lsn_limit || summary.records_completed == 0
    }

    /// The walk reached the end of a full segment and no later segment continues the log:
    /// the log ends here unless a later block attests that records after it were durable.
    fn segment_boundary_end(&mut self, segment_index: usize) -> Result<End> {
        let offset_bytes = self.config.segment_size_bytes;
        let lsn_lost = self.attested(segment_index, offset_bytes)?;
        let facts = BlockFacts {
            header_valid: false,
            body_valid: false,
            chained: false,
            successor: false,
            attested: lsn_lost.is_some(),
        };
        match verdict(facts, self.config.recovery_mode) {
            Verdict::TornTail => Ok(self.end(Verdict::Accept, segment_index, offset_bytes, None)),
            // The next segment does not continue the log, or the one that should is missing.
            Verdict::Corrupt => Err(match self.segments.get(segment_index + 1) {
                Some(&segment) => Error::Corruption {
                    segment,
                    offset_bytes: 0,
                    kind: CorruptionKind::Misplaced,
                },
                None => Error::Corruption {
                    segment: self.chain.lsn_next,
                    offset_bytes: 0,
                    kind: CorruptionKind::Missing,
                },
            }),
            verdict => {
                assert_eq!(verdict, Verdict::Lose);
                Ok(self.end(verdict, segment_index, offset_bytes, lsn_lost))
            }
        }
    }

    fn end(
        &mut self,
        verdict: Verdict,
        segment_index: usize,
        offset_bytes: u64,
        lsn_lost: Option<Lsn>,
    ) -> End {
        End {
            verdict,
            segment_index,
            offset_bytes,
            lsn_lost,
            clean: self.clean_matched,
            discarded: self.discarded,
        }
    }

    /// Notes the sectors of a block just accepted in the sector table, from the bytes that
    /// passed its checks (still in the read buffer).
    fn sectors_note(
        &mut self,
        table: &mut SegmentTable,
        segment_index: usize,
        offset_bytes: u64,
        header: &BlockHeader,
    ) -> Result<()> {
        let size = header.size_bytes as usize;
        let start = self.cache.load(
            self.storage,
            self.segments[segment_index],
            self.config.segment_size_bytes,
            offset_bytes,
            size,
        )?;
        let block = &self.cache.bytes()[start..start + size];
        table.sectors_note(segment_index, offset_bytes, block, header);
        Ok(())
    }

    fn accept(&mut self, header: &BlockHeader, summary: BodySummary) {
        assert_eq!(header.lsn_first, self.chain.lsn_next);
        assert!(self.below_limit(header, &summary));
        assert!(header.epoch >= self.chain.epoch);
        self.chain = Chain {
            lsn_next: header.lsn_first + summary.records_completed,
            checksum_previous: Some(header.checksum_header),
            checksum_first: None,
            epoch: header.epoch,
            record_open: summary.ends_open,
        };
        if self.chain.lsn_next > self.lsn_limit {
            // The block that ends the last record a suffix truncation kept: the records after
            // it in the block, and the rest of the segment, were dropped; the log goes on in
            // the next segment, whose first block links to this one.
            self.chain.lsn_next = self.lsn_limit;
            self.chain.record_open = false;
            self.trimmed = true;
        }
        self.epoch_max = self.epoch_max.max(header.epoch);
        self.block_count += 1;
    }

    /// Gathers the facts about the block at a place; the expensive ones (`successor`,
    /// `attested`) only when the cheap ones do not already decide.
    fn block_facts(
        &mut self,
        segment_index: usize,
        offset_bytes: u64,
    ) -> Result<(BlockFacts, Option<(BlockHeader, BodySummary)>)> {
        let place = self.place(segment_index, offset_bytes);
        let mut facts = BlockFacts {
            header_valid: false,
            body_valid: false,
            chained: false,
            successor: false,
            attested: false,
        };
        let mut accepted = None;
        if let HeaderState::Valid(header) = place.load_header(self.cache, self.storage)? {
            facts.header_valid = true;
            facts.chained = self.chain.continued_by(&header);
            if let Ok((_, summary)) = place.load_body(self.cache, self.storage, &header)? {
                facts.body_valid = true;
                facts.chained &= self.below_limit(&header, &summary);
                accepted = Some((header, summary));
            }
        }
        if verdict(facts, self.config.recovery_mode) == Verdict::Accept {
            return Ok((facts, accepted));
        }
        facts.successor = self.segment_next_chains(segment_index)?;
        self.attested_watermark = None;
        if !facts.successor {
            self.attested_watermark = self.attested(segment_index, offset_bytes)?;
            facts.attested = self.attested_watermark.is_some();
        }
        Ok((facts, accepted))
    }

    /// Whether the segment after `segment_index` exists, is named after the next LSN, and
    /// its first block continues the chain. A record the crash left open at the end of this
    /// segment is abandoned by a newer epoch's first block there, which `continued_by` allows.
    fn segment_next_chains(&mut self, segment_index: usize) -> Result<bool> {
        let next = segment_index + 1;
        if next >= self.segments.len() || self.segments[next] != self.chain.lsn_next {
            return Ok(false);
        }
        let place = self.place(next, 0);
        Ok(match place.load_header(self.cache, self.storage)? {
            HeaderState::Valid(header) => self.chain.continued_by(&header),
            _ => false,
        })
    }

    /// Whether the log was closed cleanly right here, with nothing written since.
    fn clean_end_at(&self, segment_index: usize, offset_bytes: u64) -> bool {
        self.clean.is_some_and(|clean| {
            clean.segment == self.segments[segment_index]
                && clean.offset_bytes == offset_bytes
                && clean.lsn_next == self.chain.lsn_next
                && clean.checksum_last == self.chain.checksum_previous.unwrap_or(0)
        })
    }

    /// Whether records at or after the chain's end at this place were durable, and how far
    /// (the highest watermark any fact gives). The facts, in `docs/recovery.md`:
    /// - the metadata's checkpoint is beyond the chain's end;
    /// - a later valid block no older than the chain carries a higher `lsn_durable`;
    /// - a later valid block no older than the chain lies at least the writers' window past
    ///   this place: the write here had been synced before that block was written.
    ///
    /// The scan reads every sector after this place, in this and later segments, unless the log
    /// was closed cleanly right here. It also counts the valid blocks it finds (`discarded`)
    /// and raises `epoch_max` to every epoch it sees.
    fn attested(&mut self, segment_index: usize, offset_bytes: u64) -> Result<Option<Lsn>> {
        let mut watermark = (self.checkpoint > self.chain.lsn_next).then_some(self.checkpoint);
        self.discarded = Discarded::default();
        if self.formatted {
            return Ok(watermark);
        }
        if self.clean_end_at(segment_index, offset_bytes) {
            self.clean_matched = true;
            return Ok(watermark);
        }
        let sector = u64::from(self.config.sector_size_bytes);
        for index in segment_index..self.segments.len() {
            let mut offset = if index == segment_index {
                offset_bytes + sector
            } else {
                0
            };
            while offset < self.config.segment_size_bytes {
                let place = self.place(index, offset);
                if let HeaderState::Valid(header) = place.load_header(self.cache, self.storage)? {
                    self.epoch_max = self.epoch_max.max(header.epoch);
                    // A block past its segment's limit was dropped by a suffix truncation.
                    let dropped = header.fragment_count > 0
                        && header.lsn_first >= self.segment_lsn_limit(index);
                    if header.epoch >= self.chain.epoch && !dropped {
                        self.discarded.note(&header);
                        let distance = match index == segment_index {
                            true => offset - offset_bytes,
                            false => offset,
                        };
                        watermark = watermark.max(self.evidence(&header, distance));
                    }
                }
                offset += sector;
            }
        }
        Ok(watermark)
    }

    /// What a valid block no older than the chain, `distance_bytes` past the chain's end,
    /// proves: its watermark if beyond the end; and, if it lies at least the window past the
    /// end, that the write at the end had been synced (damage there is no torn write, even if
    /// no acknowledged record is proven lost: the watermark is then the chain's end itself).
    fn evidence(&self, header: &BlockHeader, distance_bytes: u64) -> Option<Lsn> {
        let lsn_next = self.chain.lsn_next;
        let watermark = (header.lsn_durable > lsn_next).then_some(header.lsn_durable);
        let mut window = self.window_size_bytes;
        let buffer = u64::from(self.config.write_buffer_size_bytes);
        if crate::planted::active("window-recovery-one-buffer-short") {
            window = window.saturating_sub(buffer);
        }
        if crate::planted::active("window-recovery-one-buffer-wide") {
            window += buffer;
        }
        let beyond_window = window > 0 && distance_bytes >= window;
        match beyond_window {
            true => Some(header.lsn_durable.max(lsn_next)),
            false => watermark,
        }
    }

    /// Names what is wrong with the block at a place, for the corruption error.
    fn corruption_kind(
        &mut self,
        segment_index: usize,
        offset_bytes: u64,
    ) -> Result<CorruptionKind> {
        let place = self.place(segment_index, offset_bytes);
        Ok(match place.load_header(self.cache, self.storage)? {
            HeaderState::Zero => CorruptionKind::Missing,
            HeaderState::Invalid => CorruptionKind::HeaderChecksum,
            HeaderState::Misplaced(_) => CorruptionKind::Misplaced,
            HeaderState::Malformed(_) => CorruptionKind::Malformed,
            HeaderState::Valid(header) => {
                match place.load_body(self.cache, self.storage, &header)? {
                    Err(kind) => kind,
                    Ok(_) => CorruptionKind::Misplaced,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which headers may follow a chain: each refused one is a block the writer never makes
    /// after this chain (forged, or a CRC collision), so only a forged header tests it.
    #[test]
    fn chain_continuation_rules() {
        let open = Chain {
            lsn_next: 20,
            checksum_previous: Some(0xC0FFEE),
            checksum_first: None,
            epoch: 3,
            record_open: true,
        };
        let closed = Chain {
            record_open: false,
            ..open
        };
        let next = |epoch, flags| BlockHeader {
            checksum_previous: 0xC0FFEE,
            lsn_first: 20,
            epoch,
            flags,
            fragment_count: 1,
            ..BlockHeader::default()
        };
        let continues = crate::format::FLAG_CONTINUES;
        // The same epoch carries on the open record, or starts afresh after a closed one.
        assert!(open.continued_by(&next(3, continues)));
        assert!(closed.continued_by(&next(3, 0)));
        assert!(!open.continued_by(&next(3, 0)), "drops the open record");
        assert!(
            !closed.continued_by(&next(3, continues)),
            "continues nothing"
        );
        // A newer epoch abandons an open record and never continues one.
        assert!(open.continued_by(&next(4, 0)));
        assert!(closed.continued_by(&next(4, 0)));
        assert!(!open.continued_by(&next(4, continues)));
        assert!(!closed.continued_by(&next(4, continues)));
        // An older epoch never follows.
        assert!(!open.continued_by(&next(2, continues)));
        assert!(!closed.continued_by(&next(2, 0)));
        // The link and the LSN must match.
        let unlinked = BlockHeader {
            checksum_previous: 1,
            ..next(3, continues)
        };
        assert!(!open.continued_by(&unlinked));
        let elsewhere = BlockHeader {
            lsn_first: 21,
            ..next(3, continues)
        };
        assert!(!open.continued_by(&elsewhere));
    }

    /// Every combination of the table's inputs, and the properties the table must have.
    #[test]
    fn decision_table_enumerated() {
        let mut seen = [0usize; 5];
        for bits in 0u32..1 << 5 {
            let bit = |n: u32| bits & (1 << n) != 0;
            let facts = BlockFacts {
                header_valid: bit(0),
                body_valid: bit(1),
                chained: bit(2),
                successor: bit(3),
                attested: bit(4),
            };
            for mode in [RecoveryMode::Strict, RecoveryMode::PointInTime] {
                let result = verdict(facts, mode);
                seen[result as usize] += 1;
                let acceptable = facts.header_valid && facts.body_valid && facts.chained;
                // Only a block valid in every way is ever accepted.
                assert_eq!(result == Verdict::Accept, acceptable, "{facts:?}");
                // A block that is not accepted never silently drops attested data: either the
                // next segment proves nothing lies between, or it is corruption or a loss the
                // mode allows.
                if !acceptable && facts.attested && !facts.successor {
                    let expected = match mode {
                        RecoveryMode::Strict => Verdict::Corrupt,
                        RecoveryMode::PointInTime => Verdict::Lose,
                    };
                    assert_eq!(result, expected, "{facts:?}");
                }
                // A torn tail is exactly an unacceptable, unattested block with no successor.
                let torn = !acceptable && !facts.attested && !facts.successor;
                assert_eq!(result == Verdict::TornTail, torn, "{facts:?}");
                // The strict mode never loses; point-in-time never reports corruption.
                assert!(!(mode == RecoveryMode::Strict && result == Verdict::Lose));
                assert!(!(mode == RecoveryMode::PointInTime && result == Verdict::Corrupt));
            }
        }
        assert!(
            seen.iter().all(|&count| count > 0),
            "every verdict reachable: {seen:?}"
        );
    }
}
