//! Parsing of option values: durations, times, ids, properties, reasons, rates.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use mqlite::{DeadLetterReason, MessageId, Value};

use crate::error::{CliError, Result};

/// Every dead-letter reason, for parsing its stable name.
pub const REASONS: [DeadLetterReason; 5] = [
    DeadLetterReason::MaxRedeliveries,
    DeadLetterReason::Rejected,
    DeadLetterReason::Expired,
    DeadLetterReason::Overflow,
    DeadLetterReason::GroupParked,
];

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(ms)
        .unwrap_or(0)
}

/// A duration in whole ms, saturating at `u64::MAX` (a `Duration` holds up to 2^64 s, which
/// `as_millis() as u64` would wrap). Every conversion of a user's duration to ms goes here.
pub fn ms(d: Duration) -> u64 {
    mqlite::clock::ms_floor(d)
}

/// `secs` seconds as a `Duration`, saturating: `Duration::MAX` above its range (or for +∞),
/// zero for a negative number or NaN. `Duration::from_secs_f64` panics on those instead.
/// Every conversion of a user's number of seconds (`--rate`, `--interval`) goes here.
pub fn secs(secs: f64) -> Duration {
    // The core's one conversion; what it refuses (NaN, negative) means "no wait" here.
    mqlite::clock::secs_to_duration(secs, "seconds").unwrap_or(Duration::ZERO)
}

/// A duration such as `500ms`, `30s`, `10m`, `2h 30m`.
pub fn duration(what: &str, s: &str) -> Result<Duration> {
    humantime::parse_duration(s).map_err(|e| {
        CliError::usage(format!(
            "{what}: {s:?} is not a duration ({e}; e.g. 30s, 10m)"
        ))
    })
}

/// The shortest `--timeout` (`MQLITE_CONNECT_TIMEOUT`): 0 would give up on a live owner before
/// it can answer.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);
/// The longest `--timeout`: a day. Longer is a mistake (a hung owner would hold the command
/// for ever), and the core adds the timeout to the clock's `Instant`, which must not overflow.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// The `--timeout` (`MQLITE_CONNECT_TIMEOUT`) value: a duration (`5s`, `500ms`, `1m`) or a
/// number of seconds (`2.5`, converted saturating), within [`MIN_TIMEOUT`]–[`MAX_TIMEOUT`];
/// anything else is a usage error naming the value and the range (review r3 #25).
pub fn connect_timeout(s: &str) -> Result<Duration> {
    let t = s.trim();
    let d = match t.parse::<f64>() {
        Ok(n) if !n.is_nan() => Some(secs(n)),
        _ => humantime::parse_duration(t).ok(),
    };
    match d {
        Some(d) if (MIN_TIMEOUT..=MAX_TIMEOUT).contains(&d) => Ok(d),
        _ => Err(CliError::usage(format!(
            "--timeout (or MQLITE_CONNECT_TIMEOUT): {s:?} is not a duration from 1ms to 24h \
             (e.g. 5s, 500ms, or 10 for ten seconds)"
        ))),
    }
}

/// A point in time, in ms since the epoch: RFC 3339 (`2024-05-01T10:00:00Z`), a number of ms
/// since the epoch, or a duration ago (`2h`).
pub fn time(what: &str, s: &str) -> Result<u64> {
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(ms);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t.duration_since(UNIX_EPOCH).map(ms).unwrap_or(0));
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(now_ms().saturating_sub(ms(d)));
    }
    Err(CliError::usage(format!(
        "{what}: {s:?} is not a time (RFC 3339 such as 2024-05-01T10:00:00Z, ms since the epoch, or a duration ago such as 2h)"
    )))
}

/// A message id: `ID:42` or `42`.
pub fn id(s: &str) -> Result<MessageId> {
    s.parse::<u64>()
        .map(MessageId)
        .or_else(|_| s.parse::<MessageId>())
        .map_err(|_| CliError::usage(format!("{s:?} is not a message id (ID:<n> or <n>)")))
}

pub fn ids(v: &[String]) -> Result<Option<Vec<MessageId>>> {
    if v.is_empty() {
        return Ok(None);
    }
    v.iter().map(|s| id(s)).collect::<Result<_>>().map(Some)
}

/// A dead-letter reason by its stable name.
pub fn reason(s: &str) -> Result<DeadLetterReason> {
    REASONS
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| {
            let names: Vec<_> = REASONS.iter().map(|r| r.as_str()).collect();
            CliError::usage(format!(
                "{s:?} is not a dead-letter reason (one of {})",
                names.join(", ")
            ))
        })
}

/// The slowest `--rate`: one message every 1,000 s (about 17 minutes); slower is a mistake
/// (`1e-20`), and a wait computed from it would overflow a `Duration`.
pub const MIN_RATE: f64 = 0.001;
/// The fastest `--rate`: a million messages per second, more than a replay moves (its chunks are
/// a tenth of a second's worth).
pub const MAX_RATE: f64 = 1_000_000.0;

