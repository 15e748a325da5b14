//! Recovery on open: replay every frame, cut a torn tail, report corruption (a frame that a
//! later frame proves had been durable), repair by quarantining when asked.
//!
//! ## Torn tail or damage: the rule (RELIABILITY "damage is named", issue 15 §6)
//! A bad frame (checksum, length or sequence) or the end of the journal is a *torn tail* —
//! bytes that were never made durable, cut silently — only when nothing in the store proves
//! that the data there had been durable. Two things prove it:
//! - a later frame whose `synced` field is at least the bad frame's expected sequence number
//!   (the writer fills `synced` only after an fdatasync returned);
//! - the index checkpoint (`CHECKPOINT`, see `src/engine/checkpoint.rs`) written at the last
//!   clean close, when it is whole (its own CRC32C) even if the open could not use it: it is
//!   written only once the journal is fdatasync'd, so every frame with a sequence number below
//!   its `next_seq`, and every byte of a segment it covers below the length it recorded, had
//!   been durable ([`Durable`]). Its proof covers no segment newer than its own tail.
//!
//! With a proof, a bad frame is `Corrupt { file, offset }` (a repair quarantines the range),
//! and a journal that ends before the checkpoint's `next_seq` — its last segment cut short,
//! its last frames zeroed or lost — is a loss named in [`RecoveryReport::missing`] (without
//! `repair` the open fails with `Corrupt` naming the segment, as for a missing segment file).
//! Only a tail beyond every proof is cut as torn: a crash's torn write always is, because
//! sequence numbers and positions only grow (a torn tail is cut where it starts, so new frames
//! get numbers and offsets no proof ever covered), and an owner removes the checkpoint as soon
//! as its open succeeded, before it writes.

use std::sync::Arc;

use super::frame::*;
use super::missing::Missing;
use super::{parse_segment_name, segment_name, Apply, Journal};
use crate::error::{Error, Result};
use crate::io::{join, VFile};

/// A torn tail that recovery cut off.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TornTail {
    /// The segment file.
    pub file: String,
    /// Where the cut starts.
    pub offset: u64,
    /// How many bytes were zeroed.
    pub bytes: u64,
}

/// A damaged range that a repair cut out, or a whole file named like a segment that it moved
/// aside (a stray: nothing in it checks out, or it is a copy of a segment that is there under
/// its own name; `offset` 0, `len` the file's, `frames_lost` 0).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// What was missing from the journal: segment files deleted (first, middle or last),
    /// segments cut short before their end (the last one too, or its last frames zeroed, when
    /// the `CHECKPOINT` of the last clean close proves them durable: see the module docs of
    /// `src/journal/recovery.rs`), and segment files found under another segment's
    /// name (contents exchanged, a file renamed: a repair renames them back, `frames_lost` 0). Without `repair` any of these fails the open with
    /// `Corrupt` naming the file; a repair records them here and makes the journal whole again
    /// (an empty placeholder segment for a missing file, a padding frame bridging missing
    /// frames), so the next plain open succeeds.
    pub missing: Vec<Missing>,
    /// Queues whose declaration was lost to damage (a repair cut it out) while messages of
    /// theirs survived: the messages are kept, in a queue of this placeholder name
    /// (`__lost_queue_<id>`), declared durably so that the next open finds it.
    pub lost_queues: Vec<String>,
    /// Whether the state came from the index checkpoint (the `CHECKPOINT` file written at the
    /// last clean close) instead of a replay of every record: the segments it covers were
    /// checked against their CRC32C, and `frames`/`records` are then 0.
    #[serde(default)]
    pub checkpoint_used: bool,
    /// Why a checkpoint that was present was ignored (stale, torn, another format version, a
    /// segment changed or missing, a CRC mismatch, a decode error, a repair); the open then
    /// replayed the whole journal, as without a checkpoint.
    #[serde(default)]
    pub checkpoint_ignored: Option<String>,
}

/// What an index checkpoint that decodes and passes its own CRC32C proves had been durable,
/// whether or not the open could use it (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct Durable {
    /// The checkpoint's `next_seq`: every frame numbered below it had been durable.
    pub(crate) next_seq: u64,
    /// The newest segment it covers: it proves nothing about newer ones.
    pub(crate) last: u64,
    /// Per covered segment, the length it recorded (bytes `0..len` had been durable).
    covered: std::collections::BTreeMap<u64, u64>,
}

impl Durable {
    /// The proof a checkpoint's journal position gives; `None` when it covers no segment.
    pub(crate) fn of(pos: &super::Position) -> Option<Durable> {
        let last = pos.segments.last()?.n;
        Some(Durable {
            next_seq: pos.next_seq,
            last,
            covered: pos.segments.iter().map(|s| (s.n, s.len)).collect(),
        })
    }

