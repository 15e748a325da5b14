//! The directory lock: `LOCK` in the store directory, held with `flock` for as long as the
//! store's commit thread runs, holding the owner's pid as text. Nothing is done to a store
//! before its lock is held.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use crate::engine::on_library_thread;
use crate::error::{Error, ErrorKind, Result};

/// The held lock of one store directory. Released when the commit thread ends (or by an
/// explicit [`DirLock::release`]).
pub(crate) struct DirLock {
    file: Mutex<Option<File>>,
    dir: PathBuf,
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
        })
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

    /// The descriptor holding the lock (`None` once released).
    pub fn fd(&self) -> Option<RawFd> {
        self.file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|f| f.as_raw_fd())
    }
}

/// Directories of stores of this process that are closing in the background.
// A Vec, not a HashSet: a hash table's interior pointer makes valgrind call the static "possibly lost".
fn closing_dirs() -> &'static (Mutex<Vec<PathBuf>>, Condvar) {
    static CLOSING: OnceLock<(Mutex<Vec<PathBuf>>, Condvar)> = OnceLock::new();
    CLOSING.get_or_init(Default::default)
}

fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join("LOCK");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), &e))?;
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let mut s = String::new();
            let _ = f.read_to_string(&mut s);
            let pid = s.trim();
            let pid = if pid.is_empty() { "unknown" } else { pid };
            return Err(Error::new(
                ErrorKind::Locked,
                format!("store {} is locked by pid {pid}", dir.display()),
            ));
        }
        return Err(Error::io(format!("locking {}", path.display()), &err));
    }
    f.set_len(0).map_err(|e| Error::io("truncating LOCK", &e))?;
    f.write_all(std::process::id().to_string().as_bytes())
        .map_err(|e| Error::io("writing LOCK", &e))?;
    Ok(f)
}
