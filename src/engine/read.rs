//! Reading stored records without holding the state lock.
//!
//! Under the lock, [`State::snapshot`] notes where each record is (an open file handle, offset
//! and length; a memory queue's record is copied, which is not a disk read). After the lock is
//! released, [`Snapshot::read`] reads them, merging neighbours on disk into one read. Records
//! are never rewritten in place and a handle keeps a removed segment readable, so what a
//! snapshot names stays readable.

use std::ops::Range;
use std::sync::Arc;

use super::queue::{Entry, MEM_SEG};
use super::State;
use crate::error::{Error, ErrorKind, Result};
use crate::io::VFile;
use crate::journal::{segment_name, Files};

/// Longest run of neighbouring records read with one call.
const MAX_MERGED_READ: u64 = 4 << 20;

enum Part {
    /// A memory queue's record, copied.
    Mem(Vec<u8>),
    /// A record on disk: its segment's index in [`Snapshot::files`], the segment, offset, length.
    Disk {
        file: usize,
        seg: u64,
        off: u64,
        len: u32,
    },
}

/// Where records are, taken under the state lock; read after it is released.
pub(crate) struct Snapshot {
    parts: Vec<Part>,
    /// One handle per run of records in the same segment (not one per record: a receive of
    /// 1,000 records from one segment takes one handle).
    files: Vec<Arc<dyn VFile>>,
}

/// Records read from disk: one buffer, one range per record.
pub(crate) struct Records {
    buf: Vec<u8>,
    ranges: Vec<Range<usize>>,
}

impl Records {
    /// The records in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.ranges.iter().map(|r| &self.buf[r.clone()])
    }
}

impl State {
    /// Notes where the records of `entries` (of queue `qid` each) are.
    pub fn snapshot(
        &self,
        files: &Files,
        entries: impl IntoIterator<Item = (u32, Entry)>,
    ) -> Result<Snapshot> {
        let mut snap = Snapshot {
            parts: Vec::new(),
            files: Vec::new(),
        };
        let mut last_seg = None;
        for (qid, e) in entries {
            if e.seg == MEM_SEG {
                let rec = self.queues[qid as usize].mem.get(&e.id).ok_or_else(|| {
                    Error::new(ErrorKind::NotFound, format!("message ID:{} is gone", e.id))
                })?;
                snap.parts.push(Part::Mem(rec.clone()));
                continue;
            }
            let seg = e.seg as u64;
            if last_seg != Some(seg) {
                let file = files.get(seg).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Internal,
                        format!("segment {} of ID:{} is gone", segment_name(seg), e.id),
                    )
                })?;
                snap.files.push(file);
                last_seg = Some(seg);
            }
            snap.parts.push(Part::Disk {
                file: snap.files.len() - 1,
                seg,
                off: e.off as u64,
                len: e.len,
            });
        }
        Ok(snap)
    }
}

impl Snapshot {
    /// Reads every record into one buffer (no lock is held: this does the disk reads).
    pub fn read(&self) -> Result<Records> {
        let total: usize = self
            .parts
            .iter()
            .map(|p| match p {
                Part::Mem(r) => r.len(),
                Part::Disk { len, .. } => *len as usize,
            })
            .sum();
        let mut out = Records {
            buf: vec![0u8; total],
            ranges: Vec::with_capacity(self.parts.len()),
        };
        let mut at = 0usize;
        let mut i = 0;
        while i < self.parts.len() {
            let (file, seg, off, len) = match &self.parts[i] {
                Part::Mem(rec) => {
                    out.buf[at..at + rec.len()].copy_from_slice(rec);
                    out.ranges.push(at..at + rec.len());
                    at += rec.len();
                    i += 1;
                    continue;
                }
                Part::Disk {
                    file,
                    seg,
                    off,
                    len,
                } => (&self.files[*file], *seg, *off, *len),
            };
            // Merge the records that follow this one on disk into one read.
            let mut j = i + 1;
            let mut end = off + len as u64;
            while let Some(Part::Disk {
                seg: s2,
                off: o2,
                len: l2,
                ..
            }) = self.parts.get(j)
            {
                if *s2 != seg || *o2 != end || end - off >= MAX_MERGED_READ {
                    break;
                }
                end += *l2 as u64;
                j += 1;
            }
            let span = (end - off) as usize;
            file.read_at(&mut out.buf[at..at + span], off)
                .map_err(|e| Error::io(format!("reading {} at {off}", segment_name(seg)), &e))?;
            for p in &self.parts[i..j] {
                if let Part::Disk { len, .. } = p {
                    out.ranges.push(at..at + *len as usize);
                    at += *len as usize;
                }
            }
            i = j;
        }
        Ok(out)
    }
}
