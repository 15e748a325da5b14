//! # mqlite-bridge — store-and-forward between mqlite queues and a distributed broker
//!
//! A bridge runs any number of **routes**, each on its own tokio task:
//!
//! * **outbound** (an mqlite queue → NATS JetStream or RabbitMQ): receive from the queue,
//!   publish with a broker-side message id (`<origin>:ID:<n>`: JetStream's `Nats-Msg-Id`,
//!   AMQP's `message_id`), wait for the broker's confirm (JetStream PubAck; RabbitMQ publisher
//!   confirm of a persistent, mandatory publish), then ack locally. A publish the broker refuses
//!   (no stream captures the subject, an unroutable message, a nack) is nacked locally with the
//!   broker's error as the failure text, so the queue's redelivery policy retries it and its
//!   dead-letter queue finally holds it. A lost connection releases the message unpublished (no
//!   failure counted); the route reconnects with backoff and forwards everything stored
//!   meanwhile. Confirms are taken in publish order and at most `window` publishes await
//!   theirs, so messages leave in the queue's order (per group when groups are used: the queue
//!   hands out one message of a group at a time).
//! * **inbound** (a JetStream durable pull consumer with explicit acks, or a RabbitMQ queue with
//!   manual acks → an mqlite queue): store a batch durably in one transaction, each message with a
//!   dedup key derived from the broker's identity of the message (JetStream: stream, creation
//!   time and stream sequence; RabbitMQ: queue and `message_id`), then ack the broker. A crash
//!   between the two makes the broker deliver them again, and the queue's dedup window keeps
//!   them from being stored twice — provided the window covers the broker's redelivery horizon,
//!   which the route checks before it starts.
//!
//! Everything at-least-once: a crash of the bridge re-sends what was published but not yet
//! acked locally (JetStream's duplicate window drops it; RabbitMQ has no publisher dedup, so a
//! consumer must dedup on `message_id` — an inbound route does).
//!
//! ```no_run
//! use std::sync::Arc;
//! use mqlite_bridge::{Bridge, Config, NatsServer, OutboundRoute, InboundRoute};
//!
//! # async fn demo() -> Result<(), mqlite_bridge::Error> {
//! let store = Arc::new(mqlite::Store::open("/tmp/app-store", Default::default())?);
//! let config = Config {
//!     nats: Some(NatsServer { url: "nats://127.0.0.1:4222".into(), ack_timeout: std::time::Duration::from_secs(5) }),
//!     outbound: vec![OutboundRoute::nats("orders-out", "orders", "orders.created")],
//!     inbound: vec![InboundRoute::nats("commands-in", "COMMANDS", "edge-1", "commands")],
//!     ..Config::default()
//! };
//! let bridge = Bridge::start(store.clone(), config).await?;
//! // ... the application sends to "orders" and receives from "commands" as usual ...
//! for s in bridge.stats() {
//!     // `lag` is `None` while an inbound route cannot read its consumer's backlog.
//!     let lag = s.lag.map_or("unknown".to_string(), |n| n.to_string());
//!     println!("{}: {} forwarded, {} waiting", s.name, s.forwarded, lag);
//! }
//! bridge.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! The message mapping (properties with their types, priority, expiry, correlation id,
//! message id, timestamp, group) is described in the README's "Beyond one machine" section
//! and in [`mapping`].
#![deny(missing_docs)]

mod broker;
mod config;
mod engine;
mod limits;
mod loops;
pub mod mapping;
mod names;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "rabbitmq")]
mod rabbitmq;
mod stats;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

pub use config::{
    Backoff, Config, InboundRoute, NatsServer, NatsSource, NatsTarget, OutboundRoute, QueueConfig,
    RabbitServer, RabbitSource, RabbitTarget,
};
pub use stats::RouteStats;

use engine::RouteCtx;
use stats::Counters;

