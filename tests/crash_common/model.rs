//! The persistence model: a conservative reading of what POSIX promises a power cut leaves on
//! disk, replayed over a trace of the file-system seam (`ballast_log::storage::trace`).
//!
//! The model keeps *file objects* (inodes) and one directory (the log's). Each object has a
//! durable image, which survives any power cut, and the operations made on it since its last
//! sync, which a power cut may keep, lose or tear. The directory has a durable name table and
//! the operations made on it since its last `fsync`. `docs/crash-consistency.md` states the
//! rules; [`Model::apply`] is where each one is coded.

use ballast_log::storage::trace::{Call, Event, FileId};
use std::collections::{BTreeMap, HashMap};

/// The unit a power cut tears a write into: a classic disk sector.
pub const SECTOR_SIZE_BYTES: u64 = 512;

/// An operation on a file's contents or size that a power cut may undo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileOp {
    /// `bytes` written at `offset_bytes` (a write past the end extends the file).
    Write { offset_bytes: u64, bytes: Vec<u8> },
    /// The size set to `size_bytes` (`fallocate`, `ftruncate`, `O_TRUNC`), cutting or
    /// extending with zeros.
    Size { size_bytes: u64 },
}

/// One inode: what survives any crash, what the process sees, and what lies between.
#[derive(Clone, Debug, Default)]
pub struct FileObject {
    /// Contents and size that survive any crash.
    pub durable: Vec<u8>,
    /// Contents and size as the process sees them.
    pub current: Vec<u8>,
    /// Operations since the last sync, in the order they completed, with the index of the
    /// event that made each.
    pub pending: Vec<(usize, FileOp)>,
    /// The end of the furthest byte written and still inside the file: the size an
    /// `fdatasync` must make durable so that the data can be read back.
    pub data_end_bytes: u64,
}

/// An operation on the directory that a power cut may undo until the directory is synced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirOp {
    /// A new name for a new object (`openat` with `O_CREAT` that created the file).
    Create { name: String, object: usize },
    /// `from` renamed over `to`.
    Rename { from: String, to: String },
    /// `name` removed.
    Unlink { name: String },
}

impl DirOp {
    /// The names the operation reads or changes: two operations that share a name are
    /// persisted in the order they were made.
    pub fn touches(&self, other: &DirOp) -> bool {
        let names = |op: &DirOp| -> Vec<String> {
            match op {
                DirOp::Create { name, .. } | DirOp::Unlink { name } => vec![name.clone()],
                DirOp::Rename { from, to } => vec![from.clone(), to.clone()],
            }
        };
        let mine = names(self);
        names(other).iter().any(|name| mine.contains(name))
    }

    /// Applies the operation to a name table.
    pub fn apply(&self, names: &mut BTreeMap<String, usize>) {
        match self {
            DirOp::Create { name, object } => {
                names.insert(name.clone(), *object);
            }
            DirOp::Rename { from, to } => {
                let object = names
                    .remove(from)
                    .unwrap_or_else(|| panic!("rename of a missing name {from}"));
                names.insert(to.clone(), object);
            }
            DirOp::Unlink { name } => {
                names.remove(name);
            }
        }
    }
}

/// The file system as the trace has shaped it so far, and what a power cut may take back.
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub objects: Vec<FileObject>,
    /// The object each file identity refers to now: a created file takes its identity over
    /// from any earlier object with the same inode number (inodes are reused after unlink).
    identities: HashMap<FileId, usize>,
    /// The log directory, once the trace opened it.
    directory: Option<FileId>,
    /// Names that survive any crash.
    pub names_durable: BTreeMap<String, usize>,
    /// Names as the process sees them.
    pub names_current: BTreeMap<String, usize>,
    /// Directory operations since the last directory `fsync`, in the order they completed,
    /// with the index of the event that made each.
    pub dir_pending: Vec<(usize, DirOp)>,
    /// The highest durable watermark the log acknowledged, lowered to where a suffix
    /// truncation began: records from there on are owed no more.
    pub lsn_acknowledged: u64,
    /// The highest LSN below which `truncate_prefix` may have removed records: the name of
    /// the segment after the last segment removed from the front of the log.
    pub lsn_droppable: u64,
    /// Events applied so far.
    pub event_count: usize,
    /// Syncs of files the trace never opened (the parent of a directory made at open): they
    /// make nothing of the log's durable, so they change nothing here.
    pub syncs_ignored: usize,
}

