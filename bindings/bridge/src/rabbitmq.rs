//! RabbitMQ (lapin, AMQP 0-9-1): an exchange + routing key as an outbound target (publisher
//! confirms, persistent, mandatory), a queue consumed with manual acks as an inbound source.
//! Each route has its own connection, rebuilt by the route after a failure.
//!
//! AMQP headers are typed, so properties keep their types natively: string → long string,
//! integer → signed 64-bit, float → double (finite only: a NaN or an infinity is refused, see
//! `to_amqp`), boolean → boolean, bytes → byte array.

use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ConnectionStatus,
    ExchangeKind,
};
use mqlite::{Message, Value, DEFAULT_PRIORITY};

use crate::broker::{Confirm, Confirmed, Failure, Incoming, Sink, Source};
use crate::config::{RabbitServer, RabbitSource, RabbitTarget};
use crate::mapping::{
    self, CORRELATION_ID, GROUP, TIMESTAMP, TIMESTAMP_PROPERTY, TOPIC, TOPIC_PROPERTY,
};

/// Prefix of the properties that mirror AMQP's basic properties without an mqlite field.
const AMQP_PREFIX: &str = "amqp.";
/// The basic properties mirrored as `amqp.<name>` properties, both ways.
const MIRRORED: [&str; 5] = [
    "content_type",
    "content_encoding",
    "type",
    "reply_to",
    "app_id",
];
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

async fn open(server: &RabbitServer) -> Result<(Connection, Channel), Failure> {
    let conn = tokio::time::timeout(
        CONNECT_TIMEOUT,
        Connection::connect(&server.url, ConnectionProperties::default()),
    )
    .await
    .map_err(|_| Failure::Transient("rabbitmq: connecting timed out".to_string()))?
    .map_err(|e| connect_failure(&server.url, &e))?;
    let ch = conn
        .create_channel()
        .await
        .map_err(|e| Failure::Transient(format!("rabbitmq: opening a channel: {e}")))?;
    Ok((conn, ch))
}

/// `host:port` of an AMQP URL, without the credentials (for error texts).
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority.rsplit_once('@').map_or(authority, |(_, h)| h)
}

/// Sorts a failed connection attempt. The broker answering with a refusal — a wrong user or
/// password (403 ACCESS_REFUSED), a vhost that does not exist or that the user may not use
/// (530 NOT_ALLOWED), a refused authentication mechanism — or a server that does not speak
/// AMQP 0-9-1 at all (a NATS port, say) is a misconfiguration: `Refused`, logged at ERROR on
/// every attempt as the README promises for misconfiguration (review r9 #2, #6: they were
/// logged once as "broker not reachable", then retried silently). Anything else (refused or
/// reset TCP connections, timeouts, a broker closing for shutdown) is an outage.
fn connect_failure(url: &str, e: &lapin::Error) -> Failure {
    use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
    let text = format!("rabbitmq: connecting to {}: {e}", authority(url));
    match e.kind() {
        lapin::ErrorKind::ProtocolError(p)
            if matches!(
                p.kind(),
                AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)
                    | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED)
            ) =>
        {
            Failure::Refused(format!(
                "{text} (the broker refused the user, password or vhost of [rabbitmq] url)"
            ))
        }
        lapin::ErrorKind::AuthProviderError(_) => Failure::Refused(text),
        lapin::ErrorKind::ParsingError(_) | lapin::ErrorKind::InvalidProtocolVersion(_) => {
            Failure::Refused(format!(
                "rabbitmq: the server at {} did not answer as AMQP 0-9-1 (is it another \
                 broker's port, NATS's say?): {e}",
                authority(url)
            ))
        }
        _ => Failure::Transient(text),
    }
}

fn short(s: &str, what: &str) -> Result<ShortString, Failure> {
    ShortString::try_new(s)
        .map_err(|_| Failure::Refused(format!("mapping: {what} is longer than 255 bytes")))
}

