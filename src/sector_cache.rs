//! The sector cache: recently read sectors, so that warm point reads copy from memory instead
//! of reading storage again. Bounded by `Config::cache_size_bytes` and allocated at open.
//!
//! Eviction is CLOCK with a two-bit count per frame: a new sector enters with 0, each hit
//! adds one (up to 3), and the hand takes one away from every frame it passes, evicting the
//! first at 0. A scan of sectors read once passes through the frames at 0 and leaves the
//! sectors read again and again (the hot set) where they are. Lookups go through an
//! open-addressing table with linear probing, twice as large as the frames, and
//! backward-shift deletion (no tombstones).
//!
//! Only sectors whose bytes were checked against the sector table go in, so a hit needs no
//! check. Every write and every segment change invalidates the sectors it touches, through
//! `ReadCache::invalidate`.

use crate::storage::SegmentId;

/// A frame that holds nothing.
const EMPTY: (SegmentId, u64) = (u64::MAX, u64::MAX);

/// A bucket of the lookup table that points at no frame.
const BUCKET_EMPTY: u32 = u32::MAX;

/// The highest count a frame's hits raise it to.
const COUNT_MAX: u8 = 3;

pub(crate) struct SectorCache {
    sector_size_bytes: usize,
    bytes: Vec<u8>,
    /// Per frame: the segment and sector number it holds, or `EMPTY`.
    keys: Vec<(SegmentId, u64)>,
    counts: Vec<u8>,
    /// Frame numbers, by hash of their key; a power of two, twice the frames.
    buckets: Vec<u32>,
    hand: usize,
    /// Reads it served whole, and reads that went to storage (counted by the caller, which
    /// knows what a read is).
    pub hits: u64,
    pub misses: u64,
}

impl SectorCache {
    /// A cache of `size_bytes` in whole sectors (0: disabled).
    pub fn new(size_bytes: u64, sector_size_bytes: u32) -> SectorCache {
        let sector = sector_size_bytes as usize;
        let frames = (size_bytes / u64::from(sector_size_bytes)) as usize;
        assert!(frames < BUCKET_EMPTY as usize);
        let buckets = match frames {
            0 => 0,
            frames => (2 * frames).next_power_of_two(),
        };
        SectorCache {
            sector_size_bytes: sector,
            bytes: vec![0; frames * sector],
            keys: vec![EMPTY; frames],
            counts: vec![0; frames],
            buckets: vec![BUCKET_EMPTY; buckets],
            hand: 0,
            hits: 0,
            misses: 0,
        }
    }

