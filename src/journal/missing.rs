//! Recovery's checks of the journal as a chain of files: a segment file that is missing
//! (first, middle or last), a segment that ends before its frames do, a damaged header, a
//! stray file named like a segment. Without `repair` each fails the open with `Corrupt` naming
//! the file; a repair makes the chain whole again so that the next plain open succeeds, and
//! records what was lost.
//!
//! How a missing file is told from one compaction removed (format version 3): segment numbers
//! are consecutive (compaction removes only the oldest, a torn tail only the newest), so a gap
//! is damage; a TRIM mark is made durable before compaction removes segments, and each
//! segment header names the oldest segment of its time, so a journal that starts later than
//! both says is missing its first segments; a SEAL is the last frame of every segment the
//! journal rolled on from, so a last segment that ends with one is missing its successor.

use std::sync::Arc;

use super::frame::*;
use super::recovery::{
    ends_short_msg, load, pad_frame, save_aside, unique_name, Quarantined, Recovery,
};
use super::{segment_name, Journal};
use crate::error::{Error, Result};
use crate::io::{join, VFile};

/// Part of the journal found missing (see [`RecoveryReport::missing`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Missing {
    /// The segment file that is missing, or that ends before its frames do.
    pub file: String,
    /// What is missing, in words.
    pub what: String,
    /// Frames lost with it, or `None` when the journal cannot tell: a missing first or last
    /// segment (no frame number on its other side bounds what it held), every segment gone,
    /// and each but the last of adjacent missing segments (the frame numbers on either side of
    /// the run give only their total, counted once, on the run's last file — its `what` names
    /// the run). A missing middle segment's count is the gap in frame numbers across it; a
    /// segment cut short, the frames between its last one and the next segment's first; a file
    /// found under another segment's name and renamed back, `Some(0)`.
    pub frames_lost: Option<u64>,
}

/// The message for a segment file that is missing (recovery and `verify` say the same).
/// Why a segment whose header names store `theirs` (this store being `ours`) is not this
/// journal's: an open's and `verify`'s words (without the closing parenthesis, where each
/// says what follows).
pub(crate) fn other_store_why(theirs: &str, ours: &str) -> String {
    format!(
        "segment of another store: its header names store {theirs}, this store is {ours} \
         (files of two stores mixed in one directory"
    )
}

pub(crate) fn missing_file_msg(why: &str) -> String {
    format!("segment file is missing: {why}")
}

/// Why segments between `prev` and `n` are missing.
pub(crate) fn gap_why(prev: u64, n: u64) -> String {
    format!(
        "the journal goes from {} to {}",
        segment_name(prev),
        segment_name(n)
    )
}

/// Why segments from `oldest` up to `first` are missing.
pub(crate) fn first_why(first: u64, oldest: u64) -> String {
    format!(
        "the journal starts at {} but compaction removed no segment from {} on",
        segment_name(first),
        segment_name(oldest)
    )
}

/// Why segment `next` after the last one, `tail`, is missing.
pub(crate) fn last_why(tail: u64, next: u64) -> String {
    format!(
        "{} ends with the mark written when {} was created",
        segment_name(tail),
        segment_name(next)
    )
}

/// The message for a segment whose last frames are missing: it ends at frame `s - 1` while
/// `next` (a file name) starts at frame `first`.
pub(crate) fn truncated_msg(s: u64, next: &str, first: u64) -> String {
    format!(
        "segment ends before its last frames: {next} starts at frame {first}, so frames {s}..{} \
         are missing (the file was truncated or overwritten)",
        first - 1
    )
}

/// Appended to the `what` of a missing file whose frame count cannot be known (review r5 #9:
/// a bare `frames_lost: 0` read as "nothing lost").
pub(crate) const UNKNOWN_COUNT: &str =
    "; how many frames it held is unknown (no frame number bounds it on both sides)";

/// In the `what` of each but the last of adjacent missing files: their frames are counted on
/// the last one.
const COUNTED_WITH: &str = "its frames are counted with those of the missing files up to";

/// The suffix of a segment file a repair is renaming back to the name its header gives.
const MOVING: &str = ".moving";

/// The message for a file named like a segment in which nothing checks out.
pub(crate) const STRAY_MSG: &str = "not a journal segment: its header and every frame fail their \
     checks (a stray or overwritten file; a repair moves it aside)";

