//! `mqlite import`: JSON Lines (as `export` writes them) into a store, batch by batch.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};

use mqlite::{Message, Store};
use serde_json::json;

use crate::cli::ImportArgs;
use crate::error::{CliError, Result, Status};
use crate::wire::MessageJson;
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

/// Reads up to `max` lines; returns them with their line numbers (1-based). A blank line is
/// kept, to be refused by [`check_line`]: JSON Lines has one JSON value on every line. A line
/// over [`max_line`] bytes is refused (status 7, naming it) as soon as that many are read.
fn read_batch(r: &mut dyn BufRead, line_no: &mut usize, max: u64) -> Result<Vec<(usize, Vec<u8>)>> {
    let mut lines = Vec::new();
    let cap = max_line();
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
        lines.push((*line_no, buf));
    }
    Ok(lines)
}

/// Checks one line: JSON, field types, base64, names, ranges.
fn check_line(
    raw: &[u8],
    queue: Option<&str>,
    now: u64,
) -> std::result::Result<(String, Message), String> {
    let text = std::str::from_utf8(raw).map_err(|e| format!("not UTF-8 ({e})"))?;
    if text.trim().is_empty() {
        return Err(
            "empty line (JSON Lines holds one JSON object on every line, blank lines included)"
                .into(),
        );
    }
    let j = MessageJson::from_line(text.trim_end())?;
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
    Ok((queue, m))
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
    for (_, queue, m) in batch {
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
        txn.send(q, m)?;
        *stored.entry(queue).or_default() += 1;
    }
    txn.commit()
        .map_err(|e| CliError::from(e).context(format!("lines {first}–{last} were not stored")))?;
    for (q, n) in stored {
        *tally.by_queue.entry(q).or_default() += n;
    }
    tally.duplicates += duplicates;
    Ok(())
}

pub fn run(a: &ImportArgs, json: bool, w: &mut dyn Write) -> Result<()> {
    if let Some(q) = &a.queue {
        mqlite::validate_queue_name(q)?;
    }
    let mut input: Box<dyn BufRead> = match &a.input {
        Some(p) => Box::new(BufReader::new(open::input_file("--input", p)?)),
        None if std::io::stdin().is_terminal() => {
            return Err(CliError::usage(
                "no input: pipe JSON Lines to stdin (mqlite import DIR < file.jsonl) or pass --input FILE",
            ))
        }
        None => Box::new(BufReader::new(Box::new(std::io::stdin()) as Box<dyn Read>)),
    };
    let store = open::open_with(&a.dir, a.create, |_| {})?;
    // A subscription's queue ($sub.NAME) exists only with its subscription, which an export
    // does not carry (a program subscribes): its lines are refused, naming the first, before
    // anything of their batch is written.
    let sub_queues: std::collections::HashSet<String> =
        store.subscriptions().into_iter().map(|i| i.queue).collect();
    let bar = out::progress(0, "importing");
    let now = parse::now_ms();
    let mut line_no = 0usize;
    let mut tally = Tally::default();
    let imported = |t: &Tally| t.by_queue.values().sum::<u64>();
    loop {
        let lines = read_batch(&mut input, &mut line_no, a.batch)?;
        let (Some(first), Some(last)) = (lines.first().map(|l| l.0), lines.last().map(|l| l.0))
        else {
            break;
        };
        // Every line of the batch is checked before anything of it is written.
        let mut batch: Vec<Ready> = Vec::with_capacity(lines.len());
        for (n, raw) in &lines {
            let (queue, m) = check_line(raw, a.queue.as_deref(), now).map_err(|why| {
                CliError::new(
                    Status::BadInput,
                    format!(
                        "line {n}: {why}; nothing of lines {first}–{last} was written ({} of \
                         earlier lines imported)",
                        out::count(imported(&tally), "message")
                    ),
                )
            })?;
            if queue.starts_with("$sub.") && !sub_queues.contains(&queue) {
                return Err(CliError::new(
                    Status::NotFound,
                    format!(
                        "line {n}: queue {queue:?} is the queue of subscription {:?}, which store \
                         {} does not have (a program creates it by subscribing; or import these \
                         lines with --queue QUEUE); nothing of lines {first}–{last} was written \
                         ({} of earlier lines imported)",
                        &queue["$sub.".len()..],
                        a.dir.display(),
                        out::count(imported(&tally), "message")
                    ),
                ));
            }
            batch.push((*n, queue, m));
        }
        let len = batch.len() as u64;
        store_batch(&store, batch, &mut tally)?;
        bar.inc_length(len);
        bar.inc(len);
    }
    bar.finish_and_clear();
    let (n, dups) = (imported(&tally), tally.duplicates);
    if json {
        return out::json(
            w,
            &json!({"imported": n, "duplicates": dups, "queues": tally.by_queue}),
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
    writeln!(w)?;
    Ok(())
}
