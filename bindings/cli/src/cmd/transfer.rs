//! The destructive commands: `purge`, `move`, `copy`. Each counts first, then asks on a terminal
//! (or needs `--yes`); `--dry-run` only counts. The action after the answer is bounded by the
//! highest id counted: it never touches a message sent while the question waited.

use std::io::Write;

use mqlite::{MessageId, PurgeFilter, TransferFilter};
use serde::Serialize;

use crate::cli::{PurgeArgs, TransferArgs};
use crate::error::{CliError, Result, Status};
use crate::{open, out, parse};

#[derive(Serialize)]
struct Outcome<'a> {
    command: &'a str,
    queue: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
    dry_run: bool,
    /// Messages that matched (the count a dry run reports).
    matched: u64,
    /// Messages purged, moved or copied.
    done: u64,
    /// Messages the target already held by dedup key (nothing stored; a move leaves them).
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicates: Option<u64>,
    /// Messages of the queue a consumer holds and the command leaves where they are: those in
    /// flight. (Prefetched ones, not handed out, are purged, moved or copied with the waiting
    /// ones, as the count says: issue 15 #6.)
    held: u64,
}

impl<'a> Outcome<'a> {
    fn new(
        command: &'a str,
        queue: &'a str,
        to: Option<&'a str>,
        dry_run: bool,
        matched: u64,
    ) -> Self {
        Outcome {
            command,
            queue,
            to,
            dry_run,
            matched,
            done: 0,
            duplicates: None,
            held: 0,
        }
    }
}

fn report(w: &mut dyn Write, json: bool, o: &Outcome<'_>) -> Result<()> {
    if json {
        return out::json(w, o);
    }
    let verb = match o.command {
        "purge" => "purged",
        "move" => "moved",
        _ => "copied",
    };
    let to = o.to.map(|t| format!(" to queue {t:?}")).unwrap_or_default();
    if o.dry_run {
        writeln!(
            w,
            "would {} {} of queue {:?}{to} (dry run: nothing changed)",
            o.command,
            out::count(o.matched, "message"),
            o.queue
        )?;
    } else if o.matched == 0 {
        writeln!(
            w,
            "no waiting messages of queue {:?} match; nothing changed",
            o.queue
        )?;
    } else {
        let n = out::count(o.done, "message");
        writeln!(w, "{verb} {n} of queue {:?}{to}", o.queue)?;
        if let Some(d) = o.duplicates.filter(|d| *d > 0) {
            writeln!(
                w,
                "{} not stored: the target already holds their dedup keys",
                out::count(d, "message")
            )?;
        }
    }
    if o.held > 0 {
        // Review r3 #15: "nothing changed" with no word about the messages a consumer held.
        writeln!(
            w,
            "{} of queue {:?} held by consumers (in flight) {} left as {}",
            out::count(o.held, "message"),
            o.queue,
            match (o.dry_run, o.held) {
                (true, _) => "would be",
                (false, 1) => "was",
                _ => "were",
            },
            if o.held == 1 { "it is" } else { "they are" },
        )?;
    }
    Ok(())
}

pub fn purge(a: &PurgeArgs, json: bool, w: &mut dyn Write) -> Result<()> {
    let store = open::open(&a.dir)?;
    let q = open::queue(&store, &a.queue)?;
    // Counted by the core with the highest id counted: the purge after the answer goes no
    // further than that id, so what is sent while the question waits stays (review r6 #1).
    let counted = q.purge_filtered(&PurgeFilter {
        through: None,
        dry_run: true,
    })?;
    let matched = counted.matched;
    let mut o = Outcome::new("purge", &a.queue, None, a.dry_run, matched);
    // A purge takes prefetched messages too (the core's count includes them): only those in
    // flight stay. (So do a move and a copy.)
    o.held = q.stats()?.in_flight;
    if !a.dry_run && matched > 0 {
        out::confirm(
            a.yes,
            &format!(
                "purge {} of queue {:?} in store {}",
                out::count(matched, "waiting message"),
                a.queue,
                a.dir.display()
            ),
        )?;
        o.done = q
            .purge_filtered(&PurgeFilter {
                through: counted.last,
                dry_run: false,
            })?
            .purged;
    }
    report(w, json, &o)
}

