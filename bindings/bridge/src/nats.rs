//! NATS JetStream (async-nats): a subject as an outbound target, a durable pull consumer with
//! explicit acks as an inbound source. The client reconnects by itself (forever); the routes
//! only wait for it and for JetStream to answer.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

use async_nats::connection::State;
use async_nats::jetstream::consumer::{pull, AckPolicy, Consumer};
use async_nats::jetstream::context::{
    AccountErrorKind, ConsumerInfoError, ConsumerInfoErrorKind, GetStreamByNameErrorKind,
    GetStreamErrorKind, PublishError, PublishErrorKind,
};
use async_nats::jetstream::stream::ConsumerErrorKind;
use async_nats::jetstream::{self, AckKind, Context, ErrorCode};
use async_nats::{HeaderMap, HeaderName, HeaderValue};
use futures_util::{FutureExt, StreamExt};
use mqlite::Message;

use crate::broker::{Confirm, Confirmed, Failure, Incoming, Sink, Source};
use crate::config::{NatsServer, NatsSource, NatsTarget};
use crate::loops::Guard;
use crate::mapping;

/// A client shared by the routes of one server: its JetStream context, and what the server
/// last refused at connect (see [`connect`]).
#[derive(Clone)]
pub(crate) struct Connection {
    pub js: Context,
    refusal: Refusal,
}

/// The server's last refusal of the client's credentials (`-ERR 'Authorization Violation'`), while
/// no connection has been made since: async-nats reports it only as an event and keeps
/// retrying, so a route would say only "not connected" (review r11 #4).
type Refusal = Arc<std::sync::Mutex<Option<String>>>;

/// Connects a client that keeps reconnecting (and connects in the background when the server
/// is not up yet), and its JetStream context.
pub(crate) async fn connect(server: &NatsServer, max_wait: Duration) -> Result<Connection, String> {
    let refusal: Refusal = Default::default();
    let seen = refusal.clone();
    let mut options = async_nats::ConnectOptions::new();
    match credentials(&server.url) {
        Some((user, Some(pass))) => options = options.user_and_password(user, pass),
        Some((token, None)) => options = options.token(token),
        None => {}
    }
    let client = options
        .event_callback(move |event| {
            let seen = seen.clone();
            async move {
                let mut r = seen.lock().unwrap_or_else(|e| e.into_inner());
                match event {
                    async_nats::Event::Connected => *r = None,
                    async_nats::Event::ServerError(
                        async_nats::ServerError::AuthorizationViolation,
                    ) => *r = Some("authorization violation".into()),
                    async_nats::Event::ClientError(async_nats::ClientError::Other(text))
                        if text.to_lowercase().contains("authoriz")
                            || text.to_lowercase().contains("authentic") =>
                    {
                        *r = Some(text)
                    }
                    _ => {}
                }
            }
        })
        .name("mqlite-bridge")
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(move |attempt| {
            (Duration::from_millis(100) * 2u32.saturating_pow(attempt.min(16) as u32)).min(max_wait)
        })
        .connect(server.url.as_str())
        .await
        .map_err(|e| format!("nats: connecting to {}: {e}", server.url))?;
    let js = jetstream::ContextBuilder::new()
        .timeout(server.ack_timeout)
        // The routes bound their own windows; the context must never refuse a publish.
        .max_ack_inflight(1 << 20)
        .build(client);
    Ok(Connection { js, refusal })
}

/// The credentials in the user part of the server URL(s) (`nats://user:password@host` or
/// `nats://token@host`), percent-decoded: async-nats 0.51 parses them but never sends them
/// (nats-io/nats.rs#1623), so a server that requires them refused every connect, even with the
/// right password (review r13 N2). The first URL that carries any gives them.
fn credentials(urls: &str) -> Option<(String, Option<String>)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    urls.split(',').find_map(|u| {
        let u = url::Url::parse(u.trim()).ok()?;
        if u.username().is_empty() {
            return None;
        }
        Some((decode(u.username()), u.password().map(decode)))
    })
}

/// How long a route waits for the shared client's first connection before it reports the
/// server as not reachable.
const FIRST_CONNECT_WAIT: Duration = Duration::from_secs(5);

