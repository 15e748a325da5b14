//! The JSON form of a message: one line of `export`/`import`, and the message part of
//! `browse --json`, `receive --json` and `dlq show --json`.
//!
//! Exact round trip: the body is base64; properties are a list (their order is kept) of
//! `{"name", "type", "value"}` with type `str`, `int` (a JSON integer, full i64 range), `float` (a
//! JSON number printed in shortest round-trip form; `NaN`, `Infinity`, `-Infinity` or
//! `NaN:0x<bits>` as strings), `bool`, or `bytes` (base64); times are ms since the epoch.

use base64::Engine;
use mqlite::{DeadLetterInfo, Message, Value};
use serde::{Deserialize, Serialize};

use crate::parse;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MessageJson {
    /// The queue it is in (import stores it there unless `--queue` says otherwise).
    pub queue: String,
    /// Its id in that queue (`ID:<n>`); import gives each message a new id.
    #[serde(default)]
    pub id: Option<String>,
    /// When it was sent (ms since the epoch); import keeps it (absent: the time of the import).
    #[serde(default)]
    pub timestamp_ms: Option<u64>,
    /// When it expires (ms since the epoch), 0 = never.
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
    /// The deliver-at time it was sent with, 0 = none.
    #[serde(default)]
    pub deliver_at_ms: u64,
    #[serde(default = "default_priority")]
    pub priority: u8,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub dedup_key: Option<String>,
    #[serde(default)]
    pub repeat: Option<RepeatJson>,
    #[serde(default)]
    pub properties: Vec<PropertyJson>,
    #[serde(default)]
    pub dead_letter: Option<DeadLetterJson>,
    /// The topic it was published to (a subscription's message, or a dead letter of one);
    /// null for a message sent to a queue.
    #[serde(default)]
    pub topic: Option<String>,
    /// The body, base64 (absent in `browse --body none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// A durable subscription, as an export line `{"subscription": {…}}` carries it: written before
/// every message line, so that `import` re-creates the subscription before it stores the
/// messages of its queue (`$sub.<name>`). Review r3 #10: without it, an export of a store with
/// subscriptions could not be imported.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionJson {
    /// Its name (the queue-name rule).
    pub name: String,
    /// Its topic pattern (`*` one segment, `>` the rest).
    pub pattern: String,
    /// Its JMS selector; empty: every message.
    #[serde(default)]
    pub selector: String,
    /// Whether several handles may consume it at once.
    #[serde(default)]
    pub shared: bool,
}

impl SubscriptionJson {
    pub fn of(i: &mqlite::SubscriptionInfo) -> Self {
        SubscriptionJson {
            name: i.name.clone(),
            pattern: i.pattern.clone(),
            selector: i.selector.clone(),
            shared: i.shared,
        }
    }

    /// Checks the name, pattern and selector by the core's rules (the error names the field).
    pub fn check(&self) -> Result<(), String> {
        mqlite::validate_queue_name(&self.name)
            .map_err(|e| format!("subscription.name: {}", e.message()))?;
        mqlite::selector::check_topic_pattern(&self.pattern)
            .map_err(|e| format!("subscription.pattern: {}", e.message()))?;
        if !self.selector.is_empty() {
            mqlite::selector::Selector::parse(&self.selector)
                .map_err(|e| format!("subscription.selector: {}", e.message()))?;
        }
        Ok(())
    }

    /// Its queue's name.
    pub fn queue(&self) -> String {
        format!("$sub.{}", self.name)
    }
}

/// serde_json's error on one input line, its position as a column only: the line is the input
/// line the caller names (review r6 #9: "line 2: bad JSON: … at line 1 column 81").
fn json_error(e: serde_json::Error) -> String {
    let text = e.to_string();
    if e.line() == 0 {
        return format!("bad JSON: {text}");
    }
    let at = format!(" at line {} column {}", e.line(), e.column());
    let what = text.strip_suffix(&at).unwrap_or(&text);
    format!("bad JSON: {what} at column {}", e.column())
}

/// One line of an export: a subscription or a message.
pub enum Line {
    Subscription(SubscriptionJson),
    Message(Box<MessageJson>),
}

