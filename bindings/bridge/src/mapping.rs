//! How an mqlite message travels in a broker whose headers are plain strings (NATS), and back.
//!
//! mqlite properties are typed (string, 64-bit integer, 64-bit float, boolean, bytes); NATS
//! headers are strings. The encoding keeps both worlds readable:
//!
//! * A property becomes one header. Its **name** is the property key, with every byte outside
//!   `A–Z a–z 0–9 - _ . ! # $ & ' * + ^ ` | ~` written as `%XX` (so `%` itself is `%25`), and
//!   the first character escaped the same way when the key starts with `Mqlite-` or `Nats-`
//!   (case-insensitive) — those prefixes are reserved for the fields below and for the server.
//! * Its **value** is the natural text: `42`, `1.5`, `true`, or the string itself. Bytes are
//!   base64 (standard alphabet, padded). A string that is not printable ASCII, or that starts or
//!   ends with a space, is percent-encoded the same way as names.
//! * One header, `Mqlite-Types`, lists the properties that are not plain strings, as
//!   `name=type` pairs joined by `,` (names as encoded above): `i` integer, `f` float,
//!   `b` boolean, `x` bytes, `s` percent-encoded string. Every message the bridge publishes
//!   carries it (empty when every property is a plain string); its presence tells the inbound
//!   side that names are encoded. A message from another publisher (no `Mqlite-Types`) keeps
//!   every header as a string property under its own name.
//!
//! The message's own fields travel in reserved headers: `Mqlite-Priority` (0–9),
//! `Mqlite-Expires` (ms since the epoch), `Mqlite-Correlation-Id` and `Mqlite-Group`
//! (percent-encoded), `Mqlite-Timestamp` (the send time, ms since the epoch), `Mqlite-Topic`
//! (percent-encoded: the topic a message received from a subscription, `$sub.<name>`, was
//! published to; inbound it becomes the property [`TOPIC_PROPERTY`]).

use base64::Engine as _;
use mqlite::{Message, Value, DEFAULT_PRIORITY};

/// Header listing the typed properties.
pub const TYPES: &str = "Mqlite-Types";
/// Header with the priority (0–9).
pub const PRIORITY: &str = "Mqlite-Priority";
/// Header with the absolute expiry (ms since the epoch).
pub const EXPIRES: &str = "Mqlite-Expires";
/// Header with the correlation id.
pub const CORRELATION_ID: &str = "Mqlite-Correlation-Id";
/// Header with the group key (JMSXGroupID).
pub const GROUP: &str = "Mqlite-Group";
/// Header with the original send time (ms since the epoch).
pub const TIMESTAMP: &str = "Mqlite-Timestamp";
/// Header with the topic a message was published to (a route reading a subscription's queue,
/// `$sub.<name>`): consumers on the broker side can tell `orders.eu` from `orders.us` though
/// the route publishes both to one subject (review r3 #30).
pub const TOPIC: &str = "Mqlite-Topic";
/// Property under which an inbound message keeps the topic of its `Mqlite-Topic` header (a
/// message sent to a queue has no topic of its own).
pub const TOPIC_PROPERTY: &str = "bridge.topic";
/// Property under which an inbound message keeps its original send time (ms since the epoch),
/// because the receiving store stamps its own send time on every message.
pub const TIMESTAMP_PROPERTY: &str = "bridge.timestamp_ms";

fn name_byte_ok(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!#$&'*+^`|~".contains(&b)
}

fn value_byte_ok(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b'%'
}