/// Whether the client is connected and JetStream answers. At startup the shared client is
/// still making its first connection in the background (state `Pending`, since it retries the
/// initial connect): that is no error to report — it would stay as an idle route's
/// `last_error` — so this waits for it, up to [`FIRST_CONNECT_WAIT`] (a server that is down
/// is then reported as not connected, and the route retries with backoff).
///
/// A server that answers but has no JetStream is a misconfiguration (`Refused`: an ERROR on
/// every attempt, review r9 #2), not an outage.
async fn ready(js: &Context, refusal: &Refusal) -> Result<(), Failure> {
    let deadline = tokio::time::Instant::now() + FIRST_CONNECT_WAIT;
    // The client exposes its state but no way to await it; this runs once per connect
    // attempt, only while the first connection is being made.
    let refused = || refusal.lock().unwrap_or_else(|e| e.into_inner()).is_some();
    while js.client().connection_state() == State::Pending
        && tokio::time::Instant::now() < deadline
        && !refused()
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if js.client().connection_state() != State::Connected {
        if let Some(why) = refusal.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            // A misconfiguration (a wrong user, password or token), not an outage: an ERROR
            // every attempt naming the server's reply, as RabbitMQ's refused login is.
            return Err(Failure::Refused(format!(
                "nats: the server refused the client's credentials: {why} (check the user, \
                 password or token in [nats] url)"
            )));
        }
        return Err(Failure::Transient("nats: not connected".into()));
    }
    js.query_account().await.map(|_| ()).map_err(|e| {
        if e.kind() == AccountErrorKind::JetStreamUnavailable {
            Failure::Refused(
                "nats: the server has no JetStream (nothing answers its API; start nats-server \
                 with -js or a jetstream block)"
                    .into(),
            )
        } else {
            Failure::Transient(format!("nats: JetStream does not answer: {e}"))
        }
    })
}

/// An outbound route's target.
pub(crate) struct NatsSink {
    /// For JetStream API requests (stream lookups): each bounded by `ack_timeout`.
    js: Context,
    refusal: Refusal,
    /// For publishes: the same client, with the library's own wait for each PubAck set far
    /// beyond the route's (see [`PUBLISH_ACK_BACKSTOP`]).
    publisher: Context,
    target: NatsTarget,
    ack_timeout: Duration,
    /// The stream's duplicate window last warned about (one warning per value, not per
    /// reconnect).
    warned: Option<Duration>,
    /// The last sequence of the route's stream when last looked at (at connect, then at each
    /// overdue confirm): see [`Sink::progressing`].
    stream_seq: Option<u64>,
}

/// How long async-nats itself waits for a PubAck. The route judges overdue confirms itself,
/// from the broker's progress (`confirm_deadline`, `Sink::progressing`); the library's timer
/// starts at a confirm's first poll and knows nothing of a window of 20,000 still being
/// stored, so at the route's `ack_timeout` it turned a slow but steady stream into a lost
/// connection and everything was published again (review r11 #1). It stays only as a backstop.
const PUBLISH_ACK_BACKSTOP: Duration = Duration::from_secs(24 * 3600);

/// JetStream's default duplicate window (nats-server `duplicate_window`, 2 minutes): the time
/// within which a bridge restarted after a crash publishes its unacknowledged window again
/// without the stream storing it twice.
pub(crate) const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

impl NatsSink {
    pub fn new(conn: Connection, target: NatsTarget, ack_timeout: Duration) -> Self {
        let Connection { js, refusal } = conn;
        let publisher = jetstream::ContextBuilder::new()
            .timeout(PUBLISH_ACK_BACKSTOP.max(ack_timeout))
            // The routes bound their own windows; the context must never refuse a publish.
            .max_ack_inflight(1 << 20)
            .build(js.client());
        NatsSink {
            js,
            refusal,
            publisher,
            target,
            ack_timeout,
            warned: None,
            stream_seq: None,
        }
    }

    /// The last sequence of the stream that captures the route's subject, if JetStream tells
    /// within `ack_timeout`.
    async fn last_sequence(&self) -> Option<u64> {
        let look = async {
            let name = self
                .js
                .stream_by_subject(self.target.subject.as_str())
                .await
                .ok()?;
            let stream = self.js.get_stream(name).await.ok()?;
            Some(stream.cached_info().state.last_sequence)
        };
        tokio::time::timeout(self.ack_timeout, look)
            .await
            .ok()
            .flatten()
    }
}

