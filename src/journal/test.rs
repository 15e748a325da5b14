//! Unit tests of the journal (as fjall's `src/journal/test.rs`): write, roll, reopen, mangle,
//! repair, and the decisions recovery makes, on the in-memory fault-injecting file layer of the
//! integration tests (`tests/common/fault.rs`).

#[path = "../../tests/common/fault.rs"]
mod fault;

use std::path::Path;

use super::frame::{put_record_header, records, FRAME_HEADER, RECORD_HEADER, SEGMENT_HEADER};
use super::{segment_name, Journal, Placed, Written};
use crate::error::ErrorKind;
use fault::{CrashMode, FaultFs, Rng};

/// (segment, record offset, record length, kind, body) as recovery replays it.
type Replayed = Vec<(u64, u64, u32, u8, Vec<u8>)>;

const DIR: &str = "/store";
const KIND: u8 = 2;

fn open(
    fs: &FaultFs,
    seg_bytes: u64,
    repair: bool,
) -> crate::Result<(Journal, Replayed, super::RecoveryReport)> {
    let mut got = Vec::new();
    let (j, report) = Journal::open(
        fs.vfs(),
        Path::new(DIR),
        seg_bytes,
        repair,
        Box::new(|| 1_000),
        &mut |seg, off, len, k, body| {
            got.push((seg, off, len, k, body.to_vec()));
            Ok(())
        },
    )?;
    Ok((j, got, report))
}

/// Writes 40 synced batches of 5 bodies of 300 B into a journal of 16 KiB segments (more than
/// four segments, for the tests that damage one in the middle) and closes it; the bodies written.
fn fill_segments(fs: &FaultFs) -> Vec<Vec<u8>> {
    let (mut j, _, _) = open(fs, 16 << 10, false).unwrap();
    let mut written = Vec::new();
    for tag in 0..40 {
        let (buf, bodies) = batch(tag, 5, 300);
        write_synced(&mut j, &buf);
        written.extend(bodies);
    }
    assert!(j.segments().len() > 4);
    written
}

/// A batch of `n` records whose bodies name `tag` and their index.
fn batch(tag: u32, n: u32, body_len: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut buf = Vec::new();
    let mut bodies = Vec::new();
    for i in 0..n {
        let mut body = format!("{tag}:{i}:").into_bytes();
        body.resize(body_len.max(body.len()), b'x');
        put_record_header(&mut buf, KIND, body.len());
        buf.extend_from_slice(&body);
        bodies.push(body);
    }
    (buf, bodies)
}

/// Writes a batch and syncs it; returns where its parts landed.
fn write_synced(j: &mut Journal, buf: &[u8]) -> Vec<Placed> {
    let mut placed = Vec::new();
    assert!(matches!(
        j.write(buf, &mut placed, false).unwrap(),
        Written::All
    ));
    j.sync().unwrap();
    placed
}

#[test]
fn write_roll_reopen_replays_every_record_where_it_was_placed() {
    let fs = FaultFs::new();
    let (mut j, got, _) = open(&fs, 16 << 10, false).unwrap();
    assert!(got.is_empty());
    let mut want = Vec::new();
    for tag in 0..40 {
        let (buf, bodies) = batch(tag, 5, 300);
        let placed = write_synced(&mut j, &buf);
        // Where each record landed, from the placement of its part of the buffer.
        for (at, _, body) in records(&buf).map(|r| r.unwrap()) {
            let p = placed
                .iter()
                .find(|p| p.buf_start <= at && at < p.buf_end)
                .expect("placed");
            let off = p.file_off + (at - p.buf_start) as u64;
            want.push((
                p.seg,
                off,
                (RECORD_HEADER + body.len()) as u32,
                KIND,
                body.to_vec(),
            ));
        }
        assert_eq!(bodies.len(), 5);
    }
    assert!(
        j.segments().len() > 3,
        "40 batches of 1.5 KiB roll 16 KiB segments"
    );
    drop(j);
    let (j, got, report) = open(&fs, 16 << 10, false).unwrap();
    assert_eq!(
        got, want,
        "every record, in order, at the offset it was placed at"
    );
    assert_eq!(report.records, want.len() as u64);
    assert!(report.torn_tail.is_none() && report.quarantined.is_empty());
    assert_eq!(j.segments().len(), report.segments);
}

