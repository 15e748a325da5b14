//! The journal: segmented, append-only, preallocated files of checksummed frames.
//!
//! It knows bytes, frames and segments, and nothing about queues: the store hands it a buffer of
//! encoded records (one group commit) and gets back where each part landed; on open it replays
//! every record it finds to a callback. The format is specified in [`format`].

pub mod format;
mod recovery;
pub mod verify;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::error::{Error, Result};
use crate::io::{join, VFile, Vfs};
use format::*;

pub use recovery::{Quarantined, RecoveryReport, TornTail};

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
}

enum RollError {
    /// Out of space before anything of the new segment became durable.
    Full(Error),
    /// Any other failure.
    Io(Error),
}

impl RollError {
    fn into_error(self) -> Error {
        match self {
            RollError::Full(e) | RollError::Io(e) => e,
        }
    }
}

/// Read access to segment files, shared with receiving threads.
#[derive(Clone, Default)]
pub struct Files(Arc<RwLock<BTreeMap<u64, Arc<dyn VFile>>>>);

impl Files {
    /// The file of segment `seg`.
    pub fn get(&self, seg: u64) -> Option<Arc<dyn VFile>> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&seg)
            .cloned()
    }
    fn insert(&self, seg: u64, f: Arc<dyn VFile>) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(seg, f);
    }
    fn remove(&self, seg: u64) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&seg);
    }
    /// Reads `buf.len()` bytes at `off` of segment `seg`.
    pub fn read(&self, seg: u64, off: u64, buf: &mut [u8]) -> Result<()> {
        let f = self.get(seg).ok_or_else(|| {
            Error::new(crate::ErrorKind::Internal, format!("segment {seg} is gone"))
        })?;
        f.read_at(buf, off)
            .map_err(|e| Error::io(format!("reading {} at {off}", segment_name(seg)), &e))
    }
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
    frame: Vec<u8>,
    now_ms: Box<dyn Fn() -> u64 + Send>,
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
        let mut j = Journal {
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
            frame: Vec::new(),
            now_ms,
        };
        let report = recovery::recover(&mut j, repair, apply)?;
        j.tail_cap = j.segment_size(j.tail).max(j.seg_bytes);
        if j.sizes.is_empty() {
            j.roll(0).map_err(RollError::into_error)?;
        } else {
            // After a process crash, what recovery read may still be only in the page cache:
            // frames written but never fdatasync'd, or a segment whose directory entry was never
            // fsync'd. New frames are about to claim (in their `synced` field) that everything
            // before them is durable, and new acks will build on what was read; make it so.
            let tail = j.files.get(j.tail).ok_or_else(Error::closed)?;
            tail.sync_data()
                .map_err(|e| Error::io(format!("fdatasync of {}", segment_name(j.tail)), &e))?;
            j.vfs
                .sync_dir(&j.dir)
                .map_err(|e| Error::io("fsync of the store directory", &e))?;
        }
        Ok((j, report))
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

    /// Bytes at the end of every segment that only [`Journal::write`] with `use_reserve` may
    /// fill: when the disk is too full for a new segment, settle records (acks, deliveries,
    /// requeues, dead-letter moves) still have room while new messages are refused (SPEC §1).
    /// The reserve is always allocated (the file grows ahead of the data by at least it).
    pub fn reserve(&self) -> u64 {
        (self.seg_bytes / 8).min(1 << 20)
    }

    /// Payload bytes that fit in one more frame of the tail.
    fn room(&self, use_reserve: bool) -> u64 {
        let reserve = if use_reserve { 0 } else { self.reserve() };
        self.tail_cap
            .saturating_sub(reserve)
            .saturating_sub(self.tail_off + FRAME_HEADER as u64)
    }

    /// Creates segment `tail + 1` big enough for a frame of `need` payload bytes (plus the
    /// reserve), and makes it the tail.
    fn roll(&mut self, need: usize) -> std::result::Result<(), RollError> {
        if self.tail_dirty {
            self.sync().map_err(RollError::Io)?;
        }
        let n = self.tail + 1;
        let min = (SEGMENT_HEADER + FRAME_HEADER + need) as u64 + self.reserve();
        // An oversized record gets a segment of its own, rounded up to whole MiB.
        let size = if min > self.seg_bytes {
            min.div_ceil(1 << 20) << 20
        } else {
            self.seg_bytes
        };
        let first = size.min(GROW_BYTES.max(SEGMENT_HEADER as u64 + self.reserve()));
        let path = self.path(n);
        let name = segment_name(n);
        let classify = |what: &str, e: &std::io::Error| {
            let err = Error::io(format!("{what} {name}"), e);
            if e.raw_os_error() == Some(libc::ENOSPC) {
                RollError::Full(err)
            } else {
                RollError::Io(err)
            }
        };
        let f = self
            .vfs
            .create(&path)
            .map_err(|e| classify("creating", &e))?;
        // Out of space while reserving room or writing the header: nothing of the new segment
        // became durable, so the batch can be refused without poisoning the store. A failed
        // fdatasync or directory fsync is never excused (fsyncgate), whatever its errno.
        let made = f
            .allocate(first)
            .and_then(|()| f.write_at(&segment_header(n, (self.now_ms)()), 0))
            .map_err(|e| classify("preparing", &e))
            .and_then(|()| {
                f.sync_data()
                    .and_then(|()| self.vfs.sync_dir(&self.dir))
                    .map_err(|e| RollError::Io(Error::io(format!("preparing {name}"), &e)))
            });
        if let Err(e) = made {
            let _ = self.vfs.remove(&path);
            return Err(e);
        }
        self.files.insert(n, f);
        self.sizes.insert(n, first);
        self.tail_cap = size;
        self.tail = n;
        self.tail_off = SEGMENT_HEADER as u64;
        Ok(())
    }

    /// Writes `buf` (whole records) as one or more frames, splitting only between records and
    /// rolling to a new segment when the tail is full. Does not sync. Appends to `placed` where
    /// each part of `buf` landed.
    ///
    /// Without `use_reserve` the last [`reserve`](Journal::reserve) bytes of a segment are left
    /// alone. A batch that fits in a fresh segment but not in the tail rolls before anything is
    /// written, so when there is no space for that segment (or for growing the tail) the whole
    /// batch is refused with [`Written::NoSpace`] and nothing of it is on disk; the caller may
    /// then write the records that must not fail (settles) with `use_reserve`.
    pub fn write(
        &mut self,
        buf: &[u8],
        placed: &mut Vec<Placed>,
        use_reserve: bool,
    ) -> Result<Written> {
        let fresh = self
            .seg_bytes
            .saturating_sub((SEGMENT_HEADER + FRAME_HEADER) as u64 + self.reserve());
        if !buf.is_empty() && buf.len() as u64 > self.room(use_reserve) && buf.len() as u64 <= fresh
        {
            match self.roll(buf.len()) {
                Ok(()) => {}
                Err(RollError::Full(e)) => return Ok(Written::NoSpace(e)),
                Err(RollError::Io(e)) => return Err(e),
            }
        }
        let mut start = 0;
        while start < buf.len() {
            let room = self.room(use_reserve);
            // Take as many whole records as fit.
            let (mut end, mut count) = (start, 0u32);
            for r in records(&buf[start..]) {
                let (at, _, body) = r.map_err(|at| {
                    Error::new(
                        crate::ErrorKind::Internal,
                        format!("malformed record at {}", start + at),
                    )
                })?;
                let rec_end = start + at + RECORD_HEADER + body.len();
                if (rec_end - start) as u64 > room {
                    break;
                }
                end = rec_end;
                count += 1;
            }
            if count == 0 {
                let first = records(&buf[start..]).next();
                let need = match first {
                    Some(Ok((_, _, body))) => RECORD_HEADER + body.len(),
                    _ => buf.len() - start,
                };
                match self.roll(need) {
                    Ok(()) => {}
                    Err(RollError::Full(e)) if start == 0 => return Ok(Written::NoSpace(e)),
                    Err(RollError::Full(e)) | Err(RollError::Io(e)) => return Err(e),
                }
                continue;
            }
            let payload = &buf[start..end];
            self.frame.clear();
            self.frame.resize(FRAME_HEADER, 0);
            put_frame_header(
                &mut self.frame,
                self.next_seq,
                self.synced_seq,
                count,
                payload,
            );
            self.frame.extend_from_slice(payload);
            let file = self.files.get(self.tail).ok_or_else(Error::closed)?;
            let off = self.tail_off;
            let end_off = off + self.frame.len() as u64;
            // Keep the reserve allocated beyond the data, so settles still fit on a full disk.
            let want = (end_off + if use_reserve { 0 } else { self.reserve() })
                .min(self.tail_cap)
                .max(end_off);
            let allocated = self.segment_size(self.tail);
            if want > allocated {
                // Grow the preallocation in steps: one size change (and metadata sync) per step.
                let grown = want
                    .div_ceil(GROW_BYTES)
                    .saturating_mul(GROW_BYTES)
                    .min(self.tail_cap)
                    .max(want);
                if let Err(e) = file.allocate(grown) {
                    let err = Error::io(
                        format!("growing {} to {grown} bytes", segment_name(self.tail)),
                        &e,
                    );
                    if start == 0 && e.raw_os_error() == Some(libc::ENOSPC) {
                        return Ok(Written::NoSpace(err));
                    }
                    return Err(err);
                }
                self.sizes.insert(self.tail, grown);
            }
            if let Err(e) = file.write_at(&self.frame, off) {
                let err = Error::io(
                    format!("writing {} at offset {off}", segment_name(self.tail)),
                    &e,
                );
                // ENOSPC on the first frame (file systems that allocate on write): nothing of the
                // batch is acknowledged, and the next frame is written at this same offset.
                if start == 0 && e.raw_os_error() == Some(libc::ENOSPC) {
                    return Ok(Written::NoSpace(err));
                }
                return Err(err);
            }
            placed.push(Placed {
                buf_start: start,
                buf_end: end,
                seg: self.tail,
                file_off: off + FRAME_HEADER as u64,
            });
            self.tail_off += self.frame.len() as u64;
            self.next_seq += 1;
            self.tail_dirty = true;
            start = end;
        }
        Ok(Written::All)
    }

    /// fdatasync's the tail segment (earlier segments were synced when the journal rolled past them).
    pub fn sync(&mut self) -> Result<()> {
        if !self.tail_dirty {
            return Ok(());
        }
        let f = self.files.get(self.tail).ok_or_else(Error::closed)?;
        f.sync_data()
            .map_err(|e| Error::io(format!("fdatasync of {}", segment_name(self.tail)), &e))?;
        self.tail_dirty = false;
        self.synced_seq = self.next_seq - 1;
        Ok(())
    }

    /// Whether written frames await an fsync.
    pub fn dirty(&self) -> bool {
        self.tail_dirty
    }

    /// Removes segment `seg` (never the tail) and fsyncs the directory.
    pub fn remove_segment(&mut self, seg: u64) -> Result<()> {
        if seg == self.tail || !self.sizes.contains_key(&seg) {
            return Ok(());
        }
        let path = self.path(seg);
        self.vfs
            .remove(&path)
            .map_err(|e| Error::io(format!("removing {}", segment_name(seg)), &e))?;
        self.vfs
            .sync_dir(&self.dir)
            .map_err(|e| Error::io("fsync of the store directory", &e))?;
        self.sizes.remove(&seg);
        self.files.remove(seg);
        Ok(())
    }
}