/// What can stop a bridge from starting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid (the message names the field or route).
    #[error("configuration: {0}")]
    Config(String),
    /// A file or store the command was pointed at does not exist: the configuration file, or
    /// the `store` directory without `create = true` (the message names it).
    #[error("configuration: {0}")]
    NotFound(String),
    /// The store could not be opened or a queue declared.
    #[error("store: {0}")]
    Store(#[from] mqlite::Error),
    /// A route needs a broker client this build lacks (cargo feature `nats` or `rabbitmq`).
    #[error("{0}")]
    Unsupported(String),
    /// Writing the stats file failed.
    #[error("stats file: {0}")]
    Stats(String),
    /// Another process runs a route on the same queue or broker source, or writes the same
    /// stats file (see [`run`]): the text names the lock file and the holder's pid.
    #[error("{0}")]
    Locked(String),
    /// A route stopped for good on an error (its queue's dedup window is too short for the
    /// broker's redelivery horizon, the store closed, …): [`run`] then stops the whole bridge
    /// gracefully and returns this, so the command exits non-zero.
    #[error("route {route:?} stopped: {error}")]
    Route {
        /// The route's name.
        route: String,
        /// Why it stopped.
        error: String,
    },
}

impl Error {
    /// The exit status of the command for this error, by the `mqlite` command line's table
    /// (`mqlite --help`), so a script driving `mqlite --json …` needs no special case for the
    /// bridge (review r3 #29): 2 usage (an invalid configuration, a route whose broker client
    /// is not compiled in, an invalid queue name or option), 3 corrupt, 4 locked (another
    /// process owns the store), 5 not found (no configuration file, no store at `store`),
    /// 1 anything else (a route stopped on an error, the stats file, I/O).
    pub fn status(&self) -> u8 {
        use mqlite::ErrorKind as K;
        match self {
            Error::Config(_) | Error::Unsupported(_) => 2,
            Error::NotFound(_) => 5,
            Error::Locked(_) => 4,
            Error::Store(e) => match e.kind() {
                K::Locked => 4,
                K::NotFound => 5,
                K::Corrupt => 3,
                K::InvalidArgument | K::InvalidName => 2,
                _ => 1,
            },
            Error::Stats(_) | Error::Route { .. } => 1,
        }
    }

    /// The name of [`Error::status`] as `mqlite --json` reports it in `error.kind`: `failed`,
    /// `usage`, `corrupt`, `locked` or `not_found`.
    pub fn kind(&self) -> &'static str {
        match self.status() {
            2 => "usage",
            3 => "corrupt",
            4 => "locked",
            5 => "not_found",
            _ => "failed",
        }
    }
}

struct Route {
    name: String,
    direction: &'static str,
    broker: &'static str,
    stats: Arc<Counters>,
    task: JoinHandle<()>,
    /// The local queue of an outbound route: its lag is read from it at each snapshot.
    queue: Option<mqlite::Queue>,
}

/// A running bridge: its routes' tasks on the current tokio runtime.
pub struct Bridge {
    routes: Vec<Route>,
    stop: watch::Sender<bool>,
    failed: Arc<tokio::sync::Notify>,
}

