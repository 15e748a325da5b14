//! `mqlite receive`: consume messages and settle them.

use std::io::Write;
use std::time::Duration;

use mqlite::{Delivery, Message};
use serde::Serialize;

use crate::cli::ReceiveArgs;
use crate::error::{CliError, Result};
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
    let store = open::open(&a.dir)?;
    let q = open::queue(&store, &a.queue)?;
    let deliveries = q.receive_batch(a.n as usize, Some(wait))?;
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