/// The AMQP properties and headers of `msg`.
fn to_amqp(msg: &Message, id: &str, now_ms: u64) -> Result<BasicProperties, Failure> {
    let mut headers = FieldTable::default();
    let mut props = BasicProperties::default()
        .with_message_id(short(id, "the message id")?)
        .with_delivery_mode(2)
        .with_priority(msg.get_priority());
    for (key, value) in msg.properties() {
        if let (Some(name), Value::Str(s)) = (key.strip_prefix(AMQP_PREFIX), value) {
            if let (true, Ok(v)) = (MIRRORED.contains(&name), ShortString::try_new(s.as_str())) {
                props = match name {
                    "content_type" => props.with_content_type(v),
                    "content_encoding" => props.with_content_encoding(v),
                    "type" => props.with_type(v),
                    "reply_to" => props.with_reply_to(v),
                    _ => props.with_app_id(v),
                };
                continue;
            }
        }
        let v = match value {
            Value::Str(s) => AMQPValue::LongString(LongString::from(s.as_str())),
            Value::Int(i) => AMQPValue::LongLongInt(*i),
            // RabbitMQ's header table parser takes only finite doubles: a NaN or an infinity
            // makes it close the whole connection (INTERNAL_ERROR), and the message, given
            // back, would close every later connection too (review r7 #1). Refused before
            // publishing: nacked under the queue's redelivery policy, ending in its DLQ.
            Value::Float(f) if !f.is_finite() => {
                return Err(Failure::Refused(format!(
                    "mapping: property {key:?} is the float {f}, which RabbitMQ cannot carry \
                     (AMQP headers take finite doubles only)"
                )))
            }
            Value::Float(f) => AMQPValue::Double(*f),
            Value::Bool(b) => AMQPValue::Boolean(*b),
            Value::Bytes(b) => AMQPValue::ByteArray(b.as_slice().into()),
        };
        // A reserved name travels escaped, or it would collide with the fields below.
        let name = mapping::escape_reserved(key);
        headers.insert(short(&name, &format!("property name {key:?}"))?, v);
    }
    if let Some(ttl) = mapping::remaining_ttl_ms(msg, now_ms) {
        props = props.with_expiration(short(&ttl.to_string(), "expiration")?);
    }
    if let Some(c) = msg.get_correlation_id() {
        match ShortString::try_new(c) {
            Ok(c) => props = props.with_correlation_id(c),
            Err(_) => {
                headers.insert(CORRELATION_ID.into(), AMQPValue::LongString(c.into()));
            }
        }
    }
    if let Some(g) = msg.get_group() {
        headers.insert(GROUP.into(), AMQPValue::LongString(g.into()));
    }
    if let Some(t) = msg.topic() {
        headers.insert(TOPIC.into(), AMQPValue::LongString(t.into()));
    }
    if msg.timestamp_ms() > 0 {
        props = props.with_timestamp(msg.timestamp_ms() / 1000);
        headers.insert(
            TIMESTAMP.into(),
            AMQPValue::LongLongInt(msg.timestamp_ms() as i64),
        );
    }
    Ok(props.with_headers(headers))
}

/// An AMQP header value as a property value (`None` for void).
fn from_amqp_value(v: &AMQPValue) -> Option<Value> {
    Some(match v {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(i) => Value::Int(*i as i64),
        AMQPValue::ShortShortUInt(i) => Value::Int(*i as i64),
        AMQPValue::ShortInt(i) => Value::Int(*i as i64),
        AMQPValue::ShortUInt(i) => Value::Int(*i as i64),
        AMQPValue::LongInt(i) => Value::Int(*i as i64),
        AMQPValue::LongUInt(i) => Value::Int(*i as i64),
        AMQPValue::LongLongInt(i) => Value::Int(*i),
        AMQPValue::Timestamp(t) => Value::Int(*t as i64),
        AMQPValue::Float(f) => Value::Float(*f as f64),
        AMQPValue::Double(f) => Value::Float(*f),
        AMQPValue::ShortString(s) => Value::Str(s.as_str().to_string()),
        AMQPValue::LongString(s) => match std::str::from_utf8(s.as_bytes()) {
            Ok(s) => Value::Str(s.to_string()),
            Err(_) => Value::Bytes(s.as_bytes().to_vec()),
        },
        AMQPValue::ByteArray(b) => Value::Bytes(b.as_slice().to_vec()),
        AMQPValue::DecimalValue(d) => Value::Str(decimal_text(d.value, d.scale)),
        // Nested tables and arrays have no property type: JSON text, a stable format any
        // consumer can parse (review r3 #24: it was lapin's debug dump).
        AMQPValue::FieldArray(_) | AMQPValue::FieldTable(_) => Value::Str(amqp_json(v).to_string()),
        AMQPValue::Void => return None,
    })
}

