//! `mqlite info`: what the store is made of and who owns it.

use std::io::Write;
use std::path::Path;

use mqlite::journal::format::VERSION;
use serde_json::json;

use crate::error::Result;
use crate::{open, out};

pub fn run(dir: &Path, json: bool, w: &mut dyn Write) -> Result<()> {
    let store = open::open(dir)?;
    let segments = mqlite::journal::verify::segments(store.path())?;
    let r = store.recovery_report().clone();
    let (mut messages, mut bytes) = (0u64, 0u64);
    let names = store.queue_names();
    for q in open::queues(&store, &[])? {
        let s = q.stats()?;
        messages += s.messages;
        bytes += s.bytes;
    }
    // Until several processes can share a store, whoever runs a command is its owner; a client
    // of a live owner will report that owner's pid and the role "client" here.
    let (pid, role) = (std::process::id(), "owner");
    let disk = store.disk_bytes();
    if json {
        let segs: Vec<_> = segments
            .iter()
            .map(|s| {
                json!({"file": s.file, "number": s.number, "bytes": s.bytes,
                       "version": s.version, "created_ms": s.created_ms})
            })
            .collect();
        let torn = r
            .torn_tail
            .as_ref()
            .map(|t| json!({"file": t.file, "offset": t.offset, "bytes": t.bytes}));
        let quarantined: Vec<_> = r
            .quarantined
            .iter()
            .map(|q| {
                json!({"file": q.file, "offset": q.offset, "len": q.len,
                       "frames_lost": q.frames_lost, "saved_as": q.saved_as})
            })
            .collect();
        return out::json(
            w,
            &json!({
                "store": store.path(),
                "format_version": VERSION,
                "segments": segs,
                "disk_bytes": disk,
                "owner": {"pid": pid, "role": role},
                "queues": names.len(),
                "messages": messages,
                "message_bytes": bytes,
                "recovery": {
                    "segments": r.segments, "frames": r.frames, "records": r.records,
                    "bytes": r.bytes, "torn_tail": torn,
                    "removed_incomplete_segments": r.removed_incomplete_segments,
                    "quarantined": quarantined,
                },
            }),
        );
    }
    writeln!(w, "store     {}", store.path().display())?;
    writeln!(w, "format    version {VERSION}")?;
    writeln!(w, "owner     pid {pid}, role {role} (this command)")?;
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
    let torn = match &r.torn_tail {
        Some(t) => format!(
            "torn tail cut at {} offset {} ({} bytes)",
            t.file, t.offset, t.bytes
        ),
        None => "no torn tail".into(),
    };
    writeln!(
        w,
        "recovery  {} frames, {} records, {} read; {torn}",
        r.frames,
        r.records,
        out::bytes(r.bytes)
    )?;
    for s in &r.removed_incomplete_segments {
        writeln!(w, "          removed incomplete segment {s}")?;
    }
    for q in &r.quarantined {
        writeln!(
            w,
            "          quarantined {} offset {} ({} bytes, {} frames lost) as {}",
            q.file, q.offset, q.len, q.frames_lost, q.saved_as
        )?;
    }
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
