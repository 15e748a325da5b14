//! The journal: segmented, append-only, preallocated files of checksummed frames.
//!
//! It knows bytes, frames and segments, and nothing about queues: the engine hands it a buffer
//! of encoded records (one group commit) and gets back where each part landed; on open it
//! replays every record it finds to a callback. The format is specified in [`format`](mod@format).
//!
//! | file | job |
//! |---|---|
//! | `format.rs` | the on-disk format, specified (and the items of `frame.rs`, public) |
//! | `frame.rs` | segment headers, frames and the record envelope: encode, check, iterate |
//! | `writer.rs` | appending frames, rolling and preallocating segments, fdatasync |
//! | `reader.rs` | read access to segments for readers outside every lock |
//! | `recovery.rs` | replay on open: which bytes are records, torn tail or corruption, repair |
//! | `missing.rs` | the chain of files: a missing segment, one cut short, a damaged header, a stray file |
//! | `verify.rs` | the read-only integrity check (`mqlite verify`) |
//! | `test.rs` | unit tests that write, roll, mangle and reopen |

mod covered;
pub mod format;
pub(crate) mod frame;
pub(crate) mod missing;
mod reader;
pub(crate) mod recovery;
#[cfg(test)]
mod test;
mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::io::{join, Vfs};

pub use covered::{CoveredSegment, Position};
use frame::store_id_bytes;
pub use missing::Missing;
pub use reader::Files;
pub use recovery::{Quarantined, RecoveryReport, TornTail};
use writer::RollError;

/// The callback recovery replays records to: `(segment, record offset, record length, kind, body)`.
pub type Apply<'a> = &'a mut dyn FnMut(u64, u64, u32, u8, &[u8]) -> Result<()>;

/// Where part of a written buffer landed: `buf[buf_start..buf_end]` is at `file_off` in segment `seg`.
#[derive(Debug, Clone, Copy)]
pub struct Placed {
    /// Start in the buffer given to [`Journal::write`].
    pub buf_start: usize,
    /// End in that buffer.
    pub buf_end: usize,
    /// Segment number.
    pub seg: u64,
    /// File offset of `buf_start`.
    pub file_off: u64,
}

/// Segments are preallocated in steps of this many bytes as they fill, so that a fresh segment's
/// unused tail (which recovery reads) stays small while appends still land in allocated space.
pub const GROW_BYTES: u64 = 4 << 20;

/// The file name of segment `n`.
pub fn segment_name(n: u64) -> String {
    format!("{n:016x}.seg")
}

/// Parses a segment file name.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".seg")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The outcome of [`Journal::write`].
#[derive(Debug)]
pub enum Written {
    /// Every record was written.
    All,
    /// Nothing was written: there is no space for the segment the batch needs (`NoSpace`).
    NoSpace(Error),
    /// The disk filled up part way through a batch larger than what was left: the whole
    /// records of `buf[..n]` were written (and are in `placed`), nothing after them. The caller
    /// keeps what was written (it is on disk and will be synced) and refuses the rest.
    Partial(usize, Error),
}

/// The append side of the journal (owned by the commit thread).
pub struct Journal {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    seg_bytes: u64,
    files: Files,
    /// Sizes of the live segments, oldest first.
    sizes: BTreeMap<u64, u64>,
    tail: u64,
    tail_off: u64,
    /// Capacity of the tail segment (its file grows to it in [`GROW_BYTES`] steps).
    tail_cap: u64,
    next_seq: u64,
    synced_seq: u64,
    tail_dirty: bool,
    /// Whether the tail is of the current format version (it may be given SEAL and TRIM marks).
    tail_current: bool,
    frame: Vec<u8>,
    now_ms: Box<dyn Fn() -> u64 + Send>,
    /// Per segment, `(len, crc)`: the CRC32C of its bytes `0..len`, kept as they are written
    /// (or as an open from a checkpoint verified them, or a full replay read them), so that a
    /// clean close can write the index checkpoint without reading the journal back. A segment
    /// is absent when its bytes are not all known to this process (a repair wrote into it at
    /// open, or a write to it failed): [`Journal::position`] then reads it.
    crcs: BTreeMap<u64, (u64, u32)>,
    /// What the store's directory and lock file were when its owner opened it (`None`: a
    /// read-only scan, which writes nothing). See [`Journal::check_home`].
    home: Option<Home>,
    /// `dir/LOCK`, made once: [`Journal::check_home`] runs before every write batch.
    lock_path: PathBuf,
    /// The store's identity, written into each new segment's header and checked against every
    /// header at recovery (`None`: not known yet, as before a new store's `STORE_ID` is made).
    store_id: Option<[u8; 16]>,
}

