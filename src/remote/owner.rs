//! The owner: the process holding the store's lock opens the journal, recovers, runs group
//! commit and serves the other processes on `<dir>/owner.sock`.

use std::path::Path;
use std::sync::Arc;

use super::server::Server;
use super::{bind_socket, dir_identity};
use crate::engine::{Engine, Io, Rebuild};
use crate::error::Result;
use crate::journal::{Journal, RecoveryReport};
use crate::options::StoreOptions;
use crate::store::{start_threads, DirLock};

/// An open store owned by this process, with its server.
pub(crate) struct Owner {
    pub(crate) engine: Engine,
    pub(crate) lock: Arc<DirLock>,
    server: Option<Server>,
    dir: std::path::PathBuf,
    pub(crate) report: RecoveryReport,
    /// The store's identity (`STORE_ID`, see [`crate::Store::id`]).
    pub(crate) id: String,
    _waker: Arc<dyn Fn() + Send + Sync>,
}

impl Owner {
    /// Takes the lock of `dir` (`Locked` naming the holder's pid if another process has it),
    /// recovers the store and starts serving clients.
    pub(crate) fn open(dir: &Path, options: &StoreOptions) -> Result<Owner> {
        let lock = Arc::new(DirLock::acquire(dir)?);
        let options = options.clone();
        let clock = options.clock.clone();
        let mut rb = Rebuild::default();
        let clock2 = clock.clone();
        // Checked under the lock: no journal segment yet means this open creates the store.
        let created = !crate::store::holds_store(dir)?;
        let (journal, report) = Journal::open(
            options.vfs.clone(),
            dir,
            options.segment_bytes,
            options.repair,
            Box::new(move || clock2.now_ms()),
            &mut |seg, off, len, k, body| rb.apply(seg, off, len, k, body),
        )?;
        let id = crate::store::identity::ensure(dir, created)?;
        let io = Io::new(journal);
        let files = io.files();
        let mut report = report;
        let state = rb.into_state(
            &options,
            io.segments(),
            clock.now_ms(),
            &mut report.lost_queues,
        )?;
        let engine = Engine::new(state, io, files, options);
        let waker = engine.waker();
        clock.subscribe(Arc::downgrade(&waker));
        if let Err(e) = start_threads(&engine, lock.clone()) {
            if engine.begin_close().is_ok() {
                let _ = engine.finish_close();
            }
            return Err(e);
        }
        let mut owner = Owner {
            engine,
            lock,
            server: None,
            dir: dir.to_path_buf(),
            report,
            id,
            _waker: waker,
        };
        // Make the recovery's own records (crash failures) durable before serving anyone.
        if let Err(e) = owner.engine.flush() {
            let _ = owner.close();
            return Err(e);
        }
        // The stale socket of a dead owner is removed only now, while the lock is held.
        let served = bind_socket(dir).and_then(|l| {
            let report = owner.report.clone();
            Server::start(owner.engine.clone(), l, dir_identity(dir)?, report)
        });
        match served {
            Ok(s) => owner.server = Some(s),
            Err(e) => {
                let _ = owner.close();
                return Err(e);
            }
        }
        Ok(owner)
    }

    /// Closes: no more requests are taken; what is being served finishes and is answered; the
    /// engine flushes and completes every callback; then the connections close (clients
    /// reconnect to the next owner and resend what was not answered) and the lock is released.
    pub(crate) fn close(&self) -> Result<()> {
        if let Some(s) = &self.server {
            s.begin_stop();
        }
        let r = if self.engine.begin_close()? {
            Ok(())
        } else {
            self.engine.finish_close()
        };
        if let Some(s) = &self.server {
            s.finish_stop();
            super::remove_socket(&self.dir);
        }
        self.lock.release();
        r
    }

    /// Closes without waiting (dropped inside one of its own callbacks).
    pub(crate) fn close_in_background(&self) {
        if let Some(s) = &self.server {
            s.stop_in_background();
        }
        let lock = &self.lock;
        self.engine
            .close_in_background(|| lock.closing_in_background());
    }
}
