//! `mqlite import`: JSON Lines (as `export` writes them) into a store, batch by batch.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};

use mqlite::{Message, Store};
use serde_json::json;

use crate::cli::ImportArgs;
use crate::error::{CliError, Result, Status};
use crate::wire::{Line, SubscriptionJson};
use crate::{open, out, parse};

/// A line checked and ready to store: its number, queue and message.
type Ready = (usize, String, Message);

/// The longest line an export can hold: a body of [`open::max_body`] bytes in base64 (4/3),
/// plus as much again for its properties and headers. A longer line is no export line (review
/// r3 #38: `import < backup.tar` or a file without newlines grew the command's memory without
/// bound before the body limit was checked).
fn max_line() -> usize {
    open::max_body() / 3 * 4 + 8 + open::max_body()
}

/// The UTF-8 byte order mark, which Windows editors put at the start of a text file.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// Whether a line holds nothing but white space.
fn blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// Reads up to `max` message lines; returns them with their line numbers (1-based). JSON Lines
/// has one JSON value on every line, so a blank line followed by a message line is kept (the
/// first of a run of them, as an empty line), to be refused by [`check_line`]; blank lines at
/// the end of the input are dropped, as is a UTF-8 byte order mark at the start of line 1
/// (review r3 #18: a trailing empty line, as `echo >>` or an editor leaves, refused the whole
/// last batch, and a BOM gave "bad JSON … column 1"). A line over [`max_line`] bytes is refused
/// (status 7, naming it) as soon as that many are read.
fn read_batch(r: &mut dyn BufRead, line_no: &mut usize, max: u64) -> Result<Vec<(usize, Vec<u8>)>> {
    let mut lines = Vec::new();
    let cap = max_line();
    // The first blank line not yet known to be followed by a message line (only its number is
    // kept: a stream of blank lines must not grow the memory).
    let mut first_blank: Option<usize> = None;
    while (lines.len() as u64) < max {
        let mut buf = Vec::new();
        let n = (&mut *r)
            .take(cap as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| {
                CliError::new(
                    Status::Failed,
                    format!("reading line {}: {e}", *line_no + 1),
                )
            })?;
        if n == 0 {
            break;
        }
        *line_no += 1;
        if buf.len() > cap {
            return Err(CliError::new(
                Status::BadInput,
                format!(
                    "line {}: longer than {cap} bytes, more than a message of at most {} bytes \
                     takes as an export line (nothing of this batch was written)",
                    *line_no,
                    open::max_body()
                ),
            ));
        }
        if *line_no == 1 && buf.starts_with(BOM) {
            buf.drain(..BOM.len());
        }
        if blank(&buf) {
            first_blank.get_or_insert(*line_no);
            continue;
        }
        if let Some(b) = first_blank.take() {
            lines.push((b, Vec::new()));
        }
        lines.push((*line_no, buf));
    }
    Ok(lines)
}

/// A line checked: a message for a queue, or a subscription to re-create.
enum Checked {
    Message(String, Box<Message>),
    Subscription(SubscriptionJson),
}

/// Checks one line: JSON, field types, base64, names, ranges.
fn check_line(raw: &[u8], queue: Option<&str>, now: u64) -> std::result::Result<Checked, String> {
    let text = std::str::from_utf8(raw).map_err(|e| format!("not UTF-8 ({e})"))?;
    if text.trim().is_empty() {
        return Err(
            "empty line before more messages (JSON Lines holds one JSON object on every line; \
             only blank lines at the end of the input are skipped)"
                .into(),
        );
    }
    if text.starts_with('\u{feff}') {
        return Err(
            "the line starts with a UTF-8 byte order mark (U+FEFF); only one at the \
                    start of the input is skipped (files joined together? strip it)"
                .into(),
        );
    }
    let j = match Line::parse(text.trim_end())? {
        Line::Subscription(sub) => {
            sub.check()?;
            return Ok(Checked::Subscription(sub));
        }
        Line::Message(j) => j,
    };
    let m = j.to_message(now, queue.is_some())?;
    let max = open::max_body();
    if m.body().len() > max {
        return Err(format!(
            "body of {} bytes is over the limit of {max} bytes",
            m.body().len()
        ));
    }
    let queue = queue.map_or(j.queue, str::to_string);
    if m.dead_letter_info().is_none() {
        open::plain_into_dlq(&queue)?;
    }
    Ok(Checked::Message(queue, Box::new(m)))
}

