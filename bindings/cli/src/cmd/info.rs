//! `mqlite info`: what the store is made of and who owns it.

use std::io::Write;
use std::path::Path;

use mqlite::journal::format::VERSION;
use serde_json::json;

use crate::error::Result;
use crate::{open, out, report};

pub fn run(dir: &Path, json: bool, w: &mut dyn Write) -> Result<()> {
    let store = open::open_to_read(dir)?;
    let segments = mqlite::verify::segments(store.path())?;
    let r = store.recovery_report().clone();
    let (mut messages, mut bytes) = (0u64, 0u64);
    let names = store.queue_names();
    for q in open::queues(&store, &[])? {
        let s = q.stats()?;
        messages += s.messages;
        bytes += s.bytes;
    }
    // The command is the owner when no other process has the store open, else its client;
    // opened read-only, it is neither, and the owner is a live process holding the lock, if any.
    let (pid, role) = if store.is_read_only() {
        (store.read_only_owner(), "read-only")
    } else {
        (Some(store.owner_pid()), store.role().as_str())
    };
    let disk = store.disk_bytes();
    if json {
        return out::json(
            w,
            &json!({
                "store": store.path().to_string_lossy(),
                "format_version": VERSION,
                "segments": report::segments_json(&segments),
                "disk_bytes": disk,
                "owner": {"pid": pid, "role": role},
                "queues": names.len(),
                "messages": messages,
                "message_bytes": bytes,
                "recovery": report::recovery_json(&r),
            }),
        );
    }
    writeln!(w, "store     {}", store.path().display())?;
    writeln!(w, "format    version {VERSION}")?;
    match (store.is_read_only(), pid) {
        (false, Some(pid)) => writeln!(w, "owner     pid {pid}; this command is its {role}")?,
        (_, Some(pid)) => writeln!(
            w,
            "owner     pid {pid} (live); this command reads the files read-only: may be stale"
        )?,
        (_, None) => writeln!(w, "owner     none; this command reads the files read-only")?,
    }
    writeln!(
        w,
        "disk      {} in {}",
        out::bytes(disk),
        out::count(segments.len() as u64, "segment")
    )?;
    writeln!(
        w,
        "queues    {} holding {} ({})",
        names.len(),
        out::count(messages, "message"),
        out::bytes(bytes)
    )?;
    writeln!(
        w,
        "recovery  {}, {}, {} read",
        out::count(r.frames, "frame"),
        out::count(r.records, "record"),
        out::bytes(r.bytes)
    )?;
    // The index checkpoint the last clean close wrote: this open read it instead of the records.
    match (&r.checkpoint_ignored, r.checkpoint_used) {
        (_, true) => writeln!(
            w,
            "checkpoint yes, covers {}",
            out::count(r.segments as u64, "segment")
        )?,
        (Some(why), false) => writeln!(w, "checkpoint ignored ({why}): full replay")?,
        (None, false) => writeln!(w, "checkpoint none: full replay")?,
    }
    report::recovery_changes(w, &r, "          ")?;
    let mut t = out::table(&["segment", "created", "version", "bytes"], &[2, 3]);
    for s in &segments {
        t.add_row(vec![
            s.file.clone(),
            s.created_ms
                .map(out::time)
                .unwrap_or_else(|| "bad header".into()),
            s.version
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            out::bytes(s.bytes),
        ]);
    }
    out::write_table(w, &t)?;
    Ok(())
}
