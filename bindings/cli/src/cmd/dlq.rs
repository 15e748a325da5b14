//! `mqlite dlq list|show|replay`: why messages died, and bringing them back.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use mqlite::{MessageId, MessageState, Queue, ReplayFilter, Store, StoredMessage};
use serde::Serialize;

use crate::cli::{DlqCommand, DlqFilter};
use crate::cmd::browse;
use crate::error::{CliError, Result, Status};
use crate::wire::DeadLetterJson;
use crate::{open, out, parse};

/// Stored messages are read this many at a time.
const PAGE: usize = 1000;

pub fn run(c: DlqCommand, json: bool, w: &mut dyn Write) -> Result<()> {
    match c {
        DlqCommand::List { filter, limit } => list(&filter, limit, json, w),
        DlqCommand::Show {
            filter,
            body,
            limit,
        } => {
            let (store, f) = prepare(&filter, true)?;
            let mut found = Vec::new();
            // Every match is counted, so that a listing `--limit` cut says so (review r4 #9).
            let mut matched = 0u64;
            for q in dlqs(&store, &filter)? {
                scan(&q, &f, |s| {
                    matched += 1;
                    if limit.is_none_or(|l| found.len() < l) {
                        found.push((q.name().to_string(), s));
                    }
                    true
                })?;
            }
            if found.is_empty() && !json {
                writeln!(w, "no dead letters match")?;
            }
            if json {
                let v: Vec<_> = found
                    .iter()
                    .map(|(q, s)| browse::StoredJson::of(q, s, body))
                    .collect();
                return out::json(w, &v);
            }
            for (i, (q, s)) in found.iter().enumerate() {
                if i > 0 {
                    writeln!(w)?;
                }
                writeln!(w, "in dead-letter queue {q:?}:")?;
                browse::write_stored(w, q, std::slice::from_ref(s), body, false)?;
            }
            if let (Some(l), true) = (limit, found.len() as u64 != matched) {
                writeln!(
                    w,
                    "\n{} of {} shown (--limit {l})",
                    found.len(),
                    out::count(matched, "dead letter")
                )?;
            }
            Ok(())
        }
        DlqCommand::Replay {
            filter,
            to,
            dry_run,
            rate,
        } => replay(&filter, to, dry_run, rate.as_deref(), json, w),
    }
}

/// Opens the store (read-only where it cannot be written, for a command that only `reads`:
/// see [`open::open_to_read`]) and turns the options into the core's filter.
fn prepare(f: &DlqFilter, reads: bool) -> Result<(std::sync::Arc<Store>, ReplayFilter)> {
    let filter = ReplayFilter {
        reason: f.reason.as_deref().map(parse::reason).transpose()?,
        original_queue: f.queue.clone(),
        since_ms: f
            .since
            .as_deref()
            .map(|s| parse::time("--since", s))
            .transpose()?,
        until_ms: f
            .until
            .as_deref()
            .map(|s| parse::time("--until", s))
            .transpose()?,
        ids: parse::ids(&f.ids)?,
        ..ReplayFilter::default()
    };
    // The window is [since, until): one that ends before it starts selects nothing, which is
    // a mistake (the two swapped), not a question whose answer is "no dead letters".
    if let (Some(since), Some(until)) = (filter.since_ms, filter.until_ms) {
        if since >= until {
            return Err(CliError::usage(format!(
                "--since {} ({}) is not before --until {} ({}): no dead letter can match",
                f.since.as_deref().unwrap_or_default(),
                out::time(since),
                f.until.as_deref().unwrap_or_default(),
                out::time(until)
            )));
        }
    }
    let store = if reads {
        open::open_to_read(&f.dir)?
    } else {
        open::open(&f.dir)?
    };
    Ok((store, filter))
}

