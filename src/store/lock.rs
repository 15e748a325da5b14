//! The directory lock: `LOCK` in the store directory, held with `fcntl` for as long as the
//! store's commit thread runs, holding the owner's pid as text. Nothing is done to a store
//! before its lock is held.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use crate::engine::on_library_thread;
use crate::error::{Error, ErrorKind, Result};

/// The held lock of one store directory. Released when the commit thread ends (or by an
/// explicit [`DirLock::release`]).
pub(crate) struct DirLock {
    file: Mutex<Option<HeldLock>>,
    dir: PathBuf,
    /// Set by an owner's close: the lock outlives the commit thread until that close has done
    /// its last step in the directory (see [`DirLock::keep_until_release`]).
    kept: std::sync::atomic::AtomicBool,
}

/// [`DirLock::keep_until_release`]'s guard: the lock goes back to being released by the
/// commit thread when this is dropped, unless [`KeptLock::until_release`] was called.
#[must_use = "dropping the guard undoes keep_until_release at once"]
pub(crate) struct KeptLock<'a>(Option<&'a DirLock>);

impl KeptLock<'_> {
    /// The close began: the lock stays until [`DirLock::release`].
    pub fn until_release(mut self) {
        self.0 = None;
    }
}

impl Drop for KeptLock<'_> {
    fn drop(&mut self) {
        if let Some(l) = self.0 {
            l.kept.store(false, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

impl DirLock {
    /// Takes the lock of `dir`, first waiting (up to 10 s) for a closing store of this process
    /// (one dropped inside its own callback closes in the background). Another holder: `Locked`
    /// naming its pid.
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        if !on_library_thread() {
            let (set, cv) = closing_dirs();
            let g = set.lock().unwrap_or_else(|e| e.into_inner());
            let _g = cv
                .wait_timeout_while(g, Duration::from_secs(10), |s| s.iter().any(|d| d == dir))
                .unwrap_or_else(|e| e.into_inner());
        }
        Ok(DirLock {
            file: Mutex::new(Some(lock_dir(dir)?)),
            dir: dir.to_path_buf(),
            kept: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Keeps the lock past the end of the commit thread, until [`DirLock::release`]: an
    /// owner's close still writes in the directory after the engine closed (the `HANDOVER`
    /// list, the removal of its `owner.sock`), and a next owner let in before that would have
    /// its socket removed (no process could reach it: review r6 #2) and miss the list.
    /// The returned guard undoes this when dropped, unless [`KeptLock::until_release`] says the
    /// close began (a close refused early leaves the commit thread to release as before).
    pub fn keep_until_release(&self) -> KeptLock<'_> {
        self.kept.store(true, std::sync::atomic::Ordering::SeqCst);
        KeptLock(Some(self))
    }

    /// The commit thread's release when it ends: the lock is released unless an owner's close
    /// keeps it (a store closing in the background has nothing left to do in the directory).
    pub fn release_at_commit_end(&self) {
        if !self.kept.load(std::sync::atomic::Ordering::SeqCst) {
            self.release();
        }
    }

    /// No lock: the stand-in a read-only open (`StoreOptions::read_only`) gives the commit
    /// thread, which releases it at close.
    pub fn none(dir: &Path) -> DirLock {
        DirLock {
            file: Mutex::new(None),
            dir: dir.to_path_buf(),
            kept: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// `(device, inode)` of the locked `LOCK` file (`None` once released).
    pub fn key(&self) -> Option<(u64, u64)> {
        self.file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|h| h.key)
    }

    /// Releases the lock (idempotent) and lets an open of this directory waiting for it in.
    pub fn release(&self) {
        self.file.lock().unwrap_or_else(|e| e.into_inner()).take();
        let (set, cv) = closing_dirs();
        set.lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|d| *d != self.dir);
        cv.notify_all();
    }

    /// Notes that this store closes in the background: an open of its directory in this process
    /// waits for the release instead of failing with `Locked`.
    pub fn closing_in_background(&self) {
        closing_dirs()
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.dir.clone());
    }
}

/// Directories of stores of this process that are closing in the background.
// A Vec, not a HashSet: a hash table's interior pointer makes valgrind call the static "possibly lost".
fn closing_dirs() -> &'static (Mutex<Vec<PathBuf>>, Condvar) {
    static CLOSING: OnceLock<(Mutex<Vec<PathBuf>>, Condvar)> = OnceLock::new();
    CLOSING.get_or_init(Default::default)
}

/// A held lock on a store's `LOCK` file: a POSIX record lock (`fcntl(F_SETLK)`), plus this
/// process's registry entry for the file.
///
/// Why a record lock and not `flock`: a `flock` belongs to the open file description, which a
/// `fork()` child shares, so a child forked (by any thread, at any moment) kept the store
/// locked after the parent closed it. A record lock belongs to the process: a child never holds
/// it, and the parent's close releases it at once. Record locks do not exclude the same process,
/// and closing *any* descriptor of the file releases them, so the registry refuses a second
/// lock of the same file in this process before a descriptor of it is ever opened.
pub(crate) struct HeldLock {
    file: Option<File>,
    key: (u64, u64),
}

impl HeldLock {
    /// The locked file.
    pub fn file(&self) -> &File {
        self.file.as_ref().expect("held until drop")
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
        // Close first (releasing the record lock), then leave the registry, both under its
        // mutex so that no other lock of this file in this process can slip in between.
        self.file.take();
        reg.retain(|k| *k != self.key);
    }
}

/// `(device, inode)` of every `LOCK` file this process holds.
fn registry() -> &'static Mutex<Vec<(u64, u64)>> {
    static HELD: OnceLock<Mutex<Vec<(u64, u64)>>> = OnceLock::new();
    HELD.get_or_init(Default::default)
}

fn locked_error(dir: &Path, pid: &str) -> Error {
    let pid = if pid.trim().is_empty() {
        "unknown"
    } else {
        pid.trim()
    };
    Error::new(
        ErrorKind::Locked,
        format!("store {} is locked by pid {pid}", dir.display()),
    )
}

/// Takes the exclusive lock of store directory `dir` (its `LOCK` file, created if `create`).
/// `Ok(None)`: no `LOCK` file and `create` is false. Another holder, in this process or
/// another: `Locked` naming its pid.
///
/// Without `create` (a read-only scan: `verify`), a `LOCK` file this process may not open for
/// writing (a read-only copy, a read-only mount) is opened read-only and held with a shared
/// (read) lock instead: it still conflicts with an owner's write lock, so a store in use is
/// still refused, and a store nobody can write is what such a scan wants to read.
pub(crate) fn lock_file(dir: &Path, create: bool) -> Result<Option<HeldLock>> {
    use std::os::unix::fs::MetadataExt;
    let path = dir.join("LOCK");
    let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    if let Ok(m) = std::fs::symlink_metadata(&path) {
        if reg.contains(&(m.dev(), m.ino())) {
            // Held by this process: opening (and closing) a descriptor of it would release it.
            return Err(locked_error(dir, &std::process::id().to_string()));
        }
    }
    let open = |write: bool| {
        OpenOptions::new()
            .read(true)
            .write(write)
            .create(create && write)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)
    };
    let not_writable = |e: &std::io::Error| {
        e.kind() == std::io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(libc::EROFS)
    };
    if create && std::fs::symlink_metadata(&path).is_err() && owner_answers(dir) {
        // No `LOCK`, yet an owner serves the store: its lock file was deleted under it (tmp
        // cleaning, a user tidying up). A lock on a new `LOCK` file would make this process a
        // second owner writing the same segments; it is refused like any held lock (an
        // `open_as="any"` open then connects to that owner as its client).
        return Err(Error::new(
            ErrorKind::Locked,
            format!(
                "store {} is owned by a live process (its {} answers) although its LOCK file is \
                 missing: not taking it over",
                dir.display(),
                crate::remote::SOCKET_NAME
            ),
        ));
    }
    let (f, shared) = match open(true) {
        Ok(f) => (f, false),
        Err(e) if !create && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if !create && not_writable(&e) => match open(false) {
            Ok(f) => (f, true),
            Err(e) => return Err(Error::io(format!("opening {}", path.display()), &e)),
        },
        Err(e) => return Err(Error::io(format!("opening {}", path.display()), &e)),
    };
    let m = f
        .metadata()
        .map_err(|e| Error::io(format!("inspecting {}", path.display()), &e))?;
    let key = (m.dev(), m.ino());
    if reg.contains(&key) {
        // Replaced between the check and the open; still ours: do not close what we hold.
        std::mem::forget(f);
        return Err(locked_error(dir, &std::process::id().to_string()));
    }
    // SAFETY: an all-zero flock struct is valid; fields set below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = if shared { libc::F_RDLCK } else { libc::F_WRLCK } as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: fcntl on a descriptor we own, with a valid flock struct.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) } != 0 {
        let err = std::io::Error::last_os_error();
        if matches!(err.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) {
            let mut s = String::new();
            let _ = (&f).read_to_string(&mut s);
            return Err(locked_error(dir, &s));
        }
        return Err(Error::io(format!("locking {}", path.display()), &err));
    }
    reg.push(key);
    Ok(Some(HeldLock { file: Some(f), key }))
}

