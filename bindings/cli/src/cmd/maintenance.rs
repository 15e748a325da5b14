//! `verify` (read-only), `repair` and `compact`.

use std::io::Write;
use std::path::Path;

use mqlite::VerifyReport;
use serde_json::json;

use crate::cli::RepairArgs;
use crate::error::{CliError, Result, Status};
use crate::{open, out, report};

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
        out::json(w, &report::verify_json(&r))?;
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

/// `mqlite repair`: the core's repair (open with `repair`), with its report.
pub fn repair(a: &RepairArgs, json: bool, w: &mut dyn Write) -> Result<()> {
    open::require_store(&a.dir)?;
    let v = mqlite::verify(&a.dir)?;
    if a.dry_run {
        if json {
            return out::json(
                w,
                &json!({"dry_run": true, "verify": report::verify_json(&v)}),
            );
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
    let store = open::open_owner(&a.dir, |o| o.repair = true)?;
    let r = store.recovery_report().clone();
    store.close()?;
    if json {
        return out::json(
            w,
            &json!({"dry_run": false, "recovery": report::recovery_json(&r)}),
        );
    }
    writeln!(
        w,
        "store {}: {}, {}, {} recovered",
        a.dir.display(),
        out::count(r.segments as u64, "segment"),
        out::count(r.frames, "frame"),
        out::count(r.records, "record")
    )?;
    report::recovery_changes(w, &r, "")?;
    if r.quarantined.is_empty() && r.missing.is_empty() {
        writeln!(w, "nothing to quarantine")?;
    }
    Ok(())
}

/// `mqlite compact`: every segment older than the tail is rewritten and removed.
pub fn compact(dir: &Path, json: bool, w: &mut dyn Write) -> Result<()> {
    let store = open::open_owner(dir, |o| o.compact_below = 1.0)?;
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