    /// Whether the frame expected at `pos` of segment `n`, with sequence number `s`, had been
    /// durable.
    pub(crate) fn proves(&self, n: u64, pos: usize, s: u64) -> bool {
        n <= self.last
            && (s < self.next_seq || self.covered.get(&n).is_some_and(|&len| (pos as u64) < len))
    }

    /// The length recorded for segment `n` when its file (`file_len` bytes) is shorter: the
    /// segment was cut short.
    pub(crate) fn cut_short(&self, n: u64, file_len: usize) -> Option<u64> {
        self.covered
            .get(&n)
            .copied()
            .filter(|&len| (file_len as u64) < len)
    }

    /// Whether a journal whose last segment is `tail`, ending after frame `expected - 1`, ends
    /// before what was durable. By sequence number only: where a segment's data ends is
    /// known only up to trailing zero bytes (a repair's cut ends at the last non-zero byte).
    pub(crate) fn ends_short(&self, tail: u64, expected: u64) -> bool {
        tail <= self.last && expected < self.next_seq
    }

    /// Whether a journal in which no frame is left, ending at `end` of its last segment `tail`,
    /// had held frames there (every frame of a one-segment journal zeroed: no frame number is
    /// left to compare, so the length the checkpoint recorded tells).
    pub(crate) fn held_frames(&self, tail: u64, end: u64) -> bool {
        tail <= self.last && self.covered.get(&tail).is_some_and(|&len| end < len)
    }
}

/// The message for a bad frame that only the checkpoint proves had been durable.
pub(crate) fn proven_by_checkpoint_msg(bound: u64) -> String {
    format!(
        "frame fails its checksum, length or sequence check, and the CHECKPOINT written at the \
         last clean close proves it had been durable (it records the journal up to frame {})",
        bound.saturating_sub(1)
    )
}

/// The message for a journal that ends at frame `s - 1` (`None`: no frame is left) before the
/// checkpoint's `bound` (`cut`: the file's size and the length the checkpoint recorded, when
/// it is shorter).
pub(crate) fn ends_short_msg(s: Option<u64>, bound: u64, cut: Option<(u64, u64)>) -> String {
    let how = match cut {
        Some((size, len)) => format!(
            "the file was cut short: it is {size} bytes, the checkpoint recorded {len} bytes of \
             frames"
        ),
        None => "its last frames were zeroed, truncated or lost".to_string(),
    };
    let last = bound.saturating_sub(1);
    let frames = match s {
        Some(s) => format!("frames {s}..{last} are missing"),
        None => "its frames are missing (how many is unknown: no frame is left to number them)"
            .to_string(),
    };
    format!(
        "segment ends before its last frames: the CHECKPOINT written at the last clean close \
         records the journal up to frame {last}, so {frames} ({how})"
    )
}

pub(super) struct Seg {
    pub(super) n: u64,
    pub(super) name: String,
    pub(super) file: Arc<dyn VFile>,
    pub(super) buf: Vec<u8>,
}

pub(super) fn load(j: &Journal, n: u64) -> Result<Seg> {
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

/// How many whole valid frames lie in `b[from..to]` (each checked by its own checksum, found
/// where the one before it ends or, past damage, by scanning): what a cut of that range drops.
/// A repair reports it, whatever the frames' sequence numbers say (frames out of order — a
/// segment whose contents were exchanged with another's — are dropped all the same).
pub(super) fn frames_in(b: &[u8], from: usize, to: usize) -> u64 {
    let b = &b[..to.min(b.len())];
    let mut n = 0;
    let mut k = from;
    while let Some((at, h)) = next_valid(b, k) {
        let end = at + FRAME_HEADER + h.len;
        if end > b.len() {
            break;
        }
        n += 1;
        k = end;
    }
    n
}

pub(super) fn recover(
    j: &mut Journal,
    repair: bool,
    durable: Option<Durable>,
    apply: Apply<'_>,
) -> Result<RecoveryReport> {
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
        oldest: 0,
        sealed: None,
        prev_current: false,
        seg_crc: None,
        placeholders: Vec::new(),
        durable,
        cut: None,
    };
    r.check_files()?;
    r.run()?;
    r.check_durable_end()?;
    r.check_ends()?;
    r.name_unknown_counts();
    if let Some(e) = r.expected {
        r.j.next_seq = e;
        r.j.synced_seq = e - 1;
    }
    Ok(r.report)
}

