//! Opening a store and its queues the way every command does.

use std::path::Path;
use std::sync::{Arc, Mutex};

use mqlite::{MessageId, OpenAs, Queue, QueueOptions, RedeliveryPolicy, Role, Store, StoreOptions};

use crate::error::{CliError, Result, Status};
use crate::parse;

/// Fails unless `dir` holds a store (at least one journal segment): `NotFound` when there is
/// no such directory, DIR is not a directory, or it holds no segments; `Failed` when it cannot
/// be read (permission denied, …) — that is not an absent store, and saying so would send the
/// operator looking in the wrong place. Commands never create a store by accident: a typo in
/// DIR must not leave an empty store behind.
pub fn require_store(dir: &Path) -> Result<()> {
    let at = dir.display();
    let missing = |why: &str| {
        Err(CliError::new(
            Status::NotFound,
            format!("no store at {at} ({why})"),
        ))
    };
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            let segment = rd.filter_map(|e| e.ok()).any(|e| {
                e.file_name()
                    .to_str()
                    .and_then(mqlite::journal::parse_segment_name)
                    .is_some()
            });
            if segment {
                Ok(())
            } else {
                missing("the directory holds no journal segments")
            }
        }
        Err(_) if dir.metadata().is_ok_and(|m| !m.is_dir()) => {
            missing("it is a file, not a directory")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing("no such directory"),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            missing("a part of the path is a file, not a directory")
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(CliError::new(
            Status::Failed,
            format!("cannot read the store directory {at}: permission denied"),
        )),
        Err(e) => Err(CliError::new(
            Status::Failed,
            format!("cannot read the store directory {at}: {e}"),
        )),
    }
}

/// Opens the input file that option `option` (`--file`, `--input`) names, for reading: `NotFound`
/// (status 5) when there is no such file, `Failed` (status 1) when it is a directory or cannot
/// be read; the message names the option and the path.
pub fn input_file(option: &str, path: &Path) -> Result<std::fs::File> {
    let at = path.display();
    let failed = |why: String| CliError::new(Status::Failed, format!("{option} {at}: {why}"));
    // A directory opens on Linux (reading it then fails with EISDIR): refuse it up front.
    if path.is_dir() {
        return Err(failed("is a directory, not a file".into()));
    }
    std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            CliError::new(Status::NotFound, format!("{option} {at}: no such file"))
        }
        _ => failed(format!("cannot open it: {e}")),
    })
}

/// The largest body a message may have here: the store's default `max_body_bytes` (16 MiB).
pub fn max_body() -> usize {
    mqlite::StoreOptions::default().max_body_bytes
}

/// Reads all of `r` as one message body, refusing (status 7, naming `what`) as soon as it is
/// over [`max_body`] bytes: review r3 #38 — reading first and checking after let a wrong input
/// (`/dev/zero`, a huge file) grow the command's memory without bound.
pub fn read_body(r: impl std::io::Read, what: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let max = max_body();
    let mut b = Vec::new();
    r.take(max as u64 + 1)
        .read_to_end(&mut b)
        .map_err(|e| CliError::new(Status::Failed, format!("{what}: cannot read it: {e}")))?;
    if b.len() > max {
        return Err(CliError::new(
            Status::BadInput,
            format!("{what}: the body is over the limit of {max} bytes (max_body_bytes)"),
        ));
    }
    Ok(b)
}

/// The content of the file that option `option` names (see [`input_file`]), as one message
/// body (see [`read_body`]).
pub fn read_input_file(option: &str, path: &Path) -> Result<Vec<u8>> {
    read_body(
        input_file(option, path)?,
        &format!("{option} {}", path.display()),
    )
}

/// The `--timeout` of this run as given, set once before any store is opened (see
/// [`set_connect_timeout`]).
static CONNECT_TIMEOUT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sets how long a client waits for the store's owner (`--timeout`, `MQLITE_CONNECT_TIMEOUT`):
/// the core's `StoreOptions::connect_timeout` of every open of this run that may be a client.
/// The value is checked there ([`parse::connect_timeout`]), not here: a command that never
/// waits on an owner (`completions`, `verify`, the owner-only maintenance commands) is not
/// broken by a bad value in the environment (review r4 #13). Set once, by `cmd::run`; a second
/// call is ignored.
pub fn set_connect_timeout(t: String) {
    let _ = CONNECT_TIMEOUT.set(t);
}

