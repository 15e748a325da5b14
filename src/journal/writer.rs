//! The append side: frames written at the tail, segments rolled and preallocated, the reserve
//! kept for settles on a full disk, fdatasync, segment removal.

use super::frame::*;
use super::{segment_name, Journal, Placed, Written, GROW_BYTES};
use crate::error::{Error, Result};

pub(super) enum RollError {
    /// Out of space before anything of the new segment became durable.
    Full(Error),
    /// Any other failure.
    Io(Error),
}

impl RollError {
    pub(super) fn into_error(self) -> Error {
        match self {
            RollError::Full(e) | RollError::Io(e) => e,
        }
    }
}

impl Journal {
    /// Bytes at the end of every segment that only [`Journal::write`] with `use_reserve` may
    /// fill: when the disk is too full for a new segment, settle records (acks, deliveries,
    /// requeues, dead-letter moves) still have room while new messages are refused (disk full never stops settling).
    /// The reserve is always allocated (the file grows ahead of the data by at least it).
    pub fn reserve(&self) -> u64 {
        (self.seg_bytes / 8).min(1 << 20)
    }

    /// Payload bytes that fit in one more frame of the tail.
    fn room(&self, use_reserve: bool) -> u64 {
        let reserve = if use_reserve { 0 } else { self.reserve() };
        // The last MARK_FRAME bytes are kept for the SEAL written when the journal rolls on.
        self.tail_cap
            .saturating_sub(reserve)
            .saturating_sub(self.tail_off + (FRAME_HEADER + MARK_FRAME) as u64)
    }

    /// The size of a short segment for a frame of `need` payload bytes: the frame, the
    /// segment header, the SEAL and the reserve (see [`Journal::write_copies`]).
    pub fn short_segment_bytes(&self, need: usize) -> u64 {
        (SEGMENT_HEADER + FRAME_HEADER + MARK_FRAME + need) as u64 + self.reserve()
    }

    /// Creates segment `tail + 1` big enough for a frame of `need` payload bytes (plus the
    /// reserve), and makes it the tail. A `short` segment is only that big (see
    /// [`Journal::write_copies`]); otherwise it is a whole segment.
    pub(super) fn roll(&mut self, need: usize, short: bool) -> std::result::Result<(), RollError> {
        if self.tail_dirty {
            self.sync().map_err(RollError::Io)?;
        }
        let n = self.tail + 1;
        let min = (SEGMENT_HEADER + FRAME_HEADER + MARK_FRAME + need) as u64 + self.reserve();
        // An oversized record gets a segment of its own, rounded up to whole MiB.
        let size = if short {
            self.short_segment_bytes(need)
        } else if min > self.seg_bytes {
            min.div_ceil(1 << 20) << 20
        } else {
            self.seg_bytes
        };
        let first = size.min(GROW_BYTES.max(SEGMENT_HEADER as u64 + self.reserve()));
        // A new segment is created by name: never in a directory that is not the store's.
        self.check_home().map_err(RollError::Io)?;
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
        let f = match self.vfs.create(&path) {
            // A segment past the tail is never in use: it is what an earlier roll that failed
            // left when its clean-up removal failed too (its header, nothing else). Replace it,
            // rather than fail every later roll on the taken name (or write a second header).
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => self
                .vfs
                .remove(&path)
                .and_then(|()| self.vfs.create(&path))
                .map_err(|e| classify("creating", &e))?,
            r => r.map_err(|e| classify("creating", &e))?,
        };
        // Out of space while reserving room or writing the header: nothing of the new segment
        // became durable, so the batch can be refused without poisoning the store. A failed
        // fdatasync or directory fsync is never excused (fsyncgate), whatever its errno.
        let oldest = self.sizes.keys().next().copied().unwrap_or(n);
        let header = segment_header_of(n, (self.now_ms)(), oldest, self.store_id);
        let made = f
            .allocate(first)
            .and_then(|()| f.write_at(&header, 0))
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
        // Seal the old tail now that its successor exists durably: a last segment that ends
        // with a SEAL tells recovery that the segment after it is missing. (A crash before the
        // seal leaves an unsealed tail and an empty successor, which recovery removes.)
        if let Err(e) = self.seal(n) {
            // A SEAL whose write or fdatasync failed may still reach the disk: the successor
            // it names stays (durable and empty: recovery keeps or removes it). Only a SEAL
            // refused for space was surely not written.
            if matches!(e, RollError::Full(_)) {
                let _ = self.vfs.remove(&path);
            }
            return Err(e);
        }
        self.tail_current = true;
        self.crcs
            .insert(n, (SEGMENT_HEADER as u64, crc32c::crc32c(&header)));
        self.files.insert(n, f);
        self.sizes.insert(n, first);
        self.tail_cap = size;
        self.tail = n;
        self.tail_off = SEGMENT_HEADER as u64;
        Ok(())
    }