/// Creates an empty segment `n` (header only, durable) standing in for a missing file.
fn placeholder(j: &Journal, n: u64, oldest: u64) -> Result<Arc<dyn VFile>> {
    let name = segment_name(n);
    let f = j
        .vfs
        .create(&join(&j.dir, &name))
        .map_err(|e| Error::io(format!("creating {name}"), &e))?;
    f.write_at(&segment_header_of(n, (j.now_ms)(), oldest, j.store_id), 0)
        .and_then(|()| f.sync_data())
        .and_then(|()| j.vfs.sync_dir(&j.dir))
        .map_err(|e| Error::io(format!("creating {name}"), &e))?;
    Ok(f)
}

impl Recovery<'_, '_> {
    /// Before replay: every file named like a segment has a sound header (a repair rewrites a
    /// damaged one, keeping the old bytes in a quarantine file, or moves aside a file in which
    /// nothing checks out), and the numbers run without a gap (a repair puts an empty
    /// placeholder where a file is missing).
    pub(super) fn check_files(&mut self) -> Result<()> {
        self.check_stores()?;
        if self.repair {
            self.restore_misplaced()?;
        }
        let count = self.numbers.len();
        let mut kept = Vec::with_capacity(count);
        for (i, n) in std::mem::take(&mut self.numbers).into_iter().enumerate() {
            if self.header_sound(n, i + 1 == count)? {
                kept.push(n);
            }
        }
        let mut numbers = Vec::with_capacity(kept.len());
        for (k, &n) in kept.iter().enumerate() {
            if let Some(&prev) = k.checked_sub(1).and_then(|p| kept.get(p)) {
                for gap in prev + 1..n {
                    self.missing_file(gap, &gap_why(prev, n), 0)?;
                    numbers.push(gap);
                }
            }
            numbers.push(n);
        }
        self.numbers = numbers;
        Ok(())
    }