fn pct_encode(s: &str, ok: impl Fn(u8) -> bool, out: &mut String) {
    for &b in s.as_bytes() {
        if ok(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Decodes `%XX` sequences; `None` if a sequence is malformed or the result is not UTF-8.
pub fn pct_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The header name of property `key` in a string-header broker (NATS): every byte outside the
/// token characters percent-encoded, and a reserved name's first byte too (see
/// [`escape_reserved`]).
pub fn encode_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    if reserved(key) {
        push_escaped_first(key, &mut out);
        pct_encode(&key[1..], name_byte_ok, &mut out);
    } else {
        pct_encode(key, name_byte_ok, &mut out);
    }
    out
}

/// Writes the first byte of `key` as `%XX` (upper-case hex): `Mqlite-Group` → `%4D`.
fn push_escaped_first(key: &str, out: &mut String) {
    if let Some(b) = key.as_bytes().first() {
        out.push_str(&format!("%{b:02X}"));
    }
}

/// The header name of property `key` in a broker whose header names are free text (RabbitMQ):
/// the name itself, unless it is reserved for the bridge's fields and the server (`Mqlite-`,
/// `Nats-`, case-insensitive, as for NATS) or starts with `%`; then its first byte is written
/// `%XX`, so `Mqlite-Group` travels as `%4Dqlite-Group` and `%x` as `%25x` (review r8 #3: a
/// property named `Mqlite-Group`, `Mqlite-Timestamp` or `Mqlite-Correlation-Id` was lost, and
/// the last one replaced the message's correlation id). [`unescape_reserved`] reverses it.
pub fn escape_reserved(key: &str) -> std::borrow::Cow<'_, str> {
    if !reserved(key) && !key.starts_with('%') {
        return key.into();
    }
    let mut out = String::with_capacity(key.len() + 2);
    push_escaped_first(key, &mut out);
    out.push_str(&key[1..]);
    out.into()
}

/// The property name of a free-text header name (the reverse of [`escape_reserved`]): a
/// leading `%XX` is decoded when the result is a name [`escape_reserved`] escapes (reserved,
/// or starting with `%`); any other name, a foreign `%41b` say, is kept as it is.
pub fn unescape_reserved(name: &str) -> std::borrow::Cow<'_, str> {
    let decoded = name
        .strip_prefix('%')
        .and_then(|rest| rest.get(..2))
        .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        .filter(|b| b.is_ascii())
        .map(|b| format!("{}{}", b as char, &name[3..]));
    match decoded {
        Some(d) if reserved(&d) || d.starts_with('%') => d.into(),
        _ => name.into(),
    }
}

