//! `mqlite send`: one message from the argument, a file or stdin.

use std::io::{IsTerminal, Write};

use mqlite::Message;
use serde_json::json;

use crate::cli::SendArgs;
use crate::error::{CliError, Result, Status};
use crate::{open, out, parse};

pub fn run(a: SendArgs, json: bool, w: &mut dyn Write) -> Result<()> {
    // Everything is checked before the store is opened (or created).
    if a.topic {
        mqlite::selector::check_topic_name(&a.queue)?;
    } else {
        mqlite::validate_queue_name(&a.queue)?;
        open::plain_into_dlq(&a.queue).map_err(CliError::usage)?;
    }
    // `--file -` is stdin, as for most commands (review r4 #20).
    let file = a
        .file
        .as_deref()
        .filter(|f| *f != std::path::Path::new("-"));
    let body = match (a.body, file) {
        (Some(b), _) => b.into_bytes(),
        (None, Some(f)) => open::read_input_file("--file", f)?,
        (None, None) if !std::io::stdin().is_terminal() => {
            let b = open::read_body(std::io::stdin().lock(), "stdin")?;
            // Review r6 #7: a forgotten BODY off a terminal (cron, ssh, CI: stdin empty or
            // /dev/null) stored an empty message. An empty body is sent on purpose with ''.
            if b.is_empty() {
                return Err(CliError::usage(
                    "no body: stdin is empty; give BODY, --file FILE, or pipe the body to \
                     stdin (an empty message on purpose: BODY '')",
                ));
            }
            b
        }
        (None, None) => {
            return Err(CliError::usage(
                "no body: give BODY, --file FILE, or pipe it to stdin",
            ))
        }
    };
    let mut m = Message::new(body);
    for (k, v) in parse::properties(&a.properties)? {
        m.set_property(k, v);
    }
    if let Some(p) = a.priority {
        m = m.priority(p);
    }
    if let Some(t) = &a.ttl {
        m = m.ttl(parse::duration("--ttl", t)?);
    }
    if let Some(d) = &a.delay {
        m = m.delay(parse::duration("--delay", d)?);
    }
    if let Some(g) = a.group {
        m = m.group(g);
    }
    if let Some(k) = a.dedup_key {
        m = m.dedup_key(k);
    }
    if let Some(c) = a.correlation_id {
        m = m.correlation_id(c);
    }
    let store = open::open_with(&a.dir, a.create, |_| {}).map_err(|e| {
        // (Review r3 #26: not for a path that is a file, where --create cannot help.)
        if e.status == Status::NotFound && !a.dir.is_file() {
            e.hint("pass --create to make a new store there")
        } else {
            e
        }
    })?;
    if a.topic {
        return publish(&store, &a.queue, m, json, w);
    }
    let q = open::queue_or_create(&store, &a.queue)?;
    // A send whose dedup key the queue's window holds stores nothing and answers the first
    // message's id: say so rather than "sent" (an operator would look for a second message).
    let key = m.get_dedup_key().map(str::to_string);
    let earlier = match &key {
        Some(k) => q
            .dedup_lookup(k)
            .map_err(|e| CliError::from(e).context(format!("queue {:?}", a.queue)))?,
        None => None,
    };
    let id = q
        .send(m)
        .map_err(|e| CliError::from(e).context(format!("queue {:?}", a.queue)))?;
    let duplicate = earlier == Some(id);
    if json {
        return out::json(
            w,
            &json!({"queue": a.queue, "id": id.to_string(), "duplicate": duplicate}),
        );
    }
    match (duplicate, key) {
        (true, Some(k)) => writeln!(
            w,
            "nothing stored: queue {:?} already took dedup key {k:?} as {id} (within its dedup window)",
            a.queue
        )?,
        _ => writeln!(w, "sent {id} to queue {:?}", a.queue)?,
    }
    Ok(())
}

/// `send --topic`: publishes to every matching durable subscription (a non-durable one cannot be
/// attached from another process), and says how many matched.
fn publish(
    store: &mqlite::Store,
    topic: &str,
    m: Message,
    json: bool,
    w: &mut dyn Write,
) -> Result<()> {
    let t = store.topic(topic)?;
    // The publish's own outcome (the topic's counters are cumulative and, as a client, the
    // owner's): how many subscriptions' patterns and selectors took this message.
    let p = t
        .publish_routed(m)
        .map_err(|e| CliError::from(e).context(format!("topic {topic:?}")))?;
    // An unrouted publish stores nothing (the core's stats count no message), so the id the
    // core gave it names no message: it is not shown (`null` in JSON), lest an operator look
    // for it with browse or dlq.
    let id = (p.subscriptions > 0).then(|| p.id.to_string());
    if json {
        return out::json(
            w,
            &json!({"topic": topic, "id": id, "subscriptions": p.subscriptions, "routed": id.is_some()}),
        );
    }
    match id {
        Some(id) => writeln!(
            w,
            "published {id} to topic {topic:?} ({})",
            out::count(u64::from(p.subscriptions), "subscription")
        )?,
        None => writeln!(
            w,
            "topic {topic:?}: no subscription matched, nothing was stored"
        )?,
    }
    Ok(())
}
