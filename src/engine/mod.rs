//! The engine: every queue's state behind one lock, group commit, and the one request API that
//! every face calls.
//!
//! ```text
//!  faces: Queue, Delivery, Consumer, Transaction (Rust) · src/ffi (C) · bindings/python
//!            │  one call per operation, plain data in and out (QueueId, DeliveryRef, Message…)
//!            ▼
//!  Engine ── state.rs (State: queues, consumers, the pending batch) ── queue.rs (ordering)
//!            │ send.rs · deliver.rs · settle.rs · timers.rs · txn.rs · replay.rs · admin.rs ·
//!            │ inspect.rs (operators' requests) · topic.rs (publish, subscriptions)
//!            │ records appended to the pending batch under the state lock (record.rs)
//!            ▼
//!  commit.rs (group commit: one write + one fdatasync) ── compact.rs ── journal ── io (Vfs)
//! ```
//!
//! ## Requests
//! Every face operation is one method of [`Engine`] taking plain data (queue ids, messages,
//! [`DeliveryRef`]s) and returning plain data ([`Received`], ids, [`QueueStats`]). Consumers and
//! deliveries are named by ids ([`ConsumerId`], [`DeliveryTag`]), never by objects that hold a
//! lock, so that another process can make the same calls (over a socket) and later features
//! (prefetch buffers, lazy acks, topic subscriptions) enter through the same methods. No face
//! touches the pending batch, the journal or a lock.
//!
//! ## Locks
//! Declared in [`Shared`], taken in this order and never the other way round:
//! 1. `io` — the journal and the commit buffers. Its holder leads the next group commit.
//! 2. `state` — everything else: queues, consumers, the pending batch, commit progress.
//! 3. `callbacks` — the queue of completed callbacks.
//!
//! A thread holding `state` never waits for `io` (it only `try_lock`s it, to lead a commit
//! itself). Nothing reads the disk while holding `state`: record bodies are read from a
//! [`read::Snapshot`] taken under the lock and read after it is released. Callbacks run with no
//! lock held. The condition variables `work`, `done`, `gather`, `avail` and `room` wait on
//! `state`,
//! `callbacks_cv` on `callbacks`.
//!
//! ## Failure
//! A failed write or fsync, or a panic under the state lock or in a library thread, poisons the
//! store (see [`State::check`]): every later call fails with `Poisoned`, every pending callback
//! completes with an error, and closing still works.

mod admin;
mod batch;
mod callbacks;
pub(crate) mod checkpoint;
mod commit;
#[cfg(test)]
mod commit_tests;
mod compact;
mod deliver;
mod handover;
mod inspect;
mod prefetch;
mod queue;
mod read;
mod rebuild;
pub mod record;
mod replay;
mod select;
mod send;
mod settle;
mod state;
mod timers;
mod topic;
mod txn;
#[cfg(test)]
mod wake_tests;

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Result};
use crate::journal::Files;
use crate::message::{Message, MessageId};
use crate::options::StoreOptions;

pub use admin::{PurgeFilter, PurgeReport, QueueStats};
#[cfg(feature = "capi")]
pub(crate) use callbacks::PlainCallback;
pub(crate) use callbacks::{
    mark_callback_thread, mark_library_thread, on_callback_thread, on_library_thread, Callback,
};
pub use commit::CommitStats;
pub(crate) use commit::Io;
pub(crate) use handover::Handed;
pub use inspect::{CompactReport, MessageState, StoredMessage, TransferFilter, TransferReport};
pub(crate) use queue::is_resend_key;
pub(crate) use rebuild::Rebuild;
pub use replay::ReplayFilter;
pub(crate) use send::Dest;
pub(crate) use state::State;
pub(crate) use topic::{queue_name as topic_queue_name, SUBSCRIPTION_PREFIX};
pub use topic::{SubscriptionInfo, SubscriptionOptions, TopicStats};

/// A queue, by its id in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct QueueId(pub u32);

/// A consumer, by its id in the store. [`ConsumerId::NONE`] is a plain receive of a queue
/// (explicit acks, no consumer to close).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ConsumerId(pub u64);

impl ConsumerId {
    /// No consumer: a plain receive of the queue.
    pub const NONE: ConsumerId = ConsumerId(0);
}

/// One hand-over of a message, unique in the store (as an AMQP delivery tag). Settling names it,
/// so a delivery that timed out cannot settle the message's next delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct DeliveryTag(pub u64);

/// A delivery, as the faces name it to settle it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeliveryRef {
    pub queue: QueueId,
    pub id: MessageId,
    pub tag: DeliveryTag,
    /// The consumer it was handed to (cumulative acks are per consumer).
    pub consumer: ConsumerId,
    /// Which connection to the store's owner handed it out (0: this process's own engine); a
    /// delivery of an earlier connection can no longer be settled (see `src/remote`).
    pub origin: u64,
    /// Its delivery count: with the queue and id, it names a delivery handed over by an owner's
    /// clean close to the next owner (see `handover`).
    pub count: u32,
}