fn headers(list: Vec<(String, String)>) -> Result<HeaderMap, Failure> {
    let mut h = HeaderMap::new();
    for (n, v) in list {
        let name = HeaderName::from_str(&n)
            .map_err(|_| Failure::Refused(format!("mapping: {n:?} is not a header name")))?;
        let value = HeaderValue::from_str(&v)
            .map_err(|_| Failure::Refused(format!("mapping: {v:?} is not a header value")))?;
        h.insert(name, value);
    }
    Ok(h)
}

/// Sorts a failed publish: a lost connection or a server not ready is transient; what the
/// stream says about this message (its size, say) is a refusal. "No responders" is ambiguous
/// (no stream captures the subject, or JetStream is still starting), so the stream list
/// decides; no stream is a missing target, not the message's fault (review r3 #13: a stream
/// being re-created sent the whole backlog to the dead-letter queue): the route gives the
/// message back and waits, as for a missing RabbitMQ exchange.
async fn classify(js: &Context, subject: &str, e: PublishError) -> Failure {
    let text = format!("nats: {e}");
    match e.kind() {
        PublishErrorKind::TimedOut
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::MaxAckPending => Failure::Transient(text),
        PublishErrorKind::StreamNotFound => match js.stream_by_subject(subject).await {
            Err(e) if e.kind() == GetStreamByNameErrorKind::NotFound => {
                Failure::Target(no_stream(subject))
            }
            _ => Failure::Transient(text),
        },
        PublishErrorKind::Other => {
            let server =
                std::error::Error::source(&e).and_then(|s| s.downcast_ref::<jetstream::Error>());
            // A stream at its limits with `discard: new` refuses with 503 and a store error
            // ("maximum messages exceeded", 10077) or a lack of storage: the broker is full,
            // not gone (review r3 #32: it was counted as a lost connection).
            let full = server.is_some_and(|j| {
                matches!(
                    j.error_code(),
                    ErrorCode::STREAM_STORE_FAILED
                        | ErrorCode::STORAGE_RESOURCES_EXCEEDED
                        | ErrorCode::MEMORY_RESOURCES_EXCEEDED
                        | ErrorCode::ACCOUNT_RESOURCES_EXCEEDED
                        | ErrorCode::INSUFFICIENT_RESOURCES
                )
            });
            let unavailable = server.is_some_and(|j| j.code() == 503);
            // The stream, not the message, refuses every publish: sealed, or per-message TTL
            // not allowed while the route sets `message_ttl`. A misconfiguration of the route's
            // target (an ERROR, retried with backoff, the messages waiting), not each message's
            // fault: review r11 #11 found a whole backlog dead-lettered for it.
            let stream_refuses = server.is_some_and(|j| {
                matches!(
                    j.error_code(),
                    ErrorCode::STREAM_SEALED | ErrorCode::MESSAGE_TTL_DISABLED
                )
            });
            if full {
                Failure::Full(text)
            } else if stream_refuses {
                Failure::Target(format!(
                    "{text} (the stream refuses every publish of this route)"
                ))
            } else if unavailable || js.client().connection_state() != State::Connected {
                Failure::Transient(text)
            } else {
                Failure::Refused(text)
            }
        }
        _ => Failure::Refused(text),
    }
}

fn no_stream(subject: &str) -> String {
    format!("nats: no stream captures subject {subject:?} (messages wait until one does)")
}

impl NatsSink {
    /// Warns (once per value) when the stream's `duplicate_window` is shorter than JetStream's
    /// default of 2 minutes: the broker drops a re-published message only within that window,
    /// so a bridge restarted later than it after a crash stores its last window (up to
    /// `window` messages) twice, and those doubles are not counted as `duplicates` (review
    /// r7 #4: a 1 s window doubled 256 messages over six kills, silently).
    async fn check_duplicate_window(&mut self, stream: &str) {
        let Ok(s) = self.js.get_stream(stream).await else {
            return;
        };
        let w = s.cached_info().config.duplicate_window;
        if w < DEFAULT_DUPLICATE_WINDOW && self.warned != Some(w) {
            self.warned = Some(w);
            warn!(
                subject = %self.target.subject,
                "stream {stream:?} drops re-published messages only within its duplicate_window \
                 of {}: a bridge restarted later than that after a crash publishes its \
                 unconfirmed window again and the stream keeps both copies (raise the stream's \
                 duplicate_window to at least the longest restart)",
                humantime::format_duration(w)
            );
        }
    }
}

