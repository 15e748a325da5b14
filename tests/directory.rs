//! The directory is the user's: mqlite gives a mode only to a directory it creates, touches
//! nothing before its lock is held, does not turn a directory into a store without `create`,
//! notices when the directory is deleted under it, and its lock is neither inherited by a
//! `fork()` child nor kept past `close()`.
mod common;
use common::*;
use mqlite::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn entries(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn only_a_directory_mqlite_creates_gets_its_mode() {
    let _serial = durable::serial();
    let parent = tempfile::tempdir().unwrap();
    let mine = parent.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o751)).unwrap();
    let link = parent.path().join("link");
    std::os::unix::fs::symlink(&mine, &link).unwrap();
    let s = Store::open(&link, StoreOptions::default()).unwrap();
    assert_eq!(
        mode(&mine),
        0o751,
        "open through a symlink changed its target's mode"
    );
    // A second open that refuses to be a client fails with Locked and changes nothing either.
    std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o755)).unwrap();
    let owner_only = StoreOptions {
        open_as: OpenAs::Owner,
        ..Default::default()
    };
    let e = Store::open(&mine, owner_only).expect_err("locked");
    assert_eq!(e.kind(), ErrorKind::Locked, "{e}");
    assert_eq!(mode(&mine), 0o755, "a failed open changed the mode");
    s.close().unwrap();
    // A directory mqlite creates is private.
    let new = parent.path().join("new");
    Store::open(&new, StoreOptions::default())
        .unwrap()
        .close()
        .unwrap();
    assert_eq!(mode(&new), 0o700);
}

#[test]
fn without_create_a_directory_that_holds_no_store_is_not_found_and_left_alone() {
    let _serial = durable::serial();
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("notes.txt"), b"mine").unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = StoreOptions {
        create: false,
        ..Default::default()
    };
    let e = Store::open(d.path(), o.clone()).expect_err("not a store");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(entries(d.path()), ["notes.txt"], "the open created files");
    assert_eq!(mode(d.path()), 0o755);
    // Once it is a store, create=false opens it.
    Store::open(d.path(), StoreOptions::default())
        .unwrap()
        .close()
        .unwrap();
    Store::open(d.path(), o).unwrap().close().unwrap();
}

/// A child forked while the store is open (by another thread, at any moment) does not hold
/// the store's lock: the parent closes and reopens it at once, every time, with more than 64
/// stores open.
#[test]
fn a_forked_child_does_not_keep_the_lock() {
    let _serial = durable::serial();
    let dirs: Vec<_> = (0..70).map(|_| tempfile::tempdir().unwrap()).collect();
    let stores: Vec<Store> = dirs
        .iter()
        .map(|d| Store::open(d.path(), StoreOptions::default()).unwrap())
        .collect();
    let mut fds = [0i32; 2];
    // SAFETY: a pipe whose two ends this test owns.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child only calls async-signal-safe functions (read, _exit).
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork failed");
    if child == 0 {
        let mut b = [0u8; 1];
        unsafe {
            libc::close(fds[1]);
            libc::read(fds[0], b.as_mut_ptr().cast(), 1);
            libc::_exit(0);
        }
    }
    // The child lives (blocked on the pipe) while the parent closes and reopens every store.
    for (s, d) in stores.into_iter().zip(&dirs) {
        s.close().unwrap();
        let s = Store::open(d.path(), StoreOptions::default())
            .unwrap_or_else(|e| panic!("reopen after close with a forked child alive: {e}"));
        s.close().unwrap();
    }
    unsafe {
        libc::close(fds[1]);
        libc::close(fds[0]);
        let mut st = 0;
        libc::waitpid(child, &mut st, 0);
    }
}

/// A store whose directory is deleted while it is open fails its next durable write with a
/// clear error instead of acking sends into unlinked files.
#[test]
fn a_deleted_directory_is_detected() {
    let _serial = durable::serial();
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("s");
    let s = Store::open(&dir, StoreOptions::default()).unwrap();
    let q = s.queue("q").unwrap();
    q.send("kept").unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let e = q
        .send("lost")
        .expect_err("a send into a deleted store was acked");
    assert!(
        e.message().contains("deleted"),
        "the error says what happened: {e}"
    );
    drop(q);
    let _ = s.close();
}

/// `close()` releases the lock at once, whatever handles (queues, deliveries) the program still
/// holds: the store opens again right away.
#[test]
fn close_releases_the_store_whatever_handles_remain() {
    let _serial = durable::serial();
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    q.send("m").unwrap();
    let d = q.receive(NOW).unwrap().unwrap();
    s.close().unwrap();
    let s2 = env.open();
    assert_eq!(s2.queue("q").unwrap().stats().unwrap().messages, 1);
    let e = q
        .send("after close")
        .expect_err("a handle of a closed store");
    assert_eq!(e.kind(), ErrorKind::Closed, "{e}");
    drop(d);
    s2.close().unwrap();
}