impl Model {
    /// An empty log directory.
    pub fn new() -> Model {
        Model::default()
    }

    /// A directory that holds `files`, every byte durable: the disk after a power cut, as
    /// the next process finds it.
    pub fn with_files(files: &BTreeMap<String, Vec<u8>>) -> Model {
        let mut model = Model::new();
        for (name, bytes) in files {
            let object = model.objects.len();
            model.objects.push(FileObject {
                durable: bytes.clone(),
                current: bytes.clone(),
                pending: Vec::new(),
                data_end_bytes: bytes.len() as u64,
            });
            model.names_durable.insert(name.clone(), object);
            model.names_current.insert(name.clone(), object);
        }
        model
    }

    /// Replays one event. A call that failed changed nothing.
    pub fn apply(&mut self, event: &Event) {
        self.event_count += 1;
        if event.result.is_err() {
            return;
        }
        self.apply_call(&event.call);
    }

    fn apply_call(&mut self, call: &Call) {
        match call {
            Call::OpenDir { dir, .. } => self.directory_open(*dir),
            Call::Open {
                dir,
                name,
                flags,
                file,
                created,
            } => self.open(*dir, name, *flags, *file, *created),
            Call::Write {
                file,
                offset_bytes,
                bytes,
            } => self.write(*file, *offset_bytes, bytes),
            Call::SetSize { file, size_bytes } => self.size_set(*file, *size_bytes),
            Call::Sync { file, data_only } => self.sync(*file, *data_only),
            Call::Rename { dir, from, to } => {
                self.directory_check(*dir);
                self.dir_op(DirOp::Rename {
                    from: from.clone(),
                    to: to.clone(),
                });
            }
            Call::Unlink { dir, name } => {
                self.directory_check(*dir);
                self.droppable_note(name);
                self.dir_op(DirOp::Unlink { name: name.clone() });
            }
            Call::Flock { .. } => {}
            Call::Acknowledged { lsn_durable } => {
                self.lsn_acknowledged = self.lsn_acknowledged.max(*lsn_durable);
            }
            // The caller gave up the records from `lsn` on: none of them is owed any more.
            Call::Truncating { lsn } => {
                self.lsn_acknowledged = self.lsn_acknowledged.min(*lsn);
            }
        }
    }

    fn directory_open(&mut self, dir: FileId) {
        match self.directory {
            None => self.directory = Some(dir),
            Some(known) => assert_eq!(known, dir, "the trace opened a second directory"),
        }
    }

    fn directory_check(&self, dir: FileId) {
        assert_eq!(
            Some(dir),
            self.directory,
            "a call in a directory the model does not follow"
        );
    }

    fn open(&mut self, dir: FileId, name: &str, flags: i32, file: FileId, created: bool) {
        self.directory_check(dir);
        if created {
            let object = self.objects.len();
            self.objects.push(FileObject::default());
            self.identities.insert(file, object);
            self.dir_op(DirOp::Create {
                name: name.to_string(),
                object,
            });
            return;
        }
        let object = *self
            .names_current
            .get(name)
            .unwrap_or_else(|| panic!("the trace opened {name}, which the model does not hold"));
        self.identities.insert(file, object);
        if flags & libc::O_TRUNC != 0 {
            self.object_op(object, FileOp::Size { size_bytes: 0 });
        }
    }

    fn object_of(&self, file: FileId) -> usize {
        *self
            .identities
            .get(&file)
            .unwrap_or_else(|| panic!("a call on {file:?}, which the trace never opened"))
    }

    fn write(&mut self, file: FileId, offset_bytes: u64, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let object = self.object_of(file);
        let op = FileOp::Write {
            offset_bytes,
            bytes: bytes.to_vec(),
        };
        self.object_op(object, op);
    }

