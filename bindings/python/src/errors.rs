//! The exception tree: `mqlite.Error` at the root and one subclass per core `ErrorKind`, with a
//! built-in base where one fits (so `except ValueError` / `except TimeoutError` / `except OSError`
//! also catch them). The classes are made with `type()` at import because pyo3's
//! `create_exception!` takes a single base and some of these need two.

use mqlite::ErrorKind;
use pyo3::exceptions::{
    PyException, PyLookupError, PyOSError, PyRuntimeError, PyTimeoutError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use pyo3::PyTypeInfo;

/// (kind, class name, built-in base, docstring). Index + 1 is the kind's `repr(u8)` value.
const KINDS: [(ErrorKind, &str, Base, &str); 14] = [
    (
        ErrorKind::InvalidArgument,
        "InvalidArgument",
        Base::Value,
        "An argument is out of range or malformed.",
    ),
    (
        ErrorKind::InvalidName,
        "InvalidName",
        Base::Value,
        "A queue name is empty, over 255 bytes, or holds NUL or control characters.",
    ),
    (
        ErrorKind::NotFound,
        "NotFound",
        Base::Lookup,
        "The queue, message or delivery does not exist (any more).",
    ),
    (
        ErrorKind::Locked,
        "Locked",
        Base::None,
        "Another process holds the store's lock; the message names its pid.",
    ),
    (
        ErrorKind::QueueFull,
        "QueueFull",
        Base::None,
        "A limit was reached: the queue's backlog limit or the producer window.",
    ),
    (
        ErrorKind::NoSpace,
        "NoSpace",
        Base::OS,
        "The disk is full; stored messages stay readable and acks keep working.",
    ),
    (
        ErrorKind::Io,
        "Io",
        Base::OS,
        "An I/O error other than a full disk.",
    ),
    (
        ErrorKind::Corrupt,
        "Corrupt",
        Base::None,
        "A checksum or length failure inside the journal (not at its tail).",
    ),
    (
        ErrorKind::Poisoned,
        "Poisoned",
        Base::None,
        "An earlier write or fsync failed; reopen the store to recover its durable state.",
    ),
    (
        ErrorKind::Closed,
        "Closed",
        Base::None,
        "The store is closed, or was opened by another process (before a fork()).",
    ),
    (
        ErrorKind::Timeout,
        "Timeout",
        Base::Timeout,
        "A blocking call ran out of time.",
    ),
    (
        ErrorKind::AlreadySettled,
        "AlreadySettled",
        Base::None,
        "The delivery was already acked, nacked, rejected or released.",
    ),
    (
        ErrorKind::WouldDeadlock,
        "WouldDeadlock",
        Base::Runtime,
        "The call would deadlock (e.g. closing a store from its own callback thread).",
    ),
    (
        ErrorKind::Internal,
        "Internal",
        Base::Runtime,
        "A bug inside mqlite (a caught panic). Please report it.",
    ),
];

#[derive(Clone, Copy)]
enum Base {
    None,
    Value,
    Lookup,
    OS,
    Timeout,
    Runtime,
}

/// [Error, InvalidArgument, InvalidName, …] in `KINDS` order.
static CLASSES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

fn build(py: Python<'_>) -> PyResult<Vec<Py<PyType>>> {
    let type_ = py.import("builtins")?.getattr("type")?;
    let make = |name: &str,
                bases: Bound<'_, PyTuple>,
                doc: &str,
                kind: Option<&str>|
     -> PyResult<Py<PyType>> {
        let ns = PyDict::new(py);
        ns.set_item("__module__", "mqlite")?;
        ns.set_item("__doc__", doc)?;
        ns.set_item("kind", kind)?;
        Ok(type_
            .call1((name, bases, ns))?
            .cast_into::<PyType>()?
            .unbind())
    };
    let root = make(
        "Error",
        PyTuple::new(py, [PyException::type_object(py)])?,
        "The root of every mqlite error. ``kind`` is the core's stable kind name \
         (``\"queue_full\"``, …; None on this root class).",
        None,
    )?;
    let mut out = vec![root.clone_ref(py)];
    for (kind, name, base, doc) in KINDS {
        let root = root.bind(py).clone().into_any();
        let bases = match base {
            Base::None => PyTuple::new(py, [root])?,
            Base::Value => PyTuple::new(py, [root, PyValueError::type_object(py).into_any()])?,
            Base::Lookup => PyTuple::new(py, [root, PyLookupError::type_object(py).into_any()])?,
            Base::OS => PyTuple::new(py, [root, PyOSError::type_object(py).into_any()])?,
            Base::Timeout => PyTuple::new(py, [root, PyTimeoutError::type_object(py).into_any()])?,
            Base::Runtime => PyTuple::new(py, [root, PyRuntimeError::type_object(py).into_any()])?,
        };
        out.push(make(name, bases, doc, Some(kind.as_str()))?);
    }
    Ok(out)
}

fn classes(py: Python<'_>) -> &Vec<Py<PyType>> {
    // Building the classes only calls `type()` with built-in bases; it cannot fail short of
    // running out of memory, where a panic (turned into a Python exception by pyo3) is fine.
    CLASSES.get_or_init(py, || {
        build(py).expect("creating mqlite's exception classes")
    })
}

fn class_of(py: Python<'_>, kind: ErrorKind) -> Bound<'_, PyType> {
    let i = KINDS
        .iter()
        .position(|k| k.0 == kind)
        .map(|i| i + 1)
        .unwrap_or(0);
    classes(py)[i].bind(py).clone()
}

/// A Python exception of `kind` with `message`.
pub(crate) fn new_err(kind: ErrorKind, message: impl Into<String>) -> PyErr {
    let message = message.into();
    Python::attach(|py| PyErr::from_type(class_of(py, kind), message))
}

/// The Python exception for a core error (its class is the kind; its text the core's message).
pub(crate) fn to_py(e: mqlite::Error) -> PyErr {
    new_err(e.kind(), e.message().to_string())
}

/// `r.map_err(to_py)`, shorter.
pub(crate) fn mq<T>(r: mqlite::Result<T>) -> PyResult<T> {
    r.map_err(to_py)
}

/// `ValueError`-flavoured `mqlite.InvalidArgument`.
pub(crate) fn invalid(message: impl Into<String>) -> PyErr {
    new_err(ErrorKind::InvalidArgument, message)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let cls = classes(py);
    m.add("Error", cls[0].bind(py))?;
    for (i, (_, name, _, _)) in KINDS.iter().enumerate() {
        m.add(*name, cls[i + 1].bind(py))?;
    }
    Ok(())
}