impl Sink for NatsSink {
    /// Ready when JetStream answers and a stream captures the route's subject (`Target`
    /// otherwise: logged as an error every attempt, with backoff, until one is created).
    async fn connect(&mut self) -> Result<(), Failure> {
        ready(&self.js, &self.refusal).await?;
        match self
            .js
            .stream_by_subject(self.target.subject.as_str())
            .await
        {
            Err(e) if e.kind() == GetStreamByNameErrorKind::NotFound => {
                Err(Failure::Target(no_stream(&self.target.subject)))
            }
            Ok(stream) => {
                self.check_duplicate_window(&stream).await;
                self.stream_seq = self.last_sequence().await;
                Ok(())
            }
            // Anything else (a timeout) is for the publish to find out.
            _ => Ok(()),
        }
    }

    async fn publish(&mut self, msg: &Message, id: &str) -> Result<Confirm, Failure> {
        let list = mapping::to_string_headers(msg).map_err(|e| Failure::Refused(e.0))?;
        let mut h = headers(list)?;
        if self.target.message_ttl {
            if let Some(ms) = mapping::remaining_ttl_ms(msg, mapping::now_ms()) {
                // JetStream's per-message TTL has a resolution of one second.
                h.insert("Nats-TTL", format!("{}s", ms.div_ceil(1000)).as_str());
            }
        }
        let publish = jetstream::message::PublishMessage::build()
            .payload(msg.body().to_vec().into())
            .headers(h)
            .message_id(id);
        let subject = self.target.subject.clone();
        let js = self.js.clone();
        match self.publisher.send_publish(subject.clone(), publish).await {
            Ok(ack) => Ok(Box::pin(async move {
                match ack.await {
                    Ok(a) => Ok(Confirmed {
                        duplicate: a.duplicate,
                    }),
                    Err(e) => Err(classify(&js, &subject, e).await),
                }
            })),
            Err(e) => Err(classify(&self.js, &subject, e).await),
        }
    }

    fn disconnect(&mut self) {
        // The client reconnects by itself; nothing to drop.
    }

    fn health(&self) -> Result<(), Failure> {
        match self.js.client().connection_state() {
            State::Connected => Ok(()),
            _ => Err(Failure::Transient("nats: connection lost".into())),
        }
    }

    fn ack_timeout(&self) -> Duration {
        self.ack_timeout
    }

    /// The stream's last sequence grew since the last look: JetStream is storing (the route's
    /// window, in order), so an overdue confirm is a slow broker, not a lost one.
    async fn progressing(&mut self) -> bool {
        if self.js.client().connection_state() != State::Connected {
            return false;
        }
        let now = self.last_sequence().await;
        let grew = matches!((self.stream_seq, now), (Some(a), Some(b)) if b > a);
        if now.is_some() {
            self.stream_seq = now;
        }
        grew
    }

    /// A stream deleted under the route drops what it had not stored, and the publishes after
    /// get "no responders": a missing target, not a lost connection (review r9 #5).
    async fn explain_timeout(&mut self) -> Option<Failure> {
        if self.js.client().connection_state() != State::Connected {
            return None;
        }
        let subject = self.target.subject.as_str();
        let lookup = self.js.stream_by_subject(subject);
        match tokio::time::timeout(self.ack_timeout, lookup).await {
            Ok(Err(e)) if e.kind() == GetStreamByNameErrorKind::NotFound => {
                Some(Failure::Target(no_stream(subject)))
            }
            _ => None,
        }
    }
}

