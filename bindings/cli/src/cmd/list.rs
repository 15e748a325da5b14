//! `mqlite list`: the queues, dead-letter queues and subscriptions (a topic is no stored object:
//! the subscriptions' patterns say which topics have subscribers).

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::error::Result;
use crate::{open, out};

#[derive(Serialize)]
struct Row {
    name: String,
    kind: &'static str,
    messages: u64,
    bytes: u64,
}

#[derive(Serialize)]
struct SubRow {
    name: String,
    pattern: String,
    selector: String,
    durable: bool,
    shared: bool,
    queue: String,
    messages: u64,
    bytes: u64,
}

/// `queues` lists every queue (a subscription's queue, `$sub.<name>`, with kind
/// `subscription`); `subscriptions` the subscriptions with their patterns and selectors.
#[derive(Serialize)]
struct Listing {
    queues: Vec<Row>,
    subscriptions: Vec<SubRow>,
}

fn kind(name: &str) -> &'static str {
    if name.starts_with("$sub.") {
        "subscription"
    } else if open::is_dlq(name) {
        "dead_letter_queue"
    } else {
        "queue"
    }
}

pub fn run(dir: &Path, json: bool, w: &mut dyn Write) -> Result<()> {
    let store = open::open_to_read(dir)?;
    let mut rows = Vec::new();
    for q in open::queues(&store, &[])? {
        let s = q.stats()?;
        rows.push(Row {
            name: q.name().to_string(),
            kind: kind(q.name()),
            messages: s.messages,
            bytes: s.bytes,
        });
    }
    let subs: Vec<SubRow> = store
        .subscriptions()
        .into_iter()
        .map(|i| {
            let held = rows.iter().find(|r| r.name == i.queue);
            SubRow {
                messages: held.map_or(0, |r| r.messages),
                bytes: held.map_or(0, |r| r.bytes),
                name: i.name,
                pattern: i.pattern,
                selector: i.selector,
                durable: i.durable,
                shared: i.shared,
                queue: i.queue,
            }
        })
        .collect();
    if json {
        return out::json(
            w,
            &Listing {
                queues: rows,
                subscriptions: subs,
            },
        );
    }
    let mut t = out::table(&["queue", "kind", "messages", "bytes"], &[2, 3]);
    for r in &rows {
        t.add_row(vec![
            out::printable(&r.name),
            r.kind.replace('_', " "),
            r.messages.to_string(),
            out::bytes(r.bytes),
        ]);
    }
    out::write_table(w, &t)?;
    if !subs.is_empty() {
        writeln!(w)?;
        let mut t = out::table(
            &["subscription", "pattern", "selector", "kind", "messages"],
            &[4],
        );
        for s in &subs {
            let kind = match (s.durable, s.shared) {
                (true, true) => "durable, shared",
                (true, false) => "durable",
                (false, true) => "shared",
                (false, false) => "non-durable",
            };
            t.add_row(vec![
                out::printable(&s.name),
                out::printable(&s.pattern),
                out::printable(&s.selector),
                kind.to_string(),
                s.messages.to_string(),
            ]);
        }
        out::write_table(w, &t)?;
    }
    Ok(())
}
