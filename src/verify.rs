//! A read-only integrity scan of a store's journal, for operators (`mqlite verify`) and backup
//! tools: the checks recovery makes when a store is opened, without changing a byte.
//!
//! Recovery itself writes (it zeroes a torn tail, removes an incomplete last segment and, with
//! `repair`, quarantines damaged ranges), so it cannot serve as a check. [`verify`] opens every
//! file read-only, classifies what it finds exactly as recovery would — a bad frame is a *torn
//! tail* when no later frame proves it had been durable, otherwise *corruption* — and, unlike
//! recovery, goes on after a problem so that one scan names every damaged place. Like recovery,
//! it takes a whole index checkpoint (`CHECKPOINT`, written at the last clean close) as proof
//! of what had been durable: damage there, or a journal that ends before it, is a problem, not
//! a torn tail (the rule is in `src/journal/recovery.rs`).
//!
//! While it scans it holds the store's lock (taken on a read-only descriptor, the `LOCK` file is
//! neither created nor written), so no process can open the store and append meanwhile; a store
//! that another process holds is refused with `Locked`, naming that process's pid.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use crate::engine::record::{kind, Cursor};
use crate::error::{Error, ErrorKind, Result};
use crate::journal::format::*;
use crate::journal::missing::{
    first_why, gap_why, last_why, missing_file_msg, other_store_why, truncated_msg, STRAY_MSG,
};
use crate::journal::recovery::{
    data_end, ends_short_msg, in_sequence, next_valid, proven_by_checkpoint_msg, Durable,
};
use crate::journal::{parse_segment_name, segment_name, TornTail};

/// One journal segment file, as its header describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The file name in the store directory (`<16 hex digits>.seg`).
    pub file: String,
    /// The segment number (from the file name).
    pub number: u64,
    /// The file's size in bytes (segments are preallocated, so this is disk use, not data).
    pub bytes: u64,
    /// The format version its header declares; `None` if the header does not check out.
    pub version: Option<u32>,
    /// When it was created (ms since the epoch), from its header; `None` if the header is bad.
    pub created_ms: Option<u64>,
}

/// A damaged place found by [`verify`]: the file and byte offset, and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file name in the store directory.
    pub file: String,
    /// Byte offset in that file.
    pub offset: u64,
    /// What is wrong.
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at offset {}: {}", self.file, self.offset, self.what)
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Every segment file, oldest first.
    pub segments: Vec<SegmentInfo>,
    /// Frames that passed their checks.
    pub frames: u64,
    /// Records in those frames.
    pub records: u64,
    /// Bytes of journal read.
    pub bytes: u64,
    /// A torn tail (a last write that never became durable): not a problem, the next open cuts
    /// it off. Later segments, if any, would be removed with it.
    pub torn_tail: Option<TornTail>,
    /// A last segment whose creation never completed: not a problem, the next open removes it.
    pub incomplete_segments: Vec<String>,
    /// Corruption: checksum, length, sequence or decoding failures that recovery would refuse
    /// with `Corrupt` (or a `repair` would quarantine). Empty when the journal is sound.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether the journal is sound: the store opens without `Corrupt` and loses nothing that was
    /// durable.
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The segment files of the store in `dir`, oldest first, with what their headers say. Reads
/// only each file's 64-byte header; takes no lock (a snapshot for `mqlite info`).
///
/// Errors: `NotFound` if `dir` does not exist, `Io` if it cannot be listed or a file not read.
pub fn segments(dir: &Path) -> Result<Vec<SegmentInfo>> {
    segment_numbers(dir)?
        .into_iter()
        .map(|n| {
            let name = segment_name(n);
            let f = open_read_only(&dir.join(&name))?;
            let len = f
                .metadata()
                .map_err(|e| Error::io(format!("size of {name}"), &e))?
                .len();
            let mut h = vec![0u8; SEGMENT_HEADER.min(len as usize)];
            f.read_exact_at(&mut h, 0)
                .map_err(|e| Error::io(format!("reading {name}"), &e))?;
            Ok(segment_info(n, name, len, &h))
        })
        .collect()
}

