//! `mqlite browse`: stored messages without consuming them.

use std::io::Write;

use mqlite::{MessageId, StoredMessage};
use serde::Serialize;

use crate::cli::{BodyFormat, BrowseArgs};
use crate::error::Result;
use crate::wire::MessageJson;
use crate::{open, out, parse};

/// A stored message in `--json` output: the export form plus its delivery state.
#[derive(Serialize)]
pub struct StoredJson {
    #[serde(flatten)]
    pub message: MessageJson,
    pub state: &'static str,
    pub delivery_count: u32,
}

impl StoredJson {
    pub fn of(queue: &str, s: &StoredMessage, body: BodyFormat) -> Self {
        StoredJson {
            message: MessageJson::of(queue, &s.message, s.deliver_at_ms, body != BodyFormat::None),
            state: s.state.as_str(),
            delivery_count: s.delivery_count,
        }
    }
}

/// Writes stored messages as text blocks, or as one JSON array.
pub fn write_stored(
    w: &mut dyn Write,
    queue: &str,
    items: &[StoredMessage],
    body: BodyFormat,
    json: bool,
) -> Result<()> {
    if json {
        let v: Vec<_> = items
            .iter()
            .map(|s| StoredJson::of(queue, s, body))
            .collect();
        return out::json(w, &v);
    }
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            writeln!(w)?;
        }
        let view = out::MessageView {
            message: &s.message,
            state: s.state.as_str(),
            delivery_count: s.delivery_count,
            deliver_at_ms: s.deliver_at_ms,
        };
        out::message(w, &view, body)?;
    }
    Ok(())
}

/// Up to `limit` stored messages from `from` on that `wanted` keeps, read page by page so
/// that matches deep in the queue are found.
fn selected(
    q: &mqlite::Queue,
    wanted: &dyn Fn(&StoredMessage) -> bool,
    from: MessageId,
    limit: usize,
) -> Result<Vec<StoredMessage>> {
    let mut out = Vec::new();
    let mut next = from;
    while out.len() < limit {
        let page = q.browse_stored(next, 1_000)?;
        let Some(last) = page.last().and_then(|m| m.message.id()) else {
            break;
        };
        next = MessageId(last.0 + 1);
        out.extend(
            page.into_iter()
                .filter(|m| wanted(m))
                .take(limit - out.len()),
        );
    }
    Ok(out)
}

pub fn run(a: &BrowseArgs, json: bool, w: &mut dyn Write) -> Result<()> {
    let from = a
        .from
        .as_deref()
        .map(parse::id)
        .transpose()?
        .unwrap_or(MessageId(0));
    // The selector is checked before the store is opened.
    let selector = a
        .selector
        .as_deref()
        .map(mqlite::selector::Selector::parse)
        .transpose()?;
    let store = open::open_to_read(&a.dir)?;
    let q = open::queue(&store, &a.queue)?;
    let ready_only = a.ready_only;
    let wanted = |m: &StoredMessage| {
        (!ready_only || m.state == mqlite::MessageState::Ready)
            && selector.as_ref().is_none_or(|s| s.matches(&m.message))
    };
    let filtered = selector.is_some() || ready_only;
    let items = if filtered {
        selected(&q, &wanted, from, a.limit)?
    } else {
        q.browse_stored(from, a.limit)?
    };
    write_stored(w, q.name(), &items, a.body, json)?;
    if json {
        return Ok(());
    }
    let Some(next) = items.last().map(|m| m.message.id().map_or(0, |i| i.0) + 1) else {
        // Review r4 #12: "no messages in queue … from ID:0" when the queue held messages the
        // filters refused, and a "from" the operator never gave.
        let mut why = Vec::new();
        if let Some(f) = &a.from {
            why.push(format!("from {f}"));
        }
        if a.selector.is_some() {
            why.push("matching the selector".to_string());
        }
        if ready_only {
            why.push("ready".to_string());
        }
        let stored = q.stats()?.messages;
        if why.is_empty() || stored == 0 {
            writeln!(w, "no messages in queue {:?}", q.name())?;
        } else {
            writeln!(
                w,
                "no messages in queue {:?} {} ({} stored)",
                q.name(),
                why.join(", "),
                out::count(stored, "message")
            )?;
        }
        return Ok(());
    };
    // The hint promises more: only when the limit cut the listing and a message that this
    // listing would show (that passes --selector and --ready-only) follows the last one shown.
    // A listing that ended exactly at the limit, or whose later messages are all filtered out,
    // is complete.
    let cut = items.len() == a.limit;
    let more = cut
        && if filtered {
            !selected(&q, &wanted, MessageId(next), 1)?.is_empty()
        } else {
            !q.browse_stored(MessageId(next), 1)?.is_empty()
        };
    if more {
        writeln!(w, "\n{} shown; more with --from ID:{next}", items.len())?;
    }
    Ok(())
}
