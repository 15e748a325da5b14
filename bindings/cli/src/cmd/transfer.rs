//! The destructive commands: `purge`, `move`, `copy`. Each counts first, then asks on a terminal
//! (or needs `--yes`); `--dry-run` only counts.

use std::io::Write;

use mqlite::{MessageId, TransferFilter};
use serde::Serialize;

use crate::cli::{PurgeArgs, TransferArgs};
use crate::error::{CliError, Result, Status};
use crate::{open, out, parse};

#[derive(Serialize)]
struct Outcome<'a> {
    command: &'a str,
    queue: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
    dry_run: bool,
    /// Messages that matched (the count a dry run reports).
    matched: u64,
    /// Messages purged, moved or copied.
    done: u64,
    /// Messages the target already held by dedup key (nothing stored; a move leaves them).
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicates: Option<u64>,
}

impl<'a> Outcome<'a> {
    fn new(
        command: &'a str,
        queue: &'a str,
        to: Option<&'a str>,
        dry_run: bool,
        matched: u64,
    ) -> Self {
        Outcome {
            command,
            queue,
            to,
            dry_run,
            matched,
            done: 0,
            duplicates: None,
        }
    }
}

fn report(w: &mut dyn Write, json: bool, o: &Outcome<'_>) -> Result<()> {
    if json {
        return out::json(w, o);
    }
    let verb = match o.command {
        "purge" => "purged",
        "move" => "moved",
        _ => "copied",
    };
    let to = o.to.map(|t| format!(" to queue {t:?}")).unwrap_or_default();
    if o.dry_run {
        writeln!(
            w,
            "would {} {} of queue {:?}{to} (dry run: nothing changed)",
            o.command,
            out::count(o.matched, "message"),
            o.queue
        )?;
    } else if o.matched == 0 {
        writeln!(
            w,
            "no waiting messages of queue {:?} match; nothing changed",
            o.queue
        )?;
    } else {
        let n = out::count(o.done, "message");
        writeln!(w, "{verb} {n} of queue {:?}{to}", o.queue)?;
        if let Some(d) = o.duplicates.filter(|d| *d > 0) {
            writeln!(
                w,
                "{} not stored: the target already holds their dedup keys",
                out::count(d, "message")
            )?;
        }
    }
    Ok(())
}

pub fn purge(a: &PurgeArgs, json: bool, w: &mut dyn Write) -> Result<()> {
    let store = open::open(&a.dir)?;
    let q = open::queue(&store, &a.queue)?;
    let s = q.stats()?;
    let matched = s.depth + s.delayed;
    let mut o = Outcome::new("purge", &a.queue, None, a.dry_run, matched);
    if !a.dry_run && matched > 0 {
        out::confirm(
            a.yes,
            &format!(
                "purge {} of queue {:?} in store {}",
                out::count(matched, "waiting message"),
                a.queue,
                a.dir.display()
            ),
        )?;
        o.done = q.purge()?;
    }
    report(w, json, &o)
}

pub fn run(a: &TransferArgs, copy: bool, json: bool, w: &mut dyn Write) -> Result<()> {
    mqlite::validate_queue_name(&a.to)?;
    // Dead letters may move between dead-letter queues (they keep their information).
    if !open::is_dlq(&a.from) {
        open::plain_into_dlq(&a.to).map_err(CliError::usage)?;
    }
    let ids = parse::ids(&a.ids)?;
    let store = open::open(&a.dir)?;
    let q = open::queue(&store, &a.from)?;
    if let Some(ids) = &ids {
        let missing: Vec<String> = open::missing_ids(std::slice::from_ref(&q), ids)
            .iter()
            .map(MessageId::to_string)
            .collect();
        if !missing.is_empty() {
            return Err(CliError::new(
                Status::NotFound,
                format!(
                    "{} not in queue {:?} of store {}; nothing changed",
                    missing.join(", "),
                    a.from,
                    a.dir.display()
                ),
            ));
        }
    }
    let mut filter = TransferFilter {
        to: a.to.clone(),
        ids,
        limit: a.limit,
        copy,
        dry_run: true,
    };
    let matched = q.transfer(&filter)?.matched;
    let command = if copy { "copy" } else { "move" };
    let mut o = Outcome::new(command, &a.from, Some(&a.to), a.dry_run, matched);
    if !a.dry_run && matched > 0 {
        out::confirm(
            a.yes,
            &format!(
                "{command} {} of queue {:?} to queue {:?} in store {}",
                out::count(matched, "waiting message"),
                a.from,
                a.to,
                a.dir.display()
            ),
        )?;
        filter.dry_run = false;
        let r = q
            .transfer(&filter)
            .map_err(|e| CliError::from(e).context(format!("{command} from queue {:?}", a.from)))?;
        o.done = r.transferred;
        o.duplicates = Some(r.duplicates);
    }
    report(w, json, &o)
}
