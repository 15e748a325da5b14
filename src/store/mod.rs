//! The store's lifecycle: open (validate → directory → lock → journal → rebuild → threads),
//! close, and handles to its queues. What happens in between is the engine's.

pub(crate) mod identity;
mod lock;
mod threads;

pub(crate) use lock::{live_holder, lock_file, DirLock, HeldLock};
pub(crate) use threads::start as start_threads;

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::engine::on_library_thread;
use crate::error::{Error, ErrorKind, Result};
use crate::journal::RecoveryReport;
use crate::options::{QueueOptions, StoreOptions};
use crate::queue::Queue;
use crate::remote::backend::Backend;
use crate::remote::client::Client;
use crate::remote::owner::Owner;
use crate::remote::{dir_identity, OpenAs, Role};

/// An open store. Dropping it closes it (flushing pending sends and completing every callback).
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let store = mqlite::Store::open(dir.path(), mqlite::StoreOptions::default()).unwrap();
/// let q = store.queue("jobs").unwrap();
/// let id = q.send("hello").unwrap();
/// let d = q.receive(Some(std::time::Duration::ZERO)).unwrap().unwrap();
/// assert_eq!((d.id(), d.body()), (id, &b"hello"[..]));
/// d.ack().unwrap();
/// ```
pub struct Store {
    pub(crate) engine: Backend,
    dir: PathBuf,
    /// Set when this process owns the store (else it is a client of the owner).
    owner: Option<Owner>,
    report: RecoveryReport,
    id: String,
    /// Opened read-only (`StoreOptions::read_only`): `Some`, holding the pid of a live process
    /// that held the store's lock at the open (`None` inside: nobody did).
    read_only: Option<Option<u32>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Creates the store directory if needed and allowed, and resolves it. The directory is the
/// user's: only one mqlite creates gets a mode (0700, as the store may hold private data); an
/// existing one is not changed. With `create` false, a directory that holds no store (see
/// [`holds_store`]) is `NotFound`, and it is left as it was.
fn prepare_dir(dir: &Path, create: bool) -> Result<PathBuf> {
    if !dir.exists() {
        if !create {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no store at {}", dir.display()),
            ));
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), &e))?;
    }
    let dir = dir
        .canonicalize()
        .map_err(|e| Error::io(format!("resolving {}", dir.display()), &e))?;
    if !dir.is_dir() {
        return Err(Error::invalid(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    if !create && !holds_store(&dir)? {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "no store at {} (the directory holds no journal segment; open with create to \
                 make one there)",
                dir.display()
            ),
        ));
    }
    Ok(dir)
}

/// Whether `dir` holds a store: a journal segment (`*.seg`), or the `STORE_ID` or
/// `CHECKPOINT` of a store whose segments were all deleted — recovery then reports them
/// missing (`Corrupt`, or a repair's `missing`) instead of this open making a new, empty store
/// over the old one's files (review r5 #8).
pub(crate) fn holds_store(dir: &Path) -> Result<bool> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("reading {}", dir.display()), &e))?;
    Ok(entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name.ends_with(".seg") || name == identity::FILE || name == crate::engine::checkpoint::FILE
    }))
}

/// `InvalidArgument` when an open that became a client of the owner `owner_pid` was given a
/// store option that only an owner can apply: a clock other than the system clock (the
/// owner's runs every timer) or `repair` (only an owner recovers). The other store options of
/// a client are its owner's (documented on [`StoreOptions`]).
fn refuse_client_options(options: &StoreOptions, owner_pid: u32) -> Result<()> {
    let option = if !options.clock.is_system() {
        "clock (a client's timers run on its owner's clock; advance the owner's)"
    } else if options.repair {
        "repair=true (only the owner recovers and repairs a store; close it, then open with \
         repair)"
    } else {
        return Ok(());
    };
    Err(Error::invalid(format!(
        "this open became a client of the store's owner (pid {owner_pid}), which cannot apply \
         the option {option}; open without it, or with open_as=owner"
    )))
}

