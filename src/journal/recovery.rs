//! Recovery on open: replay every frame, cut a torn tail, report corruption (SPEC §1).

use std::sync::Arc;

use super::format::*;
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
pub(super) fn data_end(b: &[u8]) -> usize {
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
pub(super) fn next_valid(b: &[u8], from: usize) -> Option<(usize, FrameHeader)> {
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
    let mut report = RecoveryReport::default();
    let names = j
        .vfs
        .list(&j.dir)
        .map_err(|e| Error::io(format!("listing {}", j.dir.display()), &e))?;
    let mut numbers: Vec<u64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
    numbers.sort_unstable();
    let mut expected: Option<u64> = None;
    let mut reuse: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < numbers.len() {
        let n = numbers[i];
        let last = i + 1 == numbers.len();
        let mut seg = load_into(j, n, std::mem::take(&mut reuse))?;
        report.segments += 1;
        report.bytes += seg.buf.len() as u64;
        match check_segment_header(&seg.buf, &seg.name) {
            Ok(num) if num == n => {}
            Ok(_) | Err(_) if last && seg.buf.iter().skip(SEGMENT_HEADER).all(|&b| b == 0) => {
                // Created but its header never became durable (missing, zero, or torn with
                // garbage in its sector): a roll writes and syncs the header, and fsyncs the
                // directory, before any frame goes into a segment, so a last segment with a bad
                // header and nothing after it never held anything.
                j.vfs
                    .remove(&join(&j.dir, &seg.name))
                    .map_err(|e| Error::io(format!("removing {}", seg.name), &e))?;
                j.vfs
                    .sync_dir(&j.dir)
                    .map_err(|e| Error::io("fsync of the store directory", &e))?;
                report.removed_incomplete_segments.push(seg.name);
                report.segments -= 1;
                i += 1;
                continue;
            }
            Ok(num) => {
                return Err(Error::corrupt(
                    &seg.name,
                    16,
                    &format!("header names segment {num}"),
                ))
            }
            Err(e) => return Err(e),
        }
        let mut pos = SEGMENT_HEADER;
        let mut stop = false;
        loop {
            let at_end = pos + FRAME_HEADER > seg.buf.len()
                || seg.buf[pos..pos + FRAME_HEADER].iter().all(|&b| b == 0);
            let good = if at_end {
                None
            } else {
                check_frame(&seg.buf[pos..]).filter(|h| expected.is_none_or(|e| h.seq == e))
            };
            if let Some(h) = good {
                let payload_off = pos + FRAME_HEADER;
                for r in records(&seg.buf[payload_off..payload_off + h.len]) {
                    let (at, kind, body) = r.map_err(|at| {
                        Error::corrupt(&seg.name, (payload_off + at) as u64, "malformed record")
                    })?;
                    let rec_off = (payload_off + at) as u64;
                    apply(n, rec_off, (RECORD_HEADER + body.len()) as u32, kind, body)?;
                    report.records += 1;
                }
                report.frames += 1;
                expected = Some(h.seq + 1);
                pos = payload_off + h.len;
                continue;
            }
            // End of data or a bad frame. Is there anything after it?
            let s = expected.unwrap_or(1);
            let end = data_end(&seg.buf);
            if at_end && end <= pos {
                if !last {
                    break; // a full segment's unused tail: go on to the next segment
                }
                j.tail = n;
                j.tail_off = pos as u64;
                stop = true;
                break;
            }
            // Look for proof that the data at `pos` had been durable: a later frame with synced ≥ s.
            let proof = find_proof(j, &seg, pos, &numbers[i + 1..], s)?;
            match proof {
                None => {
                    // Torn tail: never acknowledged. Zero it so no stale frame reappears later.
                    let bytes = end.saturating_sub(pos) as u64;
                    if bytes > 0 {
                        zero(&seg, pos, end)?;
                    }
                    for &later in &numbers[i + 1..] {
                        let name = segment_name(later);
                        j.vfs
                            .remove(&join(&j.dir, &name))
                            .map_err(|e| Error::io(format!("removing {name}"), &e))?;
                    }
                    if i + 1 < numbers.len() {
                        j.vfs
                            .sync_dir(&j.dir)
                            .map_err(|e| Error::io("fsync of the store directory", &e))?;
                    }
                    if bytes > 0 || i + 1 < numbers.len() {
                        report.torn_tail = Some(TornTail {
                            file: seg.name.clone(),
                            offset: pos as u64,
                            bytes,
                        });
                    }
                    numbers.truncate(i + 1);
                    j.tail = n;
                    j.tail_off = pos as u64;
                    stop = true;
                    break;
                }
                Some(_) if !repair => {
                    return Err(Error::corrupt(
                        &seg.name,
                        pos as u64,
                        "frame fails its checksum, length or sequence check, and later frames prove it had been durable",
                    ));
                }
                Some(_) => {
                    // Repair: cut out [pos, next valid frame in this segment) or up to its data end.
                    // The cut holds at least a padding frame: a "valid" frame starting inside the
                    // first bytes of the damaged one (a sequence break on a short frame, or
                    // damage) is cut with it, and a cut at the end of a short file grows it.
                    let min_end = pos + FRAME_HEADER + RECORD_HEADER;
                    let (cut_end, next_seq) =
                        match next_valid(&seg.buf, min_end).filter(|(_, h)| h.seq >= s) {
                            Some((k, h)) => (k, h.seq),
                            None => (
                                end.max(min_end),
                                first_seq_after(j, &numbers[i + 1..])?.unwrap_or(s + 1),
                            ),
                        };
                    let q =
                        quarantine(j, &mut seg, pos, cut_end, next_seq.saturating_sub(1).max(s))?;
                    report.quarantined.push(Quarantined {
                        frames_lost: next_seq.saturating_sub(s),
                        ..q
                    });
                    expected = None;
                    // Re-read the padded frame on the next turn of the loop.
                    continue;
                }
            }
        }
        j.files.insert(n, seg.file.clone());
        j.sizes.insert(n, seg.buf.len() as u64);
        if !stop {
            j.tail = n;
            j.tail_off = pos as u64;
        }
        if stop {
            break;
        }
        reuse = seg.buf;
        i += 1;
    }
    if let Some(e) = expected {
        j.next_seq = e;
        j.synced_seq = e - 1;
    }
    Ok(report)
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
    let saved_as = format!("quarantine-{:016x}-{from}.bin", seg.n);
    let path = join(&j.dir, &saved_as);
    let _ = j.vfs.remove(&path);
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
    payload[4] = kind::PAD;
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
