//! `mqlite list`: the queues and dead-letter queues.

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

/// The JSON shape leaves room for topics and subscriptions beside `queues`.
#[derive(Serialize)]
struct Listing {
    queues: Vec<Row>,
}

pub fn run(dir: &Path, json: bool, w: &mut dyn Write) -> Result<()> {
    let store = open::open(dir)?;
    let mut rows = Vec::new();
    for q in open::queues(&store, &[])? {
        let s = q.stats()?;
        rows.push(Row {
            name: q.name().to_string(),
            kind: if open::is_dlq(q.name()) {
                "dead_letter_queue"
            } else {
                "queue"
            },
            messages: s.messages,
            bytes: s.bytes,
        });
    }
    if json {
        return out::json(w, &Listing { queues: rows });
    }
    let mut t = out::table(&["queue", "kind", "messages", "bytes"], &[2, 3]);
    for r in &rows {
        t.add_row(vec![
            r.name.clone(),
            r.kind.replace('_', " "),
            r.messages.to_string(),
            out::bytes(r.bytes),
        ]);
    }
    out::write_table(w, &t)?;
    Ok(())
}
