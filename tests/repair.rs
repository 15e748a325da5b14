//! Repair keeps what it can and says what it dropped; what it keeps, the next plain open finds.
mod common;
use common::*;
use mqlite::*;

/// The frame that held a queue's declaration is damaged: repair used to fail with "messages for
/// undeclared queue 0". It keeps the queue's surviving messages under a placeholder name,
/// reports it, and declares it durably, so the next plain open works.
#[test]
fn repair_keeps_messages_whose_queue_declaration_was_damaged() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("orders").unwrap();
    for i in 0..5 {
        q.send(format!("m{i}")).unwrap(); // the declaration was its own (first) commit
    }
    drop(q);
    s.close().unwrap();
    let seg = env.dir.path().join("0000000000000001.seg");
    let mut b = std::fs::read(&seg).unwrap();
    b[64 + 40] ^= 0xff; // inside the first frame
    std::fs::write(&seg, &b).unwrap();
    let e = Store::open(env.dir.path(), env.opts()).expect_err("damage");
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    let s = env.open_with(|o| o.repair = true);
    let r = s.recovery_report();
    assert_eq!(r.lost_queues, ["__lost_queue_0"], "{r:?}");
    assert_eq!(r.quarantined.len(), 1, "{r:?}");
    let lost = s.queue("__lost_queue_0").unwrap();
    assert_eq!(lost.stats().unwrap().messages, 5);
    drop(lost);
    s.close().unwrap();
    // Repair sticks: a plain open finds the queue and its messages.
    let s = env.open();
    assert!(s.recovery_report().lost_queues.is_empty());
    assert_eq!(
        drain(&s.queue("__lost_queue_0").unwrap()),
        ["m0", "m1", "m2", "m3", "m4"]
    );
}

/// Repairing the same place twice keeps both quarantine files: the second repair used to
/// overwrite the first, destroying the bytes it saved.
#[test]
fn a_second_repair_never_overwrites_a_quarantine_file() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    for i in 0..5 {
        q.send(format!("m{i}")).unwrap();
    }
    drop(q);
    s.close().unwrap();
    let seg = env.dir.path().join("0000000000000001.seg");
    let damage = || {
        let mut b = std::fs::read(&seg).unwrap();
        b[64 + 40] ^= 0xff;
        std::fs::write(&seg, &b).unwrap();
    };
    damage();
    let first = env.open_with(|o| o.repair = true);
    let saved1 = first.recovery_report().quarantined[0].saved_as.clone();
    first.close().unwrap();
    let bytes1 = std::fs::read(env.dir.path().join(&saved1)).unwrap();
    damage();
    let second = env.open_with(|o| o.repair = true);
    let saved2 = second.recovery_report().quarantined[0].saved_as.clone();
    second.close().unwrap();
    assert_ne!(saved1, saved2);
    assert_eq!(
        std::fs::read(env.dir.path().join(&saved1)).unwrap(),
        bytes1,
        "the first quarantine file was changed"
    );
    assert!(env.dir.path().join(&saved2).exists());
    env.open().close().unwrap();
}

fn segment_files(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    v.sort();
    v
}

/// Review r5 #8: every segment deleted while `CHECKPOINT` and `STORE_ID` remain. The default
/// open used to make a new, empty store over the old one's files (and `create: false` called it
/// "no store"). Now: `Corrupt` naming the missing segments (the checkpoint's range), the
/// directory left as it was; a repair accepts the loss, reports each segment in `missing`, keeps
/// the store's identity and numbers its new journal after the lost segments.
#[test]
fn every_segment_deleted_is_corrupt_and_a_repair_reports_them_missing() {
    let env = Env::new();
    let s = Store::open(
        env.dir.path(),
        StoreOptions {
            segment_bytes: 4 << 10,
            ..env.opts()
        },
    )
    .unwrap();
    let id = s.id().to_string();
    let q = s.queue("q").unwrap();
    for i in 0..60 {
        q.send(format!("message {i:04} {}", "x".repeat(200)))
            .unwrap();
    }
    drop(q);
    s.close().unwrap();
    let segs = segment_files(env.dir.path());
    assert!(segs.len() >= 3, "{segs:?}");
    let (first, last) = (segs[0].clone(), segs[segs.len() - 1].clone());
    for seg in &segs {
        std::fs::remove_file(env.dir.path().join(seg)).unwrap();
    }
    assert!(env.dir.path().join("CHECKPOINT").exists());
    for create in [true, false] {
        let e = Store::open(
            env.dir.path(),
            StoreOptions {
                create,
                ..env.opts()
            },
        )
        .expect_err("every segment is missing");
        assert_eq!(e.kind(), ErrorKind::Corrupt, "create {create}: {e}");
        let m = e.message();
        assert!(m.contains(&format!("{first}..{last}")), "{e}");
        assert!(m.contains("segment file is missing"), "{e}");
        assert!(m.contains("repair"), "{e}");
        // Nothing was made in its place.
        assert!(segment_files(env.dir.path()).is_empty(), "create {create}");
    }
    let s = Store::open(
        env.dir.path(),
        StoreOptions {
            repair: true,
            ..env.opts()
        },
    )
    .unwrap();
    let r = s.recovery_report().clone();
    let missing: Vec<&str> = r.missing.iter().map(|m| m.file.as_str()).collect();
    assert_eq!(missing, segs, "{r:?}");
    assert!(
        r.missing[0].what.contains("every journal segment is gone"),
        "{r:?}"
    );
    assert!(
        r.missing
            .iter()
            .all(|m| m.frames_lost.is_none() && m.what.contains("unknown")),
        "{r:?}"
    );
    assert!(
        r.checkpoint_ignored.is_some() && !r.checkpoint_used,
        "{r:?}"
    );
    assert_eq!(s.id(), id, "the store keeps its identity");
    assert_eq!(s.queue("q").unwrap().stats().unwrap().messages, 0);
    s.queue("q").unwrap().send("after").unwrap();
    s.close().unwrap();
    // The new journal is numbered after the lost one, and the next plain open is clean.
    let after = segment_files(env.dir.path());
    assert!(after.iter().all(|n| n > &last), "{after:?} after {last}");
    let s = env.open();
    assert!(s.recovery_report().missing.is_empty());
    assert_eq!(drain(&s.queue("q").unwrap()), ["after"]);
}