impl Bridge {
    /// Starts every route of `config` on the current tokio runtime, over `store` (its queues
    /// are declared with their present options; [`run`] applies `config.queues` when it opens
    /// the store itself). Brokers that are down do not stop the start: their routes connect
    /// when they come up. Errors: an invalid configuration, a route whose broker feature is
    /// not compiled in, a queue name the store refuses.
    pub async fn start(store: Arc<mqlite::Store>, config: Config) -> Result<Bridge, Error> {
        config.check()?;
        let (stop, stop_rx) = watch::channel(false);
        let origin = match &config.origin {
            Some(o) => o.clone(),
            None => default_origin(store.path(), store.id()),
        };
        let origin = mapping::encode_text(&origin).0;
        #[cfg(feature = "nats")]
        let js = match &config.nats {
            Some(server) => Some(
                nats::connect(server, config.reconnect.max)
                    .await
                    .map_err(Error::Config)?,
            ),
            None => None,
        };
        let mut routes = Vec::new();
        #[cfg(feature = "nats")]
        let loops = Arc::new(loops::Guard::new(&config));
        let failed = Arc::new(tokio::sync::Notify::new());
        let ctx = |name: &str, stats: &Arc<Counters>| RouteCtx {
            name: name.to_string(),
            stats: stats.clone(),
            stop: stop_rx.clone(),
            reconnect: config.reconnect.clone(),
            stats_interval: config.stats_interval,
            failed: failed.clone(),
        };
        for r in &config.outbound {
            let queue = store.queue(&r.queue)?;
            let lag_of = queue.clone();
            let stats = Arc::new(Counters::default());
            let c = ctx(&r.name, &stats);
            let (origin, window) = (origin.clone(), r.window);
            let (broker, task): (&'static str, JoinHandle<()>) = if let Some(t) = &r.nats {
                #[cfg(feature = "nats")]
                {
                    let js = js.clone().ok_or_else(no_server)?;
                    let timeout = config
                        .nats
                        .as_ref()
                        .map_or(std::time::Duration::ZERO, |n| n.ack_timeout);
                    let sink = nats::NatsSink::new(js, t.clone(), timeout);
                    (
                        "nats",
                        tokio::spawn(engine::outbound(c, queue, sink, window, origin)),
                    )
                }
                #[cfg(not(feature = "nats"))]
                return Err(missing("nats", &r.name, t));
            } else if let Some(t) = &r.rabbitmq {
                #[cfg(feature = "rabbitmq")]
                {
                    let server = config.rabbitmq.clone().ok_or_else(no_server)?;
                    let sink = rabbitmq::RabbitSink::new(server, t.clone());
                    (
                        "rabbitmq",
                        tokio::spawn(engine::outbound(c, queue, sink, window, origin)),
                    )
                }
                #[cfg(not(feature = "rabbitmq"))]
                return Err(missing("rabbitmq", &r.name, t));
            } else {
                return Err(no_server());
            };
            routes.push(Route {
                name: r.name.clone(),
                direction: "outbound",
                broker,
                stats,
                task,
                queue: Some(lag_of),
            });
        }
        for r in &config.inbound {
            let queue = store.queue(&r.queue)?;
            let stats = Arc::new(Counters::default());
            let c = ctx(&r.name, &stats);
            let (st, window, outage) = (store.clone(), r.window, r.max_outage);
            let (broker, task): (&'static str, JoinHandle<()>) = if let Some(s) = &r.nats {
                #[cfg(feature = "nats")]
                {
                    let js = js.clone().ok_or_else(no_server)?;
                    let src = nats::NatsConsumer::new(js, &r.name, loops.clone(), s.clone());
                    (
                        "nats",
                        tokio::spawn(engine::inbound(c, st, queue, src, window, outage)),
                    )
                }
                #[cfg(not(feature = "nats"))]
                return Err(missing("nats", &r.name, s));
            } else if let Some(s) = &r.rabbitmq {
                #[cfg(feature = "rabbitmq")]
                {
                    let server = config.rabbitmq.clone().ok_or_else(no_server)?;
                    let src = rabbitmq::RabbitConsumer::new(server, s.clone(), window);
                    (
                        "rabbitmq",
                        tokio::spawn(engine::inbound(c, st, queue, src, window, outage)),
                    )
                }
                #[cfg(not(feature = "rabbitmq"))]
                return Err(missing("rabbitmq", &r.name, s));
            } else {
                return Err(no_server());
            };
            routes.push(Route {
                name: r.name.clone(),
                direction: "inbound",
                broker,
                stats,
                task,
                queue: None,
            });
        }
        info!(routes = routes.len(), origin = %origin, "bridge started");
        Ok(Bridge {
            routes,
            stop,
            failed,
        })
    }

    /// The counters of every route, in configuration order (outbound routes first).
    pub fn stats(&self) -> Vec<RouteStats> {
        self.routes
            .iter()
            .map(|r| {
                let mut s = r.stats.snapshot(&r.name, r.direction, r.broker);
                if let Some(Ok(q)) = r.queue.as_ref().map(|q| q.stats()) {
                    s.lag = Some(q.messages);
                }
                s
            })
            .collect()
    }