/// Scans every segment of the store in `dir` read-only and reports what recovery would find,
/// going on past each problem. See the module documentation.
///
/// Errors (about the scan, not the journal — damage is reported in [`VerifyReport::problems`]):
/// `NotFound` if `dir` does not exist, `Locked` (naming the owner's pid) if another opener holds
/// the store, `Io` if a file cannot be read.
pub fn verify(dir: &Path) -> Result<VerifyReport> {
    let _lock = lock_read_only(dir)?;
    let all = segment_numbers(dir)?;
    let mut v = Scan {
        dir,
        report: VerifyReport::default(),
        expected: None,
        oldest: 0,
        sealed: None,
        prev: None,
        numbers: Vec::new(),
        durable: durable(dir),
    };
    let mut buf = Vec::new();
    // The chain of files first: a stray file is no segment, and a gap is a missing file.
    let mut kept: Vec<u64> = Vec::new();
    for (i, &n) in all.iter().enumerate() {
        let name = segment_name(n);
        read_whole(dir, &name, &mut buf)?;
        let stray = check_segment_header(&buf, &name).is_err()
            && !(i + 1 == all.len() && buf.iter().skip(SEGMENT_HEADER).all(|&b| b == 0))
            && next_valid(&buf, 0).is_none();
        if stray {
            v.problem(&name, 0, STRAY_MSG.into());
            continue;
        }
        if let Some(&prev) = kept.last() {
            for gap in prev + 1..n {
                v.problem(&segment_name(gap), 0, missing_file_msg(&gap_why(prev, n)));
            }
        }
        kept.push(n);
    }
    v.numbers = kept.clone();
    for (i, &n) in kept.iter().enumerate() {
        let name = segment_name(n);
        read_whole(dir, &name, &mut buf)?;
        v.report.bytes += buf.len() as u64;
        v.report
            .segments
            .push(segment_info(n, name.clone(), buf.len() as u64, &buf));
        if v.header(i, n, &buf)? && v.segment(i, &name, &buf)? {
            return Ok(v.report);
        }
    }
    v.ends();
    Ok(v.report)
}

/// One [`verify`] scan: its report and the cursor state recovery would have.
struct Scan<'d> {
    dir: &'d Path,
    report: VerifyReport,
    /// The sequence number the next frame must have.
    expected: Option<u64>,
    /// The oldest segment the journal must hold (TRIM marks and headers; 0: unknown).
    oldest: u64,
    /// The segment a SEAL names, when the last frame read was one.
    sealed: Option<u64>,
    /// The last segment read: (number, where its data ends, whether of the current version).
    prev: Option<(u64, usize, bool)>,
    /// The segments in the chain (strays left out), oldest first.
    numbers: Vec<u64>,
    /// What a whole checkpoint proves had been durable, as recovery takes it.
    durable: Option<Durable>,
}

/// What the checkpoint in `dir` proves had been durable, when it is there and whole (one that
/// is not is no proof, as in recovery). Read through the read-only file layer: `RealFs` opens
/// for writing, which a read-only copy of a store refuses (it would then have been no proof).
fn durable(dir: &Path) -> Option<Durable> {
    let vfs: std::sync::Arc<dyn crate::io::Vfs> =
        std::sync::Arc::new(crate::io::Overlay::default());
    let c = crate::engine::checkpoint::read(&vfs, dir).ok()??;
    Durable::of(&c.into_position().ok()?)
}