pub fn run(a: &TransferArgs, copy: bool, json: bool, w: &mut dyn Write) -> Result<()> {
    mqlite::validate_queue_name(&a.to)?;
    // Dead letters may move between dead-letter queues (they keep their information).
    if !open::is_dlq(&a.from) {
        open::plain_into_dlq(&a.to).map_err(CliError::usage)?;
    }
    let ids = parse::ids(&a.ids)?;
    let store = open::open(&a.dir)?;
    let q = open::queue(&store, &a.from)?;
    if let Some(ids) = &ids {
        let missing: Vec<String> = open::missing_ids(std::slice::from_ref(&q), ids)
            .iter()
            .map(MessageId::to_string)
            .collect();
        if !missing.is_empty() {
            return Err(CliError::new(
                Status::NotFound,
                format!(
                    "{} not in queue {:?} of store {}; nothing changed",
                    missing.join(", "),
                    a.from,
                    a.dir.display()
                ),
            ));
        }
        // An id that is there but held by a consumer cannot move now: asked for by name, it
        // fails as a missing one does (status 5), naming why, before anything changes.
        let busy: Vec<String> = ids
            .iter()
            .filter(|id| {
                q.browse_stored(**id, 1).is_ok_and(|v| {
                    v.first().is_some_and(|s| {
                        s.message.id() == Some(**id) && s.state == mqlite::MessageState::InFlight
                    })
                })
            })
            .map(MessageId::to_string)
            .collect();
        if !busy.is_empty() {
            return Err(CliError::new(
                Status::NotFound,
                format!(
                    "{} of queue {:?} in store {} {} held by a consumer (in flight), not \
                     waiting; nothing changed (retry once it is settled or released)",
                    busy.join(", "),
                    a.from,
                    a.dir.display(),
                    if busy.len() == 1 { "is" } else { "are" }
                ),
            ));
        }
    }
    check_target(&store, &a.to)?;
    let mut filter = TransferFilter {
        to: a.to.clone(),
        ids: ids.clone(),
        limit: a.limit,
        through: None,
        copy,
        dry_run: true,
    };
    let counted = q.transfer(&filter)?;
    let matched = counted.matched;
    let command = if copy { "copy" } else { "move" };
    let mut o = Outcome::new(command, &a.from, Some(&a.to), a.dry_run, matched);
    if ids.is_none() {
        o.held = q.stats()?.in_flight;
    }
    if !a.dry_run && matched > 0 {
        out::confirm(
            a.yes,
            &format!(
                "{command} {} of queue {:?} to queue {:?} in store {}",
                out::count(matched, "waiting message"),
                a.from,
                a.to,
                a.dir.display()
            ),
        )?;
        filter.dry_run = false;
        // Only what was counted: messages sent while the question waited have higher ids and
        // stay (review r6 #1: "move 3" moved 10).
        filter.through = counted.last;
        let r = q
            .transfer(&filter)
            .map_err(|e| CliError::from(e).context(format!("{command} from queue {:?}", a.from)))?;
        o.done = r.transferred;
        o.duplicates = Some(r.duplicates);
    }
    report(w, json, &o)
}

/// Refuses a target that is the queue of a subscription the store does not have (`$sub.NAME`):
/// the core refuses to create one (a subscription's queue comes with its subscription), so the
/// real run would fail; the dry run must fail the same way (review r3 #10), before it counts.
pub fn check_target(store: &mqlite::Store, to: &str) -> Result<()> {
    let Some(name) = to.strip_prefix("$sub.") else {
        return Ok(());
    };
    if store.subscriptions().iter().any(|s| s.queue == to) {
        return Ok(());
    }
    Err(CliError::new(
        Status::NotFound,
        format!(
            "queue {to:?} is the queue of subscription {name:?}, which store {} does not have \
             (a program creates it by subscribing); nothing changed",
            store.path().display()
        ),
    ))
}