    /// The first route that stopped for good on an error, with that error.
    pub fn failed_route(&self) -> Option<(String, String)> {
        self.stats()
            .into_iter()
            .find(|s| s.stopped && s.last_error.is_some())
            .map(|s| (s.name, s.last_error.unwrap_or_default()))
    }

    /// Resolves when a route stops for good on an error (see [`Bridge::failed_route`]).
    pub async fn route_failed(&self) {
        self.failed.notified().await
    }

    /// Stops gracefully: no new message is taken; publishes awaiting a confirm get it (or are
    /// given back to the queue without counting a failure), an inbound batch being stored is
    /// finished and acked. The confirms are awaited while the broker answers or (JetStream) its
    /// stream keeps storing the window, and at most one `ack_timeout` without either, whatever
    /// state the broker is in: a window given back while the stream still stores it would be
    /// stored twice by a restart after the stream's duplicate window. Returns the final
    /// counters once every route has stopped.
    pub async fn shutdown(mut self) -> Vec<RouteStats> {
        let _ = self.stop.send(true);
        for r in &mut self.routes.iter_mut() {
            let _ = (&mut r.task).await;
        }
        self.stats()
    }
}

fn no_server() -> Error {
    Error::Config("a route's broker has no server configured".into())
}

#[allow(dead_code)]
fn missing<T>(feature: &str, route: &str, _: &T) -> Error {
    Error::Unsupported(format!(
        "route {route:?} needs the `{feature}` cargo feature of mqlite-bridge"
    ))
}

/// `<host name><store directory>#<store id>`: unique per machine and store, and per incarnation
/// of the store: a store deleted and created again at the same path restarts its message ids
/// from `ID:1`, and without its new [`mqlite::Store::id`] those ids would repeat the old
/// store's, which JetStream's duplicate window drops as duplicates (loss).
fn default_origin(store: &Path, id: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let dir = store.canonicalize().unwrap_or_else(|_| store.to_path_buf());
    cut_origin(&format!("{host}{}#{id}", dir.display()))
}

/// The longest tail of `origin` that takes at most [`config::MAX_ORIGIN`] bytes once
/// percent-encoded (review r3 #5: cutting before encoding let a non-ASCII path make every
/// RabbitMQ message id longer than AMQP's 255 bytes). Cut from the front: the store id and the
/// end of the path tell stores apart best.
fn cut_origin(origin: &str) -> String {
    let mut encoded = 0;
    let mut start = origin.len();
    for (i, c) in origin.char_indices().rev() {
        let mut buf = [0; 4];
        let len = mapping::encode_text(c.encode_utf8(&mut buf)).0.len();
        if encoded + len > config::MAX_ORIGIN {
            break;
        }
        encoded += len;
        start = i;
    }
    origin[start..].to_string()
}

/// Writes `stats` as JSON to `path` (through a temporary file and a rename, so a reader never
/// sees half a file). Errors: `path` exists and is not a regular file (a symbolic link, a
/// device, a fifo: the rename would replace it, not write through it), or an I/O error.
pub fn write_stats(path: &Path, stats: &[RouteStats]) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: String| Error::Stats(format!("{}: {e}", path.display()));
    if let Some(what) = std::fs::symlink_metadata(path)
        .ok()
        .as_ref()
        .and_then(config::not_regular)
    {
        return Err(err(format!("is {what}, not replaced")));
    }
    // `time_ms` and `pid` tell a monitor whether the file is current (review r3 #33: a killed
    // bridge's last file said every route was connected, forever): older than a few
    // `stats_interval`s, or naming a pid that is gone, means the bridge is not running.
    let doc = serde_json::json!({
        "time_ms": mapping::now_ms(),
        "pid": std::process::id(),
        "routes": stats,
    });
    let json = serde_json::to_vec_pretty(&doc).map_err(|e| Error::Stats(e.to_string()))?;
    let tmp = path.with_extension("json.tmp");
    // Never through a link planted at the temporary name: it is removed, and `create_new`
    // (O_EXCL) refuses any name that exists, a link included.
    let _ = std::fs::remove_file(&tmp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&json))
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| err(e.to_string()))
}

