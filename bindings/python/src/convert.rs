//! Python values ↔ core values: durations, times, bodies, properties, messages.

use std::time::Duration;

use mqlite::{Message, Value};
use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyString};

use crate::errors::invalid;

/// Seconds (int or float) or a `datetime.timedelta`, as a `Duration`, by the core's one rule
/// (`mqlite::clock::secs_to_duration`): negative or NaN is `InvalidArgument`; a value too long
/// for a `Duration` (`sys.maxsize`, `1e300`, `math.inf`, "forever") saturates at
/// `Duration::MAX`, which every consumer of a duration treats as "never".
pub(crate) fn duration(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Duration> {
    let secs: f64 = if obj.hasattr(intern!(obj.py(), "total_seconds"))? {
        obj.call_method0(intern!(obj.py(), "total_seconds"))?
            .extract()?
    } else {
        obj.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "{what} must be seconds (int or float) or a datetime.timedelta"
            ))
        })?
    };
    crate::errors::mq(mqlite::clock::secs_to_duration(secs, what))
}

pub(crate) fn opt_duration(
    obj: Option<&Bound<'_, PyAny>>,
    what: &str,
) -> PyResult<Option<Duration>> {
    match obj {
        Some(o) if !o.is_none() => Ok(Some(duration(o, what)?)),
        _ => Ok(None),
    }
}

/// An integer type a Python int option converts to: its range, for the error.
pub(crate) trait IntOption: TryFrom<i128> {
    const MIN: i128;
    const MAX: i128;
}

macro_rules! int_option {
    ($($t:ty),*) => {$(
        impl IntOption for $t {
            const MIN: i128 = <$t>::MIN as i128;
            const MAX: i128 = <$t>::MAX as i128;
        }
    )*};
}
int_option!(u8, u32, u64, usize, i32, i64);

/// The integer option or argument `what` as a `T`: every integer a caller passes goes through
/// here (or [`int_in`]), so that a value out of range is `InvalidArgument` (a `ValueError`)
/// naming the option and its range, never a bare `OverflowError` from the conversion (issue 15
/// F4), and a non-integer is a `TypeError` naming it.
pub(crate) fn int<T: IntOption>(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<T> {
    let v = int_in(obj, what, T::MIN, T::MAX)?;
    // In range by the check above.
    T::try_from(v).map_err(|_| invalid(format!("{what} is out of range")))
}

/// [`int`] for an optional argument (`None` or absent: `None`).
pub(crate) fn opt_int<T: IntOption>(
    obj: Option<&Bound<'_, PyAny>>,
    what: &str,
) -> PyResult<Option<T>> {
    match obj {
        Some(o) if !o.is_none() => Ok(Some(int(o, what)?)),
        _ => Ok(None),
    }
}

/// A count `what` of at least 1 (a receive batch, a batch size): `InvalidArgument` naming the
/// range `1..=usize::MAX` for 0 and for a negative value alike (review r5 #21: 0 and -1 used
/// to get two different messages).
pub(crate) fn count(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<usize> {
    let v = int_in(obj, what, 1, usize::MAX as i128)?;
    usize::try_from(v).map_err(|_| invalid(format!("{what} is out of range")))
}

/// The integer `what`, which must lie in `min..=max` (`InvalidArgument` otherwise, naming it;
/// `TypeError` if it is not an integer: a float is refused, as `operator.index` refuses it).
pub(crate) fn int_in(obj: &Bound<'_, PyAny>, what: &str, min: i128, max: i128) -> PyResult<i128> {
    let out_of_range = || {
        let shown = obj
            .repr()
            .map(|r| r.to_string())
            .unwrap_or_else(|_| "the value given".into());
        invalid(format!(
            "{what} must be an integer from {min} to {max}, not {shown}"
        ))
    };
    match obj.extract::<i128>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        Ok(_) => Err(out_of_range()),
        // Beyond even i128: out of every option's range.
        Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => Err(out_of_range()),
        Err(_) => Err(PyTypeError::new_err(format!(
            "{what} must be an int, not {}",
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "that type".into())
        ))),
    }
}

/// Which way [`time_ms`] rounds a time with a part below the ms.
#[derive(Clone, Copy)]
pub(crate) enum Round {
    /// Up: a due time (`deliver_at`) or a lower bound (`since`), so nothing is delivered
    /// before it is due and nothing before the bound is taken (issue 15 §3).
    Up,
    /// Down: an upper bound (`until`) or a clock's reading (the clock itself reads whole ms,
    /// rounded down).
    Down,
}