/// An AMQP decimal (`value` × 10^-`scale`) as plain decimal text, exact and with the scale's
/// digits: (15, 1) → `1.5`, (5, 3) → `0.005`, (100, 2) → `1.00`, (7, 0) → `7`.
fn decimal_text(value: u32, scale: u8) -> String {
    let digits = value.to_string();
    let scale = scale as usize;
    if scale == 0 {
        return digits;
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{int}.{frac}")
}

/// A nested AMQP value as JSON: tables → objects, arrays → arrays, integers and finite floats
/// → numbers (a NaN or infinity → null), booleans, strings (a long string that is not UTF-8
/// and a byte array → base64 text, standard alphabet), a decimal → its exact text (`"1.5"`),
/// void → null.
fn amqp_json(v: &AMQPValue) -> serde_json::Value {
    use base64::Engine as _;
    use serde_json::Value as J;
    let b64 = |b: &[u8]| J::String(base64::engine::general_purpose::STANDARD.encode(b));
    match v {
        AMQPValue::Boolean(b) => J::Bool(*b),
        AMQPValue::ShortShortInt(i) => J::from(*i),
        AMQPValue::ShortShortUInt(i) => J::from(*i),
        AMQPValue::ShortInt(i) => J::from(*i),
        AMQPValue::ShortUInt(i) => J::from(*i),
        AMQPValue::LongInt(i) => J::from(*i),
        AMQPValue::LongUInt(i) => J::from(*i),
        AMQPValue::LongLongInt(i) => J::from(*i),
        AMQPValue::Timestamp(t) => J::from(*t),
        AMQPValue::Float(f) => serde_json::Number::from_f64(*f as f64).map_or(J::Null, J::Number),
        AMQPValue::Double(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        AMQPValue::ShortString(s) => J::String(s.as_str().to_string()),
        AMQPValue::LongString(s) => match std::str::from_utf8(s.as_bytes()) {
            Ok(s) => J::String(s.to_string()),
            Err(_) => b64(s.as_bytes()),
        },
        AMQPValue::ByteArray(b) => b64(b.as_slice()),
        AMQPValue::DecimalValue(d) => J::String(decimal_text(d.value, d.scale)),
        AMQPValue::FieldArray(a) => J::Array(a.as_slice().iter().map(amqp_json).collect()),
        AMQPValue::FieldTable(t) => J::Object(
            t.inner()
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), amqp_json(v)))
                .collect(),
        ),
        AMQPValue::Void => J::Null,
    }
}