/// How subscription line `sub` differs from `have` (the store's subscription of that name, or
/// one an earlier line declares): pattern, selector, sharing, durability; empty when alike.
fn differences(sub: &SubscriptionJson, have: &SubscriptionJson, durable: bool) -> Vec<String> {
    let mut diffs = Vec::new();
    if sub.pattern != have.pattern {
        diffs.push(format!("pattern {:?}, not {:?}", have.pattern, sub.pattern));
    }
    if sub.selector != have.selector {
        diffs.push(format!(
            "selector {:?}, not {:?}",
            have.selector, sub.selector
        ));
    }
    if sub.shared != have.shared {
        diffs.push(format!("shared {}, not {}", have.shared, sub.shared));
    }
    if !durable {
        diffs.push("non-durable".into());
    }
    diffs
}

/// Why subscription line `sub` cannot be imported into a store whose subscription of that name
/// is `have`: a different pattern, selector or sharing. (`subscribe` would replace it and drop
/// every message it holds — JMS's rule for a changed subscription — which an import must never
/// do.) The hint names what the operator can do: the command has no `unsubscribe`.
fn conflict(sub: &SubscriptionJson, have: &mqlite::SubscriptionInfo) -> Option<String> {
    let diffs = differences(sub, &SubscriptionJson::of(have), have.durable);
    (!diffs.is_empty()).then(|| {
        format!(
            "subscription {:?} exists in the store with {} (importing it would drop what it \
             holds; import into another store, or the messages with --queue QUEUE)",
            sub.name,
            diffs.join(", ")
        )
    })
}

/// Why subscription line `sub` (line `n`) contradicts line `at`, which declared the same name
/// as `have` (review r4 #2: two exports joined together; the second was silently ignored).
fn conflict_in_input(sub: &SubscriptionJson, at: usize, have: &SubscriptionJson) -> Option<String> {
    let diffs = differences(sub, have, true);
    (!diffs.is_empty()).then(|| {
        format!(
            "subscription {:?} is declared on line {at} with {} (two inputs joined together? \
             import them apart, one with --queue QUEUE)",
            sub.name,
            diffs.join(", ")
        )
    })
}

/// Re-creates the subscriptions of a batch before its messages are stored: durable, with the
/// exported pattern, selector and sharing, and the queue options of every queue this command
/// takes (as its owner). The handle is dropped at once (a durable subscription keeps collecting without one).
fn create_subscriptions(store: &Store, subs: &[SubscriptionJson]) -> Result<()> {
    for sub in subs {
        let options = mqlite::SubscriptionOptions {
            name: Some(sub.name.clone()),
            durable: true,
            shared: sub.shared,
            selector: (!sub.selector.is_empty()).then(|| sub.selector.clone()),
            // As a client, no options: the owner's defaults (a client's would replace them).
            queue: match store.role() {
                mqlite::Role::Owner => open::queue_options(),
                mqlite::Role::Client => mqlite::QueueOptions::default(),
            },
        };
        store
            .subscribe(&sub.pattern, options)
            .map_err(|e| CliError::from(e).context(format!("subscription {:?}", sub.name)))?;
    }
    Ok(())
}

/// What the import stored: messages by queue, and those its dedup window dropped.
#[derive(Default)]
struct Tally {
    by_queue: BTreeMap<String, u64>,
    duplicates: u64,
}