/// Below this, a `--timeout` that expires may be the timeout's fault, not the owner's: a
/// healthy owner's answer to the connect handshake can take a few milliseconds on a busy
/// machine (review r4 #15).
const SHORT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(100);

/// The `--timeout` given, when it is short enough that an owner that is alive may not answer
/// within it (the error of a timeout then says so).
pub fn short_timeout() -> Option<&'static str> {
    let t = CONNECT_TIMEOUT.get()?;
    parse::connect_timeout(t)
        .is_ok_and(|d| d < SHORT_TIMEOUT)
        .then_some(t.as_str())
}

/// Every store this run opened, until `main` closes them ([`close_all`]) once the outcome is
/// reported, or the signal handler ([`close_on_signal`]) closes them and exits. A command's own
/// handle going out of scope does not close the store: review r4 #3 — a close can wait (as a
/// client, for its owner), and the command's error must be printed before that wait.
static OPENED: Mutex<Vec<Arc<Store>>> = Mutex::new(Vec::new());

fn opened() -> std::sync::MutexGuard<'static, Vec<Arc<Store>>> {
    // A panic while the list was held leaves it intact (it is only pushed to and drained).
    OPENED.lock().unwrap_or_else(|e| e.into_inner())
}

/// How many [`close_all`] calls are closing stores right now (the stores they took are no
/// longer in [`OPENED`]), with the condition variable a signal waits on for them to end.
static CLOSING: (Mutex<usize>, std::sync::Condvar) = (Mutex::new(0), std::sync::Condvar::new());

/// The longest a signal waits for a close already running (see [`close_on_signal`]): the
/// default `--timeout`, the longest a client's close waits for its owner (review r4 #3). Past
/// it the run exits anyway, as a signal did before: durable, but the close does not finish.
pub const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Test hook (`MQLITE_CLI_TEST_HOLD_CLOSE=1`, for the integration tests only): once
/// [`close_all`] has taken the stores, it writes `closing` on stderr and waits for a line (or
/// the end) of stdin before closing them, so a test can signal the run at that moment; the
/// signal handler then writes `waiting for the close` before it waits.
fn hold_close_for_test() {
    if std::env::var_os("MQLITE_CLI_TEST_HOLD_CLOSE").is_some_and(|v| v == "1") {
        eprintln!("closing");
        let _ = std::io::stdin().read_line(&mut String::new());
    }
}

/// Closes every store this run opened (a close already done is a no-op) and returns the
/// first failure. Called by `main` once the command's outcome is reported, and by the signal
/// handler; a signal during `main`'s close waits for it (see [`close_on_signal`]).
pub fn close_all() -> Result<()> {
    let (count, _) = &CLOSING;
    let stores: Vec<Arc<Store>> = {
        // Taken and counted at once: a signal handler that finds the list empty then sees the
        // close in progress.
        let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        std::mem::take(&mut *opened())
    };
    // Counted down however the closes end (a panic in one included).
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            let (count, ended) = &CLOSING;
            let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
            *n -= 1;
            ended.notify_all();
        }
    }
    let _done = Done;
    if !stores.is_empty() {
        hold_close_for_test();
    }
    let mut first = Ok(());
    for s in stores {
        if let Err(e) = s.close() {
            if first.is_ok() {
                first = Err(CliError::from(e).context("closing the store"));
            }
        }
    }
    first
}

/// Waits until no [`close_all`] is running, at most `limit`; whether they all ended.
fn wait_for_closes(limit: std::time::Duration) -> bool {
    let (count, ended) = &CLOSING;
    let n = count.lock().unwrap_or_else(|e| e.into_inner());
    let (n, _) = ended
        .wait_timeout_while(n, limit, |n| *n > 0)
        .unwrap_or_else(|e| e.into_inner());
    *n == 0
}