impl Line {
    /// A JSON object with the one key `subscription` is a subscription line; any other object a
    /// message line (see [`MessageJson::from_line`]).
    pub fn parse(text: &str) -> Result<Line, String> {
        let Strict(v) = serde_json::from_str(text).map_err(json_error)?;
        if let Some(o) = v.as_object().filter(|o| o.contains_key("subscription")) {
            if o.len() != 1 {
                return Err(
                    "bad JSON: a subscription line holds only the key `subscription`".into(),
                );
            }
            object("subscription", &o["subscription"])?;
            let s: SubscriptionJson = serde_json::from_value(o["subscription"].clone())
                .map_err(|e| format!("bad JSON: subscription: {e}"))?;
            return Ok(Line::Subscription(s));
        }
        MessageJson::from_value(v).map(|m| Line::Message(Box::new(m)))
    }
}

impl MessageJson {
    /// One import line: a JSON object of this shape. Objects only: serde's derived structs
    /// also accept a JSON array of the fields in order, which no export writes and which would
    /// silently take a mistake (`["q","aGk="]`) for a message; so the line is read as a JSON
    /// value first and every place that holds an object here must hold one.
    pub fn from_value(v: serde_json::Value) -> Result<MessageJson, String> {
        object("the line", &v)?;
        for field in ["repeat", "dead_letter"] {
            match v.get(field) {
                None | Some(serde_json::Value::Null) => {}
                Some(x) => object(field, x)?,
            }
        }
        if let Some(serde_json::Value::Array(ps)) = v.get("properties") {
            for (i, p) in ps.iter().enumerate() {
                object(&format!("properties[{i}]"), p)?;
            }
        }
        serde_json::from_value(v).map_err(|e| format!("bad JSON: {e}"))
    }
}

/// A JSON value whose every object holds each key once. Review r4 #14: `serde_json::Value`
/// keeps the last of a repeated key, so `{"queue":"iq","queue":"x",…}` was stored in "x"
/// without a word; a hand-edited or joined line with a repeated key is a mistake of the same
/// kind as an unknown field, refused naming the key.
struct Strict(serde_json::Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(b.into())
    }
    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(n.into())
    }
    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(n.into())
    }
    fn visit_f64<E>(self, n: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, Into::into))
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(s.into())
    }
    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(s.into())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut v = Vec::new();
        while let Some(Strict(x)) = seq.next_element()? {
            v.push(x);
        }
        Ok(v.into())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut o = serde_json::Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if o.contains_key(&k) {
                return Err(serde::de::Error::custom(format!("field `{k}` given twice")));
            }
            let Strict(v) = map.next_value()?;
            o.insert(k, v);
        }
        Ok(o.into())
    }
}

/// Fails unless `v` is a JSON object.
fn object(what: &str, v: &serde_json::Value) -> Result<(), String> {
    use serde_json::Value as J;
    let found = match v {
        J::Object(_) => return Ok(()),
        J::Null => "null",
        J::Bool(_) => "a boolean",
        J::Number(_) => "a number",
        J::String(_) => "a string",
        J::Array(_) => "an array",
    };
    Err(format!(
        "bad JSON: {what} must be a JSON object, not {found}"
    ))
}

