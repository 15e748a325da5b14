//! `StoreOptions::read_only` (review r4 #6): a store that cannot or must not be written — a
//! read-only file system, a snapshot, another user's directory — is opened to be looked at:
//! its queues, messages and dead letters read as an owner reads them, nothing locked, nothing
//! written to its directory, every change refused with `ReadOnly`.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use mqlite::*;

const NOW: Option<Duration> = Some(Duration::ZERO);

/// Every file of `dir` with its bytes (the directory's whole content, to compare).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

fn read_only() -> StoreOptions {
    StoreOptions {
        read_only: true,
        ..StoreOptions::default()
    }
}

/// A store with two messages in `q` ("b", delayed after a failed delivery, and "c", ready)
/// and one dead letter ("a") in `DLQ`.
fn make_store(dir: &Path) {
    let s = Store::open(dir, StoreOptions::default()).unwrap();
    let q = s.queue("q").unwrap();
    for b in ["a", "b", "c"] {
        q.send(b).unwrap();
    }
    q.receive(NOW).unwrap().unwrap().reject("bad").unwrap();
    let held = q.receive(NOW).unwrap().unwrap();
    assert_eq!(held.body(), b"b");
    // Dropped unsettled: a failed delivery, "b" waits for its redelivery delay.
    drop(held);
    s.close().unwrap();
}

fn kind<T: std::fmt::Debug>(r: Result<T>) -> ErrorKind {
    r.expect_err("a change of a read-only store").kind()
}

#[test]
fn a_read_only_open_shows_the_store_refuses_every_change_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    make_store(dir.path());
    let before = snapshot(dir.path());
    // The clean close left an index checkpoint: an owner's open removes it; this one must not.
    assert!(before.contains_key("CHECKPOINT"), "{:?}", before.keys());

    let s = Store::open(dir.path(), read_only()).unwrap();
    assert!(s.is_read_only());
    assert_eq!(s.read_only_owner(), None);
    assert_eq!(s.queue_names(), ["q", "DLQ"]);
    let q = s.queue("q").unwrap();
    let st = q.stats().unwrap();
    assert_eq!(
        (st.messages, st.depth, st.delayed, st.in_flight),
        (2, 1, 1, 0),
        "{st:?}"
    );
    let stored: Vec<Vec<u8>> = q
        .browse_stored(MessageId(0), 10)
        .unwrap()
        .into_iter()
        .map(|m| m.message.body().to_vec())
        .collect();
    assert_eq!(stored, [b"b".to_vec(), b"c".to_vec()]);
    let dlq = s.queue("DLQ").unwrap();
    let dead = dlq.browse_stored(MessageId(0), 10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].message.dead_letter_info().unwrap().last_failure,
        "bad"
    );

    // Every change, through every kind of call, is refused with `ReadOnly`.
    assert_eq!(kind(q.send("x")), ErrorKind::ReadOnly);
    assert_eq!(kind(q.send_batch(["x"])), ErrorKind::ReadOnly);
    assert_eq!(kind(q.receive(NOW)), ErrorKind::ReadOnly);
    assert_eq!(kind(q.purge()), ErrorKind::ReadOnly);
    assert_eq!(
        kind(dlq.replay(&ReplayFilter::default())),
        ErrorKind::ReadOnly
    );
    assert_eq!(kind(s.queue("new")), ErrorKind::ReadOnly);
    assert_eq!(
        kind(s.topic("t").unwrap().publish("x")),
        ErrorKind::ReadOnly
    );
    assert_eq!(
        kind(s.subscribe("t.>", SubscriptionOptions::default())),
        ErrorKind::ReadOnly
    );
    assert_eq!(kind(s.compact()), ErrorKind::ReadOnly);
    let e = q.send("x").unwrap_err();
    assert!(e.message().contains("read-only"), "{e}");
    // Nothing changed what it shows.
    assert_eq!(q.stats().unwrap().messages, 2);
    assert_eq!(s.queue_names(), ["q", "DLQ"]);
    s.close().unwrap();

    // Not a byte of the directory changed (no LOCK taken, no checkpoint removed or written,
    // no socket, no segment created).
    assert_eq!(snapshot(dir.path()), before);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n == "owner.sock"), "{names:?}");

    // An ordinary open afterwards finds the store as it was.
    let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let q = s.queue("q").unwrap();
    assert_eq!(q.stats().unwrap().messages, 2);
    s.close().unwrap();
}

#[test]
fn a_read_only_open_beside_a_live_owner_names_it_and_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let owner = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let q = owner.queue("q").unwrap();
    q.send("x").unwrap();
    let r = Store::open(dir.path(), read_only()).unwrap();
    // The owner is this process (another process's is found through the lock: the CLI's
    // tests show it); the view is the durable state as read at the open.
    assert_eq!(r.read_only_owner(), Some(std::process::id()));
    assert_eq!(r.queue("q").unwrap().stats().unwrap().depth, 1);
    q.send("y").unwrap();
    assert_eq!(
        r.queue("q").unwrap().stats().unwrap().depth,
        1,
        "a snapshot"
    );
    r.close().unwrap();
    // The owner keeps its lock and its store.
    let d = q.receive(NOW).unwrap().unwrap();
    d.ack().unwrap();
    assert_eq!(q.stats().unwrap().messages, 1);
    assert_eq!(
        Store::open(
            dir.path(),
            StoreOptions {
                open_as: OpenAs::Owner,
                ..StoreOptions::default()
            }
        )
        .unwrap_err()
        .kind(),
        ErrorKind::Locked
    );
    owner.close().unwrap();
}

#[test]
fn read_only_refuses_the_options_that_write_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for (o, what) in [
        (
            StoreOptions {
                repair: true,
                ..read_only()
            },
            "repair",
        ),
        (
            StoreOptions {
                open_as: OpenAs::Client,
                ..read_only()
            },
            "Client",
        ),
    ] {
        let e = Store::open(dir.path(), o).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(e.message().contains(what), "{e}");
    }
    // `create` (true by default) is ignored: no store is made.
    let missing = dir.path().join("none");
    let e = Store::open(&missing, read_only()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(!missing.exists());
    let e = Store::open(dir.path(), read_only()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(snapshot(dir.path()).len(), 0);
}
