//! `verify` (read-only), `repair` and `compact`.

use std::io::Write;
use std::path::Path;

use mqlite::{RecoveryReport, VerifyReport};
use serde_json::{json, Value};

use crate::cli::RepairArgs;
use crate::error::{CliError, Result, Status};
use crate::{open, out};

fn verify_json(r: &VerifyReport) -> Value {
    json!({
        "sound": r.is_sound(),
        "segments": r.segments.iter().map(|s| json!({
            "file": s.file, "number": s.number, "bytes": s.bytes,
            "version": s.version, "created_ms": s.created_ms,
        })).collect::<Vec<_>>(),
        "frames": r.frames,
        "records": r.records,
        "bytes": r.bytes,
        "torn_tail": r.torn_tail.as_ref().map(|t| json!({
            "file": t.file, "offset": t.offset, "bytes": t.bytes,
        })),
        "incomplete_segments": r.incomplete_segments,
        "problems": r.problems.iter().map(|p| json!({
            "file": p.file, "offset": p.offset, "what": p.what,
        })).collect::<Vec<_>>(),
    })
}

fn verify_text(w: &mut dyn Write, dir: &Path, r: &VerifyReport) -> Result<()> {
    writeln!(
        w,
        "store {}: {}, {}, {}, {} read",
        dir.display(),
        out::count(r.segments.len() as u64, "segment"),
        out::count(r.frames, "frame"),
        out::count(r.records, "record"),
        out::bytes(r.bytes)
    )?;
    if let Some(t) = &r.torn_tail {
        writeln!(
            w,
            "torn tail: {} at offset {} ({} bytes never made durable; the next open cuts them)",
            t.file, t.offset, t.bytes
        )?;
    }
    for s in &r.incomplete_segments {
        writeln!(
            w,
            "incomplete segment: {s} (never used; the next open removes it)"
        )?;
    }
    if r.is_sound() {
        writeln!(w, "sound")?;
    }
    for p in &r.problems {
        writeln!(w, "damaged: {p}")?;
    }
    Ok(())
}

/// `mqlite verify`: exit status 0 when sound, 3 naming each damaged place.
pub fn verify(dir: &Path, json: bool, w: &mut dyn Write) -> Result<()> {
    open::require_store(dir)?;
    let r = mqlite::verify(dir)?;
    if json {
        out::json(w, &verify_json(&r))?;
    } else {
        verify_text(w, dir, &r)?;
    }
    if r.is_sound() {
        return Ok(());
    }
    let first = &r.problems[0];
    Err(CliError::new(
        Status::Corrupt,
        format!(
            "store {}: {}, the first in {} at offset {}",
            dir.display(),
            out::count(r.problems.len() as u64, "damaged place"),
            first.file,
            first.offset
        ),
    ))
}

fn recovery_json(r: &RecoveryReport) -> Value {
    json!({
        "segments": r.segments, "frames": r.frames, "records": r.records, "bytes": r.bytes,
        "torn_tail": r.torn_tail.as_ref().map(|t| json!({
            "file": t.file, "offset": t.offset, "bytes": t.bytes,
        })),
        "removed_incomplete_segments": r.removed_incomplete_segments,
        "quarantined": r.quarantined.iter().map(|q| json!({
            "file": q.file, "offset": q.offset, "len": q.len,
            "frames_lost": q.frames_lost, "saved_as": q.saved_as,
        })).collect::<Vec<_>>(),
    })
}

/// `mqlite repair`: the core's repair (open with `repair`), with its report.
pub fn repair(a: &RepairArgs, json: bool, w: &mut dyn Write) -> Result<()> {
    open::require_store(&a.dir)?;
    let v = mqlite::verify(&a.dir)?;
    if a.dry_run {
        if json {
            return out::json(w, &json!({"dry_run": true, "verify": verify_json(&v)}));
        }
        verify_text(w, &a.dir, &v)?;
        let n = out::count(v.problems.len() as u64, "damaged range");
        writeln!(
            w,
            "a repair would quarantine {n} (dry run: nothing changed)"
        )?;
        return Ok(());
    }
    if !v.is_sound() {
        out::confirm(
            a.yes,
            &format!(
                "repair store {}: cut out {} (kept in quarantine files; the messages in them are lost)",
                a.dir.display(),
                out::count(v.problems.len() as u64, "damaged range")
            ),
        )?;
    }
    let store = open::open_with(&a.dir, false, |o| o.repair = true)?;
    let r = store.recovery_report().clone();
    store.close()?;
    if json {
        return out::json(w, &json!({"dry_run": false, "recovery": recovery_json(&r)}));
    }
    writeln!(
        w,
        "store {}: {}, {}, {} recovered",
        a.dir.display(),
        out::count(r.segments as u64, "segment"),
        out::count(r.frames, "frame"),
        out::count(r.records, "record")
    )?;
    if let Some(t) = &r.torn_tail {
        writeln!(
            w,
            "cut torn tail: {} at offset {} ({} bytes)",
            t.file, t.offset, t.bytes
        )?;
    }
    for s in &r.removed_incomplete_segments {
        writeln!(w, "removed incomplete segment {s}")?;
    }
    for q in &r.quarantined {
        writeln!(
            w,
            "quarantined: {} at offset {}, {} bytes, {} frames lost; saved as {}",
            q.file, q.offset, q.len, q.frames_lost, q.saved_as
        )?;
    }
    if r.quarantined.is_empty() {
        writeln!(w, "nothing to quarantine")?;
    }
    Ok(())
}

/// `mqlite compact`: every segment older than the tail is rewritten and removed.
pub fn compact(dir: &Path, json: bool, w: &mut dyn Write) -> Result<()> {
    let store = open::open_with(dir, false, |o| o.compact_below = 1.0)?;
    let r = store.compact()?;
    store.close()?;
    if json {
        return out::json(
            w,
            &json!({
                "segments_before": r.segments_before, "segments_after": r.segments_after,
                "bytes_before": r.bytes_before, "bytes_after": r.bytes_after,
                "commits": r.commits,
            }),
        );
    }
    writeln!(
        w,
        "compacted store {}: {} ({}) -> {} ({})",
        dir.display(),
        out::count(r.segments_before as u64, "segment"),
        out::bytes(r.bytes_before),
        out::count(r.segments_after as u64, "segment"),
        out::bytes(r.bytes_after)
    )?;
    Ok(())
}
