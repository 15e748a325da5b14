//! The JSON and text forms of the core's reports (recovery, segments, verify), shared by
//! `info`, `verify` and `repair`.

use std::io::Write;

use mqlite::journal::TornTail;
use mqlite::{RecoveryReport, SegmentInfo, VerifyReport};
use serde_json::{json, Value};

use crate::error::Result;
use crate::out;

fn torn_json(t: &Option<TornTail>) -> Value {
    json!(t
        .as_ref()
        .map(|t| json!({"file": t.file, "offset": t.offset, "bytes": t.bytes})))
}

pub fn segments_json(segments: &[SegmentInfo]) -> Value {
    segments
        .iter()
        .map(|s| {
            json!({"file": s.file, "number": s.number, "bytes": s.bytes,
                   "version": s.version, "created_ms": s.created_ms})
        })
        .collect()
}

pub fn recovery_json(r: &RecoveryReport) -> Value {
    json!({
        "segments": r.segments, "frames": r.frames, "records": r.records, "bytes": r.bytes,
        "torn_tail": torn_json(&r.torn_tail),
        "removed_incomplete_segments": r.removed_incomplete_segments,
        "quarantined": r.quarantined.iter().map(|q| json!({
            "file": q.file, "offset": q.offset, "len": q.len,
            "frames_lost": q.frames_lost, "saved_as": q.saved_as,
        })).collect::<Vec<_>>(),
        "missing": r.missing.iter().map(|m| json!({
            "file": m.file, "what": m.what, "frames_lost": m.frames_lost,
        })).collect::<Vec<_>>(),
        "lost_queues": r.lost_queues,
        "checkpoint": {
            "used": r.checkpoint_used,
            "covers_segments": if r.checkpoint_used { r.segments } else { 0 },
            "ignored": r.checkpoint_ignored,
        },
    })
}

pub fn verify_json(r: &VerifyReport) -> Value {
    json!({
        "sound": r.is_sound(),
        "segments": segments_json(&r.segments),
        "frames": r.frames,
        "records": r.records,
        "bytes": r.bytes,
        "torn_tail": torn_json(&r.torn_tail),
        "incomplete_segments": r.incomplete_segments,
        "problems": r.problems.iter().map(|p| json!({
            "file": p.file, "offset": p.offset, "what": p.what,
        })).collect::<Vec<_>>(),
    })
}

/// What recovery changed, one line each, after `indent`: the torn tail cut, incomplete
/// segments removed, ranges quarantined, segments or frames found missing, queues kept under
/// a placeholder name.
pub fn recovery_changes(w: &mut dyn Write, r: &RecoveryReport, indent: &str) -> Result<()> {
    if let Some(t) = &r.torn_tail {
        writeln!(
            w,
            "{indent}cut torn tail: {} at offset {} ({} bytes)",
            t.file, t.offset, t.bytes
        )?;
    }
    for s in &r.removed_incomplete_segments {
        writeln!(w, "{indent}removed incomplete segment {s}")?;
    }
    for q in &r.quarantined {
        writeln!(
            w,
            "{indent}quarantined: {} at offset {}, {} bytes, {} lost; saved as {}",
            q.file,
            q.offset,
            q.len,
            out::count(q.frames_lost, "frame"),
            q.saved_as
        )?;
    }
    for m in &r.missing {
        writeln!(w, "{indent}missing: {}: {}", m.file, m.what)?;
    }
    for q in &r.lost_queues {
        writeln!(
            w,
            "{indent}kept messages of a queue whose declaration was lost under {q}"
        )?;
    }
    Ok(())
}
