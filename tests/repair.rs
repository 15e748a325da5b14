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