/// `(device, inode)` of the store directory and of its locked `LOCK` file, taken under the lock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Home {
    /// The directory the store was opened in.
    pub dir: (u64, u64),
    /// The `LOCK` file whose record lock the owner holds.
    pub lock: (u64, u64),
}

impl Journal {
    /// Opens (or creates) the journal in `dir`, replaying every record to `apply` as
    /// `(segment, record offset, record length, kind, body)`.
    pub fn open(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        seg_bytes: u64,
        repair: bool,
        now_ms: Box<dyn Fn() -> u64 + Send>,
        apply: Apply<'_>,
    ) -> Result<(Journal, RecoveryReport)> {
        Journal::open_proven(vfs, dir, seg_bytes, repair, None, now_ms, apply)
    }

    /// [`Journal::open`], with the journal position of an index checkpoint that is whole but
    /// could not be used (`durable`): what it proves had been durable is damage or a loss,
    /// never a torn tail (see the rule in `recovery.rs`).
    pub(crate) fn open_proven(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        seg_bytes: u64,
        repair: bool,
        durable: Option<&Position>,
        now_ms: Box<dyn Fn() -> u64 + Send>,
        apply: Apply<'_>,
    ) -> Result<(Journal, RecoveryReport)> {
        let mut j = Journal::unopened(vfs, dir, seg_bytes, now_ms);
        let durable = durable.and_then(recovery::Durable::of);
        let report = recovery::recover(&mut j, repair, durable, apply)?;
        j.finish_open()?;
        Ok((j, report))
    }

    /// Starts a new journal in `dir`, which holds no segment file, after every segment of an
    /// earlier one was lost (a repair accepting that loss): its first segment is numbered
    /// `after + 1`, so that no new segment reuses the name of a lost one (a copy of a lost
    /// segment put back later is then never taken for a new one).
    pub(crate) fn open_after_loss(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        seg_bytes: u64,
        now_ms: Box<dyn Fn() -> u64 + Send>,
        after: u64,
    ) -> Result<Journal> {
        let mut j = Journal::unopened(vfs, dir, seg_bytes, now_ms);
        j.tail = after;
        j.finish_open()?;
        Ok(j)
    }

    /// Opens the journal in `dir` at `pos` (an index checkpoint's), replaying nothing: `Ok(Err(why))`
    /// when the directory does not hold exactly what `pos` describes (see
    /// [`Journal::resume`]); the caller then opens it with [`Journal::open`].
    pub(crate) fn open_at(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        seg_bytes: u64,
        now_ms: Box<dyn Fn() -> u64 + Send>,
        pos: &Position,
    ) -> Result<std::result::Result<(Journal, RecoveryReport), String>> {
        let mut j = Journal::unopened(vfs, dir, seg_bytes, now_ms);
        let mut report = RecoveryReport::default();
        if let Err(why) = j.resume(pos, &mut report)? {
            return Ok(Err(why));
        }
        j.finish_open()?;
        Ok(Ok((j, report)))
    }

    fn unopened(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        seg_bytes: u64,
        now_ms: Box<dyn Fn() -> u64 + Send>,
    ) -> Journal {
        Journal {
            vfs,
            dir: dir.to_path_buf(),
            seg_bytes: seg_bytes.max(4096),
            files: Files::default(),
            sizes: BTreeMap::new(),
            tail: 0,
            tail_off: 0,
            tail_cap: 0,
            next_seq: 1,
            synced_seq: 0,
            tail_dirty: false,
            tail_current: false,
            frame: Vec::new(),
            now_ms,
            crcs: BTreeMap::new(),
            home: None,
            lock_path: PathBuf::new(),
            // Read from the real directory, as `Store::id` reads it.
            store_id: std::fs::read_to_string(dir.join(crate::store::identity::FILE))
                .ok()
                .and_then(|s| store_id_bytes(&s)),
        }
    }

    /// Names the store in the header of every segment made from now on (a new store's
    /// identity is made after its journal).
    pub(crate) fn set_store_id(&mut self, id: &str) {
        if let Some(b) = store_id_bytes(id) {
            self.store_id = Some(b);
        }
    }

    /// Makes every later write check that the store still lives where it was opened (see
    /// [`Journal::check_home`]).
    pub(crate) fn set_home(&mut self, home: Home) {
        self.home = Some(home);
        self.lock_path = self.dir.join("LOCK");
    }