impl Scan<'_> {
    fn problem(&mut self, file: &str, offset: u64, what: String) {
        self.report.problems.push(Problem {
            file: file.to_string(),
            offset,
            what,
        });
    }

    /// Checks segment `numbers[i]`'s header; whether its frames are to be read.
    fn header(&mut self, i: usize, n: u64, buf: &[u8]) -> Result<bool> {
        let name = segment_name(n);
        let last = i + 1 == self.numbers.len();
        let empty = data_end(buf) <= SEGMENT_HEADER;
        match check_segment_header(buf, &name) {
            // A roll that crashed before sealing the old tail: nothing was in the new one.
            Ok(num) if num == n && last && empty && self.prev.is_some_and(|p| p.2) => {
                if self.sealed.is_none() {
                    self.report.incomplete_segments.push(name);
                    return Ok(false);
                }
                Ok(true)
            }
            Ok(num) if num == n => Ok(self.of_this_store(&name, buf)),
            _ if last && buf.iter().skip(SEGMENT_HEADER).all(|&b| b == 0) => {
                self.report.incomplete_segments.push(name);
                Ok(false)
            }
            Ok(num) => {
                self.problem(&name, 16, format!("header names segment {num}"));
                self.expected = None;
                Ok(false)
            }
            Err(e) => {
                self.report.problems.push(problem_of(&name, &e));
                self.expected = None;
                Ok(false)
            }
        }
    }

    /// Whether segment `name` (header `buf`, sound) is this store's: a header naming another
    /// store than `STORE_ID` (bytes 40..56) is a problem, as an open finds it (review r5 #20;
    /// issue 15 #5: `verify` used to read such a file's frames as this store's). A header
    /// naming no store (written before stores were named, or a new store's first segment)
    /// and a store without a readable `STORE_ID` are taken as this store's, as an open does.
    fn of_this_store(&mut self, name: &str, buf: &[u8]) -> bool {
        let ours = crate::store::identity::read(self.dir)
            .and_then(|id| crate::journal::frame::store_id_bytes(&id));
        let theirs = crate::journal::frame::header_store(buf);
        let (Some(ours), Some(theirs)) = (ours, theirs) else {
            return true;
        };
        if ours == theirs {
            return true;
        }
        let hex = crate::journal::frame::store_id_hex;
        let why = other_store_why(&hex(&theirs), &hex(&ours));
        self.problem(name, 40, format!("{why}; a repair moves it aside)"));
        self.expected = None;
        false
    }

    /// Reads the frames of segment `numbers[i]`; whether the journal ends there (a torn tail).
    fn segment(&mut self, i: usize, name: &str, buf: &[u8]) -> Result<bool> {
        self.oldest = self.oldest.max(header_oldest(buf));
        let n = self.numbers[i];
        let mut pos = SEGMENT_HEADER;
        loop {
            let at_end = pos + FRAME_HEADER > buf.len()
                || buf[pos..pos + FRAME_HEADER].iter().all(|&b| b == 0);
            let found = if at_end {
                None
            } else {
                check_frame(&buf[pos..])
            };
            let expected = self.expected;
            if let (Some(h), Some(e), Some((p, p_end, _))) = (found, expected, self.prev) {
                if pos == SEGMENT_HEADER && h.seq > e && !in_sequence(&buf[pos..], &h, expected) {
                    // After a gap the missing file was named already.
                    if p + 1 == n {
                        let what = truncated_msg(e, name, h.seq);
                        self.problem(&segment_name(p), p_end as u64, what);
                    }
                    self.expected = Some(h.seq);
                }
            }
            if let Some(h) = found.filter(|h| in_sequence(&buf[pos..], h, self.expected)) {
                let payload_off = pos + FRAME_HEADER;
                let payload = &buf[payload_off..payload_off + h.len];
                self.sealed = None;
                match mark_of(payload, h.count) {
                    Some((SEAL_KIND, next)) => self.sealed = Some(next),
                    Some((_, first)) => self.oldest = self.oldest.max(first),
                    None => {
                        let problems = &mut self.report.problems;
                        self.report.records += check_records(payload, name, payload_off, problems);
                    }
                }
                self.report.frames += 1;
                self.expected = Some(h.seq + 1);
                pos = payload_off + h.len;
                continue;
            }
            let s = self.expected.unwrap_or(1);
            let end = data_end(buf);
            if at_end && end <= pos {
                self.prev = Some((n, pos, u32_at(buf, 8) == VERSION));
                return Ok(false); // end of this segment's data
            }
            let last = i + 1 == self.numbers.len();
            let what = if durable_later(self.dir, buf, pos, &self.numbers[i + 1..], s)? {
                "frame fails its checksum, length or sequence check, and later frames \
                 prove it had been durable"
                    .to_string()
            } else {
                let Some(d) = self.durable.clone().filter(|d| d.proves(n, pos, s)) else {
                    // Never acknowledged as durable: recovery cuts it (and removes later
                    // segments).
                    self.report.torn_tail = Some(TornTail {
                        file: name.to_string(),
                        offset: pos as u64,
                        bytes: end.saturating_sub(pos) as u64,
                    });
                    return Ok(true);
                };
                if let Some(len) = d.cut_short(n, buf.len()).filter(|_| last && s < d.next_seq) {
                    // The journal ends here, before what the checkpoint proves durable.
                    let cut = Some((buf.len() as u64, len));
                    self.problem(name, pos as u64, ends_short_msg(Some(s), d.next_seq, cut));
                    return Ok(true);
                }
                proven_by_checkpoint_msg(d.next_seq)
            };
            self.problem(name, pos as u64, what);
            // Go on at the next frame that continues the sequence, as a repair would.
            self.expected = None;
            match next_valid(buf, pos + 1).filter(|(_, h)| h.seq >= s) {
                Some((k, _)) => pos = k,
                None => {
                    self.prev = Some((n, pos, u32_at(buf, 8) == VERSION));
                    return Ok(false);
                }
            }
        }
    }

    /// The journal starts no later than its marks say, and does not end with a SEAL naming a
    /// segment that is not there.
    fn ends(&mut self) {
        let (Some(&first), Some((tail, _, _))) = (self.numbers.first(), self.prev) else {
            return;
        };
        if self.oldest > 0 && first > self.oldest {
            let what = missing_file_msg(&first_why(first, self.oldest));
            for n in self.oldest..first {
                self.problem(&segment_name(n), 0, what.clone());
            }
        }
        if let Some(next) = self.sealed.filter(|&n| n > tail) {
            self.problem(
                &segment_name(next),
                0,
                missing_file_msg(&last_why(tail, next)),
            );
        } else if let (Some(d), Some((_, end, _))) = (&self.durable, self.prev) {
            // Recovery's `check_durable_end`: ending before the checkpoint is a loss. (After a
            // problem `expected` is unknown, and the journal is not sound anyway.)
            let short = match self.expected {
                Some(s) => d.ends_short(tail, s),
                None => self.report.problems.is_empty() && d.held_frames(tail, end as u64),
            };
            if short {
                let what = ends_short_msg(self.expected, d.next_seq, None);
                self.problem(&segment_name(tail), end as u64, what);
            }
        }
    }
}