/// Refuses `--dlq QUEUE` naming an ordinary queue: one not named as the default strategies
/// name dead-letter queues (`DLQ`, `DLQ.*`) that holds a message without dead-letter
/// information. Its messages would silently match nothing. (An application may dead-letter
/// into a queue of another name, which is accepted while it holds only dead letters.)
fn check_dlq(q: &Queue) -> Result<()> {
    if open::is_dlq(q.name()) {
        return Ok(());
    }
    let mut from = MessageId(0);
    loop {
        let page = q.browse_stored(from, PAGE)?;
        let Some(last) = page.last().and_then(|s| s.message.id()) else {
            return Ok(());
        };
        if let Some(plain) = page.iter().find(|s| s.message.dead_letter_info().is_none()) {
            let id = plain
                .message
                .id()
                .map(|i| i.to_string())
                .unwrap_or_default();
            return Err(CliError::usage(format!(
                "--dlq {:?}: not a dead-letter queue (it holds ordinary messages: {id} has no \
                 dead-letter information); dead-letter queues are DLQ and DLQ.<queue> \
                 (`mqlite list DIR` shows them)",
                q.name()
            )));
        }
        from = MessageId(last.0 + 1);
    }
}

/// The dead-letter queues looked in: `--dlq` ones (which must exist), else `DLQ` and `DLQ.*`.
/// Every `--id` named must be in one of them (`NotFound` otherwise, as `move --id` does).
fn dlqs(store: &Store, f: &DlqFilter) -> Result<Vec<Queue>> {
    let queues = if f.dlqs.is_empty() {
        let names: Vec<String> = store
            .queue_names()
            .into_iter()
            .filter(|n| open::is_dlq(n))
            .collect();
        names
            .iter()
            .map(|n| open::queue(store, n))
            .collect::<Result<Vec<_>>>()?
    } else {
        let queues = open::queues(store, &f.dlqs)?;
        for q in &queues {
            check_dlq(q)?;
        }
        queues
    };
    if let Some(ids) = parse::ids(&f.ids)? {
        // An id names a dead letter by its id in the DLQ or by its original id.
        let mut missing = Vec::new();
        for id in ids {
            let only = ReplayFilter {
                ids: Some(vec![id]),
                ..ReplayFilter::default()
            };
            let mut found = false;
            for q in &queues {
                scan(q, &only, |_| {
                    found = true;
                    false
                })?;
            }
            if !found {
                missing.push(id.to_string());
            }
        }
        if !missing.is_empty() {
            let names: Vec<&str> = queues.iter().map(|q| q.name()).collect();
            return Err(CliError::new(
                Status::NotFound,
                format!(
                    "{} not in the dead-letter queues ({}) of store {}",
                    missing.join(", "),
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    },
                    store.path().display()
                ),
            ));
        }
    }
    Ok(queues)
}

/// Calls `each` with every dead letter of `q` that passes `filter`, in id order, until it
/// returns false.
fn scan(
    q: &Queue,
    filter: &ReplayFilter,
    mut each: impl FnMut(StoredMessage) -> bool,
) -> Result<()> {
    let mut from = MessageId(0);
    loop {
        let page = q.browse_stored(from, PAGE)?;
        let Some(last) = page.last().and_then(|s| s.message.id()) else {
            return Ok(());
        };
        from = MessageId(last.0 + 1);
        for s in page {
            let id = s.message.id().unwrap_or(MessageId(0));
            let keep = s
                .message
                .dead_letter_info()
                .is_some_and(|info| filter.matches(id, info));
            if keep && !each(s) {
                return Ok(());
            }
        }
    }
}

#[derive(Serialize)]
struct Row {
    dlq: String,
    id: String,
    #[serde(flatten)]
    dead_letter: DeadLetterJson,
    timestamp_ms: u64,
    body_bytes: usize,
}

