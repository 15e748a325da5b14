//! Opening the journal from an index checkpoint (`src/engine/checkpoint.rs`): instead of
//! replaying every frame, the segments the checkpoint covers are checked against the CRC32C it
//! recorded for each (a sequential pass through read-only memory maps, far cheaper than
//! decoding records), and the journal resumes where the checkpoint says it ended.
//!
//! The CRCs a checkpoint records come from the writer (`Journal::crcs`: a running CRC32C of
//! each segment, extended by every frame as it is written, taken over from the check when the
//! journal was opened from a checkpoint, or from a full replay, which extends it by every frame
//! it replays), so a clean close does not read the journal back; only segments a repair wrote
//! into (or whose write failed) are read. A wrong running CRC could
//! only make the next open ignore the checkpoint (its check reads the files), never load a
//! state the journal does not hold.

use super::frame::{u32_at, SEGMENT_HEADER, VERSION};
use super::recovery::{data_end, RecoveryReport};
use super::{parse_segment_name, segment_name, Journal};
use crate::error::{Error, Result};
use crate::io::{join, VFile};

/// Bytes read at a time while checking a segment's CRC (the memory the check needs): small
/// enough that the CRC reads them back from the core's L2 cache right after the copy out of
/// the page cache (a 4 MiB chunk went out to L3 and back).
const CHUNK: usize = 256 << 10;

/// One segment as a checkpoint saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CoveredSegment {
    /// Segment number.
    pub n: u64,
    /// Bytes covered: the whole file for every segment but the tail; for the tail, its data
    /// (everything after it was zero when the checkpoint was written).
    pub len: u64,
    /// The file's size then.
    pub file_len: u64,
    /// CRC32C of bytes `0..len`.
    pub crc: u32,
}

/// Where the journal stood when a checkpoint was written: every segment, oldest first (the
/// last one is the tail), and the sequence number the next frame gets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// The journal's segments, oldest first; the last is the tail.
    pub segments: Vec<CoveredSegment>,
    /// The sequence number of the next frame.
    pub next_seq: u64,
}

/// Bytes mapped at a time while checking a segment's CRC (see [`VFile::map`]): the map is
/// resident while it lives, and a whole segment (64 MiB) at a time would add to the peak
/// memory of an open (target W8).
const MAP_WINDOW: u64 = 8 << 20;

/// CRC32C of bytes `0..len` of `f`, and whether anything after `len` (up to `scan_to`) is
/// non-zero. The file is mapped window by window (no copy) where it can be, else read in
/// [`CHUNK`]s into `buf`. Errors are the reads' (a file shorter than `scan_to` among them).
fn crc_of(
    f: &dyn VFile,
    len: u64,
    scan_to: u64,
    buf: &mut Vec<u8>,
) -> std::io::Result<(u32, bool)> {
    let mut crc = 0u32;
    let mut at = 0u64;
    let mut beyond = false;
    let mut mapping = true;
    while at < scan_to {
        let mut n = (scan_to - at).min(MAP_WINDOW);
        let map = if mapping { f.map(at, n)? } else { None };
        let bytes: &[u8] = match &map {
            Some(m) => m,
            None => {
                mapping = false;
                n = n.min(CHUNK as u64);
                buf.resize(CHUNK, 0);
                f.read_at(&mut buf[..n as usize], at)?;
                &buf[..n as usize]
            }
        };
        let covered = (len.saturating_sub(at)).min(n) as usize;
        crc = crc32c::crc32c_append(crc, &bytes[..covered]);
        if covered < bytes.len() && data_end(&bytes[covered..]) > 0 {
            beyond = true;
        }
        at += n;
    }
    Ok((crc, beyond))
}

/// Zero bytes to extend a running CRC32C over a segment's preallocated end.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// `crc` (of some bytes) extended by `n` zero bytes.
fn crc_zeros(mut crc: u32, mut n: u64) -> u32 {
    while n > 0 {
        let k = n.min(ZEROS.len() as u64) as usize;
        crc = crc32c::crc32c_append(crc, &ZEROS[..k]);
        n -= k as u64;
    }
    crc
}

