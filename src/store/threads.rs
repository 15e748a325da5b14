//! The two library threads of a store, with panic poisoning (as fjall's `poison.rs`): a panic
//! on either poisons the store, completes every pending callback with an error, and the thread
//! goes on (its loop restarted) so that callbacks still run and `close()` never hangs.
//!
//! - The commit thread leads group commits nobody else leads (async sends, batched fsyncs),
//!   runs the periodic housekeeping, and at close writes what is left, releases the directory
//!   lock and stops the callback thread.
//! - The callback thread runs async-send callbacks, in order, outside every lock.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use super::lock::DirLock;
use crate::engine::{mark_callback_thread, mark_library_thread, Engine};
use crate::error::{Error, Result};

/// Panics of the commit loop after which it is not restarted any more: a bug that panics on
/// every turn would otherwise spin. The thread then only fails what is pending until close.
const MAX_COMMIT_RESTARTS: usize = 3;

/// Starts the commit and callback threads of `engine`; the commit thread owns `lock` and
/// releases it when it ends, unless an owner's close keeps it ([`DirLock::keep_until_release`]).
pub(crate) fn start(engine: &Engine, lock: Arc<DirLock>) -> Result<()> {
    let e = engine.clone();
    let commit = std::thread::Builder::new()
        .name("mqlite-commit".into())
        .spawn(move || {
            mark_library_thread();
            let mut panics = 0;
            while let Err(p) = catch_unwind(AssertUnwindSafe(|| e.run_commit_thread())) {
                e.poison_after_panic("the commit thread", &*p);
                panics += 1;
                if panics >= MAX_COMMIT_RESTARTS {
                    e.run_poisoned_commit_thread();
                    break;
                }
            }
            // Everything is written (or failed): let the next opener in (unless an owner's
            // close keeps the lock for its last steps), then stop callbacks.
            lock.release_at_commit_end();
            e.stop_callback_thread();
        })
        .map_err(|err| Error::io("starting the commit thread", &err))?;
    engine.add_thread(commit);
    let e = engine.clone();
    let callbacks = std::thread::Builder::new()
        .name("mqlite-callbacks".into())
        .spawn(move || {
            mark_callback_thread();
            // The loop takes callbacks out of the queue only to run them; if it panics, those
            // it held go back (see `engine::callbacks`) and the restarted loop runs them.
            while let Err(p) = catch_unwind(AssertUnwindSafe(|| e.run_callback_thread())) {
                e.poison_after_panic("the callback thread", &*p);
            }
        })
        .map_err(|err| Error::io("starting the callback thread", &err))?;
    engine.add_thread(callbacks);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{ErrorKind, Store, StoreOptions};
    use std::sync::atomic::Ordering;
    use std::sync::mpsc;
    use std::time::Duration;

    /// The callback thread's own loop panics (not a callback: those are caught one by one)
    /// after taking a batch of callbacks: the store is poisoned, every callback still runs
    /// exactly once, and close() returns.
    #[test]
    fn a_panic_on_the_callback_thread_poisons_and_still_runs_every_callback() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let q = s.queue("q").unwrap();
        let crate::remote::backend::Backend::Local(engine, _) = &s.engine else {
            panic!("a store opened alone is its owner");
        };
        engine
            .test_hooks()
            .panic_in_callback_loop
            .store(true, Ordering::SeqCst);
        let (tx, rx) = mpsc::channel();
        let mut sent = 0;
        for i in 0..50 {
            let tx = tx.clone();
            let cb = move |r| drop(tx.send(r));
            match q.send_async(format!("m{i}"), cb) {
                Ok(()) => sent += 1,
                Err(e) => assert_eq!(e.kind(), ErrorKind::Poisoned, "{e}"),
            }
        }
        assert!(sent > 0);
        for _ in 0..sent {
            let _outcome = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("a callback never ran");
        }
        let e = q.send("after").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Poisoned, "{e}");
        assert!(e.message().contains("callback thread panicked"), "{e}");
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || drop(done_tx.send(s.close())));
        let closed = done_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("close() hung");
        assert_eq!(closed.unwrap_err().kind(), ErrorKind::Poisoned);
        assert!(rx.try_recv().is_err(), "a callback ran twice");
    }
}