/// A rate in messages per second: `100`, `100/s`, `2.5/s`, within [`MIN_RATE`]–[`MAX_RATE`].
/// Errors: usage (exit 2), before anything is done.
pub fn rate(s: &str) -> Result<f64> {
    let n = s.strip_suffix("/s").unwrap_or(s);
    match n.parse::<f64>() {
        Ok(r) if (MIN_RATE..=MAX_RATE).contains(&r) => Ok(r),
        _ => Err(CliError::usage(format!(
            "--rate: {s:?} is not a rate from {MIN_RATE} to {MAX_RATE} per second (e.g. 100 or 100/s)"
        ))),
    }
}

/// The rule for a property name, one for `send --property` and `import`: not empty. The core
/// takes any string key (SPEC: "string keys"), but an empty name is always a mistake here
/// (`-p =v`): no selector can name it and the bridges refuse it (a broker header needs a name).
pub fn property_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    Ok(())
}

/// The property types, as written in `--property NAME:TYPE=VALUE` and in exported JSON.
pub const TYPES: [&str; 5] = ["str", "int", "float", "bool", "bytes"];

/// `NAME[:TYPE]=VALUE`.
pub fn property(s: &str) -> Result<(String, Value)> {
    let bad = |why: String| CliError::usage(format!("--property {s:?}: {why}"));
    let (left, value) = s
        .split_once('=')
        .ok_or_else(|| bad("expected NAME[:TYPE]=VALUE".into()))?;
    // What follows the last ':' is the TYPE, always: an unknown one is refused rather than
    // taken as part of the name (`n:itn=1` is a typo, not a string property "n:itn"). A name
    // that contains ':' is written with its type: `a:b:str=x`.
    let (name, kind) = left.rsplit_once(':').unwrap_or((left, "str"));
    property_name(name).map_err(bad)?;
    let v = value_of(kind, value).map_err(|e| {
        if TYPES.contains(&kind) {
            bad(e)
        } else {
            bad(format!(
                "{e}; a name containing ':' is written with its type, as in NAME:str=VALUE"
            ))
        }
    })?;
    Ok((name.to_string(), v))
}

/// Every `--property` of one command, in order. A name given twice is refused, naming it: the
/// core keeps one value a name, so the second would silently replace the first.
pub fn properties(v: &[String]) -> Result<Vec<(String, Value)>> {
    let mut out: Vec<(String, Value)> = Vec::with_capacity(v.len());
    for s in v {
        let (name, value) = property(s)?;
        if out.iter().any(|(n, _)| *n == name) {
            return Err(CliError::usage(format!(
                "--property {s:?}: the property {name:?} is given twice (a message holds one \
                 value a name)"
            )));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// A property value of type `kind` from its text form.
pub fn value_of(kind: &str, s: &str) -> std::result::Result<Value, String> {
    Ok(match kind {
        "str" => Value::Str(s.to_string()),
        "int" => Value::Int(
            s.parse()
                .map_err(|_| format!("{s:?} is not a 64-bit integer"))?,
        ),
        "float" => Value::Float(float(s).ok_or_else(|| format!("{s:?} is not a float"))?),
        "bool" => Value::Bool(match s {
            "true" => true,
            "false" => false,
            _ => return Err(format!("{s:?} is not a bool (true or false)")),
        }),
        "bytes" => Value::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| format!("invalid base64 ({e})"))?,
        ),
        other => {
            return Err(format!(
                "unknown type {other:?} (one of {})",
                TYPES.join(", ")
            ))
        }
    })
}

/// A float from text: a decimal, or a non-finite value spelled `NaN`, `Infinity`, `inf`
/// (any case, with an optional sign: `nan`, `-Infinity`, `+inf`), or `NaN:0x<16 hex digits>`
/// for a NaN with another bit pattern (so that every f64 round-trips exactly). A decimal too
/// large for an f64 (`1e999`) is refused rather than taken as infinity.
pub fn float(s: &str) -> Option<f64> {
    if let Some(hex) = s.strip_prefix("NaN:0x") {
        let bits = u64::from_str_radix(hex, 16).ok()?;
        let f = f64::from_bits(bits);
        return f.is_nan().then_some(f);
    }
    // Rust's parser reads the non-finite spellings above as well as decimals.
    let f = s.parse::<f64>().ok()?;
    let spelled = s.trim_start_matches(['+', '-']).to_ascii_lowercase();
    (f.is_finite() || matches!(spelled.as_str(), "nan" | "inf" | "infinity")).then_some(f)
}

/// The text form of a non-finite float (see [`float`]); `None` for a finite one.
pub fn non_finite(f: f64) -> Option<String> {
    if f.is_finite() {
        None
    } else if f.is_nan() {
        Some(if f.to_bits() == f64::NAN.to_bits() {
            "NaN".to_string()
        } else {
            format!("NaN:0x{:016x}", f.to_bits())
        })
    } else if f > 0.0 {
        Some("Infinity".to_string())
    } else {
        Some("-Infinity".to_string())
    }
}