/// Set by the signal handler before it closes the stores: a failure the close causes in the
/// command's own thread (`Closed`) is then not reported; the handler exits with
/// [`INTERRUPTED`].
static SIGNALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Exit status after SIGINT, SIGTERM or SIGHUP (128 + SIGINT, as shells report an interrupt).
pub const INTERRUPTED: u8 = 130;

/// Whether a signal ended the run (its handler is closing the stores and will exit).
pub fn signalled() -> bool {
    SIGNALLED.load(std::sync::atomic::Ordering::SeqCst)
}

/// What an interrupted run says before it closes its stores (`import`: the line to resume
/// from), and whether a step that changes it (a batch being stored) is running. A signal waits
/// for that step to end, then prints the note: the line it names is what is durably stored,
/// on a terminal or not (review r6 #3: the bar lagged up to 2 batches; off a terminal nothing
/// was said).
struct Progress {
    note: Option<String>,
    busy: bool,
    stopping: bool,
}

static PROGRESS: (Mutex<Progress>, std::sync::Condvar) = (
    Mutex::new(Progress {
        note: None,
        busy: false,
        stopping: false,
    }),
    std::sync::Condvar::new(),
);

fn progress() -> std::sync::MutexGuard<'static, Progress> {
    PROGRESS.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// Begins a step whose end changes the note a signal prints (see [`step_end`]). Once a signal
/// came, no step begins: `Err` (not reported: the handler is ending the run).
pub fn step_begin() -> Result<()> {
    let mut p = progress();
    if p.stopping {
        return Err(CliError::new(Status::Failed, "interrupted by a signal"));
    }
    p.busy = true;
    Ok(())
}

/// Ends the step [`step_begin`] began; `note` (when the step succeeded) is what a signal prints
/// from now on.
pub fn step_end(note: Option<String>) {
    let mut p = progress();
    if note.is_some() {
        p.note = note;
    }
    p.busy = false;
    PROGRESS.1.notify_all();
}

/// How long the first signal lets a close run before it says what it waits for (a client's
/// close waits for its owner, up to `--timeout`: review r6 #5, 30 s of silence).
const CLOSE_QUIET: std::time::Duration = std::time::Duration::from_secs(1);

/// Installs the run's one handler of SIGINT, SIGTERM and SIGHUP (Ctrl-C, `kill`, a closed ssh
/// session): it closes every store the run opened and exits with status 130 (6 at a
/// confirmation prompt, whose terminal it restores first: see [`crate::out::confirm`]),
/// instead of dying; a signal that comes while the run is already closing its stores waits for
/// that close to end (at most [`CLOSE_WAIT`]) before it exits. Review r4 #10: dying as an owner
/// is a crash to its clients (their calls in flight fail with `owner_lost`, their deliveries
/// count a failure), where a clean close hands the store over; as a consumer, a clean close
/// gives back what it took and did not hand out, uncounted. A close that takes over
/// [`CLOSE_QUIET`] (a client's, waiting for a stopped owner) says so on stderr; a second signal
/// then exits at once with 130, saying the close was abandoned (review r6 #5). `ctrlc` (with
/// its `termination` feature) runs the handler on a thread of its own, so it may take locks; the
/// work runs on one more thread, so that the handler hears a second signal.
pub fn close_on_signal() -> Result<()> {
    ctrlc::set_handler(|| {
        if SIGNALLED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            notice(
                "a second signal: the store's close was abandoned; exiting now (what was \
                 committed is durable; a client's deliveries come back to the queue after the \
                 owner notices)",
            );
            std::process::exit(i32::from(INTERRUPTED));
        }
        std::thread::spawn(on_first_signal);
    })
    .map_err(|e| {
        CliError::new(
            Status::Failed,
            format!("installing the signal handler: {e}"),
        )
    })
}