/// Without a checkpoint (the store did not close cleanly), `STORE_ID` alone still tells that
/// the directory held a store whose segments are all gone.
#[test]
fn every_segment_deleted_without_a_checkpoint_is_corrupt_too() {
    let env = Env::new();
    let s = env.open();
    let id = s.id().to_string();
    s.queue("q").unwrap().send("m").unwrap();
    s.close().unwrap();
    std::fs::remove_file(env.dir.path().join("CHECKPOINT")).unwrap();
    for seg in segment_files(env.dir.path()) {
        std::fs::remove_file(env.dir.path().join(seg)).unwrap();
    }
    let e = Store::open(env.dir.path(), env.opts()).expect_err("every segment is missing");
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.message().contains("STORE_ID"), "{e}");
    let s = env.open_with(|o| o.repair = true);
    let r = s.recovery_report();
    assert_eq!(r.missing.len(), 1, "{r:?}");
    assert_eq!(r.checkpoint_ignored, None, "no checkpoint was there: {r:?}");
    assert_eq!(s.id(), id);
}

// ---- review r12 #1: the last frames of a store closed cleanly are durable, not a torn tail ----

/// The frame offsets of a segment file (64-byte header, then frames of a 32-byte header whose
/// bytes 4..8 give the payload length), and where the last one ends.
fn frames_of(b: &[u8]) -> (Vec<usize>, usize) {
    let mut pos = 64;
    let mut v = Vec::new();
    while pos + 32 <= b.len() && &b[pos..pos + 4] == b"MQF1" {
        v.push(pos);
        pos += 32 + u32::from_le_bytes(b[pos + 4..pos + 8].try_into().unwrap()) as usize;
    }
    (v, pos)
}

/// r12 #1's store: one queue, then 50 messages sent in one batch (one frame, the last of the
/// journal, as `mqlite import` writes them), closed cleanly (its CHECKPOINT written). Returns
/// the segment's path and the last frame's `[start, end)`.
fn fifty_in_the_last_frame(env: &Env) -> (std::path::PathBuf, usize, usize) {
    let s = env.open();
    let q = s.queue("q").unwrap();
    q.send("before").unwrap();
    q.send_batch((0..50).map(|i| Message::new(format!("msg{i:04}"))))
        .unwrap();
    drop(q);
    s.close().unwrap();
    assert!(env.dir.path().join("CHECKPOINT").exists());
    let seg = env.dir.path().join("0000000000000001.seg");
    let (frames, end) = frames_of(&std::fs::read(&seg).unwrap());
    let last = *frames.last().unwrap();
    assert!(
        end - last > 200,
        "the batch is one frame of {} bytes",
        end - last
    );
    (seg, last, end)
}

fn bodies(s: &Store) -> Vec<String> {
    let q = s.queue("q").unwrap();
    q.browse(1000)
        .unwrap()
        .iter()
        .map(|m| String::from_utf8(m.body().to_vec()).unwrap())
        .collect()
}

