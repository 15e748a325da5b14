//! `mqlite receive`: consume messages and settle them.

use std::io::Write;
use std::time::Duration;

use mqlite::{AckMode, ConsumerOptions, Delivery, Message, Store};
use serde::Serialize;

use crate::cli::{BodyFormat, ReceiveArgs};
use crate::error::{CliError, Result, Status};
use crate::wire::MessageJson;
use crate::{open, out, parse};

#[derive(Serialize)]
struct Received {
    #[serde(flatten)]
    message: MessageJson,
    delivery_count: u32,
    redelivered: bool,
    settled: &'static str,
}

pub fn run(a: &ReceiveArgs, json: bool, w: &mut dyn Write) -> Result<()> {
    let wait = match &a.wait {
        Some(d) => parse::duration("--wait", d)?,
        None => Duration::ZERO,
    };
    // Review r4 #16: the core drops a message rejected from a dead-letter queue (a dead letter
    // is not dead-lettered again: `dlq_for` would name its own queue), so `--reject` there is a
    // delete that reads as a reject. Refused before anything is received.
    if a.settle.reject.is_some() && open::is_dlq(&a.queue) {
        return Err(CliError::usage(format!(
            "--reject from {:?}: a dead letter cannot be dead-lettered again; use --ack to \
             delete it, or `mqlite dlq replay` to send it back",
            a.queue
        )));
    }
    // On SIGINT, SIGTERM or SIGHUP (Ctrl-C while paging the output) main's handler closes the
    // store and exits with 130: a clean close gives back whatever the consumer took and did
    // not hand out, uncounted, where death would count one failed delivery on each.
    let store = open::open(&a.dir)?;
    // A failure is reported before the store is closed (review r4 #3: the close may wait on
    // the owner); main closes it after.
    receive(&store, a, wait, json, w)?;
    // Closed here on success: the close writes the lazy acks (and, as a client, waits for the
    // owner to take back what this one held), so its failure is the command's.
    store
        .close()
        .map_err(|e| CliError::from(e).context("closing the store"))
}

fn receive(
    store: &Store,
    a: &ReceiveArgs,
    wait: Duration,
    json: bool,
    w: &mut dyn Write,
) -> Result<()> {
    let q = open::queue(store, &a.queue)?;
    // A command asked for N messages takes N: its own consumer with no prefetch (the take is
    // exactly the batch asked for, `max(prefetch, n)` in the engine), not the queue's prefetch,
    // which would hold up to 1,000 more messages this command never shows, each counted as one
    // failed delivery if the command is killed. A consumer-level prefetch goes to the owner as
    // it is when this command is a client, so both roles take exactly N.
    let consumer = q.consumer(ConsumerOptions {
        ack_mode: AckMode::Explicit,
        prefetch: Some(0),
    });
    let deliveries = consumer.receive_batch(a.n as usize, Some(wait))?;
    let s = &a.settle;
    let settled = match (&s.nack, &s.reject, s.release) {
        (Some(_), _, _) => "nacked",
        (_, Some(_), _) => "rejected",
        (_, _, true) => "released",
        _ => "acked",
    };
    // Shown first, settled after (review r4 #4): a message is settled only once its lines were
    // written and flushed. When the output fails (the reader went away, as in `| head -1`), the
    // message being written and every later one are released (back to the queue, uncounted)
    // instead of being acked unseen; those written before it are settled. (A pipe's buffer may
    // still hold the last ones written when its reader exits: `-n` is the way to take fewer.)
    let shown: Vec<(Message, u32, bool)> = deliveries
        .iter()
        .map(|d| (d.message().clone(), d.delivery_count(), d.redelivered()))
        .collect();
    let written = if json {
        let v: Vec<_> = shown
            .iter()
            .map(|(m, count, redelivered)| Received {
                message: MessageJson::of(&a.queue, m, 0, true),
                delivery_count: *count,
                redelivered: *redelivered,
                settled,
            })
            .collect();
        match out::json(w, &v).and_then(|()| w.flush().map_err(CliError::from)) {
            Ok(()) => shown.len(),
            Err(_) => 0,
        }
    } else {
        show(w, &a.queue, &shown, settled, a.body)
    };
    let mut deliveries = deliveries;
    let unshown = deliveries.split_off(written);
    let released = unshown.len();
    for d in unshown {
        d.release()
            .map_err(|e| CliError::from(e).context(format!("releasing in queue {:?}", a.queue)))?;
    }
    let settle_one = |d: Delivery| {
        let id = d.id();
        let r = match (&s.nack, &s.reject, s.release) {
            (Some(reason), _, _) => d.nack(reason),
            (_, Some(reason), _) => d.reject(reason),
            (_, _, true) => d.release(),
            _ => d.ack(),
        };
        r.map_err(|e| CliError::from(e).context(format!("{id} of queue {:?}", a.queue)))
    };
    if settled == "acked" {
        q.ack_batch(deliveries)
            .map_err(|e| CliError::from(e).context(format!("acking in queue {:?}", a.queue)))?;
    } else {
        for d in deliveries {
            settle_one(d)?;
        }
    }
    if released > 0 {
        let what = format!(
            "{released} message{} of queue {:?} not shown {} released (back in the queue, not \
             counted as failed deliveries)",
            if released == 1 { "" } else { "s" },
            a.queue,
            if released == 1 { "was" } else { "were" },
        );
        // Why the output failed, asked again (the buffered bytes are still there): a closed
        // pipe is a reader that went away; anything else (a full disk) is the command's failure,
        // said once (review r6 #6: "the reader went away" and then the I/O error).
        match w.flush() {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(CliError::new(
                    Status::Failed,
                    format!("writing the output: {e}; {what}"),
                ));
            }
            _ => {}
        }
        // The reader is gone: stdout cannot say it, and the exit status stays 0 as for every
        // command whose reader went away (main.rs); stderr tells an operator what happened.
        eprintln!(
            "mqlite: the output's reader went away: {released} message{} of queue {:?} not shown \
             {} released (back in the queue, not counted as failed deliveries)",
            if released == 1 { "" } else { "s" },
            a.queue,
            if released == 1 { "was" } else { "were" },
        );
    }
    Ok(())
}

/// Writes the messages as text, flushing after each; returns how many were written whole
/// (the first write or flush that fails stops it).
fn show(
    w: &mut dyn Write,
    queue: &str,
    shown: &[(Message, u32, bool)],
    settled: &str,
    body: BodyFormat,
) -> usize {
    if shown.is_empty() {
        let _ = writeln!(w, "no message in queue {queue:?}");
    }
    for (i, (m, count, _)) in shown.iter().enumerate() {
        if show_one(w, i, m, *count, settled, body).is_err() {
            return i;
        }
    }
    shown.len()
}

/// One message of [`show`], flushed.
fn show_one(
    w: &mut dyn Write,
    i: usize,
    m: &Message,
    count: u32,
    settled: &str,
    body: BodyFormat,
) -> Result<()> {
    if i > 0 {
        writeln!(w)?;
    }
    let view = out::MessageView {
        message: m,
        state: settled,
        delivery_count: count,
        deliver_at_ms: 0,
    };
    out::message(w, &view, body)?;
    w.flush()?;
    Ok(())
}