#[test]
fn a_record_larger_than_a_segment_gets_one_of_its_own() {
    let fs = FaultFs::new();
    let (mut j, _, _) = open(&fs, 16 << 10, false).unwrap();
    let (small, _) = batch(1, 1, 10);
    write_synced(&mut j, &small);
    let (big, _) = batch(2, 1, 100 << 10);
    let placed = write_synced(&mut j, &big);
    assert_eq!(placed.len(), 1, "one frame, never split inside a record");
    assert_eq!(placed[0].file_off, (SEGMENT_HEADER + FRAME_HEADER) as u64);
    assert!(j.segment_size(placed[0].seg) >= 100 << 10);
    drop(j);
    let (_, got, _) = open(&fs, 16 << 10, false).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].4.len(), 100 << 10);
}

#[test]
fn an_unsynced_tail_is_cut_and_writing_goes_on_behind_it() {
    let fs = FaultFs::new();
    let (mut j, _, _) = open(&fs, 64 << 10, false).unwrap();
    let (a, _) = batch(1, 3, 50);
    write_synced(&mut j, &a);
    let (b, _) = batch(2, 3, 50);
    let mut placed = Vec::new();
    j.write(&b, &mut placed, false).unwrap(); // never synced
    drop(j);
    // A power loss that tears the unsynced frame: it was never acknowledged.
    let mut rng = Rng::new(7);
    let img = fs.crash_image(CrashMode::TornLast { sector: 512 }, &mut rng);
    let (mut j, got, report) = open(&img, 64 << 10, false).unwrap();
    assert_eq!(got.len(), 3, "only the synced batch");
    let torn = report.torn_tail.expect("a torn tail");
    assert_eq!(torn.file, segment_name(1));
    assert_eq!(torn.offset, placed[0].file_off - FRAME_HEADER as u64);
    let (c, _) = batch(3, 2, 50);
    write_synced(&mut j, &c);
    drop(j);
    let (_, got, report) = open(&img, 64 << 10, false).unwrap();
    assert_eq!(got.len(), 5, "the new batch follows the cut");
    assert!(report.torn_tail.is_none());
}

/// Damage that a later frame proves had been durable is corruption, never a torn tail: it is
/// refused naming the file and offset, and `repair` quarantines exactly that frame.
#[test]
fn proven_durable_damage_is_corrupt_and_repair_quarantines_it() {
    let fs = FaultFs::new();
    let (mut j, _, _) = open(&fs, 64 << 10, false).unwrap();
    let mut frames = Vec::new();
    for tag in 0..3 {
        let (buf, _) = batch(tag, 2, 40);
        frames.push(write_synced(&mut j, &buf)[0]);
    }
    drop(j);
    let name = segment_name(1);
    let mut seg = fs.read(&name).unwrap();
    let mid = frames[1].file_off as usize + 3; // inside the second frame's payload
    seg[mid] ^= 0x40;
    fs.put(&name, seg);
    let e = open(&fs, 64 << 10, false)
        .err()
        .expect("corruption is refused");
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    let frame_start = frames[1].file_off - FRAME_HEADER as u64;
    assert!(
        e.message().contains(&name) && e.message().contains(&format!("offset {frame_start}")),
        "{e}"
    );
    let (_, got, report) = open(&fs, 64 << 10, true).unwrap();
    let kinds: Vec<u8> = got.iter().map(|r| r.3).collect();
    assert_eq!(
        kinds,
        vec![KIND, KIND, super::frame::PAD_KIND, KIND, KIND],
        "the first and third frames, and the padding written over the second"
    );
    assert_eq!(report.quarantined.len(), 1);
    let q = &report.quarantined[0];
    assert_eq!(
        (q.file.as_str(), q.offset, q.frames_lost),
        (name.as_str(), frame_start, 1)
    );
    assert!(fs.read(&q.saved_as).is_some(), "the cut bytes are kept");
    // The repair is durable: a plain open now works and replays the same.
    let (_, again, _) = open(&fs, 64 << 10, false).unwrap();
    assert_eq!(again, got);
}