impl Journal {
    /// The journal's position now, with each segment's CRC32C: the running CRC kept as the
    /// segment was written (see `Journal::crcs`), or, for a segment whose bytes this process
    /// does not all know (a repair at open wrote into it, a failed write), read back from its
    /// file. Call it
    /// only when nothing is being written (a closing store; the caller holds `io`).
    pub fn position(&self) -> Result<Position> {
        let mut segments = Vec::with_capacity(self.sizes.len());
        let mut buf = Vec::new();
        for (&n, &file_len) in &self.sizes {
            let tail = n == self.tail;
            let len = if tail { self.tail_off } else { file_len };
            let known = match self.crcs.get(&n) {
                // The tail: its data, exactly.
                Some(&(at, crc)) if tail && at == len => Some(crc),
                // A segment the journal rolled past: its data, then the zeros of its
                // preallocation (never written: only a tail is written to, and a failed write
                // forgets the segment's CRC).
                Some(&(at, crc)) if !tail && at <= len => Some(crc_zeros(crc, len - at)),
                _ => None,
            };
            let crc = match known {
                Some(crc) => crc,
                None => {
                    let f = self.files.get(n).ok_or_else(Error::closed)?;
                    crc_of(&*f, len, len, &mut buf)
                        .map_err(|e| Error::io(format!("reading {}", segment_name(n)), &e))?
                        .0
                }
            };
            segments.push(CoveredSegment {
                n,
                len,
                file_len,
                crc,
            });
        }
        Ok(Position {
            segments,
            next_seq: self.next_seq,
        })
    }

    /// Resumes the journal at `pos` if the directory holds exactly the segments it names, each
    /// with the size and CRC32C recorded, and nothing after the tail's recorded data; returns
    /// why not (`Err` of the inner result: the checkpoint is to be ignored) otherwise. Errors
    /// of the outer result are I/O failures of the files this resumes with.
    pub(crate) fn resume(
        &mut self,
        pos: &Position,
        report: &mut RecoveryReport,
    ) -> Result<std::result::Result<(), String>> {
        let names = self
            .vfs
            .list(&self.dir)
            .map_err(|e| Error::io(format!("listing {}", self.dir.display()), &e))?;
        let mut numbers: Vec<u64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
        numbers.sort_unstable();
        let covered: Vec<u64> = pos.segments.iter().map(|s| s.n).collect();
        if numbers != covered {
            let why = if numbers.len() > covered.len() && numbers.starts_with(&covered) {
                "stale: segments were added after it"
            } else {
                "the journal's segments are not the ones it covers"
            };
            return Ok(Err(format!(
                "{why} (journal {}, checkpoint {})",
                list(&numbers),
                list(&covered)
            )));
        }
        let Some(last) = pos.segments.last() else {
            return Ok(Err("it covers no segment".into()));
        };
        let mut buf = Vec::new();
        let mut opened = Vec::with_capacity(pos.segments.len());
        for s in &pos.segments {
            let name = segment_name(s.n);
            let f = self
                .vfs
                .open(&join(&self.dir, &name))
                .map_err(|e| Error::io(format!("opening {name}"), &e))?;
            let file_len = f
                .len()
                .map_err(|e| Error::io(format!("size of {name}"), &e))?;
            let tail = s.n == last.n;
            // The tail may have grown (preallocation) since; any other segment is as it was.
            if file_len < s.len || (!tail && file_len != s.file_len) {
                return Ok(Err(format!(
                    "{name} is {file_len} bytes, the checkpoint recorded {}",
                    s.file_len
                )));
            }
            let scan_to = if tail { file_len } else { s.len };
            let (crc, beyond) = crc_of(&*f, s.len, scan_to, &mut buf)
                .map_err(|e| Error::io(format!("reading {name}"), &e))?;
            report.bytes += scan_to;
            if crc != s.crc {
                return Ok(Err(format!(
                    "{name} does not match the CRC32C the checkpoint recorded"
                )));
            }
            if beyond {
                return Ok(Err(format!(
                    "stale: {name} holds data written after it (at offset {})",
                    s.len
                )));
            }
            opened.push((s.n, f, file_len, s.len, s.crc));
        }
        let mut head = [0u8; SEGMENT_HEADER];
        if last.len < SEGMENT_HEADER as u64 {
            return Ok(Err("its tail position is inside the segment header".into()));
        }
        opened[opened.len() - 1]
            .1
            .read_at(&mut head, 0)
            .map_err(|e| Error::io(format!("reading {}", segment_name(last.n)), &e))?;
        for (n, f, len, covered, crc) in opened {
            self.files.insert(n, f);
            self.sizes.insert(n, len);
            // Checked above: the running CRC goes on from it (nothing after the tail's data).
            self.crcs.insert(n, (covered, crc));
        }
        self.tail = last.n;
        self.tail_off = last.len;
        self.tail_current = u32_at(&head, 8) == VERSION;
        self.next_seq = pos.next_seq.max(1);
        self.synced_seq = self.next_seq - 1;
        report.segments = pos.segments.len();
        Ok(Ok(()))
    }
}

/// Segment numbers as a short list for a note (`1-3,7`).
fn list(v: &[u64]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            format!("{}", v[i])
        } else {
            format!("{}-{}", v[i], v[j])
        });
        i = j + 1;
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(",")
    }
}