/// Stores one checked batch as one transaction. A message whose dedup key the queue already
/// holds (or an earlier line of the batch carries) would store nothing: it is counted as a
/// duplicate, not as imported.
fn store_batch(store: &Store, batch: Vec<Ready>, tally: &mut Tally) -> Result<()> {
    let (first, last) = match (batch.first(), batch.last()) {
        (Some(f), Some(l)) => (f.0, l.0),
        _ => return Ok(()),
    };
    let mut handles: BTreeMap<String, mqlite::Queue> = BTreeMap::new();
    let mut keys = std::collections::HashSet::new();
    let mut txn = store.transaction();
    let mut stored = BTreeMap::<String, u64>::new();
    let mut duplicates = 0;
    for (line, queue, m) in batch {
        if !handles.contains_key(&queue) {
            handles.insert(queue.clone(), open::queue_or_create(store, &queue)?);
        }
        let Some(q) = handles.get(&queue) else {
            continue;
        };
        if let Some(key) = m.get_dedup_key() {
            if !keys.insert((queue.clone(), key.to_string())) || q.dedup_lookup(key)?.is_some() {
                duplicates += 1;
                continue;
            }
        }
        // What the library refuses of a line (a header too large, ...) names the line.
        txn.send(q, m)
            .map_err(|e| CliError::from(e).context(format!("line {line}")))?;
        *stored.entry(queue).or_default() += 1;
    }
    txn.commit().map_err(|e| {
        CliError::from(e).context(format!("{} were not stored", out::lines(first, last)))
    })?;
    for (q, n) in stored {
        *tally.by_queue.entry(q).or_default() += n;
    }
    tally.duplicates += duplicates;
    Ok(())
}

/// The line to resume an interrupted import from, after lines 1–`stored_through` were stored:
/// what every failure and an interrupting signal print.
fn resume_line(stored_through: usize) -> String {
    let stored = match stored_through {
        0 => "no line is stored".to_string(),
        n => format!("{} stored", out::lines(1, n)),
    };
    format!(
        "{stored}: resume with `tail -n +{} INPUT | mqlite import DIR`",
        stored_through + 1
    )
}