#[test]
fn a_last_segment_whose_creation_never_completed_is_removed() {
    let fs = FaultFs::new();
    let (mut j, _, _) = open(&fs, 64 << 10, false).unwrap();
    let (a, _) = batch(1, 2, 10);
    write_synced(&mut j, &a);
    drop(j);
    fs.put(&segment_name(2), vec![0; 4096]); // a header that never became durable
    let (j, got, report) = open(&fs, 64 << 10, false).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(report.removed_incomplete_segments, vec![segment_name(2)]);
    assert_eq!(j.segments(), vec![1]);
}

#[test]
fn a_segment_of_another_format_version_is_refused_naming_both() {
    let fs = FaultFs::new();
    let (mut j, _, _) = open(&fs, 64 << 10, false).unwrap();
    let (a, _) = batch(1, 1, 10);
    write_synced(&mut j, &a);
    drop(j);
    let name = segment_name(1);
    let mut seg = fs.read(&name).unwrap();
    seg[8..12].copy_from_slice(&7u32.to_le_bytes());
    let crc = crc32c::crc32c(&seg[0..60]);
    seg[60..64].copy_from_slice(&crc.to_le_bytes());
    fs.put(&name, seg);
    let e = open(&fs, 64 << 10, false).err().expect("refused");
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(
        e.message().contains("format version 7")
            && e.message()
                .contains(&format!("version {}", super::frame::VERSION)),
        "{e}"
    );
}

fn tag_of(body: &[u8]) -> u32 {
    let end = body.iter().position(|&b| b == b':').unwrap();
    std::str::from_utf8(&body[..end]).unwrap().parse().unwrap()
}

#[test]
fn without_the_reserve_a_full_disk_refuses_the_whole_batch() {
    let fs = FaultFs::new();
    let (mut j, _, _) = open(&fs, 64 << 10, false).unwrap();
    for tag in 10..20 {
        let (buf, _) = batch(tag, 4, 1000);
        write_synced(&mut j, &buf);
    }
    // The next batch does not fit in the tail, and there is no room for a new segment.
    fs.set_capacity(Some(fs.used()));
    let (big, _) = batch(2, 20, 1000);
    let mut placed = Vec::new();
    match j.write(&big, &mut placed, false).unwrap() {
        Written::NoSpace(e) => assert_eq!(e.kind(), ErrorKind::NoSpace),
        Written::All | Written::Partial(..) => panic!("written on a full disk"),
    }
    assert!(placed.is_empty(), "nothing of a refused batch is written");
    // Settles still fit in the reserve kept at the end of every segment.
    let (small, _) = batch(3, 1, 10);
    assert!(matches!(
        j.write(&small, &mut placed, true).unwrap(),
        Written::All
    ));
    j.sync().unwrap();
    fs.set_capacity(None);
    drop(j);
    let (_, got, _) = open(&fs, 64 << 10, false).unwrap();
    let tags: Vec<u32> = got.iter().map(|r| tag_of(&r.4)).collect();
    let mut want: Vec<u32> = (10..20).flat_map(|t| [t; 4]).collect();
    want.push(3);
    assert_eq!(tags, want);
}