    /// Repair: gives every segment file whose sound header names another segment the name its
    /// header gives — two files whose contents were exchanged (F16, issue 15 §6), or a file
    /// renamed — so that every frame in it is kept, in order (it used to be replayed out of
    /// order and the frames that did not fit cut out). Only where nothing is clobbered: the
    /// target name is free or itself held by a misplaced file. Each move is reported in
    /// `missing` (the file was missing under its name) with no frame lost. Crash-safe: every
    /// file goes first to `<target>.moving`, then to its target; an interrupted repair is
    /// finished by the next one.
    fn restore_misplaced(&mut self) -> Result<()> {
        let j = &self.j;
        let listing = j
            .vfs
            .list(&j.dir)
            .map_err(|e| Error::io(format!("listing {}", j.dir.display()), &e))?;
        let mut moves: Vec<(String, u64)> = Vec::new();
        // A repair interrupted between its two renames.
        for name in &listing {
            let Some(target) = name
                .strip_suffix(MOVING)
                .and_then(super::parse_segment_name)
            else {
                continue;
            };
            if !self.numbers.contains(&target) {
                moves.push((name.clone(), target));
            }
        }
        let mut named: Vec<(u64, u64)> = Vec::new();
        let mut strays: Vec<(u64, u64)> = Vec::new();
        for &n in &self.numbers {
            if let Some(m) = header_number(j, &segment_name(n))? {
                if m == n {
                    continue;
                }
                // Segment `m` is there under its own name: this file is a stray copy of it (a
                // backup restored beside it, a `cp`), not the journal's — stitched in, its
                // frames broke the sequence and the genuine segment was cut (review r5 #9).
                if self.numbers.contains(&m) && header_number(j, &segment_name(m))? == Some(m) {
                    strays.push((n, m));
                } else {
                    named.push((n, m));
                }
            }
        }
        for (n, m) in strays {
            self.move_stray(
                n,
                &format!("duplicate-of-{}", segment_name(m)),
                &format!("a copy of segment {m}, which is there under its own name"),
            )?;
        }
        let j = &self.j;
        let from: std::collections::HashSet<u64> = named.iter().map(|&(n, _)| n).collect();
        let mut targets = std::collections::HashSet::new();
        let mut dup = std::collections::HashSet::new();
        for &(_, m) in &named {
            if !targets.insert(m) {
                dup.insert(m);
            }
        }
        let mut renames: Vec<(u64, u64)> = named
            .into_iter()
            .filter(|&(_, m)| {
                !dup.contains(&m) && (!self.numbers.contains(&m) || from.contains(&m))
            })
            .collect();
        // A file that stays (its target is not free) keeps the name another one would take.
        loop {
            let moving: std::collections::HashSet<u64> = renames.iter().map(|&(n, _)| n).collect();
            let before = renames.len();
            renames.retain(|&(_, m)| !self.numbers.contains(&m) || moving.contains(&m));
            if renames.len() == before {
                break;
            }
        }
        renames.sort_unstable_by_key(|&(_, m)| m);
        for &(n, m) in &renames {
            let to = format!("{}{MOVING}", segment_name(m));
            j.vfs
                .rename(&join(&j.dir, &segment_name(n)), &join(&j.dir, &to))
                .map_err(|e| Error::io(format!("renaming {} to {to}", segment_name(n)), &e))?;
            moves.push((to, m));
        }
        if moves.is_empty() {
            return Ok(());
        }
        j.vfs
            .sync_dir(&j.dir)
            .map_err(|e| Error::io("fsync of the store directory", &e))?;
        for (name, m) in &moves {
            let target = segment_name(*m);
            j.vfs
                .rename(&join(&j.dir, name), &join(&j.dir, &target))
                .map_err(|e| Error::io(format!("renaming {name} to {target}"), &e))?;
        }
        j.vfs
            .sync_dir(&j.dir)
            .map_err(|e| Error::io("fsync of the store directory", &e))?;
        for &(n, m) in &renames {
            self.numbers.retain(|&x| x != n);
            self.report.missing.push(Missing {
                file: segment_name(m),
                what: format!(
                    "segment file was found as {} (its header names it: the contents of segment \
                     files were exchanged, or a file renamed); the repair renamed it back, every \
                     frame kept",
                    segment_name(n)
                ),
                frames_lost: Some(0),
            });
        }
        for (name, m) in &moves {
            if name.ends_with(MOVING) && !renames.iter().any(|&(_, t)| t == *m) {
                self.report.missing.push(Missing {
                    file: segment_name(*m),
                    what: format!(
                        "segment file was found as {name}, left by a repair interrupted while \
                         renaming it back; the repair finished it, every frame kept"
                    ),
                    frames_lost: Some(0),
                });
            }
        }
        self.numbers.extend(moves.iter().map(|&(_, m)| m));
        self.numbers.sort_unstable();
        self.numbers.dedup();
        Ok(())
    }

    /// Every segment file whose header names another store than this one (a restore that
    /// mixed two stores' files): `Corrupt` naming it and that store, or (repair) moved aside
    /// whole as `quarantine-<n>-of-store-<id>.bin` — its frames were stitched in as this
    /// store's, reported only as frames missing (review r5 #20). A header naming no store (one
    /// written before stores were named) is taken as this store's.
    fn check_stores(&mut self) -> Result<()> {
        let Some(ours) = self.j.store_id else {
            return Ok(());
        };
        for n in self.numbers.clone() {
            let name = segment_name(n);
            let Some(theirs) = header_of(self.j, &name)?.and_then(|(_, h)| header_store(&h)) else {
                continue;
            };
            if theirs == ours {
                continue;
            }
            let theirs = store_id_hex(&theirs);
            let why = other_store_why(&theirs, &store_id_hex(&ours));
            if !self.repair {
                return Err(Error::corrupt(
                    &name,
                    40,
                    &format!("{why}; a repair moves it aside)"),
                ));
            }
            self.move_stray(n, &format!("of-store-{theirs}"), &format!("{why})"))?;
        }
        Ok(())
    }

