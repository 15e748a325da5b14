//! The owner: the process holding the store's lock opens the journal, recovers, runs group
//! commit and serves the other processes on `<dir>/owner.sock`.

use std::path::Path;
use std::sync::Arc;

use super::server::Server;
use super::{bind_socket, dir_identity};
use crate::engine::{checkpoint, Engine, Handed, Io, Rebuild, State};
use crate::error::{Error, Result};
use crate::journal::{Journal, RecoveryReport};
use crate::options::StoreOptions;
use crate::store::{start_threads, DirLock};

/// Recovers the store in `dir`: from its index checkpoint when that is valid (see
/// `src/engine/checkpoint.rs`), else by replaying the whole journal. The checkpoint is removed
/// once recovery succeeded, before the store writes anything.
fn recover(dir: &Path, options: &StoreOptions) -> Result<(Io, State, RecoveryReport)> {
    let clock = options.clock.clone();
    let now_ms = || {
        let c = clock.clone();
        Box::new(move || c.now_ms()) as Box<dyn Fn() -> u64 + Send>
    };
    let vfs = &options.vfs;
    let read = checkpoint::read(vfs, dir);
    if let Some(lost) = all_segments_lost(vfs, dir, &read)? {
        return recover_lost(dir, options, lost, now_ms());
    }
    // What a whole checkpoint that cannot be used still proves had been durable: damage in
    // it is named, never cut as a torn tail (see `src/journal/recovery.rs`, review r12 #1).
    let mut durable = None;
    let found = match read {
        Ok(None) => None,
        // A repair changes the journal under the checkpoint: it replays everything.
        Ok(Some(c)) if options.repair => {
            durable = c.into_position().ok();
            Some(Err("the store is opened with repair".to_string()))
        }
        _ if options.repair => Some(Err("the store is opened with repair".to_string())),
        Ok(Some(c)) => Some(Ok(c)),
        Err(why) => Some(Err(why)),
    };
    let used = found.map(|found| {
        found.and_then(|c| {
            // The covered segments' CRC check (a sequential read of the whole journal) runs on
            // a helper thread while this one streams the checkpoint's state: the open costs
            // the longer of the two, not their sum. The thread owns its arguments and is
            // always joined (a scoped thread made this thread build a `Thread` handle of its
            // own for the scope, which a C program's main thread never frees: valgrind called
            // it possibly lost). The state is dropped if the check fails.
            let pos = c.position().clone();
            let check = {
                let (vfs, dir, pos) = (vfs.clone(), dir.to_path_buf(), pos.clone());
                let (seg_bytes, now) = (options.segment_bytes, now_ms());
                std::thread::Builder::new()
                    .name("mqlite-checkpoint".into())
                    .spawn(move || Journal::open_at(vfs, &dir, seg_bytes, now, &pos))
            };
            let mut lost = Vec::new();
            let state = c.into_state(options, Vec::new(), clock.now_ms(), &mut lost);
            let at = match check {
                Ok(h) => h.join().unwrap_or_else(|_| {
                    Err(Error::new(
                        crate::ErrorKind::Internal,
                        "the checkpoint check panicked",
                    ))
                }),
                // No thread to be had: the check runs here.
                Err(_) => Journal::open_at(vfs.clone(), dir, options.segment_bytes, now_ms(), &pos),
            };
            // A state that was built passed the checkpoint's own CRC32C: it is whole. One
            // that failed to build may be whole all the same (the CRC32C is checked last):
            // read again, only its CRC32C is checked.
            durable = match &state {
                Ok(_) => Some(pos),
                Err(_) => checkpoint::read(vfs, dir)
                    .ok()
                    .flatten()
                    .and_then(|c| c.into_position().ok()),
            };
            match at {
                Err(e) => Err(format!("checking the journal against it: {e}")),
                Ok(Err(why)) => Err(why),
                Ok(Ok((journal, mut report))) => {
                    let io = Io::new(journal);
                    let mut state = state?;
                    state.space.segs = io.segments();
                    report.lost_queues = lost;
                    report.checkpoint_used = true;
                    Ok((io, state, report))
                }
            }
        })
    });
    let ignored = match used {
        Some(Ok(r)) => {
            // Removed before the store writes anything (and a temporary one a crash left).
            checkpoint::remove(vfs, dir);
            return Ok(r);
        }
        Some(Err(why)) => Some(why),
        None => None,
    };
    let mut rb = Rebuild::default();
    let (journal, mut report) = Journal::open_proven(
        vfs.clone(),
        dir,
        options.segment_bytes,
        options.repair,
        durable.as_ref(),
        now_ms(),
        &mut |seg, off, len, k, body| rb.apply(seg, off, len, k, body),
    )?;
    report.checkpoint_ignored = ignored;
    let io = Io::new(journal);
    let state = rb.into_state(
        options,
        io.segments(),
        clock.now_ms(),
        &mut report.lost_queues,
    )?;
    // Only once the open succeeded: an open that fails (a damaged journal) leaves the
    // directory as it found it. Recovery's own writes (a torn tail cut) do not depend on it:
    // a checkpoint is used only if the journal is byte for byte the one it covers.
    checkpoint::remove(vfs, dir);
    Ok((io, state, report))
}