/// Compaction's copies on a disk with no room for a whole segment (issue 15 §5): a short
/// segment sized to them when the disk has that much; else at most half the tail's reserve,
/// all or nothing; else nothing. Recovery reads a short segment as any other.
#[test]
fn copies_on_a_full_disk_take_a_short_segment_or_half_the_reserve() {
    let fs = FaultFs::new();
    let seg = 64 << 10;
    let (mut j, _, _) = open(&fs, seg, false).unwrap();
    for tag in 10..20 {
        let (buf, _) = batch(tag, 4, 1000);
        write_synced(&mut j, &buf);
    }
    let reserve = j.reserve() as usize; // 8 KiB
                                        // 18 KB of copies do not fit in the tail (about 15 KB left before its reserve); the disk
                                        // has room for a short segment for them, not for a whole one.
    let (copies, _) = batch(4, 3, 6000);
    let short = j.short_segment_bytes(copies.len());
    assert!(short < seg / 2, "{short}");
    fs.set_capacity(Some(fs.used() + short));
    let mut placed = Vec::new();
    let (big, _) = batch(2, 20, 1000);
    assert!(matches!(
        j.write(&big, &mut placed, false).unwrap(),
        Written::NoSpace(_)
    ));
    let before = j.segments();
    assert!(matches!(
        j.write_copies(&copies, &mut placed).unwrap(),
        Written::All
    ));
    j.sync().unwrap();
    let now = j.segments();
    assert_eq!(now.len(), before.len() + 1, "a new (short) segment");
    assert_eq!(j.segment_size(j.tail()), short);
    // No room at all: copies up to half the reserve borrow it, larger ones are refused whole.
    fs.set_capacity(Some(fs.used()));
    let (too_big, _) = batch(6, 1, reserve / 2 + 100);
    placed.clear();
    let before = (j.segments(), j.segment_size(j.tail()), fs.used());
    let w = j.write_copies(&too_big, &mut placed).unwrap();
    assert!(
        matches!(w, Written::NoSpace(_)),
        "{w:?} {before:?} {:?} {placed:?} {}",
        (j.segments(), j.segment_size(j.tail()), fs.used()),
        too_big.len()
    );
    assert!(placed.is_empty(), "nothing of refused copies is written");
    let (small, _) = batch(5, 2, reserve / 8);
    assert!(matches!(
        j.write_copies(&small, &mut placed).unwrap(),
        Written::All
    ));
    j.sync().unwrap();
    assert_eq!(j.segments(), now, "into the tail's reserve");
    // What is left of the reserve still takes settles.
    let (settle, _) = batch(3, 1, 10);
    assert!(matches!(
        j.write(&settle, &mut placed, true).unwrap(),
        Written::All
    ));
    j.sync().unwrap();
    fs.set_capacity(None);
    drop(j);
    let (_, got, _) = open(&fs, seg, false).unwrap();
    let tags: Vec<u32> = got.iter().map(|r| tag_of(&r.4)).collect();
    let mut want: Vec<u32> = (10..20).flat_map(|t| [t; 4]).collect();
    want.extend([4, 4, 4, 5, 5, 3]);
    assert_eq!(tags, want);
}

#[test]
fn the_tail_is_never_removed() {
    let fs = FaultFs::new();
    let (mut j, _, _) = open(&fs, 16 << 10, false).unwrap();
    for tag in 0..20 {
        let (buf, _) = batch(tag, 4, 400);
        write_synced(&mut j, &buf);
    }
    let segs = j.segments();
    assert!(segs.len() > 2);
    j.remove_segment(j.tail()).unwrap();
    assert_eq!(j.segments(), segs);
    j.remove_segment(segs[0]).unwrap();
    assert_eq!(j.segments(), segs[1..]);
    assert!(fs.read(&segment_name(segs[0])).is_none());
}

