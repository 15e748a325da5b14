//! Recovery on open: replay every frame, cut a torn tail, report corruption (a frame that a
//! later frame proves had been durable), repair by quarantining when asked.

use std::sync::Arc;

use super::frame::*;
use super::{parse_segment_name, segment_name, Apply, Journal};
use crate::error::{Error, Result};
use crate::io::{join, VFile};

/// A torn tail that recovery cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file.
    pub file: String,
    /// Where the cut starts.
    pub offset: u64,
    /// How many bytes were zeroed.
    pub bytes: u64,
}

/// A damaged range that a repair cut out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// The segment file.
    pub file: String,
    /// Start of the damaged range.
    pub offset: u64,
    /// Its length.
    pub len: u64,
    /// Frames lost with it.
    pub frames_lost: u64,
    /// The file in the store directory holding the cut-out bytes.
    pub saved_as: String,
}

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments read.
    pub segments: usize,
    /// Frames replayed.
    pub frames: u64,
    /// Records replayed.
    pub records: u64,
    /// Bytes of journal read.
    pub bytes: u64,
    /// A torn tail that was cut off, if any.
    pub torn_tail: Option<TornTail>,
    /// Segments removed because their creation never completed.
    pub removed_incomplete_segments: Vec<String>,
    /// Ranges quarantined by a repair.
    pub quarantined: Vec<Quarantined>,
    /// Queues whose declaration was lost to damage (a repair cut it out) while messages of
    /// theirs survived: the messages are kept, in a queue of this placeholder name
    /// (`__lost_queue_<id>`), declared durably so that the next open finds it.
    pub lost_queues: Vec<String>,
}

struct Seg {
    n: u64,
    name: String,
    file: Arc<dyn VFile>,
    buf: Vec<u8>,
}

fn load(j: &Journal, n: u64) -> Result<Seg> {
    load_into(j, n, Vec::new())
}

/// Loads segment `n` into `buf` (reused across segments: one allocation, no page faults after
/// the first segment).
fn load_into(j: &Journal, n: u64, mut buf: Vec<u8>) -> Result<Seg> {
    let name = segment_name(n);
    let path = join(&j.dir, &name);
    let file = j
        .vfs
        .open(&path)
        .map_err(|e| Error::io(format!("opening {name}"), &e))?;
    let len = file
        .len()
        .map_err(|e| Error::io(format!("size of {name}"), &e))?;
    buf.clear();
    buf.resize(len as usize, 0);
    file.read_at(&mut buf, 0)
        .map_err(|e| Error::io(format!("reading {name}"), &e))?;
    Ok(Seg { n, name, file, buf })
}

/// Offset just past the last non-zero byte of `b`.
pub(crate) fn data_end(b: &[u8]) -> usize {
    // Skip zero words 8 bytes at a time: the unused tail of a segment is long.
    let mut end = b.len();
    while end >= 8 && b[end - 8..end] == [0u8; 8] {
        end -= 8;
    }
    b[..end]
        .iter()
        .rposition(|&x| x != 0)
        .map(|p| p + 1)
        .unwrap_or(0)
}

/// The first valid frame at or after `from` in `b` (every byte offset is tried).
pub(crate) fn next_valid(b: &[u8], from: usize) -> Option<(usize, FrameHeader)> {
    let magic = FRAME_MAGIC.to_le_bytes();
    let mut k = from;
    while k + FRAME_HEADER <= b.len() {
        if b[k..k + 4] == magic {
            if let Some(h) = check_frame(&b[k..]) {
                return Some((k, h));
            }
        }
        k += 1;
    }
    None
}

pub(super) fn recover(j: &mut Journal, repair: bool, apply: Apply<'_>) -> Result<RecoveryReport> {
    let names = j
        .vfs
        .list(&j.dir)
        .map_err(|e| Error::io(format!("listing {}", j.dir.display()), &e))?;
    let mut numbers: Vec<u64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
    numbers.sort_unstable();
    let mut r = Recovery {
        j,
        repair,
        apply,
        report: RecoveryReport::default(),
        numbers,
        expected: None,
    };
    r.run()?;
    if let Some(e) = r.expected {
        r.j.next_seq = e;
        r.j.synced_seq = e - 1;
    }
    Ok(r.report)
}