fn list(f: &DlqFilter, limit: Option<usize>, json: bool, w: &mut dyn Write) -> Result<()> {
    let (store, filter) = prepare(f, true)?;
    let mut rows = Vec::new();
    // Every match is counted, so that a listing `--limit` cut says so (review r4 #9).
    let mut matched = 0u64;
    for q in dlqs(&store, f)? {
        scan(&q, &filter, |s| {
            matched += 1;
            if limit.is_some_and(|l| rows.len() >= l) {
                return true;
            }
            if let Some(d) = s.message.dead_letter_info() {
                rows.push(Row {
                    dlq: q.name().to_string(),
                    id: s.message.id().map(|i| i.to_string()).unwrap_or_default(),
                    dead_letter: DeadLetterJson::of(d),
                    timestamp_ms: s.message.timestamp_ms(),
                    body_bytes: s.message.body().len(),
                });
            }
            true
        })?;
    }
    if json {
        return out::json(w, &rows);
    }
    let mut t = out::table(
        &[
            "dlq",
            "id",
            "from queue",
            "original id",
            "reason",
            "deliveries",
            "last failure",
            "error",
        ],
        &[5],
    );
    let mut by_reason: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &rows {
        *by_reason.entry(&r.dead_letter.reason).or_default() += 1;
        // Every cell of stored text is escaped (out::printable): any program wrote it.
        let mut error = out::printable(&r.dead_letter.last_failure);
        if error.chars().count() > 60 {
            error = error.chars().take(57).collect::<String>() + "...";
        }
        t.add_row(vec![
            out::printable(&r.dlq),
            out::printable(&r.id),
            out::printable(&r.dead_letter.original_queue),
            out::printable(&r.dead_letter.original_id),
            out::printable(&r.dead_letter.reason),
            r.dead_letter.delivery_count.to_string(),
            out::time(r.dead_letter.last_failure_ms),
            error,
        ]);
    }
    if rows.is_empty() {
        writeln!(w, "no dead letters match")?;
        return Ok(());
    }
    out::write_table(w, &t)?;
    let parts: Vec<String> = by_reason.iter().map(|(r, n)| format!("{r} {n}")).collect();
    let n = out::count(rows.len() as u64, "dead letter");
    match limit {
        Some(l) if rows.len() as u64 != matched => writeln!(
            w,
            "{} of {} shown (--limit {l}; {})",
            rows.len(),
            out::count(matched, "dead letter"),
            parts.join(", ")
        )?,
        _ => writeln!(w, "{n} ({})", parts.join(", "))?,
    }
    Ok(())
}

#[derive(Serialize)]
struct Replayed {
    dry_run: bool,
    matched: u64,
    replayed: u64,
    /// Target queue → how many went there (in a dry run: would go there).
    by_queue: BTreeMap<String, u64>,
    /// Dead letters that pass the filter but cannot be replayed (their original queue is not a
    /// queue name: stored by an older version); left where they are. Omitted when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unreplayable: Vec<Unreplayable>,
    /// Dead letters that pass the filter but a consumer holds in flight (handed out, not
    /// settled): a replay leaves them where they are (review r14 #13). Prefetched ones, not
    /// handed out, are replayed with the waiting ones, as `purge` and `move` take them.
    held: u64,
}

/// A dead letter `replay` leaves where it is, and why.
#[derive(Serialize)]
struct Unreplayable {
    dlq: String,
    id: String,
    original_queue: String,
    why: String,
}