    /// Repair: moves segment file `n`, which is not part of this journal (`why`), aside whole
    /// as `quarantine-<n>-<tag>.bin` (renamed, not copied or deleted: the bytes are the user's)
    /// and reports it in `quarantined`, no frame of the journal lost.
    fn move_stray(&mut self, n: u64, tag: &str, why: &str) -> Result<()> {
        let j = &self.j;
        let name = segment_name(n);
        let len = j
            .vfs
            .open(&join(&j.dir, &name))
            .and_then(|f| f.len())
            .map_err(|e| Error::io(format!("size of {name}"), &e))?;
        let stem = name.trim_end_matches(".seg");
        let saved_as = unique_name(j, &format!("quarantine-{stem}-{tag}"))?;
        j.vfs
            .rename(&join(&j.dir, &name), &join(&j.dir, &saved_as))
            .and_then(|()| j.vfs.sync_dir(&j.dir))
            .map_err(|e| Error::io(format!("moving {name} aside ({why})"), &e))?;
        self.numbers.retain(|&x| x != n);
        self.report.quarantined.push(Quarantined {
            file: name,
            offset: 0,
            len,
            frames_lost: 0,
            saved_as,
        });
        Ok(())
    }

    /// Whether segment `n` is kept: its header is sound (or a repair made it so), or it is
    /// the last segment and empty behind its header (`run` removes it as incomplete).
    fn header_sound(&mut self, n: u64, last: bool) -> Result<bool> {
        let name = segment_name(n);
        if header_number(self.j, &name)? == Some(n) {
            return Ok(true);
        }
        let seg = load(self.j, n)?;
        if last && seg.buf.iter().skip(SEGMENT_HEADER).all(|&b| b == 0) {
            return Ok(true);
        }
        let err = match check_segment_header(&seg.buf, &name) {
            Ok(num) => Error::corrupt(&name, 16, &format!("header names segment {num}")),
            Err(e) => e,
        };
        let has_frame = recovery_has_frame(&seg.buf);
        if !self.repair {
            return Err(if has_frame {
                err
            } else {
                Error::corrupt(&name, 0, STRAY_MSG)
            });
        }
        let j = &self.j;
        if has_frame {
            // A segment whose header alone is damaged: a new header, the old bytes kept.
            let cut = SEGMENT_HEADER.min(seg.buf.len());
            let saved_as = save_aside(j, &format!("quarantine-{n:016x}-0"), &seg.buf[..cut])?;
            seg.file
                .write_at(&segment_header_of(n, (j.now_ms)(), 0, j.store_id), 0)
                .and_then(|()| seg.file.sync_data())
                .map_err(|e| Error::io(format!("repairing the header of {name}"), &e))?;
            self.report.quarantined.push(Quarantined {
                file: name,
                offset: 0,
                len: cut as u64,
                frames_lost: 0,
                saved_as,
            });
            return Ok(true);
        }
        // Nothing in it is a segment's: moved aside whole (renamed, not copied or deleted).
        let saved_as = unique_name(j, &format!("quarantine-{}", name.trim_end_matches(".seg")))?;
        j.vfs
            .rename(&join(&j.dir, &name), &join(&j.dir, &saved_as))
            .and_then(|()| j.vfs.sync_dir(&j.dir))
            .map_err(|e| Error::io(format!("moving {name} aside"), &e))?;
        self.report.quarantined.push(Quarantined {
            file: name,
            offset: 0,
            // The whole file (`load` read all of it).
            len: seg.buf.len() as u64,
            frames_lost: 0,
            saved_as,
        });
        Ok(false)
    }

    /// Segment `n` is missing: `Corrupt` naming it, or (repair) an empty placeholder.
    fn missing_file(&mut self, n: u64, why: &str, oldest: u64) -> Result<Arc<dyn VFile>> {
        let name = segment_name(n);
        let what = missing_file_msg(why);
        if !self.repair {
            return Err(Error::corrupt(&name, 0, &what));
        }
        let f = placeholder(self.j, n, oldest)?;
        // Unknown until replay finds the frame numbers on both sides (`missing_frames`).
        self.report.missing.push(Missing {
            file: name,
            what,
            frames_lost: None,
        });
        self.placeholders.push(n);
        Ok(f)
    }

    /// After a repair: says so in each missing file's entry whose frame count stayed unknown
    /// (`frames_lost` `None`), unless it is counted with the files after it.
    pub(super) fn name_unknown_counts(&mut self) {
        for m in &mut self.report.missing {
            if m.frames_lost.is_none() && !m.what.contains(COUNTED_WITH) {
                m.what.push_str(UNKNOWN_COUNT);
            }
        }
    }