    fn bucket_home(&self, key: (SegmentId, u64)) -> usize {
        let hash = key.0.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29)
            ^ key.1.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        (hash.wrapping_mul(0x1656_67B1_9E37_79F9) >> 32) as usize & (self.buckets.len() - 1)
    }

    /// The bucket that points at the frame holding `key`, if one does.
    fn bucket_find(&self, key: (SegmentId, u64)) -> Option<usize> {
        if self.buckets.is_empty() {
            return None;
        }
        let mask = self.buckets.len() - 1;
        let mut bucket = self.bucket_home(key);
        loop {
            let frame = self.buckets[bucket];
            if frame == BUCKET_EMPTY {
                return None;
            }
            if self.keys[frame as usize] == key {
                return Some(bucket);
            }
            bucket = (bucket + 1) & mask;
        }
    }

    /// The bytes of sector `sector` of `segment`, if the cache holds them; a use of it.
    pub fn get(&mut self, segment: SegmentId, sector: u64) -> Option<&[u8]> {
        let bucket = self.bucket_find((segment, sector))?;
        let frame = self.buckets[bucket] as usize;
        self.counts[frame] = (self.counts[frame] + 1).min(COUNT_MAX);
        let size = self.sector_size_bytes;
        Some(&self.bytes[frame * size..(frame + 1) * size])
    }

    /// Whether the cache holds the sector; not a use.
    pub fn contains(&self, segment: SegmentId, sector: u64) -> bool {
        self.bucket_find((segment, sector)).is_some()
    }

    /// Puts a checked sector in, evicting one under CLOCK if the frames are full.
    pub fn insert(&mut self, segment: SegmentId, sector: u64, bytes: &[u8]) {
        assert_eq!(bytes.len(), self.sector_size_bytes);
        if self.keys.is_empty() {
            return;
        }
        let key = (segment, sector);
        let frame = match self.bucket_find(key) {
            Some(bucket) => self.buckets[bucket] as usize,
            None => {
                let frame = self.victim();
                self.keys[frame] = key;
                self.counts[frame] = 0;
                let mask = self.buckets.len() - 1;
                let mut bucket = self.bucket_home(key);
                while self.buckets[bucket] != BUCKET_EMPTY {
                    bucket = (bucket + 1) & mask;
                }
                self.buckets[bucket] = frame as u32;
                frame
            }
        };
        let size = self.sector_size_bytes;
        self.bytes[frame * size..(frame + 1) * size].copy_from_slice(bytes);
    }

    /// A frame to fill: an empty one, or the first the hand finds at count 0.
    fn victim(&mut self) -> usize {
        loop {
            let frame = self.hand;
            self.hand = (self.hand + 1) % self.keys.len();
            if self.keys[frame] == EMPTY {
                return frame;
            }
            if self.counts[frame] == 0 {
                self.remove(self.keys[frame]);
                return frame;
            }
            self.counts[frame] -= 1;
        }
    }

    /// Takes a sector out, if the cache holds it.
    fn remove(&mut self, key: (SegmentId, u64)) {
        let Some(mut hole) = self.bucket_find(key) else {
            return;
        };
        let frame = self.buckets[hole] as usize;
        self.keys[frame] = EMPTY;
        self.buckets[hole] = BUCKET_EMPTY;
        // Backward shift: move up every later entry of the run that may fill the hole.
        let mask = self.buckets.len() - 1;
        let mut bucket = (hole + 1) & mask;
        while self.buckets[bucket] != BUCKET_EMPTY {
            let home = self.bucket_home(self.keys[self.buckets[bucket] as usize]);
            // The entry may move to the hole if the hole lies between its home and it.
            let distance_hole = hole.wrapping_sub(home) & mask;
            let distance_here = bucket.wrapping_sub(home) & mask;
            if distance_hole < distance_here {
                self.buckets[hole] = self.buckets[bucket];
                self.buckets[bucket] = BUCKET_EMPTY;
                hole = bucket;
            }
            bucket = (bucket + 1) & mask;
        }
    }

    /// Forgets the sectors of `segment` that `[offset_bytes, offset_bytes + size_bytes)`
    /// touches, because they are about to change on storage.
    pub fn invalidate(&mut self, segment: SegmentId, offset_bytes: u64, size_bytes: u64) {
        if self.keys.is_empty() || size_bytes == 0 {
            return;
        }
        let size = self.sector_size_bytes as u64;
        let first = offset_bytes / size;
        let last = (offset_bytes + size_bytes - 1) / size;
        if last - first < self.keys.len() as u64 {
            for sector in first..=last {
                self.remove((segment, sector));
            }
            return;
        }
        for frame in 0..self.keys.len() {
            let key = self.keys[frame];
            if key.0 == segment && (first..=last).contains(&key.1) {
                self.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sector(fill: u8) -> [u8; 512] {
        [fill; 512]
    }

    /// Sectors come back as they went in; a full cache evicts a sector read once before one
    /// read again; invalidation drops exactly the sectors a range touches, by sector or by
    /// scanning the frames, and the table still finds everything else after the deletions.
    #[test]
    fn clock_keeps_the_sectors_read_again() {
        let mut cache = SectorCache::new(4 * 512, 512);
        for number in 0..4 {
            cache.insert(1, number, &sector(number as u8));
        }
        for _ in 0..2 {
            assert_eq!(cache.get(1, 2).map(|bytes| bytes[0]), Some(2));
        }
        // A scan of sectors read once goes through the frames at count 0; the hand takes the
        // hot sector's count down by one per pass, so two hits keep it for two passes.
        for number in 10..18 {
            cache.insert(1, number, &sector(number as u8));
            assert!(cache.contains(1, 2), "the hot sector stays ({number})");
        }
        assert!(!cache.contains(1, 0) && !cache.contains(1, 10));
        assert_eq!(cache.get(1, 17).map(|bytes| bytes[511]), Some(17));
        assert!(cache.get(7, 2).is_none());
        cache.invalidate(1, 2 * 512 + 100, 1);
        assert!(!cache.contains(1, 2));
        assert!(cache.contains(1, 17));
        cache.insert(1, 18, &sector(18));
        assert!(
            cache.contains(1, 18),
            "into the frame the invalidation emptied"
        );
        cache.invalidate(1, 0, 1 << 30);
        assert!((10..19).all(|number| !cache.contains(1, number)));
    }

    /// Many keys that collide in the table: every deletion keeps the others reachable.
    #[test]
    fn backward_shift_keeps_every_key_reachable() {
        let mut cache = SectorCache::new(64 * 512, 512);
        for number in 0..64 {
            cache.insert(number % 3, number, &sector(number as u8));
        }
        for number in (0..64).step_by(3) {
            cache.invalidate(number % 3, number * 512, 512);
        }
        for number in 0..64 {
            assert_eq!(
                cache.contains(number % 3, number),
                number % 3 != 0,
                "{number}"
            );
        }
        assert!(cache.keys.len() == 64 && cache.buckets.len() == 128);
        let mut disabled = SectorCache::new(0, 512);
        disabled.insert(1, 1, &sector(1));
        assert!(disabled.get(1, 1).is_none());
    }
}