/// A point in time: a `datetime.datetime` (naive = local time) or seconds since the epoch, in
/// ms, rounded as `round` says. The seconds are first taken to the µs (a `datetime`'s
/// precision), so that float noise (1000.05 s is 1000050.0000000001 ms) moves nothing by a ms.
pub(crate) fn time_ms(obj: &Bound<'_, PyAny>, what: &str, round: Round) -> PyResult<u64> {
    let secs: f64 = if obj.hasattr(intern!(obj.py(), "timestamp"))? {
        obj.call_method0(intern!(obj.py(), "timestamp"))?
            .extract()?
    } else {
        obj.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "{what} must be a datetime or seconds since the epoch"
            ))
        })?
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(invalid(format!(
            "{what} must be at or after the epoch, not {secs}"
        )));
    }
    // `as` saturates: a time past u64 µs is the far future, as the core's limits then say.
    let us = (secs * 1_000_000.0).round() as u64;
    Ok(match round {
        Round::Up => us.div_ceil(1000),
        Round::Down => us / 1000,
    })
}

/// A file system path: `str`, `bytes` (taken as they are, as `os.fsdecode` would give them
/// back) or an `os.PathLike` of either.
pub(crate) fn path(obj: &Bound<'_, PyAny>) -> PyResult<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let obj = match obj.hasattr(intern!(obj.py(), "__fspath__"))? {
        true => obj.call_method0(intern!(obj.py(), "__fspath__"))?,
        false => obj.clone(),
    };
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(std::ffi::OsStr::from_bytes(b.as_bytes()).into());
    }
    obj.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "path must be str, bytes or os.PathLike, not {}",
            obj.get_type()
                .name()
                .map_or_else(|_| "?".to_string(), |n| n.to_string())
        ))
    })
}

/// A message body: `bytes`, `bytearray`, `memoryview` (any buffer), or `str` (encoded UTF-8).
pub(crate) fn body(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(s) = obj.cast::<PyString>() {
        let s: PyBackedStr = s.extract()?;
        return Ok(s.as_bytes().to_vec());
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(b.to_vec());
    }
    // Any other buffer (memoryview, array, numpy …), copied once. Not bytes(obj): bytes(12)
    // would quietly make twelve zero bytes out of an int.
    let py = obj.py();
    match py
        .get_type::<pyo3::types::PyMemoryView>()
        .call1((obj,))
        .and_then(|m| m.call_method0("tobytes"))
    {
        Ok(b) => Ok(b.cast::<PyBytes>()?.as_bytes().to_vec()),
        Err(_) => Err(PyTypeError::new_err(format!(
            "a message body must be bytes, bytearray, memoryview or str, not {}",
            obj.get_type().name()?
        ))),
    }
}

/// A property value: bool, int (64-bit signed), float, str, bytes/bytearray.
pub(crate) fn value(key: &str, v: &Bound<'_, PyAny>) -> PyResult<Value> {
    // bool before int: bool is a subclass of int.
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if v.is_instance_of::<PyInt>() {
        return v.extract::<i64>().map(Value::Int).map_err(|_| {
            invalid(format!(
                "property {key:?}: {v} does not fit in a signed 64-bit integer"
            ))
        });
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    if let Ok(s) = v.cast::<PyString>() {
        let s: PyBackedStr = s.extract()?;
        return Ok(Value::Str(s.to_string()));
    }
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(Value::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(b) = v.cast::<PyByteArray>() {
        return Ok(Value::Bytes(b.to_vec()));
    }
    Err(PyTypeError::new_err(format!(
        "property {key:?}: values must be str, int, float, bool or bytes, not {}",
        v.get_type().name()?
    )))
}

pub(crate) fn value_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Str(s) => PyString::new(py, s).into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::Float(f) => PyFloat::new(py, *f).into_any(),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Bytes(b) => PyBytes::new(py, b).into_any(),
        // Value is #[non_exhaustive]-free today; a new variant must be added here.
    })
}

pub(crate) fn properties_to_py<'py>(
    py: Python<'py>,
    props: &[(String, Value)],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in props {
        d.set_item(k, value_to_py(py, v)?)?;
    }
    Ok(d)
}

/// The optional headers of a send, shared by `send`, `send_async`, `send_batch` items.
#[derive(Default)]
pub(crate) struct Headers<'a, 'py> {
    pub properties: Option<&'a Bound<'py, PyAny>>,
    pub priority: Option<&'a Bound<'py, PyAny>>,
    pub ttl: Option<&'a Bound<'py, PyAny>>,
    pub delay: Option<&'a Bound<'py, PyAny>>,
    pub deliver_at: Option<&'a Bound<'py, PyAny>>,
    pub group: Option<String>,
    pub dedup_key: Option<String>,
    pub correlation_id: Option<String>,
    /// `(period, count)`: delivered `count` more times, `period` apart (scheduled repeats).
    pub repeat: Option<&'a Bound<'py, PyAny>>,
}