pub fn run(a: &ImportArgs, json: bool, w: &mut dyn Write) -> Result<()> {
    if let Some(q) = &a.queue {
        mqlite::validate_queue_name(q)?;
    }
    // `--input -` is stdin, as for most commands (review r4 #20).
    let file = a
        .input
        .as_deref()
        .filter(|f| *f != std::path::Path::new("-"));
    let mut input: Box<dyn BufRead> = match file {
        Some(p) => Box::new(BufReader::new(open::input_file("--input", p)?)),
        None if std::io::stdin().is_terminal() => {
            return Err(CliError::usage(
                "no input: pipe JSON Lines to stdin (mqlite import DIR < file.jsonl) or pass --input FILE",
            ))
        }
        None => Box::new(BufReader::new(Box::new(std::io::stdin()) as Box<dyn Read>)),
    };
    let store = open::open_with(&a.dir, a.create, |_| {})?;
    // A subscription's queue ($sub.NAME) exists only with its subscription: the store's, or
    // one a subscription line before it re-creates. A line for any other is refused, naming
    // it, before anything of its batch is written (status 7, as any line the store cannot take).
    let existing: BTreeMap<String, mqlite::SubscriptionInfo> = store
        .subscriptions()
        .into_iter()
        .map(|i| (i.name.clone(), i))
        .collect();
    let mut sub_queues: std::collections::HashSet<String> =
        existing.values().map(|i| i.queue.clone()).collect();
    // The subscriptions the input declares, with the line that first did.
    let mut declared: BTreeMap<String, (usize, SubscriptionJson)> = BTreeMap::new();
    let mut subs_created = 0u64;
    let bar = out::progress(0, "importing");
    let now = parse::now_ms();
    let mut line_no = 0usize;
    // The last line of the input whose batch is stored (0: none yet). Review r4 #1: the
    // resume point is a line number, which every failure names, not a count of messages
    // (subscription lines and duplicates are lines that store no message).
    let mut stored_through = 0usize;
    let mut tally = Tally::default();
    let imported = |t: &Tally| t.by_queue.values().sum::<u64>();
    // Every failure once the input is being read names the line to resume from.
    let resume = |e: CliError, stored_through: usize| e.hint(resume_line(stored_through));
    loop {
        let lines =
            read_batch(&mut input, &mut line_no, a.batch).map_err(|e| resume(e, stored_through))?;
        let (Some(first), Some(last)) = (lines.first().map(|l| l.0), lines.last().map(|l| l.0))
        else {
            break;
        };
        // Every line of the batch is checked before anything of it is written.
        let mut batch: Vec<Ready> = Vec::with_capacity(lines.len());
        let mut new_subs: Vec<SubscriptionJson> = Vec::new();
        let earlier = imported(&tally);
        let bad = |n: usize, why: String| {
            resume(
                CliError::new(
                    Status::BadInput,
                    format!(
                        "line {n}: {why}; nothing of {} was written ({} of earlier lines \
                         imported)",
                        out::lines(first, last),
                        out::count(earlier, "message")
                    ),
                ),
                stored_through,
            )
        };
        for (n, raw) in &lines {
            let (queue, m) =
                match check_line(raw, a.queue.as_deref(), now).map_err(|w| bad(*n, w))? {
                    Checked::Message(queue, m) => (queue, *m),
                    // With --queue every message goes to that queue: no subscription is needed.
                    Checked::Subscription(_) if a.queue.is_some() => continue,
                    Checked::Subscription(sub) => {
                        match declared.get(&sub.name) {
                            Some((at, have)) => {
                                if let Some(why) = conflict_in_input(&sub, *at, have) {
                                    return Err(bad(*n, why));
                                }
                                continue;
                            }
                            None => {
                                declared.insert(sub.name.clone(), (*n, sub.clone()));
                            }
                        }
                        match existing.get(&sub.name) {
                            Some(have) => {
                                if let Some(why) = conflict(&sub, have) {
                                    return Err(bad(*n, why));
                                }
                            }
                            None if !sub_queues.contains(&sub.queue()) => {
                                sub_queues.insert(sub.queue());
                                new_subs.push(sub);
                            }
                            None => {}
                        }
                        continue;
                    }
                };
            if queue.starts_with("$sub.") && !sub_queues.contains(&queue) {
                return Err(bad(
                    *n,
                    format!(
                        "queue {queue:?} is the queue of subscription {:?}, which store {} does \
                         not have and no line before this one declares (a `subscription` line, \
                         as export writes; or import these lines with --queue QUEUE)",
                        &queue["$sub.".len()..],
                        a.dir.display(),
                    ),
                ));
            }
            batch.push((*n, queue, m));
        }
        // One step for a signal: it waits for the batch's commit, then names the line to
        // resume from as stored (review r6 #3).
        let len = batch.len() as u64;
        open::step_begin()?;
        let step = create_subscriptions(&store, &new_subs)
            .and_then(|()| store_batch(&store, batch, &mut tally));
        open::step_end(step.is_ok().then(|| resume_line(last)));
        step.map_err(|e| resume(e, stored_through))?;
        subs_created += new_subs.len() as u64;
        stored_through = last;
        // A kill -9 leaves the last of these on the terminal: the line to resume from.
        bar.set_message(format!("importing (lines 1–{stored_through} stored)"));
        bar.inc_length(len);
        bar.inc(len);
    }
    bar.finish_and_clear();
    let (n, dups) = (imported(&tally), tally.duplicates);
    if json {
        return out::json(
            w,
            &json!({"imported": n, "duplicates": dups, "queues": tally.by_queue,
                    "subscriptions_created": subs_created, "lines": stored_through}),
        );
    }
    let parts: Vec<String> = tally
        .by_queue
        .iter()
        .map(|(q, n)| format!("{n} to {q:?}"))
        .collect();
    write!(w, "imported {}", out::count(n, "message"))?;
    if !parts.is_empty() {
        write!(w, " ({})", parts.join(", "))?;
    }
    if dups > 0 {
        write!(
            w,
            "; {} dropped by the dedup window",
            out::count(dups, "duplicate")
        )?;
    }
    if subs_created > 0 {
        write!(w, "; {} created", out::count(subs_created, "subscription"))?;
    }
    if stored_through > 0 {
        write!(w, "; {} read", out::lines(1, stored_through))?;
    }
    writeln!(w)?;
    Ok(())
}