/// Bit rot inside the last frame of a store closed cleanly: the CHECKPOINT proves the frame
/// had been durable, so the open fails with `Corrupt` naming the file and the frame's offset
/// (it used to cut the frame as a torn tail: 50 messages gone, no word), `verify` names the
/// same place, and a repair keeps the bytes in a quarantine file and reports it. Without the
/// checkpoint (a crash: no clean close) nothing proves the frame durable and it is still cut
/// as a torn tail, as crash recovery must.
#[test]
fn bit_rot_in_the_last_frame_after_a_clean_close_is_damage_not_a_torn_tail() {
    let env = Env::new();
    let (seg, start, end) = fifty_in_the_last_frame(&env);
    let mut b = std::fs::read(&seg).unwrap();
    for x in &mut b[start + 200..start + 204] {
        *x ^= 0xff; // 4 bytes of rot
    }
    std::fs::write(&seg, &b).unwrap();
    let place = format!("0000000000000001.seg at offset {start}");

    // Without the checkpoint: a torn tail, as before (the crash case is unchanged).
    let crash = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(env.dir.path()).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name != "CHECKPOINT" && name != "LOCK" {
            std::fs::copy(e.path(), crash.path().join(&name)).unwrap();
        }
    }
    let s = Store::open(crash.path(), StoreOptions::default()).unwrap();
    let t = s.recovery_report().torn_tail.clone().expect("a torn tail");
    assert_eq!(
        (t.file.as_str(), t.offset),
        ("0000000000000001.seg", start as u64)
    );
    assert_eq!(bodies(&s), ["before"]);
    drop(s);

    let e = Store::open(env.dir.path(), env.opts()).expect_err("durable frames were damaged");
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.message().starts_with(&place), "{e}");
    assert!(
        e.message().contains("CHECKPOINT"),
        "the proof is named: {e}"
    );
    // The failed open changed nothing: the damaged bytes and the checkpoint are still there.
    assert_eq!(std::fs::read(&seg).unwrap(), b);
    assert!(env.dir.path().join("CHECKPOINT").exists());

    let v = verify::verify(env.dir.path()).unwrap();
    assert!(!v.is_sound() && v.torn_tail.is_none(), "{v:?}");
    assert_eq!(
        (v.problems[0].file.as_str(), v.problems[0].offset),
        ("0000000000000001.seg", start as u64)
    );

    let s = env.open_with(|o| o.repair = true);
    let r = s.recovery_report().clone();
    assert!(r.torn_tail.is_none(), "{r:?}");
    assert_eq!(r.quarantined.len(), 1, "{r:?}");
    let q = &r.quarantined[0];
    assert_eq!(
        (q.file.as_str(), q.offset),
        ("0000000000000001.seg", start as u64)
    );
    assert_eq!(q.frames_lost, 1, "{r:?}");
    let saved = std::fs::read(env.dir.path().join(&q.saved_as)).unwrap();
    assert_eq!(
        saved,
        b[start..end],
        "the quarantine file holds the frame's bytes"
    );
    assert_eq!(bodies(&s), ["before"]);
    s.queue("q").unwrap().send("after").unwrap();
    s.close().unwrap();
    // The repair sticks, and frame numbers go on: a plain open finds everything since.
    let s = env.open();
    let r = s.recovery_report();
    assert!(r.quarantined.is_empty() && r.missing.is_empty(), "{r:?}");
    assert_eq!(bodies(&s), ["before", "after"]);
    drop(s);
    assert!(verify::verify(env.dir.path()).unwrap().is_sound());
}

/// The last segment cut short inside its last frame, or its last frame zeroed, after a clean
/// close: the journal ends before the frames the CHECKPOINT proves durable, a loss named in
/// `missing` (the open fails with `Corrupt` naming the segment; a repair accepts it, keeping
/// the partial frame's bytes). It used to be cut silently as a torn tail, and the close of
/// that open wrote a new checkpoint: no trace of the loss was left (r12 #1's variant).
#[test]
fn the_last_frames_cut_short_or_zeroed_after_a_clean_close_are_missing() {
    for how in ["truncated", "zeroed"] {
        let env = Env::new();
        let (seg, start, end) = fifty_in_the_last_frame(&env);
        let before = std::fs::read(&seg).unwrap();
        let cut = start + 150;
        if how == "truncated" {
            let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
            f.set_len(cut as u64).unwrap();
        } else {
            let mut b = before.clone();
            b[start..end].fill(0);
            std::fs::write(&seg, &b).unwrap();
        }
        let e = Store::open(env.dir.path(), env.opts()).expect_err(how);
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{how}: {e}");
        assert!(
            e.message().starts_with("0000000000000001.seg at offset"),
            "{how}: {e}"
        );
        assert!(
            e.message().contains("missing") && e.message().contains("CHECKPOINT"),
            "{how}: {e}"
        );
        let v = verify::verify(env.dir.path()).unwrap();
        assert!(!v.is_sound() && v.torn_tail.is_none(), "{how}: {v:?}");
        assert_eq!(v.problems[0].file, "0000000000000001.seg", "{how}: {v:?}");

        let s = env.open_with(|o| o.repair = true);
        let r = s.recovery_report().clone();
        assert!(r.torn_tail.is_none(), "{how}: {r:?}");
        assert_eq!(r.missing.len(), 1, "{how}: {r:?}");
        assert_eq!(r.missing[0].file, "0000000000000001.seg", "{how}: {r:?}");
        assert_eq!(r.missing[0].frames_lost, Some(1), "{how}: {r:?}");
        if how == "truncated" {
            // The partial frame's bytes are kept.
            let q = &r.quarantined[0];
            assert_eq!(q.offset, start as u64, "{r:?}");
            let saved = std::fs::read(env.dir.path().join(&q.saved_as)).unwrap();
            assert_eq!(saved, before[start..cut]);
        }
        assert_eq!(bodies(&s), ["before"], "{how}");
        s.queue("q").unwrap().send("after").unwrap();
        s.close().unwrap();
        let s = env.open();
        let r = s.recovery_report();
        assert!(
            r.missing.is_empty() && r.quarantined.is_empty(),
            "{how}: {r:?}"
        );
        assert_eq!(bodies(&s), ["before", "after"], "{how}");
        drop(s);
        assert!(verify::verify(env.dir.path()).unwrap().is_sound(), "{how}");
    }
}