/// A 64-bit FNV-1a hash: stable across builds and versions (a lock file's name must not change
/// between two bridges of different builds), unlike std's `DefaultHasher`.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The lock files of `config`'s routes in store directory `dir`, each with what it guards:
/// `bridge-out-<queue>.lock` per outbound queue (two processes reading one queue would each
/// get an arbitrary part of it, out of order), `bridge-in-<source>.lock` per inbound broker
/// source (a JetStream stream and consumer, a RabbitMQ queue), and `<stats_file>.lock`. Names
/// are percent-encoded as NATS header names are (`/` → `%2F`), and cut with a hash when long.
fn lock_paths(config: &Config, dir: &Path) -> Vec<(std::path::PathBuf, String, &'static str)> {
    const ROUTE: &str = "two bridges on one route would split its messages out of order";
    let file = |kind: &str, key: &str| {
        let mut name = mapping::encode_name(key);
        if name.len() > 120 {
            let cut = (0..=120)
                .rev()
                .find(|i| name.is_char_boundary(*i))
                .unwrap_or(0);
            name = format!("{}-{:016x}", &name[..cut], fnv1a(key));
        }
        dir.join(format!("bridge-{kind}-{name}.lock"))
    };
    let mut out = Vec::new();
    for r in &config.outbound {
        out.push((file("out", &r.queue), format!("queue {:?}", r.queue), ROUTE));
    }
    for r in &config.inbound {
        #[allow(unused_mut)]
        let mut key = format!("route {}", r.name);
        #[cfg(feature = "nats")]
        if let Some(n) = &r.nats {
            key = format!("nats {} {}", n.stream, n.consumer);
        }
        #[cfg(feature = "rabbitmq")]
        if let Some(q) = &r.rabbitmq {
            key = format!("rabbitmq {}", q.queue);
        }
        out.push((file("in", &key), format!("inbound source {key:?}"), ROUTE));
    }
    if let Some(stats) = &config.stats_file {
        let mut lock = stats.clone().into_os_string();
        lock.push(".lock");
        out.push((
            lock.into(),
            format!("stats file {}", stats.display()),
            "two bridges would overwrite each other's counters in it",
        ));
    }
    out
}