/// One recovery: the segments found, the next frame sequence expected, what was found.
struct Recovery<'j, 'a> {
    j: &'j mut Journal,
    repair: bool,
    apply: Apply<'a>,
    report: RecoveryReport,
    /// Segment numbers, oldest first (cut when a torn tail ends the journal).
    numbers: Vec<u64>,
    /// The sequence number the next frame must have (`None` at the start and after a repair).
    expected: Option<u64>,
}

impl Recovery<'_, '_> {
    fn run(&mut self) -> Result<()> {
        let mut reuse: Vec<u8> = Vec::new();
        let mut i = 0;
        while i < self.numbers.len() {
            let n = self.numbers[i];
            let last = i + 1 == self.numbers.len();
            let mut seg = load_into(self.j, n, std::mem::take(&mut reuse))?;
            self.report.segments += 1;
            self.report.bytes += seg.buf.len() as u64;
            if !self.header_ok(&seg, last)? {
                i += 1;
                continue;
            }
            let (pos, stop) = self.scan(i, &mut seg)?;
            self.j.files.insert(n, seg.file.clone());
            self.j.sizes.insert(n, seg.buf.len() as u64);
            self.j.tail = n;
            self.j.tail_off = pos as u64;
            if stop {
                break;
            }
            reuse = seg.buf;
            i += 1;
        }
        Ok(())
    }

    /// Checks a segment's header. A last segment whose header never became durable is removed
    /// (`false`): a roll writes and syncs the header, and fsyncs the directory, before any frame
    /// goes into a segment, so a last segment with a bad header (missing, zero, or torn with
    /// garbage in its sector) and nothing after it never held anything.
    fn header_ok(&mut self, seg: &Seg, last: bool) -> Result<bool> {
        match check_segment_header(&seg.buf, &seg.name) {
            Ok(num) if num == seg.n => Ok(true),
            Ok(_) | Err(_) if last && seg.buf.iter().skip(SEGMENT_HEADER).all(|&b| b == 0) => {
                let j = &self.j;
                j.vfs
                    .remove(&join(&j.dir, &seg.name))
                    .map_err(|e| Error::io(format!("removing {}", seg.name), &e))?;
                j.vfs
                    .sync_dir(&j.dir)
                    .map_err(|e| Error::io("fsync of the store directory", &e))?;
                self.report
                    .removed_incomplete_segments
                    .push(seg.name.clone());
                self.report.segments -= 1;
                Ok(false)
            }
            Ok(num) => Err(Error::corrupt(
                &seg.name,
                16,
                &format!("header names segment {num}"),
            )),
            Err(e) => Err(e),
        }
    }

    /// Replays the frames of segment `numbers[i]` up to its end of data or a bad frame. Returns
    /// where its data ends and whether the journal ends there (a torn tail, or the last segment).
    fn scan(&mut self, i: usize, seg: &mut Seg) -> Result<(usize, bool)> {
        let last = i + 1 == self.numbers.len();
        let mut pos = SEGMENT_HEADER;
        loop {
            let at_end = pos + FRAME_HEADER > seg.buf.len()
                || seg.buf[pos..pos + FRAME_HEADER].iter().all(|&b| b == 0);
            let expected = self.expected;
            let good = if at_end {
                None
            } else {
                check_frame(&seg.buf[pos..]).filter(|h| expected.is_none_or(|e| h.seq == e))
            };
            if let Some(h) = good {
                pos = self.replay_frame(seg, pos, h)?;
                continue;
            }
            // End of data or a bad frame. Is there anything after it?
            let s = self.expected.unwrap_or(1);
            let end = data_end(&seg.buf);
            if at_end && end <= pos {
                // A full segment's unused tail: go on to the next segment (or the end).
                return Ok((pos, last));
            }
            // Proof that the data at `pos` had been durable: a later frame with synced ≥ s.
            match find_proof(self.j, seg, pos, &self.numbers[i + 1..], s)? {
                None => {
                    self.cut_torn_tail(i, seg, pos, end)?;
                    return Ok((pos, true));
                }
                Some(_) if !self.repair => {
                    return Err(Error::corrupt(
                        &seg.name,
                        pos as u64,
                        "frame fails its checksum, length or sequence check, and later frames prove it had been durable",
                    ));
                }
                // Re-read the padded frame on the next turn of the loop.
                Some(_) => self.repair_at(i, seg, pos, end, s)?,
            }
        }
    }