fn segment_numbers(dir: &Path) -> Result<Vec<u64>> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        let err = Error::io(format!("listing {}", dir.display()), &e);
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::new(
                ErrorKind::NotFound,
                format!("no store at {}", dir.display()),
            )
        } else {
            err
        }
    })?;
    let mut numbers = Vec::new();
    for e in rd {
        let e = e.map_err(|e| Error::io(format!("listing {}", dir.display()), &e))?;
        if let Some(n) = e.file_name().to_str().and_then(parse_segment_name) {
            numbers.push(n);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

fn segment_info(number: u64, file: String, bytes: u64, header: &[u8]) -> SegmentInfo {
    let ok = check_segment_header(header, &file).is_ok();
    SegmentInfo {
        file,
        number,
        bytes,
        version: ok.then(|| u32_at(header, 8)),
        created_ms: ok.then(|| u64_at(header, 24)),
    }
}

fn open_read_only(path: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), &e))
}

fn read_whole(dir: &Path, name: &str, buf: &mut Vec<u8>) -> Result<()> {
    let mut f = open_read_only(&dir.join(name))?;
    buf.clear();
    f.read_to_end(buf)
        .map_err(|e| Error::io(format!("reading {name}"), &e))?;
    Ok(())
}

/// Takes the store's exclusive lock (if its `LOCK` file exists): held until the returned lock
/// is dropped. `Locked` names the pid the owner wrote there.
fn lock_read_only(dir: &Path) -> Result<Option<crate::store::HeldLock>> {
    if !dir.is_dir() {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("no store at {}", dir.display()),
        ));
    }
    crate::store::lock_file(dir, false)
}