/// One recovery: the segments found, the next frame sequence expected, what was found.
pub(super) struct Recovery<'j, 'a> {
    pub(super) j: &'j mut Journal,
    pub(super) repair: bool,
    apply: Apply<'a>,
    pub(super) report: RecoveryReport,
    /// Segment numbers, oldest first (cut when a torn tail ends the journal).
    pub(super) numbers: Vec<u64>,
    /// The sequence number the next frame must have (`None` at the start and after a repair).
    pub(super) expected: Option<u64>,
    /// The oldest segment the journal must still hold: the highest of the segment headers'
    /// `oldest` fields and the TRIM marks (0: no such record, as in older stores).
    pub(super) oldest: u64,
    /// The segment a SEAL names, when the last frame replayed was one.
    pub(super) sealed: Option<u64>,
    /// Whether the last segment read is of the current format version.
    prev_current: bool,
    /// The running CRC32C of the segment being scanned, `(len, crc)` of its bytes `0..len`,
    /// extended by each frame as it is replayed (while in cache): it becomes the journal's
    /// (`Journal::crcs`), so that the close after a full replay need not read the journal
    /// back to write the index checkpoint. `None` once the bytes replayed are not contiguous.
    seg_crc: Option<(u64, u32)>,
    /// Segments a repair made empty placeholders for (missing files): the frames a gap after
    /// one of them lost are its loss (see `missing_frames`).
    pub(super) placeholders: Vec<u64>,
    /// What the index checkpoint proves had been durable, if there is a whole one.
    pub(super) durable: Option<Durable>,
    /// The last segment's size and the length the checkpoint recorded for it, when the scan
    /// found it cut short (`check_durable_end` names the loss).
    pub(super) cut: Option<(u64, u64)>,
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
            if !self.header_ok(&seg, last)? || (last && i > 0 && self.incomplete_roll(&seg)?) {
                i += 1;
                continue;
            }
            let current = u32_at(&seg.buf, 8) == VERSION;
            self.oldest = self.oldest.max(header_oldest(&seg.buf));
            self.seg_crc = Some((
                SEGMENT_HEADER as u64,
                crc32c::crc32c(&seg.buf[..SEGMENT_HEADER]),
            ));
            let (pos, stop) = self.scan(i, &mut seg)?;
            // The bytes after `pos` are zero (a segment the journal goes on past), or not part
            // of the journal (the tail): `Journal::position` takes it from there. A repair
            // writes into segments (this one or the one before): their bytes are read back.
            match self.seg_crc.take() {
                Some((len, crc)) if len == pos as u64 && !self.repair => {
                    self.j.crcs.insert(n, (len, crc));
                }
                _ => {}
            }
            self.j.files.insert(n, seg.file.clone());
            self.j.sizes.insert(n, seg.buf.len() as u64);
            self.j.tail = n;
            self.j.tail_off = pos as u64;
            self.j.tail_current = current;
            self.prev_current = current;
            if stop {
                break;
            }
            reuse = seg.buf;
            i += 1;
        }
        Ok(())
    }

    /// A last segment with no frame after an unsealed current-version segment: the journal
    /// rolled (the new segment was created) but crashed before sealing the old one, so nothing
    /// was ever written into it. It is removed (and the old one stays the tail).
    fn incomplete_roll(&mut self, seg: &Seg) -> Result<bool> {
        if !self.prev_current || self.sealed.is_some() || data_end(&seg.buf) > SEGMENT_HEADER {
            return Ok(false);
        }
        self.remove_incomplete(seg)?;
        Ok(true)
    }

    fn remove_incomplete(&mut self, seg: &Seg) -> Result<()> {
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
                self.remove_incomplete(seg)?;
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
                check_frame(&seg.buf[pos..]).filter(|h| in_sequence(&seg.buf[pos..], h, expected))
            };
            if good.is_none() && !at_end && pos == SEGMENT_HEADER && i > 0 {
                // A sound first frame ahead of the sequence: the previous segment lost its last
                // frames (named as such, rather than blaming this healthy frame).
                let ahead =
                    check_frame(&seg.buf[pos..]).filter(|h| expected.is_some_and(|e| h.seq > e));
                if let (Some(h), Some(e)) = (ahead, expected) {
                    self.missing_frames(&seg.name, e, h.seq)?;
                    continue;
                }
            }
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
            // Proof that the data at `pos` had been durable: a later frame with synced ≥ s,
            // or else the checkpoint of the last clean close (see the module docs).
            match find_proof(self.j, seg, pos, &self.numbers[i + 1..], s)? {
                None => {
                    let Some(d) = self.durable.clone().filter(|d| d.proves(seg.n, pos, s)) else {
                        self.cut_torn_tail(i, seg, pos, end)?;
                        return Ok((pos, true));
                    };
                    match d
                        .cut_short(seg.n, seg.buf.len())
                        .filter(|_| last && s < d.next_seq)
                    {
                        // The journal ends here, short: a loss `check_durable_end` names.
                        Some(len) => {
                            let cut = Some((seg.buf.len() as u64, len));
                            if !self.repair {
                                let what = ends_short_msg(Some(s), d.next_seq, cut);
                                return Err(Error::corrupt(&seg.name, pos as u64, &what));
                            }
                            // The partial frame's bytes are kept (its loss is counted in
                            // `missing`).
                            if end > pos {
                                let q = quarantine_zeroed(self.j, seg, pos, end)?;
                                self.report.quarantined.push(q);
                            }
                            self.cut = cut;
                            return Ok((pos, true));
                        }
                        None if !self.repair => {
                            return Err(Error::corrupt(
                                &seg.name,
                                pos as u64,
                                &proven_by_checkpoint_msg(d.next_seq),
                            ));
                        }
                        None => self.repair_at(i, seg, pos, end, s, d.next_seq)?,
                    }
                }
                Some(_) if !self.repair => {
                    return Err(Error::corrupt(
                        &seg.name,
                        pos as u64,
                        "frame fails its checksum, length or sequence check, and later frames prove it had been durable",
                    ));
                }
                // Re-read the padded frame on the next turn of the loop.
                Some(_) => self.repair_at(i, seg, pos, end, s, 0)?,
            }
        }
    }

    /// Replays the records of the valid frame `h` at `pos`; returns where the next frame starts.
    fn replay_frame(&mut self, seg: &Seg, pos: usize, h: FrameHeader) -> Result<usize> {
        let payload_off = pos + FRAME_HEADER;
        let payload = &seg.buf[payload_off..payload_off + h.len];
        self.sealed = None;
        // The journal's own marks are not records of the engine's.
        let mark = mark_of(payload, h.count);
        match mark {
            Some((SEAL_KIND, next)) => self.sealed = Some(next),
            Some((_, first)) => self.oldest = self.oldest.max(first),
            None => {}
        }
        for r in records(payload).filter(|_| mark.is_none()) {
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
        let end = payload_off + h.len;
        self.seg_crc = match self.seg_crc {
            Some((len, crc)) if len == pos as u64 => {
                Some((end as u64, crc32c::crc32c_append(crc, &seg.buf[pos..end])))
            }
            _ => None,
        };
        Ok(end)
    }

    /// A torn tail at `pos` (never acknowledged): zeroed, so no stale frame can reappear behind
    /// new ones, and the segments after it removed.
    fn cut_torn_tail(&mut self, i: usize, seg: &Seg, pos: usize, end: usize) -> Result<()> {
        let bytes = end.saturating_sub(pos) as u64;
        if bytes > 0 {
            zero(seg, pos, end)?;
        }
        let j = &self.j;
        // Newest first: a crash part way leaves a shorter journal, never one with a gap.
        for &later in self.numbers[i + 1..].iter().rev() {
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
    /// `bound` is the checkpoint's `next_seq` when it is the proof (0 otherwise): damage at
    /// the end of the journal then lost every frame up to it, and the numbers go on after it.
    fn repair_at(
        &mut self,
        i: usize,
        seg: &mut Seg,
        pos: usize,
        end: usize,
        s: u64,
        bound: u64,
    ) -> Result<()> {
        let min_end = pos + FRAME_HEADER + RECORD_HEADER;
        let (cut_end, next_seq) = match next_valid(&seg.buf, min_end).filter(|(_, h)| h.seq >= s) {
            Some((k, h)) => (k, h.seq),
            None => (
                end.max(min_end),
                first_seq_after(self.j, &self.numbers[i + 1..])?.unwrap_or((s + 1).max(bound)),
            ),
        };
        // The frames the cut drops, counted in the range itself: the gap in sequence numbers
        // says 0 for frames older than expected (a segment holding another's contents).
        let dropped = frames_in(&seg.buf, pos, cut_end);
        if next_seq <= s {
            // Nothing is missing from the sequence (garbage behind the last frame of a
            // segment): a padding frame would take number `s`, which the next frame has, and
            // that sound frame would be cut next. The range is zeroed instead (the unused tail
            // of a segment), the frame numbers run on unchanged.
            let q = quarantine_zeroed(self.j, seg, pos, end.max(pos))?;
            self.report.quarantined.push(Quarantined {
                frames_lost: dropped,
                ..q
            });
            return Ok(());
        }
        let q = quarantine(self.j, seg, pos, cut_end, next_seq - 1)?;
        self.report.quarantined.push(Quarantined {
            frames_lost: next_seq.saturating_sub(s).max(dropped),
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
    let saved_as = save_aside(
        j,
        &format!("quarantine-{:016x}-{from}", seg.n),
        &seg.buf[from..to],
    )?;
    // A padding frame over the whole range keeps the sequence chain whole.
    let frame = pad_frame(to - from, pad_seq);
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

/// Repair of damage behind a segment's last frame: `seg[from..to]` saved into a quarantine
/// file, then zeroed (durably), as the unused tail of a segment is.
fn quarantine_zeroed(j: &Journal, seg: &mut Seg, from: usize, to: usize) -> Result<Quarantined> {
    let saved_as = save_aside(
        j,
        &format!("quarantine-{:016x}-{from}", seg.n),
        &seg.buf[from..to],
    )?;
    zero(seg, from, to)?;
    seg.buf[from..to].fill(0);
    Ok(Quarantined {
        file: seg.name.clone(),
        offset: from as u64,
        len: (to - from) as u64,
        frames_lost: 0,
        saved_as,
    })
}

/// A padding frame of `len` bytes in all (at least a frame and a record header) with sequence
/// number `seq`: written by repair, it may skip sequence numbers (see [`in_sequence`]).
pub(super) fn pad_frame(len: usize, seq: u64) -> Vec<u8> {
    let payload_len = len - FRAME_HEADER;
    let mut payload = vec![0u8; payload_len];
    payload[0..4].copy_from_slice(&((payload_len - 4) as u32).to_le_bytes());
    payload[4] = PAD_KIND;
    let mut frame = vec![0u8; FRAME_HEADER];
    put_frame_header(&mut frame, seq, 0, 1, &payload);
    frame.extend_from_slice(&payload);
    frame
}

/// Whether the sound frame `h` at the start of `b` continues a chain expecting `expected`:
/// the next number, or (a padding frame a repair wrote over lost frames) a later one.
pub(crate) fn in_sequence(b: &[u8], h: &FrameHeader, expected: Option<u64>) -> bool {
    expected.is_none_or(|e| {
        h.seq == e || (h.seq > e && is_pad(&b[FRAME_HEADER..FRAME_HEADER + h.len], h.count))
    })
}

/// Copies `bytes` into a new quarantine file `<base>.bin` (or `<base>-2.bin`…: never over an
/// earlier one, whose bytes are the user's only copy), durably; returns its name.
///
/// The bytes go to `<name>.partial` first and are renamed to `<name>` only once written and
/// synced: a repair that fails half-way (`NoSpace`) removes the partial file, so no file under
/// a quarantine name holds less than what was cut (review r5 #21: a 0-byte quarantine file was
/// left looking like the saved bytes). A crash between leaves a `.partial` file, named as such.
pub(super) fn save_aside(j: &Journal, base: &str, bytes: &[u8]) -> Result<String> {
    let saved_as = unique_name(j, base)?;
    let partial = format!("{saved_as}.partial");
    let tmp = join(&j.dir, &partial);
    let written = (|| {
        let f = j
            .vfs
            .create(&tmp)
            .map_err(|e| Error::io(format!("creating {partial}"), &e))?;
        f.write_at(bytes, 0)
            .map_err(|e| Error::io(format!("writing {partial}"), &e))?;
        f.sync_data()
            .map_err(|e| Error::io(format!("fdatasync of {partial}"), &e))?;
        j.vfs
            .rename(&tmp, &join(&j.dir, &saved_as))
            .map_err(|e| Error::io(format!("renaming {partial} to {saved_as}"), &e))
    })();
    if let Err(e) = written {
        // Best effort: the error that stopped the repair is the one to report.
        let _ = j.vfs.remove(&tmp);
        return Err(e);
    }
    j.vfs
        .sync_dir(&j.dir)
        .map_err(|e| Error::io("fsync of the store directory", &e))?;
    Ok(saved_as)
}

/// `<base>.bin`, or `<base>-<k>.bin` with the first `k` from 2 that names no file yet.
pub(super) fn unique_name(j: &Journal, base: &str) -> Result<String> {
    let names = j
        .vfs
        .list(&j.dir)
        .map_err(|e| Error::io("listing the store directory", &e))?;
    let mut name = format!("{base}.bin");
    let mut k = 1;
    while names.contains(&name) {
        k += 1;
        name = format!("{base}-{k}.bin");
    }
    Ok(name)
}