/// Refuses a consumer filter that overlaps none of the stream's subjects: a misconfiguration
/// (a typo such as `order.>` for `orders.>`), not a quiet stream (review r3 #14), reported
/// like a missing stream (an error, retried with backoff). Empty filters mean "no filter".
fn check_filters<'a>(
    filters: impl IntoIterator<Item = &'a String>,
    stream_subjects: &[String],
    consumer: &str,
    stream: &str,
) -> Result<(), Failure> {
    for f in filters.into_iter().filter(|f| !f.is_empty()) {
        if !stream_subjects
            .iter()
            .any(|s| crate::loops::subjects_overlap(f, s))
        {
            return Err(Failure::Refused(format!(
                "nats: the filter subject {f:?} of consumer {consumer:?} matches no subject of \
                 stream {stream:?} (it captures {}): the route would never receive a message",
                stream_subjects.join(", ")
            )));
        }
    }
    Ok(())
}

/// An inbound route's source: a durable pull consumer with explicit acks.
pub(crate) struct NatsConsumer {
    js: Context,
    refusal: Refusal,
    /// The route's name, for the loop check.
    route: String,
    loops: Arc<Guard>,
    source: NatsSource,
    consumer: Option<Consumer<pull::Config>>,
    messages: Option<pull::Stream>,
    /// `nats:<stream>:<creation time in ns>:` — a recreated stream restarts its sequences,
    /// so its creation time keeps old and new keys apart.
    key_prefix: String,
    ack_wait: Duration,
}

impl NatsConsumer {
    pub fn new(conn: Connection, route: &str, loops: Arc<Guard>, source: NatsSource) -> Self {
        let ack_wait = source.ack_wait;
        let Connection { js, refusal } = conn;
        NatsConsumer {
            js,
            refusal,
            route: route.to_string(),
            loops,
            source,
            consumer: None,
            messages: None,
            key_prefix: String::new(),
            ack_wait,
        }
    }
}

impl Source for NatsConsumer {
    type Msg = jetstream::Message;