/// A roll refused for space part way (ENOSPC at the k-th call of each file operation a roll
/// makes: creating the segment, reserving its room, writing its header, growing the old tail
/// for its SEAL, writing the SEAL) is retried by the next write: the retry must not leave a
/// second header, a stray segment or a SEAL naming a segment that never got its records, and
/// recovery (a plain reopen and a power-loss image) finds exactly the records acknowledged.
#[test]
fn a_roll_refused_for_space_part_way_is_retried_cleanly() {
    use fault::{Fault, Op};
    let mut cases = 0;
    // One failure at a time, and a failed roll whose clean-up removal fails too (the file it
    // created stays behind: the retry finds its name taken).
    let mut plans: Vec<Vec<(Op, u64)>> = Vec::new();
    for k in 1..=4u64 {
        for op in [Op::Create, Op::Allocate, Op::Write] {
            plans.push(vec![(op, k)]);
        }
        plans.push(vec![(Op::Allocate, k), (Op::Remove, 1)]);
        plans.push(vec![(Op::Write, k), (Op::Remove, 1)]);
    }
    for plan in plans {
        let (op, k) = (plan[0].0, plan[0].1);
        let op = format!("{op:?}{}", if plan.len() > 1 { "+Remove" } else { "" });
        {
            let fs = FaultFs::new();
            let (mut j, _, _) = open(&fs, 16 << 10, false).unwrap();
            let mut acked: Vec<u32> = Vec::new();
            let (first, _) = batch(0, 4, 400);
            write_synced(&mut j, &first);
            acked.extend([0; 4]);
            // From here each file operation's k-th call fails once with ENOSPC.
            fs.reset_counts();
            for &(op, nth) in &plan {
                fs.add_fault(Fault {
                    op,
                    nth,
                    errno: libc::ENOSPC,
                    persistent: false,
                });
            }
            let mut refused = 0;
            for tag in 1..40 {
                let (buf, _) = batch(tag, 4, 400);
                let mut placed = Vec::new();
                let n = match j.write(&buf, &mut placed, false) {
                    Ok(Written::All) => 4,
                    Ok(Written::NoSpace(_)) => {
                        refused += 1;
                        0
                    }
                    Ok(Written::Partial(n, _)) => {
                        refused += 1;
                        records(&buf[..n]).count()
                    }
                    Err(e) => panic!("{op} #{k}: ENOSPC poisoned the journal: {e}"),
                };
                j.sync()
                    .unwrap_or_else(|e| panic!("{op} #{k}: sync after a refused roll: {e}"));
                acked.extend(std::iter::repeat_n(tag, n));
            }
            cases += usize::from(refused > 0);
            assert!(j.segments().len() > 3, "{op} #{k}: the writes rolled");
            drop(j);
            let mut rng = Rng::new(k);
            for img in [
                fs.crash_image(CrashMode::SyncedOnly, &mut rng),
                fs.crash_image(CrashMode::ProcessCrash, &mut rng),
            ] {
                let (j, got, report) = open(&img, 16 << 10, false)
                    .unwrap_or_else(|e| panic!("{op} #{k}: reopen: {e}"));
                let tags: Vec<u32> = got.iter().map(|r| tag_of(&r.4)).collect();
                assert_eq!(
                    tags, acked,
                    "{op} #{k}: the records acknowledged, once each"
                );
                assert!(
                    report.torn_tail.is_none() && report.quarantined.is_empty(),
                    "{op} #{k}: {report:?}"
                );
                // Every segment file left is one the journal knows, each with one header.
                let mut names: Vec<String> = img
                    .names()
                    .into_iter()
                    .filter(|n| n.ends_with(".seg"))
                    .collect();
                names.sort();
                let known: Vec<String> = j.segments().iter().map(|&s| segment_name(s)).collect();
                assert_eq!(names, known, "{op} #{k}: stray segment files");
            }
        }
    }
    assert!(cases > 4, "the faults hit rolls in {cases} cases only");
}

