//! The one public error type: a kind (stable, matched on by programs and mapped to C status
//! codes and Python exception classes) and a message naming the file, offset, queue or id concerned.
//!
//! The kinds are declared once, in the table below: it yields the Rust enum, each kind's stable
//! name and numeric code, and its description. The C face's `mqlite_status` codes are these codes
//! (a unit test of `src/ffi` holds them equal), and the Python face makes one exception class per
//! kind from [`ErrorKind::ALL`], named after the variant.

use std::fmt;

/// Declares [`ErrorKind`] and its table methods from one list.
macro_rules! error_kinds {
    ($($(#[doc = $doc:literal])+ $variant:ident = $code:literal, $name:literal;)+) => {
        /// What went wrong, in a form a program can match on.
        ///
        /// The same kinds are the C `mqlite_status` codes (with the same numbers) and the Python
        /// exception classes (with the same names).
        #[non_exhaustive]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum ErrorKind {
            $($(#[doc = $doc])+ $variant = $code,)+
        }

        impl ErrorKind {
            /// Every kind, in code order.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$variant),+];

            /// A short, stable name for the kind (`"invalid_argument"`, `"queue_full"`, …).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorKind::$variant => $name,)+
                }
            }

            /// The variant's name (`"QueueFull"`): the name of the Python exception class.
            pub fn name(self) -> &'static str {
                match self {
                    $(ErrorKind::$variant => stringify!($variant),)+
                }
            }

            /// What the kind means (its documentation, one sentence).
            pub fn description(self) -> &'static str {
                match self {
                    $(ErrorKind::$variant => concat!($($doc),+).trim_ascii(),)+
                }
            }

            /// The kind's number: its C status code (`MQLITE_OK` is 0, so kinds start at 1).
            pub fn code(self) -> u32 {
                self as u32
            }

            /// The kind with number `code`, if any.
            pub fn from_code(code: u32) -> Option<ErrorKind> {
                match code {
                    $($code => Some(ErrorKind::$variant),)+
                    _ => None,
                }
            }

            /// [`as_str`](ErrorKind::as_str) NUL-terminated, for C.
            #[cfg(any(feature = "capi", test))]
            pub(crate) fn as_c_str(self) -> &'static str {
                match self {
                    $(ErrorKind::$variant => concat!($name, "\0"),)+
                }
            }
        }
    };
}

error_kinds! {
    /// An argument is out of range or malformed (a NULL pointer, bad UTF-8, a body over the limit).
    InvalidArgument = 1, "invalid_argument";
    /// A queue name is empty, longer than 255 bytes, or holds NUL or control characters.
    InvalidName = 2, "invalid_name";
    /// The queue, message or delivery does not exist (any more).
    NotFound = 3, "not_found";
    /// Another opener holds the store's lock; the message names its pid.
    Locked = 4, "locked";
    /// A limit was reached: the queue's backlog limit or the producer window.
    QueueFull = 5, "queue_full";
    /// The disk is full; stored messages stay readable and acks keep working.
    NoSpace = 6, "no_space";
    /// An I/O error other than a full disk.
    Io = 7, "io";
    /// A checksum or length failure inside the journal (not at its tail), or a store of another format version.
    Corrupt = 8, "corrupt";
    /// An earlier write or fsync failed, or a library thread panicked; reopen the store to recover its durable state.
    Poisoned = 9, "poisoned";
    /// The store (or the handle used) is closed.
    Closed = 10, "closed";
    /// A blocking call ran out of time.
    Timeout = 11, "timeout";
    /// The delivery was already settled (acked, nacked, rejected, released or timed out).
    AlreadySettled = 12, "already_settled";
    /// The call would deadlock (for example closing the store from inside one of its callbacks).
    WouldDeadlock = 13, "would_deadlock";
    /// A bug inside mqlite (a caught panic). Please report it.
    Internal = 14, "internal";
    /// The delivery was handed out by a store owner process that has since died or closed: it can no longer be settled, and the message comes back through recovery with its delivery count incremented.
    DeliveryLost = 15, "delivery_lost";
    /// A client lost its store's owner process and no owner served again within the connect timeout, or a call's outcome is unknown because the owner died during it.
    OwnerLost = 16, "owner_lost";
    /// The store was opened read-only (`StoreOptions::read_only`): the call would change it.
    ReadOnly = 17, "read_only";
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

#[cfg(test)]
mod tests {
    use super::ErrorKind;

    #[test]
    fn the_table_is_consistent() {
        for (i, &k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.code(), i as u32 + 1, "codes are dense from 1");
            assert_eq!(ErrorKind::from_code(k.code()), Some(k));
            assert_eq!(k.as_c_str(), format!("{}\0", k.as_str()));
            assert!(!k.description().is_empty() && !k.name().is_empty());
        }
        assert_eq!(ErrorKind::from_code(0), None);
        assert_eq!(ErrorKind::QueueFull.name(), "QueueFull");
        assert_eq!(ErrorKind::QueueFull.as_str(), "queue_full");
    }
}
