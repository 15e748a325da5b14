//! A panic inside mqlite (here: a file layer that panics, standing for any bug below the
//! engine) poisons the store: the call that hit it fails, every later call fails with
//! `Poisoned`, every pending async-send callback completes exactly once, and `close()` returns
//! instead of hanging. What was acknowledged before stays durable.
mod common;
use common::fault::{Fault, FaultFs, Op};
use common::*;
use mqlite::*;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn open(env: &Env, fs: &FaultFs) -> Store {
    env.open_with(|o| o.vfs = fs.vfs())
}

/// Runs `f` on another thread and fails the test if it does not return within a minute
/// (a hang is the failure this guards against; no timing is asserted otherwise).
fn within_a_minute<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{what} hung"))
}

/// The commit thread panics while writing a batch of async sends.
#[test]
fn a_panic_on_the_commit_thread_poisons_and_completes_every_callback() {
    let env = Env::new();
    let fs = FaultFs::new();
    let s = Arc::new(open(&env, &fs));
    let q = s.queue("q").unwrap();
    let acked = q.send("before").unwrap();
    fs.panic_at(Op::Sync, fs.count(Op::Sync) + 1);
    let results = Arc::new(Mutex::new(Vec::new()));
    let mut sent = 0;
    for i in 0..200 {
        let r = results.clone();
        let cb = move |x: Result<MessageId>| r.lock().unwrap().push(x);
        match q.send_async(format!("m{i}"), cb) {
            Ok(()) => sent += 1,
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Poisoned, "{e}");
                break;
            }
        }
    }
    let s2 = s.clone();
    let closed = within_a_minute("close()", move || s2.close());
    let e = closed.expect_err("a poisoned store reports it at close");
    assert_eq!(e.kind(), ErrorKind::Poisoned, "{e}");
    assert!(e.message().contains("panicked"), "{e}");
    let results = std::mem::take(&mut *results.lock().unwrap());
    assert_eq!(results.len(), sent, "every callback ran exactly once");
    let failed = results.iter().filter(|r| r.is_err()).count();
    assert!(failed > 0, "the batch that panicked cannot have succeeded");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(r.kind(), ErrorKind::Poisoned, "{r}");
    }
    let ok: Vec<MessageId> = results.into_iter().filter_map(|r| r.ok()).collect();
    drop(q);
    drop(s);
    // Reopened, everything acknowledged is there.
    let s = open(&env, &fs);
    let q = s.queue("q").unwrap();
    let got: Vec<MessageId> = q
        .receive_batch(1000, NOW)
        .unwrap()
        .iter()
        .map(|d| d.id())
        .collect();
    assert!(got.contains(&acked));
    for id in ok {
        assert!(got.contains(&id), "{id} was acknowledged but is lost");
    }
}

/// A caller leading a group commit itself (a sync send while nobody else writes) hits the
/// panic: its call fails, the store is poisoned, and it still closes.
#[test]
fn a_panic_in_a_commit_led_by_a_caller_fails_that_call_and_poisons() {
    let env = Env::new();
    let fs = FaultFs::new();
    let s = open(&env, &fs);
    let q = s.queue("q").unwrap();
    q.send("before").unwrap();
    fs.panic_at(Op::Sync, fs.count(Op::Sync) + 1);
    let e = q.send("boom").expect_err("the panicking commit succeeded");
    assert!(
        matches!(e.kind(), ErrorKind::Internal | ErrorKind::Poisoned),
        "{e}"
    );
    assert!(e.message().contains("panic"), "{e}");
    for e in [
        q.send("after").unwrap_err(),
        q.receive(NOW).unwrap_err(),
        q.stats().unwrap_err(),
        s.flush().unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::Poisoned, "{e}");
    }
    let e = within_a_minute("close()", move || s.close()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Poisoned);
    // The store reopens with what was durable.
    let s = open(&env, &fs);
    let d = s.queue("q").unwrap().receive(NOW).unwrap().unwrap();
    assert_eq!(d.body(), b"before");
}

/// `close()` of a store poisoned by a failed fdatasync (issue 15): it returns `Poisoned`, and
/// the message says the store is now closed (not "reopen it" as if it were still open); a
/// second `close()` returns `Ok`; the store reopens at once with what was durable.
#[test]
fn close_of_a_poisoned_store_says_it_is_closed_and_a_second_close_is_ok() {
    let env = Env::new();
    let fs = FaultFs::new();
    let s = open(&env, &fs);
    let q = s.queue("q").unwrap();
    q.send("before").unwrap();
    fs.add_fault(Fault {
        op: Op::Sync,
        nth: fs.count(Op::Sync) + 1,
        errno: libc::EIO,
        persistent: false,
    });
    q.send("lost").expect_err("a send whose fdatasync failed");
    let e = q.send("after").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Poisoned, "{e}");
    assert!(!e.message().contains("is closed"), "still open: {e}");
    let e = s.close().expect_err("a poisoned store reports it at close");
    assert_eq!(e.kind(), ErrorKind::Poisoned, "{e}");
    assert!(
        e.message()
            .starts_with("the store is closed; it had been poisoned"),
        "{e}"
    );
    assert!(e.message().contains("fdatasync"), "names the cause: {e}");
    s.close().expect("a second close of a poisoned store");
    let e = q.send("after close").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed, "{e}");
    drop(q);
    drop(s);
    let s = open(&env, &fs);
    let d = s.queue("q").unwrap().receive(NOW).unwrap().unwrap();
    assert_eq!(d.body(), b"before");
}
