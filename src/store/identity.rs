//! The store's identity: 32 hex digits, random, written to the `STORE_ID` file when the store
//! is created (its journal is made anew), so that a store re-created at the same path is told
//! apart from the one before it (whose message ids it reuses, from `ID:1`).

use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// The file name of the identity in the store directory.
pub(crate) const FILE: &str = "STORE_ID";

/// 128 random bits as 32 hex digits: std's `RandomState` keys come from the OS's random source
/// (per process), mixed with the time and pid so two stores made in one process differ too.
fn fresh() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut parts = [0u64; 2];
    for (i, p) in parts.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.write_usize(i);
        *p = h.finish();
    }
    format!("{:016x}{:016x}", parts[0], parts[1])
}

fn valid(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The identity kept in `dir`, if the file is there and well formed.
pub(crate) fn read(dir: &Path) -> Option<String> {
    let s = std::fs::read_to_string(dir.join(FILE)).ok()?;
    let s = s.trim();
    valid(s).then(|| s.to_string())
}

/// Called by the owner, holding the store's lock: a store whose journal was just made
/// (`created`) gets a new identity, replacing any left by an earlier store at that path; an
/// existing store keeps its own (one made before identities existed gets one now). Written
/// through a temporary file, fsync'd and renamed, and the directory fsync'd.
pub(crate) fn ensure(dir: &Path, created: bool) -> Result<String> {
    if !created {
        if let Some(id) = read(dir) {
            return Ok(id);
        }
    }
    let id = fresh();
    let path = dir.join(FILE);
    replace_file(dir, FILE, format!("{id}\n").as_bytes())
        .map_err(|(what, e)| Error::io(format!("{what} {}", path.display()), &e))?;
    Ok(id)
}

/// Replaces the small file `name` in the store directory `dir` with `bytes`, whole or not at
/// all: written to `<name>.tmp` (a stale one, or a link planted there, is removed, never
/// written through), fsync'd, renamed over `name`, and the directory fsync'd. The error says
/// which step failed: "writing" or "syncing the directory of". (`STORE_ID`, `HANDOVER`.)
pub(crate) fn replace_file(
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> std::result::Result<(), (&'static str, std::io::Error)> {
    let tmp = dir.join(format!("{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, dir.join(name)))
        .map_err(|e| ("writing", e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ("syncing the directory of", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_while_the_store_lives_and_new_when_it_is_created_again() {
        let dir = tempfile::tempdir().unwrap();
        let a = ensure(dir.path(), true).unwrap();
        assert!(valid(&a), "{a}");
        assert_eq!(ensure(dir.path(), false).unwrap(), a);
        assert_eq!(read(dir.path()).as_deref(), Some(a.as_str()));
        let b = ensure(dir.path(), true).unwrap();
        assert_ne!(a, b);
        std::fs::write(dir.path().join(FILE), "garbage").unwrap();
        let c = ensure(dir.path(), false).unwrap();
        assert!(valid(&c) && c != b);
    }
}