/// The first signal's work (see [`close_on_signal`]): restore a prompt's terminal, let a step
/// in progress end and print its note, close the stores, exit.
fn on_first_signal() {
    let status = match crate::out::restore_terminal() {
        true => crate::error::Status::NotConfirmed.code(),
        false => INTERRUPTED,
    };
    let note = {
        let mut p = progress();
        p.stopping = true;
        let (p, _) = PROGRESS
            .1
            .wait_timeout_while(p, CLOSE_WAIT, |p| p.busy)
            .unwrap_or_else(|e| e.into_inner());
        p.note.clone()
    };
    if let Some(note) = note {
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            // Over a progress bar's line.
            eprint!("\r\x1b[2K");
        }
        notice(&format!("interrupted: {note}"));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = close_all();
        if std::env::var_os("MQLITE_CLI_TEST_HOLD_CLOSE").is_some_and(|v| v == "1") {
            eprintln!("waiting for the close");
        }
        // A close `main` (or a command) began before the signal is finished, not cut short
        // by the exit: an owner's clean close hands the store over to its clients, which an
        // exit in its middle turns into a crash for them (`owner_lost`).
        let _ = tx.send(wait_for_closes(CLOSE_WAIT));
    });
    let ended = match rx.recv_timeout(CLOSE_QUIET) {
        Ok(ended) => ended,
        Err(_) => {
            notice(&format!(
                "interrupted: closing the store (a client waits up to {}s for its owner to take \
                 back what it holds); signal again (Ctrl-C) to exit now",
                CLOSE_WAIT.as_secs()
            ));
            rx.recv_timeout(CLOSE_WAIT).unwrap_or(false)
        }
    };
    if !ended {
        eprintln!(
            "mqlite: the store's close did not end within {}s of the signal; exiting \
             without it (what was committed is durable)",
            CLOSE_WAIT.as_secs()
        );
    }
    std::process::exit(i32::from(status));
}

/// Opens the store in `dir`: as its owner, or, if another process owns it, as that owner's
/// client (every command but the maintenance ones works through a client); with `--read-only`,
/// refused (status 2) before the store is touched (see [`open_to_read`]); `create` allows
/// making a new one. `tweak` adjusts the options (repair, compaction threshold, owner only).
/// The store stays open until the run ends (see [`close_all`]) unless the command closes it.
pub fn open_with(
    dir: &Path,
    create: bool,
    tweak: impl FnOnce(&mut StoreOptions),
) -> Result<Arc<Store>> {
    if READ_ONLY.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(CliError::usage(
            "--read-only: this command changes the store; only info, stats, list, browse, \
             export, dlq list and dlq show take --read-only",
        ));
    }
    let mut options = StoreOptions {
        create,
        segment_bytes: store_segment_bytes(dir),
        ..StoreOptions::default()
    };
    tweak(&mut options);
    if !matches!(options.open_as, OpenAs::Owner) {
        if let Some(t) = CONNECT_TIMEOUT.get() {
            options.connect_timeout = parse::connect_timeout(t)?;
        }
    }
    if !create {
        require_store(dir)?;
    }
    let store = Arc::new(Store::open(dir, options)?);
    opened().push(Arc::clone(&store));
    Ok(store)
}

/// The segment size the command writes with: the store's own, as its segment files show it
/// (the largest, a full segment being as long as its application's `segment_bytes`), within
/// `MIN_SEGMENT_BYTES`..=`DEFAULT_SEGMENT_BYTES`; the default for a new or empty store.
/// Segment sizes are not stored, and the command cannot know the application's option: with
/// the default 64 MiB, a store written with small segments grew by a 4 MiB preallocation and a
/// 1 MiB reserve at its next segment — `mqlite compact` made such a store larger (issue 15 #4).
fn store_segment_bytes(dir: &Path) -> u64 {
    let largest = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .max();
    largest.map_or(mqlite::DEFAULT_SEGMENT_BYTES, |n| {
        n.clamp(mqlite::MIN_SEGMENT_BYTES, mqlite::DEFAULT_SEGMENT_BYTES)
    })
}

/// Opens an existing store (as owner or client), for a command that may change it.
pub fn open(dir: &Path) -> Result<Arc<Store>> {
    open_with(dir, false, |_| {})
}