/// The message to store for an AMQP delivery.
fn from_amqp(d: &Delivery) -> Message {
    let p = &d.properties;
    let mut msg = Message::new(d.data.as_slice());
    let mut timestamp = p.timestamp().map(|t| t.saturating_mul(1000));
    if let Some(h) = p.headers() {
        for (k, v) in h.inner() {
            let Some(value) = from_amqp_value(v) else {
                continue;
            };
            match (k.as_str(), value) {
                (GROUP, Value::Str(g)) => msg = msg.group(g),
                (CORRELATION_ID, Value::Str(c)) => msg = msg.correlation_id(c),
                (TIMESTAMP, Value::Int(t)) => timestamp = Some(t as u64),
                (TOPIC, Value::Str(t)) => msg.set_property(TOPIC_PROPERTY, t),
                (k, value) => {
                    let name = mapping::property_name(&mapping::unescape_reserved(k)).into_owned();
                    // Two names mapped to one (`""` and `"%"`): the first stays.
                    if name == k || msg.get_property(&name).is_none() {
                        msg.set_property(name, value)
                    }
                }
            }
        }
    }
    if let (Some(c), None) = (p.correlation_id(), msg.get_correlation_id()) {
        msg = msg.correlation_id(c.as_str());
    }
    msg = msg.priority(p.priority().unwrap_or(DEFAULT_PRIORITY).min(9));
    if let Some(ms) = p
        .expiration()
        .as_ref()
        .and_then(|e| e.as_str().parse::<u64>().ok())
    {
        msg = msg.ttl(Duration::from_millis(ms.max(1)));
    }
    let mirrored = [
        ("content_type", p.content_type()),
        ("content_encoding", p.content_encoding()),
        ("type", p.kind()),
        ("reply_to", p.reply_to()),
        ("app_id", p.app_id()),
        ("message_id", p.message_id()),
    ];
    for (name, v) in mirrored {
        if let Some(v) = v {
            msg.set_property(format!("{AMQP_PREFIX}{name}"), v.as_str());
        }
    }
    if let Some(t) = timestamp {
        msg.set_property(TIMESTAMP_PROPERTY, t as i64);
    }
    msg
}

/// An outbound route's target.
pub(crate) struct RabbitSink {
    server: RabbitServer,
    target: RabbitTarget,
    conn: Option<(Connection, Channel)>,
}

impl RabbitSink {
    pub fn new(server: RabbitServer, target: RabbitTarget) -> Self {
        RabbitSink {
            server,
            target,
            conn: None,
        }
    }
}

/// The broker's reply in an error that closed a channel: `NOT_FOUND - no exchange 'x' in
/// vhost '/' (404)`.
fn reply(e: &lapin::Error) -> String {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(p) => format!("{} ({})", p.get_message(), p.get_id()),
        _ => e.to_string(),
    }
}

/// Whether the broker answered 404 NOT_FOUND.
fn not_found(e: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(p)
        if matches!(p.kind(), AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND)))
}

/// Whether a channel error the broker raised over a publish is the route's fault rather than
/// the message's (AMQP 0-9-1 reply codes): 404 NOT_FOUND (the exchange is missing), 403
/// ACCESS_REFUSED (the user may not write to it) and 405 RESOURCE_LOCKED (another connection
/// holds it exclusively) hold for every message of the route until an operator acts — a
/// misconfiguration, logged at ERROR and retried with backoff (review r8 #2: a 403 nacked, and
/// so dead-lettered, the whole backlog). The others a publish can raise — 311
/// CONTENT_TOO_LARGE, 312 NO_ROUTE, 313 NO_CONSUMERS, 406 PRECONDITION_FAILED (a message over
/// the broker's max_message_size) — concern the message itself.
fn route_at_fault(kind: &lapin::protocol::AMQPErrorKind) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(
        kind,
        AMQPErrorKind::Soft(
            AMQPSoftError::NOTFOUND | AMQPSoftError::ACCESSREFUSED | AMQPSoftError::RESOURCELOCKED
        )
    )
}

/// Sorts a failed publish or confirm on `ch`: a channel error that is the route's fault (see
/// [`route_at_fault`]; the broker then closes the channel) is the target, not the message, at
/// fault; another channel error the broker raised for this message is a refusal; a channel the
/// broker closed (for an earlier publish) while the connection stays up is the target again;
/// anything else means the connection is gone.
fn classify(exchange: &str, conn: &ConnectionStatus, ch: &Channel, e: lapin::Error) -> Failure {
    let at_fault =
        matches!(e.kind(), lapin::ErrorKind::ProtocolError(p) if route_at_fault(p.kind()));
    if at_fault {
        let missing = if not_found(&e) { " not found" } else { "" };
        Failure::Target(format!(
            "rabbitmq: exchange {exchange:?}{missing}: {}",
            reply(&e)
        ))
    } else if e.is_amqp_soft_error() {
        Failure::Refused(format!("rabbitmq: {}", reply(&e)))
    } else if conn.connected() && !ch.status().connected() {
        Failure::Target(format!("rabbitmq: the broker closed the channel: {e}"))
    } else {
        Failure::Transient(format!("rabbitmq: {e}"))
    }
}