fn replay(
    f: &DlqFilter,
    to: Option<String>,
    dry_run: bool,
    rate: Option<&str>,
    json: bool,
    w: &mut dyn Write,
) -> Result<()> {
    let rate = rate.map(parse::rate).transpose()?;
    if let Some(t) = &to {
        mqlite::validate_queue_name(t)?;
        // Review r4 #8: the core refuses it at the first chunk, so the dry run promised a
        // replay the run then failed as "stopped after 0 of N". Refused up front, in both.
        if open::is_dlq(t) {
            return Err(CliError::usage(format!(
                "--to {t:?}: a dead-letter queue (DLQ, DLQ.*): a replay sends dead letters back \
                 to an ordinary queue, where they are consumed again"
            )));
        }
    }
    let (store, filter) = prepare(f, false)?;
    if let Some(t) = &to {
        // The same outcome in a dry run as in the real run (review r3 #10).
        crate::cmd::transfer::check_target(&store, t)?;
    }
    let filter = ReplayFilter {
        to: to.clone(),
        ..filter
    };
    // The queues of the subscriptions the store has: a dead letter of a subscription that has
    // ended has no queue to go back to (the core refuses to create a `$sub.` queue).
    let sub_queues: std::collections::HashSet<String> =
        store.subscriptions().into_iter().map(|i| i.queue).collect();
    // Count first, exactly as replay will choose: ready dead letters that pass the filter.
    // A dead letter whose original queue is not a queue name cannot go back there: the core's
    // replay leaves it (it moves the others), and it is reported here, not counted.
    // Each dead-letter queue with how many it replays, and, when it holds dead letters left
    // behind for a missing subscription, the ids it replays (so the core never picks those).
    // Each dead-letter queue with how many it replays to each target queue (review r4 #21:
    // replayed target by target, so that the report counts what was done, not the plan).
    type Targets = BTreeMap<String, u64>;
    let mut plan: Vec<(Queue, Targets, Option<Vec<MessageId>>)> = Vec::new();
    let mut by_queue: BTreeMap<String, u64> = BTreeMap::new();
    let mut unreplayable = Vec::new();
    let mut held = 0u64;
    for q in dlqs(&store, f)? {
        let mut n = 0u64;
        let mut targets = Targets::new();
        let mut ids = Vec::new();
        let mut gone = false;
        scan(&q, &filter, |s| {
            if s.state == MessageState::InFlight {
                held += 1;
            }
            // A prefetched dead letter (a consumer's buffer, not handed out) is replayed: the
            // core takes it back first, as a purge does (review r14 #13).
            if matches!(s.state, MessageState::Ready | MessageState::Prefetched) {
                let target = match (&to, s.message.dead_letter_info()) {
                    (Some(t), _) => t.clone(),
                    (None, Some(d)) => d.original_queue.clone(),
                    (None, None) => String::new(),
                };
                if let Err(e) = mqlite::validate_queue_name(&target) {
                    unreplayable.push(Unreplayable {
                        dlq: q.name().to_string(),
                        id: s.message.id().map(|i| i.to_string()).unwrap_or_default(),
                        original_queue: target,
                        why: e.message().to_string(),
                    });
                    return true;
                }
                // A dead letter of a dead-letter queue (stored by an application's reject
                // there, or an older import) would become a plain message inside it, seen by
                // no `dlq` command (review r4 #17).
                if open::is_dlq(&target) {
                    unreplayable.push(Unreplayable {
                        dlq: q.name().to_string(),
                        id: s.message.id().map(|i| i.to_string()).unwrap_or_default(),
                        original_queue: target.clone(),
                        why: "a dead-letter queue (replay it with --to QUEUE)".to_string(),
                    });
                    gone = true;
                    return true;
                }
                if let Some(sub) = target.strip_prefix("$sub.") {
                    if !sub_queues.contains(&target) {
                        gone = true;
                        unreplayable.push(Unreplayable {
                            dlq: q.name().to_string(),
                            id: s.message.id().map(|i| i.to_string()).unwrap_or_default(),
                            original_queue: target.clone(),
                            why: format!(
                                "subscription {sub:?} no longer exists (replay it with --to QUEUE)"
                            ),
                        });
                        return true;
                    }
                }
                n += 1;
                ids.extend(s.message.id());
                *by_queue.entry(target.clone()).or_default() += 1;
                *targets.entry(target).or_default() += 1;
            }
            true
        })?;
        if n > 0 {
            plan.push((q, targets, gone.then_some(ids)));
        }
    }
    let matched: u64 = by_queue.values().sum();
    let mut replayed = 0u64;
    if !dry_run && matched > 0 {
        let bar = out::progress(matched, "replaying");
        // Chunks: a tenth of a second's worth under --rate; a percent of the work when a bar
        // shows; otherwise one call per dead-letter queue.
        let chunk = match rate {
            Some(r) => ((r / 10.0).ceil() as u64).max(1),
            None if !bar.is_hidden() => (matched / 100).max(100),
            None => u64::MAX,
        };
        let start = Instant::now();
        // What was done, by target (the plan's counts are only what the scan saw: another
        // replay or consumer may take some meanwhile).
        let mut done_by_queue: BTreeMap<String, u64> = BTreeMap::new();
        let steps = plan
            .iter()
            .flat_map(|(q, targets, only)| targets.iter().map(move |(t, n)| (q, t, *n, only)));
        for (q, target, n, only) in steps {
            let mut done = 0u64;
            while done < n {
                if let Some(r) = rate {
                    // The next chunk starts when the ones before are due: a wait before each
                    // chunk but the first, none after the last.
                    let due = parse::secs(replayed as f64 / r);
                    std::thread::sleep(due.saturating_sub(start.elapsed()));
                }
                let limit = chunk.min(n - done);
                let mut step = ReplayFilter {
                    limit: Some(limit as usize),
                    ..filter.clone()
                };
                if let Some(ids) = only {
                    step.ids = Some(ids.clone());
                }
                if to.is_none() {
                    // Back to their original queue: this target's dead letters only.
                    step.original_queue = Some(target.clone());
                }
                let moved = q.replay(&step).map_err(|e| {
                    CliError::from(e).context(format!(
                        "replay from dead-letter queue {:?} stopped after {replayed} of {matched}",
                        q.name()
                    ))
                })?;
                if moved == 0 {
                    break;
                }
                done += moved;
                replayed += moved;
                *done_by_queue.entry(target.clone()).or_default() += moved;
                bar.inc(moved);
            }
        }
        bar.finish_and_clear();
        by_queue = done_by_queue;
    }
    let report = Replayed {
        dry_run,
        matched,
        replayed,
        by_queue,
        unreplayable,
        held,
    };
    // Dead letters left behind fail the command (status 1: bad stored data, not a usage error)
    // once the rest is replayed and reported.
    let left = match report.unreplayable.as_slice() {
        [] => Ok(()),
        v => {
            let first = &v[0];
            Err(CliError::new(
                Status::Failed,
                format!(
                    "{} cannot be replayed and stayed where {}: {} in {:?}: original queue {:?}: {}{}",
                    out::count(v.len() as u64, "dead letter"),
                    if v.len() == 1 { "it is" } else { "they are" },
                    first.id,
                    first.dlq,
                    first.original_queue,
                    first.why,
                    if v.len() > 1 { " (and others: see --json)" } else { "" }
                ),
            ))
        }
    };
    if json {
        out::json(w, &report)?;
        return left;
    }
    let parts: Vec<String> = report
        .by_queue
        .iter()
        .map(|(q, n)| format!("{n} to {q:?}"))
        .collect();
    let detail = if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join(", "))
    };
    let letters = out::count(matched, "dead letter");
    if dry_run {
        writeln!(w, "would replay {letters}{detail} (dry run: nothing moved)")?;
    } else {
        let gone = match matched - replayed.min(matched) {
            0 => String::new(),
            n => format!(" ({n} no longer there: another replay or consumer took them)"),
        };
        writeln!(w, "replayed {replayed} of {letters}{detail}{gone}")?;
    }
    if held > 0 {
        // Said as `purge` and `move` say it: otherwise "would replay 0" while `dlq list`
        // shows the letters, with no word why (review r14 #13).
        writeln!(
            w,
            "{} held by consumers (in flight) {} left as {}",
            out::count(held, "dead letter"),
            match (dry_run, held) {
                (true, _) => "would be",
                (false, 1) => "was",
                _ => "were",
            },
            if held == 1 { "it is" } else { "they are" },
        )?;
    }
    left
}
