//! Several processes, one store: the process holding the store's lock is its **owner** — it
//! keeps the only journal, index and group commit — and serves every other process that opens
//! the store, its **clients**, over a Unix domain socket in the store directory
//! (`owner.sock`, mode 0600, peers of another uid refused). The design is that of LevelDB's
//! level-party and ActiveMQ's shared-file-system master: the lock decides the owner, the
//! others are served, and when the owner goes away one of them takes over.
//!
//! ```text
//!  client process                                   owner process
//!  Store/Queue/… ─► Backend::Remote ─► client.rs ══ owner.sock ══► server.rs ─► Engine
//!  Store/Queue/… ─► Backend::Local ─────────────────────────────────────────────► Engine
//! ```
//!
//! - [`protocol`]: frames, the versioned hello, requests and replies.
//! - [`server`]: the owner's side, one set of threads per client connection.
//! - [`client`]: the client's side, pipelining, reconnection, takeover and resends.
//! - [`owner`]: opening a store as its owner (lock, recovery, socket).
//! - [`backend`]: the one type every face handle calls, local or remote.

pub(crate) mod backend;
pub(crate) mod client;
pub(crate) mod owner;
#[doc(hidden)]
pub mod protocol;
pub(crate) mod server;

use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

use crate::error::{Error, ErrorKind, Result};

/// The socket's file name in the store directory.
pub const SOCKET_NAME: &str = "owner.sock";

/// Automatic dedup keys of client sends start with this (a control character, so no key a
/// program chooses is mistaken for one); [`Message::get_dedup_key`](crate::Message) hides them.
pub(crate) const AUTO_KEY_PREFIX: &str = "\u{1}mq";

/// Which part a process plays for a store it opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// This process holds the store's lock: it keeps the journal and serves the others.
    Owner,
    /// Another process owns the store; this one is served by it over the store's socket.
    Client,
}

impl Role {
    /// `"owner"` or `"client"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Client => "client",
        }
    }
}

/// Which roles `Store::open` may take (see [`StoreOptions::open_as`](crate::StoreOptions)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpenAs {
    /// Owner if the store's lock is free, else a client of the owner. The default. A client
    /// also takes the store over when its owner goes away.
    #[default]
    Any,
    /// Only as owner: if another process owns the store, `open` fails with `Locked` naming its
    /// pid (the behaviour of a single-process store).
    Owner,
    /// Only as client: `open` waits (up to `connect_timeout`) for an owner to serve and never
    /// takes the store over itself.
    Client,
}

/// The store directory's identity: its device and inode.
pub(crate) fn dir_identity(dir: &Path) -> Result<(u64, u64)> {
    let m =
        std::fs::metadata(dir).map_err(|e| Error::io(format!("reading {}", dir.display()), &e))?;
    Ok((m.dev(), m.ino()))
}

/// The uid of a connected peer (SO_PEERCRED).
pub(crate) fn peer_uid(s: &UnixStream) -> Option<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, which is that large.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    };
    (rc == 0).then_some(cred.uid)
}

/// A path to `<dir>/owner.sock` short enough for a socket address (108 bytes): the real path,
/// or the same file reached through `/proc/self/fd/<dir fd>` (the directory is held open by
/// the returned file while it is used).
fn socket_path(dir: &Path) -> Result<(PathBuf, Option<std::fs::File>)> {
    let p = dir.join(SOCKET_NAME);
    if p.as_os_str().len() < 100 {
        return Ok((p, None));
    }
    let f = std::fs::File::open(dir)
        .map_err(|e| Error::io(format!("opening {}", dir.display()), &e))?;
    let short = PathBuf::from(format!("/proc/self/fd/{}/{SOCKET_NAME}", f.as_raw_fd()));
    Ok((short, Some(f)))
}

/// Binds the owner's socket (the caller holds the store's lock): a stale socket of a dead owner
/// is removed first; the socket is made 0600. Returns the listener and the socket file's
/// [`SocketKey`], for [`remove_socket`].
pub(crate) fn bind_socket(dir: &Path) -> Result<(UnixListener, SocketKey)> {
    let (p, _keep) = socket_path(dir)?;
    match std::fs::remove_file(&p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("removing the stale {}", p.display()), &e)),
    }
    let l =
        UnixListener::bind(&p).map_err(|e| Error::io(format!("binding {}", p.display()), &e))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(format!("setting the mode of {}", p.display()), &e))?;
    let m = std::fs::symlink_metadata(&p)
        .map_err(|e| Error::io(format!("inspecting {}", p.display()), &e))?;
    Ok((l, socket_key(&m)))
}

/// What tells one bound socket file from another at the same path: device, inode and change
/// time (a removed socket's inode is often given at once to the next one made).
pub(crate) type SocketKey = (u64, u64, i64, i64);

fn socket_key(m: &std::fs::Metadata) -> SocketKey {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino(), m.ctime(), m.ctime_nsec())
}

/// Removes the owner's socket when it closes, if the file there is still the one it bound
/// (`key`, from [`bind_socket`]): the caller still holds the store's lock, so no next owner
/// can have bound another yet; the check keeps it so should the lock ever be lost.
pub(crate) fn remove_socket(dir: &Path, key: SocketKey) {
    if let Ok((p, _keep)) = socket_path(dir) {
        if std::fs::symlink_metadata(&p).is_ok_and(|m| socket_key(&m) == key) {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Writes all of `buf` to `s` with `send(MSG_NOSIGNAL)`: a peer that went away is an `EPIPE`
/// error (`BrokenPipe`) for the caller to handle, never a `SIGPIPE`, whose default action kills
/// the host program. Rust and Python programs ignore SIGPIPE, a C program does not: a C owner
/// answering a client that just died, or a C client writing to an owner that is closing, was
/// killed by the signal. Every write of the protocol goes through this.
pub(crate) fn send_all(s: &UnixStream, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is valid for `buf.len()` bytes; the descriptor is the stream's own.
        let n = unsafe {
            libc::send(
                s.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// Connects to the owner's socket.
pub(crate) fn connect_socket(dir: &Path) -> std::io::Result<UnixStream> {
    let (p, _keep) = socket_path(dir).map_err(|e| std::io::Error::other(e.to_string()))?;
    UnixStream::connect(p)
}

static FORK_GEN: AtomicU64 = AtomicU64::new(0);

extern "C" fn after_fork_in_child() {
    // Only an atomic: async-signal-safe.
    FORK_GEN.fetch_add(1, Ordering::SeqCst);
}

/// How many times this process's memory came from a `fork()` (0 in the process that started):
/// a handle records it at open and refuses to work in a forked child.
pub(crate) fn fork_generation() -> u64 {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a handler that only touches an atomic.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
    FORK_GEN.load(Ordering::Relaxed)
}

/// The error of a store used in a `fork()` child of the process that opened it.
pub(crate) fn forked_error() -> Error {
    Error::new(
        ErrorKind::Closed,
        format!(
            "this store was opened by the parent of process {}, a fork() child: a store cannot be \
             shared across fork(); open it again in the child (it becomes a client of the owner)",
            std::process::id()
        ),
    )
}