    /// [`Journal::roll`] to a whole segment for `need` bytes, or, when that is refused for
    /// space and `short` is given, to a short segment for `short` bytes.
    fn roll_or_short(
        &mut self,
        need: usize,
        short: Option<usize>,
    ) -> std::result::Result<(), RollError> {
        match (self.roll(need, false), short) {
            (Err(RollError::Full(_)), Some(s)) => self.roll(s, true),
            (r, _) => r,
        }
    }

    /// Writes the SEAL naming segment `next` as the last frame of the tail and syncs it, when
    /// the tail is of the current format version (an older one is not given records its
    /// version does not know) and has the room every current segment keeps for it.
    fn seal(&mut self, next: u64) -> std::result::Result<(), RollError> {
        if self.sizes.is_empty()
            || !self.tail_current
            || self.tail_off + MARK_FRAME as u64 > self.tail_cap
        {
            return Ok(());
        }
        match self.put_frame(&mark_payload(SEAL_KIND, next), 1, true) {
            Ok(_) => self.sync().map_err(RollError::Io),
            Err((e, true)) => Err(RollError::Full(e)),
            Err((e, false)) => Err(RollError::Io(e)),
        }
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
        self.write_with(buf, placed, use_reserve, false)
    }

    /// Writes compaction's copies (`buf`, whole records) as [`Journal::write`] without the
    /// reserve does, except when the disk has no room for a whole new segment:
    ///
    /// 1. they go into a short segment, sized to what is left of `buf` plus the reserve
    ///    ([`Journal::short_segment_bytes`]);
    /// 2. on a disk too full even for that, all of `buf` goes into the tail's reserve when it
    ///    fits there leaving half the reserve (and the TRIM mark's room) untouched; otherwise
    ///    nothing is written ([`Written::NoSpace`]).
    ///
    /// Why: copying a segment's few live messages forward is what frees it. On a disk with
    /// less than a segment free a whole segment for the copies never fits, and old segments
    /// pinned by a few long-lived messages would stay for good, the disk full for good though
    /// nearly all it holds is settled (issue 15 §5). The reserve is sized for settles; the
    /// copies borrow at most half of it, and only all at once, because the commit after them
    /// removes the segment they emptied, and the next roll (now with room) gives a new tail
    /// with a whole reserve. A short segment is sealed as any other when the journal rolls
    /// on; recovery reads a segment to its file's end, whatever its size, so the format is
    /// unchanged.
    pub fn write_copies(&mut self, buf: &[u8], placed: &mut Vec<Placed>) -> Result<Written> {
        let e = match self.write_with(buf, placed, false, true)? {
            Written::NoSpace(e) => e,
            w => return Ok(w),
        };
        let lent = buf.len() as u64 + self.reserve() / 2 + MARK_FRAME as u64;
        if buf.is_empty() || lent > self.room(true) {
            return Ok(Written::NoSpace(e));
        }
        let count = records(buf).count() as u32;
        match self.put_frame(buf, count, true) {
            Ok(off) => {
                placed.push(Placed {
                    buf_start: 0,
                    buf_end: buf.len(),
                    seg: self.tail,
                    file_off: off + FRAME_HEADER as u64,
                });
                Ok(Written::All)
            }
            Err((e, true)) => Ok(Written::NoSpace(e)),
            Err((e, false)) => Err(e),
        }
    }

