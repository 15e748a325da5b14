//! Opening a store and its queues the way every command does.

use std::path::Path;

use mqlite::{MessageId, OpenAs, Queue, QueueOptions, RedeliveryPolicy, Role, Store, StoreOptions};

use crate::error::{CliError, Result, Status};

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

/// The `--timeout` of this run, set once before any store is opened (see [`set_connect_timeout`]).
static CONNECT_TIMEOUT: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();

/// Sets how long a client waits for the store's owner (`--timeout`, `MQLITE_CONNECT_TIMEOUT`):
/// the core's `StoreOptions::connect_timeout` of every open of this run. Set once, by
/// `cmd::run`, before anything is opened; a second call is ignored.
pub fn set_connect_timeout(t: std::time::Duration) {
    let _ = CONNECT_TIMEOUT.set(t);
}

/// Opens the store in `dir`: as its owner, or, if another process owns it, as that owner's
/// client (every command but the maintenance ones works through a client); `create` allows
/// making a new one. `tweak` adjusts the options (repair, compaction threshold, owner only).
pub fn open_with(dir: &Path, create: bool, tweak: impl FnOnce(&mut StoreOptions)) -> Result<Store> {
    if !create {
        require_store(dir)?;
    }
    let mut options = StoreOptions {
        create,
        ..StoreOptions::default()
    };
    if let Some(t) = CONNECT_TIMEOUT.get() {
        options.connect_timeout = *t;
    }
    tweak(&mut options);
    Ok(Store::open(dir, options)?)
}

/// Opens an existing store (as owner or client).
pub fn open(dir: &Path) -> Result<Store> {
    open_with(dir, false, |_| {})
}

/// Opens an existing store as its owner only (the maintenance commands: they need the journal
/// to themselves): `Locked` naming the owner's pid if another process has it open.
pub fn open_owner(dir: &Path, tweak: impl FnOnce(&mut StoreOptions)) -> Result<Store> {
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

/// A handle to queue `name`, which must exist.
pub fn queue(store: &Store, name: &str) -> Result<Queue> {
    if !store.queue_names().iter().any(|q| q == name) {
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

/// The queues named, or every queue of the store when none is.
pub fn queues(store: &Store, names: &[String]) -> Result<Vec<Queue>> {
    if names.is_empty() {
        return store
            .queue_names()
            .iter()
            .map(|n| queue(store, n))
            .collect();
    }
    names.iter().map(|n| queue(store, n)).collect()
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