    /// Replays the records of the valid frame `h` at `pos`; returns where the next frame starts.
    fn replay_frame(&mut self, seg: &Seg, pos: usize, h: FrameHeader) -> Result<usize> {
        let payload_off = pos + FRAME_HEADER;
        for r in records(&seg.buf[payload_off..payload_off + h.len]) {
            let (at, kind, body) = r.map_err(|at| {
                Error::corrupt(&seg.name, (payload_off + at) as u64, "malformed record")
            })?;
            let rec_off = (payload_off + at) as u64;
            (self.apply)(
                seg.n,
                rec_off,
                (RECORD_HEADER + body.len()) as u32,
                kind,
                body,
            )?;
            self.report.records += 1;
        }
        self.report.frames += 1;
        self.expected = Some(h.seq + 1);
        Ok(payload_off + h.len)
    }

    /// A torn tail at `pos` (never acknowledged): zeroed, so no stale frame can reappear behind
    /// new ones, and the segments after it removed.
    fn cut_torn_tail(&mut self, i: usize, seg: &Seg, pos: usize, end: usize) -> Result<()> {
        let bytes = end.saturating_sub(pos) as u64;
        if bytes > 0 {
            zero(seg, pos, end)?;
        }
        let j = &self.j;
        for &later in &self.numbers[i + 1..] {
            let name = segment_name(later);
            j.vfs
                .remove(&join(&j.dir, &name))
                .map_err(|e| Error::io(format!("removing {name}"), &e))?;
        }
        if i + 1 < self.numbers.len() {
            j.vfs
                .sync_dir(&j.dir)
                .map_err(|e| Error::io("fsync of the store directory", &e))?;
        }
        if bytes > 0 || i + 1 < self.numbers.len() {
            self.report.torn_tail = Some(TornTail {
                file: seg.name.clone(),
                offset: pos as u64,
                bytes,
            });
        }
        self.numbers.truncate(i + 1);
        Ok(())
    }

    /// Repair: cuts out [pos, the next valid frame in this segment) or up to its data end, into
    /// a quarantine file, with a padding frame over it. The cut holds at least a padding frame:
    /// a "valid" frame starting inside the first bytes of the damaged one (a sequence break on
    /// a short frame, or damage) is cut with it, and a cut at the end of a short file grows it.
    fn repair_at(&mut self, i: usize, seg: &mut Seg, pos: usize, end: usize, s: u64) -> Result<()> {
        let min_end = pos + FRAME_HEADER + RECORD_HEADER;
        let (cut_end, next_seq) = match next_valid(&seg.buf, min_end).filter(|(_, h)| h.seq >= s) {
            Some((k, h)) => (k, h.seq),
            None => (
                end.max(min_end),
                first_seq_after(self.j, &self.numbers[i + 1..])?.unwrap_or(s + 1),
            ),
        };
        let q = quarantine(self.j, seg, pos, cut_end, next_seq.saturating_sub(1).max(s))?;
        self.report.quarantined.push(Quarantined {
            frames_lost: next_seq.saturating_sub(s),
            ..q
        });
        self.expected = None;
        Ok(())
    }
}