fn default_priority() -> u8 {
    mqlite::DEFAULT_PRIORITY
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RepeatJson {
    pub period_ms: u64,
    pub remaining: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PropertyJson {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: serde_json::Value,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterJson {
    pub original_queue: String,
    pub original_id: String,
    pub reason: String,
    pub last_failure: String,
    pub delivery_count: u32,
    pub first_failure_ms: u64,
    pub last_failure_ms: u64,
}

impl DeadLetterJson {
    pub fn of(d: &DeadLetterInfo) -> Self {
        DeadLetterJson {
            original_queue: d.original_queue.clone(),
            original_id: d.original_id.to_string(),
            reason: d.reason.as_str().to_string(),
            last_failure: d.last_failure.clone(),
            delivery_count: d.delivery_count,
            first_failure_ms: d.first_failure_ms,
            last_failure_ms: d.last_failure_ms,
        }
    }

    fn to_info(&self) -> Result<DeadLetterInfo, String> {
        let wrap = |e: crate::error::CliError| format!("dead_letter: {}", e.message);
        // The queue a replay sends it back to: the rule of every queue name (as `queue`), so
        // that no store holds a dead letter that cannot be replayed.
        mqlite::validate_queue_name(&self.original_queue)
            .map_err(|e| format!("dead_letter.original_queue: {}", e.message()))?;
        // Review r4 #17: a replay would put it back into a dead-letter queue as a plain
        // message, which no `dlq` command sees.
        if crate::open::is_dlq(&self.original_queue) {
            return Err(format!(
                "dead_letter.original_queue: {:?} is a dead-letter queue (DLQ, DLQ.*), which a \
                 dead letter cannot be replayed into; name the queue it should go back to",
                self.original_queue
            ));
        }
        let original_id = parse::id(&self.original_id).map_err(wrap)?;
        if original_id.0 == 0 {
            return Err("dead_letter.original_id: ID:0 is no message id (ids start at 1)".into());
        }
        let reason = parse::reason(&self.reason).map_err(wrap)?;
        // Values the library never writes (issue 15): a dead letter's first failure is not
        // after its last, and a rejected or redelivered-out message was delivered at least once.
        if self.first_failure_ms > self.last_failure_ms {
            return Err(format!(
                "dead_letter.first_failure_ms {} is after last_failure_ms {}",
                self.first_failure_ms, self.last_failure_ms
            ));
        }
        if self.delivery_count == 0
            && matches!(
                reason,
                mqlite::DeadLetterReason::Rejected | mqlite::DeadLetterReason::MaxRedeliveries
            )
        {
            return Err(format!(
                "dead_letter.delivery_count is 0 with reason {:?} (a message rejected or out of \
                 redeliveries was delivered at least once)",
                self.reason
            ));
        }
        Ok(DeadLetterInfo {
            original_queue: self.original_queue.clone(),
            original_id,
            reason,
            last_failure: self.last_failure.clone(),
            delivery_count: self.delivery_count,
            first_failure_ms: self.first_failure_ms,
            last_failure_ms: self.last_failure_ms,
        })
    }
}

impl PropertyJson {
    pub fn of(name: &str, v: &Value) -> Self {
        let (kind, value) = match v {
            Value::Str(s) => ("str", serde_json::Value::from(s.as_str())),
            Value::Int(i) => ("int", serde_json::Value::from(*i)),
            Value::Float(f) => (
                "float",
                match parse::non_finite(*f) {
                    Some(text) => serde_json::Value::from(text),
                    None => serde_json::Value::from(*f),
                },
            ),
            Value::Bool(b) => ("bool", serde_json::Value::from(*b)),
            Value::Bytes(b) => ("bytes", serde_json::Value::from(B64.encode(b))),
        };
        PropertyJson {
            name: name.to_string(),
            kind: kind.to_string(),
            value,
        }
    }

    fn to_value(&self) -> Result<Value, String> {
        use serde_json::Value as J;
        parse::property_name(&self.name).map_err(|e| format!("property {:?}: {e}", self.name))?;
        let bad = |want: &str| {
            format!(
                "property {:?}: type {} needs {want}, got {}",
                self.name, self.kind, self.value
            )
        };
        Ok(match (self.kind.as_str(), &self.value) {
            ("str", J::String(s)) => Value::Str(s.clone()),
            ("str", _) => return Err(bad("a string")),
            ("int", J::Number(n)) => Value::Int(n.as_i64().ok_or_else(|| bad("a 64-bit integer"))?),
            ("int", _) => return Err(bad("an integer")),
            ("float", J::Number(n)) => Value::Float(n.as_f64().ok_or_else(|| bad("a number"))?),
            ("float", J::String(s)) => Value::Float(parse::float(s).ok_or_else(|| {
                bad("a number, or \"NaN\", \"Infinity\", \"-Infinity\", \"NaN:0x<bits>\"")
            })?),
            ("float", _) => return Err(bad("a number")),
            ("bool", J::Bool(b)) => Value::Bool(*b),
            ("bool", _) => return Err(bad("true or false")),
            ("bytes", J::String(s)) => Value::Bytes(
                B64.decode(s)
                    .map_err(|e| format!("property {:?}: invalid base64 ({e})", self.name))?,
            ),
            ("bytes", _) => return Err(bad("a base64 string")),
            (other, _) => {
                return Err(format!(
                    "property {:?}: unknown type {other:?} (one of {})",
                    self.name,
                    parse::TYPES.join(", ")
                ))
            }
        })
    }
}

impl MessageJson {
    /// The JSON form of a stored message of `queue`; `body` false leaves the body out.
    pub fn of(queue: &str, m: &Message, deliver_at_ms: u64, body: bool) -> Self {
        MessageJson {
            queue: queue.to_string(),
            id: m.id().map(|i| i.to_string()),
            timestamp_ms: Some(m.timestamp_ms()),
            expires_at_ms: Some(m.expires_at_ms()),
            deliver_at_ms,
            priority: m.get_priority(),
            correlation_id: m.get_correlation_id().map(str::to_string),
            group: m.get_group().map(str::to_string),
            dedup_key: m.get_dedup_key().map(str::to_string),
            repeat: m.get_repeat().map(|(period_ms, remaining)| RepeatJson {
                period_ms,
                remaining,
            }),
            properties: m
                .properties()
                .iter()
                .map(|(k, v)| PropertyJson::of(k, v))
                .collect(),
            dead_letter: m.dead_letter_info().map(DeadLetterJson::of),
            topic: m.topic().map(str::to_string),
            body: body.then(|| B64.encode(m.body())),
        }
    }

    /// The message to store: every header restored; `now_ms` stands in for a missing send time.
    /// `queue_given` (`import --queue`): the line's own `queue` is ignored, so not checked
    /// either (a fix-up of an export with a bad queue name is what `--queue` is for).
    /// The error says which field is wrong (the caller adds the line number).
    pub fn to_message(&self, now_ms: u64, queue_given: bool) -> Result<Message, String> {
        let body = self.body.as_deref().ok_or("missing field `body`")?;
        let body = B64
            .decode(body)
            .map_err(|e| format!("body: invalid base64 ({e})"))?;
        if self.priority > 9 {
            return Err(format!("priority {} is out of range 0–9", self.priority));
        }
        if !queue_given {
            mqlite::validate_queue_name(&self.queue)
                .map_err(|e| format!("queue: {}", e.message()))?;
        }
        // Ids, times and keys the library never writes are refused here, naming the field,
        // rather than stored as what no send could have made (issue 15).
        if let Some(id) = &self.id {
            match parse::id(id) {
                Ok(i) if i.0 > 0 => {}
                _ => return Err(format!("id: {id:?} is not a message id (ID:<n>, n from 1)")),
            }
        }
        // A time may be any u64 (a TTL or delay saturates at u64::MAX), but a message never
        // expires before it was sent (0 means never).
        if let (Some(e), Some(t)) = (self.expires_at_ms, self.timestamp_ms) {
            if e != 0 && e < t {
                return Err(format!(
                    "expires_at_ms {e} is before timestamp_ms {t} (a TTL is at least 1 ms; 0 \
                     means never)"
                ));
            }
        }
        if let Some(k) = self
            .dedup_key
            .as_deref()
            .filter(|k| mqlite::is_reserved_dedup_key(k))
        {
            return Err(format!(
                "dedup_key {k:?} has the reserved form of a client's automatic key (U+0001 \
                 then \"mq\"), which no send stores"
            ));
        }
        let mut m = Message::new(body).priority(self.priority);
        for (i, p) in self.properties.iter().enumerate() {
            // One value a name (export writes each once): a second would silently replace
            // the first, and the round trip would not be exact.
            if self.properties[..i].iter().any(|q| q.name == p.name) {
                return Err(format!("property {:?} is given twice", p.name));
            }
            m.set_property(p.name.clone(), p.to_value()?);
        }
        if let Some(c) = &self.correlation_id {
            m = m.correlation_id(c.clone());
        }
        if let Some(g) = &self.group {
            m = m.group(g.clone());
        }
        if let Some(k) = &self.dedup_key {
            m = m.dedup_key(k.clone());
        }
        if let Some(r) = &self.repeat {
            if r.remaining == 0 || r.period_ms == 0 {
                return Err("repeat: period_ms and remaining must be at least 1".into());
            }
            m = m.repeat(std::time::Duration::from_millis(r.period_ms), r.remaining);
        }
        if self.deliver_at_ms != 0 {
            m = m.deliver_at_ms(self.deliver_at_ms);
        }
        if let Some(d) = &self.dead_letter {
            m = m.restore_dead_letter_info(d.to_info()?);
        }
        if let Some(t) = &self.topic {
            mqlite::selector::check_topic_name(t).map_err(|e| format!("topic: {}", e.message()))?;
            m = m.restore_topic(t.clone());
        }
        m = m.restore_times(
            self.timestamp_ms.unwrap_or(now_ms),
            self.expires_at_ms.unwrap_or(0),
        );
        Ok(m)
    }
}