    async fn connect(&mut self) -> Result<(), Failure> {
        ready(&self.js, &self.refusal).await?;
        let name = &self.source.stream;
        let stream = self.js.get_stream(name).await.map_err(|e| {
            let text = format!("nats: stream {name:?}: {e}");
            match e.kind() {
                GetStreamErrorKind::JetStream(j) if j.code() == 404 => {
                    Failure::Refused(format!("nats: stream {name:?} does not exist"))
                }
                _ => Failure::Transient(text),
            }
        })?;
        // An outbound route publishing to a subject this stream captures, from the queue this
        // route stores into, would loop: only the server knows the stream's subjects.
        let sconfig = &stream.cached_info().config;
        let subjects = &sconfig.subjects;
        self.loops
            .check_stream(&self.route, subjects)
            .map_err(|e| Failure::Refused(format!("nats: {e}")))?;
        // A stream fed by a mirror or sources stores its messages under their origin's
        // subjects, which its own config does not list: its filters cannot be checked.
        let fed =
            sconfig.mirror.is_some() || sconfig.sources.as_ref().is_some_and(|s| !s.is_empty());
        let stream_subjects = match subjects.is_empty() {
            // A stream created without subjects captures its own name.
            true => vec![name.clone()],
            false => subjects.clone(),
        };
        let created = stream.cached_info().created.unix_timestamp_nanos();
        self.key_prefix = format!("nats:{name}:{created}:");
        let cname = self.source.consumer.as_str();
        let what = format!("nats: consumer {cname:?} of stream {name:?}");
        if let (false, Some(f)) = (fed, &self.source.filter_subject) {
            // Before a consumer that could never receive is created.
            check_filters([f], &stream_subjects, cname, name)?;
        }
        // A push consumer (one with a deliver subject) cannot be pulled from: the client's
        // "invalid consumer type" was taken for an outage (review r9 #2).
        let push = || {
            Failure::Refused(format!(
                "{what} is a push consumer (it has a deliver_subject); the bridge needs a \
                 durable pull consumer"
            ))
        };
        let consumer: Consumer<pull::Config> = if self.source.create {
            let config = pull::Config {
                durable_name: Some(cname.to_string()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: self.source.ack_wait,
                max_deliver: -1,
                filter_subject: self.source.filter_subject.clone().unwrap_or_default(),
                ..Default::default()
            };
            stream
                .get_or_create_consumer(cname, config)
                .await
                .map_err(|e| match e.kind() {
                    ConsumerErrorKind::InvalidConsumerType => push(),
                    _ => Failure::Transient(format!("{what}: {e}")),
                })?
        } else {
            if let Ok(info) = stream.consumer_info(cname).await {
                if info.config.deliver_subject.is_some() {
                    return Err(push());
                }
            }
            stream.get_consumer(cname).await.map_err(|e| {
                let missing = e.downcast_ref::<ConsumerInfoError>().is_some_and(|e| {
                    matches!(
                        e.kind(),
                        ConsumerInfoErrorKind::NotFound | ConsumerInfoErrorKind::StreamNotFound
                    )
                });
                if missing {
                    Failure::Refused(format!("{what} does not exist (and create = false)"))
                } else {
                    Failure::Transient(format!("{what}: {e}"))
                }
            })?
        };
        let c = &consumer.cached_info().config;
        // Each rule with its own reason (review r9 #7: the max_deliver reason was given for a
        // wrong ack policy too).
        if c.ack_policy != AckPolicy::Explicit {
            return Err(Failure::Refused(format!(
                "nats: consumer {cname:?} must have ack_policy explicit (has {:?}): with any \
                 other policy a message counts as acknowledged before it reaches the store, and \
                 a crash loses it",
                c.ack_policy
            )));
        }
        if c.max_deliver > 0 {
            return Err(Failure::Refused(format!(
                "nats: consumer {cname:?} must have an unlimited max_deliver (has {}): a \
                 message delivered that often without reaching the store would be dropped",
                c.max_deliver
            )));
        }
        if !fed {
            check_filters([&c.filter_subject], &stream_subjects, cname, name)?;
        }
        self.ack_wait = c.ack_wait;
        self.messages = Some(
            consumer
                .messages()
                .await
                .map_err(|e| Failure::Transient(format!("nats: pulling from {cname:?}: {e}")))?,
        );
        self.consumer = Some(consumer);
        Ok(())
    }

    fn is_connected(&self) -> bool {
        self.messages.is_some() && self.js.client().connection_state() == State::Connected
    }

    async fn next_batch(&mut self, max: usize) -> Result<Vec<Self::Msg>, String> {
        let Some(stream) = self.messages.as_mut() else {
            return Err("nats: not consuming".into());
        };
        let mut out = Vec::new();
        let first = stream.next().await;
        let mut item = first;
        loop {
            match item {
                Some(Ok(m)) => out.push(m),
                Some(Err(e)) => {
                    if out.is_empty() {
                        return Err(format!("nats: consuming: {e}"));
                    }
                    // Store what arrived; the error comes back with the next pull.
                    break;
                }
                None => {
                    if out.is_empty() {
                        return Err("nats: the consumer's message stream ended".into());
                    }
                    break;
                }
            }
            if out.len() >= max {
                break;
            }
            match stream.next().now_or_never() {
                Some(next) => item = next,
                None => break,
            }
        }
        Ok(out)
    }

    fn incoming(&self, m: &Self::Msg, now_ms: u64) -> Incoming {
        let info = m.info().ok();
        let published = info
            .as_ref()
            .map(|i| (i.published.unix_timestamp_nanos() / 1_000_000) as u64);
        let headers = m
            .headers
            .iter()
            .flat_map(|h| h.iter())
            .filter_map(|(n, vs)| vs.first().map(|v| (n.as_ref(), v.as_str())));
        let message = mapping::from_string_headers(&m.payload, headers, published, now_ms);
        Incoming {
            message,
            dedup_key: info
                .as_ref()
                .map(|i| format!("{}{}", self.key_prefix, i.stream_sequence)),
            redelivered: info.is_some_and(|i| i.delivered > 1),
        }
    }

    async fn ack(&mut self, msgs: Vec<Self::Msg>) -> Result<(), String> {
        for m in msgs {
            m.ack().await.map_err(|e| format!("nats: ack: {e}"))?;
        }
        Ok(())
    }

    async fn reject(&mut self, m: Self::Msg) -> Result<(), String> {
        m.ack_with(AckKind::Term)
            .await
            .map_err(|e| format!("nats: term: {e}"))
    }

    async fn requeue(&mut self, msgs: Vec<Self::Msg>) -> Result<(), String> {
        for m in msgs {
            m.ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await
                .map_err(|e| format!("nats: nak: {e}"))?;
        }
        Ok(())
    }

    async fn lag(&mut self) -> Option<u64> {
        let c = self.consumer.as_mut()?;
        let info = c.info().await.ok()?;
        Some(info.num_pending + info.num_ack_pending as u64)
    }

    fn disconnect(&mut self) {
        self.messages = None;
        self.consumer = None;
    }

    /// An ack is a one-way publish the client buffers (`m.ack()` returns once it is queued):
    /// flushed, so the acks of the messages stored before a stop reach the server.
    async fn flush_acks(&mut self) {
        let client = self.js.client();
        match tokio::time::timeout(self.ack_wait.min(Duration::from_secs(5)), client.flush()).await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(route = %self.route, "acks not flushed at stop: {e}"),
            Err(_) => warn!(route = %self.route, "acks not flushed at stop: no answer within 5 s"),
        }
    }