    /// [`Journal::write`], with a roll refused for space retried as a short segment when
    /// `short_ok`.
    fn write_with(
        &mut self,
        buf: &[u8],
        placed: &mut Vec<Placed>,
        use_reserve: bool,
        short_ok: bool,
    ) -> Result<Written> {
        if !buf.is_empty() {
            // Before a byte goes into a segment another owner may be writing too.
            self.check_home()?;
        }
        let fresh = self
            .seg_bytes
            .saturating_sub((SEGMENT_HEADER + FRAME_HEADER + MARK_FRAME) as u64 + self.reserve());
        if !buf.is_empty() && buf.len() as u64 > self.room(use_reserve) && buf.len() as u64 <= fresh
        {
            match self.roll_or_short(buf.len(), short_ok.then_some(buf.len())) {
                Ok(()) => {}
                Err(RollError::Full(e)) => return Ok(Written::NoSpace(e)),
                Err(RollError::Io(e)) => return Err(e),
            }
        }
        let mut start = 0;
        while start < buf.len() {
            let (end, count) = self.fitting(buf, start, use_reserve)?;
            if count == 0 {
                let need = match records(&buf[start..]).next() {
                    Some(Ok((_, _, body))) => RECORD_HEADER + body.len(),
                    _ => buf.len() - start,
                };
                // A short segment takes all that is left, so that it is rolled to once.
                match self.roll_or_short(need, short_ok.then_some(buf.len() - start)) {
                    Ok(()) => {}
                    Err(RollError::Full(e)) if start == 0 => return Ok(Written::NoSpace(e)),
                    // Full part way through: what was written stays, the rest is refused (a
                    // full disk never poisons the store).
                    Err(RollError::Full(e)) => return Ok(Written::Partial(start, e)),
                    Err(RollError::Io(e)) => return Err(e),
                }
                continue;
            }
            // ENOSPC on the first frame (growing the file, or file systems that allocate on
            // write): nothing of the batch is acknowledged, the next frame goes at this offset.
            let off = match self.put_frame(&buf[start..end], count, use_reserve) {
                Ok(off) => off,
                Err((e, true)) if start == 0 => return Ok(Written::NoSpace(e)),
                Err((e, true)) => return Ok(Written::Partial(start, e)),
                Err((e, _)) => return Err(e),
            };
            placed.push(Placed {
                buf_start: start,
                buf_end: end,
                seg: self.tail,
                file_off: off + FRAME_HEADER as u64,
            });
            start = end;
        }
        Ok(Written::All)
    }

    /// How many whole records of `buf` from `start` fit in one more frame of the tail:
    /// (end in `buf`, count).
    fn fitting(&self, buf: &[u8], start: usize, use_reserve: bool) -> Result<(usize, u32)> {
        let room = self.room(use_reserve);
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
        Ok((end, count))
    }

