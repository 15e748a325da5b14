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

/// Reads up to `max` non-blank lines; returns them with their line numbers (1-based).
fn read_batch(r: &mut dyn BufRead, line_no: &mut usize, max: u64) -> Result<Vec<(usize, Vec<u8>)>> {
    let mut lines = Vec::new();
    while (lines.len() as u64) < max {
        let mut buf = Vec::new();
        let n = r.read_until(b'\n', &mut buf).map_err(|e| {
            CliError::new(
                Status::Failed,
                format!("reading line {}: {e}", *line_no + 1),
            )
        })?;
        if n == 0 {
            break;
        }
        *line_no += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
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
    let j: MessageJson =
        serde_json::from_str(text.trim_end()).map_err(|e| format!("bad JSON: {e}"))?;
    let m = j.to_message(now)?;
    let max = mqlite::StoreOptions::default().max_body_bytes;
    if m.body().len() > max {
        return Err(format!(
            "body of {} bytes is over the limit of {max} bytes",
            m.body().len()
        ));
    }
    Ok((queue.map_or(j.queue, str::to_string), m))
}

/// Stores one checked batch as one transaction.
fn store_batch(store: &Store, batch: Vec<Ready>, counts: &mut BTreeMap<String, u64>) -> Result<()> {
    let (first, last) = match (batch.first(), batch.last()) {
        (Some(f), Some(l)) => (f.0, l.0),
        _ => return Ok(()),
    };
    let mut handles: BTreeMap<String, mqlite::Queue> = BTreeMap::new();
    let mut txn = store.transaction();
    for (_, queue, m) in batch {
        if !handles.contains_key(&queue) {
            handles.insert(queue.clone(), open::queue_or_create(store, &queue)?);
        }
        if let Some(q) = handles.get(&queue) {
            txn.send(q, m)?;
        }
        *counts.entry(queue).or_default() += 1;
    }
    txn.commit()
        .map_err(|e| CliError::from(e).context(format!("lines {first}–{last} were not stored")))?;
    Ok(())
}

pub fn run(a: &ImportArgs, json: bool, w: &mut dyn Write) -> Result<()> {
    if let Some(q) = &a.queue {
        mqlite::validate_queue_name(q)?;
    }
    let mut input: Box<dyn BufRead> = match &a.input {
        Some(p) => Box::new(BufReader::new(std::fs::File::open(p).map_err(|e| {
            CliError::new(Status::NotFound, format!("opening {}: {e}", p.display()))
        })?)),
        None if std::io::stdin().is_terminal() => {
            return Err(CliError::usage(
                "no input: pipe JSON Lines to stdin (mqlite import DIR < file.jsonl) or pass --input FILE",
            ))
        }
        None => Box::new(BufReader::new(Box::new(std::io::stdin()) as Box<dyn Read>)),
    };
    let store = open::open_with(&a.dir, a.create, |_| {})?;
    let bar = out::progress(0, "importing");
    let now = parse::now_ms();
    let mut line_no = 0usize;
    let mut imported = 0u64;
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
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
                        out::count(imported, "message")
                    ),
                )
            })?;
            batch.push((*n, queue, m));
        }
        let len = batch.len() as u64;
        store_batch(&store, batch, &mut counts)?;
        imported += len;
        bar.inc_length(len);
        bar.inc(len);
    }
    bar.finish_and_clear();
    if json {
        return out::json(w, &json!({"imported": imported, "queues": counts}));
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(q, n)| format!("{n} to {q:?}"))
        .collect();
    let n = out::count(imported, "message");
    writeln!(w, "imported {n} ({})", parts.join(", "))?;
    Ok(())
}