/// `--read-only` was given (set once, by `cmd::run`).
static READ_ONLY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Records `--read-only` for the opens of this run.
pub fn set_read_only(on: bool) {
    READ_ONLY.store(on, std::sync::atomic::Ordering::SeqCst);
}

/// Opens an existing store for a command that only reads it (`info`, `stats`, `list`,
/// `browse`, `export`, `dlq list`, `dlq show`): as [`open`] does (owner, or a live owner's
/// client), unless `--read-only` is given or the store cannot be written (its `LOCK`, or its
/// directory, is on a read-only file system or not writable by this user: review r4 #6, a
/// snapshot or a disk of a failed machine could not be looked at). It is then opened with the
/// core's `read_only` ([`StoreOptions::read_only`]): nothing is locked or written, every change
/// is refused (`read_only`), and a note on stderr says so — and, when a live process holds the
/// store's lock, that what is shown may be stale.
pub fn open_to_read(dir: &Path) -> Result<Arc<Store>> {
    if READ_ONLY.load(std::sync::atomic::Ordering::SeqCst) {
        return open_read_only(dir, "--read-only");
    }
    match open(dir) {
        Ok(s) => Ok(s),
        // Only an open that failed: a store this user can write is opened as always.
        Err(e) => match unwritable(dir) {
            Some(why) => open_read_only(dir, &format!("it cannot be written: {why}")),
            None => Err(e),
        },
    }
}

/// Why the store in `dir` cannot be written by this process (its `LOCK` file if there is
/// one, else the directory: `access(2)` with `W_OK`), or `None` if it can (or the check fails
/// for another reason: the open's own error is then the one reported).
fn unwritable(dir: &Path) -> Option<&'static str> {
    use std::os::unix::ffi::OsStrExt;
    let lock = dir.join("LOCK");
    let target = if lock.symlink_metadata().is_ok() {
        lock
    } else {
        dir.to_path_buf()
    };
    let c = std::ffi::CString::new(target.as_os_str().as_bytes()).ok()?;
    // SAFETY: access(2) reads the NUL-terminated path only.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0 {
        return None;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EROFS) => Some("read-only file system"),
        Some(libc::EACCES) | Some(libc::EPERM) => Some("permission denied"),
        _ => None,
    }
}

/// Opens the store read-only (see [`open_to_read`]); `why` says why in the note on stderr.
fn open_read_only(dir: &Path, why: &str) -> Result<Arc<Store>> {
    require_store(dir)?;
    let options = StoreOptions {
        create: false,
        read_only: true,
        ..StoreOptions::default()
    };
    let store = Arc::new(Store::open(dir, options)?);
    opened().push(Arc::clone(&store));
    let mut note = format!(
        "store {} opened read-only ({why}): commands that change it are refused",
        store.path().display()
    );
    if let Some(pid) = store.read_only_owner() {
        note.push_str(&format!(
            "; a live process (pid {pid}) owns it and may be changing it: what is shown is the \
             durable state as read now, and may be stale"
        ));
    }
    notice(&note);
    Ok(store)
}

/// A note on stderr that is not an error (`--json`: one JSON object `{"note": …}`, as errors
/// are one JSON object). Set by `cmd::run` from `--json`.
fn notice(text: &str) {
    if JSON.load(std::sync::atomic::Ordering::SeqCst) {
        eprintln!("{}", serde_json::json!({ "note": text }));
    } else {
        eprintln!("mqlite: note: {text}");
    }
}

/// `--json` was given (for [`notice`]).
static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Records `--json` for the notes of this run.
pub fn set_json(on: bool) {
    JSON.store(on, std::sync::atomic::Ordering::SeqCst);
}

/// Opens an existing store as its owner only (the maintenance commands: they need the journal
/// to themselves): `Locked` naming the owner's pid if another process has it open.
pub fn open_owner(dir: &Path, tweak: impl FnOnce(&mut StoreOptions)) -> Result<Arc<Store>> {
    open_with(dir, false, |o| {
        o.open_as = OpenAs::Owner;
        tweak(o)
    })
}