impl Store {
    /// Opens the store in `dir`, creating it if missing (`options.create`), and recovers its
    /// durable state: a torn tail is cut off; corruption elsewhere is an error of kind `Corrupt`
    /// naming the file and offset (unless `options.repair`). Options that cannot work are
    /// `InvalidArgument` before anything is touched.
    ///
    /// Several processes may open one store: the first (the one that gets the store's lock)
    /// becomes its **owner** and serves the others, which become its **clients** (see
    /// [`Store::role`]) with the same API; `options.open_as` restricts the roles allowed. An
    /// open that becomes a client refuses, with `InvalidArgument` naming the owner's pid, a
    /// clock other than [`SystemClock`](crate::SystemClock) and `repair`; its other store
    /// options are its owner's.
    pub fn open(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        options.validate()?;
        if options.read_only {
            // Nothing is created, locked or joined: the store's files are read as they are.
            let dir = prepare_dir(dir.as_ref(), false)?;
            let (owner, holder) = Owner::open_read_only(&dir, &options)?;
            return Ok(Store::owned(owner, dir, Some(holder)));
        }
        let dir = prepare_dir(dir.as_ref(), options.create)?;
        // A connect timeout past what an Instant holds never runs out (no panic).
        let deadline = crate::clock::deadline_after(options.connect_timeout);
        let mut backoff = std::time::Duration::from_millis(2);
        loop {
            if options.open_as != OpenAs::Client {
                match Owner::open(&dir, &options) {
                    Ok(owner) => return Ok(Store::owned(owner, dir, None)),
                    Err(e) if e.kind() == ErrorKind::Locked && options.open_as == OpenAs::Any => {}
                    Err(e) => return Err(e),
                }
            }
            let may_own = options.open_as == OpenAs::Any;
            let id = dir_identity(&dir)?;
            match Client::connect(dir.clone(), id, &options, may_own) {
                Ok(c) => {
                    // Options that cannot take effect in a client are refused rather than
                    // ignored (review r5 #16): the owner's clock runs the timers, and only an
                    // owner recovers (and so repairs). The connection is closed first.
                    if let Err(e) = refuse_client_options(&options, c.owner_pid()) {
                        let _ = c.close();
                        return Err(e);
                    }
                    // A client reports what the owner's recovery found (missing segments,
                    // quarantined ranges), as the owner itself does.
                    let report = c.owner_report()?;
                    // The owner wrote it before it served anyone.
                    let id = identity::read(&dir).ok_or_else(|| {
                        Error::io(
                            format!("reading {}", dir.join(identity::FILE).display()),
                            &std::io::Error::from(std::io::ErrorKind::NotFound),
                        )
                    })?;
                    return Ok(Store {
                        id,
                        engine: Backend::Remote(c),
                        dir,
                        owner: None,
                        report,
                        read_only: None,
                    });
                }
                // The owner went away while we connected: take the lock or find the next one.
                Err(e)
                    if e.kind() == ErrorKind::OwnerLost
                        && !crate::clock::time_left(deadline).is_zero() => {}
                Err(e) => return Err(e),
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(std::time::Duration::from_millis(100));
        }
    }

    /// A store this process opened itself (as its owner, or read-only: `read_only` holds the
    /// pid of a live lock holder, if any).
    fn owned(owner: Owner, dir: PathBuf, read_only: Option<Option<u32>>) -> Store {
        Store {
            engine: Backend::local(owner.engine.clone()),
            report: owner.report.clone(),
            id: owner.id.clone(),
            owner: Some(owner),
            dir,
            read_only,
        }
    }

    /// The store's identity: 32 hex digits, random, made when the store is created and kept in
    /// its `STORE_ID` file for as long as the store lives. A store deleted and created again at
    /// the same path gets a new one (its message ids restart from `ID:1`, so an id alone does
    /// not tell two incarnations apart; this does). A store made before identities existed
    /// gets one the first time it is opened by an owner (opened read-only, such a store's id
    /// is empty).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether this process owns the store (and serves the other processes that opened it) or
    /// is a client of the process that does. A client that took the store over when its owner
    /// went away is an owner from then on.
    pub fn role(&self) -> Role {
        match &self.engine {
            Backend::Local(..) => Role::Owner,
            Backend::Remote(c) if c.hosts_owner() => Role::Owner,
            Backend::Remote(_) => Role::Client,
        }
    }

    /// Whether the store was opened read-only ([`StoreOptions::read_only`]): it reads its files
    /// itself, as an owner does ([`Store::role`] is `Owner`), but holds no lock, serves no
    /// client and refuses every change with `ReadOnly`.
    pub fn is_read_only(&self) -> bool {
        self.read_only.is_some()
    }

    /// For a store opened read-only: the pid of a live process that held the store's lock when
    /// it was opened (found without taking the lock). That owner may have changed the store
    /// since, so what this handle shows may be stale. `None` when nobody held it, or when the
    /// store was not opened read-only.
    pub fn read_only_owner(&self) -> Option<u32> {
        self.read_only.flatten()
    }

    /// The pid of the process that owns the store (this process's own for an owner, and for a
    /// read-only open).
    pub fn owner_pid(&self) -> u32 {
        match &self.engine {
            Backend::Local(..) => std::process::id(),
            Backend::Remote(c) => c.owner_pid(),
        }
    }

    /// What recovery found when this store was opened: by this process if it became the
    /// store's owner, else by the owner it connected to (as the owner reported it then).
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A handle to queue `name` with the store's default options, creating it if new.
    pub fn queue(&self, name: &str) -> Result<Queue> {
        let id = self.engine.declare_queue(name, None)?;
        Ok(Queue::new(self.engine.clone(), id, name))
    }

    /// A handle to queue `name` with `options` (which replace the queue's options for this open).
    pub fn queue_with(&self, name: &str, options: QueueOptions) -> Result<Queue> {
        let id = self.engine.declare_queue(name, Some(&options))?;
        Ok(Queue::new(self.engine.clone(), id, name))
    }

    /// A handle to topic `name` (dot-separated segments, no wildcards: `orders.eu.created`).
    /// Publishing to it reaches every subscription whose pattern and selector match.
    ///
    /// Errors: `InvalidName` naming the rule broken.
    pub fn topic(&self, name: &str) -> Result<crate::Topic> {
        crate::Topic::new(self.engine.clone(), name)
    }

    /// Subscribes to the topics matching `pattern` (`*` one segment, `>` all remaining ones, as
    /// ActiveMQ and NATS): creates the subscription, attaches to the existing one of the same
    /// name (a durable subscription resumes with what it collected; a shared one gets one more
    /// competing consumer), or, when its pattern or selector changed and nobody is attached,
    /// replaces it and drops what it held (JMS). Durable when it returns.
    ///
    /// Errors: `InvalidName` for a bad pattern or subscription name; `InvalidArgument` for a
    /// selector that does not parse (naming the character position), a durable or shared
    /// subscription without a name, or a subscription in use by another subscriber (an
    /// unshared one, or one with another pattern or selector).
    pub fn subscribe(
        &self,
        pattern: &str,
        options: crate::SubscriptionOptions,
    ) -> Result<crate::Subscription> {
        let (id, name) = self.engine.subscribe(pattern, &options)?;
        let queue = Queue::new(
            self.engine.clone(),
            id,
            &crate::engine::topic_queue_name(&name),
        );
        Ok(crate::Subscription::new(queue, name))
    }

    /// Ends subscription `name` and drops every message it holds (JMS `unsubscribe`); their
    /// journal space is reclaimed as compaction goes.
    ///
    /// Errors: `NotFound` if there is no such subscription; `InvalidArgument` while a
    /// subscriber is attached to it (JMS forbids deleting an active subscription).
    pub fn unsubscribe(&self, name: &str) -> Result<()> {
        self.engine.unsubscribe(name)
    }

    /// Every subscription, by name.
    pub fn subscriptions(&self) -> Vec<crate::SubscriptionInfo> {
        self.engine.subscriptions()
    }

    /// The names of all queues, in creation order. Empty when they cannot be had (a client
    /// whose owner cannot be reached): see [`try_queue_names`](Store::try_queue_names).
    pub fn queue_names(&self) -> Vec<String> {
        self.engine.queue_names()
    }

    /// [`queue_names`](Store::queue_names), or the error that kept them from being read —
    /// `OwnerLost`, `Timeout`, `Closed`, `Poisoned` — so that a caller does not take an
    /// unreachable owner for a store without the queue (review r6 #2: a queue holding
    /// thousands of messages was reported "not found").
    pub fn try_queue_names(&self) -> Result<Vec<String>> {
        self.engine.try_queue_names()
    }

    /// Waits until everything sent so far is durable (and the lazy acks made so far).
    ///
    /// Errors: those of the flush; and in a client process, `DeliveryLost` ("n lazy acks
    /// failed: first: …") for lazy [`Delivery::ack`](crate::Delivery::ack)s the owner could
    /// not apply since they were last reported (each reported once; the flush itself was done).
    pub fn flush(&self) -> Result<()> {
        self.engine.flush()
    }

    /// How group commit shared its fdatasyncs since the store was opened (commits, syncs,
    /// callers released per sync; see [`CommitStats`](crate::CommitStats)). `None` in a client
    /// of another process's store: the owner commits.
    pub fn commit_stats(&self) -> Option<crate::CommitStats> {
        self.engine.commit_stats()
    }

    /// Disk bytes used by journal segments.
    pub fn disk_bytes(&self) -> u64 {
        self.engine.disk_bytes()
    }

    /// Closes the store: pending sends are flushed, every callback completes, the lock is
    /// released. Later calls on its queues fail with `Closed`. Called from inside one of the
    /// store's own callbacks it fails with `WouldDeadlock` instead of waiting for itself.
    /// Returns `Poisoned` if an earlier write or fsync failed (or a library thread panicked);
    /// the store is closed all the same (the error says so), and a second `close()` returns `Ok`.
    pub fn close(&self) -> Result<()> {
        if self.engine.forked() {
            // The parent's store: closing it here would stop the parent's threads and socket
            // (review r12 #7). Nothing is done; the parent goes on.
            return Err(super::remote::forked_error());
        }
        match (&self.owner, &self.engine) {
            (Some(o), _) => o.close(),
            (None, Backend::Remote(c)) => c.close(),
            (None, Backend::Local(..)) => Ok(()),
        }
    }

    /// `Ok` while the store is open and not poisoned (for the C face's own checks).
    #[cfg(feature = "capi")]
    pub(crate) fn check(&self) -> Result<()> {
        self.engine.check()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if self.engine.forked() {
            // A fork() child dropping (or `mqlite_store_free`) the store its parent opened
            // (review r12 #7): the close joined threads that do not exist in the child (a
            // panic) and shut down the owner's listening socket, which the child shares with
            // the parent — no other process could open the store again while the parent lived.
            // Leaked instead: the child's copies of the engine, the client or the owner are
            // never dropped, so nothing the parent shares is touched.
            std::mem::forget(self.owner.take());
            std::mem::forget(self.engine.clone());
            return;
        }
        if on_library_thread() {
            // Dropped inside a callback: stop without joining ourselves. The commit thread
            // flushes, then releases the lock; an open of this directory waits for that.
            match (&self.owner, &self.engine) {
                (Some(o), _) => return o.close_in_background(),
                (None, Backend::Remote(c)) => return c.close_in_background(),
                (None, Backend::Local(..)) => {}
            }
        }
        let _ = self.close();
    }
}