/// Every journal segment of a store that had some: which ones, when its checkpoint says so.
struct Lost {
    /// The first and last segment the checkpoint covers (`None`: no readable checkpoint).
    range: Option<(u64, u64)>,
    /// What tells that the directory held a store.
    evidence: String,
    /// Whether a `CHECKPOINT` is there (readable or not): it describes the lost journal.
    checkpoint: bool,
}

/// `Some` when `dir` holds no journal segment file while its `CHECKPOINT` or `STORE_ID` is
/// there: a store whose every segment was deleted (`rm *.seg`, a restore that copied only the
/// small files), not a new one (review r5 #8). A new store gets its first segment before its
/// `STORE_ID` (see [`Owner::open`]), and compaction never removes the tail, so no clean
/// history leaves these files without a segment.
fn all_segments_lost(
    vfs: &Arc<dyn crate::io::Vfs>,
    dir: &Path,
    read: &std::result::Result<Option<checkpoint::Checkpoint>, String>,
) -> Result<Option<Lost>> {
    let names = vfs
        .list(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), &e))?;
    if names
        .iter()
        .any(|n| crate::journal::parse_segment_name(n).is_some())
    {
        return Ok(None);
    }
    let lost = match read {
        Ok(Some(c)) => {
            let segs = &c.position().segments;
            let range = segs.first().zip(segs.last()).map(|(a, b)| (a.n, b.n));
            Lost {
                range,
                evidence: match range {
                    Some((a, b)) => format!(
                        "its CHECKPOINT covers {}..{}",
                        crate::journal::segment_name(a),
                        crate::journal::segment_name(b)
                    ),
                    None => "its CHECKPOINT is there".into(),
                },
                checkpoint: true,
            }
        }
        Err(why) => Lost {
            range: None,
            evidence: format!("its CHECKPOINT is there (unreadable: {why})"),
            checkpoint: true,
        },
        Ok(None) if names.iter().any(|n| n == crate::store::identity::FILE) => Lost {
            range: None,
            evidence: "its STORE_ID is there (no checkpoint says which segments it had)".into(),
            checkpoint: false,
        },
        Ok(None) => return Ok(None),
    };
    Ok(Some(lost))
}