fn first_seq_after(j: &Journal, later: &[u64]) -> Result<Option<u64>> {
    for &n in later {
        let seg = load(j, n)?;
        if let Some((_, h)) = next_valid(&seg.buf, SEGMENT_HEADER) {
            return Ok(Some(h.seq));
        }
    }
    Ok(None)
}

fn find_proof(
    j: &Journal,
    seg: &Seg,
    pos: usize,
    later: &[u64],
    s: u64,
) -> Result<Option<(u64, usize)>> {
    let mut k = pos + 1;
    while let Some((off, h)) = next_valid(&seg.buf, k) {
        if h.synced >= s {
            return Ok(Some((seg.n, off)));
        }
        k = off + 1;
    }
    for &n in later {
        let other = load(j, n)?;
        let mut k = SEGMENT_HEADER;
        while let Some((off, h)) = next_valid(&other.buf, k) {
            if h.synced >= s {
                return Ok(Some((n, off)));
            }
            k = off + 1;
        }
    }
    Ok(None)
}

fn zero(seg: &Seg, from: usize, to: usize) -> Result<()> {
    let zeros = vec![0u8; (to - from).min(1 << 20)];
    let mut at = from;
    while at < to {
        let n = (to - at).min(zeros.len());
        seg.file
            .write_at(&zeros[..n], at as u64)
            .map_err(|e| Error::io(format!("zeroing {} at {at}", seg.name), &e))?;
        at += n;
    }
    seg.file
        .sync_data()
        .map_err(|e| Error::io(format!("fdatasync of {}", seg.name), &e))
}

fn quarantine(
    j: &Journal,
    seg: &mut Seg,
    from: usize,
    to: usize,
    pad_seq: u64,
) -> Result<Quarantined> {
    if to < from + FRAME_HEADER + RECORD_HEADER {
        return Err(Error::corrupt(
            &seg.name,
            from as u64,
            "damaged range too short to repair",
        ));
    }
    if seg.buf.len() < to {
        seg.buf.resize(to, 0); // the padding frame's write extends the file
    }
    // Never over an earlier quarantine file (a second repair of the same range): the bytes it
    // saved are the user's only copy.
    let names = j
        .vfs
        .list(&j.dir)
        .map_err(|e| Error::io("listing the store directory", &e))?;
    let base = format!("quarantine-{:016x}-{from}", seg.n);
    let mut saved_as = format!("{base}.bin");
    let mut k = 1;
    while names.contains(&saved_as) {
        k += 1;
        saved_as = format!("{base}-{k}.bin");
    }
    let path = join(&j.dir, &saved_as);
    let f = j
        .vfs
        .create(&path)
        .map_err(|e| Error::io(format!("creating {saved_as}"), &e))?;
    f.write_at(&seg.buf[from..to], 0)
        .map_err(|e| Error::io(format!("writing {saved_as}"), &e))?;
    f.sync_data()
        .map_err(|e| Error::io(format!("fdatasync of {saved_as}"), &e))?;
    j.vfs
        .sync_dir(&j.dir)
        .map_err(|e| Error::io("fsync of the store directory", &e))?;
    // A padding frame over the whole range keeps the sequence chain whole.
    let payload_len = to - from - FRAME_HEADER;
    let mut payload = vec![0u8; payload_len];
    payload[0..4].copy_from_slice(&((payload_len - 4) as u32).to_le_bytes());
    payload[4] = PAD_KIND;
    let mut frame = vec![0u8; FRAME_HEADER];
    put_frame_header(&mut frame, pad_seq, 0, 1, &payload);
    frame.extend_from_slice(&payload);
    seg.file
        .write_at(&frame, from as u64)
        .map_err(|e| Error::io(format!("repairing {}", seg.name), &e))?;
    seg.file
        .sync_data()
        .map_err(|e| Error::io(format!("fdatasync of {}", seg.name), &e))?;
    seg.buf[from..to].copy_from_slice(&frame);
    Ok(Quarantined {
        file: seg.name.clone(),
        offset: from as u64,
        len: (to - from) as u64,
        frames_lost: 0,
        saved_as,
    })
}