/// Takes an exclusive `flock` on `path` (created if missing) for the life of the returned file,
/// and writes this process's pid into it. Errors: [`Error::Locked`] naming what the lock guards
/// and the holder's pid when another process (or another bridge of this one) holds it; an I/O
/// error otherwise. Review r8 #4: two bridges started with one configuration both ran
/// silently, split each queue between them (order lost) and overwrote one stats file.
///
/// `why` says what two holders would do (review r9 #3: the stats file's refusal gave a route's
/// reason).
fn take_lock(path: &Path, what: &str, why: &str) -> Result<std::fs::File, Error> {
    use std::io::{Read, Seek, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| Error::Stats(format!("lock file {}: {e}", path.display()));
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(io)?;
    match f.try_lock() {
        Ok(()) => {
            f.set_len(0).map_err(io)?;
            f.write_all(format!("{}\n", std::process::id()).as_bytes())
                .map_err(io)?;
            Ok(f)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = f.rewind().and_then(|_| f.read_to_string(&mut pid));
            let pid = match pid.trim() {
                "" => "unknown",
                p => p,
            };
            Err(Error::Locked(format!(
                "{what} is in use by another bridge (pid {pid}; lock file {}): {why}",
                path.display()
            )))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

/// Opens the store named by `config.store` (with `config.queues` applied), runs the bridge
/// until `shutdown` completes, then stops it gracefully and closes the store. The stats file,
/// if configured, is rewritten every `stats_interval` and once more at the end. This is the
/// whole `mqlite-bridge --config FILE` command, minus signals and logging.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    config.check()?;
    config.check_runnable()?;
    config.check_stats_file()?;
    let dir = config
        .store
        .clone()
        .ok_or_else(|| Error::Config("`store` (the store directory) is missing".into()))?;
    let store_opts = mqlite::StoreOptions {
        create: config.create,
        ..Default::default()
    };
    let store = match mqlite::Store::open(&dir, store_opts.clone()) {
        Err(e) if e.kind() == mqlite::ErrorKind::NotFound && !config.create => {
            return Err(Error::NotFound(format!(
                "store {}: {} (set `create = true` in the config to make a new store there)",
                dir.display(),
                e.message()
            )))
        }
        r => Arc::new(r?),
    };
    // Held until this returns (closing a file releases its lock).
    let mut _locks = Vec::new();
    for (path, what, why) in lock_paths(&config, store.path()) {
        _locks.push(take_lock(&path, &what, why)?);
    }
    for (name, q) in &config.queues {
        store.queue_with(name, q.to_options(&store_opts))?;
    }
    let stats_file = config.stats_file.clone();
    let interval = config.stats_interval;
    let bridge = Bridge::start(store.clone(), config).await?;
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = bridge.route_failed() => break,
            _ = tick.tick() => {
                if let Some(path) = &stats_file {
                    if let Err(e) = write_stats(path, &bridge.stats()) {
                        tracing::warn!("{e}");
                    }
                }
            }
        }
    }
    info!("stopping");
    let failed = bridge.failed_route();
    let last = bridge.shutdown().await;
    if let Some(path) = &stats_file {
        // Counters after the stop (the final acks and releases included). The file is a side
        // output: its failure (a directory removed meanwhile) is a warning, not a failed stop
        // (review r3 #35: a supervisor recorded a graceful stop as failed).
        if let Err(e) = write_stats(path, &last) {
            tracing::warn!("{e}");
        }
    }
    store.close()?;
    if let Some((route, error)) = failed {
        return Err(Error::Route { route, error });
    }
    Ok(())
}

/// Resolves on SIGINT, SIGTERM or SIGHUP (the handlers are installed when it is first polled;
/// see [`signals_from_now`] to install them at once).
pub async fn signal() {
    signals_from_now().await
}

/// The signals that stop the bridge gracefully: Ctrl-C, `kill`, a closed terminal or ssh
/// session — as every `mqlite` command closes its store on them (review r11 #5: SIGHUP killed
/// the bridge by the default action, with no graceful stop).
const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Whether signal `sig` is ignored in this process now (as `nohup` leaves SIGHUP, and a shell
/// leaves SIGINT for a background job).
fn ignored(sig: libc::c_int) -> bool {
    // SAFETY: reads the current disposition only (a null new action).
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
    }
}

/// Installs the handlers of SIGINT, SIGTERM and SIGHUP now — from this call on, each is caught
/// instead of ending the process — and returns a future that resolves on the first of them.
/// A signal this process started with ignored stays ignored (review r11 #6: the bridge run by
/// `nohup`, or as a script's background job, must not stop on the hangup or Ctrl-C its caller
/// meant it to survive), as daemons that respect `nohup` do. Must be called within a tokio
/// runtime (`Runtime::enter`). Review r9 #8: installed when the run first polled them, after
/// the configuration, the store and the locks, a SIGTERM in the first milliseconds killed the
/// bridge by the default action (exit 143, no log line).
pub fn signals_from_now() -> impl Future<Output = ()> + Send {
    use tokio::signal::unix::{signal, SignalKind};
    let mut streams = Vec::new();
    for sig in STOP_SIGNALS.into_iter().filter(|&s| !ignored(s)) {
        match signal(SignalKind::from_raw(sig)) {
            Ok(s) => streams.push(s),
            Err(e) => tracing::warn!("cannot handle signal {sig}: {e}"),
        }
    }
    async move {
        if streams.is_empty() {
            // Every stop signal ignored by the caller: the bridge runs until it is killed or
            // a route stops it.
            return std::future::pending().await;
        }
        let any = streams.iter_mut().map(|s| Box::pin(s.recv()));
        futures_select_all(any).await;
    }
}

/// Waits for the first of `futures`.
async fn futures_select_all<F: Future + Unpin>(futures: impl Iterator<Item = F>) {
    let mut all: Vec<F> = futures.collect();
    std::future::poll_fn(|cx| {
        for f in all.iter_mut() {
            if std::pin::Pin::new(f).poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// The `mqlite-bridge --config FILE` command as one call (for a command line that wants it as
/// a subcommand): logs to stderr through `tracing` (filter from `RUST_LOG`, default `info`),
/// reads the configuration, runs until SIGINT, SIGTERM or SIGHUP, stops gracefully. A route that stops
/// for good on an error stops the whole bridge (gracefully) and makes this an error, so the
/// command exits non-zero.
pub fn main_with_config(path: &Path) -> Result<(), Error> {
    main_with_config_as(path, false)
}

/// The log filter of the command: `RUST_LOG` (default `info`), with lapin's own events off
/// unless `RUST_LOG` names `lapin`. lapin logs an ordinary broker restart at ERROR level
/// ("error doing IO", "Connection error"), beside the bridge's own WARN for the lost
/// connection (review r3 #27: operators alerting on ERROR were paged by every restart).
/// Every failure lapin has is returned to the bridge, which logs it itself: a WARN for an
/// outage, an ERROR for a misconfiguration. `RUST_LOG=info,lapin=debug` shows lapin's events.
/// An unparsable `RUST_LOG` falls back to the default.
pub fn log_filter(rust_log: Option<&str>) -> tracing_subscriber::EnvFilter {
    let spec = rust_log.filter(|s| !s.trim().is_empty()).unwrap_or("info");
    let filter = tracing_subscriber::EnvFilter::try_new(spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if spec.contains("lapin") {
        return filter;
    }
    match "lapin=off".parse() {
        Ok(d) => filter.add_directive(d),
        Err(_) => filter,
    }
}

/// [`main_with_config`], logging as JSON lines when `json` (one object per event, as
/// `tracing-subscriber`'s JSON format: `timestamp`, `level`, `fields.message`, `fields.route`).
pub fn main_with_config_as(path: &Path, json: bool) -> Result<(), Error> {
    let filter = || log_filter(std::env::var("RUST_LOG").ok().as_deref());
    let _ = if json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .try_init()
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            // Colours only for a terminal: a log file or journald gets plain text.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Config(format!("starting the tokio runtime: {e}")))?;
    // Before anything that can take time (the configuration, the store, the locks): a stop
    // asked for meanwhile is a graceful stop, not a kill.
    let stop = {
        let _in_runtime = rt.enter();
        signals_from_now()
    };
    let config = Config::from_file(path)?;
    rt.block_on(run(config, stop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lapin_events_are_off_unless_named() {
        // Review r3 #27: lapin's ERROR on a broker restart must not reach the log by default.
        for spec in [
            None,
            Some("info"),
            Some("debug"),
            Some("warn,mqlite_bridge=debug"),
        ] {
            let f = log_filter(spec).to_string();
            assert!(f.contains("lapin=off"), "{spec:?}: {f}");
        }
        assert!(!log_filter(Some("info,lapin=debug"))
            .to_string()
            .contains("lapin=off"));
    }

    #[test]
    fn a_default_origin_fits_the_limit_once_encoded() {
        // Review r3 #5: a store under a long non-ASCII path gave an origin of 200 raw bytes,
        // about 580 once percent-encoded: every RabbitMQ message id was refused.
        let long = format!("host/tmp/{}#0123456789abcdef", "数据".repeat(30));
        let cut = cut_origin(&long);
        let encoded = mapping::encode_text(&cut).0;
        assert!(encoded.len() <= config::MAX_ORIGIN, "{}", encoded.len());
        assert!(encoded.len() > config::MAX_ORIGIN - 9, "{}", encoded.len());
        assert!(cut.ends_with("数据#0123456789abcdef"), "{cut}");
        assert!(long.ends_with(&cut));
        // `<origin>:ID:<u64::MAX>` fits an AMQP short string.
        assert!(format!("{encoded}:ID:{}", u64::MAX).len() <= 255);
        let short = "host/tmp/s#id";
        assert_eq!(cut_origin(short), short);
    }
}