    /// After replay: the journal starts no later than its TRIM marks and headers say, and does
    /// not end with a SEAL naming a segment that is not there.
    pub(super) fn check_ends(&mut self) -> Result<()> {
        let Some(&first) = self.j.sizes.keys().next() else {
            return Ok(());
        };
        let oldest = self.oldest;
        if oldest > 0 && first > oldest {
            let why = first_why(first, oldest);
            for n in oldest..first {
                let f = self.missing_file(n, &why, oldest)?;
                self.j.files.insert(n, f);
                self.j.sizes.insert(n, SEGMENT_HEADER as u64);
            }
        }
        if let Some(next) = self.sealed.filter(|&n| n > self.j.tail) {
            let why = last_why(self.j.tail, next);
            let f = self.missing_file(next, &why, first.min(oldest.max(1)))?;
            self.j.files.insert(next, f.clone());
            self.j.sizes.insert(next, SEGMENT_HEADER as u64);
            self.j.tail = next;
            self.j.tail_off = SEGMENT_HEADER as u64;
            self.j.tail_current = true;
            self.sealed = None;
            self.count_from_checkpoint(next, &f)?;
        }
        Ok(())
    }

    /// A repair made placeholder `n` for a missing last segment: when the checkpoint of the
    /// last clean close numbers the frames it held (the journal before it ends at frame
    /// `expected - 1`, the checkpoint records more), its `missing` entry gets that count, and a
    /// padding frame in the placeholder makes frame numbers go on after the lost ones.
    fn count_from_checkpoint(&mut self, n: u64, f: &Arc<dyn VFile>) -> Result<()> {
        let (Some(d), Some(s)) = (self.durable.clone(), self.expected) else {
            return Ok(());
        };
        if !d.ends_short(n, s) {
            return Ok(());
        }
        let name = segment_name(n);
        let frame = pad_frame(FRAME_HEADER + RECORD_HEADER + 8, d.next_seq - 1);
        let at = SEGMENT_HEADER as u64;
        f.write_at(&frame, at)
            .and_then(|()| f.sync_data())
            .map_err(|e| Error::io(format!("repairing {name} at {at}"), &e))?;
        let end = at + frame.len() as u64;
        self.j.sizes.insert(n, end);
        self.j.tail_off = end;
        self.expected = Some(d.next_seq);
        let lost = d.next_seq - s;
        if let Some(m) = self
            .report
            .missing
            .iter_mut()
            .rev()
            .find(|m| m.file == name && m.frames_lost.is_none())
        {
            m.frames_lost = Some(lost);
            m.what = format!(
                "{} (frames {s}..{} lost: the CHECKPOINT of the last clean close numbers them)",
                m.what,
                d.next_seq - 1
            );
        }
        Ok(())
    }

    /// After replay: the journal does not end before what the checkpoint of the last clean
    /// close proves had been durable (its `next_seq`, the length it recorded for the tail) —
    /// a last segment cut short, its last frames zeroed or lost (review r12 #1: they were cut
    /// silently as a torn tail). Without `repair`, `Corrupt` naming the segment; a repair
    /// records the loss in `missing` and writes a padding frame numbered just below the
    /// checkpoint's `next_seq`, so that frame numbers go on after the lost ones (never reused).
    /// A journal ending with a SEAL is left to `check_ends` (its successor is missing).
    pub(super) fn check_durable_end(&mut self) -> Result<()> {
        let Some(d) = self.durable.clone() else {
            return Ok(());
        };
        let (tail, at) = (self.j.tail, self.j.tail_off);
        let short = match self.expected {
            Some(s) => d.ends_short(tail, s),
            None => d.held_frames(tail, at),
        };
        if self.sealed.is_some_and(|n| n > tail) || !short || self.j.sizes.is_empty() {
            return Ok(());
        }
        let s = self.expected;
        let name = segment_name(tail);
        let what = ends_short_msg(s, d.next_seq, self.cut);
        if !self.repair {
            return Err(Error::corrupt(&name, at, &what));
        }
        // Frame numbers go on after the lost ones.
        if d.next_seq > 1 {
            let frame = pad_frame(FRAME_HEADER + RECORD_HEADER + 8, d.next_seq - 1);
            let f = self.j.files.get(tail).ok_or_else(Error::closed)?;
            f.write_at(&frame, at)
                .and_then(|()| f.sync_data())
                .map_err(|e| Error::io(format!("repairing {name} at {at}"), &e))?;
            let end = at + frame.len() as u64;
            let size = self.j.sizes.entry(tail).or_insert(end);
            *size = (*size).max(end);
            self.j.tail_off = end;
            self.expected = Some(d.next_seq);
        }
        self.report.missing.push(Missing {
            file: name,
            what,
            frames_lost: s.map(|s| d.next_seq - s),
        });
        Ok(())
    }