    fn size_set(&mut self, file: FileId, size_bytes: u64) {
        let object = self.object_of(file);
        self.object_op(object, FileOp::Size { size_bytes });
    }

    fn object_op(&mut self, object: usize, op: FileOp) {
        let file = &mut self.objects[object];
        op_apply(&mut file.current, &op);
        match &op {
            FileOp::Write {
                offset_bytes,
                bytes,
            } => {
                let end = offset_bytes + bytes.len() as u64;
                file.data_end_bytes = file.data_end_bytes.max(end);
            }
            FileOp::Size { size_bytes } => {
                file.data_end_bytes = file.data_end_bytes.min(*size_bytes);
            }
        }
        file.pending.push((self.event_count - 1, op));
    }

    fn sync(&mut self, file: FileId, data_only: bool) {
        if Some(file) == self.directory {
            assert!(!data_only, "the directory is synced with fsync");
            for (_, op) in std::mem::take(&mut self.dir_pending) {
                op.apply(&mut self.names_durable);
            }
            return;
        }
        let Some(&object) = self.identities.get(&file) else {
            self.syncs_ignored += 1;
            return;
        };
        let event = self.event_count - 1;
        let file = &mut self.objects[object];
        if data_only {
            data_sync(file, event);
        } else {
            file.durable = file.current.clone();
            file.pending.clear();
        }
    }

    fn dir_op(&mut self, op: DirOp) {
        op.apply(&mut self.names_current);
        self.dir_pending.push((self.event_count - 1, op));
    }

    /// Notes a segment removed from the front of the log (`truncate_prefix`): records below
    /// the next segment's name may be gone. Recovery removes segments only after the log's
    /// end, never the first one, so this tells the two apart.
    fn droppable_note(&mut self, name: &str) {
        let segments: Vec<u64> = self
            .names_current
            .keys()
            .filter_map(|name| ballast_log::storage::segment_file_parse(name.as_bytes()))
            .collect();
        let Some(removed) = ballast_log::storage::segment_file_parse(name.as_bytes()) else {
            return;
        };
        if segments.first() == Some(&removed) {
            if let Some(&next) = segments.get(1) {
                self.lsn_droppable = self.lsn_droppable.max(next);
            }
        }
    }

    /// Whether the trace has opened the log directory yet.
    pub fn is_directory_open(&self) -> bool {
        self.directory.is_some()
    }
}

/// `fdatasync`: every write so far becomes durable, with the size needed to read it back
/// (the end of the furthest write, or a cut the file has had since). A size the file was
/// given beyond its data (`fallocate`) stays pending: only `fsync` promises it.
fn data_sync(file: &mut FileObject, event: usize) {
    let current_bytes = file.current.len() as u64;
    let durable_bytes = file.durable.len() as u64;
    let size_bytes = if current_bytes < durable_bytes {
        current_bytes
    } else {
        durable_bytes.max(file.data_end_bytes.min(current_bytes))
    };
    file.durable = file.current[..size_bytes as usize].to_vec();
    file.pending.clear();
    if current_bytes > size_bytes {
        let op = FileOp::Size {
            size_bytes: current_bytes,
        };
        file.pending.push((event, op));
    }
}

/// Applies an operation whole to an image.
pub fn op_apply(image: &mut Vec<u8>, op: &FileOp) {
    match op {
        FileOp::Write {
            offset_bytes,
            bytes,
        } => {
            let start = *offset_bytes as usize;
            let end = start + bytes.len();
            if image.len() < end {
                image.resize(end, 0);
            }
            image[start..end].copy_from_slice(bytes);
        }
        FileOp::Size { size_bytes } => image.resize(*size_bytes as usize, 0),
    }
}

/// The sectors a write covers, as ranges of the write's own bytes, cut at every 512-byte
/// boundary of the file.
pub fn write_sectors(offset_bytes: u64, size_bytes: usize) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0usize;
    while start < size_bytes {
        let at = offset_bytes + start as u64;
        let boundary = (at / SECTOR_SIZE_BYTES + 1) * SECTOR_SIZE_BYTES;
        let end = ((boundary - offset_bytes) as usize).min(size_bytes);
        ranges.push(start..end);
        start = end;
    }
    ranges
}