/// How a delivery is settled.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Settle<'a> {
    /// Done: never delivered again (cumulative consumers: every earlier delivery too). Lazy
    /// unless the queue's ack durability is `Sync`: returns once the ack is queued for the next
    /// group commit, due within the lazy-ack interval.
    Ack,
    /// [`Settle::Ack`] that returns only once the ack is durable.
    AckSync,
    /// A failed delivery; `delay` overrides the policy's delay before the redelivery.
    Nack {
        reason: &'a str,
        delay: Option<Duration>,
    },
    /// Poison: straight to the dead-letter queue.
    Reject { reason: &'a str },
    /// Given back without counting a failure.
    Release,
}

/// A message handed over by [`Engine::receive`].
#[derive(Debug)]
pub(crate) struct Received {
    pub message: Message,
    pub tag: DeliveryTag,
    pub count: u32,
}

/// Where a transaction's message goes: a queue, or a topic (published at commit).
#[derive(Debug, Clone)]
pub(crate) enum TxnDest {
    Queue(QueueId),
    Topic(Arc<str>),
}

/// Sends, publishes and acks committed together by [`Engine::commit_txn`].
#[derive(Debug, Default)]
pub(crate) struct TxnSpec {
    pub sends: Vec<(TxnDest, Message)>,
    pub acks: Vec<DeliveryRef>,
}

/// What the store's threads and every handle share. The lock order is in the module docs.
pub(crate) struct Shared {
    /// Lock 1: the journal side of group commit; its holder leads the next commit.
    pub(crate) io: Mutex<Io>,
    /// Lock 2: every queue's state and the pending batch.
    state: Mutex<State>,
    /// Lock 3: completed callbacks for the callback thread.
    callbacks: Mutex<callbacks::CallbackQueue>,
    /// The commit thread waits here (on `state`) for work.
    work: Condvar,
    /// Callers wait here (on `state`) for their batch.
    done: Condvar,
    /// A leader waits here (on `state`) for callers to join its batch (group commit across
    /// threads).
    gather: Condvar,
    /// Receivers wait here (on `state`) for messages.
    avail: Condvar,
    /// Producers wait here (on `state`) for room (queue limits, producer window).
    room: Condvar,
    /// The callback thread waits here (on `callbacks`).
    callbacks_cv: Condvar,
    clock: Arc<dyn Clock>,
    opts: StoreOptions,
    /// Read access to the journal's segments, for reads outside every lock.
    files: Files,
    /// The library threads, joined by [`Engine::finish_close`].
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Asks the client processes of the given consumers to give back the messages lent to them
    /// and not handed out (set by an owner's server; see `prefetch`). Called without the
    /// state lock held.
    recall: Mutex<Option<RecallHook>>,
    #[cfg(test)]
    pub(crate) test_hooks: TestHooks,
}

/// See [`Shared::recall`]: called with the queue id and the consumers to recall.
pub(crate) type RecallHook = Arc<dyn Fn(u32, &[u64]) + Send + Sync>;

/// A handle to the engine: cheap to clone, usable from any thread.
#[derive(Clone)]
pub(crate) struct Engine {
    shared: Arc<Shared>,
}

/// The state lock's guard.
type Guard<'a> = MutexGuard<'a, State>;

impl Shared {
    /// Takes the state lock. A panic while it was held may have left the state half changed: the
    /// store is poisoned then (and stays usable enough to close).
    fn lock(&self) -> Guard<'_> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => {
                let mut g = p.into_inner();
                if g.error.is_none() {
                    g.error = Some(Error::new(
                        ErrorKind::Internal,
                        "a panic inside mqlite interrupted a change to the store's state",
                    ));
                }
                self.state.clear_poison();
                g
            }
        }
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Wakes every waiter: receivers, producers and the commit thread.
    fn wake_all(&self) {
        self.avail.notify_all();
        self.room.notify_all();
        self.work.notify_all();
        self.done.notify_all();
    }
}

impl Engine {
    /// The engine of a store whose state was rebuilt from its journal. The caller starts the
    /// library threads ([`Engine::run_commit_thread`], [`Engine::run_callback_thread`]).
    pub(crate) fn new(mut state: State, io: Io, files: Files, opts: StoreOptions) -> Engine {
        state.files = files.clone();
        Engine {
            shared: Arc::new(Shared {
                io: Mutex::new(io),
                state: Mutex::new(state),
                callbacks: Mutex::new(Default::default()),
                work: Condvar::new(),
                done: Condvar::new(),
                gather: Condvar::new(),
                avail: Condvar::new(),
                room: Condvar::new(),
                callbacks_cv: Condvar::new(),
                clock: opts.clock.clone(),
                opts,
                files,
                threads: Mutex::new(Vec::new()),
                recall: Mutex::new(None),
                #[cfg(test)]
                test_hooks: TestHooks::default(),
            }),
        }
    }

