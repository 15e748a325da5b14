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

/// The built-in exception a kind's class also derives from, so that `except ValueError` /
/// `except TimeoutError` / `except OSError` also catch it. The kinds themselves (names, codes,
/// descriptions) come from the core's one table, `mqlite::ErrorKind::ALL`.
fn base(kind: ErrorKind) -> Base {
    match kind {
        ErrorKind::InvalidArgument | ErrorKind::InvalidName => Base::Value,
        ErrorKind::NotFound => Base::Lookup,
        ErrorKind::NoSpace | ErrorKind::Io => Base::OS,
        ErrorKind::Timeout => Base::Timeout,
        ErrorKind::WouldDeadlock | ErrorKind::Internal => Base::Runtime,
        _ => Base::None,
    }
}

#[derive(Clone, Copy)]
enum Base {
    None,
    Value,
    Lookup,
    OS,
    Timeout,
    Runtime,
}

/// [Error, then one class per kind in `ErrorKind::ALL` order].
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
    for &kind in ErrorKind::ALL {
        let root = root.bind(py).clone().into_any();
        let bases = match base(kind) {
            Base::None => PyTuple::new(py, [root])?,
            Base::Value => PyTuple::new(py, [root, PyValueError::type_object(py).into_any()])?,
            Base::Lookup => PyTuple::new(py, [root, PyLookupError::type_object(py).into_any()])?,
            Base::OS => PyTuple::new(py, [root, PyOSError::type_object(py).into_any()])?,
            Base::Timeout => PyTuple::new(py, [root, PyTimeoutError::type_object(py).into_any()])?,
            Base::Runtime => PyTuple::new(py, [root, PyRuntimeError::type_object(py).into_any()])?,
        };
        out.push(make(
            kind.name(),
            bases,
            kind.description(),
            Some(kind.as_str()),
        )?);
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
    // Looked up by kind, not by declaration order; a kind this build does not know (the core's
    // enum is non-exhaustive) gets the root class.
    let i = ErrorKind::ALL
        .iter()
        .position(|&k| k == kind)
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
    for (i, kind) in ErrorKind::ALL.iter().enumerate() {
        m.add(kind.name(), cls[i + 1].bind(py))?;
    }
    Ok(())
}