    /// `Ok` while the store's path still names the directory it was opened in and its `LOCK`
    /// path still names the file whose lock this process holds. Checked before each write
    /// batch and before a new segment or checkpoint is created by name: one `lstat` per batch
    /// (not also after each fdatasync: the window between a batch's write and its sync is
    /// covered by the next batch's check, which fails the store before anything more is
    /// written).
    ///
    /// Why: the lock and new files are reached by name, the open files by descriptor. A
    /// directory moved away (`mv store store.old && mkdir store`) would get new segments in
    /// the new directory and old ones in the moved one, a store no open can read; a `LOCK`
    /// deleted (tmp cleaning, a user tidying up) lets a second process take a lock on a new
    /// `LOCK` file and write the same segments. Either way nothing more may be written or
    /// acked: the error poisons the store, and its message says what happened.
    pub(crate) fn check_home(&self) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let Some(home) = self.home else {
            return Ok(());
        };
        let key = |p: &Path| {
            std::fs::symlink_metadata(p)
                .ok()
                .map(|m| (m.dev(), m.ino()))
        };
        // One `lstat` per batch on the way that works: `dir/LOCK` resolves through the
        // directory's path, so a directory moved or replaced changes it too (a LOCK missing
        // or another file). Only when it differs is the directory looked at, to say which.
        if key(&self.lock_path) == Some(home.lock) {
            return Ok(());
        }
        if key(&self.dir) != Some(home.dir) {
            return Err(Error::new(
                crate::error::ErrorKind::Io,
                format!(
                    "the store directory {} was moved, deleted or replaced while the store was \
                     open (its path no longer names the directory the store was opened in): \
                     nothing more is written or acknowledged; close the store and open it where \
                     its files are",
                    self.dir.display()
                ),
            ));
        }
        Err(Error::new(
            crate::error::ErrorKind::Io,
            format!(
                "the store's lock file {} was deleted or replaced while the store was open: \
                 another process may take the store over, so nothing more is written or \
                 acknowledged; close the store and open it again",
                self.lock_path.display()
            ),
        ))
    }

    /// What every open does once the journal's segments are known: the tail's capacity, a
    /// first segment for a new store, the recovered bytes made durable.
    fn finish_open(&mut self) -> Result<()> {
        let j = self;
        j.tail_cap = j.segment_size(j.tail).max(j.seg_bytes);
        if j.sizes.is_empty() {
            j.roll(0, false).map_err(RollError::into_error)?;
        } else {
            // After a process crash, what recovery read may still be only in the page cache:
            // frames written but never fdatasync'd, or a segment whose directory entry was never
            // fsync'd. New frames are about to claim (in their `synced` field) that everything
            // before them is durable, and new acks will build on what was read; make it so.
            // The segment before the tail too: a roll writes the SEAL into it after its
            // successor was created, and a crash before that SEAL's fdatasync leaves it only in
            // the page cache while the new tail's frames would claim it durable.
            let before = j.sizes.range(..j.tail).next_back().map(|(k, _)| *k);
            for n in before.into_iter().chain(std::iter::once(j.tail)) {
                let f = j.files.get(n).ok_or_else(Error::closed)?;
                f.sync_data()
                    .map_err(|e| Error::io(format!("fdatasync of {}", segment_name(n)), &e))?;
            }
            j.vfs
                .sync_dir(&j.dir)
                .map_err(|e| Error::io("fsync of the store directory", &e))?;
        }
        Ok(())
    }

    /// The file layer the journal uses.
    pub(crate) fn vfs(&self) -> &Arc<dyn Vfs> {
        &self.vfs
    }

    /// The store directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Shared read access to the segment files.
    pub fn files(&self) -> Files {
        self.files.clone()
    }

    /// Live segment numbers, oldest first.
    pub fn segments(&self) -> Vec<u64> {
        self.sizes.keys().copied().collect()
    }

    /// The segment being appended to.
    pub fn tail(&self) -> u64 {
        self.tail
    }

    /// Size in bytes of segment `seg`.
    pub fn segment_size(&self, seg: u64) -> u64 {
        self.sizes.get(&seg).copied().unwrap_or(0)
    }

    /// Bytes of all live segments.
    pub fn disk_bytes(&self) -> u64 {
        self.sizes.values().sum()
    }

    fn path(&self, seg: u64) -> PathBuf {
        join(&self.dir, &segment_name(seg))
    }
}
