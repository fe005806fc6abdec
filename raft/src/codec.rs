//! How entries and the vote blob are laid out in the log: one format byte, then postcard.
//!
//! postcard (1.x) has a documented wire format that is frozen for the major version, encodes
//! integers as varints (a log id of small terms and indexes takes a few bytes), and writes
//! straight into one output vector. The format byte lets a later build change the layout and
//! still read old records.

use crate::error::{DecodeReason, Error};
use ballast_log::Lsn;
use openraft::{LogId, NodeId, Vote};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The first byte of every entry record.
pub const ENTRY_FORMAT: u8 = 1;
/// The first byte of the vote blob.
pub const META_FORMAT: u8 = 1;

/// Encodes one entry as a record: [`ENTRY_FORMAT`], then the entry in postcard.
pub fn entry_encode<E: Serialize>(entry: &E, index: u64) -> Result<Vec<u8>, Error> {
    let record = Vec::with_capacity(64);
    let mut record = postcard::to_extend(&[ENTRY_FORMAT], record)
        .map_err(|source| Error::Encode { index, source })?;
    record =
        postcard::to_extend(entry, record).map_err(|source| Error::Encode { index, source })?;
    assert_eq!(record[0], ENTRY_FORMAT);
    Ok(record)
}

/// Decodes the record at `lsn` as an entry.
pub fn entry_decode<E: DeserializeOwned>(record: &[u8], lsn: Lsn) -> Result<E, Error> {
    let decode_error = |reason| Error::Decode { lsn, reason };
    let (&format, body) = record
        .split_first()
        .ok_or(decode_error(DecodeReason::Empty))?;
    if format != ENTRY_FORMAT {
        return Err(decode_error(DecodeReason::Version(format)));
    }
    postcard::from_bytes(body).map_err(|error| decode_error(DecodeReason::Postcard(error)))
}

/// What the adapter keeps in the log's vote blob, saved whole and atomically: the vote, the
/// last purged log id (entries up to it are hidden, whatever segments still hold them), and
/// the last committed log id known durable in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Meta<NID: NodeId> {
    /// The last vote saved.
    pub vote: Option<Vote<NID>>,
    /// Every entry up to this one is purged.
    pub last_purged: Option<LogId<NID>>,
    /// Every entry up to this one is committed and was durable in this log when it was saved.
    pub committed: Option<LogId<NID>>,
}

impl<NID: NodeId> Default for Meta<NID> {
    fn default() -> Meta<NID> {
        Meta {
            vote: None,
            last_purged: None,
            committed: None,
        }
    }
}

/// Encodes the blob: [`META_FORMAT`], then postcard; refused if larger than the log's limit.
pub fn meta_encode<NID: NodeId>(meta: &Meta<NID>) -> Result<Vec<u8>, Error> {
    let size_bytes_max = ballast_log::format::VOTE_SIZE_BYTES_MAX;
    let blob = postcard::to_extend(&[META_FORMAT], Vec::with_capacity(size_bytes_max))
        .and_then(|blob| postcard::to_extend(meta, blob))
        .map_err(|_| Error::MetaMalformed {
            reason: "it does not encode",
        })?;
    if blob.len() > size_bytes_max {
        return Err(Error::MetaTooLarge {
            size_bytes: blob.len(),
            size_bytes_max,
        });
    }
    Ok(blob)
}

/// Decodes the blob; an empty blob (a log that never saved one) is the default.
pub fn meta_decode<NID: NodeId>(blob: &[u8]) -> Result<Meta<NID>, Error> {
    let Some((&format, body)) = blob.split_first() else {
        return Ok(Meta::default());
    };
    if format != META_FORMAT {
        return Err(Error::MetaMalformed {
            reason: "unknown format byte",
        });
    }
    let (meta, rest) = postcard::take_from_bytes(body).map_err(|_| Error::MetaMalformed {
        reason: "it does not decode",
    })?;
    if !rest.is_empty() {
        return Err(Error::MetaMalformed {
            reason: "bytes after the blob",
        });
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    fn log_id(term: u64, node: u64, index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(term, node), index)
    }

    #[test]
    fn meta_round_trips_and_the_largest_fits() {
        let empty: Meta<u64> = meta_decode(&[]).unwrap();
        assert_eq!(empty, Meta::default());
        let largest = Meta {
            vote: Some(Vote::new_committed(u64::MAX, u64::MAX)),
            last_purged: Some(log_id(u64::MAX, u64::MAX, u64::MAX)),
            committed: Some(log_id(u64::MAX, u64::MAX, u64::MAX)),
        };
        let blob = meta_encode(&largest).unwrap();
        assert!(blob.len() <= ballast_log::format::VOTE_SIZE_BYTES_MAX);
        assert_eq!(meta_decode::<u64>(&blob).unwrap(), largest);
    }

    #[test]
    fn meta_refuses_foreign_and_trailing_bytes() {
        let blob = meta_encode(&Meta::<u64>::default()).unwrap();
        let mut foreign = blob.clone();
        foreign[0] = META_FORMAT + 1;
        assert!(matches!(
            meta_decode::<u64>(&foreign),
            Err(Error::MetaMalformed { .. })
        ));
        let mut trailing = blob;
        trailing.push(0);
        assert!(matches!(
            meta_decode::<u64>(&trailing),
            Err(Error::MetaMalformed { .. })
        ));
    }

    #[test]
    fn entry_decode_names_what_is_wrong() {
        let record = entry_encode(&log_id(1, 2, 3), 3).unwrap();
        assert_eq!(
            entry_decode::<LogId<u64>>(&record, 3).unwrap(),
            log_id(1, 2, 3)
        );
        let empty = entry_decode::<LogId<u64>>(&[], 7);
        assert!(matches!(
            empty,
            Err(Error::Decode {
                lsn: 7,
                reason: DecodeReason::Empty
            })
        ));
        let mut foreign = record;
        foreign[0] = 9;
        let foreign = entry_decode::<LogId<u64>>(&foreign, 3);
        assert!(matches!(
            foreign,
            Err(Error::Decode {
                reason: DecodeReason::Version(9),
                ..
            })
        ));
    }
}