impl RabbitSink {
    /// Checks that the exchange exists (a passive declare, which creates nothing), so that a
    /// missing one is reported at connect, with the broker's reply, rather than by a publish
    /// that closes the channel. The default exchange (`""`) always exists, but routes by queue
    /// name: there the routing key's queue is checked the same way (review r8 #8: a missing
    /// target queue made every publish unroutable, and the backlog was dead-lettered).
    async fn check_exchange(&self, ch: &Channel) -> Result<(), Failure> {
        let name = self.target.exchange.as_str();
        if name.is_empty() {
            let queue = self.target.routing_key.as_str();
            let passive = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            return match ch
                .queue_declare(short(queue, "routing key")?, passive, FieldTable::default())
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if refused(&e) => Err(Failure::Target(format!(
                    "rabbitmq: queue {queue:?} (the routing key of the default exchange){}: {}",
                    if not_found(&e) { " not found" } else { "" },
                    reply(&e)
                ))),
                Err(e) => Err(Failure::Transient(format!(
                    "rabbitmq: checking queue {queue:?}: {e}"
                ))),
            };
        }
        let passive = ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let kind = ExchangeKind::Direct; // Ignored by a passive declare.
        match ch
            .exchange_declare(
                short(name, "exchange")?,
                kind,
                passive,
                FieldTable::default(),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if refused(&e) => Err(Failure::Refused(format!(
                "rabbitmq: exchange {name:?}{}: {}",
                if not_found(&e) { " not found" } else { "" },
                reply(&e)
            ))),
            Err(e) => Err(Failure::Transient(format!(
                "rabbitmq: checking exchange {name:?}: {e}"
            ))),
        }
    }
}

impl Sink for RabbitSink {
    async fn connect(&mut self) -> Result<(), Failure> {
        if self.health().is_ok() {
            return Ok(());
        }
        drop_connection(self.conn.take());
        let (conn, ch) = open(&self.server).await?;
        let ready = async {
            self.check_exchange(&ch).await?;
            ch.confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|e| Failure::Transient(format!("rabbitmq: confirm.select: {e}")))
        };
        if let Err(f) = ready.await {
            drop_connection(Some((conn, ch)));
            return Err(f);
        }
        self.conn = Some((conn, ch));
        Ok(())
    }

    async fn publish(&mut self, msg: &Message, id: &str) -> Result<Confirm, Failure> {
        let Some((conn, ch)) = &self.conn else {
            return Err(Failure::Transient("rabbitmq: not connected".into()));
        };
        let props = to_amqp(msg, id, mapping::now_ms())?;
        let confirm = ch
            .basic_publish(
                short(&self.target.exchange, "exchange")?,
                short(&self.target.routing_key, "routing key")?,
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                msg.body(),
                props,
            )
            .await
            .map_err(|e| classify(&self.target.exchange, conn.status(), ch, e))?;
        let exchange = self.target.exchange.clone();
        let routing_key = self.target.routing_key.clone();
        let (conn, ch) = (conn.status().clone(), ch.clone());
        Ok(Box::pin(async move {
            // The route bounds the wait by `ack_timeout`.
            match confirm.await {
                Err(e) => Err(classify(&exchange, &conn, &ch, e)),
                Ok(Confirmation::Ack(None)) => Ok(Confirmed { duplicate: false }),
                // The default exchange routes by queue name: unroutable there means the target
                // queue is gone (deleted while the route runs), the route's fault, not the
                // message's — given back, and connect reports the missing queue (r8 #8).
                Ok(Confirmation::Ack(Some(r))) if exchange.is_empty() && r.reply_code == 312 => {
                    Err(Failure::Target(format!(
                        "rabbitmq: queue {routing_key:?} (the routing key of the default \
                         exchange) took no message: {} {}",
                        r.reply_code, r.reply_text
                    )))
                }
                Ok(Confirmation::Ack(Some(r))) | Ok(Confirmation::Nack(Some(r))) => {
                    // Named with where it was sent, so that a dead letter's text says which
                    // binding is missing (review r11 #9).
                    Err(Failure::Refused(format!(
                        "rabbitmq: returned as unroutable by exchange {exchange:?} with routing \
                         key {routing_key:?}: {} {}",
                        r.reply_code, r.reply_text
                    )))
                }
                // A nack without a returned message is the broker's back-pressure (a queue
                // at its `x-max-length` with `x-overflow = reject-publish`) or an internal
                // error, not this message's fault (review r3 #13: it dead-lettered the whole
                // backlog within seconds): given back, published again after the backoff.
                Ok(Confirmation::Nack(None)) => Err(Failure::Full(
                    "rabbitmq: the broker nacked the message (a queue at its x-max-length with \
                     reject-publish?); it waits and is published again"
                        .into(),
                )),
                Ok(Confirmation::NotRequested) => Err(Failure::Transient(
                    "rabbitmq: publisher confirms are off on this channel".into(),
                )),
            }
        }))
    }

    fn disconnect(&mut self) {
        drop_connection(self.conn.take());
    }

    fn health(&self) -> Result<(), Failure> {
        match &self.conn {
            Some((c, ch)) if c.status().connected() && ch.status().connected() => Ok(()),
            // Closed over a publish (a missing exchange): setting up again finds out why.
            Some((c, _)) if c.status().connected() => Err(Failure::Target(
                "rabbitmq: the broker closed the channel".into(),
            )),
            _ => Err(Failure::Transient("rabbitmq: connection lost".into())),
        }
    }

    fn ack_timeout(&self) -> Duration {
        self.server.ack_timeout
    }
}