/// The pid of a live process holding the store's lock, found without taking any lock (a
/// read-only open: its view of the store may be stale). `None` when nobody holds it or the
/// `LOCK` file cannot be read. Not opened when this process holds the lock: closing any
/// descriptor of the file would drop this process's fcntl lock.
pub(crate) fn live_holder(dir: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let path = dir.join("LOCK");
    let m = std::fs::symlink_metadata(&path).ok()?;
    let reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    if reg.contains(&(m.dev(), m.ino())) {
        return Some(std::process::id());
    }
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&path)
        .ok()?;
    // SAFETY: an all-zero flock struct is valid; fields set below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: fcntl on a descriptor we own, with a valid flock struct it fills in.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETLK, &mut fl) } != 0
        || fl.l_type == libc::F_UNLCK as libc::c_short
    {
        return None;
    }
    // The lock's pid (0 when the holder is on another machine): the one written in the file then.
    let mut text = String::new();
    let _ = f.read_to_string(&mut text);
    u32::try_from(fl.l_pid)
        .ok()
        .filter(|p| *p != 0)
        .or_else(|| text.trim().parse().ok())
}

/// Whether a process listens on the store's `owner.sock` (a stale socket of a dead owner
/// refuses the connection).
fn owner_answers(dir: &Path) -> bool {
    crate::remote::connect_socket(dir).is_ok()
}

fn lock_dir(dir: &Path) -> Result<HeldLock> {
    let held = lock_file(dir, true)?.ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            format!("no store at {}", dir.display()),
        )
    })?;
    let mut f = held.file();
    f.set_len(0).map_err(|e| Error::io("truncating LOCK", &e))?;
    f.write_all(std::process::id().to_string().as_bytes())
        .map_err(|e| Error::io("writing LOCK", &e))?;
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guard of `keep_until_release`: dropped (a close refused before it began), the commit
    /// thread's release at its end releases again; kept (`until_release`), it does not.
    #[test]
    fn a_kept_lock_is_released_by_the_commit_thread_unless_the_close_began() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("LOCK"), b"").unwrap();
        let l = DirLock::acquire(dir.path()).unwrap();
        drop(l.keep_until_release());
        l.release_at_commit_end();
        assert!(l.key().is_none(), "a dropped guard must undo the keep");

        let l = DirLock::acquire(dir.path()).unwrap();
        l.keep_until_release().until_release();
        l.release_at_commit_end();
        assert!(l.key().is_some(), "a close that began keeps the lock");
        l.release();
        assert!(l.key().is_none());
    }
}
