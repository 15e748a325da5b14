//! The one public error type: a kind (stable, matched on by programs and mapped to C status
//! codes and Python exception classes) and a message naming the file, offset, queue or id concerned.

use std::fmt;

/// What went wrong, in a form a program can match on.
///
/// The same kinds are the C `mqlite_status` codes and the Python exception classes.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorKind {
    /// An argument is out of range or malformed (a NULL pointer, bad UTF-8, a body over the limit).
    InvalidArgument = 1,
    /// A queue name is empty, longer than 255 bytes, or holds NUL or control characters.
    InvalidName = 2,
    /// The queue, message or delivery does not exist (any more).
    NotFound = 3,
    /// Another opener holds the store's lock; the message names its pid.
    Locked = 4,
    /// A limit was reached: the queue's backlog limit or the producer window.
    QueueFull = 5,
    /// The disk is full; stored messages stay readable and acks keep working.
    NoSpace = 6,
    /// An I/O error other than a full disk.
    Io = 7,
    /// A checksum or length failure inside the journal (not at its tail).
    Corrupt = 8,
    /// An earlier write or fsync failed; the store must be reopened to recover its durable state.
    Poisoned = 9,
    /// The store (or the handle used) is closed.
    Closed = 10,
    /// A blocking call ran out of time.
    Timeout = 11,
    /// The delivery was already settled (acked, nacked, rejected or released).
    AlreadySettled = 12,
    /// The call would deadlock (for example closing the store from inside one of its callbacks).
    WouldDeadlock = 13,
    /// A bug inside mqlite (a caught panic). Please report it.
    Internal = 14,
}

impl ErrorKind {
    /// A short, stable name for the kind (`"invalid_argument"`, `"queue_full"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::InvalidName => "invalid_name",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Locked => "locked",
            ErrorKind::QueueFull => "queue_full",
            ErrorKind::NoSpace => "no_space",
            ErrorKind::Io => "io",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Poisoned => "poisoned",
            ErrorKind::Closed => "closed",
            ErrorKind::Timeout => "timeout",
            ErrorKind::AlreadySettled => "already_settled",
            ErrorKind::WouldDeadlock => "would_deadlock",
            ErrorKind::Internal => "internal",
        }
    }
}

/// An mqlite error: a [`ErrorKind`] and a message that names what is concerned.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({:?}, {:?})", self.kind, self.message)
    }
}

impl Error {
    /// Makes an error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// The kind, to match on.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The human-readable message (without the kind prefix).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// A checksum or length failure at `offset` of journal file `file`.
    pub fn corrupt(file: &str, offset: u64, what: &str) -> Self {
        Error::new(
            ErrorKind::Corrupt,
            format!("{file} at offset {offset}: {what}"),
        )
    }

    /// Wraps an I/O error, naming what was being done; ENOSPC becomes [`ErrorKind::NoSpace`].
    pub fn io(context: impl fmt::Display, err: &std::io::Error) -> Self {
        let kind = if err.raw_os_error() == Some(libc::ENOSPC) {
            ErrorKind::NoSpace
        } else {
            ErrorKind::Io
        };
        Error::new(kind, format!("{context}: {err}"))
    }

    pub(crate) fn closed() -> Self {
        Error::new(ErrorKind::Closed, "the store is closed")
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }
}

/// `Result` with mqlite's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