/// Whether the broker refused a request for what the route names — a missing queue
/// (404 NOT_FOUND) or one this user may not use (403 ACCESS_REFUSED) — rather than failed.
fn refused(e: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(p)
        if matches!(p.kind(), AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND | AMQPSoftError::ACCESSREFUSED)))
}

/// Closes a connection in the background (the broker may be gone; nothing waits for it).
fn drop_connection(conn: Option<(Connection, Channel)>) {
    if let Some((c, _)) = conn {
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(1), c.close(200, "bye".into())).await;
        });
    }
}

/// An inbound route's source: a queue consumed with manual acks and a prefetch of the window.
pub(crate) struct RabbitConsumer {
    server: RabbitServer,
    source: RabbitSource,
    prefetch: u16,
    conn: Option<(Connection, Channel)>,
    consumer: Option<lapin::Consumer>,
}

impl RabbitConsumer {
    pub fn new(server: RabbitServer, source: RabbitSource, window: usize) -> Self {
        RabbitConsumer {
            server,
            source,
            prefetch: window.min(u16::MAX as usize) as u16,
            conn: None,
            consumer: None,
        }
    }

    fn channel(&self) -> Result<&Channel, String> {
        self.conn
            .as_ref()
            .map(|c| &c.1)
            .ok_or_else(|| "rabbitmq: not connected".to_string())
    }
}

impl Source for RabbitConsumer {
    type Msg = Delivery;