    /// Whether `other` is a handle to the same engine.
    pub(crate) fn same(&self, other: &Engine) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// A waker for a clock that jumps (a manual clock): runs the timers of every queue at once
    /// (expiry, due delays, ack timeouts), waits for their records, and wakes every waiter.
    pub(crate) fn waker(&self) -> Arc<dyn Fn() + Send + Sync> {
        let weak = Arc::downgrade(&self.shared);
        Arc::new(move || {
            if let Some(shared) = weak.upgrade() {
                let engine = Engine { shared };
                let mut g = engine.shared.lock();
                // Wait for the timers' records (expiry moves, repeats): when the clock's
                // `advance` returns, what it made happen is visible everywhere. A repeat's next
                // occurrence may be due at once (a schedule catching up): it is in the queue only
                // once its record is written, and makes its own next one at the next pass, so
                // passes go on while one comes due (bounded: a 1 ms period caught up for 1 s).
                for _ in 0..10_000 {
                    if g.check().is_err() {
                        break;
                    }
                    g = engine.housekeeping(g);
                    if g.pending.is_empty() {
                        break;
                    }
                    let Ok(g2) = engine.commit(g) else {
                        engine.shared.wake_all();
                        return;
                    };
                    g = g2;
                    let now = engine.shared.now();
                    if !g
                        .queues
                        .iter()
                        .any(|q| q.repeat_due.first().is_some_and(|&(due, _, _)| due <= now))
                    {
                        break;
                    }
                }
                drop(g);
                engine.shared.wake_all();
            }
        })
    }

    /// Adds a library thread for [`Engine::finish_close`] to join.
    pub(crate) fn add_thread(&self, t: JoinHandle<()>) {
        self.shared
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(t);
    }

    /// `Ok` while the store is open and not poisoned.
    pub(crate) fn check(&self) -> Result<()> {
        self.shared.lock().check()
    }

    /// `ReadOnly` naming `what` when the store was opened read-only (`StoreOptions::read_only`):
    /// checked by every call of the faces that would change the store (see `remote::backend`).
    pub(crate) fn refuse_if_read_only(&self, what: &str) -> Result<()> {
        if !self.shared.opts.read_only {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::ReadOnly,
            format!(
                "{what} is refused: the store is opened read-only (it would change it; open \
                 it without read_only, on a writable file system, to do that)"
            ),
        ))
    }

    /// Poisons the store after a panic on a library thread (`what` names the thread) and
    /// completes every pending callback with the error. Returns the error for the caller.
    pub(crate) fn poison_after_panic(
        &self,
        what: &str,
        payload: &(dyn std::any::Any + Send),
    ) -> Error {
        self.shared.poison_after_panic(what, payload, None)
    }

    /// The commit thread's body (see [`commit`]).
    pub(crate) fn run_commit_thread(&self) {
        self.run_commit_loop();
    }

    /// The callback thread's body.
    pub(crate) fn run_callback_thread(&self) {
        self.shared.run_callbacks();
    }

    /// Tells the callback thread that no more callbacks will come (the commit thread's last act).
    pub(crate) fn stop_callback_thread(&self) {
        self.shared.stop_callbacks();
    }
}

/// The text of a panic's payload.
pub(crate) fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Switches for tests that make a library thread fail on purpose.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct TestHooks {
    /// The callback thread's loop panics once, between taking callbacks and running them.
    pub panic_in_callback_loop: std::sync::atomic::AtomicBool,
    /// The idle commit thread sleeps for good instead of waking for its housekeeping.
    pub no_periodic_wake: std::sync::atomic::AtomicBool,
    /// When not 0: how long (ms) a leader may wait for callers to join its batch, instead of
    /// `GATHER_MAX` (a test that checks who joins must not depend on how fast threads run).
    pub gather_max_ms: std::sync::atomic::AtomicU64,
    /// When set: the next take pauses with its records unread and the lock released (it
    /// sends on the first channel, then waits for the second), so a test can close the store
    /// under it.
    #[allow(clippy::type_complexity)]
    pub pause_take:
        std::sync::Mutex<Option<(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>)>>,
}

#[cfg(test)]
impl TestHooks {
    fn maybe_panic_in_callback_loop(&self) {
        if self
            .panic_in_callback_loop
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("test hook: the callback loop panics");
        }
    }
}

#[cfg(test)]
impl Engine {
    pub(crate) fn test_hooks(&self) -> &TestHooks {
        &self.shared.test_hooks
    }
}