    /// Writes `payload` (`count` whole records that fit) as the next frame of the tail, growing
    /// the tail's preallocation first when needed; returns the frame's offset. An error comes
    /// with whether it was ENOSPC.
    fn put_frame(
        &mut self,
        payload: &[u8],
        count: u32,
        use_reserve: bool,
    ) -> std::result::Result<u64, (Error, bool)> {
        let full = |e: &std::io::Error| e.raw_os_error() == Some(libc::ENOSPC);
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
        let file = self
            .files
            .get(self.tail)
            .ok_or_else(|| (Error::closed(), false))?;
        let off = self.tail_off;
        let end_off = off + self.frame.len() as u64;
        // Keep the reserve allocated beyond the data, so settles still fit on a full disk.
        let want = (end_off + MARK_FRAME as u64 + if use_reserve { 0 } else { self.reserve() })
            .min(self.tail_cap)
            .max(end_off);
        if want > self.segment_size(self.tail) {
            // Grow the preallocation in steps: one size change (and metadata sync) per step.
            let grown = want
                .div_ceil(GROW_BYTES)
                .saturating_mul(GROW_BYTES)
                .min(self.tail_cap)
                .max(want);
            file.allocate(grown).map_err(|e| {
                let what = format!("growing {} to {grown} bytes", segment_name(self.tail));
                (Error::io(what, &e), full(&e))
            })?;
            self.sizes.insert(self.tail, grown);
        }
        if let Err(e) = file.write_at(&self.frame, off) {
            // Part of the frame may be in the file now: its bytes are no longer all known.
            self.crcs.remove(&self.tail);
            let what = format!("writing {} at offset {off}", segment_name(self.tail));
            return Err((Error::io(what, &e), full(&e)));
        }
        // The segment's running CRC32C (`Journal::crcs`), from the bytes at hand: a clean
        // close then need not read the journal back for the checkpoint.
        match self.crcs.get_mut(&self.tail) {
            Some((len, crc)) if *len == off => {
                *crc = crc32c::crc32c_append(*crc, &self.frame);
                *len = end_off;
            }
            _ => {
                self.crcs.remove(&self.tail);
            }
        }
        self.tail_off += self.frame.len() as u64;
        self.next_seq += 1;
        self.tail_dirty = true;
        Ok(off)
    }

    /// fdatasync's the tail segment (earlier segments were synced when the journal rolled past them).
    pub fn sync(&mut self) -> Result<()> {
        if !self.tail_dirty {
            return Ok(());
        }
        let f = self.files.get(self.tail).ok_or_else(Error::closed)?;
        f.sync_data()
            .map_err(|e| Error::io(format!("fdatasync of {}", segment_name(self.tail)), &e))?;
        // A store whose directory was deleted while open would go on "syncing" into unlinked
        // files: nothing written would survive. Fail (the store is poisoned) instead of acking.
        if !f.linked().unwrap_or(true) {
            return Err(Error::new(
                crate::error::ErrorKind::Io,
                format!(
                    "the store directory {} (or its segment {}) was deleted while the store was \
                     open: nothing written since is durable; close the store",
                    self.dir.display(),
                    segment_name(self.tail)
                ),
            ));
        }
        self.tail_dirty = false;
        self.synced_seq = self.next_seq - 1;
        Ok(())
    }

    /// Whether written frames await an fsync.
    pub fn dirty(&self) -> bool {
        self.tail_dirty
    }

    /// Removes segment `seg` (never the tail) and fsyncs the directory. A TRIM mark naming the
    /// segment after it is made durable first, so that recovery knows the segments below were
    /// removed on purpose; on a disk too full for the mark the segment stays (for a later try).
    pub fn remove_segment(&mut self, seg: u64) -> Result<()> {
        if seg == self.tail || !self.sizes.contains_key(&seg) {
            return Ok(());
        }
        let first = self
            .sizes
            .range(seg + 1..)
            .next()
            .map_or(self.tail, |(k, _)| *k);
        // The TRIM takes reserve space but never the SEAL's: without room for both, wait
        // for the next segment.
        if self.tail_off + 2 * MARK_FRAME as u64 > self.tail_cap {
            return Ok(());
        }
        if self.tail_current {
            match self.put_frame(&mark_payload(TRIM_KIND, first), 1, true) {
                Ok(_) => self.sync()?,
                Err((_, true)) => return Ok(()),
                Err((e, false)) => return Err(e),
            }
        }
        let path = self.path(seg);
        self.vfs
            .remove(&path)
            .map_err(|e| Error::io(format!("removing {}", segment_name(seg)), &e))?;
        self.vfs
            .sync_dir(&self.dir)
            .map_err(|e| Error::io("fsync of the store directory", &e))?;
        self.sizes.remove(&seg);
        self.crcs.remove(&seg);
        self.files.remove(seg);
        Ok(())
    }
}