fn problem_of(file: &str, e: &Error) -> Problem {
    // `Error::corrupt` messages read "<file> at offset <n>: <what>".
    let msg = e.message();
    let rest = msg
        .strip_prefix(file)
        .and_then(|r| r.strip_prefix(" at offset "));
    let parsed = rest.and_then(|r| {
        let (off, what) = r.split_once(": ")?;
        Some((off.parse().ok()?, what.to_string()))
    });
    let (offset, what) = parsed.unwrap_or((0, msg.to_string()));
    Problem {
        file: file.to_string(),
        offset,
        what,
    }
}

/// Whether a frame after `pos` of this segment, or in a later one, says that sequence number
/// `s` had been durable (the proof that tells corruption from a torn tail).
fn durable_later(dir: &Path, buf: &[u8], pos: usize, later: &[u64], s: u64) -> Result<bool> {
    let proves = |b: &[u8], from: usize| {
        let mut k = from;
        while let Some((off, h)) = next_valid(b, k) {
            if h.synced >= s {
                return true;
            }
            k = off + 1;
        }
        false
    };
    if proves(buf, pos + 1) {
        return Ok(true);
    }
    let mut other = Vec::new();
    for &n in later {
        read_whole(dir, &segment_name(n), &mut other)?;
        if proves(&other, SEGMENT_HEADER) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Checks that every record of a frame payload can be read as recovery reads it; returns the
/// number of records and appends a [`Problem`] for each that cannot.
fn check_records(payload: &[u8], file: &str, payload_off: usize, out: &mut Vec<Problem>) -> u64 {
    let mut n = 0;
    for r in records(payload) {
        n += 1;
        let (at, what) = match r {
            Err(at) => (at, Some("malformed record".to_string())),
            Ok((at, k, body)) => {
                let whole = &payload[at..at + RECORD_HEADER + body.len()];
                (at, check_record(k, body, whole, true).err())
            }
        };
        if let Some(what) = what {
            out.push(Problem {
                file: file.to_string(),
                offset: (payload_off + at) as u64,
                what,
            });
        }
    }
    n
}

/// Whether one record decodes; `whole` is the record with its header.
fn check_record(k: u8, body: &[u8], whole: &[u8], top: bool) -> std::result::Result<(), String> {
    let mut c = Cursor::new(body);
    let utf8 = |b: &[u8]| std::str::from_utf8(b).is_ok();
    let ids = |c: &mut Cursor<'_>, each: usize| {
        c.u32()
            .and_then(|n| c.take((n as usize).checked_mul(each)?))
            .is_some()
    };
    let ok = match k {
        kind::QUEUE => c.u32().is_some() && utf8(c.rest()),
        kind::SEND | kind::DEAD | kind::RELOCATE | kind::PUBLISH => {
            crate::engine::record::decode_message(whole).is_some_and(|m| m.get_priority() <= 9)
        }
        kind::DELIVER => c.u32().is_some() && ids(&mut c, 12),
        kind::ACK => c.u32().is_some() && ids(&mut c, 8),
        kind::REMOVE => c.u32().is_some() && c.u8().is_some() && ids(&mut c, 8),
        kind::REQUEUE => c.take(4 + 8 + 4 + 8 + 8).is_some(),
        kind::DEDUP => c.take(4 + 8 + 8).is_some() && utf8(c.rest()),
        kind::PAD => true,
        kind::SUBSCRIBE | kind::UNSUBSCRIBE => crate::engine::record::decode(k, body).is_ok(),
        kind::GROUP => c.u32().is_some() && c.u8().is_some() && utf8(c.rest()),
        kind::TXN if top => {
            for r in records(body) {
                let (at, k2, sub) = r.map_err(|_| "malformed record in a transaction")?;
                let sub_whole = &body[at..at + RECORD_HEADER + sub.len()];
                check_record(k2, sub, sub_whole, false)
                    .map_err(|e| format!("in a transaction: {e}"))?;
            }
            true
        }
        kind::TXN => return Err("nested transaction record".into()),
        _ => return Err(format!("unknown record kind {k}")),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("record of kind {k} does not decode"))
    }
}