    fn redelivery_delay(&self) -> Duration {
        self.ack_wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// A stand-in NATS server requiring user `alice`, password `s3cr@t`: it answers a CONNECT
    /// carrying them as nats-server does (PONG to the PING after it), any other with
    /// `-ERR 'Authorization Violation'`. Its port.
    async fn server_requiring_credentials() -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let info = format!(
                        "INFO {{\"server_id\":\"S\",\"version\":\"2.10.0\",\"go\":\"go\",\
                         \"host\":\"127.0.0.1\",\"port\":{port},\"headers\":true,\
                         \"max_payload\":1048576,\"proto\":1,\"auth_required\":true}}\r\n"
                    );
                    let _ = write.write_all(info.as_bytes()).await;
                    let mut lines = BufReader::new(read).lines();
                    let mut admitted = false;
                    while let Ok(Some(line)) = lines.next_line().await {
                        if line.starts_with("CONNECT") {
                            admitted = line.contains("\"user\":\"alice\"")
                                && line.contains("\"pass\":\"s3cr@t\"");
                            if !admitted {
                                let _ =
                                    write.write_all(b"-ERR 'Authorization Violation'\r\n").await;
                                return;
                            }
                        } else if line.starts_with("PING") && admitted {
                            let _ = write.write_all(b"PONG\r\n").await;
                        }
                    }
                });
            }
        });
        port
    }

    /// Review r11 #4: a server that refused the client's credentials made the route report
    /// only "nats: not connected" (the cause went to async-nats's own log). Review r13 N2: the
    /// credentials of the URL were never sent at all, so the right password was refused too.
    #[tokio::test]
    async fn credentials_of_the_url_are_sent_and_a_refusal_names_the_cause() {
        let port = server_requiring_credentials().await;
        let server = |userinfo: &str| NatsServer {
            url: format!("nats://{userinfo}@127.0.0.1:{port}"),
            ack_timeout: Duration::from_secs(1),
        };
        // The right password (percent-encoded in the URL): admitted.
        let conn = connect(&server("alice:s3cr%40t"), Duration::from_millis(100))
            .await
            .unwrap();
        let r = ready(&conn.js, &conn.refusal).await;
        assert_eq!(
            conn.js.client().connection_state(),
            State::Connected,
            "{:?}",
            r.err().map(|f| f.text())
        );
        // A wrong one: refused, and the route is told why.
        let conn = connect(&server("alice:wrong"), Duration::from_millis(100))
            .await
            .unwrap();
        let mut last = None;
        // Attempts as a route makes them; the refusal is known once the client has tried once.
        for _ in 0..20 {
            match ready(&conn.js, &conn.refusal).await {
                Err(Failure::Refused(text)) => {
                    last = Some(text);
                    break;
                }
                other => last = Some(format!("{:?}", other.err().map(|f| f.text()))),
            }
        }
        let text = last.unwrap();
        assert!(text.contains("authorization violation"), "{text}");
        assert!(text.contains("credentials"), "{text}");
    }

    #[test]
    fn credentials_come_from_the_first_url_that_has_any() {
        assert_eq!(credentials("nats://h:4222"), None);
        assert_eq!(
            credentials("nats://h:1, nats://bob:p%2Fw@h:2"),
            Some(("bob".into(), Some("p/w".into())))
        );
        assert_eq!(
            credentials("nats://tok3n@h:1"),
            Some(("tok3n".into(), None))
        );
    }
}
