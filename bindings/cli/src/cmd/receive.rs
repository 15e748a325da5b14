//! `mqlite receive`: consume messages and settle them.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mqlite::{AckMode, ConsumerOptions, Delivery, Message, Store};
use serde::Serialize;

use crate::cli::ReceiveArgs;
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

/// Set by the signal handler before it closes the store: a failure the close causes in the
/// command's own thread (`Closed`) is then not reported; the handler exits with 130.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

/// Exit status after SIGINT, SIGTERM or SIGHUP (128 + SIGINT, as shells report an interrupt).
const INTERRUPTED: i32 = 130;

/// On SIGINT, SIGTERM or SIGHUP (Ctrl-C while paging the output, a closed ssh session), closes
/// the store and exits with status 130 instead of dying: a clean close gives back whatever the
/// store's consumers took and did not hand out, uncounted, where death would count one failed
/// delivery on each (and, as a client, tells the owner at once). Deliveries already handed out
/// and not settled still count as failed, as they must. `ctrlc` (with its `termination`
/// feature) runs the handler on a thread of its own, so it may take locks and close the store;
/// a raw signal handler may not.
fn close_on_signal(store: &Arc<Store>) -> Result<()> {
    let store = Arc::clone(store);
    ctrlc::set_handler(move || {
        SIGNALLED.store(true, Ordering::SeqCst);
        let _ = store.close();
        std::process::exit(INTERRUPTED);
    })
    .map_err(|e| {
        CliError::new(
            Status::Failed,
            format!("installing the signal handler: {e}"),
        )
    })
}

pub fn run(a: &ReceiveArgs, json: bool, w: &mut dyn Write) -> Result<()> {
    let wait = match &a.wait {
        Some(d) => parse::duration("--wait", d)?,
        None => Duration::ZERO,
    };
    let store = Arc::new(open::open(&a.dir)?);
    close_on_signal(&store)?;
    let r = receive(&store, a, wait, json, w);
    // Closed here, not by a drop: the signal handler holds the store too. The close writes the
    // lazy acks (and, as a client, waits for the owner to take back what this one held), so
    // its failure is the command's.
    let closed = store
        .close()
        .map_err(|e| CliError::from(e).context("closing the store"));
    if SIGNALLED.load(Ordering::SeqCst) {
        // The handler is closing the store and will exit with 130: wait for it.
        loop {
            std::thread::park();
        }
    }
    r.and(closed)
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
    // What is shown is taken before settling (settling consumes the delivery); it is printed
    // only once the settle has succeeded.
    let shown: Vec<(Message, u32, bool)> = deliveries
        .iter()
        .map(|d| (d.message().clone(), d.delivery_count(), d.redelivered()))
        .collect();
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
    if json {
        let v: Vec<_> = shown
            .iter()
            .map(|(m, count, redelivered)| Received {
                message: MessageJson::of(&a.queue, m, 0, true),
                delivery_count: *count,
                redelivered: *redelivered,
                settled,
            })
            .collect();
        return out::json(w, &v);
    }
    if shown.is_empty() {
        writeln!(w, "no message in queue {:?}", a.queue)?;
    }
    for (i, (m, count, _)) in shown.iter().enumerate() {
        if i > 0 {
            writeln!(w)?;
        }
        let view = out::MessageView {
            message: m,
            state: settled,
            delivery_count: *count,
            deliver_at_ms: 0,
        };
        out::message(w, &view, a.body)?;
    }
    Ok(())
}