/// F16: two segment files whose contents were exchanged (2 ↔ 3) are refused without `repair`,
/// naming the file. A repair used to replay them out of order and cut out the frames that did
/// not fit (and, its padding taking the next segment's first frame number, the sound first
/// frame of segment 4 too): good frames destroyed. It renames the files back: every frame is
/// kept, in order, the report says what it did with nothing lost, and a plain open follows.
#[test]
fn repair_of_swapped_segments_keeps_every_frame() {
    let fs = FaultFs::new();
    let written = fill_segments(&fs);
    let (a, b) = (segment_name(2), segment_name(3));
    let (da, db) = (fs.read(&a).unwrap(), fs.read(&b).unwrap());
    fs.put(&a, db);
    fs.put(&b, da);
    let e = open(&fs, 16 << 10, false).err().expect("refused");
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.message().contains(&a), "{e}");
    let (_, got, report) = open(&fs, 16 << 10, true).expect("repair");
    let bodies: Vec<Vec<u8>> = got
        .into_iter()
        .filter(|r| r.3 == KIND)
        .map(|r| r.4)
        .collect();
    assert_eq!(bodies, written, "every record, in order");
    assert!(report.quarantined.is_empty(), "{report:?}");
    let files: Vec<&str> = report.missing.iter().map(|m| m.file.as_str()).collect();
    assert_eq!(files, vec![a.as_str(), b.as_str()], "{report:?}");
    assert!(
        report.missing.iter().all(|m| m.frames_lost == Some(0)),
        "{report:?}"
    );
    assert!(report.missing[0].what.contains(&b), "{report:?}");
    let (_, again, report) = open(&fs, 16 << 10, false).expect("a plain open after the repair");
    assert_eq!(again.iter().filter(|r| r.3 == KIND).count(), written.len());
    assert_eq!(report.missing, vec![]);
    assert!(
        fs.names().iter().all(|n| !n.ends_with(".moving")),
        "{:?}",
        fs.names()
    );
}

/// A repair interrupted between its two renames (a file left as `<segment>.moving`) is
/// finished by the next repair, every frame kept.
#[test]
fn an_interrupted_rename_back_is_finished_by_the_next_repair() {
    let fs = FaultFs::new();
    let written = fill_segments(&fs).len();
    let a = segment_name(2);
    let da = fs.read(&a).unwrap();
    fs.delete(&a);
    fs.put(&format!("{a}.moving"), da);
    assert_eq!(
        open(&fs, 16 << 10, false).err().expect("refused").kind(),
        ErrorKind::Corrupt
    );
    let (_, got, report) = open(&fs, 16 << 10, true).expect("repair");
    assert_eq!(got.iter().filter(|r| r.3 == KIND).count(), written);
    assert_eq!(report.missing.len(), 1, "{report:?}");
    assert_eq!(report.missing[0].frames_lost, Some(0), "{report:?}");
    assert!(report.quarantined.is_empty(), "{report:?}");
}

/// Garbage behind the last frame of a segment (proven damage: later segments hold frames) is
/// cut out by a repair — but no sequence number is missing, so a padding frame there took the
/// number of the next segment's first frame, and that sound frame was cut next. The range is
/// zeroed instead: every frame is kept and the report drops none.
#[test]
fn repair_of_garbage_behind_a_segments_last_frame_keeps_the_next_segments_first_frame() {
    let fs = FaultFs::new();
    let written = fill_segments(&fs).len();
    let a = segment_name(2);
    let mut da = fs.read(&a).unwrap();
    let end = super::recovery::data_end(&da);
    assert!(end + 100 < da.len(), "room behind the last frame");
    da[end + 10..end + 60].fill(0xA5);
    fs.put(&a, da);
    assert_eq!(
        open(&fs, 16 << 10, false).err().expect("refused").kind(),
        ErrorKind::Corrupt
    );
    let (_, got, report) = open(&fs, 16 << 10, true).expect("repair");
    assert_eq!(
        got.iter().filter(|r| r.3 == KIND).count(),
        written,
        "{report:?}"
    );
    assert_eq!(report.quarantined.len(), 1, "{report:?}");
    assert_eq!(report.quarantined[0].frames_lost, 0, "{report:?}");
    assert!(report.missing.is_empty(), "{report:?}");
    let (_, again, _) = open(&fs, 16 << 10, false).expect("a plain open after the repair");
    assert_eq!(again.iter().filter(|r| r.3 == KIND).count(), written);
}
