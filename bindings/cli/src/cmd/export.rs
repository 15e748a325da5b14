//! `mqlite export`: every stored message as one line of JSON.

use std::io::{IsTerminal, Write};

use mqlite::MessageId;

use crate::cli::ExportArgs;
use crate::error::Result;
use crate::wire::{MessageJson, SubscriptionJson};
use crate::{open, out};
use serde_json::json;

/// Messages are read this many at a time (bodies stay on disk until written out).
const PAGE: usize = 1000;

pub fn run(a: &ExportArgs, w: &mut dyn Write) -> Result<()> {
    let store = open::open_to_read(&a.dir)?;
    let queues = open::queues(&store, &a.queues)?;
    let mut total = 0;
    for q in &queues {
        total += q.stats()?.messages;
    }
    // The durable subscriptions whose queues are exported, first: `import` re-creates them
    // before it stores their messages (a non-durable one ends with its subscriber: not kept).
    for sub in store.subscriptions() {
        if sub.durable && queues.iter().any(|q| q.name() == sub.queue) {
            out::json(w, &json!({"subscription": SubscriptionJson::of(&sub)}))?;
        }
    }
    let bar = out::progress(total, "exporting");
    let mut written = 0u64;
    for q in &queues {
        let mut from = MessageId(0);
        loop {
            let page = q.browse_stored(from, PAGE)?;
            let Some(last) = page.last().and_then(|s| s.message.id()) else {
                break;
            };
            for s in &page {
                out::json(
                    w,
                    &MessageJson::of(q.name(), &s.message, s.deliver_at_ms, true),
                )?;
            }
            written += page.len() as u64;
            bar.inc(page.len() as u64);
            from = MessageId(last.0 + 1);
        }
    }
    bar.finish_and_clear();
    if std::io::stderr().is_terminal() {
        let n = out::count(written, "message");
        eprintln!(
            "exported {n} of {}",
            out::count(queues.len() as u64, "queue")
        );
    }
    Ok(())
}