    /// The segment before `next` (the tail so far) ends at frame `s - 1` while `next` starts
    /// at frame `first`: `Corrupt` naming it, or (repair) a padding frame at its end bridging
    /// the lost frames.
    pub(super) fn missing_frames(&mut self, next: &str, s: u64, first: u64) -> Result<()> {
        let prev = self.j.tail;
        let name = segment_name(prev);
        let what = truncated_msg(s, next, first);
        let at = self.j.tail_off;
        if !self.repair {
            return Err(Error::corrupt(&name, at, &what));
        }
        let frame = pad_frame(FRAME_HEADER + RECORD_HEADER + 8, first - 1);
        let f = self.j.files.get(prev).ok_or_else(Error::closed)?;
        f.write_at(&frame, at)
            .and_then(|()| f.sync_data())
            .map_err(|e| Error::io(format!("repairing {name} at {at}"), &e))?;
        let end = at + frame.len() as u64;
        let size = self.j.sizes.entry(prev).or_insert(end);
        *size = (*size).max(end);
        self.j.tail_off = end;
        let lost = first - s;
        let frames = format!("frames {s}..{} lost", first - 1);
        // The placeholders this repair made for missing files just before `next`: the frames
        // lost are theirs, one loss, counted once (not again as a segment cut short). Adjacent
        // missing files share one gap in frame numbers: its total goes on the last of them.
        let mut run = prev;
        while run > 0 && self.placeholders.contains(&(run - 1)) {
            run -= 1;
        }
        if self.placeholders.contains(&prev) {
            let last = segment_name(prev);
            for m in self.report.missing.iter_mut() {
                let Some(k) = super::parse_segment_name(&m.file) else {
                    continue;
                };
                if k == prev && m.frames_lost.is_none() {
                    m.frames_lost = Some(lost);
                    m.what = if run < prev {
                        format!(
                            "{} ({frames} in {}..{last} together, counted here)",
                            m.what,
                            segment_name(run)
                        )
                    } else {
                        format!("{} ({frames})", m.what)
                    };
                } else if (run..prev).contains(&k) && m.frames_lost.is_none() {
                    m.what = format!("{} ({COUNTED_WITH} {last}, in {last}'s entry)", m.what);
                }
            }
        } else {
            self.report.missing.push(Missing {
                file: name,
                what,
                frames_lost: Some(lost),
            });
        }
        self.expected = Some(first);
        Ok(())
    }
}

/// Whether any sound frame is in `b`.
fn recovery_has_frame(b: &[u8]) -> bool {
    super::recovery::next_valid(b, 0).is_some()
}

/// The header of segment file `name` and the segment number it gives, when it passes its
/// checks (`None`: short or unsound).
fn header_of(j: &Journal, name: &str) -> Result<Option<(u64, [u8; SEGMENT_HEADER])>> {
    let f = j
        .vfs
        .open(&join(&j.dir, name))
        .map_err(|e| Error::io(format!("opening {name}"), &e))?;
    let len = f
        .len()
        .map_err(|e| Error::io(format!("size of {name}"), &e))?;
    if len < SEGMENT_HEADER as u64 {
        return Ok(None);
    }
    let mut head = [0u8; SEGMENT_HEADER];
    f.read_at(&mut head, 0)
        .map_err(|e| Error::io(format!("reading {name}"), &e))?;
    Ok(check_segment_header(&head, name).ok().map(|n| (n, head)))
}

/// The segment number the header of segment file `name` gives, or `None` when the header is
/// short or unsound (the caller decides what that means: a rename source or damage).
fn header_number(j: &Journal, name: &str) -> Result<Option<u64>> {
    Ok(header_of(j, name)?.map(|(n, _)| n))
}