pub(crate) fn message(body_obj: &Bound<'_, PyAny>, h: Headers<'_, '_>) -> PyResult<Message> {
    let mut m = Message::new(body(body_obj)?);
    if let Some(props) = h.properties.filter(|p| !p.is_none()) {
        if let Ok(d) = props.cast::<PyDict>() {
            for (k, v) in d.iter() {
                let k: PyBackedStr = k.extract().map_err(|e| {
                    // A str that is not valid UTF-8 (a lone surrogate) keeps Python's own
                    // UnicodeEncodeError: "must be str" named the wrong fault (review r12 #11).
                    if k.is_instance_of::<pyo3::types::PyString>() {
                        e
                    } else {
                        PyTypeError::new_err("property names must be str")
                    }
                })?;
                let v = value(&k, &v)?;
                m.set_property(k.to_string(), v);
            }
        } else {
            for item in props
                .call_method0(intern!(props.py(), "items"))?
                .try_iter()?
            {
                let (k, v): (String, Bound<'_, PyAny>) = item?.extract()?;
                let v = value(&k, &v)?;
                m.set_property(k, v);
            }
        }
    }
    if let Some(p) = h.priority.filter(|p| !p.is_none()) {
        let p = int_in(p, "priority", 0, mqlite::MAX_PRIORITY.into())?;
        m = m.priority(p as u8);
    }
    if let Some(t) = opt_duration(h.ttl, "ttl")? {
        m = m.ttl(t);
    }
    if let Some(d) = opt_duration(h.delay, "delay")? {
        m = m.delay(d);
    }
    if let Some(at) = h.deliver_at.filter(|a| !a.is_none()) {
        m = m.deliver_at_ms(time_ms(at, "deliver_at", Round::Up)?);
    }
    if let Some(g) = h.group {
        m = m.group(g);
    }
    if let Some(k) = h.dedup_key {
        m = m.dedup_key(k);
    }
    if let Some(c) = h.correlation_id {
        m = m.correlation_id(c);
    }
    if let Some(r) = h.repeat.filter(|r| !r.is_none()) {
        let (period, count): (Bound<'_, PyAny>, Bound<'_, PyAny>) = r
            .extract()
            .map_err(|_| PyTypeError::new_err("repeat must be a (period, count) tuple"))?;
        m = m.repeat(
            duration(&period, "repeat period")?,
            int(&count, "repeat count")?,
        );
    }
    Ok(m)
}

/// The items of `send_batch` / `publish_batch`. An item that does not convert (an option out
/// of range, a wrong type) raises its error with "message {i} of the batch: " in front, as
/// the core names an item it refuses.
pub(crate) fn batch_items(messages: &Bound<'_, PyAny>) -> PyResult<Vec<Message>> {
    let mut ms = Vec::with_capacity(messages.len().unwrap_or(0));
    for (i, item) in messages.try_iter()?.enumerate() {
        let m = batch_item(&item?).map_err(|e| {
            let py = messages.py();
            let text = e.value(py).str().map(|s| s.to_string()).unwrap_or_default();
            PyErr::from_type(e.get_type(py), format!("message {i} of the batch: {text}"))
        })?;
        ms.push(m);
    }
    Ok(ms)
}

/// One item of `send_batch`: a body, or a dict with `body` and any header keyword of `send`.
fn batch_item(item: &Bound<'_, PyAny>) -> PyResult<Message> {
    let Ok(d) = item.cast::<PyDict>() else {
        return message(item, Headers::default());
    };
    let get = |k: &str| d.get_item(k);
    let body = get("body")?
        .ok_or_else(|| PyTypeError::new_err("a send_batch dict item needs a 'body' key"))?;
    for k in d.keys() {
        let k: String = k.extract()?;
        if ![
            "body",
            "properties",
            "priority",
            "ttl",
            "delay",
            "deliver_at",
            "group",
            "dedup_key",
            "correlation_id",
        ]
        .contains(&k.as_str())
        {
            return Err(PyTypeError::new_err(format!(
                "unknown send_batch item key {k:?}"
            )));
        }
    }
    let props = get("properties")?;
    let ttl = get("ttl")?;
    let delay = get("delay")?;
    let at = get("deliver_at")?;
    let repeat = get("repeat")?;
    let opt_str = |k: &str| -> PyResult<Option<String>> {
        match get(k)? {
            Some(v) if !v.is_none() => Ok(Some(v.extract()?)),
            _ => Ok(None),
        }
    };
    let priority = get("priority")?;
    message(
        &body,
        Headers {
            properties: props.as_ref(),
            priority: priority.as_ref(),
            ttl: ttl.as_ref(),
            delay: delay.as_ref(),
            deliver_at: at.as_ref(),
            group: opt_str("group")?,
            dedup_key: opt_str("dedup_key")?,
            correlation_id: opt_str("correlation_id")?,
            repeat: repeat.as_ref(),
        },
    )
}