/// A string as a header value; `true` if it had to be percent-encoded.
pub fn encode_text(s: &str) -> (String, bool) {
    let plain = s.bytes().all(value_byte_ok) && !s.starts_with(' ') && !s.ends_with(' ');
    if plain {
        return (s.to_string(), false);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let edge_space = b == b' ' && (i == 0 || i + 1 == s.len());
        if value_byte_ok(b) && !edge_space {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    (out, true)
}

/// The property name under which an inbound header named `name` is stored (both brokers):
/// the name itself, unless it is empty or holds a control character (U+0000–U+001F, U+007F),
/// which no face of mqlite takes (`mqlite send -p '=v'` is refused) and an outbound NATS
/// route cannot forward (a header needs a name). Then, deterministically: an empty name
/// becomes `%`, and each control character `%XX` (its byte in upper-case hex, as in a NATS
/// header name), so `"a\x01b"` is stored as `"a%01b"` — a name every outbound route can
/// forward (review r3 #20). Two headers that map to one name keep the first.
pub fn property_name(name: &str) -> std::borrow::Cow<'_, str> {
    if name.is_empty() {
        return "%".into();
    }
    if !name.chars().any(|c| c.is_ascii_control()) {
        return name.into();
    }
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_control() {
            out.push_str(&format!("%{:02X}", c as u8));
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// Why a message cannot be mapped (a refusal: the message goes the way of a failed publish).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapError(pub String);

/// The headers of `msg` for a string-header broker.
pub fn to_string_headers(msg: &Message) -> Result<Vec<(String, String)>, MapError> {
    let mut out = Vec::with_capacity(msg.properties().len() + 4);
    let mut types = String::new();
    for (key, value) in msg.properties() {
        if key.is_empty() {
            return Err(MapError(
                "a property with an empty name cannot be a header".into(),
            ));
        }
        let name = encode_name(key);
        let (text, code) = match value {
            Value::Str(s) => {
                let (t, escaped) = encode_text(s);
                (t, escaped.then_some('s'))
            }
            Value::Int(i) => (i.to_string(), Some('i')),
            Value::Float(f) => (f.to_string(), Some('f')),
            Value::Bool(b) => (b.to_string(), Some('b')),
            Value::Bytes(b) => (
                base64::engine::general_purpose::STANDARD.encode(b),
                Some('x'),
            ),
        };
        if let Some(c) = code {
            if !types.is_empty() {
                types.push(',');
            }
            types.push_str(&name);
            types.push('=');
            types.push(c);
        }
        out.push((name, text));
    }
    out.push((TYPES.to_string(), types));
    if msg.get_priority() != DEFAULT_PRIORITY {
        out.push((PRIORITY.to_string(), msg.get_priority().to_string()));
    }
    if msg.expires_at_ms() > 0 {
        out.push((EXPIRES.to_string(), msg.expires_at_ms().to_string()));
    }
    if let Some(c) = msg.get_correlation_id() {
        out.push((CORRELATION_ID.to_string(), encode_text(c).0));
    }
    if let Some(g) = msg.get_group() {
        out.push((GROUP.to_string(), encode_text(g).0));
    }
    if msg.timestamp_ms() > 0 {
        out.push((TIMESTAMP.to_string(), msg.timestamp_ms().to_string()));
    }
    if let Some(t) = msg.topic() {
        out.push((TOPIC.to_string(), encode_text(t).0));
    }
    Ok(out)
}

/// Decodes a typed value; falls back to the text itself when it does not parse.
fn decode_value(text: &str, code: Option<&str>) -> Value {
    let parsed = match code {
        Some("i") => text.parse().ok().map(Value::Int),
        Some("f") => text.parse().ok().map(Value::Float),
        Some("b") => text.parse().ok().map(Value::Bool),
        Some("x") => base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()
            .map(Value::Bytes),
        Some("s") => pct_decode(text).map(Value::Str),
        _ => None,
    };
    parsed.unwrap_or_else(|| Value::Str(text.to_string()))
}

/// Rebuilds a message from a string-header broker's body and headers (the first value of a
/// repeated header counts). `published_ms` is the broker's own time for the message, kept when
/// no `Mqlite-Timestamp` came with it; `now_ms` turns `Mqlite-Expires` back into a TTL.
pub fn from_string_headers<'a>(
    body: &[u8],
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    published_ms: Option<u64>,
    now_ms: u64,
) -> Message {
    let headers: Vec<(&str, &str)> = headers.into_iter().collect();
    let types: Option<Vec<(&str, &str)>> = headers.iter().find(|(n, _)| *n == TYPES).map(|t| {
        t.1.split(',')
            .filter_map(|pair| pair.split_once('='))
            .collect()
    });
    let mut msg = Message::new(body);
    let mut timestamp = published_ms;
    let mut seen: Vec<&str> = Vec::new();
    // The server's own headers of a message the bridge published (`Nats-Msg-Id`, any other
    // unescaped `Nats-`/`Mqlite-` name): stored after the message's own properties, and only
    // under a name none of them took. A property the sender named `Nats-Msg-Id` travels
    // escaped (`%4Eats-Msg-Id`) and decodes to the same name: it wins, whatever the header
    // order (review r7 #5: which one survived depended on the header map's iteration order).
    let mut server: Vec<(&str, &str)> = Vec::new();
    for &(name, text) in &headers {
        if seen.contains(&name) {
            continue;
        }
        seen.push(name);
        match name {
            TYPES => {}
            PRIORITY => {
                if let Ok(p) = text.trim().parse::<u8>() {
                    msg = msg.priority(p.min(9));
                }
            }
            EXPIRES => {
                if let Ok(at) = text.trim().parse::<u64>() {
                    // Already past: the shortest TTL, so it expires (and is dead-lettered as
                    // expired) in the receiving store rather than being dropped here unseen.
                    msg = msg.ttl(std::time::Duration::from_millis(
                        at.saturating_sub(now_ms).max(1),
                    ));
                }
            }
            CORRELATION_ID => {
                msg = msg.correlation_id(pct_decode(text).unwrap_or_else(|| text.to_string()))
            }
            GROUP => msg = msg.group(pct_decode(text).unwrap_or_else(|| text.to_string())),
            TIMESTAMP => {
                if let Ok(t) = text.trim().parse::<u64>() {
                    timestamp = Some(t);
                }
            }
            TOPIC => msg.set_property(
                TOPIC_PROPERTY,
                pct_decode(text).unwrap_or_else(|| text.to_string()),
            ),
            _ => match &types {
                Some(_) if reserved(name) => server.push((name, text)),
                Some(types) => {
                    let code = types.iter().find(|(n, _)| *n == name).map(|(_, c)| *c);
                    let key = pct_decode(name).unwrap_or_else(|| name.to_string());
                    let key = property_name(&key).into_owned();
                    if msg.get_property(&key).is_none() {
                        msg.set_property(key, decode_value(text, code));
                    }
                }
                None => msg.set_property(name, text),
            },
        }
    }
    for (name, text) in server {
        if msg.get_property(name).is_none() {
            msg.set_property(name, text);
        }
    }
    if let Some(t) = timestamp {
        msg.set_property(TIMESTAMP_PROPERTY, t as i64);
    }
    msg
}

/// Whether a header name is reserved for the bridge's fields and the server (`Mqlite-`,
/// `Nats-`, case-insensitive): a property named so travels escaped (see [`encode_name`]).
fn reserved(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("mqlite-") || lower.starts_with("nats-")
}

/// The remaining time to live of `msg` at `now_ms`, if it expires (at least 1 ms).
pub fn remaining_ttl_ms(msg: &Message, now_ms: u64) -> Option<u64> {
    (msg.expires_at_ms() > 0).then(|| msg.expires_at_ms().saturating_sub(now_ms).max(1))
}

/// Milliseconds since the epoch by the system clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn round_trip(msg: &Message) -> Message {
        let h = to_string_headers(msg).unwrap();
        for (n, v) in &h {
            assert!(
                n.bytes().all(|b| b.is_ascii_graphic() && b != b':'),
                "bad name {n:?}"
            );
            assert!(!v.contains(['\r', '\n']), "bad value {v:?}");
            assert_eq!(v.trim(), v, "value {v:?} would be trimmed");
        }
        from_string_headers(
            msg.body(),
            h.iter().map(|(a, b)| (a.as_str(), b.as_str())),
            None,
            1_000,
        )
    }

    #[test]
    fn typed_properties_survive_with_their_types() {
        let m = Message::new("body")
            .property("plain", "text")
            .property("count", 42i64)
            .property("neg", -7i64)
            .property("price", 1.5f64)
            .property("tiny", 1e-300f64)
            .property("flag", true)
            .property("raw", vec![0u8, 255, 10, 13])
            .property("empty", "")
            .property("looks-int", "42")
            .property("weird key: é,=%", "line\r\nbreak % é")
            .property(" edge ", " spaced ")
            .property("Mqlite-Priority", "user's own")
            .property("nats-msg-id", "user's own too")
            .priority(7)
            .correlation_id("corr\n1")
            .group("g%1");
        let back = round_trip(&m);
        assert_eq!(back.body(), b"body");
        for (k, v) in m.properties() {
            assert_eq!(back.get_property(k), Some(v), "property {k:?}");
        }
        assert_eq!(back.get_priority(), 7);
        assert_eq!(back.get_correlation_id(), Some("corr\n1"));
        assert_eq!(back.get_group(), Some("g%1"));
        // Nothing but the properties and the original send time (absent here).
        assert_eq!(back.properties().len(), m.properties().len());
    }

    #[test]
    fn plain_strings_stay_readable_and_specials_round_trip() {
        let m = Message::new("")
            .property("kind", "order")
            .property("nan", f64::NAN)
            .property("inf", f64::NEG_INFINITY);
        let h = to_string_headers(&m).unwrap();
        assert!(h.contains(&("kind".into(), "order".into())));
        assert!(h.contains(&(TYPES.into(), "nan=f,inf=f".into())));
        let back = round_trip(&m);
        assert!(matches!(back.get_property("nan"), Some(Value::Float(f)) if f.is_nan()));
        assert_eq!(
            back.get_property("inf"),
            Some(&Value::Float(f64::NEG_INFINITY))
        );
    }

    #[test]
    fn a_property_named_like_a_server_header_wins_in_either_header_order() {
        let user = encode_name("Nats-Msg-Id");
        assert_eq!(user, "%4Eats-Msg-Id");
        let server = ("Nats-Msg-Id", "o:ID:1");
        let mine = (user.as_str(), "evil");
        for hs in [[(TYPES, ""), server, mine], [(TYPES, ""), mine, server]] {
            let back = from_string_headers(b"", hs, None, 0);
            assert_eq!(
                back.get_property("Nats-Msg-Id"),
                Some(&Value::Str("evil".into()))
            );
        }
        // Without the user's property, the server's header is kept.
        let back = from_string_headers(b"", [(TYPES, ""), server], None, 0);
        assert_eq!(
            back.get_property("Nats-Msg-Id"),
            Some(&Value::Str("o:ID:1".into()))
        );
    }

    #[test]
    fn foreign_headers_are_strings_and_a_bad_typed_value_stays_text() {
        let back = from_string_headers(
            b"x",
            [
                ("Nats-Msg-Id", "abc"),
                ("a%20b", "1"),
                ("x", "1"),
                ("x", "2"),
            ],
            Some(5),
            0,
        );
        assert_eq!(
            back.get_property("Nats-Msg-Id"),
            Some(&Value::Str("abc".into()))
        );
        assert_eq!(back.get_property("a%20b"), Some(&Value::Str("1".into())));
        assert_eq!(back.get_property("x"), Some(&Value::Str("1".into())));
        assert_eq!(back.get_property(TIMESTAMP_PROPERTY), Some(&Value::Int(5)));
        let back = from_string_headers(b"", [(TYPES, "n=i"), ("n", "not a number")], None, 0);
        assert_eq!(
            back.get_property("n"),
            Some(&Value::Str("not a number".into()))
        );
    }

    #[test]
    fn expiry_becomes_the_remaining_ttl() {
        let back = from_string_headers(b"", [(EXPIRES, "5000"), (PRIORITY, "99")], None, 1_000);
        assert_eq!(back.get_priority(), 9);
        // A TTL cannot be read back from an unsent message; send it to see it.
        let dir = tempfile::tempdir().unwrap();
        let clock = mqlite::ManualClock::new(1_000);
        let store = mqlite::Store::open(
            dir.path(),
            mqlite::StoreOptions {
                clock,
                ..Default::default()
            },
        )
        .unwrap();
        let q = store.queue("q").unwrap();
        q.send(back).unwrap();
        let d = q.receive(Some(Duration::ZERO)).unwrap().unwrap();
        assert_eq!(d.expires_at_ms(), 5_000);
        assert_eq!(remaining_ttl_ms(&d, 4_000), Some(1_000));
        assert_eq!(remaining_ttl_ms(&d, 9_000), Some(1));
        d.ack().unwrap();
    }

    #[test]
    fn names_no_face_takes_are_mapped_deterministically() {
        assert_eq!(property_name("plain"), "plain");
        assert_eq!(property_name(""), "%");
        assert_eq!(property_name("a\x01b\x7f"), "a%01b%7F");
        assert_eq!(property_name("é\n"), "é%0A");
        // Bridged in with a NATS publisher's encoding, such a name is stored mapped.
        let back = from_string_headers(b"", [(TYPES, ""), ("a%01b", "v")], None, 0);
        assert_eq!(back.get_property("a%01b"), Some(&Value::Str("v".into())));
        assert!(to_string_headers(&back).is_ok());
    }

    #[test]
    fn free_text_names_escape_reserved_names_exactly() {
        for key in [
            "Mqlite-Group",
            "mqlite-timestamp",
            "Mqlite-Correlation-Id",
            "Nats-Msg-Id",
            "%",
            "%4Dqlite-x",
            "%25",
            "plain",
            "a%41",
        ] {
            let sent = escape_reserved(key);
            assert!(!reserved(&sent), "{key} travels as {sent}");
            assert_eq!(unescape_reserved(&sent), key, "{key} via {sent}");
        }
        assert_eq!(escape_reserved("Mqlite-Group"), "%4Dqlite-Group");
        assert_eq!(escape_reserved("plain"), "plain");
        // A foreign name that merely looks escaped is kept.
        assert_eq!(unescape_reserved("%41bc"), "%41bc");
        assert_eq!(unescape_reserved("%ZZ"), "%ZZ");
        // The NATS encoding escapes the same first byte.
        assert!(encode_name("Mqlite-Group").starts_with("%4D"));
    }

    #[test]
    fn empty_property_name_is_refused() {
        assert!(to_string_headers(&Message::new("").property("", 1i64)).is_err());
    }
}
