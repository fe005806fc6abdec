//! Traces saved to files, so that a failure found on one run replays exactly on the next: the
//! IO threads, the fill-ahead thread and the producers of a shared log interleave differently
//! every run, and so do their traces.
//!
//! The format is private to the explorer: a magic line, then each event as little-endian
//! fields (thread, result, call tag, the call's fields; strings and bytes with a u32 length),
//! then the generations of records the run appended (which LSN holds which record differs
//! between runs of a shared log too).

use super::workloads::Generation;
use ballast_log::storage::trace::{Call, Event, FileId};
use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"ballast-crash-trace-1\n";

/// Saves a trace and the generations of records it appended.
pub fn save(path: &Path, trace: &[Event], generations: &[Generation]) -> std::io::Result<()> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&(trace.len() as u64).to_le_bytes());
    for event in trace {
        encode(&mut out, event);
    }
    out.extend_from_slice(&(generations.len() as u64).to_le_bytes());
    for generation in generations {
        out.extend_from_slice(&(generation.begin_event as u64).to_le_bytes());
        out.extend_from_slice(&generation.tag.to_le_bytes());
        out.extend_from_slice(&generation.lsn_start.to_le_bytes());
        out.extend_from_slice(&(generation.keys.len() as u64).to_le_bytes());
        for key in &generation.keys {
            out.extend_from_slice(&key.to_le_bytes());
        }
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, out)
}

/// Loads what [`save`] saved.
pub fn load(path: &Path) -> (Vec<Event>, Vec<Generation>) {
    let bytes = std::fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let mut reader = Reader {
        bytes: bytes
            .strip_prefix(MAGIC)
            .expect("a saved crash-explorer trace"),
    };
    let count = reader.u64();
    let trace = (0..count).map(|_| decode(&mut reader)).collect();
    let count = reader.u64();
    let generations = (0..count)
        .map(|_| Generation {
            begin_event: reader.u64() as usize,
            tag: reader.u32(),
            lsn_start: reader.u64(),
            keys: (0..reader.u64()).map(|_| reader.u64()).collect(),
        })
        .collect();
    assert!(reader.bytes.is_empty(), "bytes after the last generation");
    (trace, generations)
}

fn encode(out: &mut Vec<u8>, event: &Event) {
    out.extend_from_slice(&event.thread.to_le_bytes());
    let errno = event.result.err().unwrap_or(0);
    out.extend_from_slice(&errno.to_le_bytes());
    let put_file = |out: &mut Vec<u8>, file: &FileId| {
        out.extend_from_slice(&file.dev.to_le_bytes());
        out.extend_from_slice(&file.ino.to_le_bytes());
    };
    let put_bytes = |out: &mut Vec<u8>, bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    match &event.call {
        Call::OpenDir { path, dir, created } => {
            out.push(0);
            put_bytes(out, path.to_string_lossy().as_bytes());
            put_file(out, dir);
            out.push(u8::from(*created));
        }
        Call::Open {
            dir,
            name,
            flags,
            file,
            created,
        } => {
            out.push(1);
            put_file(out, dir);
            put_bytes(out, name.as_bytes());
            out.extend_from_slice(&flags.to_le_bytes());
            put_file(out, file);
            out.push(u8::from(*created));
        }
        Call::Write {
            file,
            offset_bytes,
            bytes,
        } => {
            out.push(2);
            put_file(out, file);
            out.extend_from_slice(&offset_bytes.to_le_bytes());
            put_bytes(out, bytes);
        }
        Call::SetSize { file, size_bytes } => {
            out.push(3);
            put_file(out, file);
            out.extend_from_slice(&size_bytes.to_le_bytes());
        }
        Call::Sync { file, data_only } => {
            out.push(4);
            put_file(out, file);
            out.push(u8::from(*data_only));
        }
        Call::Rename { dir, from, to } => {
            out.push(5);
            put_file(out, dir);
            put_bytes(out, from.as_bytes());
            put_bytes(out, to.as_bytes());
        }
        Call::Unlink { dir, name } => {
            out.push(6);
            put_file(out, dir);
            put_bytes(out, name.as_bytes());
        }
        Call::Flock { file } => {
            out.push(7);
            put_file(out, file);
        }
        Call::Acknowledged { lsn_durable } => {
            out.push(8);
            out.extend_from_slice(&lsn_durable.to_le_bytes());
        }
        Call::Truncating { lsn } => {
            out.push(9);
            out.extend_from_slice(&lsn.to_le_bytes());
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, size: usize) -> &[u8] {
        let (head, rest) = self.bytes.split_at(size);
        self.bytes = rest;
        head
    }

    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().unwrap())
    }

    fn i32(&mut self) -> i32 {
        i32::from_le_bytes(self.take(4).try_into().unwrap())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().unwrap())
    }

    fn file(&mut self) -> FileId {
        FileId {
            dev: self.u64(),
            ino: self.u64(),
        }
    }

    fn bytes(&mut self) -> Vec<u8> {
        let size = self.u32() as usize;
        self.take(size).to_vec()
    }

    fn text(&mut self) -> String {
        String::from_utf8(self.bytes()).expect("names are UTF-8")
    }
}

fn decode(reader: &mut Reader) -> Event {
    let thread = reader.u32();
    let errno = reader.i32();
    let call = match reader.u8() {
        0 => Call::OpenDir {
            path: PathBuf::from(reader.text()),
            dir: reader.file(),
            created: reader.u8() == 1,
        },
        1 => Call::Open {
            dir: reader.file(),
            name: reader.text(),
            flags: reader.i32(),
            file: reader.file(),
            created: reader.u8() == 1,
        },
        2 => Call::Write {
            file: reader.file(),
            offset_bytes: reader.u64(),
            bytes: reader.bytes(),
        },
        3 => Call::SetSize {
            file: reader.file(),
            size_bytes: reader.u64(),
        },
        4 => Call::Sync {
            file: reader.file(),
            data_only: reader.u8() == 1,
        },
        5 => Call::Rename {
            dir: reader.file(),
            from: reader.text(),
            to: reader.text(),
        },
        6 => Call::Unlink {
            dir: reader.file(),
            name: reader.text(),
        },
        7 => Call::Flock {
            file: reader.file(),
        },
        8 => Call::Acknowledged {
            lsn_durable: reader.u64(),
        },
        9 => Call::Truncating { lsn: reader.u64() },
        tag => panic!("unknown call tag {tag} in a saved trace"),
    };
    let result = if errno == 0 { Ok(()) } else { Err(errno) };
    Event {
        thread,
        call,
        result,
    }
}