/// Every frame of a one-segment journal zeroed after a clean close: no frame number is left,
/// yet the CHECKPOINT recorded the segment's frames; a loss of unknown count, never an empty
/// store opened as if nothing had been there.
#[test]
fn every_frame_zeroed_after_a_clean_close_is_missing_not_an_empty_store() {
    let env = Env::new();
    let (seg, _, end) = fifty_in_the_last_frame(&env);
    let mut b = std::fs::read(&seg).unwrap();
    b[64..end].fill(0);
    std::fs::write(&seg, &b).unwrap();
    let e = Store::open(env.dir.path(), env.opts()).expect_err("every frame is gone");
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(
        e.message().starts_with("0000000000000001.seg at offset 64"),
        "{e}"
    );
    let v = verify::verify(env.dir.path()).unwrap();
    assert!(!v.is_sound(), "{v:?}");
    assert_eq!(v.problems[0].offset, 64, "{v:?}");
    let s = env.open_with(|o| o.repair = true);
    let r = s.recovery_report().clone();
    assert_eq!(r.missing.len(), 1, "{r:?}");
    assert_eq!(r.missing[0].frames_lost, None, "{r:?}");
    assert!(r.missing[0].what.contains("unknown"), "{r:?}");
    s.close().unwrap();
    let s = env.open();
    assert!(s.recovery_report().missing.is_empty());
    s.queue("q").unwrap().send("after").unwrap();
    assert_eq!(bodies(&s), ["after"]);
}

/// A checkpoint left beside a newer journal (its removal at the next open lost), then a crash
/// that tore the last write: the checkpoint proves only the frames it covered, so the torn
/// frame (numbered after them, at an offset after them) is still cut as a torn tail, and
/// everything durable, before and after the checkpoint, is kept.
#[test]
fn a_stale_checkpoint_proves_nothing_about_a_later_torn_tail() {
    let env = Env::new();
    let (seg, _, _) = fifty_in_the_last_frame(&env);
    let old = std::fs::read(env.dir.path().join("CHECKPOINT")).unwrap();
    let s = env.open();
    let q = s.queue("q").unwrap();
    for i in 0..3 {
        q.send(format!("later{i}")).unwrap(); // synced: on disk before the copy
    }
    // The process dies here: the files as they are (no close, no new checkpoint).
    let crash = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(env.dir.path()).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name != "LOCK" && !name.to_string_lossy().starts_with("owner") {
            std::fs::copy(e.path(), crash.path().join(&name)).unwrap();
        }
    }
    drop(q);
    drop(s);
    std::fs::write(crash.path().join("CHECKPOINT"), &old).unwrap();
    // The last send's frame torn half way.
    let copy = crash.path().join(seg.file_name().unwrap());
    let mut b = std::fs::read(&copy).unwrap();
    let (frames, end) = frames_of(&b);
    let last = *frames.last().unwrap();
    b[(last + end) / 2..end].fill(0);
    std::fs::write(&copy, &b).unwrap();
    let s = Store::open(crash.path(), env.opts()).unwrap();
    let r = s.recovery_report().clone();
    assert!(r.checkpoint_ignored.is_some(), "{r:?}");
    let t = r.torn_tail.clone().expect("the torn frame is cut");
    assert_eq!(t.offset, last as u64, "{r:?}");
    assert!(r.missing.is_empty() && r.quarantined.is_empty(), "{r:?}");
    let got = bodies(&s);
    assert_eq!(got.len(), 1 + 50 + 2, "{got:?}");
    assert_eq!(got[got.len() - 2..], ["later0", "later1"]);
}
