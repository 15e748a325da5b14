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

/// Runs `f` in a forked child of this process and returns its exit status (`f`'s value, or a
/// signal's: a child stuck for 60 s dies of SIGALRM).
fn in_child(f: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child runs `f` and exits without returning into the test harness.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork failed");
    if child == 0 {
        unsafe { libc::alarm(60) };
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        unsafe { libc::_exit(code) };
    }
    let mut st = 0;
    unsafe { libc::waitpid(child, &mut st, 0) };
    st
}

/// Review r12 #7: a fork() child freeing the store its parent owns (the usual child cleanup,
/// `mqlite_store_free` in C) panicked, and shut down the parent's socket: no other process
/// could open the store while the parent lived. The child's close is the clear fork error and
/// its drops touch nothing of the parent's; the parent's listener and owner go on serving.
#[test]
fn a_forked_child_freeing_its_parents_store_leaves_the_parent_serving() {
    let _serial = durable::serial();
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let q = s.queue("q").unwrap();
    q.send("parent1").unwrap();
    let heard = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = heard.clone();
    let listener = s
        .queue("l")
        .unwrap()
        .listen(move |_| {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
    let status = in_child(|| {
        let e = s.close().unwrap_err();
        let ok = e.kind() == ErrorKind::Closed && e.message().contains("fork()");
        // SAFETY: the child's own copies of the handles (its memory is its own since the
        // fork); they are dropped here once, and the child exits without touching them again.
        unsafe {
            drop(std::ptr::read(&listener));
            drop(std::ptr::read(&q));
            drop(std::ptr::read(&s));
        }
        if ok {
            0
        } else {
            2
        }
    });
    assert_eq!(
        status, 0,
        "the child's close and drops (wait status {status})"
    );
    q.send("parent2").unwrap();
    // Another process opens the store: a client of this owner, served.
    let d = dir.path().to_path_buf();
    let status = in_child(move || {
        let options = StoreOptions {
            connect_timeout: std::time::Duration::from_secs(20),
            ..StoreOptions::default()
        };
        let c = match Store::open(&d, options) {
            Ok(c) => c,
            Err(_) => return 3,
        };
        if c.role() != Role::Client {
            return 4;
        }
        let r = c.queue("l").and_then(|l| l.send("from a client"));
        let _ = c.close();
        if r.is_ok() {
            0
        } else {
            5
        }
    });
    assert_eq!(status, 0, "a client of the parent (wait status {status})");
    assert_eq!(q.stats().unwrap().messages, 2);
    s.flush().unwrap();
    s.close().unwrap();
    assert!(heard.load(std::sync::atomic::Ordering::SeqCst) <= 1);
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

/// r5 #1: a `LOCK` file deleted while the store is open. Another opener finds the owner's
/// socket answering and does not take the store over (a second owner would write the same
/// segments: acked sends lost, ids issued twice); the owner notices at its next write that
/// its lock no longer guards the store and stops acknowledging, with an error naming `LOCK`.
#[test]
fn a_deleted_lock_file_keeps_a_second_owner_out_and_stops_the_first() {
    let _serial = durable::serial();
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("s");
    let s = Store::open(&dir, StoreOptions::default()).unwrap();
    let q = s.queue("q").unwrap();
    q.send("a").unwrap();
    std::fs::remove_file(dir.join("LOCK")).unwrap();
    let as_owner = StoreOptions {
        open_as: OpenAs::Owner,
        ..Default::default()
    };
    let e = Store::open(&dir, as_owner).expect_err("a second owner took the store");
    assert_eq!(e.kind(), ErrorKind::Locked, "{e}");
    assert!(
        !dir.join("LOCK").exists(),
        "the refused open made no new LOCK"
    );
    let other = Store::open(&dir, StoreOptions::default()).unwrap();
    assert_eq!(other.role(), Role::Client, "served by the live owner");
    drop(other);
    let e = q
        .send("after")
        .expect_err("a send was acked by an owner whose LOCK is gone");
    assert!(
        e.message().contains("LOCK"),
        "the error names the lock: {e}"
    );
    drop(q);
    let _ = s.close();
    // Nothing was lost: the store opens (now unlocked) with what was acked.
    let s = Store::open(&dir, StoreOptions::default()).unwrap();
    assert_eq!(s.queue("q").unwrap().stats().unwrap().messages, 1);
    s.close().unwrap();
}

/// r5 #1: a `LOCK` replaced by another file (another process's lock on it would not exclude
/// this owner's) stops the owner the same way.
#[test]
fn a_replaced_lock_file_stops_the_owner() {
    let _serial = durable::serial();
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("s");
    let s = Store::open(&dir, StoreOptions::default()).unwrap();
    let q = s.queue("q").unwrap();
    q.send("a").unwrap();
    std::fs::remove_file(dir.join("LOCK")).unwrap();
    std::fs::write(dir.join("LOCK"), "12345").unwrap();
    let e = q.send("after").expect_err("acked under a foreign LOCK");
    assert!(
        e.message().contains("LOCK"),
        "the error names the lock: {e}"
    );
    drop(q);
    let _ = s.close();
}

/// r5 #18: a store directory moved away and replaced by a new one while open. New files are
/// created by name, so the store would split itself between the two directories; it stops
/// writing instead, with an error saying the directory moved, and leaves the new directory
/// alone. The moved directory is a whole store that opens as it is.
#[test]
fn a_directory_moved_away_and_replaced_is_detected() {
    let _serial = durable::serial();
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("s");
    let old = parent.path().join("s.old");
    let s = Store::open(
        &dir,
        StoreOptions {
            segment_bytes: 4096,
            ..Default::default()
        },
    )
    .unwrap();
    let q = s.queue("q").unwrap();
    q.send("before").unwrap();
    std::fs::rename(&dir, &old).unwrap();
    std::fs::create_dir(&dir).unwrap();
    let mut acked = 0;
    let mut err = None;
    for _ in 0..30 {
        match q.send(vec![b'x'; 300]) {
            Ok(_) => acked += 1,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let e = err.expect("sends into a moved store were all acked");
    assert_eq!(acked, 0, "nothing is acked once the directory moved");
    assert!(e.message().contains("moved"), "the error says so: {e}");
    drop(q);
    let _ = s.close();
    assert!(
        entries(&dir).is_empty(),
        "the new directory was written to: {:?}",
        entries(&dir)
    );
    let s = Store::open(&old, StoreOptions::default()).unwrap();
    assert_eq!(s.queue("q").unwrap().stats().unwrap().messages, 1);
    s.close().unwrap();
}

/// r5 #13: `close()` releases every file of the store at once, whatever handles (store,
/// queues) the program still holds: no descriptor into the directory stays open.
#[test]
fn close_releases_every_file_whatever_handles_remain() {
    let _serial = durable::serial();
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("s");
    let s = Store::open(&dir, StoreOptions::default()).unwrap();
    let q = s.queue("q").unwrap();
    q.send("x").unwrap();
    let real = dir.canonicalize().unwrap();
    let open_in_store = || {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|p| p.starts_with(&real))
            .collect::<Vec<_>>()
    };
    assert!(
        !open_in_store().is_empty(),
        "the open store holds its files"
    );
    s.close().unwrap();
    assert_eq!(open_in_store(), Vec::<std::path::PathBuf>::new());
    drop(q);
    drop(s);
}

/// `owner.sock` deleted while its owner runs (a tmp cleaner): no process can reach that
/// owner, and the opener's error says so, naming the live pid and the missing socket, rather
/// than "no process served" (review r5 #24).
#[test]
fn a_deleted_socket_is_named_with_the_live_owner_that_holds_the_lock() {
    let env = Env::new();
    let owner = env.open();
    owner.queue("q").unwrap().send(b"x").unwrap();
    std::fs::remove_file(env.dir.path().join(remote::SOCKET_NAME)).unwrap();
    let mut o = env.opts();
    o.open_as = OpenAs::Client;
    o.connect_timeout = std::time::Duration::from_millis(200);
    let e = Store::open(env.dir.path(), o).expect_err("reached an owner with no socket");
    assert_eq!(e.kind(), ErrorKind::OwnerLost, "{e}");
    let pid = format!("pid {}", std::process::id());
    assert!(
        e.message().contains(&pid) && e.message().contains("owner.sock is missing"),
        "{e}"
    );
    // The owner itself goes on.
    owner.queue("q").unwrap().send(b"y").unwrap();
}