/// The options of every queue handle the command takes. Queue options are not stored in the
/// store, so the command cannot know the application's redelivery policy; with an unlimited one
/// it never dead-letters on its own (neither on `receive --nack` nor when it fails deliveries a
/// crashed process left in flight): the application decides at its next failure.
pub fn queue_options() -> QueueOptions {
    QueueOptions {
        redelivery: Some(RedeliveryPolicy {
            max_redeliveries: -1,
            ..RedeliveryPolicy::default()
        }),
        ..QueueOptions::default()
    }
}

/// A handle to queue `name`, which must exist: `NotFound` only when the store's list of queues
/// was read and lacks it; a list that could not be read (the owner not reached) is that error
/// (review r6 #2: "not found", status 5, for a queue of thousands of messages).
pub fn queue(store: &Store, name: &str) -> Result<Queue> {
    let names = store.try_queue_names().map_err(|e| {
        CliError::from(e).context(format!(
            "looking up queue {name:?} in store {}",
            store.path().display()
        ))
    })?;
    if !names.iter().any(|q| q == name) {
        return Err(CliError::new(
            Status::NotFound,
            format!(
                "queue {name:?} not found in store {}",
                store.path().display()
            ),
        ));
    }
    Ok(handle(store, name)?)
}

/// A queue handle with the command's options — but, as a client, with the owner's: queue
/// options given by a client replace the owner's for as long as it is open, and the command must
/// not change the policy of the application that owns the store.
fn handle(store: &Store, name: &str) -> mqlite::Result<Queue> {
    match store.role() {
        Role::Owner => store.queue_with(name, queue_options()),
        Role::Client => store.queue(name),
    }
}

/// A handle to queue `name`, created if new.
pub fn queue_or_create(store: &Store, name: &str) -> Result<Queue> {
    handle(store, name).map_err(|e| CliError::from(e).context(format!("queue {name:?}")))
}

/// The queues named, each once in the order first named (review r4 #11: `export DIR q q`
/// wrote every message twice, `dlq replay --dlq DLQ --dlq DLQ` counted each dead letter
/// twice), or every queue of the store when none is.
pub fn queues(store: &Store, names: &[String]) -> Result<Vec<Queue>> {
    if names.is_empty() {
        return store
            .try_queue_names()
            .map_err(|e| {
                CliError::from(e).context(format!(
                    "listing the queues of store {}",
                    store.path().display()
                ))
            })?
            .iter()
            .map(|n| queue(store, n))
            .collect();
    }
    let mut seen = std::collections::HashSet::new();
    names
        .iter()
        .filter(|n| seen.insert(n.as_str()))
        .map(|n| queue(store, n))
        .collect()
}

/// The ids among `ids` that none of `queues` holds (a command given an explicit `--id` that
/// does not exist fails with `NotFound`, whatever else it does).
pub fn missing_ids(queues: &[Queue], ids: &[MessageId]) -> Vec<MessageId> {
    ids.iter()
        .copied()
        .filter(|id| {
            !queues.iter().any(|q| {
                q.browse_stored(*id, 1)
                    .is_ok_and(|v| v.first().and_then(|s| s.message.id()) == Some(*id))
            })
        })
        .collect()
}

/// Whether a queue is a dead-letter queue under the default strategies (`DLQ`, `DLQ.<queue>`).
pub fn is_dlq(name: &str) -> bool {
    name == "DLQ" || name.starts_with("DLQ.")
}

/// Refuses `queue` as the target of a message without dead-letter information when it is a
/// dead-letter queue (review r3 #37): `dlq list`, `show` and `replay` see only dead letters, so
/// such a message would sit there unseen by every `dlq` command.
pub fn plain_into_dlq(queue: &str) -> std::result::Result<(), String> {
    if is_dlq(queue) {
        return Err(format!(
            "queue {queue:?} is a dead-letter queue: a message put there without dead-letter \
             information is invisible to `mqlite dlq`; choose another queue"
        ));
    }
    Ok(())
}