/// A store whose every segment is gone: `Corrupt` naming them, or (repair) a new, empty journal
/// numbered after the lost segments, each lost one reported in `missing` (`frames_lost`
/// `None`: a missing file's frame count is not recorded anywhere). The store keeps its identity.
fn recover_lost(
    dir: &Path,
    options: &StoreOptions,
    lost: Lost,
    now_ms: Box<dyn Fn() -> u64 + Send>,
) -> Result<(Io, State, RecoveryReport)> {
    use crate::journal::{missing::missing_file_msg, segment_name, Missing};
    let what = missing_file_msg(&format!(
        "every journal segment is gone, yet the directory held a store: {}",
        lost.evidence
    ));
    let (first, last) = match lost.range {
        Some((a, b)) => (segment_name(a), Some(segment_name(b))),
        None => ("*.seg".to_string(), None),
    };
    if !options.repair {
        let files = match &last {
            Some(l) if *l != first => format!("{first}..{l}"),
            _ => first,
        };
        return Err(Error::corrupt(
            &files,
            0,
            &format!("{what}; open with repair to accept the loss and start it empty"),
        ));
    }
    // Reported as unknown, in words too (review r5 #9).
    let what = format!("{what}{}", crate::journal::missing::UNKNOWN_COUNT);
    let mut report = RecoveryReport {
        checkpoint_ignored: lost
            .checkpoint
            .then(|| "every segment of the journal it covers is missing".into()),
        ..RecoveryReport::default()
    };
    let after = match lost.range {
        Some((a, b)) => {
            report.missing.extend((a..=b).map(|n| Missing {
                file: segment_name(n),
                what: what.clone(),
                frames_lost: None,
            }));
            b
        }
        None => {
            report.missing.push(Missing {
                file: first,
                what,
                frames_lost: None,
            });
            0
        }
    };
    let journal = Journal::open_after_loss(
        options.vfs.clone(),
        dir,
        options.segment_bytes,
        now_ms,
        after,
    )?;
    let io = Io::new(journal);
    let state = Rebuild::default().into_state(
        options,
        io.segments(),
        options.clock.now_ms(),
        &mut report.lost_queues,
    )?;
    checkpoint::remove(&options.vfs, dir);
    Ok((io, state, report))
}