    async fn connect(&mut self) -> Result<(), Failure> {
        let (conn, ch) = open(&self.server).await?;
        ch.basic_qos(self.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| Failure::Transient(format!("rabbitmq: basic.qos: {e}")))?;
        let q = ShortString::try_new(self.source.queue.as_str())
            .map_err(|_| Failure::Refused("rabbitmq: queue name longer than 255 bytes".into()))?;
        let consumed = ch
            .basic_consume(
                q,
                "mqlite-bridge".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await;
        let consumer = match consumed {
            Ok(c) => c,
            Err(e) => {
                let text = format!("rabbitmq: consuming {:?}: {e}", self.source.queue);
                drop_connection(Some((conn, ch)));
                return Err(if refused(&e) {
                    Failure::Refused(text)
                } else {
                    Failure::Transient(text)
                });
            }
        };
        self.conn = Some((conn, ch));
        self.consumer = Some(consumer);
        Ok(())
    }

    fn is_connected(&self) -> bool {
        self.consumer.is_some()
            && self
                .conn
                .as_ref()
                .is_some_and(|(c, ch)| c.status().connected() && ch.status().connected())
    }

    async fn next_batch(&mut self, max: usize) -> Result<Vec<Self::Msg>, String> {
        let Some(consumer) = self.consumer.as_mut() else {
            return Err("rabbitmq: not consuming".into());
        };
        let mut out = Vec::new();
        let mut item = consumer.next().await;
        loop {
            match item {
                Some(Ok(d)) => out.push(d),
                Some(Err(e)) if out.is_empty() => return Err(format!("rabbitmq: consuming: {e}")),
                None if out.is_empty() => return Err("rabbitmq: the consumer was cancelled".into()),
                _ => break,
            }
            if out.len() >= max {
                break;
            }
            match consumer.next().now_or_never() {
                Some(next) => item = next,
                None => break,
            }
        }
        Ok(out)
    }

    fn incoming(&self, d: &Self::Msg, _now_ms: u64) -> Incoming {
        Incoming {
            message: from_amqp(d),
            dedup_key: d
                .properties
                .message_id()
                .as_ref()
                .map(|id| format!("amqp:{}:{}", self.source.queue, id.as_str())),
            redelivered: d.redelivered,
        }
    }

    async fn ack(&mut self, msgs: Vec<Self::Msg>) -> Result<(), String> {
        // Deliveries of one channel carry increasing tags: one ack with `multiple` covers the
        // batch (earlier batches are settled already).
        let Some(last) = msgs.iter().map(|d| d.delivery_tag).max() else {
            return Ok(());
        };
        self.channel()?
            .basic_ack(last, BasicAckOptions { multiple: true })
            .await
            .map_err(|e| format!("rabbitmq: basic.ack: {e}"))
    }

    fn reject_keeps(&self) -> bool {
        false
    }

    async fn reject(&mut self, m: Self::Msg) -> Result<(), String> {
        // Not requeued: the queue's dead-letter exchange gets it, if it has one.
        self.channel()?
            .basic_reject(m.delivery_tag, BasicRejectOptions { requeue: false })
            .await
            .map_err(|e| format!("rabbitmq: basic.reject: {e}"))
    }

    async fn requeue(&mut self, msgs: Vec<Self::Msg>) -> Result<(), String> {
        let Some(last) = msgs.iter().map(|d| d.delivery_tag).max() else {
            return Ok(());
        };
        self.channel()?
            .basic_nack(
                last,
                BasicNackOptions {
                    multiple: true,
                    requeue: true,
                },
            )
            .await
            .map_err(|e| format!("rabbitmq: basic.nack: {e}"))
    }

    async fn lag(&mut self) -> Option<u64> {
        let ch = self.channel().ok()?;
        let q = ShortString::try_new(self.source.queue.as_str()).ok()?;
        let opts = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let info = ch
            .queue_declare(q, opts, FieldTable::default())
            .await
            .ok()?;
        Some(info.message_count() as u64)
    }

    fn disconnect(&mut self) {
        self.consumer = None;
        drop_connection(self.conn.take());
    }

    fn redelivery_delay(&self) -> Duration {
        Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_and_nested_values_become_plain_text_and_json() {
        assert_eq!(decimal_text(15, 1), "1.5");
        assert_eq!(decimal_text(5, 3), "0.005");
        assert_eq!(decimal_text(100, 2), "1.00");
        assert_eq!(decimal_text(7, 0), "7");
        let mut t = FieldTable::default();
        t.insert(
            "k".into(),
            AMQPValue::FieldArray(vec![AMQPValue::LongInt(1), AMQPValue::LongInt(2)].into()),
        );
        t.insert(
            "d".into(),
            AMQPValue::DecimalValue(lapin::types::DecimalValue {
                scale: 1,
                value: 15,
            }),
        );
        t.insert("x".into(), AMQPValue::ByteArray(vec![0u8, 255].into()));
        t.insert("n".into(), AMQPValue::Double(f64::NAN));
        assert_eq!(
            from_amqp_value(&AMQPValue::FieldTable(t)),
            Some(Value::Str(
                r#"{"d":"1.5","k":[1,2],"n":null,"x":"AP8="}"#.into()
            ))
        );
    }

    /// Review r8 #2: a refused access (403) nacked every message; it is the route's fault,
    /// as a missing exchange, and so is a resource another connection locks.
    #[test]
    fn permission_and_missing_targets_are_the_routes_fault_not_the_messages() {
        use lapin::protocol::{AMQPErrorKind, AMQPSoftError as S};
        for k in [S::NOTFOUND, S::ACCESSREFUSED, S::RESOURCELOCKED] {
            assert!(route_at_fault(&AMQPErrorKind::Soft(k.clone())), "{k:?}");
        }
        for k in [
            S::CONTENTTOOLARGE,
            S::NOROUTE,
            S::NOCONSUMERS,
            S::PRECONDITIONFAILED,
        ] {
            assert!(!route_at_fault(&AMQPErrorKind::Soft(k.clone())), "{k:?}");
        }
    }

    /// Review r8 #3: user properties named like the bridge's own headers were lost (and
    /// `Mqlite-Correlation-Id` replaced the correlation id); they travel escaped.
    #[test]
    fn reserved_property_names_travel_escaped_and_do_not_touch_the_fields() {
        let m = Message::new("b")
            .property("Mqlite-Group", "usergroup")
            .property("Mqlite-Timestamp", "userts")
            .property("Mqlite-Correlation-Id", "usercid")
            .property("%odd", 1i64)
            .correlation_id("C1")
            .group("G1");
        let p = to_amqp(&m, "o:ID:1", 0).unwrap();
        let h = p.headers().as_ref().unwrap().inner();
        assert_eq!(
            h.get("%4Dqlite-Correlation-Id"),
            Some(&AMQPValue::LongString("usercid".into()))
        );
        assert_eq!(h.get(GROUP), Some(&AMQPValue::LongString("G1".into())));
        assert_eq!(p.correlation_id().as_ref().map(|c| c.as_str()), Some("C1"));
    }

    #[test]
    fn properties_keep_their_amqp_types_and_fields() {
        let m = Message::new("b")
            .property("s", "text")
            .property("i", -3i64)
            .property("f", 2.5f64)
            .property("t", true)
            .property("x", vec![1u8, 2])
            .property("amqp.content_type", "application/json")
            .priority(8)
            .correlation_id("c-1")
            .group("g");
        let p = to_amqp(&m, "o:ID:1", 0).unwrap();
        assert_eq!(p.message_id().as_ref().map(|s| s.as_str()), Some("o:ID:1"));
        assert_eq!(*p.delivery_mode(), Some(2));
        assert_eq!(*p.priority(), Some(8));
        assert_eq!(
            p.content_type().as_ref().map(|s| s.as_str()),
            Some("application/json")
        );
        let h = p.headers().as_ref().unwrap().inner();
        assert_eq!(h.get("i"), Some(&AMQPValue::LongLongInt(-3)));
        assert_eq!(h.get("f"), Some(&AMQPValue::Double(2.5)));
        for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            match to_amqp(&Message::new("").property("g", f), "id", 0) {
                Err(Failure::Refused(e)) => {
                    assert!(e.contains("\"g\"") && e.contains("finite"), "{e}")
                }
                other => panic!("{f}: {:?}", other.map(|_| ())),
            }
        }
        let long = "k".repeat(256);
        assert!(matches!(
            to_amqp(&Message::new("").property(long, 1i64), "id", 0),
            Err(Failure::Refused(_))
        ));
    }
}