/// An open store owned by this process, with its server.
pub(crate) struct Owner {
    pub(crate) engine: Engine,
    pub(crate) lock: Arc<DirLock>,
    server: Option<Server>,
    /// The `owner.sock` it bound: removed at close only if still that one.
    socket: Option<super::SocketKey>,
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
        // Checked under the lock: no journal segment yet means this open creates the store.
        let created = !crate::store::holds_store(dir)?;
        let (mut io, state, report) = recover(dir, &options)?;
        // Taken under the lock: from now on every write checks that the directory and the
        // `LOCK` file are still these (a moved directory or a deleted lock poisons the store).
        if let Some(lock_key) = lock.key() {
            io.set_home(crate::journal::Home {
                dir: dir_identity(dir)?,
                lock: lock_key,
            });
        }
        let id = crate::store::identity::ensure(dir, created)?;
        // A new store's identity is made after its journal: its later segments name it.
        io.set_store_id(&id);
        let files = io.files();
        let engine = Engine::new(state, io, files, options);
        // Deliveries the previous owner's clean close handed over to its clients stay theirs
        // (read before anyone can declare a queue and so fail them as crashed deliveries).
        if let Some(items) = take_handover(dir, &id) {
            engine.adopt_handover(&items);
        }
        // Make the recovery's own records (crash failures) durable before serving anyone.
        let mut owner = Owner::start(engine, &clock, lock, dir, report, id)?;
        // The stale socket of a dead owner is removed only now, while the lock is held.
        let served = bind_socket(dir).and_then(|(l, key)| {
            let report = owner.report.clone();
            Server::start(owner.engine.clone(), l, dir_identity(dir)?, report).map(|s| (s, key))
        });
        match served {
            Ok((s, key)) => {
                owner.server = Some(s);
                owner.socket = Some(key);
            }
            Err(e) => {
                let _ = owner.close();
                return Err(e);
            }
        }
        Ok(owner)
    }

    /// Opens the store in `dir` read-only (`StoreOptions::read_only`): no lock, no socket, no
    /// handover taken, no identity written; recovery and the engine run on an in-memory
    /// overlay of its files ([`crate::io::Overlay`]), so whatever they write (a torn tail cut
    /// off, the failures of deliveries a crash left, the close's checkpoint) never reaches the
    /// directory. Also returns the pid of a live process holding the store's lock, if one
    /// does (this view may then be stale).
    pub(crate) fn open_read_only(
        dir: &Path,
        options: &StoreOptions,
    ) -> Result<(Owner, Option<u32>)> {
        let holder = crate::store::live_holder(dir);
        let mut options = options.clone();
        options.vfs = Arc::new(crate::io::Overlay::default());
        // Live data is not rewritten forward into memory (only segments already dead are
        // dropped, in the overlay).
        options.compact_below = 0.0;
        let clock = options.clock.clone();
        let (io, state, report) = recover(dir, &options)?;
        let id = crate::store::identity::read(dir).unwrap_or_default();
        let files = io.files();
        let engine = Engine::new(state, io, files, options);
        // Recovery's own records (crash failures) are committed, to the overlay.
        let lock = Arc::new(DirLock::none(dir));
        let owner = Owner::start(engine, &clock, lock, dir, report, id)?;
        Ok((owner, holder))
    }

    /// Starts the engine's threads (the commit thread takes `lock`) and commits what recovery
    /// wrote (crash failures) before anyone is served: the common tail of both opens.
    fn start(
        engine: Engine,
        clock: &Arc<dyn crate::clock::Clock>,
        lock: Arc<DirLock>,
        dir: &Path,
        report: RecoveryReport,
        id: String,
    ) -> Result<Owner> {
        let waker = engine.waker();
        clock.subscribe(Arc::downgrade(&waker));
        if let Err(e) = start_threads(&engine, lock.clone()) {
            if engine.begin_close().is_ok() {
                let _ = engine.finish_close();
            }
            return Err(e);
        }
        // The timers' work that came due while the store was closed (expiry, a scheduled
        // repeat's next copy: see `engine::timers`) is done and durable when the open returns,
        // as after a jump of a manual clock, not at the commit thread's first housekeeping.
        waker();
        let owner = Owner {
            engine,
            lock,
            server: None,
            socket: None,
            dir: dir.to_path_buf(),
            report,
            id,
            _waker: waker,
        };
        if let Err(e) = owner.engine.flush() {
            let _ = owner.close();
            return Err(e);
        }
        Ok(owner)
    }

    /// Closes: no more requests are taken; what is being served finishes and is answered; the
    /// engine flushes and completes every callback; then the connections close (clients
    /// reconnect to the next owner and resend what was not answered) and the lock is released.
    pub(crate) fn close(&self) -> Result<()> {
        // The lock is released last, after the handover list is written and the socket
        // removed: both are this owner's only while it holds the lock.
        let keep = self.lock.keep_until_release();
        if self.server.is_some() {
            // While the clients' requests are still read: what was lent to them and not
            // handed out comes back uncounted (their returns are read), and what they handed
            // out is known (their notices come first) and handed over below.
            self.engine.take_back_all_lent();
        }
        self.stop_reading_requests();
        // Not closing (an error: called from a callback): `keep` undoes itself, and the commit
        // thread releases as before.
        let closed_already = self.engine.begin_close()?;
        keep.until_release();
        let r = if closed_already {
            Ok(())
        } else {
            self.engine.finish_close()
        };
        if let (Ok(()), Some(s)) = (&r, &self.server) {
            // A clean close: the deliveries the clients hold are handed over to the next
            // owner. Should the list not be written, they come back as after a crash
            // (counted, and their settles fail with `DeliveryLost`): nothing is lost.
            let items = self.engine.in_flight_of(&s.client_consumers());
            if !items.is_empty() {
                let _ = write_handover(&self.dir, &self.id, &items);
            }
        }
        if let Some(s) = &self.server {
            s.finish_stop();
        }
        if let Some(key) = self.socket {
            super::remove_socket(&self.dir, key);
        }
        self.lock.release();
        r
    }

    /// Stops reading the clients' requests: the first step of [`Owner::close`] (on its own, in
    /// tests of what a client sees in between).
    pub(crate) fn stop_reading_requests(&self) {
        if let Some(s) = &self.server {
            s.begin_stop();
        }
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

/// The file in the store directory listing the deliveries an owner's clean close handed over
/// to the next owner (see `engine::handover`): a line `mqlite-handover 2 <store id>`, then one
/// line `<queue id> <message id> <delivery count> <held until, ms by the store's clock>` per
/// delivery (version 1 had no hold time: such a list is held from the open that reads it). It
/// lives from the close to the next owner's open, which reads and removes it.
pub(crate) const HANDOVER_FILE: &str = "HANDOVER";

/// Writes the handover list (through a temporary file, fsync'd and renamed, the directory
/// fsync'd: the next owner reads it whole or not at all).
fn write_handover(dir: &Path, id: &str, items: &[Handed]) -> std::io::Result<()> {
    let mut text = format!("mqlite-handover 2 {id}\n");
    for (q, m, c, until) in items {
        text.push_str(&format!("{q} {m} {c} {until}\n"));
    }
    crate::store::identity::replace_file(dir, HANDOVER_FILE, text.as_bytes()).map_err(|(_, e)| e)
}

/// Reads and removes the handover list of the previous owner, if there is one for this store
/// (`id`). A list that does not parse, or names another store, is removed and not used: the
/// deliveries then fail as crashed ones, today's path.
fn take_handover(dir: &Path, id: &str) -> Option<Vec<Handed>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(HANDOVER_FILE);
    // A link planted in its place is not followed (as for the store's other files).
    let text = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&path)
        .and_then(|mut f| {
            let mut t = String::new();
            f.read_to_string(&mut t).map(|_| t)
        })
        .ok();
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(dir.join(format!("{HANDOVER_FILE}.tmp")));
    let text = text?;
    let mut lines = text.lines();
    // Version 1 (before the hold time per line): held from this open, as it was then.
    let v1 = match lines.next()? {
        h if h == format!("mqlite-handover 2 {id}") => false,
        h if h == format!("mqlite-handover 1 {id}") => true,
        _ => return None,
    };
    lines
        .map(|l| {
            let mut f = l.split(' ');
            let (q, m, c) = (
                f.next()?.parse().ok()?,
                f.next()?.parse().ok()?,
                f.next()?.parse().ok()?,
            );
            let until = match v1 {
                true => 0,
                false => f.next()?.parse().ok()?,
            };
            f.next().is_none().then_some((q, m, c, until))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::SOCKET_NAME;

    /// Review r6 #2: the commit thread released the store's lock when it ended, before the
    /// owner's close had written its `HANDOVER` list and removed its socket; a next owner let in
    /// between had its fresh `owner.sock` removed (no process could reach it: every other
    /// opener waited its `connect_timeout` and failed) and missed the list. The lock now
    /// outlives the commit thread until the close's last step.
    #[test]
    fn an_owner_keeps_the_lock_until_its_close_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let o = Owner::open(dir.path(), &StoreOptions::default()).unwrap();
        // The close's first steps, stopped where the commit thread has ended.
        o.lock.keep_until_release().until_release();
        assert!(!o.engine.begin_close().unwrap());
        o.engine.finish_close().unwrap();
        assert!(
            o.lock.key().is_some(),
            "the lock went with the commit thread, before the owner's close was done"
        );
        assert!(dir.path().join(SOCKET_NAME).exists());
        o.close().unwrap();
        assert!(o.lock.key().is_none());
        assert!(!dir.path().join(SOCKET_NAME).exists());
    }

    /// The whole kind: a closing owner removes only the socket it bound, never one a next
    /// owner put in its place.
    #[test]
    fn a_closing_owner_removes_only_its_own_socket() {
        let dir = tempfile::tempdir().unwrap();
        let (l, key) = crate::remote::bind_socket(dir.path()).unwrap();
        drop(l);
        // Another process's socket in its place.
        let (_l2, key2) = crate::remote::bind_socket(dir.path()).unwrap();
        assert_ne!(key, key2);
        crate::remote::remove_socket(dir.path(), key);
        assert!(
            dir.path().join(SOCKET_NAME).exists(),
            "removed the next owner's socket"
        );
        crate::remote::remove_socket(dir.path(), key2);
        assert!(!dir.path().join(SOCKET_NAME).exists());
    }
}
